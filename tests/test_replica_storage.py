"""Replica storage primitives (storage/replica.py) on real LMDB: roles and epochs,
promotion, OffsetsForLeaderEpoch, apply/truncate/reset against a list model, high
watermarks, topic and committed-offset replication, and the merged fetch read."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import attrs
import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import embedlog
from embedlog import TopicPartition
from embedlog.codec import batch as codec
from embedlog.errors import NotLeaderError
from embedlog.storage import partition as plog
from embedlog.storage import replica, schema
from embedlog.storage.store import Store
from procs.harness import consume_all, send_each_flushed, stored_batches
from procs.harness import store_read as read
from procs.harness import store_write as write

Log = embedlog.Log
_RUNS = itertools.count()


# -- helpers -------------------------------------------------------------------------------
def tid_of(log: Log, name: str) -> int:
    return log.describe_topic(name).topic_id


def raw_batches(log: Log, name: str, part: int) -> list[bytes]:
    tid = tid_of(log, name)
    return read(log, lambda txn, dbs: replica.read_merged(txn, dbs, [(tid, part, 0)], 1 << 40).batches.get(
        (tid, part), []))


def stored(log: Log, tid: int, part: int) -> list[bytes]:
    return read(log, lambda txn, dbs: stored_batches(txn, dbs, tid, part))


def state(log: Log, tid: int, part: int) -> schema.PartitionState:
    st_ = read(log, lambda txn, dbs: plog.load_state(txn, dbs, tid, part))
    assert st_ is not None
    return st_


def sync_metadata(leader: Log, follower: Log) -> None:
    next_id, recs = read(leader, replica.topic_records)
    write(follower, lambda txn, dbs: replica.apply_topics(txn, dbs, next_id, recs))


def copy_all(leader: Log, follower: Log) -> None:
    """Make ``follower`` a replica holding exactly the leader's topics and batches."""
    write(follower, lambda txn, dbs: replica.set_role(txn, dbs, "replica"))
    sync_metadata(leader, follower)
    for name in leader.topics():
        d = leader.describe_topic(name)
        for p in d.partitions:
            batches = raw_batches(leader, name, p.partition)
            if batches and codec.read_info(batches[0]).base_offset > 0:  # the leader's log starts later
                base = codec.read_info(batches[0]).base_offset
                write(follower, lambda txn, dbs, p=p.partition, o=base: replica.reset(txn, dbs, d.topic_id, p, o))
            write(follower, lambda txn, dbs, b=batches, p=p.partition: replica.apply(txn, dbs, d.topic_id, p, b))
            write(follower, lambda txn, dbs, p=p.partition, o=p.start_offset: replica.advance_log_start(
                txn, dbs, d.topic_id, p, o))


def copied_pair(make_log: Callable[..., Log], records: int) -> tuple[Log, Log, int]:
    """A leader whose topic ``t`` holds ``records`` one-record batches, a follower holding
    a copy of it (``copy_all``), and the topic's id."""
    leader, follower = make_log("a"), make_log("b")
    leader.create_topic("t")
    send_each_flushed(leader, "t", [b"%d" % i for i in range(records)])
    copy_all(leader, follower)
    return leader, follower, tid_of(leader, "t")


# -- roles, epochs, node id -------------------------------------------------------------------
def test_defaults_and_replica_role_refuses_writes(log: Log) -> None:
    log.create_topic("t", 2)
    log.commit_offsets("g", {embedlog.TopicPartition("t", 0): 0})
    assert read(log, replica.get_role) == "leader"
    assert read(log, replica.get_epoch) == 0
    assert read(log, replica.in_sync_size) == 1
    early = log.producer()
    early.send("t", b"w")
    early._drain([])  # (it knows the topic now, and has nothing buffered)
    write(log, lambda txn, dbs: replica.set_role(txn, dbs, "replica"))
    p = log.producer()
    with pytest.raises(NotLeaderError, match="replica"):
        p.send("t", b"x")  # refused at once
    with pytest.raises(NotLeaderError, match="replica"):
        p.send("not-on-the-leader", b"x")  # whatever the topic: the wrong node to produce on
    early.send("t", b"x")  # a producer that knew the topic before: refused at the write
    with pytest.raises(NotLeaderError, match="replica"):
        early.flush()
    with pytest.raises(NotLeaderError, match="replica"), log.transaction() as tx:
        tx.send("t", b"y")  # (the transaction aborts: nothing written)
    assert [pd.end_offset for pd in log.describe_topic("t").partitions] == [0, 0]
    for admin in (lambda: log.create_topic("u"), lambda: log.delete_topic("t"),
                  lambda: log.alter_topic_config("t", {"retention.ms": 5}), lambda: log.create_partitions("t", 4),
                  lambda: log.delete_records("t", 0, 0), lambda: log.delete_group("g"),
                  lambda: log.reset_group_offsets("g", "t", "earliest"),
                  lambda: log.commit_offsets("g", {embedlog.TopicPartition("t", 1): 0})):
        with pytest.raises(NotLeaderError, match="promote"):
            admin()
    # offsets committed alone, by a consumer or a transaction, are refused in their own
    # words (they said "produce on the leader")
    with pytest.raises(NotLeaderError, match="commit offsets"):
        log.commit_offsets("g", {embedlog.TopicPartition("t", 1): 0})
    c = log.consumer(group="g")
    c.assign([embedlog.TopicPartition("t", 0)])
    with pytest.raises(NotLeaderError, match="commit offsets"):
        c.commit({embedlog.TopicPartition("t", 0): 0})
    c.close()
    assert log.topics() == ["t"]
    assert "g" in log.groups()  # (its committed offsets are the leader's: kept)
    with pytest.raises(ValueError):
        write(log, lambda txn, dbs: replica.set_role(txn, dbs, "boss"))


