"""``embedlog groups list|describe|reset-offsets|delete`` (kafka-consumer-groups.sh)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from ..errors import ConfigError, UnknownGroupError
from ..groups.coordinator import GroupDescription, datetime_ms
from ..model import PartitionDescription, TopicPartition
from .common import UsageError, non_negative_int, open_log, progress
from .output import Output, one_line

__all__ = ["group_json", "parse_datetime", "register"]


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``groups`` and its actions to the command tree."""
    p = sub.add_parser("groups", help="list, describe, reset and delete consumer groups",
                       description="List, describe, reset and delete consumer groups (like kafka-consumer-groups.sh).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = actions.add_parser("list", parents=[parent], help="list group names",
                            description="List every consumer group with members or committed offsets, one a line.")
    ls.set_defaults(func=list_groups)

    d = actions.add_parser("describe", parents=[parent], help="committed offsets, end offsets, lag and owners",
                           description="Show a group's committed offset, log end offset, lag and owning member "
                                       "for each partition it has committed an offset for or owns (as Kafka's "
                                       "kafka-consumer-groups); --members lists its members.")
    d.add_argument("group", metavar="GROUP")
    d.add_argument("--members", action="store_true", help="list the live members and their partitions instead")
    d.set_defaults(func=describe)

    r = actions.add_parser(
        "reset-offsets", parents=[parent], help="move a group's committed offsets (dry run unless --execute)",
        description="Set GROUP's committed offsets of every partition of TOPIC. Without --execute this is a "
                    "dry run: it prints the current and new offsets and changes nothing. The group must have "
                    "no live members to --execute (stop its consumers first, as with Kafka).")
    r.add_argument("group", metavar="GROUP")
    r.add_argument("--topic", required=True, metavar="TOPIC", help="the topic whose offsets to reset")
    to = r.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="to each partition's start offset")
    to.add_argument("--to-latest", action="store_true", help="to each partition's end offset (skip everything)")
    to.add_argument("--to-offset", type=non_negative_int, metavar="N",
                    help="to offset N (kept within each partition's start and end offsets)")
    to.add_argument("--to-datetime", type=parse_datetime, metavar="ISO",
                    help="to the first record at or after this time, such as 2024-05-01T12:00:00 (local time) "
                         "or 2024-05-01T10:00:00Z")
    r.add_argument("--execute", action="store_true", help="apply the reset (default: dry run)")
    r.set_defaults(func=reset_offsets)

    rm = actions.add_parser("delete", parents=[parent], help="delete a group and its committed offsets",
                            description="Delete a consumer group's committed offsets and state. It must have no "
                                        "live members.")
    rm.add_argument("group", metavar="GROUP")
    rm.set_defaults(func=delete)


