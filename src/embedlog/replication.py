"""Peer replication: one leader per log directory, followers that copy it over TCP.

This module is in two layers.  The *cores* — ``LeaderCore`` (with one
``LeaderSession`` per connection) and ``FollowerCore`` — hold the replication logic
over storage: they take the bytes a connection received and the current time, do the
LMDB work (``storage.replica``), and return the bytes to send.  They open no socket,
start no thread and read no clock, so the protocol tests drive them through an
in-memory channel that loses, duplicates, reorders and corrupts frames.  The socket
layer (``embedlog.net``) is a thin loop around them.

Guarantees the cores implement (Kafka's, with KIP-101/279 leader epochs):

* the leader answers each fetch from one read snapshot, with batches of every
  partition merged by commit sequence number and cut only between transactions; the
  follower applies a whole response in one write transaction, so a leader transaction
  becomes visible on the follower all at once;
* a follower's position is trusted only after the leader checked its last epoch
  against the leader's epoch history; where they diverge the follower truncates to
  the point the leader names (never to a remembered high watermark), in the same
  transaction, before anything else is applied;
* the high watermark of a partition is the least end offset the leader and every
  in-sync follower hold *durably* (followers acknowledge after their commit is on
  disk); it never goes down; consumers on either side see only records below it;
* a follower is in sync while it caught up with the leader within
  ``replica_lag_time_max_ms``; the in-sync set (``meta.isr``) is what ``acks="all"``
  producers check ``min.insync.replicas`` against;
* a follower refuses a leader with an older epoch (``FencedLeaderError``) once it
  checked the leader's proof and sent its own, so that the leader, knowing from an
  authenticated peer that it was superseded, refuses every produce of its process
  from then on (``LeaderCore.fence``); the refusing follower is left as it was.  It
  drops its own records of any epoch its leader says another node led (two promotions
  to one epoch number, or records written before it followed).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import math
import os
import re
import socket
import ssl
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import lmdb

from .codec import batch as codec
from .config import INT32_MAX, check_int
from .errors import (
    AuthenticationError,
    ConfigError,
    EmbedlogError,
    NotLeaderError,
    UncleanPromotionWarning,
    UnrelatedLogError,
)
from .errors import TimeoutError as EmbedlogTimeoutError
from .net import FollowerClient, LeaderServer, parse_address
from .net.common import monotonic_ms
from .protocol import (
    Ack,
    Authenticated,
    Diverging,
    Error,
    ErrorCode,
    FencedLeaderError,
    FetchPartition,
    FetchRequest,
    FetchResponse,
    FollowerConnection,
    FollowerLeftError,
    Heartbeat,
    LeaderConnection,
    Metadata,
    PartitionData,
    PartitionError,
    ProtocolError,
    State,
    TopicRecord,
)
from .protocol.follower import fenced_leader_message
from .protocol.frames import MAX_FRAME
from .protocol.messages import AckPartition
from .storage import partition as plog
from .storage import replica, schema, topics
from .storage.replica import ReplicationBusyError
from .storage.schema import PartitionState
from .storage.store import Store
from .storage.store import now_ms as wall_ms

__all__ = [
    "Follower",
    "FollowerCore",
    "FollowerProgress",
    "Leader",
    "LeaderCore",
    "LeaderSession",
    "ReplicationBusyError",
    "Status",
    "promote",
    "replication_status",
]

if TYPE_CHECKING:
    from .log import Log

T = TypeVar("T")
TP = tuple[int, int]

DEFAULT_MAX_BYTES = 8 << 20
#: what a follower asks per fetch: one response is one LMDB write transaction (and
#: fsync) on the follower, and commits of a few MiB write fastest (measured: 2-3 MiB
#: commits ~2x the MB/s of 8 MiB ones on the benchmark machine's disk); the leader's
#: own cap (``Leader(max_bytes=)``) stays DEFAULT_MAX_BYTES
DEFAULT_FETCH_MAX_BYTES = 2 << 20
DEFAULT_MAX_WAIT_MS = 500
DEFAULT_HEARTBEAT_MS = 1000
DEFAULT_SESSION_TIMEOUT_MS = 10_000
DEFAULT_REQUEST_TIMEOUT_MS = 5_000
#: the least time between two writes of advancing high watermarks to the store (0: a
#: write as soon as the previous one is done, which coalesces what came meanwhile).  Each
#: write is an fsync, and the producers' next append must read again what it had kept of
#: the last one: written on every acknowledgement, they doubled a single-record flush
DEFAULT_HW_PERSIST_MS = 10
#: how long a follower's fetch waits for records before it is answered with nothing but
#: new high watermarks (which then reach the follower's consumers that much later)
HW_ONLY_DELAY_MS = 20
#: a frame from the leader claiming at most this many bytes counts as alive while it
#: arrives (a response of a fetch, or one large batch, on a slow link); a longer one only
#: once whole
_PLAUSIBLE_FRAME = 64 << 20
#: a ``Follower`` sends its next fetch before applying a response only when the response
#: carries at least this many bytes of batches: for less, the early fetch (a read and a
#: send before the apply) costs more than it overlaps, and it delays the ``Ack`` that an
#: ``acks="all"`` flush waits for; the next fetch then goes out with the ``Ack`` (which a
#: ``Follower`` sends the moment the response is durable)
PIPELINE_MIN_BYTES = 64 << 10
#: how many large responses a ``Follower`` holds received and waiting behind the one being
#: applied (``FollowerCore(applier=)``): one keeps its applying thread busy while the next
#: arrives; each is up to ``max_bytes`` in memory
APPLY_BEHIND_DEPTH = 1
#: whether a ``Follower`` applies large responses in a thread of their own, behind the
#: connection's thread (``_Applier``); else in the connection's thread, which reads the
#: next response meanwhile into memory (``net.client.Prefetch``) and decodes it after
APPLY_BEHIND = True
#: how long the ``Leader``'s writer waits, once high watermarks are due to be written,
#: for the next append of this process to carry them before it writes them itself (see
#: ``Leader._write_loop``)
HW_YIELD_MS = 2
#: the longest the ticker lets pass between two ``LeaderCore.update`` calls while commits
#: come and nothing else asks for one (``LeaderCore.update_due``)
UPDATE_EVERY_MS = 20


def _code_for(exc: EmbedlogError) -> int:
    if isinstance(exc, FencedLeaderError):
        return int(ErrorCode.FENCED)
    if isinstance(exc, NotLeaderError):
        return int(ErrorCode.NOT_LEADER)
    if isinstance(exc, ProtocolError):
        return int(ErrorCode.PROTOCOL)
    return int(ErrorCode.INTERNAL)


def _read(store: Store, fn: Callable[[lmdb.Transaction, Any], T]) -> T:
    return store.read(lambda txn: fn(txn, store.dbs))


def _write(store: Store, fn: Callable[[lmdb.Transaction, Any], T], *, notify: bool = False,
           durable: bool = True) -> T:
    return store.write(lambda txn: fn(txn, store.dbs), notify=notify, durable=durable)


class Status(dict[str, Any]):
    """A status report: a dict (``status["epoch"]``, JSON as it is), whose keys also read
    as attributes (``status.epoch``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"status has no {name!r}; it has {', '.join(self)}") from None


def _topic_names(txn: lmdb.Transaction, dbs: Any) -> dict[int, str]:
    """Topic id -> name, for status reports."""
    return {m.topic_id: m.name for m in (topics.get(txn, dbs, n) for n in topics.list_names(txn, dbs)) if m is not None}


# -- leader ------------------------------------------------------------------------------------
@attrs.define
class FollowerProgress:
    """What the leader knows of one follower (by node id, across its connections)."""

    node_id: str
    #: durable end offset per partition, as acknowledged in the current session
    durable: dict[TP, int] = attrs.field(factory=dict)
    in_sync: bool = False
    last_caught_up_ms: int = 0
    last_seen_ms: int = 0
    address: str | None = None
    session: LeaderSession | None = None

    @property
    def connected(self) -> bool:
        """Whether a session of this follower is open."""
        return self.session is not None and not self.session.closed


@attrs.frozen
class _Sent:
    """A response awaiting its ack: when it was built and the leader's end offsets then."""

    at_ms: int
    ends: dict[TP, int]
    complete: bool


