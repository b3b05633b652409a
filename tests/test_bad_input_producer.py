"""Bad input to the log and the producer gets a typed error that says what to do, never a
raw TypeError/OverflowError/UnicodeEncodeError from inside embedlog or lmdb, and changes
nothing: after each, the log still takes and returns a good record and keeps the earlier
ones.  Both send paths (the C extension's and the pure-Python reference)."""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog.errors import (
    ConfigError,
    EmbedlogError,
    InvalidOffsetError,
    InvalidTopicError,
    SerializationError,
    UnknownPartitionError,
)
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

IMPLS = ["c", "python"]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[embedlog.Log]:
    lg = embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None)
    lg.create_topic("t")
    with lg.producer() as p:
        p.send("t", b"before", key=b"k")
    yield lg
    lg.close()


_producer = harness.producer


def _still_works(log: embedlog.Log) -> None:
    with log.producer() as p:
        p.send("t", b"after", key=b"k")
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        values = [m.value for m in c.poll(timeout=5)]
    assert values[0] == b"before"
    assert values[-1] == b"after"


class Hostile:
    def __hash__(self) -> int:
        raise RuntimeError("no hash")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda p: p.send(bytearray(b"t"), b"v"), InvalidTopicError, "topic"),
    (lambda p: p.send(["t"], b"v"), InvalidTopicError, "topic"),
    (lambda p: p.send("t", b"v", key=b"k", on_delivery=1), ConfigError, "on_delivery"),
    (lambda p: p.send("t", b"v", on_delivery="print"), ConfigError, "on_delivery"),
    (lambda p: p.send("t", b"v", key=b"k", headers=0), SerializationError, "headers"),
    (lambda p: p.send("t", b"v", key=b"k", headers=False), SerializationError, "headers"),
    (lambda p: p.send("t", b"v", key=b"k", headers=""), SerializationError, "headers"),
    (lambda p: p.flush(timeout="soon"), ConfigError, "timeout"),
    (lambda p: p.flush(timeout=math.nan), ConfigError, "timeout"),
    (lambda p: p.flush(timeout=float("nan")), ConfigError, "timeout"),
])
def test_bad_sends_and_flushes(log: embedlog.Log, impl: str, call: Callable[[Any], None],
                               error: type[EmbedlogError], match: str) -> None:
    p = _producer(log, impl)
    try:
        p.send("t", b"x", key=b"k")  # (a key seen before: the C fast path takes the next one)
        with pytest.raises(error, match=match):
            call(p)
        p.flush()
    finally:
        p.close()
    _still_works(log)


