"""Change data capture: a SQLite table streamed into a compacted topic and rebuilt as a replica.

Shows: triggers on a source table writing every insert, update and delete to a
``changes`` table (an outbox); a relay publishing those changes to a compacted topic,
keyed by primary key, with a tombstone (``value=None``) for each delete, and removing them
from the outbox only once ``flush()`` made them durable; a consumer group applying the topic
to a replica table; compaction (``log.maintain()``) keeping only the latest record per key;
and a second replica rebuilt from scratch out of the compacted topic.  Both replicas equal
the source.

Run it with ``python examples/cdc_sqlite.py [LOG_DIR]`` (default: a temporary log).
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import tempfile
from pathlib import Path

import embedlog

TOPIC, GROUP = "db.shop.customers", "replica-builder"
TABLE = "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, tier TEXT NOT NULL)"
ROW = "json_object('id', NEW.id, 'name', NEW.name, 'email', NEW.email, 'tier', NEW.tier)"
CAPTURE = f"""
CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, id INTEGER NOT NULL, row TEXT);
CREATE TRIGGER customers_c AFTER INSERT ON customers BEGIN
    INSERT INTO changes (op, id, row) VALUES ('c', NEW.id, {ROW});
END;
CREATE TRIGGER customers_u AFTER UPDATE ON customers BEGIN
    INSERT INTO changes (op, id, row) SELECT 'd', OLD.id, NULL WHERE OLD.id != NEW.id;
    INSERT INTO changes (op, id, row) VALUES ('u', NEW.id, {ROW});
END;
CREATE TRIGGER customers_d AFTER DELETE ON customers BEGIN
    INSERT INTO changes (op, id, row) VALUES ('d', OLD.id, NULL);
END;
"""
TIERS = ("free", "pro", "enterprise")


def relay(db: sqlite3.Connection, producer: embedlog.Producer) -> int:
    """Publish the outbox to the topic; delete what is durable; return how many changes."""
    rows = db.execute("SELECT seq, op, id, row FROM changes ORDER BY seq").fetchall()
    for seq, op, pk, row in rows:
        producer.send(TOPIC, None if op == "d" else row.encode(), key=str(pk).encode(),
                      headers=[("op", op.encode()), ("seq", str(seq).encode())])
    producer.flush()  # durable; a crash before the DELETE below republishes, and upserts are idempotent
    if rows:
        with db:
            db.execute("DELETE FROM changes WHERE seq <= ?", (rows[-1][0],))
    return len(rows)


def apply(consumer: embedlog.Consumer, replica: sqlite3.Connection) -> tuple[int, int]:
    """Apply every available change to ``replica``; return (records, tombstones)."""
    records = tombstones = 0
    while messages := consumer.poll(timeout=0.05):
        with replica:  # one SQLite transaction per batch, then the commit of its offsets
            for msg in messages:
                if msg.value is None:
                    replica.execute("DELETE FROM customers WHERE id = ?", (int(msg.key),))
                    tombstones += 1
                else:
                    row = json.loads(msg.value)
                    replica.execute("INSERT OR REPLACE INTO customers VALUES (:id, :name, :email, :tier)", row)
        if consumer.group is not None:
            consumer.commit()
        records += len(messages)
    return records, tombstones


def rows(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    return db.execute("SELECT * FROM customers ORDER BY id").fetchall()


def workload(rng: random.Random) -> list[tuple[str, str, list[tuple[object, ...]]]]:
    """Phases of application writes: (description, SQL, parameters of each statement)."""
    ids = list(range(1, 61))
    deleted = rng.sample(ids, 9)
    renumbered = next(i for i in ids if i not in deleted)
    return [
        ("insert 60 customers", "INSERT INTO customers VALUES (?, ?, ?, ?)",
         [(i, f"customer {i}", f"c{i}@example.com", "free") for i in ids]),
        ("upgrade 40 tiers", "UPDATE customers SET tier = ? WHERE id = ?",
         [(rng.choice(TIERS[1:]), rng.choice(ids)) for _ in range(40)]),
        ("change 25 emails", "UPDATE customers SET email = ? WHERE id = ?",
         [(f"new{n}@example.com", rng.choice(ids)) for n in range(25)]),
        ("delete 9 customers", "DELETE FROM customers WHERE id = ?", [(i,) for i in deleted]),
        (f"renumber customer {renumbered} -> 100", "UPDATE customers SET id = 100 WHERE id = ?", [(renumbered,)]),
    ]


def main(path: str | None) -> int:
    rng = random.Random(11)
    with embedlog.open(path) as log, tempfile.TemporaryDirectory() as tmp:
        if TOPIC in log.topics():  # a LOG_DIR of a previous run: start over
            log.delete_topic(TOPIC)
        if GROUP in log.groups():
            log.delete_group(GROUP)
        log.create_topic(TOPIC, partitions=2, config={"cleanup.policy": "compact", "min.compaction.lag.ms": 0,
                                                      "delete.retention.ms": 3_600_000})
        source, replica = sqlite3.connect(Path(tmp) / "source.db"), sqlite3.connect(Path(tmp) / "replica.db")
        source.executescript(TABLE + ";" + CAPTURE)
        replica.execute(TABLE)

        ok = True
        with log.producer() as producer, log.consumer([TOPIC], group=GROUP, auto_offset_reset="earliest",
                                                      enable_auto_commit=False) as consumer:
            for what, sql, params in workload(rng):
                with source:
                    source.executemany(sql, params)
                published = relay(source, producer)
                applied, deletes = apply(consumer, replica)
                same = rows(replica) == rows(source)
                ok = ok and same
                print(f"{what:28} -> {published:3} changes published, {applied:3} applied "
                      f"({deletes} deletes); replica equals source: {same}")
        desc = log.describe_group(GROUP)
        print(f"group {GROUP}: lag {desc.total_lag}; source has {len(rows(source))} rows")

        before = log.describe_topic(TOPIC).bytes
        removed = log.maintain()["records_compacted"]
        print(f"compaction removed {removed} superseded records: {before} -> {log.describe_topic(TOPIC).bytes} bytes")

        fresh = sqlite3.connect(":memory:")
        fresh.execute(TABLE)
        with log.consumer([TOPIC], auto_offset_reset="earliest") as bootstrap:  # no group: read it all
            records, tombstones = apply(bootstrap, fresh)
        same = rows(fresh) == rows(source)
        print(f"new replica from the compacted topic: {records} records ({tombstones} tombstones); "
              f"equals source: {same}")
        ok = ok and same and removed > 0
        print(f"replica equals source: {ok}")
        for db in (source, replica, fresh):
            db.close()
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
