"""kafka-python's ``kafka.errors``: the exceptions the shim raises, with Kafka's error codes.

Each class carries ``errno`` (Kafka's protocol error code, for broker errors) and
``retriable`` as kafka-python's do.  When kafka-python itself is installed, each class
also derives from the real class of the same name, so application code written
against the real library (``except kafka.errors.KafkaTimeoutError``) catches what the
shim raises (see ``embedlog.compat._error_classes``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .._error_classes import ErrorFactory

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
    "InvalidProducerEpochError",
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
    "ProducerFencedError",
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

_make = ErrorFactory(__name__, "kafka.errors")


class KafkaError(*_make.real("KafkaError", Exception)):  # type: ignore[misc]
    """Base of every kafka-python error."""

    retriable: ClassVar[bool] = False
    invalid_metadata: ClassVar[bool] = False
    errno: ClassVar[int | None] = None

    def __str__(self) -> str:
        if not self.args:
            return type(self).__name__
        return f"{type(self).__name__}: {Exception.__str__(self)}"


class RetriableError(KafkaError, *_make.real("RetriableError")):  # type: ignore[misc]
    retriable = True


class InvalidMetadataError(RetriableError, *_make.real("InvalidMetadataError")):  # type: ignore[misc]
    invalid_metadata = True


class CommitFailedError(KafkaError, *_make.real("CommitFailedError")):  # type: ignore[misc]
    def __init__(self, *args: Any) -> None:
        if not args:
            args = ("Commit cannot be completed since the group has already rebalanced and assigned "
                    "the partitions to another member.",)
        super().__init__(*args)


class BrokerResponseError(KafkaError, *_make.real("BrokerResponseError")):  # type: ignore[misc]
    """An error a Kafka broker would have answered with (``errno`` is its code)."""

    errno: ClassVar[int | None] = None
    message: ClassVar[str | None] = None
    description: ClassVar[str | None] = None

    def __str__(self) -> str:
        return f"[Error {self.errno}] {KafkaError.__str__(self)}"


IllegalStateError = _make("IllegalStateError", KafkaError)
IllegalArgumentError = _make("IllegalArgumentError", KafkaError)
KafkaConfigurationError = _make("KafkaConfigurationError", KafkaError)
KafkaTimeoutError = _make("KafkaTimeoutError", RetriableError)
NoOffsetForPartitionError = _make("NoOffsetForPartitionError", KafkaError)
TransactionAbortedError = _make("TransactionAbortedError", KafkaError,
                                message="Failing batch since transaction was aborted")

_broker = _make.broker_errors(BrokerResponseError)
UnknownError = _broker("UnknownError", -1, "UNKNOWN")
OffsetOutOfRangeError = _broker("OffsetOutOfRangeError", 1, "OFFSET_OUT_OF_RANGE")
CorruptRecordError = _broker("CorruptRecordError", 2, "CORRUPT_MESSAGE")
UnknownTopicOrPartitionError = _broker("UnknownTopicOrPartitionError", 3, "UNKNOWN_TOPIC_OR_PARTITION",
                                       InvalidMetadataError)
RequestTimedOutError = _broker("RequestTimedOutError", 7, "REQUEST_TIMED_OUT", RetriableError)
MessageSizeTooLargeError = _broker("MessageSizeTooLargeError", 10, "MESSAGE_SIZE_TOO_LARGE")
InvalidTopicError = _broker("InvalidTopicError", 17, "INVALID_TOPIC")
RecordListTooLargeError = _broker("RecordListTooLargeError", 18, "RECORD_LIST_TOO_LARGE")
NotEnoughReplicasError = _broker("NotEnoughReplicasError", 19, "NOT_ENOUGH_REPLICAS", RetriableError)
IllegalGenerationError = _broker("IllegalGenerationError", 22, "ILLEGAL_GENERATION")
UnknownMemberIdError = _broker("UnknownMemberIdError", 25, "UNKNOWN_MEMBER_ID")
RebalanceInProgressError = _broker("RebalanceInProgressError", 27, "REBALANCE_IN_PROGRESS")
UnsupportedVersionError = _broker("UnsupportedVersionError", 35, "UNSUPPORTED_VERSION")
TopicAlreadyExistsError = _broker("TopicAlreadyExistsError", 36, "TOPIC_ALREADY_EXISTS")
InvalidPartitionsError = _broker("InvalidPartitionsError", 37, "INVALID_PARTITIONS")
InvalidReplicationFactorError = _broker("InvalidReplicationFactorError", 38, "INVALID_REPLICATION_FACTOR")
InvalidConfigurationError = _broker("InvalidConfigurationError", 40, "INVALID_CONFIG")
InvalidRequestError = _broker("InvalidRequestError", 42, "INVALID_REQUEST")
InvalidProducerEpochError = _broker("InvalidProducerEpochError", 47, "INVALID_PRODUCER_EPOCH")
InvalidTxnStateError = _broker("InvalidTxnStateError", 48, "INVALID_TXN_STATE")
NonEmptyGroupError = _broker("NonEmptyGroupError", 68, "NON_EMPTY_GROUP")
GroupIdNotFoundError = _broker("GroupIdNotFoundError", 69, "GROUP_ID_NOT_FOUND")
ProducerFencedError = _broker("ProducerFencedError", 90, "PRODUCER_FENCED")

#: Kafka error code -> class, like ``kafka.errors.kafka_errors``
kafka_errors: dict[int, type[BrokerResponseError]] = _broker.by_code


def for_code(error_code: int) -> type[BrokerResponseError]:
    """The error class for a Kafka error code (``UnknownError`` if not known here)."""
    return kafka_errors.get(error_code, UnknownError)
