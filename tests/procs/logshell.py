"""Helper shell: keep a log directory open and run commands sent as JSON lines on stdin.

    python logshell.py DIR [--map-size BYTES] [--durability MODE]

Prints ``{"ready": pid}`` once the log is open, then answers each command with one
line, ``{"ok": result}`` or ``{"error": class name, "message": text}``:

``["topics"]``                      topic names
``["describe", topic]``             [[partition, start_offset, end_offset], ...]
``["create", topic, partitions]``   creates the topic
``["delete", topic]``               deletes it
``["produce", topic, [values]]``    sends the values (text) unkeyed and flushes
``["read", topic]``                 [[partition, offset, value], ...] of all records
``["digest", topic]``               ``harness.digest`` of all records
``["quit"]``                        closes the log and exits
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import harness

import embedlog


def run(log: embedlog.Log, cmd: list[Any]) -> Any:
    op, *args = cmd
    if op == "topics":
        return log.topics()
    if op == "describe":
        return [[p.partition, p.start_offset, p.end_offset] for p in log.describe_topic(args[0]).partitions]
    if op == "create":
        log.create_topic(args[0], partitions=args[1])
        return None
    if op == "delete":
        log.delete_topic(args[0])
        return None
    if op == "produce":
        with log.producer() as producer:
            for value in args[1]:
                producer.send(args[0], value.encode())
            producer.flush()
        return len(args[1])
    if op == "read":
        parts = harness.read_all(log, args[0])
        return [[m.partition, m.offset, None if m.value is None else m.value.decode("latin-1")]
                for p in sorted(parts) for m in parts[p]]
    if op == "digest":
        return harness.digest(harness.read_all(log, args[0]))
    raise ValueError(f"unknown command {op!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--map-size", type=int, default=None)
    ap.add_argument("--durability", default="flush")
    args = ap.parse_args()

    log = embedlog.open(args.path, map_size=args.map_size, durability=args.durability,
                        maintenance_interval_ms=None)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd == ["quit"]:
            break
        try:
            reply = {"ok": run(log, cmd)}
        except Exception as exc:  # reported to the test, which decides
            reply = {"error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(reply), flush=True)
    log.close()
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()
