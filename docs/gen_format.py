"""Regenerate docs/format.md from the layout docstrings in the code: python docs/gen_format.py"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAD = '# embedlog storage format, version 1\n\nThis file describes what a log directory holds, byte for byte.  The same text lives in\nthe code that writes it (`src/embedlog/storage/schema.py` and\n`src/embedlog/codec/batch.py`); a test keeps the two in step.\n\n## The directory\n\n| path | what | durable |\n| --- | --- | --- |\n| `data.mdb`, `lock.mdb` | the LMDB environment: every topic, record, offset and group | yes |\n| `wake/` | one registration file per process waiting in `poll` (Unix datagram sockets that wake it) | no: recreated as needed |\n| `groups/` | a directory per consumer group with members, one heartbeat file in it per live member (its mtime is the heartbeat); removed once the last member of the group left, or the group is deleted | no: liveness only |\n| `leader.lease` | flocked by the running replication `Leader`: a `replicating` flag whose lease is free is stale | no: liveness only |\n| `replication.lock` | flocked by the one `Leader` or `Follower` running on the directory | no: liveness only |\n| `mirrors/` | per Kafka bridge: a lock file (one bridge of a name at a time) and its last reported link state (JSON) | no: advisory |\n| `sync.board` | a small file (4 KiB, read and written with `pread`/`pwrite`) shared by the processes writing with `durability=\"flush\"`: the inode of `data.mdb`, then twice the last transaction known to be on disk (u64 LE each, at bytes 0, 8, 16); `lockf` locks on bytes 64 (a write transaction under way) and 65 (the log is open) | no: skips a sync only when believable (`storage/syncboard.py`) |\n\nThe format version is stored in the `meta` database (`format_version`); a directory\nwith another version is refused with `FormatVersionError`.\n\n'
MID = '\n\nJSON, rewritten only on membership changes:\n\n```json\n{"generation": 7, "protocol": "cooperative-sticky",\n  "members": {"<member_id>": {"topics": ["orders"], "joined_ms": 1700000000000, "client_id": "...",\n                            "session_timeout_ms": 10000}},\n  "target": {"<member_id>": [["orders", 0], ["orders", 2]]},\n  "owners": {"orders:0": "<member_id>"}}\n```\n\n`target` is the assignment computed at `generation`; `owners` is who holds each\npartition right now.  A member consumes (and commits) a partition only while it is its\nowner; a partition moves only after its owner released it (after `on_revoke`) or was\nremoved for missing heartbeats.  Commits check ownership inside the write transaction:\nthat is the generation fence.  `empty_ms` (only while the group has no members) is the wall\nclock ms when it was first stored empty: where `offsets_retention_ms` starts counting.\n\n'
TAIL = "\n\n- **One LMDB environment, many named databases**: a transaction spans topics,\n  partitions, committed offsets and group state, so producing records and committing\n  offsets is atomic (transactions, exactly-once), and multi-process writers are\n  serialised by LMDB's writer lock.\n- **Batches as values**, keyed by (topic id, partition, base offset): an append is one\n  `put`; a fetch is one cursor walk; retention deletes whole batches from the front.\n- **Leader epoch and commit sequence in every batch**, and the epoch history per\n  partition: what replication (KIP-101-style divergence detection) and atomic\n  replication of transactions need, present from the first version.\n- **Topic ids, never reused**: deleting and recreating a topic cannot resurrect old\n  records or committed offsets.\n"


def main() -> None:
    schema_doc = (ROOT / "src/embedlog/storage/schema.py").read_text().split('"""')[1]
    batch_doc = (ROOT / "src/embedlog/codec/batch.py").read_text().split('"""')[1]
    mirrors_doc = (ROOT / "src/embedlog/storage/mirrors.py").read_text().split('"""')[1]
    text = (HEAD + "## Key schema\n" + schema_doc + "### Group state (`groups` values)" + MID
            + "### Kafka bridge progress (`offsets` entries)\n\n" + mirrors_doc.strip() + "\n\n"
            + "## Record batch\n" + batch_doc + "## Why this shape" + TAIL)
    (ROOT / "docs/format.md").write_text(text)


if __name__ == "__main__":
    main()
