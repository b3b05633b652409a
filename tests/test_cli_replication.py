"""``embedlog serve --replicate``, ``follow``, ``replication status`` and ``promote``:
real ``embedlog`` processes replicating over 127.0.0.1."""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import embedlog
from embedlog.errors import NotLeaderError
from embedlog.replication import replication_status

CLI = [sys.executable, "-m", "embedlog.cli"]
TIMEOUT_S = 60


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=TIMEOUT_S)
            if p.stderr is not None:
                p.stderr.close()


def start(procs: list[subprocess.Popen[str]], *args: str | Path) -> subprocess.Popen[str]:
    p = subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    return p


def read_line(p: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    """The next stderr line of ``p``; it must match ``pattern``."""
    assert p.stderr is not None
    line = p.stderr.readline()
    match = re.search(pattern, line)
    assert match, f"expected {pattern!r}, got {line!r} (exit {p.poll()})"
    return match


def stop(p: subprocess.Popen[str], sig: int = signal.SIGINT) -> None:
    """Ctrl-C (or SIGTERM, as systemd and ``docker stop`` send): the command exits 0."""
    p.send_signal(sig)
    assert p.wait(timeout=TIMEOUT_S) == 0


def wait_for(cond: object, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    f = tmp_path / "secret"
    f.write_bytes(b"a-long-shared-secret\n")
    return f


def start_leader(procs: list[subprocess.Popen[str]], path: Path,
                 *auth: str | Path) -> tuple[subprocess.Popen[str], str]:
    leader = start(procs, "--path", path, "serve", "--replicate", "127.0.0.1:0", *auth)
    m = read_line(leader, r"replicating .* as leader at (127\.0\.0\.1:\d+) \(epoch (\d+)\)")
    return leader, m[1]


def records(path: Path, topic: str) -> list[bytes | None]:
    with embedlog.open(path, maintenance_interval_ms=None) as log, \
            log.consumer([topic], auto_offset_reset="earliest") as c:
        got: list[bytes | None] = []
        while batch := c.poll(timeout=0.2):
            got.extend(m.value for m in batch)
        return got


def topics(path: Path) -> list[str]:
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        return log.topics()


def in_sync(path: Path) -> bool:
    """Whether the leader on ``path`` wrote a follower into its in-sync set.  Until then
    acks="all" is satisfied by the leader alone: "connected" means authenticated, not
    yet caught up (a race a loaded machine loses now and then)."""
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        return bool(replication_status(log)["isr"])


def produce_one(path: Path, value: bytes) -> None:
    with embedlog.open(path, maintenance_interval_ms=None) as log, log.producer() as p:
        p.send("orders", value, partition=0)
        p.flush()


def test_serve_replicate_and_follow_copy_records_then_promote(tmp_path: Path, secret_file: Path,
                                                              procs: list[subprocess.Popen[str]]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    with embedlog.open(a) as log:
        log.create_topic("orders", partitions=2)
        with log.producer() as p:
            p.send("orders", b"before", partition=0)
    leader, address = start_leader(procs, a, "--secret-file", secret_file)
    r = cli("--path", b, "follow", address, "--secret-file", secret_file, "--max-bytes", "0")
    assert r.returncode == 2
    assert "--max-bytes" in r.stderr
    follower = start(procs, "--path", b, "follow", address, "--secret-file", secret_file, "--max-bytes", "65536",
                     "--session-timeout-ms", "15000")
    read_line(follower, rf"^following {re.escape(address)} into .* \(connected, epoch 0\)$")
    wait_for(lambda: in_sync(a), "the follower in the leader's in-sync set")

    # A record produced on the leader's directory (by this process) reaches the follower's.
    with embedlog.open(a, maintenance_interval_ms=None) as log, log.producer(acks="all") as p:
        p.send("orders", b"after", partition=1)
        p.flush()  # returns once the in-sync follower holds it durably
    wait_for(lambda: b.joinpath("data.mdb").exists() and sorted(records(b, "orders")) == [b"after", b"before"],
             "the follower to hold both records")

    # The leader's directory says who is in sync, from another process.
    r = cli("--path", a, "replication", "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["role"] == "leader"
    assert st["replicating"] is True
    assert len(st["isr"]) == 1
    assert st["isr_size"] == 2
    assert st["partitions"]["orders[0]"]["high_watermark"] == 1
    assert st["partitions"]["orders[1]"]["high_watermark"] == 1

    r = cli("--path", b, "replication", "status", "--json")
    assert r.returncode == 0, r.stderr
    st_b = json.loads(r.stdout)
    assert st_b["role"] == "replica"
    assert st_b["isr"] in ([], None)
    assert st_b["node_id"] == st["isr"][0]
    assert (st_b["follower"]["leader"], st_b["follower"]["in_sync"], st_b["follower"]["lag"]) == \
        (st["node_id"], True, 0)  # what its follow last recorded
    assert st["follower"] is None
    assert st_b["partitions"]["orders[1]"] == {"high_watermark": 1, "end_offset": 1, "log_start_offset": 0,
                                               "leader_epoch": 0}
    r = cli("--path", b, "replication", "status")
    assert r.returncode == 0, r.stderr
    assert "role: replica" in r.stdout
    assert re.search(rf"^follows: leader {st['node_id']}  epoch 0  in sync: yes  lag: 0 records", r.stdout,
                     re.MULTILINE), r.stdout
    assert re.search(r"^orders\[1\] +1 +1 +0 +0$", r.stdout, re.MULTILINE), r.stdout

    # A running follower holds the directory: promote refuses, in one line.
    r = cli("--path", b, "promote")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1
    assert "stop it first" in r.stderr

    stop(follower)
    stop(leader)
    with pytest.raises(NotLeaderError):
        produce_one(b, b"x")

    r = cli("--path", b, "promote")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"promoted .* to leader at epoch 1\n", r.stdout), r.stdout
    r = cli("--path", b, "--json", "promote")
    assert json.loads(r.stdout) == {"role": "leader", "epoch": 2}
    produce_one(b, b"on b")
    assert sorted(records(b, "orders")) == [b"after", b"before", b"on b"]
    st_b = json.loads(cli("--path", b, "replication", "status", "--json").stdout)
    assert (st_b["role"], st_b["epoch"], st_b["replicating"]) == ("leader", 2, False)


def test_serve_and_follow_stop_cleanly_on_sigterm(tmp_path: Path, secret_file: Path,
                                                  procs: list[subprocess.Popen[str]]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    with embedlog.open(a) as log:
        log.create_topic("orders", partitions=1)
    leader, address = start_leader(procs, a, "--secret-file", secret_file)
    follower = start(procs, "--path", b, "follow", address, "--secret-file", secret_file)
    read_line(follower, rf"^following {re.escape(address)} into ")
    stop(follower, signal.SIGTERM)
    stop(leader, signal.SIGTERM)
    st = json.loads(cli("--path", a, "replication", "status", "--json").stdout)
    assert (st["role"], st["replicating"], st.get("stale_lease")) == ("leader", False, False), st


def start_pair(procs: list[subprocess.Popen[str]], a: Path, b: Path, secret_file: Path
               ) -> tuple[subprocess.Popen[str], str, subprocess.Popen[str]]:
    """``serve`` on ``a`` (a topic "orders") and ``follow`` on ``b``, once ``b`` is in sync."""
    with embedlog.open(a) as log:
        log.create_topic("orders", partitions=1)
    leader, address = start_leader(procs, a, "--secret-file", secret_file)
    follower = start(procs, "--path", b, "follow", address, "--secret-file", secret_file)
    wait_for(lambda: in_sync(a), "the follower in the leader's in-sync set")
    return leader, address, follower


def test_status_after_the_leader_was_killed_names_the_followers_to_promote(
        tmp_path: Path, secret_file: Path, procs: list[subprocess.Popen[str]]) -> None:
    """After ``kill -9`` of ``serve``, ``replication status`` showed no in-sync set
    (``isr: null``, one in-sync node) although a follower held every acknowledged record:
    it shows the set the dead leader last recorded, which is whom to promote."""
    a, b = tmp_path / "a", tmp_path / "b"
    leader, _, follower = start_pair(procs, a, b, secret_file)
    leader.kill()
    leader.wait()
    st = json.loads(cli("--path", a, "replication", "status", "--json").stdout)
    node_b = json.loads(cli("--path", b, "replication", "status", "--json").stdout)["node_id"]
    assert (st["replicating"], st["stale_lease"], st["isr"], st["isr_size"]) == (True, True, [node_b], 2), st
    r = cli("--path", a, "replication", "status")
    assert "promote one of these" in r.stdout, r.stdout
    stop(follower)


def test_serve_says_when_a_promoted_node_fences_it(tmp_path: Path, secret_file: Path,
                                                   procs: list[subprocess.Popen[str]]) -> None:
    """A fenced ``serve`` printed nothing: its operator had no way to learn that the
    directory must now follow the new leader (producers in other processes on it are not
    stopped by the fencing)."""
    a, b = tmp_path / "a", tmp_path / "b"
    leader, address, follower = start_pair(procs, a, b, secret_file)
    stop(follower)
    assert cli("--path", b, "promote").returncode == 0
    r = cli("--path", b, "follow", address, "--secret-file", secret_file)  # the new leader meets the old one
    assert r.returncode == 1, r.stderr
    assert leader.stderr is not None
    ready, _, _ = select.select([leader.stderr], [], [], TIMEOUT_S)  # (no line at all: fail, do not hang)
    assert ready, "serve said nothing about being fenced"
    read_line(leader, r"^embedlog: this leader is fenced: .*epoch 1, newer than this leader's 0.*embedlog follow")
    stop(leader)


def test_follow_with_a_wrong_secret_fails_in_one_line(tmp_path: Path, secret_file: Path,
                                                     procs: list[subprocess.Popen[str]]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    with embedlog.open(a) as log:
        log.create_topic("orders")
    leader, address = start_leader(procs, a, "--secret-file", secret_file)
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"not-the-shared-secret")
    r = cli("--path", b, "follow", address, "--secret-file", wrong)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("embedlog: "), r.stderr
    assert "auth" in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr
    # The leader is unchanged and still serving.
    assert leader.poll() is None
    st = json.loads(cli("--path", a, "replication", "status", "--json").stdout)
    assert st["isr"] == []
    stop(leader)


def test_serve_with_insecure_and_follow(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    leader, address = start_leader(procs, a, "--insecure")
    follower = start(procs, "--path", b, "follow", address, "--insecure")
    read_line(follower, r"^following .* \(connected, epoch 0\)$")
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        log.create_topic("t")
        with log.producer(acks="all") as p:
            p.send("t", b"v")
    # (the producer's close does not wait for the follower: until the topic reaches it,
    # reading it there raises UnknownTopicError, which must not end the wait)
    wait_for(lambda: "t" in topics(b) and records(b, "t") == [b"v"], "the follower to hold the record")
    stop(follower)
    stop(leader)


@pytest.mark.parametrize(("args", "needle"), [
    (["serve"], "--metrics HOST:PORT, --replicate HOST:PORT"),
    (["serve", "--replicate", "127.0.0.1:0"], "needs authentication"),
    (["serve", "--metrics", "127.0.0.1:0", "--insecure"], "go with --replicate"),
    (["follow", "127.0.0.1:1"], "needs authentication"),
    (["follow", "127.0.0.1:1", "--insecure", "--secret-file", "x"], "not both"),
    (["serve", "--replicate", "127.0.0.1:0", "--secret-file", "/nonexistent/secret"], "cannot read the secret"),
    (["replication", "status"], "no embedlog log"),
    (["promote"], "no embedlog log"),
])
def test_replication_commands_reject_bad_usage_in_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    r = cli("--path", tmp_path / "log", *args)
    assert r.returncode in (1, 2)
    assert r.stderr.count("\n") == 1, r.stderr
    assert needle in r.stderr


def test_an_empty_secret_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")  # (the trailing newline is stripped: nothing is left)
    for command in (("serve", "--replicate", "127.0.0.1:0"), ("follow", "127.0.0.1:9")):
        r = cli("--path", tmp_path / "log", *command, "--secret-file", empty)
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1
        assert "secret is empty" in r.stderr
        assert not (tmp_path / "log").exists()  # refused before the log directory was created


def test_a_short_secret_and_a_port_alone_serve_and_follow_on_loopback(tmp_path: Path,
                                                                      procs: list[subprocess.Popen[str]]) -> None:
    """Any non-empty secret is accepted (``b"secret"``: 6 bytes); ``--replicate :0`` binds
    127.0.0.1, and ``follow :PORT`` follows a leader on loopback."""
    short = tmp_path / "short"
    short.write_bytes(b"secret\n")
    a, b = tmp_path / "a", tmp_path / "b"
    with embedlog.open(a) as log:
        log.create_topic("orders", partitions=1)
    leader = start(procs, "--path", a, "serve", "--replicate", ":0", "--secret-file", short)
    port = read_line(leader, r"replicating .* as leader at 127\.0\.0\.1:(\d+) ")[1]
    produce_one(a, b"short-secret")
    follower = start(procs, "--path", b, "follow", f":{port}", "--secret-file", short)
    wait_for(lambda: b.exists() and "orders" in topics(b) and records(b, "orders") == [b"short-secret"],
             "the record on the follower")
    stop(follower)
    stop(leader)


def test_python_dash_m_embedlog_runs_the_cli() -> None:
    r = subprocess.run([sys.executable, "-m", "embedlog", "--help"], capture_output=True, text=True,
                       timeout=TIMEOUT_S, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: embedlog ")
    assert "replication" in r.stdout
    assert "promote" in r.stdout
    r = subprocess.run([sys.executable, "-m", "embedlog", "--path", "/nonexistent/embedlog-log", "replication",
                        "status"], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert r.returncode == 1  # the same exit codes and one-line errors as the console script
    assert r.stderr.count("\n") == 1
    assert "no embedlog log" in r.stderr


def test_serve_replicate_with_metrics(tmp_path: Path, secret_file: Path,
                                      procs: list[subprocess.Popen[str]]) -> None:
    pytest.importorskip("prometheus_client")
    a = tmp_path / "a"
    with embedlog.open(a) as log:
        log.create_topic("orders")
        with log.producer() as p:
            p.send("orders", b"x")
    leader = start(procs, "--path", a, "serve", "--replicate", "127.0.0.1:0", "--secret-file", secret_file,
                   "--metrics", "127.0.0.1:0")
    read_line(leader, r"replicating .* as leader at 127\.0\.0\.1:\d+ \(epoch 0\)")
    url = read_line(leader, r"serving metrics of .* at (http://127\.0\.0\.1:\d+/metrics)")[1]
    body = urllib.request.urlopen(url, timeout=TIMEOUT_S).read().decode()
    assert 'kafka_topic_partition_current_offset{partition="0",topic="orders"} 1.0' in body
    assert json.loads(cli("--path", a, "replication", "status", "--json").stdout)["replicating"] is True
    stop(leader)
    assert json.loads(cli("--path", a, "replication", "status", "--json").stdout)["replicating"] is False
