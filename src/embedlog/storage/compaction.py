"""Log compaction (``cleanup.policy=compact``), as Kafka's log cleaner does it.

For every key, the latest record is kept with its original offset; older records of
that key are removed.  Tombstones (``value=None``) are kept for
``delete.retention.ms`` after the compaction that first saw them (the batch's delete
horizon, Kafka's KIP-534: a record's own timestamp may be far in the past), so that
consumers see the delete, then removed.  Nothing from the first batch holding a record
newer than ``min.compaction.lag.ms`` on (Kafka's first uncleanable segment), nor the
partition's last batch (Kafka's active segment), is ever compacted, nor is anything at
or above the high watermark: on a replicating leader those records may
not be on the followers yet (a failover can take them back), so they neither get
rewritten nor count as the latest record of their key.  Rewritten batches keep their
base offset and the range of offsets they cover (sparse offsets in the batch format),
so offsets are never reused and consumers skip the gaps.

A partition is compacted in two passes, so that neither memory nor LMDB's write lock
grows with its size:

1. ``scan`` reads it in one read transaction (no lock: writers go on) and keeps only
   the offset of every key's latest record (Kafka's offset map); a key of 16 bytes or
   more is kept as a 16-byte BLAKE2b digest of it, as Kafka's map keeps an MD5 hash.
2. ``compact_chunk`` rewrites its batches in write transactions of at most
   ``CHUNK_BYTES`` of batches each (producers wait for one chunk at a time, not for the
   whole partition).  Each first checks that the partition is still the one scanned:
   the same topic, and the same last batch scanned (a replica's truncation removes a
   suffix of the log, so any change below that batch changes it too).  If not, the
   pass stops and the next ``maintain`` starts again; what was rewritten stays right,
   because every key's latest record is kept whatever the other records are.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import attrs
import lmdb

from ..codec import batch as codec
from ..errors import CorruptRecordError
from . import partition as plog
from . import schema, topics

#: the largest timestamp a batch header holds (i64 ms)
_MAX_MS = 2**63 - 1

__all__ = ["CHUNK_BYTES", "PartitionChanged", "PartitionScan", "compact_all", "compact_chunk", "compact_partition",
           "scan"]

#: a partition's next compaction when no timer runs: only a change (a new record) brings it
_NEVER = 2**63
#: the most bytes of stored batches one write transaction of compaction reads and rewrites
CHUNK_BYTES = 1 << 20
_DIGEST_FROM = 16  # keys this long or longer are kept in the offset map as a digest


def _slot(key: bytes | None) -> bytes | None:
    """A key's entry in the offset map: itself when short, else its 16-byte digest (a
    shorter key never equals a digest)."""
    if key is None or len(key) < _DIGEST_FROM:
        return key
    return hashlib.blake2b(key, digest_size=16).digest()


@attrs.frozen
class PartitionScan:
    """What ``scan`` learned of a partition, for ``compact_chunk``."""

    topic_id: int
    partition: int
    #: where the compactable part ends (the high watermark, or before the first batch
    #: newer than ``min.compaction.lag.ms``): records from it on are neither compacted nor
    #: counted
    high_watermark: int
    #: offset-map entry (``_slot``) -> offset of that key's latest record below it
    latest: dict[bytes | None, int]
    #: base offset of the first batch never compacted this pass (the last batch, or the
    #: first one reaching the high watermark): the end of the batches compacted
    end: int
    #: key and header of the last batch holding a record below the high watermark
    guard_key: bytes
    guard_header: bytes


def _decode(buf: Any, key: Any, name: str, part: int) -> codec.DecodedBatch:
    try:
        return codec.decode(buf)
    except codec.CorruptBatchError as exc:
        base = schema.unpack_batch_key(bytes(key))[2]
        raise CorruptRecordError(f"cannot compact {name}[{part}]: batch at {base} is corrupt: {exc}",
                                 topic=name, partition=part, offset=base) from None


def scan(txn: lmdb.Transaction, dbs: Any, meta: topics.TopicMeta, part: int,
         now_ms: int | None = None) -> PartitionScan | None:
    """Pass one: the latest offset of every key in the compactable part of the log, or
    ``None`` when there is nothing to compact (fewer than two batches).

    That part ends at the high watermark, and (``min.compaction.lag.ms``, with
    ``now_ms``) at the first batch holding a record newer than the lag, as Kafka's
    cleaner stops at its first uncleanable segment: a record after it neither is
    compacted nor counts as its key's latest (a tombstone timestamped before the value
    it deletes must not go while that value stays)."""
    tid = meta.topic_id
    st = plog.load_state(txn, dbs, tid, part)
    if st is None or st.batches < 2:
        return None
    hw = st.high_watermark
    lag = meta.config.min_compaction_lag_ms
    lag_limit = None if now_ms is None or lag <= 0 else now_ms - lag
    prefix = schema.partition_key(tid, part)
    latest: dict[bytes | None, int] = {}
    end = -1
    last_base = -1
    guard_key = guard_header = b""
    with txn.cursor(db=dbs["batches"]) as cur:
        if not cur.set_range(prefix):
            return None
        while bytes(cur.key()[:8]) == prefix:
            value = cur.value()
            try:
                info = codec.read_info(value)  # (a batch past the compactable part is not decoded)
            except codec.CorruptBatchError:
                info = _decode(value, cur.key(), meta.name, part).info  # (raises, naming it)
            last_base = info.base_offset
            if lag_limit is not None and info.max_timestamp > lag_limit:
                hw = min(hw, info.base_offset)  # (nothing from this batch on is compactable)
            if end < 0 and info.next_offset > hw:
                end = info.base_offset
            if info.base_offset < hw:
                b = _decode(value, cur.key(), meta.name, part)
                if info.next_offset <= hw:
                    latest.update(zip(map(_slot, b.keys), b.offsets))
                else:
                    latest.update((_slot(k), off) for k, off in zip(b.keys, b.offsets) if off < hw)
                guard_key = bytes(cur.key())
                guard_header = bytes(cur.value()[:codec.HEADER_SIZE])
            if not cur.next():
                break
    if not guard_key:
        return None
    return PartitionScan(tid, part, hw, latest, last_base if end < 0 else min(end, last_base), guard_key,
                         guard_header)


def _unchanged(txn: lmdb.Transaction, dbs: Any, name: str, s: PartitionScan) -> topics.TopicMeta | None:
    """The topic, if the partition is still the one ``s`` scanned and still compacted."""
    current = topics.get(txn, dbs, name)
    if current is None or current.topic_id != s.topic_id or not current.config.compact:
        return None
    buf = txn.get(s.guard_key, db=dbs["batches"])
    if buf is None or bytes(buf[:codec.HEADER_SIZE]) != s.guard_header:
        return None
    return current


class PartitionChanged(Exception):
    """Raised by ``compact_chunk`` before it writes anything: the partition is no longer
    the one ``scan`` read (the topic was deleted or recreated, no longer compacted, or its
    last batch scanned was truncated or rewritten)."""


def compact_chunk(txn: lmdb.Transaction, dbs: Any, name: str, s: PartitionScan, start: int, now_ms: int,
                  horizons: list[int] | None = None, budget: int | None = None) -> tuple[int, int | None]:
    """Pass two, one write transaction: compact the batches from offset ``start`` (up to
    about ``budget`` bytes of them, ``CHUNK_BYTES`` by default) by ``s``; return the records removed and the offset
    to go on from (``None``: done).  ``horizons`` gets the delete horizon of every batch
    left holding tombstones.  Raises ``PartitionChanged``, having written nothing, if
    the partition is not the one ``s`` scanned."""
    meta = _unchanged(txn, dbs, name, s)
    if meta is None:
        raise PartitionChanged(f"{name}[{s.partition}] changed since it was scanned")
    if budget is None:
        budget = CHUNK_BYTES
    cfg = meta.config
    tid, part = s.topic_id, s.partition
    prefix = schema.partition_key(tid, part)
    chunk: list[codec.DecodedBatch] = []
    size = 0
    after: int | None = None
    with txn.cursor(db=dbs["batches"]) as cur:
        if cur.set_range(schema.batch_key(tid, part, start)):
            while bytes(cur.key()[:8]) == prefix:
                base = schema.unpack_batch_key(bytes(cur.key()))[2]
                if base >= s.end:
                    break
                if size >= budget:
                    after = base
                    break
                b = _decode(cur.value(), cur.key(), name, part)
                chunk.append(b)
                size += b.info.size
                if not cur.next():
                    break
    if not chunk:
        return 0, None
    st = plog.load_state(txn, dbs, tid, part)
    if st is None:
        return 0, None
    latest = s.latest
    removed = 0
    rewritten = False
    for b in chunk:
        info = b.info
        horizon = info.delete_horizon
        keep = []
        tombstones_kept = False
        # (min.compaction.lag.ms ended the scanned part at its first batch newer than the lag:
        # no record here is; record timestamps are not looked at, as in Kafka's cleaner)
        for i, (k, off) in enumerate(zip(b.keys, b.offsets)):
            if k is not None and latest.get(_slot(k)) == off:  # the latest record of its key
                if b.values[i] is not None:
                    keep.append(i)
                    continue
                # A tombstone: kept delete.retention.ms from the compaction that first saw
                # it (Kafka's delete horizon), not from its own timestamp, which a
                # producer may have set in the past.
                if horizon is None:  # (clamped: delete.retention.ms may be Kafka's "forever", 2**63-1)
                    horizon = min(now_ms + cfg.delete_retention_ms, _MAX_MS)
                if now_ms < horizon:
                    keep.append(i)
                    tombstones_kept = True
        horizon = horizon if tombstones_kept else None
        if horizon is not None and horizons is not None:
            horizons.append(horizon)
        if len(keep) == len(b.keys) and horizon == info.delete_horizon:
            continue
        removed += len(b.keys) - len(keep)
        rewritten = True
        key = schema.batch_key(tid, part, info.base_offset)
        old_size = info.size
        if not keep:
            txn.delete(key, db=dbs["batches"])
            st.bytes -= old_size
            st.batches -= 1
            continue
        buf = codec.encode(
            [b.keys[i] for i in keep], [b.values[i] for i in keep], [b.timestamps[i] for i in keep],
            [b.headers[i] for i in keep] if b.headers is not None else None,
            compression=info.attributes & codec.ATTR_COMPRESSION_MASK,
            offset_deltas=[b.offsets[i] - info.base_offset for i in keep],
            last_offset_delta=info.last_offset_delta,
            log_append_time=bool(info.attributes & codec.ATTR_LOG_APPEND_TIME),
            transactional=bool(info.attributes & codec.ATTR_TRANSACTIONAL),
            delete_horizon=horizon)
        codec.stamp(buf, info.base_offset, info.leader_epoch, info.commit_seq)
        txn.put(key, buf, db=dbs["batches"])
        st.bytes += len(buf) - old_size
    if rewritten:
        plog.store_state(txn, dbs, tid, part, st)
    return removed, after


def compact_partition(txn: lmdb.Transaction, dbs: Any, meta: topics.TopicMeta, part: int, now_ms: int,
                      horizons: list[int] | None = None) -> int:
    """Compact one partition whole inside ``txn`` (both passes in one transaction);
    return how many records were removed."""
    s = scan(txn, dbs, meta, part, now_ms)
    if s is None:
        return 0
    removed, start = 0, 0
    while True:
        n, nxt = compact_chunk(txn, dbs, meta.name, s, start, now_ms, horizons, budget=2**62)
        removed += n
        if nxt is None:
            return removed
        start = nxt


def _fingerprint(st: Any) -> tuple[int, ...]:
    """What changes in a partition's state when anything but compaction changes it:
    records written (``bytes_in`` only grows, so a replica's truncation and the records
    written after it, to the same end offset, change it too), retention, the high
    watermark, the leader epoch.  Compaction changes none of these."""
    return st.start_offset, st.end_offset, st.high_watermark, st.leader_epoch, st.bytes_in


def _state(store: Any, tid: int, part: int) -> Any:
    return store.read(lambda txn: plog.load_state(txn, store.dbs, tid, part))


def _compact_in_chunks(store: Any, meta: topics.TopicMeta, part: int, now_ms: int, horizons: list[int]) -> int:
    """Both passes over one partition, each chunk in its own write transaction; return
    the records removed."""
    s = store.read(lambda txn: scan(txn, store.dbs, meta, part, now_ms))
    if s is None:
        return 0
    # (delete horizons count from this compaction, which saw records written after now_ms)
    now_ms = max(now_ms, time.time_ns() // 1_000_000)
    total = 0
    start: int | None = 0
    while start is not None:
        mark = len(horizons)

        def fn(txn: lmdb.Transaction, start: int = start, mark: int = mark) -> tuple[int, int | None]:
            del horizons[mark:]  # (a retry after the map grew: its first try's are not stored)
            return compact_chunk(txn, store.dbs, meta.name, s, start, now_ms, horizons)

        removed, start = store.write(fn)
        total += removed
    return total


def compact_all(store: Any, now_ms: int | None = None, errors: list[Exception] | None = None) -> int:
    """Compact every partition of every compacted topic; return records removed.

    A partition that fails (a damaged batch, say) does not stop the others: its error
    goes to ``errors``, or, without that list, the first one is raised once every other
    partition was compacted."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    total = 0
    failed: list[Exception] = [] if errors is None else errors
    for name in store.topic_names():
        meta = store.topic(name)
        if meta is None or not meta.config.compact:
            continue
        memo = store.compaction_memo
        cfg = meta.config
        lag = cfg.min_compaction_lag_ms
        for part in range(meta.partitions):
            # Skip a partition nothing happened to since its last compaction until a timer
            # may have run out: the earliest delete horizon of its tombstones, or
            # min.compaction.lag.ms for records too recent at that compaction.
            st = _state(store, meta.topic_id, part)
            if st is None or st.batches < 2:
                continue
            seen = (_fingerprint(st), tuple(sorted(cfg.overrides.items())))
            last = memo.get((meta.topic_id, part))
            if last is not None and last[0] == seen and now < last[1]:
                continue
            horizons: list[int] = []
            try:
                total += _compact_in_chunks(store, meta, part, now, horizons)
            except PartitionChanged:
                continue  # (the next maintain scans it again)
            except Exception as exc:  # noqa: BLE001 - the caller's to raise, after the others
                failed.append(exc)
                continue
            after = _state(store, meta.topic_id, part)
            # Remembered only if nothing but this pass changed the partition since it was
            # looked at: records appended, or a high watermark moved on, were not seen by
            # the pass, so the next maintain must look (it skipped the partition until the
            # next write, keeping records these superseded, and tombstones unmarked).
            if after is not None and _fingerprint(after) == _fingerprint(st):
                due = min([*horizons, *([now + lag] if lag > 0 else [])], default=_NEVER)
                memo[(meta.topic_id, part)] = (seen, due)
    if errors is None and failed:
        raise failed[0]
    return total
