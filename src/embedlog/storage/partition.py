"""A partition's log inside LMDB: append, locate, read, and trim batches.

Each function takes an open transaction.  Reads expect a ``buffers=True`` transaction
and decode what they return before it ends (no memoryview escapes).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

import lmdb

from ..codec import batch as codec
from ..config import TopicConfig
from ..errors import CorruptRecordError
from . import schema
from .schema import PartitionState

__all__ = [
    "append",
    "count_records",
    "delete_before",
    "fetch",
    "load_state",
    "offset_for_time",
    "store_state",
]

_COUNT = __import__("struct").Struct("<II")  # record_count, last_offset_delta at byte 28


def load_state(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int) -> PartitionState | None:
    """The partition's state, or ``None`` if it does not exist."""
    raw = txn.get(schema.partition_key(tid, part), db=dbs["partitions"])
    return None if raw is None else PartitionState.unpack(bytes(raw))


def store_state(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int,
                state: PartitionState) -> None:
    """Write the partition's state."""
    txn.put(schema.partition_key(tid, part), state.pack(), db=dbs["partitions"])


def append(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int, state: PartitionState,
           buf: bytearray, *, epoch: int, commit_seq: int, now_ms: int, config: TopicConfig,
           advance_hw: bool = True, keep_from: int | None = None) -> int:
    """Append one encoded batch at the partition's end; return its base offset.

    Updates ``state`` in place (the caller stores it once per transaction) and records
    a new leader epoch in the epoch history.  Enforces ``retention.bytes`` right away,
    so a busy partition never grows far past it between maintenance runs.  The high
    watermark follows the end offset unless ``advance_hw`` is false (a replicating
    leader: its ``Leader`` advances it as followers acknowledge).  ``keep_from``: the
    partition's end offset when the write transaction began; ``retention.bytes`` never
    deletes a batch from there on (Kafka never deletes the active segment): a transaction's
    records, or a flush's, are never cut in the commit that writes them.
    """
    base = state.end_offset
    codec.stamp(buf, base, epoch, commit_seq)
    if config.log_append_time:
        codec.restamp_log_append_time(buf, now_ms)
    _count, lod = _COUNT.unpack_from(buf, 28)
    txn.put(schema.batch_key(tid, part, base), buf, db=dbs["batches"])
    if epoch > state.leader_epoch or base == 0:
        txn.put(schema.epoch_key(tid, part, epoch), schema.U64LE.pack(base), db=dbs["epochs"])
        state.leader_epoch = max(epoch, state.leader_epoch)
    state.end_offset = base + lod + 1
    state.bytes += len(buf)
    state.bytes_in += len(buf)
    state.batches += 1
    if advance_hw:
        state.high_watermark = state.end_offset
    if config.delete and config.retention_bytes >= 0 and state.bytes > config.retention_bytes:
        _trim_to_size(txn, dbs, tid, part, state, config.retention_bytes,
                      state.end_offset if keep_from is None else keep_from)
    return base


def count_records(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int) -> int:
    """The records the partition's batches hold (each batch header's count): fewer than
    ``end_offset - start_offset`` once compaction removed some.  Reads every batch's
    header: for tools, not for a hot path."""
    prefix = schema.partition_key(tid, part)
    total = 0
    with txn.cursor(db=dbs["batches"]) as cur:
        if not cur.set_range(prefix):
            return 0
        for key, value in cur:
            if bytes(key[:8]) != prefix:
                break
            if len(value) >= 36:
                total += _COUNT.unpack_from(value, 28)[0]
    return total


def _corrupt(tid_name: str, part: int, offset: int, exc: Exception) -> CorruptRecordError:
    return CorruptRecordError(
        f"corrupt batch in {tid_name}[{part}] at offset {offset}: {exc}; run `embedlog verify` "
        "and restore the partition from a replica or backup", topic=tid_name, partition=part, offset=offset)


def _trim_to_size(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int,
                  state: PartitionState, limit: int, keep_from: int) -> None:
    prefix = schema.partition_key(tid, part)
    with txn.cursor(db=dbs["batches"]) as cur:
        if not cur.set_range(prefix):
            return
        while state.bytes > limit:
            key = cur.key()
            if bytes(key[:8]) != prefix:
                break
            value = cur.value()
            size = len(value)
            if state.bytes - size < limit:
                break
            try:
                info = codec.read_info(value)
            except codec.CorruptBatchError:
                break  # (a damaged header: retention stops before it; maintain() reports it)
            next_offset = info.next_offset
            if next_offset > state.high_watermark:
                break  # never past the high watermark: a replicating leader's followers may lack it
            if next_offset > keep_from:
                break  # written by this transaction
            cur.delete()
            state.bytes -= size
            state.batches -= 1
            state.start_offset = max(state.start_offset, next_offset)
            if bytes(cur.key()[:8]) != prefix:
                break


