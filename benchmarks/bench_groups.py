"""The consumer-group benchmark of embedlog (issue 3): joining, group consumption, commits
and transactions, each beside a target or the raw-LMDB floor measured in the same run.

    python benchmarks/bench_groups.py [--quick] [--records N] [--runs K] [--proc-runs K]

Prints Markdown tables and writes ``benchmarks/results/groups.md`` and ``groups.json``
(``groups-quick.*`` with ``--quick``, as ``bench_core.py`` does).  See
``benchmarks/README.md`` for what each row means.

Run as a group member in a subprocess (used by the cross-process join rows):
``python bench_groups.py --child-member PATH GROUP TOPIC``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_core
import floor
from report import num, pct, progress_printer, table, verdict, write_results
from workload import KEYS, VALUE, median, percentile, rate, scratch_dir

try:
    import embedlog
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import embedlog

from embedlog import TopicPartition

HERE = Path(__file__).resolve().parent
TARGETS = {"join_inproc_16_ms": 50, "join_xproc_16_ms": 500, "group_overhead": 0.10}
SECTIONS = ("join", "consume", "commits")
JOIN_PARTITIONS = 16  # the join topic: 16 members own one partition each
POLL_S = 0.2  # a member's poll timeout: group changes wake a blocked poll at once anyway
Event = tuple[int, int, str, Any]  # (monotonic ns, member index, kind, payload)


# -- join to owning: members ----------------------------------------------------------------------
class ThreadMember:
    """A group member on a thread of this process (one shared ``Log``)."""

    def __init__(self, log: embedlog.Log, idx: int, group: str, topic: str, events: queue.SimpleQueue[Event]) -> None:
        self.idx = idx
        self.consumer: embedlog.Consumer | None = None
        self._go = threading.Event()
        self._stop = threading.Event()
        self._args = (log, group, topic, events)
        self._thread = threading.Thread(target=self._run, name=f"member-{idx}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        log, group, topic, events = self._args
        i = self.idx

        def on(kind: str) -> Callable[[list[TopicPartition]], None]:
            return lambda parts: events.put((time.monotonic_ns(), i, kind, [tuple(tp) for tp in parts]))

        try:
            self._go.wait()
            t0 = time.monotonic_ns()
            c = log.consumer([topic], group=group, enable_auto_commit=False, on_assign=on("assign"),
                             on_revoke=on("revoke"), on_lost=on("lost"))
            self.consumer = c
            events.put((t0, i, "join", c.group_metadata()[1]))
            while not self._stop.is_set():
                c.poll(timeout=POLL_S)
            c.close()
        except BaseException as exc:
            events.put((time.monotonic_ns(), i, "error", repr(exc)))

    def go(self) -> None:
        self._go.set()

    def assignment(self) -> set[tuple[str, int]] | None:
        c = self.consumer
        return None if c is None else {(tp.topic, tp.partition) for tp in c.assignment()}

    def stop(self) -> None:
        self._go.set()
        self._stop.set()

    def join(self) -> None:
        self._thread.join(30)


class ProcessMember:
    """A group member in a subprocess (this file with ``--child-member``), reporting over a pipe."""

    def __init__(self, path: str, idx: int, group: str, topic: str, events: queue.SimpleQueue[Event]) -> None:
        self.idx = idx
        self._events = events
        self._ready = threading.Event()
        self.proc = subprocess.Popen([sys.executable, __file__, "--child-member", path, group, topic],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, _, rest = line.strip().partition(" ")
            if kind == "ready":
                self._ready.set()
                continue
            t_ns, _, payload = rest.partition(" ")
            value: Any = payload if kind in ("join", "error") else [tuple(tp) for tp in json.loads(payload)]
            self._events.put((int(t_ns), self.idx, kind, value))
        self._ready.set()
        if self.proc.wait() != 0:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self._events.put((time.monotonic_ns(), self.idx, "error", f"member process exited: {err[-1500:]}"))

    def wait_ready(self, timeout: float = 60) -> None:
        if not self._ready.wait(timeout) or self.proc.poll() is not None:
            err = self.proc.stderr.read()[-1500:] if self.proc.poll() is not None and self.proc.stderr else ""
            raise RuntimeError(f"member process {self.idx} did not start {err}".strip())

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # it may have exited already
            assert self.proc.stdin is not None
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def go(self) -> None:
        self._say("go")

    def assignment(self) -> set[tuple[str, int]] | None:
        return None  # known only from its reports

    def stop(self) -> None:
        self._say("stop")

    def join(self) -> None:
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)


def _child_member(path: str, group: str, topic: str) -> None:
    lock = threading.Lock()

    def say(*parts: object) -> None:
        with lock:
            print(*parts, flush=True)

    def on(kind: str) -> Callable[[list[TopicPartition]], None]:
        return lambda parts: say(kind, time.monotonic_ns(), json.dumps([list(tp) for tp in parts]))

    with embedlog.open(path) as log:
        say("ready")
        if sys.stdin.readline().strip() != "go":
            return
        stop = threading.Event()

        def wait_stop() -> None:
            sys.stdin.readline()  # "stop", or end of input when the parent went away
            stop.set()

        threading.Thread(target=wait_stop, daemon=True).start()
        t0 = time.monotonic_ns()
        c = log.consumer([topic], group=group, enable_auto_commit=False, on_assign=on("assign"),
                         on_revoke=on("revoke"), on_lost=on("lost"))
        say("join", t0, c.group_metadata()[1])
        while not stop.is_set():
            c.poll(timeout=POLL_S)
        c.close()


# -- join to owning: waiting for a stable group -----------------------------------------------------
class GroupWatch:
    """Follows members' join/assign/revoke reports and says when the group is stable."""

    def __init__(self, log: embedlog.Log, group: str, members: list[Any], events: queue.SimpleQueue[Event],
                 settle_s: float) -> None:
        self.log = log
        self.group = group
        self.members = members
        self.events = events
        self.settle_s = settle_s
        self.member_ids: dict[int, str] = {}
        self.joined_ns: dict[int, int] = {}
        self.owned: dict[int, set[tuple[str, int]]] = {}

    def _apply(self, ev: Event) -> None:
        t, i, kind, payload = ev
        if kind == "error":
            raise RuntimeError(f"member {i}: {payload}")
        if kind == "join":
            self.member_ids[i] = payload
            self.joined_ns[i] = t
            self.owned.setdefault(i, set())
        elif kind == "assign":
            self.owned.setdefault(i, set()).update(payload)
        else:  # revoke, lost
            self.owned.setdefault(i, set()).difference_update(payload)

    def _owning(self, k: int) -> bool:
        """Every one of ``k`` joined members owns partitions; together all, each once."""
        if len(self.member_ids) != k or not all(self.owned.get(i) for i in self.member_ids):
            return False
        sizes = sum(len(self.owned[i]) for i in self.member_ids)
        union = set().union(*(self.owned[i] for i in self.member_ids))
        return sizes == len(union) == JOIN_PARTITIONS

    def _confirmed(self) -> bool:
        """The log agrees: state Stable, these members, each owning what it reported."""
        desc = self.log.describe_group(self.group)
        if desc.state != "Stable" or {m.member_id for m in desc.members} != set(self.member_ids.values()):
            return False
        by_id = {m.member_id: {tuple(tp) for tp in m.partitions} for m in desc.members}
        for i, mid in self.member_ids.items():
            if by_id[mid] != self.owned[i]:
                return False
            seen = self.members[i].assignment()
            if seen is not None and seen != self.owned[i]:
                return False
        return True

    def wait(self, k: int, timeout: float = 60.0) -> int:
        """Monotonic ns of the report that left ``k`` members owning their partitions for good."""
        deadline = time.monotonic() + timeout
        last = 0
        while time.monotonic() < deadline:
            if self._owning(k):
                try:  # settle: no further move within settle_s, and the log agrees
                    ev = self.events.get(timeout=self.settle_s)
                except queue.Empty:
                    if self._confirmed():
                        return last
                    continue
            else:
                try:
                    ev = self.events.get(timeout=max(0.001, deadline - time.monotonic()))
                except queue.Empty:
                    continue
            self._apply(ev)
            if ev[2] != "join":
                last = max(last, ev[0])
        raise TimeoutError(f"group {self.group!r} not stable with {k} members after {timeout:.0f} s: "
                           f"{self.owned}")


