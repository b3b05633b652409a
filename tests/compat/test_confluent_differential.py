"""Differential tests: the same scenarios against embedlog's confluent-kafka shim and
against the real confluent-kafka talking to librdkafka's mock cluster
(``test.mock.num.brokers``), asserting the same observable results.

Every scenario is a function of a ``Side`` (which client library, which cluster) that
returns what an application could observe; a test runs it on the shim, checks the
result against fixed expectations (so the shim is tested even without confluent-kafka),
then runs it on the real client and asserts the two results are equal.  Where the two
cannot match, the test says why and compares only what can match:

* the mock auto-creates topics with 4 partitions, so the shim is given 4 as well;
* Kafka writes a control record (commit/abort marker) per partition per transaction,
  which takes an offset; embedlog has no control records, so offsets after a
  transaction differ (values and order are compared instead);
* the mock cluster does not filter aborted records for ``read_committed`` consumers,
  does not store offsets sent with ``send_offsets_to_transaction`` and does not answer
  ``offsets_for_times`` by timestamp: those checks run on the shim only.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from embedlog.compat import confluent_kafka as shim
from embedlog.compat import registry

try:
    import confluent_kafka as real

    from procs import mock_kafka  # (it imports confluent_kafka)
except ImportError:  # pragma: no cover - CI installs it (the test extra)
    real = None

NEEDS_REAL = "confluent-kafka is not installed: only the shim side ran"


class Side:
    """One client library plus the cluster it talks to."""

    def __init__(self, name: str, mod: ModuleType, base: dict[str, Any]) -> None:
        self.name = name
        self.mod = mod
        self.base = base
        self.clients: list[Any] = []

    def producer(self, **conf: Any) -> Any:
        p = self.mod.Producer({**self.base, **_dotted(conf)})
        self.clients.append(p)
        return p

    def consumer(self, **conf: Any) -> Any:
        c = self.mod.Consumer({**self.base, "auto.offset.reset": "earliest", **_dotted(conf)})
        self.clients.append(c)
        return c

    def tp(self, topic: str, partition: int, offset: int = -1001) -> Any:
        return self.mod.TopicPartition(topic, partition, offset)

    def topic(self, prefix: str = "t") -> str:
        """A fresh topic with 4 partitions (created through producer metadata, which
        auto-creates on both the mock and the shim)."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        p = self.producer()
        md = p.list_topics(name, timeout=10)
        assert len(md.topics[name].partitions) == 4
        return name

    def close(self) -> None:
        for c in reversed(self.clients):
            try:
                if hasattr(c, "assignment"):
                    c.close()
                else:
                    c.flush(5)
            except Exception:
                pass
        self.clients.clear()


