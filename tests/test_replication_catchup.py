"""A catching-up follower applies large responses in a thread of its own, behind the
connection's thread (``FollowerCore(applier=)``, ``replication._Applier``): the
connection's thread receives, decodes and checks the next response meanwhile, and
sends the fetch after it from where the responses handed over end.  Every guarantee
stays: an Ack only once its response is durable, in order; a response that is not a
plain append (metadata, truncation, ...) only after everything handed over was applied;
a failed apply drops the connection with nothing after it applied; a disconnect waits
for the apply under way."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import replication
from embedlog.codec import batch as codec
from embedlog.protocol import Ack, Error, FetchRequest, FetchResponse, ProtocolError
from embedlog.protocol.frames import HEADER, _crc32
from embedlog.replication import Follower, FollowerCore, Leader, LeaderCore
from embedlog.storage import replica
from procs import harness, pki, replcheck  # tests/procs/ (tests/ is on sys.path)
from procs.harness import frames  # tests/procs/harness.py (tests/ is on sys.path)
from procs.harness import partition_state as state

Log = embedlog.Log
SECRET = b"shared-secret-for-tests"
BATCH = 20_000  # bytes of one record: one batch per flush, each far above the threshold below


def fill(log: Log, batches: int, topic: str = "t") -> None:
    """``batches`` batches of one ``BATCH``-byte record each (one transaction each)."""
    with log.producer() as p:
        for i in range(batches):
            p.send(topic, b"%06d" % i + bytes(BATCH))
            p.flush()


class Linked:
    """A leader core and a follower core wired by hand, the follower's applier a list
    of jobs the test runs itself (``run``).  Each response carries one batch."""

    def __init__(self, make_log: Any, batches: int, **follower: Any) -> None:
        self.la, self.lb = make_log("a"), make_log("b")
        self.la.create_topic("t")
        fill(self.la, batches)
        self.jobs: list[Any] = []
        self.core = LeaderCore(self.la._store, secret=None, now_ms=0, replica_lag_time_max_ms=10**9)
        follower.setdefault("applier", self.jobs.append)
        self.follower = FollowerCore(self.lb._store, secret=None, max_bytes=1, pipeline_min_bytes=1 << 10,
                                     **follower)
        self.session = self.core.session(0, "mem")
        self.now = 0
        # the handshake, then the first response (the topic's metadata and the first
        # batch): applied at once, not handed over
        out = self.follower.receive(self.session.receive(self.follower.connect(0), 0), 0)
        out = self.session.receive(out, 0)
        (resp,) = frames(out)
        assert resp.metadata is not None
        back = self.follower.receive(out, 0)
        assert [type(m) for m in frames(back)] == [Ack, FetchRequest]
        assert self.jobs == []
        self.to_leader = back

    def exchange(self) -> list[Any]:
        """Deliver what the follower sent; feed the leader's answer to the follower and
        return what the follower sends back (decoded)."""
        self.now += 1
        out = self.session.receive(self.to_leader, self.now) if self.to_leader else b""
        out += self.session.poll(self.now)
        self.to_leader = self.follower.receive(out, self.now) if out else b""
        return frames(self.to_leader)

    def poll(self) -> list[Any]:
        self.now += 1
        more = self.follower.poll(self.now)
        self.to_leader += more
        return frames(more)

    def run(self, i: int) -> None:
        self.jobs[i]()


def ack_end(msg: Ack) -> int:
    (p,) = msg.partitions
    return p.offset


# -- the follower core with an applier --------------------------------------------------------------
def test_a_large_response_is_handed_over_and_acknowledged_once_durable(make_log: Any) -> None:
    link = Linked(make_log, 4)
    assert state(link.lb).end_offset == 1
    # The second response: handed to the applier, the next fetch sent at once, from where
    # that response ends (it is not applied yet: the fetch position comes from memory).
    (fetch,) = link.exchange()
    assert isinstance(fetch, FetchRequest)
    assert fetch.partitions[0].fetch_offset == 2
    assert len(link.jobs) == 1
    assert state(link.lb).end_offset == 1  # not applied yet
    assert link.poll() == []  # and no Ack for it before it is durable
    # The third arrives meanwhile: handed over too (one may wait behind the apply under
    # way), its fetch again from where it ends.
    (fetch,) = link.exchange()
    assert fetch.partitions[0].fetch_offset == 3
    assert len(link.jobs) == 2
    assert link.follower.pipelined == 2
    link.run(0)
    assert state(link.lb).end_offset == 2
    (ack,) = link.poll()  # queued by the connection's thread once it looks (woken by the applier)
    assert isinstance(ack, Ack)
    assert ack_end(ack) == 2
    link.run(1)
    (ack,) = link.poll()
    assert ack_end(ack) == 3
    assert link.follower.applied_behind == 2
    # the leader counts what the Acks say, no more
    assert link.core.followers[link.follower.node_id].durable == {(link.la.describe_topic("t").topic_id, 0): 1}
    link.exchange()  # (delivers both Acks and the fetch from 3)
    tid = link.la.describe_topic("t").topic_id
    assert link.core.followers[link.follower.node_id].durable[(tid, 0)] == 3


def test_acks_go_out_in_order_before_the_next_fetch(make_log: Any) -> None:
    """A response that arrives after one handed over was applied queues that one's Ack
    first, then the next fetch."""
    link = Linked(make_log, 3)
    link.exchange()
    link.run(0)  # applied; its Ack not collected yet (no poll)
    msgs = link.exchange()
    assert [type(m) for m in msgs] == [Ack, FetchRequest]
    assert ack_end(msgs[0]) == 2
    assert msgs[1].partitions[0].fetch_offset == 3


def test_a_response_that_is_not_a_plain_append_waits_for_everything_handed_over(make_log: Any) -> None:
    """Metadata (a topic created meanwhile) is applied by the connection's thread only
    after the apply of what was handed over before it, and then acknowledged after it."""
    gate = threading.Event()
    started = threading.Event()
    order: list[str] = []

    class Waiting(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            started.set()
            return super().wait(timeout)

    def applier(job: Any) -> None:
        def run() -> None:
            gate.wait(harness.TIMEOUT)
            order.append("behind")
            job()

        threading.Thread(target=run, daemon=True).start()

    link = Linked(make_log, 2, applier=applier)
    link.follower._behind_cond = Waiting()
    assert [type(m) for m in link.exchange()] == [FetchRequest]  # the second batch: handed over, held
    link.la.create_topic("u")
    link.now += 1
    out = link.session.receive(link.to_leader, link.now)
    (resp,) = frames(out)
    assert isinstance(resp, FetchResponse)
    assert resp.metadata is not None
    real = link.follower._on_response

    def on_response(*args: Any) -> Any:
        order.append("inline")
        return real(*args)

    link.follower._on_response = on_response  # type: ignore[method-assign]
    back: list[bytes] = []
    t = threading.Thread(target=lambda: back.append(link.follower.receive(out, link.now)), daemon=True)
    t.start()
    assert started.wait(harness.TIMEOUT)  # it waits for the apply handed over before
    assert order == []
    assert "u" not in link.lb.topics()
    gate.set()
    t.join(harness.TIMEOUT)
    assert not t.is_alive()
    assert order == ["behind", "inline"]
    assert "u" in link.lb.topics()
    msgs = frames(back[0])
    assert [type(m) for m in msgs] == [Ack, Ack, FetchRequest]
    assert [m.correlation_id for m in msgs[:2]] == sorted(m.correlation_id for m in msgs[:2])


def test_a_failed_apply_drops_the_connection_and_applies_nothing_after_it(make_log: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    link = Linked(make_log, 4)
    link.exchange()
    link.exchange()
    assert len(link.jobs) == 2
    real = replica.apply
    calls: list[int] = []

    def failing(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        raise replica.ApplyError("injected")

    monkeypatch.setattr(replica, "apply", failing)
    link.run(0)
    monkeypatch.setattr(replica, "apply", real)
    link.run(1)  # skipped: the one before it failed
    assert calls == [1]
    assert state(link.lb).end_offset == 1
    with pytest.raises(ProtocolError, match="injected"):
        link.follower.poll(link.now + 1)
    (err,) = frames(link.follower.pending())
    assert isinstance(err, Error)
    link.follower.disconnect()
    assert len(link.follower._behind) == 0
    assert link.follower._ahead == {}
    link.jobs.clear()  # (both ran already)
    # A new connection fetches from what is stored and converges.
    link.session.close()
    link.session = link.core.session(link.now, "mem")
    link.to_leader = link.follower.connect(link.now)
    for _ in range(50):
        link.exchange()
        while link.jobs:
            link.jobs.pop(0)()
        link.poll()
        if state(link.lb).end_offset == 4:
            break
    assert replcheck.image(link.lb) == replcheck.image(link.la)


def test_a_batch_that_fails_its_checksum_is_never_handed_over(make_log: Any) -> None:
    """Checksums are checked before a response is handed over; a corrupt one is applied
    (refused) by the connection's thread, as without an applier: nothing is written."""
    link = Linked(make_log, 3)
    link.now += 1
    out = bytearray(link.session.receive(link.to_leader, link.now))
    (resp,) = frames(bytes(out))
    raw = bytes(resp.partitions[0].batches[0])
    at = bytes(out).index(raw) + len(raw) - 1
    out[at] ^= 0xFF  # a byte of the batch's last record
    # (the frame's checksum must still match: recompute it over the damaged payload)
    length, _ = HEADER.unpack_from(out, 0)
    out[:HEADER.size] = HEADER.pack(length, _crc32(bytes(out[HEADER.size:]), _crc32(out[:4])))
    with pytest.raises(ProtocolError, match="corrupt"):
        link.follower.receive(bytes(out), link.now)
    assert link.jobs == []
    assert state(link.lb).end_offset == 1


