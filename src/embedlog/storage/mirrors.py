"""Where a Kafka bridge (``embedlog.bridge.Mirror``) keeps its progress in the log.

Both kinds live in the ``offsets`` database, so they are written atomically with records,
replicated to followers with the committed offsets, and removed with their topic:

- **up** (embedlog -> Kafka): an ordinary consumer group named after the mirror.  Its
  committed offset for a local partition is the next local offset not yet known to be in
  Kafka; the metadata is JSON ``{"mirror": "up", "remote": <remote topic>, "hw":
  {"<remote partition>": <end offset>}, "lost": <records retention deleted unforwarded>}``
  where ``hw`` are the remote partitions' end offsets when that progress was recorded:
  every record of the mirror at or after the committed offset is at or after them.
- **down** (Kafka -> embedlog): source offsets, under the reserved group name
  ``SOURCE_PREFIX + mirror`` (U+0001, which ``validate_group`` refuses, so no consumer
  group can collide and ``Log.groups()`` hides them).  Key: that group, the *local*
  topic id and the *remote* partition; value: ``COMMITTED`` with the next remote offset to
  read (leader epoch -1) and JSON metadata ``{"mirror": "down", "remote": <remote
  topic>, "end": <remote end offset last seen>}``.  They are written in the same write
  transaction as the records they describe.

A running bridge also reports its link state to ``<log>/mirrors/<name>.json`` (JSON
``MirrorLink`` fields, replaced atomically about once a second), so ``embedlog bridge
status`` and the metrics exporter in other processes show whether the link is up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import attrs
import lmdb

from . import partition as plog
from . import schema, topics
from .offsets_version import bump_offsets_version

__all__ = [
    "SOURCE_PREFIX",
    "MirrorEntry",
    "MirrorLink",
    "mirror_links",
    "write_link",
    "is_source_group",
    "forget",
    "is_sent_progress",
    "mirror_entries",
    "remove_link",
    "put_source_offsets",
    "source_offsets",
]

#: group names beginning with this character hold a down mirror's source offsets
SOURCE_PREFIX = "\x01"


def is_source_group(group: str) -> bool:
    """Whether ``group`` is a down mirror's reserved source-offset group."""
    return group.startswith(SOURCE_PREFIX)


@attrs.frozen
class MirrorEntry:
    """One partition's recorded progress of a mirror, as stored.

    ``partition`` is the local partition (up) or the remote partition (down); ``offset``
    is the next local offset to forward (up) or the next remote offset to read (down);
    ``end`` is the local end offset (up) or the remote end last seen (down).
    """

    mirror: str
    direction: str
    topic: str
    partition: int
    remote_topic: str
    offset: int
    end: int
    lost: int
    meta: Mapping[str, Any]

    @property
    def lag(self) -> int:
        """Records not yet mirrored (as far as the log knows)."""
        return max(0, self.end - self.offset)


def put_source_offsets(txn: lmdb.Transaction, dbs: Mapping[str, Any], mirror: str, topic: str,
                       remote_topic: str, offsets: Mapping[int, tuple[int, int]]) -> None:
    """Record a down mirror's next remote offsets ``{remote partition: (next, remote end)}``
    for local ``topic`` inside ``txn``."""
    meta = topics.require(txn, dbs, topic)
    group = SOURCE_PREFIX + mirror
    stamp = time.time_ns() // 1_000_000
    if offsets:
        bump_offsets_version(txn, dbs)
    for part, (offset, end) in offsets.items():
        value = schema.COMMITTED.pack(offset, -1, stamp) + json.dumps(
            {"mirror": "down", "remote": remote_topic, "end": end}, separators=(",", ":")).encode()
        txn.put(schema.committed_key(group, meta.topic_id, part), value, db=dbs["offsets"])


def source_offsets(txn: lmdb.Transaction, dbs: Mapping[str, Any], mirror: str, topic: str,
                   remote_topic: str | None = None) -> dict[int, int]:
    """A down mirror's next remote offset per remote partition for local ``topic``
    (copied from ``remote_topic``, when given)."""
    return {e.partition: e.offset for e in mirror_entries(txn, dbs, mirror, "down")
            if e.topic == topic and remote_topic in (None, e.remote_topic)}


def mirror_entries(txn: lmdb.Transaction, dbs: Mapping[str, Any], mirror: str | None = None,
                   direction: str | None = None) -> list[MirrorEntry]:
    """The recorded progress of every mirror in this log, or of ``mirror`` (in
    ``direction``, or both), in key order."""
    if mirror is None:
        with txn.cursor(db=dbs["offsets"]) as cur:
            found = (_entry(txn, dbs, bytes(k), bytes(v)) for k, v in cur)
            return [e for e in found if e is not None and direction in (None, e.direction)]
    out: list[MirrorEntry] = []
    for kind, key, value in _stored(txn, dbs, mirror, direction):
        entry = _entry(txn, dbs, key, value)
        if entry is not None and entry.direction == kind:
            out.append(entry)
    return out


def _stored(txn: lmdb.Transaction, dbs: Mapping[str, Any], mirror: str,
            direction: str | None) -> list[tuple[str, bytes, bytes]]:
    """``(direction, key, value)`` of every ``offsets`` entry in the groups that hold
    ``mirror``'s progress (in ``direction``, or both), in key order."""
    out = []
    for kind, group in (("down", SOURCE_PREFIX + mirror), ("up", mirror)):  # (in key order)
        if direction not in (None, kind):
            continue
        prefix = group.encode() + b"\x00"
        with txn.cursor(db=dbs["offsets"]) as cur:
            if not cur.set_range(prefix):
                continue
            for raw_key, raw_value in cur:
                key = bytes(raw_key)
                if not key.startswith(prefix):
                    break
                out.append((kind, key, bytes(raw_value)))
    return out


