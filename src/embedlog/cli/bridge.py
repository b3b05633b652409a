"""``embedlog bridge up|down``, ``embedlog bridge status`` and ``embedlog bridge forget``:
store-and-forward between this log and a Kafka cluster (``embedlog.bridge.Mirror``) from
the shell."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .common import CliError, key_values, log_path, open_log, positive_seconds
from .output import Output

__all__ = ["register"]


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``bridge up``, ``bridge down``, ``bridge status`` and ``bridge forget`` to the command tree."""
    b = sub.add_parser("bridge", help="mirror topics to or from a Kafka cluster",
                       description="Store-and-forward between this log and a Kafka cluster (needs confluent-kafka: "
                                   "pip install 'embedlog[bridge]').")
    bsub = b.add_subparsers(dest="bridge_command", metavar="COMMAND", required=True)
    for direction, what in (("up", "copy embedlog topics to Kafka until stopped"),
                            ("down", "copy Kafka topics into this log until stopped")):
        p = bsub.add_parser(
            direction, parents=[parent], help=what,
            description=f"{what[0].upper()}{what[1:]} (Ctrl-C), exactly once across restarts, printing progress "
                        "every few seconds. While Kafka is unreachable the bridge keeps retrying with backoff and "
                        "says so; records wait in the log (up) or in Kafka (down). Exits 1 with one line when "
                        "the cluster cannot be reached within --connect-timeout at start, or refuses the "
                        "bridge (authentication, an unknown topic).")
        p.add_argument("--bootstrap-servers", required=True, metavar="HOSTS",
                       help="the cluster's bootstrap.servers (host:port[,host:port...])")
        p.add_argument("--topic", action="append", required=True, metavar="T", dest="topics",
                       help="a topic to mirror (repeat for more)")
        p.add_argument("--name", default=None,
                       help=f"the mirror's name, which keys its progress (default: embedlog-{direction})")
        p.add_argument("--config", action="extend", nargs="+", metavar="KEY=VALUE",
                       help="librdkafka properties for the Kafka clients, e.g. security.protocol=SASL_SSL "
                            "(one or more; repeat the option for more)")
        p.add_argument("--map", action="append", metavar="SRC=DST", dest="topic_map",
                       help="mirror topic SRC into topic DST (repeat)")
        p.add_argument("--start", choices=("earliest", "latest"), default="earliest",
                       help="where a mirror with no progress begins (default: earliest)")
        p.add_argument("--connect-timeout", type=positive_seconds, default=30.0, metavar="SECONDS",
                       help="give up at start if the cluster does not answer within this (default: 30)")
        p.add_argument("--interval", type=positive_seconds, default=5.0, metavar="SECONDS",
                       help="print progress this often (default: 5)")
        p.set_defaults(func=run, direction=direction, prog_name=p.prog, until_stopped=True)
    s = bsub.add_parser(
        "status", parents=[parent], help="every mirror's progress, lag and link state",
        description="Print every mirror recorded in this log: per partition its source end offset, mirrored "
                    "offset and lag, and whether its bridge runs and reaches Kafka (as the bridge last reported, "
                    "about every second). Read from the log, so it works while a bridge runs elsewhere.")
    s.set_defaults(func=status)
    f = bsub.add_parser(
        "forget", parents=[parent], help="retire a mirror: delete its recorded progress",
        description="Delete a mirror's recorded progress in this log (up: what it has sent to Kafka, kept in the "
                    "consumer group named after it; down: its Kafka source offsets) and its link status, so that "
                    "bridge status, the group listings and the lag metrics no longer show it. A mirror of that "
                    "name started later begins afresh, from --start. Refused while the mirror runs.")
    f.add_argument("name", help="the mirror's name (bridge status lists them)")
    f.add_argument("--direction", choices=("up", "down"), default=None,
                   help="forget only this direction's progress (default: both)")
    f.set_defaults(func=forget)


def _mirror_config(args: argparse.Namespace) -> dict[str, Any]:
    conf: dict[str, Any] = dict(key_values(args.config, "--config"))
    conf["bootstrap.servers"] = args.bootstrap_servers
    return conf


