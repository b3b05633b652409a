"""The producer: buffer records per partition, write them in batches.

``send`` does the per-record minimum (type checks, partition choice, one list
append); ``flush`` (or the linger timer) turns each partition's buffer into batches in
one pass (``codec.batch.encode``) and writes them all in one group-committed
transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .codec import batch as codec
from .errors import (
    ClosedError,
    ConfigError,
    EmbedlogError,
    InvalidRecordError,
    RecordTooLargeError,
    SerializationError,
    UnknownPartitionError,
)
from .model import RecordMetadata
from .partitioner import KeyHasher, Partitioner, random_partition, resolve
from .storage.store import AppendItem
from .storage.topics import TopicMeta

if TYPE_CHECKING:
    from .log import Log

__all__ = ["Producer"]

DeliveryCallback = Callable[[EmbedlogError | None, RecordMetadata | None], None]
Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]] | None, int]
_time_ns = time.time_ns
_ACKS = {"leader": "leader", 1: "leader", "1": "leader", "all": "all", -1: "all", "-1": "all"}


class _TopicState:
    """A producer's view of one topic: partition buffers and the sticky partition."""

    __slots__ = ("accs", "callbacks", "compact", "max_bytes", "meta", "n", "name", "sticky")

    def __init__(self, meta: TopicMeta) -> None:
        self.meta = meta
        self.name = meta.name
        self.n = meta.partitions
        self.max_bytes = meta.config.max_message_bytes
        self.compact = meta.config.compact
        self.accs: list[list[Record]] = [[] for _ in range(self.n)]
        self.callbacks: list[list[tuple[int, DeliveryCallback]]] = [[] for _ in range(self.n)]
        self.sticky = random_partition(self.n)


def _coerce(obj: object, what: str) -> bytes:
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise SerializationError(
        f"record {what} must be bytes (or None), got {type(obj).__name__}; encode it first or give the "
        f"producer a {what}_serializer")


