"""Sharing the meta page's fsync between processes (``durability="flush"``).

LMDB (``MDB_NOMETASYNC``) commits transaction N by writing its pages, ``fdatasync``-ing
the data file, then writing the meta page that makes N current; ``Env`` then syncs once
more to put that meta page on disk (see ``env.py``).  Any ``fdatasync`` of the data file
that begins after meta page N was written puts it on disk as well — the second sync of
another process's later commit, or the first sync inside LMDB's commit of any later
transaction.  This board, a small file shared by every process of the log, tells each
process what is on disk already, so that a flush whose commit a later one covered skips
its own second sync: concurrent flushes of several processes then share it, as those of
one process's threads share whole commits (``writer.py``).

``sync.board`` in the log directory, read and written with ``pread``/``pwrite`` (not
mapped: a board truncated under a running process, by ``: > sync.board`` or a ``cp``
over a live log, must cost syncs, not a SIGBUS):

* bytes 0-7: the inode number of ``data.mdb`` the board speaks of (a copied directory's
  board is not believed; nor, from each process's open on, a ``T`` above the data file's
  last transaction: a data file put in another's place, or a reset log whose new file got
  the old inode number);
* bytes 8-15 and 16-23: the same value twice, ``T``: every transaction up to ``T`` is on
  disk.  A reader believes it only when both copies agree and ``T`` is not above the
  environment's last committed transaction (a write torn by a concurrent writer, or a
  stale board, reads as 0: nothing is skipped).  Writers only ever store values that are
  true when stored: a lower value overwriting a higher one costs a sync, never safety.

``T`` is raised (``publish``) by

* a flush-mode process after ``fdatasync``: to the last transaction committed before
  the sync began (its meta page was in the file then);
* a flush-mode process after committing transaction N that certainly wrote pages (an
  append: it always writes the commit sequence), so LMDB synced the data file before
  writing meta page N: to N - 1.  (An empty transaction commits nothing and syncs
  nothing, so other commits publish nothing.)

Every flush-mode process holds a shared ``lockf`` lock on byte 65 while it has the log
open; a process that finds no other holder (its exclusive probe succeeds, looked at
every ``ALONE_RECHECK_S``) does none of what follows, and syncs on its own.  Otherwise
it holds a shared ``lockf`` lock on byte 64 from before it begins a write transaction
until it committed (while it waits for LMDB's writer lock too).  A
process about to sync for transaction N that finds another process holding it (its
exclusive probe fails) waits a little for that process's commit to publish ``T >= N``
instead: a commit under way covers N with its own syncs.  Locks go with their process,
so a process killed mid-commit never keeps anyone waiting beyond ``SHARE_WAIT_S``.

Everything here is an optimisation: without the board (a directory that cannot hold
it, another platform) every flush syncs on its own, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct

__all__ = ["ALONE_RECHECK_S", "FILE_NAME", "SHARE_WAIT_S", "SyncBoard"]

FILE_NAME = "sync.board"
#: the longest a flush waits for another process's commit to cover its meta page
SHARE_WAIT_S = 0.001
#: how long a process that found itself alone on the log believes it
ALONE_RECHECK_S = 0.02
_SIZE = 4096
_BOARD = struct.Struct("<QQQ")  # the inode, then T twice
_INODE = struct.Struct("<Q")
_THROUGH = struct.Struct("<QQ")
_THROUGH_AT = 8
_FORGET = _THROUGH.pack(0, 1)  # (two copies that disagree: believed by nobody)
_LOCK_AT = 64  # held (shared) by each process in a write transaction
_OPEN_AT = 65  # held (shared) by each process that has the log open in flush mode


class SyncBoard:
    """One process's view of a log's ``sync.board`` (see the module docstring)."""

    def __init__(self, path: str, inode: int) -> None:
        """Open (creating) the board of the log directory ``path`` for data file
        ``inode``; ``OSError`` if it cannot be made or mapped (then do without)."""
        self.inode = inode
        fd = os.open(os.path.join(path, FILE_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.posix_fallocate(fd, 0, _SIZE)  # (blocks now: a full disk fails here)
            fcntl.lockf(fd, fcntl.LOCK_SH, 1, _OPEN_AT)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._alone_until = 0.0  # (monotonic) see ``alone``

    def close(self) -> None:
        """Close (idempotent)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def _read(self) -> tuple[int, int, int] | None:
        """The inode and the two copies of ``T`` as stored, or None (a board truncated
        or unreadable: believed by nobody)."""
        try:
            raw = os.pread(self._fd, _BOARD.size, 0)
        except OSError:
            return None
        return _BOARD.unpack(raw) if len(raw) == _BOARD.size else None

    def _write(self, data: bytes, at: int) -> None:
        with contextlib.suppress(OSError):  # (a full disk, say: the next look finds nothing to believe)
            os.pwrite(self._fd, data, at)

    def _stored(self) -> int | None:
        """``T`` as this board holds it for this data file, whole; else ``None``."""
        if self._fd < 0:
            return None
        got = self._read()
        if got is None or got[0] != self.inode:
            return None
        return got[1] if got[1] == got[2] else None

    def through(self, last_txnid: int) -> int:
        """``T``: every transaction up to it is on disk (0 when the board says nothing
        believable); ``last_txnid`` is the environment's last committed transaction."""
        stored = self._stored()
        return stored if stored is not None and stored <= last_txnid else 0

    def forget_if_ahead(self, last_txnid: int) -> None:
        """At open: a ``T`` above the environment's last transaction is another data
        file's (one put in this one's place, or a reset log whose ``data.mdb`` got the old
        inode number back): drop it, before this log's transactions climb past it.  (One
        at or below it covers only transactions before any this process commits.)"""
        stored = self._stored()
        if stored is not None and stored > last_txnid:
            self._write(_FORGET, _THROUGH_AT)

    def publish(self, txnid: int) -> None:
        """Every transaction up to ``txnid`` is on disk now."""
        if self._fd < 0:
            return
        got = self._read()
        if got is None or got[0] != self.inode:
            self._write(_FORGET, _THROUGH_AT)  # (unbelievable while the inode changes)
            self._write(_INODE.pack(self.inode), 0)
        elif got[1] == got[2] and got[1] >= txnid:
            return
        self._write(_THROUGH.pack(txnid, txnid), _THROUGH_AT)

    def enter(self) -> None:
        """A write transaction of this process begins (held until ``leave``)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.lockf(self._fd, fcntl.LOCK_SH, 1, _LOCK_AT)

    def leave(self) -> None:
        """The write transaction ended (committed or not)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _LOCK_AT)

    def alone(self, now: float) -> bool:
        """Whether no other process has the log open in flush mode (believed for
        ``ALONE_RECHECK_S``; ``now`` is ``time.monotonic()``)."""
        if now < self._alone_until or self._fd < 0:
            return True
        if self._held_by_others(_OPEN_AT, fcntl.LOCK_SH):  # (back to shared after: this process has it open)
            return False
        self._alone_until = now + ALONE_RECHECK_S
        return True

    def others_writing(self) -> bool:
        """Whether another process is in (or waiting for) a write transaction."""
        return self._fd >= 0 and self._held_by_others(_LOCK_AT, fcntl.LOCK_UN)

    def _held_by_others(self, at: int, after: int) -> bool:
        """Whether another process holds a lock on byte ``at`` (an exclusive probe fails);
        if not, this process's lock there becomes ``after``."""
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, at)
        except OSError:
            return True  # (EAGAIN/EACCES: another process holds it)
        with contextlib.suppress(OSError):
            fcntl.lockf(self._fd, after, 1, at)
        return False
