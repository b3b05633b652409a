"""embedlog.compat.kafka_python: kafka-python's API over an embedded log.

Each test talks to its own cluster (a unique ``bootstrap_servers``, so a fresh
in-process log from the registry).  Where kafka-python is installed, its pure parts are
the oracle: its murmur2 partitioner, its config key lists, its error classes and codes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import embedlog
from embedlog.compat import registry
from embedlog.compat.kafka_python import (
    ConfigResource,
    ConfigResourceType,
    ConsumerRebalanceListener,
    ConsumerRecord,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    NewPartitions,
    NewTopic,
    OffsetAndMetadata,
    RecordMetadata,
    TopicPartition,
    admin,
    consumer,
    errors,
    producer,
)

_ids = itertools.count()


@pytest.fixture
def servers() -> Iterator[str]:
    """A bootstrap_servers value of its own (so a fresh log); the registry is reset after."""
    yield f"kp-{next(_ids)}:9092"
    registry.reset()


def admin_for(servers: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=servers)


def drain(consumer: KafkaConsumer, n: int, timeout: float = 10.0) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            out.extend(records)
    return out


# -- producing ----------------------------------------------------------------------------------
def test_send_returns_future_of_record_metadata(servers: str) -> None:
    admin_for(servers).create_topics([NewTopic("orders", num_partitions=3, replication_factor=1)])
    p = KafkaProducer(bootstrap_servers=servers)
    md = p.send("orders", b"v", key=b"user-1", headers=[("h", b"1")], timestamp_ms=1_700_000_000_000).get(timeout=10)
    assert md.topic == "orders"
    assert md.topic_partition == TopicPartition("orders", md.partition)
    assert md.offset == 0
    assert md.timestamp == 1_700_000_000_000
    assert (md.serialized_key_size, md.serialized_value_size, md.serialized_header_size) == (6, 1, 2)
    assert md.checksum is None
    fut = p.send("orders", None, key=b"user-1")  # a tombstone
    assert fut.get(10).offset == 1
    assert fut.succeeded()
    assert not fut.failed()
    assert fut.is_done
    p.close()


def test_keys_go_where_kafka_pythons_murmur2_puts_them(servers: str) -> None:
    admin_for(servers).create_topics([NewTopic("keyed", 7, 1)])
    p = KafkaProducer(bootstrap_servers=servers)
    keys = [f"key-{i}".encode() for i in range(60)] + [b"", b"21", b"foobar"]
    placed = {k: p.send("keyed", b"x", key=k).get(10).partition for k in keys}
    p.close()
    # Kafka's own test vector: murmur2(b"21") == -973932308
    assert placed[b"21"] == (-973932308 & 0x7FFFFFFF) % 7
    kafka_default = pytest.importorskip("kafka.partitioner.default")
    assert placed == {k: (kafka_default.murmur2(k) & 0x7FFFFFFF) % 7 for k in keys}


def test_null_keys_spread_over_partitions(servers: str) -> None:
    admin_for(servers).create_topics([NewTopic("spread", 4, 1)])
    p = KafkaProducer(bootstrap_servers=servers)
    parts = {p.send("spread", b"x").get(10).partition for _ in range(200)}
    p.close()
    assert len(parts) > 1  # kafka-python's DefaultPartitioner: a random partition per record


def test_callbacks_and_errbacks(servers: str) -> None:
    p = KafkaProducer(bootstrap_servers=servers)
    seen: list[Any] = []
    done = threading.Event()
    fut = p.send("cb", b"v")
    fut.add_callback(lambda tag, md: (seen.append((tag, md.offset)), done.set()), "tag")
    assert done.wait(10)
    fut.add_callback(lambda md: seen.append(("late", md.offset)))  # already done: called at once
    assert seen == [("tag", 0), ("late", 0)]
    # an error the broker would report lands in the future, not in send()
    admin_for(servers).create_topics([NewTopic("small", 1, 1, topic_configs={"max.message.bytes": "100"})])
    failed = p.send("small", b"x" * 500)
    errs: list[BaseException] = []
    failed.add_errback(errs.append)
    with pytest.raises(errors.MessageSizeTooLargeError):
        failed.get(10)
    assert failed.failed()
    assert isinstance(errs[0], errors.MessageSizeTooLargeError)
    p.close()


def test_send_validates_like_kafka_python(servers: str) -> None:
    p = KafkaProducer(bootstrap_servers=servers, max_request_size=1000)
    with pytest.raises(ValueError, match="Need at least one"):
        p.send("t", None, key=None)
    with pytest.raises(TypeError, match="headers must be list"):
        p.send("t", b"v", headers=(("a", b"b"),))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="headers items"):
        p.send("t", b"v", headers=[("a", "not bytes")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="Unsupported type"):
        p.send("t", "a str value")
    with pytest.raises(ValueError, match="Unrecognized partition"):
        p.send("t", b"v", partition=5)
    with pytest.raises(errors.MessageSizeTooLargeError):
        p.send("t", b"x" * 2000)
    p.close()
    with pytest.raises(errors.IllegalStateError, match="closed"):
        p.send("t", b"v")


def test_serializers_plain_callables_and_serializer_objects(servers: str) -> None:
    class Upper:
        def serialize(self, topic: str, headers: list[Any], data: Any) -> bytes:
            return f"{topic}:{data}".upper().encode()

    p = KafkaProducer(bootstrap_servers=servers, value_serializer=lambda v: json.dumps(v).encode(),
                      key_serializer=Upper())
    p.send("ser", {"a": 1}, key="k").get(10)
    p.send("ser", None, key="k").get(10)  # kafka-python calls the serializer on None too
    p.close()
    c = KafkaConsumer("ser", bootstrap_servers=servers, auto_offset_reset="earliest",
                      value_deserializer=lambda b: json.loads(b) if b is not None else "none!",
                      key_deserializer=lambda b: b.decode())
    recs = drain(c, 2)
    assert [(r.key, r.value) for r in recs] == [("SER:K", {"a": 1}), ("SER:K", None)]
    c.close()


def test_custom_partitioners_old_and_new_style(servers: str) -> None:
    admin_for(servers).create_topics([NewTopic("cp", 5, 1)])

    def old_style(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        return all_partitions[-1]

    class NewStyle:
        def partition(self, topic: str, key: Any, serialized_key: Any, value: Any, serialized_value: Any,
                      cluster: Any) -> int:
            return min(cluster.partitions_for_topic(topic)) + 1

    p1 = KafkaProducer(bootstrap_servers=servers, partitioner=old_style)
    p2 = KafkaProducer(bootstrap_servers=servers, partitioner=NewStyle())
    assert p1.send("cp", b"x", key=b"k").get(10).partition == 4
    assert p2.send("cp", b"x").get(10).partition == 1
    p1.close()
    p2.close()


def test_unknown_configs_are_rejected_like_kafka_python(servers: str) -> None:
    with pytest.raises(ValueError, match="Unrecognized configs"):
        KafkaProducer(bootstrap_servers=servers, not_a_config=1)
    with pytest.raises(errors.KafkaConfigurationError, match="Unrecognized configs"):
        KafkaConsumer(bootstrap_servers=servers, linger_ms=5)  # a producer key
    with pytest.raises(errors.KafkaConfigurationError):
        KafkaAdminClient(bootstrap_servers=servers, group_id="g")
    with pytest.raises(ValueError, match="codec"):
        KafkaProducer(bootstrap_servers=servers, compression_type="brotli")
    # irrelevant keys of the real client are accepted and ignored
    p = KafkaProducer(bootstrap_servers=[servers], security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                      sasl_plain_username="u", sasl_plain_password="p", ssl_cafile="/nope", acks="all",
                      compression_type="gzip", linger_ms=5, api_version=(2, 8, 0), client_id="me", retries=3)
    assert p.send("t", b"v").get(10).offset == 0
    p.close()


def test_config_keys_match_the_installed_kafka_python() -> None:
    kafka = pytest.importorskip("kafka")
    assert set(kafka.KafkaProducer.DEFAULT_CONFIG) <= set(producer.DEFAULT_CONFIG)
    assert set(kafka.KafkaConsumer.DEFAULT_CONFIG) <= set(consumer.DEFAULT_CONFIG)
    assert set(kafka.KafkaAdminClient.DEFAULT_CONFIG) <= set(admin.DEFAULT_CONFIG)


def test_struct_fields_match_the_installed_kafka_python() -> None:
    fetcher = pytest.importorskip("kafka.consumer.fetcher")
    future = pytest.importorskip("kafka.producer.future")
    structs = pytest.importorskip("kafka.structs")
    assert ConsumerRecord._fields == fetcher.ConsumerRecord._fields
    assert RecordMetadata._fields == future.RecordMetadata._fields
    assert OffsetAndMetadata._fields == structs.OffsetAndMetadata._fields


def test_errors_are_the_real_classes_too() -> None:
    real = pytest.importorskip("kafka.errors")
    for name in errors.__all__:
        ours = getattr(errors, name)
        if not isinstance(ours, type):
            continue
        if hasattr(real, name):
            assert issubclass(ours, getattr(real, name)), name
        if getattr(ours, "errno", None) is not None and real.for_code(ours.errno) is getattr(real, name):
            # (IncompatibleBrokerVersion shares code 35 with UnsupportedVersionError, which for_code gives)
            assert real.for_code(ours.errno).__name__ == name, name
            assert ours.retriable == real.for_code(ours.errno).retriable, name
    e = errors.UnknownTopicOrPartitionError("nope")
    assert isinstance(e, real.BrokerResponseError)
    assert e.retriable
    assert e.errno == 3
    assert str(e) == str(real.UnknownTopicOrPartitionError("nope"))


def test_auto_creation_off_makes_send_time_out(servers: str) -> None:
    registry.configure(servers, auto_create_topics=False)
    p = KafkaProducer(bootstrap_servers=servers)
    with pytest.raises(errors.KafkaTimeoutError):
        p.send("missing", b"v")
    admin_for(servers).create_topics([NewTopic("present", 2, 1)])
    assert p.send("present", b"v").get(10).offset == 0
    assert p.partitions_for("present") == {0, 1}
    p.close()


def test_auto_created_topics_take_the_cluster_default(servers: str) -> None:
    registry.configure(servers, num_partitions=3)
    p = KafkaProducer(bootstrap_servers=servers)
    assert p.partitions_for("fresh") == {0, 1, 2}
    p.close()


# -- consuming ----------------------------------------------------------------------------------
def produce(servers: str, topic: str, n: int, partitions: int = 1, **send: Any) -> None:
    admin = admin_for(servers)
    if topic not in admin.list_topics():
        admin.create_topics([NewTopic(topic, partitions, 1)])
    p = KafkaProducer(bootstrap_servers=servers)
    for i in range(n):
        p.send(topic, f"v{i}".encode(), key=f"k{i}".encode(), **send)
    p.flush()
    p.close()


def test_a_failing_deserializer_skips_nothing(servers: str) -> None:
    """The records polled before the one the deserializer fails on are returned; the
    poll after raises its exception, and again, until the application seeks past it;
    the records after it, in every partition, come then. Nothing is skipped."""
    admin_for(servers).create_topics([NewTopic("des", 2, 1)])
    p = KafkaProducer(bootstrap_servers=servers)
    for i in range(12):
        p.send("des", f"v{i}".encode(), partition=i % 2)  # v5: partition 1, offset 2
    p.flush()
    p.close()

    def strict(b: bytes) -> str:
        if b == b"v5":
            raise ValueError("cannot read v5")
        return b.decode()

    c = KafkaConsumer("des", bootstrap_servers=servers, auto_offset_reset="earliest", value_deserializer=strict,
                      enable_auto_commit=False)
    got: list[str] = []
    messages: list[str] = []
    raised: list[int] = []  # the position of partition 1 at each error
    deadline = time.monotonic() + 20
    while len(got) < 11:
        assert time.monotonic() < deadline, f"got {got}"
        try:
            for records in c.poll(timeout_ms=200, max_records=50).values():
                got.extend(r.value for r in records)
        except ValueError as exc:
            messages.append(str(exc))
            raised.append(c.position(TopicPartition("des", 1)))
            if len(raised) == 2:  # raised again: skip it, as an application that logs and moves on
                c.seek(TopicPartition("des", 1), 3)
    assert sorted(got, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(12) if i != 5]
    assert raised == [2, 2]
    assert messages == ["cannot read v5"] * 2
    c.close()


def test_poll_returns_records_by_partition(servers: str) -> None:
    produce(servers, "t", 30, partitions=3, headers=[("a", b"1"), ("a", b"2")])
    c = KafkaConsumer("t", bootstrap_servers=servers, auto_offset_reset="earliest", max_poll_records=7)
    first = c.poll(timeout_ms=5000)
    assert sum(map(len, first.values())) == 7
    recs = [r for rs in first.values() for r in rs] + drain(c, 23)
    assert len(recs) == 30
    assert sorted(r.value for r in recs) == sorted(f"v{i}".encode() for i in range(30))
    for tp, rs in first.items():
        assert all(TopicPartition(r.topic, r.partition) == tp for r in rs)
        assert [r.offset for r in rs] == list(range(rs[0].offset, rs[0].offset + len(rs)))
    r = recs[0]
    assert r.headers == [("a", b"1"), ("a", b"2")]
    assert (r.timestamp_type, r.leader_epoch, r.serialized_header_size) == (0, 0, 4)
    assert c.poll(timeout_ms=0) == {}
    with pytest.raises(ValueError, match="negative"):
        c.poll(timeout_ms=-1)
    with pytest.raises(ValueError, match="positive"):
        c.poll(max_records=0)
    c.close()
    with pytest.raises(errors.IllegalStateError):
        c.poll()


def test_latest_is_the_default_reset(servers: str) -> None:
    produce(servers, "late", 3)
    c = KafkaConsumer("late", bootstrap_servers=servers)
    assert c.poll(timeout_ms=100) == {}
    produce(servers, "late", 2)
    assert [r.offset for r in drain(c, 2)] == [3, 4]
    c.close()


def test_iteration_stops_after_consumer_timeout_and_moves_one_record_at_a_time(servers: str) -> None:
    produce(servers, "it", 10)
    c = KafkaConsumer("it", bootstrap_servers=servers, group_id="g", auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=300)
    tp = TopicPartition("it", 0)
    got = []
    for rec in c:
        got.append(rec.offset)
        if len(got) == 3:
            break
    # kafka-python's position follows the iterator, record by record
    assert c.position(tp) == 3
    c.commit()
    assert c.committed(tp) == 3
    assert c.committed(tp, metadata=True) == OffsetAndMetadata(3, "", -1)
    # poll() after an abandoned iteration starts at the next record: nothing lost
    assert [r.offset for r in drain(c, 7)] == list(range(3, 10))
    t0 = time.monotonic()
    assert list(c) == []
    assert time.monotonic() - t0 >= 0.25
    c.close()


def test_seek_positions_and_offsets(servers: str) -> None:
    produce(servers, "s", 5, timestamp_ms=None)
    tp = TopicPartition("s", 0)
    c = KafkaConsumer(bootstrap_servers=servers, auto_offset_reset="earliest")
    c.assign([tp])
    assert c.assignment() == {tp}
    assert c.beginning_offsets([tp]) == {tp: 0}
    assert c.end_offsets([tp]) == {tp: 5}
    assert c.highwater(tp) == 5
    c.seek(tp, 3)
    assert c.position(tp) == 3
    assert [r.offset for r in drain(c, 2)] == [3, 4]
    c.seek_to_beginning()
    assert c.position(tp) == 0
    c.seek_to_end(tp)
    assert c.position(tp) == 5
    with pytest.raises(ValueError, match="Offset must be int"):
        c.seek(tp, -1)
    with pytest.raises(ValueError, match="Unassigned"):
        c.seek(TopicPartition("s", 9), 0)
    with pytest.raises(errors.IllegalStateError, match="not assigned"):
        c.position(TopicPartition("other", 0))
    with pytest.raises(errors.IllegalStateError):
        c.subscribe(["s"])  # assign() and subscribe() do not mix
    c.close()


def test_offsets_for_times(servers: str) -> None:
    admin_for(servers).create_topics([NewTopic("times", 1, 1)])
    p = KafkaProducer(bootstrap_servers=servers)
    for i, ts in enumerate((1000, 2000, 3000)):
        p.send("times", b"%d" % i, timestamp_ms=ts)
    p.flush()
    tp = TopicPartition("times", 0)
    c = KafkaConsumer(bootstrap_servers=servers)
    found = c.offsets_for_times({tp: 1500})
    assert found[tp] is not None
    assert (found[tp].offset, found[tp].timestamp) == (1, 2000)
    assert c.offsets_for_times({tp: 9999}) == {tp: None}
    with pytest.raises(ValueError):
        c.offsets_for_times({tp: -5})
    c.close()
    p.close()


def test_pause_and_resume(servers: str) -> None:
    produce(servers, "pr", 20, partitions=2)
    c = KafkaConsumer("pr", bootstrap_servers=servers, auto_offset_reset="earliest")
    drain(c, 0)
    p0 = TopicPartition("pr", 0)
    c.pause(p0)
    assert c.paused() == {p0}
    got = drain(c, 20, timeout=0.5)
    assert got
    assert {r.partition for r in got} == {1}
    c.resume(p0)
    assert {r.partition for r in drain(c, 20 - len(got))} == {0}
    c.close()


def test_group_members_split_partitions_and_resume_from_commits(servers: str) -> None:
    produce(servers, "g", 40, partitions=4)
    kw: dict[str, Any] = {"bootstrap_servers": servers, "group_id": "billing", "auto_offset_reset": "earliest",
                          "enable_auto_commit": False}
    c1 = KafkaConsumer("g", **kw)
    c2 = KafkaConsumer("g", **kw)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        c1.poll(timeout_ms=50)
        c2.poll(timeout_ms=50)
        a1, a2 = c1.assignment(), c2.assignment()
        if a1 and a2 and not a1 & a2 and len(a1 | a2) == 4:
            break
    else:
        pytest.fail(f"the group did not settle: {c1.assignment()} {c2.assignment()}")
    c1.close(autocommit=False)
    c2.close(autocommit=False)
    # commit part of the way, then a new member resumes there
    c3 = KafkaConsumer("g", **kw)
    recs = drain(c3, 40)
    assert len(recs) == 40
    tp = TopicPartition("g", recs[0].partition)
    c3.commit({tp: OffsetAndMetadata(2, "meta", -1)})
    assert c3.committed(tp) == 2
    c3.close(autocommit=False)
    offsets = admin_for(servers).list_consumer_group_offsets("billing")
    assert offsets[tp].offset == 2
    c4 = KafkaConsumer("g", **kw)
    again = drain(c4, 40 - 8)
    assert min(r.offset for r in again if r.partition == tp.partition) == 2
    c4.close()


def test_rebalance_listener_and_fenced_commit(servers: str) -> None:
    produce(servers, "rb", 4, partitions=2)
    events: list[tuple[str, list[TopicPartition]]] = []

    class Listener(ConsumerRebalanceListener):
        def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
            events.append(("assigned", sorted(assigned)))

        def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
            events.append(("revoked", sorted(revoked)))

    kw: dict[str, Any] = {"bootstrap_servers": servers, "group_id": "rb-group", "auto_offset_reset": "earliest",
                          "enable_auto_commit": False}
    c1 = KafkaConsumer(**kw)
    c1.subscribe(["rb"], listener=Listener())
    drain(c1, 4)
    assert events[:2] == [("revoked", []), ("assigned", [TopicPartition("rb", 0), TopicPartition("rb", 1)])]
    c2 = KafkaConsumer("rb", **kw)
    deadline = time.monotonic() + 15
    while not c2.assignment() and time.monotonic() < deadline:
        c1.poll(timeout_ms=50)
        c2.poll(timeout_ms=50)
    assert c2.assignment()
    assert any(kind == "revoked" and parts for kind, parts in events)
    moved = next(iter(c2.assignment()))
    with pytest.raises(errors.CommitFailedError):
        c1.commit({moved: OffsetAndMetadata(1, "", -1)})
    c1.close()
    c2.close()


def test_eager_first_join_calls_revoked_with_the_empty_set_before_assigned(servers: str) -> None:
    """kafka-python 3.0 (_on_join_prepare_async, EAGER: its default range/roundrobin
    assignors) calls on_partitions_revoked before every join, the first one included."""
    produce(servers, "fj", 1)
    calls: list[tuple[str, list[TopicPartition]]] = []

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
            calls.append(("revoked", sorted(revoked)))

        def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
            calls.append(("assigned", sorted(assigned)))

    c = KafkaConsumer(bootstrap_servers=servers, group_id="fj", auto_offset_reset="earliest")
    c.subscribe(["fj"], listener=Listener())
    assert len(drain(c, 1)) == 1
    assert calls == [("revoked", []), ("assigned", [TopicPartition("fj", 0)])]
    c.close()
    assert calls[-1] == ("revoked", [TopicPartition("fj", 0)])


def _async_listener_bases() -> list[type]:
    from embedlog.compat.kafka_python import AsyncConsumerRebalanceListener  # noqa: PLC0415

    bases: list[type] = [AsyncConsumerRebalanceListener]
    try:  # kafka-python 3's own, which applications subclass
        from kafka import AsyncConsumerRebalanceListener as Real  # noqa: PLC0415
    except ImportError:
        pass
    else:
        bases.append(Real)
    return bases


@pytest.mark.parametrize("base", _async_listener_bases(), ids=lambda b: b.__module__)
def test_an_async_rebalance_listener_is_awaited(servers: str, base: type) -> None:
    """kafka-python 3 awaits the hooks of an AsyncConsumerRebalanceListener; the shim
    called them and dropped the coroutines, so they never ran."""
    produce(servers, "al", 2)
    calls: list[tuple[str, list[TopicPartition]]] = []

    class Listener(base):  # type: ignore[misc,valid-type]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            await asyncio.sleep(0)
            calls.append(("revoked", sorted(revoked)))
            if revoked:
                c.commit()

        async def on_partitions_assigned(self, assigned: Any) -> None:
            await asyncio.sleep(0)
            calls.append(("assigned", sorted(assigned)))

    c = KafkaConsumer(bootstrap_servers=servers, group_id="al", auto_offset_reset="earliest",
                      enable_auto_commit=False)
    c.subscribe(["al"], listener=Listener())
    assert len(drain(c, 2)) == 2
    c.close()
    assert calls == [("revoked", []), ("assigned", [TopicPartition("al", 0)]), ("revoked", [TopicPartition("al", 0)])]
    c2 = KafkaConsumer(bootstrap_servers=servers, group_id="al", enable_auto_commit=False)
    assert c2.committed(TopicPartition("al", 0)) == 2  # (the async revoke hook's commit)
    c2.close()


def test_a_listener_commits_on_revoke_at_close(servers: str) -> None:
    """kafka-python 3.0 calls on_partitions_revoked from close() before leaving, so that
    the listener can still commit while the member owns the partitions (the usual place
    to commit): the commit works, and close() raises nothing."""
    produce(servers, "rc", 3)

    class CommitOnRevoke(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
            if revoked:
                c.commit()

        def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
            pass

    c = KafkaConsumer(bootstrap_servers=servers, group_id="rc", auto_offset_reset="earliest",
                      enable_auto_commit=False)
    c.subscribe(["rc"], listener=CommitOnRevoke())
    assert len(drain(c, 3)) == 3
    c.close()
    c2 = KafkaConsumer(bootstrap_servers=servers, group_id="rc", enable_auto_commit=False)
    assert c2.committed(TopicPartition("rc", 0)) == 3
    c2.close()


def test_a_failing_rebalance_listener_surfaces_from_poll(servers: str) -> None:
    """kafka-python 3.0: the listener's exception is logged, the rebalance completes, then
    poll() raises KafkaError("User rebalance callback throws an error") from it."""
    produce(servers, "lx", 2)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
            raise RuntimeError("listener boom")

        def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
            pass

    c = KafkaConsumer(bootstrap_servers=servers, group_id="lx", auto_offset_reset="earliest")
    c.subscribe(["lx"], listener=Listener())
    with pytest.raises(errors.KafkaError, match="User rebalance callback throws an error") as info:
        c.poll(timeout_ms=2000)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert c.assignment() == {TopicPartition("lx", 0)}  # the rebalance went through
    assert len(drain(c, 2)) == 2
    c.close()


def test_commit_metadata_is_returned_by_committed_and_the_admin(servers: str) -> None:
    produce(servers, "md", 3)
    c = KafkaConsumer("md", bootstrap_servers=servers, group_id="gmd", auto_offset_reset="earliest",
                      enable_auto_commit=False)
    assert len(drain(c, 3)) == 3
    tp = TopicPartition("md", 0)
    c.commit({tp: OffsetAndMetadata(2, "batch-7", -1)})
    assert c.committed(tp, metadata=True) == OffsetAndMetadata(2, "batch-7", -1)
    assert c.committed(tp) == 2
    assert admin_for(servers).list_consumer_group_offsets("gmd") == {tp: OffsetAndMetadata(2, "batch-7", -1)}
    c.close(autocommit=False)


def test_a_commit_beyond_the_end_is_taken_as_the_broker_takes_it(servers: str) -> None:
    produce(servers, "be", 3)
    c = KafkaConsumer(bootstrap_servers=servers, group_id="gbe", enable_auto_commit=False)
    tp = TopicPartition("be", 0)
    c.assign([tp])
    c.commit({tp: OffsetAndMetadata(100, "", -1)})
    assert c.committed(tp) == 100
    c.close(autocommit=False)


def test_commit_async_calls_back_with_the_committed_offsets_and_none(servers: str) -> None:
    """As kafka-python's coordinator: ``callback(offsets, response)``, ``offsets`` what was
    committed (the consumed positions without ``offsets``), ``response`` None on success."""
    produce(servers, "ca", 3)
    c = KafkaConsumer("ca", bootstrap_servers=servers, group_id="gca", auto_offset_reset="earliest",
                      enable_auto_commit=False)
    drain(c, 3)
    got: list[tuple[Any, Any]] = []
    future = c.commit_async(callback=lambda offsets, response: got.append((offsets, response)))
    assert future.get() is None
    assert got == [({TopicPartition("ca", 0): OffsetAndMetadata(3, "", -1)}, None)]
    explicit = {TopicPartition("ca", 0): OffsetAndMetadata(1, "", -1)}
    c.commit_async(explicit, callback=lambda offsets, response: got.append((offsets, response)))
    assert got[1] == (explicit, None)
    assert c.committed(TopicPartition("ca", 0)) == 1
    c.close()


def test_commit_takes_what_kafka_python_takes_and_commit_async_returns_its_future(servers: str) -> None:
    """kafka-python 3's coordinator refuses offsets that are not ``{TopicPartition:
    OffsetAndMetadata}`` (a plain int passed the shim and failed with the real client);
    ``commit_async`` returns a ``kafka.future.Future`` (callbacks, errbacks, chain);
    ``partitions_for_topic`` of an unknown topic is an empty set, not None."""
    produce(servers, "ca", 2)
    c = KafkaConsumer("ca", bootstrap_servers=servers, group_id="ca", auto_offset_reset="earliest",
                      enable_auto_commit=False)
    assert len(drain(c, 2)) == 2
    tp = TopicPartition("ca", 0)
    for bad in ({tp: 1}, {tp: (1, "")}, {("ca", 0): OffsetAndMetadata(1, "", -1)}):
        with pytest.raises(TypeError, match=r"dict\[TopicPartition, OffsetAndMetadata\]"):
            c.commit(bad)
    got: list[Any] = []
    future = c.commit_async({tp: OffsetAndMetadata(1, "", -1)})
    future.add_callback(got.append).add_errback(lambda exc: got.append(("failed", exc)))
    future.add_both(lambda value: got.append(("both", value)))

    class Chained:
        def success(self, value: Any) -> None:
            got.append(("chained", value))

        def failure(self, exc: BaseException) -> None:
            got.append(("chained failure", exc))

    future.chain(Chained())
    assert future.succeeded()
    assert got == [None, ("both", None), ("chained", None)]
    assert c.committed(tp) == 1
    assert c.partitions_for_topic("no-such-topic") == set()
    c.close()


def test_commit_needs_a_group(servers: str) -> None:
    produce(servers, "ng", 1)
    c = KafkaConsumer("ng", bootstrap_servers=servers)
    with pytest.raises(errors.IllegalStateError, match="group_id"):
        c.commit()
    with pytest.raises(errors.IllegalStateError, match="group_id"):
        c.committed(TopicPartition("ng", 0))
    c.close()


def test_subscribe_waits_for_topics_that_do_not_exist_yet(servers: str) -> None:
    registry.configure(servers, auto_create_topics=False)
    c = KafkaConsumer("later", bootstrap_servers=servers, auto_offset_reset="earliest")
    assert c.poll(timeout_ms=100) == {}
    assert c.subscription() == {"later"}
    produce(servers, "later", 3)
    assert [r.value for r in drain(c, 3)] == [b"v0", b"v1", b"v2"]
    c.close()


def test_pattern_subscription_follows_new_topics(servers: str) -> None:
    produce(servers, "logs.a", 1)
    c = KafkaConsumer(bootstrap_servers=servers, auto_offset_reset="earliest")
    c.subscribe(pattern=r"logs\..*")
    assert [r.topic for r in drain(c, 1)] == ["logs.a"]
    produce(servers, "logs.b", 1)
    produce(servers, "other", 1)
    assert [r.topic for r in drain(c, 1)] == ["logs.b"]
    assert c.subscription() == {"logs.a", "logs.b"}
    c.close()


def test_a_pattern_is_anchored_at_the_start_only(servers: str) -> None:
    """As kafka-python's and aiokafka's ``re.match``: a prefix pattern ("orders-") took
    every topic starting with it (the shims' fullmatch took none, and read nothing)."""
    for t in ("orders-eu", "orders-us", "other"):
        produce(servers, t, 1)
    c = KafkaConsumer(bootstrap_servers=servers, group_id="g", auto_offset_reset="earliest")
    c.subscribe(pattern="orders-")
    assert sorted(r.topic for r in drain(c, 2)) == ["orders-eu", "orders-us"]
    assert c.subscription() == {"orders-eu", "orders-us"}
    c.close()


def test_the_sticky_assignor_is_eager(servers: str) -> None:
    """kafka-python's (and aiokafka's) StickyPartitionAssignor is eager (KIP-54): a join
    revokes every partition, then assigns the new set; it ran as cooperative-sticky, so a
    member that rebuilt its state on assign saw only a revoke of two and no assign."""
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor  # noqa: PLC0415

    produce(servers, "st", 1)
    events: list[tuple[str, list[int]]] = []

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: Any) -> None:
            events.append(("revoked", sorted(tp.partition for tp in revoked)))

        def on_partitions_assigned(self, assigned: Any) -> None:
            events.append(("assigned", sorted(tp.partition for tp in assigned)))

    admin_for(servers).create_partitions({"st": NewPartitions(4)})
    sticky = (StickyPartitionAssignor,)
    c1 = KafkaConsumer(bootstrap_servers=servers, group_id="gs", partition_assignment_strategy=sticky)
    c1.subscribe(["st"], listener=Listener())
    c1.poll(timeout_ms=500)
    assert events == [("revoked", []), ("assigned", [0, 1, 2, 3])]  # (eager: kafka-python revokes nothing first)
    c2 = KafkaConsumer(bootstrap_servers=servers, group_id="gs", partition_assignment_strategy=sticky)
    c2.subscribe(["st"])
    deadline = time.monotonic() + 30
    while len(c2.assignment()) < 2 and time.monotonic() < deadline:
        c1.poll(timeout_ms=50)
        c2.poll(timeout_ms=50)
    c1.poll(timeout_ms=200)
    assert events[2] == ("revoked", [0, 1, 2, 3])
    assert events[-1][0] == "assigned"
    assert len(events[-1][1]) == 2
    c1.close()
    c2.close()


