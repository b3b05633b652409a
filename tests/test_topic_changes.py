"""A topic's metadata changing under open clients: producers follow a config change
or a topic deleted and created again (at once in the process that made it, at their
next write within a second in others; the write refuses records a stricter config
forbids, as Kafka's broker does), an ``acks="all"`` producer writes nothing in the background while the in-sync set is
below ``min.insync.replicas``, and a record keeps the timestamp type it was written with.
Both send paths (the C extension's and the pure-Python reference)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import embedlog
from embedlog.codec.murmur2 import partition_for_key
from embedlog.errors import (
    InvalidRecordError,
    NotEnoughReplicasError,
    RecordTooLargeError,
    UnknownPartitionError,
    UnknownTopicError,
)
from embedlog.replication import Leader
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

IMPLS = ["c", "python"]
SECRET = b"topic-changes"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[embedlog.Log]:
    lg = embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None)
    lg.create_topic("t")
    yield lg
    lg.close()


_producer = harness.producer


def _end(log: embedlog.Log, topic: str = "t") -> int:
    return sum(p.end_offset for p in log.describe_topic(topic).partitions)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_producer_follows_a_config_change_of_its_process_at_once(log: embedlog.Log, impl: str) -> None:
    p = _producer(log, impl)
    try:
        p.send("t", b"x" * 500, key=b"k")
        p.flush()
        log.alter_topic_config("t", {"max.message.bytes": 100})
        with pytest.raises(RecordTooLargeError, match=r"max\.message\.bytes=100"):
            p.send("t", b"x" * 500, key=b"k")
        log.alter_topic_config("t", {"max.message.bytes": None})  # back to the default
        p.send("t", b"x" * 500, key=b"k")
        log.alter_topic_config("t", {"cleanup.policy": "compact"})
        with pytest.raises(InvalidRecordError, match="compacted"):
            p.send("t", b"no key")
        p.flush()
        assert _end(log) == 2
    finally:
        p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_a_producer_follows_another_process_change_at_its_next_write(
        log: embedlog.Log, tmp_path: Path, impl: str) -> None:
    p = _producer(log, impl)
    try:
        p.send("t", b"x" * 500, key=b"k")
        p.flush()
        code = textwrap.dedent(f"""
            import embedlog
            with embedlog.open({str(tmp_path / "log")!r}, durability="none") as log:
                log.alter_topic_config("t", {{"max.message.bytes": 100}})
        """)
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        time.sleep(1.1)  # (a producer looks at the topics' version at most once a second, when it writes)
        p.send("t", b"small", key=b"k")
        p.flush()
        with pytest.raises(RecordTooLargeError, match=r"max\.message\.bytes=100"):
            p.send("t", b"x" * 500, key=b"k")
    finally:
        p.close()


def _values(log: embedlog.Log, topic: str) -> list[bytes | None]:
    """What a consumer from the start reads of ``topic`` (one poll)."""
    with log.consumer([topic], auto_offset_reset="earliest") as c:
        return [m.value for m in c.poll(timeout=1.0)]


def _alter_elsewhere(tmp_path: Path, config: dict[str, object]) -> None:
    code = textwrap.dedent(f"""
        import embedlog
        with embedlog.open({str(tmp_path / "log")!r}, durability="none") as log:
            log.alter_topic_config("t", {config!r})
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_stricter_config_of_another_process_holds_for_records_an_idle_producer_sends(
        log: embedlog.Log, tmp_path: Path, impl: str) -> None:
    """An idle producer has not looked at the topics yet when it sends, so ``send`` takes
    the records; the write refuses them as Kafka's broker would: the flush raises, the
    delivery callback gets the error, and nothing of them is stored — a null key on a
    topic now compacted would otherwise be stored and then dropped by compaction."""
    p = _producer(log, impl)
    got: list[object] = []
    try:
        p.send("t", b"v", key=b"k")
        p.flush()
        _alter_elsewhere(tmp_path, {"max.message.bytes": 100})
        time.sleep(1.1)  # (past "at most a second later": the producer did not write meanwhile)
        p.send("t", b"x" * 500, key=b"k", on_delivery=lambda err, md: got.append(err))
        with pytest.raises(RecordTooLargeError, match=r"max\.message\.bytes=100"):
            p.flush()
        assert isinstance(got[0], RecordTooLargeError)
        _alter_elsewhere(tmp_path, {"cleanup.policy": "compact"})
        time.sleep(1.1)
        p.send("t", b"no key")
        with pytest.raises(InvalidRecordError, match="compacted"):
            p.flush()
        p.send("t", b"fits", key=b"k")
        p.flush()
        assert _end(log) == 2
        log.maintain()
        assert _values(log, "t") == [b"fits"]
    finally:
        p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_records_buffered_before_a_stricter_config_fail_alone_at_the_write(log: embedlog.Log, impl: str) -> None:
    """Buffered (linger) when this process lowers ``max.message.bytes``: a batch holding a
    record over the new limit (headers count) fails whole at the write, as Kafka's broker
    refuses a whole batch; the batches of other partitions and topics are written; and a
    laxer change refuses nothing."""
    log.create_topic("u", partitions=2)
    p = _producer(log, impl, linger_ms=60_000)
    try:
        p.send("u", b"x" * 200, partition=0)
        p.send("u", b"y" * 10, partition=1, headers=[("h", b"z" * 200)])
        p.send("u", b"ok", partition=1)
        log.alter_topic_config("u", {"max.message.bytes": 100})
        p.send("t", b"other topic")
        with pytest.raises(RecordTooLargeError, match=r"200 bytes is larger than max\.message\.bytes=100"):
            p.flush()
        assert _ends(log, "u") == [0, 0]
        assert _end(log) == 1
        p.send("u", b"w" * 50, partition=1)
        log.alter_topic_config("u", {"max.message.bytes": 10_000})
        p.flush()
        assert _ends(log, "u") == [0, 1]
    finally:
        p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_records_sent_under_a_looser_config_meanwhile_are_checked_again(log: embedlog.Log, impl: str) -> None:
    """Buffered records passed whichever config was in force when each was sent: a
    record sent while ``max.message.bytes`` was raised, or a null key sent while the
    topic was not compacted, is refused once the config is stricter again — though
    still as loose as at the last write."""
    log.create_topic("u", config={"max.message.bytes": 1_000})
    p = _producer(log, impl, linger_ms=60_000)
    try:
        p.send("u", b"x")
        p.flush()
        log.alter_topic_config("u", {"max.message.bytes": 5_000})
        p.send("u", b"y" * 3_000)
        log.alter_topic_config("u", {"max.message.bytes": 2_000})
        with pytest.raises(RecordTooLargeError, match=r"3000 bytes is larger than max\.message\.bytes=2000"):
            p.flush()
        assert _end(log, "u") == 1
        log.create_topic("c", config={"cleanup.policy": "compact"})
        p.send("c", b"v", key=b"k")
        p.flush()
        log.alter_topic_config("c", {"cleanup.policy": "delete"})
        p.send("c", b"keyless")
        log.alter_topic_config("c", {"cleanup.policy": "compact"})
        with pytest.raises(InvalidRecordError, match="became compacted"):
            p.flush()
        assert _end(log, "c") == 1
    finally:
        p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_a_producer_sends_again_to_a_deleted_topic_that_auto_create_makes_again(tmp_path: Path, impl: str) -> None:
    """A producer that wrote to a topic before ``delete_topic`` creates it again with its
    next send (``auto_create_topics``), as a new producer does, and the record is stored;
    the deletion itself creates nothing."""
    with embedlog.open(tmp_path / "a", auto_create_topics=True, maintenance_interval_ms=None) as lg:
        p = _producer(lg, impl)
        try:
            p.send("d", b"1")
            p.flush()
            lg.delete_topic("d")
            assert "d" not in lg.topics()
            p.send("d", b"after")
            p.flush()
            assert _values(lg, "d") == [b"after"]
        finally:
            p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_a_send_to_a_deleted_topic_raises_and_works_once_it_exists_again(log: embedlog.Log, impl: str) -> None:
    """Without ``auto_create_topics``: records buffered before the deletion fail at the
    flush, a send after it raises ``UnknownTopicError`` at once (it used to be taken and
    fail at the flush as 'deleted before its records were written'), and sends work
    again once the topic is created again."""
    log.create_topic("g")
    p = _producer(log, impl, linger_ms=60_000)
    try:
        p.send("g", b"before")
        log.delete_topic("g")
        with pytest.raises(UnknownTopicError, match="does not exist"):
            p.send("g", b"while gone")
        with pytest.raises(UnknownTopicError, match="deleted"):
            p.flush()
        log.create_topic("g")
        p.send("g", b"again")
        p.flush()
        assert _end(log, "g") == 1
    finally:
        p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_after_a_flush_meets_a_topic_another_process_deleted_the_next_send_looks_again(
        tmp_path: Path, impl: str) -> None:
    """Deleted by another process: the flush of records sent before the producer knew it
    fails; the very next send creates the topic again (``auto_create_topics``) — it failed
    the same way until the once-a-second look."""
    path = tmp_path / "auto"
    with embedlog.open(path, auto_create_topics=True, durability="none", maintenance_interval_ms=None) as lg:
        p = _producer(lg, impl)
        try:
            p.send("d", b"a")
            p.flush()
            code = (f"import embedlog; l = embedlog.open({str(path)!r}, durability='none'); "
                    "l.delete_topic('d'); l.close()")
            subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
            p.send("d", b"b")
            with pytest.raises(UnknownTopicError, match="deleted"):
                p.flush()
            p.send("d", b"c")
            p.flush()
            assert _values(lg, "d") == [b"c"]
        finally:
            p.close()


