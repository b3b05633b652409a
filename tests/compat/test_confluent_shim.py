"""The confluent-kafka shim on its own: configuration, producer, consumer, groups,
transactions, admin, and the pure-Python value classes.  (The same behaviours compared
against the real client on librdkafka's mock cluster are in
``test_confluent_differential.py``.)"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog.compat import confluent_kafka as ck
from embedlog.compat import registry
from embedlog.compat.confluent_kafka import _admin_types, _errors, _producer, _types
from embedlog.compat.confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    NewPartitions,
    NewTopic,
)

try:
    import confluent_kafka as real
except ImportError:  # pragma: no cover
    real = None

KafkaException = ck.KafkaException
TP = ck.TopicPartition


@pytest.fixture
def conf(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A base config naming a fresh log directory; topics auto-create with 4 partitions."""
    yield {"bootstrap.servers": f"shim-{uuid.uuid4().hex[:8]}:9092", "embedlog.path": str(tmp_path / "log"),
           "embedlog.num.partitions": 4}
    registry.reset()


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for c in reversed(made):
        with contextlib.suppress(Exception):
            c.close()


def kerr(fn: Callable[[], Any]) -> tuple[int, str]:
    """``(code, str)`` of the KafkaException ``fn`` raises."""
    with pytest.raises(KafkaException) as info:
        fn()
    err = info.value.args[0]
    return err.code(), err.str()


def drain(c: Any, n: int, timeout: float = 10.0, *, errors: bool = False) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.1)
        if m is not None and (errors or m.error() is None):
            out.append(m)
    return out


def produce(conf: dict[str, Any], topic: str, values: list[bytes], **kw: Any) -> None:
    p = ck.Producer(conf)
    for v in values:
        p.produce(topic, v, **kw)
    assert p.flush(10) == 0
    p.close()


# -- configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("config", "code", "text"), [
    ({"foo.bar": 1}, -186, 'No such configuration property: "foo.bar"'),
    ({"auto.offset.reset": "bogus"}, -186, 'Invalid value "bogus" for configuration property "auto.offset.reset"'),
    ({"linger.ms": -5}, -186,
     'Configuration property "queue.buffering.max.ms" value -5 is outside allowed range 0..900000\n'),
    ({"enable.auto.commit": "maybe"}, -186, 'Expected bool value for "enable.auto.commit": true or false'),
    ({"partitioner": "xx"}, -186, 'Invalid value for configuration property "partitioner": xx'),
    ({"compression.type": "brotli"}, -186, 'Invalid value "brotli" for configuration property "compression.codec"'),
    ({"acks": ""}, -186, 'Integer configuration property "request.required.acks" cannot be set to empty value'),
    ({"rebalance_cb": print}, -186, 'Property "rebalance_cb" must be set through dedicated .._set_..() function'),
    ({"on_commit": print}, -186, 'No such configuration property: "on_commit"'),
])
def test_producer_config_is_checked_like_librdkafka(conf: dict[str, Any], config: dict[str, Any], code: int,
                                                    text: str) -> None:
    assert kerr(lambda: ck.Producer({**conf, **config})) == (code, text)


def test_irrelevant_keys_are_accepted_and_callbacks_checked(conf: dict[str, Any], clients: list[Any]) -> None:
    ok = {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p",
          "ssl.ca.location": "/nowhere", "client.id": "svc", "acks": "all", "linger.ms": 20, "retries": 5,
          "compression.type": "gzip", "enable.idempotence": True, "statistics.interval.ms": 0,
          "error_cb": lambda err: None, "logger": object(), "test.mock.num.brokers": 1}
    clients.append(ck.Producer({**conf, **ok}))
    clients.append(ck.Producer(conf, on_delivery=lambda e, m: None))  # keyword arguments join the config
    with pytest.raises(TypeError, match="expected error_cb property as a callable function"):
        ck.Producer({**conf, "error_cb": "nope"})
    with pytest.raises(ValueError, match=r"group\.id must be set"):
        ck.Consumer(conf)
    assert kerr(lambda: ck.Consumer({**conf, "group.id": "g", "on_delivery": print}))[0] == -186
    assert kerr(lambda: ck.Consumer({**conf, "group.id": "g", "partition.assignment.strategy": "sticky"})) == (
        -186, "Failed to create consumer: Unsupported partition.assignment.strategy: sticky")


# -- the registry: which log a client talks to --------------------------------------------------------
def test_clients_with_the_same_bootstrap_servers_meet(clients: list[Any]) -> None:
    servers = f"app-{uuid.uuid4().hex[:6]}:9092"
    try:
        p = ck.Producer({"bootstrap.servers": servers})  # one part of an application...
        p.produce("orders", b"o-1", key=b"k")
        p.flush()
        c = ck.Consumer({"bootstrap.servers": servers, "group.id": "billing", "auto.offset.reset": "earliest"})
        clients.append(c)  # ... and another
        c.subscribe(["orders"])
        assert [m.value() for m in drain(c, 1)] == [b"o-1"]
        other = ck.Consumer({"bootstrap.servers": "elsewhere:9092", "group.id": "g"})
        clients.append(other)
        assert "orders" not in other.list_topics().topics
    finally:
        for cl in clients:
            cl.close()
        clients.clear()
        registry.reset()


def test_embedlog_path_names_a_log_directory(conf: dict[str, Any]) -> None:
    produce(conf, "events", [b"e0", b"e1"], partition=2)
    registry.reset()
    with embedlog.open(conf["embedlog.path"]) as log:
        assert [(m.partition, m.value) for m in log.consumer(["events"], auto_offset_reset="earliest").poll(1.0)] == [
            (2, b"e0"), (2, b"e1")]


def test_without_auto_create_produce_fails_and_a_consumer_waits_for_the_topic(conf: dict[str, Any],
                                                                              clients: list[Any]) -> None:
    conf = {**conf, "embedlog.auto.create.topics.enable": False}
    reports: list[Any] = []
    p = ck.Producer(conf, on_delivery=lambda e, m: reports.append(e))
    clients.append(p)
    p.produce("later", b"x")
    p.flush()
    assert [e.code() for e in reports] == [-188]  # _UNKNOWN_TOPIC
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.subscribe(["later"])
    ev = c.poll(1.0)
    assert ev is not None
    assert ev.error().code() == 3
    assert ev.error().str() == "Subscribed topic not available: later: Broker: Unknown topic or partition"
    assert c.poll(0.3) is None  # reported once
    AdminClient(conf).create_topics([NewTopic("later", 2)])["later"].result()
    p.produce("later", b"now", partition=1)
    p.flush()
    assert [(m.partition(), m.value()) for m in drain(c, 1)] == [(1, b"now")]


def test_a_consumer_creates_topics_only_with_allow_auto_create_topics(conf: dict[str, Any],
                                                                      clients: list[Any]) -> None:
    plain = ck.Consumer({**conf, "group.id": "g"})
    clients.append(plain)
    assert plain.list_topics("x1").topics["x1"].error.code() == 3
    eager = ck.Consumer({**conf, "group.id": "g", "allow.auto.create.topics": True})
    clients.append(eager)
    eager.subscribe(["x2"])
    assert len(eager.list_topics("x2").topics["x2"].partitions) == 4
    assert eager.poll(0.2) is None  # no error event


# -- producer ------------------------------------------------------------------------------------------------
def test_delivery_reports_are_served_only_by_poll_and_flush(conf: dict[str, Any], clients: list[Any]) -> None:
    p = ck.Producer({**conf, "linger.ms": 1})
    clients.append(p)
    seen: list[tuple[Any, ...]] = []
    p.produce("t", b"v", key=b"k", callback=lambda e, m: seen.append(
        (e, m.topic(), m.partition(), m.offset(), m.key(), m.value(), threading.current_thread().name)))
    assert len(p) == 1
    deadline = time.monotonic() + 5
    while len(p) < 2 and time.monotonic() < deadline:  # written: message + its queued report event
        time.sleep(0.01)
    assert len(p) == 2
    assert seen == []
    assert p.poll(0) == 1
    assert seen == [(None, "t", ck.consistent(b"k", 4), 0, b"k", b"v", threading.current_thread().name)]
    assert len(p) == 0
    assert p.poll(0.05) == 0