# -- clusters and the registry --------------------------------------------------------------------
def test_clients_meet_by_bootstrap_servers(servers: str) -> None:
    KafkaProducer(bootstrap_servers=servers).send("m", b"here").get(10)
    KafkaProducer(bootstrap_servers=servers + "-elsewhere").send("m", b"there").get(10)
    c = KafkaConsumer("m", bootstrap_servers=[servers], auto_offset_reset="earliest")
    assert [r.value for r in drain(c, 1)] == [b"here"]
    assert drain(c, 1, timeout=0.3) == []
    c.close()


def test_spellings_of_one_bootstrap_list_are_one_log() -> None:
    """Port 9092 when none is given (kafka-python's default is ``"localhost"``), a
    ``PLAINTEXT://`` scheme, order and spaces: the same brokers, so the same log."""
    try:
        KafkaProducer(bootstrap_servers="spell-a").send("m", b"x").get(10)
        for spelling in ("spell-a:9092", "PLAINTEXT://spell-a:9092", ["spell-a:9092"], "Spell-A"):
            c = KafkaConsumer("m", bootstrap_servers=spelling, auto_offset_reset="earliest")
            assert [r.value for r in drain(c, 1)] == [b"x"], spelling
            c.close()
        KafkaProducer(bootstrap_servers="spell-b:9092, spell-c").send("m", b"y").get(10)
        c = KafkaConsumer("m", bootstrap_servers=["spell-c:9092", "spell-b"], auto_offset_reset="earliest")
        assert [r.value for r in drain(c, 1)] == [b"y"]
        c.close()
        other = KafkaConsumer("m", bootstrap_servers="spell-a:9093", auto_offset_reset="earliest")
        assert drain(other, 1, timeout=0.3) == []  # (another port: another broker)
        other.close()
    finally:
        registry.reset()


