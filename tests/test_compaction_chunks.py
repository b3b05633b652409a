"""Compaction in two passes (a scan without the write lock, then rewrites in bounded
write transactions), against a plain-list model of the partition.

The model holds every record ever flushed, by offset.  Whatever the chunk size and
whatever happens between the scan and the rewrites (new records; a replica's truncation
of the log and other records written at the truncated offsets), every record read back
must be the model's record at its offset, and every key's latest record must be there.
After a compaction with nothing in between, nothing superseded may remain outside the
last batch.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

import embedlog
from embedlog.storage import compaction, replica

TOPIC = "c"
#: short keys, an empty one, and one long enough to be kept in the offset map as a digest
KEYS = st.sampled_from([b"a", b"b", b"", b"long-key-" * 4])
VALUES = st.one_of(st.none(), st.binary(min_size=1, max_size=40))
GONE = (b"\x00gone", None)  # a model entry compaction removed before a truncation made it the latest
BUDGETS = st.sampled_from([1, 300, 10**9])  # bytes of batches per write transaction


def _records(log: embedlog.Log) -> list[tuple[int, list[tuple[int, bytes | None, bytes | None]]]]:
    """(base offset, [(offset, key, value)]) of every stored batch."""
    return [(b.base_offset, [(r.offset, r.key, r.value) for r in b.records]) for b in log.dump(TOPIC, 0)]


def _run_chunks(log: embedlog.Log, s: compaction.PartitionScan, budget: int) -> bool:
    """Pass two by hand; whether it ran to the end (``False``: the partition changed)."""
    store = log._store
    start: int | None = 0
    try:
        while start is not None:
            def fn(txn: Any, start: int = start) -> tuple[int, int | None]:
                return compaction.compact_chunk(txn, store.dbs, TOPIC, s, start, 2**62, budget=budget)

            _, start = store.write(fn)
    except compaction.PartitionChanged:
        return False
    return True


class CompactionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="embedlog-compact-")
        self.log = embedlog.open(self.dir)
        self.log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact"})
        self.producer = self.log.producer(linger_ms=60_000, batch_size=200)
        self.model: list[tuple[bytes | None, bytes | None]] = []  # flushed records, by offset
        self.pending: list[tuple[bytes | None, bytes | None]] = []

    @initialize(n=st.integers(2, 6))
    def start(self, n: int) -> None:
        for i in range(n):
            self._send(b"a" if i % 2 else b"b", b"v%d" % i)
            self._flush()

    def _send(self, key: bytes | None, value: bytes | None) -> None:
        self.producer.send(TOPIC, value, key=key)
        self.pending.append((key, value))

    def _flush(self) -> None:
        self.producer.flush()
        self.model.extend(self.pending)
        self.pending.clear()

    def _scan(self) -> compaction.PartitionScan | None:
        store = self.log._store
        meta = store.topic(TOPIC)
        return store.read(lambda txn: compaction.scan(txn, store.dbs, meta, 0))

    @rule(key=KEYS, value=VALUES)
    def send(self, key: bytes | None, value: bytes | None) -> None:
        self._send(key, value)

    @rule()
    def flush(self) -> None:
        self._flush()

    @rule(budget=BUDGETS)
    def compact(self, budget: int) -> None:
        self._flush()
        old = compaction.CHUNK_BYTES
        compaction.CHUNK_BYTES = budget
        try:
            compaction.compact_all(self.log._store, now_ms=2**62)
        finally:
            compaction.CHUNK_BYTES = old
        # nothing happened in between: outside the last batch only latest records remain
        latest = {rec[0]: off for off, rec in enumerate(self.model) if rec != GONE}
        batches = _records(self.log)
        for _, recs in batches[:-1]:
            for off, key, _ in recs:
                assert latest[key] == off, (off, key, batches)

    @rule(budget=BUDGETS, keys=st.lists(KEYS, min_size=1, max_size=4))
    def compact_while_others_write(self, budget: int, keys: list[bytes | None]) -> None:
        self._flush()
        s = self._scan()
        for key in keys:
            self._send(key, b"later")
        self._flush()
        if s is not None:
            assert _run_chunks(self.log, s, budget)

    @rule(budget=BUDGETS, back=st.integers(1, 6), keys=st.lists(KEYS, min_size=0, max_size=4))
    def compact_across_a_truncation(self, budget: int, back: int, keys: list[bytes | None]) -> None:
        """A replica truncates the log (below the high watermark, as an unclean promotion
        can) after the scan, and other records land at the truncated offsets."""
        self._flush()
        s = self._scan()
        store = self.log._store
        meta = store.topic(TOPIC)
        end = store.write(lambda txn: replica.truncate(txn, store.dbs, meta.topic_id, 0,
                                                       max(0, len(self.model) - back)))
        del self.model[end:]
        for key in keys:
            self._send(key, b"other")
        self._flush()
        # What earlier compactions removed below the truncation point is gone for good
        # (truncating below the high watermark undoes what compaction relied on): from
        # here on a key's latest record is its latest one stored now.
        present = {off for _, recs in _records(self.log) for off, _, _ in recs}
        self.model = [rec if off in present else GONE for off, rec in enumerate(self.model)]
        if s is not None:
            _run_chunks(self.log, s, budget)

    @invariant()
    def matches_the_model(self) -> None:
        seen: dict[bytes | None, int] = {}
        last = -1
        for _, recs in _records(self.log):
            for off, key, value in recs:
                assert off > last
                last = off
                assert (key, value) == self.model[off], (off, key, value, self.model)
                seen[key] = off
        latest = {rec[0]: off for off, rec in enumerate(self.model) if rec != GONE}
        for key, off in latest.items():
            assert seen.get(key) == off, (key, off, seen)

    def teardown(self) -> None:
        self.producer.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_compaction_against_a_model() -> None:
    run_state_machine_as_test(CompactionMachine, settings=settings(
        max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)))


def test_compaction_rewrites_in_bounded_transactions(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A partition larger than a chunk is rewritten in several write transactions, each
    of at most about ``CHUNK_BYTES`` of batches: producers wait for one chunk at a time."""
    with embedlog.open(str(tmp_path)) as log:
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact"})
        with log.producer(batch_size=2_000) as p:
            for i in range(3_000):
                p.send(TOPIC, b"x" * 50, key=b"k%d" % (i % 10))
            p.flush()
        batches = len(_records(log))
        assert batches > 20
        store = log._store
        writes: list[int] = []
        write = store.write

        def counting(fn: Any, **kw: Any) -> Any:
            writes.append(1)
            return write(fn, **kw)

        monkeypatch.setattr(store, "write", counting)
        monkeypatch.setattr(compaction, "CHUNK_BYTES", 10_000)
        assert log.maintain()["records_compacted"] > 2_900
        assert len(writes) >= batches * 2_000 // 10_000 // 2
        # every key has a later record in the last batch (which is never compacted): the
        # batches before it were emptied and deleted, chunk after chunk
        after = _records(log)
        assert len(after) == 1
        assert {key for _, key, _ in after[0][1]} == {b"k%d" % i for i in range(10)}


