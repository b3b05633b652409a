"""What a Kafka bridge reports while its cluster has not answered yet, and how it keeps
librdkafka's own log off the terminal.

A mirror whose link is down from the start still shows every local partition it will
forward (``up``: local end, progress recorded in the log, lag), librdkafka's reason as
soon as librdkafka gives it, and the same through ``log.metrics()``, the Prometheus
series and ``embedlog bridge status``.  ``embedlog bridge up`` against a dead port exits
1 with one line carrying librdkafka's reason.  Dead ports are 127.0.0.1 ports nothing
listens on; the mock cluster is librdkafka's, in this process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from itertools import count
from pathlib import Path
from typing import Any

import pytest

ck = pytest.importorskip("confluent_kafka")

import embedlog  # noqa: E402
from embedlog.bridge import Mirror, MirrorStatus, PartitionStatus, forget_mirror  # noqa: E402
from embedlog.errors import BridgeError, GroupError, LinkDownError  # noqa: E402
from embedlog.storage import mirrors  # noqa: E402
from procs import bridge_proc, harness, mock_kafka  # noqa: E402  # tests/procs (tests/ is on sys.path)

_names = count()
#: longer than any wait below: a reason that shows up proves it came from librdkafka's
#: error_cb, not from the bridge giving up on a metadata request
SLOW_REQUESTS_MS = 120_000


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return f"{request.node.originalname.removeprefix('test_')[:30]}-{next(_names)}"


def produce(log: embedlog.Log, topic: str, n: int, first: int = 0) -> None:
    with log.producer() as p:
        for i in range(first, first + n):
            p.send(topic, b"v%d" % i, key=b"k%d" % i)
        p.flush()


def refused(text: str | None) -> bool:
    return text is not None and "Connection refused" in text


# -- the API and the metrics --------------------------------------------------------------------
def test_up_with_the_link_down_from_the_start_shows_what_waits(tmp_path: Path, name: str) -> None:
    log = embedlog.open(tmp_path / "log", maintenance_interval_ms=None)
    topic = f"{name}-t"
    registry = harness.prometheus_registry(log)
    try:
        log.create_topic(topic, partitions=3)
        produce(log, topic, 30)
        with Mirror(log, mock_kafka.client(mock_kafka.dead_address()), [topic], name=name, topic_map={topic: "remote"},
                    request_timeout_ms=SLOW_REQUESTS_MS) as m:
            harness.wait_until(lambda: refused(m.status().last_error), "librdkafka's reason", 30)
            st = m.status()
            ends = {p.partition: p.end_offset for p in log.describe_topic(topic).partitions}
            assert (st.running, st.link_up, st.error, st.lag) == (True, False, None, 30), st
            assert st.partitions == tuple(PartitionStatus(topic, q, "remote", ends[q], 0) for q in (0, 1, 2))
            with pytest.raises(LinkDownError, match="Connection refused"):
                m.wait_for_link(0.1)

            produce(log, topic, 5, first=30)  # the application keeps writing: the lag grows
            assert m.status().lag == 35
            rows = [e for e in log.metrics().mirrors if e.mirror == name]
            assert sorted((e.direction, e.partition, e.offset, e.lag) for e in rows) == sorted(
                ("up", q, 0, end) for q, end in {p.partition: p.end_offset
                                                 for p in log.describe_topic(topic).partitions}.items())
            harness.wait_until(lambda: any(refused(ln.last_error) for ln in log.metrics().links if ln.mirror == name),
                               "the reason in the bridge's status file", 30)
            links = [(ln.link_up, ln.running) for ln in log.metrics().links if ln.mirror == name]
            assert links == [(False, True)]
            if registry is not None:
                assert registry.get_sample_value("embedlog_bridge_link_up", {"mirror": name, "direction": "up"}) == 0
                lag = {q: registry.get_sample_value("embedlog_bridge_lag", {
                    "mirror": name, "direction": "up", "topic": topic, "partition": str(q)}) for q in (0, 1, 2)}
                assert lag == {p.partition: p.end_offset for p in log.describe_topic(topic).partitions}
    finally:
        log.close()


def test_what_waited_for_the_link_is_forwarded_once_when_it_comes_up(tmp_path: Path, bootstrap: str,
                                                                     name: str) -> None:
    """The progress recorded while the link was down is where the mirror starts, also for
    ``start="latest"`` (latest as of the mirror's start: what was written while Kafka was
    unreachable is forwarded)."""
    log = embedlog.open(tmp_path / "log", maintenance_interval_ms=None)
    early, late = f"{name}-early", f"{name}-late"
    try:
        for topic in (early, late):
            log.create_topic(topic, partitions=2)
            produce(log, topic, 10)
        for topic, start in ((early, "earliest"), (late, "latest")):
            with Mirror(log, mock_kafka.client(mock_kafka.dead_address()), [topic], name=f"{name}-{start}", start=start,
                        request_timeout_ms=SLOW_REQUESTS_MS) as m:
                harness.wait_until(lambda m=m: refused(m.status().last_error), "librdkafka's reason", 30)
                produce(log, topic, 4, first=10)  # while the link is down
                assert m.status().lag == (14 if start == "earliest" else 4)
        for topic, start in ((early, "earliest"), (late, "latest")):
            with Mirror(log, mock_kafka.client(bootstrap), [topic], name=f"{name}-{start}", start=start) as m:
                bridge_proc.caught_up(m, 30)
                st = m.status()
                assert (st.link_up, st.lag, st.records_lost, st.last_error) == (True, 0, 0, None), st
            values = sorted(r.value for rs in mock_kafka.read_topic(bootstrap, topic).values() for r in rs)
            expected = range(14) if start == "earliest" else range(10, 14)
            assert values == sorted(b"v%d" % i for i in expected), (start, values)
            metas = [json.loads(o.metadata) for o in log.describe_group(f"{name}-{start}").offsets]
            assert metas, f"no progress of {topic}"
            assert not any(meta.get("pending") for meta in metas), metas  # replaced by a checkpoint
    finally:
        log.close()


def test_down_with_the_link_down_from_the_start_shows_stored_progress(tmp_path: Path, bootstrap: str,
                                                                      name: str) -> None:
    log = embedlog.open(tmp_path / "log", maintenance_interval_ms=None)
    remote = f"{name}-r"
    try:
        p = ck.Producer(mock_kafka.client(bootstrap))
        for i in range(8):
            p.produce(remote, b"v%d" % i, partition=i % 4)  # (the mock cluster makes 4 partitions)
        assert p.flush(30) == 0
        with Mirror(log, mock_kafka.client(bootstrap), [remote], direction="down", name=name) as m:
            bridge_proc.caught_up(m, 30)
            before = m.status().partitions
        assert [(r.partition, r.mirrored) for r in before] == [(0, 2), (1, 2), (2, 2), (3, 2)]
        with Mirror(log, mock_kafka.client(mock_kafka.dead_address()), [remote], direction="down", name=name,
                    request_timeout_ms=SLOW_REQUESTS_MS) as m:
            harness.wait_until(lambda: refused(m.status().last_error), "librdkafka's reason", 30)
            st = m.status()
            assert (st.running, st.link_up, st.error, st.partitions) == (True, False, None, before), st
            harness.wait_until(lambda: any(refused(ln.last_error) for ln in log.metrics().links if ln.mirror == name),
                               "the reason in the bridge's status file", 30)
            assert [ln.link_up for ln in log.metrics().links if ln.mirror == name] == [False]
    finally:
        log.close()


# -- librdkafka's log ---------------------------------------------------------------------------
def test_ctrl_c_inside_run_leaves_stop_waiting_for_the_mirror_thread(tmp_path: Path, bootstrap: str,
                                                                     name: str) -> None:
    """`embedlog bridge up` waits in ``Mirror.run`` and stops on Ctrl-C/SIGTERM.  On Python
    3.11 a ``Thread.join`` that KeyboardInterrupt cuts marks the thread stopped while it
    runs, so ``stop()`` returned at once and the log closed under the running mirror,
    whose next poll left "this consumer is closed" as the mirror's last error."""
    path = tmp_path / "log"
    log = embedlog.open(path, maintenance_interval_ms=None)
    try:
        log.create_topic(name, partitions=2)
        produce(log, name, 10)
        m = Mirror(log, mock_kafka.client(bootstrap), [name], name=name)
        m.start()
        bridge_proc.caught_up(m, 30)
        main = threading.main_thread().ident
        assert main is not None
        timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            m.run(timeout=30)
        timer.join()
        m.stop()
        assert m._finished.is_set()  # (its work had ended when stop returned)
    finally:
        log.close()
    time.sleep(0.5)  # (what a mirror still running would do now)
    (link,) = [lk for lk in mirrors.mirror_links(str(path)) if lk.mirror == name]
    assert (link.running, link.last_error) == (False, None), link


