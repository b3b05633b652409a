"""``direction="down"`` writes a batch from Kafka column by column (``Producer._send_many``):
runs of several remote partitions in one transaction keep every field and their order, and
a local topic with another partition count places records by key (Kafka's partitioner) or,
keyless, by remote partition."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

ck = pytest.importorskip("confluent_kafka")

import embedlog  # noqa: E402
from embedlog.bridge import Mirror  # noqa: E402
from embedlog.codec.murmur2 import partition_for_key  # noqa: E402
from procs import bridge_proc, harness, mock_kafka  # noqa: E402  # tests/procs (tests/ is on sys.path)


def fill_remote(bootstrap: str, topic: str, n: int) -> list[tuple[int, Any, Any, Any, int]]:
    """``n`` records over the 4 partitions of a new remote ``topic``: keyed and keyless,
    null values, header sets that repeat, change and carry nulls and duplicates."""
    p = ck.Producer(mock_kafka.client(bootstrap))
    sent = []
    for i in range(n):
        key = None if i % 5 == 0 else b"k%d" % (i % 17)
        value = None if i % 11 == 0 else b"v%d" % i
        headers: Any = ([("app", b"x")] if i % 3 else [("trace", b"%08d" % i), ("dup", None), ("dup", b"")]) \
            if i % 7 else None
        ts = 1_600_000_000_000 + i
        p.produce(topic, value, key, partition=i % 4, headers=headers, timestamp=ts)
        sent.append((i % 4, key, value, headers or [], ts))
    assert p.flush(30) == 0
    return sent


@pytest.mark.parametrize("local_partitions", [4, 3])
def test_down_keeps_fields_order_and_placement(tmp_path: Path, bootstrap: str, local_partitions: int) -> None:
    remote = f"down-cols-{local_partitions}"
    sent = fill_remote(bootstrap, remote, 3_000)
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic(remote, partitions=local_partitions)  # 4: the same count; 3: placed again
        with Mirror(log, mock_kafka.client(bootstrap), [remote], direction="down", name="cols", batch_size=700) as m:
            bridge_proc.caught_up(m, 60)
        got = harness.read_all(log, remote)
    expected: dict[int, list[Any]] = {}
    for r, key, value, headers, ts in sent:
        if local_partitions == 4:
            q = r
        else:
            q = r % local_partitions if key is None else partition_for_key(key, local_partitions)
        expected.setdefault(q, []).append((r, key, value, headers, ts))
    assert sorted(got) == sorted(expected)
    for q, want in expected.items():
        have = [(m.key, m.value, list(m.headers), m.timestamp) for m in got[q]]
        if local_partitions == 4:
            assert have == [(key, value, headers, ts) for _, key, value, headers, ts in want]
        else:  # each remote partition's records keep their order; remote partitions interleave
            for r in range(4):
                mine = [x for x in have if (x[3] - 1_600_000_000_000) % 4 == r]
                assert mine == [(key, value, headers, ts) for rr, key, value, headers, ts in want if rr == r]
            assert len(have) == len(want)


class FakeConsumer:
    """What ``DownEngine.step`` asks of a Kafka consumer, serving prepared messages."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = batches

    def consume(self, n: int, timeout: float) -> list[Any]:
        del n, timeout
        return self.batches.pop(0) if self.batches else []

    def get_watermark_offsets(self, tp: Any, cached: bool = False, timeout: float | None = None) -> tuple[int, int]:
        del tp, cached, timeout
        return 0, 100


