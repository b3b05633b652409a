"""The Kafka bridge (``embedlog.bridge.Mirror``) against librdkafka's mock cluster: what
it copies, what it reports, and its typed errors.  Each test takes a few seconds; the
kill -9 and link-outage proofs are in ``test_bridge_faults.py``.

The mock cluster lives in this process (one per module; each test uses its own topic
names); it auto-creates topics with 4 partitions and does not answer CreateTopics.
"""

from __future__ import annotations

import contextlib
import json
import time
from itertools import count
from pathlib import Path
from typing import Any

import pytest

ck = pytest.importorskip("confluent_kafka")

import embedlog  # noqa: E402
from embedlog import TopicPartition  # noqa: E402
from embedlog.bridge import SOURCE_HEADER, Mirror, MirrorStatus, PartitionStatus  # noqa: E402
from embedlog.errors import (  # noqa: E402
    AuthenticationError,
    BridgeError,
    ConfigError,
    GroupError,
    LinkDownError,
    NotLeaderError,
    TransactionAbortedError,
    UnknownTopicError,
)
from embedlog.storage import mirrors  # noqa: E402
from procs import bridge_proc, harness, mock_kafka  # noqa: E402  # tests/procs (tests/ is on sys.path)

HOUR = 3_600_000
_names = count()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A topic/mirror name of this test's own on the shared cluster."""
    return f"{request.node.originalname.removeprefix('test_')[:30]}-{next(_names)}"


def conf(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return mock_kafka.client(bootstrap, **extra)


EDGE_RECORDS: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]] = [
    (b"k1", b"v1", [("h", b"1")], 1_600_000_000_000),
    (None, b"no key", [], 1_600_000_000_001),
    (b"", b"", [("empty", b"")], 1_600_000_000_002),
    (b"k2", None, [("dup", b"a"), ("null", None), ("dup", b"b")], 1_600_000_000_003),
    (b"k3", b"x" * 1000, [("h", b"2")], 1_600_000_000_004),
]


def produce(log: embedlog.Log, topic: str, n: int, ts: int | None = None, first: int = 0) -> None:
    """``n`` keyed records (one flush)."""
    with log.producer(linger_ms=60_000) as p:
        for i in range(first, first + n):
            p.send(topic, b"v%d" % i, key=b"k%d" % (i % 13), headers=[("i", b"%d" % i)], timestamp_ms=ts)
        p.flush()


def local_records(log: embedlog.Log, topic: str) -> dict[int, list[embedlog.Message]]:
    return harness.read_all(log, topic)


def remote_topics(bootstrap: str) -> set[str]:
    c = ck.Consumer(conf(bootstrap, **{"group.id": "lister"}))
    try:
        return set(c.list_topics(timeout=30).topics)
    finally:
        c.close()


# -- what is copied -----------------------------------------------------------------------------
def test_up_and_down_keep_every_field_and_rename_by_topic_map(tmp_path: Path, bootstrap: str, name: str) -> None:
    """Up: keys (none, empty), values (null, empty), headers (repeated, null), timestamps
    and partition numbers reach Kafka unchanged, under the ``topic_map`` name only; down
    brings them back the same into another log, again renamed."""
    src = embedlog.open(tmp_path / "src", maintenance_interval_ms=None)
    dst = embedlog.open(tmp_path / "dst", maintenance_interval_ms=None)
    local, remote, back = f"{name}-local", f"{name}-remote", f"{name}-back"
    try:
        src.create_topic(local, partitions=4)
        with src.producer() as p:
            for i, (key, value, headers, ts) in enumerate(EDGE_RECORDS * 4):
                p.send(local, value, key=key, headers=headers, timestamp_ms=ts, partition=i % 4)
        with Mirror(src, conf(bootstrap), [local], direction="up", name=name, topic_map={local: remote}) as m:
            bridge_proc.caught_up(m, 30)
            st = m.status()
            assert {(p.topic, p.target_topic) for p in st.partitions} == {(local, remote)}
        assert remote in remote_topics(bootstrap)
        assert local not in remote_topics(bootstrap)
        sent = local_records(src, local)
        got = mock_kafka.read_topic(bootstrap, remote)
        assert sorted(got) == [0, 1, 2, 3]
        for q, msgs in sent.items():
            assert [(r.key, r.value, r.headers, r.timestamp_type, r.timestamp) for r in got[q]] == [
                (m.key, m.value, [*m.headers, (SOURCE_HEADER, f"{name}:{q}:{m.offset}".encode())],
                 ck.TIMESTAMP_CREATE_TIME, m.timestamp) for m in msgs]

        with Mirror(dst, conf(bootstrap), [remote], direction="down", name=name, topic_map={remote: back}) as m:
            bridge_proc.caught_up(m, 30)
            st = m.status()
            assert {(p.topic, p.target_topic) for p in st.partitions} == {(remote, back)}
        assert remote not in dst.topics()
        copied = local_records(dst, back)
        for r, msgs in got.items():
            assert [(m.key, m.value, list(m.headers), m.timestamp) for m in copied[r]] == [
                (x.key, x.value, x.headers, x.timestamp) for x in msgs]
    finally:
        src.close()
        dst.close()


