"""``direction="down"``: Kafka topics into embedlog, exactly once.

Each batch read from Kafka is written with one embedlog transaction that also records,
per remote partition, the next Kafka offset to read (``storage/mirrors.py``).  The
records and their source offsets become durable together or not at all, so a restarted
bridge — after ``kill -9`` at any moment — resumes exactly after the last write.  Kafka is
read with ``isolation.level=read_committed`` (aborted transactions are never copied).
"""

from __future__ import annotations

import contextlib
import threading
from itertools import compress, count, islice, repeat
from operator import is_not, itemgetter, ne, or_
from typing import Any

from ..errors import BridgeError, TopicExistsError, UnknownTopicError
from ..storage import mirrors
from ._engine import Engine
from ._kafka import client_config, confluent, fatal_error, metadata
from .status import PartitionStatus

__all__ = ["DownEngine"]

_UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PART
_PARTITION_EOF = -191
_first = itemgetter(0)
_second = itemgetter(1)


def _by_partition(msgs: list[Any]) -> dict[tuple[str, int], list[Any]]:
    """``msgs`` grouped by (topic, partition), each group in the order it came.  ``consume()``
    returns runs of one partition at a time, interleaved (often tens per batch): the runs are
    found with C-level loops (no object per record) and joined, so that each partition is
    buffered with one call."""
    ck = confluent()
    names = list(map(ck.Message.topic, msgs))
    parts = list(map(ck.Message.partition, msgs))
    starts = list(compress(count(1), map(or_, map(ne, parts, islice(parts, 1, None)),
                                         map(ne, names, islice(names, 1, None)))))
    if not starts:
        return {(names[0], parts[0]): msgs}
    groups: dict[tuple[str, int], list[Any]] = {}
    for a, b in zip([0, *starts], [*starts, len(msgs)]):
        key = (names[a], parts[a])
        group = groups.get(key)
        if group is None:
            groups[key] = msgs[a:b]
        else:
            group += msgs[a:b]
    return groups


class _Source:
    """One remote topic's way into its local topic."""

    def __init__(self, remote: str, topic: str, remote_partitions: int, local_partitions: int) -> None:
        self.remote = remote
        self.topic = topic
        self.nr = remote_partitions
        self.nq = local_partitions
        self.same = remote_partitions == local_partitions


