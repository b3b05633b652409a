"""Transactions: records and committed offsets that become visible all at once, or never.

A transaction buffers its records in memory; when the ``with`` block exits normally,
they are encoded and written — with every offset committed through it — in one LMDB
write transaction, so consumers see all of it or none of it, and a process that dies
inside the block leaves nothing behind.  Consume-transform-produce with
``tx.commit_offsets(consumer, ...)`` is therefore exactly-once: the outputs and the
input offsets commit together, and a restarted worker resumes from those offsets.

Offsets committed through a group member are fenced like its own commits (Kafka's
``send_offsets_to_transaction`` with the consumer's group metadata): if the member no
longer owns a partition, the whole transaction aborts with
``TransactionAbortedError``.

A transaction's records are held in memory until it commits; keep transactions to what
fits comfortably (a limit Kafka does not have, noted in the README).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import lmdb

from .consumer import GroupMetadata
from .errors import (
    ClosedError,
    ConfigError,
    EmbedlogError,
    IllegalGenerationError,
    NotAssignedError,
    NotLeaderError,
    TransactionAbortedError,
    TransactionNotLeaderError,
)
from .groups.coordinator import validate_group
from .groups.offsets import OffsetAndMetadata
from .groups.offsets import split as split_offset
from .model import TopicPartition, topic_partition
from .producer import Producer
from .storage import mirrors, producer_epochs

if TYPE_CHECKING:
    from .consumer import Consumer
    from .log import Log

__all__ = ["Transaction"]


def _closed(consumer: Any) -> bool:
    """Whether a consumer given to ``commit_offsets`` (or a shim's object with
    ``group_metadata()``) is closed or closing."""
    return bool(getattr(consumer, "_closing", False) or getattr(consumer, "closed", False))


class Transaction:
    """All-or-nothing writes across topics, partitions and consumer-group offsets."""

    def __init__(self, log: Log, **producer_options: Any) -> None:
        self._log = log
        self._producer = Producer(log, _transactional=True, **producer_options)
        self._offsets: list[tuple[str, str | None, dict[TopicPartition, Any], bool]] = []
        #: the consumers whose membership fences the offsets committed (``commit_offsets``)
        self._consumers: list[Any] = []
        #: per consumer given to ``commit_offsets``, its ``_ownership`` of the partitions then
        self._owned: list[tuple[Any, dict[TopicPartition, int | None]]] = []
        self._sources: list[tuple[str, str, str, dict[int, tuple[int, int]]]] = []
        #: (transactional id, epoch) the commit must still hold (``_fence_by``)
        self._fence: tuple[str, int] | None = None
        #: when its first record or offsets were added (``time.monotonic()``), else None
        self._began: float | None = None
        self._done = False

    def send(self, topic: str, value: Any = None, key: Any = None,
             headers: Iterable[tuple[str, bytes | None]] | None = None, partition: int | None = None,
             timestamp_ms: int | None = None, on_delivery: Any = None) -> None:
        """Add a record to the transaction (validated now, written at commit).

        ``on_delivery(error, metadata)`` is called when the transaction commits (with the
        record's offset) or fails."""
        self._check()
        self._producer.send(topic, value, key=key, headers=headers, partition=partition, timestamp_ms=timestamp_ms,
                            on_delivery=on_delivery)
        if self._began is None:
            self._began = time.monotonic()

    def commit_offsets(self, consumer_or_group: Consumer | str | tuple[str, str | None],
                       offsets: Mapping[TopicPartition, int | OffsetAndMetadata | tuple[int, str | None]]) -> None:
        """Commit ``offsets`` (next offset to read, or an ``OffsetAndMetadata`` /
        ``(offset, metadata)`` pair) with the transaction.

        Through a consumer (or its ``group_metadata()``): fenced by its group membership.
        By group name: for a group with no live members (no fencing); with live members
        the transaction aborts with a ``GroupError`` cause, as Kafka refuses such commits.
        """
        self._add_offsets(consumer_or_group, offsets, unfenced=False)

    def _commit_offsets_unfenced(self, consumer_or_group: Consumer | str | tuple[str, str | None],
                                 offsets: Mapping[TopicPartition, int | OffsetAndMetadata | tuple[int, str | None]]
                                 ) -> None:
        """``commit_offsets``, but by group name also while the group has live members:
        the Kafka clients' ``send_offsets_to_transaction(offsets, group_id)``, which Kafka
        accepts from the group's own consumers (used by ``embedlog.compat``); and, as
        Kafka, an offset past the partition's end is accepted."""
        self._add_offsets(consumer_or_group, offsets, unfenced=True)

    def _add_offsets(self, consumer_or_group: Any, offsets: Mapping[TopicPartition, Any], *, unfenced: bool) -> None:
        self._check()
        if isinstance(consumer_or_group, str):
            group, member = consumer_or_group, None
        elif isinstance(consumer_or_group, tuple) and len(consumer_or_group) == 2:
            group, member = consumer_or_group  # (group, member id), as group_metadata() returns
        elif callable(getattr(consumer_or_group, "group_metadata", None)):  # a Consumer
            group, member = consumer_or_group.group_metadata()
            self._consumers.append(consumer_or_group)
        else:
            raise ConfigError("commit_offsets() takes a group consumer, its group_metadata() or a group name, "
                              f"got {consumer_or_group!r}")
        if not isinstance(offsets, Mapping):
            raise ConfigError(f"offsets must be a mapping of TopicPartition to offset, got {offsets!r}")
        checked = {topic_partition(tp): off for tp, off in offsets.items()}
        for tp, off in checked.items():
            split_offset(tp, off)  # (InvalidOffsetError now, not an aborted commit later)
        if isinstance(consumer_or_group, GroupMetadata):  # the partitions its member owned when it was made
            if consumer_or_group._consumer is not None:
                membership = consumer_or_group._consumer._membership
                if membership is not None:
                    membership.check_process()  # (made before a fork: the member is the parent's)
                self._consumers.append(consumer_or_group._consumer)
                self._owned.append((consumer_or_group._consumer, consumer_or_group._ownership(checked)))
        else:
            ownership = getattr(consumer_or_group, "_ownership", None)  # (a Consumer's, not a shim's object)
            if ownership is not None:
                self._owned.append((consumer_or_group, ownership(checked)))
        self._offsets.append((validate_group(group), member, checked, unfenced))
        if self._began is None:
            self._began = time.monotonic()

    def put_source_offsets(self, mirror: str, topic: str, remote_topic: str,
                           offsets: Mapping[int, tuple[int, int]]) -> None:
        """Record, with the transaction, where a Kafka bridge's records came from:
        ``{remote partition: (next remote offset, remote end offset)}`` of ``remote_topic``
        for local ``topic`` (see ``storage/mirrors.py``; used by ``embedlog.bridge``)."""
        self._check()
        self._sources.append((mirror, topic, remote_topic, dict(offsets)))

    def _fence_by(self, transactional_id: str, epoch: int) -> None:
        """Commit only while ``epoch`` is still the transactional id's epoch (checked in
        the commit's write transaction; ``ProducerFencedError`` causes the abort if a newer
        producer initialized the id meanwhile, in any process).  Used by ``embedlog.compat``."""
        self._fence = (transactional_id, epoch)

    def _write_offsets(self, txn: lmdb.Transaction) -> None:
        if self._fence is not None:
            producer_epochs.check(txn, self._log._store.dbs, *self._fence)
        for consumer, then in self._owned:  # (the group's own check below sees the owner only)
            unowned = [tp for tp, n in then.items() if n is None]
            if unowned and consumer._subscription:  # (as consumer.commit: a member commits what it was given)
                tp = unowned[0]
                member = consumer._membership.member_id if consumer._membership is not None else None
                raise NotAssignedError(
                    f"{tp.topic}[{tp.partition}] is not assigned to member {member} of group {consumer.group!r} "
                    "(no on_assign had given it when the transaction took its offset): only its owned partitions "
                    "can be committed; poll() to learn the assignment")
            now = consumer._ownership(then)
            # (one not owned now: the group's check below says it is not assigned)
            moved = [tp for tp, n in then.items() if n is not None and now[tp] is not None and now[tp] != n]
            if moved:
                tp = moved[0]
                raise IllegalGenerationError(
                    f"{tp.topic}[{tp.partition}] went to another member of group {consumer.group!r} and came back "
                    "since this transaction took its offset (that member may have processed and committed it): the "
                    "transaction is fenced; poll() and process the records again")
        coord = self._log._coordinator
        for group, member, offsets, unfenced in self._offsets:
            # (unfenced: the Kafka clients' by group name, whose metadata is never the bridge's progress)
            coord.commit_in(txn, group, offsets, member, unfenced=unfenced, beyond_end=unfenced,
                            progress_ok=not unfenced)
        dbs = self._log._store.dbs
        for mirror, topic, remote_topic, sources in self._sources:
            mirrors.put_source_offsets(txn, dbs, mirror, topic, remote_topic, sources)

    def commit(self) -> None:
        """Write everything; raise ``TransactionAbortedError`` (nothing written) on failure,
        ``ClosedError`` if the log or producer was closed first (nothing written).
        Once written, it raises the first exception a delivery callback raised (every
        callback was still called), as ``Producer.flush`` does."""
        self._check()
        self._done = True
        producer = self._producer
        try:
            if producer.acks == "all" and len(producer):
                producer._check_replicas(then="")  # Kafka's NOT_ENOUGH_REPLICAS: nothing written (nor kept)
            producer._write(self._write_offsets if self._offsets or self._sources or self._fence else None)
        except ClosedError as exc:  # (the log was closed first: nothing of it was written)
            producer._fail_buffered(exc)  # (records the write never took: their callbacks learn it)
            raise
        except EmbedlogError as exc:
            if self._log._closing or self._log.closed:  # (closed meanwhile by another thread: its consumers left)
                closed = ClosedError("the log of this transaction was closed while it committed, which aborted it: "
                                     "nothing of it was written; open the log again and start a new transaction")
                producer._fail_buffered(closed)
                raise closed from exc
            aborted = TransactionNotLeaderError if isinstance(exc, NotLeaderError) else TransactionAbortedError
            reason = str(exc)
            if any(_closed(c) for c in self._consumers):  # (not the zombie the group's error says)
                reason = "the consumer whose offsets it commits was closed, which took it out of its group"
            error = aborted(f"transaction aborted, nothing of it was written: {reason}")
            producer._fail_buffered(error)
            raise error from exc
        finally:
            producer._mark_closed()
        if producer.acks == "all":
            producer._await_replicas(None)  # written; NotEnoughReplicasError or TimeoutError: not confirmed
        producer._raise_callback_error()  # (committed: as flush does)

    def abort(self) -> None:
        """Discard everything sent and committed in this transaction; the records'
        delivery callbacks get ``TransactionAbortedError``."""
        if self._done:
            return
        self._done = True
        self._producer._fail_buffered(TransactionAbortedError(
            "the transaction was aborted (abort(), or an exception in its with block): this record was not written"))
        self._producer._mark_closed()

    def _discard(self) -> None:
        """``abort`` without calling the delivery callbacks (the Kafka-client shims
        report their messages' fate themselves)."""
        if self._done:
            return
        self._done = True
        self._producer._drain([])
        self._producer._mark_closed()

    def _check(self) -> None:
        if self._done:
            raise ClosedError("this transaction has already committed or aborted; start a new one")
        if self._producer.closed:  # (its log was closed: that aborted it; not _done: the block's exit raises too)
            raise ClosedError("the log of this transaction was closed, which aborted it: nothing of it was "
                              "written; open the log again and start a new transaction")

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            if not self._done:  # tx.abort() inside the block: nothing left to do
                self.commit()
        else:
            self.abort()
