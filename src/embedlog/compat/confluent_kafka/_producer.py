"""confluent-kafka's ``Producer`` over an embedded log.

Like librdkafka, ``produce()`` only queues: records are written by the embedlog
producer after ``linger.ms`` (or at ``flush()``), and delivery reports wait in a queue
until the application serves them with ``poll()`` or ``flush()`` — callbacks never run
on another thread.  ``len(producer)`` counts messages whose delivery report has not been
served yet plus queued report events, as librdkafka's ``rd_kafka_outq_len`` does.
"""

from __future__ import annotations

import contextlib
import inspect
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import embedlog
from embedlog import errors as el
from embedlog.partitioner import KeyHasher, resolve
from embedlog.storage.topics import validate_name

from .. import registry
from .._fencing import Epoch
from .._record_size import headers_size
from ._admin_types import ClusterMetadata
from ._config import check_timeout, parse_config
from ._errors import (
    ERR_FENCED,
    ERR_INCONSISTENT,
    ERR_INVALID_ARG,
    ERR_INVALID_PRODUCER_EPOCH,
    ERR_INVALID_TXN_STATE,
    ERR_MSG_SIZE_TOO_LARGE,
    ERR_NOT_CONFIGURED,
    ERR_PURGE_QUEUE,
    ERR_STATE,
    ERR_UNKNOWN_PARTITION,
    ERR_UNKNOWN_TOPIC,
    KafkaError,
    describe,
    error_for,
    kafka_error,
    kafka_exception,
)
from ._metadata import build_metadata, cluster_id
from ._types import (
    OFFSET_INVALID,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    encode_headers,
    make_message,
    to_bytes,
    tp_fields,
)

__all__ = ["Producer"]

_RECORD_OVERHEAD = 36  # bytes librdkafka adds to key + value + headers for message.max.bytes

DeliveryCallback = Callable[[Any, Any], Any]

#: the layout of embedlog's producer buffers: records of ``_STRIDE`` slots, the callback in slot ``_CALLBACK``
_STRIDE = 7
_CALLBACK = 6

#: does ``Transaction.send`` report offsets (``on_delivery``)?  Without it, delivery
#: reports of transactional messages carry no offset (``msg.offset()`` is ``None``).
_TX_REPORTS = "on_delivery" in inspect.signature(embedlog.Transaction.send).parameters


class _Delivery:
    """One produced message waiting for its delivery report."""

    __slots__ = ("cb", "error", "headers", "key", "offset", "owner", "partition", "resent", "size", "t0", "timestamp",
                 "topic", "value")

    def __init__(self, owner: Producer, cb: DeliveryCallback | None, topic: str, partition: int,
                 key: bytes | None, value: bytes | None, timestamp: int) -> None:
        self.owner = owner
        self.headers: Any = None  # (as given to the send: for ``Producer._resend``)
        self.resent = False
        self.cb = cb
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.size = (len(key) if key else 0) + (len(value) if value else 0)
        self.timestamp = timestamp  # 0: now (the written record's timestamp replaces it)
        self.t0 = time.monotonic()
        self.offset = OFFSET_INVALID
        self.error: KafkaError | None = None

    def __call__(self, error: el.EmbedlogError | None, metadata: embedlog.RecordMetadata | None) -> None:
        """embedlog's ``on_delivery`` (called on a writer thread): queue the report."""
        if isinstance(error, el.UnknownTopicError) and not self.resent and self.owner._resend(self):
            return
        if error is not None or metadata is None:
            self.error = error_for(error or el.EmbedlogError("not written"))
        else:
            self.partition = metadata.partition
            self.offset = metadata.offset
            self.timestamp = metadata.timestamp
        self.owner._queue_report(self)


