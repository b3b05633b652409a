"""Metrics pipeline: host metrics on a topic, a windowed anomaly detector consuming them.

Shows: a collector producing CPU readings of three hosts (keyed by host, so each host's
readings stay in order in one partition) with event-time timestamps; a detector in consumer
group ``anomaly-detector`` that closes one-minute tumbling windows per host, scores each
window's mean against that host's earlier windows (a z-score), and publishes anomalies to
a second topic; and ``offsets_for_times`` to replay exactly one window of raw readings.

Run it with ``python examples/metrics_pipeline.py [LOG_DIR]`` (default: a temporary log).
Fifteen minutes of simulated readings go through in about a second.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import threading
import time

import embedlog
from embedlog import TopicPartition

METRICS, ANOMALIES, GROUP = "metrics", "anomalies", "anomaly-detector"
HOSTS = {"web-1": 40.0, "web-2": 55.0, "db-1": 30.0}  # normal mean CPU %
WINDOW_MS, STEP_MS, MINUTES = 60_000, 5_000, 15
INCIDENTS = {("web-2", 9): 95.0, ("db-1", 12): 3.0}  # (host, minute) -> CPU during an incident
Z_LIMIT, MIN_HISTORY, SIGMA_FLOOR = 4.0, 3, 2.0
START_MS = (int(time.time() * 1000) // WINDOW_MS - MINUTES - 1) * WINDOW_MS  # recent: retention keeps it


def collect(log: embedlog.Log, done: threading.Event) -> int:
    """Produce a reading per host every 5 simulated seconds; return how many."""
    rng = random.Random(7)
    sent = 0
    with log.producer(linger_ms=2) as producer:
        for ts in range(START_MS, START_MS + MINUTES * WINDOW_MS, STEP_MS):
            minute = (ts - START_MS) // WINDOW_MS
            for host, mean in HOSTS.items():
                cpu = min(100.0, max(0.0, INCIDENTS.get((host, minute), mean) + rng.gauss(0, 4)))
                producer.send(METRICS, json.dumps({"host": host, "cpu": round(cpu, 1)}).encode(),
                              key=host.encode(), timestamp_ms=ts)
                sent += 1
            time.sleep(0.004)  # a live feed, compressed in time
    done.set()  # the producer closed: everything it sent is written
    return sent


class Detector:
    """Tumbling one-minute windows per host; a window is closed by the first later reading."""

    def __init__(self, producer: embedlog.Producer) -> None:
        self.producer = producer
        self.open: dict[str, tuple[int, list[float]]] = {}  # host -> (window start, readings)
        self.history: dict[str, list[float]] = {h: [] for h in HOSTS}  # means of normal windows
        self.windows = 0
        self.found: list[tuple[str, int]] = []

    def add(self, host: str, ts: int, cpu: float) -> None:
        start = ts - ts % WINDOW_MS
        current = self.open.get(host)
        if current is not None and current[0] != start:
            self.close(host, *current)
            current = None
        if current is None:
            current = self.open[host] = (start, [])
        current[1].append(cpu)

    def close(self, host: str, start: int, readings: list[float]) -> None:
        self.windows += 1
        mean, past = statistics.fmean(readings), self.history[host]
        if len(past) < MIN_HISTORY:  # warming up
            past.append(mean)
            return
        z = (mean - statistics.fmean(past)) / max(statistics.stdev(past), SIGMA_FLOOR)
        if abs(z) < Z_LIMIT:
            past.append(mean)  # anomalous windows stay out of the baseline
            return
        minute = (start - START_MS) // WINDOW_MS
        print(f"  anomaly: {host} window t+{minute:02d}m mean cpu {mean:5.1f}% (z={z:+.1f})")
        self.found.append((host, minute))
        event = {"host": host, "window_start": start, "mean_cpu": round(mean, 1), "z": round(z, 1)}
        self.producer.send(ANOMALIES, json.dumps(event).encode(), key=host.encode(), timestamp_ms=start)

    def flush_windows(self) -> None:
        for host, (start, readings) in sorted(self.open.items()):
            self.close(host, start, readings)
        self.open.clear()


def detect(log: embedlog.Log, done: threading.Event) -> Detector:
    with log.producer() as producer, log.consumer([METRICS], group=GROUP, auto_offset_reset="earliest",
                                                  enable_auto_commit=False) as consumer:
        detector = Detector(producer)
        while True:
            finished = done.is_set()
            messages = consumer.poll(timeout=0.1)
            for msg in messages:
                reading = json.loads(msg.value)
                detector.add(reading["host"], msg.timestamp, reading["cpu"])
            if messages:
                producer.flush()  # anomalies first, then the offsets: at-least-once
                consumer.commit()
            elif finished and len(consumer.assignment()) == 2:
                detector.flush_windows()  # end of the stream closes the last windows
                return detector


def main(path: str | None) -> int:
    with embedlog.open(path) as log:
        for topic in {METRICS, ANOMALIES} & set(log.topics()):  # a LOG_DIR of a previous run
            log.delete_topic(topic)
        if GROUP in log.groups():
            log.delete_group(GROUP)
        log.create_topic(METRICS, partitions=2, config={"retention.ms": 24 * 3600 * 1000})
        log.create_topic(ANOMALIES, partitions=1, config={"retention.ms": 30 * 24 * 3600 * 1000})

        done = threading.Event()
        sent: list[int] = []
        collector = threading.Thread(target=lambda: sent.append(collect(log, done)), name="collector")
        collector.start()
        detector = detect(log, done)
        collector.join()
        print(f"collector: {sent[0]} readings of {len(HOSTS)} hosts over {MINUTES} simulated minutes")
        print(f"detector: {detector.windows} windows closed, {len(detector.found)} anomalies, "
              f"lag {log.describe_group(GROUP).total_lag}")

        with log.consumer([ANOMALIES], auto_offset_reset="earliest") as reader:
            published = [json.loads(m.value) for m in reader.poll(timeout=1.0)]
        print(f"topic {ANOMALIES!r}: {[(a['host'], a['mean_cpu']) for a in published]}")

        # Replay one window of raw readings by time: the first offset at or after its start.
        host, minute = next(iter(INCIDENTS))
        begin, end = START_MS + minute * WINDOW_MS, START_MS + (minute + 1) * WINDOW_MS
        with log.consumer(auto_offset_reset="earliest") as replay:
            tps = [TopicPartition(METRICS, p) for p in range(2)]
            replay.assign(tps)
            for tp, found in replay.offsets_for_times(dict.fromkeys(tps, begin)).items():
                if found is not None:
                    replay.seek(tp, found.offset)
            window = []
            while batch := replay.poll(timeout=0.2):
                window += [json.loads(m.value)["cpu"] for m in batch
                           if m.timestamp < end and json.loads(m.value)["host"] == host]
        print(f"replayed window t+{minute:02d}m of {host} by timestamp: {len(window)} readings, max {max(window)}%")

        expected = sorted((h, m) for h, m in INCIDENTS)
        ok = sorted(detector.found) == expected and len(published) == len(expected) and len(window) == 12
        print(f"detected exactly the injected incidents {expected}: {ok}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
