"""The optional C extension ``embedlog._speedups``, or None.

The extension (``_speedups.c``, built by ``pip install`` where a C compiler is present)
does the producer's per-record work; the pure-Python code it mirrors gives the same
results and runs where it is missing.  Set ``EMBEDLOG_PURE_PYTHON=1`` (before importing
embedlog) to run the pure-Python code even where it is built.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["speedups"]


def _load() -> ModuleType | None:
    if os.environ.get("EMBEDLOG_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module("embedlog._speedups")  # (built by setup.py; optional)
    except ImportError:
        return None


#: the loaded extension module, or None (not built, or EMBEDLOG_PURE_PYTHON set)
speedups = _load()
