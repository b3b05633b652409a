"""Consumer groups in one process: assignors, rebalances, committed offsets, liveness, admin.

Group members here are consumers of one ``Log`` (threads, or polled in turn from the
test's thread); the multi-process cases are in ``test_groups_procs.py``.  Every wait
polls with a deadline; nothing depends on speed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import embedlog
from embedlog import TopicPartition
from embedlog.errors import (
    ClosedError,
    ConfigError,
    GroupError,
    IllegalGenerationError,
    InvalidOffsetError,
    NotAssignedError,
    TransactionAbortedError,
    UnknownGroupError,
)
from embedlog.groups.assignors import assign
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)
from procs.harness import fill_partitions

TIMEOUT = 30.0  # generous: a loaded 2-core machine must never hit it
STRATEGIES = ("range", "roundrobin", "cooperative-sticky")
TP = TopicPartition


# -- helpers --------------------------------------------------------------------------------

# every wait polls with a deadline (tests/procs/harness.py), ``step`` run before each try
wait_until = functools.partial(harness.wait_until, timeout=TIMEOUT, interval=0.005)


def tps(topic: str, *parts: int) -> set[TopicPartition]:
    return {TP(topic, p) for p in parts}


def ends(log: embedlog.Log, topic: str) -> dict[TopicPartition, int]:
    return {TP(topic, p.partition): p.end_offset for p in log.describe_topic(topic).partitions}


def owners(log: embedlog.Log, group: str) -> dict[str, set[TopicPartition]]:
    """client_id -> partitions, as describe_group reports them."""
    return {m.client_id: set(m.partitions) for m in log.describe_group(group).members}


def hb_file(log: embedlog.Log, group: str, consumer: embedlog.Consumer) -> str:
    """The heartbeat file of a member (its mtime is the member's last heartbeat)."""
    return os.path.join(log.path, "groups", hashlib.sha1(group.encode()).hexdigest()[:20],
                        consumer.group_metadata()[1] or "")


def poll_all(*consumers: embedlog.Consumer) -> None:
    for c in consumers:
        c.poll(timeout=0.01)


def wait_shared(a: embedlog.Consumer, b: embedlog.Consumer, each: int, what: str = "shared") -> None:
    """Poll ``a`` and ``b`` in turn until each owns ``each`` partitions."""
    wait_until(lambda: len(a.assignment()) == each and len(b.assignment()) == each, what, step=lambda: poll_all(a, b))


def two_members(log: embedlog.Log, **options: Any) -> tuple[embedlog.Consumer, embedlog.Consumer]:
    """Members ``a`` and ``b`` of group ``g`` on topic ``t`` (``options`` for both), once
    they share its two partitions."""
    a = group_consumer(log, "t", "a", **options)
    b = group_consumer(log, "t", "b", **options)
    wait_shared(a, b, 1)
    return a, b


class Runner:
    """Polls one group consumer in its own thread; commits after each non-empty poll
    (commit-after-processing), and remembers every record and the latest assignment."""

    def __init__(self, consumer: embedlog.Consumer, *, commit: bool = True) -> None:
        self.consumer = consumer
        self.commit = commit
        self.records: list[tuple[int, int]] = []
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msgs = self.consumer.poll(timeout=0.05)
                if msgs and self.commit:
                    self.consumer.commit()
                with self._lock:
                    self.records.extend((m.partition, m.offset) for m in msgs)
                    self.assigned = frozenset(self.consumer.assignment())
        except BaseException as exc:  # reported by check()
            self.errors.append(exc)

    def count(self) -> int:
        with self._lock:
            return len(self.records)

    def check(self) -> None:
        assert not self.errors, f"poll thread failed: {self.errors!r}"

    def stop(self, *, close: bool = True) -> None:
        self._stop.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "poll thread did not stop"
        if close:
            self.consumer.close()
        self.check()


@pytest.fixture
def runners() -> Iterator[list[Runner]]:
    made: list[Runner] = []
    yield made
    for r in made:
        r._stop.set()
    for r in made:
        r.thread.join(TIMEOUT)


def group_consumer(log: embedlog.Log, topics: Iterable[str] | str, client: str, group: str = "g",
                   **options: Any) -> embedlog.Consumer:
    options.setdefault("auto_offset_reset", "earliest")
    options.setdefault("enable_auto_commit", False)
    return log.consumer(list([topics] if isinstance(topics, str) else topics), group=group, client_id=client,
                        **options)


def stable(log: embedlog.Log, group: str, rs: dict[str, Runner], expect: dict[str, set[TopicPartition]] | None,
           all_tps: set[TopicPartition]) -> bool:
    """The group is Stable, every partition has exactly one owner, the runners see what
    describe_group says, and (if given) the split is ``expect``."""
    desc = log.describe_group(group)
    if desc.state != "Stable":
        return False
    got = {m.client_id: set(m.partitions) for m in desc.members}
    if set(got) != set(rs):
        return False
    if any(set(r.assigned) != got[name] for name, r in rs.items()):
        return False
    owned = [tp for parts in got.values() for tp in parts]
    if sorted(owned) != sorted(all_tps):
        return False
    return expect is None or got == expect


# -- assignors, as pure functions -------------------------------------------------------------

def _tps(*names: str) -> list[tuple[str, int]]:
    """``"t0p1"`` -> ``("t0", 1)``."""
    out = []
    for n in names:
        topic, _, part = n.rpartition("p")
        out.append((topic, int(part)))
    return out


# (subscriptions, partitions per topic, expected) — Kafka's documented results.
RANGE_CASES = [
    # RangeAssignor javadoc: two consumers, two topics of three partitions.
    ({"C0": ["t0", "t1"], "C1": ["t0", "t1"]}, {"t0": 3, "t1": 3},
     {"C0": _tps("t0p0", "t0p1", "t1p0", "t1p1"), "C1": _tps("t0p2", "t1p2")}),
    # n % m extra partitions go to the first members.
    ({"C0": ["t"], "C1": ["t"], "C2": ["t"]}, {"t": 7},
     {"C0": _tps("tp0", "tp1", "tp2"), "C1": _tps("tp3", "tp4"), "C2": _tps("tp5", "tp6")}),
    # Per topic, only its subscribers share it.
    ({"C0": ["t0"], "C1": ["t0", "t1"]}, {"t0": 3, "t1": 2},
     {"C0": _tps("t0p0", "t0p1"), "C1": _tps("t0p2", "t1p0", "t1p1")}),
    # More members than partitions: the last get nothing.
    ({"C0": ["t"], "C1": ["t"], "C2": ["t"]}, {"t": 2}, {"C0": _tps("tp0"), "C1": _tps("tp1"), "C2": []}),
    # Members are sorted by id, not by insertion order.
    ({"b": ["t"], "a": ["t"]}, {"t": 3}, {"a": _tps("tp0", "tp1"), "b": _tps("tp2")}),
    ({}, {"t": 3}, {}),
]

ROUNDROBIN_CASES = [
    # RoundRobinAssignor javadoc, example 1.
    ({"C0": ["t0", "t1"], "C1": ["t0", "t1"]}, {"t0": 3, "t1": 3},
     {"C0": _tps("t0p0", "t0p2", "t1p1"), "C1": _tps("t0p1", "t1p0", "t1p2")}),
    # RoundRobinAssignor javadoc, example 2 (different subscriptions).
    ({"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}, {"t0": 1, "t1": 2, "t2": 3},
     {"C0": _tps("t0p0"), "C1": _tps("t1p0"), "C2": _tps("t1p1", "t2p0", "t2p1", "t2p2")}),
    # StickyAssignor javadoc: what round robin gives for 3 consumers, 4 topics of 2.
    ({"C0": ["t0", "t1", "t2", "t3"], "C1": ["t0", "t1", "t2", "t3"], "C2": ["t0", "t1", "t2", "t3"]},
     {"t0": 2, "t1": 2, "t2": 2, "t3": 2},
     {"C0": _tps("t0p0", "t1p1", "t3p0"), "C1": _tps("t0p1", "t2p0", "t3p1"), "C2": _tps("t1p0", "t2p1")}),
    # ... and after C1 leaves.
    ({"C0": ["t0", "t1", "t2", "t3"], "C2": ["t0", "t1", "t2", "t3"]}, {"t0": 2, "t1": 2, "t2": 2, "t3": 2},
     {"C0": _tps("t0p0", "t1p0", "t2p0", "t3p0"), "C2": _tps("t0p1", "t1p1", "t2p1", "t3p1")}),
    ({"C0": ["t"], "C1": ["t"], "C2": ["t"]}, {"t": 2}, {"C0": _tps("tp0"), "C1": _tps("tp1"), "C2": []}),
    ({}, {"t": 3}, {}),
]

# (subscriptions, partitions, previous, expected) — StickyAssignor javadoc examples.
STICKY_CASES = [
    # Example 1, after C1 of {C0, C1, C2} leaves: everything C0 and C2 had stays put.
    ({"C0": ["t0", "t1", "t2", "t3"], "C2": ["t0", "t1", "t2", "t3"]}, {"t0": 2, "t1": 2, "t2": 2, "t3": 2},
     {"C0": _tps("t0p0", "t1p1", "t3p0"), "C1": _tps("t0p1", "t2p0", "t3p1"), "C2": _tps("t1p0", "t2p1")},
     {"C0": _tps("t0p0", "t1p1", "t2p0", "t3p0"), "C2": _tps("t0p1", "t1p0", "t2p1", "t3p1")}),
    # Example 2, first assignment: balanced as far as subscriptions allow.
    ({"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}, {"t0": 1, "t1": 2, "t2": 3}, {},
     {"C0": _tps("t0p0"), "C1": _tps("t1p0", "t1p1"), "C2": _tps("t2p0", "t2p1", "t2p2")}),
    # Example 2, after C0 leaves: t0p0 moves, nothing else does.
    ({"C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}, {"t0": 1, "t1": 2, "t2": 3},
     {"C0": _tps("t0p0"), "C1": _tps("t1p0", "t1p1"), "C2": _tps("t2p0", "t2p1", "t2p2")},
     {"C1": _tps("t0p0", "t1p0", "t1p1"), "C2": _tps("t2p0", "t2p1", "t2p2")}),
    # Balanced already: nothing moves, whatever the round-robin order would be.
    ({"a": ["t"], "b": ["t"]}, {"t": 4}, {"a": _tps("tp2", "tp3"), "b": _tps("tp0", "tp1")},
     {"a": _tps("tp2", "tp3"), "b": _tps("tp0", "tp1")}),
    # Partitions of topics no longer subscribed, or that no longer exist, are dropped.
    ({"a": ["t"], "b": ["t"]}, {"t": 2}, {"a": _tps("tp0", "up0", "tp7"), "b": _tps("tp1")},
     {"a": _tps("tp0"), "b": _tps("tp1")}),
]


def _sorted(a: dict[str, list[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    return {m: sorted(v) for m, v in a.items()}


@pytest.mark.parametrize(("subs", "parts", "expected"), RANGE_CASES)
def test_range_assignor_matches_kafka(subs: Any, parts: Any, expected: Any) -> None:
    assert _sorted(assign("range", subs, parts)) == _sorted(expected)


@pytest.mark.parametrize(("subs", "parts", "expected"), ROUNDROBIN_CASES)
def test_roundrobin_assignor_matches_kafka(subs: Any, parts: Any, expected: Any) -> None:
    assert _sorted(assign("roundrobin", subs, parts)) == _sorted(expected)


@pytest.mark.parametrize(("subs", "parts", "prev", "expected"), STICKY_CASES)
def test_sticky_assignor_matches_kafka_examples(subs: Any, parts: Any, prev: Any, expected: Any) -> None:
    assert _sorted(assign("cooperative-sticky", subs, parts, prev)) == _sorted(expected)


def _check_valid(subs: dict[str, list[str]], parts: dict[str, int], out: dict[str, list[tuple[str, int]]]) -> None:
    assert set(out) == set(subs)
    got = Counter(tp for tps in out.values() for tp in tps)
    wanted = {(t, p) for t, n in parts.items() if any(t in s for s in subs.values()) for p in range(n)}
    assert set(got) == wanted, "every partition of a subscribed topic is assigned"
    assert all(c == 1 for c in got.values()), f"a partition assigned twice: {got.most_common(3)}"
    for m, tps_ in out.items():
        assert all(t in subs[m] for t, _ in tps_), f"{m} got a topic it does not subscribe to"


_members = st.lists(st.sampled_from([f"m{i}" for i in range(8)]), min_size=1, max_size=6, unique=True)
_parts = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 9), min_size=1)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), members=_members, parts=_parts)
def test_assignors_are_valid_for_any_subscriptions(data: st.DataObject, members: list[str],
                                                  parts: dict[str, int]) -> None:
    topics = sorted(parts)
    subs = {m: data.draw(st.lists(st.sampled_from(topics), min_size=1, unique=True)) for m in members}
    for protocol in STRATEGIES:
        _check_valid(subs, parts, assign(protocol, subs, parts))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), before=_members, after=_members, parts=_parts)
def test_sticky_is_balanced_and_sticky_with_equal_subscriptions(data: st.DataObject, before: list[str],
                                                                after: list[str], parts: dict[str, int]) -> None:
    topics = sorted(parts)
    same = data.draw(st.lists(st.sampled_from(topics), min_size=1, unique=True))
    first = assign("cooperative-sticky", dict.fromkeys(before, same), parts)
    subs = dict.fromkeys(after, same)
    out = assign("cooperative-sticky", subs, parts, first)
    _check_valid(subs, parts, out)
    loads = [len(v) for v in out.values()]
    assert max(loads) - min(loads) <= 1, f"unbalanced: {out}"
    # Stable: the same inputs again move nothing.
    assert _sorted(assign("cooperative-sticky", subs, parts, out)) == _sorted(out)
    # Sticky: members only joined -> old members only lose; members only left -> survivors only gain.
    if set(before) <= set(after):
        for m in before:
            assert set(out[m]) <= set(first[m]), f"{m} gained partitions although only members joined"
    if set(after) <= set(before):
        for m in after:
            assert set(first[m]) <= set(out[m]), f"{m} lost partitions although only members left"
    # As few moves as balance needs: a member keeps what it had, up to the smaller quota.
    floor = sum(len(v) for v in out.values()) // len(after)
    for m in after:
        kept = len(set(out[m]) & set(first.get(m, [])))
        assert kept >= min(len(first.get(m, [])), floor), f"{m} kept {kept} of {first.get(m)}: {out}"


def test_unknown_strategy_is_a_config_error(log: embedlog.Log) -> None:
    log.create_topic("t")
    with pytest.raises(ConfigError):
        log.consumer(["t"], group="g", partition_assignment_strategy="sticky-ish")


# -- threads as members: split and consume ---------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_threads_split_partitions_and_consume_every_record_once(log: embedlog.Log, runners: list[Runner],
                                                                strategy: str) -> None:
    log.create_topic("t", partitions=6)
    total = fill_partitions(log, "t", 6, 40)
    all_tps = tps("t", *range(6))
    rs: dict[str, Runner] = {}
    for name in ("a", "b", "c"):  # join one by one while the others already consume
        rs[name] = Runner(group_consumer(log, "t", name, partition_assignment_strategy=strategy))
        runners.append(rs[name])
    wait_until(lambda: stable(log, "g", rs, None, all_tps), "a stable 3-member group")
    wait_until(lambda: sum(r.count() for r in rs.values()) >= total, "every record consumed")
    total += fill_partitions(log, "t", 6, 30, start=40)  # more, after the group settled
    wait_until(lambda: sum(r.count() for r in rs.values()) >= total, "the new records consumed")
    for r in rs.values():
        r.check()
    split = owners(log, "g")
    assert all(len(parts) == 2 for parts in split.values()), split
    records = Counter(rec for r in rs.values() for rec in list(r.records))
    dupes = [rec for rec, n in records.items() if n > 1]
    assert not dupes, f"records consumed by more than one member (or twice): {dupes[:10]}"
    assert set(records) == {(p, o) for p in range(6) for o in range(70)}
    # After the group settled, each record went to the owner of its partition.
    for name, r in rs.items():
        assert {(p, o) for p, o in r.records if o >= 40} == {(tp.partition, o) for tp in split[name]
                                                          for o in range(40, 70)}
    assert all(o.committed == 70 and o.lag == 0 for o in log.describe_group("g").offsets)
    for r in rs.values():
        r.stop()


