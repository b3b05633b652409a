"""Values that cross the public API.

``TopicPartition`` and ``Message`` are ``NamedTuple``s rather than attrs classes on
purpose: they are created once per record on the hot path, and a tuple can be built
from C (``tuple.__new__`` mapped over ``zip``) at a fraction of the cost of an attrs
``__init__``; they hash and compare in C as dictionary keys.  Everything else here is
an ``attrs`` frozen class.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs

from .errors import ConfigError

__all__ = [
    "Header",
    "Message",
    "OffsetAndTimestamp",
    "PartitionDescription",
    "RecordMetadata",
    "TopicDescription",
    "TopicPartition",
]

Header = tuple[str, bytes | None]


class _NoHeaders(list):  # type: ignore[type-arg]
    """The shared, read-only empty header list of consumed records that have none.

    One shared instance instead of a new list per record (a measurable share of
    consume time); it equals ``[]`` and refuses mutation.
    """

    __slots__ = ()

    def _readonly(self, *args: object, **kwargs: object) -> None:
        raise TypeError("the headers of a consumed message are read-only; copy them with list(msg.headers)")

    append = extend = insert = remove = pop = clear = sort = reverse = _readonly
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (list, ())


NO_HEADERS: list[Header] = _NoHeaders()


class TopicPartition(NamedTuple):
    """A topic name and a partition number."""

    topic: str
    partition: int


def topic_partition(obj: object) -> TopicPartition:
    """``obj`` as a ``TopicPartition``: one already, or a ``(topic, partition)`` pair;
    ``ConfigError`` for anything else."""
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], int) \
            and not isinstance(obj[1], bool):
        return obj if obj.__class__ is TopicPartition else TopicPartition(*obj)
    raise ConfigError(f"expected a TopicPartition(topic, partition), got {obj!r}")


class Message(NamedTuple):
    """One consumed record.

    ``timestamp`` is milliseconds since the epoch; ``timestamp_type`` is
    ``"CreateTime"`` or ``"LogAppendTime"``: the topic's ``message.timestamp.type``
    when the record was written (its batch keeps it).  ``key`` and ``value`` are
    ``bytes`` (``value`` is ``None`` for a tombstone), or what the consumer's
    ``key_deserializer`` / ``value_deserializer`` returned: typed ``Any`` for that.
    """

    topic: str
    partition: int
    offset: int
    key: Any
    value: Any
    headers: list[Header]
    timestamp: int
    timestamp_type: str = "CreateTime"
    leader_epoch: int = 0

    @property
    def topic_partition(self) -> TopicPartition:
        """The record's ``TopicPartition``."""
        return TopicPartition(self.topic, self.partition)


@attrs.frozen
class RecordMetadata:
    """Where a produced record was written."""

    topic: str
    partition: int
    offset: int
    timestamp: int


@attrs.frozen
class OffsetAndTimestamp:
    """An answer of ``offsets_for_times``: the offset and its record's timestamp."""

    offset: int
    timestamp: int


@attrs.frozen
class PartitionDescription:
    """A snapshot of one partition: its offsets and size on disk.  ``end_offset`` is the
    log end (the offset the next record gets); ``high_watermark`` is where what
    consumers can read ends — the same offset unless a replicating leader has records
    its in-sync followers do not hold yet (-1: not known)."""

    partition: int
    start_offset: int
    end_offset: int
    bytes: int
    batches: int
    leader_epoch: int
    high_watermark: int = -1


@attrs.frozen
class TopicDescription:
    """A snapshot of one topic, as ``Log.describe_topic`` returns it."""

    name: str
    topic_id: int
    partitions: tuple[PartitionDescription, ...]
    config: dict[str, object]

    @property
    def bytes(self) -> int:
        """Bytes on disk, summed over partitions."""
        return sum(p.bytes for p in self.partitions)

    @property
    def records(self) -> int:
        """``end_offset - start_offset`` summed over partitions (compaction may leave gaps)."""
        return sum(p.end_offset - p.start_offset for p in self.partitions)
