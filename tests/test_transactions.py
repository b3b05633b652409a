"""Transactions: all or nothing across topics, partitions and group offsets; fencing of
zombies; kill -9 inside a transaction; exactly-once consume-transform-produce.

Helpers in ``procs/``: ``group_tx.py`` (a writer killed inside or between transactions)
and ``group_etl.py`` (a consume-transform-produce worker in group ``etl``).
"""

from __future__ import annotations

import contextlib
import functools
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import TopicPartition
from embedlog.errors import (
    ClosedError,
    IllegalGenerationError,
    InvalidOffsetError,
    NotAssignedError,
    TransactionAbortedError,
    UnknownTopicError,
)
from embedlog.transactions import Transaction
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

TIMEOUT = 60.0
TP = TopicPartition


# every wait polls with a deadline (tests/procs/harness.py), ``step`` run before each try
wait_until = functools.partial(harness.wait_until, timeout=TIMEOUT)


def end_offsets(log: embedlog.Log, *topics: str) -> dict[TopicPartition, int]:
    """End offsets of every partition of ``topics``, in one snapshot."""
    out = {}
    for topic in topics:
        out.update({TP(topic, p.partition): p.end_offset for p in log.describe_topic(topic).partitions})
    return out


def values(log: embedlog.Log, topic: str) -> dict[int, list[bytes | None]]:
    return {p: [m.value for m in msgs] for p, msgs in harness.read_all(log, topic).items()}


def group_consumer(log: embedlog.Log, topics: list[str], client: str, **options: Any) -> embedlog.Consumer:
    options.setdefault("auto_offset_reset", "earliest")
    options.setdefault("enable_auto_commit", False)
    options.setdefault("group", "g")
    return log.consumer(topics, client_id=client, **options)


def send_and_commit(log: embedlog.Log, topic: str, value: bytes, consumer: embedlog.Consumer,
                    offsets: dict[TopicPartition, int]) -> None:
    """One transaction: a record to partition 0 of ``topic`` and offsets through ``consumer``."""
    with log.transaction() as tx:
        tx.send(topic, value, partition=0)
        tx.commit_offsets(consumer, offsets)


# -- visibility ---------------------------------------------------------------------------------

def test_nothing_is_visible_until_the_transaction_commits(log: embedlog.Log, make_log: Any) -> None:
    log.create_topic("a", partitions=3)
    log.create_topic("b")
    other = make_log()  # another handle on the same directory
    before = end_offsets(log, "a", "b")
    reader = log.consumer(auto_offset_reset="earliest")
    reader.assign([TP("a", 0), TP("a", 1), TP("a", 2), TP("b", 0)])
    with log.transaction() as tx:
        for p in range(3):
            for j in range(3):
                tx.send("a", f"{p}:{j}".encode(), key=b"k", partition=p)
        tx.send("b", b"one", headers=[("h", b"v")])
        assert end_offsets(log, "a", "b") == before
        assert end_offsets(other, "a", "b") == before
        assert reader.poll(timeout=0.05) == []
    assert end_offsets(log, "a", "b") == {TP("a", 0): 3, TP("a", 1): 3, TP("a", 2): 3, TP("b", 0): 1}
    got: list[embedlog.Message] = []
    wait_until(lambda: len(got) >= 10, "the records", step=lambda: got.extend(reader.poll(timeout=0.05)))
    assert sorted((m.topic, m.partition, m.offset, m.value) for m in got) == sorted(
        [("a", p, j, f"{p}:{j}".encode()) for p in range(3) for j in range(3)] + [("b", 0, 0, b"one")])
    assert next(m for m in got if m.topic == "b").headers == [("h", b"v")]
    reader.close()


def test_a_concurrent_reader_never_sees_part_of_a_transaction(log: embedlog.Log) -> None:
    log.create_topic("a", partitions=3)
    log.create_topic("b")
    per_partition, count = 2, 60
    tps = [TP("a", 0), TP("a", 1), TP("a", 2), TP("b", 0)]
    snapshots: list[dict[TopicPartition, int]] = []
    polled: list[embedlog.Message] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            snap = log.consumer()
            c = log.consumer(auto_offset_reset="earliest", max_poll_records=10_000)
            c.assign(tps)
            while not done.is_set() or len(polled) < count * (3 * per_partition + 1):
                snapshots.append(snap.end_offsets(tps))  # one read transaction for all four
                polled.extend(c.poll(timeout=0.01))
            snap.close()
            c.close()
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(count):
            with log.transaction() as tx:
                for p in range(3):
                    for j in range(per_partition):
                        tx.send("a", f"{i}:{j}".encode(), partition=p)
                tx.send("b", f"{i}".encode())
    finally:
        done.set()
        reader.join(TIMEOUT)
    assert not errors, errors
    assert len(snapshots) > 10
    for snap in snapshots:
        k = snap[TP("b", 0)]
        assert all(snap[TP("a", p)] == per_partition * k for p in range(3)), f"a partial transaction: {snap}"
    # The polling consumer got everything, each partition in transaction order.
    by_tp = defaultdict(list)
    for m in polled:
        by_tp[(m.topic, m.partition)].append(m.value)
    for p in range(3):
        assert by_tp[("a", p)] == [f"{i}:{j}".encode() for i in range(count) for j in range(per_partition)]
    assert by_tp[("b", 0)] == [f"{i}".encode() for i in range(count)]


