"""The optional C extension ``embedlog._speedups`` against the pure-Python code it mirrors.

``Producer.send`` (``_speedups.SendBase.send`` against ``sendpath._PySendBase.send``) and
``codec.batch.encode_records`` (C against ``encode``) must give the same results for every
input, good or bad: the same buffered records, the same errors, the same stored bytes.
"""

from __future__ import annotations

import inspect
import os
import struct
import subprocess
import sys
import tempfile
from itertools import repeat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedlog
from embedlog import _native, sendpath
from embedlog import consumer as consumer_mod
from embedlog import producer as producer_mod
from embedlog.codec import batch
from embedlog.model import NO_HEADERS, Message
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)
from strategies import Rec, batches

PACKAGE = Path(embedlog.__file__).parent
BUILT = any(PACKAGE.glob("_speedups*.so")) or any(PACKAGE.glob("_speedups*.pyd"))

needs_speedups = pytest.mark.skipif(_native.speedups is None, reason="embedlog._speedups is not built here")


def test_a_built_extension_is_the_one_in_use() -> None:
    """Where ``pip install`` built the extension, embedlog uses it (a build that does not
    load would silently cost the producer half its speed)."""
    if os.environ.get("EMBEDLOG_PURE_PYTHON"):
        pytest.skip("EMBEDLOG_PURE_PYTHON is set")
    if not BUILT:
        pytest.skip("no compiled extension in the package (no C compiler at install time)")
    assert _native.speedups is not None
    assert producer_mod.Producer.__mro__[1] is _native.speedups.SendBase
    assert consumer_mod._messages is _native.speedups.messages


def test_pure_python_is_chosen_by_the_environment() -> None:
    code = ("import embedlog, embedlog._native as n, embedlog.producer as p, embedlog.sendpath as s;"
            "print(n.speedups is None, p.Producer.__mro__[1] is s._PySendBase)")
    env = {**os.environ, "EMBEDLOG_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


# -- encode_records ----------------------------------------------------------------------
STRIDE = 7
maybe_bytes = st.one_of(st.none(), st.binary(max_size=64))
record = st.tuples(maybe_bytes, maybe_bytes, st.integers(-(2**63), 2**63 - 1))


def _flat(records: list[tuple[bytes | None, bytes | None, int]]) -> list[Any]:
    flat: list[Any] = []
    for key, value, ts in records:
        flat += (key, value, ts, -1 if key is None else len(key), -1 if value is None else len(value), None, None)
    return flat


def _pure(monkeypatch: pytest.MonkeyPatch, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with monkeypatch.context() as m:
        m.setattr(_native, "speedups", None)
        return fn(*args, **kwargs)


@needs_speedups
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.one_of(st.none(), st.binary(max_size=5000)), value=st.one_of(st.none(), st.binary(max_size=5000)),
       ts=st.integers(-(2**63), 2**63 - 1), transactional=st.booleans())
def test_encode_one_in_c_writes_the_bytes_of_python(monkeypatch: pytest.MonkeyPatch, key: bytes | None,
                                                     value: bytes | None, ts: int, transactional: bool) -> None:
    """A one-record flush's batch (``encode_one``) is the same bytes in C and in Python, CRC
    included; past 4 KiB the C encoder declines and Python encodes."""
    got = batch.encode_one(key, value, ts, transactional=transactional)
    with monkeypatch.context() as m:
        m.setattr(batch, "_encode_one_c", None)
        want = batch.encode_one(key, value, ts, transactional=transactional)
    assert bytes(got) == bytes(want)
    c = _native.speedups.encode_one(key, value, ts, batch.ATTR_TRANSACTIONAL if transactional else 0)
    small = batch.HEADER_SIZE + 16 + len(key or b"") + len(value or b"") <= 4096
    assert (c is not None) == small
    decoded = batch.decode(bytes(got))
    assert (decoded.keys, decoded.values, list(decoded.timestamps), decoded.info.record_count) == (
        [key], [value], [ts], 1)


@needs_speedups
def test_encode_one_in_c_declines_what_python_must_judge() -> None:
    enc = _native.speedups.encode_one
    assert enc(bytearray(b"k"), b"v", 1, 0) is None  # (bytes-like: the Python encoder takes it)
    assert enc(b"k", memoryview(b"v"), 1, 0) is None
    assert enc(b"k", b"v", 2**63, 0) is None  # (out of range: Python's error says so)
    with pytest.raises(struct.error):
        batch.encode_one(b"k", b"v", 2**63)
    with pytest.raises(ValueError, match="attributes"):
        enc(b"k", b"v", 1, 256)
    with pytest.raises(TypeError):
        enc(b"k", b"v", 1)


@needs_speedups
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(record, min_size=1, max_size=40), data=st.data(), transactional=st.booleans())
def test_encode_records_writes_the_bytes_of_encode(monkeypatch: pytest.MonkeyPatch, records: list[Any],
                                                   data: st.DataObject, transactional: bool) -> None:
    n = len(records)
    start = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(start + 1, n))
    limit = data.draw(st.integers(0, 200))
    reuse = data.draw(st.one_of(st.none(), st.binary(max_size=3000).map(bytearray)))  # (a spare buffer)
    flat = _flat(records)
    got, end = batch.encode_records(flat, STRIDE, start, stop, limit, transactional=transactional, out=reuse)
    if reuse is not None:
        assert got is reuse
    want, want_end = _pure(monkeypatch, batch.encode_records, flat, STRIDE, start, stop, limit,
                           transactional=transactional)
    assert (bytes(got), end) == (bytes(want), want_end)
    assert start < end <= stop
    keys, values, stamps = zip(*records[start:end])
    assert got == batch.encode(list(keys), list(values), list(stamps), transactional=transactional)
    decoded = batch.decode(bytes(got))
    assert (decoded.keys, decoded.values, list(decoded.timestamps)) == (list(keys), list(values), list(stamps))


