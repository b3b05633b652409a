"""``embedlog verify``, ``embedlog stats`` and ``embedlog dump``: checking, sizing and
debugging a log directory."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import attrs

from ..errors import DamagedStoreError, UnknownGroupError, UnknownTopicError
from ..storage.verify import DumpBatch, DumpRecord, VerifyReport
from .common import EXIT_DAMAGED, non_negative_int, open_log, positive_int, progress
from .output import Output, bytes_json, one_line, text_of
from .topics import described, topic_json

__all__ = ["batch_json", "register", "report_json"]


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``verify``, ``stats`` and ``dump`` to the command tree."""
    v = sub.add_parser(
        "verify", parents=[parent], help="check every batch and partition; exit 3 on damage",
        description="Check every stored batch (checksum, decoding, base offset) and the offsets' continuity, and "
                    "that each partition's state (start/end offsets, bytes, batch count) matches its batches. "
                    "Prints what is damaged (topic, partition, offset) and exits 3 if anything is; 0 if not. "
                    "Other processes may keep using the log meanwhile.")
    v.set_defaults(func=verify)

    s = sub.add_parser("stats", parents=[parent], help="records, sizes and lag of every topic and group",
                       description="Summarize the log: per topic its partitions, records, batches and bytes; "
                                   "per consumer group its state, members and total lag; and the size of the "
                                   "data file on disk.")
    s.set_defaults(func=stats)

    d = sub.add_parser(
        "dump", parents=[parent], help="print a partition's batches and records (for debugging)",
        description="Print the stored batches of one partition: each batch's header (base and last offset, "
                    "record count, leader epoch, commit sequence, attributes, timestamps, size, checksum) and "
                    "its records. A damaged batch is printed with its error. With --json: one JSON object per "
                    "batch, one a line.")
    d.add_argument("topic", metavar="TOPIC")
    d.add_argument("--partition", type=non_negative_int, default=0, metavar="N", help="the partition (default 0)")
    d.add_argument("--offset", type=non_negative_int, default=0, metavar="N",
                   help="start at the batch holding offset N (default 0)")
    d.add_argument("--max-batches", type=positive_int, metavar="N", help="print at most N batches")
    d.add_argument("--no-records", action="store_true", help="print batch headers only")
    d.set_defaults(func=dump)


# -- verify ----------------------------------------------------------------------------------
def report_json(report: VerifyReport) -> dict[str, Any]:
    """A verify report as JSON."""
    return {
        "ok": report.ok,
        "topics": report.topics,
        "partitions": report.partitions,
        "batches": report.batches,
        "records": report.records,
        "bytes": report.bytes,
        "problems": [{"topic": p.topic, "partition": p.partition, "offset": p.offset, "what": p.what}
                     for p in report.problems],
    }


def verify(args: argparse.Namespace, out: Output) -> int:
    """``verify``."""
    try:
        with open_log(args) as log, progress("verify", unit="batch") as bar:
            report = log.verify(progress=bar.update)
    except DamagedStoreError as exc:  # (LMDB's own structure, below what verify walks: damage too)
        if out.json_mode:  # (the report's keys: nothing could be counted)
            out.json({"ok": False, "topics": 0, "partitions": 0, "batches": 0, "records": 0, "bytes": 0,
                      "problems": [{"topic": None, "partition": None, "offset": None, "what": str(exc)}]})
        print(f"embedlog: DAMAGED: {exc}", file=sys.stderr)
        return EXIT_DAMAGED
    code = 0 if report.ok else EXIT_DAMAGED
    if out.json_mode:
        out.json(report_json(report))
        return code
    summary = (f"Checked {report.topics} topic(s), {report.partitions} partition(s), {report.batches} batch(es), "
               f"{report.records} record(s), {report.bytes} bytes.")
    if report.ok:
        out.line(summary)
        out.line("OK: no damage found.")
        return code
    out.table(["TOPIC", "PARTITION", "OFFSET", "PROBLEM"],
              [[p.topic, None if p.partition < 0 else p.partition, p.offset, p.what] for p in report.problems])
    out.line(summary)
    out.line(f"DAMAGED: {len(report.problems)} problem(s) found.")
    return code