def test_an_exception_inside_the_block_writes_nothing(log: embedlog.Log) -> None:
    log.create_topic("a", partitions=2)
    log.create_topic("src")
    with log.producer() as p:
        p.send("src", b"x")
        p.flush()
    before = end_offsets(log, "a")

    class Boom(Exception):
        pass

    def fails() -> None:
        with log.transaction() as tx:
            tx.send("a", b"1", partition=0)
            tx.send("a", b"2", partition=1)
            tx.commit_offsets("g", {TP("src", 0): 1})
            raise Boom

    with pytest.raises(Boom):
        fails()
    assert end_offsets(log, "a") == before
    assert log.groups() == [], "the offsets of an aborted transaction were not committed"

    def unknown_topic() -> None:
        with log.transaction() as tx:
            tx.send("a", b"1", partition=0)
            tx.send("no-such-topic", b"2")

    # A typed error from send inside the block aborts it the same way.
    with pytest.raises(UnknownTopicError):
        unknown_topic()
    assert end_offsets(log, "a") == before
    # abort() outside a with block, then the next transaction works.
    tx = log.transaction()
    tx.send("a", b"1", partition=0)
    tx.abort()
    with pytest.raises(ClosedError):
        tx.send("a", b"x")
    assert end_offsets(log, "a") == before
    with log.transaction() as tx:
        tx.send("a", b"ok", partition=1)
    assert values(log, "a") == {0: [], 1: [b"ok"]}
    with pytest.raises(ClosedError):
        tx.send("a", b"after the commit")


def test_closing_the_log_aborts_an_open_transaction(tmp_path: Path) -> None:
    """Log.close() closes its clients; for a transaction that is an abort: none of its
    records or offsets are written, and its commit then raises ClosedError."""
    path = tmp_path / "log"
    with embedlog.open(path, durability="none", maintenance_interval_ms=None) as lg:
        lg.create_topic("t")
        tx = lg.transaction()
        tx.send("t", b"half-built")
        tx.commit_offsets("g", {TP("t", 0): 1})
    with pytest.raises(ClosedError, match="aborted"):
        tx.send("t", b"more")
    with pytest.raises(ClosedError, match="aborted"):
        tx.commit()

    def block() -> None:
        with embedlog.open(path, durability="none", maintenance_interval_ms=None) as lg2, lg2.transaction() as tx2:
            tx2.send("t", b"in a block")
            lg2.close()  # (the block then ends normally: its commit finds the transaction aborted)

    with pytest.raises(ClosedError, match="aborted"):
        block()
    with embedlog.open(path, durability="none", maintenance_interval_ms=None) as lg:
        assert values(lg, "t") == {0: []}
        assert lg.groups() == []


