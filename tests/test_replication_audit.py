"""Findings of an independent audit of replication, each with its regression test: real
``Leader``/``Follower`` objects over real sockets on 127.0.0.1, real LMDB directories
under ``tmp_path``.

1. Once an ``acks="all"`` ``flush()`` returned, consumers of the leader's process and
   ``delete_records`` see the records (the high watermark covering them is stored
   before the flush returns), with and without followers.
2. A node that refuses to follow a fenced (lower-epoch) leader keeps its role and data,
   and says which leader is fenced and what to do.
3. A leader that learns, from an authenticated follower, that a newer epoch exists
   refuses every produce of its process (``FencedLeaderError``), ``acks="all"`` and
   ``acks="leader"`` alike, and fails the ``acks="all"`` flushes waiting; a peer that
   does not prove the secret changes nothing on it, whatever epoch it claims.
4. Any non-empty secret (bytes, or a str used as UTF-8); ``listen=":PORT"`` is loopback.
"""

from __future__ import annotations

import datetime
import functools
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog.errors import (
    AuthenticationError,
    ConfigError,
    NotLeaderError,
    OffsetOutOfRangeError,
    UncleanPromotionWarning,
)
from embedlog.protocol import Challenge, ErrorCode, FencedLeaderError, FollowerConnection, Hello, LeaderConnection
from embedlog.protocol.frames import MAX_FRAME
from embedlog.replication import Follower, FollowerCore, Leader, LeaderCore, promote, replication_status
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

Log = embedlog.Log
SECRET = b"shared-secret"
TIMEOUT_S = 30.0


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Callable[[str], Log]]:
    opened: list[Log] = []

    def make(name: str) -> Log:
        log = embedlog.open(tmp_path / name, maintenance_interval_ms=None)
        opened.append(log)
        return log

    try:
        yield make
    finally:
        for log in reversed(opened):
            log.close()


wait_until = functools.partial(harness.wait_until, timeout=TIMEOUT_S)  # tests/procs/harness.py


def poll_now(log: Log, topic: str) -> list[bytes | None]:
    """What a new consumer of this process gets from one ``poll(timeout=0)``."""
    c = log.consumer([topic], auto_offset_reset="earliest", max_poll_records=100_000)
    try:
        return [m.value for m in c.poll(timeout=0)]
    finally:
        c.close()


def end_offset(log: Log, topic: str) -> int:
    return log.describe_topic(topic).partitions[0].end_offset


def in_sync(leader: Leader) -> bool:
    return bool(leader.status()["isr"])


# == 1. acks="all": visible in the leader's process once flush() returned ==============================
@pytest.mark.parametrize("followers", [0, 1])
def test_an_acks_all_flush_is_visible_to_consumers_and_delete_records_at_once(logs: Callable[[str], Log],
                                                                              followers: int) -> None:
    a = logs("a")
    a.create_topic("t")
    with Leader(a, listen="127.0.0.1:0", secret=SECRET) as leader:
        follower = None
        if followers:
            follower = Follower(logs("b"), leader.address, secret=SECRET)
            follower.wait_connected(TIMEOUT_S)
            wait_until(lambda: in_sync(leader), "the follower in sync")
        try:
            p = a.producer(acks="all")
            for i in range(30):
                p.send("t", b"%d" % i)
                p.flush()
                got = poll_now(a, "t")  # no wait at all: the records are visible now
                assert got == [b"%d" % j for j in range(i + 1)], f"flush {i}: a consumer saw {len(got)} records"
                assert replication_status(a)["partitions"]["t[0]"]["high_watermark"] == i + 1
            p.send("t", b"last")
            p.flush()
            assert a.delete_records("t", 0, 31) == 31  # not "past the high watermark"
            p.close()
        finally:
            if follower is not None:
                follower.close()


