"""The single-record ``acks="all"`` round trip's short cuts keep every guarantee: a
follower hands its ``Ack`` (with the next fetch, read in the apply's transaction) to
the socket layer the moment the response is durable; appends of the leader's process
carry the computed high watermarks of the partitions they write (no transaction of
their own); a high-watermark write that changed nothing is not taken for one (LMDB
reuses its id); ``store_pending`` writes without the core's lock; the committing
thread sends new records to waiting followers before anyone is woken; the ticker
leaves ``update`` alone when it has nothing to do."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import embedlog
from embedlog import replication
from embedlog.protocol import Ack, FetchRequest, FetchResponse
from embedlog.replication import FollowerCore, FollowerProgress, LeaderCore
from embedlog.storage import replica
from procs.harness import frames  # tests/procs/harness.py (tests/ is on sys.path)
from procs.harness import partition_state as state  # tests/procs/harness.py

Log = embedlog.Log


def send(log: Log, value: bytes, topic: str = "t") -> None:
    with log.producer() as p:
        p.send(topic, value)


def core_on(log: Log, **options: Any) -> LeaderCore:
    options.setdefault("replica_lag_time_max_ms", 10**9)
    return LeaderCore(log._store, secret=None, now_ms=0, **options)


def hold(core: LeaderCore, log: Log, durable: int, now: int = 0, topic: str = "t") -> None:
    """An in-sync follower ("ghost") that holds ``durable`` records: the high watermark
    follows it."""
    tp = (log.describe_topic(topic).topic_id, 0)
    ghost = core.followers.setdefault("ghost", FollowerProgress("ghost", in_sync=True, last_caught_up_ms=now))
    ghost.durable[tp] = durable
    core._acked = True
    core.update(now)


def caught_up(make_log: Any) -> tuple[Log, Log, LeaderCore, Any, FollowerCore, int]:
    """A deferring leader core (as ``Leader`` runs it) and a follower core wired in
    memory, the follower in sync and holding the leader's one record."""
    la, lb = make_log("a"), make_log("b")
    la.create_topic("t")
    send(la, b"x")
    core = LeaderCore(la._store, secret=None, now_ms=1000, replica_lag_time_max_ms=10**9, defer_store=True)
    follower = FollowerCore(lb._store, secret=None, pipeline_min_bytes=replication.PIPELINE_MIN_BYTES)
    now = 1000
    session = core.session(now, "mem")
    to_leader = follower.connect(now)
    for _ in range(100):
        now += 10
        out = (session.receive(to_leader, now) if to_leader else b"") + session.poll(now)
        to_leader = (follower.receive(out, now) if out else b"") + follower.poll(now)
        if not to_leader and session.parked is not None and core.in_sync_ids() and "t" in lb.topics() \
                and state(lb).end_offset == 1:
            break
    assert core.in_sync_ids() == (follower.node_id,)
    return la, lb, core, session, follower, now


# -- the follower: the Ack leaves once the response is durable, with the next fetch ---------------------
def test_a_follower_hands_its_ack_and_next_fetch_over_once_durable(make_log: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    la, lb, core, session, follower, now = caught_up(make_log)
    send(la, b"y")
    out = session.poll(now + 1)
    (resp,) = frames(out)
    assert isinstance(resp, FetchResponse)
    synced: list[int] = []
    real_sync = type(lb._store.env).sync

    def sync(env: Any) -> None:  # (durability "flush" commits synced; any other mode syncs here)
        synced.append(state(lb).end_offset)
        real_sync(env)

    monkeypatch.setattr(type(lb._store.env), "sync", sync)
    acked: list[tuple[int, bytes]] = []
    rest = follower.receive(out, now + 1, None, lambda data: acked.append((state(lb).end_offset, data)))
    assert rest == b""  # everything went out through the callback
    ((end, data),) = acked
    assert end == 2  # handed over once the response was committed (and synced)
    assert synced in ([], [2])
    ack, fetch = frames(data)
    assert isinstance(ack, Ack)
    assert [p.offset for p in ack.partitions] == [2]
    assert isinstance(fetch, FetchRequest)  # the next fetch, read in the apply's transaction
    assert [fp.fetch_offset for fp in fetch.partitions] == [2]
    # The leader takes them as before: the Ack moves the high watermark, the fetch parks.
    assert session.receive(data, now + 2) == b""
    tid = la.describe_topic("t").topic_id
    assert core.hw[(tid, 0)] == 2
    assert session.parked is not None
    core.stop()


def test_without_an_ack_callback_the_ack_comes_out_with_the_next_fetch(make_log: Any) -> None:
    la, _lb, core, session, follower, now = caught_up(make_log)
    send(la, b"y")
    out = session.poll(now + 1)
    back = follower.receive(out, now + 1)
    assert [type(m) for m in frames(back)] == [Ack, FetchRequest]
    core.stop()


# -- appends carry the leader's computed high watermarks ---------------------------------------------------
def test_an_append_stores_the_computed_high_watermark_of_its_partition(log: Log) -> None:
    log.create_topic("t")
    send(log, b"a")
    core = core_on(log, hw_persist_ms=10**9, defer_store=True)
    assert log._store.hw_source is core
    hold(core, log, 1)  # (an in-sync follower holds every visible record: it joins only then)
    send(log, b"b")
    hold(core, log, 2)  # the follower acknowledged both
    tid = log.describe_topic("t").topic_id
    assert core.hw[(tid, 0)] == 2
    assert state(log).high_watermark == 1  # (stored when the ghost joined; 2 is computed only)
    hw_txns = list(core._hw_txns)
    assert core.store_due(0) is not None
    send(log, b"c")  # an append of this partition: the high watermark rides along
    st = state(log)
    assert (st.end_offset, st.high_watermark) == (3, 2)  # never its own record: 2, not 3
    assert core.store_due(0) is None  # nothing left for the writer
    assert list(core._hw_txns) == hw_txns  # and no transaction of its own
    core.stop()
    assert log._store.hw_source is None


def test_an_append_of_another_partition_leaves_the_writer_its_work(log: Log) -> None:
    log.create_topic("t")
    log.create_topic("u")
    core = core_on(log, hw_persist_ms=0, defer_store=True)
    hold(core, log, 0)
    send(log, b"a")
    hold(core, log, 1)
    send(log, b"b", topic="u")  # another partition: "t"'s high watermark is not written by it
    assert state(log).high_watermark == 0
    assert core.store_due(0) == 0
    assert core.store_pending(0)
    assert state(log).high_watermark == 1
    assert core.store_due(0) is None
    core.stop()


def test_a_failed_append_leaves_its_high_watermarks_unstored(log: Log) -> None:
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=10**9, defer_store=True)
    hold(core, log, 0)
    send(log, b"a")
    hold(core, log, 1)

    def boom(txn: Any) -> None:  # (runs in the append's transaction, after the records)
        raise RuntimeError("abort")

    p = log.producer()
    p.send("t", b"z")
    with pytest.raises(RuntimeError):
        p._write(extra=boom)
    st = state(log)
    assert (st.end_offset, st.high_watermark) == (1, 0)
    assert core.store_due(0) is not None  # still the writer's to write
    send(log, b"b")  # the next append carries it
    assert state(log).high_watermark == 1
    assert core.store_due(0) is None
    p.close()
    core.stop()