def test_timeouts_and_config_of_the_wrong_type_are_type_errors(conf: dict[str, Any], clients: list[Any]) -> None:
    """As librdkafka's binding: ``poll(None)`` blocked for ever, ``flush(None)`` and
    ``Producer(None)`` were taken."""
    p = ck.Producer(conf)
    clients.append(p)
    c = ck.Consumer({**conf, "group.id": "g"})
    clients.append(c)
    for call in (lambda: p.poll(None), lambda: p.flush(None), lambda: p.poll("1"), lambda: c.poll(None),
                 lambda: c.consume(1, None), lambda: c.poll("1")):
        with pytest.raises(TypeError, match="must be real number"):
            call()
    for cls in (ck.Producer, ck.Consumer):
        with pytest.raises(TypeError, match="expected configuration dict"):
            cls(None)
        with pytest.raises(TypeError, match="expected configuration dict"):
            cls()
    assert p.poll(0) == 0
    assert p.flush(0.5) == 0


@pytest.mark.parametrize("key", [None, b"k"])
def test_a_bad_topic_name_is_a_failed_delivery_report(conf: dict[str, Any], clients: list[Any],
                                                      key: bytes | None) -> None:
    """As librdkafka: TOPIC_EXCEPTION in the report.  Unkeyed, an empty name leaked
    embedlog's StorageError (MDB_BAD_VALSIZE) from the sticky partitioner's lookup."""
    p = ck.Producer(conf)
    clients.append(p)
    got: list[tuple[int | None, str]] = []
    for topic in ("", "a" * 300, "bad name"):
        p.produce(topic, b"v", key=key, on_delivery=lambda e, m: got.append((e.code() if e else None, m.topic())))
    assert p.flush(10) == 0
    assert got == [(ck.KafkaError.TOPIC_EXCEPTION, t) for t in ("", "a" * 300, "bad name")]


def test_poll_waits_for_a_report(conf: dict[str, Any], clients: list[Any]) -> None:
    p = ck.Producer({**conf, "linger.ms": 50})
    clients.append(p)
    got: list[int] = []
    p.produce("t", b"v", partition=0, on_delivery=lambda e, m: got.append(m.offset()))
    assert p.poll(5.0) == 1
    assert got == [0]


def test_flush_serves_all_reports_and_returns_zero(conf: dict[str, Any], clients: list[Any]) -> None:
    offsets: list[tuple[int, int]] = []
    p = ck.Producer(conf, on_delivery=lambda e, m: offsets.append((m.partition(), m.offset())))
    clients.append(p)
    for i in range(50):
        p.produce("t", str(i), key=str(i % 7))
    assert p.flush() == 0
    assert len(offsets) == 50
    for part in range(4):
        mine = [o for pp, o in offsets if pp == part]
        assert mine == list(range(len(mine)))  # dense, in order, per partition


def test_queue_bound_raises_buffer_error_until_reports_are_served(conf: dict[str, Any], clients: list[Any]) -> None:
    p = ck.Producer({**conf, "queue.buffering.max.messages": 3})
    clients.append(p)
    for _ in range(3):
        p.produce("t", b"x")
    with pytest.raises(BufferError, match="Queue full"):
        p.produce("t", b"x")
    p.flush()
    p.produce("t", b"x")


def test_produce_argument_checks(conf: dict[str, Any], clients: list[Any]) -> None:
    p = ck.Producer({**conf, "message.max.bytes": 1000})
    clients.append(p)
    p.list_topics("t")
    too_big = (10, "Unable to produce message: Broker: Message size too large")
    assert kerr(lambda: p.produce("t", b"x" * 1001)) == too_big
    unknown = (-190, "Unable to produce message: Local: Unknown partition")
    assert kerr(lambda: p.produce("t", b"x", partition=4)) == unknown
    with pytest.raises(TypeError, match="a bytes-like object is required, not 'int'"):
        p.produce("t", 5)
    with pytest.raises(TypeError, match="header value"):
        p.produce("t", b"x", headers={"h": 1})
    # the real client takes bytes and str, not bytearray or memoryview (nor as header values)
    with pytest.raises(TypeError, match="argument 2 must be read-only bytes-like object, not bytearray"):
        p.produce("t", bytearray(b"ba"))
    with pytest.raises(TypeError, match="argument 3 must be read-only bytes-like object, not memoryview"):
        p.produce("t", b"x", key=memoryview(b"mv"))
    with pytest.raises(TypeError, match="header value"):
        p.produce("t", b"x", headers=[("h", bytearray(b"v"))])
    # a header name that is not a str is taken as str(name): b"bk" is "b'bk'"
    p.produce("t", b"ba", key=b"mv", headers=[("a", "s"), ("b", None), (b"bk", b"v")], partition=0)
    p.flush()
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.assign([TP("t", 0)])
    (m,) = drain(c, 1)
    assert (m.value(), m.key(), m.headers()) == (b"ba", b"mv", [("a", b"s"), ("b", None), ("b'bk'", b"v")])


def test_a_log_append_time_topic_stamps_records(conf: dict[str, Any], clients: list[Any]) -> None:
    AdminClient(conf).create_topics([NewTopic("lat", 1, config={"message.timestamp.type": "LogAppendTime"})])[
        "lat"].result()
    reports: list[tuple[int, int]] = []
    p = ck.Producer(conf)
    clients.append(p)
    before = int(time.time() * 1000)
    p.produce("lat", b"x", timestamp=1234, on_delivery=lambda e, m: reports.append(m.timestamp()))
    p.flush()
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.subscribe(["lat"])
    (m,) = drain(c, 1)
    assert m.timestamp()[0] == ck.TIMESTAMP_LOG_APPEND_TIME
    assert m.timestamp()[1] >= before
    assert reports == [m.timestamp()]


def test_delivery_report_only_error_and_produce_batch(conf: dict[str, Any], clients: list[Any]) -> None:
    seen: list[Any] = []
    p = ck.Producer({**conf, "delivery.report.only.error": True}, on_delivery=lambda e, m: seen.append(e))
    clients.append(p)
    msgs: list[dict[str, Any]] = [{"value": b"a"}, {"value": b"b", "partition": 9}, {"value": 5}]
    assert p.produce_batch("t", msgs) == 1
    assert msgs[1]["_error"].code() == -190
    assert "_error" in msgs[2]
    p.flush()
    assert seen == []  # successful deliveries are not reported


def test_a_closed_producer_refuses_work(conf: dict[str, Any]) -> None:
    with ck.Producer(conf) as p:
        p.produce("t", b"x")
    with pytest.raises(RuntimeError, match="Producer has been closed"):
        p.produce("t", b"y")
    assert p.close() is True


def test_partition_functions_match_the_partitioners(conf: dict[str, Any], clients: list[Any]) -> None:
    keys = [f"k{i}".encode() for i in range(30)]
    for name, fn in (("consistent", ck.consistent), ("murmur2", ck.murmur2), ("fnv1a", ck.fnv1a)):
        placed: dict[bytes, int] = {}
        p = ck.Producer({**conf, "partitioner": name})
        clients.append(p)
        for k in keys:
            p.produce(f"pf-{name}", b"v", key=k, on_delivery=lambda e, m: placed.__setitem__(m.key(), m.partition()))
        p.flush()
        assert placed == {k: fn(k, 4) for k in keys}
        if real is not None and hasattr(real, name):
            assert [getattr(real, name)(k, 7) for k in keys] == [fn(k, 7) for k in keys]
    with pytest.raises(ValueError, match="partition_count"):
        ck.murmur2(b"k", 0)


