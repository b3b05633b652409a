"""A group member that owns many partitions: how its costs grow with their number.

For 1,000, 5,000 and 20,000 partitions (20 topics, one record in each partition), one
member of a new group (``auto_offset_reset="earliest"``, default ``max_poll_records``):

- **join + read all**: from ``log.consumer(...)`` until every record was polled;
- **idle poll(0)**: one ``poll(0)`` once everything was read (nothing new);
- **commit all**: one ``commit()`` of every partition's position.

Each should grow about linearly with the partitions (a poll looks at each one, a commit
writes each one's offset); a per-partition figure that grows with the count means a
quadratic step.  ``python benchmarks/many_partitions.py [--quick]`` prints the table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog

TOPICS = 20


def measure(partitions: int) -> dict[str, float]:
    per = partitions // TOPICS
    names = [f"t{t}" for t in range(TOPICS)]
    with tempfile.TemporaryDirectory(prefix="embedlog-manyparts-") as d, embedlog.open(d) as log:
        for name in names:
            log.create_topic(name, partitions=per)
        with log.producer() as p:
            for name in names:
                for i in range(per):
                    p.send(name, b"x", partition=i)
        t0 = time.perf_counter()
        with log.consumer(names, group="g", auto_offset_reset="earliest", enable_auto_commit=False) as c:
            n = 0
            while n < partitions:
                n += len(c.poll(timeout=5.0))
            read = time.perf_counter() - t0
            t0 = time.perf_counter()
            c.poll(0)
            idle = time.perf_counter() - t0
            t0 = time.perf_counter()
            c.commit()
            commit = time.perf_counter() - t0
    return {"read": read, "idle": idle, "commit": commit}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 and 5,000 partitions only")
    args = ap.parse_args(argv)
    counts = (1_000, 5_000) if args.quick else (1_000, 5_000, 20_000)
    print("| partitions | join + read all | per partition | idle poll(0) | per partition | commit all "
          "| per partition |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in counts:
        r = measure(n)
        print(f"| {n:,} | {r['read'] * 1e3:,.0f} ms | {r['read'] / n * 1e6:.1f} µs | {r['idle'] * 1e3:.1f} ms "
              f"| {r['idle'] / n * 1e6:.2f} µs | {r['commit'] * 1e3:,.0f} ms | {r['commit'] / n * 1e6:.1f} µs |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
