"""One consumer's membership in a group: join, heartbeat, follow rebalances.

``Membership`` runs in two places: on the consumer's own thread inside ``poll``
(``reconcile``: call ``on_revoke``, release, claim, call ``on_assign``), and on a
heartbeat thread (refresh the heartbeat file, leave the group when ``poll`` has not been
called for ``max_poll_interval_ms``, remove members whose heartbeats stopped).

``reconcile`` runs on every poll, so its common case costs no LMDB read: every group
change wakes the log's notifier (in this process, and in others over the wake
sockets), so while the notifier's generation has not moved since the last look, the
group has not changed either.  A look every ``_RECHECK_S`` bounds the delay should a
wake-up be lost.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..config import check_callable, check_int
from ..errors import ConfigError, EmbedlogError, ForkError
from ..model import TopicPartition
from ..storage.env import current_pid
from .assignors import EAGER
from .coordinator import Coordinator
from .state import GroupState, Member

if TYPE_CHECKING:
    from ..consumer import Consumer

__all__ = ["Membership", "RebalanceCallback", "check_group_options"]

RebalanceCallback = Callable[..., Any]
_RECHECK_S = 0.25  # look at the group at least this often, wake-ups or not


def check_group_options(*, protocol: object, session_timeout_ms: object, heartbeat_interval_ms: object,
                        max_poll_interval_ms: object, client_id: object, on_assign: object, on_revoke: object,
                        on_lost: object) -> None:
    """``ConfigError`` for a group option a ``Membership`` cannot take."""
    if not GroupState.valid_protocol(protocol):
        raise ConfigError("partition_assignment_strategy must be 'cooperative-sticky', 'range', 'roundrobin' or "
                          f"'sticky' (one str), got {protocol!r}")
    check_int("session_timeout_ms", session_timeout_ms, 1, 3_600_000)
    check_int("heartbeat_interval_ms", heartbeat_interval_ms)
    check_int("max_poll_interval_ms", max_poll_interval_ms)
    if not isinstance(client_id, str):
        raise ConfigError(f"client_id must be a str, got {type(client_id).__name__} {client_id!r}")
    try:
        client_id.encode()
    except UnicodeEncodeError:
        raise ConfigError(f"client_id {client_id!r} cannot be encoded as UTF-8 (it holds a lone surrogate); "
                          "use a valid Unicode string") from None
    for name, cb in (("on_assign", on_assign), ("on_revoke", on_revoke), ("on_lost", on_lost)):
        check_callable(name, cb)


def _arity(cb: RebalanceCallback) -> int:
    """1 for ``cb(partitions)``, 2 for ``cb(consumer, partitions)`` (confluent-kafka
    style): two positional parameters without a default (``cb(partitions, tag="x")`` is
    the first kind)."""
    try:
        params = [p for p in inspect.signature(cb).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return 1
    return 2 if len(params) >= 2 else 1


def _heartbeat_main(ref: weakref.ref[Membership], stop: threading.Event) -> None:
    """A member's heartbeat thread, until ``stop`` is set or the member is gone: it holds
    the member only while beating, so a consumer dropped unclosed is collected (and,
    its heartbeats stopped, leaves the group when its session times out, as a crashed
    Kafka consumer does).  It beats every ``hb_interval``, and also wakes when
    ``max_poll_interval_ms`` runs out, so a member that stopped polling leaves then (as
    Kafka's heartbeat thread checks its poll timer), not at the next beat."""
    member = ref()
    next_beat = time.monotonic() + (member.hb_interval if member is not None else 0)
    while member is not None:
        # (no deadline yet, the member not joined or inside a poll: it may have one within
        # max_poll_interval_ms, never sooner, so the look comes no later than it)
        wake = min(next_beat, member.poll_deadline() + 0.001, time.monotonic() + member.max_poll_interval)
        del member
        if stop.wait(max(0.0, wake - time.monotonic())):
            return
        member = ref()
        if member is None:
            return
        try:
            if member.leave_if_not_polling() or time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + member.hb_interval
            member._heartbeat_once()
        except EmbedlogError:
            continue
        except Exception:  # noqa: BLE001,S112 - the log may be closing; try again next beat
            continue


class Membership:
    """The group side of a ``Consumer`` with ``group=``."""

    def __init__(self, consumer: Consumer, coordinator: Coordinator, group: str, *,
                 protocol: str, session_timeout_ms: int, heartbeat_interval_ms: int,
                 max_poll_interval_ms: int, client_id: str,
                 on_assign: RebalanceCallback | None, on_revoke: RebalanceCallback | None,
                 on_lost: RebalanceCallback | None) -> None:
        check_group_options(protocol=protocol, session_timeout_ms=session_timeout_ms,
                            heartbeat_interval_ms=heartbeat_interval_ms, max_poll_interval_ms=max_poll_interval_ms,
                            client_id=client_id, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        self.consumer = consumer
        self.coord = coordinator
        self.group = group
        self.protocol = protocol
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_poll_interval_ms = max_poll_interval_ms
        self.hb_interval = min(heartbeat_interval_ms, max(1, session_timeout_ms // 3)) / 1000
        self.max_poll_interval = max_poll_interval_ms / 1000
        self.client_id = client_id
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self.member_id = f"{client_id or 'embedlog'}-{uuid.uuid4().hex[:12]}"
        self.topics: list[str] = []
        self.generation = -1
        self.owned: set[TopicPartition] = set()
        #: how many times each partition was given to this member (a transaction's offsets
        #: are fenced when it changed since they were added: ``Consumer._ownership``)
        self.claims: dict[TopicPartition, int] = {}
        #: partitions an eager rebalance revoked that it gives back to this member: taken
        #: again without another member having owned them (no new claim)
        self._returning: set[TopicPartition] = set()
        self._seen_version = -1
        self._seen_wake = -1  # the notifier's generation when the group was last looked at
        self._next_look = 0.0
        self._joined = False
        self._kicked = threading.Event()
        #: it left for not polling (``leave_if_not_polling``): out of the group until ``poll``
        self._left_idle = False
        #: the application's ``poll`` calls under way: a member waiting in one is polling
        self.polling = 0
        self._stop = threading.Event()
        weakref.finalize(self, self._stop.set).atexit = False  # (collected unclosed: the heartbeat thread ends)
        self._pid = current_pid()  # (in a forked child the membership is still the parent's: ``inherited``)
        self._last_poll = time.monotonic()
        self._thread: threading.Thread | None = None
        self._waiting = False  # some of our target partitions are still owned by others
        #: while ``reconcile`` runs: the exceptions rebalance callbacks raised (the first is kept)
        self._deferred: list[Exception] | None = None
        self._next_expiry_check = 0.0

    # -- callbacks --------------------------------------------------------------------------
    def _call(self, which: str, partitions: list[TopicPartition]) -> None:
        """Run a rebalance callback.  Within ``reconcile`` its exception is kept for the
        end of the rebalance step (``_deferred``), as Kafka's consumer raises a listener's
        exception from ``poll`` once the partitions moved: one failing ``on_revoke`` must
        not leave this member holding partitions the group gave to another."""
        cb = self.callbacks[which]
        if which == "lost" and cb is None:
            cb = self.callbacks["revoke"]
        if cb is None:
            return
        deferred = self._deferred
        # A callback is not a wait for records: max_poll_interval_ms runs through it, as
        # Kafka's poll timer does (a callback stuck for longer lets the partitions move on).
        polling, self.polling = self.polling, 0
        try:
            if _arity(cb) == 2:
                cb(self.consumer, partitions)
            else:
                cb(partitions)
        except Exception as exc:
            if deferred is None:
                raise
            if not deferred:
                deferred.append(exc)
        finally:
            self.polling = polling

    # -- joining --------------------------------------------------------------------------
    def join(self, topics: Iterable[str]) -> None:
        """Join (or re-join with a new subscription)."""
        self.check_process()
        self.topics = sorted(set(topics))
        member = Member(self.member_id, self.topics, self.client_id, int(time.time() * 1000), self.session_timeout_ms)
        notifier = self.coord.store.notifier
        notifier.wait(notifier.generation, 0)  # register for other processes' wake-ups now
        self.coord.join(self.group, member, self.protocol)
        self._joined = True
        self._kicked.clear()
        self._seen_version = -1
        self._seen_wake = -1
        if self._thread is None:
            self._thread = threading.Thread(target=_heartbeat_main, args=(weakref.ref(self), self._stop),
                                            name="embedlog-heartbeat", daemon=True)
            self._thread.start()

    def _rejoin(self) -> None:
        lost = sorted(self.owned)
        if lost:
            self.owned.clear()
            self.consumer._drop_partitions(lost)
            self._call("lost", lost)
        self._left_idle = False
        self.member_id = f"{self.client_id or 'embedlog'}-{uuid.uuid4().hex[:12]}"
        self.join(self.topics)

    # -- on the consumer's thread ----------------------------------------------------------------
    def reconcile(self, *, polled: bool = True) -> None:
        """Follow the group: revoke what moved away, claim what is ours. Called by ``poll``.
        The first exception a rebalance callback raised is raised once the step is done.
        ``polled=False``: a step the application did not ask for (a client shim's
        background task following the group): it does not count as polling for
        ``max_poll_interval_ms``, and a member that left for not polling stays out of the
        group until the application polls again, as Kafka's clients rejoin only then."""
        self.check_process()
        deferred: list[Exception] = []
        outer, self._deferred = self._deferred, deferred  # (a callback may poll: the outer step's list comes back)
        try:
            self._reconcile(polled)
        finally:
            self._deferred = outer
        if deferred:
            raise deferred[0]

    @property
    def inherited(self) -> bool:
        """Whether this process is a child forked from the one that made the membership."""
        return self._pid != current_pid()

    def check_process(self) -> None:
        """Raise ``ForkError`` in a forked child: the membership is its parent's."""
        if self.inherited:
            raise ForkError(
                f"this consumer is a member of group {self.group!r} for the process that made it, which forked this "
                f"one: in this process make a consumer of its own, log.consumer(..., group={self.group!r}), to join "
                "the group (the log may be used here)")

    @property
    def left_idle(self) -> bool:
        """Whether it left the group for not polling and has not polled since (its
        partitions, which others may own now, are let go when it next polls)."""
        return self._left_idle

    def touch(self) -> None:
        """The application polled now (``max_poll_interval_ms`` counts from here)."""
        self._last_poll = time.monotonic()

    def _reconcile(self, polled: bool) -> None:
        if polled:
            self._last_poll = time.monotonic()
        if not self._joined:
            return
        if self._left_idle and not polled:
            return  # (``poll`` fetches nothing meanwhile: ``left_idle``)
        if self._kicked.is_set():
            self._rejoin()
        wake = self.coord.store.notifier.generation
        now = time.monotonic()
        snap = None  # None: the group is as we last saw it
        if wake != self._seen_wake or now >= self._next_look:  # else nothing was committed anywhere since
            self._seen_wake = wake  # read before the group: a later change moves it again
            self._next_look = now + _RECHECK_S
            snap = self.coord.look(self.group, unless=self._seen_version)
        if snap is None:
            if not self._waiting or time.monotonic() < self._next_expiry_check:
                return
            # Partitions of ours are held by others: are those others still alive?
            state = self.coord.store.read(lambda txn: self.coord.load(txn, self.group))
            shortest = min((m.session_timeout_ms for m in state.members.values()), default=3000) if state else 3000
            self._next_expiry_check = time.monotonic() + min(self.hb_interval, shortest / 3000)
            dead = [] if state is None else self.coord.expired(state, keep=self.member_id)
            if not dead:
                return
            self.coord.leave(self.group, dead)
            for mid in dead:
                self.coord.forget(self.group, mid)
            snap = self.coord.look(self.group)
        version, state, parts = snap
        self._seen_version = version
        if state is None or self.member_id not in state.members:
            self._rejoin()
            version, state, parts = self.coord.look(self.group)
            if state is None:
                return
        target = {TopicPartition(*tp) for tp in state.target.get(self.member_id, ())}
        if self.protocol in EAGER and state.generation != self.generation:
            revoke = sorted(self.owned)
        else:
            revoke = sorted(self.owned - target)
        # Granted to us, then moved elsewhere before we saw it: let go without callbacks.
        unseen = sorted(tp for tp in map(TopicPartition._make, state.owned_by(self.member_id))
                        if tp not in target and tp not in self.owned)
        if revoke:
            self._call("revoke", revoke)
            self.consumer._before_release(revoke)
            # (eager: released, and ours again in this rebalance: no other member had it)
            self._returning.update(tp for tp in revoke if tp in target)
            self.owned.difference_update(revoke)
            self.consumer._drop_partitions(revoke)
        claimable = any(state.owner_of(tp) is None for tp in target)
        grown = parts != state.covered()
        if revoke or unseen or claimable or grown:  # else nothing to write: don't take the write lock (or fsync)
            state, _ = self.coord.sync(self.group, self.member_id, revoke + unseen)
        # Not the version after our sync: a change committed by another member after it
        # would be marked seen without being looked at, and its revocation never done.
        # ``version`` was read with the state we acted on; our own sync's bump only costs
        # one more look on the next poll.
        self._seen_version = version
        self.generation = state.generation
        if self.member_id not in state.members:
            self._kicked.set()
            return
        owned_now = {TopicPartition(*tp) for tp in state.owned_by(self.member_id)}
        target = {TopicPartition(*tp) for tp in state.target.get(self.member_id, ())}
        self._returning &= target  # (one meant for another member now may come back through it)
        if self.protocol in EAGER and not target <= owned_now:
            # Kafka's eager protocol assigns once a rebalance, the whole assignment: what
            # is claimed already waits (owned, not consumed) until the rest is released
            new: list[TopicPartition] = []
        else:
            new = sorted((owned_now & target) - self.owned)  # the rest is let go on the next look
        gone = sorted(self.owned - owned_now)
        if gone:  # taken from us without a release: we were presumed dead
            self.owned.difference_update(gone)
            self.consumer._drop_partitions(gone)
            self._call("lost", gone)
        if new:
            for tp in new:
                if tp in self._returning:
                    self._returning.discard(tp)
                else:
                    self.claims[tp] = self.claims.get(tp, 0) + 1
            self.owned.update(new)
            self.consumer._add_partitions(new)
            self._call("assign", new)
        self._waiting = len(self.owned) < len(state.target.get(self.member_id, ()))

    @property
    def kicked(self) -> bool:
        """Whether the group removed it (``poll`` then serves nothing until it rejoined)."""
        return self._kicked.is_set()

    def recheck_in(self) -> float:
        """Seconds a blocked ``poll`` may sleep before it must look at the group again."""
        if self._kicked.is_set():
            return 0.0  # (to rejoin)
        if self._waiting:
            return max(0.005, self._next_expiry_check - time.monotonic())
        return self.hb_interval

    # -- heartbeat thread --------------------------------------------------------------------------
    def poll_deadline(self) -> float:
        """When (``time.monotonic()``) this member leaves for not polling, if it is in
        the group (else never: ``inf``)."""
        if not self._joined or self._kicked.is_set() or self.polling:
            return math.inf
        return self._last_poll + self.max_poll_interval

    def leave_if_not_polling(self) -> bool:
        """Leave the group if ``poll`` was not called for ``max_poll_interval_ms``;
        return whether it did."""
        if (not self._joined or self._kicked.is_set() or self.polling
                or time.monotonic() - self._last_poll <= self.max_poll_interval):
            return False
        # Like Kafka: a member that stops polling leaves, so its partitions move on.
        # Kicked first: from here on ``poll`` drops what it owned (and its buffered
        # records) and rejoins under a new id, so it never serves a partition that
        # another member may be given once the leave below commits.
        member_id = self.member_id
        self._left_idle = True
        self._kicked.set()
        self.coord.leave(self.group, [member_id])
        self.coord.forget(self.group, member_id)
        return True

    def _heartbeat_once(self) -> None:
        if not self._joined or self._kicked.is_set() or self.leave_if_not_polling():
            return
        self.coord.heartbeat(self.group, self.member_id)
        state = self.coord.store.read(lambda txn: self.coord.load(txn, self.group))
        if state is None:
            return
        dead = self.coord.expired(state, keep=self.member_id)
        if dead:
            self.coord.leave(self.group, dead)
            for mid in dead:
                self.coord.forget(self.group, mid)

    # -- leaving ------------------------------------------------------------------------------
    def _listed(self) -> bool:
        """Whether the group lists this member (else the others removed it)."""
        state = self.coord.store.read(lambda txn: self.coord.load(txn, self.group))
        return state is not None and self.member_id in state.members

    @property
    def joined(self) -> bool:
        """Whether this member joined the group and has not left it."""
        return self._joined

    def close(self) -> None:
        """Revoke everything (``on_revoke``), leave the group, stop heartbeating.  A
        member the group already removed (it stopped polling for ``max_poll_interval_ms``)
        gets ``on_lost`` instead, as Kafka's ``onLeavePrepare`` does: its partitions are
        gone, and a commit in ``on_revoke`` would fail."""
        self._stop.set()
        if not self._joined:
            return
        if self.inherited:  # (the parent's: it goes on as a member, with its partitions)
            self._joined = False
            self.owned.clear()
            return
        owned = sorted(self.owned)
        if owned and not self._kicked.is_set() and not self._listed():
            self._kicked.set()  # the others removed it meanwhile (its session ran out): its partitions are lost
        try:
            if owned and self._kicked.is_set():
                self._call("lost", owned)
            elif owned:
                try:
                    self._call("revoke", owned)
                except BaseException:  # (the callback's exception is the one raised: Kafka still
                    with contextlib.suppress(Exception):  # auto-commits on close)
                        self.consumer._before_release(owned)
                    raise
                self.consumer._before_release(owned)
        finally:
            self._joined = False
            self.owned.clear()
            try:
                self.coord.leave(self.group, [self.member_id])
            finally:
                self.coord.forget(self.group, self.member_id)
