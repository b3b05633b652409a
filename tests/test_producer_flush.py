"""``Producer.flush()`` with one producer shared by several threads: a flush returns
only after every record sent before it is written — also records another thread's
flush drained and has not committed yet (the flush waits for that write).  A flush does
not wait for writes drained after its own (they hold only later records)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog.producer import Producer
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[embedlog.Log]:
    lg = embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None)
    yield lg
    lg.close()


def test_flush_waits_for_records_another_thread_drained(log: embedlog.Log,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    log.create_topic("t", partitions=1)
    p = log.producer()
    committer = log._committer
    release = threading.Event()
    holder = threading.Thread(target=committer.append, args=((), lambda txn: release.wait(harness.TIMEOUT)))
    holder.start()
    harness.wait_until(lambda: committer._leader, "the holder leads a commit")

    other = threading.Thread(target=lambda: (p.send("t", b"r1"), p.flush()))
    other.start()  # drains r1 and queues it behind the holder
    harness.wait_until(lambda: len(committer._queue) == 1, "the other thread's write queued")

    waiting = threading.Event()
    wait_inflight = Producer._wait_inflight

    def spied(self: Producer, before: int) -> None:
        waiting.set()
        wait_inflight(self, before)

    monkeypatch.setattr(Producer, "_wait_inflight", spied)
    seen: dict[str, Any] = {}

    def flusher() -> None:
        seen["tid"] = threading.get_native_id()
        p.flush()  # drains nothing: r1 was sent before, and is in the other thread's write
        seen["end"] = log.describe_topic("t").partitions[0].end_offset

    t = threading.Thread(target=flusher)
    t.start()
    waiting.wait(harness.TIMEOUT)

    def asleep_or_done() -> bool:  # (best effort where /proc cannot tell: None)
        return "end" in seen or harness.blocked_in_wait(os.getpid(), seen["tid"]) is not False

    harness.wait_until(asleep_or_done, "the flush to sleep on the other thread's write")
    release.set()
    for th in (holder, other, t):
        th.join(harness.TIMEOUT)
    assert seen["end"] == 1, "flush() returned before r1, sent before it, was written"
    p.close()


_CANCELLED_FLUSHES = """
import asyncio, os, sys
import embedlog

async def main(path):
    log = embedlog.open(path)
    log.create_topic("t")
    p = log.producer()

    async def worker():
        for _ in range(150):
            p.send("t", b"x")
            task = asyncio.create_task(p.flush_async())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    await asyncio.gather(*(worker() for _ in range(3)))
    await asyncio.wait_for(p.flush_async(), 30)
    p.close()
    print(sum(pd.end_offset for pd in log.describe_topic("t").partitions), flush=True)
    log.close()

