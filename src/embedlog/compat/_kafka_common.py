"""Plumbing shared by the kafka-python and aiokafka shims (both descend from kafka-python's API).

Nothing here is public: config splitting, finding the log through the registry,
topic auto-creation, partition choice, assignor names, error translation and record
conversion.  It imports neither real client library (the aiokafka shim must not pull
in kafka-python).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Iterable, Mapping
from types import ModuleType
from typing import Any

from .. import errors as el_errors
from ..consumer import Consumer
from ..log import Log
from ..model import TopicPartition
from ..partitioner import KeyHasher, resolve
from . import registry

__all__: list[str] = []

#: embedlog's own keys, accepted by every client as keyword arguments (dotted or underscored)
EMBEDLOG_KWARGS = {
    registry.PATH_KEY: registry.PATH_KEY,
    "embedlog_path": registry.PATH_KEY,
    registry.AUTO_CREATE_KEY: registry.AUTO_CREATE_KEY,
    "embedlog_auto_create_topics": registry.AUTO_CREATE_KEY,
    registry.PARTITIONS_KEY: registry.PARTITIONS_KEY,
    "embedlog_num_partitions": registry.PARTITIONS_KEY,
}

_RESOLVED = resolve("murmur2")
assert isinstance(_RESOLVED, KeyHasher)
_MURMUR2: KeyHasher = _RESOLVED


def split_embedlog(configs: dict[str, Any]) -> dict[str, Any]:
    """Remove embedlog's own keys from ``configs``; return them as registry config."""
    out = {}
    for key in [k for k in configs if k in EMBEDLOG_KWARGS]:
        out[EMBEDLOG_KWARGS[key]] = configs.pop(key)
    return out


def cluster_for(bootstrap_servers: object, embedlog_config: Mapping[str, Any]) -> registry.Cluster:
    """The registry's cluster for a client's ``bootstrap_servers`` (a str or a list)."""
    servers = bootstrap_servers
    if isinstance(servers, (list, tuple)):
        servers = ",".join(str(s) for s in servers)
    return registry.log_for({"bootstrap.servers": servers, **embedlog_config})


def murmur2_partition(key: bytes, partitions: int) -> int:
    """kafka-python's and aiokafka's ``DefaultPartitioner`` for a key: Java's murmur2."""
    return _MURMUR2.hash(key) % partitions


def place_now(topics: Any, topic: str, key: bytes | None, partition: int | None,
              timestamp_ms: int | None) -> tuple[int, int]:
    """Partition and timestamp of a record a shim adds to a transaction: decided at send
    (a keyed record by the ``DefaultPartitioner``), so its metadata can be returned at
    once although embedlog writes the transaction only at commit."""
    if partition is None:
        assert key is not None
        partition = murmur2_partition(key, topics.partitions(topic))
    if timestamp_ms is None:
        timestamp_ms = time.time_ns() // 1_000_000
    return partition, timestamp_ms


def header_size(headers: Iterable[tuple[str, bytes | None]] | None) -> int:
    """kafka-python's ``serialized_header_size`` (-1 without headers)."""
    if not headers:
        return -1
    return sum(len(k.encode("utf-8")) + (len(v) if v is not None else 0) for k, v in headers)


def _varint_size(n: int) -> int:
    """Bytes of Kafka's zigzag varint of ``n >= 0``."""
    v = n << 1
    size = 1
    while v >= 0x80:
        v >>= 7
        size += 1
    return size


def record_size(key: bytes | None, value: bytes | None, headers: Any) -> int:
    """kafka-python's upper bound of a record's size in a v2 batch of one (its
    ``DefaultRecordBatchBuilder.estimate_size_in_bytes``: the batch header, the most a
    record's own overhead takes, and the varint-prefixed key, value and headers), which
    its producer compares with ``max_request_size``."""
    size = 61 + 21
    size += 1 if key is None else _varint_size(len(key)) + len(key)
    size += 1 if value is None else _varint_size(len(value)) + len(value)
    hs = headers or ()
    size += _varint_size(len(hs))
    for k, v in hs:
        n = len(k.encode("utf-8"))
        size += _varint_size(n) + n + (1 if v is None else _varint_size(len(v)) + len(v))
    return size


