"""Helper group member: consume a topic in a consumer group, commit after processing.

    python group_member.py DIR TOPIC GROUP [--client NAME] [--session-ms N] [--heartbeat-ms N]
                           [--max-records N] [--hold] [--work-ms N]

Prints JSON lines:
``{"ready": pid, "member": member_id}`` once subscribed;
``{"assigned": [[topic, partition], ...], "member": member_id}`` whenever its assignment changed;
``{"recs": [[partition, offset, value], ...]}`` for each batch, *before* committing it
(so a kill between the two means at-least-once redelivery, never a loss);
``{"committed": n}`` after the commit, or ``{"commit_error": ErrorClassName}``.

``--hold``: after printing a batch, wait for a line on stdin before committing (a test
can freeze the process with SIGSTOP there and then let it commit as a zombie).
``--work-ms``: sleep that long per batch (processing time), so kills land mid-stream.
SIGTERM closes the consumer cleanly (leaving the group) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

import embedlog
from embedlog.errors import EmbedlogError

stopping = False


def on_term(signum: int, frame: Any) -> None:
    global stopping  # noqa: PLW0603 - the loop reads it
    stopping = True


def emit(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("--client", default="w")
    ap.add_argument("--session-ms", type=int, default=10_000)
    ap.add_argument("--heartbeat-ms", type=int, default=200)
    ap.add_argument("--max-records", type=int, default=50)
    ap.add_argument("--work-ms", type=float, default=0.0)
    ap.add_argument("--hold", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)

    log = embedlog.open(args.path, maintenance_interval_ms=None)
    consumer = log.consumer([args.topic], group=args.group, client_id=args.client, auto_offset_reset="earliest",
                            enable_auto_commit=False, session_timeout_ms=args.session_ms,
                            heartbeat_interval_ms=args.heartbeat_ms, max_poll_records=args.max_records)
    member = consumer.group_metadata()[1]
    emit({"ready": os.getpid(), "member": member})
    last: list[list[Any]] | None = None
    while not stopping:
        msgs = consumer.poll(timeout=0.2)
        now = sorted([tp.topic, tp.partition] for tp in consumer.assignment())
        if now != last:
            last = now
            emit({"assigned": now, "member": consumer.group_metadata()[1]})
        if not msgs:
            continue
        if args.work_ms:
            time.sleep(args.work_ms / 1000)
        emit({"recs": [[m.partition, m.offset, (m.value or b"").decode()] for m in msgs]})
        if args.hold:
            sys.stdin.readline()
        try:
            consumer.commit()
        except EmbedlogError as exc:
            emit({"commit_error": type(exc).__name__, "message": str(exc)})
            continue
        emit({"committed": len(msgs)})
    consumer.close()
    log.close()
    emit({"closed": True})


if __name__ == "__main__":
    main()
