"""Helper exactly-once worker: consume "in", write f(x) to "out", commit input offsets in
the same transaction (one transaction per poll batch), in consumer group "etl".

    python group_etl.py DIR [--session-ms N] [--heartbeat-ms N] [--max-records N] [--work-ms N]

f(value) = b"f(" + value + b")", same key, same partition number in "out" as in "in".
Prints ``{"ready": pid, "member": id}``, then ``{"tx": records, "offsets": {partition: next}}``
after each committed transaction and ``{"aborted": message}`` after an aborted one (a
fenced zombie: it rewinds to the committed offsets and goes on).  ``--work-ms``: sleep
up to that long (random) inside each transaction, so a kill often lands inside one.
Runs until killed; SIGTERM closes cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import time
from typing import Any

import embedlog
from embedlog import TopicPartition
from embedlog.errors import EmbedlogError, TransactionAbortedError

stopping = False


def on_term(signum: int, frame: Any) -> None:
    global stopping  # noqa: PLW0603 - the loop reads it
    stopping = True


def emit(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def transform(value: bytes) -> bytes:
    return b"f(" + value + b")"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--session-ms", type=int, default=600)
    ap.add_argument("--heartbeat-ms", type=int, default=100)
    ap.add_argument("--max-records", type=int, default=20)
    ap.add_argument("--work-ms", type=float, default=0.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)

    log = embedlog.open(args.path, maintenance_interval_ms=None)
    consumer = log.consumer(["in"], group="etl", client_id=f"etl{os.getpid()}", auto_offset_reset="earliest",
                            enable_auto_commit=False, session_timeout_ms=args.session_ms,
                            heartbeat_interval_ms=args.heartbeat_ms, max_poll_records=args.max_records)
    emit({"ready": os.getpid(), "member": consumer.group_metadata()[1]})
    while not stopping:
        msgs = consumer.poll(timeout=0.2)
        if not msgs:
            continue
        offsets: dict[TopicPartition, int] = {}
        try:
            with log.transaction() as tx:
                for m in msgs:
                    tx.send("out", transform(m.value or b""), key=m.key, partition=m.partition)
                    offsets[TopicPartition(m.topic, m.partition)] = m.offset + 1
                if args.work_ms:
                    time.sleep(random.uniform(0, args.work_ms) / 1000)
                tx.commit_offsets(consumer, offsets)
        except TransactionAbortedError as exc:
            emit({"aborted": str(exc)})
            try:  # go back to what the group committed; the next poll follows the group
                for tp, off in consumer.committed(list(consumer.assignment())).items():
                    consumer.seek(tp, 0 if off is None else off)
            except EmbedlogError as again:
                emit({"rewind_error": str(again)})
            continue
        emit({"tx": len(msgs), "offsets": {tp.partition: off for tp, off in offsets.items()}})
    consumer.close()
    log.close()


if __name__ == "__main__":
    main()
