"""The core benchmark of embedlog: throughput, latency, group commit and memory, each beside
the raw-LMDB floor and the peers of /work/shared/PEERS.md, measured in the same run.

    python benchmarks/bench_core.py [--records N] [--peers redis,nats,confluent,persistqueue] [--quick]

Prints Markdown tables and writes ``benchmarks/results/core.md`` and ``core.json``
(``core-quick.*`` with ``--quick``).  See ``benchmarks/README.md`` for what each row means.
Nothing is installed by this script; a peer that cannot be started is skipped and noted.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import floor
import groupcommit
import latency
import lmdb
import peers
import rss
from report import num, pct, progress_printer, table, times, us, verdict, write_results
from workload import (
    VALUE,
    chunks,
    dir_bytes,
    evict_page_cache,
    mb_per_s,
    median,
    payload_bytes,
    percentile,
    rate,
    scratch_dir,
)

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog
from embedlog import _native

HERE = Path(__file__).resolve().parent
TARGETS = {
    "produce_rate": 1_000_000, "produce_floor": 0.40,
    "consume_rate": 1_500_000, "consume_floor": 0.30,
    "inproc_p50_us": 100, "inproc_p99_us": 1000,
    "xproc_p50_us": 1000, "xproc_p99_us": 10_000,
    "group_commit": 20_000,
    "rss_mb": 150,
}
#: records in the log of one-record batches (written a flush a record, no fsync)
SMALL_BATCHES = 50_000
PEER_CAPS = {"redis": 500_000, "nats": 200_000, "nats_always": 20_000, "confluent": 100_000,
             "persistqueue": 20_000}


def _error(exc: BaseException) -> dict[str, str]:
    return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


# -- throughput ------------------------------------------------------------------------------------
def embedlog_produce(log: embedlog.Log, topic: str, n: int) -> float:
    """Seconds to send ``n`` keyed records, flushing every 10,000 (and at the end)."""
    p = log.producer()
    try:
        send = p.send
        flush = p.flush
        value = VALUE
        t0 = time.perf_counter()
        for keys in chunks(n):
            for key in keys:
                send(topic, value, key=key)
            flush()
        return time.perf_counter() - t0
    finally:
        p.close()


def embedlog_produce_ones(log: embedlog.Log, topic: str, n: int) -> None:
    """Write ``n`` keyed records a flush each: a log of one-record batches (as a producer
    that flushes every record for its latency or durability leaves)."""
    with log.producer() as p:
        for keys in chunks(n):
            for key in keys:
                p.send(topic, VALUE, key=key)
                p.flush()


def embedlog_consume(log: embedlog.Log, topic: str, n: int, max_poll_records: int,
                     first: list[float] | None = None) -> float:
    """Seconds for a fresh consumer (earliest) to poll all ``n`` records.  ``first``, if
    given, receives the seconds to the return of the first poll with records and how many
    it returned (for a steady rate that leaves the first fetch out)."""
    with log.consumer([topic], auto_offset_reset="earliest", max_poll_records=max_poll_records) as c:
        poll = c.poll
        got = 0
        t0 = time.perf_counter()
        last: list[embedlog.Message] = []
        while got < n:
            batch = poll(timeout=5.0)
            if not batch:
                raise RuntimeError(f"consumer got nothing for 5 s after {got} of {n} records")
            got += len(batch)
            last = batch
            if first is not None and not first:
                first += (time.perf_counter() - t0, got)
        seconds = time.perf_counter() - t0
        extra = poll(timeout=0)
    if got != n or extra:
        raise RuntimeError(f"consumer read {got + len(extra)} records, expected {n}")
    bad = [m for m in last if m.value != VALUE or not (m.key or b"").startswith(b"key-")]
    if bad:
        raise RuntimeError(f"consumer returned wrong data: {bad[0]!r}")
    return seconds


def throughput(n: int, runs: int, root: str, partitions: tuple[int, ...],
               progress: Callable[[str], None]) -> dict[str, Any]:
    """Floor and embedlog, interleaved round by round; per-run seconds."""
    batches = floor.encode_batches(n)
    small = SMALL_BATCHES
    ones = floor.encode_batches(small, batch=1)
    out: dict[str, Any] = {"floor": {"write_sync": [], "write_nosync": [], "read": [], "read_cold": [],
                                     "read_ones": []},
                           "embedlog": {}, "ones": {"consume_500": [], "errors": []}}
    for p in partitions:
        out["embedlog"][f"p{p}"] = {"produce": [], "consume_10000": [], "consume_500": [], "consume_cold_500": [],
                                    "disk_bytes": [], "errors": []}
    for r in range(runs):
        fl = out["floor"]
        with scratch_dir(root, "floor") as d:
            fl["write_sync"].append(floor.write(d, batches, sync=True))
            seconds, count = floor.read(d)
            if count != n:
                raise RuntimeError(f"floor read {count} records, expected {n}")
            fl["read"].append(seconds)
            if evict_page_cache(d):  # the same, read from the disk
                seconds, count = floor.read(d)
                if count != n:
                    raise RuntimeError(f"floor read {count} records cold, expected {n}")
                fl["read_cold"].append(seconds)
        with scratch_dir(root, "floor-nosync") as d:
            fl["write_nosync"].append(floor.write(d, batches, sync=False))
        with scratch_dir(root, "floor-ones") as d:
            floor.write(d, ones, sync=False, batch=1)
            seconds, count = floor.read(d)
            if count != small:
                raise RuntimeError(f"floor read {count} one-record batches, expected {small}")
            fl["read_ones"].append(seconds)
        try:
            with scratch_dir(root, "embedlog-ones") as d, embedlog.open(d, durability="none") as log:
                log.create_topic("bench", partitions=1)
                embedlog_produce_ones(log, "bench", small)
                out["ones"]["consume_500"].append(embedlog_consume(log, "bench", small, 500))
        except Exception as exc:
            out["ones"]["errors"].append(_error(exc))
            progress(f"round {r + 1}/{runs}: embedlog one-record batches ERROR {exc!r}")
        progress(f"round {r + 1}/{runs}: floor {rate(n, fl['write_sync'][-1]):,.0f} w/s fsync, "
                 f"{rate(n, fl['read'][-1]):,.0f} r/s")
        for p in partitions:
            e = out["embedlog"][f"p{p}"]
            try:
                with scratch_dir(root, f"embedlog-p{p}") as d:
                    with embedlog.open(d) as log:
                        log.create_topic("bench", partitions=p)
                        e["produce"].append(embedlog_produce(log, "bench", n))
                        e["disk_bytes"].append(dir_bytes(d))
                        e["consume_10000"].append(embedlog_consume(log, "bench", n, 10_000))
                        e["consume_500"].append(embedlog_consume(log, "bench", n, 500))
                    if p == partitions[0] and evict_page_cache(d):  # replayed from the disk: a fresh open
                        with embedlog.open(d) as log:
                            e["consume_cold_500"].append(embedlog_consume(log, "bench", n, 500))
                progress(f"round {r + 1}/{runs}: embedlog p={p} {rate(n, e['produce'][-1]):,.0f} w/s, "
                         f"{rate(n, e['consume_10000'][-1]):,.0f} r/s")
            except Exception as exc:
                e["errors"].append(_error(exc))
                progress(f"round {r + 1}/{runs}: embedlog p={p} ERROR {exc!r}")
    return out


def _rates(n: int, seconds: list[float]) -> tuple[float, float, list[float]]:
    rates = [rate(n, s) for s in seconds]
    med = median(rates)
    return med, (mb_per_s(n, n / med) if rates else float("nan")), rates


def throughput_rows(n: int, data: dict[str, Any]) -> tuple[list[list[str]], dict[str, float]]:
    fl = data["floor"]
    f_w, f_wmb, _ = _rates(n, fl["write_sync"])
    f_nw, f_nwmb, _ = _rates(n, fl["write_nosync"])
    f_r, f_rmb, _ = _rates(n, fl["read"])
    k = len(fl["write_sync"])
    rows = [
        ["floor: LMDB append, fsync per 10k-record batch commit", num(n), num(f_w), num(f_wmb, 1), "100%",
         "fsync per commit", "-", "-"],
        ["floor: LMDB append, no sync", num(n), num(f_nw), num(f_nwmb, 1), pct(f_nw / f_w), "none", "-", "-"],
        ["floor: cursor read back + split into bytes per record", num(n), num(f_r), num(f_rmb, 1), "100%", "-",
         "-", "-"],
    ]
    f_rc = math.nan
    if fl.get("read_cold"):
        f_rc, f_rcmb, _ = _rates(n, fl["read_cold"])
        rows.append(["floor: the same read, cold page cache (files evicted first)", num(n), num(f_rc),
                     num(f_rcmb, 1), "100%", "-", "-", "-"])
    headline: dict[str, float] = {"floor_write": f_w, "floor_read": f_r}
    for key, e in data["embedlog"].items():
        parts = key[1:]
        err = e["errors"][0]["error"] if e["errors"] else ""
        if e["produce"]:
            r, mb, _ = _rates(n, e["produce"])
            ok_rate = r >= TARGETS["produce_rate"]
            ok_floor = r / f_w >= TARGETS["produce_floor"]
            headline[f"produce_{key}"] = r
            rows.append([f"embedlog produce, {parts} partition(s), send + flush every 10k", num(n), num(r), num(mb, 1),
                         pct(r / f_w), "flush (fsync per flush)", ">= 1,000,000/s and >= 40% of floor",
                         verdict(ok_rate and ok_floor, f"{pct(r / TARGETS['produce_rate'])} of rate target")])
        for mp in (10_000, 500):
            col = e[f"consume_{mp}"]
            if not col:
                continue
            r, mb, _ = _rates(n, col)
            ok = r >= TARGETS["consume_rate"] and r / f_r >= TARGETS["consume_floor"]
            headline[f"consume_{key}_{mp}"] = r
            rows.append([f"embedlog consume, {parts} partition(s), max_poll_records={mp:,}", num(n), num(r),
                         num(mb, 1), pct(r / f_r), "-", ">= 1,500,000/s and >= 30% of floor",
                         verdict(ok, f"{pct(r / TARGETS['consume_rate'])} of rate target")])
        if e.get("consume_cold_500"):
            r, mb, _ = _rates(n, e["consume_cold_500"])
            headline[f"consume_cold_{key}_500"] = r
            rows.append([f"embedlog consume, {parts} partition(s), max_poll_records=500, cold page cache (log "
                         "closed, files evicted, opened again)", num(n), num(r), num(mb, 1),
                         pct(r / f_rc) if not math.isnan(f_rc) else "-", "-", "-", "-"])
        if err:
            rows.append([f"embedlog, {parts} partition(s)", num(n), "ERROR", "-", "-", "-", "-", err[:200]])
    ones = data.get("ones")
    if ones and fl.get("read_ones"):
        small = SMALL_BATCHES
        f_o, f_omb, _ = _rates(small, fl["read_ones"])
        rows.append(["floor: cursor read back of one-record batches + split", num(small), num(f_o), num(f_omb, 1),
                     "100%", "-", "-", "-"])
        if ones["consume_500"]:
            r, mb, _ = _rates(small, ones["consume_500"])
            headline["consume_ones_500"] = r
            rows.append(["embedlog consume of one-record batches (a flush a record), max_poll_records=500",
                         num(small), num(r), num(mb, 1), pct(r / f_o), "-", "-", "-"])
        if ones["errors"]:
            rows.append(["embedlog, one-record batches", num(small), "ERROR", "-", "-", "-", "-",
                         ones["errors"][0]["error"][:200]])
    rows.append([f"(medians of {k} runs; disk use after produce, 1 partition: "
                 f"{num(median(data['embedlog'].get('p1', {}).get('disk_bytes', [])) / 1e6, 1)} MB for "
                 f"{num(payload_bytes(n) / 1e6, 1)} MB payload)", "", "", "", "", "", "", ""])
    return rows, headline


# -- latency -----------------------------------------------------------------------------------------
def latency_section(root: str, samples: int, warmup: int, progress: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def summary(ns: list[int]) -> dict[str, Any]:
        return {"samples": len(ns), "p50_ns": percentile(ns, 50), "p99_ns": percentile(ns, 99),
                "max_ns": max(ns) if ns else float("nan"), "mean_ns": sum(ns) / len(ns) if ns else float("nan")}

    for sync in (True, False):
        with scratch_dir(root, "floor-lat") as d:
            out[f"floor_commit_{'sync' if sync else 'nosync'}"] = summary(
                floor.commit_latencies(d, samples + warmup, sync=sync)[warmup:])
    out["floor_handoff"] = summary(latency.thread_handoff(samples, warmup))
    for where, fn in (("in_process", latency.in_process), ("cross_process", latency.cross_process)):
        for durability in ("flush", "none"):
            name = f"{where}_{durability}"
            try:
                with scratch_dir(root, f"lat-{name}") as d:
                    out[name] = summary(fn(d, samples, warmup, durability=durability))
                progress(f"latency {name}: p50 {us(out[name]['p50_ns'])} us p99 {us(out[name]['p99_ns'])} us")
            except Exception as exc:
                out[name] = _error(exc)
                progress(f"latency {name}: ERROR {exc!r}")
    return out


def latency_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    for sync in ("sync", "nosync"):
        s = data[f"floor_commit_{sync}"]
        rows.append([f"floor: one-record LMDB write txn commit ({'sync=True' if sync == 'sync' else 'no sync'})",
                     "fsync per commit" if sync == "sync" else "none", num(s["samples"]), us(s["p50_ns"]),
                     us(s["p99_ns"]), us(s["max_ns"]), "-", "-"])
    h = data.get("floor_handoff")
    if h is not None:
        rows.append(["floor: Python thread hand-off (a lock released -> the thread blocked on it runs)", "-",
                     num(h["samples"]), us(h["p50_ns"]), us(h["p99_ns"]), us(h["max_ns"]), "-", "-"])
    for where, label, p50t, p99t in (("in_process", "in-process (consumer thread)", "inproc_p50_us", "inproc_p99_us"),
                                     ("cross_process", "cross-process (consumer subprocess)", "xproc_p50_us",
                                      "xproc_p99_us")):
        for durability in ("flush", "none"):
            s = data[f"{where}_{durability}"]
            target = f"p50 < {num(TARGETS[p50t])} / p99 < {num(TARGETS[p99t])}"
            what = f"embedlog send+flush -> poll, {label}"
            dur = "flush (fsync per flush)" if durability == "flush" else "none (no fsync)"
            if "error" in s:
                rows.append([what, dur, "ERROR", "-", "-", "-", target, s["error"][:200]])
                continue
            ok = s["p50_ns"] < TARGETS[p50t] * 1000 and s["p99_ns"] < TARGETS[p99t] * 1000
            rows.append([what, dur, num(s["samples"]), us(s["p50_ns"]), us(s["p99_ns"]), us(s["max_ns"]), target,
                         verdict(ok)])
    return rows


# -- group commit --------------------------------------------------------------------------------------
GROUP_VARIANTS = (("8 threads, one Producer each", 8, False), ("8 threads, one shared Producer", 8, True),
                  ("1 thread (no grouping possible)", 1, False))


def group_section(root: str, seconds: float, progress: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, threads, shared in GROUP_VARIANTS:
        try:
            with scratch_dir(root, "gc") as d:
                out[label] = groupcommit.run(d, threads=threads, seconds=seconds, shared=shared)
            progress(f"group commit {label}: {out[label]['records_per_s']:,.0f} durable records/s")
        except Exception as exc:
            out[label] = _error(exc)
            progress(f"group commit {label}: ERROR {exc!r}")
    return out


def group_rows(data: dict[str, Any], floor_commit_p50_ns: float, floor_commit_mean_ns: float = math.nan
               ) -> list[list[str]]:
    rows = []
    for label, threads, _shared in GROUP_VARIANTS:
        g = data[label]
        target = "> 20,000/s" if threads > 1 else "-"
        if "error" in g:
            rows.append([label, "ERROR", "-", "-", target, g["error"][:200]])
            continue
        ok = g["records_per_s"] > TARGETS["group_commit"] if threads > 1 else None
        rows.append([label, num(g["records"]), f"{g['seconds']:.1f}", num(g["records_per_s"]), target,
                     verdict(ok) + ("" if g["check"] == "ok" else f"; CHECK FAILED: {g['check']}")])
    if floor_commit_p50_ns and not math.isnan(floor_commit_p50_ns):
        rows.append(["floor: 1 thread of one-record LMDB sync commits (1 / p50 commit time)", "-", "-",
                     num(1e9 / floor_commit_p50_ns), "-", "-"])
    if floor_commit_mean_ns and not math.isnan(floor_commit_mean_ns):
        # Each of 8 threads waits for its own record to be durable, so no commit can carry
        # more than 8 records: this is the most 8 threads can do on this disk with LMDB's
        # sync commits, were sending, waking and everything else free.
        rows.append(["ceiling for 8 threads: 8 records in every LMDB sync commit, nothing else "
                     "(8 / mean commit time)", "-", "-", num(8e9 / floor_commit_mean_ns), "-", "-"])
    return rows


# -- memory ------------------------------------------------------------------------------------------
def rss_section(root: str, target_mb: int, progress: Callable[[str], None]) -> dict[str, Any]:
    records = math.ceil(target_mb * 1e6 / (payload_bytes(1000) / 1000))
    out: dict[str, Any] = {"records": records, "payload_mb": payload_bytes(records) / 1e6}
    try:
        with scratch_dir(root, "rss") as d:
            out["fill_seconds"] = rss.fill(d, records)
            out["disk_mb"] = dir_bytes(d) / 1e6
            progress(f"rss: filled {records:,} records ({out['disk_mb']:,.0f} MB on disk) "
                     f"in {out['fill_seconds']:.0f} s")
            for mp in (500, 10_000):
                try:
                    out[f"max_poll_{mp}"] = rss.measure(d, records, mp)
                    m = out[f"max_poll_{mp}"]
                    progress(f"rss max_poll_records={mp}: ru_maxrss {m['ru_maxrss_kb'] / 1024:,.0f} MB")
                except Exception as exc:
                    out[f"max_poll_{mp}"] = _error(exc)
                    progress(f"rss max_poll_records={mp}: ERROR {exc!r}")
    except Exception as exc:
        out["fill_error"] = _error(exc)
        progress(f"rss fill: ERROR {exc!r}")
    return out


def rss_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    size = f"{num(data['payload_mb'])} MB payload, {num(data.get('disk_mb'))} MB on disk"
    if "fill_error" in data:
        return [["fill", size, "ERROR", "-", "-", "-", "-", data["fill_error"]["error"][:200]]]
    for mp in (500, 10_000):
        m = data[f"max_poll_{mp}"]
        what = f"consume whole topic, max_poll_records={mp:,}"
        if "error" in m:
            rows.append([what, size, "ERROR", "-", "-", "-", "< 150 MB", m["error"][:200]])
            continue
        peak = m["ru_maxrss_kb"] / 1024
        rows.append([what, size, num(peak), num(m["peak_kb"].get("RssAnon", 0) / 1024),
                     num(m["peak_kb"].get("RssFile", 0) / 1024), num(m["before_kb"].get("VmRSS", 0) / 1024),
                     "< 150 MB", verdict(peak < TARGETS["rss_mb"]) +
                     ("" if m["records"] == data["records"] else f"; read {m['records']:,} of {data['records']:,}")])
    return rows


# -- peers -------------------------------------------------------------------------------------------
def reference(n: int, root: str) -> dict[str, float]:
    """One floor round and one embedlog round (1 partition) at ``n`` records: rates."""
    batches = floor.encode_batches(n)
    with scratch_dir(root, "ref-floor") as d:
        w = floor.write(d, batches, sync=True)
        r, _ = floor.read(d)
    out = {"floor_write": rate(n, w), "floor_read": rate(n, r)}
    try:
        with scratch_dir(root, "ref-embedlog") as d, embedlog.open(d) as log:
            log.create_topic("bench", partitions=1)
            out["produce"] = rate(n, embedlog_produce(log, "bench", n))
            out["consume"] = rate(n, embedlog_consume(log, "bench", n, 10_000))
    except Exception:
        out["produce"] = out["consume"] = float("nan")
    return out


def _peer_ns(name: str, n: int) -> list[int]:
    if name == "nats":
        return [min(n, PEER_CAPS["nats"]), min(n, PEER_CAPS["nats_always"])]
    return [min(n, PEER_CAPS[name])]


def peers_section(names: list[str], n: int, runs: int, root: str,
                  progress: Callable[[str], None]) -> list[peers.PeerResult]:
    """Each peer, with a floor + embedlog reference at the peer's N measured just before and after it."""
    out: list[peers.PeerResult] = []
    for name in names:
        progress(f"peer {name} ...")
        before = {m: reference(m, root) for m in set(_peer_ns(name, n))}
        try:
            if name == "redis":
                got = peers.run_redis(min(n, PEER_CAPS["redis"]), runs, root)
            elif name == "nats":
                got = peers.run_nats(min(n, PEER_CAPS["nats"]), runs, root, min(n, PEER_CAPS["nats_always"]))
            elif name == "confluent":
                got = peers.run_confluent(min(n, PEER_CAPS["confluent"]), runs)
            else:
                got = peers.run_persistqueue(min(n, PEER_CAPS["persistqueue"]), runs, root)
        except Exception as exc:  # a peer never fails the benchmark
            got = [peers.PeerResult(name, "?", n, skipped=f"failed: {exc!r}")]
        after = {m: reference(m, root) for m in set(_peer_ns(name, n))}
        for res in got:
            if res.n in before:
                res.reference = {k: (before[res.n][k] + after[res.n][k]) / 2 for k in before[res.n]}
            if res.skipped:
                progress(f"peer {res.peer} ({res.durability}): skipped: {res.skipped}")
            else:
                progress(f"peer {res.peer} ({res.durability}): {rate(res.n, median(res.produce_s)):,.0f} w/s, "
                         f"{rate(res.n, median(res.consume_s)):,.0f} r/s")
        out += got
    return out


