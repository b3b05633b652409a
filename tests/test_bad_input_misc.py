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


# -- replication's arguments ----------------------------------------------------------------------------
_LEADER_BAD = [
    {"listen": None}, {"listen": 5}, {"listen": ["h", 0]}, {"listen": ("127.0.0.1",)},
    {"listen": ("127.0.0.1", 70000)}, {"listen": ("127.0.0.1", True)}, {"listen": "127.0.0.1:²"},
    {"listen": "[::1:0"}, {"listen": "nosuch.invalid:0"}, {"max_wait_ms": "100"}, {"session_timeout_ms": "x"},
    {"max_bytes": None}, {"max_bytes": -1}, {"secret": "\ud800"}, {"ssl_context": "x"},
    {"replica_lag_time_max_ms": True}, {"hw_persist_ms": 1.5}, {"insecure": "yes"},
]
_FOLLOWER_BAD = [
    {"backoff_ms": 100}, {"backoff_ms": (1,)}, {"backoff_ms": (10, 5)}, {"backoff_ms": (0, 5)},
    {"max_bytes": "1"}, {"session_timeout_ms": "x"}, {"leader": (5, 1)}, {"leader": ("127.0.0.1", 70000)},
    {"leader": None}, {"secret": "\ud800"},
]


@pytest.mark.parametrize("kwargs", _LEADER_BAD, ids=repr)
def test_a_leader_refuses_bad_arguments_with_config_error(tmp_path: Path, kwargs: dict[str, object]) -> None:
    """Unchecked, these raised AttributeError, IndexError, OverflowError or a raw socket
    error, or were taken and later killed the connection thread (replication then stalled
    with no error anywhere)."""
    from embedlog.replication import Leader  # noqa: PLC0415

    with embedlog.open(tmp_path / "a") as log:
        with pytest.raises(ConfigError):
            Leader(log, **{"secret": b"s", **kwargs})  # type: ignore[arg-type]
        with Leader(log, secret=b"s"):  # nothing was left held
            pass


@pytest.mark.parametrize("kwargs", _FOLLOWER_BAD, ids=repr)
def test_a_follower_refuses_bad_arguments_with_config_error(tmp_path: Path, kwargs: dict[str, object]) -> None:
    from embedlog.replication import Follower, replication_status  # noqa: PLC0415

    with embedlog.open(tmp_path / "b") as log:
        with pytest.raises(ConfigError):
            Follower(log, **{"leader": "127.0.0.1:1", "secret": b"s", **kwargs})  # type: ignore[arg-type]
        assert replication_status(log)["role"] == "leader"  # (not made a replica)


@pytest.mark.parametrize("log", [None, 5, "dir/"])
def test_promote_of_something_else_than_a_log_is_a_config_error(log: object) -> None:
    from embedlog.replication import promote  # noqa: PLC0415

    with pytest.raises(ConfigError, match=r"embedlog\.Log"):
        promote(log)  # type: ignore[arg-type]
