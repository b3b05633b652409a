"""Two embedlog nodes on one edge site: a leader, a follower, and a failover by promotion.

Node A leads and node B follows it over TCP on loopback (in this process, in threads).
A producer on A writes with ``acks="all"``: its flush returns once B holds the records
durably.  Then the link drops and A writes three more records with ``acks="leader"``
(durable on A only), and A dies.  B is promoted explicitly (embedlog never promotes on
a timeout: with two nodes there is no majority to tell a dead leader from a cut link),
takes new writes, and A comes back as B's follower: it drops the three records B never
held and ends identical to B.  Consumers on either node never saw those three records.

Run it with ``python examples/edge_pair.py``; node A uses a temporary directory (or the
one named by the first argument; node B always uses a temporary one) and needs no server.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from collections.abc import Callable

import embedlog
from embedlog.replication import Follower, Leader, promote, replication_status

TOPIC = "readings"
SECRET = secrets.token_bytes(32)  # the same bytes on both nodes (a file, or TLS via ssl_context=, in real life)


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def view(log: embedlog.Log, expect: int) -> list[str]:
    """What a consumer on ``log`` reads from the beginning (waiting for ``expect`` records)."""
    got: list[str] = []
    with log.consumer([TOPIC], auto_offset_reset="earliest") as consumer:
        deadline = time.monotonic() + 30
        while len(got) < expect and time.monotonic() < deadline:
            got.extend((m.value or b"").decode() for m in consumer.poll(timeout=0.2))
        got.extend((m.value or b"").decode() for m in consumer.poll(timeout=0.2))  # and nothing more
    return got


def end_offset(log: embedlog.Log) -> int:
    return int(replication_status(log)["partitions"][f"{TOPIC}[0]"]["end_offset"])


def main(path_a: str, path_b: str) -> None:
    log_a = embedlog.open(path_a)
    if replication_status(log_a)["role"] == "replica":  # left a follower by an earlier run: start over
        promote(log_a)
    if TOPIC in log_a.topics():
        log_a.delete_topic(TOPIC)
    log_a.create_topic(TOPIC, partitions=1)
    log_b = embedlog.open(path_b)

    # 1. A leads, B follows.
    leader_a = Leader(log_a, "127.0.0.1:0", secret=SECRET)
    host, port = leader_a.address
    follower_b = Follower(log_b, f"{host}:{port}", secret=SECRET)
    follower_b.wait_connected(timeout=30)
    wait_until(lambda: bool(leader_a.status()["isr"]), "b to join the in-sync set")
    print(f"node a: leader at {host}:{port}, epoch {leader_a.status()['epoch']}; "
          f"node b follows it (in sync: {len(leader_a.status()['isr'])} follower)")

    with log_a.producer(acks="all") as producer:
        for i in range(5):
            producer.send(TOPIC, f"reading-{i}".encode(), key=b"sensor-1")
        producer.flush()  # returns once b holds them durably too
    print(f"node a: 5 records acknowledged with acks='all'; b holds {end_offset(log_b)} of them")
    print(f"consumer on b before failover: {view(log_b, 5)}")

    # 2. The link drops (b disconnects without a goodbye, so a keeps it in its in-sync
    #    set: leave=False); a writes with acks="leader" (durable on a alone), then dies.
    follower_b.close(leave=False)
    with log_a.producer(acks="leader") as producer:
        for i in range(3):
            producer.send(TOPIC, f"unreplicated-{i}".encode(), key=b"sensor-1")
        producer.flush()
    print(f"node a: 3 records acknowledged with acks='leader'; a holds {end_offset(log_a)}, b holds "
          f"{end_offset(log_b)}")
    print(f"consumer on a sees {len(view(log_a, 5))} records: the 3 not on b stay above the high watermark")
    leader_a.close()
    log_a.close()
    print("node a: died")

    # 3. Explicit promotion of b; it takes new writes.
    epoch = promote(log_b)
    leader_b = Leader(log_b, "127.0.0.1:0", secret=SECRET)
    host, port = leader_b.address
    print(f"node b: promoted to leader at epoch {epoch}, at {host}:{port}")
    with log_b.producer(acks="all") as producer:
        for i in range(5, 8):
            producer.send(TOPIC, f"reading-{i}".encode(), key=b"sensor-1")
        producer.flush()
    print("node b: 3 more records acknowledged with acks='all'")

    # 4. a comes back as b's follower: it truncates what b never held and converges.
    log_a = embedlog.open(path_a)
    follower_a = Follower(log_a, f"{host}:{port}", secret=SECRET)
    follower_a.wait_connected(timeout=30)
    wait_until(lambda: end_offset(log_a) == end_offset(log_b) and view(log_a, 8) == view(log_b, 8),
               "a to converge to b")
    after_b, after_a = view(log_b, 8), view(log_a, 8)
    print(f"node a: rejoined as follower of b; holds {end_offset(log_a)} records, the 3 unreplicated ones dropped")
    print(f"consumer on b after failover: {after_b}")
    print(f"consumer on a after failover: {after_a}")
    acked_all = [f"reading-{i}" for i in range(8)]
    print(f"no consumer ever saw an unreplicated record: {not any(v.startswith('unreplicated') for v in after_a)}")
    print(f"every acks='all' record survived the failover, in order, on both nodes: "
          f"{after_b == acked_all and after_a == acked_all}")
    follower_a.close()
    leader_b.close()
    log_a.close()
    log_b.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="edge-pair-") as tmp:
        main(sys.argv[1] if len(sys.argv) > 1 else f"{tmp}/a", f"{tmp}/b")
