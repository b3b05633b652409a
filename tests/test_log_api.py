"""Behaviour of the public Log / Producer / Consumer API on real LMDB directories."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import Message, OffsetAndTimestamp, RecordMetadata, TopicPartition
from embedlog.errors import (
    ClosedError,
    ConfigError,
    EmbedlogError,
    InvalidOffsetError,
    InvalidRecordError,
    InvalidTopicError,
    NotAssignedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    SerializationError,
    StorageError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownTopicError,
)
from procs.harness import drain, now_ms  # tests/procs/harness.py (tests/ is on sys.path)

MakeLog = Callable[..., embedlog.Log]


def by_partition(msgs: list[Message]) -> dict[int, list[Message]]:
    out: dict[int, list[Message]] = {}
    for m in msgs:
        out.setdefault(m.partition, []).append(m)
    return out


def send_flush(log: embedlog.Log, topic: str, values: list[bytes], **kw: object) -> None:
    with log.producer() as p:
        for v in values:
            p.send(topic, v, **kw)  # type: ignore[arg-type]
        p.flush()


# ------------------------------------------------------------------------------------------
# topics
# ------------------------------------------------------------------------------------------


def test_create_list_describe(log: embedlog.Log) -> None:
    desc = log.create_topic("orders", partitions=3, config={"retention.ms": 604_800_000, "retention.bytes": "1000000"})
    assert desc.name == "orders"
    assert [p.partition for p in desc.partitions] == [0, 1, 2]
    assert all(p.start_offset == 0 and p.end_offset == 0 and p.batches == 0 for p in desc.partitions)
    assert desc.records == 0
    assert desc.config["retention.bytes"] == 1_000_000  # strings parsed like Kafka's tools
    assert desc.config["cleanup.policy"] == "delete"  # defaults are filled in
    log.create_topic("audit")
    log.create_topic("Zeta.x_y-1")
    assert log.topics() == sorted(["orders", "audit", "Zeta.x_y-1"])
    assert log.describe_topic("audit").partitions[0].partition == 0
    assert len(log.describe_topic("audit").partitions) == 1
    assert log.describe_topic("orders") == desc


def test_create_existing_topic_raises(log: embedlog.Log) -> None:
    log.create_topic("t", 2)
    with pytest.raises(TopicExistsError):
        log.create_topic("t", 2)
    with pytest.raises(TopicExistsError):
        log.create_topic("t", 5, {"retention.ms": 1})
    assert len(log.describe_topic("t").partitions) == 2


def test_alter_topic_config_sets_and_resets(log: embedlog.Log) -> None:
    log.create_topic("t", config={"retention.ms": 1000})
    log.alter_topic_config("t", {"retention.bytes": 10_000_000, "cleanup.policy": "compact,delete"})
    cfg = log.describe_topic("t").config
    assert cfg["retention.ms"] == 1000
    assert cfg["retention.bytes"] == 10_000_000
    assert cfg["cleanup.policy"] == "compact,delete"
    log.alter_topic_config("t", {"retention.ms": None})  # back to the default
    assert log.describe_topic("t").config["retention.ms"] == 604_800_000
    with pytest.raises(ConfigError):
        log.alter_topic_config("t", {"retention.ms": "soon"})
    with pytest.raises(ConfigError):
        log.alter_topic_config("t", {"no.such.key": 1})
    assert log.describe_topic("t").config["retention.bytes"] == 10_000_000  # failed alters changed nothing


def test_delete_topic_and_recreate_is_fresh(log: embedlog.Log) -> None:
    log.create_topic("t", 2, {"retention.ms": 5000})
    send_flush(log, "t", [b"a", b"b", b"c"], partition=1)
    old_id = log.describe_topic("t").topic_id
    log.delete_topic("t")
    assert "t" not in log.topics()
    with pytest.raises(UnknownTopicError):
        log.describe_topic("t")
    with pytest.raises(UnknownTopicError):
        log.delete_topic("t")

    desc = log.create_topic("t", 1)
    assert desc.topic_id != old_id
    assert desc.config["retention.ms"] == 604_800_000  # the old override is gone
    assert [(p.start_offset, p.end_offset, p.bytes) for p in desc.partitions] == [(0, 0, 0)]
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert drain(c) == []
    send_flush(log, "t", [b"new"])
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert [(m.offset, m.value) for m in drain(c)] == [(0, b"new")]


def test_create_partitions(log: embedlog.Log) -> None:
    log.create_topic("t", 1)
    send_flush(log, "t", [b"x"])
    log.create_partitions("t", 3)
    desc = log.describe_topic("t")
    assert [(p.partition, p.end_offset) for p in desc.partitions] == [(0, 1), (1, 0), (2, 0)]
    send_flush(log, "t", [b"y"], partition=2)
    assert log.describe_topic("t").partitions[2].end_offset == 1
    with pytest.raises(ConfigError):
        log.create_partitions("t", 3)
    with pytest.raises(ConfigError):
        log.create_partitions("t", 2)
    with pytest.raises(UnknownTopicError):
        log.create_partitions("nope", 4)
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert c.assignment() == {TopicPartition("t", p) for p in range(3)}
        assert sorted((m.partition, m.value) for m in drain(c)) == [(0, b"x"), (2, b"y")]


def test_producer_sees_partitions_added_after_its_first_send(log: embedlog.Log) -> None:
    """A live producer must pick up create_partitions, as Kafka's refreshes its metadata."""
    log.create_topic("t", 1)
    with log.producer() as p:
        p.send("t", b"before")
        p.flush()
        log.create_partitions("t", 2)
        p.send("t", b"after", partition=1)
        p.flush()
    assert log.describe_topic("t").partitions[1].end_offset == 1


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_a_standalone_subscription_follows_partitions_added_while_it_polls(log: embedlog.Log, reset: str) -> None:
    """As a Kafka consumer's subscription at its next metadata refresh (within a second
    here), each new partition from its start (all of it is newer than the subscription);
    a consumer it was only assign()ed to keeps exactly those partitions."""
    log.create_topic("t", 1)
    with log.consumer(["t"], auto_offset_reset=reset) as c, log.consumer(auto_offset_reset="earliest") as fixed:
        fixed.assign([TopicPartition("t", 0)])
        assert c.poll(timeout=0.05) == []
        log.create_partitions("t", 3)
        send_flush(log, "t", [b"new-1"], partition=1)
        send_flush(log, "t", [b"new-2"], partition=2)
        t0 = time.monotonic()
        got = c.poll(timeout=10)  # (one poll: its wait looks again within the second)
        while len(got) < 2 and time.monotonic() - t0 < 10:
            got += c.poll(timeout=1)
        assert sorted((m.partition, m.value) for m in got) == [(1, b"new-1"), (2, b"new-2")]
        assert time.monotonic() - t0 < 5
        assert c.assignment() == {TopicPartition("t", p) for p in range(3)}
        assert fixed.poll(timeout=1.5) == []
        assert fixed.assignment() == {TopicPartition("t", 0)}
        c.assign([TopicPartition("t", 0)])  # (assigned now: no longer following)
        log.create_partitions("t", 4)
        assert c.poll(timeout=1.5) == []
        assert c.assignment() == {TopicPartition("t", 0)}


