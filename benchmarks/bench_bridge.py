"""The Kafka bridge benchmark of embedlog (issue 8): ``Mirror`` throughput up and down against
confluent-kafka producing the same records straight to librdkafka's mock cluster in the same
run, and the catch-up after a link outage.

    python benchmarks/bench_bridge.py [--quick] [--records N] [--runs K] [--outage S] [--rate R]
                                      [--only direct,up,down,outage] [--variants h1,h0]

Prints Markdown tables and writes ``benchmarks/results/bridge.md`` and ``bridge.json``
(``bridge-quick.*`` with ``--quick``), like ``bench_core.py``.  Needs confluent-kafka
(``pip install 'embedlog[bridge]'``); without it every row is skipped and says so.

The mock cluster runs in a subprocess of its own (an inline script started with
``sys.executable`` that prints its bootstrap address), a fresh one per round, so a broker
is a separate process as in a deployment and can be paused with ``SIGSTOP``.  It keeps only
~5 MiB per partition: the records are spread over several 4-partition topics so that no
partition holds more than ~30,000 records, and every row checks that nothing was dropped.

The throughput rows run for records with one header and with none (headers dominate the
per-record cost on both sides).  The outage row also runs a plain confluent-kafka idempotent
producer through the same outage as a control: the mock cluster does not deduplicate
idempotent retries, so duplicates of records in flight at the ``SIGSTOP`` are its artefact.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bench_core
from report import num, pct, progress_printer, table, verdict, write_results
from workload import KEYS, median, rate, scratch_dir

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog

HERE = Path(__file__).resolve().parent
TARGETS = {"up_direct": 0.70, "down_direct": 0.70}
PARTITIONS = 4  # librdkafka's mock cluster auto-creates topics with 4 partitions
PER_PARTITION = 30_000  # records per partition at most (the mock keeps ~5 MiB a partition)
VALUE_SIZE = 30
HEADERS = [("app", b"bench")]  # one small application header on every record
POLL_S = 0.02  # how often the benchmark looks at a mirror's progress (status() takes the GIL: ~2% here)

# Lowered librdkafka timeouts for the outage row, as a deployment on a flaky link would set
# them (defaults: socket.timeout.ms 60000, request.timeout.ms 30000,
# socket.connection.setup.timeout.ms 30000, reconnect.backoff.max.ms 10000).
FLAKY_LINK_CONFIG = {"socket.timeout.ms": 10_000, "request.timeout.ms": 5_000,
                     "socket.connection.setup.timeout.ms": 5_000, "reconnect.backoff.max.ms": 2_000,
                     "socket.keepalive.enable": True}
FLAKY_LINK_MIRROR = {"request_timeout_ms": 5_000, "stall_timeout_ms": 5_000, "reconnect_backoff_max_ms": 2_000}

CLUSTER_SCRIPT = """\
import sys
import confluent_kafka
p = confluent_kafka.Producer({"test.mock.num.brokers": 1, "log_level": 0})
md = p.list_topics(timeout=30)
print(",".join(f"{b.host}:{b.port}" for b in md.brokers.values()), flush=True)
sys.stdin.read()  # run until the benchmark closes our stdin
"""


def value_of(i: int) -> bytes:
    """The ``VALUE_SIZE``-byte value of record ``i``."""
    return b"m%029d" % i


def _confluent() -> Any:
    import confluent_kafka  # noqa: PLC0415 - optional: the benchmark says so when it is missing

    return confluent_kafka


# -- the mock cluster, in its own process ----------------------------------------------------------
class Cluster:
    """librdkafka's mock cluster (one broker) in a subprocess; ``pause``/``resume`` stop it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", CLUSTER_SCRIPT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line:
            self.close()
            raise RuntimeError("the mock cluster process did not print its bootstrap address within 60 s")
        self.bootstrap = line

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kafka_conf(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "log_level": 0, **extra}


def wait_topics(bootstrap: str, topics: list[str], timeout: float = 30) -> None:
    """Make the mock cluster auto-create ``topics`` (a producer's metadata request does)."""
    ck = _confluent()
    p = ck.Producer(kafka_conf(bootstrap))
    deadline = time.monotonic() + timeout
    for t in topics:
        while True:
            md = p.list_topics(t, timeout=5).topics.get(t)
            if md is not None and md.error is None and len(md.partitions) == PARTITIONS:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the mock cluster did not create topic {t!r}")
            time.sleep(0.05)
    p.flush(1)


