"""kafka-python's ``KafkaProducer`` over an embedded log.

``send`` returns a ``FutureRecordMetadata`` resolved when the record is written: after
``linger_ms`` (kafka-python's default 0: at once, from a background thread), at
``flush()``, or at ``close()``.  Keys are placed with Java's murmur2, as kafka-python's
``DefaultPartitioner`` does; records without a key go to a random partition each.
Thread-safe.
"""

from __future__ import annotations

import itertools
import threading
import warnings
from collections.abc import Callable
from typing import Any

from ... import errors as el_errors
from ...model import RecordMetadata as ElRecordMetadata
from ...model import TopicPartition
from ...producer import Producer
from . import _common
from . import errors as Errors
from .structs import RecordMetadata

__all__ = ["FutureRecordMetadata", "KafkaProducer"]

_FOREVER = float("inf")

#: kafka-python 3.0's producer configs (values are the defaults the shim honours)
DEFAULT_CONFIG: dict[str, Any] = {
    "bootstrap_servers": "localhost", "client_id": None, "key_serializer": None, "value_serializer": None,
    "enable_idempotence": True, "transactional_id": None, "transaction_timeout_ms": 60000,
    "delivery_timeout_ms": 120000, "acks": -1, "compression_type": None, "retries": _FOREVER,
    "batch_size": 16384, "linger_ms": 0, "partitioner": None, "connections_max_idle_ms": 540000,
    "max_block_ms": 60000, "max_request_size": 1048576, "allow_auto_create_topics": True,
    "metadata_max_age_ms": 300000, "client_dns_lookup": "use_all_dns_ips", "retry_backoff_ms": 100,
    "request_timeout_ms": 30000, "receive_message_max_bytes": 100_000_000, "receive_buffer_bytes": None,
    "send_buffer_bytes": None, "socket_options": None, "reconnect_backoff_ms": 50,
    "reconnect_backoff_max_ms": 30000, "max_in_flight_requests_per_connection": 5,
    "security_protocol": "PLAINTEXT", "ssl_context": None, "ssl_check_hostname": True, "ssl_cafile": None,
    "ssl_certfile": None, "ssl_keyfile": None, "ssl_crlfile": None, "ssl_password": None, "ssl_ciphers": None,
    "api_version": None, "bootstrap_timeout_ms": 30000, "metric_reporters": [], "metrics_enabled": True,
    "metrics_num_samples": 2, "metrics_sample_window_ms": 30000, "selector": None, "sasl_mechanism": None,
    "sasl_plain_username": None, "sasl_plain_password": None, "sasl_kerberos_name": None,
    "sasl_kerberos_service_name": "kafka", "sasl_kerberos_domain_name": None, "sasl_oauth_token_provider": None,
    "proxy_url": None, "socks5_proxy": None, "kafka_client": None,
    "api_version_auto_timeout_ms": 2000,  # kafka-python 2.0
}
_ACKS = {0: "leader", 1: "leader", -1: "all", "all": "all"}
_CODECS = ("gzip", "snappy", "lz4", "zstd", None)
_CLIENT_IDS = itertools.count(1)


