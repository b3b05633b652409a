"""Sizes of a record as Kafka's record batch (v2) encodes it: what the clients' size
checks count (librdkafka's ``message.max.bytes``, aiokafka's ``BatchBuilder``)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["headers_size", "varint_size"]


def varint_size(n: int) -> int:
    """Bytes of ``n`` as Kafka's zig-zag varint."""
    z = (n << 1) ^ (n >> 63)
    size = 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def headers_size(headers: Iterable[tuple[str, bytes | None]]) -> int:
    """Bytes ``headers`` take in a record: each name and value with its varint length
    (``None``: length -1, one byte)."""
    total = 0
    for name, value in headers:
        n = len(name.encode("utf-8"))
        total += varint_size(n) + n
        total += 1 if value is None else varint_size(len(value)) + len(value)
    return total
