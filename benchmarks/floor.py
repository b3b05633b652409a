"""The raw-LMDB floor of /work/shared/PEERS.md: what the hardware and py-lmdb allow.

Encoding (done before the clock starts): records are packed into batches of 10,000; each
record is ``struct.pack(">IH", 2 + len(key) + len(value), len(key)) + key + value`` —
a 4-byte big-endian length of the record body, then the body (2-byte key length, key,
value).  Writing: each batch is one ``txn.put(offset.to_bytes(8, "big"), batch,
append=True)`` in its own write transaction on an environment opened with
``sync=True`` (fsync per commit, as embedlog's ``durability="flush"``) or ``sync=False``
(the no-sync floor).  Reading: a cursor over a ``buffers=True`` read transaction; each
batch is copied to ``bytes`` once and split into one ``bytes`` object per record (the
record body) by following the length prefixes.

The floor does not separate key from value, build message objects, checksum, index
offsets or store partition state: it is the cost of moving the same bytes through the
same LMDB calls, an upper bound embedlog can approach but not reach.
"""

from __future__ import annotations

import struct
import time

import lmdb
from workload import FLUSH_EVERY, VALUE, chunks

_REC = struct.Struct(">IH")
_LEN = struct.Struct(">I")
_OFFSET = struct.Struct(">Q")


def encode_batches(n: int, batch: int = FLUSH_EVERY) -> list[bytes]:
    """Records ``0..n-1`` pre-encoded in batches of ``batch``."""
    out = []
    value = VALUE
    for keys in chunks(n, batch):
        parts = []
        for key in keys:
            parts.append(_REC.pack(2 + len(key) + len(value), len(key)))
            parts.append(key)
            parts.append(value)
        out.append(b"".join(parts))
    return out


def _open(path: str, size: int, *, sync: bool) -> lmdb.Environment:
    return lmdb.open(path, map_size=max(1 << 28, 2 * size + (64 << 20)), sync=sync, metasync=sync,
                     readahead=False)


def write(path: str, batches: list[bytes], *, sync: bool, batch: int = FLUSH_EVERY) -> float:
    """Append ``batches`` to a fresh environment at ``path``; seconds taken."""
    env = _open(path, sum(map(len, batches)), sync=sync)
    try:
        pack = _OFFSET.pack
        t0 = time.perf_counter()
        for j, buf in enumerate(batches):
            with env.begin(write=True) as txn:
                txn.put(pack(j * batch), buf, append=True)
        return time.perf_counter() - t0
    finally:
        env.close()


def split(buf: bytes) -> list[bytes]:
    """One ``bytes`` per record body of an encoded batch."""
    out: list[bytes] = []
    append = out.append
    unpack_from = _LEN.unpack_from
    pos = 0
    end = len(buf)
    while pos < end:
        (size,) = unpack_from(buf, pos)
        pos += 4
        append(buf[pos:pos + size])
        pos += size
    return out


def read(path: str) -> tuple[float, int]:
    """Read every batch at ``path`` back and split it; (seconds, records)."""
    env = lmdb.open(path, readonly=True, lock=False)  # (OS readahead on, as embedlog opens it)
    try:
        t0 = time.perf_counter()
        count = 0
        with env.begin(buffers=True) as txn:
            for _key, value in txn.cursor():
                count += len(split(bytes(value)))
        return time.perf_counter() - t0, count
    finally:
        env.close()


def commit_latencies(path: str, samples: int, *, sync: bool) -> list[int]:
    """Nanoseconds of ``samples`` one-record write transactions (put with append, commit)."""
    env = _open(path, 0, sync=sync)
    try:
        record = encode_batches(1, 1)[0]
        pack = _OFFSET.pack
        out = []
        for i in range(samples):
            t0 = time.monotonic_ns()
            with env.begin(write=True) as txn:
                txn.put(pack(i), record, append=True)
            out.append(time.monotonic_ns() - t0)
        return out
    finally:
        env.close()
