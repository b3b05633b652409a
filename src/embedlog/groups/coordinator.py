"""The group coordinator without a broker: group state and committed offsets in LMDB.

Every change to a group runs in one LMDB write transaction of the log directory, so
members in any thread or process see the same sequence of generations.  Liveness is
kept outside LMDB, in heartbeat files under ``<log>/groups/`` whose modification time
each member's heartbeat thread refreshes (no fsync: liveness need not survive a crash);
a member whose file is older than its ``session_timeout_ms`` is removed by whichever
member notices first.

Membership changes and offset commits go through the log's ``GroupCommitter``: calls
from several threads at once share one write transaction (one fsync), each keeping its
own result and its own error (a fenced commit fails alone).  After every membership
change the coordinator grants each free partition to its target member, so a partition
let go reaches its new owner in the same transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs
import lmdb

from ..errors import (
    ConfigError,
    GroupError,
    IllegalGenerationError,
    InvalidOffsetError,
    NotAssignedError,
    NotLeaderError,
    UnknownGroupError,
    UnknownPartitionError,
)
from ..model import TopicPartition, topic_partition
from ..storage import counters, mirrors, schema, topics
from ..storage import partition as plog
from ..storage.mirrors import is_source_group
from ..storage.offsets_version import bump_offsets_version
from ..storage.store import Store, now_ms
from . import offsets as offs
from .offsets import OffsetAndMetadata
from .state import GroupState, Member

if TYPE_CHECKING:
    from ..writer import GroupCommitter

__all__ = ["Coordinator", "GroupDescription", "LagMap", "MemberDescription", "PartitionOffsets", "partition_list",
           "validate_group"]

T = TypeVar("T")
#: LMDB's 511-byte key limit less the NUL and 8 bytes a committed offset's key adds to the group name
MAX_GROUP_BYTES = 502
#: a member id longer than this in UTF-8 gets a digest for its heartbeat file name
_MAX_FILE_NAME = 255  # (NAME_MAX: every id that was a file name stays one)
_NOT_IN_FILE_NAMES = ("/", "\x00", os.sep, os.altsep or "/")
Snapshot = tuple[int, GroupState | None, dict[str, int]]  # Coordinator.look: version, state, partitions


@attrs.frozen
class MemberDescription:
    """One live member of a group and the partitions it owns."""

    member_id: str
    client_id: str
    topics: tuple[str, ...]
    partitions: tuple[TopicPartition, ...]


@attrs.frozen
class PartitionOffsets:
    """A group's position in one partition: committed offset, end offset, lag, and the
    metadata committed with the offset (``None`` where nothing was committed)."""

    topic: str
    partition: int
    committed: int | None
    end_offset: int
    lag: int | None
    owner: str | None
    metadata: str | None = None


class LagMap(dict[TopicPartition, "int | None"]):
    """``GroupDescription.lag``: a dict of lag per partition, which may also be called
    (``desc.lag()``, the form of earlier versions) for the same mapping."""

    __slots__ = ()

    def __call__(self) -> dict[TopicPartition, int | None]:
        return dict(self)


@attrs.frozen
class GroupDescription:
    """A snapshot of a group, as ``Log.describe_group`` returns it."""

    group: str
    state: str
    protocol: str
    generation: int
    members: tuple[MemberDescription, ...]
    offsets: tuple[PartitionOffsets, ...]

    @property
    def lag(self) -> LagMap:
        """Lag per partition, ``{TopicPartition: end offset - committed offset}``
        (``None`` where nothing was committed): ``desc.lag[tp]``; ``desc.lag()`` gives
        the same mapping."""
        return LagMap({TopicPartition(o.topic, o.partition): o.lag for o in self.offsets})

    @property
    def total_lag(self) -> int:
        """Lag summed over partitions with a committed offset."""
        return sum(o.lag or 0 for o in self.offsets)


def validate_group(name: object) -> str:
    """A group id is a non-empty str without NUL, at most ``MAX_GROUP_BYTES`` in UTF-8."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ConfigError(f"group must be a non-empty str without NUL characters, got {name!r}")
    size = offs.utf8_size(name)
    if size is None:
        raise ConfigError(f"group {name!r} cannot be encoded as UTF-8 (it holds a lone surrogate, as from "
                          "bytes decoded with errors='surrogateescape'); use a valid Unicode string")
    if size > MAX_GROUP_BYTES:
        raise ConfigError(f"group name is {size} bytes in UTF-8; the limit is {MAX_GROUP_BYTES}: use a shorter name")
    if is_source_group(name):
        raise ConfigError("group names beginning with U+0001 are reserved for Kafka bridge source offsets, "
                          f"got {name!r}")
    return name