@pytest.mark.parametrize(("strategy", "expected"), [
    ("range", {"a": {TP("t0", 0), TP("t0", 1), TP("t1", 0), TP("t1", 1)}, "b": {TP("t0", 2), TP("t1", 2)}}),
    ("roundrobin", {"a": {TP("t0", 0), TP("t0", 2), TP("t1", 1)}, "b": {TP("t0", 1), TP("t1", 0), TP("t1", 2)}}),
])
def test_group_split_matches_kafka_for_eager_strategies(log: embedlog.Log, runners: list[Runner], strategy: str,
                                                        expected: dict[str, set[TopicPartition]]) -> None:
    # Member ids start with client_id, so "a" sorts before "b" as C0 before C1.
    log.create_topic("t0", partitions=3)
    log.create_topic("t1", partitions=3)
    all_tps = tps("t0", 0, 1, 2) | tps("t1", 0, 1, 2)
    rs = {n: Runner(group_consumer(log, ["t0", "t1"], n, partition_assignment_strategy=strategy))
          for n in ("a", "b")}
    runners.extend(rs.values())
    wait_until(lambda: stable(log, "g", rs, expected, all_tps), f"the {strategy} split {expected}")
    desc = log.describe_group("g")
    assert desc.protocol == strategy
    for r in rs.values():
        r.stop()


