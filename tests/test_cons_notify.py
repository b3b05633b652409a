"""The in-process side of ``Notifier``: one latch per blocked thread, released by the
next commit (no ``threading.Condition``)."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import embedlog
from embedlog.storage import notify as notify_mod
from embedlog.storage.notify import Notifier


def _blocked(n: Notifier, count: int, deadline_s: float = 10.0) -> None:
    """Wait (with a deadline) until ``count`` threads are blocked in ``n.wait``."""
    deadline = time.monotonic() + deadline_s
    while len(n._latches) < count:
        assert time.monotonic() < deadline, f"{len(n._latches)} of {count} waiters blocked"
        time.sleep(0.001)


def test_wait_returns_at_once_when_the_generation_moved() -> None:
    n = Notifier(None)
    seen = n.generation
    n.notify()
    assert n.wait(seen, 30) == seen + 1
    assert n._latches == []


def test_wait_times_out_and_leaves_no_latch_behind() -> None:
    n = Notifier(None)
    assert n.wait(n.generation, 0.01) == 0
    assert n.wait(n.generation, 0) == 0
    assert n.wait(n.generation, -1) == 0
    assert n._latches == []


def test_one_commit_wakes_every_blocked_thread_once() -> None:
    n = Notifier(None)
    seen = n.generation
    got: list[int] = []

    def waiter() -> None:
        got.append(n.wait(seen, 30))

    threads = [threading.Thread(target=waiter) for _ in range(5)]
    for t in threads:
        t.start()
    _blocked(n, 5)
    n.notify()
    for t in threads:
        t.join(30)
    assert got == [seen + 1] * 5
    assert n._latches == []
    n.notify()  # nobody waits: releases nothing
    assert n.generation == seen + 2


def test_a_timed_out_waiter_is_not_woken_by_a_later_commit() -> None:
    n = Notifier(None)
    seen = n.generation
    assert n.wait(seen, 0.01) == seen
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(n.wait(seen, 30)))
    t.start()
    _blocked(n, 1)
    n.notify()
    t.join(30)
    assert got == [seen + 1]


def test_close_wakes_blocked_threads() -> None:
    n = Notifier(None)
    seen = n.generation
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(n.wait(seen, 30)))
    t.start()
    _blocked(n, 1)
    n.close()
    t.join(30)
    assert not t.is_alive()
    assert n.wait(n.generation, 30) == n.generation  # closed: returns at once


def test_a_blocked_poll_wakes_on_a_commit_from_another_thread(tmp_path: object) -> None:
    with embedlog.open(str(tmp_path), durability="none") as log:
        log.create_topic("t")
        with log.consumer("t", auto_offset_reset="earliest") as c:
            assert c.poll(timeout=0.01) == []  # (registers for wake-ups)
            got: list[list[embedlog.Message]] = []
            t = threading.Thread(target=lambda: got.append(c.poll(timeout=30)))
            t.start()
            _blocked(log._store.notifier, 1)
            with log.producer() as p:
                p.send("t", b"v", key=b"k")
            t.join(30)
            assert [m.value for m in got[0]] == [b"v"]


def test_polls_of_one_partition_return_everything_in_order(tmp_path: object) -> None:
    """One assigned partition (``_collect``'s no-list path): one record at a time, then the rest."""
    with embedlog.open(str(tmp_path), durability="none") as log:
        log.create_topic("t")
        with log.producer() as p:
            for i in range(200):
                p.send("t", b"v%d" % i, key=b"k")
        with log.consumer("t", auto_offset_reset="earliest") as c:
            assert [m.offset for m in c.poll(timeout=5, max_records=1)] == [0]
            assert [m.offset for m in c.poll(timeout=5, max_records=1)] == [1]
            rest = c.poll(timeout=5, max_records=1000)
            assert [m.offset for m in rest] == list(range(2, 200))
            assert [m.value for m in rest[:2]] == [b"v2", b"v3"]
            assert gc.isenabled()


def test_a_commit_that_wakes_a_local_waiter_yields_the_gil_once(monkeypatch: Any) -> None:
    """A writer whose commit releases a waiting thread of its process hands it the GIL
    (``time.sleep(0)``) so the consumer runs now, not when the writer next blocks; a
    commit that wakes nobody, or only a background thread, does not.  Other processes
    are woken before it yields."""
    n = Notifier(None)
    sleeps: list[float | str] = []
    real_sleep = time.sleep
    monkeypatch.setattr(notify_mod.time, "sleep", lambda s: (s == 0 and sleeps.append(s), real_sleep(s))[1])
    monkeypatch.setattr(n, "_wake_others", lambda: sleeps.append("other processes"))
    n.notify()  # nobody waits
    assert sleeps == ["other processes"]
    sleeps.clear()
    seen = n.generation
    t = threading.Thread(target=n.wait, args=(seen, 30), kwargs={"urgent": False})  # the leader's ticker, say
    t.start()
    deadline = time.monotonic() + 10
    while not n._background:
        assert time.monotonic() < deadline
        real_sleep(0.001)
    n.notify()
    t.join(30)
    assert not t.is_alive()
    assert sleeps == ["other processes"]  # woken, without the GIL handed over
    sleeps.clear()
    seen = n.generation
    t = threading.Thread(target=n.wait, args=(seen, 30))
    t.start()
    _blocked(n, 1)
    n.notify()
    t.join(30)
    assert not t.is_alive()
    assert sleeps == ["other processes", 0]  # other processes are woken first


def test_a_log_whose_wake_directory_cannot_be_made_still_polls(tmp_path: Any, caplog: Any) -> None:
    """``wake/`` cannot be created (a read-only log directory; here a file in its way):
    a blocked poll does not fail with a raw OSError; it logs why once and looks for new
    records every few milliseconds instead of being woken, so records from another
    process still arrive."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    path = tmp_path / "log"
    with embedlog.open(str(path)) as log:
        log.create_topic("t")
    wake = path / "wake"
    if wake.is_dir():
        for f in wake.iterdir():
            f.unlink()
        wake.rmdir()
    wake.write_bytes(b"")  # (makedirs fails: not a directory)
    with embedlog.open(str(path)) as log, log.consumer(["t"], auto_offset_reset="earliest") as c:
        assert c.poll(0.05) == []
        assert "cannot register for wake-ups" in caplog.text
        src = str(Path(embedlog.__file__).resolve().parent.parent)
        subprocess.run([sys.executable, "-c", "import sys, embedlog\n"
                        "with embedlog.open(sys.argv[1]) as log, log.producer() as p:\n"
                        "    p.send('t', b'from elsewhere')\n", str(path)],
                       check=True, timeout=60, env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
        got = c.poll(5.0)
        assert [m.value for m in got] == [b"from elsewhere"]


def test_a_process_waiting_when_wake_is_removed_registers_again(tmp_path: Any) -> None:
    """``wake/`` removed (``rm -rf``, a cleanup job) while another process blocks in
    ``poll``: it registers again within about a second and wakes when records come, not
    at its timeout (it waited the whole 10 s)."""
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import textwrap  # noqa: PLC0415

    path = tmp_path / "log"
    log = embedlog.open(path, durability="none")
    try:
        log.create_topic("w")
        code = textwrap.dedent(f"""
            import time, embedlog
            from embedlog import TopicPartition
            log = embedlog.open({str(path)!r}, durability="none")
            c = log.consumer([])
            c.assign([TopicPartition("w", 0)])
            c.poll(timeout=0.3)
            print("ready", flush=True)
            for _ in range(2):
                t0 = time.monotonic()
                got = c.poll(timeout=10.0)
                print(len(got), round(time.monotonic() - t0, 2), flush=True)
        """)
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            with log.producer() as p:
                for _ in range(2):
                    shutil.rmtree(path / "wake")
                    time.sleep(1.5)  # (the child looks every second)
                    p.send("w", b"x")
                    p.flush()
                    n, waited = child.stdout.readline().split()
                    assert n == "1"
                    assert float(waited) < 5.0
            assert child.wait(timeout=30) == 0
        finally:
            child.kill()
    finally:
        log.close()
