"""``embedlog.open`` and ``Log``: a log directory, its topics, producers and consumers."""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import warnings
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .config import TopicConfig, check_callable, check_int
from .consumer import Consumer
from .errors import ClosedError, ConfigError, InvalidOffsetError, UnknownTopicError
from .groups.coordinator import Coordinator, GroupDescription, validate_group
from .groups.offsets import OffsetAndMetadata
from .model import TopicDescription, TopicPartition, topic_partition
from .producer import Producer
from .storage import producer_epochs
from .storage.compaction import compact_all
from .storage.store import Store
from .storage.topics import MAX_PARTITIONS, TopicMeta, check_partitions, validate_name
from .storage.verify import DumpIterator, ProgressFn, VerifyReport, dump, verify
from .transactions import Transaction
from .writer import GroupCommitter

if TYPE_CHECKING:
    from collections.abc import Callable

    from .groups.member import RebalanceCallback
    from .metrics.snapshot import LogMetrics
    from .partitioner import Partitioner

__all__ = ["Log", "open"]

_log = logging.getLogger("embedlog.maintenance")


class Log:
    """An open log directory. Thread-safe; a context manager.

    Several processes may open the same directory at once; each sees the others'
    topics and records.  Use ``embedlog.open()`` to create one.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, durability: str | None = None,
                 auto_create_topics: bool = False, default_partitions: int = 1,
                 fsync_interval_ms: int = 1000, maintenance_interval_ms: int | None = 30_000,
                 map_size: int | None = None, offsets_retention_ms: int | None = None) -> None:
        if path is not None:
            path = _checked_path(path)
        if not isinstance(default_partitions, int) or isinstance(default_partitions, bool) or \
                not 1 <= default_partitions <= MAX_PARTITIONS:
            raise ConfigError(f"default_partitions must be 1..{MAX_PARTITIONS}, got {default_partitions!r}")
        if not isinstance(auto_create_topics, bool):
            raise ConfigError(f"auto_create_topics must be True or False, got {auto_create_topics!r}")
        for name, value in (("fsync_interval_ms", fsync_interval_ms), ("maintenance_interval_ms",
                                                                       1 if maintenance_interval_ms is None
                                                                       else maintenance_interval_ms)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= _MAX_INTERVAL_MS:
                raise ConfigError(f"{name} must be a number of milliseconds from 1 to {_MAX_INTERVAL_MS} (a day)"
                                  f"{' or None (no background maintenance)' if name[0] == 'm' else ''}, got {value!r}")
        if map_size is not None and (not isinstance(map_size, int) or isinstance(map_size, bool)
                                     or not 1 << 20 <= map_size <= 1 << 50):
            raise ConfigError(f"map_size must be None or an int of bytes from 1 MiB to 1 PiB (LMDB grows the map "
                              f"by itself: it is only where it starts), got {map_size!r}")
        if offsets_retention_ms is not None:
            check_int("offsets_retention_ms", offsets_retention_ms, 1, 2**62)
        self.offsets_retention_ms = offsets_retention_ms
        self._temporary = path is None
        if durability is None:  # a temporary log is removed on close: no crash leaves anything to recover
            durability = "none" if self._temporary else "flush"
        self.path = tempfile.mkdtemp(prefix="embedlog-") if path is None else os.fspath(path)
        # A temporary log is removed by close(), or at the latest when the interpreter exits
        # (as tempfile.TemporaryDirectory is): one left open leaves nothing in /tmp.
        self._remove_temporary = (weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)
                                  if self._temporary else None)
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions
        self._shared = _acquire(self.path, durability=durability, map_size=map_size,
                                fsync_interval_ms=fsync_interval_ms, cross_process=not self._temporary)
        self._store = self._shared.store
        self.durability = durability
        self._committer = self._shared.committer
        self._coordinator = self._shared.coordinator
        self._closed = False
        #: held through ``close``: a second thread's close waits for the first (the shared
        #: store must be released once); reentrant, for a close from a client's callback
        self._close_lock = threading.RLock()
        self._closing = False
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._meta_cache: dict[str, TopicMeta] = {}
        self._cache_version = -1
        self._lock = threading.Lock()
        self._maint_stop = threading.Event()
        # A log dropped without close() (every reference gone, its clients' too) is closed
        # when it is collected, with a ResourceWarning, as an unclosed file is: its store,
        # threads and file descriptors do not outlive it.  Its threads hold it weakly.
        self._abandoned = weakref.finalize(self, _abandon, self._shared, self._maint_stop, self.path)
        self._abandoned.atexit = False  # (at exit the process ends anyway: nothing to release)
        self._maint: threading.Thread | None = None
        if maintenance_interval_ms:
            self._maint = threading.Thread(target=_maintenance_loop,
                                           args=(weakref.ref(self), self._maint_stop, maintenance_interval_ms / 1000),
                                           name="embedlog-maintenance", daemon=True)
            self._maint.start()

    # -- topics ---------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1,
                     config: Mapping[str, object] | None = None) -> TopicDescription:
        """Create a topic with ``partitions`` partitions and Kafka-keyed ``config``.

        Raises ``InvalidTopicError``, ``TopicExistsError`` or ``ConfigError``.
        Durable on return (in ``durability="flush"``).
        """
        self._check()
        validate_name(name)
        check_partitions(partitions)
        self._store.create_topic(name, partitions, TopicConfig.from_overrides(config))
        return self.describe_topic(name)

    def topics(self) -> list[str]:
        """Names of all topics, sorted."""
        self._check()
        return self._store.topic_names()

    def describe_topic(self, name: str) -> TopicDescription:
        """Partitions (start/end offsets, bytes on disk) and effective config of a topic."""
        self._check()
        return self._store.describe(validate_name(name))

    def alter_topic_config(self, name: str, config: Mapping[str, object]) -> None:
        """Set (or, with ``None`` values, reset to default) config keys of a topic."""
        self._check()
        if not isinstance(config, Mapping):
            raise ConfigError(f"config must be a mapping of Kafka topic config keys to values, got {config!r}")
        self._store.alter_topic(validate_name(name), config)

    def create_partitions(self, name: str, total: int) -> None:
        """Grow a topic to ``total`` partitions (keyed records may then map elsewhere, as in Kafka)."""
        self._check()
        self._store.add_partitions(validate_name(name), check_partitions(total))

    def delete_topic(self, name: str) -> None:
        """Delete a topic, its records and its committed offsets."""
        self._check()
        self._store.delete_topic(validate_name(name))

    def delete_records(self, name: str, partition: int, before_offset: int) -> int:
        """Delete records before ``before_offset`` (-1: all); return the new start offset."""
        self._check()
        return self._store.delete_records(validate_name(name), partition, before_offset)

    def maintain(self) -> dict[str, int]:
        """Run retention (and compaction) now; return what was removed."""
        self._check()
        self._store.env.reader_check()  # stale readers of dead processes would pin old pages
        failed: list[Exception] = []  # (a partition that cannot be retained or compacted stops nothing else)
        deleted = self._store.enforce_retention(errors=failed)
        compacted = compact_all(self._store, errors=failed)
        expired = 0
        if self.offsets_retention_ms is not None:
            expired = self._coordinator.expire_offsets(self.offsets_retention_ms)
        self._coordinator.sweep_heartbeats()  # (files of members that died joining, say)
        if failed:
            raise failed[0]  # (everything else was done)
        return {"batches_deleted": deleted, "records_compacted": compacted, "offsets_expired": expired}

    def verify(self, progress: ProgressFn | None = None) -> VerifyReport:
        """Check every stored batch (checksum, decoding, offsets' continuity) and every
        partition's state; return a ``VerifyReport`` listing what is damaged.

        ``progress(batches_checked, batches_total)`` is called as it goes.  Other
        threads and processes may keep using the log meanwhile.
        """
        self._check()
        check_callable("progress", progress)
        return verify(self._store, progress=progress)

    def dump(self, topic: str, partition: int, start_offset: int = 0,
             max_batches: int | None = None) -> DumpIterator:
        """Yield ``DumpBatch``es (header fields and records) of a partition from the batch
        holding ``start_offset``, for debugging; damaged batches come with ``error`` set."""
        self._check()
        if start_offset.__class__ is not int or not 0 <= start_offset < 2**63:
            raise InvalidOffsetError(f"start_offset must be an offset (an int from 0), got {start_offset!r}")
        if max_batches is not None:
            check_int("max_batches", max_batches, 1, 2**62)
        return dump(self._store, validate_name(topic), partition, start_offset, max_batches)

    def metrics(self) -> LogMetrics:
        """A ``embedlog.metrics.LogMetrics`` snapshot: per partition start/end offsets,
        records and bytes in, bytes on disk; per group committed offsets and lag; this
        process's producer and consumer rates."""
        from .metrics import snapshot  # noqa: PLC0415 - metrics load on first use

        return snapshot(self)

    # -- metadata cache for clients --------------------------------------------------------
    def _topic_meta(self, name: str, *, create: bool) -> TopicMeta:
        self._check()
        validate_name(name)
        meta = self._store.topic(name)
        if meta is None:
            if not (create and self.auto_create_topics):
                how = ("auto_create_topics creates topics for producers and consumers only"
                       if self.auto_create_topics else "or open the log with auto_create_topics=True")
                raise UnknownTopicError(f"topic {name!r} does not exist; create it with log.create_topic() ({how})")
            meta = self._store.ensure_topic(name, self.default_partitions, TopicConfig())
        return meta

    def _topic_for_produce(self, name: str) -> TopicMeta:
        return self._topic_meta(name, create=True)

    def _topic_for_consume(self, name: str) -> TopicMeta:
        return self._topic_meta(name, create=True)

    # -- waiting for records ---------------------------------------------------------------
    @property
    def data_generation(self) -> int:
        """A counter that moves whenever records may have arrived (from any process)."""
        return self._store.notifier.generation

    def wait_for_data(self, seen: int, timeout: float | None) -> int:
        """Block until ``data_generation`` moves past ``seen`` or ``timeout`` seconds pass;
        return the new generation.  For event loops and custom pollers."""
        self._check()
        if not isinstance(seen, int) or isinstance(seen, bool):
            raise ConfigError(f"seen must be an int (a data_generation), got {seen!r}")
        if timeout is None:
            timeout = math.inf
        elif not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or math.isnan(timeout):
            raise ConfigError(f"timeout must be a number of seconds or None (no limit), got {timeout!r}")
        return self._store.notifier.wait(seen, timeout)

    # -- consumer groups ---------------------------------------------------------------------
    def groups(self) -> list[str]:
        """Names of every consumer group this log knows: with members, with committed
        offsets, or whose members all left without committing (Kafka's "Empty" state,
        kept until ``delete_group``)."""
        self._check()
        return self._coordinator.groups()

    def describe_group(self, group: str) -> GroupDescription:
        """Members, their partitions, committed offsets, end offsets and lag per partition."""
        self._check()
        return self._coordinator.describe(validate_group(group))

    def reset_group_offsets(self, group: str, topic: str, to: object = "earliest") -> dict[TopicPartition, int]:
        """Set a group's committed offsets for ``topic``: ``"earliest"``, ``"latest"``, an
        offset, or a ``datetime``.  The group must have no live members.  A group that
        does not exist yet gets these offsets (as Kafka's ``--reset-offsets`` and
        ``alterConsumerGroupOffsets`` prepare a group before its consumers start)."""
        self._check()
        return self._coordinator.reset_offsets(validate_group(group), topic, to)

    def delete_group(self, group: str) -> None:
        """Delete a group's committed offsets and state (it must have no live members)."""
        self._check()
        self._coordinator.delete(validate_group(group))

    def commit_offsets(self, group: str,
                       offsets: Mapping[Any, int | OffsetAndMetadata | tuple[int, str | None]]) -> None:
        """Commit offsets for ``group`` by name (no member fencing); durable on return.

        The group must have no live members (``GroupError`` otherwise, as Kafka's
        ``alter_consumer_group_offsets``): its members commit through their consumers.
        Values: the next offset to read, or ``(offset, metadata)`` such as
        ``OffsetAndMetadata(42, "note")``."""
        self._check()
        if not isinstance(offsets, Mapping):
            raise ConfigError(f"offsets must be a mapping of TopicPartition to offset, got {offsets!r}")
        self._coordinator.commit(validate_group(group), {topic_partition(tp): off for tp, off in offsets.items()},
                                 None)

    def committed_offsets(self, group: str, partitions: Iterable[TopicPartition] | None = None
                          ) -> dict[TopicPartition, OffsetAndMetadata]:
        """A group's committed offsets, ``{TopicPartition: OffsetAndMetadata(offset,
        metadata, leader_epoch)}``, of every partition it committed (or of ``partitions``
        among them), like Kafka's ``list_consumer_group_offsets``: ``{}`` for a group
        that committed nothing.  Raises ``UnknownGroupError`` for a group this log does
        not know (``groups()`` does not list it)."""
        self._check()
        return self._coordinator.committed_offsets(validate_group(group), partitions)

    if TYPE_CHECKING:  # the options typed, for type checkers and IDEs (at run time: **options)
        def transaction(self, *, compression: str | None = None, linger_ms: float = 5, batch_size: int = 1 << 20,
                        buffer_records: int = 100_000, buffer_bytes: int = 32 << 20,
                        partitioner: str | Partitioner | None = None,
                        key_serializer: Callable[[Any], bytes] | None = None,
                        value_serializer: Callable[[Any], bytes] | None = None,
                        acks: str | int = "leader", delivery_timeout_ms: int = 120_000) -> Transaction:
            """A ``Transaction`` (the options are a ``Producer``'s): ``with log.transaction() as tx:``."""
    else:
        def transaction(self, **producer_options):
            """A ``Transaction`` (the options are a ``Producer``'s): ``with log.transaction() as tx:``."""
            self._check()
            _known_options(Producer, producer_options, "log.transaction()")
            return Transaction(self, **producer_options)

    def _claim_transactional_id(self, transactional_id: str) -> int:
        """Bump a transactional id's producer epoch (Kafka's ``InitProducerId``): every
        producer holding an older one, in any process, is fenced; return the new epoch."""
        self._check()
        store = self._store
        return store.write(lambda txn: producer_epochs.claim(txn, store.dbs, transactional_id))

    def _transactional_epoch(self, transactional_id: str) -> int:
        """A transactional id's current producer epoch (0: never claimed)."""
        self._check()
        store = self._store
        return store.read(lambda txn: producer_epochs.current(txn, store.dbs, transactional_id))

    # -- clients -----------------------------------------------------------------------------
    if TYPE_CHECKING:  # the options typed, for type checkers and IDEs (at run time: **options)
        def producer(self, *, compression: str | None = None, linger_ms: float = 5, batch_size: int = 1 << 20,
                     buffer_records: int = 100_000, buffer_bytes: int = 32 << 20,
                     partitioner: str | Partitioner | None = None,
                     key_serializer: Callable[[Any], bytes] | None = None,
                     value_serializer: Callable[[Any], bytes] | None = None,
                     acks: str | int = "leader", delivery_timeout_ms: int = 120_000) -> Producer:
            """A new ``Producer`` (see its docstring for the options)."""

        def consumer(self, topics: Iterable[str] | str | None = None, *, group: str | None = None,
                     auto_offset_reset: str = "latest", max_poll_records: int = 500,
                     enable_auto_commit: bool = True, auto_commit_interval_ms: int = 5000,
                     on_assign: RebalanceCallback | None = None, on_revoke: RebalanceCallback | None = None,
                     on_lost: RebalanceCallback | None = None, session_timeout_ms: int = 10_000,
                     heartbeat_interval_ms: int = 3000, max_poll_interval_ms: int = 300_000,
                     partition_assignment_strategy: str = "cooperative-sticky", client_id: str = "",
                     key_deserializer: Callable[[bytes], Any] | None = None,
                     value_deserializer: Callable[[bytes], Any] | None = None,
                     fetch_max_bytes: int = 4 << 20) -> Consumer:
            """A new ``Consumer`` of ``topics`` (see its docstring for the options)."""
    else:
        def producer(self, **options):
            """A new ``Producer`` (see its docstring for the options)."""
            self._check()
            _known_options(Producer, options, "log.producer()")
            return Producer(self, **options)

        def consumer(self, topics=None, **options):
            """A new ``Consumer`` of ``topics`` (see its docstring for the options)."""
            self._check()
            _known_options(Consumer, options, "log.consumer()")
            return Consumer(self, topics, **options)

    def _register(self, client: Any) -> None:
        self._clients.add(client)

    def _unregister(self, client: Any) -> None:
        self._clients.discard(client)

    # -- lifecycle --------------------------------------------------------------------------
    def _check(self) -> None:
        if self._closed:
            raise ClosedError("this log is closed; open it again with embedlog.open()")

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def close(self) -> None:
        """Flush producers, close clients and the store (idempotent).

        A log opened without a path is deleted.
        """
        with self._close_lock:
            if self._closed or self._closing:
                return
            self._closing = True
            for client in list(self._clients):
                with contextlib.suppress(Exception):  # closing must go on for the others
                    client.close()
            self._closed = True
            self._abandoned.detach()
            self._maint_stop.set()
            _release(self._shared)
            if self._remove_temporary is not None:
                self._remove_temporary()  # (once: the exit-time removal is then done)

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<embedlog.Log {self.path!r} {state}>"

    def __reduce_ex__(self, protocol: object) -> Any:
        raise ConfigError(f"an open log cannot be pickled or sent to another process; open the same directory "
                          f"there with embedlog.open({self.path!r}) (processes share a log through its directory)")


class _Shared:
    """One store per directory per process, shared by every ``Log`` opened on it.

    LMDB allows one environment per file per process, so a second ``embedlog.open`` of
    the same directory shares the first one's store, writer (group commit) and
    coordinator; the store closes with the last ``Log``.
    """

    def __init__(self, key: tuple[int, str], store: Store) -> None:
        self.key = key
        self.store = store
        self.committer = GroupCommitter(store)
        self.coordinator = Coordinator(store, self.committer)
        self.refs = 1


_SHARED: dict[tuple[int, str], _Shared] = {}
#: stores being closed (``_release``), set once closed
_CLOSING: dict[tuple[int, str], threading.Event] = {}
_SHARED_LOCK = threading.Lock()


_MAX_INTERVAL_MS = 86_400_000  # a background thread's longest interval: a day


def _checked_path(path: object) -> str:
    """``path`` as an absolute str the filesystem and LMDB take, or ``ConfigError``.
    Absolute: files found from it later (a forked child's reopened store, the wake-up
    sockets, group heartbeats) must not move with ``os.chdir``."""
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"path must be a directory path (str or os.PathLike) or None, got {path!r}")
    try:
        raw = os.fspath(path)
    except TypeError:
        raise ConfigError(f"path must be a directory path (str or os.PathLike) or None, got {path!r}") from None
    if isinstance(raw, bytes):
        raise ConfigError(f"path must be a str path, not bytes: decode it first, got {path!r}")
    text = str(raw)  # (a str subclass becomes a plain str: LMDB takes no other)
    if not text or "\x00" in text:
        raise ConfigError(f"path must be a non-empty directory path without NUL characters, got {path!r}")
    try:
        text.encode(sys.getfilesystemencoding(), "strict")
    except UnicodeEncodeError:
        raise ConfigError(f"path {path!r} cannot be encoded for the filesystem "
                          f"({sys.getfilesystemencoding()}); use a path of valid characters") from None
    return os.path.abspath(text)