# ------------------------------------------------------------------------------------------
# produce / consume round trip
# ------------------------------------------------------------------------------------------


def test_round_trip_keys_values_tombstones_headers(log: embedlog.Log) -> None:
    log.create_topic("t", 1)
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]] = [
        (b"k1", b"v1", []),
        (None, b"no key", [("trace", b"abc")]),
        (b"k2", None, []),  # tombstone
        (b"", b"", [("a", b"1"), ("b", b"2"), ("a", b"3"), ("a", b"1")]),  # order and duplicates
        (b"\x00\xff" * 10, bytes(range(256)), [("n", None), ("empty", b"")]),
        (b"k3", b"x" * 100_000, [("\u00fcnicode-name", b"\x00")]),
    ]
    with log.producer() as p:
        for key, value, headers in records:
            p.send("t", value, key=key, headers=headers or None)
        p.flush()
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = drain(c)
    assert [(m.key, m.value, list(m.headers)) for m in got] == [(k, v, h) for k, v, h in records]
    assert [m.offset for m in got] == list(range(len(records)))
    assert {(m.topic, m.partition) for m in got} == {("t", 0)}
    assert all(m.topic_partition == TopicPartition("t", 0) for m in got)


def test_headers_as_dict_and_str_values(log: embedlog.Log) -> None:
    log.create_topic("t")
    with log.producer() as p:
        p.send("t", b"v", headers={"a": b"1", "b": "two"})
        p.flush()
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        (m,) = drain(c)
    assert list(m.headers) == [("a", b"1"), ("b", b"two")]


def test_timestamps_explicit_and_default_create_time(log: embedlog.Log) -> None:
    log.create_topic("t")
    before = now_ms()
    with log.producer() as p:
        p.send("t", b"explicit", timestamp_ms=1_234_567)
        p.send("t", b"default")
        p.send("t", b"zero", timestamp_ms=0)
        p.send("t", b"far", timestamp_ms=4_102_444_800_000)  # year 2100: wide deltas
        p.flush()
    after = now_ms()
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = drain(c)
    assert got[0].timestamp == 1_234_567
    assert before <= got[1].timestamp <= after
    assert got[2].timestamp == 0
    assert got[3].timestamp == 4_102_444_800_000
    assert {m.timestamp_type for m in got} == {"CreateTime"}