class FutureRecordMetadata:
    """kafka-python's future of a sent record: ``get(timeout)``, callbacks, state."""

    def __init__(self, key_size: int, value_size: int, header_size: int) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._sizes = (key_size, value_size, header_size)
        self.value: RecordMetadata | None = None
        self.exception: BaseException | None = None
        self.is_done = False
        self._callbacks: list[Callable[[Any], Any]] = []
        self._errbacks: list[Callable[[Any], Any]] = []

    # -- completion (called from the writing thread) ---------------------------------------
    def _deliver(self, error: el_errors.EmbedlogError | None, meta: ElRecordMetadata | None) -> None:
        if error is not None or meta is None:
            self.failure(_common.translate(error or el_errors.EmbedlogError("not written"), Errors))
        else:
            tp = TopicPartition(meta.topic, meta.partition)
            self.success(RecordMetadata(meta.topic, meta.partition, tp, meta.offset, meta.timestamp, None,
                                        *self._sizes))

    def success(self, value: RecordMetadata) -> FutureRecordMetadata:
        with self._lock:
            self.value = value
            self.is_done = True
            callbacks = list(self._callbacks)
        self._event.set()
        for cb in callbacks:
            cb(value)
        return self

    def failure(self, exc: BaseException) -> FutureRecordMetadata:
        with self._lock:
            self.exception = exc
            self.is_done = True
            errbacks = list(self._errbacks)
        self._event.set()
        for eb in errbacks:
            eb(exc)
        return self

    # -- kafka.future.Future's API -----------------------------------------------------------
    def succeeded(self) -> bool:
        return self.is_done and self.exception is None

    def failed(self) -> bool:
        return self.is_done and self.exception is not None

    def retriable(self) -> bool:
        return bool(getattr(self.exception, "retriable", False))

    def add_callback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> FutureRecordMetadata:
        """Call ``f(*args, metadata, **kwargs)`` on success (now, if already done)."""
        def cb(value: Any) -> Any:
            return f(*args, value, **kwargs)

        with self._lock:
            if not self.is_done:
                self._callbacks.append(cb)
                return self
        if self.exception is None:
            cb(self.value)
        return self

    def add_errback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> FutureRecordMetadata:
        """Call ``f(*args, exception, **kwargs)`` on failure (now, if already failed)."""
        def eb(exc: Any) -> Any:
            return f(*args, exc, **kwargs)

        with self._lock:
            if not self.is_done:
                self._errbacks.append(eb)
                return self
        if self.exception is not None:
            eb(self.exception)
        return self

    def add_both(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> FutureRecordMetadata:
        self.add_callback(f, *args, **kwargs)
        return self.add_errback(f, *args, **kwargs)

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """The record's ``RecordMetadata``; raises its error, or ``KafkaTimeoutError``."""
        if not self._event.wait(timeout):
            raise Errors.KafkaTimeoutError(f"Timeout after waiting for {timeout} secs.")
        if self.exception is not None:
            raise self.exception
        assert self.value is not None
        return self.value


class KafkaProducer:
    """kafka-python's ``KafkaProducer(**configs)`` over the embedded log its
    ``bootstrap_servers`` names (see ``embedlog.compat.registry``)."""

    DEFAULT_CONFIG = DEFAULT_CONFIG

    def __init__(self, **configs: Any) -> None:
        embedlog_config = _common.split_embedlog(configs)
        unknown = set(configs) - set(DEFAULT_CONFIG)
        if unknown:
            raise ValueError(f"Unrecognized configs: { {k: configs[k] for k in sorted(unknown)} }")
        self.config = {**DEFAULT_CONFIG, **configs}
        cfg = self.config
        if cfg["client_id"] is None:
            cfg["client_id"] = f"kafka-python-producer-{next(_CLIENT_IDS)}"
        if cfg["acks"] not in _ACKS:
            raise Errors.KafkaConfigurationError(f"Invalid acks config: {cfg['acks']!r} (use 0, 1, -1 or 'all')")
        if cfg["compression_type"] not in _CODECS:
            raise ValueError(f"Not supported codec: {cfg['compression_type']}")
        if cfg["transactional_id"] is not None:
            raise Errors.UnsupportedVersionError(
                "transactions are not supported by embedlog's kafka-python shim; use confluent_kafka's "
                "shim or embedlog's log.transaction()")
        for key in ("key_serializer", "value_serializer"):
            fn = cfg[key]
            if fn is not None and not callable(fn) and not hasattr(fn, "serialize"):
                raise TypeError(f"{key} must be callable or a Serializer")
        self._cluster = _common.cluster_for(cfg["bootstrap_servers"], embedlog_config)
        self._topics = _common.Topics(self._cluster, bool(cfg["allow_auto_create_topics"]))
        user_partitioner = cfg["partitioner"]
        self._user_partitioner = user_partitioner
        self._producer: Producer = self._cluster.log.producer(
            compression="zstd" if cfg["compression_type"] == "zstd" else None,
            linger_ms=cfg["linger_ms"], acks=_ACKS[cfg["acks"]],
            partitioner=None if user_partitioner is not None else _common.default_partitioner)
        self._closed = False

    # -- sending ------------------------------------------------------------------------
    def send(self, topic: str, value: Any = None, key: Any = None, headers: list[tuple[str, bytes]] | None = None,
             partition: int | None = None, timestamp_ms: int | None = None) -> FutureRecordMetadata:
        """Send a record; return a future of its ``RecordMetadata`` (see the class docstring)."""
        if self._closed:
            raise Errors.IllegalStateError("KafkaProducer already closed!")
        if value is None and key is None:
            raise ValueError("Need at least one: key or value")
        if headers is None:
            headers = []
        if not isinstance(headers, list):
            raise TypeError("headers must be list-type")
        if not all(isinstance(h, tuple) and len(h) == 2 and isinstance(h[0], str) and isinstance(h[1], bytes)
                   for h in headers):
            raise TypeError("All headers items must be (str, bytes) tuples")
        key_bytes = _common.serialize(self.config["key_serializer"], topic, headers, key)
        value_bytes = _common.serialize(self.config["value_serializer"], topic, headers, value)
        for what, data in (("key", key_bytes), ("value", value_bytes)):
            if type(data) not in (bytes, bytearray, memoryview, type(None)):
                raise TypeError(f"Unsupported type for serialized {what}: {type(data)}")
        key_bytes = bytes(key_bytes) if key_bytes is not None else None
        value_bytes = bytes(value_bytes) if value_bytes is not None else None
        if not isinstance(topic, str) or not self._exists(topic):
            raise Errors.KafkaTimeoutError(
                f"Failed to update metadata after {self.config['max_block_ms'] / 1000:.1f} secs. (topic {topic!r} "
                "does not exist and auto-creation is off: create it first)")
        if partition is not None:
            if partition < 0:
                raise ValueError("partition must be >= 0")
            if partition >= self._topics.partitions(topic, max_age=0):
                raise ValueError(f"Unrecognized partition {partition} for topic {topic}")
        elif self._user_partitioner is not None:
            partition = self._user_partition(topic, key, key_bytes, value, value_bytes)
        size = _common.record_size(key_bytes, value_bytes, headers)
        if size > self.config["max_request_size"]:
            raise Errors.MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the maximum request size you "
                "have configured with the max_request_size configuration")
        future = FutureRecordMetadata(len(key_bytes) if key_bytes is not None else -1,
                                      len(value_bytes) if value_bytes is not None else -1,
                                      _common.header_size(headers))
        try:
            self._producer.send(topic, value_bytes, key=key_bytes, headers=headers or None, partition=partition,
                                timestamp_ms=timestamp_ms, on_delivery=future._deliver)
        except (el_errors.RecordTooLargeError, el_errors.InvalidRecordError) as exc:
            future.failure(_common.translate(exc, Errors))  # the broker's answer, in the future
        except el_errors.ClosedError:
            raise Errors.IllegalStateError("KafkaProducer already closed!") from None
        except el_errors.ConfigError as exc:  # a bad timestamp
            raise ValueError(str(exc)) from exc
        except el_errors.EmbedlogError as exc:
            raise _common.translate(exc, Errors) from exc
        return future

    def _exists(self, topic: str) -> bool:
        try:
            return self._topics.ensure(topic)
        except el_errors.InvalidTopicError as exc:
            raise ValueError(f"Invalid topic name {topic!r}: {exc}") from exc

    def _user_partition(self, topic: str, key: Any, key_bytes: bytes | None, value: Any,
                        value_bytes: bytes | None) -> int:
        """Ask a user's partitioner: a kafka-python 3 ``Partitioner`` object, or the older
        ``partitioner(key_bytes, all_partitions, available_partitions)`` callable."""
        n = self._topics.partitions(topic)
        parts = list(range(n))
        p = self._user_partitioner
        method = getattr(p, "partition", None)
        if method is not None:
            chosen = method(topic, key, key_bytes, value, value_bytes, _ClusterView(topic, n))
        else:
            chosen = p(key_bytes, parts, parts)
        if chosen is None:
            raise ValueError(f"Partitioner did not assign a partition for topic {topic}!")
        if not isinstance(chosen, int) or not 0 <= chosen < n:
            raise ValueError(f"Unrecognized partition {chosen} for topic {topic}")
        return chosen

    def flush(self, timeout: float | None = None) -> None:
        """Write everything sent so far; every future sent before is then done."""
        try:
            self._producer.flush(timeout)
        except el_errors.ClosedError:
            return
        except el_errors.EmbedlogError:
            pass  # the records' futures carry the error, as in kafka-python

    def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of ``topic`` (creating it if auto-creation allows)."""
        if not self._exists(topic):
            raise Errors.KafkaTimeoutError(f"Failed to update metadata after {self.config['max_block_ms'] / 1000:.1f}"
                                           f" secs. (topic {topic!r} does not exist)")
        return set(range(self._topics.partitions(topic, max_age=0)))

    def close(self, timeout: float | None = None, null_logger: bool = False) -> None:
        """Flush and release the producer (idempotent)."""
        if self._closed:
            return
        if timeout is not None and timeout < 0:
            raise ValueError(f"Invalid timeout: {timeout}")
        self._closed = True
        if not self._cluster.log.closed:
            try:
                self._producer.close()
            except el_errors.EmbedlogError as exc:
                warnings.warn(f"closing the producer failed: {exc}", RuntimeWarning, stacklevel=2)

    def metrics(self, raw: bool = False) -> dict[str, Any]:
        """An empty metrics dict (embedlog keeps its own: ``log.metrics()``)."""
        return {}

    def bootstrap_connected(self) -> bool:
        return not self._cluster.log.closed

    def __enter__(self) -> KafkaProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ClusterView:
    """What a kafka-python 3 ``Partitioner.partition`` reads from ``cluster``."""

    def __init__(self, topic: str, partitions: int) -> None:
        self._topic = topic
        self._n = partitions

    def topics(self) -> set[str]:
        return {self._topic}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self._n)) if topic == self._topic else None

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions_for_topic(topic)
