"""Topic metadata: create, look up, alter and delete topics inside a transaction.

Every function takes an open LMDB transaction and the environment's database handles;
none opens a transaction of its own, so callers compose them atomically.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import lmdb

from ..config import TopicConfig
from ..errors import ConfigError, InvalidTopicError, TopicExistsError, UnknownTopicError
from . import counters, schema
from .offsets_version import bump_offsets_version
from .schema import PartitionState

__all__ = ["TopicMeta", "create", "delete", "get", "get_by_id", "list_names", "validate_name"]

_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_NAME = 249
MAX_PARTITIONS = 1 << 20


@attrs.frozen
class TopicMeta:
    """A topic's identity, partition count and effective config."""

    name: str
    topic_id: int
    partitions: int
    config: TopicConfig
    created_ms: int
    #: random identity given at creation: a topic recreated (here or on another node)
    #: under the same name and id is still a different topic
    uid: str = ""
    #: its ``cleanup.policy`` has included ``compact`` at some time: compaction may have
    #: left gaps between its batches even if the policy no longer does (``verify``)
    was_compacted: bool = False

    @property
    def may_have_gaps(self) -> bool:
        """Whether compaction may have left gaps between its batches (now or before)."""
        return self.config.compact or self.was_compacted


def check_partitions(count: object) -> int:
    """``count`` if it is a partition count a topic may have, else ``ConfigError``."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PARTITIONS:
        raise ConfigError(f"partitions must be an int from 1 to {MAX_PARTITIONS}, got {count!r}")
    return count


def validate_name(name: object) -> str:
    """Apply Kafka's topic-name rules; return the name or raise ``InvalidTopicError``."""
    if not isinstance(name, str):
        raise InvalidTopicError(f"topic name must be a str, got {type(name).__name__}")
    if not name:
        raise InvalidTopicError("topic name is empty; use 1-249 of [a-zA-Z0-9._-]")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name cannot be {name!r}")
    if len(name) > MAX_NAME:
        raise InvalidTopicError(f"topic name is {len(name)} characters; the limit is {MAX_NAME}")
    if not _LEGAL.fullmatch(name):
        raise InvalidTopicError(
            f"topic name {name!r} has characters Kafka does not allow; use only ASCII letters, "
            "digits, '.', '_' and '-'")
    return name


def _decode(name: str, raw: bytes) -> TopicMeta:
    doc = json.loads(bytes(raw))
    return TopicMeta(name, doc["id"], doc["partitions"], TopicConfig.from_overrides(doc["config"]),
                     doc["created_ms"], doc.get("uid", ""), bool(doc.get("compacted", False)))


def _encode(meta: TopicMeta) -> bytes:
    doc: dict[str, Any] = {"id": meta.topic_id, "partitions": meta.partitions, "config": meta.config.overrides,
                           "created_ms": meta.created_ms, "uid": meta.uid}
    if meta.may_have_gaps:  # (absent otherwise: the records of topics never compacted are unchanged)
        doc["compacted"] = True
    return json.dumps(doc, sort_keys=True).encode()


