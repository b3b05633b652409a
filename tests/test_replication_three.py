"""Three nodes on 127.0.0.1: a leader and two followers, each in its own process
(``procs/replica_node.py``); this process produces on the leader's directory with
``acks="all"`` and ``min.insync.replicas=2`` while one follower is killed with SIGKILL
and restarted, twice (the second time while it is still catching up)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog.replication import replication_status
from procs import harness, replcheck

SECRET = "shared-secret-for-three-nodes"


def _follow(children: Any, path: Path, address: str) -> Any:
    node = children.start("replica_node.py", "follower", path, address, "--secret", SECRET, stdin=True)
    line = node.wait_for(lambda ln: "connected" in ln or "error" in ln)
    assert "connected" in line, node.describe()
    return node


@pytest.mark.slow
def test_follower_killed_and_restarted_under_acks_all_load(tmp_path: Path, children: Any) -> None:
    rng = random.Random(3)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    with embedlog.open(a, maintenance_interval_ms=None) as log:
        log.create_topic("t", 3, {"min.insync.replicas": 2})
    leader = children.start("replica_node.py", "leader", a, "--secret", SECRET, "--lag-ms", 1000, stdin=True)
    line = leader.wait_for(lambda ln: "ready" in ln or "error" in ln)
    assert "ready" in line, leader.describe()
    address = "{}:{}".format(*line["address"])
    _follow(children, b, address)
    node_c = _follow(children, c, address)

    with embedlog.open(a, maintenance_interval_ms=None) as la, embedlog.open(b, maintenance_interval_ms=None) as lb, \
            embedlog.open(c, maintenance_interval_ms=None) as lc:
        id_b, id_c = replication_status(lb)["node_id"], replication_status(lc)["node_id"]

        def isr() -> list[str]:
            return sorted(replication_status(la)["isr"] or [])

        harness.wait_until(lambda: isr() == sorted([id_b, id_c]), "both followers in the in-sync set")
        ledger = replcheck.Ledger()
        stop = threading.Event()
        crashed: list[BaseException] = []
        sizes = random.Random(4)

        def produce() -> None:
            try:
                with la.producer(acks="all", delivery_timeout_ms=20_000) as p:
                    while not stop.is_set():
                        for v in ledger.next_values(sizes.randint(1, 60)):
                            p.send("t", v, key=v[-2:])
                        ledger.flush(p)
                ledger.close()
            except BaseException as exc:
                crashed.append(exc)
                raise

        def acked_more(n: int, what: str) -> None:
            start = len(ledger.acked)
            harness.wait_until(lambda: len(ledger.acked) >= start + n or bool(crashed), what)
            assert not crashed

        t = threading.Thread(target=produce)
        t.start()
        try:
            acked_more(300, "acknowledged writes with three nodes")
            for _ in range(2):
                time.sleep(rng.uniform(0, 0.3))
                node_c.kill()  # kill -9, mid-load
                # the leader drops it after the lag limit; with b in sync, acks="all" goes on
                harness.wait_until(lambda: isr() == [id_b], "the killed follower out of the in-sync set")
                acked_more(300, "acknowledged writes without the killed follower")
                node_c = _follow(children, c, address)
            harness.wait_until(lambda: isr() == sorted([id_b, id_c]), "the restarted follower back in sync")
            acked_more(300, "acknowledged writes with three nodes again")
        finally:
            stop.set()
            t.join(60)
        assert not crashed
        replcheck.wait_converged(la, lb, lc)
        for log in (la, lb, lc):
            report = ledger.check(replcheck.partition_values(log, "t"))
            assert report.ok, report
            assert report.held >= len(ledger.acked) >= 1200
