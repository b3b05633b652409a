"""Helper transactional writer, to be killed inside or between transactions.

    python group_tx.py DIR hang          # one transaction that never ends
    python group_tx.py DIR loop [--size N] [--run R]

``hang``: in one transaction, send 3 records to each partition of "a" (3 partitions) and
one to "b", commit offsets {("src", 0): 1} for group "g" by name, print
``{"in_tx": pid}``, then sleep inside the block until killed.
``loop``: transaction i sends ``--size`` records "R:i:j" spread over "a"'s partitions and
one "R:i" to "b", and commits {("src", 0): i % 5 + 1} for group "g"; prints ``{"tx": i}``
after each commit returned.  Runs until killed.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import embedlog
from embedlog import TopicPartition


def emit(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("mode", choices=["hang", "loop"])
    ap.add_argument("--size", type=int, default=7)
    ap.add_argument("--run", default="r")
    args = ap.parse_args()
    log = embedlog.open(args.path, maintenance_interval_ms=None)
    if args.mode == "hang":
        with log.transaction() as tx:
            for p in range(3):
                for j in range(3):
                    tx.send("a", f"hang:{p}:{j}".encode(), partition=p)
            tx.send("b", b"hang")
            tx.commit_offsets("g", {TopicPartition("src", 0): 1})
            emit({"in_tx": os.getpid()})
            while True:
                time.sleep(1)
    i = 0
    while True:
        with log.transaction() as tx:
            for j in range(args.size):
                tx.send("a", f"{args.run}:{i}:{j}".encode(), partition=j % 3)
            tx.send("b", f"{args.run}:{i}".encode())
            tx.commit_offsets("g", {TopicPartition("src", 0): i % 5 + 1})
        emit({"tx": i})
        i += 1


if __name__ == "__main__":
    main()
