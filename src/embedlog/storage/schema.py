"""The on-disk key schema: every LMDB database, key and value layout, in one place.

A log directory holds one LMDB environment (``data.mdb``, ``lock.mdb``) and a
``wake/`` directory of Unix sockets used only to wake blocked consumers in other
processes.  ``docs/format.md`` describes the same layout for readers of the format.

Keys sort as bytes, so every integer in a key is fixed-width big-endian; values use
little-endian structs (or JSON for small, rarely written records).

Named databases (``FORMAT_VERSION`` 1)::

    meta        ascii name                      -> value (see META_* below)
    topics      topic name utf-8                -> JSON {"id", "partitions", "config", "created_ms", "uid",
                                                         "compacted" (only if true: its cleanup.policy
                                                         has included compact at some time)}
    topic_ids   topic_id u32be                  -> topic name utf-8
    partitions  topic_id u32be, partition u32be -> PartitionState (PARTITION struct)
    batches     topic_id u32be, partition u32be, base_offset u64be -> batch (codec/batch.py)
    epochs      topic_id u32be, partition u32be, epoch u32be -> start_offset u64le
                (leader-epoch history, KIP-101: the first offset written in each epoch)
    offsets     group utf-8, 0x00, topic_id u32be, partition u32be -> COMMITTED struct
                + metadata utf-8 (committed offset = the next offset to read)
    groups      group utf-8                     -> JSON group state (generation, members)

Struct values (little-endian, no padding)::

    PARTITION (56 bytes, "<QQQQQiIQ")
      offset size field
           0    8  start_offset    u64  log start: the first offset still stored
           8    8  end_offset      u64  the next offset to be written
          16    8  bytes           u64  bytes of the batches stored now
          24    8  batches         u64  batches stored now
          32    8  high_watermark  u64  consumers read below it
          40    4  leader_epoch    i32  the newest leader epoch of its batches (its epoch history's last)
          44    4  reserved        u32  0
          48    8  bytes_in        u64  bytes ever appended (retention's and metrics' counter)
    COMMITTED (20 bytes, "<qiq"), then the metadata utf-8 (to the end of the value)
           0    8  offset          i64  the next offset to read
           8    4  leader_epoch    i32  the partition's leader epoch at the commit (-1: none)
          12    8  commit_ms       i64  wall clock ms of the commit

``meta`` keys: ``format_version`` (u32le), ``created_ms`` (i64le), ``next_topic_id``
(u32le; ids are never reused, so a recreated topic is a new topic), ``commit_seq``
(u64le; bumped by every write transaction of the group committer — records appended,
offsets committed, or both — and stamped into the batches it appends, so a replica can
apply one transaction's batches atomically), ``leader_epoch``
(i32le; the epoch this directory writes with), ``role`` (``leader`` or ``replica``),
``topics_version`` (u64le; bumped on every topic create, alter or delete so caches in
other processes notice), ``groups_version`` (u64le; bumped on every group membership or
ownership change, so members notice a rebalance with one read), ``offsets_version``
(u64le; bumped by every write transaction that puts or deletes ``offsets`` entries, so
replication recomputes its digest of the committed offsets only when they changed;
absent until offsets are first written), ``producer_epoch:<transactional id utf-8>``
(u64le; the epoch of a Kafka-client shim's transactional id, ``#`` and the hex BLAKE2b-256
digest of it for an id over 256 bytes; bumped by each
``init_transactions``: a transaction committed with an older epoch is refused, so a
producer in another process fences its predecessor as Kafka's broker does).

Replication (``embedlog.replication``; ``storage/replica.py`` reads and writes these):
``replicating`` (``1`` while a replicating leader runs on this directory: appends then
leave ``high_watermark`` alone and the leader advances it as followers acknowledge;
absent or ``0``: an append sets ``high_watermark`` to the end offset).  The flag is a
lease: the running leader holds an exclusive ``flock`` on ``<log>/leader.lease`` (an
empty file; the kernel releases the lock when the process dies, ``kill -9`` included).
A ``1`` whose lease is free was left by a leader that died without stopping. It still
holds for appends, which leave ``high_watermark`` alone (records appended meanwhile stay
hidden: the in-sync follower may lack them, and a failover to it would take them back),
until a ``Leader`` runs here again (it takes the lease and moves the high watermarks as
its followers acknowledge) or a ``Leader``'s stop writes ``0``; readers that count the
in-sync set (``min.insync.replicas`` checks) count this node alone meanwhile, and
replication status reports it (``stale_lease``).  The leader writes
``high_watermark`` after it told its own process's producers (one write at a time,
coalescing what comes meanwhile; at once with any ``isr`` change): it may lag what
followers acknowledged, never lead it, so after a crash it is lower, which hides
records a while but never shows an unreplicated one; the leader recomputes it from
the followers' acknowledgements.  ``isr`` (JSON
``{"epoch", "leader", "isr": [follower node ids], "size", "updated_ms"}``, written by
the leader; ``size`` counts the leader itself, for ``min.insync.replicas``),
``follower`` (JSON ``{"leader", "epoch", "in_sync", "lag"}``, and ``"behind": {"<topic
id>:<partition>": leader end offset}`` for the partitions it lacked records of: what a
follower last heard from its leader, updated with each response it applies; ``promote``
warns when it says the node was out of sync, and removes it; a consumer there waits at a
position past the end up to such a partition's leader end),
``node_id`` (ascii hex; this directory's identity as a replica, made on first use),
``node_file`` (ascii decimal: the inode number of ``data.mdb`` when ``node_id`` was
made or last checked; a directory copied to start another node has a new ``data.mdb``,
so its next follow or lead gives it a ``node_id`` of its own, after writing the epochs it
led so far to ``epoch_leaders`` under the old one),
``epoch_leaders`` (JSON ``{"<epoch>": "<node id>"}``: which node led each epoch whose
records this directory holds; an epoch in the ``epochs`` history with no entry was
written here.  Epoch numbers alone are not unique when two nodes are promoted from the
same epoch; a follower drops its records of any epoch its leader says someone else led).
A replica's batches are byte-for-byte the leader's as replicated, with the leader's base
offsets, epochs and commit sequence numbers; its ``topics`` values and ``offsets`` entries
are the leader's bytes too.  Each node runs retention and compaction on its own
schedule, so two in-sync nodes hold the same live records at the same offsets, not
always the same batches.  (A follower offline for longer than a compacted topic's
``delete.retention.ms`` never sees the tombstones its leader dropped meanwhile, and
keeps those keys' earlier records, as a Kafka replica out that long can.)
"""

