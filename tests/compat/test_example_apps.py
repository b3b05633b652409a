"""The example apps of examples/kafka_apps, tested with the ``embedlog_kafka`` fixture.

The apps import only the real client libraries, here at import time, before any
fixture runs; requesting ``embedlog_kafka`` is all it takes for them to talk to an
embedded log.  The tests themselves use embedlog to look at what the apps wrote.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import embedlog

APPS = Path(__file__).resolve().parents[2] / "examples" / "kafka_apps"
sys.path.insert(0, str(APPS))


def _app(name: str, *needs: str) -> ModuleType | None:
    if any(importlib.util.find_spec(n) is None for n in needs):
        return None
    return importlib.import_module(name)


order_service = _app("order_service", "confluent_kafka", "embedlog.compat.confluent_kafka")
log_shipper = _app("log_shipper", "kafka")
worker = _app("worker", "aiokafka")


def read_all(log: embedlog.Log, topic: str) -> list[embedlog.Message]:
    with log.consumer([topic], auto_offset_reset="earliest") as c:
        out: list[embedlog.Message] = []
        while batch := c.poll(timeout=0.2):
            out.extend(batch)
        return out


# -- confluent-kafka: the order service -----------------------------------------------------------
@pytest.mark.skipif(order_service is None, reason="needs confluent-kafka and embedlog.compat.confluent_kafka")
@pytest.mark.embedlog_topics(("orders", 3), ("invoices", 3), "orders.rejected")
def test_order_service_invoices_and_rejects(embedlog_kafka: embedlog.Log) -> None:
    assert order_service is not None
    front = order_service.Producer({"bootstrap.servers": "kafka.prod:9092"})
    orders = [
        {"order_id": 1, "customer": "ada", "lines": [{"sku": "apple", "qty": 2}, {"sku": "plum", "qty": 1}]},
        {"order_id": 2, "customer": "bob", "lines": [{"sku": "kiwi", "qty": 1}]},
        {"order_id": 3, "customer": "ada", "lines": [{"sku": "pear", "qty": 3}]},
        {"order_id": 4, "customer": "cyd", "lines": []},
    ]
    for o in orders:
        order_service.place_order(front, o)
    assert front.flush(10) == 0

    service = order_service.OrderService("kafka.prod:9092")
    handled = 0
    deadline = time.monotonic() + 30
    while handled < len(orders) and time.monotonic() < deadline:
        handled += service.run_once(timeout=0.5)
    service.close()
    assert handled == 4

    invoices = [json.loads(m.value) for m in read_all(embedlog_kafka, "invoices")]
    assert sorted((i["order_id"], i["total_cents"]) for i in invoices) == [(1, 130), (3, 210)]
    ada = [m for m in read_all(embedlog_kafka, "invoices") if m.key == b"ada"]
    assert len({m.partition for m in ada}) == 1  # one customer, one partition, in order
    assert [json.loads(m.value)["order_id"] for m in ada] == [1, 3]
    rejected = {json.loads(m.value)["order_id"]: json.loads(m.value)["reason"]
                for m in read_all(embedlog_kafka, "orders.rejected")}
    assert rejected == {2: "unknown sku 'kiwi'", 4: "no lines"}
    assert embedlog_kafka.describe_group("order-service").total_lag == 0

    # a restarted service resumes from the committed offsets: nothing is processed twice
    again = order_service.OrderService("kafka.prod:9092")
    assert again.run_once(timeout=0.5) == 0
    order_service.place_order(front, {"order_id": 5, "customer": "bob", "lines": [{"sku": "pear", "qty": 1}]})
    front.flush(10)
    deadline = time.monotonic() + 30
    n = 0
    while n == 0 and time.monotonic() < deadline:
        n = again.run_once(timeout=0.5)
    again.close()
    assert n == 1
    assert len(read_all(embedlog_kafka, "invoices")) == 3


# -- kafka-python: the log shipper ----------------------------------------------------------------
@pytest.mark.skipif(log_shipper is None, reason="needs kafka-python")
@pytest.mark.embedlog_topics(("logs", 4))
def test_log_shipper_ships_and_archives(embedlog_kafka: embedlog.Log, tmp_path: Path) -> None:
    assert log_shipper is not None
    source = tmp_path / "app.log"
    lines = [f"{'ERROR' if i % 7 == 0 else 'INFO'} svc-{i % 3} request {i}" for i in range(60)]
    source.write_text("\n".join([*lines, "garbage"]) + "\n", encoding="utf-8")
    producer = log_shipper.KafkaProducer(bootstrap_servers=["kafka-1:9092", "kafka-2:9092"])
    assert log_shipper.ship(source, producer) == 60
    assert embedlog_kafka.describe_topic("logs").records == 60

    out = tmp_path / "archive"
    out.mkdir()
    archiver = log_shipper.Archiver("kafka-1:9092", out)
    assert archiver.run() == 60
    for s in range(3):
        archived = (out / f"svc-{s}.log").read_text(encoding="utf-8").splitlines()
        expected = [f"{line.split(' ', 2)[0]} {line.split(' ', 2)[2]}" for line in lines
                    if line.split(" ")[1] == f"svc-{s}"]
        assert archived == expected  # per service, in order
    assert archiver.run() == 0  # committed: nothing again
    archiver.close()

    more = tmp_path / "more.log"
    more.write_text("WARN svc-9 disk almost full\n", encoding="utf-8")
    log_shipper.ship(more, producer)
    producer.close()
    archiver = log_shipper.Archiver("kafka-1:9092", out)  # a new process, same group
    assert archiver.run() == 1
    archiver.close()
    assert (out / "svc-9.log").read_text(encoding="utf-8") == "WARN disk almost full\n"
    assert embedlog_kafka.describe_group("log-archiver").total_lag == 0


# -- aiokafka: the FastAPI-style worker -----------------------------------------------------------
@pytest.mark.skipif(worker is None, reason="needs aiokafka")
@pytest.mark.embedlog_topics(("jobs", 2), ("results", 2))
def test_worker_processes_jobs(embedlog_kafka: embedlog.Log) -> None:
    assert worker is not None

    async def scenario() -> int:
        async with worker.lifespan("kafka:9092") as w:
            for i in range(8):
                await w.submit(f"job-{i}", width=i + 1, height=10)
            deadline = time.monotonic() + 30
            while w.processed < 8 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return w.processed

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == 8
    results: dict[str, Any] = {json.loads(m.value)["id"]: json.loads(m.value)["pixels"]
                               for m in read_all(embedlog_kafka, "results")}
    assert results == {f"job-{i}": (i + 1) * 10 for i in range(8)}
    assert embedlog_kafka.describe_group("renderer").total_lag == 0