# -- consumer ------------------------------------------------------------------------------------------------
def test_rebalance_callbacks_and_start_offsets_set_in_on_assign(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "orders", [f"o{i}".encode() for i in range(6)], partition=0)
    calls: list[tuple[str, list[tuple[str, int, int]]]] = []

    def on_assign(consumer: Any, partitions: list[Any]) -> None:
        assert consumer is c
        calls.append(("assign", [(x.topic, x.partition, x.offset) for x in partitions]))
        for x in partitions:
            x.offset = 4 if x.partition == 0 else ck.OFFSET_END
        consumer.assign(partitions)

    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.subscribe(["orders"], on_assign=on_assign,
                on_revoke=lambda consumer, parts: calls.append(("revoke", [(x.topic, x.partition, x.offset)
                                                                           for x in parts])))
    assert [m.offset() for m in drain(c, 2)] == [4, 5]
    assert calls[0] == ("assign", [("orders", p, -1001) for p in range(4)])
    assert sorted((x.partition, x.offset) for x in c.assignment()) == [(p, -1000) for p in range(4)]
    assert c.memberid()
    c.close()
    assert calls[-1] == ("revoke", [("orders", p, -1001) for p in range(4)])
    # auto-commit on close: a new member resumes after what was consumed
    c2 = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c2)
    assert [x.offset for x in c2.committed([TP("orders", 0)])] == [6]


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range", "roundrobin"])
def test_two_members_split_partitions_and_take_over_on_close(conf: dict[str, Any], clients: list[Any],
                                                             strategy: str) -> None:
    produce(conf, "jobs", [f"j{i}".encode() for i in range(8)], key=None)
    cfg = {**conf, "group.id": "workers", "auto.offset.reset": "earliest", "partition.assignment.strategy": strategy}
    owned: dict[str, set[int]] = {"a": set(), "b": set()}
    lost: list[str] = []

    def member(name: str) -> Any:
        c = ck.Consumer(cfg)
        clients.append(c)

        def assign(_: Any, parts: list[Any]) -> None:
            owned[name].update(x.partition for x in parts)

        def revoke(_: Any, parts: list[Any]) -> None:
            owned[name].difference_update(x.partition for x in parts)

        c.subscribe(["jobs"], on_assign=assign, on_revoke=revoke, on_lost=lambda _, parts: lost.append(name))
        return c

    a = member("a")
    got = drain(a, 8)
    b = member("b")
    deadline = time.monotonic() + 10
    while not (len(owned["a"]) == 2 and len(owned["b"]) == 2) and time.monotonic() < deadline:
        a.poll(0.02)
        b.poll(0.02)
    assert owned["a"] | owned["b"] == {0, 1, 2, 3}
    assert not owned["a"] & owned["b"]
    assert len(got) == 8
    b.close()
    deadline = time.monotonic() + 10
    while len(owned["a"]) < 4 and time.monotonic() < deadline:
        a.poll(0.02)
    assert owned["a"] == {0, 1, 2, 3}
    assert lost == []


def test_a_member_with_prefetched_records_does_not_hold_up_a_rebalance(conf: dict[str, Any],
                                                                      clients: list[Any]) -> None:
    """librdkafka rebalances in the background: a member slowly working through records it
    prefetched gives up partitions at its next poll() (on_revoke there), and never hands
    out records of a partition it no longer owns (the shim used to take part in the
    rebalance only once its buffer of up to 500 records was drained)."""
    p = ck.Producer(conf)
    for i in range(400):
        p.produce("bt", str(i).encode(), partition=i % 2)
    assert p.flush(10) == 0
    cfg = {**conf, "group.id": "gb", "auto.offset.reset": "earliest", "enable.auto.commit": False,
           "partition.assignment.strategy": "range", "session.timeout.ms": 6000, "heartbeat.interval.ms": 300}
    revoked: list[list[int]] = []
    c1 = ck.Consumer(cfg)
    clients.append(c1)
    c1.subscribe(["bt"], on_revoke=lambda _, parts: revoked.append(sorted(x.partition for x in parts)))
    assert len(drain(c1, 1)) == 1  # (the rest of what it fetched is buffered)
    c2 = ck.Consumer(cfg)
    clients.append(c2)
    c2.subscribe(["bt"])
    after: list[Any] = []
    deadline = time.monotonic() + 5
    while not c2.assignment() and time.monotonic() < deadline:
        m = c1.poll(0.1)
        if revoked and m is not None and m.error() is None:
            after.append(m)
        time.sleep(0.02)  # slow processing
        c2.poll(0.01)
    assert c2.assignment()
    assert revoked[0] == [0, 1, 2, 3]  # eager: everything, then its share again
    kept = {x.partition for x in c1.assignment()}
    assert len(kept) == 2
    assert all(m.partition() in kept for m in after)


@pytest.mark.parametrize("auto_commit", [False, True])
def test_a_consume_call_spanning_a_rebalance_returns_no_message_twice(conf: dict[str, Any], clients: list[Any],
                                                                      auto_commit: bool) -> None:
    """One consume() inside which the group rebalances (eager: every partition revoked,
    then its share assigned again from the committed offset) returns no message twice:
    the messages of revoked partitions already in the batch are dropped from it, as
    librdkafka drops a batch's messages fetched before a rebalance (confluent-kafka-python
    #1013).  With auto-commit the revocation commits nothing the batch did not return."""
    cfg = {**conf, "group.id": "gspan", "auto.offset.reset": "earliest", "enable.auto.commit": auto_commit,
           "session.timeout.ms": 6000, "heartbeat.interval.ms": 50}
    registry.log_for(conf).log.create_topic("span", partitions=2)
    a, b = ck.Consumer(cfg), ck.Consumer(cfg)
    clients.extend([a, b])
    a.subscribe(["span"])
    b.subscribe(["span"])
    deadline = time.monotonic() + 30
    while not (len(a.assignment()) == 1 and len(b.assignment()) == 1):
        assert time.monotonic() < deadline
        assert not a.consume(10, 0.05)
        assert not b.consume(10, 0.05)
    owner, other = (a, b) if a.assignment()[0].partition == 0 else (b, a)
    produce(conf, "span", [str(i).encode() for i in range(50)], partition=0)
    threading.Timer(1.0, other.close).start()  # the other member leaves while owner is inside consume()
    batch = owner.consume(num_messages=1000, timeout=4.0)
    offsets = [m.offset() for m in batch if m.error() is None]
    assert sorted(offsets) == list(range(50))  # each once (the tail re-read after the rebalance)
    if auto_commit:
        committed = owner.committed([TP("span", 0)], 5)[0].offset
        assert committed in (ck.OFFSET_INVALID, *offsets, 50)
        assert committed == ck.OFFSET_INVALID or committed <= min(offsets) or committed == 50


def test_max_poll_interval_exceeded_gives_an_event_then_on_lost_and_a_rejoin(conf: dict[str, Any],
                                                                            clients: list[Any]) -> None:
    """As librdkafka: the next poll() after max.poll.interval.ms returns a
    _MAX_POLL_EXCEEDED event (the member has left: no member id), then on_lost runs, the
    member rejoins and reads again from the committed offset; the records it had
    prefetched for the partition it lost are never handed out."""
    produce(conf, "mpi", [str(i).encode() for i in range(4)], partition=0)
    events: list[tuple[str, list[int]]] = []
    c = ck.Consumer({**conf, "group.id": "gmpi", "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": 1000, "heartbeat.interval.ms": 100, "max.poll.interval.ms": 1500})
    clients.append(c)

    def record(kind: str) -> Callable[[Any, list[Any]], None]:
        return lambda _, parts: events.append((kind, sorted(x.partition for x in parts if x.partition == 0)))

    c.subscribe(["mpi"], on_assign=record("assign"), on_revoke=record("revoke"), on_lost=record("lost"))
    assert [m.offset() for m in drain(c, 2)] == [0, 1]  # (2 and 3 are buffered)
    assert events == [("assign", [0])]
    time.sleep(2.5)
    ev = c.poll(1)
    assert ev is not None
    assert ev.error().code() == ck.KafkaError._MAX_POLL_EXCEEDED == -147
    assert ev.error().str().startswith("Application maximum poll interval (1500ms) exceeded by ")
    assert (ev.topic(), ev.offset(), ev.value()) == (None, None, ev.error().str().encode())
    assert c.memberid() is None
    assert events == [("assign", [0])]  # on_lost at the next poll
    assert [m.offset() for m in drain(c, 2, errors=True)] == [0, 1]  # from the committed offset (none: earliest)
    assert events == [("assign", [0]), ("lost", [0]), ("assign", [0])]
    assert c.memberid()
    assert [x.offset for x in c.commit(offsets=[TP("mpi", 0, 1)], asynchronous=False)] == [1]


