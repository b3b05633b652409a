"""``embedlog produce TOPIC``: records from stdin, one a line (kafka-console-producer.sh, kcat -P)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import EmbedlogError
from .common import CliError, UsageError, key_values, non_negative_int, open_log
from .output import Output

__all__ = ["register"]


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``produce`` to the command tree."""
    p = sub.add_parser(
        "produce", parents=[parent], help="write records read from stdin, one a line",
        description="Read records from stdin, one a line (the line ending is not part of the record), and "
                    "write them to TOPIC. Records are written in batches and are durable when the command "
                    "exits 0. Keyed records go to the partition Kafka's murmur2 picks for the key, unless "
                    "--partition is given.")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--key-separator", metavar="SEP",
                   help="split each line at the first SEP into key and value (like kcat -K: '\\t' is a tab, "
                        "also \\n \\r \\0 \\xNN \\\\); a line without SEP is a record without key")
    p.add_argument("--header", action="append", metavar="K=V", default=[],
                   help="add header K with value V to every record (repeatable; order and duplicates kept)")
    p.add_argument("--partition", type=non_negative_int, metavar="N", help="write every record to partition N")
    p.add_argument("--compression", choices=("none", "zstd"), default="none",
                   help="batch compression (default none)")
    p.set_defaults(func=produce)


def _lines(stream: Any) -> Iterator[bytes]:
    """Lines of ``stream`` as bytes without their ``\\n`` or ``\\r\\n``."""
    for raw in stream:
        line = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        yield line


_ESCAPES = {"t": b"\t", "n": b"\n", "r": b"\r", "0": b"\0", "\\": b"\\"}


def _separator(text: str) -> bytes:
    """``--key-separator``'s bytes, with kcat's escapes (``\\t``, ``\\n``, ``\\r``, ``\\0``,
    ``\\xNN``, ``\\\\``); a backslash before anything else, or last, is itself."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch == "\\" and nxt in _ESCAPES:
            out += _ESCAPES[nxt]
            i += 2
        elif ch == "\\" and nxt == "x" and len(text) >= i + 4 and all(c in "0123456789abcdefABCDEF"
                                                                      for c in text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
    return bytes(out)


def produce(args: argparse.Namespace, out: Output) -> int:
    """``produce``."""
    # (surrogateescape: bytes of the command line that are not UTF-8 go through as they came)
    headers = [(k, v.encode("utf-8", "surrogateescape")) for k, v in key_values(args.header, "--header")] or None
    if args.key_separator is not None and args.key_separator == "":
        raise UsageError("argument --key-separator: must not be empty", "embedlog produce")
    sep = None if args.key_separator is None else _separator(args.key_separator)
    if sys.stdin is None:  # (started with it closed: ``<&-``)
        raise CliError("standard input is closed: produce reads its records from it, one a line "
                       "(< /dev/null to send none)")
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    sent = 0
    with open_log(args) as log:
        desc = log.describe_topic(args.topic)  # unknown topic: fail before reading any input
        if args.partition is not None and args.partition >= len(desc.partitions):
            raise CliError(f"topic {args.topic!r} has partitions 0..{len(desc.partitions) - 1}; "
                           f"partition {args.partition} does not exist")
        producer = log.producer(compression=None if args.compression == "none" else args.compression)
        try:
            for lineno, line in enumerate(_lines(stdin), 1):
                record_key: bytes | None = None
                value = line
                if sep is not None:
                    key, found, rest = line.partition(sep)
                    if found:
                        record_key, value = key, rest
                try:
                    producer.send(args.topic, value, key=record_key, headers=headers, partition=args.partition)
                except EmbedlogError as exc:
                    raise CliError(f"line {lineno}: {exc} (the {sent} record(s) before it were written)") from None
                sent += 1
        finally:
            producer.close()  # writes (and with the default durability, fsyncs) what was sent
    if out.json_mode:
        out.json({"topic": args.topic, "records": sent})
    else:
        out.note(f"Produced {sent} record(s) to {args.topic}.")
    return 0