def delete_before(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int,
                  state: PartitionState, *, offset: int) -> int:
    """Delete whole batches from the partition's start while they end before ``offset``,
    and start the partition at ``offset`` (within its end); return how many batches were
    deleted.  Offsets are never reused.  (Retention picks ``offset``: ``_retention_end``
    in ``store.py``.)
    """
    deleted = 0
    prefix = schema.partition_key(tid, part)
    with txn.cursor(db=dbs["batches"]) as cur:
        if not cur.set_range(prefix):
            return 0
        while bytes(cur.key()[:8]) == prefix:
            value = cur.value()
            try:
                next_offset = codec.read_info(value).next_offset
            except codec.CorruptBatchError:  # (a damaged header: what follows bounds it)
                next_offset = _damaged_end(txn, dbs, tid, part, schema.unpack_batch_key(bytes(cur.key()))[2], state)
            size = len(value)
            if next_offset > offset:
                break
            cur.delete()
            deleted += 1
            state.bytes -= size
            state.batches -= 1
            state.start_offset = max(state.start_offset, next_offset)
            if not cur.key():
                break
    if offset > state.start_offset:
        state.start_offset = min(offset, state.end_offset)
    if state.batches == 0:
        state.start_offset = state.end_offset
    return deleted


def _damaged_end(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int, base: int,
                 state: PartitionState) -> int:
    """Where a batch at ``base`` whose header cannot be read ends at the latest: the next
    batch's base offset (offsets only grow), else the partition's end.  So deleting
    records before an offset past it deletes it too, instead of failing on it."""
    prefix = schema.partition_key(tid, part)
    with txn.cursor(db=dbs["batches"]) as peek:
        if peek.set_range(schema.batch_key(tid, part, base + 1)) and bytes(peek.key()[:8]) == prefix:
            return int(schema.unpack_batch_key(bytes(peek.key()))[2])
    return state.end_offset


def _locate(cur: lmdb.Cursor, prefix: bytes, tid: int, part: int, offset: int) -> bool:
    """Put ``cur`` on the batch holding ``offset``, or the first one after it."""
    if cur.set_range(schema.batch_key(tid, part, offset)):
        key = bytes(cur.key())
        if key[:8] == prefix and schema.unpack_batch_key(key)[2] == offset:
            return True
        if cur.prev():
            pkey = bytes(cur.key())
            if pkey[:8] == prefix and codec.read_info(cur.value()).next_offset > offset:
                return True
            cur.next()
        else:  # a failed prev() unpositions the cursor: the key found was the database's first
            cur.first()
        return bytes(cur.key()[:8]) == prefix
    # past the last key of the database: the partition's last batch may still hold it
    if cur.last():
        pkey = bytes(cur.key())
        if pkey[:8] == prefix and codec.read_info(cur.value()).next_offset > offset:
            return True
    return False


def _seek(txn: lmdb.Transaction, db: Any, prefix: bytes, tid: int, part: int,
          offset: int) -> tuple[int, Any] | None:
    """The base offset and stored bytes of the batch holding ``offset``, or of the first
    one after it, or ``None``."""
    with txn.cursor(db=db) as cur:
        if not _locate(cur, prefix, tid, part, offset):
            return None
        return schema.unpack_batch_key(bytes(cur.key()))[2], cur.value()


def first_index(batch: codec.DecodedBatch, offset: int) -> int:
    """Index in ``batch`` of its first record at or after ``offset``."""
    offsets = batch.offsets
    if offsets.__class__ is range:
        return max(0, offset - offsets.start)
    return bisect_left(offsets, offset)


