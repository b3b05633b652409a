"""The consumer: fetch positions, decoded-batch buffers, and ``poll``.

A consumer reads whole batches in one short read transaction, keeps them decoded, and
hands out ``Message`` tuples built in C (``tuple.__new__`` over ``zip``) a slice at a
time.  Blocking in ``poll`` waits on the log's notifier, so it wakes when another
thread or process commits records, not at the timeout.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import math
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import repeat
from typing import TYPE_CHECKING, Any, Literal, overload

import lmdb

from . import _native as native
from .codec.batch import ATTR_LOG_APPEND_TIME as _LOG_APPEND_TIME
from .codec.batch import DecodedBatch
from .config import check_callable, check_int
from .errors import (
    ClosedError,
    ConfigError,
    CorruptRecordError,
    DeserializationError,
    EmbedlogError,
    GroupError,
    InvalidOffsetError,
    NotAssignedError,
    OffsetOutOfRangeError,
    UnknownPartitionError,
)
from .groups.coordinator import partition_list, validate_group
from .groups.member import Membership, RebalanceCallback, check_group_options
from .groups.offsets import OffsetAndMetadata
from .metrics.registry import consumer_counters
from .model import NO_HEADERS, Message, OffsetAndTimestamp, TopicPartition, topic_partition
from .storage import partition as plog
from .storage import replica, schema, topics
from .storage.env import current_pid
from .storage.schema import PartitionState

if TYPE_CHECKING:
    from .log import Log

__all__ = ["Consumer", "GroupMetadata"]

_new_message = partial(tuple.__new__, Message)
#: ``_speedups.messages``: the Messages of a run of a batch's records in one C call (one
#: allocation a record; the ``map``/``zip`` below makes three), or None without the extension
_messages: Callable[..., None] | None = None if native.speedups is None else native.speedups.messages
_RESETS = ("earliest", "latest", "none")
_RELEASE_EVERY = 32 << 20
#: how often a consumer holding fetched records looks whether their topics were deleted
#: by another process (this process's deletes tell it at once) (s)
_DELETES_LOOK_S = 1.0
#: how often a standalone subscription looks for partitions its topics gained (s)
_TOPICS_LOOK_S = 1.0
#: the longest an auto-commit leaves an unchanged committed offset without renewing it
_RECOMMIT_S = 60.0
#: poll_async's longest single wait for new records (it holds no thread, and a commit or a
#: close wakes it at once: the step only bounds how late a removed ``wake/`` registration
#: is made again); 0.1 s steps kept a core busy with a thousand idle consumers
_ASYNC_WAIT_STEP_S = 1.0


class GroupMetadata(tuple[str, "str | None"]):
    """``(group, member_id)``, as ``Consumer.group_metadata()`` returns it; it also
    remembers how many times the group had given each partition to the member then, and
    which it owned, so that a transaction committing offsets with it is fenced as through
    the consumer itself (``Transaction.commit_offsets``): a partition must be owned now
    as then, or — not owned then — have been given to it once since (its records can
    only have been read since); one that went to another member and came back is
    refused, as Kafka refuses metadata of an older generation."""

    _consumer: Consumer | None
    _claims: dict[TopicPartition, int]
    _owned: frozenset[TopicPartition]

    def __new__(cls, group: str, member_id: str | None, consumer: Consumer | None = None,
                claims: dict[TopicPartition, int] | None = None,
                owned: frozenset[TopicPartition] = frozenset()) -> GroupMetadata:
        self = super().__new__(cls, (group, member_id))
        self._consumer = consumer
        self._claims = claims or {}
        self._owned = owned
        return self

    @property
    def group(self) -> str:
        return self[0]

    @property
    def member_id(self) -> str | None:
        return self[1]

    def __copy__(self) -> GroupMetadata:
        return self  # (a value: a copy fences as the original)

    def __deepcopy__(self, memo: dict[int, Any]) -> GroupMetadata:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (to another process, say): the (group, member_id) pair, which fences by
        # membership only — the consumer and its partitions stay in this process
        return (GroupMetadata, (self[0], self[1]))

    def _ownership(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """For each of ``tps``, how many times the group may have given it to the member
        now for its offset to be committed with this: as then if it owned it then, else
        once more (compared with ``Consumer._ownership`` at the commit)."""
        claims, owned = self._claims, self._owned
        return {tp: claims[tp] if tp in owned else claims.get(tp, 0) + 1 for tp in tps}


class _AsyncMessages:
    """``async for msg in consumer``: an iterator object, not an async generator, so that
    a ``__anext__`` cancelled or timed out (``asyncio.wait_for(anext(it), t)``) leaves it
    going on (a generator that the cancellation went through is finished)."""

    __slots__ = ("_consumer",)

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def __aiter__(self) -> _AsyncMessages:
        return self

    async def __anext__(self) -> Message:
        consumer = self._consumer
        stash = consumer._stash  # (emptied in place, never replaced)
        while not consumer._closed:
            if stash:
                if consumer._deleted_here:  # (as the sync iterator: nothing of a deleted topic)
                    consumer._drop_deleted()
                    continue
                try:
                    return stash.popleft()
                except IndexError:  # (close() in another thread emptied it between the look and the pop)
                    continue
            try:
                batch = await consumer.poll_async(1.0)
            except ClosedError:
                raise StopAsyncIteration from None
            stash.extend(batch)  # (no await since the poll: a cancellation cannot come between)
        raise StopAsyncIteration


class _Buffer:
    """Decoded batches of one partition and the index of the next record to hand out."""

    __slots__ = ("batches", "i")

    def __init__(self, batches: list[DecodedBatch], i: int) -> None:
        self.batches = batches
        self.i = i


def _bad_poll_args(timeout: object, max_records: object) -> None:
    """Raise ``ConfigError`` for what ``poll`` cannot take (its fast check failed)."""
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise ConfigError(f"poll timeout must be a number of seconds, got {timeout!r}")
    if math.isnan(timeout):
        raise ConfigError("poll timeout is nan; give a number of seconds (None or a negative number waits until "
                          "records come)")
    if max_records is not None and (not isinstance(max_records, int) or isinstance(max_records, bool)
                                    or max_records < 1):
        raise ConfigError(f"max_records must be a positive int, got {max_records!r}")


class _GcPause:
    """Automatic collection paused while any consumer of this process makes messages.

    ``poll`` makes one ``Message`` tuple per record, and callers usually drop them all
    before the next poll; they cannot form cycles.  Counted as allocations, though,
    they start collections that trace every live one: at 10,000 records a poll
    (measured: 167 ms of GC per million records, a fifth of ``poll``'s time, when the
    pause ended before the metrics call, whose allocations started the collection at
    once), and with consumers on several threads at any poll size, because one
    thread's new messages push the shared allocation count past the threshold while
    another's are still alive (measured at 500 a poll on four threads: 40 collections
    per million records instead of 2).  The pause also covers fetching and decoding
    batches, which make per-record objects too (each record's header list: 76
    collections in ten 2,000-record polls of records with headers when it did not,
    consumption 1.3-1.4x faster since).  Paused until ``poll`` returns them, collection
    waits for the next allocation outside a pause, by when the previous poll's
    messages are usually gone: what survives is traced as before and cycles made
    anywhere are still found.  A depth count shared by every thread keeps one poll's end from turning
    collection back on under another's poll; a child forked meanwhile starts over.  An
    application's ``gc.disable()`` is kept, unless another thread of it calls it while
    a poll holds the pause.
    """

    lock = threading.Lock()
    depth = 0
    resume = False

    @classmethod
    def enter(cls) -> None:
        with cls.lock:
            if not cls.depth:
                cls.resume = gc.isenabled()
                gc.disable()
            cls.depth += 1

    @classmethod
    def leave(cls) -> None:
        with cls.lock:
            depth = cls.depth - 1 if cls.depth else 0  # (0 already: forked inside a pause, which the fork ended)
            cls.depth = depth
            if not depth and cls.resume:
                gc.enable()

    @classmethod
    def after_fork(cls) -> None:
        """In a forked child: no thread of the parent's is making messages here."""
        cls.lock = threading.Lock()
        if cls.depth and cls.resume:
            gc.enable()
        cls.depth = 0


