"""confluent-kafka's ``Consumer`` over an embedded log.

An embedlog ``Consumer`` (with the group, assignment and fetch positions) does the
reading; this class adds what librdkafka does on top: one ``Message`` per ``poll()``,
the *application* position (``position()`` is the offset after the last message handed
out, ``OFFSET_INVALID`` before any), stored offsets (``enable.auto.offset.store``) and
auto-commit of them, partition-EOF and error events, rebalance callbacks called with
``(consumer, partitions)``, and ``assign()``/``incremental_assign()`` inside them to set
start offsets.  Records fetched but not yet handed out are dropped on ``seek()``,
``pause()`` and revocation, and fetched again later — as librdkafka purges its queue.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import embedlog
from embedlog import TopicPartition as ETP
from embedlog import errors as el
from embedlog.storage.topics import validate_name

from .. import registry
from ._admin_types import ClusterMetadata
from ._config import check_timeout, parse_config
from ._errors import (
    ERR_AUTO_OFFSET_RESET,
    ERR_CONFLICT,
    ERR_INVALID_ARG,
    ERR_MAX_POLL_EXCEEDED,
    ERR_NO_OFFSET,
    ERR_OFFSET_OUT_OF_RANGE,
    ERR_PARTITION_EOF,
    ERR_STATE,
    ERR_UNKNOWN_PARTITION,
    ERR_UNKNOWN_TOPIC_OR_PART,
    KafkaError,
    KafkaException,
    describe,
    error_for,
    kafka_error,
    kafka_exception,
)
from ._metadata import BROKER_ID, build_metadata, cluster_id
from ._types import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    OFFSET_STORED,
    OFFSET_TAIL_BASE,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    TIMESTAMP_NOT_AVAILABLE,
    Message,
    TopicPartition,
    make_message,
    make_tp,
    tp_fields,
    tp_list,
    valid_start,
)

__all__ = ["Consumer", "ConsumerGroupMetadata"]

RebalanceCallback = Callable[[Any, list[Any]], Any]
_RESETS = {"smallest": "earliest", "earliest": "earliest", "beginning": "earliest",
           "largest": "latest", "latest": "latest", "end": "latest", "error": "none"}
_FETCH = 500  # records per embedlog poll
_RECHECK = 0.2  # seconds between looks for subscribed topics that do not exist yet
_SLICE = 0.5  # longest block in embedlog's poll before looking at EOF, commits, topics again
_FOLLOW = 0.01  # seconds between looks at the group while buffered records are handed out


def _assignment_fields(partitions: list[TopicPartition]) -> list[tuple[str, int, int]]:
    """``(topic, partition, offset)`` of partitions to assign; ``_INVALID_ARG`` for a
    negative offset that is no logical one, as librdkafka."""
    fields = tp_list(partitions)
    if not all(valid_start(off) for _, _, off in fields):
        raise kafka_exception(ERR_INVALID_ARG, f"Failed to set assignment: {describe(ERR_INVALID_ARG)}")
    return fields

class ConsumerGroupMetadata:
    """What ``Producer.send_offsets_to_transaction`` needs of a consumer (opaque, like the real one)."""

    def __init__(self, consumer: Consumer) -> None:
        self.group_id = consumer._group
        # a member's metadata fences offsets sent with it, even after the member is gone,
        # by the partitions it owned when this was made (as librdkafka's, by generation)
        self._member: embedlog.GroupMetadata | None = (consumer._inner.group_metadata() if consumer._subscribed
                                                       else None)

    def _target(self) -> embedlog.GroupMetadata | str:
        """The member's ``GroupMetadata`` (offsets fenced by its membership then) or,
        unsubscribed, the group name."""
        return self._member if self._member is not None else self.group_id

    def __repr__(self) -> str:
        return f"<ConsumerGroupMetadata group_id={self.group_id!r}>"


class Consumer:
    """confluent-kafka's ``Consumer``: ``Consumer({"bootstrap.servers": ..., "group.id": ...})``.

    Not thread-safe (neither is the real one for concurrent polls).
    """

    def __init__(self, config: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        conf = parse_config(config, kwargs, "consumer")
        group = conf.get("group.id")
        if not group:
            raise ValueError("Failed to create consumer: group.id must be set")
        self._conf = conf
        self._group: str = str(group)
        self._cluster = registry.log_for(conf.raw)
        self._log = self._cluster.log
        self._reset = _RESETS[conf.get("auto.offset.reset", "largest")]
        self._auto_commit = bool(conf.get("enable.auto.commit", conf.get("auto.commit.enable", True)))
        self._auto_store = bool(conf.get("enable.auto.offset.store", True))
        self._eof = bool(conf.get("enable.partition.eof", False))
        self._allow_create = bool(conf.get("allow.auto.create.topics", False))
        self._commit_interval = int(conf.get("auto.commit.interval.ms", 5000)) / 1000
        self._on_commit = conf.callback("on_commit")
        strategy = str(conf.get("partition.assignment.strategy") or "range,roundrobin").split(",")[0].strip()
        self._inner = self._log.consumer(
            None, group=self._group, auto_offset_reset=self._reset, enable_auto_commit=False,
            on_assign=self._cb_assign, on_revoke=self._cb_revoke, on_lost=self._cb_lost,
            session_timeout_ms=int(conf.get("session.timeout.ms", 45_000)),
            heartbeat_interval_ms=int(conf.get("heartbeat.interval.ms", 3000)),
            max_poll_interval_ms=int(conf.get("max.poll.interval.ms", 300_000)),
            partition_assignment_strategy=strategy, client_id=str(conf.get("client.id") or "rdkafka"),
            max_poll_records=_FETCH)
        self._buf: deque[embedlog.Message] = deque()  # fetched, not yet handed out
        self._batch: list[Message] | None = None  # the batch consume() is building
        self._events: deque[Message] = deque()  # error and EOF events to hand out
        self._commit_reports: deque[tuple[KafkaError | None, list[TopicPartition]]] = deque()
        self._app_pos: dict[ETP, int] = {}  # offset after the last message handed out
        self._stored: dict[ETP, int] = {}  # offsets to commit
        self._last_commit: dict[ETP, int] = {}
        self._next_commit = time.monotonic() + self._commit_interval
        self._assigned: dict[ETP, int] = {}  # assignment -> offset as given (OFFSET_STORED if none)
        self._unavailable: dict[ETP, int] = {}  # assigned, but its topic does not exist (yet)
        self._eof_at: dict[ETP, int] = {}
        self._paused: set[ETP] = set()  # paused by the application
        self._halted: set[ETP] = set()  # stopped by an auto.offset.reset=error event
        self._wm_seen: set[ETP] = set()
        self._subscription: list[str] | None = None
        self._subscribed: list[str] = []  # existing topics the embedlog consumer subscribes to
        self._reported: set[str] = set()
        self._next_topic_check = 0.0
        self._callbacks: dict[str, RebalanceCallback | None] = {"assign": None, "revoke": None, "lost": None}
        self._in_callback: str | None = None
        self._poll_exceeded = False  # a _MAX_POLL_EXCEEDED event is out, on_lost not called yet
        self._next_follow = 0.0
        self._closed = False

    # -- subscription -------------------------------------------------------------------------
    def subscribe(self, topics: list[str], on_assign: RebalanceCallback | None = None,
                  on_revoke: RebalanceCallback | None = None, on_lost: RebalanceCallback | None = None) -> None:
        """Join the group for ``topics`` (names, or regexes starting with ``^``).

        Callbacks are called from ``poll()``/``consume()``/``close()`` as
        ``cb(consumer, partitions)``; without ``on_lost``, ``on_revoke`` is called for lost
        partitions.  A topic that does not exist gives an ``UNKNOWN_TOPIC_OR_PART`` event
        and is picked up once it is created.
        """
        self._check_open()
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise TypeError("expected list of topic unicode strings")
        if not topics:
            raise kafka_exception(ERR_INVALID_ARG, f"Failed to set subscription: {describe(ERR_INVALID_ARG)}")
        for name, cb in (("on_assign", on_assign), ("on_revoke", on_revoke), ("on_lost", on_lost)):
            if cb is not None and not callable(cb):
                raise TypeError(f"{name} expects a callable")
        if self._subscription is None and self._assigned:
            self._release(list(self._assigned))
            self._inner.assign([])
            self._assigned.clear()
            self._unavailable.clear()
        self._callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self._subscription = list(topics)
        self._reported = set()
        self._resubscribe()

    def _resubscribe(self) -> None:
        """Point the embedlog consumer at the subscribed topics that exist now."""
        assert self._subscription is not None
        existing = self._log.topics()
        names: list[str] = []
        for entry in self._subscription:
            if entry.startswith("^"):
                try:
                    pattern = re.compile(entry)
                except re.error:
                    continue
                names.extend(t for t in existing if pattern.match(t) and t not in names)
            elif entry in existing or (self._allow_create and self._create(entry)):
                if entry not in names:
                    names.append(entry)
            elif entry not in self._reported:
                self._reported.add(entry)
                text = f"Subscribed topic not available: {entry}: {describe(ERR_UNKNOWN_TOPIC_OR_PART)}"
                self._event(entry, 0, None, ERR_UNKNOWN_TOPIC_OR_PART, text)
        if names == self._subscribed:
            return
        self._subscribed = names
        if names:
            self._inner.subscribe(names)
        elif self._inner.subscription():
            self._inner.unsubscribe()

    def _create(self, topic: str) -> bool:
        try:
            return self._cluster.ensure_topic(topic)
        except el.EmbedlogError:  # an invalid name: reported like a missing topic
            return False

    def _waiting_for_topics(self) -> bool:
        if self._subscription is not None:
            return any(e.startswith("^") or e not in self._subscribed for e in self._subscription)
        return bool(self._unavailable)

    def unsubscribe(self) -> None:
        """Leave the group (``on_revoke`` is called) and drop every partition."""
        self._check_open()
        if self._subscribed:
            self._inner.unsubscribe()
        self._drop(list(self._assigned))
        self._assigned.clear()
        self._subscription = None
        self._subscribed = []

    # -- rebalance callbacks (called by embedlog's consumer from inside its poll) ------------------
    def _user_callback(self, which: str, partitions: list[ETP]) -> None:
        cb = self._callbacks[which]
        if which == "lost" and cb is None:
            cb = self._callbacks["revoke"]
        if cb is None:
            return
        self._in_callback = which
        try:
            cb(self, [make_tp(tp.topic, tp.partition, OFFSET_INVALID) for tp in partitions])
        finally:
            self._in_callback = None

    def _cb_assign(self, partitions: list[ETP]) -> None:
        for tp in partitions:
            self._assigned[tp] = OFFSET_STORED
            self._app_pos.pop(tp, None)
            self._eof_at.pop(tp, None)
        self._user_callback("assign", partitions)

    def _cb_revoke(self, partitions: list[ETP]) -> None:
        self._take_back(partitions)
        try:
            self._user_callback("revoke", partitions)
        finally:
            if self._auto_commit:
                self._commit_stored(set(partitions))
            self._drop(partitions)

    def _cb_lost(self, partitions: list[ETP]) -> None:
        self._take_back(partitions)
        try:
            self._user_callback("lost", partitions)
        finally:
            self._drop(partitions)

    def _take_back(self, partitions: list[ETP]) -> None:
        """A rebalance inside ``consume()``: the messages of ``partitions`` already in the
        batch it builds are taken out (as librdkafka drops a batch's messages fetched
        before a rebalance), and the positions and stored offsets they moved go back to
        the first of them, so that nothing the application never got is committed, and
        a partition it keeps is not read twice in one batch."""
        out = self._batch
        if not out:
            return
        gone = set(partitions)
        first: dict[ETP, int] = {}
        keep = []
        for m in out:
            topic, part, off = m.topic(), m.partition(), m.offset()
            if m.error() is None and topic is not None and part is not None and off is not None \
                    and ETP(topic, part) in gone:
                first.setdefault(ETP(topic, part), off)
            else:
                keep.append(m)
        out[:] = keep
        for tp, off in first.items():
            self._app_pos[tp] = off
            if self._auto_store:
                self._stored[tp] = off

    def _release(self, partitions: list[ETP]) -> None:
        """Stop consuming ``partitions`` of a manual assignment: with auto-commit their
        stored offsets are committed first (as librdkafka does at unassign)."""
        if self._auto_commit:
            self._commit_stored(set(partitions))
        self._drop(partitions)

    def _drop(self, partitions: list[ETP]) -> None:
        gone = set(partitions)
        if self._buf:
            self._buf = deque(m for m in self._buf if (m.topic, m.partition) not in gone)
        for tp in gone:
            for d in (self._assigned, self._app_pos, self._stored, self._last_commit, self._eof_at,
                      self._unavailable):
                d.pop(tp, None)
            self._paused.discard(tp)
            self._halted.discard(tp)
            self._wm_seen.discard(tp)

    # -- assignment -----------------------------------------------------------------------------------
    def assign(self, partitions: list[TopicPartition]) -> None:
        """Consume exactly ``partitions``, from each one's offset (``OFFSET_BEGINNING``,
        ``OFFSET_END``, an offset, or the committed offset for ``OFFSET_STORED``/
        ``OFFSET_INVALID``).  In ``on_assign`` it sets the start offsets of the assigned
        partitions instead."""
        self._check_open()
        fields = _assignment_fields(partitions)
        if len({(t, p) for t, p, _ in fields}) != len(fields):  # (librdkafka refuses a partition twice)
            raise kafka_exception(ERR_INVALID_ARG, f"Failed to set assignment: {describe(ERR_INVALID_ARG)}")
        if self._in_callback == "assign":
            self._start_at(fields)
            return
        if self._in_callback in ("revoke", "lost"):
            return
        if self._subscribed:
            raise kafka_exception(ERR_STATE, "assign() is not possible while subscribed: unsubscribe() first")
        self._release(list(self._assigned))
        self._assigned.clear()
        self._inner.assign([])
        self._add_assignment(fields)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        """Add ``partitions`` to the assignment (in ``on_assign``: set their start offsets)."""
        self._check_open()
        fields = _assignment_fields(partitions)
        if self._in_callback == "assign":
            self._start_at(fields)
            return
        for t, p, _ in fields:
            if ETP(t, p) in self._assigned:
                raise kafka_exception(ERR_CONFLICT, f"{t} [{p}] is already part of the current assignment")
        if self._subscribed:
            raise kafka_exception(ERR_STATE, "incremental_assign() outside on_assign is not possible while "
                                  "subscribed: unsubscribe() first")
        self._add_assignment(fields)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        """Remove ``partitions`` from the assignment (a no-op inside ``on_revoke``/``on_lost``)."""
        self._check_open()
        fields = tp_list(partitions)
        if self._in_callback in ("revoke", "lost"):
            return
        if not self._assigned:
            raise kafka_exception(ERR_INVALID_ARG, "Can't subtract from empty assignment")
        gone = []
        for t, p, _ in fields:
            tp = ETP(t, p)
            if tp not in self._assigned:
                raise kafka_exception(ERR_INVALID_ARG,
                                      f"{t} [{p}] can't be unassigned since it is not in the current assignment")
            gone.append(tp)
        if self._subscribed:
            raise kafka_exception(ERR_STATE, "incremental_unassign() outside on_revoke is not possible while "
                                  "subscribed: unsubscribe() first")
        self._release(gone)
        self._inner.assign([tp for tp in self._inner.assignment() if tp not in set(gone)])

    def unassign(self) -> None:
        """Drop the whole assignment (a no-op inside ``on_revoke``/``on_lost``)."""
        self._check_open()
        if self._in_callback in ("revoke", "lost"):
            return
        if self._subscribed:
            raise kafka_exception(ERR_STATE, "unassign() outside on_revoke is not possible while subscribed: "
                                  "unsubscribe() first")
        self._release(list(self._assigned))
        self._assigned.clear()
        self._inner.assign([])

    def _add_assignment(self, fields: list[tuple[str, int, int]]) -> None:
        usable: list[tuple[str, int, int]] = []
        counts: dict[str, int | None] = {}
        for t, p, off in fields:
            tp = ETP(t, p)
            self._assigned[tp] = OFFSET_STORED if off == OFFSET_INVALID else off
            if t not in counts:
                counts[t] = self._partition_count(t)
            n = counts[t]
            if n is None or not 0 <= p < n:
                self._unavailable[tp] = off
                text = (f'Failed to fetch committed offset for group "{self._group}" topic {t} [{p}]: '
                        f"{describe(ERR_UNKNOWN_TOPIC_OR_PART)}")
                self._event(t, p, None, ERR_UNKNOWN_TOPIC_OR_PART, text)
                continue
            usable.append((t, p, off))
        self._inner.assign(list(self._inner.assignment()) + [ETP(t, p) for t, p, _ in usable])
        self._start_at(usable)

    def _unassigned_code(self, topic: str) -> int:
        """librdkafka's error for a partition that is not assigned: ``_STATE`` if it knows
        the topic, else ``_UNKNOWN_PARTITION``."""
        return ERR_STATE if self._partition_count(topic) is not None else ERR_UNKNOWN_PARTITION

    def _partition_count(self, topic: str) -> int | None:
        try:
            if topic not in self._log.topics() and not (self._allow_create and self._create(topic)):
                return None
            return len(self._log.describe_topic(topic).partitions)
        except (el.UnknownTopicError, el.InvalidTopicError):
            return None

    def _start_at(self, fields: list[tuple[str, int, int]]) -> None:
        """Apply start offsets to assigned partitions (the rest start at the committed offset)."""
        mine = set(self._inner.assignment())
        for t, p, off in fields:
            tp = ETP(t, p)
            if tp not in mine:
                continue
            self._app_pos.pop(tp, None)
            self._eof_at.pop(tp, None)
            self._forget_buffered(tp)
            self._position_at(tp, off)

    def _position_at(self, tp: ETP, off: int) -> None:
        if off >= 0:
            self._inner.seek(tp, off)
        elif off == OFFSET_BEGINNING:
            self._inner.seek_to_beginning(tp)
        elif off == OFFSET_END:
            self._inner.seek_to_end(tp)
        elif off <= OFFSET_TAIL_BASE:  # RD_KAFKA_OFFSET_TAIL(n): n records before the end
            low, high = self._watermarks(tp)
            self._inner.seek(tp, max(low, high - (OFFSET_TAIL_BASE - off)))
        else:  # OFFSET_STORED / OFFSET_INVALID: the committed offset, else auto.offset.reset
            committed = self._inner.committed([tp]).get(tp)
            if committed is not None:
                self._inner.seek(tp, committed)
            elif self._reset == "earliest":
                self._inner.seek_to_beginning(tp)
            elif self._reset == "latest":
                self._inner.seek_to_end(tp)

    def assignment(self) -> list[TopicPartition]:
        """The assigned partitions (offset: as assigned, ``OFFSET_STORED`` when not given)."""
        self._check_open()
        return [make_tp(tp.topic, tp.partition, off) for tp, off in self._assigned.items()]

    # -- positions -----------------------------------------------------------------------------------
    def _forget_buffered(self, tp: ETP) -> int | None:
        """Drop fetched-but-not-handed-out records of ``tp``; return the first one's offset."""
        first = None
        if self._buf:
            keep: deque[embedlog.Message] = deque()
            for m in self._buf:
                if m.topic == tp.topic and m.partition == tp.partition:
                    if first is None:
                        first = m.offset
                else:
                    keep.append(m)
            self._buf = keep
        return first

    def _rewind(self, tp: ETP) -> None:
        """Make the next fetch of ``tp`` start at the first record not handed out."""
        first = self._forget_buffered(tp)
        if first is not None:
            self._inner.seek(tp, first)

    def seek(self, partition: TopicPartition) -> None:
        """Continue ``partition`` (assigned) from its ``offset``."""
        self._check_open()
        t, p, off = tp_fields(partition)
        tp = ETP(t, p)
        if tp not in set(self._inner.assignment()):
            code = self._unassigned_code(t)
            raise kafka_exception(code, f"Failed to seek to offset {off}: {describe(code)}")
        if off in (OFFSET_STORED, OFFSET_INVALID) or not valid_start(off):  # (none librdkafka seeks to)
            raise kafka_exception(ERR_INVALID_ARG, f"Failed to seek to offset {off}: {describe(ERR_INVALID_ARG)}")
        self._forget_buffered(tp)
        self._position_at(tp, off)
        self._app_pos.pop(tp, None)
        self._eof_at.pop(tp, None)
        if tp in self._halted:
            self._halted.discard(tp)
            if tp not in self._paused:
                self._inner.resume(tp)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Per partition, the offset after the last message handed out (``OFFSET_INVALID`` before any)."""
        self._check_open()
        return [make_tp(t, p, self._app_pos.get(ETP(t, p), OFFSET_INVALID)) for t, p, _ in tp_list(partitions)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop handing out messages of ``partitions`` until ``resume()``."""
        self._check_open()
        mine = set(self._inner.assignment())
        for t, p, _ in tp_list(partitions):
            tp = ETP(t, p)
            if tp in mine:
                self._rewind(tp)
                self._inner.pause(tp)
                self._paused.add(tp)

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Hand out messages of ``partitions`` again."""
        self._check_open()
        mine = set(self._inner.assignment())
        for t, p, _ in tp_list(partitions):
            tp = ETP(t, p)
            self._paused.discard(tp)
            if tp in mine and tp not in self._halted:
                self._inner.resume(tp)

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float | None = None,
                              cached: bool = False) -> tuple[int, int]:
        """``(low, high)``: the first offset stored and the offset the next record will get.
        ``cached=True`` answers from what fetching saw (``OFFSET_INVALID`` before any fetch)."""
        self._check_open()
        t, p, _ = tp_fields(partition)
        tp = ETP(t, p)
        if cached and tp not in self._wm_seen:
            return OFFSET_INVALID, OFFSET_INVALID
        n = self._partition_count(t)
        if n is None or not 0 <= p < n:  # (librdkafka: no leader known for it)
            raise kafka_exception(ERR_UNKNOWN_PARTITION,
                                  f"Failed to get watermark offsets: {describe(ERR_UNKNOWN_PARTITION)}")
        return self._watermarks(tp)

    def _watermarks(self, tp: ETP) -> tuple[int, int]:
        """The partition's first and end offsets, as embedlog's consumer gives them."""
        return self._inner.beginning_offsets([tp])[tp], self._inner.end_offsets([tp])[tp]

    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        """For each partition (offset = a timestamp in ms), the earliest offset whose
        timestamp is at or after it; ``OFFSET_END`` (-1) when there is none."""
        self._check_open()
        out = []
        for t, p, ts in tp_list(partitions):
            tp = ETP(t, p)
            n = self._partition_count(t)
            if n is None or not 0 <= p < n:
                raise kafka_exception(ERR_UNKNOWN_PARTITION,
                                      f"Failed to get offsets: {describe(ERR_UNKNOWN_PARTITION)}")
            if ts == OFFSET_END:
                off = self._inner.end_offsets([tp])[tp]
            elif ts == OFFSET_BEGINNING:
                off = self._inner.beginning_offsets([tp])[tp]
            elif ts < 0:
                raise kafka_exception(ERR_INVALID_ARG, f"invalid timestamp {ts} for {t} [{p}]")
            else:
                hit = self._inner.offsets_for_times({tp: ts})[tp]
                off = OFFSET_END if hit is None else hit.offset
            out.append(make_tp(t, p, off))
        return out

    # -- consuming ---------------------------------------------------------------------------------
    def poll(self, timeout: float = -1) -> Message | None:
        """The next message or event (``error()`` set), or ``None`` after ``timeout``
        seconds (-1: wait forever)."""
        timeout = check_timeout(timeout)
        self._check_open()
        deadline = None if timeout < 0 else time.monotonic() + timeout
        return self._next(deadline)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        """Up to ``num_messages`` messages/events; waits until that many or ``timeout``."""
        timeout = check_timeout(timeout)
        self._check_open()
        if isinstance(num_messages, bool) or not isinstance(num_messages, int) or not 0 <= num_messages <= 1_000_000:
            raise ValueError("num_messages must be between 0 and 1000000 (1M)")
        deadline = None if timeout < 0 else time.monotonic() + timeout
        out: list[Message] = []
        self._batch = out  # (a rebalance meanwhile takes back what it holds of revoked partitions)
        try:
            while len(out) < num_messages:
                m = self._next(deadline)
                if m is None:
                    break
                out.append(m)
                if self._buf and not self._events:  # the rest of what was fetched, without the per-message checks
                    self._hand_out_many(num_messages - len(out), out)
        finally:
            self._batch = None
        return out

    def _next(self, deadline: float | None) -> Message | None:
        first = True
        while True:
            self._follow_group()
            self._housekeeping()
            if self._events:
                return self._events.popleft()
            if self._buf:
                return self._hand_out(self._buf.popleft())
            remaining = float("inf") if deadline is None else deadline - time.monotonic()
            wait = 0.0 if first else max(0.0, min(remaining, _SLICE))
            if self._fetch(wait):
                continue
            if self._eof:
                self._check_eof()
            if self._events:
                continue
            if not first and remaining <= 0:
                return None
            first = False

    def _follow_group(self) -> None:
        """Let the group reconcile before anything buffered is handed out (librdkafka
        rebalances in the background: a member busy with prefetched records must not hold
        up the group, and records of partitions that moved are dropped by ``on_revoke``);
        at most every ``_FOLLOW`` seconds, as embedlog's own poll looks at it too.  A
        member the group removed for exceeding ``max.poll.interval.ms`` first gets a
        ``_MAX_POLL_EXCEEDED`` event (its buffered records dropped); the next call runs
        ``on_lost`` and rejoins."""
        membership = self._inner._membership
        if membership is None:
            return
        if membership.inherited:  # (a forked child: before handing out the parent's prefetched records)
            try:
                membership.check_process()
            except el.ForkError as exc:
                raise KafkaException(error_for(exc)) from None
        kicked = membership._kicked.is_set()
        now = time.monotonic()
        if now < self._next_follow and not kicked:
            return
        self._next_follow = now + _FOLLOW
        if kicked and not self._poll_exceeded:
            over = now - membership._last_poll - membership.max_poll_interval
            if over > 0:
                self._poll_exceeded = True
                self._buf.clear()
                text = (f"Application maximum poll interval ({membership.max_poll_interval_ms}ms) "
                        f"exceeded by {int(over * 1000)}ms")
                err = kafka_error(ERR_MAX_POLL_EXCEEDED, text)
                self._events.append(make_message(None, 0, None, None, text.encode(), None,
                                                 (TIMESTAMP_NOT_AVAILABLE, -1), error=err))
                return
        self._poll_exceeded = False
        membership.reconcile()

    def _fetch(self, wait: float) -> bool:
        try:
            msgs = self._inner.poll(timeout=wait, max_records=_FETCH)
        except el.OffsetOutOfRangeError:
            self._reset_errors()
            return False
        self._wm_seen.update(self._inner.assignment())
        if msgs:
            self._buf.extend(msgs)
            return True
        return False

    def _hand_out(self, m: embedlog.Message) -> Message:
        tp = ETP(m.topic, m.partition)
        self._app_pos[tp] = m.offset + 1
        if self._auto_store:
            self._stored[tp] = m.offset + 1
        ts_type = TIMESTAMP_LOG_APPEND_TIME if m.timestamp_type == "LogAppendTime" else TIMESTAMP_CREATE_TIME
        return make_message(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers) if m.headers else None,
                            (ts_type, m.timestamp), leader_epoch=m.leader_epoch)

    def _hand_out_many(self, limit: int, out: list[Message]) -> None:
        """Hand out up to ``limit`` buffered messages into ``out`` (``_hand_out`` for many:
        positions are set once per run of one partition's messages)."""
        buf, app_pos = self._buf, self._app_pos
        stored = self._stored if self._auto_store else None
        new, append, popleft = Message, out.append, buf.popleft
        prev: embedlog.Message | None = None
        for _ in range(min(limit, len(buf))):
            m = popleft()
            if prev is not None and (m.partition != prev.partition or m.topic != prev.topic):
                tp = ETP(prev.topic, prev.partition)
                app_pos[tp] = prev.offset + 1
                if stored is not None:
                    stored[tp] = prev.offset + 1
            prev = m
            h = m.headers
            append(new(m.topic, m.partition, m.offset, m.key, m.value, list(h) if h else None, None,
                       (TIMESTAMP_LOG_APPEND_TIME if m.timestamp_type == "LogAppendTime" else TIMESTAMP_CREATE_TIME,
                        m.timestamp), -1, m.leader_epoch))
        if prev is not None:
            tp = ETP(prev.topic, prev.partition)
            app_pos[tp] = prev.offset + 1
            if stored is not None:
                stored[tp] = prev.offset + 1

    def _event(self, topic: str, partition: int, offset: int | None, code: int, text: str,
               leader_epoch: int | None = None) -> None:
        err = kafka_error(code, text)
        self._events.append(make_message(topic, partition, offset, None, text.encode(), None,
                                         (TIMESTAMP_NOT_AVAILABLE, -1), error=err, leader_epoch=leader_epoch))

    def _check_eof(self) -> None:
        active = [tp for tp in self._inner.assignment() if tp not in self._paused and tp not in self._halted]
        if not active:
            return
        try:
            ends = self._inner.end_offsets(active)
        except el.EmbedlogError:
            return  # a topic was deleted meanwhile
        buffered = {(m.topic, m.partition) for m in self._buf}
        for tp in active:
            if tp in buffered:
                continue
            try:
                pos = self._inner.position(tp)
            except el.OffsetOutOfRangeError:
                continue
            end = ends[tp]
            if pos >= end and self._eof_at.get(tp) != pos:
                self._eof_at[tp] = pos
                text = f"Fetch from broker {BROKER_ID} reached end of partition at offset {pos} (HighwaterMark {end})"
                self._event(tp.topic, tp.partition, pos, ERR_PARTITION_EOF, text, leader_epoch=0)

    def _reset_errors(self) -> None:
        """``auto.offset.reset=error``: an event per partition without a valid position,
        which then stops until ``seek()``."""
        for tp in self._inner.assignment():
            if tp in self._halted:
                continue
            try:
                pos = self._inner.position(tp)
            except el.OffsetOutOfRangeError:
                self._halted.add(tp)
                self._inner.pause(tp)
                text = f"no previously committed offset available: {describe(ERR_NO_OFFSET)}"
                self._event(tp.topic, tp.partition, None, ERR_AUTO_OFFSET_RESET, text)
                continue
            try:
                low, high = self._watermarks(tp)
            except el.EmbedlogError:
                continue  # (its topic was deleted meanwhile)
            if not low <= pos <= high:  # (an offset assigned or sought out of range)
                self._halted.add(tp)
                self._inner.pause(tp)
                text = ("fetch failed due to requested offset not available on the broker: "
                        f"{describe(ERR_OFFSET_OUT_OF_RANGE)} (broker {BROKER_ID})")
                self._event(tp.topic, tp.partition, pos, ERR_AUTO_OFFSET_RESET, text)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_topic_check:  # topics subscribed or assigned that do not exist yet
            self._next_topic_check = now + _RECHECK
            if self._waiting_for_topics():
                if self._subscription is not None:
                    self._resubscribe()
                else:
                    self._retry_unavailable()
        if self._auto_commit and now >= self._next_commit:
            self._next_commit = now + self._commit_interval
            self._commit_stored(None)
        while self._commit_reports:
            err, parts = self._commit_reports.popleft()
            if self._on_commit is not None:
                self._on_commit(err, parts)

    def _retry_unavailable(self) -> None:
        ready = []
        for tp, off in list(self._unavailable.items()):
            n = self._partition_count(tp.topic)
            if n is not None and 0 <= tp.partition < n:
                del self._unavailable[tp]
                ready.append((tp.topic, tp.partition, off))
        if ready:
            self._inner.assign(list(self._inner.assignment()) + [ETP(t, p) for t, p, _ in ready])
            self._start_at(ready)

    # -- offsets ------------------------------------------------------------------------------------
    def _commit_stored(self, only: set[ETP] | None) -> None:
        """Auto-commit: stored offsets that changed since the last commit."""
        offsets = {tp: off for tp, off in self._stored.items()
                   if (only is None or tp in only) and self._last_commit.get(tp) != off}
        if not offsets:
            return
        err: KafkaError | None = None
        try:
            self._inner._commit(offsets, manual_too=False)  # (librdkafka commits any partition)
            self._last_commit.update(offsets)
        except el.EmbedlogError as exc:
            err = error_for(exc)
        if self._on_commit is not None:
            self._commit_reports.append((err, [make_tp(tp.topic, tp.partition, off) for tp, off in offsets.items()]))

    def commit(self, message: Message | None = None, offsets: list[TopicPartition] | None = None,
               asynchronous: bool = True) -> list[TopicPartition] | None:
        """Commit ``message``'s offset + 1, or ``offsets``, or the stored offsets of the
        assignment.  Synchronous: returns the committed partitions or raises
        ``KafkaException``; asynchronous (the default): errors go to ``on_commit``."""
        self._check_open()
        if message is not None and offsets is not None:
            raise ValueError("message and offsets are mutually exclusive")
        items: list[tuple[str, int, int, str | None]]
        if message is not None:
            t, p, o = message.topic(), message.partition(), message.offset()
            if t is None or p is None or o is None:
                raise kafka_exception(ERR_INVALID_ARG, "Commit failed: the message has no offset")
            items = [(t, p, o + 1, None)]
            result = [make_tp(t, p, o + 1)]
        elif offsets is not None:
            fields = tp_list(offsets)
            metas = [getattr(x, "metadata", None) for x in offsets]
            items = [(t, p, o, m) for (t, p, o), m in zip(fields, metas) if o >= 0]
            result = [make_tp(t, p, o, metadata=m) for (t, p, o), m in zip(fields, metas)]
        else:  # (as librdkafka: only stored offsets not committed yet; none at all is _NO_OFFSET)
            stored = self._stored
            items = [(tp.topic, tp.partition, stored[tp], None) for tp in self._assigned
                     if tp in stored and self._last_commit.get(tp) != stored[tp]]
            result = [make_tp(tp.topic, tp.partition, stored.get(tp, OFFSET_INVALID)) for tp in self._assigned]
        err: KafkaError | None = None
        if not items:
            err = kafka_error(ERR_NO_OFFSET, f"Commit failed: {describe(ERR_NO_OFFSET)}")
        else:
            to_commit: dict[ETP, Any] = {ETP(t, p): (o if m is None else (o, m)) for t, p, o, m in items}
            # Kafka answers an OffsetCommit per partition: an unknown one fails alone
            unknown = [tp for tp in to_commit if not self._partition_exists(tp)]
            for tp in unknown:
                del to_commit[tp]
            try:
                if to_commit:
                    self._inner._commit(to_commit, manual_too=False)
                for tp, v in to_commit.items():
                    self._last_commit[tp] = v if isinstance(v, int) else v[0]
                if unknown:
                    code = ERR_UNKNOWN_TOPIC_OR_PART
                    err = kafka_error(code, f"Commit failed: {describe(code)}")
                    result = [make_tp(x.topic, x.partition, x.offset, metadata=x.metadata,
                                      error=kafka_error(code) if ETP(x.topic, x.partition) in unknown else None)
                              for x in result]
            except el.EmbedlogError as exc:
                err = error_for(exc, prefix="Commit failed: ")
        if asynchronous:  # (a synchronous commit returns or raises instead: no on_commit, as librdkafka)
            if self._on_commit is not None:
                self._commit_reports.append((err, result))
            return None
        if err is not None:
            raise kafka_exception(err.code(), err.str())
        return result

    def _partition_exists(self, tp: ETP) -> bool:
        try:
            validate_name(tp.topic)
        except el.InvalidTopicError:
            return True  # (the commit refuses the name with its own error)
        meta = self._log._store.topic(tp.topic)
        return meta is not None and 0 <= tp.partition < meta.partitions

    def store_offsets(self, message: Message | None = None, offsets: list[TopicPartition] | None = None) -> None:
        """Store offsets for the next (auto-)commit; needs ``enable.auto.offset.store=false``."""
        self._check_open()
        if message is None and offsets is None:
            raise ValueError("expected either message or offsets")
        if message is not None and offsets is not None:
            raise ValueError("message and offsets are mutually exclusive")
        if self._auto_store:
            raise kafka_exception(ERR_INVALID_ARG, f"StoreOffsets failed: {describe(ERR_INVALID_ARG)}")
        if message is not None:
            t, p, o = message.topic(), message.partition(), message.offset()
            if t is None or p is None or o is None:
                raise kafka_exception(ERR_INVALID_ARG, f"StoreOffsets failed: {describe(ERR_INVALID_ARG)}")
            items = [(t, p, o + 1)]
        else:
            items = tp_list(offsets)
        for t, p, o in items:
            tp = ETP(t, p)
            if tp not in self._assigned:
                code = self._unassigned_code(t)
                raise kafka_exception(code, f"StoreOffsets failed: {describe(code)}")
            if o >= 0:
                self._stored[tp] = o

    def committed(self, partitions: list[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        """The group's committed offsets with their metadata (``OFFSET_INVALID`` where none)."""
        self._check_open()
        fields = tp_list(partitions)
        existing = set(self._log.topics())
        found = self._inner.committed([ETP(t, p) for t, p, _ in fields if t in existing], metadata=True)
        out = []
        for t, p, _ in fields:
            if t not in existing:
                out.append(make_tp(t, p, OFFSET_INVALID, error=kafka_error(ERR_UNKNOWN_TOPIC_OR_PART)))
                continue
            om = found.get(ETP(t, p))
            out.append(make_tp(t, p, OFFSET_INVALID) if om is None else make_tp(t, p, om.offset, metadata=om.metadata))
        return out

    # -- metadata and the rest -----------------------------------------------------------------------
    def list_topics(self, topic: str | None = None, timeout: float | None = -1) -> ClusterMetadata:
        """Cluster metadata (of one ``topic``, or all)."""
        self._check_open()
        if topic is not None and self._allow_create:
            self._create(topic)
        return build_metadata(self._cluster, self._conf.get("bootstrap.servers"), None if topic is None else [topic])

    def memberid(self) -> str | None:
        """This member's id in the group (``None`` when not subscribed)."""
        self._check_open()
        if self._poll_exceeded:  # (it left the group; rejoins at the next poll)
            return None
        return self._inner.group_metadata()[1] if self._subscribed else None

    def consumer_group_metadata(self) -> ConsumerGroupMetadata:
        """For ``Producer.send_offsets_to_transaction``."""
        self._check_open()
        return ConsumerGroupMetadata(self)

    def cluster_id(self, timeout: float | None = -1) -> str:
        """The cluster id (a hash of the log directory)."""
        return cluster_id(self._log)

    def set_sasl_credentials(self, username: str, password: str) -> None:
        """Accepted and ignored."""

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Consumer closed")
        if self._log.closed:
            raise RuntimeError("Consumer closed (its log was closed)")

    def close(self) -> None:
        """Commit stored offsets (with auto-commit), leave the group (``on_revoke`` is
        called), release the consumer.  Idempotent."""
        if self._closed:
            return
        try:
            if self._auto_commit and not self._log.closed:
                self._commit_stored(None)
            if not self._log.closed:
                self._inner.close()
        finally:
            self._closed = True
            self._buf.clear()
            self._events.clear()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<embedlog.compat.confluent_kafka.Consumer group={self._group!r}>"
