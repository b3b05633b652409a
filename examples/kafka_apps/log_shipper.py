"""A log shipper written against kafka-python only.

``ship`` reads log files (``LEVEL service message`` per line) and sends each line to
``logs``, keyed by service (so one service's lines keep their order) with the level as a
header.  ``Archiver`` consumes ``logs`` in a consumer group and appends each line to
``<service>.log`` in a directory, committing after each batch it has written.
"""

from __future__ import annotations

from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

TOPIC = "logs"


def parse(line: str) -> tuple[str, str, str] | None:
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) < 3:
        return None
    level, service, message = parts
    return level, service, message


def ship(path: Path, producer: KafkaProducer) -> int:
    """Send every well-formed line of ``path``; return how many were sent."""
    sent = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            parsed = parse(line)
            if parsed is None:
                continue
            level, service, message = parsed
            sent.append(producer.send(TOPIC, message.encode(), key=service.encode(),
                                      headers=[("level", level.encode())]))
    producer.flush()
    for future in sent:
        future.get(timeout=30)  # raise if a line could not be written
    return len(sent)


class Archiver:
    """Consume ``logs`` and append each line to ``<out_dir>/<service>.log``."""

    def __init__(self, bootstrap_servers: str, out_dir: Path, group_id: str = "log-archiver") -> None:
        self.out_dir = out_dir
        self.consumer = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap_servers, group_id=group_id,
                                      auto_offset_reset="earliest", enable_auto_commit=False,
                                      consumer_timeout_ms=500)

    def run(self) -> int:
        """Archive everything available now; return how many lines were written."""
        written = 0
        for record in self.consumer:  # stops after consumer_timeout_ms without new lines
            service = record.key.decode()
            level = dict(record.headers).get("level", b"INFO").decode()
            with (self.out_dir / f"{service}.log").open("a", encoding="utf-8") as f:
                f.write(f"{level} {record.value.decode()}\n")
            written += 1
            if written % 100 == 0:
                self.consumer.commit()
        self.consumer.commit()
        return written

    def close(self) -> None:
        self.consumer.close()
