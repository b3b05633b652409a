"""kafka-python's ``KafkaProducer`` over an embedded log.

``send`` returns a ``FutureRecordMetadata`` resolved when the record is written: after
``linger_ms`` (kafka-python's default 0: at once, from a background thread), at
``flush()``, or at ``close()``.  Keys are placed with Java's murmur2, as kafka-python's
``DefaultPartitioner`` does; records without a key go to a random partition each.
Thread-safe.

With ``transactional_id`` the producer has kafka-python's transactional API
(``init_transactions``, ``begin_transaction``, ``send_offsets_to_transaction``,
``commit_transaction``, ``abort_transaction``) over ``log.transaction()``: the records
and offsets of a transaction become visible together when it commits, or never.
Where it differs from kafka-python: embedlog writes a transaction's records when it
commits, so their offsets are not known before; ``send`` inside a transaction returns
a future already resolved with ``offset=-1`` (as for ``acks=0``) once the record is
validated and buffered — like kafka-python's, it stays successful if the transaction
is then aborted.  ``init_transactions`` fences older producers with the same id in
this process (on the same log), not in other processes.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from ... import errors as el_errors
from ...consumer import GroupMetadata
from ...model import RecordMetadata as ElRecordMetadata
from ...model import TopicPartition
from ...producer import Producer
from ...transactions import Transaction
from .. import _kafka_common as _common
from .._fencing import Epoch
from . import errors as Errors
from .structs import RecordMetadata

if TYPE_CHECKING:
    from ...consumer import Consumer

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
    "buffer_memory": 33554432,  # kafka-python 2.0: the bound on buffered record bytes (embedlog's buffer_bytes)
}
_ACKS = {0: "leader", 1: "leader", -1: "all", "all": "all"}
_CODECS = ("gzip", "snappy", "lz4", "zstd", None)
_CLIENT_IDS = itertools.count(1)


_FUTURES_LOCK = threading.Lock()  # guards every future's completion and callback lists (short holds)



_log = logging.getLogger("embedlog.compat.kafka_python")


def _call(fn: Callable[[Any], Any], value: Any) -> None:
    """A future's callback or errback: what it raises is logged, as kafka-python's
    ``Future`` does, and the future's other callbacks still run."""
    try:
        fn(value)
    except Exception:  # noqa: BLE001 - any, logged: the application's callback
        _log.exception("Error processing callback")

