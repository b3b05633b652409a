"""``embedlog topics create|list|describe|delete|alter`` (kafka-topics.sh, kafka-configs.sh)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..config import TopicConfig
from ..errors import TopicExistsError, UnknownTopicError
from ..model import TopicDescription
from ..storage.topics import check_partitions, validate_name
from .common import UsageError, key_values, open_log, positive_int
from .output import Output

if TYPE_CHECKING:
    from ..log import Log

__all__ = ["described", "register", "topic_json"]


class _Values(argparse._ExtendAction):
    """``--config``/``--delete-config``: one or more values, remembering the order the
    values came in (``_name`` takes back a NAME they swallowed: kafka-topics.sh takes its
    options in any order)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        super().__call__(parser, namespace, values, option_string)
        seen = getattr(namespace, "values_seen", None) or []
        namespace.values_seen = [*seen, *((self.dest, v) for v in values)]


def _name(args: argparse.Namespace, command: str) -> str:
    """The topic NAME: given as such, or else swallowed by a ``--config`` (the one value
    that is not ``KEY=VALUE``) or, failing that, the last value of a ``--delete-config``
    that has more than one; ``UsageError`` if there is none."""
    if args.name is not None:
        return str(args.name)
    seen: list[tuple[str, str]] = getattr(args, "values_seen", None) or []
    loose = [v for dest, v in seen if dest == "config" and "=" not in v]
    if len(loose) == 1:
        args.config.remove(loose[0])
        args.name = loose[0]
        return str(args.name)
    deleted = getattr(args, "delete_config", None) or []
    if not loose and len(deleted) > 1 and seen and seen[-1][0] == "delete_config":
        args.name = deleted.pop()
        return str(args.name)
    if len(loose) > 1:
        raise UsageError(f"one topic NAME at a time, got {', '.join(loose)} (--config takes KEY=VALUE pairs)",
                         f"embedlog topics {command}")
    raise UsageError("the following arguments are required: NAME", f"embedlog topics {command}")


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``topics`` and its actions to the command tree."""
    p = sub.add_parser("topics", help="create, list, describe, alter and delete topics",
                       description="Create, list, describe, alter and delete topics (like kafka-topics.sh).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    c = actions.add_parser("create", parents=[parent], help="create a topic",
                           description="Create a topic. The log directory is created if it does not exist.")
    c.add_argument("name", metavar="NAME", nargs="?", help="topic name (1-249 of [a-zA-Z0-9._-])")
    c.add_argument("--partitions", type=positive_int, default=1, metavar="N", help="number of partitions (default 1)")
    c.add_argument("--config", action=_Values, nargs="+", metavar="KEY=VALUE", default=[],
                   help="a topic config override such as retention.ms=86400000 (repeatable)")
    c.add_argument("--if-not-exists", action="store_true", help="succeed if the topic already exists")
    c.set_defaults(func=create)

    ls = actions.add_parser("list", parents=[parent], help="list topic names",
                            description="List the names of all topics, one a line.")
    ls.set_defaults(func=list_topics)

    d = actions.add_parser("describe", parents=[parent], help="partitions, offsets, sizes and config of topics",
                           description="Show each partition's start and end offsets, records, batches and bytes, "
                                       "and the topic's effective config. Without NAME: every topic.")
    d.add_argument("name", metavar="NAME", nargs="?", help="topic to describe (default: all)")
    d.set_defaults(func=describe)

    rm = actions.add_parser("delete", parents=[parent], help="delete a topic",
                            description="Delete a topic, its records and the committed offsets of its partitions.")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--if-exists", action="store_true", help="succeed if the topic does not exist")
    rm.set_defaults(func=delete)

    a = actions.add_parser("alter", parents=[parent], help="change a topic's config or partition count",
                           description="Set or remove config overrides of a topic (like kafka-configs.sh --alter), "
                                       "or add partitions (like kafka-topics.sh --alter --partitions).")
    a.add_argument("name", metavar="NAME", nargs="?")
    a.add_argument("--config", action=_Values, nargs="+", metavar="KEY=VALUE", default=[],
                   help="set a config override (repeatable)")
    a.add_argument("--delete-config", action=_Values, nargs="+", metavar="KEY", default=[],
                   help="remove a config override, back to the default (repeatable)")
    a.add_argument("--partitions", type=positive_int, metavar="N",
                   help="grow the topic to N partitions (never fewer, as in Kafka)")
    a.set_defaults(func=alter)


def described(log: Log, name: str) -> tuple[TopicDescription, tuple[int, ...]]:
    """``log.describe_topic(name)`` and the records each partition stores (fewer than its
    offsets once compaction removed some: counted from the batches then)."""
    desc = log.describe_topic(name)
    records = log._store.stored_records(name)
    if len(records) != len(desc.partitions):  # (partitions added between the two reads)
        records = tuple(p.end_offset - p.start_offset for p in desc.partitions)
    return desc, records


def topic_json(desc: TopicDescription, records: Sequence[int]) -> dict[str, Any]:
    """A topic description as JSON (``records``: per partition, as ``described`` gives)."""
    return {
        "name": desc.name,
        "topic_id": desc.topic_id,
        "partitions": [
            {"partition": p.partition, "start_offset": p.start_offset, "end_offset": p.end_offset,
             "records": n, "batches": p.batches, "bytes": p.bytes,
             "leader_epoch": p.leader_epoch}
            for p, n in zip(desc.partitions, records)
        ],
        "records": sum(records),
        "bytes": desc.bytes,
        "config": desc.config,
    }


def _print_topic(out: Output, desc: TopicDescription, records: Sequence[int]) -> None:
    out.line(f"Topic: {desc.name}  TopicId: {desc.topic_id}  PartitionCount: {len(desc.partitions)}  "
             f"Records: {sum(records)}  Bytes: {desc.bytes}")
    out.table(["PARTITION", "START-OFFSET", "END-OFFSET", "RECORDS", "BATCHES", "BYTES", "LEADER-EPOCH"],
              [[p.partition, p.start_offset, p.end_offset, n, p.batches, p.bytes,
                p.leader_epoch] for p, n in zip(desc.partitions, records)])
    out.line("Config:")
    for key, value in sorted(desc.config.items()):
        out.line(f"  {key}={value}")


def create(args: argparse.Namespace, out: Output) -> int:
    """``topics create``."""
    _name(args, "create")
    config = dict(key_values(args.config, "--config"))
    # (checked before the directory is made: a typo must not leave an empty log behind)
    validate_name(args.name)
    check_partitions(args.partitions)
    TopicConfig.from_overrides(config)
    with open_log(args, create=True) as log:
        try:
            log.create_topic(args.name, partitions=args.partitions, config=config)
            created = True
        except TopicExistsError:
            if not args.if_not_exists:
                raise
            created = False
        desc, records = described(log, args.name)
    if out.json_mode:
        out.json({**topic_json(desc, records), "created": created})
    elif created:
        out.line(f"Created topic {desc.name} with {len(desc.partitions)} partition(s).")
    else:
        out.line(f"Topic {desc.name} already exists.")
    return 0


def list_topics(args: argparse.Namespace, out: Output) -> int:
    """``topics list``."""
    with open_log(args) as log:
        out.names(log.topics())
    return 0


def describe(args: argparse.Namespace, out: Output) -> int:
    """``topics describe``."""
    with open_log(args) as log:
        if args.name is not None:
            descs = [described(log, args.name)]
        else:
            descs = []
            for name in log.topics():
                try:
                    descs.append(described(log, name))
                except UnknownTopicError:
                    continue  # deleted meanwhile
    if out.json_mode:
        out.json(topic_json(*descs[0]) if args.name is not None else [topic_json(*d) for d in descs])
        return 0
    for i, (desc, records) in enumerate(descs):
        if i:
            out.line()
        _print_topic(out, desc, records)
    return 0


def delete(args: argparse.Namespace, out: Output) -> int:
    """``topics delete``."""
    with open_log(args) as log:
        try:
            log.delete_topic(args.name)
            deleted = True
        except UnknownTopicError:
            if not args.if_exists:
                raise
            deleted = False
    if out.json_mode:
        out.json({"name": args.name, "deleted": deleted})
    else:
        out.line(f"Deleted topic {args.name}." if deleted else f"Topic {args.name} does not exist.")
    return 0


def alter(args: argparse.Namespace, out: Output) -> int:
    """``topics alter``."""
    _name(args, "alter")
    changes: dict[str, object] = dict(key_values(args.config, "--config"))
    for key in args.delete_config:
        if key in changes:
            raise UsageError(f"{key} is both set with --config and removed with --delete-config")
        changes[key] = None
    if not changes and args.partitions is None:
        raise UsageError("nothing to alter: give --config KEY=VALUE, --delete-config KEY or --partitions N",
                         "embedlog topics alter")
    if args.partitions is not None:
        check_partitions(args.partitions)
    with open_log(args) as log:
        # (all or nothing: a partition count it refuses is refused before the config changes)
        if args.partitions is not None and changes and args.partitions <= len(log.describe_topic(args.name).partitions):
            log.create_partitions(args.name, args.partitions)  # (raises: fewer or as many as now)
        if changes:
            log.alter_topic_config(args.name, changes)
        if args.partitions is not None:
            log.create_partitions(args.name, args.partitions)
        desc, records = described(log, args.name)
    if out.json_mode:
        out.json(topic_json(desc, records))
    else:
        what = []
        if changes:
            what.append("config " + ", ".join(f"{k}={'(default)' if v is None else v}" for k, v in changes.items()))
        if args.partitions is not None:
            what.append(f"{len(desc.partitions)} partitions")
        out.line(f"Altered topic {desc.name}: {'; '.join(what)}.")
    return 0