from __future__ import annotations

import builtins
import struct

import attrs

__all__ = [
    "COMMITTED",
    "DB_NAMES",
    "FORMAT_VERSION",
    "PARTITION",
    "PartitionState",
    "batch_key",
    "committed_key",
    "epoch_key",
    "partition_key",
    "topic_id_key",
]

FORMAT_VERSION = 1
DB_NAMES = ("meta", "topics", "topic_ids", "partitions", "batches", "epochs", "offsets", "groups")

META_FORMAT_VERSION = b"format_version"
META_CREATED_MS = b"created_ms"
META_NEXT_TOPIC_ID = b"next_topic_id"
META_COMMIT_SEQ = b"commit_seq"
META_LEADER_EPOCH = b"leader_epoch"
META_ROLE = b"role"
META_TOPICS_VERSION = b"topics_version"
META_GROUPS_VERSION = b"groups_version"
META_OFFSETS_VERSION = b"offsets_version"
META_REPLICATING = b"replicating"
META_ISR = b"isr"
META_NODE_ID = b"node_id"
META_NODE_FILE = b"node_file"
META_EPOCH_LEADERS = b"epoch_leaders"
META_FOLLOWER = b"follower"
META_PRODUCER_EPOCH = b"producer_epoch:"  # + transactional id utf-8

U32LE = struct.Struct("<I")
U64LE = struct.Struct("<Q")
I32LE = struct.Struct("<i")
I64LE = struct.Struct("<q")

_TP = struct.Struct(">II")
_BATCH = struct.Struct(">IIQ")
_EPOCH = struct.Struct(">III")
_TID = struct.Struct(">I")

#: PartitionState: start_offset, end_offset, bytes (on disk now), batches,
#: high_watermark, leader_epoch, reserved, bytes_in (ever appended).
PARTITION = struct.Struct("<QQQQQiIQ")
#: committed offset: offset, leader_epoch, commit_timestamp_ms (then metadata utf-8).
COMMITTED = struct.Struct("<qiq")


@attrs.define
class PartitionState:
    """A partition's offsets and size, stored atomically with its batches."""

    start_offset: int = 0
    end_offset: int = 0
    bytes: int = 0
    batches: int = 0
    high_watermark: int = 0
    leader_epoch: int = 0
    bytes_in: int = 0

    def pack(self) -> builtins.bytes:
        """Encode as ``PARTITION``."""
        return PARTITION.pack(self.start_offset, self.end_offset, self.bytes, self.batches,
                              self.high_watermark, self.leader_epoch, 0, self.bytes_in)

    @classmethod
    def unpack(cls, data: builtins.bytes) -> PartitionState:
        """Decode a ``PARTITION`` value."""
        s, e, b, n, hw, ep, _, bi = PARTITION.unpack(data)
        return cls(s, e, b, n, hw, ep, bi)


def topic_id_key(topic_id: int) -> bytes:
    """Key of ``topic_ids``."""
    return _TID.pack(topic_id)


def partition_key(topic_id: int, partition: int) -> bytes:
    """Key of ``partitions``; also the prefix of that partition's ``batches`` keys."""
    return _TP.pack(topic_id, partition)


def batch_key(topic_id: int, partition: int, base_offset: int) -> bytes:
    """Key of ``batches``."""
    return _BATCH.pack(topic_id, partition, base_offset)


def unpack_batch_key(key: bytes) -> tuple[int, int, int]:
    """Inverse of ``batch_key``."""
    return _BATCH.unpack(key)


def epoch_key(topic_id: int, partition: int, epoch: int) -> bytes:
    """Key of ``epochs``."""
    return _EPOCH.pack(topic_id, partition, epoch)


def committed_key(group: str, topic_id: int, partition: int) -> bytes:
    """Key of ``offsets``; group names may not contain NUL."""
    return group.encode("utf-8") + b"\x00" + _TP.pack(topic_id, partition)


def unpack_committed_key(key: bytes) -> tuple[str, int, int]:
    """Inverse of ``committed_key``."""
    group, rest = key[:-9], key[-8:]
    tid, part = _TP.unpack(rest)
    return group.decode("utf-8"), tid, part
