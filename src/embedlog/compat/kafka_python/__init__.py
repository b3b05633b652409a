"""A drop-in for kafka-python (``import kafka``) over an embedded log.

>>> from embedlog.compat.kafka_python import KafkaProducer, KafkaConsumer
>>> p = KafkaProducer(bootstrap_servers="doc:9092")
>>> p.send("greetings", b"hello", key=b"k").get(timeout=10).offset
0
>>> c = KafkaConsumer("greetings", bootstrap_servers="doc:9092", auto_offset_reset="earliest",
...                   consumer_timeout_ms=1000)
>>> [r.value for r in c]
[b'hello']

Clients find their log through ``embedlog.compat.registry``: clients created with the
same ``bootstrap_servers`` share one in-process log; ``embedlog_path`` (or
``**{"embedlog.path": ...}``) names a log directory.  Topics are created on first use
unless auto-creation is off.  ``KafkaProducer(transactional_id=...)`` has kafka-python's
transactional API.  See the module docs of ``producer``, ``consumer`` and ``admin`` for
what matches kafka-python and what does not.
"""

from . import errors
from .admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from .consumer import AsyncConsumerRebalanceListener, ConsumerRebalanceListener, KafkaConsumer
from .producer import FutureRecordMetadata, KafkaProducer
from .structs import (
    ConsumerGroupMetadata,
    ConsumerRecord,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    RecordMetadata,
    TopicPartition,
)

__all__ = [
    "KafkaProducer",
    "KafkaConsumer",
    "KafkaAdminClient",
    "ConsumerRebalanceListener",
    "AsyncConsumerRebalanceListener",
    "FutureRecordMetadata",
    "NewTopic",
    "NewPartitions",
    "ConfigResource",
    "ConfigResourceType",
    "ConsumerRecord",
    "ConsumerGroupMetadata",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "RecordMetadata",
    "TopicPartition",
    "errors",
]
