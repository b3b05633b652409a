"""Delivery callbacks that raise: every other record's callback is still called, the
records are written, and the first exception is raised by the next ``flush`` — after
the flush did everything it would have done, ``acks="all"`` waiting included."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import TopicPartition
from embedlog.replication import Follower, Leader


class Boom(Exception):
    pass


@pytest.fixture
def log(tmp_path: Path) -> Iterator[embedlog.Log]:
    with embedlog.open(tmp_path / "log", durability="none") as lg:
        lg.create_topic("t", partitions=3)
        yield lg


def _end_offsets(log: embedlog.Log) -> list[int]:
    return [p.end_offset for p in log.describe_topic("t").partitions]


def test_a_raising_callback_does_not_hide_the_deliveries_after_it(log: embedlog.Log) -> None:
    seen: list[tuple[int, int]] = []

    def cb(err: Any, md: Any) -> None:
        assert err is None
        seen.append((md.partition, md.offset))
        if len(seen) in (2, 4):
            raise Boom(f"callback {len(seen)}")

    with log.producer(linger_ms=600_000) as p:
        for i in range(6):
            p.send("t", b"v%d" % i, partition=i % 3, on_delivery=cb)
        with pytest.raises(Boom, match="callback 2"):  # the first one raised
            p.flush()
        assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
        assert _end_offsets(log) == [2, 2, 2]
        p.flush()  # raised once: nothing left to report
        p.send("t", b"later", partition=0, on_delivery=lambda err, md: seen.append((md.partition, md.offset)))
        p.flush()
    assert seen[-1] == (0, 2)


def test_a_background_write_keeps_the_callbacks_exception_for_the_next_flush(log: embedlog.Log) -> None:
    """A write for linger (here by the linger thread, the producer idle) calls the
    callbacks; what one raised comes out of the next flush, as itself."""
    called: list[int] = []

    def cb(err: Any, md: Any) -> None:
        called.append(md.offset)
        raise Boom("from the linger write")

    with log.producer(linger_ms=1) as p:
        p.send("t", b"a", partition=1, on_delivery=cb)
        p.send("t", b"b", partition=1, on_delivery=cb)
        deadline = time.monotonic() + 10
        while len(called) < 2:
            assert time.monotonic() < deadline, "the linger thread never wrote"
            time.sleep(0.005)
        assert _end_offsets(log) == [0, 2, 0]
        with pytest.raises(Boom, match="from the linger write"):
            p.flush()
        p.flush()
    assert called == [0, 1]


def test_close_raises_a_callbacks_exception_after_writing_everything(log: embedlog.Log) -> None:
    p = log.producer(linger_ms=600_000)
    p.send("t", b"a", partition=2, on_delivery=lambda err, md: (_ for _ in ()).throw(Boom("at close")))
    p.send("t", b"b", partition=2)
    with pytest.raises(Boom, match="at close"):
        p.close()
    assert p.closed
    assert _end_offsets(log) == [0, 0, 2]
    with log.consumer("t", auto_offset_reset="earliest") as c:
        c.assign([TopicPartition("t", 2)])
        assert [m.value for m in c.poll(5, max_records=10)] == [b"a", b"b"]


def test_with_acks_all_the_flush_waits_for_the_follower_before_raising_the_callbacks_exception(
        tmp_path: Path) -> None:
    """The callback's exception comes after the acks="all" wait: when flush raises it,
    the follower already holds the records (the high watermark covers them)."""
    secret = b"s" * 32
    with embedlog.open(tmp_path / "a") as la, embedlog.open(tmp_path / "b") as lb:
        la.create_topic("t", partitions=1)
        with Leader(la, listen="127.0.0.1:0", secret=secret) as leader, \
                Follower(lb, f"{leader.address[0]}:{leader.address[1]}", secret=secret) as follower:
            follower.wait_connected(30)
            deadline = time.monotonic() + 30  # (connected is not in sync yet: acks="all" waits for in-sync ones)
            while not leader.status()["isr"] and time.monotonic() < deadline:
                time.sleep(0.01)
            with la.producer(acks="all", linger_ms=600_000) as p:
                p.send("t", b"x", on_delivery=lambda err, md: (_ for _ in ()).throw(Boom("acked first")))
                with pytest.raises(Boom, match="acked first"):
                    p.flush()
                # at once: had flush raised before its wait, the follower would not hold it yet
                assert [p_.end_offset for p_ in lb.describe_topic("t").partitions] == [1]
                assert leader.status()["partitions"]["t[0]"]["high_watermark"] == 1


def test_what_a_cancelled_flush_async_meets_is_raised_by_the_very_next_flush(log: embedlog.Log) -> None:
    """A ``flush_async`` cancelled while its flush runs (here: in a slow delivery
    callback that raises): the next flush raises the callback's exception, not the one
    after it (the error reached the producer only later, from the event loop)."""
    p = log.producer(linger_ms=600_000)
    started = threading.Event()

    def slow_and_bad(err: Any, md: Any) -> None:
        started.set()
        time.sleep(0.1)
        raise RuntimeError("callback")

    p.send("t", b"x", on_delivery=slow_and_bad)

    async def main() -> tuple[BaseException | None, BaseException | None]:
        task = asyncio.create_task(p.flush_async())
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        outcomes: list[BaseException | None] = []
        for _ in range(2):
            try:
                await p.flush_async()
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes[0], outcomes[1]

    unread: list[Any] = []

    async def watched() -> tuple[BaseException | None, BaseException | None]:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: unread.append(ctx))
        out = await main()
        gc.collect()  # (an unread future's exception is reported when it is collected)
        await asyncio.sleep(0.05)
        return out

    first, second = asyncio.run(watched())
    assert isinstance(first, RuntimeError)
    assert str(first) == "callback"
    assert second is None
    assert unread == []  # (no "Future exception was never retrieved" for the abandoned flush)
    p.close()


def test_a_with_blocks_own_error_is_not_replaced_by_a_delivery_callbacks(log: embedlog.Log) -> None:
    class AppError(Exception):
        pass

    delivered: list[Any] = []

    def bad(err: Any, md: Any) -> None:
        delivered.append(md)
        raise RuntimeError("callback")

    def block() -> None:
        with log.producer(linger_ms=600_000) as p:
            p.send("t", b"x", on_delivery=bad)
            raise AppError

    with pytest.raises(AppError):
        block()
    assert len(delivered) == 1  # (the record was written on the way out all the same)


def test_a_custom_partitioner_may_return_any_integer_type(log: embedlog.Log) -> None:
    """numpy's integers, say (``operator.index``); a bool or a non-integer is refused as such."""

    class Index:
        def __init__(self, i: int) -> None:
            self.i = i

        def __index__(self) -> int:
            return self.i

    with log.producer(partitioner=lambda key, n: Index(2)) as p:
        p.send("t", b"x", key=b"k")
        p.flush()
    assert log.describe_topic("t").partitions[2].end_offset == 1
    for bad in (True, 1.0, "1"):
        with log.producer(partitioner=lambda key, n, bad=bad: bad) as p, \
                pytest.raises(embedlog.errors.UnknownPartitionError, match="not an int"):
            p.send("t", b"x", key=b"k")


