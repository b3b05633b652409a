"""The replication benchmark (issue 7): acks="all" against acks="leader", acks="all" flush
latency, and how fast a new empty follower catches up, each beside its reference
measured in the same run, on loopback.

    python benchmarks/bench_replication.py [--quick] [--records N] [--runs K] [--latency-samples S]

Prints Markdown tables and writes ``benchmarks/results/replication.md`` and
``replication.json`` (``replication-quick.*`` with ``--quick``: 200,000 records, one
round, 300 latency samples; default 1,000,000 records, 3 rounds, 2,000 samples).

The leader runs in this process, as an application runs ``Leader`` beside its
producers; each follower is a subprocess (this file with ``--child-follower``), so the
two nodes share no interpreter.  Both use ``durability="flush"`` and HMAC
authentication over 127.0.0.1.  Workload of ``bench_core.py``: keys ``key-{i % 1000}``,
100-byte values, 1 partition.  The rows:

* **throughput** (per round, fresh directories): N records sent and ``flush()``ed every
  10,000 on a log with no Leader (the reference without replication); then on a new log
  with a Leader and one connected follower, with ``acks="leader"`` and ``acks="all"``
  (order alternating by round; before each run the follower has caught up).  Target:
  acks="all" at least 50% of acks="leader".
* **latency**: one record ``send`` + ``flush()`` at a time (so nothing queues), with a
  Leader and one follower; ``acks="all"`` and ``acks="leader"``; and ``acks="all"``
  with the leader's ``durability="none"`` (the follower still fsyncs before it
  acknowledges).  The floor: one one-record LMDB sync commit.  Targets: acks="all"
  p50 under 1 ms, p99 under 5 ms.
* **catch-up**: the leader log a throughput round left (2N records) is served to a new
  empty follower subprocess; the time runs from just before ``Follower(...)`` (the log
  already open) until the follower's partitions hold every record (looked at after
  each of the follower's commits, in the follower process); the follower sends its next
  fetch before it applies a response of batches, so the leader reads and sends the next
  one meanwhile, and its connection's thread receives, decodes and checks it meanwhile
  while another thread applies (writes and fsyncs) the one before
  (``replication._Applier``).  The floor writes the same stored batch bytes to a fresh LMDB
  environment with ``sync=True``, ``put(key, batch, append=True)``, one write
  transaction per ~1 MB, just before and just after the follower runs (the mean of the
  two).  MB = 10^6 bytes of stored batches.  Target: at least 50% of the floor's MB/s.

``--only latency`` or ``--only catchup`` runs one section (catch-up then serves a log
of 2N records written without replication) and prints its table without writing the
results files: for quick before/after comparisons.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_core
import floor
import lmdb
from report import num, pct, progress_printer, table, times, us, verdict, write_results
from workload import FLUSH_EVERY, VALUE, chunks, median, payload_bytes, percentile, rate, scratch_dir

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog

from embedlog.replication import Follower, Leader, replication_status
from embedlog.storage import replica

HERE = Path(__file__).resolve().parent
SECRET = b"embedlog-bench-replication-secret"
TARGETS = {"all_vs_leader": 0.50, "p50_us": 1000, "p99_us": 5000, "catchup_vs_floor": 0.50}
FLOOR_TXN_BYTES = 1 << 20
TOPIC = "bench"


# -- the follower subprocess ---------------------------------------------------------------------------
def child_follower(path: str, leader: str) -> int:
    """Follow ``leader`` into ``path``.  Prints ``{"ready": pid}``; then on stdin: ``go N``
    starts following and prints ``{"started": ns, "caught_up": ns}`` once the partitions
    hold N records (or ``{"started": ns}`` at once with N = 0); ``stop`` closes."""
    log = embedlog.open(path, maintenance_interval_ms=None)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    follower = None
    for line in sys.stdin:
        cmd = line.split()
        if cmd and cmd[0] == "go":
            expect = int(cmd[1])
            t0 = time.monotonic_ns()
            follower = Follower(log, leader, secret=SECRET, backoff_ms=(20, 200))
            out: dict[str, int] = {"started": t0}
            if expect:
                notifier = log._store.notifier  # the follower's commits wake it
                seen = notifier.generation
                while _count(log) < expect:
                    if follower.error is not None:
                        raise follower.error
                    seen = notifier.wait(seen, 0.05)
                out["caught_up"] = time.monotonic_ns()
            else:
                follower.wait_connected(60)
            print(json.dumps(out), flush=True)
        elif cmd and cmd[0] == "stop":
            break
    if follower is not None:
        follower.close()
    log.close()
    return 0


def _count(log: embedlog.Log) -> int:
    """Records held in every partition of ``log`` (one read transaction, no decoding)."""
    store = log._store
    return store.read(lambda txn: sum(st.end_offset - st.start_offset
                                      for _, _, st in replica.all_partitions(txn, store.dbs)))


class FollowerProc:
    """A ``--child-follower`` subprocess."""

    def __init__(self, path: str, address: tuple[str, int]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child-follower", path,
                                      f"{address[0]}:{address[1]}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self._line()  # ready: the log is open

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the follower subprocess exited ({self.proc.wait()})")
        out: dict[str, Any] = json.loads(line)
        return out

    def go(self, expect: int = 0) -> dict[str, Any]:
        """Start following; return once connected (``expect=0``) or holding ``expect`` records."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"go {expect}\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self) -> None:
        """Stop the follower and wait for the process."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# -- throughput ---------------------------------------------------------------------------------------
def produce(log: embedlog.Log, n: int, acks: str) -> float:
    """Seconds to send ``n`` keyed 100-byte records with ``acks``, flushing every 10,000."""
    p = log.producer(acks=acks)
    try:
        send, flush, value = p.send, p.flush, VALUE
        t0 = time.perf_counter()
        for keys in chunks(n):
            for key in keys:
                send(TOPIC, value, key=key)
            flush()
        return time.perf_counter() - t0
    finally:
        p.close()


def _held(log: embedlog.Log) -> tuple[int, int]:
    """(end offset, high watermark) summed over the benchmark topic's partitions."""
    parts = replication_status(log)["partitions"].values()
    return sum(p["end_offset"] for p in parts), sum(p["high_watermark"] for p in parts)


