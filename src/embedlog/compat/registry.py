"""Which embedded log a Kafka client config talks to.

Clients created with the same ``bootstrap.servers`` value share one in-process log (a
temporary one, created on first use), so a producer and a consumer built in different
parts of an application meet, as they would on one cluster.  A config with
``embedlog.path`` uses that log directory instead (shared by every client naming it).

A log reached this way behaves like a broker with default settings: topics are created
on first use (``auto.create.topics.enable``) with ``num.partitions`` partitions (1).
Both are settable per cluster with :func:`configure`, or per client with the config keys
``embedlog.auto.create.topics.enable`` and ``embedlog.num.partitions``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Mapping
from typing import Any

import attrs

import embedlog

__all__ = ["Cluster", "broker_address", "cluster_id", "configure", "log_for", "reset", "stop_using", "use_log"]

PATH_KEY = "embedlog.path"
AUTO_CREATE_KEY = "embedlog.auto.create.topics.enable"
PARTITIONS_KEY = "embedlog.num.partitions"
#: config keys embedlog adds to every client's accepted set
EMBEDLOG_KEYS = frozenset({PATH_KEY, AUTO_CREATE_KEY, PARTITIONS_KEY})


@attrs.define(eq=False)
class Cluster:
    """One embedded "cluster": a log and its broker-like defaults."""

    name: str
    log: embedlog.Log
    auto_create_topics: bool = True
    num_partitions: int = 1
    owned: bool = True  # the registry opened the log (and closes it on reset)

    def ensure_topic(self, topic: str, *, create: bool | None = None) -> bool:
        """Create ``topic`` if missing and auto-creation is on; return whether it exists."""
        if topic in self.log.topics():
            return True
        if not (self.auto_create_topics if create is None else create):
            return False
        with contextlib.suppress(embedlog.errors.TopicExistsError):
            self.log.create_topic(topic, partitions=self.num_partitions)
        return True


_LOCK = threading.Lock()
_CLUSTERS: dict[str, Cluster] = {}
_DEFAULTS: dict[str, dict[str, Any]] = {}


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _key(config: Mapping[str, Any]) -> str:
    path = config.get(PATH_KEY)
    if path:
        return "path:" + str(os.path.realpath(os.fspath(path)))
    servers: object = config.get("bootstrap.servers") or config.get("bootstrap_servers") or "localhost:9092"
    entries = servers if isinstance(servers, (list, tuple)) else str(servers).split(",")
    brokers = sorted({_broker(str(e)) for e in entries if str(e).strip()})
    return "servers:" + ",".join(brokers or ["localhost:9092"])


def _broker(entry: str) -> str:
    """One bootstrap entry as the clients read it: ``host:port`` (port 9092 if none;
    a ``PLAINTEXT://``-style scheme dropped; host names are not case-sensitive), so that
    spellings of one broker are one log."""
    entry = entry.strip().lower()
    if "://" in entry:
        entry = entry.split("://", 1)[1]
    entry = entry.rstrip("/")
    if entry.startswith("["):  # [IPv6] or [IPv6]:port
        return entry if "]:" in entry else entry + ":9092"
    return entry if ":" in entry else entry + ":9092"


def log_for(config: Mapping[str, Any]) -> Cluster:
    """The cluster (log + defaults) a client with ``config`` talks to; created on first use."""
    key = _key(config)
    with _LOCK:
        routed = _CLUSTERS.get("*")
        if routed is not None and routed.log.closed:  # use_log()'s log was closed: stop routing to it
            del _CLUSTERS["*"]
            routed = None
        cluster = routed or _CLUSTERS.get(key)
        if cluster is None or cluster.log.closed:
            path = config.get(PATH_KEY)
            log = embedlog.open(os.fspath(path) if path else None, maintenance_interval_ms=None)
            defaults = _DEFAULTS.get(key, {})
            cluster = Cluster(key, log, auto_create_topics=defaults.get("auto_create_topics", True),
                              num_partitions=defaults.get("num_partitions", 1))
            _CLUSTERS[key] = cluster
    if AUTO_CREATE_KEY in config:
        cluster.auto_create_topics = _bool(config[AUTO_CREATE_KEY])
    if PARTITIONS_KEY in config:
        cluster.num_partitions = int(config[PARTITIONS_KEY])
    return cluster


def configure(bootstrap_servers: str = "localhost:9092", *, auto_create_topics: bool | None = None,
              num_partitions: int | None = None) -> None:
    """Set broker-like defaults for the cluster at ``bootstrap_servers`` (now and later)."""
    key = _key({"bootstrap.servers": bootstrap_servers})
    with _LOCK:
        d = _DEFAULTS.setdefault(key, {})
        if auto_create_topics is not None:
            d["auto_create_topics"] = auto_create_topics
        if num_partitions is not None:
            d["num_partitions"] = num_partitions
        cluster = _CLUSTERS.get(key)
        if cluster is not None:
            cluster.auto_create_topics = d.get("auto_create_topics", cluster.auto_create_topics)
            cluster.num_partitions = d.get("num_partitions", cluster.num_partitions)


def use_log(log: embedlog.Log, *, auto_create_topics: bool = True, num_partitions: int = 1) -> None:
    """Route every client made from now on, whatever its ``bootstrap.servers``, to ``log``
    (the pytest plugin's fixture does this); undone by :func:`stop_using` or
    :func:`reset`.  The clusters made before stay as they were, for the clients that use
    them and for after."""
    with _LOCK:
        _CLUSTERS["*"] = Cluster("*", log, auto_create_topics, num_partitions, owned=False)


def stop_using(log: embedlog.Log) -> None:
    """End :func:`use_log`'s routing to ``log`` (if it is still the one routed to):
    clients made from now on find their cluster by ``bootstrap.servers`` again."""
    with _LOCK:
        routed = _CLUSTERS.get("*")
        if routed is not None and routed.log is log:
            del _CLUSTERS["*"]


def reset() -> None:
    """Forget every cluster, closing the logs the registry opened."""
    with _LOCK:
        clusters = list(_CLUSTERS.values())
        _CLUSTERS.clear()
        _DEFAULTS.clear()
    for c in clusters:
        if c.owned:
            c.log.close()


def broker_address(servers: object) -> tuple[str, int]:
    """Host and port of the first entry of ``bootstrap.servers`` (``localhost:9092`` if none):
    what the shims report as their one broker."""
    if isinstance(servers, (list, tuple)):
        servers = ",".join(str(s) for s in servers)
    first = str(servers or "localhost:9092").split(",")[0].strip() or "localhost:9092"
    if "://" in first:
        first = first.split("://", 1)[1]
    host, sep, port = first.rpartition(":")
    if not sep:
        return first, 9092
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return first, 9092


def cluster_id(log: embedlog.Log) -> str:
    """A stable id for the log: ``embedlog-`` and a hash of its directory."""
    digest = hashlib.sha1(os.path.realpath(log.path).encode()).hexdigest()[:22]  # noqa: S324 - a name
    return f"embedlog-{digest}"