class FutureRecordMetadata:
    """kafka-python's future of a sent record: ``get(timeout)``, callbacks, state.

    Cheap to make (one per record): the ``threading.Event`` that ``get`` waits on is
    created only when ``get`` has to wait, and one lock shared by all futures guards
    the state.
    """

    __slots__ = ("_callbacks", "_errbacks", "_event", "_meta", "_sizes", "_value", "exception", "is_done")

    def __init__(self, key_size: int, value_size: int, header_size: int) -> None:
        self._sizes = (key_size, value_size, header_size)
        self._value: RecordMetadata | None = None
        self._meta: ElRecordMetadata | None = None  # embedlog's answer: ``value`` is made from it when read
        self.exception: BaseException | None = None
        self.is_done = False
        self._callbacks: list[Callable[[Any], Any]] | None = None
        self._errbacks: list[Callable[[Any], Any]] | None = None
        self._event: threading.Event | None = None

    @property
    def value(self) -> RecordMetadata | None:
        """The record's ``RecordMetadata`` once written (``None`` before, or on failure)."""
        value, meta = self._value, self._meta
        if value is None and meta is not None:
            topic, partition = meta.topic, meta.partition
            value = self._value = RecordMetadata(topic, partition, TopicPartition(topic, partition), meta.offset,
                                                 meta.timestamp, None, *self._sizes)
        return value

    # -- completion (called from the writing thread) ---------------------------------------
    def _deliver(self, error: el_errors.EmbedlogError | None, meta: ElRecordMetadata | None) -> None:
        """embedlog's ``on_delivery``: one call per record, so as little as possible here."""
        if error is not None or meta is None:
            self.failure(_common.translate(error or el_errors.EmbedlogError("not written"), Errors))
            return
        with _FUTURES_LOCK:
            self._meta = meta
            self.is_done = True
            event, callbacks = self._event, self._callbacks
            self._callbacks = self._errbacks = None
        if event is not None:
            event.set()
        if callbacks:
            value = self.value
            for cb in callbacks:
                _call(cb, value)

    def _complete(self, value: RecordMetadata | None, exc: BaseException | None) -> None:
        with _FUTURES_LOCK:
            self._value = value
            self.exception = exc
            self.is_done = True
            event, callbacks = self._event, (self._callbacks if exc is None else self._errbacks)
            self._callbacks = self._errbacks = None
        if event is not None:
            event.set()
        for cb in callbacks or ():
            _call(cb, value if exc is None else exc)

    def success(self, value: RecordMetadata) -> FutureRecordMetadata:
        self._complete(value, None)
        return self

    def failure(self, exc: BaseException) -> FutureRecordMetadata:
        self._complete(None, exc)
        return self

    # -- kafka.future.Future's API -----------------------------------------------------------
    def succeeded(self) -> bool:
        return self.is_done and self.exception is None

    def failed(self) -> bool:
        return self.is_done and self.exception is not None

    def retriable(self) -> bool:
        return bool(getattr(self.exception, "retriable", False))

    def _add(self, fn: Callable[[Any], Any], on_success: bool) -> None:
        with _FUTURES_LOCK:
            if not self.is_done:
                if on_success:
                    self._callbacks = [*(self._callbacks or ()), fn]
                else:
                    self._errbacks = [*(self._errbacks or ()), fn]
                return
        if (self.exception is None) == on_success:
            _call(fn, self.value if on_success else self.exception)

    def add_callback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> FutureRecordMetadata:
        """Call ``f(*args, metadata, **kwargs)`` on success (now, if already done)."""
        self._add(lambda value: f(*args, value, **kwargs), True)
        return self

    def add_errback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> FutureRecordMetadata:
        """Call ``f(*args, exception, **kwargs)`` on failure (now, if already failed)."""
        self._add(lambda exc: f(*args, exc, **kwargs), False)
        return self

    def add_both(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> FutureRecordMetadata:
        self.add_callback(f, *args, **kwargs)
        return self.add_errback(f, *args, **kwargs)

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """The record's ``RecordMetadata``; raises its error, or ``KafkaTimeoutError``."""
        if not self.is_done:
            with _FUTURES_LOCK:
                event = self._event
                if event is None and not self.is_done:
                    event = self._event = threading.Event()
            if event is not None and not event.wait(timeout):
                raise Errors.KafkaTimeoutError(f"Timeout after waiting for {timeout} secs.")
        if self.exception is not None:
            raise self.exception
        assert self.value is not None
        return self.value


class _Member:
    """A group member's identity, for fencing offsets committed in a transaction (what
    ``Transaction.commit_offsets`` reads from a consumer)."""

    def __init__(self, group: str, member: str) -> None:
        self._metadata = (group, member)

    def group_metadata(self) -> tuple[str, str]:
        return self._metadata


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
        self._txn_id: str | None = cfg["transactional_id"] or None
        _check_idempotence(configs, cfg)
        for key in ("key_serializer", "value_serializer"):
            fn = cfg[key]
            if fn is not None and not callable(fn) and not hasattr(fn, "serialize"):
                raise TypeError(f"{key} must be callable or a Serializer")
        self._cluster = _common.cluster_for(cfg["bootstrap_servers"], embedlog_config)
        self._topics = _common.Topics(self._cluster, bool(cfg["allow_auto_create_topics"]))
        self._user_partitioner = cfg["partitioner"]
        self._compression = "zstd" if cfg["compression_type"] == "zstd" else None
        # keys: Java's murmur2 (embedlog's own, with its per-key cache); null keys: a random
        # partition per record, chosen in send() as kafka-python's DefaultPartitioner does
        self._producer: Producer = self._cluster.log.producer(
            compression=self._compression, linger_ms=cfg["linger_ms"], acks=_ACKS[cfg["acks"]], partitioner="murmur2",
            buffer_bytes=cfg["buffer_memory"])
        self._key_ser = cfg["key_serializer"]
        self._value_ser = cfg["value_serializer"]
        self._max_request_size = int(cfg["max_request_size"])
        self._closed = False
        # transactions (kafka-python's TransactionState names)
        self._txn_state = "UNINITIALIZED"
        self._txn: Transaction | None = None
        self._txn_error: BaseException | None = None
        self._epoch = (Epoch(self._cluster.log, self._txn_id, int(cfg["transaction_timeout_ms"]))
                       if self._txn_id is not None else None)

    # -- sending ------------------------------------------------------------------------
    def send(self, topic: str, value: Any = None, key: Any = None, headers: list[tuple[str, bytes]] | None = None,
             partition: int | None = None, timestamp_ms: int | None = None) -> FutureRecordMetadata:
        """Send a record; return a future of its ``RecordMetadata`` (see the class docstring)."""
        if self._closed:
            raise Errors.IllegalStateError("KafkaProducer already closed!")
        if value is None and key is None:
            raise ValueError("Need at least one: key or value")
        if topic.__class__ is not str:  # (kafka-python's metadata refuses it before anything is sent)
            raise TypeError("All topics must not be None" if topic is None else "All topics must be strings")
        if headers is None:
            headers = []
        elif not isinstance(headers, list):
            raise TypeError("headers must be list-type")
        else:
            for h in headers:  # (a loop, not all(generator): per-record cost)
                if not isinstance(h, tuple) or len(h) != 2 or not isinstance(h[0], str) or not isinstance(h[1], bytes):
                    raise TypeError("All headers items must be (str, bytes) tuples")
        key_bytes = key if self._key_ser is None else _common.serialize(self._key_ser, topic, headers, key)
        value_bytes = value if self._value_ser is None else _common.serialize(self._value_ser, topic, headers, value)
        if key_bytes.__class__ is not bytes and key_bytes is not None:
            key_bytes = _as_bytes(key_bytes, "key")
        if value_bytes.__class__ is not bytes and value_bytes is not None:
            value_bytes = _as_bytes(value_bytes, "value")
        if topic.__class__ is not str or (topic not in self._topics.known and not self._exists(topic)):
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
        elif key_bytes is None:
            partition = random.randrange(self._topics.partitions(topic))
        key_size = len(key_bytes) if key_bytes is not None else -1
        value_size = len(value_bytes) if value_bytes is not None else -1
        header_size = -1
        if headers:
            header_size = 0
            for name, hv in headers:
                header_size += (len(name) if name.isascii() else len(name.encode("utf-8"))) + (
                    len(hv) if hv is not None else 0)
            size = _common.record_size(key_bytes, value_bytes, headers)  # (as kafka-python estimates it)
        elif key_size < 64 and 0 <= value_size < 8192:  # (the same, inline: a per-record cost)
            size = 83 + (1 if key_size < 0 else key_size + 1) + value_size + (1 if value_size < 64 else 2)
        else:
            size = _common.record_size(key_bytes, value_bytes, None)
        if size > self._max_request_size:
            raise Errors.MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the maximum request size you "
                "have configured with the max_request_size configuration")
        future = FutureRecordMetadata(key_size, value_size, header_size)
        if self._txn_id is not None:
            return self._send_transactional(future, topic, key_bytes, value_bytes, headers, partition, timestamp_ms)
        try:
            self._producer.send(topic, value_bytes, key_bytes, headers or None, partition, timestamp_ms,
                                future._deliver)
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
            cluster = _ClusterView(topic, n)
            chosen = method(topic, key, key_bytes, value, value_bytes, cluster)
            new_batch = getattr(p, "on_new_batch", None)
            if key_bytes is None and new_batch is not None and self._opens_batch(topic, chosen):
                # as kafka-python: a null-key record that would open a batch lets a sticky
                # partitioner move on first (KIP-480), and asks again
                new_batch(topic, cluster, chosen)
                chosen = method(topic, key, key_bytes, value, value_bytes, cluster)
        else:
            chosen = p(key_bytes, parts, parts)
        if chosen is None:
            raise ValueError(f"Partitioner did not assign a partition for topic {topic}!")
        if not isinstance(chosen, int) or not 0 <= chosen < n:
            raise ValueError(f"Unrecognized partition {chosen} for topic {topic}")
        return chosen

    def _opens_batch(self, topic: str, partition: object) -> bool:
        """Whether a record for ``partition`` would open a batch (none of its records wait)."""
        st = self._producer._topics.get(topic)
        return not (st is not None and isinstance(partition, int) and 0 <= partition < len(st.accs)
                    and st.accs[partition])

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

    # -- transactions ------------------------------------------------------------------------
    def _send_transactional(self, future: FutureRecordMetadata, topic: str, key: bytes | None, value: bytes | None,
                            headers: list[tuple[str, bytes]], partition: int | None,
                            timestamp_ms: int | None) -> FutureRecordMetadata:
        """Add a record to the open transaction; the future is resolved now, with offset -1
        (the offset is given when the transaction commits)."""
        if self._txn_state == "UNINITIALIZED":
            raise Errors.IllegalStateError("Cannot perform a 'send' before completing a call to init_transactions "
                                           "when transactions are enabled.")
        self._check_fenced()
        if self._txn_error is not None:
            raise Errors.KafkaError("Cannot perform send because at least one previous transactional or idempotent "
                                    "request has failed with errors.", self._txn_error)
        if self._txn_state != "IN_TRANSACTION" or self._txn is None:
            raise Errors.IllegalStateError(f"Cannot call send in state {self._txn_state}")
        # (send() already chose a partition for a null key)
        partition, timestamp_ms = _common.place_now(self._topics, topic, key, partition, timestamp_ms)
        try:
            self._txn.send(topic, value, key=key, headers=headers or None, partition=partition,
                           timestamp_ms=timestamp_ms)
        except (el_errors.RecordTooLargeError, el_errors.InvalidRecordError) as exc:
            return future.failure(_common.translate(exc, Errors))
        except el_errors.ConfigError as exc:  # a bad timestamp
            raise ValueError(str(exc)) from exc
        except el_errors.EmbedlogError as exc:
            raise _common.translate(exc, Errors) from exc
        return future.success(RecordMetadata(topic, partition, TopicPartition(topic, partition), -1, timestamp_ms,
                                             None, *future._sizes))

    def _ensure_transactional(self, what: str) -> None:
        """Raise as kafka-python does for a producer without ``transactional_id``: ``what``
        without idempotence, the transaction manager's complaint with it (the default)."""
        if self._txn_id is None:
            if self.config["enable_idempotence"]:
                raise Errors.IllegalStateError("Transactional method invoked on a non-transactional producer.")
            raise Errors.IllegalStateError(what)
        if self._closed:
            raise Errors.IllegalStateError("KafkaProducer already closed!")
        self._check_fenced()
        if self._txn_error is not None and self._txn_state == "FATAL_ERROR":
            raise Errors.KafkaError("Cannot execute transactional method because we are in an error state: "
                                    f"{self._txn_error}")

    def _check_fenced(self) -> None:
        """Raise ``ProducerFencedError`` (once; ``KafkaError`` after) when a newer producer
        with this transactional id called ``init_transactions``."""
        if self._epoch is None or self._txn_state in ("UNINITIALIZED", "FATAL_ERROR") or not self._epoch.fenced:
            return
        self._drop_transaction()
        self._txn_state = "FATAL_ERROR"
        self._txn_error = Errors.ProducerFencedError(
            f"There is a newer producer with the same transactional_id {self._txn_id!r}: this one is fenced")
        raise self._txn_error

    def _transition(self, target: str, *allowed: str) -> None:
        if self._txn_state not in allowed:
            raise Errors.KafkaError(f"TransactionalId {self._txn_id}: Invalid transition attempted from state "
                                    f"{self._txn_state} to state {target}")

    def init_transactions(self) -> None:
        """Take the ``transactional_id``: older producers with it (in any process on this
        log directory) are fenced.  Called again after success, it does nothing."""
        self._ensure_transactional("Cannot call init_transactions without setting a transactional_id.")
        if self._txn_state != "UNINITIALIZED":
            return
        assert self._epoch is not None
        self._epoch.claim()
        self._txn_state = "READY"

    def begin_transaction(self) -> None:
        """Start a transaction: what is sent until commit/abort belongs to it."""
        self._ensure_transactional("Cannot use transactional methods without enabling transactions")
        if self._txn_error is not None:
            raise Errors.KafkaError("Cannot execute transactional method because we are in an error state: "
                                    f"{self._txn_error}")
        self._transition("IN_TRANSACTION", "READY")
        assert self._epoch is not None
        self._txn = self._epoch.bind(self._cluster.log.transaction(compression=self._compression))
        self._txn_state = "IN_TRANSACTION"

    def send_offsets_to_transaction(self, offsets: Mapping[Any, Any], group_metadata: Any) -> None:
        """Commit a consumer group's offsets (the *next* offsets to read) with the
        transaction.  ``group_metadata`` is ``consumer.group_metadata()`` (the member's
        offsets are fenced: refused at commit if it no longer owns the partitions) or a
        group id ``str`` (not fenced)."""
        if self._txn_id is None and not self.config["enable_idempotence"]:
            self._ensure_transactional("Cannot use transactional methods without enabling transactions")
        target = _offsets_target(group_metadata)
        self._ensure_transactional("Cannot use transactional methods without enabling transactions")
        if self._txn_error is not None:
            raise Errors.KafkaError("Cannot execute transactional method because we are in an error state: "
                                    f"{self._txn_error}")
        if self._txn_state != "IN_TRANSACTION" or self._txn is None:
            raise Errors.KafkaError("Cannot send offsets to transaction because the producer is not in an active "
                                    "transaction")
        todo: dict[TopicPartition, Any] = {}
        for tp, value in offsets.items():
            off = getattr(value, "offset", value)
            if not isinstance(off, int):
                raise TypeError(f"offset for {tp} must be an int or OffsetAndMetadata, got {value!r}")
            meta = getattr(value, "metadata", "") or ""
            todo[_common.as_tp(tp)] = (off, meta) if meta else off
        try:
            self._txn._commit_offsets_unfenced(target, todo)
        except el_errors.EmbedlogError as exc:
            raise _common.translate(exc, Errors) from exc

    def commit_transaction(self) -> None:
        """Commit: the transaction's records and offsets become visible together.

        Raises ``CommitFailedError`` when offsets were sent for partitions the consumer
        no longer owns (nothing of the transaction is written; ``abort_transaction`` then).
        """
        self._ensure_transactional("Cannot commit transaction since transactions are not enabled")
        if self._txn_error is not None:
            raise Errors.KafkaError("Cannot execute transactional method because we are in an error state: "
                                    f"{self._txn_error}")
        self._transition("COMMITTING_TRANSACTION", "IN_TRANSACTION")
        assert self._epoch is not None
        if self._epoch.expired:  # (the coordinator would have aborted it)
            self._drop_transaction()
            self._txn_state = "ABORTABLE_ERROR"
            self._txn_error = Errors.InvalidProducerEpochError(self._epoch.expired_message())
            raise self._txn_error
        txn, self._txn = self._txn, None
        assert txn is not None
        try:
            txn.commit()
        except el_errors.EmbedlogError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, el_errors.EmbedlogError) else exc
            if isinstance(cause, el_errors.ProducerFencedError):  # (fenced during the commit: a fatal error)
                self._txn_state = "IN_TRANSACTION"  # (so that _check_fenced takes it to FATAL_ERROR)
                self._check_fenced()
            error = (Errors.CommitFailedError(str(cause))
                     if isinstance(cause, (el_errors.IllegalGenerationError, el_errors.NotAssignedError))
                     else _common.translate(cause, Errors))
            self._txn_state, self._txn_error = "ABORTABLE_ERROR", error
            raise error from exc
        self._txn_state = "READY"

    def abort_transaction(self) -> None:
        """Abort: nothing sent or committed in the transaction becomes visible."""
        self._ensure_transactional("Cannot abort transaction since transactions are not enabled.")
        self._transition("ABORTING_TRANSACTION", "IN_TRANSACTION", "ABORTABLE_ERROR")
        self._drop_transaction()
        self._txn_state, self._txn_error = "READY", None

    def _drop_transaction(self) -> None:
        txn, self._txn = self._txn, None
        if txn is not None:
            txn._discard()

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self, timeout: float | None = None, null_logger: bool = False) -> None:
        """Flush and release the producer (an open transaction is aborted; idempotent)."""
        if self._closed:
            return
        if timeout is not None and timeout < 0:
            raise ValueError(f"Invalid timeout: {timeout}")
        self._closed = True
        self._drop_transaction()
        if not self._cluster.log.closed:
            try:
                self._producer.close()
            except el_errors.EmbedlogError as exc:
                warnings.warn(f"closing the producer failed: {exc}", RuntimeWarning, stacklevel=2)
        _common.close_each(self._key_ser, self._value_ser)  # (as kafka-python's close does)

    def metrics(self, raw: bool = False) -> dict[str, Any]:
        """An empty metrics dict (embedlog keeps its own: ``log.metrics()``)."""
        return {}

    def bootstrap_connected(self) -> bool:
        return not self._cluster.log.closed

    def __enter__(self) -> KafkaProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_bytes(data: Any, what: str) -> bytes:
    """Serialized data as ``bytes`` (``bytearray``/``memoryview`` copied); other types refused."""
    if type(data) not in (bytearray, memoryview):
        raise TypeError(f"Unsupported type for serialized {what}: {type(data)}")
    return bytes(data)


