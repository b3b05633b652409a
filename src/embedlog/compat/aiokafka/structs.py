"""aiokafka's value types (``aiokafka.structs``), field for field (aiokafka 0.10 to 0.14).

``TopicPartition`` is embedlog's own (the same ``NamedTuple(topic, partition)``), so
the real library's — equal as a tuple, with the same hash — works in every dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from ...model import TopicPartition
from .._library import library_class

__all__ = ["ConsumerRecord", "OffsetAndMetadata", "OffsetAndTimestamp", "RecordMetadata", "TopicPartition"]

KT = TypeVar("KT")
VT = TypeVar("VT")


class OffsetAndMetadata(NamedTuple):
    """An offset to commit (the *next* offset to read) and its metadata string."""

    offset: int
    metadata: str


class OffsetAndTimestamp(NamedTuple):
    """An answer of ``offsets_for_times``."""

    offset: int
    timestamp: int | None


class RecordMetadata(NamedTuple):
    """Where a sent record was written (the result of ``send``'s future)."""

    topic: str
    partition: int
    topic_partition: TopicPartition
    offset: int
    timestamp: int | None
    timestamp_type: int
    log_start_offset: int | None


@dataclass
class ConsumerRecord(Generic[KT, VT]):
    """One consumed record (``timestamp_type`` 0 CreateTime, 1 LogAppendTime)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: KT | None
    value: VT | None
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    headers: Sequence[tuple[str, bytes]]


if not TYPE_CHECKING:  # aiokafka's own classes where it is installed: isinstance() holds
    ConsumerRecord = library_class("aiokafka.structs", "ConsumerRecord", ConsumerRecord)
    RecordMetadata = library_class("aiokafka.structs", "RecordMetadata", RecordMetadata)
