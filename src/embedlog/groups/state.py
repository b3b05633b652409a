"""A consumer group's membership, assignment and partition ownership. Pure: no I/O.

The group's transitions live here, one method each; the coordinator runs them inside
LMDB write transactions, so every process sees them in one order.

* ``join`` / ``leave`` / ``remove`` change the members, bump the generation and
  recompute the *target* assignment with the group's assignor.
* ``release`` gives up partitions a member owns (after its ``on_revoke``);
  ``claim`` takes target partitions nobody owns for one member, ``grant`` for every
  member (the coordinator grants after each change, so a partition let go reaches its
  new owner in the same transaction).  A partition therefore has at most one owner at
  every moment, and moves only after its old owner let it go or was removed.
* ``owner_of`` is the fence: a member may commit offsets only for partitions it owns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import attrs

from .assignors import ASSIGNORS, TP, assign

__all__ = ["GroupState", "Member"]


def _tp_key(tp: TP) -> str:
    return f"{tp[0]}:{tp[1]}"


def _tp_from_key(key: str) -> TP:
    topic, _, part = key.rpartition(":")
    return topic, int(part)


@attrs.define
class Member:
    """One member: its subscription and who it is."""

    member_id: str
    topics: list[str]
    client_id: str = ""
    joined_ms: int = 0
    session_timeout_ms: int = 10_000


@attrs.define
class GroupState:
    """The whole state of one group, as stored in the ``groups`` database."""

    name: str
    protocol: str = "cooperative-sticky"
    generation: int = 0
    members: dict[str, Member] = attrs.field(factory=dict)
    target: dict[str, list[TP]] = attrs.field(factory=dict)
    owners: dict[TP, str] = attrs.field(factory=dict)
    #: wall ms when the group was last stored without members (``None`` while it has
    #: some): when ``offsets_retention_ms`` starts counting for it
    empty_ms: int | None = None

    # -- encoding ---------------------------------------------------------------------
    def to_json(self) -> bytes:
        """The stored form (see docs/format.md)."""
        return json.dumps({
            "generation": self.generation,
            "protocol": self.protocol,
            "members": {m.member_id: {"topics": m.topics, "client_id": m.client_id, "joined_ms": m.joined_ms,
                                      "session_timeout_ms": m.session_timeout_ms}
                        for m in self.members.values()},
            "target": {m: [list(tp) for tp in tps] for m, tps in self.target.items()},
            "owners": {_tp_key(tp): m for tp, m in self.owners.items()},
            **({} if self.empty_ms is None else {"empty_ms": self.empty_ms}),
        }, sort_keys=True).encode()

    @classmethod
    def from_json(cls, name: str, raw: bytes) -> GroupState:
        """Parse the stored form."""
        doc = json.loads(raw)
        return cls(
            name=name,
            protocol=doc["protocol"],
            generation=doc["generation"],
            members={mid: Member(mid, list(m["topics"]), m.get("client_id", ""), m.get("joined_ms", 0),
                                 m.get("session_timeout_ms", 10_000))
                     for mid, m in doc["members"].items()},
            target={m: [(t, p) for t, p in tps] for m, tps in doc["target"].items()},
            owners={_tp_from_key(k): m for k, m in doc["owners"].items()},
            empty_ms=doc.get("empty_ms"),
        )

    # -- transitions ----------------------------------------------------------------------
    def join(self, member: Member, protocol: str, partitions: Mapping[str, int]) -> None:
        """Add a member (the group takes the first member's protocol)."""
        if not self.members:
            self.protocol = protocol
        self.members[member.member_id] = member
        self.rebalance(partitions)

    def leave(self, member_ids: Iterable[str], partitions: Mapping[str, int]) -> bool:
        """Remove members, freeing what they owned; return whether anything changed."""
        gone = [m for m in member_ids if m in self.members]
        if not gone:
            return False
        for m in gone:
            del self.members[m]
            self.target.pop(m, None)
        self.owners = {tp: m for tp, m in self.owners.items() if m in self.members}
        self.rebalance(partitions)
        return True

    def rebalance(self, partitions: Mapping[str, int]) -> None:
        """Recompute the target assignment and start a new generation.

        ``partitions``: the partition count of every existing topic that is subscribed
        or owned.  A member keeps what it owns and nobody is assigned any more (a topic
        it no longer subscribes to) until it releases it, as a Kafka member still owns
        such partitions while ``on_revoke`` runs (it can commit their offsets there);
        ownership of a partition that no longer exists ends here."""
        subs = {mid: m.topics for mid, m in self.members.items()}
        topics = {t for m in self.members.values() for t in m.topics}
        parts = {t: n for t, n in partitions.items() if t in topics}
        self.target = assign(self.protocol, subs, parts, self.target)
        self.owners = {tp: m for tp, m in self.owners.items()
                       if m in self.members and tp[1] < partitions.get(tp[0], 0)}
        self.generation += 1

    def owned_topics(self) -> set[str]:
        """Every topic of which some member owns a partition."""
        return {tp[0] for tp in self.owners}

    def covered(self) -> dict[str, int]:
        """Partition count per subscribed topic as the current target sees it."""
        out: dict[str, int] = {}
        for tps in self.target.values():
            for t, p in tps:
                out[t] = max(out.get(t, 0), p + 1)
        return out

    def release(self, member_id: str, tps: Iterable[TP]) -> list[TP]:
        """Give up partitions the member owns; return those released."""
        out = []
        for raw_tp in tps:
            tp = (raw_tp[0], raw_tp[1])
            if self.owners.get(tp) == member_id:
                del self.owners[tp]
                out.append(tp)
        return out

    def claim(self, member_id: str) -> list[TP]:
        """Take every partition of the member's target that nobody owns; return them."""
        out = []
        for tp in self.target.get(member_id, ()):
            if tp not in self.owners:
                self.owners[tp] = member_id
                out.append(tp)
        return out

    def grant(self) -> list[tuple[str, TP]]:
        """Give every target partition nobody owns to its target member; return
        ``(member, partition)`` for each (the member sees it on its next poll)."""
        out = []
        for member, tps in self.target.items():
            for tp in tps:
                if tp not in self.owners:
                    self.owners[tp] = member
                    out.append((member, tp))
        return out

    def owned_by(self, member_id: str) -> list[TP]:
        """Partitions the member owns now."""
        return sorted(tp for tp, m in self.owners.items() if m == member_id)

    def owner_of(self, tp: TP) -> str | None:
        """Who owns ``tp`` now."""
        return self.owners.get((tp[0], tp[1]))

    @property
    def state(self) -> str:
        """Kafka's group state name: ``Empty``, ``Stable`` or ``PreparingRebalance``."""
        if not self.members:
            return "Empty"
        for member, tps in self.target.items():
            if any(self.owners.get(tp) != member for tp in tps):
                return "PreparingRebalance"
        return "Stable"

    @staticmethod
    def valid_protocol(protocol: object) -> bool:
        """Whether embedlog knows this assignor (named by a str)."""
        return isinstance(protocol, str) and protocol in ASSIGNORS

    def subscribed_topics(self) -> Sequence[str]:
        """Every topic some member subscribes to."""
        return sorted({t for m in self.members.values() for t in m.topics})
