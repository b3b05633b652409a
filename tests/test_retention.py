"""Retention (retention.ms / retention.bytes), delete_records and compaction on real logs."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import embedlog
from embedlog import Message, TopicPartition
from embedlog.codec import batch as codec
from embedlog.errors import InvalidOffsetError, OffsetOutOfRangeError
from embedlog.storage import compaction, schema
from procs.harness import drain, now_ms  # tests/procs/harness.py (tests/ is on sys.path)

MakeLog = Callable[..., embedlog.Log]
HOUR = 3_600_000
TP0 = TopicPartition("t", 0)


def read_all(log: embedlog.Log, topic: str = "t") -> list[Message]:
    with log.consumer([topic], auto_offset_reset="earliest") as c:
        return drain(c)


def write_batches(log: embedlog.Log, topic: str, batches: list[list[tuple[bytes | None, bytes | None, int | None]]],
                  *, compression: str | None = None, partition: int | None = 0) -> None:
    """Write each inner list as one batch (one flush): (key, value, timestamp_ms) records."""
    with log.producer(compression=compression, linger_ms=60_000) as p:
        for batch in batches:
            for key, value, ts in batch:
                p.send(topic, value, key=key, timestamp_ms=ts, partition=partition,
                       headers=[("k", key)] if key is not None else None)
            p.flush()


def part(log: embedlog.Log, topic: str = "t", partition: int = 0) -> embedlog.PartitionDescription:
    return log.describe_topic(topic).partitions[partition]


def assert_consistent(log: embedlog.Log) -> None:
    """The store's own checker agrees with what retention/compaction left behind."""
    report = log.verify()
    assert report.ok, report.problems


def stored_batches(log: embedlog.Log, topic: str, partition: int = 0) -> list[codec.DecodedBatch]:
    """The partition's batches as stored (their headers: the delete horizon)."""
    store = log._store
    prefix = schema.partition_key(log.describe_topic(topic).topic_id, partition)

    def fn(txn: object) -> list[codec.DecodedBatch]:
        with txn.cursor(db=store.dbs["batches"]) as cur:  # type: ignore[attr-defined]
            return [codec.decode(bytes(v)) for k, v in cur.iternext() if bytes(k[:8]) == prefix] \
                if cur.set_range(prefix) else []

    return store.read(fn)


