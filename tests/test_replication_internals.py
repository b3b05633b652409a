"""Replication semantics below the socket layer: the leader lease behind the
``replicating`` flag (a leader killed with kill -9), retention and compaction against
the high watermark, lazily stored high watermarks published to this process first,
transactions with ``acks="all"``, and the warning of an unclean promotion."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import lmdb
import pytest

import embedlog
from embedlog import TopicPartition, replication
from embedlog.errors import TimeoutError as EmbedlogTimeoutError
from embedlog.errors import TransactionAbortedError, UncleanPromotionWarning, UnrelatedLogError
from embedlog.net.common import monotonic_ms
from embedlog.replication import (
    Follower,
    FollowerCore,
    FollowerProgress,
    Leader,
    LeaderCore,
    promote,
    replication_status,
)
from embedlog.storage import compaction, replica, schema
from embedlog.storage import partition as plog
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)
from procs.harness import partition_state as state  # tests/procs/harness.py

Log = embedlog.Log
SECRET = "shared-secret-for-tests"


# -- helpers ---------------------------------------------------------------------------------------
def read(log: Log, fn: Any) -> Any:
    store = log._store
    return store.read(lambda txn: fn(txn, store.dbs))


def raw_flag(log: Log) -> bytes | None:
    raw = read(log, lambda txn, dbs: txn.get(schema.META_REPLICATING, db=dbs["meta"]))
    return None if raw is None else bytes(raw)


def visible(log: Log, topic: str) -> list[bytes | None]:
    c = log.consumer([topic], auto_offset_reset="earliest", max_poll_records=100_000)
    out = []
    while batch := c.poll(timeout=0.1):
        out.extend(m.value for m in batch)
    c.close()
    return out


def core_on(log: Log, **options: Any) -> LeaderCore:
    options.setdefault("replica_lag_time_max_ms", 10**9)
    return LeaderCore(log._store, secret=b"secret-secret", now_ms=0, **options)


def hold(core: LeaderCore, log: Log, topic: str, durable: int, now: int = 0, part: int = 0) -> None:
    """An in-sync follower ("ghost") that holds ``durable`` records of the partition:
    the leader's high watermark cannot pass it."""
    tp = (log.describe_topic(topic).topic_id, part)
    ghost = core.followers.setdefault("ghost", FollowerProgress("ghost", in_sync=True, last_caught_up_ms=now))
    ghost.durable[tp] = durable
    core._acked = True
    core.update(now)


class Pipe:
    """A leader core and a follower core wired directly (no faults), on simulated time."""

    def __init__(self, leader: LeaderCore, follower: FollowerCore) -> None:
        self.now = 1000
        self.session = leader.session(self.now, "mem")
        self.follower = follower
        self.to_leader = follower.connect(self.now)

    def step(self) -> None:
        self.now += 10
        out = self.session.receive(self.to_leader, self.now) if self.to_leader else b""
        out += self.session.poll(self.now)
        back = self.follower.receive(out, self.now) if out else b""
        self.to_leader = back + self.follower.poll(self.now)


def start_leader(children: Any, path: Path) -> Any:
    node = children.start("replica_node.py", "leader", path, "--secret", SECRET, stdin=True)
    line = node.wait_for(lambda ln: "ready" in ln or "error" in ln)
    assert "ready" in line, node.describe()
    return node


