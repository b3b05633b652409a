"""``embedlog follow``, ``embedlog replication status`` and ``embedlog promote``: peer
replication from the shell (``embedlog serve --replicate`` runs the leader)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

from ..errors import TimeoutError as EmbedlogTimeoutError
from ..errors import UncleanPromotionWarning
from .common import log_path, open_log, positive_int
from .output import Output, warn
from .serve import add_auth_options, auth_options

__all__ = ["register"]

#: ``follow`` says it is still waiting for the leader after this long
WAITING_NOTICE_S = 5.0


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``follow``, ``replication status`` and ``promote`` to the command tree."""
    f = sub.add_parser(
        "follow", parents=[parent], help="follow a replication leader until stopped",
        description="Copy the log of the leader at HOST:PORT (started with embedlog serve --replicate) into "
                    "this directory and keep following it until stopped with Ctrl-C; reconnects with backoff. "
                    "The directory becomes a replica: producers on it fail until it is promoted (embedlog "
                    "promote). Exits 1 with one line if the leader refuses it (wrong secret, or a fenced "
                    "leader with an older epoch).")
    f.add_argument("leader", metavar="HOST:PORT", help="the leader's --replicate address")
    add_auth_options(f)
    f.add_argument("--max-bytes", type=positive_int, default=None, metavar="BYTES",
                   help="most bytes of batches the leader sends per fetch (default 2 MiB; smaller answers "
                        "acks=\"all\" flushes sooner on a slow link)")
    f.add_argument("--session-timeout-ms", type=positive_int, default=None, metavar="MS",
                   help="reconnect after hearing nothing from the leader for this long (default 10000)")
    f.set_defaults(func=follow, prog_name=f.prog, until_stopped=True)

    r = sub.add_parser("replication", help="inspect replication",
                       description="Inspect this directory's replication state.")
    rsub = r.add_subparsers(dest="replication_command", metavar="COMMAND", required=True)
    s = rsub.add_parser(
        "status", parents=[parent], help="role, epoch, high watermarks and in-sync set",
        description="Print the directory's role (leader or replica), leader epoch, whether a leader "
                    "replicates it now, the in-sync set that leader last recorded, and per partition its "
                    "high watermark (what consumers see), end offset and log start. Read from the log itself, "
                    "so it works while serve --replicate or follow runs in another process.")
    s.set_defaults(func=status)

    p = sub.add_parser(
        "promote", parents=[parent], help="make a stopped follower a leader; print the new epoch",
        description="Make this directory a leader with a new leader epoch, above every epoch it has seen, and "
                    "print the epoch. Explicit on purpose: with two nodes there is no majority, so embedlog "
                    "never promotes by itself. Stop embedlog follow on the directory first; then run embedlog "
                    "serve --replicate on it, and start the old leader as its follower (it drops what it wrote "
                    "that this node does not hold).")
    p.set_defaults(func=promote)


def follow(args: argparse.Namespace, out: Output) -> int:
    """``follow``: run a Follower until Ctrl-C (or a fatal error)."""
    from ..replication import Follower  # noqa: PLC0415 - keep `embedlog --help` light

    auth = auth_options(args)
    tuning = {k: v for k, v in (("max_bytes", args.max_bytes), ("session_timeout_ms", args.session_timeout_ms))
              if v is not None}
    path = log_path(args)
    with open_log(args, create=True) as log, Follower(log, args.leader, **auth, **tuning) as follower:
        try:
            try:
                follower.wait_connected(timeout=WAITING_NOTICE_S)
            except EmbedlogTimeoutError:  # still retrying with backoff: say so, then keep waiting
                print(f"waiting for the leader at {args.leader} (last error: {follower.status()['last_error']})",
                      file=sys.stderr, flush=True)
                follower.wait_connected(timeout=None)
            print(f"following {args.leader} into {path} (connected, epoch {follower.status()['epoch']})",
                  file=sys.stderr, flush=True)
            while follower.error is None:
                time.sleep(0.2)
        except KeyboardInterrupt:
            return 0
        raise follower.error


def status(args: argparse.Namespace, out: Output) -> int:
    """``replication status``."""
    from ..replication import replication_status  # noqa: PLC0415

    with open_log(args) as log:
        st = replication_status(log)
    if out.json_mode:
        out.json(st)
        return 0
    isr = "-" if st["isr"] is None else (", ".join(st["isr"]) or "(leader only)")
    out.line(f"role: {st['role']}  epoch: {st['epoch']}  node: {st['node_id'] or '-'}  "
             f"replicating: {'yes' if st['replicating'] else 'no'}"
             + ("  (no Leader runs here now: new records stay hidden until one does)" if st["stale_lease"] else ""))
    fol = st["follower"]
    if st["role"] == "replica":
        out.line("follows: " + ("-  (it never reached a leader)" if not fol else
                                f"leader {fol.get('leader') or '-'}  epoch {fol.get('epoch')}  "
                                f"in sync: {'yes' if fol.get('in_sync') else 'no'}  lag: {fol.get('lag')} records"
                                "  (as its follower last recorded)"))
        return _partitions(st, out)
    out.line(f"in-sync followers: {isr}  (in-sync nodes: {st['isr_size']}"
             + (", as the leader that died last recorded them: promote one of these)" if st["stale_lease"] else ")"))
    return _partitions(st, out)


def _partitions(st: Any, out: Output) -> int:
    if st["partitions"]:
        out.line()
        out.table(["PARTITION", "HIGH-WATERMARK", "END-OFFSET", "LOG-START", "LEADER-EPOCH"],
                  [[name, p["high_watermark"], p["end_offset"], p["log_start_offset"], p["leader_epoch"]]
                   for name, p in st["partitions"].items()])
    return 0


def promote(args: argparse.Namespace, out: Output) -> int:
    """``promote``."""
    from ..replication import promote as promote_log  # noqa: PLC0415

    with open_log(args) as log, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UncleanPromotionWarning)
        epoch = promote_log(log)
    for w in caught:  # one line each, like every other CLI message
        if issubclass(w.category, UncleanPromotionWarning):
            warn(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if out.json_mode:
        out.json({"role": "leader", "epoch": epoch})
    else:
        out.line(f"promoted {log_path(args)} to leader at epoch {epoch}")
    return 0
