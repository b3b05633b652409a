"""``embedlog serve``: run long-lived services for a log directory (``--metrics``, and a
replication leader with ``--replicate``)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from .. import metrics
from ..errors import ConfigError
from .common import CliError, UsageError, existing_log_path, log_path, open_log, positive_int
from .output import Output

__all__ = ["add_auth_options", "auth_options", "register"]


def add_auth_options(parser: argparse.ArgumentParser) -> None:
    """``--secret-file`` / ``--insecure`` (replication's mutual authentication)."""
    parser.add_argument("--secret-file", metavar="F",
                        help="a file holding the shared secret (the same on every node, not empty; "
                             "a trailing newline is ignored)")
    parser.add_argument("--insecure", action="store_true",
                        help="replicate without authentication (only on a trusted network)")


def auth_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``secret=`` / ``insecure=`` arguments of ``Leader`` and ``Follower``."""
    if args.secret_file and args.insecure:
        raise UsageError("give --secret-file or --insecure, not both", args.prog_name)
    if not args.secret_file and not args.insecure:
        raise UsageError("replication needs authentication: give --secret-file F (or --insecure)", args.prog_name)
    if args.insecure:
        return {"insecure": True}
    try:
        with open(args.secret_file, "rb") as f:
            secret = f.read()
    except OSError as exc:
        raise CliError(f"cannot read the secret file {args.secret_file!r}: {exc.strerror or exc}") from None
    secret = secret.rstrip(b"\r\n")
    if not secret:  # (refused before the log directory is opened, or created)
        raise CliError(f"the secret is empty (the file {args.secret_file!r}): give every node the same non-empty "
                       "secret (a long random value)")
    return {"secret": secret}


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``serve`` to the command tree."""
    s = sub.add_parser(
        "serve", parents=[parent], help="serve a log's Prometheus metrics and/or replicate it to followers",
        description="Serve the log's metrics for Prometheus at http://HOST:PORT/metrics, with kafka-exporter's "
                    "series names (kafka_topic_partition_current_offset, kafka_consumergroup_lag, ...), and/or "
                    "run a replication leader for followers (embedlog follow) at --replicate HOST:PORT, until "
                    "stopped with Ctrl-C. Give at least one of --metrics and --replicate. Binds 127.0.0.1 "
                    "unless told otherwise. Metrics need prometheus_client (pip install 'embedlog[metrics]'). "
                    "While replicating, consumers see only records every in-sync follower holds, and "
                    "acks='all' producers wait for them.")
    s.add_argument("--metrics", metavar="HOST:PORT",
                   help="where to serve /metrics, e.g. 127.0.0.1:9308 (port 0: a free port)")
    s.add_argument("--replicate", metavar="HOST:PORT",
                   help="where followers connect, e.g. 127.0.0.1:9400 (port 0: a free port)")
    add_auth_options(s)
    s.add_argument("--replica-lag-time-max-ms", type=positive_int, default=30_000, metavar="MS",
                   help="a follower behind for longer leaves the in-sync set (default 30000)")
    s.set_defaults(func=serve, prog_name=s.prog, until_stopped=True)


def serve(args: argparse.Namespace, out: Output) -> int:
    """Serve metrics and/or a replication leader until Ctrl-C."""
    if not args.metrics and not args.replicate:
        raise UsageError("give --metrics HOST:PORT, --replicate HOST:PORT, or both", args.prog_name)
    if not args.replicate and (args.secret_file or args.insecure):
        raise UsageError("--secret-file and --insecure go with --replicate", args.prog_name)
    path = log_path(args)
    try:  # (a bad address first: a usage error)
        where = metrics.parse_address(args.metrics) if args.metrics else None
    except ConfigError as exc:
        raise UsageError(f"argument --metrics: {exc}", args.prog_name) from None
    if not args.replicate:  # (metrics of a log that is not there: a typo, refused as by every reader)
        assert where is not None
        _serve_metrics(args, existing_log_path(args), where)
        return 0
    from ..replication import Leader  # noqa: PLC0415 - keep `embedlog --help` light

    auth = auth_options(args)
    addr = where
    with open_log(args, create=True) as log:
        try:
            leader = Leader(log, args.replicate, replica_lag_time_max_ms=args.replica_lag_time_max_ms, **auth)
        except OSError as exc:
            raise CliError(f"cannot listen at {args.replicate}: {exc.strerror or exc}") from None
        try:
            host, port = leader.address
            print(f"replicating {path} as leader at {host}:{port} (epoch {leader.core.epoch})",
                  file=sys.stderr, flush=True)
            threading.Thread(target=_report_fencing, args=(leader,), name="embedlog-serve-fenced",
                             daemon=True).start()
            if addr is not None:
                _serve_metrics(args, path, addr)
            else:
                stop = threading.Event()
                try:
                    while not stop.wait(0.5):
                        pass
                except KeyboardInterrupt:
                    pass
        finally:
            leader.close()
    return 0


def _report_fencing(leader: Any) -> None:
    """Say once, on stderr, that a node with a newer leader epoch showed up: this leader's
    process refuses produces from then on, and its directory must follow the new one."""
    while not leader.closed:
        fenced = leader.core.fenced_by
        if fenced is not None:
            print(f"embedlog: this leader is fenced: {fenced}. Stop serve and start this directory as a "
                  "follower of the new leader (embedlog follow); producers in other processes on it are not "
                  "stopped, and what they write now is taken back when it follows", file=sys.stderr, flush=True)
            return
        time.sleep(0.5)


def _serve_metrics(args: argparse.Namespace, path: str, addr: tuple[str, int] | None) -> None:
    host, port = addr if addr is not None else metrics.parse_address(args.metrics)

    def ready(server: Any) -> None:
        print(f"serving metrics of {path} at {server.url}", file=sys.stderr, flush=True)

    try:
        metrics.serve_metrics(path, host, port, ready=ready)
    except KeyboardInterrupt:
        return
    except OSError as exc:
        raise CliError(f"cannot serve metrics at {args.metrics}: {exc.strerror or exc}") from None
