"""The follower's connection to its leader: connect, run, reconnect with backoff."""

from __future__ import annotations

import collections
import contextlib
import functools
import random
import socket
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import AuthenticationError, EmbedlogError, UnrelatedLogError
from ..protocol import FencedLeaderError
from .common import POLL_S, Waker, monotonic_ms, readable, recv, send

if TYPE_CHECKING:
    from ..replication import FollowerCore

__all__ = ["FollowerClient", "Prefetch"]

_IO_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 5.0
_LEAVE_WAIT_S = 2.0  # close(): how long the connection thread may take to say goodbye
#: TLS alerts by which a leader refuses our client certificate (OpenSSL reason codes)
_REFUSED_ALERTS = ("ALERT_UNKNOWN_CA", "ALERT_BAD_CERTIFICATE", "ALERT_CERTIFICATE_REQUIRED",
                   "ALERT_CERTIFICATE_UNKNOWN", "ALERT_CERTIFICATE_EXPIRED", "ALERT_CERTIFICATE_REVOKED",
                   "ALERT_UNSUPPORTED_CERTIFICATE", "ALERT_ACCESS_DENIED")


def tls_refusal(exc: BaseException, leader: tuple[str, int]) -> AuthenticationError | None:
    """The ``AuthenticationError`` a TLS failure stands for, if it is one: we do not
    trust the leader's certificate, or the leader refused ours.  ``None`` for anything
    else (a dropped link, a reset during the handshake): those are retried."""
    where = f"{leader[0]}:{leader[1]}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return AuthenticationError(
            f"the leader at {where} presented a certificate this follower's ssl_context does not trust "
            f"({exc.verify_message}): give the follower the CA that signed the leader's certificate")
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    if reason and any(str(reason).endswith(alert) for alert in _REFUSED_ALERTS):
        return AuthenticationError(
            f"the leader at {where} refused this follower's TLS client certificate ({reason}): load a "
            "certificate signed by a CA the leader's ssl_context trusts (ssl_context.load_cert_chain)")
    return None


