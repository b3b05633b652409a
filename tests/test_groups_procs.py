"""Consumer-group members in separate processes: partition split, kill -9, SIGSTOP.

Members run ``procs/group_member.py`` (commit after processing, every record reported
on stdout before its commit); the test process produces and watches the group with
``describe_group``.  Every wait polls with a deadline.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog import TopicPartition
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

TIMEOUT = 60.0


@pytest.fixture
def children() -> Iterator[Any]:
    kids = harness.Children()
    try:
        yield kids
    finally:
        for kid in kids.all:  # a SIGSTOPped child cannot die of SIGKILL until continued
            if kid.proc.poll() is None:
                os.kill(kid.pid, signal.SIGCONT)
        kids.close()


wait_until = functools.partial(harness.wait_until, timeout=TIMEOUT, interval=0.02)  # tests/procs/harness.py


def produce(log: embedlog.Log, topic: str, partitions: int, start: int, count: int) -> None:
    """Values ``v<i>`` for i in start..start+count, spread over the partitions."""
    with log.producer() as p:
        for i in range(start, start + count):
            p.send(topic, f"v{i}".encode(), partition=i % partitions)
        p.flush()


def records(child: Any) -> list[tuple[int, int, str]]:
    return [(p, o, v) for line in list(child.lines) if "recs" in line for p, o, v in line["recs"]]


def member_id(child: Any) -> str:
    return str(child.wait_for(lambda line: "ready" in line)["member"])


def last_assigned(child: Any) -> set[TopicPartition] | None:
    lines = [line for line in list(child.lines) if "assigned" in line]
    return {TopicPartition(t, p) for t, p in lines[-1]["assigned"]} if lines else None


def split(log: embedlog.Log, group: str) -> dict[str, set[TopicPartition]]:
    return {m.member_id: set(m.partitions) for m in log.describe_group(group).members}


def settled(log: embedlog.Log, group: str, members: dict[str, Any], partitions: int, topic: str = "t") -> bool:
    """Stable; exactly these members, sharing every partition evenly; and each process
    reports the partitions describe_group gives it."""
    desc = log.describe_group(group)
    got = {m.member_id: set(m.partitions) for m in desc.members}
    if desc.state != "Stable" or set(got) != set(members):
        return False
    owned = [tp for tps in got.values() for tp in tps]
    if sorted(owned) != [TopicPartition(topic, p) for p in range(partitions)]:
        return False
    sizes = sorted(len(tps) for tps in got.values())
    if sizes[-1] - sizes[0] > 1:
        return False
    return all(last_assigned(child) == got[mid] for mid, child in members.items())


def start_member(children: Any, path: Path, name: str, *extra: object, stdin: bool = False) -> tuple[str, Any]:
    child = children.start("group_member.py", path, "t", "g", "--client", name, *extra, stdin=stdin)
    return member_id(child), child


def test_member_processes_split_partitions_and_consume_each_record_once(tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    parts = 6
    log = embedlog.open(path, maintenance_interval_ms=None)
    log.create_topic("t", partitions=parts)
    produce(log, "t", parts, 0, 120)
    members: dict[str, Any] = {}
    for name in ("a", "b", "c"):
        mid, child = start_member(children, path, name)
        members[mid] = child
    wait_until(lambda: settled(log, "g", members, parts), "three processes sharing six partitions")
    assert all(len(tps) == 2 for tps in split(log, "g").values())
    produce(log, "t", parts, 120, 180)
    wait_until(lambda: sum(len(records(c)) for c in members.values()) >= 300, "every record processed")
    owner_at_end = split(log, "g")
    for child in members.values():
        child.proc.send_signal(signal.SIGTERM)
    for child in members.values():
        lines = child.finish()
        assert not [line for line in lines if "commit_error" in line], child.describe()
    seen = Counter(v for c in members.values() for _, _, v in records(c))
    assert set(seen) == {f"v{i}" for i in range(300)}
    assert [v for v, n in seen.items() if n > 1] == [], "a record was processed twice without any failure"
    # Records written after the group settled went to their partition's owner.
    for mid, child in members.items():
        late = {p for p, _, v in records(child) if int(v[1:]) >= 120}
        assert late <= {tp.partition for tp in owner_at_end[mid]}
    desc = log.describe_group("g")
    assert desc.members == ()
    assert all(o.committed == 50 and o.lag == 0 for o in desc.offsets)
    log.close()


def test_kill_9_moves_partitions_and_loses_nothing(tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    parts = 6
    total = 900
    log = embedlog.open(path, maintenance_interval_ms=None)
    log.create_topic("t", partitions=parts)
    produce(log, "t", parts, 0, 300)
    members: dict[str, Any] = {}
    # The victim has a short session so that it is noticed quickly once dead; the
    # survivors' long sessions keep them from ever being presumed dead under load.
    victim_id, victim = start_member(children, path, "victim", "--session-ms", 1000, "--heartbeat-ms", 50,
                                     "--max-records", 10, "--work-ms", 5)
    members[victim_id] = victim
    for name in ("s1", "s2"):
        mid, child = start_member(children, path, name, "--session-ms", 30_000, "--heartbeat-ms", 100,
                                  "--max-records", 10, "--work-ms", 5)
        members[mid] = child
    wait_until(lambda: settled(log, "g", members, parts), "three members")
    produce(log, "t", parts, 300, 300)
    victim_parts = {tp.partition for tp in split(log, "g")[victim_id]}
    wait_until(lambda: len(records(victim)) >= 20, "the victim processing records")
    victim.kill()  # SIGKILL, mid-stream
    del members[victim_id]
    produce(log, "t", parts, 600, total - 600)
    wait_until(lambda: settled(log, "g", members, parts), "the survivors taking the victim's partitions")
    survivors = list(members.values())
    wait_until(lambda: {v for c in [victim, *survivors] for _, _, v in records(c)} >= {f"v{i}" for i in range(total)},
               "every record processed by someone")
    wait_until(lambda: log.describe_group("g").total_lag == 0
               and all(o.committed is not None for o in log.describe_group("g").offsets), "everything committed")
    for child in survivors:
        child.proc.send_signal(signal.SIGTERM)
        child.finish()
    processed = Counter((p, v) for c in [victim, *survivors] for p, _, v in records(c))
    assert {v for _, v in processed} == {f"v{i}" for i in range(total)}, "at-least-once: nothing lost"
    dupes = {(p, v) for (p, v), n in processed.items() if n > 1}
    assert {p for p, _ in dupes} <= victim_parts, f"duplicates outside the killed member's partitions: {dupes}"
    log.close()


def test_a_killed_members_heartbeat_file_goes_when_a_joining_member_removes_it(tmp_path: Path,
                                                                               children: Any) -> None:
    """docs/format.md: ``groups/`` holds one heartbeat file per live member.  A member
    killed with kill -9 and removed by the next member's join (its session over) leaves
    no file behind."""
    path = tmp_path / "log"
    log = embedlog.open(path, maintenance_interval_ms=None)
    log.create_topic("t", partitions=1)
    _, victim = start_member(children, path, "victim", "--session-ms", 300, "--heartbeat-ms", 50)
    victim.wait_for(lambda line: "assigned" in line and line["assigned"])
    victim.kill()
    time.sleep(0.6)  # (its session is over before the next member joins)
    c = log.consumer(["t"], group="g", session_timeout_ms=10_000)
    wait_until(lambda: bool(c.poll(timeout=0.05) or c.assignment()), "the new member owning the partition")
    assert [m.member_id for m in log.describe_group("g").members] == [c._membership.member_id]
    files = [f for _, _, names in os.walk(path / "groups") for f in names]
    assert len(files) == 1, f"heartbeat files of members no longer in the group: {files}"
    c.close()
    log.close()


def test_a_frozen_member_is_fenced_after_its_session_timeout(tmp_path: Path, children: Any) -> None:
    path = tmp_path / "log"
    parts = 2
    log = embedlog.open(path, maintenance_interval_ms=None)
    log.create_topic("t", partitions=parts)
    zombie_id, zombie = start_member(children, path, "z", "--session-ms", 500, "--heartbeat-ms", 50, "--hold",
                                     stdin=True)
    other_id, other = start_member(children, path, "o", "--session-ms", 30_000, "--heartbeat-ms", 100)
    wait_until(lambda: settled(log, "g", {zombie_id: zombie, other_id: other}, parts), "two members")
    (zombie_tp,) = split(log, "g")[zombie_id]
    produce(log, "t", parts, 0, 10)
    # The zombie printed a batch and waits on stdin before committing: freeze it there.
    zombie.wait_for(lambda line: "recs" in line)
    os.kill(zombie.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    wait_until(lambda: split(log, "g") == {other_id: {TopicPartition("t", 0), TopicPartition("t", 1)}}
               and last_assigned(other) == {TopicPartition("t", 0), TopicPartition("t", 1)},
               "the other member taking the frozen member's partition")
    assert time.monotonic() - frozen >= 0.2, "removed before its session timeout"
    # The other member redoes the uncommitted batch (at-least-once).
    wait_until(lambda: {v for p, _, v in records(other) if p == zombie_tp.partition} == {
        f"v{i}" for i in range(10) if i % parts == zombie_tp.partition}, "the batch redone")
    # The group moves on past what the zombie holds.
    produce(log, "t", parts, 10, 10)

    def committed() -> dict[TopicPartition, int | None]:
        return {TopicPartition(o.topic, o.partition): o.committed for o in log.describe_group("g").offsets}

    wait_until(lambda: committed() == {TopicPartition("t", 0): 10, TopicPartition("t", 1): 10}, "the other committing")
    os.kill(zombie.pid, signal.SIGCONT)
    zombie.send("go")
    line = zombie.wait_for(lambda line: "commit_error" in line or "committed" in line)
    assert line.get("commit_error") == "IllegalGenerationError", line
    assert committed()[zombie_tp] == 10, "the zombie's commit did not move the group backwards"
    # The zombie rejoins under a new member id and the two share again.
    new_id = wait_until(lambda: next((line["member"] for line in reversed(list(zombie.lines))
                                      if "assigned" in line and line["member"] != zombie_id), None),
                        "the zombie rejoining")
    wait_until(lambda: settled(log, "g", {new_id: zombie, other_id: other}, parts), "two members again")
    zombie.send("go")  # in case it holds another batch
    for child in (zombie, other):
        child.proc.send_signal(signal.SIGTERM)
    zombie.send("go")
    for child in (zombie, other):
        child.finish()
    log.close()


COMMITTER = '''
import json, sys, threading
import embedlog
from embedlog import TopicPartition
from embedlog.groups.offsets import OffsetAndMetadata

log = embedlog.open(sys.argv[1], maintenance_interval_ms=None)
lock = threading.Lock()

def run(p: int) -> None:
    for k in range(1, int(sys.argv[2]) + 1):
        log.commit_offsets("g", {TopicPartition("t", p): OffsetAndMetadata(k, f"k{k}")})
        with lock:
            print(json.dumps({"acked": [p, k]}), flush=True)

threads = [threading.Thread(target=run, args=(p,)) for p in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
'''


def test_offsets_committed_by_eight_threads_survive_kill_9(tmp_path: Path, children: Any) -> None:
    """Concurrent commits share fsyncs; every commit that returned is on disk after a kill -9."""
    path = tmp_path / "log"
    commits = 2000  # per thread: offsets 1..2000 (far more than it gets to before the kill)
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=8)
        produce(log, "t", 8, 0, 8 * commits)
    script = tmp_path / "committer.py"
    script.write_text(COMMITTER)
    child = children.start(str(script), path, commits)  # an absolute path: harness runs it as is
    child.wait_for(lambda line: sum(1 for x in child.lines if "acked" in x) >= 300)
    child.kill()
    acked: dict[int, int] = {}
    for line in child.lines:
        if "acked" in line:
            p, k = line["acked"]
            acked[p] = max(acked.get(p, 0), k)
    assert sum(acked.values()) >= 300
    assert max(acked.values()) < commits, "killed mid-stream"
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        got = log.committed_offsets("g")
    for part in range(8):
        om = got.get(TopicPartition("t", part))
        done = acked.get(part, 0)
        if done == 0:
            continue  # nothing acknowledged: it may or may not have committed one
        assert om is not None
        assert done <= om.offset <= done + 1, (part, done, om)
        assert om.metadata == f"k{om.offset}", "an offset and its metadata are written together"


def test_describe_group_names_no_dead_member_as_owner(tmp_path: Path, children: Any) -> None:
    """A lone member killed with kill -9: once its session ran out the group is Empty,
    and no partition row names it as owner any more."""
    path = tmp_path / "log"
    log = embedlog.open(path, maintenance_interval_ms=None)
    log.create_topic("t", partitions=2)
    victim_id, victim = start_member(children, path, "victim", "--session-ms", 300, "--heartbeat-ms", 50)
    wait_until(lambda: settled(log, "g", {victim_id: victim}, 2), "the member owning both partitions")
    assert {o.owner for o in log.describe_group("g").offsets} == {victim_id}
    victim.kill()
    wait_until(lambda: log.describe_group("g").state == "Empty", "the killed member expiring")
    desc = log.describe_group("g")
    assert desc.members == ()
    assert [o.owner for o in desc.offsets] == [None, None]
    log.close()


STUCK_IN_REVOKE = r"""
import sys, time, embedlog
log = embedlog.open(sys.argv[1])
def on_revoke(partitions):
    print("revoking", flush=True)
    time.sleep(30)  # a callback stuck (a hung call)
