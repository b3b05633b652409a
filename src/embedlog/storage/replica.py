"""Replica storage: what a replication leader reads and a follower writes.

Every function takes an open LMDB transaction and the environment's database handles,
like ``partition`` and ``topics``, so the replication layer composes them atomically:
a follower applies one leader response — metadata, committed offsets, truncations and
batches of every partition — in one write transaction, so a leader's transaction
becomes visible on the follower all at once.

Nothing here changes the storage format (``schema.FORMAT_VERSION`` 1): batches
already carry their leader epoch and commit sequence number outside the CRC, and the
``epochs`` database keeps each partition's leader-epoch history (epoch -> first
offset), as Kafka's leader-epoch checkpoint does (KIP-101, KIP-279).

A follower stores the leader's batches *exactly as stamped* (base offset, epoch and
commit sequence number included), the leader's topic records (the JSON values of
``topics``, with the leader's topic ids) and the leader's committed-offset entries, so
an in-sync follower holds the same bytes as its leader.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import heapq
import json
import os
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import attrs
import lmdb

from ..codec import batch as codec
from ..config import TopicConfig
from ..errors import EmbedlogError, ReplicationBusyError
from . import partition as plog
from . import schema, topics
from .offsets_version import bump_offsets_version, committed_view, offsets_version
from .schema import PartitionState

__all__ = [
    "LEASE_FILE",
    "ROLES",
    "ApplyError",
    "HighWatermarkBoard",
    "LeaderLease",
    "MergedRead",
    "ReplicationBusyError",
    "advance_log_start",
    "all_partitions",
    "alter_topic",
    "apply",
    "apply_offsets",
    "apply_topics",
    "create_topic",
    "delete_topic",
    "end_offset_for_epoch",
    "ensure_node_id",
    "epoch_history",
    "epoch_leaders",
    "fence",
    "fenced_error",
    "get_epoch",
    "get_follower_state",
    "get_isr",
    "get_role",
    "in_sync_size",
    "hw_board",
    "is_replicating",
    "isr_empty",
    "latest_epoch",
    "lease_live",
    "leader_manages_hw",
    "offset_records",
    "offsets_digest",
    "open_hw_board",
    "promote",
    "promotion_risk",
    "raise_epoch",
    "read_merged",
    "reconcile_epochs",
    "reset",
    "set_epoch_leaders",
    "set_follower_state",
    "set_high_watermark",
    "set_isr",
    "set_replicating",
    "set_role",
    "topic_records",
    "topics_digest",
    "truncate",
    "unfence",
]

ROLES = ("leader", "replica")
UNDEFINED = -1
_EPOCH_OF_KEY = struct.Struct(">I")


class ApplyError(EmbedlogError, ValueError):
    """A leader's batch, topic record or offset entry cannot be applied here (a batch
    that does not start at the partition's end offset, fails its checksum, or goes back
    in epoch).  Nothing of the transaction that met it is kept."""


# -- meta: role, epoch, replicating, isr, node id ------------------------------------------
def get_role(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> str:
    """``leader`` (the default) or ``replica``."""
    raw = txn.get(schema.META_ROLE, db=dbs["meta"])
    return bytes(raw).decode() if raw else "leader"


def set_role(txn: lmdb.Transaction, dbs: Mapping[str, Any], role: str) -> None:
    """Make this directory a ``leader`` (producers may write) or a ``replica``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    txn.put(schema.META_ROLE, role.encode(), db=dbs["meta"])


