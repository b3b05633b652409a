"""The Kafka-client shim benchmark of embedlog (issue 4): time from an empty test to the first
consumed message with the ``embedlog_kafka`` fixture, and produce/consume throughput through
each shim, beside confluent-kafka on librdkafka's mock cluster and mockafka-py.

    python benchmarks/bench_compat.py [--quick] [--records N] [--runs K] [--tests K] [--processes P]

Prints Markdown tables and writes ``benchmarks/results/compat.md`` and ``compat.json``
(``compat-quick.*`` with ``--quick``, as ``bench_core.py`` does).  See
``benchmarks/README.md`` for what each row means.  Nothing is installed by this script: a
client library or shim that cannot be imported is skipped and its row says why.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_core
from report import num, progress_printer, table, times, verdict, write_results
from workload import VALUE, chunks, median, percentile, rate, scratch_dir

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog

HERE = Path(__file__).resolve().parent
TARGETS = {"first_message_ms": 20}
PARTITIONS = 4  # every throughput topic (librdkafka's mock cluster auto-creates 4)
BATCH = 10_000  # flush every BATCH records; consume up to BATCH records a call
MOCK_CAP = 100_000  # the mock cluster keeps ~5 MB a partition: older records vanish beyond this
MOCK_TESTS = {"mock_group": 2, "mock_assign": 5}  # tests per session at most: each takes 1-4 s
BOOTSTRAP = "bench-kafka:9092"  # any value: the shims find their log through the registry


def _importable(module: str) -> str:
    """"" if ``module`` imports, else why not."""
    try:
        if importlib.util.find_spec(module.split(".", maxsplit=1)[0]) is None:
            return f"{module} is not installed"
        importlib.import_module(module)
    except Exception as exc:  # any failure to import means: skip, and say why
        return f"{module} not importable: {type(exc).__name__}: {exc}"
    return ""


# -- time to the first consumed message -------------------------------------------------------------
# Each scenario is a generated test file run by pytest in a subprocess: K copies of one test
# (parametrized) in one pytest session, so the first test of the session pays the imports that
# the fixture does on first use (cold) and the others show a test suite's steady state.  A
# conftest hook notes the clock when pytest starts setting the test up (before any fixture) and
# how long its teardown takes; the test notes when its body starts and when it holds the first
# message.  Everything the application does (creating the clients, the topic, the group join)
# is inside the timed part.

CONFTEST = '''\
import json
import os
import time

import pytest

OUT = os.environ["EMBEDLOG_BENCH_FIRST_OUT"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    item.user_properties.append(("setup_start", time.perf_counter()))
    yield
    item.user_properties.append(("setup_end", time.perf_counter()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    t0 = time.perf_counter()
    yield
    row = dict(item.user_properties)
    row["teardown_s"] = time.perf_counter() - t0
    row["test"] = item.nodeid
    with open(OUT, "a") as f:
        f.write(json.dumps(row) + "\\n")
'''

HEADER = '''\
import asyncio
import time

import pytest
{imports}

DEADLINE_S = 60.0


def note(request, t0, t1):
    request.node.user_properties += [("body_start", t0), ("first_message", t1)]


@pytest.mark.parametrize("i", range({tests}))
def test_first_message(i, request{fixture}):
    t0 = time.perf_counter()
'''

# name -> (row label, modules the test imports, fixture, body: indented 4, must call note())
FIRST_SCENARIOS: dict[str, tuple[str, list[str], str, str]] = {
    "fixture_confluent": (
        "embedlog_kafka: confluent_kafka Producer + group Consumer", ["confluent_kafka"], "embedlog_kafka",
        '''\
    p = Producer({"bootstrap.servers": "localhost:9092"})
    p.produce("orders", b"order-1", key=b"user-1")
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": "localhost:9092", "group.id": "billing", "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    msg = c.poll(DEADLINE_S)
    while msg is not None and msg.error() is not None:  # events (none expected) are not the message
        msg = c.poll(DEADLINE_S)
    note(request, t0, time.perf_counter())
    assert msg is not None and msg.value() == b"order-1" and msg.key() == b"user-1", msg
    assert type(c).__module__.startswith("embedlog."), type(c)  # the fixture's stand-in, not librdkafka
    c.close()
'''),
    "fixture_kafka_python": (
        "embedlog_kafka: kafka-python KafkaProducer + group KafkaConsumer", ["kafka"], "embedlog_kafka",
        '''\
    p = KafkaProducer(bootstrap_servers="localhost:9092")
    p.send("orders", b"order-1", key=b"user-1")
    p.flush(10)
    c = KafkaConsumer("orders", bootstrap_servers="localhost:9092", group_id="billing",
                      auto_offset_reset="earliest")
    deadline = time.monotonic() + DEADLINE_S
    got = {}
    while not got and time.monotonic() < deadline:
        got = c.poll(timeout_ms=1000, max_records=1)
    note(request, t0, time.perf_counter())
    (records,) = got.values()
    assert records[0].value == b"order-1" and records[0].key == b"user-1", records
    assert type(c).__module__.startswith("embedlog."), type(c)
    c.close()
    p.close()
'''),
    "fixture_aiokafka": (
        "embedlog_kafka: aiokafka AIOKafkaProducer + group AIOKafkaConsumer (asyncio.run)", ["aiokafka"],
        "embedlog_kafka",
        '''\
    async def scenario():
        p = AIOKafkaProducer(bootstrap_servers="localhost:9092")
        await p.start()
        await p.send_and_wait("orders", b"order-1", key=b"user-1")
        await p.stop()
        c = AIOKafkaConsumer("orders", bootstrap_servers="localhost:9092", group_id="billing",
                             auto_offset_reset="earliest")
        await c.start()
        msg = await asyncio.wait_for(c.getone(), DEADLINE_S)
        t1 = time.perf_counter()
        assert type(c).__module__.startswith("embedlog."), type(c)
        await c.stop()
        return msg, t1

    msg, t1 = asyncio.run(scenario())
    note(request, t0, t1)
    assert msg.value == b"order-1" and msg.key == b"user-1", msg
'''),
    "native": (
        "embedlog_log: embedlog's own API (create_topic, send, group consumer)", [], "embedlog_log",
        '''\
    embedlog_log.create_topic("orders", partitions=1)
    p = embedlog_log.producer()
    p.send("orders", b"order-1", key=b"user-1")
    p.flush()
    c = embedlog_log.consumer(["orders"], group="billing", auto_offset_reset="earliest")
    msgs = c.poll(timeout=DEADLINE_S)
    note(request, t0, time.perf_counter())
    assert msgs and msgs[0].value == b"order-1", msgs
    c.close()
    p.close()
'''),
    "mock_group": (
        "confluent-kafka on librdkafka's mock cluster: Producer + group Consumer", ["confluent_kafka"], "",
        '''\
    p = Producer({"test.mock.num.brokers": 1, "log_level": 4})  # starts the mock cluster
    p.produce("orders", b"order-1", key=b"user-1")
    assert p.flush(30) == 0
    brokers = ",".join(f"{b.host}:{b.port}" for b in p.list_topics(timeout=10).brokers.values())
    c = Consumer({"bootstrap.servers": brokers, "group.id": "billing", "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    deadline = time.monotonic() + DEADLINE_S
    msg = None
    while (msg is None or msg.error() is not None) and time.monotonic() < deadline:
        msg = c.poll(1.0)
    note(request, t0, time.perf_counter())
    assert msg is not None and msg.error() is None and msg.value() == b"order-1", msg
    assert not type(c).__module__.startswith("embedlog."), type(c)  # the real client
    c.close()
'''),
    "mock_assign": (
        "confluent-kafka on librdkafka's mock cluster: Producer + assign() (no group join)", ["confluent_kafka"], "",
        '''\
    p = Producer({"test.mock.num.brokers": 1, "log_level": 4})
    p.produce("orders", b"order-1", key=b"user-1")
    assert p.flush(30) == 0
    md = p.list_topics("orders", timeout=10)
    brokers = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    c = Consumer({"bootstrap.servers": brokers, "group.id": "billing", "enable.auto.commit": False})
    c.assign([TopicPartition("orders", n, OFFSET_BEGINNING) for n in md.topics["orders"].partitions])
    deadline = time.monotonic() + DEADLINE_S
    msg = None
    while (msg is None or msg.error() is not None) and time.monotonic() < deadline:
        msg = c.poll(1.0)
    note(request, t0, time.perf_counter())
    assert msg is not None and msg.error() is None and msg.value() == b"order-1", msg
    c.close()
'''),
    "mockafka": (
        "mockafka-py: FakeAdminClientImpl topic + FakeProducer + FakeConsumer", ["mockafka"], "",
        '''\
    FakeAdminClientImpl(clean=True).create_topics([NewTopic("orders", num_partitions=1)])
    p = FakeProducer({"bootstrap.servers": "localhost:9092"})
    p.produce("orders", b"order-1", key=b"user-1", partition=0)  # mockafka needs the partition
    p.flush()
    c = FakeConsumer({"bootstrap.servers": "localhost:9092", "group.id": "billing"})
    c.subscribe(["orders"])
    msg = c.poll(1.0)
    note(request, t0, time.perf_counter())
    assert msg is not None and msg.value() == b"order-1", msg
    c.close()
'''),
    "empty": (
        "empty test (no fixture, no client): pytest's own cost", [], "",
        '''\
    note(request, t0, time.perf_counter())
'''),
}
IMPORTS = {
    "fixture_confluent": "from confluent_kafka import Consumer, Producer",
    "fixture_kafka_python": "from kafka import KafkaConsumer, KafkaProducer",
    "fixture_aiokafka": "from aiokafka import AIOKafkaConsumer, AIOKafkaProducer",
    "mock_group": "from confluent_kafka import Consumer, Producer",
    "mock_assign": "from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition",
    "mockafka": "from confluent_kafka.admin import NewTopic\n"
                "from mockafka import FakeAdminClientImpl, FakeConsumer, FakeProducer",
}
FIXTURE_ROWS = ("fixture_confluent", "fixture_kafka_python", "fixture_aiokafka")
SHIM_OF = {"fixture_confluent": "embedlog.compat.confluent_kafka", "fixture_kafka_python":
           "embedlog.compat.kafka_python", "fixture_aiokafka": "embedlog.compat.aiokafka"}


def _test_source(name: str, tests: int) -> str:
    _label, _mods, fixture, body = FIRST_SCENARIOS[name]
    head = HEADER.format(imports=IMPORTS.get(name, ""), tests=tests, fixture=f", {fixture}" if fixture else "")
    return head + body


def _skip_reason(name: str) -> str:
    for module in FIRST_SCENARIOS[name][1]:
        why = _importable(module)
        if why:
            return f"{why} (the test's application code imports it)"
    if name in SHIM_OF:
        why = _importable(SHIM_OF[name])
        if why:
            return f"shim {why}"
    return ""


def first_message(root: str, name: str, tests: int, processes: int,
                  progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the scenario's test file ``processes`` times (``tests`` tests each); per-test timings."""
    out: dict[str, Any] = {"tests": tests, "processes": processes, "runs": [], "skipped": _skip_reason(name)}
    if out["skipped"]:
        progress(f"first message, {name}: skipped ({out['skipped']})")
        return out
    with scratch_dir(root, f"first-{name}") as d:
        Path(d, "conftest.py").write_text(CONFTEST)
        Path(d, "pytest.ini").write_text("[pytest]\n")  # this directory is the rootdir: no other config
        Path(d, f"test_{name}.py").write_text(_test_source(name, tests))
        for k in range(processes):
            rows_path = Path(d, f"rows-{k}.jsonl")
            env = dict(os.environ, EMBEDLOG_BENCH_FIRST_OUT=str(rows_path))
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                                   f"test_{name}.py"], cwd=d, env=env, capture_output=True, text=True, timeout=900,
                                  check=False)
            wall = time.perf_counter() - t0
            rows = [json.loads(line) for line in rows_path.read_text().splitlines()] if rows_path.exists() else []
            run: dict[str, Any] = {"wall_s": wall, "rc": proc.returncode, "tests": []}
            for r in rows:
                if "first_message" not in r:
                    continue
                run["tests"].append({
                    "to_first_ms": (r["first_message"] - r["setup_start"]) * 1e3,
                    "setup_ms": (r["setup_end"] - r["setup_start"]) * 1e3,
                    "body_ms": (r["first_message"] - r["body_start"]) * 1e3,
                    "teardown_ms": r["teardown_s"] * 1e3})
            if proc.returncode != 0 or len(run["tests"]) != tests:
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-25:]
                run["error"] = f"pytest exit code {proc.returncode}, {len(run['tests'])}/{tests} tests timed: " + \
                    "\n".join(tail)
            out["runs"].append(run)
            ms = [t["to_first_ms"] for t in run["tests"]]
            progress(f"first message, {name}, process {k + 1}/{processes}: first test {num(ms[0], 1) if ms else '-'}"
                     f" ms, median {num(median(ms), 1)} ms, pytest wall {wall:.2f} s"
                     + (" ERROR" if "error" in run else ""))
    return out