#: every consumer of this process (``_drop_at_fork``)
_CONSUMERS: weakref.WeakSet[Consumer] = weakref.WeakSet()


def _drop_at_fork() -> None:
    """(In a forked child) A group member's records an iterator fetched and has not
    yielded are its parent's: the child's next look raises ``ForkError`` instead."""
    for consumer in list(_CONSUMERS):
        if consumer._membership is not None:
            consumer._stash.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_GcPause.after_fork)
    os.register_at_fork(after_in_child=_drop_at_fork)


def _topic_names(names: object) -> list[str]:
    """One topic name or a collection of them, as a list of valid names (``ConfigError``,
    ``InvalidTopicError``)."""
    if isinstance(names, str):
        names = [names]
    elif isinstance(names, (bytes, bytearray)) or not isinstance(names, Iterable):
        raise ConfigError(f"topics must be a topic name or a list of topic names, got {names!r}")
    out = list(names)
    for name in out:
        topics.validate_name(name)
    return out


def _spread(partitions: tuple[Any, ...]) -> tuple[Any, ...]:
    """Partitions given as ``f(tp1, tp2)`` or as one iterable, ``f([tp1, tp2])`` (as
    confluent-kafka's ``pause([...])`` takes them); a lone ``(topic, partition)`` pair
    stays one partition."""
    if len(partitions) == 1:
        only = partitions[0]
        if isinstance(only, tuple):
            if only.__class__ is tuple and only and all(isinstance(x, tuple) for x in only):
                return only
        elif not isinstance(only, (str, bytes)) and isinstance(only, Iterable):  # a list, set, dict view...
            return tuple(only)
    return partitions


