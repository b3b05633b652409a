"""Helpers shared by the server and the client: addresses, clocks, wake-ups, I/O."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time

from ..errors import ConfigError

__all__ = ["POLL_S", "Waker", "monotonic_ms", "parse_address", "readable", "recv", "send", "send_nowait"]

#: how often a connection loop looks at the clock when nothing arrives
POLL_S = 0.02
_RECV = 1 << 20


def monotonic_ms() -> int:
    """The cores' clock: monotonic milliseconds."""
    return time.monotonic_ns() // 1_000_000


#: the host of an address given as ``":PORT"``: loopback, as the default
LOOPBACK = "127.0.0.1"


def parse_address(text: str | tuple[str, int]) -> tuple[str, int]:
    """``"host:port"`` (``"[v6]:port"`` for IPv6, ``":port"`` for loopback) or a
    ``(host, port)`` pair; ``ConfigError`` for anything else."""
    if isinstance(text, tuple):
        if (len(text) != 2 or not isinstance(text[0], str) or not text[0] or not isinstance(text[1], int)
                or isinstance(text[1], bool) or not 0 <= text[1] <= 65535):
            raise ConfigError(f"address must be a (host: str, port: 0..65535) pair or 'HOST:PORT', got {text!r}")
        return text[0], text[1]
    if not isinstance(text, str):
        raise ConfigError(f"address must be 'HOST:PORT' (or ':PORT' for loopback) or a (host, port) pair, "
                          f"got {type(text).__name__}")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or int(port) > 65535 or host.startswith("[") != \
            host.endswith("]"):
        raise ConfigError(f"address must be HOST:PORT (or :PORT for loopback), got {text!r}")
    if not host:
        host = LOOPBACK
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class Waker:
    """A socket pair: another thread wakes a loop blocked in ``select``."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        """For ``select``."""
        return self._r.fileno()

    def wake(self) -> None:
        """Make the next (or current) ``select`` return."""
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            self._w.send(b"\x01")

    def drain(self) -> None:
        """Consume pending wake-ups."""
        with contextlib.suppress(OSError):
            while self._r.recv(4096):
                pass

    def close(self) -> None:
        """Release both sockets."""
        for s in (self._r, self._w):
            with contextlib.suppress(OSError):
                s.close()


def readable(sock: socket.socket, waker: Waker, timeout: float) -> tuple[bool, bool]:
    """Wait until ``sock`` has data or ``waker`` fired; return (sock ready, woken)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True, False
    fd, wfd = sock.fileno(), waker.fileno()
    r, _, _ = select.select([fd, wfd], [], [], timeout)
    return fd in r, wfd in r


def recv(sock: socket.socket) -> bytes:
    """Read what is there (``b""`` when the peer closed).  After ``readable`` said so,
    this returns at once for a plain socket; a TLS socket may wait (up to the socket's
    timeout) for the rest of a record."""
    return sock.recv(_RECV)


def send(sock: socket.socket, data: bytes) -> None:
    """Send everything (the socket has a timeout, so a stuck peer raises)."""
    if data:
        sock.sendall(data)


def send_nowait(sock: socket.socket, data: bytes) -> int:
    """Send what a plain socket takes at once, never waiting; return the bytes sent."""
    _, writable, _ = select.select([], [sock], [], 0)
    if not writable:
        return 0
    try:
        return sock.send(data, socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return 0