# -- fork -------------------------------------------------------------------------------------
#: the kafka-python and aiokafka consumers of this process (``drop_at_fork``)
_FETCHERS: weakref.WeakSet[Any] = weakref.WeakSet()


def drop_at_fork(shim: Any) -> None:
    """Have ``shim`` (a consumer with ``_consumer``, the embedlog one, and ``_pending``, the
    records it fetched and has not handed out) drop them in a forked child when it is a
    group member: they are its parent's, and the child's next look raises (the
    membership is the parent's)."""
    _FETCHERS.add(shim)


def _drop_in_child() -> None:
    for shim in list(_FETCHERS):
        consumer = getattr(shim, "_consumer", None)
        if consumer is not None and consumer._membership is not None:
            shim._pending.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_in_child)


# -- errors ----------------------------------------------------------------------------------
_ERROR_NAMES: tuple[tuple[type[el_errors.EmbedlogError], str], ...] = (
    (el_errors.UnknownTopicError, "UnknownTopicOrPartitionError"),
    (el_errors.UnknownPartitionError, "UnknownTopicOrPartitionError"),
    (el_errors.RecordTooLargeError, "MessageSizeTooLargeError"),
    (el_errors.TopicExistsError, "TopicAlreadyExistsError"),
    (el_errors.InvalidTopicError, "InvalidTopicError"),
    (el_errors.IllegalGenerationError, "CommitFailedError"),
    (el_errors.OffsetOutOfRangeError, "OffsetOutOfRangeError"),
    (el_errors.InvalidOffsetError, "OffsetOutOfRangeError"),
    (el_errors.CorruptRecordError, "CorruptRecordError"),
    (el_errors.UnknownGroupError, "GroupIdNotFoundError"),
    (el_errors.GroupError, "NonEmptyGroupError"),
    (el_errors.ConfigError, "InvalidConfigurationError"),
    (el_errors.TimeoutError, "KafkaTimeoutError"),
    (el_errors.ClosedError, "IllegalStateError"),
    (el_errors.NotAssignedError, "IllegalStateError"),
    (el_errors.NotEnoughReplicasError, "NotEnoughReplicasError"),
)


def translate(exc: BaseException, errors: ModuleType, *, aliases: Mapping[str, str] | None = None) -> BaseException:
    """The shim's exception for an embedlog error (others are returned as they are).

    ``errors`` is the shim's errors module; ``aliases`` renames classes it spells
    differently (aiokafka's ``CorruptRecordException``).
    """
    if isinstance(exc, el_errors.SerializationError):
        return TypeError(str(exc))
    if not isinstance(exc, el_errors.EmbedlogError):
        return exc
    name = "KafkaError"
    for cls, target in _ERROR_NAMES:
        if isinstance(exc, cls):
            name = target
            break
    if aliases:
        name = aliases.get(name, name)
    new_cls = getattr(errors, name, None) or errors.KafkaError
    new = new_cls(str(exc))
    new.__cause__ = exc
    return new  # type: ignore[no-any-return]


# -- (de)serializers ---------------------------------------------------------------------------
def serialize(fn: Any, topic: str, headers: list[tuple[str, bytes]] | None, data: Any) -> Any:
    """kafka-python's serializer call: a ``Serializer`` object or a plain callable (called on None too)."""
    if fn is None:
        return data
    method = getattr(fn, "serialize", None)
    if method is not None:
        try:
            return method(topic, headers or [], data)
        except TypeError:  # kafka-python < 2.1 serializers take (topic, data)
            return method(topic, data)
    return fn(data)


