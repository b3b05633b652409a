"""Shared fixtures: real log directories under pytest's ``tmp_path``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    """``bootstrap.servers`` of a librdkafka mock cluster owned by this process, one per
    test module (the Kafka bridge's tests; skipped without confluent-kafka)."""
    pytest.importorskip("confluent_kafka")
    from procs import mock_kafka  # noqa: PLC0415 - imports confluent_kafka

    with mock_kafka.in_process() as servers:
        yield servers


@pytest.fixture
def children() -> Iterator[harness.Children]:
    """Subprocesses started through ``harness`` (``children.start(...)``); every one still
    running is killed at teardown."""
    kids = harness.Children()
    try:
        yield kids
    finally:
        kids.close()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[embedlog.Log]:
    """A log at ``tmp_path / "log"`` with background maintenance off; closed after the test."""
    lg = embedlog.open(tmp_path / "log", maintenance_interval_ms=None)
    yield lg
    lg.close()


@pytest.fixture
def make_log(tmp_path: Path) -> Iterator[Callable[..., embedlog.Log]]:
    """Open logs (``make_log("name", **options)``); all are closed at teardown.

    A relative path is taken under ``tmp_path`` (default ``"log"``, the directory the
    ``log`` fixture uses), so calling it twice with one name reopens one directory.
    Background maintenance is off unless ``maintenance_interval_ms`` is given.
    """
    opened: list[embedlog.Log] = []

    def make(path: str | os.PathLike[str] = "log", **options: Any) -> embedlog.Log:
        options.setdefault("maintenance_interval_ms", None)
        lg = embedlog.open(tmp_path / path, **options)
        opened.append(lg)
        return lg

    yield make
    for lg in reversed(opened):
        lg.close()
