"""Protocol messages: typed, immutable classes and their byte encoding.

Every payload starts with a one-byte message type; integers are little-endian;
``blob`` is a u32 length and the bytes; ``text`` a blob of UTF-8; optional parts are a
u8 presence flag then the part; lists are a u32 count then the items.  ``decode``
checks every length against the bytes present and refuses trailing bytes, so any
input either decodes to exactly one message or raises ``ProtocolError``.

The exchange (``states.py`` holds the transition tables)::

    follower                                leader
    Hello(version, node, epoch, nonce) ->
                                       <- Challenge(version, node, epoch, nonce,
                                                    epoch leaders, mac)
    Proof(mac)                         ->
    FetchRequest(...)                  ->
                                       <- FetchResponse(...)     (at once, or when
    Ack(durable end offsets)           ->                         data arrives)
    FetchRequest(...)                  ->   ...
    Heartbeat, Error: either way, any time after the handshake (Error also before).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any, Union

import attrs

from .errors import ProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "Ack",
    "AckPartition",
    "Authenticated",
    "Challenge",
    "Diverging",
    "Error",
    "ErrorCode",
    "FetchPartition",
    "FetchRequest",
    "FetchResponse",
    "Heartbeat",
    "Hello",
    "Message",
    "Metadata",
    "PartitionData",
    "PartitionError",
    "Proof",
    "TopicRecord",
    "decode",
    "encode",
    "encode_parts",
]

PROTOCOL_VERSION = 1


class ErrorCode(enum.IntEnum):
    """Codes of ``Error`` messages."""

    PROTOCOL = 1  #: malformed or unexpected message
    AUTHENTICATION = 2  #: the peer's proof does not match the shared secret
    FENCED = 3  #: the leader's epoch is older than the follower's
    VERSION = 4  #: no common protocol version
    NOT_LEADER = 5  #: the node asked to lead is a replica
    INTERNAL = 6  #: the peer failed serving the request (e.g. storage)
    LEAVING = 7  #: the follower stops following (``Follower.close()``): Kafka's controlled shutdown


class PartitionError(enum.IntEnum):
    """Per-partition status in a ``FetchResponse``."""

    NONE = 0
    UNKNOWN_PARTITION = 1  #: the leader has no such topic id/partition (metadata says what it has)


# -- messages --------------------------------------------------------------------------------
@attrs.frozen
class Hello:
    """Follower -> leader: who I am, my epoch, a fresh nonce."""

    version: int
    node_id: str
    epoch: int
    nonce: bytes


@attrs.frozen
class Challenge:
    """Leader -> follower: who I am, my epoch and epoch history owners, my nonce, and
    my proof that I know the secret (HMAC over the Hello and this message)."""

    version: int
    node_id: str
    epoch: int
    nonce: bytes
    #: ``(epoch, node id of the leader that wrote it)`` for the epochs in the leader's log
    epoch_leaders: tuple[tuple[int, str], ...]
    mac: bytes


@attrs.frozen
class Proof:
    """Follower -> leader: the follower's proof that it knows the secret."""

    mac: bytes


@attrs.frozen
class FetchPartition:
    """One partition of a ``FetchRequest``: where the follower's log ends and the epoch
    of its last entry (``-1`` if none), so that the leader can check they agree."""

    topic_id: int
    partition: int
    fetch_offset: int
    last_epoch: int


@attrs.frozen
class FetchRequest:
    """Follower -> leader: send what follows these positions.

    ``metadata_digest`` and ``offsets_digest`` digest the follower's topics and
    committed offsets; the leader sends its own when they differ.  (Digests rather than
    version counters: each node counts its own versions, and a digest also heals a
    follower whose metadata was changed behind the replication's back.)
    """

    correlation_id: int
    follower_id: str
    metadata_digest: bytes
    offsets_digest: bytes
    max_bytes: int
    partitions: tuple[FetchPartition, ...]