def test_up_resumes_on_a_log_that_holds_other_records_at_offsets_it_forwarded(tmp_path: Path, bootstrap: str,
                                                                              name: str) -> None:
    """The log a mirror resumes on holds, at offsets the mirror had already forwarded,
    records of another history: a replication failover took back the old leader's
    unreplicated suffix and the new leader wrote its own records there (or a directory was
    restored from a copy).  The resume scan found those offsets in Kafka and skipped the
    local records as sent: they never reached Kafka.  Now a local record is skipped only
    while it is the one Kafka holds; the old history's records stay in Kafka."""
    import shutil  # noqa: PLC0415

    topic, remote = f"{name}-l", f"{name}-r"
    a, b = tmp_path / "a", tmp_path / "b"
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        log.create_topic(topic, partitions=4)
        produce(log, topic, 20)
        with Mirror(log, conf(bootstrap), [topic], direction="up", name=name, topic_map={topic: remote}) as m:
            bridge_proc.caught_up(m, 30)
    shutil.copytree(a, b)  # the other node's log: the same history up to here, and the checkpoint
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        with log.producer() as p:
            for i in range(20, 40):
                p.send(topic, b"a%d" % i, key=b"k%d" % (i % 13))
            p.flush()
        with Mirror(log, conf(bootstrap), [topic], direction="up", name=name, topic_map={topic: remote}) as m:
            bridge_proc.caught_up(m, 30)
    with embedlog.open(b, maintenance_interval_ms=None) as log:
        with log.producer() as p:  # the same keys, so the same partitions and offsets, other values
            for i in range(20, 40):
                p.send(topic, b"b%d" % i, key=b"k%d" % (i % 13))
            p.flush()
        with Mirror(log, conf(bootstrap), [topic], direction="up", name=name, topic_map={topic: remote}) as m:
            bridge_proc.caught_up(m, 30)
            assert m.status().lag == 0
        local = local_records(log, topic)
    got = mock_kafka.read_topic(bootstrap, remote)
    values = sorted(r.value for msgs in got.values() for r in msgs if r.value is not None)
    expected = sorted([m.value for msgs in local.values() for m in msgs] + [b"a%d" % i for i in range(20, 40)])
    assert values == expected  # every record of b's log once, and a's taken-back ones (Kafka keeps them)


# -- what is reported ---------------------------------------------------------------------------
def test_status_lag_group_and_prometheus(log: embedlog.Log, bootstrap: str, name: str) -> None:
    """``status()`` rows, the consumer group named after the mirror, ``log.metrics()``
    and the Prometheus series agree on the lag, before, during and after a run."""
    pytest.importorskip("prometheus_client")
    topic = f"{name}-t"
    registry = harness.prometheus_registry(log)

    def bridge_metric(metric: str, partition: int) -> float | None:
        return registry.get_sample_value(metric, {"mirror": name, "direction": "up", "topic": topic,
                                                  "partition": str(partition)})

    log.create_topic(topic, partitions=2)
    produce(log, topic, 100)
    mirror = Mirror(log, conf(bootstrap), [topic], name=name)
    st = mirror.status()  # not started, no progress: every local partition waits in full
    ends = {p.partition: p.end_offset for p in log.describe_topic(topic).partitions}
    assert (st.name, st.direction, st.running, st.link_up, st.lag) == (name, "up", False, False, 100)
    assert st.partitions == tuple(PartitionStatus(topic, p, topic, ends[p], 0) for p in (0, 1))
    with mirror:
        bridge_proc.caught_up(mirror, 30)
        st = mirror.status()
        ends = {p.partition: p.end_offset for p in log.describe_topic(topic).partitions}
        assert (st.running, st.link_up, st.error) == (True, True, None)
        assert (st.records_mirrored, st.records_lost, st.lag) == (100, 0, 0)
        assert st.partitions == tuple(PartitionStatus(topic, p, topic, ends[p], ends[p]) for p in (0, 1))
        assert registry.get_sample_value("embedlog_bridge_link_up", {"mirror": name, "direction": "up"}) == 1
    produce(log, topic, 30, first=100)  # while no bridge runs
    ends = {p.partition: p.end_offset for p in log.describe_topic(topic).partitions}

    st = Mirror(log, conf(bootstrap), [topic], name=name).status()  # not started: read from the log
    assert (st.running, st.lag) == (False, 30)
    lag = {p.partition: p.lag for p in st.partitions}
    assert {p.partition: p.source_end for p in st.partitions} == ends
    assert {tp.partition: v for tp, v in log.describe_group(name).lag().items()} == lag
    assert {e.partition: e.lag for e in log.metrics().mirrors if e.mirror == name} == lag
    assert {p: bridge_metric("embedlog_bridge_lag", p) for p in (0, 1)} == lag
    assert registry.get_sample_value("embedlog_bridge_link_up", {"mirror": name, "direction": "up"}) == 0
    row = json.loads(json.dumps(st.to_dict()))
    assert (row["lag"], sum(p["lag"] for p in row["partitions"])) == (30, 30)
    assert isinstance(st, MirrorStatus)

    with Mirror(log, conf(bootstrap), [topic], name=name) as mirror:
        mirror.wait_caught_up(30)
        assert mirror.status().records_mirrored == 30  # the new run sent only what was missing
    assert {p: bridge_metric("embedlog_bridge_lag", p) for p in (0, 1)} == {0: 0, 1: 0}
    assert {p: bridge_metric("embedlog_bridge_mirrored_offset", p) for p in (0, 1)} == ends
    assert sum(len(v) for v in mock_kafka.read_topic(bootstrap, topic).values()) == 130


