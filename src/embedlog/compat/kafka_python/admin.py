"""kafka-python's ``KafkaAdminClient`` (and ``NewTopic``, ``NewPartitions``, ``ConfigResource``).

Topics, partitions, topic configs, groups and their offsets map onto the embedded
log's own administration.  Answers have kafka-python 3.0's shapes (plain dicts of the
response fields); kafka-python 2.0's method names (``list_consumer_groups``,
``list_consumer_group_offsets``, ``delete_consumer_groups``, ``describe_consumer_groups``)
are there too.  Objects of the real ``kafka.admin`` classes are accepted as well.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ... import errors as el_errors
from ...groups.coordinator import validate_group
from ...model import TopicPartition
from .. import _kafka_common as _common
from . import errors as Errors
from .structs import OffsetAndMetadata

__all__ = ["ConfigResource", "ConfigResourceType", "KafkaAdminClient", "NewPartitions", "NewTopic"]

DEFAULT_CONFIG: dict[str, Any] = {
    "bootstrap_servers": "localhost", "client_id": "kafka-python-3.0.12", "request_timeout_ms": 30000,
    "connections_max_idle_ms": 540000, "reconnect_backoff_ms": 50, "reconnect_backoff_max_ms": 30000,
    "max_in_flight_requests_per_connection": 5, "receive_buffer_bytes": None, "send_buffer_bytes": None,
    "receive_message_max_bytes": 100_000_000, "socket_options": None, "retry_backoff_ms": 100,
    "metadata_max_age_ms": 300000, "security_protocol": "PLAINTEXT", "ssl_context": None,
    "ssl_check_hostname": True, "ssl_cafile": None, "ssl_certfile": None, "ssl_keyfile": None,
    "ssl_password": None, "ssl_crlfile": None, "api_version": None, "bootstrap_timeout_ms": 30000,
    "client_dns_lookup": "use_all_dns_ips", "selector": None, "sasl_mechanism": None,
    "sasl_plain_username": None, "sasl_plain_password": None, "sasl_kerberos_name": None,
    "sasl_kerberos_service_name": "kafka", "sasl_kerberos_domain_name": None, "sasl_oauth_token_provider": None,
    "proxy_url": None, "socks5_proxy": None, "metric_reporters": [], "metrics_num_samples": 2,
    "metrics_sample_window_ms": 30000, "kafka_client": None,
    "api_version_auto_timeout_ms": 2000, "metric_group_prefix": "admin",  # kafka-python 2.0
}


class ConfigResourceType(enum.IntEnum):
    """Kafka's config resource types."""

    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    GROUP = 32


class NewTopic(_common.NewTopic):
    """A topic to create: ``num_partitions`` -1 takes the cluster default."""


class NewPartitions(_common.NewPartitions):
    """Grow a topic to ``total_count`` partitions."""


class ConfigResource:
    """A topic (or broker) whose configs to describe or alter."""

    def __init__(self, resource_type: ConfigResourceType | str | int, name: str,
                 configs: Mapping[str, Any] | None = None) -> None:
        self.resource_type = _resource_type(resource_type)
        self.name = name
        self.configs = configs


def _attempt(action: Callable[..., object], *args: Any) -> BaseException | None:
    """What ``action(*args)`` raised, as a kafka-python error (``None``: it succeeded)."""
    try:
        action(*args)
    except el_errors.EmbedlogError as exc:
        return _common.translate(exc, Errors)
    except Errors.KafkaError as exc:
        return exc
    return None


def _resource_type(value: object) -> ConfigResourceType:
    name = getattr(value, "name", value)
    if isinstance(name, str):
        try:
            return ConfigResourceType[name.upper()]
        except KeyError:
            raise ValueError(f"unknown config resource type {value!r}") from None
    return ConfigResourceType(int(name))  # type: ignore[call-overload]