def test_node_id_is_made_once_and_epoch_never_lowers(log: Log) -> None:
    assert read(log, replica.get_node_id) is None
    a = write(log, replica.ensure_node_id)
    assert a == write(log, replica.ensure_node_id)
    assert len(a) == 32
    assert write(log, lambda txn, dbs: replica.raise_epoch(txn, dbs, 5)) == 5
    assert write(log, lambda txn, dbs: replica.raise_epoch(txn, dbs, 3)) == 5
    assert read(log, replica.get_epoch) == 5


def test_promote_raises_epoch_and_starts_it_at_each_end_offset(log: Log) -> None:
    log.create_topic("a", 2)
    log.create_topic("b", 1)
    with log.producer() as p:
        for i in range(7):
            p.send("a", b"v%d" % i, partition=i % 2)
        p.flush()
        p.send("a", b"w", partition=0)
    write(log, lambda txn, dbs: replica.set_role(txn, dbs, "replica"))
    write(log, lambda txn, dbs: replica.set_isr(txn, dbs, {"size": 3}))
    ta, tb = tid_of(log, "a"), tid_of(log, "b")
    assert write(log, replica.promote) == 1
    assert read(log, replica.get_role) == "leader"
    assert read(log, replica.get_isr) is None
    assert read(log, lambda txn, dbs: replica.epoch_history(txn, dbs, ta, 0)) == [(0, 0), (1, 5)]
    assert read(log, lambda txn, dbs: replica.epoch_history(txn, dbs, ta, 1)) == [(0, 0), (1, 3)]
    assert read(log, lambda txn, dbs: replica.epoch_history(txn, dbs, tb, 0)) == [(1, 0)]
    assert [p.leader_epoch for p in log.describe_topic("a").partitions] == [1, 1]
    # new writes carry the new epoch and do not add a second entry
    with log.producer() as p:
        p.send("a", b"x", partition=1)
    assert codec.read_info(raw_batches(log, "a", 1)[-1]).leader_epoch == 1
    assert read(log, lambda txn, dbs: replica.epoch_history(txn, dbs, ta, 1)) == [(0, 0), (1, 3)]
    assert write(log, replica.promote) == 2
    # a directory that saw a higher epoch in a batch promotes above it
    write(log, lambda txn, dbs: txn.put(schema.META_LEADER_EPOCH, schema.I32LE.pack(0), db=dbs["meta"]))
    assert write(log, replica.promote) == 3


# -- OffsetsForLeaderEpoch --------------------------------------------------------------------
def _reference_end_offset(hist: list[tuple[int, int]], leo: int, epoch: int) -> tuple[int, int]:
    """Kafka's LeaderEpochFileCache.endOffsetFor, written from its specification."""
    if epoch < 0 or not hist:
        return -1, -1
    epochs = [e for e, _ in hist]
    if epoch == max(epochs):
        return epoch, leo
    higher = [(e, s) for e, s in hist if e > epoch]
    if not higher:
        return -1, -1
    floor = [e for e in epochs if e <= epoch]
    return (max(floor) if floor else epoch), min(higher)[1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 5)), max_size=6), st.integers(0, 5),
       st.lists(st.integers(-2, 25), min_size=1, max_size=8))