def test_a_log_closed_while_a_commit_begins_aborts_it_and_the_commit_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Log.close() in another thread, landing after the commit's look at the transaction
    and before its write: the close drops the transaction's records, so the commit must
    raise ClosedError, not return as if it had written them (nor write the offsets
    alone)."""
    path = tmp_path / "log"
    lg = embedlog.open(path, durability="none", maintenance_interval_ms=None)
    lg.create_topic("t")
    check = Transaction._check
    closer = threading.Thread(target=lg.close)

    def check_then_close(self: Transaction) -> None:
        check(self)
        if self._producer._transactional and not lg.closed:
            closer.start()
            deadline = time.monotonic() + 10
            while not self._producer.closed and time.monotonic() < deadline:
                time.sleep(0.001)

    tx = lg.transaction()
    tx.send("t", b"lost?")
    tx.commit_offsets("g", {TP("t", 0): 1})
    monkeypatch.setattr(Transaction, "_check", check_then_close)
    with pytest.raises(ClosedError, match="aborted"):
        tx.commit()
    monkeypatch.undo()
    closer.join()
    with embedlog.open(path, durability="none", maintenance_interval_ms=None) as lg:
        assert values(lg, "t") == {0: []}
        assert lg.groups() == []


def test_a_raising_delivery_callback_is_raised_by_commit_after_the_write(log: embedlog.Log) -> None:
    log.create_topic("a")
    called = []

    def boom(err: Any, md: Any) -> None:
        called.append(md.offset)
        raise LookupError("callback failed")

    tx = log.transaction()
    tx.send("a", b"1", on_delivery=boom)
    tx.send("a", b"2", on_delivery=lambda err, md: called.append(md.offset))
    with pytest.raises(LookupError, match="callback failed"):
        tx.commit()
    assert called == [0, 1]
    assert values(log, "a") == {0: [b"1", b"2"]}


@pytest.mark.parametrize("value", [-1, True, (1,), (1, None, 3), (1, "a\udc80"), "5"])
def test_a_bad_offset_is_refused_by_commit_offsets_and_the_transaction_goes_on(log: embedlog.Log, value: Any) -> None:
    log.create_topic("a")
    with log.transaction() as tx:
        tx.send("a", b"kept")
        with pytest.raises(InvalidOffsetError):
            tx.commit_offsets("g", {TP("a", 0): value})
        tx.commit_offsets("g", {TP("a", 0): 1})
    assert values(log, "a") == {0: [b"kept"]}
    assert log.committed_offsets("g")[TP("a", 0)].offset == 1


def test_an_empty_transaction_is_fine(log: embedlog.Log) -> None:
    log.create_topic("a")
    with log.transaction():
        pass
    assert end_offsets(log, "a") == {TP("a", 0): 0}


# -- offsets in transactions ----------------------------------------------------------------------

def test_commit_offsets_through_a_consumer_commits_with_the_records(log: embedlog.Log) -> None:
    log.create_topic("in", partitions=2)
    log.create_topic("out", partitions=2)
    with log.producer() as p:
        for i in range(10):
            p.send("in", f"{i}".encode(), partition=i % 2)
        p.flush()
    c = group_consumer(log, ["in"], "etl")
    msgs: list[embedlog.Message] = []
    wait_until(lambda: len(msgs) == 10, "input", step=lambda: msgs.extend(c.poll(timeout=0.05)))
    with log.transaction() as tx:
        for m in msgs[:3]:
            tx.send("out", b"f" + (m.value or b""), partition=m.partition)
        offsets = {TP("in", m.partition): m.offset + 1 for m in msgs[:3]}
        tx.commit_offsets(c, offsets)
        assert c.committed(list(offsets)) == dict.fromkeys(offsets), "not before the commit"
    assert c.committed(list(offsets)) == offsets
    assert sum(end_offsets(log, "out").values()) == 3
    # A bad offset aborts the whole transaction, records included.
    with pytest.raises(TransactionAbortedError) as info:
        send_and_commit(log, "out", b"never", c, {TP("in", 0): 6})  # the end offset is 5
    assert isinstance(info.value.__cause__, InvalidOffsetError)
    assert sum(end_offsets(log, "out").values()) == 3
    assert c.committed(list(offsets)) == offsets
    c.close()


def test_commit_offsets_of_a_partition_a_live_member_never_owned_aborts_not_assigned(log: embedlog.Log) -> None:
    """As ``Consumer.commit``'s ``NotAssignedError`` (not ``IllegalGenerationError``,
    which says the member was removed from its group: it was not)."""
    log.create_topic("in")
    log.create_topic("other")
    c = group_consumer(log, ["in"], "etl")
    wait_until(lambda: c.assignment() == {TP("in", 0)}, "the assignment", step=lambda: c.poll(timeout=0.05))
    with pytest.raises(NotAssignedError):
        c.commit({TP("other", 0): 0})
    with pytest.raises(TransactionAbortedError) as info:
        send_and_commit(log, "in", b"never", c, {TP("other", 0): 0})
    assert isinstance(info.value.__cause__, NotAssignedError)
    assert "other[0] is not assigned to member" in str(info.value.__cause__)
    assert end_offsets(log, "in") == {TP("in", 0): 0}
    send_and_commit(log, "in", b"kept", c, {TP("in", 0): 0})
    assert values(log, "in") == {0: [b"kept"]}
    assert c.committed([TP("in", 0), TP("other", 0)]) == {TP("in", 0): 0, TP("other", 0): None}
    c.close()


def test_commit_offsets_by_group_name(log: embedlog.Log) -> None:
    log.create_topic("in")
    log.create_topic("out")
    with log.producer() as p:
        for i in range(5):
            p.send("in", f"{i}".encode())
        p.flush()
    with log.transaction() as tx:
        tx.send("out", b"x")
        tx.commit_offsets("billing", {TP("in", 0): 4})
        tx.commit_offsets("audit", {TP("in", 0): 2})
    assert log.describe_group("billing").lag() == {TP("in", 0): 1}
    assert log.describe_group("audit").lag() == {TP("in", 0): 3}
    assert end_offsets(log, "out") == {TP("out", 0): 1}
    # A member joining the group resumes there.
    c = group_consumer(log, ["in"], "x", group="billing")
    got: list[int] = []
    wait_until(lambda: got, "records", step=lambda: got.extend(m.offset for m in c.poll(timeout=0.05)))
    assert got == [4]
    c.close()


def test_a_zombie_members_transaction_aborts_and_writes_nothing(log: embedlog.Log) -> None:
    log.create_topic("in", partitions=2)
    log.create_topic("out")
    with log.producer() as p:
        for i in range(10):
            p.send("in", f"{i}".encode(), partition=i % 2)
        p.flush()
    a = group_consumer(log, ["in"], "a", session_timeout_ms=400, heartbeat_interval_ms=50)
    b = group_consumer(log, ["in"], "b", session_timeout_ms=400, heartbeat_interval_ms=50)
    wait_until(lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1, "shared",
               step=lambda: (a.poll(timeout=0.01), b.poll(timeout=0.01)))
    (mine,) = a.assignment()
    (theirs,) = b.assignment()
    # While a is a member, it still cannot commit a partition b owns.
    with pytest.raises(TransactionAbortedError) as info:
        send_and_commit(log, "out", b"not mine", a, {theirs: 1})
    assert isinstance(info.value.__cause__, NotAssignedError)
    assert end_offsets(log, "out") == {TP("out", 0): 0}
    assert a._membership is not None
    a._membership._stop.set()  # a stops heartbeating: presumed dead after 400 ms
    wait_until(lambda: b.assignment() == {mine, theirs}, "b takes over", step=lambda: b.poll(timeout=0.05))
    with pytest.raises(TransactionAbortedError) as info:
        send_and_commit(log, "out", b"zombie", a, {mine: 3})
    assert isinstance(info.value.__cause__, IllegalGenerationError)
    assert end_offsets(log, "out") == {TP("out", 0): 0}
    assert b.committed([mine]) == {mine: None}
    # The live owner's transaction goes through.
    send_and_commit(log, "out", b"owner", b, {mine: 3})
    assert b.committed([mine]) == {mine: 3}
    assert values(log, "out") == {0: [b"owner"]}
    a.close()
    b.close()


@pytest.mark.parametrize("through", ["consumer", "group_metadata"])
def test_offsets_of_a_partition_that_left_and_came_back_are_fenced(log: embedlog.Log, through: str) -> None:
    """Offsets taken while ``a`` owned a partition; it then went to ``b``, which processed
    further and committed, and came back to ``a``: the transaction aborts
    (``IllegalGenerationError``, as Kafka fences it by generation) and the group's offset
    does not go back.  Offsets of a partition ``a`` owned throughout still commit.  The
    same through ``a.group_metadata()``, which remembers what ``a`` owned when it was made."""
    log.create_topic("in", partitions=2)
    log.create_topic("out")
    with log.producer() as p:
        for i in range(10):
            p.send("in", f"{i}".encode(), partition=i % 2)
    a = group_consumer(log, ["in"], "a", session_timeout_ms=3000, heartbeat_interval_ms=50)
    wait_until(lambda: len(a.assignment()) == 2, "a owns both", step=lambda: a.poll(timeout=0.01))
    tx = log.transaction()
    tx.send("out", b"derived")
    tx.commit_offsets(a if through == "consumer" else a.group_metadata(), {TP("in", 0): 3, TP("in", 1): 3})
    b = group_consumer(log, ["in"], "b", session_timeout_ms=3000, heartbeat_interval_ms=50)
    wait_until(lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1, "shared",
               step=lambda: (a.poll(timeout=0.01), b.poll(timeout=0.01)))
    (moved,) = b.assignment()
    b.commit({moved: 0})
    b.close()
    wait_until(lambda: len(a.assignment()) == 2, "back to a", step=lambda: a.poll(timeout=0.01))
    with pytest.raises(TransactionAbortedError, match="came back") as info:
        tx.commit()
    assert isinstance(info.value.__cause__, IllegalGenerationError)
    assert a.committed([moved]) == {moved: 0}
    assert end_offsets(log, "out") == {TP("out", 0): 0}
    (kept,) = {TP("in", 0), TP("in", 1)} - {moved}
    send_and_commit(log, "out", b"kept", a, {kept: 2})
    assert a.committed([kept]) == {kept: 2}
    a.close()


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_offsets_of_a_partition_kept_through_a_rebalance_commit(log: embedlog.Log, strategy: str) -> None:
    """A second member joins; ``a`` keeps one partition (an eager assignor revokes it and
    gives it back in the same rebalance: no other member had it): a transaction holding
    only that partition's offsets commits (it was aborted as 'came back').  One holding
    the partition that moved away aborts as not assigned."""
    log.create_topic("in", partitions=2)
    with log.producer() as p:
        for i in range(10):
            p.send("in", f"{i}".encode(), partition=i % 2)
    kw = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 50, "partition_assignment_strategy": strategy}
    a = group_consumer(log, ["in"], "a", **kw)
    wait_until(lambda: len(a.assignment()) == 2, "a owns both", step=lambda: a.poll(timeout=0.01))
    txs = {}
    for tp in (TP("in", 0), TP("in", 1)):
        txs[tp] = log.transaction()
        txs[tp].commit_offsets(a, {tp: 3})
    b = group_consumer(log, ["in"], "b", **kw)
    wait_until(lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1, "shared",
               step=lambda: (a.poll(timeout=0.01), b.poll(timeout=0.01)))
    ((kept,), (moved,)) = a.assignment(), b.assignment()
    txs[kept].commit()
    assert a.committed([kept]) == {kept: 3}
    with pytest.raises(TransactionAbortedError, match="not assigned") as info:
        txs[moved].commit()
    assert isinstance(info.value.__cause__, NotAssignedError)
    a.close()
    b.close()


def test_a_consumer_closed_while_it_commits_says_closed_not_zombie(log: embedlog.Log,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread closes a member as it commits (its offsets, or a transaction's
    through it): closing took it out of the group, so the commit is refused — with
    ClosedError, or an abort saying the consumer was closed, not IllegalGenerationError's
    "removed after missing heartbeats or polls", which never happened."""
    log.create_topic("in")
    log.create_topic("out")
    with log.producer() as p:
        p.send("in", b"x")
    coord = log._coordinator
    commit = coord.commit
    closing: list[embedlog.Consumer] = []

    def close_first(*args: Any, **kw: Any) -> Any:
        if closing:
            closer = threading.Thread(target=closing.pop().close)
            closer.start()
            closer.join(TIMEOUT)
        return commit(*args, **kw)

    monkeypatch.setattr(coord, "commit", close_first)
    a = group_consumer(log, ["in"], "a")
    wait_until(lambda: a.assignment() == {TP("in", 0)}, "a owns", step=lambda: a.poll(timeout=0.05))
    closing.append(a)
    with pytest.raises(ClosedError, match="closed while it committed"):
        a.commit({TP("in", 0): 1})
    b = group_consumer(log, ["in"], "b")
    wait_until(lambda: b.assignment() == {TP("in", 0)}, "b owns", step=lambda: b.poll(timeout=0.05))
    tx = log.transaction()
    tx.send("out", b"y")
    tx.commit_offsets(b, {TP("in", 0): 1})
    b.close()  # (before the commit: what a close racing it leaves)
    with pytest.raises(TransactionAbortedError, match="consumer whose offsets it commits was closed"):
        tx.commit()
    assert values(log, "out") == {0: []}


