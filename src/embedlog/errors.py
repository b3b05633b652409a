"""The embedlog error tree.

Every error embedlog raises derives from :class:`EmbedlogError`.  Each class also
subclasses the builtin exception it behaves like (``ValueError`` for bad input,
``LookupError`` for something that does not exist, ``OSError`` for the disk), so code
that already catches builtins keeps working.

Each error carries ``code`` — Kafka's protocol error code where Kafka has one for the
same condition (``-1`` otherwise) — and ``retriable``, as in Kafka's clients.
:func:`for_code` maps a Kafka code back to its class.

This module is a leaf: it imports nothing from embedlog.
"""

from __future__ import annotations

import builtins
from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "BridgeError",
    "ClosedError",
    "ConfigError",
    "CorruptRecordError",
    "DeserializationError",
    "DamagedStoreError",
    "DiskFullError",
    "EmbedlogError",
    "FencedLeaderError",
    "ForkError",
    "FormatVersionError",
    "GroupError",
    "IllegalGenerationError",
    "InterruptedWriteError",
    "InvalidOffsetError",
    "InvalidRecordError",
    "InvalidTopicError",
    "LinkDownError",
    "NotAssignedError",
    "NotEnoughReplicasError",
    "NotLeaderError",
    "OffsetOutOfRangeError",
    "ProducerFencedError",
    "RecordTooLargeError",
    "ReplicationBusyError",
    "SerializationError",
    "StorageError",
    "TimeoutError",
    "TopicExistsError",
    "TransactionAbortedError",
    "TransactionNotLeaderError",
    "UncleanPromotionWarning",
    "UnknownGroupError",
    "UnknownPartitionError",
    "UnknownTopicError",
    "UnrelatedLogError",
    "for_code",
]


class EmbedlogError(Exception):
    """Base of every error embedlog raises."""

    code: ClassVar[int] = -1
    retriable: ClassVar[bool] = False


class ClosedError(EmbedlogError, RuntimeError):
    """The log, producer or consumer was closed; open a new one to continue."""


class ForkError(EmbedlogError, RuntimeError):
    """An object was used in a process other than the one that created it."""


class ConfigError(EmbedlogError, ValueError):
    """An unknown configuration key, or a value of the wrong type or range."""

    code = 40  # INVALID_CONFIG


class InvalidTopicError(EmbedlogError, ValueError):
    """A topic name that breaks Kafka's rules (``[a-zA-Z0-9._-]``, 1-249 chars)."""

    code = 17  # INVALID_TOPIC_EXCEPTION


class TopicExistsError(EmbedlogError, ValueError):
    """``create_topic`` for a name that already exists."""

    code = 36  # TOPIC_ALREADY_EXISTS


class UnknownTopicError(EmbedlogError, LookupError):
    """The topic does not exist (and the log does not auto-create topics)."""

    code = 3  # UNKNOWN_TOPIC_OR_PARTITION


class UnknownPartitionError(EmbedlogError, LookupError):
    """A partition number outside ``0 .. partitions-1`` of its topic."""

    code = 3  # UNKNOWN_TOPIC_OR_PARTITION


class RecordTooLargeError(EmbedlogError, ValueError):
    """A record larger than the topic's ``max.message.bytes``."""

    code = 10  # MESSAGE_TOO_LARGE


class InvalidRecordError(EmbedlogError, ValueError):
    """A record the topic cannot take (for example a null key on a compacted topic)."""

    code = 87  # INVALID_RECORD


class SerializationError(EmbedlogError, TypeError):
    """A key or value that is not bytes and no serializer was given."""


class DeserializationError(SerializationError):
    """A consumer's ``key_deserializer`` or ``value_deserializer`` raised for a record
    (Kafka's ``RecordDeserializationException``).  ``topic``, ``partition`` and ``offset``
    name the record; the original exception is ``__cause__``.  The records before it were
    returned by earlier polls and the consumer's position stays at it: every poll raises
    again until the application seeks past it."""

    def __init__(self, message: str, *, topic: str | None = None, partition: int | None = None,
                 offset: int | None = None) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class OffsetOutOfRangeError(EmbedlogError, LookupError):
    """A fetch position outside the partition, with ``auto_offset_reset="none"``."""

    code = 1  # OFFSET_OUT_OF_RANGE


class NotAssignedError(EmbedlogError, LookupError):
    """A partition this consumer is not assigned (seek/position/commit on it)."""


class InvalidOffsetError(EmbedlogError, ValueError):
    """An offset that cannot be used here (negative, or beyond the end offset)."""

    code = 1


class CorruptRecordError(EmbedlogError):
    """A stored batch failed its checksum or could not be decoded."""

    code = 2  # CORRUPT_MESSAGE

    def __init__(self, message: str, *, topic: str | None = None,
                 partition: int | None = None, offset: int | None = None) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class StorageError(EmbedlogError, OSError):
    """The storage layer failed (a damaged file, an I/O error)."""

    code = 56  # KAFKA_STORAGE_ERROR


