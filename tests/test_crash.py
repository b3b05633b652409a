"""Crash safety, by killing real writer processes with SIGKILL, and LMDB map growth.

A helper producer (``procs/producer.py``) writes and flushes in a loop, printing the
records each ``flush()`` acknowledged; the test kills it at a random moment, reopens
the log and checks that every acknowledged record is there, once, at dense offsets,
then lets the next producer continue in the same directory.

Set ``EMBEDLOG_CRASH_SEED`` to replay the kill moments of a failed run (the seed is in
the failure message).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

import embedlog
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

TOPIC = "orders"


def _seed() -> int:
    env = os.environ.get("EMBEDLOG_CRASH_SEED")
    return int(env) if env else random.randrange(1 << 32)


def _kill_once(path: Path, durability: str, ident: str, rng: random.Random, acked: dict[str, int],
               children: Any, *extra: object) -> bool:
    """Start a producer, SIGKILL it at a random moment, reopen and check the log.

    Records the producer's acknowledged count in ``acked``; returns whether the kill
    came after its first acknowledgement.
    """
    producer = children.start("producer.py", path, TOPIC, "--id", ident, "--count", 0,
                              "--flush-every", rng.choice([1, 2, 5, 10, 25]), "--durability", durability, *extra)
    try:
        after_ack = rng.random() >= 0.25
        if after_ack:
            producer.wait_for(lambda line: "acked" in line)
            time.sleep(rng.uniform(0.0, 0.15))
        else:  # anywhere from interpreter start-up through opening the log to the first commits
            deadline = time.monotonic() + rng.uniform(0.0, 0.8)
            while time.monotonic() < deadline and producer.proc.poll() is None:
                time.sleep(0.005)
        assert producer.proc.poll() is None, f"the producer died on its own: {producer.describe()}"
    finally:
        producer.kill()
    acked[ident] = harness.acked_counts(producer.lines).get(ident, 0)
    with embedlog.open(path, durability=durability) as log:  # the store opens fine after kill -9
        assert log.topics() == [TOPIC]
        harness.check_log(log, TOPIC, acked)  # every acked record of every producer so far, once, no gaps
    return after_ack


def _kill_loop(path: Path, durability: str, iterations: int, children: Any, *extra: object) -> None:
    """Kill a producer (started with ``extra`` arguments) ``iterations`` times; check after each."""
    seed = _seed()
    rng = random.Random(seed)
    with embedlog.open(path, durability=durability) as log:
        log.create_topic(TOPIC, partitions=3)
    acked: dict[str, int] = {}
    killed_after_ack = 0
    for i in range(iterations):
        try:
            killed_after_ack += _kill_once(path, durability, f"it{i}", rng, acked, children, *extra)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, iteration {i}, durability={durability!r}: {exc}") from None
    assert killed_after_ack >= 1 or iterations < 4, f"seed {seed}: no kill happened mid-stream"

    # and the directory still takes writes and reads normally
    last = children.start("producer.py", path, TOPIC, "--id", "final", "--count", 100, "--flush-every", 10,
                          "--durability", durability)
    acked.update(harness.acked_counts(last.finish()))
    with embedlog.open(path) as log:
        held = harness.check_log(log, TOPIC, acked)
        assert len(held["final"]) == 100
        assert sum(len(v) for v in held.values()) == sum(p.end_offset for p in log.describe_topic(TOPIC).partitions)


@pytest.mark.parametrize("durability", ["flush", "interval", "none"])
def test_kill9_writer_quick(tmp_path: Path, children: Any, durability: str) -> None:
    """A few random SIGKILLs of a flushing producer: acked records survive, no gaps, no duplicates."""
    _kill_loop(tmp_path / "log", durability, 3, children)


def test_kill9_writer_while_the_map_grows(tmp_path: Path, children: Any) -> None:
    """Writers that start with a 1 MiB map and grow it as they go, killed at random moments."""
    _kill_loop(tmp_path / "log", "none", 3, children, "--map-size", 1 << 20, "--value-size", 20_000)


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["flush", "none"])
def test_kill9_writer_many_times(tmp_path: Path, children: Any, durability: str) -> None:
    """Twenty random SIGKILLs into the same directory, each followed by a full check."""
    _kill_loop(tmp_path / "log", durability, 20, children)


def test_kill9_while_a_consumer_process_reads(tmp_path: Path, children: Any) -> None:
    """Killing a writer does not disturb a reader in another process, which then sees every acked record."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic(TOPIC, partitions=3)
    consumer = children.start("consumer.py", path, TOPIC, "--expect", 10**9, "--timeout", 60)
    consumer.wait_for(lambda line: "ready" in line)
    producer = children.start("producer.py", path, TOPIC, "--id", "w", "--count", 0, "--flush-every", 5)
    try:
        producer.wait_for(lambda line: "acked" in line and line["acked"][1] >= 200)
    finally:
        producer.kill()
    acked = harness.acked_counts(producer.lines)["w"]
    with embedlog.open(path) as log:
        total = sum(p.end_offset for p in log.describe_topic(TOPIC).partitions)
        assert total >= acked
        harness.check_log(log, TOPIC, {"w": acked})
    def records() -> list[tuple[int, int]]:
        return [(r["p"], r["o"]) for r in list(consumer.lines) if "o" in r]

    harness.wait_until(lambda: len(records()) >= total or consumer.proc.poll() is not None,
                       f"the reader to see {total} records")
    consumer.kill()
    seen = records()
    assert len(seen) == total, f"the reader saw {len(seen)} of {total} records"
    assert len(set(seen)) == total


