"""Metrics of a log: ``snapshot(log)`` (also ``Log.metrics()``) and a Prometheus endpoint.

>>> import embedlog
>>> from embedlog import metrics
>>> with embedlog.open() as log:
...     _ = log.create_topic("orders", partitions=2)
...     m = metrics.snapshot(log)
...     [(p.topic, p.partition, p.end_offset) for p in m.topic("orders").partitions]
[('orders', 0, 0), ('orders', 1, 0)]

The Prometheus side (``start_http_server``, ``serve_metrics``, ``EmbedlogCollector``)
needs ``prometheus_client`` — ``pip install 'embedlog[metrics]'`` — and imports it
only when called; ``import embedlog.metrics`` works without it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .registry import CounterSnapshot, consumer_counters, producer_counters
from .snapshot import (
    GroupMetrics,
    GroupPartitionMetrics,
    LogMetrics,
    PartitionMetrics,
    TopicMetrics,
    snapshot,
)

if TYPE_CHECKING:
    from ..log import Log
    from .prometheus import MetricsServer

__all__ = [
    "CounterSnapshot",
    "GroupMetrics",
    "GroupPartitionMetrics",
    "LogMetrics",
    "PartitionMetrics",
    "TopicMetrics",
    "consumer_counters",
    "parse_address",
    "producer_counters",
    "serve_metrics",
    "snapshot",
    "start_http_server",
]

_INSTALL_HINT = "install it with: pip install 'embedlog[metrics]'"


def _prometheus() -> Any:
    """The ``embedlog.metrics.prometheus`` module, or ``ConfigError`` without prometheus_client."""
    try:
        from . import prometheus  # noqa: PLC0415 - prometheus_client is optional
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "prometheus_client":
            raise ConfigError(f"the Prometheus endpoint needs the prometheus_client package; {_INSTALL_HINT}") from exc
        raise
    return prometheus


def start_http_server(log: Log, port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve ``log``'s metrics at ``http://addr:port/metrics`` (kafka-exporter's series names).

    Binds ``127.0.0.1`` unless told otherwise; ``port=0`` picks a free port (see the
    returned server's ``.port``).  Close the server with ``.close()`` or use it as a
    context manager.  Raises ``ConfigError`` if prometheus_client is not installed or
    the address cannot be bound.
    """
    server: MetricsServer = _prometheus().start_http_server(log, port, addr)
    return server


def serve_metrics(path: str | os.PathLike[str], addr: str = "127.0.0.1", port: int = 9308, *,
                  stop: threading.Event | None = None, ready: Callable[[MetricsServer], None] | None = None,
                  **open_options: Any) -> None:
    """Open the log at ``path`` and serve its metrics until ``stop`` is set or Ctrl-C
    (what ``embedlog serve --metrics ADDR:PORT`` runs); see
    ``embedlog.metrics.prometheus.serve_metrics``."""
    _prometheus().serve_metrics(path, addr, port, stop=stop, ready=ready, **open_options)


def parse_address(text: str, default_port: int = 9308) -> tuple[str, int]:
    """Split ``"127.0.0.1:9308"`` (or ``"[::1]:9308"``, ``":9308"``, ``"host"``, a bare
    port ``"9308"``) into ``(addr, port)``; an empty host is ``127.0.0.1``.  Raises
    ``ConfigError``.

    Needs no prometheus_client, so a command line can check its options first.
    """
    host, port_text = text.strip(), ""
    if host.isdigit():  # a port, as prometheus_client's start_http_server(port) takes it
        host, port_text = "", host
    elif host.startswith("["):
        close = host.find("]")
        if close < 0 or (close + 1 < len(host) and host[close + 1] != ":"):
            raise ConfigError(f"bad listen address {text!r}; use HOST:PORT or [IPV6]:PORT")
        host, port_text = host[1:close], host[close + 2:]
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    elif host.count(":") > 1:
        raise ConfigError(f"bad listen address {text!r}; write an IPv6 address as [ADDR]:PORT")
    if not port_text:
        port = default_port
    elif port_text.isdigit() and int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ConfigError(f"bad port {port_text!r} in listen address {text!r}; use 0-65535")
    return host or "127.0.0.1", port
