"""Helper node: run a replication Leader or Follower on a log directory.

    python replica_node.py leader DIR --secret S [--listen HOST:PORT] [--lag-ms N]
    python replica_node.py follower DIR HOST:PORT --secret S

Prints JSON lines: ``{"ready": pid, "address": [host, port]}`` once a leader listens;
``{"ready": pid}`` then ``{"connected": true}`` once a follower authenticated, or
``{"error": "<class>", "message": "..."}`` (exit status 3) if it never can.  Reads JSON
commands on stdin: ``"status"`` prints ``{"status": {...}}``; ``"stop"`` (or end of
input, or SIGTERM) closes cleanly and prints ``{"closed": true}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any

import embedlog
from embedlog.errors import EmbedlogError
from embedlog.replication import Follower, Leader


def out(obj: Any) -> None:
    print(json.dumps(obj, default=str), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["leader", "follower"])
    ap.add_argument("path")
    ap.add_argument("leader", nargs="?")
    ap.add_argument("--secret", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--lag-ms", type=int, default=30_000)
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log = embedlog.open(args.path, maintenance_interval_ms=None)
    node: Leader | Follower
    try:
        if args.role == "leader":
            node = Leader(log, args.listen, secret=args.secret.encode(), replica_lag_time_max_ms=args.lag_ms)
            out({"ready": os.getpid(), "address": list(node.address)})
        else:
            node = Follower(log, args.leader, secret=args.secret.encode(), backoff_ms=(20, 200))
            out({"ready": os.getpid()})
            try:
                node.wait_connected(timeout=60)
            except EmbedlogError as exc:
                out({"error": type(exc).__name__, "message": str(exc)})
                node.close()
                log.close()
                return 3
            out({"connected": True})
    except EmbedlogError as exc:
        out({"error": type(exc).__name__, "message": str(exc)})
        log.close()
        return 3

    def commands() -> None:
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd == "status":
                out({"status": node.status()})
            elif cmd == "stop":
                break
        stop.set()

    threading.Thread(target=commands, daemon=True).start()
    while not stop.wait(0.05):
        if isinstance(node, Follower) and node.error is not None:
            out({"error": type(node.error).__name__, "message": str(node.error)})
            break
    node.close()
    log.close()
    out({"closed": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
