"""Kafka topic config keys as the shims' admin clients take them.

Keys embedlog implements (``embedlog.config.DEFAULTS``) are applied; Kafka's other topic
keys are accepted and ignored (an embedded log has no segments, replicas or remote
storage); any other key is refused, as a broker refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import DEFAULTS

__all__ = ["KAFKA_TOPIC_KEYS", "split_config"]

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
