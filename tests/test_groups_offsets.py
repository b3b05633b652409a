"""Committed offsets: group commit of concurrent commits, and metadata read back.

Concurrent ``commit`` calls of one process share the log's group commit (one write
transaction, one fsync), each keeping its own fencing error; offsets may carry a
metadata string that ``committed(..., metadata=True)``, ``log.committed_offsets`` and
``describe_group`` return.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import TopicPartition as TP
from embedlog.errors import (
    IllegalGenerationError,
    InvalidOffsetError,
    UnknownGroupError,
)
from embedlog.groups.offsets import MAX_METADATA_BYTES, OffsetAndMetadata
from embedlog.groups.state import GroupState
from embedlog.storage import schema
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)
from procs.harness import fill_partitions

TIMEOUT = 30.0


# every wait polls with a deadline (tests/procs/harness.py), ``step`` run before each try
wait_until = functools.partial(harness.wait_until, timeout=TIMEOUT, interval=0.005)


def members(log: embedlog.Log, topic: str, n: int, group: str = "g") -> list[embedlog.Consumer]:
    """``n`` members of ``group`` sharing the partitions of ``topic``, each owning some."""
    total = log.describe_topic(topic).partitions
    cs = [log.consumer([topic], group=group, client_id=f"c{i}", enable_auto_commit=False,
                       auto_offset_reset="earliest") for i in range(n)]

    def poll_all() -> None:
        for c in cs:
            c.poll(timeout=0.005, max_records=1)

    wait_until(lambda: all(c.assignment() for c in cs) and sum(len(c.assignment()) for c in cs) == len(total),
               "the partitions shared", step=poll_all)
    return cs


def count_commits(log: embedlog.Log, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list counting the LMDB write transactions committed from now on."""
    env = log._store.env
    write = env.write
    count = [0]

    def counting(fn: Callable[[Any], Any], **kw: Any) -> Any:
        result = write(fn, **kw)
        count[0] += 1
        return result

    monkeypatch.setattr(env, "write", counting)
    return count


# -- concurrent commits ------------------------------------------------------------------------

def test_commits_queued_together_share_one_transaction_and_fail_alone(log: embedlog.Log,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    log.create_topic("t", partitions=8)
    fill_partitions(log, "t", 8, 20)
    cs = members(log, "t", 8)
    owned = [next(iter(c.assignment())) for c in cs]
    # Four members are presumed dead (as after missed heartbeats) without knowing it yet:
    # they still hold their partitions locally, and their commits must be fenced.
    zombies = set(range(1, 8, 2))
    log._coordinator.leave("g", [cs[i].group_metadata()[1] for i in zombies])
    # Hold the group commit so that all eight commits queue behind it, then let them go.
    committer = log._committer
    release = threading.Event()
    holder = threading.Thread(target=committer.append, args=((), lambda txn: release.wait(TIMEOUT)))
    commits = count_commits(log, monkeypatch)
    holder.start()
    wait_until(lambda: committer._leader, "the holder leads a commit")
    errors: dict[int, BaseException | None] = {}

    def commit(i: int) -> None:
        try:
            cs[i].commit({owned[i]: OffsetAndMetadata(10 + i, f"m{i}")})
            errors[i] = None
        except BaseException as exc:  # checked below, per thread
            errors[i] = exc

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: len(committer._queue) == 8, "eight commits queued")
    release.set()
    for t in [holder, *threads]:
        t.join(TIMEOUT)
    assert commits == [2], "the eight commits were written in one transaction after the holder's"
    for i in range(8):
        if i in zombies:
            assert isinstance(errors[i], IllegalGenerationError), errors[i]
            assert cs[i].group_metadata()[1] in str(errors[i]), "each zombie gets its own error"
        else:
            assert errors[i] is None, errors[i]
    got = cs[0].committed(owned, metadata=True)
    for i in range(8):
        expect = None if i in zombies else OffsetAndMetadata(10 + i, f"m{i}", 0)
        assert got[owned[i]] == expect
    for c in cs:
        c.close()