def watermarks(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    ck = _confluent()
    c = ck.Consumer(kafka_conf(bootstrap, **{"group.id": "bench-check", "enable.auto.commit": False}))
    try:
        return {(t, r): c.get_watermark_offsets(ck.TopicPartition(t, r), timeout=10, cached=False)
                for t in topics for r in range(PARTITIONS)}
    finally:
        c.close()


def check_remote_counts(bootstrap: str, topics: list[str], expected: dict[tuple[str, int], int]) -> str:
    """"" if every remote partition holds exactly its expected count from offset 0, else what differs."""
    marks = watermarks(bootstrap, topics)
    bad = [f"{t}[{r}] holds {low}..{high}, expected 0..{expected[(t, r)]}"
           for (t, r), (low, high) in marks.items() if low != 0 or high != expected[(t, r)]]
    return "; ".join(bad[:4])


# -- the workload ----------------------------------------------------------------------------------
def topics_for(n: int, prefix: str) -> list[str]:
    """Enough 4-partition topics that none of their partitions holds more than PER_PARTITION."""
    return [f"{prefix}-{k}" for k in range(max(1, math.ceil(n / (PARTITIONS * PER_PARTITION))))]


def fill_log(log: embedlog.Log, topics: list[str], n: int, headers: list[tuple[str, bytes]] | None) -> None:
    """``n`` keyed records, round-robin over ``topics``, each with ``headers``."""
    for t in topics:
        log.create_topic(t, partitions=PARTITIONS)
    p = log.producer()
    nt = len(topics)
    for i in range(n):
        p.send(topics[i % nt], value_of(i), key=KEYS[i % len(KEYS)], headers=headers)
        if i % 10_000 == 9_999:
            p.flush()
    p.flush()
    p.close()


Record = tuple[str, int, bytes | None, bytes | None, Any, int]  # topic, partition, key, value, headers, ts


def read_log(log: embedlog.Log, topics: list[str]) -> list[Record]:
    """Every record of ``topics`` as the log holds it (for the direct row)."""
    c = log.consumer(topics, auto_offset_reset="earliest", enable_auto_commit=False)
    total = sum(p.end_offset for t in topics for p in log.describe_topic(t).partitions)
    out: list[Record] = []
    while len(out) < total:
        for m in c.poll(timeout=1.0, max_records=10_000):
            out.append((m.topic, m.partition, m.key, m.value, list(m.headers), m.timestamp))
    c.close()
    return out


def local_ends(log: embedlog.Log, topics: list[str]) -> dict[tuple[str, int], int]:
    return {(t, p.partition): p.end_offset for t in topics for p in log.describe_topic(t).partitions}


# -- the rows --------------------------------------------------------------------------------------
def run_direct(bootstrap: str, records: list[Record], rename: Callable[[str], str]) -> dict[str, Any]:
    """confluent-kafka's idempotent producer sending ``records`` (same partition, key, value,
    headers, timestamp) straight to the cluster; clock from the first produce to the end of flush."""
    ck = _confluent()
    topics = sorted({rename(r[0]) for r in records})
    wait_topics(bootstrap, topics)
    errors: list[Any] = []
    p = ck.Producer(kafka_conf(bootstrap, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                             "delivery.report.only.error": True,
                                             "on_delivery": lambda err, _m: errors.append(err) if err else None}))
    p.list_topics(timeout=10)  # connected before the clock starts
    names = {t: rename(t) for t in {r[0] for r in records}}
    produce = p.produce
    t0 = time.perf_counter()
    for i, (t, q, k, v, h, ts) in enumerate(records):
        while True:
            try:
                produce(names[t], v, k, partition=q, timestamp=ts, headers=h)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10_000 == 9_999:
            p.poll(0)
    left = p.flush(60)
    seconds = time.perf_counter() - t0
    if left or errors:
        raise RuntimeError(f"direct: {left} records undelivered, delivery errors: {errors[:3]}")
    return {"seconds": seconds, "n": len(records), "topics": topics}


def run_consume(bootstrap: str, topics: list[str], n: int) -> dict[str, Any]:
    """A plain confluent-kafka consumer, configured as the down bridge configures its own,
    reading ``topics`` (holding ``n`` records) from the start and doing nothing with them:
    what librdkafka alone delivers, against which to read ``down``.  Clock: from assign
    (connected) to the last record."""
    from embedlog.bridge._kafka import LinkState, client_config  # noqa: PLC0415 - optional

    ck = _confluent()
    c = ck.Consumer(client_config(kafka_conf(bootstrap), "consumer", "bench-consume", LinkState().on_error))
    try:
        for t in topics:  # connected and every topic's leader known before the clock starts, as the down
            c.list_topics(t, timeout=10)  # row's Mirror does (a topic found later waits out a long-polling fetch)
        t0 = time.perf_counter()
        c.assign([ck.TopicPartition(t, r, ck.OFFSET_BEGINNING) for t in topics for r in range(PARTITIONS)])
        got = 0
        deadline = time.monotonic() + 300
        while got < n:
            got += sum(1 for m in c.consume(10_000, timeout=0.1) if m.error() is None)
            if time.monotonic() > deadline:
                raise TimeoutError(f"consume: {got:,} of {n:,} records within 300 s")
        seconds = time.perf_counter() - t0
    finally:
        c.close()
    return {"seconds": seconds, "n": n}