def test_an_up_mirror_s_group_cannot_be_deleted_nor_reset(log: embedlog.Log, bootstrap: str, name: str) -> None:
    """The group named after an up mirror holds what it has sent to Kafka: deleting,
    resetting or committing offsets to it by name (``embedlog groups delete`` /
    ``reset-offsets``, an admin client's alter offsets), or a consumer joining it and
    committing, made the next run send every record a second time.  Each is refused,
    and the next run sends nothing."""
    topic = f"{name}-t"
    log.create_topic(topic)
    produce(log, topic, 20)
    with Mirror(log, conf(bootstrap), [topic], name=name) as mirror:
        mirror.wait_caught_up(30)
    with pytest.raises(GroupError, match="progress of the Kafka bridge"):
        log.delete_group(name)
    with pytest.raises(GroupError, match="progress of the Kafka bridge"):
        log.reset_group_offsets(name, topic, "earliest")
    with pytest.raises(GroupError, match="progress of the Kafka bridge"):
        log.commit_offsets(name, {TopicPartition(topic, 0): 0})
    with pytest.raises(TransactionAbortedError), log.transaction() as tx:
        tx.commit_offsets(name, {TopicPartition(topic, 0): (0, "mine")})
    with pytest.raises(GroupError, match="cannot join"):
        log.consumer([topic], group=name)  # (a member would commit over the mirror's progress)
    with Mirror(log, conf(bootstrap), [topic], name=name) as mirror:
        mirror.wait_caught_up(30)
        assert mirror.status().records_mirrored == 0
    assert sum(len(v) for v in mock_kafka.read_topic(bootstrap, topic).values()) == 20


def test_retention_before_forwarding_is_counted_as_lost(log: embedlog.Log, bootstrap: str, name: str) -> None:
    """Records that retention deletes while the link is down, before the bridge forwarded
    them, are counted in ``status().records_lost``, the group's metadata and the metrics,
    and stay counted across restarts; the rest arrives once."""
    topic = f"{name}-t"
    old = time.time_ns() // 1_000_000 - 2 * HOUR
    registry = harness.prometheus_registry(log)
    log.create_topic(topic, partitions=1, config={"retention.ms": HOUR})
    produce(log, topic, 100, ts=old)
    with Mirror(log, conf(bootstrap), [topic], name=name) as m:
        bridge_proc.caught_up(m, 30)
    with Mirror(log, conf(mock_kafka.dead_address(), **{"socket.connection.setup.timeout.ms": 1000}), [topic],
                name=name, request_timeout_ms=1000) as m:  # the link is down
        with pytest.raises(LinkDownError):
            m.wait_for_link(1)
        for i in range(3):
            produce(log, topic, 100, ts=old, first=100 + 100 * i)
        produce(log, topic, 50, first=400)
        log.maintain()
        assert log.describe_topic(topic).partitions[0].start_offset == 400, "retention should delete 400"
        assert not m.status().link_up
    for _ in range(2):  # counted once, and kept across restarts
        with Mirror(log, conf(bootstrap), [topic], name=name) as m:
            bridge_proc.caught_up(m, 30)
            assert m.status().records_lost == 300
        meta = json.loads(log.describe_group(name).offsets[0].metadata)
        assert meta["lost"] == 300
        assert [e.lost for e in log.metrics().mirrors if e.mirror == name] == [300]
        if registry is not None:
            assert registry.get_sample_value("embedlog_bridge_records_lost_total", {
                "mirror": name, "direction": "up", "topic": topic, "partition": "0"}) == 300
    values = [r.value for rs in mock_kafka.read_topic(bootstrap, topic).values() for r in rs]
    assert sorted(values) == sorted([b"v%d" % i for i in range(100)] + [b"v%d" % i for i in range(400, 450)])


