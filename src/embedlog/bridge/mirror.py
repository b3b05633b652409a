"""``Mirror``: one background thread that keeps copying topics between embedlog and Kafka,
reconnecting with backoff while the link is down."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import BridgeError, ClosedError, ConfigError, EmbedlogError, LinkDownError
from ..groups.coordinator import validate_group
from ..storage import mirrors
from ._engine import Engine
from ._kafka import LinkState, confluent
from .down import DownEngine
from .status import MirrorStatus, PartitionStatus
from .up import Reopen, Resync, Stopped, UpEngine, pending_partitions, seed_progress, stored_partitions

__all__ = ["Mirror", "forget_mirror"]

_DIRECTIONS = ("up", "down")


class Mirror:
    """Copies ``topics`` between ``log`` and the Kafka cluster of ``config``.

    ``direction="up"``: embedlog -> Kafka (librdkafka's idempotent producer; every record
    carries an ``embedlog.source`` header, and a restart reads the tail of each remote
    partition to resume exactly — see ``embedlog.bridge.up``).  ``direction="down"``:
    Kafka -> embedlog, each batch with its Kafka offsets in one embedlog transaction.

    ``config``: librdkafka properties (``bootstrap.servers``, ``security.protocol``,
    ``sasl.*``, ...).  ``name`` identifies the mirror's progress (for ``up``, an embedlog
    consumer group of that name); one ``Mirror`` of a name runs on a log at a time.
    ``topic_map`` renames (source name -> target name).  ``start``: where a mirror with no
    progress begins, ``"earliest"`` or ``"latest"`` (the log's end when ``start()`` runs: an
    up mirror records that at once, so what is written while Kafka does not answer yet is
    forwarded, and ``status()``, ``embedlog bridge status`` and the metrics show it as lag).
    librdkafka's log lines go to the Python logger ``embedlog.bridge.kafka`` (silent unless
    the application configures logging; a ``logger`` or ``log_level`` in ``config`` wins).

    A context manager: entering starts the background thread, leaving stops it (after a
    last checkpoint when the link allows).  ``run(timeout)`` blocks while it works.
    """

    def __init__(self, log: Any, config: Mapping[str, Any], topics: Iterable[str], direction: str = "up",
                 name: str = "embedlog-mirror", *, topic_map: Mapping[str, str] | None = None,
                 start: str = "earliest", batch_size: int = 10_000, checkpoint_interval_ms: int = 1000,
                 reconnect_backoff_ms: int = 200, reconnect_backoff_max_ms: int = 10_000,
                 stall_timeout_ms: int = 10_000, request_timeout_ms: int = 10_000) -> None:
        confluent()  # fail now, with how to install it, if confluent-kafka is missing
        if direction not in _DIRECTIONS:
            raise ConfigError(f"direction must be 'up' or 'down', got {direction!r}")
        if start not in ("earliest", "latest"):
            raise ConfigError(f"start must be 'earliest' or 'latest', got {start!r}")
        _check_name(name)
        if not callable(getattr(log, "_check", None)) or not hasattr(log, "_store"):
            raise ConfigError(f"log must be an open embedlog.Log (from embedlog.open()), got {log!r}")
        if isinstance(topics, (bytes, Mapping)) or not isinstance(topics, (str, Iterable)):
            raise ConfigError(f"topics must be a non-empty list of topic names, got {topics!r}")
        if topic_map is not None and not (isinstance(topic_map, Mapping) and all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in topic_map.items())):
            raise ConfigError(f"topic_map must map topic names to non-empty topic names, got {topic_map!r}")
        topic_list = [topics] if isinstance(topics, str) else list(topics)
        if not topic_list or not all(isinstance(t, str) and t for t in topic_list):
            raise ConfigError(f"topics must be a non-empty list of topic names, got {topics!r}")
        tmap = dict(topic_map or {})
        strays = sorted(set(tmap) - set(topic_list), key=str)
        if strays:  # (a typo in a name would mirror the topic under its own name, silently)
            raise ConfigError(f"topic_map renames {', '.join(map(repr, strays))}, not among the topics mirrored "
                              f"({', '.join(map(repr, topic_list))}); fix the name, or mirror that topic too")
        targets = [tmap.get(t, t) for t in topic_list]
        if len(set(targets)) != len(targets):
            raise ConfigError(f"two topics would be mirrored into one: {topic_list} -> {targets}; "
                              "give each its own target in topic_map")
        for label, value in (("batch_size", batch_size), ("checkpoint_interval_ms", checkpoint_interval_ms),
                             ("reconnect_backoff_ms", reconnect_backoff_ms),
                             ("reconnect_backoff_max_ms", reconnect_backoff_max_ms),
                             ("stall_timeout_ms", stall_timeout_ms), ("request_timeout_ms", request_timeout_ms)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{label} must be a positive int, got {value!r}")
        if direction == "up":
            missing = [t for t in topic_list if t not in log.topics()]
            if missing:
                from ..errors import UnknownTopicError  # noqa: PLC0415

                raise UnknownTopicError(f"no local topic {missing[0]!r} to mirror up; create it first "
                                        "(embedlog topics create, or log.create_topic)")
        self.log = log
        if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
            raise ConfigError(f"config must be a mapping of librdkafka property names to values, e.g. "
                              f"{{'bootstrap.servers': 'host:9092'}}, got {config!r}")
        self.config = dict(config)
        self.topics = topic_list
        self.direction = direction
        self.name = name
        self.topic_map = tmap
        self.start_from = start
        self.batch_size = batch_size
        self.checkpoint_s = checkpoint_interval_ms / 1000
        self.backoff_s = reconnect_backoff_ms / 1000
        self.backoff_max_s = reconnect_backoff_max_ms / 1000
        self.stall_s = stall_timeout_ms / 1000
        self.timeout_s = request_timeout_ms / 1000
        self.link = LinkState(on_change=lambda: self._report(running=True))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: set when the thread's work is over (waited on instead of ``Thread.join``: on
        #: Python 3.11 a join that Ctrl-C interrupts marks the thread stopped while it
        #: still runs, and later joins return at once)
        self._finished = threading.Event()
        self._engine: Engine | None = None
        self._error: EmbedlogError | None = None
        self._lock_fd: int | None = None
        self._records = 0
        self._closed = False
        self._last_report = 0.0
        self._stop_timeout = 10.0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the background thread (no-op if running)."""
        if self._closed:
            raise ClosedError("this Mirror is closed; make a new one")
        if self._thread is not None:
            return
        store = self.log._store
        # (a replica takes its committed offsets, the bridge's progress, and its records from its leader)
        store.read(lambda txn: store.require_leader(txn, "run a Kafka bridge"))
        self._take_lock()
        try:
            if self.direction == "up":  # the lag of what waits is visible (status, metrics) before Kafka answers
                seed_progress(self.log, self.name, self.topics, self.topic_map, self.start_from)
        except BaseException:
            self._release_lock()
            raise
        self._report(running=True)  # (link down until the cluster answers)
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run_main, args=(self._finished,),
                                        name=f"embedlog-mirror-{self.name}", daemon=True)
        self._thread.start()

    def _run_main(self, finished: threading.Event) -> None:
        try:
            self._main()
        finally:
            finished.set()

    def run(self, timeout: float | None = None) -> None:
        """Mirror in the background for ``timeout`` seconds (``None``: until ``stop()`` or
        Ctrl-C), blocking the caller; raise the error that stopped the mirror, if any."""
        started_here = self._thread is None
        self.start()
        assert self._thread is not None
        try:
            self._finished.wait(timeout)
        finally:
            if started_here and timeout is not None:
                self.stop()
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread: a last checkpoint when Kafka answers within ``timeout``."""
        self._stop_timeout = timeout
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and self._finished.wait(timeout + self.timeout_s + 5):
            thread.join(1.0)  # (its last steps after the work: the Event set)
        self._report(running=False)
        self._release_lock()

    def close(self) -> None:
        """``stop()``, and refuse to start again."""
        self.stop()
        self._closed = True

    def __enter__(self) -> Mirror:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for_link(self, timeout: float) -> None:
        """Block until the cluster answered once; raise ``LinkDownError`` (with librdkafka's
        last error) after ``timeout`` seconds, or the error that stopped the mirror."""
        deadline = time.monotonic() + timeout
        while not self.link.up:
            if self._error is not None:
                raise self._error
            if time.monotonic() > deadline:
                raise LinkDownError(f"cannot reach Kafka at {self.config.get('bootstrap.servers')} within "
                                    f"{timeout:g} s: {self.link.last_error or 'no answer'}")
            time.sleep(0.05)

    def wait_caught_up(self, timeout: float) -> None:
        """Block until every record in the source now is mirrored (``up``: acknowledged by
        Kafka and checkpointed; ``down``: written to embedlog); ``TimeoutError`` after
        ``timeout`` seconds, or the error that stopped the mirror."""
        deadline = time.monotonic() + timeout
        target: dict[tuple[str, int], int] = {}
        while True:
            if self._error is not None:
                raise self._error
            if not target and self._engine is not None:  # the engine has opened: fix the target now
                if self.direction == "down":
                    self._engine.idle_probe()
                target = {(p.topic, p.partition): p.source_end for p in self._engine.partitions()}
            st = self.status()
            rows = {(p.topic, p.partition): p.mirrored for p in st.partitions}
            if target and all(rows.get(k, -1) >= v for k, v in target.items()):
                return
            if time.monotonic() > deadline:
                raise LinkDownError(f"mirror {self.name!r} did not catch up within {timeout:g} s "
                                    f"(lag {st.lag}, link {'up' if st.link_up else 'down'})")
            time.sleep(0.05)

    # -- reporting ----------------------------------------------------------------------
    def status(self) -> MirrorStatus:
        """Per partition: source end offset, mirrored offset, lag; the link; counters."""
        engine = self._engine
        if engine is not None:
            rows: list[PartitionStatus] = engine.partitions()
            lost = sum(engine.lost.values())
        elif self.direction == "up":  # every local partition, and what waits in it for the link
            rows, lost = pending_partitions(self.log, self.name, self.topics, self.topic_map)
        else:  # only what the log knows of Kafka's partitions (their progress)
            rows, lost = stored_partitions(self.log, self.name, self.direction)
        return MirrorStatus(self.name, self.direction, self._thread is not None and not self._finished.is_set(),
                            self.link.up, tuple(rows), self._records + (engine.sent_total if engine else 0),
                            lost, self.link.last_error, None if self._error is None else str(self._error))

    def _report(self, running: bool) -> None:
        self._last_report = time.monotonic()
        link = mirrors.MirrorLink(self.name, self.direction, self.link.up, os.getpid(), time.time_ns() // 1_000_000,
                                  self.link.last_error if self._error is None else str(self._error), running)
        with contextlib.suppress(OSError):  # a read-only or vanished directory: status files are advisory
            mirrors.write_link(self.log.path, link)

    # -- the thread ---------------------------------------------------------------------
    def _make_engine(self) -> Engine:
        cls = UpEngine if self.direction == "up" else DownEngine
        return cls(self.log, self.config, self.topics, self.topic_map, self.name, self.link, self.batch_size,
                   self.start_from, self.timeout_s, self._stop)

    def _main(self) -> None:
        backoff = self.backoff_s
        refused = False  # the last session ended in a refused delivery (Resync)
        while not self._stop.is_set():
            engine = self._make_engine()
            try:
                engine.open()
                self._engine = engine
                backoff = self.backoff_s
                self._loop(engine)
                return
            except Reopen:
                continue  # (at once: nothing is wrong with the link; the finally closed the engine)
            except Resync as exc:
                if refused and not engine.progressed:  # started over from what Kafka holds: refused again
                    self._fail(BridgeError(
                        f"{exc}, again after starting over from what Kafka holds: the cluster refuses them for good "
                        "(a record without a key to a compacted topic, a timestamp out of the topic's "
                        "message.timestamp.* range, ...); change the topic's config on the cluster and start the "
                        "mirror again (what Kafka holds is not sent twice)"))
                    return
                refused = True
                self.link.down(str(exc))
            except LinkDownError as exc:
                refused = refused and not engine.progressed
                self.link.down(str(exc))
            except Stopped:
                return
            except EmbedlogError as exc:
                self._fail(exc)
                return
            except Exception as exc:  # noqa: BLE001 - a bug must stop the mirror visibly, not silently
                self._fail(BridgeError(f"the bridge failed: {type(exc).__name__}: {exc}"))
                return
            finally:
                if self._engine is engine:
                    self._records += engine.sent_total
                    self._engine = None
                engine.close()
            self._report(running=True)
            # (reporting every second while it waits: a report older than LINK_STALE_MS
            # means a bridge that stopped, and the backoff may be as long)
            until = time.monotonic() + backoff
            while not self._stop.wait(max(0.0, min(1.0, until - time.monotonic()))) and time.monotonic() < until:
                self._report(running=True)
            backoff = min(backoff * 2, self.backoff_max_s)

    def _fail(self, error: EmbedlogError) -> None:
        """The mirror stops on ``error``: its link is down from now on (nothing talks to
        the cluster any more), and ``status().error`` says why."""
        self._error = error
        self.link.down(str(error))
        self._report(running=False)

    def _loop(self, engine: Engine) -> None:
        next_checkpoint = time.monotonic() + self.checkpoint_s
        next_probe = time.monotonic() + 2.0
        self._report(running=True)
        while not self._stop.is_set():
            if self.link.fatal is not None:
                raise self.link.fatal
            n = engine.step(self._stop)
            now = time.monotonic()
            if now >= next_checkpoint or (n == 0 and engine.dirty):
                engine.checkpoint(stop=self._stop, stall_s=self.stall_s)
                next_checkpoint = time.monotonic() + self.checkpoint_s
            if n == 0 and now >= next_probe:
                engine.idle_probe()
                next_probe = now + 2.0
            if now - self._last_report >= 1.0:
                self._report(running=True)
        # stopping: make what was sent durable progress, if Kafka answers in time
        give_up = threading.Event()
        timer = threading.Timer(self._stop_timeout, give_up.set)
        timer.start()
        try:
            engine.checkpoint(stop=give_up, stall_s=self.stall_s)
        finally:
            timer.cancel()

    # -- one Mirror of a name per log ----------------------------------------------------
    def _take_lock(self) -> None:
        self._lock_fd = _lock_mirror(self.log.path, self.name, "or give this one another name")

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _check_name(name: object) -> None:
    """``ConfigError`` unless ``name`` can name a mirror."""
    if not isinstance(name, str) or not name or "\x00" in name or name.startswith(mirrors.SOURCE_PREFIX):
        raise ConfigError(f"name must be a non-empty str without control characters, got {name!r}")
    try:
        validate_group(name)  # (its progress is kept in the consumer group named after it)
    except ConfigError as exc:
        raise ConfigError(f"{name!r} cannot name a mirror, whose progress is the consumer group of its name: "
                          f"{exc}") from None


def _lock_mirror(log_path: str, name: str, advice: str = "") -> int:
    """Take the lock that one ``Mirror`` of ``name`` holds while it runs on the log at
    ``log_path``; return its fd (closing it releases the lock).  ``BridgeError`` if
    another holds it."""
    folder = os.path.join(log_path, "mirrors")
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, f"{mirrors.file_stem(name)}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BridgeError(f"mirror {name!r} already runs on this log (another process or Mirror); stop it first"
                          + (f", {advice}" if advice else "")) from None
    return fd


def forget_mirror(log: Any, name: str, direction: str | None = None) -> int:
    """Retire the mirror ``name`` for good: delete its recorded progress (``direction``
    ``"up"``: what it has sent to Kafka, held in the consumer group named after it;
    ``"down"``: its Kafka source offsets; ``None``: both) and its link status, so that
    ``embedlog bridge status``, the group listings and the lag metrics no longer show
    it.  A mirror of that name started later begins afresh, from its ``start``.  Return
    how many partitions' progress went.  ``BridgeError`` while the mirror runs."""
    from ..log import Log  # noqa: PLC0415 - the client layer imports the bridge lazily

    if not isinstance(log, Log):
        raise ConfigError(f"log must be an embedlog.Log, got {log!r}")
    _check_name(name)
    if direction not in (None, *_DIRECTIONS):
        raise ConfigError(f"direction must be 'up', 'down' or None (both), got {direction!r}")
    log._check()
    fd = _lock_mirror(log.path, name)
    try:
        store = log._store

        def fn(txn: Any) -> int:
            store.require_leader(txn, "forget a mirror")  # (a replica's progress is the leader's)
            return mirrors.forget(txn, store.dbs, name, direction)

        gone = int(store.write(fn))
        if direction is None or not store.read(lambda txn: mirrors.mirror_entries(txn, store.dbs, name)):
            mirrors.remove_link(log.path, name)
        return gone
    finally:
        os.close(fd)
