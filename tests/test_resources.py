"""Resources a long-running application or a big test suite must get back: objects of
closed leaders, LMDB reader slots of dead processes, directories of deleted groups."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog.replication import Follower, Leader, LeaderCore
from embedlog.storage.store import Store

SECRET = b"s" * 32


def test_closed_leaders_leave_no_store_or_core_alive(tmp_path: Path) -> None:
    """A leader's board (kept per store in a weak mapping) held the leader, which held the
    store: every Leader run leaked both (~22 KB a cycle, for good)."""
    def cycle() -> None:  # (its locals go with its frame)
        with embedlog.open(tmp_path / "a") as la, embedlog.open(tmp_path / "b") as lb, \
                Leader(la, secret=SECRET) as leader, Follower(lb, leader.address, secret=SECRET) as follower:
            follower.wait_connected(30)

    for _ in range(5):
        cycle()
    gc.collect()
    mine = str(tmp_path)  # (other tests of this process may keep theirs)
    assert [o for o in gc.get_objects() if isinstance(o, LeaderCore) and o.store.path.startswith(mine)] == []
    assert [o for o in gc.get_objects() if isinstance(o, Store) and o.path.startswith(mine)] == []


def test_reader_slots_of_a_killed_process_are_reused_by_an_open_log(tmp_path: Path) -> None:
    """A process killed while it held every LMDB reader slot: the log open in this process
    reads, describes and writes again (the slots of dead readers are cleared when a read
    finds the table full), and nothing written before is lost."""
    path = str(tmp_path / "log")
    with embedlog.open(path) as log:
        log.create_topic("a", 1)
        with log.producer() as p:
            p.send("a", b"before")
            p.flush()
        with log.consumer(["a"], auto_offset_reset="earliest") as c:
            hog = subprocess.Popen([sys.executable, "-c", f"""
import lmdb, time
env = lmdb.open({path!r}, max_dbs=64, max_readers=1024)
txns = []
try:
    while True:
        txns.append(env.begin())
except lmdb.ReadersFullError:
    print(len(txns), flush=True)
time.sleep(120)
"""], stdout=subprocess.PIPE, text=True)
            try:
                assert hog.stdout is not None
                assert int(hog.stdout.readline()) > 1000
            finally:
                hog.send_signal(signal.SIGKILL)
                hog.wait()
            got = c.poll(5.0)
            assert [m.value for m in got] == [b"before"]
            assert log.describe_topic("a").partitions[0].end_offset == 1
            with log.producer() as p:
                p.send("a", b"after")
                p.flush()
            deadline = time.monotonic() + 10
            more: list[bytes] = []
            while not more and time.monotonic() < deadline:
                more = [m.value for m in c.poll(1.0)]
            assert more == [b"after"]


def test_groups_used_then_deleted_leave_no_directories(tmp_path: Path) -> None:
    """Every group name ever used left an empty ``groups/<hash>/`` for good."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("a", 1)
        for i in range(5):
            with log.consumer(["a"], group=f"run-{i}") as c:
                c.poll(0)
            assert os.listdir(path / "groups") == []  # (its last member left)
        with log.consumer(["a"], group="live") as c:
            c.poll(0)
            assert len(os.listdir(path / "groups")) == 1
            with log.consumer(["a"], group="live") as c2:  # a second member comes and goes
                c2.poll(0)
            assert len(os.listdir(path / "groups")) == 1  # (the first is still in it)
        for i in range(5):
            log.delete_group(f"run-{i}")
        assert log.groups() == ["live"]
    assert os.listdir(path / "groups") == []


_DIE_JOINING = r"""
import os, signal, sys
import embedlog
from embedlog.groups import coordinator
log = embedlog.open(sys.argv[1], maintenance_interval_ms=None)
def dying_change(self, group, fn):  # kill -9 inside the join: heartbeat file made, member not stored
    os.kill(os.getpid(), signal.SIGKILL)
coordinator.Coordinator.change = dying_change
log.consumer(["events"], group="g1")
"""


def test_heartbeat_files_of_members_killed_while_joining_are_swept(tmp_path: Path) -> None:
    """A member killed between making its heartbeat file and being stored in the group
    left the file for good (no state names it, so no expiry looked at it): ``maintain``
    removes such files once ``ORPHAN_AGE_S`` old; ``delete_group`` removes them all."""
    from embedlog.groups import coordinator  # noqa: PLC0415

    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("events", 3)
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", _DIE_JOINING, str(path)], check=False)
        assert r.returncode == -signal.SIGKILL
    files = lambda: sorted(path.glob("groups/*/*"))  # noqa: E731
    orphans = files()
    assert len(orphans) == 2
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        with log.consumer(["events"], group="g1") as c:
            c.poll(0.1)
            mine = set(files()) - set(orphans)
            assert len(mine) == 1
            log.maintain()
            assert len(files()) == 3  # (young: they might be joining now)
            old = time.time() - coordinator.ORPHAN_AGE_S - 1
            for f in [*orphans, *mine]:
                os.utime(f, (old, old))
            log.maintain()
            assert set(files()) == mine  # a live member's file stays, however old
        assert files() == []  # (the member left: its file and the emptied directory went)
        for f in orphans:  # dead joiners again, then the group deleted: maintain() sweeps them
            f.parent.mkdir(exist_ok=True)
            f.touch()
        log.delete_group("g1")
        assert len(files()) == 2  # (a fresh file may be a member joining now)
        for f in orphans:
            os.utime(f, (old, old))
        log.maintain()
        assert files() == []
        assert os.listdir(path / "groups") == []


