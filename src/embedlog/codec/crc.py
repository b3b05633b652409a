"""CRC-32 (zlib's polynomial) for batch checksums and replication frames.

python-isal's (Intel ISA-L) where it is installed — a core dependency on x86-64 and
ARM64, where it ships wheels; ~7x zlib's speed on a 2 MiB buffer on the 2-core x86-64
machine of ``benchmarks/`` (21 vs 2.9 GB/s) — else zlib's: the same values either way,
so stores and peers do not care which one computed them.  Both release the GIL for
buffers over 5 KiB.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable

#: what computes ``crc32``: ``"isal"`` or ``"zlib"``
IMPLEMENTATION: str


def _load() -> tuple[Callable[..., int], str]:
    try:
        return importlib.import_module("isal.isal_zlib").crc32, "isal"
    except ImportError:
        return zlib.crc32, "zlib"


crc32, IMPLEMENTATION = _load()
#: python-isal's and zlib's crc32 release the GIL for buffers over this many bytes
GIL_RELEASE_BYTES = 5120
