"""A CI/CD event stream with a live status view.

Shows: three simulated runners (threads) taking pipelines from a queue and producing an
event per stage (started, passed, failed) to a topic keyed by pipeline, so each pipeline's
events stay in order; and a status board, consumer group ``status-board``, following the
stream and redrawing a compact status table as events arrive (in place on a terminal,
as successive snapshots otherwise), then a summary.

Run it with ``python examples/cicd_events.py [LOG_DIR]`` (default: a temporary log).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import random
import sys
import threading
import time

import embedlog

TOPIC, GROUP, PARTITIONS = "ci-events", "status-board", 3
STAGES = ("checkout", "build", "test", "deploy")
PIPELINES = [f"{repo}#{n}" for n in (1, 2, 3) for repo in ("web", "api", "worker")]
FAILURES = {"api#2": "test", "worker#3": "build"}  # pipeline -> the stage that fails
REDRAW_S = 0.3


def runner(log: embedlog.Log, name: str, jobs: queue.Queue[str], seed: int) -> None:
    """Run pipelines from ``jobs``; produce an event at every stage change."""
    rng = random.Random(seed)
    with log.producer(linger_ms=1) as producer:
        def emit(pipeline: str, stage: str, status: str) -> None:
            event = {"pipeline": pipeline, "runner": name, "stage": stage, "status": status}
            producer.send(TOPIC, json.dumps(event).encode(), key=pipeline.encode(),
                          headers=[("event", f"stage.{status}".encode())])

        while True:
            try:
                pipeline = jobs.get_nowait()
            except queue.Empty:
                return
            for stage in STAGES:
                emit(pipeline, stage, "started")
                time.sleep(rng.uniform(0.04, 0.14))  # the work
                failed = FAILURES.get(pipeline) == stage
                emit(pipeline, stage, "failed" if failed else "passed")
                if failed:
                    break


@dataclasses.dataclass
class Row:
    runner: str
    stage: str
    status: str
    started: int  # ms, the first event's timestamp
    updated: int


class StatusBoard:
    def __init__(self) -> None:
        self.state: dict[str, Row] = {}
        self.events = 0

    def apply(self, msg: embedlog.Message) -> None:
        event = json.loads(msg.value)
        row = self.state.setdefault(event["pipeline"], Row("", "", "", msg.timestamp, msg.timestamp))
        row.runner, row.stage, row.status, row.updated = event["runner"], event["stage"], event["status"], msg.timestamp
        if row.status == "started":
            row.status = "running"
        elif row.status == "passed" and row.stage == STAGES[-1]:
            row.status = "succeeded"
        self.events += 1

    def render(self, title: str) -> str:
        lines = [title, f"{'PIPELINE':10} {'RUNNER':9} {'STAGE':9} {'STATUS':10} {'TIME':>6}"]
        for pipeline in PIPELINES:
            row = self.state.get(pipeline)
            if row is None:
                lines.append(f"{pipeline:10} {'-':9} {'-':9} queued")
                continue
            took = (row.updated - row.started) / 1000
            lines.append(f"{pipeline:10} {row.runner:9} {row.stage:9} {row.status:10} {took:5.2f}s")
        return "\n".join(lines)


def main(path: str | None) -> int:
    with embedlog.open(path) as log:
        if TOPIC in log.topics():  # a LOG_DIR of a previous run: start over
            log.delete_topic(TOPIC)
        if GROUP in log.groups():
            log.delete_group(GROUP)
        log.create_topic(TOPIC, partitions=PARTITIONS, config={"retention.ms": 14 * 24 * 3600 * 1000})

        jobs: queue.Queue[str] = queue.Queue()
        for pipeline in PIPELINES:
            jobs.put(pipeline)
        runners = [threading.Thread(target=runner, args=(log, f"runner-{i}", jobs, i)) for i in (1, 2, 3)]
        board, live = StatusBoard(), sys.stdout.isatty()
        began = last_draw = time.monotonic()
        with log.consumer([TOPIC], group=GROUP, auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
            for thread in runners:
                thread.start()
            changed = False
            while True:
                finished = not any(t.is_alive() for t in runners)  # a finished runner has flushed
                messages = consumer.poll(timeout=0.05)
                for msg in messages:
                    board.apply(msg)
                if messages:
                    consumer.commit()
                    changed = True
                now = time.monotonic()
                if changed and (now - last_draw >= REDRAW_S or (finished and not messages)):
                    snapshot = board.render(f"-- {TOPIC} at {now - began:4.1f}s: {board.events} events --")
                    print(("\x1b[H\x1b[2J" if live else "") + snapshot, flush=True)
                    last_draw, changed = now, False
                if finished and not messages and len(consumer.assignment()) == PARTITIONS:
                    break
        for thread in runners:
            thread.join()

        failed = {p: r.stage for p, r in board.state.items() if r.status == "failed"}
        succeeded = sorted(p for p, r in board.state.items() if r.status == "succeeded")
        lag = log.describe_group(GROUP).total_lag
        print(f"{len(PIPELINES)} pipelines: {len(succeeded)} succeeded, {len(failed)} failed "
              f"({', '.join(f'{p} at {s}' for p, s in sorted(failed.items()))}); {board.events} events, lag {lag}")
        expected_events = sum(2 * (STAGES.index(FAILURES[p]) + 1 if p in FAILURES else len(STAGES)) for p in PIPELINES)
        ok = failed == FAILURES and len(succeeded) == len(PIPELINES) - len(FAILURES) and lag == 0 \
            and board.events == expected_events
        print(f"the board shows every pipeline's final state: {ok}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
