"""Kafka's murmur2 partition hash, and where a producer actually puts keyed records.

Test vectors are Kafka's own (``org.apache.kafka.common.utils.UtilsTest.testMurmur2``);
an independent transcription of the Java code is the oracle for random keys.  The
producer tests go through the public API (a temporary log, ``send``, ``flush``, a
consumer) and check each record's partition.
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedlog
from embedlog import Message
from embedlog.codec.murmur2 import murmur2, partition_for_key
from embedlog.errors import ConfigError, UnknownPartitionError
from embedlog.partitioner import NAMES

KAFKA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

PRODUCER_SETTINGS = settings(max_examples=8, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
key_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=150, unique=True)


# -- an independent oracle: Kafka's Utils.murmur2, transcribed line by line ----------------
def _int(x: int) -> int:
    """Wrap to a Java ``int``."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


def _ushr(x: int, n: int) -> int:
    """Java's ``>>>`` on an ``int``."""
    return (x & 0xFFFFFFFF) >> n


def java_murmur2(data: bytes) -> int:
    length = len(data)
    seed = _int(0x9747B28C)
    m = 0x5BD1E995
    r = 24
    h = _int(seed ^ length)
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = (data[i4 + 0] & 0xFF) + ((data[i4 + 1] & 0xFF) << 8) + ((data[i4 + 2] & 0xFF) << 16) + \
            ((data[i4 + 3] & 0xFF) << 24)
        k = _int(k * m)
        k = _int(k ^ _ushr(k, r))
        k = _int(k * m)
        h = _int(h * m)
        h = _int(h ^ k)
    rest = length % 4  # Java's switch falls through 3 -> 2 -> 1
    if rest >= 3:
        h = _int(h ^ ((data[(length & ~3) + 2] & 0xFF) << 16))
    if rest >= 2:
        h = _int(h ^ ((data[(length & ~3) + 1] & 0xFF) << 8))
    if rest >= 1:
        h = _int(h ^ (data[length & ~3] & 0xFF))
        h = _int(h * m)
    h = _int(h ^ _ushr(h, 13))
    h = _int(h * m)
    return _int(h ^ _ushr(h, 15))


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not ``abs``)."""
    return n & 0x7FFFFFFF


# -- the hash ----------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS, ids=[v[0].decode()[:12] for v in KAFKA_VECTORS])
def test_kafka_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected
    assert java_murmur2(data) == expected  # the oracle is right too


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=70))
def test_matches_java_transcription(data: bytes) -> None:
    h = murmur2(data)
    assert h == java_murmur2(data)
    assert -(2**31) <= h < 2**31


def test_all_tail_lengths() -> None:
    """Every ``length % 4`` branch, with high bytes that would break signed-byte handling."""
    for n in range(20):
        data = bytes((0x80 + 37 * i) & 0xFF for i in range(n))
        assert murmur2(data) == java_murmur2(data), n


def test_to_positive_is_a_mask_not_abs() -> None:
    assert to_positive(-973932308) == 1_173_551_340
    assert to_positive(-(2**31)) == 0  # Kafka's UtilsTest: toPositive(Integer.MIN_VALUE) == 0
    assert to_positive(2**31 - 1) == 2**31 - 1
    # b"21" hashes negative: the mask and abs() disagree for 7 partitions
    assert partition_for_key(b"21", 7) == 3
    assert abs(-973932308) % 7 == 6


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=40), partitions=st.integers(1, 10_000))
def test_partition_for_key(key: bytes, partitions: int) -> None:
    p = partition_for_key(key, partitions)
    assert p == to_positive(java_murmur2(key)) % partitions
    assert 0 <= p < partitions


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS, ids=[v[0].decode()[:12] for v in KAFKA_VECTORS])
def test_partition_for_kafka_vectors(data: bytes, expected: int) -> None:
    for n in (1, 2, 3, 6, 12, 100):
        assert partition_for_key(data, n) == (expected & 0x7FFFFFFF) % n


# -- the producer --------------------------------------------------------------------------
@contextmanager
def temp_log(partitions: int, **producer_options: object) -> Iterator[tuple[embedlog.Log, embedlog.Producer]]:
    with embedlog.open(maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=partitions)
        with log.producer(**producer_options) as producer:
            yield log, producer


def consume_all(log: embedlog.Log, expected: int, timeout: float = 30.0) -> list[Message]:
    out: list[Message] = []
    with log.consumer(["t"], auto_offset_reset="earliest") as consumer:
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(consumer.poll(timeout=0.5))
        out.extend(consumer.poll(timeout=0.05))  # and nothing more
    assert len(out) == expected
    return out


def check_partitions(log: embedlog.Log, keys: list[bytes], rule: Callable[[bytes], int]) -> None:
    msgs = consume_all(log, len(keys))
    assert sorted(m.key for m in msgs if m.key is not None) == sorted(keys)
    for m in msgs:
        assert m.key is not None
        assert m.partition == rule(m.key), m.key
    per_partition = [sum(1 for k in keys if rule(k) == p) for p in range(len(log.describe_topic("t").partitions))]
    assert [p.end_offset for p in log.describe_topic("t").partitions] == per_partition


@pytest.mark.parametrize("partitioner", [None, "murmur2_random", "murmur2"])
@PRODUCER_SETTINGS
@given(keys=key_lists, partitions=st.integers(1, 24))
def test_producer_puts_keyed_records_on_murmur2_partition(partitioner: str | None, keys: list[bytes],
                                                          partitions: int) -> None:
    with temp_log(partitions, partitioner=partitioner) as (log, producer):
        for i, key in enumerate(keys):
            producer.send("t", b"v%d" % i, key=key)
        producer.flush()
        check_partitions(log, keys, lambda k: partition_for_key(k, partitions))


def test_producer_many_random_keys_on_many_partitions() -> None:
    """One larger run: 3,000 keys over 37 partitions, Kafka's default partitioner."""
    keys = [b"user-%d" % i for i in range(2000)] + [bytes([i % 256, i // 256, 7]) for i in range(1000)]
    with temp_log(37) as (log, producer):
        for key in keys:
            producer.send("t", b"x", key=key)
        producer.flush()
        check_partitions(log, keys, lambda k: partition_for_key(k, 37))


# -- the other partitioner names -----------------------------------------------------------
def test_crc32_is_the_ieee_crc_librdkafka_uses() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926  # the CRC-32/ISO-HDLC check value (rd_crc32)
    assert zlib.crc32(b"") == 0


@pytest.mark.parametrize("partitioner", ["consistent_random", "consistent"])
@PRODUCER_SETTINGS
@given(keys=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=150, unique=True),
       partitions=st.integers(1, 24))
def test_consistent_partitioners_use_crc32(partitioner: str, keys: list[bytes], partitions: int) -> None:
    with temp_log(partitions, partitioner=partitioner) as (log, producer):
        for key in keys:
            producer.send("t", b"v", key=key)
        producer.flush()
        check_partitions(log, keys, lambda k: zlib.crc32(k) % partitions)


def test_consistent_hashes_null_and_empty_keys_to_partition_zero() -> None:
    """librdkafka's ``consistent``: a NULL or empty key is CRC32 of nothing, 0 -> partition 0."""
    with temp_log(16, partitioner="consistent") as (log, producer):
        for _ in range(4):
            for _ in range(5):
                producer.send("t", b"v", key=None)
                producer.send("t", b"v", key=b"")
            producer.flush()
        assert {m.partition for m in consume_all(log, 40)} == {0}


def test_consistent_random_spreads_empty_keys_like_null_keys() -> None:
    """librdkafka's ``consistent_random``: empty and NULL keys are not hashed (else all would be on 0)."""
    with temp_log(64, partitioner="consistent_random") as (log, producer):
        for _ in range(6):
            for _ in range(5):
                producer.send("t", b"v", key=b"")
                producer.send("t", b"v", key=None)
            producer.flush()
        assert {m.partition for m in consume_all(log, 60)} != {0}


def test_every_partitioner_name_is_accepted() -> None:
    with embedlog.open(maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=3)
        for name in NAMES:
            with log.producer(partitioner=name) as producer:
                producer.send("t", b"v", key=b"k")
                producer.send("t", b"v")
                producer.flush()
        assert sum(p.end_offset for p in log.describe_topic("t").partitions) == 2 * len(NAMES)


@pytest.mark.parametrize("bad", ["murmur3", "", "Murmur2", 5, b"murmur2"])
def test_unknown_partitioner_is_a_config_error(bad: object) -> None:
    with embedlog.open(maintenance_interval_ms=None) as log, pytest.raises(ConfigError):
        log.producer(partitioner=bad)


# -- custom partitioners ----------------------------------------------------------------
def test_custom_partitioner_is_honoured() -> None:
    calls: list[tuple[bytes | None, int]] = []

    def by_length(key: bytes | None, partitions: int) -> int:
        calls.append((key, partitions))
        return partitions - 1 if key is None else len(key) % partitions

    keys: list[bytes | None] = [b"", b"a", b"bb", b"ccc", b"dddd", b"eeeee", None, b"a" * 13, None]
    with temp_log(5, partitioner=by_length) as (log, producer):
        for i, key in enumerate(keys):
            producer.send("t", b"%d" % i, key=key)
        producer.send("t", b"explicit", key=b"zz", partition=0)  # an explicit partition wins
        producer.flush()
        msgs = consume_all(log, len(keys) + 1)
    assert calls == [(k, 5) for k in keys]
    for m in msgs:
        if m.value == b"explicit":
            assert m.partition == 0
        else:
            key = keys[int(m.value or b"")]
            assert m.key == key
            assert m.partition == (4 if key is None else len(key) % 5)


@pytest.mark.parametrize("returned", [-1, 3, 4, 1_000, None, "0", 1.0, True])
def test_custom_partitioner_out_of_range_is_unknown_partition(returned: object) -> None:
    with temp_log(3, partitioner=lambda key, n: returned) as (log, producer):
        with pytest.raises(UnknownPartitionError) as info:
            producer.send("t", b"v", key=b"k")
        assert isinstance(info.value, LookupError)
        producer.flush()
        assert [p.end_offset for p in log.describe_topic("t").partitions] == [0, 0, 0]  # nothing was buffered


def test_custom_partitioner_exception_propagates_and_buffers_nothing() -> None:
    def broken(key: bytes | None, partitions: int) -> int:
        raise KeyError(key)

    with temp_log(2, partitioner=broken) as (log, producer):
        with pytest.raises(KeyError):
            producer.send("t", b"v", key=b"k")
        producer.send("t", b"v", key=b"k", partition=1)  # explicit partitions still work
        producer.flush()
        assert [p.end_offset for p in log.describe_topic("t").partitions] == [0, 1]


def test_null_keys_stick_to_a_partition_for_a_batch_then_move_on() -> None:
    """Kafka's sticky partitioner (KIP-480, KIP-794): records without a key go to one
    partition until a batch's worth (``batch_size`` bytes) went there, then to another
    (so one big flush still spreads), and a write of the buffers moves on too."""
    with embedlog.open(maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=6)
        placed: dict[int, int] = {}
        with log.producer(batch_size=16_384, linger_ms=60_000) as p:
            for i in range(5000):
                p.send("t", b"x" * 100, on_delivery=lambda err, md, i=i: placed.__setitem__(i, md.partition))
            p.flush()
        order = [placed[i] for i in range(5000)]
        runs = [len(list(group)) for _, group in itertools.groupby(order)]
        assert len(runs) > 3  # one flush, yet several partitions
        assert all(150 <= run <= 170 for run in runs[:-1]), runs  # a batch's worth each: 16,384 / 100 bytes
        assert len(set(order)) >= 3
        before = [d.end_offset for d in log.describe_topic("t").partitions]
        with log.producer(linger_ms=60_000) as p:  # (1 MiB batches: a small flush stays on one)
            for _ in range(50):
                p.send("t", b"y")
            p.flush()
        after = [d.end_offset for d in log.describe_topic("t").partitions]
        assert sum(after) - sum(before) == 50
        assert sum(1 for a, b in zip(before, after) if a != b) == 1
