"""Value classes of confluent-kafka's metadata and admin APIs.

The real classes (pure Python in ``confluent_kafka.admin`` and ``confluent_kafka``, or C
types for ``NewTopic``/``NewPartitions``) are used when confluent-kafka is installed, so
enum members compare equal to the ones application code imported; these pure-Python
equivalents otherwise.  Each has the real one's attributes and constructor.
"""

from __future__ import annotations

import enum
import functools
from typing import TYPE_CHECKING, Any

from ._errors import KafkaError, name_fallbacks, pick

__all__ = [
    "AlterConfigOpType", "BrokerMetadata", "ClusterMetadata", "ConfigEntry", "ConfigResource", "ConfigSource",
    "ConsumerGroupDescription", "ConsumerGroupListing", "ConsumerGroupState", "ConsumerGroupTopicPartitions",
    "ConsumerGroupType", "ListConsumerGroupsResult", "MemberAssignment", "MemberDescription", "NewPartitions",
    "NewTopic", "Node", "PartitionMetadata", "ResourceType", "TopicMetadata",
    "DeletedRecords", "DescribeClusterResult", "IsolationLevel", "ListOffsetsResultInfo", "OffsetSpec",
    "TopicCollection", "TopicDescription", "TopicPartitionInfo", "Uuid",
]


# -- metadata ------------------------------------------------------------------------------
class PyClusterMetadata:
    """Brokers and topics, as ``list_topics()`` returns them."""

    def __init__(self) -> None:
        self.cluster_id: str | None = None
        self.controller_id = -1
        self.brokers: dict[int, Any] = {}
        self.topics: dict[str, Any] = {}
        self.orig_broker_id = -1
        self.orig_broker_name: str | None = None

    def __repr__(self) -> str:
        return f"ClusterMetadata({self.cluster_id})"

    def __str__(self) -> str:
        return str(self.cluster_id)


class PyBrokerMetadata:
    """A broker's id, host and port."""

    def __init__(self) -> None:
        self.id = -1
        self.host: str | None = None
        self.port = -1

    def __repr__(self) -> str:
        return f"BrokerMetadata({self.id}, {self.host}:{self.port})"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}/{self.id}"


class PyGroupMember:
    """A member of a group in ``AdminClient.list_groups()`` (deprecated by confluent-kafka)."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.client_id: str | None = None
        self.client_host: str | None = None
        self.metadata: bytes | None = None
        self.assignment: bytes | None = None


class PyGroupMetadata:
    """A group in ``AdminClient.list_groups()`` (deprecated by confluent-kafka)."""

    def __init__(self) -> None:
        self.broker: Any = None
        self.id: str | None = None
        self.error: KafkaError | None = None
        self.state: str | None = None
        self.protocol_type: str | None = None
        self.protocol: str | None = None
        self.members: list[Any] = []

    def __repr__(self) -> str:
        return f"GroupMetadata({self.id})" if self.error is None else f"GroupMetadata({self.id}, {self.error})"

    def __str__(self) -> str:
        return str(self.id)


class PyTopicMetadata:
    """A topic's partitions (by id) and error."""

    def __init__(self) -> None:
        self.topic: str | None = None
        self.partitions: dict[int, Any] = {}
        self.error: KafkaError | None = None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"TopicMetadata({self.topic}, {len(self.partitions)} partitions, {self.error})"
        return f"TopicMetadata({self.topic}, {len(self.partitions)} partitions)"

    def __str__(self) -> str:
        return str(self.topic)


class PyPartitionMetadata:
    """A partition's id, leader, replicas and in-sync replicas."""

    def __init__(self) -> None:
        self.id = -1
        self.leader = -1
        self.replicas: list[int] = []
        self.isrs: list[int] = []
        self.error: KafkaError | None = None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"PartitionMetadata({self.id}, {self.error})"
        return f"PartitionMetadata({self.id})"

    def __str__(self) -> str:
        return str(self.id)


# -- enums --------------------------------------------------------------------------------------
class _Ordered(enum.Enum):
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        return bool(self.value < other.value)


class PyResourceType(_Ordered):
    """Kinds of resources with configuration."""

    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    BROKER = 4
    TRANSACTIONAL_ID = 5


