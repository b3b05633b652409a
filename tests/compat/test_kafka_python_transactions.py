"""kafka-python's transactional producer API over embedlog's ``log.transaction()``.

Each test uses its own cluster (a unique ``bootstrap_servers``).  Where kafka-python is
installed, the real ``KafkaProducer`` is the oracle for everything it decides without a
broker: its config checks and its transaction state machine's errors (type and text).
kafka-python 3.0 cannot talk to librdkafka's mock cluster (it cannot decode the mock's
ApiVersions answer, and with a pinned ``api_version`` its ``init_transactions`` times
out), so transactions themselves are checked against fixed expectations.
"""

from __future__ import annotations

import importlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from embedlog.compat import registry
from embedlog.compat.kafka_python import (
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    NewTopic,
    OffsetAndMetadata,
    TopicPartition,
    errors,
)
from embedlog.compat.kafka_python.producer import FutureRecordMetadata

try:
    import kafka as real_kafka
except ImportError:  # pragma: no cover - the test extra installs it
    real_kafka = None

_ids = itertools.count()


@pytest.fixture
def servers() -> Iterator[str]:
    yield f"kptx-{next(_ids)}:9092"
    registry.reset()


def create(servers: str, topic: str, partitions: int) -> None:
    KafkaAdminClient(bootstrap_servers=servers).create_topics([NewTopic(topic, partitions, 1)])


def read_all(servers: str, topic: str, timeout: float = 0.5) -> list[bytes]:
    """Every record of ``topic`` a fresh consumer sees within ``timeout`` (no group)."""
    c = KafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest",
                      consumer_timeout_ms=int(timeout * 1000))
    try:
        return sorted(r.value for r in c)
    finally:
        c.close()


def four_inputs(servers: str) -> Any:
    """Four records in topic ``in`` (made by the caller); a consumer of group ``etl`` of it,
    without auto-commit."""
    plain = KafkaProducer(bootstrap_servers=servers)
    for i in range(4):
        plain.send("in", b"in-%d" % i)
    plain.flush()
    plain.close()
    return KafkaConsumer("in", bootstrap_servers=servers, group_id="etl", auto_offset_reset="earliest",
                         enable_auto_commit=False)


def test_a_transaction_commits_records_and_group_offsets_together(servers: str) -> None:
    create(servers, "in", 1)
    create(servers, "out", 3)
    c = four_inputs(servers)
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < 4 and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=200).values():
            got.extend(records)
    assert [r.value for r in got] == [b"in-%d" % i for i in range(4)]

    p = KafkaProducer(bootstrap_servers=servers, transactional_id="etl-1")
    p.init_transactions()
    p.begin_transaction()
    futures = [p.send("out", r.value.upper(), key=r.value) for r in got]
    # resolved at once: offsets come with the commit (-1: not known yet), partitions by murmur2
    metas = [f.get(timeout=0) for f in futures]
    assert all(m.offset == -1 for m in metas)
    if real_kafka is not None:
        murmur2 = importlib.import_module("kafka.partitioner.default").murmur2
        assert [m.partition for m in metas] == [(murmur2(r.value) & 0x7FFFFFFF) % 3 for r in got]
    p.send_offsets_to_transaction({TopicPartition("in", 0): OffsetAndMetadata(4, "", -1)}, c.group_metadata())
    assert read_all(servers, "out") == []  # nothing visible before the commit
    assert c.committed(TopicPartition("in", 0)) is None
    p.commit_transaction()
    assert read_all(servers, "out") == sorted(r.value.upper() for r in got)
    assert c.committed(TopicPartition("in", 0)) == 4
    c.close()
    p.close()


def test_abort_discards_everything_and_the_next_transaction_works(servers: str) -> None:
    create(servers, "t", 1)
    p = KafkaProducer(bootstrap_servers=servers, transactional_id="tx")
    p.init_transactions()
    p.begin_transaction()
    p.send("t", b"dropped")
    p.send_offsets_to_transaction({TopicPartition("t", 0): 0}, "some-group")
    p.abort_transaction()
    assert read_all(servers, "t") == []
    assert KafkaAdminClient(bootstrap_servers=servers).list_consumer_group_offsets("some-group") == {}
    p.begin_transaction()
    p.send("t", b"kept")
    p.commit_transaction()
    assert read_all(servers, "t") == [b"kept"]
    p.begin_transaction()
    p.send("t", b"open at close")
    p.close()  # an open transaction is aborted
    assert read_all(servers, "t") == [b"kept"]


def test_a_newer_producer_with_the_same_id_fences_the_older(servers: str) -> None:
    create(servers, "f", 1)
    old = KafkaProducer(bootstrap_servers=servers, transactional_id="same")
    old.init_transactions()
    old.begin_transaction()
    old.send("f", b"zombie")
    new = KafkaProducer(bootstrap_servers=servers, transactional_id="same")
    new.init_transactions()
    with pytest.raises(errors.ProducerFencedError):
        old.commit_transaction()
    with pytest.raises(errors.KafkaError, match="error state"):  # fatal from then on
        old.begin_transaction()
    new.begin_transaction()
    new.send("f", b"alive")
    new.commit_transaction()
    assert read_all(servers, "f") == [b"alive"]
    other = KafkaProducer(bootstrap_servers=servers, transactional_id="other-id")
    other.init_transactions()
    other.begin_transaction()  # another id is not fenced
    other.abort_transaction()