def _ends(log: embedlog.Log, topic: str = "t") -> list[int]:
    return [p.end_offset for p in log.describe_topic(topic).partitions]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("before", "after"), [(5, 2), (2, 5)])
def test_a_producer_follows_a_topic_deleted_and_created_again_in_its_process(
        log: embedlog.Log, impl: str, before: int, after: int) -> None:
    """Its keys go where Kafka's partitioner puts them in the new topic (not by the old
    partition count, which, smaller now, failed the whole flush), and the new topic's
    config holds."""
    log.create_topic("r", partitions=before)
    keys = [b"k%d" % i for i in range(40)]
    p = _producer(log, impl)
    try:
        for key in keys:
            p.send("r", b"v", key=key)
        p.flush()
        log.delete_topic("r")
        log.create_topic("r", partitions=after, config={"max.message.bytes": 100, "cleanup.policy": "compact"})
        for key in keys:
            p.send("r", b"w", key=key)
        p.flush()
        expected = [0] * after
        for key in keys:
            expected[partition_for_key(key, after)] += 1
        assert _ends(log, "r") == expected
        with pytest.raises(RecordTooLargeError, match=r"max\.message\.bytes=100"):
            p.send("r", b"x" * 500, key=b"k0")
        with pytest.raises(InvalidRecordError, match="compacted"):
            p.send("r", b"no key")
    finally:
        p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_records_buffered_for_a_partition_the_new_topic_lacks_fail_at_the_flush(log: embedlog.Log, impl: str) -> None:
    """Sent to partition 3 of the old topic, written after it was created again with 2:
    the flush raises, nothing is stored in silence, and the producer works on."""
    log.create_topic("r", partitions=4)
    p = _producer(log, impl)
    try:
        p.send("r", b"late", partition=3)
        log.delete_topic("r")
        log.create_topic("r", partitions=2)
        with pytest.raises(UnknownPartitionError, match="no partition 3"):
            p.flush()
        assert _ends(log, "r") == [0, 0]
        p.send("r", b"v", key=b"k0")
        p.flush()
        assert sum(_ends(log, "r")) == 1
    finally:
        p.close()