class PyConfigSource(enum.Enum):
    """Where a configuration value comes from."""

    UNKNOWN_CONFIG = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    GROUP_CONFIG = 8


class PyAlterConfigOpType(enum.Enum):
    """Operations of ``incremental_alter_configs``."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


class PyConsumerGroupState(_Ordered):
    """A consumer group's state."""

    UNKNOWN = 0
    UNKOWN = 0  # the real enum keeps this misspelt alias
    PREPARING_REBALANCING = 1
    COMPLETING_REBALANCING = 2
    STABLE = 3
    DEAD = 4
    EMPTY = 5


class PyConsumerGroupType(_Ordered):
    """A consumer group's protocol type."""

    UNKNOWN = 0
    CONSUMER = 1
    CLASSIC = 2


# -- admin values -------------------------------------------------------------------------------
class PyNewTopic:
    """A topic to create: name, partitions (-1: broker default), replication factor, config."""

    def __init__(self, topic: str, num_partitions: int = -1, replication_factor: int = -1,
                 replica_assignment: list[list[int]] | None = None, config: dict[str, str] | None = None) -> None:
        if not isinstance(topic, str):
            raise TypeError("argument 1 must be str")
        for v in (num_partitions, replication_factor):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"'{type(v).__name__}' object cannot be interpreted as an integer")
        self.topic = topic
        self.num_partitions = num_partitions
        self.replication_factor = replication_factor
        self.replica_assignment = replica_assignment
        self.config = config

    def __repr__(self) -> str:
        return f"NewTopic(topic={self.topic},num_partitions={self.num_partitions})"


class PyNewPartitions:
    """A topic to grow to ``new_total_count`` partitions."""

    def __init__(self, topic: str, new_total_count: int,
                 replica_assignment: list[list[int]] | None = None) -> None:
        if not isinstance(topic, str):
            raise TypeError("argument 1 must be str")
        if isinstance(new_total_count, bool) or not isinstance(new_total_count, int):
            raise TypeError(f"'{type(new_total_count).__name__}' object cannot be interpreted as an integer")
        self.topic = topic
        self.new_total_count = new_total_count
        self.replica_assignment = replica_assignment

    def __repr__(self) -> str:
        return f"NewPartitions(topic={self.topic},new_total_count={self.new_total_count})"


class PyConfigEntry:
    """One configuration property of a resource, as ``describe_configs`` returns it."""

    def __init__(self, name: str, value: str | None, source: Any = PyConfigSource.UNKNOWN_CONFIG,
                 is_read_only: bool = False, is_default: bool = False, is_sensitive: bool = False,
                 is_synonym: bool = False, synonyms: dict[str, Any] | None = None,
                 incremental_operation: Any = None) -> None:
        self.name = name
        self.value = value
        self.source = source
        self.is_read_only = bool(is_read_only)
        self.is_default = bool(is_default)
        self.is_sensitive = bool(is_sensitive)
        self.is_synonym = bool(is_synonym)
        self.synonyms = synonyms or {}
        self.incremental_operation = incremental_operation

    def __repr__(self) -> str:
        return f'ConfigEntry({self.name}="{self.value}")'

    def __str__(self) -> str:
        return f'{self.name}="{self.value}"'