# -- map growth ------------------------------------------------------------------------

def _write_big(log: embedlog.Log, tag: bytes, count: int, size: int) -> None:
    rng = random.Random(tag)
    with log.producer(compression=None) as producer:
        for i in range(count):
            head = b"%s|%d|" % (tag, i)
            producer.send(TOPIC, head + rng.randbytes(size - len(head)), key=b"%s-%d" % (tag, i % 5))
            if i % 25 == 24:
                producer.flush()
        producer.flush()


def test_map_grows_from_one_mib_and_other_processes_follow(tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    small = 1 << 20
    with embedlog.open(path, map_size=small) as log:
        log.create_topic(TOPIC, partitions=2)
        reader = children.start("logshell.py", path, "--map-size", small, stdin=True)  # open before any growth
        reader.wait_for(lambda line: "ready" in line)
        assert reader.request("describe", TOPIC) == [[0, 0, 0], [1, 0, 0]]

        _write_big(log, b"here", 1000, 30_000)  # ~30 MB through a 1 MiB map
        assert os.path.getsize(path / "data.mdb") > 30_000_000
        here = harness.digest(harness.read_all(log, TOPIC))
        assert here["records"] == 1000
        # the reader's map is still 1 MiB: it must adopt the new size, then read it all
        assert reader.request("digest", TOPIC) == here
        assert reader.request("produce", TOPIC, ["from-reader"]) == 1

        # another process grows the map past this process's map; this one must follow
        # on its next write (and read)
        grower = children.start("producer.py", path, TOPIC, "--id", "grower", "--count", 300, "--flush-every", 25,
                                "--value-size", 20_000, "--map-size", small)
        grower.finish()
        assert os.path.getsize(path / "data.mdb") > 34_000_000  # past the 32 MiB this process's map grew to
        with log.producer() as producer:
            producer.send(TOPIC, b"after-growth", partition=0)
            producer.flush()
        parts = harness.read_all(log, TOPIC)
        values = [m.value for msgs in parts.values() for m in msgs]
        assert len(values) == 1000 + 1 + 300 + 1
        assert b"from-reader" in values
        assert b"after-growth" in values
        assert sorted(v.split(b"|")[1] for v in values if v.startswith(b"grower|")) == \
            sorted(b"%d" % i for i in range(300))
        for p, msgs in parts.items():
            assert [m.offset for m in msgs] == list(range(len(msgs))), f"partition {p}"
        assert reader.request("digest", TOPIC) == harness.digest(parts)
        reader.send(["quit"])
        reader.finish()

    with embedlog.open(path, map_size=small) as log:  # reopens with a map that fits the file
        assert harness.digest(harness.read_all(log, TOPIC)) == harness.digest(parts)
