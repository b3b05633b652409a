"""aiokafka's ``aiokafka.errors``: the exceptions the shim raises, with Kafka's error codes.

When aiokafka itself is installed, each class also derives from the real class of the
same name, so application code written against aiokafka (``except
aiokafka.errors.KafkaTimeoutError``) catches what the shim raises.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any, ClassVar

_real_errors: ModuleType | None
try:  # the real classes, only so that ``except aiokafka.errors.X`` in applications catches ours
    with warnings.catch_warnings():  # the library's own deprecation noise, not the user's
        warnings.simplefilter("ignore", DeprecationWarning)
        _real_errors = importlib.import_module("aiokafka.errors")
except ImportError:  # pragma: no cover - aiokafka is optional
    _real_errors = None

__all__ = [
    "BrokerResponseError",
    "CommitFailedError",
    "ConsumerStoppedError",
    "CorruptRecordException",
    "GroupIdNotFound",
    "IllegalGenerationError",
    "IllegalOperation",
    "IllegalStateError",
    "InvalidConfigurationError",
    "InvalidPartitionsError",
    "InvalidRequestError",
    "InvalidTopicError",
    "KafkaConfigurationError",
    "KafkaError",
    "KafkaTimeoutError",
    "MessageSizeTooLargeError",
    "NoOffsetForPartitionError",
    "NonEmptyGroup",
    "NotEnoughReplicasError",
    "OffsetOutOfRangeError",
    "ProducerClosed",
    "RecordTooLargeError",
    "TopicAlreadyExistsError",
    "UnknownError",
    "UnknownTopicOrPartitionError",
    "UnsupportedVersionError",
    "for_code",
]


def _real(name: str) -> tuple[type, ...]:
    cls = getattr(_real_errors, name, None)
    return (cls,) if isinstance(cls, type) and issubclass(cls, BaseException) else ()


class KafkaError(*(_real("KafkaError") or (RuntimeError,))):  # type: ignore[misc]
    """Base of aiokafka's Kafka errors."""

    retriable: ClassVar[bool] = False
    invalid_metadata: ClassVar[bool] = False

    def __str__(self) -> str:
        if not self.args:
            return type(self).__name__
        return f"{type(self).__name__}: {Exception.__str__(self)}"


class IllegalStateError(KafkaError, *_real("IllegalStateError")):  # type: ignore[misc]
    pass


class KafkaConfigurationError(KafkaError, *_real("KafkaConfigurationError")):  # type: ignore[misc]
    pass


class KafkaTimeoutError(KafkaError, *_real("KafkaTimeoutError")):  # type: ignore[misc]
    pass


class CommitFailedError(KafkaError, *_real("CommitFailedError")):  # type: ignore[misc]
    def __init__(self, *args: Any) -> None:
        super().__init__("Commit cannot be completed since the group has already rebalanced and assigned the "
                         "partitions to another member.", *args)


class NoOffsetForPartitionError(KafkaError, *_real("NoOffsetForPartitionError")):  # type: ignore[misc]
    pass


class RecordTooLargeError(KafkaError, *_real("RecordTooLargeError")):  # type: ignore[misc]
    pass


class ProducerClosed(KafkaError, *_real("ProducerClosed")):  # type: ignore[misc]
    pass


class ConsumerStoppedError(*(_real("ConsumerStoppedError") or (Exception,))):  # type: ignore[misc]
    """Raised by a stopped consumer's ``get*`` methods."""


class IllegalOperation(*(_real("IllegalOperation") or (Exception,))):  # type: ignore[misc]
    """An operation the configuration does not allow (``commit`` without ``group_id``)."""


class BrokerResponseError(KafkaError, *_real("BrokerResponseError")):  # type: ignore[misc]
    """An error a Kafka broker would have answered with (``errno`` is its code)."""

    errno: ClassVar[int] = -1
    message: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __str__(self) -> str:
        return f"[Error {self.errno}] {KafkaError.__str__(self)}"


