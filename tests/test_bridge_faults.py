"""The Kafka bridge under faults, against librdkafka's mock cluster in a process of its own.

- **up, kill -9**: the app writes records locally (some while the bridge runs); the
  bridge (``procs/bridge_proc.py``) is SIGKILLed at random moments and restarted; then
  a plain confluent-kafka consumer reads the remote topic: every local record is there
  exactly once (found by its ``embedlog.source`` header), in order per source partition,
  on the partition it belongs to, with key, value, headers and timestamp equal.
- **down, kill -9**: the same in reverse, checked in embedlog against what Kafka's own
  ``read_committed`` consumer sees (the mock cluster does not filter aborted
  transactions, even for that consumer: the "never copies aborted records" half of the
  check only runs against a cluster that does).
- **link down**: the cluster's process is SIGSTOPped while the app keeps producing; the
  bridge shows the link down, and once SIGCONTed everything arrives, nothing twice.
- **retention while the link is down**: what retention deletes before the bridge
  forwarded it is counted as lost, and only that.

Set ``EMBEDLOG_CRASH_SEED`` to replay the kill moments of a failed run (the seed is in
the failure message).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ck = pytest.importorskip("confluent_kafka")

import embedlog  # noqa: E402
from embedlog.bridge import SOURCE_HEADER, Mirror  # noqa: E402
from embedlog.bridge.up import UpEngine  # noqa: E402
from embedlog.codec.murmur2 import partition_for_key  # noqa: E402
from procs import bridge_proc, harness, mock_kafka  # noqa: E402  # tests/procs (tests/ is on sys.path)

pytestmark = pytest.mark.slow

NAME = "site-7"
TS0 = 1_700_000_000_000


def _seed() -> int:
    env = os.environ.get("EMBEDLOG_CRASH_SEED")
    return int(env) if env else random.randrange(1 << 32)


# -- the records ----------------------------------------------------------------------------
def record(i: int) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]:
    """Record ``i``: (key, value, headers, timestamp); small, with the edge cases mixed in
    (no key, empty key, null and empty values, no headers, repeated and null headers)."""
    key: bytes | None = b"k%d" % (i % 97)
    value: bytes | None = b"v%d" % i
    headers: list[tuple[str, bytes | None]] = [("h", b"%d" % (i % 10))]
    if i % 101 == 0:
        key = None
    elif i % 103 == 0:
        key = b""
    if i % 107 == 0:
        value = None
    elif i % 109 == 0:
        value = b""
    if i % 7 == 0:
        headers = []
    elif i % 113 == 0:
        headers = [("dup", b"1"), ("n", None), ("dup", b"2")]
    return key, value, headers, TS0 + i * 3


def produce_local(log: embedlog.Log, topic: str, first: int, end: int, flush_every: int = 500) -> None:
    """Write records ``first..end-1`` to the local topic (flushed)."""
    with log.producer(linger_ms=60_000) as p:
        for i in range(first, end):
            key, value, headers, ts = record(i)
            p.send(topic, value, key=key, headers=headers, timestamp_ms=ts)
            if (i + 1) % flush_every == 0:
                p.flush()
        p.flush()


def produce_remote(producer: Any, topic: str, first: int, end: int) -> None:
    """Send records ``first..end-1`` to Kafka with a plain confluent producer (by key)."""
    for i in range(first, end):
        key, value, headers, ts = record(i)
        while True:
            try:
                producer.produce(topic, value, key, timestamp=ts, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0, "the mock cluster did not take the records"


# -- checks -----------------------------------------------------------------------------------
def check_up(log: embedlog.Log, topic: str, bootstrap: str, remote_topic: str) -> int:
    """Every local record of ``topic`` is in ``remote_topic`` exactly once, in order per
    source partition, on its destination partition, with equal fields; return the count."""
    local = harness.read_all(log, topic)
    nq = len(local)
    remote = mock_kafka.read_topic(bootstrap, remote_topic)
    nr = len(remote)
    found: dict[tuple[int, int], mock_kafka.Remote] = {}
    dups = []
    for r, msgs in remote.items():
        last: dict[int, int] = {}
        for m in msgs:
            assert [h for h, _ in m.headers[-1:]] == [SOURCE_HEADER], f"{r}/{m.offset} has no source header: {m}"
            mirror, q, o = m.headers[-1][1].decode().rsplit(":", 2)
            assert mirror == NAME
            src = (int(q), int(o))
            if src in found:
                dups.append((src, (found[src].partition, found[src].offset), (r, m.offset)))
            found[src] = m
            assert src[1] > last.get(src[0], -1), (
                f"remote {r}: source {src} after {(src[0], last[src[0]])}: out of order")
            last[src[0]] = src[1]
    assert not dups, f"{len(dups)} records are in Kafka twice, e.g. (source, first, second): {dups[:5]}"
    missing = [(q, m.offset) for q, msgs in local.items() for m in msgs if (q, m.offset) not in found]
    assert not missing, f"{len(missing)} local records never reached Kafka, e.g. {missing[:10]}"
    n = sum(len(msgs) for msgs in local.values())
    assert len(found) == n, f"Kafka holds {len(found) - n} records that are not in the log"
    for q, msgs in local.items():
        for m in msgs:
            got = found[(q, m.offset)]
            want = q if nq == nr else q % nr if m.key is None else partition_for_key(m.key, nr)
            assert got.partition == want, f"{q}/{m.offset} (key {m.key!r}) went to {got.partition}, not {want}"
            assert (got.key, got.value, got.headers[:-1]) == (m.key, m.value, list(m.headers)), (
                f"{q}/{m.offset}: local {m} != remote {got}")
            assert (got.timestamp_type, got.timestamp) == (ck.TIMESTAMP_CREATE_TIME, m.timestamp), (
                f"{q}/{m.offset}: timestamp {m.timestamp} became {got}")
    return n


def group_lag(log: embedlog.Log) -> dict[Any, int | None]:
    return log.describe_group(NAME).lag()


remote_total = mock_kafka.remote_total


def start_bridge(children: harness.Children, path: Path, bootstrap: str, topic: str, *extra: object
                 ) -> harness.Child:
    return children.start("bridge_proc.py", path, "--bootstrap", bootstrap, "--topic", topic,
                          "--name", NAME, *extra, stdin=True)


def kill_at_random(bridge: harness.Child, rng: random.Random, started: float, mid_stream: bool = False) -> None:
    """SIGKILL the bridge at a random moment: within 1.5 s of ``started`` (often while it
    connects or reads Kafka's tail to resume), or 0.1-0.4 s after it reports having sent
    records, with deliveries and checkpoints in flight; ``mid_stream``: as soon as it has
    sent 1,000 records of a backlog (before it drained it and checkpointed)."""
    if mid_stream:
        bridge.wait_for(lambda line: line.get("mirrored", 0) >= 1_000, timeout=30)
        time.sleep(rng.uniform(0.0, 0.05))
    elif rng.random() < 0.5:
        with contextlib.suppress(AssertionError):  # nothing left to send: kill it idle
            bridge.wait_for(lambda line: line.get("mirrored", 0) > 0, timeout=15)
        time.sleep(rng.uniform(0.1, 0.4))
    else:
        time.sleep(max(0.0, rng.uniform(0.0, 1.5) - (time.monotonic() - started)))
    bridge.kill()


def chunks(rng: random.Random, total: int, kills: int) -> list[int]:
    """Bounds of the records written before the first start (a third or more), during each
    run, and before the final run."""
    return [0, *sorted(rng.sample(range(total // 3, total), kills + 1)), total]


# -- up -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("local_partitions", "total", "kills"), [
    pytest.param(4, 200_000, 5, id="same-partitions-200k"),
    pytest.param(3, 40_000, 3, id="by-key-3-to-4"),
])
def test_up_exactly_once_across_kill_9(tmp_path: Path, children: harness.Children, log: embedlog.Log,
                                       local_partitions: int, total: int, kills: int) -> None:
    """kill -9 of the up bridge at random moments loses and duplicates nothing in Kafka."""
    seed = _seed()
    rng = random.Random(seed)
    _, bootstrap = mock_kafka.start(children)
    path = tmp_path / "log"
    topic = "orders"
    log.create_topic(topic, partitions=local_partitions)
    bounds = chunks(rng, total, kills)
    produce_local(log, topic, 0, bounds[1])  # a backlog before the first start
    ahead = 0  # kills that left Kafka ahead of the bridge's checkpoint
    try:
        for k in range(kills):
            before = remote_total(bootstrap, topic)
            # The first run records no progress (as if killed before any progress checkpoint),
            # and is killed only once Kafka holds some of what it sent: that kill leaves
            # Kafka ahead of the checkpoint.  (Left to checkpoint when idle, a bridge that
            # drained its backlog before the kill, or one killed before any delivery
            # arrived, left the resume path untested now and then.)
            checkpoint_ms = 600_000 if k == 0 else rng.choice([200, 1000, 5000])
            bridge = start_bridge(children, path, bootstrap, topic, "--checkpoint-ms", checkpoint_ms,
                                  *(["--no-checkpoints"] if k == 0 else []))
            bridge.wait_for(lambda line: "ready" in line)
            t0 = time.monotonic()
            produce_local(log, topic, bounds[k + 1], bounds[k + 2], flush_every=rng.choice([50, 500, 2000]))
            if k == 0:
                harness.wait_until(lambda: remote_total(bootstrap, topic) > before,
                                   "Kafka to hold some of the first run's records")
            kill_at_random(bridge, rng, t0, mid_stream=k == 0)
            assert bridge.proc.returncode == -signal.SIGKILL, f"the bridge died before the kill: {bridge.describe()}"
            after = remote_total(bootstrap, topic)
            committed = sum(o.committed or 0 for o in log.describe_group(NAME).offsets) if NAME in log.groups() else 0
            ahead += after > committed
            assert after >= before
        produce_local(log, topic, bounds[kills + 1], total)
        final = start_bridge(children, path, bootstrap, topic, "--until-caught-up")
        lines = final.finish(timeout=120)
        assert any("caught_up" in line for line in lines), final.describe()
        assert all(lag == 0 for lag in group_lag(log).values()), group_lag(log)
        assert check_up(log, topic, bootstrap, topic) == total
        assert ahead >= 1, "no kill came while Kafka was ahead of the checkpoint: the resume path went untested"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n(replay with EMBEDLOG_CRASH_SEED={seed})") from exc


# -- down ---------------------------------------------------------------------------------------
def test_down_exactly_once_across_kill_9(tmp_path: Path, children: harness.Children, log: embedlog.Log) -> None:
    """kill -9 of the down bridge at random moments: embedlog ends up holding what Kafka's
    read_committed consumer sees, each record once, in order, with equal fields."""
    seed = _seed()
    rng = random.Random(seed)
    total, kills = 200_000, 4
    _, bootstrap = mock_kafka.start(children)
    path = tmp_path / "log"
    topic = "events"
    producer = ck.Producer(mock_kafka.client(bootstrap, **{"enable.idempotence": True, "linger.ms": 5,
                                                           "partitioner": "murmur2_random"}))
    txp = ck.Producer(mock_kafka.client(bootstrap, **{"transactional.id": "app-tx"}))
    txp.init_transactions(30)
    aborted: set[bytes] = set()

    def transaction(k: int, commit: bool) -> None:
        txp.begin_transaction()
        for j in range(20):
            value = b"%s-%d-%d" % (b"commit" if commit else b"abort", k, j)
            txp.produce(topic, value, b"tx%d" % j, headers=[("tx", b"%d" % k)], timestamp=TS0 + j)
            if not commit:
                aborted.add(value)
        if commit:
            txp.commit_transaction(30)
        else:
            txp.abort_transaction(30)

    bounds = chunks(rng, total, kills)
    produce_remote(producer, topic, 0, bounds[1])
    try:
        for k in range(kills):
            bridge = start_bridge(children, path, bootstrap, topic, "--direction", "down",
                                  "--batch-size", rng.choice([100, 10_000]))
            bridge.wait_for(lambda line: "ready" in line)
            t0 = time.monotonic()
            transaction(k, commit=bool(k % 2))
            produce_remote(producer, topic, bounds[k + 1], bounds[k + 2])
            kill_at_random(bridge, rng, t0)
            assert bridge.proc.returncode == -signal.SIGKILL, f"the bridge died before the kill: {bridge.describe()}"
        # end every partition with plain records (a transaction marker at the very end is
        # test_bridge.py::test_down_catches_up_past_a_transaction_marker)
        produce_remote(producer, topic, bounds[kills + 1], total)
        final = start_bridge(children, path, bootstrap, topic, "--direction", "down", "--until-caught-up")
        lines = final.finish(timeout=120)
        assert any("caught_up" in line for line in lines), final.describe()

        reference = mock_kafka.read_topic(bootstrap, topic)
        local = harness.read_all(log, topic)
        assert sorted(local) == sorted(reference), "the local topic's partitions differ from Kafka's"
        plain = 0
        for r, want in reference.items():
            got = [(m.key, m.value, list(m.headers), m.timestamp) for m in local[r]]
            exp = [(m.key, m.value, m.headers, m.timestamp) for m in want]
            if got != exp:
                first = next((i for i, (a, b) in enumerate(zip(got, exp)) if a != b), min(len(got), len(exp)))
                raise AssertionError(f"partition {r}: embedlog holds {len(got)} records, Kafka {len(exp)}; "
                                     f"first difference at {first}: {got[first:first + 2]} != {exp[first:first + 2]}")
            plain += sum(1 for m in want if m.value is None or not m.value.startswith((b"commit-", b"abort-")))
        assert plain == total
        assert sum(len(v) for v in local.values()) == sum(len(v) for v in reference.values())
        if not any(m.value in aborted for ms in reference.values() for m in ms):
            # only meaningful where the cluster filters aborted transactions (the mock does not)
            assert not any(m.value in aborted for ms in local.values() for m in ms)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n(replay with EMBEDLOG_CRASH_SEED={seed})") from exc


# -- link down ----------------------------------------------------------------------------------
class App:
    """The app: keeps writing records locally in a thread, link or no link."""

    def __init__(self, log: embedlog.Log, topic: str, first: int) -> None:
        self.log, self.topic, self.produced = log, topic, first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            produce_local(self.log, self.topic, self.produced, self.produced + 200)
            self.produced += 200
            time.sleep(0.02)

    def __enter__(self) -> App:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


STALL_S = 5  # how long a test stops the cluster: well under librdkafka's request.timeout.ms


@contextlib.contextmanager
def stalled_mirror(log: embedlog.Log, bootstrap: str, topic: str) -> Iterator[Mirror]:
    """An up mirror that notices a stalled cluster within seconds, started and caught up
    with what ``topic`` holds; closed on exit.

    librdkafka's own request timeouts stay at their defaults (30 s), longer than the
    stalls: a request that times out is retried with the same producer id and sequence,
    which a Kafka broker deduplicates, but the mock cluster checks sequences only for
    transactional producers (``rd_kafka_mock_validate_records``) and would append the
    retried batch twice, which would look like a duplicate made by the bridge.
    """
    mirror = Mirror(log, mock_kafka.client(bootstrap), [topic], direction="up", name=NAME, stall_timeout_ms=1000,
                    request_timeout_ms=2000)
    try:
        mirror.start()
        bridge_proc.caught_up(mirror, 60)
        yield mirror
    finally:
        mirror.close()


@contextlib.contextmanager
def cluster_stopped(mock: harness.Child) -> Iterator[float]:
    """The cluster's process SIGSTOPped until exit (then SIGCONTed); yields when it stopped."""
    os.kill(mock.pid, signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        os.kill(mock.pid, signal.SIGCONT)


def test_link_down_sigstop_then_catch_up(children: harness.Children, log: embedlog.Log) -> None:
    """SIGSTOP the cluster while the app keeps producing: the bridge shows the link down
    (never a silent stall); after SIGCONT everything arrives, nothing twice."""
    mock, bootstrap = mock_kafka.start(children)
    topic = "orders"
    log.create_topic(topic, partitions=4)
    produce_local(log, topic, 0, 5_000)
    with stalled_mirror(log, bootstrap, topic) as mirror:
        with App(log, topic, 5_000) as app, cluster_stopped(mock) as stopped:
            harness.wait_until(lambda: not mirror.status().link_up, "the bridge to show the link down", 30)
            at_down = app.produced
            harness.wait_until(lambda: app.produced >= at_down + 2_000, "the app to keep producing", 30)
            time.sleep(max(0.0, stopped + STALL_S - time.monotonic()))
            st = mirror.status()
            assert (st.link_up, st.running, st.error) == (False, True, None), st
            assert st.last_error, st
            assert st.lag > 0, st
        mirror.wait_caught_up(120)
        st = mirror.status()
        assert (st.link_up, st.lag, st.error) == (True, 0, None), st
    assert check_up(log, topic, bootstrap, topic) == app.produced
    assert all(lag == 0 for lag in group_lag(log).values()), group_lag(log)


def test_link_down_is_visible_to_other_processes(children: harness.Children, log: embedlog.Log) -> None:
    """While the cluster stalls with records in flight, the link-state file that
    ``embedlog bridge status`` and the metrics exporter read says the link is down."""
    mock, bootstrap = mock_kafka.start(children)
    topic = "orders"
    log.create_topic(topic, partitions=4)
    produce_local(log, topic, 0, 1_000)
    with stalled_mirror(log, bootstrap, topic) as mirror:
        assert [ln.link_up for ln in log.metrics().links] == [True]
        with App(log, topic, 1_000), cluster_stopped(mock):
            harness.wait_until(lambda: not mirror.status().link_up, "the bridge to show the link down", 30)
            harness.wait_until(lambda: not log.metrics().links[0].link_up,
                               "the link-state file to show the link down", 30)


# -- records lost to retention ------------------------------------------------------------------
def lost_in_group(log: embedlog.Log) -> int:
    """The up mirror's ``records_lost``, as its group's metadata keeps it."""
    return sum(json.loads(o.metadata)["lost"] for o in log.describe_group(NAME).offsets)


def sources_in_kafka(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    """(local partition, offset) of every record the mirror put in ``topic``."""
    out = []
    for msgs in mock_kafka.read_topic(bootstrap, topic).values():
        for m in msgs:
            _, q, o = m.headers[-1][1].decode().rsplit(":", 2)
            out.append((int(q), int(o)))
    return out


def test_retention_while_the_link_is_down_counts_only_unforwarded(children: harness.Children, log: embedlog.Log,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A running up bridge whose cluster stalls (SIGSTOP): retention deletes records it
    had not forwarded; after SIGCONT it counts exactly those as lost and forwards the rest
    once."""
    # Whether the bridge's thread waits in a checkpoint for Kafka's acknowledgements (it
    # reads nothing meanwhile): the test writes more only then.  The link showing down
    # does not say so by itself (an idle probe that hangs on the stopped cluster shows it
    # too; only the checkpoint interval, shorter than the probe's timeout, then blocks the
    # bridge before it reads what comes next): the test does not rest on that.
    in_checkpoint = threading.Event()
    checkpoint = UpEngine.checkpoint

    def watched_checkpoint(self: UpEngine, *args: Any, **kwargs: Any) -> bool:
        in_checkpoint.set()
        try:
            return checkpoint(self, *args, **kwargs)
        finally:
            in_checkpoint.clear()

    monkeypatch.setattr(UpEngine, "checkpoint", watched_checkpoint)
    mock, bootstrap = mock_kafka.start(children)
    topic = "orders"
    log.create_topic(topic, partitions=4, config={"retention.ms": 3_600_000})
    old = time.time_ns() // 1_000_000 - 7_200_000
    with log.producer() as p:
        for i in range(1_000):
            p.send(topic, b"v%d" % i, key=b"k%d" % i, timestamp_ms=old)
    with stalled_mirror(log, bootstrap, topic) as mirror:
        with cluster_stopped(mock):
            with log.producer() as p:  # the bridge hands these to librdkafka, then waits for Kafka
                for i in range(1_000, 1_200):
                    p.send(topic, b"v%d" % i, key=b"k%d" % i, timestamp_ms=old)
            harness.wait_until(lambda: not mirror.status().link_up, "the bridge to show the link down", 30)
            harness.wait_until(lambda: mirror.status().records_mirrored >= 1_200 and in_checkpoint.is_set(),
                               "the bridge to wait for Kafka with the first 1,200 sent", 30)
            with log.producer(linger_ms=60_000) as p:  # these wait in the log
                for i in range(1_200, 5_000):
                    p.send(topic, b"v%d" % i, key=b"k%d" % i, timestamp_ms=old)
                    if i % 200 == 0:
                        p.flush()
            log.maintain()
            assert all(p.start_offset == p.end_offset for p in log.describe_topic(topic).partitions)
            produce_local(log, topic, 5_000, 6_000)  # recent: kept
        mirror.wait_caught_up(120)
        lost = mirror.status().records_lost
    found = sources_in_kafka(bootstrap, topic)
    assert len(found) == len(set(found)), "a record is in Kafka twice"
    starts = {p.partition: p.start_offset for p in log.describe_topic(topic).partitions}
    deleted = sum(starts.values())
    forwarded_old = sum(1 for q, o in found if o < starts[q])
    assert len(found) - forwarded_old == 1_000, "every record retention left must arrive"
    # what the bridge had read before it blocked arrives (it blocks with the first 1,200,
    # or soon after if it saw the stall while idle); what waited in the log is lost
    assert 1_200 <= forwarded_old < deleted, (forwarded_old, deleted)
    assert (lost, lost_in_group(log)) == (deleted - forwarded_old,) * 2


def test_lost_excludes_records_kafka_got_before_a_kill(tmp_path: Path, children: harness.Children,
                                                       log: embedlog.Log) -> None:
    """The bridge is killed after sending records but before its checkpoint; retention
    then deletes them locally: they are in Kafka, so they are not lost."""
    _, bootstrap = mock_kafka.start(children)
    path = tmp_path / "log"
    topic = "orders"
    log.create_topic(topic, partitions=4, config={"retention.ms": 3_600_000})
    old = time.time_ns() // 1_000_000 - 7_200_000
    total = 60_000
    with log.producer(linger_ms=60_000) as p:
        for i in range(total):
            p.send(topic, b"v%d" % i, key=b"k%d" % i, timestamp_ms=old)
            if i % 500 == 499:
                p.flush()
    # It stops sending once Kafka holds 20,000 to 30,000 of them (a batch is 10,000), with
    # no checkpoint since its start, and is killed there.  (Killed on seeing a status
    # line that said 20,000, it had sent up to 44,000 by then on an idle machine: the
    # backlog could run out first, and the idle bridge checkpoint it.)
    bridge = start_bridge(children, path, bootstrap, topic, "--checkpoint-ms", 600_000,
                          "--pause-after", 20_000)
    bridge.wait_for(lambda line: "paused" in line)
    bridge.kill()
    in_kafka = remote_total(bootstrap, topic)
    committed = sum(o.committed or 0 for o in log.describe_group(NAME).offsets)
    assert committed < in_kafka < total, "the kill should leave Kafka ahead of the checkpoint"
    log.maintain()
    assert sum(p.start_offset for p in log.describe_topic(topic).partitions) == total
    produce_local(log, topic, total, total + 100)
    final = start_bridge(children, path, bootstrap, topic, "--until-caught-up")
    final.finish(timeout=120)
    found = sources_in_kafka(bootstrap, topic)
    assert len(found) == len(set(found)) == in_kafka + 100
    assert lost_in_group(log) == total - in_kafka
