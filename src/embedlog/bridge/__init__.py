"""Store-and-forward between embedlog and a real Kafka cluster: ``Mirror``.

``direction="up"`` copies embedlog topics to Kafka, ``direction="down"`` copies Kafka
topics into embedlog; both exactly once across ``kill -9`` of the bridge, and both keep
working through link outages (records wait in the log, bounded by its retention).  Needs
confluent-kafka (``pip install 'embedlog[bridge]'``).
"""

from __future__ import annotations

from ._kafka import SOURCE_HEADER
from .mirror import Mirror, forget_mirror
from .status import MirrorStatus, PartitionStatus

__all__ = ["SOURCE_HEADER", "Mirror", "MirrorStatus", "PartitionStatus", "forget_mirror"]
