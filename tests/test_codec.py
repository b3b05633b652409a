"""Unit and property tests of the record batch codec (``embedlog.codec.batch``).

The codec is pure, so everything here runs on bytes only: round trips for every
combination of compression, headers, null keys/values, sparse offsets, and
realistic as well as extreme (full i64) timestamps; detection of every single-byte corruption and every truncation;
and the decoder's contract that *any* input either decodes or raises
``CorruptBatchError`` (nothing else: no ``struct.error``, ``IndexError``, zstd error,
``MemoryError``...).  The header layout documented at the top of ``batch.py`` is
checked against the bytes so the doc stays true.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from embedlog.codec import batch
from embedlog.codec.batch import CorruptBatchError
from embedlog.protocol.frames import encode_frame
from strategies import I32_MAX, I32_MIN, REALISTIC_TS, Rec, batches

COMPRESSIONS = [pytest.param(batch.COMPRESSION_NONE, id="none"), pytest.param(batch.COMPRESSION_ZSTD, id="zstd")]
ZSTD_MAGIC = struct.pack("<I", 0xFD2FB528)

u64s = st.integers(0, 2**64 - 1)
i32s = st.integers(I32_MIN, I32_MAX)
compressions = st.sampled_from([batch.COMPRESSION_NONE, batch.COMPRESSION_ZSTD])

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- helpers ------------------------------------------------------------------------------
def encode(recs: Sequence[Rec], compression: int = batch.COMPRESSION_NONE, *, headers: bool = True,
           **kw: Any) -> bytearray:
    return batch.encode([r.key for r in recs], [r.value for r in recs], [r.timestamp for r in recs],
                        [r.headers for r in recs] if headers else None, compression=compression, **kw)


def expected_headers(recs: Sequence[Rec]) -> list[list[tuple[str, bytes | None]]] | None:
    """What decode gives back: ``None`` when no record has a header, else one list per record."""
    if not any(r.headers for r in recs):
        return None
    return [list(r.headers) for r in recs]


def with_crc(buf: bytes | bytearray) -> bytearray:
    """``buf`` with its CRC field recomputed, so the decoder looks past the checksum."""
    out = bytearray(buf)
    if len(out) >= 24:
        struct.pack_into("<I", out, 20, zlib.crc32(out[24:]))
    return out


def decode_or_corrupt(buf: Any) -> batch.DecodedBatch | None:
    """The decoder's contract: a decoded batch, or ``CorruptBatchError`` (returned as None).

    Any other exception propagates and fails the calling test with its real type.
    """
    try:
        decoded = batch.decode(buf)
    except CorruptBatchError:
        return None
    # a batch that decodes is self-consistent
    n = decoded.info.record_count
    assert len(decoded.offsets) == len(decoded.keys) == len(decoded.values) == len(decoded.timestamps) == n
    if decoded.headers is not None:
        assert len(decoded.headers) == n
    return decoded


def header(attributes: int = 0, count: int = 1, lod: int = 0, first_ts: int = 0, max_ts: int = 0,
           body_len: int = 0, magic: int = 1) -> bytes:
    return batch.HEADER.pack(0, 0, 0, 0, magic, attributes, 0, count, lod, first_ts, max_ts, body_len)


# -- round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("with_headers", [True, False], ids=["headers", "no-headers"])
@pytest.mark.parametrize("ts_kind", ["realistic", "wide"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), base=u64s, epoch=i32s, seq=u64s)
def test_round_trip(compression: int, with_headers: bool, ts_kind: str, data: st.DataObject, base: int, epoch: int,
                    seq: int) -> None:
    recs = data.draw(batches(timestamp=ts_kind, with_headers=with_headers), "recs")
    assume(base + len(recs) < 2**64)
    buf = encode(recs, compression)
    batch.stamp(buf, base, epoch, seq)
    decoded = batch.decode(buf)
    n = len(recs)
    stamps = [r.timestamp for r in recs]
    assert decoded.info == batch.BatchInfo(
        base_offset=base, leader_epoch=epoch, commit_seq=seq, attributes=decoded.info.attributes,
        record_count=n, last_offset_delta=n - 1, first_timestamp=stamps[0], max_timestamp=max(stamps),
        size=len(buf))
    assert decoded.info.attributes & batch.ATTR_COMPRESSION_MASK == compression
    assert bool(decoded.info.attributes & batch.ATTR_HEADERS) == (expected_headers(recs) is not None)
    assert not decoded.info.attributes & (batch.ATTR_SPARSE | batch.ATTR_LOG_APPEND_TIME | batch.ATTR_TRANSACTIONAL)
    assert list(decoded.offsets) == list(range(base, base + n))
    assert decoded.info.last_offset == base + n - 1
    assert decoded.info.next_offset == base + n
    assert decoded.keys == [r.key for r in recs]
    assert decoded.values == [r.value for r in recs]
    assert list(decoded.timestamps) == stamps
    assert decoded.headers == expected_headers(recs)
    assert batch.verify(buf) == batch.read_info(buf) == decoded.info


@pytest.mark.parametrize("as_type", [bytes, bytearray, memoryview])
def test_decode_takes_any_bytes_like(as_type: type) -> None:
    recs = [Rec(b"k", b"v", [("h", b"1")], 1_700_000_000_000), Rec(None, None, [], 1_700_000_000_001)]
    buf = encode(recs, batch.COMPRESSION_ZSTD)
    batch.stamp(buf, 7, 1, 2)
    decoded = batch.decode(as_type(buf))
    assert list(decoded.offsets) == [7, 8]
    assert decoded.keys == [b"k", None]
    assert decoded.values == [b"v", None]
    assert decoded.headers == [[("h", b"1")], []]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_null_and_empty_keys_and_values_stay_distinct(compression: int) -> None:
    recs = [Rec(k, v, [], 1_700_000_000_000 + i)
            for i, (k, v) in enumerate([(None, None), (b"", b""), (None, b""), (b"", None), (b"k", None)])]
    decoded = batch.decode(encode(recs, compression))
    assert decoded.keys == [None, b"", None, b"", b"k"]
    assert decoded.values == [None, b"", b"", None, None]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_all_tombstones_with_null_keys(compression: int) -> None:
    recs = [Rec(None, None, [], 1_700_000_000_000)] * 200
    decoded = batch.decode(encode(recs, compression))
    assert decoded.keys == [None] * 200
    assert decoded.values == [None] * 200


def test_headers_keep_order_duplicates_nulls_and_unicode() -> None:
    hdrs = [("trace", b"a"), ("trace", b"b"), ("", b""), ("ü-名前", None), ("trace", b"\x00\xff")]
    recs = [Rec(b"k", b"v", hdrs, 5), Rec(b"k", b"v", [], 6), Rec(b"k", b"v", [("x", None)], 7)]
    decoded = batch.decode(encode(recs))
    assert decoded.headers == [hdrs, [], [("x", None)]]


@pytest.mark.parametrize(
    "timestamps",
    [
        [0], [0, 0, 0], [1, 0], [0, I32_MAX], [0, I32_MAX + 1], [I32_MAX + 6, 5],
        [1_700_000_000_000, 1_700_000_000_000 + I32_MAX + 1],
        [0, 2**63 - 1], [2**63 - 1, 0], [2**63 - 1, 2**63 - 1], [1_700_000_000_000, 0, 2**63 - 1, 1],
        [-(2**63), 2**63 - 1], [-1, -(2**63)],  # the codec itself takes any i64 (the producer refuses < 0)
    ],
)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_timestamp_extremes(timestamps: list[int], compression: int) -> None:
    recs = [Rec(None, b"v", [], t) for t in timestamps]
    decoded = batch.decode(encode(recs, compression))
    assert list(decoded.timestamps) == timestamps
    assert decoded.info.first_timestamp == timestamps[0]
    assert decoded.info.max_timestamp == max(timestamps)


@st.composite
def sparse_layouts(draw: st.DrawFn) -> tuple[list[Rec], list[int], int | None]:
    recs = draw(batches(max_size=60))
    n = len(recs)
    gaps = draw(st.lists(st.integers(1, 10_000), min_size=n - 1, max_size=n - 1))
    deltas = [0]
    for g in gaps:
        deltas.append(deltas[-1] + g)
    lod = draw(st.none() | st.integers(deltas[-1], deltas[-1] + 1_000))
    return recs, deltas, lod


@pytest.mark.parametrize("compression", COMPRESSIONS)
@FAST
@given(layout=sparse_layouts(), base=st.integers(0, 2**62))
def test_sparse_offsets_round_trip(compression: int, layout: tuple[list[Rec], list[int], int | None],
                                   base: int) -> None:
    recs, deltas, lod = layout
    buf = encode(recs, compression, offset_deltas=deltas, last_offset_delta=lod)
    batch.stamp(buf, base, 3, 4)
    decoded = batch.decode(buf)
    assert decoded.info.attributes & batch.ATTR_SPARSE
    assert list(decoded.offsets) == [base + d for d in deltas]
    expected_lod = deltas[-1] if lod is None else lod
    assert decoded.info.last_offset_delta == expected_lod
    assert decoded.info.last_offset == base + expected_lod
    assert decoded.info.next_offset == base + expected_lod + 1
    assert decoded.keys == [r.key for r in recs]
    assert decoded.values == [r.value for r in recs]
    assert list(decoded.timestamps) == [r.timestamp for r in recs]
    assert decoded.headers == expected_headers(recs)


def test_dense_batch_with_explicit_last_offset_delta() -> None:
    """Compaction may keep a dense prefix but remember the batch covered more offsets."""
    recs = [Rec(b"k", b"v", [], 1), Rec(b"k", b"v", [], 2)]
    buf = encode(recs, last_offset_delta=9)
    batch.stamp(buf, 100, 0, 0)
    decoded = batch.decode(buf)
    assert list(decoded.offsets) == [100, 101]
    assert decoded.info.last_offset == 109
    assert decoded.info.next_offset == 110


@pytest.mark.parametrize("compression", COMPRESSIONS)
@FAST
@given(recs=batches(max_size=50), now=st.integers(*REALISTIC_TS), base=st.integers(0, 2**62))
def test_log_append_time_restamp(compression: int, recs: list[Rec], now: int, base: int) -> None:
    buf = encode(recs, compression)
    batch.stamp(buf, base, 1, 1)
    batch.restamp_log_append_time(buf, now)
    decoded = batch.decode(buf)  # the CRC was recomputed: no CorruptBatchError
    assert decoded.info.attributes & batch.ATTR_LOG_APPEND_TIME
    assert decoded.info.max_timestamp == now
    assert decoded.info.first_timestamp == recs[0].timestamp
    assert list(decoded.timestamps) == [now] * len(recs)
    assert decoded.keys == [r.key for r in recs]
    assert decoded.values == [r.value for r in recs]
    assert decoded.headers == expected_headers(recs)
    assert decoded.info.base_offset == base


def test_attribute_flags_from_encode() -> None:
    recs = [Rec(b"k", b"v", [], 1)]
    assert batch.encode([b"k"], [b"v"], [1], log_append_time=True)[25] == batch.ATTR_LOG_APPEND_TIME
    assert batch.encode([b"k"], [b"v"], [1], transactional=True)[25] == batch.ATTR_TRANSACTIONAL
    buf = encode(recs, batch.COMPRESSION_ZSTD, offset_deltas=[0], transactional=True)
    assert buf[25] == batch.ATTR_TRANSACTIONAL | batch.ATTR_SPARSE | batch.COMPRESSION_ZSTD
    assert batch.decode(buf).info.attributes == buf[25]


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        batch.encode([], [], [])
    with pytest.raises(ValueError, match="equal-length"):
        batch.encode([b"k"], [b"v", b"w"], [1])
    with pytest.raises(ValueError, match="equal-length"):
        batch.encode([b"k"], [b"v"], [1, 2])
    with pytest.raises(ValueError, match="unknown compression"):
        batch.encode([b"k"], [b"v"], [1], compression=5)


# -- stamped fields (outside the CRC) -----------------------------------------------------
@FAST
@given(recs=batches(max_size=20), compression=compressions, base=u64s, epoch=i32s, seq=u64s)
def test_stamped_fields_are_outside_the_crc(recs: list[Rec], compression: int, base: int, epoch: int,
                                            seq: int) -> None:
    buf = encode(recs, compression)
    before = bytes(buf)
    assert buf[:20] == bytes(20)  # encode leaves the stamped fields zero
    batch.stamp(buf, base, epoch, seq)
    assert buf[20:] == before[20:]  # neither the CRC nor the covered bytes change
    info = batch.read_info(buf)
    assert (info.base_offset, info.leader_epoch, info.commit_seq) == (base, epoch, seq)
    assert batch.verify(buf) == info
    # restamping (a follower re-appending a batch with its own offsets) is just as cheap
    batch.stamp(buf, 0, 0, 0)
    assert bytes(buf) == before


# -- the documented header layout ---------------------------------------------------------
_DOC_TYPES = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i32": "i", "i64": "q"}
#: The header as the module docstring documents it, written out by hand.
_HAND_LAYOUT = [
    (0, 8, "base_offset", "u64"), (8, 4, "leader_epoch", "i32"), (12, 8, "commit_seq", "u64"),
    (20, 4, "crc", "u32"), (24, 1, "magic", "u8"), (25, 1, "attributes", "u8"), (26, 2, "reserved", "u16"),
    (28, 4, "record_count", "u32"), (32, 4, "last_offset_delta", "u32"), (36, 8, "first_timestamp", "i64"),
    (44, 8, "max_timestamp", "i64"), (52, 4, "body_length", "u32"),
]


def _documented_layout() -> list[tuple[int, int, str, str]]:
    doc = batch.__doc__ or ""
    section = doc[doc.index("Header (56 bytes)") : doc.index("Body (")]
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\w+)\s+(u8|u16|u32|u64|i32|i64)\b", section, re.MULTILINE)
    return [(int(off), int(size), name, typ) for off, size, name, typ in rows]


def test_documented_header_table_matches_hand_built_layout() -> None:
    layout = _documented_layout()
    assert layout == _HAND_LAYOUT
    pos = 0
    for off, size, _name, typ in layout:
        assert off == pos, "fields are contiguous"
        assert struct.calcsize("<" + _DOC_TYPES[typ]) == size
        pos += size
    assert pos == batch.HEADER_SIZE == 56
    hand = struct.Struct("<" + "".join(_DOC_TYPES[typ] for *_, typ in layout))
    assert hand.format == batch.HEADER.format
    assert hand.size == batch.HEADER.size
    assert batch._CRC_AT == 20
    assert batch._CRC_FROM == 24


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_documented_field_offsets_hold_in_real_batches(compression: int) -> None:
    recs = [Rec(b"key", b"value" * 20, [("h", b"v")], 1_700_000_000_123),
            Rec(None, None, [], 1_700_000_000_100), Rec(b"k2", b"", [], 1_700_000_000_150)]
    buf = encode(recs, compression, offset_deltas=[0, 2, 5], last_offset_delta=7, transactional=True)
    batch.stamp(buf, 0x0102030405060708, -7, 0x1112131415161718)
    raw_body = buf[56:] if compression == batch.COMPRESSION_NONE else zstandard.ZstdDecompressor().decompress(buf[56:])
    expected = {
        "base_offset": 0x0102030405060708, "leader_epoch": -7, "commit_seq": 0x1112131415161718,
        "crc": zlib.crc32(buf[24:]), "magic": 1,
        "attributes": compression | batch.ATTR_HEADERS | batch.ATTR_SPARSE | batch.ATTR_TRANSACTIONAL,
        "reserved": 0, "record_count": 3, "last_offset_delta": 7, "first_timestamp": 1_700_000_000_123,
        "max_timestamp": 1_700_000_000_150, "body_length": len(raw_body),
    }
    for off, _size, name, typ in _documented_layout():
        (value,) = struct.unpack_from("<" + _DOC_TYPES[typ], buf, off)
        assert value == expected[name], name
    info = batch.read_info(buf)
    for name in ("base_offset", "leader_epoch", "commit_seq", "attributes", "record_count", "last_offset_delta",
                 "first_timestamp", "max_timestamp"):
        assert getattr(info, name) == expected[name], name


def test_documented_attribute_bits() -> None:
    doc = batch.__doc__ or ""
    assert "bits 0-2 compression (0 none, 1 zstd)" in doc
    assert (batch.ATTR_COMPRESSION_MASK, batch.COMPRESSION_NONE, batch.COMPRESSION_ZSTD) == (0b111, 0, 1)
    documented = {int(bit): text.strip() for bit, text in re.findall(r"bit (\d) ([^\n]+)", doc)}
    assert documented == {
        3: "timestamps are LogAppendTime", 4: "records carry headers", 5: "sparse offsets (batch was compacted)",
        6: "delete horizon set (see below)", 7: "written by a transaction",
    }
    assert batch.ATTR_LOG_APPEND_TIME == 1 << 3
    assert batch.ATTR_HEADERS == 1 << 4
    assert batch.ATTR_SPARSE == 1 << 5
    assert batch.ATTR_DELETE_HORIZON == 1 << 6
    everything = batch.encode([b"k"], [None], [2**63 - 1], [[("h", None)]], compression=batch.COMPRESSION_ZSTD,
                              offset_deltas=[0], log_append_time=True, transactional=True, delete_horizon=1234)
    assert everything[25] == 0b1111_1001
    info = batch.read_info(everything)
    assert (info.delete_horizon, info.first_timestamp, info.max_timestamp) == (1234, 1234, 2**63 - 1)
    assert batch.decode(bytes(everything)).timestamps == [2**63 - 1]  # (the record's own, in the column)
    plain = batch.read_info(batch.encode([b"k"], [b"v"], [7]))
    assert (plain.delete_horizon, plain.first_timestamp) == (None, 7)
    assert batch.ATTR_TRANSACTIONAL == 1 << 7


def _hand_built(sparse: bool) -> tuple[list[Rec], bytes]:
    """A batch built byte by byte from the documented body layout."""
    recs = [Rec(b"k0", b"hello", [("h", b"v"), ("h", None)], 1000), Rec(None, None, [], 995),
            Rec(b"", b"x", [("ü", b"")], 1007)]
    name = "ü".encode()
    blobs = [
        struct.pack("<H", 2) + struct.pack("<H", 1) + b"h" + struct.pack("<i", 1) + b"v"
        + struct.pack("<H", 1) + b"h" + struct.pack("<i", -1),
        struct.pack("<H", 0),
        struct.pack("<H", 1) + struct.pack("<H", len(name)) + name + struct.pack("<i", 0),
    ]
    body = b"".join([
        struct.pack("<3I", 0, 3, 9) if sparse else b"",  # offset_deltas
        struct.pack("<3i", 2, -1, 0),  # key_lengths
        struct.pack("<3i", 5, -1, 1),  # value_lengths
        struct.pack("<3q", 1000, 995, 1007),  # timestamps, absolute i64
        struct.pack("<3I", *map(len, blobs)),  # header_lengths
        *blobs,
        b"k0", b"hello", b"x",  # keys, then values
    ])
    attributes = batch.ATTR_HEADERS | (batch.ATTR_SPARSE if sparse else 0)
    lod = 12 if sparse else 2
    head = bytearray(struct.pack("<QiQIBBHIIqqI", 0, 0, 0, 0, 1, attributes, 0, 3, lod, 1000, 1007, len(body)))
    out = head + body
    struct.pack_into("<I", out, 20, zlib.crc32(out[24:]))
    return recs, bytes(out)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_documented_body_layout_matches_encode(sparse: bool) -> None:
    recs, hand = _hand_built(sparse)
    kw: dict[str, Any] = {"offset_deltas": [0, 3, 9], "last_offset_delta": 12} if sparse else {}
    assert bytes(encode(recs, **kw)) == hand
    decoded = batch.decode(hand)
    assert decoded.keys == [b"k0", None, b""]
    assert decoded.values == [b"hello", None, b"x"]
    assert list(decoded.timestamps) == [1000, 995, 1007]
    assert decoded.headers == [[("h", b"v"), ("h", None)], [], [("ü", b"")]]
    # with zstd, the same body is compressed as a whole after the same header
    zbuf = encode(recs, batch.COMPRESSION_ZSTD, **kw)
    assert zstandard.ZstdDecompressor().decompress(bytes(zbuf[56:])) == hand[56:]
    assert zbuf[25] == hand[25] | batch.COMPRESSION_ZSTD
    assert zbuf[26:56] == hand[26:56]


# -- corruption and truncation ------------------------------------------------------------
@FAST
@given(recs=batches(max_size=40), compression=compressions, data=st.data())
def test_every_single_byte_corruption_in_crc_range_is_detected(recs: list[Rec], compression: int,
                                                                data: st.DataObject) -> None:
    buf = encode(recs, compression)
    batch.stamp(buf, 10, 1, 2)
    positions = data.draw(st.lists(st.integers(24, len(buf) - 1), min_size=1, max_size=16, unique=True), "positions")
    for pos in positions:
        mask = data.draw(st.integers(1, 255), f"mask@{pos}")
        bad = bytearray(buf)
        bad[pos] ^= mask
        with pytest.raises(CorruptBatchError):
            batch.verify(bad)
        with pytest.raises(CorruptBatchError):
            batch.decode(bad)
        assert not batch.checksum_matches(bad)
    assert batch.checksum_matches(buf)
    batch.stamp(buf, 99, 7, 8)  # (stamped fields sit outside the CRC)
    assert batch.checksum_matches(buf)


def test_every_byte_of_a_small_batch_every_mask() -> None:
    """Exhaustive for one small batch: CRC-32 catches every burst of up to 32 bits."""
    buf = encode([Rec(b"k", b"v", [("h", None)], 1_700_000_000_000), Rec(None, b"", [], 1)],
                 batch.COMPRESSION_NONE)
    for pos in range(20, len(buf)):  # the CRC field itself too
        for mask in range(1, 256):
            bad = bytearray(buf)
            bad[pos] ^= mask
            with pytest.raises(CorruptBatchError):
                batch.decode(bad)


@FAST
@given(recs=batches(max_size=40), compression=compressions, data=st.data())
def test_truncation_is_detected(recs: list[Rec], compression: int, data: st.DataObject) -> None:
    buf = encode(recs, compression)
    cut = data.draw(st.integers(0, len(buf) - 1), "cut")
    with pytest.raises(CorruptBatchError):
        batch.decode(buf[:cut])
    with pytest.raises(CorruptBatchError):
        batch.verify(buf[:cut])
    extra = data.draw(st.binary(min_size=1, max_size=16), "extra")
    with pytest.raises(CorruptBatchError):
        batch.decode(buf + extra)


def test_short_buffer_and_bad_magic() -> None:
    for n in range(56):
        with pytest.raises(CorruptBatchError, match="shorter than"):
            batch.read_info(bytes(n))
    with pytest.raises(CorruptBatchError, match="magic"):
        batch.read_info(header(magic=2))
    with pytest.raises(CorruptBatchError, match="magic"):
        batch.decode(with_crc(header(magic=0)))


@pytest.mark.parametrize("code", range(2, 8))
def test_unknown_compression_code_is_corrupt(code: int) -> None:
    buf = with_crc(header(attributes=code, count=1, body_len=12) + bytes(12))
    with pytest.raises(CorruptBatchError, match="compression"):
        batch.decode(buf)


# -- fuzz: decode or CorruptBatchError, nothing else --------------------------------------
@FUZZ
@given(raw=st.binary(max_size=600))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    decode_or_corrupt(raw)


@FUZZ
@given(
    attributes=st.integers(0, 255),
    count=st.integers(0, 8) | st.integers(0, 2**32 - 1),
    lod=st.integers(0, 2**32 - 1),
    first_ts=st.integers(-(2**63), 2**63 - 1),
    max_ts=st.integers(-(2**63), 2**63 - 1),
    body_len=st.integers(0, 300) | st.integers(0, 2**32 - 1),
    body=st.binary(max_size=300),
)
@example(attributes=0, count=1, lod=0, first_ts=0, max_ts=0, body_len=12,
         body=struct.pack("<iii", 0, -2, 0))  # a value length below -1
@example(attributes=batch.ATTR_HEADERS, count=1, lod=0, first_ts=0, max_ts=0, body_len=18,
         body=struct.pack("<iiiI", 0, 0, 0, 2) + struct.pack("<H", 1))  # header blob cut short
@example(attributes=batch.ATTR_HEADERS, count=1, lod=0, first_ts=0, max_ts=0, body_len=23,
         body=struct.pack("<iiiI", 0, 0, 0, 7) + struct.pack("<HH", 1, 1) + b"\xff" + b"\x00\x00")  # bad utf-8
@example(attributes=batch.ATTR_SPARSE, count=2**32 - 1, lod=0, first_ts=0, max_ts=0, body_len=0, body=b"")
def test_fuzz_valid_crc_and_magic(attributes: int, count: int, lod: int, first_ts: int, max_ts: int, body_len: int,
                                  body: bytes) -> None:
    """Random headers and bodies with a correct CRC: the decoder's length checks must hold alone."""
    decode_or_corrupt(with_crc(header(attributes, count, lod, first_ts, max_ts, body_len) + body))