def test_aborted_transactions_do_not_disturb_concurrent_writers(log: embedlog.Log) -> None:
    """Transactions that abort (fenced offsets) while other threads of the process flush:
    the group commit carries them together, and only the failed one is rolled back."""
    log.create_topic("a", partitions=2)
    log.create_topic("src")
    with log.producer() as p:
        p.send("src", b"x")
        p.flush()
    rounds = 100
    errors: list[BaseException] = []
    aborted = 0

    def plain() -> None:
        try:
            with log.producer() as p:
                for i in range(rounds):
                    p.send("a", f"p{i}".encode(), partition=i % 2)
                    p.flush()
        except BaseException as exc:
            errors.append(exc)

    def good() -> None:
        try:
            for i in range(rounds):
                with log.transaction() as tx:
                    tx.send("a", f"g{i}".encode(), partition=i % 2)
                    tx.commit_offsets("g", {TP("src", 0): 1})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=plain), threading.Thread(target=good)]
    for t in threads:
        t.start()
    for i in range(rounds):
        try:
            with log.transaction() as tx:
                tx.send("a", f"bad{i}".encode(), partition=i % 2)
                tx.commit_offsets("g", {TP("src", 0): 2})  # beyond the end: always refused
        except TransactionAbortedError:
            aborted += 1
    for t in threads:
        t.join(TIMEOUT)
    assert not errors, errors
    assert aborted == rounds
    got = values(log, "a")  # read_all checks offsets are dense
    everything = Counter(v for vs in got.values() for v in vs)
    assert not [v for v in everything if v is not None and v.startswith(b"bad")]
    assert everything == Counter([f"p{i}".encode() for i in range(rounds)] + [f"g{i}".encode() for i in range(rounds)])
    assert log.describe_group("g").lag() == {TP("src", 0): 0}


