"""Bad input to consumers and consumer groups: a typed error, and nothing changed.

Each test makes bad calls and asserts the ``embedlog.errors`` class they raise (never a
raw ``TypeError``, ``UnicodeEncodeError``, ``OSError`` ... from inside embedlog), then
that the log still works: the records and committed offsets written before are intact,
and a new record is produced, flushed and consumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import TopicPartition as TP
from embedlog.errors import (
    ClosedError,
    ConfigError,
    EmbedlogError,
    InvalidOffsetError,
    InvalidTopicError,
    NotAssignedError,
    UnknownPartitionError,
)

NAN = float("nan")
INF = float("inf")
BAD = "a\udc80"  # a lone surrogate: no UTF-8 encoding
TP0 = TP("t", 0)
OLD = [b"old0", b"old1", b"old2"]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[embedlog.Log]:
    """Topic ``t`` (2 partitions) with three records in partition 0; group ``g`` committed 1 there."""
    lg = embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None)
    lg.create_topic("t", partitions=2)
    with lg.producer() as p:
        for v in OLD:
            p.send("t", v, partition=0)
        p.flush()
    lg.commit_offsets("g", {TP0: 1})
    yield lg
    lg.close()


def poll_n(c: embedlog.Consumer, n: int) -> list[bytes | None]:
    got: list[bytes | None] = []
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        got += [m.value for m in c.poll(timeout=0.5)]
    return got


def still_works(log: embedlog.Log, groups: tuple[str, ...] = ("g",)) -> None:
    """Nothing changed (records, committed offsets, groups, topics) and the log still works."""
    assert log.topics() == ["t"]
    assert log.groups() == list(groups)
    assert {tp: o.offset for tp, o in log.committed_offsets("g").items()} == {TP0: 1}
    with log.producer() as p:
        p.send("t", b"new", partition=0)
        p.flush()
    with log.consumer(auto_offset_reset="earliest") as c:
        c.assign([TP0])
        assert poll_n(c, 4) == [*OLD, b"new"]


def raises(cls: type[EmbedlogError], fn: Callable[[], object]) -> pytest.ExceptionInfo[EmbedlogError]:
    with pytest.raises(cls) as info:
        fn()
    assert type(info.value).__module__ == "embedlog.errors"
    return info


# -- log-level group calls ------------------------------------------------------------------
LOG_CALLS: dict[str, tuple[type[EmbedlogError], Callable[[embedlog.Log], object]]] = {
    "reset-topic-int": (InvalidTopicError, lambda lg: lg.reset_group_offsets("g", 5)),
    "reset-topic-surrogate": (InvalidTopicError, lambda lg: lg.reset_group_offsets("g", BAD)),
    "reset-group-surrogate": (ConfigError, lambda lg: lg.reset_group_offsets(BAD, "t")),
    "describe-group-surrogate": (ConfigError, lambda lg: lg.describe_group(BAD)),
    "delete-group-surrogate": (ConfigError, lambda lg: lg.delete_group(BAD)),
    "commit-group-surrogate": (ConfigError, lambda lg: lg.commit_offsets(BAD, {TP0: 2})),
    "commit-group-too-long": (ConfigError, lambda lg: lg.commit_offsets("g" * 503, {TP0: 2})),
    "committed-group-surrogate": (ConfigError, lambda lg: lg.committed_offsets(BAD)),
    "commit-metadata-surrogate": (InvalidOffsetError, lambda lg: lg.commit_offsets("g", {TP0: (2, BAD)})),
    "commit-triple": (InvalidOffsetError, lambda lg: lg.commit_offsets("g", {TP0: (2, None, 3)})),
    "commit-single": (InvalidOffsetError, lambda lg: lg.commit_offsets("g", {TP0: (2,)})),
    "commit-topic-surrogate": (InvalidTopicError, lambda lg: lg.commit_offsets("g", {TP(BAD, 0): 2})),
    "commit-partition-negative": (UnknownPartitionError, lambda lg: lg.commit_offsets("g", {TP("t", -1): 0})),
    "commit-partition-huge": (UnknownPartitionError, lambda lg: lg.commit_offsets("g", {TP("t", 2**40): 0})),
    "committed-int": (ConfigError, lambda lg: lg.committed_offsets("g", 5)),
    "committed-names": (ConfigError, lambda lg: lg.committed_offsets("g", ["t"])),
    "committed-partition-negative": (UnknownPartitionError, lambda lg: lg.committed_offsets("g", [TP("t", -1)])),
}


@pytest.mark.parametrize("case", LOG_CALLS)
def test_log_group_calls(log: embedlog.Log, case: str) -> None:
    cls, call = LOG_CALLS[case]
    raises(cls, lambda: call(log))
    still_works(log)


def test_transaction_commit_offsets(log: embedlog.Log) -> None:
    with log.transaction() as tx:
        raises(ConfigError, lambda: tx.commit_offsets(BAD, {TP0: 2}))
        tx.abort()
    tx = log.transaction()
    tx.send("t", b"in-aborted-tx", partition=1)
    raises(InvalidOffsetError, lambda: tx.commit_offsets("g", {TP0: (2, BAD)}))  # (checked at once)
    tx.abort()
    assert log.describe_topic("t").partitions[1].end_offset == 0
    still_works(log)


# -- consumer options -------------------------------------------------------------------------
OPTIONS: list[dict[str, Any]] = [
    {"group": BAD},
    *({"auto_commit_interval_ms": v} for v in (None, "5s", -1, NAN, INF, -INF, True)),
    *({"session_timeout_ms": v} for v in ("10s", None, NAN, 0)),
    *({"max_poll_interval_ms": v} for v in (None, "5m", NAN, INF, 0)),
    *({"heartbeat_interval_ms": v} for v in (None, "3s", -1, 0, NAN, INF, -INF)),
    *({"fetch_max_bytes": v} for v in ("1MB", -1, 0, NAN, -INF, INF, 1.5)),
    {"max_poll_records": True},
    {"partition_assignment_strategy": ["range"]},
    {"partition_assignment_strategy": "Sticky"},
    *({"client_id": v} for v in (b"x", 5, None, BAD)),
    *({cb: 1} for cb in ("on_assign", "on_revoke", "on_lost", "key_deserializer", "value_deserializer")),
    {"enable_auto_commit": "false"},
]


@pytest.mark.parametrize("options", OPTIONS, ids=repr)
def test_consumer_options(log: embedlog.Log, options: dict[str, Any]) -> None:
    options = {"group": "g2", **options}
    raises(ConfigError, lambda: log.consumer(["t"], **options))
    options.pop("group")
    if options:  # refused without a group too, though only a group member uses some
        raises(ConfigError, lambda: log.consumer(["t"], **options))
    still_works(log)


@pytest.mark.parametrize(("topics", "cls"), [
    (5, ConfigError), (b"t", ConfigError), (["t", 5], InvalidTopicError), (["t", BAD], InvalidTopicError),
    (["t", "new", "a b"], InvalidTopicError)], ids=["int", "bytes", "int-name", "surrogate-name", "bad-after-new"])
def test_consumer_topics(log: embedlog.Log, topics: object, cls: type[EmbedlogError]) -> None:
    raises(cls, lambda: log.consumer(topics, group="g2"))  # type: ignore[arg-type]
    raises(cls, lambda: log.consumer(topics))  # type: ignore[arg-type]
    assert not log._clients  # the half-made consumers were closed
    still_works(log)  # (and "new" was not auto-created)


@pytest.mark.parametrize("client_id", ["a" * 300, "\x00", "a/b", "../escape", "é" * 200])
def test_client_id_is_free_text(log: embedlog.Log, tmp_path: Path, client_id: str) -> None:
    """Kafka's client.id is free text: any str works, and the heartbeat files stay where they belong."""
    with log.consumer(["t"], group="g2", client_id=client_id, auto_offset_reset="earliest",
                      enable_auto_commit=False, heartbeat_interval_ms=50) as c:
        assert poll_n(c, 3) == OLD
        c.commit()
        (member,) = log.describe_group("g2").members
        assert member.client_id == client_id
        time.sleep(0.2)  # a few heartbeats: the member stays alive
        assert [m.member_id for m in log.describe_group("g2").members] == [member.member_id]
        hb = [p for p in (tmp_path / "log" / "groups").rglob("*") if p.is_file()]
        assert len(hb) == 1
        assert hb[0].parent.parent == tmp_path / "log" / "groups"
    assert log.committed_offsets("g2")[TP0].offset == 3
    log.delete_group("g2")
    still_works(log)


