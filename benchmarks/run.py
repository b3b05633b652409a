"""Run the whole benchmark suite of embedlog and write the report.

    python benchmarks/run.py [--quick] [--peers redis,nats,confluent,persistqueue|none]

Runs ``bench_core.py``, ``bench_groups.py``, ``bench_compat.py``, ``bench_replication.py`` and
``bench_bridge.py`` (each in its own process,
``--quick`` passed through, ``--peers`` to ``bench_core.py``), then measures throughput against record size
(``sizes.py``) and disk use over time under retention (``retention.py``) itself, and
writes ``benchmarks/results/REPORT.md`` (a headline table, the plots, then every table of
the benchmarks), ``report.json`` (the figures behind the plots, with the raw latency
samples) and the PNG plots in ``benchmarks/results/plots/``.  The latency plot shows the
very samples ``bench_core.py`` summarises (``latency.py`` writes them when
``EMBEDLOG_BENCH_SAMPLES`` is set).  Needs matplotlib: ``pip install -e '.[bench]'``.
A benchmark that fails is reported as failed in REPORT.md; the rest still runs.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_core
import latency
import plots
import retention
import sizes
from report import num, pct, progress_printer, table, times, us, verdict
from workload import median, rate, scratch_dir

HERE = Path(__file__).resolve().parent
NAN = float("nan")


def run_benchmark(script: str, args: list[str], env: dict[str, str], log_dir: str,
                  progress: Callable[[str], None]) -> dict[str, Any]:
    """Run ``script`` with ``args``; its progress (stderr) is shown, its tables (stdout) kept in a file."""
    out_path = os.path.join(log_dir, f"{Path(script).stem}.stdout")
    tail: collections.deque[str] = collections.deque(maxlen=30)
    t0 = time.perf_counter()
    progress(f"running {script} {' '.join(args)}")
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable, str(HERE / script), *args], stdout=out, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=str(HERE))
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(f"  {Path(script).stem} {line}")
            tail.append(line)
        rc = proc.wait()
    seconds = time.perf_counter() - t0
    progress(f"{script} finished in {seconds:.0f} s with exit code {rc}")
    return {"script": script, "args": args, "rc": rc, "seconds": round(seconds, 1), "stderr_tail": "".join(tail)}


def _load_json(path: Path, since: float) -> dict[str, Any] | None:
    """The results file ``path`` if this run wrote it (modified after ``since``, a ``time.time()``)."""
    try:
        if path.stat().st_mtime < since:
            return None
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


# -- the headline ------------------------------------------------------------------------------------
def _lat_cell(s: dict[str, Any] | None) -> str:
    if not s or "error" in s:
        return "ERROR" if s else "-"
    return f"{us(s['p50_ns'])} / {us(s['p99_ns'])}"


def headline_rows(core: dict[str, Any] | None, groups: dict[str, Any] | None,
                  compat: dict[str, Any] | None = None) -> list[list[str]]:
    """what | embedlog | floor (same run) | embedlog ÷ floor | target | met?"""
    rows: list[list[str]] = []
    if core:
        t, s = core["targets"], core["summary"]
        fw, fr = s.get("floor_write", NAN), s.get("floor_read", NAN)
        p = s.get("produce_p1", NAN)
        rows.append(["produce, 1 partition, durability=flush (records/s)", num(p), num(fw), pct(p / fw),
                     ">= 1,000,000/s and >= 40% of floor",
                     verdict(p >= t["produce_rate"] and p / fw >= t["produce_floor"])])
        for mp in (500, 10_000):
            c = s.get(f"consume_p1_{mp}", NAN)
            rows.append([f"consume, 1 partition, max_poll_records={mp:,} (records/s)", num(c), num(fr), pct(c / fr),
                         ">= 1,500,000/s and >= 30% of floor",
                         verdict(c >= t["consume_rate"] and c / fr >= t["consume_floor"])])
        lat = core["latency"]
        for where, label, p50t, p99t in (("in_process", "in-process", "inproc_p50_us", "inproc_p99_us"),
                                         ("cross_process", "cross-process", "xproc_p50_us", "xproc_p99_us")):
            for dur, fl in (("flush", "sync"), ("none", "nosync")):
                cell = lat.get(f"{where}_{dur}")
                ok = None
                if cell and "error" not in cell:
                    ok = cell["p50_ns"] < t[p50t] * 1000 and cell["p99_ns"] < t[p99t] * 1000
                rows.append([f"latency {label}, durability={dur}: p50 / p99 (µs)", _lat_cell(cell),
                             _lat_cell(lat.get(f"floor_commit_{fl}")) + " (one LMDB commit)", "-",
                             f"p50 < {num(t[p50t])} / p99 < {num(t[p99t])}", verdict(ok)])
        g = core["group_commit"].get("8 threads, one Producer each", {})
        floor_commit = 1e9 / lat["floor_commit_sync"]["p50_ns"]
        if "records_per_s" in g:
            rows.append(["group commit: 8 threads send + flush (durable records/s)", num(g["records_per_s"]),
                         num(floor_commit) + " (1 thread, 1 / p50 commit)", times(g["records_per_s"] / floor_commit),
                         "> 20,000/s", verdict(g["records_per_s"] > t["group_commit"])])
        mem = core["memory"].get("max_poll_500", {})
        if "ru_maxrss_kb" in mem:
            peak = mem["ru_maxrss_kb"] / 1024
            rows.append([f"peak RSS consuming a {num(core['memory']['payload_mb'])} MB topic (MB)", num(peak), "-",
                         "-", "< 150 MB", verdict(peak < t["rss_mb"])])
    if groups:
        s, t = groups["summary"], groups["targets"]
        for where, label, key in (("in_process", "one process (threads)", "join_inproc_16_ms"),
                                  ("cross_process", "16 processes", "join_xproc_16_ms")):
            for which, what in (("16th", "16th member joins 15"), ("all16", "16 members join at once")):
                ms = s.get(f"join_{where}_{which}_ms", NAN)
                rows.append([f"group join to owning, {what}, {label} (ms, median)", num(ms, 1), "-", "-",
                             f"< {t[key]} ms", verdict(None if math.isnan(ms) else ms < t[key])])
        over = s.get("group_overhead", NAN)
        rows.append(["group of 4 in-process members vs 1 standalone consumer (records/s; overhead; steady "
                     "overhead, once the first rebalance is done)",
                     f"{num(s.get('consume_group4', NAN))} vs {num(s.get('consume_standalone', NAN))}; "
                     f"{pct(over)}; {pct(s.get('group_overhead_steady', NAN))}", "-", "-", "overhead < 10%",
                     verdict(None if math.isnan(over) else over < t["group_overhead"])])
        fc = s.get("floor_commit_sync_per_s", NAN)
        for key, what in (("commit_1_flush", "offset commits/s, 1 member, durability=flush"),
                          ("tx_flush", "transactions/s of 10 records, durability=flush"),
                          ("tx_offsets_flush", "transactions/s: poll 10, send 10, commit offsets (flush)")):
            v = s.get(f"{key}_per_s", NAN)
            rows.append([what, num(v), num(fc) + " (1-record LMDB sync commits/s)", pct(v / fc), "(none in issue)",
                         "-"])
    if compat:
        s, t = compat["summary"], compat["targets"]
        for key, client in (("fixture_confluent", "confluent_kafka"), ("fixture_kafka_python", "kafka-python"),
                            ("fixture_aiokafka", "aiokafka")):
            ms, cold = s.get(f"first_{key}_ms", NAN), s.get(f"first_{key}_cold_ms", NAN)
            limit = t["first_message_ms"]
            rows.append([f"empty test to first consumed message, embedlog_kafka fixture, {client} group consumer "
                         "(ms, median; first test of a session)", f"{num(ms, 1)}; {num(cold, 1)}", "-", "-",
                         f"< {limit} ms", verdict(None if math.isnan(ms) else ms < limit)])
        mock, mockafka = s.get("first_mock_group_ms", NAN), s.get("first_mockafka_ms", NAN)
        rows.append(["the same with confluent-kafka on librdkafka's mock cluster / mockafka-py (ms, median)",
                     f"{num(mock, 1)} / {num(mockafka, 2)}", "-", "-", "(peers)", "-"])
    return rows


def peer_rows(core: dict[str, Any] | None) -> list[list[str]]:
    rows = []
    for res in (core or {}).get("peers", []):
        if res["skipped"]:
            rows.append([res["peer"], res["durability"], num(res["n"]), "skipped", "-", "-", "-", res["skipped"][:120]])
            continue
        ref = res["reference"]
        p = median([rate(res["n"], x) for x in res["produce_s"]])
        c = median([rate(res["n"], x) for x in res["consume_s"]])
        rows.append([res["peer"], res["durability"], num(res["n"]), f"{num(p)} / {num(c)}",
                     f"{pct(p / ref.get('floor_write', NAN))} / {pct(c / ref.get('floor_read', NAN))}",
                     f"{num(ref.get('produce', NAN))} / {num(ref.get('consume', NAN))}",
                     f"{times(ref.get('produce', NAN) / p)} / {times(ref.get('consume', NAN) / c)}", res["note"]])
    return rows


PEER_HEADER = ["peer", "durability", "records", "peer records/s (prod / cons)", "peer vs floor",
               "embedlog at same N (prod / cons)", "embedlog ÷ peer (prod / cons)", "note"]
HEADLINE_HEADER = ["what", "embedlog", "raw-LMDB floor (same run)", "embedlog ÷ floor", "target", "met?"]


def size_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        mb = r["payload_bytes"] / 1e6
        cells = [f"{num(r['records'] / r[k])} / {num(mb / r[k], 1)}" for k in
                 ("produce_s", "consume_s", "floor_write_s", "floor_read_s")]
        out.append([plots._size_label(r["size"]), num(r["records"]), num(r["batch"]), *cells,
                    f"{pct(r['floor_write_s'] / r['produce_s'])} / {pct(r['floor_read_s'] / r['consume_s'])}",
                    r["error"][:120] or "-"])
    return out


def _demote(md: str) -> str:
    """A benchmark's Markdown without its title, every heading one level down."""
    lines = md.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(("#" + line) if re.match(r"#+ ", line) else line for line in lines).strip()


