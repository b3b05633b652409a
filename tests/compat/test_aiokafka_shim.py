"""embedlog.compat.aiokafka: aiokafka's API over an embedded log, from asyncio code.

Each test runs its own event loop with ``asyncio.run`` and its own cluster (a unique
``bootstrap_servers``).  Where aiokafka is installed, its pure parts are the oracle:
its murmur2 partitioner, its constructor signatures and its error classes.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from embedlog.compat import registry
from embedlog.compat.aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerStoppedError,
    IllegalOperation,
    TopicPartition,
    errors,
)
from embedlog.compat.aiokafka.admin import AIOKafkaAdminClient
from embedlog.compat.aiokafka.admin import NewTopic as AioNewTopic
from embedlog.compat.kafka_python import KafkaAdminClient, NewTopic
from loopticks import LoopTicks  # tests/loopticks.py (tests/ is on sys.path)

T = TypeVar("T")
_ids = itertools.count()


@pytest.fixture
def servers() -> Iterator[str]:
    yield f"aio-{next(_ids)}:9092"
    registry.reset()


def run(coro_fn: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(bounded())


def create(servers: str, topic: str, partitions: int) -> None:
    KafkaAdminClient(bootstrap_servers=servers).create_topics([NewTopic(topic, partitions, 1)])


async def produce(servers: str, topic: str, n: int, **kw: Any) -> None:
    async with AIOKafkaProducer(bootstrap_servers=servers) as p:
        futs = [await p.send(topic, f"v{i}".encode(), key=f"k{i}".encode(), **kw) for i in range(n)]
        await asyncio.gather(*futs)


async def collect(c: AIOKafkaConsumer, n: int, timeout: float = 10.0) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for recs in (await c.getmany(timeout_ms=200)).values():
            out.extend(recs)
    return out


# -- producer -----------------------------------------------------------------------------------
def test_send_and_wait_and_send_futures(servers: str) -> None:
    create(servers, "o", 3)

    async def main() -> None:
        async with AIOKafkaProducer(bootstrap_servers=servers, value_serializer=str.encode) as p:
            md = await p.send_and_wait("o", "hello", key=b"user", headers=[("h", b"1")], timestamp_ms=1234)
            assert (md.topic, md.offset, md.timestamp, md.timestamp_type) == ("o", 0, 1234, 0)
            assert md.topic_partition == TopicPartition("o", md.partition)
            fut = await p.send("o", "again", key=b"user")
            assert isinstance(fut, asyncio.Future)
            assert (await fut).offset == 1
            assert await p.partitions_for("o") == {0, 1, 2}
            await p.flush()

    run(main)


def test_send_takes_timestamps_and_headers_as_aiokafkas_record_builder_does(servers: str) -> None:
    """A float timestamp (``time.time() * 1000``) is cut to whole milliseconds; a header
    value that is not bytes, or headers that are not a list, raise aiokafka's TypeError
    (the shim stored ``"text"`` as ``b"text"``, which a real broker never sees)."""
    create(servers, "ts", 1)

    async def main() -> None:
        async with AIOKafkaProducer(bootstrap_servers=servers) as p:
            assert (await p.send_and_wait("ts", b"v", timestamp_ms=1.5)).timestamp == 1
            with pytest.raises(TypeError, match="Expected bytes, got str"):
                await p.send("ts", b"v", headers=[("h", "text")])
            with pytest.raises(TypeError, match="expected list, got tuple"):
                await p.send("ts", b"v", headers=(("h", b"1"),))
        c = AIOKafkaConsumer(bootstrap_servers=servers)
        await c.start()
        c.assign([TopicPartition("ts", 0)])
        assert c.subscription() == frozenset({"ts"})
        assert c.assignment() == frozenset({TopicPartition("ts", 0)})
        assert isinstance(c.assignment(), frozenset)
        await c.seek_to_beginning(TopicPartition("ts", 0))
        got = await c.getmany(timeout_ms=1000)
        assert [r.timestamp for r in got[TopicPartition("ts", 0)]] == [1]
        await c.stop()

    run(main)


def test_offset_lookups_create_a_new_topic_as_the_broker_does(servers: str) -> None:
    """aiokafka's metadata request creates a topic on a broker with auto-creation (the
    default), so ``end_offsets`` of a topic nobody used yet answers 0, as kafka-python's
    shim already did; with auto-creation off it is ``UnknownTopicOrPartitionError``."""

    async def main() -> None:
        c = AIOKafkaConsumer(bootstrap_servers=servers)
        await c.start()
        tp = TopicPartition("fresh", 0)
        assert await c.end_offsets([tp]) == {tp: 0}
        assert await c.beginning_offsets([tp]) == {tp: 0}
        await c.stop()

    run(main)
    registry.configure(servers, auto_create_topics=False)

    async def refused() -> None:
        c = AIOKafkaConsumer(bootstrap_servers=servers)
        await c.start()
        with pytest.raises(errors.UnknownTopicOrPartitionError):
            await c.end_offsets([TopicPartition("never", 0)])
        await c.stop()

    run(refused)


def test_keys_go_where_aiokafkas_murmur2_puts_them(servers: str) -> None:
    create(servers, "k", 5)
    keys = [f"key-{i}".encode() for i in range(40)]

    async def main() -> dict[bytes, int]:
        async with AIOKafkaProducer(bootstrap_servers=servers) as p:
            return {k: (await p.send_and_wait("k", b"x", key=k)).partition for k in keys}

    placed = run(main)
    partitioner = pytest.importorskip("aiokafka.partitioner")
    assert placed == {k: partitioner.DefaultPartitioner()(k, list(range(5)), list(range(5))) for k in keys}


def test_producer_validates_like_aiokafka(servers: str) -> None:
    with pytest.raises(RuntimeError):
        AIOKafkaProducer(bootstrap_servers=servers)  # no running loop, as in aiokafka

    async def main() -> None:
        with pytest.raises(TypeError, match="unexpected keyword"):
            AIOKafkaProducer(bootstrap_servers=servers, group_id="nope")  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="ACKS"):
            AIOKafkaProducer(bootstrap_servers=servers, acks=2)
        with pytest.raises(ValueError, match="compression"):
            AIOKafkaProducer(bootstrap_servers=servers, compression_type="brotli")
        with pytest.raises(ValueError, match="enable_idempotence"):
            AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=True, acks=1)
        p = AIOKafkaProducer(bootstrap_servers=servers, max_request_size=500, security_protocol="SSL",
                             ssl_context=ssl.create_default_context(), sasl_mechanism="SCRAM-SHA-512", linger_ms=5,
                             compression_type="lz4")
        await p.start()
        with pytest.raises(AssertionError):
            await p.send("t", None, key=None)
        with pytest.raises(errors.MessageSizeTooLargeError):
            await p.send("t", b"x" * 1000)
        await p.stop()
        with pytest.raises(errors.ProducerClosed):
            await p.send("t", b"v")

    run(main)


def test_unknown_topic_with_auto_creation_off(servers: str) -> None:
    registry.configure(servers, auto_create_topics=False)

    async def main() -> None:
        async with AIOKafkaProducer(bootstrap_servers=servers) as p:
            with pytest.raises(errors.UnknownTopicOrPartitionError):
                await p.send("missing", b"v")

    run(main)


def test_signatures_cover_the_installed_aiokafka() -> None:
    aiokafka = pytest.importorskip("aiokafka")
    for real, ours in ((aiokafka.AIOKafkaProducer, AIOKafkaProducer), (aiokafka.AIOKafkaConsumer, AIOKafkaConsumer)):
        real_params = set(inspect.signature(real.__init__).parameters)
        assert real_params <= set(inspect.signature(ours.__init__).parameters), real.__name__
        for name, param in inspect.signature(real.__init__).parameters.items():
            if name in ("self", "topics", "loop", "acks", "partitioner", "partition_assignment_strategy",
                        "api_version"):
                continue
            assert inspect.signature(ours.__init__).parameters[name].default == param.default, name


def test_errors_are_the_real_classes_too() -> None:
    real = pytest.importorskip("aiokafka.errors")
    for name in errors.__all__:
        ours = getattr(errors, name)
        if isinstance(ours, type) and hasattr(real, name):
            assert issubclass(ours, getattr(real, name)), name
        if isinstance(ours, type) and getattr(ours, "errno", -1) != -1:  # (the base has none, as in aiokafka)
            assert real.for_code(ours.errno).__name__ == name
    assert issubclass(errors.ConsumerStoppedError, real.ConsumerStoppedError)


# -- consumer -----------------------------------------------------------------------------------
def test_getone_getmany_and_async_for(servers: str) -> None:
    create(servers, "c", 2)

    async def main() -> None:
        await produce(servers, "c", 10, headers=[("h", b"v")])
        c = AIOKafkaConsumer("c", bootstrap_servers=servers, auto_offset_reset="earliest",
                             key_deserializer=bytes.decode)
        await c.start()
        one = await c.getone()
        assert one.key.startswith("k")
        assert one.headers == (("h", b"v"),)
        assert one.timestamp_type == 0
        assert (one.serialized_key_size, one.serialized_value_size) == (len(one.key), 2)
        many = await c.getmany(max_records=4, timeout_ms=1000)
        assert sum(map(len, many.values())) == 4
        rest = await collect(c, 5)
        seen = {(r.partition, r.offset) for r in [one, *[r for rs in many.values() for r in rs], *rest]}
        assert len(seen) == 10
        assert await c.getmany(timeout_ms=50) == {}
        only = TopicPartition("c", 0)
        await c.seek_to_beginning(only)
        part = await c.getmany(only, timeout_ms=1000)
        assert set(part) == {only}

        got: list[bytes] = []

        async def reader() -> None:
            async for msg in c:
                got.append(msg.value)

        task = asyncio.create_task(reader())
        await produce(servers, "c", 1)
        for _ in range(200):
            if b"v0" in got:
                break
            await asyncio.sleep(0.01)
        await c.stop()
        await asyncio.wait_for(task, 5)  # stop() ends the iteration
        assert b"v0" in got
        with pytest.raises(ConsumerStoppedError):
            await c.getone()

    run(main)


def test_waiting_does_not_block_the_event_loop(servers: str) -> None:
    create(servers, "w", 1)

    async def main() -> None:
        c = AIOKafkaConsumer("w", bootstrap_servers=servers, auto_offset_reset="earliest")
        await c.start()
        ticks = LoopTicks()
        started = time.monotonic()
        assert await c.getmany(timeout_ms=600) == {}
        assert time.monotonic() - started >= 0.55
        assert ticks.count >= 10  # the loop kept running while the consumer waited

        def produce_from_thread() -> None:
            time.sleep(0.2)
            asyncio.run(produce(servers, "w", 1))

        th = threading.Thread(target=produce_from_thread)
        th.start()
        msg = await asyncio.wait_for(c.getone(), 10)
        assert msg.value == b"v0"
        th.join()
        ticks.stop()
        await c.stop()

    run(main)


def test_a_failing_deserializer_skips_nothing(servers: str) -> None:
    """Records prefetched before the one the deserializer fails on are returned; then
    getmany raises its exception, again, until the application seeks past the record;
    the records after it, in every partition, come then."""
    create(servers, "des", 2)

    def strict(b: bytes) -> str:
        if b == b"v5":
            raise ValueError("cannot read v5")
        return b.decode()

    async def main() -> None:
        async with AIOKafkaProducer(bootstrap_servers=servers) as p:
            for i in range(12):
                await p.send_and_wait("des", f"v{i}".encode(), partition=i % 2)  # v5: partition 1, offset 2
        c = AIOKafkaConsumer("des", bootstrap_servers=servers, auto_offset_reset="earliest",
                             value_deserializer=strict, enable_auto_commit=False)
        await c.start()
        got: list[str] = []
        messages: list[str] = []
        raised = 0
        deadline = time.monotonic() + 20
        while len(got) < 11:
            assert time.monotonic() < deadline, f"got {got}"
            try:
                for recs in (await c.getmany(timeout_ms=200)).values():
                    got.extend(r.value for r in recs)
            except ValueError as exc:
                messages.append(str(exc))
                raised += 1
                if raised == 2:  # raised again: skip it
                    c.seek(TopicPartition("des", 1), 3)
        await c.stop()
        assert sorted(got, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(12) if i != 5]
        assert raised == 2
        assert messages == ["cannot read v5"] * 2

    run(main)


def test_positions_seek_and_offsets(servers: str) -> None:
    create(servers, "p", 1)
    tp = TopicPartition("p", 0)

    async def main() -> None:
        async with AIOKafkaProducer(bootstrap_servers=servers) as p:
            for i, ts in enumerate((1000, 2000, 3000, 4000)):
                await p.send_and_wait("p", b"%d" % i, timestamp_ms=ts)
        c = AIOKafkaConsumer(bootstrap_servers=servers, auto_offset_reset="earliest")
        c.assign([tp])
        await c.start()
        assert c.assignment() == {tp}
        assert await c.position(tp) == 0
        assert (await c.getone()).offset == 0
        assert await c.position(tp) == 1  # prefetched records do not count as consumed
        c.seek(tp, 3)
        assert (await c.getone()).offset == 3
        await c.seek_to_beginning()
        assert await c.position(tp) == 0
        await c.seek_to_end(tp)
        assert await c.position(tp) == 4
        assert await c.beginning_offsets([tp]) == {tp: 0}
        assert await c.end_offsets([tp]) == {tp: 4}
        assert c.highwater(tp) == 4
        found = await c.offsets_for_times({tp: 2500})
        assert found[tp] is not None
        assert tuple(found[tp]) == (2, 3000)
        with pytest.raises(ValueError):
            c.seek(tp, -1)
        with pytest.raises(errors.IllegalStateError):
            c.seek(TopicPartition("p", 7), 0)
        with pytest.raises(errors.IllegalStateError):  # (as aiokafka's; it raised embedlog's NotAssignedError)
            c.resume(TopicPartition("p", 7))
        with pytest.raises(IllegalOperation):
            await c.commit()
        c.pause(tp)
        await c.seek_to_beginning(tp)
        assert await c.getmany(timeout_ms=100) == {}
        c.resume(tp)
        assert (await c.getone()).offset == 0
        await c.stop()

    run(main)


def test_group_commit_and_resume(servers: str) -> None:
    create(servers, "g", 2)

    async def main() -> None:
        await produce(servers, "g", 20)
        kw: dict[str, Any] = {"bootstrap_servers": servers, "group_id": "workers", "auto_offset_reset": "earliest",
                              "enable_auto_commit": False}
        c = AIOKafkaConsumer("g", **kw)
        await c.start()
        assert len(c.assignment()) == 2  # start() waited for the group's assignment
        first = await collect(c, 5)
        await c.commit()
        committed = {tp: await c.committed(tp) for tp in c.assignment()}
        consumed = {}
        for r in first:
            consumed[TopicPartition(r.topic, r.partition)] = r.offset + 1
        assert {tp: off for tp, off in committed.items() if off is not None} == consumed
        await c.stop()
        c2 = AIOKafkaConsumer("g", **kw)
        await c2.start()
        rest = await collect(c2, 20 - len(first))
        assert len(rest) == 20 - len(first)
        assert {(r.partition, r.offset) for r in rest}.isdisjoint({(r.partition, r.offset) for r in first})
        await c2.commit({TopicPartition("g", 0): 1})
        assert await c2.committed(TopicPartition("g", 0)) == 1
        with pytest.raises(errors.IllegalStateError):
            await c2.commit({TopicPartition("g", 9): 1})
        await c2.stop()

    run(main)


def test_auto_commit_at_stop_counts_only_handed_out_records(servers: str) -> None:
    create(servers, "ac", 1)
    tp = TopicPartition("ac", 0)

    async def main() -> None:
        await produce(servers, "ac", 10)
        kw: dict[str, Any] = {"bootstrap_servers": servers, "group_id": "auto", "auto_offset_reset": "earliest"}
        c = AIOKafkaConsumer("ac", **kw)
        await c.start()
        await c.getmany(max_records=3, timeout_ms=2000)
        await c.stop()  # auto-commit: 3, although more were prefetched
        c2 = AIOKafkaConsumer("ac", **kw)
        await c2.start()
        assert await c2.committed(tp) == 3
        assert (await c2.getone()).offset == 3
        await c2.stop()

    run(main)


def test_two_members_share_partitions_and_async_listeners_commit_on_revoke(servers: str) -> None:
    create(servers, "r", 4)
    revoked: list[set[TopicPartition]] = []

    async def main() -> None:
        await produce(servers, "r", 40)
        kw: dict[str, Any] = {"bootstrap_servers": servers, "group_id": "rg", "auto_offset_reset": "earliest",
                              "enable_auto_commit": False}
        c1 = AIOKafkaConsumer(**kw)

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, parts: Any) -> None:
                revoked.append(set(parts))
                await c1.commit(dict.fromkeys(parts, 1))
                raise RuntimeError("a failing listener does not stop the rebalance (aiokafka logs it)")

            async def on_partitions_assigned(self, parts: Any) -> None:
                await asyncio.sleep(0)

        c1.subscribe(["r"], listener=Listener())
        await c1.start()
        assert len(c1.assignment()) == 4
        c2 = AIOKafkaConsumer("r", **kw)
        await c2.start()
        # c1's background task follows the group while nobody fetches from it
        deadline = time.monotonic() + 15
        while (len(c1.assignment()) + len(c2.assignment()) != 4 or not c2.assignment()) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert c1.assignment()
        assert c2.assignment()
        assert not c1.assignment() & c2.assignment()
        assert revoked[0] == set()  # (aiokafka: before the first join too, with nothing to revoke)
        assert revoked[1] >= c2.assignment()
        for tp in c2.assignment():
            assert await c2.committed(tp) == 1  # committed by c1's async listener before giving it up
        await c1.stop()
        await c2.stop()

    run(main)


def test_a_member_that_stops_fetching_leaves_and_its_commit_fails(servers: str) -> None:
    """aiokafka leaves the group once the application has not fetched for
    ``max_poll_interval_ms`` (its fetcher's idle time), though its background tasks run
    on: the member is removed, a commit then raises ``CommitFailedError``, and when it
    fetches again it rejoins without serving what it had buffered of a partition another
    member owns now."""
    create(servers, "idle", 1)

    async def main() -> None:
        await produce(servers, "idle", 20)
        kw: dict[str, Any] = {"bootstrap_servers": servers, "group_id": "w", "auto_offset_reset": "earliest",
                              "enable_auto_commit": False}
        a = AIOKafkaConsumer("idle", max_poll_interval_ms=300, **kw)
        await a.start()
        log = registry.log_for({"bootstrap.servers": servers}).log
        try:
            first = await a.getone()
            assert first.offset == 0
            await asyncio.sleep(1.0)  # "processing" (the event loop is free all along)
            assert log.describe_group("w").members == ()
            with pytest.raises(errors.CommitFailedError):
                await a.commit()
            b = AIOKafkaConsumer("idle", **kw)
            await b.start()
            try:
                assert b.assignment() == {TopicPartition("idle", 0)}
                got = await a.getmany(timeout_ms=300)  # rejoins; the rebalance gives the partition to either
                offsets = [r.offset for records in got.values() for r in records]
                # not offsets 1.. of what it had buffered: from the group's position (none committed)
                assert offsets == list(range(len(offsets)))
                assert bool(offsets) == (a.assignment() == {TopicPartition("idle", 0)})
            finally:
                await b.stop()
        finally:
            await a.stop()

    run(main)


def test_first_join_calls_revoked_with_the_empty_set_before_assigned(servers: str) -> None:
    """aiokafka's _on_join_prepare: on_partitions_revoked(set()) without a previous
    assignment, then on_partitions_assigned."""
    calls: list[tuple[str, list[TopicPartition]]] = []

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: Any) -> None:
            calls.append(("revoked", sorted(revoked)))

        def on_partitions_assigned(self, assigned: Any) -> None:
            calls.append(("assigned", sorted(assigned)))

    async def main() -> None:
        await produce(servers, "fj", 1)
        c = AIOKafkaConsumer(bootstrap_servers=servers, group_id="fj", auto_offset_reset="earliest")
        c.subscribe(["fj"], listener=Listener())
        await c.start()
        await c.getone()
        await c.stop()

    run(main)
    # and nothing at stop(): aiokafka's coordinator only leaves the group (the shim called
    # on_partitions_revoked, whose usual `await consumer.commit()` raised ConsumerStoppedError)
    assert calls == [("revoked", []), ("assigned", [TopicPartition("fj", 0)])]


def test_commit_metadata_is_returned_by_the_admin(servers: str) -> None:
    async def main() -> Any:
        await produce(servers, "md", 3)
        async with AIOKafkaConsumer("md", bootstrap_servers=servers, group_id="gmd", auto_offset_reset="earliest",
                                    enable_auto_commit=False) as c:
            await c.getone()
            await c.commit({TopicPartition("md", 0): (2, "batch-7")})
        a = AIOKafkaAdminClient(bootstrap_servers=servers)
        await a.start()
        try:
            return (await a.list_consumer_group_offsets("gmd"),
                    await a.list_consumer_group_offsets("gmd", partitions=[TopicPartition("md", 0)]))
        finally:
            await a.close()

    every, asked = run(main)
    assert every == asked == {TopicPartition("md", 0): (2, "batch-7")}


def test_a_commit_beyond_the_end_is_taken_as_the_broker_takes_it(servers: str) -> None:
    async def main() -> Any:
        await produce(servers, "be", 3)
        async with AIOKafkaConsumer("be", bootstrap_servers=servers, group_id="gbe",
                                    enable_auto_commit=False) as c:
            await c.commit({TopicPartition("be", 0): 50})
            return await c.committed(TopicPartition("be", 0))

    assert run(main) == 50


def test_record_metadata_of_a_log_append_time_topic(servers: str) -> None:
    """aiokafka: timestamp_type 1 and the log's timestamp when the topic stamps records
    (LogAppendTime), 0 and the producer's timestamp otherwise."""
    async def main() -> Any:
        a = AIOKafkaAdminClient(bootstrap_servers=servers)
        await a.start()
        await a.create_topics([AioNewTopic("lat", 1, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})])
        await a.close()
        async with AIOKafkaProducer(bootstrap_servers=servers) as p:
            create_time = await p.send_and_wait("ct", b"v", timestamp_ms=1000)
            append_time = await p.send_and_wait("lat", b"v", timestamp_ms=1000)
        async with AIOKafkaConsumer("lat", bootstrap_servers=servers, auto_offset_reset="earliest") as c:
            return create_time, append_time, await c.getone()

    create_time, append_time, record = run(main)
    assert (create_time.timestamp, create_time.timestamp_type) == (1000, 0)
    assert (record.timestamp_type, append_time.timestamp_type) == (1, 1)
    assert append_time.timestamp == record.timestamp != 1000