class Clock:
    """Watches a ``Mirror`` from another thread: when its link came up, when it caught up."""

    def __init__(self, mirror: Any, done: Callable[[], bool]) -> None:
        self.mirror = mirror
        self.done = done
        self.t_start = time.perf_counter()
        self.t_link: float | None = None

    def wait(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            if self.t_link is None and self.mirror.link.up:
                self.t_link = time.perf_counter()
            if self.t_link is not None and self.done():
                return time.perf_counter()
            st_error = self.mirror._error  # the error that stopped the mirror, if any
            if st_error is not None:
                raise st_error
            if time.monotonic() > deadline:
                raise TimeoutError(f"mirror {self.mirror.name!r} did not catch up within {timeout:g} s "
                                   f"(status {self.mirror.status()})")
            time.sleep(POLL_S)


def run_up(bootstrap: str, log: embedlog.Log, topics: list[str], name: str,
           rename: Callable[[str], str]) -> dict[str, Any]:
    """A Mirror(direction="up") from the start of ``topics`` until every record is in Kafka
    and checkpointed.  Clock: from the link coming up (and from Mirror start) to caught up."""
    from embedlog.bridge import Mirror  # noqa: PLC0415 - optional

    ends = local_ends(log, topics)
    n = sum(ends.values())
    targets = [rename(t) for t in topics]
    m = Mirror(log, kafka_conf(bootstrap), topics, direction="up", name=name,
               topic_map={t: rename(t) for t in topics})

    def done() -> bool:
        rows = m.status().partitions  # one snapshot: rows come from the engine, or from stored progress
        return bool(rows) and all(p.mirrored >= ends[(p.topic, p.partition)] for p in rows)

    clock = Clock(m, done)
    with m:
        t_end = clock.wait(300)
        st = m.status()  # for the error below, if Kafka turns out not to hold what the mirror says
    assert clock.t_link is not None
    bad = check_remote_counts(bootstrap, targets, {(rename(t), q): e for (t, q), e in ends.items()})
    if bad:
        raise RuntimeError(f"up: the mirror said it caught up, but the remote topics do not hold exactly the local "
                           f"records: {bad}; mirror status then: records handed to Kafka {st.records_mirrored:,} "
                           f"of {n:,}, lost {st.records_lost}, last error {st.last_error!r}, progress "
                           f"{[(p.topic, p.partition, p.mirrored, p.source_end) for p in st.partitions]}")
    return {"seconds": t_end - clock.t_link, "seconds_with_start": t_end - clock.t_start, "n": n}


def run_down(bootstrap: str, path: str, remote_topics: list[str], n: int, name: str) -> dict[str, Any]:
    """A Mirror(direction="down") of ``remote_topics`` (holding ``n`` records) into a fresh log
    (``durability="flush"``).  Clock: from the link coming up (and from Mirror start) to the
    last record committed in embedlog."""
    from embedlog.bridge import Mirror  # noqa: PLC0415 - optional

    marks = watermarks(bootstrap, remote_topics)
    if sum(h for _, h in marks.values()) != n or any(low for low, _ in marks.values()):
        raise RuntimeError(f"down: the source topics do not hold the {n:,} records: {marks}")
    with embedlog.open(path) as log:
        m = Mirror(log, kafka_conf(bootstrap), remote_topics, direction="down", name=name)

        def done() -> bool:
            return sum(p.mirrored for p in m.status().partitions) >= n

        clock = Clock(m, done)
        with m:
            t_end = clock.wait(300)
        assert clock.t_link is not None
        got = local_ends(log, remote_topics)
        if got != {k: h for k, (_, h) in marks.items()}:
            raise RuntimeError(f"down: the log holds {got}, Kafka {marks}")
    return {"seconds": t_end - clock.t_link, "seconds_with_start": t_end - clock.t_start, "n": n}


VARIANTS = {"h1": ("one header", HEADERS), "h0": ("no headers", None)}
PARTS = ("direct", "up", "consume", "down")


def throughput(root: str, n: int, runs: int, only: set[str], variants: list[str],
               progress: Callable[[str], None], freeze: bool = True) -> dict[str, Any]:
    """Rounds of direct / up / down per record variant, each round on a fresh cluster; direct
    and up alternate which goes first."""
    out: dict[str, Any] = {"topics": 0}
    with scratch_dir(root, "up-src") as src_dir, embedlog.open(src_dir) as log:
        sources: dict[str, tuple[list[str], list[Record]]] = {}
        for v in variants:
            out[v] = {part: {"runs": [], "errors": []} for part in PARTS}
            topics = topics_for(n, f"bench-{v}")
            out["topics"] = len(topics)
            fill_log(log, topics, n, VARIANTS[v][1])
            sources[v] = (topics, read_log(log, topics) if {"direct", "down"} & only else [])
        if freeze:
            # The records held for the direct row (~4 objects each) are the benchmark's, not a
            # mirror's: keep the full collections a mirror's allocations trigger from walking them
            # (a mirror process holds no such data; this cost 10-20% of down's time).
            gc.collect()
            gc.freeze()
        for r in range(runs):
            with Cluster() as cluster:
                bs = cluster.bootstrap
                for v in variants:
                    topics, records = sources[v]
                    order = ["direct", "up"] if r % 2 == 0 else ["up", "direct"]
                    for part in [*order, "consume", "down"]:
                        if (part not in only and not (part == "consume" and "down" in only)) or (
                                part in ("consume", "down") and "direct" not in only):
                            continue
                        try:
                            if part == "direct":
                                res = run_direct(bs, records, lambda t: f"direct-{t}")
                            elif part == "up":
                                res = run_up(bs, log, topics, f"bench-up-{v}-{r}", lambda t: f"up-{t}")
                            elif part == "consume":
                                res = run_consume(bs, [f"direct-{t}" for t in topics], n)
                            else:
                                with scratch_dir(root, "down") as d:
                                    res = run_down(bs, d, [f"direct-{t}" for t in topics], n,
                                                   f"bench-down-{v}-{r}")
                            res["round"] = r
                            out[v][part]["runs"].append(res)
                            extra = (f" ({rate(res['n'], res['seconds_with_start']):,.0f}/s from Mirror start)"
                                     if "seconds_with_start" in res else "")
                            progress(f"round {r + 1}/{runs}, {VARIANTS[v][0]}, {part}: "
                                     f"{rate(res['n'], res['seconds']):,.0f} records/s{extra}")
                        except Exception as exc:
                            out[v][part]["errors"].append(bench_core._error(exc))
                            progress(f"round {r + 1}/{runs}, {VARIANTS[v][0]}, {part}: ERROR {exc!r}")
    gc.unfreeze()
    return out


# -- catch-up after a link outage ------------------------------------------------------------------
class ProducerApp(threading.Thread):
    """An application producing ``rate`` records/s to the log (paced against the clock,
    ``flush()`` about every 10 ms), round-robin over ``topics``."""

    def __init__(self, log: embedlog.Log, topics: list[str], rate_s: float) -> None:
        super().__init__(name="bench-app", daemon=True)
        self.log = log
        self.topics = topics
        self.rate = rate_s
        self.sent = 0
        self.behind_max = 0  # most records the app was behind its schedule at a wake-up
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            p = self.log.producer()
            nt, nk = len(self.topics), len(KEYS)
            t0 = time.perf_counter()
            i = 0
            while not self.stop.is_set():
                due = int((time.perf_counter() - t0) * self.rate)
                self.behind_max = max(self.behind_max, due - i)
                while i < due:
                    p.send(self.topics[i % nt], value_of(i), key=KEYS[i % nk])
                    i += 1
                p.flush()
                self.sent = i
                time.sleep(0.01)
            p.close()
        except BaseException as exc:
            self.error = exc


class ControlProducer(threading.Thread):
    """A plain confluent-kafka idempotent producer (configured as the bridge configures its
    own: acks=all, message.timeout.ms=0, the same lowered timeouts) sending ``rate`` records/s
    through the same outage: what the mock cluster itself does to an idempotent producer."""

    def __init__(self, bootstrap: str, topic: str, rate_s: float) -> None:
        super().__init__(name="bench-control", daemon=True)
        ck = _confluent()
        self.topic = topic
        self.rate = rate_s
        self.sent = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.producer = ck.Producer(kafka_conf(bootstrap, **FLAKY_LINK_CONFIG, **{
            "enable.idempotence": True, "acks": "all", "linger.ms": 5, "message.timeout.ms": 0}))

    def run(self) -> None:
        try:
            t0 = time.perf_counter()
            i = 0
            while not self.stop.is_set():
                due = int((time.perf_counter() - t0) * self.rate)
                while i < due:
                    try:
                        self.producer.produce(self.topic, value_of(i), KEYS[i % len(KEYS)], i % PARTITIONS,
                                              headers=[("seq", b"%d" % i)])
                    except BufferError:
                        break
                    i += 1
                self.sent = i
                self.producer.poll(0)
                time.sleep(0.01)
        except BaseException as exc:
            self.error = exc

    def check(self, bootstrap: str) -> dict[str, Any]:
        """Flush, then read the control topic back: duplicates and missing records."""
        left = self.producer.flush(60)
        ck = _confluent()
        marks = watermarks(bootstrap, [self.topic])
        total = sum(h - low for low, h in marks.values())
        c = ck.Consumer(kafka_conf(bootstrap, **{"group.id": "bench-control", "enable.auto.commit": False}))
        c.assign([ck.TopicPartition(self.topic, q, marks[(self.topic, q)][0]) for q in range(PARTITIONS)])
        seen: dict[bytes, int] = {}
        n = 0
        deadline = time.monotonic() + 60
        while n < total and time.monotonic() < deadline:
            for m in c.consume(min(10_000, total - n), timeout=1.0):
                if m.error() is None:
                    n += 1
                    seq = dict(m.headers() or ())["seq"]
                    seen[seq] = seen.get(seq, 0) + 1
        c.close()
        return {"sent": self.sent, "unflushed": left, "remote_records": n,
                "duplicates": sum(v - 1 for v in seen.values()), "missing": self.sent - len(seen),
                "dropped_by_mock": sum(low for low, _ in marks.values())}


@contextlib.contextmanager
def _stopping_control(control: ControlProducer) -> Iterator[None]:
    try:
        yield
    finally:
        control.stop.set()
        if control.is_alive():
            control.join(10)


@contextlib.contextmanager
def _stopping(app: ProducerApp, stop_sampling: threading.Event, sampler: threading.Thread) -> Iterator[None]:
    """Stop the app and the sampler on the way out, also after an error."""
    try:
        yield
    finally:
        app.stop.set()
        stop_sampling.set()
        if app.is_alive():
            app.join(30)
        if sampler.is_alive():
            sampler.join(5)


def run_outage(root: str, outage_s: float, rate_s: float, pre_s: float, post_s: float,
               progress: Callable[[str], None], control_rate: float = 1_000) -> dict[str, Any]:
    """An up Mirror forwarding an app's ``rate_s`` records/s; the cluster process is stopped
    (SIGSTOP) for ``outage_s`` seconds and continued; the app keeps producing throughout."""
    from embedlog.bridge import SOURCE_HEADER, Mirror  # noqa: PLC0415 - optional

    expected_total = int(rate_s * (pre_s + outage_s + post_s + 30))
    topics = topics_for(expected_total, "edge")
    res: dict[str, Any] = {"outage_s": outage_s, "rate": rate_s, "topics": len(topics), "config": FLAKY_LINK_CONFIG,
                           "mirror_options": FLAKY_LINK_MIRROR}
    samples: list[tuple[float, int, bool, int]] = []  # (s since SIGSTOP, lag, link up, app records sent)
    with scratch_dir(root, "edge") as d, embedlog.open(d) as log, Cluster() as cluster:
        for t in topics:
            log.create_topic(t, partitions=PARTITIONS)
        m = Mirror(log, kafka_conf(cluster.bootstrap, **FLAKY_LINK_CONFIG), topics, direction="up", name="edge",
                   **FLAKY_LINK_MIRROR)
        app = ProducerApp(log, topics, rate_s)
        wait_topics(cluster.bootstrap, ["control"])
        control = ControlProducer(cluster.bootstrap, "control", control_rate)
        stop_sampling = threading.Event()
        t_ref = [time.perf_counter()]

        def sample() -> None:
            while not stop_sampling.is_set():
                st = m.status()
                samples.append((time.perf_counter() - t_ref[0], st.lag, st.link_up, app.sent))
                stop_sampling.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        with m, _stopping(app, stop_sampling, sampler), _stopping_control(control):
            m.wait_for_link(30)
            app.start()
            control.start()
            sampler.start()
            time.sleep(pre_s)
            progress(f"outage: app at {app.sent:,} records, lag {m.status().lag:,}; SIGSTOP the cluster "
                     f"for {outage_s:g} s")
            sent_at_stop = app.sent
            t_stop = time.perf_counter()
            t_ref[0] = t_stop
            cluster.pause()
            t_down = None
            while time.perf_counter() - t_stop < outage_s:
                if t_down is None and not m.link.up:
                    t_down = time.perf_counter() - t_stop
                time.sleep(0.05)
            ends_at_cont = local_ends(log, topics)
            sent_at_cont = app.sent
            lag_at_cont = m.status().lag
            cluster.resume()
            t_cont = time.perf_counter()
            progress(f"outage: SIGCONT; backlog {lag_at_cont:,} records (app at {sent_at_cont:,})")
            t_up = t_drained = None
            sent_at_drained = sent_at_cont
            deadline = t_cont + max(300, 5 * outage_s)
            while time.perf_counter() < deadline:
                if t_up is None and m.link.up:
                    t_up = time.perf_counter() - t_cont
                st = m.status()
                if all(p.mirrored >= ends_at_cont[(p.topic, p.partition)] for p in st.partitions):
                    t_drained = time.perf_counter() - t_cont
                    sent_at_drained = app.sent
                    break
                if m._error is not None:
                    raise m._error
                time.sleep(POLL_S)
            if t_drained is None:
                raise TimeoutError(f"outage: the backlog was not forwarded within {deadline - t_cont:.0f} s "
                                   f"(status {m.status()})")
            progress(f"outage: backlog forwarded {t_drained:.2f} s after SIGCONT")
            time.sleep(post_s)
            app.stop.set()
            app.join(30)
            if app.error is not None:
                raise app.error
            m.wait_caught_up(120)
            st_end = m.status()
            control.stop.set()
            control.join(10)
            control_check = control.check(cluster.bootstrap)
        ends = local_ends(log, topics)
        produced = sum(ends.values())
        progress(f"outage: {produced:,} records produced, all mirrored; reading the remote topics back")
        t_check = time.perf_counter()
        check = verify_remote(cluster.bootstrap, log, topics, SOURCE_HEADER, "edge:")
        progress(f"outage: read back in {time.perf_counter() - t_check:.1f} s: missing {check['missing']}, "
                 f"mismatched {check['mismatched']}, duplicates {check['duplicates']} (records the mirror handed "
                 f"to librdkafka: {st_end.records_mirrored:,} of {produced:,}); the control producer: missing "
                 f"{control_check['missing']}, duplicates {control_check['duplicates']}")
    res.update({
        "link_down_noticed_s": t_down, "link_up_noticed_s": t_up, "catch_up_s": t_drained,
        "backlog": lag_at_cont, "produced_during_outage": sent_at_cont - sent_at_stop, "produced": produced,
        "forwarded": st_end.records_mirrored, "app_behind_max": app.behind_max,
        "app_rate_outage": (sent_at_cont - sent_at_stop) / (t_cont - t_stop),
        "app_rate_catch_up": (sent_at_drained - sent_at_cont) / t_drained if t_drained else float("nan"),
        "lag_peak": max((s[1] for s in samples), default=0), "check": check, "control": control_check,
        "control_rate": control_rate,
        "samples": [(round(t, 2), lag, up, sent) for t, lag, up, sent in samples]})
    return res


def verify_remote(bootstrap: str, log: embedlog.Log, topics: list[str], header: str, prefix: str) -> dict[str, Any]:
    """Read every remote partition from its start and compare it with the local partition of
    the same number: each local record present exactly once, in order, key/value/timestamp equal."""
    ck = _confluent()
    c = ck.Consumer(kafka_conf(bootstrap, **{"group.id": "bench-verify", "enable.auto.commit": False,
                                             "enable.partition.eof": False}))
    out: dict[str, Any] = {"missing": 0, "duplicates": 0, "out_of_order": 0, "mismatched": 0, "foreign": 0,
                           "remote_records": 0, "dropped_by_mock": 0, "examples": []}
    marks = watermarks(bootstrap, topics)
    try:
        for t in topics:  # a topic at a time: its 4 partitions' records in memory
            remote: dict[int, list[tuple[int, int, bytes | None, bytes | None, int]]] = {q: [] for q in
                                                                                       range(PARTITIONS)}
            left = {q: marks[(t, q)][1] - marks[(t, q)][0] for q in range(PARTITIONS)}
            out["dropped_by_mock"] += sum(marks[(t, q)][0] for q in range(PARTITIONS))
            c.assign([ck.TopicPartition(t, q, marks[(t, q)][0]) for q in range(PARTITIONS)])
            deadline = time.monotonic() + 120
            while sum(left.values()) and time.monotonic() < deadline:
                for msg in c.consume(min(10_000, sum(left.values())), timeout=1.0):
                    if msg.error() is not None:
                        continue
                    q = msg.partition()
                    left[q] -= 1
                    src = next((v for k, v in msg.headers() or () if k == header), None)
                    parts = src.decode().rsplit(":", 2) if src is not None and src.decode().startswith(prefix) else []
                    if not parts or int(parts[1]) != q:
                        out["foreign"] += 1
                        continue
                    remote[q].append((int(parts[2]), msg.offset(), msg.key(), msg.value(), msg.timestamp()[1]))
            c.unassign()
            for q, recs in remote.items():
                out["remote_records"] += len(recs)
                for a, b in itertools.pairwise(recs):
                    if b[0] <= a[0]:
                        out["out_of_order"] += 1
                        if len(out["examples"]) < 10:
                            out["examples"].append(f"{t}[{q}]: source offset {b[0]} at remote offset {b[1]} "
                                                   f"follows source offset {a[0]} at {a[1]}")
                seen: dict[int, tuple[bytes | None, bytes | None, int]] = {}
                for o, _ro, k, v, ts in recs:
                    if o in seen:
                        out["duplicates"] += 1
                    seen[o] = (k, v, ts)
                lc = log.consumer(None, auto_offset_reset="earliest", enable_auto_commit=False)
                lc.assign([embedlog.TopicPartition(t, q)])
                end = log.describe_topic(t).partitions[q].end_offset
                got = 0
                while got < end:
                    for lm in lc.poll(timeout=1.0, max_records=10_000):
                        got += 1
                        r = seen.get(lm.offset)
                        if r is None:
                            out["missing"] += 1
                        elif r != (lm.key, lm.value, lm.timestamp):
                            out["mismatched"] += 1
                lc.close()
    finally:
        c.close()
    out["ok"] = not any(out[k] for k in ("missing", "duplicates", "out_of_order", "mismatched", "foreign",
                                         "dropped_by_mock"))
    return out


# -- report ----------------------------------------------------------------------------------------
def _rates(res: dict[str, Any], key: str = "seconds") -> list[float]:
    return [rate(r["n"], r[key]) for r in res["runs"]]


def paired_ratio(data: dict[str, Any], part: str) -> float:
    """Median over rounds of (part's rate ÷ direct's rate in the same round), one variant."""
    direct = {r["round"]: rate(r["n"], r["seconds"]) for r in data["direct"]["runs"]}
    ratios = [rate(r["n"], r["seconds"]) / direct[r["round"]] for r in data[part]["runs"] if r["round"] in direct]
    return median(ratios)


THROUGHPUT_HEADER = ["records", "path", "records/s (connected)", "records/s (from Mirror start)", "÷ direct",
                     "target", "met?"]
HOW = {
    "direct": "confluent-kafka `Producer` (`enable.idempotence`, `acks=all`, `linger.ms=5`, "
              "`delivery.report.only.error`, as the bridge sets them) producing the records the log holds (same "
              "partition, key, value, headers, timestamp) straight to the cluster; clock from the first "
              "`produce()` to the end of `flush()`.",
    "up": "`Mirror(direction=\"up\")` from the start of the embedlog topics (already holding the records) "
          "until every partition's checkpointed progress reaches its end (everything acknowledged by Kafka and "
          "committed as the mirror's group offsets). It adds the `embedlog.source` header to every record.",
    "consume": "control for down: a plain confluent-kafka `Consumer`, configured as the down bridge configures "
               "its own, reading the direct row's topics from the start and doing nothing with the records "
               "(`consume(10000)` calls); clock from `assign()` (connected) to the last record: what librdkafka "
               "alone delivers, the ceiling down works under.",
    "down": "`Mirror(direction=\"down\")` of the direct row's Kafka topics into a fresh log "
            "(`durability=\"flush\"`) until every record is committed in embedlog.",
}


def throughput_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    for v, (label, _h) in VARIANTS.items():
        if v not in data:
            continue
        for part in PARTS:
            res = data[v][part]
            if not res["runs"]:
                err = res["errors"][0]["error"][:300] if res["errors"] else "not run"
                rows.append([label, part, "ERROR" if res["errors"] else "-", "-", "-", "-", err])
                continue
            connected = median(_rates(res))
            started = median(_rates(res, "seconds_with_start")) if "seconds_with_start" in res["runs"][0] else None
            note = f" (ERROR in {len(res['errors'])} round(s): {res['errors'][0]['error'][:200]})" if res[
                "errors"] else ""
            if part == "direct":
                rows.append([label, part, num(connected) + note, "-", "100%", "-", "-"])
                continue
            ratio = paired_ratio(data[v], part) if data[v]["direct"]["runs"] else float("nan")
            if part == "consume":  # a control: what librdkafka alone delivers
                rows.append([label, part, num(connected) + note, "-", pct(ratio), "-", "-"])
                continue
            target = TARGETS[f"{part}_direct"]
            rows.append([label, part, num(connected) + note, num(started), pct(ratio), f">= {pct(target)}",
                         verdict(None if math.isnan(ratio) else ratio >= target)])
    return rows


OUTAGE_HEADER = ["outage", "app rate: target / during outage / during catch-up", "backlog at SIGCONT",
                 "link down noticed (after SIGSTOP)", "link up noticed (after SIGCONT)",
                 "catch-up (SIGCONT → backlog in Kafka)", "forwarding rate during catch-up"]
CHECK_HEADER = ["sender", "records sent", "records in Kafka", "missing", "duplicates", "order breaks",
                "key/value/timestamp mismatched", "nothing lost?"]


def outage_rows(res: dict[str, Any]) -> list[list[str]]:
    if "error" in res:
        return [[f"{res.get('outage_s', '?')} s", "ERROR: " + res["error"][:300], "-", "-", "-", "-", "-"]]
    drain = (res["backlog"] + res["rate"] * res["catch_up_s"]) / res["catch_up_s"] if res["catch_up_s"] else None

    def secs(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f} s"

    return [[f"{res['outage_s']:g} s", f"{num(res['rate'])} / {num(res['app_rate_outage'])} / "
             f"{num(res['app_rate_catch_up'])}", num(res["backlog"]), secs(res["link_down_noticed_s"]),
             secs(res["link_up_noticed_s"]), secs(res["catch_up_s"]), f"{num(drain)}/s"]]


def check_rows(res: dict[str, Any]) -> list[list[str]]:
    if "error" in res:
        return []
    c, k = res["check"], res["control"]
    lossless = not (c["missing"] or c["mismatched"] or c["foreign"] or c["dropped_by_mock"])
    example = f"; e.g. {c['examples'][0]}" if c.get("examples") else ""
    return [
        ["Mirror(direction=\"up\"), the app's records", num(res["produced"]), num(c["remote_records"]),
         num(c["missing"]), f"{num(c['duplicates'])} (records handed to librdkafka: {num(res['forwarded'])})",
         num(c["out_of_order"]) + example, num(c["mismatched"]),
         verdict(lossless)],
        [f"control: plain confluent-kafka idempotent producer, {num(res['control_rate'])}/s", num(k["sent"]),
         num(k["remote_records"]), num(k["missing"]), num(k["duplicates"]), "-", "-",
         verdict(not (k["missing"] or k["dropped_by_mock"] or k["unflushed"]))],
    ]


def summary(data: dict[str, Any]) -> dict[str, float]:
    """Headline figures (for a report)."""
    out: dict[str, float] = {}
    tp = data.get("throughput") or {}
    for v in VARIANTS:
        for part in PARTS:
            if v in tp and tp[v][part]["runs"]:
                out[f"{part}_{v}_rate"] = median(_rates(tp[v][part]))
                if part != "direct" and tp[v]["direct"]["runs"]:
                    out[f"{part}_{v}_direct"] = paired_ratio(tp[v], part)
    o = data.get("outage") or {}
    if o.get("catch_up_s") is not None:
        out["catch_up_s"] = o["catch_up_s"]
    return out


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller run (~1 min)")
    ap.add_argument("--records", type=int, help="records per throughput row (default 240,000; --quick 120,000)")
    ap.add_argument("--runs", type=int, help="rounds of the throughput rows, medians reported (default 5; --quick 2)")
    ap.add_argument("--outage", type=float, help="seconds the cluster is stopped (default 60; --quick 10)")
    ap.add_argument("--rate", type=float, default=10_000, help="the app's records/s in the outage row (10,000)")
    ap.add_argument("--only", default="direct,up,down,outage", help="comma-separated parts to run")
    ap.add_argument("--variants", default="h1,h0", help="record variants of the throughput rows: h1 (one header "
                                                         "per record), h0 (no headers); default both")
    ap.add_argument("--no-gc-freeze", action="store_true",
                    help="leave the records held for the direct row in the garbage collector's sight (by "
                         "default they are frozen after setup: a mirror process holds no such data)")
    ap.add_argument("--dir", help="scratch directory (default: a new temporary directory, removed afterwards)")
    ap.add_argument("--out", default=str(HERE / "results"), help="where to write bridge.md and bridge.json")
    args = ap.parse_args(argv)
    args.records = args.records or (120_000 if args.quick else 240_000)
    args.runs = args.runs or (2 if args.quick else 5)
    args.outage = args.outage if args.outage is not None else (10.0 if args.quick else 60.0)
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = args.only - {"direct", "up", "down", "outage"}
    if unknown:
        ap.error(f"unknown part(s): {sorted(unknown)}")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not args.variants or set(args.variants) - set(VARIANTS):
        ap.error(f"--variants takes a comma-separated subset of {','.join(VARIANTS)}")
    return args


@contextlib.contextmanager
def _root(path: str | None) -> Iterator[str]:
    root = path or tempfile.mkdtemp(prefix="embedlog-bench-bridge-")
    os.makedirs(root, exist_ok=True)
    try:
        yield root
    finally:
        if not path:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    progress = progress_printer(started)

    data: dict[str, Any] = {"environment": bench_core._environment(), "targets": TARGETS,
                            "args": {k: sorted(v) if isinstance(v, set) else v for k, v in vars(args).items()},
                            "how": HOW,
                            "throughput": None, "outage": None}
    try:
        ck = _confluent()
        data["environment"]["confluent_kafka"] = f"{ck.version()[0]} (librdkafka {ck.libversion()[0]})"
        skipped = ""
    except ImportError as exc:
        skipped = f"confluent-kafka is not importable ({exc}); pip install 'embedlog[bridge]'"
        progress(f"skipping everything: {skipped}")
    if not skipped:
        with _root(args.dir) as root:
            if {"direct", "up", "down"} & args.only:
                data["throughput"] = throughput(root, args.records, args.runs, args.only, args.variants,
                                                progress, freeze=not args.no_gc_freeze)
            if "outage" in args.only:
                try:
                    data["outage"] = run_outage(root, args.outage, args.rate, 3.0 if args.quick else 5.0,
                                                2.0 if args.quick else 3.0, progress)
                except Exception as exc:
                    data["outage"] = {"outage_s": args.outage, **bench_core._error(exc)}
                    progress(f"outage: ERROR {exc!r}")
    env = data["environment"]
    env["loadavg_end"] = bench_core._load()
    env["seconds"] = round(time.perf_counter() - started, 1)
    data["summary"] = summary(data)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    md = [f"# embedlog Kafka bridge benchmark{' (--quick)' if args.quick else ''}", "",
          f"{env['date']} · git {env['git'] or '?'} · Python {env['python']} · py-lmdb {env['lmdb']} · "
          f"{env['cpus']} CPUs · {env['platform']} · confluent-kafka {env.get('confluent_kafka', '-')}", "",
          f"Load average at start {env['loadavg_start']}, at end {env['loadavg_end']} (other work on this machine "
          f"moves absolute figures; compare ratios within one run); total {env['seconds']:.0f} s. "
          f"Command: `python benchmarks/bench_bridge.py {command}`", ""]
    if skipped:
        md += [f"**Skipped**: {skipped}", ""]
    tp = data["throughput"]
    if tp:
        md += [f"## Mirror throughput against confluent-kafka producing straight to the cluster "
               f"({args.records:,} records, median of {args.runs} round(s))", "",
               f"librdkafka's mock cluster (one broker, in memory) in a subprocess of its own, a fresh one per "
               f"round. The records: key `key-{{i % 1000}}`, a {VALUE_SIZE}-byte value and either one header "
               f"(`app: bench`) or none, spread round-robin over {tp['topics']} embedlog topic(s) of "
               f"{PARTITIONS} partitions (the mock keeps only ~5 MiB a partition). Each round runs, per variant, "
               "direct and up (alternating which goes first), then consume and down (reading the direct row's "
               "topics). '÷ direct' is the median over rounds of the ratio to direct within a round. Every row but "
               "consume checks that the target holds exactly the source's records per partition. "
               + ("The records this process holds for the direct row are frozen out of the garbage collector's "
                  "sight after setup (`gc.freeze()`; a mirror process holds no such data)."
                  if not args.no_gc_freeze else "Run with `--no-gc-freeze`: the records this process holds for the "
                  "direct row stay in the garbage collector's sight."), "",
               *(f"- **{part}**: {HOW[part]}" for part in PARTS), "",
               "*records/s (connected)*: clock from the moment the Mirror's link is up (its Kafka clients "
               f"connected; polled every {POLL_S * 1000:g} ms) to caught up; *from Mirror start*: from entering "
               "the `Mirror` (creating the clients, metadata, creating the remote topics, resuming).", "",
               table(THROUGHPUT_HEADER, throughput_rows(tp)), ""]
    if data["outage"]:
        o = data["outage"]
        md += ["## Catch-up after a link outage", "",
               f"An app thread produces {num(args.rate)} records/s (paced, `flush()` every ~10 ms, "
               f"{o.get('topics', '?')} topics of {PARTITIONS} partitions) to a log while a "
               "Mirror(direction=\"up\") forwards them to the mock cluster (in its own process). After a warm-up the "
               f"cluster process is stopped (`SIGSTOP`) for {args.outage:g} s and continued (`SIGCONT`); the app "
               "keeps producing throughout. Catch-up: from `SIGCONT` until every record produced before it is "
               "acknowledged by Kafka and checkpointed. The Mirror runs with lowered timeouts, as a deployment "
               "on a flaky link would set them: librdkafka "
               + ", ".join(f"`{k}={v}`" for k, v in FLAKY_LINK_CONFIG.items()) + "; Mirror "
               + ", ".join(f"`{k}={v}`" for k, v in FLAKY_LINK_MIRROR.items())
               + ". Then the app stops, the mirror catches up, and every remote partition is read back with a "
               "plain confluent-kafka consumer and compared with its local partition (the `embedlog.source` "
               "header says which local record each remote record is).", "",
               table(OUTAGE_HEADER, outage_rows(o)), "",
               "Read back from Kafka (every remote partition against its local partition; *order breaks*: "
               "places where a source offset does not follow the one before):", "",
               table(CHECK_HEADER, check_rows(o)), "",
               "The control row is a plain confluent-kafka idempotent producer (no embedlog) sending through the "
               "same outage with the same settings. librdkafka's mock cluster checks producer sequence numbers "
               "only for transactional producers (`rd_kafka_mock_validate_records` returns early without a "
               "`transactional.id`), so a produce request that was in flight when the cluster froze, timed out "
               "and was retried by librdkafka is written twice; a real broker acknowledges such a retry as a "
               "duplicate without writing it. When the mirror handed each record to librdkafka exactly once "
               "(`status().records_mirrored` equals the records produced) and the control row shows duplicates "
               "too, the bridge's duplicates are this artefact of the mock, not the bridge's own.", ""]
    text = "\n".join(md)
    write_results(args.out, "bridge", args.quick, text, data, progress)
    errors = (tp and any(tp[v][p]["errors"] for v in VARIANTS if v in tp for p in PARTS)) or (
        data["outage"] and "error" in data["outage"])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
