"""When buffered records are written without a ``flush``.

Linger: a record buffered at wall-clock ms ``t`` is due at ``t + linger_ms``.  The
sender that finds buffered records due writes them itself; the linger thread writes
only for a producer that stopped sending (from it, a write under a sender running in a
loop waited at every LMDB call for the GIL, ~80 ms a write).  And a producer holding
``buffer_records`` records, all partitions together, writes them at once (what bounds
its memory).  Both send paths (the C extension's and the pure-Python reference) and
every way records are buffered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import sendpath
from embedlog.errors import UnknownTopicError
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

IMPLS = ["c", "python"]
NO_DUE = sendpath._NO_DUE


@pytest.fixture
def log(tmp_path: Path) -> Iterator[embedlog.Log]:
    lg = embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None)
    lg.create_topic("t", partitions=2)
    yield lg
    lg.close()


_producer = harness.producer


def _end(log: embedlog.Log) -> int:
    return sum(p.end_offset for p in log.describe_topic("t").partitions)


#: ways a record reaches a buffer: send's fast path (bytes, a key seen before), its
#: general path (an explicit partition), and the bulk path of the bridge
BUFFER: dict[str, Callable[[Any, bytes], None]] = {
    "fast": lambda p, v: p.send("t", v, key=b"k"),
    "general": lambda p, v: p.send("t", v, key=b"k", partition=1),
    "bulk": lambda p, v: p._send_many("t", 0, [b"k"], [v], None, None),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("way", list(BUFFER))
def test_a_sender_that_finds_buffered_records_due_writes_them(log: embedlog.Log, impl: str, way: str) -> None:
    p = _producer(log, impl, linger_ms=60_000)
    try:
        p.send("t", b"0", key=b"k")  # (the key is seen: the fast path takes the next ones)
        BUFFER[way](p, b"1")
        assert len(p) == 2  # not due for a minute: buffered
        assert p._due_ms != NO_DUE
        assert _end(log) == 0
        p._due_ms = 0  # (as if the minute had passed)
        BUFFER[way](p, b"2")
        assert len(p) == 0  # this sender wrote them, the linger thread did not have to
        assert _end(log) == 3
        BUFFER[way](p, b"3")  # a fresh record: due a minute from now again
        assert len(p) == 1
        assert p._due_ms != NO_DUE
    finally:
        p.close()
    assert _end(log) == 4


@pytest.mark.parametrize("impl", IMPLS)
def test_a_failed_write_of_due_records_is_raised_by_the_next_flush(log: embedlog.Log, impl: str) -> None:
    """As for the linger thread's writes: ``send`` buffers, ``flush`` reports."""
    log.create_topic("gone")
    p = _producer(log, impl, linger_ms=60_000)
    try:
        p.send("gone", b"1", key=b"k")
        log.delete_topic("gone")
        p._due_ms = 0
        p.send("t", b"2", key=b"k")  # (due: this send writes what is buffered, "gone"'s record too)
        assert _end(log) == 1
        with pytest.raises(UnknownTopicError, match="deleted"):
            p.flush()
        p.flush()  # reported once
    finally:
        p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_without_linger_senders_never_write_early(log: embedlog.Log, impl: str) -> None:
    """``linger_ms=0`` keeps no due time: the linger thread writes at once, not a sender."""
    p = _producer(log, impl, linger_ms=0)
    try:
        assert p._due_step == -1
        p.send("t", b"1", key=b"k")
        assert p._due_ms == NO_DUE
        harness.wait_until(lambda: _end(log) == 1, "the linger thread wrote the record")
    finally:
        p.close()


def test_a_transaction_never_writes_before_it_commits(log: embedlog.Log) -> None:
    with log.transaction() as tx:
        tx.send("t", b"1", key=b"k")
        inner = tx._producer
        assert inner._due_step == -1
        inner._due_ms = 0
        tx.send("t", b"2", key=b"k")
        tx.send("t", b"3", key=b"k", partition=1)
        assert _end(log) == 0
    assert _end(log) == 3


@pytest.mark.parametrize("impl", IMPLS)
def test_the_linger_thread_writes_for_a_producer_that_stopped_sending(log: embedlog.Log, impl: str) -> None:
    p = _producer(log, impl, linger_ms=20)
    try:
        for i in range(3):
            p.send("t", b"%d" % i, key=b"k")
        harness.wait_until(lambda: _end(log) == 3, "the records written without a flush")
        assert len(p) == 0
    finally:
        p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_the_linger_thread_writes_at_once_after_the_wall_clock_stepped_back(log: embedlog.Log, impl: str) -> None:
    """A due time far further than ``linger_ms`` ahead (the clock was set back) is not
    waited for."""
    p = _producer(log, impl, linger_ms=20)
    try:
        p.send("t", b"1", key=b"k")
        p._due_ms += 3_600_000
        harness.wait_until(lambda: _end(log) == 1, "the record written despite the due time an hour ahead",
                           timeout=10)
    finally:
        p.close()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("way", list(BUFFER))
def test_buffer_records_bounds_all_partitions_together(tmp_path: Path, impl: str, way: str) -> None:
    """Ten records spread over eight partitions reach ``buffer_records=10`` although no
    partition holds ten: the producer writes them all."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=8)
        p = _producer(log, impl, linger_ms=60_000, buffer_records=10)
        try:
            for i in range(8):
                p.send("t", b"v", key=b"k%d" % i)  # (keys over the partitions)
            p.send("t", b"v", key=b"k")  # (the key BUFFER's ways use: seen, so "fast" is the fast path)
            assert len(p) == 9
            assert p._pending == 9 * 7
            assert max(len(acc) for acc in p._topics["t"].accs) < 10 * 7
            BUFFER[way](p, b"10th")
            assert len(p) == 0
            assert p._pending == 0
            assert _end(log) == 10
        finally:
            p.close()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("way", list(BUFFER))
def test_buffer_bytes_bounds_what_the_producer_holds(tmp_path: Path, impl: str, way: str) -> None:
    """Large records reach ``buffer_bytes`` long before ``buffer_records``: the send that
    reaches it writes everything buffered, in every partition (keys and values count)."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=4)
        p = _producer(log, impl, linger_ms=60_000, buffer_bytes=10_000)
        try:
            big = b"v" * 999
            for i in range(3):
                p.send("t", big, key=b"k%d" % i)  # 1,001 bytes each (2-byte keys)
            p.send("t", big * 6, key=b"k")  # the key BUFFER's ways use; 5,995 bytes
            assert len(p) == 4
            assert p._pending_bytes == 3 * 1_001 + 5_995
            BUFFER[way](p, b"x" * 1_002)  # 10,001 bytes with its key: past the bound
            assert len(p) == 0
            assert p._pending_bytes == 0
            assert _end(log) == 5
            p.send("t", None, key=None)  # a tombstone without a key: 0 bytes, still counted as a record
            assert p._pending_bytes == 0
            assert len(p) == 1
        finally:
            p.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_a_transaction_ignores_buffer_bytes(tmp_path: Path, impl: str) -> None:
    """A transaction's records are written at its commit only, however many bytes."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=1)
        with log.transaction() as tx:
            for _ in range(50):
                tx.send("t", b"v" * 1_000_000, key=b"k")  # 50 MB: past the default 32 MiB
            assert _end(log) == 0
        assert _end(log) == 50
