"""Order processing across microservices, exactly once, with transactions.

Shows: an order service; inventory, payment (two workers sharing one group's partitions)
and notification services, each its own consumer group, chained by topics.  Each service
does consume-transform-produce in ``log.transaction()``: its output records and its input
offsets commit together, so when a payment worker crashes mid-transaction nothing of it is
written and its records are processed again, once.  Stock levels go to a compacted topic in
the same transactions.  At the end every topic is read back to check it.

Run it with ``python examples/order_processing.py [LOG_DIR]`` (default: a temporary log).
"""

from __future__ import annotations

import collections
import json
import random
import sys
import threading
import time
from collections.abc import Callable

import embedlog
from embedlog import TopicPartition

ORDERS, STOCK, PAYMENTS, NOTIFICATIONS, LEVELS = "orders", "stock", "payments", "notifications", "inventory-levels"
GROUPS = ("inventory", "payment", "notification")
N_ORDERS, CARD_LIMIT = 40, 60
INITIAL_STOCK = {"mug": 40, "tee": 30, "cap": 20, "hoodie": 8}
PRICES = {"mug": 12, "tee": 25, "cap": 18, "hoodie": 55}
Output = tuple[str, bytes, bytes]  # topic, key, value
Transform = Callable[[embedlog.Message], list[Output]]


class SimulatedCrash(Exception):
    """The process died here."""


def caught_up(log: embedlog.Log, group: str, topics: list[str]) -> bool:
    """Whether ``group`` has committed everything there is to read in ``topics``."""
    return all(o.end_offset == (o.committed or 0) for o in log.describe_group(group).offsets if o.topic in topics)


def service(log: embedlog.Log, name: str, group: str, topics: list[str], transform: Transform,
            upstream_done: threading.Event, crash_at: int | None, processed: collections.Counter[str]) -> None:
    """A microservice instance: poll, transform, and commit outputs with input offsets in one transaction."""
    def join() -> embedlog.Consumer:
        return log.consumer(topics, group=group, client_id=name, auto_offset_reset="earliest",
                            enable_auto_commit=False)

    consumer, seen = join(), 0
    try:
        while True:
            finished = upstream_done.is_set()
            messages = consumer.poll(timeout=0.1)
            if not messages:
                if finished and caught_up(log, group, topics):
                    return
                continue
            try:
                with log.transaction() as tx:
                    for msg in messages:
                        for topic, key, value in transform(msg):
                            tx.send(topic, value, key=key)
                        seen += 1
                        if seen == crash_at:
                            raise SimulatedCrash
                    tx.commit_offsets(consumer, {TopicPartition(m.topic, m.partition): m.offset + 1 for m in messages})
                processed[name] += len(messages)
            except SimulatedCrash:
                print(f"  {name}: crashed mid-transaction; nothing of that transaction was written")
                consumer.close()  # the process is gone; the group rebalances its partitions
                consumer, crash_at = join(), None
                print(f"  {name}: restarted, resuming from the group's committed offsets")
    finally:
        consumer.close()


def inventory(stock: dict[str, int]) -> Transform:
    def transform(msg: embedlog.Message) -> list[Output]:
        order = json.loads(msg.value)
        sku, qty = order["sku"], order["qty"]
        reserved = stock[sku] >= qty
        if not reserved:
            return [(STOCK, msg.key, json.dumps({**order, "status": "out_of_stock"}).encode())]
        stock[sku] -= qty  # also written to a compacted topic in the same transaction: a restart reloads it
        return [(STOCK, msg.key, json.dumps({**order, "status": "reserved"}).encode()),
                (LEVELS, sku.encode(), str(stock[sku]).encode())]
    return transform


def payment(msg: embedlog.Message) -> list[Output]:
    event = json.loads(msg.value)
    if event["status"] != "reserved":
        return []
    status = "paid" if event["amount"] <= CARD_LIMIT else "declined"
    return [(PAYMENTS, msg.key, json.dumps({**event, "status": status}).encode())]


def notification(msg: embedlog.Message) -> list[Output]:
    event = json.loads(msg.value)
    if event["status"] == "reserved":  # the payment outcome will follow
        return []
    text = {"out_of_stock": "sorry, {sku} is out of stock", "paid": "receipt: {qty} x {sku}, {amount} EUR",
            "declined": "your card was declined for {amount} EUR"}[event["status"]].format(**event)
    return [(NOTIFICATIONS, msg.key, json.dumps({"order": event["order"], "to": event["customer"],
                                                 "status": event["status"], "text": text}).encode())]


