"""The producer: buffer records per partition, write them in batches.

``send`` does the per-record minimum (type checks, partition choice, one list
append; its fast path and the topic state it buffers into are in ``sendpath``);
``flush`` (or the linger timer) turns each partition's buffer into batches in one pass
(``codec.batch.encode``) and writes them all in one group-committed transaction.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from itertools import repeat
from operator import add as _add
from operator import is_not
from typing import TYPE_CHECKING, Any

from . import _native as native
from .codec import batch as codec
from .config import INT32_MAX, check_int
from .errors import (
    ClosedError,
    ConfigError,
    EmbedlogError,
    InvalidRecordError,
    NotEnoughReplicasError,
    NotLeaderError,
    RecordTooLargeError,
    SerializationError,
    UnknownPartitionError,
    UnknownTopicError,
)
from .errors import TimeoutError as EmbedlogTimeoutError
from .metrics.registry import producer_counters
from .model import RecordMetadata
from .partitioner import KeyHasher, Partitioner, random_partition, resolve
from .sendpath import (
    _BYTES_OR_NONE,
    _INT,
    _NO_DUE,
    _STRIDE,
    DeliveryCallback,
    SendBase,
    _as_set,
    _check_headers,
    _checked_set,
    _coerce,
    _header_bytes,
    _header_sets,
    _HeaderSet,
    _TopicState,
    loosest,
)
from .storage import partition as plog
from .storage import replica, schema
from .storage.store import AppendItem

if TYPE_CHECKING:
    from .log import Log
    from .storage.topics import TopicMeta

__all__ = ["Producer"]

_time_ns = time.time_ns
_new_latch = threading.Lock
_get_ident = threading.get_ident
_monotonic = time.monotonic


#: producers with records buffered since they were idle (``Producer._start_linger``): held
#: here until their linger thread has written everything, so that dropping a producer
#: right after ``send`` loses nothing; idle ones are held by nothing of embedlog's
_LINGERING: dict[int, Producer] = {}
_LINGERING_LOCK = threading.Lock()


def _linger_main(ref: weakref.ref[Producer], wake: threading.Lock) -> None:
    """A producer's linger thread: sleep until a sender wakes it, then write what comes
    due (``Producer._linger_round``); end once the producer is closed or collected.  It
    holds the producer only while working."""
    while True:
        wake.acquire()
        producer = ref()
        if producer is None or producer._closed:
            return
        try:
            producer._linger_round()
        finally:
            del producer


#: every producer of this process (a forked child resets them: ``_after_fork_in_child``)
_PRODUCERS: weakref.WeakSet[Producer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's other threads: their writes under way, and
    the locks they held at the fork, would keep the child's flushes and ``close()``
    waiting for ever.  Those writes are the parent's, and so is every record buffered at
    the fork (the parent writes them: the child writing its copies would store them twice)."""
    global _LINGERING_LOCK  # noqa: PLW0603 - a parent thread may have held it at the fork
    _LINGERING_LOCK = threading.Lock()
    _LINGERING.clear()  # (the producers it held have nothing buffered here)
    for producer in list(_PRODUCERS):
        producer._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _release_quietly(latch: threading.Lock) -> None:
    with contextlib.suppress(RuntimeError):  # (released already)
        latch.release()


def _among(value: object, choices: Mapping[Any, Any]) -> bool:
    """``value in choices``, False for an unhashable value."""
    try:
        return value in choices
    except TypeError:
        return False


def _check_timeout(timeout: object) -> float | None:
    """``flush``/``close``'s timeout: seconds, or None for no limit but
    ``delivery_timeout_ms`` (a negative number too, as confluent-kafka's ``flush(-1)``)."""
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout != timeout:  # noqa: PLR0124
        raise ConfigError(f"timeout must be None (delivery_timeout_ms) or a number of seconds, got {timeout!r}")
    return None if timeout < 0 else timeout


def _serialize(fn: Callable[[Any], Any], obj: Any, what: str) -> Any:
    """Run a serializer; its failure is a ``SerializationError`` (the original as its cause)."""
    try:
        return fn(obj)
    except EmbedlogError:
        raise
    except Exception as exc:
        raise SerializationError(f"the {what} serializer {fn!r} failed on {type(obj).__name__} {obj!r:.100}: "
                                 f"{exc!r}; fix the serializer or the {what} sent") from exc
_KEY_CACHE = 100_000
_MAX_TS = 2**63
#: batch buffers a producer keeps for its next writes (``Producer._recycle``)
_SPARE_BUFFERS = 2
#: a lone batch smaller than this is not kept (its pages cost nothing worth saving)
_RECYCLE_MIN = 1 << 16
#: ``_speedups.take_into`` (a list's items moved to a new one in O(1), which lands in a
#: list of drained buffers in the same step), or None
_take_into: Callable[[list[Any], Any, int, list[Any]], None] | None = (
    None if native.speedups is None else native.speedups.take_into)
_ACKS = {"leader": "leader", 1: "leader", "1": "leader", "all": "all", -1: "all", "-1": "all"}


def _payload_bytes(klens: list[int], vlens: list[int]) -> int:
    """Key and value bytes of records whose lengths are these (-1: a null, 0 bytes)."""
    return sum(klens) + sum(vlens) + klens.count(-1) + vlens.count(-1)


def _too_large(st: _TopicState, size: int) -> RecordTooLargeError:
    return RecordTooLargeError(
        f"record of {size} bytes is larger than max.message.bytes={st.max_bytes} of topic {st.name!r}; "
        "send smaller records or raise the topic's max.message.bytes")


def _as_int(value: object) -> int | None:
    """``value`` as an int if it is of an integer type (not bool), else None."""
    if value.__class__ is int:
        return value
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        return None
    return operator.index(value)


def _checked_timestamp(timestamp_ms: object) -> int:
    """A ``timestamp_ms`` of any integer type (numpy's, say) as an int in range, or
    ``ConfigError``."""
    ts = _as_int(timestamp_ms)
    if ts is None or not 0 <= ts < _MAX_TS:
        raise _bad_timestamp(timestamp_ms)
    return ts


def _bad_timestamp(timestamp_ms: object) -> ConfigError:
    return ConfigError(f"timestamp_ms must be a non-negative int (ms since the epoch), got {timestamp_ms!r}")



def _short_of_replicas(short: tuple[int, int], then: str) -> str:
    """``NotEnoughReplicasError``'s message: the in-sync set's size and the topic's
    ``min.insync.replicas`` (``short``), then what became of the records."""
    return (f"{short[0]} in-sync replica(s) (leader included), fewer than min.insync.replicas={short[1]}"
            + (f": {then}" if then else ""))


def _retrieved(future: Any) -> None:
    """Read a finished future's outcome (so asyncio logs no unread exception)."""
    if not future.cancelled():
        future.exception()


#: ``on`` in a worker thread running a ``flush_async``'s flush (``_await_abandoned``)
_IN_FLIGHT = threading.local()


class _Abandonable:
    """A ``flush_async``'s flush in its worker thread, which a cancel may abandon.
    ``started`` once its job runs; ``claimed`` by a flush that took it over before that."""

    __slots__ = ("abandoned", "claimed", "done", "error", "lock", "started")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.started = False
        self.claimed = False
        self.error: BaseException | None = None
        self.done = threading.Event()