@st.composite
def mutated_batches(draw: st.DrawFn) -> bytearray:
    recs = draw(batches(max_size=12))
    buf = encode(recs, batch.COMPRESSION_NONE)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["xor", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(24, max(24, len(buf) - 1)))
        if op == "xor" and pos < len(buf):
            buf[pos] ^= draw(st.integers(1, 255))
        elif op == "set":
            buf[pos:pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\xfe\xff\xff\xff", b"\x00\x00\x00\x80",
                                                     b"\xff\xff\xff\x7f", bytes(4)]))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[pos:pos + draw(st.integers(1, 8))]
        else:
            del buf[pos:]
    return with_crc(buf)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buf=mutated_batches())
def test_fuzz_mutated_batches_with_fixed_crc(buf: bytearray) -> None:
    decode_or_corrupt(buf)


@st.composite
def zstd_frames(draw: st.DrawFn) -> bytes:
    """Byte strings shaped like a zstd frame header (RFC 8878 3.1.1) with random fields, then random blocks."""
    descriptor = draw(st.integers(0, 255)) & ~0x08  # bit 3 is reserved: set, the header is simply invalid
    fcs_size = (1 if descriptor & 0x20 else 0, 2, 4, 8)[descriptor >> 6]
    window = b"" if descriptor & 0x20 else draw(st.binary(min_size=1, max_size=1))
    dict_id = draw(st.binary(min_size=(0, 1, 2, 4)[descriptor & 3], max_size=(0, 1, 2, 4)[descriptor & 3]))
    top = 2 ** (8 * fcs_size) - 1
    fcs = draw(st.integers(0, top) | st.integers(top >> 4, top)).to_bytes(fcs_size, "little") if fcs_size else b""
    blocks = draw(st.binary(max_size=40))
    return ZSTD_MAGIC + bytes([descriptor]) + window + dict_id + fcs + blocks


