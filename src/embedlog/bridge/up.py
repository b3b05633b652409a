"""``direction="up"``: embedlog topics to a Kafka cluster, exactly once across crashes.

How a record is neither lost nor duplicated:

- Every record sent carries the header ``embedlog.source`` = ``<mirror>:<partition>:<offset>``
  (its place in embedlog).  librdkafka's idempotent producer keeps each remote partition
  in send order with no gaps, so what Kafka holds of one local partition in one remote
  partition is a *prefix* of what was sent there — also when the bridge is killed — but
  for a Produce request Kafka refused for good (INVALID_RECORD, INVALID_TIMESTAMP, ...)
  while later ones were in flight: those are taken, and Kafka holds a hole before them.
- A checkpoint waits until everything sent is acknowledged by Kafka, reads the end offset
  of every remote partition, and commits — as the consumer group named after the mirror —
  the next local offset of every partition, with those remote end offsets.
- On start, each remote partition is read from its checkpointed end offset to its end:
  the highest source offset found per (remote partition, local partition) says exactly
  which records after the checkpoint are already in Kafka.  Only records of this log's
  history count: after a replication failover the new leader may hold other records at
  offsets the old leader had forwarded (its unreplicated suffix, taken back).  So the scan
  keeps a digest of each record it found (key, value, its own headers, timestamp), and a
  local record is skipped only while it matches a remote record of its offset; from the
  first that does not, the partition's records are sent (the others stay in Kafka,
  counted in ``diverged``).  A record Kafka holds nothing for while it holds later ones
  (a hole: a refused request, or one in flight to another remote partition at a kill)
  is sent, after them, and the later ones stay skipped: its order is lost, never a record
  and never one twice.  A partition read to its local end
  while Kafka holds later offsets of it is past divergence too (the new leader lacks what
  the old one forwarded): new records there are sent.  Re-reading the log from the
  checkpoint, a record is skipped when Kafka holds it at its source offset, in whichever
  remote partition: the placement of a record (its partition number when the counts
  match, else its key with Kafka's partitioner) depends on the local partition count too,
  which ``create_partitions`` may have changed while the bridge was stopped.

A delivery Kafka refused (other than for permissions or size, fatal at once) ends the
session with ``Resync``: the next one starts over from what Kafka holds, so a request
refused once (the records after it were delivered) costs nothing twice.  Refused again
before that session recorded any progress, Kafka refuses the record for good: the mirror
stops with ``BridgeError`` (see ``Mirror``), as for a record too large, rather than
starting over forever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..codec.murmur2 import partition_for_key
from ..errors import BridgeError, EmbedlogError, LinkDownError, UnknownTopicError
from ..model import TopicPartition
from ..storage import mirrors
from ..storage import topics as topics_db
from ._engine import Engine
from ._kafka import SOURCE_HEADER, client_config, confluent, metadata
from .status import PartitionStatus

__all__ = ["Resync", "Stopped", "UpEngine", "pending_partitions", "seed_progress", "stored_partitions"]


_LOG = logging.getLogger("embedlog.bridge")
_UNKNOWN_PARTITION = -190  # librdkafka's _UNKNOWN_PARTITION
#: errors of a partition whose topic was just created, while the cluster's metadata catches up:
#: _UNKNOWN_PARTITION, _UNKNOWN_TOPIC, UNKNOWN_TOPIC_OR_PART, LEADER_NOT_AVAILABLE, NOT_LEADER_FOR_PARTITION
_NOT_YET = frozenset({_UNKNOWN_PARTITION, -188, 3, 5, 6})
#: a topic's metadata errors while it exists but has no leader (an election, a broker restarting):
#: LEADER_NOT_AVAILABLE, NOT_LEADER_FOR_PARTITION, REPLICA_NOT_AVAILABLE
_NO_LEADER = frozenset({5, 6, 9})
#: metadata key of a placeholder progress entry (see ``seed_progress``)
_PENDING = "pending"


def _digest(key: Any, value: Any, headers: Any) -> int:
    return hash((key, value, tuple(tuple(h) for h in headers or ())))


def _remote_digest(m: Any) -> tuple[int, int | None]:
    """What identifies a record read from Kafka: a digest of its key, value and headers
    (less the last, the ``embedlog.source`` this bridge added), and its timestamp if the
    producer's (CreateTime)."""
    ts_type, ts = m.timestamp()
    headers = list(m.headers() or ())[:-1]  # (a record of ours: its own headers, then the bridge's)
    return _digest(m.key(), m.value(), headers), (ts if ts_type == 1 else None)  # (1: TIMESTAMP_CREATE_TIME)