def peer_rows(results: list[peers.PeerResult]) -> list[list[str]]:
    rows = []
    nan = float("nan")
    for res in results:
        ref = res.reference
        fw, fr = ref.get("floor_write", nan), ref.get("floor_read", nan)
        ep, ec = ref.get("produce", nan), ref.get("consume", nan)
        if res.skipped:
            rows.append([res.peer, res.durability, num(res.n), "skipped", "-", "-", "-", "-", "-", "-", "-",
                         res.skipped])
            continue
        p, pmb, _ = _rates(res.n, res.produce_s)
        c, cmb, _ = _rates(res.n, res.consume_s)
        rows.append([res.peer, res.durability, num(res.n), num(p), num(pmb, 1), num(c), num(cmb, 1),
                     f"{pct(p / fw)} / {pct(c / fr)}", f"{num(ep)} / {num(ec)}", f"{times(ep / p)} / {times(ec / c)}",
                     str(len(res.produce_s)), res.note])
    return rows


# -- main --------------------------------------------------------------------------------------------
def _environment() -> dict[str, Any]:
    try:
        rev = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "lmdb": lmdb.__version__,
            "embedlog": getattr(embedlog, "__version__", "?"), "git": rev, "loadavg_start": _load(),
            "speedups": "C extension embedlog._speedups" if _native.speedups is not None else "pure Python",
            "crc32": _crc_implementation()}