class DiskFullError(StorageError):
    """The disk is full; nothing written by this call was kept, nothing earlier was lost."""


class DamagedStoreError(StorageError):
    """The log's LMDB file itself is damaged (a page of its B-trees, or its meta pages):
    restore the log from a replica or a backup."""


class FormatVersionError(StorageError):
    """The store was written by a newer (or unknown) embedlog format version."""


class TimeoutError(EmbedlogError, builtins.TimeoutError):  # noqa: A001 - Kafka's name
    """An operation did not finish within its timeout."""

    code = 7  # REQUEST_TIMED_OUT
    retriable = True


class InterruptedWriteError(EmbedlogError):
    """The commit carrying these records was interrupted (Ctrl-C, a signal) in another
    thread while it wrote: they may or may not be stored.  Read them back to know."""


class GroupError(EmbedlogError):
    """Base for consumer-group errors."""


class UnknownGroupError(GroupError, LookupError):
    """The consumer group does not exist."""

    code = 69  # GROUP_ID_NOT_FOUND


class IllegalGenerationError(GroupError):
    """A commit from a member the group removed (its session or poll interval ran out:
    a zombie).  A live member committing a partition a rebalance moved away gets
    ``NotAssignedError``."""

    code = 22  # ILLEGAL_GENERATION


class TransactionAbortedError(EmbedlogError):
    """A transaction could not commit and was rolled back; nothing of it is visible."""

    code = 48  # INVALID_TXN_STATE


class ProducerFencedError(EmbedlogError):
    """A transactional producer whose ``transactional.id`` a newer producer initialized
    since, in this or another process (Kafka's PRODUCER_FENCED): its transaction is
    refused, nothing of it written.  Close it; the newer producer carries on."""

    code = 90  # PRODUCER_FENCED


class NotLeaderError(EmbedlogError):
    """Producing on a replica (a log directory that follows a leader)."""

    code = 6  # NOT_LEADER_OR_FOLLOWER
    retriable = True


class FencedLeaderError(NotLeaderError):
    """A leader whose epoch is older than the follower's: it was replaced by a
    promotion (Kafka's FENCED_LEADER_EPOCH).  The follower refuses to follow it; the
    old leader must be restarted as a follower of the new one."""

    code = 74  # FENCED_LEADER_EPOCH
    retriable = False


class ReplicationBusyError(EmbedlogError, RuntimeError):
    """Another ``Leader`` or ``Follower`` (in this or another process) runs on this log
    directory; stop it first (``promote`` needs a stopped follower)."""


class TransactionNotLeaderError(NotLeaderError, TransactionAbortedError):
    """A transaction committed on a replica: refused, nothing of it written.  Both a
    ``NotLeaderError`` (as producing there) and a ``TransactionAbortedError`` (as any
    transaction that could not commit)."""


class NotEnoughReplicasError(EmbedlogError):
    """Fewer in-sync replicas than the topic's ``min.insync.replicas``."""

    code = 19  # NOT_ENOUGH_REPLICAS
    retriable = True


class AuthenticationError(EmbedlogError):
    """A peer failed authentication."""

    code = 58  # SASL_AUTHENTICATION_FAILED


class UnrelatedLogError(EmbedlogError):
    """A ``Follower`` on a directory holding records that did not come from its leader's
    log (written before following, or replicated from another leader): following would
    delete them, so it refuses.  Nothing was changed; use an empty directory."""

    code = 104  # INCONSISTENT_CLUSTER_ID: Kafka's refusal of a node from another cluster
    retriable = False


class BridgeError(EmbedlogError):
    """A Kafka bridge (``embedlog.bridge.Mirror``) cannot run: the message says why and
    what to change (configuration, a record the remote refuses, a mirror already running)."""


class LinkDownError(BridgeError, builtins.TimeoutError):
    """A Kafka bridge could not reach its cluster in time (nothing was lost: records wait
    in the log and are forwarded once the link returns)."""

    retriable = True


def _all_subclasses(cls: type[EmbedlogError]) -> list[type[EmbedlogError]]:
    """Every subclass, level by level (a class before its subclasses, whichever of its
    bases reaches it first: ``for_code`` returns the most general class of a code)."""
    out: list[type[EmbedlogError]] = []
    level = [cls]
    while level:
        level = [sub for c in level for sub in c.__subclasses__() if sub not in out]
        out.extend(dict.fromkeys(level))
    return out


def for_code(code: int) -> type[EmbedlogError]:
    """Return the error class for a Kafka error code (``EmbedlogError`` if unknown)."""
    for cls in _all_subclasses(EmbedlogError):
        if cls.code == code and code != -1:
            return cls
    return EmbedlogError


class UncleanPromotionWarning(UserWarning):
    """``promote`` of a follower that was out of sync with its leader (not in its in-sync
    set, or behind it) when it last heard from it: records the old leader acknowledged
    with ``acks="all"`` may be missing from the new leader (Kafka's unclean leader
    election).  Promote the most up-to-date node when there is a choice."""