def _acquire(path: str, *, durability: str, map_size: int | None, fsync_interval_ms: int,
             cross_process: bool) -> _Shared:
    key = (os.getpid(), os.path.realpath(path))
    while True:  # (a store of the path being closed: wait for it, as LMDB opens a file once per process)
        with _SHARED_LOCK:
            closing = _CLOSING.get(key)
            if closing is None:
                return _acquire_locked(key, path, durability=durability, map_size=map_size,
                                       fsync_interval_ms=fsync_interval_ms, cross_process=cross_process)
        closing.wait()


def _acquire_locked(key: tuple[int, str], path: str, *, durability: str, map_size: int | None,
                    fsync_interval_ms: int, cross_process: bool) -> _Shared:
    """(``_SHARED_LOCK`` held, no store of ``key`` closing) ``_acquire``."""
    shared = _SHARED.get(key)
    if shared is None:
        # A forked child inherits its parent's open stores: LMDB allows one environment
        # per file per process, so adopt the inherited one (it reopens itself on first use).
        inherited = [k for k in _SHARED if k[1] == key[1] and k[0] != key[0]]
        if inherited:
            shared = _SHARED.pop(inherited[0])
            shared.key = key
            _SHARED[key] = shared
    if shared is not None:
        if shared.store.env.durability != durability:
            raise ConfigError(
                f"{path!r} is already open in this process with durability={shared.store.env.durability!r}; "
                f"a second open must use the same mode, not {durability!r}")
        shared.refs += 1
        return shared
    store = Store(path, durability=durability, map_size=map_size, fsync_interval_ms=fsync_interval_ms,
                  cross_process=cross_process)
    shared = _SHARED[key] = _Shared(key, store)
    return shared


