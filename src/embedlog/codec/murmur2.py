"""Kafka's murmur2 hash and its default partition choice for keyed records.

This is the variant in Kafka's Java client (``org.apache.kafka.common.utils.Utils.murmur2``):
MurmurHash2, 32-bit, seed ``0x9747b28c``, little-endian 4-byte blocks, tail bytes mixed
in the order ``[2], [1], [0]``.  The partition for a key is
``(murmur2(key) & 0x7fffffff) % partitions`` (``Utils.toPositive``).

Pure Python: callers on a hot path cache ``partition_for_key`` per key (see
``embedlog.partitioner``).
"""

from __future__ import annotations

__all__ = ["murmur2", "partition_for_key"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` as a signed 32-bit int, like Java's ``int``."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    blocks = length // 4
    for i in range(0, blocks * 4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    base = blocks * 4
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
