"""``embedlog.storage.env`` details not covered elsewhere."""

from __future__ import annotations

import os

import pytest

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
