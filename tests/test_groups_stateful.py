"""A hypothesis state machine over ``GroupState`` (pure: no LMDB, no threads).

Members join with random subscriptions, leave, release and claim partitions, topics
grow, and the group rebalances, in any order.  After every step: a partition has at
most one owner, owners are members, every partition owned is in the target, and the
target gives each partition of a subscribed topic to exactly one member subscribed to
its topic.  ``settle`` plays what members do on their next poll (release what left
their target, then claim) and checks that every partition then has exactly one owner.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from embedlog.groups.assignors import EAGER
from embedlog.groups.state import GroupState, Member

MEMBERS = [f"m{i}" for i in range(6)]
TOPICS = ["a", "b", "c"]
TP = tuple[str, int]


class GroupMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = GroupState("g")
        self.protocol = "cooperative-sticky"
        self.partitions: dict[str, int] = {}
        self.last_generation = 0

    @initialize(protocol=st.sampled_from(["range", "roundrobin", "cooperative-sticky"]),
                counts=st.lists(st.integers(1, 6), min_size=len(TOPICS), max_size=len(TOPICS)))
    def setup(self, protocol: str, counts: list[int]) -> None:
        self.protocol = protocol
        self.partitions = dict(zip(TOPICS, counts))

    # -- helpers ----------------------------------------------------------------------------
    def wanted(self) -> set[TP]:
        topics = {t for m in self.state.members.values() for t in m.topics}
        return {(t, p) for t in topics for p in range(self.partitions[t])}

    def _generation_moved(self) -> None:
        assert self.state.generation > self.last_generation, "a membership change starts a new generation"
        self.last_generation = self.state.generation

    # -- rules ----------------------------------------------------------------------------------
    @rule(member=st.sampled_from(MEMBERS), topics=st.lists(st.sampled_from(TOPICS), min_size=1, unique=True))
    def join(self, member: str, topics: list[str]) -> None:
        before = {m: set(tps) for m, tps in self.state.target.items()}
        old_subs = {mid: sorted(m.topics) for mid, m in self.state.members.items()}
        new = member not in self.state.members
        self.state.join(Member(member, topics), self.protocol, self.partitions)
        self._generation_moved()
        assert self.state.protocol == self.protocol
        same = all(s == sorted(topics) for s in old_subs.values())
        if self.protocol == "cooperative-sticky" and new and same and old_subs:
            # Only a member joined, every subscription is the same: old members only lose.
            for m, tps in before.items():
                assert set(self.state.target[m]) <= tps, f"{m} gained partitions when {member} joined"

    @precondition(lambda self: bool(self.state.members))
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        member = data.draw(st.sampled_from(sorted(self.state.members)))
        before = {m: set(tps) for m, tps in self.state.target.items()}
        subs = {tuple(sorted(m.topics)) for m in self.state.members.values()}
        assert self.state.leave([member], self.partitions)
        self._generation_moved()
        assert member not in self.state.members
        assert member not in self.state.owners.values(), "a member that left owns nothing"
        if self.protocol == "cooperative-sticky" and len(subs) == 1:
            for m in self.state.members:
                assert before[m] <= set(self.state.target[m]), f"{m} lost partitions when {member} left"

    @rule(member=st.sampled_from(MEMBERS))
    def leave_unknown_is_a_no_op(self, member: str) -> None:
        if member in self.state.members:
            return
        generation = self.state.generation
        assert not self.state.leave([member], self.partitions)
        assert self.state.generation == generation

    @precondition(lambda self: bool(self.state.owners))
    @rule(data=st.data())
    def release_some(self, data: st.DataObject) -> None:
        """A member gives up any of what it owns (an eager member gives up everything)."""
        member = data.draw(st.sampled_from(sorted(set(self.state.owners.values()))))
        owned = self.state.owned_by(member)
        some = data.draw(st.lists(st.sampled_from(owned), unique=True))
        # Also ask to release a partition it does not own: that must be ignored.
        others = [tp for tp, m in self.state.owners.items() if m != member]
        asked = some + others[:1]
        released = self.state.release(member, asked)
        assert sorted(released) == sorted(some)
        assert all(self.state.owners.get(tp) != member for tp in some)
        assert all(self.state.owners.get(tp) not in (None, member) for tp in others[:1])

    @precondition(lambda self: bool(self.state.members))
    @rule(data=st.data())
    def release_revoked(self, data: st.DataObject) -> None:
        member = data.draw(st.sampled_from(sorted(self.state.members)))
        target = set(self.state.target.get(member, ()))
        self.state.release(member, [tp for tp in self.state.owned_by(member) if tp not in target])
        assert set(self.state.owned_by(member)) <= target

    @precondition(lambda self: bool(self.state.members))
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        member = data.draw(st.sampled_from(sorted(self.state.members)))
        free_before = {tp for tp in self.state.target.get(member, ()) if tp not in self.state.owners}
        taken_before = dict(self.state.owners)
        claimed = self.state.claim(member)
        assert set(claimed) == free_before
        for tp, m in taken_before.items():
            assert self.state.owners[tp] == m, "claim never takes a partition someone owns"

    @rule()
    def grant(self) -> None:
        """What the coordinator does after every change: each free target partition goes
        to its target member; nothing owned moves."""
        free = {tp: m for m, tps in self.state.target.items() for tp in tps if tp not in self.state.owners}
        taken_before = dict(self.state.owners)
        granted = self.state.grant()
        assert {tp: m for m, tp in granted} == free
        assert {tp: m for tp, m in self.state.owners.items() if tp in taken_before} == taken_before
        for member, tps in self.state.target.items():
            assert all(self.state.owners.get(tp) is not None for tp in tps), f"{member} has a free target"

    @rule()
    def rebalance(self) -> None:
        self.state.rebalance(self.partitions)
        self._generation_moved()

    @rule(topic=st.sampled_from(TOPICS), extra=st.integers(1, 3))
    def grow_topic(self, topic: str, extra: int) -> None:
        """Partitions were added: the next rebalance (as ``sync`` does) covers them."""
        self.partitions[topic] += extra
        self.state.rebalance(self.partitions)
        self._generation_moved()

    @rule()
    def round_trip(self) -> None:
        """What the coordinator stores and loads back is the same state."""
        again = GroupState.from_json("g", self.state.to_json())
        assert again == self.state
        self.state = again

    @rule()
    def settle(self) -> None:
        """Every member polls: releases what left its target (an eager member everything),
        then every member claims; now each target partition has exactly its target owner."""
        for member in sorted(self.state.members):
            target = set(self.state.target.get(member, ()))
            owned = self.state.owned_by(member)
            revoke = owned if self.protocol in EAGER else [tp for tp in owned if tp not in target]
            self.state.release(member, revoke)
        for member in sorted(self.state.members):
            self.state.claim(member)
        for member, tps in self.state.target.items():
            for tp in tps:
                assert self.state.owners.get(tp) == member, f"{tp} not owned by its target {member}"
        assert set(self.state.owners) == self.wanted()
        assert self.state.state == ("Stable" if self.state.members else "Empty")

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def owners_are_live_members(self) -> None:
        for tp, m in self.state.owners.items():
            assert m in self.state.members, f"{tp} owned by {m}, not a member"

    @invariant()
    def at_most_one_owner_and_only_target_partitions(self) -> None:
        assigned = {tp for tps in self.state.target.values() for tp in tps}
        before = getattr(self, "_owners_before", {})
        for tp, m in self.state.owners.items():
            if tp not in assigned:  # (kept by the member that owned it until it releases it: it may
                # still commit its offsets in on_revoke, as in Kafka; never granted to anyone)
                assert before.get(tp) == m, f"{tp} outside the target is owned by {m}, which did not own it"
                assert tp[1] < self.partitions[tp[0]]
        self._owners_before = dict(self.state.owners)
        for member in self.state.members:
            owned = self.state.owned_by(member)
            assert len(owned) == len(set(owned))
        every = [tp for m in self.state.members for tp in self.state.owned_by(m)]
        assert len(every) == len(set(every)) == len(self.state.owners)

    @invariant()
    def target_assigns_each_partition_to_exactly_one_subscriber(self) -> None:
        if not self.state.members:
            assert self.state.owners == {}
            return
        assert set(self.state.target) == set(self.state.members)
        counts = Counter(tp for tps in self.state.target.values() for tp in tps)
        assert set(counts) == self.wanted(), "every partition of a subscribed topic is in the target"
        assert all(n == 1 for n in counts.values()), f"assigned twice: {counts.most_common(2)}"
        for member, tps in self.state.target.items():
            topics = self.state.members[member].topics
            assert all(t in topics for t, _ in tps), f"{member} got a topic it does not subscribe to"

    @invariant()
    def balanced_when_subscriptions_are_equal(self) -> None:
        subs = {tuple(sorted(m.topics)) for m in self.state.members.values()}
        if self.protocol == "range" or len(subs) != 1:
            return  # range balances per topic only, as in Kafka
        loads = [len(tps) for tps in self.state.target.values()]
        assert max(loads) - min(loads) <= 1, f"unbalanced target {self.state.target}"


GroupMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestGroupState = GroupMachine.TestCase