def first_summary(res: dict[str, Any]) -> dict[str, float]:
    """Cold (first test of each session: median), later tests pooled: median / p90 / max."""
    nan = float("nan")
    runs = [r for r in res.get("runs", []) if r["tests"]]
    if not runs:
        return {}
    cold = [r["tests"][0]["to_first_ms"] for r in runs]
    later = [t for r in runs for t in r["tests"][1:]] or [r["tests"][0] for r in runs]
    ms = [t["to_first_ms"] for t in later]
    return {"cold_ms": median(cold), "median_ms": median(ms), "p90_ms": percentile(ms, 90), "max_ms": max(ms),
            "setup_ms": median([t["setup_ms"] for t in later]), "body_ms": median([t["body_ms"] for t in later]),
            "teardown_ms": median([t["teardown_ms"] for t in later]),
            "wall_s": median([r["wall_s"] for r in res["runs"]]), "samples": len(ms) or nan}


def first_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    ref = first_summary(data.get("fixture_confluent", {})).get("median_ms", float("nan"))
    for name, (label, *_rest) in FIRST_SCENARIOS.items():
        res = data.get(name)
        if res is None:
            continue
        if res["skipped"]:
            rows.append([label, "-", "skipped", "-", "-", "-", "-", "-", "-", res["skipped"][:160]])
            continue
        s = first_summary(res)
        errors = [r["error"] for r in res["runs"] if "error" in r]
        if not s:
            rows.append([label, "-", "ERROR", "-", "-", "-", "-", "-", "-", (errors or ["no timings"])[0][-300:]])
            continue
        target = name in FIXTURE_ROWS or name == "native"
        cold_ok = "yes" if s["cold_ms"] < TARGETS["first_message_ms"] else "NO"
        met = verdict(s["median_ms"] < TARGETS["first_message_ms"], f"first test of a session: {cold_ok}") \
            if target else "-"
        rows.append([label, f"{res['tests']} x {res['processes']}", num(s["cold_ms"], 1),
                     f"{num(s['median_ms'], 1)} / {num(s['p90_ms'], 1)} / {num(s['max_ms'], 1)}",
                     f"{num(s['setup_ms'], 1)} + {num(s['body_ms'], 1)}", num(s["teardown_ms"], 1),
                     f"{s['wall_s']:.2f}", times(s["median_ms"] / ref) if name != "empty" else "-",
                     f"< {TARGETS['first_message_ms']} ms" if target else "-",
                     met if not errors else f"{met}; ERROR: {errors[0][-200:]}"])
    return rows


