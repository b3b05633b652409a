"""Cluster metadata (``list_topics()``) of an embedded log, shaped like one Kafka broker's."""

from __future__ import annotations

from collections.abc import Iterable

import embedlog

from ..registry import Cluster, broker_address, cluster_id
from ._admin_types import BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata
from ._errors import ERR_UNKNOWN_TOPIC_OR_PART, kafka_error

__all__ = ["BROKER_ID", "broker_address", "build_metadata", "cluster_id"]

#: the id of the one "broker" (librdkafka's mock cluster numbers its brokers from 1 too)
BROKER_ID = 1


def build_metadata(cluster: Cluster, servers: object, topics: Iterable[str] | None = None) -> ClusterMetadata:
    """``ClusterMetadata`` of every topic (``topics=None``) or of the given ones (missing ones
    carry ``UNKNOWN_TOPIC_OR_PART``)."""
    log = cluster.log
    host, port = broker_address(servers)
    md = ClusterMetadata()
    md.cluster_id = cluster_id(log)
    md.controller_id = BROKER_ID
    md.orig_broker_id = BROKER_ID
    md.orig_broker_name = f"{host}:{port}/{BROKER_ID}"
    broker = BrokerMetadata()
    broker.id, broker.host, broker.port = BROKER_ID, host, port
    md.brokers = {BROKER_ID: broker}
    existing = log.topics()
    wanted = existing if topics is None else list(dict.fromkeys(topics))
    for name in wanted:
        tm = TopicMetadata()
        tm.topic = name
        if name not in existing:
            tm.error = kafka_error(ERR_UNKNOWN_TOPIC_OR_PART)
            md.topics[name] = tm
            continue
        try:
            n = len(log.describe_topic(name).partitions)
        except embedlog.errors.UnknownTopicError:  # deleted meanwhile
            tm.error = kafka_error(ERR_UNKNOWN_TOPIC_OR_PART)
            md.topics[name] = tm
            continue
        for p in range(n):
            pm = PartitionMetadata()
            pm.id, pm.leader, pm.replicas, pm.isrs = p, BROKER_ID, [BROKER_ID], [BROKER_ID]
            tm.partitions[p] = pm
        md.topics[name] = tm
    return md
