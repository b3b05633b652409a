"""A consumer's deserializers, and what a failing one does: the records before the
failing record are returned, then every poll raises ``DeserializationError`` naming it
(its position stays there) until the application seeks past it; nothing is skipped."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedlog
from embedlog import TopicPartition
from embedlog.errors import DeserializationError, SerializationError

TP = TopicPartition("t", 0)


def _write(log: embedlog.Log, batches: list[list[bytes | None]], key: bytes | None = b"k") -> None:
    """One batch per inner list (a flush each), partition 0."""
    with log.producer(linger_ms=600_000) as p:
        for values in batches:
            for v in values:
                p.send("t", v, key=key, partition=0)
            p.flush()


def _strict(v: bytes) -> object:
    """JSON, refusing the bytes b"bad"."""
    if v == b"bad":
        raise ValueError("not json")
    return json.loads(v)


@pytest.fixture
def log(tmp_path: Path) -> embedlog.Log:
    with embedlog.open(tmp_path / "log", durability="none") as lg:
        lg.create_topic("t", partitions=1)
        yield lg


def test_records_before_the_bad_one_come_first_then_every_poll_raises_until_a_seek(log: embedlog.Log) -> None:
    _write(log, [[b"0", b"1"], [b"2", b"bad", b"4"], [b"5"]])  # offsets 0-1, 2-4, 5
    with log.consumer("t", auto_offset_reset="earliest", value_deserializer=_strict) as c:
        assert [(m.offset, m.value) for m in c.poll(0, max_records=100)] == [(0, 0), (1, 1), (2, 2)]
        assert c.position(TP) == 3
        for _ in range(2):
            with pytest.raises(DeserializationError, match=r"ValueError: not json .* t\[0\] offset 3") as err:
                c.poll(0, max_records=100)
            assert (err.value.topic, err.value.partition, err.value.offset) == ("t", 0, 3)
            assert isinstance(err.value.__cause__, ValueError)
            assert isinstance(err.value, SerializationError)
            assert c.position(TP) == 3
        c.seek(TP, 4)
        assert [(m.offset, m.value) for m in c.poll(0, max_records=100)] == [(4, 4), (5, 5)]


def test_a_bad_first_record_of_a_batch_after_good_batches(log: embedlog.Log) -> None:
    _write(log, [[b"0"], [b"1"], [b"bad", b"3"]])
    with log.consumer("t", auto_offset_reset="earliest", value_deserializer=_strict) as c:
        assert [m.offset for m in c.poll(0, max_records=100)] == [0, 1]
        with pytest.raises(DeserializationError) as err:
            c.poll(0)
        assert err.value.offset == 2
        c.seek(TP, 3)
        assert [m.value for m in c.poll(0)] == [3]


def test_a_failing_key_deserializer_names_the_record_too(log: embedlog.Log) -> None:
    with log.producer(linger_ms=600_000) as p:
        p.send("t", b"1", key=b"\xff\xfe", partition=0)  # not UTF-8
        p.send("t", b"2", key=b"ok", partition=0)
    with log.consumer("t", auto_offset_reset="earliest", key_deserializer=bytes.decode) as c:
        with pytest.raises(DeserializationError, match="UnicodeDecodeError") as err:
            c.poll(0)
        assert err.value.offset == 0
        c.seek(TP, 1)
        assert [(m.key, m.value) for m in c.poll(0)] == [("ok", b"2")]


def test_tombstones_and_null_keys_skip_the_deserializers(log: embedlog.Log) -> None:
    _write(log, [[b"1", None, b"3"]], key=None)
    with log.consumer("t", auto_offset_reset="earliest", key_deserializer=_strict, value_deserializer=_strict) as c:
        assert [(m.key, m.value) for m in c.poll(0)] == [(None, 1), (None, None), (None, 3)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 5), min_size=1, max_size=8), data=st.data())
def test_polls_of_any_size_return_each_record_once_around_bad_ones(tmp_path: Path, sizes: list[int],
                                                                   data: st.DataObject) -> None:
    """Against a model: whatever the batch sizes, poll sizes and bad records, the polls
    (seeking one past each error, as an application skipping bad records does) return
    every good record exactly once, in order, and raise once for each bad record in turn."""
    n = sum(sizes)
    bad = set(data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=3), "bad"))
    values = [b"bad" if i in bad else b"%d" % i for i in range(n)]
    batches, at = [], 0
    for size in sizes:
        batches.append(values[at:at + size])
        at += size
    with tempfile.TemporaryDirectory(dir=tmp_path) as d, embedlog.open(d, durability="none") as lg:
        lg.create_topic("t", partitions=1)
        _write(lg, batches)
        got: list[int] = []
        errors: list[int] = []
        positions: list[tuple[int, int]] = []  # (offset named by an error, the position then)
        with lg.consumer("t", auto_offset_reset="earliest", value_deserializer=_strict) as c:
            while c.position(TP) < n:
                limit = data.draw(st.integers(1, 7), "limit")
                try:
                    msgs = c.poll(0, max_records=limit)
                except DeserializationError as exc:
                    errors.append(exc.offset)
                    positions.append((exc.offset, c.position(TP)))
                    c.seek(TP, exc.offset + 1)
                    continue
                assert 0 < len(msgs) <= limit
                got.extend(m.offset for m in msgs)
                assert [m.value for m in msgs] == [m.offset for m in msgs]
        assert got == [i for i in range(n) if i not in bad]
        assert errors == sorted(bad)
        assert all(offset == position for offset, position in positions)