def fetch(txn: lmdb.Transaction, dbs: Mapping[str, Any], topic: str, tid: int, part: int,
          offset: int, *, max_bytes: int = 1 << 20, max_records: int = 1,
          end_offset: int | None = None) -> list[codec.DecodedBatch]:
    """Decode the batches from the one holding ``offset`` onward (at least one if any).

    Stops once the batches hold ``max_records`` records at or after ``offset`` or
    ``max_bytes`` of stored batches, and before any batch at or beyond ``end_offset``
    (the visibility limit, e.g. the high watermark).  A log of small batches (a flush a
    record) thus fills a poll as one of big batches does, as Kafka's fetch, bounded by
    bytes, not batches, does.  A damaged batch raises ``CorruptRecordError`` when it is
    the first; after others, the fetch stops before it (the next one starts there).

    Each batch is looked up by the key its predecessor's end gives (a cursor only
    where that misses: ``offset`` inside a batch, or a gap left by compaction): one
    LMDB call a batch, where a cursor step and its value are two, and each call
    releases the GIL, a chance for another thread to take it (consumers on several
    threads lost throughput to those hand-offs).
    """
    db = dbs["batches"]
    prefix = schema.partition_key(tid, part)
    out: list[codec.DecodedBatch] = []
    total = 0
    base = offset
    value = txn.get(schema.batch_key(tid, part, base), db=db)
    while True:
        if value is None:
            found = _seek(txn, db, prefix, tid, part, base)
            if found is None:
                break
            base, value = found
        if end_offset is not None and base >= end_offset:
            break
        try:
            decoded = codec.decode(value)
            if decoded.info.base_offset != base:
                raise codec.CorruptBatchError("batch offset does not match its key")
        except codec.CorruptBatchError as exc:
            if out:  # the batches before it are returned; the fetch that starts at it raises
                break
            raise _corrupt(topic, part, base, exc) from None
        info = decoded.info
        out.append(decoded)
        total += info.size
        if len(out) == 1:  # the first batch: only its records at or after ``offset`` count
            records = len(decoded.offsets) - first_index(decoded, offset)
        else:
            records += len(decoded.offsets)
        if total >= max_bytes or records >= max_records:
            break
        base += info.last_offset_delta + 1
        if end_offset is not None and base >= end_offset:
            break  # the next batch is not visible: no lookup
        value = txn.get(schema.batch_key(tid, part, base), db=db)
    return out


def offset_for_time(txn: lmdb.Transaction, dbs: Mapping[str, Any], topic: str, tid: int, part: int,
                    timestamp_ms: int) -> tuple[int, int] | None:
    """The earliest (offset, timestamp) whose timestamp >= ``timestamp_ms``, or ``None``;
    among the records consumers may read (below the high watermark, as Kafka's
    ListOffsets answers).

    Scans batch headers (their max timestamp) and decodes only the batch that may hold
    the answer, as Kafka's time index does.  Every header it goes by is checked first
    (its checksum, and its base offset against its key): a damaged one raises
    ``CorruptRecordError`` rather than skip the batch holding the answer in silence.
    """
    prefix = schema.partition_key(tid, part)
    state = load_state(txn, dbs, tid, part)
    if state is None:
        return None
    start = state.start_offset  # delete_records may hide a batch's first records
    end = state.high_watermark  # (with replication: records above it may be taken back)
    with txn.cursor(db=dbs["batches"]) as cur:
        if not cur.set_range(prefix):
            return None
        while bytes(cur.key()[:8]) == prefix:
            value = cur.value()
            base = schema.unpack_batch_key(bytes(cur.key()))[2]
            if base >= end:
                return None
            try:
                info = codec.verify(value)
                if info.base_offset != base:
                    raise codec.CorruptBatchError("batch offset does not match its key")
                if info.max_timestamp >= timestamp_ms and info.next_offset > start:
                    decoded = codec.decode(value)
                    for off, ts in zip(decoded.offsets, decoded.timestamps):
                        if off >= end:
                            return None
                        if ts >= timestamp_ms and off >= start:
                            return off, ts
            except codec.CorruptBatchError as exc:
                raise _corrupt(topic, part, base, exc) from None
            if not cur.next():
                break
    return None


def first_batch(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int,
                part: int) -> tuple[codec.BatchInfo, int] | None:
    """The header and stored size of the partition's first batch, or ``None``."""
    prefix = schema.partition_key(tid, part)
    with txn.cursor(db=dbs["batches"]) as cur:
        if not cur.set_range(prefix) or bytes(cur.key()[:8]) != prefix:
            return None
        value = cur.value()
        return codec.read_info(value), len(value)


def iter_infos(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int) -> list[codec.BatchInfo]:
    """Headers of every batch of the partition, in offset order."""
    prefix = schema.partition_key(tid, part)
    out: list[codec.BatchInfo] = []
    with txn.cursor(db=dbs["batches"]) as cur:
        if not cur.set_range(prefix):
            return out
        while bytes(cur.key()[:8]) == prefix:
            out.append(codec.read_info(cur.value()))
            if not cur.next():
                break
    return out
