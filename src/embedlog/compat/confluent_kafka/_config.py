"""confluent-kafka (librdkafka) configuration: which keys exist, which values are valid.

``PROPERTIES`` lists every property librdkafka 2.x accepts (global and topic-level; the
real client accepts topic-level keys in the client config too) with its type and
range, as in librdkafka's CONFIGURATION.md and checked against the real client.  A
config is validated as the real client does it: an unknown key raises
``KafkaException(_INVALID_ARG, 'No such configuration property: "key"')``, a bad value
``KafkaException(_INVALID_ARG, 'Invalid value ... for configuration property ...')``,
with the real client's messages.  Keys that only matter on the wire (``security.*``,
``sasl.*``, ``ssl.*``, timeouts, buffer sizes...) are accepted and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..registry import EMBEDLOG_KEYS
from ._errors import ERR_INVALID_ARG, kafka_exception

__all__ = ["PROPERTIES", "ClientConfig", "parse_config"]

#: name -> (kind, *args): ("int", lo, hi), ("float", lo, hi), ("bool",), ("enum", *values),
#: ("flags", *values), ("str",), ("partitioner",), ("callable",), ("any",), ("dict",), and
#: ("api",) for callbacks that librdkafka only takes through its C API.
PROPERTIES: dict[str, tuple[Any, ...]] = {
    'acks': ('int', -1, 1000),
    'allow.auto.create.topics': ('bool',),
    'api.version.fallback.ms': ('int', 0, 604800000),
    'api.version.request': ('bool',),
    'api.version.request.timeout.ms': ('int', 1, 300000),
    'auto.commit.enable': ('bool',),
    'auto.commit.interval.ms': ('int', 0, 86400000),
    'auto.offset.reset': ('enum', 'smallest', 'earliest', 'beginning', 'largest', 'latest', 'end', 'error'),
    'background_event_cb': ('api',),
    'batch.num.messages': ('int', 1, 1000000),
    'batch.size': ('int', 1, 2147483647),
    'bootstrap.servers': ('str',),
    'broker.address.family': ('enum', 'any', 'v4', 'v6'),
    'broker.address.ttl': ('int', 0, 86400000),
    'broker.version.fallback': ('str',),
    'builtin.features': (
        'flags', 'gzip', 'snappy', 'ssl', 'sasl', 'regex', 'lz4', 'sasl_gssapi', 'sasl_plain', 'sasl_scram',
        'plugins', 'zstd', 'sasl_oauthbearer', 'http', 'oidc',
    ),
    'check.crcs': ('bool',),
    'client.dns.lookup': ('enum', 'use_all_dns_ips', 'resolve_canonical_bootstrap_servers_only'),
    'client.id': ('str',),
    'client.rack': ('str',),
    'client.software.name': ('str',),
    'client.software.version': ('str',),
    'closesocket_cb': ('api',),
    'compression.codec': ('enum', 'none', 'gzip', 'snappy', 'lz4', 'zstd', 'inherit'),
    'compression.level': ('int', -1, 12),
    'compression.type': ('enum', 'none', 'gzip', 'snappy', 'lz4', 'zstd'),
    'connect_cb': ('api',),
    'connections.max.idle.ms': ('int', 0, 2147483647),
    'consume.callback.max.messages': ('int', 0, 1000000),
    'consume_cb': ('api',),
    'coordinator.query.interval.ms': ('int', 1, 3600000),
    'debug': (
        'flags', 'generic', 'broker', 'topic', 'metadata', 'feature', 'queue', 'msg', 'protocol', 'cgrp', 'security',
        'fetch', 'interceptor', 'plugin', 'consumer', 'admin', 'eos', 'mock', 'assignor', 'conf', 'telemetry', 'all',
    ),
    'default.topic.config': ('dict',),
    'default_topic_conf': ('api',),
    'delivery.report.only.error': ('bool',),
    'delivery.timeout.ms': ('int', 0, 2147483647),
    'dr_cb': ('api',),
    'dr_msg_cb': ('api',),
    'enable.auto.commit': ('bool',),
    'enable.auto.offset.store': ('bool',),
    'enable.gapless.guarantee': ('bool',),
    'enable.idempotence': ('bool',),
    'enable.metrics.push': ('bool',),
    'enable.partition.eof': ('bool',),
    'enable.random.seed': ('bool',),
    'enable.sasl.oauthbearer.unsecure.jwt': ('bool',),
    'enable.sparse.connections': ('bool',),
    'enable.ssl.certificate.verification': ('bool',),
    'enable_sasl_queue': ('bool',),
    'enabled_events': ('int', 0, 2147483647),
    'error_cb': ('callable',),
    'fetch.error.backoff.ms': ('int', 0, 300000),
    'fetch.max.bytes': ('int', 0, 2147483135),
    'fetch.message.max.bytes': ('int', 1, 1000000000),
    'fetch.min.bytes': ('int', 0, 2147483647),
    'fetch.queue.backoff.ms': ('int', 0, 300000),
    'fetch.wait.max.ms': ('int', 0, 300000),
    'group.id': ('str',),
    'group.instance.id': ('str',),
    'group.protocol': ('enum', 'classic', 'consumer'),
    'group.protocol.type': ('str',),
    'group.remote.assignor': ('str',),
    'heartbeat.interval.ms': ('int', 1, 3600000),
    'https.ca.location': ('str',),
    'https.ca.pem': ('str',),
    'interceptors': ('api',),
    'internal.termination.signal': ('int', 0, 128),
    'isolation.level': ('enum', 'read_uncommitted', 'read_committed'),
    'linger.ms': ('float', 0, 900000),
    'log.connection.close': ('bool',),
    'log.queue': ('bool',),
    'log.thread.name': ('bool',),
    'log_cb': ('api',),
    'log_level': ('int', 0, 7),
    'logger': ('any',),
    'max.in.flight': ('int', 1, 1000000),
    'max.in.flight.requests.per.connection': ('int', 1, 1000000),
    'max.partition.fetch.bytes': ('int', 1, 1000000000),
    'max.poll.interval.ms': ('int', 1, 86400000),
    'max.poll.records': ('int', 1, 2147483647),
    'message.copy.max.bytes': ('int', 0, 1000000000),
    'message.max.bytes': ('int', 1000, 1000000000),
    'message.send.max.retries': ('int', 0, 2147483647),
    'message.timeout.ms': ('int', 0, 2147483647),
    'metadata.broker.list': ('str',),
    'metadata.max.age.ms': ('int', 1, 86400000),
    'metadata.recovery.rebootstrap.trigger.ms': ('int', 0, 2147483647),
    'metadata.recovery.strategy': ('enum', 'none', 'rebootstrap'),
    'metadata.request.timeout.ms': ('int', 10, 900000),
    'msg_order_cmp': ('api',),
    'oauth_cb': ('callable',),
    'oauthbearer_token_refresh_cb': ('api',),
    'offset.store.method': ('enum', 'file', 'broker'),
    'offset.store.path': ('str',),
    'offset.store.sync.interval.ms': ('int', -1, 86400000),
    'offset_commit_cb': ('api',),
    'on_delivery': ('callable',),
    'opaque': ('api',),
    'open_cb': ('api',),
    'partition.assignment.strategy': ('str',),
    'partitioner': ('partitioner',),
    'partitioner_cb': ('api',),
    'plugin.library.paths': ('str',),
    'produce.offset.report': ('bool',),
    'queue.buffering.backpressure.threshold': ('int', 1, 1000000),
    'queue.buffering.max.kbytes': ('int', 1, 2147483647),
    'queue.buffering.max.messages': ('int', 0, 2147483647),
    'queue.buffering.max.ms': ('float', 0, 900000),
    'queued.max.messages.kbytes': ('int', 1, 2097151),
    'queued.min.messages': ('int', 1, 10000000),
    'queuing.strategy': ('enum', 'fifo', 'lifo'),
    'rebalance_cb': ('api',),
    'receive.message.max.bytes': ('int', 1000, 2147483647),
    'reconnect.backoff.jitter.ms': ('int', 0, 3600000),
    'reconnect.backoff.max.ms': ('int', 0, 3600000),
    'reconnect.backoff.ms': ('int', 0, 3600000),
    'request.required.acks': ('int', -1, 1000),
    'request.timeout.ms': ('int', 1, 900000),
    'resolve_cb': ('api',),
    'retries': ('int', 0, 2147483647),
    'retry.backoff.max.ms': ('int', 1, 300000),
    'retry.backoff.ms': ('int', 1, 300000),
    'sasl.jaas.config': ('str',),
    'sasl.kerberos.keytab': ('str',),
    'sasl.kerberos.kinit.cmd': ('str',),
    'sasl.kerberos.min.time.before.relogin': ('int', 0, 86400000),
    'sasl.kerberos.principal': ('str',),
    'sasl.kerberos.service.name': ('str',),
    'sasl.mechanism': ('str',),
    'sasl.mechanisms': ('str',),
    'sasl.oauthbearer.assertion.algorithm': ('enum', 'RS256', 'ES256'),
    'sasl.oauthbearer.assertion.claim.aud': ('str',),
    'sasl.oauthbearer.assertion.claim.exp.seconds': ('int', 1, 2147483647),
    'sasl.oauthbearer.assertion.claim.iss': ('str',),
    'sasl.oauthbearer.assertion.claim.jti.include': ('bool',),
    'sasl.oauthbearer.assertion.claim.nbf.seconds': ('int', 0, 2147483647),
    'sasl.oauthbearer.assertion.claim.sub': ('str',),
    'sasl.oauthbearer.assertion.file': ('str',),
    'sasl.oauthbearer.assertion.jwt.template.file': ('str',),
    'sasl.oauthbearer.assertion.private.key.file': ('str',),
    'sasl.oauthbearer.assertion.private.key.passphrase': ('str',),
    'sasl.oauthbearer.assertion.private.key.pem': ('str',),
    'sasl.oauthbearer.client.credentials.client.id': ('str',),
    'sasl.oauthbearer.client.credentials.client.secret': ('str',),
    'sasl.oauthbearer.client.id': ('str',),
    'sasl.oauthbearer.client.secret': ('str',),
    'sasl.oauthbearer.config': ('str',),
    'sasl.oauthbearer.extensions': ('str',),
    'sasl.oauthbearer.grant.type': ('enum', 'client_credentials', 'urn:ietf:params:oauth:grant-type:jwt-bearer'),
    'sasl.oauthbearer.metadata.authentication.type': ('enum', 'none', 'azure_imds', 'aws_iam'),
    'sasl.oauthbearer.method': ('enum', 'default', 'oidc'),
    'sasl.oauthbearer.scope': ('str',),
    'sasl.oauthbearer.sub.claim.name': ('str',),
    'sasl.oauthbearer.token.endpoint.url': ('str',),
    'sasl.password': ('str',),
    'sasl.username': ('str',),
    'security.protocol': ('enum', 'plaintext', 'ssl', 'sasl_plaintext', 'sasl_ssl'),
    'session.timeout.ms': ('int', 1, 3600000),
    'share.acknowledgement.mode': ('str',),
    'socket.blocking.max.ms': ('int', 1, 60000),
    'socket.connection.setup.timeout.ms': ('int', 1000, 2147483647),
    'socket.keepalive.enable': ('bool',),
    'socket.max.fails': ('int', 0, 1000000),
    'socket.nagle.disable': ('bool',),
    'socket.receive.buffer.bytes': ('int', 0, 100000000),
    'socket.send.buffer.bytes': ('int', 0, 100000000),
    'socket.timeout.ms': ('int', 10, 300000),
    'socket_cb': ('api',),
    'ssl.ca.certificate.stores': ('str',),
    'ssl.ca.location': ('str',),
    'ssl.ca.pem': ('str',),
    'ssl.certificate.location': ('str',),
    'ssl.certificate.pem': ('str',),
    'ssl.certificate.verify_cb': ('api',),
    'ssl.cipher.suites': ('str',),
    'ssl.crl.location': ('str',),
    'ssl.curves.list': ('str',),
    'ssl.endpoint.identification.algorithm': ('enum', 'none', 'https'),
    'ssl.engine.id': ('str',),
    'ssl.engine.location': ('str',),
    'ssl.key.location': ('str',),
    'ssl.key.password': ('str',),
    'ssl.key.pem': ('str',),
    'ssl.keystore.location': ('str',),
    'ssl.keystore.password': ('str',),
    'ssl.providers': ('str',),
    'ssl.sigalgs.list': ('str',),
    'ssl.truststore.location': ('str',),
    'ssl_ca': ('api',),
    'ssl_certificate': ('api',),
    'ssl_engine_callback_data': ('api',),
    'ssl_key': ('api',),
    'statistics.interval.ms': ('int', 0, 86400000),
    'stats_cb': ('callable',),
    'sticky.partitioning.linger.ms': ('int', 0, 900000),
    'test.mock.broker.rtt': ('int', 0, 3600000),
    'test.mock.num.brokers': ('int', 0, 10000),
    'throttle_cb': ('callable',),
    'topic.blacklist': ('str',),
    'topic.metadata.propagation.max.ms': ('int', 0, 3600000),
    'topic.metadata.refresh.fast.cnt': ('int', 0, 1000),
    'topic.metadata.refresh.fast.interval.ms': ('int', 1, 60000),
    'topic.metadata.refresh.interval.ms': ('int', -1, 3600000),
    'topic.metadata.refresh.sparse': ('bool',),
    'transaction.timeout.ms': ('int', 1000, 2147483647),
    'transactional.id': ('str',),
}

#: ranges librdkafka checks only when a consumer is created (the property itself takes a wider range)
_CONSUMER_RANGES = {"fetch.min.bytes": (1, 100_000_000)}

#: librdkafka names an alias by its canonical property in error messages
_ALIASES = {
    "acks": "request.required.acks", "bootstrap.servers": "metadata.broker.list",
    "compression.type": "compression.codec", "delivery.timeout.ms": "message.timeout.ms",
    "linger.ms": "queue.buffering.max.ms", "max.in.flight": "max.in.flight.requests.per.connection",
    "max.partition.fetch.bytes": "fetch.message.max.bytes", "retries": "message.send.max.retries",
    "sasl.mechanism": "sasl.mechanisms",
    "sasl.oauthbearer.client.credentials.client.id": "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.credentials.client.secret": "sasl.oauthbearer.client.secret",
    "enable.auto.commit": "enable.auto.commit", "auto.commit.enable": "enable.auto.commit",
}
#: Python-level callbacks of one client type only
_CLIENT_ONLY = {"on_delivery": "producer", "on_commit": "consumer"}
_PARTITIONERS = ("random", "consistent", "consistent_random", "murmur2", "murmur2_random", "fnv1a",
                 "fnv1a_random")
_INT = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_FLOAT = re.compile(r"\s*[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
_KIND_WORD = {"int": "Integer", "float": "Float", "bool": "Bool"}
_ASSIGNORS = {"range": "eager", "roundrobin": "eager", "cooperative-sticky": "cooperative"}


def _invalid(message: str) -> Exception:
    return kafka_exception(ERR_INVALID_ARG, message)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_int(name: str, text: str, lo: int, hi: int) -> int:
    if name in ("acks", "request.required.acks") and text.strip().lower() == "all":
        return -1
    m = _INT.match(text)
    if m is None:
        raise _invalid(f'Invalid value for configuration property "{name}"')
    sign, digits = m.groups()
    value = int(digits, 0) if not (len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX") else int(digits, 8)
    value = _as_c_int(-value if sign == "-" else value)
    if not lo <= value <= hi:
        raise _invalid(f'Configuration property "{name}" value {value} is outside allowed range {lo}..{hi}\n')
    return value


def _as_c_int(value: int) -> int:
    """What librdkafka stores for ``value``: ``strtol`` (saturating at the 64-bit
    ``long`` limits) cast to a 32-bit ``int``, so ``9999999999`` becomes ``1410065407``."""
    value = max(-(1 << 63), min((1 << 63) - 1, value))
    return ((value + (1 << 31)) % (1 << 32)) - (1 << 31)


def _parse_float(name: str, text: str, lo: float, hi: float) -> float:
    m = _FLOAT.match(text)
    if m is None:
        raise _invalid(f'Invalid value for configuration property "{name}"')
    value = float(m.group(0))
    if not lo <= value <= hi:
        raise _invalid(f'Configuration property "{name}" value {value:g} is outside allowed range '
                       f'{lo:g}..{hi:g}\n')
    return value


def _parse_bool(name: str, text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "t", "1"):
        return True
    if low in ("false", "f", "0"):
        return False
    raise _invalid(f'Expected bool value for "{name}": true or false')


def _validate(name: str, value: object, client: str) -> Any:  # noqa: PLR0911 - one return per kind
    """The parsed value of property ``name``; raises like the real client."""
    spec = PROPERTIES.get(name)
    if spec is None:
        if name in _CLIENT_ONLY and _CLIENT_ONLY[name] == client:
            spec = ("callable",)
        else:
            raise _invalid(f'No such configuration property: "{name}"')
    elif name in _CLIENT_ONLY and _CLIENT_ONLY[name] != client:
        raise _invalid(f'No such configuration property: "{name}"')
    kind = spec[0]
    canon = _ALIASES.get(name, name)
    if kind == "callable":
        if not callable(value):
            if name in ("on_delivery", "on_commit"):
                raise _invalid(f"{name} requires a callable object")
            exc_type = ValueError if name == "throttle_cb" else TypeError
            raise exc_type(f"expected {name} property as a callable function")
        return value
    if kind == "any":
        return value
    if kind == "dict":
        if not isinstance(value, Mapping):
            raise TypeError(f"expected {name} to be a dict")
        return dict(value)
    if kind == "api":
        raise _invalid(f'Property "{name}" must be set through dedicated .._set_..() function')
    text = _text(value)
    if kind == "str":
        return text
    if kind == "partitioner":
        if text not in _PARTITIONERS:
            raise _invalid(f'Invalid value for configuration property "partitioner": {text or "(null)"}')
        return text
    if not text:
        word = _KIND_WORD.get(kind)
        prefix = f"{word} configuration" if word else "Configuration"
        raise _invalid(f'{prefix} property "{canon}" cannot be set to empty value')
    if kind == "int":
        return _parse_int(canon, text, spec[1], spec[2])
    if kind == "float":
        return _parse_float(canon, text, spec[1], spec[2])
    if kind == "bool":
        return _parse_bool(canon, text)
    allowed = {v.lower(): v for v in spec[1:]}
    if kind == "enum":
        choice = allowed.get(text.strip().lower())
        if choice is None:
            raise _invalid(f'Invalid value "{text}" for configuration property "{canon}"')
        return choice
    # flags: a comma-separated subset
    flags = [f.strip().lower() for f in text.split(",") if f.strip()]
    for f in flags:
        if f not in allowed:
            raise _invalid(f'Invalid value "{f}" for configuration property "{canon}"')
    return tuple(allowed[f] for f in flags)


class ClientConfig:
    """A validated client config: ``raw`` (as given, for the registry) and parsed values by
    canonical name (aliases folded: ``linger.ms`` is ``queue.buffering.max.ms``)."""

    def __init__(self, raw: dict[str, Any], values: dict[str, Any], client: str) -> None:
        self.raw = raw
        self.values = values
        self.client = client

    def get(self, name: str, default: Any = None) -> Any:
        """The parsed value of ``name`` (or its alias), else ``default``."""
        canon = _ALIASES.get(name, name)
        if canon in self.values:
            return self.values[canon]
        return self.values.get(name, default)

    def has(self, name: str) -> bool:
        """Whether ``name`` (or its alias) was set."""
        return _ALIASES.get(name, name) in self.values or name in self.values

    def callback(self, name: str) -> Callable[..., Any] | None:
        """A Python-level callback (``on_delivery``, ``on_commit``, ``error_cb``...)."""
        cb = self.values.get(name)
        return cb if callable(cb) else None


def parse_config(config: Mapping[Any, Any] | None, kwargs: Mapping[str, Any], client: str) -> ClientConfig:
    """Validate ``config`` merged with ``kwargs`` (which win) for a ``client`` of kind
    ``"producer"``, ``"consumer"`` or ``"admin"``; raise like the real client."""
    if (config is None and not kwargs) or (config is not None and not isinstance(config, Mapping)):
        raise TypeError("expected configuration dict")
    raw: dict[str, Any] = {}
    for key, value in {**(config or {}), **kwargs}.items():
        raw[str(key)] = value
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in EMBEDLOG_KEYS:
            values[key] = value
            continue
        if key == "default.topic.config":
            for tkey, tvalue in _validate(key, value, client).items():
                values[_ALIASES.get(str(tkey), str(tkey))] = _validate(str(tkey), tvalue, client)
            continue
        parsed = _validate(key, value, client)
        values[_ALIASES.get(key, key)] = parsed
    _check_combinations(values, client)
    return ClientConfig(raw, values, client)


def check_timeout(timeout: object) -> float:
    """A client call's ``timeout`` as librdkafka's Python binding reads it: a real number
    (negative: no limit), ``TypeError`` for anything else (``None`` included)."""
    if not isinstance(timeout, (int, float)):
        raise TypeError(f"must be real number, not {type(timeout).__name__}")
    return float(timeout)


def _check_combinations(values: dict[str, Any], client: str) -> None:
    """The checks librdkafka makes when the client is created (``rd_kafka_new``), in its
    order (checked against librdkafka 2.16; the defaults are librdkafka's)."""
    fail = f"Failed to create {'admin client' if client == 'admin' else client}: "
    if client == "consumer":
        lo, hi = _CONSUMER_RANGES["fetch.min.bytes"]
        if not lo <= values.get("fetch.min.bytes", 1) <= hi:
            raise _invalid(f'{fail}Configuration property "fetch.min.bytes" value is outside allowed range {lo}..{hi}')
    strategy = values.get("partition.assignment.strategy")
    if strategy:
        names = [s.strip() for s in str(strategy).split(",") if s.strip()]
        for s in names:
            if s not in _ASSIGNORS:
                raise _invalid(f"{fail}Unsupported partition.assignment.strategy: {s}")
        if len({_ASSIGNORS[s] for s in names}) > 1:
            raise _invalid(f"{fail}All partition.assignment.strategy ({strategy}) assignors must have the same "
                           "protocol type, online migration between assignors with different protocol types is "
                           "not supported")
    if client == "producer":
        txn = values.get("transactional.id")
        idempotent = values.get("enable.idempotence")
        if txn and idempotent is False:
            raise _invalid(f"{fail}`transactional.id` requires `enable.idempotence=true`")
        if txn or idempotent:
            if values.get("request.required.acks", -1) != -1:
                raise _invalid(f"{fail}`acks` must be set to `all` when `enable.idempotence` is true")
            if values.get("max.in.flight.requests.per.connection", 5) > 5:
                raise _invalid(f"{fail}`max.in.flight` must be set <= 5 when `enable.idempotence` is true")
    if client == "consumer":
        max_msg = values.get("message.max.bytes", 1_000_000)
        if "fetch.max.bytes" in values:
            fetch_max = values["fetch.max.bytes"]
            if fetch_max < max_msg:
                raise _invalid(f"{fail}`fetch.max.bytes` must be >= `message.max.bytes`")
        else:  # librdkafka adjusts the default to the queue size and message size
            fetch_max = max(min(52_428_800, values.get("queued.max.messages.kbytes", 65_536) * 1024), max_msg)
        if "receive.message.max.bytes" in values and fetch_max + 512 > values["receive.message.max.bytes"]:
            raise _invalid(f"{fail}`receive.message.max.bytes` must be >= `fetch.max.bytes` + 512")
        session = values.get("session.timeout.ms", 45_000)
        if values.get("max.poll.interval.ms", 300_000) < session:
            raise _invalid(f"{fail}`max.poll.interval.ms`must be >= `session.timeout.ms`")
    if values.get("reconnect.backoff.max.ms", 10_000) < values.get("reconnect.backoff.ms", 100):
        raise _invalid(f"{fail}`reconnect.backoff.max.ms` must be >= `reconnect.backoff.ms`")