@pytest.mark.parametrize("options", [
    {"compression": ["zstd"]}, {"acks": ["all"]}, {"acks": {}}, {"linger_ms": math.inf}, {"linger_ms": 2 ** 63},
    {"linger_ms": math.nan}, {"buffer_records": 2 ** 63}, {"buffer_bytes": 0}, {"buffer_bytes": True},
    {"batch_size": 0}, {"delivery_timeout_ms": 2 ** 40}, {"acks": True}, {"acks": False}, {"acks": 1.0},
])
def test_bad_producer_options(log: embedlog.Log, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        log.producer(**options)
    with pytest.raises(ConfigError):
        log.transaction(**options)
    _still_works(log)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_failing_serializer_is_a_serialization_error(log: embedlog.Log, impl: str) -> None:
    p = _producer(log, impl, key_serializer=int)
    try:
        with pytest.raises(SerializationError, match="key serializer") as info:
            p.send("t", b"v", key="not a number")
        assert isinstance(info.value.__cause__, ValueError)
    finally:
        p.close()
    _still_works(log)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_serializer_returning_no_bytes_is_named_as_the_fault(log: embedlog.Log, impl: str) -> None:
    """It used to say 'give the producer a value_serializer' to a producer that has one."""
    p = _producer(log, impl, value_serializer=lambda v: "oops", key_serializer=lambda k: 5)
    try:
        with pytest.raises(SerializationError, match="value_serializer returned str; it must return bytes"):
            p.send("t", {"a": 1})
        with pytest.raises(SerializationError, match="key_serializer returned int"):
            p.send("t", None, key="k")
    finally:
        p.close()
    _still_works(log)


@pytest.mark.parametrize("impl", IMPLS)
def test_partition_and_timestamp_of_any_integer_type(log: embedlog.Log, impl: str) -> None:
    """An ``IntEnum`` or numpy-style integer partition and timestamp are their int (a
    custom partitioner's result already was); bool and float stay refused."""

    class Part(enum.IntEnum):
        ONE = 1

    class Index:
        def __init__(self, n: int) -> None:
            self.n = n

        def __index__(self) -> int:
            return self.n

    log.create_topic("three", partitions=3)
    p = _producer(log, impl)
    try:
        p.send("three", b"a", partition=Part.ONE, timestamp_ms=Index(5))
        p.send("three", b"b", key=b"k", partition=Index(2))
        p.flush()
        with pytest.raises(UnknownPartitionError, match="partition 3 does not exist"):
            p.send("three", b"c", partition=Index(3))
        with pytest.raises(UnknownPartitionError):
            p.send("three", b"c", partition=True)
        with pytest.raises(UnknownPartitionError):
            p.send("three", b"c", partition=1.0)
        with pytest.raises(ConfigError, match="timestamp_ms"):
            p.send("three", b"c", timestamp_ms=Index(-1))
    finally:
        p.close()
    c = log.consumer(auto_offset_reset="earliest")
    c.assign([embedlog.TopicPartition("three", i) for i in range(3)])
    got = sorted((m.partition, m.value, m.timestamp) for m in c.poll(timeout=1.0))
    assert got[0] == (1, b"a", 5)
    assert got[1][:2] == (2, b"b")
    c.close()


@pytest.mark.parametrize("config", [None, [("retention.ms", 1)], 5])
def test_alter_topic_config_takes_a_mapping(log: embedlog.Log, config: Any) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        log.alter_topic_config("t", config)
    _still_works(log)


class PathStr(str):
    pass


def test_a_str_subclass_path_is_a_path(tmp_path: Path) -> None:
    with embedlog.open(PathStr(tmp_path / "sub"), durability="none") as lg:
        lg.create_topic("t")
        assert lg.topics() == ["t"]


@pytest.mark.parametrize(("options", "match"), [
    ({"path": "a\udc80"}, "encoded"),
    ({"path": "a\x00b"}, "NUL"),
    ({"path": b"bytes"}, "path"),
    ({"map_size": 2 ** 70}, "map_size"),
    ({"map_size": 1.5}, "map_size"),
    ({"map_size": "1GB"}, "map_size"),
    ({"map_size": -1}, "map_size"),
    ({"map_size": 0}, "map_size"),
    ({"maintenance_interval_ms": 2 ** 70}, "maintenance_interval_ms"),
    ({"maintenance_interval_ms": math.inf}, "maintenance_interval_ms"),
    ({"maintenance_interval_ms": ""}, "maintenance_interval_ms"),
    ({"maintenance_interval_ms": []}, "maintenance_interval_ms"),
    ({"maintenance_interval_ms": 0}, "maintenance_interval_ms"),
    ({"fsync_interval_ms": 2 ** 70, "durability": "interval"}, "fsync_interval_ms"),
    ({"fsync_interval_ms": math.nan}, "fsync_interval_ms"),
    ({"auto_create_topics": "false"}, "auto_create_topics"),
    ({"default_partitions": True}, "default_partitions"),
])
def test_bad_open_options(tmp_path: Path, options: dict[str, Any], match: str) -> None:
    path = options.pop("path", None)
    where = tmp_path / "x" if path is None else path
    with pytest.raises(ConfigError, match=match):
        embedlog.open(where, **options)
    assert not (tmp_path / "x").exists()


def test_wait_for_data_checks_its_arguments(log: embedlog.Log) -> None:
    seen = log.data_generation
    for bad in ("x", math.nan, [1]):
        with pytest.raises(ConfigError, match="timeout"):
            log.wait_for_data(seen, bad)
    with pytest.raises(ConfigError, match="seen"):
        log.wait_for_data("0", 1.0)  # type: ignore[arg-type]

    def write() -> None:
        time.sleep(0.2)
        with log.producer() as p:
            p.send("t", b"later", key=b"k")

    writer = threading.Thread(target=write)
    log.wait_for_data(seen, 0)  # (the first wait of a process may return at once: it registers,
    time.sleep(0.1)  # and its waits are cut short for a few ms after)
    seen = log.data_generation
    writer.start()
    assert log.wait_for_data(seen, None) != seen  # None: until data comes
    writer.join()
    _still_works(log)


@pytest.mark.parametrize(("call", "error"), [
    (lambda log: log.dump("t", 0, start_offset=-5), InvalidOffsetError),
    (lambda log: log.dump("t", 0, start_offset="a"), InvalidOffsetError),
    (lambda log: log.dump("t", 0, start_offset=2 ** 70), InvalidOffsetError),
    (lambda log: log.dump("t", 0, start_offset=True), InvalidOffsetError),
    (lambda log: log.dump("t", 0, max_batches=0), ConfigError),
    (lambda log: log.dump("t", 0, max_batches="x"), ConfigError),
    (lambda log: log.verify(progress="x"), ConfigError),
])
def test_dump_and_verify_check_their_arguments(log: embedlog.Log, call: Callable[[Any], Any],
                                               error: type[Exception]) -> None:
    """At the call, with a typed error (a bad start_offset used to fail inside the
    iteration with a TypeError or struct.error, a bad progress callback mid-verify)."""
    with pytest.raises(error):
        call(log)
    assert len(list(log.dump("t", 0, start_offset=0, max_batches=1))) <= 1  # (good arguments still work)
