"""Fidelity of the three shims where an acceptance run found them more lenient than the
real clients: aiokafka's security checks, kafka-python's ``isolation_level``,
librdkafka's numeric ranges and creation-time checks, and confluent-kafka's
``Producer.purge``.

Each test checks the shim against fixed expectations (so it runs without the real
libraries) and, where the real library is installed, against the real class itself:
the constructors below validate their configuration without a broker.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from embedlog.compat import confluent_kafka as ck_shim
from embedlog.compat import registry
from embedlog.compat.aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from embedlog.compat.aiokafka.admin import AIOKafkaAdminClient
from embedlog.compat.confluent_kafka._config import PROPERTIES
from embedlog.compat.kafka_python import KafkaConsumer

_ids = itertools.count()


def _real(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@pytest.fixture
def servers() -> Iterator[str]:
    yield f"fidelity-{next(_ids)}:9092"
    registry.reset()


def _outcome(make: Callable[[], Any]) -> tuple[str, str]:
    """("ok", "") or (exception type name, message) of ``make()``."""
    try:
        make()
    except Exception as exc:  # the outcome is what is compared
        first = exc.args[0] if exc.args else ""
        return type(exc).__name__, first.str() if hasattr(first, "str") else str(exc)
    return "ok", ""


# -- aiokafka: the constructors' security checks ---------------------------------------------------
_CTX = ssl.create_default_context()
_PLAIN = {"sasl_plain_username": "u", "sasl_plain_password": "p"}
_SSL_MANDATORY = "`ssl_context` is mandatory if security_protocol=='SSL'"
_SASL_MECHS = ("only `PLAIN`, `GSSAPI`, `SCRAM-SHA-256`, `SCRAM-SHA-512` and `OAUTHBEARER`"
               "sasl_mechanism are supported at the moment")
_PLAIN_CREDS = "sasl_plain_username and sasl_plain_password required for PLAIN sasl"
AIO_SECURITY = [  # (options, expected ValueError message or None for accepted)
    ({"security_protocol": "SSL"}, _SSL_MANDATORY),
    ({"security_protocol": "SASL_SSL", **_PLAIN}, _SSL_MANDATORY),
    ({"security_protocol": "TLS"}, "`security_protocol` should be SSL or PLAINTEXT"),
    ({"security_protocol": "plaintext"}, "`security_protocol` should be SSL or PLAINTEXT"),
    ({"security_protocol": "SASL_PLAINTEXT"}, _PLAIN_CREDS),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_plain_username": "u"}, _PLAIN_CREDS),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "FOO", **_PLAIN}, _SASL_MECHS),
    ({"security_protocol": "SASL_SSL", "ssl_context": _CTX, "sasl_mechanism": "plain", **_PLAIN}, _SASL_MECHS),
    ({"security_protocol": "SASL_PLAINTEXT", **_PLAIN}, None),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512"}, None),
    ({"security_protocol": "SASL_SSL", "ssl_context": _CTX, "sasl_mechanism": "OAUTHBEARER"}, None),
    ({"security_protocol": "SSL", "ssl_context": _CTX}, None),
    ({"security_protocol": "PLAINTEXT", "sasl_mechanism": "FOO"}, None),  # SASL settings unused: not checked
]


@pytest.mark.parametrize(("options", "message"), AIO_SECURITY)
def test_aiokafka_security_settings_are_checked_like_aiokafka(servers: str, options: dict[str, Any],
                                                              message: str | None) -> None:
    real = _real("aiokafka")
    real_admin = _real("aiokafka.admin")
    expected = ("ok", "") if message is None else ("ValueError", message)

    async def main() -> None:
        pairs: list[tuple[Any, Any]] = [(AIOKafkaConsumer, getattr(real, "AIOKafkaConsumer", None)),
                                        (AIOKafkaProducer, getattr(real, "AIOKafkaProducer", None)),
                                        (AIOKafkaAdminClient, getattr(real_admin, "AIOKafkaAdminClient", None))]
        for ours, theirs in pairs:
            made: list[Any] = []
            got = _outcome(lambda cls=ours: made.append(cls(bootstrap_servers=servers, **options)))
            assert got == expected, (ours.__name__, options)
            if theirs is not None:  # the real constructor, without starting it (no broker needed)
                assert _outcome(lambda cls=theirs: made.append(cls(bootstrap_servers=servers, **options))) \
                    == expected, (theirs.__name__, options)
            for client in made:
                await (client.stop() if hasattr(client, "stop") else client.close())

    asyncio.run(main())


# -- kafka-python: isolation_level ----------------------------------------------------------------
ISOLATION = [("read_committed", True), ("READ_UNCOMMITTED", True), (" read-committed ", True), (0, True),
             (1, True), (True, True), ("x", False), ("committed", False), (2, False), (None, False), ("1", False),
             ([], False)]


@pytest.mark.parametrize(("level", "accepted"), ISOLATION)
def test_kafka_python_isolation_level_is_checked_like_kafka_python(servers: str, level: Any,
                                                                   accepted: bool) -> None:
    got = _outcome(lambda: KafkaConsumer(bootstrap_servers=servers, isolation_level=level).close())
    assert got == (("ok", "") if accepted else ("KafkaConfigurationError",
                                                 "KafkaConfigurationError: Unrecognized isolation_level"))
    fetcher = _real("kafka.consumer.fetcher")
    if fetcher is not None:  # the real check lives in Fetcher.__init__ (a real consumer needs a broker first)
        real_errors = importlib.import_module("kafka.errors")
        state = importlib.import_module("kafka.consumer.subscription_state").SubscriptionState
        # (past the check, the real Fetcher fails on the absent client with an AttributeError)
        theirs = _outcome(lambda: fetcher.Fetcher(None, state(), isolation_level=level))
        assert theirs == (("AttributeError", theirs[1]) if accepted else got)
        with pytest.raises(real_errors.KafkaConfigurationError):  # the shim's error is the real one too
            KafkaConsumer(bootstrap_servers=servers, isolation_level="x")


# -- confluent-kafka: librdkafka's ranges and creation-time checks ---------------------------------
def _shim_config(kind: str, conf: dict[str, Any], tmp_path: Path) -> tuple[str, str]:
    base = {"bootstrap.servers": f"fidelity-ck-{next(_ids)}:9092", "embedlog.path": str(tmp_path / "log")}
    if kind == "consumer":
        return _outcome(lambda: ck_shim.Consumer({**base, "group.id": "g", **conf}).close())
    return _outcome(lambda: ck_shim.Producer({**base, **conf}).close())


def _real_config(kind: str, conf: dict[str, Any]) -> tuple[str, str] | None:
    real = _real("confluent_kafka")
    if real is None:
        return None
    quiet = {"log_level": 0}  # (no CONFWARN lines for properties of the other client type)
    if kind == "consumer":
        return _outcome(lambda: real.Consumer({"group.id": "g", **quiet, **conf}).close())
    return _outcome(lambda: real.Producer({**quiet, **conf}).flush(0))


CREATION_CHECKS = [  # (client, config, expected message or None)
    ("consumer", {"fetch.min.bytes": 0},
     'Failed to create consumer: Configuration property "fetch.min.bytes" value is outside allowed range '
     "1..100000000"),
    ("consumer", {"fetch.min.bytes": 100_000_001},
     'Failed to create consumer: Configuration property "fetch.min.bytes" value is outside allowed range '
     "1..100000000"),
    ("consumer", {"fetch.min.bytes": 100_000_000}, None),
    ("producer", {"fetch.min.bytes": 0}, None),  # a consumer property: a producer does not check it
    ("consumer", {"fetch.min.bytes": -1},
     'Configuration property "fetch.min.bytes" value -1 is outside allowed range 0..2147483647\n'),
    ("consumer", {"fetch.min.bytes": "9999999999"},  # librdkafka keeps the low 32 bits
     'Failed to create consumer: Configuration property "fetch.min.bytes" value is outside allowed range '
     "1..100000000"),
    ("consumer", {"auto.commit.interval.ms": "4294967296"}, None),  # wraps to 0, which is allowed
    ("consumer", {"auto.commit.interval.ms": 0}, None),
    ("consumer", {"fetch.max.bytes": 999_999}, "Failed to create consumer: `fetch.max.bytes` must be >= "
                                               "`message.max.bytes`"),
    ("consumer", {"fetch.max.bytes": 1000, "message.max.bytes": 1000}, None),
    ("consumer", {"receive.message.max.bytes": 52_429_311},
     "Failed to create consumer: `receive.message.max.bytes` must be >= `fetch.max.bytes` + 512"),
    ("consumer", {"receive.message.max.bytes": 52_429_312}, None),
    ("consumer", {"queued.max.messages.kbytes": 1, "receive.message.max.bytes": 1_000_511},
     "Failed to create consumer: `receive.message.max.bytes` must be >= `fetch.max.bytes` + 512"),
    ("consumer", {"queued.max.messages.kbytes": 1, "receive.message.max.bytes": 1_000_512}, None),
    ("consumer", {"reconnect.backoff.max.ms": 99},
     "Failed to create consumer: `reconnect.backoff.max.ms` must be >= `reconnect.backoff.ms`"),
    ("producer", {"reconnect.backoff.ms": 10_001},
     "Failed to create producer: `reconnect.backoff.max.ms` must be >= `reconnect.backoff.ms`"),
    ("consumer", {"fetch.min.bytes": 0, "reconnect.backoff.max.ms": 1},  # the order of the checks
     'Failed to create consumer: Configuration property "fetch.min.bytes" value is outside allowed range '
     "1..100000000"),
    ("consumer", {"reconnect.backoff.max.ms": 1, "session.timeout.ms": 400_000},
     "Failed to create consumer: `max.poll.interval.ms`must be >= `session.timeout.ms`"),
    ("producer", {"metadata.request.timeout.ms": 9},
     'Configuration property "metadata.request.timeout.ms" value 9 is outside allowed range 10..900000\n'),
    ("producer", {"metadata.request.timeout.ms": 900_000}, None),
]


@pytest.mark.parametrize(("kind", "conf", "message"), CREATION_CHECKS)
@pytest.mark.usefixtures("servers")
def test_confluent_config_is_checked_like_librdkafka(tmp_path: Path, kind: str, conf: dict[str, Any],
                                                    message: str | None) -> None:
    expected = ("ok", "") if message is None else ("KafkaException", message)
    assert _shim_config(kind, conf, tmp_path) == expected
    real = _real_config(kind, conf)
    if real is not None:
        assert real == expected


@pytest.mark.usefixtures("servers")
def test_every_numeric_range_matches_librdkafka(tmp_path: Path) -> None:
    """Each numeric property just inside and just outside the shim's range, on the shim and
    on the real client (which must agree exactly, message included)."""
    if _real("confluent_kafka") is None:
        pytest.skip("confluent-kafka is not installed")
    skip = {"test.mock.num.brokers", "test.mock.broker.rtt"}  # (these would start a mock cluster)
    checked = 0
    for name, spec in sorted(PROPERTIES.items()):
        if spec[0] not in ("int", "float") or name in skip:
            continue
        lo, hi = spec[1], spec[2]
        for value in (lo - 1, lo, hi, hi + 1):
            for kind in ("consumer", "producer"):
                conf = {name: value}
                if name == "fetch.max.bytes" and kind == "consumer":
                    conf["message.max.bytes"] = 1000  # (else its creation check hides the range)
                assert _shim_config(kind, conf, tmp_path) == _real_config(kind, conf), (kind, conf)
                checked += 1
    assert checked > 300


# -- confluent-kafka: Producer.purge ---------------------------------------------------------------
def _purge_scenario(producer: Any) -> dict[str, Any]:
    reports: list[tuple[Any, ...]] = []

    def cb(err: Any, msg: Any) -> None:
        reports.append((err.code() if err else None, err.name() if err else None, msg.topic(), msg.value(),
                        msg.key(), msg.offset()))

    for i in range(3):
        producer.produce("purged", f"v{i}".encode(), key=b"k", on_delivery=cb)
    queued = len(producer)
    producer.purge(in_queue=False)  # nothing leaves the queue
    still = len(producer)
    producer.purge()
    after = len(producer)  # the three reports, in one event, wait to be served
    served = producer.poll(0)
    purged = list(reports)
    reports.clear()
    producer.produce("purged", b"kept", on_delivery=cb)
    producer.purge(True, False, False)  # positional, like the real signature
    producer.produce("purged", b"written", on_delivery=cb)
    producer.flush(10)
    return {"queued": queued, "still": still, "after": after, "served": served, "purged": purged,
            "later": [(r[0], r[3]) for r in reports], "left": len(producer)}


def test_purge_drops_unwritten_messages_with_purge_queue_reports(tmp_path: Path, servers: str) -> None:
    conf = {"bootstrap.servers": servers, "embedlog.path": str(tmp_path / "log"),
            "linger.ms": 60_000}  # (nothing is written before the purge)
    producer = ck_shim.Producer(conf)
    got = _purge_scenario(producer)
    purge_queue = (ck_shim.KafkaError._PURGE_QUEUE, "_PURGE_QUEUE", "purged")
    assert got == {"queued": 3, "still": 3, "after": 4, "served": 1,
                   "purged": [(*purge_queue, f"v{i}".encode(), b"k", None) for i in range(3)],
                   "later": [(ck_shim.KafkaError._PURGE_QUEUE, b"kept"), (None, b"written")], "left": 0}
    producer.close()
    log = registry.log_for(conf).log
    assert [m.value for m in log.consumer(["purged"], auto_offset_reset="earliest").poll(1.0)] == [b"written"]
    real = _real("confluent_kafka")
    if real is not None:  # librdkafka, on its own in-process mock cluster
        theirs = real.Producer({"test.mock.num.brokers": 1, "linger.ms": 60_000, "log_level": 0})
        assert _purge_scenario(theirs) == got
    with pytest.raises(RuntimeError):
        producer.purge()  # closed, like every other call


# -- confluent-kafka: AdminClient.delete_records and list_offsets ----------------------------------
def _admin_with_records(servers: str, tmp_path: Path) -> Any:
    from embedlog.compat.confluent_kafka.admin import AdminClient, NewTopic  # noqa: PLC0415

    conf = {"bootstrap.servers": servers, "embedlog.path": str(tmp_path / "log")}
    admin = AdminClient(conf)
    admin.create_topics([NewTopic("rec", 2, 1)])["rec"].result()
    producer = ck_shim.Producer(conf)
    for i, ts in enumerate([1000, 1003, 1001, 1003, 1002]):
        producer.produce("rec", f"v{i}".encode(), partition=0, timestamp=ts)
    producer.flush()
    producer.close()
    return admin


def test_admin_list_offsets(tmp_path: Path, servers: str) -> None:
    from embedlog.compat.confluent_kafka.admin import IsolationLevel, OffsetSpec  # noqa: PLC0415

    admin = _admin_with_records(servers, tmp_path)
    tp = ck_shim.TopicPartition
    asks = {tp("rec", 0): OffsetSpec.earliest(), tp("rec", 1, 7): OffsetSpec.latest(),
            tp("nope", 0): OffsetSpec.latest(), tp("rec", 5): OffsetSpec.earliest()}
    futures = admin.list_offsets(asks, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=5)
    assert [(k.topic, k.partition, k.offset) for k in futures] == [("rec", 0, -2), ("rec", 1, -1), ("nope", 0, -1),
                                                                 ("rec", 5, -2)]
    results = list(futures.values())
    assert (results[0].result().offset, results[0].result().timestamp) == (0, -1)
    assert (results[1].result().offset, results[1].result().timestamp) == (0, -1)
    for failed in results[2:]:
        with pytest.raises(ck_shim.KafkaException) as info:
            failed.result()
        assert info.value.args[0].code() == ck_shim.KafkaError.UNKNOWN_TOPIC_OR_PART

    def one(spec: Any) -> tuple[int, int]:
        info = next(iter(admin.list_offsets({tp("rec", 0): spec}).values())).result()
        return info.offset, info.timestamp

    assert one(OffsetSpec.latest()) == (5, -1)
    assert one(OffsetSpec.for_timestamp(1001)) == (1, 1003)  # the first record at or after it
    assert one(OffsetSpec.for_timestamp(1003)) == (1, 1003)
    assert one(OffsetSpec.for_timestamp(1004)) == (-1, -1)
    assert one(OffsetSpec.max_timestamp()) == (1, 1003)  # the first record with the largest timestamp
    cut = tp("rec", 0, 2)
    assert admin.delete_records([cut])[cut].result().low_watermark == 2
    assert one(OffsetSpec.earliest()) == (2, -1)
    assert one(OffsetSpec.max_timestamp()) == (3, 1003)
    assert one(OffsetSpec.for_timestamp(0)) == (2, 1001)


def test_admin_delete_records(tmp_path: Path, servers: str) -> None:
    admin = _admin_with_records(servers, tmp_path)
    tp = ck_shim.TopicPartition
    twice = [tp("rec", 0, 1), tp("rec", 0, 2)]  # one key (TopicPartition equality ignores the offset)
    futures = admin.delete_records(twice)
    assert len(futures) == 1
    with pytest.raises(ck_shim.KafkaException) as info:  # as librdkafka refuses the request
        futures[twice[0]].result()
    assert (info.value.args[0].code(), info.value.args[0].str()) == (ck_shim.KafkaError._INVALID_ARG,
                                                                     "Duplicate partitions not allowed")
    reqs = [tp("rec", 0, 2), tp("rec", 1, 5), tp("nope", 0, 1), tp("nope", 3, 99)]
    futures = admin.delete_records(reqs, operation_timeout=5)
    assert list(futures) == reqs
    assert futures[reqs[0]].result().low_watermark == 2
    codes = []
    for req in reqs[1:]:
        with pytest.raises(ck_shim.KafkaException) as info:
            futures[req].result()
        codes.append(info.value.args[0].code())
    assert codes == [ck_shim.KafkaError.OFFSET_OUT_OF_RANGE, ck_shim.KafkaError.UNKNOWN_TOPIC_OR_PART,
                     ck_shim.KafkaError.UNKNOWN_TOPIC_OR_PART]
    assert admin.delete_records([]) == {}
    assert admin.list_offsets({}) == {}
    everything = tp("rec", 0, ck_shim.OFFSET_END)
    assert admin.delete_records([everything])[everything].result().low_watermark == 5


BAD_DELETE_RECORDS: list[Any] = ["rec", ("rec", 0), ["rec"], [None]]
BAD_LIST_OFFSETS: list[Any] = [["rec"], {None: 1}, {"rec": 1}]


def test_admin_record_requests_are_checked_like_confluent_kafka(tmp_path: Path, servers: str) -> None:
    from embedlog.compat.confluent_kafka.admin import OffsetSpec  # noqa: PLC0415

    admin = _admin_with_records(servers, tmp_path)
    tp = ck_shim.TopicPartition
    bad_deletes = [*BAD_DELETE_RECORDS, [tp("rec", -1, 0)]]
    bad_lists = [*BAD_LIST_OFFSETS, {tp("rec", -1): OffsetSpec.latest()}, {tp("", 0): OffsetSpec.latest()},
                 {tp("rec", 0): None}, {tp("rec", 0): -1}]
    ours = [_outcome(lambda r=r: admin.delete_records(r)) for r in bad_deletes]
    ours += [_outcome(lambda r=r: admin.list_offsets(r)) for r in bad_lists]
    ours.append(_outcome(lambda: admin.list_offsets({tp("rec", 0): OffsetSpec.latest()}, isolation_level=1)))
    assert all(kind in ("TypeError", "ValueError") for kind, _ in ours), ours
    real = _real("confluent_kafka.admin")
    if real is not None:  # the real client's own checks (they run before anything is sent)
        checks = real.AdminClient
        theirs = [_outcome(lambda r=r: checks._check_delete_records(r)) for r in bad_deletes]
        theirs += [_outcome(lambda r=r: checks._check_list_offsets_request(r, {})) for r in bad_lists]
        theirs.append(_outcome(lambda: checks._check_list_offsets_request({tp("rec", 0): OffsetSpec.latest()},
                                                                          {"isolation_level": 1})))
        assert ours == theirs


def test_admin_describe_topics(tmp_path: Path, servers: str) -> None:
    admin = _admin_with_records(servers, tmp_path)
    futures = admin.describe_topics(ck_shim.TopicCollection(["rec", "nope"]), request_timeout=5)
    assert list(futures) == ["rec", "nope"]
    desc = futures["rec"].result()
    assert (desc.name, desc.is_internal, [p.id for p in desc.partitions]) == ("rec", False, [0, 1])
    leader = desc.partitions[0].leader
    assert [n.id for n in desc.partitions[1].replicas] == [n.id for n in desc.partitions[1].isr] == [leader.id]
    assert desc.topic_id.get_least_significant_bits() != 0
    with pytest.raises(ck_shim.KafkaException) as info:
        futures["nope"].result()
    assert info.value.args[0].code() == ck_shim.KafkaError.UNKNOWN_TOPIC_OR_PART
    assert set(admin.list_topics().topics) == {"rec"}  # "nope" was not created
    ours = [_outcome(lambda: admin.describe_topics(["rec"])),
            _outcome(lambda: admin.describe_topics(ck_shim.TopicCollection(("rec",)))),
            _outcome(lambda: admin.describe_topics(ck_shim.TopicCollection(["rec"]), bogus=1))]
    assert ours == [("TypeError", "Expected input to be instance of TopicCollection"),
                    ("TypeError", "Expected list of topic names to be described"),
                    ("TypeError", "'bogus' is an invalid keyword argument for this function")]