def test_auto_commit_interval_and_on_commit(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "t", [b"a", b"b", b"c"], partition=1)
    commits: list[tuple[Any, list[tuple[int, int]]]] = []
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest", "auto.commit.interval.ms": 50,
                     "on_commit": lambda err, parts: commits.append((err, [(x.partition, x.offset) for x in parts]))})
    clients.append(c)
    c.assign([TP("t", 1)])
    assert len(drain(c, 3)) == 3
    deadline = time.monotonic() + 5
    while not commits and time.monotonic() < deadline:
        c.poll(0.05)
    assert commits[-1] == (None, [(1, 3)])
    assert [x.offset for x in c.committed([TP("t", 1)])] == [3]


def test_commit_errors(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "t", [b"a"], partition=0)
    commits: list[Any] = []
    c = ck.Consumer({**conf, "group.id": "g", "on_commit": lambda err, parts: commits.append(err)})
    clients.append(c)
    assert c.commit() is None  # asynchronous: nothing stored -> reported to on_commit at the next poll
    assert commits == []
    c.poll(0)
    assert [e.code() for e in commits] == [-168]
    assert kerr(lambda: c.commit(asynchronous=False)) == (-168, "Commit failed: Local: No offset stored")
    # an offset beyond the end: Kafka's broker takes it (reading resets it), so does the shim
    assert [(x.partition, x.offset) for x in c.commit(offsets=[TP("t", 0, 5)], asynchronous=False)] == [(0, 5)]
    assert [x.offset for x in c.committed([TP("t", 0)], timeout=5)] == [5]
    assert kerr(lambda: c.commit(offsets=[TP("nope", 0, 0)], asynchronous=False))[0] == 3


def test_store_offsets_rules(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "t", [b"a", b"b"], partition=0)
    auto = ck.Consumer({**conf, "group.id": "g"})
    clients.append(auto)
    assert kerr(lambda: auto.store_offsets(offsets=[TP("t", 0, 1)]))[0] == -186
    manual = ck.Consumer({**conf, "group.id": "g", "enable.auto.offset.store": False, "auto.offset.reset": "earliest"})
    clients.append(manual)
    manual.assign([TP("t", 0)])
    unassigned = (-172, "StoreOffsets failed: Local: Erroneous state")
    assert kerr(lambda: manual.store_offsets(offsets=[TP("t", 1, 1)])) == unassigned
    m = drain(manual, 1)[0]
    manual.store_offsets(m)
    assert [(x.partition, x.offset) for x in manual.commit(asynchronous=False)] == [(0, 1)]


def test_consume_waits_for_a_full_batch_or_the_timeout(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "t", [b"a", b"b", b"c"], partition=3)
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.assign([TP("t", 3)])
    assert [m.value() for m in c.consume(2, timeout=5)] == [b"a", b"b"]
    start = time.monotonic()
    assert [m.value() for m in c.consume(10, timeout=0.3)] == [b"c"]
    assert time.monotonic() - start >= 0.25
    assert c.consume(0, timeout=0) == []
    with pytest.raises(ValueError, match="num_messages"):
        c.consume(1_000_001)


def test_a_blocked_poll_wakes_when_a_record_arrives(conf: dict[str, Any], clients: list[Any]) -> None:
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    ck.Producer(conf).list_topics("t")
    c.assign([TP("t", 0)])
    threading.Timer(0.2, lambda: produce(conf, "t", [b"late"], partition=0)).start()
    start = time.monotonic()
    m = c.poll(20)
    assert m is not None
    assert m.value() == b"late"
    assert time.monotonic() - start < 10


def test_regex_subscription_follows_new_topics(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "metrics-a", [b"1"])
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.subscribe(["^metrics-.*"])
    assert [m.topic() for m in drain(c, 1)] == ["metrics-a"]
    produce(conf, "metrics-b", [b"2"])
    produce(conf, "other", [b"3"])
    assert [m.topic() for m in drain(c, 1)] == ["metrics-b"]
    assert c.poll(0.3) is None


def test_assigning_a_missing_topic_reports_it_and_waits(conf: dict[str, Any], clients: list[Any]) -> None:
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.assign([TP("soon", 1)])
    ev = c.poll(1)
    assert ev is not None
    assert (ev.error().code(), ev.topic(), ev.partition()) == (3, "soon", 1)
    produce(conf, "soon", [b"here"], partition=1)
    assert [m.value() for m in drain(c, 1)] == [b"here"]


def test_offset_reset_error_then_seek(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "t", [b"a", b"b"], partition=0)
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "error"})
    clients.append(c)
    c.assign([TP("t", 0)])
    ev = c.poll(1)
    assert ev is not None
    assert ev.error().code() == -140
    assert c.poll(0.2) is None  # stopped until seek
    c.seek(TP("t", 0, 1))
    assert [m.value() for m in drain(c, 1)] == [b"b"]


def test_offset_reset_error_for_an_offset_assigned_out_of_range(conf: dict[str, Any], clients: list[Any]) -> None:
    """As librdkafka: an assigned offset past the end with ``auto.offset.reset=error`` is an
    ``_AUTO_OFFSET_RESET`` event at that offset (there was none), then a halt until seek."""
    produce(conf, "t", [b"a", b"b"], partition=0)
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "error"})
    clients.append(c)
    c.assign([TP("t", 0, 50)])
    ev = c.poll(2)
    assert ev is not None
    assert (ev.error().code(), ev.offset()) == (-140, 50)
    assert "Offset out of range" in ev.error().str()
    assert c.poll(0.2) is None
    c.seek(TP("t", 0, 0))
    assert [m.value() for m in drain(c, 2)] == [b"a", b"b"]


def test_tail_offsets_and_invalid_logical_offsets(conf: dict[str, Any], clients: list[Any]) -> None:
    """``RD_KAFKA_OFFSET_TAIL(n)`` (-2000 - n) starts n records before the end (it fell back
    to auto.offset.reset); a negative offset that is no logical one is ``_INVALID_ARG``."""
    produce(conf, "t", [b"%d" % i for i in range(5)], partition=0)
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    for bad in (-3, -4, -999, -1002):
        assert kerr(lambda bad=bad: c.assign([TP("t", 0, bad)]))[0] == -186
    c.assign([TP("t", 0, -2000 - 2)])
    assert [m.offset() for m in drain(c, 2)] == [3, 4]
    c.seek(TP("t", 0, -2000 - 9))  # (more than the partition holds: from its start)
    assert [m.offset() for m in drain(c, 5)] == [0, 1, 2, 3, 4]
    assert kerr(lambda: c.seek(TP("t", 0, -5)))[0] == -186


def test_offsets_for_times_and_watermarks(conf: dict[str, Any], clients: list[Any]) -> None:
    p = ck.Producer(conf)
    clients.append(p)
    for i, ts in enumerate((1000, 2000, 3000)):
        p.produce("t", f"v{i}".encode(), partition=0, timestamp=ts)
    p.flush()
    c = ck.Consumer({**conf, "group.id": "g"})
    clients.append(c)
    asked = [TP("t", 0, 1500), TP("t", 0, 3000), TP("t", 0, 9999), TP("t", 0, -2), TP("t", 0, -1)]
    assert [x.offset for x in c.offsets_for_times(asked)] == [1, 2, -1, 0, 3]
    assert c.get_watermark_offsets(TP("t", 0)) == (0, 3)
    assert c.get_watermark_offsets(TP("t", 0), cached=True) == (-1001, -1001)
    unknown = (-190, "Failed to get watermark offsets: Local: Unknown partition")
    assert kerr(lambda: c.get_watermark_offsets(TP("missing", 0))) == unknown
    assert kerr(lambda: c.get_watermark_offsets(TP("t", 7))) == unknown  # (the topic has 4 partitions)
    assert kerr(lambda: c.offsets_for_times([TP("t", 7, 0)])) == (-190,
                                                                  "Failed to get offsets: Local: Unknown partition")