def test_eight_threads_committing_at_once(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=8)
    fill_partitions(log, "t", 8, 50)
    cs = members(log, "t", 8)
    owned = [next(iter(c.assignment())) for c in cs]
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait(TIMEOUT)
            for k in range(1, 51):
                cs[i].commit({owned[i]: k})
                assert cs[i].committed([owned[i]]) == {owned[i]: k}, "a commit is visible when it returns"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not errors, errors
    assert log.committed_offsets("g") == {tp: OffsetAndMetadata(50, "", 0) for tp in owned}
    for c in cs:
        c.close()


# -- metadata -------------------------------------------------------------------------------------

def test_metadata_is_committed_and_read_back(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 10)
    (c,) = members(log, "t", 1)
    t0, t1 = TP("t", 0), TP("t", 1)
    c.commit({t0: OffsetAndMetadata(3, "batch-7"), t1: (5, "from a tuple")})
    assert c.committed([t0, t1]) == {t0: 3, t1: 5}
    assert c.committed([t0, t1], metadata=True) == {t0: OffsetAndMetadata(3, "batch-7", 0),
                                                    t1: OffsetAndMetadata(5, "from a tuple", 0)}
    got = c.committed([t0], metadata=True)[t0]
    assert got is not None
    assert (got.offset, got.metadata, got.leader_epoch) == (3, "batch-7", 0)
    # A plain offset clears the metadata (as in Kafka); None means "no metadata".
    c.commit({t0: 4, t1: (6, None)})
    assert c.committed([t0, t1], metadata=True) == {t0: OffsetAndMetadata(4, "", 0), t1: OffsetAndMetadata(6, "", 0)}
    c.commit({t0: OffsetAndMetadata(4, "ünïcode ✓")})
    assert log.committed_offsets("g") == {t0: OffsetAndMetadata(4, "ünïcode ✓", 0), t1: OffsetAndMetadata(6, "", 0)}
    assert log.committed_offsets("g", [t1, TP("t", 9)]) == {t1: OffsetAndMetadata(6, "", 0)}
    desc = {(o.topic, o.partition): (o.committed, o.metadata) for o in log.describe_group("g").offsets}
    assert desc == {t0: (4, "ünïcode ✓"), t1: (6, "")}
    c.close()
    # Durable: another handle of the directory reads the same.
    with embedlog.open(log.path, maintenance_interval_ms=None) as other:
        assert other.committed_offsets("g")[t0] == OffsetAndMetadata(4, "ünïcode ✓", 0)


def test_metadata_by_group_name_and_in_a_transaction(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=1)
    log.create_topic("out")
    fill_partitions(log, "t", 1, 10)
    tp = TP("t", 0)
    log.commit_offsets("admin", {tp: OffsetAndMetadata(2, "set by hand")})
    assert log.committed_offsets("admin") == {tp: OffsetAndMetadata(2, "set by hand", 0)}
    (c,) = members(log, "t", 1, group="etl")
    with log.transaction() as tx:
        tx.send("out", b"x")
        tx.commit_offsets(c, {tp: OffsetAndMetadata(7, "tx 1")})
    assert c.committed([tp], metadata=True) == {tp: OffsetAndMetadata(7, "tx 1", 0)}
    tx = log.transaction()
    tx.send("out", b"y")
    with pytest.raises(InvalidOffsetError, match="metadata"):  # (refused at once: the transaction goes on)
        tx.commit_offsets(c, {tp: OffsetAndMetadata(8, 42)})  # type: ignore[arg-type]
    tx.abort()
    assert c.committed([tp], metadata=True) == {tp: OffsetAndMetadata(7, "tx 1", 0)}, "nothing of it was written"
    # A group with nothing committed yet reads as empty; an unknown one is an error.
    assert log.committed_offsets("etl", [TP("out", 0)]) == {}
    with pytest.raises(UnknownGroupError):
        log.committed_offsets("nope")
    c.close()