# -- typed errors, never a silent stall ---------------------------------------------------------
def test_down_from_a_missing_topic_raises_unknown_topic(log: embedlog.Log, bootstrap: str, name: str) -> None:
    m = Mirror(log, conf(bootstrap), [f"{name}-absent"], direction="down", name=name)
    with pytest.raises(UnknownTopicError, match="absent"):
        m.run(timeout=30)
    st = m.status()
    assert not st.running
    assert "absent" in (st.error or "")
    m.close()


@pytest.mark.parametrize("direction", ["up", "down"])
def test_unreachable_cluster_shows_link_down(log: embedlog.Log, name: str, direction: str) -> None:
    """A cluster that cannot be reached at start: ``link_up`` is False with librdkafka's
    reason, ``wait_for_link`` raises ``LinkDownError``; the mirror keeps retrying."""
    topic = f"{name}-t"
    log.create_topic(topic, partitions=1)
    with Mirror(log, conf(mock_kafka.dead_address(), **{"socket.connection.setup.timeout.ms": 1000}), [topic],
                direction=direction, name=name, request_timeout_ms=1000) as m:
        t0 = time.monotonic()
        with pytest.raises(LinkDownError, match="cannot reach Kafka"):
            m.wait_for_link(1)
        assert time.monotonic() - t0 < 10
        harness.wait_until(lambda: m.status().last_error is not None, "a reason for the link being down", 30)
        st = m.status()
        assert (st.link_up, st.running, st.error) == (False, True, None), st
    links = log.metrics().links
    assert [(ln.mirror, ln.link_up, ln.running) for ln in links] == [(name, False, False)]


def test_one_mirror_of_a_name_per_log(tmp_path: Path, log: embedlog.Log, children: harness.Children, bootstrap: str,
                                      name: str) -> None:
    """A second Mirror of the same name on the same log, in this process or another,
    is refused with ``BridgeError``; another name runs."""
    path = tmp_path / "log"
    topic = f"{name}-t"
    log.create_topic(topic, partitions=1)
    with Mirror(log, conf(bootstrap), [topic], name=name) as first:
        first.wait_for_link(30)
        with pytest.raises(BridgeError, match="already runs"):
            Mirror(log, conf(bootstrap), [topic], name=name).start()
        with Mirror(log, conf(bootstrap), [topic], name=f"{name}-other") as other:
            other.wait_for_link(30)
    other_process = children.start("bridge_proc.py", path, "--bootstrap", bootstrap, "--topic", topic,
                                   "--name", name, stdin=True)
    other_process.wait_for(lambda line: "mirrored" in line)
    with pytest.raises(BridgeError, match="already runs"):
        Mirror(log, conf(bootstrap), [topic], name=name).start()
    other_process.kill()
    with Mirror(log, conf(bootstrap), [topic], name=name) as again:  # a killed bridge holds no lock
        again.wait_for_link(30)