@functools.total_ordering
class PyConfigResource:
    """A resource (topic, broker, group) and the configuration to set on it."""

    Type = PyResourceType

    def __init__(self, restype: Any, name: str, set_config: dict[str, str] | None = None,
                 described_configs: dict[str, Any] | None = None, error: Any = None,
                 incremental_configs: list[Any] | None = None) -> None:
        if name is None:
            raise ValueError("Expected resource name to be a string")
        if isinstance(restype, str):
            try:
                restype = PyResourceType[restype.upper()]
            except KeyError:
                raise ValueError(f'Unknown resource type "{restype}": should be a ConfigResource.Type') from None
        elif isinstance(restype, int):
            restype = PyResourceType(restype)
        self.restype = restype
        self.restype_int = int(restype.value)
        self.name = name
        self.set_config_dict = dict(set_config or {})
        self.incremental_configs = list(incremental_configs or [])
        self.configs = described_configs
        self.error = error

    def __repr__(self) -> str:
        if self.error is not None:
            return f"ConfigResource({self.restype},{self.name},{self.error!r})"
        return f"ConfigResource({self.restype},{self.name})"

    def __hash__(self) -> int:
        return hash((self.restype, self.name))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PyConfigResource):
            return NotImplemented
        return bool(self.restype == other.restype and self.name == other.name)

    def __lt__(self, other: PyConfigResource) -> bool:
        if self.restype != other.restype:
            return bool(self.restype < other.restype)
        return self.name < other.name

    def __len__(self) -> int:
        return len(self.set_config_dict)

    def set_config(self, name: str, value: str, overwrite: bool = True) -> None:
        """Set (or, with ``overwrite=False``, add) a configuration value."""
        if not overwrite and name in self.set_config_dict:
            return
        self.set_config_dict[name] = value

    def add_incremental_config(self, config_entry: Any) -> None:
        """Add a ``ConfigEntry`` (with ``incremental_operation``) for ``incremental_alter_configs``."""
        self.incremental_configs.append(config_entry)


class PyNode:
    """A broker: id, host, port, rack."""

    def __init__(self, id: int, host: str, port: int, rack: str | None = None) -> None:  # noqa: A002
        self.id = id
        self.id_string = str(id)
        self.host = host
        self.port = port
        self.rack = rack

    def __str__(self) -> str:
        rack = f"(Rack - {self.rack})" if self.rack else ""
        return f"({self.id}) {self.host}:{self.port} {rack}"


class PyConsumerGroupTopicPartitions:
    """A group id and (optionally) partitions, for the group-offset admin calls."""

    def __init__(self, group_id: str, topic_partitions: list[Any] | None = None) -> None:
        self.group_id = group_id
        self.topic_partitions = topic_partitions


class PyConsumerGroupListing:
    """One group of ``list_consumer_groups``."""

    def __init__(self, group_id: str, is_simple_consumer_group: bool, state: Any = None, type: Any = None) -> None:  # noqa: A002
        self.group_id = group_id
        self.is_simple_consumer_group = is_simple_consumer_group
        if state is not None:
            self.state = state
        if type is not None:
            self.type = type


class PyListConsumerGroupsResult:
    """The result of ``list_consumer_groups``: ``valid`` listings and ``errors``."""

    def __init__(self, valid: list[Any] | None = None, errors: list[Any] | None = None) -> None:
        self.valid = valid
        self.errors = errors


class PyMemberAssignment:
    """The partitions assigned to a group member."""

    def __init__(self, topic_partitions: list[Any] | None) -> None:
        self.topic_partitions = topic_partitions or []


class PyMemberDescription:
    """A group member: ids, host and assignment."""

    def __init__(self, member_id: str, client_id: str, host: str, assignment: Any,
                 group_instance_id: str | None = None, target_assignment: Any = None) -> None:
        self.member_id = member_id
        self.client_id = client_id
        self.host = host
        self.assignment = assignment
        self.target_assignment = target_assignment
        self.group_instance_id = group_instance_id


class PyConsumerGroupDescription:
    """A group as ``describe_consumer_groups`` returns it."""

    def __init__(self, group_id: str, is_simple_consumer_group: bool, members: list[Any], partition_assignor: str,
                 state: Any, coordinator: Any, authorized_operations: Any = None,
                 type: Any = PyConsumerGroupType.UNKNOWN) -> None:  # noqa: A002
        self.group_id = group_id
        self.is_simple_consumer_group = is_simple_consumer_group
        self.members = members
        self.authorized_operations = authorized_operations
        self.partition_assignor = partition_assignor
        if state is not None:
            self.state = state
        if type is not None:
            self.type = type
        self.coordinator = coordinator


# -- cluster, topics, records and offsets ----------------------------------------------------
class PyDescribeClusterResult:
    """The result of ``describe_cluster``."""

    def __init__(self, controller: Any, nodes: list[Any], cluster_id: str | None = None,
                 authorized_operations: Any = None) -> None:
        self.controller = controller
        self.nodes = nodes
        self.cluster_id = cluster_id
        self.authorized_operations = authorized_operations


