"""aiokafka's transactional producer, ``create_batch``/``send_batch`` and admin client over
an embedded log.

Each test runs its own event loop and cluster.  Where aiokafka is installed, its pure
parts are the oracle: ``BatchBuilder`` (what fits in a batch, each record's size),
``commit_structure_validate`` (what ``send_offsets_to_transaction`` refuses), ``NewTopic``'s
checks, the consumer-protocol codecs (member metadata and assignment bytes), the
``Response`` classes of the admin API and ``AIOKafkaAdminClient``'s signatures.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from embedlog.compat import registry
from embedlog.compat.aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition, errors
from embedlog.compat.aiokafka import admin as shim_admin
from embedlog.compat.aiokafka.admin import (
    AIOKafkaAdminClient,
    ConfigResource,
    ConfigResourceType,
    NewPartitions,
    NewTopic,
    RecordsToDelete,
)

T = TypeVar("T")
_ids = itertools.count()


@pytest.fixture
def servers() -> Iterator[str]:
    yield f"aiotx-{next(_ids)}:9092"
    registry.reset()


def run(coro_fn: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(bounded())


async def admin_for(servers: str) -> AIOKafkaAdminClient:
    a = AIOKafkaAdminClient(bootstrap_servers=servers)
    await a.start()
    return a


async def values(servers: str, topic: str, n: int | None = None, timeout_ms: int = 300) -> list[bytes]:
    """The values a fresh consumer (no group) reads from ``topic`` (stops at ``n`` or when idle)."""
    async with AIOKafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest") as c:
        out: list[bytes] = []
        while n is None or len(out) < n:
            got = await c.getmany(timeout_ms=timeout_ms)
            if not got:
                break
            out.extend(r.value for recs in got.values() for r in recs)
        return out


# -- transactions -------------------------------------------------------------------------------
def test_transaction_context_commits_or_aborts(servers: str) -> None:
    async def main() -> None:
        a = await admin_for(servers)
        await a.create_topics([NewTopic("out", 2, 1)])
        async with AIOKafkaProducer(bootstrap_servers=servers, transactional_id="tx") as p:
            async with p.transaction():
                meta = await p.send_and_wait("out", b"one", key=b"k")  # aiokafka's own docs do this
                assert (meta.topic, meta.offset) == ("out", -1)  # the offset comes with the commit
                fut = await p.send("out", b"two", key=b"k")
                assert (await fut).partition == meta.partition
                assert await values(servers, "out") == []  # nothing visible before the commit
            assert sorted(await values(servers, "out", 2)) == [b"one", b"two"]
            with pytest.raises(RuntimeError, match="boom"):
                await _abort_by_exception(p)
            assert sorted(await values(servers, "out")) == [b"one", b"two"]
            await p.begin_transaction()
            await p.send("out", b"three")
            await p.commit_transaction()
            assert sorted(await values(servers, "out", 3)) == [b"one", b"three", b"two"]

    run(main)


def test_offsets_sent_to_a_transaction_commit_with_it(servers: str) -> None:
    async def main() -> None:
        a = await admin_for(servers)
        await a.create_topics([NewTopic("in", 1, 1), NewTopic("out", 1, 1)])
        async with AIOKafkaProducer(bootstrap_servers=servers) as plain:
            for i in range(3):
                await plain.send_and_wait("in", b"%d" % i)
        tp = TopicPartition("in", 0)
        async with AIOKafkaConsumer("in", bootstrap_servers=servers, group_id="etl", auto_offset_reset="earliest",
                                    enable_auto_commit=False) as c, \
                AIOKafkaProducer(bootstrap_servers=servers, transactional_id="etl-tx") as p:
            records = (await c.getmany(timeout_ms=5000))[tp]
            async with p.transaction():
                for r in records:
                    await p.send("out", r.value * 2)
                await p.send_offsets_to_transaction({tp: records[-1].offset + 1}, "etl")
                assert await c.committed(tp) is None
            assert await c.committed(tp) == 3
            async with p.transaction():
                await p.send("out", b"x")
                await p.send_offsets_to_transaction({tp: (1, "meta")}, "etl")
                await p.abort_transaction()
                await p.begin_transaction()  # (the context commits this empty one)
            assert await c.committed(tp) == 3
        assert await values(servers, "out", 3) == [b"00", b"11", b"22"]

    run(main)


async def _abort_by_exception(p: AIOKafkaProducer) -> None:
    async with p.transaction():
        await p.send_and_wait("out", b"aborted")
        raise RuntimeError("boom")


BAD_OFFSETS: list[Any] = [{}, [], {("t", 0): "x"}, {("t", 0): (1, 2)}, {"t": 1}, {("t", 0): (1, "m", 3)}]


@pytest.mark.parametrize("offsets", BAD_OFFSETS, ids=repr)
def test_send_offsets_refuses_what_aiokafka_refuses(offsets: Any, servers: str) -> None:
    async def main() -> str:
        async with AIOKafkaProducer(bootstrap_servers=servers, transactional_id="v") as p, p.transaction():
            try:
                await p.send_offsets_to_transaction(offsets, "g")
            except (TypeError, ValueError) as exc:
                return type(exc).__name__
            return "ok"

    ours = run(main)
    assert ours != "ok"
    util = pytest.importorskip("aiokafka.util")
    structs = pytest.importorskip("aiokafka.structs")
    real_offsets = {(structs.TopicPartition(*k) if isinstance(k, tuple) else k): v for k, v in offsets.items()} \
        if isinstance(offsets, dict) else offsets
    with pytest.raises((TypeError, ValueError)) as exc_info:
        util.commit_structure_validate(real_offsets)
    assert type(exc_info.value).__name__ == ours


def test_transactional_state_errors(servers: str) -> None:
    async def main() -> None:
        async with AIOKafkaProducer(bootstrap_servers=servers) as plain:
            with pytest.raises(errors.IllegalOperation, match="transaction_id"):
                await plain.begin_transaction()
        async with AIOKafkaProducer(bootstrap_servers=servers, transactional_id="st") as p:
            with pytest.raises(errors.IllegalOperation, match="not in transaction"):
                await p.send("t", b"v")
            with pytest.raises(errors.IllegalOperation, match="Not in the middle of a transaction"):
                await p.send_offsets_to_transaction({TopicPartition("t", 0): 1}, "g")
            with pytest.raises(AssertionError, match="Invalid state transition"):
                await p.commit_transaction()
            await p.begin_transaction()
            with pytest.raises(AssertionError, match="Invalid state transition"):
                await p.begin_transaction()
            await p.abort_transaction()

    run(main)


def test_a_newer_producer_with_the_same_id_fences_the_older(servers: str) -> None:
    async def main() -> None:
        old = AIOKafkaProducer(bootstrap_servers=servers, transactional_id="same")
        await old.start()
        await old.begin_transaction()
        await old.send("f", b"zombie")
        new = AIOKafkaProducer(bootstrap_servers=servers, transactional_id="same")
        await new.start()  # takes the id
        with pytest.raises(errors.ProducerFenced):
            await old.commit_transaction()
        with pytest.raises(errors.ProducerFenced):  # and stays fenced
            async with old.transaction():
                pass
        async with new.transaction():
            await new.send("f", b"alive")
        assert await values(servers, "f", 1) == [b"alive"]
        await old.stop()
        await new.stop()

    run(main)


# -- batches ------------------------------------------------------------------------------------
def test_batch_builder_fills_like_aiokafkas() -> None:
    # The shim's BatchBuilder is aiokafka 0.13's (record format v2 only, closed() a method):
    # 0.12's (which mockafka-py of the [bench] extra installs) sizes a batch differently.
    pytest.importorskip("aiokafka", minversion="0.13")
    real = pytest.importorskip("aiokafka.producer.message_accumulator")
    records = [(1_700_000_000_000 + i * 7, b"key-%d" % i if i % 3 else None, b"v" * (i * 13 % 50),
                [("h", b"x" * i)] if i % 4 == 1 else []) for i in range(40)]

    async def main() -> list[Any]:
        async with AIOKafkaProducer(bootstrap_servers="batch-oracle:1", max_batch_size=700) as p:
            ours = p.create_batch()
            out = []
            for ts, k, v, h in records:
                m = ours.append(timestamp=ts, key=k, value=v, headers=h)
                out.append(None if m is None else (m.offset, m.size, m.timestamp, m.crc))
            return [out, ours.size(), ours.record_count(), ours.closed()]

    ours = run(main)
    registry.reset()
    theirs_b = real.BatchBuilder(700, 0, is_transactional=False)
    theirs = []
    for ts, k, v, h in records:
        m = theirs_b.append(timestamp=ts, key=k, value=v, headers=h)
        theirs.append(None if m is None else (m.offset, m.size, m.timestamp, m.crc))
    assert ours == [theirs, theirs_b.size(), theirs_b.record_count(), theirs_b.closed()]
    assert None in theirs  # the batch did fill up


def test_send_batch_writes_consecutive_offsets(servers: str) -> None:
    async def main() -> None:
        a = await admin_for(servers)
        await a.create_topics([NewTopic("b", 2, 1), NewTopic("la", 1, 1, topic_configs={
            "message.timestamp.type": "LogAppendTime"})])
        async with AIOKafkaProducer(bootstrap_servers=servers, value_serializer=str.encode) as p:
            await p.send_and_wait("b", "before", partition=1)
            batch = p.create_batch()
            for i in range(5):
                assert batch.append(key=None, value=f"r{i}", timestamp=None) is not None
            fut = await p.send_batch(batch, "b", partition=1)
            assert batch.closed()
            assert batch.append(key=None, value="late", timestamp=None) is None
            meta = await fut
            assert (meta.topic, meta.partition, meta.offset, meta.timestamp, meta.timestamp_type) == ("b", 1, 1, -1, 0)
            with pytest.raises(AssertionError, match="Unrecognized partition"):
                await p.send_batch(p.create_batch(), "b", partition=2)
            la = p.create_batch()
            la.append(key=b"k", value="x", timestamp=1)
            meta = await (await p.send_batch(la, "la", partition=0))
            assert meta.timestamp_type == 1
            assert meta.timestamp > 1
        async with AIOKafkaConsumer(bootstrap_servers=servers, auto_offset_reset="earliest") as c:
            c.assign([TopicPartition("b", 1)])
            got = (await c.getmany(timeout_ms=5000, max_records=10))[TopicPartition("b", 1)]
            assert [(r.offset, r.value) for r in got] == [(0, b"before")] + [(i + 1, b"r%d" % i) for i in range(5)]
        async with AIOKafkaProducer(bootstrap_servers=servers, transactional_id="btx") as tp:
            batch = tp.create_batch()
            batch.append(key=None, value=b"in-tx", timestamp=None)
            with pytest.raises(errors.IllegalOperation):
                await tp.send_batch(batch, "b", partition=0)
            async with tp.transaction():
                assert (await (await tp.send_batch(batch, "b", partition=0))).offset == -1
                assert await values(servers, "b") == [b"before"] + [b"r%d" % i for i in range(5)]
        assert b"in-tx" in await values(servers, "b", 7)

    run(main)


# -- admin --------------------------------------------------------------------------------------
def test_admin_topics(servers: str) -> None:
    async def main() -> None:
        a = await admin_for(servers)
        resp = await a.create_topics([NewTopic("a", 3, 1), NewTopic("b", 1, 1, topic_configs={"bogus.key": "1"}),
                                      NewTopic("c", 0, 1)])
        assert [tuple(e) for e in resp.topic_errors] == [
            ("a", 0, None), ("b", 40, "Unknown topic config name: bogus.key"),
            ("c", 37, "Number of partitions must be larger than 0.")]
        resp = await a.create_topics([NewTopic("a", 1, 1), NewTopic("v", 1, 1)], validate_only=True)
        assert [e[1] for e in resp.topic_errors] == [36, 0]
        assert await a.list_topics() == ["a"]
        await a.create_topics([NewTopic("by-assignment", -1, -1, replica_assignments={0: [0], 1: [0]})])
        assert len((await a.describe_topics(["by-assignment"]))[0]["partitions"]) == 2
        await a.delete_topics(["by-assignment"])
        described = await a.describe_topics(["a", "missing"])
        assert [(t["topic"], t["error_code"], len(t["partitions"])) for t in described] == [("a", 0, 3),
                                                                                             ("missing", 3, 0)]
        assert described[0]["partitions"][0] == {"error_code": 0, "partition": 0, "leader": 0, "replicas": [0],
                                                 "isr": [0], "offline_replicas": []}
        cluster = await a.describe_cluster()
        host = servers.split(":", maxsplit=1)[0]
        assert cluster["brokers"] == [{"node_id": 0, "host": host, "port": 9092, "rack": None}]
        assert set(cluster) == {"throttle_time_ms", "brokers", "cluster_id", "controller_id"}
        await a.create_partitions({"a": NewPartitions(5)})
        assert len((await a.describe_topics(["a"]))[0]["partitions"]) == 5
        with pytest.raises(errors.InvalidPartitionsError, match="Could not create partitions for a"):
            await a.create_partitions({"a": NewPartitions(2)})
        resp = await a.delete_topics(["a", "missing"])
        assert resp.to_object()["topic_error_codes"] == [{"topic": "a", "error_code": 0},
                                                         {"topic": "missing", "error_code": 3}]
        assert await a.list_topics() == []
        await a.close()

    run(main)


def test_admin_configs_and_records(servers: str) -> None:
    async def main() -> None:
        a = await admin_for(servers)
        await a.create_topics([NewTopic("t", 1, 1, topic_configs={"retention.ms": "1000",
                                                                  "max.message.bytes": "1048588"})])
        (resp,) = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "t",
                                                           {"retention.ms": None, "cleanup.policy": None,
                                                            "max.message.bytes": None})])
        entries = {e["config_names"]: e for e in resp.to_object()["resources"][0]["config_entries"]}
        assert set(entries) == {"retention.ms", "cleanup.policy", "max.message.bytes"}
        assert entries["max.message.bytes"]["config_source"] == 1  # (set on the topic, though the default)
        assert (entries["retention.ms"]["config_value"], entries["retention.ms"]["config_source"]) == ("1000", 1)
        assert (entries["cleanup.policy"]["config_value"], entries["cleanup.policy"]["config_source"]) == ("delete", 5)
        broker, topics = await a.describe_configs([ConfigResource("TOPIC", "nope"), ConfigResource("BROKER", "0")])
        assert topics.resources[0][:2] == (3, "Topic 'nope' does not exist.")
        assert {e[0] for e in broker.resources[0][4]} >= {"num.partitions", "auto.create.topics.enable"}
        # alter_configs replaces the whole config: keys not given go back to their defaults
        (altered,) = await a.alter_configs([ConfigResource("TOPIC", "t", {"cleanup.policy": "compact"})])
        assert altered.to_object()["resources"] == [{"error_code": 0, "error_message": None, "resource_type": 2,
                                                     "resource_name": "t"}]
        (resp,) = await a.describe_configs([ConfigResource("TOPIC", "t", {"retention.ms": 1, "cleanup.policy": 1})])
        assert {e[0]: e[1] for e in resp.resources[0][4]} == {"retention.ms": "604800000", "cleanup.policy": "compact"}
        (bad,) = await a.alter_configs([ConfigResource("TOPIC", "t", {"no.such": "1"})])
        assert bad.resources[0][0] == 40
        async with AIOKafkaProducer(bootstrap_servers=servers) as p:
            for i in range(5):
                await p.send_and_wait("t", b"%d" % i, key=b"k%d" % i)
        tp = TopicPartition("t", 0)
        assert await a.delete_records({tp: RecordsToDelete(3)}) == {tp: 3}

    run(main)


def test_admin_groups(servers: str) -> None:
    async def main() -> None:
        a = await admin_for(servers)
        await a.create_topics([NewTopic("g", 2, 1)])
        async with AIOKafkaProducer(bootstrap_servers=servers) as p:
            await p.send_and_wait("g", b"v", partition=0)
        async with AIOKafkaConsumer("g", bootstrap_servers=servers, group_id="grp", auto_offset_reset="earliest",
                                    enable_auto_commit=False, client_id="me") as c:
            await c.getone()
            await c.commit()
            assert await a.list_consumer_groups() == [("grp", "consumer")]
            (resp,) = await a.describe_consumer_groups(["grp", "ghost"])
            (grp, ghost) = resp.to_object()["groups"]
            assert (grp["group"], grp["state"], grp["protocol_type"], len(grp["members"])) == (
                "grp", "Stable", "consumer", 1)
            assert ghost == {"error_code": 0, "group": "ghost", "state": "Dead", "protocol_type": "", "protocol": "",
                             "members": [], "authorized_operations": -(2**31)}
            member = grp["members"][0]
            assert member["client_id"] == "me"
            codecs = _consumer_protocol()
            if codecs is not None:
                assignment = codecs.ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
                assert sorted(assignment.partitions()) == [("g", 0), ("g", 1)]
                assert codecs.ConsumerProtocolMemberMetadata.decode(member["member_metadata"]).subscription == ["g"]
        # (commit() commits every assigned partition's position, read from or not, as aiokafka)
        assert await a.list_consumer_group_offsets("grp") == {TopicPartition("g", 0): (1, ""),
                                                              TopicPartition("g", 1): (0, "")}
        assert await a.list_consumer_group_offsets("grp", partitions=[TopicPartition("g", 1)]) == {
            TopicPartition("g", 1): (0, "")}
        assert await a.list_consumer_group_offsets("grp", partitions=[TopicPartition("g", 2)]) == {
            TopicPartition("g", 2): (-1, "")}
        assert await a.find_coordinator("grp") == 0

    run(main)


def _consumer_protocol() -> Any:
    try:
        return importlib.import_module("aiokafka.coordinator.protocol")
    except ImportError:  # pragma: no cover - the test extra installs aiokafka
        return None


def test_admin_matches_aiokafkas_classes() -> None:
    aio_admin = pytest.importorskip("aiokafka.admin")
    real_cls = aio_admin.AIOKafkaAdminClient
    for name, fn in inspect.getmembers(real_cls, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = getattr(AIOKafkaAdminClient, name)
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(fn), name
        real_params = inspect.signature(fn).parameters
        our_params = inspect.signature(ours).parameters
        assert list(real_params) == list(our_params), name
        assert [p.default for p in real_params.values()] == [p.default for p in our_params.values()], name
    init = inspect.signature(real_cls.__init__).parameters
    assert set(init) <= set(inspect.signature(AIOKafkaAdminClient.__init__).parameters)
    with pytest.raises(aio_admin.NewTopic.__init__.__globals__["IllegalArgumentError"]):
        aio_admin.NewTopic("x", 1, 1, replica_assignments={0: [1]})
    with pytest.raises(errors.IllegalArgumentError):  # the same check, and the real class catches it
        NewTopic("x", 1, 1, replica_assignments={0: [1]})
    assert ConfigResource("topic", "t").resource_type == aio_admin.config_resource.ConfigResourceType.TOPIC
    assert shim_admin.Response("X", ("a",), (1,)).to_object() == {"a": 1}


def test_a_cancelled_commit_transaction_finishes_and_leaves_the_producer_usable(servers: str) -> None:
    """``wait_for(commit_transaction(), tiny)``: the commit goes on (aiokafka shields it) and
    the producer's state follows it; it stayed COMMITTING and the next transaction failed."""
    async def main() -> int:
        p = AIOKafkaProducer(bootstrap_servers=servers, transactional_id="tx-cancel")
        await p.start()
        await p.begin_transaction()
        for i in range(2000):
            await p.send("t", b"v%d" % i)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(p.commit_transaction(), 0.0005)
        for _ in range(200):
            if p._txn_state == "READY":
                break
            await asyncio.sleep(0.05)
        async with p.transaction():
            await p.send("t", b"after")
        c = AIOKafkaConsumer("t", bootstrap_servers=servers, auto_offset_reset="earliest",
                             isolation_level="read_committed")
        await c.start()
        got = 0
        for _ in range(20):
            got += sum(len(v) for v in (await c.getmany(timeout_ms=200, max_records=10_000)).values())
            if got >= 2001:
                break
        await c.stop()
        await p.stop()
        return got

    assert run(main) == 2001
