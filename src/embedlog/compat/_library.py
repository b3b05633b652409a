"""The real client library's own value classes, where the shim can return them.

A record or metadata object the shim returns is an instance of the real library's
class when that library is installed and its class has the very fields the shim's has
(``isinstance(record, kafka.consumer.fetcher.ConsumerRecord)`` holds, as with the real
client); otherwise the shim's own class, field for field the same, serves.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

__all__ = ["library_class"]


def _fields(cls: Any) -> tuple[str, ...] | None:
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    fields = getattr(cls, "_fields", None)
    return tuple(fields) if isinstance(fields, tuple) else None


def library_class(module: str, name: str, ours: type) -> type:
    """``module.name`` if it imports and has ``ours``'s fields, else ``ours``."""
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - not installed, another version, a broken install: ours serves
        return ours
    if not isinstance(cls, type) or cls is ours or _fields(cls) != _fields(ours):
        return ours
    return cls