class LeaderCore:
    """A replicating leader over one store: the in-sync set and high watermarks.

    Thread-safe: sessions may run in their own threads.  Creating it takes the
    directory's leader lease (``replica.LeaderLease``) and marks it ``replicating``
    (appends stop moving high watermarks); ``stop`` hands them back to appends and
    gives the lease up.  A leader that dies without ``stop`` leaves the flag behind
    with a free lease, which the next writer on the directory releases.

    High watermarks live in memory (``hw``) as computed, and are written to the store
    with every in-sync set change, and otherwise lazily, one write at a time: by this
    process's appends (the core is the store's ``hw_source``, so an append writes the
    computed high watermarks of the partitions it writes into the partition states it
    writes anyway: ``Store.append_in``; ``stored`` tells the core), by an ``acks="all"``
    producer of this process that waits for them (one commit between the followers'
    acknowledgement and the flush's return, by the connection thread that took the
    acknowledgement, or by the producer's thread through ``board.want``),
    else at most once per ``hw_persist_ms`` (with ``defer_store`` by the ``Leader``'s
    writer thread, off the connections' path).  Only stored values are published to
    this process's producers (``replica.HighWatermarkBoard``): when an ``acks="all"``
    flush returns, consumers and ``delete_records`` of this process see its records.
    That is safe because the stored value only ever lags the true one: records below
    it are on every in-sync replica, consumers (which read the store) never see past
    it, and followers truncate by leader epochs, never to a high watermark — so after
    a crash the lower stored value hides records until the followers acknowledge
    again, and takes nothing back.
    """

    def __init__(self, store: Store, *, secret: bytes | None, now_ms: int,
                 replica_lag_time_max_ms: int = 30_000, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_wait_ms: int = DEFAULT_MAX_WAIT_MS, heartbeat_ms: int = DEFAULT_HEARTBEAT_MS,
                 session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS, max_frame: int = MAX_FRAME,
                 hw_persist_ms: int = DEFAULT_HW_PERSIST_MS, defer_store: bool = False) -> None:
        self.store = store
        self.secret = secret
        self.lag_max_ms = replica_lag_time_max_ms
        self.max_bytes = max_bytes
        self.max_wait_ms = max_wait_ms
        self.heartbeat_ms = heartbeat_ms
        self.session_timeout_ms = session_timeout_ms
        self.max_frame = max_frame
        self.hw_persist_ms = hw_persist_ms
        #: high watermarks are written by whoever calls ``store_pending`` (the ``Leader``'s
        #: writer thread), never inside ``update`` — which runs on the data path
        self.defer_store = defer_store
        #: set when computed high watermarks wait to be written
        self.hw_pending = threading.Event()
        #: LMDB ids of the last transactions that wrote high watermarks (committed)
        self._hw_txns: collections.deque[int] = collections.deque(maxlen=16)
        self._lock = threading.RLock()
        #: guards ``_stored_hw`` and ``_stored_at`` (written by appends of this process
        #: too, ``stored``); ``_store_lock``: one ``store_pending`` write at a time, which
        #: runs without ``_lock`` so acknowledgements never wait for its fsync
        self._hw_lock = threading.Lock()
        self._store_lock = threading.Lock()

        def init(txn: lmdb.Transaction, dbs: Any) -> tuple[str, int, dict[int, str], dict[str, Any] | None,
                                                           dict[TP, int]]:
            if replica.get_role(txn, dbs) != "leader":
                raise NotLeaderError(f"{store.path!r} is a replica; promote it (embedlog.replication.promote(), "
                                     "or `embedlog --path DIR promote`) before running a Leader on it")
            node = replica.ensure_node_id(txn, dbs, store.path)
            leaders = replica.epoch_leaders(txn, dbs, current=True)
            replica.set_epoch_leaders(txn, dbs, leaders)
            replica.set_replicating(txn, dbs, True)
            hws = {(t, p): st.high_watermark for t, p, st in replica.all_partitions(txn, dbs)}
            return node, replica.get_epoch(txn, dbs), leaders, replica.get_isr(txn, dbs), hws

        self.lease = replica.LeaderLease(store.path)
        try:
            self.node_id, self.epoch, leaders, isr, hws = _write(store, init)
        except BaseException:
            self.lease.release()
            raise
        self.epoch_leaders = tuple(sorted(leaders.items()))
        #: high watermarks as computed (in memory) and as last written to the store
        self.hw: dict[TP, int] = dict(hws)
        self._stored_hw: dict[TP, int] = dict(hws)
        self._stored_at = now_ms
        self._acked = True  # an acknowledgement arrived since high watermarks were computed
        self.board = replica.open_hw_board(store)
        self.board.want = self._store_wanted
        self.followers: dict[str, FollowerProgress] = {}
        # Followers in the in-sync set when the last leader stopped stay in it until they
        # fail to catch up within the lag limit: a restart must not let the high
        # watermark run past records they have not acknowledged.
        if isr and isr.get("epoch") == self.epoch and isr.get("leader") == self.node_id:
            for fid in isr.get("isr", []):
                self.followers[fid] = FollowerProgress(fid, in_sync=True, last_caught_up_ms=now_ms)
        #: the in-sync set last written (None: none yet; then the set restored above counts)
        self._isr_written: tuple[str, ...] | None = None
        self._isr_restored = tuple(sorted(self.followers))
        #: the topic-metadata digest, cached per topics version
        self.topics_digest = replica.TopicsDigest()
        self.stopped = False
        #: why this leader is fenced (an authenticated follower holds a newer epoch), or ``None``
        self.fenced_by: str | None = None
        #: the newest leader epoch such a follower had
        self.superseded_by: int | None = None
        self._updated_ms = now_ms
        self.update(now_ms)
        if defer_store:
            # appends of this process store the computed high watermarks of the partitions
            # they write, in their own transaction (``Store.append_in``): under load the
            # writer thread finds nothing left to write
            store.hw_source = self

    # -- sessions --------------------------------------------------------------------------
    def session(self, now_ms: int, address: str | None = None) -> LeaderSession:
        """A new connection's session."""
        return LeaderSession(self, now_ms, address)

    def _attach(self, session: LeaderSession, node_id: str, now_ms: int) -> FollowerProgress:
        with self._lock:
            f = self.followers.get(node_id)
            if f is None:
                f = self.followers[node_id] = FollowerProgress(node_id, last_caught_up_ms=now_ms)
            f.session = session  # the newest connection speaks for the follower
            f.durable = {}  # positions are known again once this session acknowledges
            f.address = session.address
            f.last_seen_ms = now_ms
            return f

    def _detach(self, session: LeaderSession) -> None:
        with self._lock:
            for f in self.followers.values():
                if f.session is session:
                    f.session = None

    def _left(self, session: LeaderSession, now_ms: int) -> None:
        """The follower of ``session`` stops following (it said so): out of the in-sync
        set now, not after ``replica_lag_time_max_ms`` (it rejoins once caught up)."""
        with self._lock:
            for f in self.followers.values():
                if f.session is session:
                    f.in_sync = False
        self.update(now_ms)

    def _on_ack(self, session: LeaderSession, f: FollowerProgress, ack: Ack, now_ms: int) -> None:
        with self._lock:
            if f.session is not session:
                return  # an older connection of this follower
            f.last_seen_ms = now_ms
            for p in ack.partitions:
                tp = (p.topic_id, p.partition)
                bound = max(session.validated.get(tp, -1), session.sent_end.get(tp, -1))
                trusted = min(p.offset, bound)
                if trusted >= 0:
                    f.durable[tp] = trusted
            sent = session.inflight.pop(ack.correlation_id, None)
            for corr in [c for c in session.inflight if c < ack.correlation_id]:
                del session.inflight[corr]
            if sent is not None and sent.complete and all(f.durable.get(tp, 0) >= end for tp, end in sent.ends.items()):
                f.last_caught_up_ms = max(f.last_caught_up_ms, sent.at_ms)
                if not f.in_sync:
                    # against the high watermarks as computed, not as stored: a follower
                    # joins only if it holds everything already acknowledged
                    hws = _read(self.store, lambda txn, dbs: {
                        (t, p): max(st.high_watermark, self.hw.get((t, p), 0))
                        for t, p, st in replica.all_partitions(txn, dbs)})
                    if all(f.durable.get(tp, 0) >= hw for tp, hw in hws.items()):
                        f.in_sync = True
            self._acked = True
        self.update(now_ms)

    # -- the in-sync set and high watermarks -------------------------------------------------
    def in_sync_ids(self) -> tuple[str, ...]:
        """Ids of the followers in the in-sync set."""
        with self._lock:
            return tuple(sorted(f.node_id for f in self.followers.values() if f.in_sync))

    def update(self, now_ms: int) -> bool:
        """Drop followers that lagged too long from the in-sync set and advance high
        watermarks.  An in-sync set change is written at once, with the high watermarks
        it moves; other advances are announced to this process's ``acks="all"``
        producers (``board.signal``: a waiting producer stores them itself, see
        ``HighWatermarkBoard``) and otherwise written once ``hw_persist_ms`` passed
        since the last write (by the ``Leader``'s writer with ``defer_store``, else
        here).  Nothing moves once the leader is fenced.  Return whether anything was
        written."""
        with self._lock:
            written, moved = self._update(now_ms)
        if moved:
            if self.board.waiting:
                # An acks="all" producer of this process waits for them: store them from
                # this thread now (as the producer would, once woken and holding the GIL),
                # and publish them, which wakes it.
                self._store_wanted()
            else:
                self.board.signal()  # (without the lock: a producer about to wait stores them)
        return written

    def _update(self, now_ms: int) -> tuple[bool, bool]:
        """``update`` under the lock: whether it wrote, and whether high watermarks
        moved that are not stored yet."""
        if self.stopped or self.superseded_by is not None:
            return False, False
        self._updated_ms = now_ms
        for f in self.followers.values():
            if f.in_sync and now_ms - f.last_caught_up_ms > self.lag_max_ms:
                f.in_sync = False
        isr = [f for f in self.followers.values() if f.in_sync]
        ids = tuple(sorted(f.node_id for f in isr))
        isr_changed = ids != self._isr_written
        moves: dict[TP, int] = {}
        # With followers in sync only their acknowledgements move a high watermark
        # (min(end, what each holds)): skip the read when none arrived.
        if self._acked or isr_changed or not isr:
            self._acked = False

            def targets(txn: lmdb.Transaction, dbs: Any) -> tuple[dict[TP, int], set[TP]]:
                out = {}
                seen = set()
                for tid, part, st in replica.all_partitions(txn, dbs):
                    tp = (tid, part)
                    seen.add(tp)
                    target = min([st.end_offset, *(f.durable.get(tp, 0) for f in isr)])
                    if target > max(st.high_watermark, self.hw.get(tp, 0)):
                        out[tp] = target
                return out, seen

            moves, existing = _read(self.store, targets)
            for tp in [tp for tp in self.hw if tp not in existing]:  # deleted partitions
                del self.hw[tp]
                self._stored_hw.pop(tp, None)
        if isr_changed:
            # The new in-sync set is on disk before any high watermark it allows is
            # used, here or elsewhere (producers check min.insync.replicas against it):
            # written together, and published together (``_hw_write``).
            written = self._store_hws(ids, isr_changed, now_ms, moves)
            self.hw.update(moves)
            return written, False
        if moves:
            self.hw.update(moves)
            self.hw_pending.set()
        if not self.defer_store and now_ms - self._stored_at >= self.hw_persist_ms and self._unstored():
            return self._store_hws(ids, False, now_ms), False
        return False, bool(moves)

    def update_due(self, now_ms: int) -> bool:
        """Whether a commit on the log may give ``update`` something to do: an
        acknowledgement arrived since it last ran, no follower is in sync (the high
        watermarks follow the end offsets), or ``UPDATE_EVERY_MS`` passed (followers that
        lag too long leave the in-sync set).  Cheap, no lock: the ticker asks it after
        each commit, so that a commit waiting for acknowledgements is not slowed by an
        ``update`` with nothing to do."""
        return self._acked or not self._isr_written or now_ms - self._updated_ms >= UPDATE_EVERY_MS

    def stored(self, written: Mapping[TP, int], isr_size: int | None = None) -> None:
        """These high watermarks were committed — by an append of this process along
        with its records (``Store.append_in``, through ``Store.hw_source``), or by
        ``_hw_write`` (with ``isr_size`` when it wrote an in-sync set too): publish them
        to this process's ``acks="all"`` producers, which may return now that consumers
        see the records."""
        with self._hw_lock:
            stored = self._stored_hw
            for tp, hw in written.items():
                if hw > stored.get(tp, -1):
                    stored[tp] = hw
            # (with a new in-sync set size: every stored value, in the same step)
            publish = dict(stored) if isr_size is not None else written
        self.board.publish(publish, isr_size)

    def _has_unstored(self) -> bool:
        stored = self._stored_hw
        return any(hw > stored.get(tp, -1) for tp, hw in list(self.hw.items()))

    def _store_wanted(self) -> None:
        """An ``acks="all"`` producer of this process waits, so the high watermarks
        computed and not stored yet are written now (``store_pending``; nothing when
        every one is stored, cheap, no lock): by the thread that computed them from an
        acknowledgement (``update``: no hand-off of the GIL to the producer before the
        write), else by the producer's own (``board.want``).  This is the one commit
        between a follower's acknowledgement and the flush's return: consumers see the
        records once it is done.  A leader thread waits for its fsync only while a
        producer does; otherwise the writer thread stores them, off the data path."""
        if self.stopped or not self._has_unstored():
            return
        with contextlib.suppress(Exception):  # (the writer thread retries it)
            self.store_pending(None)

    def _unstored(self) -> dict[TP, int]:
        with self._hw_lock:
            stored = self._stored_hw
            return {tp: hw for tp, hw in list(self.hw.items()) if hw > stored.get(tp, -1)}

    def _hw_write(self, pending: Mapping[TP, int], isr: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """Write ``pending`` high watermarks (each only raised: ``set_high_watermark``),
        and ``isr`` if given, in one transaction; record them as stored.  Return the
        in-sync set written: ``isr`` less any follower it adds that does not hold every
        record below the high watermarks stored now (an append of the leader alone moved
        them since the follower was judged caught up: ``replica.isr_empty``); those
        leave the set again and rejoin once they hold them."""
        before = set(self._isr_written if self._isr_written is not None else self._isr_restored)
        kept: list[tuple[str, ...]] = []

        def write(txn: lmdb.Transaction, dbs: Any) -> int | None:
            changed = isr is not None
            for (tid, part), hw in pending.items():
                st = plog.load_state(txn, dbs, tid, part)
                if st is not None and replica.set_high_watermark(txn, dbs, tid, part, hw) != st.high_watermark:
                    changed = True
            if isr is not None:
                members = list(isr)
                joining = [fid for fid in isr if fid not in before]
                if joining:
                    for tid, part, st in replica.all_partitions(txn, dbs):
                        for fid in list(joining):
                            f = self.followers.get(fid)
                            if f is None or f.durable.get((tid, part), 0) < st.high_watermark:
                                joining.remove(fid)
                                members.remove(fid)
                kept[:] = [tuple(members)]
                replica.set_isr(txn, dbs, {"epoch": self.epoch, "leader": self.node_id, "isr": members,
                                           "size": 1 + len(members), "updated_ms": wall_ms()})
            # LMDB commits a transaction that changed nothing without using up its id: the
            # next writer's transaction (an append, perhaps) gets it, so it must not be
            # taken for one of ours (``only_hw_writes``)
            return int(txn.id()) if changed else None

        # A high watermark alone is not fsynced at once (an in-sync set change is): a power
        # loss may take it back to a lower value, which hides records a while but never
        # shows one a failover can take back; and its commit's own fsync of pages puts
        # every earlier commit on disk first, the records it covers included.
        txn_id = _write(self.store, write, notify=True, durable=isr is not None)
        if txn_id is not None:
            self._hw_txns.append(txn_id)
        if isr is None:
            self.stored(pending, None)
            return None
        written = kept[0]
        for fid in isr:
            if fid not in written and fid in self.followers:
                self.followers[fid].in_sync = False  # (not caught up after all: it rejoins when it is)
        self.stored(pending, 1 + len(written))
        return written

    def _store_hws(self, ids: tuple[str, ...], isr_changed: bool, now_ms: int,
                   moves: dict[TP, int] | None = None) -> bool:
        """Write the high watermarks not stored yet (and ``moves``), and the in-sync set
        if it changed, in one transaction.  Call with the lock held."""
        pending = self._unstored()
        pending.update(moves or {})
        if not pending and not isr_changed:
            return False
        written = self._hw_write(pending, ids if isr_changed else None)
        self._stored_at = now_ms
        if written is not None:
            self._isr_written = written
        return True

    def only_hw_writes(self, since: int, now: int) -> bool:
        """Whether every write transaction committed after LMDB snapshot ``since`` up to
        ``now`` was one of this core's high-watermark writes (none at all: ``True``)."""
        if now == since:
            return True
        written = self._hw_txns
        return 0 < now - since <= len(written) and all(t in written for t in range(since + 1, now + 1))

    def store_due(self, now_ms: int) -> int | None:
        """Milliseconds until computed high watermarks are due to be written (``0``: now),
        or ``None`` if every one is written; cheap, no lock."""
        if not self._has_unstored():
            return None
        return max(0, self._stored_at + self.hw_persist_ms - now_ms)

    def store_pending(self, now_ms: int | None) -> bool:
        """Write the computed high watermarks not written yet; return whether it did.
        ``now_ms``: the time, from which ``hw_persist_ms`` runs again (``None``: a write
        a producer asked for, ``_store_wanted``, which leaves the writer's pace alone).

        Without holding ``_lock`` through the write (an fsync): acknowledgements and
        in-sync set changes go on meanwhile.  Safe to race with them: every value it
        writes was published under an in-sync set already stored, and stored high
        watermarks are only ever raised."""
        with self._store_lock:
            with self._lock:
                if self.stopped or self._isr_written is None:
                    return False
                pending = self._unstored()
            if not pending:
                return False
            self._hw_write(pending, None)
            if now_ms is not None:
                self._stored_at = now_ms
            return True

    def stop(self) -> None:
        """Stop replicating: appends move high watermarks again (the leader alone is the
        in-sync set), and the in-sync set is forgotten.  Idempotent."""
        with self._lock:
            if self.stopped:
                return
            self.stopped = True
            for f in self.followers.values():
                if f.session is not None:
                    f.session.close()

            def fn(txn: lmdb.Transaction, dbs: Any) -> None:
                replica.set_replicating(txn, dbs, False)
                replica.set_isr(txn, dbs, None)

            try:
                _write(self.store, fn, notify=True)
            finally:
                self.abandon()

    def abandon(self) -> None:
        """Give the lease up and close the board without touching the store (the store
        is closed, or ``stop`` wrote already); a flag left behind is then stale."""
        self.stopped = True
        if self.store.hw_source is self:
            self.store.hw_source = None
        replica.unfence(self.store.path, self)
        replica.close_hw_board(self.store, self.board)
        self.lease.release()

    def fence(self, epoch: int, node_id: str | None) -> None:
        """An authenticated follower (``node_id``) holds leader epoch ``epoch``, newer
        than this leader's: another node was promoted, and records written here from now
        on would be dropped when this node follows it.  So, while this core runs, every
        produce of this process on the directory raises ``FencedLeaderError`` (with
        ``acks="all"`` before writing; waiting ``acks="all"`` flushes fail at once), and
        high watermarks and the in-sync set no longer move.  Nothing is written to the
        store: stopping this ``Leader`` ends it (then the node must be started as a
        follower of the new leader)."""
        with self._lock:
            if self.stopped or (self.superseded_by is not None and self.superseded_by >= epoch):
                return
            self.superseded_by = epoch
            who = f"follower {node_id}" if node_id else "a follower"
            self.fenced_by = (f"{who} has leader epoch {epoch}, newer than this leader's {self.epoch}: another "
                              "node was promoted; restart this node as a follower of the new leader")
            error = FencedLeaderError(
                f"{self.store.path!r} is a fenced old leader: it led epoch {self.epoch} and was superseded by "
                f"leader epoch {epoch} ({who} has it), so it accepts no more writes; records it holds that the "
                "new leader lacks are dropped when it follows it. Stop its Leader and restart this node as a "
                "follower of the new leader")
            replica.fence(self.store.path, self, error)
            self.board.fence(error)

    def status(self) -> Status:
        """Epoch, high watermark and end offset per partition, and each follower's lag
        and in-sync state."""
        parts = _read(self.store, replica.all_partitions)
        names = _read(self.store, _topic_names)
        with self._lock:
            followers = {}
            for f in self.followers.values():
                # (from the log start at least: records retention deleted are none to copy)
                lag = {f"{names.get(t, t)}[{p}]": max(0, st.end_offset - max(f.durable.get((t, p), 0), st.start_offset))
                       for t, p, st in parts}
                followers[f.node_id] = {"address": f.address, "connected": f.connected, "in_sync": f.in_sync,
                                        "lag": lag, "total_lag": sum(lag.values()),
                                        "last_caught_up_ms": f.last_caught_up_ms}
            return Status({"role": "leader", "node_id": self.node_id, "epoch": self.epoch,
                           "isr": list(self.in_sync_ids()),
                           "partitions": {f"{names.get(t, t)}[{p}]": {
                               "high_watermark": max(st.high_watermark, self.hw.get((t, p), 0)),
                               "end_offset": st.end_offset, "log_start_offset": st.start_offset}
                               for t, p, st in parts},
                           "followers": followers, "fenced_by": self.fenced_by})


class LeaderSession:
    """The leader's side of one follower connection."""

    def __init__(self, core: LeaderCore, now_ms: int, address: str | None) -> None:
        self.core = core
        self.address = address
        self.conn = LeaderConnection(node_id=core.node_id, epoch=core.epoch, secret=core.secret,
                                      nonce=os.urandom(32), epoch_leaders=core.epoch_leaders,
                                      max_frame=core.max_frame)
        self.follower: FollowerProgress | None = None
        self.parked: FetchRequest | None = None
        self.parked_at = 0
        #: per partition, the fetch offset last validated and the end of what was sent
        self.validated: dict[TP, int] = {}
        self.sent_end: dict[TP, int] = {}
        self.inflight: dict[int, _Sent] = {}
        self.hw_sent: dict[TP, int] = {}
        #: the in-sync state last told the follower (a change answers a parked fetch)
        self.in_sync_sent: bool | None = None
        #: (request, LMDB snapshot id) last found to have nothing to send: unchanged, skip the look
        self._idle_at: tuple[FetchRequest, int] | None = None
        #: the last response that left the follower caught up: (LMDB snapshot id, topics
        #: digest, offsets digest, end offset per partition) — see ``_caught_up``
        self._quiet: tuple[int, bytes, bytes, dict[TP, int]] | None = None
        #: the parked request ``_caught_up`` found caught up against ``_quiet``
        self._quiet_req: FetchRequest | None = None
        self.responses = 0
        self.last_recv_ms = now_ms
        self.last_send_ms = now_ms
        self.closed = False
        self.error: EmbedlogError | None = None

    # -- input -------------------------------------------------------------------------------
    def receive(self, data: bytes, now_ms: int) -> bytes:
        """Bytes from the follower in; bytes for it out.  On a protocol, authentication
        or fencing error the session closes (``closed``, ``error``) after queueing an
        ``Error`` for the follower; nothing of the offending message was applied."""
        if self.closed:
            return b""
        frames = self.conn.frames_in
        try:
            events = self.conn.receive_data(data)
        except FencedLeaderError as exc:
            epoch = self.conn.superseded_by  # (set only once the follower proved itself)
            if epoch is not None:
                peer = self.conn.peer
                self.core.fence(epoch, None if peer is None else peer.node_id)
            return self._end(exc)
        except FollowerLeftError as exc:
            self.core._left(self, now_ms)
            return self._end(exc)
        except EmbedlogError as exc:
            return self._end(exc)
        if self.conn.frames_in != frames:  # whole frames only: a damaged length must not look alive
            self.last_recv_ms = now_ms
        try:
            for ev in events:
                if isinstance(ev, Authenticated):
                    self.follower = self.core._attach(self, ev.node_id, now_ms)
                elif isinstance(ev, FetchRequest):
                    self.parked = None
                    self._fetch(ev, now_ms, park_ok=self.responses > 0)
                elif isinstance(ev, Ack) and self.follower is not None:
                    self.core._on_ack(self, self.follower, ev, now_ms)
        except EmbedlogError as exc:
            if self.conn.state is not State.CLOSED:
                self.conn.send(Error(_code_for(exc), str(exc)))
            return self._end(exc)
        return self._out(now_ms)

    def poll(self, now_ms: int) -> bytes:
        """Time passed or the log changed: answer a parked fetch that has something (or
        waited ``max_wait_ms``), send a heartbeat when idle, time out a silent follower."""
        if self.closed:
            return b""
        if now_ms - self.last_recv_ms > self.core.session_timeout_ms:
            return self._end(EmbedlogTimeoutError(
                f"no message from follower for {self.core.session_timeout_ms} ms; dropping its connection"))
        try:
            if not self.core.defer_store and self.core.store_due(now_ms) == 0:
                self.core.update(now_ms)
            if self.parked is not None:
                self._fetch(self.parked, now_ms, park_ok=now_ms - self.parked_at < self.core.max_wait_ms)
            elif self.conn.state is State.STREAMING and now_ms - self.last_send_ms >= self.core.heartbeat_ms:
                self.conn.send(Heartbeat(now_ms))
        except EmbedlogError as exc:
            if self.conn.state is not State.CLOSED:
                self.conn.send(Error(_code_for(exc), str(exc)))
            return self._end(exc)
        return self._out(now_ms)

    def close(self) -> None:
        """The transport closed (or the leader stops)."""
        if not self.closed:
            self.closed = True
            self.conn.close()
            self.core._detach(self)

    def _out(self, now_ms: int) -> bytes:
        data = self.conn.data_to_send()
        if data:
            self.last_send_ms = now_ms
        return data

    def _end(self, exc: EmbedlogError) -> bytes:
        self.error = exc
        data = self.conn.data_to_send()
        self.close()
        return data

    # -- fetch ---------------------------------------------------------------------------------
    def _validate(self, txn: lmdb.Transaction, fp: FetchPartition, st: PartitionState) -> Diverging | None:
        """KIP-279: does the follower's log up to ``fetch_offset`` agree with ours?"""
        dbs = self.core.store.dbs
        offset, epoch = fp.fetch_offset, fp.last_epoch
        if offset < st.start_offset:
            return None  # everything it has is before our log start: it restarts there
        if epoch < 0:
            return Diverging(-1, st.end_offset) if offset > st.end_offset else None
        if replica.latest_epoch(txn, dbs, fp.topic_id, fp.partition) < 0:  # nothing written here yet
            return Diverging(-1, st.end_offset) if offset > st.end_offset else None
        e, end = replica.end_offset_for_epoch(txn, dbs, fp.topic_id, fp.partition, epoch)
        if e < 0:
            raise FencedLeaderError(
                f"follower holds records of epoch {epoch} in topic id {fp.topic_id} partition {fp.partition}, "
                f"newer than any epoch of this leader's log: this leader was replaced; restart it as a follower")
        if e != epoch or end < offset:
            return Diverging(e, end)
        return None

    def _restart_point(self, txn: lmdb.Transaction, tp: TP, st: PartitionState) -> int:
        """Where a follower behind our log start starts again: the batch boundary at or
        before the log start (``delete_records`` may start a log inside a batch)."""
        first = plog.first_batch(txn, self.core.store.dbs, tp[0], tp[1])
        return st.start_offset if first is None else min(st.start_offset, first[0].base_offset)

    def _caught_up(self, txn: lmdb.Transaction, req: FetchRequest,
                   quiet: tuple[int, bytes, bytes, dict[TP, int]]) -> bool:
        """Whether ``req`` is what the follower asks once it applied the last response
        built, which took it to the end of every partition, on this very snapshot
        (nothing was committed since): then a full look would find nothing to send, so
        the fetch parks without one.  Records it as validated, as that look would."""
        _, digest, offsets_digest, ends = quiet
        parts = req.partitions
        if req.metadata_digest != digest or req.offsets_digest != offsets_digest or len(parts) != len(ends):
            return False
        dbs = self.core.store.dbs
        seen = set()
        for fp in parts:
            tp = (fp.topic_id, fp.partition)
            # at our end, with our latest epoch: ``_validate`` agrees (the epoch ends at our end)
            if ends.get(tp) != fp.fetch_offset or tp in seen or \
                    fp.last_epoch != replica.latest_epoch(txn, dbs, fp.topic_id, fp.partition):
                return False
            seen.add(tp)
        for fp in parts:
            self.validated[(fp.topic_id, fp.partition)] = fp.fetch_offset
        return True

    def _fetch(self, req: FetchRequest, now_ms: int, *, park_ok: bool) -> None:
        core = self.core
        store = core.store
        dbs = store.dbs
        f = self.follower
        if f is None:
            raise ProtocolError("fetch before authentication")  # the state machine prevents it

        def build(txn: lmdb.Transaction) -> FetchResponse | None:
            idle = self._idle_at
            if park_ok and idle is not None and idle[0] is req and idle[1] == txn.id() and \
                    f.in_sync == self.in_sync_sent:
                return None  # nothing was committed since this fetch last found nothing to send
            quiet = self._quiet
            if park_ok and quiet is not None and f.in_sync == self.in_sync_sent and \
                    core.only_hw_writes(quiet[0], txn.id()) and \
                    (self._quiet_req is req or self._caught_up(txn, req, quiet)):
                # (_caught_up's answer for this request holds until a response is built:
                # only high watermarks were written since, which it does not look at)
                self._quiet_req = req
                if quiet[0] == txn.id():
                    self._idle_at = (req, txn.id())
                    return None
                # only stored high watermarks moved: they go out alone once HW_ONLY_DELAY_MS passed
                if (now_ms - self.parked_at if self.parked is req else 0) < min(HW_ONLY_DELAY_MS, core.max_wait_ms):
                    return None
            if replica.get_role(txn, dbs) != "leader":
                raise NotLeaderError(f"{store.path!r} is no longer a leader")
            states = {(t, p): st for t, p, st in replica.all_partitions(txn, dbs)}
            metadata = None
            digest = core.topics_digest(txn, dbs)
            if req.metadata_digest != digest:
                next_id, records = replica.topic_records(txn, dbs)
                metadata = Metadata(next_id, tuple(TopicRecord(n, r) for n, r in records))
            diverging: dict[TP, Diverging] = {}
            positions: list[tuple[int, int, int]] = []
            listed: list[TP] = []
            for fp in req.partitions:
                tp = (fp.topic_id, fp.partition)
                st = states.get(tp)
                listed.append(tp)
                if st is None:
                    continue
                div = self._validate(txn, fp, st)
                if div is not None:
                    diverging[tp] = div
                    self.validated.pop(tp, None)
                    self.sent_end.pop(tp, None)
                    continue
                self.validated[tp] = fp.fetch_offset
                if fp.fetch_offset < st.start_offset:  # it restarts at our log start
                    self.sent_end[tp] = max(self.sent_end.get(tp, -1), st.start_offset)
                    positions.append((tp[0], tp[1], self._restart_point(txn, tp, st)))
                else:
                    positions.append((tp[0], tp[1], fp.fetch_offset))
            if metadata is not None:  # partitions it will create from the metadata, empty
                asked = set(listed)
                for tp, st in states.items():
                    if tp not in asked:
                        listed.append(tp)
                        positions.append((tp[0], tp[1], self._restart_point(txn, tp, st)))
                        self.sent_end[tp] = max(self.sent_end.get(tp, -1), st.start_offset)
            if diverging:  # truncation first, alone: no batch may land beside a half-truncated log
                merged = replica.MergedRead({}, False, 0, 0)
            else:
                merged = replica.read_merged(txn, dbs, positions, max(1, min(req.max_bytes, core.max_bytes)))
            # Committed offsets as of this snapshot go out whenever the follower's differ,
            # also with a response cut at max_bytes: a transaction's offsets then reach it
            # no later than its records (the response that carries them is read after
            # its commit), so an acks="all" commit, which waits for the records, finds
            # its offsets on every in-sync follower too.  (They may run ahead of the
            # records that follower holds, as Kafka's offsets topic may of a data topic.)
            offsets = None
            offsets_digest = replica.offsets_digest(txn, dbs)
            if offsets_digest != req.offsets_digest:
                offsets = tuple(replica.offset_records(txn, dbs))
            hws = {tp: states[tp].high_watermark for tp in listed if tp in states}
            if (park_ok and not merged.batches and not diverging and metadata is None and offsets is None
                    and f.in_sync == self.in_sync_sent):
                if all(self.hw_sent.get(tp) == hw for tp, hw in hws.items()):
                    self._idle_at = (req, txn.id())
                    return None
                waited = now_ms - self.parked_at if self.parked is req else 0
                if waited < min(HW_ONLY_DELAY_MS, core.max_wait_ms):
                    # Only high watermarks moved: let them ride on the next records (the
                    # follower would fsync an answer of nothing else) unless none come soon.
                    return None
            self._idle_at = None
            parts = []
            for tp in listed:
                st = states.get(tp)
                if st is None:
                    parts.append(PartitionData(tp[0], tp[1], int(PartitionError.UNKNOWN_PARTITION), 0, 0, 0, None, ()))
                    continue
                batches = tuple(merged.batches.get(tp, ()))
                if batches:
                    self.sent_end[tp] = codec.read_info(batches[-1]).next_offset
                parts.append(PartitionData(tp[0], tp[1], int(PartitionError.NONE), st.high_watermark,
                                           st.start_offset, st.end_offset, diverging.get(tp), batches))
            self.hw_sent.update(hws)
            self.in_sync_sent = f.in_sync
            ends = {tp: st.end_offset for tp, st in states.items()}
            self.inflight[req.correlation_id] = _Sent(now_ms, ends, merged.complete)
            self._quiet = None
            self._quiet_req = None
            if merged.complete and not diverging and len(listed) == len(states):
                self._quiet = (txn.id(), digest, offsets_digest, ends)
            return FetchResponse(req.correlation_id, core.epoch, f.in_sync, metadata, offsets, tuple(parts))

        response = store.read(build)
        if response is None:
            if self.parked is None:
                self.parked, self.parked_at = req, now_ms
            return
        self.parked = None
        self.responses += 1
        self.conn.send(response)


# -- follower ----------------------------------------------------------------------------------
def _checksums_match(resp: FetchResponse) -> bool:
    """Whether every batch of ``resp`` passes its checksum (``codec.verify``), computed
    here in one call per batch, which releases the GIL (``codec.verify`` holds it, for
    consumers): the connection's thread checks a response it hands to the ``applier``
    while that thread applies the one before.  ``False``: the apply finds which and
    says why."""
    for pd in resp.partitions:
        for raw in pd.batches:
            try:
                codec.read_info(raw)
            except codec.CorruptBatchError:
                return False
            if not codec.checksum_matches(raw):
                return False
    return True


@attrs.define(eq=False)
class _Behind:
    """A response handed to the ``applier``, and how its apply went."""

    resp: FetchResponse
    sent: FetchRequest
    done: bool = False
    cancelled: bool = False
    acked: list[AckPartition] | None = None
    error: BaseException | None = None


class _Applier:
    """The thread a ``Follower`` applies large responses in (``FollowerCore(applier=)``):
    it runs what it is given in order, and calls ``wake`` once it has nothing left to
    run (the connection's thread then sends the Acks)."""

    def __init__(self) -> None:
        self.wake: Callable[[], None] | None = None
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="embedlog-follower-apply", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` after those given before (it handles its own errors)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the follower's applier is closed")
            self._jobs.append(job)
            self._cond.notify()

    def close(self) -> None:
        """Run what was given, then end the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            job()
            wake = self.wake
            if wake is not None and not self._jobs:
                # (with more to apply, the connection's thread hands over another response
                # soon, and queues the Acks then: a wake-up would take the GIL from this
                # thread to send them sooner, and slow the next apply)
                wake()


class FollowerCore:
    """A follower over one store: turns leader responses into LMDB transactions.

    Creating it makes the directory a replica (producers on it raise
    ``NotLeaderError``); if it refuses its leader (``FencedLeaderError``,
    ``UnrelatedLogError``) before accepting one, the role goes back to what it was
    (``_restore``).  One connection at a time: ``connect`` starts one (returning the
    Hello to send), ``receive``/``poll`` drive it, ``disconnect`` forgets it.
    ``receive`` raises ``AuthenticationError`` and ``FencedLeaderError`` (fatal: do not
    reconnect) and other ``EmbedlogError``s (reconnect and fetch again).
    """

    def __init__(self, store: Store, *, secret: bytes | None, max_bytes: int = DEFAULT_FETCH_MAX_BYTES,
                 request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS,
                 session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS, heartbeat_ms: int = DEFAULT_HEARTBEAT_MS,
                 max_frame: int = MAX_FRAME, pipeline_min_bytes: int = 0,
                 applier: Callable[[Callable[[], None]], None] | None = None,
                 apply_depth: int = APPLY_BEHIND_DEPTH) -> None:
        self.store = store
        self.secret = secret
        self.max_bytes = max_bytes
        #: responses with fewer bytes of batches are applied before the next fetch is sent
        self.pipeline_min_bytes = pipeline_min_bytes
        #: runs a callable in another thread, in submission order (``Follower``: ``_Applier``):
        #: large responses are then applied there, behind the connection's thread, which
        #: meanwhile receives and decodes the next one (see ``receive``); ``None``: every
        #: response is applied by the caller of ``receive``
        self.applier = applier
        #: responses received and waiting behind the one being applied, at most
        self.apply_depth = max(0, apply_depth)
        self.request_timeout_ms = request_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_ms = heartbeat_ms
        self.max_frame = max_frame

        def init(txn: lmdb.Transaction, dbs: Any) -> str:
            self._role_before = replica.get_role(txn, dbs)
            flag = txn.get(schema.META_REPLICATING, db=dbs["meta"])
            self._replicating_before = None if flag is None else bytes(flag)
            replica.set_role(txn, dbs, "replica")
            txn.put(schema.META_REPLICATING, b"0", db=dbs["meta"])  # high watermarks stay as they are
            return replica.ensure_node_id(txn, dbs, store.path)

        self.node_id = _write(store, init)
        #: the leader's address, for messages (``Follower`` sets it)
        self.leader_address: str | None = None
        #: whether a leader was accepted (``_on_authenticated`` wrote): until then, a
        #: refused leader leaves the directory as it was (``_restore``)
        self._followed = False
        self.conn: FollowerConnection | None = None
        self._corr = 0
        self._sent_at = 0
        #: the last time bytes of a frame from the leader came in, and how many of a frame
        #: not whole yet had come then (``_heard``)
        self._progress_ms = 0
        self._pending_seen = 0
        self.last_recv_ms = 0
        self.last_send_ms = 0
        self.leader_id: str | None = None
        self.leader_epoch: int | None = None
        self.in_sync = False
        self.lag: dict[TP, int] = {}
        self.responses = 0
        #: responses answered with the next fetch before they were applied
        self.pipelined = 0
        #: responses applied by ``applier`` (behind the connection's thread)
        self.applied_behind = 0
        #: responses handed to ``applier`` whose Ack is not queued yet, oldest first
        self._behind: collections.deque[_Behind] = collections.deque()
        self._behind_cond = threading.Condition()
        self._behind_failed = False
        #: positions (offset, epoch) after the last response handed to ``applier``
        self._ahead: dict[TP, tuple[int, int]] = {}
        self.truncated: list[tuple[int, int, int]] = []
        self._state_written: dict[str, Any] | None = None  # the follower state last written (meta.follower)
        #: a Leaving was queued for a connected leader (``leave``), which drops this node from its in-sync set
        self.told_leaving = False
        #: the topics digest each fetch carries, cached per topics version
        self._topics_digest = replica.TopicsDigest()

    @property
    def connected(self) -> bool:
        """Whether an authenticated connection is open."""
        return self.conn is not None and self.conn.state is State.STREAMING

    def connect(self, now_ms: int) -> bytes:
        """Start a new connection; return its Hello."""
        epoch = _read(self.store, replica.get_epoch)
        self.conn = FollowerConnection(node_id=self.node_id, epoch=epoch, secret=self.secret,
                                        nonce=os.urandom(32), max_frame=self.max_frame, address=self.leader_address)
        self.conn.start()
        self.last_recv_ms = self.last_send_ms = now_ms
        self._pending_seen = 0
        return self._out(now_ms)

    def disconnect(self) -> None:
        """The connection is gone.  Waits for an apply under way behind it
        (``applier``) and drops the responses waiting for one: the next connection
        fetches from what is stored."""
        with self._behind_cond:
            for job in self._behind:
                job.cancelled = True
            while any(not job.done for job in self._behind):
                self._behind_cond.wait()
            self._behind.clear()
            self._behind_failed = False
            self._ahead = {}
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def leave(self) -> bytes:
        """Tell the leader this follower stops (``Follower.close()``); the bytes to send
        before closing the transport."""
        if self.connected:
            assert self.conn is not None
            self.conn.send(Error(int(ErrorCode.LEAVING), "the follower stops following"))
            self.told_leaving = True
        return self.pending()

    def pending(self) -> bytes:
        """Bytes still queued for the leader (an ``Error`` queued before ``receive`` raised):
        send them before closing the transport."""
        return self.conn.data_to_send() if self.conn is not None else b""

    def expired(self, now_ms: int) -> bool:
        """Nothing heard from the leader for ``session_timeout_ms``: reconnect."""
        return self.conn is not None and now_ms - self.last_recv_ms > self.session_timeout_ms

    def receive(self, data: bytes, now_ms: int, flush: Callable[[bytes], None] | None = None,
                ack: Callable[[bytes], None] | None = None) -> bytes:
        """Bytes from the leader in; bytes for it out (see the class docstring for errors).

        A response that only appends batches (``pipeline_min_bytes`` or more of them) is
        answered with the next fetch *before* it is applied (its positions are where the
        response ends), so that the leader reads and sends the next response while this
        one is written and fsynced; its ``Ack`` follows once it is durable.  ``flush``, if
        given, is called with the bytes queued so far (that early fetch) before the apply
        starts: the socket layer sends them at once (and reads the answer meanwhile,
        ``net.client.Prefetch``).  Without it they come out with the rest.  A smaller
        response is applied first; the next fetch follows its ``Ack``.

        ``ack``, if given, is called with the bytes of each applied response's ``Ack``
        (and the next fetch, unless it went out early) the moment that response is
        durable, right in the apply, so that the leader (and an ``acks="all"`` flush
        waiting there) hears of it at once; without it they come out in the return
        value: the same bytes in the same order.

        With an ``applier``, such a large response is not applied here: its early fetch
        goes out in the return value and the response is handed to ``applier``, which
        applies it in its own thread while the caller receives and decodes the next
        response (positions for the next fetch come from the responses handed over:
        ``_ahead``).  Its ``Ack`` is queued once it is durable, by the next ``receive`` or
        ``poll`` (the applier's thread wakes the caller); at most ``apply_depth``
        responses wait behind the one being applied (``receive`` blocks for room).  Any
        other response is applied here, after every one handed over was applied and
        acknowledged, in order."""
        conn = self.conn
        if conn is None:
            return b""
        frames = conn.frames_in
        events = self._events(conn.receive_data, data)  # (an Error for the leader is queued on a refusal)
        return self._handle(events, frames, now_ms, flush, ack)

    def recv_buffer(self) -> memoryview | None:
        """Where the rest of a large frame under way can be received directly, with no
        copy (then call ``receive_into``); ``None``: receive bytes for ``receive``."""
        return self.conn.recv_buffer() if self.conn is not None else None

    def receive_into(self, n: int, now_ms: int, flush: Callable[[bytes], None] | None = None,
                     ack: Callable[[bytes], None] | None = None) -> bytes:
        """``n`` bytes were received into ``recv_buffer()``: as ``receive``."""
        conn = self.conn
        if conn is None:
            return b""
        frames = conn.frames_in
        events = self._events(conn.receive_into, n)
        return self._handle(events, frames, now_ms, flush, ack)

    def _events(self, read: Callable[[Any], list[Any]], arg: Any) -> list[Any]:
        """``read(arg)``: the connection's events for what was received; its typed errors
        raised, a refusal of the leader (or a failed authentication) after ``unfollowed``."""
        try:
            return read(arg)
        except FencedLeaderError as exc:
            raise self._fenced(exc) from None
        except AuthenticationError:
            self.unfollowed()
            raise

    def _fenced(self, exc: FencedLeaderError) -> FencedLeaderError:
        """This node refuses its leader, an old one (fenced): the error to raise.  Before
        any leader was accepted nothing was changed but the role, which goes back to what
        it was (``_restore``): a node that refuses to follow is not demoted by it."""
        conn = self.conn
        self.unfollowed()
        if isinstance(conn, FollowerConnection) and exc is conn.refused:
            return exc  # (this node's own refusal: it says so already)
        address = self.leader_address
        at = f" at {address}" if address else ""
        if not self._followed and (conn is None or conn.peer is None):
            # the leader refused this node's Hello (an older embedlog refused at Hello);
            # its text ("... newer than this leader's N: ... restart this node ...") is advice
            # for the leader's operator, kept as the cause only
            found = re.search(r"this leader's (\d+)", str(exc))
            epoch = _read(self.store, replica.get_epoch)
            out = FencedLeaderError(fenced_leader_message(address, int(found[1]) if found else None, epoch))
        else:
            out = FencedLeaderError(f"the leader{at} (epoch {self.leader_epoch}) is a fenced old leader: {exc}")
        out.__cause__ = exc
        return out

    def left(self) -> None:
        """This follower told its leader it stops (``Follower.close()``): the leader drops
        it from the in-sync set at once and acknowledges records without it, so the state
        ``promote`` looks at says it is out of the set from now on."""
        state = self._state_written
        if not self.told_leaving or state is None or not state.get("in_sync"):
            return  # (not told: a leader gone keeps its last in-sync set, this node in it)
        state = {**state, "in_sync": False}
        _write(self.store, lambda txn, dbs: replica.set_follower_state(txn, dbs, state))
        self._state_written = state

    def unfollowed(self) -> None:
        """The leader was refused, failed authentication, or was never reached before
        following stopped: a node that never followed any leader gets its role back (it
        is not a replica of a node it did not follow)."""
        if not self._followed:
            self._restore()

    def _restore(self) -> None:
        """Put the role and replication flag back as they were before this core made
        the directory a replica (nothing else was written)."""
        role, flag = self._role_before, self._replicating_before

        def fn(txn: lmdb.Transaction, dbs: Any) -> None:
            replica.set_role(txn, dbs, role)
            if flag is None:
                txn.delete(schema.META_REPLICATING, db=dbs["meta"])
            else:
                txn.put(schema.META_REPLICATING, flag, db=dbs["meta"])

        _write(self.store, fn, notify=True)

    def _handle(self, events: list[Any], frames: int, now_ms: int, flush: Callable[[bytes], None] | None,
                ack: Callable[[bytes], None] | None = None) -> bytes:
        assert self.conn is not None
        self._heard(frames, now_ms)
        for ev in events:
            if isinstance(ev, Authenticated):
                self._on_authenticated(ev)
                self._request(now_ms)
            elif isinstance(ev, FetchResponse):
                early = None
                large = self.pipeline_min_bytes <= 0 or sum(
                    len(b) for pd in ev.partitions for b in pd.batches) >= self.pipeline_min_bytes
                if large:
                    self._collect(None)  # (Acks of what was applied meanwhile, first)
                    early = self.store.read(functools.partial(
                        self._pipelined_request, resp=ev, ahead=self._ahead if self._behind else None))
                if early is not None and self.applier is not None and _checksums_match(ev):
                    self._collect(self.apply_depth)  # room behind the apply under way
                    self._request(now_ms, early)
                    self.pipelined += 1
                    self._ahead = {(fp.topic_id, fp.partition): (fp.fetch_offset, fp.last_epoch)
                                   for fp in early.partitions}
                    job = _Behind(ev, early)  # (checksums verified: not again in the apply)
                    with self._behind_cond:
                        self._behind.append(job)
                    try:
                        self.applier(functools.partial(self._apply_behind, job))
                    except BaseException:
                        with self._behind_cond:  # (never to run: nothing may wait for it)
                            job.cancelled = job.done = True
                            self._behind_cond.notify_all()
                        raise
                    continue
                self._collect(0)  # everything handed over applied and acknowledged first
                if early is not None:
                    self._request(now_ms, early)
                    self.pipelined += 1
                    if flush is not None:
                        flush(self._out(now_ms))
                    self._on_response(ev, early, now_ms, ack)
                else:
                    request = self._on_response(ev, None, now_ms, ack)
                    if request is not None:  # (else it went out with the Ack)
                        self._request(now_ms, request)
        return self._out(now_ms)

    def _heard(self, frames: int, now_ms: int) -> None:
        """After bytes came in: the leader is alive if they completed a frame, or moved a
        frame of a plausible length on (on a slow link a 2 MiB response takes longer than
        the session timeout; a damaged length, claiming more, must not look alive)."""
        conn = self.conn
        assert conn is not None
        pending, length = conn.receiving()
        arriving = pending > self._pending_seen and length <= _PLAUSIBLE_FRAME
        if arriving or conn.frames_in != frames:
            self.last_recv_ms = now_ms
        if arriving:  # (a frame under way: maybe the response; a heartbeat is no news of it)
            self._progress_ms = now_ms
        self._pending_seen = pending

    def poll(self, now_ms: int) -> bytes:
        """Time passed: fetch again if the response is overdue (nothing of it came for
        ``request_timeout_ms``), else heartbeat when idle."""
        conn = self.conn
        if conn is None or conn.state is not State.STREAMING:
            return b""
        self._collect(None)  # Acks of responses applied behind (``applier``)
        if conn.outstanding is not None and now_ms - max(self._sent_at, self._progress_ms) > self.request_timeout_ms:
            self._collect(0)  # (the fetch is read from the store: everything handed over in it first)
            self._request(now_ms)  # the response was lost: ask again (the old one is dropped if late)
        elif now_ms - self.last_send_ms >= self.heartbeat_ms:
            conn.send(Heartbeat(now_ms))
        return self._out(now_ms)

    def _out(self, now_ms: int) -> bytes:
        data = self.conn.data_to_send() if self.conn is not None else b""
        if data:
            self.last_send_ms = now_ms
        return data

    def _on_authenticated(self, ev: Authenticated) -> None:
        self.leader_id, self.leader_epoch = ev.node_id, ev.epoch

        leaders = dict(ev.epoch_leaders)

        def fn(txn: lmdb.Transaction, dbs: Any) -> list[tuple[int, int, int]]:
            replica.raise_epoch(txn, dbs, ev.epoch)
            return replica.reconcile_epochs(txn, dbs, leaders)

        unrelated = _read(self.store, functools.partial(self._unrelated, leaders=leaders))
        if unrelated is not None:
            self.unfollowed()  # (nothing else was changed: writable as before)
            raise UnrelatedLogError(unrelated)
        truncated = _write(self.store, fn, notify=True)
        self._followed = True
        self.truncated.extend(truncated)

    def _unrelated(self, txn: lmdb.Transaction, dbs: Any, leaders: Mapping[int, str]) -> str | None:
        """Why following the leader whose epoch map is ``leaders`` would delete records
        of another log (none of this directory's epochs was led by the node the leader
        names), or ``None``: an empty directory, or one of the leader's lineage (its
        follower before, or its leader before a promotion)."""
        mine = replica.epoch_leaders(txn, dbs)
        if any(leaders.get(e) == node for e, node in mine.items()):
            return None
        held = [t for t, _, st in replica.all_partitions(txn, dbs) if st.end_offset > st.start_offset]
        if held:
            names = sorted({meta.name if (meta := topics.get_by_id(txn, dbs, t)) is not None else str(t)
                            for t in held})
            what = (f"records of another log ({len(held)} partition(s) with records, topics "
                    f"{', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
        else:
            with txn.cursor(db=dbs["offsets"]) as cur:
                if not cur.first():
                    return None  # (no records, no committed offsets: nothing following could lose)
            what = "committed offsets of another log's consumer groups"
        return (f"{self.store.path!r} holds {what} that its leader {self.leader_id} never wrote; following would "
                "delete them, so nothing was changed. Follow with an empty directory, or move this one's data "
                "away first")

    def _request(self, now_ms: int, prepared: FetchRequest | None = None) -> None:
        """Send the next fetch (``prepared`` by ``_next_request`` in the transaction that
        applied the last response, or read now)."""
        assert self.conn is not None
        self.conn.send(prepared if prepared is not None else _read(self.store, self._next_request))
        self._sent_at = now_ms

    def _next_request(self, txn: lmdb.Transaction, dbs: Any, *, cache: bool = True) -> FetchRequest:
        parts = tuple(FetchPartition(t, p, st.end_offset, replica.latest_epoch(txn, dbs, t, p))
                      for t, p, st in replica.all_partitions(txn, dbs))
        self._corr += 1
        return FetchRequest(self._corr, self.node_id, self._topics_digest(txn, dbs, cache=cache),
                            replica.offsets_digest(txn, dbs), self.max_bytes, parts)

    def _truncation_point(self, txn: lmdb.Transaction, tid: int, part: int, div: Diverging, end: int) -> int:
        """Where to truncate on a Diverging answer (Kafka's follower side of KIP-279)."""
        if div.epoch < 0:
            return min(div.end_offset, end)
        fe, fend = replica.end_offset_for_epoch(txn, self.store.dbs, tid, part, div.epoch)
        if fe < 0:
            return min(div.end_offset, end)
        if fe == div.epoch:
            return min(div.end_offset, fend, end)
        return min(fend, end)  # we lack the leader's epoch: cut back to our last epoch below it, ask again

    def _pipelined_request(self, txn: lmdb.Transaction, resp: FetchResponse,
                           ahead: Mapping[TP, tuple[int, int]] | None = None) -> FetchRequest | None:
        """The fetch that will follow ``resp`` once it is applied, read before applying it
        (``None`` unless that is certain: ``resp`` only appends batches where this log
        ends — no metadata, offsets, truncation, log-start reset or partition error).
        ``ahead``: where the log will end, per partition, once the responses handed to
        the ``applier`` are applied (they only append batches, so they change nothing
        else read here); every partition stored must be in it.

        Safe to send early: a fetch position is never taken as durable (acks are), the
        leader checks its epoch as always, and if the apply fails the connection is
        dropped and the next one fetches from what is stored."""
        if resp.metadata is not None or resp.offsets is not None:
            return None
        dbs = self.store.dbs
        data = {(pd.topic_id, pd.partition): pd for pd in resp.partitions}
        any_batches = False
        parts = []
        for t, p, st in replica.all_partitions(txn, dbs):
            if ahead is None:
                offset, epoch = st.end_offset, replica.latest_epoch(txn, dbs, t, p)
            else:  # (a partition missing from it appeared behind the replication's back: no hurry)
                offset, epoch = ahead.get((t, p), (-1, -1))
            pd = data.pop((t, p), None)
            if offset < 0 or (pd is not None and (pd.error != PartitionError.NONE or pd.diverging is not None
                                                  or pd.log_start_offset > offset)):
                return None
            if pd is not None and pd.batches:
                try:
                    first, last = codec.read_info(pd.batches[0]), codec.read_info(pd.batches[-1])
                except codec.CorruptBatchError:
                    return None  # refused by the apply: let it say why
                if first.base_offset != offset:
                    return None
                any_batches = True
                offset, epoch = last.next_offset, max(epoch, last.leader_epoch)
            parts.append(FetchPartition(t, p, offset, epoch))
        if data or not any_batches:  # partitions we lack, or nothing to apply: no hurry
            return None
        self._corr += 1
        return FetchRequest(self._corr, self.node_id, self._topics_digest(txn, dbs),
                            replica.offsets_digest(txn, dbs), self.max_bytes, tuple(parts))

    def _on_response(self, resp: FetchResponse, sent: FetchRequest | None, now_ms: int = 0,
                     ack: Callable[[bytes], None] | None = None) -> FetchRequest | None:
        """Apply a response in one transaction, acknowledge it once durable; return the
        next fetch to send: ``sent`` if it went out already (``_pipelined_request``), else
        read in that same transaction.

        With ``ack``, the ``Ack`` is handed to it the moment the response is durable,
        together with that next fetch (read in the transaction: a fetch that left later
        would reach the leader after its next commit, and that commit's records would
        wait for it); ``None`` is returned then, as nothing is left to send."""
        assert self.conn is not None
        corr = self._corr
        try:
            acked, request = self._apply(resp, sent)
        except replica.ApplyError as exc:
            self._corr = corr
            self.conn.send(Error(int(ErrorCode.INTERNAL), f"follower could not apply the response: {exc}"))
            raise ProtocolError(f"could not apply the leader's response (fetching again): {exc}") from exc
        self.conn.send(Ack(resp.correlation_id, tuple(acked)))
        if ack is None:
            return request
        if sent is None:
            self._request(now_ms, request)
        ack(self._out(now_ms))  # (with what was queued before it, in order)
        return None

    def _apply(self, resp: FetchResponse, sent: FetchRequest | None, *,
               verified: bool = False) -> tuple[list[AckPartition], FetchRequest]:
        """Apply ``resp`` in one write transaction, durable when this returns (raises
        ``replica.ApplyError`` and applies nothing if it cannot); return the end offsets
        to acknowledge and the next fetch (``sent``, else read in that transaction).
        ``verified``: every batch's checksum was checked already (``_checksums_match``).
        Touches no connection: it may run in the ``applier``'s thread."""

        def fn(txn: lmdb.Transaction, dbs: Any) -> tuple[list[AckPartition], FetchRequest]:
            replica.raise_epoch(txn, dbs, resp.leader_epoch)
            if resp.metadata is not None:
                replica.apply_topics(txn, dbs, resp.metadata.next_topic_id,
                                     [(t.name, t.record) for t in resp.metadata.topics])
            if resp.offsets is not None:
                replica.apply_offsets(txn, dbs, resp.offsets)
            lag = {}
            ends = {}  # the leader's end offsets
            for pd in resp.partitions:
                tid, part = pd.topic_id, pd.partition
                st = plog.load_state(txn, dbs, tid, part)
                if st is None or pd.error != PartitionError.NONE:
                    continue
                ends[(tid, part)] = pd.end_offset
                if pd.diverging is not None:
                    target = self._truncation_point(txn, tid, part, pd.diverging, st.end_offset)
                    new_end = replica.truncate(txn, dbs, tid, part, target)
                    if new_end < st.end_offset:
                        self.truncated.append((tid, part, new_end))
                    lag[(tid, part)] = max(1, pd.end_offset - new_end)
                    continue
                if pd.log_start_offset > st.end_offset:  # we are behind the leader's log start
                    if pd.batches:  # restart at the batch boundary the leader sends from
                        replica.reset(txn, dbs, tid, part, codec.read_info(pd.batches[0]).base_offset)
                    elif pd.log_start_offset == pd.end_offset:  # the leader holds nothing: start at its end
                        replica.reset(txn, dbs, tid, part, pd.log_start_offset)
                if pd.batches:
                    st = replica.apply(txn, dbs, tid, part, pd.batches, verified=verified)
                replica.advance_log_start(txn, dbs, tid, part, pd.log_start_offset)
                replica.set_high_watermark(txn, dbs, tid, part, pd.high_watermark)
                end = plog.load_state(txn, dbs, tid, part)
                lag[(tid, part)] = max(0, pd.end_offset - (end.end_offset if end else 0))
            lags.append(lag)  # (published once committed: status() names its topics from the store)
            # what promote() looks at: was this node in sync when it last heard from its leader?
            state: dict[str, Any] = {"leader": self.leader_id, "epoch": resp.leader_epoch,
                                     "in_sync": resp.in_sync, "lag": sum(lag.values())}
            behind = {f"{t}:{p}": ends[(t, p)] for (t, p), n in lag.items() if n > 0}
            if behind:  # (where consumers here wait at a position past the end: Consumer._catching_up)
                state["behind"] = behind
            if state != self._state_written:
                replica.set_follower_state(txn, dbs, state)
                wrote.append(state)
            acks = [AckPartition(t, p, st.end_offset) for t, p, st in replica.all_partitions(txn, dbs)]
            return acks, sent if sent is not None else self._next_request(txn, dbs, cache=resp.metadata is None)

        wrote: list[dict[str, Any]] = []
        lags: list[dict[TP, int]] = []
        acked, request = _write(self.store, fn, notify=True)
        self.lag = lags[-1]
        if wrote:
            self._state_written = wrote[-1]
        if self.store.env.durability != "flush":
            self.store.env.sync()  # acknowledge only what is on disk
        self.in_sync = resp.in_sync
        self.leader_epoch = resp.leader_epoch
        self.responses += 1
        return acked, request

    def _apply_behind(self, job: _Behind) -> None:
        """In the ``applier``'s thread: apply a response handed over by ``receive``
        (unless the connection was dropped, or one handed over before it failed)."""
        with self._behind_cond:
            skip = job.cancelled or self._behind_failed
        try:
            if not skip:
                job.acked = self._apply(job.resp, job.sent, verified=True)[0]
        except BaseException as exc:  # noqa: BLE001 - raised in the connection's thread (_collect)
            job.error = exc
        with self._behind_cond:
            if job.error is not None:
                self._behind_failed = True
            elif not skip:
                self.applied_behind += 1
            job.done = True
            self._behind_cond.notify_all()

    def _collect(self, room: int | None) -> None:
        """Queue the Acks of responses applied behind (``applier``), in order; with
        ``room``, first wait until at most that many wait to be applied (``0``: until
        every one is applied).  An apply that failed raises here, as it would have in
        ``receive`` (the connection is then dropped: ``disconnect``)."""
        behind = self._behind
        if not behind:
            return
        with self._behind_cond:
            while room is not None and sum(not job.done for job in behind) > room:
                self._behind_cond.wait()
            done = []
            while behind and behind[0].done:
                done.append(behind.popleft())
        for job in done:
            if job.error is not None:
                assert self.conn is not None
                if isinstance(job.error, replica.ApplyError):
                    self.conn.send(Error(int(ErrorCode.INTERNAL),
                                         f"follower could not apply the response: {job.error}"))
                    raise ProtocolError(f"could not apply the leader's response (fetching again): "
                                        f"{job.error}") from job.error
                raise job.error
            if job.acked is not None and self.conn is not None:
                self.conn.send(Ack(job.resp.correlation_id, tuple(job.acked)))

    def status(self) -> Status:
        """Leader, epoch, connection state, lag per partition."""
        epoch, names = _read(self.store, lambda txn, dbs: (replica.get_epoch(txn, dbs), _topic_names(txn, dbs)))
        lag = dict(self.lag)
        return Status({"role": "follower", "node_id": self.node_id, "leader_id": self.leader_id, "epoch": epoch,
                       "connected": self.connected, "in_sync": self.in_sync,
                       "lag": {f"{names.get(t, t)}[{p}]": n for (t, p), n in lag.items()},
                       "total_lag": sum(lag.values())})


# -- the public API: Leader, Follower, promote ----------------------------------------------------
class _DirLock:
    """An exclusive ``flock`` on ``<log>/replication.lock``: one Leader, Follower or
    promotion per directory at a time, across processes (released if the process dies;
    a forked child closes its copy, so it never keeps its parent's lock)."""

    def __init__(self, path: str, what: str) -> None:
        self.path = os.path.join(path, "replication.lock")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ReplicationBusyError(
                f"cannot {what}: a Leader or Follower runs on {path!r} (in this or another process); "
                "stop it first") from None
        _DIR_LOCKS.add(self)

    def release(self) -> None:
        """Unlock (idempotent)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = -1


_DIR_LOCKS: weakref.WeakSet[_DirLock] = weakref.WeakSet()


def _forget_in_child() -> None:
    for lock in list(_DIR_LOCKS):
        fd, lock._fd = lock._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)  # not LOCK_UN: that would unlock the parent's


os.register_at_fork(after_in_child=_forget_in_child)


def _check_auth(secret: bytes | str | None, ssl_context: ssl.SSLContext | None, insecure: bool,
                side: str = "leader") -> bytes | None:
    if isinstance(secret, str):
        try:
            secret = secret.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError("secret is a str that is not valid Unicode (a lone surrogate); give bytes, or a "
                              "str of characters") from None
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise ConfigError(f"ssl_context must be an ssl.SSLContext (or None), got {type(ssl_context).__name__}")
    if not isinstance(insecure, bool):
        raise ConfigError(f"insecure must be True or False, got {insecure!r}")
    if secret is not None and not isinstance(secret, (bytes, bytearray)):
        raise ConfigError(f"secret must be bytes (or a str, used as UTF-8), got {type(secret).__name__}")
    if secret is not None and len(secret) == 0:
        raise ConfigError("secret is empty: give the same non-empty secret to every node (a long random value is "
                          "best, e.g. secrets.token_bytes(32)), or insecure=True")
    if secret is None and ssl_context is None and not insecure:
        raise ConfigError("replication needs authentication: pass secret=b'...' (the same on every node) or an "
                          "ssl_context with client certificates, or insecure=True to run without any")
    if secret is None and ssl_context is not None and not insecure and ssl_context.verify_mode != ssl.CERT_REQUIRED:
        # TLS authenticates only what it verifies: without a secret, the peer's certificate is the only check
        if side == "leader":
            raise ConfigError("the leader's ssl_context does not require client certificates, so any follower could "
                              "copy the log: set verify_mode = ssl.CERT_REQUIRED with the followers' CA loaded "
                              "(load_verify_locations), add a secret=, or pass insecure=True")
        raise ConfigError("the follower's ssl_context does not verify the leader's certificate, so it would follow "
                          "any leader: keep verify_mode = ssl.CERT_REQUIRED with the leader's CA loaded, add a "
                          "secret=, or pass insecure=True")
    return None if secret is None else bytes(secret)


def _store_of(log: Log) -> Store:
    from .log import Log  # noqa: PLC0415 - replication imports log's module lazily

    if not isinstance(log, Log):
        raise ConfigError(f"expected an embedlog.Log (from embedlog.open()), got {type(log).__name__}")
    log._check()
    return log._store


class Leader:
    """Serve this log to followers over TCP; a context manager.

    ``listen`` is ``HOST:PORT`` (port 0: a free port; ``address`` tells which; ``:PORT``
    is loopback); loopback unless told otherwise.  Authentication is mutual, by HMAC
    over ``secret`` (the same non-empty bytes on every node; a ``str`` is used as
    UTF-8) or by TLS client certificates (``ssl_context``, a server context that
    requires them); with neither the leader refuses to start unless
    ``insecure=True``.  While it runs, consumers of this log see only records every
    in-sync follower holds, and ``acks="all"`` producers wait for them.  When an
    ``acks="all"`` flush of this process returns, the high watermark covering its
    records is stored (written as the acknowledgement arrives if nothing else wrote
    it), so consumers of this process and ``delete_records`` see them.  Otherwise
    consumers and other processes see a new high watermark when it is written: with the
    next append of this process to the partition, else by an fsync of its own made at
    most once per ``hw_persist_ms`` (default 10 ms; ``0``: after each advance — earlier
    visibility, more fsyncs competing with this process's appends), ``HW_YIELD_MS``
    after it is due.  It holds the directory's leader lease meanwhile: if its process
    dies (even by ``kill -9``), the next write on the directory hands the high
    watermarks back to appends.

    A follower that proves it holds a newer leader epoch fences this leader
    (``status()["fenced_by"]``): from then on, until it is closed, every produce of this
    process on the directory raises ``FencedLeaderError`` (``acks="all"`` and
    ``acks="leader"`` alike: the new leader will never hold what this node writes now)
    and high watermarks stop moving; restart the node as a follower of the new leader.
    """

    def __init__(self, log: Log, listen: str | tuple[str, int] = "127.0.0.1:0", *,
                 secret: bytes | str | None = None,
                 insecure: bool = False, ssl_context: ssl.SSLContext | None = None,
                 replica_lag_time_max_ms: int = 30_000, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_wait_ms: int = DEFAULT_MAX_WAIT_MS, session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
                 hw_persist_ms: int = DEFAULT_HW_PERSIST_MS) -> None:
        store = _store_of(log)
        secret = _check_auth(secret, ssl_context, insecure)
        check_int("replica_lag_time_max_ms", replica_lag_time_max_ms)
        check_int("hw_persist_ms", hw_persist_ms, 0)
        check_int("max_bytes", max_bytes, 1, MAX_FRAME // 2)
        check_int("max_wait_ms", max_wait_ms, 0)
        check_int("session_timeout_ms", session_timeout_ms)
        address = parse_address(listen)
        self.log = log
        self._lock = _DirLock(store.path, "run a Leader")
        self._server: LeaderServer | None = None
        self._stop_writer = threading.Event()
        self._writer: threading.Thread | None = None
        try:
            self.core = LeaderCore(store, secret=secret, now_ms=monotonic_ms(),
                                   replica_lag_time_max_ms=replica_lag_time_max_ms, max_bytes=max_bytes,
                                   max_wait_ms=max_wait_ms, session_timeout_ms=session_timeout_ms,
                                   hw_persist_ms=hw_persist_ms, defer_store=True)
            try:
                try:
                    self._server = LeaderServer(self.core, store.notifier, address, ssl_context)
                except (OSError, ValueError, TypeError, UnicodeError) as exc:
                    if isinstance(exc, socket.gaierror) or (isinstance(exc, OSError) and (exc.errno or 0) < 0):
                        raise ConfigError(f"cannot listen at {address[0]}:{address[1]}: the host name does not "
                                          f"resolve ({exc.strerror}); give an address of this machine") from None
                    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    raise ConfigError(f"cannot listen at {address[0]}:{address[1]}: {why}; give a free port "
                                      f"(0 picks one) on an address of this machine") from None
            except BaseException:
                self.core.stop()
                raise
            self.core.board.kick = self._server.push_parked
            self._writer = threading.Thread(target=self._write_loop, name="embedlog-leader-hw", daemon=True)
            self._writer.start()
            self._server.start()
        except BaseException:
            self._stop_writer.set()
            self._lock.release()
            raise
        self.closed = False

    def _write_loop(self) -> None:
        """Write the core's high watermarks as they advance, one write at a time, off the
        connections' path: producers of this process already saw them on the board; this
        makes consumers and other processes see them.

        Appends of this process store the high watermarks of the partitions they write
        along with their records (``Store.hw_source``), so under load there is mostly
        nothing left to write here once ``hw_persist_ms`` passed.  The thread sleeps
        meanwhile rather than waking with every commit: a commit that an ``acks="all"``
        flush waits for is not slowed by it."""
        core = self.core
        while not self._stop_writer.is_set():
            core.hw_pending.wait(0.1)
            core.hw_pending.clear()  # (before looking, so a publication meanwhile is not missed)
            yielded = False
            while not self._stop_writer.is_set():
                due = core.store_due(monotonic_ms())
                if due is None:
                    break
                if due > 0:
                    self._stop_writer.wait(due / 1000)
                    continue
                if not yielded:
                    # An acks="all" producer woken by the last publication commits again at
                    # once, and that commit carries the high watermarks of its partitions:
                    # give it HW_YIELD_MS (a write holds LMDB's write lock through its fsync).
                    yielded = True
                    self._stop_writer.wait(HW_YIELD_MS / 1000)
                    continue
                with contextlib.suppress(Exception):  # retried at the next publication or tick
                    core.store_pending(monotonic_ms())
                break

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` actually bound."""
        assert self._server is not None
        return self._server.address

    def status(self) -> Status:
        """Epoch, high watermark per partition, each follower's lag and in-sync state."""
        out = self.core.status()
        out["address"] = f"{self.address[0]}:{self.address[1]}"
        return out

    def close(self) -> None:
        """Stop serving; consumers see every record again as it is written (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.core.board.kick = None  # (producers stop sending for this server)
        try:
            self._stop_writer.set()
            self.core.hw_pending.set()  # wake the writer
            if self._writer is not None:
                self._writer.join(timeout=10)
            if self._server is not None:
                self._server.close()
        finally:
            try:
                if not self.log.closed:
                    self.core.stop()
            finally:
                self.core.abandon()
                self._lock.release()

    def __enter__(self) -> Leader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Follower:
    """Follow a leader: copy its log into this one, over TCP; a context manager.

    The directory becomes a replica (producers on it raise ``NotLeaderError`` until it
    is promoted); a Follower closed before it ever reached a leader leaves it as it was.
    The connection runs in a background thread that reconnects with backoff;
    ``wait_connected`` blocks until it authenticated and raises the typed error
    (``AuthenticationError``, ``FencedLeaderError``) if it never can.  ``leader`` is
    ``HOST:PORT`` (``:PORT``: loopback); ``secret`` as for ``Leader``.

    A node refuses to follow, and is left as it was — records and role — when the
    leader's epoch is lower than its own (a fenced old leader, ``FencedLeaderError``:
    the old leader must follow this node, not the other way round; having proved this
    node's identity, the refusal fences that leader) and when the directory holds
    records of another log (written here before following, or replicated from another
    leader: ``UnrelatedLogError``, as following would delete them).
    """

    def __init__(self, log: Log, leader: str | tuple[str, int], *, secret: bytes | str | None = None,
                 insecure: bool = False, ssl_context: ssl.SSLContext | None = None,
                 max_bytes: int = DEFAULT_FETCH_MAX_BYTES, session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
                 backoff_ms: tuple[int, int] = (50, 2000)) -> None:
        store = _store_of(log)
        secret = _check_auth(secret, ssl_context, insecure, "follower")
        check_int("max_bytes", max_bytes, 1, MAX_FRAME // 2)
        check_int("session_timeout_ms", session_timeout_ms)
        if (not isinstance(backoff_ms, tuple) or len(backoff_ms) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in backoff_ms)
                or not 1 <= backoff_ms[0] <= backoff_ms[1] <= INT32_MAX):
            raise ConfigError(f"backoff_ms must be a (first, most) pair of ints with 1 <= first <= most (milliseconds "
                              f"between reconnection attempts), got {backoff_ms!r}")
        self.log = log
        self.leader = parse_address(leader)
        self._lock = _DirLock(store.path, "run a Follower")
        self._applier: _Applier | None = None
        try:
            self._applier = _Applier() if APPLY_BEHIND else None
            self.core = FollowerCore(store, secret=secret, max_bytes=max_bytes,
                                     session_timeout_ms=session_timeout_ms, pipeline_min_bytes=PIPELINE_MIN_BYTES,
                                     applier=None if self._applier is None else self._applier.submit)
            self.core.leader_address = f"{self.leader[0]}:{self.leader[1]}"
            self._client = FollowerClient(self.core, self.leader, ssl_context, backoff_ms)
            if self._applier is not None:
                # an apply done behind the connection's thread wakes it to send the Ack
                self._applier.wake = self._client.wake
            self._client.start()
        except BaseException:
            if self._applier is not None:
                self._applier.close()
            self._lock.release()
            raise
        self.closed = False

    @property
    def error(self) -> EmbedlogError | None:
        """The fatal error that stopped following (authentication, fencing), if any."""
        return self._client.error

    def wait_connected(self, timeout: float | None = None) -> None:
        """Block until connected and authenticated; raise the fatal error if following
        stopped, or ``embedlog.errors.TimeoutError``."""
        if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                                    or math.isnan(timeout)):
            raise ConfigError(f"timeout must be a number of seconds or None (no limit), got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._client.error is not None:
                raise self._client.error
            if self._client.authenticated.is_set():
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise EmbedlogTimeoutError(f"not connected to the leader at {self.leader[0]}:{self.leader[1]} "
                                           f"within {timeout} s (last error: {self._client.last_error!r})")
            self._client.done.wait(0.02 if remaining is None else min(0.02, remaining))

    def status(self) -> Status:
        """Leader address, epoch, lag per partition, connected or not, errors."""
        out = self.core.status()
        out["leader"] = f"{self.leader[0]}:{self.leader[1]}"
        out["connected"] = self._client.authenticated.is_set()
        if self.closed:
            out["in_sync"] = False  # (it stopped following: the leader's set no longer holds it, or soon will not)
        out["error"] = None if self._client.error is None else str(self._client.error)
        out["last_error"] = None if self._client.last_error is None else repr(self._client.last_error)
        out["connections"] = self._client.connections
        return out

    def close(self, *, leave: bool = True) -> None:
        """Stop following (the directory stays a replica; ``promote`` makes it a leader).
        A Follower that never reached a leader leaves the directory as it was.

        ``leave``: tell the leader, which drops this node from its in-sync set at once
        (Kafka's controlled shutdown), so ``acks="all"`` flushes stop waiting for it;
        ``leave=False`` just disconnects, as a lost link would: the leader keeps it in
        the set until ``replica_lag_time_max_ms`` passes."""
        if self.closed:
            return
        self.closed = True
        try:
            self._client.close(leave=leave)  # (its thread's end waits for an apply under way: disconnect)
            if self._applier is not None:
                self._applier.close()
            if not self.log.closed:
                self.core.unfollowed()  # (no leader was ever accepted: writable as before)
                self.core.left()  # (if it told its leader it leaves: ``leave``)
        finally:
            self._lock.release()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def promote(log: Log) -> int:
    """Make a stopped follower (or any directory) a leader with a new, higher epoch;
    return the epoch.

    Explicit on purpose: with two nodes there is no majority to decide that the leader
    is gone, so embedlog never promotes on a timeout.  Fenced: the epoch is above every
    epoch this directory has seen, so the old leader's followers refuse it and the old
    leader, started again as a follower of this node, drops what it wrote that this node
    does not hold.  Raises ``ReplicationBusyError`` if a Leader or Follower runs on the
    directory.

    Warns with ``UncleanPromotionWarning`` when the directory is a replica that was not
    in its leader's in-sync set, or was behind it, when it last heard from it (or never
    heard from one): records the old leader acknowledged may then be missing.  A
    follower cut off for longer than the leader's ``replica_lag_time_max_ms`` may have
    left the in-sync set without hearing of it; only the old leader knows.
    """
    store = _store_of(log)
    lock = _DirLock(store.path, "promote")
    try:
        def fn(txn: lmdb.Transaction, dbs: Any) -> tuple[int, str | None]:
            risk = replica.promotion_risk(txn, dbs)
            return replica.promote(txn, dbs, store.path), risk

        epoch, risk = _write(store, fn, notify=True)
    finally:
        lock.release()
    if risk is not None:
        warnings.warn(UncleanPromotionWarning(
            f"promoted {store.path!r} to leader (epoch {epoch}) although {risk}: records the old leader "
            "acknowledged may be missing here, and the old leader drops them when it follows this node; "
            "if the old leader's disk survives, promote it instead"), stacklevel=2)
    return epoch


def replication_status(log: Log) -> Status:
    """What the directory says of its replication, read from the store (so it works
    while the Leader or Follower runs in another process): ``role`` (``leader`` or
    ``replica``), ``node_id``, ``epoch``, ``replicating`` (a Leader manages the high
    watermarks: also while the Leader that set it is dead, until one runs again),
    ``isr`` (the in-sync follower ids the Leader last wrote — also when it died: with
    ``stale_lease``, these are the followers that hold every record it acknowledged, the
    ones to promote — or ``None`` when none runs nor died here),
    ``isr_size`` (nodes holding every acknowledged record, this one included),
    ``stale_lease`` (``replicating``, but no Leader holds the lease: it died without
    stopping, and new records stay hidden until one runs here again), ``follower`` (on
    a replica: what its Follower last wrote — the leader's node id, ``epoch``,
    ``in_sync`` in the leader's in-sync set, and ``lag`` in records — else ``None``),
    and per partition ``"topic[n]"`` its high watermark (as stored: a running Leader's
    may be a write ahead), end and log start offsets and leader epoch."""
    store = _store_of(log)

    def fn(txn: lmdb.Transaction, dbs: Any) -> Status:
        names = _topic_names(txn, dbs)
        isr = replica.get_isr(txn, dbs)
        flag = replica.is_replicating(txn, dbs)
        live = flag and replica.lease_live(store.path)
        return Status({
            "role": replica.get_role(txn, dbs),
            "node_id": replica.get_node_id(txn, dbs),
            "epoch": replica.get_epoch(txn, dbs),
            "replicating": flag,
            "stale_lease": flag and not live,
            "isr": None if isr is None or not flag else list(isr.get("isr", [])),
            "isr_size": replica.in_sync_size(txn, dbs) if flag else 1,
            "follower": replica.get_follower_state(txn, dbs) if replica.get_role(txn, dbs) == "replica" else None,
            "partitions": {f"{names.get(t, t)}[{p}]": {"high_watermark": st.high_watermark,
                                                       "end_offset": st.end_offset,
                                                       "log_start_offset": st.start_offset,
                                                       "leader_epoch": replica.latest_epoch(txn, dbs, t, p)}
                           for t, p, st in replica.all_partitions(txn, dbs)},
        })

    return _read(store, fn)
