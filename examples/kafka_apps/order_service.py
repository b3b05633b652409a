"""An order service written against confluent-kafka only.

It consumes orders (JSON) from ``orders``, prices them, and writes an invoice to
``invoices`` (keyed by customer, so one customer's invoices stay in order) or the order
with a reason to ``orders.rejected``.  Offsets are committed after the batch's outputs
are delivered: a crash replays at most the current batch (at-least-once).
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

ORDERS = "orders"
INVOICES = "invoices"
REJECTED = "orders.rejected"
PRICES = {"apple": 50, "pear": 70, "plum": 30}  # cents


def place_order(producer: Producer, order: dict[str, Any]) -> None:
    """What the web front end does: publish an order, keyed by customer."""
    producer.produce(ORDERS, json.dumps(order).encode(), key=order["customer"].encode())


def price(order: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(topic, payload) for one order."""
    lines = order.get("lines") or []
    if not lines:
        return REJECTED, {**order, "reason": "no lines"}
    total = 0
    for line in lines:
        if line.get("sku") not in PRICES:
            return REJECTED, {**order, "reason": f"unknown sku {line.get('sku')!r}"}
        if int(line.get("qty", 0)) <= 0:
            return REJECTED, {**order, "reason": "quantity must be positive"}
        total += PRICES[line["sku"]] * int(line["qty"])
    return INVOICES, {"order_id": order["order_id"], "customer": order["customer"], "total_cents": total}


class OrderService:
    """Consume ``orders`` in batches; produce invoices or rejections; commit after delivery."""

    def __init__(self, bootstrap_servers: str, group_id: str = "order-service") -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap_servers, "client.id": "order-service",
                                  "linger.ms": 5})
        self.consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id,
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.consumer.subscribe([ORDERS])
        self.failed: list[KafkaError] = []

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failed.append(err)

    def run_once(self, max_messages: int = 100, timeout: float = 1.0) -> int:
        """Process one batch; return how many orders it held."""
        msgs = self.consumer.consume(num_messages=max_messages, timeout=timeout)
        handled = 0
        for msg in msgs:
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            topic, payload = price(json.loads(msg.value()))
            self.producer.produce(topic, json.dumps(payload).encode(), key=msg.key(), on_delivery=self._delivered)
            handled += 1
        if handled:
            self.producer.flush(30)
            if self.failed:
                raise KafkaException(self.failed[0])
            self.consumer.commit(asynchronous=False)
        return handled

    def close(self) -> None:
        self.producer.flush(30)
        self.consumer.close()
