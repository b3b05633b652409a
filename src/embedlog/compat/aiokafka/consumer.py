"""aiokafka's ``AIOKafkaConsumer`` over an embedded log.

Every embedlog call runs on the event loop's thread and never blocks: the shim polls
with timeout 0 and, when nothing is there, waits for the log's "new data" notifier in a
worker thread (``asyncio.to_thread``) for at most 100 ms at a time.  With a
``group_id`` a background task keeps following the group between ``getmany`` calls
(as aiokafka's coordinator task does), prefetching into a buffer; positions, and so
``commit()``, count only the records handed to the application.  Auto-commit is done
by the shim on that basis (on the interval, before partitions are revoked, and at
``stop``).  Rebalance listeners may be plain or ``async`` methods; an ``async`` one runs
to completion on a private loop in a helper thread while the consumer waits for it
(so it can ``await consumer.commit()``, but not await objects of the main loop: unlike
aiokafka, which awaits it on the application's loop).  As in aiokafka, ``stop()`` leaves
the group without calling the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from ... import errors as el_errors
from ...consumer import Consumer
from ...model import Message, TopicPartition
from .. import _kafka_common as _common
from . import errors as Errors
from .producer import DEFAULT_CLIENT_ID, _check_embedlog_kwargs, _check_security
from .structs import ConsumerRecord, OffsetAndTimestamp

__all__ = ["AIOKafkaConsumer", "ConsumerRebalanceListener"]

_log = logging.getLogger("embedlog.compat.aiokafka")
_WAIT_STEP = 0.1  # seconds: the longest a wait for data goes without looking at the group again
_START_WAIT = 2.0  # seconds start() waits for a group assignment before returning without one
_RESETS = ("earliest", "latest", "none")


class ConsumerRebalanceListener:
    """aiokafka's listener interface; methods may be ``async``."""

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> Any:
        """Called before partitions are taken away."""

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> Any:
        """Called after partitions are assigned."""


def _call_listener(method: Any, partitions: list[TopicPartition]) -> None:
    """Call a listener method (finishing an ``async`` one); like aiokafka, an exception
    it raises is logged and the rebalance goes on."""
    try:
        _common.run_to_end(method(set(partitions)))
    except Exception:  # noqa: BLE001 - the user's code; aiokafka logs it and goes on
        _log.exception("User provided consumer rebalance listener %r failed", method)




