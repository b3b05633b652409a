"""The committed-offsets version: a counter bumped by every write to the ``offsets``
database, so a reader can tell with one ``get`` that no committed offset changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lmdb

from . import counters, schema

__all__ = ["bump_offsets_version", "committed_view", "offsets_version"]

#: ``id(dbs)`` -> ``txn.id()`` of this process's latest bump.  An LMDB write transaction
#: (and its children) has the id it commits as, and a failed one leaves it to the next;
#: a read transaction has the id of the commit it sees.  So only a write transaction
#: with that id may see uncommitted offsets.  (One int per store that ever wrote offsets;
#: a stale entry for a reused ``id(dbs)`` only costs a cache miss.)
_LAST_BUMP: dict[int, int] = {}
_ABSENT = b"\x00"  # a meta key never written: deleting it tells a read transaction apart


def bump_offsets_version(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> None:
    """Record, inside the write transaction ``txn``, that the ``offsets`` database changed.

    Every writer of ``offsets`` (put, delete, drop) calls this in the same transaction."""
    counters.bump(txn, dbs, schema.META_OFFSETS_VERSION)
    _LAST_BUMP[id(dbs)] = txn.id()


def offsets_version(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> int | None:
    """The offsets version in ``txn``, or ``None`` if offsets were never written by code
    that keeps it (then nothing can be cached)."""
    return counters.get(txn, dbs, schema.META_OFFSETS_VERSION)


def committed_view(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> bool:
    """Whether ``txn`` surely sees committed offsets: not a write transaction of this
    process that changed them (it may still abort, and its version be reused)."""
    if _LAST_BUMP.get(id(dbs)) != txn.id():
        return True
    try:  # the same id: a read of that commit, or the (maybe failing) writer itself
        txn.delete(_ABSENT, db=dbs["meta"])  # (a write transaction: finds nothing, changes nothing)
    except lmdb.ReadonlyError:
        return True
    return False