class PyDeletedRecords:
    """The result of ``delete_records`` for one partition: its new start offset."""

    def __init__(self, low_watermark: int) -> None:
        self.low_watermark = low_watermark


class PyListOffsetsResultInfo:
    """The result of ``list_offsets`` for one partition."""

    def __init__(self, offset: int, timestamp: int, leader_epoch: int) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.leader_epoch = leader_epoch


class PyOffsetSpec:
    """What ``list_offsets`` asks for: ``earliest()``, ``latest()``, ``max_timestamp()`` or
    ``for_timestamp(ms)`` (``_value``: -2, -1, -3 or the timestamp, as in confluent-kafka)."""

    def __init__(self, index: int) -> None:
        self._value = int(index)

    @classmethod
    def earliest(cls) -> PyOffsetSpec:
        return cls(-2)

    @classmethod
    def latest(cls) -> PyOffsetSpec:
        return cls(-1)

    @classmethod
    def max_timestamp(cls) -> PyOffsetSpec:
        return cls(-3)

    @classmethod
    def for_timestamp(cls, timestamp: int) -> PyOffsetSpec:
        return cls(timestamp)


class PyTopicCollection:
    """Topics named for ``describe_topics``."""

    def __init__(self, topic_names: list[str]) -> None:
        self.topic_names = topic_names


class PyTopicPartitionInfo:
    """A partition in a ``TopicDescription``: its id, leader, replicas and in-sync replicas."""

    def __init__(self, id: int, leader: Any, replicas: list[Any], isr: list[Any]) -> None:  # noqa: A002
        self.id = id
        self.leader = leader
        self.replicas = replicas
        self.isr = isr


class PyTopicDescription:
    """A topic as ``describe_topics`` returns it."""

    def __init__(self, name: str, topic_id: Any, is_internal: bool, partitions: list[Any],
                 authorized_operations: Any = None) -> None:
        self.name = name
        self.topic_id = topic_id
        self.is_internal = is_internal
        self.partitions = partitions
        self.authorized_operations = authorized_operations


class PyUuid:
    """A topic id: 128 bits as two signed 64-bit halves."""

    def __init__(self, most_significant_bits: int, least_significant_bits: int) -> None:
        self._msb = most_significant_bits
        self._lsb = least_significant_bits

    def get_most_significant_bits(self) -> int:
        return self._msb

    def get_least_significant_bits(self) -> int:
        return self._lsb


class PyIsolationLevel(enum.Enum):
    """confluent-kafka's ``IsolationLevel``."""

    READ_UNCOMMITTED = 0
    READ_COMMITTED = 1


name_fallbacks(
    PyClusterMetadata, PyBrokerMetadata, PyGroupMember, PyGroupMetadata,
    PyTopicMetadata, PyPartitionMetadata, PyResourceType, PyConfigSource,
    PyAlterConfigOpType, PyConsumerGroupState, PyConsumerGroupType, PyNewTopic, PyNewPartitions, PyConfigEntry,
    PyConfigResource, PyNode, PyConsumerGroupTopicPartitions, PyConsumerGroupListing, PyListConsumerGroupsResult,
    PyMemberAssignment, PyMemberDescription, PyConsumerGroupDescription, PyDescribeClusterResult, PyDeletedRecords,
    PyListOffsetsResultInfo, PyOffsetSpec, PyIsolationLevel, PyTopicCollection, PyTopicPartitionInfo,
    PyTopicDescription, PyUuid,
)

if TYPE_CHECKING:
    ClusterMetadata = PyClusterMetadata
    BrokerMetadata = PyBrokerMetadata
    GroupMember = PyGroupMember
    GroupMetadata = PyGroupMetadata
    TopicMetadata = PyTopicMetadata
    PartitionMetadata = PyPartitionMetadata
    ResourceType = PyResourceType
    ConfigSource = PyConfigSource
    AlterConfigOpType = PyAlterConfigOpType
    ConsumerGroupState = PyConsumerGroupState
    ConsumerGroupType = PyConsumerGroupType
    NewTopic = PyNewTopic
    NewPartitions = PyNewPartitions
    ConfigEntry = PyConfigEntry
    ConfigResource = PyConfigResource
    Node = PyNode
    ConsumerGroupTopicPartitions = PyConsumerGroupTopicPartitions
    ConsumerGroupListing = PyConsumerGroupListing
    ListConsumerGroupsResult = PyListConsumerGroupsResult
    MemberAssignment = PyMemberAssignment
    MemberDescription = PyMemberDescription
    ConsumerGroupDescription = PyConsumerGroupDescription
    DescribeClusterResult = PyDescribeClusterResult
    DeletedRecords = PyDeletedRecords
    ListOffsetsResultInfo = PyListOffsetsResultInfo
    OffsetSpec = PyOffsetSpec
    IsolationLevel = PyIsolationLevel
    TopicCollection = PyTopicCollection
    TopicPartitionInfo = PyTopicPartitionInfo
    TopicDescription = PyTopicDescription
    Uuid = PyUuid