def _dotted(conf: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments with ``_`` for ``.`` (``group_id`` -> ``group.id``)."""
    return {k.replace("__", "@").replace("_", ".").replace("@", "_"): v for k, v in conf.items()}


@pytest.fixture(scope="module")
def mock_cluster() -> Iterator[str | None]:
    """``bootstrap.servers`` of a librdkafka mock cluster (one per module), or None."""
    if real is None:
        yield None
        return
    with mock_kafka.in_process(timeout=10) as servers:
        yield servers


@pytest.fixture
def sides(tmp_path: Path, mock_cluster: str | None) -> Iterator[Callable[[], list[Side]]]:
    """``sides()`` -> [shim side, real side (if installed)], fresh for each scenario run."""
    made: list[Side] = []

    def make() -> list[Side]:
        out = [Side("shim", shim, {"bootstrap.servers": "differential:9092",
                                   "embedlog.path": str(tmp_path / f"log-{len(made)}"),
                                   "embedlog.num.partitions": 4})]
        if mock_cluster is not None:
            out.append(Side("real", real, {"bootstrap.servers": mock_cluster, "log_level": 0}))
        made.extend(out)
        return out

    yield make
    for s in made:
        s.close()
    registry.reset()


def run(sides: Callable[[], list[Side]], scenario: Callable[[Side], Any]) -> Any:
    """Run ``scenario`` on each side; assert equal results; return the shim's."""
    results = {}
    for side in sides():
        try:
            results[side.name] = scenario(side)
        finally:
            side.close()
    if "real" in results:
        assert results["shim"] == results["real"], f"shim {results['shim']!r} != real {results['real']!r}"
    return results["shim"]


# -- helpers ------------------------------------------------------------------------------------------
def drain(consumer: Any, *, until: Callable[[list[Any]], bool], timeout: float = 15.0) -> list[Any]:
    """Poll until ``until(received)`` or ``timeout``; return what was received."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        m = consumer.poll(0.2)
        if m is not None:
            got.append(m)
    return got


def eofs(msgs: list[Any]) -> list[Any]:
    return [m for m in msgs if m.error() is not None and m.error().code() == -191]


def data(msgs: list[Any]) -> list[Any]:
    return [m for m in msgs if m.error() is None]


def view(m: Any) -> tuple[Any, ...]:
    """What a consumed message shows, minus its (wall-clock) timestamp value."""
    return (m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[0], len(m))


def by_partition(msgs: list[Any]) -> dict[int, list[tuple[Any, ...]]]:
    out: dict[int, list[tuple[Any, ...]]] = {}
    for m in data(msgs):
        out.setdefault(m.partition(), []).append(view(m)[2:])
    return out


def error_of(fn: Callable[[], Any]) -> tuple[str, Any, Any]:
    """``(exception type, code, str)`` of what ``fn`` raises (or ``("ok", None, None)``)."""
    try:
        fn()
    except Exception as exc:
        err = exc.args[0] if exc.args else None
        if hasattr(err, "code"):
            return type(exc).__name__, err.code(), err.str()
        return type(exc).__name__, None, str(exc)
    return "ok", None, None


# -- scenarios ------------------------------------------------------------------------------------------
def test_produce_consume_with_keys_headers_and_reports(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        reports: list[tuple[Any, ...]] = []

        def on_delivery(err: Any, msg: Any) -> None:
            reports.append((err, msg.topic() == topic, msg.partition(), msg.offset(), msg.key(), msg.value(),
                            msg.headers(), threading.current_thread() is threading.main_thread()))

        for i in range(12):
            key = f"user-{i % 5}".encode() if i % 4 else f"user-{i % 5}"  # str keys are UTF-8 encoded
            headers = [("trace", f"t{i}".encode()), ("dup", None), ("dup", "s")] if i % 3 == 0 else None
            p.produce(topic, value=f"v{i}" if i % 2 else f"v{i}".encode(), key=key, headers=headers,
                      on_delivery=on_delivery)
        p.produce(topic, value=None, key=b"user-1", on_delivery=on_delivery)  # tombstone
        p.produce(topic, value=b"dated", key=b"user-2", timestamp=1_600_000_000_123, on_delivery=on_delivery)
        assert reports == []  # reports only from poll()/flush()
        remaining = p.flush(10)
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6], enable_partition_eof=True)
        c.assign([side.tp(topic, i) for i in range(4)])
        got = drain(c, until=lambda g: len(data(g)) == 14 and len(eofs(g)) >= 4)
        reports.sort(key=lambda r: (r[2], r[3]))
        dated = [m.timestamp() for m in data(got) if m.value() == b"dated"]
        return {"remaining": remaining, "len": len(p), "reports": reports, "records": by_partition(got),
                "eof": sorted((m.partition(), m.offset()) for m in eofs(got)), "dated": dated}

    result = run(sides, scenario)
    assert result["remaining"] == 0
    assert result["len"] == 0
    assert len(result["reports"]) == 14
    assert all(r[0] is None and r[7] for r in result["reports"])  # no error; served on this thread
    assert sum(len(v) for v in result["records"].values()) == 14
    assert result["dated"] == [(1, 1_600_000_000_123)]  # (TIMESTAMP_CREATE_TIME, ms)
    # CRC32 of the key picks the partition (consistent_random, librdkafka's default)
    assert {r[4]: r[2] for r in result["reports"]}[b"user-1"] == shim.consistent(b"user-1", 4)


PARTITIONERS = [None, "consistent_random", "consistent", "murmur2", "murmur2_random", "fnv1a", "fnv1a_random"]


def test_partition_choice_per_key_for_each_partitioner(sides: Callable[[], list[Side]]) -> None:
    keys = [f"key-{i}".encode() for i in range(40)] + [b"\x00\xff", "ü-key".encode(), b"x" * 300]

    def scenario(side: Side) -> Any:
        out = {}
        for name in PARTITIONERS:
            topic = side.topic()
            p = side.producer(**({"partitioner": name} if name else {}))
            placed: dict[bytes, int] = {}
            for k in keys:
                p.produce(topic, b"v", key=k, on_delivery=lambda e, m: placed.__setitem__(m.key(), m.partition()))
            if name in ("consistent", "murmur2", "murmur2_random", "fnv1a"):
                # deterministic for an empty key too (the *_random ones with a CRC32/FNV
                # hash spread empty keys randomly, like null keys)
                p.produce(topic, b"v", key=b"", on_delivery=lambda e, m: placed.__setitem__(b"<empty>", m.partition()))
            if name in ("consistent", "murmur2", "fnv1a"):
                p.produce(topic, b"v", key=None,
                          on_delivery=lambda e, m: placed.__setitem__(b"<null>", m.partition()))
            assert p.flush(10) == 0
            out[name] = placed
        return out

    result = run(sides, scenario)
    assert set(result[None].values()) == {0, 1, 2, 3}
    assert result[None] == result["consistent_random"]  # the default
    assert result["murmur2"] != result["consistent"]


def test_unkeyed_messages_stick_to_one_partition_across_flushes(sides: Callable[[], list[Side]]) -> None:
    """librdkafka's sticky partitioner holds a partition for sticky.partitioning.linger.ms
    (time, not batches): produce + flush pairs within it land on one partition; the shim
    rotated at every flush."""

    def scenario(side: Side) -> Any:
        out = {}
        for name, key in (("null", None), ("empty", b"")):  # (consistent_random: an empty key is as a null one)
            topic = side.topic()
            p = side.producer(sticky_partitioning_linger_ms=60_000)  # (the default 10 ms: too short on a busy CI)
            placed: list[int] = []
            for i in range(8):
                p.produce(topic, b"%d" % i, key=key, on_delivery=lambda e, m: placed.append(m.partition()))
                assert p.flush(10) == 0
            out[name] = len(set(placed))
        return out

    assert run(sides, scenario) == {"null": 1, "empty": 1}


def test_offsets_watermarks_and_positions(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        for i in range(7):
            p.produce(topic, f"a{i}".encode(), partition=0)
        for i in range(3):
            p.produce(topic, f"b{i}".encode(), partition=1)
        p.flush(10)
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6], enable_auto_commit=False)
        tps = [side.tp(topic, i) for i in range(4)]
        before = {
            "wm": [c.get_watermark_offsets(tp, timeout=10) for tp in tps],
            "cached": c.get_watermark_offsets(tps[0], cached=True),
            "committed": [x.offset for x in c.committed(tps, timeout=10)],
        }
        c.assign([tps[0], tps[1]])
        before["position"] = [x.offset for x in c.position(tps)]
        got = drain(c, until=lambda g: len(data(g)) == 10)
        after = {
            "position": [x.offset for x in c.position(tps)],
            "cached": [c.get_watermark_offsets(tp, cached=True) for tp in tps[:2]],
            "assignment": sorted((x.topic == topic, x.partition, x.offset) for x in c.assignment()),
        }
        # (which partition's records come first is up to the fetcher: not compared)
        return {"before": before, "after": after, "consumed": by_partition(got)}

    result = run(sides, scenario)
    assert result["before"]["wm"] == [(0, 7), (0, 3), (0, 0), (0, 0)]
    assert result["before"]["cached"] == (-1001, -1001)
    assert result["before"]["committed"] == [-1001] * 4
    assert result["before"]["position"] == [-1001] * 4
    assert result["after"] == {"position": [7, 3, -1001, -1001], "cached": [(0, 7), (0, 3)],
                               "assignment": [(True, 0, -1000), (True, 1, -1000)]}
    assert [o for o, *_ in result["consumed"][0]] == list(range(7))


def test_commit_and_resume_in_a_new_consumer(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        group = "g-" + uuid.uuid4().hex[:6]
        p = side.producer()
        for i in range(10):
            p.produce(topic, f"m{i}".encode(), partition=2)
        p.flush(10)
        tp = side.tp(topic, 2)
        c1 = side.consumer(group_id=group, enable_auto_commit=False)
        no_offset = error_of(lambda: c1.commit(asynchronous=False))
        c1.assign([tp])
        first = data(drain(c1, until=lambda g: len(data(g)) == 4))
        sync = c1.commit(asynchronous=False)
        again = error_of(lambda: c1.commit(asynchronous=False))  # nothing stored since: nothing to commit
        by_message = c1.commit(message=first[1], asynchronous=False)
        explicit = c1.commit(offsets=[side.tp(topic, 2, 3)], asynchronous=False)
        assert c1.commit(offsets=[side.tp(topic, 2, 4)]) is None  # asynchronous by default
        c1.close()
        c2 = side.consumer(group_id=group, enable_auto_commit=False)
        committed = [x.offset for x in c2.committed([tp], timeout=10)]
        c2.assign([side.tp(topic, 2)])
        resumed = data(drain(c2, until=lambda g: len(data(g)) == 6))
        closed = error_of(lambda: (c2.close(), c2.poll(0)))
        return {"no_offset": no_offset, "again": again, "sync": [(x.partition, x.offset) for x in sync],
                "by_message": [(x.partition, x.offset) for x in by_message],
                "explicit": [(x.partition, x.offset) for x in explicit], "committed": committed,
                "resumed": [m.offset() for m in resumed], "closed": closed}

    result = run(sides, scenario)
    assert result["no_offset"][1] == -168  # _NO_OFFSET
    assert result["sync"] == [(2, 4)]
    assert result["again"][1] == -168  # _NO_OFFSET again (librdkafka commits only what is newer)
    assert result["by_message"] == [(2, 2)]
    assert result["explicit"] == [(2, 3)]
    assert result["committed"] == [4]
    assert result["resumed"] == [4, 5, 6, 7, 8, 9]
    assert result["closed"] == ("RuntimeError", None, "Consumer closed")


def test_seek(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        for i in range(6):
            p.produce(topic, f"s{i}".encode(), partition=0)
        p.flush(10)
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6])
        c.assign([side.tp(topic, 0)])
        first = [m.offset() for m in data(drain(c, until=lambda g: len(data(g)) == 3))]
        c.seek(side.tp(topic, 0, 1))
        after_seek = [x.offset for x in c.position([side.tp(topic, 0)])]
        again = [m.offset() for m in data(drain(c, until=lambda g: len(data(g)) == 2))]
        c.seek(side.tp(topic, 0, -2))  # OFFSET_BEGINNING
        start = [m.offset() for m in data(drain(c, until=lambda g: len(data(g)) == 1))]
        errors = [error_of(lambda: c.seek(side.tp(topic, 3, 0))),  # same topic, not assigned
                  error_of(lambda: c.seek(side.tp("other-" + topic, 0, 0)))]
        return {"first": first, "position_after_seek": after_seek, "again": again, "start": start,
                "errors": errors}

    result = run(sides, scenario)
    assert result == {"first": [0, 1, 2], "position_after_seek": [-1001], "again": [1, 2], "start": [0],
                      "errors": [("KafkaException", -172, "Failed to seek to offset 0: Local: Erroneous state"),
                                 ("KafkaException", -190, "Failed to seek to offset 0: Local: Unknown partition")]}


def test_pause_and_resume(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        for i in range(6):
            p.produce(topic, f"p{i}".encode(), partition=0)
        p.flush(10)
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6], enable_partition_eof=True)
        tp = side.tp(topic, 0)
        c.assign([tp])
        before = [m.offset() for m in data(drain(c, until=lambda g: len(data(g)) == 2))]
        c.pause([tp])
        while_paused = drain(c, until=lambda g: False, timeout=1.0)
        p.produce(topic, b"late", partition=0)
        p.flush(10)
        paused_after_produce = drain(c, until=lambda g: False, timeout=1.0)
        c.resume([tp])
        after = drain(c, until=lambda g: len(eofs(g)) >= 1)
        return {"before": before, "paused": len(while_paused) + len(paused_after_produce),
                "after": [m.offset() for m in data(after)], "eof": [m.offset() for m in eofs(after)]}

    result = run(sides, scenario)
    assert result == {"before": [0, 1], "paused": 0, "after": [2, 3, 4, 5, 6], "eof": [7]}


def test_partition_eof_events(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        p.produce(topic, b"x", partition=1)
        p.produce(topic, b"y", partition=1)
        p.produce(topic, b"z", partition=3)
        p.flush(10)
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6], enable_partition_eof=True)
        c.assign([side.tp(topic, i) for i in range(4)])
        first = drain(c, until=lambda g: len(eofs(g)) >= 4)
        idle = drain(c, until=lambda g: False, timeout=1.0)  # no repeated EOF while nothing changes
        p.produce(topic, b"w", partition=1)
        p.flush(10)
        more = drain(c, until=lambda g: len(eofs(g)) >= 1)
        e = eofs(first)[0]
        shape = (e.error().code(), e.error().name(), e.key(), e.headers(), e.timestamp(),
                 e.value() == e.error().str().encode(), e.error().str().startswith("Fetch from broker "))
        per_partition = {}
        for m in first:  # each partition's EOF comes after its records
            per_partition.setdefault(m.partition(), []).append("EOF" if m.error() else m.offset())
        return {"eof": sorted((m.partition(), m.offset()) for m in eofs(first)), "per_partition": per_partition,
                "idle": len(idle), "more": [("EOF", m.offset()) if m.error() else m.offset() for m in more],
                "shape": shape}

    result = run(sides, scenario)
    assert result["eof"] == [(0, 0), (1, 2), (2, 0), (3, 1)]
    assert result["per_partition"][1] == [0, 1, "EOF"]
    assert result["idle"] == 0
    assert result["more"] == [2, ("EOF", 3)]
    assert result["shape"] == (-191, "_PARTITION_EOF", None, None, (0, -1), True, True)


def test_unknown_topic_subscription_gives_an_error_event(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        name = "missing-" + uuid.uuid4().hex[:8]
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6])
        c.subscribe([name])
        got = drain(c, until=lambda g: len(g) >= 1, timeout=10)
        m = got[0]
        subscribed = (m.error().code(), m.error().str().replace(name, "<t>"), m.topic() == name,
                      m.value() == m.error().str().encode())
        c2 = side.consumer(group_id="g-assign")
        c2.assign([side.tp(name + "-2", 0)])
        m = drain(c2, until=lambda g: len(g) >= 1, timeout=10)[0]
        assigned = (m.error().code(), m.error().str().replace(name, "<t>"), m.topic() == name + "-2", m.partition())
        md = c2.list_topics(name + "-3", timeout=10)
        listed = (md.topics[name + "-3"].error.code(), len(md.topics[name + "-3"].partitions))
        return subscribed, assigned, listed

    assert run(sides, scenario) == (
        (3, "Subscribed topic not available: <t>: Broker: Unknown topic or partition", True, True),
        (3, 'Failed to fetch committed offset for group "g-assign" topic <t>-2 [0]: Broker: Unknown topic or partition',
         True, 0),
        (3, 0),
    )


def test_producer_and_consumer_errors(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        p.list_topics(topic, timeout=10)  # this producer knows the partition count now
        c = side.consumer(group_id="g")
        results = [
            error_of(lambda: p.produce(topic, b"x", partition=9)),
            error_of(lambda: p.produce(topic, 42)),
            error_of(lambda: p.produce(topic, b"v", key=1.5)),
            error_of(lambda: p.produce(topic, b"v", headers=[("h", 1)])),
            error_of(lambda: p.produce(topic, b"x" * 1_000_001)),
            error_of(lambda: p.init_transactions(1)),
            error_of(lambda: side.mod.Consumer({**side.base})),
            error_of(lambda: c.subscribe(topic)),
            error_of(lambda: c.subscribe([])),
            error_of(lambda: c.consume(-1, 0.1)),
            error_of(lambda: c.store_offsets(offsets=[side.tp(topic, 0, 1)])),
            error_of(lambda: c.incremental_unassign([side.tp(topic, 3)])),
            error_of(lambda: (c.incremental_assign([side.tp(topic, 1, 0)]),
                              c.incremental_assign([side.tp(topic, 1, 0)]))),
            error_of(lambda: c.incremental_unassign([side.tp(topic, 3)])),
        ]
        return [(kind, code, text.replace(topic, "<t>") if text else text) for kind, code, text in results]

    result = run(sides, scenario)
    assert result[0] == ("KafkaException", -190, "Unable to produce message: Local: Unknown partition")
    assert result[6] == ("ValueError", None, "Failed to create consumer: group.id must be set")
    assert result[11] == ("KafkaException", -186, "Can't subtract from empty assignment")
    assert result[12] == ("KafkaException", -173, "<t> [1] is already part of the current assignment")
    assert result[13] == ("KafkaException", -186,
                          "<t> [3] can't be unassigned since it is not in the current assignment")


def test_metadata(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        md = side.producer().list_topics(timeout=10)
        tm = md.topics[topic]
        pm = tm.partitions[2]
        broker = next(iter(md.brokers.values()))
        return {"brokers": len(md.brokers), "partitions": sorted(tm.partitions), "error": tm.error,
                "leader_is_broker": pm.leader == broker.id, "replicas": pm.replicas == [broker.id] == pm.isrs,
                "types": (type(md).__name__, type(tm).__name__)}

    assert run(sides, scenario) == {"brokers": 1, "partitions": [0, 1, 2, 3], "error": None, "leader_is_broker": True,
                                    "replicas": True, "types": ("ClusterMetadata", "TopicMetadata")}


def test_offset_reset_policies_and_stored_offsets(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        for i in range(3):
            p.produce(topic, f"old-{i}".encode(), partition=0)
        p.flush(10)
        tp = side.tp(topic, 0)
        latest = side.consumer(group_id="g-latest-" + topic, auto_offset_reset="latest", enable_partition_eof=True)
        latest.assign([tp])
        first = drain(latest, until=lambda g: len(eofs(g)) >= 1)  # positioned at the end
        for i in range(2):
            p.produce(topic, f"new-{i}".encode(), partition=0)
        p.flush(10)
        new = data(drain(latest, until=lambda g: len(data(g)) >= 2))
        error = side.consumer(group_id="g-error-" + topic, auto_offset_reset="error")
        error.assign([tp])
        ev = drain(error, until=lambda g: len(g) >= 1, timeout=10)[0]
        # enable.auto.offset.store=false: commit() commits what store_offsets() stored
        manual = side.consumer(group_id="g-store-" + topic, enable_auto_offset_store=False, enable_auto_commit=False)
        manual.assign([tp])
        got = data(drain(manual, until=lambda g: len(data(g)) >= 4))
        manual.store_offsets(message=got[1])
        committed = [(x.partition, x.offset) for x in manual.commit(asynchronous=False)]
        # enable.auto.commit (the default): close() commits the offsets of what was consumed
        auto = side.consumer(group_id="g-auto-" + topic)
        auto.assign([tp])
        data(drain(auto, until=lambda g: len(data(g)) >= 3))
        auto.close()
        check = side.consumer(group_id="g-auto-" + topic)
        return {"eof_at": [m.offset() for m in eofs(first)], "new": [m.value() for m in new],
                "error": (ev.error().code(), ev.error().str(), ev.partition(), ev.offset()),
                "stored": committed, "auto_committed": [x.offset for x in check.committed([tp], timeout=10)],
                "batch": len(check.consume(10, timeout=0.5))}

    assert run(sides, scenario) == {
        "eof_at": [3], "new": [b"new-0", b"new-1"],
        "error": (-140, "no previously committed offset available: Local: No offset stored", 0, None),
        "stored": [(0, 2)], "auto_committed": [3], "batch": 0,
    }


BAD_CONFIGS = [
    {"no.such.key": 1}, {"auto.offset.reset": "sometimes"}, {"enable.auto.commit": "maybe"},
    {"linger.ms": "soon"}, {"linger.ms": -5}, {"acks": 1001}, {"compression.type": "brotli"},
    {"partitioner": "round_robin"}, {"session.timeout.ms": ""}, {"isolation.level": "dirty"},
    {"debug": "everything"}, {"dr_msg_cb": "x"}, {"key.serializer": "x"}, {"fetch.max.wait.ms": 10},
    {"partition.assignment.strategy": "sticky"}, {"partition.assignment.strategy": "range,cooperative-sticky"},
    {"max.poll.interval.ms": 1000, "session.timeout.ms": 6000}, {"on_delivery": print}, {"log_level": 8},
]
BAD_PRODUCER_CONFIGS = [
    {"transactional.id": "t", "enable.idempotence": False}, {"transactional.id": "t", "acks": 1},
    {"enable.idempotence": True, "max.in.flight": 6}, {"on_commit": print}, {"on_delivery": "not callable"},
]
GOOD_CONFIGS = [
    {"acks": "all", "linger.ms": "5.5", "compression.type": "zstd", "enable.idempotence": "TRUE",
     "security.protocol": "plaintext", "sasl.username": "u", "sasl.password": "p", "ssl.ca.location": "/x",
     "client.id": "c", "partitioner": "murmur2_random", "retries": 3, "delivery.timeout.ms": 1000},
    {"auto.offset.reset": "smallest", "enable.auto.offset.store": False, "isolation.level": "read_committed",
     "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 6000, "heartbeat.interval.ms": 100,
     "fetch.min.bytes": 1, "allow.auto.create.topics": "true", "default.topic.config": {"auto.offset.reset": "end"}},
]


def test_configuration_is_checked_like_librdkafka(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        out = [error_of(lambda conf=conf: side.mod.Consumer({**side.base, "group.id": "g", **conf}).close())
               for conf in BAD_CONFIGS + GOOD_CONFIGS]
        out += [error_of(lambda conf=conf: side.mod.Producer({**side.base, **conf}))
                for conf in BAD_PRODUCER_CONFIGS + GOOD_CONFIGS[:1]]
        return out

    result = run(sides, scenario)
    bad = len(BAD_CONFIGS)
    good = len(GOOD_CONFIGS)
    assert all(r[0] == "KafkaException" for r in result[:bad])
    assert result[bad:bad + good] == [("ok", None, None)] * good
    assert all(r[0] == "KafkaException" for r in result[bad + good:-1])
    assert result[-1] == ("ok", None, None)
    assert result[0] == ("KafkaException", -186, 'No such configuration property: "no.such.key"')


def test_a_group_of_two_consumers_splits_the_partitions(sides: Callable[[], list[Side]]) -> None:
    """Group joins on the mock take seconds: this is the one group scenario."""

    def scenario(side: Side) -> Any:
        topic = side.topic()
        group = "g-" + uuid.uuid4().hex[:6]
        p = side.producer()
        for i in range(8):
            p.produce(topic, f"before-{i}".encode(), partition=i % 4)
        p.flush(10)
        events: list[tuple[str, str, list[int]]] = []
        owned: dict[str, set[int]] = {"c1": set(), "c2": set()}

        def member(name: str) -> Any:
            c = side.consumer(group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=500,
                              partition_assignment_strategy="range")

            def cb(kind: str) -> Callable[[Any, list[Any]], None]:
                def record(consumer: Any, parts: list[Any]) -> None:
                    assert consumer is c
                    events.append((name, kind, sorted(x.partition for x in parts)))
                    if kind == "assign":
                        owned[name].update(x.partition for x in parts)
                    else:
                        owned[name].difference_update(x.partition for x in parts)
                return record

            c.subscribe([topic], on_assign=cb("assign"), on_revoke=cb("revoke"))
            return c

        c1 = member("c1")
        first = data(drain(c1, until=lambda g: len(data(g)) == 8, timeout=30))
        c1.commit(asynchronous=False)
        c2 = member("c2")
        got: dict[str, list[Any]] = {"c1": [], "c2": []}

        def both(done: Callable[[], bool], timeout: float) -> None:
            """Poll both members, each on its own thread, until ``done()``."""
            stop = time.monotonic() + timeout

            def pump(name: str, c: Any) -> None:
                while time.monotonic() < stop and not done():
                    m = c.poll(0.1)
                    if m is not None and m.error() is None:
                        got[name].append(m)

            t = threading.Thread(target=pump, args=("c1", c1))
            t.start()
            pump("c2", c2)
            t.join()

        # (not c.assignment() here: calling it while another thread polls that consumer can
        # deadlock librdkafka's Python binding during a rebalance)
        both(lambda: len(owned["c1"]) == 2 and len(owned["c2"]) == 2, 40)
        parts = {name: sorted(x.partition for x in c.assignment()) for name, c in (("c1", c1), ("c2", c2))}
        # produce after the rebalance: every record reaches the owner of its partition
        for i in range(4):
            p.produce(topic, f"after-{i}".encode(), partition=i)
        p.flush(10)
        both(lambda: len(got["c1"]) + len(got["c2"]) >= 4, 20)
        received = {name: sorted((m.partition(), m.value()) for m in msgs) for name, msgs in got.items()}
        c2.close()
        return {"first": len(first), "split": sorted(parts.values()),
                "owners_got_theirs": all(pp in parts[name] for name, rs in received.items() for pp, _ in rs),
                "after": sorted(v for rs in received.values() for _, v in rs if v.startswith(b"after")),
                "c2_close_revoked": events[-1][0:2] == ("c2", "revoke")}

    result = run(sides, scenario)
    assert result == {"first": 8, "split": [[0, 1], [2, 3]], "owners_got_theirs": True,
                      "after": [b"after-0", b"after-1", b"after-2", b"after-3"], "c2_close_revoked": True}


def test_transactions_commit_and_abort(sides: Callable[[], list[Side]]) -> None:
    """Aborted messages are never seen.  Offsets are compared only on the shim: Kafka
    gives each commit/abort marker an offset, embedlog has no markers."""

    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer(transactional_id="tx-" + uuid.uuid4().hex[:6])
        reports: list[tuple[Any, bytes]] = []

        def on_delivery(err: Any, msg: Any) -> None:
            reports.append((None if err is None else err.code(), msg.value()))

        states = [error_of(p.begin_transaction)]
        p.init_transactions(10)
        p.begin_transaction()
        states.append(error_of(p.begin_transaction))
        for v in (b"c0", b"c1", b"c2"):
            p.produce(topic, v, partition=0, on_delivery=on_delivery)
        p.commit_transaction(10)
        states.append(error_of(lambda: p.commit_transaction(10)))
        states.append(error_of(lambda: p.produce(topic, b"outside", partition=0)))
        p.begin_transaction()
        for v in (b"a0", b"a1", b"a2"):
            p.produce(topic, v, partition=0, on_delivery=on_delivery)
        p.abort_transaction(10)
        p.begin_transaction()
        p.produce(topic, b"c3", partition=0, on_delivery=on_delivery)
        p.commit_transaction(10)
        p.poll(0)
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6], isolation_level="read_committed",
                          enable_partition_eof=True)
        c.assign([side.tp(topic, 0)])
        got = drain(c, until=lambda g: len(eofs(g)) >= 1)
        offsets = [m.offset() for m in data(got)]
        if side.name == "shim":
            assert offsets == [0, 1, 2, 3]
        else:  # control records (commit markers) take offsets 3 and 5 on Kafka
            assert offsets == [0, 1, 2, 4]
        return {"values": [m.value() for m in data(got)], "reports": sorted(reports, key=lambda r: r[1]),
                "states": states, "len": len(p)}

    result = run(sides, scenario)
    assert result["values"] == [b"c0", b"c1", b"c2", b"c3"]
    assert result["reports"] == [(-152, b"a0"), (-152, b"a1"), (-152, b"a2"),
                                 (None, b"c0"), (None, b"c1"), (None, b"c2"), (None, b"c3")]
    assert result["states"] == [("KafkaException", -172, "Operation not valid in state Init"),
                                ("KafkaException", -172, "Operation not valid in state InTransaction"),
                                ("KafkaException", -172, "Operation not valid in state Ready"),
                                ("KafkaException", -172, "Unable to produce message: Local: Erroneous state")]


def test_shim_only_aborted_records_that_were_flushed_stay_invisible(sides: Callable[[], list[Side]]) -> None:
    """Shim only: the mock cluster keeps aborted records visible to read_committed
    consumers (it does not track aborted transactions), so the real side cannot be the
    reference here; Kafka itself hides them, as the shim does."""
    shim_side = sides()[0]
    topic = shim_side.topic()
    p = shim_side.producer(transactional_id="tx-flush")
    p.init_transactions(10)
    p.begin_transaction()
    p.produce(topic, b"doomed", partition=0)
    assert p.flush(1) == 1  # held by the open transaction until it commits
    p.abort_transaction(10)
    p.begin_transaction()
    p.produce(topic, b"kept", partition=0)
    p.commit_transaction(10)
    c = shim_side.consumer(group_id="g", enable_partition_eof=True)
    c.assign([shim_side.tp(topic, 0)])
    got = drain(c, until=lambda g: len(eofs(g)) >= 1)
    assert [m.value() for m in data(got)] == [b"kept"]
    shim_side.close()


def test_leaving_partitions_commits_their_stored_offsets_with_auto_commit(sides: Callable[[], list[Side]]) -> None:
    """enable.auto.commit (the default): librdkafka commits the stored offsets of the
    partitions a replacing assign(), incremental_unassign() or unassign() stops consuming."""

    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        for part in (0, 0, 1, 1, 2):
            p.produce(topic, b"x", partition=part)
        p.flush(10)
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6], auto_commit_interval_ms=60_000)
        tps = [side.tp(topic, i) for i in range(3)]

        def committed() -> list[int]:
            time.sleep(0.5)  # (librdkafka commits in the background)
            return [x.offset for x in c.committed(tps, timeout=10)]

        c.assign([side.tp(topic, 0, 0)])
        drain(c, until=lambda g: len(data(g)) == 2)
        out = {"before": committed()}
        c.assign([side.tp(topic, 1, 0)])
        out["assign replaced"] = committed()
        drain(c, until=lambda g: len(data(g)) == 2)
        c.incremental_assign([side.tp(topic, 2, 0)])
        drain(c, until=lambda g: len(data(g)) == 1)
        c.incremental_unassign([side.tp(topic, 1)])
        out["incremental_unassign"] = committed()
        c.unassign()
        out["unassign"] = committed()
        return out

    assert run(sides, scenario) == {"before": [-1001] * 3, "assign replaced": [2, -1001, -1001],
                                    "incremental_unassign": [2, 2, -1001], "unassign": [2, 2, 1]}


def test_commit_metadata_is_returned(sides: Callable[[], list[Side]]) -> None:
    """(The mock returns no metadata for a commit without it where Kafka returns "": only
    commits with metadata are compared.)"""

    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        for _ in range(3):
            p.produce(topic, b"x", partition=0)
        p.flush(10)
        group = "g-" + uuid.uuid4().hex[:6]
        c = side.consumer(group_id=group, enable_auto_commit=False)
        asked = [side.tp(topic, 0), side.tp(topic, 1)]
        ret = c.commit(offsets=[side.mod.TopicPartition(topic, 0, 2, metadata="batch-7"),
                                side.mod.TopicPartition(topic, 1, 0, metadata="")], asynchronous=False)
        out = {"commit": [(x.offset, x.metadata) for x in ret],
               "committed": [(x.offset, x.metadata) for x in c.committed(asked, timeout=10)]}
        c.close()
        admin = importlib.import_module(side.mod.__name__ + ".admin")
        req = [side.mod.ConsumerGroupTopicPartitions(group, asked)]
        a = admin.AdminClient(side.base)  # (kept referenced until its result is in)
        res = a.list_consumer_group_offsets(req)[group].result(10)
        out["admin"] = [(x.offset, x.metadata) for x in res.topic_partitions]
        return out

    assert run(sides, scenario) == {"commit": [(2, "batch-7"), (0, "")], "committed": [(2, "batch-7"), (0, "")],
                                    "admin": [(2, "batch-7"), (0, "")]}


def test_on_commit_is_called_for_asynchronous_commits_only(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        for _ in range(3):
            p.produce(topic, b"x", partition=0)
        p.flush(10)
        calls: list[tuple[Any, list[tuple[int, int]]]] = []
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6], enable_auto_commit=False,
                          on__commit=lambda err, ps: calls.append((err and err.code(), [(x.partition, x.offset)
                                                                                          for x in ps])))
        c.assign([side.tp(topic, 0)])
        got = data(drain(c, until=lambda g: len(data(g)) == 3))
        c.commit(message=got[0])
        drain(c, until=lambda g: False, timeout=0.5)
        out: dict[str, Any] = {"async": list(calls)}
        calls.clear()
        c.commit(asynchronous=False)
        out["sync"] = error_of(lambda: c.commit(asynchronous=False))  # nothing new stored: _NO_OFFSET
        drain(c, until=lambda g: False, timeout=0.5)
        out["calls after sync"] = calls
        return out

    assert run(sides, scenario) == {"async": [(None, [(0, 1)])],
                                    "sync": ("KafkaException", -168, "Commit failed: Local: No offset stored"),
                                    "calls after sync": []}


def test_a_raising_delivery_callback_lets_the_rest_of_its_event_be_served(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer(linger_ms=100)  # (one batch: one delivery report event)
        seen: list[int] = []

        def cb(err: Any, msg: Any) -> None:
            seen.append(msg.offset())
            if msg.offset() == 0:
                raise ValueError("boom")

        for _ in range(3):
            p.produce(topic, b"x", partition=0, on_delivery=cb)
        first = error_of(lambda: p.flush(10))
        return {"first": first, "seen": list(seen), "len": len(p), "again": p.flush(10)}

    assert run(sides, scenario) == {"first": ("ValueError", None, "boom"), "seen": [0, 1, 2], "len": 0, "again": 0}


def test_produce_takes_bytes_or_str_and_any_header_name(sides: Callable[[], list[Side]]) -> None:
    """bytearray and memoryview keys, values and header values are refused; a header name
    that is not a str is sent as str(name) (b"bk" arrives as "b'bk'")."""

    def scenario(side: Side) -> Any:
        topic = side.topic()
        p = side.producer()
        cases: list[dict[str, Any]] = [
            {"value": bytearray(b"ba")}, {"value": memoryview(b"mv")}, {"value": b"x", "key": bytearray(b"k")},
            {"value": b"x", "key": memoryview(b"k")}, {"value": b"x", "headers": [("h", bytearray(b"v"))]},
            {"value": b"x", "headers": [("h", memoryview(b"v"))]},
            {"value": b"bytes-name", "headers": [(b"bk", b"v"), (7, None), ("s", "t")]},
            {"value": b"dict", "headers": {b"dk": b"v"}}, {"value": "str", "key": "k"},
        ]
        out = [error_of(lambda kw=kw: p.produce(topic, partition=0, **kw)) for kw in cases]
        p.flush(10)
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6])
        c.assign([side.tp(topic, 0)])
        got = data(drain(c, until=lambda g: len(data(g)) == 3))
        return {"produce": out, "consumed": [(m.key(), m.value(), m.headers()) for m in got]}

    result = run(sides, scenario)
    assert result["produce"][:2] == [
        ("TypeError", None, "argument 2 must be read-only bytes-like object, not bytearray"),
        ("TypeError", None, "argument 2 must be read-only bytes-like object, not memoryview")]
    assert result["produce"][-3:] == [("ok", None, None)] * 3
    assert result["consumed"] == [(None, b"bytes-name", [("b'bk'", b"v"), ("7", None), ("s", b"t")]),
                                  (None, b"dict", [("b'dk'", b"v")]), (b"k", b"str", None)]


def test_watermarks_and_offsets_for_times_of_an_unknown_partition(sides: Callable[[], list[Side]]) -> None:
    def scenario(side: Side) -> Any:
        topic = side.topic()
        c = side.consumer(group_id="g-" + uuid.uuid4().hex[:6])
        out = []
        for t, p in ((topic, 7), ("missing-" + uuid.uuid4().hex[:8], 0)):
            out.append(error_of(lambda t=t, p=p: c.get_watermark_offsets(side.tp(t, p), timeout=5)))
            out.append(error_of(lambda t=t, p=p: c.offsets_for_times([side.tp(t, p, 0)], timeout=5)))
        return out

    assert run(sides, scenario) == [
        ("KafkaException", -190, "Failed to get watermark offsets: Local: Unknown partition"),
        ("KafkaException", -190, "Failed to get offsets: Local: Unknown partition")] * 2