def test_log_append_time_topic_uses_broker_time(log: embedlog.Log) -> None:
    log.create_topic("t", config={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    with log.producer() as p:
        p.send("t", b"a", timestamp_ms=1000)
        p.send("t", b"b")
        p.flush()
    after = now_ms()
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = drain(c)
    assert len(got) == 2
    for m in got:
        assert before <= m.timestamp <= after
        assert m.timestamp_type == "LogAppendTime"


def test_log_append_time_delivery_metadata_has_broker_time(log: embedlog.Log) -> None:
    """Kafka's RecordMetadata.timestamp is the broker's append time on LogAppendTime topics."""
    log.create_topic("t", config={"message.timestamp.type": "LogAppendTime"})
    got: list[RecordMetadata] = []
    before = now_ms()
    with log.producer() as p:
        p.send("t", b"a", timestamp_ms=1000, on_delivery=lambda err, md: got.append(md))
        p.flush()
    assert len(got) == 1
    assert got[0].timestamp >= before


def test_offsets_dense_from_zero_per_partition(log: embedlog.Log) -> None:
    log.create_topic("t", 3)
    with log.producer() as p:
        for rnd in range(4):
            for i in range(30):
                p.send("t", b"%d-%d" % (rnd, i), key=b"key-%d" % i)
            p.flush()
        for i in range(7):
            p.send("t", b"explicit", partition=2)
        p.flush()
    desc = log.describe_topic("t")
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        parts = by_partition(drain(c))
    assert sum(len(v) for v in parts.values()) == 127
    for p_desc in desc.partitions:
        offsets = [m.offset for m in parts.get(p_desc.partition, [])]
        assert offsets == list(range(p_desc.end_offset))
    # records of one key stay in one partition, in send order
    for msgs in parts.values():
        per_key: dict[bytes | None, list[bytes | None]] = {}
        for m in msgs:
            per_key.setdefault(m.key, []).append(m.value)
        for key, values in per_key.items():
            if key is not None:
                i = int(key.split(b"-")[1])
                assert values == [b"%d-%d" % (r, i) for r in range(4)]


# ------------------------------------------------------------------------------------------
# positions
# ------------------------------------------------------------------------------------------


@pytest.fixture
def ten(log: embedlog.Log) -> TopicPartition:
    """Topic "t" with one partition holding offsets 0..9 (timestamps 1000, 1100, ...) in 3 batches."""
    log.create_topic("t")
    with log.producer(linger_ms=600_000) as p:  # batches end at flushes only, however slow the machine
        for i in range(10):
            p.send("t", b"v%d" % i, timestamp_ms=1000 + 100 * i)
            if i in (3, 6):
                p.flush()
        p.flush()
    assert log.describe_topic("t").partitions[0].batches == 3
    return TopicPartition("t", 0)


def test_seek_and_position(log: embedlog.Log, ten: TopicPartition) -> None:
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert c.position(ten) == 0
        first = c.poll(timeout=0, max_records=3)
        assert [m.offset for m in first] == [0, 1, 2]
        assert c.position(ten) == 3
        for target in (5, 4, 9, 0, 7):  # forwards, backwards, inside and at batch edges
            c.seek(ten, target)
            assert c.position(ten) == target
            assert [m.offset for m in drain(c)] == list(range(target, 10))
            assert c.position(ten) == 10
        c.seek(ten, 10)
        assert drain(c) == []
        with pytest.raises(InvalidOffsetError):
            c.seek(ten, -1)
        with pytest.raises(NotAssignedError):
            c.seek(TopicPartition("t", 1), 0)
        with pytest.raises(NotAssignedError):
            c.position(TopicPartition("other", 0))


@pytest.mark.parametrize("reset", ["earliest", "latest", "none"])
def test_position_after_a_seek_out_of_range_is_the_offset_given(log: embedlog.Log, ten: TopicPartition,
                                                                reset: str) -> None:
    """As in Kafka: ``position`` says where ``seek`` put it; the next poll finds it out
    of range and applies ``auto_offset_reset``."""
    log.delete_records("t", 0, 4)
    with log.consumer(["t"], auto_offset_reset=reset) as c:
        for target in (50, 2):  # past the end, before the start
            c.seek(ten, target)
            assert c.position(ten) == target
            assert c.position(ten) == target  # (asking again changes nothing)
            if reset == "none":
                with pytest.raises(OffsetOutOfRangeError):
                    c.poll(timeout=0)
            else:
                got = drain(c)
                assert [m.offset for m in got] == (list(range(4, 10)) if reset == "earliest" else [])
                assert c.position(ten) == 10


def test_iterating_a_closed_consumer_raises(log: embedlog.Log) -> None:
    log.create_topic("t")
    c = log.consumer(["t"])
    c.close()
    with pytest.raises(ClosedError):
        iter(c)
    with pytest.raises(ClosedError):
        c.__aiter__()
    with log.consumer(["t"]) as d:
        log.close()
        with pytest.raises(ClosedError):
            for _ in d:
                pass


def test_seek_to_beginning_end_and_offsets(log: embedlog.Log, ten: TopicPartition) -> None:
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert c.beginning_offsets([ten]) == {ten: 0}
        assert c.end_offsets([ten]) == {ten: 10}
        c.seek_to_end()
        assert c.position(ten) == 10
        assert drain(c) == []
        c.seek_to_beginning()
        assert c.position(ten) == 0
        assert len(drain(c)) == 10
        c.seek_to_beginning(ten)
        assert c.position(ten) == 0
        c.seek_to_end(ten)
        assert c.position(ten) == 10
        c.seek_to_beginning([ten])  # (one list, as a collection of partitions)
        assert c.position(ten) == 0
        c.seek_to_end([ten])
        assert c.position(ten) == 10
        c.seek_to_beginning(("t", 0))  # (a lone pair is one partition)
        assert c.position(ten) == 0
        c.seek_to_end()
        send_flush(log, "t", [b"late"])
        assert [m.value for m in drain(c)] == [b"late"]
        assert c.end_offsets([ten]) == {ten: 11}


def test_offsets_for_times(log: embedlog.Log, ten: TopicPartition) -> None:
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        q = c.offsets_for_times
        assert q({ten: 0}) == {ten: OffsetAndTimestamp(0, 1000)}
        assert q({ten: 1000}) == {ten: OffsetAndTimestamp(0, 1000)}
        assert q({ten: 1001}) == {ten: OffsetAndTimestamp(1, 1100)}
        assert q({ten: 1350}) == {ten: OffsetAndTimestamp(4, 1400)}  # first record of the 2nd batch
        assert q({ten: 1900}) == {ten: OffsetAndTimestamp(9, 1900)}
        assert q({ten: 1901}) == {ten: None}  # after the last record
        assert q({ten: 10**13}) == {ten: None}


def test_offsets_for_times_unordered_timestamps(log: embedlog.Log) -> None:
    log.create_topic("t")
    tp = TopicPartition("t", 0)
    with log.producer() as p:
        for ts in (500, 100, 300):
            p.send("t", b"x", timestamp_ms=ts)
        p.flush()
        for ts in (200, 900):
            p.send("t", b"y", timestamp_ms=ts)
        p.flush()
    with log.consumer(["t"]) as c:
        assert c.offsets_for_times({tp: 150}) == {tp: OffsetAndTimestamp(0, 500)}
        assert c.offsets_for_times({tp: 600}) == {tp: OffsetAndTimestamp(4, 900)}
        assert c.offsets_for_times({tp: 901}) == {tp: None}


def test_pause_and_resume(log: embedlog.Log) -> None:
    log.create_topic("t", 2)
    send_flush(log, "t", [b"p0-a", b"p0-b"], partition=0)
    send_flush(log, "t", [b"p1-a"], partition=1)
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        c.pause(tp0)
        assert c.paused() == {tp0}
        assert [m.value for m in drain(c)] == [b"p1-a"]
        assert (c.position(tp0), c.position(tp1)) == (0, 1)
        send_flush(log, "t", [b"p0-c"], partition=0)
        send_flush(log, "t", [b"p1-b"], partition=1)
        c.pause(tp1)
        assert drain(c) == []
        c.resume(tp1)
        assert [m.value for m in drain(c)] == [b"p1-b"]
        c.resume(tp0)
        assert c.paused() == set()
        assert [m.value for m in drain(c)] == [b"p0-a", b"p0-b", b"p0-c"]
        c.pause([tp0, tp1])  # (one list)
        assert c.paused() == {tp0, tp1}
        c.resume([tp0, tp1])
        assert c.paused() == set()
        with pytest.raises(NotAssignedError):
            c.pause(TopicPartition("t", 7))


def test_auto_offset_reset_earliest_latest_none(log: embedlog.Log) -> None:
    log.create_topic("t")
    tp = TopicPartition("t", 0)
    send_flush(log, "t", [b"old1", b"old2"])
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert [m.value for m in drain(c)] == [b"old1", b"old2"]
    with log.consumer(["t"], auto_offset_reset="latest") as c:
        assert c.position(tp) == 2
        send_flush(log, "t", [b"new"])
        assert [(m.offset, m.value) for m in drain(c)] == [(2, b"new")]
    with log.consumer(["t"]) as c:  # latest is the default, as in Kafka
        assert c.position(tp) == 3
    with log.consumer(["t"], auto_offset_reset="none") as c:
        with pytest.raises(OffsetOutOfRangeError):
            c.poll(timeout=0)
        c.seek(tp, 1)
        assert [m.value for m in drain(c)] == [b"old2", b"new"]
        c.seek(tp, 50)  # past the end
        with pytest.raises(OffsetOutOfRangeError):
            c.poll(timeout=0)


def test_seek_past_end_resets_per_policy(log: embedlog.Log) -> None:
    log.create_topic("t")
    tp = TopicPartition("t", 0)
    send_flush(log, "t", [b"a", b"b", b"c"])
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        c.seek(tp, 100)
        assert [m.offset for m in drain(c)] == [0, 1, 2]
    with log.consumer(["t"], auto_offset_reset="latest") as c:
        c.seek(tp, 100)
        assert drain(c) == []
        assert c.position(tp) == 3


def test_consumer_iteration(log: embedlog.Log) -> None:
    log.create_topic("t", 2)
    with log.producer() as p:
        for i in range(25):
            p.send("t", b"%d" % i, partition=i % 2)
        p.flush()
    got: list[Message] = []
    with log.consumer(["t"], auto_offset_reset="earliest", max_poll_records=4) as c:
        for m in c:
            got.append(m)
            if len(got) == 25:
                break
    assert sorted(int(m.value or b"") for m in got) == list(range(25))
    for part, msgs in by_partition(got).items():
        assert [m.offset for m in msgs] == list(range(len(msgs)))
        assert [int(m.value or b"") % 2 for m in msgs] == [part] * len(msgs)


def test_consumer_iteration_ends_when_closed(log: embedlog.Log) -> None:
    log.create_topic("t")
    send_flush(log, "t", [b"a", b"b"])
    c = log.consumer(["t"], auto_offset_reset="earliest")
    got = []
    for m in c:
        got.append(m.value)
        if len(got) == 2:
            c.close()
    assert got == [b"a", b"b"]


def test_on_delivery_gives_record_metadata(log: embedlog.Log) -> None:
    log.create_topic("t", 3)
    results: list[tuple[int, EmbedlogError | None, RecordMetadata | None]] = []
    with log.producer() as p:
        for i in range(40):
            p.send("t", b"v%d" % i, key=b"k%d" % (i % 5), timestamp_ms=10_000 + i,
                   on_delivery=lambda err, md, i=i: results.append((i, err, md)))
            if i == 19:
                p.flush()
        p.flush()
        assert len(results) == 40
    assert all(err is None for _, err, _ in results)
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        consumed = {(m.partition, m.offset): m for m in drain(c)}
    assert len(consumed) == 40
    for i, _, md in sorted(results, key=lambda r: r[0]):
        assert isinstance(md, RecordMetadata)
        assert md.topic == "t"
        assert md.timestamp == 10_000 + i
        m = consumed[(md.partition, md.offset)]
        assert m.value == b"v%d" % i
        assert m.key == b"k%d" % (i % 5)


def test_zstd_round_trip_and_compresses(log: embedlog.Log) -> None:
    log.create_topic("z")
    log.create_topic("plain")
    values = [(b"compressible payload %d " % (i % 7)) * 50 for i in range(200)]
    for topic, compression in (("z", "zstd"), ("plain", None)):
        with log.producer(compression=compression) as p:
            for i, v in enumerate(values):
                p.send(topic, v, key=b"%d" % i, headers=[("h", b"%d" % i)])
            p.send(topic, None, key=b"tomb")
            p.flush()
    with log.consumer(["z"], auto_offset_reset="earliest") as c:
        got = drain(c)
    assert [m.value for m in got] == [*values, None]
    assert [m.key for m in got] == [b"%d" % i for i in range(200)] + [b"tomb"]
    assert [list(m.headers) for m in got[:3]] == [[("h", b"0")], [("h", b"1")], [("h", b"2")]]
    assert log.describe_topic("z").bytes * 5 < log.describe_topic("plain").bytes


def test_serializers(log: embedlog.Log) -> None:
    log.create_topic("t")
    with log.producer(key_serializer=str.encode, value_serializer=lambda v: json.dumps(v).encode()) as p:
        p.send("t", {"n": 1, "s": "x"}, key="user-1")
        p.send("t", [1, 2, 3])
        p.flush()
    with log.consumer(["t"], auto_offset_reset="earliest", key_deserializer=bytes.decode,
                      value_deserializer=json.loads) as c:
        got = drain(c)
    assert [(m.key, m.value) for m in got] == [("user-1", {"n": 1, "s": "x"}), (None, [1, 2, 3])]
    with log.producer(value_serializer=str) as p, pytest.raises(SerializationError):
        p.send("t", 5)  # a serializer that returns str is not a serializer to bytes


def test_value_serializer_keeps_tombstones(log: embedlog.Log) -> None:
    """value=None is a tombstone with or without a value_serializer (the consumer side skips None too)."""
    log.create_topic("t")
    with log.producer(value_serializer=lambda v: json.dumps(v).encode()) as p:
        p.send("t", None, key=b"gone")
        p.flush()
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = drain(c)
    assert [(m.key, m.value) for m in got] == [(b"gone", None)]


# ------------------------------------------------------------------------------------------
# close semantics
# ------------------------------------------------------------------------------------------


def test_closed_log_raises(make_log: MakeLog) -> None:
    lg = make_log()
    lg.create_topic("t")
    lg.close()
    assert lg.closed
    lg.close()  # idempotent
    calls: list[Callable[[], object]] = [
        lg.topics, lambda: lg.create_topic("u"), lambda: lg.describe_topic("t"),
        lambda: lg.alter_topic_config("t", {}), lambda: lg.delete_topic("t"), lg.maintain,
        lambda: lg.create_partitions("t", 2), lambda: lg.delete_records("t", 0, 0),
        lg.producer, lambda: lg.consumer(["t"]),
    ]
    for call in calls:
        with pytest.raises(ClosedError):
            call()


def test_closed_producer_and_consumer_raise(log: embedlog.Log) -> None:
    log.create_topic("t")
    p = log.producer()
    p.close()
    p.close()
    with pytest.raises(ClosedError):
        p.send("t", b"x")
    with pytest.raises(ClosedError):
        p.flush()
    c = log.consumer(["t"])
    c.close()
    assert c.closed
    c.close()
    with pytest.raises(ClosedError):
        c.poll(timeout=0)
    with pytest.raises(ClosedError):
        c.position(TopicPartition("t", 0))
    with pytest.raises(ClosedError):
        c.seek_to_beginning()
    with pytest.raises(ClosedError):
        c.end_offsets([TopicPartition("t", 0)])
    with pytest.raises(ClosedError):
        c.assignment()
    g = log.consumer(["t"], group="g")
    g.close()
    with pytest.raises(ClosedError):
        g.group_metadata()
    with log.transaction() as tx, pytest.raises(ClosedError):  # (not a hint to poll again: it cannot)
        tx.commit_offsets(g, {TopicPartition("t", 0): 0})


def test_log_close_closes_clients_and_flushes_producers(make_log: MakeLog) -> None:
    lg = make_log()
    lg.create_topic("t")
    p = lg.producer(linger_ms=60_000)  # nothing is written until flush or close
    c = lg.consumer(["t"], auto_offset_reset="earliest")
    p.send("t", b"buffered-1")
    p.send("t", b"buffered-2")
    lg.close()
    with pytest.raises(ClosedError):
        p.send("t", b"x")
    with pytest.raises(ClosedError):
        c.poll(timeout=0)
    lg2 = make_log()
    with lg2.consumer(["t"], auto_offset_reset="earliest") as c2:
        assert [m.value for m in drain(c2)] == [b"buffered-1", b"buffered-2"]


def test_a_path_that_cannot_be_a_log_directory_gets_a_storage_error(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_bytes(b"data")
    with pytest.raises(StorageError, match="not a directory"):
        embedlog.open(afile)
    with pytest.raises(StorageError, match="cannot create the log directory"):
        embedlog.open(afile / "log")  # (a file where a parent directory should be)
    assert afile.read_bytes() == b"data"


def test_two_threads_closing_one_log_release_the_shared_store_once(tmp_path: Path) -> None:
    """Logs of one directory in one process share a store, released with the last one.
    Two threads closing the same Log at once released it twice: the other Log's store
    was closed under it.  The second close now waits for the first."""
    path = tmp_path / "log"
    for _ in range(10):
        log1 = embedlog.open(path, durability="none", maintenance_interval_ms=None)
        if "t" not in log1.topics():
            log1.create_topic("t")
        log2 = embedlog.open(path, durability="none", maintenance_interval_ms=None)
        p1 = log1.producer()
        p1.send("t", b"x")  # (work for close: a wider window)
        barrier = threading.Barrier(2)

        def close(log: embedlog.Log = log1, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            log.close()

        threads = [threading.Thread(target=close) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert log1.closed
        with log2.producer() as p2:
            p2.send("t", b"y")  # the store is still open for log2
        log2.close()


def test_context_managers_close(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as lg:
        lg.create_topic("t")
        with lg.producer(linger_ms=60_000) as p:
            p.send("t", b"x")
        with pytest.raises(ClosedError):
            p.send("t", b"y")
        with lg.consumer(["t"], auto_offset_reset="earliest") as c:
            assert [m.value for m in drain(c)] == [b"x"]  # producer close flushed
        assert c.closed
    assert lg.closed
    with pytest.raises(ClosedError):
        lg.topics()
    assert (tmp_path / "log").is_dir()  # a log with a path is kept


def test_temporary_log_removes_its_directory() -> None:
    lg = embedlog.open()
    path = lg.path
    assert os.path.isdir(path)
    lg.create_topic("t")
    send_flush(lg, "t", [b"x"])
    with lg.consumer(["t"], auto_offset_reset="earliest") as c:
        assert [m.value for m in drain(c)] == [b"x"]
    lg.close()
    assert not os.path.exists(path)
    with embedlog.open() as lg2:
        path2 = lg2.path
        assert path2 != path
    assert not os.path.exists(path2)


def test_reopen_keeps_topics_records_and_offsets(make_log: MakeLog) -> None:
    lg = make_log()
    lg.create_topic("t", 2, {"retention.bytes": 123_456})
    send_flush(lg, "t", [b"a", b"b"], partition=1)
    lg.close()
    lg = make_log()
    assert lg.topics() == ["t"]
    assert lg.describe_topic("t").config["retention.bytes"] == 123_456
    send_flush(lg, "t", [b"c"], partition=1)
    with lg.consumer(["t"], auto_offset_reset="earliest") as c:
        assert [(m.partition, m.offset, m.value) for m in drain(c)] == [(1, 0, b"a"), (1, 1, b"b"), (1, 2, b"c")]


# ------------------------------------------------------------------------------------------
# typed errors for bad input
# ------------------------------------------------------------------------------------------

BAD_NAMES: list[object] = ["", ".", "..", "a" * 250, "has space", "slash/x", "col:on", "\u00fcml", "tab\t", 5, None]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_invalid_topic_name_on_create(log: embedlog.Log, name: object) -> None:
    with pytest.raises(InvalidTopicError):
        log.create_topic(name)  # type: ignore[arg-type]
    assert log.topics() == []


@pytest.mark.parametrize("auto_create", [False, True])
@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_invalid_topic_name_on_produce_and_consume(make_log: MakeLog, name: object, auto_create: bool) -> None:
    lg = make_log(auto_create_topics=auto_create)
    with lg.producer() as p, pytest.raises(InvalidTopicError):
        p.send(name, b"x")  # type: ignore[arg-type]
    with pytest.raises(InvalidTopicError):
        lg.consumer([name])  # type: ignore[list-item]
    assert lg.topics() == []


def test_valid_topic_name_edges(log: embedlog.Log) -> None:
    for name in ("a" * 249, "a", "A.b_c-9", "...x", "-"):
        log.create_topic(name)
    assert len(log.topics()) == 5


def test_names_alike_but_for_dot_and_underscore_collide(log: embedlog.Log) -> None:
    log.create_topic("orders.eu")
    with pytest.raises(InvalidTopicError, match=r"collides with the existing topic 'orders\.eu'"):
        log.create_topic("orders_eu")
    log.create_topic("a_b.c")
    with pytest.raises(InvalidTopicError, match=r"collides with the existing topic 'a_b\.c'"):
        log.create_topic("a.b_c")
    log.create_topic("orders-eu")  # ('-' is not one of them)
    with log.producer() as p, pytest.raises(UnknownTopicError):
        p.send("orders_eu", b"x")  # (not created by the refused call)
    log.delete_topic("orders.eu")
    log.create_topic("orders_eu")  # free again
    assert sorted(log.topics()) == ["a_b.c", "orders-eu", "orders_eu"]


def test_unknown_topic_errors(log: embedlog.Log) -> None:
    with log.producer() as p, pytest.raises(UnknownTopicError):
        p.send("nope", b"x")
    with pytest.raises(UnknownTopicError):
        log.consumer(["nope"])
    with log.consumer() as c, pytest.raises(UnknownTopicError):
        c.assign([TopicPartition("nope", 0)])
    for call in (lambda: log.describe_topic("nope"), lambda: log.alter_topic_config("nope", {}),
                 lambda: log.delete_topic("nope"), lambda: log.create_partitions("nope", 2),
                 lambda: log.delete_records("nope", 0, 1)):
        with pytest.raises(UnknownTopicError):
            call()
    assert log.topics() == []
    assert issubclass(UnknownTopicError, LookupError)


def test_auto_create_topics(make_log: MakeLog) -> None:
    lg = make_log(auto_create_topics=True, default_partitions=3)
    with lg.producer() as p:
        p.send("fresh", b"x", partition=2)
        p.flush()
    desc = lg.describe_topic("fresh")
    assert len(desc.partitions) == 3
    assert desc.partitions[2].end_offset == 1
    with lg.consumer(["also-fresh"]) as c:
        assert len(c.assignment()) == 3
    assert lg.topics() == ["also-fresh", "fresh"]
    with pytest.raises(ConfigError):
        make_log("other", default_partitions=0)


def test_partition_out_of_range(log: embedlog.Log) -> None:
    log.create_topic("t", 2)
    with log.producer() as p:
        for bad in (2, -1, 99):
            with pytest.raises(UnknownPartitionError):
                p.send("t", b"x", partition=bad)
        assert len(p) == 0
    with log.consumer() as c:
        with pytest.raises(UnknownPartitionError):
            c.assign([TopicPartition("t", 2)])
        with pytest.raises(UnknownPartitionError):
            c.assign([TopicPartition("t", -1)])
        c.assign([TopicPartition("t", 0)])
        for bad in (7, -1):
            with pytest.raises(UnknownPartitionError):
                c.end_offsets([TopicPartition("t", bad)])
            with pytest.raises(UnknownPartitionError):
                c.beginning_offsets([TopicPartition("t", bad)])
    for bad in (2, -1):
        with pytest.raises(UnknownPartitionError, match=r"partitions 0\.\.1; partition -?\d does not exist"):
            log.delete_records("t", bad, 0)
    with pytest.raises(UnknownPartitionError, match=r"a partition is an int .*got '0'"):
        log.delete_records("t", "0", 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [2, 7, -1])
def test_offsets_for_times_unknown_partition(log: embedlog.Log, bad: int) -> None:
    """Like beginning_offsets/end_offsets, not a silent None."""
    log.create_topic("t", 2)
    with log.consumer() as c, pytest.raises(UnknownPartitionError):
        c.offsets_for_times({TopicPartition("t", bad): 0})


def test_record_too_large(log: embedlog.Log) -> None:
    log.create_topic("small", config={"max.message.bytes": 1000})
    log.create_topic("default")
    with log.producer() as p:
        with pytest.raises(RecordTooLargeError):
            p.send("small", b"x" * 1001)
        with pytest.raises(RecordTooLargeError):
            p.send("small", b"x" * 600, key=b"k" * 600)
        with pytest.raises(RecordTooLargeError):
            p.send("default", b"x" * 2_000_000)
        assert len(p) == 0
        p.send("small", b"x" * 900)
        p.flush()
    assert log.describe_topic("small").partitions[0].end_offset == 1
    assert log.describe_topic("default").partitions[0].end_offset == 0


@pytest.mark.parametrize(("value", "key"), [("text", None), (42, None), ({"a": 1}, None), (b"v", "text-key"),
                                            (b"v", 7)])
def test_non_bytes_without_serializer(log: embedlog.Log, value: object, key: object) -> None:
    log.create_topic("t")
    with log.producer() as p:
        with pytest.raises(SerializationError):
            p.send("t", value, key=key)
        with pytest.raises(SerializationError):
            p.send("t", b"v", headers=[(1, b"x")])  # type: ignore[list-item]
        assert len(p) == 0
        p.send("t", bytearray(b"ba"), key=memoryview(b"mv"))  # bytes-like is fine
        p.flush()
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert [(m.key, m.value) for m in drain(c)] == [(b"mv", b"ba")]


@pytest.mark.parametrize("policy", ["compact", "compact,delete"])
def test_null_key_on_compacted_topic(log: embedlog.Log, policy: str) -> None:
    log.create_topic("c", config={"cleanup.policy": policy})
    with log.producer() as p:
        with pytest.raises(InvalidRecordError):
            p.send("c", b"no key")
        p.send("c", None, key=b"k")  # a keyed tombstone is fine
        p.flush()
    assert log.describe_topic("c").partitions[0].end_offset == 1


def test_config_errors(log: embedlog.Log, tmp_path: Path) -> None:
    log.create_topic("t")
    for bad in ("smallest", "", None, "EARLIEST"):
        with pytest.raises(ConfigError):
            log.consumer(["t"], auto_offset_reset=bad)
    for config in ({"retention.msx": 1}, {"retention.ms": "abc"}, {"retention.ms": -2}, {"cleanup.policy": "bogus"},
                   {"message.timestamp.type": "Now"}, {"max.message.bytes": True}, {"retention.bytes": 1.5}):
        with pytest.raises(ConfigError):
            log.create_topic("u", config=config)
    assert "u" not in log.topics()
    for partitions in (0, -1, True, "2"):
        with pytest.raises(ConfigError):
            log.create_topic("u", partitions)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        log.producer(compression="gzip")
    with pytest.raises(ConfigError):
        log.producer(partitioner="no-such")
    with pytest.raises(ConfigError):
        embedlog.open(tmp_path / "other", durability="sometimes")
    with log.producer() as p, pytest.raises(ConfigError):
        p.send("t", b"x", timestamp_ms=-5)


@pytest.mark.parametrize("call", [
    lambda log, tmp: embedlog.open(123),  # type: ignore[arg-type]
    lambda log, tmp: embedlog.open(tmp / "x", durabilty="none"),  # (misspelt: unknown options are named)
    lambda log, tmp: log.producer(lingerms=5),
    lambda log, tmp: log.consumer(["t"], gruop="g"),
    lambda log, tmp: log.transaction(acks="all", isolation="x"),
    lambda log, tmp: embedlog.open(tmp / "x", fsync_interval_ms="often"),
    lambda log, tmp: embedlog.open(tmp / "x", maintenance_interval_ms=-1),
    lambda log, tmp: log.producer(linger_ms="a"),
    lambda log, tmp: log.producer(linger_ms=-1),
    lambda log, tmp: log.producer(batch_size=None),
    lambda log, tmp: log.producer(batch_size=0),
    lambda log, tmp: log.producer(delivery_timeout_ms=1.5),
    lambda log, tmp: log.producer(value_serializer="utf-8"),
    lambda log, tmp: log.consumer(["t"]).poll(timeout="1"),
    lambda log, tmp: log.consumer(["t"]).poll(0, max_records=0),
    lambda log, tmp: log.consumer().assign(["t"]),
    lambda log, tmp: log.consumer(["t"]).beginning_offsets([("t",)]),
    lambda log, tmp: log.consumer(["t"]).offsets_for_times({"t": 0}),
    lambda log, tmp: log.consumer(["t"], group="g").commit({"t": 1}),
    lambda log, tmp: log.commit_offsets("g", [("t", 0, 1)]),
    lambda log, tmp: log.transaction().commit_offsets(5, {}),
    lambda log, tmp: log.transaction().commit_offsets("g", {TopicPartition("t", "0"): 1}),
], ids=lambda f: f.__code__.co_firstlineno)
def test_bad_arguments_raise_config_errors(log: embedlog.Log, tmp_path: Path, call: Any) -> None:
    """Wrong types and values of arguments are ``ConfigError`` (an ``EmbedlogError``
    and a ``ValueError``) saying what was expected, never a bare ``TypeError``."""
    log.create_topic("t")
    with pytest.raises(ConfigError):
        call(log, tmp_path)
    assert not (tmp_path / "x").exists()  # (nothing created for an open() refused)


def test_every_error_is_an_embedlog_error() -> None:
    for cls in (ClosedError, ConfigError, InvalidOffsetError, InvalidRecordError, InvalidTopicError,
                NotAssignedError, OffsetOutOfRangeError, RecordTooLargeError, SerializationError,
                TopicExistsError, UnknownPartitionError, UnknownTopicError):
        assert issubclass(cls, EmbedlogError)


# ------------------------------------------------------------------------------------------
# blocking poll
# ------------------------------------------------------------------------------------------


def test_poll_wakes_early_when_another_thread_produces(log: embedlog.Log) -> None:
    log.create_topic("t")
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            time.sleep(0.3)
            send_flush(log, "t", [b"wake up"])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert c.poll(timeout=0) == []
        thread = threading.Thread(target=produce)
        start = time.monotonic()
        thread.start()
        got = c.poll(timeout=60.0)
        elapsed = time.monotonic() - start
        thread.join()
    assert not errors
    assert [m.value for m in got] == [b"wake up"]
    # (woken, not timed out: the bound leaves room for a slow commit on a loaded machine)
    assert elapsed < 20.0, f"poll returned after {elapsed:.1f}s; it should wake when records arrive"


@pytest.mark.parametrize("forever", [None, -1])
def test_poll_without_timeout_waits_for_records_or_close(log: embedlog.Log, forever: float | None) -> None:
    log.create_topic("t")
    got: list[object] = []

    def poll(c: embedlog.Consumer) -> None:
        try:
            got.append(c.poll(timeout=forever))
        except BaseException as exc:  # reported by the main thread
            got.append(exc)

    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        thread = threading.Thread(target=poll, args=(c,))
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive(), "a poll without timeout returned with nothing"
        send_flush(log, "t", [b"came"])
        thread.join(20)
        assert not thread.is_alive()
        assert [m.value for m in got[0]] == [b"came"]  # type: ignore[attr-defined]
        thread = threading.Thread(target=poll, args=(c,))
        thread.start()
        time.sleep(0.3)
        c.close()  # from another thread: the waiting poll ends
        thread.join(20)
        assert not thread.is_alive(), "close() did not end a poll waiting without timeout"
        assert isinstance(got[1], ClosedError)


def test_poll_times_out_empty(log: embedlog.Log) -> None:
    log.create_topic("t")
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        start = time.monotonic()
        assert c.poll(timeout=0.2) == []
        assert time.monotonic() - start >= 0.15


def test_headers_are_copied_at_send_so_a_reused_list_does_not_change_the_record(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("h")
        headers = [("trace", b"one")]
        with log.producer() as p:
            p.send("h", b"a", headers=headers)
            headers[0] = ("trace", b"two")  # an app reusing its list for the next record
            headers.append(("extra", None))
            p.send("h", b"b", headers=headers)
            p.flush()
        c = log.consumer(["h"], auto_offset_reset="earliest")
        got = c.poll(timeout=5.0)
        assert [(m.value, m.headers) for m in got] == [
            (b"a", [("trace", b"one")]), (b"b", [("trace", b"two"), ("extra", None)])]