# -- stats -----------------------------------------------------------------------------------
def stats(args: argparse.Namespace, out: Output) -> int:
    """``stats``."""
    with open_log(args) as log:
        topics = []
        for name in log.topics():
            try:
                topics.append(described(log, name))
            except UnknownTopicError:
                continue
        groups = []
        for name in log.groups():
            try:
                groups.append(log.describe_group(name))
            except UnknownGroupError:
                continue
        data_file = os.path.join(log.path, "data.mdb")
        disk = os.path.getsize(data_file) if os.path.exists(data_file) else 0
    records = sum(sum(n) for _, n in topics)
    stored = sum(t.bytes for t, _ in topics)
    if out.json_mode:
        out.json({
            "topics": [topic_json(t, n) for t, n in topics],
            "groups": [{"group": g.group, "state": g.state, "members": len(g.members),
                        "partitions": len(g.offsets), "lag": g.total_lag} for g in groups],
            "totals": {"topics": len(topics), "partitions": sum(len(t.partitions) for t, _ in topics),
                       "records": records, "bytes": stored, "groups": len(groups), "disk_bytes": disk},
        })
        return 0
    if topics:
        out.table(["TOPIC", "PARTITIONS", "RECORDS", "BATCHES", "BYTES"],
                  [[t.name, len(t.partitions), sum(n), sum(p.batches for p in t.partitions), t.bytes]
                   for t, n in topics])
        out.line()
    if groups:
        out.table(["GROUP", "STATE", "MEMBERS", "PARTITIONS", "LAG"],
                  [[g.group, g.state, len(g.members), len(g.offsets), g.total_lag] for g in groups])
        out.line()
    out.line(f"{len(topics)} topic(s), {records} record(s), {stored} bytes in batches; {len(groups)} group(s); "
             f"data file {disk} bytes on disk.")
    return 0


# -- dump ------------------------------------------------------------------------------------
def batch_json(batch: DumpBatch) -> dict[str, Any]:
    """A dumped batch as JSON (with its records, if it was dumped with them)."""
    return {
        "base_offset": batch.base_offset,
        "header_base_offset": batch.header_base_offset,
        "last_offset": batch.last_offset,
        "record_count": batch.record_count,
        "leader_epoch": batch.leader_epoch,
        "commit_seq": batch.commit_seq,
        "attributes": batch.attributes,
        "compression": batch.compression,
        "timestamp_type": batch.timestamp_type,
        "transactional": batch.transactional,
        "compacted": batch.compacted,
        "first_timestamp": batch.first_timestamp,
        "max_timestamp": batch.max_timestamp,
        "size": batch.size,
        "crc_ok": batch.crc_ok,
        "error": batch.error,
        "records": [
            {"offset": r.offset, "timestamp": r.timestamp, "key": bytes_json(r.key), "value": bytes_json(r.value),
             "headers": [[name, bytes_json(value)] for name, value in r.headers]}
            for r in batch.records
        ],
    }


def _batch_line(b: DumpBatch) -> str:
    def flag(value: bool | None) -> str:
        return "-" if value is None else str(value).lower()

    fields = [
        ("baseOffset", b.base_offset), ("lastOffset", b.last_offset), ("count", b.record_count),
        ("leaderEpoch", b.leader_epoch), ("commitSeq", b.commit_seq),
        ("attributes", None if b.attributes is None else f"0x{b.attributes:02x}"),
        ("compression", b.compression), ("timestampType", b.timestamp_type),
        ("isTransactional", flag(b.transactional)), ("compacted", flag(b.compacted)),
        ("firstTimestamp", b.first_timestamp), ("maxTimestamp", b.max_timestamp), ("size", b.size),
        ("crcValid", flag(b.crc_ok)),
    ]
    line = " ".join(f"{k}: {'-' if v is None else v}" for k, v in fields)
    if b.header_base_offset is not None and b.header_base_offset != b.base_offset:
        line += f" headerBaseOffset: {b.header_base_offset}"
    if b.error:
        line += f" ERROR: {b.error}"
    return line


def _shown(data: bytes | None, null: str = "") -> str:
    return one_line(text_of(data, null))  # (one record stays one line of dump's output)


def _record_line(r: DumpRecord) -> str:
    headers = ",".join(name if value is None else f"{name}={_shown(value)}" for name, value in r.headers)
    return (f"| offset: {r.offset} timestamp: {r.timestamp} keySize: {-1 if r.key is None else len(r.key)} "
            f"valueSize: {-1 if r.value is None else len(r.value)} headers: [{headers}] "
            f"key: {_shown(r.key, 'null')} payload: {_shown(r.value, 'null')}")


def dump(args: argparse.Namespace, out: Output) -> int:
    """``dump``."""
    with open_log(args) as log:
        desc = log.describe_topic(args.topic)
        total = desc.partitions[args.partition].batches if args.partition < len(desc.partitions) else None
        if args.max_batches is not None and total is not None:
            total = min(total, args.max_batches)
        batches = log.dump(args.topic, args.partition, start_offset=args.offset, max_batches=args.max_batches)
        with progress("dump", total, unit="batch", streaming=True) as bar:
            for b in batches:
                shown = attrs.evolve(b, records=()) if args.no_records else b
                if out.json_mode:
                    out.json_line(batch_json(shown))
                else:
                    out.line(_batch_line(shown))
                    for r in shown.records:
                        out.line(_record_line(r))
                bar.advance()
    return 0


