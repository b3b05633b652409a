"""Pure codecs: the record batch format and Kafka's partition hash. No I/O, no clock."""