@pytest.mark.parametrize(("config", "error", "match"), [
    ({"no.such.property": "1"}, BridgeError, "no.such.property"),
    ({"enable.idempotence": False}, ConfigError, "enable.idempotence"),
    ({"enable.idempotence": "false"}, ConfigError, "enable.idempotence"),
    ({"acks": "1"}, ConfigError, "acks"),
    ({"group.id": "mine"}, ConfigError, "group.id"),
    ({"bootstrap.servers": ""}, ConfigError, "bootstrap.servers"),
])
def test_bad_config_is_a_typed_error(log: embedlog.Log, bootstrap: str, name: str, config: dict[str, Any],
                                     error: type[Exception], match: str) -> None:
    """A config that cannot work stops the mirror with a typed error naming the key (from
    ``run()``, ``wait_for_link`` and ``status().error``), never a silent retry loop."""
    topic = f"{name}-t"
    log.create_topic(topic, partitions=1)
    m = Mirror(log, {**conf(bootstrap), **config}, [topic], name=name)
    with pytest.raises(error, match=match):
        m.run(timeout=30)
    assert not m.status().running
    assert match in (m.status().error or "")
    with pytest.raises(error, match=match):
        m.wait_for_link(30)
    m.close()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"direction": "sideways"}, "direction"),
    ({"start": "middle"}, "start"),
    ({"name": ""}, "name"),
    ({"topics": []}, "topics"),
    ({"batch_size": 0}, "batch_size"),
    ({"stall_timeout_ms": -1}, "stall_timeout_ms"),
    ({"topic_map": {"t-typo": "renamed"}}, "topic_map renames 't-typo', not among the topics"),
    ({"topic_map": {"t": "u", "other": "v"}, "direction": "down"}, "topic_map renames 'other'"),
    ({"topics": None}, "topics must be a non-empty list"),
    ({"topic_map": True}, "topic_map must map topic names"),
    ({"topic_map": "x"}, "topic_map must map topic names"),
    ({"topic_map": {"t": 5}}, "topic_map must map topic names"),  # (it failed at run time, naming nothing)
    ({"name": "\udcff"}, "cannot name a mirror"),  # (start() and close() raised UnicodeEncodeError)
    ({"name": "m" * 503}, "cannot name a mirror"),
])
def test_bad_arguments_are_config_errors(log: embedlog.Log, bootstrap: str, kwargs: dict[str, Any], match: str) -> None:
    log.create_topic("t", partitions=1)
    args: dict[str, Any] = {"topics": ["t"], **kwargs}
    with pytest.raises(ConfigError, match=match):
        Mirror(log, conf(bootstrap), **args)


def test_a_long_mirror_name_runs(log: embedlog.Log, bootstrap: str) -> None:
    """A name of 126 to 502 UTF-8 bytes (a group's limit: its progress is the group of its
    name) was accepted, then start() raised OSError (its hex lock file name was too long)."""
    log.create_topic("t", partitions=1)
    for name in ("m" * 300, "ミラー" * 50):
        with Mirror(log, conf(bootstrap), ["t"], name=name) as m:
            m.wait_for_link(30)
        assert name in {link.mirror for link in mirrors.mirror_links(log.path)}
    with pytest.raises(ConfigError, match=r"log must be an open embedlog\.Log"):
        Mirror(None, conf(bootstrap), ["t"])


@pytest.mark.parametrize("config", [None, "bootstrap.servers=x", ["bootstrap.servers"], {1: "x"}])
def test_a_config_that_is_not_a_mapping_is_a_config_error(log: embedlog.Log, config: Any) -> None:
    log.create_topic("t", partitions=1)
    with pytest.raises(ConfigError, match="mapping of librdkafka property names"):
        Mirror(log, config, ["t"])


@pytest.mark.parametrize("direction", ["up", "down"])
def test_a_bridge_on_a_replica_is_refused_at_start(log: embedlog.Log, direction: str) -> None:
    """A replica's committed offsets (the bridge's progress) and records are its leader's:
    refused at once, saying where to run it (it failed once Kafka answered, talking of
    producing)."""
    from embedlog.storage import replica  # noqa: PLC0415

    log.create_topic("t", partitions=1)
    store = log._store
    store.write(lambda txn: replica.set_role(txn, store.dbs, "replica"))
    m = Mirror(log, conf("127.0.0.1:1"), ["t"], direction=direction, name=f"on-replica-{direction}")
    with pytest.raises(NotLeaderError, match="run a Kafka bridge on the leader"):
        m.start()
    m.close()


def test_up_from_a_missing_local_topic_raises_unknown_topic(log: embedlog.Log, bootstrap: str) -> None:
    with pytest.raises(UnknownTopicError, match="nope"):
        Mirror(log, conf(bootstrap), ["nope"], direction="up")


def test_a_record_kafka_s_client_refuses_stops_the_mirror_with_a_typed_error(log: embedlog.Log, bootstrap: str,
                                                                              name: str) -> None:
    """A local record over librdkafka's ``message.max.bytes`` (embedlog's default
    ``max.message.bytes`` is larger): ``produce()`` raises at once; the mirror stops with
    ``BridgeError`` saying what to raise, not a generic 'the bridge failed: KafkaException'."""
    topic = f"{name}-t"
    log.create_topic(topic)
    with log.producer() as p:
        p.send(topic, b"a" * 10)
        p.send(topic, b"x" * 1_040_000)
    mirror = Mirror(log, conf(bootstrap), [topic], name=name)
    with pytest.raises(BridgeError, match=r"max\.message\.bytes") as info:
        mirror.run(timeout=30)
    assert not isinstance(info.value, LinkDownError)
    st = mirror.status()
    assert st.error is not None
    assert not st.link_up, "a mirror stopped by an error still showed its link up"


