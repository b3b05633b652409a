"""asyncio on the native API (``Consumer.poll_async``, ``async for msg in consumer``,
``Producer.flush_async``), and iterators whose position follows what they yielded.

Real LMDB directories in ``tmp_path``; the records come from producers in other
threads, as from another part of an application.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

import pytest

import embedlog
from embedlog import TopicPartition
from embedlog import consumer as consumer_module
from embedlog.errors import ClosedError, ConfigError
from loopticks import LoopTicks  # tests/loopticks.py (tests/ is on sys.path)

TP = TopicPartition("t", 0)


def _fill(log: embedlog.Log, n: int, partitions: int = 1) -> None:
    """Topic ``t`` with values ``b"0"``.. ``b"<n-1>"``, record ``i`` in partition ``i % partitions``."""
    log.create_topic("t", partitions)
    with log.producer() as p:
        for i in range(n):
            p.send("t", b"%d" % i, partition=i % partitions)


def _produce_later(log: embedlog.Log, values: list[bytes], delay: float) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        with log.producer() as p:
            for v in values:
                p.send("t", v, partition=0)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_poll_async_wakes_for_records_without_blocking_the_loop(log: embedlog.Log) -> None:
    log.create_topic("t", 1)
    consumer = log.consumer(["t"], auto_offset_reset="earliest")

    async def main() -> tuple[list[bytes | None], int]:
        ticks = LoopTicks()
        writer = _produce_later(log, [b"a", b"b"], 0.3)
        t0 = time.monotonic()
        got = await consumer.poll_async(timeout=10.0)
        waited = time.monotonic() - t0
        count = ticks.stop()
        writer.join()
        assert waited < 5.0, "poll_async waited for its timeout instead of the records"
        return [m.value for m in got], count

    values, ticks = asyncio.run(main())
    assert values[0] == b"a"
    assert ticks >= 10, f"the event loop was blocked while poll_async waited ({ticks} ticks in ~0.3 s)"
    consumer.close()


def test_poll_async_times_out_empty_and_refuses_bad_timeouts(log: embedlog.Log) -> None:
    log.create_topic("t", 1)
    consumer = log.consumer(["t"], auto_offset_reset="earliest")

    async def main() -> list[embedlog.Message]:
        return await consumer.poll_async(timeout=0.2)

    t0 = time.monotonic()
    assert asyncio.run(main()) == []
    assert 0.15 <= time.monotonic() - t0 < 3.0
    with pytest.raises(ConfigError, match="number of seconds"):
        asyncio.run(consumer.poll_async(timeout="1"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="nan"):
        asyncio.run(consumer.poll_async(timeout=float("nan")))
    consumer.close()
    with pytest.raises(ClosedError):
        asyncio.run(consumer.poll_async())


def test_a_cancelled_poll_async_loses_no_record(log: embedlog.Log) -> None:
    log.create_topic("t", 1)
    consumer = log.consumer(["t"], auto_offset_reset="earliest")

    async def main() -> list[bytes | None]:
        task = asyncio.create_task(consumer.poll_async(timeout=30.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with log.producer() as p:
            for i in range(5):
                p.send("t", b"%d" % i)
        out: list[bytes | None] = []
        while len(out) < 5:
            out += [m.value for m in await consumer.poll_async(timeout=5.0)]
        return out

    assert asyncio.run(main()) == [b"0", b"1", b"2", b"3", b"4"]
    consumer.close()


def test_async_for_yields_in_order_and_break_keeps_the_rest_for_the_next_read(log: embedlog.Log) -> None:
    _fill(log, 10)
    consumer = log.consumer(group="g", auto_offset_reset="earliest")
    consumer.subscribe(["t"])

    async def main() -> list[bytes | None]:
        seen: list[bytes | None] = []
        async for msg in consumer:
            seen.append(msg.value)
            if len(seen) == 4:
                break
        return seen

    assert asyncio.run(main()) == [b"0", b"1", b"2", b"3"]
    assert consumer.position(TP) == 4  # not 10: the batch's other six were not seen
    consumer.commit()
    assert log.committed_offsets("g")[TP].offset == 4
    rest = consumer.poll(timeout=1.0)
    assert [m.value for m in rest] == [b"%d" % i for i in range(4, 10)]
    consumer.close()


def test_for_loop_break_keeps_the_rest_for_the_next_read(log: embedlog.Log) -> None:
    _fill(log, 6, partitions=2)
    consumer = log.consumer(["t"], auto_offset_reset="earliest")
    seen = []
    for msg in consumer:
        seen.append((msg.partition, msg.offset))
        if len(seen) == 2:
            break
    rest = []
    while got := consumer.poll(timeout=0.5):
        rest += [(m.partition, m.offset) for m in got]
    assert sorted(seen + rest) == [(p, o) for p in (0, 1) for o in range(3)], "a record was lost or read twice"
    consumer.close()


def test_commit_inside_the_loop_commits_what_was_yielded(log: embedlog.Log) -> None:
    _fill(log, 10)
    consumer = log.consumer(group="g", auto_offset_reset="earliest", max_poll_records=7)
    consumer.subscribe(["t"])
    for msg in consumer:
        consumer.commit()  # (a handler that commits each record it handled)
        assert log.committed_offsets("g")[TP].offset == msg.offset + 1
        assert consumer.position(TP) == msg.offset + 1
        if msg.offset == 2:
            break
    consumer.close()  # (a crash here: the next member resumes after the three handled)
    again = log.consumer(group="g", auto_offset_reset="earliest")
    again.subscribe(["t"])
    rest: list[int] = []
    while len(rest) < 7:
        rest += [m.offset for m in again.poll(timeout=5.0)]
    assert rest == list(range(3, 10))
    again.close()


def test_async_for_break_with_a_smaller_poll_keeps_the_rest(log: embedlog.Log) -> None:
    _fill(log, 10)
    consumer = log.consumer(["t"], auto_offset_reset="earliest", max_poll_records=7)

    async def take(n: int) -> list[int]:
        seen = []
        async for msg in consumer:  # (asyncio closes an abandoned async generator late, or never)
            seen.append(msg.offset)
            if len(seen) == n:
                break
        return seen

    async def main() -> list[int]:
        first = await take(3)
        assert consumer.position(TP) == 3
        return first + await take(7)

    assert asyncio.run(main()) == list(range(10))
    consumer.close()


def test_poll_pause_and_seek_inside_the_loop_lose_and_repeat_nothing(log: embedlog.Log) -> None:
    _fill(log, 40, partitions=2)
    consumer = log.consumer(["t"], auto_offset_reset="earliest", max_poll_records=10)
    tp1 = TopicPartition("t", 1)
    seen: list[tuple[int, int]] = []
    for msg in consumer:
        seen.append((msg.partition, msg.offset))
        if len(seen) == 2:
            seen += [(m.partition, m.offset) for m in consumer.poll(max_records=3)]  # (the rest of the batch first)
            consumer.pause(tp1)
        if len(seen) == 12:
            consumer.resume(tp1)
        if len(seen) >= 40:
            break
    assert sorted(seen) == [(p, o) for p in (0, 1) for o in range(20)], "a record was lost or read twice"
    consumer.seek(TP, 5)
    assert next(iter(consumer)).offset == 5
    consumer.close()


def test_a_seek_during_the_loop_is_kept_when_it_stops(log: embedlog.Log) -> None:
    _fill(log, 5)
    consumer = log.consumer(["t"], auto_offset_reset="earliest")
    for msg in consumer:
        if msg.offset == 1:
            consumer.seek(TP, 0)  # the application rewinds on purpose: its seek wins
            break
    assert consumer.position(TP) == 0
    consumer.close()


def test_flush_async_writes_without_blocking_the_loop(log: embedlog.Log) -> None:
    log.create_topic("t", 1)
    producer = log.producer(linger_ms=60_000)

    async def main() -> None:
        for i in range(1000):
            producer.send("t", b"%d" % i)
        await producer.flush_async()

    asyncio.run(main())
    assert log.describe_topic("t").partitions[0].end_offset == 1000
    producer.close()
    with pytest.raises(ClosedError):
        asyncio.run(producer.flush_async())


def test_close_from_another_thread_between_the_loops_look_and_its_pop_ends_the_loop(log: embedlog.Log) -> None:
    """``close()`` lands right after the iterator saw records left (a tracer stops the
    iterating thread at its ``popleft``): the loop ends, it does not raise."""
    _fill(log, 10)
    consumer = log.consumer(["t"], auto_offset_reset="earliest")
    lines = open(consumer_module.__file__).read().splitlines()  # noqa: SIM115
    pop_line = next(i for i, text in enumerate(lines, 1) if text.strip() == "yield popleft()")
    go, done = threading.Event(), threading.Event()
    armed = [False]

    def closer() -> None:
        go.wait(10)
        consumer.close()
        done.set()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_name != "_iterate" or frame.f_code.co_filename != consumer_module.__file__:
            return None

        def local(f: Any, ev: str, a: Any) -> Any:
            if ev == "line" and f.f_lineno == pop_line and armed[0]:
                armed[0] = False
                go.set()
                done.wait(10)
            return local

        return local

    thread = threading.Thread(target=closer)
    thread.start()
    seen = 0
    sys.settrace(tracer)
    try:
        for _ in consumer:
            seen += 1
            if seen == 3:
                armed[0] = True
    finally:
        sys.settrace(None)
        go.set()
        thread.join()
    assert seen == 3
    assert consumer.closed


def test_a_cancelled_flush_async_hands_its_error_to_the_next_flush(log: embedlog.Log) -> None:
    log.create_topic("t", 1)
    producer = log.producer(linger_ms=60_000)

    def failing(err: Any, md: Any) -> None:
        raise RuntimeError("callback failed")

    async def main() -> None:
        for i in range(20_000):
            producer.send("t", b"%d" % i)
        producer.send("t", b"x", on_delivery=failing)
        task = asyncio.create_task(producer.flush_async())
        await asyncio.sleep(0)  # (started: its flush runs in a worker thread)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(1.0)

    asyncio.run(main())
    assert log.describe_topic("t").partitions[0].end_offset == 20_001  # written all the same
    with pytest.raises(RuntimeError, match="callback failed"):
        producer.flush()
    producer.flush()  # (raised once)
    producer.close()


def test_close_commits_what_a_manually_assigned_group_consumer_consumed(log: embedlog.Log) -> None:
    """Kafka's close() auto-commits the consumed positions, with assign() as with subscribe()."""
    _fill(log, 10)
    consumer = log.consumer(group="g", auto_offset_reset="earliest", enable_auto_commit=True,
                            auto_commit_interval_ms=60_000)
    consumer.assign([TP])
    for msg in consumer:
        if msg.offset == 3:
            break
    consumer.close()
    assert log.committed_offsets("g")[TP].offset == 4


