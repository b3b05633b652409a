"""The runnable examples (issue 5): each script runs in a real subprocess, exits 0, and
prints the lines that show it did what its docstring says; a second pass runs each one
twice against a LOG_DIR argument and opens the log it left behind.

Only ``examples/*.py`` is collected: ``examples/kafka_apps/`` has its own tests.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import embedlog

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
TIMEOUT_S = 60


def run(script: Path, *args: str, cwd: Path) -> str:
    """Run ``script``; assert it exits 0 with no traceback; return its stdout."""
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=TIMEOUT_S, cwd=cwd, check=False)
    assert proc.returncode == 0, f"{script.name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr  # e.g. an exception in a consumer thread
    return proc.stdout


def line(pattern: str, out: str) -> re.Match[str]:
    """The first line of ``out`` matching ``pattern`` (anchored at the line's start)."""
    match = re.search(pattern, out, re.MULTILINE)
    assert match is not None, f"no line matches {pattern!r} in:\n{out}"
    return match


# -- what each example must show ----------------------------------------------------------------
def check_quickstart(out: str) -> None:
    assert len(re.findall(r"^orders\[\d\]: offsets 0\.\.\d+, \d+ bytes$", out, re.MULTILINE)) == 3
    line(r"^  orders\[\d\]@0 key=b'user-0' value=b'order 0'$", out)
    assert int(line(r"^replayed (\d+) records of orders\[\d\]$", out)[1]) > 0
    line(r"^first offsets in the last hour: \{TopicPartition\(.*OffsetAndTimestamp\(offset=0,", out)


def check_log_aggregation(out: str) -> None:
    errors = int(line(r"^produced 600 log lines to 'app-logs' \(3 partitions\): \{.*'ERROR': (\d+)", out)[1])
    assert errors > 0
    line(rf"^alerter: read 600 lines, saw {errors} ERROR lines$", out)
    line(r"^  ALERT \[\w+\] timeout calling payments", out)
    line(rf"^search-indexer: indexed 600 lines, \d+ terms; 'timeout' -> {errors} lines$", out)
    line(r"^archiver: 600 lines into 4 gzip files .*, 600 lines on disk$", out)
    for group in ("search-indexer", "archiver", "alerter"):
        line(rf"^group {group}: committed 600 records, lag 0$", out)
    line(r"^alerter restarted: read 20 new lines \([1-9]\d* ERROR\), none of the old ones$", out)
    line(r"^every group read every line; the alerter saw every ERROR line: True$", out)


def check_metrics_pipeline(out: str) -> None:
    anomalies = re.findall(r"^  anomaly: (\S+) window t\+(\d+)m", out, re.MULTILINE)
    assert sorted(anomalies) == [("db-1", "12"), ("web-2", "09")], out
    line(r"^collector: 540 readings of 3 hosts over 15 simulated minutes$", out)
    line(r"^detector: 45 windows closed, 2 anomalies, lag 0$", out)
    line(r"^topic 'anomalies': \[\('web-2', \d+\.\d\), \('db-1', \d+\.\d\)\]$", out)
    line(r"^replayed window t\+09m of web-2 by timestamp: 12 readings", out)
    line(r"^detected exactly the injected incidents \[\('db-1', 12\), \('web-2', 9\)\]: True$", out)


def check_order_processing(out: str) -> None:
    line(r"^  payment-1: crashed mid-transaction; nothing of that transaction was written$", out)
    line(r"^  payment-1: restarted, resuming from the group's committed offsets$", out)
    line(r"^order service: 40 orders placed$", out)
    processed = ast.literal_eval(line(r"^processed \(committed\) per instance: (\{.*\})$", out)[1])
    outcomes = ast.literal_eval(line(r"^outcomes: (\{.*\})$", out)[1])
    assert outcomes.get("reserved", 0) + outcomes.get("out_of_stock", 0) == 40, outcomes
    assert outcomes.get("paid", 0) + outcomes.get("declined", 0) == outcomes.get("reserved", 0), outcomes
    assert processed["inventory-1"] == 40  # each order read once
    assert processed["payment-1"] + processed["payment-2"] == 40  # each stock event committed once, by one worker
    assert processed["notification-1"] == 40 + outcomes.get("reserved", 0)  # stock events and payments
    for group in ("inventory", "payment", "notification"):
        line(rf"^group {group}: 0 live members, lag 0$", out)
    line(r"^40 orders, 0 duplicates, inventory consistent: True$", out)
    line(r"^every order processed exactly once: True$", out)


def check_cdc_sqlite(out: str) -> None:
    phases = re.findall(r"^(.+?) +-> +(\d+) changes published, +(\d+) applied \((\d+) deletes\); "
                        r"replica equals source: (\w+)$", out, re.MULTILINE)
    assert [p[0] for p in phases][:4] == ["insert 60 customers", "upgrade 40 tiers", "change 25 emails",
                                          "delete 9 customers"], out
    assert all(p[2] == p[1] and p[4] == "True" for p in phases), phases
    assert phases[0][1:4] == ("60", "60", "0")
    assert phases[3][1:4] == ("9", "9", "9")
    assert phases[4][0].startswith("renumber")
    assert phases[4][1:4] == ("2", "2", "1")  # a tombstone for the old key, then the row under the new one
    rows = int(line(r"^group replica-builder: lag 0; source has (\d+) rows$", out)[1])
    assert rows == 51
    assert int(line(r"^compaction removed (\d+) superseded records", out)[1]) > 0
    fresh = line(r"^new replica from the compacted topic: (\d+) records \((\d+) tombstones\); "
                 r"equals source: True$", out)
    assert int(fresh[2]) == 10  # 9 deletes and the renumbered key: tombstones stay for delete.retention.ms
    assert int(fresh[1]) - int(fresh[2]) == rows  # and one record per live row
    line(r"^replica equals source: True$", out)


def check_cicd_events(out: str) -> None:
    snapshots = re.findall(r"^-- ci-events at +[\d.]+s: (\d+) events --$", out, re.MULTILINE)
    assert snapshots, out
    assert snapshots[-1] == "66"
    assert [int(n) for n in snapshots] == sorted(int(n) for n in snapshots)
    assert "\x1b[" not in out  # no terminal control codes when stdout is not a terminal
    final = out[out.rindex("-- ci-events at"):]
    line(r"^api#2 +runner-\d +test +failed ", final)
    line(r"^worker#3 +runner-\d +build +failed ", final)
    assert len(re.findall(r" deploy +succeeded ", final)) == 7
    line(r"^9 pipelines: 7 succeeded, 2 failed \(api#2 at test, worker#3 at build\); 66 events, lag 0$", out)
    line(r"^the board shows every pipeline's final state: True$", out)


def check_edge_pair(out: str) -> None:
    line(r"^node a: leader at 127\.0\.0\.1:\d+, epoch (\d+); node b follows it \(in sync: 1 follower\)$", out)
    line(r"^node a: 5 records acknowledged with acks='all'; b holds 5 of them$", out)
    before = ast.literal_eval(line(r"^consumer on b before failover: (\[.*\])$", out)[1])
    assert before == [f"reading-{i}" for i in range(5)]
    line(r"^node a: 3 records acknowledged with acks='leader'; a holds 8, b holds 5$", out)
    line(r"^consumer on a sees 5 records: the 3 not on b stay above the high watermark$", out)
    old_epoch = int(line(r"^node a: leader at .*, epoch (\d+);", out)[1])
    new_epoch = int(line(r"^node b: promoted to leader at epoch (\d+), at 127\.0\.0\.1:\d+$", out)[1])
    assert new_epoch > old_epoch
    line(r"^node a: rejoined as follower of b; holds 8 records, the 3 unreplicated ones dropped$", out)
    for node in ("a", "b"):
        after = ast.literal_eval(line(rf"^consumer on {node} after failover: (\[.*\])$", out)[1])
        assert after == [f"reading-{i}" for i in range(8)], after
    line(r"^no consumer ever saw an unreplicated record: True$", out)
    line(r"^every acks='all' record survived the failover, in order, on both nodes: True$", out)


def check_edge_uplink(out: str) -> None:
    line(r"^logged 2000 readings locally; forwarding to Kafka at 127\.0\.0\.1:\d+$", out)
    line(r"^mirror site-7: link up, 4500 forwarded, lag 0$", out)
    rows = re.findall(r"^  device-metrics\[(\d)\] -> device-metrics: end (\d+), mirrored (\d+)$", out, re.M)
    assert len(rows) == 4, rows
    assert all(end == done for _, end, done in rows), rows
    assert sum(int(end) for _, end, _ in rows) == 4500
    line(r"^consumer group 'site-7' \(the mirror's progress\): total lag 0$", out)
    line(r"^the cluster holds 4500 readings, 4500 distinct: exactly once$", out)


CHECKS: dict[str, Callable[[str], None]] = {
    "quickstart.py": check_quickstart,
    "log_aggregation.py": check_log_aggregation,
    "metrics_pipeline.py": check_metrics_pipeline,
    "order_processing.py": check_order_processing,
    "cdc_sqlite.py": check_cdc_sqlite,
    "cicd_events.py": check_cicd_events,
    "edge_pair.py": check_edge_pair,
    "edge_uplink.py": check_edge_uplink,
}
# The last line each example prints after checking its own result (quickstart has none).
SELF_CHECK = {
    "log_aggregation.py": "the alerter saw every ERROR line: True",
    "metrics_pipeline.py": "detected exactly the injected incidents",
    "order_processing.py": "every order processed exactly once: True",
    "cdc_sqlite.py": "replica equals source: True",
    "cicd_events.py": "the board shows every pipeline's final state: True",
    "edge_pair.py": "every acks='all' record survived the failover, in order, on both nodes: True",
    "edge_uplink.py": "the cluster holds 4500 readings, 4500 distinct: exactly once",
}
# A topic each example leaves in a LOG_DIR, and how many records it must hold after a second run.
TOPICS = {"quickstart.py": ("orders", 20), "log_aggregation.py": ("app-logs", 620),
          "metrics_pipeline.py": ("metrics", 540), "order_processing.py": ("orders", 40),
          "cdc_sqlite.py": ("db.shop.customers", None), "cicd_events.py": ("ci-events", 66),
          "edge_pair.py": ("readings", 8), "edge_uplink.py": ("device-metrics", 4500)}


def test_every_example_is_checked() -> None:
    names = {p.name for p in SCRIPTS}
    assert set(CHECKS) <= names, "an example named here is missing"
    assert names <= set(CHECKS), f"examples without output checks in {Path(__file__).name}: {names - set(CHECKS)}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs_with_a_temporary_log(script: Path, tmp_path: Path) -> None:
    out = run(script, cwd=tmp_path)
    if script.name in CHECKS:  # a new example still has to run; test_every_example_is_checked flags it
        CHECKS[script.name](out)
    assert list(tmp_path.iterdir()) == []  # the temporary log and files are gone, nothing left in cwd


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs_twice_on_a_log_dir(script: Path, tmp_path: Path) -> None:
    """With a LOG_DIR the data stays there, and running again on it works (and starts over)."""
    log_dir = tmp_path / "log"
    for _ in range(2):
        out = run(script, str(log_dir), cwd=tmp_path)
        if script.name in SELF_CHECK:
            assert SELF_CHECK[script.name] in out.splitlines()[-1], out
    topic, records = TOPICS[script.name]
    with embedlog.open(log_dir) as log:
        desc = log.describe_topic(topic)
        assert desc.records > 0
        if records is not None:
            assert desc.records == records
        assert log.verify().ok


def test_the_readme_quickstart_runs_twice(tmp_path: Path) -> None:
    """The README's Quickstart snippet, as a user pastes it: run twice in one directory
    (its ``data/`` stays), it works both times."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "quickstart_snippet.py"
    script.write_text(code)
    for n in (1, 2):
        out = run(script, cwd=tmp_path)
        assert out.count("b'paid'") == n, out  # the record of each run, read from the start
