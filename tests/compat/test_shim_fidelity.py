"""Details where the shims must do what the real clients do.

Each expectation is what the real library did, on librdkafka's mock cluster or (for the
checks a client makes before talking to a broker) on its own: partition placement of
an empty key, ``message.max.bytes`` as librdkafka counts it, argument checks and their
exception types, ``seek`` and ``store_offsets`` error codes, and what aiokafka's
``commit()`` commits.  (The metadata of an offset committed without any is ``""``, as a
Kafka broker returns it, where the mock cluster returns none: see
``test_confluent_differential.py``.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from embedlog.compat import aiokafka as ak
from embedlog.compat import confluent_kafka as ck
from embedlog.compat import kafka_python as kp
from embedlog.compat import registry


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    registry.reset()


def conf(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    return {"bootstrap.servers": "fid-" + uuid.uuid4().hex[:6] + ":9092", "embedlog.path": str(tmp_path / "log"),
            "embedlog.num.partitions": 4, **kw}


def code_of(info: pytest.ExceptionInfo[ck.KafkaException]) -> int:
    return int(info.value.args[0].code())


def test_fnv1a_random_hashes_an_empty_key(tmp_path: Path) -> None:
    """librdkafka's fnv1a_random picks at random for a NULL key only: b"" is hashed,
    abs(int32(FNV-1a offset basis)) % 4 == 3."""
    p = ck.Producer(conf(tmp_path, partitioner="fnv1a_random"))
    parts: list[int] = []
    for _ in range(6):
        p.produce("t", b"v", key=b"", on_delivery=lambda e, m: parts.append(m.partition()))
    p.flush(10)
    assert parts == [3] * 6


def test_message_max_bytes_counts_librdkafkas_overhead_and_the_headers(tmp_path: Path) -> None:
    """librdkafka refuses key + value + headers (as a record encodes them) + 36 bytes over
    message.max.bytes: at 2,000, the largest value is 1,964 bytes; a header (a, b"b")
    takes 4 bytes of it, (a, None) 3."""
    p = ck.Producer(conf(tmp_path, **{"message.max.bytes": 2000}))
    p.produce("t", b"x" * 1964)
    with pytest.raises(ck.KafkaException) as info:
        p.produce("t", b"x" * 1965)
    assert code_of(info) == ck.KafkaError.MSG_SIZE_TOO_LARGE
    p.produce("t", b"x" * 1954, key=b"k" * 10)
    with pytest.raises(ck.KafkaException):
        p.produce("t", b"x" * 1955, key=b"k" * 10)
    p.produce("t", b"x" * 1960, headers=[("a", b"b")])
    with pytest.raises(ck.KafkaException):
        p.produce("t", b"x" * 1961, headers=[("a", b"b")])
    p.produce("t", b"x" * 1961, headers=[("a", None)])
    p.produce("t", b"x" * 1761, headers=[("n" * 200, b"")])  # (a 2-byte varint for the name's length)
    with pytest.raises(ck.KafkaException):
        p.produce("t", b"x" * 1762, headers=[("n" * 200, b"")])
    assert p.flush(10) == 0
    default = ck.Producer(conf(tmp_path))
    with pytest.raises(ck.KafkaException):
        default.produce("t", b"x" * 1_000_000)
    default.produce("t", b"x" * 999_964)
    assert default.flush(10) == 0


def test_commit_and_store_offsets_check_their_arguments_first(tmp_path: Path) -> None:
    c = ck.Consumer(conf(tmp_path, **{"group.id": "g"}))
    p = ck.Producer(conf(tmp_path))
    p.produce("t", b"a", partition=0)
    p.flush(5)
    c.assign([ck.TopicPartition("t", 0, ck.OFFSET_BEGINNING)])
    m = None
    for _ in range(50):
        m = c.poll(0.1)
        if m is not None:
            break
    assert m is not None
    assert m.error() is None
    with pytest.raises(ValueError, match="mutually exclusive"):
        c.commit(message=m, offsets=[ck.TopicPartition("t", 0, 1)])
    with pytest.raises(ValueError, match="expected either message or offsets"):
        c.store_offsets()  # (before the enable.auto.offset.store check, as the real client)
    c.close()


def test_seek_error_codes_are_librdkafkas(tmp_path: Path) -> None:
    c = ck.Consumer(conf(tmp_path, **{"group.id": "g"}))
    ck.Producer(conf(tmp_path)).list_topics("t", timeout=5)
    with pytest.raises(ck.KafkaException) as info:
        c.seek(ck.TopicPartition("t", 0, 1))  # a partition it knows, not assigned
    assert code_of(info) == ck.KafkaError._STATE
    with pytest.raises(ck.KafkaException) as info:
        c.seek(ck.TopicPartition("nowhere", 0, 1))  # a topic it does not know
    assert code_of(info) == ck.KafkaError._UNKNOWN_PARTITION
    c.assign([ck.TopicPartition("t", 0)])
    for logical in (ck.OFFSET_STORED, ck.OFFSET_INVALID):
        with pytest.raises(ck.KafkaException) as info:
            c.seek(ck.TopicPartition("t", 0, logical))
        assert code_of(info) == ck.KafkaError._INVALID_ARG
    c.seek(ck.TopicPartition("t", 0, ck.OFFSET_BEGINNING))
    c.close()


def test_partition_lists_must_be_lists_and_an_assignment_names_each_partition_once(tmp_path: Path) -> None:
    c = ck.Consumer(conf(tmp_path, **{"group.id": "g"}))
    ck.Producer(conf(tmp_path)).list_topics("t", timeout=5)
    for call in (c.assign, c.pause, c.position):
        with pytest.raises(TypeError, match="requires list of TopicPartition"):
            call((ck.TopicPartition("t", 0),))
    with pytest.raises(ck.KafkaException) as info:
        c.assign([ck.TopicPartition("t", 0), ck.TopicPartition("t", 0)])
    assert code_of(info) == ck.KafkaError._INVALID_ARG
    c.close()


def test_headers_are_a_list_of_pairs_or_a_dict(tmp_path: Path) -> None:
    p = ck.Producer(conf(tmp_path))
    with pytest.raises(TypeError, match="not tuple"):
        p.produce("t", b"v", headers=(("a", b"1"),))
    with pytest.raises(TypeError, match="not list_iterator"):
        p.produce("t", b"v", headers=iter([("a", b"1")]))
    with pytest.raises(TypeError, match="list of \\(key, value\\) tuples"):
        p.produce("t", b"v", headers=[["a", b"1"]])
    p.produce("t", b"v", headers={"a": b"1"})
    p.produce("t", b"v", headers=[("a", b"1")])
    assert p.flush(5) == 0


def test_aiokafka_commit_commits_every_assigned_partitions_position(tmp_path: Path) -> None:
    """aiokafka's commit() without offsets commits the position of every assigned
    partition that has one, those nothing was read from included."""

    async def go() -> tuple[int | None, int | None]:
        base: dict[str, Any] = {"bootstrap_servers": "fida-" + uuid.uuid4().hex[:6] + ":9092",
                                "embedlog_path": str(tmp_path / "a")}
        registry.log_for({"embedlog.path": base["embedlog_path"]}).log.create_topic("t", partitions=2)
        p = ak.AIOKafkaProducer(**base)
        await p.start()
        for _ in range(3):
            await p.send_and_wait("t", b"v", partition=0)
        await p.stop()
        c = ak.AIOKafkaConsumer(group_id="g", enable_auto_commit=False, auto_offset_reset="earliest", **base)
        await c.start()
        tp0, tp1 = ak.TopicPartition("t", 0), ak.TopicPartition("t", 1)
        c.assign([tp0, tp1])
        n = 0
        for _ in range(30):
            n += sum(len(v) for v in (await c.getmany(timeout_ms=200)).values())
            if n >= 3:
                break
        assert await c.position(tp1) == 0
        await c.commit()
        got = (await c.committed(tp0), await c.committed(tp1))
        await c.stop()
        return got

    assert asyncio.run(go()) == (3, 0)


def test_kafka_python_send_refuses_a_topic_that_is_not_a_string(tmp_path: Path) -> None:
    p = kp.KafkaProducer(bootstrap_servers="fidk-" + uuid.uuid4().hex[:6] + ":9092",
                         embedlog_path=str(tmp_path / "k"))
    with pytest.raises(TypeError, match="All topics must be strings"):
        p.send(5, b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="All topics must be strings"):
        p.send(b"bytes", b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="All topics must not be None"):
        p.send(None, b"v")  # type: ignore[arg-type]
    p.close()
