"""The short paths of an ``acks="all"`` round trip keep every replication guarantee: a
caught-up follower's next fetch parks without a look at the log (and is answered by the
next commit), a small response is applied before the next fetch goes out, the ticker
answers parked fetches itself (large responses through the connection's thread), the
producer checks ``min.insync.replicas`` against this process's leader, the leader
writes high watermarks after the next commit and at most once per ``hw_persist_ms``, and
a follower reads the next response while it applies a large one (``Prefetch``)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import replication
from embedlog.errors import NotEnoughReplicasError
from embedlog.net import client, server
from embedlog.net.common import Waker
from embedlog.protocol import Ack, FetchRequest, FetchResponse
from embedlog.protocol.errors import FrameError
from embedlog.protocol.frames import FrameDecoder, encode_frame
from embedlog.replication import Follower, FollowerCore, FollowerProgress, Leader, LeaderCore
from embedlog.storage import replica
from procs import harness, pki, replcheck  # tests/procs/ (tests/ is on sys.path)
from procs.harness import frames  # tests/procs/harness.py (tests/ is on sys.path)
from procs.harness import partition_state as state

Log = embedlog.Log
SECRET = b"shared-secret-for-tests"


def send(log: Log, value: bytes, topic: str = "t") -> None:
    with log.producer() as p:
        p.send(topic, value)


class Looks:
    """Counts the leader's reads of batches (a full look at the log for a fetch)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = replica.read_merged

        def counted(*args: Any, **kw: Any) -> Any:
            self.n += 1
            return real(*args, **kw)

        monkeypatch.setattr(replica, "read_merged", counted)


def caught_up(make_log: Any, **leader: Any) -> tuple[Log, Log, LeaderCore, Any, FollowerCore, int]:
    """A leader core and an in-sync follower core that holds the leader's one record
    (``x``) and its high watermark; returns them, the session and the time."""
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t")
    send(la, b"x")
    core = LeaderCore(la._store, secret=None, now_ms=1000, replica_lag_time_max_ms=10**9, **leader)
    follower = FollowerCore(lb._store, secret=None, pipeline_min_bytes=replication.PIPELINE_MIN_BYTES)  # as Follower
    now = 1000
    session = core.session(now, "mem")
    to_leader = follower.connect(now)
    for _ in range(100):  # (the high watermark follows the records after HW_ONLY_DELAY_MS)
        now += 10
        out = (session.receive(to_leader, now) if to_leader else b"") + session.poll(now)
        to_leader = (follower.receive(out, now) if out else b"") + follower.poll(now)
        if not to_leader and session.parked is not None and "t" in lb.topics() and \
                state(lb, "t").high_watermark == 1:
            break
    assert core.in_sync_ids() == (follower.node_id,)
    assert (state(lb, "t").end_offset, state(lb, "t").high_watermark) == (1, 1)
    return la, lb, core, session, follower, now


