"""A drop-in for confluent-kafka (``confluent_kafka``) over an embedded log.

>>> from embedlog.compat.confluent_kafka import Consumer, Producer
>>> p = Producer({"bootstrap.servers": "doctest:9092"})
>>> p.produce("orders", b"hello", key=b"user-1")
>>> p.flush()
0
>>> c = Consumer({"bootstrap.servers": "doctest:9092", "group.id": "billing", "auto.offset.reset": "earliest"})
>>> c.subscribe(["orders"])
>>> msg = c.poll(5.0)
>>> msg.value(), msg.key(), msg.error()
(b'hello', b'user-1', None)
>>> c.close()

Clients find their log through ``embedlog.compat.registry.log_for(config)``: clients with
the same ``bootstrap.servers`` share one log; ``embedlog.path`` names a log directory.
Topics are created on first produce when the cluster auto-creates topics (the default);
a consumer creates them only with ``allow.auto.create.topics=true``, as librdkafka does,
and otherwise gets an ``UNKNOWN_TOPIC_OR_PART`` event and waits for the topic.

Behaviour follows confluent-kafka/librdkafka: configuration keys and values are checked
as librdkafka checks them; keys hash with ``consistent_random`` (CRC32) unless
``partitioner`` says otherwise; delivery reports are served only by ``poll()`` and
``flush()``; ``enable.partition.eof`` gives ``_PARTITION_EOF`` events.

When confluent-kafka is installed, ``TopicPartition``, ``Message``, ``KafkaError``,
``KafkaException`` and the admin value classes *are* the real client's classes, so that
application code mixing both (``except confluent_kafka.KafkaException``) works; without
it, pure-Python equivalents with the same behaviour are used.
"""

from __future__ import annotations

from typing import Any

from ._admin_types import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    IsolationLevel,
    Node,
    TopicCollection,
    TopicPartitionInfo,
    Uuid,
)
from ._consumer import Consumer, ConsumerGroupMetadata
from ._errors import KafkaError, KafkaException
from ._producer import Producer
from ._serde import DeserializingConsumer, SerializingProducer
from ._types import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    OFFSET_STORED,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    TIMESTAMP_NOT_AVAILABLE,
    Message,
    TopicPartition,
)

__all__ = [
    "Consumer", "ConsumerGroupMetadata", "Producer", "DeserializingConsumer", "SerializingProducer",
    "Message", "TopicPartition", "KafkaError", "KafkaException",
    "OFFSET_BEGINNING", "OFFSET_END", "OFFSET_INVALID", "OFFSET_STORED",
    "TIMESTAMP_CREATE_TIME", "TIMESTAMP_LOG_APPEND_TIME", "TIMESTAMP_NOT_AVAILABLE",
    "ConsumerGroupState", "ConsumerGroupTopicPartitions", "ConsumerGroupType", "Node",
    "IsolationLevel", "TopicCollection", "TopicPartitionInfo", "Uuid",
    "consistent", "fnv1a", "murmur2", "libversion", "version",
]

#: the confluent-kafka / librdkafka versions whose behaviour this shim follows
_VERSION = ("2.16.1", 0x02100100)
_LIBVERSION = ("2.16.0", 0x021000FF)


def version() -> tuple[str, int]:
    """``(version string, int)`` of the confluent-kafka release this shim mirrors."""
    return _VERSION


def libversion() -> tuple[str, int]:
    """``(version string, int)`` of the librdkafka release this shim mirrors."""
    return _LIBVERSION


def _partition_of(name: str, key: Any, partition_count: int) -> int:
    from embedlog.partitioner import KeyHasher, resolve  # noqa: PLC0415 - small, rarely used

    if not isinstance(key, bytes):
        raise TypeError("key must be bytes")
    if isinstance(partition_count, bool) or not isinstance(partition_count, int):
        raise TypeError("partition_count must be int")
    if partition_count <= 0:
        raise ValueError("partition_count must be > 0")
    hasher = resolve(name)
    assert isinstance(hasher, KeyHasher)
    return hasher.hash(key) % partition_count


def murmur2(key: bytes, partition_count: int) -> int:
    """Partition of ``key`` by the Java client's murmur2 (librdkafka's ``murmur2`` partitioner)."""
    return _partition_of("murmur2", key, partition_count)


def consistent(key: bytes, partition_count: int) -> int:
    """Partition of ``key`` by CRC32 (librdkafka's ``consistent`` partitioner)."""
    return _partition_of("consistent", key, partition_count)


def fnv1a(key: bytes, partition_count: int) -> int:
    """Partition of ``key`` by FNV-1a (librdkafka's ``fnv1a`` partitioner)."""
    return _partition_of("fnv1a", key, partition_count)