def test_checksums_match_checks_every_batch(make_log: Any) -> None:
    link = Linked(make_log, 2)
    link.now += 1
    (resp,) = frames(link.session.receive(link.to_leader, link.now))
    assert replication._checksums_match(resp)
    raw = bytearray(resp.partitions[0].batches[0])
    raw[-1] ^= 1
    pd = resp.partitions[0]
    bad = FetchResponse(resp.correlation_id, resp.leader_epoch, resp.in_sync, None, None,
                        (type(pd)(pd.topic_id, pd.partition, pd.error, pd.high_watermark, pd.log_start_offset,
                                  pd.end_offset, None, (bytes(raw),)),))
    assert not replication._checksums_match(bad)
    with pytest.raises(codec.CorruptBatchError):
        codec.verify(bytes(raw))


def test_a_disconnect_waits_for_the_apply_under_way_and_drops_the_rest(make_log: Any) -> None:
    gate = threading.Event()
    applier = replication._Applier()
    real_apply = FollowerCore._apply
    applied: list[int] = []
    under_way = threading.Event()

    def held(self: FollowerCore, resp: FetchResponse, *args: Any, **kw: Any) -> Any:
        under_way.set()
        gate.wait(harness.TIMEOUT)
        applied.append(resp.correlation_id)
        return real_apply(self, resp, *args, **kw)

    try:
        link = Linked(make_log, 4, applier=applier.submit)
        link.follower._apply = held.__get__(link.follower)  # type: ignore[method-assign]
        link.exchange()
        link.exchange()
        assert len(link.follower._behind) == 2
        assert under_way.wait(harness.TIMEOUT)  # the first apply has begun (and is held)
        done = threading.Event()
        t = threading.Thread(target=lambda: (link.follower.disconnect(), done.set()), daemon=True)
        t.start()
        harness.wait_until(lambda: all(j.cancelled for j in link.follower._behind) or done.is_set(),
                           "the disconnect cancelled what waits")
        assert not done.is_set()  # the first apply is under way (held): the disconnect waits for it
        gate.set()
        assert done.wait(harness.TIMEOUT)
        assert len(applied) == 1  # the second was dropped, never applied
        assert state(link.lb).end_offset == 2
        assert link.follower.conn is None
    finally:
        gate.set()
        applier.close()


