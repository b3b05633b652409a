"""Topic configuration, topic-name rules and the error tree.

``config.py`` is pure and tested directly; ``create_topic`` and
``alter_topic_config`` are tested on a real log (conftest's ``log`` fixture) to show
the same rules hold at the API and that a rejected change leaves nothing behind.
"""

from __future__ import annotations

import builtins
import inspect
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import embedlog
from embedlog import errors
from embedlog.config import DEFAULTS, TopicConfig, validate_overrides
from embedlog.errors import ConfigError, EmbedlogError, InvalidTopicError
from embedlog.storage.topics import validate_name
from strategies import topic_names

#: Kafka's broker defaults for the keys embedlog honours, written out independently of DEFAULTS.
KAFKA_DEFAULTS: dict[str, Any] = {
    "retention.ms": 604_800_000,  # 7 days
    "retention.bytes": -1,
    "cleanup.policy": "delete",
    "delete.retention.ms": 86_400_000,  # 1 day
    "min.compaction.lag.ms": 0,
    "max.message.bytes": 1_048_588,  # 1 MiB + record batch overhead
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": 1,
}


# -- defaults ----------------------------------------------------------------------------
def test_defaults_are_kafkas() -> None:
    assert DEFAULTS == KAFKA_DEFAULTS
    for cfg in (TopicConfig(), TopicConfig.from_overrides(None), TopicConfig.from_overrides({})):
        assert cfg.overrides == {}
        assert cfg.to_dict() == KAFKA_DEFAULTS
        assert cfg.retention_ms == 604_800_000
        assert cfg.retention_bytes == -1
        assert cfg.cleanup_policy == frozenset({"delete"})
        assert cfg.delete
        assert not cfg.compact
        assert cfg.delete_retention_ms == 86_400_000
        assert cfg.min_compaction_lag_ms == 0
        assert cfg.max_message_bytes == 1_048_588
        assert cfg.log_append_time is False
        assert cfg.min_insync_replicas == 1
    assert TopicConfig() == TopicConfig.from_overrides({})


def test_new_topic_reports_default_config(log: embedlog.Log) -> None:
    desc = log.create_topic("orders", partitions=2)
    assert desc.config == KAFKA_DEFAULTS
    assert log.describe_topic("orders").config == KAFKA_DEFAULTS


def test_to_dict_is_a_copy() -> None:
    cfg = TopicConfig.from_overrides({"retention.ms": 5})
    cfg.to_dict()["retention.ms"] = 7
    assert cfg.retention_ms == 5
    assert cfg.to_dict()["retention.ms"] == 5


# -- parsing ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "given", "parsed"),
    [
        ("retention.ms", "604800000", 604_800_000),
        ("retention.ms", "-1", -1),
        ("retention.ms", " 1000 ", 1000),  # kafka-configs trims
        ("retention.ms", "+1000", 1000),  # Long.parseLong accepts a leading '+'
        ("retention.ms", str(2**63 - 1), 2**63 - 1),
        ("retention.ms", 0, 0),
        ("retention.bytes", "10000000", 10_000_000),
        ("retention.bytes", -1, -1),
        ("delete.retention.ms", "0", 0),
        ("min.compaction.lag.ms", "60000", 60_000),
        ("max.message.bytes", "2147483647", 2**31 - 1),
        ("max.message.bytes", 0, 0),
        ("min.insync.replicas", "2", 2),
        ("cleanup.policy", "delete", "delete"),
        ("cleanup.policy", "compact", "compact"),
        ("cleanup.policy", "compact,delete", "compact,delete"),
        ("cleanup.policy", "delete,compact", "delete,compact"),
        ("cleanup.policy", "compact, delete", "compact,delete"),  # a list: spaces after commas are fine
        ("message.timestamp.type", "CreateTime", "CreateTime"),
        ("message.timestamp.type", "LogAppendTime", "LogAppendTime"),
    ],
)
def test_values_parse_like_kafka_admin_tools(key: str, given: object, parsed: object) -> None:
    assert validate_overrides({key: given}) == {key: parsed}
    cfg = TopicConfig.from_overrides({key: given})
    assert cfg.overrides == {key: parsed}
    assert cfg.to_dict() == {**KAFKA_DEFAULTS, key: parsed}


