"""Peak memory of a process that consumes a whole large topic.

``fill`` writes the topic (setup, not timed as a result).  ``measure`` runs this file as
a fresh subprocess (``--child``) that opens the log, polls every record and prints JSON:
``ru_maxrss`` (peak resident set, what the target is about) and the peaks of
``RssAnon`` (heap: Python objects, decoded batches) and ``RssFile`` (file pages mapped
in: LMDB's memory map, which the kernel can drop at will) sampled from
``/proc/self/status`` as it reads.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

from workload import FLUSH_EVERY, VALUE, chunks

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog


def fill(path: str, records: int, topic: str = "big") -> float:
    """Write ``records`` records to a 1-partition topic (durability "none": setup only); seconds."""
    t0 = time.perf_counter()
    with embedlog.open(path, durability="none") as log:
        log.create_topic(topic, partitions=1)
        with log.producer() as p:
            send = p.send
            for keys in chunks(records, FLUSH_EVERY * 10):
                for key in keys:
                    send(topic, VALUE, key=key)
                p.flush()
    return time.perf_counter() - t0


def _status_kb() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[name] = int(rest.split()[0])
    return out


def _child(path: str, topic: str, expected: int, max_poll_records: int) -> None:
    with embedlog.open(path) as log:
        before = _status_kb()
        peak = dict(before)
        with log.consumer([topic], auto_offset_reset="earliest", max_poll_records=max_poll_records) as c:
            n = 0
            polls = 0
            t0 = time.perf_counter()
            while n < expected:
                got = len(c.poll(timeout=5.0))
                if not got:
                    break
                n += got
                polls += 1
                if polls % 64 == 0:
                    for k, v in _status_kb().items():
                        peak[k] = max(peak.get(k, 0), v)
            seconds = time.perf_counter() - t0
        for k, v in _status_kb().items():
            peak[k] = max(peak.get(k, 0), v)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # The peak is VmHWM, this process's own high-water mark: getrusage's ru_maxrss of a
    # fork+exec'd child starts at its parent's RSS on Linux (the parent here filled 1 GB).
    print(json.dumps({"records": n, "seconds": seconds, "ru_maxrss_kb": _status_kb()["VmHWM"],
                      "getrusage_maxrss_kb": usage.ru_maxrss,
                      "before_kb": before, "peak_kb": peak}))


def measure(path: str, expected: int, max_poll_records: int, topic: str = "big") -> dict[str, object]:
    """Run the consuming child; its JSON report."""
    proc = subprocess.run([sys.executable, __file__, "--child", path, topic, str(expected), str(max_poll_records)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"rss child failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)