# == 1. the replicating flag is a lease ==============================================================
def test_the_lease_is_held_while_a_leader_core_runs(log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    path = log._store.path
    assert not replica.lease_live(path)
    core = core_on(log)
    assert replica.lease_live(path)
    assert read(log, lambda txn, dbs: replica.is_replicating(txn, dbs, path))
    monkeypatch.setattr(replica, "_LEASE_WAIT_S", 0.05)
    with pytest.raises(replica.ReplicationBusyError, match="stop it first"):
        LeaderCore(log._store, secret=None, now_ms=0)
    assert log._store.write(lambda txn: replica.leader_manages_hw(txn, log._store.dbs, path))
    core.stop()
    assert not replica.lease_live(path)
    assert raw_flag(log) == b"0"
    assert not log._store.write(lambda txn: replica.leader_manages_hw(txn, log._store.dbs, path))


def test_a_forked_child_does_not_keep_a_dead_leaders_lease(tmp_path: Path) -> None:
    code = ("import os, sys, time\n"
            "from embedlog.replication import _DirLock\n"
            "from embedlog.storage import replica\n"
            "lease = replica.LeaderLease(sys.argv[1])\n"
            "lock = _DirLock(sys.argv[1], 'run a Leader')\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    devnull = os.open(os.devnull, os.O_RDWR)\n"
            "    for fd in (0, 1, 2):\n"
            "        os.dup2(devnull, fd)\n"
            "    time.sleep(60)\n"
            "    os._exit(0)\n"
            "print(pid, flush=True)\n"
            "os.kill(os.getpid(), 9)\n")
    proc = harness.subprocess.run([harness.sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                                  text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    child = int(proc.stdout.split()[0])
    try:
        os.kill(child, 0)  # the leader's forked child still runs...
        assert not replica.lease_live(str(tmp_path))  # ...and the lease died with the leader
        replication._DirLock(str(tmp_path), "run a Leader").release()  # so did its directory lock
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_dead_leaders_flag_keeps_new_records_hidden(log: Log) -> None:
    """A leader that died without stopping (its lease free) leaves its flag, and it holds:
    records appended meanwhile stay above the high watermark, so no consumer sees a record
    the in-sync follower may lack (a failover to it would take the record back), even
    through retention; readers count the in-sync set as this node alone."""
    log.create_topic("t", config={"retention.ms": 1})
    path = log._store.path
    core = core_on(log)
    hold(core, log, "t", 0)
    with log.producer() as p:
        p.send("t", b"x")
    core.lease.release()  # what the kernel does when the leader's process dies
    assert raw_flag(log) == b"1"
    assert not read(log, lambda txn, dbs: replica.is_replicating(txn, dbs, path))
    assert read(log, lambda txn, dbs: replica.in_sync_size(txn, dbs, path)) == 1
    assert log._store.write(lambda txn: replica.leader_manages_hw(txn, log._store.dbs, path))
    with log.producer() as p:
        p.send("t", b"y")
    time.sleep(0.01)
    log.maintain()
    assert raw_flag(log) == b"1"
    assert state(log, "t").high_watermark == 0
    assert visible(log, "t") == []
    st = replication_status(log)
    stored = read(log, replica.get_isr)
    assert (st["replicating"], st["stale_lease"]) == (True, True)
    # what the dead leader last recorded: the followers that hold everything it acknowledged
    assert (st["isr"], st["isr_size"]) == (list(stored["isr"]), stored["size"])
    core.abandon()


def test_a_leader_killed_with_kill_9_hides_new_records_until_a_leader_runs_again(
        tmp_path: Path, children: Any) -> None:
    a = tmp_path / "a"
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        log.create_topic("t")
    node = start_leader(children, a)
    with embedlog.open(a, maintenance_interval_ms=None) as la:
        st = replication_status(la)
        assert (st["replicating"], st["stale_lease"]) == (True, False)  # the leader's process holds the lease
        node.kill()  # kill -9: the lease goes with the process, the flag stays
        st = replication_status(la)
        assert (st["replicating"], st["stale_lease"]) == (True, True)
        la.maintain()
        with la.producer() as p:
            p.send("t", b"after the leader died")
        la.maintain()
        assert raw_flag(la) == b"1"
        assert visible(la, "t") == []
        with Leader(la, listen="127.0.0.1:0", insecure=True):  # no followers: it alone is the in-sync set
            deadline = time.monotonic() + harness.TIMEOUT
            while visible(la, "t") != [b"after the leader died"]:
                assert time.monotonic() < deadline, "a Leader running again shows the records"
                time.sleep(0.02)
        assert raw_flag(la) == b"0"  # its clean stop handed the directory back to plain appends
        with la.producer() as p:
            p.send("t", b"plain")
        assert visible(la, "t") == [b"after the leader died", b"plain"]


def test_appends_stop_showing_records_once_a_leader_alone_is_killed(tmp_path: Path, children: Any) -> None:
    """A leader alone in its in-sync set: this process's appends move the high
    watermark themselves while it lives.  Killed, its records must stay hidden from the
    very next append — which starts from what the previous one read (no LMDB reads),
    and kept moving the high watermark until another process happened to write."""
    a = tmp_path / "a"
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        log.create_topic("t")
    node = start_leader(children, a)
    with embedlog.open(a, maintenance_interval_ms=None) as la, la.producer() as p:
        p.send("t", b"while it lives")
        p.flush()
        assert visible(la, "t") == [b"while it lives"]  # (alone: at once)
        node.kill()
        for i in range(3):
            p.send("t", b"after %d" % i)
            p.flush()
            assert visible(la, "t") == [b"while it lives"]


def test_acks_all_after_a_leader_killed_with_kill_9_times_out_naming_the_dead_leader(
        tmp_path: Path, children: Any) -> None:
    a = tmp_path / "a"
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        log.create_topic("t")
    start_leader(children, a).kill()
    with embedlog.open(a, maintenance_interval_ms=None) as la:
        assert raw_flag(la) == b"1"
        p = la.producer(acks="all", delivery_timeout_ms=300)
        p.send("t", b"x")
        with pytest.raises(EmbedlogTimeoutError, match="no replication Leader runs"):
            p.flush()
        p.close()
        assert raw_flag(la) == b"1"
        assert visible(la, "t") == []
        assert la.describe_topic("t").partitions[0].end_offset == 1  # written, hidden


def test_appends_keep_hiding_records_when_their_leader_dies_between_two_of_them(log: Log) -> None:
    """The lease is not in LMDB, and appends do not ask it: one carrying "a leader
    manages the high watermarks" over from the previous transaction (the append memo)
    decides as one that reads the flag afresh."""
    log.create_topic("t")
    core = core_on(log)
    hold(core, log, "t", 0)
    p = log.producer()
    p.send("t", b"a")
    p.flush()
    assert state(log, "t").high_watermark == 0
    core.lease.release()  # the leader's process dies: no transaction in between
    p.send("t", b"b")
    p.flush()
    assert raw_flag(log) == b"1"
    assert state(log, "t").high_watermark == 0
    assert visible(log, "t") == []
    p.close()
    core.abandon()


# == 2. retention and compaction stop at the high watermark ============================================
def test_retention_never_moves_the_log_start_past_the_high_watermark(log: Log) -> None:
    log.create_topic("r", 1, {"retention.ms": 1000})
    with log.producer() as p:
        p.send("r", b"acked", timestamp_ms=1)  # before the leader: acknowledged by this node alone
    core = core_on(log, hw_persist_ms=0)
    hold(core, log, "r", 1)
    with log.producer() as p:
        for i in range(3):
            p.send("r", b"unacked%d" % i, timestamp_ms=1)
            p.flush()
    before = state(log, "r")
    assert (before.high_watermark, before.end_offset, before.batches) == (1, 4, 4)
    assert log._store.enforce_retention() == 1  # every batch is past retention.ms; only the acknowledged goes
    after = state(log, "r")
    assert (after.start_offset, after.batches) == (1, 3)
    hold(core, log, "r", 4)  # the follower caught up
    assert state(log, "r").high_watermark == 4
    assert log._store.enforce_retention() == 3
    assert state(log, "r").start_offset == 4
    core.stop()


def test_retention_bytes_at_append_time_stops_at_the_high_watermark(log: Log) -> None:
    log.create_topic("r", 1, {"retention.bytes": 1})
    core = core_on(log, hw_persist_ms=0)
    hold(core, log, "r", 0)
    with log.producer() as p:
        for i in range(4):
            p.send("r", b"unacked%d" % i)
            p.flush()
    st = state(log, "r")
    assert (st.start_offset, st.end_offset, st.high_watermark) == (0, 4, 0)  # nothing acknowledged: all kept
    core.stop()


def test_compaction_leaves_records_at_or_above_the_high_watermark_alone(log: Log) -> None:
    log.create_topic("c", 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": 0})
    with log.producer() as p:
        p.send("c", b"v1", key=b"k")
    core = core_on(log, hw_persist_ms=0)
    hold(core, log, "c", 1)
    with log.producer() as p:
        p.send("c", b"v2", key=b"k")  # not on the follower: a failover may take it back
        p.flush()
        p.send("c", b"x", key=b"other")
    assert state(log, "c").high_watermark == 1
    assert compaction.compact_all(log._store) == 0
    tid = log.describe_topic("c").topic_id
    infos = read(log, lambda txn, dbs: plog.iter_infos(txn, dbs, tid, 0))
    assert [i.record_count for i in infos] == [1, 1, 1]  # v1 stays: the only acknowledged value of k
    hold(core, log, "c", 3)
    assert compaction.compact_all(log._store) == 1  # now v2 is acknowledged, v1 goes
    core.stop()
    assert visible(log, "c") == [b"v2", b"x"]


# == 3. high watermarks: stored lazily, published once stored ============================================
def test_high_watermarks_are_stored_lazily_and_published_once_stored(log: Log) -> None:
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=1000)
    hold(core, log, "t", 0)
    with log.producer() as p:
        for i in range(3):
            p.send("t", b"%d" % i)
    tid = log.describe_topic("t").topic_id
    hold(core, log, "t", 3, now=10)
    assert core.hw[(tid, 0)] == 3  # computed
    assert core.board.high_watermark(tid, 0) == 0  # not published: not stored yet
    assert state(log, "t").high_watermark == 0  # consumers see nothing
    assert visible(log, "t") == []
    assert core.store_due(10) == 990
    assert core.update(1000)
    assert state(log, "t").high_watermark == 3
    assert core.board.high_watermark(tid, 0) == 3  # published with the write
    assert core.store_due(1000) is None
    assert visible(log, "t") == [b"0", b"1", b"2"]
    core.stop()


def test_a_waiting_producer_stores_the_computed_high_watermarks_itself(log: Log) -> None:
    """``board.wait`` (an acks="all" producer waiting) writes what was computed and not
    stored, whatever ``hw_persist_ms`` says, and that publishes it."""
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=10**9, defer_store=True)
    hold(core, log, "t", 0)
    send_one = log.producer()
    send_one.send("t", b"x")
    send_one.close()
    tid = log.describe_topic("t").topic_id
    hold(core, log, "t", 1, now=10)
    assert (core.hw[(tid, 0)], state(log, "t").high_watermark, core.board.high_watermark(tid, 0)) == (1, 0, 0)
    seen = core.board.version
    core.board.wait(seen, 5)  # returns at once: its own write is a publication
    assert state(log, "t").high_watermark == 1
    assert core.board.high_watermark(tid, 0) == 1
    assert core.store_due(10) is None
    core.stop()


def test_with_a_producer_waiting_the_acknowledging_thread_stores_the_high_watermark(log: Log) -> None:
    """While an acks="all" producer of this process waits on the board, the thread
    whose acknowledgement moved a high watermark stores and publishes it at once (no
    hand-off of the GIL to the producer before the write); with nobody waiting it is
    only computed, for the writer thread or a producer to store."""
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=10**9, defer_store=True)
    hold(core, log, "t", 0)
    with log.producer() as p:
        p.send("t", b"x")
        p.send("t", b"y")
    tid = log.describe_topic("t").topic_id
    hold(core, log, "t", 1, now=10)  # nobody waits
    assert (core.hw[(tid, 0)], state(log, "t").high_watermark, core.board.high_watermark(tid, 0)) == (1, 0, 0)
    core.board.wait(core.board.version, 5)  # (a producer that comes to wait stores it)
    assert state(log, "t").high_watermark == 1
    core.board._waiting += 1  # a producer blocked in board.wait
    try:
        hold(core, log, "t", 2, now=20)
        assert state(log, "t").high_watermark == 2  # stored by this very call
        assert core.board.high_watermark(tid, 0) == 2
    finally:
        core.board._waiting -= 1
    core.stop()


def test_a_deferred_core_stores_only_when_asked(log: Log) -> None:
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=0, defer_store=True)
    hold(core, log, "t", 0)
    with log.producer() as p:
        p.send("t", b"x")
    hold(core, log, "t", 1, now=5000)
    assert core.hw_pending.is_set()
    assert state(log, "t").high_watermark == 0
    assert core.store_due(5000) == 0
    assert core.store_pending(5000)
    assert state(log, "t").high_watermark == 1
    core.stop()