asyncio.run(main(sys.argv[1]))
"""


def test_cancelled_flush_asyncs_running_at_once_do_not_deadlock(tmp_path: Path) -> None:
    """Several ``flush_async`` calls cancelled while their flushes ran: those flushes, in
    worker threads, waited for each other's (and for ones still queued behind them), and
    every later flush and ``close`` hung.  Every record is written (in a subprocess: a
    deadlock would leave its threads behind)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    r = subprocess.run([sys.executable, "-c", _CANCELLED_FLUSHES, str(tmp_path / "log")], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["450"]


def _in_thread(fn: Any, seconds: float) -> dict[str, Any]:
    """Run ``fn`` in a daemon thread; fail if it still runs after ``seconds`` (a hang)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # (reported below)
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    assert "error" not in out, out["error"]
    return out


def test_a_plain_flush_in_the_executor_does_not_wait_for_a_cancelled_flight_queued_behind_it(tmp_path: Path) -> None:
    """An asyncio app runs blocking send + ``flush()`` jobs in the loop's executor and
    awaits ``flush_async`` with a timeout; the flight queued behind the jobs is cancelled.
    Each job's flush waited for that flight, which could only start once a job ended:
    every executor thread hung.  A flush takes over a flight that has not started."""
    import asyncio  # noqa: PLC0415
    import concurrent.futures  # noqa: PLC0415
    import time  # noqa: PLC0415

    log = embedlog.open(tmp_path / "log", durability="none")
    log.create_topic("t")
    p = log.producer(linger_ms=10_000)

    def job(i: int) -> int:
        time.sleep(0.2)  # (the flight queues meanwhile)
        for k in range(10):
            p.send("t", f"{i}-{k}".encode())
        p.flush()
        return i

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(2))
        jobs = [loop.run_in_executor(None, job, i) for i in range(2)]
        p.send("t", b"x")
        with contextlib.suppress(asyncio.TimeoutError):  # queued behind the jobs: times out
            await asyncio.wait_for(p.flush_async(), 0.01)
        return list(await asyncio.wait_for(asyncio.gather(*jobs), 5))

    assert _in_thread(lambda: asyncio.run(main()), 10)["result"] == [0, 1]
    p.flush()
    with log.consumer("t", auto_offset_reset="earliest") as c:
        values = [m.value for m in c.poll(timeout=1)]
    assert sorted(values) == sorted([b"x"] + [f"{i}-{k}".encode() for i in range(2) for k in range(10)])
    p.close()
    log.close()


def _queue_a_cancelled_flight(p: Producer) -> tuple[Any, Any, threading.Event]:
    """Send a record, then a ``flush_async`` cancelled while its job waits in a one-worker
    executor behind the application's job (which waits for the returned gate); return
    the (stopped) event loop, the executor and the gate."""
    import asyncio  # noqa: PLC0415
    import concurrent.futures  # noqa: PLC0415

    loop = asyncio.new_event_loop()
    ex = concurrent.futures.ThreadPoolExecutor(1)
    loop.set_default_executor(ex)
    gate = threading.Event()

    async def go() -> None:
        loop.run_in_executor(None, gate.wait, 5)  # the app's job: the flight queues behind it
        p.send("t", b"v")
        task = asyncio.create_task(p.flush_async())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    loop.run_until_complete(go())
    return loop, ex, gate


def test_a_flush_does_not_wait_for_a_cancelled_flight_its_executor_dropped(tmp_path: Path) -> None:
    """A cancelled ``flush_async`` whose job never runs (its executor shut down with
    ``cancel_futures=True``): every later ``flush()`` and ``close()`` blocked for good.
    The flush writes its records itself."""
    log = embedlog.open(tmp_path / "log", durability="none")
    log.create_topic("t")
    p = log.producer(linger_ms=10_000)
    loop, ex, gate = _queue_a_cancelled_flight(p)
    ex.shutdown(wait=False, cancel_futures=True)  # the queued flight's job is dropped
    gate.set()
    loop.close()
    _in_thread(lambda: p.flush(timeout=1), 5)
    with log.consumer("t", auto_offset_reset="earliest") as c:
        assert [m.value for m in c.poll(timeout=1)] == [b"v"]
    _in_thread(p.close, 5)
    log.close()


def test_close_does_not_raise_the_closed_error_of_a_cancelled_flight_that_ran_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancelled ``flush_async`` whose job started once ``close()`` had refused sends,
    before ``close`` took it over: its flush met ``ClosedError``, kept as the flight's
    error, and ``close()`` raised it although it wrote every record."""
    log = embedlog.open(tmp_path / "log", durability="none")
    log.create_topic("t")
    p = log.producer(linger_ms=10_000)
    loop, ex, gate = _queue_a_cancelled_flight(p)
    (flight,) = p._abandoned
    original = Producer._await_abandoned

    def job_runs_first(self: Producer) -> None:  # (the race, made certain)
        gate.set()
        assert flight.done.wait(5)
        original(self)

    monkeypatch.setattr(Producer, "_await_abandoned", job_runs_first)
    p.close()
    ex.shutdown(wait=True)
    loop.close()
    with log.consumer("t", auto_offset_reset="earliest") as c:
        assert [m.value for m in c.poll(timeout=1)] == [b"v"]
    log.close()