def dir_size(path: str | os.PathLike[str]) -> int:
    """Bytes allocated on disk by every file under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(root, name))
            total += max(st.st_size, st.st_blocks * 512) if st.st_blocks else st.st_size
    return total


# ------------------------------------------------------------------------------------------
# retention.ms
# ------------------------------------------------------------------------------------------


def test_retention_ms_deletes_old_batches_on_maintain(log: embedlog.Log) -> None:
    log.create_topic("t", config={"retention.ms": HOUR})
    old = now_ms() - 2 * HOUR
    write_batches(log, "t", [[(None, b"old-%d-%d" % (b, i), old + i) for i in range(5)] for b in range(3)])
    write_batches(log, "t", [[(None, b"mixed-old", old), (None, b"mixed-new", now_ms())]])  # kept: max ts is new
    write_batches(log, "t", [[(None, b"new-%d" % i, None) for i in range(4)]])
    before = part(log)
    assert (before.start_offset, before.end_offset, before.batches) == (0, 21, 5)

    result = log.maintain()
    assert result["batches_deleted"] == 3
    after = part(log)
    assert (after.start_offset, after.end_offset, after.batches) == (15, 21, 2)
    assert after.bytes < before.bytes
    got = read_all(log)
    assert [m.offset for m in got] == list(range(15, 21))
    assert [m.value for m in got[:2]] == [b"mixed-old", b"mixed-new"]
    assert log.maintain()["batches_deleted"] == 0  # idempotent
    assert_consistent(log)


def test_retention_deletes_in_bounded_transactions(log: embedlog.Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """One write transaction per topic deleted every expired batch of every partition:
    100,000 batches held LMDB's write lock (every writer of every process) ~1.5 s.  Now a
    transaction deletes at most ``RETENTION_CHUNK`` batches, and the result is the same."""
    from embedlog.storage import store as store_mod  # noqa: PLC0415

    monkeypatch.setattr(store_mod, "RETENTION_CHUNK", 7)
    log.create_topic("t", partitions=3, config={"retention.ms": HOUR})
    old = now_ms() - 2 * HOUR
    for p in range(3):
        write_batches(log, "t", [[(b"k", b"old %d" % i, old)] for i in range(10 + p)], partition=p)
        write_batches(log, "t", [[(b"k", b"new", None)]], partition=p)
    deleted: list[int] = []
    write = log._store.write

    def counting(fn: Callable[..., object], **kw: object) -> object:
        out = write(fn, **kw)
        if isinstance(out, tuple):
            deleted.append(out[0])
        return out

    monkeypatch.setattr(log._store, "write", counting)
    assert log.maintain()["batches_deleted"] == 10 + 11 + 12
    assert sum(deleted) == 33, deleted
    assert max(deleted) <= 7, deleted  # (5 transactions at least)
    for p in range(3):
        assert (part(log, "t", p).start_offset, part(log, "t", p).end_offset) == (10 + p, 11 + p)
    assert [m.value for m in read_all(log)] == [b"new"] * 3
    assert_consistent(log)


def test_retention_ms_minus_one_keeps_everything(log: embedlog.Log) -> None:
    log.create_topic("t", config={"retention.ms": -1})
    write_batches(log, "t", [[(None, b"ancient", 1000)], [(None, b"old", now_ms() - 1000 * HOUR)]])
    assert log.maintain()["batches_deleted"] == 0
    assert [m.value for m in read_all(log)] == [b"ancient", b"old"]


def test_retention_ms_default_is_seven_days(log: embedlog.Log) -> None:
    log.create_topic("t")
    day = 24 * HOUR
    write_batches(log, "t", [[(None, b"8 days", now_ms() - 8 * day)], [(None, b"6 days", now_ms() - 6 * day)]])
    log.maintain()
    assert [(m.offset, m.value) for m in read_all(log)] == [(1, b"6 days")]


def test_retention_ms_all_old_then_offsets_continue(make_log: MakeLog) -> None:
    log = make_log()
    log.create_topic("t", 2, {"retention.ms": HOUR})
    old = now_ms() - 3 * HOUR
    for p in (0, 1):
        write_batches(log, "t", [[(None, b"x", old)] * 3, [(None, b"y", old)] * 2], partition=p)
    log.maintain()
    for p in (0, 1):
        d = part(log, "t", p)
        assert (d.start_offset, d.end_offset, d.batches, d.bytes) == (5, 5, 0, 0)
    assert read_all(log) == []
    log.close()
    log = make_log()  # offsets survive a reopen of an emptied partition
    assert (part(log).start_offset, part(log).end_offset) == (5, 5)
    write_batches(log, "t", [[(None, b"fresh", None)]])
    assert [(m.offset, m.value) for m in read_all(log)] == [(5, b"fresh")]
    assert_consistent(log)


def test_retention_ms_with_log_append_time_uses_append_time(log: embedlog.Log) -> None:
    log.create_topic("t", config={"retention.ms": HOUR, "message.timestamp.type": "LogAppendTime"})
    write_batches(log, "t", [[(None, b"claims to be old", now_ms() - 5 * HOUR)], [(None, b"b", None)]])
    assert log.maintain()["batches_deleted"] == 0
    assert len(read_all(log)) == 2


# ------------------------------------------------------------------------------------------
# retention.bytes
# ------------------------------------------------------------------------------------------


def test_retention_bytes_keeps_each_partition_bounded(log: embedlog.Log) -> None:
    limit = 20_000
    log.create_topic("t", 3, {"retention.bytes": limit})
    max_batch = 2_600  # the largest batch below: 20 records of ~120 bytes plus its header
    with log.producer() as p:
        for rnd in range(40):
            for part_no in range(3):
                for i in range(10 + part_no * 5):
                    p.send("t", b"r%d-%d-" % (rnd, i) + b"x" * 100, partition=part_no)
            p.flush()
            for d in log.describe_topic("t").partitions:
                assert d.bytes < limit + max_batch, d  # trimmed at append, not only by maintain()
    desc = log.describe_topic("t")
    for d in desc.partitions:
        assert limit <= d.bytes < limit + max_batch  # only as much as needed was deleted
        assert d.start_offset > 0
        assert d.end_offset == 40 * (10 + d.partition * 5)
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = drain(c)
    for d in desc.partitions:
        offsets = [m.offset for m in got if m.partition == d.partition]
        assert offsets == list(range(d.start_offset, d.end_offset))
    log.maintain()
    assert log.describe_topic("t").partitions == desc.partitions  # already within the limit
    assert_consistent(log)


def test_retention_bytes_never_cuts_the_transaction_that_writes(log: embedlog.Log) -> None:
    """A transaction (or flush) of many batches over retention.bytes is visible whole
    after its commit, as Kafka never deletes the active segment; the next append trims."""
    log.create_topic("t", 1, {"retention.bytes": 2000})
    with log.transaction(batch_size=500) as tx:
        for i in range(50):
            tx.send("t", b"x" * 100, key=b"k%d" % i)
    assert part(log).start_offset == 0
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = drain(c)
    assert [m.offset for m in got] == list(range(50))
    with log.producer() as p:
        p.send("t", b"y" * 100)
        p.flush()
        assert part(log).start_offset > 0  # the transaction's batches go at the next append
        for _ in range(29):
            p.send("t", b"y" * 100)
            p.flush()
    after = part(log)
    assert after.start_offset >= 50
    assert after.bytes < 2000 + 200
    assert after.end_offset == 80
    assert_consistent(log)


def test_retention_bytes_applies_after_alter(log: embedlog.Log) -> None:
    log.create_topic("t")
    write_batches(log, "t", [[(None, b"x" * 1000, None)] * 5 for _ in range(10)])
    full = part(log)
    assert full.batches == 10
    log.alter_topic_config("t", {"retention.bytes": full.bytes // 2})
    deleted = log.maintain()["batches_deleted"]
    trimmed = part(log)
    assert deleted == 10 - trimmed.batches
    assert trimmed.bytes <= full.bytes // 2 + full.bytes // 10
    assert trimmed.start_offset == 5 * deleted
    assert trimmed.end_offset == 50


def test_consumers_before_new_start_get_auto_offset_reset(log: embedlog.Log) -> None:
    log.create_topic("t", config={"retention.ms": HOUR})
    old = now_ms() - 2 * HOUR
    write_batches(log, "t", [[(None, b"old", old)] * 4, [(None, b"new", None)] * 3])
    consumers = {reset: log.consumer(["t"], auto_offset_reset=reset) for reset in ("earliest", "latest", "none")}
    for c in consumers.values():
        c.seek(TP0, 1)
    log.maintain()
    assert part(log).start_offset == 4
    assert [m.offset for m in drain(consumers["earliest"])] == [4, 5, 6]
    assert drain(consumers["latest"]) == []
    assert consumers["latest"].position(TP0) == 7
    with pytest.raises(OffsetOutOfRangeError):
        consumers["none"].poll(timeout=0)
    write_batches(log, "t", [[(None, b"later", None)]])
    assert [m.offset for m in drain(consumers["latest"])] == [7]
    for c in consumers.values():
        c.close()


def test_directory_stays_bounded_when_writing_20x_retention_bytes(log: embedlog.Log) -> None:
    limit = 2 << 20
    log.create_topic("t", config={"retention.bytes": limit})
    value = b"v" * 80
    total = 0
    i = 0
    with log.producer(linger_ms=60_000) as p:
        while total < 20 * limit:
            for _ in range(1000):
                p.send("t", value, key=b"key-%08d" % i)
                i += 1
                total += 100
            p.flush()
    d = part(log)
    assert d.bytes < limit + d.bytes // d.batches + 1
    assert d.end_offset == i
    size = dir_size(log.path)
    ratio = size / limit
    assert_consistent(log)
    print(f"\nwrote {total / limit:.0f}x retention.bytes ({i} records); log directory is {size} bytes "
          f"= {ratio:.2f}x retention.bytes")
    assert size < 8 * limit + (1 << 20), f"directory is {ratio:.2f}x retention.bytes"


# ------------------------------------------------------------------------------------------
# delete_records
# ------------------------------------------------------------------------------------------


def test_delete_records(make_log: MakeLog) -> None:
    log = make_log()
    log.create_topic("t", 2)
    write_batches(log, "t", [[(None, b"%d" % (b * 4 + i), None) for i in range(4)] for b in range(3)])  # 0..11
    bytes_before = part(log).bytes

    assert log.delete_records("t", 0, 4) == 4  # a batch boundary
    assert part(log).batches == 2
    assert part(log).bytes < bytes_before
    assert [m.offset for m in read_all(log)] == list(range(4, 12))

    assert log.delete_records("t", 0, 6) == 6  # inside a batch: records before it are hidden
    got = read_all(log)
    assert [(m.offset, m.value) for m in got] == [(o, b"%d" % o) for o in range(6, 12)]
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert c.beginning_offsets([TP0]) == {TP0: 6}
        c.seek(TP0, 5)
        assert [m.offset for m in drain(c)] == list(range(6, 12))  # reset to the new start

    assert log.delete_records("t", 0, 2) == 6  # never moves backwards
    with pytest.raises(OffsetOutOfRangeError, match="past the high watermark 12"):  # Kafka's OFFSET_OUT_OF_RANGE
        log.delete_records("t", 0, 13)
    with pytest.raises(InvalidOffsetError):
        log.delete_records("t", 0, -2)
    assert part(log).start_offset == 6  # (refused: nothing changed)
    assert log.delete_records("t", 0, -1) == 12  # -1: everything
    d = part(log)
    assert (d.start_offset, d.end_offset, d.batches, d.bytes) == (12, 12, 0, 0)
    assert read_all(log) == []

    write_batches(log, "t", [[(None, b"after", None)] * 2])
    assert [m.offset for m in read_all(log)] == [12, 13]  # offsets are never reused
    assert log.delete_records("t", 0, -1) == 14  # -1: everything
    assert part(log, "t", 1).end_offset == 0  # other partitions untouched
    log.close()
    log = make_log()
    d = part(log)
    assert (d.start_offset, d.end_offset) == (14, 14)
    write_batches(log, "t", [[(None, b"again", None)]])
    assert [m.offset for m in read_all(log)] == [14]
    assert_consistent(log)


def test_offsets_for_times_never_returns_deleted_offsets(log: embedlog.Log) -> None:
    log.create_topic("t")
    write_batches(log, "t", [[(None, b"x", 1000 + i) for i in range(8)], [(None, b"y", 2000)]])
    log.delete_records("t", 0, 6)  # offsets 0..5 are gone, though their batch is still stored
    with log.consumer(["t"]) as c:
        answer = c.offsets_for_times({TP0: 0})[TP0]
        assert answer is not None
        assert (answer.offset, answer.timestamp) == (6, 1006)
        answer = c.offsets_for_times({TP0: 1007})[TP0]
        assert answer is not None
        assert (answer.offset, answer.timestamp) == (7, 1007)
    log.delete_records("t", 0, 8)
    with log.consumer(["t"]) as c:
        answer = c.offsets_for_times({TP0: 0})[TP0]
        assert answer is not None
        assert answer.offset == 8


# ------------------------------------------------------------------------------------------
# compaction
# ------------------------------------------------------------------------------------------


def latest_per_key(records: list[tuple[int, bytes, bytes | None]]) -> dict[bytes, tuple[int, bytes | None]]:
    out: dict[bytes, tuple[int, bytes | None]] = {}
    for off, key, value in records:
        out[key] = (off, value)
    return out


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_compaction_keeps_latest_per_key_with_original_offsets(log: embedlog.Log, compression: str | None) -> None:
    log.create_topic("t", config={"cleanup.policy": "compact"})
    keys = [b"a", b"b", b"a", b"c", b"b", b"a", b"d", b"c", b"a", b"e", b"b", b"a"]
    batches = [[(k, b"%s-%d" % (k, 3 * b + i), None) for i, k in enumerate(keys[3 * b: 3 * b + 3])] for b in range(4)]
    batches.append([(b"a", b"last-1", None), (b"a", b"last-2", None), (b"f", b"last-3", None)])  # the active batch
    write_batches(log, "t", batches, compression=compression)
    written = [(m.offset, m.key or b"", m.value) for m in read_all(log)]
    assert [o for o, _, _ in written] == list(range(15))
    bytes_before = part(log).bytes

    removed = log.maintain()["records_compacted"]
    after = read_all(log)
    # the last batch (offsets 12..14) is untouched; before it, only each key's latest record
    latest = latest_per_key(written)
    expected = [(o, k, v) for o, k, v in written if o >= 12 or latest[k][0] == o]
    assert [(m.offset, m.key, m.value) for m in after] == expected
    assert removed == len(written) - len(expected)
    assert [m.offset for m in after] == [6, 7, 9, 10, 12, 13, 14]
    assert all(list(m.headers) == [("k", m.key)] for m in after)  # headers survive the rewrite
    d = part(log)
    assert d.bytes < bytes_before
    assert d.end_offset == 15
    assert log.maintain()["records_compacted"] == 0  # nothing more to do

    write_batches(log, "t", [[(b"a", b"newest", None)]])
    assert [m.offset for m in read_all(log)][-1] == 15  # offsets are never reused
    assert_consistent(log)


def test_compaction_consumers_skip_the_gaps(log: embedlog.Log) -> None:
    log.create_topic("t", config={"cleanup.policy": "compact"})
    # first batch is removed entirely: the partition's first remaining record is at offset 3
    write_batches(log, "t", [[(b"x", b"1", None), (b"y", b"1", None), (b"x", b"2", None)],
                             [(b"x", b"3", None), (b"y", b"2", None), (b"z", b"1", None)],
                             [(b"z", b"2", None)]])
    log.maintain()
    assert [m.offset for m in read_all(log)] == [3, 4, 6]
    with log.consumer(["t"], auto_offset_reset="none") as c:
        for start, expected in ((0, [3, 4, 6]), (1, [3, 4, 6]), (4, [4, 6]), (5, [6]), (6, [6]), (7, [])):
            c.seek(TP0, start)
            assert [m.offset for m in drain(c)] == expected, start
            assert c.position(TP0) == 7
    assert_consistent(log)


def test_compaction_tombstones_kept_until_delete_retention_ms(log: embedlog.Log) -> None:
    """A tombstone stays delete.retention.ms from the compaction that first saw it (its
    batch's delete horizon, as Kafka's KIP-534), whatever its own timestamp: one written
    now with a CreateTime two hours old was dropped by the first maintain()."""
    log.create_topic("t", config={"cleanup.policy": "compact", "delete.retention.ms": HOUR})
    now = now_ms()
    write_batches(log, "t", [
        [(b"old-del", b"v", now - 5 * HOUR), (b"recent-del", b"v", now - 5 * HOUR), (b"live", b"v1", now - 5 * HOUR)],
        [(b"old-del", None, now - 2 * HOUR), (b"recent-del", None, now - HOUR // 2), (b"live", b"v2", now - HOUR)],
        [(b"active", b"x", None)],
    ])
    log.maintain()
    got = [(m.offset, m.key, m.value) for m in read_all(log)]
    # both tombstones kept (consumers must see the deletes); older values of their keys removed
    assert got == [(3, b"old-del", None), (4, b"recent-del", None), (5, b"live", b"v2"), (6, b"active", b"x")]
    horizons = {b.info.delete_horizon for b in stored_batches(log, "t")}
    assert len(horizons - {None}) == 1
    (horizon,) = horizons - {None}
    assert now + HOUR <= horizon <= now_ms() + HOUR
    compaction.compact_all(log._store, now_ms=horizon - 1)  # not yet
    assert [m.offset for m in read_all(log)] == [3, 4, 5, 6]
    log.alter_topic_config("t", {"delete.retention.ms": HOUR // 4})  # (a horizon set stays, as in Kafka)
    compaction.compact_all(log._store, now_ms=horizon - 1)
    assert [m.offset for m in read_all(log)] == [3, 4, 5, 6]
    compaction.compact_all(log._store, now_ms=horizon)
    assert [(m.offset, m.key, m.value) for m in read_all(log)] == [(5, b"live", b"v2"), (6, b"active", b"x")]
    assert {b.info.delete_horizon for b in stored_batches(log, "t")} == {None}
    assert_consistent(log)


def test_delete_retention_ms_forever_keeps_tombstones_and_compacts(log: embedlog.Log) -> None:
    """``delete.retention.ms`` at Kafka's "forever" (2**63-1, accepted): the delete horizon
    is clamped, so compaction runs and keeps the tombstone (its sum with the time
    overflowed the header's i64: every maintain() raised struct.error)."""
    log.create_topic("t", config={"cleanup.policy": "compact", "delete.retention.ms": 2**63 - 1})
    write_batches(log, "t", [[(b"k", b"v", None)], [(b"k", None, None)], [(b"other", b"x", None)]])
    log.maintain()
    assert [(m.offset, m.key, m.value) for m in read_all(log)] == [(1, b"k", None), (2, b"other", b"x")]
    log.maintain()
    assert_consistent(log)


def test_a_partition_that_cannot_be_compacted_stops_no_other(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A damaged batch in one compacted topic: ``maintain()`` compacts the other topics and
    expires offsets, then raises the damage (it raised before them, so nothing after that
    topic was ever compacted); background maintenance says so in the log, once."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as lg:
        for name in ("a", "b"):
            lg.create_topic(name, config={"cleanup.policy": "compact"})
            write_batches(lg, name, [[(b"k", b"1", None)], [(b"k", b"2", None)], [(b"z", b"x", None)]])
        store = lg._store
        tid = lg.describe_topic("a").topic_id

        def corrupt(txn: object) -> None:
            key = schema.batch_key(tid, 0, 1)
            buf = bytearray(txn.get(key, db=store.dbs["batches"]))  # type: ignore[attr-defined]
            buf[-1] ^= 0xFF
            txn.put(key, bytes(buf), db=store.dbs["batches"])  # type: ignore[attr-defined]

        store.write(corrupt)
        with pytest.raises(embedlog.errors.CorruptRecordError):
            lg.maintain()
        assert [m.offset for m in read_all(lg, "b")] == [1, 2]
    with caplog.at_level("WARNING", logger="embedlog.maintenance"), embedlog.open(
            tmp_path / "log", durability="none", maintenance_interval_ms=50):
        time.sleep(0.5)
    warned = [r for r in caplog.records if "background maintenance" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]


def test_an_expired_tombstone_goes_without_new_writes(log: embedlog.Log) -> None:
    """An unchanged partition is compacted again once its tombstones may have expired
    (it used to wait for a new record when min.compaction.lag.ms was 0)."""
    log.create_topic("t", config={"cleanup.policy": "compact", "delete.retention.ms": 300})
    write_batches(log, "t", [[(b"a", b"v", None)], [(b"a", None, None)], [(b"b", b"v", None)]])
    log.maintain()
    assert [(m.offset, m.key, m.value) for m in read_all(log)] == [(1, b"a", None), (2, b"b", b"v")]
    time.sleep(0.4)
    log.maintain()
    assert [(m.offset, m.key, m.value) for m in read_all(log)] == [(2, b"b", b"v")]
    assert_consistent(log)


def test_compaction_never_touches_the_last_batch(log: embedlog.Log) -> None:
    log.create_topic("t", config={"cleanup.policy": "compact", "delete.retention.ms": 0})
    old = now_ms() - HOUR
    write_batches(log, "t", [[(b"k", b"1", old)], [(b"k", b"2", old), (b"k", None, old), (b"j", b"1", old)]])
    log.maintain()
    assert [(m.offset, m.value) for m in read_all(log)] == [(1, b"2"), (2, None), (3, b"1")]
    d = part(log)
    assert d.batches == 1


def test_compaction_respects_min_compaction_lag(log: embedlog.Log) -> None:
    """As Kafka's cleaner: the compactable part ends at the first batch newer than
    min.compaction.lag.ms; nothing from it on is compacted, nor counts as a key's latest
    record, so an older record superseded only from there on stays for now."""
    log.create_topic("t", config={"cleanup.policy": "compact", "min.compaction.lag.ms": HOUR})
    now = now_ms()
    write_batches(log, "t", [[(b"k", b"old", now - 3 * HOUR)], [(b"k", b"older", now - 2 * HOUR)],
                             [(b"k", b"young", now - 1000)], [(b"k", b"newest", None)], [(b"other", b"x", None)]])
    log.maintain()
    assert [m.value for m in read_all(log)] == [b"older", b"young", b"newest", b"x"]


def test_compaction_only_on_compacted_topics(log: embedlog.Log) -> None:
    log.create_topic("t")
    write_batches(log, "t", [[(b"k", b"1", None)], [(b"k", b"2", None)], [(b"k", b"3", None)]])
    assert log.maintain()["records_compacted"] == 0
    assert len(read_all(log)) == 3
    log.alter_topic_config("t", {"cleanup.policy": "compact"})
    assert log.maintain()["records_compacted"] == 2
    assert [(m.offset, m.value) for m in read_all(log)] == [(2, b"3")]


def test_compaction_removes_records_without_key(log: embedlog.Log) -> None:
    """Keyless records written before the topic became compacted go, as in Kafka's cleaner."""
    log.create_topic("t")
    write_batches(log, "t", [[(None, b"n0", None), (None, b"n1", None)], [(b"k", b"k0", None), (None, b"n2", None)],
                             [(b"k", b"k1", None)], [(None, b"n-last", None)]])
    log.alter_topic_config("t", {"cleanup.policy": "compact"})
    assert log.maintain()["records_compacted"] == 4
    assert [(m.offset, m.key, m.value) for m in read_all(log)] == [(4, b"k", b"k1"), (5, None, b"n-last")]
    assert_consistent(log)


def test_compact_delete_applies_both(log: embedlog.Log) -> None:
    log.create_topic("t", config={"cleanup.policy": "compact,delete", "retention.ms": HOUR})
    now = now_ms()
    write_batches(log, "t", [
        [(b"a", b"expired", now - 3 * HOUR), (b"b", b"expired", now - 3 * HOUR)],
        [(b"a", b"a1", now - 1000), (b"c", b"c1", now - 1000)],
        [(b"a", b"a2", now - 1000), (b"c", b"c2", now - 1000)],
        [(b"d", b"d1", None)],
    ])
    result = log.maintain()
    assert result["batches_deleted"] == 1
    assert result["records_compacted"] == 2
    assert part(log).start_offset == 2
    assert [(m.offset, m.key, m.value) for m in read_all(log)] == [(4, b"a", b"a2"), (5, b"c", b"c2"), (6, b"d", b"d1")]
    assert_consistent(log)


def test_compaction_on_compact_only_topic_ignores_retention(log: embedlog.Log) -> None:
    log.create_topic("t", config={"cleanup.policy": "compact", "retention.ms": HOUR, "retention.bytes": 100})
    old = now_ms() - 5 * HOUR
    write_batches(log, "t", [[(b"a", b"x" * 500, old)], [(b"b", b"y" * 500, old)], [(b"c", b"z", old)]])
    assert log.maintain()["batches_deleted"] == 0
    assert [m.key for m in read_all(log)] == [b"a", b"b", b"c"]


def test_maintenance_thread_runs_retention(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=50) as log:
        log.create_topic("t", config={"retention.ms": HOUR})
        write_batches(log, "t", [[(None, b"old", now_ms() - 2 * HOUR)], [(None, b"new", None)]])
        deadline = time.monotonic() + 30
        while part(log).start_offset == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert part(log).start_offset == 1


_DEAD_READER = """
import lmdb, sys, time
env = lmdb.open(sys.argv[1], readonly=True, lock=True, max_dbs=32)
txn = env.begin()            # a reader slot with this process's pid and today's snapshot
print("reading", flush=True)
time.sleep(600)
"""


def test_a_reader_killed_mid_read_does_not_unbound_the_directory(tmp_path: Path) -> None:
    """A process killed inside a read transaction leaves its LMDB reader slot, whose
    snapshot would keep every page freed since from being reused: a writer that stays
    open frees such slots (every quarter second at most) so retention still bounds the
    directory, with no maintenance run and no reopen."""
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    path = tmp_path / "log"
    rb = 300_000
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        log.create_topic("t", config={"retention.bytes": rb})
        with log.producer() as p:
            for i in range(300):
                p.send("t", os.urandom(1000))
                if i % 50 == 49:
                    p.flush()
        child = subprocess.Popen([sys.executable, "-c", _DEAD_READER, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "reading"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        before = (path / "data.mdb").stat().st_size
        with log.producer() as p:
            p.send("t", b"x")
            p.flush()
            time.sleep(0.3)  # (the writer looks for dead readers at most every 0.25 s)
            for i in range(20 * rb // 1000):
                p.send("t", os.urandom(1000))
                if i % 50 == 49:
                    p.flush()
        kept = log.describe_topic("t").partitions[0].bytes
        after = (path / "data.mdb").stat().st_size
    assert kept <= 2 * rb
    assert after <= before + 6 * rb, f"data.mdb grew from {before} to {after} bytes writing {i} KB"


def _damaged_offsets(lg: embedlog.Log, topic: str) -> list[int]:
    return [r.offset for b in lg.dump(topic, 0) for r in b.records]


def test_damaged_header_under_retention_stops_no_other_topic(tmp_path: Path) -> None:
    """A batch header damaged at the front of a partition under retention: maintain()
    raised codec's ValueError before any other topic's retention or compaction (background
    maintenance then did nothing, for good); it raises a CorruptRecordError naming it once
    the rest is done."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as lg:
        _three_topics(lg)
        _corrupt_header(lg, "a", 0, 0)
        with pytest.raises(embedlog.errors.CorruptRecordError, match=r"retention of a\[0\] stops at") as raised:
            lg.maintain()
        # the other topics were maintained (as compaction does: "a partition that fails does
        # not stop the others")
        assert _damaged_offsets(lg, "c") == [], "retention of an undamaged topic was not done"
        assert _damaged_offsets(lg, "b") == [2], "compaction of an undamaged topic was not done"
        assert (raised.value.topic, raised.value.partition, raised.value.offset) == ("a", 0, 0)


def test_damaged_header_under_retention_bytes_fails_no_write(tmp_path: Path) -> None:
    """retention.bytes runs inside each append: with the partition's first batch's header
    damaged, every flush that reached the limit raised codec's ValueError, and took the
    flush's records for other, healthy topics down with it.  The trimming stops there."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as lg:
        lg.create_topic("a", config={"retention.bytes": 1000})
        lg.create_topic("b")
        with lg.producer() as p:
            for _ in range(3):
                p.send("a", b"v" * 300, key=b"k")
                p.flush()
            _corrupt_header(lg, "a", 0, 0)
            p.send("b", b"healthy", key=b"k")
            p.send("a", b"w" * 300, key=b"k")
            p.flush()  # (the size trimming stops before the damaged batch: the flush is written)
            assert lg.describe_topic("b").partitions[0].end_offset == 1
            assert lg.describe_topic("a").partitions[0].end_offset == 4


def _three_topics(lg: embedlog.Log) -> None:
    """Topics a and c (retention.ms 60 s) with three batches past it each, b compacted
    with three records of one key."""
    old = int(time.time() * 1000) - 3_600_000
    lg.create_topic("a", config={"retention.ms": 60_000})
    lg.create_topic("b", config={"cleanup.policy": "compact"})
    lg.create_topic("c", config={"retention.ms": 60_000})
    with lg.producer() as p:
        for topic in ("a", "c"):
            for _ in range(3):
                p.send(topic, b"v", key=b"k", timestamp_ms=old)
                p.flush()
        for v in (b"1", b"2", b"3"):
            p.send("b", v, key=b"k")
            p.flush()


def _corrupt_header(lg: embedlog.Log, topic: str, part: int, offset: int) -> None:
    """Flip the magic byte of the batch at ``offset``: its header cannot be read."""
    store = lg._store
    tid = lg.describe_topic(topic).topic_id

    def fn(txn: object) -> None:
        key = schema.batch_key(tid, part, offset)
        buf = bytearray(txn.get(key, db=store.dbs["batches"]))  # type: ignore[attr-defined]
        buf[24] ^= 0xFF  # the magic byte
        txn.put(key, bytes(buf), db=store.dbs["batches"])  # type: ignore[attr-defined]

    store.write(fn)


def test_damaged_first_batch_of_a_later_partition_is_reported_when_an_earlier_one_is_due(tmp_path: Path) -> None:
    """Partition 0 has batches past retention.ms; partition 1's first batch header is
    damaged.  _retention_due stops looking at a topic at its first due partition, so
    partition 1 is never looked at: maintain() returns without the CorruptRecordError
    (and retention of a[1] silently stops for as long as a[0] keeps ageing out)."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as lg:
        old = int(time.time() * 1000) - 3_600_000
        lg.create_topic("a", partitions=2, config={"retention.ms": 60_000})
        with lg.producer() as p:
            for part in (0, 1):
                for _ in range(3):
                    p.send("a", b"v", key=b"k", partition=part, timestamp_ms=old)
                    p.flush()
        _corrupt_header(lg, "a", 1, 0)
        with pytest.raises(embedlog.errors.CorruptRecordError, match=r"retention of a\[1\] stops at"):
            lg.maintain()


def test_damaged_batch_in_the_middle_stops_no_other_topic(tmp_path: Path) -> None:
    """The damaged batch is the second of partition a[0], not the first: retention deletes
    the first batch, and ``partition.delete_before`` reads the damaged header after it
    (to see whether it goes too) with no guard: maintain() raises codec's raw
    CorruptBatchError (a ValueError) from the retention write, before topic c's
    retention and before any compaction -- what 0461ef1 fixed for a damaged *first*
    batch.  The write is rolled back, so every later pass (background maintenance too)
    fails the same way, for good."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as lg:
        _three_topics(lg)
        _corrupt_header(lg, "a", 0, 1)
        with contextlib.suppress(embedlog.errors.CorruptRecordError):  # (naming a[0]: in this pass or the next)
            lg.maintain()
        assert lg.describe_topic("c").partitions[0].start_offset == 3, "retention of a healthy topic was not done"
        assert [r.offset for b in lg.dump("b", 0) for r in b.records] == [2], "compaction was not done"
        assert lg.describe_topic("a").partitions[0].start_offset == 1  # (up to the damaged batch)
        assert lg.delete_records("a", 0, 3) == 3  # (past it: it goes too, bounded by the next batch)
        assert lg.describe_topic("a").partitions[0].end_offset == 3
        lg.maintain()  # (nothing damaged is left)