def test_embedlog_path_names_a_log_directory(tmp_path: Path) -> None:
    path = tmp_path / "log"
    p = KafkaProducer(bootstrap_servers="anything", embedlog_path=str(path))
    p.send("d", b"on disk").get(10)
    p.close()
    registry.reset()
    with embedlog.open(path) as log:
        assert log.describe_topic("d").records == 1


# -- admin --------------------------------------------------------------------------------------
def test_admin_topics(servers: str) -> None:
    admin = admin_for(servers)
    res = admin.create_topics([NewTopic("a", 2, 1, topic_configs={"retention.ms": "1000"}), NewTopic("b")])
    assert [(t["name"], t["num_partitions"], t["error_code"]) for t in res["topics"]] == [("a", 2, 0), ("b", 1, 0)]
    with pytest.raises(errors.TopicAlreadyExistsError):
        admin.create_topics([NewTopic("a", 2, 1)])
    quiet = admin.create_topics([NewTopic("a", 2, 1)], raise_errors=False)
    assert quiet["topics"][0]["error_code"] == 36
    with pytest.raises(errors.InvalidPartitionsError):
        admin.create_topics([NewTopic("zero", 0, 1)])
    with pytest.raises(errors.InvalidConfigurationError):
        admin.create_topics([NewTopic("bad", 1, 1, topic_configs={"cleanup.policy": "sometimes"})])
    with pytest.raises(errors.InvalidTopicError):
        admin.create_topics([NewTopic("bad name!", 1, 1)])
    assert sorted(admin.list_topics()) == ["a", "b"]
    desc = admin.describe_topics(["a"])
    assert [p["partition_index"] for p in desc[0]["partitions"]] == [0, 1]
    admin.create_partitions({"a": NewPartitions(total_count=5)})
    assert len(admin.describe_topics(["a"])[0]["partitions"]) == 5
    with pytest.raises(errors.InvalidPartitionsError):
        admin.create_partitions({"a": NewPartitions(3)})
    admin.delete_topics(["b"])
    with pytest.raises(errors.UnknownTopicOrPartitionError):
        admin.delete_topics(["b"])
    assert admin.list_topics() == ["a"]