@needs_speedups
@pytest.mark.parametrize(("entry", "error"), [
    ("text", TypeError), (bytearray(b"x"), TypeError), (1.5, TypeError)])
def test_encode_records_refuses_what_the_producer_never_buffers(entry: object, error: type[Exception]) -> None:
    for slot in (0, 1, 2):
        if slot < 2 and isinstance(entry, float):
            continue
        flat = _flat([(b"k", b"v", 1)] * 3)
        flat[STRIDE + slot] = entry if slot < 2 else str(entry)
        with pytest.raises(error):
            batch.encode_records(flat, STRIDE, 0, 3, 1 << 20)
    with pytest.raises(ValueError, match="bad stride, range"):
        batch.encode_records(_flat([(b"k", b"v", 1)]), STRIDE, 0, 2, 1 << 20)
    with pytest.raises(OverflowError):
        batch.encode_records(_flat([(b"k", b"v", 2**64)]), STRIDE, 0, 1, 1 << 20)


@needs_speedups
def test_take_all_moves_the_items_and_leaves_the_list_empty() -> None:
    src = [object() for _ in range(5)]
    before = list(src)
    out = _native.speedups.take_all(src)
    assert src == []
    assert out == before
    src.append(1)  # the emptied list is a working list again
    assert src == [1]
    assert out == before
    with pytest.raises(TypeError):
        _native.speedups.take_all((1, 2))


@needs_speedups
def test_take_into_appends_the_taken_items_with_their_head_in_one_step() -> None:
    src = [object() for _ in range(5)]
    before = list(src)
    out: list[object] = ["earlier"]
    assert _native.speedups.take_into(out, "st", 3, src) is None
    assert src == []
    assert out[0] == "earlier"
    assert out[1] == ("st", 3, before)
    src.append(1)
    assert out[1][2] == before
    for bad in ((out, "st", 3, (1, 2)), ((), "st", 3, []), (out, "st", 3)):
        with pytest.raises(TypeError):
            _native.speedups.take_into(*bad)
    assert len(out) == 2


@needs_speedups
def test_take_into_leaves_the_list_room_for_as_many_items_as_it_held() -> None:
    """A producer's partition buffer, drained at every flush, is filled again without
    growing from nothing (each growth copies what the list holds): the emptied list keeps
    room for as many items as it held, up to 2**17, and works as any list."""
    empty = sys.getsizeof([])
    src = list(range(700))
    out: list[object] = []
    _native.speedups.take_into(out, "st", 0, src)
    assert src == []
    assert len(out[0][2]) == 700
    assert sys.getsizeof(src) == empty + 700 * 8  # (the room: allocated, no items)
    src.extend(range(5))
    src += (5, 6)
    src[0:0] = [-1]
    assert src == [-1, 0, 1, 2, 3, 4, 5, 6]
    del src[:]
    assert src == []
    big = list(range(200_000))
    _native.speedups.take_into(out, "st", 1, big)
    assert big == []
    assert sys.getsizeof(big) == empty + (1 << 17) * 8
    small = [1, 2, 3]
    _native.speedups.take_into(out, "st", 2, small)
    assert small == []
    assert sys.getsizeof(small) == empty
    assert [len(entry[2]) for entry in out] == [700, 200_000, 3]