def read_all(log: embedlog.Log, topic: str) -> list[embedlog.Message]:
    with log.consumer([topic], auto_offset_reset="earliest") as consumer:
        out: list[embedlog.Message] = []
        while batch := consumer.poll(timeout=0.05):
            out += batch
        return out


def main(path: str | None) -> int:
    rng = random.Random(3)
    with embedlog.open(path) as log:
        for topic in {ORDERS, STOCK, PAYMENTS, NOTIFICATIONS, LEVELS} & set(log.topics()):  # a previous run's
            log.delete_topic(topic)
        for group in set(GROUPS) & set(log.groups()):
            log.delete_group(group)
        for topic in (ORDERS, STOCK, PAYMENTS, NOTIFICATIONS):
            log.create_topic(topic, partitions=3, config={"retention.ms": 7 * 24 * 3600 * 1000})
        log.create_topic(LEVELS, partitions=1, config={"cleanup.policy": "compact", "min.compaction.lag.ms": 0})

        stages = [threading.Event() for _ in GROUPS]
        orders_done, processed = threading.Event(), collections.Counter[str]()
        stock = dict(INITIAL_STOCK)
        plan: list[list[tuple[object, ...]]] = [  # stage -> instances: name, group, inputs, transform, ...
            [("inventory-1", "inventory", [ORDERS], inventory(stock), orders_done, None)],
            [(f"payment-{i}", "payment", [STOCK], payment, stages[0], 3 if i == 1 else None) for i in (1, 2)],
            [("notification-1", "notification", [STOCK, PAYMENTS], notification, stages[1], None)]]
        workers = [[threading.Thread(target=service, args=(log, *spec, processed)) for spec in stage] for stage in plan]
        for thread in (t for stage in workers for t in stage):
            thread.start()
        with log.producer() as producer:  # the order service
            for i in range(N_ORDERS):
                sku = rng.choice(list(PRICES))
                qty = rng.randint(1, 3)
                order_id = f"o-{i:03d}"
                order = {"order": order_id, "customer": f"c{rng.randrange(10)}@example.com",
                         "sku": sku, "qty": qty, "amount": qty * PRICES[sku]}
                producer.send(ORDERS, json.dumps(order).encode(), key=order_id.encode())
                time.sleep(0.01)
        orders_done.set()
        for stage, done in zip(workers, stages):  # each stage ends when its upstream has ended
            for thread in stage:
                thread.join()
            done.set()

        print(f"order service: {N_ORDERS} orders placed")
        print(f"processed (committed) per instance: {dict(sorted(processed.items()))}")
        records = {t: [json.loads(m.value) for m in read_all(log, t)] for t in (STOCK, PAYMENTS, NOTIFICATIONS)}
        per_topic = {t: collections.Counter(e["order"] for e in events) for t, events in records.items()}
        status = collections.Counter(e["status"] for t in (STOCK, PAYMENTS) for e in records[t])
        print(f"outcomes: {dict(sorted(status.items()))}")
        for email in records[NOTIFICATIONS][:3]:
            print(f"  email to {email['to']} about {email['order']}: {email['text']}")
        levels = {m.key.decode(): int(m.value) for m in read_all(log, LEVELS)}  # latest value per key
        print(f"inventory levels (compacted topic {LEVELS!r}): {levels}")
        for group in GROUPS:
            desc = log.describe_group(group)
            print(f"group {group}: {len(desc.members)} live members, lag {desc.total_lag}")

        orders = {f"o-{i:03d}" for i in range(N_ORDERS)}
        reserved = [e for e in records[STOCK] if e["status"] == "reserved"]
        duplicates = sum(n - 1 for c in per_topic.values() for n in c.values())
        once = (set(per_topic[STOCK]) == set(per_topic[NOTIFICATIONS]) == orders
                and set(per_topic[PAYMENTS]) == {e["order"] for e in reserved})
        levels_ok = all(levels.get(sku, n) == n - sum(e["qty"] for e in reserved if e["sku"] == sku)
                        for sku, n in INITIAL_STOCK.items())
        print(f"{len(orders)} orders, {duplicates} duplicates, inventory consistent: {levels_ok}")
        ok = once and duplicates == 0 and levels_ok
        print(f"every order processed exactly once: {ok}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