@FUZZ
@given(attributes=st.integers(0, 255).map(lambda a: (a & ~batch.ATTR_COMPRESSION_MASK) | batch.COMPRESSION_ZSTD),
       count=st.integers(0, 4), body_len=st.integers(0, 64) | st.integers(0, 2**32 - 1),
       frame=zstd_frames() | (st.binary(max_size=40).map(lambda b: ZSTD_MAGIC + b)))
@example(attributes=1, count=0, body_len=0, frame=ZSTD_MAGIC + bytes.fromhex("e098aab2e205000000"))  # claims 25 GB
def test_fuzz_zstd_frames_with_fixed_crc(attributes: int, count: int, body_len: int, frame: bytes) -> None:
    """Bodies that look like a zstd frame: whatever the frame header claims, decode or CorruptBatchError."""
    decode_or_corrupt(with_crc(header(attributes, count, 0, 0, 0, body_len) + frame))


def _zstd_frame_claiming(content_size: int, payload: bytes) -> bytes:
    """A zstd frame whose header declares ``content_size`` bytes, holding one raw block of ``payload``.

    Frame header descriptor 0xE0: 8-byte Frame_Content_Size, single segment (RFC 8878 3.1.1.1).
    """
    block_header = struct.pack("<I", (len(payload) << 3) | 1)[:3]  # last block, raw
    return ZSTD_MAGIC + b"\xe0" + struct.pack("<Q", content_size) + block_header + payload


