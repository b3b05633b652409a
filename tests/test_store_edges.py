"""Storage edges: full disk, format versions, shared opens, thread safety, group commit."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import lmdb
import pytest

import embedlog
from embedlog.errors import ClosedError, DiskFullError, FormatVersionError
from embedlog.storage import schema

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs: a real full disk (needs root and mount; skipped elsewhere)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_raises_disk_full_and_keeps_flushed_records(small_disk: Path) -> None:
    path = small_disk / "log"
    acked = 0
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        log.create_topic("t")
        def fill() -> None:
            nonlocal acked
            with log.producer() as p:
                for _ in range(1000):
                    for i in range(100):
                        p.send("t", f"{acked + i:08d}".encode() + os.urandom(992))
                    p.flush()
                    acked += 100

        with pytest.raises(DiskFullError, match="disk is full") as failed:
            fill()
    assert acked > 0
    # (the failed flush's records are not kept for a retry, as a failed Kafka produce: the
    # message must not suggest that flushing again writes them)
    assert "send them again" in str(failed.value)
    # Reopen (the failed transaction was rolled back): every acknowledged record is there, in order.
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        c = log.consumer(["t"], auto_offset_reset="earliest", max_poll_records=100_000)
        got: list[embedlog.Message] = []
        while batch := c.poll(timeout=0.5):
            got.extend(batch)
        assert len(got) >= acked
        assert [m.offset for m in got] == list(range(len(got)))
        assert [int(m.value[:8]) for m in got[:acked]] == list(range(acked))


@pytest.mark.parametrize(("step", "advice"), [(1, "Upgrade embedlog"), (-1, "written by an earlier embedlog")])
def test_another_format_version_is_refused_with_what_to_do(tmp_path: Path, step: int, advice: str) -> None:
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t")
    env = lmdb.open(str(path), max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(schema.META_FORMAT_VERSION, schema.U32LE.pack(schema.FORMAT_VERSION + step), db=meta)
    env.close()
    with pytest.raises(FormatVersionError, match=advice):
        embedlog.open(path)


def test_a_newer_format_with_a_database_this_release_lacks_is_called_newer(tmp_path: Path) -> None:
    """A later format that added a named database: refused as a newer version to upgrade
    for (it was called 'not an embedlog log'), and left as it was."""
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t")
    env = lmdb.open(str(path), max_dbs=40)
    meta = env.open_db(b"meta")
    env.open_db(b"added_by_version_2")
    with env.begin(write=True) as txn:
        txn.put(schema.META_FORMAT_VERSION, schema.U32LE.pack(schema.FORMAT_VERSION + 1), db=meta)
    env.close()
    before = (path / "data.mdb").read_bytes()
    with pytest.raises(FormatVersionError, match=f"format version {schema.FORMAT_VERSION + 1}.*Upgrade embedlog"):
        embedlog.open(path)
    assert (path / "data.mdb").read_bytes() == before


def test_a_file_size_limit_is_a_disk_full_error_and_keeps_flushed_records(tmp_path: Path) -> None:
    """``ulimit -f`` (RLIMIT_FSIZE): LMDB's short write says EIO; it is a ``DiskFullError``
    naming the limit (it was a bare 'Input/output error'), and every flushed record stays."""
    path = tmp_path / "log"
    code = textwrap.dedent(f"""
        import os, resource, embedlog
        resource.setrlimit(resource.RLIMIT_FSIZE, (6 << 20, resource.RLIM_INFINITY))
        acked = 0
        try:
            with embedlog.open({str(path)!r}, maintenance_interval_ms=None) as log:
                log.create_topic("t")
                with log.producer() as p:
                    for _ in range(1000):
                        for i in range(50):
                            p.send("t", b"%08d" % (acked + i) + os.urandom(992))
                        p.flush()
                        acked += 50
        except embedlog.errors.DiskFullError as exc:
            print(acked, "ulimit -f" in str(exc), flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    acked, named = out.stdout.split()
    assert named == "True", out.stdout + out.stderr
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        c = log.consumer(["t"], auto_offset_reset="earliest", max_poll_records=100_000)
        got: list[embedlog.Message] = []
        while batch := c.poll(timeout=0.5):
            got.extend(batch)
        assert int(acked) > 0
        assert [int(m.value[:8]) for m in got[:int(acked)]] == list(range(int(acked)))


@pytest.mark.parametrize("raw", [b"", b"\x01", b"\x01\x00\x00\x00\x00"])
def test_a_damaged_format_version_is_refused_with_a_typed_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "log"
    with embedlog.open(path) as log:
        log.create_topic("t")
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(schema.META_FORMAT_VERSION, raw, db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(FormatVersionError, match="damaged storage format version"):
        embedlog.open(path)


def test_same_directory_opened_twice_in_one_process(tmp_path: Path) -> None:
    a = embedlog.open(tmp_path / "log")
    b = embedlog.open(str(tmp_path / "log"))
    a.create_topic("t")
    with b.producer() as p:
        p.send("t", b"x")
    a.close()  # b keeps the shared store open
    with b.consumer(["t"], auto_offset_reset="earliest") as c:
        assert [m.value for m in c.poll(timeout=1.0)] == [b"x"]
    b.close()


def test_one_producer_shared_by_threads_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    n_threads, per = 8, 3000
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic("t", partitions=3)
        p = log.producer(linger_ms=1)

        def work(t: int) -> None:
            for i in range(per):
                p.send("t", f"{t}:{i}".encode(), key=str(i % 7).encode() if i % 2 else None)
                if i % 500 == 0:
                    p.flush()

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        p.flush()
        c = log.consumer(["t"], auto_offset_reset="earliest", max_poll_records=100_000)
        got = []
        while len(got) < n_threads * per:
            batch = c.poll(timeout=2.0)
            assert batch, f"only {len(got)} records arrived"
            got.extend(batch)
        values = [m.value for m in got]
        assert len(values) == len(set(values)) == n_threads * per
        for part in range(3):
            offs = [m.offset for m in got if m.partition == part]
            assert offs == list(range(len(offs)))
        # each thread's records keep their order within a partition
        for t in range(n_threads):
            for part in range(3):
                mine = [m for m in got if m.partition == part and m.value.startswith(b"%d:" % t)]
                seq = [int(m.value.split(b":")[1]) for m in mine]
                assert seq == sorted(seq)


def test_concurrent_flushes_share_transactions(tmp_path: Path) -> None:
    """Group commit: 8 threads flushing after every record need fewer commits than flushes."""
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as log:
        log.create_topic("t")
        before = log._store.env.info()["last_txnid"]
        n_threads, per = 8, 50

        def work() -> None:
            with log.producer(linger_ms=10_000) as p:
                for i in range(per):
                    p.send("t", b"%d" % i)
                    p.flush()

        threads = [threading.Thread(target=work) for _ in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        commits = log._store.env.info()["last_txnid"] - before
        assert log.describe_topic("t").partitions[0].end_offset == n_threads * per
        assert commits < n_threads * per


def test_format_doc_matches_the_code() -> None:
    """docs/format.md carries the layout docstrings verbatim (regenerate it if this fails)."""
    doc = (ROOT / "docs" / "format.md").read_text()
    for module in ("src/embedlog/storage/schema.py", "src/embedlog/codec/batch.py"):
        text = (ROOT / module).read_text().split('"""')[1]
        for line in text.strip().splitlines():
            assert line in doc, f"{module}: {line!r} is missing from docs/format.md"


def test_the_documented_struct_layouts_are_the_code_s() -> None:
    """The byte tables of the PARTITION and COMMITTED values name the structs' formats and
    sizes, and their fields' offsets add up (an independent reader decodes by them)."""
    doc = (ROOT / "src/embedlog/storage/schema.py").read_text().split('"""')[1]
    for struct_ in (schema.PARTITION, schema.COMMITTED):
        name = "PARTITION" if struct_ is schema.PARTITION else "COMMITTED"
        assert f'{name} ({struct_.size} bytes, "{struct_.format}")' in doc
        table = doc.split(f"{name} (", 1)[1].splitlines()[1:]
        rows = [line.split() for line in table if line.strip()[:1].isdigit()]
        at = 0
        for row in rows:
            if int(row[0]) != at:
                break
            at += int(row[1])
        assert at == struct_.size, f"{name}: the documented fields end at byte {at}"


def test_the_package_says_it_is_typed() -> None:
    """PEP 561: without a py.typed marker in the installed package, its users' type checkers
    ignore embedlog's annotations (the wheel carries it: pyproject's package-data)."""
    import importlib.resources  # noqa: PLC0415

    assert importlib.resources.files("embedlog").joinpath("py.typed").is_file()
    assert 'embedlog = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_importing_embedlog_loads_no_edges() -> None:
    code = textwrap.dedent("""
        import sys, embedlog
        bad = [m for m in sys.modules if m.startswith(("embedlog.cli", "embedlog.compat", "prometheus_client"))]
        assert not bad, bad
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_temp_log_is_private_and_removed(tmp_path: Path) -> None:
    log = embedlog.open()
    path = log.path
    assert os.path.isdir(path)
    log.close()
    assert not os.path.exists(path)


def test_a_temporary_log_left_open_is_removed_when_the_interpreter_exits() -> None:
    """As tempfile.TemporaryDirectory: a script that never closes its embedlog.open() left
    its directory in /tmp for good."""
    code = textwrap.dedent("""
        import embedlog
        log = embedlog.open()
        log.create_topic("t")
        with log.producer() as p:
            p.send("t", b"x")
        print(log.path, flush=True)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    path = r.stdout.strip()
    assert path.startswith(tempfile.gettempdir())
    assert not os.path.exists(path)


def test_closing_a_log_under_flushing_threads_raises_closed_error_only(tmp_path: Path) -> None:
    """A flush that loses the race with Log.close() got a bare AssertionError (Env._handle)
    or py-lmdb's "Attempt to operate on closed/deleted/dropped object"; now ClosedError,
    and the store is intact."""
    seen: list[BaseException] = []
    for r in range(8):
        log = embedlog.open(tmp_path / f"log{r}")
        log.create_topic("t")
        p = log.producer()
        stop = threading.Event()

        def work(p: embedlog.Producer = p, stop: threading.Event = stop) -> None:
            try:
                while not stop.is_set():
                    p.send("t", b"x" * 100)
                    p.flush()
            except BaseException as exc:
                seen.append(exc)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.03)
        log.close()
        stop.set()
        for t in threads:
            t.join(30)
        with embedlog.open(tmp_path / f"log{r}") as again:
            assert again.verify().ok
    assert seen, "the race never happened: nothing was checked"
    assert {type(e) for e in seen} == {ClosedError}, [repr(e) for e in seen if not isinstance(e, ClosedError)]


def test_a_temporary_log_does_not_fsync_unless_asked(tmp_path: Path) -> None:
    """A temporary log is removed on close and nothing reads it after a crash: its
    durability defaults to "none" (no fsync); a directory's stays "flush"."""

    def syncs(log: embedlog.Log) -> bool:
        return bool(log._store.env._handle().flags()["sync"])

    with embedlog.open() as tmp:
        assert tmp.durability == "none"
        assert not syncs(tmp)
        tmp.create_topic("t")
        with tmp.producer() as p:
            p.send("t", b"v")
        with tmp.consumer(["t"], auto_offset_reset="earliest") as c:
            assert [m.value for m in c.poll(timeout=5)] == [b"v"]
    with embedlog.open(durability="flush") as tmp:
        assert tmp.durability == "flush"
        assert syncs(tmp)
    with embedlog.open(tmp_path / "log") as log:
        assert log.durability == "flush"
        assert syncs(log)


def test_topic_ids_are_not_reused(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log") as log:
        first = log.create_topic("t").topic_id
        log.delete_topic("t")
        second = log.create_topic("t").topic_id
        assert second != first


def test_flush_returns_after_every_delivery_callback(tmp_path: Path) -> None:
    """Regression: flush() could return while the linger thread was still running the
    delivery callbacks of records it had just committed."""
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None, durability="none") as log:
        log.create_topic("t", partitions=4)
        p = log.producer(linger_ms=1)
        for _ in range(10):
            done: list[int] = []
            for i in range(5000):
                p.send("t", b"x", key=b"%d" % i, on_delivery=lambda e, m, done=done: done.append(1))
            p.flush()
            assert len(done) == 5000


@pytest.mark.parametrize("shape", ["named", "main"])
def test_another_applications_lmdb_environment_is_refused_unchanged(tmp_path: Path, shape: str) -> None:
    """A directory holding another application's LMDB environment is not a log: it is
    refused with FormatVersionError and left as it was (it was served as an empty log,
    embedlog's databases added to it)."""
    path = tmp_path / "app"
    path.mkdir()
    env = lmdb.open(str(path), max_dbs=4)
    db = env.open_db(b"users") if shape == "named" else None
    with env.begin(write=True) as txn:
        txn.put(b"alice", b"secret", db=db)
    env.close()
    before = (path / "data.mdb").read_bytes()
    with pytest.raises(embedlog.errors.FormatVersionError, match="not an embedlog log"):
        embedlog.open(str(path))
    assert (path / "data.mdb").read_bytes() == before
    with embedlog.open(str(tmp_path / "log")) as log:  # (a new log, and one reopened, are fine)
        log.create_topic("t")
    with embedlog.open(str(tmp_path / "log")) as log:
        assert log.topics() == ["t"]


def test_a_new_logs_lock_file_is_allocated_before_lmdb_maps_it(tmp_path: Path) -> None:
    """LMDB makes lock.mdb a file of holes and writes it through its map: on a full disk
    that killed the process with SIGBUS.  Its blocks are allocated first, so a full disk
    is a DiskFullError at open."""
    from embedlog.storage import env as envmod  # noqa: PLC0415

    with embedlog.open(str(tmp_path / "log")):
        st = os.stat(tmp_path / "log" / "lock.mdb")
        assert st.st_size >= envmod._LOCK_FILE_BYTES
        assert st.st_blocks * 512 >= envmod._LOCK_FILE_BYTES  # (allocated, not a sparse file)


def test_no_room_for_a_new_logs_lock_file_is_a_disk_full_error(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import errno  # noqa: PLC0415

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(embedlog.errors.DiskFullError, match="disk is full"):
        embedlog.open(str(tmp_path / "log"))


def test_an_existing_logs_lock_file_is_left_as_lmdb_sized_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A log whose lock.mdb LMDB made already (sparse, by an older embedlog) opens without
    allocating it again: on a nearly full disk it must still open, to free space."""
    import errno  # noqa: PLC0415

    with embedlog.open(str(tmp_path / "log")) as log:
        log.create_topic("t")

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with embedlog.open(str(tmp_path / "log")) as log:
        assert log.topics() == ["t"]


def test_a_data_file_that_is_not_lmdb_is_a_damaged_store_error(tmp_path: Path) -> None:
    """LMDB's words for a damaged file become ``DamagedStoreError`` (a ``StorageError``),
    saying to restore; the LMDB errors it stands for exist in this py-lmdb (``pyproject``
    allows older ones, which lack some: they are looked up by name)."""
    from embedlog.errors import DamagedStoreError  # noqa: PLC0415
    from embedlog.storage import env  # noqa: PLC0415

    path = tmp_path / "log"
    path.mkdir()
    (path / "data.mdb").write_bytes(b"\x01" * 8192)
    with pytest.raises(DamagedStoreError, match="restore the log from a replica"):
        embedlog.open(path)
    assert env._DAMAGE
    assert all(issubclass(e, lmdb.Error) for e in env._DAMAGE)
