"""close() racing send() on other threads: every send that returns normally is written.

A send that checked the producer before ``close`` began and appends while ``close``
runs is written by ``close``; once ``close`` has drained for good, a late one is taken
back and its send raises ``ClosedError`` (as Kafka's producer fails sends after close,
never drops them in silence).  Run on the C send path and, in a subprocess, on the
pure-Python one; with records that take the fast path and ones that take the general
path (explicit partition and timestamp, headers of an odd shape).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    import embedlog
    from embedlog import errors

    root, how, closer = sys.argv[1], sys.argv[2], sys.argv[3]
    bad = []
    for run in range(12):
        path = f"{root}/d{run}"
        log = embedlog.open(path, durability="none", maintenance_interval_ms=None)
        log.create_topic("t", partitions=2)
        p = log.producer(linger_ms=(0, 5, 1000)[run % 3])
        sent = [0, 0]
        go = threading.Barrier(3)

        def sender(k):
            go.wait()
            i = 0
            while True:
                try:
                    if how == "fast":
                        p.send("t", b"x", key=b"k%d" % (i % 3))
                    else:  # the general path: explicit partition and timestamp, tuple headers
                        p.send("t", b"x", key=b"k", partition=i % 2, timestamp_ms=1000 + i,
                               headers=(("h", b"v"),))
                except errors.ClosedError:
                    return
                sent[k] += 1
                i += 1

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        go.wait()
        time.sleep(0.001 * run)
        if closer == "producer":
            p.close()
        else:
            log.close()
        for t in threads:
            t.join(30)
        leftover = len(p)
        log.close()
        with embedlog.open(path) as again:
            written = sum(s.end_offset for s in again.describe_topic("t").partitions)
        if written != sum(sent) or leftover:
            bad.append((run, sum(sent), written, leftover))
    print(bad)
""")


@pytest.mark.parametrize("pure", [False, True], ids=["c", "pure"])
@pytest.mark.parametrize("how", ["fast", "general"])
@pytest.mark.parametrize("closer", ["producer", "log"])
def test_every_send_that_returned_is_written(tmp_path: Path, pure: bool, how: str, closer: str) -> None:
    env = {**os.environ}
    if pure:
        env["EMBEDLOG_PURE_PYTHON"] = "1"
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), how, closer], env=env,
                         capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", "(run, sends returned, records written, left buffered): " + out.stdout


def test_a_late_record_is_refused_not_kept(tmp_path: Path) -> None:
    """The producer's own hook for a send that appended after close drained for good:
    the record is taken back out and the send raises ClosedError."""
    import embedlog  # noqa: PLC0415
    from embedlog.errors import ClosedError  # noqa: PLC0415

    with embedlog.open(tmp_path / "log") as log:
        log.create_topic("t")
        p = log.producer()
        p.send("t", b"before")
        p.close()
        st = p._topics["t"]
        key, value = b"k", b"late"
        acc = st.accs[0]
        acc += (key, value, 0, 1, 4, None, None)  # what a send caught mid-way leaves
        with pytest.raises(ClosedError, match="not written"):
            p._sent_while_closing(acc, key, value)
        assert len(p) == 0
        p._sent_while_closing(acc, key, value)  # not buffered (written before close's last look): no error
        assert log.describe_topic("t").partitions[0].end_offset == 1


def test_pure_python_counts_headers_against_max_message_bytes(tmp_path: Path) -> None:
    """The pure-Python fast path (a key seen before) counts header bytes toward
    max.message.bytes, as the C path and the general path do."""
    code = textwrap.dedent("""
        import sys, embedlog
        from embedlog.errors import RecordTooLargeError
        with embedlog.open(sys.argv[1]) as log:
            log.create_topic("t", config={"max.message.bytes": 1000})
            with log.producer() as p:
                p.send("t", b"v", key=b"k")
                p.flush()
                for headers in ([("h", b"x" * 5000)], [("a", b"x" * 600), ("b", b"y" * 600)]):
                    try:
                        p.send("t", b"v", key=b"k", headers=headers)
                    except RecordTooLargeError:
                        print("refused")
                p.flush()
            print(log.describe_topic("t").partitions[0].end_offset)
    """)
    env = {**os.environ, "EMBEDLOG_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "log")], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["refused", "refused", "1"]
