"""Produce-to-consume latency of single records, in one process and across two.

Each sample: ``t0 = time.monotonic_ns()``; ``send`` one 100-byte record whose first 8
bytes are ``t0``; ``flush()``; a consumer already blocked in ``poll(timeout=...)`` wakes,
and on return takes ``t1 = time.monotonic_ns()``; the sample is ``t1 - t0``.  The next
record is sent only after the previous one was received, so samples never queue.  On
Linux ``CLOCK_MONOTONIC`` is one clock for every process of the machine, so the
cross-process consumer (a subprocess running this file with ``--child``) computes the
sample itself and reports it over its stdout pipe.

Run as a child: ``python latency.py --child PATH TOPIC COUNT``.

Raw samples: when the environment variable ``EMBEDLOG_BENCH_SAMPLES`` names a directory,
``in_process`` and ``cross_process`` also write the samples they return (warm-up dropped)
to ``latency-{in_process|cross_process}-{durability}.json`` there (a JSON list of ns).
``benchmarks/run.py`` sets it to plot the distribution of the very samples that
``bench_core.py`` summarises.
"""

from __future__ import annotations

import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time

_T0 = struct.Struct(">Q")
_PAD = bytes(100 - _T0.size)

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog


SAMPLES_ENV = "EMBEDLOG_BENCH_SAMPLES"


def _keep(where: str, durability: str, samples: list[int]) -> list[int]:
    """Write ``samples`` to ``$EMBEDLOG_BENCH_SAMPLES`` if set (see the module doc); return them."""
    folder = os.environ.get(SAMPLES_ENV)
    if folder:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"latency-{where}-{durability}.json"), "w") as f:
            json.dump(samples, f)
    return samples


def _value(t0: int) -> bytes:
    return _T0.pack(t0) + _PAD


def _stamp(value: bytes | None) -> int:
    assert value is not None
    return int(_T0.unpack_from(value)[0])


def in_process(path: str, samples: int, warmup: int, *, durability: str) -> list[int]:
    """Latency samples (ns) with the consumer on a thread of this process."""
    got: queue.SimpleQueue[int | BaseException] = queue.SimpleQueue()
    ready = threading.Event()
    total = warmup + samples
    with embedlog.open(path, durability=durability) as log:
        log.create_topic("lat", partitions=1)

        def consume() -> None:
            try:
                with log.consumer(["lat"], auto_offset_reset="latest") as c:
                    c.position(embedlog.TopicPartition("lat", 0))
                    ready.set()
                    received = 0
                    while received < total:
                        msgs = c.poll(timeout=10.0)
                        t1 = time.monotonic_ns()
                        if not msgs:
                            raise TimeoutError("in-process consumer got nothing for 10 s")
                        for m in msgs:
                            got.put(t1 - _stamp(m.value))
                        received += len(msgs)
            except BaseException as exc:
                ready.set()
                got.put(exc)

        thread = threading.Thread(target=consume, name="latency-consumer", daemon=True)
        thread.start()
        ready.wait(30)
        out: list[int] = []
        with log.producer() as p:
            for _ in range(total):
                p.send("lat", _value(time.monotonic_ns()), key=b"k")
                p.flush()
                item = got.get(timeout=30)
                if isinstance(item, BaseException):
                    raise item
                out.append(item)
        thread.join(30)
    return _keep("in_process", durability, out[warmup:])


def cross_process(path: str, samples: int, warmup: int, *, durability: str) -> list[int]:
    """Latency samples (ns) with the consumer in a subprocess opening the same directory."""
    total = warmup + samples
    with embedlog.open(path, durability=durability) as log:
        log.create_topic("lat", partitions=1)
        child = subprocess.Popen([sys.executable, __file__, "--child", path, "lat", str(total)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            if line != "ready":
                err = child.stderr.read() if child.stderr else ""
                raise RuntimeError(f"latency child did not start: {line!r} {err.strip()[-2000:]}")
            out: list[int] = []
            with log.producer() as p:
                for _ in range(total):
                    p.send("lat", _value(time.monotonic_ns()), key=b"k")
                    p.flush()
                    line = child.stdout.readline()
                    if not line:
                        err = child.stderr.read() if child.stderr else ""
                        raise RuntimeError(f"latency child exited early: {err.strip()[-2000:]}")
                    out.append(int(line))
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    return _keep("cross_process", durability, out[warmup:])


def thread_handoff(samples: int, warmup: int) -> list[int]:
    """Floor of the in-process rows: ns from one thread releasing a lock to the thread
    blocked on it running Python again (what a consumer's wake-up costs before it reads
    anything).  The releasing thread then blocks at once, as the benchmark's producer
    does, so the woken thread finds the GIL free."""
    handed: queue.SimpleQueue[tuple[threading.Lock, threading.Event]] = queue.SimpleQueue()
    woke: queue.SimpleQueue[int] = queue.SimpleQueue()

    def waiter() -> None:
        while True:
            item = handed.get()
            if item is None:
                return
            latch, blocked = item
            blocked.set()
            latch.acquire()  # released by the main thread
            woke.put(time.monotonic_ns())

    thread = threading.Thread(target=waiter, name="handoff-waiter", daemon=True)
    thread.start()
    out: list[int] = []
    try:
        for _ in range(warmup + samples):
            latch = threading.Lock()
            latch.acquire()
            blocked = threading.Event()
            handed.put((latch, blocked))
            blocked.wait()
            time.sleep(0.0002)  # (the waiter is then asleep in acquire, as a blocked poll is)
            t0 = time.monotonic_ns()
            latch.release()
            out.append(woke.get() - t0)
    finally:
        handed.put(None)  # type: ignore[arg-type]
        thread.join(10)
    return out[warmup:]


def _child(path: str, topic: str, total: int) -> None:
    with embedlog.open(path) as log, log.consumer([topic], auto_offset_reset="latest") as c:
        c.position(embedlog.TopicPartition(topic, 0))
        print("ready", flush=True)
        received = 0
        while received < total:
            msgs = c.poll(timeout=10.0)
            t1 = time.monotonic_ns()
            if not msgs:
                raise TimeoutError("cross-process consumer got nothing for 10 s")
            for m in msgs:
                print(t1 - _stamp(m.value), flush=True)
            received += len(msgs)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