class Prefetch:
    """Reads what the leader sends next while the connection's thread applies a large
    response, so that catching up receives and writes at the same time.

    The core asks for this itself: it calls ``flush`` (the early fetch) just before it
    applies a response of ``pipeline_min_bytes`` or more, and that is when ``start`` is
    called; ``stop`` — once the core returned — waits until the reading thread let go of
    the socket and hands over what it read, to be fed to the core in order.  So one
    thread at a time uses the socket (TLS included), the core only ever runs in the
    connection's thread, and small responses (an ``acks="all"`` flush waiting) never
    pass through a second thread.  What it holds is bounded by the protocol: during an
    apply only the response to the one early fetch is on its way."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._chunks: list[bytes] = []
        self._error: BaseException | None = None
        self._eof = False
        self._lock = threading.Lock()
        self._go = threading.Condition(self._lock)
        self._running = False  # asked to read (between start and stop)
        self._reading = False  # the thread is in its read loop
        self._closed = False
        self._waker = Waker()  # (stop interrupts a wait for data)
        self._thread = threading.Thread(target=self._run, name="embedlog-follower-prefetch", daemon=True)
        self._thread.start()

    def start(self) -> None:
        """Read from now on (until ``stop``)."""
        with self._lock:
            self._running = True
            self._go.notify()

    def stop(self) -> list[bytes]:
        """Stop reading and wait until the thread let go of the socket; return what was
        read, in order (then ``failure`` says whether reading hit an error or the end)."""
        with self._lock:
            if not self._running and not self._chunks and self._error is None and not self._eof:
                return []
            self._running = False
            self._waker.wake()
            while self._reading:
                self._go.wait()
            self._waker.drain()
            chunks, self._chunks = self._chunks, []
            return chunks

    def failure(self) -> BaseException | None:
        """Why reading stopped (once ``stop`` handed over the data before it), if it did."""
        if self._error is not None:
            return self._error
        return ConnectionError("the leader closed the connection") if self._eof else None

    def close(self) -> None:
        """End the thread (the connection is over)."""
        with self._lock:
            self._closed = True
            self._running = False
            self._go.notify()
        self._waker.wake()
        self._thread.join(timeout=10)
        self._waker.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._running and not self._closed:
                    self._go.wait()
                if self._closed:
                    return
                self._reading = True
            try:
                while self._running and self._error is None and not self._eof:
                    ready, _ = readable(self.sock, self._waker, POLL_S)
                    if not ready or not self._running:
                        continue
                    data = recv(self.sock)
                    if data:
                        self._chunks.append(data)
                    else:
                        self._eof = True
            except (OSError, ValueError) as exc:
                self._error = exc
            finally:
                with self._lock:
                    self._reading = False
                    if self._error is not None or self._eof:
                        self._running = False
                    self._go.notify_all()


class FollowerClient:
    """Keep a ``FollowerCore`` connected to ``leader``.

    Authentication, fencing and unrelated-log (``UnrelatedLogError``) errors are fatal
    (they will not fix themselves): the loop stops and ``error`` holds the typed
    exception.  Anything else (refused
    connection, dropped link, a damaged frame, a leader restarting) is retried after a
    backoff that doubles from ``backoff_ms[0]`` to ``backoff_ms[1]``.  Under TLS, a
    leader certificate the follower does not trust, or a client certificate the leader
    refuses, is an ``AuthenticationError`` too.
    """

    def __init__(self, core: FollowerCore, leader: tuple[str, int], ssl_context: ssl.SSLContext | None = None,
                 backoff_ms: tuple[int, int] = (50, 2000)) -> None:
        self.core = core
        self.leader = leader
        self.ssl_context = ssl_context
        self.backoff_ms = backoff_ms
        self.error: EmbedlogError | None = None
        self.last_error: BaseException | None = None
        self.connections = 0
        #: bytes read while a response was being applied (``Prefetch``), over all connections
        self.prefetched = 0
        self.authenticated = threading.Event()
        self.done = threading.Event()
        self._stop = threading.Event()
        self._leave = True  # close(): tell the leader
        self._waker = Waker()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="embedlog-follower", daemon=True)

    def start(self) -> None:
        """Start the connection thread."""
        self._thread.start()

    def wake(self) -> None:
        """Interrupt the connection thread's wait for data (thread-safe): it then runs the
        core's ``poll`` at once (a ``Follower``'s applier thread calls it once a write
        behind the connection is durable, so its Ack goes out)."""
        self._waker.wake()

    def close(self, *, leave: bool = True) -> None:
        """Stop and join the thread.  With ``leave``, a connected follower first tells its
        leader that it leaves (so the leader drops it from the in-sync set at once); a
        thread stuck in a connect or a send is cut off after ``_LEAVE_WAIT_S``."""
        self._leave = leave
        self._stop.set()
        self._waker.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=_LEAVE_WAIT_S)
        sock = self._sock
        if sock is not None and self._thread.is_alive():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._waker.close()

    def _run(self) -> None:
        delay = self.backoff_ms[0]
        try:
            while not self._stop.is_set():
                if self._session():
                    delay = self.backoff_ms[0]
                if self.error is not None or self._stop.is_set():
                    return
                self._stop.wait(delay / 1000 * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff_ms[1])
        finally:
            self.done.set()

    def _session(self) -> bool:
        """One connection, until it fails; return whether it authenticated."""
        core = self.core
        sock: socket.socket | None = None
        prefetch: Prefetch | None = None
        ok = False
        try:
            sock = socket.create_connection(self.leader, timeout=_CONNECT_TIMEOUT_S)
            sock.settimeout(_IO_TIMEOUT_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.leader[0])
            self._sock = sock
            self.connections += 1
            send(sock, core.connect(monotonic_ms()))
            prefetch = Prefetch(sock)
            pending: collections.deque[bytes] = collections.deque()

            def flush(data: bytes) -> None:  # the next fetch, sent before a large response is applied
                send(sock, data)
                prefetch.start()  # (and what answers it is read meanwhile)

            def ack(data: bytes) -> None:  # an Ack, sent the moment its response is durable
                send(sock, data)

            def feed(receive: Callable[[], bytes]) -> bytes:
                try:
                    return receive()
                finally:  # (also on an error: the socket is this thread's again)
                    pending.extend(prefetch.stop())

            while not self._stop.is_set():
                ready, woken = readable(sock, self._waker, POLL_S)
                if woken:
                    self._waker.drain()
                if ready:
                    into = core.recv_buffer()  # the rest of a large response: straight into its buffer
                    if into is not None:
                        n = sock.recv_into(into)
                        into.release()
                        if not n:
                            raise ConnectionError("the leader closed the connection")
                        out = feed(functools.partial(core.receive_into, n, monotonic_ms(), flush, ack))
                    else:
                        data = recv(sock)
                        if not data:
                            raise ConnectionError("the leader closed the connection")
                        out = feed(functools.partial(core.receive, data, monotonic_ms(), flush, ack))
                    send(sock, out)
                    while pending:  # what was read during an apply, in order (it may start another)
                        chunk = pending.popleft()
                        self.prefetched += len(chunk)
                        send(sock, feed(functools.partial(core.receive, chunk, monotonic_ms(), flush, ack)))
                    failure = prefetch.failure()
                    if failure is not None:
                        raise failure
                    if core.connected and not ok:
                        ok = True
                        self.authenticated.set()
                send(sock, core.poll(monotonic_ms()))
                if core.expired(monotonic_ms()):
                    raise TimeoutError("nothing from the leader within the session timeout")
            if ok and self._leave:  # stopped (close()): a clean leave, best effort
                with contextlib.suppress(OSError):
                    send(sock, core.leave())
        except (AuthenticationError, FencedLeaderError, UnrelatedLogError) as exc:
            self._flush(sock)
            self.error = exc
        except (OSError, EmbedlogError, ValueError) as exc:
            self._flush(sock)
            self.last_error = exc
            refused = tls_refusal(exc, self.leader)
            if refused is not None:
                refused.__cause__ = exc
                self.error = refused
        finally:
            if prefetch is not None:
                prefetch.close()
            self.authenticated.clear()
            core.disconnect()
            self._sock = None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        return ok

    def _flush(self, sock: socket.socket | None) -> None:
        """Tell the leader why we leave (an ``Error`` the core queued), best effort."""
        if sock is not None:
            with contextlib.suppress(OSError):
                send(sock, self.core.pending())
