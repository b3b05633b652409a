"""kafka-python's ``kafka.errors``: the exceptions the shim raises, with Kafka's error codes.

Each class carries ``errno`` (Kafka's protocol error code, for broker errors) and
``retriable`` as kafka-python's do.  When kafka-python itself is installed, each class
also derives from the real class of the same name, so application code written
against the real library (``except kafka.errors.KafkaTimeoutError``) catches what the
shim raises (see ``embedlog.compat._error_classes``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .._error_classes import ErrorFactory, broker_error_str, kafka_error_str

__all__ = [
    "AuthorizationError",
    "BrokerNotAvailableError",
    "BrokerResponseError",
    "Cancelled",
    "ClusterAuthorizationFailedError",
    "CommitFailedError",
    "ConcurrentTransactionsError",
    "CoordinatorLoadInProgressError",
    "CoordinatorNotAvailableError",
    "CorrelationIdError",
    "CorruptRecordError",
    "DuplicateSequenceNumberError",
    "FencedInstanceIdError",
    "FencedLeaderEpochError",
    "GroupAuthorizationFailedError",
    "GroupIdNotFoundError",
    "GroupMaxSizeReachedError",
    "IllegalArgumentError",
    "IllegalGenerationError",
    "IllegalSaslStateError",
    "IllegalStateError",
    "IncompatibleBrokerVersion",
    "InconsistentGroupProtocolError",
    "InvalidCommitOffsetSizeError",
    "InvalidConfigurationError",
    "InvalidGroupIdError",
    "InvalidMetadataError",
    "InvalidPartitionsError",
    "InvalidProducerEpochError",
    "InvalidReceiveError",
    "InvalidRecordError",
    "InvalidReplicationFactorError",
    "InvalidRequestError",
    "InvalidRequiredAcksError",
    "InvalidSessionTimeoutError",
    "InvalidTimestampError",
    "InvalidTopicError",
    "InvalidTxnStateError",
    "KafkaConfigurationError",
    "KafkaConnectionError",
    "KafkaError",
    "KafkaProtocolError",
    "KafkaStorageError",
    "KafkaTimeoutError",
    "LeaderNotAvailableError",
    "MemberIdRequiredError",
    "MessageSizeTooLargeError",
    "MetadataEmptyBrokerList",
    "NetworkExceptionError",
    "NoOffsetForPartitionError",
    "NodeNotReadyError",
    "NonEmptyGroupError",
    "NotControllerError",
    "NotCoordinatorError",
    "NotEnoughReplicasAfterAppendError",
    "NotEnoughReplicasError",
    "NotLeaderForPartitionError",
    "OffsetMetadataTooLargeError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceNumberError",
    "PolicyViolationError",
    "ProducerFencedError",
    "RebalanceInProgressError",
    "RecordListTooLargeError",
    "ReplicaNotAvailableError",
    "RequestTimedOutError",
    "RetriableError",
    "SaslAuthenticationFailedError",
    "StaleControllerEpochError",
    "StaleMetadata",
    "ThrottlingQuotaExceededError",
    "TooManyInFlightRequests",
    "TopicAlreadyExistsError",
    "TopicAuthorizationFailedError",
    "TopicDeletionDisabledError",
    "TransactionAbortedError",
    "TransactionCoordinatorFencedError",
    "TransactionalIdAuthorizationFailedError",
    "UnknownError",
    "UnknownLeaderEpochError",
    "UnknownMemberIdError",
    "UnknownProducerIdError",
    "UnknownTopicIdError",
    "UnknownTopicOrPartitionError",
    "UnrecognizedBrokerVersion",
    "UnstableOffsetCommitError",
    "UnsupportedCodecError",
    "UnsupportedCompressionTypeError",
    "UnsupportedSaslMechanismError",
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
    __str__ = kafka_error_str


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
    __str__ = broker_error_str


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

# more of the real module's classes, for applications that catch them (none is raised by the shim)
KafkaConnectionError = _make("KafkaConnectionError", InvalidMetadataError)
NodeNotReadyError = _make("NodeNotReadyError", RetriableError)
KafkaProtocolError = _make("KafkaProtocolError", KafkaError)
CorrelationIdError = _make("CorrelationIdError", RetriableError, KafkaProtocolError)
Cancelled = _make("Cancelled", RetriableError)
TooManyInFlightRequests = _make("TooManyInFlightRequests", RetriableError)
StaleMetadata = _make("StaleMetadata", InvalidMetadataError)
MetadataEmptyBrokerList = _make("MetadataEmptyBrokerList", RetriableError)
UnrecognizedBrokerVersion = _make("UnrecognizedBrokerVersion", KafkaError)
IncompatibleBrokerVersion = _make("IncompatibleBrokerVersion", UnsupportedVersionError)  # errno 35, not by code
UnsupportedCodecError = _make("UnsupportedCodecError", KafkaError)
InvalidReceiveError = _make("InvalidReceiveError", KafkaProtocolError)
LeaderNotAvailableError = _broker("LeaderNotAvailableError", 5, "LEADER_NOT_AVAILABLE", InvalidMetadataError)
NotLeaderForPartitionError = _broker("NotLeaderForPartitionError", 6,
    "NOT_LEADER_FOR_PARTITION", InvalidMetadataError)
BrokerNotAvailableError = _broker("BrokerNotAvailableError", 8, "BROKER_NOT_AVAILABLE")
ReplicaNotAvailableError = _broker("ReplicaNotAvailableError", 9, "REPLICA_NOT_AVAILABLE", InvalidMetadataError)
OffsetMetadataTooLargeError = _broker("OffsetMetadataTooLargeError", 12, "OFFSET_METADATA_TOO_LARGE")
StaleControllerEpochError = _broker("StaleControllerEpochError", 11, "STALE_CONTROLLER_EPOCH")
NetworkExceptionError = _broker("NetworkExceptionError", 13, "NETWORK_EXCEPTION", InvalidMetadataError)
CoordinatorLoadInProgressError = _broker("CoordinatorLoadInProgressError", 14,
    "COORDINATOR_LOAD_IN_PROGRESS", RetriableError)
CoordinatorNotAvailableError = _broker("CoordinatorNotAvailableError", 15,
    "COORDINATOR_NOT_AVAILABLE", RetriableError)
NotCoordinatorError = _broker("NotCoordinatorError", 16, "NOT_COORDINATOR", RetriableError)
NotEnoughReplicasAfterAppendError = _broker("NotEnoughReplicasAfterAppendError", 20,
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND", RetriableError)
InvalidRequiredAcksError = _broker("InvalidRequiredAcksError", 21, "INVALID_REQUIRED_ACKS")
InconsistentGroupProtocolError = _broker("InconsistentGroupProtocolError", 23, "INCONSISTENT_GROUP_PROTOCOL")
InvalidGroupIdError = _broker("InvalidGroupIdError", 24, "INVALID_GROUP_ID")
InvalidSessionTimeoutError = _broker("InvalidSessionTimeoutError", 26, "INVALID_SESSION_TIMEOUT")
InvalidCommitOffsetSizeError = _broker("InvalidCommitOffsetSizeError", 28, "INVALID_COMMIT_OFFSET_SIZE")
AuthorizationError = _make("AuthorizationError", BrokerResponseError)
TopicAuthorizationFailedError = _broker("TopicAuthorizationFailedError", 29,
    "TOPIC_AUTHORIZATION_FAILED", AuthorizationError)
GroupAuthorizationFailedError = _broker("GroupAuthorizationFailedError", 30,
    "GROUP_AUTHORIZATION_FAILED", AuthorizationError)
ClusterAuthorizationFailedError = _broker("ClusterAuthorizationFailedError", 31,
    "CLUSTER_AUTHORIZATION_FAILED", AuthorizationError)
InvalidTimestampError = _broker("InvalidTimestampError", 32, "INVALID_TIMESTAMP")
UnsupportedSaslMechanismError = _broker("UnsupportedSaslMechanismError", 33, "UNSUPPORTED_SASL_MECHANISM")
IllegalSaslStateError = _broker("IllegalSaslStateError", 34, "ILLEGAL_SASL_STATE")
NotControllerError = _broker("NotControllerError", 41, "NOT_CONTROLLER", RetriableError)
PolicyViolationError = _broker("PolicyViolationError", 44, "POLICY_VIOLATION")
OutOfOrderSequenceNumberError = _broker("OutOfOrderSequenceNumberError", 45, "OUT_OF_ORDER_SEQUENCE_NUMBER")
DuplicateSequenceNumberError = _broker("DuplicateSequenceNumberError", 46, "DUPLICATE_SEQUENCE_NUMBER")
ConcurrentTransactionsError = _broker("ConcurrentTransactionsError", 51, "CONCURRENT_TRANSACTIONS", RetriableError)
TransactionCoordinatorFencedError = _broker("TransactionCoordinatorFencedError", 52, "TRANSACTION_COORDINATOR_FENCED")
TransactionalIdAuthorizationFailedError = _broker("TransactionalIdAuthorizationFailedError", 53,
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", AuthorizationError)
KafkaStorageError = _broker("KafkaStorageError", 56, "KAFKA_STORAGE_ERROR", InvalidMetadataError)
SaslAuthenticationFailedError = _broker("SaslAuthenticationFailedError", 58, "SASL_AUTHENTICATION_FAILED")
UnknownProducerIdError = _broker("UnknownProducerIdError", 59, "UNKNOWN_PRODUCER_ID")
FencedLeaderEpochError = _broker("FencedLeaderEpochError", 74, "FENCED_LEADER_EPOCH", InvalidMetadataError)
UnknownLeaderEpochError = _broker("UnknownLeaderEpochError", 75, "UNKNOWN_LEADER_EPOCH", InvalidMetadataError)
UnsupportedCompressionTypeError = _broker("UnsupportedCompressionTypeError", 76, "UNSUPPORTED_COMPRESSION_TYPE")
MemberIdRequiredError = _broker("MemberIdRequiredError", 79, "MEMBER_ID_REQUIRED")
GroupMaxSizeReachedError = _broker("GroupMaxSizeReachedError", 81, "GROUP_MAX_SIZE_REACHED")
FencedInstanceIdError = _broker("FencedInstanceIdError", 82, "FENCED_INSTANCE_ID")
UnstableOffsetCommitError = _broker("UnstableOffsetCommitError", 88, "UNSTABLE_OFFSET_COMMIT", RetriableError)
ThrottlingQuotaExceededError = _broker("ThrottlingQuotaExceededError", 89,
    "THROTTLING_QUOTA_EXCEEDED", RetriableError)
TopicDeletionDisabledError = _broker("TopicDeletionDisabledError", 73, "TOPIC_DELETION_DISABLED")
InvalidRecordError = _broker("InvalidRecordError", 87, "INVALID_RECORD")
UnknownTopicIdError = _broker("UnknownTopicIdError", 100, "UNKNOWN_TOPIC_ID", InvalidMetadataError)

#: Kafka error code -> class, like ``kafka.errors.kafka_errors``
kafka_errors: dict[int, type[BrokerResponseError]] = _broker.by_code


def for_code(error_code: int) -> type[BrokerResponseError]:
    """The error class for a Kafka error code (``UnknownError`` if not known here)."""
    return kafka_errors.get(error_code, UnknownError)
