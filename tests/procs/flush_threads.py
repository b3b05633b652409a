"""Helper: threads that each send one numbered record and ``flush()``, in a loop, until killed.

    python flush_threads.py DIR TOPIC --id ID [--threads N] [--durability MODE]

Thread ``i`` is producer ``<ID>.<i>`` with its own ``Producer`` on one shared ``Log``
(so its flushes are grouped with the other threads' by the group committer).  Its
values and keys are those of ``producer.py`` (``b"<id>|<seq>|"``, ``b"<id>-<seq % 16>"``)
and after every ``flush()`` that returns it prints ``{"id": ..., "acked": [seq, seq + 1]}``.
Prints ``{"ready": pid}`` once the log is open.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading

import embedlog


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("topic")
    ap.add_argument("--id", required=True)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--durability", default="flush")
    args = ap.parse_args()

    log = embedlog.open(args.path, durability=args.durability, maintenance_interval_ms=None)
    out = threading.Lock()
    print(json.dumps({"ready": os.getpid()}), flush=True)

    def worker(ident: str) -> None:
        producer = log.producer()
        raw = ident.encode()
        seq = 0
        while True:
            producer.send(args.topic, b"%s|%d|" % (raw, seq), key=b"%s-%d" % (raw, seq % 16))
            producer.flush()
            with out:
                sys.stdout.write(json.dumps({"id": ident, "acked": [seq, seq + 1]}) + "\n")
                sys.stdout.flush()
            seq += 1

    threads = [threading.Thread(target=worker, args=(f"{args.id}.{i}",), daemon=True) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
