"""Several processes on one log directory, with real subprocesses (and a real fork).

The helper scripts live in ``tests/procs``; ``procs/harness.py`` runs them and checks
what a topic holds (dense offsets, every record once, per-producer order).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import TopicPartition
from embedlog.errors import StorageError
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

WAKE_LIMIT = 20.0  # a woken poll must return long before its 60 s timeout; this is not a benchmark
# (20 s, not less: the time measured includes another process committing, an fsync, on a loaded machine)


# -- (1) concurrent producers --------------------------------------------------------------

def test_four_producer_processes_append_concurrently(tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    count = 1500
    with embedlog.open(path) as log:
        log.create_topic("orders", partitions=3)
    producers = [children.start("producer.py", path, "orders", "--id", f"p{i}", "--count", count,
                                "--flush-every", 20 + 7 * i, "--wait-go", stdin=True) for i in range(4)]
    for p in producers:
        p.wait_for(lambda line: "ready" in line)
    for p in producers:  # all open before any writes: the appends really are concurrent
        p.send("go")
    lines = [line for p in producers for line in p.finish()]
    acked = harness.acked_counts(lines)
    assert acked == {f"p{i}": count for i in range(4)}

    with embedlog.open(path) as log:
        held = harness.check_log(log, "orders", acked)  # dense offsets, no duplicates, order kept
        assert {pid: len(recs) for pid, recs in held.items()} == acked  # so: every record exactly once
        desc = log.describe_topic("orders")
        assert sum(p.end_offset for p in desc.partitions) == 4 * count
        assert all(p.start_offset == 0 and p.end_offset > 0 for p in desc.partitions)


# -- (2) consumers in other processes ------------------------------------------------------

@contextlib.contextmanager
def events_consumer(children: Any, path: Path, partitions: int, *args: object
                    ) -> Iterator[tuple[embedlog.Log, harness.Child]]:
    """The log at ``path`` (open until exit) with a topic ``events`` of ``partitions``, and
    ``consumer.py`` reading it in another process, once that is ready."""
    with embedlog.open(path) as log:
        log.create_topic("events", partitions=partitions)
        consumer = children.start("consumer.py", path, "events", *args, "--timeout", 60)
        consumer.wait_for(lambda line: "ready" in line)
        yield log, consumer


def test_consumer_in_another_process_reads_what_this_process_produces(tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    n = 300
    with events_consumer(children, path, 3, "--expect", n) as (log, consumer):
        with log.producer() as producer:
            for i in range(n):
                producer.send("events", b"value-%d" % i, key=b"key-%d" % (i % 7))
                if i % 40 == 39:
                    producer.flush()
            producer.flush()
        lines = consumer.finish()
        assert lines[-1] == {"done": n}
        got = sorted((r["p"], r["o"], r["k"], r["v"]) for r in lines if "o" in r)
        parts = harness.read_all(log, "events")
        want = sorted((p, m.offset, m.key.decode(), m.value.decode()) for p, msgs in parts.items() for m in msgs)
        assert got == want
        assert len(got) == n


def test_poll_blocked_in_another_process_wakes_when_this_process_produces(tmp_path: Path,
                                                                           children: Any) -> None:
    path = tmp_path / "log"
    rounds = 3
    with events_consumer(children, path, 2, "--wake-rounds", rounds) as (log, consumer):
        with log.producer() as producer:
            for i in range(rounds):
                consumer.wait_for(lambda line, i=i: line.get("polling") == i)
                harness.wait_blocked(consumer.pid)  # asleep in poll(timeout=60), not checking for data
                producer.send("events", b"wake-%d" % i, key=b"k")
                producer.flush()
                woke = consumer.wait_for(lambda line, i=i: line.get("woke") == i, timeout=120)
                assert [r["v"] for r in woke["records"]] == [f"wake-{i}"]
                assert woke["elapsed"] < WAKE_LIMIT, f"poll slept {woke['elapsed']:.1f} s after the data came"
        consumer.finish()


# -- (3) topics across processes -----------------------------------------------------------

def test_topic_changes_in_one_process_are_visible_to_another_that_has_the_log_open(
        tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        shell = children.start("logshell.py", path, stdin=True)
        shell.wait_for(lambda line: "ready" in line)
        assert shell.request("topics") == []

        log.create_topic("made-here", partitions=2)
        assert shell.request("topics") == ["made-here"]
        assert shell.request("describe", "made-here") == [[0, 0, 0], [1, 0, 0]]

        shell.request("create", "made-there", 3)
        assert log.topics() == ["made-here", "made-there"]
        assert len(log.describe_topic("made-there").partitions) == 3

        # each side writes to the topic the other created, and reads what the other wrote
        assert shell.request("produce", "made-here", ["a", "b", "c"]) == 3
        assert sorted(m.value for msgs in harness.read_all(log, "made-here").values() for m in msgs) == \
            [b"a", b"b", b"c"]
        with log.producer() as producer:
            producer.send("made-there", b"x", partition=2)
            producer.flush()
        assert shell.request("read", "made-there") == [[2, 0, "x"]]

        log.create_partitions("made-here", 4)
        assert len(shell.request("describe", "made-here")) == 4

        log.delete_topic("made-here")
        assert shell.request("topics") == ["made-there"]
        reply = shell.call("describe", "made-here")
        assert reply.get("error") == "UnknownTopicError", reply

        log.create_topic("made-here", partitions=1)  # a new topic under an old name: no old records
        assert shell.request("describe", "made-here") == [[0, 0, 0]]
        assert shell.request("read", "made-here") == []

        shell.request("delete", "made-there")
        assert log.topics() == ["made-here"]
        shell.send(["quit"])
        shell.finish()


# -- (4) fork ------------------------------------------------------------------------------

def _in_child(fn: Callable[[], object], report_fd: int) -> None:
    """Run ``fn`` in a forked child: write its result (or traceback) as JSON, then _exit."""
    code = 1
    try:
        try:
            result: dict[str, Any] = {"ok": fn()}
            code = 0
        except BaseException:  # reported to the parent
            result = {"error": traceback.format_exc()}
        with os.fdopen(report_fd, "w") as f:
            json.dump(result, f)
    finally:
        os._exit(code)


def _fork(fn: Callable[[], object]) -> tuple[int, int]:
    """Fork; the child runs ``fn``.  Returns (pid, fd to read the child's report from)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        _in_child(fn, w)
    os.close(w)
    return pid, r


def _join_child(pid: int, report_fd: int, timeout: float = 60.0) -> Any:
    """Wait for a forked child (SIGKILL it after ``timeout``) and return its report."""
    deadline = time.monotonic() + timeout
    status = None
    try:
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"forked child did not finish within {timeout} s")
    finally:
        with os.fdopen(report_fd) as f:
            text = f.read()
    report = json.loads(text) if text else {"error": f"no report (wait status {status})"}
    assert "ok" in report, f"forked child failed:\n{report['error']}"
    assert status == 0, f"forked child exited with wait status {status}"
    return report["ok"]