@attrs.frozen
class Diverging:
    """The follower's log diverges from the leader's: its largest epoch <= the one
    asked, and where that epoch ends on the leader (KIP-279)."""

    epoch: int
    end_offset: int


@attrs.frozen
class PartitionData:
    """One partition of a ``FetchResponse``."""

    topic_id: int
    partition: int
    error: int
    high_watermark: int
    log_start_offset: int
    end_offset: int
    diverging: Diverging | None
    #: decoded, they are read-only views into the received payload (not copied)
    batches: tuple[bytes | memoryview, ...]


@attrs.frozen
class TopicRecord:
    """A topic as the leader stores it: name and its ``topics`` JSON value."""

    name: str
    record: bytes


@attrs.frozen
class Metadata:
    """The leader's topics (all of them) and its next topic id."""

    next_topic_id: int
    topics: tuple[TopicRecord, ...]


@attrs.frozen
class FetchResponse:
    """Leader -> follower: metadata and committed offsets when they changed, then per
    partition either batches (merged by commit sequence number and cut between
    transactions) or where the follower diverges, with the leader's high watermark,
    log start and end offsets."""

    correlation_id: int
    leader_epoch: int
    in_sync: bool
    metadata: Metadata | None
    offsets: tuple[tuple[bytes, bytes], ...] | None
    partitions: tuple[PartitionData, ...]


@attrs.frozen
class AckPartition:
    """A durable end offset."""

    topic_id: int
    partition: int
    offset: int


@attrs.frozen
class Ack:
    """Follower -> leader: after applying response ``correlation_id``, these end
    offsets are written and fsynced."""

    correlation_id: int
    partitions: tuple[AckPartition, ...]


@attrs.frozen
class Heartbeat:
    """Either way: I am alive (sent when nothing else was for a while)."""

    timestamp_ms: int


@attrs.frozen
class Error:
    """Either way: the sender hit an error and closes the connection."""

    code: int
    message: str


@attrs.frozen
class Authenticated:
    """Event (not a message): the peer proved it knows the secret (or none is used).

    ``epoch_leaders`` is empty on the leader's side."""

    node_id: str
    epoch: int
    epoch_leaders: tuple[tuple[int, str], ...] = ()


Message = Union[Hello, Challenge, Proof, FetchRequest, FetchResponse, Ack, Heartbeat, Error]  # noqa: UP007

# -- encoding ----------------------------------------------------------------------------------
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_FETCH_PART = struct.Struct("<IIQi")
_DATA_HEAD = struct.Struct("<IIBQQQ")
_DIV = struct.Struct("<iq")
_ACK_PART = struct.Struct("<IIQ")
_EPOCH_LEADER = struct.Struct("<i")


class _Writer:
    __slots__ = ("parts",)

    def __init__(self, kind: int) -> None:
        self.parts: list[bytes | memoryview] = [_U8.pack(kind)]

    def add(self, s: struct.Struct, *values: Any) -> None:
        self.parts.append(s.pack(*values))

    def blob(self, data: bytes | memoryview) -> None:
        self.parts.append(_U32.pack(len(data)))
        self.parts.append(data)

    def text(self, s: str) -> None:
        self.blob(s.encode("utf-8"))

    def flag(self, on: bool) -> None:
        self.parts.append(b"\x01" if on else b"\x00")

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 1

    def get(self, s: struct.Struct) -> tuple[Any, ...]:
        end = self.pos + s.size
        if end > len(self.data):
            raise ProtocolError("message is truncated")
        values = s.unpack_from(self.data, self.pos)
        self.pos = end
        return values

    def one(self, s: struct.Struct) -> int:
        value: int = self.get(s)[0]
        return value

    def blob(self) -> bytes:
        n = self.one(_U32)
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError("message is truncated")
        out = self.data[self.pos:end].tobytes()  # the one copy of a blob
        self.pos = end
        return out

    def view(self) -> memoryview:
        """A blob without copying it: a read-only view into the payload."""
        n = self.one(_U32)
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError("message is truncated")
        out = self.data[self.pos:end].toreadonly()
        self.pos = end
        return out

    def text(self) -> str:
        try:
            return self.blob().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("text field is not valid UTF-8") from None

    def flag(self) -> bool:
        v = self.one(_U8)
        if v > 1:
            raise ProtocolError(f"flag byte is {v}, not 0 or 1")
        return v == 1

    def count(self, min_item: int) -> int:
        """A list length, refused when even minimal items would not fit in what is left."""
        n = self.one(_U32)
        if n * min_item > len(self.data) - self.pos:
            raise ProtocolError(f"list of {n} items does not fit in the message")
        return n

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{len(self.data) - self.pos} trailing bytes after the message")


