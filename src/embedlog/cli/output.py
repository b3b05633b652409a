"""Output of the ``embedlog`` command: human tables, ``--json`` documents, one-line errors.

Everything writes to ``sys.stdout``/``sys.stderr`` as they are at call time, so the
command can run in-process (tests capture them) as well as in a shell.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["ByteSink", "Output", "bytes_json", "error", "format_table", "text_of", "warn"]


class ByteSink(Protocol):
    """Where raw bytes go (binary stdout)."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


def error(message: str) -> None:
    """Print ``embedlog: error: message`` as one line on stderr."""
    one_line = " ".join(str(message).split())
    print(f"embedlog: error: {one_line}", file=sys.stderr)


def warn(message: str) -> None:
    """Print ``embedlog: warning: message`` on stderr (advice in Python turned into commands)."""
    print(f"embedlog: warning: {for_the_shell(message)}", file=sys.stderr)


_SHELL_ADVICE = (
    (re.compile(r"create it with log\.create_topic\(\) \((or open the log with auto_create_topics=True|"
                r"auto_create_topics creates topics for producers and consumers only)\)"),
     "create it with `embedlog topics create TOPIC`"),
    (re.compile(r"log\.topics\(\) lists the topics and log\.create_topic\(\) creates one"),
     "`embedlog topics list` lists the topics and `embedlog topics create TOPIC` creates one"),
    (re.compile(r"log\.groups\(\) lists them"), "`embedlog groups list` lists them"),
    (re.compile(r"use describe_topic\(\) or alter_topic_config\(\) on it"),
     "see it with `embedlog topics describe`, change it with `embedlog topics alter`"),
)


def for_the_shell(message: str) -> str:
    """``message`` with advice about Python calls turned into the commands that do it."""
    for pattern, instead in _SHELL_ADVICE:
        message = pattern.sub(instead, message)
    return message


def bytes_json(data: bytes | None) -> str | dict[str, str] | None:
    """Bytes as JSON: a string when they are UTF-8, else ``{"base64": "..."}``; ``None`` stays null.

    Lossless and unambiguous: a JSON string always means UTF-8 text.
    """
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def text_of(data: bytes | None, null: str = "") -> str:
    """Bytes for a human: UTF-8 with undecodable bytes as ``\\xNN`` escapes."""
    if data is None:
        return null
    return data.decode("utf-8", "backslashreplace")


#: control characters as escapes: one name or record stays one line, one cell one column
_ONE_LINE = {c: f"\\x{c:02x}" for c in (*range(32), 127)} | {ord("\n"): "\\n", ord("\r"): "\\r",
                                                               ord("\t"): "\\t"}


def one_line(text: str) -> str:
    """``text`` with its control characters (newlines, tabs...) as escapes."""
    return text.translate(_ONE_LINE)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return one_line(str(value))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned with two spaces between; numbers right-aligned, ``None`` as ``-``."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [all((isinstance(row[i], int) and not isinstance(row[i], bool)) or row[i] is None for row in rows)
               and any(row[i] is not None for row in rows) for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in cells)])


class Output:
    """Where a command's results go, in the mode the user chose."""

    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode

    def json(self, document: Any) -> None:
        """Print one JSON document (pretty, for ``--json``)."""
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")

    def json_line(self, document: Any) -> None:
        """Print one compact JSON document on its own line (JSON lines streams)."""
        sys.stdout.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")

    def line(self, text: str = "") -> None:
        """Print a line of text."""
        sys.stdout.write(text + "\n")

    def names(self, names: Sequence[str]) -> None:
        """A list of names: a JSON array, or one name a line."""
        if self.json_mode:
            self.json(list(names))
        else:
            for name in names:
                self.line(one_line(name))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """Print an aligned table (just the header row when there are no rows)."""
        self.line(format_table(headers, rows))

    def note(self, text: str) -> None:
        """An informational line on stderr (kept out of the data on stdout)."""
        print(text, file=sys.stderr)

    def flush(self) -> None:
        """Flush stdout."""
        sys.stdout.flush()

    @staticmethod
    def binary() -> ByteSink:
        """Stdout for raw bytes (after flushing its text layer)."""
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            return _TextAsBinary()
        sink: ByteSink = buffer
        return sink


class _TextAsBinary:
    """A stand-in binary stdout when ``sys.stdout`` has no ``buffer`` (some test harnesses)."""

    def write(self, data: bytes) -> int:
        sys.stdout.write(data.decode("utf-8", "backslashreplace"))
        return len(data)

    def flush(self) -> None:
        sys.stdout.flush()
