"""The producer's paths for records with headers or delivery callbacks: ``send``'s fast
path, its general path and the bulk ``_send_many`` keep every record's headers (order,
duplicates, null values) and call each callback once with the record's offset, in any mix,
across batch splits and from several threads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedlog
from embedlog import Message, RecordMetadata
from embedlog.errors import ConfigError, InvalidRecordError, RecordTooLargeError, SerializationError
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)
from strategies import header_lists

Header = tuple[str, bytes | None]


def consume_all(log: embedlog.Log, topic: str) -> list[Message]:
    total = sum(p.end_offset for p in log.describe_topic(topic).partitions)
    out: list[Message] = []
    with log.consumer([topic], auto_offset_reset="earliest", enable_auto_commit=False) as c:
        while len(out) < total:
            got = c.poll(timeout=5.0)
            assert got, f"only {len(out)} of {total} records came back"
            out.extend(got)
    return sorted(out, key=lambda m: (m.partition, m.offset))


class Deliveries:
    """Delivery callbacks that remember what they were told, per record tag."""

    def __init__(self) -> None:
        self.got: dict[bytes, list[RecordMetadata | None]] = {}
        self.lock = threading.Lock()

    def for_record(self, tag: bytes) -> Any:
        def cb(error: object, md: RecordMetadata | None) -> None:
            assert error is None
            with self.lock:
                self.got.setdefault(tag, []).append(md)
        return cb


# One record as a test sends it: how (path), value, headers as given, partition, timestamp,
# with a callback or not.
Op = tuple[str, bytes, Any, int | None, int | None, bool]

#: the common shape (ascii names) for the fast path; ``header_lists`` also has names the general path takes
_pairs = st.lists(st.tuples(st.text(st.characters(max_codepoint=127), max_size=8), st.none() | st.binary(max_size=24)),
                  max_size=4)


@st.composite
def ops(draw: st.DrawFn) -> list[Op]:
    out: list[Op] = []
    for i in range(draw(st.integers(1, 60))):
        how = draw(st.sampled_from(["fast", "fast", "dict", "tuple", "placed", "many", "none"]))
        hdrs: Any = draw(header_lists | _pairs)
        if how == "dict":
            hdrs = dict(hdrs)
        elif how == "tuple":
            hdrs = tuple(hdrs)
        elif how == "none":
            hdrs = None
        part = draw(st.integers(0, 1)) if how in ("placed", "many") else None
        ts = draw(st.integers(0, 2**40)) if how in ("placed", "many") and draw(st.booleans()) else None
        out.append((how, b"v%d" % i, hdrs, part, ts, draw(st.booleans())))
    return out


def expected_headers(hdrs: Any) -> list[Header]:
    if hdrs is None:
        return []
    return list(hdrs.items()) if isinstance(hdrs, dict) else list(hdrs)


@given(ops())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_send_path_keeps_headers_and_reports_offsets(tmp_path_factory: pytest.TempPathFactory,
                                                           records: list[Op]) -> None:
    with embedlog.open(tmp_path_factory.mktemp("log"), maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=2)
        seen = Deliveries()
        with log.producer(batch_size=64) as p:  # small batches: callbacks across batch splits
            for how, value, hdrs, part, ts, with_cb in records:
                cb = seen.for_record(value) if with_cb else None
                if how == "many":
                    assert part is not None
                    if cb is not None:  # (the bulk path takes no callbacks: send it alone)
                        p.send("t", value, key=b"k", headers=hdrs, partition=part, timestamp_ms=ts, on_delivery=cb)
                    else:
                        p._send_many("t", part, [b"k"], [value], [hdrs], [ts])
                else:
                    p.send("t", value, key=b"k", headers=hdrs, partition=part, timestamp_ms=ts, on_delivery=cb)
            p.flush()
        got = {m.value: m for m in consume_all(log, "t")}
        assert len(got) == len(records)
        for how, value, hdrs, part, ts, with_cb in records:
            m = got[value]
            assert m.headers == expected_headers(hdrs), how
            if part is not None:
                assert m.partition == part
            if ts is not None:
                assert m.timestamp == ts
            if with_cb:
                (md,) = seen.got[value]
                assert md is not None
                assert (md.partition, md.offset, md.timestamp) == (m.partition, m.offset, m.timestamp)
        assert set(seen.got) == {value for _, value, _, _, _, with_cb in records if with_cb}
        # offsets of one partition follow the order the records were sent in
        sent_order = [v for _, v, _, _, _, _ in records]
        for q in (0, 1):
            mine = [m.value for m in sorted(got.values(), key=lambda m: m.offset) if m.partition == q]
            assert mine == [v for v in sent_order if v in mine]


def test_a_header_list_changed_after_send_does_not_change_the_sent_record(log: embedlog.Log) -> None:
    log.create_topic("h")
    headers: list[Header] = [("trace", b"one")]
    with log.producer() as p:
        p.send("h", b"a", key=b"k", headers=headers)
        p.send("h", b"b", key=b"k", headers=headers)  # equal to the last set: the checked copy serves
        headers[0] = ("trace", b"two")
        p.send("h", b"c", key=b"k", headers=headers)
        headers.append(("dup", None))
        headers.append(("dup", b""))
        p.send("h", b"d", key=b"k", headers=headers)
        headers.clear()
        p.send("h", b"e", key=b"k", headers=headers)
        p.send("h", b"f", key=b"k", headers=[("trace", memoryview(b"two"))])
    assert [(m.value, m.headers) for m in consume_all(log, "h")] == [
        (b"a", [("trace", b"one")]), (b"b", [("trace", b"one")]), (b"c", [("trace", b"two")]),
        (b"d", [("trace", b"two"), ("dup", None), ("dup", b"")]), (b"e", []), (b"f", [("trace", b"two")])]


@pytest.mark.parametrize("headers", [
    [("a", 1)], [(1, b"x")], [("a", b"x", b"y")], [["a"]], [("x" * 70_000, b"v")],
    [("a", b"ok"), ("b", object())], ["ab"], [b"ab"], [("a", b"ok"), "xy"],
])
def test_bad_headers_are_refused_at_send_and_nothing_is_buffered(log: embedlog.Log, headers: Any) -> None:
    log.create_topic("t")
    with log.producer() as p:
        p.send("t", b"v", key=b"k")  # the key is known: the next sends take the fast path first
        for _ in range(2):
            with pytest.raises(SerializationError):
                p.send("t", b"v", key=b"k", headers=headers)
            with pytest.raises(SerializationError):
                p._send_many("t", 0, [b"k"], [b"v"], [headers], None)
        assert len(p) == 1


def test_send_many_checks_every_column_and_buffers_nothing_on_an_error(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    log.create_topic("c", partitions=1, config={"cleanup.policy": "compact", "max.message.bytes": 100})
    with log.producer() as p:
        with pytest.raises(ConfigError):
            p._send_many("t", 0, [b"k", b"k"], [b"a", b"b"], None, [5, -1])
        with pytest.raises(ConfigError):
            p._send_many("t", 0, [b"k"], [b"a"], None, [True])
        with pytest.raises(InvalidRecordError):
            p._send_many("c", 0, [b"k", None], [b"a", b"b"], None, None)
        with pytest.raises(RecordTooLargeError):
            p._send_many("c", 0, [b"k", b"k"], [b"a", b"x" * 100], None, None)
        with pytest.raises(SerializationError):
            p._send_many("t", 0, [b"k"], ["text"], None, None)
        with pytest.raises(embedlog.errors.UnknownPartitionError):
            p._send_many("t", 2, [b"k"], [b"a"], None, None)
        assert len(p) == 0
        p._send_many("t", 1, [b"k", None, bytearray(b"k2")], [b"a", None, b"c"], [None, [("h", b"1")], ()],
                     [7, None, 9])
        p._send_many("c", 0, [b"k" * 50], [b"x" * 50], None, None)  # exactly max.message.bytes
    got = consume_all(log, "t")
    assert [(m.partition, m.key, m.value, m.headers) for m in got] == [
        (1, b"k", b"a", []), (1, None, None, [("h", b"1")]), (1, b"k2", b"c", [])]
    assert [got[0].timestamp, got[2].timestamp] == [7, 9]
    assert got[1].timestamp > 1_600_000_000_000


@pytest.mark.parametrize("headers", [[("h", b"y" * 5000)], [("a", b"1"), ("h", b"y" * 96)], [("\u00e9" * 60, None)],
                                     [("h" * 99, None)]])
def test_headers_count_towards_max_message_bytes(log: embedlog.Log, headers: list[Header]) -> None:
    """Every path: the fast one (ascii names), the general one (other names, or the key
    serializer's), the bulk one; a record over the limit only by its headers is refused
    and nothing is buffered."""
    log.create_topic("t", config={"max.message.bytes": 100})
    with log.producer() as p, log.producer(key_serializer=lambda k: k) as slow:
        for producer in (p, slow):
            with pytest.raises(RecordTooLargeError, match=r"larger than max\.message\.bytes=100"):
                producer.send("t", b"v", key=b"k", headers=headers)
        with pytest.raises(RecordTooLargeError):
            p._send_many("t", 0, [b"k", b"k"], [b"v", b"v"], [None, headers], None)
        assert len(p) == len(slow) == 0
        p.send("t", b"v" * 40, key=b"k" * 40, headers=[("h" * 10, b"y" * 10)])  # exactly 100 bytes
        p._send_many("t", 0, [b"k"], [b"v" * 40], [[("h" * 49, b"y" * 10)]], None)
    assert [len(m.headers) for m in consume_all(log, "t")] == [1, 1]


def test_threads_sending_headers_and_callbacks_while_another_flushes(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=3)
        seen = Deliveries()
        n, threads = 2_000, 4
        with log.producer(linger_ms=1) as p:
            def sender(t: int) -> None:
                for i in range(n):
                    tag = b"%d-%d" % (t, i)
                    cb = seen.for_record(tag) if i % 3 else None
                    hdrs = [("thread", b"%d" % t)] if i % 2 else [("thread", b"%d" % t), ("i", tag)]
                    p.send("t", tag, key=b"key-%d" % (i % 7), headers=hdrs, on_delivery=cb)

            harness.send_while_flushing(p, sender, threads)
            p.flush()
        got = consume_all(log, "t")
        assert len(got) == n * threads
        for m in got:
            t, i = map(int, m.value.split(b"-"))
            assert m.headers == ([("thread", b"%d" % t)] if i % 2 else [("thread", b"%d" % t), ("i", m.value)])
            if i % 3:
                (md,) = seen.got[m.value]
                assert md is not None
                assert (md.partition, md.offset) == (m.partition, m.offset)
        assert len(seen.got) == sum(1 for i in range(n) if i % 3) * threads


@pytest.mark.parametrize("column", [
    lambda: [[("a", b"1"), ("a", None)]] * 3,  # one list object for every record
    lambda: [[("a", b"1"), ("a", None)] for _ in range(3)],  # equal lists, distinct objects
    lambda: [(("a", b"1"), ("a", None))] * 3,  # tuples
    lambda: [{"a": b"1"}] * 3,  # a mapping: the general check makes the pairs
])
def test_send_many_uniform_header_column(log: embedlog.Log, column: Any) -> None:
    """A column whose header sets are all equal is checked once and every record keeps them."""
    log.create_topic("t")
    headers = column()
    expected = [("a", b"1")] if isinstance(headers[0], dict) else [("a", b"1"), ("a", None)]
    with log.producer() as p:
        p._send_many("t", 0, [b"k0", b"k1", b"k2"], [b"a", b"b", b"c"], headers, None)
        headers[0] = None  # the caller's column is taken over: the buffered records do not change
    got = consume_all(log, "t")
    assert [(m.key, m.headers) for m in got] == [(b"k0", expected), (b"k1", expected), (b"k2", expected)]


def test_send_many_uniform_bad_header_column_buffers_nothing(log: embedlog.Log) -> None:
    log.create_topic("t")
    with log.producer() as p:
        with pytest.raises(SerializationError):
            p._send_many("t", 0, [b"k", b"k"], [b"a", b"b"], [[("a", 1)], [("a", 1)]], None)
        assert len(p) == 0
