"""A Prometheus exporter for a log, with kafka-exporter's series names and labels.

Needs ``prometheus_client`` (``pip install 'embedlog[metrics]'``); importing embedlog
never imports it.  ``EmbedlogCollector`` reads a fresh ``snapshot`` at every scrape, so
the numbers include what every process wrote and committed.

Series (labels in braces), as kafka-exporter names them, so dashboards and alert rules
such as ``kafka_consumergroup_lag > 1000`` work unchanged:

* ``kafka_brokers`` — this node, plus the followers in its in-sync set when it replicates
* ``kafka_topic_partitions{topic}``
* ``kafka_topic_partition_in_sync_replica{topic,partition}`` — the in-sync set's size
  (1 without replication)
* ``kafka_topic_partition_replicas{topic,partition}`` — this node and the followers a
  ``Leader`` running in the exporting process knows (elsewhere: the in-sync set's size)
* ``kafka_topic_partition_under_replicated_partition{topic,partition}`` — 1 when one of
  those followers is out of the in-sync set
* ``kafka_topic_partition_leader{topic,partition}`` (0: this node) and
  ``kafka_topic_partition_leader_is_preferred{topic,partition}`` (1)
* ``kafka_topic_partition_current_offset{topic,partition}`` — the high watermark (the end
  offset, unless a replicating leader's followers lack the last records)
* ``kafka_topic_partition_oldest_offset{topic,partition}`` — the start offset
* ``kafka_consumergroup_current_offset{consumergroup,topic,partition}`` — committed offset
* ``kafka_consumergroup_current_offset_sum{consumergroup,topic}``
* ``kafka_consumergroup_lag{consumergroup,topic,partition}`` — high watermark minus committed offset
* ``kafka_consumergroup_lag_sum{consumergroup,topic}``
* ``kafka_consumergroup_members{consumergroup}`` — live members

As in kafka-exporter, a group's topic is reported once the group committed an offset
in one of its partitions; its partitions without a committed offset then show
``current_offset`` and ``lag`` of ``-1`` (so an alert can see them), and are left out
of the sums.

embedlog's own series: ``embedlog_up`` (0 when the log could not be read),
``embedlog_log_disk_bytes`` (the LMDB files' allocated size),
``embedlog_topic_partition_disk_bytes``, ``_batches``, ``_records`` (end minus start offset) and
``embedlog_topic_partition_records_in_total`` per partition; and, for the clients of
*this process*, ``embedlog_producer_{records,bytes,writes}_total``,
``embedlog_producer_{records,bytes}_per_second``,
``embedlog_consumer_{records,polls}_total{consumergroup}`` and
``embedlog_consumer_records_per_second{consumergroup}`` (``consumergroup=""`` for
consumers without a group).  The ``_per_second`` gauges average the last 30 s; prefer
``rate()`` over the ``_total`` counters in PromQL.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import ConfigError, EmbedlogError
from ..log import Log
from ..log import open as open_log
from .snapshot import LogMetrics, snapshot

__all__ = ["EmbedlogCollector", "MetricsServer", "serve_metrics", "start_http_server"]

_TP = ["topic", "partition"]
_G = ["consumergroup"]
_GT = ["consumergroup", "topic"]
_MTP = ["mirror", "direction", "topic", "partition"]
_GTP = ["consumergroup", "topic", "partition"]


class _Families:
    """Every family the collector exports, created empty."""

    def __init__(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.up = g("embedlog_up", "1 if the log was read for this scrape, 0 if it could not be", labels=[])
        self.brokers = g("kafka_brokers", "Number of Brokers in the Kafka Cluster (this node, and the followers in "
                         "sync with it when it replicates)", labels=[])
        self.partitions = g("kafka_topic_partitions", "Number of partitions for this Topic", labels=["topic"])
        self.isr = g("kafka_topic_partition_in_sync_replica", "Number of In-Sync Replicas for this Topic/Partition",
                     labels=_TP)
        self.replicas = g("kafka_topic_partition_replicas", "Number of Replicas for this Topic/Partition (this "
                          "node and the followers its replication leader knows)", labels=_TP)
        self.leader = g("kafka_topic_partition_leader", "Leader Broker ID of this Topic/Partition (0: this node)",
                        labels=_TP)
        self.preferred = g("kafka_topic_partition_leader_is_preferred",
                           "1 if Topic/Partition is using the Preferred Broker (always: this node leads)", labels=_TP)
        self.under = g("kafka_topic_partition_under_replicated_partition",
                       "1 if Topic/Partition is under Replicated (a known follower is out of the in-sync set)",
                       labels=_TP)
        self.current = g("kafka_topic_partition_current_offset",
                         "Current Offset of a Broker at Topic/Partition (the high watermark)", labels=_TP)
        self.oldest = g("kafka_topic_partition_oldest_offset",
                        "Oldest Offset of a Broker at Topic/Partition (the start offset)", labels=_TP)
        self.cg_offset = g("kafka_consumergroup_current_offset",
                           "Current Offset of a ConsumerGroup at Topic/Partition", labels=_GTP)
        self.cg_offset_sum = g("kafka_consumergroup_current_offset_sum",
                               "Current Offset of a ConsumerGroup at Topic for all partitions", labels=_GT)
        self.cg_lag = g("kafka_consumergroup_lag", "Current Approximate Lag of a ConsumerGroup at Topic/Partition",
                        labels=_GTP)
        self.cg_lag_sum = g("kafka_consumergroup_lag_sum",
                            "Current Approximate Lag of a ConsumerGroup at Topic for all partitions", labels=_GT)
        self.cg_members = g("kafka_consumergroup_members", "Amount of members in a consumer group", labels=_G)
        self.log_disk = g("embedlog_log_disk_bytes", "Allocated size of the log directory's LMDB files", labels=[])
        self.disk = g("embedlog_topic_partition_disk_bytes", "Bytes of stored batches of a Topic/Partition",
                      labels=_TP)
        self.batches = g("embedlog_topic_partition_batches", "Stored batches of a Topic/Partition", labels=_TP)
        self.records = g("embedlog_topic_partition_records",
                         "Offsets a Topic/Partition holds: end minus start offset (records compaction "
                         "removed count too)", labels=_TP)
        self.records_in = c("embedlog_topic_partition_records_in",
                            "Records ever appended to a Topic/Partition (its end offset)", labels=_TP)
        self.p_records = c("embedlog_producer_records", "Records written by this process's producers", labels=[])
        self.p_bytes = c("embedlog_producer_bytes",
                         "Batch bytes (as stored, after compression) written by this process's producers", labels=[])
        self.p_writes = c("embedlog_producer_writes", "Writes (flushes) of this process's producers", labels=[])
        self.p_records_rate = g("embedlog_producer_records_per_second",
                                "Records written per second by this process's producers (30 s average)", labels=[])
        self.p_bytes_rate = g("embedlog_producer_bytes_per_second",
                              "Batch bytes written per second by this process's producers (30 s average)", labels=[])
        self.c_records = c("embedlog_consumer_records", "Records returned by this process's consumers' polls",
                           labels=_G)
        self.c_polls = c("embedlog_consumer_polls", "Polls of this process's consumers that returned records",
                         labels=_G)
        self.c_records_rate = g("embedlog_consumer_records_per_second",
                                "Records consumed per second by this process's consumers (30 s average)", labels=_G)

        self.bridge_lag = g("embedlog_bridge_lag",
                            "Records a Kafka bridge has not mirrored yet, per Topic/Partition (the local topic; "
                            "the partition is the source partition)", labels=_MTP)
        self.bridge_offset = g("embedlog_bridge_mirrored_offset",
                               "Next source offset a Kafka bridge will mirror, per Topic/Partition", labels=_MTP)
        self.bridge_lost = c("embedlog_bridge_records_lost",
                             "Records retention deleted locally before an up bridge forwarded them", labels=_MTP)
        self.bridge_up = g("embedlog_bridge_link_up",
                           "1 while a running Kafka bridge reaches its cluster, 0 while its link is down or it is "
                           "not running", labels=["mirror", "direction"])

    def all(self) -> list[Metric]:
        return [v for v in vars(self).values() if isinstance(v, Metric)]


def _disk_bytes(path: str) -> int:
    total = 0
    for name in ("data.mdb", "lock.mdb"):
        try:
            st = os.stat(os.path.join(path, name))
        except OSError:
            continue
        total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return total


def _fill(f: _Families, m: LogMetrics) -> None:
    f.log_disk.add_metric([], _disk_bytes(m.path))
    f.brokers.add_metric([], m.in_sync_replicas)
    for t in m.topics:
        f.partitions.add_metric([t.name], len(t.partitions))
        for p in t.partitions:
            labels = [t.name, str(p.partition)]
            f.current.add_metric(labels, p.high_watermark)  # (kafka-exporter's: the newest offset consumers get)
            f.oldest.add_metric(labels, p.start_offset)
            f.isr.add_metric(labels, m.in_sync_replicas)
            f.replicas.add_metric(labels, m.replicas)
            f.leader.add_metric(labels, 0)
            f.preferred.add_metric(labels, 1)
            f.under.add_metric(labels, 1 if m.in_sync_replicas < m.replicas else 0)
            f.disk.add_metric(labels, p.bytes_on_disk)
            f.batches.add_metric(labels, p.batches)
            f.records.add_metric(labels, p.records)
            f.records_in.add_metric(labels, p.records_in)
    counts = {t.name: len(t.partitions) for t in m.topics}
    for g in m.groups:
        f.cg_members.add_metric([g.group], g.members)
        for topic in g.topics():
            rows = [r for r in g.partitions if r.topic == topic]
            if all(r.committed is None for r in rows):
                continue  # kafka-exporter: a topic the group never committed in is not reported
            known = {r.partition: r for r in rows}
            for part in range(max(counts.get(topic, 0), max(known) + 1)):
                labels = [g.group, topic, str(part)]
                r = known.get(part)  # (None: a partition a group without members never committed in)
                f.cg_offset.add_metric(labels, -1 if r is None or r.committed is None else r.committed)
                f.cg_lag.add_metric(labels, -1 if r is None or r.lag is None else r.lag)
            f.cg_offset_sum.add_metric([g.group, topic], sum(r.committed or 0 for r in rows))
            f.cg_lag_sum.add_metric([g.group, topic], sum(r.lag or 0 for r in rows))
    for e in m.mirrors:
        labels = [e.mirror, e.direction, e.topic, str(e.partition)]
        f.bridge_lag.add_metric(labels, e.lag)
        f.bridge_offset.add_metric(labels, e.offset)
        if e.direction == "up":
            f.bridge_lost.add_metric(labels, e.lost)
    now_ms = time.time_ns() // 1_000_000
    for link in m.links:  # (one killed stops reporting: it is not running, as bridge status says)
        f.bridge_up.add_metric([link.mirror, link.direction], 1 if link.alive(now_ms) and link.link_up else 0)
    if m.producer is None:  # always export the producer counters, so rate() has a start
        for fam in (f.p_records, f.p_bytes, f.p_writes, f.p_records_rate, f.p_bytes_rate):
            fam.add_metric([], 0)
    for c in m.clients:
        if c.kind == "producer":
            f.p_records.add_metric([], c.records_total)
            f.p_bytes.add_metric([], c.bytes_total)
            f.p_writes.add_metric([], c.calls_total)
            f.p_records_rate.add_metric([], c.records_per_sec)
            f.p_bytes_rate.add_metric([], c.bytes_per_sec)
        else:
            group = [c.group or ""]
            f.c_records.add_metric(group, c.records_total)
            f.c_polls.add_metric(group, c.calls_total)
            f.c_records_rate.add_metric(group, c.records_per_sec)


class EmbedlogCollector(Collector):
    """A Prometheus collector of one log: a fresh ``snapshot`` at every scrape.

    Register it in any ``CollectorRegistry`` (``REGISTRY.register(EmbedlogCollector(log))``
    to serve it beside an application's own metrics).
    """

    def __init__(self, log: Log, snapshot_fn: Callable[[Log], LogMetrics] = snapshot) -> None:
        self.log = log
        self._snapshot = snapshot_fn

    def describe(self) -> list[Metric]:
        """The exported families, without samples (read by registries at registration)."""
        return _Families().all()

    def collect(self) -> Iterator[Metric]:
        """Every family with this instant's samples; only ``embedlog_up 0`` if the log cannot be read."""
        f = _Families()
        try:
            m = self._snapshot(self.log)
        except EmbedlogError:
            f.up.add_metric([], 0)
            yield f.up
            return
        f.up.add_metric([], 1)
        _fill(f, m)
        yield from f.all()


class _Handler(WSGIRequestHandler):
    """Silent (no access log on stderr); a client that sends nothing for
    ``timeout`` seconds, mid-request or between requests, is let go."""

    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _HTTPServer(socketserver.ThreadingMixIn, WSGIServer):
    """A thread per connection, each connection known, so that ``end_connections``
    lets none outlive ``MetricsServer.close`` (a client that never finishes its request
    would hold a thread and a socket until its timeout)."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def end_connections(self) -> None:
        """Cut every open connection: the threads serving them end at once."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # (a client that timed out or went away: nothing to print)


def _bind_address(addr: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family and host to bind ``addr`` with (IPv6 for ``::``, ``[::1]``...)."""
    infos = socket.getaddrinfo(addr.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, _proto, _name, sockaddr = infos[0]
    return family, str(sockaddr[0])


class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` it (or use it as a context manager)."""

    def __init__(self, log: Log, port: int, addr: str) -> None:
        self.log = log
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(EmbedlogCollector(log))
        try:
            family, host = _bind_address(addr, port)
            server = type("_HTTPServer", (_HTTPServer,), {"address_family": family})
            self._httpd: _HTTPServer = make_server(host, port, make_wsgi_app(self.registry), server,
                                                   handler_class=_Handler)
        except (OSError, UnicodeError) as exc:
            raise ConfigError(f"cannot serve metrics on {addr}:{port}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="embedlog-metrics", daemon=True)
        self._thread.start()
        address: tuple[Any, ...] = tuple(self._httpd.server_address)
        host, bound = address[:2]
        self.addr: str = host if isinstance(host, str) else bytes(host).decode()
        self.port: int = int(bound)
        self._closed = False

    @property
    def url(self) -> str:
        """The metrics URL, e.g. ``http://127.0.0.1:9308/metrics``."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (idempotent); the log stays open."""
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.end_connections()
        self._thread.join(timeout=10)

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<embedlog.metrics.MetricsServer {self.url} {'closed' if self._closed else 'serving'}>"


def _check_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be an int from 0 to 65535 (0 picks a free port), got {port!r}")
    return port


def start_http_server(log: Log, port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve ``log``'s metrics at ``http://addr:port/metrics`` from a daemon thread.

    Binds ``127.0.0.1`` unless told otherwise (``addr="0.0.0.0"`` for every interface);
    ``port=0`` picks a free port, read back from ``.port``.  Raises ``ConfigError`` if
    the address cannot be bound.
    """
    if not isinstance(log, Log):
        raise ConfigError(f"log must be an open embedlog.Log (from embedlog.open()), got {log!r}")
    log._check()
    if not isinstance(addr, str):
        raise ConfigError(f"addr must be a host name or IP address as a str ('0.0.0.0': every interface), "
                          f"got {addr!r}")
    return MetricsServer(log, _check_port(port), addr)


def serve_metrics(path: str | os.PathLike[str], addr: str = "127.0.0.1", port: int = 9308, *,
                  stop: threading.Event | None = None, ready: Callable[[MetricsServer], None] | None = None,
                  **open_options: Any) -> None:
    """Open the log at ``path`` and serve its metrics until ``stop`` is set or Ctrl-C.

    What ``embedlog serve --metrics 127.0.0.1:9308`` runs (``embedlog.metrics.parse_address``
    splits the option).  ``ready(server)`` is called once the port is bound (to print
    ``server.url``; with ``port=0`` it tells the port picked).  ``open_options`` go to
    ``embedlog.open``; background retention is off unless ``maintenance_interval_ms`` is
    given, so serving metrics never changes the log.  Returns after closing the server
    and the log.
    """
    open_options.setdefault("maintenance_interval_ms", None)
    stop = threading.Event() if stop is None else stop
    with open_log(path, **open_options) as log, start_http_server(log, port, addr) as server:
        if ready is not None:
            ready(server)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