class Producer:
    """confluent-kafka's ``Producer``: ``Producer({"bootstrap.servers": ...})``.

    The log is found with ``embedlog.compat.registry.log_for(config)``.  Keys go to
    partitions by ``partitioner`` (librdkafka's default ``consistent_random``: CRC32 of
    the key; empty and null keys spread).
    """

    def __init__(self, config: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        conf = parse_config(config, kwargs, "producer")
        self._conf = conf
        self._cluster = registry.log_for(conf.raw)
        self._log = self._cluster.log
        codec = conf.get("compression.codec", "none")
        self._compression = None if codec in (None, "none", "inherit") else "zstd"
        self._partitioner = conf.get("partitioner") or "consistent_random"
        self._inner = self._log.producer(
            compression=self._compression, linger_ms=float(conf.get("queue.buffering.max.ms", 5.0)),
            partitioner=self._partitioner, acks="all" if conf.get("request.required.acks", -1) == -1 else "leader")
        self._hasher = resolve(self._partitioner)
        # librdkafka's sticky partitioner (KIP-480): messages without a key (or with an
        # empty one, for the *_random partitioners) stay on one random partition per topic
        # for sticky.partitioning.linger.ms, across flushes; 0: a random partition each
        self._sticky_s = int(conf.get("sticky.partitioning.linger.ms", 10)) / 1000
        self._sticky: dict[str, tuple[int, float]] = {}  # topic -> (partition, monotonic until)
        self._default_cb: DeliveryCallback | None = conf.callback("on_delivery")
        self._max_message = int(conf.get("message.max.bytes", 1_000_000))
        self._max_queued = int(conf.get("queue.buffering.max.messages", 100_000))
        self._max_queued_bytes = int(conf.get("queue.buffering.max.kbytes", 1_048_576)) * 1024
        self._only_errors = bool(conf.get("delivery.report.only.error", False))
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._events: deque[list[_Delivery]] = deque()  # report events, each one or more reports
        self._pending = 0  # messages whose report was not served yet
        self._pending_bytes = 0
        self._pollers = 0  # threads waiting in poll() for a report (notified only then)
        self._ts_types: dict[str, int] = {}  # topic -> TIMESTAMP_* of its records
        self._closed = False
        # transactions
        self._txn_id: str | None = conf.get("transactional.id") or None
        self._txn_state = "Init"
        self._txn: embedlog.Transaction | None = None
        self._txn_msgs: list[_Delivery] = []
        self._txn_purged = 0  # messages of the open transaction purge() failed: its commit fails
        self._epoch = (Epoch(self._log, self._txn_id, int(conf.get("transaction.timeout.ms", 60_000)))
                       if self._txn_id is not None else None)
        self._fatal: KafkaError | None = None

    # -- producing ------------------------------------------------------------------------
    def produce(self, topic: str, value: Any = None, key: Any = None, partition: int = -1,
                callback: DeliveryCallback | None = None, on_delivery: DeliveryCallback | None = None,
                timestamp: int = 0, headers: Any = None) -> None:
        """Queue a message; its delivery report is served by ``poll()``/``flush()``.

        Raises ``KafkaException`` for an unknown partition or a message larger than
        ``message.max.bytes``, ``BufferError`` when ``queue.buffering.max.messages``
        reports are waiting to be served, ``TypeError`` for values that are not
        ``str``/bytes.
        """
        if self._closed or self._log.closed:
            self._check_open()
        if type(topic) is not str:
            raise TypeError(f"argument 'topic' must be str, not {type(topic).__name__}")
        v = value if value is None or type(value) is bytes else to_bytes(value, "value")
        k = key if key is None or type(key) is bytes else to_bytes(key, "key")
        hdrs = None if headers is None else encode_headers(headers)
        if type(partition) is not int:
            raise TypeError(f"'{type(partition).__name__}' object cannot be interpreted as an integer")
        if type(timestamp) is not int:
            raise TypeError(f"'{type(timestamp).__name__}' object cannot be interpreted as an integer")
        cb = on_delivery or callback or self._default_cb
        if cb is not None and not callable(cb):
            raise TypeError("on_delivery must be callable")
        # librdkafka's check: key, value, headers as a record batch encodes them, and 36
        # bytes of per-record overhead, against message.max.bytes
        size = (len(k) if k else 0) + (len(v) if v else 0) + _RECORD_OVERHEAD
        if hdrs:
            size += headers_size(hdrs)
        if size > self._max_message:
            raise kafka_exception(ERR_MSG_SIZE_TOO_LARGE,
                                  f"Unable to produce message: {describe(ERR_MSG_SIZE_TOO_LARGE)}")
        if self._txn_id is not None:
            self._check_fenced()
            if self._txn_state != "InTransaction":
                raise kafka_exception(ERR_STATE, f"Unable to produce message: {describe(ERR_STATE)}")
        known = topic in self._ts_types or self._timestamp_type(topic) is not None
        if partition == -1 and known and self._sticky_key(k):
            partition = self._sticky_partition(topic)
        report = _Delivery(self, cb, topic, partition, k, v, timestamp)
        with self._lock:  # count it (reports not yet served bound the queue, as in librdkafka)
            if self._pending >= self._max_queued or self._pending_bytes + size > self._max_queued_bytes:
                raise BufferError("Local: Queue full")
            self._pending += 1
            self._pending_bytes += size
        if not known:  # no such topic, and not auto-created
            report.error = kafka_error(ERR_UNKNOWN_TOPIC, describe(ERR_UNKNOWN_TOPIC))
            self._queue_report(report)
            return
        if self._txn is not None:
            self._produce_transactional(report, hdrs)
            return
        report.headers = hdrs
        try:
            self._inner.send(topic, v, k, hdrs, None if partition == -1 else partition,
                             timestamp if timestamp > 0 else None, report)
        except el.UnknownPartitionError:
            self._uncount(report)
            raise kafka_exception(ERR_UNKNOWN_PARTITION,
                                  f"Unable to produce message: {describe(ERR_UNKNOWN_PARTITION)}") from None
        except el.ClosedError:
            self._uncount(report)
            raise RuntimeError("Producer has been closed") from None
        except el.UnknownTopicError as exc:  # (deleted since this producer knew it)
            if not self._resend(report):
                report.error = error_for(exc)
                self._queue_report(report)
        except el.EmbedlogError as exc:  # the broker would refuse it: a failed delivery report
            report.error = error_for(exc)
            self._queue_report(report)

    def produce_batch(self, topic: str, messages: list[dict[str, Any]], partition: int = -1,
                      callback: DeliveryCallback | None = None, on_delivery: DeliveryCallback | None = None) -> int:
        """Produce each dict of ``messages`` (keys ``value``, ``key``, ``partition``,
        ``timestamp``, ``headers``, ``callback``); return how many were queued.  A message
        that could not be queued gets an ``_error`` key holding its ``KafkaError``."""
        queued = 0
        for m in messages:
            try:
                self.produce(topic, m.get("value"), m.get("key"), m.get("partition", partition),
                             on_delivery=m.get("callback") or on_delivery or callback,
                             timestamp=m.get("timestamp", 0), headers=m.get("headers"))
                queued += 1
            except Exception as exc:  # noqa: BLE001 - reported per message, like the real client
                first = exc.args[0] if exc.args else None
                m["_error"] = first if hasattr(first, "code") else kafka_error(ERR_INVALID_ARG, str(exc))
        return queued

    def _resend(self, report: _Delivery) -> bool:
        """``report``'s message failed because its topic was deleted since this producer
        knew it: as librdkafka, which refreshes its metadata (a broker that auto-creates
        topics creates it again) and retries, send it once more; return whether it was."""
        report.resent = True
        self._ts_types.pop(report.topic, None)
        if self._closed or self._txn_id is not None:
            return False
        try:
            if self._timestamp_type(report.topic) is None:  # (not created again: the failure stands)
                return False
            self._inner.send(report.topic, report.value, report.key, report.headers,
                             None if report.partition == -1 else report.partition,
                             report.timestamp if report.timestamp > 0 else None, report)
        except el.EmbedlogError:
            return False
        return True

    def _timestamp_type(self, topic: str) -> int | None:
        """TIMESTAMP_* of ``topic`` (creating it when the cluster auto-creates), ``None`` if missing."""
        ts_type = self._ts_types.get(topic)
        if ts_type is not None:
            return ts_type
        try:
            if not self._cluster.ensure_topic(topic):
                return None
            config = self._log.describe_topic(topic).config
        except el.InvalidTopicError:
            return TIMESTAMP_CREATE_TIME  # embedlog refuses it at send: a failed delivery report
        except el.UnknownTopicError:
            return None
        ts_type = TIMESTAMP_LOG_APPEND_TIME if config.get("message.timestamp.type") == "LogAppendTime" \
            else TIMESTAMP_CREATE_TIME
        self._ts_types[topic] = ts_type
        return ts_type

    def _uncount(self, report: _Delivery) -> None:
        with self._lock:
            self._pending -= 1
            self._pending_bytes -= report.size

    def _queue_report(self, report: _Delivery) -> None:
        """Add a delivery report to the queue; consecutive reports of one partition form
        one event (librdkafka reports a message set per event)."""
        with self._ready:
            last = self._events[-1] if self._events else None
            prev = last[-1] if last else None
            if (prev is not None and prev.error is None and report.error is None and prev.topic == report.topic
                    and prev.partition == report.partition and prev.offset + 1 == report.offset):
                last.append(report)  # type: ignore[union-attr]
            else:
                self._events.append([report])
            if self._pollers:
                self._ready.notify_all()

    # -- serving reports ----------------------------------------------------------------------
    def _serve(self, limit: int | None = None) -> int:
        """Serve queued report events (callbacks run here, on the caller's thread)."""
        served = 0
        while limit is None or served < limit:
            with self._lock:
                if not self._events:
                    break
                event = self._events.popleft()
                if all(r.cb is None for r in event):  # nothing to call: count the event served at once
                    self._pending -= len(event)
                    self._pending_bytes -= sum(r.size for r in event)
                    served += 1
                    continue
            served += 1
            # a callback that raises: as librdkafka, the rest of its event is still served,
            # then the exception ends the poll()/flush() (later events stay queued)
            error: Exception | None = None
            for i, report in enumerate(event):
                with self._lock:
                    self._pending -= 1
                    self._pending_bytes -= report.size
                try:
                    self._report(report)
                except Exception as exc:  # noqa: BLE001 - the application's callback: raised after the event
                    if error is None:
                        error = exc
                except BaseException:  # (KeyboardInterrupt...: stop now, the rest stays queued)
                    rest = event[i + 1:]
                    if rest:
                        with self._lock:
                            self._events.appendleft(rest)
                    raise
            if error is not None:
                raise error
        return served

    def _report(self, report: _Delivery) -> None:
        cb = report.cb
        if cb is None or (self._only_errors and report.error is None):
            return
        ts_type = self._ts_types.get(report.topic, TIMESTAMP_CREATE_TIME)
        msg = make_message(report.topic, report.partition, report.offset, report.key, report.value, None,
                           (ts_type, report.timestamp or time.time_ns() // 1_000_000), error=report.error,
                           latency=time.monotonic() - report.t0)
        cb(report.error, msg)

    def poll(self, timeout: float = -1) -> int:
        """Serve delivery reports; wait up to ``timeout`` seconds (-1: forever) for one if
        none is queued.  Returns the number of events served."""
        timeout = check_timeout(timeout)
        self._check_open()
        served = self._serve()
        if served or timeout == 0:
            return served
        deadline = None if timeout < 0 else time.monotonic() + timeout
        with self._ready:
            self._pollers += 1
            try:
                while not self._events:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._ready.wait(remaining if remaining is not None else 1.0)
            finally:
                self._pollers -= 1
        return self._serve()

    def flush(self, timeout: float = -1) -> int:
        """Write everything queued and serve every delivery report; return how many
        messages are still waiting (0, except for messages of an open transaction, which
        are delivered when it commits)."""
        timeout = check_timeout(timeout)
        self._check_open()
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while True:
            if len(self._inner):
                try:
                    self._inner.flush()
                except el.ClosedError:
                    raise RuntimeError("Producer has been closed (its log was closed)") from None
                except el.EmbedlogError:
                    pass  # failed records' reports are queued with their errors
            self._serve()
            if not len(self._inner) and not self._events:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        return len(self)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        """Drop the messages not yet written (``in_queue``): their delivery reports carry
        ``KafkaError._PURGE_QUEUE`` and are served by the next ``poll()``/``flush()``.

        A write already under way (``in_flight``) cannot be taken back in an embedded log:
        it completes and is reported as delivered.  Messages of an open transaction are
        failed too, as librdkafka's: the transaction cannot commit any more
        (``commit_transaction`` raises an abortable ``_INCONSISTENT``; abort it).
        ``blocking`` changes nothing here."""
        self._check_open()
        if not in_queue:
            return
        if self._txn is not None and self._txn_msgs:
            purged, self._txn_msgs = self._txn_msgs, []
            self._txn_purged += len(purged)
            for report in purged:
                report.error = kafka_error(ERR_PURGE_QUEUE, describe(ERR_PURGE_QUEUE))
                report.offset = OFFSET_INVALID
                self._queue_report(report)
        inner = self._inner
        drained: list[Any] = []
        with inner._flush_lock:  # not while a write is taking its records
            inner._drain(drained)
        error = kafka_error(ERR_PURGE_QUEUE, describe(ERR_PURGE_QUEUE))
        events: list[list[_Delivery]] = []
        for _st, _partition, flat in drained:
            reports = [r for r in flat[_CALLBACK::_STRIDE] if isinstance(r, _Delivery)]
            for r in reports:
                r.error = error
            if reports:
                events.append(reports)
        if events:
            with self._ready:
                self._events.extend(events)
                if self._pollers:
                    self._ready.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return self._pending + len(self._events)

    def __bool__(self) -> bool:
        return True

    # -- metadata -------------------------------------------------------------------------------
    def list_topics(self, topic: str | None = None, timeout: float | None = -1) -> ClusterMetadata:
        """Cluster metadata; asking for one ``topic`` creates it if the cluster auto-creates topics."""
        self._check_open()
        if topic is not None:
            with contextlib.suppress(el.EmbedlogError):  # an invalid name: reported in the metadata
                self._cluster.ensure_topic(topic)
        return build_metadata(self._cluster, self._conf.get("bootstrap.servers"), None if topic is None else [topic])

    def cluster_id(self, timeout: float | None = -1) -> str:
        """The cluster id (a hash of the log directory)."""
        return cluster_id(self._log)

    def set_sasl_credentials(self, username: str, password: str) -> None:
        """Accepted and ignored (there is no broker to authenticate to)."""

    # -- transactions ----------------------------------------------------------------------------
    def _txn_check(self, *allowed: str) -> None:
        if self._txn_id is None:
            raise kafka_exception(ERR_NOT_CONFIGURED,
                                  "The Transactional API requires transactional.id to be configured")
        self._check_fenced()
        if self._txn_state not in allowed:
            raise kafka_exception(ERR_STATE, f"Operation not valid in state {self._txn_state}")

    def _check_fenced(self) -> None:
        if self._fatal is not None:
            raise kafka_exception(self._fatal.code(), self._fatal.str(), fatal=True)
        if self._epoch is None or not self._epoch.fenced:
            return
        reason = (f"Producer fenced by newer instance: a producer with transactional.id {self._txn_id!r} "
                  "called init_transactions() after this one")
        self._fatal = kafka_error(ERR_FENCED, reason, fatal=True)
        self._drop_transaction(kafka_error(ERR_FENCED, reason))
        raise kafka_exception(ERR_FENCED, reason, fatal=True)

    def init_transactions(self, timeout: float | None = -1) -> None:
        """Register the ``transactional.id``, fencing older producers that use it (in any
        process on this log directory)."""
        self._check_open()
        self._txn_check("Init")
        assert self._epoch is not None
        self._epoch.claim()
        self._txn_state = "Ready"

    def begin_transaction(self) -> None:
        """Start a transaction: messages produced until commit/abort belong to it."""
        self._check_open()
        self._txn_check("Ready")
        assert self._epoch is not None
        self._txn = self._epoch.bind(self._log.transaction(compression=self._compression,
                                                           partitioner=self._partitioner))
        self._txn_msgs = []
        self._txn_purged = 0
        self._txn_state = "InTransaction"

    def _produce_transactional(self, report: _Delivery, hdrs: Any) -> None:
        assert self._txn is not None
        partition = report.partition
        try:
            if partition == -1:  # chosen here, so that the delivery report can name it
                partition = self._choose_partition(report.topic, report.key)
            if not report.timestamp:
                report.timestamp = time.time_ns() // 1_000_000
            kwargs: dict[str, Any] = {"on_delivery": report} if _TX_REPORTS else {}
            self._txn.send(report.topic, report.value, key=report.key, headers=hdrs, partition=partition,
                           timestamp_ms=report.timestamp, **kwargs)
        except el.UnknownPartitionError:
            self._uncount(report)
            raise kafka_exception(ERR_UNKNOWN_PARTITION,
                                  f"Unable to produce message: {describe(ERR_UNKNOWN_PARTITION)}") from None
        except el.EmbedlogError as exc:
            report.error = error_for(exc)
            self._queue_report(report)
            return
        report.partition = partition
        self._txn_msgs.append(report)

    def _sticky_key(self, key: bytes | None) -> bool:
        """Whether a message with this key (and no partition) goes to the sticky partition."""
        hasher = self._hasher
        return (isinstance(hasher, KeyHasher) and hasher.null_key == "sticky"
                and (key is None or (hasher.empty_is_null and not key)))

    def _sticky_partition(self, topic: str) -> int:
        """The topic's sticky partition: kept ``sticky.partitioning.linger.ms``, then a new
        random one (which may be the same), as librdkafka's ``rd_kafka_msg_sticky_partition``."""
        now = time.monotonic()
        held = self._sticky.get(topic)
        if held is not None and now < held[1]:
            return held[0]
        try:
            validate_name(topic)
        except el.InvalidTopicError:
            return -1  # (the send refuses the name: a failed delivery report, as for a keyed record)
        meta = self._log._store.topic(topic)  # (the partition count: once a sticky period, not a message)
        p = random.randrange(meta.partitions if meta is not None else 1)
        if self._sticky_s > 0:
            self._sticky[topic] = (p, now + self._sticky_s)
        return p

    def _choose_partition(self, topic: str, key: bytes | None) -> int:
        if self._sticky_key(key):
            return self._sticky_partition(topic)
        n = len(self._log.describe_topic(topic).partitions)
        hasher = self._hasher
        if not isinstance(hasher, KeyHasher):  # pragma: no cover - names only resolve to hashers
            return random.randrange(n)
        if key is None or (hasher.empty_is_null and not key):
            if hasher.null_key == "hash":
                return hasher.hash(b"") % n
            return random.randrange(n)
        return hasher.hash(key) % n

    def send_offsets_to_transaction(self, positions: list[Any], group_metadata: Any,
                                    timeout: float | None = -1) -> None:
        """Commit a consumer group's offsets (next offsets to read) with the transaction;
        ``group_metadata`` comes from ``consumer.consumer_group_metadata()``."""
        self._check_open()
        self._txn_check("InTransaction")
        from ._consumer import ConsumerGroupMetadata  # noqa: PLC0415 - circular

        if not isinstance(group_metadata, ConsumerGroupMetadata):
            raise TypeError("expected group_metadata from Consumer.consumer_group_metadata() of this shim, got "
                            f"{type(group_metadata).__name__}")
        if not isinstance(positions, list):
            raise TypeError("expected list of TopicPartition for positions")
        offsets = {}
        for p in positions:
            t, part, off = tp_fields(p)
            if off >= 0:
                offsets[embedlog.TopicPartition(t, part)] = off
        if offsets:
            assert self._txn is not None
            self._txn._commit_offsets_unfenced(group_metadata._target(), offsets)

    def commit_transaction(self, timeout: float | None = -1) -> None:
        """Commit: every message and offset of the transaction becomes visible at once.

        Raises ``KafkaException`` (``txn_requires_abort()`` true) when the commit was
        refused, e.g. offsets sent for partitions the consumer no longer owns; call
        ``abort_transaction()`` then."""
        self._check_open()
        self._txn_check("InTransaction")
        txn, msgs = self._txn, self._txn_msgs
        assert txn is not None
        assert self._epoch is not None
        if self._txn_purged:  # (its messages failed delivery: librdkafka refuses the commit)
            self._txn_state = "AbortableError"
            raise kafka_exception(ERR_INCONSISTENT, f"{self._txn_purged} message(s) failed delivery (see "
                                  "individual delivery reports)", txn_requires_abort=True)
        if self._epoch.expired:  # (the coordinator would have aborted it)
            reason = self._epoch.expired_message()
            self._drop_transaction(kafka_error(ERR_INVALID_PRODUCER_EPOCH, reason))
            self._txn_state = "AbortableError"
            raise kafka_exception(ERR_INVALID_PRODUCER_EPOCH, f"Transaction commit failed: {reason}",
                                  txn_requires_abort=True)
        try:
            txn.commit()
        except el.EmbedlogError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, el.EmbedlogError) else exc
            if isinstance(cause, el.ProducerFencedError):  # (fenced during the commit: a fatal error)
                self._check_fenced()
            err = error_for(cause)
            self._txn, self._txn_msgs = None, []
            if not _TX_REPORTS:  # (otherwise embedlog reported the failure to each message already)
                for report in msgs:
                    report.error = kafka_error(err.code(), err.str())
                    self._queue_report(report)
            self._txn_state = "AbortableError"
            code = err.code() if not isinstance(cause, el.TransactionAbortedError) else ERR_INVALID_TXN_STATE
            raise kafka_exception(code, f"Transaction commit failed: {cause}", txn_requires_abort=True) from exc
        self._txn, self._txn_msgs = None, []
        if not _TX_REPORTS:
            for report in msgs:
                self._queue_report(report)
        self._txn_state = "Ready"
        self._serve()

    def abort_transaction(self, timeout: float | None = -1) -> None:
        """Abort: nothing of the transaction becomes visible; its messages' delivery reports
        fail with ``_PURGE_QUEUE``."""
        self._check_open()
        self._txn_check("InTransaction", "AbortableError")
        self._drop_transaction(kafka_error(ERR_PURGE_QUEUE, describe(ERR_PURGE_QUEUE)))
        self._txn_state = "Ready"
        self._serve()

    def _drop_transaction(self, error: KafkaError) -> None:
        txn, msgs = self._txn, self._txn_msgs
        self._txn, self._txn_msgs = None, []
        if txn is not None:
            txn._discard()
        for report in msgs:
            report.error = error
            report.offset = OFFSET_INVALID
            self._queue_report(report)

    # -- lifecycle --------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Producer has been closed")
        if self._log.closed:
            raise RuntimeError("Producer has been closed (its log was closed)")

    def close(self) -> bool:
        """Flush (serving delivery reports) and release the producer; ``True`` when done."""
        if self._closed:
            return True
        if self._log.closed:  # nothing can be written any more
            self._closed = True
            return True
        try:
            self.flush()
            if self._txn is not None:
                self._drop_transaction(kafka_error(ERR_PURGE_QUEUE, describe(ERR_PURGE_QUEUE)))
                self._serve()
        finally:
            self._closed = True
            self._inner.close()
        return True

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<embedlog.compat.confluent_kafka.Producer {self._cluster.name!r}>"
