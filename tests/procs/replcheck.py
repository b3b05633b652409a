"""Checks shared by the replication tests (imported, not run).

``image`` is everything a log directory holds that replication must copy, read with
``Log.dump`` (every stored batch of every partition, header fields and records, whether
or not the high watermark covers it) plus each topic's configuration; two nodes have
converged when their images are equal.  ``Ledger`` keeps what a producer was told and
``check`` reports, for the records a node holds, which acknowledged ones are lost,
which are duplicated, which were never sent, and which are out of order.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import attrs

import embedlog
from embedlog.errors import EmbedlogError, NotEnoughReplicasError
from embedlog.errors import TimeoutError as EmbedlogTimeoutError

__all__ = ["Ledger", "Report", "image", "partition_values", "raw", "wait_converged"]


def raw(log: embedlog.Log) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every key and value of every LMDB database of the log (to prove nothing changed)."""
    store = log._store

    def fn(txn: Any) -> dict[str, list[tuple[bytes, bytes]]]:
        out = {}
        for name, db in store.dbs.items():
            with txn.cursor(db=db) as cur:
                out[name] = [(bytes(k), bytes(v)) for k, v in cur]
        return out

    return store.read(fn)


def image(log: embedlog.Log) -> dict[str, Any]:
    """Topics (configuration) and every stored batch per ``(topic, partition)``."""
    out: dict[str, Any] = {}
    for name in sorted(log.topics()):
        d = log.describe_topic(name)
        out[name] = {"config": d.config,
                     "partitions": {p.partition: list(log.dump(name, p.partition)) for p in d.partitions}}
    return out


def partition_values(log: embedlog.Log, topic: str) -> dict[int, list[bytes]]:
    """Every stored value of ``topic``, per partition in offset order (high watermark or not)."""
    d = log.describe_topic(topic)
    return {p.partition: [r.value for b in log.dump(topic, p.partition) for r in b.records if r.value is not None]
            for p in d.partitions}


def wait_converged(leader: embedlog.Log, *followers: embedlog.Log, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until every follower's ``image`` equals the leader's; return it.  Fails with
    the first difference after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        want = image(leader)
        images = [image(f) for f in followers]
        if all(got == want for got in images):
            return want
        if time.monotonic() > deadline:
            bad = next(got for got in images if got != want)
            raise AssertionError(f"followers did not converge within {timeout:.0f} s: {_difference(want, bad)}")
        time.sleep(0.05)


def _difference(want: dict[str, Any], got: dict[str, Any]) -> str:
    if want.keys() != got.keys():
        return f"topics {sorted(want)} on the leader, {sorted(got)} on the follower"
    for name in want:
        if want[name]["config"] != got[name]["config"]:
            return f"{name}: config differs"
        for p, batches in want[name]["partitions"].items():
            other = got[name]["partitions"].get(p, [])
            if batches != other:
                ends = [(b[-1].last_offset if b else None) for b in (batches, other)]
                return f"{name}[{p}]: {len(batches)} batches (last offset {ends[0]}) on the leader, " \
                       f"{len(other)} (last offset {ends[1]}) on the follower"
    return "?"


@attrs.frozen
class Report:
    """What ``Ledger.check`` found; all empty or zero when nothing went wrong."""

    lost: list[bytes]
    duplicated: list[bytes]
    unknown: list[bytes]
    reordered: int
    held: int

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated, unknown or reordered."""
        return not (self.lost or self.duplicated or self.unknown or self.reordered)


@attrs.define
class Ledger:
    """What a producer was told: values acknowledged (a flush returned), values written
    but not acknowledged (a flush raised after writing them: allowed once, or not at
    all), values still buffered.  Values sort in send order."""

    acked: list[bytes] = attrs.field(factory=list)
    maybe: set[bytes] = attrs.field(factory=set)
    pending: list[bytes] = attrs.field(factory=list)
    failures: list[EmbedlogError] = attrs.field(factory=list)
    counter: int = 0

    def next_values(self, n: int) -> list[bytes]:
        """``n`` fresh values, increasing in send order (the caller sends them)."""
        out = [b"r%08d" % i for i in range(self.counter, self.counter + n)]
        self.counter += n
        self.pending.extend(out)
        return out

    def flush(self, producer: embedlog.Producer, timeout: float | None = None) -> EmbedlogError | None:
        """``producer.flush()``; note what it acknowledged.  Returns the typed error of a
        flush that could not be acknowledged (``NotEnoughReplicasError``,
        ``embedlog.errors.TimeoutError``), which the issue allows; anything else raises."""
        try:
            producer.flush(timeout)
        except (NotEnoughReplicasError, EmbedlogTimeoutError) as exc:
            if len(producer) == 0:  # written on the leader, not acknowledged
                self.maybe.update(self.pending)
                self.pending = []
            # else refused before writing: still buffered, carried by the next flush
            self.failures.append(exc)
            return exc
        self.acked.extend(self.pending)
        self.pending = []
        return None

    def close(self) -> None:
        """The producer is closed: whatever was still buffered may have been written."""
        self.maybe.update(self.pending)
        self.pending = []

    def check(self, parts: dict[int, list[bytes]]) -> Report:
        """Compare with what a node holds (``partition_values``)."""
        every = [v for vs in parts.values() for v in vs]
        held = set(every)
        acked = set(self.acked)
        seen: set[bytes] = set()
        dups = []
        for v in every:
            if v in seen:
                dups.append(v)
            seen.add(v)
        return Report(lost=[v for v in self.acked if v not in held], duplicated=dups,
                      unknown=[v for v in every if v not in acked and v not in self.maybe],
                      reordered=sum(1 for vs in parts.values() for x, y in itertools.pairwise(vs) if x >= y),
                      held=len(every))
