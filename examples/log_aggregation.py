"""Log aggregation: application logs on one topic, fanned out to three consumer groups.

Shows: services writing JSON log lines keyed by service name to a topic with retention
limits; a search indexer, an archiver and an alerter, each its own consumer group, each
reading *every* record of the same topic at its own pace and committing its own offsets;
and a restarted group member resuming from its group's committed offsets.

Run it with ``python examples/log_aggregation.py [LOG_DIR]``: without LOG_DIR it uses a
temporary log (removed at exit); with one, the data stays there for ``embedlog groups describe``.
"""

from __future__ import annotations

import collections
import gzip
import json
import random
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import embedlog

TOPIC = "app-logs"
PARTITIONS = 3
GROUPS = ("search-indexer", "archiver", "alerter")
SERVICES = ("api", "auth", "billing", "worker")
TEMPLATES = {
    "DEBUG": "cache lookup for session {n} took {ms} ms",
    "INFO": "GET /users/{n} 200 in {ms} ms",
    "WARN": "slow query on orders took {ms} ms",
    "ERROR": "timeout calling payments after {ms} ms (request {n})",
}
Handler = Callable[[list[embedlog.Message]], None]


def produce_logs(log: embedlog.Log, rng: random.Random, count: int, errors: int = 0) -> collections.Counter[str]:
    """Write ``count`` log lines (at least ``errors`` of them ERROR); return lines per level."""
    levels: collections.Counter[str] = collections.Counter()
    with log.producer(compression="zstd") as producer:
        for i in range(count):
            level = "ERROR" if i < errors else rng.choices(list(TEMPLATES), weights=(30, 55, 10, 5))[0]
            service = rng.choice(SERVICES)
            line = {"service": service, "level": level,
                    "msg": TEMPLATES[level].format(n=rng.randrange(10_000), ms=rng.randrange(1, 3000))}
            producer.send(TOPIC, json.dumps(line).encode(), key=service.encode(), headers=[("level", level.encode())])
            levels[level] += 1
        producer.flush()  # visible to every group, and durable
    return levels


def run_group(log: embedlog.Log, group: str, handle: Handler, producer_done: threading.Event) -> None:
    """One member of ``group``: poll, handle, commit — until the producer is done and all is read."""
    with log.consumer([TOPIC], group=group, auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        while True:
            finished = producer_done.is_set()  # read before polling: no record can come after it
            messages = consumer.poll(timeout=0.1)
            if messages:
                handle(messages)
                consumer.commit()  # after handling: at-least-once, the next member resumes here
            elif finished and len(consumer.assignment()) == PARTITIONS:
                return


class SearchIndexer:
    def __init__(self) -> None:
        self.index: dict[str, set[tuple[int, int]]] = collections.defaultdict(set)
        self.lines = 0

    def __call__(self, messages: list[embedlog.Message]) -> None:
        for msg in messages:
            for term in re.findall(r"[a-z]+", json.loads(msg.value)["msg"]):
                self.index[term].add((msg.partition, msg.offset))
        self.lines += len(messages)


class Archiver:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lines = 0

    def __call__(self, messages: list[embedlog.Message]) -> None:
        by_service: dict[str, list[bytes]] = collections.defaultdict(list)
        for msg in messages:
            by_service[msg.key.decode()].append(msg.value + b"\n")
        for service, lines in by_service.items():
            with gzip.open(self.directory / f"{service}.jsonl.gz", "ab") as f:
                f.writelines(lines)
        self.lines += len(messages)


class Alerter:
    def __init__(self, quiet: bool = False) -> None:
        self.errors: list[dict[str, str]] = []
        self.lines = 0
        self.quiet = quiet

    def __call__(self, messages: list[embedlog.Message]) -> None:
        for msg in messages:
            if dict(msg.headers).get("level") == b"ERROR":  # filter on a header, without parsing the value
                line = json.loads(msg.value)
                self.errors.append(line)
                if not self.quiet and len(self.errors) <= 3:
                    print(f"  ALERT [{line['service']}] {line['msg']}")
        self.lines += len(messages)


def main(path: str | None) -> int:
    rng = random.Random(5)
    with embedlog.open(path) as log, tempfile.TemporaryDirectory() as archive_dir:
        if TOPIC in log.topics():  # a LOG_DIR of a previous run: start over
            log.delete_topic(TOPIC)
            for group in set(GROUPS) & set(log.groups()):
                log.delete_group(group)
        log.create_topic(TOPIC, partitions=PARTITIONS,
                         config={"retention.ms": 3 * 24 * 3600 * 1000, "retention.bytes": 512 * 1024 * 1024})
        indexer, archiver, alerter = SearchIndexer(), Archiver(Path(archive_dir)), Alerter()
        done = threading.Event()
        threads = [threading.Thread(target=run_group, args=(log, group, handler, done), name=group)
                   for group, handler in zip(GROUPS, (indexer, archiver, alerter))]
        for t in threads:
            t.start()
        levels = produce_logs(log, rng, 600)  # the consumers read while the services write
        done.set()
        for t in threads:
            t.join()
        total = sum(levels.values())
        print(f"produced {total} log lines to {TOPIC!r} ({PARTITIONS} partitions): {dict(sorted(levels.items()))}")

        hits = indexer.index.get("timeout", set())
        print(f"search-indexer: indexed {indexer.lines} lines, {len(indexer.index)} terms; "
              f"'timeout' -> {len(hits)} lines")
        files = sorted(Path(archive_dir).iterdir())
        archived = sum(gzip.decompress(f.read_bytes()).count(b"\n") for f in files)
        print(f"archiver: {archiver.lines} lines into {len(files)} gzip files ({', '.join(f.name for f in files)}), "
              f"{archived} lines on disk")
        print(f"alerter: read {alerter.lines} lines, saw {len(alerter.errors)} ERROR lines")
        for group in GROUPS:
            desc = log.describe_group(group)
            committed = sum(o.committed or 0 for o in desc.offsets)
            print(f"group {group}: committed {committed} records, lag {desc.total_lag}")

        # A restarted alerter resumes from its group's committed offsets: only new lines arrive.
        more = produce_logs(log, rng, 20, errors=4)
        done = threading.Event()
        done.set()
        again = Alerter(quiet=True)
        run_group(log, "alerter", again, done)
        print(f"alerter restarted: read {again.lines} new lines ({len(again.errors)} ERROR), none of the old ones")

        ok = (indexer.lines == archiver.lines == alerter.lines == archived == total
              and len(alerter.errors) == levels["ERROR"] and len(hits) == levels["ERROR"]
              and again.lines == 20 and len(again.errors) == more["ERROR"]
              and all(log.describe_group(g).total_lag == (20 if g != "alerter" else 0) for g in GROUPS))
        print(f"every group read every line; the alerter saw every ERROR line: {ok}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
