"""The leader's listening socket: one thread accepts, one thread per follower
connection, and one ticker that turns log commits into responses.

A follower that has caught up waits in a parked fetch.  When a commit lands, the
ticker (which the commit woke) answers that fetch itself and sends the response, so
new records leave without a second thread hand-off (an ``acks="all"`` producer of this
process, about to wait anyway, does it first, right after its commit: ``push_parked``);
a connection thread busy with its socket, a large response, or a TLS connection (an
``SSLSocket`` is used by one thread only) is woken instead.  Each connection's session
is driven under its own lock."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING

from .common import POLL_S, Waker, monotonic_ms, readable, recv, send, send_nowait

if TYPE_CHECKING:
    from ..replication import LeaderCore, LeaderSession
    from ..storage.notify import Notifier

__all__ = ["LeaderServer"]

_IO_TIMEOUT_S = 30.0
_TICK_S = 0.1
_LINGER_S = 2.0
#: the largest response the ticker (or a producer) sends itself, without waiting; a
#: larger one, or what the socket does not take at once, goes through the connection's
#: thread, so a follower slow to read never stalls the ticker or a producer
_PUSH_MAX = 256 << 10


class _Conn:
    """One follower connection: its socket, session, waker, and the lock that makes
    one thread at a time drive the session and write the socket."""

    __slots__ = ("again", "lock", "outbox", "pushable", "session", "sock", "waker")

    def __init__(self, sock: socket.socket, session: LeaderSession, waker: Waker) -> None:
        self.sock = sock
        self.session = session
        self.waker = waker
        self.lock = threading.Lock()
        #: bytes for the connection's thread to send (a large response the ticker built)
        self.outbox: list[bytes] = []
        self.pushable = not isinstance(sock, ssl.SSLSocket)
        #: a push was asked while another thread held ``lock``: it polls the session again
        self.again = False


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
        self._conns: dict[int, _Conn] = {}
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
        for c in conns:
            with contextlib.suppress(OSError):
                c.sock.shutdown(socket.SHUT_RDWR)
            c.waker.wake()
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
        """On every commit (by any process) answer the parked fetches that now have
        something, and let the core expire lagging followers and advance high
        watermarks.  Connections come first: new records go out at once, not after
        ``update`` (which may write)."""
        seen = self.notifier.generation
        while not self._stop.is_set():
            seen = self.notifier.wait(seen, _TICK_S, urgent=False)  # (the data path keeps the GIL)
            if self._stop.is_set():
                return
            self.push_parked()
            now = monotonic_ms()
            if self.core.update_due(now):  # (else nothing for it to do: leave the GIL to the data path)
                with contextlib.suppress(Exception):  # a failed update is retried at the next tick
                    self.core.update(now)

    def push_parked(self) -> None:
        """Answer every parked fetch that now has something (from the calling thread,
        see ``_push``): the ticker calls it after each commit, and so may a producer
        that just committed."""
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            self._push(c)

    @staticmethod
    def _push(c: _Conn) -> None:
        """Answer the connection's parked fetch from this thread if it has something
        (else leave it parked).  The thread that holds the connection's lock when
        another wants to push polls again once done (``again``), so no commit is missed
        and no thread waits; the connection's thread is woken for a large response and
        on TLS."""
        if not c.pushable:
            c.waker.wake()
            return
        c.again = True
        while c.again and c.lock.acquire(blocking=False):
            try:
                c.again = False  # (before the look: a commit after it sets it again)
                if c.session.parked is None:
                    continue  # a fetch that arrives later reads this commit; heartbeats are its thread's
                if c.outbox:
                    c.waker.wake()
                    return
                data = c.session.poll(monotonic_ms())
                sent = send_nowait(c.sock, data) if data and len(data) <= _PUSH_MAX and not c.session.closed else 0
                if sent < len(data):  # (what a follower slow to read has not taken: never wait for it here)
                    c.outbox.append(data[sent:])
                    c.waker.wake()
            except (OSError, ValueError):
                with contextlib.suppress(OSError):  # its thread sees the broken socket and ends the session
                    c.sock.shutdown(socket.SHUT_RDWR)
                c.waker.wake()
                return
            finally:
                c.lock.release()

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
            c = _Conn(conn, session, waker)
            with self._lock:
                self._conns[key] = c
            while not self._stop.is_set() and not session.closed:
                ready, woken = readable(conn, waker, 0 if c.again else POLL_S)
                if woken:
                    waker.drain()
                with c.lock:
                    c.again = False  # the poll below covers every commit so far
                    while c.outbox:
                        send(conn, c.outbox.pop(0))
                    if c.session.closed:  # (ended by the ticker's poll: its Error went out above)
                        break
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
