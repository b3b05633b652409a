"""Epochs of transactional ids (``meta`` keys ``producer_epoch:<id>``, u64le).

Kafka's broker bumps a transactional id's producer epoch when a producer initializes
it, and refuses the older producer's transactions from then on.  Here the epoch lives
in the store (an id longer than 256 bytes as ``#`` and the hex BLAKE2b-256 digest of
it), so that producers in any process sharing the directory fence each other,
and a transaction checks it inside the write transaction that commits it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import lmdb

from ..errors import ProducerFencedError
from . import counters, schema

__all__ = ["check", "claim", "current"]

_LONGEST = 256  # bytes of an id kept as it is in its key


def _key(transactional_id: str) -> bytes:
    raw = transactional_id.encode()
    if len(raw) > _LONGEST:  # (LMDB keys end at 511 bytes): a digest stands for a long id
        raw = b"#" + hashlib.blake2b(raw, digest_size=32).hexdigest().encode()
    return schema.META_PRODUCER_EPOCH + raw


def current(txn: lmdb.Transaction, dbs: Mapping[str, Any], transactional_id: str) -> int:
    """The id's epoch (0: never initialized)."""
    return counters.get(txn, dbs, _key(transactional_id)) or 0


def claim(txn: lmdb.Transaction, dbs: Mapping[str, Any], transactional_id: str) -> int:
    """Bump the id's epoch in the write transaction ``txn``; return the new one."""
    counters.bump(txn, dbs, _key(transactional_id))
    return current(txn, dbs, transactional_id)


def check(txn: lmdb.Transaction, dbs: Mapping[str, Any], transactional_id: str, epoch: int) -> None:
    """Raise ``ProducerFencedError`` unless ``epoch`` is still the id's epoch."""
    now = current(txn, dbs, transactional_id)
    if now != epoch:
        raise ProducerFencedError(
            f"transactional id {transactional_id!r} was initialized again (epoch {now}) by a newer producer, in "
            f"this process or another, after this one (epoch {epoch}): this producer is fenced and its "
            "transaction was not written; close it and let the newer one carry on")
