"""The consumer's read path: ``partition.fetch`` limits, the one-record decode, the
GIL-holding checksum, and what ``poll`` returns around the visibility limit and damage.

Real LMDB directories in ``tmp_path``; damage is written straight into the stored
bytes, as a bad disk would leave it.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedlog
from embedlog import TopicPartition
from embedlog.codec import batch
from embedlog.codec.batch import CorruptBatchError
from embedlog.errors import CorruptRecordError
from embedlog.storage import partition as plog
from embedlog.storage import schema

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
maybe_bytes = st.none() | st.binary(max_size=64)


# -- helpers ------------------------------------------------------------------------------------------
def _batch_keys(log: embedlog.Log, topic: str, part: int) -> list[bytes]:
    tid = log.describe_topic(topic).topic_id
    prefix = schema.partition_key(tid, part)
    with log._store.env.read() as txn, txn.cursor(db=log._store.dbs["batches"]) as cur:
        if not cur.set_range(prefix):
            return []
        return [bytes(k) for k in cur.iternext(values=False) if bytes(k[:8]) == prefix]


def _flip(log: embedlog.Log, key: bytes, at: int) -> None:
    dbs = log._store.dbs

    def damage(txn: lmdb.Transaction) -> None:
        buf = bytearray(bytes(txn.get(key, db=dbs["batches"])))
        buf[at] ^= 0x01
        txn.put(key, bytes(buf), db=dbs["batches"])

    log._store.write(damage)


def _set_high_watermark(log: embedlog.Log, topic: str, part: int, hw: int) -> None:
    tid = log.describe_topic(topic).topic_id
    dbs = log._store.dbs

    def lower(txn: lmdb.Transaction) -> None:
        state = plog.load_state(txn, dbs, tid, part)
        assert state is not None
        state.high_watermark = hw
        plog.store_state(txn, dbs, tid, part, state)

    log._store.write(lower)


def _write_batches(log: embedlog.Log, topic: str, sizes: list[int], partition: int = 0) -> None:
    """One batch per entry of ``sizes`` (that many records) in ``partition``."""
    with log.producer(linger_ms=600_000) as p:  # batches end at flushes only
        n = 0
        for size in sizes:
            for _ in range(size):
                p.send(topic, b"v%d" % n, key=b"k", partition=partition)
                n += 1
            p.flush()


def _poll_all(c: embedlog.Consumer) -> list[embedlog.Message]:
    out: list[embedlog.Message] = []
    while True:
        got = c.poll(0)
        if not got:
            return out
        out.extend(got)


# -- codec --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 5119, 5120, 5121, 10_240, 10_241, 12_345, 300_001])
def test_crc_in_gil_held_chunks_equals_zlib(size: int) -> None:
    data = bytes((i * 7 + 3) & 0xFF for i in range(size))
    assert batch._crc32_held(memoryview(data)) == zlib.crc32(data)


@pytest.mark.parametrize("where", [26, 5120 + 24, 5120 * 7 + 100, -1])
def test_a_flipped_byte_in_any_checksum_chunk_of_a_big_batch_is_caught(where: int) -> None:
    buf = batch.encode([b"k%d" % i for i in range(400)], [bytes(100)] * 400, [1] * 400)
    assert len(buf) > 5120 * 8
    assert batch.decode(bytes(buf)).values[-1] == bytes(100)
    buf[where] ^= 0x40
    with pytest.raises(CorruptBatchError, match="checksum"):
        batch.decode(bytes(buf))


@FAST
@given(key=maybe_bytes, value=maybe_bytes, ts=st.integers(-(2**63), 2**63 - 1), append_time=st.booleans(),
       base=st.integers(0, 2**40))
def test_one_record_batches_decode_like_any_other(key: bytes | None, value: bytes | None, ts: int,
                                                  append_time: bool, base: int) -> None:
    buf = batch.encode([key], [value], [ts], log_append_time=append_time)
    batch.stamp(buf, base, 3, 9)
    if append_time:
        batch.restamp_log_append_time(buf, 12345)
    one = batch.decode(bytes(buf))
    assert list(one.offsets) == [base]
    assert one.keys == [key]
    assert one.values == [value]
    assert one.headers is None
    assert one.timestamps == [12345 if append_time else ts]
    # the same record in a two-record batch goes through the column decoder
    two = batch.decode(bytes(batch.encode([key, b"x"], [value, b"y"], [ts, ts], log_append_time=append_time)))
    assert two.keys[0] == key
    assert two.values[0] == value
    assert two.timestamps[0] == (two.info.max_timestamp if append_time else ts)


@FAST
@given(key=maybe_bytes, value=maybe_bytes, field=st.sampled_from(["klen", "vlen", "body_len", "cut", "extra"]),
       delta=st.integers(-70, 70).filter(bool))
def test_a_one_record_batch_with_lengths_that_do_not_add_up_is_corrupt(
        key: bytes | None, value: bytes | None, field: str, delta: int) -> None:
    buf = bytearray(batch.encode([key], [value], [5]))
    at = {"klen": 56, "vlen": 60, "body_len": 52}.get(field)
    if at is not None:
        fmt = "<I" if field == "body_len" else "<i"
        (old,) = struct.unpack_from(fmt, buf, at)
        new = old + delta
        if not (0 if fmt == "<I" else -(2**31)) <= new < 2**31:
            return
        struct.pack_into(fmt, buf, at, new)
    elif field == "cut":
        del buf[max(56, len(buf) - abs(delta)):]
    else:
        buf += bytes(abs(delta))
    struct.pack_into("<I", buf, 20, zlib.crc32(buf[24:]))
    try:
        decoded = batch.decode(bytes(buf))
    except CorruptBatchError:
        return
    # only a null turned empty (or back) still describes the same bytes
    assert field in ("klen", "vlen")
    assert [decoded.keys[0] or b"", decoded.values[0] or b""] == [key or b"", value or b""]


def test_batches_of_one_shape_share_a_compiled_split_and_still_decode_their_own_bytes() -> None:
    shapes = [[b"k" * (1 + (i * s) % 9) for i in range(50)] for s in range(20)]  # more shapes than are kept
    for round_ in range(3):
        for s, shape in enumerate(shapes):
            keys = [bytes([65 + (round_ + s) % 26]) * len(k) for k in shape]  # same lengths, other bytes
            values = [b"%d-%d-%d" % (round_, s, i) for i in range(50)]
            decoded = batch.decode(bytes(batch.encode(keys, values, [1] * 50)))
            assert decoded.keys == keys
            assert decoded.values == values


def test_a_cached_split_still_checks_the_body_is_long_enough() -> None:
    keys = [b"ab", b"cde"] * 10
    good = batch.encode(keys, [b"v"] * 20, [1] * 20)
    batch.decode(bytes(good))  # caches the split of this key column
    bad = bytearray(good)
    del bad[-25:]  # the values and the last keys
    struct.pack_into("<I", bad, 52, len(bad) - batch.HEADER_SIZE)
    struct.pack_into("<I", bad, 20, zlib.crc32(bad[24:]))
    with pytest.raises(CorruptBatchError):
        batch.decode(bytes(bad))


# -- partition.fetch ----------------------------------------------------------------------------------
def test_fetch_stops_before_the_visibility_limit_and_never_past_it(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=1)
        _write_batches(log, "t", [3, 1, 4, 1, 5])  # batches at 0, 3, 4, 8, 9; end 14
        tid = log.describe_topic("t").topic_id
        store = log._store
        with store.env.read() as txn:
            def bases(offset: int, end: int | None, **kw: int) -> list[int]:
                kw.setdefault("max_records", 1 << 30)
                return [b.info.base_offset for b in plog.fetch(txn, store.dbs, "t", tid, 0, offset,
                                                               end_offset=end, **kw)]

            assert bases(0, None) == [0, 3, 4, 8, 9]
            assert bases(0, 14) == [0, 3, 4, 8, 9]
            assert bases(0, 9) == [0, 3, 4, 8]
            assert bases(0, 8) == [0, 3, 4]
            assert bases(0, 5) == [0, 3, 4]  # a batch starting before the limit is whole (poll cuts it)
            assert bases(0, 1) == [0]
            assert bases(0, 0) == []
            assert bases(5, 14) == [4, 8, 9]
            assert bases(9, 9) == []
            assert bases(14, None) == []
            # max_records counts the records at or after the offset asked for
            assert bases(2, 14, max_records=1) == [0]
            assert bases(2, 14, max_records=2) == [0, 3]
            assert bases(0, 14, max_records=4) == [0, 3]
            assert bases(0, 14, max_records=5) == [0, 3, 4]
            assert bases(0, 14, max_records=8) == [0, 3, 4]
            assert bases(0, 14, max_records=9) == [0, 3, 4, 8]
            assert bases(0, 14) == [0, 3, 4, 8, 9]
            assert bases(0, 14, max_records=1, max_bytes=1 << 30) == [0]
            assert bases(0, 14, max_bytes=1) == [0]  # at least one batch, however small the limit
            assert bases(0, 9, max_records=1 << 30) == [0, 3, 4, 8]


def test_a_poll_of_many_records_reads_a_log_of_one_record_batches_in_one_fetch(tmp_path: Path) -> None:
    """A log written a flush a record (one-record batches) fills a poll as one of big
    batches does: ``max_records`` bounds a fetch, not a count of batches."""
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=1)
        _write_batches(log, "t", [1] * 300)
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            assert [m.offset for m in c.poll(0, max_records=1)] == [0]
            assert [m.offset for m in c.poll(0, max_records=250)] == list(range(1, 251))
            assert [m.offset for m in c.poll(0, max_records=250)] == list(range(251, 300))
            assert c.poll(0) == []


def test_fetch_reads_across_a_gap_and_from_inside_a_batch(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=2)
        _write_batches(log, "t", [3, 1, 4, 1, 5])  # batches at 0, 3, 4, 8, 9; end 14
        with log.producer(linger_ms=600_000) as p:  # partition 1's keys follow partition 0's in the database
            p.send("t", b"other", partition=1)
        keys = _batch_keys(log, "t", 0)
        dbs = log._store.dbs
        # whole batches gone from the middle, as compaction leaves them
        log._store.write(lambda txn: [txn.delete(k, db=dbs["batches"]) for k in (keys[1], keys[3])])
        tid = log.describe_topic("t").topic_id
        with log._store.env.read() as txn:
            def bases(offset: int, end: int | None = None) -> list[int]:
                return [b.info.base_offset for b in plog.fetch(txn, dbs, "t", tid, 0, offset, end_offset=end,
                                                               max_records=1 << 30)]

            assert bases(0) == [0, 4, 9]
            assert bases(1) == [0, 4, 9]
            assert bases(3) == [4, 9]  # the batch that held 3 is gone: the next one
            assert bases(6) == [4, 9]
            assert bases(8) == [9]
            assert bases(13) == [9]
            assert bases(14) == []
            assert bases(0, 9) == [0, 4]


def test_poll_returns_records_up_to_the_high_watermark_only(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=1)
        _write_batches(log, "t", [3, 1, 4])  # end 8
        _set_high_watermark(log, "t", 0, 4)  # (a high watermark is always at a batch's end)
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            assert [m.offset for m in _poll_all(c)] == [0, 1, 2, 3]
            _set_high_watermark(log, "t", 0, 8)
            assert [m.offset for m in _poll_all(c)] == [4, 5, 6, 7]
            _write_batches(log, "t", [1])
            _set_high_watermark(log, "t", 0, 8)  # the new record is not visible yet
            assert _poll_all(c) == []
            _set_high_watermark(log, "t", 0, 9)
            assert [(m.offset, m.value) for m in _poll_all(c)] == [(8, b"v0")]


@pytest.mark.parametrize("records", [1, 600])
@pytest.mark.parametrize("where", ["header", "last byte"])
def test_poll_raises_on_a_damaged_batch_of_one_or_many_records(tmp_path: Path, records: int, where: str) -> None:
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=1)
        _write_batches(log, "t", [2, records])
        key = _batch_keys(log, "t", 0)[1]
        _flip(log, key, 30 if where == "header" else -1)  # record_count / the last value byte
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            # the records before the damage are returned; the poll that reaches it raises
            assert [m.offset for m in c.poll(0, max_records=1000)] == [0, 1]
            with pytest.raises(CorruptRecordError, match=r"t\[0\] at offset 2"):
                c.poll(0, max_records=1000)
            with pytest.raises(CorruptRecordError, match=r"t\[0\] at offset 2"):
                c.poll(0, max_records=1000)  # and again: the position stays before it
            c.seek(TopicPartition("t", 0), 0)
            assert [m.offset for m in c.poll(0, max_records=1)] == [0]
            c.seek(TopicPartition("t", 0), 2)
            with pytest.raises(CorruptRecordError, match=r"t\[0\] at offset 2"):
                c.poll(0)


def test_poll_raises_when_batches_below_the_end_are_missing(tmp_path: Path) -> None:
    """The partition's state says it ends at 3, but the batches from offset 1 on are gone
    (damaged LMDB pages): ``poll`` says so instead of waiting forever at offset 1."""
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=1)
        _write_batches(log, "t", [1, 1, 1])
        lost = _batch_keys(log, "t", 0)[1:]

        def drop(txn: object, dbs: dict[str, object]) -> None:
            for key in lost:
                assert txn.delete(key, db=dbs["batches"])  # type: ignore[attr-defined]

        log._store.write(lambda txn: drop(txn, log._store.dbs))
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            assert [m.offset for m in c.poll(0)] == [0]
            with pytest.raises(CorruptRecordError, match=r"t\[0\] ends at offset 3 but no batch is stored") as err:
                c.poll(0)
            assert (err.value.topic, err.value.partition, err.value.offset) == ("t", 0, 1)


def test_a_consumer_follows_its_topic_when_it_is_deleted_and_created_again(tmp_path: Path) -> None:
    """A new topic of the same name starts over at offset 0 (a new topic id): the
    consumer leaves its old position and starts per ``auto_offset_reset``."""
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=1)
        _write_batches(log, "t", [10])
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            assert len(_poll_all(c)) == 10
            log.delete_topic("t")
            log.create_topic("t", partitions=1)
            assert c.poll(0) == []
            _write_batches(log, "t", [3, 12])
            got = _poll_all(c)
            assert [m.offset for m in got] == list(range(15))
            assert c.position(TopicPartition("t", 0)) == 15


@pytest.mark.parametrize("again", [False, True])
def test_a_subscription_lets_go_of_partitions_that_are_gone(tmp_path: Path, again: bool) -> None:
    """A topic deleted (or created again with fewer partitions): a standalone subscription
    drops the partitions that no longer exist at its next look, as a Kafka consumer does
    at its next metadata refresh; ``seek_to_end()`` raised ``UnknownPartitionError``."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as log:
        log.create_topic("t0", partitions=2)
        log.create_topic("t1", partitions=1)
        with log.consumer(["t0", "t1"], auto_offset_reset="earliest") as c:
            c.poll(0.01)
            log.delete_topic("t0")
            if again:
                log.create_topic("t0", partitions=1)
            want = {TopicPartition("t1", 0)} | ({TopicPartition("t0", 0)} if again else set())
            deadline = time.monotonic() + 10
            while c.assignment() != want:
                assert time.monotonic() < deadline, c.assignment()
                c.poll(0.05)
            c.seek_to_end()
            c.seek_to_beginning()
            assert set(c.end_offsets(c.assignment())) == want