def rewind(consumer: Consumer, unreturned: Iterable[Any]) -> None:
    """Move each partition's position back to its first record in ``unreturned`` (polled
    messages a shim did not hand out: a deserializer failed on one of them)."""
    first: dict[TopicPartition, int] = {}
    for m in unreturned:
        first.setdefault(TopicPartition(m.topic, m.partition), m.offset)
    for tp, offset in first.items():
        consumer.seek(tp, offset)


def deserialize(fn: Any, topic: str, headers: list[tuple[str, bytes | None]], data: bytes | None) -> Any:
    """kafka-python's deserializer call (a ``Deserializer`` object or a callable, called on None too)."""
    if fn is None:
        return data
    method = getattr(fn, "deserialize", None)
    if method is not None:
        try:
            return method(topic, headers, data)
        except TypeError:
            return method(topic, data)
    return fn(data)


# -- topics and subscriptions -----------------------------------------------------------------
class Topics:
    """Which topics exist, creating them on first use like a broker with auto-creation."""

    def __init__(self, cluster: registry.Cluster, allow_create: bool = True) -> None:
        self.cluster = cluster
        self.log: Log = cluster.log
        self.allow_create = allow_create
        self.known: set[str] = set()  # topics seen to exist
        self._counts: dict[str, tuple[float, int]] = {}
        self._log_append: dict[str, tuple[float, bool]] = {}

    def ensure(self, topic: str) -> bool:
        """Whether ``topic`` exists (after creating it if allowed)."""
        if topic in self.known:
            return True
        create = None if self.allow_create else False
        if self.cluster.ensure_topic(topic, create=create):
            self.known.add(topic)
            return True
        return False

    def existing(self, partitions: Iterable[Any], errors: Any) -> list[TopicPartition]:
        """``partitions`` as ``TopicPartition``s of topics that exist (created on first
        use, as a broker's metadata request does), else ``errors``'
        ``UnknownTopicOrPartitionError``: what the clients' offset lookups ask first."""
        tps = [as_tp(p) for p in partitions]
        for tp in tps:
            if not self.ensure(tp.topic):
                raise errors.UnknownTopicOrPartitionError(f"topic {tp.topic!r} does not exist")
        return tps

    def forget(self, topic: str) -> None:
        self.known.discard(topic)
        self._counts.pop(topic, None)
        self._log_append.pop(topic, None)

    def partitions(self, topic: str, *, max_age: float = 1.0) -> int:
        """The topic's partition count (cached for ``max_age`` seconds, like client metadata)."""
        now = time.monotonic()
        hit = self._counts.get(topic)
        if hit is not None and now - hit[0] < max_age:
            return hit[1]
        n = len(self.log.describe_topic(topic).partitions)
        self._counts[topic] = (now, n)
        return n

    def log_append_time(self, topic: str, *, max_age: float = 1.0) -> bool:
        """Whether the topic's ``message.timestamp.type`` is ``LogAppendTime`` (cached like
        ``partitions``; ``False`` for a topic that is gone)."""
        now = time.monotonic()
        hit = self._log_append.get(topic)
        if hit is not None and now - hit[0] < max_age:
            return hit[1]
        meta = self.log._store.topic(topic)
        lat = meta is not None and meta.config.log_append_time
        self._log_append[topic] = (now, lat)
        return lat


