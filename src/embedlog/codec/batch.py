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
                                      bit 6 delete horizon set (see below)
                                      bit 7 written by a transaction
     26   2  reserved            u16  0
     28   4  record_count        u32
     32   4  last_offset_delta   u32  base_offset + this = last offset the batch covers
                                      (kept by compaction, as Kafka does)
     36   8  first_timestamp     i64  ms; the first record's timestamp, or with bit 6
                                      the delete horizon (see below)
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

Delete horizon (Kafka's KIP-534): compaction keeps a key's latest tombstone for
``delete.retention.ms`` after it first saw it, whatever the record's own timestamp.  It
then rewrites the tombstone's batch with attribute ``0x40`` and ``first_timestamp``
holding the wall-clock ms from which its tombstones may go (the first record's
timestamp stays in the timestamps column).  Readers of format 1 that predate the
attribute ignore it.

Decoding verifies the CRC first and raises ``CorruptBatchError`` on any mismatch or
malformed length, never returning wrong data.
"""

from __future__ import annotations

import struct
import sys
import threading
from array import array
from collections.abc import Sequence
from itertools import chain, repeat
from operator import add, itemgetter
from typing import Any, NamedTuple

import zstandard

from .. import _native
from . import crc

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "CorruptBatchError",
    "DecodedBatch",
    "BatchInfo",
    "checksum_matches",
    "decode",
    "encode",
    "encode_one",
    "encode_records",
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
ATTR_DELETE_HORIZON = 0x40
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
_BODY_LEN = struct.Struct("<I")
_BODY_LEN_AT = 52
_HDR_COUNT = struct.Struct("<H")
_HDR_KEY = struct.Struct("<H")
_HDR_VAL = struct.Struct("<i")
_I32 = struct.Struct("<i")

_LITTLE = sys.byteorder == "little"
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1

_PLACEHOLDER = bytearray()
_ZERO_HEADER = bytes(HEADER_SIZE)
# python-zstandard (de)compressors are not thread-safe: one pair per thread.
_zstd = threading.local()


_crc32 = crc.crc32
_CRC_CHUNK = crc.GIL_RELEASE_BYTES


def _crc32_held(data: memoryview) -> int:
    """CRC-32 of ``data`` in chunks small enough that the GIL is never released.

    Releasing it for the ~25 us of a 256 KiB batch lets a waiting thread take it, so
    the decoding thread then sleeps until the next switch interval: consumers on four
    threads lost a tenth of their throughput to such hand-offs.  The chunks cost ~20%
    more CPU time for the checksum alone (~5 us a 256 KiB batch).
    """
    n = len(data)
    if n <= _CRC_CHUNK:
        return _crc32(data)
    crc = 0
    for i in range(0, n, _CRC_CHUNK):
        crc = _crc32(data[i:i + _CRC_CHUNK], crc)
    return crc


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


class BatchInfo(NamedTuple):
    """The header fields of a stored batch (read without decoding the body).

    A named tuple, not an attrs class: one is made for every batch read, and a frozen
    attrs instance of nine fields costs ~1.5 us to make (a ``__setattr__`` call a field),
    a quarter of a one-record batch's whole decode."""

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
    def delete_horizon(self) -> int | None:
        """Compaction's delete horizon (ms) of this batch's tombstones, if it set one."""
        return self.first_timestamp if self.attributes & ATTR_DELETE_HORIZON else None

    @property
    def next_offset(self) -> int:
        """The offset right after this batch."""
        return self.base_offset + self.last_offset_delta + 1


class DecodedBatch(NamedTuple):
    """The columns of a decoded batch; ``offsets`` is a ``range`` unless compacted
    (a named tuple for the reason ``BatchInfo`` is one)."""

    info: BatchInfo
    offsets: Sequence[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    timestamps: Sequence[int]
    headers: list[list[tuple[str, bytes | None]]] | None


def _pack(code: str, values: Sequence[int]) -> bytes:
    """A little-endian column of ``values`` (one C call: struct is ~3x faster than array here)."""
    return struct.pack(f"<{len(values)}{code}", *values)


def lengths(items: Sequence[bytes | None]) -> list[int]:
    """The length column of ``items`` (-1 for ``None``), as ``encode`` takes it."""
    try:
        return list(map(len, items))  # type: ignore[arg-type]
    except TypeError:  # some are None: the slow path, once per batch
        return [-1 if x is None else len(x) for x in items]


def _present(items: Sequence[bytes | None], lens: Sequence[int]) -> Sequence[bytes]:
    """The non-null items, to concatenate."""
    return [x for x in items if x is not None] if -1 in lens else items  # type: ignore[return-value]


_HDR_CACHE: dict[tuple[tuple[str, bytes | None], ...], bytes] = {}
_HDR_CACHE_MAX = 4096
_NO_HEADERS = b"\x00\x00"
_NULL_VALUE = _HDR_VAL.pack(-1)
#: header name -> its u16 length and utf-8 bytes, as encoded (names are few)
_NAMES: dict[str, bytes] = {}
_first = itemgetter(0)
_second = itemgetter(1)


def _encode_headers(headers: Sequence[Sequence[tuple[str, bytes | None]] | None]) -> tuple[bytes, bytes]:
    """The header_lengths column and the header blobs of a batch."""
    n = len(headers)
    if n >= 8 and headers[0] is not headers[-1]:  # (the same object at both ends: an app's constant headers)
        try:
            counts = set(map(len, headers))  # type: ignore[arg-type]
        except TypeError:  # records without headers (None)
            counts = set()
        if len(counts) == 1:
            k = counts.pop()
            if 0 < k <= 16:
                return _encode_header_columns(headers, n, k)  # type: ignore[arg-type]
    blobs: list[bytes] = []
    append = blobs.append
    cache = _HDR_CACHE
    prev: object = None
    blob = _NO_HEADERS
    for hdrs in headers:
        if hdrs is not prev:  # (a producer hands over equal header sets as one object)
            prev = hdrs
            if not hdrs:
                blob = _NO_HEADERS
            else:
                key = hdrs if hdrs.__class__ is tuple else tuple(hdrs)
                got = cache.get(key)  # the same headers on many records (an app's) encode once
                if got is None:
                    got = _encode_one_header_set(key)
                    if len(cache) >= _HDR_CACHE_MAX:
                        cache.clear()
                    cache[key] = got
                blob = got
        append(blob)
    return _pack("I", list(map(len, blobs))), b"".join(blobs)


def _encode_header_columns(headers: Sequence[Sequence[tuple[str, bytes | None]]], n: int,
                           k: int) -> tuple[bytes, bytes]:
    """``_encode_headers`` for ``n`` records of ``k`` headers each, column by column: a
    handful of C-level passes instead of Python work per header (distinct header sets,
    such as a trace id per record, that the cache cannot serve)."""
    pairs = list(map(_first, headers)) if k == 1 else list(chain.from_iterable(headers))
    names = list(map(_first, pairs))
    values = list(map(_second, pairs))
    try:
        name_parts = list(map(_NAMES.__getitem__, names))
    except KeyError:
        name_parts = [_NAMES.get(name) or _name_bytes(name) for name in names]
    vlens = lengths(values)
    if -1 in vlens:  # null values: a -1 length, no bytes
        values = [b"" if v is None else v for v in values]
    sizes = list(map(add, map(len, name_parts), map(len, values)))
    m = n * k
    val_lens = struct.unpack("4s" * m, _pack("i", vlens))  # one C split into 4-byte pieces
    stride = 1 + 3 * k
    parts: list[bytes] = [_NO_HEADERS] * (n * stride)
    parts[0::stride] = repeat(_HDR_COUNT.pack(k), n)
    for j in range(k):
        parts[1 + 3 * j::stride] = name_parts[j::k]
        parts[2 + 3 * j::stride] = val_lens[j::k]
        parts[3 + 3 * j::stride] = values[j::k]
    per_record = sizes[0::k] if k > 1 else sizes
    for j in range(1, k):
        per_record = list(map(add, per_record, sizes[j::k]))
    per_record = list(map(add, per_record, repeat(2 + 4 * k, n)))
    return _pack("I", per_record), b"".join(parts)


def _name_bytes(name: str) -> bytes:
    kb = name.encode("utf-8")
    out = _HDR_KEY.pack(len(kb)) + kb
    if len(_NAMES) >= _HDR_CACHE_MAX:
        _NAMES.clear()
    _NAMES[name] = out
    return out


def _encode_one_header_set(hdrs: Sequence[tuple[str, bytes | None]]) -> bytes:
    parts = [_HDR_COUNT.pack(len(hdrs))]
    names = _NAMES
    val_len = _HDR_VAL.pack
    for name, value in hdrs:
        nb = names.get(name)
        if nb is None:
            nb = _name_bytes(name)
        if value is None:
            parts += (nb, _NULL_VALUE)
        else:
            parts += (nb, val_len(len(value)), value)
    return b"".join(parts)


def _join(parts: list[bytes], compression: int) -> tuple[bytearray, int]:
    """The batch (header left zero) from ``parts`` (``parts[0]`` is a placeholder); its body length."""
    if compression == COMPRESSION_NONE:
        parts[0] = _ZERO_HEADER
        out = _PLACEHOLDER.join(parts)  # one copy: header placeholder, then the body
        return out, len(out) - HEADER_SIZE
    raw = b"".join(parts[1:])
    out = bytearray(HEADER_SIZE)
    out += _compressor().compress(raw)
    return out, len(raw)


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
    key_lengths: Sequence[int] | None = None,
    value_lengths: Sequence[int] | None = None,
    delete_horizon: int | None = None,
) -> bytearray:
    """Encode one batch; the stamped fields (offset, epoch, commit seq) are left zero.

    ``headers`` is ``None`` or one entry per record (``None``/empty for no headers).
    ``offset_deltas`` (sorted, starting at 0) makes a sparse, compacted batch.
    ``delete_horizon`` (ms): compaction's, for a batch holding tombstones (bit 6).
    ``key_lengths``/``value_lengths`` (``len`` of each item, -1 for ``None``), when the
    caller already has them, save a pass over the records.
    """
    count = len(keys)
    if count == 0 or len(values) != count or len(timestamps) != count:
        raise ValueError("a batch needs at least one record and equal-length columns")
    first_ts = timestamps[0]
    max_ts = max(timestamps)
    attributes = compression
    if delete_horizon is not None:
        attributes |= ATTR_DELETE_HORIZON
        first_ts = delete_horizon
    if log_append_time:
        attributes |= ATTR_LOG_APPEND_TIME
    if transactional:
        attributes |= ATTR_TRANSACTIONAL
    parts: list[bytes] = [b""]  # [0] becomes the header placeholder when uncompressed
    if offset_deltas is not None:
        attributes |= ATTR_SPARSE
        parts.append(_pack("I", offset_deltas))
        lod = offset_deltas[-1] if last_offset_delta is None else last_offset_delta
    else:
        lod = count - 1 if last_offset_delta is None else last_offset_delta
    klens = lengths(keys) if key_lengths is None else key_lengths
    vlens = lengths(values) if value_lengths is None else value_lengths
    if len(klens) != count or len(vlens) != count:
        raise ValueError("a batch needs at least one record and equal-length columns")
    parts.append(_pack("i", klens))
    parts.append(_pack("i", vlens))
    parts.append(_pack("q", timestamps))
    if headers is not None and any(headers):
        attributes |= ATTR_HEADERS
        hlens, hblob = _encode_headers(headers)
        parts.append(hlens)
        parts.append(hblob)
    if compression not in (COMPRESSION_NONE, COMPRESSION_ZSTD):
        raise ValueError(f"unknown compression code {compression}")
    head = len(parts)
    parts += keys  # type: ignore[arg-type]  # (a None makes the join fail: handled below)
    parts += values  # type: ignore[arg-type]
    try:
        out, body_len = _join(parts, compression)
    except TypeError:  # null keys or values: drop them (their length is -1), once per batch
        del parts[head:]
        parts += _present(keys, klens)
        parts += _present(values, vlens)
        out, body_len = _join(parts, compression)
    HEADER.pack_into(out, 0, 0, 0, 0, 0, MAGIC, attributes, 0, count, lod, first_ts, max_ts, body_len)
    _CRC.pack_into(out, _CRC_AT, _crc32(memoryview(out)[_CRC_FROM:]))
    return out


def encode_records(flat: list[Any], stride: int, start: int, stop: int, limit: int, *,
                   transactional: bool = False, out: bytearray | None = None) -> tuple[bytearray, int]:
    """``encode`` of the records from ``start`` of a flat record buffer — ``stride`` entries
    a record, the first three its key, value and timestamp (a producer's buffer) — up to
    ``stop`` or as many as fit ``limit`` bytes of keys and values (at least one), without
    headers or compression; returns the batch and where it ended.  The same bytes as
    ``encode``, in one C pass where ``embedlog._speedups`` is built (no column copies, no
    join of a part per record).  ``out``, a bytearray no longer in use, is filled instead
    of a new one where it can be (the C pass; reusing memory spares the page faults of a
    fresh megabyte per batch)."""
    speedups = _native.speedups
    if speedups is None:
        end = start
        size = 0
        while end < stop:
            base = end * stride
            add = len(flat[base] or b"") + len(flat[base + 1] or b"")
            if end > start and size + add > limit:
                break
            size += add
            end += 1
        a, b = start * stride, end * stride
        return encode(flat[a:b:stride], flat[a + 1:b:stride], flat[a + 2:b:stride], transactional=transactional), end
    buf, end = speedups.encode_records(flat, stride, start, stop, ATTR_TRANSACTIONAL if transactional else 0, limit,
                                       out)
    with memoryview(buf) as view:  # (released at once: the buffer may be resized when reused)
        _CRC.pack_into(buf, _CRC_AT, _crc32(view[_CRC_FROM:]))
    return buf, end


#: a one-record body without headers or sparse offsets: key length, value length, timestamp
_ONE_RECORD = struct.Struct("<iiq")
#: the extension's one-record encoder (``_speedups.encode_one``; little-endian hosts, as the format)
_encode_one_c = getattr(_native.speedups, "encode_one", None) if _LITTLE else None


def encode_one(key: bytes | None, value: bytes | None, timestamp: int, *, transactional: bool = False) -> bytearray:
    """``encode`` of one record without headers or compression, the same bytes in a
    third of the time (a single-record ``flush()`` encodes one such batch); in one C
    call (``_speedups.encode_one``) for bytes or None up to a 4 KiB batch."""
    if _encode_one_c is not None:
        out = _encode_one_c(key, value, timestamp, ATTR_TRANSACTIONAL if transactional else 0)
        if out is not None:
            return out  # type: ignore[no-any-return]
    out = bytearray(_ZERO_HEADER)
    klen = -1 if key is None else len(key)
    vlen = -1 if value is None else len(value)
    out += _ONE_RECORD.pack(klen, vlen, timestamp)
    if key is not None:
        out += key
    if value is not None:
        out += value
    HEADER.pack_into(out, 0, 0, 0, 0, 0, MAGIC, ATTR_TRANSACTIONAL if transactional else 0, 0, 1, 0,
                     timestamp, timestamp, len(out) - HEADER_SIZE)
    _CRC.pack_into(out, _CRC_AT, _crc32(memoryview(out)[_CRC_FROM:]))
    return out


def stamp(buf: bytearray, base_offset: int, leader_epoch: int, commit_seq: int) -> None:
    """Write the append-time fields into an encoded batch (outside the CRC)."""
    _STAMP.pack_into(buf, 0, base_offset, leader_epoch, commit_seq)


def restamp_log_append_time(buf: bytearray, now_ms: int) -> None:
    """Mark a batch LogAppendTime with ``now_ms`` and recompute its CRC."""
    buf[_ATTR_AT] |= ATTR_LOG_APPEND_TIME
    first, _ = _TIMES.unpack_from(buf, _TIMES_AT)
    _TIMES.pack_into(buf, _TIMES_AT, first, now_ms)
    _CRC.pack_into(buf, _CRC_AT, _crc32(memoryview(buf)[_CRC_FROM:]))


def read_info(buf: Any) -> BatchInfo:
    """Read a batch header (no CRC check); ``buf`` is any bytes-like object."""
    if len(buf) < HEADER_SIZE:
        raise CorruptBatchError(f"batch of {len(buf)} bytes is shorter than its {HEADER_SIZE}-byte header")
    (base, epoch, seq, _crc, magic, attributes, _r, count, lod, first_ts, max_ts, _bl) = HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise CorruptBatchError(f"unknown batch magic {magic}")
    return BatchInfo(base, epoch, seq, attributes, count, lod, first_ts, max_ts, len(buf))


def checksum_matches(buf: Any) -> bool:
    """Whether a batch's CRC matches its bytes (header not checked: ``read_info``),
    computed in one call, which releases the GIL for a large batch: for a thread that
    checks batches while another runs Python (``verify`` keeps the GIL, as consumers
    want)."""
    with memoryview(buf) as view:
        return bool(_crc32(view[_CRC_FROM:]) == _CRC.unpack_from(view, _CRC_AT)[0])


def verify(buf: Any) -> BatchInfo:
    """Check a batch's CRC and header; return its info or raise ``CorruptBatchError``."""
    info = read_info(buf)
    (crc,) = _CRC.unpack_from(buf, _CRC_AT)
    if _crc32_held(memoryview(buf)[_CRC_FROM:]) != crc:
        raise CorruptBatchError("batch checksum mismatch")
    return info


def _int_array(code: str, body: Any, pos: int, count: int) -> tuple[array[int], int]:
    end = pos + count * 4 if code in "iI" else pos + count * 8
    if end > len(body):
        raise CorruptBatchError("batch body is shorter than its record columns")
    arr = array(code)
    arr.frombytes(body[pos:end])
    if not _LITTLE:
        arr.byteswap()
    return arr, end


#: the extension's column splitter (``_speedups.split_column``; little-endian hosts, as the format)
_split_c = getattr(_native.speedups, "split_column", None) if _LITTLE else None
#: struct codes "0s".."4095s": a split's format is a join of table entries, not of f-strings
_S_CODES = tuple(f"{i}s" for i in range(4096))
_SMALL = bytes(range(16))
#: compiled splits by length column: batches of one shape (the same lengths) reuse them
_SPLITS: dict[bytes, tuple[struct.Struct, int]] = {}
_SPLITS_KEPT = 16
#: records: longer columns are not kept (a kept split holds its column, 4 bytes a record, and
#: 32 bytes a record of compiled codes: at most ~7.5 MiB for all of them)
_SPLIT_CACHED_UP_TO = 1 << 14


def _splitter(col: bytes, lens: Any) -> tuple[struct.Struct, int]:
    """The compiled split for length column ``col`` (lengths ``lens``, none negative)
    and the bytes it covers."""
    if col == col[:4] * len(lens) and lens[0] < 4096:  # all one size: a repeated code
        fmt = _S_CODES[lens[0]] * len(lens)
    elif not col[2::4].strip(b"\0") and not col[3::4].strip(b"\0") and not col[1::4].translate(None, _SMALL):
        fmt = "".join(map(_S_CODES.__getitem__, lens))
    else:
        fmt = "".join(map("{}s".format, lens))
    hit = struct.Struct(fmt), sum(lens)
    if len(lens) <= _SPLIT_CACHED_UP_TO:
        if len(_SPLITS) >= _SPLITS_KEPT:
            _SPLITS.clear()  # (one C call: safe against other threads, unlike evicting one)
        _SPLITS[col] = hit
    return hit


def _split(body: Any, pos: int, col: bytes) -> tuple[list[bytes | None], int]:
    """Cut the items whose i32 lengths are ``col`` off ``body`` from ``pos``.

    One ``struct`` unpack with an ``"<n>s"`` code per item makes every ``bytes`` in C
    (no slice object per item).  The common shape is recognised on the column's bytes,
    without an int object per item: no negative length (every high byte is ASCII) and
    every length under 4096 (high bytes zero, second byte under 16).  Compiled splits are
    kept by column: a producer's batches often repeat one key-length sequence, and
    building the format again cost more than the unpack (0.2 of 0.27 ms a 2,500-record
    column).
    """
    if _split_c is not None:  # the extension: one bytes object an item, no format to compile
        try:
            return _split_c(body, pos, col)  # type: ignore[no-any-return]
        except ValueError as exc:
            raise CorruptBatchError(str(exc)) from None
    count = len(col) // 4
    if count == 1:  # a single-record batch (the latency path): no format string at all
        n = _I32.unpack(col)[0]
        if n < 0:
            if n < -1:
                raise CorruptBatchError("record lengths run past the end of the batch")
            return [None], pos
        end = pos + n
        if end > len(body):
            raise CorruptBatchError("record lengths run past the end of the batch")
        return [bytes(body[pos:end])], end
    if not count:
        return [], pos
    if col[3::4].isascii():  # no null (-1) and no negative length
        hit = _SPLITS.get(col)  # (a hash of the column: far cheaper than building its format)
        if hit is None:
            hit = _splitter(col, struct.unpack(f"<{count}i", col))
        split, size = hit
        end = pos + size
        if end > len(body):
            raise CorruptBatchError("record lengths run past the end of the batch")
        return list(split.unpack_from(body, pos)), end
    lens = struct.unpack(f"<{count}i", col)
    if min(lens) < -1:
        raise CorruptBatchError("record lengths run past the end of the batch")
    sizes = [0 if n < 0 else n for n in lens]
    end = pos + sum(sizes)
    if end > len(body):
        raise CorruptBatchError("record lengths run past the end of the batch")
    out: list[bytes | None] = list(struct.Struct("".join(map("{}s".format, sizes))).unpack_from(body, pos))
    for i, n in enumerate(lens):
        if n < 0:
            out[i] = None
    return out, end


def _column(body: Any, pos: int, count: int) -> tuple[bytes, int]:
    """The ``count`` i32 column at ``pos``, as bytes."""
    end = pos + count * 4
    if end > len(body):
        raise CorruptBatchError("batch body is shorter than its record columns")
    return bytes(body[pos:end]), end


class _OtherShape(Exception):
    """The records' headers do not all have the first record's shape."""


def _header_shape(blob: bytes, end: int) -> list[tuple[int, int]]:
    """(name length, value length) of each header of the record at the start of ``blob``
    (``end`` bytes long)."""
    (count,) = _HDR_COUNT.unpack_from(blob, 0)
    p = 2
    shape = []
    for _ in range(count):
        (kl,) = _HDR_KEY.unpack_from(blob, p)
        p += 2 + kl
        (vl,) = _HDR_VAL.unpack_from(blob, p)
        p += 4 + max(vl, 0)
        shape.append((kl, vl))
    if p != end or not count:
        raise _OtherShape
    return shape


def _header_fields(blob: bytes, lens: array[int], n: int, shape: list[tuple[int, int]]) -> list[Any]:
    """Every field of every record's headers (count, then name length, name, value length,
    value per header) in one flat list, read as ``shape`` says; ``_OtherShape`` if a record
    differs."""
    first = lens[0]
    if lens.count(first) == n:  # every record the same size: one small format, repeated
        fmt = "<H" + "".join(f"H{kl}si{max(vl, 0)}s" for kl, vl in shape)
        flat = list(chain.from_iterable(struct.iter_unpack(fmt, blob)))
        width = 1 + 4 * len(shape)
        for j, (kl, vl) in enumerate(shape):
            if flat[1 + 4 * j::width].count(kl) != n or flat[3 + 4 * j::width].count(vl) != n:
                raise _OtherShape
        return flat
    if len(shape) != 1 or shape[0][1] < 0:
        raise _OtherShape
    kl = shape[0][0]  # one header per record, values of any length
    vls = list(map(add, lens, repeat(-8 - kl, n)))  # (u16 count, u16 name length, name, i32 value length)
    if min(vls) < 0:
        raise _OtherShape
    codes = {vl: f"HH{kl}si{vl}s" for vl in set(vls)}
    flat = list(struct.unpack("<" + "".join(map(codes.__getitem__, vls)), blob))
    if flat[3::5] != vls or flat[1::5].count(kl) != n:
        raise _OtherShape
    return flat


def _decode_header_columns(blob: bytes, lens: array[int]) -> list[list[tuple[str, bytes | None]]] | None:
    """``_decode_headers`` column by column when every record has the headers of the
    first one (same count and name lengths; value lengths equal or, for one header, any):
    one struct unpack and a few C-level passes instead of Python work per header.  None
    when the records do not all have that shape (the caller then decodes record by
    record, which also says what is corrupt)."""
    n = len(lens)
    try:
        if len(blob) != sum(lens):
            raise _OtherShape
        first = lens[0]
        shape = _header_shape(blob, first)
        if blob[first:first * 2] == blob[:first] and blob == blob[:first] * n:  # one header set on every record
            one = tuple(_decode_headers(blob[:first], lens[:1])[0])
            return list(map(list, repeat(one, n)))
        flat = _header_fields(blob, lens, n, shape)
        width = 1 + 4 * len(shape)
        if flat[0::width].count(len(shape)) != n:
            raise _OtherShape
        columns = []
        for j, (_kl, vl) in enumerate(shape):
            raw = flat[2 + 4 * j::width]
            if raw.count(raw[0]) == n:  # one name for every record (the common case): decoded once
                names: Any = repeat(raw[0].decode("utf-8"), n)
            else:
                names = [b.decode("utf-8") for b in raw]
            columns.append(zip(names, flat[4 + 4 * j::width] if vl >= 0 else repeat(None, n)))
        return list(map(list, zip(*columns)))
    except (_OtherShape, struct.error, UnicodeDecodeError):
        return None


def _decode_headers(blob: bytes, lens: array[int]) -> list[list[tuple[str, bytes | None]]]:
    if len(lens) >= 4:
        got = _decode_header_columns(blob, lens)
        if got is not None:
            return got
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


_PLAIN_MASK = ATTR_COMPRESSION_MASK | ATTR_SPARSE | ATTR_HEADERS
#: the extension's decoder of small one-record batches (``_speedups.decode_one``; it reads
#: the header's integers in the host's order: little-endian hosts only, as the format is)
_decode_one_c = getattr(_native.speedups, "decode_one", None) if _LITTLE else None


def _decode_one(buf: Any, info: BatchInfo) -> DecodedBatch | None:
    """A single uncompressed record without headers, the latency path's batch, decoded
    with one unpack; ``None`` if anything does not add up (``decode`` says what)."""
    size = info.size
    if size < HEADER_SIZE + _ONE_RECORD.size or _BODY_LEN.unpack_from(buf, _BODY_LEN_AT)[0] != size - HEADER_SIZE:
        return None
    klen, vlen, ts = _ONE_RECORD.unpack_from(buf, HEADER_SIZE)
    pos = HEADER_SIZE + _ONE_RECORD.size
    kend = pos + klen if klen > 0 else pos
    vend = kend + vlen if vlen > 0 else kend
    if klen < -1 or vlen < -1 or vend != size:
        return None
    key = None if klen < 0 else bytes(buf[pos:kend])
    value = None if vlen < 0 else bytes(buf[kend:vend])
    if info.attributes & ATTR_LOG_APPEND_TIME:
        ts = info.max_timestamp
    base = info.base_offset
    return DecodedBatch(info, range(base, base + 1), [key], [value], [ts], None)


def decode(buf: Any) -> DecodedBatch:
    """Verify and decode a whole batch into columns."""
    if _decode_one_c is not None:  # a small one-record batch in one C call (None: not one, or damaged)
        one = _decode_one_c(buf, BatchInfo, DecodedBatch)
        if one is not None:
            return one  # type: ignore[no-any-return]
    info = verify(buf)
    attributes = info.attributes
    count = info.record_count
    if count == 1 and not attributes & _PLAIN_MASK:
        one = _decode_one(buf, info)
        if one is not None:
            return one
    # Uncompressed, columns and records are read straight from ``buf`` (no copy of the body).
    raw = memoryview(buf)[HEADER_SIZE:]
    compression = attributes & ATTR_COMPRESSION_MASK
    (body_len,) = _BODY_LEN.unpack_from(buf, _BODY_LEN_AT)
    if compression == COMPRESSION_ZSTD:
        try:
            # The frame states its size (encode always writes it): check it before zstd
            # sees it, and decompress incrementally so a lying header allocates nothing.
            declared = zstandard.frame_content_size(raw)
            if declared != body_len:
                raise CorruptBatchError(f"zstd frame holds {declared} bytes, the header says {body_len}")
            dobj = _decompressor().decompressobj()
            body: Any = dobj.decompress(raw)
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
    klens, pos = _column(body, pos, count)
    vlens, pos = _column(body, pos, count)
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
        headers = _decode_headers(bytes(body[pos:hend]), hlens)
        pos = hend
    keys, pos = _split(body, pos, klens)
    values, pos = _split(body, pos, vlens)
    if pos != len(body):
        raise CorruptBatchError("batch body has trailing bytes")
    return DecodedBatch(info, offsets, keys, values, timestamps, headers)