FIRST_HEADER = ["scenario", "tests x sessions", "first test of a session (ms)", "later tests: median / p90 / max (ms)",
                "fixture setup + body (ms, median)", "teardown (ms)", "pytest process (s)",
                "÷ embedlog_kafka confluent", "target", "met? (median)"]


# -- throughput through each shim ------------------------------------------------------------------
# Each function produces ``n`` keyed 100-byte records (key ``key-{i % 1000}``) to a fresh
# 4-partition topic, flushing every 10,000, then a fresh group consumer (auto offset reset
# earliest, no auto-commit) reads them all, up to 10,000 records a call.  It returns
# (produce seconds, consume seconds, records in the consume clock).

Result = tuple[float, float, int]
#: per row, per run: how often a flush() returned before every delivery report / future was done
ANOMALIES: dict[str, list[tuple[int, int]]] = {"confluent_shim": [], "kafka_python_shim": []}
ANOMALY_TEXT = {
    "confluent_shim": "flush() returned > 0 (delivery reports still to come) after {k} of {calls} flushes; then "
                      "called again until 0 (librdkafka returns > 0 only on timeout)",
    "kafka_python_shim": "after {k} of {calls} flush() calls some futures were not done yet (kafka-python: every "
                         "future sent before flush() is done when it returns)",
}