def test_admin_takes_kafka_python_3_forms_and_answers_in_its_shapes(servers: str) -> None:
    """kafka-python 3 documents a list of names for ``create_topics`` and
    ``{topic: {"count": n}}`` for ``create_partitions`` (both crashed), and answers
    ``create_topics``/``delete_topics`` without ``throttle_time_ms``, the deleted topics
    under ``"topics"``."""
    admin = admin_for(servers)
    res = admin.create_topics(["n1", "n2"])
    assert set(res) == {"topics"}
    assert [(t["name"], t["num_partitions"]) for t in res["topics"]] == [("n1", 1), ("n2", 1)]
    admin.create_partitions({"n1": {"count": 4, "assignments": [[0], [0], [0]]}})
    assert len(admin.describe_topics(["n1"])[0]["partitions"]) == 4
    deleted = admin.delete_topics(["n2"])
    assert set(deleted) == {"topics"}
    assert [(t["name"], t["error_code"]) for t in deleted["topics"]] == [("n2", 0)]


def test_close_closes_serializers_and_deserializers(servers: str) -> None:
    """As kafka-python's ``close()``: each (de)serializer that has ``close()`` is closed."""
    closed: list[str] = []

    class Codec:
        def __init__(self, name: str) -> None:
            self.name = name

        def __call__(self, data: Any) -> Any:
            return data

        def close(self) -> None:
            closed.append(self.name)

    p = KafkaProducer(bootstrap_servers=servers, key_serializer=Codec("ks"), value_serializer=Codec("vs"))
    p.send("sc", b"v", key=b"k").get(5)
    p.close()
    c = KafkaConsumer("sc", bootstrap_servers=servers, key_deserializer=Codec("kd"), value_deserializer=bytes)
    c.close()
    assert closed == ["ks", "vs", "kd"]