# -- the applier thread ------------------------------------------------------------------------------
def test_the_applier_runs_jobs_in_order_and_wakes_once_it_has_nothing_left() -> None:
    applier = replication._Applier()
    wakes: list[list[int]] = []
    ran: list[int] = []
    applier.wake = lambda: wakes.append(list(ran))
    gate = threading.Event()
    try:
        applier.submit(lambda: (gate.wait(harness.TIMEOUT), ran.append(0)))
        applier.submit(lambda: ran.append(1))
        applier.submit(lambda: ran.append(2))
        gate.set()
        harness.wait_until(lambda: len(wakes) == 1, "the wake-up")
        assert ran == [0, 1, 2]
        assert wakes == [[0, 1, 2]]  # not after each: the next apply went on at once
    finally:
        applier.close()
    with pytest.raises(RuntimeError):
        applier.submit(lambda: None)


# -- over sockets -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tls", [False, True])
def test_a_new_follower_catches_up_applying_behind_its_connection(make_log: Any, tmp_path: Path,
                                                                  tls: bool) -> None:
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t", 2)
    harness.fill_for_catch_up(la)
    certs = pki.make_pki(tmp_path / "pki") if tls else None
    with Leader(la, secret=SECRET, ssl_context=certs and pki.server_context(certs)) as leader, \
            Follower(lb, leader.address, secret=SECRET, ssl_context=certs and pki.client_context(certs),
                     max_bytes=256 << 10) as follower:
        follower.wait_connected(30)
        replcheck.wait_converged(la, lb)
        assert follower.core.applied_behind > 1
        # every response was acknowledged: the follower is in sync and holds everything
        harness.wait_until(lambda: leader.status()["followers"][follower.core.node_id]["in_sync"], "in sync")
        harness.wait_until(lambda: leader.status()["followers"][follower.core.node_id]["total_lag"] == 0, "no lag")
        assert follower.status()["connections"] == 1  # no damaged frame, no reconnect
        assert follower.error is None
        # and it keeps following: new records arrive as before
        with la.producer(acks="all") as p:
            p.send("t", b"after", key=b"k0")
        replcheck.wait_converged(la, lb)
    assert replcheck.image(lb) == replcheck.image(la)


