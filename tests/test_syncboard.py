"""``sync.board``: processes of one log share the meta page's fsync (``storage/syncboard.py``).

What a board says is believed only when it is whole and about this very data file; a
lone process never waits for anyone; processes flushing at once skip the syncs another
process's commit made for them, and lose nothing."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import embedlog
from embedlog.storage import syncboard
from embedlog.storage.syncboard import SyncBoard
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

SRC = str(Path(embedlog.__file__).resolve().parents[1])


def hold(path: Path, what: str) -> subprocess.Popen[str]:
    """A process holding ``path``'s board: open (``"open"``) or in a write (``"write"``)."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {SRC!r})
        from embedlog.storage.syncboard import SyncBoard
        b = SyncBoard({str(path)!r}, 1)
        if {what!r} == "write":
            b.enter()
        print("held", flush=True)
        sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(30)


def test_what_is_published_is_read_back_only_when_believable(tmp_path: Path) -> None:
    board = SyncBoard(str(tmp_path), inode=7)
    try:
        assert board.through(last_txnid=100) == 0  # (a new board says nothing)
        board.publish(40)
        assert board.through(last_txnid=100) == 40
        board.publish(30)  # (never lowered by an older news)
        assert board.through(last_txnid=100) == 40
        assert board.through(last_txnid=39) == 0  # above the environment's last commit: not believed
        other = SyncBoard(str(tmp_path), inode=8)  # (another data.mdb: a copied directory, say)
        assert other.through(last_txnid=100) == 0
        other.publish(12)  # (takes the board over for its data file)
        assert other.through(last_txnid=100) == 12
        assert board.through(last_txnid=100) == 0
        other.close()
        board.publish(50)
        raw = (tmp_path / syncboard.FILE_NAME).read_bytes()
        assert struct.unpack_from("<QQQ", raw) == (7, 50, 50)
        with open(tmp_path / syncboard.FILE_NAME, "r+b") as f:  # a write torn by a concurrent writer
            f.seek(16)
            f.write(struct.pack("<Q", 51))
        assert board.through(last_txnid=100) == 0
    finally:
        board.close()
        board.close()


def test_a_board_truncated_under_running_writers_costs_syncs_not_a_crash(tmp_path: Path) -> None:
    """``: > sync.board`` (or a ``cp`` over a live log) while processes flush: they go on
    and lose nothing (the board was mapped: reading past its new end killed every
    writer with SIGBUS)."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t")
    code = textwrap.dedent(f"""
        import os, embedlog
        with embedlog.open({str(path)!r}) as log, log.producer() as p:
            for i in range(300):
                p.send("t", b"%d" % i)
                p.flush()
                if i == 100:
                    os.truncate(os.path.join({str(path)!r}, "sync.board"), 0)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    board = SyncBoard(str(path), inode=1)
    try:
        os.truncate(path / syncboard.FILE_NAME, 0)
        assert board.through(last_txnid=100) == 0  # (a truncated board says nothing)
        board.publish(5)
        assert board.through(last_txnid=100) == 5
    finally:
        board.close()
    with embedlog.open(path) as log:
        assert log.describe_topic("t").partitions[0].end_offset == 600


def test_a_board_ahead_of_the_data_file_is_forgotten_at_open(tmp_path: Path) -> None:
    """A reset log whose new data.mdb got the old inode number back (or a compacted copy
    put in place) would meet the old board's T once its own transactions climbed past
    it: each process drops a T above the data file's last transaction when it opens."""
    with embedlog.open(tmp_path) as log:
        log.create_topic("t")
    ino = os.stat(tmp_path / "data.mdb").st_ino
    (tmp_path / syncboard.FILE_NAME).write_bytes(struct.pack("<QQQ", ino, 10_000, 10_000).ljust(4096, b"\0"))
    with embedlog.open(tmp_path) as log:
        raw = (tmp_path / syncboard.FILE_NAME).read_bytes()
        assert struct.unpack_from("<QQQ", raw) == (ino, 0, 1)  # (unbelievable)
        assert log._store.env.info()["last_txnid"] < 10_000
    board = SyncBoard(str(tmp_path), inode=ino)
    try:
        board.publish(5)
        board.forget_if_ahead(last_txnid=7)  # (at or below: kept)
        assert board.through(last_txnid=7) == 5
        board.forget_if_ahead(last_txnid=4)
        assert board.through(last_txnid=100) == 0
    finally:
        board.close()


def test_alone_and_others_writing_follow_the_other_processes(tmp_path: Path) -> None:
    board = SyncBoard(str(tmp_path), inode=1)
    try:
        t = time.monotonic()
        assert board.alone(t)
        assert not board.others_writing()
        other = hold(tmp_path, "open")
        try:
            assert board.alone(t)  # (believed for ALONE_RECHECK_S)
            assert not board.alone(t + syncboard.ALONE_RECHECK_S)
            assert not board.others_writing()
        finally:
            release(other)
        writer = hold(tmp_path, "write")
        try:
            assert board.others_writing()
            board.enter()  # (this process's own write does not count)
            assert board.others_writing()
            board.leave()
        finally:
            release(writer)
        assert not board.others_writing()  # (a lock goes with its process)
        assert board.alone(time.monotonic() + 1)
    finally:
        board.close()


def test_a_directory_that_cannot_hold_a_board_syncs_every_flush(tmp_path: Path) -> None:
    (tmp_path / syncboard.FILE_NAME).mkdir()  # (something in its way)
    with embedlog.open(tmp_path) as log:
        log.create_topic("t")
        env = log._store.env
        assert env._board is None
        before = env.syncs_made
        with log.producer() as p:
            for _ in range(3):
                p.send("t", b"x")
                p.flush()
        assert env.syncs_made - before == 3
        assert env.syncs_shared == 0


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    import embedlog
    path, name, n, start = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    with embedlog.open(path) as log, log.producer() as p:
        while time.time() < start:
            time.sleep(0.001)
        for i in range(n):
            p.send("t", f"{name}-{i}".encode())
            p.flush()
        env = log._store.env
        print(env.syncs_made, env.syncs_shared, flush=True)
""")


@pytest.mark.slow
def test_processes_flushing_at_once_share_syncs_and_lose_nothing(tmp_path: Path) -> None:
    n, names = 150, ["a", "b", "c"]
    with embedlog.open(tmp_path) as log:
        log.create_topic("t")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    start = time.time() + 1.0
    procs = [subprocess.Popen([sys.executable, str(script), SRC, str(tmp_path), name, str(n), str(start)],
                              stdout=subprocess.PIPE, text=True) for name in names]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    made = sum(int(o[0]) for o in outs)
    shared = sum(int(o[1]) for o in outs)
    assert made + shared == n * len(names)  # one meta-page sync, or a skip, per flush
    assert shared > 0, outs  # (three processes flushing in a loop: their commits overlap all the time)
    with embedlog.open(tmp_path) as log, log.consumer(["t"], auto_offset_reset="earliest") as c:
        got = [m.value for m in harness.drain(c)]
    for name in names:
        assert [v for v in got if v is not None and v.startswith(f"{name}-".encode())] == [
            f"{name}-{i}".encode() for i in range(n)]
