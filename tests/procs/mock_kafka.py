"""Helper: librdkafka's mock Kafka cluster in a process of its own, so a test can
``SIGSTOP`` it (the link stalls: connections stay open, nothing answers) and ``SIGCONT`` it.

    python mock_kafka.py [--brokers N]

Prints ``{"bootstrap": "host:port,..."}`` once the cluster answers, then keeps it
running until stdin closes or the process is killed.  The cluster auto-creates topics
with 4 partitions and keeps about 5 MB per partition (older records vanish).

Imported by the tests (``from procs import mock_kafka``): ``start`` runs this script
under a ``harness.Children`` and returns its bootstrap address; ``read_topic`` reads
a remote topic whole with a plain confluent-kafka consumer (the reference reader);
``create_topic``, ``push_errors`` and ``topic_error`` make a cluster of ``in_process`` answer with Kafka
errors (librdkafka's ``rd_kafka_mock_*`` C API, through ctypes).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import glob
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import confluent_kafka

TIMEOUT = 60.0
#: bootstrap servers -> the address of the rd_kafka_mock_cluster_t of a cluster of this process
_CLUSTERS: dict[str, int] = {}


class Remote(NamedTuple):
    """One record as a plain confluent-kafka consumer sees it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_type: int
    timestamp: int


@contextlib.contextmanager
def in_process(brokers: int = 1, timeout: float = 30) -> Iterator[str]:
    """A cluster owned by this process while the block runs: its bootstrap servers."""
    holder = confluent_kafka.Producer({"test.mock.num.brokers": brokers, "log_level": 0})  # the cluster's owner
    servers = ""
    try:
        found = holder.list_topics(timeout=timeout).brokers.values()
        servers = ",".join(f"{b.host}:{b.port}" for b in sorted(found, key=lambda b: b.id))
        # (confluent-kafka's Handle: PyObject_HEAD, then its rd_kafka_t *)
        rk = ctypes.c_void_p.from_address(id(holder) + object.__basicsize__).value
        _CLUSTERS[servers] = _lib().rd_kafka_handle_mock_cluster(rk)
        yield servers
    finally:
        _CLUSTERS.pop(servers, None)
        del holder


@functools.cache
def _lib() -> Any:
    """librdkafka as confluent-kafka's wheel ships it, its mock cluster's functions typed."""
    folder = os.path.join(os.path.dirname(os.path.dirname(confluent_kafka.__file__)), "confluent_kafka.libs")
    lib = ctypes.CDLL(glob.glob(os.path.join(folder, "librdkafka*.so*"))[0])
    lib.rd_kafka_handle_mock_cluster.restype = ctypes.c_void_p
    lib.rd_kafka_handle_mock_cluster.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [ctypes.c_void_p, ctypes.c_int16, ctypes.c_size_t,
                                                            ctypes.POINTER(ctypes.c_int)]
    lib.rd_kafka_mock_topic_set_error.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    return lib


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create ``topic`` in the cluster (of ``in_process``) with ``partitions`` partitions."""
    assert _lib().rd_kafka_mock_topic_create(_CLUSTERS[bootstrap], topic.encode(), partitions, 1) == 0


def push_errors(bootstrap: str, api_key: int, errors: list[int]) -> None:
    """The cluster (of ``in_process``) answers its next ``len(errors)`` requests of
    ``api_key`` (0: Produce, 3: Metadata) with these Kafka error codes, in turn."""
    codes = (ctypes.c_int * len(errors))(*errors)
    _lib().rd_kafka_mock_push_request_errors_array(_CLUSTERS[bootstrap], api_key, len(errors), codes)


def topic_error(bootstrap: str, topic: str, error: int) -> None:
    """Metadata answers for ``topic`` carry the Kafka error code ``error`` (0: none again)."""
    _lib().rd_kafka_mock_topic_set_error(_CLUSTERS[bootstrap], topic.encode(), error)


def start(children: Any) -> tuple[Any, str]:
    """Start a cluster process under ``children``: (its ``harness.Child``, bootstrap servers)."""
    child = children.start("mock_kafka.py", stdin=True)
    return child, child.wait_for(lambda line: "bootstrap" in line)["bootstrap"]


def dead_address() -> str:
    """A 127.0.0.1 ``host:port`` nothing listens on (a cluster that cannot be reached)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def client(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """librdkafka config for a plain client of the cluster (its log quiet)."""
    return {"bootstrap.servers": bootstrap, "log_level": 0, **extra}


def remote_total(bootstrap: str, topic: str) -> int:
    """Records in the remote topic now (the sum of its high watermarks; 0 if missing)."""
    c = confluent_kafka.Consumer(client(bootstrap, **{"group.id": "probe"}))
    try:
        md = c.list_topics(topic, timeout=TIMEOUT).topics.get(topic)
        if md is None or md.error is not None:
            return 0
        return sum(c.get_watermark_offsets(confluent_kafka.TopicPartition(topic, r), timeout=TIMEOUT,
                                           cached=False)[1] for r in md.partitions)
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, isolation: str = "read_committed",
               timeout: float = TIMEOUT) -> dict[int, list[Remote]]:
    """Every record of ``topic`` per partition, from offset 0 to the high watermark.

    Fails if the cluster dropped old records (its per-partition cap: a check that could
    not see them would prove nothing)."""
    c = confluent_kafka.Consumer(client(bootstrap, **{"group.id": "reference-reader", "enable.auto.commit": False,
                                                       "isolation.level": isolation}))
    try:
        md = c.list_topics(topic, timeout=timeout).topics[topic]
        assert md.error is None, f"remote topic {topic!r}: {md.error}"
        parts = sorted(md.partitions)
        ends = {}
        for r in parts:
            low, high = c.get_watermark_offsets(confluent_kafka.TopicPartition(topic, r), timeout=timeout,
                                                cached=False)
            assert low == 0, f"the mock cluster dropped the oldest records of {topic}[{r}] (low watermark {low})"
            ends[r] = high
        out: dict[int, list[Remote]] = {r: [] for r in parts}
        c.assign([confluent_kafka.TopicPartition(topic, r, 0) for r in parts if ends[r] > 0])
        deadline = time.monotonic() + timeout
        done = {r for r in parts if ends[r] == 0}
        while len(done) < len(parts):
            assert time.monotonic() < deadline, f"could not read {topic} to its ends {ends}: {len(done)} done"
            for m in c.consume(10_000, timeout=0.2):
                if m.error() is not None:
                    continue
                r = m.partition()
                ts_type, ts = m.timestamp()
                out[r].append(Remote(r, m.offset(), m.key(), m.value(), list(m.headers() or []), ts_type, ts))
            for tp in c.position([confluent_kafka.TopicPartition(topic, r) for r in parts if r not in done]):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
        return out
    finally:
        c.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", type=int, default=1)
    args = ap.parse_args()
    with in_process(args.brokers) as bootstrap:
        print(json.dumps({"bootstrap": bootstrap}), flush=True)
        sys.stdin.read()  # until the test closes stdin (or kills this process)


if __name__ == "__main__":
    main()