def _wait_replicated(log: embedlog.Log, timeout: float = 300.0) -> None:
    """Until the high watermark reaches the end: the follower holds everything."""
    deadline = time.monotonic() + timeout
    while True:
        end, hw = _held(log)
        if hw >= end:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the follower did not catch up within {timeout} s (end {end}, high watermark {hw})")
        time.sleep(0.01)


def throughput_round(root: str, n: int, order: tuple[str, ...], out: dict[str, list[float]],
                     progress: Callable[[str], None]) -> str:
    """One round: ``n`` records without replication, then with a Leader and one follower
    subprocess with acks="leader" and acks="all" (in ``order``).  Returns the path of the
    replicated leader log (for the catch-up rows); the caller removes it."""
    with scratch_dir(root, "plain") as d, embedlog.open(d, maintenance_interval_ms=None) as log:
        log.create_topic(TOPIC, 1)
        out["plain"].append(produce(log, n, "leader"))
    lead = tempfile.mkdtemp(prefix="leader-", dir=root)
    with scratch_dir(root, "follower") as fdir, embedlog.open(lead, maintenance_interval_ms=None) as log:
        log.create_topic(TOPIC, 1)
        with Leader(log, secret=SECRET) as leader:
            follower = FollowerProc(fdir, leader.address)
            try:
                follower.go()
                for acks in order:
                    _wait_replicated(log)
                    out[acks].append(produce(log, n, acks))
                    progress(f"  acks={acks}: {rate(n, out[acks][-1]):,.0f} records/s")
                _wait_replicated(log)
            finally:
                follower.close()
    progress(f"  no replication: {rate(n, out['plain'][-1]):,.0f} records/s")
    return lead