def test_an_acks_all_producer_follows_a_raised_min_insync_replicas(log: embedlog.Log) -> None:
    with Leader(log, listen="127.0.0.1:0", secret=SECRET), log.producer(acks="all") as p:
        p.send("t", b"a")
        p.flush()  # the leader alone is enough for min.insync.replicas=1
        log.alter_topic_config("t", {"min.insync.replicas": 2})
        p.send("t", b"b")
        with pytest.raises(NotEnoughReplicasError, match=r"min\.insync\.replicas=2"):
            p.flush()
        assert _end(log) == 1
        log.alter_topic_config("t", {"min.insync.replicas": 1})  # (so that close() completes)


@pytest.mark.parametrize("leader", [True, False])
def test_an_acks_all_close_writes_nothing_while_the_in_sync_set_is_too_small(log: embedlog.Log, leader: bool) -> None:
    """As flush: Kafka's leader refuses such a produce.  close() (a ``with`` block's end)
    wrote the records on the leader alone and showed them to consumers; now they fail,
    their callbacks told, and nothing is stored (with a Leader running, and without)."""
    log.alter_topic_config("t", {"min.insync.replicas": 2})
    told: list[object] = []
    with contextlib.ExitStack() as stack:
        if leader:
            stack.enter_context(Leader(log, listen="127.0.0.1:0", secret=SECRET))
        p = log.producer(acks="all")
        p.send("t", b"a", key=b"k", on_delivery=lambda err, md: told.append(err))
        p.send("t", b"b", key=b"k")
        with pytest.raises(NotEnoughReplicasError, match="closed without writing"):
            p.__exit__(None, None, None)  # (the end of a ``with`` block)
        assert p.closed
        assert _end(log) == 0
        assert len(told) == 1
        assert isinstance(told[0], NotEnoughReplicasError)
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            assert c.poll(timeout=0.2) == []
        p.close()  # (closed: nothing more)