def test_an_in_sync_change_is_stored_with_the_high_watermark_it_moves(log: Log) -> None:
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=10**9, replica_lag_time_max_ms=100)
    hold(core, log, "t", 0)
    assert read(log, replica.get_isr)["isr"] == ["ghost"]
    with log.producer() as p:
        p.send("t", b"x")
    assert state(log, "t").high_watermark == 0
    core.update(101)  # the ghost lagged too long: out of the in-sync set, the leader alone acknowledges
    assert read(log, replica.get_isr)["isr"] == []  # stored at once, whatever hw_persist_ms says
    assert state(log, "t").high_watermark == 1
    core.stop()


def test_a_high_watermark_write_skips_the_second_sync_and_an_in_sync_change_does_not(
        log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """A high watermark alone is written with ``durable=False`` (a power loss may only set
    it back: its commit's page sync puts the records it covers on disk first); an in-sync
    set change is durable (``min.insync.replicas`` checks read it)."""
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=10**9, defer_store=True, replica_lag_time_max_ms=100)
    hold(core, log, "t", 0)
    with log.producer() as p:
        p.send("t", b"x")
    hold(core, log, "t", 1, now=10)
    durable: list[bool] = []
    write = log._store.env.write
    monkeypatch.setattr(log._store.env, "write",
                        lambda fn, **kw: durable.append(kw.get("durable", True)) or write(fn, **kw))
    assert core.store_pending(10)
    assert durable == [False]
    assert state(log, "t").high_watermark == 1
    core.update(200)  # the ghost lagged too long: the in-sync set changes
    assert read(log, replica.get_isr)["isr"] == []
    assert durable == [False, True]
    core.stop()


