"""Where a single-record ``acks="all"`` flush spends its time, stage by stage.

    python benchmarks/trace_stages.py [--samples N]

Runs ``N`` (default 400, after 50 of warm-up) one-record ``send`` + ``flush()`` with
``acks="all"``: a Leader in one process, a follower subprocess (``bench_replication.py``'s),
both with ``durability="flush"`` on 127.0.0.1.  Every function named in ``TRACED`` is
wrapped, in both processes, to stamp ``time.monotonic_ns()`` on entry (``>``) and exit
(``<``); ``CLOCK_MONOTONIC`` is one clock for every process of the machine.  For each
flush the stamps between its start and its return are numbered in order (``#0`` the first
time a function shows up in that flush, ``#1`` the second...), and the table gives, for
every stamp seen in most flushes, its median offset from the flush's start.  ``L:`` is
the leader's process, ``F:`` the follower's.

Tracing costs ~10% (a Python wrapper a call): read the stages, not the total.  The
wrappers are installed through a ``sitecustomize`` module on ``PYTHONPATH`` (so the
follower subprocess gets them too), written to a temporary directory.
"""

from __future__ import annotations

import argparse
import atexit
import bisect
import collections
import functools
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENV = "EMBEDLOG_TRACE_STAGES_DIR"
#: (module, class or None, function): what is stamped
TRACED = [
    ("embedlog.producer", "Producer", "flush"),
    ("embedlog.storage.env", "Env", "write"),
    ("embedlog.storage.env", "Env", "make_durable"),
    ("embedlog.replication", "LeaderSession", "receive"),
    ("embedlog.replication", "LeaderSession", "_fetch"),
    ("embedlog.replication", "LeaderCore", "_on_ack"),
    ("embedlog.replication", "LeaderCore", "update"),
    ("embedlog.replication", "LeaderCore", "store_pending"),
    ("embedlog.replication", "FollowerCore", "receive"),
    ("embedlog.replication", "FollowerCore", "_apply"),
    ("embedlog.replication", "FollowerCore", "_next_request"),
    ("embedlog.storage.replica", "HighWatermarkBoard", "publish"),
    ("embedlog.storage.replica", None, "read_merged"),
    ("embedlog.storage.replica", None, "apply"),
    ("embedlog.protocol._base", "Connection", "receive_data"),
    ("embedlog.protocol._base", "Connection", "send"),
]
_STAMPS: list[tuple[int, str]] = []


def _wrap(owner: Any, name: str, label: str) -> None:
    fn = getattr(owner, name)
    stamps = _STAMPS
    clock = time.monotonic_ns

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        stamps.append((clock(), label + ">"))
        try:
            return fn(*args, **kwargs)
        finally:
            stamps.append((clock(), label + "<"))

    setattr(owner, name, traced)


def install(out_dir: str) -> None:
    """Wrap every function of ``TRACED``; write the stamps to ``out_dir/<pid>.json`` at exit."""
    for module, cls, name in TRACED:
        mod = importlib.import_module(module)
        owner = getattr(mod, cls) if cls else mod
        _wrap(owner, name, f"{cls or module.rsplit('.', 1)[1]}.{name}")

    @atexit.register
    def _dump() -> None:
        with open(os.path.join(out_dir, f"{os.getpid()}.json"), "w") as f:
            json.dump(_STAMPS, f)


def _run(samples: int, warmup: int) -> None:
    """In the traced process: the leader, a follower subprocess, the flushes."""
    import bench_replication as br  # noqa: PLC0415 - after the tracer is installed

    import embedlog  # noqa: PLC0415
    from embedlog.replication import Leader  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as d, \
            embedlog.open(os.path.join(d, "lead"), maintenance_interval_ms=None) as log:
        log.create_topic(br.TOPIC, 1)
        with Leader(log, secret=br.SECRET) as leader:
            follower = br.FollowerProc(os.path.join(d, "follow"), leader.address)
            try:
                follower.go()
                with log.producer(acks="all") as p:
                    for i in range(warmup + samples):
                        p.send(br.TOPIC, br.VALUE, key=b"key-%d" % (i % 1000))
                        p.flush()
            finally:
                follower.close()


def _table(out_dir: str, warmup: int) -> str:
    stamps: list[tuple[int, str, str]] = []
    leader = None
    for path in Path(out_dir).glob("*.json"):
        pid = path.stem
        for t, label in json.loads(path.read_text()):
            stamps.append((t, label, pid))
            if label == "Producer.flush>":
                leader = pid
    stamps.sort()
    flushes, start = [], None
    for t, label, pid in stamps:
        if pid == leader and label == "Producer.flush>":
            start = t
        elif pid == leader and label == "Producer.flush<" and start is not None:
            flushes.append((start, t))
            start = None
    flushes = flushes[warmup:]
    times = [t for t, _, _ in stamps]
    offsets: dict[str, list[int]] = collections.defaultdict(list)
    for a, b in flushes:
        seen: collections.Counter[str] = collections.Counter()
        for t, label, pid in stamps[bisect.bisect_left(times, a):bisect.bisect_right(times, b)]:
            key = f"{'L' if pid == leader else 'F'}:{label}"
            offsets[f"{key}#{seen[key]}"].append(t - a)
            seen[key] += 1
    rows = sorted((statistics.median(v), k) for k, v in offsets.items() if len(v) > len(flushes) / 2)
    total = statistics.median(b - a for a, b in flushes)
    lines = [f"{len(flushes)} flushes, median {total / 1000:,.0f} µs (traced)", "",
             "| µs after flush() started | stamp |", "|---:|---|"]
    lines += [f"| {m / 1000:,.1f} | `{k}` |" for m, k in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--run", action="store_true", help=argparse.SUPPRESS)  # (the traced child)
    args = ap.parse_args(argv)
    if args.run:
        _run(args.samples, args.warmup)
        return 0
    with tempfile.TemporaryDirectory() as site, tempfile.TemporaryDirectory() as out:
        Path(site, "sitecustomize.py").write_text(
            f"import os\nif os.environ.get({ENV!r}):\n    import trace_stages\n"
            f"    trace_stages.install(os.environ[{ENV!r}])\n")
        src = HERE.parent / "src"
        # (a PYTHONPATH given comes before this checkout's src: A/B runs of another tree)
        path = [site, str(HERE), *filter(None, [os.environ.get("PYTHONPATH")]), str(src)]
        env = {**os.environ, ENV: out, "PYTHONPATH": os.pathsep.join(path)}
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--run", "--samples", str(args.samples),
                        "--warmup", str(args.warmup)], env=env, check=True)
        print(_table(out, args.warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