@settings(max_examples=100, deadline=None)
@given(ms=st.integers(-1, 2**63 - 1), as_str=st.booleans())
def test_any_long_retention_parses(ms: int, as_str: bool) -> None:
    cfg = TopicConfig.from_overrides({"retention.ms": str(ms) if as_str else ms})
    assert cfg.retention_ms == ms


@pytest.mark.parametrize(
    ("policy", "compact", "delete"),
    [("delete", False, True), ("compact", True, False), ("compact,delete", True, True), ("delete,compact", True, True)],
)
def test_cleanup_policy_flags(policy: str, compact: bool, delete: bool) -> None:
    cfg = TopicConfig.from_overrides({"cleanup.policy": policy})
    assert (cfg.compact, cfg.delete) == (compact, delete)


def test_log_append_time_flag() -> None:
    assert TopicConfig.from_overrides({"message.timestamp.type": "LogAppendTime"}).log_append_time is True
    assert TopicConfig.from_overrides({"message.timestamp.type": "CreateTime"}).log_append_time is False


BAD_VALUES = [
    ("retention.ms", -2), ("retention.ms", "-2"), ("retention.ms", "abc"), ("retention.ms", ""),
    ("retention.ms", "7d"), ("retention.ms", "1e3"), ("retention.ms", "1.5"), ("retention.ms", 1.5),
    ("retention.ms", 1000.0), ("retention.ms", True), ("retention.ms", None), ("retention.ms", b"1000"),
    ("retention.ms", [1000]), ("retention.ms", 2**63), ("retention.ms", str(2**63)),
    ("retention.ms", "1_000"),  # Java's Long.parseLong rejects underscores; Python's int() does not
    ("retention.bytes", -5), ("retention.bytes", "ten"),
    ("delete.retention.ms", -1), ("min.compaction.lag.ms", -1), ("min.compaction.lag.ms", "-1"),
    ("max.message.bytes", -1), ("max.message.bytes", 2**31), ("max.message.bytes", "2147483648"),
    ("min.insync.replicas", 0), ("min.insync.replicas", "0"), ("min.insync.replicas", 2**31),
    ("cleanup.policy", "remove"), ("cleanup.policy", ""), ("cleanup.policy", "Compact"), ("cleanup.policy", 1),
    ("cleanup.policy", "compact,compact,delete"), ("cleanup.policy", ["compact", "delete"]),
    ("cleanup.policy", None),
    ("message.timestamp.type", "createtime"), ("message.timestamp.type", "AppendTime"),
    ("message.timestamp.type", 0), ("message.timestamp.type", None),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
def test_bad_values_are_config_errors(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_overrides({key: value})
    with pytest.raises(ConfigError):
        TopicConfig.from_overrides({key: value})
    if value is not None:  # in altered(), None means "back to the default"
        with pytest.raises(ConfigError):
            TopicConfig().altered({key: value})


@pytest.mark.parametrize("key", ["retention.mss", "Retention.ms", "retention_ms", "segment.bytes", "", "foo"])
def test_unknown_keys_are_config_errors(key: str) -> None:
    with pytest.raises(ConfigError, match="unknown topic config key"):
        validate_overrides({key: 1})
    with pytest.raises(ConfigError, match="unknown topic config key"):
        TopicConfig().altered({key: 1})
    with pytest.raises(ConfigError, match="unknown topic config key"):
        TopicConfig().altered({key: None})


@pytest.mark.parametrize("config", [[("retention.ms", 1)], "retention.ms=1", 5])
def test_config_must_be_a_mapping(config: object) -> None:
    with pytest.raises(ConfigError):
        validate_overrides(config)  # type: ignore[arg-type]


def test_config_errors_are_value_errors_with_kafkas_code() -> None:
    with pytest.raises(ValueError) as info:
        validate_overrides({"retention.ms": "soon"})
    assert isinstance(info.value, ConfigError)
    assert info.value.code == 40  # INVALID_CONFIG


# -- altered() -------------------------------------------------------------------------
def test_altered_sets_and_resets() -> None:
    cfg = TopicConfig.from_overrides({"retention.ms": "1000", "cleanup.policy": "compact"})
    assert cfg.overrides == {"retention.ms": 1000, "cleanup.policy": "compact"}
    changed = cfg.altered({"retention.bytes": 500, "retention.ms": 2000})
    assert changed.overrides == {"retention.ms": 2000, "cleanup.policy": "compact", "retention.bytes": 500}
    assert cfg.retention_ms == 1000  # frozen: the original is unchanged
    reset = changed.altered({"retention.ms": None, "cleanup.policy": None})
    assert reset.overrides == {"retention.bytes": 500}
    assert reset.retention_ms == KAFKA_DEFAULTS["retention.ms"]
    assert reset.cleanup_policy == frozenset({"delete"})
    assert reset.to_dict() == {**KAFKA_DEFAULTS, "retention.bytes": 500}
    # resetting a key that was never set is a no-op, not an error
    assert reset.altered({"min.insync.replicas": None}) == reset
    assert TopicConfig().altered({}) == TopicConfig()


def test_altered_is_atomic_on_error() -> None:
    cfg = TopicConfig.from_overrides({"retention.ms": 1000})
    with pytest.raises(ConfigError):
        cfg.altered({"retention.ms": None, "retention.bytes": "lots"})
    assert cfg.overrides == {"retention.ms": 1000}


# -- through the Log API ---------------------------------------------------------------
def test_create_topic_with_string_config(log: embedlog.Log) -> None:
    desc = log.create_topic("orders", partitions=3, config={"retention.ms": "1000",
                                                          "cleanup.policy": "compact, delete"})
    assert desc.config == {**KAFKA_DEFAULTS, "retention.ms": 1000, "cleanup.policy": "compact,delete"}


@pytest.mark.parametrize(("key", "value"), [*BAD_VALUES[:6], ("retention.mss", 1), ("segment.bytes", 1024)])
def test_create_topic_rejects_bad_config_and_creates_nothing(log: embedlog.Log, key: str, value: object) -> None:
    with pytest.raises(ConfigError):
        log.create_topic("orders", partitions=2, config={key: value})
    assert log.topics() == []
    log.create_topic("orders", partitions=2)  # the name is still free


@pytest.mark.parametrize("partitions", [0, -1, True, 1.0, "2", None])
def test_create_topic_rejects_bad_partition_counts(log: embedlog.Log, partitions: object) -> None:
    with pytest.raises(ConfigError):
        log.create_topic("orders", partitions=partitions)  # type: ignore[arg-type]
    assert log.topics() == []


def test_alter_topic_config(log: embedlog.Log) -> None:
    log.create_topic("orders", config={"retention.ms": 1000})
    log.alter_topic_config("orders", {"retention.bytes": "10000000", "message.timestamp.type": "LogAppendTime"})
    assert log.describe_topic("orders").config == {**KAFKA_DEFAULTS, "retention.ms": 1000,
                                                   "retention.bytes": 10_000_000,
                                                   "message.timestamp.type": "LogAppendTime"}
    log.alter_topic_config("orders", {"retention.ms": None, "message.timestamp.type": None})
    assert log.describe_topic("orders").config == {**KAFKA_DEFAULTS, "retention.bytes": 10_000_000}


@pytest.mark.parametrize(("key", "value"), [*BAD_VALUES[:6], ("retention.mss", 1), ("retention.mss", None)])
def test_alter_topic_config_rejects_bad_config_and_changes_nothing(log: embedlog.Log, key: str,
                                                                   value: object) -> None:
    log.create_topic("orders", config={"retention.ms": 1000})
    before = log.describe_topic("orders").config
    with pytest.raises(ConfigError):
        log.alter_topic_config("orders", {"retention.bytes": 5, key: value})
    assert log.describe_topic("orders").config == before


def test_alter_unknown_topic(log: embedlog.Log) -> None:
    with pytest.raises(errors.UnknownTopicError):
        log.alter_topic_config("nope", {"retention.ms": 1})


def test_config_survives_reopen(tmp_path: Path) -> None:
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as lg:
        lg.create_topic("orders", config={"retention.ms": "1000", "cleanup.policy": "compact"})
        lg.alter_topic_config("orders", {"min.insync.replicas": 2})
    with embedlog.open(tmp_path / "log", maintenance_interval_ms=None) as lg:
        assert lg.describe_topic("orders").config == {**KAFKA_DEFAULTS, "retention.ms": 1000,
                                                      "cleanup.policy": "compact", "min.insync.replicas": 2}


# -- topic names -------------------------------------------------------------------------
INVALID_NAMES = ["", ".", "..", "a" * 250, "a/b", "ü", "a b", "a\x00b", "a:b", "a\\b", "a*", "tab\t", "é" * 3,
                 "x" * 1000,
                 "orders\n",  # a regex ending in "$" matches before a final newline; Kafka's matches() does not
                 ]
VALID_NAMES = ["a", "a" * 249, ".a", "a.", "...", "a..b", "_", "-", "A-z_0.9", "__consumer_offsets"]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=repr)
def test_invalid_topic_names(log: embedlog.Log, name: str) -> None:
    with pytest.raises(InvalidTopicError):
        validate_name(name)
    with pytest.raises(InvalidTopicError):
        log.create_topic(name)
    with pytest.raises(InvalidTopicError), log.producer() as producer:
        producer.send(name, b"v")
    assert log.topics() == []


@pytest.mark.parametrize("name", [None, 5, b"orders", ["orders"]], ids=repr)
def test_topic_name_must_be_str(log: embedlog.Log, name: object) -> None:
    with pytest.raises(InvalidTopicError):
        validate_name(name)
    with pytest.raises(InvalidTopicError):
        log.create_topic(name)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", ".", "a/b", "a" * 250, None, 5, b"orders"], ids=repr)
def test_every_api_taking_a_topic_name_gives_a_typed_error(log: embedlog.Log, name: Any) -> None:
    """A bad name must never reach LMDB (an empty key is MDB_BAD_VALSIZE) nor ``str`` methods."""
    log.create_topic("orders")
    calls = {
        "producer.send": lambda: log.producer().send(name, b"v"),
        "consumer": lambda: log.consumer([name]),
        "describe_topic": lambda: log.describe_topic(name),
        "alter_topic_config": lambda: log.alter_topic_config(name, {"retention.ms": 1}),
        "delete_topic": lambda: log.delete_topic(name),
        "create_partitions": lambda: log.create_partitions(name, 2),
    }
    untyped = []
    for what, call in calls.items():
        try:
            call()
        except (InvalidTopicError, errors.UnknownTopicError):
            pass
        except Exception as exc:
            untyped.append(f"{what}: {type(exc).__name__}: {exc}")
        else:
            untyped.append(f"{what}: no error")
    assert not untyped, "untyped errors for a bad topic name:\n" + "\n".join(untyped)
    assert log.topics() == ["orders"]


@pytest.mark.parametrize("name", VALID_NAMES, ids=lambda n: repr(n[:20]))
def test_valid_topic_names(log: embedlog.Log, name: str) -> None:
    assert validate_name(name) == name
    log.create_topic(name)
    assert log.topics() == [name]


@settings(max_examples=200, deadline=None)
@given(name=topic_names)
def test_any_legal_name_validates(name: str) -> None:
    assert validate_name(name) == name


@settings(max_examples=100, deadline=None)
@given(name=st.text(min_size=1, max_size=260))
def test_names_follow_kafkas_rule(name: str) -> None:
    legal = (len(name) <= 249 and name not in (".", "..")
             and all(c.isascii() and (c.isalnum() or c in "._-") for c in name))
    if legal:
        assert validate_name(name) == name
    else:
        with pytest.raises(InvalidTopicError):
            validate_name(name)


def test_invalid_topic_error_code() -> None:
    with pytest.raises(ValueError) as info:
        validate_name("a/b")
    assert isinstance(info.value, InvalidTopicError)
    assert info.value.code == 17


# -- the error tree ----------------------------------------------------------------------
#: each class and the builtin its docstring/module doc says it behaves like (None: none claimed)
ERROR_BUILTINS: dict[str, type[BaseException] | None] = {
    "ClosedError": RuntimeError,
    "ForkError": RuntimeError,
    "ConfigError": ValueError,
    "InvalidTopicError": ValueError,
    "TopicExistsError": ValueError,
    "UnknownTopicError": LookupError,
    "UnknownPartitionError": LookupError,
    "RecordTooLargeError": ValueError,
    "InvalidRecordError": ValueError,
    "SerializationError": TypeError,
    "DeserializationError": TypeError,
    "OffsetOutOfRangeError": LookupError,
    "NotAssignedError": LookupError,
    "InvalidOffsetError": ValueError,
    "CorruptRecordError": None,
    "StorageError": OSError,
    "DiskFullError": OSError,
    "DamagedStoreError": OSError,
    "FormatVersionError": OSError,
    "TimeoutError": builtins.TimeoutError,
    "InterruptedWriteError": None,
    "GroupError": None,
    "UnknownGroupError": LookupError,
    "IllegalGenerationError": None,
    "TransactionAbortedError": None,
    "ProducerFencedError": None,
    "NotLeaderError": None,
    "FencedLeaderError": None,  # (a NotLeaderError that is not retried: the leader was replaced)
    "ReplicationBusyError": RuntimeError,
    "TransactionNotLeaderError": None,
    "NotEnoughReplicasError": None,
    "AuthenticationError": None,
    "UnrelatedLogError": None,
    "BridgeError": None,
    "LinkDownError": builtins.TimeoutError,
}


def _error_classes() -> dict[str, type[EmbedlogError]]:
    """Every exception class of embedlog.errors (warnings are not errors)."""
    return {name: obj for name, obj in vars(errors).items()
            if inspect.isclass(obj) and issubclass(obj, BaseException) and not issubclass(obj, Warning)
            and obj.__module__ == errors.__name__}


def test_error_table_is_complete() -> None:
    """A new error class must be added to ERROR_BUILTINS (and so decide which builtin it is)."""
    classes = _error_classes()
    warns = {name for name, obj in vars(errors).items()
             if inspect.isclass(obj) and issubclass(obj, Warning) and obj.__module__ == errors.__name__}
    assert warns == {"UncleanPromotionWarning"}
    assert set(classes) == set(ERROR_BUILTINS) | {"EmbedlogError"}
    assert set(errors.__all__) == set(classes) | warns | {"for_code"}


@pytest.mark.parametrize(("name", "builtin"), ERROR_BUILTINS.items(), ids=list(ERROR_BUILTINS))
def test_error_classes_derive_from_embedlog_error_and_their_builtin(name: str,
                                                                    builtin: type[BaseException] | None) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, EmbedlogError)
    assert issubclass(cls, Exception)
    if builtin is not None:
        assert issubclass(cls, builtin)
        with pytest.raises(builtin):
            raise cls("boom")
    with pytest.raises(EmbedlogError):
        raise cls("boom")
    assert isinstance(cls.code, int)
    assert isinstance(cls.retriable, bool)
    assert cls.__doc__, f"{name} needs a docstring"


