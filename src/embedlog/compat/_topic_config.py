"""Kafka topic (and broker) config keys as the shims' admin clients take them.

Keys embedlog implements (``embedlog.config.DEFAULTS``) are applied; Kafka's other topic
keys are accepted and ignored (an embedded log has no segments, replicas or remote
storage); any other key is refused, as a broker refuses it.  The one "broker"'s config
is its cluster's defaults (``embedlog.compat.registry.Cluster``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config import DEFAULTS

if TYPE_CHECKING:
    from .registry import Cluster

__all__ = ["BROKER_KEYS", "KAFKA_TOPIC_KEYS", "alter_broker_config", "broker_config", "split_config"]

#: Kafka topic config keys embedlog does not implement: accepted, ignored
KAFKA_TOPIC_KEYS = frozenset({
    "compression.type", "file.delete.delay.ms", "flush.messages", "flush.ms",
    "follower.replication.throttled.replicas", "index.interval.bytes", "leader.replication.throttled.replicas",
    "local.retention.bytes", "local.retention.ms", "max.compaction.lag.ms", "message.downconversion.enable",
    "message.format.version", "message.timestamp.after.max.ms", "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms", "min.cleanable.dirty.ratio", "preallocate", "remote.storage.enable",
    "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms", "unclean.leader.election.enable",
    "remote.log.copy.disable", "remote.log.delete.on.disable",
})


def split_config(config: Mapping[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """Keys embedlog applies, or an error message for an unknown key."""
    honoured: dict[str, Any] = {}
    for key, value in (config or {}).items():
        if key in DEFAULTS:
            honoured[key] = value
        elif key not in KAFKA_TOPIC_KEYS:
            return {}, f"Unknown topic config name: {key}"
    return honoured, None


#: the broker config keys admin clients describe and may alter (the last two cannot change)
BROKER_KEYS = ("num.partitions", "auto.create.topics.enable", "default.replication.factor", "broker.id")


def broker_config(cluster: Cluster, broker_id: int) -> dict[str, object]:
    """The broker config of ``cluster``, keyed as ``BROKER_KEYS``."""
    return {"num.partitions": cluster.num_partitions, "auto.create.topics.enable": cluster.auto_create_topics,
            "default.replication.factor": 1, "broker.id": broker_id}


def alter_broker_config(cluster: Cluster, changes: Mapping[str, Any], *, validate_only: bool = False) -> str | None:
    """Apply broker config ``changes`` (``None``: back to the default) to ``cluster``, or
    return the error message for a key that cannot be altered (then nothing changes)."""
    for key in changes:
        if key not in BROKER_KEYS:
            return f"Unknown or read-only broker config: {key}"
    if validate_only:
        return None
    if "num.partitions" in changes:
        value = changes["num.partitions"]
        cluster.num_partitions = 1 if value is None else int(value)
    if "auto.create.topics.enable" in changes:
        value = changes["auto.create.topics.enable"]
        cluster.auto_create_topics = value is None or str(value).lower() in ("true", "1")
    return None