def bump_version(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> None:
    """Tell other processes' caches that topic metadata changed."""
    counters.bump(txn, dbs, schema.META_TOPICS_VERSION)


def version(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> int:
    """The current topics version."""
    return counters.get(txn, dbs, schema.META_TOPICS_VERSION) or 0


def get(txn: lmdb.Transaction, dbs: Mapping[str, Any], name: str) -> TopicMeta | None:
    """The topic named ``name``, or ``None``."""
    raw = txn.get(name.encode(), db=dbs["topics"])
    return None if raw is None else _decode(name, bytes(raw))


def require(txn: lmdb.Transaction, dbs: Mapping[str, Any], name: str) -> TopicMeta:
    """The topic named ``name``, or ``UnknownTopicError``."""
    meta = get(txn, dbs, name)
    if meta is None:
        raise UnknownTopicError(f"topic {name!r} does not exist; log.topics() lists the topics and "
                                "log.create_topic() creates one")
    return meta


def get_by_id(txn: lmdb.Transaction, dbs: Mapping[str, Any], topic_id: int) -> TopicMeta | None:
    """The topic with this id, or ``None`` if it was deleted."""
    raw = txn.get(schema.topic_id_key(topic_id), db=dbs["topic_ids"])
    if raw is None:
        return None
    return get(txn, dbs, bytes(raw).decode())


def list_names(txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> list[str]:
    """All topic names, sorted."""
    with txn.cursor(db=dbs["topics"]) as cur:
        return [bytes(k).decode() for k in cur.iternext(keys=True, values=False)]


def create(txn: lmdb.Transaction, dbs: Mapping[str, Any], name: str, partitions: int,
           config: TopicConfig, now_ms: int, *, leader_epoch: int = 0) -> TopicMeta:
    """Create a topic and its empty partitions."""
    if txn.get(name.encode(), db=dbs["topics"]) is not None:
        raise TopicExistsError(f"topic {name!r} already exists; use describe_topic() or "
                               "alter_topic_config() on it, or pick another name")
    if "." in name or "_" in name:  # Kafka refuses names equal but for '.' and '_' (one metric name)
        alike = name.replace(".", "_")
        for other in list_names(txn, dbs):
            if other.replace(".", "_") == alike:
                raise InvalidTopicError(f"topic {name!r} collides with the existing topic {other!r}: Kafka "
                                        "treats '.' and '_' alike in topic names (its metric names) and "
                                        "refuses such a pair; pick another name")
    raw = txn.get(schema.META_NEXT_TOPIC_ID, db=dbs["meta"])
    topic_id = schema.U32LE.unpack(raw)[0] if raw else 1
    txn.put(schema.META_NEXT_TOPIC_ID, schema.U32LE.pack(topic_id + 1), db=dbs["meta"])
    meta = TopicMeta(name, topic_id, partitions, config, now_ms, uuid.uuid4().hex)
    txn.put(name.encode(), _encode(meta), db=dbs["topics"])
    txn.put(schema.topic_id_key(topic_id), name.encode(), db=dbs["topic_ids"])
    for p in range(partitions):
        state = PartitionState(leader_epoch=leader_epoch)
        txn.put(schema.partition_key(topic_id, p), state.pack(), db=dbs["partitions"])
    bump_version(txn, dbs)
    return meta


def add_partitions(txn: lmdb.Transaction, dbs: Mapping[str, Any], meta: TopicMeta, total: int,
                   *, leader_epoch: int = 0) -> TopicMeta:
    """Grow a topic to ``total`` partitions (Kafka never shrinks a topic)."""
    new = attrs.evolve(meta, partitions=total)
    for p in range(meta.partitions, total):
        txn.put(schema.partition_key(meta.topic_id, p), PartitionState(leader_epoch=leader_epoch).pack(),
                db=dbs["partitions"])
    txn.put(meta.name.encode(), _encode(new), db=dbs["topics"])
    bump_version(txn, dbs)
    return new


def set_config(txn: lmdb.Transaction, dbs: Mapping[str, Any], meta: TopicMeta,
               config: TopicConfig) -> TopicMeta:
    """Replace a topic's config."""
    new = attrs.evolve(meta, config=config, was_compacted=meta.may_have_gaps)
    txn.put(meta.name.encode(), _encode(new), db=dbs["topics"])
    bump_version(txn, dbs)
    return new


def delete_prefix(txn: lmdb.Transaction, db: Any, prefix: bytes) -> None:
    """Delete every key of ``db`` that starts with ``prefix``."""
    with txn.cursor(db=db) as cur:
        if not cur.set_range(prefix):
            return
        while bytes(cur.key()[: len(prefix)]) == prefix:
            if not cur.delete() or not cur.key():
                break


def delete(txn: lmdb.Transaction, dbs: Mapping[str, Any], meta: TopicMeta) -> None:
    """Delete a topic with all its batches, epochs and committed offsets."""
    prefix = schema.topic_id_key(meta.topic_id)
    for db in ("batches", "partitions", "epochs"):
        delete_prefix(txn, dbs[db], prefix)
    # committed offsets are keyed by group first: scan them all (groups are few).
    with txn.cursor(db=dbs["offsets"]) as cur:
        doomed = [bytes(k) for k in cur.iternext(keys=True, values=False) if bytes(k[-8:-4]) == prefix]
    for key in doomed:
        txn.delete(key, db=dbs["offsets"])
    if doomed:
        bump_offsets_version(txn, dbs)
    txn.delete(meta.name.encode(), db=dbs["topics"])
    txn.delete(schema.topic_id_key(meta.topic_id), db=dbs["topic_ids"])
    bump_version(txn, dbs)
