"""Helper consumer: poll a topic of a log directory and print what it reads as JSON lines.

    python consumer.py DIR TOPIC [--expect N] [--timeout SECONDS] [--wake-rounds R]

Default mode: poll (each poll up to 1 s) until ``--expect`` records arrived or
``--timeout`` passed, printing each record as ``{"p", "o", "k", "v"}`` (key and value
as latin-1 text), then ``{"done": count}``.

``--wake-rounds R``: R times, print ``{"polling": i}`` and call
``poll(timeout=--timeout)`` once, then print ``{"woke": i, "elapsed": seconds,
"records": [...]}``, so a test can see that a blocked poll wakes when data arrives.

Prints ``{"ready": pid}`` once subscribed (from the earliest offset).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import embedlog


def record(m: embedlog.Message) -> dict[str, Any]:
    return {"p": m.partition, "o": m.offset, "k": None if m.key is None else m.key.decode("latin-1"),
            "v": None if m.value is None else m.value.decode("latin-1")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("topic")
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--wake-rounds", type=int, default=0)
    args = ap.parse_args()

    log = embedlog.open(args.path, maintenance_interval_ms=None)
    consumer = log.consumer([args.topic], auto_offset_reset="earliest")
    print(json.dumps({"ready": os.getpid()}), flush=True)
    if args.wake_rounds:
        for i in range(args.wake_rounds):
            print(json.dumps({"polling": i}), flush=True)
            t0 = time.monotonic()
            msgs = consumer.poll(timeout=args.timeout)
            elapsed = time.monotonic() - t0
            print(json.dumps({"woke": i, "elapsed": elapsed, "records": [record(m) for m in msgs]}), flush=True)
    else:
        n = 0
        deadline = time.monotonic() + args.timeout
        while n < args.expect and time.monotonic() < deadline:
            for m in consumer.poll(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
                print(json.dumps(record(m)), flush=True)
                n += 1
        print(json.dumps({"done": n}), flush=True)
    consumer.close()
    log.close()


if __name__ == "__main__":
    main()