def _maintenance_loop(ref: weakref.ref[Log], stop: threading.Event, interval: float) -> None:
    """A log's background maintenance, every ``interval`` seconds until ``stop`` is set or
    the log is gone (it holds the log only while maintaining it)."""
    said = ""  # (the last failure logged: a failure that repeats is logged once)
    while not stop.wait(interval):
        log = ref()
        if log is None:
            return
        try:
            log.maintain()
        except ClosedError:
            return
        except Exception as exc:  # noqa: BLE001 - retried at the next interval; said once
            text = repr(exc)
            if text != said:
                said = text
                _log.warning("background maintenance of %s failed (retried every %.1f s; log.maintain() raises "
                             "it too): %s", log.path, interval, text)
        else:
            said = ""
        finally:
            del log


def _abandon(shared: _Shared, stop: threading.Event, path: str) -> None:
    """A ``Log`` collected without ``close()``: stop its thread and release its store."""
    stop.set()
    warnings.warn(f"embedlog log {path!r} was never closed; close() it or open it with `with` "
                  "(it is closed now that nothing refers to it)", ResourceWarning, stacklevel=1)
    _release(shared)


def _release(shared: _Shared) -> None:
    with _SHARED_LOCK:
        shared.refs -= 1
        if shared.refs > 0:
            return
        key = shared.key
        if _SHARED.get(key) is shared:
            del _SHARED[key]
        # until the store is closed (its last sync can take a while), an open of the path
        # in this process waits for it: LMDB refuses a second environment of one file
        closed = _CLOSING[key] = threading.Event()
    try:
        shared.store.close()
    finally:
        with _SHARED_LOCK:
            if _CLOSING.get(key) is closed:
                del _CLOSING[key]
        closed.set()


