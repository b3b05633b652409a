"""Length-prefixed, checksummed frames: the unit the transport carries.

A frame is::

    u32le length    of the payload (1 .. max_frame)
    u32le crc       CRC-32 (zlib) of the 4 length bytes and the payload
    payload         one encoded message (``messages.encode``)

The checksum covers the length too, so a damaged length is caught as soon as the
bytes it claims have arrived (or at once when it claims more than the cap).  Any
damage raises ``FrameError``; a decoder that raised is dead, because a byte stream
that lost its framing cannot be resynchronised safely.
"""

from __future__ import annotations

import struct
import zlib

from .errors import FrameError

__all__ = ["HEADER", "MAX_FRAME", "FrameDecoder", "encode_frame"]

HEADER = struct.Struct("<II")
_LEN = struct.Struct("<I")
#: The default cap on one frame's payload: far above a fetch response's budget (a few
#: MiB), and above any single batch a producer writes by default.
MAX_FRAME = 64 << 20


def encode_frame(payload: bytes) -> bytes:
    """Frame one payload."""
    if not payload:
        raise ValueError("a frame carries at least one byte")
    head = _LEN.pack(len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + _LEN.pack(crc) + payload


class FrameDecoder:
    """Incremental frame decoder: feed it any chunks, get whole payloads back."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._failed: FrameError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add received bytes; return every payload they complete, in order.

        Raises ``FrameError`` on a damaged or oversized frame (and on every later call).
        """
        if self._failed is not None:
            raise self._failed
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        size = len(buf)
        while size - pos >= HEADER.size:
            length, crc = HEADER.unpack_from(buf, pos)
            if length == 0 or length > self.max_frame:
                self._fail(f"frame of {length} bytes is outside 1..{self.max_frame}")
            end = pos + HEADER.size + length
            if end > size:
                break
            payload = bytes(buf[pos + HEADER.size:end])
            if zlib.crc32(payload, zlib.crc32(buf[pos:pos + 4])) != crc:
                self._fail("frame checksum mismatch")
            out.append(payload)
            pos = end
        if pos:
            del buf[:pos]
        return out

    def _fail(self, why: str) -> None:
        self._failed = FrameError(f"{why}: the connection is dropped and the follower fetches again")
        self._buf.clear()
        raise self._failed