def test_offsets_of_a_member_that_lost_its_partition_fail_the_commit(servers: str) -> None:
    create(servers, "g", 1)
    kw: dict[str, Any] = {"bootstrap_servers": servers, "group_id": "grp", "auto_offset_reset": "earliest",
                          "enable_auto_commit": False}
    first = KafkaConsumer("g", **kw)
    deadline = time.monotonic() + 10
    while not first.assignment() and time.monotonic() < deadline:
        first.poll(timeout_ms=100)
    metadata = first.group_metadata()
    assert metadata.member_id
    p = KafkaProducer(bootstrap_servers=servers, transactional_id="zombie-etl")
    p.init_transactions()
    p.begin_transaction()
    p.send("g", b"output")
    p.send_offsets_to_transaction({TopicPartition("g", 0): 0}, metadata)
    first.close()  # the member leaves: its offsets are fenced
    with pytest.raises(errors.CommitFailedError):
        p.commit_transaction()
    with pytest.raises(errors.KafkaError, match="previous transactional or idempotent request has failed"):
        p.send("g", b"more")
    p.abort_transaction()  # abortable: then usable again
    assert read_all(servers, "g") == []
    p.begin_transaction()
    p.send_offsets_to_transaction({TopicPartition("g", 0): 0}, "grp")  # by group id: not fenced
    p.commit_transaction()
    assert KafkaAdminClient(bootstrap_servers=servers).list_consumer_group_offsets("grp") == {
        TopicPartition("g", 0): OffsetAndMetadata(0, "", -1)}


def test_offsets_of_a_partition_that_left_and_came_back_fail_the_commit(servers: str) -> None:
    """``group_metadata()`` taken while the member owned both partitions; one went to
    another member, which committed, and came back: the commit fails (Kafka fences it by
    generation) and the group's offset does not go back."""
    create(servers, "in", 2)
    for i in range(10):
        KafkaProducer(bootstrap_servers=servers).send("in", b"%d" % i, partition=i % 2).get()
    kw: dict[str, Any] = {"bootstrap_servers": servers, "group_id": "grp", "auto_offset_reset": "earliest",
                          "enable_auto_commit": False, "session_timeout_ms": 3000, "heartbeat_interval_ms": 50}

    def until(what: Callable[[], bool], *consumers: KafkaConsumer) -> None:
        deadline = time.monotonic() + 10
        while not what():
            assert time.monotonic() < deadline
            for c in consumers:
                c.poll(timeout_ms=10)

    a = KafkaConsumer("in", **kw)
    until(lambda: len(a.assignment()) == 2, a)
    p = KafkaProducer(bootstrap_servers=servers, transactional_id="came-back")
    p.init_transactions()
    p.begin_transaction()
    p.send("in", b"derived")
    p.send_offsets_to_transaction({TopicPartition("in", 0): OffsetAndMetadata(3, "", -1),
                                   TopicPartition("in", 1): OffsetAndMetadata(3, "", -1)}, a.group_metadata())
    b = KafkaConsumer("in", **kw)
    until(lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1, a, b)
    (moved,) = b.assignment()
    b.commit({moved: OffsetAndMetadata(0, "", -1)})
    b.close()
    until(lambda: len(a.assignment()) == 2, a)
    with pytest.raises(errors.CommitFailedError):
        p.commit_transaction()
    assert a.committed(moved) == 0
    a.close()


def test_group_metadata_taken_before_the_first_poll_commits_offsets(servers: str) -> None:
    """``group_metadata()`` before the first poll (state UNJOINED): offsets sent with it
    commit, as Kafka accepts UNJOINED metadata (they were refused as not assigned)."""
    create(servers, "in", 1)
    c = four_inputs(servers)
    md = c.group_metadata()
    assert md.state == "UNJOINED"
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < 4:
        assert time.monotonic() < deadline
        for records in c.poll(timeout_ms=100).values():
            got.extend(records)
    p = KafkaProducer(bootstrap_servers=servers, transactional_id="early-md")
    p.init_transactions()
    p.begin_transaction()
    p.send("in", b"x")
    p.send_offsets_to_transaction({TopicPartition("in", 0): OffsetAndMetadata(4, "", -1)}, md)
    p.commit_transaction()
    assert c.committed(TopicPartition("in", 0)) == 4
    c.close()
    p.close()