class AIOKafkaConsumer:
    """aiokafka's ``AIOKafkaConsumer(*topics, **options)`` over the embedded log its
    ``bootstrap_servers`` names (see ``embedlog.compat.registry``)."""

    def __init__(self, *topics: str, loop: asyncio.AbstractEventLoop | None = None,
                 bootstrap_servers: Any = "localhost", client_id: str = DEFAULT_CLIENT_ID,
                 group_id: str | None = None, group_instance_id: str | None = None, key_deserializer: Any = None,
                 value_deserializer: Any = None, fetch_max_wait_ms: int = 500, fetch_max_bytes: int = 52428800,
                 fetch_min_bytes: int = 1, max_partition_fetch_bytes: int = 1048576,
                 request_timeout_ms: int = 40000, retry_backoff_ms: int = 100, auto_offset_reset: str = "latest",
                 enable_auto_commit: bool = True, auto_commit_interval_ms: int = 5000, check_crcs: bool = True,
                 metadata_max_age_ms: int = 300000, partition_assignment_strategy: Any = ("roundrobin",),
                 max_poll_interval_ms: int = 300000, rebalance_timeout_ms: int | None = None,
                 session_timeout_ms: int = 10000, heartbeat_interval_ms: int = 3000, consumer_timeout_ms: int = 200,
                 max_poll_records: int | None = None, ssl_context: Any = None, security_protocol: str = "PLAINTEXT",
                 api_version: Any = None, exclude_internal_topics: bool = True,
                 connections_max_idle_ms: int = 540000, isolation_level: str = "read_uncommitted",
                 sasl_mechanism: str = "PLAIN", sasl_plain_password: str | None = None,
                 sasl_plain_username: str | None = None, sasl_kerberos_service_name: str = "kafka",
                 sasl_kerberos_domain_name: str | None = None, sasl_oauth_token_provider: Any = None,
                 client_rack: str | None = None, **embedlog_options: Any) -> None:
        self._embedlog_config = _check_embedlog_kwargs(embedlog_options, "AIOKafkaConsumer")
        self._loop = loop or asyncio.get_running_loop()  # like aiokafka: RuntimeError outside a loop
        if max_poll_records is not None and (not isinstance(max_poll_records, int) or max_poll_records < 1):
            raise ValueError("`max_poll_records` should be positive Integer")
        _check_security(security_protocol, ssl_context, sasl_mechanism, sasl_plain_username, sasl_plain_password)
        if auto_offset_reset not in _RESETS:
            raise ValueError(f"Unrecognized auto_offset_reset: {auto_offset_reset!r}")
        if isolation_level not in ("read_uncommitted", "read_committed"):
            raise ValueError(f"Incorrect isolation level {isolation_level}")
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._group_id = group_id
        self._key_deserializer = key_deserializer
        self._value_deserializer = value_deserializer
        self._auto_offset_reset = auto_offset_reset
        self._enable_auto_commit = bool(enable_auto_commit) and group_id is not None
        self._auto_commit_interval = auto_commit_interval_ms / 1000
        self._strategy = _common.assignment_strategy(partition_assignment_strategy)
        self._max_poll_interval_ms = max_poll_interval_ms
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._max_poll_records = max_poll_records or 500
        self._consumer: Consumer | None = None
        self._sub: _common.Subscription | None = None
        self._topics: _common.Topics | None = None
        self._wanted: tuple[list[str], str | None] | None = (list(topics), None) if topics else None
        self._user_assignment: list[TopicPartition] | None = None
        self._listener: Any = None
        self._revoked = False  # on_partitions_revoked was called since the last on_partitions_assigned
        self._pending: dict[TopicPartition, deque[ConsumerRecord[Any, Any]]] = {}
        _common.drop_at_fork(self)
        self._consumed: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._last_poll: dict[TopicPartition, int] = {}
        self._bg: asyncio.Task[None] | None = None
        self._busy = 0
        self._started = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Find the embedded log, subscribe or assign, and (with a group) wait briefly for an assignment."""
        assert not self._started, "Did you call `start` twice?"
        self._started = True
        cluster = _common.cluster_for(self._bootstrap_servers, self._embedlog_config)
        self._log = cluster.log
        self._topics = _common.Topics(cluster)
        try:
            self._consumer = cluster.log.consumer(
                None, group=self._group_id, auto_offset_reset=self._auto_offset_reset,
                max_poll_records=self._max_poll_records, enable_auto_commit=False,
                on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost,
                session_timeout_ms=self._session_timeout_ms, heartbeat_interval_ms=self._heartbeat_interval_ms,
                max_poll_interval_ms=self._max_poll_interval_ms, partition_assignment_strategy=self._strategy,
                client_id=self._client_id or "")
        except el_errors.ConfigError as exc:
            raise Errors.KafkaConfigurationError(str(exc)) from exc
        self._sub = _common.Subscription(self._consumer, self._topics)
        if self._wanted is not None:
            self._sub.set(*self._wanted)
        elif self._user_assignment is not None:
            self._assign_now(self._user_assignment)
        if self._group_id is not None:
            if self._sub.subscribed:
                deadline = time.monotonic() + _START_WAIT
                while not self._consumer.assignment() and time.monotonic() < deadline:
                    try:
                        self._fill(None)
                    except Exception:  # noqa: BLE001 - aiokafka raises fetch errors (no offset, a
                        break  # deserializer's) from getmany/getone: the next fetch meets it again
                    if not self._consumer.assignment():
                        await asyncio.sleep(0.01)
            self._bg = self._loop.create_task(self._background())

    async def stop(self) -> None:
        """Commit consumed offsets (with auto-commit), leave the group, release (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._bg is not None:
            self._bg.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._bg
        consumer = self._consumer
        if consumer is None or self._log.closed:
            return
        if self._enable_auto_commit:
            with contextlib.suppress(el_errors.EmbedlogError, Errors.KafkaError):
                self._commit_now(self._consumed_offsets())
        self._pending.clear()
        await asyncio.to_thread(consumer.close)

    async def _background(self) -> None:
        """Follow the group (and auto-commit) while the application is not fetching."""
        while not self._closed:
            await asyncio.sleep(_WAIT_STEP)
            if self._busy or self._closed:
                continue
            consumer = self._consumer
            if consumer is None:
                continue
            try:
                # With records still buffered, follow the group without fetching more.  Not
                # the application's fetch: a member it leaves idle for max_poll_interval_ms
                # leaves the group (aiokafka's fetcher idle time), until it fetches again.
                consumer._in_background = True
                try:
                    self._fill(None, only_follow=any(self._pending.values()))
                finally:
                    consumer._in_background = False
                self._maybe_auto_commit()
            except Exception:  # noqa: BLE001, S112 - a deserializer's too: the task must live on
                continue  # surfaced by the next getmany/getone (the records were rewound)

    async def __aenter__(self) -> AIOKafkaConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- rebalance callbacks (embedlog calls them inside poll, on the loop's thread) ------------
    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        if self._listener is not None:
            if not self._revoked:  # (aiokafka calls on_partitions_revoked before every join: set() at the first)
                _call_listener(self._listener.on_partitions_revoked, [])
            _call_listener(self._listener.on_partitions_assigned, partitions)
        self._revoked = False

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        if self._closed:  # stop(): aiokafka leaves the group without calling the listener (stop committed)
            self._forget(partitions)
            return
        if self._enable_auto_commit:
            offsets = {tp: off for tp, off in self._consumed_offsets().items() if tp in set(partitions)}
            with contextlib.suppress(el_errors.EmbedlogError, Errors.KafkaError):
                if offsets:
                    self._commit_now(offsets)
        self._forget(partitions)
        self._revoked = True
        if self._listener is not None:
            _call_listener(self._listener.on_partitions_revoked, partitions)

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        self._forget(partitions)
        self._revoked = True
        if self._listener is not None and not self._closed:
            lost = getattr(self._listener, "on_partitions_lost", None) or self._listener.on_partitions_revoked
            _call_listener(lost, partitions)

    def _forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._pending.pop(tp, None)
            self._consumed.pop(tp, None)

    # -- helpers -----------------------------------------------------------------------------
    def _ready(self) -> Consumer:
        if self._closed:
            raise Errors.ConsumerStoppedError()
        if self._consumer is None:
            raise Errors.IllegalStateError("the consumer is not started: await consumer.start() first")
        return self._consumer

    def _error(self, exc: el_errors.EmbedlogError) -> BaseException:
        if isinstance(exc, el_errors.OffsetOutOfRangeError) and "no position" in str(exc):
            return Errors.NoOffsetForPartitionError(str(exc))
        return _common.translate(exc, Errors, aliases=Errors.ALIASES)

    def _record(self, m: Message) -> ConsumerRecord[Any, Any]:
        key, value, headers = m.key, m.value, m.headers
        kd, vd = self._key_deserializer, self._value_deserializer
        return ConsumerRecord(m.topic, m.partition, m.offset, m.timestamp, 0 if m.timestamp_type == "CreateTime" else 1,
                              kd(key) if kd else key, vd(value) if vd else value, None,
                              len(key) if key is not None else -1, len(value) if value is not None else -1,
                              tuple(headers) if headers else ())  # type: ignore[arg-type]

    def _drop_pending(self, tps: Iterable[TopicPartition]) -> None:
        """Forget prefetched records of ``tps``, moving their positions back to the first one."""
        consumer = self._ready()
        for tp in tps:
            queue = self._pending.pop(tp, None)
            if queue:
                consumer.seek(tp, queue[0].offset)

    def _fill(self, partitions: tuple[TopicPartition, ...] | None, *, only_follow: bool = False) -> None:
        """One non-blocking poll into the prefetch buffer (only ``partitions``, if given;
        with ``only_follow``, none of the partitions already assigned: the poll just
        follows the group, which happens inside embedlog's ``poll``)."""
        consumer = self._ready()
        assert self._sub is not None
        self._sub.refresh()
        others: list[TopicPartition] = []
        if partitions or only_follow:
            wanted = set(partitions or ())
            others = [tp for tp in consumer.assignment() - consumer.paused() if tp not in wanted]
            consumer.pause(*others)
        try:
            msgs = consumer.poll(0, self._max_poll_records)
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc
        finally:
            if others:
                consumer.resume(*[tp for tp in others if tp in consumer.assignment()])
        now = int(time.time() * 1000)
        pending, record = self._pending, self._record
        tp: TopicPartition | None = None
        queue: deque[ConsumerRecord[Any, Any]] | None = None
        for i, m in enumerate(msgs):  # embedlog returns each partition's records together
            if queue is None or tp is None or m.partition != tp.partition or m.topic != tp.topic:
                tp = TopicPartition(m.topic, m.partition)
                queue = pending.get(tp)
                if queue is None:
                    queue = pending[tp] = deque()
                self._last_poll[tp] = now
            try:
                queue.append(record(m))
            except Exception:
                # A deserializer raised: the records from this one on were polled but are not
                # kept; move each partition's position back to its first of them (nothing is
                # skipped), and raise only if none came before it (the next fill raises again
                # until the application seeks past the record).
                _common.rewind(consumer, msgs[i:])
                if not queue:
                    del pending[tp]
                if i == 0:
                    raise
                break

    def _take(self, partitions: tuple[TopicPartition, ...], limit: int
              ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        out: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = {}
        taken = 0
        for tp in list(partitions or self._pending):
            queue = self._pending.get(tp)
            if not queue:
                if queue is not None:
                    del self._pending[tp]
                continue
            k = min(len(queue), limit - taken)
            if k == len(queue):
                records = list(queue)
                del self._pending[tp]
            else:
                popleft = queue.popleft
                records = [popleft() for _ in range(k)]
            if tp in out:
                out[tp].extend(records)
            else:
                out[tp] = records
            self._consumed[tp] = records[-1].offset + 1
            taken += k
            if taken >= limit:
                break
        return out

    async def _wait_for_data(self, seen: int, timeout: float) -> None:
        # (on the event loop, holding no thread: a pool thread per idle consumer starved the
        # loop's default executor, which flush(), commit() and the app's own calls wait for)
        self._log._check()
        await self._log._store.notifier.wait_async(seen, timeout)

    def _generation(self) -> int:
        return self._log.data_generation

    async def _get(self, partitions: tuple[TopicPartition, ...], timeout: float, limit: int
                   ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        for tp in partitions:
            if not isinstance(tp, tuple):
                raise AssertionError("partitions must be TopicPartition instances")
        parts = tuple(_common.as_tp(tp) for tp in partitions)
        deadline = time.monotonic() + timeout
        self._busy += 1
        try:
            while True:
                consumer = self._ready()
                membership = consumer._membership
                if membership is not None and membership.left_idle:
                    # it left the group for not fetching: rejoin (which drops what it
                    # buffered of partitions others may own now) before serving anything
                    self._fill(parts or None)
                out = self._take(parts, limit)
                if not out:
                    seen = self._generation()
                    self._fill(parts or None)
                    out = self._take(parts, limit)
                if out:
                    self._maybe_auto_commit()
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return {}
                await self._wait_for_data(seen, min(remaining, _WAIT_STEP))
        finally:
            self._busy -= 1

    # -- fetching ----------------------------------------------------------------------------
    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
                      ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        """Records by partition, waiting up to ``timeout_ms`` for some (without blocking the loop)."""
        self._ready()
        if max_records is not None and (not isinstance(max_records, int) or max_records < 1):
            raise ValueError("`max_records` must be a positive Integer")
        return await self._get(partitions, timeout_ms / 1000, max_records or self._max_poll_records)

    async def getone(self, *partitions: TopicPartition) -> ConsumerRecord[Any, Any]:
        """The next record (of ``partitions``, if given); waits as long as it takes."""
        while True:
            got = await self._get(partitions, 3600.0, 1)
            for records in got.values():
                return records[0]

    def __aiter__(self) -> AIOKafkaConsumer:
        if self._closed:
            raise Errors.ConsumerStoppedError()
        return self

    async def __anext__(self) -> ConsumerRecord[Any, Any]:
        try:
            return await self.getone()
        except Errors.ConsumerStoppedError:
            raise StopAsyncIteration from None

    # -- subscription and assignment ------------------------------------------------------------
    def subscribe(self, topics: Iterable[str] = (), pattern: str | None = None, listener: Any = None) -> None:
        """Subscribe to topics or a regex ``pattern`` (with ``group_id``, shared with the group)."""
        if not (topics or pattern):
            raise TypeError("You should provide either `topics` or `pattern`")
        if topics and pattern:
            raise TypeError("You can't provide both `topics` and `pattern`")
        if listener is not None and not (hasattr(listener, "on_partitions_revoked")
                                         and hasattr(listener, "on_partitions_assigned")):
            raise TypeError("listener should be an instance of ConsumerRebalanceListener")
        if topics and not isinstance(topics, (tuple, set, list)):
            raise TypeError("Topics should be list of strings")
        if self._user_assignment:
            raise Errors.IllegalStateError("Subscription to topics, partitions and pattern are mutually exclusive")
        self._listener = listener
        self._wanted = (list(topics), pattern)
        if self._sub is not None:
            self._forget(list(self._pending))
            self._sub.set(*self._wanted)

    def subscription(self) -> frozenset[str]:
        """The subscribed topics (after ``assign``: the assigned partitions' topics, as aiokafka)."""
        if self._sub is not None and self._sub.pattern is not None:
            return frozenset(self._sub.active)
        if self._user_assignment is not None:
            return frozenset(tp.topic for tp in self._user_assignment)
        return frozenset(self._wanted[0]) if self._wanted else frozenset()

    def unsubscribe(self) -> None:
        """Leave the group (if any) and drop every partition."""
        self._wanted = None
        self._user_assignment = None
        self._pending.clear()
        self._consumed.clear()
        if self._sub is not None and self._consumer is not None:
            self._sub.clear()
            self._consumer.unsubscribe()
        self._revoked = False

    def assign(self, partitions: Iterable[Any]) -> None:
        """Consume exactly these partitions (no group rebalancing)."""
        if self._wanted is not None:
            raise Errors.IllegalStateError("Subscription to topics, partitions and pattern are mutually exclusive")
        tps = [_common.as_tp(tp) for tp in partitions]
        self._user_assignment = tps
        if self._consumer is not None:
            self._assign_now(tps)

    def _assign_now(self, tps: list[TopicPartition]) -> None:
        consumer = self._ready()
        assert self._topics is not None
        for tp in tps:
            if not self._topics.ensure(tp.topic):
                raise Errors.UnknownTopicOrPartitionError(f"topic {tp.topic!r} does not exist")
        self._forget([tp for tp in self._pending if tp not in set(tps)])
        try:
            consumer.assign(tps)
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc

    def assignment(self) -> frozenset[TopicPartition]:
        """The assigned partitions (a frozenset, as aiokafka's; before ``start``, those
        ``assign`` was given)."""
        if self._consumer is not None:
            return frozenset(self._consumer.assignment())
        return frozenset(self._user_assignment or ())

    async def topics(self) -> set[str]:
        """Every topic in the log."""
        self._ready()
        return set(self._log.topics())

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """The topic's partition ids (``None`` if unknown)."""
        self._ready()
        if topic not in self._log.topics():
            return None
        return set(range(len(self._log.describe_topic(topic).partitions)))

    # -- positions ---------------------------------------------------------------------------
    def _assigned(self, tp: Any) -> TopicPartition:
        checked = _common.as_tp(tp)
        if checked not in self._ready().assignment():
            raise Errors.IllegalStateError(f"Partition {checked} is not assigned")
        return checked

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record ``getmany``/``getone`` returns for ``partition``."""
        tp = self._assigned(partition)
        queue = self._pending.get(tp)
        if queue:
            return queue[0].offset
        try:
            return self._ready().position(tp)
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end offset."""
        tp = self._assigned(partition)
        return self._ready().end_offsets([tp])[tp]

    def last_stable_offset(self, partition: TopicPartition) -> int | None:
        """The partition's end offset (embedlog never exposes uncommitted transactional records)."""
        return self.highwater(partition)

    def last_poll_timestamp(self, partition: TopicPartition) -> int | None:
        """When records of ``partition`` were last fetched (ms since the epoch)."""
        tp = self._assigned(partition)
        return self._last_poll.get(tp)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next offset to read from ``partition``."""
        if not isinstance(offset, int) or offset < 0:
            raise ValueError("Offset must be a positive integer")
        tp = self._assigned(partition)
        self._pending.pop(tp, None)
        self._ready().seek(tp, offset)
        self._consumed[tp] = offset

    def _seek_targets(self, partitions: tuple[Any, ...]) -> list[TopicPartition]:
        consumer = self._ready()
        if not all(isinstance(p, tuple) for p in partitions):
            raise TypeError("partitions must be TopicPartition instances")
        assigned = consumer.assignment()
        tps = [_common.as_tp(p) for p in partitions] if partitions else sorted(assigned)
        assert tps, "No partitions are currently assigned"
        missing = set(tps) - assigned
        if missing:
            raise Errors.IllegalStateError(f"Partitions {missing} are not assigned")
        return tps

    async def seek_to_beginning(self, *partitions: TopicPartition) -> bool:
        """Move to the first stored offset of the given (default: all assigned) partitions."""
        tps = self._seek_targets(partitions)
        for tp, off in self._ready().beginning_offsets(tps).items():
            self.seek(tp, off)
        return True

    async def seek_to_end(self, *partitions: TopicPartition) -> bool:
        """Move to the end offset of the given (default: all assigned) partitions."""
        tps = self._seek_targets(partitions)
        for tp, off in self._ready().end_offsets(tps).items():
            self.seek(tp, off)
        return True

    async def seek_to_committed(self, *partitions: TopicPartition) -> dict[TopicPartition, int | None]:
        """Move to the group's committed offsets; returns them (``None`` where nothing is committed)."""
        tps = self._seek_targets(partitions)
        if self._group_id is None:
            raise Errors.IllegalOperation("Requires group_id")
        committed = self._ready().committed(tps)
        for tp, off in committed.items():
            if off is not None:
                self.seek(tp, off)
        return committed

    async def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]
                                ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition, the earliest offset whose timestamp is >= the one given (or ``None``)."""
        consumer = self._ready()
        asked = {_common.as_tp(tp): ts for tp, ts in timestamps.items()}
        for tp, ts in asked.items():
            if not isinstance(ts, int) or ts < 0:
                raise ValueError(f"The target time for partition {tp} is {ts}. The target time cannot be negative.")
        try:
            found = consumer.offsets_for_times(asked)
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc
        return {tp: None if hit is None else OffsetAndTimestamp(hit.offset, hit.timestamp) for tp, hit in found.items()}

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The first stored offset of each partition."""
        try:
            return self._ready().beginning_offsets(self._existing(partitions))
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc

    def _existing(self, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
        """``partitions``, their topics created on first use (aiokafka's metadata request
        creates them on a broker with auto-creation), or ``UnknownTopicOrPartitionError``.
        (After ``_ready``: started.)"""
        assert self._topics is not None
        return self._topics.existing(partitions, Errors)

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset the next record written to each partition will get."""
        try:
            return self._ready().end_offsets(self._existing(partitions))
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop returning records of these partitions (prefetched ones are dropped, positions kept)."""
        if not all(isinstance(p, tuple) for p in partitions):
            raise TypeError("partitions must be TopicPartition namedtuples")
        tps = [self._assigned(p) for p in partitions]
        self._drop_pending(tps)
        self._ready().pause(*tps)

    def resume(self, *partitions: TopicPartition) -> None:
        """Return records of these partitions again."""
        if not all(isinstance(p, tuple) for p in partitions):
            raise TypeError("partitions must be TopicPartition namedtuples")
        self._ready().resume(*[self._assigned(p) for p in partitions])  # (IllegalStateError, as pause)

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return self._ready().paused()

    # -- committed offsets -------------------------------------------------------------------
    def _consumed_offsets(self) -> dict[TopicPartition, int]:
        """What ``commit()`` without offsets commits: as aiokafka, the position of every
        assigned partition that has one (consumed from or not): after the last record
        handed out, else the first one prefetched, else where reading would start."""
        consumer = self._consumer
        if consumer is None:
            return {}
        out = {}
        positions = consumer._positions
        for tp in consumer.assignment():
            off = self._consumed.get(tp)
            if off is None:
                queue = self._pending.get(tp)
                off = queue[0].offset if queue else positions.get(tp)
            if off is not None:
                out[tp] = off
        return out

    def _commit_now(self, offsets: Mapping[TopicPartition, Any]) -> None:
        if self._consumer is None:
            raise Errors.IllegalStateError("the consumer is not started: await consumer.start() first")
        try:
            self._consumer._commit(dict(offsets), manual_too=False)
        except (el_errors.IllegalGenerationError, el_errors.NotAssignedError) as exc:
            raise Errors.CommitFailedError(str(exc)) from exc
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc
        self._last_commit = time.monotonic()

    def _maybe_auto_commit(self) -> None:
        if self._enable_auto_commit and time.monotonic() - self._last_commit >= self._auto_commit_interval:
            self._last_commit = time.monotonic()
            offsets = self._consumed_offsets()
            if offsets:
                with contextlib.suppress(el_errors.EmbedlogError, Errors.KafkaError):
                    self._commit_now(offsets)

    async def commit(self, offsets: Mapping[TopicPartition, Any] | None = None) -> None:
        """Commit offsets (default: what was handed out) for the group; durable on return.

        Values are the *next* offset to read, or ``(offset, metadata)``.
        """
        if self._group_id is None:
            raise Errors.IllegalOperation("Requires group_id")
        consumer = self._ready()
        if self._sub is None or (not self._sub.subscribed and self._user_assignment is None):
            raise Errors.IllegalStateError("Not subscribed to any topics")
        assigned = consumer.assignment()
        if not assigned:
            raise Errors.IllegalStateError("No partitions assigned")
        todo: dict[TopicPartition, Any]
        if offsets is None:
            todo = self._consumed_offsets()
        else:
            todo = {}
            for key, value in offsets.items():
                tp = _common.as_tp(key)
                if tp not in assigned:
                    raise Errors.IllegalStateError(f"Partition {tp} is not assigned")
                if isinstance(value, int):
                    todo[tp] = value
                elif isinstance(value, tuple) and len(value) >= 2 and isinstance(value[0], int):
                    todo[tp] = (value[0], value[1] or "")
                else:
                    raise ValueError(f"Invalid offset for {tp}: {value!r}; use an int or (offset, metadata)")
        if not todo:
            return
        await asyncio.to_thread(self._commit_now, todo)

    async def committed(self, partition: TopicPartition) -> int | None:
        """The group's committed offset for ``partition`` (``None`` if none)."""
        if self._group_id is None:
            raise Errors.IllegalOperation("Requires group_id")
        tp = _common.as_tp(partition)
        if tp.topic not in self._log.topics():
            return None
        return self._ready().committed([tp])[tp]