def _fresh_log(d: str) -> embedlog.Log:
    log = embedlog.open(d, durability="none", maintenance_interval_ms=None)  # as the embedlog_kafka fixture's
    log.create_topic("bench", partitions=PARTITIONS)
    return log


def _check(got: int, n: int, last: object, what: str) -> None:
    if got != n:
        raise RuntimeError(f"{what}: consumed {got} records, expected {n}")
    if last != VALUE:
        raise RuntimeError(f"{what}: last value consumed is wrong: {last!r}")


def run_native(d: str, n: int) -> Result:
    """embedlog's own API: ``send`` + ``flush``; ``poll(max_records=10,000)`` of a group consumer."""
    with _fresh_log(d) as log:
        produce = bench_core.embedlog_produce(log, "bench", n)
        t0 = time.perf_counter()
        with log.consumer(["bench"], group="bench", auto_offset_reset="earliest", enable_auto_commit=False,
                          max_poll_records=BATCH) as c:
            poll = c.poll
            got, last = 0, None
            while got < n:
                batch = poll(timeout=5.0)
                if not batch:
                    raise RuntimeError(f"native: nothing for 5 s after {got} of {n}")
                got += len(batch)
                last = batch[-1].value
            consume = time.perf_counter() - t0
        _check(got, n, last, "native")
    return produce, consume, n