def _values(log: embedlog.Log, topic: str) -> list[bytes]:
    return [m.value for p, msgs in sorted(harness.read_all(log, topic).items()) for m in msgs]


FORK_WITH_THREADS = "ignore:This process .* is multi-threaded:DeprecationWarning"  # Python >= 3.12


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_forked_child_can_use_the_log_and_the_parent_sees_its_writes(tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    with embedlog.open(path) as log:  # default options: a maintenance thread runs at fork time
        log.create_topic("t", partitions=1)
        producer = log.producer()
        producer.send("t", b"parent-before-fork")
        producer.flush()
        consumer = log.consumer(["t"], auto_offset_reset="earliest")
        assert [m.value for m in consumer.poll(timeout=0.5)] == [b"parent-before-fork"]
        assert consumer.poll(timeout=0.2) == []  # the parent now waits on this log's wake-ups

        def child() -> object:
            with log.producer() as p:  # a new producer of the inherited log
                for i in range(20):
                    p.send("t", b"child-%d" % i)
                p.flush()
            producer.send("t", b"child-via-inherited-producer")  # the parent's producer object
            producer.flush()
            log.create_topic("made-by-child", partitions=2)
            with log.consumer(["t"], auto_offset_reset="earliest") as c:
                seen = [m.value.decode() for m in c.poll(timeout=1.0, max_records=100)]
            log.close()  # must not disturb the parent's environment or its wake-up registration
            return seen

        pid, fd = _fork(child)
        seen = _join_child(pid, fd)
        child_values = [f"child-{i}" for i in range(20)] + ["child-via-inherited-producer"]
        assert seen == ["parent-before-fork", *child_values]

        assert _values(log, "t") == [b"parent-before-fork", *(v.encode() for v in child_values)]
        assert "made-by-child" in log.topics()
        assert [m.value for m in consumer.poll(timeout=5.0, max_records=100)] == \
            [v.encode() for v in child_values]

        # the parent still writes, and other processes still wake its blocked poll
        producer.send("t", b"parent-after-fork")
        producer.flush()
        assert [m.value for m in consumer.poll(timeout=5.0)] == [b"parent-after-fork"]
        other = children.start("producer.py", path, "t", "--id", "other", "--count", 1, "--flush-every", 1,
                               "--wait-go", stdin=True)
        other.wait_for(lambda line: "ready" in line)
        me = os.getpid()
        go = threading.Thread(target=lambda: (harness.wait_blocked(me), other.send("go")), daemon=True)
        go.start()
        t0 = time.monotonic()
        got = consumer.poll(timeout=60.0)
        elapsed = time.monotonic() - t0
        go.join()
        other.finish()
        assert [harness.parse_value(m.value)[0] for m in got] == ["other"]
        assert elapsed < WAKE_LIMIT, f"a write by another process woke the parent's poll only after {elapsed:.1f} s"
        producer.close()
        consumer.close()
        assert len(log.describe_topic("made-by-child").partitions) == 2


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_forked_child_can_open_the_directory_its_parent_has_open(tmp_path: Path) -> None:
    """A pre-fork server's worker (or multiprocessing's "fork" start method) opens the log itself."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t", partitions=1)
        with log.producer() as producer:
            producer.send("t", b"parent")
            producer.flush()

        def child() -> object:
            with embedlog.open(path) as mine, mine.producer() as p:
                p.send("t", b"child-own-open")
                p.flush()
                return [m.value.decode() for m in harness.read_all(mine, "t")[0]]

        pid, fd = _fork(child)
        assert _join_child(pid, fd) == ["parent", "child-own-open"]
        assert _values(log, "t") == [b"parent", b"child-own-open"]
        with log.producer() as producer:
            producer.send("t", b"parent-again")
            producer.flush()
        assert _values(log, "t") == [b"parent", b"child-own-open", b"parent-again"]


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_poll_blocked_in_parent_wakes_when_forked_child_produces(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=1)
        consumer = log.consumer(["t"], auto_offset_reset="earliest")
        assert consumer.poll(timeout=0.2) == []  # registers the parent for wake-ups
        parent = os.getpid()
        go_r, go_w = os.pipe()

        def child() -> object:
            os.read(go_r, 1)
            harness.wait_blocked(parent)  # the parent sleeps in poll(timeout=60)
            with log.producer() as p:
                p.send("t", b"from-child")
                p.flush()
            return True

        pid, fd = _fork(child)
        os.close(go_r)
        try:
            os.write(go_w, b"g")
            t0 = time.monotonic()
            got = consumer.poll(timeout=60.0)
            elapsed = time.monotonic() - t0
        finally:
            os.close(go_w)
            assert _join_child(pid, fd) is True
        assert [m.value for m in got] == [b"from-child"]
        assert elapsed < WAKE_LIMIT, f"the parent's poll slept {elapsed:.1f} s after the child wrote"
        consumer.close()


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_a_child_forked_while_a_parent_thread_polls_mostly_uses_the_log(tmp_path: Path) -> None:
    """A parent thread reading at the fork left its transaction, which holds the parent's
    LMDB environment, in the child for good (the thread does not exist there), and py-lmdb
    refuses to open the same files twice in one process: nearly every child failed with
    "already open in this process".  A fork now waits for the transactions under way, and
    a thread it holds back keeps no reference to the environment; README promises
    "seldom", not "never" (a poller may still hold a reference it is about to drop), so
    this counts: nearly every child must read the log, and none may hang."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("a", partitions=1)
        with log.producer() as p:
            for i in range(200):
                p.send("a", b"x%d" % i)
            p.flush()
        stop = threading.Event()

        def reader() -> None:
            with log.consumer(["a"], auto_offset_reset="earliest") as c:
                while not stop.is_set():
                    c.poll(0.01)
                    c.seek_to_beginning()

        th = threading.Thread(target=reader)
        th.start()
        read = 0
        failures: list[str] = []
        try:
            for _ in range(10):
                def child() -> object:
                    try:
                        with log.consumer(["a"], auto_offset_reset="earliest") as c:
                            return len(c.poll(timeout=5.0, max_records=500))
                    except StorageError as exc:
                        return str(exc)

                pid, fd = _fork(child)
                got = _join_child(pid, fd)  # (fails the test on a hang or any other error)
                if got == 200:
                    read += 1
                else:
                    failures.append(got)
        finally:
            stop.set()
            th.join()
        assert read >= 7, failures
        assert all("already open in this process" in f for f in failures), failures


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_a_child_forked_while_parent_threads_flush_writes_and_closes(tmp_path: Path) -> None:
    """Parent threads flush in a loop at the fork: the child's own producer flushes and
    its ``close()`` returns (it waited for ever for the commit, or the write, a parent
    thread had under way), and no record is stored twice (the child does not write its
    copies of records buffered in the parent's producers)."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("o", partitions=3)
        stop = threading.Event()
        sent: dict[str, int] = {}

        def flusher(name: str) -> None:
            with log.producer(linger_ms=60_000) as p:
                n = 0
                while not stop.is_set():
                    p.send("o", b"%s-%d" % (name.encode(), n))
                    n += 1
                    if n % 5 == 0:
                        p.flush()
                sent[name] = n

        threads = [threading.Thread(target=flusher, args=(f"t{i}",)) for i in range(3)]
        for th in threads:
            th.start()
        try:
            time.sleep(0.3)
            for k in range(5):
                def child(k: int = k) -> object:
                    p = log.producer()
                    for i in range(20):
                        p.send("o", b"c%d-%d" % (k, i))
                        p.flush()
                    log.close()
                    return "ok"

                pid, fd = _fork(child)
                assert _join_child(pid, fd, timeout=30) == "ok"
        finally:
            stop.set()
            for th in threads:
                th.join()
        values = [m.value for msgs in harness.read_all(log, "o").values() for m in msgs]
    assert len(values) == len(set(values))
    assert sum(1 for v in values if v.startswith(b"c")) == 100
    for name, n in sent.items():
        assert sum(1 for v in values if v.startswith(name.encode() + b"-")) == n


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_a_child_forked_while_a_linger_write_is_pending_lingers_on_its_own(tmp_path: Path) -> None:
    """The parent's producer has a record waiting for ``linger_ms`` at the fork: the
    child's own send through that producer is written after ``linger_ms`` with no flush
    (the child had no linger thread and was not idle: never written), and the parent's
    record is written once, by the parent."""
    path = tmp_path / "log"
    with embedlog.open(path, durability="none") as log:
        log.create_topic("t")
        p = log.producer(linger_ms=100)
        p.send("t", b"parent")

        def child() -> object:
            p.send("t", b"child")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if b"child" in [m.value for msgs in harness.read_all(log, "t").values() for m in msgs]:
                    return "written"
                time.sleep(0.05)
            return "never written"

        pid, fd = _fork(child)
        assert _join_child(pid, fd, timeout=30) == "written"
        p.close()
        values = sorted(m.value for msgs in harness.read_all(log, "t").values() for m in msgs)
    assert values == [b"child", b"parent"]


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_a_producer_of_the_parent_dropped_unclosed_in_the_child_ends_its_linger_thread(tmp_path: Path) -> None:
    """A producer made before the fork, used in the child and dropped there without
    ``close()``: it is collected and its linger thread in the child ends (the finalizer
    released the parent's latch, not the child's new one, and the thread waited for
    ever).  The parent's producer is idle at the fork: an object a parent thread's frame
    holds at the fork is never freed in the child (CPython drops those frames unfreed)."""
    path = tmp_path / "log"
    with embedlog.open(path, durability="none") as log:
        log.create_topic("t")
        held = [log.producer(linger_ms=20)]  # (the child's copy is the child's to drop)
        held[0].send("t", b"parent")
        held[0].flush()
        time.sleep(0.3)  # (its linger thread went back to waiting, holding nothing)

        def child() -> object:
            held[0].send("t", b"child")
            deadline = time.monotonic() + 10
            while b"child" not in [m.value for msgs in harness.read_all(log, "t").values() for m in msgs]:
                if time.monotonic() > deadline:
                    return "never written"
                time.sleep(0.05)
            held.clear()
            while any(t.name == "embedlog-linger" for t in threading.enumerate()):
                if time.monotonic() > deadline:
                    return "written; its linger thread outlived the producer"
                gc.collect()
                time.sleep(0.05)
            return "written"

        pid, fd = _fork(child)
        assert _join_child(pid, fd, timeout=30) == "written"
        held.pop().close()


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_a_child_forked_inside_a_read_transaction_uses_the_log(tmp_path: Path) -> None:
    """The forking thread itself in a read transaction: the child ends it on its new gate
    (which must not count below zero, or the child's next map resize or close would wait
    on it for good), then reads and writes the log."""
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("a", partitions=1)
        with log.producer() as p:
            p.send("a", b"before")
            p.flush()
        r, w = os.pipe()
        with log._store.env.read():
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(r)
                gate = log._store.env._gate
                with log.producer() as p:
                    p.send("a", b"child")
                    p.flush()
                with log.consumer(["a"], auto_offset_reset="earliest") as c:
                    got = [m.value for m in c.poll(timeout=5.0)]
                with gate.exclusive(5.0):  # (nothing under way: at once)
                    pass
                os.write(w, repr((got, gate._active)).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(r) as f:
            report = f.read()
        assert status == 0, report
        assert report == repr(([b"before", b"child"], 0))
        assert _values(log, "a") == [b"before", b"child"]


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_a_child_forked_while_the_parent_closes_the_log_opens_the_directory_again(tmp_path: Path) -> None:
    """The parent's close() had marked its environment closed and waited for the gate
    (held here by a stand-in for a map resize): the child inherited the environment still
    referenced, and its embedlog.open() of the directory failed with "already open in
    this process".  The child now drops every inherited environment at the fork."""
    path = tmp_path / "log"
    log = embedlog.open(path)
    log.create_topic("a", partitions=1)
    with log.producer() as p:
        p.send("a", b"x")
        p.flush()
    env = log._store.env
    held, release = threading.Event(), threading.Event()

    def resize_stand_in() -> None:
        with env._gate.exclusive():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=resize_stand_in)
    holder.start()
    assert held.wait(10)
    closer = threading.Thread(target=log.close)
    closer.start()
    deadline = time.monotonic() + 10
    while not env.closed and time.monotonic() < deadline:  # (close() is under way: it waits for the gate)
        time.sleep(0.01)
    try:
        def child() -> object:
            with embedlog.open(path) as again, again.consumer(["a"], auto_offset_reset="earliest") as c:
                return [m.value.decode() for m in c.poll(timeout=5.0)]

        pid, fd = _fork(child)  # (the fork waits ~1 s for the gate, then goes on)
        assert _join_child(pid, fd) == ["x"]
        assert holder.is_alive()  # (the fork did not wait for the gate's holder: it may hold it for long)
    finally:
        release.set()
        holder.join()
        closer.join()


