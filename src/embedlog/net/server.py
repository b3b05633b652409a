"""The leader's listening socket: one thread accepts, one thread per follower
connection, and one ticker that turns log commits into wake-ups."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING

from .common import POLL_S, Waker, monotonic_ms, readable, recv, send

if TYPE_CHECKING:
    from ..replication import LeaderCore
    from ..storage.notify import Notifier

__all__ = ["LeaderServer"]

_IO_TIMEOUT_S = 30.0
_TICK_S = 0.1
_LINGER_S = 2.0


class LeaderServer:
    """Serve a ``LeaderCore`` on ``listen``; ``start`` it, then ``close`` it."""

    def __init__(self, core: LeaderCore, notifier: Notifier, listen: tuple[str, int],
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.core = core
        self.notifier = notifier
        self.ssl_context = ssl_context
        family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self.sock = socket.create_server(listen, family=family, backlog=16)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._waker = Waker()
        self._lock = threading.Lock()
        self._conns: dict[int, tuple[socket.socket, Waker]] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start accepting and ticking."""
        for target, name in ((self._accept_loop, "embedlog-leader-accept"), (self._tick_loop, "embedlog-leader-tick")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        """Stop accepting, drop every connection, join the threads."""
        self._stop.set()
        self._waker.wake()
        with self._lock:
            conns = list(self._conns.values())
        for sock, waker in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            waker.wake()
        for t in list(self._threads):
            t.join(timeout=5)
        with contextlib.suppress(OSError):
            self.sock.close()
        self._waker.close()

    # -- threads ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock.fileno(), self._waker.fileno()], [], [], 1.0)
            if self.sock.fileno() not in r:
                continue
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._serve, args=(conn, addr), name="embedlog-leader-conn", daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
            t.start()

    def _tick_loop(self) -> None:
        """Wake every connection when records are committed (by any process), and let
        the core expire lagging followers and advance high watermarks.  Connections are
        woken first: new records go out at once, not after ``update`` (which may write)."""
        seen = self.notifier.generation
        while not self._stop.is_set():
            seen = self.notifier.wait(seen, _TICK_S)
            if self._stop.is_set():
                return
            with self._lock:
                wakers = [w for _, w in self._conns.values()]
            for w in wakers:
                w.wake()
            with contextlib.suppress(Exception):  # a failed update is retried at the next tick
                self.core.update(monotonic_ms())

    @staticmethod
    def _handshake(conn: socket.socket, ctx: ssl.SSLContext) -> ssl.SSLSocket:
        """The TLS handshake; on failure (a client certificate refused, not TLS at all)
        close gently, so the follower reads the alert that says why."""
        tls = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (OSError, ValueError):
            _linger(tls)
            raise
        return tls

    def _serve(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        waker = Waker()
        session = self.core.session(monotonic_ms(), f"{addr[0]}:{addr[1]}")
        key = id(conn)
        try:
            conn.settimeout(_IO_TIMEOUT_S)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                conn = self._handshake(conn, self.ssl_context)
            with self._lock:
                self._conns[key] = (conn, waker)
            while not self._stop.is_set() and not session.closed:
                ready, woken = readable(conn, waker, POLL_S)
                if woken:
                    waker.drain()
                if ready:
                    data = recv(conn)
                    if not data:
                        break
                    send(conn, session.receive(data, monotonic_ms()))
                send(conn, session.poll(monotonic_ms()))
        except (OSError, ValueError):
            pass  # the follower went away (or TLS failed): it reconnects
        finally:
            with self._lock:
                self._conns.pop(key, None)
            session.close()
            with contextlib.suppress(OSError):
                conn.close()
            waker.close()


def _linger(sock: socket.socket) -> None:
    """Half-close and read until the peer closes (for at most ``_LINGER_S``), below TLS.

    OpenSSL has queued its alert when a handshake fails.  Closing at once while the
    peer's next bytes are unread (under TLS 1.3 a client sends right after its side of
    the handshake) makes the kernel send a reset, which can overtake the alert: the
    follower would see a bare EOF and retry instead of reporting the refusal.
    """
    deadline = time.monotonic() + _LINGER_S
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_WR)  # the plain-socket methods: TLS is dead here
        while (left := deadline - time.monotonic()) > 0:
            socket.socket.settimeout(sock, left)
            if not socket.socket.recv(sock, 4096):
                break
