"""Record batch format v1: the unit embedlog stores, checksums, compresses and replicates.

A batch holds the records of one partition appended together.  Its layout is columnar
so that encoding and decoding are a handful of C-level operations per batch
(``array``, ``bytes.join``, slicing) instead of Python work per record.  It follows the
ideas of Kafka's record batch v2 (KIP-98): a fixed header with the base offset, the
partition leader epoch (KIP-101) and a CRC, then the records; fields the leader stamps
at append time sit *before* the CRC'd range so stamping never recomputes the checksum.

All integers are little-endian.

Header (56 bytes)::

    off size field               notes
      0   8  base_offset         u64  offset of the first record; stamped at append
      8   4  leader_epoch        i32  epoch of the leader that appended it; stamped
     12   8  commit_seq          u64  store-wide sequence of the write transaction that
                                      appended it (batches of one transaction share it)
     20   4  crc                 u32  CRC-32 (zlib polynomial) of bytes [24:]
    --- covered by crc ---
     24   1  magic               u8   1
     25   1  attributes          u8   bits 0-2 compression (0 none, 1 zstd)
                                      bit 3 timestamps are LogAppendTime
                                      bit 4 records carry headers
                                      bit 5 sparse offsets (batch was compacted)
                                      bit 6 reserved (0)
                                      bit 7 written by a transaction
     26   2  reserved            u16  0
     28   4  record_count        u32
     32   4  last_offset_delta   u32  base_offset + this = last offset the batch covers
                                      (kept by compaction, as Kafka does)
     36   8  first_timestamp     i64  ms; the first record's timestamp
     44   8  max_timestamp       i64  ms; for LogAppendTime, the append time
     52   4  body_length         u32  length of the body before compression

Body (compressed as a whole when compression is on)::

    offset_deltas    count x u32   only with the sparse-offsets bit; else offsets are dense
    key_lengths      count x i32   -1 = null key
    value_lengths    count x i32   -1 = null value (a tombstone)
    timestamps       count x i64   ms since the epoch (absolute: encoding them is one C
                                   call; zstd removes the redundancy when it is on)
    header_lengths   count x u32   only with the headers bit
    header_blobs     per record: u16 n, then n x (u16 key_len, key utf-8,
                     i32 value_len (-1 null), value)
    keys             concatenated
    values           concatenated

Decoding verifies the CRC first and raises ``CorruptBatchError`` on any mismatch or
malformed length, never returning wrong data.
"""

from __future__ import annotations

import struct
import sys
import threading
import zlib
from array import array
from collections.abc import Sequence
from itertools import accumulate, islice, repeat
from typing import Any

import attrs
import zstandard

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "CorruptBatchError",
    "DecodedBatch",
    "BatchInfo",
    "decode",
    "encode",
    "read_info",
    "stamp",
    "verify",
]

MAGIC = 1
COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1
ATTR_COMPRESSION_MASK = 0x07
ATTR_LOG_APPEND_TIME = 0x08
ATTR_HEADERS = 0x10
ATTR_SPARSE = 0x20
ATTR_TRANSACTIONAL = 0x80

HEADER = struct.Struct("<QiQIBBHIIqqI")
HEADER_SIZE = HEADER.size  # 56
_STAMP = struct.Struct("<QiQ")
_CRC = struct.Struct("<I")
_CRC_AT = 20
_CRC_FROM = 24
_TIMES = struct.Struct("<qq")
_TIMES_AT = 36
_ATTR_AT = 25
_HDR_COUNT = struct.Struct("<H")
_HDR_KEY = struct.Struct("<H")
_HDR_VAL = struct.Struct("<i")

_LITTLE = sys.byteorder == "little"
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1

_PLACEHOLDER = bytearray()
_ZERO_HEADER = bytes(HEADER_SIZE)
# python-zstandard (de)compressors are not thread-safe: one pair per thread.
_zstd = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_zstd, "c", None)
    if c is None:
        c = _zstd.c = zstandard.ZstdCompressor(level=1)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_zstd, "d", None)
    if d is None:
        d = _zstd.d = zstandard.ZstdDecompressor()
    return d