def test_incremental_assignment_keeps_positions(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "t", [b"a0", b"a1"], partition=0)
    produce(conf, "t", [b"b0"], partition=1)
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.incremental_assign([TP("t", 0)])
    assert [m.value() for m in drain(c, 1)] == [b"a0"]
    c.incremental_assign([TP("t", 1, 0)])
    assert sorted(m.value() for m in drain(c, 2)) == [b"a1", b"b0"]
    c.incremental_unassign([TP("t", 0)])
    assert [(x.partition, x.offset) for x in c.assignment()] == [(1, 0)]
    c.unassign()
    assert c.assignment() == []


def test_closed_consumer_and_group_metadata(conf: dict[str, Any]) -> None:
    with ck.Consumer({**conf, "group.id": "g"}) as c:
        assert c.memberid() is None
        assert c.consumer_group_metadata().group_id == "g"
    with pytest.raises(RuntimeError, match="Consumer closed"):
        c.poll(0)
    c.close()  # idempotent


# -- transactions ------------------------------------------------------------------------------------------
def test_stale_consumer_group_metadata_fences_a_partition_that_came_back(conf: dict[str, Any],
                                                                         clients: list[Any]) -> None:
    """Group metadata taken while ``a`` owned every partition; some went to ``b``, which
    committed, and came back: offsets sent with the old metadata are refused (librdkafka
    fences by the generation in it), and the group keeps ``b``'s."""
    cfg = {**conf, "group.id": "etl", "auto.offset.reset": "earliest", "enable.auto.commit": False,
           "session.timeout.ms": 3000, "heartbeat.interval.ms": 50}
    for part in range(4):
        produce(conf, "in2", [b"%d" % i for i in range(4)], partition=part)

    def wait(cond: Callable[[], bool], *consumers: Any) -> None:
        deadline = time.monotonic() + 30
        while not cond():
            assert time.monotonic() < deadline
            for c in consumers:
                c.poll(0.02)

    a = ck.Consumer(cfg)
    clients.append(a)
    a.subscribe(["in2"])
    wait(lambda: len(a.assignment()) == 4, a)
    md = a.consumer_group_metadata()
    b = ck.Consumer(cfg)
    b.subscribe(["in2"])
    wait(lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, a, b)
    moved = b.assignment()[0]
    b.commit(offsets=[TP(moved.topic, moved.partition, 1)], asynchronous=False)
    b.close()
    wait(lambda: len(a.assignment()) == 4, a)
    p = ck.Producer({**conf, "transactional.id": "stale"})
    clients.append(p)
    p.init_transactions()
    p.begin_transaction()
    p.produce("out", b"y")
    p.send_offsets_to_transaction([TP(moved.topic, moved.partition, 3)], md)
    with pytest.raises(ck.KafkaException):
        p.commit_transaction()
    assert a.committed([TP(moved.topic, moved.partition)])[0].offset == 1