# -- messages -------------------------------------------------------------------------------
@needs_speedups
@settings(max_examples=200, deadline=None)
@given(recs=batches(max_size=30), data=st.data(), listed=st.booleans(), log_append=st.booleans())
def test_messages_in_c_are_the_consumers_messages(recs: list[Rec], data: st.DataObject, listed: bool,
                                                  log_append: bool) -> None:
    """``_speedups.messages`` makes what the consumer's ``map``/``zip`` makes: equal
    ``Message`` tuples, of that very class, appended after what ``out`` held."""
    buf = batch.encode([r.key for r in recs], [r.value for r in recs], [r.timestamp for r in recs],
                       [r.headers for r in recs])
    base = data.draw(st.integers(0, 2**62), "base")
    batch.stamp(buf, base, 5, 1)
    b = batch.decode(buf)
    n = len(recs)
    i = data.draw(st.integers(0, n), "i")
    j = data.draw(st.integers(i, n), "j")
    offsets: Any = list(b.offsets) if listed else b.offsets  # (a compacted batch's offsets are a list)
    ts_type = "LogAppendTime" if log_append else "CreateTime"
    hdrs = b.headers[i:j] if b.headers is not None else repeat(NO_HEADERS, j - i)
    expected = list(map(consumer_mod._new_message, zip(
        repeat("t", j - i), repeat(3, j - i), offsets[i:j], b.keys[i:j], b.values[i:j], hdrs, b.timestamps[i:j],
        repeat(ts_type, j - i), repeat(5, j - i))))
    out: list[Any] = ["before"]
    _native.speedups.messages(out, Message, "t", 3, offsets if listed else offsets.start, b.keys, b.values,
                              b.headers, NO_HEADERS, b.timestamps, ts_type, 5, i, j)
    assert out[0] == "before"
    assert out[1:] == expected
    assert all(type(m) is Message for m in out[1:])
    if b.headers is None:
        assert all(m.headers is NO_HEADERS for m in out[1:])


@needs_speedups
def test_messages_refuses_what_a_decoded_batch_never_holds() -> None:
    make = _native.speedups.messages
    cols = ([b"k"], [b"v"], None, NO_HEADERS, [7], "CreateTime", 0)
    with pytest.raises(TypeError):
        make((), Message, "t", 0, 0, *cols, 0, 1)  # out not a list
    with pytest.raises(TypeError):
        make([], dict, "t", 0, 0, *cols, 0, 1)  # not a tuple class
    with pytest.raises(TypeError):
        make([], Message, "t", 0, range(1), *cols, 0, 1)  # offsets neither int nor list
    with pytest.raises(ValueError, match="unequal length or a bad range"):
        make([], Message, "t", 0, 0, [b"k"], [b"v", b"w"], None, NO_HEADERS, [7], "CreateTime", 0, 0, 1)
    with pytest.raises(ValueError, match="unequal length or a bad range"):
        make([], Message, "t", 0, 0, *cols, 0, 2)
    with pytest.raises(TypeError, match="14 arguments"):
        make([], Message)
    out: list[Any] = []
    make(out, Message, "t", 0, 41, *cols, 0, 1)
    assert out == [Message("t", 0, 41, b"k", b"v", NO_HEADERS, 7, "CreateTime", 0)]


# -- decode_one --------------------------------------------------------------------------
def _python_decode(buf: Any) -> Any:
    """``batch.decode`` without the extension's one-record decoder: the reference."""
    saved = batch._decode_one_c
    batch._decode_one_c = None
    try:
        return batch.decode(buf)
    finally:
        batch._decode_one_c = saved


