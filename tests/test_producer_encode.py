"""``codec.batch.encode_one``: the one-record encoder a single-record ``flush()`` uses
must write exactly the bytes of the general ``encode`` (same CRC, same layout)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import embedlog
from embedlog.codec import batch

maybe_bytes = st.one_of(st.none(), st.binary(max_size=300))


@settings(max_examples=300, deadline=None)
@given(key=maybe_bytes, value=maybe_bytes, ts=st.integers(-(2**63), 2**63 - 1), transactional=st.booleans())
def test_encode_one_writes_the_bytes_of_encode(key: bytes | None, value: bytes | None, ts: int,
                                               transactional: bool) -> None:
    one = batch.encode_one(key, value, ts, transactional=transactional)
    assert one == batch.encode([key], [value], [ts], transactional=transactional)
    got = batch.decode(bytes(one))
    assert (got.keys, got.values, list(got.timestamps)) == ([key], [value], [ts])


def test_a_single_record_flush_stores_what_the_general_path_would(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", durability="none") as log:
        log.create_topic("t", partitions=1)
        with log.producer() as p, log.transaction() as tx:
            p.send("t", b"v", key=b"k", timestamp_ms=1234)
            p.flush()  # one record: encode_one
            p.send("t", None, key=None, timestamp_ms=1235)
            p.flush()  # a tombstone without a key
            tx.send("t", b"w", key=b"k", timestamp_ms=1236)  # (transactional attribute)
        with log.consumer(["t"], auto_offset_reset="earliest") as c:
            got = []
            while len(got) < 3:
                got += c.poll(timeout=5.0)
        assert [(m.key, m.value, m.timestamp) for m in got] == [(b"k", b"v", 1234), (None, None, 1235),
                                                                  (b"k", b"w", 1236)]
