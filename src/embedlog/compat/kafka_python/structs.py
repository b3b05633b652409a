"""kafka-python's value types (``kafka.structs`` and friends), field for field.

``TopicPartition`` is embedlog's own (the same ``NamedTuple(topic, partition)``), so
the real library's ``TopicPartition`` — equal as a tuple, with the same hash — works
as a key in every dict the shim takes or returns.  The field lists follow
kafka-python 3.0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ...model import TopicPartition
from .._library import library_class

__all__ = [
    "ConsumerGroupMetadata",
    "ConsumerRecord",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "RecordMetadata",
    "TopicPartition",
]


class OffsetAndMetadata(NamedTuple):
    """An offset to commit (the *next* offset to read), with optional metadata."""

    offset: int | None = None
    metadata: str = ""
    leader_epoch: int = -1


class OffsetAndTimestamp(NamedTuple):
    """An answer of ``offsets_for_times``."""

    offset: int
    timestamp: int
    leader_epoch: int = -1


class ConsumerRecord(NamedTuple):
    """One consumed record, as kafka-python's ``ConsumerRecord``.

    ``timestamp_type`` is 0 (CreateTime) or 1 (LogAppendTime); sizes are -1 for a
    null key, value or no headers.
    """

    topic: str
    partition: int
    leader_epoch: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: Any
    value: Any
    headers: list[tuple[str, bytes | None]]
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    serialized_header_size: int


class RecordMetadata(NamedTuple):
    """Where a sent record was written (the value of ``send(...).get()``)."""

    topic: str
    partition: int
    topic_partition: TopicPartition
    offset: int
    timestamp: int
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    serialized_header_size: int


class ConsumerGroupMetadata(NamedTuple):
    """A consumer's group identity (``KafkaConsumer.group_metadata()``)."""

    group_id: str | None
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None
    state: str = "UNJOINED"


class _MemberMetadata(ConsumerGroupMetadata):
    """``KafkaConsumer.group_metadata()`` of a joined member: a ``ConsumerGroupMetadata``
    that also carries embedlog's ``GroupMetadata`` of the moment, by which a transaction
    fences the offsets sent with it (``send_offsets_to_transaction``)."""

    _core: Any = None

    def __repr__(self) -> str:
        return ConsumerGroupMetadata(*self).__repr__()

    def __copy__(self) -> _MemberMetadata:
        return self  # (a value: a copy fences as the original)

    def __deepcopy__(self, memo: dict[int, Any]) -> _MemberMetadata:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConsumerGroupMetadata, tuple(self))  # (pickled: the plain fields, fenced by membership only)


if not TYPE_CHECKING:  # kafka-python's own classes where it is installed: isinstance() holds
    ConsumerRecord = library_class("kafka.consumer.fetcher", "ConsumerRecord", ConsumerRecord)
    RecordMetadata = library_class("kafka.producer.future", "RecordMetadata", RecordMetadata)