def test_compaction_stops_when_the_topic_is_recreated(tmp_path: Any) -> None:
    """A topic deleted and created again between the scan and the rewrites is left alone."""
    with embedlog.open(str(tmp_path)) as log:
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact"})
        with log.producer() as p:
            for i in range(4):
                p.send(TOPIC, b"old", key=b"k")
                p.flush()
        store = log._store
        meta = store.topic(TOPIC)
        s = store.read(lambda txn: compaction.scan(txn, store.dbs, meta, 0))
        assert s is not None
        log.delete_topic(TOPIC)
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact"})
        with log.producer() as p:
            for i in range(4):
                p.send(TOPIC, b"new%d" % i, key=b"j" if i == 3 else b"k")
                p.flush()
        assert not _run_chunks(log, s, 10**9)
        assert [v for _, recs in _records(log) for _, _, v in recs] == [b"new0", b"new1", b"new2", b"new3"]


def test_compaction_runs_again_after_a_truncation_to_the_same_end(tmp_path: Any) -> None:
    """A replica's truncation, then as many other records as it removed, leaves start,
    end, batch count and high watermark as they were at the last compaction: the other
    records must still be compacted (the partition changed), not skipped as seen."""
    with embedlog.open(str(tmp_path)) as log:
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact"})
        with log.producer() as p:
            for key in (b"a", b"b", b"c"):
                p.send(TOPIC, b"v", key=key)
                p.flush()
            assert log.maintain()["records_compacted"] == 0  # (three keys: nothing to remove)
            store = log._store
            tid = store.topic(TOPIC).topic_id
            assert store.write(lambda txn: replica.truncate(txn, store.dbs, tid, 0, 1)) == 1
            for key in (b"a", b"d"):
                p.send(TOPIC, b"w", key=key)
                p.flush()
        assert [(r[0], r[1]) for _, recs in _records(log) for r in recs] == [(0, b"a"), (1, b"a"), (2, b"d")]
        assert log.maintain()["records_compacted"] == 1
        assert [(r[0], r[1]) for _, recs in _records(log) for r in recs] == [(1, b"a"), (2, b"d")]


