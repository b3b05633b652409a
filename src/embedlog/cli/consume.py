"""``embedlog consume TOPIC``: print records as they arrive (kafka-console-consumer.sh, kcat -C)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import EmbedlogError
from ..model import Message, TopicPartition
from .common import EXIT_OK, UsageError, non_negative_int, open_log, silence_stdout
from .output import ByteSink, Output, bytes_json, warn

__all__ = ["compile_template", "message_json", "register"]

DEFAULT_FORMAT = "%s\\n"

FORMAT_HELP = """\
format: --format takes a template like kcat's -f, or the word json.
  %t topic      %p partition   %o offset      %T timestamp (ms since the epoch)
  %k key        %s value       %K key length  %S value length (-1 when null)
  %h headers as name=value,name=value          %% a percent sign
  \\n newline    \\t tab         \\r carriage return   \\\\ a backslash
A null key or value prints as nothing. The default is '%s\\n' (the value, one a line).
'json' prints one JSON object a line with topic, partition, offset, timestamp, key,
value and headers ([[name, value], ...]); a key, value or header value is a JSON
string when it is UTF-8 text, {"base64": "..."} otherwise, and null when null.
With --json and no --format, records print as 'json'.

Without --group, consumption starts at the end of each partition (only new records)
unless --from-beginning or --offset says otherwise. With --group, it starts at the
group's committed offsets (or as --from-beginning says where the group has none), and
the offsets of the printed records are committed as they are printed.
The command follows new records until Ctrl-C (exit 0), --max-messages or --timeout."""

Part = Callable[[Message], bytes]


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``consume`` to the command tree."""
    p = sub.add_parser("consume", parents=[parent], help="print records of a topic as they arrive",
                       description="Print the records of TOPIC and follow new ones until stopped.",
                       epilog=FORMAT_HELP)
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--from-beginning", action="store_true",
                   help="start at the earliest record (with --group: where the group has no committed offset)")
    p.add_argument("--group", metavar="GROUP",
                   help="consume as a member of consumer group GROUP and commit the offsets of printed records")
    p.add_argument("--partition", type=non_negative_int, metavar="N", help="consume only partition N")
    p.add_argument("--offset", metavar="OFFSET",
                   help="with --partition: start at OFFSET, 'earliest', 'latest', or -N for the last N records")
    p.add_argument("--max-messages", type=non_negative_int, metavar="N", help="exit after printing N records")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="exit when no record arrives for SECONDS")
    p.add_argument("--format", metavar="FORMAT", help="a template such as '%%k\\t%%s\\n', or 'json' (see below)")
    p.set_defaults(func=consume, until_stopped=True)


# -- formatting ----------------------------------------------------------------------------
def _headers_text(msg: Message) -> bytes:
    parts = []
    for name, value in msg.headers:
        nb = name.encode("utf-8")
        parts.append(nb if value is None else nb + b"=" + value)
    return b",".join(parts)


def _length(data: bytes | None) -> bytes:
    return b"-1" if data is None else str(len(data)).encode()


_FIELDS: dict[str, Part] = {
    "t": lambda m: m.topic.encode("utf-8"),
    "p": lambda m: str(m.partition).encode(),
    "o": lambda m: str(m.offset).encode(),
    "T": lambda m: str(m.timestamp).encode(),
    "k": lambda m: m.key or b"",
    "s": lambda m: m.value or b"",
    "K": lambda m: _length(m.key),
    "S": lambda m: _length(m.value),
    "h": _headers_text,
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "0": "\0"}