def _enc_hello(m: Hello, w: _Writer) -> None:
    w.add(_U16, m.version)
    w.text(m.node_id)
    w.add(_I32, m.epoch)
    w.blob(m.nonce)


def _dec_hello(r: _Reader) -> Hello:
    return Hello(r.one(_U16), r.text(), r.one(_I32), r.blob())


def _enc_challenge(m: Challenge, w: _Writer) -> None:
    w.add(_U16, m.version)
    w.text(m.node_id)
    w.add(_I32, m.epoch)
    w.blob(m.nonce)
    w.add(_U32, len(m.epoch_leaders))
    for epoch, node in m.epoch_leaders:
        w.add(_EPOCH_LEADER, epoch)
        w.text(node)
    w.blob(m.mac)


def _dec_challenge(r: _Reader) -> Challenge:
    version, node, epoch, nonce = r.one(_U16), r.text(), r.one(_I32), r.blob()
    leaders = tuple((r.one(_EPOCH_LEADER), r.text()) for _ in range(r.count(8)))
    return Challenge(version, node, epoch, nonce, leaders, r.blob())


def _enc_proof(m: Proof, w: _Writer) -> None:
    w.blob(m.mac)


def _dec_proof(r: _Reader) -> Proof:
    return Proof(r.blob())


def _enc_fetch(m: FetchRequest, w: _Writer) -> None:
    w.add(_U64, m.correlation_id)
    w.text(m.follower_id)
    w.blob(m.metadata_digest)
    w.blob(m.offsets_digest)
    w.add(_U32, m.max_bytes)
    w.add(_U32, len(m.partitions))
    w.parts.extend(_FETCH_PART.pack(p.topic_id, p.partition, p.fetch_offset, p.last_epoch) for p in m.partitions)


def _dec_fetch(r: _Reader) -> FetchRequest:
    corr, follower, md, od, max_bytes = r.one(_U64), r.text(), r.blob(), r.blob(), r.one(_U32)
    parts = tuple(FetchPartition(*r.get(_FETCH_PART)) for _ in range(r.count(_FETCH_PART.size)))
    return FetchRequest(corr, follower, md, od, max_bytes, parts)


def _enc_response(m: FetchResponse, w: _Writer) -> None:
    w.add(_U64, m.correlation_id)
    w.add(_I32, m.leader_epoch)
    w.flag(m.in_sync)
    w.flag(m.metadata is not None)
    if m.metadata is not None:
        w.add(_U32, m.metadata.next_topic_id)
        w.add(_U32, len(m.metadata.topics))
        for t in m.metadata.topics:
            w.text(t.name)
            w.blob(t.record)
    w.flag(m.offsets is not None)
    if m.offsets is not None:
        w.add(_U32, len(m.offsets))
        for key, value in m.offsets:
            w.blob(key)
            w.blob(value)
    w.add(_U32, len(m.partitions))
    for p in m.partitions:
        w.add(_DATA_HEAD, p.topic_id, p.partition, p.error, p.high_watermark, p.log_start_offset, p.end_offset)
        w.flag(p.diverging is not None)
        if p.diverging is not None:
            w.add(_DIV, p.diverging.epoch, p.diverging.end_offset)
        w.add(_U32, len(p.batches))
        for b in p.batches:
            w.blob(b)


