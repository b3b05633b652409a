"""An edge device logs metrics to embedlog and forwards them to a Kafka cluster.

The device's application only ever writes to its local log: it keeps working when the
uplink is down, and its records wait on disk (bounded by the topic's retention).  A
``Mirror`` in the background forwards everything to Kafka exactly once — across restarts
and link outages — and its progress is an embedlog consumer group named after it, so
``embedlog bridge status`` and the Prometheus metrics show how far behind the uplink is.

Run it with ``python examples/edge_uplink.py [LOG_DIR [KAFKA_BOOTSTRAP_SERVERS]]``: the log
is a temporary directory unless LOG_DIR is given (the topic is then recreated).  With no
Kafka address it starts librdkafka's built-in mock Kafka cluster in this process as a
stand-in (needs ``pip install 'embedlog[bridge]'``, i.e. confluent-kafka).
"""

from __future__ import annotations

import json
import random
import sys
import time

import confluent_kafka

import embedlog
from embedlog.bridge import Mirror

TOPIC = "device-metrics"
SITE = "site-7"


def cluster_address() -> tuple[str, object]:
    """The cluster to forward to: the first argument, or a mock cluster kept alive by the
    returned handle."""
    if len(sys.argv) > 2:
        return sys.argv[2], None
    handle = confluent_kafka.Producer({"test.mock.num.brokers": 1, "log_level": 0})
    brokers = handle.list_topics(timeout=10).brokers.values()
    return ",".join(f"{b.host}:{b.port}" for b in brokers), handle


def read_remote(bootstrap: str, expect: int, timeout: float = 30.0) -> list[confluent_kafka.Message]:
    """What a plain Kafka consumer on the cluster side reads of the topic."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "dashboard",
                                         "auto.offset.reset": "earliest", "log_level": 0})
    parts = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    consumer.assign([confluent_kafka.TopicPartition(TOPIC, p, 0) for p in parts])
    got: list[confluent_kafka.Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        got.extend(m for m in consumer.consume(1000, timeout=0.5) if m.error() is None)
    consumer.close()
    return got


def main(path: str | None) -> None:
    bootstrap, _cluster = cluster_address()
    with embedlog.open(path) as log:  # a real device: embedlog.open("/var/lib/device/log")
        if TOPIC in log.topics():
            log.delete_topic(TOPIC)  # start over (its mirror progress goes with it)
        log.create_topic(TOPIC, partitions=4, config={"retention.bytes": 50_000_000})
        producer = log.producer(linger_ms=5)
        sensors = [f"sensor-{i}" for i in range(8)]

        def record(n: int) -> None:
            for _ in range(n):
                sensor = random.choice(sensors)
                reading = {"sensor": sensor, "celsius": round(random.gauss(21, 2), 2), "ts": time.time()}
                producer.send(TOPIC, json.dumps(reading).encode(), key=sensor.encode(),
                              headers=[("site", SITE.encode())])
            producer.flush()

        record(2_000)  # logged while there was no uplink yet: it waits in the log
        print(f"logged 2000 readings locally; forwarding to Kafka at {bootstrap}")
        config = {"bootstrap.servers": bootstrap, "log_level": 0}
        with Mirror(log, config, topics=[TOPIC], direction="up", name=SITE) as mirror:
            mirror.wait_for_link(timeout=30)
            for _ in range(5):  # the app keeps logging while the mirror forwards
                record(500)
                time.sleep(0.2)
            mirror.wait_caught_up(timeout=60)
            st = mirror.status()
            print(f"mirror {st.name}: link {'up' if st.link_up else 'down'}, {st.records_mirrored} forwarded, "
                  f"lag {st.lag}")
            for p in st.partitions:
                print(f"  {p.topic}[{p.partition}] -> {p.target_topic}: end {p.source_end}, mirrored {p.mirrored}")
        group = log.describe_group(SITE)
        print(f"consumer group {SITE!r} (the mirror's progress): total lag {group.total_lag}")
        remote = read_remote(bootstrap, 4_500)
        sources = {dict(m.headers() or [])["embedlog.source"] for m in remote}
        print(f"the cluster holds {len(remote)} readings, {len(sources)} distinct: "
              f"{'exactly once' if len(remote) == len(sources) == 4_500 else 'MISMATCH'}")
        if len(remote) != 4_500 or len(sources) != 4_500:
            sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
