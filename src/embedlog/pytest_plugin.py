"""embedlog's pytest plugin: test Kafka applications against an embedded log.

Registered through the ``pytest11`` entry point, so installing embedlog is enough.

* ``embedlog_log`` — a fresh ``embedlog.Log`` in the test's ``tmp_path`` (durability
  ``"none"``: nothing in a test needs an fsync), closed after the test.
* ``embedlog_kafka`` — routes every Kafka client the test creates to that log, whatever
  its ``bootstrap.servers``, and yields the log for assertions.  While the test runs,
  the client classes of ``confluent_kafka``, ``kafka`` (kafka-python) and ``aiokafka``
  (whichever are imported) are replaced by embedlog's shims — also where application
  modules imported them earlier (``from confluent_kafka import Producer`` binds the
  class in the module: each module's globals are looked at once per process, when the
  fixture first runs after the module was imported), and in a library imported while
  the test runs (an import hook patches it before its importer binds its names).
  Everything is put back after the test; tests that do not request the fixture get the
  real clients untouched.
* ``@pytest.mark.embedlog_topics("orders", ("events", 3), auto_create_topics=False)``
  creates topics before the test (a name, or ``(name, partitions)``, or
  ``(name, partitions, {config})``); ``auto_create_topics`` and ``num_partitions`` set
  the broker-like defaults for topics created on first use (``True`` and 1).

Works under pytest-xdist: each worker process has its own registry, logs and patches.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
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
    ("aiokafka.admin", "AIOKafkaAdminClient", "embedlog.compat.aiokafka.admin", "AIOKafkaAdminClient"),
)


_FIXTURE = "embedlog_kafka"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(*topics, auto_create_topics=True, num_partitions=1): topics the embedlog_kafka fixture "
        "creates before the test: names, (name, partitions) or (name, partitions, config) tuples")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that requests ``embedlog_kafka`` gets it before its other function-scoped
    fixtures, whatever the order of its arguments: a fixture listed before it that makes
    a Kafka client (``def test_x(producer, embedlog_kafka)``) gets a stand-in too.
    Fixtures of wider scopes stay first, as pytest sets them up: one made while routing
    was on would hold a client of this one test's log, closed after it."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if not isinstance(names, list) or _FIXTURE not in names:
            continue
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        names.remove(_FIXTURE)
        # (a stable partition: pytest orders by the scope of a name's last definition, so a
        # function-scoped override wrapping a session fixture may come after other fixtures)
        wide = [n for n in names if _scope(defs, n) != "function"]
        names[:] = [*wide, _FIXTURE, *(n for n in names if n not in wide)]


def _scope(defs: Any, name: str) -> str:
    """The scope of fixture ``name`` among a test's ``defs`` (``"function"`` if unknown):
    the widest of the definitions pytest sets up for it (a function-scoped override that
    requests its own name wraps the definition it overrides, say a session fixture, which
    pytest sets up when the override is; one that does not replaces it)."""
    found = defs.get(name) if isinstance(defs, dict) else None
    scopes = set()
    for d in reversed(found or ()):  # (the override pytest uses, and those it requests by its own name)
        scopes.add(str(getattr(d, "scope", "function")))
        if name not in getattr(d, "argnames", ()):
            break
    return next((s for s in ("session", "package", "module", "class") if s in scopes), "function")


# -- patching --------------------------------------------------------------------------------
# A module that did ``from kafka import KafkaProducer`` holds the real class in its
# globals, and only a look at its globals finds it.  Looking at every module at every test
# is what made the fixture slow, so each module is looked at once per process: ``_SEEN``
# remembers the modules already looked at, ``_HOLDERS`` those that bound a client class
# then (a dozen, typically).  A module fully imported before any client library was can
# only bind one by running code later (a ``global`` statement in a function), which is
# not looked for (so the modules imported before this plugin, when no client library was,
# are not looked at at all).  Only libraries already imported are patched; an import hook
# patches a library imported while a test runs, before the importing module binds its names.

_WATCHED = frozenset(real for real, _name, _shim, _attr in CLIENT_CLASSES)
_STAND_INS: dict[type, type] = {}  # real class -> the subclass of its shim put in its place
_SEEN: dict[str, ModuleType] = {}  # module name -> the module object looked at
_HOLDERS: dict[str, tuple[ModuleType, tuple[str, ...]]] = {}  # ... and the names bound to a client class
_MISSING: set[str] = set()  # shims that did not import: not tried again in this process


def _initializing(module: object) -> bool:
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _shim(name: str) -> ModuleType | None:
    """The shim module ``name``, or ``None`` if it does not import (then its classes are skipped)."""
    module = sys.modules.get(name)
    if module is not None or name in _MISSING:
        return module
    try:
        with warnings.catch_warnings():  # the libraries' own deprecation noise, not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(name)
    except ImportError:
        _MISSING.add(name)
        return None


def _stand_in(real_module: ModuleType, real_name: str, shim_mod: str, shim_name: str) -> tuple[type, type] | None:
    """``(real class, stand-in)`` for one entry of ``CLIENT_CLASSES``.

    The stand-in is a subclass of the shim's class made for the patch alone (one per real
    class, kept for the process), so that what the fixture put into modules can be told
    apart, at teardown, from the shim classes a module imported on purpose.  A library
    imported again (pytester does that) has new classes, and gets new stand-ins.
    """
    shim_module = _shim(shim_mod)
    real = getattr(real_module, real_name, None)
    shim = getattr(shim_module, shim_name, None) if shim_module is not None else None
    if not (isinstance(real, type) and isinstance(shim, type)) or issubclass(real, shim):
        return None
    stand_in = _STAND_INS.get(real)
    if stand_in is None or not issubclass(stand_in, shim):
        stand_in = type(shim.__name__, (shim,), {"__module__": shim.__module__, "__qualname__": shim.__qualname__,
                                                 "__doc__": shim.__doc__})
        _STAND_INS[real] = stand_in
    return real, stand_in


def _bound(d: dict[str, Any], ids: AbstractSet[int]) -> tuple[str, ...]:
    """The names in module globals ``d`` bound to an object whose id is in ``ids``."""
    try:
        if ids.isdisjoint(map(id, d.values())):  # in C: cheap enough for every module once
            return ()
        return tuple(k for k, v in d.items() if id(v) in ids)
    except RuntimeError:  # the dict changed meanwhile (a thread importing): once more, from a copy
        return _bound(dict(d), ids)


def _look_at_new_modules(real_ids: set[int]) -> None:
    """Look at the modules not looked at yet, for globals bound to a real client class."""
    for name, module in list(sys.modules.items()):
        if _SEEN.get(name) is module:
            continue
        d = getattr(module, "__dict__", None)
        names = _bound(d, real_ids) if type(d) is dict and real_ids else ()
        if names:
            _HOLDERS[name] = (module, names)
        else:
            _HOLDERS.pop(name, None)
        if not _initializing(module):  # one still running its code is looked at again next time
            _SEEN[name] = module


def _seen_at_boot() -> None:
    """Count the modules fully imported before this plugin as looked at: none can hold a
    client class unless a client library was imported before it (then all are looked at)."""
    if not _WATCHED & sys.modules.keys():
        _SEEN.update((name, m) for name, m in list(sys.modules.items()) if not _initializing(m))


_seen_at_boot()


class _Patch:
    """One test's replacement of the real client classes by stand-ins, and its undoing."""

    def __init__(self) -> None:
        self.pairs: dict[int, tuple[type, type]] = {}  # id(real class) -> (real class, stand-in)
        self.done: set[tuple[str, str]] = set()  # CLIENT_CLASSES entries handled
        self.swapped: list[tuple[dict[str, Any], str, type, type]] = []  # (globals, name, real, stand-in)
        self.before: set[str] = set()  # modules imported when the test started
        self.ready: set[str] = set()  # libraries the import hook saw finish executing
        self.hook: _ImportHook | None = None
        self._busy = False

    def _library(self, name: str) -> ModuleType | None:
        module = sys.modules.get(name)
        if module is None or (_initializing(module) and name not in self.ready):
            return None
        return module

    def _new_pairs(self) -> list[tuple[type, type]]:
        """Stand-ins for the client classes of the libraries imported by now (importing a
        shim may import another library: repeated until nothing is new)."""
        found: list[tuple[type, type]] = []
        progress = True
        while progress:
            progress = False
            for real_mod, real_name, shim_mod, shim_name in CLIENT_CLASSES:
                if (real_mod, real_name) in self.done:
                    continue
                module = self._library(real_mod)
                if module is None:
                    continue
                self.done.add((real_mod, real_name))
                progress = True
                pair = _stand_in(module, real_name, shim_mod, shim_name)
                if pair is not None and id(pair[0]) not in self.pairs:
                    self.pairs[id(pair[0])] = pair
                    found.append(pair)
        return found

    def _swap_in(self, d: dict[str, Any], names: tuple[str, ...]) -> None:
        for name in names:
            pair = self.pairs.get(id(d.get(name)))
            if pair is not None and d.get(name) is pair[0]:
                d[name] = pair[1]
                self.swapped.append((d, name, pair[0], pair[1]))

    def start(self) -> None:
        self.before = set(sys.modules)
        pairs = self._new_pairs()
        if pairs:
            _look_at_new_modules(set(self.pairs))
            for name, (module, names) in list(_HOLDERS.items()):
                if sys.modules.get(name) is module:
                    self._swap_in(module.__dict__, names)
        if len(self.done) < len(CLIENT_CLASSES):  # a library not imported yet may be, during the test
            self.hook = _ImportHook(self)
            sys.meta_path.insert(0, self.hook)

    def library_loaded(self, name: str) -> None:
        """The import hook's call: library ``name`` finished executing, before its importer
        binds anything from it."""
        self.ready.add(name)
        if self._busy:  # a shim imported below imports another library: handled by the loop below
            return
        self._busy = True
        try:
            while self._new_pairs():
                ids = set(self.pairs)
                for mod_name in sys.modules.keys() - self.before:  # the library's modules (and its importers)
                    module = sys.modules.get(mod_name)
                    d = getattr(module, "__dict__", None)
                    if type(d) is dict:
                        self._swap_in(d, _bound(d, ids))
        finally:
            self._busy = False

    def stop(self) -> None:
        if self.hook is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self.hook)
        for d, name, real, stand_in in reversed(self.swapped):
            if d.get(name) is stand_in:
                d[name] = real
        if self.pairs:  # modules imported during the test that took a stand-in
            back = {id(stand_in): real for real, stand_in in self.pairs.values()}
            for mod_name in sys.modules.keys() - self.before:
                d = getattr(sys.modules.get(mod_name), "__dict__", None)
                if type(d) is dict:
                    for name in _bound(d, back.keys()):
                        d[name] = back[id(d[name])]


