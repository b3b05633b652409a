"""A flush whose records for one topic cannot be written still writes the others.

Kafka fails a produce per partition: records for a deleted topic fail, records for other
topics and partitions in the same flush are stored.  A transaction is the exception: all
of it or nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog.errors import TransactionAbortedError, UnknownPartitionError, UnknownTopicError


def _deliveries() -> tuple[list[tuple[Any, Any]], Any]:
    got: list[tuple[Any, Any]] = []
    return got, lambda err, md: got.append((err, md))


def test_a_deleted_topic_fails_alone(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log") as log:
        for name in ("a", "b", "c"):
            log.create_topic(name, partitions=2)
        got, cb = _deliveries()
        with log.producer(linger_ms=60_000) as p:
            for i in range(6):
                for name in ("a", "b", "c"):
                    p.send(name, b"%s%d" % (name.encode(), i), key=b"k%d" % i, on_delivery=cb)
            log.delete_topic("b")
            with pytest.raises(UnknownTopicError, match="'b'"):
                p.flush()
            p.flush()  # nothing left over, nothing raised again
        assert sum(s.end_offset for s in log.describe_topic("a").partitions) == 6
        assert sum(s.end_offset for s in log.describe_topic("c").partitions) == 6
        failed = [err for err, md in got if err is not None]
        ok = [md for err, md in got if err is None]
        assert len(failed) == 6
        assert all(isinstance(e, UnknownTopicError) and "'b'" in str(e) for e in failed)
        assert sorted(md.topic for md in ok) == ["a"] * 6 + ["c"] * 6
        with log.consumer(["a", "c"], auto_offset_reset="earliest") as c:
            values = sorted(m.value for m in c.poll(timeout=2.0))
        assert values == sorted(b"%s%d" % (n, i) for n in (b"a", b"c") for i in range(6))


def test_a_partition_gone_fails_alone(tmp_path: Path) -> None:
    """The topic deleted and created again with fewer partitions: records for partition 2
    fail, the ones for partition 0 (and other topics) are written."""
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t", partitions=3)
        log.create_topic("other")
        with log.producer(linger_ms=60_000) as p:
            p.send("t", b"p0", partition=0)
            p.send("t", b"p2", partition=2)
            p.send("other", b"o")
            # another process's recreation (this producer follows its own at once)
            import subprocess  # noqa: PLC0415
            import sys  # noqa: PLC0415

            code = ("import embedlog, sys\n"
                    "with embedlog.open(sys.argv[1]) as log:\n"
                    "    log.delete_topic('t'); log.create_topic('t', partitions=1)\n")
            subprocess.run([sys.executable, "-c", code, str(tmp_path / "log")], check=True, timeout=60)
            with pytest.raises((UnknownPartitionError, UnknownTopicError)):
                p.flush()
        assert log.describe_topic("other").partitions[0].end_offset == 1
        assert log.describe_topic("t").partitions[0].end_offset == 1


def test_several_threads_one_bad(tmp_path: Path) -> None:
    """Flushes grouped into one commit: the bad one fails alone, and within it only its
    bad batch."""
    with embedlog.open(tmp_path / "log") as log:
        for name in ("good", "bad"):
            log.create_topic(name)
        producers = [log.producer(linger_ms=60_000) for _ in range(4)]
        for i, p in enumerate(producers):
            p.send("good", b"g%d" % i)
        producers[0].send("bad", b"x")
        log.delete_topic("bad")
        errors: list[BaseException] = []
        start = threading.Barrier(len(producers))

        def flush(p: Any) -> None:
            start.wait()
            try:
                p.flush()
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=flush, args=(p,)) for p in producers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for p in producers:
            p.close()
        assert len(errors) == 1
        assert isinstance(errors[0], UnknownTopicError)
        assert log.describe_topic("good").partitions[0].end_offset == 4


def test_a_transaction_stays_all_or_nothing(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("a")
        log.create_topic("b")
        tx = log.transaction()
        tx.send("a", b"a")
        tx.send("b", b"b")
        log.delete_topic("b")
        with pytest.raises(TransactionAbortedError):
            tx.commit()
        assert log.describe_topic("a").partitions[0].end_offset == 0


def test_a_background_write_keeps_the_error_for_the_next_flush(tmp_path: Path) -> None:
    """Written by the linger thread: the good records are stored at once, the bad
    batch's error is raised by the next flush."""
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("a")
        log.create_topic("b")
        with log.producer(linger_ms=50) as p:
            p.send("a", b"a")
            p.send("b", b"b")
            log.delete_topic("b")
            import time  # noqa: PLC0415

            deadline = time.monotonic() + 10
            while log.describe_topic("a").partitions[0].end_offset < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert log.describe_topic("a").partitions[0].end_offset == 1
            with pytest.raises(UnknownTopicError):
                p.flush()
