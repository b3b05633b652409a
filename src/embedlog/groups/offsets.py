"""Committed offsets as values: what a commit accepts, what is stored, what reads return.

A committed offset is the *next* offset to read.  A commit takes, per partition, an
``int`` or an ``(offset, metadata)`` pair — ``OffsetAndMetadata`` is such a pair, and so
are the compat shims' ``OffsetAndMetadata`` tuples.  The stored value is
``schema.COMMITTED`` (offset, leader epoch, commit time) followed by the metadata in
UTF-8.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import InvalidOffsetError
from ..model import TopicPartition
from ..storage import schema

__all__ = ["MAX_METADATA_BYTES", "OffsetAndMetadata", "decode", "encode", "split"]

MAX_METADATA_BYTES = 4096  # Kafka's default offset.metadata.max.bytes
_PAIR = ("offset", "metadata")  # the first fields of an OffsetAndMetadata (ours, kafka-python's, aiokafka's)


class OffsetAndMetadata(NamedTuple):
    """A committed offset (the next offset to read) with its metadata string.

    A ``NamedTuple`` like kafka-python's, so it is also the ``(offset, metadata)`` pair
    a commit accepts.  ``leader_epoch`` is filled in when read back (the partition's
    leader epoch at commit time); a commit ignores it.
    """

    offset: int
    metadata: str = ""
    leader_epoch: int | None = None


def utf8_size(text: str) -> int | None:
    """Bytes of ``text`` in UTF-8, or ``None`` if it cannot be encoded (a lone surrogate)."""
    try:
        return len(text) if text.isascii() else len(text.encode())
    except UnicodeEncodeError:
        return None


def split(tp: TopicPartition, value: Any) -> tuple[int, str]:
    """``(offset, metadata)`` of one commit value — an int, an ``(offset, metadata)`` pair or
    an ``OffsetAndMetadata`` — validated (``InvalidOffsetError``)."""
    offset: object
    metadata: object
    if isinstance(value, int) and not isinstance(value, bool):
        offset, metadata = value, ""
    elif isinstance(value, tuple) and (len(value) == 2 or getattr(value, "_fields", ())[:2] == _PAIR):
        offset, metadata = value[0], value[1]
    else:
        raise InvalidOffsetError(f"commit value for {tp.topic}[{tp.partition}] must be an offset (int) or an "
                                 f"(offset, metadata) pair such as OffsetAndMetadata(42, 'note'), got {value!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidOffsetError(f"offset for {tp.topic}[{tp.partition}] must be an int >= 0, got {offset!r}")
    if metadata is None:
        metadata = ""
    if not isinstance(metadata, str):
        raise InvalidOffsetError(f"metadata for {tp.topic}[{tp.partition}] must be a str or None, got "
                                 f"{type(metadata).__name__}")
    size = utf8_size(metadata)
    if size is None:
        raise InvalidOffsetError(f"metadata for {tp.topic}[{tp.partition}] cannot be encoded as UTF-8 (it holds a "
                                 "lone surrogate); use a valid Unicode string")
    if size > MAX_METADATA_BYTES:
        raise InvalidOffsetError(f"metadata for {tp.topic}[{tp.partition}] is {size} bytes; "
                                 f"the limit is {MAX_METADATA_BYTES} (Kafka's offset.metadata.max.bytes)")
    return offset, metadata


def encode(offset: int, leader_epoch: int, stamp_ms: int, metadata: str) -> bytes:
    """The stored value of a committed offset."""
    return schema.COMMITTED.pack(offset, leader_epoch, stamp_ms) + metadata.encode()


def decode(raw: bytes) -> OffsetAndMetadata:
    """Inverse of ``encode`` (without the commit time)."""
    offset, epoch, _stamp = schema.COMMITTED.unpack_from(raw, 0)
    return OffsetAndMetadata(int(offset), raw[schema.COMMITTED.size:].decode(), int(epoch))