def test_assignment_and_subscribe_checks_before_start(servers: str) -> None:
    """As aiokafka: ``assign`` before ``start`` shows in ``assignment()`` at once, and a
    topic string given to ``subscribe`` is a ``TypeError`` whatever else is set."""
    async def main() -> None:
        c = AIOKafkaConsumer(bootstrap_servers=servers, auto_offset_reset="earliest")
        tp = TopicPartition("a", 0)
        c.assign([tp])
        assert c.assignment() == frozenset({tp})
        with pytest.raises(TypeError):
            c.subscribe("a")  # type: ignore[arg-type]
        await c.start()
        assert c.assignment() == frozenset({tp})
        await c.stop()

    run(main)


def test_fetch_errors_come_from_getmany_not_start_and_the_group_task_survives(servers: str) -> None:
    """As aiokafka: ``start()`` returns; a missing offset (``auto_offset_reset="none"``) or
    a record its deserializer cannot read raise from ``getmany``/``getone`` (they raised
    from ``start()``), and such a record does not end the consumer's background group task
    (it died, so nothing followed the group nor auto-committed)."""
    import json  # noqa: PLC0415

    async def main() -> None:
        await produce(servers, "t", 1)
        c = AIOKafkaConsumer("t", group_id="g", bootstrap_servers=servers, auto_offset_reset="none")
        await c.start()
        with pytest.raises(errors.NoOffsetForPartitionError):
            await c.getmany(timeout_ms=1000)
        await c.stop()
        async with AIOKafkaProducer(bootstrap_servers=servers) as p:
            await p.send_and_wait("j", b"not json")
            await p.send_and_wait("j", b'{"a": 1}')
        c = AIOKafkaConsumer("j", group_id="g2", bootstrap_servers=servers, auto_offset_reset="earliest",
                             value_deserializer=json.loads)
        await c.start()
        await asyncio.sleep(0.5)  # (the background task fetches meanwhile)
        assert c._bg is not None
        assert not c._bg.done()
        with pytest.raises(ValueError):
            await c.getone()
        c.seek(TopicPartition("j", 0), 1)
        assert (await c.getone()).value == {"a": 1}
        await c.stop()

    run(main)


