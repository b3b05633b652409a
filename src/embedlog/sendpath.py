"""What ``Producer.send`` checks and buffers: a producer's view of a topic, header
validation, and ``send`` itself in Python — the reference for ``embedlog._speedups.SendBase``,
which does the same in C, and what runs where that extension is not built.

A partition buffer is a flat list: per record a key, value, timestamp, key length, value
length, headers (a validated tuple, or None) and delivery callback (or None).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import attrs

from . import _native as native
from .config import TopicConfig
from .errors import EmbedlogError, SerializationError
from .model import RecordMetadata
from .partitioner import random_partition
from .storage.topics import TopicMeta

__all__ = ["DeliveryCallback", "SendBase"]

DeliveryCallback = Callable[[EmbedlogError | None, RecordMetadata | None], None]
_time_ns = time.time_ns
#: ``_due_ms`` while no record waits for a linger write (``_speedups.c``'s NO_DUE)
_NO_DUE = 1 << 62
#: entries per record in a partition buffer: key, value, timestamp, key length, value length,
#: headers (a validated tuple, or None), delivery callback (or None)
_STRIDE = 7


class _TopicState:
    """A producer's view of one topic: partition buffers and the sticky partition."""

    __slots__ = ("accs", "cache_keys", "checked", "compact", "drained_checked", "gone", "kacc", "kcache",
                 "max_bytes", "meta", "n", "name", "sticky", "sticky_bytes")

    def __init__(self, meta: TopicMeta, cache_keys: bool) -> None:
        self.meta = meta
        self.name = meta.name
        self.n = meta.partitions
        self.max_bytes = meta.config.max_message_bytes
        self.compact = meta.config.compact
        #: the topic was deleted (``max_bytes`` is then -1: every send of it takes the slow
        #: path, which looks for the topic again: ``Producer._send``)
        self.gone = False
        #: a config at least as loose as every one the records buffered since the last
        #: drain were checked against: the one in force then, widened by each config the
        #: topic had since (``loosest``; ``AppendItem.checked``)
        self.checked = meta.config
        #: ``checked`` as it was when the last drain took records (each of them passed a
        #: config no looser than it): what the store re-checks them against
        self.drained_checked = meta.config
        # Per partition, a flat list key, value, timestamp, key length, value length (-1 for
        # None), headers, callback, key, ... appended with one atomic ``+=`` per record (or
        # per run of records): no lock on the hot path, also for records with headers or a
        # callback; nothing for the garbage collector to track per record; ``acc[0::7]``
        # splits the columns in C at encode time, and the lengths ``send`` measures anyway
        # need no second pass.
        self.accs: list[list[Any]] = [[] for _ in range(self.n)]
        self.sticky = random_partition(self.n)
        #: bytes of null-key records sent to ``sticky`` since it was chosen (KIP-794: a
        #: new one is chosen once they fill a batch, or when the buffers are written)
        self.sticky_bytes = 0
        #: key -> partition, for partitioners that are a pure function of the key (it
        #: stays empty for a custom partitioner, which is called for every record)
        self.kcache: dict[bytes, int] = {}
        #: key -> its partition's buffer (the same cache, one lookup shorter for ``send``)
        self.kacc: dict[bytes, list[Any]] = {}
        self.cache_keys = cache_keys


def loosest(a: TopicConfig, b: TopicConfig) -> TopicConfig:
    """A config whose record checks every record passing ``a`` or ``b`` passes: the larger
    ``max.message.bytes``, and compacted only if both are (``a`` or ``b`` itself when one
    is as loose as that)."""
    limit = max(a.max_message_bytes, b.max_message_bytes)
    compact = a.compact and b.compact
    for config in (a, b):
        if config.max_message_bytes == limit and config.compact == compact:
            return config
    policy = a.cleanup_policy - {"compact"} or frozenset({"delete"})
    return attrs.evolve(a, max_message_bytes=limit, cleanup_policy=policy)


