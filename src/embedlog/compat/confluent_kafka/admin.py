"""confluent-kafka's ``admin`` module over an embedded log.

``AdminClient`` methods return what the real ones return — a dict of
``concurrent.futures.Future`` keyed by topic name, ``ConfigResource`` or group id (or
one future) — already resolved, since the log answers at once.  Errors are
``KafkaException``s inside the futures, with Kafka's codes (``TOPIC_ALREADY_EXISTS``,
``UNKNOWN_TOPIC_OR_PART``, ``INVALID_PARTITIONS``, ``INVALID_CONFIG``...).

Topic configuration: the keys embedlog honours (``retention.ms``, ``retention.bytes``,
``cleanup.policy``, ``delete.retention.ms``, ``min.compaction.lag.ms``,
``max.message.bytes``, ``message.timestamp.type``, ``min.insync.replicas``) are applied;
Kafka's other topic keys (``segment.bytes``, ``compression.type``...) are accepted and
ignored; unknown keys fail with ``INVALID_CONFIG``.  A replication factor is accepted
and ignored (the log is its own single replica).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from typing import Any

from embedlog import TopicPartition as ETP
from embedlog import errors as el
from embedlog.config import DEFAULTS, TopicConfig
from embedlog.groups.coordinator import validate_group
from embedlog.storage.topics import validate_name

from .. import registry
from .._topic_config import KAFKA_TOPIC_KEYS, alter_broker_config, broker_config, split_config
from ._admin_types import (
    AlterConfigOpType,
    BrokerMetadata,
    ClusterMetadata,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ConsumerGroupDescription,
    ConsumerGroupListing,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    DeletedRecords,
    DescribeClusterResult,
    GroupMember,
    GroupMetadata,
    IsolationLevel,
    ListConsumerGroupsResult,
    ListOffsetsResultInfo,
    MemberAssignment,
    MemberDescription,
    NewPartitions,
    NewTopic,
    Node,
    OffsetSpec,
    PartitionMetadata,
    ResourceType,
    TopicCollection,
    TopicDescription,
    TopicMetadata,
    TopicPartitionInfo,
    Uuid,
)
from ._config import check_timeout, parse_config
from ._errors import (
    ERR_GROUP_ID_NOT_FOUND,
    ERR_INVALID_ARG,
    ERR_INVALID_CONFIG,
    ERR_INVALID_PARTITIONS,
    ERR_INVALID_REPLICATION_FACTOR,
    ERR_INVALID_REQUEST,
    ERR_NON_EMPTY_GROUP,
    ERR_TOPIC_ALREADY_EXISTS,
    ERR_TOPIC_EXCEPTION,
    ERR_UNKNOWN_MEMBER_ID,
    ERR_UNKNOWN_TOPIC_OR_PART,
    ERR_UNSUPPORTED_FEATURE,
    KafkaError,
    KafkaException,
    error_for,
    kafka_exception,
)
from ._metadata import BROKER_ID, broker_address, build_metadata, cluster_id
from ._types import OFFSET_INVALID, TopicPartition, make_tp, tp_fields

__all__ = [
    "AdminClient", "AlterConfigOpType", "BrokerMetadata", "ClusterMetadata", "ConfigEntry", "ConfigResource",
    "ConfigSource", "ConsumerGroupDescription", "ConsumerGroupListing", "ConsumerGroupState",
    "ConsumerGroupTopicPartitions", "ConsumerGroupType", "DeletedRecords", "DescribeClusterResult", "GroupMember",
    "GroupMetadata", "IsolationLevel",
    "KafkaError", "KafkaException", "ListConsumerGroupsResult", "ListOffsetsResultInfo", "MemberAssignment",
    "MemberDescription", "NewPartitions", "NewTopic", "Node", "OffsetSpec", "PartitionMetadata", "ResourceType",
    "TopicCollection", "TopicDescription", "TopicMetadata", "TopicPartition", "TopicPartitionInfo", "Uuid",
]

_STATES = {"stable": "STABLE", "empty": "EMPTY", "preparingrebalance": "PREPARING_REBALANCING",
           "completingrebalance": "COMPLETING_REBALANCING", "dead": "DEAD"}
_OPTIONS = {"operation_timeout", "request_timeout", "validate_only", "require_stable", "states", "types",
            "include_authorized_operations", "isolation_level"}


def _future(value: Any = None, error: BaseException | None = None) -> concurrent.futures.Future[Any]:
    f: concurrent.futures.Future[Any] = concurrent.futures.Future()
    f.set_running_or_notify_cancel()
    if error is not None:
        f.set_exception(error)
    else:
        f.set_result(value)
    return f


def _failed(code: int, reason: str | None = None) -> concurrent.futures.Future[Any]:
    return _future(error=kafka_exception(code, reason))


class AdminClient:
    """confluent-kafka's ``AdminClient``: ``AdminClient({"bootstrap.servers": ...})``."""

    def __init__(self, conf: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        self._conf = parse_config(conf, kwargs, "admin")
        self._cluster = registry.log_for(self._conf.raw)
        self._log = self._cluster.log

    @staticmethod
    def _options(kwargs: Mapping[str, Any]) -> None:
        for k in kwargs:
            if k not in _OPTIONS:
                raise TypeError(f"'{k}' is an invalid keyword argument for this function")

    # -- topics ---------------------------------------------------------------------------------
    def create_topics(self, new_topics: list[NewTopic], **kwargs: Any) -> dict[str, concurrent.futures.Future[Any]]:
        """Create topics (``NewTopic(name, num_partitions=-1 (cluster default), ...)``); the
        futures' result is ``None``."""
        self._options(kwargs)
        if not isinstance(new_topics, list) or not new_topics:
            raise ValueError("Expected non-empty list of NewTopic objects")
        validate_only = bool(kwargs.get("validate_only", False))
        out: dict[str, concurrent.futures.Future[Any]] = {}
        for nt in new_topics:
            out[nt.topic] = self._create_one(nt, validate_only)
        return out

    def _create_one(self, nt: Any, validate_only: bool) -> concurrent.futures.Future[Any]:  # noqa: PLR0911
        name = nt.topic
        partitions = nt.num_partitions
        if nt.replica_assignment:
            partitions = len(nt.replica_assignment)
        elif partitions == -1:
            partitions = self._cluster.num_partitions
        if partitions < 1:
            return _failed(ERR_INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        if nt.replication_factor == 0 or nt.replication_factor < -1:
            return _failed(ERR_INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
        config, problem = split_config(nt.config)
        if problem:
            return _failed(ERR_INVALID_CONFIG, problem)
        if name in self._log.topics():
            return _failed(ERR_TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        if validate_only:
            try:
                TopicConfig.from_overrides(config)
            except el.ConfigError as exc:
                return _failed(ERR_INVALID_CONFIG, str(exc))
            return _future()
        try:
            self._log.create_topic(name, partitions=partitions, config=config)
        except el.TopicExistsError:
            return _failed(ERR_TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        except el.InvalidTopicError as exc:
            return _failed(ERR_TOPIC_EXCEPTION, str(exc))
        except el.ConfigError as exc:
            code = ERR_INVALID_PARTITIONS if "partitions" in str(exc) else ERR_INVALID_CONFIG
            return _failed(code, str(exc))
        return _future()

    def delete_topics(self, topics: list[str], **kwargs: Any) -> dict[str, concurrent.futures.Future[Any]]:
        """Delete topics (their records and committed offsets); results are ``None``."""
        self._options(kwargs)
        if not isinstance(topics, list):
            raise TypeError(f"argument 1 must be list, not {type(topics).__name__}")
        if not topics:
            raise ValueError("Expected non-empty list of topic strings")
        out: dict[str, concurrent.futures.Future[Any]] = {}
        for name in topics:
            try:
                self._log.delete_topic(name)
                out[name] = _future()
            except el.UnknownTopicError:
                out[name] = _failed(ERR_UNKNOWN_TOPIC_OR_PART)
            except el.InvalidTopicError as exc:
                out[name] = _failed(ERR_TOPIC_EXCEPTION, str(exc))
        return out

    def create_partitions(self, new_partitions: list[NewPartitions],
                          **kwargs: Any) -> dict[str, concurrent.futures.Future[Any]]:
        """Grow topics to ``NewPartitions(topic, new_total_count)``; results are ``None``."""
        self._options(kwargs)
        if not isinstance(new_partitions, list) or not new_partitions:
            raise ValueError("Expected non-empty list of NewPartitions objects")
        validate_only = bool(kwargs.get("validate_only", False))
        out: dict[str, concurrent.futures.Future[Any]] = {}
        for np in new_partitions:
            name, total = np.topic, np.new_total_count
            try:
                current = len(self._log.describe_topic(name).partitions)
            except (el.UnknownTopicError, el.InvalidTopicError):
                out[name] = _failed(ERR_UNKNOWN_TOPIC_OR_PART)
                continue
            if total == current:
                out[name] = _failed(ERR_INVALID_PARTITIONS, f"Topic already has {current} partitions.")
            elif total < current:
                out[name] = _failed(ERR_INVALID_PARTITIONS, f"Topic currently has {current} partitions, which is "
                                    f"higher than the requested {total}.")
            elif validate_only:
                out[name] = _future()
            else:
                try:
                    self._log.create_partitions(name, total)
                    out[name] = _future()
                except el.EmbedlogError as exc:
                    out[name] = _future(error=KafkaException(error_for(exc)))
        return out

    def list_topics(self, topic: str | None = None, timeout: float | None = -1) -> ClusterMetadata:
        """Cluster metadata (never creates topics)."""
        return build_metadata(self._cluster, self._conf.get("bootstrap.servers"), None if topic is None else [topic])

    def cluster_id(self, timeout: float | None = -1) -> str:
        """The cluster id (a hash of the log directory)."""
        return cluster_id(self._log)

    def describe_cluster(self, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """One future: the controller, the nodes and the cluster id."""
        self._options(kwargs)
        node = self._node()
        return _future(DescribeClusterResult(node, [node], cluster_id(self._log)))

    def _node(self) -> Node:
        host, port = broker_address(self._conf.get("bootstrap.servers"))
        return Node(BROKER_ID, host, port)

    # -- configs ------------------------------------------------------------------------------------
    def describe_configs(self, resources: list[ConfigResource],
                         **kwargs: Any) -> dict[ConfigResource, concurrent.futures.Future[Any]]:
        """Configuration of topics and the broker: ``{name: ConfigEntry}`` per resource."""
        self._options(kwargs)
        self._check_resources(resources)
        out: dict[ConfigResource, concurrent.futures.Future[Any]] = {}
        for res in resources:
            kind = res.restype
            if kind == ResourceType.TOPIC:
                try:
                    meta = self._log._store.topic(validate_name(res.name))  # (None: unknown)
                except el.InvalidTopicError:
                    meta = None
                if meta is None:
                    out[res] = _failed(ERR_UNKNOWN_TOPIC_OR_PART)
                    continue
                # a value set on the topic (at creation or by alter) is Kafka's DYNAMIC_TOPIC_CONFIG,
                # even when it equals the default; the others are defaults
                overrides = meta.config.overrides
                out[res] = _future({k: self._entry(k, v, k not in overrides, ConfigSource.DYNAMIC_TOPIC_CONFIG)
                                    for k, v in meta.config.to_dict().items()})
            elif kind == ResourceType.BROKER:
                out[res] = _future({k: self._entry(k, v, False, ConfigSource.STATIC_BROKER_CONFIG)
                                    for k, v in broker_config(self._cluster, BROKER_ID).items()})
            else:
                out[res] = _failed(ERR_UNSUPPORTED_FEATURE, f"configs of {kind} resources are not supported")
        return out

    @staticmethod
    def _entry(name: str, value: object, default: bool, source: Any) -> ConfigEntry:
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return ConfigEntry(name, text, ConfigSource.DEFAULT_CONFIG if default else source,
                           False, default, False, False, {})

    @staticmethod
    def _check_resources(resources: object) -> None:
        if not isinstance(resources, list) or not resources:
            raise ValueError("Expected non-empty list of ConfigResource objects")
        for r in resources:
            if not hasattr(r, "restype") or not hasattr(r, "name"):
                raise ValueError(f"Expected list of {ConfigResource!r}")

    def alter_configs(self, resources: list[ConfigResource],
                      **kwargs: Any) -> dict[ConfigResource, concurrent.futures.Future[Any]]:
        """Replace a resource's configuration (keys not given revert to their defaults)."""
        self._options(kwargs)
        self._check_resources(resources)
        out: dict[ConfigResource, concurrent.futures.Future[Any]] = {}
        for res in resources:
            changes: dict[str, Any] = dict(res.set_config_dict)
            if res.restype == ResourceType.TOPIC:
                honoured, problem = split_config(changes)
                if problem:
                    out[res] = _failed(ERR_INVALID_CONFIG, problem)
                    continue
                full = {k: honoured.get(k) for k in DEFAULTS}  # None reverts to the default
                out[res] = self._alter_topic(res.name, full, kwargs)
            elif res.restype == ResourceType.BROKER:
                out[res] = self._alter_broker(changes, kwargs)
            else:
                out[res] = _failed(ERR_UNSUPPORTED_FEATURE, f"configs of {res.restype} resources are not supported")
        return out

    def incremental_alter_configs(self, resources: list[ConfigResource],
                                  **kwargs: Any) -> dict[ConfigResource, concurrent.futures.Future[Any]]:
        """Set (``AlterConfigOpType.SET``) or reset (``DELETE``) single keys; ``APPEND`` and
        ``SUBTRACT`` work on ``cleanup.policy``."""
        self._options(kwargs)
        self._check_resources(resources)
        out: dict[ConfigResource, concurrent.futures.Future[Any]] = {}
        for res in resources:
            try:
                changes = self._incremental(res)
            except KafkaException as exc:
                out[res] = _future(error=exc)
                continue
            if res.restype == ResourceType.TOPIC:
                out[res] = self._alter_topic(res.name, changes, kwargs)
            elif res.restype == ResourceType.BROKER:
                out[res] = self._alter_broker(changes, kwargs)
            else:
                out[res] = _failed(ERR_UNSUPPORTED_FEATURE, f"configs of {res.restype} resources are not supported")
        return out

    def _incremental(self, res: Any) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        current: dict[str, Any] = {}
        if res.restype == ResourceType.TOPIC:
            try:
                current = dict(self._log.describe_topic(res.name).config)
            except (el.UnknownTopicError, el.InvalidTopicError):
                raise kafka_exception(ERR_UNKNOWN_TOPIC_OR_PART) from None
        for entry in res.incremental_configs:
            op = entry.incremental_operation
            name = entry.name
            if res.restype == ResourceType.TOPIC and name not in DEFAULTS:
                if name in KAFKA_TOPIC_KEYS:
                    continue
                raise kafka_exception(ERR_INVALID_CONFIG, f"Unknown topic config name: {name}")
            if op == AlterConfigOpType.SET:
                changes[name] = entry.value
            elif op == AlterConfigOpType.DELETE:
                changes[name] = None
            elif name == "cleanup.policy":
                have = [p for p in str(changes.get(name) or current.get(name, "delete")).split(",") if p]
                delta = [p.strip() for p in str(entry.value or "").split(",") if p.strip()]
                if op == AlterConfigOpType.APPEND:
                    have += [p for p in delta if p not in have]
                else:
                    have = [p for p in have if p not in delta]
                changes[name] = ",".join(have) or "delete"
            else:
                raise kafka_exception(ERR_INVALID_REQUEST, f"{op} is only supported for list-type configs")
        return changes

    def _alter_topic(self, name: str, changes: dict[str, Any],
                     kwargs: Mapping[str, Any]) -> concurrent.futures.Future[Any]:
        try:
            current = self._log.describe_topic(name).config
        except (el.UnknownTopicError, el.InvalidTopicError):
            return _failed(ERR_UNKNOWN_TOPIC_OR_PART)
        try:
            merged = {**current, **{k: (DEFAULTS[k] if v is None else v) for k, v in changes.items()}}
            TopicConfig.from_overrides(merged)
        except el.ConfigError as exc:
            return _failed(ERR_INVALID_CONFIG, str(exc))
        if not kwargs.get("validate_only"):
            self._log.alter_topic_config(name, changes)
        return _future()

    def _alter_broker(self, changes: dict[str, Any], kwargs: Mapping[str, Any]) -> concurrent.futures.Future[Any]:
        problem = alter_broker_config(self._cluster, changes, validate_only=bool(kwargs.get("validate_only")))
        return _future() if problem is None else _failed(ERR_INVALID_CONFIG, problem)

    def describe_topics(self, topics: Any, **kwargs: Any) -> dict[str, concurrent.futures.Future[Any]]:
        """Futures of ``TopicDescription(name, topic_id, is_internal, partitions)`` keyed by
        topic name (``UNKNOWN_TOPIC_OR_PART`` for a topic that does not exist: describing
        never creates one); the log is each partition's leader and only replica."""
        self._options(kwargs)
        if not isinstance(topics, TopicCollection):
            raise TypeError("Expected input to be instance of TopicCollection")
        names = topics.topic_names
        if not isinstance(names, list):
            raise TypeError("Expected list of topic names to be described")
        out: dict[str, concurrent.futures.Future[Any]] = {}
        node = self._node()
        for name in names:
            try:
                desc = self._log.describe_topic(name)
            except (el.UnknownTopicError, el.InvalidTopicError):
                out[name] = _failed(ERR_UNKNOWN_TOPIC_OR_PART)
                continue
            partitions = [TopicPartitionInfo(p.partition, node, [node], [node]) for p in desc.partitions]
            out[name] = _future(TopicDescription(name, Uuid(0, desc.topic_id), False, partitions))
        return out

    # -- records and offsets -----------------------------------------------------------------------------
    def delete_records(self, topic_partition_offsets: list[TopicPartition],
                       **kwargs: Any) -> dict[TopicPartition, concurrent.futures.Future[Any]]:
        """Delete each partition's records before its ``offset`` (``OFFSET_END``, -1: all);
        futures of ``DeletedRecords(low_watermark)`` keyed by the given ``TopicPartition``s
        (``OFFSET_OUT_OF_RANGE`` past the high watermark, ``UNKNOWN_TOPIC_OR_PART``)."""
        self._options(kwargs)
        if not isinstance(topic_partition_offsets, list):
            raise TypeError(f"Expected Request to be a list, got '{type(topic_partition_offsets).__name__}' ")
        for req in topic_partition_offsets:
            if not isinstance(req, TopicPartition):
                raise TypeError("Element of the request list must be of type 'TopicPartition'"
                                f" got '{type(req).__name__}' ")
            if req.partition < 0:
                raise ValueError("'partition' cannot be negative")
        out: dict[TopicPartition, concurrent.futures.Future[Any]] = {}
        if len({(req.topic, req.partition) for req in topic_partition_offsets}) < len(topic_partition_offsets):
            for req in topic_partition_offsets:  # (one future per partition: equal TopicPartitions are one key)
                out[req] = _failed(ERR_INVALID_ARG, "Duplicate partitions not allowed")
            return out
        for req in topic_partition_offsets:
            topic, partition, offset = tp_fields(req)
            try:
                out[req] = _future(DeletedRecords(self._log.delete_records(topic, partition, offset)))
            except (el.UnknownTopicError, el.UnknownPartitionError, el.InvalidTopicError):
                out[req] = _failed(ERR_UNKNOWN_TOPIC_OR_PART)
            except el.EmbedlogError as exc:
                out[req] = _future(error=KafkaException(error_for(exc)))
        return out

    def list_offsets(self, topic_partition_offsets: Mapping[TopicPartition, Any],
                     **kwargs: Any) -> dict[TopicPartition, concurrent.futures.Future[Any]]:
        """The earliest, latest, first-at-a-timestamp or max-timestamp offset of partitions
        (``OffsetSpec``); futures of ``ListOffsetsResultInfo(offset, timestamp,
        leader_epoch)`` keyed by ``TopicPartition(topic, partition, <spec value>)`` as in
        the real client.  No record at or after a timestamp: offset and timestamp -1."""
        self._options(kwargs)
        if not isinstance(topic_partition_offsets, dict):
            raise TypeError("Expected topic_partition_offsets to be dict of [TopicPartitions,OffsetSpec] for "
                            "list offsets request")
        for tp, spec in topic_partition_offsets.items():
            if tp is None:
                raise TypeError("partition cannot be None")
            if not isinstance(tp, TopicPartition):
                raise TypeError("partition must be a TopicPartition")
            if tp.topic is None:
                raise TypeError("partition topic name cannot be None")
            if not isinstance(tp.topic, str):
                raise TypeError("partition topic name must be string")
            if not tp.topic:
                raise ValueError("partition topic name cannot be empty")
            if tp.partition < 0:
                raise ValueError("partition index must be non-negative")
            if spec is None:
                raise TypeError("OffsetSpec cannot be None")
            if not isinstance(spec, OffsetSpec):
                raise TypeError("Value must be a OffsetSpec")
        if "isolation_level" in kwargs and not isinstance(kwargs["isolation_level"], IsolationLevel):
            raise TypeError("isolation_level argument should be an IsolationLevel")
        out: dict[TopicPartition, concurrent.futures.Future[Any]] = {}
        for tp, spec in topic_partition_offsets.items():
            value = int(spec._value)
            out[make_tp(tp.topic, int(tp.partition), value)] = self._list_offset(tp.topic, int(tp.partition), value)
        return out

    def _list_offset(self, topic: str, partition: int, spec: int) -> concurrent.futures.Future[Any]:  # noqa: PLR0911
        try:
            desc = self._log.describe_topic(topic)
        except (el.UnknownTopicError, el.InvalidTopicError):
            return _failed(ERR_UNKNOWN_TOPIC_OR_PART)
        if not 0 <= partition < len(desc.partitions):
            return _failed(ERR_UNKNOWN_TOPIC_OR_PART)
        part = desc.partitions[partition]
        epoch = part.leader_epoch
        if spec == -2:
            return _future(ListOffsetsResultInfo(part.start_offset, -1, epoch))
        if spec == -1:  # (Kafka's LATEST: the high watermark)
            return _future(ListOffsetsResultInfo(part.high_watermark, -1, epoch))
        best: tuple[int, int] | None = None  # (timestamp, offset)
        for batch in self._log.dump(topic, partition, part.start_offset):
            if spec == -3 and batch.max_timestamp is not None and best is not None \
                    and batch.max_timestamp <= best[0]:
                continue  # (nothing later in it can be the new maximum)
            for rec in batch.records:
                if rec.offset < part.start_offset:
                    continue
                if spec == -3:
                    if best is None or rec.timestamp > best[0]:
                        best = (rec.timestamp, rec.offset)
                elif rec.timestamp >= spec:
                    return _future(ListOffsetsResultInfo(rec.offset, rec.timestamp, epoch))
        if spec == -3 and best is not None:
            return _future(ListOffsetsResultInfo(best[1], best[0], epoch))
        return _future(ListOffsetsResultInfo(-1, -1, epoch))

    # -- consumer groups ---------------------------------------------------------------------------------
    def _describe(self, group: str) -> Any:
        try:
            return self._log.describe_group(group)
        except (el.UnknownGroupError, el.ConfigError):
            return None

    def _state(self, d: Any) -> Any:
        return getattr(ConsumerGroupState, _STATES.get(str(d.state).lower(), "UNKNOWN"))

    def list_groups(self, group: str | None = None, timeout: float = -1) -> list[Any]:
        """Deprecated by confluent-kafka (``list_consumer_groups`` and
        ``describe_consumer_groups`` replace it), kept as it is: ``GroupMetadata`` of
        every group, or of ``group``, with its state, assignor and members (their
        ``metadata`` and ``assignment`` bytes empty)."""
        check_timeout(timeout)
        host, port = broker_address(self._conf.get("bootstrap.servers"))
        out = []
        for name in self._log.groups() if group is None else [group]:
            d = self._describe(name)
            if d is None:
                continue
            gm = GroupMetadata()
            broker = BrokerMetadata()
            broker.id, broker.host, broker.port = BROKER_ID, host, port
            gm.broker, gm.id, gm.error, gm.state = broker, name, None, str(d.state)
            gm.protocol_type, gm.protocol = "consumer", d.protocol if d.members else ""
            for m in d.members:
                member = GroupMember()
                member.id, member.client_id, member.client_host = m.member_id, m.client_id, f"/{host}"
                member.metadata = member.assignment = b""
                gm.members.append(member)
            out.append(gm)
        return out

    def list_consumer_groups(self, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """One future: ``ListConsumerGroupsResult(valid=[ConsumerGroupListing...], errors=[])``;
        ``states=``/``types=`` (sets) filter."""
        self._options(kwargs)
        states = kwargs.get("states")
        types = kwargs.get("types")
        if states is not None and not isinstance(states, set):
            raise TypeError("'states' must be a set")
        if types is not None and not isinstance(types, set):
            raise TypeError("'types' must be a set")
        valid = []
        for group in self._log.groups():
            d = self._describe(group)
            if d is None:
                continue
            state = self._state(d)
            if states and state not in states:
                continue
            if types and ConsumerGroupType.CLASSIC not in types:
                continue
            valid.append(ConsumerGroupListing(group, d.generation == 0 and not d.members, state,
                                              ConsumerGroupType.CLASSIC))
        return _future(ListConsumerGroupsResult(valid, []))

    def describe_consumer_groups(self, group_ids: list[str],
                                 **kwargs: Any) -> dict[str, concurrent.futures.Future[Any]]:
        """Members, their assignments, the assignor and the state of each group (a group
        that does not exist is described as ``DEAD``, as Kafka's classic groups are)."""
        self._options(kwargs)
        if not isinstance(group_ids, list):
            raise TypeError("Expected input to be list of group ids to be described")
        if not group_ids:
            raise ValueError("Expected at least one group to be described")
        out: dict[str, concurrent.futures.Future[Any]] = {}
        host, _ = broker_address(self._conf.get("bootstrap.servers"))
        for group in group_ids:
            d = self._describe(group)
            if d is None:
                out[group] = _future(ConsumerGroupDescription(group, False, [], "", ConsumerGroupState.DEAD,
                                                              self._node()))
                continue
            members = [MemberDescription(m.member_id, m.client_id, f"/{host}",
                                         MemberAssignment([make_tp(tp.topic, tp.partition) for tp in m.partitions]))
                       for m in d.members]
            simple = d.generation == 0 and not d.members
            out[group] = _future(ConsumerGroupDescription(group, simple, members, "" if simple else d.protocol,
                                                          self._state(d), self._node()))
        return out

    def delete_consumer_groups(self, group_ids: list[str],
                               **kwargs: Any) -> dict[str, concurrent.futures.Future[Any]]:
        """Delete groups (they must have no live members); results are ``None``."""
        self._options(kwargs)
        if not isinstance(group_ids, list):
            raise TypeError("Expected input to be list of group ids to be deleted")
        if not group_ids:
            raise ValueError("Expected at least one group to be deleted")
        out: dict[str, concurrent.futures.Future[Any]] = {}
        for group in group_ids:
            try:
                self._log.delete_group(group)
                out[group] = _future()
            except el.UnknownGroupError:
                out[group] = _failed(ERR_GROUP_ID_NOT_FOUND)
            except el.GroupError:
                out[group] = _failed(ERR_NON_EMPTY_GROUP)
        return out

    @staticmethod
    def _one_request(requests: object) -> Any:
        if requests is None:
            raise TypeError("request cannot be None")
        if not isinstance(requests, list):
            raise TypeError("request must be a list")
        if len(requests) != 1:
            raise ValueError("Currently we support listing offsets for a single consumer group only")
        req = requests[0]
        if not isinstance(getattr(req, "group_id", None), str):
            raise TypeError("'group_id' must be a string")
        if not req.group_id:
            raise ValueError("'group_id' cannot be empty")
        tps = req.topic_partitions
        if tps is not None and (not isinstance(tps, list) or not tps):
            raise ValueError("'topic_partitions' cannot be empty")
        return req

    def list_consumer_group_offsets(self, list_consumer_group_offsets_request: list[ConsumerGroupTopicPartitions],
                                    **kwargs: Any) -> dict[str, concurrent.futures.Future[Any]]:
        """Committed offsets of one group: ``ConsumerGroupTopicPartitions(group, [TopicPartition])``
        (all its committed partitions, or the ones asked for, ``OFFSET_INVALID`` where none)."""
        self._options(kwargs)
        req = self._one_request(list_consumer_group_offsets_request)
        try:
            committed = {(tp.topic, tp.partition): om for tp, om in self._log.committed_offsets(req.group_id).items()}
        except (el.UnknownGroupError, el.ConfigError):
            committed = {}
        if req.topic_partitions is None:
            tps = [make_tp(t, p, om.offset, metadata=om.metadata) for (t, p), om in sorted(committed.items())]
        else:
            tps = []
            for x in req.topic_partitions:
                t, p, _ = tp_fields(x)
                om = committed.get((t, p))
                tps.append(make_tp(t, p, OFFSET_INVALID) if om is None else make_tp(t, p, om.offset,
                                                                                     metadata=om.metadata))
        return {req.group_id: _future(ConsumerGroupTopicPartitions(req.group_id, tps))}

    def alter_consumer_group_offsets(self, alter_consumer_group_offsets_request: list[ConsumerGroupTopicPartitions],
                                     **kwargs: Any) -> dict[str, concurrent.futures.Future[Any]]:
        """Set a group's committed offsets (the group must have no live members)."""
        self._options(kwargs)
        req = self._one_request(alter_consumer_group_offsets_request)
        if not req.topic_partitions:
            raise ValueError("'topic_partitions' cannot be null or empty")
        fields = [tp_fields(x) for x in req.topic_partitions]
        for _, p, off in fields:
            if p < 0 or off < 0:
                raise ValueError("Elements of the 'topic_partitions' list must not have negative values")
        d = self._describe(req.group_id)
        if d is not None and d.members:
            return {req.group_id: _failed(ERR_UNKNOWN_MEMBER_ID, f"group {req.group_id!r} has active members")}
        metadata = [getattr(x, "metadata", None) for x in req.topic_partitions]
        offsets = {ETP(t, p): off if meta is None else (off, meta) for (t, p, off), meta in zip(fields, metadata)}
        try:
            self._log._check()
            # (past a partition's end too: Kafka never compares a committed offset with the log)
            self._log._coordinator.commit(validate_group(req.group_id), offsets, None, beyond_end=True,
                                          progress_ok=False)
        except el.EmbedlogError as exc:
            return {req.group_id: _future(error=KafkaException(error_for(exc)))}
        tps = [make_tp(t, p, off, metadata=meta) for (t, p, off), meta in zip(fields, metadata)]
        return {req.group_id: _future(ConsumerGroupTopicPartitions(req.group_id, tps))}

    # -- the rest ------------------------------------------------------------------------------------------
    def poll(self, timeout: float | None = -1) -> int:
        """Nothing to serve: admin results are in the futures already."""
        return 0

    def __len__(self) -> int:
        return 0

    def set_sasl_credentials(self, username: str, password: str) -> None:
        """Accepted and ignored."""

    def __repr__(self) -> str:
        return f"<embedlog.compat.confluent_kafka.admin.AdminClient {self._cluster.name!r}>"