class _ImportHook(importlib.abc.MetaPathFinder):
    """Patches a client library imported while a test runs (``sys.meta_path``, only then)."""

    def __init__(self, patch: _Patch) -> None:
        self.patch = patch

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _WATCHED:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                if isinstance(spec.loader, importlib.abc.Loader) and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, self.patch)
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    """Runs a library's loader, then has the library's client classes replaced."""

    def __init__(self, loader: importlib.abc.Loader, patch: _Patch) -> None:
        self.loader = loader
        self.patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # the library sees its own loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.patch.library_loaded(module.__name__)


def _merged_specs(node: pytest.Item) -> tuple[list[tuple[str, int, dict[str, Any]]], dict[str, Any]]:
    """The topics and options of every ``embedlog_topics`` marker of ``node`` (its own, its
    class's, its module's): topics from all of them (a topic named twice: the nearest
    marker's), options from the nearest marker that sets each."""
    specs: dict[str, tuple[str, int, dict[str, Any]]] = {}
    options: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers(_MARKER))):  # (iter_markers: nearest first)
        more, opts = _topic_specs(marker)
        specs.update((spec[0], spec) for spec in more)
        options.update(opts)
    return list(specs.values()), options


def _topic_specs(marker: pytest.Mark) -> tuple[list[tuple[str, int, dict[str, Any]]], dict[str, Any]]:
    specs: list[tuple[str, int, dict[str, Any]]] = []
    for item in marker.args:
        if isinstance(item, str):
            specs.append((item, 0, {}))
        elif (isinstance(item, tuple) and 1 <= len(item) <= 3 and isinstance(item[0], str)
              and (len(item) < 2 or (isinstance(item[1], int) and not isinstance(item[1], bool) and item[1] >= 1))
              and (len(item) < 3 or isinstance(item[2], Mapping))):
            specs.append((item[0], item[1] if len(item) > 1 else 0, dict(item[2]) if len(item) > 2 else {}))
        else:
            raise pytest.UsageError(f"@pytest.mark.{_MARKER}: each topic is a name, (name, partitions) or "
                                    f"(name, partitions, config) with partitions an int >= 1 and config a dict; "
                                    f"got {item!r}")
    unknown = set(marker.kwargs) - {"auto_create_topics", "num_partitions"}
    if unknown:
        raise pytest.UsageError(f"@pytest.mark.{_MARKER} takes auto_create_topics= and num_partitions=, "
                                f"not {', '.join(sorted(unknown))}")
    n = marker.kwargs.get("num_partitions", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise pytest.UsageError(f"@pytest.mark.{_MARKER}: num_partitions must be an int >= 1, got {n!r}")
    if not isinstance(marker.kwargs.get("auto_create_topics", True), bool):
        raise pytest.UsageError(f"@pytest.mark.{_MARKER}: auto_create_topics must be True or False, "
                                f"got {marker.kwargs['auto_create_topics']!r}")
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

    specs, options = _merged_specs(request.node)
    num_partitions = int(options.get("num_partitions", 1))
    for name, partitions, config in specs:
        embedlog_log.create_topic(name, partitions=partitions or num_partitions, config=config or None)
    registry.use_log(embedlog_log, auto_create_topics=bool(options.get("auto_create_topics", True)),
                     num_partitions=num_partitions)
    patch = _Patch()
    patch.start()
    try:
        yield embedlog_log
    finally:
        patch.stop()
        registry.stop_using(embedlog_log)  # (the clusters of clients made outside the fixture stay)
