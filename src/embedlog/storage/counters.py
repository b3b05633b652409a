"""Version counters in the ``meta`` database (u64le): a write transaction bumps one when
what it counts changes, so caches in any process notice with a single ``get``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lmdb

from . import schema

__all__ = ["bump", "get"]


def get(txn: lmdb.Transaction, dbs: Mapping[str, Any], key: bytes) -> int | None:
    """The counter ``key`` in ``txn``, or ``None`` if it was never bumped."""
    raw = txn.get(key, db=dbs["meta"])
    return None if raw is None else int(schema.U64LE.unpack(raw)[0])


def bump(txn: lmdb.Transaction, dbs: Mapping[str, Any], key: bytes) -> None:
    """Add one to the counter ``key`` inside the write transaction ``txn``."""
    txn.put(key, schema.U64LE.pack((get(txn, dbs, key) or 0) + 1), db=dbs["meta"])
