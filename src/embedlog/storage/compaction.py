"""Log compaction (``cleanup.policy=compact``), as Kafka's log cleaner does it.

For every key, the latest record is kept with its original offset; older records of
that key are removed.  Tombstones (``value=None``) are kept for
``delete.retention.ms`` after the compaction that first saw them (the batch's delete
horizon, Kafka's KIP-534: a record's own timestamp may be far in the past), so that
consumers see the delete, then removed.  Records newer than ``min.compaction.lag.ms``
and the partition's last batch (Kafka's active segment) are never compacted, nor is
anything at or above the high watermark: on a replicating leader those records may
not be on the followers yet (a failover can take them back), so they neither get
rewritten nor count as the latest record of their key.  Rewritten batches keep their
base offset and the range of offsets they cover (sparse offsets in the batch format),
so offsets are never reused and consumers skip the gaps.

Each partition is compacted in one write transaction (producers to the same log wait
for it); a later version may split large partitions into several.
"""

from __future__ import annotations

import time
from typing import Any

import lmdb

from ..codec import batch as codec
from ..errors import CorruptRecordError
from . import partition as plog
from . import schema, topics

__all__ = ["compact_all", "compact_partition"]

#: a partition's next compaction when no timer runs: only a change (a new record) brings it
_NEVER = 2**63


def compact_partition(txn: lmdb.Transaction, dbs: Any, meta: topics.TopicMeta, part: int, now_ms: int,
                      horizons: list[int] | None = None) -> int:
    """Compact one partition inside ``txn``; return how many records were removed.
    ``horizons`` gets the delete horizon of every batch left holding tombstones."""
    cfg = meta.config
    tid = meta.topic_id
    prefix = schema.partition_key(tid, part)
    decoded: list[codec.DecodedBatch] = []
    with txn.cursor(db=dbs["batches"]) as cur:
        if not cur.set_range(prefix):
            return 0
        while bytes(cur.key()[:8]) == prefix:
            try:
                decoded.append(codec.decode(cur.value()))
            except codec.CorruptBatchError as exc:
                base = schema.unpack_batch_key(bytes(cur.key()))[2]
                raise CorruptRecordError(f"cannot compact {meta.name}[{part}]: batch at {base} is corrupt: {exc}",
                                         topic=meta.name, partition=part, offset=base) from None
            if not cur.next():
                break
    if len(decoded) < 2:
        return 0
    st = plog.load_state(txn, dbs, tid, part)
    if st is None:
        return 0
    hw = st.high_watermark
    latest: dict[bytes | None, int] = {}
    for b in decoded:
        latest.update((k, off) for k, off in zip(b.keys, b.offsets) if off < hw)
    lag_limit = now_ms - cfg.min_compaction_lag_ms
    removed = 0
    rewritten = False
    for b in decoded[:-1]:  # never the last ("active") batch
        if b.info.next_offset > hw:  # it reaches the high watermark: neither is anything after it
            break
        info = b.info
        horizon = info.delete_horizon
        keep = []
        tombstones_kept = False
        for i, (k, off, ts) in enumerate(zip(b.keys, b.offsets, b.timestamps)):
            if ts > lag_limit:  # (min.compaction.lag.ms: not looked at yet)
                keep.append(i)
            elif k is not None and latest.get(k) == off:  # the latest record of its key
                if b.values[i] is not None:
                    keep.append(i)
                    continue
                # A tombstone: kept delete.retention.ms from the compaction that first saw
                # it (Kafka's delete horizon), not from its own timestamp, which a
                # producer may have set in the past.
                if horizon is None:
                    horizon = now_ms + cfg.delete_retention_ms
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
    return removed


def compact_all(store: Any, now_ms: int | None = None) -> int:
    """Compact every partition of every compacted topic; return records removed."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    total = 0
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
            st = store.read(lambda txn, part=part, tid=meta.topic_id: plog.load_state(txn, store.dbs, tid, part))
            if st is None or st.batches < 2:
                continue
            seen = ((st.start_offset, st.end_offset, st.batches, st.high_watermark),
                    tuple(sorted(cfg.overrides.items())))
            last = memo.get((meta.topic_id, part))
            if last is not None and last[0] == seen and now < last[1]:
                continue
            horizons: list[int] = []

            def fn(txn: lmdb.Transaction, part: int = part, name: str = name, horizons: list[int] = horizons) -> int:
                horizons.clear()
                current = topics.get(txn, store.dbs, name)
                if current is None or not current.config.compact:
                    return 0
                return compact_partition(txn, store.dbs, current, part, now, horizons)

            removed = store.write(fn)
            total += removed
            after = store.read(lambda txn, part=part, tid=meta.topic_id: plog.load_state(txn, store.dbs, tid, part))
            if after is not None:
                due = min([*horizons, *([now + lag] if lag > 0 else [])], default=_NEVER)
                memo[(meta.topic_id, part)] = (
                    ((after.start_offset, after.end_offset, after.batches, after.high_watermark),
                     tuple(sorted(cfg.overrides.items()))), due)
    return total