class Producer(SendBase):
    """Writes records to a log's topics. Thread-safe; a context manager.

    Records become *visible* to consumers when their batch is written: at ``flush()``,
    when ``linger_ms`` passes, or when ``buffer_records`` records or ``buffer_bytes``
    bytes of keys and values wait (all partitions together: the bound on what a producer
    holds in memory, like Kafka's buffer.memory; the ``send`` that reaches it writes).
    Records that waited ``linger_ms`` are written by the next ``send`` (in its thread) or,
    once the app stops sending, by the producer's linger thread; a failed background
    write is raised by the next ``flush()``.  ``flush()`` returns once everything sent
    before it is written and, with the log's default ``durability="flush"``, fsynced.

    Options (Kafka's names, Python's spelling):

    - ``compression``: ``None`` or ``"zstd"`` (per batch);
    - ``linger_ms`` (5), ``batch_size`` (1 MiB: the most bytes of one batch),
      ``buffer_records`` (100,000) and ``buffer_bytes`` (32 MiB): when buffered records
      are written, as above;
    - ``partitioner``: ``None`` (``"murmur2_random"``, the Java client's default: keyed
      records by murmur2 of the key, null keys sticky per batch), another of Kafka's
      clients' names (``"murmur2"``, ``"consistent_random"`` — librdkafka's default —,
      ``"consistent"``, ``"fnv1a_random"``, ``"fnv1a"``, ``"random"``), or a callable
      ``(key, partitions) -> partition``;
    - ``key_serializer``, ``value_serializer``: callables turning what ``send`` is given
      into bytes (``None`` stays a null key or a tombstone);
    - ``acks``: ``"leader"`` (the default) or ``"all"`` (with replication: ``flush()``
      waits for the in-sync followers too), and ``delivery_timeout_ms`` (120000), the
      longest such a flush waits.
    """

    def __init__(self, log: Log, *, compression: str | None = None, linger_ms: float = 5,
                 batch_size: int = 1 << 20, buffer_records: int = 100_000, buffer_bytes: int = 32 << 20,
                 partitioner: str | Partitioner | None = None,
                 key_serializer: Callable[[Any], bytes] | None = None,
                 value_serializer: Callable[[Any], bytes] | None = None,
                 acks: str | int = "leader", delivery_timeout_ms: int = 120_000,
                 _transactional: bool = False) -> None:
        if not _among(compression, codec.COMPRESSIONS):
            raise ConfigError(f"compression must be None or 'zstd', got {compression!r}")
        if isinstance(acks, (bool, float)) or not _among(acks, _ACKS):  # (True == 1 and 1.0 == 1 would pass)
            raise ConfigError(f"acks must be 'leader' or 'all', got {acks!r}")
        check_int("batch_size", batch_size)
        check_int("buffer_records", buffer_records, 1, 1 << 40)
        check_int("buffer_bytes", buffer_bytes, 1, 1 << 50)
        check_int("delivery_timeout_ms", delivery_timeout_ms)
        if not isinstance(linger_ms, (int, float)) or isinstance(linger_ms, bool) or not 0 <= linger_ms <= INT32_MAX:
            raise ConfigError(f"linger_ms must be a number from 0 to {INT32_MAX} (milliseconds), got {linger_ms!r}")
        for name, fn in (("key_serializer", key_serializer), ("value_serializer", value_serializer)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name} must be a callable (object -> bytes) or None, got {fn!r}")
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
        self._slow = key_serializer is not None or value_serializer is not None
        #: the topics ``send`` may take its fast path for: ``_topics`` itself, or an empty dict
        #: while every record needs the slow path (serializers, or a closed producer)
        self._fast: dict[str, _TopicState] = {}
        self.acks = _ACKS[acks]
        self.delivery_timeout_ms = delivery_timeout_ms
        #: a topic's state, made once and never replaced nor removed (send's C fast path
        #: keeps the last one it found; ``_fast`` changes by assigning another dict)
        self._topics: dict[str, _TopicState] = {}
        self._last_headers: _HeaderSet = ()  # the last header set ``send`` checked
        self._last_pair: object = None  # the last single header ``send`` checked, and its name
        self._last_name: object = None
        #: set (before buffering it) by the first record with headers or a callback, never
        #: cleared: until then, encoding need not look at those columns
        self._extras = False
        if not self._slow:
            self._fast = self._topics
        self._topics_version = -1
        self._next_metadata_check = 0.0
        self._held_until = 0.0  # (monotonic) background writes wait until then: see _held_back
        log._store.watch_topics(self._topic_changed)  # (other processes' changes: the once-a-second look)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._transactional = _transactional
        # A transaction keeps everything until it commits: no linger, no early writes.
        self._buffer_limit = 1 << 62 if _transactional else _STRIDE * buffer_records
        self._pending = 0  # buffer entries, all partitions, since the last drain
        self._bytes_limit = 1 << 62 if _transactional else buffer_bytes
        self._pending_bytes = 0  # key and value bytes buffered since the last drain
        # Linger: a record buffered at wall ms ``t`` is due at ``t + linger_ms``; the
        # sender that finds buffered records due writes them itself (``_linger_write``).
        # The linger thread only writes for a producer that stopped sending: writing from
        # it while the app sends in a loop was a GIL convoy (each LMDB call of the write
        # waited up to a switch interval for the sender; one write took ~80 ms).
        self._due_ms = _NO_DUE
        self._due_step = -1 if _transactional or linger_ms == 0 else max(1, math.ceil(linger_ms))
        self._idle = not _transactional
        self._closed = False
        self._drained = False  # set (under _lock) once close() wrote the last buffered record
        # The linger thread sleeps on this lock until a sender releases it (a bare lock, not
        # an Event: an interrupt landing inside Event.set's Python code, in the sender's
        # thread, could leave the Event's own lock held and hang every later set and wait)
        self._wake = _new_latch()
        self._wake.acquire()
        self._linger_thread: threading.Thread | None = None
        # (the linger thread holds the producer weakly: one dropped unclosed is collected,
        # and this wakes the thread to end)
        weakref.finalize(self, _release_quietly, self._wake).atexit = False
        self._errors: list[EmbedlogError] = []
        #: exceptions delivery callbacks raised since the last flush (the first is raised by it)
        self._callback_errors: list[Exception] = []
        #: flushes of cancelled ``flush_async`` calls still running (``_await_abandoned``)
        self._abandoned: list[_Abandonable] = []
        #: writes drained and not yet delivered: their latch (held until then) -> (their number,
        #: writer thread id)
        self._inflight: dict[threading.Lock, tuple[int, int]] = {}
        self._writes = 0  # writes registered in _inflight so far (numbers them)
        _PRODUCERS.add(self)
        #: acks="all": (topic id, partition) -> end offset written and not yet known replicated
        self._ack_targets: dict[tuple[int, int], int] = {}
        self._counters = producer_counters(log.path)
        #: batch buffers of finished writes, to encode into again (``_recycle``)
        self._spare: list[bytearray] = []
        log._register(self)

    def _forked(self) -> None:
        """(In a forked child: ``_after_fork_in_child``) Drop the parent's writes under way,
        the locks its threads held, and the records buffered at the fork; no linger thread
        runs here, so the producer is idle (the next send starts one)."""
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._inflight.clear()
        self._abandoned.clear()
        for st in self._topics.values():
            for acc in st.accs:
                acc.clear()
        self._pending = self._pending_bytes = 0
        self._due_ms = _NO_DUE
        self._wake = _new_latch()
        self._wake.acquire()
        weakref.finalize(self, _release_quietly, self._wake).atexit = False  # (as __init__: for the new latch)
        self._linger_thread = None
        if not self._transactional:
            self._idle = True

    # -- sending ----------------------------------------------------------------------
    def _state_of(self, topic: str) -> _TopicState:
        """The topic's state for a send: made on first use (``_state``); for a topic
        deleted since (``gone``), the topic created again (``auto_create_topics``, or by
        anyone), else ``UnknownTopicError``."""
        st = self._topics.get(topic) if topic.__class__ is str else None
        if st is None:
            return self._state(topic)
        if st.gone:
            self._adopt(st, self._log._topic_for_produce(topic))
        return st

    def _state(self, topic: str) -> _TopicState:
        store = self._log._store
        # A replica refuses at once, whatever the topic (a directory that becomes one
        # later refuses at the write, flush() raising): the topic is not cached until
        # this node leads.
        store.read(lambda txn: store.require_leader(txn, "produce"))
        meta = self._log._topic_for_produce(topic)
        with self._lock:
            st = self._topics.get(topic)
            if st is None:
                st = self._topics[topic] = _TopicState(meta, cache_keys=self._hasher is not None)
            return st

    def _send(self, topic: str, value: Any, key: Any, headers: Any, partition: int | None,
              timestamp_ms: int | None, on_delivery: DeliveryCallback | None) -> None:
        """``send`` for every record its fast path does not take."""
        if self._slow:  # closed, or serializers to run
            value, key = self._slow_path(value, key)
        st = self._state_of(topic)
        if value.__class__ is bytes:
            vlen = len(value)
        elif value is None:
            vlen = -1
        else:
            value = _coerce(value, "value", self._value_ser is not None)
            vlen = len(value)
        if key.__class__ is not bytes and key is not None:
            key = _coerce(key, "key", self._key_ser is not None)
        if key is not None:
            klen = len(key)
            if partition is None:
                partition = st.kcache.get(key)
                if partition is None:
                    partition = self._choose(st, key)
            elif partition.__class__ is not int or not 0 <= partition < st.n:
                partition = self._check_partition(st, partition)
        else:
            klen = -1
            if st.compact:
                raise InvalidRecordError(f"topic {topic!r} is compacted: every record needs a key")
            if partition is None:
                partition = self._choose(st, None)
                if partition == st.sticky and st.n > 1:
                    # Kafka's sticky partitioner (KIP-480/794): stay until a batch's worth
                    # of bytes went there, then move on (also when the buffers are written)
                    st.sticky_bytes += max(vlen, 0)  # (what batch_size bounds: key and value bytes)
                    if st.sticky_bytes >= self._batch_size:
                        st.sticky = random_partition(st.n, st.sticky)
                        st.sticky_bytes = 0
            elif partition.__class__ is not int or not 0 <= partition < st.n:
                partition = self._check_partition(st, partition)
        size = max(klen, 0) + max(vlen, 0)
        if size > st.max_bytes:
            raise _too_large(st, size)
        if timestamp_ms is None:
            timestamp_ms = _time_ns() // 1_000_000
        elif timestamp_ms.__class__ is not int or not 0 <= timestamp_ms < _MAX_TS:
            timestamp_ms = _checked_timestamp(timestamp_ms)
        if headers is not None:
            headers = _check_headers(headers) if headers or headers.__class__ not in (list, tuple, dict) else None
            if headers is not None:
                size += _header_bytes(headers)
                if size > st.max_bytes:
                    raise _too_large(st, size)
        if on_delivery is not None and not callable(on_delivery):
            raise ConfigError(f"on_delivery must be a callable (error, metadata) or None, got {on_delivery!r}")
        if headers is not None or on_delivery is not None:
            self._extras = True
        acc = st.accs[partition]
        acc += (key, value, timestamp_ms, klen, vlen, headers, on_delivery)
        if self._closed:  # (close() began since the check above: see _sent_while_closing)
            self._sent_while_closing(acc, key, value)
        self._buffered(_STRIDE, None, max(klen, 0) + max(vlen, 0))

    def _send_many(self, topic: str, partition: int, keys: list[bytes | None], values: list[bytes | None],
                   headers: list[Any] | None, timestamps: list[int | None] | None) -> None:
        """Buffer a run of records for one partition, checked column by column (the bridge's
        bulk path; ``send`` semantics, but all or nothing: on an error nothing is buffered).

        ``headers`` and ``timestamps`` are ``None`` or one entry per record (``None``: no
        headers, the current time).  The lists are taken over: the caller must not reuse them.
        """
        n = len(keys)
        if not n:
            return
        if len(values) != n or (headers is not None and len(headers) != n) or (
                timestamps is not None and len(timestamps) != n):
            raise ValueError("_send_many takes columns of equal length")
        if self._slow:
            if self._closed:
                raise ClosedError("this producer is closed; create a new one with log.producer()")
            for i in range(n):  # serializers: record by record
                values[i], keys[i] = self._slow_path(values[i], keys[i])
        st = self._state_of(topic)
        if partition.__class__ is not int or not 0 <= partition < st.n:
            partition = self._check_partition(st, partition)
        kinds = set(map(type, keys))
        if st.compact and type(None) in kinds:
            raise InvalidRecordError(f"topic {topic!r} is compacted: every record needs a key")
        if not kinds <= _BYTES_OR_NONE:
            ser = self._key_ser is not None
            keys = [k if k is None or k.__class__ is bytes else _coerce(k, "key", ser) for k in keys]
        if not set(map(type, values)) <= _BYTES_OR_NONE:
            ser = self._value_ser is not None
            values = [v if v is None or v.__class__ is bytes else _coerce(v, "value", ser) for v in values]
        klens = codec.lengths(keys)
        vlens = codec.lengths(values)
        if max(map(_add, klens, vlens)) > st.max_bytes - 2:  # (a -1 for a null is at most 2 off: look closer)
            for k, v in zip(klens, vlens):
                size = max(k, 0) + max(v, 0)
                if size > st.max_bytes:
                    raise _too_large(st, size)
        if timestamps is None:
            timestamps = [_time_ns() // 1_000_000] * n
        else:
            stamps: Any = timestamps  # (ints, checked in C; anything else: record by record)
            if set(map(type, stamps)) != _INT or min(stamps) < 0 or max(stamps) >= _MAX_TS:
                timestamps = self._check_timestamps(timestamps)
        flat: list[Any] = [None] * (_STRIDE * n)
        flat[0::_STRIDE] = keys
        flat[1::_STRIDE] = values
        flat[2::_STRIDE] = timestamps
        flat[3::_STRIDE] = klens
        flat[4::_STRIDE] = vlens
        if headers is not None:
            checked = self._check_header_column(headers)
            worst = max((_header_bytes(h) for h in set(checked) if h is not None), default=0)
            if worst and max(map(_add, klens, vlens)) + worst > st.max_bytes - 2:  # (look closer)
                for k, v, h in zip(klens, vlens, checked):
                    size = max(k, 0) + max(v, 0) + (0 if h is None else _header_bytes(h))
                    if size > st.max_bytes:
                        raise _too_large(st, size)
            flat[5::_STRIDE] = checked
            self._extras = True
        acc = st.accs[partition]
        acc += flat
        if self._closed:  # (close() began since the check above: see _sent_while_closing)
            self._sent_while_closing(acc, keys[-1], values[-1], n)
        self._buffered(len(flat), None, _payload_bytes(klens, vlens))

    def _buffered(self, entries: int, ms: int | None = None, nbytes: int = 0) -> None:
        """After ``entries`` buffer entries (records x ``_STRIDE``) holding ``nbytes`` bytes
        of keys and values were added (every ``send`` path of Python, and
        ``_send_many``; the C send does the same inline): write when the producer holds
        ``buffer_records`` records or ``buffer_bytes`` bytes, or the buffered records
        are due, and wake the linger thread if it sleeps.  ``ms``: the wall-clock ms
        now, if the caller has it."""
        self._pending += entries
        self._pending_bytes += nbytes
        if self._pending >= self._buffer_limit or self._pending_bytes >= self._bytes_limit:
            self._full_write()
        if self._due_step >= 0:
            if ms is None:
                ms = _time_ns() // 1_000_000
            if self._due_ms == _NO_DUE:
                self._due_ms = ms + self._due_step
            elif ms >= self._due_ms:
                self._linger_write()
        if self._idle:
            self._idle = False
            self._start_linger()

    @staticmethod
    def _check_timestamps(timestamps: list[int | None]) -> list[int | None]:
        """A timestamp column with ``None`` replaced by now; ``ConfigError`` for a bad one."""
        now = _time_ns() // 1_000_000
        out: list[int | None] = []
        for t in timestamps:
            if t is None:
                out.append(now)
            elif t.__class__ is not int or not 0 <= t < _MAX_TS:
                raise _bad_timestamp(t)
            else:
                out.append(t)
        return out

    def _check_header_column(self, headers: list[Any]) -> list[_HeaderSet | None]:
        """Checked copies of a column of header sets (``None`` for none); equal consecutive
        sets (a producer's constant headers) share one copy."""
        first = headers[0] if headers else None
        if first is not None:
            try:  # (every set equal to the first, compared in C: one check for the column)
                uniform = headers.count(first) == len(headers)
            except Exception:  # noqa: BLE001 - an odd value's __eq__: checked one by one below
                uniform = False
            if uniform:
                return [_checked_set(_as_set(first)) or None] * len(headers)
        out: list[_HeaderSet | None] = []
        append = out.append
        last: _HeaderSet = ()
        for h in headers:
            if h is None:
                append(None)
                continue
            hdrs = _as_set(h)
            try:
                same = hdrs == last
            except Exception:  # noqa: BLE001 - an odd value's __eq__: checked below
                same = False
            if not same:
                last = _checked_set(hdrs)
            append(last or None)
        return out

    def _check_partition(self, st: _TopicState, partition: object) -> int:
        """``partition`` as an int (any integer type: numpy's, an ``IntEnum``), or raise for
        one the topic does not have (after looking for new ones)."""
        p = _as_int(partition)
        if p is not None and (0 <= p < st.n or (p >= st.n and self._refresh(st) and p < st.n)):
            return p
        shown = partition if p is None else p
        raise UnknownPartitionError(
            f"topic {st.name!r} has partitions 0..{st.n - 1}; partition {shown!r} does not exist")

    def _refresh(self, st: _TopicState) -> bool:
        """Follow a topic's metadata: its config as it is now (``max.message.bytes``,
        ``min.insync.replicas``, ...), new partitions (Kafka never removes any), for which
        its buffers grow, and a topic of the same name created after it was deleted (its
        own partition count and config; records buffered for partitions it lacks fail
        at the write, with ``UnknownPartitionError``).  A deleted topic is marked
        ``gone``: its next send creates it again (``auto_create_topics``, or anyone else
        may) or raises ``UnknownTopicError``; records buffered before then go to the topic
        created again (Kafka's producer too knows topics by name only), or fail at the
        write while there is none.  Return whether the topic has more partitions than
        before."""
        meta = self._log._store.topic(st.name)
        if meta is None:
            if not st.gone:
                with self._lock:
                    st.gone = True
                    st.max_bytes = -1  # (sends take the slow path, which looks for the topic again)
                    st.kcache.clear()  # (the state stays, light: a sender may hold it still)
                    st.kacc.clear()
            return False
        if meta == st.meta and not st.gone:
            return False
        return self._adopt(st, meta)

    def _adopt(self, st: _TopicState, meta: TopicMeta) -> bool:
        """Make ``meta`` the topic's (see ``_refresh``); return whether it has more
        partitions than before."""
        grew = meta.partitions > st.n
        with self._lock:
            if grew or meta.topic_id != st.meta.topic_id:
                while len(st.accs) < meta.partitions:  # (never fewer: records buffered stay drained)
                    st.accs.append([])
                st.n = meta.partitions
                st.kcache.clear()  # keys map to new partitions now, as in Kafka
                st.kacc.clear()
                if st.sticky >= st.n:
                    st.sticky = random_partition(st.n)
            st.meta = meta
            # (records buffered from now on are checked against it; those before, against
            # the earlier configs: the write re-checks them all if it is stricter than every one)
            st.checked = loosest(st.checked, meta.config)
            st.max_bytes = meta.config.max_message_bytes
            st.compact = meta.config.compact
            st.gone = False
        return grew

    def _topic_changed(self, name: str) -> None:
        """A topic's metadata changed through this process's store (``Store.watch_topics``):
        follow it now, not at the next write's once-a-second look."""
        st = self._topics.get(name)
        if st is not None and not self._closed:
            self._refresh(st)

    def _slow_path(self, value: Any, key: Any) -> tuple[Any, Any]:
        if self._closed:
            raise ClosedError("this producer is closed; create a new one with log.producer()")
        if value is not None and self._value_ser is not None:  # None stays a tombstone
            value = _serialize(self._value_ser, value, "value")
        if key is not None and self._key_ser is not None:
            key = _serialize(self._key_ser, key, "key")
        return value, key

    def _choose(self, st: _TopicState, key: bytes | None) -> int:
        """Partition for a record with no explicit partition (and no cached key)."""
        hasher = self._hasher
        if hasher is None:
            return self._custom_partition(st, key)
        if key is None or (hasher.empty_is_null and not key):
            if hasher.null_key == "sticky":
                return st.sticky
            if hasher.null_key == "random":
                return random_partition(st.n)
            return hasher.hash(b"") % st.n
        p = hasher.hash(key) % st.n if st.n > 1 else 0
        if st.cache_keys:
            if len(st.kcache) >= _KEY_CACHE:
                st.kcache.clear()
                st.kacc.clear()
            st.kcache[key] = p
            st.kacc[key] = st.accs[p]
        return p

    def _custom_partition(self, st: _TopicState, key: bytes | None) -> int:
        assert self._custom is not None
        got = self._custom(key, st.n)  # (its own exception propagates, as from Kafka's Partitioner.partition)
        p = _as_int(got)  # (numpy's integers, say)
        if p is None:
            raise UnknownPartitionError(f"the custom partitioner returned {got!r} for topic {st.name!r}: "
                                        f"not an int (a partition from 0 to {st.n - 1})")
        if not 0 <= p < st.n:
            raise UnknownPartitionError(f"the custom partitioner returned {p!r} for topic {st.name!r} "
                                        f"with {st.n} partitions")
        return p

    def _start_linger(self) -> None:
        """A send found the producer idle: hold it while it has records buffered (a
        producer dropped right after ``send`` still writes them, as Kafka's does: the
        idiom ``KafkaProducer(...).send(...).get()``), and wake its linger thread."""
        with _LINGERING_LOCK:
            _LINGERING[id(self)] = self
        if self._linger_thread is None or not self._linger_thread.is_alive():  # none yet, or lost to fork()
            self._linger_thread = threading.Thread(target=_linger_main, args=(weakref.ref(self), self._wake),
                                                   name="embedlog-linger", daemon=True)
            self._linger_thread.start()
        self._wake_linger()

    def _wake_linger(self) -> None:
        _release_quietly(self._wake)  # (released already: the thread wakes anyway)

    def _linger_round(self) -> None:
        """The linger thread's work after a sender woke it: write what comes due until
        nothing is buffered (``_linger_main`` then waits for the next wake-up)."""
        # Senders set ``_idle = False`` after appending; this loop sets it back to True
        # before its last look for pending records, so one of the two always sees the
        # other and no record waits for more than about ``linger_ms``.
        while not self._closed:
            time.sleep(max(self._linger, self._held_until - _monotonic()))  # (held back: see _held_back)
            step = self._due_step
            while step >= 0 and not self._closed:
                # Not due yet (a sender wrote the earlier ones, or these came later): a
                # sender still sending writes them when due; wait for that moment.  (A
                # wall-clock step back shows as more than linger_ms left: write now.)
                left = self._due_ms - _time_ns() // 1_000_000
                if not 0 < left <= step:
                    break
                time.sleep(left / 1000)
            wrote = self._linger_write()
            if not wrote:
                with _LINGERING_LOCK:  # (with _start_linger's: a send that finds it idle holds it again)
                    self._idle = True
                    if not self._has_pending():
                        _LINGERING.pop(id(self), None)  # nothing buffered: collectable once dropped
                        break
                    self._idle = False

    def _full_write(self) -> bool:
        """Write what is buffered because the buffer is full (``buffer_records``), from the
        sending thread; not while writes are held back (``_held_back``)."""
        if self._held_back():
            return False
        return self._write(background=True)

    def _held_back(self) -> bool:
        """Whether writes no ``flush`` asked for wait: with ``acks="all"``, while the in-sync
        set is smaller than a buffered topic's ``min.insync.replicas``, as Kafka's leader
        refuses such a produce (NOT_ENOUGH_REPLICAS).  The records stay buffered, ``flush``
        raises ``NotEnoughReplicasError``, and the in-sync set is looked at again after
        ``linger_ms`` (at least 5 ms)."""
        if self.acks != "all":
            return False
        now = _monotonic()
        if now < self._held_until:
            return True
        if self._replicas_short() is None:
            return False
        self._held_until = now + max(self._linger, 0.005)
        return True

    def _linger_write(self) -> bool:
        """Write what is buffered because it is due (linger), from the linger thread or a
        sender; a failure is kept for the next ``flush``, as for any background write.
        Returns whether there was anything (a failed write counts; records held back
        count too: the linger thread tries again after ``linger_ms``)."""
        try:
            if self._held_back():
                self._due_ms = _time_ns() // 1_000_000 + max(self._due_step, 0)  # (senders: not at every send)
                return True
            return self._write(background=True)
        except EmbedlogError as exc:
            self._errors.append(exc)
        except Exception as exc:  # noqa: BLE001 - reported at the next flush
            self._errors.append(EmbedlogError(f"background write failed: {exc!r}"))
        return True

    # -- writing ----------------------------------------------------------------------
    def _drain(self, out: list[tuple[_TopicState, int, list[Any]]]) -> None:
        """Take every buffered record into ``out`` (as it goes: what an interrupt leaves
        there was taken).  Senders append without the lock to the buffer lists they hold,
        so each list is emptied in place, atomically: its items moved out by
        ``_speedups.take_into``, or else a prefix taken (``acc[:n]`` then ``del acc[:n]``,
        each atomic), rather than swapping lists."""
        with self._lock:
            self._due_ms = _NO_DUE  # (what is buffered from now on is due linger_ms after it)
            self._pending = 0
            self._pending_bytes = 0
            for st in self._topics.values():
                drained = False
                for p, acc in enumerate(st.accs):  # (more than st.n: see _refresh)
                    if acc:
                        if _take_into is not None:  # (all of it, atomically, without copying)
                            _take_into(out, st, p, acc)
                        else:  # (no call between taking the items and keeping them in out)
                            n = len(acc)
                            chunk = acc[:n]
                            del acc[:n]
                            out.append((st, p, chunk))
                        drained = True
                if drained:
                    # (a refresh takes this lock too: every record buffered now was checked
                    # against ``checked`` or a later config, at most the current one)
                    st.drained_checked, st.checked = st.checked, st.meta.config
                if drained and st.n > 1:
                    st.sticky = random_partition(st.n, st.sticky)
                    st.sticky_bytes = 0

    def _restore(self, drained: list[tuple[_TopicState, int, list[Any]]]) -> None:
        """Put records ``_drain`` took back at the head of their buffers (a write
        interrupted before it queued them): the next write carries them, in order."""
        entries = nbytes = 0
        for st, p, flat in drained:
            st.accs[p][0:0] = flat  # (atomic; records sent since stay after them)
            st.checked = loosest(st.drained_checked, st.checked)  # (what they and the later ones passed)
            entries += len(flat)
            nbytes += _payload_bytes(flat[3::_STRIDE], flat[4::_STRIDE])
        self._pending += entries
        self._pending_bytes += nbytes
        if self._due_step >= 0:
            self._due_ms = min(self._due_ms, _time_ns() // 1_000_000)

    def _has_pending(self) -> bool:
        return any(acc for st in list(self._topics.values()) for acc in st.accs)

    def _encode(self, flat: list[Any]) -> tuple[list[tuple[int, int, bytearray]], list[Any] | None]:
        """Encode one partition's records into batches of at most ~batch_size bytes; return
        them with the partition's callback column (None when no record has a callback)."""
        if len(flat) == _STRIDE and flat[5] is None and self._compression == codec.COMPRESSION_NONE:
            # one record (a flush per send): its own encoder, no columns to split
            buf = codec.encode_one(flat[0], flat[1], flat[2], transactional=self._transactional)
            return [(0, 1, buf)], (None if flat[6] is None else [flat[6]])
        compression = self._compression
        transactional = self._transactional
        n = len(flat) // _STRIDE
        hdrs: list[Any] | None = None
        callbacks: list[Any] | None = None
        if self._extras:
            hdrs = flat[5::_STRIDE]  # (None, or a checked pair or tuple of pairs: never empty)
            hdrs = _header_sets(hdrs) if any(hdrs) else None
            callbacks = flat[6::_STRIDE]
            if not any(map(is_not, callbacks, repeat(None))):  # (no == on the callers' objects)
                callbacks = None
        if hdrs is None and compression == codec.COMPRESSION_NONE and native.speedups is not None:
            # no headers or compression: each batch in one C pass over the buffer
            out = []
            i = 0
            spare = self._spare
            while i < n:
                try:
                    reuse: bytearray | None = spare.pop()  # (atomic: a buffer serves one write at a time)
                except IndexError:
                    reuse = None
                buf, j = codec.encode_records(flat, _STRIDE, i, n, self._batch_size, transactional=transactional,
                                              out=reuse)
                out.append((i, j, buf))
                i = j
            return out, callbacks
        keys = flat[0::_STRIDE]
        values = flat[1::_STRIDE]
        stamps = flat[2::_STRIDE]
        klens = flat[3::_STRIDE]
        vlens = flat[4::_STRIDE]
        total = sum(klens) + sum(vlens)  # (a -1 for a null is noise here)
        per = n if total <= self._batch_size else max(1, min(n, self._batch_size * n // total))
        if per >= n:  # the common case: one batch, no column copies
            return [(0, n, codec.encode(keys, values, stamps, hdrs, compression=compression,
                                        transactional=transactional, key_lengths=klens,
                                        value_lengths=vlens))], callbacks
        out = []
        for i in range(0, n, per):
            j = min(n, i + per)
            out.append((i, j, codec.encode(keys[i:j], values[i:j], stamps[i:j],
                                           hdrs[i:j] if hdrs is not None else None,
                                           compression=compression, transactional=transactional,
                                           key_lengths=klens[i:j], value_lengths=vlens[i:j])))
        return out, callbacks

    def _write(self, extra: Callable[[Any], None] | None = None, mark: list[int] | None = None,
               background: bool = False) -> bool:
        """Write everything buffered (and run ``extra`` in the same transaction); return
        whether there was anything.

        Buffers are drained and queued for commit under the producer's lock, so records
        of one partition commit in the order they were sent; the commit itself runs
        outside it, so concurrent flushes from several threads share one transaction.
        ``mark[0]`` is set to the number of writes registered before this one drained: the
        only ones that can hold records sent before it (what ``flush`` waits for).
        ``background``: a write no ``flush`` asked for (linger, a full buffer): with
        ``durability="flush"`` it skips the commit's second fsync, which the next
        ``flush`` makes (``Env.make_durable_if_needed``).
        """
        # Held until callbacks ran: what flush() in other threads waits for (a bare lock
        # as a latch costs a fraction of a threading.Event, on every write).  Released,
        # and out of ``_inflight``, however this write ends: an interrupt anywhere in it
        # leaves no flush waiting for it.
        delivered = _new_latch()
        delivered.acquire()
        inflight = self._inflight
        committer = self._log._committer
        req = None
        try:
            with self._flush_lock:
                if self._transactional and self._closed:  # (its log was closed, which dropped the records)
                    raise ClosedError("the log of this transaction was closed, which aborted it: nothing of it "
                                      "was written; open the log again and start a new transaction")
                now = _monotonic()
                if now >= self._next_metadata_check:  # like Kafka's metadata refresh, but every second
                    self._next_metadata_check = now + 1.0
                    version = self._log._store.topics_version()
                    if version != self._topics_version:  # another process may have added partitions
                        self._topics_version = version
                        for st in list(self._topics.values()):
                            self._refresh(st)
                if mark is not None:
                    mark[0] = self._writes
                drained: list[tuple[_TopicState, int, list[Any]]] = []
                items: list[AppendItem] = []
                spans = []
                callbacks_due = False
                n_values = n_bytes = 0  # (counted here: no second pass over the batches afterwards)
                try:
                    self._drain(drained)
                    if not drained and extra is None:
                        return False
                    for st, p, flat in drained:
                        batches, callbacks = self._encode(flat)
                        if callbacks is not None:
                            callbacks_due = True
                        n_values += len(flat)
                        name = st.name
                        tid = st.meta.topic_id
                        checked = st.drained_checked
                        for start, end, buf in batches:
                            items.append(AppendItem(name, tid, p, buf, checked=checked))
                            spans.append((st, start, end, flat, callbacks))
                            n_bytes += len(buf)
                    req = committer.request(items, extra, not background, self._transactional)
                    committer.enqueue(req)
                except Exception:
                    raise
                except BaseException:  # interrupted: unless they were queued, buffer the records again
                    if req is None or not committer.holds(req):
                        self._restore(drained)
                    raise
                inflight[delivered] = (self._writes, _get_ident())
                self._writes += 1
            error: EmbedlogError | None = None
            item_error: EmbedlogError | None = None
            try:
                committer.wait(req)
            except EmbedlogError as exc:
                error = exc
            else:
                for item in items:  # a batch that failed alone (its topic was deleted, say): the others are written
                    if item.error is not None:
                        item_error = item.error
                        break
                if self.acks == "all":  # (before ``delivered`` is released: a flush waiting for this
                    self._note_acks(items)  # write must find its records among those to see replicated)
            if isinstance(error or item_error, UnknownTopicError):  # (deleted, by another process say:
                for st in {id(st): st for st, _, _ in drained}.values():  # the next send looks again,
                    self._refresh(st)  # not after the once-a-second look)
            if callbacks_due:
                raised = self._deliver(items, spans, error)
                if raised is not None:
                    self._callback_errors.append(raised)
        except BaseException:
            if req is not None and self._transactional:  # interrupted: a transaction is written now or never
                committer.cancel(req)
            raise
        finally:
            # Released first: an interrupt landing between the two leaves at worst a
            # released latch listed (``_wait_inflight`` passes it), never a held one
            # that is no longer listed for anyone to release.
            delivered.release()
            inflight.pop(delivered, None)  # (atomic: no lock)
        try:
            if error is not None:
                raise error
            self._counters.produced(n_values // _STRIDE, n_bytes)
            if item_error is not None:
                raise item_error  # (the others of this write are stored)
        finally:
            self._recycle(items)
        return True

    def _recycle(self, items: list[AppendItem]) -> None:
        """Keep up to ``_SPARE_BUFFERS`` batch buffers of a finished write (nothing reads
        them any more: LMDB copied them) for the next writes to encode into: a fresh
        megabyte per batch costs its page faults again, which here took as long as the
        rest of the flush."""
        spare = self._spare
        if len(items) == 1 and len(items[0].buf) < _RECYCLE_MIN:  # (a one-record flush: nothing worth keeping)
            return
        most = 4 * self._batch_size + 65536
        keep = sorted((item.buf for item in items if item.buf.__class__ is bytearray and len(item.buf) <= most),
                      key=len)[-_SPARE_BUFFERS:]
        for buf in keep:  # (smallest first: the next write, popping, takes the largest for its first batch)
            if len(spare) >= _SPARE_BUFFERS:
                return
            spare.append(buf)

    def _wait_inflight(self, before: int) -> None:
        """Wait for the writes other threads registered before write number ``before``
        (they may hold records sent before this flush; later ones cannot)."""
        if not self._inflight:
            return
        with self._flush_lock:
            pending = list(self._inflight.items())
        me = _get_ident()
        for delivered, (seq, writer) in pending:
            if seq < before and writer != me:  # (a delivery callback calling flush() must not wait for itself)
                with delivered:  # committed and its callbacks run (errors go to its writer)
                    pass

    @staticmethod
    def _deliver(items: list[AppendItem], spans: list[Any], error: EmbedlogError | None) -> Exception | None:
        """Call every record's delivery callback; return the first exception one raised
        (the others are still called: a raising callback must not hide the deliveries
        after it)."""
        raised: Exception | None = None
        for item, (st, start, end, flat, cbs) in zip(items, spans):
            if cbs is None:  # (cbs: the partition's callback column, None for a record without)
                continue
            failed = error if error is not None else item.error  # (all failed, or this batch alone)
            for idx in range(start, end):
                cb = cbs[idx]
                if cb is None:
                    continue
                try:
                    if failed is not None:
                        cb(failed, None)
                    else:
                        offset = item.base_offset + idx - start
                        ts = item.log_append_ms if item.log_append_ms is not None else flat[_STRIDE * idx + 2]
                        cb(None, RecordMetadata(st.name, item.partition, offset, ts))
                except Exception as exc:  # noqa: BLE001 - the application's code: raised by the next flush
                    if raised is None:
                        raised = exc
        return raised

    def flush(self, timeout: float | None = None) -> None:
        """Write every record sent so far; durable per the log's durability mode.

        With ``acks="all"`` it then waits until every in-sync follower holds them durably
        (the partition's high watermark covers them): ``NotEnoughReplicasError`` when the
        in-sync set is smaller than a topic's ``min.insync.replicas`` (before writing,
        the records stay buffered; while waiting, they stay on the leader), and
        ``embedlog.errors.TimeoutError`` after ``delivery_timeout_ms`` (or ``timeout``
        seconds).  Raises the error of any record that could not be written since the
        last flush; then the first exception a delivery callback raised since the last
        flush (every other callback was still called, and the records are written).
        """
        if self._closed:
            raise ClosedError("this producer is closed")
        timeout = _check_timeout(timeout)
        if self.acks == "all" and len(self):
            self._check_replicas()
        self._complete(timeout)

    async def flush_async(self, timeout: float | None = None) -> None:
        """``flush`` for asyncio: the write and its fsync run in a worker thread, so the
        event loop goes on meanwhile.  Same errors as ``flush``.  Cancelling the awaiting
        task once the call started does not stop the flush: the records are written all
        the same, and an error it meets is raised by the next flush."""
        if self._closed:
            raise ClosedError("this producer is closed")
        timeout = _check_timeout(timeout)
        import asyncio  # noqa: PLC0415 - not at import: most programs never need it (~40 ms)

        flight = _Abandonable()

        def work() -> None:
            with flight.lock:
                if flight.claimed:  # (a plain flush took over before this job started)
                    flight.done.set()
                    return
                flight.started = True
            _IN_FLIGHT.on = True
            try:
                self.flush(timeout)
            except BaseException as exc:
                with flight.lock:
                    if flight.abandoned:  # (its task was cancelled: kept here, in this thread, before
                        if not (isinstance(exc, ClosedError) and self._closed):  # (close writes them)
                            self._keep_error(exc)  # ``done`` lets the next flush look at the errors)
                        return  # (nobody awaits this future any more: an exception would be logged unread)
                    flight.error = exc
                raise
            finally:
                _IN_FLIGHT.on = False
                flight.done.set()

        future = asyncio.get_running_loop().run_in_executor(None, work)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            with flight.lock:
                flight.abandoned = True
                if flight.error is not None:  # (it failed before the cancel reached this task)
                    self._keep_error(flight.error)
            if not flight.done.is_set():
                self._abandoned.append(flight)
            future.add_done_callback(_retrieved)  # (the shield no longer reads its outcome)
            raise

    def _keep_error(self, exc: BaseException) -> None:
        """A flush whose awaiting task was cancelled failed: the next flush raises it."""
        if isinstance(exc, EmbedlogError):
            self._errors.insert(0, exc)
        elif isinstance(exc, Exception):  # (a delivery callback's)
            self._callback_errors.insert(0, exc)

    def _await_abandoned(self) -> None:
        """Wait for the flushes cancelled ``flush_async`` calls left running (what they
        meet is the next flush's to raise) — not from a delivery callback (this thread
        has a write under way, which such a flush may be waiting for: ``_wait_inflight``).
        One whose job has not started is not waited for but taken over (``claimed``: it
        will not flush): it may wait in the executor behind this very thread, or never run;
        this flush writes what it would have."""
        if getattr(_IN_FLIGHT, "on", False):
            # (a flush_async's own flush: flights waiting for each other, or for one still
            # queued behind them in the executor, deadlocked; the next plain flush waits)
            return
        me = _get_ident()
        if any(writer == me for _seq, writer in list(self._inflight.values())):
            return
        for flight in list(self._abandoned):  # (never this thread's own: flights do not come here)
            with flight.lock:
                if not flight.started:
                    flight.claimed = True  # (queued, maybe for good: this flush writes its records)
            if flight.started:
                flight.done.wait()
            with contextlib.suppress(ValueError):
                self._abandoned.remove(flight)

    def _complete(self, timeout: float | None) -> None:
        """Write what is buffered, wait for the writes other threads drained before it,
        raise a record's error since the last flush, and with ``acks="all"`` wait for the
        in-sync followers: what ``flush`` and ``close`` both do."""
        if self._abandoned:
            self._await_abandoned()
        mark = [0]
        self._write(mark=mark)
        self._wait_inflight(mark[0])
        self._log._store.env.make_durable_if_needed()  # (records background writes committed)
        if self._errors:
            errors, self._errors = self._errors, []
            raise errors[0]
        if self.acks == "all":
            self._await_replicas(timeout)
        self._raise_callback_error()  # (the records are written, and replicated as acks says)

    def _raise_callback_error(self) -> None:
        """Raise the first exception a delivery callback raised since the last time (every
        other callback was still called), and forget them."""
        if self._callback_errors:
            raised, self._callback_errors = self._callback_errors, []
            raise raised[0]

    # -- acks="all" -------------------------------------------------------------------
    def _note_acks(self, items: list[AppendItem]) -> None:
        with self._lock:
            for item in items:
                if item.error is not None:
                    continue
                end = codec.read_info(item.buf).next_offset  # the batch was stamped by the append
                key = (item.topic_id, item.partition)
                if end > self._ack_targets.get(key, -1):
                    self._ack_targets[key] = end

    def _min_insync(self) -> dict[int, int]:
        return {st.meta.topic_id: st.meta.config.min_insync_replicas for st in list(self._topics.values())}

    def _replicas_short(self) -> tuple[int, int] | None:
        """``(in-sync set size, min.insync.replicas)`` when the in-sync set is smaller than
        a buffered topic's ``min.insync.replicas``, else ``None``."""
        need = max((st.meta.config.min_insync_replicas for st in list(self._topics.values())
                    if any(st.accs)), default=1)
        if need <= 1:
            return None
        store = self._log._store
        board = replica.hw_board(store)  # a leader of this process publishes the in-sync set's size once stored
        size = board.isr_size if board is not None else store.read(
            lambda txn: replica.in_sync_size(txn, store.dbs, store.path))
        return (size, need) if size < need else None

    def _check_replicas(self, then: str = "the records were not written and stay buffered; flush again once "
                                          "followers have caught up") -> None:
        """Kafka's NOT_ENOUGH_REPLICAS: refuse to write when the in-sync set is too small
        (``then``: what became of the records, for the message)."""
        short = self._replicas_short()
        if short is not None:
            raise NotEnoughReplicasError(_short_of_replicas(short, then))

    def _await_replicas(self, timeout: float | None) -> None:
        """Wait until the high watermark covers everything this producer wrote.

        A leader running in this process publishes high watermarks before it writes
        them to the store (``replica.HighWatermarkBoard``): wait on that when there is
        one, else on the store.  A ``replicating`` flag left by a dead leader holds: the
        wait then ends in a ``TimeoutError`` that says so.

        The targets stay listed while this waits (a flush of another thread meanwhile
        waits for them too: it returned at once, finding none), and are taken off once
        this wait ends, unless a later write raised them meanwhile."""
        with self._lock:
            targets = dict(self._ack_targets)
        if not targets:
            return
        try:
            self._await_targets(targets, timeout)
        finally:
            with self._lock:
                for key, end in targets.items():
                    if self._ack_targets.get(key) == end:
                        del self._ack_targets[key]

    def _await_targets(self, targets: dict[tuple[int, int], int], timeout: float | None) -> None:
        """The wait of ``_await_replicas``: until the high watermarks cover ``targets``."""
        store = self._log._store
        dbs = store.dbs
        path = store.path
        mins = self._min_insync()
        budget = self.delivery_timeout_ms / 1000
        deadline = time.monotonic() + (budget if timeout is None else min(budget, timeout))
        board: replica.HighWatermarkBoard | None = None

        def look(txn: Any) -> tuple[dict[tuple[int, int], int], int, str, bool]:
            left = {}
            for (tid, part), end in targets.items():
                st = plog.load_state(txn, dbs, tid, part)
                if st is None:  # (a deleted topic acknowledges nothing more)
                    continue
                hw = st.high_watermark if board is None else max(st.high_watermark, board.high_watermark(tid, part))
                if hw < end:
                    left[(tid, part)] = end
            flag = txn.get(schema.META_REPLICATING, db=dbs["meta"]) == b"1"
            live = flag and replica.lease_live(path)
            size = replica.in_sync_size(txn, dbs) if live else 1
            return left, size, replica.get_role(txn, dbs), flag and not live

        need = max(mins.get(tid, 1) for tid, _ in targets)
        first = True
        board = replica.hw_board(store)
        if board is not None:
            board.nudge()  # the records leave for the followers from this thread, which waits anyway
        while True:
            board = replica.hw_board(store)
            if board is not None:
                seen = board.version
                if board.isr_size >= need and all(board.high_watermark(tid, part) >= end
                                                  for (tid, part), end in targets.items()):
                    return  # acknowledged, as the leader of this process says: no LMDB read on the way back
                if first and board.isr_size >= need:
                    # Just written: wait for the followers before looking at the store (that
                    # look would hold the GIL while the leader's threads send the records).
                    first = False
                    board.wait(seen, min(max(deadline - time.monotonic(), 0.0), 0.1))
                    continue
            else:
                seen = store.notifier.generation
            targets, size, role, stale = store.read(look)
            # Checked even once the high watermark covers the records (Kafka's
            # NOT_ENOUGH_REPLICAS_AFTER_APPEND): it may have moved because the in-sync set shrank.
            if size < need:
                raise NotEnoughReplicasError(
                    f"the in-sync set is {size} (leader included), below min.insync.replicas={need}: the records are "
                    "written on the leader but not guaranteed on enough replicas")
            if not targets:
                return
            if role != "leader":
                raise NotLeaderError("this log directory became a replica before its followers acknowledged the "
                                     "records; records not on the new leader are lost in the failover")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ms = round(min(budget, timeout if timeout is not None else budget) * 1000)
                if stale:
                    raise EmbedlogTimeoutError(
                        f"no replication Leader runs on {path!r} (its process died without stopping) to have the "
                        f"records acknowledged within {ms} ms; they are written here, hidden from consumers, and "
                        "are replicated once a Leader runs here again")
                raise EmbedlogTimeoutError(
                    f"the in-sync followers did not acknowledge the records within {ms} ms; they are written "
                    "on the leader and may still be replicated")
            if board is not None:
                board.wait(seen, min(remaining, 0.1))
            else:
                store.notifier.wait(seen, min(remaining, 0.1))

    def __len__(self) -> int:
        """Records buffered and not yet written."""
        return sum(len(acc) for st in list(self._topics.values()) for acc in st.accs) // _STRIDE

    def close(self, timeout: float | None = None) -> None:
        """Write what is buffered and release the producer (idempotent).

        Like Kafka's ``close()``, it first completes what was sent: with ``acks="all"``
        it waits, up to ``delivery_timeout_ms`` (or ``timeout`` seconds), until the
        in-sync followers hold the records, and raises as ``flush`` does
        (``NotEnoughReplicasError``, ``TimeoutError``: the records stay on this node) —
        after releasing the producer.  It also raises the error of any record a
        background write could not store since the last flush.  When the in-sync set is
        smaller than a topic's ``min.insync.replicas`` it writes nothing, as ``flush``
        does: the buffered records fail (their delivery callbacks get the
        ``NotEnoughReplicasError`` that ``close`` raises)."""
        if self._closed:
            return
        timeout = _check_timeout(timeout)
        if self._transactional:  # (a transaction's records are written by its commit, or never)
            drained: list[tuple[_TopicState, int, list[Any]]] = []
            with self._flush_lock:  # (not between its commit's look at ``_closed`` and its drain: ``_write``)
                self._drain(drained)
                self._mark_closed()
            self._tell_failed(drained, ClosedError(  # (outside the lock: the callbacks are the application's)
                "the log of this transaction was closed, which aborted it: this record was not written"))
            return
        # Closed first, written after: a send from here on raises ClosedError, and one
        # that checked before and appends while this runs is written by the loop below
        # (or, once it has drained for good, taken back and refused: ``_sent_while_closing``).
        self._refuse_sends()
        try:
            if not self._log.closed:
                if self.acks == "all" and len(self):
                    self._refuse_short(self._replicas_short())
                while True:
                    self._complete(timeout)
                    self._wait_inflight(self._writes)  # (a background write a racing send began)
                    with self._lock:
                        if not self._has_pending():
                            self._drained = True
                            break
        finally:
            with self._lock:
                self._drained = True
            self._mark_closed()  # (which unregisters it from the log)

    def _refuse_sends(self) -> None:
        """From now on every send raises ``ClosedError``: the C send finds no topic in
        ``_fast`` and takes ``_send``, whose slow path raises."""
        self._closed = True
        self._slow = True
        self._fast = {}

    def _sent_while_closing(self, acc: list[Any], key: Any, value: Any, n: int = 1) -> None:
        """A Python send path appended ``n`` records (the last being ``key``, ``value``) to
        ``acc`` and found the producer closed: it checked before ``close`` began.  If
        ``close`` has not drained for good yet it writes them; if it has and they are
        still buffered, they are taken back out and the send raises ``ClosedError``, as a
        send after ``close`` does: no send returns normally for a record never written.
        (The C send checks and appends in one step under the GIL, so it never gets here.)"""
        with self._lock:
            if not self._drained:
                return
            for i in range(len(acc) - _STRIDE, -1, -_STRIDE):  # (its own records: found by identity)
                if acc[i] is key and acc[i + 1] is value:
                    del acc[i + _STRIDE - n * _STRIDE:i + _STRIDE]
                    break
            else:
                return  # (written: the send had appended before close's last look)
        raise ClosedError("this producer was closed while the record was sent; it was not written: "
                          "send it with a new producer")

    def _refuse_short(self, short: tuple[int, int] | None) -> None:
        """``close`` with the in-sync set below ``min.insync.replicas`` (``short``): drop
        what is buffered, unwritten, telling its delivery callbacks, and raise."""
        if short is None:
            return
        error = NotEnoughReplicasError(_short_of_replicas(
            short, "the producer closed without writing its buffered records; send them again once followers "
                   "have caught up"))
        self._fail_buffered(error)
        raise error

    def _fail_buffered(self, error: EmbedlogError) -> None:
        """Drop what is buffered, unwritten, calling each record's delivery callback with
        ``error`` (their exceptions are not raised: ``error`` is what the caller raises)."""
        drained: list[tuple[_TopicState, int, list[Any]]] = []
        self._drain(drained)
        self._tell_failed(drained, error)

    @staticmethod
    def _tell_failed(drained: list[tuple[_TopicState, int, list[Any]]], error: EmbedlogError) -> None:
        """Call the delivery callbacks of ``drained`` records, never written, with ``error``."""
        for _st, _p, flat in drained:
            for cb in flat[6::_STRIDE]:
                if cb is not None:
                    with contextlib.suppress(Exception):  # (the application's code: the error raised is ours)
                        cb(error, None)

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def _mark_closed(self) -> None:
        with _LINGERING_LOCK:
            _LINGERING.pop(id(self), None)
        self._refuse_sends()
        self._spare = []
        self._wake_linger()
        self._log._unregister(self)

    def __reduce_ex__(self, protocol: object) -> Any:
        raise ConfigError("a producer cannot be pickled or sent to another process; open the log there with "
                          "embedlog.open(path) and make a producer of its own")

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the block's own error goes on: a failure to complete the sends (or a delivery
            with contextlib.suppress(Exception):  # callback's exception) must not replace it
                self.close()