# -- regressions: bugs found by these tests, fixed -----------------------------------------------
def test_down_catches_up_past_a_transaction_marker(log: embedlog.Log, bootstrap: str, name: str) -> None:
    remote = f"{name}-r"
    p = ck.Producer(conf(bootstrap, **{"enable.idempotence": True}))
    for i in range(8):
        p.produce(remote, b"v%d" % i, partition=i % 4)
    assert p.flush(30) == 0
    tx = ck.Producer(conf(bootstrap, **{"transactional.id": name}))
    tx.init_transactions(30)
    tx.begin_transaction()
    tx.produce(remote, b"in a transaction", partition=0)
    tx.commit_transaction(30)  # partition 0 now ends with the commit marker
    with Mirror(log, conf(bootstrap), [remote], direction="down", name=name) as m:
        with contextlib.suppress(LinkDownError):
            bridge_proc.caught_up(m, 3)
        assert sum(len(v) for v in local_records(log, remote).values()) == 9  # every record did arrive
        st = m.status()
        assert st.lag == 0, st


def test_wait_caught_up_right_after_start(log: embedlog.Log, bootstrap: str, name: str) -> None:
    topic = f"{name}-t"
    log.create_topic(topic, partitions=2)
    produce(log, topic, 10)
    with Mirror(log, conf(bootstrap), [topic], name=name) as m:
        m.wait_caught_up(30)  # the first thing an app would call (generous: a loaded CI machine)
        assert m.status().lag == 0


def test_creating_the_remote_topic_is_not_a_link_failure(log: embedlog.Log, bootstrap: str, name: str) -> None:
    topic = f"{name}-t"
    log.create_topic(topic, partitions=2)
    produce(log, topic, 10)
    with Mirror(log, conf(bootstrap), [topic], name=name) as m:
        bridge_proc.caught_up(m, 30)
        assert m.status().last_error is None


@pytest.mark.parametrize("start", ["earliest", "latest"])
def test_partitions_added_while_an_up_mirror_runs_are_forwarded(log: embedlog.Log, bootstrap: str, name: str,
                                                                start: str) -> None:
    """An up mirror read the partitions the topic had when it opened: records of partitions
    added later waited (as lag) until a restart.  Now it opens again on its own within
    about a second, exactly once; the new partitions from their start, also for
    start="latest" (they are newer than the mirror)."""
    topic = f"{name}-t"
    log.create_topic(topic, partitions=2)
    with Mirror(log, conf(bootstrap), [topic], name=name, start=start) as m:
        m.wait_for_link(30)
        produce(log, topic, 20)
        bridge_proc.caught_up(m, 30)
        log.create_partitions(topic, 4)
        with log.producer() as p:
            for i in range(20, 60):
                p.send(topic, b"v%d" % i, key=b"k%d" % i, partition=i % 4)
        harness.wait_until(lambda: len(m.status().partitions) == 4 and m.status().lag == 0,
                           "the new partitions forwarded", 30)
        assert m.status().last_error is None
    got = sorted(r.value for rs in mock_kafka.read_topic(bootstrap, topic).values() for r in rs)
    assert got == sorted(b"v%d" % i for i in range(60))  # each once


def lose_ten(log: embedlog.Log, bootstrap: str, name: str, topic: str, then: int) -> None:
    """Mirror 10 records; write 10 more that are deleted before the next run (as retention
    would), then ``then`` more; run the mirror again until caught up."""
    log.create_topic(topic, partitions=1)
    produce(log, topic, 10)
    with Mirror(log, conf(bootstrap), [topic], name=name) as m:
        bridge_proc.caught_up(m, 30)
    produce(log, topic, 10, first=10)
    log.delete_records(topic, 0, 20)
    produce(log, topic, then, first=20)
    with Mirror(log, conf(bootstrap), [topic], name=name) as m:
        bridge_proc.caught_up(m, 30)
        assert m.status().records_lost == 10


def test_records_lost_with_nothing_after_them_are_recorded(log: embedlog.Log, bootstrap: str, name: str) -> None:
    lose_ten(log, bootstrap, name, f"{name}-t", then=0)
    assert [(e.lost, e.lag) for e in log.metrics().mirrors if e.mirror == name] == [(10, 0)]


def test_records_lost_is_reported_while_stopped(log: embedlog.Log, bootstrap: str, name: str) -> None:
    topic = f"{name}-t"
    lose_ten(log, bootstrap, name, topic, then=1)
    assert [(e.lost, e.lag) for e in log.metrics().mirrors if e.mirror == name] == [(10, 0)]
    assert Mirror(log, conf(bootstrap), [topic], name=name).status().records_lost == 10