def test_admin_configs(servers: str) -> None:
    admin = admin_for(servers)
    admin.create_topics([NewTopic("c", 1, 1)])
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "c", configs={"retention.ms": "5000"})])
    got = admin.describe_configs([ConfigResource("topic", "c")])
    assert got["TOPIC"]["c"]["retention.ms"]["value"] == "5000"
    with pytest.raises(errors.InvalidConfigurationError):
        admin.alter_configs([ConfigResource("TOPIC", "c", configs={"retention.ms": "soon"})])


def test_admin_groups(servers: str) -> None:
    produce(servers, "gt", 5)
    c = KafkaConsumer("gt", bootstrap_servers=servers, group_id="grp", auto_offset_reset="earliest")
    drain(c, 5)
    c.commit()
    admin = admin_for(servers)
    assert admin.list_consumer_groups() == [("grp", "consumer")]
    assert admin.describe_groups(["grp"])["grp"]["members"][0]["member_assignment"]["assignment"] == [
        TopicPartition("gt", 0)]
    assert admin.list_group_offsets(["grp"]) == {"grp": {TopicPartition("gt", 0): OffsetAndMetadata(5, "", -1)}}
    assert admin.list_group_offsets("grp") == admin.list_group_offsets(["grp"])  # (one id: kafka-python 3)
    assert admin.delete_groups(["grp"])[0][1] is not None  # a live member: refused
    c.close()
    admin.alter_group_offsets("grp", {TopicPartition("gt", 0): OffsetAndMetadata(1, "", -1)})
    assert admin.list_consumer_group_offsets("grp")[TopicPartition("gt", 0)].offset == 1
    # its metadata kept (it was dropped), and past the end accepted, as Kafka does
    admin.alter_group_offsets("grp", {TopicPartition("gt", 0): OffsetAndMetadata(100, "note", -1)})
    assert admin.list_consumer_group_offsets("grp")[TopicPartition("gt", 0)][:2] == (100, "note")
    assert admin.delete_groups(["grp"]) == [("grp", None)]
    assert admin.list_groups() == []


