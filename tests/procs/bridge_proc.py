"""Helper: run an ``embedlog.bridge.Mirror`` on a log directory until killed.

    python bridge_proc.py DIR --bootstrap HOSTS --topic T [--topic T2 ...] [--direction up|down]
                          [--name NAME] [--config KEY=VALUE ...] [--checkpoint-ms MS]
                          [--batch-size N] [--until-caught-up] [--no-checkpoints] [--pause-after N]

Prints ``{"ready": pid}`` once the mirror's thread runs, then every 0.1 s a line
``{"mirrored": records sent this run, "lag": ..., "link_up": ...}``.  With
``--until-caught-up`` it waits for the link and for the mirror to catch up, stops it
cleanly, prints ``{"caught_up": status}`` and exits 0; otherwise it runs until killed
or stdin closes.  An error that stops the mirror is printed as ``{"error": text}``
(exit 1).  ``--no-checkpoints`` (up only) makes it record no progress (only the start-up
checkpoint of a fresh topic), as a bridge killed before its first progress checkpoint:
whatever it delivered is then ahead of the checkpoint, whatever the timing (an idle
bridge checkpoints at once otherwise).  ``--pause-after N`` (up only): once it has sent N
records or more, it waits until Kafka acknowledged all it sent, then stops sending (and
checkpointing) for good; the status lines then carry ``"paused": records sent`` (for a
kill at a known point: Kafka holds exactly those, the checkpoint none of them).

Tests import ``caught_up`` from here (``from procs import bridge_proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import embedlog
from embedlog.bridge import Mirror
from embedlog.bridge.up import UpEngine
from embedlog.errors import EmbedlogError


def caught_up(mirror: Mirror, timeout: float) -> None:
    """``wait_for_link`` then ``wait_caught_up``, once the mirror knows its partitions:
    ``wait_caught_up`` called before that waits for nothing and times out (see
    test_bridge.py::test_wait_caught_up_right_after_start)."""
    deadline = time.monotonic() + timeout
    mirror.wait_for_link(timeout)
    while not mirror.status().partitions:
        if mirror.status().error is not None or time.monotonic() > deadline:
            break  # wait_caught_up raises the error, or times out
        time.sleep(0.05)
    mirror.wait_caught_up(max(0.0, deadline - time.monotonic()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", action="append", required=True)
    ap.add_argument("--direction", default="up")
    ap.add_argument("--name", default="bridge")
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--checkpoint-ms", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--until-caught-up", action="store_true")
    ap.add_argument("--no-checkpoints", action="store_true")
    ap.add_argument("--pause-after", type=int, default=None)
    args = ap.parse_args()
    paused: list[int] = []
    if args.pause_after is not None:
        step = UpEngine.step

        def pausing_step(self: UpEngine, stop: threading.Event) -> int:
            n = step(self, stop)
            if self.sent_total >= args.pause_after:
                while self.producer.flush(1.0):  # (until Kafka acknowledged every record sent)
                    pass
                paused.append(self.sent_total)
                stop.wait()  # never returns to the loop (no checkpoint) until the mirror stops
            return n

        UpEngine.step = pausing_step  # type: ignore[method-assign]
    if args.no_checkpoints:
        checkpoint = UpEngine.checkpoint

        def no_progress(self: UpEngine, force: bool = False, stop: threading.Event | None = None,
                        stall_s: float = 10.0, topics: list[str] | None = None) -> bool:
            if topics is not None:  # the start-up checkpoint of a fresh topic, before it sends any of it
                return checkpoint(self, force, stop, stall_s, topics)
            return True  # (sent and delivered, never recorded as progress)

        UpEngine.checkpoint = no_progress  # type: ignore[method-assign]

    config: dict[str, object] = {"bootstrap.servers": args.bootstrap, "log_level": 0}
    for item in args.config:
        key, _, value = item.partition("=")
        config[key] = value
    log = embedlog.open(args.path, maintenance_interval_ms=None)
    mirror = Mirror(log, config, args.topic, direction=args.direction, name=args.name,
                    checkpoint_interval_ms=args.checkpoint_ms, batch_size=args.batch_size)
    mirror.start()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    try:
        if args.until_caught_up:
            caught_up(mirror, 120)
            mirror.stop()
            print(json.dumps({"caught_up": mirror.status().to_dict()}), flush=True)
            return
        closed = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
        while not closed.is_set():
            st = mirror.status()
            if st.error is not None:
                print(json.dumps({"error": st.error}), flush=True)
                sys.exit(1)
            line = {"mirrored": st.records_mirrored, "lag": st.lag, "link_up": st.link_up}
            if paused:
                line["paused"] = paused[0]
            print(json.dumps(line), flush=True)
            time.sleep(0.1)
        mirror.stop()
    except EmbedlogError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(1)
    finally:
        mirror.close()
        log.close()


if __name__ == "__main__":
    main()
