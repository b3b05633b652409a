"""The PNG plots of the benchmark report (matplotlib, no display needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

_STYLE = {"embedlog produce": ("tab:blue", "-", "o"), "embedlog consume": ("tab:orange", "-", "o"),
          "floor write (fsync per batch)": ("tab:blue", ":", "s"), "floor read + split": ("tab:orange", ":", "s")}


def _size_label(size: float) -> str:
    for unit, div in (("KB", 1000), ("B", 1)):
        if size >= div:
            return f"{size / div:g} {unit}"
    return f"{size:g} B"


def throughput_vs_size(rows: Sequence[dict[str, Any]], path: str, subtitle: str) -> None:
    """Records/s and MB/s of embedlog and the floor against the value size (log-log)."""
    fig, (ax_mb, ax_n) = plt.subplots(1, 2, figsize=(12, 4.8))
    sizes = [r["size"] for r in rows]
    series = {"embedlog produce": "produce_s", "embedlog consume": "consume_s",
              "floor write (fsync per batch)": "floor_write_s", "floor read + split": "floor_read_s"}
    for label, key in series.items():
        color, line, marker = _STYLE[label]
        secs = [r[key] for r in rows]
        mb = [r["payload_bytes"] / 1e6 / s if s and not math.isnan(s) else math.nan for r, s in zip(rows, secs)]
        n = [r["records"] / s if s and not math.isnan(s) else math.nan for r, s in zip(rows, secs)]
        ax_mb.plot(sizes, mb, color=color, linestyle=line, marker=marker, label=label)
        ax_n.plot(sizes, n, color=color, linestyle=line, marker=marker, label=label)
    for ax, ylabel in ((ax_mb, "MB/s (key + value, 10^6 bytes)"), (ax_n, "records/s")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [_size_label(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("value size per record")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    ax_mb.legend(loc="lower right", fontsize=9)
    ax_mb.set_title("Payload throughput")
    ax_n.set_title("Record throughput")
    fig.suptitle(f"Throughput against record size: embedlog (1 partition, durability=flush) vs raw LMDB\n{subtitle}",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_LAT = {"in_process-flush": ("in-process, durability=flush", "tab:blue", "-"),
        "in_process-none": ("in-process, durability=none", "tab:blue", "--"),
        "cross_process-flush": ("cross-process, durability=flush", "tab:red", "-"),
        "cross_process-none": ("cross-process, durability=none", "tab:red", "--")}


def latency(samples: dict[str, list[int]], path: str, subtitle: str, floor_fsync_p50_ns: float | None) -> None:
    """Histogram (log bins) and CDF of produce-to-consume latencies, in microseconds."""
    fig, (ax_h, ax_c) = plt.subplots(1, 2, figsize=(12, 4.8))
    present = {k: [x / 1000 for x in v] for k, v in samples.items() if v}
    if present:
        lo = max(1.0, min(min(v) for v in present.values()))
        hi = max(max(v) for v in present.values())
        bins = [lo * (hi / lo) ** (i / 60) for i in range(61)] if hi > lo else [lo, lo * 2]
        for key, (label, color, line) in _LAT.items():
            us = present.get(key)
            if not us:
                continue
            ax_h.hist(us, bins=bins, histtype="step", color=color, linestyle=line, linewidth=1.5,
                      label=f"{label} (n={len(us):,})")
            ordered = sorted(us)
            ys = [100 * (i + 1) / len(ordered) for i in range(len(ordered))]
            ax_c.step(ordered, ys, where="post", color=color, linestyle=line)  # named in the histogram's legend
    for i, x in enumerate((100, 1000, 10_000)):
        ax_c.axvline(x, color="grey", linestyle=":", linewidth=1,
                     label="targets: in-process p50 100 µs, p99 1 ms;\ncross-process p50 1 ms, p99 10 ms"
                     if i == 0 else None)
    if floor_fsync_p50_ns and not math.isnan(floor_fsync_p50_ns):
        ax_c.axvline(floor_fsync_p50_ns / 1000, color="black", linestyle="-.", linewidth=1,
                     label="floor: median of one LMDB sync commit")
    ticks = [m * 10**e for e in range(8) for m in (1, 2, 5)]
    for ax in (ax_h, ax_c):
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.set_xticks([x for x in ticks if lo <= x <= hi], [f"{x:,}" for x in ticks if lo <= x <= hi])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("send-start to poll-return, µs (log scale)")
        ax.grid(True, which="major", alpha=0.3)
    ax_c.legend(loc="center right", fontsize=7)
    ax_h.set_ylabel("samples per bin")
    ax_h.set_title("Distribution")
    ax_c.set_ylabel("percent of samples ≤ x")
    ax_c.set_ylim(0, 100)
    ax_c.set_title("Cumulative distribution")
    if present:
        ax_h.legend(fontsize=8)
    else:
        ax_h.text(0.5, 0.5, "no latency samples in this run", transform=ax_h.transAxes, ha="center")
    fig.suptitle(f"Produce-to-consume latency of single records (send + flush -> blocked poll returns)\n{subtitle}",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def retention(data: dict[str, Any], path: str, subtitle: str) -> None:
    """Log directory size and retained bytes over time, with the bytes produced below."""
    fig, (ax, ax_p) = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    t = [s[0] for s in data["samples"]]
    mb = 1e6
    ax.plot(t, [s[1] / mb for s in data["samples"]], color="tab:blue", label="log directory on disk (all files)")
    ax.plot(t, [s[2] / mb for s in data["samples"]], color="tab:green", label="bytes held by the partition")
    ax.axhline(data["retention_bytes"] / mb, color="tab:red", linestyle="--",
               label=f"retention.bytes = {data['retention_bytes'] / mb:g} MB")
    ax.set_ylim(0, max(s[1] for s in data["samples"]) / mb * 1.3)
    ax.set_ylabel("MB")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.set_title("Disk use while producing continuously")
    ax_p.plot(t, [s[3] / 1e9 for s in data["samples"]], color="tab:grey")
    ax_p.set_ylabel("GB produced")
    ax_p.set_xlabel("seconds since the producer started")
    ax_p.grid(True, alpha=0.3)
    ax_p.set_ylim(bottom=0)
    fig.suptitle(f"Disk use over time under retention (1 partition, {data['value_size']:,}-byte values, "
                 f"durability=flush)\n{subtitle}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