def test_acks_0_resolves_to_none(servers: str) -> None:
    """aiokafka resolves a send (or batch) nobody acknowledges (``acks=0``) to ``None``."""
    async def main() -> None:
        async with AIOKafkaProducer(bootstrap_servers=servers, acks=0) as p:
            assert await p.send_and_wait("z", b"v") is None
            batch = p.create_batch()
            batch.append(key=None, value=b"b", timestamp=None)
            assert await (await p.send_batch(batch, "z", partition=0)) is None
        async with AIOKafkaProducer(bootstrap_servers=servers, acks=1) as p:
            assert (await p.send_and_wait("z", b"v")).offset == 2

    run(main)


def test_idle_consumers_hold_no_executor_thread(servers: str) -> None:
    """Consumers waiting in ``getmany`` wait on the event loop: each held a thread of the
    loop's default executor, so a few idle consumers starved ``flush()``, ``commit()`` and
    the app's own ``run_in_executor`` calls."""
    import sys  # noqa: PLC0415
    import traceback  # noqa: PLC0415

    async def main() -> int:
        consumers = [AIOKafkaConsumer("idle", bootstrap_servers=servers, group_id=f"g{i}") for i in range(8)]
        for c in consumers:
            await c.start()
        waiting = [asyncio.create_task(c.getmany(timeout_ms=2000)) for c in consumers]
        await asyncio.sleep(0.3)
        blocked = sum(1 for frame in sys._current_frames().values()
                      if any(f.name == "wait_for_data" for f in traceback.extract_stack(frame)))
        await asyncio.gather(*waiting)
        for c in consumers:
            await c.stop()
        return blocked

    assert run(main) == 0