class KafkaAdminClient:
    """kafka-python's ``KafkaAdminClient(**configs)`` over the embedded log its
    ``bootstrap_servers`` names."""

    DEFAULT_CONFIG = DEFAULT_CONFIG

    def __init__(self, **configs: Any) -> None:
        embedlog_config = _common.split_embedlog(configs)
        extra = set(configs) - set(DEFAULT_CONFIG)
        if extra:
            raise Errors.KafkaConfigurationError(f"Unrecognized configs: {extra}")
        self.config = {**DEFAULT_CONFIG, **configs}
        self._cluster = _common.cluster_for(self.config["bootstrap_servers"], embedlog_config)
        self._log = self._cluster.log
        self._closed = False

    def _check(self) -> None:
        if self._closed or self._log.closed:
            raise Errors.IllegalStateError("KafkaAdminClient is closed")

    # -- topics ------------------------------------------------------------------------------
    def create_topics(self, new_topics: Iterable[Any] | Mapping[str, Any], timeout_ms: int | None = None,
                      validate_only: bool = False, raise_errors: bool = True,
                      wait_for_metadata: bool = False) -> dict[str, Any]:
        """Create topics; raises ``TopicAlreadyExistsError``, ``InvalidPartitionsError``,
        ``InvalidConfigurationError`` or ``InvalidTopicError`` (or, with ``raise_errors=False``,
        reports the error code per topic).  Replication factors are accepted and ignored."""
        self._check()
        specs: list[tuple[str, int, dict[str, Any]]] = []
        if isinstance(new_topics, Mapping):
            for name, spec in new_topics.items():
                specs.append((name, int(spec.get("num_partitions", -1)), dict(spec.get("configs") or {})))
        else:
            for t in new_topics:
                topic: Any = t
                if isinstance(topic, str):  # (kafka-python 3: a list of names, default partitions)
                    specs.append((topic, -1, {}))
                    continue
                specs.append((topic.name, int(getattr(topic, "num_partitions", -1)),
                              dict(getattr(topic, "topic_configs", None) or {})))
        results = []
        first_error: BaseException | None = None
        for name, partitions, configs in specs:
            n = self._cluster.num_partitions if partitions == -1 else partitions
            error = _attempt(self._create_topic, name, n, configs, validate_only)
            first_error = first_error or error
            results.append({"name": name, "error_code": getattr(error, "errno", 0) if error else 0,
                            "error_message": str(error) if error else None, "num_partitions": n,
                            "replication_factor": 1})
        if first_error is not None and raise_errors:
            raise first_error
        return {"topics": results}  # (kafka-python 3 drops throttle_time_ms)

    def _create_topic(self, name: str, partitions: int, configs: dict[str, Any], validate_only: bool) -> None:
        if partitions < 1:
            raise Errors.InvalidPartitionsError(f"Number of partitions must be larger than 0, got {partitions}")
        if validate_only:
            if name in self._log.topics():
                raise el_errors.TopicExistsError(f"Topic '{name}' already exists.")
        else:
            self._log.create_topic(name, partitions=partitions, config={k: str(v) for k, v in configs.items()})

    def delete_topics(self, topics: Iterable[str], timeout_ms: int | None = None,
                      raise_errors: bool = True) -> dict[str, Any]:
        """Delete topics with their records and committed offsets."""
        self._check()
        results = []
        first_error: BaseException | None = None
        for name in topics:
            error = _attempt(self._delete_topic, name)
            first_error = first_error or error
            results.append({"name": name, "error_code": getattr(error, "errno", 0) if error else 0})
        if first_error is not None and raise_errors:
            raise first_error
        return {"topics": results}  # (kafka-python 3: "responses" renamed, throttle_time_ms dropped)

    def _delete_topic(self, name: str) -> None:
        if name not in self._log.topics():
            raise Errors.UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
        self._log.delete_topic(name)

    def list_topics(self) -> list[str]:
        """Names of every topic."""
        self._check()
        return self._log.topics()

    def describe_topics(self, topics: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Metadata of the given (default: all) topics, one dict each, as the Metadata response."""
        self._check()
        out = []
        for name in self._log.topics() if topics is None else topics:
            try:
                desc = self._log.describe_topic(name)
            except el_errors.UnknownTopicError:
                out.append({"error_code": 3, "name": name, "is_internal": False, "partitions": []})
                continue
            parts = [{"error_code": 0, "partition_index": p.partition, "leader_id": 0,
                      "leader_epoch": p.leader_epoch, "replica_nodes": [0], "isr_nodes": [0],
                      "offline_replicas": []} for p in desc.partitions]
            out.append({"error_code": 0, "name": name, "is_internal": False, "partitions": parts})
        return out

    def create_partitions(self, topic_partitions: Mapping[str, Any] | Iterable[tuple[str, Any]],
                          timeout_ms: int | None = None, validate_only: bool = False,
                          raise_errors: bool = True) -> dict[str, Any]:
        """Grow topics: ``{topic: NewPartitions(total_count)}``."""
        self._check()
        items = topic_partitions.items() if isinstance(topic_partitions, Mapping) else topic_partitions
        results = []
        first_error: BaseException | None = None
        for name, given in items:
            # an int, {"count": n, "assignments": [...]} (kafka-python 3), or NewPartitions
            spec: Any = given["count"] if isinstance(given, Mapping) else given
            total = int(spec.total_count if hasattr(spec, "total_count") else spec)
            error = _attempt(self._create_partitions, name, total, validate_only)
            first_error = first_error or error
            results.append({"name": name, "error_code": getattr(error, "errno", 0) if error else 0,
                            "error_message": str(error) if error else None})
        if first_error is not None and raise_errors:
            raise first_error
        return {"throttle_time_ms": 0, "results": results}

    def _create_partitions(self, name: str, total: int, validate_only: bool) -> None:
        current = len(self._log.describe_topic(name).partitions)
        if total <= current:
            raise Errors.InvalidPartitionsError(
                f"Topic currently has {current} partitions, which is higher than the requested {total}.")
        if not validate_only:
            self._log.create_partitions(name, total)

    def delete_records(self, records_to_delete: Mapping[Any, int], timeout_ms: int | None = None,
                       partition_leader_id: int | None = None) -> dict[TopicPartition, dict[str, Any]]:
        """Delete records before the given offsets (-1: all); returns the new low watermarks."""
        self._check()
        out = {}
        for key, offset in records_to_delete.items():
            tp = _common.as_tp(key)
            try:
                low = self._log.delete_records(tp.topic, tp.partition, int(getattr(offset, "offset", offset)))
            except el_errors.EmbedlogError as exc:
                raise _common.translate(exc, Errors) from exc
            out[tp] = {"low_watermark": low, "error_code": 0}
        return out

    # -- configs -----------------------------------------------------------------------------
    def describe_configs(self, config_resources: Iterable[Any], include_synonyms: bool = False,
                         config_filter: str = "modified") -> dict[str, dict[str, dict[str, Any]]]:
        """``{"TOPIC": {name: {key: {"value": ..., ...}}}}`` for topic resources."""
        self._check()
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for res in config_resources:
            rtype = _resource_type(res.resource_type)
            if rtype is not ConfigResourceType.TOPIC:
                out.setdefault(str(rtype.name), {})[res.name] = {}
                continue
            try:
                desc = self._log.describe_topic(res.name)
            except el_errors.EmbedlogError as exc:
                raise _common.translate(exc, Errors) from exc
            wanted = set(res.configs) if res.configs else None
            entries = {k: {"name": k, "value": None if v is None else str(v), "read_only": False,
                           "is_sensitive": False}
                       for k, v in desc.config.items() if wanted is None or k in wanted}
            out.setdefault("TOPIC", {})[res.name] = entries
        return out

    def alter_configs(self, config_resources: Iterable[Any], validate_only: bool = False,
                      raise_on_unknown: bool = True, incremental: bool | None = None) -> dict[str, dict[str, Any]]:
        """Set topic configs (``ConfigResource(TOPIC, name, configs={...})``)."""
        self._check()
        out: dict[str, dict[str, Any]] = {}
        for res in config_resources:
            rtype = _resource_type(res.resource_type)
            if rtype is not ConfigResourceType.TOPIC:
                raise Errors.InvalidRequestError(f"embedlog has no {rtype!s} configs to alter")
            try:
                if not validate_only:
                    self._log.alter_topic_config(res.name, dict(res.configs or {}))
            except el_errors.EmbedlogError as exc:
                raise _common.translate(exc, Errors) from exc
            out.setdefault("TOPIC", {})[res.name] = None
        return out

    # -- groups ------------------------------------------------------------------------------
    def list_groups(self, broker_ids: Any = None, states_filter: Any = None,
                    types_filter: Any = None) -> list[dict[str, Any]]:
        """Every consumer group: ``[{"group_id", "protocol_type", "group_state"}]``."""
        self._check()
        out = []
        for g in self._log.groups():
            state = self._log.describe_group(g).state
            if states_filter and state not in states_filter:
                continue
            out.append({"group_id": g, "protocol_type": "consumer", "group_state": state, "group_type": "classic"})
        return out

    def list_consumer_groups(self, broker_ids: Any = None, states_filter: Any = None) -> list[tuple[str, str]]:
        """kafka-python 2.0's ``[(group_id, protocol_type)]``."""
        return [(g["group_id"], g["protocol_type"]) for g in self.list_groups(states_filter=states_filter)]

    def describe_groups(self, group_ids: Iterable[str], group_coordinator_id: Any = None,
                        include_authorized_operations: bool = False) -> dict[str, dict[str, Any]]:
        """``{group_id: {"group_state", "protocol", "members": [...]}}``."""
        self._check()
        out = {}
        for g in group_ids:
            try:
                d = self._log.describe_group(g)
            except el_errors.UnknownGroupError:
                out[g] = {"error_code": 0, "group_id": g, "group_state": "Dead", "protocol_type": "",
                          "protocol_data": "", "members": []}
                continue
            members = [{"member_id": m.member_id, "client_id": m.client_id, "client_host": "/127.0.0.1",
                        "member_assignment": {"assignment": [TopicPartition(*tp) for tp in m.partitions]}}
                       for m in d.members]
            out[g] = {"error_code": 0, "group_id": g, "group_state": d.state, "protocol_type": "consumer",
                      "protocol_data": d.protocol, "members": members}
        return out

    def describe_consumer_groups(self, group_ids: Iterable[str], group_coordinator_id: Any = None,
                                 include_authorized_operations: bool = False) -> list[dict[str, Any]]:
        """kafka-python 2.0's name: a list of the ``describe_groups`` entries."""
        return list(self.describe_groups(group_ids).values())

    def list_group_offsets(self, group_specs: Mapping[str, Any] | Iterable[str]
                           ) -> dict[str, dict[TopicPartition, OffsetAndMetadata]]:
        """``{group_id: {TopicPartition: OffsetAndMetadata}}`` (specs: one group id, group
        ids, or ``{group_id: [partitions] or None}``)."""
        self._check()
        if isinstance(group_specs, str):  # (one group: as kafka-python 3 takes it)
            group_specs = [group_specs]
        specs = group_specs if isinstance(group_specs, Mapping) else dict.fromkeys(group_specs)
        return {g: self.list_consumer_group_offsets(g, parts) for g, parts in specs.items()}

    def list_consumer_group_offsets(self, group_id: str, group_coordinator_id: Any = None,
                                    partitions: Iterable[Any] | None = None
                                    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """kafka-python 2.0's ``{TopicPartition: OffsetAndMetadata}`` of one group."""
        self._check()
        if partitions is None and group_coordinator_id is not None and not isinstance(group_coordinator_id, int):
            partitions = group_coordinator_id  # list_group_offsets passes partitions positionally
        try:
            committed = self._log.committed_offsets(group_id)
        except el_errors.UnknownGroupError:
            return {}
        wanted = None if partitions is None else {_common.as_tp(p) for p in partitions}
        return {TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(om.offset, om.metadata, -1)
                for tp, om in sorted(committed.items()) if wanted is None or tp in wanted}

    def alter_group_offsets(self, group_id: str, offsets: Mapping[Any, Any],
                            group_coordinator_id: Any = None) -> dict[TopicPartition, Any]:
        """Commit offsets for a group by name (its members must be gone, as in Kafka)."""
        self._check()
        todo: dict[Any, Any] = {}
        for tp, v in offsets.items():
            meta = getattr(v, "metadata", None)
            todo[_common.as_tp(tp)] = int(getattr(v, "offset", v)) if not meta else (int(v.offset), meta)
        try:
            if self._live_members(group_id):
                raise Errors.UnknownMemberIdError(f"group {group_id!r} has active members")
            self._log._check()
            # (past a partition's end too: Kafka never compares a committed offset with the log)
            self._log._coordinator.commit(validate_group(group_id), todo, None, beyond_end=True, progress_ok=False)
        except el_errors.EmbedlogError as exc:
            raise _common.translate(exc, Errors) from exc
        return dict.fromkeys(todo)

    def _live_members(self, group_id: str) -> int:
        try:
            return len(self._log.describe_group(group_id).members)
        except el_errors.UnknownGroupError:
            return 0

    def delete_groups(self, group_ids: Iterable[str], group_coordinator_id: Any = None) -> list[tuple[str, Any]]:
        """Delete groups; ``[(group_id, error or None)]``."""
        self._check()
        out: list[tuple[str, Any]] = []
        for g in group_ids:
            try:
                self._log.delete_group(g)
                out.append((g, None))
            except el_errors.EmbedlogError as exc:
                out.append((g, _common.translate(exc, Errors)))
        return out

    delete_consumer_groups = delete_groups

    def describe_cluster(self) -> dict[str, Any]:
        """One broker (the embedded log)."""
        self._check()
        return {"cluster_id": "embedlog", "controller_id": 0,
                "brokers": [{"node_id": 0, "host": "embedlog", "port": 0, "rack": None}]}

    def close(self) -> None:
        """Release the client (the log stays open for the other clients)."""
        self._closed = True

    def __enter__(self) -> KafkaAdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
