"""Integrity checks and batch dumps of a log directory: what ``embedlog verify`` and
``embedlog dump`` run.

``verify`` reads every stored batch and reports what is damaged instead of raising:

* each batch's CRC, header and body decode (``codec.batch.decode``);
* the base offset in the batch header matches the base offset in its key;
* the records' offsets lie in the range the batch covers (dense batches cover exactly
  their records; compacted ones are sparse inside their range);
* offsets are continuous: each batch starts where the previous one ended.  Compaction
  leaves gaps only *inside* a batch's covered range, except that it removes a batch
  whose records were all compacted away, so on a topic whose ``cleanup.policy``
  includes ``compact``, or once did (its record's ``compacted`` flag), a gap *between*
  batches is allowed (an overlap never is);
* the partition state (start and end offsets, bytes, batch count, high watermark)
  matches the batches;
* no batch or partition state is left for a topic or partition that does not exist,
  and every topic has its id entry and all its partition states;
* no group has committed an offset beyond the end of its partition.

Each partition is checked inside one read transaction (a consistent snapshot while
producers keep writing); other processes may use the log meanwhile.

``dump`` yields a partition's batches (header fields, and records) for debugging;
a damaged batch is yielded with its error instead of stopping the dump.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from itertools import pairwise
from typing import Any

import attrs
import lmdb

from ..codec import batch as codec
from ..errors import UnknownPartitionError
from . import schema, topics
from .mirrors import is_source_group
from .schema import PartitionState
from .topics import TopicMeta

__all__ = [
    "DumpBatch",
    "DumpIterator",
    "DumpRecord",
    "Problem",
    "ProgressFn",
    "VerifyReport",
    "dump",
    "verify",
]

#: ``progress(batches_checked, batches_total)``; the total is the sum of the partition
#: states' batch counts when the check started (an estimate while others write).
ProgressFn = Callable[[int, int], None]

_PROGRESS_EVERY = 256
_DUMP_CHUNK = 64
_U32_MAX = 0xFFFF_FFFF


@attrs.frozen
class Problem:
    """One piece of damage: where and what.

    ``offset`` is the damaged batch's base offset, or the offset the problem is about
    (``None`` when it concerns the partition as a whole); ``partition`` is ``-1`` when
    the problem concerns no single partition (a topic's metadata), and ``topic`` is
    ``<unknown topic id N>`` for data left by a topic that does not exist.
    """

    topic: str
    partition: int
    offset: int | None
    what: str

    def __str__(self) -> str:
        at = "" if self.offset is None else f" at offset {self.offset}"
        return f"{self.topic}[{self.partition}]{at}: {self.what}"


@attrs.frozen
class VerifyReport:
    """What ``verify`` checked and every problem it found (``ok`` when none)."""

    ok: bool
    topics: int
    partitions: int
    batches: int
    records: int
    bytes: int
    problems: tuple[Problem, ...]


@attrs.frozen
class DumpRecord:
    """One record of a dumped batch."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


@attrs.frozen
class DumpBatch:
    """One stored batch as ``dump`` shows it.

    ``base_offset`` comes from the batch's key.  The header fields are ``None`` when the
    header itself cannot be read; ``error`` says what is wrong with a damaged batch
    (then ``records`` is empty).
    """

    base_offset: int
    header_base_offset: int | None
    last_offset: int | None
    record_count: int | None
    leader_epoch: int | None
    commit_seq: int | None
    attributes: int | None
    first_timestamp: int | None
    max_timestamp: int | None
    size: int
    crc_ok: bool
    error: str | None
    records: tuple[DumpRecord, ...]

    @property
    def compression(self) -> str | None:
        """``"none"`` or ``"zstd"`` (``None`` if the header is unreadable)."""
        if self.attributes is None:
            return None
        code = self.attributes & codec.ATTR_COMPRESSION_MASK
        return {codec.COMPRESSION_NONE: "none", codec.COMPRESSION_ZSTD: "zstd"}.get(code, f"unknown({code})")

    @property
    def timestamp_type(self) -> str | None:
        """``"CreateTime"`` or ``"LogAppendTime"``."""
        if self.attributes is None:
            return None
        return "LogAppendTime" if self.attributes & codec.ATTR_LOG_APPEND_TIME else "CreateTime"

    @property
    def transactional(self) -> bool | None:
        """Whether a transaction wrote the batch."""
        return None if self.attributes is None else bool(self.attributes & codec.ATTR_TRANSACTIONAL)

    @property
    def compacted(self) -> bool | None:
        """Whether compaction rewrote the batch (its offsets are sparse)."""
        return None if self.attributes is None else bool(self.attributes & codec.ATTR_SPARSE)


DumpIterator = Iterator[DumpBatch]


# -- verify ------------------------------------------------------------------------------
def _next_partition_key(tid: int, part: int) -> bytes | None:
    """The first ``batches`` key after every key of ``(tid, part)``."""
    if part < _U32_MAX:
        return schema.partition_key(tid, part + 1)
    if tid < _U32_MAX:
        return schema.partition_key(tid + 1, 0)
    return None


def _load_topics(txn: lmdb.Transaction, dbs: Mapping[str, Any], problems: list[Problem]) -> dict[str, TopicMeta]:
    metas: dict[str, TopicMeta] = {}
    for name in topics.list_names(txn, dbs):
        try:
            meta = topics.get(txn, dbs, name)
        except (ValueError, KeyError, TypeError) as exc:  # bad JSON or missing fields
            problems.append(Problem(name, -1, None, f"topic metadata cannot be read: {exc}"))
            continue
        if meta is None:
            continue
        metas[name] = meta
        raw = txn.get(schema.topic_id_key(meta.topic_id), db=dbs["topic_ids"])
        if raw is None or bytes(raw).decode("utf-8", "replace") != name:
            problems.append(Problem(name, -1, None, f"topic id {meta.topic_id} does not map back to the topic"))
    return metas


def _orphans(txn: lmdb.Transaction, dbs: Mapping[str, Any], by_id: Mapping[int, TopicMeta]) -> list[Problem]:
    """Batches and partition states of topics or partitions that do not exist."""

    def where(tid: int) -> str:
        meta = by_id.get(tid)
        return meta.name if meta is not None else f"<unknown topic id {tid}>"

    out: list[Problem] = []
    with txn.cursor(db=dbs["batches"]) as cur:
        found = cur.first()
        while found:
            key = bytes(cur.key())
            if len(key) != 16:
                out.append(Problem("<batches>", -1, None, f"batch key {key.hex()} is not 16 bytes"))
                found = cur.next()
                continue
            tid, part, base = schema.unpack_batch_key(key)
            meta = by_id.get(tid)
            if meta is None or part >= meta.partitions:
                count = 0
                prefix = key[:8]
                while found and bytes(cur.key()[:8]) == prefix:
                    count += 1
                    found = cur.next()
                out.append(Problem(where(tid), part, base,
                                   f"{count} batch(es) stored for a topic or partition that does not exist"))
                continue
            nxt = _next_partition_key(tid, part)
            found = nxt is not None and cur.set_range(nxt)
    with txn.cursor(db=dbs["partitions"]) as cur:
        for raw_key in cur.iternext(keys=True, values=False):
            key = bytes(raw_key)
            if len(key) != 8:
                out.append(Problem("<partitions>", -1, None, f"partition key {key.hex()} is not 8 bytes"))
                continue
            tid, part = schema.unpack_batch_key(key + bytes(8))[:2]
            meta = by_id.get(tid)
            if meta is None or part >= meta.partitions:
                out.append(Problem(where(tid), part, None,
                                   "partition state of a topic or partition that does not exist"))
    return out


def _committed(txn: lmdb.Transaction, dbs: Mapping[str, Any], by_id: Mapping[int, TopicMeta]) -> list[Problem]:
    """Committed offsets beyond their partition's end, or of partitions that do not exist."""
    out: list[Problem] = []
    with txn.cursor(db=dbs["offsets"]) as cur:
        for raw_key, raw_value in cur:
            key = bytes(raw_key)
            try:
                group, tid, part = schema.unpack_committed_key(key)
                offset = int(schema.COMMITTED.unpack_from(bytes(raw_value), 0)[0])
            except (ValueError, struct.error) as exc:
                out.append(Problem("<offsets>", -1, None, f"committed offset {key.hex()} cannot be read: {exc}"))
                continue
            meta = by_id.get(tid)
            if is_source_group(group) and meta is not None:
                continue  # a down mirror's source offsets: Kafka's partitions and offsets, not ours
            if meta is None or part >= meta.partitions:
                out.append(Problem(f"<unknown topic id {tid}>" if meta is None else meta.name, part, offset,
                                   f"group {group!r} has a committed offset for a partition that does not exist"))
                continue
            st = _state_or_none(txn.get(schema.partition_key(tid, part), db=dbs["partitions"]))
            if st is None:
                continue  # reported by the partition check
            if offset > st.end_offset:
                out.append(Problem(meta.name, part, offset,
                                   f"group {group!r} committed offset {offset}, beyond the end offset {st.end_offset}"))
    return out


def _state_or_none(raw: Any) -> PartitionState | None:
    """A stored partition state, or ``None`` if absent or unreadable."""
    if raw is None:
        return None
    try:
        return PartitionState.unpack(bytes(raw))
    except struct.error:
        return None


@attrs.define
class _Scan:
    """What one partition's batches add up to."""

    count: int = 0
    size: int = 0
    first: codec.BatchInfo | None = None  # the first batch's header, if it decoded
    last_next: int | None = None  # the offset after the last batch, if it decoded


class _Checker:
    """Runs the per-partition checks, collecting problems, totals and progress."""

    def __init__(self, dbs: Mapping[str, Any], total: int, progress: ProgressFn | None) -> None:
        self.dbs = dbs
        self.problems: list[Problem] = []
        self.total = total
        self.progress = progress
        self.done = 0
        self.batches = self.records = self.bytes = 0

    def tick(self, n: int) -> None:
        self.done += n
        self.total = max(self.total, self.done)
        if self.progress is not None:
            self.progress(self.done, self.total)

    def batch(self, meta: TopicMeta, part: int, base: int, value: Any) -> codec.DecodedBatch | None:
        """Decode one stored batch and check it on its own; ``None`` if it cannot be decoded."""
        name = meta.name
        problems = self.problems
        try:
            decoded = codec.decode(value)
        except codec.CorruptBatchError as exc:
            problems.append(Problem(name, part, base, f"corrupt batch: {exc}"))
            return None
        info = decoded.info
        if info.base_offset != base:
            problems.append(Problem(name, part, base, f"batch header says base offset {info.base_offset} "
                                                      f"but it is stored under offset {base}"))
        lod = info.last_offset_delta
        if info.attributes & codec.ATTR_SPARSE:
            deltas = [o - info.base_offset for o in decoded.offsets]
            if any(b <= a for a, b in pairwise(deltas)) or (deltas and (deltas[0] < 0 or deltas[-1] > lod)):
                problems.append(Problem(name, part, base, "compacted batch's record offsets are not increasing "
                                                          f"inside its range 0..{lod}"))
        elif lod != info.record_count - 1:
            problems.append(Problem(name, part, base, f"batch holds {info.record_count} records but covers "
                                                      f"{lod + 1} offsets"))
        if not info.attributes & codec.ATTR_LOG_APPEND_TIME and decoded.timestamps \
                and max(decoded.timestamps) != info.max_timestamp:
            problems.append(Problem(name, part, base, f"batch max timestamp {info.max_timestamp} differs from "
                                                      f"its records' {max(decoded.timestamps)}"))
        return decoded

    def partition(self, txn: lmdb.Transaction, meta: TopicMeta, part: int) -> None:
        """Check every batch of one partition, then its state against them."""
        name, tid = meta.name, meta.topic_id
        raw = txn.get(schema.partition_key(tid, part), db=self.dbs["partitions"])
        state = _state_or_none(raw)
        if raw is None:
            self.problems.append(Problem(name, part, None, "partition state is missing"))
        elif state is None:
            self.problems.append(Problem(name, part, None, f"partition state cannot be read ({len(raw)} bytes, "
                                                           f"expected {schema.PARTITION.size})"))
        prefix = schema.partition_key(tid, part)
        scan = _Scan()
        prev_epoch = -(2**31)
        pending = 0
        with txn.cursor(db=self.dbs["batches"]) as cur:
            found = cur.set_range(prefix)
            while found and bytes(cur.key()[:8]) == prefix:
                base = schema.unpack_batch_key(bytes(cur.key()))[2]
                value = cur.value()
                scan.count += 1
                scan.size += len(value)
                decoded = self.batch(meta, part, base, value)
                if decoded is None:
                    scan.last_next = None  # where the next batch should start is unknown
                else:
                    info = decoded.info
                    self.records += info.record_count
                    if scan.count == 1:
                        scan.first = info
                    self._continuity(meta, part, base, scan.last_next)
                    if info.leader_epoch < prev_epoch:
                        self.problems.append(Problem(name, part, base, f"leader epoch {info.leader_epoch} is lower "
                                                                       f"than the previous batch's {prev_epoch}"))
                    prev_epoch = max(prev_epoch, info.leader_epoch)
                    scan.last_next = base + info.last_offset_delta + 1
                pending += 1
                if pending >= _PROGRESS_EVERY:
                    self.tick(pending)
                    pending = 0
                found = cur.next()
        self.tick(pending)
        self.batches += scan.count
        self.bytes += scan.size
        if state is not None:
            self.state(meta, part, state, scan)

    def _continuity(self, meta: TopicMeta, part: int, base: int, prev_next: int | None) -> None:
        if prev_next is None:
            return
        if base < prev_next:
            self.problems.append(Problem(meta.name, part, base, "batch overlaps the previous one, which ends at "
                                                                f"offset {prev_next - 1}"))
        elif base > prev_next and not meta.may_have_gaps:
            self.problems.append(Problem(meta.name, part, base, f"offsets {prev_next}..{base - 1} are missing "
                                                                "before this batch"))

    def state(self, meta: TopicMeta, part: int, st: PartitionState, scan: _Scan) -> None:
        """Compare a partition's stored state with what its batches add up to."""

        def bad(what: str, offset: int | None = None) -> None:
            self.problems.append(Problem(meta.name, part, offset, what))

        if st.batches != scan.count:
            bad(f"partition state counts {st.batches} batches, {scan.count} are stored")
        if st.bytes != scan.size:
            bad(f"partition state counts {st.bytes} bytes, the stored batches hold {scan.size}")
        if st.start_offset > st.end_offset:
            bad(f"start offset {st.start_offset} is beyond end offset {st.end_offset}", st.start_offset)
        if st.high_watermark > st.end_offset:
            bad(f"high watermark {st.high_watermark} is beyond end offset {st.end_offset}", st.high_watermark)
        if scan.count == 0:
            if st.start_offset != st.end_offset:
                bad(f"no batch is stored but offsets {st.start_offset}..{st.end_offset - 1} should be",
                    st.start_offset)
            return
        if scan.last_next is not None and st.end_offset != scan.last_next:
            bad(f"end offset is {st.end_offset} but the last batch ends at offset {scan.last_next - 1}",
                st.end_offset)
        first = scan.first
        if first is not None:
            if st.start_offset >= first.next_offset:
                bad(f"start offset {st.start_offset} is past the first stored batch "
                    f"({first.base_offset}..{first.last_offset})", st.start_offset)
            elif st.start_offset < first.base_offset and not meta.may_have_gaps:
                bad(f"offsets {st.start_offset}..{first.base_offset - 1} are missing at the start",
                    st.start_offset)


def verify(store: Any, progress: ProgressFn | None = None) -> VerifyReport:
    """Check every batch and partition of ``store`` (a ``storage.store.Store``).

    Returns a ``VerifyReport``; raises only if the store cannot be read at all.
    ``progress(batches_checked, batches_total)`` is called as the check goes.
    """
    dbs = store.dbs
    early: list[Problem] = []

    def survey(txn: lmdb.Transaction) -> tuple[dict[str, TopicMeta], int]:
        metas = _load_topics(txn, dbs, early)
        by_id = {m.topic_id: m for m in metas.values()}
        early.extend(_orphans(txn, dbs, by_id))
        early.extend(_committed(txn, dbs, by_id))
        total = 0
        for meta in metas.values():
            for p in range(meta.partitions):
                st = _state_or_none(txn.get(schema.partition_key(meta.topic_id, p), db=dbs["partitions"]))
                total += 0 if st is None else st.batches
        return metas, total

    metas, total = store.read(survey)
    checker = _Checker(dbs, total, progress)
    checker.problems.extend(early)
    partitions = 0
    for meta in metas.values():
        for p in range(meta.partitions):
            def check(txn: lmdb.Transaction, meta: TopicMeta = meta, p: int = p) -> bool:
                current = topics.get(txn, dbs, meta.name)
                if current is None or current.topic_id != meta.topic_id:
                    return False  # deleted (or recreated) while others were checked
                checker.partition(txn, current, p)
                return True

            if store.read(check):
                partitions += 1
    if progress is not None:
        progress(checker.done, checker.total)
    problems = sorted(checker.problems, key=lambda pr: (pr.topic, pr.partition, -1 if pr.offset is None else pr.offset))
    return VerifyReport(not problems, len(metas), partitions, checker.batches, checker.records, checker.bytes,
                        tuple(problems))


# -- dump --------------------------------------------------------------------------------
def _dump_one(base: int, value: Any, with_records: bool) -> DumpBatch:
    size = len(value)
    try:
        info: codec.BatchInfo | None = codec.read_info(value)
    except codec.CorruptBatchError as exc:
        return DumpBatch(base, None, None, None, None, None, None, None, None, size, False, str(exc), ())
    assert info is not None
    try:
        codec.verify(value)
        crc_ok = True
    except codec.CorruptBatchError:
        crc_ok = False
    error: str | None = None
    records: tuple[DumpRecord, ...] = ()
    if crc_ok and with_records:
        try:
            d = codec.decode(value)
        except codec.CorruptBatchError as exc:
            error = str(exc)
        else:
            hdrs = d.headers if d.headers is not None else [[] for _ in d.keys]
            records = tuple(DumpRecord(o, t, k, v, tuple(h))
                            for o, t, k, v, h in zip(d.offsets, d.timestamps, d.keys, d.values, hdrs, strict=True))
    elif not crc_ok:
        error = "batch checksum mismatch"
    return DumpBatch(base, info.base_offset, info.last_offset, info.record_count, info.leader_epoch,
                     info.commit_seq, info.attributes, info.first_timestamp, info.max_timestamp, size, crc_ok,
                     error, records)


def dump(store: Any, topic: str, partition: int, start_offset: int = 0, max_batches: int | None = None,
         *, records: bool = True) -> DumpIterator:
    """Yield the batches of ``topic[partition]`` from the one holding ``start_offset``.

    Reads a few batches per short read transaction, so a long dump never holds a
    snapshot open.  Raises ``UnknownTopicError``/``UnknownPartitionError`` before
    yielding anything; damaged batches are yielded with ``error`` set.
    """
    dbs = store.dbs
    meta: TopicMeta = store.read(lambda txn: topics.require(txn, dbs, topic))
    if not isinstance(partition, int) or isinstance(partition, bool) or not 0 <= partition < meta.partitions:
        raise UnknownPartitionError(f"topic {topic!r} has partitions 0..{meta.partitions - 1}; "
                                    f"partition {partition!r} does not exist")
    return _dump_iter(store, meta, partition, max(0, start_offset), max_batches=max_batches, with_records=records)


def _dump_iter(store: Any, meta: TopicMeta, part: int, start: int, *, max_batches: int | None,
               with_records: bool) -> DumpIterator:
    dbs = store.dbs
    prefix = schema.partition_key(meta.topic_id, part)
    yielded = 0
    resume: bytes | None = None  # key to continue from; None: locate ``start``

    def chunk(txn: lmdb.Transaction) -> list[DumpBatch]:
        out: list[DumpBatch] = []
        with txn.cursor(db=dbs["batches"]) as cur:
            if resume is None:
                found = cur.set_range(schema.batch_key(meta.topic_id, part, start))
                # the batch holding ``start`` may begin before it
                if found and bytes(cur.key()) != schema.batch_key(meta.topic_id, part, start):
                    if cur.prev():
                        if bytes(cur.key()[:8]) != prefix or not _holds(cur.value(), start):
                            cur.next()
                    else:
                        cur.first()
                elif not found and cur.last():
                    found = bytes(cur.key()[:8]) == prefix and _holds(cur.value(), start)
            else:
                found = cur.set_range(resume)
            while found and bytes(cur.key()[:8]) == prefix and len(out) < _DUMP_CHUNK:
                base = schema.unpack_batch_key(bytes(cur.key()))[2]
                out.append(_dump_one(base, cur.value(), with_records))
                found = cur.next()
        return out

    while max_batches is None or yielded < max_batches:
        batches = store.read(chunk)
        if not batches:
            return
        for b in batches:
            if max_batches is not None and yielded >= max_batches:
                return
            yield b
            yielded += 1
        last = batches[-1].base_offset
        if len(batches) < _DUMP_CHUNK:
            return
        resume = schema.batch_key(meta.topic_id, part, last + 1)


def _holds(value: Any, offset: int) -> bool:
    try:
        return codec.read_info(value).next_offset > offset
    except codec.CorruptBatchError:
        return False