def _crc_implementation() -> str:
    """Which CRC-32 embedlog computes checksums with (``?`` for a version that does not say)."""
    try:
        crc = importlib.import_module("embedlog.codec.crc")
    except ImportError:  # an embedlog older than the module (A/B runs against older commits)
        return "?"
    return str(crc.IMPLEMENTATION)


def _load() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews absolute figures."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, help="records per throughput run (default 1,000,000; --quick 200,000)")
    ap.add_argument("--runs", type=int, help="runs per throughput row; medians are reported (default 5; --quick 3)")
    ap.add_argument("--peer-runs", type=int, default=3, help="runs per peer row; medians are reported (default 3)")
    ap.add_argument("--peers", default=None,
                    help=f"comma-separated subset of {','.join(peers.PEER_NAMES)}, or 'none' "
                         "(default: all; with --quick: none)")
    ap.add_argument("--quick", action="store_true", help="smaller run (~1 min): embedlog + floor only")
    ap.add_argument("--latency-samples", type=int, help="samples per latency row (default 2000; --quick 300)")
    ap.add_argument("--group-seconds", type=float, help="seconds per group-commit row (default 3; --quick 1)")
    ap.add_argument("--rss-mb", type=int, help="payload MB of the memory test topic (default 1000; --quick 200)")
    ap.add_argument("--dir", help="scratch directory (default: a new temporary directory, removed afterwards)")
    ap.add_argument("--out", default=str(HERE / "results"), help="where to write core.md and core.json")
    args = ap.parse_args(argv)
    args.records = args.records or (200_000 if args.quick else 1_000_000)
    args.runs = args.runs or (3 if args.quick else 5)
    args.latency_samples = args.latency_samples or (300 if args.quick else 2000)
    args.group_seconds = args.group_seconds or (1.0 if args.quick else 3.0)
    args.rss_mb = args.rss_mb or (200 if args.quick else 1000)
    if args.peers is None:
        args.peers = "none" if args.quick else ",".join(peers.PEER_NAMES)
    names = [] if args.peers.strip() in ("", "none") else [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in names if p not in peers.PEER_NAMES]
    if unknown:
        ap.error(f"unknown peer(s) {unknown}; choose from {','.join(peers.PEER_NAMES)}")
    args.peer_names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    progress = progress_printer(started)

    root = args.dir or tempfile.mkdtemp(prefix="embedlog-bench-")
    os.makedirs(root, exist_ok=True)
    n = args.records
    data: dict[str, Any] = {"environment": _environment(), "args": dict(vars(args)),
                            "targets": TARGETS}
    try:
        data["throughput"] = throughput(n, args.runs, root, (1, 4), progress)
        data["latency"] = latency_section(root, args.latency_samples, min(100, args.latency_samples // 10), progress)
        data["group_commit"] = group_section(root, args.group_seconds, progress)
        data["memory"] = rss_section(root, args.rss_mb, progress)
        peer_results = peers_section(args.peer_names, n, args.peer_runs, root, progress)
        data["peers"] = [vars(r) for r in peer_results]
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)

    env = data["environment"]
    env["loadavg_end"] = _load()
    env["seconds"] = round(time.perf_counter() - started, 1)
    t_rows, data["summary"] = throughput_rows(n, data["throughput"])
    command = " ".join(sys.argv[1:] if argv is None else argv)
    md = [f"# embedlog core benchmark{' (--quick)' if args.quick else ''}", "",
          f"{env['date']} · git {env['git'] or '?'} · Python {env['python']} · py-lmdb {env['lmdb']} · "
          f"{env['cpus']} CPUs · {env['platform']} · producer: {env['speedups']} · CRC-32: {env['crc32']}", "",
          f"Load average at start {env['loadavg_start']}, at end {env['loadavg_end']} (other work on this machine "
          f"moves absolute figures; ratios are measured side by side); total {env['seconds']:.0f} s.", "",
          f"Workload: {n:,} records, keys `key-{{i % 1000}}`, 100-byte values, no compression; MB = 10^6 bytes of "
          f"key + value. Throughput rows are medians of {args.runs} runs; ratios are against the floor measured "
          f"in this same run. Command: `python benchmarks/bench_core.py {command}`", "",
          "## Throughput", "",
          table(["what", "records", "msgs/s", "MB/s", "vs floor", "durability", "target", "met?"], t_rows), "",
          "## Latency, produce to consume (single records, send-start to poll-return)", "",
          table(["what", "durability", "samples", "p50 µs", "p99 µs", "max µs", "target µs", "met?"],
                latency_rows(data["latency"])), "",
          "## Group commit (send one record + flush() in a loop, durability=flush)", "",
          table(["what", "durable records", "seconds", "records/s", "target", "met?"],
                group_rows(data["group_commit"], data["latency"]["floor_commit_sync"]["p50_ns"],
                           data["latency"]["floor_commit_sync"].get("mean_ns", math.nan))), "",
          "## Memory while consuming a large topic (fresh subprocess)", "",
          table(["what", "topic", "ru_maxrss MB", "peak RssAnon MB", "peak RssFile MB", "RSS before MB", "target",
                 "met?"], rss_rows(data["memory"])), ""]
    if data["peers"]:
        md += ["## Peers (same workload; each started and stopped by this run on 127.0.0.1)", "",
               table(["peer", "durability", "records", "produce msgs/s", "produce MB/s", "consume msgs/s",
                      "consume MB/s", "vs floor (prod / cons)", "embedlog at same N (prod / cons)",
                      "embedlog ÷ peer (prod / cons)", "runs", "note"],
                     peer_rows(peer_results)), "",
               "Ratios here are paired: just before and just after each peer, this run measured the floor "
               "(fsync write; read) and embedlog (1 partition, durability flush; consume with "
               "max_poll_records=10,000) at the peer's N; the mean of those two is the reference. "
               "embedlog ÷ peer > 1x means embedlog is faster. A peer's N is capped as README.md says.", ""]
    text = "\n".join(md)
    write_results(args.out, "core", args.quick, text, data, progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