class DownEngine(Engine):
    """A down session: Kafka topics into the log."""

    direction = "down"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sources: dict[str, _Source] = {}
        self.remote_end: dict[tuple[str, int], int] = {}  # (remote topic, r) -> end offset last seen

    def open(self) -> None:
        """Connect, create missing local topics, and resume after the last write."""
        ck = confluent()
        try:
            self.consumer = ck.Consumer(client_config(self._config, "consumer", self.name, self.link.on_error))
        except ck.KafkaException as exc:
            raise BridgeError(f"the bridge's Kafka config is invalid: {exc.args[0].str()}") from exc
        assignment = []
        for remote in self.topics:
            md = metadata(self.consumer, remote, self.timeout_s, self.stop).topics.get(remote)
            if md is None or md.error is not None or not md.partitions:
                if md is not None and md.error is not None and md.error.code() != _UNKNOWN_TOPIC:
                    raise fatal_error(md.error) or BridgeError(f"cannot read Kafka topic {remote!r}: {md.error.str()}")
                raise UnknownTopicError(f"Kafka has no topic {remote!r} to mirror down; create it on the cluster "
                                        "(or check the name and topic_map)")
            topic = self.topic_map.get(remote, remote)
            nr = len(md.partitions)
            with contextlib.suppress(TopicExistsError):
                self.log.create_topic(topic, partitions=nr)
            nq = len(self.log.describe_topic(topic).partitions)
            self.sources[remote] = _Source(remote, topic, nr, nq)
            stored = self.log._store.read(
                lambda txn, t=topic, r=remote: mirrors.source_offsets(txn, self.log._store.dbs, self.name, t, r))
            default = ck.OFFSET_BEGINNING if self.start == "earliest" else ck.OFFSET_END
            latest: dict[int, tuple[int, int]] = {}
            for r in range(nr):
                pos = stored.get(r)
                if pos is None and self.start == "latest":
                    # "latest" is where a mirror with no progress begins, once: the offset it
                    # stands for now is stored as progress, so a restart resumes there (it
                    # took "latest" again and skipped what came meanwhile), and nothing
                    # before it counts as lag.
                    with contextlib.suppress(ck.KafkaException):
                        high = self.consumer.get_watermark_offsets(ck.TopicPartition(remote, r),
                                                                   timeout=self.timeout_s)[1]
                        pos = high
                        latest[r] = (high, high)
                        self.remote_end[(remote, r)] = high
                self.mirrored[(remote, r)] = pos if pos is not None else 0
                assignment.append(ck.TopicPartition(remote, r, default if pos is None else pos))
            if latest:
                with self.log.transaction() as tx:
                    tx.put_source_offsets(self.name, topic, remote, latest)
        self.consumer.assign(assignment)
        self.link.ok()

    def step(self, stop: threading.Event) -> int:
        """Copy one batch from Kafka in one embedlog transaction; return its size."""
        del stop
        if self.link.fatal is not None:
            raise self.link.fatal
        msgs = self.consumer.consume(self.batch_size, timeout=0.1)
        if not msgs:
            return 0
        ck = confluent()
        errors = list(map(ck.Message.error, msgs))
        if any(map(is_not, errors, repeat(None))):  # (not count(None): a KafkaError cannot be compared with None)
            msgs = self._drop_errors(msgs, errors)
            if not msgs:
                return 0
        positions: dict[str, dict[int, int]] = {}
        with self.log.transaction() as tx:
            producer = tx._producer
            for (remote, r), run in _by_partition(msgs).items():
                self._write_run(producer, self.sources[remote], r, run)
                positions.setdefault(remote, {})[r] = run[-1].offset() + 1
            for remote, offsets in positions.items():
                src = self.sources[remote]
                for r in offsets:
                    with contextlib.suppress(ck.KafkaException):  # the last fetch response's end: no request
                        self.remote_end[(remote, r)] = self.consumer.get_watermark_offsets(
                            ck.TopicPartition(remote, r), cached=True)[1]
                tx.put_source_offsets(self.name, src.topic, remote, {
                    r: (nxt, max(nxt, self.remote_end.get((remote, r), nxt))) for r, nxt in offsets.items()})
        with self._lock:
            for remote, offsets in positions.items():
                for r, nxt in offsets.items():
                    self.mirrored[(remote, r)] = nxt
        self.sent_total += len(msgs)
        self.link.ok()
        return len(msgs)

    def _drop_errors(self, msgs: list[Any], errors: list[Any]) -> list[Any]:
        """The messages that are records; raise a fatal error, report the others."""
        good = []
        for m, err in zip(msgs, errors):
            if err is None:
                good.append(m)
            elif err.code() != _PARTITION_EOF:
                fatal = fatal_error(err)
                if fatal is not None:
                    raise fatal
                self.link.on_error(err)
        return good

    @staticmethod
    def _write_run(producer: Any, src: _Source, r: int, run: list[Any]) -> None:
        """Buffer the records of one remote partition (in offset order) in the transaction's
        producer: column by column into the same local partition, or record by record when
        the partition counts differ."""
        ck = confluent()
        msg = ck.Message
        keys = list(map(msg.key, run))
        values = list(map(msg.value, run))
        headers = list(map(msg.headers, run))
        stamps = list(map(msg.timestamp, run))
        if all(map(_first, stamps)):  # every timestamp is there (type 0: not available, written as now)
            timestamps: list[int | None] = list(map(_second, stamps))
        else:
            timestamps = [ts if ts_type else None for ts_type, ts in stamps]
        if not any(map(is_not, headers, repeat(None))):
            headers = None  # type: ignore[assignment]
        if src.same:
            producer._send_many(src.topic, r, keys, values, headers, timestamps)
            return
        send_one = producer._send
        for k, key in enumerate(keys):
            part = r % src.nq if key is None else None  # by key: Kafka's default partitioner
            send_one(src.topic, values[k], key, headers[k] if headers is not None else None, part, timestamps[k],
                     None)

    def _skip_markers(self) -> None:
        """Record positions librdkafka moved past transaction markers (no record to copy):
        without this a partition ending in a marker would show a lag of 1 forever."""
        ck = confluent()
        moved: dict[str, dict[int, tuple[int, int]]] = {}
        tps = [ck.TopicPartition(remote, r) for remote, src in self.sources.items() for r in range(src.nr)]
        for tp in self.consumer.position(tps):
            key = (tp.topic, tp.partition)
            if tp.offset >= 0 and tp.offset > self.mirrored.get(key, 0):
                moved.setdefault(tp.topic, {})[tp.partition] = (tp.offset, max(tp.offset, self.remote_end.get(key, 0)))
        if not moved:
            return
        with self.log.transaction() as tx:
            for remote, offsets in moved.items():
                tx.put_source_offsets(self.name, self.sources[remote].topic, remote, offsets)
        with self._lock:
            for remote, offsets in moved.items():
                for r, (nxt, _) in offsets.items():
                    self.mirrored[(remote, r)] = nxt

    def idle_probe(self) -> None:
        """Refresh the remote end offsets (for lag), move past transaction markers, and
        notice a link that went down."""
        ck = confluent()
        self._skip_markers()
        try:
            for remote, src in self.sources.items():
                for r in range(src.nr):
                    _, high = self.consumer.get_watermark_offsets(ck.TopicPartition(remote, r), timeout=2.0,
                                                                  cached=False)
                    with self._lock:
                        self.remote_end[(remote, r)] = high
            self.link.ok()
        except ck.KafkaException as exc:
            self.link.down(f"Kafka did not answer: {exc.args[0].str()}")

    def close(self) -> None:
        """Drop the Kafka consumer."""
        if self.consumer is not None:
            self.consumer.close()
        self.consumer = None

    def partitions(self) -> list[PartitionStatus]:
        """Per remote partition: remote end (as last seen), next offset to copy."""
        with self._lock:
            mirrored = dict(self.mirrored)
            ends = dict(self.remote_end)
        out = []
        for (remote, r), nxt in sorted(mirrored.items()):
            out.append(PartitionStatus(remote, r, self.sources[remote].topic, max(nxt, ends.get((remote, r), nxt)),
                                       nxt))
        return out