# -- a high-watermark write that changed nothing is not one of ours ------------------------------------------
def test_a_high_watermark_write_that_changed_nothing_is_not_recorded(log: Log) -> None:
    """LMDB commits a write transaction that changed nothing without using its id up:
    taken for a high-watermark write, the next append (which gets that id) would look
    like one, and a parked fetch would wait for ``HW_ONLY_DELAY_MS`` instead of being
    answered with the new records."""
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=10**9, defer_store=True)
    hold(core, log, 0)
    send(log, b"a")
    hold(core, log, 1)
    send(log, b"b")  # stores 1 along
    tid = log.describe_topic("t").topic_id
    before = list(core._hw_txns)
    core._hw_write({(tid, 0): 1}, None)  # (a writer that read "unstored" just before the append stored it)
    assert list(core._hw_txns) == before
    since = log._store.read(lambda txn: txn.id())
    send(log, b"c")
    now = log._store.read(lambda txn: txn.id())
    assert not core.only_hw_writes(since, now)
    core.stop()


# -- store_pending: no lock held through its fsync -----------------------------------------------------------
def test_store_pending_writes_without_holding_the_cores_lock(log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=0, defer_store=True)
    hold(core, log, 0)
    send(log, b"a")
    hold(core, log, 1)
    free: list[bool] = []
    real = replica.set_high_watermark

    def during_write(*args: Any) -> int:
        def other() -> None:  # another thread (an acknowledgement) takes the lock meanwhile
            if core._lock.acquire(blocking=False):
                core._lock.release()
                free.append(True)
            else:
                free.append(False)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        return real(*args)

    monkeypatch.setattr(replica, "set_high_watermark", during_write)
    assert core.store_pending(0)
    assert free == [True]  # an acknowledgement could have been taken meanwhile
    assert state(log).high_watermark == 1
    core.stop()


# -- the committing thread sends new records before anyone is woken ----------------------------------------
def test_an_append_kicks_the_local_leader_before_it_wakes_anyone(log: Log) -> None:
    log.create_topic("t")
    store = log._store
    board = replica.open_hw_board(store)
    seen: list[tuple[int, int]] = []
    board.kick = lambda: seen.append((store.notifier.generation, state(log).end_offset))
    try:
        gen = store.notifier.generation
        send(log, b"a")
        assert seen == [(gen, 1)]  # committed, nobody woken yet
        assert store.notifier.generation > gen
    finally:
        board.close()
    send(log, b"b")  # a closed board kicks nothing
    assert len(seen) == 1


# -- the ticker: update only when due ------------------------------------------------------------------------
def test_update_is_due_only_with_something_to_do(log: Log) -> None:
    log.create_topic("t")
    core = core_on(log, hw_persist_ms=10**9)
    assert core.update_due(0)  # no follower in sync: high watermarks follow the end offsets
    hold(core, log, 0, now=0)
    assert not core.update_due(1)  # in sync, no acknowledgement since
    core._acked = True
    assert core.update_due(1)
    core.update(1)
    assert not core.update_due(1 + replication.UPDATE_EVERY_MS - 1)
    assert core.update_due(1 + replication.UPDATE_EVERY_MS)  # lag expiry is looked at now and then
    core.stop()