def test_group_metadata_taken_before_the_first_assignment_commits_offsets(conf: dict[str, Any],
                                                                          clients: list[Any]) -> None:
    """``md = consumer.consumer_group_metadata()`` once, right after ``subscribe()`` (before
    any assignment): librdkafka's carries generation -1, which the broker accepts; offsets
    sent with it commit (they were refused for ever as not assigned)."""
    produce(conf, "in", [b"i0", b"i1", b"i2"], partition=0)
    c = ck.Consumer({**conf, "group.id": "etl", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    clients.append(c)
    c.subscribe(["in"])
    md = c.consumer_group_metadata()
    msgs = drain(c, 3)
    p = ck.Producer({**conf, "transactional.id": "early-md"})
    clients.append(p)
    p.init_transactions()
    p.begin_transaction()
    p.produce("out", b"y")
    p.send_offsets_to_transaction([TP("in", 0, msgs[-1].offset() + 1)], md)
    p.commit_transaction()
    assert [x.offset for x in c.committed([TP("in", 0)])] == [3]


def test_send_offsets_to_transaction_commits_with_the_records(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "in", [b"i0", b"i1", b"i2"], partition=0)
    c = ck.Consumer({**conf, "group.id": "etl", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    clients.append(c)
    c.subscribe(["in"])
    msgs = drain(c, 3)
    p = ck.Producer({**conf, "transactional.id": "etl-1"})
    clients.append(p)
    p.init_transactions()
    reports: list[tuple[Any, int | None, int | None]] = []
    for attempt in ("abort", "commit"):
        p.begin_transaction()
        for m in msgs:
            p.produce("out", m.value().upper(), key=m.value(), on_delivery=lambda e, r: reports.append(
                (e and e.code(), r.partition(), r.offset())))
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata())
        if attempt == "abort":
            p.abort_transaction()
            assert [x.offset for x in c.committed([TP("in", 0)])] == [-1001]
        else:
            p.commit_transaction()
    assert [x.offset for x in c.committed([TP("in", 0)])] == [3]
    assert [r[0] for r in reports] == [-152] * 3 + [None] * 3
    # the delivery reports of committed messages name their partition (chosen by the key)
    parts = [ck.consistent(m.value(), 4) for m in msgs]
    # (like librdkafka's, reports come in order within a partition, not across partitions)
    expected = [parts[:i].count(pp) for i, pp in enumerate(parts)] if _producer._TX_REPORTS else [None] * 3
    assert sorted((r[1], r[2]) for r in reports[3:]) == sorted(zip(parts, expected))
    out = ck.Consumer({**conf, "group.id": "reader", "auto.offset.reset": "earliest"})
    clients.append(out)
    out.subscribe(["out"])
    assert sorted(m.value() for m in drain(out, 3)) == [b"I0", b"I1", b"I2"]
    assert out.poll(0.2) is None


def test_a_zombie_members_offsets_abort_the_transaction(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "in", [b"x"], partition=0)
    cfg = {**conf, "group.id": "etl", "auto.offset.reset": "earliest", "enable.auto.commit": False}
    zombie = ck.Consumer(cfg)
    clients.append(zombie)
    zombie.subscribe(["in"])
    assert len(drain(zombie, 1)) == 1
    p = ck.Producer({**conf, "transactional.id": "etl-z"})
    clients.append(p)
    p.init_transactions()
    p.begin_transaction()
    p.produce("out", b"X", partition=0)
    p.send_offsets_to_transaction([TP("in", 0, 1)], zombie.consumer_group_metadata())
    zombie.close()  # its partitions are gone before the transaction commits
    with pytest.raises(KafkaException) as info:
        p.commit_transaction()
    assert info.value.args[0].txn_requires_abort()
    assert kerr(p.begin_transaction)[0] == -172  # abortable state: only abort is allowed
    p.abort_transaction()
    check = ck.Consumer({**conf, "group.id": "check", "auto.offset.reset": "earliest"})
    clients.append(check)
    check.subscribe(["out"])
    assert check.poll(0.3) is None  # the record of the aborted transaction is not visible
    etl = ck.Consumer({**conf, "group.id": "etl"})
    clients.append(etl)
    assert [x.offset for x in etl.committed([TP("in", 0)])] == [-1001]  # nor its offsets
    p.begin_transaction()  # usable again
    p.abort_transaction()


def test_a_newer_producer_with_the_same_transactional_id_fences_the_older(conf: dict[str, Any],
                                                                          clients: list[Any]) -> None:
    old = ck.Producer({**conf, "transactional.id": "tid"})
    new = ck.Producer({**conf, "transactional.id": "tid"})
    clients.extend([old, new])
    old.init_transactions()
    old.begin_transaction()
    old.produce("t", b"zombie", partition=0)
    new.init_transactions()
    with pytest.raises(KafkaException) as info:
        old.commit_transaction()
    assert info.value.args[0].code() == -144
    assert info.value.args[0].fatal()
    new.begin_transaction()
    new.produce("t", b"live", partition=0)
    new.commit_transaction()
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.assign([TP("t", 0)])
    assert [m.value() for m in drain(c, 1)] == [b"live"]
    assert c.poll(0.2) is None


def test_transaction_state_errors(conf: dict[str, Any], clients: list[Any]) -> None:
    plain = ck.Producer(conf)
    clients.append(plain)
    assert kerr(plain.begin_transaction)[0] == -145  # _NOT_CONFIGURED
    p = ck.Producer({**conf, "transactional.id": "t"})
    clients.append(p)
    assert kerr(p.abort_transaction) == (-172, "Operation not valid in state Init")
    p.init_transactions()
    assert kerr(p.init_transactions) == (-172, "Operation not valid in state Ready")
    c = ck.Consumer({**conf, "group.id": "g"})
    clients.append(c)
    assert kerr(lambda: p.send_offsets_to_transaction([], c.consumer_group_metadata()))[0] == -172
    p.begin_transaction()
    with pytest.raises(TypeError):
        p.send_offsets_to_transaction([TP("t", 0, 0)], "not metadata")
    p.produce("t", b"x", partition=0)
    assert p.flush(0.1) == 1  # held by the transaction
    p.commit_transaction()
    assert len(p) == 0


# -- admin -------------------------------------------------------------------------------------------------
def test_admin_topics(conf: dict[str, Any]) -> None:
    a = AdminClient(conf)
    fs = a.create_topics([NewTopic("a", 3, 3, config={"retention.ms": "1000", "segment.bytes": "1048576"}),
                          NewTopic("b"), NewTopic("c", 0), NewTopic("d", 1, config={"bogus.key": "1"})])
    assert fs["a"].result() is None
    assert fs["b"].result() is None
    assert kerr(fs["c"].result)[0] == 37
    assert kerr(fs["d"].result) == (40, "Unknown topic config name: bogus.key")
    assert kerr(a.create_topics([NewTopic("a", 1)])["a"].result) == (36, "Topic 'a' already exists.")
    md = a.list_topics()
    assert {t: len(m.partitions) for t, m in md.topics.items()} == {"a": 3, "b": 4}
    assert a.create_topics([NewTopic("v", 2)], validate_only=True)["v"].result() is None
    assert "v" not in a.list_topics().topics
    assert a.create_partitions([NewPartitions("a", 5)])["a"].result() is None
    assert kerr(a.create_partitions([NewPartitions("a", 2)])["a"].result)[0] == 37
    assert kerr(a.create_partitions([NewPartitions("zz", 2)])["zz"].result)[0] == 3
    assert a.delete_topics(["b"])["b"].result() is None
    assert kerr(a.delete_topics(["b"])["b"].result)[0] == 3
    with pytest.raises(ValueError, match="non-empty"):
        a.create_topics([])
    assert a.describe_cluster().result().nodes[0].id == 1


def test_admin_configs(conf: dict[str, Any]) -> None:
    a = AdminClient(conf)
    a.create_topics([NewTopic("t", 1, config={"retention.ms": "5000", "max.message.bytes": "1048588"})])["t"].result()
    res = ConfigResource(ConfigResource.Type.TOPIC, "t")
    entries = a.describe_configs([res])[res].result()
    assert entries["retention.ms"].value == "5000"
    assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert entries["cleanup.policy"].is_default
    # set on the topic, though equal to the default: Kafka's topic override, not a default
    assert (entries["max.message.bytes"].is_default, entries["max.message.bytes"].source) == \
        (False, ConfigSource.DYNAMIC_TOPIC_CONFIG)
    change = ConfigResource("topic", "t", set_config={"cleanup.policy": "compact"})
    assert a.alter_configs([change])[change].result() is None
    entries = a.describe_configs([res])[res].result()
    assert entries["cleanup.policy"].value == "compact"
    assert entries["retention.ms"].value == "604800000"  # alter_configs replaces the whole config
    inc = ConfigResource(ConfigResource.Type.TOPIC, "t")
    inc.add_incremental_config(ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND))
    inc.add_incremental_config(ConfigEntry("max.message.bytes", "2048", incremental_operation=AlterConfigOpType.SET))
    assert a.incremental_alter_configs([inc])[inc].result() is None
    entries = a.describe_configs([res])[res].result()
    assert (entries["cleanup.policy"].value, entries["max.message.bytes"].value) == ("compact,delete", "2048")
    missing = ConfigResource(ConfigResource.Type.TOPIC, "nope")
    assert kerr(a.describe_configs([missing])[missing].result)[0] == 3
    broker = ConfigResource(ConfigResource.Type.BROKER, "1", set_config={"num.partitions": "2"})
    a.alter_configs([broker])[broker].result()
    a.create_topics([NewTopic("two")])["two"].result()
    assert len(a.list_topics().topics["two"].partitions) == 2


def test_admin_consumer_groups(conf: dict[str, Any], clients: list[Any]) -> None:
    produce(conf, "t", [b"a", b"b"], partition=0)
    a = AdminClient(conf)
    c = ck.Consumer({**conf, "group.id": "live", "auto.offset.reset": "earliest", "client.id": "svc"})
    clients.append(c)
    c.subscribe(["t"])
    drain(c, 2)
    c.commit(asynchronous=False)
    listing = a.list_consumer_groups().result()
    assert [(g.group_id, g.state) for g in listing.valid] == [("live", ConsumerGroupState.STABLE)]
    assert a.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result().valid == []
    d = a.describe_consumer_groups(["live", "ghost"])
    live = d["live"].result()
    assert live.state == ConsumerGroupState.STABLE
    assert [(m.client_id, sorted(x.partition for x in m.assignment.topic_partitions)) for m in live.members] == [
        ("svc", [0, 1, 2, 3])]
    assert d["ghost"].result().state == ConsumerGroupState.DEAD
    offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("live")])["live"].result()
    assert (offsets.group_id, [(x.partition, x.offset) for x in offsets.topic_partitions]) == (
        "live", [(0, 2)])  # only partitions with a stored offset were committed
    asked = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("live", [TP("t", 0), TP("u", 0)])])
    assert [x.offset for x in asked["live"].result().topic_partitions] == [2, -1001]
    req = [ConsumerGroupTopicPartitions("live", [TP("t", 0, 0)])]
    assert kerr(a.alter_consumer_group_offsets(req)["live"].result)[0] == 25  # active members
    assert kerr(a.delete_consumer_groups(["live"])["live"].result)[0] == 68
    c.close()
    assert a.alter_consumer_group_offsets(req)["live"].result().topic_partitions[0].offset == 0
    assert a.delete_consumer_groups(["live"])["live"].result() is None
    assert kerr(a.delete_consumer_groups(["live"])["live"].result)[0] == 69
    with pytest.raises(ValueError, match="single consumer group"):
        a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("a"), ConsumerGroupTopicPartitions("b")])


# -- serializing clients ---------------------------------------------------------------------------------
def test_serializing_producer_and_deserializing_consumer(conf: dict[str, Any], clients: list[Any]) -> None:
    contexts: list[tuple[str, str]] = []

    def ser(obj: Any, ctx: Any) -> bytes:
        contexts.append((ctx.topic, str(ctx.field)))
        return b"" if obj is None else str(obj).encode()

    p = ck.SerializingProducer({**conf, "key.serializer": ser, "value.serializer": ser})
    clients.append(p)
    p.produce("nums", key=7, value=1234, partition=0)
    p.flush()
    assert contexts == [("nums", "key"), ("nums", "value")]
    failing = ck.SerializingProducer({**conf, "key.serializer": lambda obj, ctx: 1 / 0})
    clients.append(failing)
    with pytest.raises(KafkaException) as info:
        failing.produce("nums", key=1, value=b"v")
    assert type(info.value).__name__ == "KeySerializationError"
    assert isinstance(info.value.exception, ZeroDivisionError)
    c = ck.DeserializingConsumer({**conf, "group.id": "g", "auto.offset.reset": "earliest",
                                  "enable.partition.eof": True, "value.deserializer": lambda b, ctx: int(b)})
    clients.append(c)
    c.assign([TP("nums", 0)])
    m = c.poll(5)
    assert (m.key(), m.value()) == (b"7", 1234)
    with pytest.raises(KafkaException) as info:  # the EOF event, raised as ConsumeError
        c.poll(5)
    assert type(info.value).__name__ == "ConsumeError"
    assert info.value.args[0].code() == -191
    with pytest.raises(NotImplementedError):
        c.consume(1)


