"""Length-prefixed, checksummed frames: the unit the transport carries.

A frame is::

    u32le length    of the payload (1 .. max_frame)
    u32le crc       CRC-32 (zlib) of the 4 length bytes and the payload
    payload         one encoded message (``messages.encode``)

The checksum covers the length too, so a damaged length is caught as soon as the
bytes it claims have arrived (or at once when it claims more than the cap).  Any
damage raises ``FrameError``; a decoder that raised is dead, because a byte stream
that lost its framing cannot be resynchronised safely.

Copies are counted, because fetch responses run to megabytes: a small frame's payload
is copied once out of the receive buffer; a large one (``big`` bytes or more) gets a
buffer of its own once its header is in, which the rest is copied into as it arrives —
or which the socket layer receives into directly (``recv_buffer``/``received``: no
copy at all).  Encoding frames a message's parts (``frame_parts``) without joining
them first.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ..codec import crc
from .errors import FrameError

__all__ = ["BIG_FRAME", "HANDSHAKE_MAX_FRAME", "HEADER", "MAX_FRAME", "PROVEN_MAX_FRAME", "FrameDecoder", "Payload",
           "encode_frame", "frame_parts"]

#: a decoded frame's payload: ``bytes``, or for a large frame the ``bytearray`` it was
#: received into or a read-only view of the received ``bytes`` it came whole in
Payload = bytes | bytearray | memoryview

HEADER = struct.Struct("<II")
_LEN = struct.Struct("<I")
#: The default cap on one frame's payload: far above a fetch response's budget (a few
#: MiB), and above any single batch a producer writes by default.
MAX_FRAME = 64 << 20
#: A follower's cap once its leader proved itself: the format's own (a 32-bit length).  A
#: fetch response carries at least one whole batch, and a batch may be as large as a
#: record's ``max.message.bytes`` (up to INT32_MAX) or a producer's ``batch_size``.
PROVEN_MAX_FRAME = (1 << 32) - 1
#: Payloads of at least this many bytes are gathered as they arrive and joined once.
BIG_FRAME = 64 << 10
#: The cap on frames until the peer proved the shared secret: the handshake's messages
#: are small, and an unauthenticated peer must not make a node hold much memory.
HANDSHAKE_MAX_FRAME = 1 << 20
#: A large frame's buffer starts at most this big and doubles as its bytes arrive (up to
#: the length its header claims): memory follows what was received, not what was claimed.
GROW_FROM = 4 << 20


_crc32 = crc.crc32


def frame_parts(parts: Sequence[bytes | memoryview]) -> list[bytes | memoryview]:
    """Frame a payload given as parts (joined, they are the payload): the header, then
    the parts themselves (nothing is copied)."""
    length = sum(map(len, parts))
    if not length:
        raise ValueError("a frame carries at least one byte")
    head = _LEN.pack(length)
    crc = _crc32(head)
    for p in parts:
        crc = _crc32(p, crc)
    return [HEADER.pack(length, crc), *parts]


def encode_frame(payload: bytes) -> bytes:
    """Frame one payload."""
    return b"".join(frame_parts([payload]))


class FrameDecoder:
    """Incremental frame decoder: feed it any chunks, get whole payloads back."""

    def __init__(self, max_frame: int = MAX_FRAME, big: int = BIG_FRAME, grow_from: int = GROW_FROM) -> None:
        self.max_frame = max_frame
        self.big = max(1, big)
        self.grow_from = max(1, grow_from)
        self._buf = bytearray()
        #: a large frame being received: its buffer, a view of it, bytes in so far, its header
        self._big: bytearray | None = None
        self._view: memoryview | None = None
        self._filled = 0
        self._head = (0, 0)
        self._failed: FrameError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        large = HEADER.size + self._filled if self._big is not None else 0
        return len(self._buf) + large

    @property
    def under_way(self) -> int:
        """The length its header gives the frame being received (0: none; 1: its header
        is not whole yet)."""
        if self._big is not None:
            return self._head[0]
        if len(self._buf) >= HEADER.size:
            return int(HEADER.unpack_from(self._buf, 0)[0])
        return 1 if self._buf else 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[Payload]:
        """Add received bytes; return every payload they complete, in order.

        Raises ``FrameError`` on a damaged or oversized frame (and on every later call).
        """
        if self._failed is not None:
            raise self._failed
        out: list[Payload] = []
        start = self._take(data, out) if self._big is not None else 0
        if start < len(data):
            if self._buf:
                with memoryview(data) as view:
                    self._buf += view[start:]
                self._parse(out)
            else:  # frames straight out of ``data``: a large one whole in ``bytes`` is not even copied
                view = memoryview(data).cast("B")
                pos, failure = self._scan(view, start, out, keep=isinstance(data, bytes))
                if failure is not None:
                    self._fail(failure)
                if pos < len(view) and self._big is None:
                    self._buf += view[pos:]
        return out

    def recv_buffer(self) -> memoryview | None:
        """Where the rest of the large frame being received goes, for ``recv_into``
        (then call ``received``); ``None`` when no large frame is under way."""
        if self._big is None or self._view is None or self._failed is not None:
            return None
        if self._filled == len(self._big):
            self._grow()
        return self._view[self._filled:]

    def received(self, n: int) -> list[Payload]:
        """``n`` bytes were received into ``recv_buffer()``: return the payload if that
        completes it (``FrameError`` if it is damaged)."""
        if self._failed is not None:
            raise self._failed
        if self._big is None or not 0 <= n <= len(self._big) - self._filled:
            raise ValueError(f"received({n}) does not fit the frame under way")
        self._filled += n
        out: list[Payload] = []
        if self._filled == self._head[0]:
            self._finish(out)
        return out

    def _take(self, data: bytes | bytearray | memoryview, out: list[Payload]) -> int:
        """Copy what ``data`` holds of the large frame into its buffer; when it is whole,
        check it; return bytes used."""
        assert self._big is not None
        used = 0
        with memoryview(data) as view:
            flat = view.cast("B")
            while used < len(flat):
                if self._filled == len(self._big):
                    self._grow()
                assert self._view is not None
                take = min(len(self._big) - self._filled, len(flat) - used)
                self._view[self._filled:self._filled + take] = flat[used:used + take]
                self._filled += take
                used += take
                if self._filled == self._head[0]:
                    self._finish(out)
                    break
        return used

    def _grow(self) -> None:
        """The large frame's buffer is full and the frame is not: twice as big (at most
        the frame's length), its bytes so far copied over."""
        assert self._big is not None
        assert self._view is not None
        bigger = bytearray(min(self._head[0], 2 * len(self._big)))
        bigger[:self._filled] = self._view[:self._filled]
        self._big, self._view = bigger, memoryview(bigger)  # (the old view is not released: see _finish)

    def _finish(self, out: list[Payload]) -> None:
        payload = self._big
        assert payload is not None
        length, crc = self._head
        self._big = self._view = None  # (not released: slices handed to recv_into may live on)
        self._filled = 0
        if _crc32(payload, _crc32(_LEN.pack(length))) != crc:
            self._fail("frame checksum mismatch")
        out.append(payload)

    def _parse(self, out: list[Payload]) -> None:
        with memoryview(self._buf) as mv:
            pos, failure = self._scan(mv, 0, out, keep=False)
        if failure is not None:
            self._fail(failure)
        if pos:
            del self._buf[:pos]

    def _scan(self, mv: memoryview, pos: int, out: list[Payload], *, keep: bool) -> tuple[int, str | None]:
        """Take the whole frames in ``mv`` from ``pos`` on; a large frame that does not
        end there gets its buffer (and takes the rest of ``mv``).  Return the position
        after what was taken, and why the stream is damaged (the caller fails, once it
        let go of ``mv``).  ``keep``: ``mv`` views immutable bytes, so a large payload
        may stay a view of it."""
        size = len(mv)
        failure = None
        while size - pos >= HEADER.size:
            length, crc = HEADER.unpack_from(mv, pos)
            if length == 0 or length > self.max_frame:
                failure = f"frame of {length} bytes is outside 1..{self.max_frame}"
                break
            end = pos + HEADER.size + length
            if end > size:
                if length >= self.big:  # a buffer of its own, which the rest goes into
                    with mv[pos + HEADER.size:size] as have:
                        self._big = bytearray(min(length, max(self.grow_from, 2 * len(have))))
                        self._view = memoryview(self._big)
                        self._view[:len(have)] = have
                    self._filled, self._head = size - pos - HEADER.size, (length, crc)
                    pos = size
                break
            payload = mv[pos + HEADER.size:end]
            if _crc32(payload, _crc32(mv[pos:pos + 4])) != crc:
                payload.release()
                failure = "frame checksum mismatch"
                break
            if keep and length >= self.big:
                out.append(payload.toreadonly())
            else:
                out.append(payload.tobytes())
                payload.release()
            pos = end
        return pos, failure

    def _fail(self, why: str) -> None:
        self._failed = FrameError(f"{why}: the connection is dropped and the follower fetches again")
        self._buf.clear()
        self._big = self._view = None
        raise self._failed
