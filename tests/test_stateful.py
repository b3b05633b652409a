"""A hypothesis state machine: one topic of 2-3 partitions against a plain-list model.

The model keeps, per partition, every record ever written (a list indexed by offset),
the start offset, and the consumer's expected position.  The producer lingers for a
minute, so records become visible exactly at ``flush()`` or at ``Log.close()`` (which
closes, and so flushes, its producers); delivery callbacks tell the model where each
record went, and the model checks that placement: explicit partitions are honoured,
one key always maps to one partition, and offsets are dense and in send order.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import embedlog
from embedlog import Message, RecordMetadata, TopicPartition
from embedlog.errors import EmbedlogError, OffsetOutOfRangeError

TOPIC = "orders"
KEYS = st.one_of(st.none(), st.sampled_from([b"a", b"b", b"c", b"", b"\x00\xff"]))
VALUES = st.one_of(st.none(), st.binary(max_size=24))
HEADERS = st.lists(st.tuples(st.sampled_from(["h", "x", "\u00e9"]), st.one_of(st.none(), st.binary(max_size=4))),
                   max_size=3)
TIMESTAMPS = st.one_of(st.none(), st.integers(0, 2**42))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.define(eq=False)
class Sent:
    """A record handed to ``send`` (identity matters: two equal records are two records)."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int | None
    partition: int | None
    sent_ms: int


@attrs.frozen
class Stored:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int