def test_a_closed_routed_log_stops_routing(tmp_path: Path) -> None:
    routed = embedlog.open(tmp_path / "routed")
    registry.use_log(routed)
    try:
        routed.close()
        first = registry.log_for({"bootstrap.servers": "after:9092"})
        assert registry.log_for({"bootstrap.servers": "after:9092"}) is first  # not a new log per call
    finally:
        registry.reset()


# -- value classes -----------------------------------------------------------------------------------------
def test_pure_python_value_classes_mirror_the_real_ones() -> None:
    tp = _types.PyTopicPartition("t", 1, 5, "meta", 3)
    assert repr(tp) == "TopicPartition{topic=t,partition=1,offset=5,leader_epoch=3,error=None}"
    assert tp == _types.PyTopicPartition("t", 1)
    assert hash(tp) == hash("t") ^ 1
    tp.offset = 7
    with pytest.raises(AttributeError):
        tp.topic = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        _types.PyTopicPartition("t", "1")  # type: ignore[arg-type]
    err = _errors.PyKafkaError(_errors.ERR_PARTITION_EOF)
    assert (err.code(), err.name(), err.str()) == (-191, "_PARTITION_EOF", "Broker: No more messages")
    assert err == -191
    assert _errors.PyKafkaError.UNKNOWN_TOPIC_OR_PART == 3  # type: ignore[attr-defined]
    fatal = _errors.PyKafkaError(3, "why", fatal=True)
    assert repr(fatal) == 'KafkaError{FATAL,code=UNKNOWN_TOPIC_OR_PART,val=3,str="why"}'
    m = _types.PyMessage(topic="t", partition=-1, offset=-1001, value=b"abc")
    assert (m.partition(), m.offset(), len(m), m.headers(), m.timestamp(), m.error()) == (None, None, 3, None, (0, 0),
                                                                                          None)
    if real is not None:
        r = real.TopicPartition("t", 1, 5, "meta", 3)
        assert repr(r) == repr(_types.PyTopicPartition("t", 1, 5, "meta", 3))
        assert hash(r) == hash(_types.PyTopicPartition("t", 1))
        for code, _, _ in _errors._CODES:
            assert repr(real.KafkaError(code)) == repr(_errors.PyKafkaError(code))
        rn = real.admin.NewTopic("x", 2)
        pn = _admin_types.PyNewTopic("x", 2)
        assert (repr(rn), rn.replication_factor) == (repr(pn), pn.replication_factor)
        # the shim hands out the real classes when confluent-kafka is installed
        assert ck.TopicPartition is real.TopicPartition
        assert ck.KafkaException is real.KafkaException


def test_without_confluent_kafka_the_pure_python_classes_serve(tmp_path: Path) -> None:
    code = f"""
import sys
from embedlog.compat import confluent_kafka as ck
from embedlog.compat.confluent_kafka import _types, _errors
assert ck.TopicPartition is _types.PyTopicPartition and ck.KafkaError is _errors.PyKafkaError
conf = {{"bootstrap.servers": "pure:1", "embedlog.path": {str(tmp_path / "log")!r}}}
p = ck.Producer(conf)
reports = []
p.produce("t", b"v", key=b"k", on_delivery=lambda e, m: reports.append((e, m.offset(), type(m))))
assert p.flush() == 0 and reports == [(None, 0, _types.PyMessage)], reports
c = ck.Consumer({{**conf, "group.id": "g", "auto.offset.reset": "earliest", "enable.partition.eof": True}})
c.subscribe(["t"])
m = c.poll(10)
assert (m.value(), m.key(), m.error()) == (b"v", b"k", None), m
eof = c.poll(10)
assert eof.error() == ck.KafkaError._PARTITION_EOF, eof
try:
    c.seek(ck.TopicPartition("nope", 0, 0))
except ck.KafkaException as exc:
    assert exc.args[0].code() == -190
else:
    raise AssertionError("no error")
c.close()
print("ok")
"""
    env = {**os.environ, "EMBEDLOG_CONFLUENT_PURE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_messages_are_the_real_message_class_and_consume_hands_out_batches(conf: dict[str, Any],
                                                                            clients: list[Any]) -> None:
    """With confluent-kafka installed, delivery reports, consumed messages and events are
    ``confluent_kafka.Message`` (``isinstance`` in application code holds); ``consume()``
    hands a fetched batch out at once and still keeps positions and stored offsets."""
    p = ck.Producer(conf)
    reports: list[Any] = []
    for i in range(30):
        p.produce("batch", b"v%d" % i, key=b"k%d" % (i % 3), on_delivery=lambda e, m: reports.append(m))
    assert p.flush(10) == 0
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest", "enable.partition.eof": True,
                     "enable.auto.commit": False})
    clients.append(c)
    c.subscribe(["batch"])
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len([m for m in got if m.error() is None]) < 30 and time.monotonic() < deadline:
        got.extend(c.consume(num_messages=100, timeout=0.5))
    msgs = [m for m in got if m.error() is None]
    assert sorted(m.value() for m in msgs) == sorted(b"v%d" % i for i in range(30))
    assert all(m.latency() is None and m.leader_epoch() == 0 for m in msgs)
    ends: dict[int, int] = {}
    for m in msgs:
        ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)
    positions = c.position([TP("batch", p_) for p_ in range(4)])
    assert {tp.partition: tp.offset for tp in positions if tp.offset >= 0} == ends
    committed = c.commit(asynchronous=False)  # the stored offsets: one past each partition's last message
    assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == ends
    if real is not None:
        assert all(isinstance(m, real.Message) for m in [*reports, *got])
        assert all(r.latency() is not None and r.latency() >= 0 for r in reports)


