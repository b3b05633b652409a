"""``embedlog serve --metrics``: a real process serving kafka-exporter-style series."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import embedlog

pytest.importorskip("prometheus_client")


@contextlib.contextmanager
def serving(path: Path, metrics: str) -> Iterator[str]:
    """``embedlog serve --metrics METRICS`` in a subprocess: its loopback /metrics URL,
    then Ctrl-C, which must end it with status 0."""
    proc = subprocess.Popen([sys.executable, "-m", "embedlog.cli", "--path", str(path), "serve", "--metrics", metrics],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", line)
        assert match, line
        yield match.group(1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_metrics_process_is_scraped_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("orders", partitions=2)
        with log.producer() as p:
            for i in range(10):
                p.send("orders", b"x", partition=i % 2)
        log.commit_offsets("billing", {embedlog.TopicPartition("orders", 0): 2})
    with serving(path, "127.0.0.1:0") as url:
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'kafka_topic_partition_current_offset{partition="0",topic="orders"} 5.0' in body
        assert re.search(r'kafka_consumergroup_lag\{consumergroup="billing",partition="0",topic="orders"\} 3\.0',
                         body), body


def test_serve_rejects_a_bad_address(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "embedlog.cli", "--path", str(tmp_path), "serve",
                        "--metrics", "127.0.0.1:99999"], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1
    assert "port" in r.stderr


def test_serve_metrics_of_a_missing_log_is_refused_in_one_line(tmp_path: Path) -> None:
    """A typo in --path made and served an empty log (embedlog_up 1, no series), as if
    healthy; every other reading command refuses a missing log."""
    missing = tmp_path / "typo"
    r = subprocess.run([sys.executable, "-m", "embedlog.cli", "--path", str(missing), "serve",
                        "--metrics", "127.0.0.1:0"], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1, r
    assert r.stderr.splitlines() == [f"embedlog: error: no embedlog log at {str(missing)!r} (create one with: "
                                     f"embedlog --path {missing} topics create NAME)"]
    assert not missing.exists()


def test_serve_metrics_takes_a_bare_port_on_loopback(tmp_path: Path) -> None:
    """``--metrics 0`` bound 0.0.0.0:9308 (the number read as a host)."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("orders")
    with serving(path, "0") as url:
        assert not url.endswith(":9308/metrics"), url
        assert "embedlog_up" in urllib.request.urlopen(url, timeout=10).read().decode()