def test_a_callback_that_flushes_does_not_wait_for_an_abandoned_flush_waiting_for_it(log: embedlog.Log) -> None:
    """Thread B's write runs a delivery callback that flushes; meanwhile a cancelled
    ``flush_async``'s flush waits for B's write.  The callback's flush must not wait
    for that abandoned flush (each waited for the other, for ever)."""
    p = log.producer(linger_ms=600_000)
    in_callback, cancelled, callback_done = threading.Event(), threading.Event(), threading.Event()

    def cb(err: Any, md: Any) -> None:
        in_callback.set()
        cancelled.wait(10)
        p.flush(timeout=5)
        callback_done.set()

    def thread_b() -> None:
        p.send("t", b"x", on_delivery=cb)
        p.flush()

    b = threading.Thread(target=thread_b, daemon=True)
    b.start()
    assert in_callback.wait(10)

    async def main() -> None:
        task = asyncio.create_task(p.flush_async(timeout=5))
        await asyncio.sleep(0.2)  # (its flush now waits for B's write)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled.set()  # (the callback flushes now, the abandoned flush still waiting)
        assert await asyncio.to_thread(callback_done.wait, 10), "the callback's flush hung"

    asyncio.run(main())
    b.join(10)
    assert not b.is_alive()
    p.close()