@pytest.mark.parametrize("how", ["no_follower", "follower_left"])
def test_an_acks_leader_flush_of_a_leader_alone_is_visible_at_once(logs: Callable[[str], Log], how: str) -> None:
    """With no follower in sync the leader is the whole in-sync set, and its high
    watermark is its end offset, as in Kafka: an acks="leader" flush is readable (and
    delete_records takes it) when flush() returns, not a timer tick later."""
    a = logs("a")
    a.create_topic("t")
    with Leader(a, secret=SECRET) as leader:
        if how == "follower_left":
            with Follower(logs("b"), leader.address, secret=SECRET) as follower:
                follower.wait_connected(TIMEOUT_S)
                wait_until(lambda: in_sync(leader), "the follower in sync")
            wait_until(lambda: not in_sync(leader), "the follower gone from the in-sync set")
        with a.producer() as p:
            for i in range(20):
                p.send("t", b"%d" % i)
                p.flush()
                got = poll_now(a, "t")
                assert got == [b"%d" % j for j in range(i + 1)], f"flush {i}: a consumer saw {len(got)} records"
            p.send("t", b"last")
            p.flush()
            assert a.delete_records("t", 0, 21) == 21


def test_a_follower_joining_while_the_leader_alone_appends_holds_what_is_visible(
        logs: Callable[[str], Log]) -> None:
    """Appends of a leader alone move the high watermark themselves; a follower joins
    the in-sync set only holding every record below it (checked in the transaction that
    writes the set), so no record a consumer saw is missing from an in-sync follower."""
    a, b = logs("a"), logs("b")
    a.create_topic("t", 2)
    stop = threading.Event()

    def produce() -> None:
        with a.producer() as p:
            i = 0
            while not stop.is_set():
                p.send("t", b"%d" % i, partition=i % 2)
                p.flush()
                i += 1

    with Leader(a, secret=SECRET) as leader:
        writer = threading.Thread(target=produce)
        writer.start()
        try:
            with Follower(b, leader.address, secret=SECRET) as follower:
                follower.wait_connected(TIMEOUT_S)
                for _ in range(200):  # every in-sync set written must hold the visible records
                    st = replication_status(a)
                    if st["isr"]:
                        hws = {name: part["high_watermark"] for name, part in st["partitions"].items()}
                        held = {f"t[{p}]": b.describe_topic("t").partitions[p].end_offset for p in (0, 1)}
                        # (b may be ahead of the status read; never behind a high watermark it is in sync for)
                        assert all(held[k] >= hws[k] for k in hws if k in held), (hws, held)
                    time.sleep(0.005)
                wait_until(lambda: in_sync(leader), "the follower in sync under load")
        finally:
            stop.set()
            writer.join(TIMEOUT_S)


def test_concurrent_acks_all_flushes_all_see_their_records(logs: Callable[[str], Log]) -> None:
    a = logs("a")
    a.create_topic("t", 4)
    with Leader(a, secret=SECRET) as leader, Follower(logs("b"), leader.address, secret=SECRET) as follower:
        follower.wait_connected(TIMEOUT_S)
        wait_until(lambda: in_sync(leader), "the follower in sync")
        errors: list[str] = []

        def run(part: int) -> None:
            p = a.producer(acks="all")
            try:
                for i in range(20):
                    p.send("t", b"%d-%d" % (part, i), partition=part)
                    p.flush()
                    st = a._store.read(lambda txn: a._store.partition_state(txn, a.describe_topic("t").topic_id,
                                                                            part))
                    if st is None or st.high_watermark < i + 1:
                        errors.append(f"partition {part} flush {i}: stored high watermark {st}")
            finally:
                p.close()

        threads = [threading.Thread(target=run, args=(part,)) for part in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S)
        assert errors == []


# == 2. a node that refuses a fenced leader is left as it was =========================================
def _lead_then_promote(a: Log, b: Log) -> None:
    """A leads and B follows it (B gets A's record), then B is promoted (epoch 1)."""
    a.create_topic("t")
    with Leader(a, secret=SECRET) as leader, Follower(b, leader.address, secret=SECRET) as follower:
        follower.wait_connected(TIMEOUT_S)
        wait_until(lambda: in_sync(leader), "B in sync")
        p = a.producer(acks="all")
        p.send("t", b"from-a")
        p.flush()
        p.close()
    assert replication_status(b)["role"] == "replica"
    assert promote(b) == 1