def partition_list(partitions: object, what: str) -> list[TopicPartition]:
    """``partitions``, a collection of ``TopicPartition``, as a list; ``ConfigError`` for
    anything else (``InvalidTopicError`` for a bad topic name, ``UnknownPartitionError``
    for a partition number no topic can have)."""
    if isinstance(partitions, (str, bytes)) or not isinstance(partitions, Iterable) or (
            isinstance(partitions, tuple) and len(partitions) == 2 and isinstance(partitions[0], str)):
        lone = isinstance(partitions, tuple) and len(partitions) == 2
        raise ConfigError(f"{what} takes a list of TopicPartition, got {partitions!r}"
                          + ("; wrap a single one in a list: [tp]" if lone else ""))
    out = [topic_partition(tp) for tp in partitions]
    for tp in out:
        topics.validate_name(tp.topic)
        if not 0 <= tp.partition < topics.MAX_PARTITIONS:
            raise UnknownPartitionError(f"partition {tp.partition} of {tp.topic!r} cannot exist: partitions are "
                                        f"numbered 0..{topics.MAX_PARTITIONS - 1}")
    return out


def datetime_ms(when: datetime) -> int:
    """Milliseconds since the epoch of ``when`` (local time if naive), clamped at 0;
    ``ConfigError`` for one the platform cannot convert (year 1, say)."""
    try:
        return max(0, int(when.timestamp() * 1000))
    except (ValueError, OverflowError, OSError) as exc:
        raise ConfigError(f"the date-time {when.isoformat()} is out of range ({exc}): give one after 1970") from None


#: how often a heartbeat tries to make its file when its group's directory keeps vanishing
_HB_TRIES = 20
#: how old a heartbeat file of no member must be before ``sweep_heartbeats`` removes it (s):
#: far longer than a join takes between making the file and storing the member
ORPHAN_AGE_S = 60.0


def _hb_name(member_id: str) -> str:
    """A member's heartbeat file name: its id, or a digest of it where the id (made from
    the free-text ``client_id``) cannot be a file name (a separator, NUL, too long)."""
    raw = member_id.encode("utf-8", "surrogatepass")
    if len(raw) <= _MAX_FILE_NAME and not any(c in member_id for c in _NOT_IN_FILE_NAMES):
        return member_id
    return "~" + hashlib.sha1(raw).hexdigest()  # noqa: S324 - a name (never a member id: those end in -<hex>)