def compile_template(template: str) -> Callable[[Message], bytes]:
    """Turn a kcat-style template into a function of a message; ``UsageError`` if malformed."""
    parts: list[bytes | Part] = []
    literal: list[str] = []

    def flush_literal() -> None:
        if literal:
            parts.append("".join(literal).encode("utf-8", "surrogateescape"))  # (bytes of argv as they came)
            literal.clear()

    i = 0
    while i < len(template):
        ch = template[i]
        if ch in "%\\" and i + 1 >= len(template):
            raise UsageError(f"argument --format: {template!r} ends with a lone {ch!r}", "embedlog consume")
        if ch == "\\":
            nxt = template[i + 1]
            if nxt not in _ESCAPES:
                raise UsageError(f"argument --format: unknown escape \\{nxt} (use \\n \\t \\r \\\\ \\0)",
                                 "embedlog consume")
            literal.append(_ESCAPES[nxt])
            i += 2
        elif ch == "%":
            nxt = template[i + 1]
            if nxt == "%":
                literal.append("%")
            elif nxt in _FIELDS:
                flush_literal()
                parts.append(_FIELDS[nxt])
            else:
                raise UsageError(f"argument --format: unknown field %{nxt} (use %t %p %o %T %k %s %K %S %h %%)",
                                 "embedlog consume")
            i += 2
        else:
            literal.append(ch)
            i += 1
    flush_literal()
    fixed = tuple(parts)

    def render(msg: Message) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(msg) for p in fixed)

    return render


def message_json(msg: Message) -> dict[str, Any]:
    """A message as the JSON object ``--format json`` prints."""
    return {
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "timestamp": msg.timestamp,
        "key": bytes_json(msg.key),
        "value": bytes_json(msg.value),
        "headers": [[name, bytes_json(value)] for name, value in msg.headers],
    }


def _render_json(msg: Message) -> bytes:
    return json.dumps(message_json(msg), ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


# -- consuming ----------------------------------------------------------------------------
class _Stopper:
    """Ctrl-C handling that never tears the command's bookkeeping nor embedlog's.

    The first Ctrl-C (or SIGTERM) asks the loop to stop: the poll under way returns
    within a second (the loop polls with at most that timeout), and a batch being
    written, counted and committed is finished first, so what was printed is always what
    is counted and committed.  It raises nothing: a ``KeyboardInterrupt`` raised inside
    embedlog's code (a poll's read transaction, a group heartbeat's write) could leave its
    state half-changed, and the cleanup after it (commit, leave the group, close) hang.
    A second Ctrl-C raises at once, wherever the command is; so does the first when the
    command is still blocked writing a second later (a pipe whose reader stalled: it
    would never get back to look): that batch is then not committed, and output the
    reader never takes is dropped.  During cleanup a Ctrl-C is ignored.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.cleaning = False
        self.writing = False  # in a write to stdout, which blocks while the pipe is full

    def on_sigint(self, signum: int, frame: Any) -> None:
        first = not self.stop.is_set()
        self.stop.set()
        if not first and not self.cleaning:
            raise KeyboardInterrupt
        if self.writing and hasattr(signal, "setitimer"):  # (a reader that reads lets it finish)
            signal.signal(signal.SIGALRM, self._on_stalled)
            signal.setitimer(signal.ITIMER_REAL, _STALLED_S)

    def _on_stalled(self, signum: int, frame: Any) -> None:
        """A second after a stop request the command still writes: the reader stalled."""
        if self.writing and not self.cleaning:
            silence_stdout()  # (what the stalled reader never took: flushing it at exit would block)
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Stopper]:
        """Handle SIGINT, and SIGTERM (``timeout``, ``docker stop``, systemd) alike, while
        the block runs (only the main thread can): a member leaves its group cleanly."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self.on_sigint) for sig in (signal.SIGINT, signal.SIGTERM)}
        alarm = signal.getsignal(signal.SIGALRM) if hasattr(signal, "setitimer") else None
        try:
            yield self
        finally:
            if alarm is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, alarm)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _start_offset(spec: str, begin: int, end: int) -> int:
    if spec == "earliest":
        return begin
    if spec == "latest":
        return end
    try:
        value = int(spec)
    except ValueError:
        raise UsageError(f"argument --offset: expected a number, 'earliest', 'latest' or -N, got {spec!r}",
                         "embedlog consume") from None
    if value < 0:
        return max(begin, end + value)
    return value


