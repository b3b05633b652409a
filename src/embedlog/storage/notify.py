"""Wake consumers blocked in ``poll`` when new records are committed.

In one process a generation counter and one latch (a bare lock) per blocked thread do
it: a commit releases exactly the latches of the threads waiting then, and a woken
thread returns at once, with no lock to take again on its way out (a
``threading.Condition`` makes the waker run its Python-level ``notify_all`` and each
woken thread re-take the condition's lock: both on the path of every single-record
produce-to-consume hand-off).  Across
processes each process that waits binds one Unix datagram socket and registers it as a
file in ``<log>/wake/`` (on Linux the socket lives in the abstract namespace, named by
that file, so long log paths never hit the 108-byte socket path limit); after every
commit a writer sends one byte to every registered socket (skipping its own),
and a listener thread in the waiting process bumps the local generation.  Sockets of
dead processes refuse the datagram and are removed.  A lost datagram only delays a
consumer until its poll timeout; it never loses data.

A writer looks at ``wake/`` at most every ``_RECHECK`` seconds, not at every commit
(a ``stat`` per commit was a tenth of a single-record flush).  So a process that has
just registered may miss the wake-ups of commits made in its first ``_RECHECK``
seconds: for twice that long its waits are cut to ``_RECHECK`` seconds each, and
``poll`` looks for data again after each.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any

from ..errors import ConfigError
from . import env as _env
from .env import current_pid

__all__ = ["Notifier"]

_ABSTRACT = sys.platform.startswith("linux")
_log = logging.getLogger("embedlog.notify")
_MTIME_SLACK = 0.1  # seconds: far more than a filesystem timestamp tick
_RECHECK = 0.02  # seconds between a writer's looks at the wake directory
_MAX_WAIT = min(threading.TIMEOUT_MAX, 86_400.0)  # longest single wait (lock.acquire refuses more)
#: how often a waiting process checks that its registration in ``wake/`` is still there
_REGISTRATION_CHECK_S = 1.0
_new_latch = threading.Lock


def _settle(fut: Any) -> None:
    """(In the future's event loop) end a ``wait_async``."""
    if not fut.done():
        fut.set_result(None)


def _address(path: str) -> str | bytes:
    """The socket address for a registration file: abstract on Linux, the path elsewhere."""
    if _ABSTRACT:
        return b"\x00embedlog-" + os.path.basename(path).encode()
    return path


class Notifier:
    """Generation counter + condition, optionally bridged across processes."""

    def __init__(self, wake_dir: str | None) -> None:
        self._mutex = threading.Lock()
        self.generation = 0
        #: a held latch per thread blocked in wait(), released (once) by the next bump
        self._latches: list[threading.Lock] = []
        #: the same for threads of the library's own that wait (``wait(..., urgent=False)``)
        self._background: list[threading.Lock] = []
        #: (event loop, future) per coroutine in ``wait_async``: a bump settles the future
        self._async: list[tuple[Any, Any]] = []
        self._wake_dir = wake_dir
        self._sock: socket.socket | None = None
        self._sock_path: str | None = None
        self._listener: threading.Thread | None = None
        self._sender: socket.socket | None = None
        self._peers: list[str] = []
        self._peers_mtime = -1
        self._peers_listed = 0.0
        self._next_look = 0.0  # monotonic time of the writer's next look at wake/
        self._fresh_until = 0.0  # until then (monotonic) waits are cut to _RECHECK
        self._next_registration_check = 0.0  # (monotonic) see _check_registration
        self._pid = current_pid()
        self._closed = False
        #: registering failed (``wake/`` cannot be written): waits are cut to ``_RECHECK``
        self._unregistered = False
        self._lock = threading.Lock()

    # -- waiting ---------------------------------------------------------------
    def wait(self, seen: int, timeout: float, *, urgent: bool = True) -> int:
        """Block until the generation moves past ``seen`` or ``timeout`` seconds pass.

        Returns at once the first time a process waits: commits made before its socket
        was registered woke nobody, so the caller must look for data again first.
        ``urgent=False``: a background thread, which the committing thread does not
        hand the GIL to (``notify``).
        """
        bound = self._wait_bound(seen, timeout)
        if bound is None:
            return self.generation
        latch = _new_latch()
        latch.acquire()
        with self._mutex:  # (checked again under it: a bump between the look and here is not missed)
            if self.generation != seen or self._closed:
                return self.generation
            latches = self._latches if urgent else self._background
            latches.append(latch)
        woken = False
        try:
            deadline = time.monotonic() + bound
            while True:  # (in steps: a registration removed meanwhile is made again: ``_check_registration``)
                woken = latch.acquire(True, min(bound, _REGISTRATION_CHECK_S))
                if woken:
                    break
                bound = deadline - time.monotonic()
                if bound <= 0 or self._check_registration():
                    break
        finally:
            if not woken:  # timed out (or interrupted): take the latch back unless a bump just released it
                with self._mutex, contextlib.suppress(ValueError):
                    latches.remove(latch)
        return self.generation

    def _wait_bound(self, seen: int, timeout: float) -> float | None:
        """What ``wait`` and ``wait_async`` do before waiting: register for wake-ups
        from other processes, check ``timeout``; ``None`` when there is nothing to wait
        for (the first wait of a process, no time, or the generation moved past
        ``seen``), else how long to wait at most."""
        self._check_fork()
        if self._listener is None and self._ensure_listener():
            return None
        if time.monotonic() >= self._next_registration_check and self._check_registration():
            return None
        try:
            if not timeout > 0:  # (nan too: nothing to wait for)
                return None
        except TypeError:
            raise ConfigError(f"a wait timeout must be a number of seconds, got {timeout!r}") from None
        if self._fresh_until:
            if time.monotonic() < self._fresh_until:
                timeout = min(timeout, _RECHECK)  # writers may not have seen our socket yet (or: none)
            else:
                self._fresh_until = 0.0
        if self.generation != seen or self._closed:
            return None
        return min(timeout, _MAX_WAIT)

    async def wait_async(self, seen: int, timeout: float) -> int:
        """``wait`` for a coroutine: the event loop goes on meanwhile, and no thread is
        held (a bump settles the coroutine's future through ``call_soon_threadsafe``: a
        pool thread per waiting consumer starved the event loop's default executor)."""
        import asyncio  # noqa: PLC0415 - a coroutine's caller has it already

        bound = self._wait_bound(seen, timeout)
        if bound is None:
            return self.generation
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        entry = (loop, fut)
        with self._mutex:
            if self.generation != seen or self._closed:
                return self.generation
            self._async.append(entry)
        timer = loop.call_later(bound, _settle, fut)
        try:
            await fut
        finally:
            timer.cancel()
            with self._mutex, contextlib.suppress(ValueError):
                self._async.remove(entry)
        return self.generation

    def wake_local(self) -> None:
        """Wake this process's waiting threads (to look again: a consumer was closed)."""
        self._bump()

    def _bump(self) -> bool:
        """Move the generation on and release every waiting thread; return whether an
        urgent one (a consumer, say) was."""
        with self._mutex:  # (the bare lock: no Condition.__enter__ in Python, once a commit)
            self.generation += 1
            if self._async:
                for loop, fut in self._async:
                    with contextlib.suppress(RuntimeError):  # (its loop closed meanwhile)
                        loop.call_soon_threadsafe(_settle, fut)
                self._async = []
            latches = self._latches
            if self._background:
                latches = latches + self._background
                self._background = []
            if not latches:
                return False
            urgent = bool(self._latches)
            self._latches = []
            for latch in latches:
                latch.release()
            return urgent

    def _check_fork(self) -> None:
        """In a forked child, drop the parent's socket, sender, listener and locks.

        They belong to the parent: the child closes only its copies of the descriptors,
        registers its own socket when it first waits, and never skips nor unregisters
        the parent's.
        """
        pid = current_pid()
        if self._pid == pid:
            return
        for sock in (self._sock, self._sender):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._sock = self._sender = None
        self._sock_path = None
        self._listener = None
        self._mutex = threading.Lock()
        self._latches = []  # (the parent's threads are not here)
        self._background = []
        self._async = []
        self._lock = threading.Lock()
        self._next_look = 0.0
        self._pid = pid

    def _ensure_listener(self) -> bool:
        """Register this process for wake-ups; True if it was not registered yet."""
        if self._wake_dir is None or self._closed:
            return False
        with self._lock:
            if self._listener is not None or self._unregistered:
                return False
            path = os.path.join(self._wake_dir, f"{os.getpid()}-{uuid.uuid4().hex}.sock")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                os.makedirs(self._wake_dir, exist_ok=True)
                sock.bind(_address(path))
                if _ABSTRACT:
                    with open(path, "wb"):
                        pass
            except OSError as exc:  # (a read-only log directory, say): wait by looking every _RECHECK
                sock.close()
                with contextlib.suppress(OSError):
                    os.unlink(path)
                self._unregistered = True
                self._fresh_until = math.inf
                _log.warning("cannot register for wake-ups in %s (%s): blocked polls of this process look "
                             "for new records every %d ms instead of waking when they come", self._wake_dir,
                             exc, _RECHECK * 1000)
                return False
            self._sock, self._sock_path = sock, path
            self._fresh_until = time.monotonic() + 2 * _RECHECK
            self._listener = threading.Thread(target=self._listen, args=(sock,), name="embedlog-wake",
                                              daemon=True)
            self._listener.start()
            return True

    def _stopped(self) -> bool:
        return self._closed

    def _listen(self, sock: socket.socket) -> None:
        while not self._closed:
            try:
                sock.recv(64)
            except OSError:
                return
            if self._stopped():  # close() sets it from another thread while we wait
                return
            if self._sock is not sock:  # (registered again since: ``_check_registration``)
                with contextlib.suppress(OSError):
                    sock.close()
                return
            self._bump()

    def _check_registration(self) -> bool:
        """Register again if this process's registration file is gone (``wake/`` removed,
        say): writers find the processes to wake by those files, so a blocked poll here
        would wait for its timeout.  Looked at every ``_REGISTRATION_CHECK_S``.  Return
        whether it registered again: commits meanwhile woke nobody, so the caller must
        look for data again."""
        self._next_registration_check = time.monotonic() + _REGISTRATION_CHECK_S
        path = self._sock_path
        if path is None or os.path.exists(path):
            return False
        with self._lock:
            if self._sock_path != path:
                return True  # (another thread did it)
            old = self._sock
            self._sock = self._sock_path = None
            self._listener = None
        if old is not None:
            with contextlib.suppress(OSError):
                old.shutdown(socket.SHUT_RDWR)  # (its listener's recv returns: it sees it is not current)
        self._ensure_listener()
        return True

    # -- notifying -------------------------------------------------------------
    def notify(self) -> None:
        """Wake local waiters and every other process waiting on this log.

        With local urgent waiters, the calling thread then yields the GIL once
        (``time.sleep(0)``), after waking the other processes: a woken consumer runs
        now, not once the writer's thread next blocks or its switch interval (5 ms)
        runs out."""
        if self._pid != _env._PID:  # (current_pid() without the call: every commit notifies)
            self._check_fork()
        if self._bump():
            try:
                self._wake_others()
            finally:
                time.sleep(0)
        else:
            self._wake_others()

    def _wake_others(self) -> None:
        """Send a datagram to every other process waiting on this log."""
        if self._wake_dir is None:
            return
        now = time.monotonic()
        if now >= self._next_look:
            self._next_look = now + _RECHECK
            self._look()
        if not self._peers:
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        for path in self._peers:
            if path == self._sock_path:
                continue
            try:
                self._sender.sendto(b"\x01", _address(path))
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    with contextlib.suppress(OSError):
                        os.unlink(path)  # a dead process's socket
                # EAGAIN: the peer's queue is full, so it has wake-ups pending anyway

    def _look(self) -> None:
        """Refresh the list of registered sockets if ``wake/`` changed."""
        assert self._wake_dir is not None
        try:
            mtime = os.stat(self._wake_dir).st_mtime_ns
        except FileNotFoundError:
            self._peers = []
            return
        # The directory's mtime comes from a coarse clock: a socket registered in the same
        # tick as an earlier change leaves it unchanged.  So a listing is trusted only if
        # it was taken well after that change; until then, list again.
        now = time.time()
        if mtime != self._peers_mtime or self._peers_listed - mtime / 1e9 < _MTIME_SLACK:
            self._peers_mtime = mtime
            self._peers_listed = now
            try:
                self._peers = [os.path.join(self._wake_dir, n) for n in os.listdir(self._wake_dir)
                               if n.endswith(".sock")]
            except OSError:  # (gone, or not a directory: nobody registered to wake)
                self._peers = []

    def close(self) -> None:
        """Stop listening and remove this process's socket."""
        self._check_fork()
        self._closed = True
        self._bump()
        if self._sock is not None and self._sock_path is not None:
            with contextlib.suppress(OSError):
                self._sock.sendto(b"\x00", _address(self._sock_path))  # wake our listener
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self._sock_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._sock_path)
        if self._sender is not None:
            with contextlib.suppress(OSError):
                self._sender.close()
