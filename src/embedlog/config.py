"""Topic configuration with Kafka's keys, parsed and validated once.

A topic stores only the keys that were set (its *overrides*), as Kafka does; the
effective configuration is the defaults below plus those overrides.  Values may be
given as ``int`` or as the strings Kafka's admin tools use (``"604800000"``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import ConfigError

__all__ = ["DEFAULTS", "TopicConfig", "validate_overrides"]

_INT = re.compile(r"^[-+]?[0-9]+$")

_CLEANUP_POLICIES = {
    "delete": frozenset({"delete"}),
    "compact": frozenset({"compact"}),
    "compact,delete": frozenset({"compact", "delete"}),
    "delete,compact": frozenset({"compact", "delete"}),
}
_TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")

#: Kafka's broker defaults for the topic keys embedlog honours.
DEFAULTS: dict[str, Any] = {
    "retention.ms": 604_800_000,
    "retention.bytes": -1,
    "cleanup.policy": "delete",
    "delete.retention.ms": 86_400_000,
    "min.compaction.lag.ms": 0,
    "max.message.bytes": 1_048_588,
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": 1,
}


INT32_MAX = 2**31 - 1  # Kafka's int options (ms, sizes) are Java ints


def check_int(name: str, value: object, low: int = 1, high: int = INT32_MAX) -> int:
    """A client option: ``value`` if it is an int (not a bool) in ``low..high``; ``ConfigError`` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be an int in {low}..{high}, got {value!r}")
    return value


def check_callable(name: str, value: object) -> None:
    """A client option: ``ConfigError`` unless ``value`` is callable or None."""
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be a function (or None), got {value!r}")


def _int_in(low: int, high: int = 2**63 - 1) -> Callable[[str, object], int]:
    def parse(key: str, value: object) -> int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        if isinstance(value, str):
            if not _INT.match(value.strip()):
                raise ConfigError(f"{key} must be an integer, got {value!r}")
            value = int(value.strip())
        if not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {type(value).__name__} {value!r}")
        if not low <= value <= high:
            raise ConfigError(f"{key} must be between {low} and {high}, got {value}")
        return value

    return parse


def _choice(choices: tuple[str, ...]) -> Callable[[str, object], str]:
    def parse(key: str, value: object) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
        normal = value.replace(" ", "")
        if normal not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
        return normal

    return parse


_PARSERS: dict[str, Callable[[str, object], Any]] = {
    "retention.ms": _int_in(-1),
    "retention.bytes": _int_in(-1),
    "cleanup.policy": _choice(tuple(_CLEANUP_POLICIES)),
    "delete.retention.ms": _int_in(0),
    "min.compaction.lag.ms": _int_in(0),
    "max.message.bytes": _int_in(0, INT32_MAX),
    "message.timestamp.type": _choice(_TIMESTAMP_TYPES),
    "min.insync.replicas": _int_in(1, INT32_MAX),
}


def validate_overrides(config: Mapping[str, object] | None) -> dict[str, Any]:
    """Parse a mapping of Kafka topic keys; raise ``ConfigError`` on any bad key or value."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise ConfigError(f"topic config must be a mapping of Kafka keys, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for key, value in config.items():
        parser = _PARSERS.get(key)
        if parser is None:
            raise ConfigError(
                f"unknown topic config key {key!r}; embedlog accepts: {', '.join(sorted(_PARSERS))}"
            )
        out[key] = parser(key, value)
    return out


@attrs.frozen
class TopicConfig:
    """The effective configuration of a topic (defaults plus overrides)."""

    overrides: dict[str, Any] = attrs.field(factory=dict)
    retention_ms: int = DEFAULTS["retention.ms"]
    retention_bytes: int = DEFAULTS["retention.bytes"]
    cleanup_policy: frozenset[str] = frozenset({"delete"})
    delete_retention_ms: int = DEFAULTS["delete.retention.ms"]
    min_compaction_lag_ms: int = DEFAULTS["min.compaction.lag.ms"]
    max_message_bytes: int = DEFAULTS["max.message.bytes"]
    log_append_time: bool = False
    min_insync_replicas: int = DEFAULTS["min.insync.replicas"]

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, object] | None = None) -> TopicConfig:
        """Build the effective config from (already validated or raw) overrides."""
        parsed = validate_overrides(overrides)
        eff = {**DEFAULTS, **parsed}
        return cls(
            overrides=parsed,
            retention_ms=eff["retention.ms"],
            retention_bytes=eff["retention.bytes"],
            cleanup_policy=_CLEANUP_POLICIES[eff["cleanup.policy"]],
            delete_retention_ms=eff["delete.retention.ms"],
            min_compaction_lag_ms=eff["min.compaction.lag.ms"],
            max_message_bytes=eff["max.message.bytes"],
            log_append_time=eff["message.timestamp.type"] == "LogAppendTime",
            min_insync_replicas=eff["min.insync.replicas"],
        )

    @property
    def compact(self) -> bool:
        """Whether ``cleanup.policy`` includes ``compact``."""
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        """Whether ``cleanup.policy`` includes ``delete``."""
        return "delete" in self.cleanup_policy

    def to_dict(self) -> dict[str, Any]:
        """The effective config as Kafka keys."""
        return {**DEFAULTS, **self.overrides}

    def altered(self, changes: Mapping[str, object]) -> TopicConfig:
        """A new config with ``changes`` applied on top of this one's overrides.

        A value of ``None`` removes an override (back to the default), as
        Kafka's ``--delete-config`` does.
        """
        overrides = dict(self.overrides)
        removals = [k for k, v in changes.items() if v is None]
        parsed = validate_overrides({k: v for k, v in changes.items() if v is not None})
        for key in removals:
            if key not in _PARSERS:
                raise ConfigError(f"unknown topic config key {key!r}")
            overrides.pop(key, None)
        overrides.update(parsed)
        return TopicConfig.from_overrides(overrides)