def test_delete_group_racing_a_join_keeps_the_new_members_file(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """delete_group removed every file of the group's directory after its transaction: a
    consumer that joined in between lost its heartbeat file, counted as dead, and the next
    joiner took its partitions.  Only the deleted state's (dead) members' files go."""
    from embedlog.groups.coordinator import Coordinator, _hb_name  # noqa: PLC0415

    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t", partitions=4)
        log.commit_offsets("g", {embedlog.TopicPartition("t", 0): 0})
        joined: list[embedlog.Consumer] = []
        orig = Coordinator.forget_group

        def join_between(self: Coordinator, group: str, members: Any = ()) -> None:  # right after delete's txn
            if not joined:
                c = log.consumer(["t"], group="g", session_timeout_ms=30_000, heartbeat_interval_ms=3000)
                c.poll(0.1)
                joined.append(c)
            orig(self, group, members)

        monkeypatch.setattr(Coordinator, "forget_group", join_between)
        log.delete_group("g")
        monkeypatch.setattr(Coordinator, "forget_group", orig)
        (c1,) = joined
        with c1:
            c1.poll(0.1)
            mid = c1._membership.member_id
            assert (Path(log._coordinator._hb_dir("g")) / _hb_name(mid)).exists()
            with log.consumer(["t"], group="g", session_timeout_ms=30_000) as c2:
                c2.poll(0.1)
                assert mid in {m.member_id for m in log.describe_group("g").members}  # (not expired)


def test_a_join_survives_the_group_directory_removed_under_it(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """os.makedirs(exist_ok=True) raised FileExistsError when the directory it found was
    removed (the group's last member leaving) before it looked again: out of consumer()."""
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t", partitions=1)
        c0 = log.consumer(["t"], group="g")
        gdir = log._coordinator._hb_dir("g")
        real_mkdir = os.mkdir
        left: list[bool] = []

        def mkdir_while_the_last_member_leaves(target: Any, *a: Any, **k: Any) -> None:
            try:
                real_mkdir(target, *a, **k)
            except FileExistsError:
                if os.fspath(target) == gdir and not left:
                    left.append(True)
                    c0.close()  # (its file, then the emptied directory, go)
                raise

        monkeypatch.setattr(os, "mkdir", mkdir_while_the_last_member_leaves)
        with log.consumer(["t"], group="g") as c1:
            c1.poll(0.1)
            assert left
        monkeypatch.setattr(os, "mkdir", real_mkdir)
        c0.close()


def test_threads_opening_and_closing_one_directory_never_meet_a_store_being_closed(tmp_path: Path) -> None:
    """An open in one thread while another thread's close of the same directory was still
    closing its store (its last sync) failed with "already open in this process" (LMDB
    takes a file once per process): it now waits for that close."""


    path = str(tmp_path / "log")
    embedlog.open(path).close()
    errors: list[str] = []

    def loop() -> None:
        for _ in range(150):
            try:
                embedlog.open(path).close()
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_log_dropped_unclosed_can_be_opened_again_at_once(tmp_path: Path) -> None:
    """Collected, a log is closed by a finalizer (which another thread may run): an open
    right after it waits for that close instead of failing."""
    path = str(tmp_path / "log")
    for _ in range(20):
        log: Any = embedlog.open(path, auto_create_topics=True)
        p: Any = log.producer()
        p.send("t", b"x")
        p.flush()
        log = p = None
        gc.collect()
    with embedlog.open(path) as log:
        assert log.describe_topic("t").partitions[0].end_offset == 20


def test_topics_and_groups_that_come_and_go_leave_no_cache_entries_behind(tmp_path: Path) -> None:
    """A long-running process creating and deleting topics and groups: the store's topic
    cache and the coordinator's group caches kept an entry per deleted name for ever; a
    producer keeps a deleted topic's state (a sender may hold it) but not its key cache."""
    with embedlog.open(tmp_path / "log", auto_create_topics=True) as log:
        log.create_topic("keep")
        p = log.producer()
        for i in range(40):
            for k in range(50):
                p.send(f"tmp-{i}", b"v", key=b"k%d" % k)
            p.flush()
            log.delete_topic(f"tmp-{i}")
            c = log.consumer(["keep"], group=f"grp-{i}")
            c.poll(0.05)
            c.close()
            log.delete_group(f"grp-{i}")
        p.flush()  # (a write looks the topics up again: the deleted ones are marked gone)
        assert log.topics() == ["keep"]
        assert log.groups() == []
        assert len(log._store._meta_cache) <= 1
        assert len(log._coordinator._parsed) == len(log._coordinator._alive_until) == 0
        assert sum(len(st.kcache) + len(st.kacc) for st in p._topics.values() if st.gone) == 0
        p.close()
