"""Partition assignors, as Kafka's ``partition.assignment.strategy`` names them. Pure.

Each takes the members' subscriptions, the partition count of every topic and the
previous assignment, and returns ``{member_id: [(topic, partition), ...]}`` in which
every partition of a subscribed topic has exactly one member subscribed to its topic.

* ``range`` (Kafka's ``RangeAssignor``): per topic, members sorted by id each get a
  contiguous range; the first ``n % m`` members get one more.
* ``roundrobin`` (``RoundRobinAssignor``): all partitions sorted, dealt to the sorted
  members in turn, skipping members not subscribed to the topic.
* ``cooperative-sticky`` (``CooperativeStickyAssignor``, the default): keeps every
  partition where it was when that stays balanced, moves as few as possible, and
  spreads the rest to the least-loaded subscribed member.

``range`` and ``roundrobin`` are *eager*: every member gives up all its partitions at
each rebalance.  ``cooperative-sticky`` is *incremental*: only partitions that move are
revoked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

__all__ = ["ASSIGNORS", "EAGER", "TP", "assign"]

TP = tuple[str, int]
Assignment = dict[str, list[TP]]


def _range(subs: Mapping[str, Sequence[str]], parts: Mapping[str, int], prev: Mapping[str, Sequence[TP]]) -> Assignment:
    out: Assignment = {m: [] for m in subs}
    for topic in sorted(parts):
        members = sorted(m for m, topics in subs.items() if topic in topics)
        if not members:
            continue
        n, m = parts[topic], len(members)
        per, extra = divmod(n, m)
        start = 0
        for i, member in enumerate(members):
            count = per + (1 if i < extra else 0)
            out[member].extend((topic, p) for p in range(start, start + count))
            start += count
    return out


def _roundrobin(subs: Mapping[str, Sequence[str]], parts: Mapping[str, int],
                prev: Mapping[str, Sequence[TP]]) -> Assignment:
    out: Assignment = {m: [] for m in subs}
    members = sorted(subs)
    if not members:
        return out
    i = 0
    for topic in sorted(parts):
        for p in range(parts[topic]):
            for _ in range(len(members)):
                member = members[i % len(members)]
                i += 1
                if topic in subs[member]:
                    out[member].append((topic, p))
                    break
    return out


def _sticky(subs: Mapping[str, Sequence[str]], parts: Mapping[str, int],
            prev: Mapping[str, Sequence[TP]]) -> Assignment:
    out: Assignment = {m: [] for m in subs}
    if not subs:
        return out
    valid = {(t, p) for t, n in parts.items() for p in range(n)}
    wanted = {tp for tp in valid if any(tp[0] in topics for topics in subs.values())}
    # Keep previous owners where still valid.
    taken: set[TP] = set()
    for member in sorted(prev):
        if member not in out:
            continue
        for prev_tp in prev[member]:
            tp = (prev_tp[0], prev_tp[1])
            if tp in wanted and tp not in taken and tp[0] in subs[member]:
                out[member].append(tp)
                taken.add(tp)
    members = sorted(out)
    for tp in sorted(wanted - taken):
        candidates = [m for m in members if tp[0] in subs[m]]
        if candidates:
            out[min(candidates, key=lambda m: (len(out[m]), m))].append(tp)
    # Balance: move one partition at a time from the most to the least loaded member
    # that can take it, until no two members differ by more than one.
    while _move_one(out, subs, members):
        pass
    for member in out:
        out[member].sort()
    return out


def _move_one(out: Assignment, subs: Mapping[str, Sequence[str]], members: list[str]) -> bool:
    by_load = sorted(members, key=lambda m: (len(out[m]), m))
    for low in by_load:
        for high in reversed(by_load):
            if len(out[high]) - len(out[low]) <= 1:
                break
            movable = [tp for tp in out[high] if tp[0] in subs[low]]
            if movable:
                tp = movable[-1]
                out[high].remove(tp)
                out[low].append(tp)
                return True
    return False


Assignor = Callable[[Mapping[str, Sequence[str]], Mapping[str, int], Mapping[str, Sequence[TP]]], Assignment]
ASSIGNORS: dict[str, Assignor] = {
    "range": _range,
    "roundrobin": _roundrobin,
    "cooperative-sticky": _sticky,
    "sticky": _sticky,  # (Kafka's StickyAssignor: the same assignment, with the eager protocol)
}
#: assignors whose members revoke everything at every rebalance
EAGER = frozenset({"range", "roundrobin", "sticky"})


def assign(protocol: str, subscriptions: Mapping[str, Sequence[str]], partitions: Mapping[str, int],
           previous: Mapping[str, Sequence[TP]] | None = None) -> Assignment:
    """Run the named assignor."""
    return ASSIGNORS[protocol](subscriptions, partitions, previous or {})