def _check_options(args: argparse.Namespace) -> None:
    prog = "embedlog consume"
    if args.group is not None and args.partition is not None:
        raise UsageError("--group and --partition cannot be used together (a group assigns partitions itself)", prog)
    if args.offset is not None and args.partition is None:
        raise UsageError("--offset needs --partition", prog)
    if args.offset is not None and args.from_beginning:
        raise UsageError("--offset and --from-beginning cannot be used together", prog)
    if args.timeout is not None and not 0 <= args.timeout < math.inf:  # (NaN too)
        raise UsageError("argument --timeout: must be a number of seconds >= 0", prog)


class _Tally:
    """Records printed so far, and the offsets printed but not yet committed."""

    def __init__(self) -> None:
        self.printed = 0
        self.pending: dict[TopicPartition, int] = {}  # next offset after the last printed record


def consume(args: argparse.Namespace, out: Output) -> int:
    """``consume``."""
    _check_options(args)
    fmt = args.format if args.format is not None else ("json" if out.json_mode else DEFAULT_FORMAT)
    render = _render_json if fmt == "json" else compile_template(fmt)
    tally = _Tally()
    # Ctrl-C is how a follower is stopped: not an error
    with _Stopper().installed() as stopper, contextlib.suppress(KeyboardInterrupt):
        _consume(args, render, tally, stopper)
    out.note(f"Processed a total of {tally.printed} messages")
    return EXIT_OK


def _consume(args: argparse.Namespace, render: Callable[[Message], bytes], tally: _Tally,
             stopper: _Stopper) -> None:
    with open_log(args) as log:
        consumer = log.consumer(None, group=args.group, enable_auto_commit=False, client_id="embedlog-cli",
                                auto_offset_reset="earliest" if args.from_beginning else "latest")
        try:
            if args.partition is not None:
                tp = TopicPartition(args.topic, args.partition)
                consumer.assign([tp])
                if args.offset is not None:
                    begin = consumer.beginning_offsets([tp])[tp]
                    end = consumer.end_offsets([tp])[tp]
                    consumer.seek(tp, _start_offset(args.offset, begin, end))
            else:
                consumer.subscribe([args.topic])
            _loop(args, consumer, render, tally, stopper)
        finally:
            stopper.stop.set()
            stopper.cleaning = True  # a Ctrl-C from here on is ignored: cleanup is never torn
            try:
                _commit(consumer, tally, args.group)
            finally:
                consumer.close()


def _loop(args: argparse.Namespace, consumer: Any, render: Callable[[Message], bytes], tally: _Tally,
          stopper: _Stopper) -> None:
    sink = Output.binary()
    limit = args.max_messages
    idle = args.timeout
    last = time.monotonic()
    while limit is None or tally.printed < limit:
        wait = 1.0 if idle is None else max(0.0, min(1.0, idle - (time.monotonic() - last)))
        msgs = consumer.poll(timeout=wait, max_records=None if limit is None else limit - tally.printed)
        if stopper.stop.is_set():
            return
        if not msgs:
            if idle is not None and time.monotonic() - last >= idle:
                return
            continue
        last = time.monotonic()
        data = b"".join(map(render, msgs))
        stopper.writing = True
        try:
            _write_all(sink, data)
        finally:
            stopper.writing = False
        tally.printed += len(msgs)
        for msg in msgs:
            tally.pending[TopicPartition(msg.topic, msg.partition)] = msg.offset + 1
        _commit(consumer, tally, args.group)
        if stopper.stop.is_set():
            return


_STALLED_S = 1.0  # seconds a write may still block after a stop request


def _write_all(sink: ByteSink, data: bytes) -> None:
    """Write all of ``data`` (an unbuffered stdout may take it in parts) and flush."""
    while data:
        n = sink.write(data)
        data = data[n or 0:]
    sink.flush()


def _commit(consumer: Any, tally: _Tally, group: str | None) -> None:
    """Commit the offsets of what was printed (with a group); a failure is a warning."""
    if group is None or not tally.pending:
        return
    offsets, tally.pending = tally.pending, {}
    try:
        consumer.commit(offsets)
    except EmbedlogError as exc:
        warn(f"could not commit offsets for group {group!r}: {exc}")
