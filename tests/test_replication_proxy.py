"""Replication through a fault-injecting TCP proxy (``procs/tcpproxy.py``) on 127.0.0.1.

The leader and the follower run in this process on two log directories; the follower
connects to the proxy, the proxy to the leader.  The proxy cuts the link (closes both
sides), black-holes it (stops relaying, keeps the sockets open) or delays it.  Every
test ends with the follower holding exactly the leader's log (``replcheck.image``: every
batch, header and record, and the topic configuration) and checks every acknowledged
record is there once, in order.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import embedlog
from embedlog.errors import EmbedlogError, NotEnoughReplicasError
from embedlog.errors import TimeoutError as EmbedlogTimeoutError
from embedlog.replication import Follower, Leader, replication_status
from procs import harness, replcheck, tcpproxy

SECRET = b"shared-secret-for-proxy-tests"
BACKOFF_MS = (20, 200)
SESSION_TIMEOUT_MS = 2000


@attrs.define
class Link:
    """A leader, a follower behind a proxy, and both logs."""

    la: embedlog.Log
    lb: embedlog.Log
    leader: Leader
    follower: Follower
    proxy: tcpproxy.Proxy

    def in_sync(self) -> bool:
        return self.leader.status()["isr"] == [self.follower.core.node_id]

    def check(self, ledger: replcheck.Ledger) -> None:
        """The follower converges to exactly the leader's log; nothing acknowledged is
        lost, duplicated or reordered on either."""
        replcheck.wait_converged(self.la, self.lb)
        for log in (self.la, self.lb):
            report = ledger.check(replcheck.partition_values(log, "t"))
            assert report.ok, report
        assert ledger.acked


@pytest.fixture
def link(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Link]:
    opts: dict[str, Any] = getattr(request, "param", {})
    with embedlog.open(tmp_path / "a", maintenance_interval_ms=None) as la, \
            embedlog.open(tmp_path / "b", maintenance_interval_ms=None) as lb:
        la.create_topic("t", 2, {"min.insync.replicas": opts.get("min_insync", 1)})
        with Leader(la, secret=SECRET, replica_lag_time_max_ms=opts.get("lag_ms", 30_000),
                    session_timeout_ms=SESSION_TIMEOUT_MS) as leader, \
                tcpproxy.Proxy(leader.address) as proxy, \
                Follower(lb, proxy.address, secret=SECRET, session_timeout_ms=SESSION_TIMEOUT_MS,
                         backoff_ms=BACKOFF_MS) as follower:
            follower.wait_connected(30)
            lk = Link(la, lb, leader, follower, proxy)
            harness.wait_until(lk.in_sync, "the follower in the in-sync set")
            yield lk


def _send(p: embedlog.Producer, ledger: replcheck.Ledger, n: int) -> None:
    for v in ledger.next_values(n):
        p.send("t", v, key=v[-1:])


def test_cut_link_acks_all_waits_for_the_follower_which_reconnects_with_backoff(link: Link) -> None:
    ledger = replcheck.Ledger()
    p = link.la.producer(acks="all", delivery_timeout_ms=60_000)
    _send(p, ledger, 20)
    assert ledger.flush(p) is None
    connections = link.follower.status()["connections"]

    cut_at = time.monotonic()
    link.proxy.cut()
    _send(p, ledger, 30)
    result: list[EmbedlogError | None] = []
    flusher = threading.Thread(target=lambda: result.append(ledger.flush(p)))
    flusher.start()
    # the follower keeps trying, backing off: wait for a few attempts through the cut link
    harness.wait_until(lambda: sum(1 for t, mode in link.proxy.attempts if mode == "cut") >= 6,
                       "the follower to retry through the cut link")
    tries = [t for t, mode in link.proxy.attempts if mode == "cut" and t >= cut_at]
    for i, (a, b) in enumerate(itertools.pairwise(tries), start=1):
        # each wait at least 0.8 x the doubling backoff (its jitter is 0.8-1.2x)
        least = 0.8 * min(BACKOFF_MS[0] * 2 ** i, BACKOFF_MS[1]) / 1000
        assert b - a >= least, f"retry {i + 1} came {b - a:.3f} s after retry {i}; the backoff is at least {least} s"
    # meanwhile the records are on the leader, unacknowledged and invisible to consumers
    assert flusher.is_alive()
    assert not result
    status = replication_status(link.la)
    assert sum(x["end_offset"] for x in status["partitions"].values()) == 50
    assert sum(x["high_watermark"] for x in status["partitions"].values()) == 20

    link.proxy.heal()
    flusher.join(60)
    assert result == [None]  # flushed OK once the link came back
    assert link.follower.status()["connections"] > connections
    assert sum(x.end_offset for x in link.lb.describe_topic("t").partitions) == 50
    _send(p, ledger, 10)
    assert ledger.flush(p) is None
    p.close()
    ledger.close()
    link.check(ledger)


@pytest.mark.parametrize("link", [{"min_insync": 2, "lag_ms": 600}], indirect=True)
def test_black_hole_raises_typed_errors_then_the_follower_rejoins(link: Link) -> None:
    ledger = replcheck.Ledger()
    p = link.la.producer(acks="all", delivery_timeout_ms=1000, linger_ms=600_000)  # written at flushes only
    _send(p, ledger, 20)
    assert ledger.flush(p) is None

    link.proxy.black_hole()
    # nothing written from now on can reach the follower: every flush must fail, typed,
    # until the follower gave up on the silent link and the leader dropped it
    errors = []
    deadline = time.monotonic() + 60
    while len(errors) < 3 or link.follower.status()["connected"] or link.leader.status()["isr"]:
        _send(p, ledger, 10)
        err = ledger.flush(p)
        assert err is not None, "an acks='all' flush returned while the only follower was cut off"
        errors.append(err)
        assert time.monotonic() < deadline, "the follower never noticed the black hole"
        time.sleep(0.05)
    assert {type(e) for e in errors} <= {NotEnoughReplicasError, EmbedlogTimeoutError}
    # the in-sync set is the leader alone, below min.insync.replicas=2: refused before writing
    _send(p, ledger, 10)
    assert isinstance(ledger.flush(p), NotEnoughReplicasError)
    assert len(p) > 0

    link.proxy.heal()
    link.follower.wait_connected(30)
    harness.wait_until(link.in_sync, "the follower back in the in-sync set")
    assert link.follower.status()["connections"] >= 2  # it gave up on the silent link and reconnected
    deadline = time.monotonic() + 30
    while True:  # the in-sync set is 2 again: acks="all" works again
        _send(p, ledger, 10)
        if ledger.flush(p) is None:
            break
        assert time.monotonic() < deadline, ledger.failures[-3:]
    p.close()
    ledger.close()
    link.check(ledger)


@pytest.mark.slow
@pytest.mark.parametrize("link", [{"lag_ms": 1000}], indirect=True)
def test_faults_under_load_lose_nothing(link: Link) -> None:
    """A producer flushes acks='all' rounds without pause (delivery timeout 0.8 s)
    while the link is delayed, cut, black-holed and healed in a random order, each for
    up to 2.2 s: flushes time out, the follower leaves the in-sync set (lag 1 s) and
    rejoins; in the end it holds exactly the leader's log."""
    rng, sizes = random.Random(7), random.Random(8)
    ledger = replcheck.Ledger()
    stop = threading.Event()
    crashed: list[BaseException] = []

    def produce() -> None:
        try:
            with link.la.producer(acks="all", delivery_timeout_ms=800, linger_ms=1000) as p:
                while not stop.is_set():
                    _send(p, ledger, sizes.randint(1, 40))
                    ledger.flush(p)
            ledger.close()
        except BaseException as exc:
            crashed.append(exc)
            raise

    t = threading.Thread(target=produce)
    t.start()
    try:
        faults = ["cut", "black_hole", "delay", "cut", "black_hole"]
        rng.shuffle(faults)
        for fault in faults:
            time.sleep(rng.uniform(0.1, 0.3))
            if fault == "delay":
                link.proxy.delay(rng.uniform(0.005, 0.05))
            else:
                getattr(link.proxy, fault)()
            time.sleep(rng.uniform(0.2, 2.2))
            link.proxy.heal()
            link.proxy.delay(0)
        acked = len(ledger.acked)
        harness.wait_until(lambda: len(ledger.acked) > acked or bool(crashed), "a flush acknowledged after healing")
    finally:
        stop.set()
        t.join(60)
    assert not crashed
    harness.wait_until(link.in_sync, "the follower back in the in-sync set")
    link.check(ledger)
