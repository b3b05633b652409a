"""aiokafka's ``aiokafka.errors``: the exceptions the shim raises, with Kafka's error codes.

When aiokafka itself is installed, each class also derives from the real class of the
same name, so application code written against aiokafka (``except
aiokafka.errors.KafkaTimeoutError``) catches what the shim raises (see
``embedlog.compat._error_classes``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .._error_classes import ErrorFactory, broker_error_str, kafka_error_str

__all__ = [
    "AuthenticationFailedError",
    "AuthenticationMethodNotSupported",
    "BrokerNotAvailableError",
    "BrokerResponseError",
    "Cancelled",
    "ClusterAuthorizationFailedError",
    "CommitFailedError",
    "ConcurrentTransactions",
    "ConsumerStoppedError",
    "CorrelationIdError",
    "CorruptRecordException",
    "DuplicateSequenceNumber",
    "GroupAuthorizationFailedError",
    "GroupCoordinatorNotAvailableError",
    "GroupIdNotFound",
    "GroupLoadInProgressError",
    "IllegalArgumentError",
    "IllegalGenerationError",
    "IllegalOperation",
    "IllegalSaslStateError",
    "IllegalStateError",
    "IncompatibleBrokerVersion",
    "InconsistentGroupProtocolError",
    "InvalidCommitOffsetSizeError",
    "InvalidConfigurationError",
    "InvalidGroupIdError",
    "InvalidPartitionsError",
    "InvalidProducerEpoch",
    "InvalidReplicationFactorError",
    "InvalidRequestError",
    "InvalidRequiredAcksError",
    "InvalidSessionTimeoutError",
    "InvalidTimestampError",
    "InvalidTopicError",
    "InvalidTxnState",
    "KafkaConfigurationError",
    "KafkaConnectionError",
    "KafkaError",
    "KafkaProtocolError",
    "KafkaStorageError",
    "KafkaTimeoutError",
    "KafkaUnavailableError",
    "LeaderNotAvailableError",
    "MemberIdRequired",
    "MessageSizeTooLargeError",
    "MetadataEmptyBrokerList",
    "NoBrokersAvailable",
    "NoOffsetForPartitionError",
    "NodeNotReadyError",
    "NonEmptyGroup",
    "NotControllerError",
    "NotCoordinatorForGroupError",
    "NotEnoughReplicasAfterAppendError",
    "NotEnoughReplicasError",
    "NotLeaderForPartitionError",
    "OffsetMetadataTooLargeError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceNumber",
    "PolicyViolationError",
    "ProducerClosed",
    "ProducerFenced",
    "RebalanceInProgressError",
    "RecordListTooLargeError",
    "RecordTooLargeError",
    "ReplicaNotAvailableError",
    "RequestTimedOutError",
    "SaslAuthenticationFailed",
    "StaleControllerEpochError",
    "StaleLeaderEpochCodeError",
    "StaleMetadata",
    "TooManyInFlightRequests",
    "TopicAlreadyExistsError",
    "TopicAuthorizationFailedError",
    "TransactionCoordinatorFenced",
    "TransactionalIdAuthorizationFailed",
    "UnknownError",
    "UnknownMemberIdError",
    "UnknownProducerId",
    "UnknownTopicOrPartitionError",
    "UnrecognizedBrokerVersion",
    "UnsupportedCodecError",
    "UnsupportedSaslMechanismError",
    "UnsupportedVersionError",
    "for_code",
]

_make = ErrorFactory(__name__, "aiokafka.errors")


class KafkaError(*_make.real("KafkaError", RuntimeError)):  # type: ignore[misc]
    """Base of aiokafka's Kafka errors."""

    retriable: ClassVar[bool] = False
    invalid_metadata: ClassVar[bool] = False
    __str__ = kafka_error_str


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
    __str__ = broker_error_str


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

# more of the real module's classes, for applications that catch them (none is raised by the shim)
KafkaConnectionError = _make("KafkaConnectionError", KafkaError, retriable=True, invalid_metadata=True)
NoBrokersAvailable = _make("NoBrokersAvailable", KafkaError, retriable=True, invalid_metadata=True)
NodeNotReadyError = _make("NodeNotReadyError", KafkaError, retriable=True)
KafkaProtocolError = _make("KafkaProtocolError", KafkaError, retriable=True)
CorrelationIdError = _make("CorrelationIdError", KafkaProtocolError, retriable=True)
Cancelled = _make("Cancelled", KafkaError, retriable=True)
TooManyInFlightRequests = _make("TooManyInFlightRequests", KafkaError, retriable=True)
StaleMetadata = _make("StaleMetadata", KafkaError, retriable=True, invalid_metadata=True)
MetadataEmptyBrokerList = _make("MetadataEmptyBrokerList", KafkaError, retriable=True)
UnrecognizedBrokerVersion = _make("UnrecognizedBrokerVersion", KafkaError)
IncompatibleBrokerVersion = _make("IncompatibleBrokerVersion", KafkaError)
UnsupportedCodecError = _make("UnsupportedCodecError", KafkaError)
KafkaUnavailableError = _make("KafkaUnavailableError", KafkaError)
LeaderNotAvailableError = _broker("LeaderNotAvailableError", 5,
    "LEADER_NOT_AVAILABLE", retriable=True, invalid_metadata=True)
NotLeaderForPartitionError = _broker("NotLeaderForPartitionError", 6,
    "NOT_LEADER_FOR_PARTITION", retriable=True, invalid_metadata=True)
