"""``Producer.flush()`` with one producer shared by several threads: a flush returns
only after every record sent before it is written — also records another thread's
flush drained and has not committed yet (the flush waits for that write).  A flush does
not wait for writes drained after its own (they hold only later records)."""

from __future__ import annotations

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
