"""``transactional.id`` fencing across processes, as Kafka's broker does it.

A producer in another process that initializes the same transactional id on the same
log directory fences the older producer: the older one's open transaction is refused
at commit (nothing of it written) with its client's fenced error, even when the newer
producer initializes the id while the older one is already committing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog.compat import registry
from embedlog.errors import ProducerFencedError, TransactionAbortedError

SRC = str(Path(embedlog.__file__).resolve().parent.parent)


@pytest.fixture(autouse=True)
def _reset() -> Any:
    yield
    registry.reset()


def claim_elsewhere(path: Path, client: str) -> None:
    """A newer producer with transactional id ``tid`` initializes it in another process."""
    code = {
        "confluent": """
            from embedlog.compat.confluent_kafka import Producer
            p = Producer({"embedlog.path": PATH, "transactional.id": "tid"})
            p.init_transactions()
            p.close()
        """,
        "kafka-python": """
            from embedlog.compat.kafka_python import KafkaProducer
            p = KafkaProducer(embedlog_path=PATH, transactional_id="tid")
            p.init_transactions()
            p.close()
        """,
        "aiokafka": """
            import asyncio
            from embedlog.compat.aiokafka import AIOKafkaProducer
            async def main():
                p = AIOKafkaProducer(embedlog_path=PATH, transactional_id="tid")
                await p.start()
                await p.stop()
            asyncio.run(main())
        """,
    }[client]
    subprocess.run([sys.executable, "-c", f"PATH = {str(path)!r}\n" + textwrap.dedent(code)], check=True,
                   env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, timeout=60)


def records(path: Path) -> list[bytes]:
    with embedlog.open(str(path)) as log:
        if "out" not in log.topics():
            return []
        with log.consumer(["out"], auto_offset_reset="earliest") as c:
            return [m.value for m in c.poll(timeout=0.5)]


def test_confluent_producer_fenced_by_another_process(tmp_path: Path) -> None:
    from embedlog.compat.confluent_kafka import KafkaException, Producer  # noqa: PLC0415

    a = Producer({"embedlog.path": str(tmp_path), "transactional.id": "tid"})
    a.init_transactions()
    a.begin_transaction()
    a.produce("out", b"zombie")
    claim_elsewhere(tmp_path, "confluent")
    with pytest.raises(KafkaException) as info:
        a.commit_transaction()
    assert info.value.args[0].fatal()
    assert "fenced" in info.value.args[0].str()
    with pytest.raises(KafkaException):  # fatal: the producer can do nothing more
        a.begin_transaction()
    a.close()
    assert records(tmp_path) == []


def test_kafka_python_producer_fenced_by_another_process(tmp_path: Path) -> None:
    from embedlog.compat.kafka_python import KafkaProducer, errors  # noqa: PLC0415

    a = KafkaProducer(embedlog_path=str(tmp_path), transactional_id="tid")
    a.init_transactions()
    a.begin_transaction()
    a.send("out", b"zombie")
    claim_elsewhere(tmp_path, "kafka-python")
    with pytest.raises(errors.ProducerFencedError):
        a.commit_transaction()
    with pytest.raises(errors.KafkaError):
        a.begin_transaction()
    a.close()
    assert records(tmp_path) == []


def aiokafka_commit_is_fenced(tmp_path: Path, between: Callable[[], Any], **options: Any) -> None:
    """An aiokafka transaction sends a record, ``between()`` runs, and its commit raises
    ``ProducerFenced``; nothing is written."""
    import asyncio  # noqa: PLC0415

    from embedlog.compat.aiokafka import AIOKafkaProducer, errors  # noqa: PLC0415

    async def main() -> None:
        a = AIOKafkaProducer(embedlog_path=str(tmp_path), transactional_id="tid", **options)
        await a.start()
        await a.begin_transaction()
        await a.send("out", b"zombie")
        between()
        with pytest.raises(errors.ProducerFenced):
            await a.commit_transaction()
        await a.stop()

    asyncio.run(main())
    assert records(tmp_path) == []


def test_aiokafka_producer_fenced_by_another_process(tmp_path: Path) -> None:
    aiokafka_commit_is_fenced(tmp_path, lambda: claim_elsewhere(tmp_path, "aiokafka"))


def test_a_claim_during_the_commit_is_checked_in_its_write_transaction(tmp_path: Path) -> None:
    """The epoch is checked inside the write transaction that commits: a claim that lands
    after the producer's last look (its ``fenced`` check) still refuses the commit."""
    with embedlog.open(str(tmp_path)) as log:
        log.create_topic("out")
        epoch = log._claim_transactional_id("tid")
        assert log._transactional_epoch("tid") == epoch
        txn = log.transaction()
        txn._fence_by("tid", epoch)
        txn.send("out", b"zombie")
        assert log._claim_transactional_id("tid") == epoch + 1  # (the newer producer)
        with pytest.raises(TransactionAbortedError) as info:
            txn.commit()
        assert isinstance(info.value.__cause__, ProducerFencedError)
        ok = log.transaction()
        ok._fence_by("tid", epoch + 1)
        ok.send("out", b"newer")
        ok.commit()
    assert records(tmp_path) == [b"newer"]


