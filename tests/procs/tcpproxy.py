"""A small TCP proxy for fault injection between a follower and its leader (imported).

``Proxy(upstream)`` listens on 127.0.0.1 (a free port: ``address``) and relays every
connection to ``upstream`` with two threads, one per direction.  Faults, switched at any
time from the test:

* ``cut()``: close both sides of every relayed connection; while cut, a new connection
  is accepted and closed at once (the peer sees a reset link, not a refused port);
* ``black_hole()``: stop relaying but keep every socket open (a partition: bytes pile
  up in kernel buffers, nobody is told); new connections are accepted and held;
* ``delay(seconds)``: hold each chunk that long before relaying it (order is kept);
* ``heal()``: relay again (held connections and the bytes they hold resume).

``attempts`` records ``(time.monotonic(), mode)`` for every accepted connection, so a
test can check how a client retried.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

__all__ = ["Proxy"]

_CHUNK = 1 << 16


class Proxy:
    """A fault-injecting TCP relay on 127.0.0.1; a context manager."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self.mode = "up"
        self.delay_s = 0.0
        self.attempts: list[tuple[float, str]] = []
        self.relayed_bytes = 0
        self._cond = threading.Condition()
        self._socks: list[socket.socket] = []
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop)

    # -- faults ------------------------------------------------------------------------------
    def cut(self) -> None:
        """Close every relayed connection (both sides); refuse new ones until ``heal``."""
        with self._cond:
            self.mode = "cut"
            socks, self._socks = self._socks, []
            self._cond.notify_all()
        for s in socks:
            _close(s)

    def black_hole(self) -> None:
        """Stop relaying, keep every socket open."""
        with self._cond:
            self.mode = "black_hole"
            self._cond.notify_all()

    def delay(self, seconds: float) -> None:
        """Relay each chunk after ``seconds`` (0: no delay)."""
        with self._cond:
            self.delay_s = seconds

    def heal(self) -> None:
        """Relay normally again."""
        with self._cond:
            self.mode = "up"
            self._cond.notify_all()

    def connections(self) -> int:
        """Relayed connections open now."""
        with self._cond:
            return len(self._socks) // 2

    def close(self) -> None:
        """Stop: close the listener and every connection, join the threads."""
        with self._cond:
            self._stop = True
            socks, self._socks = self._socks, []
            self._cond.notify_all()
        _close(self._listener)
        for s in socks:
            _close(s)
        for t in self._threads:
            t.join(timeout=10)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- threads -----------------------------------------------------------------------------
    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads = [x for x in self._threads if x.is_alive()]
        self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                r, _, _ = select.select([self._listener], [], [], 0.05)
                if not r:
                    continue
                client, _ = self._listener.accept()
            except (OSError, ValueError):  # closed
                return
            with self._cond:
                mode = self.mode
                self.attempts.append((time.monotonic(), mode))
            if mode == "cut":
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(None)
            with self._cond:
                if self.mode == "cut" or self._stop:
                    _close(client)
                    _close(server)
                    continue
                self._socks += [client, server]
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    def _wait_flowing(self, src: socket.socket) -> bool:
        """Block while black-holed; False once the connection is gone or the proxy stops."""
        with self._cond:
            while self.mode == "black_hole" and not self._stop and src in self._socks:
                self._cond.wait(0.05)
            return self.mode == "up" and not self._stop and src in self._socks

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while self._wait_flowing(src):
                r, _, _ = select.select([src], [], [], 0.05)
                if not r:
                    continue
                data = src.recv(_CHUNK)
                if not data:
                    break
                with self._cond:
                    delay = self.delay_s
                if delay:
                    time.sleep(delay)
                if not self._wait_flowing(src):  # black-holed meanwhile: held until healed
                    break
                dst.sendall(data)
                with self._cond:
                    self.relayed_bytes += len(data)
        except (OSError, ValueError):
            pass
        with self._cond:
            for s in (src, dst):
                if s in self._socks:
                    self._socks.remove(s)
        _close(src)
        _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
