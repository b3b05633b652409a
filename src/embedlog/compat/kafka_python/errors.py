"""kafka-python's ``kafka.errors``: the exceptions the shim raises, with Kafka's error codes.

Each class carries ``errno`` (Kafka's protocol error code, for broker errors) and
``retriable`` as kafka-python's do.  When kafka-python itself is installed, each class
also derives from the real class of the same name, so application code written
against the real library (``except kafka.errors.KafkaTimeoutError``) catches what the
shim raises.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any, ClassVar

_real_errors: ModuleType | None
try:  # the real classes, only so that ``except kafka.errors.X`` in applications catches ours
    with warnings.catch_warnings():  # the library's own deprecation noise, not the user's
        warnings.simplefilter("ignore", DeprecationWarning)
        _real_errors = importlib.import_module("kafka.errors")
except ImportError:  # pragma: no cover - kafka-python is optional
    _real_errors = None

__all__ = [
    "BrokerResponseError",
    "CommitFailedError",
    "CorruptRecordError",
    "GroupIdNotFoundError",
    "IllegalArgumentError",
    "IllegalGenerationError",
    "IllegalStateError",
    "InvalidConfigurationError",
    "InvalidMetadataError",
    "InvalidPartitionsError",
    "InvalidReplicationFactorError",
    "InvalidRequestError",
    "InvalidTopicError",
    "InvalidTxnStateError",
    "KafkaConfigurationError",
    "KafkaError",
    "KafkaTimeoutError",
    "MessageSizeTooLargeError",
    "NoOffsetForPartitionError",
    "NonEmptyGroupError",
    "NotEnoughReplicasError",
    "OffsetOutOfRangeError",
    "RebalanceInProgressError",
    "RecordListTooLargeError",
    "RequestTimedOutError",
    "RetriableError",
    "TopicAlreadyExistsError",
    "TransactionAbortedError",
    "UnknownError",
    "UnknownMemberIdError",
    "UnknownTopicOrPartitionError",
    "UnsupportedVersionError",
    "for_code",
    "kafka_errors",
]


def _real(name: str) -> tuple[type, ...]:
    cls = getattr(_real_errors, name, None)
    return (cls,) if isinstance(cls, type) and issubclass(cls, BaseException) else ()


class KafkaError(*(_real("KafkaError") or (Exception,))):  # type: ignore[misc]
    """Base of every kafka-python error."""

    retriable: ClassVar[bool] = False
    invalid_metadata: ClassVar[bool] = False
    errno: ClassVar[int | None] = None

    def __str__(self) -> str:
        if not self.args:
            return type(self).__name__
        return f"{type(self).__name__}: {Exception.__str__(self)}"


class RetriableError(KafkaError, *_real("RetriableError")):  # type: ignore[misc]
    retriable = True


class InvalidMetadataError(RetriableError, *_real("InvalidMetadataError")):  # type: ignore[misc]
    invalid_metadata = True


class IllegalStateError(KafkaError, *_real("IllegalStateError")):  # type: ignore[misc]
    pass


class IllegalArgumentError(KafkaError, *_real("IllegalArgumentError")):  # type: ignore[misc]
    pass


class KafkaConfigurationError(KafkaError, *_real("KafkaConfigurationError")):  # type: ignore[misc]
    pass


class KafkaTimeoutError(RetriableError, *_real("KafkaTimeoutError")):  # type: ignore[misc]
    pass


class NoOffsetForPartitionError(KafkaError, *_real("NoOffsetForPartitionError")):  # type: ignore[misc]
    pass


class TransactionAbortedError(KafkaError, *_real("TransactionAbortedError")):  # type: ignore[misc]
    pass


class CommitFailedError(KafkaError, *_real("CommitFailedError")):  # type: ignore[misc]
    def __init__(self, *args: Any) -> None:
        if not args:
            args = ("Commit cannot be completed since the group has already rebalanced and assigned "
                    "the partitions to another member.",)
        super().__init__(*args)


class BrokerResponseError(KafkaError, *_real("BrokerResponseError")):  # type: ignore[misc]
    """An error a Kafka broker would have answered with (``errno`` is its code)."""

    errno: ClassVar[int | None] = None
    message: ClassVar[str | None] = None
    description: ClassVar[str | None] = None

    def __str__(self) -> str:
        return f"[Error {self.errno}] {KafkaError.__str__(self)}"


class UnknownError(BrokerResponseError, *_real("UnknownError")):  # type: ignore[misc]
    errno = -1
    message = "UNKNOWN"


class OffsetOutOfRangeError(BrokerResponseError, *_real("OffsetOutOfRangeError")):  # type: ignore[misc]
    errno = 1
    message = "OFFSET_OUT_OF_RANGE"


class CorruptRecordError(BrokerResponseError, *_real("CorruptRecordError")):  # type: ignore[misc]
    errno = 2
    message = "CORRUPT_MESSAGE"


_UTP = _real("UnknownTopicOrPartitionError")


class UnknownTopicOrPartitionError(InvalidMetadataError, BrokerResponseError, *_UTP):  # type: ignore[misc]
    errno = 3
    message = "UNKNOWN_TOPIC_OR_PARTITION"


class RequestTimedOutError(RetriableError, BrokerResponseError, *_real("RequestTimedOutError")):  # type: ignore[misc]
    errno = 7
    message = "REQUEST_TIMED_OUT"


class MessageSizeTooLargeError(BrokerResponseError, *_real("MessageSizeTooLargeError")):  # type: ignore[misc]
    errno = 10
    message = "MESSAGE_SIZE_TOO_LARGE"


class InvalidTopicError(BrokerResponseError, *_real("InvalidTopicError")):  # type: ignore[misc]
    errno = 17
    message = "INVALID_TOPIC"


class RecordListTooLargeError(BrokerResponseError, *_real("RecordListTooLargeError")):  # type: ignore[misc]
    errno = 18
    message = "RECORD_LIST_TOO_LARGE"


class NotEnoughReplicasError(RetriableError, BrokerResponseError, *_real("NotEnoughReplicasError")):  # type: ignore[misc]
    errno = 19
    message = "NOT_ENOUGH_REPLICAS"


class IllegalGenerationError(BrokerResponseError, *_real("IllegalGenerationError")):  # type: ignore[misc]
    errno = 22
    message = "ILLEGAL_GENERATION"


class UnknownMemberIdError(BrokerResponseError, *_real("UnknownMemberIdError")):  # type: ignore[misc]
    errno = 25
    message = "UNKNOWN_MEMBER_ID"


class RebalanceInProgressError(BrokerResponseError, *_real("RebalanceInProgressError")):  # type: ignore[misc]
    errno = 27
    message = "REBALANCE_IN_PROGRESS"


class UnsupportedVersionError(BrokerResponseError, *_real("UnsupportedVersionError")):  # type: ignore[misc]
    errno = 35
    message = "UNSUPPORTED_VERSION"


class TopicAlreadyExistsError(BrokerResponseError, *_real("TopicAlreadyExistsError")):  # type: ignore[misc]
    errno = 36
    message = "TOPIC_ALREADY_EXISTS"


class InvalidPartitionsError(BrokerResponseError, *_real("InvalidPartitionsError")):  # type: ignore[misc]
    errno = 37
    message = "INVALID_PARTITIONS"


class InvalidReplicationFactorError(BrokerResponseError, *_real("InvalidReplicationFactorError")):  # type: ignore[misc]
    errno = 38
    message = "INVALID_REPLICATION_FACTOR"


class InvalidConfigurationError(BrokerResponseError, *_real("InvalidConfigurationError")):  # type: ignore[misc]
    errno = 40
    message = "INVALID_CONFIG"


class InvalidRequestError(BrokerResponseError, *_real("InvalidRequestError")):  # type: ignore[misc]
    errno = 42
    message = "INVALID_REQUEST"


class InvalidTxnStateError(BrokerResponseError, *_real("InvalidTxnStateError")):  # type: ignore[misc]
    errno = 48
    message = "INVALID_TXN_STATE"


class NonEmptyGroupError(BrokerResponseError, *_real("NonEmptyGroupError")):  # type: ignore[misc]
    errno = 68
    message = "NON_EMPTY_GROUP"


class GroupIdNotFoundError(BrokerResponseError, *_real("GroupIdNotFoundError")):  # type: ignore[misc]
    errno = 69
    message = "GROUP_ID_NOT_FOUND"


#: Kafka error code -> class, like ``kafka.errors.kafka_errors``
kafka_errors: dict[int, type[BrokerResponseError]] = {
    cls.errno: cls for cls in (
        UnknownError, OffsetOutOfRangeError, CorruptRecordError, UnknownTopicOrPartitionError,
        RequestTimedOutError, MessageSizeTooLargeError, InvalidTopicError, RecordListTooLargeError,
        NotEnoughReplicasError, IllegalGenerationError, UnknownMemberIdError, RebalanceInProgressError,
        UnsupportedVersionError, TopicAlreadyExistsError, InvalidPartitionsError, InvalidReplicationFactorError,
        InvalidConfigurationError, InvalidRequestError, InvalidTxnStateError, NonEmptyGroupError,
        GroupIdNotFoundError)
    if cls.errno is not None
}


def for_code(error_code: int) -> type[BrokerResponseError]:
    """The error class for a Kafka error code (``UnknownError`` if not known here)."""
    return kafka_errors.get(error_code, UnknownError)
