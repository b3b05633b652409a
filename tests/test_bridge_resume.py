"""The up bridge's resume when the log it resumes on is not the history it forwarded
(a replication failover took records back, a directory restored from a copy), and with
records that carry an ``embedlog.source`` header of their own (a relay: down, then up).
Found by an audit of the resume's digest comparison; each test failed before its fix."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

ck = pytest.importorskip("confluent_kafka")

import embedlog  # noqa: E402
from embedlog.bridge import SOURCE_HEADER, Mirror  # noqa: E402
from embedlog.bridge.up import UpEngine  # noqa: E402
from embedlog.codec.murmur2 import partition_for_key  # noqa: E402
from embedlog.errors import LinkDownError  # noqa: E402
from procs import bridge_proc, harness, mock_kafka  # noqa: E402  # tests/procs (tests/ is on sys.path)

ORIG = UpEngine.checkpoint


def no_progress(self: UpEngine, force: bool = False, stop: Any = None, stall_s: float = 10.0,
                topics: list[str] | None = None) -> bool:
    # as tests/procs/bridge_proc.py --no-checkpoints: a bridge killed before its first progress checkpoint
    return ORIG(self, force, stop, stall_s, topics) if topics is not None else True


remote_total = mock_kafka.remote_total


def sources(bs: str, topic: str, name: str) -> list[str]:
    out = []
    for msgs in mock_kafka.read_topic(bs, topic).values():
        for m in msgs:
            mine = [v for k, v in m.headers if k == SOURCE_HEADER and v.startswith(name.encode() + b":")]
            out.append(mine[-1].decode())
    return out


def forward_without_progress(monkeypatch: pytest.MonkeyPatch, log: embedlog.Log, bs: str, topic: str, name: str,
                             until: int, remote: str | None = None) -> None:
    """Run up mirror ``name`` of ``topic`` (to ``remote``) until Kafka holds ``until``
    records of it, and stop it before its first progress checkpoint (as a kill would)."""
    remote = remote or topic
    with monkeypatch.context() as mp:
        mp.setattr(UpEngine, "checkpoint", no_progress)
        m = Mirror(log, mock_kafka.client(bs), [topic], direction="up", name=name, topic_map={topic: remote})
        m.start()
        harness.wait_until(lambda: remote_total(bs, remote) >= until, "Kafka to hold the records")
        m.stop()
        m.close()


def send_without_progress_then_resume(monkeypatch: pytest.MonkeyPatch, log: embedlog.Log, bs: str, topic: str,
                                      remote: str, name: str) -> None:
    n = sum(p.end_offset for p in log.describe_topic(topic).partitions)
    forward_without_progress(monkeypatch, log, bs, topic, name, n, remote)
    with Mirror(log, mock_kafka.client(bs), [topic], direction="up", name=name, topic_map={topic: remote}) as m:
        bridge_proc.caught_up(m, 60)



def forward_ten_then_copy(bootstrap: str, a: Path, b: Path, topic: str, remote: str, name: str,
                          key_prefix: bytes) -> None:
    """Log ``a``: ``topic`` (1 partition) with 10 records, forwarded up by mirror ``name``
    and checkpointed; then ``b``, a copy of it (the other node's history, up to here)."""
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        log.create_topic(topic, partitions=1)
        with log.producer() as p:
            for i in range(10):
                p.send(topic, b"x%d" % i, key=key_prefix + b"%d" % i)
            p.flush()
        with Mirror(log, mock_kafka.client(bootstrap), [topic], direction="up", name=name,
                    topic_map={topic: remote}) as m:
            bridge_proc.caught_up(m, 60)
    shutil.copytree(a, b)


def test_user_embedlog_source_header_sent_twice(
        tmp_path: Path, bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local record that carries an ``embedlog.source`` header of its own (e.g. one a down
    mirror brought from a Kafka topic fed by another site's up mirror): the resume scan's
    remote digest drops *every* embedlog.source header, the local digest keeps the record's
    own, so every such record looks diverged and is sent again."""
    topic = "hdr-l"
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic(topic, partitions=4)
        with log.producer() as p:
            for i in range(40):
                p.send(topic, b"v%d" % i, key=b"k%d" % i, headers=[(SOURCE_HEADER, b"edge-1:0:%d" % i)])
            p.flush()
        send_without_progress_then_resume(monkeypatch, log, bootstrap, topic, "hdr-r", "central")
    srcs = sources(bootstrap, "hdr-r", "central")
    dups = len(srcs) - len(set(srcs))
    assert dups == 0, f"{dups} of 40 records are in Kafka twice"


def test_relay_down_then_up_sends_twice(tmp_path: Path, bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through the bridge only: edge log --up 'edge'--> Kafka 'raw' --down 'relay-down'-->
    relay log --up 'relay-up'--> Kafka 'central'.  The relay's up mirror, killed before its first
    progress checkpoint and restarted, sends every record again."""
    with embedlog.open(tmp_path / "edge", maintenance_interval_ms=None) as edge:
        edge.create_topic("raw", partitions=4)
        with edge.producer() as p:
            for i in range(40):
                p.send("raw", b"v%d" % i, key=b"k%d" % i)
            p.flush()
        with Mirror(edge, mock_kafka.client(bootstrap), ["raw"], direction="up", name="edge") as m:
            bridge_proc.caught_up(m, 60)
    with embedlog.open(tmp_path / "relay", maintenance_interval_ms=None) as relay:
        with Mirror(relay, mock_kafka.client(bootstrap), ["raw"], direction="down", name="relay-down",
                    topic_map={"raw": "raw-relayed"}) as m:
            bridge_proc.caught_up(m, 60)
        assert sum(p.end_offset for p in relay.describe_topic("raw-relayed").partitions) == 40
        send_without_progress_then_resume(monkeypatch, relay, bootstrap, "raw-relayed", "central", "relay-up")
    srcs = sources(bootstrap, "central", "relay-up")
    dups = len(srcs) - len(set(srcs))
    assert dups == 0, f"{dups} of 40 records are in Kafka twice"


def test_diverged_record_routed_by_key_is_skipped_when_kafka_has_no_record_at_its_offset(
        tmp_path: Path, bootstrap: str) -> None:
    """Local topic with fewer partitions than the remote (records placed by key).  Log A
    forwarded 0..9 (checkpointed), then its bridge was killed with A's record 10 in flight
    to remote partition r1 (never delivered) while A's 11 had been delivered to r2 (the
    idempotent producer keeps order per remote partition only).  B is a copy of A taken
    at 10 records that then wrote other records (a failover / restored copy).  B's record
    10 is routed to r2: skip[r2] = 11 >= 10 and Kafka holds no record of source offset 10,
    ``found is None`` -> ``continue``: B's record 10 never reaches Kafka."""
    topic, remote, name = "div-l", "div-r", "div"
    a, b = tmp_path / "a", tmp_path / "b"
    keys = [b"k%d" % i for i in range(100)]
    r1 = partition_for_key(b"a10", 4)
    k11 = next(k for k in keys if partition_for_key(k, 4) != r1)
    r2 = partition_for_key(k11, 4)
    kb10 = next(k for k in keys if partition_for_key(k, 4) == r2 and k != k11)
    forward_ten_then_copy(bootstrap, a, b, topic, remote, name, b"k")
    # what A's bridge delivered of A's records 10 (key a10, to r1) and 11 (key k11, to r2) before
    # kill -9: only 11 (r1's produce request was still in flight).  Written as the bridge writes it.
    pr = ck.Producer(mock_kafka.client(bootstrap, **{"enable.idempotence": True}))
    pr.produce(remote, b"a11", k11, r2, timestamp=1_700_000_000_011,
               headers=[(SOURCE_HEADER, b"%s:0:11" % name.encode())])
    assert pr.flush(30) == 0
    with embedlog.open(b, maintenance_interval_ms=None) as log:
        with log.producer() as p:  # B's own records at 10, 11
            p.send(topic, b"b10", key=kb10, timestamp_ms=1_700_000_000_110)
            p.send(topic, b"b11", key=kb10, timestamp_ms=1_700_000_000_111)
            p.flush()
        with Mirror(log, mock_kafka.client(bootstrap), [topic], direction="up", name=name,
                    topic_map={topic: remote}) as m:
            bridge_proc.caught_up(m, 60)
            assert m.status().lag == 0
    values = [r.value for msgs in mock_kafka.read_topic(bootstrap, remote).values() for r in msgs]
    assert b"b10" in values, f"B's records missing from Kafka: {values}"
    assert b"b11" in values, f"B's records missing from Kafka: {values}"


def test_resume_on_a_log_shorter_than_what_kafka_holds_never_checkpoints(tmp_path: Path, bootstrap: str) -> None:
    """A failover's most common shape: the new leader (B, a copy of A taken earlier) simply
    lacks records A had forwarded, and writes nothing new for a while.  B's mirror finds
    A's records past B's end in the resume scan; ``skip_pending`` stays True while the
    reader is not past them, so ``checkpoint`` records nothing, for *every* partition
    (also the ones B keeps writing to): lag never reaches 0, wait_caught_up times out."""
    topic, name = "short-l", "short"
    a, b = tmp_path / "a", tmp_path / "b"
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        log.create_topic(topic, partitions=2)
        with log.producer() as p:
            for i in range(10):
                p.send(topic, b"x%d" % i, partition=0)
            p.flush()
        with Mirror(log, mock_kafka.client(bootstrap), [topic], direction="up", name=name) as m:
            bridge_proc.caught_up(m, 60)
    shutil.copytree(a, b)
    with embedlog.open(a, maintenance_interval_ms=None) as log:  # A forwards 5 more of partition 0, then dies
        with log.producer() as p:
            for i in range(10, 15):
                p.send(topic, b"x%d" % i, partition=0)
            p.flush()
        with Mirror(log, mock_kafka.client(bootstrap), [topic], direction="up", name=name) as m:
            bridge_proc.caught_up(m, 60)
    with embedlog.open(b, maintenance_interval_ms=None) as log:  # B: partition 0 idle, partition 1 busy
        with log.producer() as p:
            for i in range(100):
                p.send(topic, b"y%d" % i, partition=1)
            p.flush()
        with Mirror(log, mock_kafka.client(bootstrap), [topic], direction="up", name=name) as m:
            with contextlib.suppress(LinkDownError):
                bridge_proc.caught_up(m, 20)
            time.sleep(3)
            st = m.status()
            committed = {tp.partition: o for tp, o in log.committed_offsets(name).items()}
        got = sum(len(v) for v in mock_kafka.read_topic(bootstrap, topic).values())
    assert got == 115  # Kafka holds everything (B's 100 of partition 1 included)
    assert st.lag == 0, f"lag {st.lag}, checkpoint {committed}: progress never recorded"
    assert committed[1].offset == 100, committed


def test_diverged_log_by_key_restarted_before_a_checkpoint_sends_its_records_again(
        tmp_path: Path, bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Local topic with fewer partitions than the remote (placed by key).  A forwarded 10..29,
    B (copy of A at 10) wrote other records (other keys) at 10..29, B's mirror detected the
    divergence and sent them, and was killed before its next checkpoint.  On restart the scan
    finds two records per source offset 10..29 (A's and B's, in different remote partitions)
    and keeps one digest per offset: the last read, often A's -> B's record 'differs' -> a
    second divergence -> B's records already in Kafka are sent again."""
    topic, remote, name = "div2-l", "div2-r", "div2"
    a, b = tmp_path / "a", tmp_path / "b"
    forward_ten_then_copy(bootstrap, a, b, topic, remote, name, b"x")
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        with log.producer() as p:
            for i in range(10, 30):  # (big: the scan's fetches, 1 MB a partition, interleave them with B's)
                p.send(topic, b"a%d" % i + b"." * (400_000 if i % 3 else 0), key=b"a%d" % i)
            p.flush()
        with Mirror(log, mock_kafka.client(bootstrap), [topic], direction="up", name=name,
                    topic_map={topic: remote}) as m:
            bridge_proc.caught_up(m, 60)
    with embedlog.open(b, maintenance_interval_ms=None) as log:
        with log.producer() as p:
            for i in range(10, 30):
                p.send(topic, b"b%d" % i, key=b"b%d" % i)
            p.flush()
        # (B's mirror sends them all, killed before it checkpoints)
        forward_without_progress(monkeypatch, log, bootstrap, topic, name, remote_total(bootstrap, remote) + 20, remote)
        with Mirror(log, mock_kafka.client(bootstrap), [topic], direction="up", name=name,
                    topic_map={topic: remote}) as m:
            bridge_proc.caught_up(m, 60)
    values = [r.value for msgs in mock_kafka.read_topic(bootstrap, remote).values() for r in msgs]
    twice = sorted(v for v in set(values) if values.count(v) > 1)
    assert not twice, f"{len(twice)} of B's 20 records are in Kafka twice: {twice}"


def test_a_down_mirror_moved_to_another_kafka_topic_reads_it_from_its_start(tmp_path: Path, bootstrap: str) -> None:
    """Progress was looked up by the local topic only: a down mirror restarted under its
    name to copy another Kafka topic into the same local one read the new topic from the
    offsets reached in the old one, skipping its first records in silence (lag 0)."""
    import confluent_kafka  # noqa: PLC0415

    p = confluent_kafka.Producer(mock_kafka.client(bootstrap))
    for i in range(10):
        p.produce("moved-a", b"a%d" % i, partition=0)
    for i in range(15):
        p.produce("moved-b", b"b%d" % i, partition=0)
    assert p.flush(30) == 0
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        for remote in ("moved-a", "moved-b"):
            with Mirror(log, mock_kafka.client(bootstrap), [remote], direction="down", name="d",
                        topic_map={remote: "x"}) as m:
                bridge_proc.caught_up(m, 60)
        values = [r[3] for r in harness.consume_all(log, "x")]
    assert sorted(v for v in values if v.startswith(b"b")) == sorted(b"b%d" % i for i in range(15))


def test_a_partition_added_while_a_latest_mirror_was_stopped_is_forwarded(tmp_path: Path, bootstrap: str) -> None:
    """``start="latest"`` seeded a partition without progress at its end at every start,
    also one added to a topic the mirror forwarded already (a running mirror forwards all
    of such a partition): added while the mirror was stopped, its records never reached
    Kafka, and were not counted as lost."""
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic("grown", partitions=2)
        with Mirror(log, mock_kafka.client(bootstrap), ["grown"], name="m", start="latest") as m:
            m.wait_for_link(30)
            with log.producer() as p:
                for i in range(10):
                    p.send("grown", b"a%d" % i, partition=i % 2)
            bridge_proc.caught_up(m, 60)
        log.create_partitions("grown", 3)
        with log.producer() as p:
            for i in range(10):
                p.send("grown", b"b%d" % i, partition=2)
        with Mirror(log, mock_kafka.client(bootstrap), ["grown"], name="m", start="latest") as m:
            bridge_proc.caught_up(m, 60)
    values = [r.value for msgs in mock_kafka.read_topic(bootstrap, "grown").values() for r in msgs]
    assert sorted(v for v in values if v.startswith(b"b")) == sorted(b"b%d" % i for i in range(10))


@pytest.mark.parametrize("start", ["earliest", "latest"])
def test_a_topic_created_anew_while_forwarded_then_kill_is_not_sent_twice(tmp_path: Path, bootstrap: str,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          start: str) -> None:
    """A local topic deleted and created again while its up mirror runs: the topic's
    progress went with the old one, and the running session forwarded the new one without
    recording the start-up checkpoint a topic it starts forwarding gets.  Killed before its
    next checkpoint, the restart took the topic as fresh (no scan of Kafka) and sent it all
    again.  Now the session notices the new topic before it sends any of it, and opens
    again: the new topic from its start (it is newer than the mirror), checkpointed first."""
    topic, name = f"anew-{start}", f"anew-{start}"
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic(topic, partitions=2)
        m = Mirror(log, mock_kafka.client(bootstrap), [topic], name=name, start=start)
        m.start()
        m.wait_for_link(60)
        with log.producer() as p:
            for i in range(100):
                p.send(topic, b"a%d" % i, key=b"k%d" % i)
        bridge_proc.caught_up(m, 60)
        monkeypatch.setattr(UpEngine, "checkpoint", no_progress)  # from here on: killed before its next checkpoint
        log.delete_topic(topic)
        log.create_topic(topic, partitions=2)
        with log.producer() as p:
            for i in range(100):
                p.send(topic, b"b%d" % i, key=b"k%d" % i)
        harness.wait_until(lambda: remote_total(bootstrap, topic) >= 200, "Kafka to hold the new topic's records")
        m.stop()
        m.close()
        monkeypatch.undo()
        with Mirror(log, mock_kafka.client(bootstrap), [topic], name=name, start=start) as m:
            bridge_proc.caught_up(m, 60)
    values = [r.value for msgs in mock_kafka.read_topic(bootstrap, topic).values() for r in msgs]
    twice = sorted(v for v in set(values) if values.count(v) > 1)
    assert not twice, f"{len(twice)} records are in Kafka twice: {twice[:5]}"
    assert sorted(values) == sorted([b"a%d" % i for i in range(100)] + [b"b%d" % i for i in range(100)])


def test_partitions_added_while_stopped_after_a_kill_do_not_resend(tmp_path: Path, bootstrap: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Local 2 partitions into a remote topic of 4 (placed by key), killed after Kafka
    acknowledged records it had not checkpointed; the local topic gets 4 partitions
    while it is stopped.  The restart places records by their partition number (the
    counts match now), and skipped only records found in that destination: every record
    after the last one that had gone to its own partition number was sent again.  Now a
    record Kafka holds at its source offset is skipped wherever it went."""
    topic, name = "grown-l", "grown"
    mock_kafka.create_topic(bootstrap, topic, 4)
    keys = [b"k%d" % i for i in range(200)]
    first = next(k for k in keys if partition_for_key(k, 4) == 0)
    others = [k for k in keys if partition_for_key(k, 4) != 0][:20]
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic(topic, partitions=2)
        with log.producer() as p:  # local partition 0: one record for remote 0, then 20 for the others
            for i, key in enumerate([first, *others]):
                p.send(topic, b"v%d" % i, key=key, partition=0)
            p.flush()
        forward_without_progress(monkeypatch, log, bootstrap, topic, name, 21)  # (killed before a checkpoint)
        log.create_partitions(topic, 4)
        with Mirror(log, mock_kafka.client(bootstrap), [topic], name=name) as m:
            bridge_proc.caught_up(m, 60)
    srcs = sources(bootstrap, topic, name)
    assert len(srcs) == len(set(srcs)) == 21, f"{len(srcs) - len(set(srcs))} of 21 records are in Kafka twice"


@pytest.mark.parametrize("fresh", [0, 100, 2000])
def test_a_topic_deleted_or_created_anew_while_a_checkpoint_waits_for_kafka(tmp_path: Path, bootstrap: str,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           fresh: int) -> None:
    """A local topic deleted (``fresh`` 0), or deleted and created again with ``fresh``
    records, while a checkpoint waited for Kafka's end offsets, between its look at the
    topic and its commit: the commit named a topic gone (the mirror stopped with
    ``UnknownTopicError``), or wrote the old topic's progress onto the new one (past its
    end: the mirror stopped; within it: the new topic's first records were never sent).
    Now the commit leaves out, in its own write transaction, a topic whose identity is
    not the one the session opened."""
    topic = name = f"ckrace{fresh}"
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic(topic, partitions=2)
        with log.producer() as p:
            for i in range(1000):
                p.send(topic, b"a%d" % i, key=b"k%d" % i)
        original = UpEngine._watermarks
        armed: list[bool] = []

        def racing(self: UpEngine, route: Any) -> Any:
            if armed and armed.pop():  # the topic goes (and comes back) while the checkpoint waits for Kafka
                log.delete_topic(topic)
                if fresh:
                    log.create_topic(topic, partitions=2)
                    with log.producer() as p:
                        for i in range(fresh):
                            p.send(topic, b"b%d" % i, key=b"k%d" % i)
            return original(self, route)

        monkeypatch.setattr(UpEngine, "_watermarks", racing)
        with Mirror(log, mock_kafka.client(bootstrap), [topic], name=name) as m:
            bridge_proc.caught_up(m, 60)
            armed.append(True)
            with log.producer() as p:
                for i in range(1000, 1010):
                    p.send(topic, b"a%d" % i, key=b"k%d" % i)
            harness.wait_until(lambda: not armed, "the checkpoint", 30)
            if fresh:
                harness.wait_until(lambda: remote_total(bootstrap, topic) >= 1010 + fresh, "the new topic in Kafka", 30)
                bridge_proc.caught_up(m, 30)
            else:
                time.sleep(2)  # (several checkpoints)
            st = m.status()
            assert (st.running, st.error) == (True, None), st
    values = [r.value for rs in mock_kafka.read_topic(bootstrap, topic).values() for r in rs]
    missing = sorted(v for v in (b"b%d" % i for i in range(fresh)) if v not in values)
    assert not missing, f"{len(missing)} records of the new topic never forwarded: {missing[:5]}"
    twice = sorted(v for v in set(values) if values.count(v) > 1)
    assert not twice, f"{len(twice)} records are in Kafka twice: {twice[:5]}"


@pytest.mark.parametrize("before", [50, 110])
def test_records_found_in_kafka_then_deleted_before_the_reader_reaches_them_are_not_lost(
        tmp_path: Path, bootstrap: str, monkeypatch: pytest.MonkeyPatch, before: int) -> None:
    """Killed after Kafka acknowledged records 0..99 it had not checkpointed (the checkpoint
    says 0); 100..119 written while it is stopped.  Retention deletes the records before
    ``before`` while the restarted bridge starts up: after its resume scan found 0..99 in
    Kafka, before its reader reached them.  The reader's gap check counted every deleted
    record in ``records_lost``, those Kafka holds too; only 100..``before``-1 are lost."""
    topic = name = f"lostskip{before}"
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic(topic, partitions=1)
        with log.producer() as p:
            for i in range(100):
                p.send(topic, b"v%d" % i, partition=0)
        forward_without_progress(monkeypatch, log, bootstrap, topic, name, 100)  # (killed before a checkpoint)
        with log.producer() as p:
            for i in range(100, 120):
                p.send(topic, b"v%d" % i, partition=0)
        original = UpEngine._scan

        def scan_then_retention(self: UpEngine, *args: Any) -> Any:
            found = original(self, *args)
            log.delete_records(topic, 0, before)  # retention, while the restarted bridge starts up
            return found

        monkeypatch.setattr(UpEngine, "_scan", scan_then_retention)
        with Mirror(log, mock_kafka.client(bootstrap), [topic], name=name) as m:
            bridge_proc.caught_up(m, 60)
            lost = m.status().records_lost
        stored = Mirror(log, mock_kafka.client(bootstrap), [topic], name=name).status().records_lost
    srcs = sources(bootstrap, topic, name)
    assert len(srcs) == len(set(srcs)), f"{len(srcs) - len(set(srcs))} records are in Kafka twice"
    held = sorted(int(s.rsplit(":", 1)[1]) for s in srcs)
    assert held == list(range(100)) + list(range(max(100, before), 120))
    assert (lost, stored) == (max(0, before - 100),) * 2, \
        f"records_lost {lost} (stored {stored}): only {max(0, before - 100)} deleted records are not in Kafka"


def test_a_topic_deleted_while_the_session_opens_stops_nothing(tmp_path: Path, bootstrap: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleted after the open's resume had looked at it (while its start-up checkpoint
    waited for Kafka): the consumer's assignment of it raised UnknownTopicError and the
    whole mirror stopped for good; the session opens again without it."""
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic("oa", partitions=1)
        log.create_topic("ob", partitions=1)
        with log.producer() as p:
            for i in range(10):
                p.send("oa", b"a%d" % i, partition=0)
                p.send("ob", b"b%d" % i, partition=0)
        original = UpEngine._watermarks
        armed = [True]

        def racing(self: UpEngine, route: Any) -> Any:
            if armed and armed.pop():  # ("ob" goes while the start-up checkpoint waits for Kafka)
                log.delete_topic("ob")
            return original(self, route)

        monkeypatch.setattr(UpEngine, "_watermarks", racing)
        with Mirror(log, mock_kafka.client(bootstrap), ["oa", "ob"], name="orace") as m:
            harness.wait_until(lambda: not armed, "the start-up checkpoint", 30)
            with log.producer() as p:
                p.send("oa", b"late", partition=0)
            bridge_proc.caught_up(m, 30)
            st = m.status()
            assert (st.running, st.error) == (True, None), st
    assert b"late" in [r.value for rs in mock_kafka.read_topic(bootstrap, "oa").values() for r in rs]