def _one(key: bytes | None, value: bytes | None, ts: int, base: int, epoch: int, seq: int,
         log_append: bool, transactional: bool) -> bytes:
    buf = batch.encode_one(key, value, ts, transactional=transactional)
    batch.stamp(buf, base, epoch, seq)
    if log_append:
        batch.restamp_log_append_time(buf, ts + 7)
    return bytes(buf)


ONE = st.builds(_one, maybe_bytes | st.binary(min_size=4000, max_size=4100), maybe_bytes,
                st.integers(0, 2**62), st.integers(0, 2**62), st.integers(0, 2**31 - 1), st.integers(0, 2**62),
                st.booleans(), st.booleans())


@needs_speedups
@settings(max_examples=300, deadline=None)
@given(ONE)
def test_decode_one_in_c_decodes_as_python_does(buf: bytes) -> None:
    """One-record batches of any key, value (None, empty, past the 4 KiB the C path takes),
    timestamp type and stamp: the C decoder gives what the Python one gives, as the same
    named tuples, or None (too large) and leaves it to Python."""
    c = _native.speedups.decode_one(buf, batch.BatchInfo, batch.DecodedBatch)
    expected = _python_decode(buf)
    if len(buf) > 4096:
        assert c is None
    else:
        assert c == expected
        assert type(c) is batch.DecodedBatch
        assert type(c.info) is batch.BatchInfo
        assert type(c.offsets) is range
        assert c.headers is None
    assert batch.decode(buf) == expected  # (through decode, which uses it where built)


@needs_speedups
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ONE, st.data())
def test_decode_one_in_c_never_decodes_a_damaged_batch(buf: bytes, data: st.DataObject) -> None:
    """A flipped byte, a cut or a longer buffer: the C decoder returns None (Python then
    raises ``CorruptBatchError``) or, where the damage is outside what the CRC covers
    (the stamped base offset, epoch, commit sequence), exactly what Python decodes."""
    damaged = bytearray(buf)
    how = data.draw(st.sampled_from(["flip", "cut", "grow"]), "how")
    if how == "flip":
        at = data.draw(st.integers(0, len(damaged) - 1), "at")
        damaged[at] ^= 1 << data.draw(st.integers(0, 7), "bit")
    elif how == "cut":
        del damaged[data.draw(st.integers(0, len(damaged) - 1), "keep"):]
    else:
        damaged += b"\x00"
    c = _native.speedups.decode_one(bytes(damaged), batch.BatchInfo, batch.DecodedBatch)
    try:
        expected = _python_decode(bytes(damaged))
    except batch.CorruptBatchError:
        assert c is None
        return
    assert c is None or c == expected


@needs_speedups
def test_decode_one_takes_only_plain_one_record_batches_and_refuses_bad_arguments() -> None:
    one = _native.speedups.decode_one
    two = bytes(batch.encode([b"a", b"b"], [b"1", b"2"], [1, 2]))
    assert one(two, batch.BatchInfo, batch.DecodedBatch) is None  # two records
    zstd = bytes(batch.encode([b"a"], [b"1" * 100], [1], compression=batch.COMPRESSION_ZSTD))
    assert one(zstd, batch.BatchInfo, batch.DecodedBatch) is None  # compressed
    with_headers = bytes(batch.encode([b"a"], [b"1"], [1], [[("h", b"v")]]))
    assert one(with_headers, batch.BatchInfo, batch.DecodedBatch) is None  # headers
    assert one(b"", batch.BatchInfo, batch.DecodedBatch) is None
    good = _one(b"k", b"v", 1, 0, 0, 0, False, False)
    assert one(memoryview(good), batch.BatchInfo, batch.DecodedBatch) == _python_decode(good)
    assert one(bytearray(good), batch.BatchInfo, batch.DecodedBatch) == _python_decode(good)
    with pytest.raises(TypeError):
        one("not bytes", batch.BatchInfo, batch.DecodedBatch)
    with pytest.raises(TypeError, match="tuple subclasses"):
        one(good, dict, batch.DecodedBatch)
    with pytest.raises(TypeError, match="3 arguments"):
        one(good)


# -- split_column ------------------------------------------------------------------------
def _python_split(body: bytes, pos: int, col: bytes) -> Any:
    saved = batch._split_c
    batch._split_c = None
    try:
        return batch._split(body, pos, col)
    finally:
        batch._split_c = saved