class Coordinator:
    """Group operations over one ``Store``. Thread-safe (every call is one transaction)."""

    def __init__(self, store: Store, committer: GroupCommitter | None = None) -> None:
        self.store = store
        self.dbs = store.dbs
        self.hb_root = os.path.join(store.path, "groups")
        self.committer = committer
        # Caches shared by this process's members (races only cost a redundant read):
        # when each member's heartbeat was last seen to keep it alive until, per group;
        # each group's last parsed state and each topic's metadata, with the stored
        # bytes they were parsed from (equal bytes: the same value).
        self._alive_until: dict[str, dict[str, float]] = {}
        self._parsed: dict[str, tuple[bytes, GroupState]] = {}
        self._topics: dict[str, tuple[bytes, topics.TopicMeta]] = {}

    def _write(self, fn: Callable[[lmdb.Transaction], T], *, membership: bool = False) -> T:
        """Run ``fn(txn)`` in a write transaction shared (group commit) with this process's
        concurrent writers; its errors are its own.  Everyone polling is woken after.

        A replica cannot take part in group commit (it appends nothing and refuses to);
        ``membership`` changes there run in their own transaction.
        """
        if self.committer is None:
            return self.store.write(fn, notify=True)
        box: list[T] = []

        def extra(txn: lmdb.Transaction) -> None:
            box[:] = [fn(txn)]

        try:
            self.committer.append((), extra)
        except NotLeaderError:
            if not membership:
                raise
            return self.store.write(fn, notify=True)
        return box[0]

    # -- heartbeat files ------------------------------------------------------------------
    def _hb_dir(self, group: str) -> str:
        return os.path.join(self.hb_root, hashlib.sha1(group.encode()).hexdigest()[:20])  # noqa: S324 - a name

    def heartbeat(self, group: str, member_id: str) -> None:
        """Refresh a member's heartbeat file (made, with its group's directory, if missing)."""
        path = os.path.join(self._hb_dir(group), _hb_name(member_id))
        try:
            os.utime(path)
        except FileNotFoundError:
            for attempt in range(_HB_TRIES):
                with contextlib.suppress(FileExistsError):
                    os.makedirs(self._hb_dir(group))
                try:
                    with open(path, "wb"):
                        pass
                    return
                except FileNotFoundError:  # the group's last member left, or a sweep, removed it meanwhile
                    if attempt == _HB_TRIES - 1:
                        raise

    def forget(self, group: str, member_id: str) -> None:
        """Remove a member's heartbeat file, and its group's directory once empty (a group
        name used once leaves nothing behind)."""
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self._hb_dir(group), _hb_name(member_id)))
        self.forget_group(group)

    def _uncache(self, group: str) -> None:
        """Forget what is cached of ``group``, deleted or expired: nothing of it is kept,
        however many groups come and go in a long-running process."""
        self._parsed.pop(group, None)
        self._alive_until.pop(group, None)

    def forget_group(self, group: str, members: Iterable[str] = ()) -> None:
        """Remove the heartbeat files of ``members`` (dead ones of a deleted group), then
        the group's directory if no file is left in it (a member alive, or joining now,
        keeps it; files of no member go with ``sweep_heartbeats``)."""
        path = self._hb_dir(group)
        for mid in members:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(path, _hb_name(mid)))
        with contextlib.suppress(OSError):
            os.rmdir(path)

    def sweep_heartbeats(self, now: float | None = None) -> int:
        """Remove heartbeat files that belong to no member of any group once they are
        ``ORPHAN_AGE_S`` old, and the group directories left empty; return how many files
        went.  Such files are left by a member killed between making its file and joining,
        or removed while paused (its heartbeat thread makes the file again before it
        rejoins under a new id).  (A joining member's file is younger: it is kept.)"""
        try:
            dirs = os.listdir(self.hb_root)
        except OSError:
            return 0
        if not dirs:
            return 0
        now = time.time() if now is None else now

        def owned(txn: lmdb.Transaction) -> dict[str, set[str]]:
            out: dict[str, set[str]] = {}
            with txn.cursor(db=self.dbs["groups"]) as cur:
                for raw_key, raw_value in cur:
                    state = GroupState.from_json(bytes(raw_key).decode("utf-8"), bytes(raw_value))
                    out[os.path.basename(self._hb_dir(state.name))] = {_hb_name(m) for m in state.members}
            return out

        members = self.store.read(owned)
        removed = 0
        for d in dirs:
            path = os.path.join(self.hb_root, d)
            keep = members.get(d, set())
            try:
                names = os.listdir(path)
            except OSError:
                continue
            for name in names:
                if name in keep:
                    continue
                f = os.path.join(path, name)
                try:
                    if now - os.stat(f).st_mtime < ORPHAN_AGE_S:
                        continue
                    os.unlink(f)
                    removed += 1
                except OSError:
                    continue
            with contextlib.suppress(OSError):
                os.rmdir(path)
        return removed

    def expired(self, state: GroupState, now: float | None = None, *, keep: str | None = None) -> list[str]:
        """Members whose heartbeat is older than their session timeout.

        A heartbeat file seen with mtime ``t`` proves its member alive until ``t`` plus
        its session timeout (heartbeats only move ``t`` forward), so until then it is
        not looked at again: a join of 16 members does not stat 16 files 16 times.
        """
        now = time.time() if now is None else now
        known = self._alive_until.get(state.name, {})
        alive: dict[str, float] = {}
        out = []
        for mid in state.members:
            if mid == keep:
                continue
            until = known.get(mid, 0.0)
            if now <= until:
                alive[mid] = until
                continue
            beat = self._beat_until(state, mid)
            until = float("-inf") if beat is None else beat
            if now > until:
                out.append(mid)
            else:
                alive[mid] = until
        if alive:
            self._alive_until[state.name] = alive
        else:  # (no live member: nothing worth keeping for a group that may never come back)
            self._alive_until.pop(state.name, None)
        return out

    # -- state in LMDB ----------------------------------------------------------------------
    def load(self, txn: lmdb.Transaction, group: str) -> GroupState | None:
        """The group's state, or ``None``."""
        raw = txn.get(group.encode(), db=self.dbs["groups"])
        return None if raw is None else GroupState.from_json(group, bytes(raw))

    def _load_shared(self, txn: lmdb.Transaction, group: str) -> GroupState | None:
        """``load``, parsed once per stored version and shared: read it, never change it."""
        raw = txn.get(group.encode(), db=self.dbs["groups"])
        if raw is None:
            self._uncache(group)
            return None
        raw = bytes(raw)
        cached = self._parsed.get(group)
        if cached is not None and cached[0] == raw:
            return cached[1]
        state = GroupState.from_json(group, raw)
        self._parsed[group] = (raw, state)
        return state

    def _topic(self, txn: lmdb.Transaction, name: str) -> topics.TopicMeta:
        """``topics.require``, parsed once per stored version."""
        raw = txn.get(name.encode(), db=self.dbs["topics"])
        if raw is None:
            return topics.require(txn, self.dbs, name)  # raises UnknownTopicError
        raw = bytes(raw)
        cached = self._topics.get(name)
        if cached is not None and cached[0] == raw:
            return cached[1]
        meta = topics.require(txn, self.dbs, name)
        self._topics[name] = (raw, meta)
        return meta

    def save(self, txn: lmdb.Transaction, state: GroupState) -> None:
        """Store the group's state and bump ``groups_version``; a group stored without
        members keeps the time it was first stored so (``empty_ms``)."""
        if state.members:
            state.empty_ms = None
        elif state.empty_ms is None:
            state.empty_ms = now_ms()
        txn.put(state.name.encode(), state.to_json(), db=self.dbs["groups"])
        self._bump(txn)

    def _bump(self, txn: lmdb.Transaction) -> None:
        counters.bump(txn, self.dbs, schema.META_GROUPS_VERSION)

    def version(self) -> int:
        """A number that changes whenever a group or a topic changes: ``groups_version``
        plus ``topics_version`` (both only grow, so the sum changes iff either does).

        Topics count because partitions added to a subscribed topic must make members
        look at the group again (``sync`` then rebalances onto them)."""

        def fn(txn: lmdb.Transaction) -> int:
            return self.store.meta_int(txn, schema.META_GROUPS_VERSION) + topics.version(txn, self.dbs)

        return self.store.read(fn)

    def partitions(self, txn: lmdb.Transaction, names: Iterable[str]) -> dict[str, int]:
        """Partition count of each existing topic among ``names``."""
        out = {}
        for name in names:
            meta = topics.get(txn, self.dbs, name)
            if meta is not None:
                out[name] = meta.partitions
        return out

    def _counts(self, txn: lmdb.Transaction, state: GroupState, more: Iterable[str] = ()) -> dict[str, int]:
        """What ``GroupState.rebalance`` takes: the partition count of every existing topic
        that is subscribed, owned, or in ``more``."""
        return self.partitions(txn, set(state.subscribed_topics()) | state.owned_topics() | set(more))

    def change(self, group: str, fn: Any) -> Any:
        """Run ``fn(txn, state)`` on the group's state in a write transaction, then grant
        free partitions to their target members; save the state if ``fn`` returned a
        truthy ``changed`` first element or something was granted; wake every poller."""

        def body(txn: lmdb.Transaction) -> Any:
            state = self.load(txn, group) or GroupState(group)
            changed, result = fn(txn, state)
            if state.grant() or changed:
                self.save(txn, state)
            return result

        return self._write(body, membership=True)

    def join(self, group: str, member: Member, protocol: str) -> GroupState:
        """Add a member (removing expired ones first); return the new state."""
        if not GroupState.valid_protocol(protocol):
            raise ConfigError(f"unknown partition_assignment_strategy {protocol!r}; use range, roundrobin "
                              "or cooperative-sticky")
        self.heartbeat(group, member.member_id)

        removed: list[str] = []

        def fn(txn: lmdb.Transaction, state: GroupState) -> tuple[bool, GroupState]:
            dead = self.expired(state, keep=member.member_id)
            removed[:] = dead
            if dead:
                state.leave(dead, self._counts(txn, state))
            if not set(state.members) - {member.member_id}:  # (the first live member: a bridge's progress
                self._refuse_mirror(txn, group, "join")  # is no group for consumers)
            if state.members and state.protocol != protocol:
                raise GroupError(
                    f"group {group!r} uses the {state.protocol!r} assignor and this consumer asked for "
                    f"{protocol!r}; every member of a group must use the same partition_assignment_strategy")
            state.join(member, protocol, self._counts(txn, state, member.topics))
            return True, state  # the change grants the member what is free of its target

        state: GroupState = self.change(group, fn)
        for mid in removed:  # (their heartbeat files, as every other removal of the dead does)
            self.forget(group, mid)
        return state

    def leave(self, group: str, member_ids: Iterable[str]) -> None:
        """Remove members (a consumer closing, or members found dead)."""
        ids = list(member_ids)

        def fn(txn: lmdb.Transaction, state: GroupState) -> tuple[bool, None]:
            changed = state.leave(ids, self._counts(txn, state))
            return changed, None

        self.change(group, fn)

    def sync(self, group: str, member_id: str,
             release: Iterable[TopicPartition]) -> tuple[GroupState, list[tuple[str, int]]]:
        """Release ``release`` (granting it to its new owners), rebalance if topics
        changed, claim what is free; return the state and the partitions newly claimed."""
        rel = [(tp[0], tp[1]) for tp in release]

        def fn(txn: lmdb.Transaction, state: GroupState) -> tuple[bool, tuple[GroupState, list[tuple[str, int]]]]:
            if member_id not in state.members:
                return False, (state, [])
            changed = bool(state.release(member_id, rel))
            parts = self.partitions(txn, state.subscribed_topics())
            if parts != state.covered():
                state.rebalance(self._counts(txn, state))
                changed = True
            claimed = state.claim(member_id)
            return changed or bool(claimed), (state, claimed)

        result: tuple[GroupState, list[tuple[str, int]]] = self.change(group, fn)
        return result

    @overload
    def look(self, group: str) -> Snapshot: ...

    @overload
    def look(self, group: str, unless: int) -> Snapshot | None: ...

    def look(self, group: str, unless: int | None = None) -> Snapshot | None:
        """``(version, state, partition count per subscribed topic)`` in one snapshot, or
        ``None`` if the version (see ``version``) is still ``unless``.

        The state may be shared with this process's other members: read it, never
        change it.  (Every member looks after every change; parsing it once is enough.)
        """

        def fn(txn: lmdb.Transaction) -> Snapshot | None:
            version = self.store.meta_int(txn, schema.META_GROUPS_VERSION) + topics.version(txn, self.dbs)
            if version == unless:
                return None
            state = self._load_shared(txn, group)
            return version, state, {} if state is None else self.partitions(txn, state.subscribed_topics())

        return self.store.read(fn)

    # -- committed offsets ----------------------------------------------------------------
    def commit_in(self, txn: lmdb.Transaction, group: str, offsets: Mapping[TopicPartition, Any],
                  member_id: str | None, *, unfenced: bool = False, beyond_end: bool = False,
                  progress_ok: bool = True) -> None:
        """Write committed offsets inside ``txn``; fenced by ownership when ``member_id``.

        Without ``member_id`` (by group name) the group must have no live members, as
        Kafka refuses a commit from outside a non-empty group (``GroupError``), unless
        ``unfenced``: the Kafka clients' ``send_offsets_to_transaction(offsets,
        group_id)``, which Kafka accepts from a group's own consumers.  Values are an
        ``int`` offset or an ``(offset, metadata)`` pair.  Offsets must be
        ``0 <= offset <= end offset``, unless ``beyond_end`` (the Kafka-client shims: a
        broker takes any offset; reading resets one past the end).  By group name, an up
        mirror's group takes only the bridge's progress metadata, and that only with
        ``progress_ok`` (the Kafka clients' admin calls pass ``False``: metadata they read
        back and write again is not the bridge moving its progress).
        """
        # A replica's committed offsets are the leader's (replication overwrites them).
        self.store.require_leader(txn, "commit offsets")
        if member_id is None and not unfenced and offsets:
            self._require_inactive(txn, group, "commit offsets by group name for",
                                   "commit through a member: consumer.commit(), or tx.commit_offsets(consumer, ...)")
        state = self._load_shared(txn, group) if member_id is not None else None
        if member_id is not None and (state is None or member_id not in state.members):
            raise IllegalGenerationError(
                f"member {member_id} is no longer in group {group!r} (it was removed after missing heartbeats "
                "or polls); its offsets were not committed — poll again to rejoin")
        stamp = now_ms()
        if offsets:
            bump_offsets_version(txn, self.dbs)
        guarded = member_id is None  # (by group name: an up mirror's progress is the bridge's alone to move)
        for raw_tp, value in offsets.items():
            tp = TopicPartition(*raw_tp)
            offset, metadata = offs.split(tp, value)
            if guarded and not (progress_ok and mirrors.is_progress_metadata(metadata)):
                self._refuse_mirror(txn, group, "commit offsets by group name to")
                guarded = False
            meta = self._topic(txn, topics.validate_name(tp.topic))
            if not 0 <= tp.partition < meta.partitions:
                raise UnknownPartitionError(f"topic {tp.topic!r} has partitions 0..{meta.partitions - 1}; "
                                            f"partition {tp.partition} does not exist")
            st = plog.load_state(txn, self.dbs, meta.topic_id, tp.partition)
            if st is None:
                raise UnknownPartitionError(f"topic {tp.topic!r} has no partition {tp.partition}")
            if offset > st.end_offset and not beyond_end:
                raise InvalidOffsetError(
                    f"cannot commit offset {offset} for {tp.topic}[{tp.partition}]: its end offset is "
                    f"{st.end_offset} (a committed offset is the next offset to read)")
            if state is not None and state.owner_of(tp) != member_id:
                raise NotAssignedError(
                    f"{tp.topic}[{tp.partition}] is not assigned to member {member_id} of group {group!r} "
                    f"(generation {state.generation}): only the partition's owner can commit its offset — a "
                    "rebalance may have moved it; poll() to learn the assignment")
            txn.put(schema.committed_key(group, meta.topic_id, tp.partition),
                    offs.encode(offset, st.leader_epoch, stamp, metadata), db=self.dbs["offsets"])

    def commit(self, group: str, offsets: Mapping[TopicPartition, Any], member_id: str | None = None, *,
               beyond_end: bool = False, progress_ok: bool = True) -> None:
        """Commit offsets durably; concurrent commits (and producer flushes) of this
        process share one transaction, each failing alone (fencing, bad offsets)."""
        self._write(lambda txn: self.commit_in(txn, group, offsets, member_id, beyond_end=beyond_end,
                                               progress_ok=progress_ok))

    def committed_in(self, txn: lmdb.Transaction, group: str, tp: TopicPartition) -> int | None:
        """The committed offset of ``tp`` in ``group`` inside ``txn``, or ``None``."""
        meta = topics.get(txn, self.dbs, tp[0])
        if meta is None:
            return None
        raw = txn.get(schema.committed_key(group, meta.topic_id, tp[1]), db=self.dbs["offsets"])
        if raw is None:
            return None
        return int(schema.COMMITTED.unpack_from(bytes(raw), 0)[0])

    def committed_meta_in(self, txn: lmdb.Transaction, group: str, tp: TopicPartition) -> OffsetAndMetadata | None:
        """``committed_in`` with the metadata and leader epoch stored with the offset."""
        meta = topics.get(txn, self.dbs, tp[0])
        if meta is None:
            return None
        raw = txn.get(schema.committed_key(group, meta.topic_id, tp[1]), db=self.dbs["offsets"])
        return None if raw is None else offs.decode(bytes(raw))

    def committed(self, group: str, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """Committed offsets for ``tps``."""
        tps = partition_list(tps, "committed()")
        return self.store.read(lambda txn: {tp: self.committed_in(txn, group, tp) for tp in tps})

    def committed_meta(self, group: str,
                       tps: Iterable[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """Committed offsets with their metadata for ``tps``."""
        tps = partition_list(tps, "committed()")
        return self.store.read(lambda txn: {tp: self.committed_meta_in(txn, group, tp) for tp in tps})

    def committed_offsets(self, group: str, partitions: Iterable[TopicPartition] | None = None
                          ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Every committed offset of ``group`` (of ``partitions`` only, if given), with
        metadata; ``UnknownGroupError`` if the group has neither members nor offsets."""
        wanted = None if partitions is None else set(partition_list(partitions, "committed_offsets()"))

        def fn(txn: lmdb.Transaction) -> dict[TopicPartition, OffsetAndMetadata]:
            committed = self._offsets_of(txn, group)
            if not committed and txn.get(group.encode(), db=self.dbs["groups"]) is None:
                raise UnknownGroupError(f"consumer group {group!r} does not exist; log.groups() lists them")
            return {tp: o for tp, o in committed.items() if wanted is None or tp in wanted}

        return self.store.read(fn)

    def _offsets_of(self, txn: lmdb.Transaction, group: str) -> dict[TopicPartition, OffsetAndMetadata]:
        prefix = group.encode() + b"\x00"
        out: dict[TopicPartition, OffsetAndMetadata] = {}
        with txn.cursor(db=self.dbs["offsets"]) as cur:
            if not cur.set_range(prefix):
                return out
            for raw_key, value in cur:
                key = bytes(raw_key)
                if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                    if not key.startswith(prefix):
                        break
                    continue
                _, tid, part = schema.unpack_committed_key(key)
                meta = topics.get_by_id(txn, self.dbs, tid)
                if meta is not None:
                    out[TopicPartition(meta.name, part)] = offs.decode(bytes(value))
        return out

    # -- administration ---------------------------------------------------------------------
    def groups(self) -> list[str]:
        """Every group with state or committed offsets."""

        def fn(txn: lmdb.Transaction) -> list[str]:
            names: set[str] = set()
            with txn.cursor(db=self.dbs["groups"]) as cur:
                names.update(bytes(k).decode() for k in cur.iternext(keys=True, values=False))
            with txn.cursor(db=self.dbs["offsets"]) as cur:
                names.update(schema.unpack_committed_key(bytes(k))[0]
                             for k in cur.iternext(keys=True, values=False))
            return sorted(n for n in names if not is_source_group(n))

        return self.store.read(fn)

    def describe(self, group: str) -> GroupDescription:
        """Members, ownership, committed offsets, end offsets and lag of a group."""

        def fn(txn: lmdb.Transaction) -> GroupDescription:
            state = self.load(txn, group)
            committed = self._offsets_of(txn, group)
            if state is None and not committed:
                raise UnknownGroupError(f"consumer group {group!r} does not exist; log.groups() lists them")
            state = state or GroupState(group)
            dead = set(self.expired(state))
            live = {m: mm for m, mm in state.members.items() if m not in dead}
            members = tuple(
                MemberDescription(mid, m.client_id, tuple(m.topics),
                                  tuple(TopicPartition(*tp) for tp in state.owned_by(mid)))
                for mid, m in sorted(live.items()))
            tps = set(committed)
            for t, n in self.partitions(txn, state.subscribed_topics()).items():
                tps.update(TopicPartition(t, p) for p in range(n))
            rows = []
            for tp in sorted(tps):
                meta = topics.get(txn, self.dbs, tp.topic)
                if meta is None:
                    continue
                st = plog.load_state(txn, self.dbs, meta.topic_id, tp.partition)
                end = st.high_watermark if st else 0  # (what consumers can read: Kafka's lag is to it)
                om = committed.get(tp)
                c = None if om is None else om.offset
                owner = state.owner_of(tp)
                if owner in dead:  # (an expired member owns nothing any more)
                    owner = None
                rows.append(PartitionOffsets(tp.topic, tp.partition, c, end, None if c is None else max(0, end - c),
                                             owner, None if om is None else om.metadata))
            return GroupDescription(group, state.state if live else "Empty", state.protocol, state.generation,
                                    members, tuple(rows))

        return self.store.read(fn)

    def _require_inactive(self, txn: lmdb.Transaction, group: str, what: str,
                          instead: str = "close them first") -> GroupState | None:
        state = self.load(txn, group)
        if state is not None:
            live = [m for m in state.members if m not in self.expired(state)]
            if live:
                raise GroupError(f"cannot {what} group {group!r}: it has {len(live)} active member(s); "
                                 f"{instead} (Kafka refuses this too)")
        return state

    def _refuse_mirror(self, txn: lmdb.Transaction, group: str, what: str) -> None:
        """``GroupError`` if ``group``'s offsets hold a Kafka bridge up mirror's progress
        (what it has sent to Kafka): without it the mirror would send everything again.
        The placeholder of a mirror that never reached Kafka does not count."""
        prefix = group.encode() + b"\x00"
        with txn.cursor(db=self.dbs["offsets"]) as cur:
            if not cur.set_range(prefix):
                return
            for raw_key, value in cur:
                if not bytes(raw_key).startswith(prefix):
                    return
                if mirrors.is_sent_progress(bytes(value)):
                    raise GroupError(
                        f"cannot {what} group {group!r}: it holds the progress of the Kafka bridge's up mirror "
                        f"{group!r} (what it has sent to Kafka), and without it the mirror would send every record "
                        "again; a mirror's progress is the bridge's to move. To retire the mirror for good, "
                        f"`embedlog bridge forget {group}` (embedlog.bridge.forget_mirror) deletes its progress")

    def reset_offsets(self, group: str, topic: str, to: object) -> dict[TopicPartition, int]:
        """Set the group's committed offsets of every partition of ``topic``."""
        validate_group(group)
        topics.validate_name(topic)
        to_ms = datetime_ms(to) if isinstance(to, datetime) else None

        def fn(txn: lmdb.Transaction) -> dict[TopicPartition, int]:
            self._require_inactive(txn, group, "reset offsets of")
            self._refuse_mirror(txn, group, "reset offsets of")
            meta = topics.require(txn, self.dbs, topic)
            out = {}
            for p in range(meta.partitions):
                st = plog.load_state(txn, self.dbs, meta.topic_id, p)
                if st is None:
                    continue
                if to == "earliest":
                    off = st.start_offset
                elif to == "latest":
                    off = st.high_watermark  # (Kafka's LATEST)
                elif to_ms is not None:
                    hit = plog.offset_for_time(txn, self.dbs, topic, meta.topic_id, p, to_ms)
                    off = st.high_watermark if hit is None else hit[0]
                elif isinstance(to, int) and not isinstance(to, bool):
                    off = min(max(to, st.start_offset), st.high_watermark)  # (what consumers can read)
                else:
                    raise ConfigError(f"to= must be 'earliest', 'latest', an offset or a datetime, got {to!r}")
                out[TopicPartition(topic, p)] = off
            self.commit_in(txn, group, out, None)
            return out

        return self.store.write(fn)

    def expire_offsets(self, retention_ms: int, now: int | None = None) -> int:
        """Kafka's ``offsets.retention`` (KIP-211); return how many offsets it deleted.

        A group with a live member keeps everything.  A group without one loses its state
        and every committed offset once ``retention_ms`` passed since it became empty
        (the last member left, or the last heartbeat of members that died; for a group
        stored empty by a version that did not record when, its last commit) and since
        its last commit.  Offsets committed by group name with no membership ever
        (standalone consumers) expire one by one, ``retention_ms`` after each commit.  A
        Kafka bridge's progress never expires, nor any offset of a group that holds
        some; and nothing expires on a replica (its offsets are its leader's)."""
        now = now_ms() if now is None else now
        dbs = self.dbs

        def fn(txn: lmdb.Transaction, *, dry: bool = False) -> tuple[int, list[GroupState]]:
            if self.store.role(txn) != "leader":
                return 0, []
            stamps: dict[str, list[tuple[bytes, int]]] = {}  # group -> (offsets key, commit ms)
            exempt: set[str] = set()
            with txn.cursor(db=dbs["offsets"]) as cur:
                for raw_key, raw_value in cur:
                    key = bytes(raw_key)
                    if len(key) < 9 or key[-9] != 0:
                        continue
                    group = key[:-9].decode("utf-8")
                    value = bytes(raw_value)
                    if is_source_group(group) or mirrors.is_progress(value):
                        exempt.add(group)
                    else:
                        stamps.setdefault(group, []).append((key, schema.COMMITTED.unpack_from(value, 0)[2]))
            with txn.cursor(db=dbs["groups"]) as cur:
                names = {bytes(k).decode("utf-8") for k in cur.iternext(keys=True, values=False)}
            deleted = 0
            gone: list[GroupState] = []
            for group in sorted((names | set(stamps)) - exempt):
                entries = stamps.get(group, [])
                state = self.load(txn, group)
                if state is None:  # standalone commits: each by its own time
                    doomed = [key for key, stamp in entries if now - stamp >= retention_ms]
                else:
                    if state.members:
                        if len(self.expired(state, now / 1000)) < len(state.members):
                            continue  # a live member
                        since = max(self._last_alive_ms(state, m) for m in state.members)
                    else:
                        since = state.empty_ms or 0  # (stored empty by an older version: its last commit)
                    if now - max([since, *(stamp for _, stamp in entries)]) < retention_ms:
                        continue
                    doomed = [key for key, _ in entries]
                    if not dry:
                        txn.delete(group.encode(), db=dbs["groups"])
                    gone.append(state)
                if not dry:
                    for key in doomed:
                        txn.delete(key, db=dbs["offsets"])
                deleted += len(doomed)
            if dry:
                return deleted, gone
            if deleted:
                bump_offsets_version(txn, dbs)
            if gone:
                self._bump(txn)
            return deleted, gone

        if self.store.read(lambda txn: fn(txn, dry=True)) == (0, []):
            return 0  # (the common case: no write transaction, no fsync)
        deleted, gone = self.store.write(fn)  # (looked at again: another process may have moved meanwhile)
        for state in gone:  # (their heartbeat files: stale, and a rejoin makes new ones)
            for member_id in state.members:
                self.forget(state.name, member_id)
            self.forget_group(state.name)
            self._uncache(state.name)
        return deleted

    def _beat_until(self, state: GroupState, member_id: str) -> float | None:
        """Wall time (s) until which a member's last heartbeat keeps it alive, or ``None``
        without a heartbeat file."""
        try:
            beat = os.stat(os.path.join(self._hb_dir(state.name), _hb_name(member_id))).st_mtime
        except FileNotFoundError:
            return None
        return beat + state.members[member_id].session_timeout_ms / 1000

    def _last_alive_ms(self, state: GroupState, member_id: str) -> float:
        """Wall ms until which a (dead) member's last heartbeat kept it alive (without a
        heartbeat file: its session timeout after it joined)."""
        until = self._beat_until(state, member_id)
        if until is not None:
            return until * 1000
        m = state.members[member_id]
        return m.joined_ms + m.session_timeout_ms

    def delete(self, group: str) -> None:
        """Delete a group's state and committed offsets (it must have no live members)."""

        def fn(txn: lmdb.Transaction) -> list[str]:
            self.store.require_leader(txn, "delete groups")  # (their committed offsets are the leader's)
            state = self._require_inactive(txn, group, "delete")
            self._refuse_mirror(txn, group, "delete")
            committed = self._offsets_of(txn, group)
            if state is None and not committed:
                raise UnknownGroupError(f"consumer group {group!r} does not exist; log.groups() lists them")
            txn.delete(group.encode(), db=self.dbs["groups"])
            prefix = group.encode() + b"\x00"
            with txn.cursor(db=self.dbs["offsets"]) as cur:
                doomed = []
                if cur.set_range(prefix):
                    for raw_key in cur.iternext(keys=True, values=False):
                        key = bytes(raw_key)
                        if not key.startswith(prefix):
                            break
                        if len(key) == len(prefix) + 8:
                            doomed.append(key)
            for key in doomed:
                txn.delete(key, db=self.dbs["offsets"])
            if doomed:
                bump_offsets_version(txn, self.dbs)
            self._bump(txn)
            return [] if state is None else list(state.members)  # (dead ones: their files go too)

        dead = self.store.write(fn)
        self.forget_group(group, dead)
        self._uncache(group)