class UnknownError(BrokerResponseError, *_real("UnknownError")):  # type: ignore[misc]
    errno = -1
    message = "UNKNOWN"


class OffsetOutOfRangeError(BrokerResponseError, *_real("OffsetOutOfRangeError")):  # type: ignore[misc]
    errno = 1
    message = "OFFSET_OUT_OF_RANGE"


class CorruptRecordException(BrokerResponseError, *_real("CorruptRecordException")):  # type: ignore[misc]
    errno = 2
    message = "CORRUPT_MESSAGE"


class UnknownTopicOrPartitionError(BrokerResponseError, *_real("UnknownTopicOrPartitionError")):  # type: ignore[misc]
    errno = 3
    message = "UNKNOWN_TOPIC_OR_PARTITION"
    retriable = True
    invalid_metadata = True


class MessageSizeTooLargeError(BrokerResponseError, *_real("MessageSizeTooLargeError")):  # type: ignore[misc]
    errno = 10
    message = "MESSAGE_SIZE_TOO_LARGE"


class InvalidTopicError(BrokerResponseError, *_real("InvalidTopicError")):  # type: ignore[misc]
    errno = 17
    message = "INVALID_TOPIC"


class NotEnoughReplicasError(BrokerResponseError, *_real("NotEnoughReplicasError")):  # type: ignore[misc]
    errno = 19
    message = "NOT_ENOUGH_REPLICAS"
    retriable = True


class IllegalGenerationError(BrokerResponseError, *_real("IllegalGenerationError")):  # type: ignore[misc]
    errno = 22
    message = "ILLEGAL_GENERATION"


class UnsupportedVersionError(BrokerResponseError, *_real("UnsupportedVersionError")):  # type: ignore[misc]
    errno = 35
    message = "UNSUPPORTED_VERSION"


class TopicAlreadyExistsError(BrokerResponseError, *_real("TopicAlreadyExistsError")):  # type: ignore[misc]
    errno = 36
    message = "TOPIC_ALREADY_EXISTS"


class InvalidPartitionsError(BrokerResponseError, *_real("InvalidPartitionsError")):  # type: ignore[misc]
    errno = 37
    message = "INVALID_PARTITIONS"


class InvalidConfigurationError(BrokerResponseError, *_real("InvalidConfigurationError")):  # type: ignore[misc]
    errno = 40
    message = "INVALID_CONFIG"


class InvalidRequestError(BrokerResponseError, *_real("InvalidRequestError")):  # type: ignore[misc]
    errno = 42
    message = "INVALID_REQUEST"


class NonEmptyGroup(BrokerResponseError, *_real("NonEmptyGroup")):  # type: ignore[misc]
    errno = 68
    message = "NON_EMPTY_GROUP"


class GroupIdNotFound(BrokerResponseError, *_real("GroupIdNotFound")):  # type: ignore[misc]
    errno = 69
    message = "GROUP_ID_NOT_FOUND"


_BY_CODE: dict[int, type[BrokerResponseError]] = {
    cls.errno: cls for cls in (
        UnknownError, OffsetOutOfRangeError, CorruptRecordException, UnknownTopicOrPartitionError,
        MessageSizeTooLargeError, InvalidTopicError, NotEnoughReplicasError, IllegalGenerationError,
        UnsupportedVersionError, TopicAlreadyExistsError, InvalidPartitionsError, InvalidConfigurationError,
        InvalidRequestError, NonEmptyGroup, GroupIdNotFound)
}

#: names the shared translation table uses that aiokafka spells differently
ALIASES = {"CorruptRecordError": "CorruptRecordException", "GroupIdNotFoundError": "GroupIdNotFound",
           "NonEmptyGroupError": "NonEmptyGroup"}


def for_code(error_code: int) -> type[BrokerResponseError]:
    """The error class for a Kafka error code (``UnknownError`` if not known here)."""
    return _BY_CODE.get(error_code, UnknownError)
