"""``snapshot(log)``: a log's topics, partitions, consumer groups and client rates at one instant.

Topics, partitions and committed offsets are read in one LMDB read transaction, so the
numbers agree with each other (a group's lag is exactly ``end_offset - committed`` of
the same snapshot) and include what other processes wrote.  Client rates come from
``embedlog.metrics.registry`` and cover the clients of this process only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import lmdb

from ..model import TopicPartition
from ..storage import partition as plog
from ..storage import replica, schema, topics
from ..storage.mirrors import MirrorEntry, MirrorLink, is_source_group, mirror_entries, mirror_links
from ..storage.schema import PartitionState
from .registry import CounterSnapshot, counters_of

if TYPE_CHECKING:
    from ..groups.coordinator import Coordinator
    from ..log import Log

__all__ = [
    "CounterSnapshot",
    "GroupMetrics",
    "GroupPartitionMetrics",
    "LogMetrics",
    "PartitionMetrics",
    "TopicMetrics",
    "snapshot",
]


@attrs.frozen
class PartitionMetrics:
    """One partition: offsets, records and bytes.

    ``records_in`` is every record ever appended (offsets are dense from 0 and never
    reused, so it is the end offset); ``records`` is what is still stored
    (``end_offset - start_offset``; compaction may leave gaps in it).  ``bytes_on_disk``
    is the stored batches' size.  ``bytes_in`` is the bytes of every batch ever appended
    (kept in the partition's state, so it is exact across processes and retention).
    """

    topic: str
    partition: int
    start_offset: int
    end_offset: int
    records: int
    records_in: int
    bytes_in: int
    bytes_on_disk: int
    batches: int
    #: what consumers can read up to (the end offset, unless a replicating leader holds
    #: it back for records its in-sync followers have not acknowledged)
    high_watermark: int = 0

    @property
    def topic_partition(self) -> TopicPartition:
        """The partition's ``TopicPartition``."""
        return TopicPartition(self.topic, self.partition)


@attrs.frozen
class TopicMetrics:
    """One topic and its partitions."""

    name: str
    partitions: tuple[PartitionMetrics, ...]

    @property
    def records_in(self) -> int:
        """Records ever appended, summed over partitions."""
        return sum(p.records_in for p in self.partitions)

    @property
    def records(self) -> int:
        """Records stored, summed over partitions."""
        return sum(p.records for p in self.partitions)

    @property
    def bytes_in(self) -> int:
        """Bytes ever appended (estimated, see ``PartitionMetrics``), summed over partitions."""
        return sum(p.bytes_in for p in self.partitions)

    @property
    def bytes_on_disk(self) -> int:
        """Stored bytes, summed over partitions."""
        return sum(p.bytes_on_disk for p in self.partitions)


@attrs.frozen
class GroupPartitionMetrics:
    """A group's position in one partition.

    ``committed`` is the next offset the group will read (``None``: nothing committed);
    ``end_offset`` is where what consumers can read ends (the high watermark: the log end
    unless a replicating leader has records its followers do not hold yet); ``lag`` is
    ``end_offset - committed`` (``None`` when nothing was committed), as ``describe_group``
    and Kafka count it.
    """

    topic: str
    partition: int
    committed: int | None
    end_offset: int
    lag: int | None
    owner: str | None


@attrs.frozen
class GroupMetrics:
    """One consumer group: its live members and its position per partition."""

    group: str
    state: str
    members: int
    partitions: tuple[GroupPartitionMetrics, ...]

    @property
    def total_lag(self) -> int:
        """Lag summed over partitions with a committed offset."""
        return sum(p.lag or 0 for p in self.partitions)

    def lag(self) -> dict[TopicPartition, int | None]:
        """Lag per partition (``None`` where nothing was committed)."""
        return {TopicPartition(p.topic, p.partition): p.lag for p in self.partitions}

    def topics(self) -> list[str]:
        """Topics of the group's partitions, sorted."""
        return sorted({p.topic for p in self.partitions})


@attrs.frozen
class LogMetrics:
    """What ``Log.metrics()`` returns: every topic and group of a log, and client rates."""

    path: str
    timestamp_ms: int
    topics: tuple[TopicMetrics, ...]
    groups: tuple[GroupMetrics, ...]
    clients: tuple[CounterSnapshot, ...]
    """Producer and consumer counters of this process (producers first)."""
    mirrors: tuple[MirrorEntry, ...] = ()
    """Progress of every Kafka bridge (``embedlog.bridge.Mirror``) recorded in the log."""
    links: tuple[MirrorLink, ...] = ()
    """Link state last reported by each bridge that ran on this log."""
    in_sync_replicas: int = 1
    """Nodes holding every acknowledged record: 1 (this one) unless a replication
    ``Leader`` runs on the log, then the size of its in-sync set (itself included)."""
    replicas: int = 1
    """Nodes replicating the log: this one and every follower a ``Leader`` running in
    this process knows, in sync or not; read from another process, only the in-sync set
    is known (``in_sync_replicas``)."""

    def topic(self, name: str) -> TopicMetrics:
        """The named topic (``KeyError`` if it is not in the snapshot)."""
        for t in self.topics:
            if t.name == name:
                return t
        raise KeyError(name)

    def partition(self, topic: str, partition: int) -> PartitionMetrics:
        """One partition (``KeyError`` if it is not in the snapshot)."""
        for p in self.topic(topic).partitions:
            if p.partition == partition:
                return p
        raise KeyError((topic, partition))

    def group(self, name: str) -> GroupMetrics:
        """The named group (``KeyError`` if it is not in the snapshot)."""
        for g in self.groups:
            if g.group == name:
                return g
        raise KeyError(name)

    @property
    def producer(self) -> CounterSnapshot | None:
        """This process's producer counters for the log, or ``None`` if no producer reported."""
        return next((c for c in self.clients if c.kind == "producer"), None)

    @property
    def consumers(self) -> tuple[CounterSnapshot, ...]:
        """This process's consumer counters, one per group (``group=None``: consumers without one)."""
        return tuple(c for c in self.clients if c.kind == "consumer")

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as plain JSON-ready values (for ``--json`` output)."""
        return attrs.asdict(self, recurse=True)


def _estimate_bytes_in(st: PartitionState) -> int:
    return st.bytes_in


def _group_names(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> list[str]:
    names: set[str] = set()
    with txn.cursor(db=dbs["groups"]) as cur:
        names.update(bytes(k).decode() for k in cur.iternext(keys=True, values=False))
    return sorted(names)


def _committed(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> dict[str, dict[tuple[int, int], int]]:
    """Every committed offset: group -> (topic_id, partition) -> offset."""
    out: dict[str, dict[tuple[int, int], int]] = {}
    with txn.cursor(db=dbs["offsets"]) as cur:
        for key, value in cur:
            group, tid, part = schema.unpack_committed_key(bytes(key))
            if is_source_group(group):
                continue
            out.setdefault(group, {})[(tid, part)] = int(schema.COMMITTED.unpack_from(bytes(value), 0)[0])
    return out


def _groups(txn: lmdb.Transaction, coord: Coordinator, metas: Mapping[str, topics.TopicMeta],
            states: Mapping[tuple[int, int], PartitionState]) -> tuple[GroupMetrics, ...]:
    dbs = coord.dbs
    committed = _committed(txn, dbs)
    by_id = {m.topic_id: m for m in metas.values()}
    out = []
    for name in sorted(set(_group_names(txn, dbs)) | set(committed)):
        state = coord.load(txn, name)
        tps: set[tuple[str, int]] = set()
        offsets: dict[tuple[str, int], int] = {}
        for (tid, part), off in committed.get(name, {}).items():
            meta = by_id.get(tid)
            if meta is not None and part < meta.partitions:  # else: a deleted topic's leftovers
                offsets[(meta.name, part)] = off
                tps.add((meta.name, part))
        live = 0
        expired: set[str] = set()
        if state is not None:
            expired = set(coord.expired(state))
            live = sum(1 for m in state.members if m not in expired)
            for t in state.subscribed_topics():
                meta = metas.get(t)
                if meta is not None:
                    tps.update((t, p) for p in range(meta.partitions))
        rows = []
        for t, p in sorted(tps):
            st = states.get((metas[t].topic_id, p))
            end = st.high_watermark if st is not None else 0  # (what consumers can read: Kafka's lag is to it)
            c = offsets.get((t, p))
            owner = state.owner_of((t, p)) if state is not None else None
            if owner in expired:  # (an expired member owns nothing any more: as describe_group)
                owner = None
            rows.append(GroupPartitionMetrics(t, p, c, end, None if c is None else max(0, end - c), owner))
        group_state = state.state if state is not None and live else "Empty"
        out.append(GroupMetrics(name, group_state, live, tuple(rows)))
    return tuple(out)


def snapshot(log: Log) -> LogMetrics:
    """Metrics of ``log`` now: see ``LogMetrics``.  Raises ``ClosedError`` if the log is closed."""
    log._check()
    store = log._store
    dbs = store.dbs

    def read(txn: lmdb.Transaction) -> tuple[tuple[TopicMetrics, ...], tuple[GroupMetrics, ...],
                                             tuple[MirrorEntry, ...], int]:
        metas: dict[str, topics.TopicMeta] = {}
        states: dict[tuple[int, int], PartitionState] = {}
        topic_rows = []
        for name in topics.list_names(txn, dbs):
            meta = topics.get(txn, dbs, name)
            if meta is None:
                continue
            metas[name] = meta
            parts = []
            for p in range(meta.partitions):
                st = plog.load_state(txn, dbs, meta.topic_id, p) or PartitionState()
                states[(meta.topic_id, p)] = st
                parts.append(PartitionMetrics(
                    name, p, st.start_offset, st.end_offset, st.end_offset - st.start_offset, st.end_offset,
                    _estimate_bytes_in(st), st.bytes, st.batches, st.high_watermark))
            topic_rows.append(TopicMetrics(name, tuple(parts)))
        return (tuple(topic_rows), _groups(txn, log._coordinator, metas, states), tuple(mirror_entries(txn, dbs)),
                replica.in_sync_size(txn, dbs, store.path))

    topic_rows, group_rows, mirrors, isr = store.read(read)
    clients = tuple(c.snapshot() for c in counters_of(log.path))
    source = store.hw_source  # (a Leader running in this process: it knows its followers)
    followers = getattr(source, "followers", None)
    replicas = max(isr, 1 + len(followers)) if followers is not None and isr > 0 else isr
    return LogMetrics(os.path.realpath(log.path), time.time_ns() // 1_000_000, topic_rows, group_rows, clients,
                      mirrors, tuple(mirror_links(log.path)), isr, replicas)
