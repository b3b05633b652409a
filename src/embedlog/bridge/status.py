"""What ``Mirror.status()`` returns: frozen snapshots of a mirror's progress and link."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

__all__ = ["MirrorStatus", "PartitionStatus"]


@attrs.frozen
class PartitionStatus:
    """One source partition of a mirror.

    ``topic``/``partition``: the source (the local topic and partition for ``up``, the
    Kafka topic and partition for ``down``); ``target_topic``: where its records go.
    ``source_end``: the source's end offset (for ``down``, as last seen from Kafka);
    ``mirrored``: the next source offset known to be written at the target (durably in
    Kafka for ``up``, committed in embedlog for ``down``); ``lag``: the difference.
    """

    topic: str
    partition: int
    target_topic: str
    source_end: int
    mirrored: int

    @property
    def lag(self) -> int:
        """Records of this partition not mirrored yet."""
        return max(0, self.source_end - self.mirrored)


@attrs.frozen
class MirrorStatus(Mapping[str, Any]):
    """A mirror's state now; also a read-only mapping of its fields (``to_dict``).

    ``link_up``: the cluster answered recently (``False`` once an error stopped the
    mirror); ``last_error``: librdkafka's last error
    (or why the link is down); ``error``: the error that stopped the mirror, if any;
    ``records_mirrored``: records written to the target since this ``Mirror`` started;
    ``records_lost``: records that retention deleted locally before they were forwarded
    (``up`` only; counted over the mirror's life, kept in the log).
    """

    name: str
    direction: str
    running: bool
    link_up: bool
    partitions: tuple[PartitionStatus, ...]
    records_mirrored: int = 0
    records_lost: int = 0
    last_error: str | None = None
    error: str | None = None

    @property
    def lag(self) -> int:
        """Total records not mirrored yet."""
        return sum(p.lag for p in self.partitions)

    def __getitem__(self, key: str) -> Any:
        """``status["link_up"]`` as ``status.link_up`` (and ``status["partitions"]`` the
        rows as dicts), like the dict that ``Leader.status()`` and ``bridge status --json``
        give."""
        if not isinstance(key, str) or key.startswith("_"):
            raise KeyError(key)
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (``lag`` included)."""
        out = attrs.asdict(self)
        for row, p in zip(out["partitions"], self.partitions):
            row["lag"] = p.lag
        out["lag"] = self.lag
        return out
