"""Group commit: many threads each sending one record and then ``flush()``, in a loop.

A record counts once the ``flush()`` after its ``send`` returned: with
``durability="flush"`` it is then fsynced.  Threads either each have their own
``Producer`` on one ``Log`` or share one ``Producer``.  After the run the topic's end
offset must equal the number of records counted (nothing lost, nothing extra).
"""

from __future__ import annotations

import sys
import threading
import time

from workload import KEYS, VALUE

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog


def run(path: str, *, threads: int, seconds: float, shared: bool,
        durability: str = "flush") -> dict[str, float | int | str]:
    """Durable records per second of ``threads`` send+flush loops for ``seconds``."""
    with embedlog.open(path, durability=durability) as log:
        log.create_topic("gc", partitions=1)
        common = log.producer() if shared else None
        producers = [common if common is not None else log.producer() for _ in range(threads)]
        counts = [0] * threads
        errors: list[BaseException] = []
        stop = threading.Event()
        start = threading.Barrier(threads + 1)

        def worker(i: int) -> None:
            p = producers[i]
            assert p is not None
            key = KEYS[i]
            n = 0
            start.wait()
            try:
                while not stop.is_set():
                    p.send("gc", VALUE, key=key)
                    p.flush()
                    n += 1
            except BaseException as exc:
                errors.append(exc)
            counts[i] = n

        pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
        for t in pool:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for t in pool:
            t.join(60)
        elapsed = time.perf_counter() - t0
        if errors:
            raise errors[0]
        total = sum(counts)
        end = log.describe_topic("gc").partitions[0].end_offset
        for p in {id(p): p for p in producers}.values():
            assert p is not None
            p.close()
        commit_note = "" if end == total else f"end offset {end} != {total} records flushed"
    return {"records": total, "seconds": elapsed, "records_per_s": total / elapsed,
            "end_offset": end, "check": commit_note or "ok"}
