"""``embedlog serve --metrics``: a real process serving kafka-exporter-style series."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import embedlog

pytest.importorskip("prometheus_client")


def test_serve_metrics_process_is_scraped_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("orders", partitions=2)
        with log.producer() as p:
            for i in range(10):
                p.send("orders", b"x", partition=i % 2)
        log.commit_offsets("billing", {embedlog.TopicPartition("orders", 0): 2})
    proc = subprocess.Popen([sys.executable, "-m", "embedlog.cli", "--path", str(path), "serve",
                             "--metrics", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", line)
        assert match, line
        body = urllib.request.urlopen(match.group(1), timeout=10).read().decode()
        assert 'kafka_topic_partition_current_offset{partition="0",topic="orders"} 5.0' in body
        assert re.search(r'kafka_consumergroup_lag\{consumergroup="billing",partition="0",topic="orders"\} 3\.0',
                         body), body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_rejects_a_bad_address(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "embedlog.cli", "--path", str(tmp_path), "serve",
                        "--metrics", "127.0.0.1:99999"], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1
    assert "port" in r.stderr