def _same(found: list[tuple[int, int | None]], m: Any) -> bool:
    """Whether the local record ``m`` is one Kafka holds at its source offset (``found``:
    every record found there; two histories may each have sent one).  A timestamp of 0
    is not compared (librdkafka stamps the send time instead), nor a remote topic's
    LogAppendTime."""
    digest = _digest(m.key, m.value, m.headers)
    return any(d == digest and (ts is None or m.timestamp <= 0 or ts == m.timestamp) for d, ts in found)


class Resync(BridgeError):
    """Kafka refused a delivery the bridge can retry: start over from what Kafka holds
    (``Mirror`` stops instead when a session that recorded no progress ends so again)."""


class Reopen(BridgeError):
    """A local topic has another partition count now, or was created anew: open the
    session again, as a restart does (everything sent is checkpointed first), to forward
    every partition (a topic created anew: from its start, checkpointed before any of it
    is sent, as a topic the mirror starts forwarding)."""


#: how often a running up session looks for local topics that gained partitions (s)
_TOPICS_LOOK_S = 1.0


class _Route:
    """One local topic's way to its remote topic."""

    def __init__(self, topic: str, remote: str, local_partitions: int, remote_partitions: int,
                 compacted: bool, identity: tuple[int, str]) -> None:
        self.topic = topic
        self.identity = identity  # (topic id, uid) of the local topic the session opened
        self.remote = remote
        self.nq = local_partitions
        self.nr = remote_partitions
        self.same = local_partitions == remote_partitions
        self.compacted = compacted

    def destination(self, partition: int, key: bytes | None) -> int:
        """The remote partition of a record: its own number when the counts match, else
        by key with Kafka's default partitioner (keyless: by its local partition)."""
        if self.same:
            return partition
        if key is None:
            return partition % self.nr
        return partition_for_key(key, self.nr)