def a_flush_waiting(log: Log) -> tuple[LeaderCore, Any, threading.Event, list[BaseException]]:
    """An acks="all" producer's flush of one record, in a thread, waiting for an in-sync
    follower that holds nothing yet: the leader core, the producer, the event set once the
    flush ended, and what it raised."""
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=10**9)
    hold(core, log, "t", 0)
    p = log.producer(acks="all", delivery_timeout_ms=60_000)
    p.send("t", b"x")
    done = threading.Event()
    errors: list[BaseException] = []

    def flush() -> None:
        try:
            p.flush()
        except BaseException as exc:
            errors.append(exc)
        done.set()

    threading.Thread(target=flush, daemon=True).start()
    harness.wait_until(lambda: state(log, "t").end_offset == 1, "the record written")
    return core, p, done, errors


def test_an_acks_all_flush_returns_on_the_published_high_watermark(log: Log) -> None:
    core, _, done, errors = a_flush_waiting(log)
    assert not done.wait(0.2)  # the follower has not acknowledged it
    hold(core, log, "t", 1, now=10)
    assert done.wait(30), "flush did not return on the published high watermark"
    assert errors == []
    assert state(log, "t").high_watermark == 1  # stored before it returned: consumers see the record
    assert visible(log, "t") == [b"x"]
    core.stop()


def test_a_follower_joins_the_in_sync_set_only_holding_the_published_high_watermark(make_log: Any) -> None:
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t")
    with la.producer() as p:
        for i in range(3):
            p.send("t", b"%d" % i)
    core = core_on(la, hw_persist_ms=10**9)
    hold(core, la, "t", 3)
    follower = FollowerCore(lb._store, secret=b"secret-secret")
    pipe = Pipe(core, follower)
    for _ in range(50):
        if follower.responses:
            break
        pipe.step()
    assert follower.responses == 1  # it holds offsets 0..2; its acknowledgement is on its way
    with la.producer() as p:
        p.send("t", b"3")
        p.send("t", b"4")
    hold(core, la, "t", 5, now=pipe.now)  # the ghost acknowledged them: published, not stored
    assert state(la, "t").high_watermark == 3
    pipe.step()  # the leader reads the follower's acknowledgement of offsets 0..2
    assert follower.node_id not in core.in_sync_ids(), "joined the in-sync set without acknowledged records"
    assert core.status()["partitions"]["t[0]"]["high_watermark"] == 5
    for _ in range(50):
        if follower.node_id in core.in_sync_ids():
            break
        pipe.step()
    assert follower.node_id in core.in_sync_ids()
    core.stop()


