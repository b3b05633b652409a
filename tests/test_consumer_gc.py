"""The consumer pauses automatic garbage collection while it makes messages: the pause
must always end, nest across threads, leave an application's own ``gc.disable()``
alone, and not outlive a fork."""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator

import pytest

import embedlog
from embedlog import TopicPartition
from embedlog.consumer import _GcPause
from embedlog.errors import DeserializationError


@pytest.fixture(autouse=True)
def _gc_on() -> Iterator[None]:
    """Every test starts and ends with automatic collection on and no pause held."""
    gc.enable()
    yield
    assert _GcPause.depth == 0
    gc.enable()


def _fill(log: embedlog.Log, topic: str, n: int, partitions: int = 1) -> None:
    log.create_topic(topic, partitions=partitions)
    with log.producer() as p:
        for i in range(n):
            p.send(topic, b"v%d" % i, key=b"k%d" % (i % 7))
        p.flush()


def test_poll_leaves_collection_on(log: embedlog.Log) -> None:
    _fill(log, "t", 3000)
    seen = []
    with log.consumer("t", auto_offset_reset="earliest", max_poll_records=1000) as c:
        while len(seen) < 3000:
            batch = c.poll(timeout=5)
            assert batch
            assert gc.isenabled()
            seen.extend(m.offset for m in batch)
    assert seen == list(range(3000))


def test_large_polls_dropped_by_the_caller_start_no_collection(log: embedlog.Log) -> None:
    """10,000 messages a poll, each poll's dropped before the next: the allocation count
    goes up and back down without a collection tracing them (one did per poll)."""
    _fill(log, "t", 30_000)
    runs: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    with log.consumer("t", auto_offset_reset="earliest", max_poll_records=10_000) as c:
        got = len(c.poll(timeout=5, max_records=1))  # fetched and decoded: the rest is making messages
        gc.collect()
        gc.callbacks.append(seen)
        try:
            while got < 30_000:
                batch = c.poll(timeout=5)
                assert batch
                got += len(batch)
                del batch
        finally:
            gc.callbacks.remove(seen)
    assert got == 30_000
    assert runs == []


def test_decoding_fetched_batches_starts_no_collection_inside_poll(log: embedlog.Log) -> None:
    """Decoding a fetched batch makes objects per record too (header lists): no collection
    may start inside ``poll`` while it fetches, decodes and makes messages.  What the
    pause deferred runs at the next allocation outside it — at most once a poll, at its
    start, young objects only.  (With the pause around making messages only: 76
    collections in these 10 polls, 6 of them of generation 1.)"""
    log.create_topic("h")
    with log.producer() as p:
        for i in range(20_000):
            p.send("h", b"v", key=b"k", headers=[("trace", b"%08d" % i), ("n", None)])
            if i % 2_000 == 1_999:
                p.flush()  # batches of 2,000: each poll below fetches and decodes one
    inside = [False]
    during: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and inside[0]:
            during.append(info["generation"])

    got = polls = 0
    with log.consumer("h", auto_offset_reset="earliest", max_poll_records=2_000) as c:
        gc.collect()
        gc.callbacks.append(seen)
        try:
            while got < 20_000:
                inside[0] = True
                batch = c.poll(timeout=5)
                inside[0] = False
                polls += 1
                assert batch
                assert batch[0].headers == [("trace", b"%08d" % got), ("n", None)]
                got += len(batch)
                del batch
        finally:
            gc.callbacks.remove(seen)
    assert got == 20_000
    assert len(during) <= polls
    assert set(during) <= {0}


def test_poll_keeps_an_application_gc_disable(log: embedlog.Log) -> None:
    _fill(log, "t", 50)
    gc.disable()
    with log.consumer("t", auto_offset_reset="earliest", max_poll_records=10) as c:
        assert len(c.poll(timeout=5)) == 10
        assert not gc.isenabled()
        assert len(c.poll(timeout=5, max_records=1000)) == 40
        assert not gc.isenabled()


def test_collection_during_a_poll_is_paused(log: embedlog.Log) -> None:
    """A deserializer runs while messages are made: collection is off for it, back on after."""
    _fill(log, "t", 20)
    states: list[bool] = []

    def de(v: bytes) -> bytes:
        states.append(gc.isenabled())
        return v

    with log.consumer("t", auto_offset_reset="earliest", value_deserializer=de) as c:
        assert len(c.poll(timeout=5, max_records=20)) == 20
    assert states == [False] * 20
    assert gc.isenabled()


def test_a_failing_deserializer_ends_the_pause(log: embedlog.Log) -> None:
    _fill(log, "t", 5)

    def de(v: bytes) -> bytes:
        raise ValueError("bad record")

    with log.consumer("t", auto_offset_reset="earliest", value_deserializer=de) as c:
        with pytest.raises(DeserializationError, match="ValueError: bad record"):
            c.poll(timeout=5)
        assert gc.isenabled()
        c.seek(TopicPartition("t", 0), 0)
        with pytest.raises(DeserializationError, match="ValueError: bad record"):
            c.poll(timeout=5)
    assert gc.isenabled()


def test_pauses_nest_across_threads() -> None:
    """One thread's poll ending does not turn collection on under another's."""
    _GcPause.enter()
    assert not gc.isenabled()
    other = threading.Thread(target=lambda: (_GcPause.enter(), _GcPause.leave()))
    other.start()
    other.join()
    assert not gc.isenabled()  # the other thread left; ours still holds the pause
    _GcPause.leave()
    assert gc.isenabled()


def test_threads_polling_at_once_end_with_collection_on(log: embedlog.Log) -> None:
    """Four consumers on four threads (as a group's members would be) read every record
    once, and no pause is left behind whatever order their polls ended in."""
    _fill(log, "t", 8000, partitions=4)
    counts = [0] * 4
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with log.consumer(auto_offset_reset="earliest", max_poll_records=300) as c:
                c.assign([TopicPartition("t", i)])
                end = c.end_offsets([TopicPartition("t", i)])[TopicPartition("t", i)]
                while counts[i] < end:
                    counts[i] += len(c.poll(timeout=5))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert not errors
    assert sum(counts) == 8000
    assert gc.isenabled()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_during_a_pause_collects() -> None:
    _GcPause.enter()
    try:
        pid = os.fork()
        if pid == 0:  # the child: no thread of its own is making messages
            ok = gc.isenabled() and _GcPause.depth == 0
            if ok:  # and a pause of its own still works
                _GcPause.enter()
                ok = not gc.isenabled()
                _GcPause.leave()
                ok = ok and gc.isenabled()
            sys.stdout.flush()
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        _GcPause.leave()
    assert gc.isenabled()
