"""aiokafka's ``aiokafka.admin``: ``AIOKafkaAdminClient``, ``NewTopic``, ``NewPartitions``,
``RecordsToDelete``, ``ConfigResource`` and ``ConfigResourceType`` over an embedded log.

Methods are coroutines with aiokafka 0.14's names, signatures and answers: where the
real client returns the broker's response (``create_topics``, ``delete_topics``,
``create_partitions``, ``describe_configs``, ``alter_configs``,
``describe_consumer_groups``), the shim returns a response of the same class and
version a current broker would give (aiokafka's own ``Response`` class when aiokafka is
installed), with per-item error codes where Kafka reports them and exceptions where
aiokafka raises.  The log has one "broker" (node 0, at the first ``bootstrap_servers``
address).  Differences: asking ``describe_topics`` about a missing topic does not
create it (a broker with auto-creation would).
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ... import errors as el_errors
from ...config import DEFAULTS, TopicConfig
from ...log import Log
from ...model import TopicPartition
from ...storage.topics import validate_name
from .. import _kafka_common as _common
from .. import registry
from .._topic_config import alter_broker_config, broker_config, split_config
from . import errors as Errors
from .producer import DEFAULT_CLIENT_ID, _check_embedlog_kwargs, _check_security
from .structs import OffsetAndMetadata

__all__ = ["AIOKafkaAdminClient", "ConfigResource", "ConfigResourceType", "NewPartitions", "NewTopic",
           "RecordsToDelete"]

_DYNAMIC_TOPIC_CONFIG, _STATIC_BROKER_CONFIG, _DEFAULT_CONFIG = 1, 4, 5  # Kafka's ConfigSource
_NO_OPERATIONS = -(2**31)  # DescribeGroups' authorized_operations when not asked for


class NewTopic(_common.NewTopic):
    """A topic to create: ``num_partitions``/``replication_factor`` (-1: the cluster's default)
    or ``replica_assignments``, and ``topic_configs``."""

    def __init__(self, name: str, num_partitions: int, replication_factor: int,
                 replica_assignments: Mapping[int, list[int]] | None = None,
                 topic_configs: Mapping[str, Any] | None = None) -> None:
        if not ((num_partitions == -1 or replication_factor == -1) ^ (replica_assignments is None)):
            raise Errors.IllegalArgumentError(
                "either num_partitions/replication_factor or replica_assignment must be specified")
        super().__init__(name, num_partitions, replication_factor, replica_assignments, topic_configs)


class NewPartitions(_common.NewPartitions):
    """Grow a topic to ``total_count`` partitions."""


class RecordsToDelete:
    """Delete a partition's records before ``before_offset``."""

    def __init__(self, before_offset: int) -> None:
        self.before_offset = before_offset


class ConfigResourceType(enum.IntEnum):
    """The config resources aiokafka knows."""

    BROKER = 4
    TOPIC = 2


class ConfigResource:
    """A topic or broker whose configs to describe or alter."""

    def __init__(self, resource_type: ConfigResourceType | str, name: str,
                 configs: Mapping[str, Any] | None = None) -> None:
        if not isinstance(resource_type, ConfigResourceType):
            resource_type = ConfigResourceType[str(getattr(resource_type, "name", resource_type)).upper()]
        self.resource_type = resource_type
        self.name = name
        self.configs = configs


# -- responses ---------------------------------------------------------------------------------
# field layout of each response (a name, or (name, nested fields) for an array of structs)
Fields = tuple[Any, ...]
_CREATE_TOPICS: Fields = ("throttle_time_ms", ("topic_errors", ("topic", "error_code", "error_message")))
_DELETE_TOPICS: Fields = ("throttle_time_ms", ("topic_error_codes", ("topic", "error_code")))
_CREATE_PARTITIONS: Fields = _CREATE_TOPICS
_DESCRIBE_GROUPS: Fields = ("throttle_time_ms", ("groups", (
    "error_code", "group", "state", "protocol_type", "protocol",
    ("members", ("member_id", "client_id", "client_host", "member_metadata", "member_assignment")),
    "authorized_operations")))
_DESCRIBE_CONFIGS: Fields = ("throttle_time_ms", ("resources", (
    "error_code", "error_message", "resource_type", "resource_name",
    ("config_entries", ("config_names", "config_value", "read_only", "config_source", "is_sensitive",
                        ("config_synonyms", ("config_name", "config_value", "config_source")))))))
_ALTER_CONFIGS: Fields = ("throttle_time_ms", ("resources", ("error_code", "error_message", "resource_type",
                                                              "resource_name")))
_METADATA: Fields = ("throttle_time_ms", ("brokers", ("node_id", "host", "port", "rack")), "cluster_id",
                     "controller_id", ("topics", ("error_code", "topic", "is_internal", (
                         "partitions", ("error_code", "partition", "leader", "replicas", "isr", "offline_replicas")))))


class Response:
    """A broker response as aiokafka's ``Struct``: fields as attributes (arrays of structs
    as lists of tuples), ``to_object()`` as nested dicts.  Used when aiokafka is not installed."""

    def __init__(self, name: str, fields: Fields, values: Sequence[Any]) -> None:
        self._name = name
        self._fields = fields
        for field, value in zip(fields, values, strict=True):
            setattr(self, field if isinstance(field, str) else field[0], value)

    def to_object(self) -> dict[str, Any]:
        return _to_object(self._fields, [getattr(self, f if isinstance(f, str) else f[0]) for f in self._fields])

    def __repr__(self) -> str:
        args = ", ".join(f"{f if isinstance(f, str) else f[0]}={getattr(self, f if isinstance(f, str) else f[0])!r}"
                         for f in self._fields)
        return f"{self._name}({args})"


def _to_object(fields: Fields, values: Sequence[Any]) -> dict[str, Any]:
    out = {}
    for field, value in zip(fields, values, strict=True):
        if isinstance(field, str):
            out[field] = value
        else:
            out[field[0]] = [_to_object(field[1], item) for item in value]
    return out


def _response(module: str, name: str, fields: Fields, *values: Any) -> Any:
    """aiokafka's response class ``module.name`` with these field values, or a ``Response``."""
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return Response(name, fields, values)
    return cls(*values)


def _admin_response(name: str, fields: Fields, *values: Any) -> Any:
    return _response("aiokafka.protocol.admin", name, fields, *values)


def _member_metadata(topics: Iterable[str]) -> bytes:
    """Kafka's ConsumerProtocolMemberMetadata v0 (version, topics, user data)."""
    names = [t.encode() for t in topics]
    return (struct.pack(">hi", 0, len(names)) + b"".join(struct.pack(">h", len(n)) + n for n in names)
            + struct.pack(">i", -1))


def _member_assignment(partitions: Iterable[TopicPartition]) -> bytes:
    """Kafka's ConsumerProtocolMemberAssignment v0 (version, partitions by topic, user data)."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    out = struct.pack(">hi", 0, len(by_topic))
    for topic, parts in by_topic.items():
        name = topic.encode()
        out += struct.pack(">h", len(name)) + name + struct.pack(f">i{len(parts)}i", len(parts), *sorted(parts))
    return out + struct.pack(">i", -1)


def _config_text(value: object) -> str | None:
    if value is None:
        return None
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class AIOKafkaAdminClient:
    """aiokafka's ``AIOKafkaAdminClient`` over the embedded log its ``bootstrap_servers``
    names (see ``embedlog.compat.registry``)."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None, bootstrap_servers: Any = "localhost",
                 client_id: str = DEFAULT_CLIENT_ID, request_timeout_ms: int = 40000,
                 connections_max_idle_ms: int = 540000, retry_backoff_ms: int = 100,
                 metadata_max_age_ms: int = 300000, security_protocol: str = "PLAINTEXT", ssl_context: Any = None,
                 api_version: Any = None, sasl_mechanism: str = "PLAIN", sasl_plain_username: str | None = None,
                 sasl_plain_password: str | None = None, sasl_kerberos_service_name: str = "kafka",
                 sasl_kerberos_domain_name: str | None = None, sasl_oauth_token_provider: Any = None,
                 **embedlog_options: Any) -> None:
        self._embedlog_config = _check_embedlog_kwargs(embedlog_options, "AIOKafkaAdminClient")
        _check_security(security_protocol, ssl_context, sasl_mechanism, sasl_plain_username, sasl_plain_password)
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._cluster: registry.Cluster | None = None
        self._closed = False

    async def start(self) -> None:
        """Find the embedded log (nothing to connect to)."""
        if self._cluster is None:
            self._cluster = _common.cluster_for(self._bootstrap_servers, self._embedlog_config)

    async def close(self) -> None:
        """Release the client (the log stays open for the other clients)."""
        self._closed = True

    def _log(self) -> Log:
        if self._closed:
            raise Errors.IllegalStateError("AIOKafkaAdminClient is closed")
        if self._cluster is None:
            raise Errors.IllegalStateError("the admin client is not started: await admin.start() first")
        if self._cluster.log.closed:
            raise Errors.IllegalStateError("the embedded log of this admin client was closed")
        return self._cluster.log

    # -- topics --------------------------------------------------------------------------------
    async def create_topics(self, new_topics: list[NewTopic], timeout_ms: int | None = None,
                            validate_only: bool = False) -> Any:
        """Create topics; a ``CreateTopicsResponse_v3`` with an error code per topic
        (36 exists, 37 invalid partitions, 40 invalid config, 17 invalid name)."""
        log = self._log()
        assert self._cluster is not None
        errors = []
        for nt in new_topics:
            partitions = nt.num_partitions
            if partitions == -1:
                partitions = len(nt.replica_assignments) or self._cluster.num_partitions
            code, message = 0, None
            honoured, problem = split_config(nt.topic_configs)
            try:
                if problem:
                    code, message = 40, problem
                elif partitions < 1:
                    code, message = 37, "Number of partitions must be larger than 0."
                elif nt.name in log.topics():
                    code, message = 36, f"Topic '{nt.name}' already exists."
                elif validate_only:
                    TopicConfig.from_overrides(honoured)  # what creating it would check
                else:
                    log.create_topic(nt.name, partitions=partitions, config={k: str(v) for k, v in honoured.items()})
            except el_errors.TopicExistsError:
                code, message = 36, f"Topic '{nt.name}' already exists."
            except el_errors.InvalidTopicError as exc:
                code, message = 17, str(exc)
            except el_errors.ConfigError as exc:
                code, message = 40, str(exc)
            errors.append((nt.name, code, message))
        return _admin_response("CreateTopicsResponse_v3", _CREATE_TOPICS, 0, errors)

    async def delete_topics(self, topics: list[str], timeout_ms: int | None = None) -> Any:
        """Delete topics (with their records and committed offsets); a
        ``DeleteTopicsResponse_v3`` with an error code per topic (3: no such topic)."""
        log = self._log()
        codes = []
        for name in topics:
            try:
                log.delete_topic(name)
                codes.append((name, 0))
            except (el_errors.UnknownTopicError, el_errors.InvalidTopicError):
                codes.append((name, 3))
        return _admin_response("DeleteTopicsResponse_v3", _DELETE_TOPICS, 0, codes)

    def _metadata(self, topics: list[str] | None) -> Any:
        log = self._log()
        host, port = registry.broker_address(self._bootstrap_servers)
        entries: list[tuple[Any, ...]] = []
        for name in log.topics() if topics is None else topics:
            try:
                desc = log.describe_topic(name)
            except (el_errors.UnknownTopicError, el_errors.InvalidTopicError):
                entries.append((3, name, False, []))
                continue
            entries.append((0, name, False, [(0, p.partition, 0, [0], [0], []) for p in desc.partitions]))
        return _response("aiokafka.protocol.metadata", "MetadataResponse_v5", _METADATA, 0,
                         [(0, host, port, None)], registry.cluster_id(log), 0, entries)

    async def list_topics(self) -> list[str]:
        """Names of every topic."""
        return [t["topic"] for t in self._metadata(None).to_object()["topics"]]

    async def describe_topics(self, topics: list[str] | None = None) -> list[Any]:
        """Metadata of the given (default: all) topics, one dict each (error code 3 for a
        missing one)."""
        topics_: list[dict[str, Any]] = self._metadata(topics).to_object()["topics"]
        return topics_

    async def describe_cluster(self) -> dict[str, Any]:
        """The cluster's brokers (one), id and controller."""
        obj: dict[str, Any] = self._metadata(None).to_object()
        obj.pop("topics")
        return obj

    async def create_partitions(self, topic_partitions: dict[str, NewPartitions], timeout_ms: int | None = None,
                                validate_only: bool = False) -> Any:
        """Grow topics to ``NewPartitions.total_count``; raises the error of the first topic
        that cannot grow (as aiokafka does), else a ``CreatePartitionsResponse_v1``."""
        log = self._log()
        results = []
        for name, spec in topic_partitions.items():
            code, message = 0, None
            try:
                current = len(log.describe_topic(name).partitions)
                if spec.total_count <= current:
                    code, message = 37, (f"Topic currently has {current} partitions, which is higher than the "
                                         f"requested {spec.total_count}.")
                elif not validate_only:
                    log.create_partitions(name, spec.total_count)
            except (el_errors.UnknownTopicError, el_errors.InvalidTopicError):
                code, message = 3, f"The topic '{name}' does not exist."
            except el_errors.ConfigError as exc:
                code, message = 37, str(exc)
            results.append((name, code, message))
        for topic, code, message in results:
            if code:
                raise Errors.for_code(code)(f"Could not create partitions for {topic}: {message}")
        return _admin_response("CreatePartitionsResponse_v1", _CREATE_PARTITIONS, 0, results)

    async def delete_records(self, records_to_delete: dict[TopicPartition, RecordsToDelete],
                             timeout_ms: int | None = None) -> dict[TopicPartition, int]:
        """Delete records before each ``before_offset`` (-1: all); the new low watermarks."""
        log = self._log()
        out: dict[TopicPartition, int] = {}
        for key, records in records_to_delete.items():
            tp = _common.as_tp(key)
            try:
                out[tp] = log.delete_records(tp.topic, tp.partition, records.before_offset)
            except el_errors.EmbedlogError as exc:
                raise _common.translate(exc, Errors, aliases=Errors.ALIASES) from exc
        return out

    # -- configs ---------------------------------------------------------------------------------
    async def describe_configs(self, config_resources: list[ConfigResource],
                               include_synonyms: bool = False) -> list[Any]:
        """One ``DescribeConfigsResponse_v2`` for the broker resources, one for the topics
        (keys in ``ConfigResource.configs`` filter the answer)."""
        log = self._log()
        assert self._cluster is not None
        brokers: list[tuple[Any, ...]] = []
        topics: list[tuple[Any, ...]] = []
        for res in config_resources:
            wanted = set(res.configs) if res.configs else None
            if res.resource_type == ConfigResourceType.BROKER:
                values = broker_config(self._cluster, 0)
                entries: list[tuple[Any, ...]] = [(k, _config_text(v), False, _STATIC_BROKER_CONFIG, False, [])
                           for k, v in values.items() if wanted is None or k in wanted]
                brokers.append((0, None, int(res.resource_type), res.name, entries))
                continue
            try:
                meta = log._store.topic(validate_name(res.name))  # (None: unknown)
            except el_errors.InvalidTopicError:
                meta = None
            if meta is None:
                topics.append((3, f"Topic '{res.name}' does not exist.", int(res.resource_type), res.name, []))
                continue
            overrides = meta.config.overrides  # (a value set on the topic is dynamic, even the default's)
            entries = [(k, _config_text(v), False, _DYNAMIC_TOPIC_CONFIG if k in overrides else _DEFAULT_CONFIG,
                        False, []) for k, v in meta.config.to_dict().items() if wanted is None or k in wanted]
            topics.append((0, None, int(res.resource_type), res.name, entries))
        return [_admin_response("DescribeConfigsResponse_v2", _DESCRIBE_CONFIGS, 0, resources)
                for resources in (brokers, topics) if resources]

    async def alter_configs(self, config_resources: list[ConfigResource]) -> list[Any]:
        """Replace resources' configs (topic keys not given revert to their defaults); an
        ``AlterConfigsResponse_v1`` for the topics, then one for the broker resources."""
        log = self._log()
        assert self._cluster is not None
        brokers, topics = [], []
        for res in config_resources:
            changes = dict(res.configs or {})
            if res.resource_type == ConfigResourceType.BROKER:
                brokers.append(self._alter_broker(res, changes))
                continue
            code, message = 0, None
            honoured, problem = split_config(changes)
            try:
                if problem:
                    code, message = 40, problem
                else:
                    log.alter_topic_config(res.name, {k: honoured.get(k) for k in DEFAULTS})  # None: the default
            except (el_errors.UnknownTopicError, el_errors.InvalidTopicError):
                code, message = 3, f"Topic '{res.name}' does not exist."
            except el_errors.ConfigError as exc:
                code, message = 40, str(exc)
            topics.append((code, message, int(res.resource_type), res.name))
        out = [_admin_response("AlterConfigsResponse_v1", _ALTER_CONFIGS, 0, topics)]
        out += [_admin_response("AlterConfigsResponse_v1", _ALTER_CONFIGS, 0, [b]) for b in brokers]
        return out

    def _alter_broker(self, res: ConfigResource, changes: dict[str, Any]) -> tuple[int, str | None, int, str]:
        assert self._cluster is not None
        problem = alter_broker_config(self._cluster, changes)
        return (0 if problem is None else 40), problem, int(res.resource_type), res.name

    # -- consumer groups -------------------------------------------------------------------------
    async def find_coordinator(self, group_id: str, coordinator_type: int = 0) -> int:
        """The coordinator's node id (the one broker: 0)."""
        self._log()
        return 0

    async def list_consumer_groups(self, broker_ids: list[int] | None = None) -> list[tuple[Any, ...]]:
        """Every consumer group: ``[(group_id, protocol_type)]``."""
        return [(g, "consumer") for g in self._log().groups()]

    async def describe_consumer_groups(self, group_ids: list[str], group_coordinator_id: int | None = None,
                                       include_authorized_operations: bool = False) -> list[Any]:
        """One ``DescribeGroupsResponse_v3`` (one coordinator) describing each group; a
        group that does not exist is ``Dead`` with no members."""
        log = self._log()
        groups: list[tuple[Any, ...]] = []
        for g in dict.fromkeys(group_ids):
            try:
                d = log.describe_group(g)
            except (el_errors.UnknownGroupError, el_errors.ConfigError):
                groups.append((0, g, "Dead", "", "", [], _NO_OPERATIONS))
                continue
            members = [(m.member_id, m.client_id, "/127.0.0.1", _member_metadata(m.topics),
                        _member_assignment(m.partitions)) for m in d.members]
            groups.append((0, g, d.state, "consumer", d.protocol if d.members else "", members, _NO_OPERATIONS))
        return [_admin_response("DescribeGroupsResponse_v3", _DESCRIBE_GROUPS, 0, groups)]

    async def list_consumer_group_offsets(self, group_id: str, group_coordinator_id: int | None = None,
                                          partitions: list[TopicPartition] | None = None,
                                          ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The group's committed offsets (of ``partitions``: -1 where none; default: every
        committed one)."""
        log = self._log()
        try:
            committed = {(tp.topic, tp.partition): om for tp, om in log.committed_offsets(group_id).items()}
        except (el_errors.UnknownGroupError, el_errors.ConfigError):
            committed = {}
        if partitions:
            out = {}
            for topic, partition in partitions:
                om = committed.get((topic, partition))
                out[TopicPartition(topic, partition)] = (OffsetAndMetadata(-1, "") if om is None
                                                         else OffsetAndMetadata(om.offset, om.metadata))
            return out
        return {TopicPartition(t, p): OffsetAndMetadata(om.offset, om.metadata)
                for (t, p), om in sorted(committed.items())}