def test_embedlog_timeout_error_is_the_builtin_timeout() -> None:
    assert errors.TimeoutError is not builtins.TimeoutError
    assert issubclass(errors.TimeoutError, builtins.TimeoutError)
    assert issubclass(errors.TimeoutError, OSError)  # builtins.TimeoutError is an OSError
    assert errors.TimeoutError.retriable is True


@pytest.mark.parametrize("name", ["EmbedlogError", *ERROR_BUILTINS], ids=str)
def test_errors_pickle(name: str) -> None:
    """Errors cross process boundaries (multiprocessing, concurrent.futures)."""
    cls = getattr(errors, name)
    err = cls("it broke")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == "it broke"


def test_corrupt_record_error_carries_location() -> None:
    err = errors.CorruptRecordError("bad crc", topic="orders", partition=2, offset=41)
    back = pickle.loads(pickle.dumps(err))
    for e in (err, back):
        assert (e.topic, e.partition, e.offset) == ("orders", 2, 41)
        assert str(e) == "bad crc"


KAFKA_CODES = {
    1: errors.OffsetOutOfRangeError,  # OFFSET_OUT_OF_RANGE
    2: errors.CorruptRecordError,  # CORRUPT_MESSAGE
    3: errors.UnknownTopicError,  # UNKNOWN_TOPIC_OR_PARTITION
    6: errors.NotLeaderError,  # NOT_LEADER_OR_FOLLOWER
    7: errors.TimeoutError,  # REQUEST_TIMED_OUT
    10: errors.RecordTooLargeError,  # MESSAGE_TOO_LARGE
    17: errors.InvalidTopicError,  # INVALID_TOPIC_EXCEPTION
    19: errors.NotEnoughReplicasError,  # NOT_ENOUGH_REPLICAS
    22: errors.IllegalGenerationError,  # ILLEGAL_GENERATION
    36: errors.TopicExistsError,  # TOPIC_ALREADY_EXISTS
    40: errors.ConfigError,  # INVALID_CONFIG
    48: errors.TransactionAbortedError,  # INVALID_TXN_STATE
    56: errors.StorageError,  # KAFKA_STORAGE_ERROR
    58: errors.AuthenticationError,  # SASL_AUTHENTICATION_FAILED
    69: errors.UnknownGroupError,  # GROUP_ID_NOT_FOUND
    87: errors.InvalidRecordError,  # INVALID_RECORD
}