else:
    ClusterMetadata = pick("confluent_kafka.admin", "ClusterMetadata", PyClusterMetadata)
    BrokerMetadata = pick("confluent_kafka.admin", "BrokerMetadata", PyBrokerMetadata)
    GroupMember = pick("confluent_kafka.admin", "GroupMember", PyGroupMember)
    GroupMetadata = pick("confluent_kafka.admin", "GroupMetadata", PyGroupMetadata)
    TopicMetadata = pick("confluent_kafka.admin", "TopicMetadata", PyTopicMetadata)
    PartitionMetadata = pick("confluent_kafka.admin", "PartitionMetadata", PyPartitionMetadata)
    ResourceType = pick("confluent_kafka.admin", "ResourceType", PyResourceType)
    ConfigSource = pick("confluent_kafka.admin", "ConfigSource", PyConfigSource)
    AlterConfigOpType = pick("confluent_kafka.admin", "AlterConfigOpType", PyAlterConfigOpType)
    ConsumerGroupState = pick("confluent_kafka", "ConsumerGroupState", PyConsumerGroupState)
    ConsumerGroupType = pick("confluent_kafka", "ConsumerGroupType", PyConsumerGroupType)
    NewTopic = pick("confluent_kafka.admin", "NewTopic", PyNewTopic)
    NewPartitions = pick("confluent_kafka.admin", "NewPartitions", PyNewPartitions)
    ConfigEntry = pick("confluent_kafka.admin", "ConfigEntry", PyConfigEntry)
    ConfigResource = pick("confluent_kafka.admin", "ConfigResource", PyConfigResource)
    Node = pick("confluent_kafka", "Node", PyNode)
    ConsumerGroupTopicPartitions = pick("confluent_kafka", "ConsumerGroupTopicPartitions",
                                        PyConsumerGroupTopicPartitions)
    ConsumerGroupListing = pick("confluent_kafka.admin", "ConsumerGroupListing", PyConsumerGroupListing)
    ListConsumerGroupsResult = pick("confluent_kafka.admin", "ListConsumerGroupsResult", PyListConsumerGroupsResult)
    MemberAssignment = pick("confluent_kafka.admin", "MemberAssignment", PyMemberAssignment)
    MemberDescription = pick("confluent_kafka.admin", "MemberDescription", PyMemberDescription)
    ConsumerGroupDescription = pick("confluent_kafka.admin", "ConsumerGroupDescription", PyConsumerGroupDescription)
    DescribeClusterResult = pick("confluent_kafka.admin", "DescribeClusterResult", PyDescribeClusterResult)
    DeletedRecords = pick("confluent_kafka.admin", "DeletedRecords", PyDeletedRecords)
    ListOffsetsResultInfo = pick("confluent_kafka.admin", "ListOffsetsResultInfo", PyListOffsetsResultInfo)
    OffsetSpec = pick("confluent_kafka.admin", "OffsetSpec", PyOffsetSpec)
    IsolationLevel = pick("confluent_kafka", "IsolationLevel", PyIsolationLevel)
    TopicCollection = pick("confluent_kafka", "TopicCollection", PyTopicCollection)
    TopicPartitionInfo = pick("confluent_kafka", "TopicPartitionInfo", PyTopicPartitionInfo)
    TopicDescription = pick("confluent_kafka.admin", "TopicDescription", PyTopicDescription)
    Uuid = pick("confluent_kafka", "Uuid", PyUuid)
