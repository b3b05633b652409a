"""Generate ``docs/cli.md`` from the commands' ``--help`` texts.

``python -m embedlog.cli.docs > docs/cli.md`` rewrites it; ``tests/test_cli.py``
fails when it is out of date.
"""

from __future__ import annotations

import sys

from . import build_parser, iter_commands

__all__ = ["render"]

HEADER = """\
# The `embedlog` command

<!-- Generated from the --help texts by `python -m embedlog.cli.docs > docs/cli.md`; do not edit. -->

`embedlog` administers and uses a log directory from the shell, the way Kafka's
`kafka-topics.sh`, `kafka-console-producer.sh`, `kafka-console-consumer.sh`,
`kafka-consumer-groups.sh`, `kafka-configs.sh` and kcat are used with a broker.
It is installed with the package (`pip install 'embedlog[cli]'` adds progress bars);
`python -m embedlog.cli` runs the same command.

```sh
export EMBEDLOG_PATH=data/
embedlog topics create orders --partitions 3 --config retention.ms=604800000
printf 'user-1:hello\\nuser-2:world\\n' | embedlog produce orders --key-separator :
embedlog consume orders --from-beginning --format '%k %s\\n' --max-messages 2
embedlog consume orders --group billing --from-beginning --timeout 1
embedlog groups describe billing
embedlog groups reset-offsets billing --topic orders --to-earliest --execute
embedlog verify
```
"""


def render() -> str:
    """The Markdown of ``docs/cli.md``: the introduction, then every command's help."""
    parts = [HEADER]
    for path, parser in iter_commands(build_parser()):
        title = " ".join(("embedlog", *path))
        parts.append(f"## `{title}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
