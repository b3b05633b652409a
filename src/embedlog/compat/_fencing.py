"""Producer epochs of transactional ids, shared by every shim and every process.

Kafka fences a transactional producer when another one with the same
``transactional.id`` initializes its transactions (the broker bumps the id's epoch).
The epoch lives in the log directory (``Log._claim_transactional_id``), so a
confluent-kafka, kafka-python or aiokafka producer fences any older producer with the
same id on the same log, in this process or another: the older one's operations raise
its client's fenced error, and its transaction commit is refused inside the write
transaction that would have written it (``Transaction._fence_by``), so nothing of it is
written even when the fencing happens during the commit.

Operations before the commit look at the stored epoch at most every ``_LOOK_EVERY_S``
(a read transaction per message cost a third of a transactional ``produce``); a claim in
this process is seen at once (``_NEWEST``).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from ..log import Log
from ..transactions import Transaction

__all__ = ["Epoch"]

_LOOK_EVERY_S = 0.05
#: per open store (one per log directory in a process; a directory made again is
#: another): transactional id -> newest epoch claimed in this process
_NEWEST: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class Epoch:
    """One producer's claim on a transactional id."""

    def __init__(self, log: Log, transactional_id: str, timeout_ms: int = 60_000) -> None:
        self.log = log
        self.transactional_id = transactional_id
        #: ``transaction.timeout.ms``: a transaction open longer is aborted (``expired``)
        self.timeout_s = timeout_ms / 1000
        self._txn: Transaction | None = None  # the transaction bound last
        self.epoch = 0  # 0: not initialized
        self._next_look = 0.0

    def claim(self) -> None:
        """Take the id: every producer that claimed it before is fenced from now on."""
        epoch = self.log._claim_transactional_id(self.transactional_id)
        with _LOCK:
            newest = _NEWEST.setdefault(self.log._store, {})
            newest[self.transactional_id] = max(epoch, newest.get(self.transactional_id, 0))
        self.epoch = epoch
        self._next_look = 0.0

    def bind(self, txn: Transaction) -> Transaction:
        """Make ``txn`` commit only while this producer still holds the id; return it."""
        if self.epoch:
            txn._fence_by(self.transactional_id, self.epoch)
        self._txn = txn
        return txn

    @property
    def expired(self) -> bool:
        """Whether the transaction bound last has been open longer than
        ``transaction.timeout.ms``, counted as Kafka's coordinator does from its first
        record or offsets (a begun transaction with nothing in it is not open there):
        the coordinator aborts such a transaction, and its commit fails."""
        began = None if self._txn is None else self._txn._began
        return began is not None and time.monotonic() - began > self.timeout_s

    def expired_message(self) -> str:
        """What a commit of an ``expired`` transaction says."""
        return (f"the transaction was open longer than transaction.timeout.ms ({self.timeout_s * 1000:.0f} ms) and "
                "was aborted, as Kafka's transaction coordinator aborts it: nothing of it was written; abort it, "
                "then begin a new one (and commit sooner, or raise transaction.timeout.ms)")

    @property
    def fenced(self) -> bool:
        """Whether a newer producer claimed the id since this one did."""
        if not self.epoch:
            return False
        newest = _NEWEST.get(self.log._store)
        if newest is not None and newest.get(self.transactional_id, 0) > self.epoch:
            return True
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + _LOOK_EVERY_S
        return self.log._transactional_epoch(self.transactional_id) != self.epoch
