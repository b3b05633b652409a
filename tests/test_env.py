"""``embedlog.storage.env`` details not covered elsewhere."""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

import lmdb
import pytest

import embedlog
from embedlog.storage import env as envmod


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_current_pid_follows_fork() -> None:
    """Env and Notifier tell a forked child by ``current_pid()`` (no getpid per commit):
    it must be the child's pid in the child."""
    assert envmod.current_pid() == os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(w, b"%d %d" % (envmod.current_pid(), os.getpid()))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        seen, real = map(int, f.read().split())
    os.waitpid(pid, 0)
    assert seen == real == pid
    assert envmod.current_pid() == os.getpid() != pid


def _evict(path: str) -> None:
    """Drop the file from the page cache (clean first), so the next read is from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _major_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_majflt


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise to empty the page cache")
def test_replaying_from_disk_reads_batches_ahead(tmp_path: Path) -> None:
    """The log is opened with the OS's readahead on: records read back from a cold page
    cache come in a few large reads, not one synchronous 4 KiB read a page (with LMDB's
    MDB_NORDAHEAD replaying 1M records from disk ran ~7x slower).  The control, the same
    file read with readahead off, shows the eviction worked on this filesystem."""
    path = tmp_path / "log"
    data = str(path / "data.mdb")
    n = 20_000
    with embedlog.open(path, durability="none") as log:
        log.create_topic("t")
        with log.producer() as p:
            for i in range(n):
                p.send("t", b"v" * 1000, key=b"k%d" % (i % 10))
    _evict(data)
    before = _major_faults()
    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, max_dbs=16)
    try:
        with env.begin(db=env.open_db(b"batches"), buffers=True) as txn:
            touched = sum(len(bytes(value)) for _key, value in txn.cursor())
    finally:
        env.close()
    control = _major_faults() - before
    assert touched > n * 1000
    if control < touched // 4096 // 2:
        pytest.skip(f"the page cache was not emptied here ({control} major faults reading {touched} bytes)")
    _evict(data)
    before = _major_faults()
    with embedlog.open(path) as log, log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = 0
        while got < n:
            batch = c.poll(timeout=5.0)
            assert batch, f"nothing after {got} records"
            got += len(batch)
    faults = _major_faults() - before
    assert faults < control // 8, (faults, control)


def test_close_does_not_wait_forever_for_an_entry_an_interrupt_left_behind(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``KeyboardInterrupt`` between a transaction's entering the environment's gate and
    the ``try`` that leaves it leaves an entry behind for good (simulated: an entry never
    left). Closing waits for transactions under way, but only so long: it returns."""
    monkeypatch.setattr(envmod, "_CLOSE_WAIT_S", 0.3)
    log = embedlog.open(tmp_path / "log")
    log.create_topic("t")
    env = log._store.env
    env._gate.enter()  # as an interrupted read would leave it
    t0 = time.monotonic()
    log.close()
    assert 0.25 <= time.monotonic() - t0 < 10
    assert env.closed
    with embedlog.open(tmp_path / "log") as again:  # nothing was damaged
        assert again.topics() == ["t"]


def test_close_waits_for_a_transaction_under_way(tmp_path: Path) -> None:
    """The bound is a backstop: a read under way in another thread is waited for."""
    log = embedlog.open(tmp_path / "log")
    log.create_topic("t")
    env = log._store.env
    inside = threading.Event()
    release = threading.Event()
    seen: list[list[str]] = []

    def reader() -> None:
        with env.read() as txn:
            inside.set()
            release.wait(10)
            seen.append([bytes(k).decode() for k, _ in txn.cursor(db=env.dbs["topics"])])

    t = threading.Thread(target=reader)
    t.start()
    assert inside.wait(10)
    closer = threading.Thread(target=log.close)
    closer.start()
    time.sleep(0.2)
    assert closer.is_alive()  # waiting for the reader
    release.set()
    t.join(10)
    closer.join(10)
    assert not closer.is_alive()
    assert len(seen) == 1


class _Resizing:
    """An environment whose next ``begin`` calls fail as if other processes kept growing
    the map (``MDB_MAP_RESIZED``) ``times`` times in a row."""

    def __init__(self, env: lmdb.Environment, times: int) -> None:
        self.env = env
        self.times = times
        self.adopted = 0

    def begin(self, **kw: object) -> lmdb.Transaction:
        if self.times:
            self.times -= 1
            raise lmdb.MapResizedError("mdb_txn_begin: MDB_MAP_RESIZED")
        return self.env.begin(**kw)

    def set_mapsize(self, size: int) -> None:
        self.adopted += 1
        self.env.set_mapsize(size)

    def __getattr__(self, name: str) -> object:
        return getattr(self.env, name)


@pytest.mark.parametrize("write", [False, True])
def test_begins_adopt_the_map_size_as_often_as_others_grow_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               write: bool) -> None:
    """Several processes growing the map one after another make a begin fail with
    MDB_MAP_RESIZED more than once: it adopts the new size each time (a second failure
    escaped as a StorageError)."""
    with embedlog.open(str(tmp_path)) as log:
        log.create_topic("t")
        env = log._store.env
        resizing = _Resizing(env._handle(), 3)
        monkeypatch.setattr(env, "_handle", lambda: resizing)
        if write:
            log.create_topic("u")
            assert "u" in log.topics()
        else:
            assert log.topics() == ["t"]
        assert resizing.times == 0
        assert resizing.adopted == 3
