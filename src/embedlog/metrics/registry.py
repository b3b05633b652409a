"""Client counters: what producers and consumers of this process report, and their rates.

Producers report once per write (``produced(records, bytes)``), consumers once per
``poll`` that returned records (``consumed(records)``) — never per record.  Each report
is one uncontended lock and a few integer additions.

Counters are per process and per log directory (its real path): clients of two ``Log``
objects opened on one directory in one process share them; clients in other processes
are not seen (their records are, through the partitions' offsets).  Totals only grow,
so they are Prometheus counters; rates are taken over a sliding window of
``WINDOW_S`` seconds from samples kept at most once per ``SAMPLE_S``.

This module is a leaf: it imports nothing from embedlog, so the clients may import it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

import attrs

__all__ = [
    "SAMPLE_S",
    "WINDOW_S",
    "ClientCounters",
    "CounterSnapshot",
    "consumer_counters",
    "counters_of",
    "producer_counters",
]

#: Rates are averaged over this many seconds (Kafka clients' ``metrics.sample.window.ms``
#: times ``metrics.num.samples`` is 30 s too).
WINDOW_S = 30.0
#: At most one sample per this many seconds.
SAMPLE_S = 1.0
#: A rate is never averaged over less than this, so a counter a few milliseconds old
#: does not report an absurd rate.
_MIN_ELAPSED_S = 1.0

_monotonic = time.monotonic


@attrs.frozen
class CounterSnapshot:
    """One counter's totals since the process started and its recent rates."""

    kind: str
    """``"producer"`` or ``"consumer"``."""
    group: str | None
    """The consumer group (``None`` for producers and consumers without a group)."""
    records_total: int
    bytes_total: int
    """Producers: encoded batch bytes written (compressed, as stored). Consumers: 0."""
    calls_total: int
    """Producers: writes (flushes and linger writes). Consumers: polls that returned records."""
    records_per_sec: float
    bytes_per_sec: float
    calls_per_sec: float


class ClientCounters:
    """Totals and rate samples for one kind of client of one log. Thread-safe."""

    __slots__ = ("_last_report", "_lock", "_next_sample", "_samples", "bytes", "calls", "group", "kind",
                 "records")

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self.records = 0
        self.bytes = 0
        self.calls = 0
        self._lock = threading.Lock()
        # (monotonic time, records, bytes, calls) at that time, oldest first
        now = _monotonic()
        self._samples: deque[tuple[float, int, int, int]] = deque([(now, 0, 0, 0)])
        self._next_sample = now + SAMPLE_S
        self._last_report = now  # (the totals have been what they are since then)

    def _sample(self, now: float) -> None:
        """Keep a sample now; drop those past the window (lock held)."""
        samples = self._samples
        sample = (now, self.records, self.bytes, self.calls)
        if samples[-1] != sample:
            samples.append(sample)
        self._next_sample = now + SAMPLE_S
        # keep one sample at or before the window's start, so the window stays full
        while len(samples) > 2 and samples[1][0] <= now - WINDOW_S:
            samples.popleft()

    def _mark_idle(self, now: float) -> None:
        """(Lock held, a sample due, before counting a report) Keep the totals as they
        were from the last report up to now, so that an idle time shows as samples with
        equal totals (``snapshot`` then starts its window inside it)."""
        samples = self._samples
        totals = (self.records, self.bytes, self.calls)
        last = (self._last_report, *totals)
        if self._last_report >= samples[-1][0] and last != samples[-1]:  # (equal time: a report in its tick)
            samples.append(last)
        if now - samples[-1][0] > SAMPLE_S:
            samples.append((now, *totals))

    def produced(self, records: int, nbytes: int) -> None:
        """A producer wrote ``records`` records in ``nbytes`` bytes of batches (one write)."""
        with self._lock:
            now = _monotonic()
            due = now >= self._next_sample
            if due:
                self._mark_idle(now)
            self.records += records
            self.bytes += nbytes
            self.calls += 1
            self._last_report = now
            if due:
                self._sample(now)

    def consumed(self, records: int) -> None:
        """A consumer's ``poll`` returned ``records`` records."""
        with self._lock:
            now = _monotonic()
            due = now >= self._next_sample
            if due:
                self._mark_idle(now)
            self.records += records
            self.calls += 1
            self._last_report = now
            if due:
                self._sample(now)

    def snapshot(self, now: float | None = None) -> CounterSnapshot:
        """Totals and rates over the last ``WINDOW_S`` seconds."""
        now = _monotonic() if now is None else now
        with self._lock:
            if now >= self._next_sample:
                self._mark_idle(now)
                self._sample(now)
            records, nbytes, calls = self.records, self.bytes, self.calls
            start = now - WINDOW_S
            samples = self._samples
            at = 0
            while at + 1 < len(samples) and samples[at + 1][0] <= start:
                at += 1
            base = samples[at]  # the newest sample at or before the window's start
            since = base[0]
            if at + 1 < len(samples) and samples[at + 1][1:] == base[1:]:
                # Nothing happened from it to the next (an idle time): the window starts
                # with these totals.
                since = min(max(since, start), samples[at + 1][0])
        # (else what came after it came within SAMPLE_S of it: over at most that much more)
        elapsed = max(min(now - since, WINDOW_S + SAMPLE_S), _MIN_ELAPSED_S)
        return CounterSnapshot(
            self.kind, self.group, records, nbytes, calls,
            (records - base[1]) / elapsed, (nbytes - base[2]) / elapsed, (calls - base[3]) / elapsed)


_lock = threading.Lock()
# real path of the log directory -> (kind, group) -> counters
_registry: dict[str, dict[tuple[str, str | None], ClientCounters]] = {}


def _key(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path))


def _counters(path: str | os.PathLike[str], kind: str, group: str | None) -> ClientCounters:
    key = _key(path)
    with _lock:
        per_log = _registry.setdefault(key, {})
        counters = per_log.get((kind, group))
        if counters is None:
            counters = per_log[(kind, group)] = ClientCounters(kind, group)
        return counters


def producer_counters(path: str | os.PathLike[str]) -> ClientCounters:
    """The counters producers of the log at ``path`` report to (one per log and process)."""
    return _counters(path, "producer", None)


def consumer_counters(path: str | os.PathLike[str], group: str | None = None) -> ClientCounters:
    """The counters consumers of ``group`` (``None``: no group) of the log at ``path`` report to."""
    return _counters(path, "consumer", group)


def counters_of(path: str | os.PathLike[str]) -> list[ClientCounters]:
    """Every counter reported to for the log at ``path`` in this process, producers first."""
    with _lock:
        found = list(_registry.get(_key(path), {}).values())
    return sorted(found, key=lambda c: (c.kind != "producer", c.group or ""))
