"""Record headers in the batch codec: the column-wise encoder and decoder (used when every
record of a batch has headers of one shape) give exactly the bytes and records of the
per-record layout that docs/format.md documents, and reject what it rejects."""

from __future__ import annotations

import struct
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedlog.codec import batch
from strategies import header_names

Header = tuple[str, bytes | None]

_values = st.none() | st.binary(max_size=24)


def reference_blob(headers: list[Header]) -> bytes:
    """One record's header blob as docs/format.md describes it, written independently."""
    out = struct.pack("<H", len(headers))
    for name, value in headers:
        raw = name.encode("utf-8")
        out += struct.pack("<H", len(raw)) + raw
        out += struct.pack("<i", -1) if value is None else struct.pack("<i", len(value)) + value
    return out


def reference_decode(blob: bytes, lens: list[int]) -> list[list[Header]]:
    """The per-record reading of a header blob; ``CorruptBatchError`` for anything off."""
    out: list[list[Header]] = []
    pos = 0
    try:
        for n in lens:
            end = pos + n
            (count,) = struct.unpack_from("<H", blob, pos)
            p = pos + 2
            hdrs: list[Header] = []
            for _ in range(count):
                (kl,) = struct.unpack_from("<H", blob, p)
                if p + 2 + kl > len(blob):
                    raise batch.CorruptBatchError("short")
                name = blob[p + 2:p + 2 + kl].decode("utf-8")
                p += 2 + kl
                (vl,) = struct.unpack_from("<i", blob, p)
                p += 4
                if vl < 0:
                    hdrs.append((name, None))
                else:
                    if p + vl > len(blob):
                        raise batch.CorruptBatchError("short")
                    hdrs.append((name, blob[p:p + vl]))
                    p += vl
            if p != end:
                raise batch.CorruptBatchError("record headers do not match their length")
            out.append(hdrs)
            pos = end
    except (struct.error, UnicodeDecodeError) as exc:
        raise batch.CorruptBatchError(str(exc)) from None
    if pos != len(blob):
        raise batch.CorruptBatchError("trailing")
    return out


@st.composite
def header_columns(draw: st.DrawFn) -> list[list[Header] | None]:
    """A batch's header column in the shapes producers send: one header set on every record,
    the same names with a value per record (a trace id: of one length or of any length,
    sometimes null), varying shapes, or records without headers mixed in."""
    n = draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["same", "names", "fixed", "any", "mixed"]))
    names = draw(st.lists(header_names, min_size=1, max_size=3))
    if kind == "same":
        one = [(name, draw(_values)) for name in names]
        return [list(one) for _ in range(n)]
    if kind in ("names", "fixed"):
        size = draw(st.integers(0, 20))
        value = st.binary(min_size=size, max_size=size) if kind == "fixed" else _values
        return [[(name, draw(value)) for name in names] for _ in range(n)]
    if kind == "any":
        return [[(draw(st.sampled_from(names)), draw(_values)) for _ in range(len(names))] for _ in range(n)]
    return [draw(st.none() | st.lists(st.tuples(st.sampled_from(names), _values), max_size=3)) for _ in range(n)]


def as_lengths(column: bytes) -> list[int]:
    lens = array("I")
    lens.frombytes(column)
    return lens.tolist()


@given(header_columns())
@settings(max_examples=300, deadline=None)
def test_encoded_header_columns_are_the_documented_per_record_layout(column: list[list[Header] | None]) -> None:
    lens_col, blob = batch._encode_headers([tuple(h) if h is not None else None for h in column])
    blobs = [reference_blob(h or []) for h in column]
    assert blob == b"".join(blobs)
    assert as_lengths(lens_col) == [len(b) for b in blobs]


@given(header_columns())
@settings(max_examples=300, deadline=None)
def test_decoded_header_columns_keep_order_duplicates_and_nulls(column: list[list[Header] | None]) -> None:
    blob = b"".join(reference_blob(h or []) for h in column)
    lens = array("I", [len(reference_blob(h or [])) for h in column])
    got = batch._decode_headers(blob, lens)
    assert got == [h or [] for h in column]
    assert len({id(h) for h in got}) == len(got)  # every record its own list: changing one changes no other


@given(header_columns(), st.data())
@settings(max_examples=400, deadline=None)
def test_a_corrupt_header_blob_decodes_as_the_per_record_reading_says(column: list[list[Header] | None],
                                                                       data: st.DataObject) -> None:
    lens = [len(reference_blob(h or [])) for h in column]
    blob = bytearray(b"".join(reference_blob(h or []) for h in column))
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    try:
        expected: object = reference_decode(bytes(blob), lens)
    except batch.CorruptBatchError:
        expected = batch.CorruptBatchError
    try:
        got: object = batch._decode_headers(bytes(blob), array("I", lens))
    except batch.CorruptBatchError:
        got = batch.CorruptBatchError
    assert got == expected


@pytest.mark.parametrize("compression", [batch.COMPRESSION_NONE, batch.COMPRESSION_ZSTD])
def test_a_batch_of_trace_ids_round_trips_through_encode_and_decode(compression: int) -> None:
    n = 500
    headers = [(("trace-id", b"%016x" % i), ("app", b"bench")) for i in range(n)]
    buf = batch.encode([b"k"] * n, [b"v%d" % i for i in range(n)], [1] * n, headers, compression=compression)
    decoded = batch.decode(buf)
    assert decoded.headers == [list(h) for h in headers]
    assert decoded.values == [b"v%d" % i for i in range(n)]