def get_epoch(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> int:
    """The directory's leader epoch (``meta.leader_epoch``)."""
    raw = txn.get(schema.META_LEADER_EPOCH, db=dbs["meta"])
    return int(schema.I32LE.unpack(bytes(raw))[0]) if raw else 0


def raise_epoch(txn: lmdb.Transaction, dbs: Mapping[str, Any], epoch: int) -> int:
    """Raise the directory's epoch to ``epoch`` (never lowers it); return the result.

    A follower records its leader's epoch so that it later refuses an older leader and
    so that promoting it gives an epoch above every leader it has followed.
    """
    current = get_epoch(txn, dbs)
    if epoch > current:
        txn.put(schema.META_LEADER_EPOCH, schema.I32LE.pack(epoch), db=dbs["meta"])
        return epoch
    return current


def is_replicating(txn: lmdb.Transaction, dbs: Mapping[str, Any], path: str | None = None) -> bool:
    """Whether a replicating leader manages the high watermarks of this directory.

    With the directory's ``path``, a flag whose ``Leader`` died without stopping (its
    lease is free, see ``lease_live``) counts as off; without it, the flag as stored.
    """
    if txn.get(schema.META_REPLICATING, db=dbs["meta"]) != b"1":
        return False
    return path is None or lease_live(path)


def set_replicating(txn: lmdb.Transaction, dbs: Mapping[str, Any], on: bool) -> None:
    """Turn leader-managed high watermarks on or off.

    Turning it off moves every high watermark to its end offset (the leader alone is
    the in-sync set, as in Kafka when every follower has dropped out).
    """
    txn.put(schema.META_REPLICATING, b"1" if on else b"0", db=dbs["meta"])
    if not on:
        for tid, part, st in all_partitions(txn, dbs):
            if st.high_watermark != st.end_offset:
                st.high_watermark = st.end_offset
                plog.store_state(txn, dbs, tid, part, st)


# -- the replicating flag is a lease ----------------------------------------------------------
LEASE_FILE = "leader.lease"
_LEASE_WAIT_S = 2.0


def _lease_path(path: str) -> str:
    return os.path.join(path, LEASE_FILE)


class LeaderLease:
    """An exclusive ``flock`` on ``<log>/leader.lease``, held by a running replication
    leader for as long as it marks the directory ``replicating``.

    The kernel drops the lock when its process dies (``kill -9`` included), so a
    ``replicating`` flag whose lease is free was left by a dead leader.  Readers probe
    the lease with a shared lock held for microseconds, so acquiring retries for up to
    two seconds before it raises ``ReplicationBusyError``.
    """

    def __init__(self, path: str) -> None:
        self._fd = -1
        self.path = _lease_path(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # (a forked child closes its copy, see _forget_in_child: the lease stays its parent's)
        deadline = time.monotonic() + _LEASE_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise ReplicationBusyError(
                        f"another replication leader holds {self.path!r}; stop it first") from None
                time.sleep(0.001)
        self._fd = fd
        _LEASES.add(self)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lease."""
        return self._fd >= 0

    def release(self) -> None:
        """Give the lease up (idempotent)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.release()


_LEASES: weakref.WeakSet[LeaderLease] = weakref.WeakSet()


def _forget_in_child() -> None:
    """After fork: close the child's copies of held lease descriptors, without
    unlocking (that would unlock the parent's), so the lease dies with its holder."""
    for lease in list(_LEASES):
        fd, lease._fd = lease._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


os.register_at_fork(after_in_child=_forget_in_child)


def lease_live(path: str) -> bool:
    """Whether a replication leader (in any process) holds the directory's lease (one
    of this process: known without a system call; appends ask on every commit)."""
    lease_path = _lease_path(path)
    if any(lease.path == lease_path and lease.held for lease in list(_LEASES)):
        return True
    try:
        fd = os.open(lease_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (closing drops the shared lock if we got it)
    return False


#: directory path -> (the LeaderCore that learned it was superseded, the error appends get)
_FENCED: dict[str, tuple[object, EmbedlogError]] = {}
_FENCED_LOCK = threading.Lock()


def fence(path: str, owner: object, error: EmbedlogError) -> None:
    """A replication leader of this process (``owner``) on ``path`` learned from an
    authenticated follower that a newer leader epoch exists: every append of this
    process on the directory raises (a copy of) ``error`` until ``unfence``.  Nothing is
    written to the store: other processes are not told."""
    with _FENCED_LOCK:
        _FENCED[path] = (owner, error)


def unfence(path: str, owner: object) -> None:
    """``owner`` stopped: appends on ``path`` are no longer refused for it."""
    with _FENCED_LOCK:
        entry = _FENCED.get(path)
        if entry is not None and entry[0] is owner:
            del _FENCED[path]


def fenced_error(path: str) -> EmbedlogError | None:
    """The error appends on ``path`` get while a leader of this process is fenced."""
    entry = _FENCED.get(path)
    return None if entry is None else _copy_error(entry[1])


def _copy_error(error: EmbedlogError) -> EmbedlogError:
    """A fresh exception of the same type and message (one instance is never raised
    in two threads: its traceback would be shared)."""
    try:
        return type(error)(str(error))
    except Exception:  # noqa: BLE001 - a type that takes other arguments: the base type says the same
        return EmbedlogError(str(error))


def leader_manages_hw(txn: lmdb.Transaction, dbs: Mapping[str, Any], path: str) -> bool:
    """For an append in write transaction ``txn``: whether a replication leader moves
    the high watermarks (the append must leave them alone).  So does a flag its leader
    left when it died (``kill -9``, a crash: the lease is free): the records appended
    meanwhile stay hidden until a ``Leader`` runs here again and its followers hold
    them, or a ``Leader``'s clean stop hands the directory back to plain appends.  Were
    they shown at once, a consumer could see records the in-sync follower lacks, which
    a failover to that follower takes back.

    Raises the leader's ``FencedLeaderError`` (so the append writes nothing) while a
    leader of this process on ``path`` knows it was superseded (``fence``): every
    append asks here, in its write transaction, while a leader runs."""
    if _FENCED:
        error = fenced_error(path)
        if error is not None:
            raise error
    return txn.get(schema.META_REPLICATING, db=dbs["meta"]) == b"1"


def isr_empty(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> bool:
    """Whether the in-sync set holds no follower.  With a live replicating leader
    (``lease_live``) an append then moves the high watermarks itself, as Kafka's leader
    does when it is the whole ISR (its ``Leader`` would only compute the end offsets a
    moment later).  A flag whose leader died counts as not alone: its records stay
    hidden (``leader_manages_hw``).  The leader adds a follower to the set in a
    transaction that checks the follower holds everything below the high watermarks
    then stored."""
    doc = get_isr(txn, dbs)
    return doc is None or not doc.get("isr")


def get_isr(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The in-sync set the leader last wrote (JSON ``meta.isr``), or ``None``."""
    return _json_meta(txn, dbs, schema.META_ISR)


def _json_meta(txn: lmdb.Transaction, dbs: Mapping[str, Any], key: bytes) -> dict[str, Any] | None:
    """A JSON object stored under ``key`` in ``meta``, or ``None`` if absent."""
    raw = txn.get(key, db=dbs["meta"])
    if not raw:
        return None
    doc: dict[str, Any] = json.loads(bytes(raw))
    return doc


def set_isr(txn: lmdb.Transaction, dbs: Mapping[str, Any], doc: Mapping[str, Any] | None) -> None:
    """Write (or, with ``None``, remove) the in-sync set."""
    if doc is None:
        txn.delete(schema.META_ISR, db=dbs["meta"])
        return
    txn.put(schema.META_ISR, json.dumps(dict(doc), sort_keys=True).encode(), db=dbs["meta"])


def in_sync_size(txn: lmdb.Transaction, dbs: Mapping[str, Any], path: str | None = None) -> int:
    """Nodes holding every acknowledged record: 1 (this one) unless a replicating
    leader runs here, then the size of its in-sync set (leader included).  ``path``
    as for ``is_replicating``."""
    if not is_replicating(txn, dbs, path):
        return 1
    doc = get_isr(txn, dbs)
    return int(doc.get("size", 1)) if doc else 1


def get_node_id(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> str | None:
    """This directory's replica identity, or ``None`` if it has none yet."""
    raw = txn.get(schema.META_NODE_ID, db=dbs["meta"])
    return bytes(raw).decode() if raw else None


def ensure_node_id(txn: lmdb.Transaction, dbs: Mapping[str, Any], path: str | None = None) -> str:
    """This directory's replica identity, made (random, 128 bits) on first use.

    With ``path`` (the log directory), a directory copied from another node's (its
    ``data.mdb`` is another file than the one the identity was made in: ``node_file``)
    gets an identity of its own: two nodes with one id were taken for one by a leader,
    which counted one's acknowledgements for the other.  The epochs the directory led
    under the old identity stay that identity's (``epoch_leaders``)."""
    node = get_node_id(txn, dbs)
    ident = _data_file_identity(path)
    if node is not None and ident is not None:
        stored = txn.get(schema.META_NODE_FILE, db=dbs["meta"])
        if stored is not None and bytes(stored) != ident:
            set_epoch_leaders(txn, dbs, epoch_leaders(txn, dbs))  # (while ``node`` is still its own)
            node = None
    if node is None:
        node = os.urandom(16).hex()
        txn.put(schema.META_NODE_ID, node.encode(), db=dbs["meta"])
    if ident is not None:
        txn.put(schema.META_NODE_FILE, ident, db=dbs["meta"])
    return node


def _data_file_identity(path: str | None) -> bytes | None:
    """The inode number of ``path``'s ``data.mdb`` (``None`` without a path, or if it
    cannot be read)."""
    if path is None:
        return None
    try:
        return str(os.stat(os.path.join(path, "data.mdb")).st_ino).encode()
    except OSError:
        return None


def get_follower_state(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> dict[str, Any] | None:
    """What this directory last heard from its leader as a follower (JSON
    ``meta.follower``: ``leader``, ``epoch``, ``in_sync``, ``lag``), or ``None``."""
    return _json_meta(txn, dbs, schema.META_FOLLOWER)


def set_follower_state(txn: lmdb.Transaction, dbs: Mapping[str, Any], doc: Mapping[str, Any] | None) -> None:
    """Write (or, with ``None``, remove) the follower state; a no-op if unchanged."""
    if doc is None:
        txn.delete(schema.META_FOLLOWER, db=dbs["meta"])
        return
    raw = json.dumps(dict(doc), sort_keys=True).encode()
    if txn.get(schema.META_FOLLOWER, db=dbs["meta"]) != raw:
        txn.put(schema.META_FOLLOWER, raw, db=dbs["meta"])


def _stored_epoch_leaders(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> dict[int, str]:
    raw = txn.get(schema.META_EPOCH_LEADERS, db=dbs["meta"])
    return {int(k): str(v) for k, v in json.loads(bytes(raw)).items()} if raw else {}


def set_epoch_leaders(txn: lmdb.Transaction, dbs: Mapping[str, Any], leaders: Mapping[int, str]) -> None:
    """Store which node led each epoch."""
    doc = {str(k): v for k, v in sorted(leaders.items())}
    txn.put(schema.META_EPOCH_LEADERS, json.dumps(doc).encode(), db=dbs["meta"])


def epoch_leaders(txn: lmdb.Transaction, dbs: Mapping[str, Any], *, current: bool = False) -> dict[int, str]:
    """Which node led each epoch of this directory's records: the stored map, plus this
    node for every epoch in a partition's history that has no entry (records this
    directory wrote as a leader before it ever replicated).  ``current`` adds this node
    for the directory's own epoch too (what a leader announces)."""
    leaders = _stored_epoch_leaders(txn, dbs)
    own = get_node_id(txn, dbs) or ""
    with txn.cursor(db=dbs["epochs"]) as cur:
        for key in cur.iternext(keys=True, values=False):
            leaders.setdefault(_EPOCH_OF_KEY.unpack_from(bytes(key), 8)[0], own)
    if current:
        leaders.setdefault(get_epoch(txn, dbs), own)
    return leaders


def reconcile_epochs(txn: lmdb.Transaction, dbs: Mapping[str, Any],
                     leader_map: Mapping[int, str]) -> list[tuple[int, int, int]]:
    """Before following a leader: drop this directory's records of every epoch that the
    leader says another node led (two nodes promoted to the same epoch number, or
    records written here before following), then adopt the leader's map.

    Returns ``(topic_id, partition, new end offset)`` of each partition truncated.  The
    records dropped were never acknowledged by this leader's lineage; the follower
    fetches the leader's records in their place.
    """
    mine = epoch_leaders(txn, dbs)
    conflicts = {e for e, node in mine.items() if e in leader_map and leader_map[e] != node}
    truncated = []
    if conflicts:
        for tid, part, st in all_partitions(txn, dbs):
            hist = epoch_history(txn, dbs, tid, part)
            starts = [start for e, start in hist if e in conflicts]
            if starts:
                new_end = truncate(txn, dbs, tid, part, min(starts))
                for e, start in hist:  # epoch entries with no records left (e.g. a promotion's)
                    if e in conflicts or start >= new_end:
                        txn.delete(schema.epoch_key(tid, part, e), db=dbs["epochs"])
                remaining = epoch_history(txn, dbs, tid, part)
                st2 = _state(txn, dbs, tid, part)
                st2.leader_epoch = remaining[-1][0] if remaining else 0
                plog.store_state(txn, dbs, tid, part, st2)
                if new_end < st.end_offset:
                    truncated.append((tid, part, new_end))
    merged = {e: node for e, node in mine.items() if e not in conflicts}
    merged.update(leader_map)
    set_epoch_leaders(txn, dbs, merged)
    return truncated


def commit_seq(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> int:
    """The last commit sequence number used or applied here."""
    raw = txn.get(schema.META_COMMIT_SEQ, db=dbs["meta"])
    return int(schema.U64LE.unpack(bytes(raw))[0]) if raw else 0


def _raise_commit_seq(txn: lmdb.Transaction, dbs: Mapping[str, Any], seq: int) -> None:
    if seq > commit_seq(txn, dbs):
        txn.put(schema.META_COMMIT_SEQ, schema.U64LE.pack(seq), db=dbs["meta"])


# -- partitions and epoch history ------------------------------------------------------------
def all_partitions(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> list[tuple[int, int, PartitionState]]:
    """Every partition of every topic: ``(topic_id, partition, state)`` in key order."""
    out = []
    with txn.cursor(db=dbs["partitions"]) as cur:
        for key, value in cur:
            tid, part = struct.unpack(">II", bytes(key))
            out.append((tid, part, PartitionState.unpack(bytes(value))))
    return out


def _state(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int) -> PartitionState:
    st = plog.load_state(txn, dbs, tid, part)
    if st is None:
        raise ApplyError(f"partition {part} of topic id {tid} does not exist here")
    return st


def epoch_history(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int) -> list[tuple[int, int]]:
    """The partition's leader-epoch history: ``(epoch, start_offset)`` by epoch."""
    prefix = schema.partition_key(tid, part)
    out: list[tuple[int, int]] = []
    with txn.cursor(db=dbs["epochs"]) as cur:
        if not cur.set_range(prefix):
            return out
        for key, value in cur:
            k = bytes(key)
            if k[:8] != prefix:
                break
            out.append((_EPOCH_OF_KEY.unpack_from(k, 8)[0], schema.U64LE.unpack(bytes(value))[0]))
    return out


def latest_epoch(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int) -> int:
    """The last epoch in the partition's history (``-1`` if it has none): what a
    follower sends as its last fetched epoch."""
    hist = epoch_history(txn, dbs, tid, part)
    return hist[-1][0] if hist else UNDEFINED


def _truncate_history(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int, offset: int) -> None:
    """Drop epoch entries starting at or after ``offset`` (Kafka's truncateFromEnd)."""
    for epoch, start in epoch_history(txn, dbs, tid, part):
        if start >= offset:
            txn.delete(schema.epoch_key(tid, part, epoch), db=dbs["epochs"])


def end_offset_for_epoch(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int,
                         epoch: int) -> tuple[int, int]:
    """Kafka's OffsetsForLeaderEpoch for one partition: ``(largest epoch <= epoch, the
    offset where it ends)``.

    The end of an epoch is the start offset of the next epoch in the history, or the
    partition's end offset for the latest epoch.  For an epoch older than the whole
    history the answer is ``(epoch, start of the first epoch)``.  ``(-1, -1)`` when the
    epoch is undefined, newer than every epoch here, or the history is empty.
    """
    if epoch < 0:
        return UNDEFINED, UNDEFINED
    hist = epoch_history(txn, dbs, tid, part)
    if not hist:
        return UNDEFINED, UNDEFINED
    if epoch == hist[-1][0]:
        return epoch, _state(txn, dbs, tid, part).end_offset
    if epoch > hist[-1][0]:
        return UNDEFINED, UNDEFINED
    floor: tuple[int, int] | None = None
    for e, start in hist:
        if e <= epoch:
            floor = (e, start)
        else:  # the first epoch above the one asked: where the floor epoch ended
            return (epoch if floor is None else floor[0]), start
    raise AssertionError("unreachable: the latest epoch is above the one asked")


def promote(txn: lmdb.Transaction, dbs: Mapping[str, Any], path: str | None = None) -> int:
    """Make this directory a leader with a new epoch; return the epoch (``path``: see
    ``ensure_node_id``).

    The epoch is one above every epoch this directory has seen (its own, its leaders',
    every batch's); each partition's history gets the new epoch starting at its end
    offset, so a follower that diverged is told where.  The in-sync set is cleared:
    until a ``Leader`` runs here, this node alone holds its records.
    """
    epoch = get_epoch(txn, dbs)
    parts = all_partitions(txn, dbs)
    for tid, part, st in parts:
        epoch = max(epoch, st.leader_epoch, latest_epoch(txn, dbs, tid, part))
    epoch += 1
    node = ensure_node_id(txn, dbs, path)  # before the map: epochs written here are this node's
    leaders = epoch_leaders(txn, dbs)
    leaders[epoch] = node
    set_epoch_leaders(txn, dbs, leaders)
    txn.put(schema.META_LEADER_EPOCH, schema.I32LE.pack(epoch), db=dbs["meta"])
    set_role(txn, dbs, "leader")
    set_replicating(txn, dbs, False)
    set_isr(txn, dbs, None)
    set_follower_state(txn, dbs, None)
    for tid, part, st in parts:
        txn.put(schema.epoch_key(tid, part, epoch), schema.U64LE.pack(st.end_offset), db=dbs["epochs"])
        st.leader_epoch = epoch
        st.high_watermark = st.end_offset
        plog.store_state(txn, dbs, tid, part, st)
    return epoch


# -- truncation, reset, apply -------------------------------------------------------------------
def truncate(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int, offset: int) -> int:
    """Delete the partition's records at and after ``offset``; return the new end offset.

    Divergence points are batch boundaries; an ``offset`` inside a batch removes that
    whole batch (the follower fetches it again), so the new end offset may be below
    ``offset``.  At or past the end offset nothing changes.  Epoch entries starting at
    or after the new end are dropped; the high watermark never exceeds the end.
    """
    st = _state(txn, dbs, tid, part)
    if offset >= st.end_offset:
        return st.end_offset
    new_end = max(0, offset)
    prefix = schema.partition_key(tid, part)
    with txn.cursor(db=dbs["batches"]) as cur:
        found = plog._locate(cur, prefix, tid, part, new_end)
        while found:
            key = bytes(cur.key())
            if key[:8] != prefix:
                break
            value = cur.value()
            info = codec.read_info(value)
            new_end = min(new_end, info.base_offset)
            st.bytes -= len(value)
            st.batches -= 1
            if not cur.delete() or not cur.key():
                break
    st.end_offset = new_end
    st.high_watermark = min(st.high_watermark, new_end)
    if st.batches == 0 or st.start_offset > new_end:
        st.start_offset = new_end
    _truncate_history(txn, dbs, tid, part, new_end)
    hist = epoch_history(txn, dbs, tid, part)
    st.leader_epoch = hist[-1][0] if hist else 0
    plog.store_state(txn, dbs, tid, part, st)
    return new_end


def reset(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int, offset: int) -> None:
    """Empty the partition and start it at ``offset`` (a follower behind its leader's
    log start: it keeps the leader's offsets, so it restarts where the leader starts)."""
    st = _state(txn, dbs, tid, part)
    prefix = schema.partition_key(tid, part)
    for db in ("batches", "epochs"):
        with txn.cursor(db=dbs[db]) as cur:
            if cur.set_range(prefix):
                while bytes(cur.key()[:8]) == prefix:
                    if not cur.delete() or not cur.key():
                        break
    plog.store_state(txn, dbs, tid, part, PartitionState(
        start_offset=offset, end_offset=offset, high_watermark=offset, leader_epoch=0, bytes_in=st.bytes_in))


def apply(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int,
          batches: Iterable[bytes | bytearray | memoryview], *, verified: bool = False) -> PartitionState:
    """Append a leader's batches exactly as stamped; return the partition's new state.

    Each batch must start at or after the partition's end offset (after it: the leader
    compacted the batches between away, and the follower keeps the same gap, as Kafka's
    followers of a compacted log do), pass its checksum (``verified``:
    the caller checked every one already, ``codec.verify``) and carry an
    epoch no lower than the partition's latest; its epoch, base offset and commit
    sequence number are kept, the epoch history records each new epoch, and the
    directory's commit sequence number is raised to the batch's (so that after a
    promotion new transactions sort after every replicated one).  The high watermark
    is left alone (``set_high_watermark``).  Raises ``ApplyError``; the caller's
    transaction must then be aborted.
    """
    st = _state(txn, dbs, tid, part)
    epoch = latest_epoch(txn, dbs, tid, part)
    top_seq = 0
    db = dbs["batches"]
    # LMDB's append mode (no search, pages filled) while this partition's keys are the
    # last of the database, as for the only or highest partition; LMDB refuses (put
    # returns False) a key that is not above the last, and then the plain put runs.
    with txn.cursor(db=db) as cur:
        last = bytes(cur.key()) if cur.last() else b""
    append = last < schema.batch_key(tid, part, st.end_offset)
    check = codec.read_info if verified else codec.verify
    for raw in batches:
        try:
            info = check(raw)
        except codec.CorruptBatchError as exc:
            raise ApplyError(f"batch for topic id {tid} partition {part} at offset {st.end_offset} "
                             f"is corrupt: {exc}") from None
        if info.base_offset < st.end_offset:  # (above it: a gap compaction left on the leader)
            raise ApplyError(f"batch for topic id {tid} partition {part} starts at offset {info.base_offset}; "
                             f"the partition ends at {st.end_offset}")
        if info.leader_epoch < epoch:
            raise ApplyError(f"batch for topic id {tid} partition {part} at offset {info.base_offset} has "
                             f"epoch {info.leader_epoch}, below the partition's latest epoch {epoch}")
        if info.leader_epoch > epoch:
            epoch = info.leader_epoch
            txn.put(schema.epoch_key(tid, part, epoch), schema.U64LE.pack(info.base_offset), db=dbs["epochs"])
        key = schema.batch_key(tid, part, info.base_offset)
        if not (append and txn.put(key, raw, append=True, db=db)):
            append = False
            txn.put(key, raw, db=db)
        st.end_offset = info.next_offset
        st.bytes += info.size
        st.bytes_in += info.size
        st.batches += 1
        st.leader_epoch = max(st.leader_epoch, info.leader_epoch)
        top_seq = max(top_seq, info.commit_seq)
    plog.store_state(txn, dbs, tid, part, st)
    _raise_commit_seq(txn, dbs, top_seq)
    return st


def set_high_watermark(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int, hw: int) -> int:
    """Raise the high watermark towards ``hw`` (never past the end offset, never
    down: only truncation lowers it); return the result."""
    st = _state(txn, dbs, tid, part)
    new = max(st.high_watermark, min(hw, st.end_offset))
    if new != st.high_watermark:
        st.high_watermark = new
        plog.store_state(txn, dbs, tid, part, st)
    return new


def advance_log_start(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int, offset: int) -> int:
    """Follow the leader's log start (retention, delete_records): drop batches wholly
    before ``offset`` and start the partition there; return the new start offset."""
    st = _state(txn, dbs, tid, part)
    if offset <= st.start_offset:
        return st.start_offset
    plog.delete_before(txn, dbs, tid, part, st, offset=min(offset, st.end_offset))
    plog.store_state(txn, dbs, tid, part, st)
    return st.start_offset


# -- topics ------------------------------------------------------------------------------------
def _doc(name: str, raw: bytes) -> dict[str, Any]:
    try:
        topics.validate_name(name)
        doc: dict[str, Any] = json.loads(raw)
        if not (isinstance(doc, dict) and isinstance(doc.get("id"), int) and isinstance(doc.get("partitions"), int)
                and isinstance(doc.get("config"), dict) and 0 < doc["id"] < 2**32
                and 0 < doc["partitions"] <= topics.MAX_PARTITIONS):
            raise ValueError("missing or malformed fields")
        TopicConfig.from_overrides(doc["config"])
    except (ValueError, EmbedlogError) as exc:
        raise ApplyError(f"leader's record of topic {name!r} is not valid: {exc}") from None
    return doc


def _identity(doc: Mapping[str, Any]) -> tuple[int, str]:
    """What makes two topic records the same topic: its id and the uid given at creation."""
    return doc["id"], doc.get("uid", "")


def _raise_next_topic_id(txn: lmdb.Transaction, dbs: Mapping[str, Any], next_id: int) -> None:
    raw = txn.get(schema.META_NEXT_TOPIC_ID, db=dbs["meta"])
    current = schema.U32LE.unpack(bytes(raw))[0] if raw else 1
    if next_id > current:
        txn.put(schema.META_NEXT_TOPIC_ID, schema.U32LE.pack(next_id), db=dbs["meta"])


def create_topic(txn: lmdb.Transaction, dbs: Mapping[str, Any], name: str, raw: bytes) -> None:
    """Create a topic from the leader's record (its id, partitions, config), with empty
    partitions; anything left under that id is removed first."""
    doc = _doc(name, raw)
    tid = doc["id"]
    prefix = schema.topic_id_key(tid)
    for db in ("batches", "partitions", "epochs"):
        topics.delete_prefix(txn, dbs[db], prefix)
    txn.put(name.encode(), bytes(raw), db=dbs["topics"])
    txn.put(prefix, name.encode(), db=dbs["topic_ids"])
    for p in range(doc["partitions"]):
        plog.store_state(txn, dbs, tid, p, PartitionState())
    _raise_next_topic_id(txn, dbs, tid + 1)
    topics.bump_version(txn, dbs)


def delete_topic(txn: lmdb.Transaction, dbs: Mapping[str, Any], name: str) -> None:
    """Delete a topic with its records, epochs and committed offsets (if it exists)."""
    meta = topics.get(txn, dbs, name)
    if meta is not None:
        topics.delete(txn, dbs, meta)


def alter_topic(txn: lmdb.Transaction, dbs: Mapping[str, Any], name: str, raw: bytes) -> None:
    """Replace a topic's record with the leader's: config and partition count (another
    identity — id or creation uid — means another topic: it is deleted and created again)."""
    doc = _doc(name, raw)
    old = txn.get(name.encode(), db=dbs["topics"])
    if old is None:
        create_topic(txn, dbs, name, raw)
        return
    old_doc = json.loads(bytes(old))
    if _identity(old_doc) != _identity(doc):
        delete_topic(txn, dbs, name)
        create_topic(txn, dbs, name, raw)
        return
    tid = doc["id"]
    for p in range(old_doc["partitions"], doc["partitions"]):
        plog.store_state(txn, dbs, tid, p, PartitionState())
    for p in range(doc["partitions"], old_doc["partitions"]):
        prefix = schema.partition_key(tid, p)
        for db in ("batches", "partitions", "epochs"):
            topics.delete_prefix(txn, dbs[db], prefix)
    txn.put(name.encode(), bytes(raw), db=dbs["topics"])
    topics.bump_version(txn, dbs)


def topic_records(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> tuple[int, list[tuple[str, bytes]]]:
    """``(next_topic_id, [(name, record JSON)])``: the topic metadata a leader sends."""
    raw = txn.get(schema.META_NEXT_TOPIC_ID, db=dbs["meta"])
    next_id = schema.U32LE.unpack(bytes(raw))[0] if raw else 1
    with txn.cursor(db=dbs["topics"]) as cur:
        return next_id, [(bytes(k).decode(), bytes(v)) for k, v in cur]


def apply_topics(txn: lmdb.Transaction, dbs: Mapping[str, Any], next_topic_id: int,
                 records: Sequence[tuple[str, bytes]]) -> bool:
    """Make this directory's topics exactly the leader's; return whether anything changed.

    Topics the leader does not have (or has under another id) are deleted with their
    records; new ones are created with the leader's ids; changed ones altered.
    """
    leader: dict[str, tuple[bytes, tuple[int, str]]] = {}
    for name, raw in records:
        leader[name] = (bytes(raw), _identity(_doc(name, raw)))
    changed = False
    _, mine = topic_records(txn, dbs)
    for name, raw in mine:
        theirs = leader.get(name)
        if theirs is None or _identity(json.loads(raw)) != theirs[1]:  # same name, another topic
            delete_topic(txn, dbs, name)
            changed = True
    for name, (raw, _tid) in leader.items():
        current = txn.get(name.encode(), db=dbs["topics"])
        if current is None:
            create_topic(txn, dbs, name, raw)
            changed = True
        elif bytes(current) != raw:
            alter_topic(txn, dbs, name, raw)
            changed = True
    raw_next = txn.get(schema.META_NEXT_TOPIC_ID, db=dbs["meta"])
    if raw_next is None or schema.U32LE.unpack(bytes(raw_next))[0] != next_topic_id:
        _raise_next_topic_id(txn, dbs, next_topic_id)
    return changed


def _digest(items: Iterable[tuple[bytes, bytes]], head: bytes = b"") -> bytes:
    h = hashlib.blake2b(head, digest_size=16)
    n = struct.Struct("<I")
    for k, v in items:
        h.update(n.pack(len(k)))
        h.update(k)
        h.update(n.pack(len(v)))
        h.update(v)
    return h.digest()


def topics_digest(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> bytes:
    """A 16-byte digest of the topic metadata (records and next topic id): equal on a
    follower and its leader once the follower has applied the leader's metadata."""
    next_id, records = topic_records(txn, dbs)
    return _digest(((n.encode(), r) for n, r in records), schema.U32LE.pack(next_id))


class TopicsDigest:
    """``topics_digest``, computed again only when the topics version (which every change
    of a topic bumps) or the next topic id moved: what a leader answers and a follower
    asks with, on every fetch."""

    def __init__(self) -> None:
        self._last: tuple[tuple[int, bytes], bytes] | None = None

    def __call__(self, txn: lmdb.Transaction, dbs: Mapping[str, Any], *, cache: bool = True) -> bytes:
        """The digest as of ``txn``.  ``cache=False``: ``txn`` changed topics itself and
        may still abort — a later transaction could then reach the same version with
        other topics — so the digest is not remembered."""
        key = (topics.version(txn, dbs), bytes(txn.get(schema.META_NEXT_TOPIC_ID, db=dbs["meta"]) or b""))
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        digest = topics_digest(txn, dbs)
        if cache:
            self._last = (key, digest)
        return digest


# -- committed offsets ----------------------------------------------------------------------------
def offset_records(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> list[tuple[bytes, bytes]]:
    """Every committed-offset entry as stored: ``(key, value)`` in key order."""
    with txn.cursor(db=dbs["offsets"]) as cur:
        return [(bytes(k), bytes(v)) for k, v in cur]


#: ``id(dbs)`` -> ``(dbs, offsets version, digest)``: the last digest per store.  The entry
#: holds ``dbs`` itself, so the id cannot be reused by another store while it is cached.
_OFFSETS_DIGESTS: dict[int, tuple[Mapping[str, Any], int, bytes]] = {}
_OFFSETS_DIGESTS_MAX = 8


def offsets_digest(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> bytes:
    """A 16-byte digest of every committed offset.

    Cached per store and ``offsets_version`` (read in ``txn``, which every writer of
    ``offsets`` bumps in its own transaction), so a fetch pays one ``get`` while no
    committed offset changed; without a version it is computed every time.  A digest
    of offsets changed by ``txn`` itself is not cached: ``txn`` may still abort."""
    version = offsets_version(txn, dbs)
    if version is not None:
        hit = _OFFSETS_DIGESTS.get(id(dbs))
        if hit is not None and hit[0] is dbs and hit[1] == version:
            return hit[2]
    with txn.cursor(db=dbs["offsets"]) as cur:
        digest = _digest((bytes(k), bytes(v)) for k, v in cur)
    if version is not None and committed_view(txn, dbs):
        if id(dbs) not in _OFFSETS_DIGESTS and len(_OFFSETS_DIGESTS) >= _OFFSETS_DIGESTS_MAX:
            _OFFSETS_DIGESTS.pop(next(iter(_OFFSETS_DIGESTS)), None)
        _OFFSETS_DIGESTS[id(dbs)] = (dbs, version, digest)
    return digest


def apply_offsets(txn: lmdb.Transaction, dbs: Mapping[str, Any], records: Iterable[tuple[bytes, bytes]]) -> None:
    """Replace every committed offset with the leader's entries."""
    txn.drop(dbs["offsets"], delete=False)
    bump_offsets_version(txn, dbs)
    for key, value in records:
        if len(key) < 9 or key[-9] != 0 or len(value) < schema.COMMITTED.size:
            raise ApplyError(f"leader's committed-offset entry {key!r} is malformed")
        txn.put(bytes(key), bytes(value), db=dbs["offsets"])


# -- the leader's side: reading for a fetch ----------------------------------------------------------
@attrs.frozen
class MergedRead:
    """Batches read for a fetch, per ``(topic_id, partition)`` in offset order.

    ``complete``: every partition was read to its end (nothing was cut off).
    ``last_seq``: the highest commit sequence number included (0 if none).
    """

    batches: dict[tuple[int, int], list[bytes]]
    complete: bool
    last_seq: int
    size: int


def read_merged(txn: lmdb.Transaction, dbs: Mapping[str, Any], positions: Iterable[tuple[int, int, int]],
                max_bytes: int) -> MergedRead:
    """Read the batches from each ``(topic_id, partition, offset)`` on, merged by commit
    sequence number and cut only between sequence numbers.

    Batches of one write transaction share a commit sequence number, so the result holds
    all of a transaction's batches in these partitions or none of them: a follower that
    applies it in one transaction shows each leader transaction all at once.  Reading
    stops once ``max_bytes`` are taken, but always takes at least one whole transaction.
    """
    out: dict[tuple[int, int], list[bytes]] = {}
    heap: list[tuple[int, int, int]] = []
    cursors: dict[tuple[int, int], tuple[lmdb.Cursor, bytes]] = {}
    total = 0
    last = 0
    complete = True
    with ExitStack() as stack:
        for tid, part, offset in positions:
            cur = stack.enter_context(txn.cursor(db=dbs["batches"]))
            prefix = schema.partition_key(tid, part)
            if plog._locate(cur, prefix, tid, part, offset):
                cursors[(tid, part)] = (cur, prefix)
                heapq.heappush(heap, (codec.read_info(cur.value()).commit_seq, tid, part))
        while heap:
            seq = heap[0][0]
            if out and total >= max_bytes:
                complete = False
                break
            while heap and heap[0][0] == seq:
                _, tid, part = heapq.heappop(heap)
                cur, prefix = cursors[(tid, part)]
                value = bytes(cur.value())
                out.setdefault((tid, part), []).append(value)
                total += len(value)
                if cur.next() and bytes(cur.key()[:8]) == prefix:
                    heapq.heappush(heap, (codec.read_info(cur.value()).commit_seq, tid, part))
            last = seq
    return MergedRead(out, complete, last, total)


# -- this process's view of a running leader's high watermarks ---------------------------------------
class HighWatermarkBoard:
    """What ``acks="all"`` producers of this process learn from a replication leader
    running in it: the high watermarks it *stored*, and the in-sync set's size.

    A producer's flush returns once the high watermarks published here cover its
    records, so only values already written to the store are published (``publish``):
    when that flush returns, consumers of this process (which read the store) and
    ``delete_records`` see the records too.  Values the leader computed but has not
    stored yet are announced without their values (``signal``) when nobody waits; a
    producer about to wait, or woken, stores them itself through ``want`` (one LMDB
    commit, shared by every producer waiting then, and by the records of every
    acknowledgement so far); with producers waiting (``waiting``), the leader's thread
    that computed them stores and publishes them at once instead — so no high
    watermark is written for nobody.  Values only grow; ``close`` (the leader stopped)
    wakes every waiter.

    While the leader knows a newer leader epoch exists (``fence``), ``isr_size``,
    ``high_watermark`` and ``wait`` raise its ``FencedLeaderError``: an ``acks="all"``
    flush then fails before writing, and one already waiting fails at once.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self.version = 0
        self.live = True
        self._hws: dict[tuple[int, int], int] = {}
        self._waiting = 0
        self._isr_size = 1
        #: set by the leader: sends what its followers' parked fetches wait for now
        self.kick: Callable[[], None] | None = None
        #: set by the leader: stores the high watermarks it computed and has not stored
        #: yet, and publishes them (called by a producer's thread in ``wait``)
        self.want: Callable[[], None] | None = None
        #: the leader's error once it knows it was superseded (``fence``)
        self.fenced: EmbedlogError | None = None

    @property
    def isr_size(self) -> int:
        """Nodes in the in-sync set, the leader included (published once stored)."""
        self._check_fenced()
        return self._isr_size

    @property
    def waiting(self) -> int:
        """Producers waiting in ``wait`` now."""
        return self._waiting

    def _check_fenced(self) -> None:
        fenced = self.fenced
        if fenced is not None:
            raise _copy_error(fenced)

    def publish(self, hws: Mapping[tuple[int, int], int], isr_size: int | None = None) -> None:
        """Raise the published high watermarks (stored ones only) and set the in-sync
        set's size, in one step, and wake waiters.

        With waiters, the calling thread then yields the GIL once (``time.sleep(0)``):
        a woken producer would otherwise wait for whatever Python the publisher runs
        next (answering the follower's next fetch, writing the high watermark)."""
        with self._cond:
            for tp, hw in hws.items():
                if hw > self._hws.get(tp, -1):
                    self._hws[tp] = hw
            if isr_size is not None:
                self._isr_size = isr_size
            self.version += 1
            self._cond.notify_all()
            waiting = self._waiting
        if waiting:
            time.sleep(0)

    def signal(self) -> None:
        """The leader computed new high watermarks (not stored yet): wake waiters, which
        store them (``want``) and look again."""
        self.publish({})

    def nudge(self) -> None:
        """Called by an ``acks="all"`` producer of this process right after its commit:
        the leader sends the records to its waiting followers from the producer's thread,
        which is about to wait anyway, before its own thread would wake to do it."""
        kick = self.kick
        if kick is not None and self.live:
            with contextlib.suppress(Exception):  # (the leader's thread sends them then)
                kick()

    def high_watermark(self, tid: int, part: int) -> int:
        """The published (stored) high watermark of a partition (``-1`` if none)."""
        self._check_fenced()
        return self._hws.get((tid, part), -1)

    def wait(self, seen: int, timeout: float) -> int:
        """Block until a publication after version ``seen``, ``close``, or ``timeout``
        seconds; return the version.  Before blocking, and once woken, store what the
        leader computed and has not stored yet (``want``, in this thread): a producer
        wakes to find the values it waits for published.  Raises the leader's error if
        it is fenced (``fence``)."""
        self._want()
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while self.version == seen and self.live and self.fenced is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            finally:
                self._waiting -= 1
            version = self.version
        if version != seen:
            self._want()
        return self.version

    def _want(self) -> None:
        self._check_fenced()
        want = self.want
        if want is not None and self.live:
            want()

    def fence(self, error: EmbedlogError) -> None:
        """The leader learned it was superseded: producers raise ``error`` from now on
        (those waiting, at once)."""
        with self._cond:
            self.fenced = error
            self.version += 1
            self._cond.notify_all()

    def close(self) -> None:
        """The leader stopped: the store's values are the truth again."""
        with self._cond:
            self.live = False
            self.version += 1
            self._cond.notify_all()


_BOARDS: weakref.WeakKeyDictionary[Any, HighWatermarkBoard] = weakref.WeakKeyDictionary()
_BOARDS_LOCK = threading.Lock()
#: boards opened and not closed (a board whose store was collected unclosed stays counted:
#: ``hw_board`` then just looks it up) — every commit asks, and nearly always none runs
_open_boards = 0


def open_hw_board(store: Any) -> HighWatermarkBoard:
    """A new board for a leader starting on ``store`` (this process's shared store)."""
    global _open_boards  # noqa: PLW0603 - a module global: hw_board's cheapest look
    board = HighWatermarkBoard()
    with _BOARDS_LOCK:
        old = _BOARDS.get(store)
        if old is not None:
            old.close()
        else:
            _open_boards += 1
        _BOARDS[store] = board
    return board


def close_hw_board(store: Any, board: HighWatermarkBoard) -> None:
    """The leader that opened ``board`` on ``store`` stopped: close it, drop the leader's
    callbacks (they hold the leader, which holds the store: the weak mapping's value
    would keep its own key alive) and forget it."""
    board.close()
    board.want = None
    board.kick = None
    global _open_boards  # noqa: PLW0603 - see open_hw_board
    with _BOARDS_LOCK:
        if _BOARDS.get(store) is board:
            del _BOARDS[store]
            _open_boards -= 1


def hw_board(store: Any) -> HighWatermarkBoard | None:
    """The live board of a leader running on ``store`` in this process, or ``None``."""
    if not _open_boards:
        return None
    board = _BOARDS.get(store)
    return board if board is not None and board.live else None


def promotion_risk(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> str | None:
    """Why promoting this directory may lose acknowledged records, or ``None``: it is a
    replica that never heard from a leader, or that was out of the leader's in-sync set
    or behind its end offset when it last heard from it (``meta.follower``)."""
    if get_role(txn, dbs) != "replica":
        return None
    state = get_follower_state(txn, dbs)
    if state is None:
        return "it never received anything from a leader"
    who = f"leader {state.get('leader')} (epoch {state.get('epoch')})"
    if not state.get("in_sync"):
        return f"it was not in the in-sync set of {who} when it last heard from it"
    if state.get("lag", 0) > 0:
        return f"it was {state['lag']} record(s) behind {who} when it last heard from it"
    return None