COMPRESSIONS = {None: COMPRESSION_NONE, "none": COMPRESSION_NONE, "zstd": COMPRESSION_ZSTD}


class CorruptBatchError(ValueError):
    """The bytes are not a valid v1 batch (bad CRC, magic, or lengths).

    The storage layer turns this into ``embedlog.errors.CorruptRecordError`` with the
    topic, partition and offset; codecs know nothing of those.
    """


@attrs.frozen
class BatchInfo:
    """The header fields of a stored batch (read without decoding the body)."""

    base_offset: int
    leader_epoch: int
    commit_seq: int
    attributes: int
    record_count: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    size: int

    @property
    def last_offset(self) -> int:
        """The last offset this batch covers."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """The offset right after this batch."""
        return self.base_offset + self.last_offset_delta + 1


@attrs.frozen
class DecodedBatch:
    """The columns of a decoded batch; ``offsets`` is a ``range`` unless compacted."""

    info: BatchInfo
    offsets: Sequence[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    timestamps: Sequence[int]
    headers: list[list[tuple[str, bytes | None]]] | None


def _i32_array(values: list[int]) -> bytes:
    arr = array("i", values)
    if not _LITTLE:
        arr.byteswap()
    return arr.tobytes()


def _lengths(items: Sequence[bytes | None]) -> tuple[bytes, list[bytes]]:
    """The i32 length column of ``items`` and the non-null items to concatenate."""
    try:
        lens = list(map(len, items))  # type: ignore[arg-type]
        return _i32_array(lens), items  # type: ignore[return-value]
    except TypeError:  # some are None: the slow path, once per batch
        lens = [-1 if x is None else len(x) for x in items]
        return _i32_array(lens), [x for x in items if x is not None]


def _encode_headers(headers: Sequence[Sequence[tuple[str, bytes | None]] | None]) -> tuple[bytes, bytes]:
    blobs = []
    for hdrs in headers:
        if not hdrs:
            blobs.append(b"\x00\x00")
            continue
        parts = [_HDR_COUNT.pack(len(hdrs))]
        for name, value in hdrs:
            kb = name.encode("utf-8")
            parts.append(_HDR_KEY.pack(len(kb)))
            parts.append(kb)
            if value is None:
                parts.append(_HDR_VAL.pack(-1))
            else:
                parts.append(_HDR_VAL.pack(len(value)))
                parts.append(value)
        blobs.append(b"".join(parts))
    lens = array("I", map(len, blobs))
    if not _LITTLE:
        lens.byteswap()
    return lens.tobytes(), b"".join(blobs)


def encode(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    timestamps: Sequence[int],
    headers: Sequence[Sequence[tuple[str, bytes | None]] | None] | None = None,
    *,
    compression: int = COMPRESSION_NONE,
    offset_deltas: Sequence[int] | None = None,
    last_offset_delta: int | None = None,
    log_append_time: bool = False,
    transactional: bool = False,
) -> bytearray:
    """Encode one batch; the stamped fields (offset, epoch, commit seq) are left zero.

    ``headers`` is ``None`` or one entry per record (``None``/empty for no headers).
    ``offset_deltas`` (sorted, starting at 0) makes a sparse, compacted batch.
    """
    count = len(keys)
    if count == 0 or len(values) != count or len(timestamps) != count:
        raise ValueError("a batch needs at least one record and equal-length columns")
    first_ts = timestamps[0]
    max_ts = max(timestamps)
    attributes = compression
    if log_append_time:
        attributes |= ATTR_LOG_APPEND_TIME
    if transactional:
        attributes |= ATTR_TRANSACTIONAL
    parts: list[bytes] = [b""]  # [0] becomes the header placeholder when uncompressed
    if offset_deltas is not None:
        attributes |= ATTR_SPARSE
        od = array("I", offset_deltas)
        if not _LITTLE:
            od.byteswap()
        parts.append(od.tobytes())
        lod = offset_deltas[-1] if last_offset_delta is None else last_offset_delta
    else:
        lod = count - 1 if last_offset_delta is None else last_offset_delta
    klens, kparts = _lengths(keys)
    vlens, vparts = _lengths(values)
    parts.append(klens)
    parts.append(vlens)
    ts = array("q", timestamps)
    if not _LITTLE:
        ts.byteswap()
    parts.append(ts.tobytes())
    if headers is not None and any(headers):
        attributes |= ATTR_HEADERS
        hlens, hblob = _encode_headers(headers)
        parts.append(hlens)
        parts.append(hblob)
    parts.extend(kparts)
    parts.extend(vparts)
    if compression == COMPRESSION_NONE:
        parts[0] = _ZERO_HEADER
        out = _PLACEHOLDER.join(parts)  # one copy: header placeholder, then the body
        body_len = len(out) - HEADER_SIZE
    elif compression == COMPRESSION_ZSTD:
        raw = b"".join(parts[1:])
        body_len = len(raw)
        out = bytearray(HEADER_SIZE)
        out += _compressor().compress(raw)
    else:
        raise ValueError(f"unknown compression code {compression}")
    HEADER.pack_into(out, 0, 0, 0, 0, 0, MAGIC, attributes, 0, count, lod, first_ts, max_ts, body_len)
    _CRC.pack_into(out, _CRC_AT, zlib.crc32(memoryview(out)[_CRC_FROM:]))
    return out


def stamp(buf: bytearray, base_offset: int, leader_epoch: int, commit_seq: int) -> None:
    """Write the append-time fields into an encoded batch (outside the CRC)."""
    _STAMP.pack_into(buf, 0, base_offset, leader_epoch, commit_seq)


def restamp_log_append_time(buf: bytearray, now_ms: int) -> None:
    """Mark a batch LogAppendTime with ``now_ms`` and recompute its CRC."""
    buf[_ATTR_AT] |= ATTR_LOG_APPEND_TIME
    first, _ = _TIMES.unpack_from(buf, _TIMES_AT)
    _TIMES.pack_into(buf, _TIMES_AT, first, now_ms)
    _CRC.pack_into(buf, _CRC_AT, zlib.crc32(memoryview(buf)[_CRC_FROM:]))


def read_info(buf: Any) -> BatchInfo:
    """Read a batch header (no CRC check); ``buf`` is any bytes-like object."""
    if len(buf) < HEADER_SIZE:
        raise CorruptBatchError(f"batch of {len(buf)} bytes is shorter than its {HEADER_SIZE}-byte header")
    (base, epoch, seq, _crc, magic, attributes, _r, count, lod, first_ts, max_ts, _bl) = HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise CorruptBatchError(f"unknown batch magic {magic}")
    return BatchInfo(base, epoch, seq, attributes, count, lod, first_ts, max_ts, len(buf))


def verify(buf: Any) -> BatchInfo:
    """Check a batch's CRC and header; return its info or raise ``CorruptBatchError``."""
    info = read_info(buf)
    (crc,) = _CRC.unpack_from(buf, _CRC_AT)
    if zlib.crc32(memoryview(buf)[_CRC_FROM:]) != crc:
        raise CorruptBatchError("batch checksum mismatch")
    return info