def _check_headers(headers: object) -> list[tuple[str, bytes | None]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    try:
        for name, value in items:  # type: ignore[union-attr]
            if not isinstance(name, str):
                raise SerializationError(f"header names must be str, got {type(name).__name__}")
            if value is not None and type(value) is not bytes:
                if isinstance(value, str):
                    value = value.encode()
                else:
                    value = _coerce(value, "header value")
            out.append((name, value))
    except (TypeError, ValueError):
        raise SerializationError("headers must be a list of (str, bytes) pairs or a dict") from None
    return out


class Producer:
    """Writes records to a log's topics. Thread-safe; a context manager.

    Records become *visible* to consumers when their batch is written: at ``flush()``,
    when ``linger_ms`` passes, or when ``buffer_records`` records are waiting.
    ``flush()`` returns once everything sent before it is written and, with the log's
    default ``durability="flush"``, fsynced.
    """

    def __init__(self, log: Log, *, compression: str | None = None, linger_ms: float = 5,
                 batch_size: int = 1 << 20, buffer_records: int = 1_000_000,
                 partitioner: str | Partitioner | None = None,
                 key_serializer: Callable[[Any], bytes] | None = None,
                 value_serializer: Callable[[Any], bytes] | None = None,
                 acks: str | int = "leader", delivery_timeout_ms: int = 120_000) -> None:
        if compression not in codec.COMPRESSIONS:
            raise ConfigError(f"compression must be None or 'zstd', got {compression!r}")
        if acks not in _ACKS:
            raise ConfigError(f"acks must be 'leader' or 'all', got {acks!r}")
        if batch_size <= 0 or buffer_records <= 0 or linger_ms < 0:
            raise ConfigError("batch_size and buffer_records must be positive and linger_ms >= 0")
        self._log = log
        self._compression = codec.COMPRESSIONS[compression]
        self._linger = linger_ms / 1000.0
        self._batch_size = batch_size
        self._buffer_records = buffer_records
        part = resolve(partitioner)
        self._hasher: KeyHasher | None = part if isinstance(part, KeyHasher) else None
        self._custom: Partitioner | None = None if isinstance(part, KeyHasher) else part
        self._key_ser = key_serializer
        self._value_ser = value_serializer
        self.acks = _ACKS[acks]
        self.delivery_timeout_ms = delivery_timeout_ms
        self._topics: dict[str, _TopicState] = {}
        self._topics_version = -1
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending = 0
        self._closed = False
        self._wake = threading.Event()
        self._linger_thread: threading.Thread | None = None
        self._errors: list[EmbedlogError] = []
        log._register(self)

    # -- sending ----------------------------------------------------------------------
    def _state(self, topic: str) -> _TopicState:
        meta = self._log._topic_for_produce(topic)
        with self._lock:
            st = self._topics.get(topic)
            if st is None or st.meta.topic_id != meta.topic_id or st.n != meta.partitions:
                old = st
                st = _TopicState(meta)
                if old is not None:  # keep buffered records of a topic that only grew
                    for p, acc in enumerate(old.accs):
                        if p < st.n:
                            st.accs[p].extend(acc)
                            st.callbacks[p].extend(old.callbacks[p])
                self._topics[topic] = st
            return st

    def send(self, topic: str, value: Any = None, key: Any = None,
             headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None = None,
             partition: int | None = None, timestamp_ms: int | None = None,
             on_delivery: DeliveryCallback | None = None) -> None:
        """Buffer one record for ``topic``.

        ``value=None`` is a tombstone.  The record goes to ``partition`` if given, else
        to the partitioner's choice for ``key`` (Kafka's murmur2 by default), else to the
        topic's sticky partition.  ``on_delivery(error, metadata)`` is called once the
        record is written (or failed).  Raises a typed error for a closed producer, an
        unknown topic or partition, non-bytes data, or a record over
        ``max.message.bytes``.
        """
        if self._closed:
            raise ClosedError("this producer is closed; create a new one with log.producer()")
        st = self._topics.get(topic)
        if st is None:
            st = self._state(topic)
        if self._value_ser is not None:
            value = self._value_ser(value)
        if key is not None and self._key_ser is not None:
            key = self._key_ser(key)
        if value is not None and value.__class__ is not bytes:
            value = _coerce(value, "value")
        if key is not None and key.__class__ is not bytes:
            key = _coerce(key, "key")
        size = (0 if value is None else len(value)) + (0 if key is None else len(key))
        if size > st.max_bytes:
            raise RecordTooLargeError(
                f"record of {size} bytes is larger than max.message.bytes={st.max_bytes} of topic "
                f"{topic!r}; send smaller records or raise the topic's max.message.bytes")
        if key is None and st.compact:
            raise InvalidRecordError(f"topic {topic!r} is compacted: every record needs a key")
        if headers is not None:
            headers = _check_headers(headers) if headers else None
        if timestamp_ms is None:
            timestamp_ms = _time_ns() // 1_000_000
        elif timestamp_ms.__class__ is not int or timestamp_ms < 0:
            raise ConfigError(f"timestamp_ms must be a non-negative int (ms since the epoch), got {timestamp_ms!r}")
        with self._lock:
            if partition is None:
                if self._hasher is not None:
                    hasher = self._hasher
                    if key is None or (hasher.empty_is_null and not key):
                        if hasher.null_key == "sticky":
                            partition = st.sticky
                        elif hasher.null_key == "random":
                            partition = random_partition(st.n)
                        else:
                            partition = hasher.hash(b"") % st.n
                    else:
                        partition = hasher.hash(key) % st.n
                else:
                    partition = self._custom_partition(st, key)
            elif partition.__class__ is not int or not 0 <= partition < st.n:
                raise UnknownPartitionError(
                    f"topic {topic!r} has partitions 0..{st.n - 1}; partition {partition!r} does not exist")
            acc = st.accs[partition]
            if on_delivery is not None:
                st.callbacks[partition].append((len(acc), on_delivery))
            acc.append((key, value, headers, timestamp_ms))  # type: ignore[arg-type]
            self._pending += 1
            pending = self._pending
        if pending == 1 and self._linger >= 0:
            self._start_linger()
        elif pending >= self._buffer_records:
            self._write()

    def _custom_partition(self, st: _TopicState, key: bytes | None) -> int:
        assert self._custom is not None
        p = self._custom(key, st.n)
        if p.__class__ is not int or not 0 <= p < st.n:
            raise UnknownPartitionError(f"the custom partitioner returned {p!r} for topic {st.name!r} "
                                        f"with {st.n} partitions")
        return p

    def _start_linger(self) -> None:
        if self._linger_thread is None:
            self._linger_thread = threading.Thread(target=self._linger_loop, name="embedlog-linger",
                                                   daemon=True)
            self._linger_thread.start()
        self._wake.set()

    def _linger_loop(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            time.sleep(self._linger)
            try:
                self._write()
            except EmbedlogError as exc:
                self._errors.append(exc)
            except Exception as exc:  # noqa: BLE001 - reported at the next flush
                self._errors.append(EmbedlogError(f"background write failed: {exc!r}"))

    # -- writing ----------------------------------------------------------------------
    def _drain(self) -> list[tuple[_TopicState, int, list[Record], list[tuple[int, DeliveryCallback]]]]:
        out = []
        with self._lock:
            for st in self._topics.values():
                for p in range(st.n):
                    acc = st.accs[p]
                    if acc:
                        out.append((st, p, acc, st.callbacks[p]))
                        st.accs[p] = []
                        st.callbacks[p] = []
                if st.n > 1 and any(item[0] is st for item in out):
                    st.sticky = random_partition(st.n, st.sticky)
            self._pending = 0
        return out

    def _encode(self, recs: list[Record]) -> list[tuple[int, int, bytearray]]:
        """Encode one partition's records into batches of at most ~batch_size bytes."""
        keys, values, headers, stamps = zip(*recs)
        if None in values:
            total = sum(len(v) for v in values if v is not None)
        else:
            total = sum(map(len, values))
        n = len(recs)
        per = max(1, min(n, self._batch_size * n // max(1, total))) if total else n
        out = []
        any_headers = any(headers)
        for i in range(0, n, per):
            j = min(n, i + per)
            out.append((i, j, codec.encode(keys[i:j], values[i:j], stamps[i:j],
                                        headers[i:j] if any_headers else None,
                                        compression=self._compression)))
        return out

    def _write(self) -> None:
        with self._flush_lock:
            drained = self._drain()
            if not drained:
                return
            items: list[AppendItem] = []
            spans = []
            for st, p, recs, cbs in drained:
                for start, end, buf in self._encode(recs):
                    items.append(AppendItem(st.name, st.meta.topic_id, p, buf))
                    spans.append((st, start, end, recs, cbs))
            error: EmbedlogError | None = None
            try:
                self._log._committer.append(items)
            except EmbedlogError as exc:
                error = exc
            self._deliver(items, spans, error)
            if error is not None:
                raise error

    @staticmethod
    def _deliver(items: list[AppendItem], spans: list[Any], error: EmbedlogError | None) -> None:
        for item, (st, start, end, recs, cbs) in zip(items, spans):
            for idx, cb in cbs:
                if not start <= idx < end:
                    continue
                if error is not None:
                    cb(error, None)
                else:
                    offset = item.base_offset + idx - start
                    cb(None, RecordMetadata(st.name, item.partition, offset, recs[idx][3]))

    def flush(self, timeout: float | None = None) -> None:
        """Write every record sent so far; durable per the log's durability mode.

        Raises the error of any record that could not be written since the last flush.
        """
        if self._closed:
            raise ClosedError("this producer is closed")
        self._write()
        if self._errors:
            errors, self._errors = self._errors, []
            raise errors[0]

    def __len__(self) -> int:
        """Records buffered and not yet written."""
        return self._pending

    def close(self) -> None:
        """Flush what is buffered and release the producer (idempotent)."""
        if self._closed:
            return
        try:
            if not self._log.closed:
                self._write()
        finally:
            self._closed = True
            self._wake.set()
            self._log._unregister(self)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
