"""A first look at embedlog: topics, keyed partitioning, a durable flush, replay.

Run it with ``python examples/quickstart.py``; it uses a temporary log directory (or the
one named by the first argument) and needs no server.
"""

from __future__ import annotations

import sys
import tempfile
import time

import embedlog
from embedlog import TopicPartition


def main(path: str) -> None:
    with embedlog.open(path) as log:
        if "orders" not in log.topics():
            log.create_topic("orders", partitions=3, config={"retention.ms": 7 * 24 * 3600 * 1000})

        # Produce: keyed records go where Kafka's default partitioner would put them.
        with log.producer(compression="zstd") as producer:
            for i in range(10):
                user = f"user-{i % 3}".encode()
                producer.send("orders", f"order {i}".encode(), key=user, headers=[("source", b"quickstart")])
            producer.flush()  # written, and fsynced: it survives kill -9 and power loss

        for part in log.describe_topic("orders").partitions:
            print(f"orders[{part.partition}]: offsets {part.start_offset}..{part.end_offset}, {part.bytes} bytes")

        # Consume from the beginning; each user's orders arrive in order.
        with log.consumer(["orders"], auto_offset_reset="earliest") as consumer:
            messages = consumer.poll(timeout=1.0)
            for msg in messages:
                print(f"  {msg.topic}[{msg.partition}]@{msg.offset} key={msg.key!r} value={msg.value!r}")

            # Replay: seek back and read a partition again.
            tp = TopicPartition("orders", messages[0].partition)
            consumer.seek(tp, 0)
            again = [m for m in consumer.poll(timeout=1.0) if m.partition == tp.partition]
            print(f"replayed {len(again)} records of orders[{tp.partition}]")

            # Time travel: the first offset at or after a timestamp.
            hour_ago = int(time.time() * 1000) - 3_600_000
            print("first offsets in the last hour:", consumer.offsets_for_times({tp: hour_ago}))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp + "/log")
