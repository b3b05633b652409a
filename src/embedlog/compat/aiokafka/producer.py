"""aiokafka's ``AIOKafkaProducer`` over an embedded log.

``await send(...)`` buffers the record and returns an ``asyncio.Future`` of its
``RecordMetadata``; the record is written by embedlog's background writer (after
``linger_ms``, aiokafka's default 0: at once) and the future is resolved on the event
loop.  ``flush`` and ``stop`` wait for the disk in a worker thread, so the event loop is
never blocked on an fsync.  Keys are placed with Java's murmur2 (aiokafka's
``DefaultPartitioner``); records without a key go to a random partition each.

``create_batch()`` gives a ``BatchBuilder`` that ``send_batch(batch, topic,
partition=...)`` writes at once, at consecutive offsets (embedlog writes it in one
transaction; its batches carry the transactional flag, which no client sees).

With ``transactional_id``, ``start()`` takes the id (fencing older producers with it on
the same log, in any process) and the transactional API maps onto
``log.transaction()``: ``begin_transaction``, ``send_offsets_to_transaction``,
``commit_transaction``, ``abort_transaction`` and ``async with producer.transaction():``.
Where it differs from aiokafka: embedlog writes a transaction's records when it
commits, so their offsets are not known before; ``send``/``send_and_wait`` inside a
transaction return metadata with ``offset=-1`` as soon as the record is validated and
buffered (``send_and_wait`` in a transaction, common in aiokafka code, thus never
waits for the commit), and they stay successful if the transaction is aborted — as
aiokafka's, whose records were written before the abort.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from ... import errors as el_errors
from ...model import RecordMetadata as ElRecordMetadata
from ...model import TopicPartition
from ...producer import Producer
from ...transactions import Transaction
from .. import _kafka_common as _common
from .._fencing import Epoch
from .._record_size import headers_size, varint_size
from . import errors as Errors
from .structs import RecordMetadata

__all__ = ["AIOKafkaProducer", "BatchBuilder", "TransactionContext"]

_MISSING: Any = object()


def _checked_headers(headers: Any) -> list[tuple[str, bytes]]:
    """``headers`` as aiokafka's record builder takes them: a list of (str, bytes) pairs
    (its TypeErrors for a tuple or a str value, not embedlog's coercion)."""
    if not headers:
        return []
    if not isinstance(headers, list):
        raise TypeError(f"Headers must be a list of (key, value) tuples, expected list, got {type(headers).__name__}")
    for pair in headers:
        value = pair[1] if isinstance(pair, tuple) and len(pair) == 2 else pair
        if value is not None and not isinstance(value, bytes):
            raise TypeError(f"Expected bytes, got {type(value).__name__}")
    return list(headers)


def _aiokafka_version() -> str:
    """The installed aiokafka's version (its clients' default ``client_id`` carries it),
    else the one this shim follows."""
    try:
        return importlib.metadata.version("aiokafka")
    except importlib.metadata.PackageNotFoundError:
        return "0.14.0"


#: aiokafka's default ``client_id`` of consumers and admin clients: ``"aiokafka-" + __version__``
DEFAULT_CLIENT_ID = "aiokafka-" + _aiokafka_version()
_CODECS = ("gzip", "snappy", "lz4", "zstd", None)


def _check_embedlog_kwargs(kwargs: dict[str, Any], cls: str) -> dict[str, Any]:
    for key in kwargs:
        if key not in _common.EMBEDLOG_KWARGS:
            raise TypeError(f"{cls}.__init__() got an unexpected keyword argument {key!r}")
    return _common.split_embedlog(dict(kwargs))


_SASL_MECHANISMS = ("PLAIN", "GSSAPI", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


def _check_security(security_protocol: Any, ssl_context: Any, sasl_mechanism: Any,
                    sasl_plain_username: Any, sasl_plain_password: Any) -> None:
    """The checks (and messages) of ``aiokafka.client.AIOKafkaClient.__init__``, which
    every aiokafka client runs in its constructor."""
    if security_protocol not in ("SSL", "PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError("`security_protocol` should be SSL or PLAINTEXT")
    if security_protocol in ("SSL", "SASL_SSL") and ssl_context is None:
        raise ValueError("`ssl_context` is mandatory if security_protocol=='SSL'")
    if security_protocol in ("SASL_SSL", "SASL_PLAINTEXT"):
        if sasl_mechanism not in _SASL_MECHANISMS:
            raise ValueError("only `PLAIN`, `GSSAPI`, `SCRAM-SHA-256`, `SCRAM-SHA-512` and `OAUTHBEARER`"
                             "sasl_mechanism are supported at the moment")
        if sasl_mechanism == "PLAIN" and (sasl_plain_username is None or sasl_plain_password is None):
            raise ValueError("sasl_plain_username and sasl_plain_password required for PLAIN sasl")


class _BatchRecordMetadata:
    """What ``BatchBuilder.append`` returns: the record's offset in the batch, its size."""

    __slots__ = ("offset", "size", "timestamp")

    def __init__(self, offset: int, size: int, timestamp: int) -> None:
        self.offset = offset
        self.size = size
        self.timestamp = timestamp

    @property
    def crc(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"DefaultRecordMetadata(offset={self.offset!r}, size={self.size!r}, timestamp={self.timestamp!r})"


class BatchBuilder:
    """aiokafka's ``BatchBuilder``: records for one ``send_batch``, up to ``max_batch_size``
    bytes as Kafka's v2 record batch counts them (the first record always fits)."""

    _HEADER = 61  # a v2 record batch's header

    def __init__(self, batch_size: int, *, key_serializer: Callable[[Any], Any] | None = None,
                 value_serializer: Callable[[Any], Any] | None = None) -> None:
        self._batch_size = batch_size
        self._key_serializer = key_serializer
        self._value_serializer = value_serializer
        self._records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]] = []
        self._size = self._HEADER
        self._first_ts: int | None = None
        self._closed = False

    def append(self, *, timestamp: int | None, key: Any, value: Any,
               headers: Sequence[tuple[str, bytes | None]] | None = None) -> _BatchRecordMetadata | None:
        """Add a record (``timestamp`` in ms, ``None``: now); ``None`` when the batch is
        full or closed."""
        if self._closed:
            return None
        key_bytes = self._key_serializer(key) if self._key_serializer is not None else key
        value_bytes = self._value_serializer(value) if self._value_serializer is not None else value
        if timestamp is None:
            timestamp = int(time.time() * 1000)
        elif type(timestamp) is not int:
            raise TypeError(timestamp)
        for what, data in (("key", key_bytes), ("value", value_bytes)):
            if data is not None and type(data) not in (bytes, bytearray, memoryview):
                raise TypeError(f"Not supported type for {what}: {type(data)}")
        hdrs = list(headers or [])
        offset = len(self._records)
        delta = 0 if self._first_ts is None else timestamp - self._first_ts
        body = 1 + varint_size(delta) + varint_size(offset) + varint_size(len(hdrs)) + headers_size(hdrs)
        for data in (key_bytes, value_bytes):
            body += 1 if data is None else varint_size(len(data)) + len(data)
        required = body + varint_size(body)
        if self._records and self._size + required > self._batch_size:
            self.close()
            return None
        if self._first_ts is None:
            self._first_ts = timestamp
        self._size += required
        self._records.append((None if key_bytes is None else bytes(key_bytes),
                              None if value_bytes is None else bytes(value_bytes), hdrs, timestamp))
        return _BatchRecordMetadata(offset, required, timestamp)

    def close(self) -> None:
        """No more records (``send_batch`` closes it too); cannot be reopened."""
        self._closed = True

    def size(self) -> int:
        """The batch's size in bytes."""
        return self._size

    def record_count(self) -> int:
        """The number of records in the batch."""
        return len(self._records)

    def closed(self) -> bool:
        """Whether the batch is closed."""
        return self._closed


class TransactionContext:
    """``async with producer.transaction():`` — commit at the end, abort on an exception."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def __aenter__(self) -> TransactionContext:
        await self._producer.begin_transaction()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            if self._producer._txn_state == "FATAL_ERROR":  # fenced: nothing to abort, the error goes on
                return
            await self._producer.abort_transaction()
        else:
            await self._producer.commit_transaction()


class AIOKafkaProducer:
    """aiokafka's ``AIOKafkaProducer`` over the embedded log its ``bootstrap_servers``
    names (see ``embedlog.compat.registry``).  Create it inside a running event loop."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None, bootstrap_servers: Any = "localhost",
                 client_id: str | None = None, metadata_max_age_ms: int = 300000, request_timeout_ms: int = 40000,
                 api_version: Any = None, acks: Any = _MISSING, key_serializer: Callable[[Any], Any] | None = None,
                 value_serializer: Callable[[Any], Any] | None = None, compression_type: str | None = None,
                 max_batch_size: int = 16384, partitioner: Any = None, max_request_size: int = 1048576,
                 linger_ms: int = 0, retry_backoff_ms: int = 100, security_protocol: str = "PLAINTEXT",
                 ssl_context: Any = None, connections_max_idle_ms: int = 540000, enable_idempotence: bool = False,
                 transactional_id: str | None = None, transaction_timeout_ms: int = 60000,
                 sasl_mechanism: str = "PLAIN", sasl_plain_password: str | None = None,
                 sasl_plain_username: str | None = None, sasl_kerberos_service_name: str = "kafka",
                 sasl_kerberos_domain_name: str | None = None, sasl_oauth_token_provider: Any = None,
                 **embedlog_options: Any) -> None:
        embedlog_config = _check_embedlog_kwargs(embedlog_options, "AIOKafkaProducer")
        self._loop = loop or asyncio.get_running_loop()  # like aiokafka: RuntimeError outside a loop
        if acks not in (0, 1, -1, "all", _MISSING):
            raise ValueError("Invalid ACKS parameter")
        if compression_type not in _CODECS:
            raise ValueError("Invalid compression type!")
        if transactional_id is not None:
            enable_idempotence = True
        if enable_idempotence:
            if acks is _MISSING:
                acks = -1
            elif acks not in ("all", -1):
                raise ValueError(f"acks={acks} not supported if enable_idempotence=True")
        _check_security(security_protocol, ssl_context, sasl_mechanism, sasl_plain_username, sasl_plain_password)
        self._acks = 1 if acks is _MISSING else (-1 if acks == "all" else acks)
        self.client_id = client_id or "aiokafka-producer"
        self._bootstrap_servers = bootstrap_servers
        self._transaction_timeout_ms = transaction_timeout_ms
        self._embedlog_config = embedlog_config
        self._key_serializer = key_serializer
        self._value_serializer = value_serializer
        self._compression = "zstd" if compression_type == "zstd" else None
        self._partitioner = partitioner
        self._max_batch_size = max_batch_size
        self._max_request_size = max_request_size
        self._linger_ms = linger_ms
        self._request_timeout_ms = request_timeout_ms
        self._producer: Producer | None = None
        self._topics: _common.Topics | None = None
        self._closed = False
        # deliveries from the writer thread, resolved on the loop in one call per burst
        self._done: list[tuple[asyncio.Future[RecordMetadata], el_errors.EmbedlogError | None,
                               ElRecordMetadata | None]] = []
        self._done_lock = threading.Lock()
        # transactions (aiokafka's TransactionState names)
        self._txn_id = transactional_id
        self._txn_state = "UNINITIALIZED"
        self._txn: Transaction | None = None
        self._txn_error: BaseException | None = None
        self._epoch: Epoch | None = None

    async def start(self) -> None:
        """Find the embedded log (nothing to connect to); a transactional producer takes
        its id here, fencing older producers with it."""
        if self._producer is not None:
            return
        cluster = _common.cluster_for(self._bootstrap_servers, self._embedlog_config)
        self._log = cluster.log
        self._topics = _common.Topics(cluster)
        # keys: Java's murmur2 (embedlog's, cached per key); null keys: a random partition per
        # record, chosen in send() as aiokafka's DefaultPartitioner does
        self._producer = cluster.log.producer(
            compression=self._compression, linger_ms=self._linger_ms, acks="all" if self._acks == -1 else "leader",
            partitioner="murmur2")
        if self._txn_id is not None:
            self._epoch = Epoch(cluster.log, self._txn_id, self._transaction_timeout_ms)
            self._epoch.claim()
            self._txn_state = "READY"

    def _started(self) -> tuple[Producer, _common.Topics]:
        if self._closed:
            raise Errors.ProducerClosed()
        if self._producer is None or self._topics is None:
            raise Errors.IllegalOperation("the producer is not started: await producer.start() first")
        return self._producer, self._topics

    def _check_topic(self, topics: _common.Topics, topic: str) -> None:
        try:
            exists = topic in topics.known or topics.ensure(topic)
        except el_errors.InvalidTopicError as exc:
            raise Errors.InvalidTopicError(str(exc)) from exc
        if not exists:
            raise Errors.UnknownTopicOrPartitionError(f"topic {topic!r} does not exist and auto-creation is off")

    def _check_sendable(self) -> None:
        if self._txn_id is not None:
            self._check_fenced()
            if self._txn_state != "IN_TRANSACTION":
                raise Errors.IllegalOperation("Can't send messages while not in transaction")

    async def send(self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
                   timestamp_ms: float | None = None, headers: list[tuple[str, bytes]] | None = None,
                   ) -> asyncio.Future[RecordMetadata]:
        """Buffer a record; return a future of its ``RecordMetadata`` (await it for the result)."""
        assert not (value is None and key is None), "Need at least one: key or value"
        producer, topics = self._started()
        self._check_topic(topics, topic)
        self._check_sendable()
        if isinstance(timestamp_ms, float):  # (aiokafka's record builder takes time.time() * 1000: whole ms)
            timestamp_ms = int(timestamp_ms)
        hdrs = _checked_headers(headers)
        key_bytes = self._key_serializer(key) if self._key_serializer is not None else key
        value_bytes = self._value_serializer(value) if self._value_serializer is not None else value
        # (as aiokafka counts it: a legacy record's overhead, 22 bytes, and key and value)
        size = 22 + (len(key_bytes) if key_bytes else 0) + (len(value_bytes) if value_bytes else 0)
        if size > self._max_request_size:
            raise Errors.MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the maximum request size you "
                "have configured with the max_request_size configuration")
        if partition is not None:
            assert partition >= 0
            assert partition < topics.partitions(topic, max_age=0), "Unrecognized partition"
        elif self._partitioner is not None:
            n = topics.partitions(topic)
            partition = self._partitioner(key_bytes, list(range(n)), list(range(n)))
        elif key_bytes is None:
            partition = random.randrange(topics.partitions(topic))
        fut: asyncio.Future[RecordMetadata] = self._loop.create_future()
        if self._txn is not None:
            return self._send_transactional(fut, topic, key_bytes, value_bytes, hdrs, partition, timestamp_ms)
        try:
            producer.send(topic, value_bytes, key_bytes, hdrs or None, partition, timestamp_ms,
                          partial(self._delivered, fut))
        except (el_errors.RecordTooLargeError, el_errors.InvalidRecordError) as exc:
            fut.set_exception(_common.translate(exc, Errors, aliases=Errors.ALIASES))
        except el_errors.ClosedError:
            raise Errors.ProducerClosed() from None
        except el_errors.EmbedlogError as exc:
            raise _common.translate(exc, Errors, aliases=Errors.ALIASES) from exc
        return fut

    def _delivered(self, fut: asyncio.Future[RecordMetadata], error: el_errors.EmbedlogError | None,
                   meta: ElRecordMetadata | None) -> None:
        """embedlog's ``on_delivery`` (on the writer thread): queue the result; the first one
        of a burst wakes the loop, which resolves them all (one wake-up, not one per record)."""
        with self._done_lock:
            self._done.append((fut, error, meta))
            if len(self._done) > 1:
                return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._resolve_done)

    def _resolve_done(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
        for fut, error, meta in done:
            if fut.done():
                continue
            if error is not None or meta is None:
                fut.set_exception(_common.translate(error or el_errors.EmbedlogError("not written"), Errors,
                                                    aliases=Errors.ALIASES))
            elif self._acks == 0:  # (aiokafka: a send nobody acknowledges resolves to None)
                fut.set_result(None)  # type: ignore[arg-type]
            else:  # (a LogAppendTime topic: timestamp type 1, the timestamp the log gave it)
                topic, partition = meta.topic, meta.partition
                ts_type = 1 if self._topics is not None and self._topics.log_append_time(topic) else 0
                fut.set_result(RecordMetadata(topic, partition, TopicPartition(topic, partition), meta.offset,
                                              meta.timestamp, ts_type, 0))

    def _send_transactional(self, fut: asyncio.Future[RecordMetadata], topic: str, key: bytes | None,
                            value: bytes | None, headers: list[tuple[str, bytes]], partition: int | None,
                            timestamp_ms: int | None) -> asyncio.Future[RecordMetadata]:
        """Add a record to the open transaction; the future is resolved now, with offset -1."""
        assert self._txn is not None
        assert self._topics is not None
        partition, timestamp_ms = _common.place_now(self._topics, topic, key, partition, timestamp_ms)
        try:
            self._txn.send(topic, value, key=key, headers=headers or None, partition=partition,
                           timestamp_ms=timestamp_ms)
        except (el_errors.RecordTooLargeError, el_errors.InvalidRecordError) as exc:
            fut.set_exception(_common.translate(exc, Errors, aliases=Errors.ALIASES))
            return fut
        except el_errors.EmbedlogError as exc:
            raise _common.translate(exc, Errors, aliases=Errors.ALIASES) from exc
        fut.set_result(RecordMetadata(topic, partition, TopicPartition(topic, partition), -1, timestamp_ms, 0, None))
        return fut

    async def send_and_wait(self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
                            timestamp_ms: int | None = None,
                            headers: list[tuple[str, bytes]] | None = None) -> RecordMetadata:
        """Send a record and wait until it is written."""
        future = await self.send(topic, value, key, partition, timestamp_ms, headers)
        return await future

    # -- batches -----------------------------------------------------------------------------
    def create_batch(self) -> BatchBuilder:
        """An empty ``BatchBuilder`` (with the producer's serializers), for ``send_batch``."""
        return BatchBuilder(self._max_batch_size, key_serializer=self._key_serializer,
                            value_serializer=self._value_serializer)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[RecordMetadata]:
        """Write a batch to one partition at consecutive offsets; return a future of the
        batch's ``RecordMetadata`` (its first offset)."""
        _, topics = self._started()
        self._check_topic(topics, topic)
        assert 0 <= partition < topics.partitions(topic, max_age=0), "Unrecognized partition"
        self._check_sendable()
        batch.close()
        fut: asyncio.Future[RecordMetadata] = self._loop.create_future()
        txn = self._txn if self._txn is not None else self._log.transaction(compression=self._compression)
        first: list[ElRecordMetadata] = []

        def note_first(error: el_errors.EmbedlogError | None, meta: ElRecordMetadata | None) -> None:
            if meta is not None and not first:
                first.append(meta)

        try:
            for i, (key, value, headers, ts) in enumerate(batch._records):
                txn.send(topic, value, key=key, headers=headers or None, partition=partition, timestamp_ms=ts,
                         on_delivery=note_first if i == 0 else None)
        except el_errors.EmbedlogError as exc:
            if txn is not self._txn:
                txn._discard()
            fut.set_exception(_common.translate(exc, Errors, aliases=Errors.ALIASES))
            return fut
        tp = TopicPartition(topic, partition)
        if txn is self._txn:  # written when the transaction commits
            fut.set_result(RecordMetadata(topic, partition, tp, -1, -1, 0, None))
            return fut
        log_append = self._log.describe_topic(topic).config.get("message.timestamp.type") == "LogAppendTime"

        async def write() -> None:
            try:
                await asyncio.to_thread(txn.commit)
            except el_errors.EmbedlogError as exc:
                cause = exc.__cause__ if isinstance(exc.__cause__, el_errors.EmbedlogError) else exc
                if not fut.done():
                    fut.set_exception(_common.translate(cause, Errors, aliases=Errors.ALIASES))
                return
            if not fut.done() and self._acks == 0:
                fut.set_result(None)  # type: ignore[arg-type]  # (aiokafka: a batch nobody acknowledges: None)
            elif not fut.done():
                base = first[0].offset if first else -1
                ts = first[0].timestamp if first and log_append else -1  # (the broker's -1: CreateTime)
                fut.set_result(RecordMetadata(topic, partition, tp, base, ts, 1 if log_append else 0, 0))

        self._loop.create_task(write())
        return fut

    async def flush(self) -> None:
        """Wait until every record sent so far is written (in a worker thread)."""
        producer, _ = self._started()
        with contextlib.suppress(el_errors.EmbedlogError):  # each record's future carries its error
            await asyncio.to_thread(producer.flush)
        self._resolve_done()

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of ``topic`` (created if auto-creation allows)."""
        _, topics = self._started()
        if not topics.ensure(topic):
            raise Errors.UnknownTopicOrPartitionError(f"topic {topic!r} does not exist")
        return set(range(topics.partitions(topic, max_age=0)))

    # -- transactions --------------------------------------------------------------------------
    def _ensure_transactional(self) -> None:
        if self._txn_id is None:
            raise Errors.IllegalOperation("You need to configure transaction_id to use transactions")
        self._started()

    def _check_fenced(self) -> None:
        """Raise ``ProducerFenced`` when a newer producer with this transactional id started."""
        if self._txn_state == "FATAL_ERROR":
            assert self._txn_error is not None
            raise self._txn_error
        if self._epoch is not None and self._epoch.fenced:
            self._drop_transaction()
            self._txn_state = "FATAL_ERROR"
            self._txn_error = Errors.ProducerFenced()
            raise self._txn_error

    def _transition(self, target: str, *allowed: str) -> None:
        if self._txn_state not in allowed:  # aiokafka asserts its state machine
            raise AssertionError(f"Invalid state transition TransactionState.{self._txn_state} -> "
                                 f"TransactionState.{target}")

    async def begin_transaction(self) -> None:
        """Start a transaction: what is sent until commit/abort belongs to it."""
        self._ensure_transactional()
        self._check_fenced()
        self._transition("IN_TRANSACTION", "READY")
        assert self._epoch is not None
        self._txn = self._epoch.bind(self._log.transaction(compression=self._compression))
        self._txn_state = "IN_TRANSACTION"

    async def commit_transaction(self) -> None:
        """Commit: the transaction's records and offsets become visible together (written
        in a worker thread).  Raises ``CommitFailedError`` when offsets were sent for
        partitions their group's member no longer owns; then only abort is possible."""
        self._ensure_transactional()
        self._check_fenced()
        if self._txn_state == "ABORTABLE_ERROR":
            assert self._txn_error is not None
            raise self._txn_error
        self._transition("COMMITTING_TRANSACTION", "IN_TRANSACTION")
        assert self._epoch is not None
        if self._epoch.expired:  # (the coordinator would have aborted it: aiokafka gets ProducerFenced)
            self._drop_transaction()
            self._txn_state = "FATAL_ERROR"
            self._txn_error = Errors.ProducerFenced(self._epoch.expired_message())
            raise self._txn_error
        txn, self._txn = self._txn, None
        assert txn is not None
        self._txn_state = "COMMITTING_TRANSACTION"
        # Shielded, as aiokafka shields its commit: a cancelled caller (a wait_for timeout)
        # leaves the commit to finish and the state to follow it, not stuck in COMMITTING.
        task = asyncio.ensure_future(self._finish_commit(txn))
        # (its error, once nobody awaits it, is in the state: the next call raises it)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(task)

    async def _finish_commit(self, txn: Any) -> None:
        """``commit_transaction``'s commit, in a worker thread, and the state it leaves."""
        try:
            await asyncio.to_thread(txn.commit)
        except el_errors.EmbedlogError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, el_errors.EmbedlogError) else exc
            if isinstance(cause, el_errors.ProducerFencedError):  # (fenced during the commit: a fatal error)
                self._check_fenced()
            error = (Errors.CommitFailedError(str(cause))
                     if isinstance(cause, (el_errors.IllegalGenerationError, el_errors.NotAssignedError))
                     else _common.translate(cause, Errors, aliases=Errors.ALIASES))
            self._txn_state, self._txn_error = "ABORTABLE_ERROR", error
            raise error from exc
        self._txn_state = "READY"

    async def abort_transaction(self) -> None:
        """Abort: nothing sent or committed in the transaction becomes visible."""
        self._ensure_transactional()
        self._check_fenced()
        self._transition("ABORTING_TRANSACTION", "IN_TRANSACTION", "ABORTABLE_ERROR")
        self._drop_transaction()
        self._txn_state, self._txn_error = "READY", None

    def transaction(self) -> TransactionContext:
        """``async with producer.transaction():`` commits at the end, aborts on an exception."""
        return TransactionContext(self)

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, Any], group_id: str) -> None:
        """Commit ``group_id``'s offsets (the *next* offsets to read) with the transaction
        (by group id, as aiokafka sends them: not fenced by a member)."""
        self._ensure_transactional()
        self._check_fenced()
        if self._txn_state != "IN_TRANSACTION" or self._txn is None:
            raise Errors.IllegalOperation("Not in the middle of a transaction")
        if not group_id or not isinstance(group_id, str):
            raise ValueError(group_id)
        if not offsets or not isinstance(offsets, dict):
            raise ValueError(offsets)
        todo: dict[TopicPartition, Any] = {}
        for tp, value in offsets.items():
            if not (isinstance(tp, tuple) and len(tp) == 2 and isinstance(tp[0], str) and isinstance(tp[1], int)):
                raise TypeError("Key should be TopicPartition instance")
            if isinstance(value, int):
                offset, metadata = value, ""
            else:
                try:
                    offset, metadata = value
                except Exception as exc:  # aiokafka's own check: any unpacking failure
                    raise ValueError(offsets) from exc
                if not isinstance(metadata, str):
                    raise TypeError("Metadata should be a string")
            todo[TopicPartition(*tp)] = (offset, metadata) if metadata else offset
        try:
            self._txn._commit_offsets_unfenced(group_id, todo)
        except el_errors.EmbedlogError as exc:
            raise _common.translate(exc, Errors, aliases=Errors.ALIASES) from exc

    def _drop_transaction(self) -> None:
        txn, self._txn = self._txn, None
        if txn is not None:
            txn._discard()

    # -- lifecycle ------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Write what is buffered and release the producer (an open transaction is aborted;
        idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._drop_transaction()
        producer = self._producer
        if producer is not None:
            await asyncio.to_thread(producer.close)
            self._resolve_done()  # the last delivery callbacks

    async def __aenter__(self) -> AIOKafkaProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