class LogMachine(RuleBasedStateMachine):
    base_dir: Path  # set per test run

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(dir=self.base_dir)
        self.log = self._open()
        self.n = 0
        self.records: list[list[Stored]] = []
        self.start: list[int] = []
        self.positions: list[int] = []
        self.pending: list[Sent] = []
        self.delivered: list[tuple[Sent, EmbedlogError | None, RecordMetadata | None]] = []
        self.key_partition: dict[bytes, int] = {}

    # -- helpers ----------------------------------------------------------------------------
    def _open(self) -> embedlog.Log:
        # The model is about the API, not crash durability (other tests cover that): without
        # an fsync per flush, a run takes seconds and shrinking a failure takes no minutes.
        return embedlog.open(self.dir, maintenance_interval_ms=None, durability="none")

    def _open_clients(self) -> None:
        self.producer = self.log.producer(linger_ms=60_000)  # visible only at flush/close
        self.consumer = self.log.consumer([TOPIC], auto_offset_reset="earliest", max_poll_records=7)
        for p in range(self.n):  # a consumer without a group keeps no position across a reopen
            self.consumer.seek(TopicPartition(TOPIC, p), self.positions[p])

    def _on_delivery(self, sent: Sent, err: EmbedlogError | None, md: RecordMetadata | None) -> None:
        self.delivered.append((sent, err, md))

    def _settle(self) -> None:
        """Every pending record was delivered exactly once: place it in the model."""
        done = time.time_ns() // 1_000_000
        by_id = {id(s): (err, md) for s, err, md in self.delivered}
        assert len(self.delivered) == len(self.pending) == len(by_id)
        for sent in self.pending:  # send order, so per-partition order is send order
            err, md = by_id[id(sent)]
            assert err is None, err
            assert md is not None
            assert md.topic == TOPIC
            p = md.partition
            assert 0 <= p < self.n
            if sent.partition is not None:
                assert p == sent.partition
            elif sent.key is not None:
                assert self.key_partition.setdefault(sent.key, p) == p, "one key, one partition"
            assert md.offset == len(self.records[p]), "offsets are dense and in send order"
            if sent.timestamp is not None:
                assert md.timestamp == sent.timestamp
            else:
                assert sent.sent_ms <= md.timestamp <= done
            self.records[p].append(Stored(sent.key, sent.value, sent.headers, md.timestamp))
        self.pending.clear()
        self.delivered.clear()

    def _check(self, m: Message) -> None:
        p = m.partition
        assert m.topic == TOPIC
        pos = self.positions[p]
        # the next record; or, for a position the start has moved past, the new start
        # (a batch fetched before delete_records may still be handed out from the buffer)
        assert m.offset == pos or (pos < self.start[p] and m.offset == self.start[p]), (m.offset, pos, self.start[p])
        assert m.offset < len(self.records[p])
        want = self.records[p][m.offset]
        assert (m.key, m.value, list(m.headers), m.timestamp) == (want.key, want.value, want.headers, want.timestamp)
        assert m.timestamp_type == "CreateTime"
        self.positions[p] = m.offset + 1

    # -- rules ------------------------------------------------------------------------------
    @initialize(partitions=st.integers(2, 3))
    def create(self, partitions: int) -> None:
        self.n = partitions
        self.log.create_topic(TOPIC, partitions)
        self.records = [[] for _ in range(partitions)]
        self.start = [0] * partitions
        self.positions = [0] * partitions
        self._open_clients()

    @rule(key=KEYS, value=VALUES, headers=HEADERS, partition=st.one_of(st.none(), st.integers(0, 2)), ts=TIMESTAMPS)
    def send(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]],
             partition: int | None, ts: int | None) -> None:
        if partition is not None:
            partition %= self.n
        sent = Sent(key, value, headers, ts, partition, now_ms())
        self.producer.send(TOPIC, value, key=key, headers=headers or None, partition=partition, timestamp_ms=ts,
                           on_delivery=partial(self._on_delivery, sent))
        self.pending.append(sent)

    @rule(records=st.lists(st.tuples(KEYS, VALUES, st.one_of(st.none(), st.integers(0, 2))), min_size=1, max_size=25))
    def send_many(self, records: list[tuple[bytes | None, bytes | None, int | None]]) -> None:
        for key, value, partition in records:
            self.send(key, value, [], partition, None)

    @rule()
    def flush(self) -> None:
        self.producer.flush()
        self._settle()

    @rule(max_records=st.integers(1, 20))
    def poll(self, max_records: int) -> None:
        msgs = self.consumer.poll(timeout=0, max_records=max_records)
        assert len(msgs) <= max_records
        for m in msgs:
            self._check(m)
        if not msgs:  # nothing new anywhere
            for p in range(self.n):
                assert max(self.positions[p], self.start[p]) == len(self.records[p])

    @rule()
    def drain(self) -> None:
        for _ in range(1000):
            msgs = self.consumer.poll(timeout=0)
            if not msgs:
                break
            for m in msgs:
                self._check(m)
        for p in range(self.n):
            end = len(self.records[p])
            assert max(self.positions[p], self.start[p]) == end
            assert self.consumer.position(TopicPartition(TOPIC, p)) == end
            self.positions[p] = end

    @rule(data=st.data())
    def seek(self, data: st.DataObject) -> None:
        p = data.draw(st.integers(0, self.n - 1), label="partition")
        offset = data.draw(st.integers(0, len(self.records[p])), label="offset")
        tp = TopicPartition(TOPIC, p)
        self.consumer.seek(tp, offset)
        self.positions[p] = offset
        if data.draw(st.booleans(), label="ask position"):
            # Kafka: the offset given, even below the start; the next poll resets it
            assert self.consumer.position(tp) == offset

    @rule(flush_first=st.booleans())
    def close_and_reopen(self, flush_first: bool) -> None:
        if flush_first:
            self.producer.flush()
        self.log.close()  # closes the producer, which writes what it still buffers
        self._settle()
        self.log = self._open()
        self._open_clients()

    @precondition(lambda self: any(self.records))
    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        p = data.draw(st.integers(0, self.n - 1), label="partition")
        end = len(self.records[p])
        before = data.draw(st.one_of(st.just(-1), st.integers(0, end + 3)), label="before_offset")
        if before > end:  # past the high watermark (here the end): Kafka's OFFSET_OUT_OF_RANGE, nothing changes
            with pytest.raises(OffsetOutOfRangeError):
                self.log.delete_records(TOPIC, p, before)
            return
        target = end if before < 0 else before
        expected = max(self.start[p], target)
        assert self.log.delete_records(TOPIC, p, before) == expected
        self.start[p] = expected
        if data.draw(st.booleans(), label="poll right away"):  # a lagging consumer must reset to the new start
            self.poll(20)

    @rule()
    def verify(self) -> None:
        report = self.log.verify()
        assert report.ok, report.problems
        visible = sum(len(r) - s for r, s in zip(self.records, self.start))
        # a batch that delete_records cut into still holds its hidden first records
        assert visible <= report.records <= sum(map(len, self.records))

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def offsets_match_model(self) -> None:
        if not self.n:
            return
        desc = self.log.describe_topic(TOPIC)
        assert [(d.start_offset, d.end_offset) for d in desc.partitions] == [
            (self.start[p], len(self.records[p])) for p in range(self.n)]
        tps = [TopicPartition(TOPIC, p) for p in range(self.n)]
        assert self.consumer.end_offsets(tps) == {tp: len(self.records[tp.partition]) for tp in tps}
        assert self.consumer.beginning_offsets(tps) == {tp: self.start[tp.partition] for tp in tps}

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_log_against_model(tmp_path: Path) -> None:
    machine = type("LogMachineRun", (LogMachine,), {"base_dir": tmp_path})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=75, stateful_step_count=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
