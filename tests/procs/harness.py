"""Shared helpers for the multi-process and crash tests (imported by path, not a test).

``Child`` runs one helper script of this directory with ``sys.executable`` and collects
its stdout as JSON lines on a reader thread, so a test can wait for a line that
matches a condition (with a deadline) instead of sleeping.  ``read_all`` and
``check_log`` read a whole topic back and check the invariants every test relies on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import TopicPartition, _native, sendpath
from embedlog import producer as producer_mod
from embedlog.protocol.frames import FrameDecoder
from embedlog.protocol.messages import decode as decode_message
from embedlog.storage import partition as plog
from embedlog.storage import schema

PROCS = Path(__file__).resolve().parent
TIMEOUT = 60.0  # generous: a loaded 2-core CI machine must never hit it


class Child:
    """A helper script in a subprocess; its stdout parsed as JSON lines."""

    def __init__(self, script: str, *args: object, stdin: bool = False) -> None:
        cmd = [sys.executable, "-u", str(PROCS / script), *map(str, args)]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.pid = self.proc.pid
        self.lines: list[dict[str, Any]] = []
        self.partial: list[str] = []  # a line cut off by a kill (no newline), never parsed
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                if line.endswith("\n"):
                    try:
                        self.lines.append(json.loads(line))
                    except ValueError:
                        self.partial.append(line)
                else:
                    self.partial.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def describe(self) -> str:
        """What to show when an expectation fails."""
        return (f"{' '.join(self.cmd[2:])} (pid {self.pid}, returncode {self.proc.poll()})\n"
                f"last stdout: {self.lines[-5:]}\nstderr:\n{''.join(self.stderr)[-4000:]}")

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT,
                 start: int = 0) -> dict[str, Any]:
        """The first line from index ``start`` on that matches ``pred``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if pred(line):
                        return line
                start = max(start, len(self.lines))
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(remaining)
        what = "exited" if self._eof else f"timed out after {timeout:.0f} s"
        raise AssertionError(f"expected line never came; the child {what}: {self.describe()}")

    def send(self, obj: object) -> None:
        """Write one JSON line to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def call(self, *cmd: object, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Send a ``logshell.py`` command and return its reply line."""
        with self._cond:
            start = len(self.lines)
        self.send(list(cmd))
        return self.wait_for(lambda line: "ok" in line or "error" in line, timeout, start=start)

    def request(self, *cmd: object, timeout: float = TIMEOUT) -> Any:
        """Send a ``logshell.py`` command that must succeed; return its result."""
        reply = self.call(*cmd, timeout=timeout)
        assert "ok" in reply, f"{cmd} failed in the other process: {reply}"
        return reply["ok"]

    def finish(self, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Wait for a clean exit and the end of its output; return all its lines."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"child did not exit within {timeout:.0f} s: {self.describe()}") from None
        self._join()
        assert rc == 0, f"child failed: {self.describe()}"
        return list(self.lines)

    def kill(self) -> None:
        """SIGKILL the child (if still running), reap it and read the rest of its output."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(TIMEOUT)
        self._join()

    def _join(self) -> None:
        for t in self._threads:
            t.join(TIMEOUT)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


class Children:
    """Every child a test starts; ``close`` kills whatever is still running."""

    def __init__(self) -> None:
        self.all: list[Child] = []

    def start(self, script: str, *args: object, stdin: bool = False) -> Child:
        child = Child(script, *args, stdin=stdin)
        self.all.append(child)
        return child

    def close(self) -> None:
        for child in self.all:
            child.kill()


def wait_until(cond: Callable[[], Any], what: str, timeout: float = TIMEOUT, *,
               step: Callable[[], Any] | None = None, interval: float = 0.01) -> Any:
    """Call ``step`` (if any) then ``cond`` until ``cond`` is truthy, sleeping ``interval``
    seconds between tries; return what ``cond`` returned, or fail with ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if step is not None:
            step()
        result = cond()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def blocked_in_wait(pid: int, tid: int | None = None) -> bool | None:
    """Whether a thread sleeps in a futex wait (Python's Condition.wait); None if unknown."""
    try:
        with open(f"/proc/{pid}/task/{tid or pid}/wchan") as f:
            wchan = f.read()
        with open(f"/proc/{pid}/task/{tid or pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    if wchan in ("", "0"):
        return None  # the kernel hides it
    return state == "S" and "futex" in wchan


def wait_blocked(pid: int, timeout: float = 10.0) -> None:
    """Best effort: wait until ``pid``'s main thread sleeps in a condition wait.

    Makes the wake-up tests exercise the wake-up (not the data check before it).  If
    ``/proc`` cannot tell, or it never shows, carry on: the test stays correct, only
    less sharp.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = blocked_in_wait(pid)
        if state is None:
            return
        if state:
            # seen twice in a row: not a passing GIL hand-off
            time.sleep(0.01)
            if blocked_in_wait(pid):
                return
        time.sleep(0.005)


def store_write(log: embedlog.Log, fn: Callable[[Any, Any], Any]) -> Any:
    """``fn(txn, dbs)`` in one write transaction of the log's store (consumers woken)."""
    store = log._store
    return store.write(lambda txn: fn(txn, store.dbs), notify=True)


def store_read(log: embedlog.Log, fn: Callable[[Any, Any], Any]) -> Any:
    """``fn(txn, dbs)`` in one read transaction of the log's store."""
    store = log._store
    return store.read(lambda txn: fn(txn, store.dbs))


def read_all(log: embedlog.Log, topic: str, timeout: float = TIMEOUT) -> dict[int, list[embedlog.Message]]:
    """Every record of ``topic`` per partition, from each partition's start to its end."""
    desc = log.describe_topic(topic)
    ends = {p.partition: p.end_offset for p in desc.partitions}
    out: dict[int, list[embedlog.Message]] = {p: [] for p in ends}
    with log.consumer(auto_offset_reset="earliest", max_poll_records=10_000) as c:
        c.assign([TopicPartition(topic, p) for p in ends])
        c.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while any(c.position(TopicPartition(topic, p)) < end for p, end in ends.items()):
            assert time.monotonic() < deadline, f"could not read {topic} to its end offsets {ends}"
            for m in c.poll(timeout=1.0):
                if m.offset < ends[m.partition]:
                    out[m.partition].append(m)
    return out


def now_ms() -> int:
    """The wall clock in milliseconds, as record timestamps count it."""
    return time.time_ns() // 1_000_000


def drain(consumer: embedlog.Consumer, max_polls: int = 10_000) -> list[embedlog.Message]:
    """Every record available now (all were flushed before, so poll(0) is exact)."""
    out: list[embedlog.Message] = []
    for _ in range(max_polls):
        batch = consumer.poll(timeout=0)
        if not batch:
            return out
        out.extend(batch)
    raise AssertionError("consumer never ran dry")


def consume_all(log: embedlog.Log, topic: str, poll_timeout: float = 0.2) -> list[tuple[Any, ...]]:
    """Every record a new consumer of ``topic`` reads until a poll of ``poll_timeout``
    seconds returns nothing, as sorted (partition, offset, key, value, headers, timestamp)."""
    c = log.consumer([topic], auto_offset_reset="earliest", max_poll_records=100_000)
    out = []
    while batch := c.poll(timeout=poll_timeout):
        out.extend((m.partition, m.offset, m.key, m.value, m.headers, m.timestamp) for m in batch)
    c.close()
    return sorted(out)


def fill_partitions(log: embedlog.Log, topic: str, partitions: int, per_partition: int, start: int = 0) -> int:
    """Write ``per_partition`` records to each partition (values ``p:i``, one flush);
    return the total."""
    with log.producer() as p:
        for part in range(partitions):
            for i in range(start, start + per_partition):
                p.send(topic, f"{part}:{i}".encode(), partition=part)
        p.flush()
    return partitions * per_partition


def send_each_flushed(log: embedlog.Log, topic: str, values: Iterable[bytes], **kw: Any) -> None:
    """Send ``values`` in order, each flushed alone (one batch per record)."""
    with log.producer() as p:
        for v in values:
            p.send(topic, v, **kw)
            p.flush()


def parse_value(value: bytes | None) -> tuple[str, int]:
    """The (producer id, sequence number) a helper producer put in a value."""
    assert value is not None
    pid, seq, _ = value.split(b"|", 2)
    return pid.decode(), int(seq)


def check_log(log: embedlog.Log, topic: str, acked: Mapping[str, int] | None = None
              ) -> dict[str, list[tuple[int, int, int]]]:
    """Check the invariants of a topic written by helper producers; return what it holds.

    Every partition's offsets are dense from 0; every (producer, seq) is present at
    most once; each producer's records form a prefix 0..n-1 of what it sent (a
    transaction is all or nothing, and a flush carries everything sent before it) that
    covers its acknowledged records (``acked``: producer id -> count acknowledged);
    each producer's records keep their send order within a partition; a key always
    maps to one partition.

    Returns producer id -> [(seq, partition, offset)] sorted by seq.
    """
    parts = read_all(log, topic)
    seen: dict[tuple[str, int], tuple[int, int]] = {}
    by_producer: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    key_partition: dict[bytes, int] = {}
    for p, msgs in parts.items():
        offsets = [m.offset for m in msgs]
        assert offsets == list(range(len(msgs))), f"partition {p}: offsets not dense from 0: {_gaps(offsets)}"
        last: dict[str, int] = {}
        for m in msgs:
            pid, seq = parse_value(m.value)
            assert (pid, seq) not in seen, f"duplicate {pid}:{seq} at {p}/{m.offset} and {seen[(pid, seq)]}"
            seen[(pid, seq)] = (p, m.offset)
            assert seq > last.get(pid, -1), f"{pid}: seq {seq} after {last[pid]} in partition {p}"
            last[pid] = seq
            if m.key is not None:
                assert key_partition.setdefault(m.key, p) == p, f"key {m.key!r} in two partitions"
            by_producer[pid].append((seq, p, m.offset))
    for pid, recs in by_producer.items():
        recs.sort()
        seqs = [r[0] for r in recs]
        assert seqs == list(range(len(seqs))), f"{pid}: records are not a prefix of what it sent: {_gaps(seqs)}"
    for pid, count in (acked or {}).items():
        have = len(by_producer.get(pid, []))
        assert have >= count, f"{pid}: {count} records were acknowledged (flush returned) but only {have} survived"
    return dict(by_producer)


def _gaps(values: Iterable[int]) -> str:
    values = list(values)
    missing = sorted(set(range(max(values, default=-1) + 1)) - set(values))
    return f"{len(values)} values, first missing {missing[:5]}, first={values[:3]}"


def acked_counts(lines: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Producer id -> records acknowledged, from helper producers' ``acked`` lines."""
    out: dict[str, int] = {}
    for line in lines:
        if "acked" in line:
            out[line["id"]] = max(out.get(line["id"], 0), line["acked"][1])
    return out


def digest(parts: Mapping[int, list[embedlog.Message]]) -> dict[str, Any]:
    """Record count and a hash of every (partition, offset, key, value), for comparing processes."""
    h = hashlib.sha256()
    n = 0
    for p in sorted(parts):
        for m in parts[p]:
            n += 1
            h.update(b"%d:%d:%d:" % (p, m.offset, -1 if m.key is None else len(m.key)))
            h.update(m.key or b"")
            h.update(b"%d:" % (-1 if m.value is None else len(m.value)))
            h.update(m.value or b"")
    return {"records": n, "sha256": h.hexdigest()}


def prometheus_registry(log: embedlog.Log) -> Any:
    """A Prometheus registry scraping ``log`` (None without prometheus_client)."""
    try:
        from prometheus_client import CollectorRegistry  # noqa: PLC0415 - optional

        from embedlog.metrics.prometheus import EmbedlogCollector  # noqa: PLC0415
    except ImportError:
        return None
    registry = CollectorRegistry()
    registry.register(EmbedlogCollector(log))
    return registry


def send_while_flushing(producer: embedlog.Producer, sender: Callable[[int], None], threads: int) -> None:
    """Run ``sender(t)`` on ``threads`` threads while another thread calls
    ``producer.flush()`` in a loop; return once every sender is done and the flusher stopped."""
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            producer.flush()

    f = threading.Thread(target=flusher)
    f.start()
    workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        stop.set()
        f.join()


def py_producer_class() -> type:
    """``Producer`` with the pure-Python send (``sendpath._PySendBase``) whatever the
    build: every other method the same.  The reference the C send is compared with."""
    body = {k: v for k, v in vars(producer_mod.Producer).items() if k not in ("__dict__", "__weakref__")}
    return type("PyProducer", (sendpath._PySendBase,), body)


def producer(log: embedlog.Log, impl: str, **options: Any) -> Any:
    """A producer with the C send (``impl="c"``; the test is skipped where the extension
    is not built) or the pure-Python reference (``"python"``)."""
    if impl == "c":
        if _native.speedups is None:
            pytest.skip("embedlog._speedups is not built here")
        return producer_mod.Producer(log, **options)
    return py_producer_class()(log, **options)


def frames(data: bytes) -> list[Any]:
    """The replication protocol messages in ``data`` (whole frames)."""
    return [decode_message(p) for p in FrameDecoder().feed(data)]


def stored_batches(txn: Any, dbs: Any, tid: int, part: int) -> list[bytes]:
    """The batches stored for one partition, in offset order (inside a transaction)."""
    prefix = schema.partition_key(tid, part)
    out = []
    with txn.cursor(db=dbs["batches"]) as cur:
        if cur.set_range(prefix):
            for k, v in cur:
                if bytes(k[:8]) != prefix:
                    break
                out.append(bytes(v))
    return out


def partition_state(log: embedlog.Log, topic: str = "t", part: int = 0) -> Any:
    """A partition's stored state (``schema.PartitionState``)."""
    tid = log.describe_topic(topic).topic_id
    st = log._store.read(lambda txn: plog.load_state(txn, log._store.dbs, tid, part))
    assert st is not None
    return st


def fill_for_catch_up(log: embedlog.Log, topic: str = "t") -> None:
    """~3 MB in 10,000 keyed records, flushed every 100 (batches of ~30 kB): a dozen
    responses of a follower fetching 256 KiB at a time."""
    with log.producer() as p:
        for i in range(10_000):
            p.send(topic, b"%06d" % i + bytes(300), key=b"k%d" % (i % 7))
            if i % 100 == 99:
                p.flush()