def test_futures_are_cheap_until_waited_on(servers: str) -> None:
    """A future allocates its Event only when ``get`` must wait; callbacks added before and
    after completion run once, with the value."""
    p = KafkaProducer(bootstrap_servers=servers, linger_ms=60_000)
    f = p.send("lazy", b"v")
    assert isinstance(f, FutureRecordMetadata)
    assert not f.is_done
    assert f._event is None
    seen: list[Any] = []
    f.add_callback(seen.append)
    p.flush()
    assert f.is_done
    assert f._event is None
    assert f.value is not None
    assert seen == [f.value]
    f.add_callback(seen.append)
    assert seen == [f.value, f.value]
    g = p.send("lazy", b"w")
    t0 = time.monotonic()
    meta = None

    def wait() -> None:
        nonlocal meta
        meta = g.get(timeout=30)

    waiter = threading.Thread(target=wait)
    waiter.start()
    while g._event is None and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    assert g._event is not None  # created by get(), which is waiting
    p.flush()
    waiter.join(30)
    assert meta is not None
    assert meta.offset == 1
    p.close()


# -- the real kafka-python as the oracle of what needs no broker --------------------------------
Call = Callable[[Any], Any]
SCENARIOS: dict[str, tuple[dict[str, Any], list[tuple[str, Call]]]] = {
    "not transactional (idempotent by default)": ({}, [
        ("init_transactions", lambda p: p.init_transactions()),
        ("begin_transaction", lambda p: p.begin_transaction()),
        ("commit_transaction", lambda p: p.commit_transaction()),
        ("abort_transaction", lambda p: p.abort_transaction()),
        ("send_offsets", lambda p: p.send_offsets_to_transaction({}, "g")),
        ("send_offsets bad metadata", lambda p: p.send_offsets_to_transaction({}, 5)),
    ]),
    "not idempotent": ({"enable_idempotence": False}, [
        ("init_transactions", lambda p: p.init_transactions()),
        ("begin_transaction", lambda p: p.begin_transaction()),
        ("commit_transaction", lambda p: p.commit_transaction()),
        ("abort_transaction", lambda p: p.abort_transaction()),
        ("send_offsets", lambda p: p.send_offsets_to_transaction({}, "g")),
    ]),
    "transactional, before init_transactions": ({"transactional_id": "x"}, [
        ("begin_transaction", lambda p: p.begin_transaction()),
        ("commit_transaction", lambda p: p.commit_transaction()),
        ("abort_transaction", lambda p: p.abort_transaction()),
        ("send_offsets", lambda p: p.send_offsets_to_transaction({}, "g")),
        ("send_offsets bad metadata", lambda p: p.send_offsets_to_transaction({}, 5)),
    ]),
}
BAD_CONFIGS = [{"transactional_id": "x", "enable_idempotence": False}, {"transactional_id": "x", "acks": 1},
               {"transactional_id": "x", "retries": 0}, {"transactional_id": "x", "acks": "all"},
               # idempotence set explicitly conflicts; by default a conflicting setting turns it off
               {"enable_idempotence": True, "acks": 1}, {"enable_idempotence": True, "retries": 0},
               {"enable_idempotence": True, "max_in_flight_requests_per_connection": 6}, {"acks": 1}]
_FINE = ({"transactional_id": "x", "acks": "all"}, {"acks": 1})


def _outcome(call: Call, producer: Any) -> tuple[str, str]:
    try:
        call(producer)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return "ok", ""


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_state_machine_errors_match_kafka_python(name: str, servers: str) -> None:
    config, calls = SCENARIOS[name]
    shim = KafkaProducer(bootstrap_servers=servers, **config)
    ours = [(label, _outcome(call, shim)) for label, call in calls]
    assert all(outcome[0] != "ok" for _, outcome in ours), ours
    shim.close()
    if real_kafka is None:
        pytest.skip("kafka-python is not installed: only the shim side ran")
    real = real_kafka.KafkaProducer(bootstrap_servers="127.0.0.1:1", api_version=(2, 6, 0), **config)
    try:
        assert ours == [(label, _outcome(call, real)) for label, call in calls]
    finally:
        real.close(timeout=0)


@pytest.mark.parametrize("config", BAD_CONFIGS, ids=str)
def test_transactional_config_checks_match_kafka_python(config: dict[str, Any], servers: str) -> None:
    def make(cls: Any, **kw: Any) -> tuple[str, str]:
        try:
            cls(**kw, **config).close()
        except Exception as exc:
            return type(exc).__name__, str(exc)
        return "ok", ""

    ours = make(KafkaProducer, bootstrap_servers=servers)
    if real_kafka is None:
        assert ours[0] == ("ok" if config in _FINE else "KafkaConfigurationError")
        return
    assert ours == make(real_kafka.KafkaProducer, bootstrap_servers="127.0.0.1:1", api_version=(2, 6, 0))


def test_send_is_refused_outside_a_transaction(servers: str) -> None:
    p = KafkaProducer(bootstrap_servers=servers, transactional_id="s")
    with pytest.raises(errors.IllegalStateError, match="before completing a call to init_transactions"):
        p.send("s", b"v")
    p.init_transactions()
    p.init_transactions()  # again after success: nothing
    with pytest.raises(errors.IllegalStateError, match="Cannot call send in state READY"):
        p.send("s", b"v")
    p.begin_transaction()
    with pytest.raises(errors.KafkaError, match="Invalid transition attempted from state IN_TRANSACTION"):
        p.begin_transaction()
    p.abort_transaction()
    p.close()