def test_a_forked_child_cannot_poll_its_parents_group_consumer(conf: dict[str, Any], clients: list[Any]) -> None:
    """The shim hands out prefetched records before it looks at the group (at most every
    10 ms): a child polling right after the fork got the parent's next record, which the
    parent processes too.  It raises at once (a ``KafkaException``, as librdkafka's
    clients are not usable in a child either), and the parent goes on."""
    produce(conf, "a", [b"v0", b"v1", b"v2", b"v3"], partition=0)
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.subscribe(["a"])
    (first,) = drain(c, 1)
    assert first.value() == b"v0"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            got = c.poll(0.1)
            os.write(w, repr(None if got is None else got.value()).encode())
        except KafkaException as exc:
            os.write(w, b"KafkaException " + str(exc.args[0].str()).encode()[:40])
        except BaseException as exc:  # (reported to the parent)
            os.write(w, type(exc).__name__.encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(w)
    said = os.read(r, 200).decode()
    os.close(r)
    assert said.startswith("KafkaException this consumer is a member of group"), said
    assert [m.value() for m in drain(c, 3)] == [b"v1", b"v2", b"v3"]


def test_purge_fails_an_open_transactions_messages_and_its_commit(conf: dict[str, Any], clients: list[Any]) -> None:
    """``purge()`` left an open transaction's messages in it, and the commit wrote them.
    As librdkafka: they are reported ``_PURGE_QUEUE``, and the commit raises an abortable
    ``_INCONSISTENT``; nothing of the transaction is written."""
    p = ck.Producer({**conf, "transactional.id": "tx-purge"})
    clients.append(p)
    p.init_transactions(10)
    p.begin_transaction()
    reports: list[int | None] = []
    for i in range(3):
        p.produce("t", b"a%d" % i, partition=0, on_delivery=lambda e, m: reports.append(e and e.code()))
    p.purge()
    p.poll(0)
    assert reports == [ck.KafkaError._PURGE_QUEUE] * 3
    p.produce("t", b"later", partition=0, on_delivery=lambda e, m: reports.append(e and e.code()))
    code, text = kerr(lambda: p.commit_transaction(10))
    assert (code, text) == (ck.KafkaError._INCONSISTENT, "3 message(s) failed delivery (see individual delivery "
                                                         "reports)")
    p.abort_transaction(10)
    p.poll(0)
    assert reports == [ck.KafkaError._PURGE_QUEUE] * 4
    p.begin_transaction()  # (the next transaction commits as usual)
    p.produce("t", b"b", partition=0)
    p.commit_transaction(10)
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.assign([TP("t", 0)])
    assert [m.value() for m in drain(c, 1)] == [b"b"]


def test_a_producer_sends_again_to_a_topic_deleted_and_created_again(conf: dict[str, Any],
                                                                      clients: list[Any]) -> None:
    """A producer that had used a topic could never produce to it again once it was
    deleted (every delivery failed ``UNKNOWN_TOPIC_OR_PART``), though the cluster
    auto-creates topics: as librdkafka after its metadata refresh, the message goes to
    the topic created again.  Without auto-creation the failure stands."""
    a = AdminClient(conf)
    p = ck.Producer(conf)
    clients.append(p)
    reports: list[int | None] = []

    def cb(err: Any, msg: Any) -> None:
        reports.append(None if err is None else err.code())

    p.produce("events", b"1", on_delivery=cb, headers=[("h", b"v")])
    assert p.flush(5) == 0
    a.delete_topics(["events"])["events"].result(5)
    p.produce("events", b"2", on_delivery=cb, headers=[("h", b"v")])
    assert p.flush(5) == 0
    assert reports == [None, None]
    c = ck.Consumer({**conf, "group.id": "g", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.subscribe(["events"])
    (m,) = drain(c, 1)
    assert (m.value(), m.headers()) == (b"2", [("h", b"v")])
    strict = {**conf, "embedlog.auto.create.topics.enable": False}
    q = ck.Producer(strict)
    clients.append(q)
    q.produce("events", b"3", on_delivery=cb)
    assert q.flush(5) == 0
    a.delete_topics(["events"])["events"].result(5)
    q.produce("events", b"4", on_delivery=cb)
    q.flush(5)
    assert reports[2:] == [None, ck.KafkaError.UNKNOWN_TOPIC_OR_PART]


def test_alter_consumer_group_offsets_keeps_metadata_and_takes_offsets_past_the_end(conf: dict[str, Any],
                                                                                    clients: list[Any]) -> None:
    """As the real client: the offsets' metadata is committed (it was dropped), and an
    offset past the partition's end is accepted (Kafka never compares a committed offset
    with the log; it raised OFFSET_OUT_OF_RANGE) — by the admin client and by
    ``send_offsets_to_transaction`` alike."""
    produce(conf, "t", [b"x"] * 3, partition=0)
    a = AdminClient(conf)
    req = [ConsumerGroupTopicPartitions("g", [TP("t", 0, 1, metadata="meta-1"), TP("t", 1, 100)])]
    res = a.alter_consumer_group_offsets(req)["g"].result(5)
    assert [(x.partition, x.offset, x.metadata) for x in res.topic_partitions] == [(0, 1, "meta-1"), (1, 100, None)]
    c = ck.Consumer({**conf, "group.id": "g"})
    clients.append(c)
    got = c.committed([TP("t", 0), TP("t", 1)], timeout=5)
    assert [(x.offset, x.metadata) for x in got] == [(1, "meta-1"), (100, "")]
    p = ck.Producer({**conf, "transactional.id": "tx-past-end"})
    clients.append(p)
    p.init_transactions(10)
    p.begin_transaction()
    p.send_offsets_to_transaction([TP("t", 0, 50)], c.consumer_group_metadata())
    p.commit_transaction(10)
    assert c.committed([TP("t", 0)], timeout=5)[0].offset == 50


def test_list_groups_deprecated_but_there(conf: dict[str, Any], clients: list[Any]) -> None:
    """``AdminClient.list_groups()`` (deprecated, still in confluent-kafka 2.x) was missing:
    an application calling it got ``AttributeError`` under the fixture."""
    produce(conf, "t", [b"x"])
    c = ck.Consumer({**conf, "group.id": "lg", "client.id": "worker", "auto.offset.reset": "earliest"})
    clients.append(c)
    c.subscribe(["t"])
    assert len(drain(c, 1)) == 1
    a = AdminClient(conf)
    groups = a.list_groups(timeout=5)
    assert [(g.id, g.state, g.protocol_type, g.error) for g in groups] == [("lg", "Stable", "consumer", None)]
    assert [(m.client_id, m.id) for m in groups[0].members] == [("worker", c.memberid())]
    assert a.list_groups("nope") == []
    assert [g.id for g in a.list_groups("lg")] == ["lg"]


def test_delete_topics_takes_a_list_as_the_real_client(conf: dict[str, Any]) -> None:
    a = AdminClient(conf)
    with pytest.raises(TypeError, match="argument 1 must be list, not str"):
        a.delete_topics("t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Expected non-empty list of topic strings"):
        a.delete_topics([])


def test_a_commit_naming_an_unknown_partition_commits_the_others(conf: dict[str, Any], clients: list[Any]) -> None:
    """Kafka answers an OffsetCommit per partition: the unknown one fails with
    UNKNOWN_TOPIC_OR_PART (3), the others are committed (it failed whole, -190)."""
    produce(conf, "t", [b"x"] * 3, partition=0)
    c = ck.Consumer({**conf, "group.id": "g", "enable.auto.commit": False})
    clients.append(c)
    code, _ = kerr(lambda: c.commit(offsets=[TP("t", 0, 2), TP("t", 9, 1)], asynchronous=False))
    assert code == ck.KafkaError.UNKNOWN_TOPIC_OR_PART
    assert c.committed([TP("t", 0)], timeout=5)[0].offset == 2


def test_an_up_mirrors_progress_read_back_and_written_again_is_refused(conf: dict[str, Any]) -> None:
    """alter_consumer_group_offsets keeps metadata: a tool that reads an up mirror's
    offsets (with their progress metadata) and writes them back rewound moved the
    mirror's progress (it would send everything again); refused as without metadata."""
    produce(conf, "t", [b"x"] * 10, partition=0)
    lg = embedlog.open(conf["embedlog.path"])
    lg.commit_offsets("m", {embedlog.TopicPartition("t", 0): (7, '{"mirror":"up","remote":"t"}')})
    a = AdminClient(conf)
    listed = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("m")])["m"].result(5).topic_partitions
    rewound = [TP(x.topic, x.partition, 0, metadata=x.metadata) for x in listed]
    with pytest.raises(KafkaException, match="progress of the Kafka bridge's up mirror"):
        a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("m", rewound)])["m"].result(5)
    assert lg.committed_offsets("m")[embedlog.TopicPartition("t", 0)].offset == 7
    lg.close()


def test_a_commit_of_an_empty_topic_name_is_a_kafka_error_sync_or_async(conf: dict[str, Any],
                                                                         clients: list[Any]) -> None:
    """The unknown-partition check looked the name up before the commit's own checks:
    LMDB's refusal of an empty key escaped as a StorageError (read as a damaged log),
    from an asynchronous commit too, whose errors go to on_commit."""
    reports: list[Any] = []
    c = ck.Consumer({**conf, "group.id": "g", "enable.auto.commit": False,
                     "on_commit": lambda err, parts: reports.append(err)})
    clients.append(c)
    with pytest.raises(KafkaException):
        c.commit(offsets=[TP("", 0, 1)], asynchronous=False)
    c.commit(offsets=[TP("", 0, 1)], asynchronous=True)
    c.poll(0.2)
    assert len(reports) == 1
    assert reports[0] is not None
