"""Disk use over time under retention.

A producer thread writes without pause to a 1-partition topic with ``retention.bytes``
set (``durability="flush"``; 1,000-byte values, key ``key-{i % 1000}``, ``flush()`` every
1,000 records), while the main thread samples, every ``interval`` seconds: the size of the
whole log directory (what ``du`` would count: LMDB's data file, lock file, heartbeat and
wake-up files), the bytes the partition holds (``describe_topic``) and the bytes produced
so far.  ``retention.bytes`` is enforced as records are written: the partition stays near
the limit, and LMDB reuses the pages freed by retention, so the file stops growing.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from workload import KEYS, dir_bytes

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog

VALUE_SIZE = 1000
FLUSH_EVERY = 1000


def run(path: str, *, seconds: float, retention_bytes: int, interval: float = 0.1) -> dict[str, Any]:
    """Samples ``(t, dir_bytes, partition_bytes, produced_bytes)`` over ``seconds``."""
    value = bytes((i * 37 + 11) % 256 for i in range(VALUE_SIZE))
    keys = [KEYS[i % len(KEYS)] for i in range(FLUSH_EVERY)]
    chunk_bytes = sum(map(len, keys)) + FLUSH_EVERY * VALUE_SIZE
    produced = [0]
    errors: list[BaseException] = []
    stop = threading.Event()
    with embedlog.open(path) as log:
        log.create_topic("ret", partitions=1, config={"retention.bytes": retention_bytes})

        def produce() -> None:
            try:
                with log.producer() as p:
                    while not stop.is_set():
                        for key in keys:
                            p.send("ret", value, key=key)
                        p.flush()
                        produced[0] += chunk_bytes
            except BaseException as exc:
                errors.append(exc)

        samples: list[tuple[float, int, int, int]] = []
        writer = threading.Thread(target=produce, name="retention-producer", daemon=True)
        t0 = time.perf_counter()
        writer.start()
        while True:
            t = time.perf_counter() - t0
            part = log.describe_topic("ret").partitions[0]
            samples.append((round(t, 3), dir_bytes(path), part.bytes, produced[0]))
            if t >= seconds or errors:
                break
            time.sleep(max(0.0, interval - (time.perf_counter() - t0 - t)))
        stop.set()
        writer.join(60)
        desc = log.describe_topic("ret").partitions[0]
        end = {"start_offset": desc.start_offset, "end_offset": desc.end_offset, "bytes": desc.bytes}
    if errors:
        raise errors[0]
    disk = [s[1] for s in samples]
    half = disk[len(disk) // 2:]
    return {"seconds": seconds, "retention_bytes": retention_bytes, "value_size": VALUE_SIZE,
            "samples": samples, "produced_bytes": produced[0], "max_dir_bytes": max(disk),
            "final_dir_bytes": disk[-1], "second_half_growth_bytes": max(half) - min(half), "partition_end": end}