# -- kill -9 ----------------------------------------------------------------------------------------

def _tx_topics(path: Path) -> embedlog.Log:
    log = embedlog.open(path, maintenance_interval_ms=None)
    log.create_topic("a", partitions=3)
    log.create_topic("b")
    log.create_topic("src")
    with log.producer() as p:
        for i in range(5):
            p.send("src", f"{i}".encode())
        p.flush()
    return log


def test_a_process_killed_inside_a_transaction_leaves_nothing(tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    log = _tx_topics(path)
    child = children.start("group_tx.py", path, "hang")
    child.wait_for(lambda line: "in_tx" in line)
    child.kill()
    assert end_offsets(log, "a", "b") == {TP("a", 0): 0, TP("a", 1): 0, TP("a", 2): 0, TP("b", 0): 0}
    assert log.groups() == []
    # The directory is fine: a new transaction commits, offsets start at 0.
    with log.transaction() as tx:
        tx.send("a", b"after", partition=1)
        tx.commit_offsets("g", {TP("src", 0): 1})
    assert values(log, "a") == {0: [], 1: [b"after"], 2: []}
    assert log.describe_group("g").lag() == {TP("src", 0): 4}
    log.close()
    with embedlog.open(path, maintenance_interval_ms=None) as again:
        assert values(again, "a") == {0: [], 1: [b"after"], 2: []}


def test_a_process_killed_at_random_moments_leaves_whole_transactions(tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    log = _tx_topics(path)
    rng = random.Random(7)
    size = 7
    acked: dict[str, int] = {}
    for run in ("r0", "r1", "r2"):
        child = children.start("group_tx.py", path, "loop", "--size", size, "--run", run)
        child.wait_for(lambda line: line.get("tx", -1) >= 3)
        time.sleep(rng.uniform(0, 0.2))
        child.kill()
        acked[run] = max((line["tx"] for line in child.lines if "tx" in line), default=-1)
        # What is there: whole transactions 0..n-1 of this run, at least every acknowledged one.
        a = [v.decode() for vs in values(log, "a").values() for v in vs if v is not None]
        b = [v.decode() for vs in values(log, "b").values() for v in vs if v is not None]
        per_tx = Counter(v.rsplit(":", 1)[0] for v in a if v.startswith(run + ":"))
        in_b = Counter(v for v in b if v.startswith(run + ":"))
        assert set(per_tx) == set(in_b), "every transaction wrote to both topics, or to neither"
        assert all(n == size for n in per_tx.values()), f"a partial transaction: {per_tx}"
        assert all(n == 1 for n in in_b.values())
        ids = sorted(int(k.split(":")[1]) for k in in_b)
        assert ids == list(range(len(ids))), "transactions are a prefix of what was sent"
        assert acked[run] <= len(ids) - 1 <= acked[run] + 1, (acked[run], len(ids))
        # Its last offset commit is the one of its last transaction.
        assert log.describe_group("g").offsets[0].committed == (len(ids) - 1) % 5 + 1
    log.close()


# -- exactly-once consume-transform-produce ------------------------------------------------------------

def _etl(tmp_path: Path, children: Any, *, total: int, kills: int, workers: int, seed: int) -> None:
    """Produce ``total`` inputs while killing ETL workers ``kills`` times, then check that
    "out" holds f(x) of every input exactly once, in input order per partition."""
    path = tmp_path / "log"
    log = embedlog.open(path, maintenance_interval_ms=None)
    log.create_topic("in", partitions=3)
    log.create_topic("out", partitions=3)
    rng = random.Random(seed)
    produced = 0

    def produce(n: int) -> None:
        nonlocal produced
        with log.producer() as p:
            for i in range(produced, produced + n):
                p.send("in", f"x{i}".encode(), key=f"k{i}".encode(), partition=i % 3)
            p.flush()
        produced += n

    def start() -> Any:
        child = children.start("group_etl.py", path, "--session-ms", 600, "--heartbeat-ms", 100,
                               "--max-records", rng.choice([5, 20, 50]), "--work-ms", 30)
        child.wait_for(lambda line: "ready" in line)
        return child

    chunk = total // (2 * (kills + 1))
    produce(total - chunk * (kills + 1))
    alive: list[Any] = []
    all_children: list[Any] = []
    for _ in range(kills):
        while len(alive) < workers:
            alive.append(start())
            all_children.append(alive[-1])
        produce(chunk)
        victim = rng.choice(alive)
        victim.wait_for(lambda line: "tx" in line)  # it made progress: a kill now is mid-stream
        time.sleep(rng.uniform(0, 0.25))
        victim.kill()
        alive.remove(victim)
    while len(alive) < workers:
        alive.append(start())
        all_children.append(alive[-1])
    produce(total - produced)
    assert produced == total

    def caught_up() -> bool:
        offsets = log.describe_group("etl").offsets
        return len(offsets) == 3 and all(o.committed == o.end_offset for o in offsets)

    wait_until(caught_up, "the workers caught up", timeout=120)
    for child in alive:
        child.proc.send_signal(signal.SIGTERM)
    for child in alive:
        child.finish()
    inputs = values(log, "in")
    outputs = values(log, "out")
    for p in range(3):
        expected = [b"f(" + (v or b"") + b")" for v in inputs[p]]
        got = outputs[p]
        if got != expected:
            dupes = [v for v, n in Counter(got).items() if n > 1]
            missing = set(expected) - set(got)
            raise AssertionError(f"partition {p}: {len(got)} outputs for {len(expected)} inputs; "
                                 f"duplicated {dupes[:5]}, missing {sorted(missing)[:5]}")
    assert sum(len(v) for v in outputs.values()) == total
    assert sum(1 for c in all_children for line in c.lines if "tx" in line) >= kills
    log.close()


def test_exactly_once_with_a_few_kills(tmp_path: Path, children: Any) -> None:
    _etl(tmp_path, children, total=600, kills=3, workers=1, seed=1)


@pytest.mark.slow
def test_exactly_once_with_many_random_kills_and_two_workers(tmp_path: Path, children: Any) -> None:
    seed = int(time.time()) & 0xFFFF
    print(f"seed {seed}")  # shown if it fails
    _etl(tmp_path, children, total=3000, kills=30, workers=2, seed=seed)


# -- delivery callbacks of a transaction that is not written ------------------------------------------
def _deliveries() -> tuple[list[tuple[Any, Any]], Any]:
    got: list[tuple[Any, Any]] = []
    return got, lambda err, md: got.append((err, md))


def test_callbacks_hear_of_a_transaction_refused_before_writing(log: embedlog.Log) -> None:
    """min.insync.replicas not met: the commit writes nothing, and the records' callbacks
    get the abort (as Kafka fails them); the message does not say the records stay
    buffered (a finished transaction cannot be flushed again)."""
    log.create_topic("t", config={"min.insync.replicas": 2})
    got, cb = _deliveries()
    tx = log.transaction(acks="all")
    tx.send("t", b"x", on_delivery=cb)
    with pytest.raises(TransactionAbortedError) as info:
        tx.commit()
    assert "stay buffered" not in str(info.value)
    assert [(type(err), md) for err, md in got] == [(TransactionAbortedError, None)]
    assert end_offsets(log, "t") == {TP("t", 0): 0}


def test_callbacks_hear_of_an_abort_and_of_a_closed_log(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t")
        got, cb = _deliveries()
        with log.transaction() as tx:
            tx.send("t", b"x", on_delivery=cb)
            tx.abort()
        assert [(type(err), md) for err, md in got] == [(TransactionAbortedError, None)]
        got.clear()
        tx = log.transaction()
        tx.send("t", b"y", on_delivery=cb)
    # (the log closed with the transaction open: that aborted it)
    assert [(type(err), md) for err, md in got] == [(ClosedError, None)]
    with pytest.raises(ClosedError):
        tx.commit()
    assert len(got) == 1


def test_a_with_block_whose_log_was_closed_raises_at_its_end_even_if_a_send_error_was_caught(
        tmp_path: Path) -> None:
    """The log closed inside the block, and the block caught the ``ClosedError`` of a
    ``send``: leaving the block normally raises ``ClosedError`` (it wrote nothing and
    said nothing: taken for an ``abort()``)."""
    log = embedlog.open(tmp_path / "log")
    log.create_topic("t")
    def block() -> None:
        with log.transaction() as tx:
            tx.send("t", b"x")
            log.close()
            with contextlib.suppress(ClosedError):
                tx.send("t", b"y")

    with pytest.raises(ClosedError, match="was closed"):
        block()
    with embedlog.open(tmp_path / "log") as again:
        assert end_offsets(again, "t") == {TP("t", 0): 0}


def test_a_member_s_transaction_is_fenced_like_its_commit_before_it_learned_its_assignment(
        log: embedlog.Log) -> None:
    """A member that joined but has not polled (no ``on_assign`` yet): ``commit`` refuses a
    partition it was not given, and so does a transaction's ``commit_offsets`` through it
    (it committed: the group's state already named the member the owner)."""
    log.create_topic("gt", partitions=3)
    c = log.consumer(["gt"], group="g", auto_offset_reset="earliest", enable_auto_commit=False)
    tp = TP("gt", 0)
    assert c.assignment() == set()
    with pytest.raises(NotAssignedError):
        c.commit({tp: 0})
    tx = log.transaction()
    tx.commit_offsets(c, {tp: 0})
    with pytest.raises(TransactionAbortedError) as info:
        tx.commit()
    assert isinstance(info.value.__cause__, NotAssignedError)
    assert c.committed([tp]) == {tp: None}
    c.close()


def test_group_metadata_copies_as_itself_and_pickles_as_its_pair(log: embedlog.Log) -> None:
    """``group_metadata()`` was a plain tuple: ``copy`` must give one that fences the same,
    and ``pickle`` its ``(group, member_id)`` pair (the consumer stays in this process);
    kafka-python's ``ConsumerGroupMetadata`` too."""
    import copy  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    from embedlog.compat import registry  # noqa: PLC0415
    from embedlog.compat.kafka_python import KafkaConsumer  # noqa: PLC0415

    log.create_topic("t")
    c = log.consumer(["t"], group="g")
    c.poll(0.2)
    md = c.group_metadata()
    assert copy.copy(md) is md
    assert copy.deepcopy({"m": md})["m"] is md
    back = pickle.loads(pickle.dumps(md))
    assert back == md
    assert (back.group, back.member_id) == ("g", c._membership.member_id if c._membership else None)
    c.close()
    registry.use_log(log)
    try:
        kc = KafkaConsumer("t", group_id="g2", bootstrap_servers="x")
        kc.poll(500)
        kmd = kc.group_metadata()
        assert pickle.loads(pickle.dumps(kmd)) == kmd
        assert copy.copy(kmd) is kmd
        assert repr(kmd).startswith("ConsumerGroupMetadata(group_id='g2'")
        kc.close()
    finally:
        registry.reset()


def test_group_metadata_of_a_member_that_owned_nothing_fences_a_partition_that_came_back(log: embedlog.Log) -> None:
    """Metadata taken while the member owned nothing (a joined member: Kafka's has a real
    generation): a partition given to it later, moved to another member (which committed)
    and back, is refused; one given once since it was taken commits."""
    log.create_topic("in")
    log.create_topic("out")
    with log.producer() as p:
        for i in range(10):
            p.send("in", b"%d" % i)
    p0 = TP("in", 0)
    kw: dict[str, Any] = {"auto_offset_reset": "earliest", "enable_auto_commit": False, "session_timeout_ms": 3000,
                          "heartbeat_interval_ms": 50, "partition_assignment_strategy": "range"}
    a = log.consumer(["in"], group="g", client_id="a", **kw)
    wait_until(lambda: a.assignment() == {p0}, "a owns p0", step=lambda: a.poll(timeout=0.01))
    b = log.consumer(["in"], group="g", client_id="b", **kw)
    wait_until(lambda: b._membership is not None and b._membership.member_id is not None and not b.assignment()
               and a.assignment() == {p0}, "b joined, idle", step=lambda: (a.poll(timeout=0.01), b.poll(timeout=0.01)))
    gm = b.group_metadata()
    a.close()
    wait_until(lambda: b.assignment() == {p0}, "p0 to b", step=lambda: b.poll(timeout=0.01))
    with log.transaction() as tx:  # given once since: its records were read since
        tx.commit_offsets(gm, {p0: 2})
    assert b.committed([p0]) == {p0: 2}
    others = []
    for name in ("0", "00", "a0", "aa"):  # (range gives p0 to the member whose id sorts first)
        c = log.consumer(["in"], group="g", client_id=name, **kw)
        others.append(c)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not c.assignment():
            b.poll(timeout=0.01)
            c.poll(timeout=0.01)
        if c.assignment() == {p0}:
            break
    else:
        pytest.skip("could not move p0 away from b")
    c.commit({p0: 10})
    for o in others:
        o.close()
    wait_until(lambda: b.assignment() == {p0}, "p0 back to b", step=lambda: b.poll(timeout=0.01))
    tx = log.transaction()
    tx.commit_offsets(gm, {p0: 3})
    with pytest.raises(TransactionAbortedError) as info:
        tx.commit()
    assert isinstance(info.value.__cause__, IllegalGenerationError)
    assert b.committed([p0]) == {p0: 10}
    b.close()