def test_end_offset_for_epoch_matches_kafka(log: Log, steps: list[tuple[int, int]], tail: int,
                                            asks: list[int]) -> None:
    if "t" not in log.topics():
        log.create_topic("t")
    tid = tid_of(log, "t")
    hist: list[tuple[int, int]] = []
    epoch, start = 0, 0
    for de, ds in steps:
        epoch += de
        start += ds
        hist.append((epoch, start))
    leo = start + tail

    def setup(txn: lmdb.Transaction, dbs: Any) -> None:
        replica.reset(txn, dbs, tid, 0, 0)
        for e, s in hist:
            txn.put(schema.epoch_key(tid, 0, e), schema.U64LE.pack(s), db=dbs["epochs"])
        st_ = plog.load_state(txn, dbs, tid, 0)
        assert st_ is not None
        st_.end_offset = leo
        plog.store_state(txn, dbs, tid, 0, st_)

    write(log, setup)
    for ask in asks:
        got = read(log, lambda txn, dbs, a=ask: replica.end_offset_for_epoch(txn, dbs, tid, 0, a))
        assert got == _reference_end_offset(hist, leo, ask), (hist, leo, ask)


# -- apply: exact copies ------------------------------------------------------------------------
def _busy_leader(log: Log) -> None:
    log.create_topic("orders", 3, {"retention.ms": 86_400_000})
    log.create_topic("audit", 1, {"message.timestamp.type": "LogAppendTime"})
    with log.producer(compression="zstd", linger_ms=1000) as p:
        for i in range(200):
            p.send("orders", b"v%d" % i, key=b"k%d" % (i % 17), headers=[("h", b"%d" % i), ("h", None)])
            if i % 50 == 49:
                p.flush()
    with log.producer() as p:
        p.send("orders", None, key=b"k1")
        p.send("audit", b"a")
    for n in range(3):
        with log.transaction() as tx:
            for i in range(5):
                tx.send("orders", b"tx%d-%d" % (n, i), partition=i % 3)
            tx.send("audit", b"tx%d" % n)


def test_apply_copies_batches_byte_for_byte(make_log: Callable[..., Log]) -> None:
    leader, follower = make_log("a"), make_log("b")
    _busy_leader(leader)
    copy_all(leader, follower)
    assert read(follower, replica.topics_digest) == read(leader, replica.topics_digest)
    for name in leader.topics():
        dl, df = leader.describe_topic(name), follower.describe_topic(name)
        assert attrs.evolve(dl, partitions=()) == attrs.evolve(df, partitions=())
        # (the high watermark is the leader's to give: apply leaves it, set_high_watermark moves it)
        assert [attrs.evolve(p, high_watermark=0) for p in dl.partitions] == list(df.partitions)
        for p in range(len(dl.partitions)):
            assert stored(leader, dl.topic_id, p) == stored(follower, dl.topic_id, p)
            sl, sf = state(leader, dl.topic_id, p), state(follower, dl.topic_id, p)
            assert (sl.start_offset, sl.end_offset, sl.bytes, sl.batches, sl.leader_epoch) == (
                sf.start_offset, sf.end_offset, sf.bytes, sf.batches, sf.leader_epoch)
            assert sf.high_watermark == 0  # applying does not make records visible
            assert (read(leader, lambda txn, dbs, p=p: replica.epoch_history(txn, dbs, dl.topic_id, p))
                    == read(follower, lambda txn, dbs, p=p: replica.epoch_history(txn, dbs, dl.topic_id, p)))
            write(follower, lambda txn, dbs, p=p, hw=sl.end_offset: replica.set_high_watermark(
                txn, dbs, dl.topic_id, p, hw))
        assert consume_all(follower, name) == consume_all(leader, name)
    assert read(follower, replica.commit_seq) == read(leader, replica.commit_seq)


def test_apply_interleaved_across_partitions_and_from_views(make_log: Callable[..., Log]) -> None:
    """Batches applied a few at a time to a lower and the last partition in turn (the
    last one's puts append, the lower one's may not), given as read-only views into a
    larger buffer as a decoded response holds them: the same bytes as the leader's."""
    leader, follower = make_log("a"), make_log("b")
    leader.create_topic("t", 2)
    with leader.producer() as p:
        for i in range(120):
            p.send("t", b"v%d" % i, partition=i % 2)
            if i % 10 == 9:
                p.flush()
    write(follower, lambda txn, dbs: replica.set_role(txn, dbs, "replica"))
    sync_metadata(leader, follower)
    tid = tid_of(leader, "t")
    todo = {p: raw_batches(leader, "t", p) for p in (0, 1)}
    assert all(len(b) >= 4 for b in todo.values())
    while any(todo.values()):
        for p in (1, 0):
            chunk, todo[p] = todo[p][:2], todo[p][2:]
            views = [memoryview(b"xx" + b + b"yy")[2:-2].toreadonly() for b in chunk]
            write(follower, lambda txn, dbs, p=p, v=views: replica.apply(txn, dbs, tid, p, v))
    for p in (0, 1):
        assert stored(follower, tid, p) == stored(leader, tid, p)
        assert state(follower, tid, p).end_offset == state(leader, tid, p).end_offset