def parse_datetime(text: str) -> datetime:
    """An argparse type: an ISO 8601 date-time; without a zone it is local time."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time such as 2024-05-01T12:00:00: {text!r}") from None
    try:
        _ms(when)
    except ConfigError as exc:  # (year 1, say: out of range)
        raise argparse.ArgumentTypeError(str(exc)) from None
    return when


def _ms(when: datetime) -> int:
    """Milliseconds since the epoch, as the library computes them for ``to=datetime``."""
    return datetime_ms(when)


def group_json(desc: GroupDescription) -> dict[str, Any]:
    """A group description as JSON."""
    return {
        "group": desc.group,
        "state": desc.state,
        "protocol": desc.protocol,
        "generation": desc.generation,
        "members": [
            {"member_id": m.member_id, "client_id": m.client_id, "topics": list(m.topics),
             "partitions": [{"topic": tp.topic, "partition": tp.partition} for tp in m.partitions]}
            for m in desc.members
        ],
        "offsets": [
            {"topic": o.topic, "partition": o.partition, "committed": o.committed, "end_offset": o.end_offset,
             "lag": o.lag, "owner": o.owner}
            for o in desc.offsets
        ],
        "total_lag": desc.total_lag,
    }


def list_groups(args: argparse.Namespace, out: Output) -> int:
    """``groups list``."""
    with open_log(args) as log:
        out.names(log.groups())
    return 0


def describe(args: argparse.Namespace, out: Output) -> int:
    """``groups describe``."""
    with open_log(args) as log:
        desc = log.describe_group(args.group)
    if out.json_mode:
        out.json(group_json(desc))
        return 0
    clients = {m.member_id: m.client_id for m in desc.members}
    if not desc.members:
        out.note(f"Consumer group '{one_line(desc.group)}' has no active members.")
    if args.members:
        out.table(["GROUP", "CONSUMER-ID", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"],
                  [[desc.group, m.member_id, m.client_id or None, len(m.partitions),
                    ",".join(f"{tp.topic}:{tp.partition}" for tp in m.partitions) or None]
                   for m in desc.members])
        return 0
    lag = desc.total_lag if any(o.lag is not None for o in desc.offsets) else "-"  # (as the rows: nothing committed)
    out.line(f"Group: {one_line(desc.group)}  State: {desc.state}  Protocol: {desc.protocol}  "
             f"Generation: {desc.generation}  Members: {len(desc.members)}  Lag: {lag}")
    out.table(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "CLIENT-ID"],
              [[desc.group, o.topic, o.partition, o.committed, o.end_offset, o.lag, o.owner,
                clients.get(o.owner) if o.owner else None] for o in desc.offsets])
    return 0


def _target(args: argparse.Namespace) -> object:
    if args.to_earliest:
        return "earliest"
    if args.to_latest:
        return "latest"
    if args.to_offset is not None:
        return int(args.to_offset)
    if args.to_datetime is not None:
        when: datetime = args.to_datetime
        return when
    raise UsageError("give one of --to-earliest, --to-latest, --to-offset N, --to-datetime ISO",
                     "embedlog groups reset-offsets")


def _plan(log: Any, topic: str, to: object) -> dict[TopicPartition, int]:
    """The offsets ``reset_group_offsets`` would commit, computed without changing anything
    (the same rules: earliest/latest, an offset kept in range, or the first record at or
    after a time, else the end)."""
    desc = log.describe_topic(topic)
    plan: dict[TopicPartition, int] = {}

    def end(p: PartitionDescription) -> int:  # what consumers can read: the high watermark, as the reset uses
        return p.high_watermark if p.high_watermark >= 0 else p.end_offset

    if not isinstance(to, datetime):
        for p in desc.partitions:
            tp = TopicPartition(topic, p.partition)
            if to == "earliest":
                plan[tp] = p.start_offset
            elif to == "latest":
                plan[tp] = end(p)
            else:
                assert isinstance(to, int)
                plan[tp] = min(max(to, p.start_offset), end(p))
        return plan
    ts = _ms(to)
    with log.consumer(None) as consumer, progress("offsets", len(desc.partitions), unit="partition") as bar:
        for i, p in enumerate(desc.partitions, 1):
            tp = TopicPartition(topic, p.partition)
            hit = consumer.offsets_for_times({tp: max(0, ts)})[tp]
            plan[tp] = end(p) if hit is None else hit.offset
            bar.update(i)
    return plan


def reset_offsets(args: argparse.Namespace, out: Output) -> int:
    """``groups reset-offsets``."""
    to = _target(args)
    with open_log(args) as log:
        try:
            current = {TopicPartition(o.topic, o.partition): o.committed
                       for o in log.describe_group(args.group).offsets if o.topic == args.topic}
        except UnknownGroupError:
            current = {}
        if args.execute:
            new = {TopicPartition(*tp): off for tp, off in log.reset_group_offsets(args.group, args.topic, to).items()}
        else:
            new = _plan(log, args.topic, to)
    rows = [[args.group, tp.topic, tp.partition, current.get(tp), off] for tp, off in sorted(new.items())]
    if out.json_mode:
        out.json({"group": args.group, "topic": args.topic, "executed": bool(args.execute),
                  "offsets": [{"topic": t, "partition": p, "current": c, "new": n} for _, t, p, c, n in rows]})
    else:
        out.table(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"], rows)
        if not args.execute:
            out.note("Dry run: nothing was changed. Add --execute to reset these offsets.")
    return 0


def delete(args: argparse.Namespace, out: Output) -> int:
    """``groups delete``."""
    with open_log(args) as log:
        log.delete_group(args.group)
    if out.json_mode:
        out.json({"group": args.group, "deleted": True})
    else:
        out.line(f"Deleted consumer group '{args.group}'.")
    return 0