def run(args: argparse.Namespace, out: Output) -> int:
    """``bridge up|down``: run a Mirror until Ctrl-C or a fatal error."""
    from ..bridge import Mirror  # noqa: PLC0415 - keep `embedlog --help` light
    from ..errors import LinkDownError  # noqa: PLC0415

    name = args.name or f"embedlog-{args.direction}"
    pairs = key_values(args.topic_map, "--map")
    topic_map = dict(pairs)
    if len(topic_map) < len(pairs):
        twice = sorted({k for k, _ in pairs if sum(1 for k2, _ in pairs if k2 == k) > 1})
        raise CliError(f"--map gives {', '.join(twice)} more than one remote name; map each topic once")
    path = log_path(args)
    with open_log(args, create=args.direction == "down") as log:
        mirror = Mirror(log, _mirror_config(args), args.topics, direction=args.direction, name=name,
                        topic_map=topic_map, start=args.start)
        with mirror:
            try:
                mirror.wait_for_link(args.connect_timeout)
            except LinkDownError as exc:
                raise CliError(str(exc)) from None
            arrow = "->" if args.direction == "up" else "<-"
            print(f"bridge {name}: {path} {arrow} {args.bootstrap_servers} ({', '.join(args.topics)})",
                  file=sys.stderr, flush=True)
            try:
                while True:
                    mirror.run(timeout=args.interval)
                    st = mirror.status()
                    if out.json_mode:  # (a stream: one compact document a line)
                        out.json_line(st.to_dict())
                    else:
                        link = "up" if st.link_up else f"DOWN ({st.last_error or 'no answer'}; retrying)"
                        lost = f", {st.records_lost} lost to retention" if st.records_lost else ""
                        print(f"{time.strftime('%H:%M:%S')} mirrored {st.records_mirrored}, lag {st.lag}{lost}, "
                              f"link {link}", file=sys.stderr, flush=True)
            except KeyboardInterrupt:
                return 0


def status(args: argparse.Namespace, out: Output) -> int:
    """``bridge status``."""
    from ..storage import mirrors  # noqa: PLC0415

    with open_log(args) as log:
        entries = log._store.read(lambda txn: mirrors.mirror_entries(txn, log._store.dbs))
        links = {(link.mirror, link.direction): link for link in mirrors.mirror_links(log.path)}
    # (an up mirror and a down mirror may share a name: one row each)
    keys = sorted({(e.mirror, e.direction) for e in entries} | set(links))
    now_ms = time.time_ns() // 1_000_000
    rows: list[dict[str, Any]] = []
    for name, direction in keys:
        link = links.get((name, direction))
        mine = [e for e in entries if e.mirror == name and e.direction == direction]
        fresh = link is not None and link.alive(now_ms)
        rows.append({
            "name": name, "direction": direction, "running": fresh,
            "link_up": bool(fresh and link is not None and link.link_up),
            "last_error": link.last_error if link is not None else None,
            "lag": sum(e.lag for e in mine),
            "partitions": [{"topic": e.remote_topic if e.direction == "down" else e.topic,
                            "partition": e.partition,
                            "target_topic": e.topic if e.direction == "down" else e.remote_topic,
                            "source_end": e.end, "mirrored": e.offset, "lag": e.lag, "lost": e.lost}
                           for e in mine],
        })
    if out.json_mode:
        out.json(rows)
        return 0
    if not rows:
        out.line("no mirrors recorded in this log")
        return 0
    for row in rows:
        state = ("running, link up" if row["link_up"] else
                 f"running, link DOWN ({row['last_error'] or 'no answer'})" if row["running"] else "not running")
        out.line(f"mirror {row['name']} ({row['direction']}): {state}; lag {row['lag']}")
        out.table(["TOPIC", "PARTITION", "TARGET", "SOURCE-END", "MIRRORED", "LAG", "LOST"],
                  [[p["topic"], p["partition"], p["target_topic"], p["source_end"], p["mirrored"], p["lag"],
                    p["lost"]] for p in row["partitions"]])
    return 0


def forget(args: argparse.Namespace, out: Output) -> int:
    """``bridge forget NAME``."""
    from ..bridge.mirror import forget_mirror  # noqa: PLC0415 - keep `embedlog --help` light
    from ..storage import mirrors  # noqa: PLC0415

    with open_log(args) as log:
        known = bool(log._store.read(
            lambda txn: mirrors.mirror_entries(txn, log._store.dbs, args.name, args.direction))) or any(
            link.mirror == args.name and args.direction in (None, link.direction)  # (one that recorded no progress)
            for link in mirrors.mirror_links(log.path))
        if not known:
            raise CliError(f"no {args.direction + ' ' if args.direction else ''}mirror named {args.name!r} has "
                           "progress in this log; `embedlog bridge status` lists them")
        gone = forget_mirror(log, args.name, args.direction)
    if out.json_mode:
        out.json({"name": args.name, "direction": args.direction, "partitions_forgotten": gone})
    else:
        print(f"forgot mirror {args.name!r}: the progress of {gone} partition(s) deleted")
    return 0