class Consumer:
    """Reads records from assigned partitions. Not thread-safe (like Kafka's); a context manager.

    Without a group, a consumer given topics is assigned all their partitions.  Its
    position in each partition starts where ``auto_offset_reset`` says
    (``"earliest"``, ``"latest"`` — Kafka's default — or ``"none"`` to raise
    ``OffsetOutOfRangeError``), and moves past every record ``poll`` returns.

    Options (Kafka's names, Python's spelling):

    - ``group``: a consumer group to share the topics' partitions with (then the
      position starts at the group's committed offset, if any);
    - ``auto_offset_reset``: as above; ``max_poll_records``: the most one ``poll``
      returns (500); ``fetch_max_bytes``: the most bytes of batches read ahead per
      partition (4 MiB);
    - ``enable_auto_commit`` (True) and ``auto_commit_interval_ms`` (5000): commit
      what was consumed at a ``poll`` once the interval passed, and at ``close()``
      (partitions whose position did not move since their last commit are skipped);
    - ``on_assign``, ``on_revoke``, ``on_lost``: rebalance callbacks, taking
      ``(partitions)`` or ``(consumer, partitions)``; ``session_timeout_ms`` (10000),
      ``heartbeat_interval_ms`` (3000), ``max_poll_interval_ms`` (300000),
      ``partition_assignment_strategy`` (``"cooperative-sticky"``, ``"range"``,
      ``"roundrobin"``, ``"sticky"``: eager, as Kafka's), ``client_id``: group
      membership, as in Kafka;
    - ``key_deserializer``, ``value_deserializer``: callables applied to each
      record's key and value (``None`` stays ``None``).
    """

    def __init__(self, log: Log, topics: Iterable[str] | str | None = None, *,
                 group: str | None = None, auto_offset_reset: str = "latest", max_poll_records: int = 500,
                 enable_auto_commit: bool = True, auto_commit_interval_ms: int = 5000,
                 on_assign: RebalanceCallback | None = None, on_revoke: RebalanceCallback | None = None,
                 on_lost: RebalanceCallback | None = None, session_timeout_ms: int = 10_000,
                 heartbeat_interval_ms: int = 3000, max_poll_interval_ms: int = 300_000,
                 partition_assignment_strategy: str = "cooperative-sticky", client_id: str = "",
                 key_deserializer: Callable[[bytes], Any] | None = None,
                 value_deserializer: Callable[[bytes], Any] | None = None,
                 fetch_max_bytes: int = 4 << 20) -> None:
        if auto_offset_reset not in _RESETS:
            raise ConfigError(f"auto_offset_reset must be one of {', '.join(_RESETS)}, got {auto_offset_reset!r}")
        check_int("max_poll_records", max_poll_records)
        if not isinstance(enable_auto_commit, bool):
            raise ConfigError(f"enable_auto_commit must be True or False, got {enable_auto_commit!r}")
        check_int("auto_commit_interval_ms", auto_commit_interval_ms, 0)
        check_int("fetch_max_bytes", fetch_max_bytes)
        check_callable("key_deserializer", key_deserializer)
        check_callable("value_deserializer", value_deserializer)
        # (checked with or without a group: a misspelt option should not wait for group= to fail)
        check_group_options(protocol=partition_assignment_strategy, session_timeout_ms=session_timeout_ms,
                            heartbeat_interval_ms=heartbeat_interval_ms, max_poll_interval_ms=max_poll_interval_ms,
                            client_id=client_id, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        names = None if topics is None else _topic_names(topics)
        self._log = log
        self._store = log._store
        self.auto_offset_reset = auto_offset_reset
        self.max_poll_records = max_poll_records
        self._key_de = key_deserializer
        self._value_de = value_deserializer
        self._fetch_max_bytes = fetch_max_bytes
        self._assignment: list[TopicPartition] = []
        self._ids: dict[TopicPartition, tuple[int, bool]] = {}  # tp -> (topic_id, log_append_time)
        self._positions: dict[TopicPartition, int] = {}
        self._buffers: dict[TopicPartition, _Buffer] = {}
        #: partitions a poll found nothing to read in: tp -> (state key, stored state, position
        #: then); while both are unchanged there is still nothing, and the poll skips it
        self._idle: dict[TopicPartition, tuple[bytes, bytes, int]] = {}
        self._paused: set[TopicPartition] = set()
        self._rr = 0
        #: records an iterator (``for``/``async for``) took from the log and has not
        #: yielded yet, in order: not handed to the application, so ``position``,
        #: ``commit`` and the next ``poll`` start at them (``_unstash``, ``_consumed``)
        self._stash: collections.deque[Message] = collections.deque()
        _CONSUMERS.add(self)
        self._read_bytes = 0
        self._closed = False
        self._closing = False  # close() under way (its on_revoke may call close() again)
        #: a standalone subscription follows its topics' new partitions (not one after assign())
        self._following = False
        #: set by a client shim around the polls its background task makes to follow the
        #: group: they do not count as the application polling (``Membership.reconcile``)
        self._in_background = False
        self._topics_seen = -1  # the topics version the followed subscription was last compared at
        self._next_topics_look = 0.0
        #: what is buffered or stashed was checked against deleted topics at this topics
        #: version, and is next checked then (or once ``_deleted_here``): ``_drop_deleted``
        self._deletes_seen = -1
        self._next_deletes_look = 0.0
        self._deleted_here = False
        log._store.watch_topics(self._topic_changed)
        self._subscription: list[str] = []
        self.group = None if group is None else validate_group(group)
        self._counters = consumer_counters(log.path, self.group)
        self.enable_auto_commit = enable_auto_commit and group is not None
        self._auto_commit_interval = auto_commit_interval_ms / 1000
        self._last_auto_commit = time.monotonic()
        self._coord = log._coordinator
        self._membership: Membership | None = None
        self._pid = current_pid()  # (a forked child does not commit on close what it inherited)
        if group is not None:
            self._membership = Membership(
                self, self._coord, group, protocol=partition_assignment_strategy,
                session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms,
                max_poll_interval_ms=max_poll_interval_ms, client_id=client_id,
                on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        log._register(self)
        if names is not None:
            try:
                self.subscribe(names)
            except BaseException:
                self.close()  # (nobody else can)
                raise

    # -- assignment ---------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str]) -> None:
        """Subscribe to ``topics``: with a group, share their partitions with the group's
        other members; without one, consume all their partitions."""
        self._check()
        names = _topic_names(topics)
        if not names and self._membership is not None:  # (Kafka: subscribe([]) is unsubscribe())
            self.unsubscribe()
            return
        if self._membership is not None:
            self._membership.check_process()
        if self._membership is not None and self._assignment and not self._subscription:
            # (Kafka: IllegalStateException; joining would keep partitions the group gives others)
            raise ConfigError("this consumer has a manual assignment; assign() and subscribe() cannot be mixed "
                              "with a group (unassign() or unsubscribe() first)")
        version = self._store.topics_version()  # (before the partition counts: a change after is seen)
        metas = [self._log._topic_for_consume(name) for name in names]  # (auto-creates)
        self._subscription = names
        if self._membership is not None:
            self._membership.join(names)
            return
        self.assign([TopicPartition(m.name, p) for m in metas for p in range(m.partitions)])
        self._following = True
        self._topics_seen = version
        self._next_topics_look = time.monotonic() + _TOPICS_LOOK_S

    def _follow_topics(self) -> None:
        """A standalone subscription follows its topics' partitions (as a Kafka consumer's
        subscription does at its next metadata refresh): it takes the partitions they
        gained, each from its start (all of a partition created since is newer than the
        subscription), and lets go of those that are gone (the topic deleted, or created
        again with fewer)."""
        self._next_topics_look = time.monotonic() + _TOPICS_LOOK_S
        version = self._store.topics_version()
        if version == self._topics_seen:
            return
        self._topics_seen = version
        counts = {name: (meta.partitions if meta is not None else 0)
                  for name, meta in ((name, self._store.topic(name)) for name in self._subscription)}
        gone = [tp for tp in self._assignment if tp.topic in counts and tp.partition >= counts[tp.topic]]
        if gone:
            self._drop_partitions(gone)
        have = set(self._assignment)
        for name in self._subscription:
            meta = self._store.topic(name)
            if meta is None:
                continue
            new = [TopicPartition(name, p) for p in range(meta.partitions) if TopicPartition(name, p) not in have]
            if not new:
                continue
            starts = self.beginning_offsets(new)
            for tp in new:
                self._assignment.append(tp)
                self._ids[tp] = (meta.topic_id, meta.config.log_append_time)
                self._positions[tp] = starts[tp]

    # -- group membership hooks (called by groups.member.Membership) ---------------------------
    def _add_partitions(self, tps: list[TopicPartition]) -> None:
        # (sets and a topic cache: a member given thousands of partitions at once took
        # quadratic time in list lookups, seconds at 20,000)
        have = set(self._assignment)
        metas: dict[str, Any] = {}
        for tp in tps:
            meta = metas.get(tp.topic)
            if meta is None:
                meta = metas[tp.topic] = self._log._topic_for_consume(tp.topic)
            self._ids[tp] = (meta.topic_id, meta.config.log_append_time)
            if tp not in have:
                have.add(tp)
                self._assignment.append(tp)
            self._positions.pop(tp, None)  # start from the committed offset

    def _drop_partitions(self, tps: list[TopicPartition]) -> None:
        self._unstash(tps, rewind=False)
        gone = set(tps)
        if gone:
            self._assignment = [tp for tp in self._assignment if tp not in gone]
        for tp in tps:
            self._ids.pop(tp, None)
            self._positions.pop(tp, None)
            self._buffers.pop(tp, None)
            self._idle.pop(tp, None)
            self._paused.discard(tp)

    def _before_release(self, tps: list[TopicPartition]) -> None:
        if self.enable_auto_commit:
            offsets = self._to_commit(tps)
            if offsets:
                # fenced: another member owns it already and resumes from the last commit
                with contextlib.suppress(EmbedlogError):
                    self._commit_offsets(offsets)

    def subscription(self) -> list[str]:
        """The subscribed topic names."""
        self._check()
        return list(self._subscription)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Consume exactly these partitions; positions of kept partitions are kept.

        With a group, manual assignment replaces subscription (as in Kafka, the two do
        not mix); commits are then not fenced.
        """
        self._check()
        if self._membership is not None and self._subscription:
            raise ConfigError("this consumer subscribed with a group; assign() and subscribe() cannot be mixed "
                              "(unsubscribe() first)")
        tps = partition_list(partitions, "assign()")
        self._following = False  # (subscribe() sets it again after its own assign)
        ids: dict[TopicPartition, tuple[int, bool]] = {}
        for tp in tps:
            meta = self._meta(tp)
            ids[tp] = (meta.topic_id, meta.config.log_append_time)
        keep = set(tps)
        self._unstash([tp for tp in self._assignment if tp not in keep], rewind=False)
        self._assignment = list(dict.fromkeys(tps))
        self._ids = ids
        for d in (self._positions, self._buffers, self._idle):
            for tp in [t for t in d if t not in keep]:
                del d[tp]
        self._paused &= keep

    def unassign(self) -> None:
        """Drop every partition."""
        self.assign([])

    def assignment(self) -> set[TopicPartition]:
        """The assigned partitions."""
        self._check()
        return set(self._assignment)

    def _require(self, tp: TopicPartition) -> TopicPartition:
        tp = topic_partition(tp)
        if tp not in self._ids:
            raise NotAssignedError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer; "
                                   "assign() it or subscribe to its topic first")
        return tp

    # -- positions ----------------------------------------------------------------------
    def _reset_position(self, tp: TopicPartition, st: PartitionState, pos: int | None) -> int:
        if self.auto_offset_reset == "earliest":
            return st.start_offset
        if self.auto_offset_reset == "latest":
            return self._visible_end(st)  # (Kafka's LATEST: the high watermark, not the log end)
        if pos is None:
            raise OffsetOutOfRangeError(f"{tp.topic}[{tp.partition}] has no position and "
                                        "auto_offset_reset='none'; seek() to an offset first")
        raise OffsetOutOfRangeError(f"position {pos} of {tp.topic}[{tp.partition}] is outside "
                                    f"{st.start_offset}..{st.end_offset} and auto_offset_reset='none'")

    def _initial_position(self, txn: lmdb.Transaction, tp: TopicPartition, st: PartitionState) -> int | None:
        """Where a partition with no position starts: the group's committed offset."""
        if self.group is None:
            return None
        return self._coord.committed_in(txn, self.group, tp)

    def _resolve(self, txn: lmdb.Transaction, tp: TopicPartition) -> tuple[int, PartitionState] | None:
        tid = self._ids[tp][0]
        st = plog.load_state(txn, self._store.dbs, tid, tp.partition)
        if st is None:
            st = self._recreated(txn, tp, tid)
            if st is None:
                return None
        pos = self._positions.get(tp)
        if pos is None:
            pos = self._initial_position(txn, tp, st)
        if pos is None or pos < st.start_offset or (pos > st.end_offset and not self._catching_up(txn, tp, pos)):
            pos = self._reset_position(tp, st, pos)
            self._buffers.pop(tp, None)
        self._positions[tp] = pos
        return pos, st

    def _catching_up(self, txn: lmdb.Transaction, tp: TopicPartition, pos: int) -> bool:
        """Whether this log is a replica that lacked records of ``tp`` when it last heard
        from its leader, whose end was at ``pos`` or past it: a position past the end
        then waits for the records instead of being out of range (committed offsets
        arrive with the response being applied, the records they point past may come in
        the next ones).  Past what the leader held, or on a partition caught up, it
        answers as its leader would: ``auto_offset_reset``."""
        dbs = self._store.dbs
        if replica.get_role(txn, dbs) != "replica":
            return False
        behind = (replica.get_follower_state(txn, dbs) or {}).get("behind") or {}
        end = behind.get(f"{self._ids[tp][0]}:{tp.partition}")
        return end is not None and pos <= int(end)

    def _recreated(self, txn: lmdb.Transaction, tp: TopicPartition, tid: int) -> PartitionState | None:
        """The partition's state if its topic was deleted and created again (a new topic
        id): the consumer moves to the new topic, from its committed offset or
        ``auto_offset_reset`` (the old position means nothing there) — a standalone
        subscription from its start.  ``None`` if not."""
        meta = topics.get(txn, self._store.dbs, tp.topic)
        if meta is None or meta.topic_id == tid or tp.partition >= meta.partitions:
            return None
        st = plog.load_state(txn, self._store.dbs, meta.topic_id, tp.partition)
        if st is not None:
            self._unstash([tp], rewind=False)
            self._ids[tp] = (meta.topic_id, meta.config.log_append_time)
            self._positions.pop(tp, None)
            self._buffers.pop(tp, None)
            if self._following:  # (a standalone subscription: all of it is newer than the subscription,
                self._positions[tp] = st.start_offset  # as of a partition it gained: _follow_topics)
        return st

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record ``poll`` returns for ``tp``.  After ``seek`` it is
        the offset given, even outside the partition (as in Kafka, the next ``poll``
        finds it out of range and applies ``auto_offset_reset`` — past the end of a
        replica still behind its leader, it waits for the records instead); a partition
        with no position yet gets its committed offset or ``auto_offset_reset``'s."""
        self._check()
        tp = self._require(tp)
        for msg in tuple(self._stash):  # (an iterator has not yielded it yet)
            if msg.partition == tp.partition and msg.topic == tp.topic:
                return msg.offset
        pos = self._positions.get(tp)
        if pos is not None:
            return pos
        with self._store.env.read() as txn:
            r = self._resolve(txn, tp)
        return self._positions.get(tp, 0) if r is None else r[0]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next offset to read from ``tp``."""
        self._check()
        tp = self._require(tp)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise InvalidOffsetError(f"offset must be a non-negative int, got {offset!r}")
        self._unstash([tp], rewind=False)
        self._positions[tp] = offset
        self._buffers.pop(tp, None)

    def _targets(self, partitions: tuple[Any, ...]) -> list[TopicPartition]:
        partitions = _spread(partitions)
        return [self._require(tp) for tp in partitions] if partitions else list(self._assignment)

    def seek_to_beginning(self, *partitions: TopicPartition | Iterable[TopicPartition]) -> None:
        """Move to the start offset of the given (default: all assigned) partitions
        (given one by one, as kafka-python takes them, or as one list)."""
        self._check()
        for tp, off in self.beginning_offsets(self._targets(partitions)).items():
            self.seek(tp, off)

    def seek_to_end(self, *partitions: TopicPartition | Iterable[TopicPartition]) -> None:
        """Move to the end offset of the given (default: all assigned) partitions
        (one by one, or as one list)."""
        self._check()
        for tp, off in self.end_offsets(self._targets(partitions)).items():
            self.seek(tp, off)

    def _meta(self, tp: TopicPartition) -> Any:
        meta = self._log._topic_for_consume(tp.topic)
        if not isinstance(tp.partition, int) or not 0 <= tp.partition < meta.partitions:
            raise UnknownPartitionError(f"topic {tp.topic!r} has partitions 0..{meta.partitions - 1}; "
                                        f"partition {tp.partition!r} does not exist")
        return meta

    def _states(self, partitions: Iterable[TopicPartition], what: str) -> dict[TopicPartition, PartitionState]:
        out = {}
        metas = {tp: self._meta(tp) for tp in partition_list(partitions, what)}
        with self._store.env.read() as txn:
            for tp, meta in metas.items():
                st = plog.load_state(txn, self._store.dbs, meta.topic_id, tp.partition)
                if st is None:
                    raise UnknownPartitionError(f"topic {tp.topic!r} has no partition {tp.partition}")
                out[tp] = st
        return out

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The first offset still stored in each partition."""
        self._check()
        return {tp: st.start_offset for tp, st in self._states(partitions, "beginning_offsets()").items()}

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset after the last record a consumer can read in each partition: its
        high watermark, as Kafka's ``end_offsets`` (the log end offset, the offset the
        next record written will get, unless a replicating leader has records its
        in-sync followers do not hold yet)."""
        self._check()
        visible = self._visible_end
        return {tp: visible(st) for tp, st in self._states(partitions, "end_offsets()").items()}

    def offsets_for_times(
            self, timestamps: Mapping[TopicPartition, int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition, the earliest offset whose timestamp >= the one given, or ``None``."""
        self._check()
        if not isinstance(timestamps, Mapping):
            raise ConfigError(f"offsets_for_times() takes a mapping of TopicPartition to timestamp (ms), "
                              f"got {timestamps!r}")
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        metas = {tp: (self._meta(tp), ts) for tp, ts in ((topic_partition(k), v) for k, v in timestamps.items())}
        for tp, (_, ts) in metas.items():
            if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
                raise InvalidOffsetError(f"timestamp for {tp.topic}[{tp.partition}] must be an int >= 0 "
                                         f"(ms since the epoch), got {ts!r}")
        with self._store.env.read() as txn:
            for tp, (meta, ts) in metas.items():
                hit = plog.offset_for_time(txn, self._store.dbs, tp.topic, meta.topic_id, tp.partition, ts)
                out[tp] = None if hit is None else OffsetAndTimestamp(*hit)
        return out

    def pause(self, *partitions: TopicPartition | Iterable[TopicPartition]) -> None:
        """Stop returning records from these partitions until ``resume`` (one by one, or
        as one list)."""
        self._check()
        tps = [self._require(tp) for tp in _spread(partitions)]
        self._unstash(tps)  # (returned once resumed, from the position before them)
        self._paused.update(tps)

    def resume(self, *partitions: TopicPartition | Iterable[TopicPartition]) -> None:
        """Return records from these partitions again (one by one, or as one list)."""
        self._check()
        self._paused.difference_update([self._require(tp) for tp in _spread(partitions)])

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        self._check()
        return set(self._paused)

    # -- fetching -----------------------------------------------------------------------
    def _fill(self, txn: lmdb.Transaction, tp: TopicPartition, want: int) -> None:
        r = self._resolve(txn, tp)
        if r is None:
            return
        pos, st = r
        limit = self._visible_end(st)
        if pos >= limit:
            key = schema.partition_key(self._ids[tp][0], tp.partition)
            raw = txn.get(key, db=self._store.dbs["partitions"])
            if raw is not None:
                self._idle[tp] = (key, bytes(raw), pos)
            return
        batches = plog.fetch(txn, self._store.dbs, tp.topic, self._ids[tp][0], tp.partition, pos,
                             max_bytes=self._fetch_max_bytes, max_records=want, end_offset=limit)
        if not batches:  # below the end, yet nothing stored from here on (the last batch is never removed)
            raise CorruptRecordError(
                f"{tp.topic}[{tp.partition}] ends at offset {st.end_offset} but no batch is stored at or after "
                f"offset {pos}: the log directory is damaged; run `embedlog verify` and restore the partition "
                "from a replica or backup", topic=tp.topic, partition=tp.partition, offset=pos)
        if batches:
            self._buffers[tp] = _Buffer(batches, plog.first_index(batches[0], pos))
            for b in batches:
                self._read_bytes += b.info.size
            if self._read_bytes >= _RELEASE_EVERY:  # keep RSS flat while scanning a big log
                self._read_bytes = 0
                self._store.env.release_pages()

    def _visible_end(self, st: PartitionState) -> int:
        return st.high_watermark

    def _take(self, tp: TopicPartition, buf: _Buffer, limit: int, out: list[Message]) -> bool:
        """Move up to ``limit - len(out)`` records of ``buf`` into ``out`` as Messages and
        advance the position past them; return False if a deserializer failed (the records
        before that one are taken; if there were none in ``out``, ``DeserializationError``)."""
        topic, part = tp
        key_de = self._key_de
        value_de = self._value_de
        batches = buf.batches
        nb = len(batches)
        k = 0  # batches taken whole
        i = buf.i
        position = -1
        ok = True
        while k < nb and len(out) < limit:
            b = batches[k]
            # (the batch's own flag: a record keeps the type it was written with when the
            # topic's message.timestamp.type changes later, as in Kafka)
            ts_type = "LogAppendTime" if b.info.attributes & _LOG_APPEND_TIME else "CreateTime"
            count = len(b.keys)
            j = min(count, i + limit - len(out))
            n = j - i
            if n == 1 and key_de is None and value_de is None:  # one record (the latency path): no columns
                out.append(_new_message((topic, part, b.offsets[i], b.keys[i], b.values[i],
                                         NO_HEADERS if b.headers is None else b.headers[i],
                                         b.timestamps[i], ts_type, b.info.leader_epoch)))
            elif n > 0 and _messages is not None and key_de is None and value_de is None:
                offsets = b.offsets
                _messages(out, Message, topic, part, offsets.start if offsets.__class__ is range else offsets,
                          b.keys, b.values, b.headers, NO_HEADERS, b.timestamps, ts_type, b.info.leader_epoch, i, j)
            elif n > 0:
                keys = b.keys[i:j]
                values = b.values[i:j]
                try:
                    if key_de is not None:
                        keys = [None if k_ is None else key_de(k_) for k_ in keys]
                    if value_de is not None:
                        values = [None if v is None else value_de(v) for v in values]
                except Exception:  # noqa: BLE001 - the application's code: whatever it raises
                    bad, keys, values, exc = self._deserialize_until_failure(b, i, j)
                    if exc is not None:
                        if bad == i and not out:
                            raise DeserializationError(
                                f"the deserializer raised {type(exc).__name__}: {exc} for the record at "
                                f"{topic}[{part}] offset {b.offsets[bad]}; the position stays there: fix the "
                                "deserializer, or seek past the record to skip it",
                                topic=topic, partition=part, offset=b.offsets[bad]) from exc
                        j = bad  # the records before it now; the next poll raises for it
                        n = j - i
                        ok = False
                hdrs = b.headers[i:j] if b.headers is not None else repeat(NO_HEADERS, n)
                out.extend(map(_new_message, zip(
                    repeat(topic, n), repeat(part, n), b.offsets[i:j], keys, values, hdrs,
                    b.timestamps[i:j], repeat(ts_type, n), repeat(b.info.leader_epoch, n))))
                if not ok:
                    position = b.offsets[j]  # the failing record's
                    i = j
                    break
            if j >= count:
                k += 1
                i = 0
                info = b.info
                position = info.base_offset + info.last_offset_delta + 1
            else:
                i = j
                position = b.offsets[j]
        if k:
            del batches[:k]
        buf.i = i
        if position >= 0:
            self._positions[tp] = position
        return ok

    def _deserialize_until_failure(self, b: DecodedBatch, i: int, j: int,
                                   ) -> tuple[int, list[Any], list[Any], Exception | None]:
        """Deserialize records ``i..j-1`` of ``b`` one at a time: (index of the first that
        fails, or ``j``; the keys and values before it; what it raised, or None)."""
        key_de = self._key_de
        value_de = self._value_de
        keys: list[Any] = []
        values: list[Any] = []
        for r in range(i, j):
            try:
                key = b.keys[r]
                value = b.values[r]
                if key_de is not None and key is not None:
                    key = key_de(key)
                if value_de is not None and value is not None:
                    value = value_de(value)
            except Exception as exc:  # noqa: BLE001 - the application's code
                return r, keys, values, exc
            keys.append(key)
            values.append(value)
        return j, keys, values, None

    def _topic_changed(self, name: str) -> None:
        """``Store.watch_topics``: this process changed or deleted a topic (any thread)."""
        self._deleted_here = True

    def _drop_deleted(self) -> None:
        """Forget what is buffered or stashed of topics deleted since it was fetched: never
        handed out (a topic created again under the name is another topic, which
        ``_resolve`` moves to, from the committed offset or ``auto_offset_reset``)."""
        self._deleted_here = False
        self._next_deletes_look = time.monotonic() + _DELETES_LOOK_S
        store = self._store
        gone = []
        with store.env.read() as txn:
            version = topics.version(txn, store.dbs)
            if version == self._deletes_seen:
                return
            self._deletes_seen = version
            held = set(self._buffers).union(TopicPartition(m.topic, m.partition) for m in tuple(self._stash))
            for tp in held:
                ids = self._ids.get(tp)
                meta = topics.get(txn, store.dbs, tp.topic)
                if ids is None or meta is None or meta.topic_id != ids[0]:
                    gone.append(tp)
        txn = None  # type: ignore[assignment]  # (see _collect)
        if gone:
            self._unstash(gone, rewind=False)
            for tp in gone:
                self._buffers.pop(tp, None)

    def _collect(self, limit: int) -> list[Message]:
        stash = self._stash
        if (stash or self._buffers) and (self._deleted_here or time.monotonic() >= self._next_deletes_look):
            self._drop_deleted()
        if stash:  # what an iterator took and did not yield comes first
            taken: list[Message] = []
            for _ in range(min(limit, len(stash))):
                try:
                    taken.append(stash.popleft())
                except IndexError:  # (emptied by close() in another thread)
                    break
            return taken
        active = self._assignment
        if self._paused:
            active = [tp for tp in active if tp not in self._paused]
        if len(active) > 1:
            k = self._rr % len(active)
            if k:
                active = active[k:] + active[:k]
            self._rr += 1
        elif not active:
            return []
        missing: Sequence[TopicPartition]
        if len(active) == 1:  # (the common case of a group member or of the latency path: no list made)
            missing = () if active[0] in self._buffers else active
        else:
            missing = [tp for tp in active if tp not in self._buffers]
        out: list[Message] = []
        _GcPause.enter()  # (why: see _GcPause; decoding batches makes per-record objects too)
        try:
            if missing:
                with self._store.env.read() as txn:
                    idle = self._idle
                    if idle:
                        # A partition seen empty is looked at again only if its stored state
                        # (end offset, high watermark, start offset) or our position moved:
                        # one get, not a state decoded, when a poll wakes for records elsewhere.
                        get = txn.get
                        states = self._store.dbs["partitions"]
                        positions = self._positions
                        for tp in missing:
                            seen = idle.get(tp)
                            if seen is None or positions.get(tp) != seen[2] or get(seen[0], db=states) != seen[1]:
                                self._fill(txn, tp, limit)
                    else:
                        for tp in missing:
                            self._fill(txn, tp, limit)
                txn = get = None  # type: ignore[assignment]  # (nothing of the transaction outlives it: see env._before_fork)
            if not self._buffers:
                return out
            for tp in active:
                buf = self._buffers.get(tp)
                if buf is None:
                    continue
                ok = self._take(tp, buf, limit, out)
                if not buf.batches:
                    del self._buffers[tp]
                if len(out) >= limit or not ok:
                    break
            if out:  # (inside the pause: any allocation after it would start the collection)
                self._counters.consumed(len(out))
        finally:
            _GcPause.leave()
        return out

    def poll(self, timeout: float | None = 0.0, max_records: int | None = None) -> list[Message]:
        """Return up to ``max_records`` (default ``max_poll_records``) new records.

        Waits up to ``timeout`` seconds when none are available, waking as soon as a
        producer in any thread or process writes; returns ``[]`` on timeout.
        ``timeout=None`` (or negative, as confluent-kafka's -1) waits until records come;
        ``close()`` from another thread ends the wait with ``ClosedError``.
        """
        self._check()
        if timeout is None or (timeout.__class__ in (int, float) and timeout < 0):
            timeout = math.inf
        if ((timeout.__class__ is not float and timeout.__class__ is not int)
                or timeout != timeout  # noqa: PLR0124 - nan, without a call
                or (max_records is not None and (max_records.__class__ is not int or max_records < 1))):
            _bad_poll_args(timeout, max_records)
        limit = max_records or self.max_poll_records
        if self.enable_auto_commit:
            self._before_poll()
        membership = self._membership
        if membership is None or self._in_background:
            return self._poll(timeout, limit)
        membership.polling += 1  # (waiting in poll is polling: see Membership.leave_if_not_polling)
        try:
            return self._poll(timeout, limit)
        finally:
            membership.polling -= 1
            membership.touch()  # (max_poll_interval_ms counts from the return)

    def _poll(self, timeout: float, limit: int) -> list[Message]:
        notifier = self._store.notifier
        deadline = time.monotonic() + timeout
        polled = not self._in_background
        while True:
            seen = notifier.generation
            kicked = False
            if self._membership is not None:
                self._membership.reconcile(polled=polled)
                if not polled and self._membership.left_idle:
                    return []  # (a shim's background step: nothing fetched until the application polls)
                # (removed while a callback ran, say: nothing of what it owned is served, as
                # another member may own it now; the next look rejoins)
                kicked = self._membership.kicked
            elif self._following and time.monotonic() >= self._next_topics_look:
                self._follow_topics()
            out = [] if kicked else self._collect(limit)
            if out or timeout <= 0:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out
            notifier.wait(seen, self._wait_bound(remaining))
            self._check()

    def _wait_bound(self, remaining: float) -> float:
        """How long a poll may wait for records at most, of ``remaining`` seconds: until
        its group membership or its subscription's topics need a look again."""
        if self._membership is not None:
            return min(remaining, self._membership.recheck_in())
        if self._following:  # (a partition added wakes the wait, but may come within the second)
            return min(remaining, max(0.005, self._next_topics_look - time.monotonic()))
        return remaining

    async def poll_async(self, timeout: float | None = 0.0, max_records: int | None = None) -> list[Message]:
        """``poll`` for asyncio: waits for records without blocking the event loop.

        The records are read in the calling (event loop) thread, as ``poll(timeout=0)``
        reads them; the wait for new ones holds no thread (a commit wakes the task
        through the event loop); cancelling the awaiting task loses no record.  Use one
        consumer from one task at a time, as ``poll`` from one thread at a time."""
        self._check()
        if timeout is None or (timeout.__class__ in (int, float) and timeout < 0):
            timeout = math.inf
        if (timeout.__class__ is not float and timeout.__class__ is not int) or timeout != timeout:  # noqa: PLR0124
            _bad_poll_args(timeout, max_records)
        notifier = self._store.notifier
        deadline = time.monotonic() + timeout
        membership = self._membership
        if membership is not None:
            membership.polling += 1  # (as in poll: a member waiting for records is polling)
        try:
            while True:
                seen = notifier.generation
                out = self.poll(0.0, max_records)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                await notifier.wait_async(seen, self._wait_bound(min(remaining, _ASYNC_WAIT_STEP_S)))
        finally:
            if membership is not None:
                membership.polling -= 1
                membership.touch()

    def __aiter__(self) -> AsyncIterator[Message]:
        """``async for msg in consumer``: yield records for ever (until the consumer or
        log is closed), waiting as ``poll_async`` does; the position follows what was
        yielded, as for ``for msg in consumer``.  ``ClosedError`` if it is closed already."""
        self._check()
        return _AsyncMessages(self)

    def _before_poll(self) -> None:
        if self.enable_auto_commit and time.monotonic() - self._last_auto_commit >= self._auto_commit_interval:
            self._last_auto_commit = time.monotonic()
            offsets = self._to_commit(moved_only=True)
            if offsets:
                with contextlib.suppress(EmbedlogError):  # fenced: the next poll follows the group
                    self._commit_offsets(offsets)

    def _to_commit(self, tps: Iterable[TopicPartition] | None = None, *,
                   moved_only: bool = False) -> dict[TopicPartition, int]:
        """What a commit of the consumed positions writes (``_consumed``; of ``tps`` only,
        if given): less the partitions whose topic was deleted since they were read (a
        position there is no offset of a topic created again under the name); with
        ``moved_only`` (auto-commit), also less those whose committed offset
        is that one already, committed less than ``_RECOMMIT_S`` ago (half the log's
        ``offsets_retention_ms`` if less): an idle member re-committed (a durable write,
        an fsync, every poller woken) the same offsets every interval, as librdkafka
        does not.  Read from the store, so an offset moved meanwhile by anyone, or a
        topic created again, is committed; and a commit by name is renewed before
        retention could expire it."""
        assert self.group is not None
        offsets = self._consumed()
        if tps is not None:
            offsets = {tp: offsets[tp] for tp in tps if tp in offsets}
        if not offsets:
            return {}
        retention = self._log.offsets_retention_ms
        oldest = time.time_ns() // 1_000_000 - int(min(_RECOMMIT_S * 1000, retention / 2 if retention else math.inf))
        store = self._store
        group, unpack, key = self.group, schema.COMMITTED.unpack_from, schema.committed_key
        out = {}
        with store.env.read() as txn:
            db = store.dbs["offsets"]  # (once in the transaction: a forked child's store opens at its first)
            for tp, off in offsets.items():
                ids = self._ids.get(tp)
                meta = store.topic_in(txn, tp.topic)
                if ids is None or meta is None or meta.topic_id != ids[0]:
                    continue  # (its topic was deleted since: a position in it is no offset of the new one)
                if not moved_only:
                    out[tp] = off
                    continue
                raw = txn.get(key(group, ids[0], tp.partition), db=db)
                if raw is None:
                    out[tp] = off
                    continue
                committed, _epoch, stamp = unpack(raw, 0)
                if committed != off or stamp < oldest:
                    out[tp] = off
        txn = None  # type: ignore[assignment]  # (see _collect)
        return out

    # -- committed offsets ----------------------------------------------------------------------
    def _commit_offsets(self, offsets: Mapping[TopicPartition, Any], *, beyond_end: bool = False) -> None:
        assert self.group is not None
        member = None
        if self._membership is not None and self._subscription:
            self._membership.check_process()
            member = self._membership.member_id
        try:
            self._coord.commit(self.group, offsets, member, beyond_end=beyond_end)
        except GroupError as exc:
            if (self._closing or self._closed) and not (self._membership is not None and self._membership.joined):
                # (closed by another thread meanwhile: closing left the group)
                raise ClosedError("this consumer was closed while it committed, and closing took it out of its "
                                  "group: nothing was committed") from exc
            raise

    def commit(self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata | tuple[int, str | None]] | None = None
               ) -> None:
        """Commit offsets for this consumer's group; durable on return.

        Without ``offsets``: the positions of every assigned partition — everything
        ``poll`` returned.  An offset is the *next* offset to read; a value may also be
        ``(offset, metadata)``, e.g. ``OffsetAndMetadata(42, "note")``, whose metadata
        ``committed(..., metadata=True)`` reads back.  Commits from several threads at
        once share one fsync, each fenced on its own.  Raises
        ``IllegalGenerationError`` if the group removed this member (its session or
        poll interval ran out), ``NotAssignedError`` for a partition not assigned here
        (never, or a rebalance gave it to another member), and ``InvalidOffsetError``
        for an offset beyond the end of the partition.
        """
        self._commit(offsets, manual_too=True)

    def _commit(self, offsets: Mapping[TopicPartition, Any] | None, *, manual_too: bool) -> None:
        """``commit``; ``manual_too=False`` (the Kafka-client shims, ``embedlog.compat``)
        lets a manually assigned consumer commit partitions it was not given, and offsets
        past a partition's end, as the Kafka clients and brokers allow."""
        self._check()
        if self.group is None:
            raise ConfigError("commit() needs a consumer group: create the consumer with group=...")
        if offsets is None:
            offsets = self._to_commit()
            if not offsets:
                return
        else:
            if not isinstance(offsets, Mapping):
                raise ConfigError(f"offsets must be a mapping of TopicPartition to offset, got {offsets!r}")
            offsets = {topic_partition(tp): off for tp, off in offsets.items()}
            member = self._membership is not None and bool(self._subscription)
            if member or manual_too:
                for tp in offsets:
                    if tp not in self._ids:
                        raise NotAssignedError(
                            f"{tp.topic}[{tp.partition}] is not assigned to this "
                            f"{'member of group ' + repr(self.group) if member else 'consumer'}; only its "
                            f"{'owned' if member else 'assigned'} partitions can be committed")
        self._commit_offsets(offsets, beyond_end=not manual_too)
        self._last_auto_commit = time.monotonic()

    @overload
    def committed(self, partitions: Iterable[TopicPartition],
                  metadata: Literal[False] = False) -> dict[TopicPartition, int | None]: ...

    @overload
    def committed(self, partitions: Iterable[TopicPartition],
                  metadata: Literal[True]) -> dict[TopicPartition, OffsetAndMetadata | None]: ...

    def committed(self, partitions: Iterable[TopicPartition], metadata: bool = False
                  ) -> dict[TopicPartition, int | None] | dict[TopicPartition, OffsetAndMetadata | None]:
        """The group's committed offset (next offset to read) per partition, or ``None``;
        with ``metadata=True`` an ``OffsetAndMetadata(offset, metadata, leader_epoch)``."""
        self._check()
        if self.group is None:
            raise ConfigError("committed() needs a consumer group: create the consumer with group=...")
        if metadata:
            return self._coord.committed_meta(self.group, partitions)
        return self._coord.committed(self.group, partitions)

    def _ownership(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """For each of ``tps``, how many times the group gave it to this member (None: not
        owned now): it changes when the partition went to another member and came back."""
        m = self._membership
        if m is None:
            return dict.fromkeys(tps)
        owned, claims = m.owned, m.claims
        return {tp: claims.get(tp) if tp in owned else None for tp in tps}

    def group_metadata(self) -> GroupMetadata:
        """``(group, member_id)``: what a transaction needs to fence offsets committed through
        it (as Kafka's consumer group metadata: offsets of a partition that went to another
        member and came back since this call are refused)."""
        self._check()
        if self.group is None:
            raise ConfigError("this consumer has no group")
        m = self._membership
        if m is None or not self._subscription:
            return GroupMetadata(self.group, None)
        m.check_process()
        return GroupMetadata(self.group, m.member_id, self, dict(m.claims), frozenset(m.owned))

    def unsubscribe(self) -> None:
        """Leave the group (if any) and drop every partition."""
        self._check()
        if self._membership is not None and self._membership.joined:
            self._membership.close()
            self._membership = Membership(
                self, self._coord, self._membership.group, protocol=self._membership.protocol,
                session_timeout_ms=self._membership.session_timeout_ms,
                heartbeat_interval_ms=self._membership.heartbeat_interval_ms,
                max_poll_interval_ms=self._membership.max_poll_interval_ms,
                client_id=self._membership.client_id, on_assign=self._membership.callbacks["assign"],
                on_revoke=self._membership.callbacks["revoke"], on_lost=self._membership.callbacks["lost"])
        self._subscription = []
        self._following = False
        self._assignment = []
        self._ids.clear()
        self._positions.clear()
        self._buffers.clear()
        self._idle.clear()
        self._paused.clear()
        self._stash.clear()

    def __iter__(self) -> Iterator[Message]:
        """Yield records for ever (until the consumer or log is closed; ``ClosedError``
        if it is closed already).

        The position follows what was yielded, as kafka-python's iterator does: a
        ``commit()`` in the loop, or after leaving it (``break``), commits exactly the
        records yielded so far, and the next ``poll`` (or loop) starts after them."""
        self._check()
        return self._iterate()

    def _iterate(self) -> Iterator[Message]:
        stash = self._stash  # (emptied in place, never replaced: this stays the one)
        popleft = stash.popleft
        while not self._closed:
            if stash:
                try:
                    while stash:
                        if self._deleted_here:  # (a topic deleted in this process: as poll, never hand
                            self._drop_deleted()  # out what was fetched of it; other processes' deletes
                            continue  # are seen by the poll that fills the stash)
                        yield popleft()
                except IndexError:  # (close() in another thread emptied it between the look and the pop)
                    pass
                continue
            try:
                batch = self.poll(timeout=1.0)
            except ClosedError:
                return
            stash.extend(batch)  # (handed out one at a time, above)

    def _unstash(self, tps: Iterable[TopicPartition] | None = None, *, rewind: bool = True) -> None:
        """Forget the stashed records of ``tps`` (``None``: all).  ``rewind``: the
        position of each such partition goes back to its first stashed record, read
        again from the log (a pause, a seek); else the partition is going away."""
        stash = self._stash
        if not stash:
            return
        which = None if tps is None else set(tps)
        first: dict[TopicPartition, int] = {}
        kept: collections.deque[Message] = collections.deque()
        for msg in tuple(stash):  # (a copy: close() in another thread may empty it)
            tp = TopicPartition(msg.topic, msg.partition)
            if which is None or tp in which:
                first.setdefault(tp, msg.offset)
            else:
                kept.append(msg)
        stash.clear()
        stash.extend(kept)  # (in place: a running iterator holds this deque)
        if rewind:
            for tp, offset in first.items():
                if tp in self._positions:
                    self._positions[tp] = offset
                self._buffers.pop(tp, None)
                self._idle.pop(tp, None)

    def _consumed(self) -> dict[TopicPartition, int]:
        """The position of every assigned partition as the application sees it: before
        the records an iterator has not yielded yet."""
        out = {tp: pos for tp, pos in self._positions.items() if tp in self._ids}
        seen: set[TopicPartition] = set()
        for msg in tuple(self._stash):
            tp = TopicPartition(msg.topic, msg.partition)
            if tp not in seen:
                seen.add(tp)
                if tp in out:
                    out[tp] = msg.offset
        return out

    # -- lifecycle ----------------------------------------------------------------------
    def _check(self) -> None:
        if self._closed:
            raise ClosedError("this consumer is closed; create a new one with log.consumer()")
        if self._log.closed:
            raise ClosedError("the log of this consumer is closed")

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def close(self) -> None:
        """Release the consumer (idempotent; from its own ``on_revoke``, which closing
        calls, it leaves the closing to the call under way)."""
        if self._closed or self._closing:
            return
        self._closing = True
        try:
            if (self.enable_auto_commit and not self._subscription and self._assignment and not self._log.closed
                    and self._pid == current_pid()):
                # Kafka's close() commits what was consumed; a subscribed member does in
                # on_revoke (``_before_release``), a manually assigned one here
                with contextlib.suppress(EmbedlogError):
                    offsets = self._to_commit()
                    if offsets:
                        self._commit_offsets(offsets)
            if self._membership is not None and not self._log.closed:
                self._membership.close()  # (leaves the group if it joined; stops its heartbeat thread)
        finally:
            self._closed = True
            self._buffers.clear()
            self._stash.clear()
            self._log._unregister(self)
            self._store.notifier.wake_local()  # (a poll blocked in another thread sees it closed)

    def __reduce_ex__(self, protocol: object) -> Any:
        raise ConfigError("a consumer cannot be pickled or sent to another process; open the log there with "
                          "embedlog.open(path) and make a consumer of its own (the same group= shares the work)")

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