def test_cooperative_sticky_moves_only_what_it_must(log: embedlog.Log, runners: list[Runner]) -> None:
    log.create_topic("t", partitions=6)
    all_tps = tps("t", *range(6))
    rs: dict[str, Runner] = {"a": Runner(group_consumer(log, "t", "a"))}
    runners.extend(rs.values())
    wait_until(lambda: stable(log, "g", rs, {"a": all_tps}, all_tps), "a owns everything")
    history = [owners(log, "g")]
    for name in ("b", "c"):
        rs[name] = Runner(group_consumer(log, "t", name))
        runners.append(rs[name])
        wait_until(lambda: stable(log, "g", rs, None, all_tps)
                   and all(len(p) == 6 // len(rs) for p in owners(log, "g").values()), f"{name} joined, balanced")
        now = owners(log, "g")
        for old in history[-1]:
            assert now[old] <= history[-1][old], f"{old} gained partitions when {name} joined: {history[-1]} {now}"
        history.append(now)
    rs.pop("b").stop()
    wait_until(lambda: stable(log, "g", rs, None, all_tps), "b left")
    now = owners(log, "g")
    for name in ("a", "c"):
        assert history[-1][name] <= now[name], f"{name} lost partitions when b left: {history[-1]} {now}"
        assert len(now[name]) == 3
    for r in rs.values():
        r.stop()


# -- rebalance callbacks ---------------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_revoke_happens_before_the_partition_is_assigned_elsewhere(log: embedlog.Log, runners: list[Runner],
                                                                   strategy: str) -> None:
    log.create_topic("t", partitions=5)
    log.create_topic("u", partitions=3)
    all_tps = tps("t", *range(5)) | tps("u", 0, 1, 2)
    events: list[tuple[str, str, TopicPartition]] = []
    wrong_consumer: list[str] = []
    lock = threading.Lock()
    consumers: dict[str, embedlog.Consumer] = {}

    def callbacks(name: str) -> dict[str, Any]:
        def on_assign(partitions: list[TopicPartition]) -> None:
            with lock:
                events.extend(("assign", name, tp) for tp in partitions)

        def on_revoke(consumer: embedlog.Consumer, partitions: list[TopicPartition]) -> None:
            with lock:
                if consumer is not consumers[name]:
                    wrong_consumer.append(name)
                events.extend(("revoke", name, tp) for tp in partitions)

        return {"on_assign": on_assign, "on_revoke": on_revoke}

    rs: dict[str, Runner] = {}

    def join(name: str) -> None:
        c = group_consumer(log, ["t", "u"], name, partition_assignment_strategy=strategy, **callbacks(name))
        consumers[name] = c
        rs[name] = Runner(c)
        runners.append(rs[name])

    def settle(what: str) -> None:
        wait_until(lambda: stable(log, "g", rs, None, all_tps), what)

    join("a")
    join("b")
    settle("a, b")
    join("c")
    join("d")
    settle("a, b, c, d")
    rs.pop("b").stop()
    settle("b closed")
    rs.pop("a").stop()
    settle("a closed")
    join("e")
    settle("e joined")
    for r in list(rs.values()):
        r.stop()

    with lock:
        seen = list(events)
    assert not wrong_consumer, "a two-parameter callback got another consumer"
    owner: dict[TopicPartition, str | None] = {}
    for i, (kind, name, tp) in enumerate(seen):
        if kind == "assign":
            assert owner.get(tp) is None, f"event {i}: {name} assigned {tp} still held by {owner[tp]}: {seen}"
            owner[tp] = name
        else:
            assert owner.get(tp) == name, f"event {i}: {name} revoked {tp} owned by {owner.get(tp)}: {seen}"
            owner[tp] = None
    assert all(v is None for v in owner.values()), "after every member closed, everything was revoked"
    assert {tp for kind, _, tp in seen if kind == "assign"} == all_tps


@pytest.mark.parametrize(("strategy", "eager"), [("range", True), ("roundrobin", True),
                                                 ("cooperative-sticky", False)])
def test_eager_strategies_revoke_everything_cooperative_only_what_moves(log: embedlog.Log, strategy: str,
                                                                        eager: bool) -> None:
    log.create_topic("t", partitions=4)
    revoked: list[list[TopicPartition]] = []
    assigned: list[list[TopicPartition]] = []
    a = group_consumer(log, "t", "a", partition_assignment_strategy=strategy,
                       on_revoke=lambda parts: revoked.append(list(parts)),
                       on_assign=lambda parts: assigned.append(list(parts)))
    wait_until(lambda: a.assignment() == tps("t", 0, 1, 2, 3), "a owns everything", step=lambda: poll_all(a))
    assert assigned == [sorted(tps("t", 0, 1, 2, 3))]
    assert revoked == []
    b = group_consumer(log, "t", "b", partition_assignment_strategy=strategy)
    wait_shared(a, b, 2, "a and b share")
    assert a.assignment().isdisjoint(b.assignment())
    moved = tps("t", 0, 1, 2, 3) - a.assignment()
    if eager:
        assert revoked == [sorted(tps("t", 0, 1, 2, 3))], "an eager member gives up everything"
        assert assigned[1:] == [sorted(a.assignment())]
    else:
        assert revoked == [sorted(moved)], "a cooperative member gives up only what moves"
        assert assigned[1:] == []
    a.close()
    b.close()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_an_on_revoke_that_raises_still_lets_the_partitions_go(log: embedlog.Log, strategy: str) -> None:
    """Kafka's consumer raises a rebalance listener's exception from poll() once the
    rebalance is done: the member's raising on_revoke (a commit that failed once, say) was
    raised once and then left it holding both partitions for good, the newcomer owning
    none and the group never Stable."""
    log.create_topic("t", partitions=2)
    calls: list[list[TopicPartition]] = []

    def flaky(parts: list[TopicPartition]) -> None:
        calls.append(list(parts))
        if len(calls) == 1:
            raise RuntimeError("transient")

    a = group_consumer(log, "t", "a", partition_assignment_strategy=strategy, on_revoke=flaky)
    wait_until(lambda: a.assignment() == tps("t", 0, 1), "a owns everything", step=lambda: poll_all(a))
    b = group_consumer(log, "t", "b", partition_assignment_strategy=strategy)
    raised: list[BaseException] = []

    def step() -> None:
        try:
            a.poll(timeout=0.01)
        except RuntimeError as exc:
            raised.append(exc)
        b.poll(timeout=0.01)

    wait_until(lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1, "a and b share", step=step)
    assert [str(e) for e in raised] == ["transient"]  # raised once, from poll
    assert calls[0]  # (the revocation it was told of)
    assert log.describe_group("g").state == "Stable"
    a.close()
    b.close()


def test_close_from_on_revoke_closes_once(log: embedlog.Log) -> None:
    """close() calls on_revoke; an on_revoke that closes the consumer (its own, or during
    a rebalance) recursed until RecursionError."""
    log.create_topic("t", partitions=2)
    held: dict[str, embedlog.Consumer] = {}
    revoked: list[list[TopicPartition]] = []

    def closing(parts: list[TopicPartition]) -> None:
        revoked.append(list(parts))
        held["c"].close()

    c = held["c"] = group_consumer(log, "t", "a", on_revoke=closing)
    wait_until(lambda: c.assignment() == tps("t", 0, 1), "it owns everything", step=lambda: poll_all(c))
    c.close()
    assert c.closed
    assert revoked == [sorted(tps("t", 0, 1))]
    assert not log.describe_group("g").members


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_partitions_granted_then_moved_before_a_poll_are_never_announced(log: embedlog.Log, strategy: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A joining member is granted what is free at once; if a later join moves some of it
    before the member polls, it lets that go without on_assign or on_revoke, in one write."""
    log.create_topic("t", partitions=4)
    calls: list[tuple[str, str, list[TopicPartition]]] = []

    def consumer(name: str) -> embedlog.Consumer:
        return group_consumer(log, "t", name, partition_assignment_strategy=strategy,
                              on_assign=lambda ps: calls.append((name, "assign", sorted(ps))),
                              on_revoke=lambda ps: calls.append((name, "revoke", sorted(ps))))

    a = consumer("a")
    assert owners(log, "g") == {"a": tps("t", 0, 1, 2, 3)}, "granted in the join itself"
    b = consumer("b")
    assert owners(log, "g") == {"a": tps("t", 0, 1, 2, 3), "b": set()}, "a must let go first"
    writes = []
    write = log._store.env.write
    monkeypatch.setattr(log._store.env, "write", lambda fn, **kw: writes.append(1) or write(fn, **kw))
    a.poll(timeout=0)
    assert len(writes) == 1, "a released what moved, and b got it, in one transaction"
    assert owners(log, "g") == {"a": a.assignment(), "b": tps("t", 0, 1, 2, 3) - a.assignment()}
    b.poll(timeout=0)
    assert len(writes) == 1, "b had nothing to write: the partitions were granted to it"
    assert len(a.assignment()) == len(b.assignment()) == 2
    assert calls == [("a", "assign", sorted(a.assignment())), ("b", "assign", sorted(b.assignment()))]
    a.close()
    b.close()


def test_a_group_change_without_a_wake_up_is_still_followed(log: embedlog.Log) -> None:
    """poll skips looking at the group while nothing woke it; a lost wake-up only delays."""
    log.create_topic("t", partitions=2)
    a, b = two_members(log)
    coord = log._coordinator
    gone = b.group_metadata()[1]

    def remove_b(txn: Any) -> None:  # what Coordinator.leave does, minus the wake-up
        state = coord.load(txn, "g")
        assert state is not None
        state.leave([gone], coord.partitions(txn, state.subscribed_topics()))
        state.grant()
        coord.save(txn, state)

    seen = log.data_generation
    log._store.env.write(remove_b)
    assert log.data_generation == seen, "nobody was woken"
    wait_until(lambda: a.assignment() == tps("t", 0, 1), "a takes b's partition", step=lambda: a.poll(timeout=0))
    a.close()
    b.close()


def test_callbacks_with_one_or_two_parameters(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    calls: list[tuple[Any, ...]] = []

    def two(consumer: embedlog.Consumer, partitions: list[TopicPartition]) -> None:
        calls.append(("two", consumer, sorted(partitions)))

    class Handler:
        def on_assign(self, partitions: list[TopicPartition]) -> None:  # a bound method: one parameter
            calls.append(("bound", sorted(partitions)))

    c = group_consumer(log, "t", "a", on_assign=Handler().on_assign, on_revoke=two)
    wait_until(lambda: len(c.assignment()) == 2, "assigned", step=lambda: poll_all(c))
    c.close()
    assert calls == [("bound", sorted(tps("t", 0, 1))), ("two", c, sorted(tps("t", 0, 1)))]

    calls.clear()
    c = group_consumer(log, "t", "a", on_assign=lambda ps: calls.append(("one", sorted(ps))),
                       on_revoke=lambda cons, ps: calls.append(("lambda2", cons, sorted(ps))))
    wait_until(lambda: len(c.assignment()) == 2, "assigned", step=lambda: poll_all(c))
    c.close()
    assert calls == [("one", sorted(tps("t", 0, 1))), ("lambda2", c, sorted(tps("t", 0, 1)))]


# -- committed offsets ------------------------------------------------------------------------

def test_commit_commit_offsets_and_committed(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 10)
    c = group_consumer(log, "t", "a", max_poll_records=7)
    t0, t1 = TP("t", 0), TP("t", 1)
    assert c.committed([t0, t1]) == {t0: None, t1: None}
    got: list[embedlog.Message] = []
    wait_until(lambda: got, "records", step=lambda: got.extend(c.poll(timeout=0.05)))
    c.commit()  # the positions of what poll returned
    positions = {tp: c.position(tp) for tp in (t0, t1)}
    assert sum(positions.values()) == len(got) == 7
    assert c.committed([t0, t1]) == positions
    c.commit({t0: 3})
    assert c.committed([t0])[t0] == 3
    c.commit({t1: 10})  # the end offset itself is allowed
    assert c.committed([t0, t1]) == {t0: 3, t1: 10}
    c.commit({t0: 0})  # and going backwards (a rewind) is allowed too
    assert c.committed([t0]) == {t0: 0}
    assert log.describe_group("g").lag() == {t0: 10, t1: 0}
    c.close()
    # Durable and visible to another log handle of the same directory.
    with embedlog.open(log.path, maintenance_interval_ms=None) as other:
        assert other.describe_group("g").lag() == {t0: 10, t1: 0}


def test_commits_by_group_name_are_refused_while_the_group_has_live_members(log: embedlog.Log) -> None:
    """By name (``log.commit_offsets``, ``tx.commit_offsets("g", ...)``, a manually
    assigned consumer of the group) is for a group with no live members, as in Kafka:
    with one, the live owner's committed offset must not move under it."""
    log.create_topic("t", partitions=1)
    fill_partitions(log, "t", 1, 10)
    a = group_consumer(log, "t", "a")
    wait_until(lambda: a.assignment() == tps("t", 0), "a owns t[0]", step=lambda: a.poll(timeout=0.05))
    a.commit({TP("t", 0): 8})
    with pytest.raises(GroupError, match=r"1 active member.*commit through a member"):
        log.commit_offsets("g", {TP("t", 0): 2})
    tx = log.transaction()
    tx.send("t", b"out")
    tx.commit_offsets("g", {TP("t", 0): 2})
    with pytest.raises(TransactionAbortedError, match="active member"):
        tx.commit()
    manual = log.consumer(group="g", enable_auto_commit=False)
    manual.assign([TP("t", 0)])
    with pytest.raises(GroupError):
        manual.commit({TP("t", 0): 2})
    assert a.committed([TP("t", 0)]) == {TP("t", 0): 8}
    assert log.describe_topic("t").partitions[0].end_offset == 10  # the aborted transaction wrote nothing
    with log.transaction() as tx:  # through the member: fenced, and accepted
        tx.commit_offsets(a, {TP("t", 0): 9})
    a.close()
    log.commit_offsets("g", {TP("t", 0): 2})  # no live member now
    manual.commit({TP("t", 0): 3})
    with log.transaction() as tx:
        tx.commit_offsets("g", {TP("t", 0): 4})
    assert log.committed_offsets("g")[TP("t", 0)].offset == 4
    manual.close()


def test_a_manually_assigned_consumer_commits_only_its_partitions(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 3)
    c = log.consumer(group="solo", enable_auto_commit=False)
    c.assign([TP("t", 0)])
    with pytest.raises(NotAssignedError, match=r"t\[1\] is not assigned to this consumer"):
        c.commit({TP("t", 1): 1})
    c.commit({TP("t", 0): 2})
    assert c.committed([TP("t", 0), TP("t", 1)]) == {TP("t", 0): 2, TP("t", 1): None}
    c.close()


def test_a_new_member_resumes_from_the_committed_offset(log: embedlog.Log) -> None:
    log.create_topic("t")
    fill_partitions(log, "t", 1, 20)
    tp = TP("t", 0)
    a = group_consumer(log, "t", "a", max_poll_records=5)
    first = wait_until(lambda: a.poll(timeout=0.05), "records")
    assert [m.offset for m in first] == [0, 1, 2, 3, 4]
    a.commit({tp: 3})  # processed 0..2 only
    a.close()
    b = group_consumer(log, "t", "b")
    got: list[int] = []
    wait_until(lambda: len(got) >= 17, "the rest", step=lambda: got.extend(m.offset for m in b.poll(timeout=0.05)))
    assert got == list(range(3, 20))
    b.commit()
    b.close()
    # auto_offset_reset only applies without a committed offset.
    c = group_consumer(log, "t", "c", auto_offset_reset="earliest")
    wait_until(lambda: c.assignment() == {tp}, "assigned", step=lambda: poll_all(c))
    assert c.position(tp) == 20
    c.close()
    d = group_consumer(log, "t", "d", group="other", auto_offset_reset="latest")
    wait_until(lambda: d.assignment() == {tp}, "assigned", step=lambda: poll_all(d))
    assert d.position(tp) == 20
    d.close()


def test_auto_commit(log: embedlog.Log) -> None:
    log.create_topic("t")
    tp = TP("t", 0)
    fill_partitions(log, "t", 1, 10)
    c = group_consumer(log, "t", "a", enable_auto_commit=True, auto_commit_interval_ms=50)
    got: list[embedlog.Message] = []
    wait_until(lambda: len(got) == 10, "records", step=lambda: got.extend(c.poll(timeout=0.05)))
    wait_until(lambda: c.committed([tp])[tp] == 10, "an auto-commit", step=lambda: poll_all(c))
    # Closing commits what poll returned since (a revoke commits too).
    fill_partitions(log, "t", 1, 5, start=10)
    got.clear()
    wait_until(lambda: len(got) == 5, "more records", step=lambda: got.extend(c.poll(timeout=0.05)))
    c.close()
    assert log.describe_group("g").lag() == {tp: 0}


def test_no_auto_commit_when_disabled(log: embedlog.Log) -> None:
    log.create_topic("t")
    tp = TP("t", 0)
    fill_partitions(log, "t", 1, 10)
    c = group_consumer(log, "t", "a", enable_auto_commit=False, auto_commit_interval_ms=10)
    got: list[embedlog.Message] = []
    wait_until(lambda: len(got) == 10, "records", step=lambda: got.extend(c.poll(timeout=0.05)))
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        c.poll(timeout=0.02)
    assert c.committed([tp]) == {tp: None}
    c.close()
    assert c.closed
    assert log.describe_group("g").offsets == (), "closing committed nothing either"


def test_close_triggers_a_rebalance(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=4)
    revoked: list[TopicPartition] = []
    a = group_consumer(log, "t", "a", on_revoke=revoked.extend)
    b = group_consumer(log, "t", "b")
    wait_shared(a, b, 2)
    mine = a.assignment()
    a.close()
    assert set(revoked) == mine
    # b is woken by the group change while blocked in poll, and takes a's partitions.
    wait_until(lambda: b.assignment() == tps("t", 0, 1, 2, 3), "b owns everything", step=lambda: b.poll(timeout=1.0))
    desc = log.describe_group("g")
    assert [m.client_id for m in desc.members] == ["b"]
    assert {o.owner for o in desc.offsets} == {desc.members[0].member_id}
    b.close()
    assert log.describe_group("g").state == "Empty"
    assert log.describe_group("g").members == ()


def test_a_blocked_poll_takes_over_a_closed_members_partition(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    a, b = two_members(log)
    (mine,) = a.assignment()
    with log.producer() as p:
        for i in range(5):
            p.send("t", f"{i}".encode(), partition=mine.partition)
        p.flush()
    result: list[embedlog.Message] = []
    blocked = threading.Thread(target=lambda: result.extend(b.poll(timeout=20.0)))
    blocked.start()
    time.sleep(0.1)  # let b block (the test holds either way)
    a.close()
    blocked.join(TIMEOUT)
    assert [(m.partition, m.offset) for m in result] == [(mine.partition, o) for o in range(5)], \
        "b's blocked poll took a's partition over and returned its records"
    b.close()


def test_partitions_added_to_a_subscribed_topic_are_assigned(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    a, b = two_members(log)
    for _ in range(10):  # settled: both have looked at the group's latest state
        poll_all(a, b)
    log.create_partitions("t", 4)
    with log.producer() as p:
        for part in range(4):
            p.send("t", b"x", partition=part)
        p.flush()
    got: list[tuple[int, int]] = []

    def step() -> None:
        for c in (a, b):
            got.extend((m.partition, m.offset) for m in c.poll(timeout=0.02))

    wait_until(lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, "the new partitions assigned",
               step=step)
    assert a.assignment() | b.assignment() == tps("t", 0, 1, 2, 3)
    wait_until(lambda: len(got) == 4, "a record from every partition", step=step)
    assert sorted(got) == [(p, 0) for p in range(4)]
    a.close()
    b.close()


# -- liveness ----------------------------------------------------------------------------------

def test_a_member_whose_heartbeats_stop_loses_its_partitions(log: embedlog.Log) -> None:
    session_ms = 500
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 10)
    lost: list[TopicPartition] = []
    a = group_consumer(log, "t", "a", session_timeout_ms=session_ms, heartbeat_interval_ms=50, on_lost=lost.extend)
    b = group_consumer(log, "t", "b", session_timeout_ms=session_ms, heartbeat_interval_ms=50)
    wait_shared(a, b, 1)
    (mine,) = a.assignment()
    wait_until(lambda: a.position(mine) == 10, "a read its partition", step=lambda: a.poll(timeout=0.05))
    a.commit({mine: 4})
    assert a._membership is not None
    a._membership._stop.set()  # the heartbeat thread ends: a looks dead to the others
    assert a._membership._thread is not None
    a._membership._thread.join(TIMEOUT)
    last_beat = os.stat(hb_file(log, "g", a)).st_mtime
    b_got: list[tuple[int, int]] = []

    def b_poll() -> None:
        b_got.extend((m.partition, m.offset) for m in b.poll(timeout=0.05))

    wait_until(lambda: b.assignment() == tps("t", 0, 1), "b takes a's partition", step=b_poll)
    silent = time.time() - last_beat
    assert silent >= session_ms / 1000 - 0.02, f"a was declared dead {silent:.3f} s after its last heartbeat"
    assert [m.client_id for m in log.describe_group("g").members] == ["b"]
    # b resumes from a's committed offset, and a zombie's commits are refused.
    wait_until(lambda: b.position(mine) == 10, "b reads the rest of a's partition", step=b_poll)
    assert [o for p, o in b_got if p == mine.partition] == list(range(4, 10))
    with pytest.raises(IllegalGenerationError):
        a.commit()
    with pytest.raises(IllegalGenerationError):
        a.commit({mine: 10})
    assert a.committed([mine]) == {mine: 4}
    # On its next poll the zombie finds out: on_lost, and it rejoins without the partition.
    a.poll(timeout=0)
    assert lost == [mine]
    assert mine not in a.assignment()
    a.close()
    b.close()


def test_heartbeats_keep_an_idle_member_alive(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    a, b = two_members(log, session_timeout_ms=1500, heartbeat_interval_ms=100)
    generation = log.describe_group("g").generation
    deadline = time.monotonic() + 3.0  # twice the session timeout without a poll from a
    while time.monotonic() < deadline:
        b.poll(timeout=0.05)
    assert len(b.assignment()) == 1
    assert log.describe_group("g").generation == generation
    assert {m.client_id for m in log.describe_group("g").members} == {"a", "b"}
    a.close()
    b.close()


def test_a_member_that_stops_polling_loses_its_partitions(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 5)
    lost: list[TopicPartition] = []
    a = group_consumer(log, "t", "a", max_poll_interval_ms=500, heartbeat_interval_ms=50, on_lost=lost.extend)
    b = group_consumer(log, "t", "b", max_poll_interval_ms=60_000)
    wait_shared(a, b, 1)
    (mine,) = a.assignment()
    wait_until(lambda: a.position(mine) == 5, "a read", step=lambda: a.poll(timeout=0.05))
    # a does not poll any more (its heartbeat thread still runs).
    wait_until(lambda: b.assignment() == tps("t", 0, 1), "b takes over", step=lambda: b.poll(timeout=0.05))
    assert [m.client_id for m in log.describe_group("g").members] == ["b"]
    with pytest.raises(IllegalGenerationError):
        a.commit()
    # Polling again rejoins: the lost partition is reported, then the group shares again.
    wait_shared(a, b, 1, "a rejoined")
    assert lost == [mine]
    a.close()
    b.close()


def test_a_member_removed_while_its_on_assign_ran_serves_nothing_from_that_poll(log: embedlog.Log) -> None:
    """``max_poll_interval_ms`` runs through callbacks: a member removed while its
    ``on_assign`` ran returned the records of the partitions it had just lost from that
    same poll, and the member given them read them too."""
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 5)
    slow = [True]
    lost: list[TopicPartition] = []

    def on_assign(partitions: list[TopicPartition]) -> None:
        if slow[0]:
            slow[0] = False
            time.sleep(1.0)  # past max_poll_interval_ms: the heartbeat thread takes it out

    a = group_consumer(log, "t", "a", max_poll_interval_ms=300, heartbeat_interval_ms=50, on_assign=on_assign,
                       on_lost=lost.extend)
    assert a.poll(timeout=0.5) == []
    assert lost == []  # (not yet: the next poll rejoins)
    b = group_consumer(log, "t", "b", max_poll_interval_ms=60_000)
    got: list[embedlog.Message] = []
    wait_until(lambda: len(got) == 10, "b reads everything", step=lambda: got.extend(b.poll(timeout=0.05)))
    a.close()
    b.close()


def test_a_member_that_stops_polling_leaves_when_max_poll_interval_runs_out_not_at_its_next_beat(
        log: embedlog.Log) -> None:
    """Kafka's heartbeat thread checks the poll timer between beats: a member leaves
    about ``max_poll_interval_ms`` after its last poll even when that is far from a
    heartbeat (here the beat is every 5 s, the poll limit 0.4 s)."""
    log.create_topic("t", partitions=1)
    a = group_consumer(log, "t", "a", max_poll_interval_ms=400, heartbeat_interval_ms=5_000,
                       session_timeout_ms=30_000)
    wait_until(lambda: a.assignment() == tps("t", 0), "a owns", step=lambda: a.poll(timeout=0.05))
    a.poll(timeout=0)
    t0 = time.monotonic()
    wait_until(lambda: not log.describe_group("g").members, "a leaves", step=lambda: time.sleep(0.02))
    assert time.monotonic() - t0 < 2.5, "the member left only at its next heartbeat"
    a.close()


def test_waiting_in_poll_counts_as_polling_and_the_limit_runs_from_the_poll_s_return(log: embedlog.Log) -> None:
    """As Kafka's consumer: a member blocked in a ``poll`` longer than
    ``max_poll_interval_ms`` stays in the group, and once that poll returns it leaves
    about ``max_poll_interval_ms`` later, not at its next heartbeat (3 s by default:
    the heartbeat thread, started before the member joined, slept until then)."""
    log.create_topic("t", partitions=1)
    a = group_consumer(log, "t", "a", max_poll_interval_ms=300)
    members_during: list[int] = []
    watcher = threading.Timer(0.8, lambda: members_during.append(len(log.describe_group("g").members)))
    watcher.start()
    assert a.poll(timeout=1.2) == []
    t0 = time.monotonic()
    watcher.join()
    assert members_during == [1], "the member was removed while it waited in poll"
    assert a.assignment() == tps("t", 0)
    wait_until(lambda: not log.describe_group("g").members, "a leaves", step=lambda: time.sleep(0.02))
    assert time.monotonic() - t0 < 1.5, "the member left only at its next heartbeat"
    a.close()


def test_a_member_removed_for_not_polling_serves_nothing_while_it_is_removed(log: embedlog.Log,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The heartbeat thread removes a member that stopped polling (a leave, then the
    heartbeat file's removal).  Once the leave commits another member may own its
    partitions, so a poll from then on must not hand out the records it had buffered:
    here the removal's second step is held open, and the zombie polls inside it."""
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 50)
    coord = log._coordinator
    forget = coord.forget
    in_forget = threading.Event()
    release = threading.Event()

    def slow_forget(group: str, member_id: str) -> None:
        if threading.current_thread().name == "embedlog-heartbeat":
            in_forget.set()
            release.wait(TIMEOUT)
        forget(group, member_id)

    monkeypatch.setattr(coord, "forget", slow_forget)
    a = group_consumer(log, "t", "a", max_poll_interval_ms=300, heartbeat_interval_ms=50, max_poll_records=5)
    wait_until(lambda: a.assignment() == tps("t", 0, 1), "a owns both", step=lambda: a.poll(timeout=0.05))
    wait_until(lambda: a.poll(timeout=0.05), "a has records buffered")
    try:
        wait_until(in_forget.is_set, "a removed for not polling")  # a stops polling
        b = group_consumer(log, "t", "b", max_poll_interval_ms=60_000)
        wait_until(lambda: b.assignment() == tps("t", 0, 1), "b owns both", step=lambda: b.poll(timeout=0.05))
        served = a.poll(timeout=0)
        assert served == [], [(m.partition, m.offset) for m in served]
        assert not (a.assignment() & b.assignment())
    finally:
        release.set()
    a.close()
    b.close()


# -- describe / reset / delete / groups ---------------------------------------------------------

def test_describe_group_members_offsets_and_lag(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=3)
    log.create_topic("u", partitions=1)
    fill_partitions(log, "t", 3, 10)
    fill_partitions(log, "u", 1, 4)
    a = group_consumer(log, ["t", "u"], "alpha", group="billing")
    b = group_consumer(log, ["t"], "beta", group="billing")
    wait_until(lambda: log.describe_group("billing").state == "Stable" and len(a.assignment()) == 2
               and len(b.assignment()) == 2, "stable", step=lambda: poll_all(a, b))
    assert TP("u", 0) in a.assignment()
    (a_t,) = {tp for tp in a.assignment() if tp.topic == "t"}
    commit_a = {a_t: 7, TP("u", 0): 4}
    a.commit(commit_a)
    b_first = min(b.assignment())
    b.commit({b_first: 2})
    desc = log.describe_group("billing")
    assert desc.group == "billing"
    assert desc.protocol == "cooperative-sticky"
    assert desc.generation >= 2
    assert [(m.client_id, m.topics) for m in desc.members] == [("alpha", ("t", "u")), ("beta", ("t",))]
    by_client = {m.client_id: m for m in desc.members}
    assert set(by_client["alpha"].partitions) == a.assignment()
    assert set(by_client["beta"].partitions) == b.assignment()
    assert by_client["alpha"].member_id != by_client["beta"].member_id
    rows = {TP(o.topic, o.partition): o for o in desc.offsets}
    assert set(rows) == tps("t", 0, 1, 2) | {TP("u", 0)}
    expected_committed = {**dict.fromkeys(rows), **commit_a, b_first: 2}
    for tp, row in rows.items():
        assert row.committed == expected_committed[tp]
        assert row.end_offset == (4 if tp.topic == "u" else 10)
        assert row.lag == (None if row.committed is None else row.end_offset - row.committed)
        owner = "alpha" if tp in a.assignment() else "beta"
        assert row.owner == by_client[owner].member_id
    assert desc.lag == desc.lag() == {tp: row.lag for tp, row in rows.items()}  # a mapping, callable too
    assert desc.total_lag == 3 + 0 + 8
    # More records: lag grows with the end offset.
    fill_partitions(log, "t", 3, 5, start=10)
    assert log.describe_group("billing").lag[a_t] == 8
    a.close()
    b.close()


def test_reset_group_offsets(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    base = 1_700_000_000_000
    with log.producer() as p:
        for part in range(2):
            for i in range(10):
                p.send("t", b"x", partition=part, timestamp_ms=base + i * 1000)
        p.flush()
    log.delete_records("t", 1, 3)  # partition 1 now starts at 3
    t0, t1 = TP("t", 0), TP("t", 1)
    c = group_consumer(log, "t", "a")
    wait_until(lambda: len(c.assignment()) == 2, "assigned", step=lambda: poll_all(c))
    c.commit({t0: 5, t1: 5})
    with pytest.raises(GroupError):
        log.reset_group_offsets("g", "t", to="earliest")
    with pytest.raises(GroupError):
        log.delete_group("g")
    assert c.committed([t0, t1]) == {t0: 5, t1: 5}, "a refused reset changed nothing"
    c.close()

    def committed() -> dict[TopicPartition, int | None]:
        return {TP(o.topic, o.partition): o.committed for o in log.describe_group("g").offsets}

    assert log.reset_group_offsets("g", "t", to="earliest") == {t0: 0, t1: 3}
    assert committed() == {t0: 0, t1: 3}
    assert log.reset_group_offsets("g", "t", to="latest") == {t0: 10, t1: 10}
    assert committed() == {t0: 10, t1: 10}
    assert log.reset_group_offsets("g", "t", to=6) == {t0: 6, t1: 6}
    assert committed() == {t0: 6, t1: 6}
    when = datetime.fromtimestamp((base + 4500) / 1000, tz=timezone.utc)
    assert log.reset_group_offsets("g", "t", to=when) == {t0: 5, t1: 5}
    later = datetime.fromtimestamp((base + 60_000) / 1000, tz=timezone.utc)
    assert log.reset_group_offsets("g", "t", to=later) == {t0: 10, t1: 10}, "after the last record: the end"
    log.reset_group_offsets("g", "t", to=when)
    with pytest.raises(ConfigError):
        log.reset_group_offsets("g", "t", to="yesterday")
    # A member joining now starts from the reset offsets.
    c = group_consumer(log, "t", "b")
    got: list[tuple[int, int]] = []
    wait_until(lambda: len(got) >= 10, "records",
               step=lambda: got.extend((m.partition, m.offset) for m in c.poll(timeout=0.05)))
    assert sorted(got) == [(p, o) for p in range(2) for o in range(5, 10)]
    c.close()


def test_reset_is_allowed_once_the_only_member_is_dead(log: embedlog.Log) -> None:
    log.create_topic("t")
    tp = TP("t", 0)
    fill_partitions(log, "t", 1, 5)
    c = group_consumer(log, "t", "a", session_timeout_ms=300, heartbeat_interval_ms=50)
    wait_until(lambda: c.assignment() == {tp}, "assigned", step=lambda: poll_all(c))
    c.commit({tp: 2})
    with pytest.raises(GroupError):
        log.reset_group_offsets("g", "t", to="latest")
    assert c._membership is not None
    c._membership._stop.set()  # no heartbeats any more: dead after its session timeout

    def reset() -> bool:
        try:
            log.reset_group_offsets("g", "t", to="latest")
        except GroupError:
            return False
        return True

    wait_until(reset, "the dead member no longer blocks a reset")
    assert log.describe_group("g").lag() == {tp: 0}
    assert log.describe_group("g").members == ()
    c.close()


def test_groups_and_delete_group(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    fill_partitions(log, "t", 2, 3)
    assert log.groups() == []
    a = group_consumer(log, "t", "a", group="g1")
    wait_until(lambda: len(a.assignment()) == 2, "assigned", step=lambda: poll_all(a))
    assert log.groups() == ["g1"], "a group with members is listed before any commit"
    a.commit({TP("t", 0): 1})
    log.commit_offsets("g2", {TP("t", 1): 2})  # by name, no members
    assert log.groups() == ["g1", "g2"]
    assert log.describe_group("g2").state == "Empty"
    assert log.describe_group("g2").lag() == {TP("t", 1): 1}
    a.close()
    assert log.groups() == ["g1", "g2"]
    log.delete_group("g1")
    assert log.groups() == ["g2"]
    with pytest.raises(UnknownGroupError):
        log.describe_group("g1")
    with pytest.raises(UnknownGroupError):
        log.delete_group("g1")
    # g2's offsets are untouched; a fresh g1 starts with nothing committed.
    assert log.describe_group("g2").lag() == {TP("t", 1): 1}
    b = group_consumer(log, "t", "b", group="g1")
    assert b.committed([TP("t", 0)]) == {TP("t", 0): None}
    got: list[tuple[int, int]] = []
    wait_until(lambda: len(got) == 6, "every record again",
               step=lambda: got.extend((m.partition, m.offset) for m in b.poll(timeout=0.05)))
    assert sorted(got) == [(p, o) for p in range(2) for o in range(3)]
    b.close()
    log.delete_group("g2")
    log.delete_group("g1")
    assert log.groups() == []


# -- typed errors ----------------------------------------------------------------------------

def test_typed_errors(log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    log.create_topic("other")
    fill_partitions(log, "t", 2, 5)
    a, b = two_members(log)
    (mine,) = a.assignment()
    (theirs,) = b.assignment()
    with pytest.raises(InvalidOffsetError):
        a.commit({mine: 6})  # beyond the end offset 5
    with pytest.raises(InvalidOffsetError):
        a.commit({mine: -1})
    with pytest.raises(NotAssignedError):
        a.commit({theirs: 1})  # owned by b
    with pytest.raises(NotAssignedError):
        a.commit({TP("other", 0): 0})  # not subscribed
    assert a.committed([mine, theirs]) == {mine: None, theirs: None}, "failed commits wrote nothing"
    with pytest.raises(UnknownGroupError):
        log.describe_group("nope")
    with pytest.raises(UnknownGroupError):
        log.delete_group("nope")
    with pytest.raises(ConfigError):
        log.describe_group("")
    plain = log.consumer(["t"], auto_offset_reset="earliest")
    with pytest.raises(ConfigError):
        plain.commit()
    with pytest.raises(ConfigError):
        plain.commit({mine: 1})
    with pytest.raises(ConfigError):
        plain.committed([mine])
    plain.close()
    a.close()
    for call in (lambda: a.poll(timeout=0), a.commit, lambda: a.commit({mine: 1}), lambda: a.committed([mine])):
        with pytest.raises(ClosedError):
            call()
    a.close()  # idempotent
    b.close()


def _until(cond: Any, timeout: float = 10.0, poll: embedlog.Consumer | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if poll is not None:
            poll.poll(0.05)
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def test_subscribe_to_nothing_leaves_the_group_and_close_leaves_it_too(log: embedlog.Log) -> None:
    """As Kafka: subscribe([]) is unsubscribe() (the member leaves, its assignment empties
    at once), and a consumer that never subscribed to anything never joins; either way a
    closed consumer is no member (it kept heartbeating for ever: the group could not be
    reset or deleted while its process lived)."""
    log.create_topic("orders", partitions=2)
    log.commit_offsets("g", {TopicPartition("orders", 0): 0})
    c = log.consumer(["orders"], group="g", session_timeout_ms=3000, heartbeat_interval_ms=50)
    assert _until(lambda: len(c.assignment()) == 2, poll=c)
    c.subscribe([])
    assert c.assignment() == set()
    assert log.describe_group("g").members == ()
    c.close()
    never = log.consumer([], group="g", session_timeout_ms=3000, heartbeat_interval_ms=50)
    never.poll(0.1)
    assert log.describe_group("g").members == ()
    never.close()
    log.reset_group_offsets("g", "orders", "earliest")
    log.delete_group("g")


@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
def test_eager_members_get_one_on_assign_with_the_whole_assignment(log: embedlog.Log, strategy: str) -> None:
    """Kafka's eager protocol: on_revoke with everything owned, then one on_assign with the
    whole new assignment, not one call per partition as the others release them."""
    log.create_topic("t", partitions=6)
    events: dict[str, list[tuple[str, list[TopicPartition]]]] = {}

    def member(name: str) -> embedlog.Consumer:
        events[name] = []
        return log.consumer(["t"], group="g", partition_assignment_strategy=strategy, client_id=name,
                            session_timeout_ms=3000, heartbeat_interval_ms=50,
                            on_assign=lambda p: events[name].append(("assign", sorted(p))),
                            on_revoke=lambda p: events[name].append(("revoke", sorted(p))))

    members: dict[str, embedlog.Consumer] = {}
    for name in ("a", "b", "c"):
        members[name] = member(name)
        deadline = time.monotonic() + 10
        while not (sum(len(c.assignment()) for c in members.values()) == 6
                   and all(c.assignment() for c in members.values())):
            assert time.monotonic() < deadline, events
            for c in members.values():
                c.poll(0.01)
    for c in members.values():  # (settled: a last look each)
        c.poll(0.05)
    for name, c in members.items():
        seq = events[name]
        last_revoke = max((i for i, e in enumerate(seq) if e[0] == "revoke"), default=-1)
        after = [tps for kind, tps in seq[last_revoke + 1:] if kind == "assign"]
        assert len(after) == 1, (name, seq)
        assert set(after[0]) == c.assignment()
        assert len(after[0]) == 2
    for c in members.values():
        c.close()


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
@pytest.mark.parametrize("auto_commit", [False, True])
def test_resubscribing_commits_the_dropped_topics_offsets(log: embedlog.Log, strategy: str,
                                                          auto_commit: bool) -> None:
    """A member subscribing again without a topic still owns that topic's partitions while
    on_revoke runs (Kafka's generation is still valid then): a commit there succeeds, and
    auto-commit records what was consumed (it raised IllegalGenerationError, and
    auto-commit lost the offsets, so the records were read again)."""
    log.create_topic("a", partitions=1)
    log.create_topic("b", partitions=1)
    with log.producer() as p:
        for _ in range(4):
            p.send("a", b"a")
            p.send("b", b"b")
    errors: list[BaseException] = []

    def on_revoke(parts: list[TopicPartition]) -> None:
        if not auto_commit:
            try:
                c.commit()
            except BaseException as exc:  # (recorded for the assertion below)
                errors.append(exc)

    c = log.consumer(["a"], group="g", auto_offset_reset="earliest", enable_auto_commit=auto_commit,
                     auto_commit_interval_ms=600_000, partition_assignment_strategy=strategy,
                     session_timeout_ms=3000, heartbeat_interval_ms=50, on_revoke=on_revoke)
    got: list[Any] = []
    assert _until(lambda: got.extend(c.poll(0.05)) or len(got) == 4)
    c.subscribe(["b"])
    assert _until(lambda: got.extend(c.poll(0.05)) or len(got) == 8)
    assert errors == []
    assert log.committed_offsets("g")[TopicPartition("a", 0)].offset == 4
    assert c.assignment() == {TopicPartition("b", 0)}
    assert [set(m.partitions) for m in log.describe_group("g").members] == [{TopicPartition("b", 0)}]
    c.close()


def test_a_member_removed_from_the_group_gets_on_lost_when_it_closes(log: embedlog.Log) -> None:
    """Kafka's onLeavePrepare: a member whose generation is gone (it stopped polling for
    max_poll_interval_ms) gets on_lost at close, not on_revoke, in which a commit fails."""
    log.create_topic("orders", partitions=2)
    fill_partitions(log, "orders", 2, 5)
    events: list[tuple[str, Any]] = []
    holder: dict[str, embedlog.Consumer] = {}

    def on_revoke(parts: list[TopicPartition]) -> None:
        events.append(("revoke", sorted(parts)))
        holder["c"].commit()

    c = log.consumer(["orders"], group="g", auto_offset_reset="earliest", enable_auto_commit=False,
                     max_poll_interval_ms=300, heartbeat_interval_ms=20, on_revoke=on_revoke,
                     on_lost=lambda parts: events.append(("lost", sorted(parts))))
    holder["c"] = c
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < 10 and time.monotonic() < deadline:
        got.extend(c.poll(0.1))
    assert len(got) == 10
    assert _until(lambda: log.describe_group("g").members == ())  # removed: it stopped polling
    c.close()  # (no IllegalGenerationError out of a commit in on_revoke)
    assert events == [("lost", [TopicPartition("orders", 0), TopicPartition("orders", 1)])]


def test_a_callback_with_a_defaulted_second_parameter_gets_the_partitions(log: embedlog.Log) -> None:
    """``(partitions)`` or ``(consumer, partitions)`` is told by the positional parameters
    without a default: ``cb(partitions, tag="x")`` gets the partitions, not the consumer."""
    log.create_topic("orders", partitions=2)
    got: list[Any] = []

    def on_assign(partitions: list[TopicPartition], tag: str = "x") -> None:
        got.append((tag, sorted(partitions)))

    def two(consumer: embedlog.Consumer, partitions: list[TopicPartition]) -> None:
        got.append(("two", isinstance(consumer, embedlog.Consumer), sorted(partitions)))

    with log.consumer(["orders"], group="g", on_assign=on_assign) as c:
        assert _until(lambda: bool(got), poll=c)
    with log.consumer(["orders"], group="h", on_assign=two) as c:
        assert _until(lambda: len(got) == 2, poll=c)
    both = [TopicPartition("orders", 0), TopicPartition("orders", 1)]
    assert got == [("x", both), ("two", True, both)]


def test_a_group_consumer_with_a_manual_assignment_cannot_subscribe(log: embedlog.Log) -> None:
    """As Kafka (IllegalStateException), either order: ``assign()`` then ``subscribe()``
    used to join the group and keep the manual partitions, so a partition the group gave
    another member was read by both."""
    log.create_topic("a", partitions=2)
    other = log.consumer(["a"], group="g", session_timeout_ms=3000, heartbeat_interval_ms=50)
    assert _until(lambda: len(other.assignment()) == 2, poll=other)
    c = log.consumer(group="g", session_timeout_ms=3000, heartbeat_interval_ms=50)
    c.assign([TopicPartition("a", 0), TopicPartition("a", 1)])
    with pytest.raises(ConfigError, match="manual assignment"):
        c.subscribe(["a"])
    assert len(log.describe_group("g").members) == 1
    c.unassign()
    c.subscribe(["a"])

    def settled() -> bool:
        other.poll(0.05)
        return len(c.assignment()) == len(other.assignment()) == 1

    assert _until(settled, poll=c)
    c.close()
    other.close()


def test_close_auto_commits_even_when_on_revoke_raises(log: embedlog.Log) -> None:
    """``close()`` raises the callback's exception, and still commits what was consumed
    (``enable_auto_commit``), as Kafka's close does: the records are not read again."""
    log.create_topic("t")
    with log.producer() as p:
        for i in range(5):
            p.send("t", b"%d" % i)

    def on_revoke(partitions: list[TopicPartition]) -> None:
        raise RuntimeError("the application's bug")

    c = log.consumer(["t"], group="g", auto_offset_reset="earliest", enable_auto_commit=True, on_revoke=on_revoke)
    assert len(c.poll(5.0)) == 5
    with pytest.raises(RuntimeError, match="the application's bug"):
        c.close()
    assert log.committed_offsets("g")[TopicPartition("t", 0)].offset == 5
    assert log.describe_group("g").members == ()