def _progress_meta(value: bytes) -> dict[str, Any] | None:
    """The metadata of an ``offsets`` value that holds a Kafka bridge's progress (JSON
    saying ``"mirror": "up"`` or ``"down"``), or ``None`` (an ordinary committed offset)."""
    return _parsed_progress(value[schema.COMMITTED.size:])


def _parsed_progress(metadata: bytes | str) -> dict[str, Any] | None:
    try:
        meta = json.loads(metadata or b"{}")
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and meta.get("mirror") in ("up", "down") else None


def is_progress_metadata(metadata: str | None) -> bool:
    """Whether a committed offset's metadata is a Kafka bridge's progress."""
    return metadata is not None and '"mirror"' in metadata and _parsed_progress(metadata) is not None


def is_progress(value: bytes) -> bool:
    """Whether an ``offsets`` value is a Kafka bridge's progress, not an ordinary
    committed offset (most are not JSON at all: those are told apart without parsing)."""
    return b'"mirror"' in value[schema.COMMITTED.size:] and _progress_meta(value) is not None


def is_sent_progress(value: bytes) -> bool:
    """Whether an ``offsets`` value is a Kafka bridge's progress past where it starts
    (not the placeholder of a mirror that never reached Kafka: ``"pending"``)."""
    meta = _progress_meta(value) if b'"mirror"' in value[schema.COMMITTED.size:] else None
    return meta is not None and not meta.get("pending")


def forget(txn: lmdb.Transaction, dbs: Mapping[str, Any], mirror: str, direction: str | None = None) -> int:
    """Delete the recorded progress of ``mirror`` (in ``direction``, or both) inside
    ``txn``: an up mirror's progress entries in the group named after it, a down
    mirror's source offsets.  Return how many entries went."""
    doomed = [key for kind, key, value in _stored(txn, dbs, mirror, direction)
              if kind == "down" or is_progress(value)]
    for key in doomed:
        txn.delete(key, db=dbs["offsets"])
    if doomed:
        bump_offsets_version(txn, dbs)
    return len(doomed)


def _entry(txn: lmdb.Transaction, dbs: Mapping[str, Any], key: bytes, value: bytes) -> MirrorEntry | None:
    """The mirror progress an ``offsets`` entry holds, or ``None`` (a consumer group's)."""
    if len(key) < 9 or key[-9] != 0:
        return None
    group, tid, part = schema.unpack_committed_key(key)
    offset = int(schema.COMMITTED.unpack_from(value, 0)[0])
    meta = _progress_meta(value)
    if meta is None:
        return None
    tmeta = topics.get_by_id(txn, dbs, tid)
    if tmeta is None:
        return None
    if meta["mirror"] == "up":
        st = plog.load_state(txn, dbs, tid, part)
        end = st.end_offset if st is not None else offset
        mirror = group
    else:
        end = int(meta.get("end", offset))
        mirror = group[len(SOURCE_PREFIX):]
    return MirrorEntry(mirror, meta["mirror"], tmeta.name, part, str(meta.get("remote", tmeta.name)),
                       offset, end, int(meta.get("lost", 0)), meta)


@attrs.frozen
class MirrorLink:
    """A bridge's link state as it last reported it (``updated_ms``: when)."""

    mirror: str
    direction: str
    link_up: bool
    pid: int
    updated_ms: int
    last_error: str | None = None
    running: bool = True
    """``False`` once the bridge stopped cleanly (a killed bridge leaves ``True``; look at
    ``updated_ms`` to tell: ``alive``)."""

    def alive(self, now_ms: int) -> bool:
        """Whether the bridge runs: it said so less than ``LINK_STALE_MS`` ago (a running
        one reports every few seconds; a killed one stops reporting)."""
        return self.running and now_ms - self.updated_ms < LINK_STALE_MS


#: a link report older than this is a bridge that stopped without saying so (killed)
LINK_STALE_MS = 10_000


def _links_dir(log_path: str) -> str:
    return os.path.join(log_path, "mirrors")


def file_stem(mirror: str) -> str:
    """The stem of ``mirror``'s files in ``<log>/mirrors/`` (its status, its run lock): its
    name in hex, or a digest of it where that would be too long a file name (the name
    itself is in the status file)."""
    raw = mirror.encode("utf-8", "surrogatepass")
    # (up to 121 bytes as before: the longest whose files' hex names fit 255 bytes, and ran)
    return raw.hex() if len(raw) <= 121 else "~" + hashlib.sha1(raw).hexdigest()  # noqa: S324 - a name


def write_link(log_path: str, link: MirrorLink) -> None:
    """Replace ``link``'s status file atomically."""
    folder = _links_dir(log_path)
    os.makedirs(folder, exist_ok=True)
    safe = file_stem(link.mirror)
    tmp = os.path.join(folder, f".{safe}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(attrs.asdict(link), fh)
    os.replace(tmp, os.path.join(folder, f"{safe}.json"))


def remove_link(log_path: str, mirror: str) -> None:
    """Delete ``mirror``'s status file, if any."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(_links_dir(log_path), f"{file_stem(mirror)}.json"))


def mirror_links(log_path: str) -> list[MirrorLink]:
    """Every bridge status file of the log at ``log_path`` (sorted by name)."""
    folder = _links_dir(log_path)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                out.append(MirrorLink(**json.load(fh)))
        except (OSError, ValueError, TypeError):
            continue  # being replaced, or not ours
    return sorted(out, key=lambda link: link.mirror)