def test_compaction_memory_does_not_grow_with_the_partition(tmp_path: Any) -> None:
    """Compaction holds one chunk of decoded batches and the offset map, not the whole
    partition decoded (20 MB of records here, ten keys)."""
    import tracemalloc  # noqa: PLC0415 - only this test traces allocations

    with embedlog.open(str(tmp_path)) as log:
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact"})
        with log.producer() as p:
            for i in range(200_000):
                p.send(TOPIC, b"%100d" % i, key=b"k%d" % (i % 10))
            p.flush()
        tracemalloc.start()
        try:
            removed = log.maintain()["records_compacted"]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert removed > 190_000
        assert peak < 3 * compaction.CHUNK_BYTES + (2 << 20), peak


def value_then_tombstone(log: embedlog.Log, value_ts: int, tombstone_ts: int, now: int
                         ) -> list[tuple[int, bytes | None, bytes | None]]:
    """Key k's value (offset 0), its tombstone (1) and another key (2), each its own batch,
    with the given timestamps; two compactions at ``now`` and a second later; what stays."""
    with log.producer() as p:
        for key, value, ts in ((b"k", b"v", value_ts), (b"k", None, tombstone_ts), (b"x", b"1", None)):
            p.send(TOPIC, value, key=key, timestamp_ms=ts)
            p.flush()
    for later in (0, 1000):
        compaction.compact_all(log._store, now_ms=now + later)
    return [(off, key, value) for _, recs in _records(log) for off, key, value in recs]


def test_a_tombstone_older_than_the_value_it_deletes_stays_while_the_value_does(tmp_path: Any) -> None:
    """min.compaction.lag.ms ends the compactable part at the first batch newer than the
    lag, as Kafka's cleaner stops at its first uncleanable segment: a tombstone stamped
    before the value it deletes, after that value, is not dropped while the value stays
    (the key came back)."""
    with embedlog.open(str(tmp_path), maintenance_interval_ms=None) as log:
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact", "min.compaction.lag.ms": 3_600_000,
                                                      "delete.retention.ms": 0})
        now = 10**13
        kept = value_then_tombstone(log, now, now - 7_200_000, now)  # (a tombstone stamped earlier)
        assert (1, b"k", None) in kept, kept
        assert (0, b"k", b"v") in kept


