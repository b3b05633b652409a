"""aiokafka's ``aiokafka.errors``: the exceptions the shim raises, with Kafka's error codes.

When aiokafka itself is installed, each class also derives from the real class of the
same name, so application code written against aiokafka (``except
aiokafka.errors.KafkaTimeoutError``) catches what the shim raises (see
``embedlog.compat._error_classes``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .._error_classes import ErrorFactory

__all__ = [
    "BrokerResponseError",
    "CommitFailedError",
    "ConsumerStoppedError",
    "CorruptRecordException",
    "GroupIdNotFound",
    "IllegalArgumentError",
    "IllegalGenerationError",
    "IllegalOperation",
    "IllegalStateError",
    "InvalidConfigurationError",
    "InvalidPartitionsError",
    "InvalidProducerEpoch",
    "InvalidReplicationFactorError",
    "InvalidRequestError",
    "InvalidTopicError",
    "InvalidTxnState",
    "KafkaConfigurationError",
    "KafkaError",
    "KafkaTimeoutError",
    "MessageSizeTooLargeError",
    "NoOffsetForPartitionError",
    "NonEmptyGroup",
    "NotEnoughReplicasError",
    "OffsetOutOfRangeError",
    "ProducerClosed",
    "ProducerFenced",
    "RecordTooLargeError",
    "TopicAlreadyExistsError",
    "UnknownError",
    "UnknownMemberIdError",
    "UnknownTopicOrPartitionError",
    "UnsupportedVersionError",
    "for_code",
]

_make = ErrorFactory(__name__, "aiokafka.errors")


class KafkaError(*_make.real("KafkaError", RuntimeError)):  # type: ignore[misc]
    """Base of aiokafka's Kafka errors."""

    retriable: ClassVar[bool] = False
    invalid_metadata: ClassVar[bool] = False

    def __str__(self) -> str:
        if not self.args:
            return type(self).__name__
        return f"{type(self).__name__}: {Exception.__str__(self)}"


class CommitFailedError(KafkaError, *_make.real("CommitFailedError")):  # type: ignore[misc]
    def __init__(self, *args: Any) -> None:
        super().__init__("Commit cannot be completed since the group has already rebalanced and assigned the "
                         "partitions to another member.", *args)


class ProducerFenced(KafkaError, *_make.real("ProducerFenced")):  # type: ignore[misc]
    """Another producer with the same transactional id was started."""

    def __init__(self, msg: str = "There is a newer producer using the same transactional_id or transaction "
                                  "timeout occurred (check that processing time is below "
                                  "transaction_timeout_ms)") -> None:
        super().__init__(msg)


class BrokerResponseError(KafkaError, *_make.real("BrokerResponseError")):  # type: ignore[misc]
    """An error a Kafka broker would have answered with (``errno`` is its code)."""

    errno: ClassVar[int]  # (set by each subclass, as in aiokafka)
    message: ClassVar[str]
    description: ClassVar[str] = ""

    def __str__(self) -> str:
        return f"[Error {self.errno}] {KafkaError.__str__(self)}"


IllegalStateError = _make("IllegalStateError", KafkaError)
IllegalArgumentError = _make("IllegalArgumentError", KafkaError)
KafkaConfigurationError = _make("KafkaConfigurationError", KafkaError)
KafkaTimeoutError = _make("KafkaTimeoutError", KafkaError)
NoOffsetForPartitionError = _make("NoOffsetForPartitionError", KafkaError)
RecordTooLargeError = _make("RecordTooLargeError", KafkaError)
ProducerClosed = _make("ProducerClosed", KafkaError)
ConsumerStoppedError = _make("ConsumerStoppedError", Exception,
                             doc="Raised by a stopped consumer's ``get*`` methods.")
IllegalOperation = _make("IllegalOperation", Exception,
                         doc="An operation the configuration does not allow (``commit`` without ``group_id``).")

_broker = _make.broker_errors(BrokerResponseError)
UnknownError = _broker("UnknownError", -1, "UNKNOWN")
OffsetOutOfRangeError = _broker("OffsetOutOfRangeError", 1, "OFFSET_OUT_OF_RANGE")
CorruptRecordException = _broker("CorruptRecordException", 2, "CORRUPT_MESSAGE")
UnknownTopicOrPartitionError = _broker("UnknownTopicOrPartitionError", 3, "UNKNOWN_TOPIC_OR_PARTITION",
                                       retriable=True, invalid_metadata=True)
MessageSizeTooLargeError = _broker("MessageSizeTooLargeError", 10, "MESSAGE_SIZE_TOO_LARGE")
InvalidTopicError = _broker("InvalidTopicError", 17, "INVALID_TOPIC")
NotEnoughReplicasError = _broker("NotEnoughReplicasError", 19, "NOT_ENOUGH_REPLICAS", retriable=True)
IllegalGenerationError = _broker("IllegalGenerationError", 22, "ILLEGAL_GENERATION")
UnknownMemberIdError = _broker("UnknownMemberIdError", 25, "UNKNOWN_MEMBER_ID")
UnsupportedVersionError = _broker("UnsupportedVersionError", 35, "UNSUPPORTED_VERSION")
TopicAlreadyExistsError = _broker("TopicAlreadyExistsError", 36, "TOPIC_ALREADY_EXISTS")
InvalidPartitionsError = _broker("InvalidPartitionsError", 37, "INVALID_PARTITIONS")
InvalidReplicationFactorError = _broker("InvalidReplicationFactorError", 38, "INVALID_REPLICATION_FACTOR")
InvalidConfigurationError = _broker("InvalidConfigurationError", 40, "INVALID_CONFIG")
InvalidRequestError = _broker("InvalidRequestError", 42, "INVALID_REQUEST")
InvalidProducerEpoch = _broker("InvalidProducerEpoch", 47, "INVALID_PRODUCER_EPOCH")
InvalidTxnState = _broker("InvalidTxnState", 48, "INVALID_TXN_STATE")
NonEmptyGroup = _broker("NonEmptyGroup", 68, "NON_EMPTY_GROUP")
GroupIdNotFound = _broker("GroupIdNotFound", 69, "GROUP_ID_NOT_FOUND")

#: names the shared translation table uses that aiokafka spells differently
ALIASES = {"CorruptRecordError": "CorruptRecordException", "GroupIdNotFoundError": "GroupIdNotFound",
           "NonEmptyGroupError": "NonEmptyGroup", "ProducerFencedError": "ProducerFenced"}


def for_code(error_code: int) -> type[BrokerResponseError]:
    """The error class for a Kafka error code (``UnknownError`` if not known here)."""
    return _broker.by_code.get(error_code, UnknownError)
