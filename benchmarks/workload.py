"""The workload every row of the core benchmark shares, and small measurement helpers.

Records: key ``key-{i % 1000}`` (ASCII), a fixed 100-byte value, no headers, no
compression.  "MB/s" counts payload bytes only (key + value, on average 106.89 bytes a
record) in units of 10**6 bytes, the same way for embedlog, the floor and every peer.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

VALUE_SIZE = 100
DISTINCT_KEYS = 1000
FLUSH_EVERY = 10_000
VALUE = bytes((i * 37 + 11) % 256 for i in range(VALUE_SIZE))
KEYS = [f"key-{i}".encode() for i in range(DISTINCT_KEYS)]
# FLUSH_EVERY is a multiple of DISTINCT_KEYS, so every chunk of 10,000 records starting at a
# multiple of 10,000 has exactly these keys, in this order: the timed loops iterate over it
# and do no per-record index arithmetic of their own.
CHUNK_KEYS = [KEYS[i % DISTINCT_KEYS] for i in range(FLUSH_EVERY)]


def key_of(i: int) -> bytes:
    """The key of record ``i``."""
    return KEYS[i % DISTINCT_KEYS]


def chunks(n: int, size: int = FLUSH_EVERY) -> Iterator[list[bytes]]:
    """Key lists of consecutive chunks of ``size`` records covering records ``0..n-1``."""
    for start in range(0, n, size):
        if size == FLUSH_EVERY and start + size <= n:
            yield CHUNK_KEYS
        else:
            yield [key_of(i) for i in range(start, min(n, start + size))]


def payload_bytes(n: int) -> int:
    """Key + value bytes of records ``0..n-1``."""
    full, rest = divmod(n, DISTINCT_KEYS)
    key_bytes = full * sum(map(len, KEYS)) + sum(len(KEYS[i]) for i in range(rest))
    return key_bytes + n * VALUE_SIZE


def rate(n: int, seconds: float) -> float:
    """Records per second."""
    return n / seconds if seconds > 0 else float("inf")


def mb_per_s(n: int, seconds: float) -> float:
    """Payload megabytes (10**6 bytes) per second."""
    return payload_bytes(n) / 1e6 / seconds if seconds > 0 else float("inf")


def median(values: Sequence[float]) -> float:
    """The median (nan for no values)."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[idx]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Run ``fn`` once; (seconds, result)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


@contextmanager
def scratch_dir(root: str, name: str) -> Iterator[str]:
    """A fresh directory under ``root``, removed afterwards."""
    path = tempfile.mkdtemp(prefix=f"{name}-", dir=root)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def evict_page_cache(directory: str) -> bool:
    """Drop the files of ``directory`` from the OS page cache (``posix_fadvise``
    DONTNEED, after an fsync so that every page is clean), so that the next read comes
    from the disk.  Pages some process still maps stay: close the log first.  False
    where the OS has no ``posix_fadvise``."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> bool:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def dir_bytes(path: str) -> int:
    """Total size of the files under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with suppress(OSError):  # a file removed while we walk
                total += os.path.getsize(os.path.join(root, f))
    return total