def test_idle_async_consumers_hold_no_worker_thread(log: embedlog.Log) -> None:
    """Thirty consumers waiting in ``poll_async`` hold no thread of the event loop's
    default executor (one each starved it: a ``flush_async`` or the application's own
    ``to_thread`` waited ~0.5 s for a free one); a commit still wakes every one."""
    log.create_topic("in")

    def pool_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("asyncio")]

    async def main() -> tuple[list[str], list[int]]:
        consumers = [log.consumer(["in"], auto_offset_reset="latest") for _ in range(30)]
        waits = [asyncio.create_task(c.poll_async(timeout=5.0)) for c in consumers]
        await asyncio.sleep(0.3)
        busy = pool_threads()
        with log.producer() as q:
            q.send("in", b"wake")
        got = [len(m) for m in await asyncio.wait_for(asyncio.gather(*waits), 5)]
        for c in consumers:
            c.close()
        return busy, got

    busy, got = asyncio.run(main())
    assert busy == []
    assert got == [1] * 30


def test_async_for_goes_on_after_a_timed_out_anext(log: embedlog.Log) -> None:
    """``asyncio.wait_for(anext(it), t)`` timing out (a cancellation through ``__anext__``)
    leaves the iterator going on, as aiokafka's: it used to end it for good, so the loop
    stopped with records there."""
    _fill(log, 0)

    async def main() -> list[bytes]:
        c = log.consumer(["t"], auto_offset_reset="earliest")
        it = aiter(c)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(anext(it), 0.2)
        _produce_later(log, [b"a", b"b"], 0.0).join()
        got = [(await asyncio.wait_for(anext(it), 5)).value for _ in range(2)]
        c.close()
        with pytest.raises(StopAsyncIteration):
            await anext(it)
        return got

    assert asyncio.run(main()) == [b"a", b"b"]


def test_an_idle_poll_async_does_not_poll_in_a_loop(log: embedlog.Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting holds no thread and a commit wakes it: an idle ``poll_async`` looks at the
    log about once a second (every 0.1 s before: a thousand idle consumers kept a core
    busy), and still wakes at once for a record."""
    _fill(log, 0)
    c = log.consumer(["t"], auto_offset_reset="earliest")
    c.poll(0.1)
    calls = []
    real = c.poll

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(c, "poll", counting)

    async def main() -> list[Any]:
        return await c.poll_async(1.5)

    t0 = time.monotonic()
    assert asyncio.run(main()) == []
    assert time.monotonic() - t0 >= 1.4
    assert len(calls) <= 4, len(calls)
    _produce_later(log, [b"x"], 0.3)

    async def woken() -> tuple[list[Any], float]:
        start = time.monotonic()
        got = await c.poll_async(10)
        return got, time.monotonic() - start

    got, waited = asyncio.run(woken())
    assert [m.value for m in got] == [b"x"]
    assert waited < 3
    c.close()