# -- latency ------------------------------------------------------------------------------------------
def latency(root: str, samples: int, warmup: int) -> dict[str, list[int]]:
    """Nanoseconds of send(one 100-byte record) + flush(), acks="all" and acks="leader",
    with a Leader and one follower subprocess (the leader with ``durability="flush"``,
    and for acks="all" also ``"none"``); and a one-record LMDB sync commit."""
    out: dict[str, list[int]] = {}
    with scratch_dir(root, "lat-floor") as d:
        out["floor_commit_sync"] = floor.commit_latencies(d, samples + warmup, sync=True)[warmup:]
    for durability, runs in (("flush", ("all", "leader")), ("none", ("all",))):
        with scratch_dir(root, "lat-leader") as lead, scratch_dir(root, "lat-follower") as fdir, \
                embedlog.open(lead, durability=durability, maintenance_interval_ms=None) as log:
            log.create_topic(TOPIC, 1)
            with Leader(log, secret=SECRET) as leader:
                follower = FollowerProc(fdir, leader.address)
                try:
                    follower.go()
                    for acks in runs:
                        with log.producer(acks=acks) as p:
                            ns = []
                            for i in range(samples + warmup):
                                t0 = time.monotonic_ns()
                                p.send(TOPIC, VALUE, key=b"key-%d" % (i % 1000))
                                p.flush()
                                ns.append(time.monotonic_ns() - t0)
                            out[acks if durability == "flush" else f"{acks}_{durability}"] = ns[warmup:]
                        _wait_replicated(log)
                finally:
                    follower.close()
    return out


# -- catch-up -----------------------------------------------------------------------------------------
def stored_batches(path: str) -> list[bytes]:
    """Every stored batch of the log at ``path``, in commit order (what a follower receives)."""
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        store = log._store

        def fn(txn: lmdb.Transaction) -> list[bytes]:
            positions = [(t, p, st.start_offset) for t, p, st in replica.all_partitions(txn, store.dbs)]
            merged = replica.read_merged(txn, store.dbs, positions, 1 << 62)
            return [b for bs in merged.batches.values() for b in bs]

        return store.read(fn)


def floor_write(path: str, batches: list[bytes]) -> float:
    """Seconds to append ``batches`` to a fresh LMDB environment with ``sync=True``, one
    write transaction per ~1 MB of batches (``put(..., append=True)`` per batch)."""
    env = floor._open(path, sum(map(len, batches)), sync=True)
    try:
        pack = floor._OFFSET.pack
        t0 = time.perf_counter()
        i = 0
        while i < len(batches):
            with env.begin(write=True) as txn:
                size = 0
                while i < len(batches) and size < FLOOR_TXN_BYTES:
                    txn.put(pack(i), batches[i], append=True)
                    size += len(batches[i])
                    i += 1
        return time.perf_counter() - t0
    finally:
        env.close()


def catch_up(root: str, lead: str, out: dict[str, list[float]], progress: Callable[[str], None]) -> None:
    """A new empty follower copies the leader log at ``lead``; and the floor writes the
    same batches just before and just after it (their mean is the floor: the disk's
    speed drifts with other work on the machine, by 2-3x within a minute here)."""
    batches = stored_batches(lead)
    records = _records(lead)
    out["bytes"].append(float(sum(map(len, batches))))

    def run_floor() -> float:
        with scratch_dir(root, "catchup-floor") as d:
            return floor_write(d, batches)

    before = run_floor()
    with scratch_dir(root, "catchup") as fdir, embedlog.open(lead, maintenance_interval_ms=None) as log, \
            Leader(log, secret=SECRET) as leader:
        follower = FollowerProc(fdir, leader.address)
        try:
            got = follower.go(records)
        finally:
            follower.close()
    out["follower"].append((got["caught_up"] - got["started"]) / 1e9)
    after = run_floor()
    out["floor"].append((before + after) / 2)
    out.setdefault("floor_before", []).append(before)
    out.setdefault("floor_after", []).append(after)
    mb = out["bytes"][-1] / 1e6
    progress(f"  catch-up of {records:,} records ({mb:,.1f} MB of batches): follower {mb / out['follower'][-1]:,.1f} "
             f"MB/s, floor {mb / out['floor'][-1]:,.1f} MB/s")


def _records(path: str) -> int:
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        return sum(p.end_offset - p.start_offset for p in log.describe_topic(TOPIC).partitions)


