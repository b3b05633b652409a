"""Partition choice for produced records.

Names follow librdkafka's ``partitioner`` setting; the default is Kafka's Java client
(``murmur2_random``): keyed records go to ``(murmur2(key) & 0x7fffffff) % n``, records
without a key stick to one partition per batch (KIP-480).

A custom partitioner is a callable ``(key: bytes | None, partitions: int) -> int``.

Hashes are cached per key: a bounded dict turns the pure-Python hash into one dict
lookup for the keys a producer sees again and again.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable

from .codec.murmur2 import murmur2
from .errors import ConfigError

__all__ = ["NAMES", "KeyHasher", "Partitioner", "resolve"]

Partitioner = Callable[[bytes | None, int], int]
_CACHE_LIMIT = 65_536


def _murmur2_positive(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def _crc32(key: bytes) -> int:
    return zlib.crc32(key)


def _fnv1a(key: bytes) -> int:
    h = 0x811C9DC5
    for b in key:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


class KeyHasher:
    """Hash function for keys plus what to do with a null key ("sticky" or "random")."""

    def __init__(self, hash_fn: Callable[[bytes], int], null_key: str, empty_is_null: bool = False) -> None:
        self.hash_fn = hash_fn
        self.null_key = null_key
        self.empty_is_null = empty_is_null
        self._cache: dict[bytes, int] = {}

    def hash(self, key: bytes) -> int:
        """The key's non-negative hash (cached)."""
        h = self._cache.get(key)
        if h is None:
            h = self.hash_fn(key)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = h
        return h


def _abs_fnv(key: bytes) -> int:
    return abs(_fnv1a(key))


#: partitioner name -> (hash, null-key behaviour, empty key treated as null)
NAMES: dict[str, tuple[Callable[[bytes], int], str, bool]] = {
    "murmur2_random": (_murmur2_positive, "sticky", False),  # Java client default
    "murmur2": (_murmur2_positive, "hash", False),
    "consistent_random": (_crc32, "sticky", True),  # librdkafka default
    "consistent": (_crc32, "hash", False),
    "fnv1a_random": (_abs_fnv, "sticky", False),  # (only a NULL key is random: librdkafka hashes b"")
    "fnv1a": (_abs_fnv, "hash", False),
    "random": (_crc32, "random", False),
}


def resolve(partitioner: str | Partitioner | None) -> KeyHasher | Partitioner:
    """A ``KeyHasher`` for a known name (``None`` is ``murmur2_random``), or the callable."""
    if partitioner is None:
        partitioner = "murmur2_random"
    if isinstance(partitioner, str):
        try:
            fn, null_key, empty = NAMES[partitioner]
        except KeyError:
            raise ConfigError(f"unknown partitioner {partitioner!r}; use one of {', '.join(NAMES)} "
                              "or a callable (key, partitions) -> partition") from None
        return KeyHasher(fn, null_key, empty)
    if callable(partitioner):
        return partitioner
    raise ConfigError(f"partitioner must be a name or a callable, got {type(partitioner).__name__}")


def random_partition(partitions: int, avoid: int | None = None) -> int:
    """A random partition, different from ``avoid`` when there is a choice."""
    if partitions <= 1:
        return 0
    p = random.randrange(partitions - 1) if avoid is not None else random.randrange(partitions)
    if avoid is not None and p >= avoid:
        p += 1
    return p