def test_apply_refuses_overlaps_corruption_and_older_epochs(make_log: Callable[..., Log]) -> None:
    leader, follower, tid = copied_pair(make_log, 3)
    before = (stored(follower, tid, 0), state(follower, tid, 0))
    good = raw_batches(leader, "t", 0)
    nxt = bytearray(codec.encode([None], [b"n"], [1]))
    codec.stamp(nxt, 3, 0, 99)
    overlap = bytearray(nxt)
    codec.stamp(overlap, 2, 0, 99)  # (starts below the end: the follower holds offset 2 already)
    corrupt = bytearray(nxt)
    corrupt[-1] ^= 0xFF
    older = bytearray(codec.encode([None], [b"o"], [1]))
    codec.stamp(older, 4, 0, 100)
    write(leader, lambda txn, dbs: replica.raise_epoch(txn, dbs, 0))
    epoch2 = bytearray(nxt)
    codec.stamp(epoch2, 3, 2, 99)
    for bad in ([good[0]], [overlap], [corrupt], [epoch2, older]):
        with pytest.raises(replica.ApplyError):
            write(follower, lambda txn, dbs, b=bad: replica.apply(txn, dbs, tid, 0, b))
        assert (stored(follower, tid, 0), state(follower, tid, 0)) == before  # nothing kept
    write(follower, lambda txn, dbs: replica.apply(txn, dbs, tid, 0, [epoch2]))
    assert read(follower, lambda txn, dbs: replica.epoch_history(txn, dbs, tid, 0)) == [(0, 0), (2, 3)]
    assert read(follower, replica.commit_seq) == 99
    with pytest.raises(replica.ApplyError, match="does not exist"):
        write(follower, lambda txn, dbs: replica.apply(txn, dbs, tid, 5, [nxt]))


def test_apply_keeps_a_gap_compaction_left(make_log: Callable[..., Log]) -> None:
    """A batch past the end (the leader compacted the ones between away) is kept at its
    own offset, as Kafka's followers of a compacted log keep the leader's gaps."""
    _leader, follower, tid = copied_pair(make_log, 3)
    later = bytearray(codec.encode([b"k"], [b"later"], [1]))
    codec.stamp(later, 7, 0, 99)
    st = write(follower, lambda txn, dbs: replica.apply(txn, dbs, tid, 0, [later]))
    assert st.end_offset == 8
    assert [codec.read_info(b).base_offset for b in stored(follower, tid, 0)][-1] == 7
    with follower.consumer(["t"], auto_offset_reset="earliest") as c:
        follower._store.write(lambda txn: replica.set_high_watermark(txn, follower._store.dbs, tid, 0, 8))
        offsets = [m.offset for m in c.poll(timeout=1.0, max_records=100)]
    assert offsets == [0, 1, 2, 7]