class UpEngine(Engine):
    """An up session: the log's topics to Kafka."""

    direction = "up"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routes: dict[str, _Route] = {}
        self.next: dict[tuple[str, int], int] = {}  # next local offset to send
        self._skip_until: dict[tuple[str, int], int] = {}  # (topic, q) -> the last source offset found in Kafka
        #: (topic, q) -> {source offset: digest} of the records the resume scan found in Kafka
        self._digests: dict[tuple[str, int], dict[int, list[tuple[int, int | None]]]] = {}
        #: records the resume scans found in Kafka that the local log no longer holds (a
        #: replication failover took them back after they were forwarded): they stay there
        self.diverged = 0
        self._delivery_error: Any = None
        self._refused_at = ""  # the remote partition of the delivery Kafka refused
        self.producer: Any = None
        self.scanner: Any = None
        self._admin: Any = None  # see _admin_client
        self._topics_version = -1  # the log's topics version the routes were made at
        self._next_topics_look = 0.0

    # -- connecting ---------------------------------------------------------------------
    def open(self) -> None:
        """Connect, make sure every remote topic exists, and find where to resume."""
        ck = confluent()
        pconf = client_config(self._config, "producer", self.name, self.link.on_error)
        pconf["on_delivery"] = self._on_delivery
        try:
            self.producer = ck.Producer(pconf)
            self.scanner = ck.Consumer(client_config(self._config, "consumer", self.name, self.link.on_error))
        except ck.KafkaException as exc:
            raise BridgeError(f"the bridge's Kafka config is invalid: {exc.args[0].str()}") from exc
        self._topics_version = self.log._store.topics_version()  # (before the partition counts below)
        self._next_topics_look = time.monotonic() + _TOPICS_LOOK_S
        for topic in self.topics:
            meta = self.log._store.topic(topic)
            try:
                desc = self.log.describe_topic(topic)
            except UnknownTopicError:
                continue  # deleted: left out of the session, forwarded again once created anew (_look_at_topics)
            remote = self.topic_map.get(topic, topic)
            compacted = "compact" in str(desc.config.get("cleanup.policy", "delete"))
            nr = self._ensure_remote(remote, len(desc.partitions))
            identity = (meta.topic_id, meta.uid) if meta is not None else (-1, "")
            self.routes[topic] = _Route(topic, remote, len(desc.partitions), nr, compacted, identity)
        self._resume()
        self.link.ok()
        self.consumer = self.log.consumer(None, auto_offset_reset="earliest", max_poll_records=self.batch_size,
                                          enable_auto_commit=False)
        tps = [TopicPartition(t, q) for t, q in self.next]
        try:
            self.consumer.assign(tps)
            for tp in tps:
                self.consumer.seek(tp, self.next[(tp.topic, tp.partition)])
        except UnknownTopicError as exc:  # (deleted since _resume looked: the next open leaves it out)
            raise Reopen(f"a topic was deleted while the session opened: {exc}") from exc

    def _metadata(self, client: Any, topic: str | None) -> Any:
        return metadata(client, topic, self.timeout_s, self.stop)

    def _ensure_remote(self, remote: str, partitions: int) -> int:
        """The partition count of ``remote``, creating it with ``partitions`` when missing
        (through CreateTopics, else the cluster's auto-creation with its defaults).
        ``AuthenticationError`` if the cluster refuses the bridge the topic;
        ``LinkDownError`` (retried with backoff) while it has no leader to answer for it."""
        cluster = self._metadata(self.scanner, remote)
        md = cluster.topics.get(remote)
        if md is not None and md.error is None and md.partitions:
            return len(md.partitions)
        self._refused_topic(md)
        created = "the cluster has no controller to create topics"
        if cluster.controller_id in cluster.brokers:  # (librdkafka's mock cluster has none)
            from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]  # noqa: PLC0415 - optional

            futures = self._admin_client().create_topics([NewTopic(remote, num_partitions=partitions)],
                                          request_timeout=self.timeout_s, operation_timeout=self.timeout_s)
            try:
                futures[remote].result(timeout=self.timeout_s + 1)
            except Exception as exc:  # noqa: BLE001 - any refusal: fall back to the cluster's auto-creation
                created = str(exc) or type(exc).__name__
        deadline = time.monotonic() + self.timeout_s
        while True:
            md = self._metadata(self.producer, remote).topics.get(remote)  # a producer's request auto-creates
            if md is not None and md.error is None and md.partitions:
                seen = self._metadata(self.scanner, remote).topics.get(remote)  # the scanner's metadata is its own
                if seen is not None and seen.error is None and len(seen.partitions) == len(md.partitions):
                    return len(md.partitions)
            self._refused_topic(md)
            if time.monotonic() > deadline:
                if md is not None and md.error is not None and md.error.code() in _NO_LEADER:
                    raise LinkDownError(f"the Kafka topic {remote!r} has no leader ({md.error.str()}); retrying")
                reason = md.error.str() if md is not None and md.error is not None else created or "no partitions"
                raise BridgeError(f"cannot create the Kafka topic {remote!r} ({reason}); create it on the "
                                  "cluster or allow auto.create.topics.enable")
            time.sleep(0.1)

    @staticmethod
    def _refused_topic(md: Any) -> None:
        """Raise the typed error of a topic's metadata error that retrying cannot help
        (``AuthenticationError`` for TOPIC_AUTHORIZATION_FAILED), as ``DownEngine.open`` does."""
        from ._kafka import fatal_error  # noqa: PLC0415

        fatal = fatal_error(md.error) if md is not None and md.error is not None else None
        if fatal is not None:
            raise fatal

    def _admin_client(self) -> Any:
        """The bridge's Kafka admin client (CreateTopics, ListOffsets), made when first needed."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - optional

            self._admin = AdminClient(client_config(self._config, "admin", self.name, self.link.on_error))
        return self._admin

    def _watermarks(self, route: _Route) -> dict[int, tuple[int, int]]:
        """(low, high) of every remote partition of ``route``: two ListOffsets requests in
        parallel whatever the partition count (one round trip on a slow uplink, where a
        query per partition made each checkpoint cost a round trip per partition)."""
        ck = confluent()
        from confluent_kafka import admin  # noqa: PLC0415 - optional

        client = self._admin_client()
        spec: Any = admin.OffsetSpec  # type: ignore[attr-defined]
        levels: Any = ck.IsolationLevel
        # the isolation level the scanner reads with (the consumer's, read_committed unless the config says)
        committed = str(self._config.get("isolation.level", "read_committed")).lower() != "read_uncommitted"
        level = levels.READ_COMMITTED if committed else levels.READ_UNCOMMITTED
        tps = [ck.TopicPartition(route.remote, r) for r in range(route.nr)]
        for attempt in range(20):
            try:
                ends = client.list_offsets({tp: spec.latest() for tp in tps}, isolation_level=level,
                                                request_timeout=self.timeout_s)
                starts = client.list_offsets({tp: spec.earliest() for tp in tps}, isolation_level=level,
                                                  request_timeout=self.timeout_s)
                return {tp.partition: (starts[tp].result().offset, ends[tp].result().offset) for tp in tps}
            except ck.KafkaException as exc:
                err = exc.args[0]
                if err.code() in _NOT_YET and attempt < 19:  # metadata not there yet (a topic just created)
                    time.sleep(0.05)
                    continue
                raise LinkDownError(f"cannot read the end offsets of {route.remote} in Kafka: {err.str()}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _resume(self) -> None:
        """Where each local partition resumes, and which records after it Kafka holds."""
        dbs = self.log._store.dbs
        recorded = self.log._store.read(lambda txn: mirrors.mirror_entries(txn, dbs, self.name, "up"))
        # a mirror's own placeholder (see seed_progress) says where a fresh partition starts, nothing more
        entries = {(e.topic, e.partition): e for e in recorded if not e.meta.get(_PENDING)}
        seeded = {(e.topic, e.partition): e.offset for e in recorded if e.meta.get(_PENDING)}
        fresh = []
        for topic, route in list(self.routes.items()):
            try:
                desc = self.log.describe_topic(topic)
            except UnknownTopicError:  # deleted since open() looked: as there
                del self.routes[topic]
                continue
            hw: dict[int, int] = {}
            checkpoint: dict[int, int] = {}
            forwarded = any(k[0] == topic for k in entries)  # (this mirror has progress in the topic)
            for p in desc.partitions:
                key = (topic, p.partition)
                e = entries.get(key)
                if e is not None:
                    pos = e.offset
                    self.lost[key] = e.lost
                    for r, end in dict(e.meta.get("hw", {})).items():
                        hw[int(r)] = min(hw.get(int(r), int(end)), int(end))
                elif key in seeded:  # where this Mirror's start() placed it
                    pos = seeded[key]
                    self.lost[key] = 0
                elif forwarded:  # a partition added to a topic this mirror forwards: all of it
                    pos = p.start_offset
                    self.lost[key] = 0
                else:
                    pos = p.start_offset if self.start == "earliest" else p.end_offset
                    self.lost[key] = 0
                # (a checkpoint past the local end counts records a failover took back: the
                # records written at those offsets since are others, and are sent)
                pos = min(pos, p.end_offset)
                checkpoint[p.partition] = pos
                # retention may have deleted records before they were forwarded: resume at
                # the log start (the scan below tells which of them Kafka got anyway)
                self.next[key] = self.mirrored[key] = max(pos, p.start_offset)
            if any((topic, p.partition) in entries for p in desc.partitions):
                found = self._scan(route, hw, checkpoint)
            else:
                fresh.append(topic)
                found = {}
            for p in desc.partitions:
                key = (topic, p.partition)
                gone = self.next[key] - checkpoint[p.partition] - found.get(p.partition, 0)
                if gone > 0:
                    self.lost[key] += gone
                    self.dirty = True  # persist the count with the next checkpoint
        if fresh:
            # No earlier run of this mirror sent these topics (each run checkpoints a topic
            # before it sends any of it), so there is nothing of theirs to look for in Kafka.
            # Only these: a checkpoint of a scanned topic now would hide what the scan found.
            self.checkpoint(force=True, topics=fresh)

    def _scan(self, route: _Route, hw: Mapping[int, int], checkpoint: Mapping[int, int]) -> dict[int, int]:
        """Read every remote partition from the checkpoint on: which records of ours each
        holds.  Returns, per local partition, how many records below its resume point
        (deleted locally since the checkpoint) Kafka holds."""
        ck = confluent()
        marks = self._watermarks(route)
        prefix = self.name + ":"
        ends: dict[int, int] = {}
        assignment = []
        for r in range(route.nr):
            low, high = marks[r]
            begin = max(low, hw.get(r, low))
            if begin < high:
                ends[r] = high
                assignment.append(ck.TopicPartition(route.remote, r, begin))
        last: dict[int, int] = {}  # q -> highest source offset (in any remote partition)
        below: dict[int, int] = {}
        if not assignment:
            return below
        self.scanner.assign(assignment)
        deadline = time.monotonic() + self.timeout_s
        while ends:
            msgs = self.scanner.consume(10_000, timeout=0.1)
            for m in msgs:
                if m.error() is not None:
                    continue
                r = m.partition()
                for hk, hv in (m.headers() or ())[-1:]:  # (ours is the last: a relayed record has others)
                    if hk == SOURCE_HEADER and hv and hv.startswith(prefix.encode()):
                        _, q_text, o_text = hv.decode().rsplit(":", 2)
                        q, o = int(q_text), int(o_text)
                        if o > last.get(q, -1):
                            last[q] = o
                        resume = self.next.get((route.topic, q))
                        if resume is not None and o >= resume:  # a record the resume may skip: its digest
                            self._digests.setdefault((route.topic, q), {}).setdefault(o, []).append(
                                _remote_digest(m))
                        if resume is not None and checkpoint.get(q, resume) <= o < resume:
                            below[q] = below.get(q, 0) + 1
                if r in ends and m.offset() >= ends[r] - 1:
                    del ends[r]
            if msgs:
                deadline = time.monotonic() + self.timeout_s
            if ends:  # past the end through transaction markers, or nothing more to read
                for tp in self.scanner.position([ck.TopicPartition(route.remote, r) for r in ends]):
                    if tp.offset >= ends[tp.partition]:
                        del ends[tp.partition]
            if ends and time.monotonic() > deadline:
                raise LinkDownError(f"reading {route.remote} to find where to resume timed out")
        self.scanner.unassign()
        for q, o in last.items():
            key = (route.topic, q)
            if key in self.next and o >= self.next[key]:
                self._skip_until[key] = max(self._skip_until.get(key, -1), o)
        return below

    def skip_pending(self) -> bool:
        """Whether records found in Kafka by the resume scan are still ahead of the reader
        (a checkpoint then would move past the scan's start and forget them)."""
        for key in [k for k, until in self._skip_until.items() if self.next[k] > until]:
            self._forget_skips(key)
        if self._skip_until:
            # Read to the local end and still short of what Kafka holds: those offsets hold
            # records another history forwarded (a failover took them back); records written
            # there from now on are others, and are sent.
            ends = self._local_ends({k[0] for k in self._skip_until})
            for key in [k for k in self._skip_until if self.next[k] >= ends.get(k, 0)]:
                self._diverged_at(key, self.next[key])
        return bool(self._skip_until)

    def _local_ends(self, names: set[str]) -> dict[tuple[str, int], int]:
        out = {}
        for topic in names:
            with contextlib.suppress(EmbedlogError):
                for p in self.log.describe_topic(topic).partitions:
                    out[(topic, p.partition)] = p.end_offset
        return out

    def _forget_skips(self, key: tuple[str, int]) -> None:
        self._skip_until.pop(key, None)
        self._digests.pop(key, None)

    def _diverged_at(self, key: tuple[str, int], offset: int) -> None:
        """The remote record of ``offset`` is not the local one: a failover took back what
        was forwarded from here on.  Send the local records from here; count the remote
        ones left behind."""
        digests = self._digests.get(key, {})
        left = sum(1 for o in digests if o >= offset)
        self.diverged += left
        self._forget_skips(key)
        _LOG.warning("mirror %r: %s[%d] holds other records from offset %d on than the ones it forwarded "
                     "(a failover took them back): sending these; the %d others stay in Kafka",
                     self.name, key[0], key[1], offset, left)

    # -- running ------------------------------------------------------------------------
    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None and self._delivery_error is None:
            self._delivery_error = err
            self._refused_at = f"{msg.topic()}[{msg.partition()}]"

    def step(self, stop: threading.Event) -> int:
        """Forward what the log has now (up to a batch); return how many records were read."""
        if self._delivery_error is not None:
            self._raise_delivery_error()
        now = time.monotonic()
        if now >= self._next_topics_look:
            self._next_topics_look = now + _TOPICS_LOOK_S
            self._look_at_topics(stop)
        msgs = self.consumer.poll(timeout=0.05, max_records=self.batch_size)
        if not msgs:
            self.producer.poll(0)
            return 0
        self._look_at_topics(stop)  # (before sending: none of a topic created anew is sent by this session)
        sent = 0
        i, n = 0, len(msgs)
        while i < n:  # one run of records of one partition at a time (poll returns them so)
            first = msgs[i]
            j = i + 1
            while j < n and msgs[j].partition == first.partition and msgs[j].topic == first.topic:
                j += 1
            try:
                sent += self._send_run(msgs, i, j, stop)
            except confluent().KafkaException as exc:  # (produce() refused a record: too large, say)
                raise self._refused(first, exc) from exc
            i = j
        self.producer.poll(0)
        self.sent_total += sent
        self.dirty = True
        return len(msgs)

    def _look_at_topics(self, stop: threading.Event) -> None:
        """Raise ``Reopen`` (after a checkpoint) once a forwarded topic's partition count
        changed (``create_partitions``): the consumer reads the partitions of the open; or
        once it was deleted and created anew: its progress went with the old topic, and
        the open records the new one's first (from its start: it is newer than the mirror)
        before it sends any of it, so a kill then does not make the restart send it again.
        A topic deleted when the session opened is left out of it (its routes, its
        consumer) until it exists again: the same, as a topic created anew."""
        store = self.log._store
        version = store.topics_version()
        if version == self._topics_version:
            return
        self._topics_version = version
        for topic in self.topics:
            meta = store.topic(topic)
            route = self.routes.get(topic)
            if meta is None:
                continue  # deleted: forwarded again once created anew
            if route is None or (meta.topic_id, meta.uid) != route.identity:  # (None: gone when it opened)
                seed_progress(self.log, self.name, [topic], self.topic_map, "earliest")
                reason = f"local topic {topic!r} was created anew"
            elif meta.partitions != route.nq:
                reason = f"local topic {topic!r} has {meta.partitions} partitions now ({route.nq} before)"
            else:
                continue
            if not self.checkpoint(force=True, stop=stop):
                raise Stopped
            raise Reopen(reason)

    def _send_run(self, msgs: list[Any], i: int, j: int, stop: threading.Event) -> int:
        """Send ``msgs[i:j]``, records of one partition in offset order; return how many
        were sent (the others are in Kafka already, found by the resume scan)."""
        first = msgs[i]
        q = first.partition
        key = (first.topic, q)
        route = self.routes[first.topic]
        remote = route.remote
        expected = self.next[key]
        last = msgs[j - 1].offset
        gap = first.offset > expected or last - first.offset != j - i - 1  # retention deleted some, or compaction
        if gap and not route.compacted:
            self.lost[key] = self.lost.get(key, 0) + (last + 1 - expected) - (j - i) - self._held(key, msgs, i, j)
        self.next[key] = last + 1
        produce = self.producer.produce
        pre = f"{self.name}:{q}:"
        if route.same and key not in self._skip_until:  # the common case: no per-record decisions
            for k in range(i, j):
                m = msgs[k]
                headers = [*m.headers, (SOURCE_HEADER, (pre + str(m.offset)).encode())]
                try:  # positional (topic, value, key, partition, callback, on_delivery, timestamp, headers): faster
                    produce(remote, m.value, m.key, q, None, None, m.timestamp, headers)
                except BufferError:  # librdkafka's queue is full: the link is slow or down
                    self._retry(remote, m.value, m.key, q, m.timestamp, headers, stop)
            return j - i
        sent = 0
        until = self._skip_until.get(key, -1)
        digests = self._digests.get(key, {})
        for k in range(i, j):
            m = msgs[k]
            dest = route.destination(q, m.key)
            if m.offset <= until:  # (whatever its destination: it may have gone elsewhere, see the module doc)
                found = digests.get(m.offset)
                if found is None:
                    pass  # a hole before records Kafka holds (a refused request, a kill): only this one is sent
                elif _same(found, m):
                    continue  # (in Kafka: found by the scan)
                else:
                    self._diverged_at(key, m.offset)
                    until = -1
            headers = [*m.headers, (SOURCE_HEADER, (pre + str(m.offset)).encode())]
            try:
                produce(remote, m.value, m.key, dest, None, None, m.timestamp, headers)
            except BufferError:
                self._retry(remote, m.value, m.key, dest, m.timestamp, headers, stop)
            sent += 1
        return sent

    def _held(self, key: tuple[str, int], msgs: list[Any], i: int, j: int) -> int:
        """How many of the offsets missing locally from ``self.next[key]`` to ``msgs[j - 1]``
        (deleted by retention since the resume read the log start, while the reader was
        short of them) the resume scan found in Kafka: forwarded, so not lost."""
        digests = self._digests.get(key)
        if not digests:
            return 0
        expected, first, last = self.next[key], msgs[i].offset, msgs[j - 1].offset
        if last - first == j - i - 1:  # (only a gap before the run: the usual case)
            return sum(1 for o in digests if expected <= o < first)
        present = {msgs[k].offset for k in range(i, j)}
        return sum(1 for o in digests if expected <= o <= last and o not in present)

    @staticmethod
    def _refused(first: Any, exc: Exception) -> EmbedlogError:
        """The typed error for a record of ``first``'s run that librdkafka's ``produce()``
        refused at once (not a delivery report)."""
        from ._kafka import fatal_error  # noqa: PLC0415 - keep the hot loop's globals small

        err = exc.args[0] if exc.args else None
        fatal = fatal_error(err) if hasattr(err, "code") else None
        return fatal or BridgeError(f"the Kafka client refused a record of {first.topic}[{first.partition}]: {exc}")

    def _retry(self, remote: str, value: Any, key: Any, partition: int, timestamp: int, headers: list[Any],
               stop: threading.Event) -> None:
        while True:
            self._wait_progress(stop)
            try:
                self.producer.produce(remote, value, key, partition, None, None, timestamp, headers)
                return
            except BufferError:
                continue

    def _wait_progress(self, stop: threading.Event) -> None:
        before = len(self.producer)
        self.producer.poll(0.1)
        if self._delivery_error is not None:
            self._raise_delivery_error()
        if self.link.fatal is not None:
            raise self.link.fatal
        if stop.is_set():
            raise Stopped
        if len(self.producer) < before:
            self.link.ok()

    def _raise_delivery_error(self) -> None:
        from ._kafka import fatal_error  # noqa: PLC0415 - keep the hot loop's globals small

        err = self._delivery_error
        fatal = fatal_error(err)
        raise fatal if fatal is not None else Resync(f"Kafka refused records for {self._refused_at}: {err.str()}")

    def checkpoint(self, force: bool = False, stop: threading.Event | None = None,
                   stall_s: float = 10.0, topics: list[str] | None = None) -> bool:
        """Wait until Kafka holds everything sent, then record progress; return ``False``
        (nothing recorded) if ``stop`` was set first."""
        if not self.dirty and not force:
            return True
        if topics is None and self.skip_pending():
            return True  # not yet: see skip_pending
        if self._delivery_error is not None:  # reported by an earlier poll: never checkpoint past it
            self._raise_delivery_error()
        last_progress = time.monotonic()
        pending = len(self.producer)
        while pending:
            self.producer.flush(0.2)
            if self._delivery_error is not None:
                self._raise_delivery_error()
            if self.link.fatal is not None:
                raise self.link.fatal
            now_pending = len(self.producer)
            if now_pending < pending:
                last_progress = time.monotonic()
                self.link.ok()
            elif time.monotonic() - last_progress > stall_s:
                self.link.down(f"Kafka acknowledged nothing for {stall_s:g} s; still retrying")
            pending = now_pending
            if stop is not None and stop.is_set() and pending:
                return False
        offsets = {}
        for topic, route in self.routes.items():
            if topics is not None and topic not in topics:
                continue
            meta = self.log._store.topic(topic)
            if meta is None or (meta.topic_id, meta.uid) != route.identity:
                continue  # deleted (its progress went with it), or created anew (_look_at_topics; _commit checks again)
            marks = self._watermarks(route)
            hw = {str(r): high for r, (_, high) in marks.items()}
            for q in range(route.nq):
                key = (topic, q)
                meta = {"mirror": "up", "remote": route.remote, "hw": hw, "lost": self.lost.get(key, 0)}
                offsets[TopicPartition(topic, q)] = (self.next[key], json.dumps(meta, separators=(",", ":")))
        committed = self._commit(offsets)
        with self._lock:
            self.mirrored.update({(tp.topic, tp.partition): v[0] for tp, v in committed.items()})
        self.dirty = False
        self.progressed = self.progressed or topics is None  # (not the open's checkpoint of fresh topics)
        self.link.ok()
        return True

    def _commit(self, offsets: dict[TopicPartition, tuple[int, str]]) -> dict[TopicPartition, tuple[int, str]]:
        """Commit ``offsets`` as the mirror's progress, in one write transaction that
        first drops every topic deleted, or created anew, since the session opened it
        (its identity differs from its route's): the checkpoint waited for Kafka between
        its own look at the topics and here, and the progress of a topic that went is
        not the new one's.  Return what was committed."""
        log = self.log
        log._check()
        dbs = log._store.dbs
        routes = self.routes

        def fn(txn: Any) -> dict[TopicPartition, tuple[int, str]]:
            same: dict[str, bool] = {}
            for name in {tp.topic for tp in offsets}:
                meta = topics_db.get(txn, dbs, name)
                same[name] = meta is not None and (meta.topic_id, meta.uid) == routes[name].identity
            kept = {tp: v for tp, v in offsets.items() if same[tp.topic]}
            log._coordinator.commit_in(txn, self.name, kept, None)
            return kept

        committed: dict[TopicPartition, tuple[int, str]] = log._coordinator._write(fn)
        return committed

    def idle_probe(self) -> None:
        """Ask Kafka for one end offset, to notice a link that went down while idle."""
        route = next(iter(self.routes.values()), None)
        ck = confluent()
        try:
            if route is None:  # (every topic deleted: ask for the cluster's metadata instead)
                self.scanner.list_topics(timeout=2.0)
            else:
                self.scanner.get_watermark_offsets(ck.TopicPartition(route.remote, 0), timeout=2.0, cached=False)
            self.link.ok()
        except ck.KafkaException as exc:
            self.link.down(f"Kafka did not answer: {exc.args[0].str()}")

    def close(self) -> None:
        """Drop the clients (anything unacknowledged is found again on the next start)."""
        if self.consumer is not None:
            self.consumer.close()
        if self.producer is not None:
            self.producer.purge()
            self.producer.flush(0)
        if self.scanner is not None:
            self.scanner.close()
        self.producer = self.scanner = self.consumer = self._admin = None

    # -- reporting ----------------------------------------------------------------------
    def partitions(self) -> list[PartitionStatus]:
        """Per local partition: local end offset, checkpointed progress (none of a topic
        deleted meanwhile: the session forwards it again once it is created anew)."""
        out = []
        with self._lock:
            mirrored = dict(self.mirrored)
        for topic, route in self.routes.items():
            try:
                parts = self.log.describe_topic(topic).partitions
            except UnknownTopicError:
                continue
            for p in parts:
                out.append(PartitionStatus(topic, p.partition, route.remote, p.end_offset,
                                           mirrored.get((topic, p.partition), 0)))
        return out


class Stopped(Exception):
    """The mirror was asked to stop while waiting for Kafka."""


def stored_partitions(log: Any, name: str, direction: str) -> tuple[list[PartitionStatus], int]:
    """A mirror's progress as recorded in the log (for a mirror not running here), and
    the records it lost to retention."""
    rows = log._store.read(lambda txn: mirrors.mirror_entries(txn, log._store.dbs, name, direction))
    lost = sum(e.lost for e in rows)
    if direction == "up":
        return [PartitionStatus(e.topic, e.partition, e.remote_topic, e.end, e.offset) for e in rows], lost
    return [PartitionStatus(e.remote_topic, e.partition, e.topic, e.end, e.offset) for e in rows], lost


def seed_progress(log: Any, name: str, topics: list[str], topic_map: Mapping[str, str], start: str) -> None:
    """Record, for every local partition of ``topics`` with no progress of the up mirror
    ``name`` yet, where it will start (``start``): a placeholder the mirror replaces with
    its first checkpoint once Kafka answers.  Before that, ``embedlog bridge status`` and
    the metrics (which read progress from the log) show the lag of records waiting for
    the link.  Nothing of these partitions was sent yet (a run checkpoints a topic before
    it sends any of it), so the placeholder carries no remote offsets.  A log that refuses
    the write (read-only, a follower) is left alone."""
    from ..errors import EmbedlogError  # noqa: PLC0415

    dbs = log._store.dbs
    recorded = log._store.read(lambda txn: mirrors.mirror_entries(txn, dbs, name, "up"))
    known = {(e.topic, e.partition) for e in recorded}
    forwarded = {e.topic for e in recorded if not e.meta.get(_PENDING)}  # (a partition added there: all of it)
    offsets = {}
    for topic in topics:
        remote = topic_map.get(topic, topic)
        meta = json.dumps({"mirror": "up", "remote": remote, "hw": {}, "lost": 0, _PENDING: True},
                          separators=(",", ":"))
        try:
            parts = log.describe_topic(topic).partitions
        except EmbedlogError:
            continue
        for p in parts:
            if (topic, p.partition) not in known:
                everything = start == "earliest" or topic in forwarded
                offsets[TopicPartition(topic, p.partition)] = (p.start_offset if everything else p.end_offset, meta)
    if offsets:
        with contextlib.suppress(EmbedlogError):
            log.commit_offsets(name, offsets)


def pending_partitions(log: Any, name: str, topics: list[str],
                       topic_map: Mapping[str, str]) -> tuple[list[PartitionStatus], int]:
    """An up mirror's partitions before its link first came up: every local partition of
    ``topics``, its local end offset and the progress recorded in the log (else 0), and
    the records it lost to retention."""
    from ..errors import EmbedlogError  # noqa: PLC0415

    dbs = log._store.dbs
    entries = {(e.topic, e.partition): e
               for e in log._store.read(lambda txn: mirrors.mirror_entries(txn, dbs, name, "up"))}
    rows, lost = [], 0
    for topic in topics:
        try:
            parts = log.describe_topic(topic).partitions
        except EmbedlogError:
            continue
        for p in parts:
            e = entries.get((topic, p.partition))
            rows.append(PartitionStatus(topic, p.partition, topic_map.get(topic, topic), p.end_offset,
                                        e.offset if e is not None else 0))
            lost += e.lost if e is not None else 0
    return rows, lost
