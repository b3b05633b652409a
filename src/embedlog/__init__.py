"""embedlog: Kafka's model — topics, partitions, retention, consumer groups, committed
offsets — as an embedded library over LMDB.  No broker.

>>> import embedlog
>>> with embedlog.open() as log:
...     _ = log.create_topic("orders", partitions=3)
...     with log.producer() as p:
...         p.send("orders", b"hello", key=b"user-1")
...         p.flush()
...     with log.consumer(["orders"], auto_offset_reset="earliest") as c:
...         [m.value for m in c.poll(timeout=1.0)]
[b'hello']
"""

from . import errors
from .consumer import Consumer, GroupMetadata
from .groups.offsets import OffsetAndMetadata
from .log import Log, open  # noqa: A004 - embedlog.open, like sqlite3.connect / gzip.open
from .model import (
    Message,
    OffsetAndTimestamp,
    PartitionDescription,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)
from .producer import Producer
from .transactions import Transaction

__all__ = [
    "Consumer",
    "GroupMetadata",
    "Log",
    "Message",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "PartitionDescription",
    "Producer",
    "RecordMetadata",
    "TopicDescription",
    "TopicPartition",
    "Transaction",
    "errors",
    "open",
]

__version__ = "0.1.0"