# -- report -------------------------------------------------------------------------------------------
def throughput_rows(n: int, t: dict[str, list[float]]) -> tuple[list[list[str]], float]:
    r = {k: median([rate(n, s) for s in v]) for k, v in t.items()}
    mb = payload_bytes(n) / 1e6
    ratio = r["all"] / r["leader"]
    rows = [
        ["no replication (no Leader running), acks=leader", num(r["plain"]), num(r["plain"] * mb / n, 1), "-", "-",
         "-"],
        ["Leader + 1 follower process, acks=\"leader\"", num(r["leader"]), num(r["leader"] * mb / n, 1),
         pct(r["leader"] / r["plain"]), "-", "-"],
        ["Leader + 1 follower process, acks=\"all\"", num(r["all"]), num(r["all"] * mb / n, 1),
         pct(r["all"] / r["plain"]), ">= 50% of acks=leader",
         verdict(ratio >= TARGETS["all_vs_leader"], f"{pct(ratio)} of acks=leader")],
    ]
    return rows, ratio


def latency_rows(lat: dict[str, list[int]]) -> list[list[str]]:
    def cells(ns: list[int]) -> list[str]:
        return [num(len(ns)), us(percentile(ns, 50)), us(percentile(ns, 99)), us(max(ns))]

    a = lat["all"]
    ok = percentile(a, 50) < TARGETS["p50_us"] * 1000 and percentile(a, 99) < TARGETS["p99_us"] * 1000
    return [
        ["floor: one-record LMDB write txn commit (sync=True)", *cells(lat["floor_commit_sync"]), "-", "-"],
        ["send + flush(), acks=\"leader\"", *cells(lat["leader"]), "-", "-"],
        ["send + flush(), acks=\"all\"", *cells(a), "p50 < 1,000 / p99 < 5,000", verdict(ok)],
        ["send + flush(), acks=\"all\", leader durability=\"none\" (the follower still fsyncs)",
         *cells(lat["all_none"]), "-", "-"],
    ]


def catchup_rows(c: dict[str, list[float]]) -> tuple[list[list[str]], float]:
    mbs = {k: median([b / 1e6 / s for b, s in zip(c["bytes"], c[k], strict=True)]) for k in ("floor", "follower")}
    ratio = mbs["follower"] / mbs["floor"]
    size = median(c["bytes"]) / 1e6
    return [
        ["floor: the same batches, LMDB put(append=True), one sync txn per ~1 MB", num(size, 1),
         num(mbs["floor"], 1), "100%", "-", "-"],
        ["new empty follower process, connect to caught up (fsync per response)", num(size, 1),
         num(mbs["follower"], 1), pct(ratio), ">= 50% of floor", verdict(ratio >= TARGETS["catchup_vs_floor"])],
    ], ratio


