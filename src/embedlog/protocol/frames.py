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
is copied once out of the receive buffer; a large one (``big`` bytes or more) is kept
as the chunks it arrives in and joined once when whole.  Encoding frames a message's
parts (``frame_parts``) without joining them first.
"""

from __future__ import annotations

import importlib
import struct
import zlib
from collections.abc import Callable, Sequence

from .errors import FrameError

__all__ = ["BIG_FRAME", "HEADER", "MAX_FRAME", "FrameDecoder", "encode_frame", "frame_parts"]

HEADER = struct.Struct("<II")
_LEN = struct.Struct("<I")
#: The default cap on one frame's payload: far above a fetch response's budget (a few
#: MiB), and above any single batch a producer writes by default.
MAX_FRAME = 64 << 20
#: Payloads of at least this many bytes are gathered as they arrive and joined once.
BIG_FRAME = 64 << 10


def _load_crc32() -> Callable[..., int]:
    """ISA-L's CRC-32 when ``isal`` is installed (extra ``[fast]``; the zlib polynomial,
    so the same checksums, ~3x faster), else zlib's."""
    try:
        return importlib.import_module("isal.isal_zlib").crc32  # type: ignore[no-any-return]
    except ImportError:
        return zlib.crc32


_crc32 = _load_crc32()


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

    def __init__(self, max_frame: int = MAX_FRAME, big: int = BIG_FRAME) -> None:
        self.max_frame = max_frame
        self.big = max(1, big)
        self._buf = bytearray()
        #: a large frame being received: the pieces so far, bytes still missing, its header
        self._pieces: list[bytes | memoryview] | None = None
        self._missing = 0
        self._head = (0, 0)
        self._failed: FrameError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        large = HEADER.size + self._head[0] - self._missing if self._pieces is not None else 0
        return len(self._buf) + large

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add received bytes; return every payload they complete, in order.

        Raises ``FrameError`` on a damaged or oversized frame (and on every later call).
        """
        if self._failed is not None:
            raise self._failed
        out: list[bytes] = []
        start = self._take(data, out) if self._pieces is not None else 0
        if start < len(data):
            if start:
                with memoryview(data) as view:
                    self._buf += view[start:]
            else:
                self._buf += data
            self._parse(out)
        return out

    def _take(self, data: bytes | bytearray | memoryview, out: list[bytes]) -> int:
        """Keep what ``data`` holds of the large frame (``bytes`` by reference: they
        cannot change); when it is whole, join it (the one copy); return bytes used."""
        pieces = self._pieces
        assert pieces is not None
        take = min(self._missing, len(data))
        if isinstance(data, bytes):
            pieces.append(data if take == len(data) else memoryview(data)[:take])
        else:
            with memoryview(data) as view:
                pieces.append(view[:take].tobytes())
        self._missing -= take
        if not self._missing:
            length, crc = self._head
            self._pieces = None
            payload = b"".join(pieces)
            pieces.clear()
            if _crc32(payload, _crc32(_LEN.pack(length))) != crc:
                self._fail("frame checksum mismatch")
            out.append(payload)
        return take

    def _parse(self, out: list[bytes]) -> None:
        buf = self._buf
        pos = 0
        size = len(buf)
        failure = None
        with memoryview(buf) as mv:
            while size - pos >= HEADER.size:
                length, crc = HEADER.unpack_from(buf, pos)
                if length == 0 or length > self.max_frame:
                    failure = f"frame of {length} bytes is outside 1..{self.max_frame}"
                    break
                end = pos + HEADER.size + length
                if end > size:
                    if length >= self.big:  # gather the rest as it comes, join it once whole
                        have = mv[pos + HEADER.size:size].tobytes()
                        self._pieces = [have] if have else []
                        self._missing, self._head = length - len(have), (length, crc)
                        pos = size
                    break
                with mv[pos + HEADER.size:end] as payload:
                    if _crc32(payload, _crc32(mv[pos:pos + 4])) != crc:
                        failure = "frame checksum mismatch"
                        break
                    out.append(payload.tobytes())
                pos = end
        if failure is not None:
            self._fail(failure)
        if pos:
            del buf[:pos]

    def _fail(self, why: str) -> None:
        self._failed = FrameError(f"{why}: the connection is dropped and the follower fetches again")
        self._buf.clear()
        self._pieces = None
        raise self._failed