def test_mirror_file_names_are_the_hex_ones_up_to_121_bytes() -> None:
    """A 121-byte name ran with hex-named files (their longest name, the status file's
    temporary one, fits 255 bytes): a digest from 121 bytes on left its old status file,
    which forget no longer removed, and its lock under another name."""
    assert mirrors.file_stem("m" * 121) == ("m" * 121).encode().hex()
    assert mirrors.file_stem("m" * 122).startswith("~")
    assert len(f".{mirrors.file_stem('m' * 121)}.4194304.tmp") <= 255


@pytest.mark.parametrize("error", [87, 32])  # INVALID_RECORD, INVALID_TIMESTAMP
def test_a_produce_request_kafka_refuses_once_is_sent_again_and_nothing_twice(log: embedlog.Log, bootstrap: str,
                                                                               name: str, error: int) -> None:
    """Kafka refused one Produce request for good while later ones were in flight, and
    took those: it held a hole, then records after it.  The resync read the first missing
    offset as a failover's divergence and sent the whole rest of the partition again
    (thousands twice).  Now only what Kafka lacks is sent (after what it holds: their
    order is lost, not a record)."""
    topic = f"{name}-t"
    log.create_topic(topic, partitions=4)
    produce(log, topic, 40_000)
    mock_kafka.push_errors(bootstrap, 0, [error])  # the next Produce request
    with Mirror(log, conf(bootstrap), [topic], name=name) as m:
        bridge_proc.caught_up(m, 60)
        st = m.status()
    assert (st.error, st.lag, st.records_lost) == (None, 0, 0)
    sources = [r.headers[-1][1] for rs in mock_kafka.read_topic(bootstrap, topic).values() for r in rs]
    assert len(sources) == len(set(sources)) == 40_000


def test_a_record_kafka_refuses_for_good_stops_the_mirror_then_goes_once(log: embedlog.Log, bootstrap: str,
                                                                          name: str) -> None:
    """Refused again after the resync (a keyless record to a compacted topic, a timestamp
    the topic's message.timestamp.* settings refuse): the mirror stops with ``BridgeError``
    saying so, instead of starting over forever; started again once Kafka takes it, it
    sends what Kafka lacks, once."""
    topic = f"{name}-t"
    log.create_topic(topic, partitions=1)
    with log.producer() as p:  # (one key: one remote partition, one Produce request)
        for i in range(10):
            p.send(topic, b"v%d" % i, key=b"k")
    mock_kafka.push_errors(bootstrap, 0, [87, 87])  # the first send and the one after the resync
    mirror = Mirror(log, conf(bootstrap), [topic], name=name, reconnect_backoff_ms=10)
    with pytest.raises(BridgeError, match="for good") as info:
        mirror.run(timeout=30)
    assert not isinstance(info.value, LinkDownError)
    assert "failed to validate record" in str(info.value)
    assert mock_kafka.remote_total(bootstrap, topic) == 0
    with Mirror(log, conf(bootstrap), [topic], name=name) as m:
        bridge_proc.caught_up(m, 30)
    values = [r.value for rs in mock_kafka.read_topic(bootstrap, topic).values() for r in rs]
    assert sorted(values) == sorted(b"v%d" % i for i in range(10))


def test_an_up_mirror_retries_while_its_remote_topic_has_no_leader(log: embedlog.Log, bootstrap: str,
                                                                   name: str) -> None:
    """LEADER_NOT_AVAILABLE (a leader election, a broker restarting) while the mirror
    connects stopped it for good after ``request_timeout_ms``, with a BridgeError telling
    to create the topic (it exists).  Now the link shows down with the reason, the mirror
    retries with backoff, and it catches up once Kafka has a leader."""
    topic = f"{name}-t"
    mock_kafka.create_topic(bootstrap, topic, 2)
    log.create_topic(topic, partitions=2)
    produce(log, topic, 100)
    mock_kafka.topic_error(bootstrap, topic, 5)  # LEADER_NOT_AVAILABLE
    try:
        with Mirror(log, conf(bootstrap), [topic], name=name, request_timeout_ms=1000) as m:
            harness.wait_until(lambda: m.status().error is not None or "no leader" in (m.status().last_error or ""),
                               "the reason shown", 30)
            time.sleep(1.5)  # (past request_timeout_ms again)
            st = m.status()
            assert (st.running, st.link_up, st.error) == (True, False, None), st
            mock_kafka.topic_error(bootstrap, topic, 0)
            bridge_proc.caught_up(m, 30)
    finally:
        mock_kafka.topic_error(bootstrap, topic, 0)
    assert mock_kafka.remote_total(bootstrap, topic) == 100