class Subscription:
    """A subscription to topic names or a pattern, applied to an embedlog ``Consumer`` as the
    topics come to exist (a real client keeps waiting for a topic that does not exist yet)."""

    RECHECK = 0.5  # seconds between looks for subscribed topics that do not exist yet

    def __init__(self, consumer: Consumer, topics: Topics) -> None:
        self.consumer = consumer
        self.topics = topics
        self.names: list[str] = []
        self.pattern: re.Pattern[str] | None = None
        self.active: list[str] = []
        self._next_check = 0.0

    @property
    def subscribed(self) -> bool:
        return bool(self.names) or self.pattern is not None

    def set(self, names: Iterable[str] = (), pattern: str | re.Pattern[str] | None = None) -> None:
        self.names = list(dict.fromkeys(names))
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.active = []
        self._next_check = 0.0
        self.refresh(force=True)

    def clear(self) -> None:
        self.names = []
        self.pattern = None
        self.active = []

    def _wanted(self) -> list[str]:
        if self.pattern is not None:
            pat = self.pattern
            return [t for t in self.topics.log.topics() if pat.match(t)]  # (anchored at the start only, as theirs)
        return [t for t in self.names if self.topics.ensure(t)]

    def refresh(self, *, force: bool = False) -> None:
        """Subscribe the consumer to the subscribed topics that exist now (if that changed)."""
        if not self.subscribed:
            return
        now = time.monotonic()
        if not force and now < self._next_check:
            return
        self._next_check = now + self.RECHECK
        if not force and self.pattern is None and len(self.active) == len(self.names):
            return  # every named topic is there (deleted topics are not followed)
        wanted = self._wanted()
        if wanted == self.active and not force:
            return
        self.active = wanted
        if wanted:
            self.consumer.subscribe(wanted)
        elif self.consumer.subscription():
            self.consumer.unsubscribe()


def as_tp(obj: Any) -> TopicPartition:
    """A ``TopicPartition`` from ours, the real library's, or any (topic, partition) pair."""
    if isinstance(obj, TopicPartition):
        return obj
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], int):
        return TopicPartition(obj[0], obj[1])
    raise TypeError("partition must be a TopicPartition namedtuple")



def assignment_strategy(strategies: object) -> str:
    """embedlog's assignor for kafka-python/aiokafka assignor classes (the first one wins)."""
    items = strategies if isinstance(strategies, (list, tuple)) else (strategies,)
    for s in items:
        name = str(s if isinstance(s, str) else getattr(s, "name", None) or getattr(s, "__name__", "")).lower()
        if "roundrobin" in name:
            return "roundrobin"
        if "sticky" in name:  # (kafka-python's and aiokafka's StickyPartitionAssignor is eager)
            return "cooperative-sticky" if "cooperative" in name else "sticky"
        if "range" in name:
            return "range"
    return "range"


# -- admin values ------------------------------------------------------------------------------
class NewTopic:
    """The fields of both shims' ``NewTopic`` (each derives its own class from this one):
    ``num_partitions``/``replication_factor`` -1 take the cluster's default."""

    def __init__(self, name: str, num_partitions: int = -1, replication_factor: int = -1,
                 replica_assignments: Mapping[int, list[int]] | None = None,
                 topic_configs: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.num_partitions = num_partitions
        self.replication_factor = replication_factor
        self.replica_assignments = dict(replica_assignments or {})
        self.topic_configs = dict(topic_configs or {})


class NewPartitions:
    """Grow a topic to ``total_count`` partitions (both shims' ``NewPartitions`` derive from this one)."""

    def __init__(self, total_count: int, new_assignments: list[list[int]] | None = None) -> None:
        self.total_count = total_count
        self.new_assignments = new_assignments


def run_to_end(result: Any) -> None:
    """Finish a rebalance listener's coroutine (an ``async`` hook) on a private loop in a
    helper thread, the calling thread waiting; nothing for a plain hook's result.  (The
    caller may itself run inside an event loop, where ``asyncio.run`` is refused.)"""
    if not inspect.isawaitable(result):
        return
    import asyncio  # noqa: PLC0415 - only for async hooks: `import embedlog` stays without asyncio

    errors: list[BaseException] = []

    async def wrapper(aw: Awaitable[Any]) -> None:
        await aw

    def run() -> None:
        try:
            asyncio.run(wrapper(result))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            errors.append(exc)

    t = threading.Thread(target=run, name="embedlog-rebalance-listener", daemon=True)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def close_each(*objs: Any) -> None:
    """What kafka-python's ``close()`` does with its (de)serializers: call ``close()`` on
    those that have one."""
    for obj in objs:
        with contextlib.suppress(AttributeError):
            obj.close()