def only(args: argparse.Namespace, root: str, progress: Callable[[str], None]) -> None:
    """``--only``: one section, its table printed."""
    if args.only == "latency":
        lat = latency(root, args.latency_samples, min(100, args.latency_samples // 10))
        print(table(["what", "samples", "p50 µs", "p99 µs", "max µs", "target µs", "met?"], latency_rows(lat)))
        return
    catch: dict[str, list[float]] = {"floor": [], "follower": [], "bytes": []}
    for r in range(args.runs):
        progress(f"round {r + 1}/{args.runs}: catch-up of {2 * args.records:,} records")
        lead = tempfile.mkdtemp(prefix="leader-", dir=root)
        try:
            with embedlog.open(lead, maintenance_interval_ms=None) as log:
                log.create_topic(TOPIC, 1)
                produce(log, 2 * args.records, "leader")
            catch_up(root, lead, catch, progress)
        finally:
            shutil.rmtree(lead, ignore_errors=True)
    print(table(["what", "MB", "MB/s", "vs floor", "target", "met?"], catchup_rows(catch)[0]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer records, runs and samples (~30-60 s)")
    ap.add_argument("--records", type=int, help="records per throughput run (default 1,000,000; --quick 200,000)")
    ap.add_argument("--runs", type=int, help="rounds; medians are reported (default 3; --quick 1)")
    ap.add_argument("--latency-samples", type=int, help="flush latency samples (default 2,000; --quick 300)")
    ap.add_argument("--dir", help="scratch directory (default: a new temporary directory, removed afterwards)")
    ap.add_argument("--out", default=str(HERE / "results"), help="where to write replication.md and .json")
    ap.add_argument("--only", choices=("latency", "catchup"),
                    help="run one section and print its table (no results files written)")
    ap.add_argument("--child-follower", nargs=2, metavar=("PATH", "LEADER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.records = args.records or (200_000 if args.quick else 1_000_000)
    args.runs = args.runs or (1 if args.quick else 3)
    args.latency_samples = args.latency_samples or (300 if args.quick else 2000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_follower:
        return child_follower(*args.child_follower)
    started = time.perf_counter()

    progress = progress_printer(started)

    root = args.dir or tempfile.mkdtemp(prefix="embedlog-bench-repl-")
    os.makedirs(root, exist_ok=True)
    n = args.records
    if args.only:
        try:
            only(args, root, progress)
        finally:
            if not args.dir:
                shutil.rmtree(root, ignore_errors=True)
        return 0
    data: dict[str, Any] = {"environment": bench_core._environment(), "args": dict(vars(args)), "targets": TARGETS}
    tput: dict[str, list[float]] = {"plain": [], "leader": [], "all": []}
    catch: dict[str, list[float]] = {"floor": [], "follower": [], "bytes": []}
    try:
        for r in range(args.runs):
            progress(f"round {r + 1}/{args.runs}: throughput, {n:,} records, flush every {FLUSH_EVERY:,}")
            order = ("leader", "all") if r % 2 == 0 else ("all", "leader")
            lead = throughput_round(root, n, order, tput, progress)
            try:
                catch_up(root, lead, catch, progress)
            finally:
                shutil.rmtree(lead, ignore_errors=True)
        progress(f"latency: {args.latency_samples:,} samples each")
        lat = latency(root, args.latency_samples, min(100, args.latency_samples // 10))
        for k, v in lat.items():
            progress(f"  {k}: p50 {us(percentile(v, 50))} us, p99 {us(percentile(v, 99))} us")
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    data["throughput_s"] = tput
    data["catch_up"] = catch
    data["latency_ns"] = lat
    env = data["environment"]
    env["loadavg_end"] = bench_core._load()
    env["seconds"] = round(time.perf_counter() - started, 1)
    t_rows, t_ratio = throughput_rows(n, tput)
    c_rows, c_ratio = catchup_rows(catch)
    data["summary"] = {"all_vs_leader": t_ratio, "catchup_vs_floor": c_ratio,
                       "all_p50_ns": percentile(lat["all"], 50), "all_p99_ns": percentile(lat["all"], 99)}
    command = " ".join(sys.argv[1:] if argv is None else argv)
    md = [f"# embedlog replication benchmark{' (--quick)' if args.quick else ''}", "",
          f"{env['date']} · git {env['git'] or '?'} · Python {env['python']} · py-lmdb {env['lmdb']} · "
          f"{env['cpus']} CPUs · {env['platform']} · CRC-32: {env['crc32']}", "",
          f"Load average at start {env['loadavg_start']}, at end {env['loadavg_end']} (other work on this machine "
          f"moves absolute figures; ratios are measured side by side); total {env['seconds']:.0f} s.", "",
          f"Leader in the benchmark process, each follower a subprocess, over 127.0.0.1 with HMAC authentication; "
          f"both `durability=\"flush\"`. Workload: {n:,} records per run, keys `key-{{i % 1000}}`, 100-byte values, "
          f"1 partition, `flush()` every {FLUSH_EVERY:,}; medians of {args.runs} round(s). Command: "
          f"`python benchmarks/bench_replication.py {command}`", "",
          "## Throughput: acks=\"all\" against acks=\"leader\"", "",
          table(["what", "records/s", "MB/s", "vs no replication", "target", "met?"], t_rows), "",
          "## Flush latency of single records", "",
          "One record sent and flushed at a time, with a Leader and one follower process; an acks=\"all\" flush "
          "waits for two durable commits in sequence (the leader's append, then the follower's) and a round trip: "
          f"twice the floor's median is {us(2 * percentile(lat['floor_commit_sync'], 50))} µs.", "",
          table(["what", "samples", "p50 µs", "p99 µs", "max µs", "target µs", "met?"], latency_rows(lat)), "",
          "## Catch-up of a new empty follower", "",
          "The leader log of a throughput round (both runs' records); MB = 10^6 bytes of stored batches.", "",
          table(["what", "MB", "MB/s", "vs floor", "target", "met?"], c_rows), "",
          f"acks=\"all\" ÷ acks=\"leader\": {times(t_ratio)}; catch-up ÷ floor: {times(c_ratio)}.", ""]
    text = "\n".join(md)
    write_results(args.out, "replication", args.quick, text, data, progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