def _int_array(code: str, body: bytes, pos: int, count: int) -> tuple[array[int], int]:
    end = pos + count * 4 if code in "iI" else pos + count * 8
    if end > len(body):
        raise CorruptBatchError("batch body is shorter than its record columns")
    arr = array(code)
    arr.frombytes(body[pos:end])
    if not _LITTLE:
        arr.byteswap()
    return arr, end


def _split(body: bytes, pos: int, lens: array[int]) -> tuple[list[bytes | None], int]:
    has_null = -1 in lens
    sizes = [0 if n < 0 else n for n in lens] if has_null else lens
    ends = list(accumulate(sizes, initial=pos))
    end = ends[-1]
    if end > len(body) or (lens and min(lens) < -1):
        raise CorruptBatchError("record lengths run past the end of the batch")
    out: list[bytes | None] = list(map(body.__getitem__, map(slice, ends, islice(ends, 1, None))))
    if has_null:
        for i, n in enumerate(lens):
            if n < 0:
                out[i] = None
    return out, end


def _decode_headers(blob: bytes, lens: array[int]) -> list[list[tuple[str, bytes | None]]]:
    out: list[list[tuple[str, bytes | None]]] = []
    pos = 0
    try:
        for n in lens:
            end = pos + n
            (count,) = _HDR_COUNT.unpack_from(blob, pos)
            p = pos + 2
            hdrs: list[tuple[str, bytes | None]] = []
            for _ in range(count):
                (kl,) = _HDR_KEY.unpack_from(blob, p)
                name = blob[p + 2 : p + 2 + kl].decode("utf-8")
                p += 2 + kl
                (vl,) = _HDR_VAL.unpack_from(blob, p)
                p += 4
                if vl < 0:
                    hdrs.append((name, None))
                else:
                    hdrs.append((name, blob[p : p + vl]))
                    p += vl
            if p != end:
                raise CorruptBatchError("record headers do not match their length")
            out.append(hdrs)
            pos = end
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptBatchError(f"malformed record headers: {exc}") from None
    if pos != len(blob):
        raise CorruptBatchError("record headers do not match their length")
    return out