def test_a_node_that_refuses_a_fenced_leader_keeps_its_role(logs: Callable[[str], Log]) -> None:
    a, b = logs("a"), logs("b")
    _lead_then_promote(a, b)
    before = poll_now(b, "t")
    with Leader(a, secret=SECRET) as leader:  # the old leader again, still at epoch 0
        host, port = leader.address
        follower = Follower(b, leader.address, secret=SECRET)
        try:
            with pytest.raises(FencedLeaderError) as info:
                follower.wait_connected(TIMEOUT_S)
        finally:
            follower.close()
        message = str(info.value)
        assert f"the leader at {host}:{port} has epoch 0, lower than this node's epoch 1" in message
        assert "fenced old leader" in message
        assert "start that node as a follower of this one" in message
        assert "restart this node" not in message  # (the old leader's advice, not B's)
        status = replication_status(b)
        assert (status["role"], status["epoch"]) == ("leader", 1)
        p = b.producer()  # B still leads: no promote needed
        p.send("t", b"from-b")
        p.flush()
        p.close()
        assert poll_now(b, "t") == [*before, b"from-b"]


class OldLeaderConnection(LeaderConnection):
    """A leader of an older embedlog: it refuses a newer follower at its Hello."""

    def _on_hello(self, hello: Hello) -> list[Any]:
        if hello.epoch > self.epoch:
            self.peer = hello
            self._refuse(ErrorCode.FENCED, FencedLeaderError(
                f"follower {hello.node_id!r} has leader epoch {hello.epoch}, newer than this leader's "
                f"{self.epoch}: another node was promoted; restart this node as a follower of it"))
        return super()._on_hello(hello)


class OldFollowerConnection(FollowerConnection):
    """A follower of an older embedlog: it refuses an older leader without its Proof."""

    def _on_challenge(self, ch: Challenge) -> list[Any]:
        if ch.epoch < self.epoch:
            raise FencedLeaderError(f"leader {ch.node_id!r} has epoch {ch.epoch}, older than this node's")
        return super()._on_challenge(ch)


def test_a_leader_that_refuses_at_the_hello_leaves_the_node_as_it_was(logs: Callable[[str], Log]) -> None:
    """An older embedlog leader refuses a newer follower at its Hello, with advice for
    itself ("restart this node as a follower"): the follower says what it means for it."""
    a, b = logs("a"), logs("b")
    _lead_then_promote(a, b)
    old_leader = OldLeaderConnection(node_id="A", epoch=0, secret=SECRET, nonce=b"n" * 32)
    fcore = FollowerCore(b._store, secret=SECRET)
    fcore.leader_address = "10.0.0.1:9400"
    assert replication_status(b)["role"] == "replica"  # (while it tries)
    with pytest.raises(FencedLeaderError):
        old_leader.receive_data(fcore.connect(0))
    with pytest.raises(FencedLeaderError) as info:
        fcore.receive(old_leader.data_to_send(), 0)
    message = str(info.value)
    assert message.startswith("the leader at 10.0.0.1:9400 has epoch 0, lower than this node's epoch 1, so it is "
                              "a fenced old leader: start that node as a follower of this one")
    assert "restart this node" not in message
    assert replication_status(b)["role"] == "leader"


# == 3. a fenced old leader refuses writes =============================================================
def test_a_fenced_leader_refuses_every_produce_and_fails_waiting_flushes(logs: Callable[[str], Log]) -> None:
    a, b = logs("a"), logs("b")
    a.create_topic("t")
    with Leader(a, secret=SECRET, replica_lag_time_max_ms=120_000) as leader:
        follower = Follower(b, leader.address, secret=SECRET)
        follower.wait_connected(TIMEOUT_S)
        wait_until(lambda: in_sync(leader), "B in sync")
        p = a.producer(acks="all")
        p.send("t", b"acked")
        p.flush()
        p.close()
        follower.close(leave=False)  # gone without a word: A keeps it in its in-sync set
        assert promote(b) == 1  # B is the new leader; A does not know yet
        assert leader.status()["isr"] == [replication_status(b)["node_id"]]
        waiting = a.producer(acks="all", delivery_timeout_ms=120_000)
        waiting.send("t", b"unacked")
        outcome: list[BaseException | None] = []
        done = threading.Event()

        def flush() -> None:
            try:
                waiting.flush()
                outcome.append(None)
            except BaseException as exc:  # (checked below)
                outcome.append(exc)
            done.set()

        threading.Thread(target=flush, daemon=True).start()
        wait_until(lambda: end_offset(a, "t") == 2, "the waiting flush's record written")
        assert not done.wait(0.2)  # it waits for B, which is not there
        started = time.monotonic()
        stale = Follower(b, leader.address, secret=SECRET)
        try:
            with pytest.raises(FencedLeaderError):
                stale.wait_connected(TIMEOUT_S)
        finally:
            stale.close()
        wait_until(lambda: leader.status()["fenced_by"], "A fenced")
        assert done.wait(TIMEOUT_S)
        assert time.monotonic() - started < 60  # well before B could leave the in-sync set
        assert isinstance(outcome[0], FencedLeaderError), outcome
        assert "superseded by leader epoch 1" in str(outcome[0])
        waiting._drain([])
        waiting.close()
        for acks in ("all", "leader"):
            p = a.producer(acks=acks)
            p.send("t", b"refused-" + acks.encode())
            with pytest.raises(FencedLeaderError, match=r"superseded by leader epoch 1.*restart this node as a "
                                                        r"follower of the new leader") as info:
                p.flush()
            assert isinstance(info.value, NotLeaderError)
            p._drain([])
            p.close()
        assert end_offset(a, "t") == 2  # nothing written since it knew
        assert "epoch 1" in leader.status()["fenced_by"]
        # nothing was written to the store: another process would see a plain leader
        status = replication_status(a)
        assert (status["role"], status["epoch"]) == ("leader", 0)
    p = a.producer()  # the Leader object is gone: the directory is as it was
    p.send("t", b"after")
    p.flush()
    p.close()
    assert end_offset(a, "t") == 3


