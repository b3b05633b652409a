"""The ``embedlog`` command: Kafka's admin and console tools for a log directory.

``embedlog [--path DIR] [--json] COMMAND ...`` — see ``embedlog --help`` or
``docs/cli.md`` (generated from the help texts by ``python -m embedlog.cli.docs``).

``main(argv)`` runs one command and returns its exit code; it never raises for a
user's mistake or a failed operation (it prints one line on stderr instead).
``import embedlog`` does not import this package.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .. import __version__
from ..errors import EmbedlogError
from . import admin, bridge, consume, groups, produce, replicate, serve, topics
from .common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    UsageError,
    silence_stdout,
    stop_on_sigterm,
)
from .output import Output, error, for_the_shell

__all__ = ["CommandParser", "build_parser", "iter_commands", "main"]

DESCRIPTION = """\
Administer and use an embedlog log directory from the shell, the way kafka-topics.sh,
kafka-console-producer.sh, kafka-console-consumer.sh, kafka-consumer-groups.sh,
kafka-configs.sh and kcat are used with Kafka.  No broker: the log is a directory.

The log is chosen with --path DIR or the EMBEDLOG_PATH environment variable.
Output is human tables by default; --json (before or after the command) prints JSON
for scripts."""

EPILOG = """\
exit codes:
  0  success
  1  the operation failed (unknown topic, bad config value, no log at the path, ...)
  2  the command line is malformed (unknown option, missing argument, ...)
  3  embedlog verify found damage
  130 interrupted (Ctrl-C); the commands that run until stopped (consume, serve, follow,
      bridge up/down) exit 0 when stopped with Ctrl-C"""

Handler = Callable[[argparse.Namespace, Output], int]


class HelpFormatter(argparse.HelpFormatter):
    """Help laid out at a fixed width, so ``docs/cli.md`` does not depend on the terminal.

    A description or epilog written on several lines is kept as written; a one-line
    one is wrapped.
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises ``UsageError`` instead of printing usage and exiting."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.prog)


def _json_parent() -> argparse.ArgumentParser:
    """The per-command ``--json`` flag (same as the global one)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON for scripts instead of human tables")
    return parent


def build_parser() -> CommandParser:
    """The whole command tree (each command module registers its subcommands)."""
    parser = CommandParser(prog="embedlog", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--path", metavar="DIR",
                        help="the log directory (default: the EMBEDLOG_PATH environment variable)")
    parser.add_argument("--json", action="store_true", default=False,
                        help="print JSON for scripts instead of human tables (also accepted after the command)")
    parser.add_argument("--version", action="version", version=f"embedlog {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parent = _json_parent()
    for module in (topics, produce, consume, groups, admin, serve, replicate, bridge):
        module.register(sub, parent)
    return parser


def iter_commands(parser: argparse.ArgumentParser | None = None,
                  path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command as ``(("topics", "create"), parser)``, the root first, depth first."""
    parser = parser or build_parser()
    out = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out.extend(iter_commands(child, (*path, name)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``embedlog`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Ctrl-C and SIGTERM stop any command cleanly, from its first moment: a command that
    runs until stopped (``consume``, ``serve``, ``follow``, ``bridge up``/``down``) then
    exits 0, any other prints "interrupted" and exits 130."""
    args = None
    try:
        stop_on_sigterm()
        parser = build_parser()
        try:
            args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        except SystemExit as exc:  # --help and --version
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        handler: Handler = args.func
        if sys.stdout is None:  # (started with it closed: ``>&-``)
            raise CliError("standard output is closed; give the command one (> /dev/null to discard what it prints)")
        return handler(args, Output(json_mode=bool(args.json)))
    except KeyboardInterrupt:
        if getattr(args, "until_stopped", False):
            return EXIT_OK
        print("embedlog: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("EMBEDLOG_DEBUG") and not isinstance(exc, (CliError, EmbedlogError)):
            raise
        return _report(exc)


def _report(exc: Exception) -> int:
    """Print ``exc`` as one line on stderr; return the exit code it means."""
    if isinstance(exc, UsageError):
        hint = f" (see: {exc.prog} --help)" if exc.prog else ""
        error(f"{exc}{hint}")
        return EXIT_USAGE
    if isinstance(exc, CliError):
        error(str(exc))
        return exc.code
    if isinstance(exc, BrokenPipeError):  # the reader of our output went away: not an error
        silence_stdout()  # (the reader of the pipe went away)
        return EXIT_OK
    if isinstance(exc, EmbedlogError):
        error(for_the_shell(str(exc)))
    elif isinstance(exc, OSError):
        error(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
    else:
        error(f"internal error: {type(exc).__name__}: {exc} (this is a bug; set EMBEDLOG_DEBUG=1 for the traceback)")
    return EXIT_FAILURE


#: advice in the library's error messages, and what to do instead from the shell