def test_records_appended_during_a_compaction_are_compacted_by_the_next_maintain(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass never looks at records appended after its scan: the partition is not marked
    as compacted then, so the next maintain removes what they supersede (it was skipped
    until the next write, keeping superseded records)."""
    with embedlog.open(str(tmp_path), maintenance_interval_ms=None) as log:
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact"})
        p = log.producer()
        for key, value in ((b"a", b"a1"), (b"a", b"a2"), (b"b", b"b1")):
            p.send(TOPIC, value, key=key)
            p.flush()
        scan = compaction.scan

        def scan_then_write(*args: Any, **kw: Any) -> Any:
            s = scan(*args, **kw)
            p.send(TOPIC, b"b2", key=b"b")  # (another process writing between the passes)
            p.flush()
            return s

        monkeypatch.setattr(compaction, "scan", scan_then_write)
        log.maintain()
        monkeypatch.setattr(compaction, "scan", scan)
        for _ in range(2):
            log.maintain()
        kept = [(off, key, value) for _, recs in _records(log) for off, key, value in recs]
        assert kept == [(1, b"a", b"a2"), (3, b"b", b"b2")]
        p.close()


def test_record_timestamps_do_not_matter_without_a_lag(tmp_path: Any) -> None:
    """With min.compaction.lag.ms=0 (the default) timestamps are not looked at, as in
    Kafka's cleaner: a value stamped in the future is superseded like any other, and its
    tombstone does not go while it stays (the deleted key came back)."""
    with embedlog.open(str(tmp_path), maintenance_interval_ms=None) as log:
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact", "delete.retention.ms": 0})
        now = 10**13
        kept = value_then_tombstone(log, now + 3_600_000, now, now)  # (a value stamped an hour ahead)
        assert kept == [(2, b"x", b"1")]


def test_a_high_watermark_moving_during_a_compaction_is_looked_at_by_the_next(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replicating leader's followers catching up while a pass runs (nothing appended):
    the pass looked below the old high watermark only, so the next maintain compacts up
    to the new one (the partition was remembered as compacted until the next write)."""
    from embedlog.storage import partition as plog  # noqa: PLC0415

    with embedlog.open(str(tmp_path), maintenance_interval_ms=None) as log:
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact"})
        with log.producer() as p:
            for key, value in ((b"a", b"a1"), (b"b", b"b1"), (b"a", b"a2"), (b"x", b"x1")):
                p.send(TOPIC, value, key=key)
                p.flush()
        store = log._store
        tid = store.topic(TOPIC).topic_id

        def set_hw(hw: int) -> None:
            def fn(txn: Any) -> None:
                st = plog.load_state(txn, store.dbs, tid, 0)
                assert st is not None
                st.high_watermark = hw
                plog.store_state(txn, store.dbs, tid, 0, st)

            store.write(fn)

        set_hw(2)  # (the followers hold offsets 0 and 1 only)
        scan = compaction.scan

        def scan_then_followers_ack(*args: Any, **kw: Any) -> Any:
            s = scan(*args, **kw)
            set_hw(4)
            return s

        monkeypatch.setattr(compaction, "scan", scan_then_followers_ack)
        log.maintain()
        monkeypatch.setattr(compaction, "scan", scan)
        log.maintain()
        kept = [(off, key, value) for _, recs in _records(log) for off, key, value in recs]
        assert (0, b"a", b"a1") not in kept, kept


def test_a_tombstone_written_during_a_pass_is_kept_delete_retention_ms_from_its_compaction(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass read the clock once, before its first partition: a tombstone written while
    it compacted an earlier partition got a delete horizon counted from the pass's start,
    and could go well before ``delete.retention.ms`` from its write."""
    import time  # noqa: PLC0415

    class Clock:
        ms = time.time_ns() // 1_000_000

        def time_ns(self) -> int:
            return self.ms * 1_000_000

    clock = Clock()
    monkeypatch.setattr(compaction, "time", clock)
    log = embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None)
    for name in ("a", "b"):
        log.create_topic(name, 1, config={"cleanup.policy": "compact", "delete.retention.ms": 60_000})
    p = log.producer()
    for i in range(3):  # ("a" has something to compact)
        p.send("a", b"v%d" % i, key=b"x")
        p.flush()
    p.send("b", b"old", key=b"gone")
    p.flush()
    real = compaction._compact_in_chunks

    def slow_a(store: Any, meta: Any, part: int, now_ms: int, horizons: Any) -> int:
        n = real(store, meta, part, now_ms, horizons)
        if meta.name == "a":  # compacting "a" took two minutes; meanwhile "gone" is deleted
            clock.ms += 120_000
            p.send("b", None, key=b"gone")
            p.flush()
            p.send("b", b"y", key=b"other")  # (the tombstone's batch is not the last one)
            p.flush()
        return n

    monkeypatch.setattr(compaction, "_compact_in_chunks", slow_a)
    log.maintain()  # its compaction of "b" is the first to see the tombstone
    clock.ms += 1_000
    monkeypatch.setattr(compaction, "_compact_in_chunks", real)
    log.maintain()
    assert (b"gone", None) in [(r.key, r.value) for b in log.dump("b", 0) for r in b.records]
    p.close()
    log.close()