def test_consumer_position_survives_other_process_writes(tmp_path: Path, children: Any) -> None:
    """A consumer here keeps reading, in order, while two other processes keep appending."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t", partitions=1)
        producers = [children.start("producer.py", path, "t", "--id", f"w{i}", "--count", 400,
                                    "--flush-every", 10) for i in range(2)]
        tp = TopicPartition("t", 0)
        got: list[embedlog.Message] = []
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            deadline = time.monotonic() + 60
            while len(got) < 800 and time.monotonic() < deadline:
                got.extend(c.poll(timeout=1.0))
            assert c.position(tp) == 800
        for p in producers:
            p.finish()
        assert [m.offset for m in got] == list(range(800))
        for who in ("w0", "w1"):
            assert [s for w, s in map(harness.parse_value, (m.value for m in got)) if w == who] == list(range(400))


@pytest.mark.filterwarnings(FORK_WITH_THREADS)
def test_a_log_opened_by_a_relative_path_stays_put_after_chdir(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path is made absolute at open: a forked child (which reopens the store)
    and the wake-up sockets must not follow a later ``os.chdir`` to another directory."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    with embedlog.open("d", auto_create_topics=True) as log:
        log.create_topic("t", partitions=1)
        monkeypatch.chdir(tmp_path / "b")  # as a daemon's chdir("/") would
        assert log.path == str(tmp_path / "a" / "d")

        def child() -> object:
            with log.producer() as p:
                p.send("t", b"from-child")
                p.flush()
            return log.topics()

        pid, fd = _fork(child)
        assert _join_child(pid, fd) == ["t"]
        assert _values(log, "t") == [b"from-child"]
        assert not (tmp_path / "b" / "d").exists()


def test_many_processes_open_and_grow_a_small_map_at_once(tmp_path: Path) -> None:
    """Processes opening a fresh log while others grow its map (MDB_MAP_RESIZED at open,
    and again at a begin after one adoption) all open it and write: nothing fails."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    child = (
        "import os, sys, embedlog\n"
        "log = embedlog.open(sys.argv[1], map_size=1 << 20)\n"
        "try:\n"
        "    log.create_topic('t', partitions=3)\n"
        "except embedlog.errors.TopicExistsError:\n"
        "    pass\n"
        "with log.producer() as p:\n"
        "    for i in range(300):\n"
        "        p.send('t', os.urandom(2000), key=b'%s-%d' % (sys.argv[2].encode(), i))\n"
        "log.create_topic('own' + sys.argv[2], partitions=2)\n"
        "log.close()\n"
        "print('ok')\n")
    path = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": str(Path(embedlog.__file__).resolve().parent.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", child, str(path), str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env) for i in range(12)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["ok"] * 12, outs
    with embedlog.open(str(path)) as log:
        assert sum(p.end_offset for p in log.describe_topic("t").partitions) == 12 * 300
        assert len(log.topics()) == 13
