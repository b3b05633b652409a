"""embedlog's pytest plugin: test Kafka applications against an embedded log.

Registered through the ``pytest11`` entry point, so installing embedlog is enough.

* ``embedlog_log`` — a fresh ``embedlog.Log`` in the test's ``tmp_path`` (durability
  ``"none"``: nothing in a test needs an fsync), closed after the test.
* ``embedlog_kafka`` — routes every Kafka client the test creates to that log, whatever
  its ``bootstrap.servers``, and yields the log for assertions.  While the test runs,
  the client classes of ``confluent_kafka``, ``kafka`` (kafka-python) and ``aiokafka``
  (whichever are installed) are replaced by embedlog's shims — also where application
  modules imported them earlier (``from confluent_kafka import Producer`` binds the
  class in the module: every module's globals are scanned for the real classes).
  Everything is put back after the test; tests that do not request the fixture get the
  real clients untouched.
* ``@pytest.mark.embedlog_topics("orders", ("events", 3), auto_create_topics=False)``
  creates topics before the test (a name, or ``(name, partitions)``, or
  ``(name, partitions, {config})``); ``auto_create_topics`` and ``num_partitions`` set
  the broker-like defaults for topics created on first use (``True`` and 1).

Works under pytest-xdist: each worker process has its own registry, logs and patches.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import embedlog

__all__ = ["embedlog_kafka", "embedlog_log"]

_MARKER = "embedlog_topics"

#: (real module, attribute, shim module, attribute): the client classes the fixture replaces
CLIENT_CLASSES: tuple[tuple[str, str, str, str], ...] = (
    ("confluent_kafka", "Producer", "embedlog.compat.confluent_kafka", "Producer"),
    ("confluent_kafka", "Consumer", "embedlog.compat.confluent_kafka", "Consumer"),
    ("confluent_kafka", "SerializingProducer", "embedlog.compat.confluent_kafka", "SerializingProducer"),
    ("confluent_kafka", "DeserializingConsumer", "embedlog.compat.confluent_kafka", "DeserializingConsumer"),
    ("confluent_kafka.admin", "AdminClient", "embedlog.compat.confluent_kafka.admin", "AdminClient"),
    ("kafka", "KafkaProducer", "embedlog.compat.kafka_python", "KafkaProducer"),
    ("kafka", "KafkaConsumer", "embedlog.compat.kafka_python", "KafkaConsumer"),
    ("kafka", "KafkaAdminClient", "embedlog.compat.kafka_python", "KafkaAdminClient"),
    ("aiokafka", "AIOKafkaProducer", "embedlog.compat.aiokafka", "AIOKafkaProducer"),
    ("aiokafka", "AIOKafkaConsumer", "embedlog.compat.aiokafka", "AIOKafkaConsumer"),
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(*topics, auto_create_topics=True, num_partitions=1): topics the embedlog_kafka fixture "
        "creates before the test: names, (name, partitions) or (name, partitions, config) tuples")


_MISSING: set[str] = set()  # modules that did not import: not looked for again in this process


def _import(name: str) -> ModuleType | None:
    """The module if it is installed and imports (a missing shim or library is skipped)."""
    module = sys.modules.get(name)
    if module is not None or name in _MISSING:
        return module
    try:
        if importlib.util.find_spec(name.split(".", maxsplit=1)[0]) is None:
            _MISSING.add(name)
            return None
        with warnings.catch_warnings():  # the library's own deprecation noise, not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(name)
    except ImportError:
        _MISSING.add(name)
        return None


class _Patches:
    """The real client classes and their stand-ins.

    Each stand-in is a subclass of the shim's class made for the patch alone (one per
    real class, kept for the process), so that what the fixture put into modules can be
    told apart, at teardown, from the shim classes a module imported on purpose.  The
    real classes are looked up at every test: a library imported again (pytester does
    that) has new classes.
    """

    def __init__(self) -> None:
        self.stand_ins: dict[type, type] = {}

    def current(self) -> list[tuple[type, type]]:
        pairs = []
        for real_mod, real_name, shim_mod, shim_name in CLIENT_CLASSES:
            real_module = _import(real_mod)
            if real_module is None:
                continue
            shim_module = _import(shim_mod)
            real = getattr(real_module, real_name, None)
            shim = getattr(shim_module, shim_name, None) if shim_module is not None else None
            if not (isinstance(real, type) and isinstance(shim, type)) or issubclass(real, shim):
                continue
            stand_in = self.stand_ins.get(real)
            if stand_in is None or not issubclass(stand_in, shim):
                stand_in = type(shim.__name__, (shim,), {"__module__": shim.__module__,
                                                         "__qualname__": shim.__qualname__,
                                                         "__doc__": shim.__doc__})
                self.stand_ins[real] = stand_in
            pairs.append((real, stand_in))
        return pairs


_PATCHES = _Patches()


def _swap(table: dict[int, tuple[type, type]]) -> int:
    """Replace, in every loaded module's globals, each object that is a key of ``table``
    (by identity) with its replacement; return how many bindings changed."""
    changed = 0
    for module in list(sys.modules.values()):
        d = getattr(module, "__dict__", None)
        if not isinstance(d, dict):
            continue
        try:
            hits = [(name, table[id(v)]) for name, v in d.items() if id(v) in table]
        except RuntimeError:  # the module's dict changed meanwhile (a thread importing): once more
            hits = [(name, table[id(v)]) for name, v in list(d.items()) if id(v) in table]
        for name, (old, new) in hits:
            if d.get(name) is old:
                d[name] = new
                changed += 1
    return changed


def _patch() -> list[tuple[type, type]]:
    pairs = _PATCHES.current()
    if pairs:
        _swap({id(real): (real, new) for real, new in pairs})
    return pairs


def _unpatch(pairs: list[tuple[type, type]]) -> None:
    if pairs:
        _swap({id(new): (new, real) for real, new in pairs})


def _topic_specs(marker: pytest.Mark | None) -> tuple[list[tuple[str, int, dict[str, Any]]], dict[str, Any]]:
    if marker is None:
        return [], {}
    specs: list[tuple[str, int, dict[str, Any]]] = []
    for item in marker.args:
        if isinstance(item, str):
            specs.append((item, 0, {}))
        elif isinstance(item, tuple) and 1 <= len(item) <= 3 and isinstance(item[0], str):
            specs.append((item[0], int(item[1]) if len(item) > 1 else 0, dict(item[2]) if len(item) > 2 else {}))
        else:
            raise pytest.UsageError(f"@pytest.mark.{_MARKER}: each topic is a name, (name, partitions) or "
                                    f"(name, partitions, config); got {item!r}")
    unknown = set(marker.kwargs) - {"auto_create_topics", "num_partitions"}
    if unknown:
        raise pytest.UsageError(f"@pytest.mark.{_MARKER} takes auto_create_topics= and num_partitions=, "
                                f"not {', '.join(sorted(unknown))}")
    return specs, dict(marker.kwargs)


@pytest.fixture
def embedlog_log(tmp_path: Path) -> Iterator[embedlog.Log]:
    """A fresh embedlog ``Log`` in ``tmp_path`` (durability ``"none"``), closed after the test."""
    import embedlog  # noqa: PLC0415 - the plugin loads in every pytest run: import embedlog when used

    log = embedlog.open(tmp_path / "embedlog", durability="none", maintenance_interval_ms=None)
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def embedlog_kafka(request: pytest.FixtureRequest, embedlog_log: embedlog.Log) -> Iterator[embedlog.Log]:
    """Every Kafka client (confluent-kafka, kafka-python, aiokafka) talks to ``embedlog_log``
    during the test — application code unchanged; yields the log."""
    from embedlog.compat import registry  # noqa: PLC0415 - as above

    specs, options = _topic_specs(request.node.get_closest_marker(_MARKER))
    num_partitions = int(options.get("num_partitions", 1))
    for name, partitions, config in specs:
        embedlog_log.create_topic(name, partitions=partitions or num_partitions, config=config or None)
    registry.use_log(embedlog_log, auto_create_topics=bool(options.get("auto_create_topics", True)),
                     num_partitions=num_partitions)
    pairs = _patch()
    try:
        yield embedlog_log
    finally:
        _unpatch(pairs)
        registry.reset()
