"""The committed-offsets version (``meta`` ``offsets_version``): every writer of the
``offsets`` database bumps it in its own transaction, and ``replica.offsets_digest``
caches on it without ever answering with a stale digest."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest

import embedlog
from embedlog import TopicPartition
from embedlog.storage import mirrors, replica, schema
from embedlog.storage.offsets_version import offsets_version
from procs.harness import store_read as read
from procs.harness import store_write as write

Log = embedlog.Log
TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


def version(log: Log) -> int | None:
    return read(log, offsets_version)  # type: ignore[no-any-return]


def reference_digest(log: Log) -> bytes:
    """The protocol's offsets digest computed here from scratch: blake2b-128 over every
    entry as (u32le key length, key, u32le value length, value) in key order."""
    h = hashlib.blake2b(digest_size=16)
    for k, v in read(log, replica.offset_records):
        h.update(struct.pack("<I", len(k)) + k + struct.pack("<I", len(v)) + v)
    return h.digest()


def check(log: Log) -> None:
    """The (possibly cached) digest, asked twice, is the one computed from scratch."""
    assert read(log, replica.offsets_digest) == reference_digest(log)
    assert read(log, replica.offsets_digest) == reference_digest(log)


def topic_log(make_log: Callable[..., Log], name: str = "log") -> Log:
    log = make_log(name)
    log.create_topic("t", 2)
    with log.producer() as p:
        for i in range(10):
            p.send("t", b"%d" % i, partition=i % 2)
    return log


def test_every_writer_bumps_the_version(make_log: Callable[..., Log]) -> None:
    log = topic_log(make_log)
    assert version(log) is None  # nothing committed yet
    check(log)
    seen: list[int | None] = []

    def changed() -> None:
        now = version(log)
        assert now is not None
        assert now > max([v for v in seen if v is not None], default=-1)
        seen.append(now)
        check(log)

    log.commit_offsets("g", {TP0: 3, TP1: 4})
    changed()
    with log.transaction() as tx:
        tx.send("t", b"x", partition=0)
        tx.commit_offsets("g", {TP0: 5})
    changed()
    log.reset_group_offsets("g", "t", "earliest")
    changed()
    log.delete_group("g")
    changed()
    write(log, lambda txn, dbs: mirrors.put_source_offsets(txn, dbs, "m", "t", "remote", {0: (7, 9)}))
    changed()
    log.commit_offsets("h", {TP1: 2})
    changed()
    log.delete_topic("t")  # removes the topic's committed offsets (of both groups)
    changed()
    assert read(log, replica.offset_records) == []


def test_apply_offsets_bumps_the_version(make_log: Callable[..., Log]) -> None:
    leader, follower = topic_log(make_log, "a"), topic_log(make_log, "b")
    leader.commit_offsets("g", {TP0: 3})
    follower_before = version(follower)
    check(follower)
    write(follower, lambda txn, dbs: replica.apply_offsets(txn, dbs, read(leader, replica.offset_records)))
    assert follower_before is None
    assert version(follower) is not None
    check(follower)
    assert read(follower, replica.offsets_digest) == read(leader, replica.offsets_digest)
    write(follower, lambda txn, dbs: replica.apply_offsets(txn, dbs, []))  # the leader's are gone
    check(follower)
    assert read(follower, replica.offset_records) == []


def test_digest_is_cached_on_the_version(make_log: Callable[..., Log]) -> None:
    """An entry written behind the version's back is not seen until the version moves:
    proof that the digest comes from the cache while the version stands still."""
    log = topic_log(make_log)
    log.commit_offsets("g", {TP0: 3})
    cached = read(log, replica.offsets_digest)
    key, value = read(log, replica.offset_records)[0]
    sneaky = schema.committed_key("sneaky", int.from_bytes(key[-8:-4], "big"), 0)
    write(log, lambda txn, dbs: txn.put(sneaky, value, db=dbs["offsets"]))
    assert read(log, replica.offsets_digest) == cached != reference_digest(log)
    log.commit_offsets("g", {TP0: 4})
    check(log)


def test_no_version_means_no_cache(make_log: Callable[..., Log]) -> None:
    """A directory whose offsets were written without the version (older code) gets a
    fresh digest every time."""
    log = topic_log(make_log)
    tid = log.describe_topic("t").topic_id
    value = schema.COMMITTED.pack(3, 0, 0)
    write(log, lambda txn, dbs: txn.put(schema.committed_key("g", tid, 0), value, db=dbs["offsets"]))
    assert version(log) is None
    check(log)
    write(log, lambda txn, dbs: txn.put(schema.committed_key("g", tid, 1), value, db=dbs["offsets"]))
    assert version(log) is None
    check(log)


def test_another_process_commit_is_seen(make_log: Callable[..., Log], tmp_path: Path) -> None:
    log = topic_log(make_log)
    log.commit_offsets("g", {TP0: 1})
    check(log)
    before = version(log)
    code = textwrap.dedent("""
        import sys, embedlog
        from embedlog import TopicPartition
        with embedlog.open(sys.argv[1], maintenance_interval_ms=None) as log:
            log.commit_offsets("g", {TopicPartition("t", 0): 4, TopicPartition("t", 1): 2})
    """)
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "log")], check=True, timeout=60)
    after = version(log)
    assert before is not None
    assert after is not None
    assert after > before
    check(log)
    assert log.consumer(group="g").committed([TP0, TP1]) == {TP0: 4, TP1: 2}


def test_digest_of_an_aborted_write_is_not_cached(make_log: Callable[..., Log]) -> None:
    """A digest read in a write transaction after it changed the offsets is not cached:
    that transaction may abort and the next writer commit the same version with other
    offsets."""
    log = topic_log(make_log)
    log.commit_offsets("g", {TP0: 1})
    check(log)
    other = [(k, v) for k, v in read(log, replica.offset_records)]
    other = [(k.replace(b"g\x00", b"z\x00", 1), v) for k, v in other]

    class Abort(Exception):
        pass

    def doomed(txn: lmdb.Transaction, dbs: Any) -> None:
        committed = read(log, replica.offsets_digest)
        replica.apply_offsets(txn, dbs, other)
        assert replica.offsets_digest(txn, dbs) != committed
        raise Abort

    with pytest.raises(Abort):
        write(log, doomed)
    log.commit_offsets("g", {TP0: 2})  # the version the aborted write had, other offsets
    check(log)
