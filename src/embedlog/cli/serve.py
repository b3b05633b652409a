"""``embedlog serve``: run long-lived services for a log directory (``--metrics``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import metrics
from .common import CliError, log_path
from .output import Output

__all__ = ["register"]


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``serve`` to the command tree."""
    s = sub.add_parser(
        "serve", parents=[parent], help="serve a log's Prometheus metrics until stopped",
        description="Serve the log's metrics for Prometheus at http://HOST:PORT/metrics, with kafka-exporter's "
                    "series names (kafka_topic_partition_current_offset, kafka_consumergroup_lag, ...), until "
                    "stopped with Ctrl-C. Binds 127.0.0.1 unless told otherwise. Needs prometheus_client "
                    "(pip install 'embedlog[metrics]').")
    s.add_argument("--metrics", metavar="HOST:PORT", required=True,
                   help="where to serve /metrics, e.g. 127.0.0.1:9308 (port 0: a free port)")
    s.set_defaults(func=serve)


def serve(args: argparse.Namespace, out: Output) -> int:
    """Serve metrics until Ctrl-C."""
    addr, port = metrics.parse_address(args.metrics)
    path = log_path(args)

    def ready(server: Any) -> None:
        print(f"serving metrics of {path} at {server.url}", file=sys.stderr, flush=True)

    try:
        metrics.serve_metrics(path, addr, port, ready=ready)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        raise CliError(f"cannot serve metrics at {args.metrics}: {exc.strerror or exc}") from None
    return 0
