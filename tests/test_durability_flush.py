"""durability="flush": nothing that promises durability returns before its commit is on disk.

A kill -9 cannot tell a synced commit from one that is only in the page cache (the
page cache survives it), so besides a kill -9 test these tests watch the order of
commits and syncs: a spy wraps the LMDB environment and logs, in one sequence, every
write commit (its LMDB transaction id, whether it wrote, the record tokens it carried)
and every ``env.sync``; each call that promises durability logs its return.  The
checker then proves that each such return came after its commit was on disk: with
``metasync=False`` (embedlog's ``"flush"`` mode: LMDB syncs a commit's data pages,
and its meta page is synced later), after an ``env.sync`` begun after the commit
returned, or a later commit that wrote (its data ``fdatasync`` flushed the earlier meta
page); with ``metasync=True`` (LMDB's full sync: data pages synced with ``fdatasync``,
then the meta page written with ``O_DSYNC``) at the commit's own return.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest

import embedlog
from embedlog.storage import env as envmod
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

TOKEN = re.compile(rb"tok:[0-9a-z.]+:")


class Spy:
    """One sequence of events from every thread (``itertools.count`` is atomic)."""

    def __init__(self, metasync: bool = True) -> None:
        self.metasync = metasync  # LMDB syncs each commit's meta page before the commit returns
        self._seq = itertools.count()
        self.commits: list[dict[str, Any]] = []  # write commits that returned
        self.syncs: list[tuple[int, int]] = []  # (start, end) of env.sync calls that returned
        self.returns: list[dict[str, Any]] = []  # durable calls that returned

    def now(self) -> int:
        return next(self._seq)


class TxnSpy:
    def __init__(self, spy: Spy, env: lmdb.Environment, txn: lmdb.Transaction, parent: TxnSpy | None) -> None:
        self._spy, self._env, self.txn, self._parent = spy, env, txn, parent
        self.tokens: set[bytes] = set()
        self.txn_id = txn.id()

    def put(self, key: Any, value: Any, *args: Any, **kwargs: Any) -> bool:
        self.tokens.update(TOKEN.findall(bytes(value)))
        return bool(self.txn.put(key, value, *args, **kwargs))

    def commit(self) -> None:
        self.txn.commit()
        if self._parent is not None:
            self._parent.tokens |= self.tokens
            return
        end = self._spy.now()
        wrote = int(self._env.info()["last_txnid"]) >= self.txn_id  # (one process: exact)
        self._spy.commits.append({"id": self.txn_id, "end": end, "wrote": wrote, "tokens": self.tokens,
                                  "thread": threading.get_ident()})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.txn, name)


class EnvSpy:
    def __init__(self, spy: Spy, env: lmdb.Environment) -> None:
        self._spy, self.env = spy, env

    def begin(self, *, write: bool = False, parent: Any = None, **kwargs: Any) -> Any:
        if not write:
            return self.env.begin(write=False, **kwargs)
        real_parent = parent.txn if isinstance(parent, TxnSpy) else parent
        txn = self.env.begin(write=True, parent=real_parent, **kwargs)
        return TxnSpy(self._spy, self.env, txn, parent if isinstance(parent, TxnSpy) else None)

    def sync(self, force: bool = False) -> None:
        start = self._spy.now()
        self.env.sync(force)
        self._spy.syncs.append((start, self._spy.now()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


def spy_on(log: embedlog.Log) -> Spy:
    """Wrap ``log``'s LMDB environment, and its store's ``write``, in a new spy."""
    store = log._store
    handle = store.env._handle()
    spy = Spy(metasync=bool(handle.flags()["metasync"]))
    store.env._env = EnvSpy(spy, handle)  # type: ignore[assignment]
    write = store.write

    def spied_write(fn: Callable[[Any], Any], **kwargs: Any) -> Any:
        start = spy.now()
        result = write(fn, **kwargs)
        if kwargs.get("durable", True):  # (``durable=False`` promises nothing: its caller syncs)
            spy.returns.append({"what": "store.write", "start": start, "end": spy.now(),
                                "thread": threading.get_ident()})
        return result

    store.write = spied_write  # type: ignore[method-assign]
    return spy


def returned(spy: Spy, what: str, token: bytes) -> None:
    """Log that a call whose records carry ``token`` returned (it promised durability)."""
    spy.returns.append({"what": what, "token": token, "end": spy.now()})


def violations(spy: Spy) -> list[str]:
    """Durable calls that returned before their commit was on disk."""
    by_token = {tok: c for c in spy.commits for tok in c["tokens"]}
    bad = []

    def covered(c: dict[str, Any], by: int) -> bool:
        return ((spy.metasync and c["end"] < by)
                or any(start > c["end"] and end < by for start, end in spy.syncs)
                or any(o["id"] > c["id"] and o["wrote"] and o["end"] < by for o in spy.commits))

    for r in spy.returns:
        if "token" in r:
            c = by_token.get(r["token"])
            if c is None:
                bad.append(f"{r['what']} {r['token']!r}: no commit carried it")
            elif not covered(c, r["end"]):
                bad.append(f"{r['what']} {r['token']!r} returned before its commit (txn {c['id']}) was on disk")
        else:
            mine = [c for c in spy.commits if c["thread"] == r["thread"] and r["start"] < c["end"] < r["end"]
                    and c["wrote"]]
            bad.extend(f"{r['what']} returned before its commit (txn {c['id']}) was on disk"
                       for c in mine if not covered(c, r["end"]))
    return bad


@pytest.fixture
def flush_log(tmp_path: Path) -> Iterator[embedlog.Log]:
    lg = embedlog.open(tmp_path / "log", durability="flush", maintenance_interval_ms=None)
    yield lg
    lg.close()


def test_every_durable_call_returns_after_its_commit_is_synced(flush_log: embedlog.Log) -> None:
    """Eight threads flushing after every record, a transaction, topic and offset
    operations: each returns only after a sync or a later commit covered its commit."""
    log = flush_log
    log.create_topic("t", partitions=2)
    spy = spy_on(log)
    errors: list[BaseException] = []

    def flusher(i: int) -> None:
        try:
            p = log.producer()
            for n in range(25):
                tok = b"tok:%d.%d:" % (i, n)
                p.send("t", tok, key=b"k%d" % i)
                p.flush()
                returned(spy, "flush", tok)
            with log.transaction() as tx:
                tok = b"tok:%d.tx:" % i
                tx.send("t", tok, key=b"k%d" % i)
            returned(spy, "transaction", tok)
            p.close()
        except BaseException as exc:  # (re-raised by the test)
            errors.append(exc)

    def admin() -> None:
        try:
            for n in range(5):
                log.create_topic(f"x{n}", partitions=1)
                log.alter_topic_config(f"x{n}", {"retention.ms": 1000 + n})
                log.create_partitions(f"x{n}", 2)
            log.delete_topic("x0")
        except BaseException as exc:  # (re-raised by the test)
            errors.append(exc)

    threads = [threading.Thread(target=flusher, args=(i,)) for i in range(8)] + [threading.Thread(target=admin)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(harness.TIMEOUT)
    assert not errors, errors
    assert len(spy.returns) >= 8 * 26 + 16
    assert not violations(spy), violations(spy)[:5]
    held = [m.value for part in harness.read_all(log, "t").values() for m in part]
    assert len(held) == 8 * 26


def _events(metasync: bool, *order: str) -> Spy:
    """A spy with a hand-made history: ``c<n>`` commit n ends (it carries ``tok:n:``),
    ``s`` a sync runs, ``r<n>`` the flush of ``tok:n:`` returns."""
    spy = Spy(metasync=metasync)
    for ev in order:
        if ev.startswith("c"):
            n = int(ev[1:])
            spy.commits.append({"id": n, "end": spy.now(), "wrote": True, "tokens": {b"tok:%d:" % n},
                                "thread": 0})
        elif ev == "s":
            spy.syncs.append((spy.now(), spy.now()))
        else:
            returned(spy, "flush", b"tok:%d:" % int(ev[1:]))
    return spy


def test_the_checker_sees_a_return_before_the_commit_was_on_disk() -> None:
    """(The checker above proves nothing unless it can fail.)"""
    assert violations(_events(True, "c1", "r1")) == []  # full sync: on disk when the commit returns
    assert violations(_events(True, "r1", "c1")) != []  # returned before its commit
    assert violations(_events(False, "c1", "r1")) != []  # meta page not synced yet
    assert violations(_events(False, "c1", "s", "r1")) == []
    assert violations(_events(False, "s", "c1", "r1")) != []  # that sync began before the commit
    assert violations(_events(False, "c1", "c2", "r1")) == []  # the next commit synced c1's meta page
    assert violations(_events(False, "c1", "c2", "r2")) != []


def test_flush_mode_syncs_each_durable_write_after_its_commit(tmp_path: Path) -> None:
    """LMDB syncs a commit's pages but not its meta page (``MDB_NOMETASYNC``); ``write``
    syncs again after the commit unless told ``durable=False``, whose caller syncs with
    ``make_durable`` (the group commit does, after handing the records to followers)."""
    env = envmod.Env(str(tmp_path), durability="flush")
    try:
        flags = env._handle().flags()
        assert flags["sync"]
        assert not flags["metasync"]
        spy = Spy(metasync=False)
        env._env = EnvSpy(spy, env._handle())  # type: ignore[assignment]
        env.write(lambda txn: txn.put(b"a", b"1", db=env.dbs["meta"]))
        assert len(spy.commits) == 1
        assert len(spy.syncs) == 1
        assert spy.syncs[0][0] > spy.commits[0]["end"]  # begun after the commit returned
        env.write(lambda txn: txn.put(b"b", b"1", db=env.dbs["meta"]), durable=False)
        assert len(spy.commits) == 2
        assert len(spy.syncs) == 1
        env.make_durable()
        assert len(spy.syncs) == 2
        assert spy.syncs[1][0] > spy.commits[1]["end"]
    finally:
        env._env = env._env.env  # type: ignore[union-attr]
        env.close()


@pytest.mark.parametrize("durability", ["interval", "none"])
def test_env_write_does_not_sync_in_other_modes(tmp_path: Path, durability: str) -> None:
    env = envmod.Env(str(tmp_path), durability=durability, fsync_interval_ms=3_600_000)
    try:
        assert not env._handle().flags()["sync"]
        spy = Spy()
        env._env = EnvSpy(spy, env._handle())  # type: ignore[assignment]
        env.write(lambda txn: txn.put(b"a", b"1", db=env.dbs["meta"]))
        env.write(lambda txn: txn.put(b"b", b"1", db=env.dbs["meta"]))
        env.make_durable()
        assert len(spy.commits) == 2
        assert spy.syncs == []
    finally:
        env._env = env._env.env  # type: ignore[union-attr]
        env.close()


def test_a_background_write_is_synced_by_the_next_flush(flush_log: embedlog.Log) -> None:
    """A write no flush asked for (linger) skips the commit's second sync; a ``flush``
    that then finds nothing left to write still puts it on disk before it returns."""
    log = flush_log
    log.create_topic("t")
    spy = spy_on(log)
    p = log.producer(linger_ms=1)
    try:
        p.send("t", b"tok:bg.1:")
        harness.wait_until(lambda: len(spy.commits) == 1 and len(p) == 0, "the linger write")
        assert spy.syncs == []  # (the records are visible, not yet durable)
        p.flush()
        returned(spy, "flush", b"tok:bg.1:")
        assert len(spy.syncs) == 1
        assert violations(spy) == []
        p.flush()  # nothing written since: no second sync
        assert len(spy.syncs) == 1
    finally:
        p.close()


def test_kill9_of_eight_flushing_threads_loses_no_acknowledged_record(tmp_path: Path, children: Any) -> None:
    """Eight threads of one process, each flushing after every record, killed -9 mid-stream."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t", partitions=3)
    acked: dict[str, int] = {}
    for i in range(2):
        child = children.start("flush_threads.py", path, "t", "--id", f"r{i}", "--threads", 8)
        try:
            for k in range(8):  # every thread acknowledged something
                child.wait_for(lambda line, k=k: line.get("id") == f"r{i}.{k}")
        finally:
            child.kill()
        acked.update(harness.acked_counts(child.lines))
        with embedlog.open(path) as log:
            held = harness.check_log(log, "t", acked)
        assert len(acked) == 8 * (i + 1)
        assert all(len(held[pid]) >= n for pid, n in acked.items())