@pytest.mark.parametrize("look_between", [False, True])
def test_a_subscription_reads_a_topic_created_again_from_its_start_whatever_the_timing(
        tmp_path: Path, look_between: bool) -> None:
    """A standalone subscription (``latest``) over a topic deleted and created again reads
    the new topic from its start, as a partition it gains: it did only if its once-a-second
    look at the topics fell between the delete and the create."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=1)
        with log.consumer(["t"], auto_offset_reset="latest") as c:
            c.poll(0.01)
            log.delete_topic("t")
            if look_between:
                time.sleep(1.1)
                c.poll(0.05)  # (its look: t is gone, its partition dropped)
            log.create_topic("t", partitions=1)
            _write_batches(log, "t", [3])
            got: list[bytes] = []
            deadline = time.monotonic() + 10
            while len(got) < 3:
                assert time.monotonic() < deadline, got
                got += [m.value for m in c.poll(0.05)]
            assert got == [b"v0", b"v1", b"v2"]


def test_single_record_polls_follow_retention_moving_the_start(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=1)
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            _write_batches(log, "t", [1])
            assert [m.value for m in c.poll(0)] == [b"v0"]
            _write_batches(log, "t", [1, 1, 1])  # offsets 1, 2, 3: each its own batch
            log.delete_records("t", 0, 3)
            assert [(m.offset, m.value) for m in _poll_all(c)] == [(3, b"v2")]


def test_consumers_on_four_threads_read_every_record_once(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=4)
        with log.producer() as p:
            for n in range(4 * 300):
                p.send("t", bytes(100), key=b"%d" % n, partition=n % 4)
                if n % 97 == 0:
                    p.flush()
        seen: list[list[int]] = [[] for _ in range(4)]

        def read(i: int) -> None:
            with log.consumer(auto_offset_reset="earliest", max_poll_records=7) as c:
                c.assign([TopicPartition("t", i)])
                while len(seen[i]) < 300:
                    seen[i].extend(m.offset for m in c.poll(timeout=5.0))

        threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert seen == [list(range(300))] * 4


def test_a_partition_found_empty_is_not_decoded_again_until_it_changes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll that wakes for a record in one partition of many reads that one: the others,
    whose stored state and position did not move since a poll found them empty, are
    skipped (a consumer of a 64-partition topic paid ~2 µs a partition per wake)."""
    loads: list[int] = []
    real = plog.load_state

    def counting(txn: object, dbs: object, tid: int, part: int) -> object:
        loads.append(part)
        return real(txn, dbs, tid, part)  # type: ignore[arg-type]

    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=16)
        with log.consumer(["t"], auto_offset_reset="earliest") as c, log.producer() as p:
            assert c.poll(0) == []
            monkeypatch.setattr(plog, "load_state", counting)
            assert c.poll(0) == []
            assert loads == []  # nothing changed: nothing decoded
            p.send("t", b"x", partition=5)
            p.flush()
            loads.clear()  # (the append read the state too)
            assert [(m.partition, m.offset, m.value) for m in c.poll(0)] == [(5, 0, b"x")]
            assert loads == [5]
            loads.clear()
            assert c.poll(0) == []
            assert loads == [5]  # (it had records last time: looked at once more, then idle)
            loads.clear()
            assert c.poll(0) == []
            assert loads == []
            c.seek(TopicPartition("t", 5), 0)  # a new position: read again
            assert [(m.partition, m.offset) for m in c.poll(0)] == [(5, 0)]
            p.send("t", b"y", partition=9)
            p.send("t", b"z", partition=5)
            p.flush()
            assert sorted((m.partition, m.offset, m.value) for m in _poll_all(c)) == [(5, 1, b"z"), (9, 0, b"y")]