def run_confluent_shim(d: str, n: int) -> Result:
    """``embedlog.compat.confluent_kafka``: ``produce`` + ``poll(0)`` + ``flush()``;
    ``consume(num_messages=10,000)``."""
    from embedlog.compat import registry  # noqa: PLC0415 - the shims are optional rows
    from embedlog.compat.confluent_kafka import Consumer, Producer  # noqa: PLC0415

    with _fresh_log(d) as log:
        registry.use_log(log)
        try:
            p = Producer({"bootstrap.servers": BOOTSTRAP})
            produce_fn, value = p.produce, VALUE
            early = 0  # flush() calls that returned with reports still to come (librdkafka: only on timeout)
            t0 = time.perf_counter()
            for keys in chunks(n):
                for key in keys:
                    produce_fn("bench", value, key)
                p.poll(0)
                if p.flush(60) != 0:
                    early += 1
                    deadline = time.monotonic() + 60
                    while p.flush(60) != 0:
                        if time.monotonic() > deadline:
                            raise RuntimeError("confluent shim: flush left messages undelivered for 60 s")
            produce = time.perf_counter() - t0
            ANOMALIES["confluent_shim"].append((early, -(-n // BATCH)))
            t0 = time.perf_counter()
            c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench", "auto.offset.reset": "earliest",
                          "enable.auto.commit": False})
            c.subscribe(["bench"])
            consume_fn = c.consume
            got, last = 0, None
            while got < n:
                msgs = consume_fn(num_messages=BATCH, timeout=5.0)
                if not msgs:
                    raise RuntimeError(f"confluent shim: nothing for 5 s after {got} of {n}")
                for m in msgs:
                    if m.error() is not None:
                        raise RuntimeError(f"confluent shim: event {m.error()}")
                got += len(msgs)
                last = msgs[-1].value()
            consume = time.perf_counter() - t0
            c.close()
        finally:
            registry.reset()
        _check(got, n, last, "confluent shim")
    return produce, consume, n


def run_kafka_python_shim(d: str, n: int) -> Result:
    """``embedlog.compat.kafka_python``: ``send`` + ``flush()``; ``poll(max_records=10,000)``."""
    from embedlog.compat import registry  # noqa: PLC0415 - the shims are optional rows
    from embedlog.compat.kafka_python import KafkaConsumer, KafkaProducer  # noqa: PLC0415

    with _fresh_log(d) as log:
        registry.use_log(log)
        try:
            p = KafkaProducer(bootstrap_servers=BOOTSTRAP)
            send, value = p.send, VALUE
            early = 0  # flush() calls after which a future was not done yet (kafka-python: all are done)
            t0 = time.perf_counter()
            for keys in chunks(n):
                futures = [send("bench", value, key=key) for key in keys]
                p.flush()
                early += any(not f.is_done for f in futures)
            produce = time.perf_counter() - t0
            ANOMALIES["kafka_python_shim"].append((early, -(-n // BATCH)))
            p.close()
            t0 = time.perf_counter()
            c = KafkaConsumer("bench", bootstrap_servers=BOOTSTRAP, group_id="bench", auto_offset_reset="earliest",
                              enable_auto_commit=False, max_poll_records=BATCH)
            poll = c.poll
            got, last = 0, None
            while got < n:
                batch = poll(timeout_ms=5000, max_records=BATCH)
                if not batch:
                    raise RuntimeError(f"kafka-python shim: nothing for 5 s after {got} of {n}")
                for records in batch.values():
                    got += len(records)
                    last = records[-1].value
            consume = time.perf_counter() - t0
            c.close()
        finally:
            registry.reset()
        _check(got, n, last, "kafka-python shim")
    return produce, consume, n


def run_aiokafka_shim(d: str, n: int) -> Result:
    """``embedlog.compat.aiokafka``: ``await send`` per record, ``flush()`` + gather the
    futures per 10,000; ``getmany(max_records=10,000)``.  Inside one ``asyncio.run``."""
    from embedlog.compat import registry  # noqa: PLC0415 - the shims are optional rows
    from embedlog.compat.aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: PLC0415

    async def main() -> tuple[float, float, int, object]:
        p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
        await p.start()
        send, value = p.send, VALUE
        t0 = time.perf_counter()
        for keys in chunks(n):
            futures = [await send("bench", value, key=key) for key in keys]
            await p.flush()
            await asyncio.gather(*futures)
        produce = time.perf_counter() - t0
        await p.stop()
        t0 = time.perf_counter()  # start() joins the group and may already prefetch records
        c = AIOKafkaConsumer("bench", bootstrap_servers=BOOTSTRAP, group_id="bench", auto_offset_reset="earliest",
                             enable_auto_commit=False, max_poll_records=BATCH)
        await c.start()
        got, last = 0, None
        while got < n:
            batch = await c.getmany(timeout_ms=5000, max_records=BATCH)
            if not batch:
                raise RuntimeError(f"aiokafka shim: nothing for 5 s after {got} of {n}")
            for records in batch.values():
                got += len(records)
                last = records[-1].value
        consume = time.perf_counter() - t0
        await c.stop()
        return produce, consume, got, last

    with _fresh_log(d) as log:
        registry.use_log(log)
        try:
            produce, consume, got, last = asyncio.run(main())
        finally:
            registry.reset()
        _check(got, n, last, "aiokafka shim")
    return produce, consume, n


def run_mock(_d: str, n: int) -> Result:
    """confluent-kafka on librdkafka's mock cluster (as ``peers.run_confluent``, but a group
    consumer): the consume clock starts at the first record (group join excluded)."""
    from confluent_kafka import Consumer, Producer  # noqa: PLC0415 - optional peer

    topic = f"bench-{time.monotonic_ns()}"
    prod = Producer({"test.mock.num.brokers": 1, "log_level": 4})
    try:
        produce_fn, value = prod.produce, VALUE
        t0 = time.perf_counter()
        for keys in chunks(n):
            for key in keys:
                while True:
                    try:
                        produce_fn(topic, value, key)
                        break
                    except BufferError:
                        prod.poll(0.01)
            prod.poll(0)
            if prod.flush(60) != 0:
                raise RuntimeError("mock: flush left messages undelivered")
        produce = time.perf_counter() - t0
        brokers = ",".join(f"{b.host}:{b.port}" for b in prod.list_topics(topic, timeout=10).brokers.values())
        c = Consumer({"bootstrap.servers": brokers, "group.id": "bench", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        try:
            c.subscribe([topic])
            deadline = time.monotonic() + 120
            first = []
            while not first:
                if time.monotonic() > deadline:
                    raise RuntimeError("mock: group consumer received nothing in 120 s")
                first = [m for m in c.consume(num_messages=1, timeout=1.0) if m.error() is None]
            got, last = 0, first[-1].value()
            t0 = time.perf_counter()
            while got < n - 1:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mock: consume stalled at {got + 1} of {n}")
                for m in c.consume(num_messages=BATCH, timeout=0.05):
                    if m.error() is None:
                        got += 1
                        last = m.value()
            consume = time.perf_counter() - t0
        finally:
            c.close()
        _check(got + 1, n, last, "mock")
    finally:
        prod.flush(5)
    return produce, consume, n - 1


def run_mockafka(_d: str, n: int) -> Result:
    """mockafka-py: ``FakeProducer.produce(partition=i % 4)`` (it cannot partition by key);
    ``FakeConsumer.consume(num_messages=10,000)``."""
    from confluent_kafka.admin import NewTopic  # noqa: PLC0415 - optional peer
    from mockafka import FakeAdminClientImpl, FakeConsumer, FakeProducer  # noqa: PLC0415

    FakeAdminClientImpl(clean=True).create_topics([NewTopic("bench", num_partitions=PARTITIONS)])
    parts = [i % PARTITIONS for i in range(BATCH)]
    try:
        p = FakeProducer({"bootstrap.servers": BOOTSTRAP})
        produce_fn, value = p.produce, VALUE
        t0 = time.perf_counter()
        for keys in chunks(n):
            for key, part in zip(keys, parts, strict=False):
                produce_fn("bench", value, key, part)
            p.flush()
        produce = time.perf_counter() - t0
        t0 = time.perf_counter()
        c = FakeConsumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench", "auto.offset.reset": "earliest"})
        c.subscribe(["bench"])
        got, last = 0, None
        while got < n:
            msgs = c.consume(num_messages=BATCH)
            if not msgs:
                break
            got += len(msgs)
            last = msgs[-1].value()
        consume = time.perf_counter() - t0
        c.close()
        _check(got, n, last, "mockafka")
    finally:
        FakeAdminClientImpl(clean=True)  # drop its (process-global) records
    return produce, consume, n


# name -> (label, function, modules it needs, N cap or None, note)
THROUGHPUT: dict[str, tuple[str, Callable[[str, int], Result], list[str], int | None, str]] = {
    "native": ("embedlog (native API, reference)", run_native, [], None,
               "send + flush per 10,000; group consumer poll(max_records=10,000)"),
    "confluent_shim": ("embedlog.compat.confluent_kafka", run_confluent_shim, ["embedlog.compat.confluent_kafka"],
                       None, "produce + poll(0) + flush() per 10,000; consume(num_messages=10,000)"),
    "kafka_python_shim": ("embedlog.compat.kafka_python", run_kafka_python_shim, ["embedlog.compat.kafka_python"],
                          None, "send + flush() per 10,000; poll(max_records=10,000)"),
    "aiokafka_shim": ("embedlog.compat.aiokafka", run_aiokafka_shim, ["embedlog.compat.aiokafka"], None,
                      "await send per record, flush() + gather futures per 10,000; getmany(max_records=10,000)"),
    "mock": ("confluent-kafka on librdkafka's mock cluster", run_mock, ["confluent_kafka"], MOCK_CAP,
             "in memory; produce + poll(0) + flush per 10,000; group consume(10,000), clock from the first record "
             "(join excluded)"),
    "mockafka": ("mockafka-py", run_mockafka, ["mockafka", "confluent_kafka"], None,
                 "in memory, process-global; explicit partition i % 4 (no key partitioning); consume(10,000)"),
}


def throughput_section(root: str, n: int, runs: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Every row once per round, rounds interleaved (drift on a shared machine hits all rows)."""
    out: dict[str, Any] = {}
    for name, (_label, _fn, modules, cap, note) in THROUGHPUT.items():
        why = next((w for w in (_importable(m) for m in modules) if w), "")
        out[name] = {"n": min(n, cap) if cap else n, "produce_s": [], "consume_s": [], "consume_records": 0,
                     "skipped": why, "errors": [], "note": note}
        if why:
            progress(f"throughput, {name}: skipped ({why})")
    for r in range(runs):
        for name, (_label, fn, _modules, _cap, _note) in THROUGHPUT.items():
            res = out[name]
            if res["skipped"] or res["errors"]:
                continue
            try:
                with scratch_dir(root, f"tp-{name}") as d:
                    produce, consume, timed_records = fn(d, res["n"])
                res["produce_s"].append(produce)
                res["consume_s"].append(consume)
                res["consume_records"] = timed_records
                progress(f"round {r + 1}/{runs}, {name}: produce {rate(res['n'], produce):,.0f}/s, "
                         f"consume {rate(timed_records, consume):,.0f}/s")
            except Exception as exc:
                res["errors"].append(bench_core._error(exc))
                progress(f"round {r + 1}/{runs}, {name}: ERROR {exc!r}")
    for name, counts in ANOMALIES.items():
        out[name]["anomalies"] = list(counts)
    return out


def throughput_rates(res: dict[str, Any]) -> tuple[float, float]:
    p = median([rate(res["n"], s) for s in res["produce_s"]])
    c = median([rate(res["consume_records"], s) for s in res["consume_s"]])
    return p, c


def throughput_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    ref_p, ref_c = throughput_rates(data["native"]) if data["native"]["produce_s"] else (float("nan"),) * 2
    for name, (label, *_rest) in THROUGHPUT.items():
        res = data[name]
        if res["skipped"]:
            rows.append([label, num(res["n"]), "skipped", "skipped", "-", "-", res["skipped"][:160]])
            continue
        if not res["produce_s"]:
            err = res["errors"][0]["error"] if res["errors"] else "no runs"
            rows.append([label, num(res["n"]), "ERROR", "ERROR", "-", "-", err[:300]])
            continue
        p, c = throughput_rates(res)
        note = res["note"] + (f"; ERROR in a later run: {res['errors'][0]['error'][:200]}" if res["errors"] else "")
        early = sum(k for k, _ in res.get("anomalies", []))
        if early:
            calls = sum(c for _, c in res["anomalies"])
            note += "; **" + ANOMALY_TEXT[name].format(k=early, calls=calls) + "**"
        rows.append([label, num(res["n"]), num(p), num(c), times(p / ref_p), times(c / ref_c), note])
    return rows


THROUGHPUT_HEADER = ["client", "records", "produce msgs/s", "consume msgs/s", "produce ÷ native",
                     "consume ÷ native", "how"]


# -- main --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller run (~30-60 s)")
    ap.add_argument("--records", type=int, help="records per throughput run (default 100,000; --quick 20,000); "
                                                f"the mock cluster is capped at {MOCK_CAP:,}")
    ap.add_argument("--runs", type=int, help="runs per throughput row, medians reported (default 5; --quick 1)")
    ap.add_argument("--tests", type=int, help="tests per pytest session in the first-message rows (default 20; "
                                              "--quick 10; the mock cluster's rows at most 2 (group) and 5 (assign))")
    ap.add_argument("--processes", type=int, help="pytest sessions per first-message row (default 3; --quick 1)")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: first,throughput")
    ap.add_argument("--dir", help="scratch directory (default: a new temporary directory, removed afterwards)")
    ap.add_argument("--out", default=str(HERE / "results"), help="where to write compat.md and compat.json")
    args = ap.parse_args(argv)
    args.records = args.records or (20_000 if args.quick else 100_000)
    args.runs = args.runs or (1 if args.quick else 5)
    args.tests = args.tests or (10 if args.quick else 20)
    args.processes = args.processes or (1 if args.quick else 3)
    args.skip = sorted({s.strip() for s in args.skip.split(",") if s.strip()})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    progress = progress_printer(started)

    root = args.dir or tempfile.mkdtemp(prefix="embedlog-bench-compat-")
    os.makedirs(root, exist_ok=True)
    data: dict[str, Any] = {"environment": bench_core._environment(), "args": dict(vars(args)), "targets": TARGETS,
                            "first_message": {}, "throughput": {}}
    versions = {}
    for dist in ("confluent-kafka", "kafka-python", "aiokafka", "mockafka-py"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    data["environment"]["clients"] = versions
    # compiling the shims' source at every pytest start (no .pyc written) is part of the cold first test
    data["environment"]["dont_write_bytecode"] = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    try:
        if "first" not in args.skip:
            for name in FIRST_SCENARIOS:
                tests = min(args.tests, MOCK_TESTS[name]) if name in MOCK_TESTS else args.tests
                data["first_message"][name] = first_message(root, name, tests, args.processes, progress)
        if "throughput" not in args.skip:
            data["throughput"] = throughput_section(root, args.records, args.runs, progress)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    env = data["environment"]
    env["loadavg_end"] = bench_core._load()
    env["seconds"] = round(time.perf_counter() - started, 1)
    data["summary"] = summary(data)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    md = [f"# embedlog Kafka-client shim benchmark{' (--quick)' if args.quick else ''}", "",
          f"{env['date']} · git {env['git'] or '?'} · Python {env['python']} · py-lmdb {env['lmdb']} · "
          f"{env['cpus']} CPUs · {env['platform']} · " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
          f"Load average at start {env['loadavg_start']}, at end {env['loadavg_end']} (other work on this machine "
          f"moves absolute figures; compare within one run); total {env['seconds']:.0f} s. "
          + ("PYTHONDONTWRITEBYTECODE is set: every pytest process compiles the shims' source, which the first "
             "test of a session pays. " if env["dont_write_bytecode"] else "")
          + f"Command: `python benchmarks/bench_compat.py {command}`", ""]
    if data["first_message"]:
        md += ["## Time from an empty test to the first consumed message", "",
               "Each row is a generated test file run by `pytest` in a subprocess: the same test "
               "parametrized into *tests* copies, in *sessions* separate pytest processes. The time runs from the "
               "moment pytest starts setting the test up (before any fixture: `tmp_path`, the log, the patching) "
               "until the test body holds the first message: create a producer, produce one keyed record, flush, "
               "create a group consumer (`auto.offset.reset=earliest`), subscribe, poll. The first test of a "
               "session also pays what the fixture does once per process: importing the shim of the client "
               "library the application imported (only that one) and a first look at the modules imported so far; "
               "later tests are a suite's steady state. Teardown (closing the log, undoing the patches) is not in "
               "the time and is shown apart.", "",
               table(FIRST_HEADER, first_rows(data["first_message"])), ""]
    if data["throughput"]:
        md += [f"## Produce / consume throughput through each shim ({args.records:,} records, median of "
               f"{args.runs} run(s))", "",
               f"Keyed 100-byte records (`key-{{i % 1000}}`) to a fresh {PARTITIONS}-partition topic, flushed every "
               f"{BATCH:,}; then a new group consumer (earliest, no auto-commit) reads them all, up to {BATCH:,} a "
               "call. embedlog rows use a log like the `embedlog_kafka` fixture's (`durability=\"none\"`, in a "
               "scratch directory); the shims reach it through `registry.use_log`. Rows run round by round, "
               "interleaved. The consume clock starts just before the consumer is created (creating it, "
               "subscribing and its group join are inside the clock), except on the mock cluster, where the join "
               "takes seconds and the clock starts at the first record. Ratios are to the native row of this run.",
               "",
               table(THROUGHPUT_HEADER, throughput_rows(data["throughput"])), ""]
    text = "\n".join(md)
    write_results(args.out, "compat", args.quick, text, data, progress)
    return 0


def summary(data: dict[str, Any]) -> dict[str, float]:
    """Headline figures (for run.py's report)."""
    out: dict[str, float] = {}
    for name, res in data["first_message"].items():
        s = first_summary(res)
        if s:
            out[f"first_{name}_ms"] = s["median_ms"]
            out[f"first_{name}_cold_ms"] = s["cold_ms"]
    for name, res in data["throughput"].items():
        if res["produce_s"]:
            out[f"produce_{name}"], out[f"consume_{name}"] = throughput_rates(res)
    return out


if __name__ == "__main__":
    sys.exit(main())