def _known_options(cls: type, options: Mapping[str, Any], call: str) -> None:
    """``ConfigError`` naming the options ``cls`` does not take (Kafka clients refuse an
    unknown configuration property the same way), instead of Python's ``TypeError``."""
    known = _OPTIONS.get(cls)
    if known is None:
        params = inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
        known = _OPTIONS[cls] = frozenset(p.name for p in params if p.kind is p.KEYWORD_ONLY
                                          and not p.name.startswith("_"))
    unknown = sorted(set(options) - known - {k for k in options if k.startswith("_")})
    if unknown:
        raise ConfigError(f"{call} has no option {', '.join(map(repr, unknown))}; "
                          f"its options are {', '.join(sorted(known))}")


_OPTIONS: dict[type, frozenset[str]] = {}


if TYPE_CHECKING:  # the options typed, for type checkers and IDEs (at run time: **options)
    def open(path: str | os.PathLike[str] | None = None, *, durability: str | None = None,  # noqa: A001
             auto_create_topics: bool = False, default_partitions: int = 1, fsync_interval_ms: int = 1000,
             maintenance_interval_ms: int | None = 30_000, map_size: int | None = None,
             offsets_retention_ms: int | None = None) -> Log:
        """Open (creating if missing) the log directory ``path``; no path: a temporary log.

        Options: ``durability`` (``"flush"``, the default; ``"interval"``; ``"none"``, the
        default of a temporary log, which nothing reads after a crash),
        ``auto_create_topics``, ``default_partitions``, ``fsync_interval_ms``,
        ``maintenance_interval_ms`` (``None`` turns background retention off),
        ``offsets_retention_ms`` (Kafka's ``offsets.retention``: committed offsets of groups
        without live members expire; ``None``, the default, keeps them).
        """
else:
    def open(path=None, **options):  # noqa: A001 - like sqlite3.connect
        """Open (creating if missing) the log directory ``path``; no path: a temporary log.

        Options: ``durability`` (``"flush"``, the default; ``"interval"``; ``"none"``, the
        default of a temporary log, which nothing reads after a crash),
        ``auto_create_topics``, ``default_partitions``, ``fsync_interval_ms``,
        ``maintenance_interval_ms`` (``None`` turns background retention off),
        ``offsets_retention_ms`` (Kafka's ``offsets.retention``: committed offsets of groups
        without live members expire; ``None``, the default, keeps them).
        """
        _known_options(Log, options, "embedlog.open()")
        return Log(path, **options)