def in_sync_pair(make_log: Any) -> tuple[Log, Log, LeaderCore, FollowerCore, Pipe]:
    """Logs ``a`` (leader, topic ``t``) and ``b`` (its follower), wired by a ``Pipe`` and
    stepped until the follower is in sync."""
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t")
    core = LeaderCore(la._store, secret=None, now_ms=1000)
    follower = FollowerCore(lb._store, secret=None)
    pipe = Pipe(core, follower)
    for _ in range(100):
        pipe.step()
    assert core.in_sync_ids() == (follower.node_id,)
    return la, lb, core, follower, pipe


def test_new_high_watermarks_wait_a_little_to_ride_on_the_next_records(make_log: Any) -> None:
    la, lb, core, follower, pipe = in_sync_pair(make_log)
    with la.producer() as p:
        p.send("t", b"x")
    for _ in range(10):
        pipe.step()
        if state(la, "t").high_watermark == 1:
            break
    assert state(lb, "t").end_offset == 1
    assert state(lb, "t").high_watermark == 0  # the leader's moved after the follower's acknowledgement
    before = follower.responses
    with la.producer() as p:
        p.send("t", b"y")
    pipe.step()
    assert follower.responses == before + 1, "the new high watermark was sent alone"
    assert (state(lb, "t").end_offset, state(lb, "t").high_watermark) == (2, 1)  # records and watermark at once
    for _ in range(10):  # with no records coming, it goes alone after HW_ONLY_DELAY_MS
        pipe.step()
    assert state(lb, "t").high_watermark == 2
    core.stop()


