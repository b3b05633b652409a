"""The LMDB environment: opening, durability modes, map growth, fork safety, errors.

Rules this module keeps (py-lmdb's documentation):

* every transaction is short and lives in a ``with`` block; no buffer outlives it;
* the map grows (doubling) on ``MapFullError`` with no transaction of this process open
  (a readers-writer gate), and other processes adopt the new size on
  ``MapResizedError``;
* an environment is never used across ``fork()``: a child process gets its own on first
  use;
* no ``lmdb.Error`` escapes: it becomes a ``StorageError``/``DiskFullError``.

Durability modes (``durability=`` of ``embedlog.open``):

``"flush"`` (default)
    Each write transaction is on disk before ``write`` returns — hence ``flush()``,
    offset commits, transactions, topic changes.  Survives kill -9, OS crash and power
    loss.  LMDB runs with ``MDB_NOMETASYNC``: its commit writes the transaction's pages
    and ``fdatasync``s them, then writes the meta page that makes the commit current
    (and visible to readers in every process) without syncing it; ``write`` then
    ``fdatasync``s again, which puts that meta page on disk too.  The same two syncs as
    LMDB's full sync, but the second is ours to place: a write passed
    ``durable=False`` skips it (the next commit's first sync, or ``make_durable``,
    covers it), and an append makes its records durable after handing them to a
    replication leader's followers (``make_durable``), so the leader's second sync
    overlaps their way to the followers.  A producer's background write (linger, a
    full buffer) skips it: the next ``flush()`` makes it (``make_durable_if_needed``).
    Another process's later commit puts the meta page on disk too; the processes of a
    log tell one another what is on disk already through ``sync.board``
    (``syncboard.py``), so concurrent flushes of several processes share that second
    sync.  A power loss before that second sync can undo the last commit only, never damage the
    store (LMDB's guarantee for ``MDB_NOMETASYNC``; it keeps the two previous snapshots'
    pages intact).  So a reader can see a commit up to one device flush before it is
    durable, as with LMDB's full sync, where the meta page is visible while it is being
    synced.
``"interval"``
    Commits are not synced; a background thread syncs every ``fsync_interval_ms``.
``"none"``
    Commits are never synced by embedlog (the OS writes them back in its own time).

In every mode a committed transaction is in the OS page cache, so a ``kill -9`` of the
process never loses it and never corrupts the store.  In ``"interval"`` and ``"none"``
an OS crash or power loss can lose recent commits and, as LMDB documents for
``MDB_NOSYNC``, can damage the store.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import lmdb

from ..errors import (
    ClosedError,
    ConfigError,
    DamagedStoreError,
    DiskFullError,
    EmbedlogError,
    FormatVersionError,
    StorageError,
)
from .schema import DB_NAMES, FORMAT_VERSION, META_FORMAT_VERSION, U32LE
from .syncboard import SHARE_WAIT_S, SyncBoard

__all__ = ["DURABILITY_MODES", "Env"]

_MADV_DONTNEED = 4


def _load_madvise() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        fn.restype = ctypes.c_int
        return fn
    except (OSError, AttributeError):
        return None


_MADVISE = _load_madvise()

T = TypeVar("T")
_PID = os.getpid()  # this process's id, kept current by the fork hook below


#: the environments open in this process (``_before_fork`` holds their transactions back)
_LIVE: weakref.WeakSet[Env] = weakref.WeakSet()
#: how long a fork waits for transactions under way (one the forking thread holds never ends)
_FORK_WAIT_S = 1.0
_HELD: list[Any] = []  # gates held exclusively across a fork, released after it


def _before_fork() -> None:
    """Let no transaction be under way at the fork: a child inherits the transaction
    objects of the parent's threads (never freed there: those threads do not exist in
    the child), which keep the parent's environment object alive, and py-lmdb refuses to
    open the same files twice in one process — so the child could not use the log
    while a parent thread was reading at the fork.  (Transactions drop their last
    reference before they leave the gate, and enter it before taking the handle.)"""
    for env in list(_LIVE):
        if env._env is None or env._pid != _PID:
            continue
        gate = env._gate
        if gate.hold_for_fork(_FORK_WAIT_S):
            _HELD.append(gate)


def _after_fork_in_parent() -> None:
    held = _HELD[:]
    _HELD.clear()
    for gate in held:
        gate.release_after_fork()


def _after_fork_in_child() -> None:
    global _PID  # noqa: PLW0603 - read on every transaction: a module global is the cheapest lookup
    _PID = os.getpid()
    _HELD.clear()
    for env in list(_LIVE):
        # Drop the parent's environment now (the next use opens this process's own), a
        # closed one's too, so that a new Log of the directory may open it; and a new gate
        # (one the fork left held, or mid-change, would block the child for good).
        env._env = None
        env.dbs.clear()
        env._syncer = None
        env._gate = _Gate()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def current_pid() -> int:
    """This process's id without a system call (every commit asks, to notice a fork);
    current in the child of ``os.fork()``, which runs the hook."""
    return _PID


DURABILITY_MODES = ("flush", "interval", "none")
_INITIAL_MAP = 1 << 30
_MAX_READERS = 1024
#: seconds between a writer's looks for reader slots of dead processes: a process killed
#: inside a read transaction leaves its slot, and its snapshot would keep every page freed
#: since from being reused (a log under retention would grow without bound)
_READER_CHECK_S = 0.25
#: how often a flush waiting for another process's commit looks at the sync board
_SHARE_POLL_S = 0.00005
_RESIZE_TRIES = 50  # begins retried while other processes keep growing the map


def _nearly_full(path: str) -> bool:
    try:
        return shutil.disk_usage(path).free < (1 << 20)
    except OSError:
        return False


def _size_limit_reached(path: str) -> int | None:
    """The process's file-size limit (``ulimit -f``, ``RLIMIT_FSIZE``) when ``data.mdb``
    in ``path`` is within 1 MiB of it (a write past it is short: LMDB says EIO), else None."""
    try:
        import resource  # noqa: PLC0415 - Unix only, and only on this error path

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        size = os.path.getsize(os.path.join(path, "data.mdb"))
    except (ImportError, OSError, ValueError):
        return None
    return int(limit) if size + (1 << 20) >= limit else None


#: LMDB's errors for a damaged file (BadChecksumError: py-lmdb 3 only)
_DAMAGE: tuple[type[lmdb.Error], ...] = tuple(
    getattr(lmdb, name) for name in ("CorruptedError", "InvalidError", "PageNotFoundError", "BadChecksumError")
    if hasattr(lmdb, name))


def translate(exc: lmdb.Error, what: str, path: str | None = None) -> StorageError:
    """Turn an ``lmdb.Error`` into our error tree."""
    text = str(exc)
    full: tuple[str, ...] = ("No space left", "File too large", "Disk quota exceeded")
    if "Input/output error" in text and path is not None:
        limit = _size_limit_reached(path)
        if limit is not None:
            return DiskFullError(f"{what}: the data file reached this process's file-size limit ({limit:,} bytes, "
                                 "ulimit -f); raise the limit or free space in the log (retention), then retry the "
                                 "call — nothing of it was written (the records a producer's write carried are not "
                                 "kept: send them again), nothing earlier was lost")
        if _nearly_full(path):
            full = (text,)  # LMDB reports a short write of a full disk as EIO
    if any(f in text for f in full) or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return DiskFullError(f"{what}: the disk is full ({text}); free space, then retry "
                             "the call — nothing of it was written (the records a producer's write carried "
                             "are not kept: send them again), nothing earlier was lost")
    if isinstance(exc, _DAMAGE):
        return DamagedStoreError(f"{what}: the log's LMDB file is damaged ({text}): restore the log from a replica "
                                 "(embedlog follow) or a backup; `embedlog dump` may still read some partitions")
    if isinstance(exc, lmdb.ReadersFullError):
        return StorageError(f"{what}: all {_MAX_READERS} LMDB reader slots of this log are taken by live "
                            "transactions (threads or processes reading it now); close consumers, logs or "
                            "processes you no longer need, then retry (slots of dead processes are freed)")
    return StorageError(f"{what}: {text}")


_CLOSED = "this log is closed; open it again with embedlog.open()"


#: how long ``Env.close`` waits for transactions under way before closing regardless
_CLOSE_WAIT_S = 5.0


class _Gate:
    """A readers-writer gate: transactions enter shared, map resizing enters exclusive.

    Entering and leaving take the bare lock (no ``Condition.__enter__`` in Python) and
    notify only while a resize waits: every transaction pays this twice.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._active = 0
        self._exclusive = False

    def enter(self) -> None:
        with self._lock:
            while self._exclusive:
                self._cond.wait()
            self._active += 1

    def leave(self) -> None:
        with self._lock:
            if self._active > 0:  # (0: a transaction begun before a fork ends in the child, whose gate is new)
                self._active -= 1
            if self._exclusive and self._active == 0:
                self._cond.notify_all()

    def hold_for_fork(self, timeout: float) -> bool:
        """Keep new transactions out and wait up to ``timeout`` seconds for those under way
        (``release_after_fork`` ends it); ``False`` (nothing held) if another holder
        (a map resize) does not let go in time — a fork must never wait for good."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._exclusive:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self._exclusive = True
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        return True

    def release_after_fork(self) -> None:
        with self._lock:
            self._exclusive = False
            self._cond.notify_all()

    @contextmanager
    def exclusive(self, timeout: float | None = None) -> Iterator[None]:
        """Wait until no transaction is under way (at most ``timeout`` seconds for them,
        then go on regardless: see ``Env.close``) and keep new ones out meanwhile."""
        with self._lock:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._active:
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        try:
            yield
        finally:
            with self._lock:
                self._exclusive = False
                self._cond.notify_all()


class _Read:
    """``Env.read()``: a read transaction as a plain context manager (cheaper than a
    generator-based one on this per-poll path)."""

    __slots__ = ("_env", "_txn")

    def __init__(self, env: Env) -> None:
        self._env = env
        self._txn: lmdb.Transaction | None = None

    def __enter__(self) -> lmdb.Transaction:
        env = self._env
        gate = env._gate
        gate.enter()  # (before taking the handle: a thread a fork holds back here keeps no reference to it)
        try:
            handle = env._handle()
            try:
                txn = env._begin(handle, write=False)
            except lmdb.ReadersFullError:
                # Slots of readers that died (kill -9) stay taken until someone clears
                # them: do it now and try once more (a table full of live readers stays
                # an error).
                with contextlib.suppress(lmdb.Error):
                    handle.reader_check()
                txn = handle.begin(write=False, buffers=True)
        except lmdb.Error as exc:
            gate.leave()
            raise env.failed(exc, f"reading {env.path!r}") from None
        except BaseException:
            gate.leave()
            raise
        self._txn = txn
        return txn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        txn = self._txn
        self._txn = None
        gate = self._env._gate
        try:
            if txn is not None:
                txn.abort()
        except lmdb.Error as err:
            if exc is None:
                raise self._env.failed(err, f"reading {self._env.path!r}") from None
        finally:
            txn = None  # (no reference left once out of the gate: see _before_fork)
            gate.leave()
        if isinstance(exc, lmdb.Error):
            raise self._env.failed(exc, f"reading {self._env.path!r}") from None


def _check_length(env: lmdb.Environment, data_file: str) -> None:
    """``DamagedStoreError`` if ``data.mdb`` is shorter than the pages its current snapshot
    uses (a truncated copy, say): reading them would kill the process with SIGBUS."""
    try:
        last = env.info()["last_pgno"]  # (before the file's size: pages are written before the meta)
        need = (last + 1) * env.stat()["psize"]
        size = os.path.getsize(data_file)
    except (lmdb.Error, OSError):
        return
    if size < need:
        raise DamagedStoreError(f"{data_file} is {size:,} bytes but its last snapshot uses {need:,}: the file was "
                           "truncated (an interrupted copy?); restore the log directory from a backup or a replica")


#: bytes ``lock.mdb`` is given before LMDB maps it: its reader table for ``_MAX_READERS``
#: readers (64 bytes each) and its header, rounded up (LMDB uses a larger file as it is)
_LOCK_FILE_BYTES = (_MAX_READERS * 64 + 8192 + 4095) // 4096 * 4096


def _reserve_lock_file(path: str) -> None:
    """Allocate a new (or empty) ``lock.mdb``'s blocks before LMDB maps it.  LMDB makes
    a lock file with ``ftruncate`` (a file of holes) and writes it through its map: on
    a full disk that write killed the process with SIGBUS; here it is a
    ``DiskFullError``.  A lock file LMDB sized already is left as it is (an existing log
    must still open on a nearly full disk, to delete records and free space)."""
    lock = os.path.join(path, "lock.mdb")
    try:
        if os.path.getsize(lock) > 0:
            return
    except OSError:
        pass  # (none yet)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return  # (a directory not made yet, or read-only: LMDB says what is wrong)
    try:
        os.posix_fallocate(fd, 0, _LOCK_FILE_BYTES)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise DiskFullError(f"opening log directory {path!r}: the disk is full (no room for its "
                                f"{_LOCK_FILE_BYTES // 1024} KiB lock file); free space, then open it again") from None
        # (a filesystem without fallocate: LMDB sizes the file itself)
    finally:
        os.close(fd)


def _foreign_keys(env: lmdb.Environment) -> list[bytes]:
    """Keys of the main database that are not embedlog's named databases: another
    application's environment (an embedlog log's holds its databases' names only)."""
    names = {name.encode() for name in DB_NAMES}
    for attempt in range(_RESIZE_TRIES):
        try:
            out: list[bytes] = []
            with env.begin() as txn, txn.cursor() as cur:
                for key in cur.iternext(values=False):
                    if bytes(key) not in names:
                        out.append(bytes(key))
                        if len(out) > 3:
                            break
            return out
        except lmdb.MapResizedError:  # (another process grew the map meanwhile)
            if attempt == _RESIZE_TRIES - 1:
                raise
            env.set_mapsize(0)
    return []