# -- apply / truncate / reset against a list model ---------------------------------------------------
class ReplicaLogMachine(RuleBasedStateMachine):
    """One follower partition driven by apply/truncate/reset/set_high_watermark, checked
    after every step against a list of (base, count, epoch) batches."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="embedlog-replica-")
        self.store = Store(self.dir, durability="none", cross_process=False)
        dbs = self.store.dbs
        self.store.write(lambda txn: replica.create_topic(
            txn, dbs, "t", b'{"config": {}, "created_ms": 0, "id": 7, "partitions": 1}'))
        self.model: list[tuple[int, int, int]] = []
        self.start = 0
        self.hw = 0
        self.seq = 0
        self.hist: list[tuple[int, int]] = []

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def end(self) -> int:
        return self.model[-1][0] + self.model[-1][1] if self.model else self.start

    def _run(self, fn: Callable[[lmdb.Transaction, Any], Any]) -> Any:
        return self.store.write(lambda txn: fn(txn, self.store.dbs))

    @rule(counts=st.lists(st.integers(1, 4), min_size=1, max_size=3), bump=st.lists(st.integers(0, 2), min_size=3,
                                                                                      max_size=3))
    def apply(self, counts: list[int], bump: list[int]) -> None:
        epoch = self.model[-1][2] if self.model else max([e for e, _ in self.hist], default=0)
        bufs = []
        base = self.end
        for count, b in zip(counts, bump):
            epoch += b
            self.seq += 1
            buf = codec.encode([None] * count, [b"%d" % (base + i) for i in range(count)], [1] * count)
            codec.stamp(buf, base, epoch, self.seq)
            bufs.append(buf)
            if not self.hist or epoch > self.hist[-1][0]:
                self.hist.append((epoch, base))
            self.model.append((base, count, epoch))
            base += count
        self._run(lambda txn, dbs: replica.apply(txn, dbs, 7, 0, bufs))

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(0, self.end + 2))
        got = self._run(lambda txn, dbs: replica.truncate(txn, dbs, 7, 0, offset))
        if offset >= self.end:
            assert got == self.end
            return
        keep = [b for b in self.model if b[0] + b[1] <= offset]
        new_end = keep[-1][0] + keep[-1][1] if keep else min(offset, self.model[0][0]) if self.model else offset
        self.model = keep
        if not keep:
            self.start = new_end
        assert got == new_end
        self.hist = [(e, s) for e, s in self.hist if s < new_end]
        self.hw = min(self.hw, new_end)

    @rule(data=st.data())
    def reset(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.end, self.end + 10))
        self._run(lambda txn, dbs: replica.reset(txn, dbs, 7, 0, offset))
        self.model, self.start, self.hw, self.hist = [], offset, offset, []

    @rule(data=st.data())
    def set_hw(self, data: st.DataObject) -> None:
        hw = data.draw(st.integers(0, self.end + 3))
        got = self._run(lambda txn, dbs: replica.set_high_watermark(txn, dbs, 7, 0, hw))
        self.hw = max(self.hw, min(hw, self.end))
        assert got == self.hw

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def advance_start(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.end))
        self._run(lambda txn, dbs: replica.advance_log_start(txn, dbs, 7, 0, offset))
        self.model = [b for b in self.model if b[0] + b[1] > offset]
        self.start = max(self.start, offset)

    @invariant()
    def matches_model(self) -> None:
        def fn(txn: lmdb.Transaction) -> tuple[Any, ...]:
            dbs = self.store.dbs
            st_ = plog.load_state(txn, dbs, 7, 0)
            infos = plog.iter_infos(txn, dbs, 7, 0)
            return st_, infos, replica.epoch_history(txn, dbs, 7, 0)

        st_, infos, hist = self.store.read(fn)
        assert [(i.base_offset, i.record_count, i.leader_epoch) for i in infos] == self.model
        assert st_.end_offset == self.end
        assert st_.batches == len(self.model)
        assert st_.bytes == sum(i.size for i in infos)
        assert st_.start_offset == (max(self.start, self.model[0][0]) if self.model else self.end)
        assert st_.high_watermark == self.hw <= st_.end_offset
        assert hist == self.hist
        if self.model:
            assert self.store.read(lambda txn: replica.latest_epoch(txn, self.store.dbs, 7, 0)) == self.hist[-1][0]


ReplicaLogMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestReplicaLog = ReplicaLogMachine.TestCase


def test_truncate_inside_a_batch_removes_the_whole_batch(make_log: Callable[..., Log]) -> None:
    leader, follower = make_log("a"), make_log("b")
    leader.create_topic("t")
    with leader.producer(linger_ms=600_000) as p:  # batches end at flushes only
        for n in (3, 4, 2):
            for i in range(n):
                p.send("t", b"%d" % i)
            p.flush()
    copy_all(leader, follower)
    tid = tid_of(leader, "t")
    write(follower, lambda txn, dbs: replica.set_high_watermark(txn, dbs, tid, 0, 9))
    assert write(follower, lambda txn, dbs: replica.truncate(txn, dbs, tid, 0, 5)) == 3
    s = state(follower, tid, 0)
    assert (s.start_offset, s.end_offset, s.batches, s.high_watermark) == (0, 3, 1, 3)
    assert [m[1] for m in consume_all(follower, "t")] == [0, 1, 2]
    # refetching from the new end converges to the leader's log again
    rest = read(leader, lambda txn, dbs: replica.read_merged(txn, dbs, [(tid, 0, 3)], 1 << 30)).batches[(tid, 0)]
    write(follower, lambda txn, dbs: replica.apply(txn, dbs, tid, 0, rest))
    assert stored(follower, tid, 0) == stored(leader, tid, 0)


def test_reset_restarts_a_partition_at_the_leaders_log_start(make_log: Callable[..., Log]) -> None:
    leader, follower = make_log("a"), make_log("b")
    leader.create_topic("t")
    send_each_flushed(leader, "t", [b"%d" % i for i in range(10)])
    leader.delete_records("t", 0, 6)
    copy_all(leader, follower)
    tid = tid_of(leader, "t")
    assert state(follower, tid, 0).start_offset == 6
    assert read(follower, lambda txn, dbs: replica.epoch_history(txn, dbs, tid, 0)) == [(0, 6)]
    write(follower, lambda txn, dbs: replica.reset(txn, dbs, tid, 0, 8))
    s = state(follower, tid, 0)
    assert (s.start_offset, s.end_offset, s.batches, s.bytes) == (8, 8, 0, 0)
    assert read(follower, lambda txn, dbs: replica.epoch_history(txn, dbs, tid, 0)) == []
    rest = read(leader, lambda txn, dbs: replica.read_merged(txn, dbs, [(tid, 0, 8)], 1 << 30)).batches[(tid, 0)]
    write(follower, lambda txn, dbs: replica.apply(txn, dbs, tid, 0, rest))
    write(follower, lambda txn, dbs: replica.set_high_watermark(txn, dbs, tid, 0, 10))
    assert [m[1] for m in consume_all(follower, "t")] == [8, 9]
    assert read(follower, lambda txn, dbs: replica.epoch_history(txn, dbs, tid, 0)) == [(0, 8)]


def test_advance_log_start_follows_delete_records(make_log: Callable[..., Log]) -> None:
    _, follower, tid = copied_pair(make_log, 6)
    assert write(follower, lambda txn, dbs: replica.advance_log_start(txn, dbs, tid, 0, 4)) == 4
    assert write(follower, lambda txn, dbs: replica.advance_log_start(txn, dbs, tid, 0, 2)) == 4
    s = state(follower, tid, 0)
    assert (s.start_offset, s.batches) == (4, 2)


# -- high watermark ---------------------------------------------------------------------------------
def test_replicating_leader_appends_without_moving_the_high_watermark(log: Log) -> None:
    log.create_topic("t", 2)
    tid = tid_of(log, "t")
    with log.producer() as p:
        p.send("t", b"before", partition=0)
    lease = replica.LeaderLease(log._store.path)  # what a running leader holds: the flag is live
    write(log, lambda txn, dbs: replica.set_replicating(txn, dbs, True))
    assert read(log, replica.is_replicating)
    assert read(log, lambda txn, dbs: replica.is_replicating(txn, dbs, log._store.path))
    # the leader alone in its in-sync set: an append moves the high watermark itself
    with log.producer() as p:
        p.send("t", b"alone", partition=1)
    assert state(log, tid, 1).high_watermark == 1
    # a follower in the set: appends leave the high watermark to the leader
    write(log, lambda txn, dbs: replica.set_isr(txn, dbs, {"isr": ["x"], "size": 2}))
    with log.producer() as p:
        for i in range(4):
            p.send("t", b"%d" % i, partition=0)
            p.flush()
        p.send("t", b"p1", partition=1)
    assert state(log, tid, 0).high_watermark == 1
    assert [m[3] for m in consume_all(log, "t")] == [b"before", b"alone"]
    assert write(log, lambda txn, dbs: replica.set_high_watermark(txn, dbs, tid, 0, 3)) == 3
    assert write(log, lambda txn, dbs: replica.set_high_watermark(txn, dbs, tid, 0, 2)) == 3  # never down
    assert write(log, lambda txn, dbs: replica.set_high_watermark(txn, dbs, tid, 0, 99)) == 5  # never past end
    assert [m[3] for m in consume_all(log, "t")] == [b"before", b"0", b"1", b"2", b"3", b"alone"]
    assert read(log, replica.in_sync_size) == 2
    write(log, lambda txn, dbs: replica.set_replicating(txn, dbs, False))
    lease.release()
    assert read(log, replica.in_sync_size) == 1
    assert state(log, tid, 1).high_watermark == 2
    assert [m[3] for m in consume_all(log, "t")][-1] == b"p1"


def test_the_replicating_flag_is_live_only_while_its_lease_is_held(log: Log) -> None:
    path = log._store.path
    log.create_topic("t")
    write(log, lambda txn, dbs: replica.set_replicating(txn, dbs, True))
    write(log, lambda txn, dbs: replica.set_isr(txn, dbs, {"isr": ["x"], "size": 2}))
    assert not replica.lease_live(path)  # nobody holds it: the flag is stale
    assert read(log, replica.is_replicating)  # as stored
    assert not read(log, lambda txn, dbs: replica.is_replicating(txn, dbs, path))
    assert read(log, lambda txn, dbs: replica.in_sync_size(txn, dbs, path)) == 1
    lease = replica.LeaderLease(path)
    assert replica.lease_live(path)
    assert read(log, lambda txn, dbs: replica.in_sync_size(txn, dbs, path)) == 2
    assert write(log, lambda txn, dbs: replica.leader_manages_hw(txn, dbs, path))
    with log.producer() as p:
        p.send("t", b"x")
    assert state(log, tid_of(log, "t"), 0).high_watermark == 0
    lease.release()
    lease.release()  # idempotent
    # a dead leader's flag still holds for appends: what they add stays hidden
    assert write(log, lambda txn, dbs: replica.leader_manages_hw(txn, dbs, path))
    with log.producer() as p:
        p.send("t", b"y")
    assert state(log, tid_of(log, "t"), 0).high_watermark == 0
    assert read(log, replica.is_replicating)
    write(log, lambda txn, dbs: replica.set_replicating(txn, dbs, False))  # (a Leader's clean stop)
    assert state(log, tid_of(log, "t"), 0).high_watermark == 2


def test_follower_state_roundtrips_and_promote_clears_it(log: Log) -> None:
    assert read(log, replica.get_follower_state) is None
    doc = {"leader": "L", "epoch": 1, "in_sync": True, "lag": 0}
    write(log, lambda txn, dbs: replica.set_follower_state(txn, dbs, doc))
    assert read(log, replica.get_follower_state) == doc
    write(log, lambda txn, dbs: replica.set_role(txn, dbs, "replica"))
    write(log, replica.promote)
    assert read(log, replica.get_follower_state) is None


# -- topics and committed offsets --------------------------------------------------------------------
def test_topic_metadata_converges_to_the_leaders(make_log: Callable[..., Log]) -> None:
    leader, follower = make_log("a"), make_log("b")
    leader.create_topic("a", 3, {"retention.ms": 1000})
    leader.create_topic("b", 1)
    follower.create_topic("local", 2)  # created before it followed: not the leader's, so it goes
    follower.create_topic("b", 4)  # same name, another topic (its own id): replaced
    with follower.producer() as p:
        p.send("local", b"x")
        p.send("b", b"y")
    write(follower, lambda txn, dbs: replica.set_role(txn, dbs, "replica"))
    sync_metadata(leader, follower)
    assert follower.topics() == ["a", "b"]
    assert read(follower, replica.topics_digest) == read(leader, replica.topics_digest)
    for name in ("a", "b"):
        assert follower.describe_topic(name) == leader.describe_topic(name)
    # alter, grow, delete, recreate (new id), create
    leader.alter_topic_config("a", {"retention.ms": 5000, "cleanup.policy": "compact"})
    leader.create_partitions("a", 5)
    old_b = tid_of(leader, "b")
    leader.delete_topic("b")
    leader.create_topic("b", 2)
    leader.create_topic("c", 1)
    assert tid_of(leader, "b") != old_b
    sync_metadata(leader, follower)
    assert read(follower, replica.topics_digest) == read(leader, replica.topics_digest)
    for name in ("a", "b", "c"):
        assert follower.describe_topic(name) == leader.describe_topic(name)
    assert follower.describe_topic("a").config["cleanup.policy"] == "compact"
    assert read(follower, lambda txn, dbs: plog.load_state(txn, dbs, old_b, 0)) is None
    # nothing to do: unchanged
    next_id, recs = read(leader, replica.topic_records)
    assert not write(follower, lambda txn, dbs: replica.apply_topics(txn, dbs, next_id, recs))
    # a promoted follower never reuses the leader's topic ids
    write(follower, replica.promote)
    follower.create_topic("d")
    assert tid_of(follower, "d") == next_id


def test_malformed_topic_records_are_refused(log: Log) -> None:
    for name, raw in (("ok", b"not json"), ("bad name!", b'{"id": 1, "partitions": 1, "config": {}}'),
                      ("ok", b'{"id": 1, "partitions": 0, "config": {}}'),
                      ("ok", b'{"id": 1, "partitions": 1, "config": {"retention.ms": "soon"}}')):
        with pytest.raises(replica.ApplyError):
            write(log, lambda txn, dbs, n=name, r=raw: replica.apply_topics(txn, dbs, 2, [(n, r)]))
    assert log.topics() == []


def test_committed_offsets_replicate_exactly(make_log: Callable[..., Log]) -> None:
    leader, follower = make_log("a"), make_log("b")
    leader.create_topic("t", 2)
    with leader.producer() as p:
        for i in range(10):
            p.send("t", b"%d" % i, partition=i % 2)
    leader.commit_offsets("g1", {TopicPartition("t", 0): 3, TopicPartition("t", 1): 5})
    leader.commit_offsets("g2", {TopicPartition("t", 1): 1})
    copy_all(leader, follower)
    with pytest.raises(embedlog.errors.NotLeaderError):  # a replica's offsets are the leader's
        follower.commit_offsets("mine", {TopicPartition("t", 0): 1})
    recs = read(leader, replica.offset_records)
    write(follower, lambda txn, dbs: replica.apply_offsets(txn, dbs, recs))
    assert read(follower, replica.offsets_digest) == read(leader, replica.offsets_digest)
    assert follower.groups() == ["g1", "g2"]
    c = follower.consumer(group="g1")
    assert c.committed([TopicPartition("t", 0), TopicPartition("t", 1)]) == {
        TopicPartition("t", 0): 3, TopicPartition("t", 1): 5}
    with pytest.raises(replica.ApplyError):
        write(follower, lambda txn, dbs: replica.apply_offsets(txn, dbs, [(b"short", b"")]))
    assert read(follower, replica.offsets_digest) == read(leader, replica.offsets_digest)


# -- the leader's merged read --------------------------------------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 300)), min_size=1, max_size=4),
                min_size=1, max_size=12),
       st.integers(1, 3000))
def test_merged_read_never_splits_a_transaction(make_log: Callable[..., Log], txns: list[list[tuple[int, int]]],
                                                max_bytes: int) -> None:
    """Leader transactions over 4 partitions, read in chunks of ``max_bytes`` and applied
    chunk by chunk: after every chunk the follower holds whole transactions only."""
    n = next(_RUNS)
    leader, follower = make_log(f"a{n}", durability="none"), make_log(f"b{n}", durability="none")
    leader.create_topic("t", 4)
    for records in txns:
        with leader.transaction() as tx:
            for part, size in records:
                tx.send("t", b"x" * size, partition=part)
    tid = tid_of(leader, "t")
    write(follower, lambda txn, dbs: replica.set_role(txn, dbs, "replica"))
    sync_metadata(leader, follower)
    by_seq: dict[int, set[int]] = {}
    for p in range(4):
        for b in raw_batches(leader, "t", p):
            by_seq.setdefault(codec.read_info(b).commit_seq, set()).add(p)
    rounds = 0
    while True:
        pos = [(tid, p, state(follower, tid, p).end_offset) for p in range(4)]
        got = read(leader, lambda txn, dbs, pos=pos: replica.read_merged(txn, dbs, pos, max_bytes))
        if not got.batches:
            break
        rounds += 1
        assert rounds <= 200
        for (t, p), bs in got.batches.items():
            write(follower, lambda txn, dbs, t=t, p=p, bs=bs: replica.apply(txn, dbs, t, p, bs))
        seen: dict[int, set[int]] = {}
        for p in range(4):
            for b in stored(follower, tid, p):
                seen.setdefault(codec.read_info(b).commit_seq, set()).add(p)
        assert all(seen[s] == by_seq[s] for s in seen)  # whole transactions only
        assert got.last_seq == max(seen)
        assert got.complete == (set(seen) == set(by_seq))
    for p in range(4):
        assert stored(follower, tid, p) == stored(leader, tid, p)


def test_merged_read_orders_by_commit_seq_and_respects_the_budget(log: Log) -> None:
    log.create_topic("t", 2)
    with log.producer() as p:
        for i in range(6):
            p.send("t", b"x" * 100, partition=i % 2)
            p.flush()
    tid = tid_of(log, "t")
    got = read(log, lambda txn, dbs: replica.read_merged(txn, dbs, [(tid, 0, 0), (tid, 1, 0)], 1))
    assert got.last_seq == 1
    assert not got.complete
    assert {k: len(v) for k, v in got.batches.items()} == {(tid, 0): 1}
    got = read(log, lambda txn, dbs: replica.read_merged(txn, dbs, [(tid, 0, 1), (tid, 1, 0)], 200))
    assert got.last_seq == 3
    assert {k: len(v) for k, v in got.batches.items()} == {(tid, 0): 1, (tid, 1): 1}
    got = read(log, lambda txn, dbs: replica.read_merged(txn, dbs, [(tid, 0, 3), (tid, 1, 3), (tid, 9, 0)], 1 << 20))
    assert got.batches == {}
    assert got.complete
    assert got.last_seq == 0
