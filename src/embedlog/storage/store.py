"""The store: one log directory's topics and partitions behind a small, typed API.

``Store`` owns the environment and composes the per-table modules into whole
operations, each one transaction.  It knows nothing of producers, consumers or
clients; the engine (``embedlog.log``) builds those on top of it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import attrs
import lmdb

from ..codec import batch as codec
from ..config import TopicConfig
from ..errors import (
    ConfigError,
    CorruptRecordError,
    EmbedlogError,
    FormatVersionError,
    InvalidOffsetError,
    InvalidRecordError,
    NotLeaderError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StorageError,
    UnknownPartitionError,
    UnknownTopicError,
)
from ..model import PartitionDescription, TopicDescription
from . import partition as plog
from . import replica, schema, topics
from .env import Env, other_format_error
from .notify import Notifier
from .schema import PartitionState
from .topics import TopicMeta

__all__ = ["AppendItem", "HighWatermarkSource", "Store"]

T = TypeVar("T")
_U64LE_PACK = schema.U64LE.pack


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@attrs.define
class AppendItem:
    """One encoded batch bound for one partition, as the writer queues it."""

    topic: str
    topic_id: int
    partition: int
    buf: bytearray
    base_offset: int = -1
    #: the broker time stamped on a LogAppendTime topic's batch (else None)
    log_append_ms: int | None = None
    #: why this batch alone was not written while the others of its flush were (see
    #: ``GroupCommitter``); None once written, or when the whole request failed
    error: EmbedlogError | None = None
    #: the topic config its producer checked the records against (``max.message.bytes``,
    #: a compacted topic's keys); the append checks them again if the topic's config is
    #: stricter now, as Kafka's broker checks each produce.  None: not checked again
    checked: TopicConfig | None = None


def _recheck(item: AppendItem, meta: TopicMeta) -> None:
    """Check ``item``'s records against ``meta``'s config, stricter than the one their
    producer checked them against (``AppendItem.checked``): ``RecordTooLargeError`` for a
    record over ``max.message.bytes``, ``InvalidRecordError`` for a null key on a
    compacted topic (compaction would drop it)."""
    old, new = item.checked, meta.config
    assert old is not None
    compact = new.compact and not old.compact
    limit = new.max_message_bytes
    if not compact and limit >= old.max_message_bytes:
        return  # (no stricter: what passed then passes now)
    batch = codec.decode(item.buf)
    headers = batch.headers
    for i, (key, value) in enumerate(zip(batch.keys, batch.values)):
        if compact and key is None:
            raise InvalidRecordError(
                f"topic {item.topic!r} became compacted (cleanup.policy) after this record was sent: every record "
                "needs a key; it was not stored. Send it again with a key")
        size = (0 if key is None else len(key)) + (0 if value is None else len(value))
        if headers is not None and headers[i]:
            size += sum(len(n.encode()) + (0 if v is None else len(v)) for n, v in headers[i])
        if size > limit:
            raise RecordTooLargeError(
                f"record of {size} bytes is larger than max.message.bytes={limit} of topic {item.topic!r}, lowered "
                "after it was sent; it was not stored. Send smaller records or raise the topic's max.message.bytes")


class HighWatermarkSource(Protocol):
    """What ``Store.append_in`` needs of a replication leader to store its high
    watermarks along with appends (``Store.hw_source``)."""

    @property
    def hw(self) -> Mapping[tuple[int, int], int]:
        """Computed high watermarks per (topic id, partition): they only grow; read
        without a lock."""

    def stored(self, written: Mapping[tuple[int, int], int]) -> None:
        """These high watermarks were committed (called before the commit wakes anyone)."""


@attrs.define
class _AppendMemo:
    """What ``Store.append_in`` read and wrote in one committed write transaction."""

    txn_id: int
    epoch: int
    #: replicating with no follower in the in-sync set: appends move the high watermarks
    #: while the leader lives (its lease is looked at again each time: it may die between)
    alone: bool
    replicating: bool
    seq: int
    metas: dict[str, TopicMeta]
    states: dict[tuple[int, int], PartitionState]


class Store:
    """A log directory opened by this process."""

    def __init__(self, path: str, *, durability: str = "flush", map_size: int | None = None,
                 fsync_interval_ms: int = 1000, cross_process: bool = True) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except FileExistsError:
            raise StorageError(f"{path!r} exists and is not a directory: open a log directory (one that does "
                               "not exist yet is created)") from None
        except OSError as exc:
            raise StorageError(f"cannot create the log directory {path!r}: {exc.strerror or exc}; check the "
                               "path and its permissions") from exc
        self.path = path
        self.env = Env(path, durability=durability, map_size=map_size, fsync_interval_ms=fsync_interval_ms)
        self.dbs = self.env.dbs
        #: (topic id, partition) -> (state and config seen, time) of its last compaction
        self.compaction_memo: dict[tuple[int, int], tuple[object, int]] = {}
        #: what ``append_in`` knew after this process's last committed write transaction
        self._memo: _AppendMemo | None = None
        #: per thread: the memo of the transaction it is writing, kept once that commits
        self._local = threading.local()
        #: topic name -> (its stored JSON, decoded), so appends skip decoding unchanged metadata
        self._meta_cache: dict[str, tuple[bytes, TopicMeta]] = {}
        #: set by a replication leader running in this process (``replication.LeaderCore``):
        #: the high watermarks it computed and has not stored yet ride on this process's
        #: appends (see ``append_in``), so storing them needs no transaction of its own
        self.hw_source: HighWatermarkSource | None = None
        self.notifier = Notifier(os.path.join(path, "wake") if cross_process else None)
        #: called with a topic's name once this process changed its metadata (``watch_topics``)
        self._topic_watchers: list[weakref.WeakMethod[Callable[[str], None]]] = []
        self._watch_lock = threading.Lock()
        try:
            # Read first: an existing log needs no write (and so no wait for the write lock)
            if not self.read(self._check_meta):
                self.env.write(self._init_meta)
        except BaseException:
            self.env.close()
            raise

    def _init_meta(self, txn: lmdb.Transaction) -> None:
        """Write a new log's metadata, or check an existing one's (``_check_meta``)."""
        if self._check_meta(txn):
            return
        meta = self.dbs["meta"]
        txn.put(schema.META_FORMAT_VERSION, schema.U32LE.pack(schema.FORMAT_VERSION), db=meta)
        txn.put(schema.META_CREATED_MS, schema.I64LE.pack(now_ms()), db=meta)
        txn.put(schema.META_LEADER_EPOCH, schema.I32LE.pack(0), db=meta)
        txn.put(schema.META_ROLE, b"leader", db=meta)

    def _check_meta(self, txn: lmdb.Transaction) -> bool:
        """Whether the log has its metadata (``False``: a new log); raises
        ``FormatVersionError`` for a format this release cannot read."""
        raw = txn.get(schema.META_FORMAT_VERSION, db=self.dbs["meta"])
        if raw is None:
            return False
        if len(raw) != schema.U32LE.size:
            raise FormatVersionError(
                f"{self.path!r} has a damaged storage format version ({bytes(raw)[:16]!r}, not 4 bytes): it is not "
                "an embedlog log directory, or its metadata is damaged; run `embedlog verify` or restore it")
        version = schema.U32LE.unpack(bytes(raw))[0]
        if version != schema.FORMAT_VERSION:
            raise other_format_error(self.path, version)
        return True

    def close(self) -> None:
        """Close the environment and stop waking others."""
        self.notifier.close()
        self.env.close()

    # -- metadata ---------------------------------------------------------------
    def read(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn`` in a read transaction."""
        with self.env.read() as txn:
            return fn(txn)

    def write(self, fn: Callable[[lmdb.Transaction], T], *, notify: bool = False, durable: bool = True,
              writes: bool = False) -> T:
        """Run ``fn`` in a write transaction; wake consumers after it commits.
        ``durable=False``, ``writes``: see ``Env.write``."""
        local = self._local
        local.memo = None
        local.hw_written = None
        try:
            result = self.env.write(fn, durable=durable, writes=writes)
        except BaseException:
            local.memo = local.hw_written = None
            raise
        written, local.hw_written = local.hw_written, None
        if written is not None:
            source = self.hw_source
            if source is not None:  # (before waking anyone: its writer then finds them stored)
                source.stored(written)
        if notify:
            self.notifier.notify()
        done, local.memo = local.memo, None
        if done is not None and (self._memo is None or done.txn_id > self._memo.txn_id):
            self._memo = done  # committed: the next transaction may start from it
        return result

    def appended(self) -> None:
        """After an append committed (``write(..., notify=False)``): a replication leader
        running in this process sends the new records to its waiting followers from this
        thread, then consumers and other processes are woken (``notify``).

        In that order so that the leader's ticker, which the wake-up also reaches, finds
        the followers answered already: the records leave at once, without a second
        thread competing for the GIL while they are read and sent."""
        board = replica.hw_board(self)
        if board is not None:
            board.nudge()
        self.notifier.notify()

    def meta_int(self, txn: lmdb.Transaction, key: bytes, fmt: Any = schema.U64LE) -> int:
        """A numeric meta value (0 when absent)."""
        raw = txn.get(key, db=self.dbs["meta"])
        return fmt.unpack(bytes(raw))[0] if raw else 0

    def role(self, txn: lmdb.Transaction) -> str:
        """``leader`` or ``replica``."""
        raw = txn.get(schema.META_ROLE, db=self.dbs["meta"])
        return bytes(raw).decode() if raw else "leader"

    def require_leader(self, txn: lmdb.Transaction, what: str) -> None:
        """Raise ``NotLeaderError`` on a replica: its topics and records are the leader's."""
        if self.role(txn) != "leader":
            raise NotLeaderError(f"{self.path!r} is a replica that follows a leader; {what} on the "
                                 "leader, or promote this node (embedlog.replication.promote(), or "
                                 "`embedlog --path DIR promote`)")

    def topic(self, name: str) -> TopicMeta | None:
        """The named topic's metadata, or ``None`` (the very object appends use while it
        does not change: ``AppendItem.checked`` is then told unchanged by identity)."""
        return self.read(lambda txn: self._topic_meta(txn, name))

    def topics_version(self) -> int:
        """Bumped on every topic create/alter/delete, by any process."""
        return self.read(lambda txn: topics.version(txn, self.dbs))

    def create_topic(self, name: str, partitions: int, config: TopicConfig) -> TopicMeta:
        """Create a topic (``TopicExistsError`` if it exists)."""

        def fn(txn: lmdb.Transaction) -> TopicMeta:
            self.require_leader(txn, "create topics")
            epoch = self.meta_int(txn, schema.META_LEADER_EPOCH, schema.I32LE)
            return topics.create(txn, self.dbs, name, partitions, config, now_ms(), leader_epoch=epoch)

        meta = self.write(fn, notify=True)
        self._topic_changed(name)  # (a topic of that name deleted earlier: its producers follow the new one)
        return meta

    def ensure_topic(self, name: str, partitions: int, config: TopicConfig) -> TopicMeta:
        """The topic, created with these settings if missing (auto-creation)."""

        created: list[bool] = []

        def fn(txn: lmdb.Transaction) -> TopicMeta:
            created.clear()
            meta = topics.get(txn, self.dbs, name)
            if meta is not None:
                return meta
            self.require_leader(txn, "create topics")
            epoch = self.meta_int(txn, schema.META_LEADER_EPOCH, schema.I32LE)
            created.append(True)
            return topics.create(txn, self.dbs, name, partitions, config, now_ms(), leader_epoch=epoch)

        meta = self.write(fn, notify=True)
        if created:
            self._topic_changed(name)
        return meta

    def delete_topic(self, name: str) -> None:
        """Delete a topic and everything stored for it."""

        def fn(txn: lmdb.Transaction) -> None:
            meta = topics.require(txn, self.dbs, name)
            self.require_leader(txn, "delete topics")
            topics.delete(txn, self.dbs, meta)

        self.write(fn, notify=True)
        self._topic_changed(name)  # (consumers drop what they fetched of it)

    def watch_topics(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(name)`` (a bound method, held weakly) each time this process
        changes a topic's config or partitions here, or deletes it, once the change is
        committed.  Other processes' changes are not seen this way: a watcher looks at
        ``topics_version``."""
        with self._watch_lock:
            self._topic_watchers = [w for w in self._topic_watchers if w() is not None]
            self._topic_watchers.append(weakref.WeakMethod(callback))

    def _topic_changed(self, name: str) -> None:
        with self._watch_lock:
            watchers = list(self._topic_watchers)
        for w in watchers:
            callback = w()
            if callback is not None:
                with contextlib.suppress(Exception):  # (the change is committed; a failed watcher looks again later)
                    callback(name)

    def alter_topic(self, name: str, changes: Mapping[str, object]) -> TopicMeta:
        """Apply config changes to a topic."""

        def fn(txn: lmdb.Transaction) -> TopicMeta:
            meta = topics.require(txn, self.dbs, name)
            self.require_leader(txn, "alter topics")
            return topics.set_config(txn, self.dbs, meta, meta.config.altered(changes))

        meta = self.write(fn)
        self._topic_changed(name)
        return meta

    def add_partitions(self, name: str, total: int) -> TopicMeta:
        """Grow a topic to ``total`` partitions."""

        def fn(txn: lmdb.Transaction) -> TopicMeta:
            meta = topics.require(txn, self.dbs, name)
            self.require_leader(txn, "add partitions")
            if total <= meta.partitions:
                raise ConfigError(f"topic {name!r} has {meta.partitions} partitions; the new count "
                                  f"must be larger (Kafka never removes partitions), got {total}")
            epoch = self.meta_int(txn, schema.META_LEADER_EPOCH, schema.I32LE)
            return topics.add_partitions(txn, self.dbs, meta, total, leader_epoch=epoch)

        meta = self.write(fn, notify=True)
        self._topic_changed(name)
        return meta

    def topic_names(self) -> list[str]:
        """All topic names."""
        return self.read(lambda txn: topics.list_names(txn, self.dbs))

    def describe(self, name: str) -> TopicDescription:
        """A snapshot of a topic's partitions and config."""

        def fn(txn: lmdb.Transaction) -> TopicDescription:
            meta = topics.require(txn, self.dbs, name)
            parts = []
            for p in range(meta.partitions):
                st = plog.load_state(txn, self.dbs, meta.topic_id, p) or PartitionState()
                parts.append(PartitionDescription(p, st.start_offset, st.end_offset, st.bytes, st.batches,
                                                  st.leader_epoch, st.high_watermark))
            return TopicDescription(name, meta.topic_id, tuple(parts), meta.config.to_dict())

        return self.read(fn)

    def stored_records(self, name: str) -> tuple[int, ...]:
        """Per partition, the records stored: ``end_offset - start_offset``, or for a topic
        compaction may have thinned, the count in its batches' headers (a read of every
        header: for tools)."""

        def fn(txn: lmdb.Transaction) -> tuple[int, ...]:
            meta = topics.require(txn, self.dbs, name)
            tid, parts = meta.topic_id, range(meta.partitions)
            if meta.may_have_gaps:
                return tuple(plog.count_records(txn, self.dbs, tid, p) for p in parts)
            states = (plog.load_state(txn, self.dbs, tid, p) or PartitionState() for p in parts)
            return tuple(st.end_offset - st.start_offset for st in states)

        return self.read(fn)

    # -- records ------------------------------------------------------------------
    def append(self, items: Sequence[AppendItem], extra: Callable[[lmdb.Transaction], None] | None = None) -> None:
        """Append batches to their partitions in one transaction, then wake consumers.

        Sets each item's ``base_offset``.  ``extra`` runs in the same transaction (for
        offsets committed atomically with the records).  Raises ``UnknownTopicError``
        or ``UnknownPartitionError`` before writing anything if a target is gone.
        """

        def fn(txn: lmdb.Transaction) -> None:
            self.append_in(txn, items)
            if extra is not None:
                extra(txn)

        self.write(fn, notify=True)

    def append_in(self, txn: lmdb.Transaction, items: Iterable[AppendItem], *, memo: bool = True) -> None:
        """The body of ``append``, for callers composing a larger transaction.

        What it reads (role, leader epoch, replication flag, commit sequence, topic
        metadata, partition states) is remembered with the transaction's id; when this
        process's next write transaction is the very next one of the environment (no
        other writer, in any process, committed in between), it starts from that memo
        and does no LMDB reads: inside the write lock there are only the puts, each of
        which hands the GIL to other threads.  ``memo=False`` (nested transactions, which
        may be rolled back alone) neither uses nor leaves a memo.  Other work composed
        into the same transaction must not write partition states or those meta keys.
        """
        dbs = self.dbs
        known = self._memo
        self._memo = None  # stale once this transaction does anything, committed or not
        txn_id = txn.id()
        if memo and known is not None and known.txn_id + 1 == txn_id and (
                not known.replicating or replica.leader_manages_hw(txn, dbs, self.path)):
            epoch, alone, replicating, seq = known.epoch, known.alone, known.replicating, known.seq + 1
            metas, states = known.metas, known.states
        else:
            if items:  # (none: offsets committed alone, whose own check says so in its words)
                self.require_leader(txn, "produce")
            epoch = self.meta_int(txn, schema.META_LEADER_EPOCH, schema.I32LE)
            replicating = replica.leader_manages_hw(txn, dbs, self.path)
            alone = replicating and replica.isr_empty(txn, dbs)
            seq = self.meta_int(txn, schema.META_COMMIT_SEQ) + 1
            metas, states = {}, {}
            known = None
        # (a live leader alone in its in-sync set: the high watermark is the end, as in Kafka)
        advance_hw = not replicating or (alone and replica.lease_live(self.path))
        txn.put(schema.META_COMMIT_SEQ, _U64LE_PACK(seq), db=dbs["meta"])
        ts = now_ms()
        items = items if items.__class__ is list else list(items)
        for item in items:  # validate everything before writing anything
            meta = metas.get(item.topic)
            if meta is None:
                meta = self._topic_meta(txn, item.topic)
                if meta is None:
                    raise UnknownTopicError(f"topic {item.topic!r} was deleted before its records were "
                                            "written; they were not stored")
                metas[item.topic] = meta
            if item.partition >= meta.partitions:
                raise UnknownPartitionError(f"topic {item.topic!r} has no partition {item.partition}")
            item.topic_id = meta.topic_id
            checked = item.checked
            if checked is not None and checked is not meta.config and checked != meta.config:
                _recheck(item, meta)  # (changed since the producer checked them: by another process, say)
        touched: dict[tuple[int, int], PartitionState] = {}
        # each partition's end when this write transaction began (nested ones share their
        # parent's id): retention.bytes keeps what the transaction wrote
        local = self._local
        floors: dict[tuple[int, int], int] | None = getattr(local, "floors", None)
        if floors is None or local.floors_txn != txn_id:
            floors = local.floors = {}
            local.floors_txn = txn_id
        for item in items:
            meta = metas[item.topic]
            tid = meta.topic_id
            part = item.partition
            key = (tid, part)
            st = touched.get(key)
            if st is None:
                st = states.get(key)
                if st is None:
                    st = plog.load_state(txn, dbs, tid, part) or PartitionState()
                    states[key] = st
                touched[key] = st
                floor = floors.setdefault(key, st.end_offset)
            else:
                floor = floors[key]
            config = meta.config
            item.base_offset = plog.append(txn, dbs, tid, part, st, item.buf, epoch=epoch, commit_seq=seq,
                                           now_ms=ts, config=config, advance_hw=advance_hw, keep_from=floor)
            item.log_append_ms = ts if config.log_append_time else None
        source = self.hw_source
        if source is not None and memo:
            # A replication leader's high watermarks, computed and published but not yet
            # stored, go into the partition states this transaction writes anyway: no
            # transaction (fsync) of their own, and no broken memo for the next append.
            # They cover only records acknowledged before, never this transaction's.
            hws = source.hw
            written: dict[tuple[int, int], int] | None = None
            for key, st in touched.items():
                hw = hws.get(key)
                if hw is not None and hw > st.high_watermark:
                    st.high_watermark = min(hw, st.end_offset)
                    if written is None:
                        written = {}
                    written[key] = st.high_watermark
            if written is not None:
                self._local.hw_written = written  # (the source learns of them once committed)
        for (tid, part), st in touched.items():
            plog.store_state(txn, dbs, tid, part, st)
        if memo:
            if known is not None:  # (dropped above: nothing else holds it, so it is updated in place)
                known.txn_id = txn_id
                known.seq = seq
            else:
                known = _AppendMemo(txn_id, epoch, alone, replicating, seq, metas, states)
            self._local.memo = known

    def topic_in(self, txn: lmdb.Transaction, name: str) -> TopicMeta | None:
        """``topic`` inside ``txn``."""
        return self._topic_meta(txn, name)

    def _topic_meta(self, txn: lmdb.Transaction, name: str) -> TopicMeta | None:
        """``topics.get``, without decoding the JSON again when its bytes did not change."""
        raw = txn.get(name.encode(), db=self.dbs["topics"])
        if raw is None:  # (deleted: nothing of it kept, however many topics come and go)
            self._meta_cache.pop(name, None)
            return None
        raw = bytes(raw)
        hit = self._meta_cache.get(name)
        if hit is not None and hit[0] == raw:
            return hit[1]
        meta = topics.get(txn, self.dbs, name)
        if meta is not None:
            self._meta_cache[name] = (raw, meta)
        return meta

    def partition_state(self, txn: lmdb.Transaction, tid: int, part: int) -> PartitionState | None:
        """A partition's state inside ``txn``."""
        return plog.load_state(txn, self.dbs, tid, part)

    # -- retention ------------------------------------------------------------------
    def enforce_retention(self, now: int | None = None, *, errors: list[Exception] | None = None) -> int:
        """Delete batches past ``retention.ms``/``retention.bytes``; return batches deleted.

        Never past a partition's high watermark (Kafka deletes only segments below it):
        a replicating leader's followers may not hold the later batches yet, and a
        follower must be able to fetch every record it lacks that consumers could see.
        Nor past a batch whose header is damaged: its partition's ``CorruptRecordError``
        goes to ``errors`` (else it is raised once every other partition was done)."""
        now = now_ms() if now is None else now
        total = 0
        damaged: list[Exception] = [] if errors is None else errors
        # Look first in one read transaction; write (and fsync) only for topics with work,
        # at most RETENTION_CHUNK batches a transaction: writers of every process wait
        # for each, not for the whole pass (100,000 batches took ~1.5 s in one).
        for name in self.read(lambda txn: self._retention_due(txn, now, damaged)):
            def fn(txn: lmdb.Transaction, name: str = name) -> tuple[int, bool]:
                meta = topics.get(txn, self.dbs, name)
                if meta is None or not meta.config.delete:
                    return 0, False
                cfg = meta.config
                below = now - cfg.retention_ms if cfg.retention_ms >= 0 else None
                limit = cfg.retention_bytes if cfg.retention_bytes >= 0 else None
                if below is None and limit is None:
                    return 0, False
                n = 0
                for p in range(meta.partitions):
                    if n >= RETENTION_CHUNK:
                        return n, True  # (the partitions done have nothing left: quick to look at again)
                    st = plog.load_state(txn, self.dbs, meta.topic_id, p)
                    if st is None:
                        continue
                    upto = _retention_end(txn, self.dbs, meta.topic_id, p, st, below, limit, RETENTION_CHUNK - n)
                    d = 0 if upto is None else plog.delete_before(txn, self.dbs, meta.topic_id, p, st, offset=upto)
                    if d:
                        plog.store_state(txn, self.dbs, meta.topic_id, p, st)
                        n += d
                return n, n >= RETENTION_CHUNK

            more = True
            while more:
                n, more = self.write(fn)
                total += n
        if damaged and errors is None:
            raise damaged[0]
        return total

    def _retention_due(self, txn: lmdb.Transaction, now: int, damaged: list[Exception]) -> list[str]:
        due: list[str] = []
        damaged.clear()  # (a retry of the read transaction starts again)
        for name in topics.list_names(txn, self.dbs):
            meta = topics.get(txn, self.dbs, name)
            if meta is None or not meta.config.delete:
                continue
            cfg = meta.config
            for p in range(meta.partitions):
                st = plog.load_state(txn, self.dbs, meta.topic_id, p)
                try:
                    first = plog.first_batch(txn, self.dbs, meta.topic_id, p)
                except codec.CorruptBatchError as exc:  # (retention goes on elsewhere; this is reported)
                    offset = st.start_offset if st is not None else 0
                    damaged.append(CorruptRecordError(
                        f"retention of {name}[{p}] stops at offset {offset}: its batch header is damaged ({exc}); "
                        "run `embedlog verify` and restore the partition from a replica or backup",
                        topic=name, partition=p, offset=offset))
                    continue
                if st is None or first is None:
                    continue
                info, size = first
                # (every partition is looked at, also of a topic found due: damage is reported)
                if (not due or due[-1] != name) and info.next_offset <= st.high_watermark and (
                        (cfg.retention_ms >= 0 and info.max_timestamp < now - cfg.retention_ms)
                        or (cfg.retention_bytes >= 0 and st.bytes - size >= cfg.retention_bytes)):
                    due.append(name)
        return due

    def delete_records(self, name: str, partition: int, before_offset: int) -> int:
        """Kafka's DeleteRecords: advance the start offset to ``before_offset``."""

        def fn(txn: lmdb.Transaction) -> int:
            meta = topics.require(txn, self.dbs, name)
            self.require_leader(txn, "delete records")
            if not isinstance(partition, int) or isinstance(partition, bool):
                raise UnknownPartitionError(f"a partition is an int (0..{meta.partitions - 1} for topic {name!r}), "
                                            f"got {partition!r}")
            st = plog.load_state(txn, self.dbs, meta.topic_id, partition) if 0 <= partition < meta.partitions else None
            if st is None:
                raise UnknownPartitionError(f"topic {name!r} has partitions 0..{meta.partitions - 1}; partition "
                                            f"{partition} does not exist")
            # Kafka's rule: never past the high watermark (it is the end offset unless a
            # replicating leader holds it back for records followers have not acknowledged)
            limit = min(st.end_offset, st.high_watermark)
            if not isinstance(before_offset, int) or isinstance(before_offset, bool) or before_offset < -1:
                raise InvalidOffsetError(f"before_offset must be an offset >= 0, or -1 for everything, "
                                         f"got {before_offset!r}")
            if before_offset > limit:
                raise OffsetOutOfRangeError(
                    f"cannot delete {name}[{partition}] before offset {before_offset}: it is past the high "
                    f"watermark {limit} (Kafka's OFFSET_OUT_OF_RANGE); use -1 to delete everything up to it")
            target = limit if before_offset < 0 else before_offset
            plog.delete_before(txn, self.dbs, meta.topic_id, partition, st, offset=target)
            plog.store_state(txn, self.dbs, meta.topic_id, partition, st)
            return st.start_offset

        return self.write(fn)


#: most batches retention deletes in one write transaction (see ``Store.enforce_retention``)
RETENTION_CHUNK = 1000


def _retention_end(txn: lmdb.Transaction, dbs: Mapping[str, Any], tid: int, part: int, st: PartitionState,
                   below: int | None, limit: int | None, most: int | None = None) -> int | None:
    """Where retention starts a partition: after the last of its leading batches that
    are past ``retention.ms`` (max timestamp < ``below``) or over ``retention.bytes``
    (``limit``), stopping at the first batch that reaches the high watermark, or after
    ``most`` batches; ``None`` when nothing goes."""
    prefix = schema.partition_key(tid, part)
    remaining = st.bytes
    end: int | None = None
    counted = 0
    with txn.cursor(db=dbs["batches"]) as cur:
        if not cur.set_range(prefix):
            return None
        while bytes(cur.key()[:8]) == prefix:
            value = cur.value()
            try:
                info = codec.read_info(value)
            except codec.CorruptBatchError:
                break  # (a damaged header: nothing from it on goes; ``_retention_due`` reports it)
            size = len(value)
            if info.next_offset > st.high_watermark:
                break
            if not ((limit is not None and remaining - size >= limit)
                    or (below is not None and info.max_timestamp < below
                        and codec.checksum_matches(value))):  # (a damaged max timestamp deletes nothing early)
                break
            remaining -= size
            end = info.next_offset
            counted += 1
            if (most is not None and counted >= most) or not cur.next():
                break
    return end