def test_an_up_mirror_refused_its_topic_raises_authentication_error(log: embedlog.Log, bootstrap: str,
                                                                    name: str) -> None:
    """TOPIC_AUTHORIZATION_FAILED for the remote topic: the up mirror raised BridgeError
    telling to create the topic (the down mirror AuthenticationError, as the README says),
    and its status kept ``link_up`` True after it stopped."""
    topic = f"{name}-t"
    mock_kafka.create_topic(bootstrap, topic, 2)
    log.create_topic(topic, partitions=2)
    mock_kafka.topic_error(bootstrap, topic, 29)
    mirror = Mirror(log, conf(bootstrap), [topic], name=name, request_timeout_ms=2000)
    try:
        with pytest.raises(AuthenticationError, match="ACLs"):
            mirror.run(timeout=15)
        st = mirror.status()
        assert (st.running, st.link_up) == (False, False), st
        assert st.error is not None
    finally:
        mirror.close()
        mock_kafka.topic_error(bootstrap, topic, 0)


@pytest.mark.parametrize("how", ["partitions", "resync", "reconnect"])
def test_a_deleted_topic_does_not_stop_the_mirror_when_its_session_opens_again(log: embedlog.Log, bootstrap: str,
                                                                               name: str, how: str,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One of two mirrored topics deleted while the up mirror runs, then the session
    opened again (the other topic gained a partition; Kafka refused a request: Resync;
    the link went down and came back): ``open()`` described every topic, and the deleted
    one stopped the mirror for good with ``UnknownTopicError``.  Now a topic missing when
    the session opens is left out of it, and forwarded from its start once created anew."""
    from embedlog.bridge.up import UpEngine  # noqa: PLC0415

    gone, kept = f"{name}-gone", f"{name}-kept"
    log.create_topic(gone, partitions=1)
    log.create_topic(kept, partitions=1)
    produce(log, gone, 5)
    outage: list[bool] = []
    step = UpEngine.step

    def flaky(self: UpEngine, stop: Any) -> int:
        if outage and outage.pop():
            raise LinkDownError("the link went down (test)")
        return step(self, stop)

    monkeypatch.setattr(UpEngine, "step", flaky)
    with Mirror(log, conf(bootstrap), [gone, kept], name=name, reconnect_backoff_ms=10) as m:
        bridge_proc.caught_up(m, 60)
        log.delete_topic(gone)
        time.sleep(1.5)  # (the session goes on)
        assert m.status().error is None
        if how == "partitions":
            log.create_partitions(kept, 2)  # the session opens again
        elif how == "resync":
            mock_kafka.push_errors(bootstrap, 0, [87])  # a refused request: Resync, the session opens again
        else:
            outage.append(True)
        with log.producer() as p:
            for i in range(10):
                p.send(kept, b"b%d" % i, partition=i % 2 if how == "partitions" else 0)
        harness.wait_until(lambda: mock_kafka.remote_total(bootstrap, kept) >= 10 or m.status().error is not None,
                           "the other topic in Kafka", 30)
        st = m.status()
        assert (st.running, st.error) == (True, None), st
        assert not outage
        log.create_topic(gone, partitions=1)  # created anew: forwarded from its start
        produce(log, gone, 7, first=100)
        harness.wait_until(lambda: mock_kafka.remote_total(bootstrap, gone) >= 12, "the new topic in Kafka", 30)
        bridge_proc.caught_up(m, 30)
        st = m.status()
    assert (st.error, st.lag) == (None, 0), st
    assert {p.topic for p in st.partitions} == {gone, kept}
    assert mock_kafka.remote_total(bootstrap, kept) == 10
    values = sorted(r.value for rs in mock_kafka.read_topic(bootstrap, gone).values() for r in rs)
    assert values == sorted([b"v%d" % i for i in range(5)] + [b"v%d" % i for i in range(100, 107)])


def test_a_mirror_waiting_out_its_backoff_is_reported_running(log: embedlog.Log) -> None:
    """Retrying an unreachable cluster, it reported only at each attempt: with a backoff
    near ``LINK_STALE_MS`` its last report looked like a killed bridge's (bridge status:
    not running) while it ran."""
    import time  # noqa: PLC0415

    log.create_topic("t", partitions=1)
    m = Mirror(log, {"bootstrap.servers": mock_kafka.dead_address()}, ["t"], name="patient",
               reconnect_backoff_ms=8_000, reconnect_backoff_max_ms=8_000, request_timeout_ms=1_000)
    m.start()
    try:
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:
            time.sleep(0.5)
            (link,) = [x for x in mirrors.mirror_links(log.path) if x.mirror == "patient"]
            assert time.time_ns() // 1_000_000 - link.updated_ms < 3_000, "no report for 3 s while it runs"
    finally:
        m.close()
