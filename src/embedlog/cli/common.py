"""What every command shares: exit codes, typed CLI errors, opening the log, parsing
``KEY=VALUE`` options, and optional progress bars."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import embedlog

__all__ = [
    "EXIT_DAMAGED",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Progress",
    "UsageError",
    "key_values",
    "non_negative_int",
    "open_log",
    "positive_int",
    "positive_seconds",
    "progress",
    "silence_stdout",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DAMAGED = 3
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the command reports as one line (exit ``code``)."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """A malformed command line (exit 2); ``prog`` names the (sub)command for the hint."""

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message, EXIT_USAGE)
        self.prog = prog


# -- argument types ------------------------------------------------------------------------
def stop_on_sigterm() -> None:
    """Make SIGTERM (systemd, ``docker stop``, ``kill``) stop a long-running command as
    Ctrl-C does: cleanly, closing what it runs (a Leader's lease, a bridge's last
    checkpoint) instead of dying with exit status 143.  (Only from the main thread, as
    Python allows: ``main`` called from another one keeps SIGTERM's default.)"""

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def silence_stdout() -> None:
    """Point stdout at /dev/null: output a pipe's reader will never take (it went away,
    or stalled) is dropped instead of failing, or blocking, the command at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def positive_int(text: str) -> int:
    """An argparse type: an int >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an int >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if abs(value) > _MAX_INT:
        raise argparse.ArgumentTypeError(f"{text!r} is too large (at most {_MAX_INT})")
    return value


#: the largest integer an option takes (offsets, counts): what the library accepts for all of them
_MAX_INT = 2**62


def key_values(items: Iterable[str] | None, option: str) -> list[tuple[str, str]]:
    """Split ``KEY=VALUE`` strings (in order, duplicates kept); ``UsageError`` if one has no ``=``."""
    out: list[tuple[str, str]] = []
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"argument {option}: expected KEY=VALUE, got {item!r}")
        out.append((key, value))
    return out


# -- the log -------------------------------------------------------------------------------
def log_path(args: argparse.Namespace) -> str:
    """The log directory from ``--path`` or ``EMBEDLOG_PATH``."""
    path: str | None = getattr(args, "path", None) or os.environ.get("EMBEDLOG_PATH")
    if not path:
        raise UsageError("no log directory: give --path DIR or set EMBEDLOG_PATH")
    return path


def existing_log_path(args: argparse.Namespace) -> str:
    """The log's path; a ``CliError`` if no log is there (a typo must not leave an empty
    log behind, nor serve one)."""
    path = log_path(args)
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        raise CliError(f"no embedlog log at {path!r} (create one with: embedlog --path {path} topics create NAME)")
    return path


@contextmanager
def open_log(args: argparse.Namespace, *, create: bool = False) -> Iterator[embedlog.Log]:
    """Open the log for one command and close it after.

    Only commands that create something (``create=True``) may create the directory;
    every other command reports a missing log instead of leaving an empty one behind
    after a typo.  Background maintenance stays off: a command does only what it says.
    """
    path = existing_log_path(args) if not create else log_path(args)
    log = embedlog.open(path, maintenance_interval_ms=None)
    try:
        yield log
    finally:
        log.close()


# -- progress bars -------------------------------------------------------------------------
class Progress:
    """A progress bar on stderr (tqdm) or nothing; a context manager.

    Bars are drawn only when tqdm is installed (``pip install 'embedlog[cli]'``) and
    stderr is a terminal, so pipes, logs and tests get clean output.
    """

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar

    @property
    def active(self) -> bool:
        """Whether a bar is drawn."""
        return self._bar is not None

    def update(self, done: int, total: int | None = None) -> None:
        """Show ``done`` of ``total`` units."""
        bar = self._bar
        if bar is None:
            return
        if total is not None and total != bar.total:
            bar.total = total
        bar.n = done
        bar.refresh()

    def advance(self, n: int = 1) -> None:
        """Add ``n`` units."""
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def progress(desc: str, total: int | None = None, *, unit: str = "batch", streaming: bool = False) -> Progress:
    """A ``Progress`` for long work; a no-op without tqdm or a terminal on stderr.

    ``streaming`` commands print their results as they go, so they draw a bar only when
    stdout is not the same terminal (the bar would tear the output apart).
    """
    stderr = sys.stderr
    if not _isatty(stderr) or (streaming and _isatty(sys.stdout)):
        return Progress()
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415 - optional
    except ImportError:
        return Progress()
    return Progress(tqdm(total=total, desc=desc, unit=unit, file=stderr, leave=False, dynamic_ncols=True))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