c = log.consumer(["t"], group="g", session_timeout_ms=1000, heartbeat_interval_ms=200,
                 max_poll_interval_ms=1000, on_revoke=on_revoke)
while len(c.assignment()) < 2:
    c.poll(0.1)
print("owns", flush=True)
while True:
    c.poll(0.1)
"""


def test_a_member_stuck_in_a_callback_leaves_after_max_poll_interval(tmp_path: Path) -> None:
    """``max_poll_interval_ms`` runs through a rebalance callback, as Kafka's poll timer
    does: a member stuck in ``on_revoke`` kept its partitions (and heartbeating) for as
    long as the callback ran, so the member joining got nothing."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t", partitions=2)
    a = subprocess.Popen([sys.executable, "-c", STUCK_IN_REVOKE, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert a.stdout is not None
        assert a.stdout.readline().strip() == "owns"
        with embedlog.open(path) as log, log.consumer(["t"], group="g", session_timeout_ms=1000,
                                                       heartbeat_interval_ms=200) as b:
            start = time.monotonic()
            while len(b.assignment()) < 2 and time.monotonic() - start < TIMEOUT:
                b.poll(0.1)
            assert a.stdout.readline().strip() == "revoking"
            assert len(b.assignment()) == 2  # (A left the group, its callback still running)
            assert time.monotonic() - start < 20, "waited for the callback to return"
            assert a.poll() is None
    finally:
        a.kill()
        a.wait()


def test_a_forked_child_leaves_its_parents_group_membership_alone(tmp_path: Path) -> None:
    """A child that closed the log it inherited closed the parent's group consumer in the
    child: the parent's on_revoke ran there and its member id left the group (the parent's
    next commit failed; its partitions were free for others).  The child cannot poll or
    commit as the parent's member either (``ForkError``)."""
    log = embedlog.open(tmp_path / "log")
    log.create_topic("t", partitions=2)
    produce(log, "t", 2, 0, 20)
    parent = os.getpid()
    r, w = os.pipe()

    def on_revoke(partitions: list[TopicPartition]) -> None:
        if os.getpid() != parent:
            os.write(w, b"on_revoke ran in the child\n")

    c = log.consumer(["t"], group="g", auto_offset_reset="earliest", enable_auto_commit=False,
                     session_timeout_ms=30_000, on_revoke=on_revoke)
    assert c.poll(5.0, max_records=5)
    me = c.group_metadata().member_id
    manual = log.consumer(group="h", auto_offset_reset="earliest")  # (no membership: positions only)
    manual.assign([TopicPartition("t", 0)])
    assert manual.poll(5.0, max_records=3)
    log.create_topic("out")
    metadata = c.group_metadata()

    def in_transaction(through: Any) -> None:
        with log.transaction() as tx:
            tx.send("out", b"x")
            tx.commit_offsets(through, {TopicPartition("t", 0): 1})

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            manual.commit()  # (the child's first use of the store: it raised KeyError)
            for n, attempt in enumerate((lambda: c.poll(0), c.commit, lambda: c.subscribe(["out"]),
                                         c.group_metadata, lambda: in_transaction(c),
                                         lambda: in_transaction(metadata)), 10):
                try:
                    attempt()
                    code = n
                except embedlog.errors.ForkError:
                    pass
            log.close()
        except BaseException:
            code = 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    os.close(w)
    said = os.read(r, 1000)
    os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0
    assert said == b""
    assert [(m.member_id, m.topics) for m in log.describe_group("g").members] == [(me, ("t",))]
    assert log.describe_topic("out").records == 0
    assert {o.committed for o in log.describe_group("g").offsets} == {None}
    c.commit()  # (still the group's member, with its partitions)
    assert len(c.assignment()) == 2
    c.close()
    assert log.committed_offsets("h")[TopicPartition("t", 0)].offset == 3
    manual.close()
    log.close()


CLOSED_AFTER_REMOVAL = r"""
import sys, time, embedlog
log = embedlog.open(sys.argv[1])
c = None
def on_revoke(ps):
    print("on_revoke", flush=True)
    c.commit()
def on_lost(ps):
    print("on_lost", flush=True)
c = log.consumer(["t"], group="g", auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=1000,
                 heartbeat_interval_ms=200, on_revoke=on_revoke, on_lost=on_lost)
while len(c.assignment()) < 2:
    c.poll(0.1)
print("ready", flush=True)
sys.stdin.readline()  # (stopped here, removed by the others, continued)
try:
    c.close()
    print("closed", flush=True)
except Exception as e:
    print("close raised", type(e).__name__, e, flush=True)
"""


def test_closing_a_member_the_group_removed_calls_on_lost(tmp_path: Path) -> None:
    """A member removed by the others (its process was stopped past its session timeout)
    and then closed got ``on_revoke`` for partitions another member owned, and the commit
    in it failed with a false "closed while it committed" ``ClosedError``: it gets
    ``on_lost``, as Kafka's ``onPartitionsLost``."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t", partitions=2)
    a = subprocess.Popen([sys.executable, "-c", CLOSED_AFTER_REMOVAL, str(path)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert a.stdout is not None
        assert a.stdin is not None
        assert a.stdout.readline().strip() == "ready"
        os.kill(a.pid, signal.SIGSTOP)
        with embedlog.open(path) as log, log.consumer(["t"], group="g", session_timeout_ms=1000,
                                                       heartbeat_interval_ms=200) as b:

            def owns_both() -> bool:
                b.poll(0.05)
                return len(b.assignment()) == 2

            wait_until(owns_both, "B taking both partitions")
            os.kill(a.pid, signal.SIGCONT)
            a.stdin.write("\n")
            a.stdin.flush()
            out, _ = a.communicate(timeout=TIMEOUT)
    finally:
        if a.poll() is None:
            os.kill(a.pid, signal.SIGCONT)
            a.kill()
        a.wait()
    assert out.split("\n")[:2] == ["on_lost", "closed"], out


def _in_child(fn: Any) -> str:
    """Run ``fn`` in a forked child; what it returned (its repr) or raised (the class name)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(w, repr(fn()).encode())
        except BaseException as exc:  # (reported to the parent)
            os.write(w, type(exc).__name__.encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(w)
    said = os.read(r, 200).decode()
    os.close(r)
    return said


def test_a_forked_child_is_not_handed_the_records_its_parents_iterators_fetched(tmp_path: Path) -> None:
    """``for msg in consumer`` (and the kafka-python and aiokafka shims' buffers) handed
    a child the records its parent's group member had fetched, which the parent handles
    too: they are dropped in the child, whose next look raises."""
    from embedlog.compat import kafka_python  # noqa: PLC0415

    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("a")
        produce(log, "a", 1, 0, 4)
        c = log.consumer(["a"], group="g", auto_offset_reset="earliest")
        it = iter(c)
        assert next(it).value == b"v0"
        assert _in_child(lambda: next(it).value) == "ForkError"
        assert [next(it).value for _ in range(3)] == [b"v1", b"v2", b"v3"]
        c.close()
    k = kafka_python.KafkaConsumer("a", group_id="k", auto_offset_reset="earliest", consumer_timeout_ms=5000,
                                   bootstrap_servers="fork:9092", embedlog_path=str(tmp_path / "log"))
    assert next(k).value == b"v0"
    said = _in_child(lambda: next(k).value)
    assert "v1" not in said
    assert [next(k).value for _ in range(3)] == [b"v1", b"v2", b"v3"]
    k.close()