def test_an_idle_partition_still_sees_retention_and_reassignment(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=2)
        tp = TopicPartition("t", 1)
        _write_batches(log, "t", [1, 1, 1], partition=1)
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            assert len(_poll_all(c)) == 3
            c.seek(tp, 1)
            log.delete_records("t", 1, 2)  # the start moves past the position: reset to earliest
            assert [m.offset for m in _poll_all(c)] == [2]
            assert c.poll(0) == []
            c.assign([TopicPartition("t", 0)])
            c.assign([TopicPartition("t", 0), tp])  # a partition assigned again starts over
            assert [m.offset for m in _poll_all(c)] == [2]


def _set_high_watermark(log: embedlog.Log, topic: str, part: int, hw: int) -> None:
    """What a replicating leader does: records up to the end are stored, consumers see
    only those below ``hw`` (the in-sync followers' durable offsets)."""
    from embedlog.storage import partition as plog  # noqa: PLC0415

    store = log._store
    tid = log.describe_topic(topic).topic_id

    def fn(txn: Any) -> None:
        st = plog.load_state(txn, store.dbs, tid, part)
        assert st is not None
        st.high_watermark = hw
        plog.store_state(txn, store.dbs, tid, part, st)

    store.write(fn, notify=True)


def test_latest_and_end_offsets_are_the_high_watermark(tmp_path: Path) -> None:
    """As Kafka's: end_offsets, seek_to_end and auto_offset_reset='latest' go to the high
    watermark, so records a replicating leader holds back are read once they are
    replicated, not skipped (they went to the log end, and those records were lost to a
    'latest' consumer started meanwhile)."""
    from embedlog import TopicPartition  # noqa: PLC0415

    tp = TopicPartition("t", 0)
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t")
        with log.producer() as p:
            for i in range(7):
                p.send("t", b"%d" % i)
        _set_high_watermark(log, "t", 0, 3)
        d = log.describe_topic("t").partitions[0]
        assert (d.end_offset, d.high_watermark) == (7, 3)
        with log.consumer(["t"], auto_offset_reset="latest") as latest, \
                log.consumer(["t"], auto_offset_reset="earliest") as sought:
            assert latest.end_offsets([tp]) == {tp: 3}
            assert latest.position(tp) == 3
            sought.poll(timeout=0)
            sought.seek_to_end()
            assert sought.position(tp) == 3
            assert latest.poll(timeout=0.05) == []
            _set_high_watermark(log, "t", 0, 7)
            assert [m.value for m in latest.poll(timeout=2.0)] == [b"3", b"4", b"5", b"6"]
            assert [m.value for m in sought.poll(timeout=2.0)] == [b"3", b"4", b"5", b"6"]
            assert latest.end_offsets([tp]) == {tp: 7}