def test_a_step_skips_errors_and_writes_interleaved_runs_with_their_source_offsets(tmp_path: Path) -> None:
    from embedlog.bridge._kafka import LinkState  # noqa: PLC0415
    from embedlog.bridge.down import DownEngine, _Source  # noqa: PLC0415
    from embedlog.storage import mirrors  # noqa: PLC0415

    def msg(r: int, offset: int, headers: Any = None, ts: tuple[int, int] = (1, 1_600_000_000_000)) -> Any:
        return ck.Message(topic="remote", partition=r, offset=offset, key=b"k%d" % offset,
                          value=b"v%d-%d" % (r, offset), headers=headers, timestamp=ts, error=None)

    eof = ck.Message(topic="remote", partition=1, error=ck.KafkaError(ck.KafkaError._PARTITION_EOF))
    transient = ck.Message(topic="remote", partition=0, error=ck.KafkaError(ck.KafkaError._TRANSPORT))
    batch = [msg(0, 0, [("a", b"1")]), msg(0, 1, [("a", b"1")]), eof, msg(1, 0), msg(1, 1, [("b", None), ("b", b"")]),
             transient, msg(0, 2, ts=(0, -1)), msg(1, 2, [("a", b"1")])]
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic("local", partitions=2)
        link = LinkState()
        eng = DownEngine(log, {}, ["remote"], {"remote": "local"}, "m", link, 100, "earliest", 5.0)
        eng.sources["remote"] = _Source("remote", "local", 2, 2)
        eng.consumer = FakeConsumer([batch, [eof]])
        assert eng.step(threading.Event()) == 6
        assert eng.step(threading.Event()) == 0  # errors only
        assert link.last_error is not None  # the transient error was reported, not raised
        got = harness.read_all(log, "local")
        stored = log._store.read(lambda txn: mirrors.source_offsets(txn, log._store.dbs, "m", "local"))
    assert [(m.value, list(m.headers)) for m in got[0]] == [
        (b"v0-0", [("a", b"1")]), (b"v0-1", [("a", b"1")]), (b"v0-2", [])]
    assert [(m.value, list(m.headers)) for m in got[1]] == [
        (b"v1-0", []), (b"v1-1", [("b", None), ("b", b"")]), (b"v1-2", [("a", b"1")])]
    assert got[0][0].timestamp == 1_600_000_000_000
    assert got[0][2].timestamp > 1_600_000_000_000  # no timestamp in Kafka: written as now
    assert stored == {0: 3, 1: 3}
    assert eng.mirrored == {("remote", 0): 3, ("remote", 1): 3}


def test_the_consumer_does_not_back_off_a_second_when_its_prefetch_queue_fills() -> None:
    """librdkafka stops fetching for ``fetch.queue.backoff.ms`` (default 1000) once its
    prefetch queue passes ``queued.min.messages``; a bridge catching up a backlog drains that
    in a fraction of a second, so it sets a short backoff (a user's value wins)."""
    from embedlog.bridge._kafka import LinkState, client_config  # noqa: PLC0415

    if ck.libversion()[1] < 0x020400FF:
        pytest.skip("librdkafka < 2.4 has no fetch.queue.backoff.ms")
    on_error = LinkState().on_error
    conf = client_config({"bootstrap.servers": "x:1"}, "consumer", "m", on_error)
    assert conf["fetch.queue.backoff.ms"] < 100
    ck.Consumer(conf).close()  # librdkafka accepts it
    mine = client_config({"bootstrap.servers": "x:1", "fetch.queue.backoff.ms": 500}, "consumer", "m", on_error)
    assert mine["fetch.queue.backoff.ms"] == 500
    assert "fetch.queue.backoff.ms" not in client_config({"bootstrap.servers": "x:1"}, "producer", "m", on_error)


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2)), min_size=1, max_size=60))
def test_a_batch_is_grouped_by_partition_in_arrival_order(where: list[tuple[str, int]]) -> None:
    from embedlog.bridge.down import _by_partition  # noqa: PLC0415

    msgs = [ck.Message(topic=t, partition=r, offset=i) for i, (t, r) in enumerate(where)]
    expected: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(where):
        expected.setdefault(key, []).append(i)
    got = _by_partition(msgs)
    assert {key: [m.offset() for m in group] for key, group in got.items()} == expected


def test_start_latest_is_taken_once_then_a_restart_resumes_and_nothing_before_is_lag(tmp_path: Path,
                                                                                       bootstrap: str) -> None:
    """``start="latest"`` is where a mirror with no progress begins, once: the offsets it
    stands for are stored as progress, so a restart copies what arrived while it was
    stopped (it took "latest" again per partition that had copied nothing, and skipped
    those records), and what was in Kafka before the start is no lag (it never cleared)."""
    remote = "down-latest"
    p = ck.Producer(mock_kafka.client(bootstrap))
    for i in range(8):
        p.produce(remote, b"old%d" % i, partition=i % 4)
    assert p.flush(30) == 0
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        with Mirror(log, mock_kafka.client(bootstrap), [remote], direction="down", name="late", start="latest") as m:
            m.wait_caught_up(30)  # (nothing new: caught up at once, lag 0)
            assert m.status().lag == 0
            p.produce(remote, b"new0", partition=1)
            assert p.flush(30) == 0
            harness.wait_until(lambda: sum(d.end_offset for d in log.describe_topic(remote).partitions) == 1,
                               "new0 copied")
        for i in range(5):
            p.produce(remote, b"stopped%d" % i, partition=i % 4)
        assert p.flush(30) == 0
        with Mirror(log, mock_kafka.client(bootstrap), [remote], direction="down", name="late", start="latest") as m:
            m.wait_caught_up(30)
        got = harness.read_all(log, remote)
    values = sorted(msg.value for msgs in got.values() for msg in msgs)
    assert values == sorted([b"new0"] + [b"stopped%d" % i for i in range(5)])