def test_a_node_that_fails_authentication_is_not_left_a_replica(logs: Callable[[str], Log]) -> None:
    a, b = logs("a"), logs("b")
    a.create_topic("t")
    b.create_topic("own")
    with Leader(a, secret=SECRET) as leader:
        follower = Follower(b, leader.address, secret=b"not-the-secret")
        try:
            with pytest.raises(AuthenticationError):
                follower.wait_connected(TIMEOUT_S)
        finally:
            follower.close()
    assert replication_status(b)["role"] == "leader"
    p = b.producer()  # writable as before
    p.send("own", b"mine")
    p.flush()
    p.close()
    assert poll_now(b, "own") == [b"mine"]


def test_a_follower_that_never_reached_a_leader_leaves_the_directory_as_it_was(logs: Callable[[str], Log]) -> None:
    """A wrong address, or a leader that is down: while the Follower runs the directory
    refuses producers, and once it stops, having followed nothing, it is writable again
    (a typo must not silently take a directory away from its producers)."""
    b = logs("b")
    b.create_topic("own")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    follower = Follower(b, f"127.0.0.1:{port}", secret=SECRET)
    try:
        assert replication_status(b)["role"] == "replica"
        with pytest.raises(embedlog.errors.TimeoutError):
            follower.wait_connected(0.3)
        with pytest.raises(NotLeaderError):
            b.producer().send("own", b"refused")
    finally:
        follower.close()
    assert replication_status(b)["role"] == "leader"
    with b.producer() as p:
        p.send("own", b"mine")
        p.flush()
    assert poll_now(b, "own") == [b"mine"]


def test_a_newer_epoch_without_the_secret_changes_nothing_on_the_leader(logs: Callable[[str], Log]) -> None:
    a, b = logs("a"), logs("b")
    _lead_then_promote(a, b)
    with Leader(a, secret=SECRET) as leader:
        impostor = Follower(b, leader.address, secret=b"not-the-secret")
        try:
            with pytest.raises(AuthenticationError):  # (not FencedLeaderError: nothing was proven either way)
                impostor.wait_connected(TIMEOUT_S)
        finally:
            impostor.close()
        time.sleep(0.2)
        assert leader.status()["fenced_by"] is None
        p = a.producer(acks="all")
        p.send("t", b"still-leading")
        p.flush()
        p.close()
        assert poll_now(a, "t")[-1] == b"still-leading"