def test_a_follower_digests_its_topics_once_per_change(make_log: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fetch carries the digest of the follower's topic metadata; it is computed
    again only when a topic changed (and still agrees with the leader's after one)."""
    la, lb, core, follower, pipe = in_sync_pair(make_log)
    calls: list[int] = []
    real = replica.topics_digest
    monkeypatch.setattr(replica, "topics_digest", lambda txn, dbs: (calls.append(1), real(txn, dbs))[1])
    for i in range(5):
        with la.producer() as p:
            p.send("t", b"%d" % i)
        for _ in range(3):
            pipe.step()
    assert state(lb, "t").end_offset == 5
    assert calls == [], "no topic changed: the digests are the cached ones (the leader's too)"
    la.create_topic("u", partitions=2)
    for _ in range(20):
        pipe.step()
    assert lb.topics() == ["t", "u"]
    assert calls, "a topic changed: digested again"
    digest = lb._store.read(lambda txn: real(txn, lb._store.dbs))
    assert lb._store.read(lambda txn: follower._topics_digest(txn, lb._store.dbs)) == digest
    assert digest == la._store.read(lambda txn: real(txn, la._store.dbs))
    core.stop()


# == 4. transactions with acks="all" =================================================================
def test_a_transaction_with_acks_all_waits_for_the_in_sync_followers(log: Log) -> None:
    log.create_topic("t", 2)
    with Leader(log, secret=SECRET.encode()) as leader:
        leader.core.followers["gone"] = FollowerProgress("gone", in_sync=True, last_caught_up_ms=monotonic_ms())
        leader.core.update(monotonic_ms())
        tx = log.transaction(acks="all", delivery_timeout_ms=300)
        tx.send("t", b"a", partition=0)
        tx.send("t", b"b", partition=1)
        with pytest.raises(EmbedlogTimeoutError, match="acknowledge"):
            tx.commit()
        assert sum(p.end_offset for p in log.describe_topic("t").partitions) == 2  # written, not acknowledged
    log.create_topic("strict", 1, {"min.insync.replicas": 2})
    tx = log.transaction(acks="all")
    tx.send("strict", b"refused")
    with pytest.raises(TransactionAbortedError, match=r"min\.insync\.replicas"):  # Kafka: nothing written
        tx.commit()
    assert log.describe_topic("strict").partitions[0].end_offset == 0


def test_a_follower_shows_a_transaction_all_at_once(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "a", maintenance_interval_ms=None) as la, \
            embedlog.open(tmp_path / "b", maintenance_interval_ms=None) as lb:
        la.create_topic("x", 2)
        la.create_topic("y", 1)
        with Leader(la, secret=SECRET.encode()) as leader, \
                Follower(lb, leader.address, secret=SECRET.encode(), max_bytes=1) as f:
            f.wait_connected(30)
            harness.wait_until(lambda: leader.status()["isr"] == [f.core.node_id], "the follower in sync")
            tids = [la.describe_topic(n).topic_id for n in ("x", "x", "y")]
            parts = [0, 1, 0]
            seen: set[tuple[int, ...]] = set()
            stop = threading.Event()

            def sample() -> None:
                store = lb._store

                def ends(txn: lmdb.Transaction) -> tuple[int, ...]:
                    out = []
                    for tid, part in zip(tids, parts):
                        st = plog.load_state(txn, store.dbs, tid, part)
                        out.append(-1 if st is None else st.end_offset)
                    return tuple(out)

                while not stop.is_set():
                    seen.add(store.read(ends))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            p = la.producer(acks="all")
            for i in range(1, 21):
                with la.transaction() as tx:  # one record in each partition, together
                    tx.send("x", b"x0-%d" % i, partition=0)
                    tx.send("x", b"x1-%d" % i, partition=1)
                    tx.send("y", b"y-%d" % i)
                p.send("y", b"marker", partition=0)
                p.flush()  # the follower holds the transaction by now
                assert lb.describe_topic("x").partitions[1].end_offset == i
            stop.set()
            sampler.join(10)
    # max_bytes=1: each response carries one whole transaction, never a part of one
    assert seen, "the sampler saw nothing"
    for x0, x1, y in seen:
        if min(x0, x1, y) < 0:
            continue  # the topics are not created on the follower yet
        assert x0 == x1, f"partition x[0] at {x0} but x[1] at {x1}: a transaction was half applied"
        assert y in (2 * x0, 2 * x0 - 1), f"y at {y} with x at {x0}: a transaction was half applied"


# == 5. promotion of an out-of-sync follower warns ======================================================
def promote_quietly(log: Log) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        promote(log)
    return [w for w in caught if issubclass(w.category, UncleanPromotionWarning)]


def test_promote_warns_for_a_replica_that_never_heard_from_a_leader(make_log: Any) -> None:
    lb = make_log("b")
    FollowerCore(lb._store, secret=None)
    with pytest.warns(UncleanPromotionWarning, match="never received anything"):
        promote(lb)
    assert read(lb, replica.get_follower_state) is None
    assert promote_quietly(lb) == []  # a leader promoted again: nothing to warn about
    assert promote_quietly(make_log("c")) == []  # never a replica


def test_promote_warns_for_an_out_of_sync_follower_only(make_log: Any) -> None:
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t", 2)
    with la.producer() as p:
        for i in range(40):
            p.send("t", b"v%d" % i * 20, partition=i % 2)
            p.flush()  # one transaction each
    leader = LeaderCore(la._store, secret=None, now_ms=1000)
    follower = FollowerCore(lb._store, secret=None, max_bytes=1)  # one transaction per response: it lags
    pipe = Pipe(leader, follower)
    for _ in range(100):
        if follower.responses >= 2:
            break
        pipe.step()
    st = read(lb, replica.get_follower_state)
    assert st["leader"] == leader.node_id
    assert st["in_sync"] is False
    assert st["lag"] > 0
    with pytest.warns(UncleanPromotionWarning, match="not in the in-sync set"):
        promote(lb)

    lc = make_log("c")
    follower = FollowerCore(lc._store, secret=None)
    pipe = Pipe(leader, follower)
    joined = None
    for n in range(2000):
        pipe.step()
        if joined is None and follower.node_id in leader.in_sync_ids():
            joined = n
        st = read(lc, replica.get_follower_state)
        if st is not None and st["in_sync"] and st["lag"] == 0:
            break
    else:
        raise AssertionError(f"the follower never heard it is in sync: {st}")
    assert joined is not None
    assert n - joined <= 2, "the leader kept the follower's fetch parked after it joined the in-sync set"
    assert leader.in_sync_ids() == (follower.node_id,)
    assert promote_quietly(lc) == []
    leader.stop()


def test_promotion_risk_reads_the_follower_state(log: Log) -> None:
    store = log._store
    store.write(lambda txn: replica.set_role(txn, store.dbs, "replica"))
    cases = [({"leader": "L", "epoch": 3, "in_sync": True, "lag": 0}, None),
             ({"leader": "L", "epoch": 3, "in_sync": True, "lag": 5}, "5 record(s) behind leader L (epoch 3)"),
             ({"leader": "L", "epoch": 3, "in_sync": False, "lag": 0}, "not in the in-sync set of leader L")]
    for doc, expect in cases:
        store.write(lambda txn, doc=doc: replica.set_follower_state(txn, store.dbs, doc))
        risk = read(log, replica.promotion_risk)
        assert risk is None if expect is None else expect in risk, (doc, risk)


# -- following: what the directory held before ---------------------------------------------------
def test_following_refuses_a_directory_with_records_of_another_log(make_log: Any) -> None:
    """Records written here before following (or replicated from another leader) would
    be deleted to make room for the leader's: ``UnrelatedLogError``, and the directory
    keeps its records and stays writable.  An empty directory, or one that only has
    topics, follows."""
    la, lb, lc = make_log("a"), make_log("b"), make_log("c")
    for lg, values in ((la, [b"leader0", b"leader1", b"leader2"]), (lb, [b"mine0", b"mine1"])):
        lg.create_topic("orders", 1)
        with lg.producer() as p:
            for v in values:
                p.send("orders", v)
    lc.create_topic("orders", 1)  # a topic, no records: nothing to lose
    with Leader(la, secret=SECRET.encode()) as leader:
        with Follower(lb, leader.address, secret=SECRET.encode()) as f:
            with pytest.raises(UnrelatedLogError, match=r"holds records of another log .*topics orders"):
                f.wait_connected(30)
            assert isinstance(f.error, UnrelatedLogError)
        assert visible(lb, "orders") == [b"mine0", b"mine1"]
        with lb.producer() as p:  # still its own leader: writable as before
            p.send("orders", b"mine2")
        with Follower(lc, leader.address, secret=SECRET.encode()) as f:
            f.wait_connected(30)
            harness.wait_until(lambda: lc.describe_topic("orders").partitions[0].end_offset == 3, "replicated")
            assert f.status()["lag"] == {"orders[0]": 0}  # (by topic name, as the leader's status)
        assert visible(lc, "orders") == [b"leader0", b"leader1", b"leader2"]


def test_following_counts_group_offsets_as_data_and_deleted_records_as_none(make_log: Any) -> None:
    """A directory with only committed group offsets is refused (they were deleted in
    silence); one whose records were all deleted (``delete_records``, retention) holds
    nothing to lose and follows (it was refused as holding records)."""
    la, lb, lc = make_log("a"), make_log("b"), make_log("c")
    la.create_topic("orders", 1)
    with la.producer() as p:
        p.send("orders", b"leader0")
    lb.create_topic("mine", 1)
    with lb.producer() as p:
        p.send("mine", b"x")
    lb.commit_offsets("g", {TopicPartition("mine", 0): 1})
    lb.delete_records("mine", 0, 1)  # (no record left: only the group's offset)
    lc.create_topic("gone", 1)
    with lc.producer() as p:
        p.send("gone", b"y")
    lc.delete_records("gone", 0, 1)
    with Leader(la, secret=SECRET.encode()) as leader:
        with Follower(lb, leader.address, secret=SECRET.encode()) as f, pytest.raises(
                UnrelatedLogError, match="committed offsets"):
            f.wait_connected(30)
        assert lb.committed_offsets("g")[TopicPartition("mine", 0)].offset == 1
        with Follower(lc, leader.address, secret=SECRET.encode()) as f:
            f.wait_connected(30)
            harness.wait_until(lambda: "orders" in lc.topics() and visible(lc, "orders") == [b"leader0"],
                               "replicated")


def test_a_follower_that_closes_leaves_the_in_sync_set_at_once(make_log: Any) -> None:
    """``Follower.close()`` tells the leader (Kafka's controlled shutdown): the in-sync
    set shrinks now, so ``acks="all"`` flushes do not wait ``replica_lag_time_max_ms``
    (60 s here) for a follower that is gone; it rejoins once it follows again."""
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t", 1)
    with Leader(la, secret=SECRET.encode(), replica_lag_time_max_ms=60_000) as leader:
        f = Follower(lb, leader.address, secret=SECRET.encode())
        f.wait_connected(30)
        harness.wait_until(lambda: leader.core.in_sync_ids() == (f.core.node_id,), "the follower in sync")
        f.close()
        harness.wait_until(lambda: leader.core.in_sync_ids() == (), "the closed follower out of the set", timeout=20)
        with la.producer(acks="all", delivery_timeout_ms=20_000) as p:
            p.send("t", b"after")
            p.flush()  # the leader alone is the in-sync set (min.insync.replicas 1)
        with Follower(lb, leader.address, secret=SECRET.encode()) as f2:
            f2.wait_connected(30)
            harness.wait_until(lambda: leader.core.in_sync_ids() == (f2.core.node_id,), "back in sync")
    assert visible(lb, "t") == [b"after"]


def test_status_reports_are_dicts_with_attribute_access(make_log: Any) -> None:
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t", 1)
    with Leader(la, secret=SECRET.encode()) as leader, Follower(lb, leader.address, secret=SECRET.encode()) as f:
        f.wait_connected(30)
        for st in (leader.status(), f.status(), replication.replication_status(la)):
            assert isinstance(st, dict)
            assert st.epoch == st["epoch"] == 0
            assert st.role in ("leader", "follower")
            with pytest.raises(AttributeError, match="status has no 'nope'"):
                _ = st.nope
        harness.wait_until(lambda: f.status().in_sync, "the follower in sync")
    # stopped, it left the leader's in-sync set (it says so): its status no longer claims it
    assert f.status().in_sync is False
    assert f.status().connected is False


def test_replication_errors_are_in_embedlog_errors() -> None:
    """Every typed error the README names is importable from ``embedlog.errors``."""
    from embedlog import errors  # noqa: PLC0415

    assert errors.FencedLeaderError is replication.FencedLeaderError
    assert issubclass(errors.FencedLeaderError, errors.NotLeaderError)
    assert errors.ReplicationBusyError is replica.ReplicationBusyError
    assert errors.for_code(74) is errors.FencedLeaderError


def test_metrics_count_the_in_sync_nodes(make_log: Any) -> None:
    """``kafka_brokers`` and ``kafka_topic_partition_in_sync_replica`` come from this:
    the leader and its in-sync followers while a Leader runs, else 1."""
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t", 1)
    assert la.metrics().in_sync_replicas == 1
    with Leader(la, secret=SECRET.encode()) as leader, Follower(lb, leader.address, secret=SECRET.encode()) as f:
        f.wait_connected(30)
        harness.wait_until(lambda: la.metrics().in_sync_replicas == 2, "the follower counted in sync")
    assert la.metrics().in_sync_replicas == 1  # (the Leader stopped)


def test_closing_an_acks_all_producer_waits_for_the_in_sync_followers(make_log: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Like Kafka's ``close()``, the end of ``with log.producer(acks="all")`` completes
    what was sent: it returns once the in-sync follower holds the records, and raises
    the timeout error (after releasing the producer) when it cannot within
    ``delivery_timeout_ms``."""
    hold = threading.Event()
    hold.set()
    real = FollowerCore._on_response

    def on_response(self: FollowerCore, resp: Any, sent: Any, *rest: Any) -> Any:
        hold.wait(harness.TIMEOUT)
        return real(self, resp, sent, *rest)

    monkeypatch.setattr(FollowerCore, "_on_response", on_response)
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t")
    with Leader(la, secret=SECRET.encode()) as leader, Follower(lb, leader.address, secret=SECRET.encode()) as f:
        f.wait_connected(30)
        harness.wait_until(lambda: leader.core.in_sync_ids() == (f.core.node_id,), "in sync")
        hold.clear()  # the follower applies nothing from now on
        p = la.producer(acks="all", delivery_timeout_ms=300)
        p.send("t", b"late")
        with pytest.raises(EmbedlogTimeoutError):
            p.close()
        assert p.closed
        closed = threading.Event()

        def produce() -> None:
            with la.producer(acks="all", delivery_timeout_ms=60_000) as p2:
                p2.send("t", b"v")
            closed.set()

        t = threading.Thread(target=produce, daemon=True)
        t.start()
        assert not closed.wait(0.5)  # (held: the follower has not applied the record)
        hold.set()
        assert closed.wait(harness.TIMEOUT)
        t.join(harness.TIMEOUT)
        assert lb.describe_topic("t").partitions[0].end_offset == 2  # the follower held both when it returned


def test_an_acks_all_flush_racing_a_background_write_waits_for_its_records(log: Log,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A background (linger) write notes its records as waiting for the followers before
    it lets a flush that waits for it go on (it noted them after: a flush could return
    with the only in-sync follower holding nothing).  The linger thread is held between
    the two steps here."""
    from embedlog import producer as producer_mod  # noqa: PLC0415

    log.create_topic("t")
    core = core_on(log, hw_persist_ms=10**9)
    hold(core, log, "t", 0)  # an in-sync follower that holds nothing: no acks="all" flush can succeed
    note = producer_mod.Producer._note_acks

    def slow(self: Any, items: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.5)
        note(self, items)

    monkeypatch.setattr(producer_mod.Producer, "_note_acks", slow)
    p = log.producer(acks="all", linger_ms=1, delivery_timeout_ms=300)
    p.send("t", b"x")
    harness.wait_until(lambda: state(log, "t").end_offset == 1, "the linger thread's write")
    with pytest.raises(EmbedlogTimeoutError):
        p.flush()
    with contextlib.suppress(EmbedlogTimeoutError):
        p.close(timeout=0.01)
    core.stop()


def test_a_second_acks_all_flush_waits_too(log: Log) -> None:
    """Two threads flushing one acks="all" producer: the second waits for the followers as
    the first does (the first took every record to wait for, and the second returned at
    once with the followers holding nothing)."""
    core, p, first_done, errors = a_flush_waiting(log)
    assert not first_done.wait(0.1)
    with pytest.raises(EmbedlogTimeoutError):
        p.flush(timeout=0.3)  # the followers hold nothing: it must not return
    hold(core, log, "t", 1, now=10)
    assert first_done.wait(30)
    assert errors == []
    p.flush(timeout=5)
    p.close()
    core.stop()


def test_a_followers_lag_counts_from_the_log_start(log: Log) -> None:
    """A follower yet to fetch a partition whose start retention moved: its lag counted
    the deleted records too (start 15, end 20: 20, not 5)."""
    log.create_topic("t", 1)
    with log.producer() as p:
        for i in range(20):
            p.send("t", b"%d" % i)
            p.flush()
    assert log.delete_records("t", 0, 15) == 15
    core = core_on(log)
    core.followers["f"] = FollowerProgress("f")
    assert core.status()["followers"]["f"]["lag"] == {"t[0]": 5}
    core.followers["f"].durable[(log.describe_topic("t").topic_id, 0)] = 17
    assert core.status()["followers"]["f"]["lag"] == {"t[0]": 3}
    core.stop()


def test_a_leader_that_cannot_listen_raises_a_config_error_and_leaves_the_log_usable(log: Log) -> None:
    """A port in use, an address of another machine, a NUL in the host: raw OSError or
    TypeError (others got ConfigError already, as metrics.start_http_server does)."""
    import socket  # noqa: PLC0415

    log.create_topic("t", 1)
    with log.producer() as p:
        p.send("t", b"kept")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        for listen in (f"127.0.0.1:{busy.getsockname()[1]}", "192.0.2.1:0", "\x00:0"):
            with pytest.raises(embedlog.errors.ConfigError, match="cannot listen at"):
                Leader(log, listen, insecure=True)
    finally:
        busy.close()
    with Leader(log, "127.0.0.1:0", insecure=True):  # (its directory lock was released)
        pass
    assert visible(log, "t") == [b"kept"]


def test_wait_connected_refuses_a_timeout_that_is_no_number(log: Log) -> None:
    f = Follower(log, "127.0.0.1:1", insecure=True)
    try:
        for junk in ("1", 1j, float("nan"), True):
            with pytest.raises(embedlog.errors.ConfigError, match="timeout must be a number of seconds"):
                f.wait_connected(junk)  # type: ignore[arg-type]
    finally:
        f.close()