@pytest.mark.parametrize("where", ["max_timestamp", "base_offset"])
def test_offsets_for_times_raises_on_a_damaged_header_it_would_skip_by(tmp_path: Path, where: str) -> None:
    """offsets_for_times skips batches by their header's max timestamp: a damaged one
    (a byte of its max timestamp, or its base offset, which the checksum does not cover)
    raises CorruptRecordError instead of answering another offset in silence."""
    with embedlog.open(str(tmp_path)) as log:
        log.create_topic("t")
        with log.producer(linger_ms=600_000) as p:
            for i in range(50):
                p.send("t", b"v", timestamp_ms=1_000_000 + i * 1000)
                if i % 10 == 9:
                    p.flush()
        keys = _batch_keys(log, "t", 0)
        assert len(keys) == 5
        at = {"max_timestamp": 46, "base_offset": 0}[where]  # (46: its third byte, -65.5 s)
        _flip(log, keys[2], at)  # (the batch of offsets 20..29)
        tp = TopicPartition("t", 0)
        with log.consumer([], auto_offset_reset="earliest") as c:
            assert c.offsets_for_times({tp: 1_000_000 + 5 * 1000})[tp].offset == 5  # (before it: fine)
            with pytest.raises(CorruptRecordError) as info:
                c.offsets_for_times({tp: 1_000_000 + 25 * 1000})
            assert info.value.offset == 20


def test_retention_by_time_deletes_nothing_by_a_damaged_max_timestamp(tmp_path: Path) -> None:
    """A batch whose max timestamp was damaged into the distant past is not deleted by
    retention.ms (its checksum fails); the damage stays for verify and poll to report."""
    with embedlog.open(str(tmp_path), maintenance_interval_ms=None) as log:
        log.create_topic("t", config={"retention.ms": 3_600_000})
        with log.producer(linger_ms=600_000) as p:
            for _ in range(2):
                p.send("t", b"v")
                p.flush()
        keys = _batch_keys(log, "t", 0)
        _flip(log, keys[0], 49)  # (its max timestamp's sixth byte: about 35 years back)
        assert log.maintain()["batches_deleted"] == 0
        assert log.describe_topic("t").partitions[0].start_offset == 0
        assert not log.verify().ok
