"""The Kafka side of the bridge: confluent-kafka clients built from the user's config,
and what librdkafka's errors mean for a mirror.

confluent-kafka (librdkafka) is imported here only, lazily, so ``import embedlog`` and
``import embedlog.bridge`` work without it; building a ``Mirror`` without it raises
``ConfigError`` saying how to install it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from ..errors import AuthenticationError, BridgeError, ConfigError, EmbedlogError

__all__ = ["KAFKA_LOGGER", "SOURCE_HEADER", "LinkState", "client_config", "confluent", "fatal_error", "is_link_error",
           "metadata", "serve_callbacks"]

#: header carried by every record a mirror sends up: ``<mirror>:<partition>:<offset>`` of
#: the record in embedlog; how a restarted bridge finds what Kafka already holds
SOURCE_HEADER = "embedlog.source"

# librdkafka error codes (rdkafka.h) the bridge tells apart
_LINK_CODES = {-195, -187, -185, -193, -192}  # _TRANSPORT, _ALL_BROKERS_DOWN, _TIMED_OUT, _RESOLVE, _MSG_TIMED_OUT
_ALL_BROKERS_DOWN = -187
_AUTH_CODES = {-169, 58, 29, 30, 31}  # _AUTHENTICATION, SASL_AUTHENTICATION_FAILED, *_AUTHORIZATION_FAILED
_TOO_LARGE = {10, -186}  # MSG_SIZE_TOO_LARGE, _INVALID_ARG (value too large for message.max.bytes)

_LIBRDKAFKA_2_4 = 0x020400FF  # rd_kafka_version() of 2.4.0, which added fetch.queue.backoff.ms

#: keys whose value the bridge decides; a user value that contradicts it is refused
_FORCED_PRODUCER = {"enable.idempotence": True, "acks": "all"}

#: where librdkafka's log lines go (its own default prints them to stderr, dozens of
#: "Connection refused" lines a minute while the link is down); silent unless the
#: application configures logging.  A ``logger`` in the user's config replaces it.
KAFKA_LOGGER = logging.getLogger("embedlog.bridge.kafka")
KAFKA_LOGGER.addHandler(logging.NullHandler())


def confluent() -> ModuleType:
    """The ``confluent_kafka`` module, or ``ConfigError`` saying how to install it."""
    try:
        import confluent_kafka  # noqa: PLC0415 - optional dependency, imported on first use
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("the Kafka bridge needs confluent-kafka: pip install 'embedlog[bridge]'") from exc
    return confluent_kafka


def client_config(user: Mapping[str, Any], kind: str, name: str,
                  on_error: Callable[[Any], None]) -> dict[str, Any]:
    """librdkafka config for one of the bridge's clients (``producer``, ``consumer`` or
    ``admin``): the user's keys, plus what exactly-once mirroring requires."""
    if not isinstance(user, Mapping) or not user.get("bootstrap.servers"):
        raise ConfigError("the bridge's Kafka config needs 'bootstrap.servers' (host:port of the cluster)")
    conf = {str(k): v for k, v in user.items()}
    for key in ("group.id", "transactional.id", "on_delivery", "error_cb"):
        if key in conf:
            raise ConfigError(f"the bridge sets {key!r} itself; remove it from the Kafka config")
    conf["error_cb"] = on_error
    conf.setdefault("logger", KAFKA_LOGGER)  # (served by the clients' poll(), like error_cb)
    conf.setdefault("client.id", f"embedlog-bridge-{name}")
    if kind == "producer":
        for key, value in _FORCED_PRODUCER.items():
            if key in conf and str(conf[key]).lower() not in (str(value).lower(), "-1" if key == "acks" else ""):
                raise ConfigError(f"the bridge needs {key}={value} to mirror without loss or duplicates; "
                                  f"remove {key}={conf[key]!r} from the Kafka config")
            conf[key] = value
        conf.setdefault("linger.ms", 5)
        # Retry forever while the link is down: records wait in librdkafka's queue (bounded,
        # so the bridge blocks) and in the log, never time out into a gap or a duplicate.
        conf["message.timeout.ms"] = 0
        conf["delivery.report.only.error"] = True
    elif kind == "consumer":
        conf["group.id"] = f"embedlog-bridge-{name}"
        conf["enable.auto.commit"] = False
        conf["enable.auto.offset.store"] = False
        conf.setdefault("isolation.level", "read_committed")
        conf.setdefault("auto.offset.reset", "earliest")
        conf["enable.partition.eof"] = False
        if confluent().libversion()[1] >= _LIBRDKAFKA_2_4:
            # librdkafka stops fetching for fetch.queue.backoff.ms (default 1000) whenever
            # its prefetch queue passes queued.min.messages (100,000): a bridge catching up
            # a backlog drains that in well under a second, then waited out the rest of it
            # (half its catch-up rate).  Memory stays bounded by the same queue limits.
            conf.setdefault("fetch.queue.backoff.ms", 20)
    return conf


