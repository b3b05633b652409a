"""Throughput against record size: embedlog produce and consume beside the raw-LMDB floor.

For each value size (10 B to 100 KB) the same records — key ``key-{i % 1000}``, a value of
that size — go through embedlog (1 partition, ``durability="flush"``, ``send`` each record,
``flush()`` after every batch; then a fresh consumer with ``auto_offset_reset="earliest"``
polls them all) and through the floor of ``floor.py`` (the same batches pre-encoded,
one LMDB write transaction with ``sync=True`` per batch; read back with a cursor and split
per record).  A batch is 10,000 records or 4 MB, whichever is fewer, for both.  The
number of records per size is ``budget / size`` within ``[200, max_records]``.  Floor and
embedlog alternate round by round; each figure is the median of ``runs`` rounds.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import floor
from workload import KEYS, median, scratch_dir

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog

SIZES = (10, 100, 1_000, 10_000, 100_000)
BATCH_BYTES = 4 << 20
_REC = struct.Struct(">IH")


def plan(size: int, budget: int, max_records: int) -> tuple[int, int]:
    """(records, records per batch) for values of ``size`` bytes."""
    n = max(200, min(max_records, budget // (size + 6)))
    return n, max(1, min(10_000, BATCH_BYTES // (size + 6)))


def _keys(start: int, stop: int) -> list[bytes]:
    return [KEYS[i % len(KEYS)] for i in range(start, stop)]


def _payload(n: int, value: bytes) -> int:
    return sum(len(KEYS[i % len(KEYS)]) for i in range(n)) + n * len(value)


def _encode(n: int, batch: int, value: bytes) -> list[bytes]:
    """``floor.py``'s batch format for these records."""
    out = []
    for start in range(0, n, batch):
        parts = []
        for key in _keys(start, min(n, start + batch)):
            parts += [_REC.pack(2 + len(key) + len(value), len(key)), key, value]
        out.append(b"".join(parts))
    return out


def _produce(log: embedlog.Log, n: int, batch: int, value: bytes) -> float:
    chunks = [_keys(s, min(n, s + batch)) for s in range(0, n, batch)]
    with log.producer() as p:
        send, flush = p.send, p.flush
        t0 = time.perf_counter()
        for keys in chunks:
            for key in keys:
                send("sz", value, key=key)
            flush()
        return time.perf_counter() - t0


def _consume(log: embedlog.Log, n: int, value: bytes) -> float:
    with log.consumer(["sz"], auto_offset_reset="earliest") as c:
        got = 0
        last: list[embedlog.Message] = []
        t0 = time.perf_counter()
        while got < n:
            batch = c.poll(timeout=5.0)
            if not batch:
                raise RuntimeError(f"consumer got nothing for 5 s after {got} of {n} records")
            got += len(batch)
            last = batch
        seconds = time.perf_counter() - t0
    if got != n or last[-1].value != value:
        raise RuntimeError(f"consumer read {got} records (expected {n}) or wrong data")
    return seconds


def run(root: str, *, sizes: tuple[int, ...] = SIZES, budget: int = 20_000_000, max_records: int = 200_000,
        runs: int = 1, progress: Callable[[str], None] = lambda _m: None) -> list[dict[str, Any]]:
    """One row per size: records, payload bytes and median seconds of the four measurements."""
    rows = []
    for size in sizes:
        n, batch = plan(size, budget, max_records)
        value = bytes((i * 37 + 11) % 256 for i in range(size))
        batches = _encode(n, batch, value)
        got: dict[str, list[float]] = {"floor_write": [], "floor_read": [], "produce": [], "consume": []}
        error = ""
        for _ in range(runs):
            with scratch_dir(root, "size-floor") as d:
                got["floor_write"].append(floor.write(d, batches, sync=True, batch=batch))
                seconds, count = floor.read(d)
                if count != n:
                    raise RuntimeError(f"floor read {count} records, expected {n}")
                got["floor_read"].append(seconds)
            try:
                with scratch_dir(root, "size-embedlog") as d, embedlog.open(d) as log:
                    log.create_topic("sz", partitions=1)
                    got["produce"].append(_produce(log, n, batch, value))
                    got["consume"].append(_consume(log, n, value))
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        row: dict[str, Any] = {"size": size, "records": n, "batch": batch, "payload_bytes": _payload(n, value),
                               "runs": runs, "error": error}
        for k, v in got.items():
            row[f"{k}_s"] = median(v)
            row[f"{k}_runs"] = v
        rows.append(row)
        progress(f"size {size:,} B: {n:,} records, produce {n / row['produce_s']:,.0f}/s, consume "
                 f"{n / row['consume_s']:,.0f}/s, floor {n / row['floor_write_s']:,.0f} w/s "
                 f"{n / row['floor_read_s']:,.0f} r/s" + (f" ERROR {error}" if error else ""))
    return rows
