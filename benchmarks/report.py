"""Markdown tables and number formatting for the core benchmark."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def num(x: float | None, digits: int = 0) -> str:
    """``1,234,567`` style; ``-`` for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:,.{digits}f}"


def pct(x: float | None) -> str:
    """A ratio as a percentage."""
    if x is None or math.isnan(x) or math.isinf(x):
        return "-"
    return f"{100 * x:.1f}%"


def times(x: float | None) -> str:
    """A ratio as ``2.31x``."""
    if x is None or math.isnan(x) or math.isinf(x):
        return "-"
    return f"{x:.2f}x"


def us(ns: float | None) -> str:
    """Nanoseconds as microseconds."""
    if ns is None or math.isnan(ns):
        return "-"
    return f"{ns / 1000:,.0f}"


def verdict(ok: bool | None, detail: str = "") -> str:
    """``yes``/``NO`` with an optional detail."""
    if ok is None:
        return "-"
    text = "yes" if ok else "**NO**"
    return f"{text} ({detail})" if detail else text


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table with aligned columns."""
    cells = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


def progress_printer(started: float) -> Callable[[str], None]:
    """A progress function: ``[  12.3s] msg`` on stderr, timed from ``started``
    (``time.perf_counter()``)."""

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return progress


def write_results(out: str, name: str, quick: bool, text: str, data: Any,
                  progress: Callable[[str], None]) -> None:
    """Print the Markdown ``text`` and write it with ``data`` as ``<name>[-quick].md/.json``
    in ``out``."""
    print(text)
    os.makedirs(out, exist_ok=True)
    stem = f"{name}-quick" if quick else name
    Path(out, f"{stem}.md").write_text(text)
    Path(out, f"{stem}.json").write_text(json.dumps(data, indent=1, default=str))
    progress(f"wrote {Path(out, stem + '.md')} and .json")