def test_admin_accepts_the_real_kafka_python_objects(servers: str) -> None:
    real_admin = pytest.importorskip("kafka.admin")
    admin = admin_for(servers)
    admin.create_topics([real_admin.NewTopic("real", num_partitions=3, replication_factor=1)])
    admin.create_partitions({"real": real_admin.NewPartitions(total_count=4)})
    admin.alter_configs([real_admin.ConfigResource(real_admin.ConfigResourceType.TOPIC, "real",
                                                   configs={"retention.ms": "7"})])
    assert admin.describe_configs([real_admin.ConfigResource("TOPIC", "real")])["TOPIC"]["real"][
        "retention.ms"]["value"] == "7"
    assert len(admin.describe_topics(["real"])[0]["partitions"]) == 4
    real_tp = pytest.importorskip("kafka.structs").TopicPartition
    produce(servers, "real", 2)
    c = KafkaConsumer(bootstrap_servers=servers, auto_offset_reset="earliest")
    c.assign([real_tp("real", p) for p in range(4)])
    recs = drain(c, 2)
    assert {real_tp(r.topic, r.partition) for r in recs} <= set(c.assignment())
    c.close()


def test_buffer_memory_of_kafka_python_2_bounds_the_buffered_bytes(servers: str) -> None:
    """kafka-python 2.0's ``buffer_memory`` is accepted (3.0 dropped it) and is
    embedlog's ``buffer_bytes``: a send that brings the buffered bytes to it writes
    them, before ``linger_ms`` passes or ``flush``."""
    p = KafkaProducer(bootstrap_servers=servers, buffer_memory=5000, linger_ms=60_000)
    c = KafkaConsumer("bm", bootstrap_servers=servers, auto_offset_reset="earliest")
    try:
        for _ in range(3):
            p.send("bm", b"x" * 1000)
        assert c.poll(timeout_ms=200) == {}  # 3,000 bytes: still buffered
        for _ in range(3):
            p.send("bm", b"x" * 1000)
        got = [r for records in c.poll(timeout_ms=5000).values() for r in records]
        assert len(got) >= 5
    finally:
        p.close()
        c.close()