def join_run(log: embedlog.Log, path: str, topic: str, group: str, n: int, *, processes: bool,
             all_at_once: bool) -> list[float]:
    """Milliseconds from joining to owning: one figure per join (one after another), or one
    figure for all ``n`` (all at once, from the moment they are told to join)."""
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    members: list[Any] = []
    try:
        for i in range(n):
            members.append(ProcessMember(path, i, group, topic, events) if processes
                           else ThreadMember(log, i, group, topic, events))
        for m in members:
            if isinstance(m, ProcessMember):
                m.wait_ready()
        watch = GroupWatch(log, group, members, events, settle_s=0.1 if processes else 0.03)
        if all_at_once:
            t0 = time.monotonic_ns()
            for m in members:
                m.go()
            return [(watch.wait(n) - t0) / 1e6]
        out = []
        for i, m in enumerate(members):
            m.go()
            t1 = watch.wait(i + 1)
            out.append((t1 - watch.joined_ns[i]) / 1e6)
        return out
    finally:
        for m in members:
            m.stop()
        for m in members:
            m.join()


def join_section(root: str, sizes: tuple[int, ...], runs: int, proc_runs: int,
                 progress: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with scratch_dir(root, "join") as d, embedlog.open(d) as log:
        log.create_topic("join", partitions=JOIN_PARTITIONS)
        for where, processes, k in (("in_process", False, runs), ("cross_process", True, proc_runs)):
            seq: dict[str, Any] = {"joins": [], "errors": []}
            for r in range(k):  # one after another, up to the largest size: the k-th join gives size k
                try:
                    seq["joins"].append(join_run(log, d, "join", f"seq-{where}-{r}", max(sizes), processes=processes,
                                                 all_at_once=False))
                    progress(f"join {where}, one after another, run {r + 1}/{k}: "
                             + " ".join(f"{x:.0f}" for x in seq["joins"][-1]) + " ms")
                except Exception as exc:
                    seq["errors"].append(bench_core._error(exc))
                    progress(f"join {where}, one after another: ERROR {exc!r}")
            out[f"{where}_sequential"] = seq
            for n in sizes:
                cell: dict[str, Any] = {"ms": [], "errors": []}
                for r in range(k):
                    try:
                        cell["ms"] += join_run(log, d, "join", f"all-{where}-{n}-{r}", n, processes=processes,
                                               all_at_once=True)
                    except Exception as exc:
                        cell["errors"].append(bench_core._error(exc))
                        progress(f"join {where}, {n} at once: ERROR {exc!r}")
                out[f"{where}_all_{n}"] = cell
                progress(f"join {where}, {n} at once: " + " ".join(f"{x:.0f}" for x in cell["ms"]) + " ms")
    return out


def join_rows(data: dict[str, Any], sizes: tuple[int, ...]) -> list[list[str]]:
    rows = []
    for where, label, tkey in (("in_process", "threads of one process", "join_inproc_16_ms"),
                               ("cross_process", "separate processes", "join_xproc_16_ms")):
        limit = TARGETS[tkey]
        seq = data[f"{where}_sequential"]
        for n in sizes:
            target = f"< {limit} ms" if n == 16 else "-"
            ms = [run[n - 1] for run in seq["joins"] if len(run) >= n]
            what = f"member #{n} joins a group of {n - 1} (one after another), {label}"
            rows.append(_join_row(what, n, ms, seq["errors"], target, limit if n == 16 else None))
        for n in sizes:
            cell = data[f"{where}_all_{n}"]
            target = f"< {limit} ms" if n == 16 else "-"
            rows.append(_join_row(f"{n} member(s) join at once, {label}", n, cell["ms"], cell["errors"], target,
                                  limit if n == 16 else None))
        every = [x for run in seq["joins"] for x in run]
        if every:
            rows.append([f"(every join of the one-after-another runs, {label})", "1..16", str(len(every)),
                         f"{median(every):,.1f}", f"{percentile(every, 90):,.1f}", f"{max(every):,.1f}", "-", "-"])
    return rows


def _join_row(what: str, n: int, ms: list[float], errors: list[dict[str, str]], target: str,
              limit: float | None) -> list[str]:
    if not ms:
        err = errors[0]["error"][:200] if errors else "no data"
        return [what, str(n), "ERROR", "-", "-", "-", target, err]
    med = median(ms)
    ok = None if limit is None else med < limit
    return [what, str(n), str(len(ms)), f"{med:,.1f}", f"{percentile(ms, 90):,.1f}", f"{max(ms):,.1f}", target,
            verdict(ok) + (f"; {len(errors)} run(s) failed" if errors else "")]


# -- group consume throughput ---------------------------------------------------------------------------
def _threads_consume(log: embedlog.Log, topic: str, n: int, make: Callable[[int], embedlog.Consumer],
                     threads: int) -> tuple[float, float]:
    """Seconds from releasing ``threads`` already-created consumers until all ``n`` records
    were read, and the steady rate (records/s) from the moment every consumer had received
    records (for a group: its first rebalance done) to the end."""
    counts = [0] * threads
    last_ns = [0] * threads
    polls: list[list[tuple[int, int]]] = [[] for _ in range(threads)]  # per consumer: (ns, records) a poll
    errors: list[BaseException] = []
    made = threading.Barrier(threads + 1)
    start = threading.Event()
    # Nobody closes before everybody stopped polling: a group member closing hands its
    # partitions to one still polling, which would read them again from the start.
    done = threading.Barrier(threads)

    def worker(i: int) -> None:
        try:
            c = make(i)
        except BaseException as exc:
            errors.append(exc)
            made.wait()
            done.wait()
            return
        with c:
            made.wait()
            start.wait()
            poll = c.poll
            mine = polls[i]
            try:
                while sum(counts) < n and not errors:
                    batch = poll(timeout=0.1)
                    if batch:
                        counts[i] += len(batch)
                        last_ns[i] = now = time.monotonic_ns()
                        mine.append((now, len(batch)))
            except BaseException as exc:
                errors.append(exc)
            done.wait(120)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    made.wait(60)
    t0 = time.monotonic_ns()
    start.set()
    deadline = time.monotonic() + 120
    for t in pool:
        t.join(max(0.1, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    # (More than n can happen: members that never commit (as here) read again what a partition's
    # previous owner read before the group's first rebalance moved it; they are records read too.)
    if any(t.is_alive() for t in pool) or sum(counts) < n:
        raise RuntimeError(f"consumers read {sum(counts)} records, expected {n}")
    end = max(last_ns)
    steady_from = max(p[0][0] for p in polls)  # every consumer has had records by then
    after = sum(k for p in polls for ns, k in p if ns > steady_from)
    steady = after / ((end - steady_from) / 1e9) if end > steady_from else float("nan")
    return (end - t0) / 1e9, steady


def _standalone_consume(log: embedlog.Log, topic: str, n: int, max_poll: int) -> tuple[float, float]:
    """``bench_core.embedlog_consume`` (one consumer on this thread, the clock started
    after it was created), and its steady rate measured as the group rows' is: from the
    return of its first poll with records to the last record.  (It was ``n / seconds``:
    the standalone's first fetch counted in its steady rate, the groups' not.)"""
    first: list[float] = []
    seconds = bench_core.embedlog_consume(log, topic, n, max_poll, first)
    at, got = first
    steady = (n - got) / (seconds - at) if seconds > at else float("nan")
    return seconds, steady


def _python_work(items: int) -> int:
    """CPU-bound Python of a consumer's kind: lists of 500 new tuples of four fields."""
    made = 0
    for i in range(items // 500):
        made += len([(i, j, b"k", b"v") for j in range(500)])
    return made


def gil_floor(items: int = 2_000_000, pairs: int = 3) -> float:
    """CPython's own price for 4 threads: the overhead of splitting the same pure-Python
    work over 4 threads against doing it on 1 (``1 - rate4 / rate1``), nothing of
    embedlog in it; the median of ``pairs`` pairs, in alternating order.  Under the GIL
    only one thread runs Python at a time, so 4 threads can only add thread switches;
    the group-of-4 row pays that too."""

    def one() -> float:
        t0 = time.perf_counter()
        _python_work(items)
        return time.perf_counter() - t0

    def four() -> float:
        pool = [threading.Thread(target=_python_work, args=(items // 4,)) for _ in range(4)]
        t0 = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return time.perf_counter() - t0

    overheads = []
    for i in range(pairs):
        if i % 2:
            b = four()
            a = one()
        else:
            a = one()
            b = four()
        overheads.append(1 - a / b)
    return median(overheads)


CONSUME_VARIANTS = ("standalone", "assign4", "group1", "group4")
CONSUME_LABELS = {
    "standalone": "1 standalone consumer (no group), 1 thread",
    "assign4": "4 standalone consumers on 4 threads, assign() one partition each (no group)",
    "group1": "group of 1 member, 1 thread",
    "group4": "group of 4 in-process members, 4 threads",
}


def consume_section(root: str, n: int, runs: int, max_poll: int, progress: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {v: {"seconds": [], "steady": [], "errors": []} for v in CONSUME_VARIANTS}
    out["gil_floor"] = []
    with scratch_dir(root, "consume") as d, embedlog.open(d) as log:
        log.create_topic("gc", partitions=4)
        bench_core.embedlog_produce(log, "gc", n)
        opts: dict[str, Any] = {"auto_offset_reset": "earliest", "max_poll_records": max_poll}
        for r in range(runs):
            # Rounds rotate the order and reverse every other one: no row always runs first, or
            # always after the same row (what a run leaves behind may slow the next).
            k = r % len(CONSUME_VARIANTS)
            order = CONSUME_VARIANTS[k:] + CONSUME_VARIANTS[:k]
            for v in order[::-1] if r % 2 else order:
                group = f"{v}-{r}"

                def make(i: int, v: str = v, group: str = group) -> embedlog.Consumer:
                    if v == "assign4":
                        c = log.consumer(**opts)
                        c.assign([TopicPartition("gc", i)])
                        return c
                    if v.startswith("group"):
                        return log.consumer(["gc"], group=group, enable_auto_commit=False, **opts)
                    return log.consumer(["gc"], **opts)

                try:
                    if v == "standalone":
                        seconds, steady = _standalone_consume(log, "gc", n, max_poll)
                    else:
                        seconds, steady = _threads_consume(log, "gc", n, make, 1 if v == "group1" else 4)
                    out[v]["seconds"].append(seconds)
                    out[v]["steady"].append(steady)
                except Exception as exc:
                    out[v]["errors"].append(bench_core._error(exc))
                    progress(f"consume {v}: ERROR {exc!r}")
            out["gil_floor"].append(gil_floor())
            progress(f"consume round {r + 1}/{runs}: " + ", ".join(
                f"{v} {rate(n, out[v]['seconds'][-1]):,.0f}/s" for v in CONSUME_VARIANTS if out[v]["seconds"]))
    return out


def consume_rows(data: dict[str, Any], n: int) -> list[list[str]]:
    rows = []
    base = median([rate(n, s) for s in data["standalone"]["seconds"]])
    steady_base = median(data["standalone"].get("steady") or [float("nan")])
    for v in CONSUME_VARIANTS:
        cell = data[v]
        if v == "group4" and data.get("gil_floor"):
            rows.append(["floor: the same pure-Python work on 4 threads vs 1 (CPython's GIL alone; "
                         "bench_groups.gil_floor)", "-", "-", "-", pct(median(data["gil_floor"])), "-", "-", "-",
                         "-"])
        if not cell["seconds"]:
            rows.append([CONSUME_LABELS[v], num(n), "ERROR", "-", "-", "-", "-", "-",
                         cell["errors"][0]["error"][:200] if cell["errors"] else "no data"])
            continue
        r = median([rate(n, s) for s in cell["seconds"]])
        steady = median(cell.get("steady") or [float("nan")])
        target, ok = "-", None
        if v == "group4":
            target = f"overhead < {TARGETS['group_overhead']:.0%}"
            ok = 1 - r / base < TARGETS["group_overhead"]
        rows.append([CONSUME_LABELS[v], num(n), num(r), pct(r / base), pct(1 - r / base) if v != "standalone" else "-",
                     num(steady), pct(1 - steady / steady_base) if v != "standalone" else "-", target, verdict(ok)])
    return rows


# -- commits and transactions -------------------------------------------------------------------------
def _owning_members(log: embedlog.Log, topic: str, group: str, k: int) -> list[embedlog.Consumer]:
    """``k`` members of ``group`` on ``topic`` (k partitions), each owning one partition."""
    members = [log.consumer([topic], group=group, auto_offset_reset="earliest", enable_auto_commit=False)
               for _ in range(k)]
    deadline = time.monotonic() + 30
    while any(len(c.assignment()) != 1 for c in members):
        if time.monotonic() > deadline:
            raise TimeoutError(f"members did not each get one partition: {[c.assignment() for c in members]}")
        for c in members:
            c.poll(timeout=0.01, max_records=1)
    return members


def _count_writes(log: embedlog.Log) -> list[int]:
    """Count the LMDB write transactions of ``log``'s store from now on (one fsync each
    in durability=flush): how many commits shared one shows in ``commits / txns``."""
    env = log._store.env
    write = env.write
    count = [0]

    def counting(fn: Callable[[Any], Any], **kw: Any) -> Any:
        count[0] += 1
        return write(fn, **kw)

    env.write = counting  # type: ignore[method-assign]
    return count


def commits(path: str, seconds: float, durability: str, members: int) -> dict[str, Any]:
    """Explicit ``commit({tp: offset})`` in a loop by ``members`` members (a thread each)."""
    with embedlog.open(path, durability=durability) as log:
        log.create_topic("c", partitions=members)
        with log.producer() as p:
            for part in range(members):
                for i in range(1000):
                    p.send("c", VALUE, key=KEYS[i], partition=part)
        cs = _owning_members(log, "c", "committers", members)
        counts = [0] * members
        last: dict[TopicPartition, int] = {}
        stop = threading.Event()
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            c = cs[i]
            (tp,) = c.assignment()
            commit = c.commit
            k = 0
            try:
                while not stop.is_set():
                    off = 1 + k % 1000
                    commit({tp: off})
                    k += 1
                    last[tp] = off
            except BaseException as exc:
                errors.append(exc)
            counts[i] = k

        pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(members)]
        txns = _count_writes(log)
        t0 = time.perf_counter()
        for t in pool:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in pool:
            t.join(60)
        elapsed = time.perf_counter() - t0
        writes = txns[0]
        if errors:
            raise errors[0]
        got = cs[0].committed(list(last))
        check = "ok" if got == last else f"committed {got} != last commits {last}"
        for c in cs:
            c.close()
    total = sum(counts)
    return {"commits": total, "seconds": elapsed, "per_s": total / elapsed, "txns": writes,
            "per_txn": total / max(1, writes), "check": check}


def transactions(path: str, seconds: float, durability: str, with_offsets: bool, records: int = 10) -> dict[str, Any]:
    """``with log.transaction()`` of ``records`` sends in a loop; with offsets: consume-transform-produce
    (poll ``records`` input records, send them on, commit the input offset in the transaction)."""
    with embedlog.open(path, durability=durability) as log:
        log.create_topic("out", partitions=1)
        c = None
        if with_offsets:
            log.create_topic("in", partitions=1)
            bench_core.embedlog_produce(log, "in", 200_000)
            (c,) = _owning_members(log, "in", "pipeline", 1)
            c.seek(TopicPartition("in", 0), 0)
        keys = KEYS[:records]
        n = 0
        sent = 0
        committed = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            if c is not None:
                msgs = c.poll(timeout=1.0, max_records=records)
                if not msgs:
                    break
                with log.transaction() as tx:
                    for m in msgs:
                        tx.send("out", m.value, key=m.key)
                    committed = msgs[-1].offset + 1
                    tx.commit_offsets(c, {TopicPartition("in", 0): committed})
                sent += len(msgs)  # a poll may return fewer than asked (a batch boundary)
            else:
                with log.transaction() as tx:
                    for key in keys:
                        tx.send("out", VALUE, key=key)
                sent += records
            n += 1
        elapsed = time.perf_counter() - t0
        end = log.describe_topic("out").partitions[0].end_offset
        problems = []
        if end != sent:
            problems.append(f"end offset {end} != {sent} records sent")
        if c is not None:
            got = c.committed([TopicPartition("in", 0)])[TopicPartition("in", 0)]
            if got != committed:
                problems.append(f"committed {got} != {committed}")
            c.close()
    return {"transactions": n, "seconds": elapsed, "per_s": n / elapsed, "records_per_s": sent / elapsed,
            "check": "; ".join(problems) or "ok"}


COMMIT_VARIANTS = (
    ("commit_1_flush", "commit({tp: offset}), 1 member", "flush", 1),
    ("commit_4_flush", "commit({tp: offset}), 4 members on 4 threads (total)", "flush", 4),
    ("commit_8_flush", "commit({tp: offset}), 8 members on 8 threads (total)", "flush", 8),
    ("commit_1_none", "commit({tp: offset}), 1 member", "none", 1),
)
TX_VARIANTS = (
    ("tx_flush", "transaction of 10 records", "flush", False),
    ("tx_offsets_flush", "transaction: poll 10, send 10, commit_offsets(consumer)", "flush", True),
    ("tx_none", "transaction of 10 records", "none", False),
    ("tx_offsets_none", "transaction: poll 10, send 10, commit_offsets(consumer)", "none", True),
)


def commit_section(root: str, seconds: float, samples: int, progress: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    warmup = min(100, samples // 10)
    for sync in (True, False):
        with scratch_dir(root, "floor-commit") as d:
            ns = floor.commit_latencies(d, samples + warmup, sync=sync)[warmup:]
        out[f"floor_{'sync' if sync else 'nosync'}"] = {"p50_ns": percentile(ns, 50), "samples": len(ns)}
    for key, _label, durability, members in COMMIT_VARIANTS:
        try:
            with scratch_dir(root, key) as d:
                out[key] = commits(d, seconds, durability, members)
            progress(f"{key}: {out[key]['per_s']:,.0f} commits/s")
        except Exception as exc:
            out[key] = bench_core._error(exc)
            progress(f"{key}: ERROR {exc!r}")
    for key, _label, durability, with_offsets in TX_VARIANTS:
        try:
            with scratch_dir(root, key) as d:
                out[key] = transactions(d, seconds, durability, with_offsets)
            progress(f"{key}: {out[key]['per_s']:,.0f} transactions/s")
        except Exception as exc:
            out[key] = bench_core._error(exc)
            progress(f"{key}: ERROR {exc!r}")
    return out


def commit_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    floors = {"flush": 1e9 / data["floor_sync"]["p50_ns"], "none": 1e9 / data["floor_nosync"]["p50_ns"]}
    dur = {"flush": "flush (fsync per LMDB txn)", "none": "none (no fsync)"}
    for what, variants, count in (("commits", COMMIT_VARIANTS, "commits"), ("tx", TX_VARIANTS, "transactions")):
        for key, label, durability, _x in variants:
            s = data[key]
            if "error" in s:
                rows.append([label, dur[durability], "ERROR", "-", "-", "-", "-", s["error"][:200]])
                continue
            recs = num(s["records_per_s"]) if what == "tx" else "-"
            per_txn = f"{s['per_txn']:.1f}" if "per_txn" in s else "-"
            rows.append([label, dur[durability], num(s[count]), num(s["per_s"]), recs, per_txn,
                         pct(s["per_s"] / floors[durability]), "ok" if s["check"] == "ok" else
                         f"CHECK FAILED: {s['check']}"])
    for sync, label in (("sync", dur["flush"]), ("nosync", dur["none"])):
        rows.append([f"floor: one-record LMDB write txn commit (1 / p50 of {data[f'floor_{sync}']['samples']})",
                     label, "-", num(1e9 / data[f"floor_{sync}"]["p50_ns"]), "-", "1.0", "100%", "-"])
    return rows


# -- main --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller run (~1-2 min)")
    ap.add_argument("--records", type=int, help="records for the group consume rows (default 1,000,000; --quick "
                                                "200,000)")
    ap.add_argument("--runs", type=int, help="runs per consume row and in-process join row (default 7; --quick 3)")
    ap.add_argument("--proc-runs", type=int, help="runs per cross-process join row (default 3; --quick 1)")
    ap.add_argument("--seconds", type=float, help="seconds per commit / transaction row (default 3; --quick 1)")
    ap.add_argument("--floor-samples", type=int, help="one-record LMDB commits timed for the floor (default 2000; "
                                                      "--quick 300)")
    ap.add_argument("--max-poll-records", type=int, default=500, help="of every consumer in the consume rows")
    ap.add_argument("--dir", help="scratch directory (default: a new temporary directory, removed afterwards)")
    ap.add_argument("--out", default=str(HERE / "results"), help="where to write groups.md and groups.json")
    ap.add_argument("--only", action="append", choices=SECTIONS,
                    help="run only this section (repeatable); results go to groups-<sections>.md/.json")
    args = ap.parse_args(argv)
    args.records = args.records or (200_000 if args.quick else 1_000_000)
    args.runs = args.runs or (3 if args.quick else 7)
    args.proc_runs = args.proc_runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.0 if args.quick else 3.0)
    args.floor_samples = args.floor_samples or (300 if args.quick else 2000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    progress = progress_printer(started)

    root = args.dir or tempfile.mkdtemp(prefix="embedlog-bench-groups-")
    os.makedirs(root, exist_ok=True)
    sizes = (1, 4, 16)
    data: dict[str, Any] = {"environment": bench_core._environment(), "args": dict(vars(args)), "targets": TARGETS}
    sections = [name for name in SECTIONS if not args.only or name in args.only]
    try:
        if "join" in sections:
            data["join"] = join_section(root, sizes, args.runs, args.proc_runs, progress)
        if "consume" in sections:
            data["consume"] = consume_section(root, args.records, args.runs, args.max_poll_records, progress)
        if "commits" in sections:
            data["commits"] = commit_section(root, args.seconds, args.floor_samples, progress)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    env = data["environment"]
    env["loadavg_end"] = bench_core._load()
    env["seconds"] = round(time.perf_counter() - started, 1)
    data["summary"] = summary(data, args.records) if len(sections) == len(SECTIONS) else {}
    command = " ".join(sys.argv[1:] if argv is None else argv)
    md = [f"# embedlog consumer-group benchmark{' (--quick)' if args.quick else ''}", "",
          f"{env['date']} · git {env['git'] or '?'} · Python {env['python']} · py-lmdb {env['lmdb']} · "
          f"{env['cpus']} CPUs · {env['platform']}", "",
          f"Load average at start {env['loadavg_start']}, at end {env['loadavg_end']} (other work on this machine "
          f"moves absolute figures; compare within one run); total {env['seconds']:.0f} s. "
          f"Command: `python benchmarks/bench_groups.py {command}`", ""]
    if "join" in data:
        md += [
            f"## Joining to owning (topic of {JOIN_PARTITIONS} partitions, durability=flush, cooperative-sticky)", "",
            "From a member's `log.consumer(..., group=)` call (one after another) or from the moment all are told "
            "to join (at once) until every member owns its target partitions (seen in its on_assign/on_revoke, "
            "then confirmed: `describe_group` state Stable, each member's partitions = its `assignment()`). "
            "Members poll with timeout 0.2 s; processes are started and have opened the log before the clock "
            "starts.", "",
            table(["what", "members", "runs", "median ms", "p90 ms", "max ms", "target", "met?"],
                  join_rows(data["join"], sizes)), "",
        ]
    if "consume" in data:
        md += [
            f"## Group consumption ({args.records:,} records, 4 partitions, max_poll_records={args.max_poll_records})",
            "",
            "Each row: consumers created first (group members join then), the clock starts when they are released "
            "to poll and stops at the last record received; medians of "
            f"{args.runs} runs, interleaved round by round in an order that changes every round.", "",
            "*steady*: the same run from the moment every consumer had received records (a group's first "
            "rebalance done: the members join before the clock starts, but partitions move to them at their "
            "first polls, with the commits that takes) to the last record; the target is judged on the whole "
            "run.", "",
            table(["what", "records", "msgs/s", "vs standalone", "overhead", "steady msgs/s", "steady overhead",
                   "target", "met?"],
                  consume_rows(data["consume"], args.records)), "",
        ]
    if "commits" in data:
        md += [
            f"## Commits and transactions ({args.seconds:g} s each, one thread unless said)", "",
            table(["what", "durability", "count", "per second", "records/s", "commits per LMDB txn", "vs floor",
                   "check"], commit_rows(data["commits"])), "",
            "Issue 3 gives no target for commits/s or transactions/s. A commit or transaction alone is one LMDB "
            "write transaction; commits from several threads at once share one (group commit: one fsync for "
            "all; *commits per LMDB txn* counts the store's write transactions during the row), so their total "
            "may pass the floor. The floor is one-record LMDB commits in a loop (1 / median commit time), "
            "measured in this run; fsync times drift with other disk work, so compare rows near each other.", "",
        ]
    text = "\n".join(md)
    name = "groups" if len(sections) == len(SECTIONS) else "groups-" + "-".join(sections)
    write_results(args.out, name, args.quick, text, data, progress)
    return 0


def summary(data: dict[str, Any], n: int) -> dict[str, float]:
    """Headline figures (for run.py's report)."""
    nan = float("nan")
    out: dict[str, float] = {}
    for where in ("in_process", "cross_process"):
        seq = data["join"][f"{where}_sequential"]["joins"]
        out[f"join_{where}_16th_ms"] = median([run[15] for run in seq if len(run) >= 16])
        out[f"join_{where}_all16_ms"] = median(data["join"][f"{where}_all_16"]["ms"])
    c = data["consume"]
    rates = {v: median([rate(n, s) for s in c[v]["seconds"]]) for v in CONSUME_VARIANTS}
    out.update({f"consume_{v}": r for v, r in rates.items()})
    out["group_overhead"] = 1 - rates["group4"] / rates["standalone"]
    steady = {v: median(c[v].get("steady") or [nan]) for v in CONSUME_VARIANTS}
    out["group_overhead_steady"] = 1 - steady["group4"] / steady["standalone"]
    cm = data["commits"]
    for key in [k for k, *_ in COMMIT_VARIANTS] + [k for k, *_ in TX_VARIANTS]:
        out[f"{key}_per_s"] = cm[key].get("per_s", nan)
    out["floor_commit_sync_per_s"] = 1e9 / cm["floor_sync"]["p50_ns"]
    out["floor_commit_nosync_per_s"] = 1e9 / cm["floor_nosync"]["p50_ns"]
    return out


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child-member":
        _child_member(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(main())