def test_only_a_follower_that_proved_itself_fences_the_leader(logs: Callable[[str], Log]) -> None:
    """Sans-I/O: the leader answers a Hello with a newer epoch with its Challenge (it
    does not refuse a claim nobody proved); a follower that then refuses without its
    Proof (as an older embedlog does) ends the session and fences nothing, one that
    sends its Proof first fences the leader."""
    a, b = logs("a"), logs("b")
    _lead_then_promote(a, b)
    core = LeaderCore(a._store, secret=SECRET, now_ms=0)
    try:
        old = OldFollowerConnection(node_id="old", epoch=5, secret=SECRET, nonce=b"n" * 32)
        old.start()
        session = core.session(0)
        challenge = session.receive(old.data_to_send(), 0)
        assert not session.closed
        with pytest.raises(FencedLeaderError):
            old.receive_data(challenge)  # (refuses without a proof)
        session.receive(old.data_to_send(), 0)
        assert session.closed
        assert core.status()["fenced_by"] is None
        assert core.superseded_by is None
        fcore = FollowerCore(b._store, secret=SECRET)
        session = core.session(0)
        challenge = session.receive(fcore.connect(0), 0)
        with pytest.raises(FencedLeaderError, match="lower than this node's epoch 1"):
            fcore.receive(challenge, 0)
        session.receive(fcore.pending(), 0)  # its Proof, then its refusal
        assert isinstance(session.error, FencedLeaderError)
        assert core.superseded_by == 1
        assert "epoch 1" in core.status()["fenced_by"]
    finally:
        core.stop()
    assert replication_status(b)["role"] == "leader"


# == 4. secrets and addresses =========================================================================
@pytest.mark.parametrize("secret", [b"secret", "secret", "sécret", b"x"])
def test_any_non_empty_secret_replicates(logs: Callable[[str], Log], secret: bytes | str) -> None:
    a = logs("a")
    a.create_topic("t")
    with Leader(a, listen=":0", secret=secret) as leader:
        assert leader.address[0] == "127.0.0.1"
        with Follower(logs("b"), f":{leader.address[1]}", secret=secret) as follower:
            follower.wait_connected(TIMEOUT_S)
            assert follower.status()["leader"] == f"127.0.0.1:{leader.address[1]}"


def test_a_str_secret_is_the_same_secret_as_its_utf8_bytes(logs: Callable[[str], Log]) -> None:
    a = logs("a")
    a.create_topic("t")
    with Leader(a, secret="sécret") as leader, Follower(logs("b"), leader.address, secret="sécret".encode()) as f:
        f.wait_connected(TIMEOUT_S)


@pytest.mark.parametrize("secret", [b"", ""])
def test_an_empty_secret_is_refused(logs: Callable[[str], Log], secret: bytes | str) -> None:
    a = logs("a")
    with pytest.raises(ConfigError, match="secret is empty"):
        Leader(a, secret=secret)
    with pytest.raises(ConfigError, match="secret is empty"):
        Follower(logs("b"), "127.0.0.1:1", secret=secret)
    assert replication_status(a)["role"] == "leader"


def test_listen_on_a_port_alone_is_loopback(logs: Callable[[str], Log]) -> None:
    a = logs("a")
    a.create_topic("t")
    with Leader(a, listen=":0", secret=SECRET) as leader:
        host, port = leader.address
        assert (host, leader.status()["address"]) == ("127.0.0.1", f"127.0.0.1:{port}")
        with Follower(logs("b"), f":{port}", secret=SECRET) as follower:
            follower.wait_connected(TIMEOUT_S)


