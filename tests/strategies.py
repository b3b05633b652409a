"""Shared hypothesis strategies for embedlog's tests.

Records are ``Rec`` tuples (key, value, headers, timestamp) with the shapes the
producer accepts: ``bytes | None`` keys and values (``None`` value = tombstone),
headers as an ordered list of ``(str, bytes | None)`` pairs (duplicates allowed), and
millisecond timestamps.

Timestamps come in two flavours:

* *realistic*: a batch shares a base time near "now" and records jitter by at most a
  week around it (spread < 2**31 ms, what real producers send);
* *wide*: any non-negative i64 (the producer rejects negative timestamps), so a batch
  spans the whole range the header's i64 fields and the codec's timestamp column must
  hold (format v1 first used i32 deltas with an i64 fallback; now absolute i64).
"""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import strategies as st

__all__ = [
    "I32_MAX",
    "I32_MIN",
    "MAX_BATCH",
    "REALISTIC_TS",
    "WIDE_TS",
    "Rec",
    "batches",
    "header_lists",
    "header_names",
    "keys",
    "realistic_timestamps",
    "records",
    "timestamps",
    "topic_names",
    "values",
    "wide_timestamps",
]

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
#: ms since the epoch, 2017-07 .. 2033-05
REALISTIC_TS = (1_500_000_000_000, 2_000_000_000_000)
#: any timestamp the producer accepts (non-negative i64)
WIDE_TS = (0, 2**63 - 1)
_WEEK_MS = 7 * 24 * 3600 * 1000
MAX_BATCH = 200

Header = tuple[str, bytes | None]


class Rec(NamedTuple):
    """One record as a producer would send it."""

    key: bytes | None
    value: bytes | None
    headers: list[Header]
    timestamp: int


keys: st.SearchStrategy[bytes | None] = st.none() | st.binary(max_size=48)
values: st.SearchStrategy[bytes | None] = st.none() | st.binary(max_size=160)
#: header names are any str that UTF-8 can encode (no lone surrogates)
header_names: st.SearchStrategy[str] = st.text(st.characters(blacklist_categories=("Cs",)), max_size=16)
header_lists: st.SearchStrategy[list[Header]] = st.lists(
    st.tuples(header_names, st.none() | st.binary(max_size=24)), max_size=4
)
realistic_timestamps: st.SearchStrategy[int] = st.integers(*REALISTIC_TS)
wide_timestamps: st.SearchStrategy[int] = st.integers(*WIDE_TS)
timestamps: st.SearchStrategy[int] = realistic_timestamps | wide_timestamps


def records(
    *, timestamp: st.SearchStrategy[int] = timestamps, with_headers: bool = True
) -> st.SearchStrategy[Rec]:
    """Single records; ``with_headers=False`` gives every record an empty header list."""
    hdrs: st.SearchStrategy[list[Header]] = header_lists if with_headers else st.just([])
    return st.builds(Rec, keys, values, hdrs, timestamp)


@st.composite
def _realistic_batch(draw: st.DrawFn, min_size: int, max_size: int, with_headers: bool) -> list[Rec]:
    base = draw(realistic_timestamps)
    jitter = st.integers(-_WEEK_MS, _WEEK_MS).map(lambda d: base + d)
    return draw(st.lists(records(timestamp=jitter, with_headers=with_headers), min_size=min_size, max_size=max_size))


def batches(
    *,
    min_size: int = 1,
    max_size: int = MAX_BATCH,
    timestamp: str = "any",
    with_headers: bool = True,
) -> st.SearchStrategy[list[Rec]]:
    """Lists of ``min_size..max_size`` records (one batch's worth).

    ``timestamp`` is ``"realistic"`` (deltas always fit i32), ``"wide"`` (independent
    non-negative i64 timestamps) or ``"any"`` (either kind of batch).
    """
    realistic = _realistic_batch(min_size, max_size, with_headers)
    wide = st.lists(records(timestamp=wide_timestamps, with_headers=with_headers),
                    min_size=min_size, max_size=max_size)
    if timestamp == "realistic":
        return realistic
    if timestamp == "wide":
        return wide
    if timestamp == "any":
        return realistic | wide
    raise ValueError(f"timestamp must be 'realistic', 'wide' or 'any', got {timestamp!r}")


#: names Kafka accepts: 1-249 of [a-zA-Z0-9._-], not "." or ".."
topic_names: st.SearchStrategy[str] = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"), min_size=1, max_size=249
).filter(lambda s: s not in (".", ".."))
