"""Drop-in shims of Kafka client libraries, built on embedlog's public API only.

* ``embedlog.compat.confluent_kafka`` — confluent-kafka's ``Producer``, ``Consumer``,
  ``admin.AdminClient``...
* ``embedlog.compat.kafka_python`` — kafka-python's ``KafkaProducer``, ``KafkaConsumer``...
* ``embedlog.compat.aiokafka`` — aiokafka's ``AIOKafkaProducer``, ``AIOKafkaConsumer``,
  ``admin.AIOKafkaAdminClient``.

Clients find their log through ``embedlog.compat.registry`` (by ``bootstrap.servers``, or
``embedlog.path``).  Nothing here is imported by ``import embedlog``.
"""