@pytest.mark.parametrize("declared", [5, 2**20, 2**40, 2**62])
def test_zstd_frame_declaring_wrong_content_size_is_corrupt(declared: int) -> None:
    """A frame may claim any content size; decode must not trust it (nor allocate it).

    ``body_length`` in the header says 4; a frame claiming 2**40 bytes makes
    ``ZstdDecompressor.decompress`` try to allocate that much before looking at the data.
    """
    buf = with_crc(header(batch.COMPRESSION_ZSTD, count=1, body_len=4) + _zstd_frame_claiming(declared, b"abcd"))
    with pytest.raises(CorruptBatchError):
        batch.decode(buf)


def _zstd_frame_without_content_size(payload: bytes) -> bytes:
    """A valid zstd frame that does not state its content size (descriptor 0x00, then a window byte)."""
    block_header = struct.pack("<I", (len(payload) << 3) | 1)[:3]
    return ZSTD_MAGIC + b"\x00\x00" + block_header + payload


_LIMITED_DECODE = """
import resource, sys
from embedlog.codec import batch
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
for line in sys.stdin:
    try:
        batch.decode(bytes.fromhex(line.strip()))
        print("decoded")
    except batch.CorruptBatchError:
        print("CorruptBatchError")
    except BaseException as exc:
        print(type(exc).__name__)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_AS")
def test_zstd_claims_are_not_allocated_under_a_memory_limit() -> None:
    """With 1 GiB of address space, a batch whose header (CRC-valid) or zstd frame claims gigabytes
    must still be CorruptBatchError, not MemoryError: the decoder must not allocate what it is told.

    ``body_length`` is a u32; a frame without a content size makes ``decompress`` allocate
    ``max_output_size=body_length`` up front (4 GiB here).
    """
    cases = {
        "no content size, body_length 4 GiB": header(batch.COMPRESSION_ZSTD, count=1, body_len=2**32 - 1)
        + _zstd_frame_without_content_size(b"abcd"),
        "no content size, body_length 2 GiB": header(batch.COMPRESSION_ZSTD, count=1, body_len=2**31)
        + _zstd_frame_without_content_size(b"abcd"),
        "frame claims 1 TiB, body_length 4": header(batch.COMPRESSION_ZSTD, count=1, body_len=4)
        + _zstd_frame_claiming(2**40, b"abcd"),
        "both claim 4 GiB": header(batch.COMPRESSION_ZSTD, count=1, body_len=2**32 - 1)
        + _zstd_frame_claiming(2**32 - 1, b"abcd"),
    }
    stdin = "".join(with_crc(c).hex() + "\n" for c in cases.values())
    proc = subprocess.run([sys.executable, "-c", _LIMITED_DECODE], input=stdin, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert dict(zip(cases, proc.stdout.split())) == dict.fromkeys(cases, "CorruptBatchError")


def test_zstd_frame_with_right_content_size_decodes() -> None:
    """The hand-made frame above is valid zstd when it tells the truth (so the test above is meaningful)."""
    body = struct.pack("<iiq", -1, -1, 0)
    buf = with_crc(header(batch.COMPRESSION_ZSTD, count=1, body_len=len(body))
                   + _zstd_frame_claiming(len(body), body))
    decoded = batch.decode(buf)
    assert decoded.keys == [None]
    assert decoded.values == [None]


# -- record splitting shapes and the checksum implementation --------------------------------
@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("sizes", [
    [100] * 50,                      # all one size: one repeated struct code
    [0, 1, 5, 4095, 17, 300],        # every length under 4096: the code table
    [4096, 3, 70_000, 0, 4095],      # some over 4096: formatted codes
    [-1, 3, -1, 5000, 0, -1],        # nulls among them
], ids=["equal", "small", "large", "nulls"])
def test_split_shapes_round_trip(compression: int, sizes: list[int]) -> None:
    values = [None if n < 0 else bytes([i % 251]) * n for i, n in enumerate(sizes)]
    keys = [None if n < 0 else b"k%d" % i for i, n in enumerate(reversed(sizes))]
    for _ in range(2):  # the second time from the cache of compiled formats
        decoded = batch.decode(batch.encode(keys, values, list(range(len(sizes))), compression=compression))
        assert decoded.keys == keys
        assert decoded.values == values


def test_checksum_is_zlib_crc32_whichever_implementation_computes_it() -> None:
    data = bytes(range(256)) * 50
    assert batch._crc32(data) == zlib.crc32(data)
    buf = batch.encode([b"k"], [b"v" * 10_000], [1])
    assert struct.unpack_from("<I", buf, 20)[0] == zlib.crc32(bytes(buf[24:]))


def test_checksums_fall_back_to_zlib_without_isal_and_agree() -> None:
    """Where python-isal is missing (outside its dependency marker), zlib computes the
    checksums: a fresh interpreter that cannot import it encodes and decodes batches and
    frames, and its checksums equal those of this one (whichever it uses)."""
    code = (
        "import sys, importlib.abc\n"
        "class NoIsal(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'isal' or name.startswith('isal.'):\n"
        "            raise ImportError('no isal here')\n"
        "sys.meta_path.insert(0, NoIsal())\n"
        "from embedlog.codec import batch, crc\n"
        "from embedlog.protocol.frames import FrameDecoder, encode_frame as frame\n"
        "assert crc.IMPLEMENTATION == 'zlib', crc.IMPLEMENTATION\n"
        "buf = batch.encode([b'k'], [b'v' * 10_000], [1])\n"
        "assert batch.decode(buf).values == [b'v' * 10_000]\n"
        "assert FrameDecoder().feed(frame(b'x' * 70_000)) == [b'x' * 70_000]\n"
        "sys.stdout.write(bytes(buf).hex() + ' ' + frame(b'x' * 70_000)[:8].hex())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    buf = batch.encode([b"k"], [b"v" * 10_000], [1])
    assert bytes.fromhex(out[0])[20:24] == bytes(buf)[20:24]
    assert bytes.fromhex(out[1]) == encode_frame(b"x" * 70_000)[:8]