@needs_speedups
@settings(max_examples=300, deadline=None)
@given(st.lists(maybe_bytes, max_size=40), st.binary(max_size=8), st.binary(max_size=8), st.data())
def test_split_column_in_c_cuts_as_python_does(items: list[bytes | None], before: bytes, after: bytes,
                                                data: st.DataObject) -> None:
    """Any items (None, empty, any length) at any position of a body with bytes around
    them; and any length column at all, good or not: C gives what Python gives, or both
    refuse (ValueError in C, CorruptBatchError through ``_split``)."""
    body = before + b"".join(i for i in items if i is not None) + after
    col = b"".join((-1 if i is None else len(i)).to_bytes(4, "little", signed=True) for i in items)
    if data.draw(st.booleans(), "garble"):  # any column: lengths below -1, past the end
        col = data.draw(st.binary(max_size=24).map(lambda b: b[:len(b) // 4 * 4]), "col")  # (as _column cuts it)
    try:
        expected = _python_split(body, len(before), col)
    except batch.CorruptBatchError:
        with pytest.raises(ValueError, match="past the end"):
            _native.speedups.split_column(body, len(before), col)
        with pytest.raises(batch.CorruptBatchError):
            batch._split(body, len(before), col)
        return
    got = _native.speedups.split_column(body, len(before), col)
    assert got == (expected[0], expected[1])
    assert batch._split(memoryview(body), len(before), col) == got


@needs_speedups
def test_split_column_refuses_bad_arguments() -> None:
    split = _native.speedups.split_column
    with pytest.raises(TypeError, match="3 arguments"):
        split(b"", 0)
    with pytest.raises(TypeError):
        split("text", 0, b"")
    with pytest.raises(ValueError, match="past the end"):
        split(b"abc", 4, b"")  # a position past the body
    with pytest.raises(ValueError, match="past the end"):
        split(b"abc", -1, b"")
    assert split(b"abc", 3, b"") == ([], 3)
    with pytest.raises(ValueError, match="past the end"):
        split(b"abc", 0, b"\x01\x00\x00")  # not a whole i32 (``_column`` never cuts one)


# -- send --------------------------------------------------------------------------------
_py_producer_class = harness.py_producer_class


PAIR = ("trace", b"abc")
HEADERS = st.sampled_from([
    None, [], [PAIR], [PAIR], [("a", b"1")], [("a", None)], [("a", b"1"), ("b", None)], [PAIR, PAIR],
    [("é", b"1")], [("a", "text")], [("a", 1)], ["ab"], [("a", b"1", b"2")], [(1, b"x")],
    (("a", b"1"),), {"a": b"1"}, [("a", bytearray(b"1"))], "not headers", [[("a", b"1")]],
])
CALL = st.fixed_dictionaries({
    "topic": st.sampled_from(["t", "t", "three", "small", "missing", "bad name!"]),
    "value": st.sampled_from([b"v", b"", None, b"x" * 40, "text", 7, bytearray(b"ba"), memoryview(b"mv")]),
    "key": st.sampled_from([b"k1", b"k2", b"k3", None, "text", bytearray(b"kb"), 3.5]),
    "headers": HEADERS,
    "partition": st.sampled_from([None, None, None, 0, 2, 9, -1, "x", True]),
    "timestamp_ms": st.sampled_from([None, None, None, 5, -1, 2**63, "now"]),
    "on_delivery": st.sampled_from([None, None, "callback"]),
    "as_keywords": st.booleans(),
})
#: calls the fast path takes once their key was seen (most calls of a real app)
FAST_CALL = st.fixed_dictionaries({
    "topic": st.sampled_from(["t", "three", "small"]),
    "value": st.sampled_from([b"v", b"", b"x" * 40]),
    "key": st.sampled_from([b"k1", b"k2"]),
    "headers": st.one_of(st.none(), st.sampled_from([[PAIR], [("a", b"1"), ("b", None)], [], [("é", b"1")],
                                                     [("a", 1)]])),
    "partition": st.just(None),
    "timestamp_ms": st.just(None),
    "on_delivery": st.sampled_from([None, None, None, "callback"]),
    "as_keywords": st.booleans(),
})


def _outcome(fn: Any, call: dict[str, Any], delivered: list[Any]) -> tuple[str, str] | None:
    args = dict(call)
    as_keywords = args.pop("as_keywords")
    if args["on_delivery"] == "callback":
        args["on_delivery"] = lambda err, md: delivered.append((err is None, md.topic, md.partition, md.offset))
    if args["topic"] == "three" and args["key"] is None and args["partition"] is None:
        args["partition"] = 1  # (keyless records of a multi-partition topic go to a random sticky partition)
    try:
        if as_keywords:
            fn(**args)
        else:
            fn(args.pop("topic"), args.pop("value"), args.pop("key"), **args)
    except Exception as exc:  # (compared between the two implementations)
        return type(exc).__name__, str(exc)
    return None


def _buffered(p: Any) -> dict[str, list[list[Any]]]:
    """Each topic's partition buffers, timestamps masked (the clock moves between calls)."""
    out = {}
    for name, state in p._topics.items():
        bufs = []
        for acc in state.accs:
            masked = list(acc)
            masked[2::7] = ["ts"] * (len(acc) // 7)
            masked[6::7] = [cb is not None for cb in acc[6::7]]
            bufs.append(masked)
        out[name] = bufs
    return out


def _run_both(calls: list[dict[str, Any]]) -> None:
    """Make ``calls`` on a C and a pure-Python producer; assert the same outcome after each."""
    py_class = _py_producer_class()
    with tempfile.TemporaryDirectory() as root:
        logs = [embedlog.open(Path(root) / name, durability="none") for name in ("c", "py")]
        try:
            for log in logs:
                _setup(log)
            producers = [producer_mod.Producer(logs[0], linger_ms=600_000),
                         py_class(logs[1], linger_ms=600_000)]
            assert type(producers[0]).__mro__[1] is _native.speedups.SendBase
            delivered: list[list[Any]] = [[], []]
            for call in calls:
                results = [_outcome(p.send, call, d) for p, d in zip(producers, delivered)]
                assert results[0] == results[1], call
                assert _buffered(producers[0]) == _buffered(producers[1]), call
                for field in ("_extras", "_last_headers", "_last_pair", "_last_name", "_idle", "_pending"):
                    assert getattr(producers[0], field) == getattr(producers[1], field), (field, call)
                # (a due time is a wall-clock ms: the same state, not the same number)
                assert (producers[0]._due_ms == sendpath._NO_DUE) == (producers[1]._due_ms == sendpath._NO_DUE), call
            for p in producers:
                p.close()
            assert delivered[0] == delivered[1]
            assert _stored(logs[0]) == _stored(logs[1])
        finally:
            for log in logs:
                log.close()


def _setup(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=1)
    log.create_topic("three", partitions=3)
    log.create_topic("small", partitions=1, config={"max.message.bytes": 20})


def _stored(log: embedlog.Log) -> list[tuple[Any, ...]]:
    out = []
    with log.consumer(["t", "three", "small"], auto_offset_reset="earliest") as c:
        while batch_ := c.poll(timeout=0.2):
            out += [(m.topic, m.partition, m.offset, m.key, m.value, m.headers,
                     m.timestamp if m.timestamp < 10**12 else "now") for m in batch_]
    return sorted(out, key=lambda r: (r[0], r[1], r[2]))


@needs_speedups
@settings(max_examples=100, deadline=None)
@given(calls=st.lists(st.one_of(FAST_CALL, FAST_CALL, CALL), min_size=1, max_size=25))
def test_send_in_c_does_what_send_in_python_does(calls: list[dict[str, Any]]) -> None:
    _run_both(calls)


def _call(**overrides: Any) -> dict[str, Any]:
    return {"topic": "t", "value": b"v", "key": b"k1", "headers": None, "partition": None, "timestamp_ms": None,
            "on_delivery": None, "as_keywords": False, **overrides}


@needs_speedups
@pytest.mark.parametrize("second", [
    _call(on_delivery="callback"), _call(headers=[PAIR]), _call(headers=[PAIR, ("b", None)]), _call(headers=[]),
    _call(headers=[("é", b"1")]), _call(headers=[("a", "s")]), _call(value=b"x" * 40, topic="small"),
    _call(value=None), _call(key=None), _call(partition=0), _call(timestamp_ms=9), _call(as_keywords=True),
], ids=["callback", "one-header", "two-headers", "no-headers", "non-ascii-name", "str-value", "too-large",
        "tombstone", "no-key", "partition", "timestamp", "keywords"])
def test_each_fast_path_decision_matches(second: dict[str, Any]) -> None:
    """A key seen once, then one call that the fast path must take or hand on, then the
    same call again (the fast path's memory of the last headers)."""
    first = _call(topic=second["topic"])
    _run_both([first, second, second, first])


@needs_speedups
def test_send_argument_errors_are_pythons(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t")
        with log.producer(linger_ms=600_000) as p:  # both records stay buffered
            p.send(topic="t", value=b"v", key=b"k")
            p.send("t", b"v", b"k", None, None, None, None)
            with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
                p.send("t", b"v", colour=1)
            with pytest.raises(TypeError, match="multiple values for argument 'value'"):
                p.send("t", b"v", value=b"w")
            with pytest.raises(TypeError, match="missing 1 required positional argument: 'topic'"):
                p.send(value=b"v")
            with pytest.raises(TypeError, match="at most 7 arguments"):
                p.send("t", b"v", b"k", None, None, None, None, None)
            assert len(p) == 2


def test_send_without_the_extension_in_a_subprocess(tmp_path: Path) -> None:
    """The pure-Python producer and consumer end to end (what runs where nothing was compiled)."""
    code = f"""
import embedlog, embedlog.producer as pm, embedlog.sendpath as sp, embedlog.consumer as cm
assert pm.Producer.__mro__[1] is sp._PySendBase
assert cm._messages is None
with embedlog.open({str(tmp_path / 'log')!r}) as log:
    log.create_topic("t", partitions=2)
    with log.producer() as p:
        for i in range(2500):
            p.send("t", b"v%d" % i, key=b"k%d" % (i % 7), headers=[("h", b"x")] if i % 3 == 0 else None)
        p.flush()
    with log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = []
        while len(got) < 2500:
            got += c.poll(timeout=5.0)
    print(len(got), sum(1 for m in got if m.headers))
"""
    env = {**os.environ, "EMBEDLOG_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2500", "834"]


def test_threads_sending_plain_records_while_others_flush(tmp_path: Path) -> None:
    """Senders append while a flusher and the linger thread drain the same buffers (each
    emptied at once by ``take_all``, encoded by ``encode_records``): every record is stored
    once, and each thread's records of one key keep their order."""
    n, threads = 5_000, 4
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=3)
        with log.producer(linger_ms=0.2, batch_size=4096) as p:
            def sender(t: int) -> None:
                for i in range(n):
                    p.send("t", b"%d-%d" % (t, i), b"key-%d" % (i % 5))

            harness.send_while_flushing(p, sender, threads)
        got = []
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            while len(got) < n * threads:
                more = c.poll(timeout=10.0)
                assert more, f"only {len(got)} records"
                got += more
            assert c.poll(timeout=0) == []
    values = [m.value for m in got]
    assert sorted(values) == sorted(b"%d-%d" % (t, i) for t in range(threads) for i in range(n))
    last: dict[tuple[int, bytes], int] = {}
    for m in sorted(got, key=lambda m: (m.partition, m.offset)):
        t, i = map(int, m.value.split(b"-"))
        assert last.get((t, m.key), -1) < i
        last[(t, m.key)] = i


@needs_speedups
def test_send_in_c_has_the_python_signature_and_docstring() -> None:
    c_send, py_send = _native.speedups.SendBase.send, sendpath._PySendBase.send
    assert inspect.getdoc(c_send) == inspect.getdoc(py_send)
    c_params = list(inspect.signature(c_send).parameters.values())
    py_params = list(inspect.signature(py_send).parameters.values())
    assert [(p.name, p.default) for p in c_params] == [(p.name, p.default) for p in py_params]


@pytest.mark.parametrize("impl", ["c", "python"])
def test_send_reads_the_topic_limit_as_it_is_now(tmp_path: Path, impl: str) -> None:
    """The fast path reads ``max_bytes`` of the topic state at every record (a refresh after
    ``alter_topic_config`` changes it in place)."""
    if impl == "c" and _native.speedups is None:
        pytest.skip("embedlog._speedups is not built here")
    cls = producer_mod.Producer if impl == "c" else _py_producer_class()
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t")
        p = cls(log, linger_ms=600_000)
        try:
            p.send("t", b"v" * 30, b"k")
            p._topics["t"].max_bytes = 20
            with pytest.raises(embedlog.errors.RecordTooLargeError, match=r"max\.message\.bytes=20"):
                p.send("t", b"v" * 30, b"k")
            p.send("t", b"v" * 10, b"k")
            assert len(p) == 2
        finally:
            p.close()


@needs_speedups
def test_the_remembered_topic_follows_the_topic_and_the_producer(tmp_path: Path) -> None:
    """``send`` in C remembers the last topic's state: other topics, an equal name that is
    another str object, and a producer closed since, each get what a lookup would give."""
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("alpha")
        log.create_topic("beta", partitions=2)
        p = producer_mod.Producer(log, linger_ms=600_000)
        other_beta = "".join(["be", "ta"])
        assert other_beta == "beta"
        assert other_beta is not "beta"  # noqa: F632 - the point: another object
        try:
            for topic, value in (("alpha", b"1"), ("alpha", b"2"), (other_beta, b"3"), ("beta", b"4"),
                                 ("alpha", b"5")):
                p.send(topic, value, b"k")
            p.flush()
        finally:
            p.close()
        with pytest.raises(embedlog.errors.ClosedError):
            p.send("alpha", b"6", b"k")
        with log.consumer(["alpha", "beta"], auto_offset_reset="earliest") as c:
            got = sorted((m.topic, m.offset, m.value) for m in c.poll(timeout=1.0, max_records=100))
    assert got == [("alpha", 0, b"1"), ("alpha", 1, b"2"), ("alpha", 2, b"5"), ("beta", 0, b"3"),
                   ("beta", 1, b"4")]


@pytest.mark.parametrize("impl", ["c", "python"])
def test_callbacks_of_records_split_into_many_batches_get_their_own_offsets(tmp_path: Path, impl: str) -> None:
    """Records with delivery callbacks and no headers take the one-pass encoder too; each
    callback still gets its record's offset when a flush is split into several batches."""
    if impl == "c" and _native.speedups is None:
        pytest.skip("embedlog._speedups is not built here")
    cls = producer_mod.Producer if impl == "c" else _py_producer_class()
    got: dict[bytes, tuple[int, int]] = {}
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=2)
        p = cls(log, linger_ms=600_000, batch_size=700)
        try:
            for i in range(3000):
                value = b"%d" % i

                def done(err: Any, md: Any, value: bytes = value) -> None:
                    assert err is None
                    got[value] = (md.partition, md.offset)

                p.send("t", value, b"k%d" % (i % 5), on_delivery=done if i % 2 else None)
            p.flush()
        finally:
            p.close()
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            stored = {}
            while len(stored) < 3000:
                stored.update({m.value: (m.partition, m.offset) for m in c.poll(timeout=5.0)})
    assert len(got) == 1500
    assert all(stored[v] == where for v, where in got.items())


@needs_speedups
def test_a_spare_buffer_still_viewed_is_not_written_over() -> None:
    flat = _flat([(b"k", b"v" * 50, 1)] * 4)
    spare = bytearray(b"x" * 10)
    with memoryview(spare) as view:
        got, end = batch.encode_records(flat, STRIDE, 0, 4, 1 << 20, out=spare)
        assert got is not spare
        assert bytes(view) == b"x" * 10
    assert (got, end) == (batch.encode([b"k"] * 4, [b"v" * 50] * 4, [1] * 4), 4)


def test_a_producer_reuses_its_batch_buffers_and_stores_every_record(tmp_path: Path) -> None:
    """Flushes of different sizes encode into the buffers earlier writes left (the C
    pass), and every record is stored as sent."""
    sizes = [1, 3000, 7, 2500, 40, 5000, 2, 1200]
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=2)
        with log.producer(batch_size=20_000) as p:
            sent = []
            for round_, n in enumerate(sizes):
                for i in range(n):
                    value = b"%d-%d-" % (round_, i) + b"v" * (i % 300)
                    p.send("t", value, b"k%d" % (i % 9))
                    sent.append(value)
                p.flush()
                if _native.speedups is not None and round_:
                    assert p._spare, "no buffer kept for the next write"
        got = []
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            while len(got) < len(sent):
                more = c.poll(timeout=5.0)
                assert more
                got += [m.value for m in more]
    assert sorted(got) == sorted(sent)
