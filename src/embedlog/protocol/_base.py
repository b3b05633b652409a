"""What both state machines share: framing, the outbox, transitions and errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from ..errors import AuthenticationError, EmbedlogError, NotLeaderError
from .errors import FencedLeaderError, FollowerLeftError, ProtocolError, RemoteError
from .frames import HANDSHAKE_MAX_FRAME, MAX_FRAME, FrameDecoder, Payload, frame_parts
from .messages import Error, ErrorCode, Message, decode, encode_parts
from .states import RECV, SEND, State

__all__ = ["Connection", "error_for"]

T = TypeVar("T")


def error_for(msg: Error) -> EmbedlogError:
    """The typed error a received ``Error`` message stands for."""
    text = f"the peer closed the connection: {msg.message}"
    if msg.code == ErrorCode.AUTHENTICATION:
        return AuthenticationError(text)
    if msg.code == ErrorCode.FENCED:
        return FencedLeaderError(text)
    if msg.code == ErrorCode.NOT_LEADER:
        return NotLeaderError(text)
    if msg.code == ErrorCode.LEAVING:
        return FollowerLeftError(text)
    if msg.code in (ErrorCode.PROTOCOL, ErrorCode.VERSION):
        return ProtocolError(text)
    return RemoteError(text)


class Connection:
    """One end of one connection (a transport session). Not thread-safe."""

    transitions: ClassVar[dict[tuple[State, str, type], State]] = {}
    initial: ClassVar[State] = State.START

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.state = self.initial
        #: the cap on a frame once the peer proved the secret (until then, the handshake's)
        self.max_frame = max_frame
        self._decoder = FrameDecoder(min(max_frame, HANDSHAKE_MAX_FRAME))
        self._out: list[bytes | memoryview] = []
        #: why the connection closed (``None`` while open)
        self.error: EmbedlogError | None = None
        self.frames_in = 0
        self.frames_out = 0

    # -- sending -------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """The bytes queued for the peer since the last call (joined here: the one copy
        of a message's batches on the way out)."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def send(self, message: Message) -> None:
        """Queue a message; ``ProtocolError`` if the state does not allow sending it."""
        if isinstance(message, Error):
            if self.state is State.CLOSED:
                raise ProtocolError("the connection is closed")
            self._queue(message)
            self.state = State.CLOSED
            return
        self._advance(SEND, message)
        self._queue(message)

    def _queue(self, message: Message) -> None:
        self._out.extend(frame_parts(encode_parts(message)))
        self.frames_out += 1

    def _advance(self, direction: str, message: Message) -> None:
        nxt = self.transitions.get((self.state, direction, type(message)))
        if nxt is None:
            verb = "send" if direction == SEND else "receive"
            raise ProtocolError(f"cannot {verb} {type(message).__name__} in state {self.state.value}")
        self.state = nxt

    # -- receiving -----------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Any]:
        """Feed received bytes; return the events they complete, in order.

        Raises a typed error (``ProtocolError``, ``FrameError``, ``AuthenticationError``,
        ``FencedLeaderError``, ...) when the peer breaks the protocol, fails
        authentication or reports an error; the connection is then ``CLOSED``, an
        ``Error`` for the peer may be queued (send ``data_to_send()`` before closing the
        transport), and ``error`` holds the exception.
        """
        return self._events(self._decoder.feed, data)

    def receiving(self) -> tuple[int, int]:
        """Bytes received of frames not whole yet, and the length the header of the one
        under way gives (0: none)."""
        return self._decoder.pending, self._decoder.under_way

    def recv_buffer(self) -> memoryview | None:
        """Where the rest of a large frame under way can be received directly (then
        call ``receive_into``); ``None`` when none is (receive into ``receive_data``)."""
        return None if self.state is State.CLOSED else self._decoder.recv_buffer()

    def receive_into(self, n: int) -> list[Any]:
        """``n`` bytes were received into ``recv_buffer()``: as ``receive_data``."""
        return self._events(self._decoder.received, n)

    def _events(self, feed: Callable[[T], list[Payload]], data: T) -> list[Any]:
        if self.state is State.CLOSED:
            raise self.error or ProtocolError("the connection is closed")
        events: list[Any] = []
        try:
            for payload in feed(data):
                self.frames_in += 1
                msg = decode(payload)
                if isinstance(msg, Error):
                    self.state = State.CLOSED
                    raise error_for(msg)
                self._advance(RECV, msg)
                events.extend(self._handle(msg))
        except ProtocolError as exc:
            self._fail(ErrorCode.PROTOCOL, exc)
        except AuthenticationError as exc:
            self._fail(ErrorCode.AUTHENTICATION, exc)
        except FencedLeaderError as exc:
            self._fail(ErrorCode.FENCED, exc)
        except EmbedlogError as exc:
            self._fail(ErrorCode.INTERNAL, exc)
        return events

    def _fail(self, code: ErrorCode, exc: EmbedlogError) -> None:
        if self.state is not State.CLOSED:
            self._queue(Error(int(code), str(exc)))
            self.state = State.CLOSED
        self.error = exc
        raise exc

    def _handle(self, msg: Message) -> list[Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Mark the connection closed (the transport went away)."""
        self.state = State.CLOSED