def test_a_long_transactional_id_gets_its_own_epoch(tmp_path: Path) -> None:
    """Ids longer than an LMDB key allows are kept by digest: distinct, and fenced."""
    with embedlog.open(str(tmp_path)) as log:
        long_a, long_b = "a" * 2000, "a" * 1999 + "b"
        assert log._claim_transactional_id(long_a) == 1
        assert log._claim_transactional_id(long_a) == 2
        assert log._claim_transactional_id(long_b) == 1
        assert log._transactional_epoch(long_a) == 2


def test_confluent_transaction_open_past_its_timeout_fails_abortably(tmp_path: Path) -> None:
    """transaction.timeout.ms: Kafka's coordinator aborts a transaction open longer; its
    commit fails with an abortable error, nothing written, and the producer goes on."""
    from embedlog.compat.confluent_kafka import KafkaException, Producer  # noqa: PLC0415

    p = Producer({"embedlog.path": str(tmp_path), "transactional.id": "tid", "transaction.timeout.ms": 1000})
    p.init_transactions()
    p.begin_transaction()
    p.produce("out", b"late")
    time.sleep(1.05)
    with pytest.raises(KafkaException) as info:
        p.commit_transaction()
    err = info.value.args[0]
    assert err.txn_requires_abort()
    assert not err.fatal()
    assert "transaction.timeout.ms" in err.str()
    p.abort_transaction()
    p.begin_transaction()
    p.produce("out", b"in time")
    p.commit_transaction()
    p.close()
    assert records(tmp_path) == [b"in time"]


def test_kafka_python_transaction_open_past_its_timeout_fails_abortably(tmp_path: Path) -> None:
    from embedlog.compat.kafka_python import KafkaProducer, errors  # noqa: PLC0415

    p = KafkaProducer(embedlog_path=str(tmp_path), transactional_id="tid", transaction_timeout_ms=100)
    p.init_transactions()
    p.begin_transaction()
    p.send("out", b"late")
    time.sleep(0.15)
    with pytest.raises(errors.InvalidProducerEpochError):
        p.commit_transaction()
    p.abort_transaction()
    p.begin_transaction()
    p.send("out", b"in time")
    p.commit_transaction()
    p.close()
    assert records(tmp_path) == [b"in time"]


def test_aiokafka_transaction_open_past_its_timeout_is_fenced(tmp_path: Path) -> None:
    """aiokafka reports a transaction the coordinator timed out as ``ProducerFenced``."""
    aiokafka_commit_is_fenced(tmp_path, lambda: time.sleep(0.15), transaction_timeout_ms=100)


def test_a_log_made_again_under_the_same_path_starts_its_epochs_again(tmp_path: Path) -> None:
    """A directory removed and made again is another log: a producer on it is not fenced
    by the epochs claimed on the old one in this process."""
    import shutil  # noqa: PLC0415

    from embedlog.compat.confluent_kafka import Producer  # noqa: PLC0415

    path = tmp_path / "log"
    for _ in range(2):
        p = Producer({"embedlog.path": str(path), "transactional.id": "tid"})
        p.init_transactions()
        p.close()
    registry.reset()
    shutil.rmtree(path)
    p = Producer({"embedlog.path": str(path), "transactional.id": "tid"})
    p.init_transactions()
    p.begin_transaction()
    p.produce("out", b"on the new log")
    p.commit_transaction()
    p.close()
    assert records(path) == [b"on the new log"]


def test_transaction_timeout_counts_from_the_first_record(tmp_path: Path) -> None:
    """Kafka's coordinator starts a transaction's clock at its first record or offsets: a
    producer that begins, then waits idle (polling for input) longer than
    transaction.timeout.ms, commits what it adds afterwards."""
    from embedlog.compat.kafka_python import KafkaProducer  # noqa: PLC0415

    p = KafkaProducer(embedlog_path=str(tmp_path), transactional_id="tid", transaction_timeout_ms=100)
    p.init_transactions()
    p.begin_transaction()
    time.sleep(0.15)
    p.send("out", b"after an idle wait")
    p.commit_transaction()
    p.close()
    assert records(tmp_path) == [b"after an idle wait"]
