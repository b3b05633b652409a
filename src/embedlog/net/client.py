"""The follower's connection to its leader: connect, run, reconnect with backoff."""

from __future__ import annotations

import contextlib
import functools
import random
import socket
import ssl
import threading
from typing import TYPE_CHECKING

from ..errors import AuthenticationError, EmbedlogError
from ..protocol import FencedLeaderError
from .common import POLL_S, Waker, monotonic_ms, readable, recv, send

if TYPE_CHECKING:
    from ..replication import FollowerCore

__all__ = ["FollowerClient"]

_IO_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 5.0
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


class FollowerClient:
    """Keep a ``FollowerCore`` connected to ``leader``.

    Authentication and fencing errors are fatal (they will not fix themselves): the
    loop stops and ``error`` holds the typed exception.  Anything else (refused
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
        self.authenticated = threading.Event()
        self.done = threading.Event()
        self._stop = threading.Event()
        self._waker = Waker()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="embedlog-follower", daemon=True)

    def start(self) -> None:
        """Start the connection thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop and join the thread."""
        self._stop.set()
        self._waker.wake()
        sock = self._sock
        if sock is not None:
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
            flush = functools.partial(send, sock)  # the next fetch, sent before a large response is applied
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
                        send(sock, core.receive_into(n, monotonic_ms(), flush))
                    else:
                        data = recv(sock)
                        if not data:
                            raise ConnectionError("the leader closed the connection")
                        send(sock, core.receive(data, monotonic_ms(), flush))
                    if core.connected and not ok:
                        ok = True
                        self.authenticated.set()
                send(sock, core.poll(monotonic_ms()))
                if core.expired(monotonic_ms()):
                    raise TimeoutError("nothing from the leader within the session timeout")
        except (AuthenticationError, FencedLeaderError) as exc:
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