@pytest.mark.parametrize("impl", IMPLS)
def test_acks_all_background_writes_wait_while_the_in_sync_set_is_too_small(log: embedlog.Log, impl: str) -> None:
    """Linger and a full buffer write nothing while the leader alone is in sync and the
    topic needs two (Kafka's leader refuses such a produce); the records stay buffered,
    flush raises, and once the topic needs fewer the linger thread writes them."""
    log.alter_topic_config("t", {"min.insync.replicas": 2})
    with Leader(log, listen="127.0.0.1:0", secret=SECRET):
        p = _producer(log, impl, acks="all", linger_ms=5, buffer_records=3)
        plain = log.producer(linger_ms=5)  # acks="leader": not held back
        try:
            for i in range(5):  # past buffer_records, and due after linger_ms
                p.send("t", b"%d" % i, key=b"k")
            time.sleep(0.3)
            p.send("t", b"5", key=b"k")  # (a sender finding records due writes them: not these)
            assert _end(log) == 0
            assert len(p) == 6
            with pytest.raises(NotEnoughReplicasError):
                p.flush()
            assert _end(log) == 0
            plain.send("t", b"leader-acked", key=b"k")
            deadline = time.monotonic() + 10
            while _end(log) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _end(log) == 1  # acks="leader" records are not held back
            log.alter_topic_config("t", {"min.insync.replicas": 1})
            deadline = time.monotonic() + 10
            while _end(log) < 7 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _end(log) == 7  # the linger thread wrote them once the in-sync set was enough
            assert len(p) == 0
            p.flush()
        finally:
            p.close()
            plain.close()
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        values = [m.value for m in c.poll(timeout=5, max_records=100)]
    assert values == [b"leader-acked", b"0", b"1", b"2", b"3", b"4", b"5"]


def test_a_record_keeps_the_timestamp_type_it_was_written_with(log: embedlog.Log) -> None:
    with log.producer() as p:
        p.send("t", b"create", key=b"k", timestamp_ms=1_000)
        p.flush()
        log.alter_topic_config("t", {"message.timestamp.type": "LogAppendTime"})
        before = int(time.time() * 1000)
        p.send("t", b"append", key=b"k", timestamp_ms=2_000)
        p.flush()
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = [(m.value, m.timestamp, m.timestamp_type) for m in c.poll(timeout=5)]
    assert got[0] == (b"create", 1_000, "CreateTime")
    assert got[1][0] == b"append"
    assert got[1][1] >= before
    assert got[1][2] == "LogAppendTime"
    log.alter_topic_config("t", {"message.timestamp.type": "CreateTime"})
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert [m.timestamp_type for m in c.poll(timeout=5)] == ["CreateTime", "LogAppendTime"]


def _recreate(log: embedlog.Log) -> None:
    """Delete ``t`` and create it again with one record."""
    log.delete_topic("t")
    log.create_topic("t")
    with log.producer() as p:
        p.send("t", b"new-0")


@pytest.mark.parametrize("where", ["here", "another process"])
@pytest.mark.parametrize("held", ["fetched", "iterator"])
def test_records_held_of_a_deleted_topic_are_not_handed_out_as_the_new_one_s(
        log: embedlog.Log, tmp_path: Path, where: str, held: str) -> None:
    """A consumer holds records it fetched but did not hand out yet (a poll's
    ``max_records``, or an iterator left by ``break``).  The topic is deleted and
    created again: those records are the old topic's, at offsets the new one gives to
    other records; the consumer moves to the new topic without handing them out (this
    process's delete: at once; another process's: within a second)."""
    with log.producer() as p:
        for i in range(3):
            p.send("t", b"old-%d" % i)
    c = log.consumer(["t"], auto_offset_reset="earliest")
    if held == "fetched":
        assert [m.value for m in c.poll(timeout=5.0, max_records=1)] == [b"old-0"]
    else:
        for msg in c:
            assert msg.value == b"old-0"
            break
    if where == "here":
        _recreate(log)
    else:
        code = textwrap.dedent(f"""
            import embedlog, test_topic_changes
            with embedlog.open({str(tmp_path / "log")!r}, durability="none") as log:
                test_topic_changes._recreate(log)
        """)
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=Path(__file__).parent)
        time.sleep(1.1)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 1 and time.monotonic() < deadline:
        got += [(m.offset, m.value) for m in c.poll(timeout=0.1)]
    assert got == [(0, b"new-0")]
    c.close()


def test_an_iterator_under_way_does_not_hand_out_records_of_a_topic_deleted_meanwhile(log: embedlog.Log) -> None:
    """The same iterator, going on after this process deleted and created the topic
    again: the records it had fetched of the old one are dropped, as ``poll`` drops
    them; the next record is the new topic's."""
    with log.producer() as p:
        for i in range(10):
            p.send("t", b"old-%d" % i)
    c = log.consumer(["t"], auto_offset_reset="earliest")
    it = iter(c)
    assert next(it).value == b"old-0"
    _recreate(log)
    msg = next(it)
    assert (msg.offset, msg.value) == (0, b"new-0")
    c.close()
