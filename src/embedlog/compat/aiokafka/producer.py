"""aiokafka's ``AIOKafkaProducer`` over an embedded log.

``await send(...)`` buffers the record and returns an ``asyncio.Future`` of its
``RecordMetadata``; the record is written by embedlog's background writer (after
``linger_ms``, aiokafka's default 0: at once) and the future is resolved on the event
loop.  ``flush`` and ``stop`` wait for the disk in a worker thread, so the event loop is
never blocked on an fsync.  Keys are placed with Java's murmur2 (aiokafka's
``DefaultPartitioner``); records without a key go to a random partition each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from ... import errors as el_errors
from ...model import RecordMetadata as ElRecordMetadata
from ...model import TopicPartition
from ...producer import Producer
from ..kafka_python import _common
from . import errors as Errors
from .structs import RecordMetadata

__all__ = ["AIOKafkaProducer"]

_MISSING: Any = object()
_CODECS = ("gzip", "snappy", "lz4", "zstd", None)


def _check_embedlog_kwargs(kwargs: dict[str, Any], cls: str) -> dict[str, Any]:
    for key in kwargs:
        if key not in _common.EMBEDLOG_KWARGS:
            raise TypeError(f"{cls}.__init__() got an unexpected keyword argument {key!r}")
    return _common.split_embedlog(dict(kwargs))


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
        if transactional_id is not None:
            raise Errors.UnsupportedVersionError(
                "transactions are not supported by embedlog's aiokafka shim; use embedlog's log.transaction()")
        self._acks = 1 if acks is _MISSING else (-1 if acks == "all" else acks)
        self.client_id = client_id or "aiokafka-producer"
        self._bootstrap_servers = bootstrap_servers
        self._embedlog_config = embedlog_config
        self._key_serializer = key_serializer
        self._value_serializer = value_serializer
        self._compression = "zstd" if compression_type == "zstd" else None
        self._partitioner = partitioner
        self._max_request_size = max_request_size
        self._linger_ms = linger_ms
        self._request_timeout_ms = request_timeout_ms
        self._producer: Producer | None = None
        self._topics: _common.Topics | None = None
        self._closed = False

    async def start(self) -> None:
        """Find the embedded log (nothing to connect to)."""
        if self._producer is not None:
            return
        cluster = _common.cluster_for(self._bootstrap_servers, self._embedlog_config)
        self._topics = _common.Topics(cluster)
        self._producer = cluster.log.producer(
            compression=self._compression, linger_ms=self._linger_ms, acks="all" if self._acks == -1 else "leader",
            partitioner=None if self._partitioner is not None else _common.default_partitioner)

    def _started(self) -> tuple[Producer, _common.Topics]:
        if self._closed:
            raise Errors.ProducerClosed()
        if self._producer is None or self._topics is None:
            raise Errors.IllegalOperation("the producer is not started: await producer.start() first")
        return self._producer, self._topics

    async def send(self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
                   timestamp_ms: int | None = None, headers: list[tuple[str, bytes]] | None = None,
                   ) -> asyncio.Future[RecordMetadata]:
        """Buffer a record; return a future of its ``RecordMetadata`` (await it for the result)."""
        assert not (value is None and key is None), "Need at least one: key or value"
        producer, topics = self._started()
        try:
            exists = topics.ensure(topic)
        except el_errors.InvalidTopicError as exc:
            raise Errors.InvalidTopicError(str(exc)) from exc
        if not exists:
            raise Errors.UnknownTopicOrPartitionError(f"topic {topic!r} does not exist and auto-creation is off")
        headers = list(headers or [])
        key_bytes = self._key_serializer(key) if self._key_serializer is not None else key
        value_bytes = self._value_serializer(value) if self._value_serializer is not None else value
        size = _common.record_size(key_bytes, value_bytes, headers)
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
        fut: asyncio.Future[RecordMetadata] = self._loop.create_future()
        loop = self._loop

        def delivered(error: el_errors.EmbedlogError | None, meta: ElRecordMetadata | None) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, fut, error, meta)

        try:
            producer.send(topic, value_bytes, key=key_bytes, headers=headers or None, partition=partition,
                          timestamp_ms=timestamp_ms, on_delivery=delivered)
        except (el_errors.RecordTooLargeError, el_errors.InvalidRecordError) as exc:
            fut.set_exception(_common.translate(exc, Errors, aliases=Errors.ALIASES))
        except el_errors.ClosedError:
            raise Errors.ProducerClosed() from None
        except el_errors.EmbedlogError as exc:
            raise _common.translate(exc, Errors, aliases=Errors.ALIASES) from exc
        return fut

    async def send_and_wait(self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
                            timestamp_ms: int | None = None,
                            headers: list[tuple[str, bytes]] | None = None) -> RecordMetadata:
        """Send a record and wait until it is written."""
        future = await self.send(topic, value, key, partition, timestamp_ms, headers)
        return await future

    async def flush(self) -> None:
        """Wait until every record sent so far is written (in a worker thread)."""
        producer, _ = self._started()
        with contextlib.suppress(el_errors.EmbedlogError):  # each record's future carries its error
            await asyncio.to_thread(producer.flush)

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of ``topic`` (created if auto-creation allows)."""
        _, topics = self._started()
        if not topics.ensure(topic):
            raise Errors.UnknownTopicOrPartitionError(f"topic {topic!r} does not exist")
        return set(range(topics.partitions(topic, max_age=0)))

    async def stop(self) -> None:
        """Write what is buffered and release the producer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        producer = self._producer
        if producer is not None:
            await asyncio.to_thread(producer.close)
            await asyncio.sleep(0)  # let the last delivery callbacks run

    async def __aenter__(self) -> AIOKafkaProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _resolve(fut: asyncio.Future[RecordMetadata], error: el_errors.EmbedlogError | None,
             meta: ElRecordMetadata | None) -> None:
    if fut.done():
        return
    if error is not None or meta is None:
        fut.set_exception(_common.translate(error or el_errors.EmbedlogError("not written"), Errors,
                                            aliases=Errors.ALIASES))
    else:
        tp = TopicPartition(meta.topic, meta.partition)
        fut.set_result(RecordMetadata(meta.topic, meta.partition, tp, meta.offset, meta.timestamp, 0, 0))
