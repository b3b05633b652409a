"""An interrupt (Ctrl-C, or any exception a signal handler raises) anywhere in a flush
leaves the producer and the log usable: no later flush, in this thread or another,
waits forever, and no record is lost or written twice.

The deterministic tests raise ``KeyboardInterrupt`` (from a trace function) at the k-th
point of a flush in ``producer.py`` and ``writer.py`` where CPython may run a signal
handler, for every k until a flush runs out of such points: every place a real interrupt
can land in that code.  The LMDB write itself is left out: an interrupt there makes that
commit's records "may or may not be stored", as for any cut write.  The subprocess test sends real
``SIGALRM`` interrupts at random moments, as Ctrl-C would.
"""

from __future__ import annotations

import dis
import gc
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import producer as producer_module
from embedlog import writer
from embedlog.errors import InterruptedWriteError
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

TIMEOUT = harness.TIMEOUT
FILES = {producer_module.__file__, writer.__file__}


#: where CPython may run a signal handler: after these instructions (calls, backward jumps)
_CHECKED_AFTER = {"CALL", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_FUNCTION_EX", "CALL_METHOD",
                  "JUMP_BACKWARD", "JUMP_ABSOLUTE"}


def interrupt_at(k: int, count: list[int], where: list[str]) -> Callable[..., Any]:
    """A trace function raising KeyboardInterrupt at the k-th point in FILES where a
    signal handler may run: a function's entry, and the instruction after a call or a
    backward jump (CPython checks for pending signals there and nowhere else)."""
    last: dict[int, str] = {}

    def hit(frame: types.FrameType) -> None:
        count[0] += 1
        if count[0] == k:
            where.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            raise KeyboardInterrupt(f"test interrupt at line {frame.f_lineno} of {frame.f_code.co_name}")

    def local(frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            op = dis.opname[frame.f_code.co_code[frame.f_lasti]]
            if last.get(id(frame)) in _CHECKED_AFTER:
                last[id(frame)] = op
                hit(frame)
            last[id(frame)] = op
        return local

    def call(frame: types.FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename not in FILES:
            return None
        frame.f_trace_opcodes = True
        last.pop(id(frame), None)
        hit(frame)
        return local

    return call


def values(log: embedlog.Log, topic: str) -> list[bytes]:
    return sorted(m.value or b"" for part in harness.read_all(log, topic).values() for m in part)


def flush_within(p: Any, seconds: float) -> BaseException | None:
    """Flush on another thread; fail the test if it does not return in time."""
    out: list[BaseException | None] = []

    def run() -> None:
        try:
            p.flush()
            out.append(None)
        except BaseException as exc:  # handed to the test
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "a flush after the interrupted one hung"
    return out[0]


@pytest.mark.parametrize("callbacks", [False, True])
def test_an_interrupt_at_any_line_of_a_flush_loses_and_repeats_nothing(tmp_path: Path, callbacks: bool) -> None:
    delivered: list[bytes] = []
    k = 0
    interrupted = 0
    while True:
        k += 1
        count = [0]
        with embedlog.open(tmp_path / f"log{k}", durability="none", maintenance_interval_ms=None) as log:
            log.create_topic("t", partitions=2)
            p = log.producer(linger_ms=600_000)
            sent = [b"k%d-%d" % (k, i) for i in range(8)]
            on = (lambda err, md: delivered.append(b"x")) if callbacks else None
            for v in sent[:4]:
                p.send("t", v, key=v, on_delivery=on)
            p.flush()
            for v in sent[4:7]:
                p.send("t", v, key=v, on_delivery=on)
            where: list[str] = []
            sys.settrace(interrupt_at(k, count, where))
            try:
                p.flush()
            except KeyboardInterrupt:
                interrupted += 1
            finally:
                sys.settrace(None)
            p.send("t", sent[7], key=sent[7])
            assert flush_within(p, TIMEOUT) is None
            p.close()
            assert values(log, "t") == sorted(sent), f"interrupt at {where}"
        if count[0] < k:  # the flush ran fewer lines than k: every line was tried
            break
    assert interrupted == k - 1 > 20


def test_an_interrupt_as_a_write_unregisters_leaves_no_flush_waiting(tmp_path: Path) -> None:
    """A write's latch (what flushes in other threads wait for) is released before the
    write leaves the in-flight list: an interrupt between the two once left a held latch
    that a flush of another thread, which had seen it listed, waited for forever.  Here
    the interrupt lands in the unregistering itself."""

    class InterruptedPop(dict):  # type: ignore[type-arg]
        def pop(self, *args: Any) -> Any:
            raise KeyboardInterrupt("test interrupt as the write unregisters")

    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as log:
        log.create_topic("t")
        p = log.producer(linger_ms=600_000)
        p._inflight = InterruptedPop()
        p.send("t", b"a")
        with pytest.raises(KeyboardInterrupt):
            p.flush()
        p._inflight = dict(p._inflight)  # (listed still: the next flush, on another thread, looks at it)
        p.send("t", b"b")
        assert flush_within(p, TIMEOUT) is None
        p.close()
        assert values(log, "t") == [b"a", b"b"]


def test_an_interrupted_transaction_commit_is_written_at_once_or_never(tmp_path: Path) -> None:
    """An interrupt at any point of a transaction's commit: when it propagates, the
    transaction (records and offsets together) is either written or never will be — a
    later flush of another producer must not carry it (consume-transform-produce that
    retries from the committed offsets would then write it twice)."""
    k = 0
    outcomes: set[str] = set()
    while True:
        k += 1
        count = [0]
        with embedlog.open(tmp_path / f"log{k}", durability="none", maintenance_interval_ms=None) as log:
            log.create_topic("t")
            log.create_topic("other")
            tx = log.transaction()
            tx.send("t", b"in-tx")
            tx.commit_offsets("g", {embedlog.TopicPartition("t", 0): 1})
            where: list[str] = []
            gc.collect()  # (no finalizer of an earlier iteration's producer runs under the trace)
            sys.settrace(interrupt_at(k, count, where))
            try:
                tx.commit()
            except KeyboardInterrupt:
                pass
            finally:
                sys.settrace(None)

            def state() -> tuple[list[bytes], int | None]:
                if "g" not in log.groups():
                    return values(log, "t"), None
                return values(log, "t"), log.committed_offsets("g")[embedlog.TopicPartition("t", 0)].offset

            now = state()
            assert now in (([b"in-tx"], 1), ([], None)), f"interrupt at {where}: {now}"
            with log.producer() as p:  # an unrelated write must not carry the transaction later
                p.send("other", b"x")
            assert state() == now, f"interrupt at {where}: written by a later flush"
            outcomes.add("written" if now[0] else "not written")
        if count[0] < k:  # every point was tried
            break
    assert outcomes == {"written", "not written"}
    assert k > 20


def test_an_interrupted_flush_strands_no_other_thread(tmp_path: Path) -> None:
    """Other threads flush in a loop while the main thread's flushes are cut at line k:
    none of them hangs, nothing is written twice, and every record whose flush returned
    (or failed with InterruptedWriteError: the commit carrying it was cut after the
    write, so here it is stored) is there."""
    with embedlog.open(tmp_path / "log", durability="none", maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=3)
        stop = threading.Event()
        flushed: list[bytes] = []
        errors: list[BaseException] = []

        def other(i: int) -> None:
            with log.producer(linger_ms=600_000) as p:
                n = 0
                while not stop.is_set():
                    v = b"t%d-%d" % (i, n)
                    n += 1
                    p.send("t", v, key=v)
                    try:
                        p.flush()
                    except InterruptedWriteError:
                        pass
                    except BaseException as exc:  # checked below
                        errors.append(exc)
                        return
                    flushed.append(v)

        threads = [threading.Thread(target=other, args=(i,), daemon=True) for i in range(3)]
        for t in threads:
            t.start()
        mine: list[bytes] = []
        p = log.producer(linger_ms=600_000)
        for k in range(1, 400, 3):
            v = b"main-%d" % k
            mine.append(v)
            p.send("t", v, key=v)
            sys.settrace(interrupt_at(k, [0], []))
            try:
                p.flush()
            except (KeyboardInterrupt, InterruptedWriteError):
                pass
            finally:
                sys.settrace(None)
        assert flush_within(p, TIMEOUT) is None
        stop.set()
        for t in threads:
            t.join(TIMEOUT)
        assert not any(t.is_alive() for t in threads), "another thread's flush hung"
        assert errors == []
        p.close()
        got = values(log, "t")
        assert len(got) == len(set(got)), "a record was written twice"
        assert set(flushed) <= set(got)
        assert set(mine) <= set(got)


SIGNALS = textwrap.dedent("""
    import random, signal, sys, threading, time
    import embedlog

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, interrupt)
    path, durability, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    flushed, interrupted = [], 0
    with embedlog.open(path, durability=durability) as log:
        log.create_topic("t", partitions=2)
        p = log.producer(acks="leader")
        n = 0
        for trial in range(trials):
            batch = []
            try:
                signal.setitimer(signal.ITIMER_REAL, random.uniform(1e-6, 0.003))
                end = time.monotonic() + 0.005
                while time.monotonic() < end:
                    v = b"%d" % n
                    n += 1
                    batch.append(v)
                    p.send("t", v, key=v)
                    p.flush()
                    flushed.extend(batch)
                    batch = []
            except KeyboardInterrupt:
                interrupted += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        done = threading.Event()
        threading.Thread(target=lambda: (p.flush(), p.close(), done.set()), daemon=True).start()
        if not done.wait(30):
            print("HANG", flush=True)
            sys.exit(3)
    with open(sys.argv[4], "w") as f:
        f.write(" ".join(v.decode() for v in flushed))
    print(interrupted, n, flush=True)
""")


@pytest.mark.parametrize("durability", ["none", "flush"])
def test_real_interrupts_at_random_moments_never_hang_a_flush(tmp_path: Path, durability: str) -> None:
    script = tmp_path / "signals.py"
    script.write_text(SIGNALS)
    out = tmp_path / "flushed.txt"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "log"), durability, "150", str(out)],
                          check=False, capture_output=True, text=True, timeout=TIMEOUT * 4)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    interrupted, sent = map(int, proc.stdout.split())
    assert interrupted > 100
    flushed = {int(v) for v in out.read_text().split()}
    with embedlog.open(tmp_path / "log") as log:
        got = [int(v) for v in values(log, "t")]
    assert len(got) == len(set(got)), "a record was written twice"
    assert flushed <= set(got) <= set(range(sent))
