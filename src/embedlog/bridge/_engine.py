"""What the up and down engines share: their settings, and the progress ``status()`` reads."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ._kafka import LinkState
from .status import PartitionStatus

__all__ = ["Engine"]


class Engine:
    """One connected session of a mirror in one direction (``Mirror`` makes a new one
    after a failure).  Subclasses: ``UpEngine``, ``DownEngine``."""

    direction = ""

    def __init__(self, log: Any, config: Mapping[str, Any], topics: list[str], topic_map: Mapping[str, str],
                 name: str, link: LinkState, batch_size: int, start: str, timeout_s: float,
                 stop: threading.Event | None = None) -> None:
        self.log = log
        self.name = name
        self.link = link
        self.batch_size = batch_size
        self.start = start
        self.timeout_s = timeout_s
        self.topics = topics
        self.topic_map = topic_map
        self.stop = stop
        self._config = config
        self._lock = threading.Lock()  # over ``mirrored`` and what else status() reads from another thread
        self.mirrored: dict[tuple[str, int], int] = {}  # source (topic, partition) -> next offset known written
        self.lost: dict[tuple[str, int], int] = {}
        self.sent_total = 0
        self.dirty = False  # sent since the last checkpoint
        self.progressed = False  # a checkpoint of this session recorded progress since its open
        self.consumer: Any = None

    def open(self) -> None:
        """Connect and find where to resume."""
        raise NotImplementedError

    def step(self, stop: threading.Event) -> int:
        """Copy what is there now (up to a batch); return how many records were read."""
        raise NotImplementedError

    def checkpoint(self, force: bool = False, stop: threading.Event | None = None,
                   stall_s: float = 10.0, topics: list[str] | None = None) -> bool:
        """Record progress durably; ``False`` if ``stop`` came first.  Default: nothing to
        do, every write already recorded its progress."""
        del force, stop, stall_s, topics
        return True

    def idle_probe(self) -> None:
        """Ask the cluster something cheap, to notice a link that went down while idle."""
        raise NotImplementedError

    def close(self) -> None:
        """Drop the clients."""
        raise NotImplementedError

    def partitions(self) -> list[PartitionStatus]:
        """Per source partition: its end offset and how far it is mirrored."""
        raise NotImplementedError