@pytest.mark.parametrize(("code", "cls"), KAFKA_CODES.items(), ids=[c.__name__ for c in KAFKA_CODES.values()])
def test_for_code_maps_kafka_codes(code: int, cls: type[EmbedlogError]) -> None:
    assert errors.for_code(code) is cls
    assert cls.code == code


def test_for_code_covers_every_code_in_use() -> None:
    for cls in _error_classes().values():
        if cls.code != -1:
            found = errors.for_code(cls.code)
            assert found.code == cls.code
            assert found is cls or issubclass(cls, found) or cls.code in (1, 3)  # shared codes map to one class


@pytest.mark.parametrize("code", [0, -1, 9999, 4, 100])
def test_for_code_unknown_codes_give_the_base_class(code: int) -> None:
    """0 is NONE and -1 UNKNOWN_SERVER_ERROR in Kafka: neither names a specific embedlog error."""
    assert errors.for_code(code) is EmbedlogError


def test_retriable_flags_follow_kafka() -> None:
    retriable = {name for name, cls in _error_classes().items() if cls.retriable}
    assert retriable == {"TimeoutError", "NotLeaderError", "NotEnoughReplicasError", "LinkDownError",
                         "TransactionNotLeaderError"}  # (a NotLeaderError: retried once the node leads)