# -- the leader: a caught-up follower's fetch parks without a look ---------------------------------
def test_the_next_fetch_of_a_caught_up_follower_parks_without_a_look(make_log: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    la, lb, core, session, follower, now = caught_up(make_log, hw_persist_ms=0)
    looks = Looks(monkeypatch)
    send(la, b"y")
    now += 1
    out = session.poll(now)  # the parked fetch: a commit came, so the leader looks
    assert looks.n == 1
    (resp,) = frames(out)
    assert isinstance(resp, FetchResponse)
    assert len(resp.partitions[0].batches) == 1
    back = follower.receive(out, now)
    assert [type(m) for m in frames(back)] == [Ack, FetchRequest]  # applied first: small response
    assert follower.pipelined == 0
    # The Ack moves the high watermark (written at once: hw_persist_ms=0), then the next
    # fetch asks from the end of everything the leader holds: it parks with no look.
    assert session.receive(back, now) == b""
    assert looks.n == 1
    assert session.parked is not None
    assert core.hw[(la.describe_topic("t").topic_id, 0)] == 2
    assert state(la, "t").high_watermark == 2
    # Only the stored high watermark moved since: it goes out alone after HW_ONLY_DELAY_MS.
    assert session.poll(now + 1) == b""
    assert looks.n == 1
    now += replication.HW_ONLY_DELAY_MS + 1
    out = session.poll(now)
    (resp,) = frames(out)
    assert resp.partitions[0].batches == ()
    assert resp.partitions[0].high_watermark == 2
    back = follower.receive(out, now)
    assert state(lb, "t").high_watermark == 2
    assert session.receive(back, now) == b""  # its next fetch parks, again with no look
    assert looks.n == 2
    # A commit after a quiet park is answered, with the records.
    send(la, b"z")
    now += 1
    (resp,) = frames(out := session.poll(now))
    assert len(resp.partitions[0].batches) == 1
    follower.receive(out, now)
    assert state(lb, "t").end_offset == 3
    core.stop()


def test_a_fetch_that_is_not_at_the_end_is_answered(make_log: Any) -> None:
    """The short path needs the fetch to ask from where the last response left it: a
    follower that asks again from further back (a response lost) gets the records."""
    la, lb, core, session, follower, now = caught_up(make_log)
    send(la, b"y")
    now += 1
    out = session.poll(now)
    assert len(frames(out)[0].partitions[0].batches) == 1
    # the response is lost: the follower asks again once its request timed out
    now += replication.DEFAULT_REQUEST_TIMEOUT_MS + 1
    again = follower.poll(now)
    (req,) = frames(again)
    assert isinstance(req, FetchRequest)
    assert req.partitions[0].fetch_offset == 1
    out = session.receive(again, now)
    (resp,) = frames(out)
    assert [bytes(b) for b in resp.partitions[0].batches] != []
    follower.receive(out, now)
    assert state(lb, "t").end_offset == 2
    core.stop()


# -- the follower: small responses are applied before the next fetch -------------------------------
@pytest.mark.parametrize(("threshold", "early"), [(1 << 20, False), (1, True)])
def test_only_large_responses_are_answered_before_they_are_applied(make_log: Any, threshold: int,
                                                                  early: bool) -> None:
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t")
    core = LeaderCore(la._store, secret=None, now_ms=0)
    follower = FollowerCore(lb._store, secret=None, pipeline_min_bytes=threshold)
    session = core.session(0)
    out = follower.receive(session.receive(follower.connect(0), 0), 0)  # proof, first fetch
    out = follower.receive(session.receive(out, 0), 0)  # the topic: applied, then the fetch
    send(la, b"v" * 1000)
    response = session.receive(out, 0) or session.poll(1)
    flushed: list[bytes] = []
    rest = follower.receive(response, 1, flushed.append)
    assert follower.pipelined == int(early)
    if early:
        assert [type(m) for m in frames(flushed[0])] == [FetchRequest]
        assert [type(m) for m in frames(rest)] == [Ack]
    else:
        assert flushed == []
        assert [type(m) for m in frames(rest)] == [Ack, FetchRequest]
    assert state(lb, "t").end_offset == 1
    core.stop()


# -- the producer: min.insync.replicas against this process's leader -------------------------------
def test_acks_all_checks_the_in_sync_set_this_processs_leader_published(log: Log) -> None:
    log.create_topic("t", 1, {"min.insync.replicas": 2})
    core = LeaderCore(log._store, secret=None, now_ms=0, replica_lag_time_max_ms=10**9)
    p = log.producer(acks="all", delivery_timeout_ms=60_000)
    p.send("t", b"x")
    with pytest.raises(NotEnoughReplicasError):
        p.flush()
    assert len(p) == 1  # not written
    tp = (log.describe_topic("t").topic_id, 0)
    core.followers["ghost"] = FollowerProgress("ghost", in_sync=True, last_caught_up_ms=0)
    core.update(0)
    board = replica.hw_board(log._store)
    assert board is not None
    assert board.isr_size == 2
    done = threading.Event()

    def flush() -> None:
        p.flush()
        done.set()

    t = threading.Thread(target=flush, daemon=True)
    t.start()
    harness.wait_until(lambda: state(log, "t").end_offset == 1, "the record written")
    assert not done.wait(0.2)  # the ghost has not acknowledged it
    core.followers["ghost"].durable[tp] = 1
    core._acked = True
    core.update(1)
    assert done.wait(30)
    t.join(30)
    core.stop()


# -- the socket layer: the ticker answers parked fetches --------------------------------------------
@pytest.mark.parametrize("push_max", [0, None])
def test_parked_fetches_are_answered_by_the_ticker_or_the_connection(make_log: Any, monkeypatch: pytest.MonkeyPatch,
                                                                    push_max: int | None) -> None:
    """Small responses go out from the ticker, large ones (all of them with a limit of
    0) through the connection's thread; either way every acks="all" flush returns with
    the record on the follower."""
    if push_max is not None:
        monkeypatch.setattr(server, "_PUSH_MAX", push_max)
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t")
    with Leader(la, secret=SECRET) as leader, Follower(lb, f"127.0.0.1:{leader.address[1]}", secret=SECRET) as f:
        f.wait_connected(30)
        harness.wait_until(lambda: leader.status()["isr"] == [f.core.node_id], "the follower in sync")
        with la.producer(acks="all", delivery_timeout_ms=60_000) as p:
            for i, size in enumerate([10, 10, 300_000, 10, 600_000, 10]):
                p.send("t", b"%d" % i * size)
                p.flush()
                assert state(lb, "t").end_offset == i + 1
    assert [m.value for m in _read_all(la)] == [b"%d" % i * size for i, size in
                                                enumerate([10, 10, 300_000, 10, 600_000, 10])]
    assert _batches(lb) == _batches(la)


def _read_all(log: Log) -> list[Any]:
    c = log.consumer(["t"], auto_offset_reset="earliest", max_poll_records=100)
    got: list[Any] = []
    while batch := c.poll(timeout=0.5):
        got.extend(batch)
    c.close()
    return got


def _batches(log: Log) -> list[bytes]:
    store = log._store
    tid = log.describe_topic("t").topic_id
    merged = store.read(lambda txn: replica.read_merged(txn, store.dbs, [(tid, 0, 0)], 1 << 30))
    return [bytes(b) for b in merged.batches[(tid, 0)]]


# -- the leader's writer: after the next commit, at most once per hw_persist_ms ----------------------
def test_high_watermarks_are_stored_soon_without_a_next_commit(make_log: Any, tmp_path: Path) -> None:
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t")
    with Leader(la, secret=SECRET) as leader, Follower(lb, f"127.0.0.1:{leader.address[1]}", secret=SECRET) as f:
        f.wait_connected(30)
        with la.producer(acks="all", delivery_timeout_ms=60_000) as p:
            for i in range(5):
                p.send("t", b"%d" % i)
                p.flush()
        # no commit follows: the writer stores the last high watermark anyway
        harness.wait_until(lambda: state(la, "t").high_watermark == 5 and leader.core.store_due(10**12) is None,
                           "the high watermark stored")


# -- frames: a large frame received straight into its buffer ------------------------------------------
def _recv_into_all(dec: FrameDecoder, data: bytes, step: int) -> list[bytes | bytearray]:
    """Deliver ``data`` as a socket would, ``step`` bytes at a time: into the large
    frame's buffer when the decoder offers one, else through ``feed``."""
    out: list[bytes | bytearray] = []
    pos = 0
    while pos < len(data):
        into = dec.recv_buffer()
        if into is not None:
            n = min(step, len(into), len(data) - pos)
            into[:n] = data[pos:pos + n]
            into.release()
            out.extend(dec.received(n))
        else:
            n = min(step, len(data) - pos)
            out.extend(dec.feed(data[pos:pos + n]))
        pos += n
    return out


@pytest.mark.parametrize("step", [1, 7, 4096, 100_003, 1 << 30])
def test_a_large_frame_is_received_into_its_own_buffer(step: int) -> None:
    large = bytes(range(256)) * 1000
    data = encode_frame(b"a") + encode_frame(large) + encode_frame(b"bc") + encode_frame(large)
    dec = FrameDecoder(big=1000)
    assert _recv_into_all(dec, data, step) == [b"a", large, b"bc", large]
    assert dec.pending == 0
    assert dec.recv_buffer() is None


def test_a_damaged_large_frame_received_into_its_buffer_is_refused() -> None:
    large = bytes(range(256)) * 1000
    damaged = bytearray(encode_frame(large))
    damaged[-1] ^= 1
    dec = FrameDecoder(big=1000)
    assert dec.feed(damaged[:5000]) == []
    assert dec.pending == 5000
    into = dec.recv_buffer()
    assert into is not None
    with pytest.raises(ValueError, match="does not fit"):
        dec.received(len(into) + 1)
    into[:] = damaged[5000:]
    with pytest.raises(FrameError, match="checksum"):
        dec.received(len(into))
    assert dec.recv_buffer() is None  # dead after an error
    with pytest.raises(FrameError):
        dec.feed(encode_frame(b"x"))


# -- the lease: one this process holds is known without a system call ----------------------------------
def test_a_lease_this_process_holds_is_live_without_probing_the_file(log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    path = log._store.path
    lease = replica.LeaderLease(path)
    probes: list[str] = []
    real_flock = replica.fcntl.flock

    def flock(fd: int, op: int) -> None:
        probes.append("flock")
        real_flock(fd, op)

    dbs = log._store.dbs
    log._store.write(lambda txn: replica.set_replicating(txn, dbs, True))
    monkeypatch.setattr(replica.fcntl, "flock", flock)
    assert replica.lease_live(path)
    assert log._store.write(lambda txn: replica.leader_manages_hw(txn, dbs, path))  # what appends ask
    assert probes == []
    lease.release()
    assert not replica.lease_live(path)  # released: the file is probed (and nobody holds it)
    assert probes != []
    assert log._store.write(lambda txn: replica.leader_manages_hw(txn, dbs, path))  # a dead leader's flag holds


class _StubSession:
    """A session with a parked fetch whose answer is ``data``."""

    def __init__(self, data: bytes) -> None:
        self.parked: object | None = object()
        self.closed = False
        self.data = data

    def poll(self, now_ms: int) -> bytes:
        self.parked = None
        return self.data


def test_a_push_never_waits_for_a_follower_that_does_not_read() -> None:
    """The ticker, or a producer that just committed, answers a parked fetch without
    waiting: what the socket does not take at once goes to the connection's thread."""
    a, b = socket.socketpair()
    a.settimeout(30)
    waker = Waker()
    try:
        a.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:  # the follower stopped reading: the socket is full
                a.send(b"x" * 65536)
        a.settimeout(30)
        data = b"r" * 100_000
        c = server._Conn(a, _StubSession(data), waker)  # type: ignore[arg-type]
        t0 = time.monotonic()
        server.LeaderServer._push(c)
        assert time.monotonic() - t0 < 20  # (a push that waited would wait for the 30 s socket timeout)
        assert b"".join(c.outbox) == data  # for the connection's thread, which it woke
        assert select.select([waker.fileno()], [], [], 0)[0]  # woken
        assert not c.lock.locked()
    finally:
        a.close()
        b.close()
        waker.close()


# -- the follower: what comes next is read while a large response is applied ------------------------
def test_prefetch_hands_over_what_it_read_in_order_then_the_end() -> None:
    a, b = socket.socketpair()
    fetch = client.Prefetch(b)
    try:
        assert fetch.stop() == []  # never started: nothing, at once
        assert fetch.failure() is None
        a.sendall(b"one")
        a.sendall(b"two")
        a.close()
        fetch.start()
        harness.wait_until(lambda: fetch.failure() is not None, "the prefetch to read up to the end")
        assert b"".join(fetch.stop()) == b"onetwo"
        assert isinstance(fetch.failure(), ConnectionError)
        assert fetch.stop() == []
    finally:
        fetch.close()
        b.close()


def test_a_stopped_prefetch_leaves_the_socket_alone() -> None:
    a, b = socket.socketpair()
    fetch = client.Prefetch(b)
    try:
        fetch.start()
        assert fetch.stop() == []
        a.sendall(b"for the connection's thread")
        assert select.select([b], [], [], 10)[0] == [b]
        time.sleep(0.05)  # (a prefetch thread still reading would take the bytes meanwhile)
        assert b.recv(100) == b"for the connection's thread"
        assert fetch.stop() == []
        assert fetch.failure() is None
    finally:
        fetch.close()
        a.close()
        b.close()


@pytest.mark.parametrize("tls", [False, True])
def test_a_follower_reads_the_next_response_while_it_applies_one(make_log: Any, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path, tls: bool) -> None:
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t", 2)
    harness.fill_for_catch_up(la)
    started: list[client.Prefetch] = []
    real_start, real_apply = client.Prefetch.start, FollowerCore._on_response

    def start(self: client.Prefetch) -> None:
        started.append(self)
        real_start(self)

    ends = la._store.read(lambda txn: {(t, p): st.end_offset
                                       for t, p, st in replica.all_partitions(txn, la._store.dbs)})
    overlapped: list[int] = []  # applies during which the prefetch read part of the next response
    missed: list[str] = []

    def on_response(self: FollowerCore, resp: FetchResponse, sent: FetchRequest | None, *rest: Any) -> FetchRequest:
        # An apply of a large response, its early fetch already sent: when the leader
        # holds more than this response (it answers that fetch at once, >= 30 kB), hold
        # the apply until part of the answer arrived meanwhile.  (No short timeout: on a
        # loaded machine the leader may take a while; a timeout alone left the test to
        # chance.  At the end, with nothing more, the early fetch parks: no wait.)
        if sent is not None and started and any(
                fp.fetch_offset < ends.get((fp.topic_id, fp.partition), 0) for fp in sent.partitions):
            fetch = started[-1]
            try:
                harness.wait_until(lambda: len(fetch._chunks) >= 3 or fetch._eof or fetch._error is not None,
                                   "the next response", timeout=harness.TIMEOUT / 2)
            except AssertionError as exc:  # (not raised in the follower's thread: reported below)
                missed.append(str(exc))
            if len(fetch._chunks) >= 3:
                overlapped.append(len(fetch._chunks))
            else:
                missed.append(f"the prefetch ended with {len(fetch._chunks)} chunks: {fetch.failure()!r}")
        return real_apply(self, resp, sent, *rest)

    monkeypatch.setattr(client, "recv", lambda sock: sock.recv(4096))  # (in pieces: their order matters)
    # (the path without an applier thread: test_replication_catchup.py covers the one with)
    monkeypatch.setattr(replication, "APPLY_BEHIND", False)
    monkeypatch.setattr(client.Prefetch, "start", start)
    monkeypatch.setattr(FollowerCore, "_on_response", on_response)
    certs = pki.make_pki(tmp_path / "pki") if tls else None  # (TLS: one thread at a time on the SSL socket)
    with Leader(la, secret=SECRET, ssl_context=certs and pki.server_context(certs)) as leader, \
            Follower(lb, leader.address, secret=SECRET, ssl_context=certs and pki.client_context(certs),
                     max_bytes=256 << 10) as follower:
        follower.wait_connected(30)
        replcheck.wait_converged(la, lb)
        assert follower.core.pipelined > 1
        assert not missed, missed
        assert overlapped  # the leader held more than the first pipelined response
        assert follower._client.prefetched > 0  # fed to the core after the apply, in order:
        assert follower.status()["connections"] == 1  # no damaged frame, no reconnect
        assert follower.status()["connected"]
        assert follower.error is None
