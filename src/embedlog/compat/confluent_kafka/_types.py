"""``TopicPartition``, ``Message`` and the offset/timestamp constants of confluent-kafka.

As for errors, the real client's classes are used when confluent-kafka is installed
(application code builds ``confluent_kafka.TopicPartition`` objects and compares them
with the ones the shim returns; real ``TopicPartition`` equality refuses other types),
and the pure-Python equivalents below otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import _REAL, KafkaError, kafka_exception, name_fallbacks

__all__ = [
    "OFFSET_BEGINNING", "OFFSET_END", "OFFSET_INVALID", "OFFSET_STORED",
    "TIMESTAMP_CREATE_TIME", "TIMESTAMP_LOG_APPEND_TIME", "TIMESTAMP_NOT_AVAILABLE",
    "Message", "PyMessage", "PyTopicPartition", "TopicPartition",
    "encode_headers", "make_message", "to_bytes", "tp_fields",
]

OFFSET_BEGINNING = -2
OFFSET_END = -1
OFFSET_STORED = -1000
OFFSET_INVALID = -1001
#: librdkafka's ``RD_KAFKA_OFFSET_TAIL(n)`` is this minus ``n``: ``n`` records before the end
OFFSET_TAIL_BASE = -2000


def valid_start(offset: int) -> bool:
    """Whether librdkafka takes ``offset`` as a start offset: an offset, a logical one
    (``OFFSET_END``, ``_BEGINNING``, ``_STORED``, ``_INVALID``) or a tail offset."""
    return offset >= OFFSET_END or offset in (OFFSET_BEGINNING, OFFSET_STORED, OFFSET_INVALID) or (
        offset <= OFFSET_TAIL_BASE)

TIMESTAMP_NOT_AVAILABLE = 0
TIMESTAMP_CREATE_TIME = 1
TIMESTAMP_LOG_APPEND_TIME = 2

Headers = list[tuple[str, bytes | None]]


class PyTopicPartition:
    """A topic, a partition and an offset (plus metadata, leader epoch, error).

    ``topic``, ``metadata``, ``leader_epoch`` and ``error`` are read-only;
    ``partition`` and ``offset`` can be set.  Equal and hashed by topic and partition.
    """

    __slots__ = ("_error", "_leader_epoch", "_metadata", "_topic", "offset", "partition")

    def __init__(self, topic: str, partition: int = -1, offset: int = OFFSET_INVALID,
                 metadata: str | None = None, leader_epoch: int | None = None) -> None:
        if not isinstance(topic, str):
            raise TypeError(f"argument 1 must be str, not {type(topic).__name__}")
        self._topic = topic
        self.partition = _as_int(partition)
        self.offset = _as_int(offset)
        self._metadata = metadata
        self._leader_epoch = None if leader_epoch is None else _as_int(leader_epoch)
        self._error: KafkaError | None = None

    @property
    def topic(self) -> str:
        """The topic name."""
        return self._topic

    @property
    def metadata(self) -> str | None:
        """Commit metadata."""
        return self._metadata

    @property
    def leader_epoch(self) -> int | None:
        """The leader epoch, when known."""
        return self._leader_epoch

    @property
    def error(self) -> KafkaError | None:
        """A per-partition error of the call that returned this object."""
        return self._error

    def __repr__(self) -> str:
        return (f"TopicPartition{{topic={self._topic},partition={self.partition},offset={self.offset},"
                f"leader_epoch={self._leader_epoch},error={self._error}}}")

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PyTopicPartition):
            return NotImplemented
        return self._topic == other._topic and self.partition == other.partition

    def __lt__(self, other: PyTopicPartition) -> bool:
        return (self._topic, self.partition) < (other._topic, other.partition)

    def __hash__(self) -> int:
        return hash(self._topic) ^ self.partition


def _as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    return value


class PyMessage:
    """A consumed message, a delivery report, or an event (``error()`` is not ``None``)."""

    __slots__ = ("_error", "_headers", "_key", "_latency", "_leader_epoch", "_offset", "_partition",
                 "_timestamp", "_topic", "_value")

    __hash__ = None  # type: ignore[assignment] # like the real one: unhashable

    def __init__(self, topic: str | None = None, partition: int | None = None, offset: int | None = None,
                 key: Any = None, value: Any = None, headers: Headers | None = None,
                 error: KafkaError | None = None, timestamp: tuple[int, int] | None = None,
                 latency: float | None = None, leader_epoch: int | None = None) -> None:
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._key = key
        self._value = value
        self._headers = headers
        self._error = error
        self._timestamp = timestamp if timestamp is not None else (TIMESTAMP_NOT_AVAILABLE, 0)
        self._latency = latency
        self._leader_epoch = leader_epoch

    def topic(self) -> str | None:
        """The topic."""
        return self._topic

    def partition(self) -> int | None:
        """The partition, or ``None`` when unknown."""
        return self._partition if self._partition is not None and self._partition >= 0 else None

    def offset(self) -> int | None:
        """The offset, or ``None`` when not known (failed delivery)."""
        return self._offset if self._offset is not None and self._offset >= 0 else None

    def key(self) -> Any:
        """The key (``bytes`` or ``None``)."""
        return self._key

    def value(self) -> Any:
        """The value (``bytes`` or ``None``); for an event, its description."""
        return self._value

    def deserialized_key(self) -> Any:
        """Same as ``key()``."""
        return self._key

    def deserialized_value(self) -> Any:
        """Same as ``value()``."""
        return self._value

    def headers(self) -> Headers | None:
        """Headers as a list of ``(str, bytes | None)``, or ``None`` when there are none."""
        return self._headers

    def error(self) -> KafkaError | None:
        """``None`` for a message; the ``KafkaError`` of an event or failed delivery."""
        return self._error

    def timestamp(self) -> tuple[int, int]:
        """``(TIMESTAMP_CREATE_TIME | TIMESTAMP_LOG_APPEND_TIME | TIMESTAMP_NOT_AVAILABLE, ms)``."""
        return self._timestamp

    def latency(self) -> float | None:
        """Seconds from produce to delivery report (delivery reports only)."""
        return self._latency if self._latency is not None and self._latency >= 0 else None

    def leader_epoch(self) -> int | None:
        """The leader epoch of the partition when the message was written."""
        return self._leader_epoch if self._leader_epoch is not None and self._leader_epoch >= 0 else None

    def delivery_count(self) -> int | None:
        """Share-group delivery count (always ``None`` here)."""
        return None

    def set_headers(self, headers: Headers | None) -> None:
        """Replace the headers."""
        self._headers = headers

    def set_key(self, key: Any) -> None:
        """Replace the key."""
        self._key = key

    def set_value(self, value: Any) -> None:
        """Replace the value."""
        self._value = value

    def set_topic(self, topic: str) -> None:
        """Replace the topic."""
        self._topic = topic

    def set_error(self, error: KafkaError | None) -> None:
        """Replace the error."""
        self._error = error

    def __len__(self) -> int:
        v = self._value
        return len(v) if isinstance(v, (bytes, bytearray, str)) else 0

    def __repr__(self) -> str:
        return (f"<Message topic={self._topic!r} partition={self._partition} offset={self._offset} "
                f"error={self._error}>")


def _real_message_works() -> bool:
    """Whether the real ``Message`` can be made from Python, as ``make_message`` does
    (positional arguments, -1 for no latency and no leader epoch)."""
    try:
        m = _REAL.Message("t", 0, 0, None, b"", None, None, (TIMESTAMP_CREATE_TIME, 0), -1, -1)
    except Exception:  # noqa: BLE001 - confluent-kafka before the Message constructor
        return False
    return m.latency() is None and m.leader_epoch() is None and m.offset() == 0


name_fallbacks(PyTopicPartition, PyMessage)

if TYPE_CHECKING:
    TopicPartition = PyTopicPartition
    Message = PyMessage
else:
    TopicPartition = _REAL.TopicPartition if _REAL is not None else PyTopicPartition
    Message = _REAL.Message if _REAL is not None and _real_message_works() else PyMessage


def make_message(topic: str | None, partition: int | None, offset: int | None, key: Any, value: Any,
                 headers: Headers | None, timestamp: tuple[int, int], *, error: KafkaError | None = None,
                 latency: float | None = None, leader_epoch: int | None = None) -> Message:
    """A ``Message`` of the class in use (``None`` fields are given as the real class's
    constructor takes them: -1, or ``OFFSET_INVALID`` for the offset)."""
    return Message(topic, -1 if partition is None else partition, OFFSET_INVALID if offset is None else offset,
                   key, value, headers, error, timestamp, -1 if latency is None else latency,
                   -1 if leader_epoch is None else leader_epoch)


def tp_fields(obj: object) -> tuple[str, int, int]:
    """``(topic, partition, offset)`` of any TopicPartition-like object (ours or the real one)."""
    try:
        topic = obj.topic  # type: ignore[attr-defined]
        partition = obj.partition  # type: ignore[attr-defined]
        offset = getattr(obj, "offset", OFFSET_INVALID)
    except AttributeError:
        raise TypeError(f"expected a TopicPartition, got {type(obj).__name__}") from None
    if not isinstance(topic, str) or not isinstance(partition, int) or not isinstance(offset, int):
        raise TypeError(f"expected a TopicPartition, got {obj!r}")
    return topic, partition, offset


def tp_list(partitions: object) -> list[tuple[str, int, int]]:
    """Fields of a list of TopicPartitions (a ``list`` is required, like the real client)."""
    if not isinstance(partitions, list):  # (the real client refuses a tuple too)
        raise TypeError("requires list of TopicPartition")
    return [tp_fields(p) for p in partitions]


def to_bytes(obj: Any, what: str) -> bytes | None:
    """A key or value as produced: ``str`` is UTF-8 encoded, ``bytes`` and ``None`` kept.
    Like the real client's argument parsing, other bytes-like objects (``bytearray``,
    ``memoryview``: writable or releasable buffers) are refused."""
    if obj is None or type(obj) is bytes:
        return obj
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, bytes):
        return bytes(obj)
    try:
        memoryview(obj).release()
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(obj).__name__}'") from None
    raise TypeError(f"argument {3 if what == 'key' else 2} must be read-only bytes-like object, "
                    f"not {type(obj).__name__}")


def encode_headers(headers: Iterable[Any] | Mapping[Any, Any] | None) -> Headers | None:
    """Headers as confluent-kafka takes them: a list of ``(key, value)`` or a dict;
    ``str`` values are UTF-8 encoded, ``None`` values kept; a name that is not a ``str``
    becomes ``str(name)`` (``b"k"`` is ``"b'k'"``), as the real client makes it."""
    if headers is None:
        return None
    if headers.__class__ is list:  # the common shape, checked in one pass and handed on as it is (send copies)
        for pair in headers:
            if pair.__class__ is not tuple or len(pair) != 2 or pair[0].__class__ is not str or (
                    pair[1] is not None and pair[1].__class__ is not bytes):
                break
        else:
            return headers
    if isinstance(headers, Mapping):
        pairs = list(headers.items())
    elif isinstance(headers, list):
        pairs = headers
    else:  # (as the real client: not a tuple, not an iterator)
        raise TypeError(f"expected headers to be dict or list of (key, value) tuples, not {type(headers).__name__}")
    out: Headers = []
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError("Headers are expected to be a list of (key, value) tuples")
        name, value = pair
        if name.__class__ is not str:
            name = str(name)
        if value is None or type(value) is bytes:
            out.append((name, value))
        elif isinstance(value, str):
            out.append((name, value.encode("utf-8")))
        elif isinstance(value, bytes):
            out.append((name, bytes(value)))
        else:
            raise TypeError(f"expected header value to be None, binary, or unicode string, not "
                            f"{type(value).__name__}")
    return out


def make_tp(topic: str, partition: int, offset: int = OFFSET_INVALID, *, metadata: str | None = None,
            leader_epoch: int | None = None, error: KafkaError | None = None) -> TopicPartition:
    """A ``TopicPartition`` of the class in use; ``error`` is kept only by the pure-Python one
    (the real class has no way to set it from Python)."""
    extra: dict[str, Any] = {}
    if metadata is not None:
        extra["metadata"] = metadata
    if leader_epoch is not None:
        extra["leader_epoch"] = leader_epoch
    tp = TopicPartition(topic, partition, offset, **extra)
    if error is not None and isinstance(tp, PyTopicPartition):
        tp._error = error
    return tp


def check_kafka(ok: bool, code: int, reason: str) -> None:
    """Raise ``KafkaException(code, reason)`` unless ``ok``."""
    if not ok:
        raise kafka_exception(code, reason)