# -- consumer calls ---------------------------------------------------------------------------
CONSUMER_CALLS: dict[str, tuple[type[EmbedlogError], Callable[[embedlog.Consumer], object]]] = {
    "committed-int": (ConfigError, lambda c: c.committed(5)),  # type: ignore[arg-type]
    "committed-names": (ConfigError, lambda c: c.committed(["t"])),  # type: ignore[list-item]
    "committed-bad-tp": (ConfigError, lambda c: c.committed({(1, 2): 1})),  # type: ignore[arg-type]
    "committed-one-tp": (ConfigError, lambda c: c.committed(TP0)),  # type: ignore[arg-type]
    "committed-meta-int": (ConfigError, lambda c: c.committed(5, metadata=True)),  # type: ignore[call-overload]
    "committed-topic-surrogate": (InvalidTopicError, lambda c: c.committed([TP(BAD, 0)])),
    "commit-triple": (InvalidOffsetError, lambda c: c.commit({TP0: (2, None, 3)})),  # type: ignore[dict-item]
    "commit-metadata-surrogate": (InvalidOffsetError, lambda c: c.commit({TP0: (2, BAD)})),
    "subscribe-none": (ConfigError, lambda c: c.subscribe(None)),  # type: ignore[arg-type]
    "subscribe-int": (ConfigError, lambda c: c.subscribe(5)),  # type: ignore[arg-type]
    "assign-none": (ConfigError, lambda c: c.assign(None)),  # type: ignore[arg-type]
    "assign-one-tp": (ConfigError, lambda c: c.assign(TP0)),  # type: ignore[arg-type]
    "assign-partition-negative": (UnknownPartitionError, lambda c: c.assign([TP0, TP("t", -1)])),
    "beginning-none": (ConfigError, lambda c: c.beginning_offsets(None)),  # type: ignore[arg-type]
    "end-none": (ConfigError, lambda c: c.end_offsets(None)),  # type: ignore[arg-type]
    "beginning-one-tp": (ConfigError, lambda c: c.beginning_offsets(TP0)),  # type: ignore[arg-type]
    "end-one-tp": (ConfigError, lambda c: c.end_offsets(TP0)),  # type: ignore[arg-type]
    "times-list": (ConfigError, lambda c: c.offsets_for_times([TP0])),  # type: ignore[arg-type]
    "times-bool": (InvalidOffsetError, lambda c: c.offsets_for_times({TP0: True})),
    "seek-bool": (InvalidOffsetError, lambda c: c.seek(TP0, True)),
    "resume-unassigned": (NotAssignedError, lambda c: c.resume(TP("nope", 7))),
    "pause-some-unassigned": (NotAssignedError, lambda c: c.pause(TP0, TP("t", 1))),
    "resume-some-unassigned": (NotAssignedError, lambda c: c.resume([TP0, TP("t", 1)])),
    "poll-nan": (ConfigError, lambda c: c.poll(timeout=NAN)),
}


