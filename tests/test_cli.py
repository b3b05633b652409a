"""The ``embedlog`` command: every command in-process through ``main([...])``, a few end to
end through ``python -m embedlog.cli`` in a real subprocess, and the library's
``Log.verify``/``Log.dump`` it relies on (including damage made in the LMDB file)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import lmdb
import pytest

import embedlog
from embedlog import TopicPartition
from embedlog.cli import build_parser, iter_commands, main
from embedlog.cli.docs import render
from embedlog.errors import ConfigError
from embedlog.storage import schema
from embedlog.storage.verify import Problem
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parents[1]

Run = Callable[..., tuple[int, str, str]]


# -- helpers -----------------------------------------------------------------------------------
@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The log directory the ``log`` fixture opens; ``EMBEDLOG_PATH`` points at it."""
    p = tmp_path / "log"
    monkeypatch.setenv("EMBEDLOG_PATH", str(p))
    return p


@pytest.fixture
def cli(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``cli("topics", "list", stdin=b"...")`` runs ``main`` in-process: ``(code, stdout, stderr)``."""

    def run(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    return run


@pytest.fixture
def log(path: Path) -> Iterator[embedlog.Log]:
    """The test's view of the log the commands use."""
    lg = embedlog.open(path, maintenance_interval_ms=None)
    yield lg
    lg.close()


def one_error_line(err: str) -> str:
    """The single ``embedlog: error:`` line a failed command printed."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("embedlog: error: "), err
    return lines[0]


def read_all(log: embedlog.Log, topic: str) -> list[embedlog.Message]:
    with log.consumer([topic], auto_offset_reset="earliest") as c:
        out: list[embedlog.Message] = []
        while batch := c.poll(timeout=0.2):
            out.extend(batch)
    return sorted(out, key=lambda m: (m.partition, m.offset))


def fill(log: embedlog.Log, topic: str, n: int, *, partitions: int = 1, per_flush: int = 1,
         config: dict[str, object] | None = None, key: Callable[[int], bytes | None] | None = None) -> None:
    """Create ``topic`` and write ``n`` records, ``per_flush`` records a batch."""
    log.create_topic(topic, partitions=partitions, config=config)
    with log.producer(linger_ms=600_000) as p:  # batches end at flushes only, however slow the machine
        for i in range(n):
            p.send(topic, f"v{i}".encode(), key=None if key is None else key(i), partition=i % partitions)
            if (i + 1) % per_flush == 0:
                p.flush()


def batch_keys(log: embedlog.Log, topic: str, partition: int) -> list[bytes]:
    tid = log.describe_topic(topic).topic_id
    prefix = schema.partition_key(tid, partition)

    def fn(txn: lmdb.Transaction) -> list[bytes]:
        with txn.cursor(db=log._store.dbs["batches"]) as cur:
            if not cur.set_range(prefix):
                return []
            return [bytes(k) for k in cur.iternext(values=False) if bytes(k[:8]) == prefix]

    return log._store.read(fn)


def rewrite_batch(log: embedlog.Log, key: bytes, change: Callable[[bytearray], None]) -> None:
    """Overwrite one stored batch value (through the log's own LMDB environment)."""
    db = log._store.dbs["batches"]

    def fn(txn: lmdb.Transaction) -> None:
        buf = bytearray(bytes(txn.get(key, db=db)))
        change(buf)
        txn.put(key, bytes(buf), db=db)

    log._store.write(fn)


def flip(at: int) -> Callable[[bytearray], None]:
    def change(buf: bytearray) -> None:
        buf[at if at >= 0 else len(buf) + at] ^= 0x5A

    return change


def run_cli(*argv: str, env_path: Path, stdin: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """The real command in a subprocess."""
    env = {**os.environ, "EMBEDLOG_PATH": str(env_path)}
    return subprocess.run([sys.executable, "-m", "embedlog.cli", *argv], input=stdin, capture_output=True,
                          env=env, timeout=timeout, check=False)


# -- the command as a whole -------------------------------------------------------------------------
def test_importing_embedlog_does_not_import_the_cli() -> None:
    code = "import sys, embedlog; assert not [m for m in sys.modules if m.startswith('embedlog.cli')]; " \
           "assert 'tqdm' not in sys.modules; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.strip() == b"ok"


def test_help_version_and_usage_errors(cli: Run) -> None:
    code, out, _ = cli("--help")
    assert code == 0
    assert "exit codes:" in out
    assert "EMBEDLOG_PATH" in out
    for cmd in ("topics", "produce", "consume", "groups", "verify", "stats", "dump"):
        assert cmd in out
    code, out, _ = cli("--version")
    assert code == 0
    assert out.strip() == f"embedlog {embedlog.__version__}"
    code, _, err = cli("bogus")
    assert code == 2
    assert "invalid choice" in one_error_line(err)
    code, _, err = cli("topics", "create")
    assert code == 2
    assert "NAME" in one_error_line(err)
    assert "embedlog topics create --help" in err
    code, _, err = cli("topics", "create", "t", "--partitions", "zero")
    assert code == 2
    assert "--partitions" in one_error_line(err)
    code, _, err = cli("consume")
    assert code == 2
    one_error_line(err)


def test_log_comes_from_path_option_or_env(cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDLOG_PATH")
    code, _, err = cli("topics", "list")
    assert code == 2
    assert "--path" in one_error_line(err)
    other = tmp_path / "other"
    assert cli("--path", str(other), "topics", "create", "a")[0] == 0
    code, out, _ = cli("--path", str(other), "topics", "list")
    assert code == 0
    assert out.split() == ["a"]
    monkeypatch.setenv("EMBEDLOG_PATH", str(other))
    assert cli("topics", "list")[1].split() == ["a"]


def test_a_missing_log_is_reported_and_not_created(cli: Run, tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    for argv in (["topics", "list"], ["verify"], ["stats"], ["groups", "list"], ["consume", "t"]):
        code, _, err = cli("--path", str(missing), *argv)
        assert code == 1
        assert "no embedlog log at" in one_error_line(err)
    assert not missing.exists()


def test_json_flag_before_or_after_the_command(cli: Run) -> None:
    cli("topics", "create", "b")
    cli("topics", "create", "a")
    assert json.loads(cli("--json", "topics", "list")[1]) == ["a", "b"]
    assert json.loads(cli("topics", "list", "--json")[1]) == ["a", "b"]
    assert cli("topics", "list")[1] == "a\nb\n"


# -- topics --------------------------------------------------------------------------------------
def test_topics_create_describe_alter_delete(cli: Run, log: embedlog.Log) -> None:
    code, out, _ = cli("topics", "create", "orders", "--partitions", "3", "--config", "retention.ms=1000",
                       "cleanup.policy=compact,delete", "--config", "max.message.bytes=2048")
    assert code == 0
    assert "Created topic orders" in out
    desc = log.describe_topic("orders")
    assert len(desc.partitions) == 3
    assert desc.config["retention.ms"] == 1000
    assert desc.config["cleanup.policy"] == "compact,delete"
    assert desc.config["max.message.bytes"] == 2048

    code, _, err = cli("topics", "create", "orders")
    assert code == 1
    assert one_error_line(err).endswith("topic 'orders' already exists; see it with `embedlog topics describe`, "
                                        "change it with `embedlog topics alter`, or pick another name")
    code, out, _ = cli("topics", "create", "orders", "--if-not-exists", "--json")
    assert code == 0
    assert json.loads(out)["created"] is False

    with log.producer(linger_ms=600_000) as p:  # one batch, however slow the machine
        for i in range(5):
            p.send("orders", b"x", key=f"k{i}".encode(), partition=1)
    code, out, _ = cli("topics", "describe", "orders")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Topic: orders")
    assert "PartitionCount: 3" in lines[0]
    assert "Records: 5" in lines[0]
    assert lines[1].split() == ["PARTITION", "START-OFFSET", "END-OFFSET", "RECORDS", "BATCHES", "BYTES",
                                "LEADER-EPOCH"]
    assert lines[3].split()[:4] == ["1", "0", "5", "5"]
    assert "  retention.ms=1000" in lines
    doc = json.loads(cli("topics", "describe", "orders", "--json")[1])
    assert doc["name"] == "orders"
    assert doc["records"] == 5
    assert doc["partitions"][1] == {"partition": 1, "start_offset": 0, "end_offset": 5, "records": 5,
                                    "batches": 1, "bytes": log.describe_topic("orders").partitions[1].bytes,
                                    "leader_epoch": 0}

    code, out, _ = cli("topics", "alter", "orders", "--config", "retention.ms=5000", "--delete-config",
                       "max.message.bytes", "--partitions", "4")
    assert code == 0
    assert "Altered topic orders" in out
    desc = log.describe_topic("orders")
    assert desc.config["retention.ms"] == 5000
    assert desc.config["max.message.bytes"] == 1_048_588
    assert len(desc.partitions) == 4
    code, _, err = cli("topics", "alter", "orders", "--config", "retention.ms=soon")
    assert code == 1
    assert "retention.ms" in one_error_line(err)
    code, _, err = cli("topics", "alter", "orders", "--config", "nope.key=1")
    assert code == 1
    assert "unknown topic config key" in one_error_line(err)
    code, _, err = cli("topics", "alter", "orders")
    assert code == 2
    assert "nothing to alter" in one_error_line(err)
    code, _, err = cli("topics", "alter", "orders", "--config", "retention.ms")
    assert code == 2
    assert "KEY=VALUE" in one_error_line(err)
    assert log.describe_topic("orders").config["retention.ms"] == 5000

    code, out, _ = cli("topics", "delete", "orders")
    assert code == 0
    assert log.topics() == []
    code, _, err = cli("topics", "delete", "orders")
    assert code == 1
    assert "does not exist" in one_error_line(err)
    assert cli("topics", "delete", "orders", "--if-exists")[0] == 0
    code, _, err = cli("topics", "describe", "orders")
    assert code == 1
    assert one_error_line(err).endswith("does not exist; `embedlog topics list` lists the topics and "
                                        "`embedlog topics create TOPIC` creates one")
    code, _, err = cli("topics", "create", "bad/name")
    assert code == 1
    assert "bad/name" in one_error_line(err)


def test_topics_describe_without_name_describes_all(cli: Run) -> None:
    cli("topics", "create", "a", "--partitions", "2")
    cli("topics", "create", "b")
    doc = json.loads(cli("topics", "describe", "--json")[1])
    assert [(t["name"], len(t["partitions"])) for t in doc] == [("a", 2), ("b", 1)]
    out = cli("topics", "describe")[1]
    assert "Topic: a" in out
    assert "Topic: b" in out


# -- produce -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sep", "line"), [("\\t", b"k\tv"), ("\\x1f", b"k\x1fv"), ("\\\\", b"k\\v"),
                                           ("|\\t|", b"k|\t|v"), ("\\", b"k\\v"), ("\t", b"k\tv")])
def test_produce_key_separator_takes_kcats_escapes(cli: Run, log: embedlog.Log, sep: str, line: bytes) -> None:
    """As kcat -K: '\\t' is a tab (it was the two characters backslash and t)."""
    log.create_topic("t")
    code, _, err = cli("produce", "t", "--key-separator", sep, stdin=line + b"\n")
    assert code == 0, err
    assert [(m.key, m.value) for m in read_all(log, "t")] == [(b"k", b"v")]


def test_produce_lines_with_keys_headers_and_partition(cli: Run, log: embedlog.Log) -> None:
    log.create_topic("t", partitions=4)
    data = b"k1:v1\nk2:a:b\r\nno-separator\n\n:empty-key\nbin\xff\xfe:\x00\x01\n"
    code, out, err = cli("produce", "t", "--key-separator", ":", "--header", "src=cli", "--header", "src=again",
                         "--header", "e=", stdin=data)
    assert code == 0
    assert out == ""
    assert "Produced 6 record(s)" in err
    got = read_all(log, "t")
    assert sorted(((m.key, m.value) for m in got), key=repr) == sorted([
        (b"k1", b"v1"), (b"k2", b"a:b"), (None, b"no-separator"), (None, b""), (b"", b"empty-key"),
        (b"bin\xff\xfe", b"\x00\x01")], key=repr)
    assert all(m.headers == [("src", b"cli"), ("src", b"again"), ("e", b"")] for m in got)
    # keyed records land where the library's partitioner puts them
    with log.producer() as p:
        p.send("t", b"probe", key=b"k1")
    probe = next(m for m in read_all(log, "t") if m.value == b"probe")
    assert [m.partition for m in got if m.key == b"k1"] == [probe.partition]

    code, out, _ = cli("produce", "t", "--partition", "3", "--json", stdin=b"x\ny\n")
    assert code == 0
    assert json.loads(out) == {"topic": "t", "records": 2}
    assert [(m.partition, m.value) for m in read_all(log, "t") if m.value in (b"x", b"y")] == [(3, b"x"), (3, b"y")]


def test_produce_errors(cli: Run, log: embedlog.Log) -> None:
    code, _, err = cli("produce", "nope", stdin=b"a\n")
    assert code == 1
    assert "'nope' does not exist" in one_error_line(err)
    log.create_topic("t", config={"max.message.bytes": 10})
    code, _, err = cli("produce", "t", "--partition", "1", stdin=b"a\n")
    assert code == 1
    assert "partition 1 does not exist" in one_error_line(err)
    code, _, err = cli("produce", "t", "--header", "novalue", stdin=b"a\n")
    assert code == 2
    assert "--header" in one_error_line(err)
    code, _, err = cli("produce", "t", stdin=b"ok1\nok2\nthis line is too long\nnever\n")
    line = one_error_line(err)
    assert code == 1
    assert "line 3:" in line
    assert "max.message.bytes" in line
    assert "2 record(s) before it" in line
    assert [m.value for m in read_all(log, "t")] == [b"ok1", b"ok2"]


# -- consume -------------------------------------------------------------------------------------
def test_consume_template_fields_and_escapes(cli: Run, log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    with log.producer() as p:
        p.send("t", b"hello", key=b"k", headers=[("a", b"1"), ("a", b"2"), ("n", None)], partition=1,
               timestamp_ms=1_700_000_000_123)
        p.send("t", None, key=None, partition=1, timestamp_ms=1_700_000_000_124)
    code, out, err = cli("consume", "t", "--from-beginning", "--max-messages", "2",
                         "--format", r"%t|%p|%o|%k|%s|%K|%S|%T|%h|100%%\t.\n")
    assert code == 0
    assert out == ("t|1|0|k|hello|1|5|1700000000123|a=1,a=2,n|100%\t.\n"
                   "t|1|1|||-1|-1|1700000000124||100%\t.\n")
    assert "Processed a total of 2 messages" in err
    code, out, _ = cli("consume", "t", "--from-beginning", "--max-messages", "1")
    assert out == "hello\n"  # the default format is the value, one a line
    for bad in ("%x", "abc%", "a\\q", "\\"):
        code, _, err = cli("consume", "t", "--format", bad)
        assert code == 2
        assert "--format" in one_error_line(err)


def test_consume_json_lines(cli: Run, log: embedlog.Log) -> None:
    log.create_topic("t")
    with log.producer() as p:
        p.send("t", "héllo".encode(), key=b"\xff\x00", headers=[("h", b"\xc3"), ("z", None)], timestamp_ms=5)
        p.send("t", None, key=b"gone", timestamp_ms=6)
    code, out, _ = cli("consume", "t", "--from-beginning", "--max-messages", "2", "--format", "json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [
        {"topic": "t", "partition": 0, "offset": 0, "timestamp": 5, "key": {"base64": "/wA="}, "value": "héllo",
         "headers": [["h", {"base64": "ww=="}], ["z", None]]},
        {"topic": "t", "partition": 0, "offset": 1, "timestamp": 6, "key": "gone", "value": None, "headers": []},
    ]
    # --json without --format prints the same JSON lines
    assert cli("--json", "consume", "t", "--from-beginning", "--max-messages", "2")[1] == out


def test_consume_start_positions(cli: Run, log: embedlog.Log) -> None:
    fill(log, "t", 10, per_flush=3)

    def values(*argv: str) -> list[str]:
        code, out, _ = cli("consume", "t", "--timeout", "0.3", *argv)
        assert code == 0
        return out.split()

    assert values() == []  # like Kafka: only new records by default
    assert values("--from-beginning") == [f"v{i}" for i in range(10)]
    assert values("--partition", "0", "--offset", "7") == ["v7", "v8", "v9"]
    assert values("--partition", "0", "--offset", "-2") == ["v8", "v9"]
    assert values("--partition", "0", "--offset", "-50") == [f"v{i}" for i in range(10)]
    assert values("--partition", "0", "--offset", "earliest", "--max-messages", "1") == ["v0"]
    assert values("--partition", "0", "--offset", "latest") == []
    assert values("--partition", "0", "--from-beginning", "--max-messages", "2") == ["v0", "v1"]
    for argv, what in ((["--group", "g", "--partition", "0"], "cannot be used together"),
                       (["--offset", "3"], "--offset needs --partition"),
                       (["--partition", "0", "--offset", "3", "--from-beginning"], "cannot be used together"),
                       (["--partition", "0", "--offset", "soon"], "--offset"),
                       (["--timeout", "-1"], "--timeout")):
        code, _, err = cli("consume", "t", *argv)
        assert code == 2
        assert what in one_error_line(err)
    code, _, err = cli("consume", "t", "--partition", "5")
    assert code == 1
    assert "partition 5" in one_error_line(err)
    code, _, err = cli("consume", "nope")
    assert code == 1
    assert "does not exist" in one_error_line(err)


def test_consume_with_group_commits_what_it_printed(cli: Run, log: embedlog.Log) -> None:
    fill(log, "t", 6, partitions=2)
    code, out, _ = cli("consume", "t", "--group", "g", "--from-beginning", "--max-messages", "4", "--timeout", "5")
    assert code == 0
    first = out.split()
    assert len(first) == 4
    committed = {o.partition: o.committed for o in log.describe_group("g").offsets}
    assert sum(c or 0 for c in committed.values()) == 4
    # the next run of the group goes on where the first stopped: every record exactly once
    code, out, _ = cli("consume", "t", "--group", "g", "--timeout", "0.5")
    assert code == 0
    assert sorted(first + out.split()) == sorted(f"v{i}" for i in range(6))
    assert {o.partition: o.committed for o in log.describe_group("g").offsets} == {0: 3, 1: 3}
    assert log.describe_group("g").members == ()  # the command left the group


def test_consume_timeout_ends_an_idle_wait(cli: Run, log: embedlog.Log) -> None:
    log.create_topic("t")
    start = time.monotonic()
    code, out, err = cli("consume", "t", "--timeout", "0.2")
    assert code == 0
    assert out == ""
    assert "Processed a total of 0 messages" in err
    assert time.monotonic() - start < 30  # it ended by itself (generous bound for a loaded machine)


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_consume_refuses_a_timeout_that_is_no_number_of_seconds(cli: Run, log: embedlog.Log, value: str) -> None:
    """``--timeout nan`` was taken, and the command never ended."""
    log.create_topic("t")
    code, _, err = cli("consume", "t", "--timeout", value)
    assert code == 2
    assert "--timeout" in err


# -- groups --------------------------------------------------------------------------------------
def test_groups_reset_offsets_to_a_date_time_out_of_range_is_one_line(cli: Run, log: embedlog.Log) -> None:
    """Year 1 made the CLI report an internal error ("this is a bug") and the API raise a
    bare ValueError from inside its write transaction."""
    fill(log, "t", 2)
    log.commit_offsets("g", {TopicPartition("t", 0): 1})
    code, _, err = cli("groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "0001-01-01", "--execute")
    assert code == 2  # (a malformed command line)
    assert err.count("\n") == 1
    assert "out of range" in err
    assert "bug" not in err
    with pytest.raises(ConfigError, match="out of range"):
        log.reset_group_offsets("g", "t", datetime(1, 1, 1))
    assert log.committed_offsets("g")[TopicPartition("t", 0)].offset == 1
    assert log.reset_group_offsets("g", "t", datetime(1960, 1, 1)) == {TopicPartition("t", 0): 0}  # (before 1970)


def test_groups_list_describe_delete(cli: Run, log: embedlog.Log) -> None:
    fill(log, "t", 5, partitions=2)
    assert cli("groups", "list")[1] == ""
    log.commit_offsets("g", {TopicPartition("t", 0): 1, TopicPartition("t", 1): 2})
    log.commit_offsets("a", {TopicPartition("t", 0): 0})
    assert cli("groups", "list")[1].split() == ["a", "g"]
    assert json.loads(cli("groups", "list", "--json")[1]) == ["a", "g"]
    code, out, err = cli("groups", "describe", "g")
    assert code == 0
    assert "no active members" in err
    lines = out.splitlines()
    assert "Lag: 2" in lines[0]
    assert lines[1].split() == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                                "CONSUMER-ID", "CLIENT-ID"]
    assert [ln.split() for ln in lines[2:]] == [["g", "t", "0", "1", "3", "2", "-", "-"],
                                                ["g", "t", "1", "2", "2", "0", "-", "-"]]
    doc = json.loads(cli("groups", "describe", "g", "--json")[1])
    assert doc["total_lag"] == 2
    assert doc["members"] == []
    assert doc["offsets"][0] == {"topic": "t", "partition": 0, "committed": 1, "end_offset": 3, "lag": 2,
                                 "owner": None}
    code, _, err = cli("groups", "describe", "nope")
    assert code == 1
    assert one_error_line(err).endswith("'nope' does not exist; `embedlog groups list` lists them")
    assert cli("groups", "delete", "g")[0] == 0
    assert log.groups() == ["a"]
    code, _, err = cli("groups", "delete", "g")
    assert code == 1
    assert "does not exist" in one_error_line(err)


def test_names_with_control_characters_stay_on_their_line(cli: Run, log: embedlog.Log) -> None:
    """A group named with a newline or a tab broke the tables and one-name-a-line lists
    (group names may hold any character but NUL); they show as escapes (JSON as is)."""
    fill(log, "t", 3)
    log.commit_offsets("odd\nname\tx", {TopicPartition("t", 0): 1})
    assert cli("groups", "list")[1] == "odd\\nname\\tx\n"
    assert json.loads(cli("groups", "list", "--json")[1]) == ["odd\nname\tx"]
    out = cli("groups", "describe", "odd\nname\tx")[1].splitlines()
    assert out[0].startswith("Group: odd\\nname\\tx  State:")
    assert len(out) == 3
    assert out[2].split() == ["odd\\nname\\tx", "t", "0", "1", "3", "2", "-", "-"]


def test_groups_describe_shows_live_members(cli: Run, log: embedlog.Log) -> None:
    fill(log, "t", 4, partitions=2)
    with log.consumer(["t"], group="g", client_id="worker-1", auto_offset_reset="earliest") as c:
        deadline = time.monotonic() + 30
        while len(c.assignment()) < 2 and time.monotonic() < deadline:
            c.poll(timeout=0.1)
        assert cli("groups", "describe", "g")[1].splitlines()[0].endswith("Lag: -")  # (nothing committed yet)
        c.commit()
        assert cli("groups", "describe", "g")[1].splitlines()[0].endswith("Lag: 0")
        code, out, _ = cli("groups", "describe", "g", "--members")
        assert code == 0
        row = out.splitlines()[1].split()
        assert row[0] == "g"
        assert row[2] == "worker-1"
        assert row[3] == "2"
        assert row[4] == "t:0,t:1"
        out = cli("groups", "describe", "g")[1]
        rows = [ln.split() for ln in out.splitlines()[2:]]
        assert [(r[2], r[-1]) for r in rows] == [("0", "worker-1"), ("1", "worker-1")]
        assert all(r[-2] == c.group_metadata()[1] for r in rows)
        assert "Members: 1" in out
        code, _, err = cli("groups", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--execute")
        assert code == 1
        assert "active member" in one_error_line(err)
        code, _, err = cli("groups", "delete", "g")
        assert code == 1
        assert "active member" in one_error_line(err)


def test_lag_and_resets_count_to_the_high_watermark(cli: Run, log: embedlog.Log) -> None:
    """Records above the high watermark (a replicating leader's followers lack them, or
    a leader died on the directory) are not readable: describe_group, metrics and the
    reset dry run all stop at the high watermark, as consumers and the reset itself do."""
    from embedlog.storage import replica  # noqa: PLC0415

    log.create_topic("t", partitions=1)
    with log.producer() as p:
        for _ in range(5):
            p.send("t", b"x")
    store = log._store
    store.write(lambda txn: replica.set_replicating(txn, store.dbs, True))  # (appends leave the hw alone)
    with log.producer() as p:
        for _ in range(7):
            p.send("t", b"y")
    tp = TopicPartition("t", 0)
    part = log.describe_topic("t").partitions[0]
    assert (part.end_offset, part.high_watermark) == (12, 5)
    log.commit_offsets("g", {tp: 2})
    assert log.describe_group("g").lag[tp] == 3
    (row,) = [r for g in log.metrics().groups if g.group == "g" for r in g.partitions]
    assert (row.end_offset, row.lag) == (5, 3)
    (pm,) = [p for t in log.metrics().topics if t.name == "t" for p in t.partitions]
    assert (pm.end_offset, pm.high_watermark) == (12, 5)  # (the exporter's side: test_metrics.py)
    for target, want in ((["--to-latest"], 5), (["--to-offset", "9"], 5), (["--to-offset", "4"], 4),
                         (["--to-datetime", "2999-01-01T00:00:00Z"], 5)):
        code, out, _ = cli("groups", "reset-offsets", "g", "--topic", "t", *target, "--json")
        assert code == 0
        assert [o["new"] for o in json.loads(out)["offsets"]] == [want], target
        code, out, _ = cli("groups", "reset-offsets", "g", "--topic", "t", *target, "--execute", "--json")
        assert code == 0
        assert [o["new"] for o in json.loads(out)["offsets"]] == [want], target
        assert log.committed_offsets("g")[tp].offset == want


def test_groups_reset_offsets_dry_run_then_execute(cli: Run, log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    with log.producer() as p:
        for i in range(6):
            p.send("t", b"x", partition=i % 2, timestamp_ms=1_000_000 + i * 1000)
    log.commit_offsets("g", {TopicPartition("t", 0): 1})
    committed = {TopicPartition("t", 0): 1}

    def current() -> dict[TopicPartition, int]:
        return {TopicPartition(o.topic, o.partition): o.committed for o in log.describe_group("g").offsets
                if o.committed is not None}

    code, out, err = cli("groups", "reset-offsets", "g", "--topic", "t", "--to-latest")
    assert code == 0
    assert "Dry run" in err
    assert [ln.split() for ln in out.splitlines()] == [
        ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
        ["g", "t", "0", "1", "3"], ["g", "t", "1", "-", "3"]]
    assert current() == committed  # nothing changed

    # each target's dry run shows exactly what --execute then commits
    when = datetime.fromtimestamp(1_003_000 / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    targets = [["--to-earliest"], ["--to-offset", "2"], ["--to-offset", "99"], ["--to-datetime", when],
               ["--to-datetime", "1970-01-01T00:00:00Z"], ["--to-datetime", "2999-01-01T00:00:00+02:00"],
               ["--to-latest"]]
    expected = [{0: 0, 1: 0}, {0: 2, 1: 2}, {0: 3, 1: 3}, {0: 2, 1: 1}, {0: 0, 1: 0}, {0: 3, 1: 3}, {0: 3, 1: 3}]
    for target, want in zip(targets, expected):
        code, out, _ = cli("groups", "reset-offsets", "g", "--topic", "t", *target, "--json")
        plan = json.loads(out)
        assert code == 0
        assert plan["executed"] is False
        assert {o["partition"]: o["new"] for o in plan["offsets"]} == want, target
        code, out, _ = cli("groups", "reset-offsets", "g", "--topic", "t", *target, "--execute", "--json")
        done = json.loads(out)
        assert code == 0
        assert done["executed"] is True
        assert {o["partition"]: o["new"] for o in done["offsets"]} == want, target
        assert current() == {TopicPartition("t", p): off for p, off in want.items()}

    code, _, err = cli("groups", "reset-offsets", "g", "--topic", "t")
    assert code == 2
    assert "--to-earliest" in one_error_line(err)
    code, _, err = cli("groups", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest")
    assert code == 2
    assert "not allowed with" in one_error_line(err)
    code, _, err = cli("groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday")
    assert code == 2
    assert "ISO 8601" in one_error_line(err)
    code, _, err = cli("groups", "reset-offsets", "g", "--topic", "nope", "--to-earliest")
    assert code == 1
    assert "does not exist" in one_error_line(err)
    # a group with no offsets yet: the dry run shows no current offsets, --execute creates them
    code, out, _ = cli("groups", "reset-offsets", "new", "--topic", "t", "--to-earliest")
    assert code == 0
    assert [ln.split()[3] for ln in out.splitlines()[1:]] == ["-", "-"]
    assert cli("groups", "reset-offsets", "new", "--topic", "t", "--to-earliest", "--execute")[0] == 0
    assert "new" in log.groups()


# -- verify (the library check and the command) -------------------------------------------------------
def test_verify_a_healthy_log(cli: Run, log: embedlog.Log) -> None:
    fill(log, "a", 50, partitions=3, per_flush=7)
    fill(log, "b", 5, config={"message.timestamp.type": "LogAppendTime"})
    log.create_topic("empty")
    seen: list[tuple[int, int]] = []
    report = log.verify(progress=lambda done, total: seen.append((done, total)))
    assert report.ok
    assert report.problems == ()
    assert (report.topics, report.partitions, report.records) == (3, 5, 55)
    assert report.batches == sum(p.batches for t in ("a", "b", "empty") for p in log.describe_topic(t).partitions)
    assert report.bytes == sum(log.describe_topic(t).bytes for t in ("a", "b", "empty"))
    assert seen
    assert seen[-1] == (report.batches, report.batches)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    code, out, _ = cli("verify")
    assert code == 0
    assert "OK: no damage found" in out
    assert "55 record(s)" in out
    doc = json.loads(cli("verify", "--json")[1])
    assert doc["ok"] is True
    assert doc["records"] == 55
    assert doc["problems"] == []


def test_verify_has_no_false_alarms_after_retention_compaction_and_delete_records(log: embedlog.Log) -> None:
    # compaction: whole batches removed, leaving gaps between batches ("c") and before the first ("s"),
    # and sparse batches
    compact = {"cleanup.policy": "compact", "min.compaction.lag.ms": 0}
    fill(log, "c", 40, per_flush=4, key=lambda i: f"u{i}".encode() if i < 4 else b"same", config=compact)
    fill(log, "s", 40, per_flush=4, key=lambda i: b"same" if i < 34 else f"k{i}".encode(), config=compact)
    assert log.maintain()["records_compacted"] == 32 + 33
    assert [(b.base_offset, [r.offset for r in b.records]) for b in log.dump("c", 0)] == [
        (0, [0, 1, 2, 3]), (36, [36, 37, 38, 39])]
    assert [(b.base_offset, [r.offset for r in b.records]) for b in log.dump("s", 0)] == [
        (32, [33, 34, 35]), (36, [36, 37, 38, 39])]
    # retention by size: the first batches are gone, the start offset moved
    fill(log, "r", 30, per_flush=3, config={"retention.bytes": 600})
    log.maintain()
    assert log.describe_topic("r").partitions[0].start_offset > 0
    # delete_records inside a batch: the start offset points into the first batch
    fill(log, "d", 10, per_flush=5)
    log.delete_records("d", 0, 7)
    # transactions and zstd batches
    log.create_topic("x")
    with log.transaction(compression="zstd") as tx:
        tx.send("x", b"in a transaction" * 20)
    report = log.verify()
    assert report.ok, report.problems
    # the gaps compaction left stay allowed once the policy no longer compacts (they were
    # reported as missing offsets, telling the operator to restore a healthy log)
    log.alter_topic_config("c", {"cleanup.policy": "delete"})
    log.alter_topic_config("s", {"cleanup.policy": "delete"})
    log.alter_topic_config("s", {"retention.ms": 86_400_000})  # (a later change keeps the mark)
    report = log.verify()
    assert report.ok, report.problems


def test_verify_finds_a_corrupt_batch_and_the_command_exits_3(cli: Run, log: embedlog.Log) -> None:
    fill(log, "t", 9, partitions=1, per_flush=3)
    keys = batch_keys(log, "t", 0)
    assert len(keys) == 3
    rewrite_batch(log, keys[1], flip(-1))  # a byte of the last record's value
    report = log.verify()
    assert not report.ok
    assert report.problems == (Problem("t", 0, 3, "corrupt batch: batch checksum mismatch"),)
    assert report.batches == 3
    assert report.records == 6
    code, out, _ = cli("verify")
    assert code == 3
    rows = [ln.split(None, 3) for ln in out.splitlines()]
    assert rows[0] == ["TOPIC", "PARTITION", "OFFSET", "PROBLEM"]
    assert rows[1] == ["t", "0", "3", "corrupt batch: batch checksum mismatch"]
    assert "DAMAGED: 1 problem(s) found." in out
    code, out, _ = cli("verify", "--json")
    assert code == 3
    assert json.loads(out)["problems"] == [{"topic": "t", "partition": 0, "offset": 3,
                                            "what": "corrupt batch: batch checksum mismatch"}]
    # reading the damaged batch raises the typed error naming the same place
    with pytest.raises(embedlog.errors.CorruptRecordError) as info:
        read_all(log, "t")
    assert (info.value.topic, info.value.partition, info.value.offset) == ("t", 0, 3)


def test_verify_finds_structural_damage(log: embedlog.Log) -> None:
    fill(log, "t", 12, per_flush=3)  # batches at 0, 3, 6, 9
    fill(log, "u", 4, per_flush=2)   # batches at 0, 2
    fill(log, "w", 2)
    dbs = log._store.dbs
    t_id, u_id, w_id = (log.describe_topic(name).topic_id for name in ("t", "u", "w"))
    keys = batch_keys(log, "t", 0)

    def damage(txn: lmdb.Transaction) -> None:
        # t: the batch at 3 goes missing; the batch at 6 claims base offset 5 in its header
        txn.delete(keys[1], db=dbs["batches"])
        buf = bytearray(bytes(txn.get(keys[2], db=dbs["batches"])))
        buf[0:8] = (5).to_bytes(8, "little")  # outside the CRC: only the key check catches it
        txn.put(keys[2], bytes(buf), db=dbs["batches"])
        # u: the partition state says 7 records end at offset 7
        st = schema.PartitionState.unpack(bytes(txn.get(schema.partition_key(u_id, 0), db=dbs["partitions"])))
        st.end_offset = st.high_watermark = 7
        txn.put(schema.partition_key(u_id, 0), st.pack(), db=dbs["partitions"])
        # a batch of a partition u does not have, and an offset committed past the end
        txn.put(schema.batch_key(u_id, 5, 0), bytes(txn.get(schema.batch_key(u_id, 0, 0), db=dbs["batches"])),
                db=dbs["batches"])
        value = schema.COMMITTED.pack(99, 0, 0)
        txn.put(schema.committed_key("g", t_id, 0), value, db=dbs["offsets"])
        # w: a partition state cut short
        txn.put(schema.partition_key(w_id, 0), b"\x00" * 10, db=dbs["partitions"])

    log._store.write(damage)
    report = log.verify()
    assert not report.ok
    found: dict[tuple[str, int, int | None], list[str]] = {}
    for p in report.problems:
        found.setdefault((p.topic, p.partition, p.offset), []).append(p.what)
    assert found[("t", 0, 6)] == ["batch header says base offset 5 but it is stored under offset 6",
                                  "offsets 3..5 are missing before this batch"]
    assert found[("t", 0, None)] == ["partition state counts 4 batches, 3 are stored",
                                     f"partition state counts {log.describe_topic('t').bytes} bytes, the stored "
                                     f"batches hold {sum(b.size for b in log.dump('t', 0))}"]
    assert found[("u", 0, 7)] == ["end offset is 7 but the last batch ends at offset 3"]
    assert found[("u", 5, 0)] == ["1 batch(es) stored for a topic or partition that does not exist"]
    assert found[("t", 0, 99)] == ["group 'g' committed offset 99, beyond the end offset 12"]
    assert found[("w", 0, None)] == [f"partition state cannot be read (10 bytes, expected {schema.PARTITION.size})"]
    assert len(report.problems) == 8
    assert report.batches == 3 + 2 + 2  # the orphan batch is reported, not counted


# -- dump ------------------------------------------------------------------------------------------
def test_dump_batches_and_records(cli: Run, log: embedlog.Log) -> None:
    log.create_topic("t", partitions=2)
    with log.producer(linger_ms=600_000) as p:  # one batch, however slow the machine
        for i in range(3):
            p.send("t", f"v{i}".encode(), key=b"k", partition=1, timestamp_ms=100 + i)
        p.flush()
        p.send("t", b"\xff", key=None, headers=[("h", b"x")], partition=1, timestamp_ms=200)
    code, out, _ = cli("dump", "t", "--partition", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("baseOffset: 0 lastOffset: 2 count: 3 leaderEpoch: 0 commitSeq: ")
    assert "compression: none timestampType: CreateTime" in lines[0]
    assert "crcValid: true" in lines[0]
    assert lines[1] == "| offset: 0 timestamp: 100 keySize: 1 valueSize: 2 headers: [] key: k payload: v0"
    assert lines[4].startswith("baseOffset: 3 lastOffset: 3 count: 1")
    assert lines[5] == "| offset: 3 timestamp: 200 keySize: -1 valueSize: 1 headers: [h=x] key: null payload: \\xff"
    # start inside a batch: the batch holding the offset comes first
    code, out, _ = cli("dump", "t", "--partition", "1", "--offset", "1", "--max-batches", "1", "--no-records")
    assert code == 0
    assert len(out.splitlines()) == 1
    assert out.startswith("baseOffset: 0 ")
    rows = [json.loads(ln) for ln in cli("dump", "t", "--partition", "1", "--offset", "3", "--json")[1].splitlines()]
    assert len(rows) == 1
    assert rows[0]["base_offset"] == 3
    assert rows[0]["record_count"] == 1
    assert rows[0]["crc_ok"] is True
    assert rows[0]["records"] == [{"offset": 3, "timestamp": 200, "key": None, "value": {"base64": "/w=="},
                                   "headers": [["h", "x"]]}]
    assert cli("dump", "t", "--partition", "1", "--offset", "4")[1] == ""
    with log.producer() as p:  # control characters are escaped: one record, one line
        p.send("t", b"two\nlines\x00", key=b"k\tk", headers=[("h", b"a\rb")], partition=1, timestamp_ms=300)
    out = cli("dump", "t", "--partition", "1", "--offset", "4")[1]
    assert out.splitlines()[1] == ("| offset: 4 timestamp: 300 keySize: 3 valueSize: 10 headers: [h=a\\rb] "
                                   "key: k\\tk payload: two\\nlines\\x00")
    assert cli("dump", "t")[1] == ""  # partition 0 is empty
    code, _, err = cli("dump", "t", "--partition", "2")
    assert code == 1
    assert "partition 2" in one_error_line(err)
    code, _, err = cli("dump", "nope")
    assert code == 1
    assert "does not exist" in one_error_line(err)


def test_dump_shows_damaged_batches_instead_of_failing(cli: Run, log: embedlog.Log) -> None:
    fill(log, "t", 6, per_flush=2)
    keys = batch_keys(log, "t", 0)
    rewrite_batch(log, keys[1], flip(-1))
    rewrite_batch(log, keys[2], lambda buf: buf.__setitem__(slice(24, None), b""))  # cut to a bare header
    batches = list(log.dump("t", 0))
    assert [b.base_offset for b in batches] == [0, 2, 4]
    assert [b.crc_ok for b in batches] == [True, False, False]
    assert batches[1].error == "batch checksum mismatch"
    assert batches[1].records == ()
    assert batches[2].error is not None
    assert batches[2].record_count is None
    assert [r.value for r in batches[0].records] == [b"v0", b"v1"]
    code, out, _ = cli("dump", "t")
    assert code == 0
    assert out.count("ERROR:") == 2
    assert "crcValid: false" in out


def test_dump_reads_long_partitions_in_chunks(log: embedlog.Log) -> None:
    fill(log, "t", 200, per_flush=1)  # 200 batches: several read transactions
    batches = list(log.dump("t", 0))
    assert [b.base_offset for b in batches] == list(range(200))
    assert [b.base_offset for b in log.dump("t", 0, start_offset=150, max_batches=70)] == list(range(150, 200))
    assert len(list(log.dump("t", 0, max_batches=65))) == 65


# -- stats -----------------------------------------------------------------------------------------
def test_stats(cli: Run, log: embedlog.Log) -> None:
    fill(log, "a", 10, partitions=2, per_flush=5)
    log.create_topic("b")
    log.commit_offsets("g", {TopicPartition("a", 0): 2})
    code, out, _ = cli("stats")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITIONS", "RECORDS", "BATCHES", "BYTES"]
    assert lines[1].split()[:4] == ["a", "2", "10", "4"]
    assert any(ln.split()[:5] == ["g", "Empty", "0", "1", "3"] for ln in lines)
    doc = json.loads(cli("stats", "--json")[1])
    assert doc["totals"]["records"] == 10
    assert doc["totals"]["topics"] == 2
    assert doc["totals"]["groups"] == 1
    assert doc["totals"]["bytes"] == log.describe_topic("a").bytes
    assert doc["totals"]["disk_bytes"] > 0
    assert doc["groups"] == [{"group": "g", "state": "Empty", "members": 0, "partitions": 1, "lag": 3}]


# -- progress bars ------------------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_only_on_a_terminal(cli: Run, log: embedlog.Log, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tqdm")
    fill(log, "t", 30, per_flush=1)
    code, _, err = cli("verify")
    assert code == 0
    assert "verify" not in err
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["verify"]) == 0
    assert "verify" in term.getvalue()
    assert "batch" in term.getvalue()
    # without tqdm the command works the same, with no bar
    monkeypatch.setitem(sys.modules, "tqdm", None)
    term.seek(0)
    term.truncate()
    assert main(["verify"]) == 0
    assert term.getvalue() == ""


# -- the documentation -----------------------------------------------------------------------------
def test_docs_cli_md_is_up_to_date() -> None:
    # Compared with runs of whitespace collapsed: argparse's column layout differs between
    # Python versions (3.13 widens the command column), its words do not.
    doc = (ROOT / "docs" / "cli.md").read_text()
    assert " ".join(doc.split()) == " ".join(render().split()), \
        "docs/cli.md is out of date: run  python -m embedlog.cli.docs > docs/cli.md"


def test_every_command_is_documented() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    commands = [" ".join(("embedlog", *path)) for path, _ in iter_commands(build_parser())]
    for command in commands:
        assert f"## `{command}`" in doc, command
    for name in ("topics create", "topics list", "topics describe", "topics delete", "topics alter", "produce",
                 "consume", "groups list", "groups describe", "groups reset-offsets", "groups delete", "verify",
                 "stats", "dump"):
        assert f"embedlog {name}" in commands


# -- end to end through the real command ------------------------------------------------------------
def test_e2e_produce_from_stdin_then_consume(tmp_path: Path) -> None:
    path = tmp_path / "log"
    r = run_cli("topics", "create", "orders", "--partitions", "2", env_path=path)
    assert r.returncode == 0, r.stderr
    lines = b"".join(b"user-%d:order %d\n" % (i % 3, i) for i in range(100))
    r = run_cli("produce", "orders", "--key-separator", ":", env_path=path, stdin=lines)
    assert r.returncode == 0, r.stderr
    assert b"Produced 100 record(s)" in r.stderr
    r = run_cli("consume", "orders", "--from-beginning", "--max-messages", "100", "--format", "%k=%s\n",
                env_path=path)
    assert r.returncode == 0, r.stderr
    got = r.stdout.decode().splitlines()
    assert sorted(got) == sorted(f"user-{i % 3}=order {i}" for i in range(100))
    # per key, records keep the order they were produced in
    for k in range(3):
        mine = [int(line.split()[-1]) for line in got if line.startswith(f"user-{k}=")]
        assert mine == sorted(mine)
    r = run_cli("consume", "orders", "--from-beginning", "--max-messages", "7", env_path=path)
    assert r.returncode == 0
    assert len(r.stdout.splitlines()) == 7
    assert b"Processed a total of 7 messages" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_e2e_consume_follows_new_records_and_ctrl_c_exits_0(tmp_path: Path, sig: int) -> None:
    """Ctrl-C, or SIGTERM (``timeout``, ``docker stop``, systemd): exit 0, commit what was
    printed and leave the group (no member left behind until its session times out)."""
    path = tmp_path / "log"
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        log.create_topic("t")
        with log.producer() as p:
            p.send("t", b"first")
    env = {**os.environ, "EMBEDLOG_PATH": str(path)}
    proc = subprocess.Popen([sys.executable, "-m", "embedlog.cli", "consume", "t", "--group", "g",
                             "--from-beginning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first\n"
        with embedlog.open(path, maintenance_interval_ms=None) as log, log.producer() as p:
            p.send("t", b"second")
        assert proc.stdout.readline() == b"second\n"  # it follows records written after it started
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
    assert b"Processed a total of 2 messages" in err
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        assert log.describe_group("g").offsets[0].committed == 2
        assert log.describe_group("g").members == ()


def test_e2e_ctrl_c_mid_stream_commits_exactly_what_was_printed(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        fill(log, "t", 20_000, partitions=2, per_flush=500)
    env = {**os.environ, "EMBEDLOG_PATH": str(path)}
    proc = subprocess.Popen([sys.executable, "-m", "embedlog.cli", "consume", "t", "--group", "g",
                             "--from-beginning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        head = [proc.stdout.readline() for _ in range(1000)]
        proc.send_signal(signal.SIGINT)  # while it is still printing
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    printed = b"".join(head).splitlines() + rest.splitlines()
    assert len(printed) >= 1000
    assert f"Processed a total of {len(printed)} messages".encode() in err
    assert len(set(printed)) == len(printed)  # values are unique: nothing printed twice
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        committed = {o.partition: o.committed or 0 for o in log.describe_group("g").offsets}
    # offsets are dense from 0 in each partition: the committed offsets add up to the records printed
    assert sum(committed.values()) == len(printed)


def test_e2e_verify_detects_a_byte_flipped_in_the_lmdb_file(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        fill(log, "good", 20, per_flush=5)
        fill(log, "bad", 20, partitions=2, per_flush=5)
        target = batch_keys(log, "bad", 1)[2]
    assert run_cli("verify", env_path=path).returncode == 0
    # the log is closed: damage the stored batch with py-lmdb directly in data.mdb
    env = lmdb.open(str(path), max_dbs=16)
    db = env.open_db(b"batches")
    with env.begin(write=True) as txn:
        buf = bytearray(txn.get(target, db=db))
        buf[-1] ^= 0x01  # the last byte of the last record's value
        txn.put(target, bytes(buf), db=db)
    env.close()
    _, _, base = schema.unpack_batch_key(target)
    r = run_cli("verify", env_path=path)
    assert r.returncode == 3, r.stderr
    out = r.stdout.decode()
    damaged = [ln.split(None, 3) for ln in out.splitlines()[1:] if ln.startswith("bad ")]
    assert damaged == [["bad", "1", str(base), "corrupt batch: batch checksum mismatch"]]
    assert "good" not in out
    r = run_cli("--json", "verify", env_path=path)
    assert r.returncode == 3
    problems = json.loads(r.stdout)["problems"]
    assert [(p["topic"], p["partition"], p["offset"]) for p in problems] == [("bad", 1, base)]
    # consuming the damaged partition fails with one line naming the place, not a traceback
    r = run_cli("consume", "bad", "--partition", "1", "--from-beginning", "--timeout", "1", env_path=path)
    assert r.returncode == 1
    assert b"Traceback" not in r.stderr
    assert f"bad[1] at offset {base}".encode() in r.stderr


def test_e2e_output_into_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        fill(log, "t", 5000, per_flush=1000)
    env = {**os.environ, "EMBEDLOG_PATH": str(path)}
    proc = subprocess.Popen([sys.executable, "-m", "embedlog.cli", "consume", "t", "--from-beginning",
                             "--timeout", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline() == b"v0\n"
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert b"Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_consume_stops_on_the_first_signal_while_blocked_on_a_stalled_pipe(path: Path, sig: int) -> None:
    """Nobody reads its stdout: the command blocks in a write once the pipe is full, and
    would never get back to its loop to see a stop request.  The first Ctrl-C (or
    SIGTERM) ends it there: exit 0, no traceback, the group left, the batch that never
    got out not committed."""
    with embedlog.open(path) as log:
        log.create_topic("t")
        with log.producer() as p:
            for i in range(30_000):
                p.send("t", b"z" * 200 + b"%d" % i)
    env = {**os.environ, "EMBEDLOG_PATH": str(path)}
    proc = subprocess.Popen([sys.executable, "-m", "embedlog.cli", "consume", "t", "--from-beginning", "--group", "g"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 30
        with embedlog.open(path) as log:  # (the consumer is in the group: it is writing, or blocked)
            while "g" not in log.groups() or not log.describe_group("g").members:
                assert time.monotonic() < deadline, "the consumer never joined"
                time.sleep(0.05)
        time.sleep(1.0)  # (its first batch fills the pipe: 64 KiB against 100 KB and more)
        assert proc.poll() is None
        proc.send_signal(sig)
        code = proc.wait(15)
        err = proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, err
    assert "Traceback" not in err
    with embedlog.open(path) as log:
        assert log.describe_group("g").members == ()


@pytest.mark.parametrize("bad", [["--interval", "0"], ["--interval", "-1"], ["--connect-timeout", "-1"],
                                 ["--interval", "nan"], ["--connect-timeout", "soon"]])
def test_bridge_durations_must_be_positive(cli: Run, bad: list[str]) -> None:
    """A usage error (exit 2, before any connection): --interval 0 flooded progress lines."""
    code, _out, err = cli("bridge", "up", "--bootstrap-servers", "127.0.0.1:1", "--topic", "t", *bad)
    assert code == 2
    assert "seconds" in err


# -- odd command lines (an audit's) -------------------------------------------------------------------
def test_topic_name_may_follow_config_options(cli: Run, log: embedlog.Log) -> None:
    """kafka-topics.sh takes options in any order: a NAME after ``--config k=v`` (or
    ``--delete-config KEY``) is the NAME, not one more value."""
    assert cli("topics", "create", "--config", "retention.ms=1000", "--partitions", "2", "a")[0] == 0
    assert cli("topics", "create", "b", "--config", "retention.ms=1000", "cleanup.policy=delete")[0] == 0
    assert (log.describe_topic("a").config["retention.ms"], len(log.describe_topic("a").partitions)) == (1000, 2)
    assert log.describe_topic("b").config["retention.ms"] == 1000
    assert cli("topics", "alter", "--config", "retention.ms=5", "a")[0] == 0
    assert log.describe_topic("a").config["retention.ms"] == 5
    assert cli("topics", "alter", "--delete-config", "retention.ms", "a")[0] == 0
    assert log.describe_topic("a").config["retention.ms"] == 7 * 24 * 3600 * 1000
    assert cli("topics", "create", "--config", "retention.ms=5000", "c", "--config", "max.message.bytes=9999")[0] == 0
    assert (log.describe_topic("c").config["retention.ms"], log.describe_topic("c").config["max.message.bytes"]) \
        == (5000, 9999)
    assert cli("topics", "alter", "--config", "retention.ms=7", "c", "--delete-config", "max.message.bytes")[0] == 0
    assert log.describe_topic("c").config["retention.ms"] == 7
    assert log.describe_topic("c").config["max.message.bytes"] != 9999
    for argv in (["create", "--config", "retention.ms=1000"], ["alter", "--delete-config", "retention.ms"]):
        code, _, err = cli("topics", *argv)
        assert code == 2
        assert "required: NAME" in err


@pytest.mark.parametrize("argv", [
    ["serve", "--metrics", "127.0.0.1:abc"],
    ["serve", "--metrics", "127.0.0.1:99999"],
    ["serve", "--replicate", "127.0.0.1:0", "--insecure", "--replica-lag-time-max-ms", "-5"],
    ["dump", "t", "--offset", "99999999999999999999999"],
    ["dump", "t", "--max-batches", "99999999999999999999999"],
    ["groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "0001-01-01T00:00:00"],
])
def test_malformed_option_values_are_usage_errors(cli: Run, log: embedlog.Log, argv: list[str]) -> None:
    log.create_topic("t")
    code, _, err = cli(*argv)
    assert code == 2, err
    assert err.startswith("embedlog: error: ")
    assert "internal error" not in err


def test_option_bytes_that_are_not_utf8_go_through(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t")
    env = {**os.environ, "EMBEDLOG_PATH": str(tmp_path / "log")}
    r = subprocess.run([sys.executable.encode(), b"-m", b"embedlog", b"produce", b"t", b"--header", b"h=\xff\xfe",
                        b"--key-separator", b"\xff"], input=b"k\xffv\n", capture_output=True, env=env, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    with embedlog.open(tmp_path / "log") as log, log.consumer(["t"], auto_offset_reset="earliest") as c:
        (m,) = c.poll(timeout=5)
    assert (m.key, m.value, m.headers) == (b"k", b"v", [("h", b"\xff\xfe")])
    r = subprocess.run([sys.executable.encode(), b"-m", b"embedlog", b"consume", b"t", b"--from-beginning",
                        b"--max-messages", b"1", b"--format", b"%s\xfe\\n"], capture_output=True, env=env, timeout=60,
                       check=False)
    assert (r.returncode, r.stdout) == (0, b"v\xfe\n"), r.stderr


@pytest.mark.parametrize(("shell", "what"), [("produce t <&-", "standard input is closed"),
                                             ("topics list >&-", "standard output is closed")])
def test_closed_standard_streams_are_one_line_errors(tmp_path: Path, shell: str, what: str) -> None:
    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t")
    env = {**os.environ, "EMBEDLOG_PATH": str(tmp_path / "log")}
    r = subprocess.run(["bash", "-c", f"{sys.executable} -m embedlog {shell}"], capture_output=True, env=env,
                       timeout=60, check=False)
    assert r.returncode == 1
    assert r.stderr.decode().startswith(f"embedlog: error: {what}")
    assert len(r.stderr.decode().splitlines()) == 1


def test_records_of_a_compacted_topic_are_the_stored_ones(cli: Run, log: embedlog.Log) -> None:
    """After compaction ``stats`` and ``topics describe`` count what the batches hold
    (what verify and consume see), not the span of offsets."""
    log.create_topic("c", config={"cleanup.policy": "compact", "min.compaction.lag.ms": 0})
    with log.producer() as p:
        for i in range(100):
            p.send("c", b"v%d" % i, key=b"k%d" % (i % 5))
            p.flush()
    log.maintain()
    with log.consumer(["c"], auto_offset_reset="earliest") as c:
        kept = len(harness.drain(c))
    assert kept < 100
    code, out, _ = cli("stats", "--json")
    assert code == 0
    assert json.loads(out)["totals"]["records"] == kept
    code, out, _ = cli("topics", "describe", "c", "--json")
    assert [p["records"] for p in json.loads(out)["partitions"]] == [kept]
    code, out, _ = cli("topics", "describe", "c")
    assert f"Records: {kept} " in out


def test_e2e_verify_calls_damage_to_lmdb_s_own_pages_damage(tmp_path: Path) -> None:
    """Damage below the batches, in the pages of LMDB's own B-trees: ``verify`` exits 3
    with one line saying to restore the log (it exited 1 with LMDB's words), and other
    commands raise the typed ``DamagedStoreError``'s one line."""
    path = tmp_path / "log"
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        fill(log, "t", 200, per_flush=50)
    page = 4096
    with open(path / "data.mdb", "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        for n in range(2, size // page):  # (pages 0 and 1 are the meta pages)
            f.seek(n * page + 10)
            f.write(b"\x00\x00")  # the page's flags: no longer a branch, leaf or overflow page
    r = run_cli("verify", env_path=path)
    assert r.returncode == 3, r
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("embedlog: DAMAGED: "), lines
    assert "restore the log from a replica" in lines[0]
    r = run_cli("--json", "verify", env_path=path)
    assert r.returncode == 3
    report = json.loads(r.stdout)
    assert report["ok"] is False
    assert {"topics", "partitions", "batches", "records", "bytes", "problems"} <= set(report)
    r = run_cli("topics", "list", env_path=path)
    assert r.returncode == 1
    assert b"Traceback" not in r.stderr
    assert b"restore the log from a replica" in r.stderr


@pytest.mark.parametrize("count", ["2", "99999999"])
def test_topics_alter_changes_nothing_when_it_refuses_the_partition_count(tmp_path: Path, count: str) -> None:
    path = tmp_path / "log"
    assert run_cli("topics", "create", "t", "--partitions", "3", env_path=path).returncode == 0
    r = run_cli("topics", "alter", "t", "--config", "retention.ms=7777", "--partitions", count, env_path=path)
    assert r.returncode == 1
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        assert log.describe_topic("t").config["retention.ms"] != 7777


@pytest.mark.parametrize("args", [("topics", "create", "bad name"), ("topics", "create", "ok", "--config", "foo=1"),
                                  ("topics", "create", "ok", "--partitions", "99999999")])
def test_a_refused_topics_create_leaves_no_log_directory_behind(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = tmp_path / "typo"
    r = run_cli(*args, env_path=path)
    assert r.returncode == 1
    assert r.stderr.count(b"\n") == 1
    assert not path.exists()


def test_a_warning_gives_shell_advice_not_python(capsys: pytest.CaptureFixture[str]) -> None:
    """Warnings pass through the same rewrite as errors: a failed commit's warning named
    ``log.topics()`` to a shell user."""
    from embedlog.cli.output import warn  # noqa: PLC0415

    warn("could not commit offsets for group 'g': topic 'b' does not exist; log.topics() lists the topics and "
         "log.create_topic() creates one")
    err = capsys.readouterr().err
    assert "`embedlog topics list` lists the topics" in err
    assert "log.topics()" not in err



def test_verify_calls_a_truncated_data_file_damage(tmp_path: Path) -> None:
    """An interrupted copy: exit 3 with one line saying to restore (it exited 1)."""
    path = tmp_path / "log"
    with embedlog.open(path, maintenance_interval_ms=None) as log:
        fill(log, "t", 2000, per_flush=500)
    data = path / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    r = run_cli("verify", env_path=path)
    assert r.returncode == 3, r
    assert r.stderr.decode().count("\n") == 1
    assert b"truncated" in r.stderr


def test_topics_create_with_two_names_says_so(tmp_path: Path) -> None:
    r = run_cli("topics", "create", "--config", "retention.ms=5", "c4", "c5", env_path=tmp_path / "log")
    assert r.returncode == 2
    assert b"one topic NAME at a time, got c4, c5" in r.stderr
    assert not (tmp_path / "log").exists()
