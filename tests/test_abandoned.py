"""A Log, Producer or group Consumer dropped without close() does not leak.

Python closes an unclosed file when it is collected (with a ResourceWarning); a Log does
the same: its background threads hold it weakly, and once nothing refers to it (nor to
its clients) it is closed, its store released and its threads ended.  Each scenario runs
in a fresh interpreter, so threads and stores of other tests cannot blur the count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import embedlog

_PRELUDE = """
import gc, json, sys, threading, time, warnings
import embedlog
from embedlog import log as logmod
warnings.simplefilter("always")
caught = []
warnings.showwarning = lambda message, category, *a, **k: caught.append((category.__name__, str(message)))

def ours():
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("embedlog-"))

def settle(until, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        gc.collect()
        if until():
            return True
        time.sleep(0.05)
    return until()
"""


def _run(body: str, path: Path) -> dict:
    script = _PRELUDE + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_dropped_log_with_clients_is_closed_and_its_threads_end(tmp_path: Path) -> None:
    got = _run("""
        path = sys.argv[1]
        def use():
            log = embedlog.open(path, maintenance_interval_ms=50)
            log.create_topic("t", partitions=2)
            p = log.producer()
            for i in range(10):
                p.send("t", b"v%d" % i, key=b"k%d" % i)
            p.flush()
            p.send("t", b"lingering")          # starts the linger thread
            c = log.consumer(["t"], group="g", session_timeout_ms=6000, heartbeat_interval_ms=200)
            while not c.assignment():
                c.poll(0.1)
            alone = log.consumer(["t"], auto_offset_reset="earliest")
            alone.poll(0.5)
            return ours()
        during = use()
        released = settle(lambda: not logmod._SHARED and not ours())
        with embedlog.open(path) as log:      # the directory opens again, its data intact
            ends = [p.end_offset for p in log.describe_topic("t").partitions]
        print(json.dumps({"during": during, "released": released, "left": ours(), "shared": len(logmod._SHARED),
                          "ends": ends, "warnings": caught}))
    """, tmp_path / "log")
    assert {"embedlog-maintenance", "embedlog-linger", "embedlog-heartbeat", "embedlog-wake"} <= set(got["during"])
    assert got["released"], got
    assert got["left"] == []
    assert got["shared"] == 0
    assert sum(got["ends"]) >= 10  # the ten flushed records (the lingering one too, if its time came)
    assert any(cat == "ResourceWarning" and "never closed" in msg for cat, msg in got["warnings"]), got["warnings"]


def test_a_log_kept_alive_by_its_producer_keeps_working(tmp_path: Path) -> None:
    got = _run("""
        path = sys.argv[1]
        def producer_only():
            log = embedlog.open(path)
            log.create_topic("t")
            return log.producer(linger_ms=20)
        p = producer_only()                   # the Log itself is no longer named anywhere
        gc.collect()
        p.send("t", b"late")                  # written by the linger thread, with no flush
        with embedlog.open(path) as other:
            written = settle(lambda: other.describe_topic("t").partitions[0].end_offset == 1)
        alive = len(logmod._SHARED)
        p.close()
        del p
        released = settle(lambda: not logmod._SHARED and not ours())
        print(json.dumps({"written": written, "alive_while_held": alive, "released": released,
                          "warnings": caught}))
    """, tmp_path / "log")
    assert got["written"]
    assert got["alive_while_held"] == 1
    assert got["released"]  # the producer closed, then dropped: the log it held is collected
    assert any(cat == "ResourceWarning" for cat, _ in got["warnings"])


def test_a_closed_log_gives_no_warning_when_collected(tmp_path: Path) -> None:
    got = _run("""
        path = sys.argv[1]
        log = embedlog.open(path)
        log.create_topic("t")
        with log.producer() as p:
            p.send("t", b"x")
        log.close()
        del log, p
        settle(lambda: not ours())            # (a linger thread ends once its sleep is over)
        print(json.dumps({"warnings": caught, "left": ours()}))
    """, tmp_path / "log")
    assert got == {"warnings": [], "left": []}


def test_closing_still_works_after_threads_hold_the_log_weakly(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=20) as log:
        log.create_topic("t", config={"retention.ms": 1})
        with log.producer(linger_ms=1) as p:
            p.send("t", b"x")
        import time  # noqa: PLC0415

        deadline = time.monotonic() + 10
        while log.describe_topic("t").partitions[0].start_offset < 1 and time.monotonic() < deadline:
            time.sleep(0.02)  # the maintenance thread, holding the log weakly, still runs retention
        assert log.describe_topic("t").partitions[0].start_offset == 1


def test_a_producer_dropped_right_after_send_still_writes(tmp_path: Path) -> None:
    """As with Kafka's producers (``KafkaProducer(...).send(...).get()``): records buffered
    when the last reference goes are written by the linger thread, which holds the
    producer until then; only an idle producer is let go."""
    got = _run("""
        path = sys.argv[1]
        delivered = []
        with embedlog.open(path) as log:
            log.create_topic("t")
            for i in range(20):
                log.producer(linger_ms=5).send("t", b"v%d" % i, on_delivery=lambda e, md: delivered.append(e))
            gc.collect()
            written = settle(lambda: log.describe_topic("t").partitions[0].end_offset == 20)
            idle_released = settle(lambda: "embedlog-linger" not in ours())
        errors = sum(e is not None for e in delivered)
        print(json.dumps({"written": written, "delivered": len(delivered), "errors": errors,
                          "idle_released": idle_released}))
    """, tmp_path / "log")
    assert got == {"written": True, "delivered": 20, "errors": 0, "idle_released": True}
