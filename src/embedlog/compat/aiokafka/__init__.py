"""A drop-in for aiokafka (``import aiokafka``) over an embedded log.

>>> import asyncio
>>> from embedlog.compat.aiokafka import AIOKafkaProducer, AIOKafkaConsumer
>>> async def main() -> list[bytes]:
...     async with AIOKafkaProducer(bootstrap_servers="aiodoc:9092") as p:
...         await p.send_and_wait("greetings", b"hello")
...     async with AIOKafkaConsumer("greetings", bootstrap_servers="aiodoc:9092",
...                                 auto_offset_reset="earliest") as c:
...         return [(await c.getone()).value]
>>> asyncio.run(main())
[b'hello']

Clients find their log through ``embedlog.compat.registry`` (same ``bootstrap_servers``:
same in-process log; ``embedlog_path=...`` names a directory).  No call blocks the
event loop for long: waits happen in a worker thread.  The producer has aiokafka's
transactions and ``create_batch``/``send_batch`` (see ``producer``);
``embedlog.compat.aiokafka.admin`` has ``AIOKafkaAdminClient``.
"""

from . import errors
from .consumer import AIOKafkaConsumer, ConsumerRebalanceListener
from .errors import ConsumerStoppedError, IllegalOperation
from .producer import AIOKafkaProducer
from .structs import ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp, RecordMetadata, TopicPartition

__all__ = [
    "AIOKafkaProducer",
    "AIOKafkaConsumer",
    "ConsumerRebalanceListener",
    "ConsumerStoppedError",
    "IllegalOperation",
    "ConsumerRecord",
    "TopicPartition",
    "OffsetAndTimestamp",
    "OffsetAndMetadata",
    "RecordMetadata",
    "errors",
]