def test_a_lost_response_is_asked_again_from_what_was_applied(make_log: Any) -> None:
    """The request timeout asks again from what is stored: after everything handed over
    was applied (and acknowledged), not from before it."""
    gate = threading.Event()
    started = threading.Event()

    class Waiting(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            started.set()
            return super().wait(timeout)

    def applier(job: Any) -> None:
        threading.Thread(target=lambda: (gate.wait(harness.TIMEOUT), job()), daemon=True).start()

    link = Linked(make_log, 3, applier=applier)
    link.follower._behind_cond = Waiting()
    (fetch,) = link.exchange()  # handed over (held), its early fetch from 2 goes unanswered
    assert fetch.partitions[0].fetch_offset == 2
    out: list[bytes] = []
    later = link.now + replication.DEFAULT_REQUEST_TIMEOUT_MS + 1
    t = threading.Thread(target=lambda: out.append(link.follower.poll(later)), daemon=True)
    t.start()
    assert started.wait(harness.TIMEOUT)  # the timeout waits for the apply handed over
    gate.set()
    t.join(harness.TIMEOUT)
    assert not t.is_alive()
    msgs = frames(out[0])
    assert [type(m) for m in msgs] == [Ack, FetchRequest]
    assert ack_end(msgs[0]) == 2
    assert msgs[1].partitions[0].fetch_offset == 2
    assert state(link.lb).end_offset == 2


def test_the_next_fetch_comes_from_what_was_handed_over_or_not_at_all(make_log: Any) -> None:
    link = Linked(make_log, 2)
    link.now += 1
    (resp,) = frames(link.session.receive(link.to_leader, link.now))
    tid = link.la.describe_topic("t").topic_id
    pipelined = link.follower._pipelined_request
    # from the store: it ends at 1, the response starts there
    req = link.lb._store.read(lambda txn: pipelined(txn, resp))
    assert req is not None
    assert req.partitions[0].fetch_offset == 2
    # from what was handed over: there the response does not start at 5
    assert link.lb._store.read(lambda txn: pipelined(txn, resp, ahead={(tid, 0): (5, 0)})) is None
    # a partition missing from it (not expected): no early fetch
    assert link.lb._store.read(lambda txn: pipelined(txn, resp, ahead={})) is None


def test_a_follower_closed_while_catching_up_resumes_from_what_it_applied(make_log: Any) -> None:
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t")
    fill(la, 150)  # ~3 MB: a dozen responses of 256 KiB
    with Leader(la, secret=SECRET) as leader:
        with Follower(lb, leader.address, secret=SECRET, max_bytes=256 << 10) as follower:
            harness.wait_until(lambda: follower.core.applied_behind >= 2, "applies behind the connection")
        assert follower._applier is not None
        assert not follower._applier._thread.is_alive()
        held = state(lb).end_offset
        assert held > 0
        with Follower(lb, leader.address, secret=SECRET, max_bytes=256 << 10):
            replcheck.wait_converged(la, lb)
    assert replcheck.image(lb) == replcheck.image(la)


def _held(log: Log) -> tuple[int, set[tuple[int, Any, Any]]]:
    """A compacted topic's end offset and every (offset, key, value) a consumer reads."""
    end = log.describe_topic("c").partitions[0].end_offset
    with log.consumer(["c"], auto_offset_reset="earliest") as c:
        return end, {(m.offset, m.key, m.value) for m in harness.drain(c)}


@pytest.mark.parametrize("when", ["before_following", "while_away"])
def test_a_follower_catches_up_across_the_gaps_compaction_left(make_log: Any, when: str) -> None:
    """Compaction removes whole batches: the leader's next batch after a follower's end
    may start later.  The follower keeps the leader's offsets, gap included (it kept
    reconnecting for ever: 'batch ... starts at offset 80; the partition ends at 0').
    Each node compacts on its own, as Kafka's replicas do, so the follower holds at
    least what the leader holds, at the same offsets, and ends where it ends."""
    la, lb = make_log("a"), make_log("b")
    la.create_topic("c", config={"cleanup.policy": "compact", "min.compaction.lag.ms": 0})

    def rounds(n: int, tag: bytes) -> None:
        with la.producer() as p:
            for r in range(n):
                for k in range(20):
                    p.send("c", b"%s%d-%d" % (tag, r, k), key=b"k%d" % k)
                p.flush()

    def caught_up() -> bool:
        end, held = _held(la)
        f_end, f_held = _held(lb) if "c" in lb.topics() else (-1, set())
        return f_end == end and held <= f_held

    if when == "before_following":
        rounds(5, b"v")
        la.maintain()
        assert la.describe_topic("c").partitions[0].start_offset == 0
        held = _held(la)[1]
        assert held
        assert min(o for o, _, _ in held) > 0  # (a gap from offset 0)
    with Leader(la, secret=SECRET) as leader:
        if when == "while_away":
            with Follower(lb, leader.address, secret=SECRET) as follower:
                follower.wait_connected(30)
                rounds(1, b"w")
                harness.wait_until(caught_up, "caught up before going away")
            rounds(5, b"v")  # the follower is away: these are compacted before it returns
            la.maintain()
        with Follower(lb, leader.address, secret=SECRET) as follower:
            follower.wait_connected(30)
            harness.wait_until(caught_up, "caught up across the gap")
            with la.producer(acks="all") as p:
                p.send("c", b"new", key=b"k1")
            harness.wait_until(caught_up, "the next record replicated")
            assert follower.error is None
            assert follower.status()["connections"] == 1  # no failed apply, no reconnect