def _coerce(obj: object, what: str, serialized: bool = False) -> bytes:
    """``obj`` as exact bytes: a bytes subclass (numpy.bytes_, say), bytearray or
    memoryview is copied; anything else is a ``SerializationError`` (``serialized``:
    ``obj`` is what the producer's ``{what}_serializer`` returned)."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if serialized:
        raise SerializationError(f"the producer's {what}_serializer returned {type(obj).__name__}; it must return "
                                 "bytes (or None): fix the serializer")
    hint = f" or give the producer a {what}_serializer" if what in ("key", "value") else ""
    raise SerializationError(f"record {what} must be bytes (or None), got {type(obj).__name__}; "
                             f"encode it first{hint}")


_BYTES_OR_NONE = frozenset({bytes, type(None)})
_STR = {str}
_TUPLE = {tuple}
_first = itemgetter(0)
_INT = {int}
_HeaderSet = tuple[tuple[str, bytes | None], ...]


def _valid_pairs(headers: tuple[Any, ...]) -> _HeaderSet | None:
    """``headers`` if it is the common shape — (ascii str, bytes or None) pairs, at most
    65535 of them — else None (the caller then takes ``_check_headers``)."""
    for item in headers:
        if item.__class__ is not tuple or len(item) != 2:
            return None
        name, value = item
        if (name.__class__ is not str or (value.__class__ is not bytes and value is not None) or not name.isascii()
                or len(name) > 0xFFFF):
            return None
    if len(headers) > 0xFFFF:
        return None
    return headers


def _header_bytes(headers: Any) -> int:
    """Bytes of a checked header set's names (UTF-8) and values: part of a record's size
    against ``max.message.bytes``.  ``headers``: a tuple of pairs, or one pair."""
    if headers.__class__ is tuple and len(headers) == 2 and headers[0].__class__ is str:
        headers = (headers,)
    return sum(len(n.encode()) + (0 if v is None else len(v)) for n, v in headers)


def _check_headers(headers: object) -> _HeaderSet | None:
    """Validate headers now, so that nothing can fail later when the batch is encoded; a
    copy (the caller may reuse its list), or None for no headers."""
    if headers.__class__ is list or headers.__class__ is tuple:
        valid = _valid_pairs(tuple(headers))
        if valid is not None:
            return valid or None
    if isinstance(headers, (str, bytes, bytearray, memoryview, int, float)):  # ("" or 0 must not mean "none")
        raise SerializationError(f"headers must be a list of (str, bytes) pairs or a dict, got {headers!r}")
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, bytes | None]] = []
    try:
        for item in items:  # type: ignore[attr-defined]
            if isinstance(item, (str, bytes, bytearray)):  # ("ab" would unpack as the pair "a", "b")
                raise SerializationError(f"each header must be a (str, bytes) pair, got {type(item).__name__} "
                                         f"{item!r}")
            name, value = item
            if not isinstance(name, str):
                raise SerializationError(f"header names must be str, got {type(name).__name__}")
            try:
                if len(name.encode("utf-8")) > 0xFFFF:
                    raise SerializationError("a header name is longer than 65535 bytes")
            except UnicodeEncodeError:
                raise SerializationError(f"header name {name!r} is not valid unicode") from None
            if value is not None and type(value) is not bytes:
                out.append((name, value.encode() if isinstance(value, str) else _coerce(value, "header value")))
            else:
                out.append((name, value))
    except SerializationError:
        raise
    except (TypeError, ValueError):
        raise SerializationError("headers must be a list of (str, bytes) pairs or a dict") from None
    if len(out) > 0xFFFF:
        raise SerializationError(f"a record can carry at most 65535 headers, got {len(out)}")
    return tuple(out) or None


def _as_set(headers: Any) -> Any:
    """A list or tuple of header pairs as a tuple (anything else as it is, for ``_checked_set``)."""
    return tuple(headers) if headers.__class__ is list or headers.__class__ is tuple else headers


def _checked_set(hdrs: Any) -> _HeaderSet:
    """``hdrs`` (from ``_as_set``) validated: ``()`` for none; ``SerializationError`` if bad."""
    checked = _valid_pairs(hdrs) if hdrs.__class__ is tuple else None
    if checked is None:
        checked = _check_headers(hdrs) or ()
    return checked


def _header_sets(column: list[Any]) -> list[Any]:
    """A partition's header column as ``codec.encode`` takes it: ``send`` keeps a record's
    only header as the (name, value) pair itself, the other paths a tuple of pairs."""
    first = column[0]
    if first is not None and column[-1] is first and column.count(first) == len(column):  # one object: an app's
        return [(first,)] * len(column) if first[0].__class__ is str else column  # constant headers
    try:
        kinds = set(map(type, map(_first, column)))  # str: a pair; tuple: a tuple of pairs
    except TypeError:  # records without headers (None)
        kinds = set()
    if kinds == _STR:
        return list(zip(column))
    if kinds == _TUPLE:
        return column
    return [(h,) if h is not None and h[0].__class__ is str else h for h in column]


class _PySendBase:
    """``Producer.send`` in Python: the reference for ``embedlog._speedups.SendBase``, which
    does the same in C, and what runs where that extension is not built (or with
    ``EMBEDLOG_PURE_PYTHON=1``).  The fields ``send`` reads are declared here; ``Producer``
    sets them and does everything else."""

    _fast: dict[str, _TopicState]
    _last_headers: _HeaderSet
    _last_pair: object
    _last_name: object
    _buffer_limit: int
    _pending: int
    _bytes_limit: int
    _pending_bytes: int
    _due_ms: int
    _due_step: int
    _extras: bool
    _idle: bool
    _closed: bool

    if TYPE_CHECKING:
        def _send(self, topic: str, value: Any, key: Any, headers: Any, partition: int | None,
                  timestamp_ms: int | None, on_delivery: DeliveryCallback | None) -> None: ...
        def _write(self, extra: Callable[[Any], None] | None = None, mark: list[int] | None = None) -> bool: ...
        def _start_linger(self) -> None: ...
        def _linger_write(self) -> bool: ...
        def _buffered(self, entries: int, ms: int | None = None, nbytes: int = 0) -> None: ...
        def _sent_while_closing(self, acc: list[Any], key: Any, value: Any, n: int = 1) -> None: ...

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
        ``max.message.bytes``; nothing is buffered then.
        """
        # The hot path: one call per record, so every operation here is paid a million times
        # a second.  The common case (bytes key and value, a key seen before, no partition or
        # timestamp given) is one dict lookup for the topic, one for the key's partition
        # buffer, the clock, and one append; headers in the common shape (a list of (str,
        # bytes) pairs) add a copy and a comparison with the last header set this producer
        # checked (an app's constant headers) or one check per pair; anything else takes
        # ``_send``.
        try:  # (subscripts, not .get(): a failed lookup is the rare case)
            st = self._fast[topic]
            acc = st.kacc[key]
        except (KeyError, TypeError):  # a new topic or key, no key, an unhashable key, slow mode
            self._send(topic, value, key, headers, partition, timestamp_ms, on_delivery)
            return
        if value.__class__ is bytes and key.__class__ is bytes and partition is None and timestamp_ms is None:
            given = headers
            if headers is not None:
                if headers.__class__ is not list:
                    self._send(topic, value, key, headers, partition, timestamp_ms, on_delivery)
                    return
                if len(headers) == 1:  # one header (an app's, a trace id): kept as the pair itself
                    pair = headers[0]  # (immutable once checked: no copy, nothing new for the GC to track)
                    if pair is not self._last_pair:  # (the same pair object as the last: an app's constant header)
                        if pair.__class__ is not tuple or len(pair) != 2:
                            self._send(topic, value, key, headers, partition, timestamp_ms, on_delivery)
                            return
                        name, hv = pair
                        if (hv.__class__ is not bytes and hv is not None) or (name is not self._last_name and (
                                name.__class__ is not str or not name.isascii() or len(name) > 0xFFFF)):
                            self._send(topic, value, key, headers, partition, timestamp_ms, on_delivery)
                            return
                        self._extras = True  # (set before another thread can find the pair as the last one)
                        self._last_name = name
                        self._last_pair = pair
                    headers = pair
                else:
                    hdrs = tuple(headers)  # a copy: the caller may reuse its list
                    last = self._last_headers
                    try:
                        same = hdrs == last  # (equal content: the checked copy serves)
                    except Exception:  # noqa: BLE001 - an odd value's __eq__: the general path says what is wrong
                        same = False
                    if same:
                        headers = last or None
                    else:
                        checked = _valid_pairs(hdrs)
                        if checked is None:
                            self._send(topic, value, key, hdrs, partition, timestamp_ms, on_delivery)
                            return
                        if checked:  # (set before another thread can find the set as the last one)
                            self._extras = True
                        self._last_headers = checked
                        headers = checked or None
            klen = len(key)
            vlen = len(value)
            if klen + vlen + (0 if headers is None else _header_bytes(headers)) <= st.max_bytes and (
                    on_delivery is None or callable(on_delivery)):
                if on_delivery is not None:
                    self._extras = True
                ms = _time_ns() // 1_000_000
                acc += (key, value, ms, klen, vlen, headers, on_delivery)
                if self._closed:  # (close() began since the lookup above: see Producer._sent_while_closing)
                    self._sent_while_closing(acc, key, value)
                self._buffered(_STRIDE, ms, klen + vlen)  # (the C send does the same inline)
                return
            headers = given
        self._send(topic, value, key, headers, partition, timestamp_ms, on_delivery)


#: ``Producer``'s base: ``_speedups.SendBase`` where the extension is built, else ``_PySendBase``
if TYPE_CHECKING:
    SendBase = _PySendBase
else:
    SendBase = _PySendBase if native.speedups is None else native.speedups.SendBase