def decode(buf: Any) -> DecodedBatch:
    """Verify and decode a whole batch into columns."""
    info = verify(buf)
    attributes = info.attributes
    count = info.record_count
    raw = bytes(memoryview(buf)[HEADER_SIZE:])
    compression = attributes & ATTR_COMPRESSION_MASK
    (body_len,) = struct.unpack_from("<I", buf, 52)
    if compression == COMPRESSION_ZSTD:
        try:
            # The frame states its size (encode always writes it): check it before zstd
            # sees it, and decompress incrementally so a lying header allocates nothing.
            declared = zstandard.frame_content_size(raw)
            if declared != body_len:
                raise CorruptBatchError(f"zstd frame holds {declared} bytes, the header says {body_len}")
            dobj = _decompressor().decompressobj()
            body = dobj.decompress(raw)
            if not dobj.eof:
                raise CorruptBatchError("zstd frame is truncated")
        except zstandard.ZstdError as exc:
            raise CorruptBatchError(f"zstd body does not decompress: {exc}") from None
        except MemoryError:
            raise CorruptBatchError("zstd body claims more memory than is available") from None
    elif compression == COMPRESSION_NONE:
        body = raw
    else:
        raise CorruptBatchError(f"unknown compression code {compression}")
    if len(body) != body_len:
        raise CorruptBatchError("batch body length does not match its header")
    pos = 0
    offsets: Sequence[int]
    if attributes & ATTR_SPARSE:
        deltas, pos = _int_array("I", body, pos, count)
        base = info.base_offset
        offsets = [base + d for d in deltas]
    else:
        offsets = range(info.base_offset, info.base_offset + count)
    klens, pos = _int_array("i", body, pos, count)
    vlens, pos = _int_array("i", body, pos, count)
    ts_col, pos = _int_array("q", body, pos, count)
    if attributes & ATTR_LOG_APPEND_TIME:
        timestamps: Sequence[int] = list(repeat(info.max_timestamp, count))
    else:
        timestamps = ts_col.tolist()
    headers = None
    if attributes & ATTR_HEADERS:
        hlens, pos = _int_array("I", body, pos, count)
        hend = pos + sum(hlens)
        if hend > len(body):
            raise CorruptBatchError("record headers run past the end of the batch")
        headers = _decode_headers(body[pos:hend], hlens)
        pos = hend
    keys, pos = _split(body, pos, klens)
    values, pos = _split(body, pos, vlens)
    if pos != len(body):
        raise CorruptBatchError("batch body has trailing bytes")
    return DecodedBatch(info, offsets, keys, values, timestamps, headers)