@pytest.mark.parametrize("listen", ["", "9400", ":", ":port", "host:", ":70000"])
def test_bad_addresses_are_config_errors(logs: Callable[[str], Log], listen: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        Leader(logs("a"), listen=listen, secret=SECRET)


# == a batch larger than the default frame cap ========================================================
def test_a_record_over_the_default_frame_cap_replicates_and_so_does_what_follows(logs: Callable[[str], Log]) -> None:
    """A 65 MiB record (max.message.bytes allows up to INT32_MAX) makes a fetch response
    over MAX_FRAME: a follower refused the frame and fetched it again for ever, so no
    topic replicated any more.  Once the leader proved itself, the follower takes it."""
    a, b = logs("a"), logs("b")
    a.create_topic("big", config={"max.message.bytes": 200 << 20})
    a.create_topic("other")
    big = bytes(range(256)) * ((MAX_FRAME + (1 << 20)) // 256)
    with Leader(a, listen="127.0.0.1:0", secret=SECRET) as leader, \
            Follower(b, leader.address, secret=SECRET) as follower:
        follower.wait_connected(TIMEOUT_S)
        wait_until(lambda: in_sync(leader), "the follower in sync")
        with a.producer(acks="all", delivery_timeout_ms=60_000) as p:
            p.send("big", big)
            p.flush()
            assert in_sync(leader)  # acknowledged by the follower, not by its leaving the in-sync set
            for i in range(10):
                p.send("other", b"o%d" % i)
            p.flush()
        wait_until(lambda: "other" in b.topics() and end_offset(b, "other") == 10, "the records after it")
        assert follower.status()["connections"] == 1
    with b.consumer(["big"], auto_offset_reset="earliest", fetch_max_bytes=1) as c:
        (msg,) = c.poll(timeout=5)
    assert msg.value == big


# == a follower that left says so ======================================================================
@pytest.mark.parametrize("how", ["told_its_leader", "after_its_leader_died"])
def test_a_closed_followers_in_sync_state_for_promote(logs: Callable[[str], Log], how: str) -> None:
    """``Follower.close()`` tells a connected leader, which drops it from the in-sync set
    at once and acknowledges records without it: the node's stored state says so, and
    promoting it warns (it said in sync).  On the failover path the leader is gone,
    nobody was told: it was in sync, and promoting it does not warn."""
    a, b = logs("a"), logs("b")
    a.create_topic("t")
    with Leader(a, listen="127.0.0.1:0", secret=SECRET) as leader:
        follower = Follower(b, leader.address, secret=SECRET)
        follower.wait_connected(TIMEOUT_S)
        wait_until(lambda: in_sync(leader), "the follower in sync")
        with a.producer(acks="all") as p:
            p.send("t", b"v0")
            p.flush()
        wait_until(lambda: replication_status(b)["follower"]["in_sync"], "the follower storing that it is in sync")
        if how == "told_its_leader":
            follower.close()
            wait_until(lambda: not in_sync(leader), "the leader dropping it")
            with a.producer(acks="all") as p:
                p.send("t", b"acknowledged without b")
                p.flush()
    if how == "told_its_leader":
        assert replication_status(b)["follower"]["in_sync"] is False
        with pytest.warns(UncleanPromotionWarning):
            promote(b)
        return
    wait_until(lambda: not follower.status()["connected"], "the follower losing its leader")
    follower.close()
    assert replication_status(b)["follower"]["in_sync"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert promote(b) == 1


# == a copied directory is another node ================================================================
def test_a_follower_directory_copied_to_start_another_node_gets_its_own_node_id(
        logs: Callable[[str], Log], tmp_path: Path) -> None:
    """Two followers with one node id (a directory copied to bootstrap a third node)
    were one follower to the leader, which counted one's acknowledgements for the other."""
    a, b = logs("a"), logs("b")
    a.create_topic("t")
    with Leader(a, listen="127.0.0.1:0", secret=SECRET) as leader:
        with Follower(b, leader.address, secret=SECRET) as follower:
            follower.wait_connected(TIMEOUT_S)
            wait_until(lambda: in_sync(leader), "the follower in sync")
            with a.producer(acks="all") as p:
                p.send("t", b"before the copy")
                p.flush()
        b_id = replication_status(b)["node_id"]
        b.close()
        shutil.copytree(tmp_path / "b", tmp_path / "c")
        b, c = logs("b"), logs("c")
        with Follower(b, leader.address, secret=SECRET) as fb, Follower(c, leader.address, secret=SECRET) as fc:
            fb.wait_connected(TIMEOUT_S)
            fc.wait_connected(TIMEOUT_S)
            assert replication_status(b)["node_id"] == b_id  # (the original keeps its identity)
            c_id = replication_status(c)["node_id"]
            assert c_id != b_id
            wait_until(lambda: sorted(leader.status()["isr"]) == sorted([b_id, c_id]), "both in the in-sync set")
            with a.producer(acks="all") as p:
                p.send("t", b"after the copy")
                p.flush()
            for node in (b, c):
                wait_until(lambda node=node: end_offset(node, "t") == 2, "both holding the records")


def test_an_acks_all_transaction_s_offsets_are_on_the_follower_when_it_returns(logs: Callable[[str], Log]) -> None:
    """Consume-transform-produce with ``acks="all"``: when the transaction's commit
    returns, the in-sync follower holds its committed offsets as well as its records —
    also while other producers keep the leader busy and the follower fetches with a
    small ``max_bytes`` (responses cut short carried no offsets: a failover then lost
    them, and the input was processed again)."""
    la, lb = logs("a"), logs("b")
    la.create_topic("in")
    la.create_topic("out")
    la.create_topic("noise", partitions=4)
    with la.producer() as p:
        for i in range(50):
            p.send("in", b"input-%d" % i)
    stop = threading.Event()

    def noise() -> None:
        with la.producer(linger_ms=1) as p:
            while not stop.is_set():
                for _ in range(20):
                    p.send("noise", b"n" * 300)
                p.flush()
                time.sleep(0.002)

    with Leader(la, secret=SECRET, replica_lag_time_max_ms=60_000) as leader, \
            Follower(lb, leader.address, secret=SECRET, max_bytes=2000) as follower:
        follower.wait_connected(TIMEOUT_S)
        wait_until(lambda: leader.status()["isr"], "the follower is in sync")
        noisy = threading.Thread(target=noise, daemon=True)
        noisy.start()
        missing = []
        try:
            for k in range(1, 21):
                with la.transaction(acks="all") as tx:
                    tx.send("out", b"result-%d" % k)
                    tx.commit_offsets("pipeline", {embedlog.TopicPartition("in", 0): k})
                got = lb.committed_offsets("pipeline").get(embedlog.TopicPartition("in", 0)) \
                    if "pipeline" in lb.groups() else None
                if got is None or got.offset < k:
                    missing.append((k, got))
        finally:
            stop.set()
            noisy.join()
        assert missing == []


def test_offsets_for_times_and_a_reset_by_time_stay_below_the_high_watermark(logs: Callable[[str], Log]) -> None:
    """Records above the high watermark (not acknowledged by the in-sync follower, which
    lost its link) are not found by time, as Kafka's ListOffsets answers from below it:
    ``offsets_for_times`` gave their offset, and a group reset to a datetime was moved
    past what consumers may read."""
    la, lb = logs("a"), logs("b")
    la.create_topic("t")
    tp = embedlog.TopicPartition("t", 0)
    with Leader(la, secret=SECRET, replica_lag_time_max_ms=60_000) as leader:
        follower = Follower(lb, leader.address, secret=SECRET)
        follower.wait_connected(TIMEOUT_S)
        wait_until(lambda: leader.status()["isr"], "the follower is in sync")
        with la.producer(acks="all") as p:
            for i in range(10):
                p.send("t", b"acked", timestamp_ms=1000 + i)
        follower.close(leave=False)  # (it stays in the in-sync set: the high watermark stays at 10)
        with la.producer() as p:
            for i in range(10, 20):
                p.send("t", b"unreplicated", timestamp_ms=1000 + i)
        with la.consumer() as c:
            c.assign([tp])
            assert c.end_offsets([tp]) == {tp: 10}
            assert c.offsets_for_times({tp: 1015}) == {tp: None}
            assert c.offsets_for_times({tp: 1005})[tp] == embedlog.OffsetAndTimestamp(5, 1005)
        when = datetime.datetime.fromtimestamp(1.015, tz=datetime.timezone.utc)
        assert la.reset_group_offsets("g", "t", when) == {tp: 10}


def test_a_consumer_on_a_catching_up_replica_waits_at_its_committed_offset(logs: Callable[[str], Log]) -> None:
    """Committed offsets reach a follower with the first response, before the records
    they point past: a group consumer there starts at its committed offset and waits for
    the records (it was out of range: ``auto_offset_reset`` sent it back to the start)."""
    la, lb = logs("a"), logs("b")
    la.create_topic("t")
    tp = embedlog.TopicPartition("t", 0)
    with la.producer() as p:
        for i in range(300):
            p.send("t", b"x" * 1000)
            if i % 3 == 2:
                p.flush()
    la.commit_offsets("g", {tp: 300})
    with Leader(la, secret=SECRET) as leader, Follower(lb, leader.address, secret=SECRET, max_bytes=1):
        wait_until(lambda: "g" in lb.groups(), "the offsets reached the follower")
        with lb.consumer(group="g", enable_auto_commit=False, auto_offset_reset="earliest") as c:
            c.assign([tp])
            assert c.position(tp) == 300
            wait_until(lambda: lb.describe_topic("t").partitions[0].end_offset >= 300, "caught up")
            with la.producer(acks="all") as p:
                p.send("t", b"after")
            got: list[bytes] = []
            wait_until(lambda: got.extend(m.value for m in c.poll(0.05)) or got, "the record after it")
            assert got == [b"after"]


def ten_records(log: Log) -> embedlog.TopicPartition:
    """Topic ``t`` with ten records, ``b"0"`` to ``b"9"``; its partition."""
    log.create_topic("t")
    with log.producer() as p:
        for i in range(10):
            p.send("t", b"%d" % i)
    return embedlog.TopicPartition("t", 0)


@pytest.mark.parametrize("reset", ["none", "earliest"])
def test_a_seek_past_the_end_of_a_caught_up_replica_is_out_of_range(logs: Callable[[str], Log], reset: str) -> None:
    """A replica caught up answers as its leader would: past the end is out of range
    (``auto_offset_reset``; ``"none"`` raises), not a wait for records that never come."""
    la, lb = logs("a"), logs("b")
    tp = ten_records(la)
    with Leader(la, secret=SECRET) as leader, Follower(lb, leader.address, secret=SECRET):
        wait_until(lambda: "t" in lb.topics() and lb.describe_topic("t").partitions[0].end_offset == 10, "caught up")
        wait_until(lambda: (replication_status(lb)["follower"] or {}).get("lag") == 0, "lag 0 recorded")
        with lb.consumer(auto_offset_reset=reset) as c:
            c.assign([tp])
            c.seek(tp, 1_000_000)
            if reset == "none":
                with pytest.raises(OffsetOutOfRangeError):
                    c.poll(0.1)
            else:
                got: list[int] = []
                wait_until(lambda: got.extend(m.offset for m in c.poll(0.05)) or got, "records")
                assert got[0] == 0


def test_a_committed_offset_past_the_end_reads_the_same_on_a_caught_up_replica(logs: Callable[[str], Log]) -> None:
    """Kafka's clients may commit past a partition's end (brokers accept it, so do the
    shims): a group consumer applies ``auto_offset_reset`` on the leader and on a caught-up
    replica alike (on the replica it waited at the offset, skipping the records below)."""
    la, lb = logs("a"), logs("b")
    tp = ten_records(la)
    la._coordinator.commit("g", {tp: 1000}, None, beyond_end=True)  # (as a Kafka-client shim commits)

    def read(log: Log) -> list[bytes]:
        got: list[bytes] = []
        with log.consumer(group="g", enable_auto_commit=False, auto_offset_reset="earliest") as c:
            c.assign([tp])
            wait_until(lambda: got.extend(m.value for m in c.poll(0.05)) or len(got) >= 10, "records")
        return got

    with Leader(la, secret=SECRET) as leader, Follower(lb, leader.address, secret=SECRET):
        wait_until(lambda: "g" in lb.groups() and lb.describe_topic("t").partitions[0].end_offset == 10, "caught up")
        wait_until(lambda: (replication_status(lb)["follower"] or {}).get("lag") == 0, "lag 0 recorded")
        assert read(lb) == read(la)


def test_a_replica_stopped_while_another_partition_lagged_reads_a_copied_one_as_its_leader(
        logs: Callable[[str], Log]) -> None:
    """The follower stopped while topic ``u`` still lagged: a group consumer at an offset
    committed past the end of fully copied ``t`` applies ``auto_offset_reset`` as on the
    leader (the replica's lag, one sum over every partition, made it wait for ever)."""
    la, lb = logs("a"), logs("b")
    tp = ten_records(la)
    la.create_topic("u")
    with la.producer() as p:
        for _ in range(3000):
            p.send("u", b"x" * 8000)
    la._coordinator.commit("g", {tp: 1000}, None, beyond_end=True)  # (as a Kafka-client shim may)
    with Leader(la, secret=SECRET) as leader, Follower(lb, leader.address, secret=SECRET, max_bytes=16384):
        wait_until(lambda: "g" in lb.groups() and "t" in lb.topics()
                   and lb.describe_topic("t").partitions[0].end_offset == 10, "t copied")
    assert (replication_status(lb)["follower"] or {}).get("lag", 0) > 0  # (u still behind)

    def read(log: Log) -> list[bytes]:
        got: list[bytes] = []
        with log.consumer(group="g", enable_auto_commit=False, auto_offset_reset="earliest") as c:
            c.assign([tp])
            wait_until(lambda: got.extend(m.value for m in c.poll(0.05)) or len(got) >= 10, "records")
        return got

    assert read(lb) == read(la) == [b"%d" % i for i in range(10)]