def other_format_error(path: str, version: int) -> FormatVersionError:
    """The error for a log of storage format ``version``, not this release's."""
    advice = ("Upgrade embedlog to open it" if version > FORMAT_VERSION else
              "it was written by an earlier embedlog: open it with that release, or copy its records into a new "
              "log with it (embedlog consume ... | embedlog produce ...)")
    return FormatVersionError(f"{path!r} has storage format version {version}; this embedlog reads version "
                              f"{FORMAT_VERSION}. {advice}")


def _other_format(env: lmdb.Environment) -> int | None:
    """The format version an embedlog ``meta`` database of ``env`` holds when it is not
    this release's (None: none, or this one's)."""
    try:
        meta = env.open_db(b"meta", create=False)
        with env.begin() as txn:
            raw = txn.get(META_FORMAT_VERSION, db=meta)
    except lmdb.Error:
        return None
    if raw is None or len(raw) != U32LE.size:
        return None
    version = int(U32LE.unpack(bytes(raw))[0])
    return None if version == FORMAT_VERSION else version


class Env:
    """One process's handle on a log directory's LMDB environment. Thread-safe."""

    def __init__(self, path: str, *, durability: str = "flush", map_size: int | None = None,
                 fsync_interval_ms: int = 1000) -> None:
        if durability not in DURABILITY_MODES:
            raise ConfigError(f"durability must be one of {', '.join(DURABILITY_MODES)}, got {durability!r}")
        self.path = path
        self.durability = durability
        self._sync_commits = durability == "flush"  # (each durable write fsyncs its meta page itself)
        #: a ``durable=False`` write of this process committed since the last sync began
        self._unsynced = False
        #: ``durability="flush"``: the log's ``sync.board`` (None without one)
        self._board: SyncBoard | None = None
        #: meta-page syncs made, and skipped because another commit's sync covered them
        self.syncs_made = 0
        self.syncs_shared = 0
        self._initial_map = map_size or _INITIAL_MAP
        self._fsync_interval = fsync_interval_ms / 1000.0
        self._gate = _Gate()
        self._next_reader_check = 0.0  # (monotonic) see _READER_CHECK_S
        self._pid = -1
        self._env: lmdb.Environment | None = None
        self.dbs: dict[str, Any] = {}
        self._closed = False
        self._syncer: threading.Thread | None = None
        self._stop = threading.Event()
        self._open()

    # -- lifecycle -------------------------------------------------------------
    def _open(self) -> None:
        data_file = os.path.join(self.path, "data.mdb")
        size = os.path.getsize(data_file) if os.path.exists(data_file) else 0
        map_size = max(self._initial_map, 2 * size)
        sync = self.durability == "flush"
        _reserve_lock_file(self.path)
        try:
            # The OS's readahead stays on: records are read in order, batch after batch, each
            # batch a run of contiguous pages.  With it off (MDB_NORDAHEAD, for databases read
            # at random) every page of a batch not in the page cache is its own synchronous
            # 4 KiB read: replaying a topic from disk ran ~7x slower (1M records: 30,098
            # major faults and ~180k records/s, against 3 faults and ~1.2M/s).
            env = lmdb.open(self.path, subdir=True, map_size=map_size, max_dbs=len(DB_NAMES) + 4,
                            max_readers=_MAX_READERS, sync=sync, metasync=False, readahead=True,
                            lock=True)
            foreign = _foreign_keys(env)
            newer = _other_format(env) if foreign else None
            if newer is not None:  # (a later embedlog's log, with databases this one does not know)
                env.close()
                raise other_format_error(self.path, newer)
            if foreign:
                env.close()
                raise FormatVersionError(
                    f"{self.path!r} holds an LMDB environment that is not an embedlog log (its main database "
                    f"has {', '.join(map(repr, foreign[:3]))}{', ...' if len(foreign) > 3 else ''}); nothing was "
                    "changed: open an embedlog log directory, or an empty or new one")
            dbs = {}
            for name in DB_NAMES:
                for attempt in range(_RESIZE_TRIES):  # (another process may grow the map meanwhile)
                    try:
                        dbs[name] = env.open_db(name.encode())
                        break
                    except lmdb.MapResizedError:
                        if attempt == _RESIZE_TRIES - 1:
                            raise
                        env.set_mapsize(0)
        except lmdb.Error as exc:
            raise translate(exc, f"opening log directory {self.path!r}") from None
        try:
            _check_length(env, data_file)
        except BaseException:
            env.close()
            raise
        with contextlib.suppress(lmdb.Error):
            env.reader_check()  # free reader slots of processes that died mid-read
        if sync:
            self._open_board(data_file, env.info()["last_txnid"])
        # Filled in place: the store and its clients hold this very dict, and after a
        # fork they must get this environment's handles, not the parent's.
        self.dbs.clear()
        self.dbs.update(dbs)
        self._env = env
        self._pid = _PID
        _LIVE.add(self)
        if self.durability == "interval" and (self._syncer is None or not self._syncer.is_alive()):
            self._stop.clear()
            self._syncer = threading.Thread(target=self._sync_loop, name="embedlog-fsync", daemon=True)
            self._syncer.start()

    def _open_board(self, data_file: str, last_txnid: int) -> None:
        if self._board is not None:  # (the parent's, after a fork: its map stays the parent's to close)
            self._board = None
        try:
            board = SyncBoard(self.path, os.stat(data_file).st_ino)
        except (OSError, ValueError):  # (a read-only directory, say): every flush syncs on its own
            return
        board.forget_if_ahead(last_txnid)
        self._board = board

    def _sync_loop(self) -> None:
        while not self._stop.wait(self._fsync_interval):
            try:
                self.sync()
            except Exception:  # noqa: BLE001, S112 - a failed background sync is retried next tick
                continue

    def close(self) -> None:
        """Close the environment (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._env is not None and self._pid == _PID:
            # Bounded: an exception raised asynchronously (Ctrl-C's KeyboardInterrupt, at
            # any bytecode) between a transaction's entering the gate and the ``try`` that
            # leaves it leaves the count one too high for good; closing then waited forever.
            # After the bound LMDB is closed anyway: py-lmdb invalidates any transaction
            # still open (its next use raises), it does not crash.
            with self._gate.exclusive(timeout=_CLOSE_WAIT_S):
                if self.durability != "none":
                    with suppress(lmdb.Error):
                        self._env.sync(True)
                self._env.close()
        self._env = None
        if self._board is not None and self._pid == _PID:
            self._board.close()

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def _handle(self) -> lmdb.Environment:
        if self._pid != _PID:
            # Never touch a parent's environment after fork(); open our own.  Drop every
            # reference to the parent's (its handles too) without closing it: py-lmdb
            # then frees it without mdb_env_close, which in a child would clear the
            # parent's reader slots, and lets this process open the files again.
            self._env = None
            self.dbs.clear()
            self._syncer = None
            self._open()  # (its gate is new already: _after_fork_in_child)
        env = self._env
        if env is None:  # (closed by another thread: its Log's close raced this call)
            raise ClosedError(_CLOSED)
        return env

    def failed(self, exc: lmdb.Error, what: str) -> EmbedlogError:
        """``exc`` of a call on this environment as embedlog's error: ``ClosedError`` when
        the environment was closed meanwhile (py-lmdb's words would say nothing useful)."""
        if self._closed:
            return ClosedError(_CLOSED)
        return translate(exc, what, self.path)

    # -- transactions ----------------------------------------------------------
    def read(self) -> _Read:
        """A short read transaction (a consistent snapshot), as ``with env.read() as txn``."""
        return _Read(self)

    def write(self, fn: Callable[[lmdb.Transaction], T], *, durable: bool = True, writes: bool = False) -> T:
        """Run ``fn(txn)`` in a write transaction and commit it; retried after map growth.

        ``fn`` must read what it needs through ``txn`` so that a retry is correct.  If
        ``fn`` raises, nothing it wrote is kept.  With ``durability="flush"`` the commit
        is on disk when this returns, unless ``durable=False``: then a power loss may
        undo it until the next commit or ``make_durable`` (see the module docstring).
        ``writes``: ``fn`` always writes something, so the commit synced the data file
        (what other processes are told: ``syncboard.py``).
        """
        while True:
            self._gate.enter()  # (before taking the handle: see _Read.__enter__)
            grow = False
            now = time.monotonic()
            board = self._shared_board(now)
            try:
                env = self._handle()
                if now >= self._next_reader_check:  # (before the transaction: it frees pages for it)
                    self._next_reader_check = now + _READER_CHECK_S
                    with contextlib.suppress(lmdb.Error):
                        env.reader_check()
                if board is not None:
                    board.enter()
                try:
                    txn = self._begin(env, write=True)
                    txn_id = txn.id()
                    try:
                        result = fn(txn)
                        txn.commit()
                    except lmdb.MapFullError:
                        txn.abort()
                        grow = True
                    except BaseException:
                        txn.abort()
                        raise
                finally:
                    if board is not None:
                        board.leave()
                if not grow:
                    if self._sync_commits:
                        if writes and board is not None:
                            board.publish(txn_id - 1)  # (synced by this commit, before its meta page)
                        if durable:  # (the commit's meta page: see the module docstring)
                            self._sync_through(env, txn_id, board)
                        else:
                            self._unsynced = True
                    return result
            except lmdb.MapFullError:
                grow = True
            except lmdb.Error as exc:
                raise self.failed(exc, f"writing {self.path!r}") from None
            finally:
                env = txn = None  # type: ignore[assignment]  # (no reference left once out of the gate)
                self._gate.leave()
            if grow:
                self._grow()

    def _begin(self, env: lmdb.Environment, *, write: bool) -> lmdb.Transaction:
        """(Gate entered) Begin a transaction; while another process grows the map
        meanwhile (``MDB_MAP_RESIZED``, again and again when several grow it), adopt its
        size and try again."""
        for attempt in range(_RESIZE_TRIES):
            try:
                return env.begin(write=write, buffers=True)
            except lmdb.MapResizedError:
                if attempt == _RESIZE_TRIES - 1:
                    raise
                self._gate.leave()
                try:
                    self._adopt_map_size()
                finally:
                    self._gate.enter()
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def nested(self, parent: lmdb.Transaction) -> Iterator[lmdb.Transaction]:
        """A child write transaction of ``parent``: committed into it, or rolled back alone."""
        child = self._handle().begin(write=True, buffers=True, parent=parent)
        try:
            yield child
        except BaseException:
            child.abort()
            raise
        child.commit()

    def _grow(self) -> None:
        with self._gate.exclusive():
            env = self._handle()
            size = env.info()["map_size"]
            try:
                env.set_mapsize(size * 2)
            except lmdb.Error as exc:
                raise translate(exc, "growing the LMDB map") from None

    def _adopt_map_size(self) -> None:
        with self._gate.exclusive():
            env = self._handle()
            try:
                env.set_mapsize(0)
            except lmdb.Error as exc:
                raise translate(exc, "adopting another process's map size") from None

    def make_durable(self) -> None:
        """With ``durability="flush"``: put every commit of this process so far on disk
        (after a ``write(..., durable=False)``); otherwise nothing."""
        if self._sync_commits:
            self._unsynced = False  # (before: a commit the sync may miss sets it again)
            self._gate.enter()
            try:
                env = self._handle()
                board = self._shared_board(time.monotonic())
                last = env.info()["last_txnid"] if board is not None else 0
                self._sync_through(env, last, board)  # (this process's commits, and maybe later ones)
            except lmdb.Error as exc:
                raise self.failed(exc, f"syncing {self.path!r}") from None
            finally:
                self._gate.leave()

    def _sync_through(self, env: lmdb.Environment, txn_id: int, board: SyncBoard | None) -> None:
        """(Gate entered) Put every transaction up to ``txn_id`` on disk: skipped when the
        sync ``board`` (None: this process is alone) says another sync did (or, while
        another process is in a write transaction, soon does: waiting at most
        ``SHARE_WAIT_S``), else ``fdatasync``."""
        if board is not None:
            if board.through(env.info()["last_txnid"]) >= txn_id:
                self.syncs_shared += 1
                return
            if board.others_writing():
                deadline = time.monotonic() + SHARE_WAIT_S
                while True:
                    time.sleep(_SHARE_POLL_S)
                    if board.through(env.info()["last_txnid"]) >= txn_id:
                        self.syncs_shared += 1
                        return
                    if time.monotonic() >= deadline or not board.others_writing():
                        break
        self._fsync(env, board)

    def _fsync(self, env: lmdb.Environment, board: SyncBoard | None) -> None:
        """(Gate entered) ``fdatasync`` the data file, and tell ``board`` what it covers."""
        last = env.info()["last_txnid"] if board is not None else 0  # (its meta page is in the file already)
        env.sync(True)
        self.syncs_made += 1
        if board is not None:
            board.publish(last)

    def _shared_board(self, now: float) -> SyncBoard | None:
        """The sync board, unless this process is alone on the log (no other process to
        tell, nor to wait for)."""
        board = self._board
        return None if board is None or board.alone(now) else board

    def make_durable_if_needed(self) -> None:
        """``make_durable`` if a ``durable=False`` write of this process may not be on
        disk yet (what a ``flush`` that found nothing left to write calls)."""
        if self._unsynced:
            self.make_durable()

    def sync(self) -> None:
        """fsync everything committed so far."""
        self._gate.enter()
        try:
            self._fsync(self._handle(), self._board)
        except lmdb.Error as exc:
            raise self.failed(exc, f"syncing {self.path!r}") from None
        finally:
            self._gate.leave()

    def release_pages(self) -> None:
        """Drop this process's page-table entries for the data file (Linux, best effort).

        Reading through LMDB's memory map counts every page touched in the process's RSS
        until the map is unmapped, so a consumer scanning a 1 GB log would show 1 GB of
        RSS.  ``madvise(MADV_DONTNEED)`` on the read-only shared mapping drops them; the
        data stays in the page cache and the next read maps it again.  Safe while other
        threads read: it never changes what a read sees.
        """
        if _MADVISE is None or self._pid != _PID:
            return
        target = os.path.realpath(os.path.join(self.path, "data.mdb"))
        try:
            with open("/proc/self/maps") as maps:
                ranges = [line.split(None, 1)[0] for line in maps if line.rstrip().endswith(target)]
        except OSError:
            return
        for r in ranges:
            start, end = (int(x, 16) for x in r.split("-"))
            _MADVISE(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)

    def reader_check(self) -> int:
        """Free reader slots left by processes that died mid-read; return how many."""
        try:
            return int(self._handle().reader_check())
        except lmdb.Error as exc:
            raise translate(exc, f"checking readers of {self.path!r}") from None

    def info(self) -> dict[str, int]:
        """LMDB's ``env.info()`` (map size, last transaction id, readers)."""
        return {k: int(v) for k, v in self._handle().info().items()}  # type: ignore[call-overload]

    def file_size(self) -> int:
        """Bytes of ``data.mdb`` on disk."""
        return os.path.getsize(os.path.join(self.path, "data.mdb"))