# -- main --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the quick variant of every part (~3 min)")
    ap.add_argument("--peers", help="passed to bench_core.py (default: its own: all, or none with --quick)")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: "
                                              "core,groups,compat,bridge,replication,sizes,retention")
    ap.add_argument("--out", default=str(HERE / "results"), help="where results, REPORT.md and plots/ go")
    args = ap.parse_args(argv)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - {"core", "groups", "compat", "bridge", "replication", "sizes", "retention"}
    if unknown:
        ap.error(f"unknown part(s) to skip: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    since = time.time()

    progress = progress_printer(started)

    out = Path(args.out)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    env_info = bench_core._environment()
    work = tempfile.mkdtemp(prefix="embedlog-run-")
    raw = os.path.join(work, "latency-samples")
    env = dict(os.environ, **{latency.SAMPLES_ENV: raw})
    passed = (["--quick"] if args.quick else []) + ["--out", str(out)]
    runs: list[dict[str, Any]] = []
    data: dict[str, Any] = {"environment": env_info, "args": {k: sorted(v) if isinstance(v, set) else v
                                                              for k, v in vars(args).items()}}
    stem = "-quick" if args.quick else ""
    try:
        if "core" not in args.skip:
            runs.append(run_benchmark("bench_core.py", passed + (["--peers", args.peers] if args.peers else []),
                                      env, work, progress))
        if "groups" not in args.skip:
            runs.append(run_benchmark("bench_groups.py", passed, env, work, progress))
        if "compat" not in args.skip:
            runs.append(run_benchmark("bench_compat.py", passed, env, work, progress))
        if "bridge" not in args.skip:
            runs.append(run_benchmark("bench_bridge.py", passed, env, work, progress))
        if "replication" not in args.skip:
            runs.append(run_benchmark("bench_replication.py", passed, env, work, progress))
        if "sizes" not in args.skip:
            progress("throughput against record size ...")
            try:
                data["sizes"] = sizes.run(work, budget=20_000_000 if args.quick else 100_000_000,
                                          max_records=200_000 if args.quick else 1_000_000,
                                          runs=1 if args.quick else 3, progress=progress)
            except Exception as exc:
                data["sizes_error"] = bench_core._error(exc)
                progress(f"sizes: ERROR {exc!r}")
        if "retention" not in args.skip:
            progress("disk use under retention ...")
            try:
                with scratch_dir(work, "retention") as d:
                    data["retention"] = retention.run(d, seconds=8 if args.quick else 20,
                                                      retention_bytes=20_000_000 if args.quick else 100_000_000,
                                                      interval=0.05 if args.quick else 0.1)
                r = data["retention"]
                progress(f"retention: produced {r['produced_bytes'] / 1e9:.2f} GB, directory at most "
                         f"{r['max_dir_bytes'] / 1e6:.1f} MB for retention.bytes {r['retention_bytes'] / 1e6:g} MB")
            except Exception as exc:
                data["retention_error"] = bench_core._error(exc)
                progress(f"retention: ERROR {exc!r}")
        data["latency_samples"] = {}
        for where in ("in_process", "cross_process"):
            for dur in ("flush", "none"):
                p = Path(raw, f"latency-{where}-{dur}.json")
                if p.exists():
                    data["latency_samples"][f"{where}-{dur}"] = json.loads(p.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    core = _load_json(out / f"core{stem}.json", since) if "core" not in args.skip else None
    groups = _load_json(out / f"groups{stem}.json", since) if "groups" not in args.skip else None
    compat = _load_json(out / f"compat{stem}.json", since) if "compat" not in args.skip else None
    env_info["loadavg_end"] = bench_core._load()
    env_info["seconds"] = round(time.perf_counter() - started, 1)
    data["runs"] = runs
    subtitle = (f"{env_info['date']} · git {env_info['git'] or '?'} · {env_info['cpus']} CPUs · load "
                f"{env_info['loadavg_start'].split()[0]} · {'--quick' if args.quick else 'full run'}")
    images = []
    if data.get("sizes"):
        plots.throughput_vs_size(data["sizes"], str(plot_dir / "throughput_vs_size.png"), subtitle)
        images.append("throughput_vs_size")
    if data["latency_samples"]:
        fl = (core or {}).get("latency", {}).get("floor_commit_sync", {}).get("p50_ns")
        plots.latency(data["latency_samples"], str(plot_dir / "latency.png"), subtitle, fl)
        images.append("latency")
    if data.get("retention"):
        plots.retention(data["retention"], str(plot_dir / "retention.png"), subtitle)
        images.append("retention")
    progress(f"plots: {', '.join(images) or 'none'}")

    text = report(args, env_info, data, core, groups, stem, images, since, compat)
    (out / "REPORT.md").write_text(text)
    (out / "report.json").write_text(json.dumps(data, indent=1, default=str))
    print("\n".join(text.split("\n## Plots")[0].splitlines()[2:]))
    progress(f"wrote {out / 'REPORT.md'}, report.json and plots/")
    return 1 if any(r["rc"] != 0 for r in runs) else 0


def report(args: argparse.Namespace, env: dict[str, Any], data: dict[str, Any], core: dict[str, Any] | None,
           groups: dict[str, Any] | None, stem: str, images: list[str], since: float,
           compat: dict[str, Any] | None = None) -> str:
    out = Path(args.out)
    mode = "--quick" if args.quick else "full run"
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "") + (
        f" --peers {args.peers}" if args.peers else "")
    md = [f"# embedlog benchmark report ({mode})", "",
          f"{env['date']} · git {env['git'] or '?'} · Python {env['python']} · py-lmdb {env['lmdb']} · "
          f"{env['cpus']} CPUs · {env['platform']} · CRC-32: {env['crc32']} · `{command}` · "
          f"total {env['seconds']:.0f} s", "",
          f"**This machine is shared and was loaded** (load average {env['loadavg_start']} at the start, "
          f"{env['loadavg_end']} at the end): absolute figures move by 2-3x between runs. The ratios — embedlog "
          "against the raw-LMDB floor and against the peers — are measured side by side in this same run and are "
          "what to compare.", ""]
    for r in data["runs"]:
        if r["rc"] != 0:
            md += [f"**{r['script']} failed** (exit code {r['rc']}); its last lines:", "", "```",
                   r["stderr_tail"].strip(), "```", ""]
    md += ["## Headline", "", table(HEADLINE_HEADER, headline_rows(core, groups, compat)), ""]
    prows = peer_rows(core)
    if prows:
        md += ["### Peers (the same workload; ratios paired with a floor and embedlog run just before and after "
               "each peer)", "", table(PEER_HEADER, prows), ""]
    elif core is not None:
        md += ["Peers were not run (`--quick` leaves them out unless `--peers` is given; a full run includes "
               "Redis Streams, NATS JetStream, confluent-kafka's mock cluster and persist-queue).", ""]
    md += ["## Plots", ""]
    if "throughput_vs_size" in images:
        md += ["### Throughput against record size", "", "![throughput against record size]"
               "(plots/throughput_vs_size.png)", "",
               "embedlog produce (1 partition, `durability=flush`, `flush()` after every batch) and consume (a new "
               "consumer, default max_poll_records) against the floor (the same records in the same batches: one "
               "LMDB sync write transaction per batch; cursor read + split), for values of 10 B to 100 KB with key "
               "`key-{i % 1000}`. A batch is 10,000 records or 4 MB, whichever is fewer. Cells: records/s / MB/s.",
               "", table(["value size", "records", "batch", "embedlog produce", "embedlog consume", "floor write",
                          "floor read", "vs floor (prod / cons)", "error"], size_rows(data["sizes"])), ""]
    if "latency" in images:
        counts = ", ".join(f"{k}: {len(v):,}" for k, v in data["latency_samples"].items())
        md += ["### Produce-to-consume latency distribution", "", "![latency distribution](plots/latency.png)", "",
               "The raw samples of bench_core's latency rows (send one record + `flush()`, until a consumer blocked "
               "in `poll` returns it; the next record only after), warm-up dropped: histogram with logarithmic "
               f"bins and cumulative distribution. Samples: {counts}. Dotted lines: the targets; dash-dotted: "
               "the median of one LMDB sync commit (the fsync floor for `durability=flush`).", ""]
    if "retention" in images:
        r = data["retention"]
        md += ["### Disk use over time under retention", "", "![disk use under retention](plots/retention.png)", "",
               f"A producer writes without pause for {r['seconds']} s to a 1-partition topic with "
               f"`retention.bytes={r['retention_bytes']:,}` ({r['value_size']:,}-byte values, flush every 1,000 "
               "records); the log directory and the partition's bytes are sampled as it runs. Produced "
               f"{r['produced_bytes'] / 1e9:.2f} GB ({r['produced_bytes'] / r['retention_bytes']:.0f}x the limit); "
               f"the directory peaked at {r['max_dir_bytes'] / 1e6:.1f} MB "
               f"({r['max_dir_bytes'] / r['retention_bytes']:.2f}x retention.bytes) and grew by "
               f"{r['second_half_growth_bytes'] / 1e6:.1f} MB over the second half of the run; the partition "
               f"ended holding {r['partition_end']['bytes'] / 1e6:.1f} MB (offsets "
               f"{r['partition_end']['start_offset']:,}..{r['partition_end']['end_offset']:,}).", ""]
    for err in ("sizes_error", "retention_error"):
        if err in data:
            md += [f"**{err.split('_')[0]} failed**: {data[err]['error']}", ""]
    for name, title in (("core", "Core benchmark (`bench_core.py`)"),
                        ("groups", "Consumer groups (`bench_groups.py`)"),
                        ("compat", "Kafka-client shims (`bench_compat.py`)"),
                        ("replication", "Peer replication (`bench_replication.py`)"),
                        ("bridge", "Kafka bridge (`bench_bridge.py`)")):
        path = out / f"{name}{stem}.md"
        if name in args.skip or not path.exists() or path.stat().st_mtime < since:
            continue
        md += [f"## {title}", "", f"From [`{path.name}`]({path.name}); what each row means: "
               "[benchmarks/README.md](../README.md).", "", _demote(path.read_text()), ""]
    return "\n".join(md)


if __name__ == "__main__":
    sys.exit(main())