def fatal_error(err: Any) -> EmbedlogError | None:
    """The typed error a librdkafka error means for the mirror, or ``None`` when it is
    transient (the link: keep retrying)."""
    code = err.code()
    if code in _AUTH_CODES:
        return AuthenticationError(f"Kafka refused the bridge's credentials or permissions: {err.str()}; "
                      "check security.protocol, sasl.* and the ACLs")
    if code in _TOO_LARGE:
        return BridgeError(f"Kafka refused a record: {err.str()}; raise the topic's max.message.bytes on the "
                           "cluster (and message.max.bytes in the bridge's config)")
    if getattr(err, "fatal", lambda: False)():
        return BridgeError(f"the Kafka client failed fatally: {err.str()}")
    return None


def is_link_error(err: Any) -> bool:
    """Whether a librdkafka error says the cluster is unreachable now."""
    return bool(err.code() in _LINK_CODES)


def metadata(client: Any, topic: str | None, timeout_s: float, stop: threading.Event | None) -> Any:
    """``client.list_topics(topic)``, retried in short attempts until ``timeout_s`` or
    ``stop``; ``LinkDownError`` if the cluster never answered, the typed error if it refused."""
    from ..errors import LinkDownError  # noqa: PLC0415

    ck = confluent()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.list_topics(topic, timeout=min(1.0, timeout_s))
        except ck.KafkaException as exc:
            serve_callbacks(client)  # error_cb: librdkafka's reason (e.g. "Connection refused") now
            err = exc.args[0]
            if not is_link_error(err):
                raise fatal_error(err) or BridgeError(f"Kafka refused a metadata request: {err.str()}") from exc
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                raise LinkDownError(f"cannot reach Kafka: {err.str()}") from exc


def serve_callbacks(client: Any) -> None:
    """Run the ``error_cb`` and ``logger`` callbacks librdkafka queued for ``client`` (only
    its ``poll()`` serves them; a consumer only while it has no assignment, where polling
    cannot take a record)."""
    ck = confluent()
    try:
        if isinstance(client, ck.Consumer) and client.assignment():
            return
        client.poll(0)
    except (ck.KafkaException, RuntimeError):  # closed, or an error event: error_cb saw it
        pass


class LinkState:
    """Whether the cluster answers, as seen by the bridge's clients (thread-safe)."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._on_change = on_change
        self._lock = threading.Lock()
        self.up = False
        self.last_error: str | None = None
        self.kafka_error: str | None = None  # librdkafka's last error_cb text since the link was last up
        self.fatal: EmbedlogError | None = None
        self.changed_at = time.monotonic()

    def on_error(self, err: Any) -> None:
        """librdkafka's ``error_cb``."""
        fatal = fatal_error(err)
        text = err.str()
        with self._lock:
            first = self.last_error is None
            # "1/1 brokers are down" follows the error that says why: keep that one
            if err.code() != _ALL_BROKERS_DOWN or self.kafka_error is None:
                self.last_error = self.kafka_error = text
            if fatal is not None:
                self.fatal = self.fatal or fatal
            changed = (fatal is not None or is_link_error(err)) and self._set(False)
        self._changed(changed or first)

    def ok(self) -> None:
        """The cluster answered."""
        with self._lock:
            changed = self._set(True)
            self.kafka_error = None
        self._changed(changed)

    def down(self, reason: str) -> None:
        """The cluster did not answer in time (with librdkafka's last error, when it said
        more than ``reason``)."""
        with self._lock:
            detail = self.kafka_error
            self.last_error = reason if detail is None or detail in reason else f"{reason} ({detail})"
            changed = self._set(False)
        self._changed(changed)

    def _set(self, up: bool) -> bool:
        if up == self.up:
            return False
        self.up = up
        self.changed_at = time.monotonic()
        return True

    def _changed(self, changed: bool) -> None:
        if changed and self._on_change is not None:
            self._on_change()  # e.g. rewrite the status file other processes read