def _check_idempotence(user: Mapping[str, Any], cfg: dict[str, Any]) -> None:
    """kafka-python's checks of idempotence against the user's other settings: a
    transactional producer forces it; set explicitly (or by ``transactional_id``), a
    conflicting ``acks``/``retries``/in-flight setting is an error; by default it is
    turned off by one, as kafka-python logs."""
    transactional = bool(cfg["transactional_id"])
    explicit = "enable_idempotence" in user or transactional
    if transactional and "enable_idempotence" in user and not user["enable_idempotence"]:
        raise Errors.KafkaConfigurationError("Cannot set transactional_id without enable_idempotence.")
    if transactional:
        cfg["enable_idempotence"] = True
    if not cfg["enable_idempotence"]:
        return
    conflicts = []
    if "acks" in user and user["acks"] not in (-1, "all"):
        conflicts.append(f"acks={user['acks']!r}")
    if "retries" in user and user["retries"] == 0:
        conflicts.append("retries=0")
    if "max_in_flight_requests_per_connection" in user and user["max_in_flight_requests_per_connection"] > 5:
        conflicts.append(f"max_in_flight_requests_per_connection={user['max_in_flight_requests_per_connection']!r}")
    if conflicts and explicit:
        raise Errors.KafkaConfigurationError(
            f"enable_idempotence=True is incompatible with user-provided {', '.join(conflicts)}")
    if conflicts:
        cfg["enable_idempotence"] = False


def _offsets_target(group_metadata: Any) -> Consumer | GroupMetadata | str:
    """What ``Transaction.commit_offsets`` fences by: the member of a ``ConsumerGroupMetadata``
    (this shim's or kafka-python's), or a bare group id."""
    if isinstance(group_metadata, str):
        return group_metadata
    group_id = getattr(group_metadata, "group_id", None)
    if not isinstance(group_id, str):
        raise TypeError("send_offsets_to_transaction expects group_metadata to be a ConsumerGroupMetadata or a "
                        f"group_id str, got {type(group_metadata)!r}")
    member = getattr(group_metadata, "member_id", "") or ""
    core = getattr(group_metadata, "_core", None)  # (a KafkaConsumer.group_metadata() of this shim's)
    if isinstance(core, GroupMetadata) and member and core.group == group_id and core.member_id == member:
        return core  # fenced by the partitions the member owned when it was made
    if getattr(group_metadata, "generation_id", -1) > 0 and not member:
        raise ValueError(f"Invalid ConsumerGroupMetadata: generation_id={group_metadata.generation_id} implies a "
                         "joined group but member_id is empty")
    return cast("Consumer", _Member(group_id, member)) if member else group_id


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