def test_librdkafka_logs_go_to_python_logging_not_stderr(tmp_path: Path, name: str, capfd: pytest.CaptureFixture[str],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    log = embedlog.open(tmp_path / "log", maintenance_interval_ms=None)
    topic = f"{name}-t"
    caplog.set_level(logging.DEBUG, logger="embedlog.bridge.kafka")
    try:
        log.create_topic(topic, partitions=1)
        dead = mock_kafka.dead_address()
        with Mirror(log, {"bootstrap.servers": dead}, [topic], name=name,  # librdkafka's default log level
                    request_timeout_ms=SLOW_REQUESTS_MS) as m:
            harness.wait_until(lambda: refused(m.status().last_error), "librdkafka's reason", 30)
            harness.wait_until(lambda: any(refused(r.getMessage()) for r in caplog.records
                                           if r.name == "embedlog.bridge.kafka"), "librdkafka's log line", 30)
    finally:
        log.close()
    err = capfd.readouterr().err
    assert not [ln for ln in err.splitlines() if ln.startswith("%")], err


def test_a_users_logger_and_log_level_win() -> None:
    from embedlog.bridge._kafka import KAFKA_LOGGER, LinkState, client_config  # noqa: PLC0415

    on_error = LinkState().on_error
    for kind in ("producer", "consumer", "admin"):
        assert client_config({"bootstrap.servers": "x:1"}, kind, "m", on_error)["logger"] is KAFKA_LOGGER
        mine = logging.getLogger("mine")
        conf = client_config({"bootstrap.servers": "x:1", "logger": mine, "log_level": 7}, kind, "m", on_error)
        assert (conf["logger"], conf["log_level"]) == (mine, 7)


def test_the_reason_for_a_link_down_keeps_librdkafkas_words() -> None:
    from embedlog.bridge._kafka import LinkState  # noqa: PLC0415

    reports: list[str | None] = []
    link = LinkState(on_change=lambda: reports.append(link.last_error))
    refused_err = ck.KafkaError(ck.KafkaError._TRANSPORT,
                                "h:1/bootstrap: Connect to ipv4#h:1 failed: Connection refused")
    link.on_error(refused_err)
    assert reports == [refused_err.str()]  # the first reason is reported at once (the status file)
    link.on_error(ck.KafkaError(ck.KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert link.last_error == refused_err.str()  # the summary does not hide why
    link.down("cannot reach Kafka: Failed to get metadata: Local: Broker transport failure")
    assert refused(link.last_error)
    assert "Failed to get metadata" in (link.last_error or "")
    link.ok()
    link.down("Kafka acknowledged nothing for 10 s; still retrying")
    assert link.last_error == "Kafka acknowledged nothing for 10 s; still retrying"  # an old reason is not reused


# -- the CLI ------------------------------------------------------------------------------------
def cli(path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "embedlog.cli", "--path", str(path), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL, check=False)


def test_cli_bridge_up_to_a_dead_port_is_one_line_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t", partitions=2)
        produce(log, "t", 6)
    address = mock_kafka.dead_address()
    r = cli(path, "bridge", "up", "--bootstrap-servers", address, "--topic", "t", "--connect-timeout", "3")
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"embedlog: error: cannot reach Kafka at {address} within 3 s: "), lines
    assert refused(lines[0]), lines
    assert r.stdout == ""

    r = cli(path, "bridge", "status", "--json")  # what the failed run left: what waits, and why
    assert r.returncode == 0, r
    [row] = json.loads(r.stdout)
    assert (row["name"], row["direction"], row["running"], row["link_up"], row["lag"]) == (
        "embedlog-up", "up", False, False, 6), row
    assert refused(row["last_error"]), row
    assert sorted((p["partition"], p["mirrored"], p["lag"]) for p in row["partitions"]) == [(0, 0, 3), (1, 0, 3)]
    # nothing reached Kafka: the group that holds the mirror's starting point may go
    r = cli(path, "groups", "delete", "embedlog-up")
    assert r.returncode == 0, r
    assert json.loads(cli(path, "bridge", "status", "--json").stdout)[0]["partitions"] == []
    r = cli(path, "bridge", "forget", "embedlog-up")  # (status still lists it: its link state)
    assert r.returncode == 0, r
    assert json.loads(cli(path, "bridge", "status", "--json").stdout) == []


def test_cli_bridge_status_while_the_link_is_down_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t", partitions=1)
        produce(log, "t", 4)
    bridge = subprocess.Popen([sys.executable, "-m", "embedlog.cli", "--path", str(path), "bridge", "up",
                               "--bootstrap-servers", mock_kafka.dead_address(), "--topic", "t", "--name", "site",
                               "--connect-timeout", "600"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def row() -> dict[str, Any] | None:
            r = cli(path, "bridge", "status", "--json")
            rows = [x for x in json.loads(r.stdout) if x["name"] == "site"] if r.returncode == 0 else []
            return rows[0] if rows and refused(rows[0]["last_error"]) else None

        harness.wait_until(lambda: row() is not None, "bridge status to show the link down with its reason", 60)
        got = row()
        assert got is not None
        assert (got["running"], got["link_up"], got["lag"]) == (True, False, 4), got
        assert [(p["topic"], p["source_end"], p["mirrored"]) for p in got["partitions"]] == [("t", 4, 0)]
        r = cli(path, "bridge", "status")
        assert "running, link DOWN (" in r.stdout, r.stdout
        assert "lag 4" in r.stdout, r.stdout
    finally:
        bridge.terminate()
        _, err = bridge.communicate(timeout=60)
    assert not [ln for ln in err.splitlines() if ln.startswith("%")], err  # no librdkafka log lines


def test_cli_bridge_status_shows_an_up_and_a_down_mirror_of_one_name_apart(tmp_path: Path, bootstrap: str,
                                                                            name: str) -> None:
    """One row per mirror and direction, each with its own partitions (the two were merged
    into one row labelled with one direction), and ``--config`` takes several pairs."""
    path = tmp_path / "log"
    remote = f"{name}-r"
    p = ck.Producer(mock_kafka.client(bootstrap))
    for i in range(4):
        p.produce(remote, b"r%d" % i, partition=0)
    assert p.flush(30) == 0
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        log.create_topic("local-out")
        produce(log, "local-out", 5)
        with Mirror(log, mock_kafka.client(bootstrap), ["local-out"], name=name) as m:
            bridge_proc.caught_up(m, 30)
        with Mirror(log, mock_kafka.client(bootstrap), [remote], direction="down", name=name) as m:
            bridge_proc.caught_up(m, 30)
    rows = json.loads(cli(path, "bridge", "status", "--json").stdout)
    mine = {row["direction"]: row for row in rows if row["name"] == name}
    assert set(mine) == {"up", "down"}
    assert {p["topic"] for p in mine["up"]["partitions"]} == {"local-out"}
    assert {p["topic"] for p in mine["down"]["partitions"]} == {remote}
    text = cli(path, "bridge", "status").stdout
    assert f"mirror {name} (up)" in text
    assert f"mirror {name} (down)" in text
    r = cli(path, "bridge", "up", "--bootstrap-servers", mock_kafka.dead_address(), "--topic", "local-out",
            "--name", name, "--connect-timeout", "0.5", "--config", "linger.ms=1", "batch.num.messages=100")
    assert "unrecognized arguments" not in r.stderr


def test_cli_bridge_forget_retires_a_mirror_and_its_next_run_starts_afresh(tmp_path: Path, bootstrap: str,
                                                                           name: str) -> None:
    """A mirror that sent records holds its group (delete is refused, naming ``bridge
    forget``); ``bridge forget`` deletes its progress and link status (refused while it
    runs, and for a name with no progress); a new run of the name sends everything again."""
    path = tmp_path / "log"
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        log.create_topic("out")
        produce(log, "out", 5)
        with Mirror(log, mock_kafka.client(bootstrap), ["out"], name=name) as m:
            bridge_proc.caught_up(m, 30)
            with pytest.raises(BridgeError, match="runs on this log"):
                forget_mirror(log, name)
        with pytest.raises(GroupError, match=f"embedlog bridge forget {name}"):
            log.delete_group(name)
    r = cli(path, "bridge", "forget", "no-such-mirror")
    assert (r.returncode, r.stderr.count("\n")) == (1, 1), r
    assert "no mirror named 'no-such-mirror'" in r.stderr
    r = cli(path, "bridge", "forget", name)
    assert r.returncode == 0, r
    assert "the progress of 1 partition(s) deleted" in r.stdout
    assert [row for row in json.loads(cli(path, "bridge", "status", "--json").stdout) if row["name"] == name] == []
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        assert name not in log.groups()
        with Mirror(log, mock_kafka.client(bootstrap), ["out"], name=name) as m:
            bridge_proc.caught_up(m, 30)
            assert m.status().records_mirrored == 5  # (forgotten: sent again)


def test_cli_bridge_refuses_a_topic_mapped_twice_in_one_line(tmp_path: Path) -> None:
    r = cli(tmp_path / "log", "bridge", "up", "--bootstrap-servers", mock_kafka.dead_address(), "--topic", "t",
            "--map", "t=u", "--map", "t=v")
    assert r.returncode == 1, r
    assert r.stderr.splitlines() == ["embedlog: error: --map gives t more than one remote name; map each topic once"]


def test_cli_bridge_refuses_a_map_of_a_topic_not_mirrored_in_one_line(tmp_path: Path) -> None:
    """A typo in --map mirrored the topic under its own name, silently."""
    log = embedlog.open(tmp_path / "log")
    log.create_topic("t")
    log.close()
    r = cli(tmp_path / "log", "bridge", "up", "--bootstrap-servers", mock_kafka.dead_address(), "--topic", "t",
            "--map", "t-typo=renamed")
    assert r.returncode == 1, r
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert "topic_map renames 't-typo', not among the topics mirrored ('t')" in r.stderr, r.stderr


def test_mirror_status_reads_as_attributes_and_as_a_mapping() -> None:
    st = MirrorStatus("m", "up", True, False, (PartitionStatus("t", 0, "t", 5, 2),), last_error="refused")
    assert (st["link_up"], st["lag"], st["last_error"]) == (st.link_up, st.lag, st.last_error) == (False, 3, "refused")
    assert list(st["partitions"]) == [{"topic": "t", "partition": 0, "target_topic": "t", "source_end": 5,
                                       "mirrored": 2, "lag": 3}]
    with pytest.raises(KeyError):
        st["nope"]
    # the rest of a read-only mapping, as the dicts Leader.status() and `bridge status --json` give
    assert "lag" in st
    assert "nope" not in st
    assert st.get("nope") is None
    assert dict(st) == st.to_dict()
    assert list(st) == list(st.to_dict())
    assert len(st) == len(st.to_dict())
    assert st == MirrorStatus("m", "up", True, False, (PartitionStatus("t", 0, "t", 5, 2),), last_error="refused")
    assert hash(st) == hash(MirrorStatus("m", "up", True, False, (PartitionStatus("t", 0, "t", 5, 2),),
                                         last_error="refused"))


def test_status_of_an_up_mirror_while_one_of_its_topics_is_deleted(tmp_path: Path, bootstrap: str,
                                                                    name: str) -> None:
    """``status()`` (and ``wait_caught_up``, which calls it) raised ``UnknownTopicError``
    while a local topic the mirror forwards was deleted, though the mirror ran on (and
    forwards the topic again once created anew).  Now the deleted topic's partitions are
    left out, as before the link first came up, and nothing of it is waited for."""
    kept, gone = f"{name}-kept", f"{name}-gone"
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic(kept, partitions=2)
        log.create_topic(gone, partitions=2)
        produce(log, kept, 10)
        produce(log, gone, 10)
        with Mirror(log, mock_kafka.client(bootstrap), [kept, gone], name=name) as m:
            bridge_proc.caught_up(m, 30)
            produce(log, gone, 10, first=10)
            log.delete_topic(gone)
            produce(log, kept, 10, first=10)
            bridge_proc.caught_up(m, 30)
            st = m.status()
            assert (st.running, st.error, st.lag) == (True, None, 0)
            assert {p.topic for p in st.partitions} == {kept}
            log.create_topic(gone, partitions=2)
            produce(log, gone, 5, first=100)
            harness.wait_until(lambda: {p.topic for p in m.status().partitions} == {kept, gone}, "the topic again", 30)
            bridge_proc.caught_up(m, 30)
    assert mock_kafka.remote_total(bootstrap, kept) == 20