# -- what a member commits as it goes ------------------------------------------------------------
def _ten_and_a_member(servers: str) -> KafkaConsumer:
    p = KafkaProducer(bootstrap_servers=servers)
    for i in range(10):
        p.send("t", b"%d" % i)
    p.flush()
    p.close()
    return KafkaConsumer("t", bootstrap_servers=servers, group_id="g", auto_offset_reset="earliest",
                         consumer_timeout_ms=2000, max_poll_records=500)


def _committed(servers: str) -> int | None:
    c = KafkaConsumer(bootstrap_servers=servers, group_id="g")
    try:
        return c.committed(TopicPartition("t", 0))
    finally:
        c.close(autocommit=False)


@pytest.mark.parametrize("leave", ["close", "unsubscribe"])
def test_leaving_mid_iteration_commits_only_what_was_yielded(servers: str, leave: str) -> None:
    """The iterator fetched all ten records and yielded two: closing (or unsubscribing)
    with auto-commit commits 2, as kafka-python's per-record position does; the group's
    next member gets the other eight (it got none)."""
    c = _ten_and_a_member(servers)
    for r in c:
        if r.offset == 1:
            break
    assert c.position(TopicPartition("t", 0)) == 2
    if leave == "close":
        c.close()
    else:
        c.unsubscribe()
        c.close(autocommit=False)
    assert _committed(servers) == 2
    nxt = KafkaConsumer("t", bootstrap_servers=servers, group_id="g", auto_offset_reset="earliest")
    assert [r.offset for r in drain(nxt, 8)] == list(range(2, 10))
    nxt.close()


def test_close_without_autocommit_commits_nothing(servers: str) -> None:
    c = _ten_and_a_member(servers)
    got: dict[Any, Any] = {}
    while not got:
        got = c.poll(timeout_ms=1000, max_records=3)
    assert c.position(TopicPartition("t", 0)) == 3
    c.close(autocommit=False)
    assert _committed(servers) is None