@pytest.mark.parametrize("case", CONSUMER_CALLS)
def test_consumer_calls(log: embedlog.Log, case: str) -> None:
    cls, call = CONSUMER_CALLS[case]
    with log.consumer(group="g", enable_auto_commit=False) as c:
        c.assign([TP0])
        c.seek(TP0, 0)
        info = raises(cls, lambda: call(c))
        if "one-tp" in case:
            assert "list of TopicPartition" in str(info.value)
        assert c.assignment() == {TP0}
        assert c.paused() == set()
        assert c.position(TP0) == 0
        assert poll_n(c, 3) == OLD  # the consumer still works, from where it was
    still_works(log)


def test_poll_nan_without_data(log: embedlog.Log) -> None:
    """No record to return: the wait itself must not see nan."""
    with log.consumer(auto_offset_reset="earliest") as c:
        c.assign([TP("t", 1)])
        raises(ConfigError, lambda: c.poll(timeout=NAN))
        raises(ConfigError, lambda: c.poll(NAN, max_records=1))
        assert c.poll(timeout=0.01) == []
    notifier = log._store.notifier  # (the wait under poll and log.wait_for_data: robust on its own)
    seen = notifier.generation
    notifier.wait(seen, 0)  # (the first wait of a process returns at once)
    start = time.monotonic()
    assert notifier.wait(seen, NAN) == seen  # nothing to wait for
    assert time.monotonic() - start < 5
    raises(ConfigError, lambda: notifier.wait(seen, "1s"))  # type: ignore[arg-type]
    still_works(log)


def test_closed_consumer(log: embedlog.Log) -> None:
    c = log.consumer(["t"], auto_offset_reset="earliest")
    c.pause(TP0)
    c.close()
    for call in (lambda: c.pause(TP0), lambda: c.resume(TP0), c.paused, c.subscription):
        raises(ClosedError, call)
    still_works(log)


def test_pause_resume_consistent(log: embedlog.Log) -> None:
    with log.consumer(auto_offset_reset="earliest") as c:
        c.assign([TP0])
        c.pause(TP0)
        assert poll_n(c, 1) == []
        raises(NotAssignedError, lambda: c.resume(TP("nope", 7)))
        assert c.paused() == {TP0}
        c.resume([TP0])
        assert poll_n(c, 3) == OLD
        c.pause(tp for tp in c.assignment())  # any iterable of partitions, as one argument
        assert c.paused() == {TP0}
        c.resume({TP0: 0}.keys())
        assert c.paused() == set()
        c.seek_to_beginning(iter([TP0]))
        assert poll_n(c, 3) == OLD
    still_works(log)


def test_good_commit_values_still_work(log: embedlog.Log) -> None:
    """The commit values that stay accepted: an int, a pair, OffsetAndMetadata, a
    kafka-python-style OffsetAndMetadata (three fields)."""
    from embedlog.compat.kafka_python.structs import OffsetAndMetadata as KafkaPythonOM  # noqa: PLC0415

    for value, meta in ((2, ""), ((2, None), ""), ((2, "x"), "x"), (embedlog.OffsetAndMetadata(2, "y"), "y"),
                        (KafkaPythonOM(2, "z", -1), "z")):
        log.commit_offsets("g2", {TP0: value})
        assert log.committed_offsets("g2")[TP0][:2] == (2, meta)
    log.delete_group("g2")
    still_works(log)