def _dec_response(r: _Reader) -> FetchResponse:
    corr, epoch, in_sync = r.one(_U64), r.one(_I32), r.flag()
    metadata = None
    if r.flag():
        next_id = r.one(_U32)
        metadata = Metadata(next_id, tuple(TopicRecord(r.text(), r.blob()) for _ in range(r.count(8))))
    offsets = None
    if r.flag():
        offsets = tuple((r.blob(), r.blob()) for _ in range(r.count(8)))
    parts = []
    for _ in range(r.count(_DATA_HEAD.size + 5)):
        tid, part, error, hw, start, end = r.get(_DATA_HEAD)
        div = Diverging(*r.get(_DIV)) if r.flag() else None
        batches = tuple(r.view() for _ in range(r.count(4)))
        parts.append(PartitionData(tid, part, error, hw, start, end, div, batches))
    return FetchResponse(corr, epoch, in_sync, metadata, offsets, tuple(parts))


def _enc_ack(m: Ack, w: _Writer) -> None:
    w.add(_U64, m.correlation_id)
    w.add(_U32, len(m.partitions))
    w.parts.extend(_ACK_PART.pack(p.topic_id, p.partition, p.offset) for p in m.partitions)


def _dec_ack(r: _Reader) -> Ack:
    corr = r.one(_U64)
    return Ack(corr, tuple(AckPartition(*r.get(_ACK_PART)) for _ in range(r.count(_ACK_PART.size))))


def _enc_heartbeat(m: Heartbeat, w: _Writer) -> None:
    w.add(_I64, m.timestamp_ms)


def _dec_heartbeat(r: _Reader) -> Heartbeat:
    return Heartbeat(r.one(_I64))


def _enc_error(m: Error, w: _Writer) -> None:
    w.add(_U16, m.code)
    w.text(m.message)


def _dec_error(r: _Reader) -> Error:
    return Error(r.one(_U16), r.text())


_TYPES: dict[type[Any], tuple[int, Callable[[Any, _Writer], None]]] = {
    Hello: (1, _enc_hello),
    Challenge: (2, _enc_challenge),
    Proof: (3, _enc_proof),
    FetchRequest: (4, _enc_fetch),
    FetchResponse: (5, _enc_response),
    Ack: (6, _enc_ack),
    Heartbeat: (7, _enc_heartbeat),
    Error: (8, _enc_error),
}
_DECODERS: dict[int, Callable[[_Reader], Any]] = {
    1: _dec_hello, 2: _dec_challenge, 3: _dec_proof, 4: _dec_fetch,
    5: _dec_response, 6: _dec_ack, 7: _dec_heartbeat, 8: _dec_error,
}


def encode_parts(message: Message) -> list[bytes | memoryview]:
    """The payload of one message as parts (blobs such as batches are not copied):
    joined, they are ``encode(message)``; frame them with ``frames.frame_parts``."""
    kind, enc = _TYPES[type(message)]
    w = _Writer(kind)
    try:
        enc(message, w)
    except struct.error as exc:
        raise ValueError(f"{type(message).__name__} has a field out of range: {exc}") from None
    return w.parts


def encode(message: Message) -> bytes:
    """The payload of one message (frame it with ``frames.encode_frame``)."""
    return b"".join(encode_parts(message))


def decode(payload: bytes | bytearray | memoryview) -> Message:
    """Decode one payload; raise ``ProtocolError`` unless it is exactly one valid message.

    Blobs come out as ``bytes``, copied from ``payload``, except a ``FetchResponse``'s
    batches: read-only memoryviews into it (no copy; they keep it alive)."""
    with memoryview(payload).cast("B") as view:
        if not view.nbytes:
            raise ProtocolError("empty message")
        dec = _DECODERS.get(view[0])
        if dec is None:
            raise ProtocolError(f"unknown message type {view[0]}")
        r = _Reader(view)
        msg: Message = dec(r)
        r.done()
    return msg