RequestTimedOutError = _broker("RequestTimedOutError", 7, "REQUEST_TIMED_OUT", retriable=True)
BrokerNotAvailableError = _broker("BrokerNotAvailableError", 8, "BROKER_NOT_AVAILABLE")
ReplicaNotAvailableError = _broker("ReplicaNotAvailableError", 9, "REPLICA_NOT_AVAILABLE")
RecordListTooLargeError = _broker("RecordListTooLargeError", 18, "RECORD_LIST_TOO_LARGE")
RebalanceInProgressError = _broker("RebalanceInProgressError", 27, "REBALANCE_IN_PROGRESS")
OffsetMetadataTooLargeError = _broker("OffsetMetadataTooLargeError", 12, "OFFSET_METADATA_TOO_LARGE")
StaleControllerEpochError = _broker("StaleControllerEpochError", 11, "STALE_CONTROLLER_EPOCH")
StaleLeaderEpochCodeError = _broker("StaleLeaderEpochCodeError", 13, "STALE_LEADER_EPOCH_CODE")
GroupLoadInProgressError = _broker("GroupLoadInProgressError", 14, "COORDINATOR_LOAD_IN_PROGRESS", retriable=True)
GroupCoordinatorNotAvailableError = _broker("GroupCoordinatorNotAvailableError", 15,
    "COORDINATOR_NOT_AVAILABLE", retriable=True)
NotCoordinatorForGroupError = _broker("NotCoordinatorForGroupError", 16, "NOT_COORDINATOR", retriable=True)
NotEnoughReplicasAfterAppendError = _broker("NotEnoughReplicasAfterAppendError", 20,
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND", retriable=True)
InvalidRequiredAcksError = _broker("InvalidRequiredAcksError", 21, "INVALID_REQUIRED_ACKS")
InconsistentGroupProtocolError = _broker("InconsistentGroupProtocolError", 23, "INCONSISTENT_GROUP_PROTOCOL")
InvalidGroupIdError = _broker("InvalidGroupIdError", 24, "INVALID_GROUP_ID")
InvalidSessionTimeoutError = _broker("InvalidSessionTimeoutError", 26, "INVALID_SESSION_TIMEOUT")
InvalidCommitOffsetSizeError = _broker("InvalidCommitOffsetSizeError", 28, "INVALID_COMMIT_OFFSET_SIZE")
TopicAuthorizationFailedError = _broker("TopicAuthorizationFailedError", 29, "TOPIC_AUTHORIZATION_FAILED")
GroupAuthorizationFailedError = _broker("GroupAuthorizationFailedError", 30, "GROUP_AUTHORIZATION_FAILED")
ClusterAuthorizationFailedError = _broker("ClusterAuthorizationFailedError", 31, "CLUSTER_AUTHORIZATION_FAILED")
InvalidTimestampError = _broker("InvalidTimestampError", 32, "INVALID_TIMESTAMP")
UnsupportedSaslMechanismError = _broker("UnsupportedSaslMechanismError", 33, "UNSUPPORTED_SASL_MECHANISM")
IllegalSaslStateError = _broker("IllegalSaslStateError", 34, "ILLEGAL_SASL_STATE")
NotControllerError = _broker("NotControllerError", 41, "NOT_CONTROLLER", retriable=True)
PolicyViolationError = _broker("PolicyViolationError", 44, "POLICY_VIOLATION")
OutOfOrderSequenceNumber = _broker("OutOfOrderSequenceNumber", 45, "OUT_OF_ORDER_SEQUENCE_NUMBER")
DuplicateSequenceNumber = _broker("DuplicateSequenceNumber", 46, "DUPLICATE_SEQUENCE_NUMBER")
ConcurrentTransactions = _broker("ConcurrentTransactions", 51, "CONCURRENT_TRANSACTIONS")
TransactionCoordinatorFenced = _broker("TransactionCoordinatorFenced", 52, "TRANSACTION_COORDINATOR_FENCED")
TransactionalIdAuthorizationFailed = _broker("TransactionalIdAuthorizationFailed", 53,
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED")
KafkaStorageError = _broker("KafkaStorageError", 56, "KAFKA_STORAGE_ERROR", retriable=True, invalid_metadata=True)
SaslAuthenticationFailed = _broker("SaslAuthenticationFailed", 58, "SASL_AUTHENTICATION_FAILED")
UnknownProducerId = _broker("UnknownProducerId", 59, "UNKNOWN_PRODUCER_ID")
AuthenticationFailedError = _make("AuthenticationFailedError", KafkaError)
AuthenticationMethodNotSupported = _make("AuthenticationMethodNotSupported", KafkaError)
MemberIdRequired = _broker("MemberIdRequired", 79, "MEMBER_ID_REQUIRED")
CoordinatorLoadInProgressError = GroupLoadInProgressError
CoordinatorNotAvailableError = GroupCoordinatorNotAvailableError
NotCoordinatorError = NotCoordinatorForGroupError
InvalidMessageError = CorruptRecordException

#: names the shared translation table uses that aiokafka spells differently
ALIASES = {"CorruptRecordError": "CorruptRecordException", "GroupIdNotFoundError": "GroupIdNotFound",
           "NonEmptyGroupError": "NonEmptyGroup", "ProducerFencedError": "ProducerFenced"}


def for_code(error_code: int) -> type[BrokerResponseError]:
    """The error class for a Kafka error code (``UnknownError`` if not known here)."""
    return _broker.by_code.get(error_code, UnknownError)
