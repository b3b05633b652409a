"""Producer epochs of transactional ids, shared by every shim in the process.

Kafka fences a transactional producer when another one with the same
``transactional.id`` initializes its transactions (the broker bumps the id's epoch).
The shims keep that epoch here, per log directory and transactional id, so that a
confluent-kafka, kafka-python or aiokafka producer fences any older producer with the
same id on the same log (in this process: embedlog has no broker to ask).
"""

from __future__ import annotations

import os
import threading

from ..log import Log

__all__ = ["Epoch"]

_EPOCHS: dict[tuple[str, str], int] = {}  # (log dir, transactional id) -> current epoch
_LOCK = threading.Lock()


class Epoch:
    """One producer's claim on a transactional id."""

    def __init__(self, log: Log, transactional_id: str) -> None:
        self.key = (os.path.realpath(log.path), transactional_id)
        self.epoch = 0  # 0: not initialized

    def claim(self) -> None:
        """Take the id: every producer that claimed it before is fenced from now on."""
        with _LOCK:
            self.epoch = _EPOCHS.get(self.key, 0) + 1
            _EPOCHS[self.key] = self.epoch

    @property
    def fenced(self) -> bool:
        """Whether a newer producer claimed the id since this one did."""
        if not self.epoch:
            return False
        with _LOCK:
            return _EPOCHS.get(self.key, 0) != self.epoch