def test_subscribing_again_mid_iteration_loses_no_record(servers: str) -> None:
    """A fetch of five, two yielded, then ``subscribe`` to one more topic: the three
    fetched but not yielded come again (kafka-python's position is per record yielded)."""
    p = KafkaProducer(bootstrap_servers=servers)
    for i in range(10):
        p.send("t", b"%d" % i)
    p.send("u", b"u0")
    p.flush()
    p.close()
    c = KafkaConsumer("t", bootstrap_servers=servers, group_id="g", auto_offset_reset="earliest",
                      consumer_timeout_ms=1500, max_poll_records=5)
    it = iter(c)
    got = [next(it).value, next(it).value]
    c.subscribe(["t", "u"])
    got += [r.value for r in c]
    c.close()
    assert sorted(got) == sorted([b"%d" % i for i in range(10)] + [b"u0"])


def test_a_raising_callback_is_logged_and_the_others_still_run(servers: str, caplog: pytest.LogCaptureFixture) -> None:
    """As kafka-python's Future: what a callback raises is logged; the future's other
    callbacks run, and neither flush() nor add_callback on a done future raises it."""
    p = KafkaProducer(bootstrap_servers=servers, linger_ms=1000)
    got: list[int] = []
    f = p.send("cb", b"v")
    f.add_callback(lambda md: 1 / 0)
    f.add_callback(lambda md: got.append(md.offset))
    p.flush()
    assert got == [0]
    f.add_callback(lambda md: 1 / 0)
    assert [r.getMessage() for r in caplog.records].count("Error processing callback") == 2
    p.close()


def test_resume_of_a_partition_not_assigned_raises_key_error(servers: str) -> None:
    produce(servers, "rs", 1)
    c = KafkaConsumer(bootstrap_servers=servers)
    c.assign([TopicPartition("rs", 0)])
    with pytest.raises(KeyError):
        c.resume(TopicPartition("rs", 5))
    c.close()


def test_commit_async_before_any_poll_commits_nothing(servers: str) -> None:
    """As kafka-python's ``all_consumed_offsets``: only partitions with a position; it
    resolved every assigned one (committing offsets never reached; with
    auto_offset_reset='none', embedlog's OffsetOutOfRangeError escaped)."""
    produce(servers, "ca", 5)
    tp = TopicPartition("ca", 0)
    for reset in ("latest", "none"):
        c = KafkaConsumer(bootstrap_servers=servers, group_id=f"g-{reset}", enable_auto_commit=False,
                          auto_offset_reset=reset)
        c.assign([tp])
        seen: list[Any] = []
        c.commit_async(callback=lambda offsets, response: seen.append((offsets, response)))
        assert seen == [({}, None)]
        assert c.committed(tp) is None
        c.close()


def test_the_sticky_partitioner_moves_on_between_batches(servers: str) -> None:
    """kafka-python calls a partitioner's ``on_new_batch`` when a null-key record would
    open a batch (KIP-480); never called, its StickyPartitioner sent every record of the
    producer's life to one partition.  Within a batch it sticks."""
    from kafka.partitioner import StickyPartitioner  # noqa: PLC0415

    admin_for(servers).create_topics([NewTopic("sp", 4, 1)])
    p = KafkaProducer(bootstrap_servers=servers, partitioner=StickyPartitioner())
    parts = [p.send("sp", b"v").get(5).partition for _ in range(16)]  # (each its own batch)
    assert len(set(parts)) > 1, parts
    held = KafkaProducer(bootstrap_servers=servers, partitioner=StickyPartitioner(), linger_ms=60_000)
    futures = [held.send("sp", b"w") for _ in range(5)]
    held.flush()
    assert len({f.get(5).partition for f in futures}) == 1
    p.close()
    held.close()


@given(key=st.none() | st.binary(max_size=300), value=st.none() | st.binary(max_size=20_000),
       headers=st.lists(st.tuples(st.text(max_size=70), st.none() | st.binary(max_size=200)), max_size=5))
@settings(max_examples=300, deadline=None)
def test_record_size_is_kafka_pythons_estimate(key: bytes | None, value: bytes | None,
                                               headers: list[tuple[str, bytes | None]]) -> None:
    """``max_request_size`` is compared with kafka-python's own estimate (it left out the
    varint prefixes: 4 bytes under without headers, over with them)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder  # noqa: PLC0415

    from embedlog.compat import _kafka_common  # noqa: PLC0415

    assert _kafka_common.record_size(key, value, headers) == DefaultRecordBatchBuilder.estimate_size_in_bytes(
        key, value, headers)


def test_max_request_size_is_counted_as_each_client_counts_it(servers: str) -> None:
    value = b"x" * 300
    p = KafkaProducer(bootstrap_servers=servers, max_request_size=385)  # (kafka-python's estimate: 386)
    with pytest.raises(errors.MessageSizeTooLargeError):
        p.send("sz", value)
    p.close()
    p = KafkaProducer(bootstrap_servers=servers, max_request_size=391)  # (with this header: 391)
    assert p.send("sz", value, headers=[("h", b"12")]).get(5).offset == 0
    p.close()

    async def aio() -> int:
        from embedlog.compat.aiokafka import AIOKafkaProducer  # noqa: PLC0415

        q = AIOKafkaProducer(bootstrap_servers=servers, max_request_size=172)  # (aiokafka: 22 + 150)
        await q.start()
        try:
            return (await q.send_and_wait("sz", b"y" * 150)).offset
        finally:
            await q.stop()

    assert asyncio.run(aio()) == 1


@pytest.mark.parametrize("reset", ["earliest", "none"])
def test_commit_with_records_the_iterator_holds_commits_positioned_partitions_only(servers: str, reset: str) -> None:
    """With records fetched and not yielded yet, commit() resolved every assigned
    partition: a paused one never fetched was committed at an offset never reached, and
    under auto_offset_reset='none' embedlog's OffsetOutOfRangeError escaped."""
    admin_for(servers).create_topics([NewTopic("cp", 2, 1)])
    produce(servers, "cp", 5)
    t0, t1 = TopicPartition("cp", 0), TopicPartition("cp", 1)
    c = KafkaConsumer(bootstrap_servers=servers, group_id="g", enable_auto_commit=False, auto_offset_reset=reset)
    c.assign([t0, t1])
    c.seek(t0, 0)
    c.pause(t1)  # (never fetched: no position)
    m = next(iter(c))
    c.commit()
    assert c.committed(TopicPartition(m.topic, m.partition)) == m.offset + 1
    assert c.committed(t1) is None
    c.close()
