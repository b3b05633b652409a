"""Helper producer: send numbered, keyed records to a log directory and report acks.

    python producer.py DIR TOPIC --id ID [--count N] [--flush-every K] [--durability MODE]
                       [--map-size BYTES] [--value-size BYTES] [--keys K] [--wait-go]

Each record's value is ``b"<id>|<seq>|"`` padded to ``--value-size`` bytes, its key
``b"<id>-<seq % keys>"``.  After every ``flush()`` that returns it prints
``{"id": ID, "acked": [first_seq, end_seq]}``: those records are acknowledged.
``--count 0`` sends forever (until killed).  Prints ``{"ready": pid}`` once the log is
open; with ``--wait-go`` it then waits for a line on stdin before sending.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import embedlog


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("topic")
    ap.add_argument("--id", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--flush-every", type=int, default=50)
    ap.add_argument("--durability", default="flush")
    ap.add_argument("--map-size", type=int, default=None)
    ap.add_argument("--value-size", type=int, default=0)
    ap.add_argument("--keys", type=int, default=16)
    ap.add_argument("--wait-go", action="store_true")
    args = ap.parse_args()

    log = embedlog.open(args.path, durability=args.durability, map_size=args.map_size,
                        maintenance_interval_ms=None)
    producer = log.producer()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    if args.wait_go:
        sys.stdin.readline()
    ident = args.id.encode()
    pad = b"x" * args.value_size
    first = seq = 0
    while args.count == 0 or seq < args.count:
        value = b"%s|%d|" % (ident, seq)
        producer.send(args.topic, value + pad[len(value):], key=b"%s-%d" % (ident, seq % args.keys))
        seq += 1
        if seq % args.flush_every == 0 or seq == args.count:
            producer.flush()
            print(json.dumps({"id": args.id, "acked": [first, seq]}), flush=True)
            first = seq
    producer.close()
    log.close()
    print(json.dumps({"done": seq}), flush=True)


if __name__ == "__main__":
    main()
