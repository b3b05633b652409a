"""Bad or unusual input that gets a clear answer: bytes subclasses, flush timeouts,
pickling, a truncated data file, and what an unknown topic's message suggests."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path

import pytest

import embedlog
from embedlog.errors import ConfigError, StorageError, UnknownTopicError


class _Bytes(bytes):
    """A bytes subclass, as numpy.bytes_ is."""


def test_bytes_subclasses_are_bytes(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t")
        with log.producer() as p:
            p.send("t", _Bytes(b"value"), key=_Bytes(b"key"))
            p.send("t", _Bytes(b"v2"), key=b"key")
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            got = c.poll(timeout=2.0)
    assert [(m.key, m.value) for m in got] == [(b"key", b"value"), (b"key", b"v2")]
    assert all(type(m.value) is bytes for m in got)


def test_flush_and_close_take_a_negative_timeout_as_no_limit_of_their_own(tmp_path: Path) -> None:
    """As confluent-kafka's flush(-1): wait as long as delivery_timeout_ms allows."""
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t")
        p = log.producer()
        p.send("t", b"x")
        p.flush(timeout=-1)
        p.send("t", b"y")
        p.close(timeout=-1.0)
        assert log.describe_topic("t").partitions[0].end_offset == 2
        with pytest.raises(ConfigError, match="timeout"):
            log.producer().flush(timeout=float("nan"))


def test_clients_refuse_pickling_with_a_clear_error(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t")
        with log.producer() as p, log.consumer(["t"]) as c:
            for obj in (log, p, c):
                with pytest.raises(ConfigError, match=r"embedlog\.open"):
                    pickle.dumps(obj)


def _child(log: embedlog.Log) -> None:  # pragma: no cover - never runs: the log cannot be sent
    log.topics()


def test_a_log_passed_to_a_spawned_process_is_refused_clearly(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log") as log:
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_child, args=(log,))
        with pytest.raises(ConfigError, match="open the same directory"):
            proc.start()


def test_a_truncated_data_file_is_refused_at_open(tmp_path: Path) -> None:
    """Reading pages past the end of a truncated data.mdb would kill the process with
    SIGBUS: the open refuses it with a typed error instead."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t")
        with log.producer() as p:
            for i in range(2000):
                p.send("t", os.urandom(500), key=b"%d" % i)
    data = path / "data.mdb"
    size = data.stat().st_size
    with open(data, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(StorageError, match="truncated"):
        embedlog.open(path)


def test_unknown_topic_messages_suggest_what_applies(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "a") as log:
        with pytest.raises(UnknownTopicError, match="auto_create_topics=True"):
            log.producer().send("nope", b"x")
        with pytest.raises(UnknownTopicError, match=r"log\.topics"):
            log.describe_topic("nope")
    with embedlog.open(tmp_path / "b", auto_create_topics=True) as log:
        with pytest.raises(UnknownTopicError) as info:
            log.describe_topic("nope")
        assert "auto_create_topics=True" not in str(info.value)