@pytest.mark.parametrize("value", [
    OffsetAndMetadata(1, 42),  # type: ignore[arg-type]
    (1, b"bytes"),
    (1, "x" * (MAX_METADATA_BYTES + 1)),
    (1, "é" * (MAX_METADATA_BYTES // 2 + 1)),  # the limit is in UTF-8 bytes
    (),
    "3",
    True,
    (-1, "negative"),
])
def test_bad_commit_values_are_refused(log: embedlog.Log, value: Any) -> None:
    log.create_topic("t")
    fill_partitions(log, "t", 1, 5)
    (c,) = members(log, "t", 1)
    tp = TP("t", 0)
    with pytest.raises(InvalidOffsetError):
        c.commit({tp: value})
    with pytest.raises(InvalidOffsetError):
        log.commit_offsets("other", {tp: value})
    c.commit({tp: (1, "x" * MAX_METADATA_BYTES)})  # exactly at the limit is fine
    assert c.committed([tp]) == {tp: 1}
    c.close()


# -- offsets retention (Kafka's offsets.retention, KIP-211) ----------------------------------------

def _expire(log: embedlog.Log, retention_ms: int, now: int) -> int:
    return log._coordinator.expire_offsets(retention_ms, now=now)


def test_an_empty_groups_offsets_expire_once_the_retention_passed_since_it_emptied(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 3)
    c = log.consumer(["t"], group="g", auto_offset_reset="earliest", enable_auto_commit=False)
    wait_until(lambda: len(c.assignment()) == 2, "the partitions assigned", step=lambda: c.poll(timeout=0.01))
    c.commit({TP("t", 0): 2, TP("t", 1): 1})
    c.close()  # the group is empty from now on
    empty_ms = log._store.read(lambda txn: log._coordinator.load(txn, "g")).empty_ms
    assert empty_ms is not None
    assert _expire(log, 60_000, now=empty_ms + 59_000) == 0
    assert {tp: om.offset for tp, om in log.committed_offsets("g").items()} == {TP("t", 0): 2, TP("t", 1): 1}
    assert _expire(log, 60_000, now=empty_ms + 61_000) == 2
    assert "g" not in log.groups()
    with pytest.raises(UnknownGroupError):
        log.committed_offsets("g")
    again = log.consumer(["t"], group="g", auto_offset_reset="latest", enable_auto_commit=False)
    wait_until(lambda: len(again.assignment()) == 2, "the partitions assigned", step=lambda: again.poll(timeout=0.01))
    assert again.position(TP("t", 0)) == 3  # nothing committed: auto_offset_reset
    again.close()


def test_a_group_with_a_live_member_keeps_its_offsets(tmp_path: Any) -> None:
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None, offsets_retention_ms=1) as log:
        log.create_topic("t")
        c = log.consumer(["t"], group="g", auto_offset_reset="earliest", enable_auto_commit=False)
        wait_until(c.assignment, "the partition assigned", step=lambda: c.poll(timeout=0.01))
        c.commit({TP("t", 0): 0})
        c.poll(timeout=0.05)
        assert log.maintain()["offsets_expired"] == 0
        assert {tp: om.offset for tp, om in log.committed_offsets("g").items()} == {TP("t", 0): 0}
        c.close()
        harness.wait_until(lambda: log.maintain()["offsets_expired"] == 1, "the offset expired", timeout=TIMEOUT)


def _stamps(log: embedlog.Log, group: str) -> dict[int, int]:
    """Commit times (wall ms) of ``group``'s offsets, by partition."""
    prefix = group.encode() + b"\x00"

    def fn(txn: Any) -> dict[int, int]:
        out = {}
        with txn.cursor(db=log._store.dbs["offsets"]) as cur:
            for key, value in cur:
                if bytes(key).startswith(prefix):
                    out[schema.unpack_committed_key(bytes(key))[2]] = schema.COMMITTED.unpack_from(bytes(value), 0)[2]
        return out

    return log._store.read(fn)


def test_standalone_commits_expire_one_by_one_and_bridge_progress_never(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 10)
    progress = '{"mirror": "up", "remote": "t", "hw": {}, "lost": 0}'
    log.commit_offsets("mirror-up", {TP("t", 0): OffsetAndMetadata(7, progress)})
    log.commit_offsets("solo", {TP("t", 0): 5})
    wait_until(lambda: harness.now_ms() > _stamps(log, "solo")[0], "the clock to move on")
    log.commit_offsets("solo", {TP("t", 1): 6})
    first, second = _stamps(log, "solo")[0], _stamps(log, "solo")[1]
    assert second > first
    assert _expire(log, 60_000, now=first + 59_999) == 0
    assert _expire(log, 60_000, now=first + 60_000) == 1  # the first commit's offset alone
    assert {tp: om.offset for tp, om in log.committed_offsets("solo").items()} == {TP("t", 1): 6}
    assert _expire(log, 60_000, now=second + 60_000) == 1
    assert "solo" not in log.groups()
    assert _expire(log, 1, now=harness.now_ms() + 10**12) == 0
    kept = log.committed_offsets("mirror-up")[TP("t", 0)]
    assert (kept.offset, kept.metadata) == (7, progress)


def test_offsets_retention_is_checked_and_off_by_default(tmp_path: Any) -> None:
    for bad in (0, -1, True, "7d", 1.5):
        with pytest.raises(embedlog.errors.ConfigError):
            embedlog.open(tmp_path / "bad", offsets_retention_ms=bad)
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        assert log.offsets_retention_ms is None
        log.create_topic("t")
        fill_partitions(log, "t", 1, 2)
        log.commit_offsets("solo", {TP("t", 0): 1})
        assert log.maintain()["offsets_expired"] == 0
        assert _expire(log, 1, now=harness.now_ms() + 10**9) == 1  # (what maintain runs when asked to)


def test_nothing_expires_on_a_replica(log: embedlog.Log) -> None:
    log.create_topic("t")
    fill_partitions(log, "t", 1, 2)
    log.commit_offsets("solo", {TP("t", 0): 1})
    store = log._store
    store.write(lambda txn: txn.put(schema.META_ROLE, b"replica", db=store.dbs["meta"]))
    assert _expire(log, 1, now=harness.now_ms() + 10**9) == 0
    assert set(log.committed_offsets("solo")) == {TP("t", 0)}


def test_a_group_state_records_when_it_became_empty() -> None:
    state = GroupState("g")
    assert GroupState.from_json("g", state.to_json()).empty_ms is None
    assert b"empty_ms" not in state.to_json()
    state.empty_ms = 123
    assert GroupState.from_json("g", state.to_json()).empty_ms == 123


def test_an_idle_member_s_auto_commit_writes_nothing_new(log: embedlog.Log) -> None:
    """Auto-commit commits the partitions whose position moved since this consumer last
    committed them: an idle member re-committed (a durable write and fsync, waking every
    poller) the same offsets every interval, which wears an edge device's flash."""
    from embedlog.storage.offsets_version import offsets_version  # noqa: PLC0415

    store = log._store

    def version() -> int | None:
        return store.read(lambda txn: offsets_version(txn, store.dbs))

    log.create_topic("idle", partitions=2)
    with log.producer() as p:
        for i in range(6):
            p.send("idle", b"%d" % i, partition=i % 2)
    c = log.consumer(["idle"], group="g-idle", auto_offset_reset="earliest", auto_commit_interval_ms=20)
    got = 0
    deadline = time.monotonic() + 10
    while got < 6 and time.monotonic() < deadline:
        got += len(c.poll(0.05))
    time.sleep(0.05)
    c.poll(0.05)  # (commits what was consumed)
    assert c.committed([TP("idle", 0), TP("idle", 1)]) == {TP("idle", 0): 3, TP("idle", 1): 3}
    before = version()
    for _ in range(10):
        c.poll(0.03)
    assert version() == before
    with log.producer() as p:
        p.send("idle", b"more", partition=1)
    while not c.poll(0.05):
        pass
    time.sleep(0.03)
    c.poll(0.03)
    assert c.committed([TP("idle", 1)]) == {TP("idle", 1): 4}
    c.close()


def _auto_committed(log: embedlog.Log, c: embedlog.Consumer, tp: TP, want: int) -> None:
    """Poll ``c`` until the group's committed offset of ``tp`` is ``want``."""
    deadline = time.monotonic() + 10
    while True:
        c.poll(0.03)
        got = log.committed_offsets(c.group).get(tp) if c.group in log.groups() else None
        if got is not None and got.offset == want:
            return
        assert time.monotonic() < deadline, got


def _read(c: embedlog.Consumer, n: int) -> None:
    got = 0
    deadline = time.monotonic() + 10
    while got < n:
        assert time.monotonic() < deadline, got
        got += len(c.poll(0.05))


@pytest.mark.parametrize("subscribed", [False, True])
def test_auto_commit_after_the_topic_was_created_again_commits_the_new_topic_s_position(
        log: embedlog.Log, subscribed: bool) -> None:
    """The topic deleted and created again under its name: the auto-commit of the old
    topic's position was written as the new topic's offset (the consumer then skipped
    the new records), or was skipped as unchanged (nothing committed for the new one)."""
    tp = TP("re", 0)
    log.create_topic("re")
    with log.producer() as p:
        for i in range(5):
            p.send("re", b"old-%d" % i)
    kw: dict[str, Any] = {"group": "g-re", "auto_offset_reset": "earliest", "auto_commit_interval_ms": 20}
    c = log.consumer(["re"], heartbeat_interval_ms=50, **kw) if subscribed else log.consumer(**kw)
    if not subscribed:
        c.assign([tp])
    _read(c, 5)
    _auto_committed(log, c, tp, 5)
    log.delete_topic("re")
    log.create_topic("re")
    with log.producer() as p:
        for i in range(3):
            p.send("re", b"new-%d" % i)
    _read(c, 3)
    _auto_committed(log, c, tp, 3)
    c.close()


def test_auto_commit_after_the_group_was_reset_commits_the_position_again(log: embedlog.Log) -> None:
    """Committed 10, unassigned, the group reset to 3 by an operator, assigned again and
    read up to 10: the auto-commit writes 10 (it was skipped as what it had committed)."""
    tp = TP("rs", 0)
    log.create_topic("rs")
    with log.producer() as p:
        for i in range(10):
            p.send("rs", b"%d" % i)
    c = log.consumer(group="g-rs", auto_offset_reset="earliest", auto_commit_interval_ms=20)
    c.assign([tp])
    _read(c, 10)
    _auto_committed(log, c, tp, 10)
    c.unassign()
    log.reset_group_offsets("g-rs", "rs", 3)
    c.assign([tp])
    _read(c, 7)
    _auto_committed(log, c, tp, 10)
    c.close()


def test_an_idle_consumer_renews_its_commit_before_retention_expires_it(tmp_path: Path) -> None:
    """A manually assigned consumer's offsets committed by name expire one by one after
    their commit (``offsets_retention_ms``): its auto-commit renews an unchanged one
    before that, as Kafka's Java client's periodic commit keeps it."""
    tp = TP("t", 0)
    with embedlog.open(tmp_path / "log", offsets_retention_ms=1500, maintenance_interval_ms=100) as log:
        log.create_topic("t")
        with log.producer() as p:
            for i in range(5):
                p.send("t", b"%d" % i)
        c = log.consumer(group="g", auto_offset_reset="earliest", auto_commit_interval_ms=50)
        c.assign([tp])
        _read(c, 5)
        end = time.monotonic() + 4
        while time.monotonic() < end:
            c.poll(0.05)
        assert log.committed_offsets("g")[tp].offset == 5
        c.close()


def test_a_dead_member_left_in_a_group_does_not_let_a_consumer_join_a_mirror_s_progress(tmp_path: Path) -> None:
    """The group of an up mirror refuses consumers (they would commit over its progress):
    also when a member killed earlier is still listed in it, its session run out."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from embedlog.errors import GroupError  # noqa: PLC0415

    child = (
        "import sys, time, embedlog\n"
        "log = embedlog.open(sys.argv[1], maintenance_interval_ms=None)\n"
        "c = log.consumer(['t'], group='site-7', session_timeout_ms=1000, heartbeat_interval_ms=300,"
        " enable_auto_commit=False)\n"
        "c.poll(0.5)\n"
        "print('joined', flush=True)\n"
        "time.sleep(600)\n")
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic("t")
        proc = subprocess.Popen([sys.executable, "-c", child, str(tmp_path / "log")], stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"joined"
        finally:
            proc.kill()
            proc.wait()
        time.sleep(1.5)  # (its session ran out; it is still listed)
        progress = json.dumps({"mirror": "up", "remote": "remote-t", "hw": {}, "lost": 0}, separators=(",", ":"))
        log.commit_offsets("site-7", {TP("t", 0): (0, progress)})
        with pytest.raises(GroupError, match="cannot join"):
            log.consumer(["t"], group="site-7", enable_auto_commit=False)
