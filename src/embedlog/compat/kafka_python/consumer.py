"""kafka-python's ``KafkaConsumer`` over an embedded log.

The shim wraps one embedlog ``Consumer``.  With ``group_id`` it is a member of an
embedlog consumer group (partitions shared with the group's other members, in any
thread or process, committed offsets kept in the log); without one it reads every
partition of its topics.  Iteration yields records one at a time and, as in
kafka-python, the position (and so what ``commit()`` commits) moves one record at a
time.  Not thread-safe, like kafka-python's.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from itertools import repeat
from operator import attrgetter
from typing import Any, cast

from ... import errors as el_errors
from ...consumer import Consumer
from ...groups.assignors import EAGER
from ...model import Message, TopicPartition
from .. import _kafka_common as _common
from . import errors as Errors
from .structs import ConsumerGroupMetadata, ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp, _MemberMetadata

__all__ = ["AsyncConsumerRebalanceListener", "ConsumerRebalanceListener", "KafkaConsumer"]

_log = logging.getLogger("embedlog.compat.kafka_python")
_FOREVER = float("inf")

#: kafka-python 3.0's consumer configs (values are the defaults the shim honours)
DEFAULT_CONFIG: dict[str, Any] = {
    "bootstrap_servers": "localhost", "client_id": "kafka-python-3.0.12", "client_rack": "", "group_id": None,
    "group_instance_id": None, "key_deserializer": None, "value_deserializer": None,
    "enable_incremental_fetch_sessions": True, "fetch_max_wait_ms": 500, "fetch_min_bytes": 1,
    "fetch_max_bytes": 52428800, "max_partition_fetch_bytes": 1048576, "request_timeout_ms": 30000,
    "retry_backoff_ms": 100, "reconnect_backoff_ms": 50, "reconnect_backoff_max_ms": 30000,
    "max_in_flight_requests_per_connection": 5, "auto_offset_reset": "latest", "enable_auto_commit": True,
    "auto_commit_interval_ms": 5000, "default_offset_commit_callback": None, "check_crcs": True,
    "isolation_level": "read_uncommitted", "allow_auto_create_topics": True, "metadata_max_age_ms": 300000,
    "partition_assignment_strategy": ("range", "roundrobin"), "max_poll_records": 500,
    "max_poll_interval_ms": 300000, "session_timeout_ms": 45000, "heartbeat_interval_ms": 3000,
    "receive_buffer_bytes": None, "send_buffer_bytes": None, "receive_message_max_bytes": 100_000_000,
    "socket_options": None, "consumer_timeout_ms": _FOREVER, "security_protocol": "PLAINTEXT",
    "ssl_context": None, "ssl_check_hostname": True, "ssl_cafile": None, "ssl_certfile": None,
    "ssl_keyfile": None, "ssl_crlfile": None, "ssl_password": None, "ssl_ciphers": None, "api_version": None,
    "bootstrap_timeout_ms": 30000, "client_dns_lookup": "use_all_dns_ips", "connections_max_idle_ms": 540000,
    "metric_reporters": [], "metrics_enabled": True, "metrics_num_samples": 2,
    "metrics_sample_window_ms": 30000, "metric_group_prefix": "consumer", "selector": None,
    "exclude_internal_topics": True, "sasl_mechanism": None, "sasl_plain_username": None,
    "sasl_plain_password": None, "sasl_kerberos_name": None, "sasl_kerberos_service_name": "kafka",
    "sasl_kerberos_domain_name": None, "sasl_oauth_token_provider": None, "proxy_url": None,
    "socks5_proxy": None, "kafka_client": None,
    "api_version_auto_timeout_ms": 2000, "legacy_iterator": False,  # kafka-python 2.0
}
_TS_TYPES = {"CreateTime": 0, "LogAppendTime": 1}
_MESSAGE_FIELDS = [attrgetter(f) for f in ("topic", "partition", "offset", "key", "value", "headers", "timestamp",
                                           "timestamp_type", "leader_epoch")]
_new_record = partial(tuple.__new__, ConsumerRecord)  # a NamedTuple from one tuple of its fields
_RESETS = {"earliest": "earliest", "latest": "latest", "none": "none", "smallest": "earliest", "largest": "latest"}


class ConsumerRebalanceListener:
    """kafka-python's rebalance listener interface (any object with these methods will do)."""

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Called before partitions are taken away (commit here)."""

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Called after partitions are assigned."""

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        """Called when the member was removed from the group; defaults to ``on_partitions_revoked``."""
        self.on_partitions_revoked(lost)


class AsyncConsumerRebalanceListener(abc.ABC):
    """kafka-python 3's listener with ``async def`` hooks: the shim runs each to completion
    (on a private event loop in a helper thread) where kafka-python's coordinator awaits it."""

    @abc.abstractmethod
    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Called before partitions are taken away (commit here)."""

    @abc.abstractmethod
    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Called after partitions are assigned."""

    async def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        """Called when the member was removed from the group; defaults to ``on_partitions_revoked``."""
        await self.on_partitions_revoked(lost)


class _Done:
    """A completed ``kafka.future.Future`` (what ``commit_async`` returns)."""

    def __init__(self, value: Any = None, exception: BaseException | None = None) -> None:
        self.value = value
        self.exception = exception
        self.is_done = True

    def succeeded(self) -> bool:
        return self.exception is None

    def failed(self) -> bool:
        return self.exception is not None

    def retriable(self) -> bool:
        return bool(getattr(self.exception, "retriable", False))

    def get(self, timeout: float | None = None) -> Any:
        if self.exception is not None:
            raise self.exception
        return self.value

    def add_callback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> _Done:
        """Call ``f(*args, value, **kwargs)`` now if it succeeded (it is done already)."""
        if self.exception is None:
            f(*args, self.value, **kwargs)
        return self

    def add_errback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> _Done:
        """Call ``f(*args, exception, **kwargs)`` now if it failed."""
        if self.exception is not None:
            f(*args, self.exception, **kwargs)
        return self

    def add_both(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> _Done:
        self.add_callback(f, *args, **kwargs)
        return self.add_errback(f, *args, **kwargs)

    def chain(self, future: Any) -> _Done:
        """Complete ``future`` (its ``success``/``failure``) as this one ended."""
        if self.exception is None:
            future.success(self.value)
        else:
            future.failure(self.exception)
        return self


def _named(value: Any, name: str) -> bool:
    """``value`` is a ``name`` NamedTuple: this shim's or the real kafka-python's."""
    return isinstance(value, tuple) and type(value).__name__ == name


def _valid_isolation_level(value: Any) -> bool:
    """Whether kafka-python's ``IsolationLevel.build_from`` takes ``value`` (the
    ``IsolationLevel`` enum or its value 0/1, or a name in any case, ``-`` for ``_``)."""
    try:
        if value in (0, 1):
            return True
    except Exception:  # noqa: BLE001 - an object whose == raises: not a level
        return False
    return str(value).strip().upper().replace("-", "_") in ("READ_UNCOMMITTED", "READ_COMMITTED")




class KafkaConsumer:
    """kafka-python's ``KafkaConsumer(*topics, **configs)`` over the embedded log its
    ``bootstrap_servers`` names (see ``embedlog.compat.registry``)."""

    DEFAULT_CONFIG = DEFAULT_CONFIG

    def __init__(self, *topics: str, **configs: Any) -> None:
        embedlog_config = _common.split_embedlog(configs)
        extra = set(configs) - set(DEFAULT_CONFIG)
        if extra:
            raise Errors.KafkaConfigurationError(f"Unrecognized configs: {extra}")
        self.config = {**DEFAULT_CONFIG, **configs}
        cfg = self.config
        reset = _RESETS.get(cfg["auto_offset_reset"])
        if reset is None:
            raise Errors.KafkaConfigurationError(f"Unrecognized auto_offset_reset: {cfg['auto_offset_reset']!r}")
        if not cfg["fetch_max_wait_ms"] < cfg["request_timeout_ms"] < cfg["connections_max_idle_ms"]:
            raise Errors.KafkaConfigurationError(
                f"connections_max_idle_ms ({cfg['connections_max_idle_ms']}) must be larger than request_timeout_ms "
                f"({cfg['request_timeout_ms']}) which must be larger than fetch_max_wait_ms "
                f"({cfg['fetch_max_wait_ms']}).")
        if cfg["group_instance_id"] is not None and cfg["group_id"] is None:
            raise Errors.KafkaConfigurationError("group_instance_id requires group_id")
        if cfg["group_id"] is not None and (not isinstance(cfg["group_id"], str) or not cfg["group_id"]):
            raise Errors.KafkaConfigurationError(f"group_id must be a non-empty str, got {cfg['group_id']!r}")
        if not _valid_isolation_level(cfg["isolation_level"]):
            raise Errors.KafkaConfigurationError("Unrecognized isolation_level")
        self._cluster = _common.cluster_for(cfg["bootstrap_servers"], embedlog_config)
        self._topics = _common.Topics(self._cluster, bool(cfg["allow_auto_create_topics"]))
        self._listener: Any = None
        strategy = _common.assignment_strategy(cfg["partition_assignment_strategy"])
        self._eager = strategy in EAGER
        self._revoked = False  # on_partitions_revoked was called since the last on_partitions_assigned
        self._listener_errors = True  # a listener's exception is raised (not during unsubscribe())
        try:
            self._consumer: Consumer = self._cluster.log.consumer(
                None, group=cfg["group_id"], auto_offset_reset=reset, max_poll_records=int(cfg["max_poll_records"]),
                enable_auto_commit=bool(cfg["enable_auto_commit"]),
                auto_commit_interval_ms=cfg["auto_commit_interval_ms"],
                on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost,
                session_timeout_ms=cfg["session_timeout_ms"], heartbeat_interval_ms=cfg["heartbeat_interval_ms"],
                max_poll_interval_ms=cfg["max_poll_interval_ms"],
                partition_assignment_strategy=strategy,
                client_id=str(cfg["client_id"] or ""))
        except el_errors.ConfigError as exc:
            raise Errors.KafkaConfigurationError(str(exc)) from exc
        self._sub = _common.Subscription(self._consumer, self._topics)
        self._user_assigned = False
        self._pending: deque[ConsumerRecord] = deque()  # fetched by the iterator, not yet yielded
        _common.drop_at_fork(self)
        self._closed = False
        if topics:
            self.subscribe(topics)

    # -- rebalance callbacks (from embedlog's membership, on the polling thread) ---------------
    def _call_listener(self, method: str, partitions: list[TopicPartition]) -> None:
        """Call the listener.  Like kafka-python 3.0, an exception it raises is logged and
        raised as ``KafkaError("User rebalance callback throws an error")`` from it, which
        embedlog's membership keeps until the rebalance step is done, then ``poll()`` raises."""
        if self._listener is None:
            return
        fn = getattr(self._listener, method, None)
        if fn is None and method == "on_partitions_lost":
            fn = self._listener.on_partitions_revoked
        try:
            _common.run_to_end(fn(list(partitions)))  # type: ignore[misc]  # (an async hook: to its end)
        except Exception as exc:
            _log.exception("User provided listener %s failed on %s", self._listener, method)
            if self._listener_errors:
                raise Errors.KafkaError("User rebalance callback throws an error") from exc

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        first: Errors.KafkaError | None = None
        if self._eager and not self._revoked:
            # eager assignors: kafka-python calls on_partitions_revoked before every join,
            # with the empty set when nothing was assigned (the first join, too)
            try:
                self._call_listener("on_partitions_revoked", [])
            except Errors.KafkaError as exc:
                first = exc
        self._revoked = False
        self._call_listener("on_partitions_assigned", partitions)
        if first is not None:
            raise first

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        self._drop_pending(partitions)
        self._revoked = True
        self._call_listener("on_partitions_revoked", partitions)

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        self._drop_pending(partitions)
        self._revoked = True
        self._call_listener("on_partitions_lost", partitions)

    # -- helpers -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise Errors.IllegalStateError("KafkaConsumer is closed")

    def _error(self, exc: el_errors.EmbedlogError) -> BaseException:
        if isinstance(exc, el_errors.OffsetOutOfRangeError) and "no position" in str(exc):
            return Errors.NoOffsetForPartitionError(str(exc))
        return _common.translate(exc, Errors)

    def _pending_first(self) -> dict[TopicPartition, int]:
        first: dict[TopicPartition, int] = {}
        for rec in self._pending:
            first.setdefault(TopicPartition(rec.topic, rec.partition), rec.offset)
        return first

    def _drop_pending(self, partitions: Iterable[TopicPartition] | None = None, *, rewind: bool = True) -> None:
        """Forget records fetched but not yet yielded (of ``partitions``, default all),
        moving those partitions back to the first one, as kafka-python's position is."""
        if not self._pending:
            return
        which = None if partitions is None else {TopicPartition(*tp) for tp in partitions}
        first = self._pending_first()
        keep: deque[ConsumerRecord] = deque()
        for rec in self._pending:
            if which is not None and (rec.topic, rec.partition) not in which:
                keep.append(rec)
        self._pending = keep
        if rewind:
            assigned = self._consumer.assignment()
            for tp, off in first.items():
                if (which is None or tp in which) and tp in assigned:
                    self._consumer.seek(tp, off)

    def _require_assigned(self, tp: Any, error: Callable[[str], BaseException] = Errors.IllegalStateError,
                          ) -> TopicPartition:
        checked = _common.as_tp(tp)
        if checked not in self._consumer.assignment():
            raise error("Partition is not assigned")
        return checked

    def _records(self, msgs: list[Message]) -> list[ConsumerRecord]:
        """kafka-python's ``ConsumerRecord``s of embedlog messages (the hot path of
        consuming: built column by column, without a Python call per record)."""
        if not msgs:
            return []
        topics, parts, offsets, keys, values, raw_headers, stamps, ts_types, epochs = (
            list(map(get, msgs)) for get in _MESSAGE_FIELDS)
        cfg = self.config
        kd, vd = cfg["key_deserializer"], cfg["value_deserializer"]
        headers = [list(h) if h else [] for h in raw_headers]  # the application may change its list
        key_sizes = [-1 if k is None else len(k) for k in keys]
        value_sizes = [-1 if v is None else len(v) for v in values]
        try:
            if kd is not None:
                keys = [_common.deserialize(kd, t, h, k) for t, h, k in zip(topics, headers, keys, strict=True)]
            if vd is not None:
                values = [_common.deserialize(vd, t, h, v) for t, h, v in zip(topics, headers, values, strict=True)]
        except Exception:  # noqa: BLE001 - the application's deserializer: see _rewind_to_failure
            keys, values = self._rewind_to_failure(msgs, headers)
            n = len(keys)
            del topics[n:], parts[n:], epochs[n:], offsets[n:], stamps[n:], ts_types[n:], headers[n:]
            del key_sizes[n:], value_sizes[n:]
        n = len(topics)
        return list(map(_new_record, zip(
            topics, parts, epochs, offsets, stamps, map(_TS_TYPES.__getitem__, ts_types), keys, values, headers,
            repeat(None, n), key_sizes, value_sizes, [_common.header_size(h) if h else -1 for h in headers])))

    def _rewind_to_failure(self, msgs: list[Message], headers: list[list[Any]]) -> tuple[list[Any], list[Any]]:
        """A deserializer raised for one of ``msgs``: deserialize them one at a time up to
        the first that fails, move each partition's position back to its first record
        from there (polled, but not handed out), and return the keys and values before
        it; raise the deserializer's exception if that is the very first (every poll then
        raises it again until the application seeks past the record: nothing is skipped)."""
        kd, vd = self.config["key_deserializer"], self.config["value_deserializer"]
        keys: list[Any] = []
        values: list[Any] = []
        error: Exception | None = None
        for m, h in zip(msgs, headers, strict=True):
            try:
                key = _common.deserialize(kd, m.topic, h, m.key) if kd is not None else m.key
                value = _common.deserialize(vd, m.topic, h, m.value) if vd is not None else m.value
            except Exception as exc:  # noqa: BLE001 - the application's deserializer
                error = exc
                break
            keys.append(key)
            values.append(value)
        if error is None:  # (it raised once, not again: they all deserialized)
            return keys, values
        _common.rewind(self._consumer, msgs[len(keys):])
        if not keys:
            raise error
        return keys, values

    def _fetch(self, timeout: float, max_records: int) -> list[Message]:
        """Poll embedlog, following subscribed topics that appear meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            self._sub.refresh()
            remaining = max(0.0, deadline - time.monotonic())
            waiting = self._sub.subscribed and (self._sub.pattern is not None
                                                or len(self._sub.active) < len(self._sub.names))
            try:
                if not self._consumer.assignment() and not self._sub.subscribed:
                    msgs: list[Message] = []
                    time.sleep(min(remaining, 0.05))
                else:
                    msgs = self._consumer.poll(min(remaining, self._sub.RECHECK) if waiting else remaining,
                                               max_records)
            except el_errors.EmbedlogError as exc:
                raise self._error(exc) from exc
            if msgs or time.monotonic() >= deadline:
                return msgs

    # -- consuming ---------------------------------------------------------------------------
    def poll(self, timeout_ms: float = 0, max_records: int | None = None,
             update_offsets: bool = True) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records since the last poll, by partition; waits up to ``timeout_ms`` for some."""
        if timeout_ms < 0:
            raise ValueError("Timeout must not be negative")
        if max_records is None:
            max_records = self.config["max_poll_records"]
        if not isinstance(max_records, int):
            raise TypeError("max_records must be an integer")
        if max_records <= 0:
            raise ValueError("max_records must be positive")
        self._check_open()
        self._drop_pending()
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        records = self._records(self._fetch(timeout_ms / 1000, max_records))
        start = 0
        for i in range(1, len(records) + 1):  # embedlog returns each partition's records together
            if i == len(records) or records[i][1] != records[start][1] or records[i][0] != records[start][0]:
                tp = TopicPartition(records[start][0], records[start][1])
                if tp in out:
                    out[tp].extend(records[start:i])
                else:
                    out[tp] = records[start:i]
                start = i
        return out

    def __iter__(self) -> Iterator[ConsumerRecord]:
        return self

    def __next__(self) -> ConsumerRecord:
        if self._closed:
            raise StopIteration("KafkaConsumer closed")
        timeout = self.config["consumer_timeout_ms"]
        deadline = time.monotonic() + (timeout / 1000 if timeout >= 0 else 0)
        while True:
            if self._pending:
                return self._pending.popleft()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                raise StopIteration
            self._pending.extend(self._records(self._fetch(min(remaining, 1.0), self.config["max_poll_records"])))

    # -- assignment --------------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str] = (), pattern: str | None = None, listener: Any = None) -> None:
        """Subscribe to topics (or a regex ``pattern``); with ``group_id``, share them with the group."""
        self._check_open()
        topics = list(topics) if not isinstance(topics, str) else topics
        if not topics and not pattern:
            raise ValueError("Must provide topics or pattern")
        if (topics and pattern) or self._user_assigned:
            raise Errors.IllegalStateError(
                "You must choose only one way to configure your consumer: (1) subscribe to specific topics by "
                "name, (2) subscribe to topics matching a regex pattern, (3) assign itself specific "
                "topic-partitions.")
        if isinstance(topics, str):
            raise TypeError("Topics must be a list (or non-str sequence)")
        if listener is not None and not (hasattr(listener, "on_partitions_assigned")
                                         and hasattr(listener, "on_partitions_revoked")):
            raise TypeError("listener must be a ConsumerRebalanceListener")
        for t in topics:
            if not isinstance(t, str):
                raise TypeError(f"topic names must be str, got {t!r}")
        self._drop_pending()  # (back to the first record not yielded: kafka-python's position)
        self._listener = listener
        try:
            self._sub.set(topics, pattern)
        except el_errors.InvalidTopicError as exc:
            raise Errors.InvalidTopicError(str(exc)) from exc

    def subscription(self) -> set[str] | None:
        """The subscribed topic names (``None`` if not subscribed)."""
        if self._sub.pattern is not None:
            return set(self._sub.active)
        return set(self._sub.names) if self._sub.names else None

    def unsubscribe(self) -> None:
        """Leave the group (if any) and drop every partition."""
        self._check_open()
        self._drop_pending()  # (back to the first record not yielded: what the group then gets)
        self._maybe_auto_commit()
        self._sub.clear()
        self._user_assigned = False
        self._listener_errors = False  # (kafka-python calls no listener here: an exception is only logged)
        try:
            self._consumer.unsubscribe()
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc
        finally:
            self._listener_errors = True
        self._revoked = False

    def assign(self, partitions: Iterable[Any]) -> None:
        """Consume exactly these partitions (no group rebalancing)."""
        self._check_open()
        tps = [_common.as_tp(tp) for tp in partitions]
        if not tps:
            self.unsubscribe()
            return
        if self._sub.subscribed:
            raise Errors.IllegalStateError(
                "You must choose only one way to configure your consumer: (1) subscribe to specific topics by "
                "name, (2) subscribe to topics matching a regex pattern, (3) assign itself specific "
                "topic-partitions.")
        self._drop_pending(set(self._consumer.assignment()) - set(tps))
        for tp in tps:
            if not self._topics.ensure(tp.topic):
                raise Errors.UnknownTopicOrPartitionError(f"topic {tp.topic!r} does not exist")
        try:
            self._consumer.assign(tps)
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc
        self._user_assigned = True

    def assignment(self) -> set[TopicPartition]:
        """The assigned partitions."""
        return self._consumer.assignment()

    def topics(self) -> set[str]:
        """Every topic in the log."""
        self._check_open()
        return set(self._cluster.log.topics())

    def partitions_for_topic(self, topic: str) -> set[int]:
        """The topic's partition ids (empty if it does not exist, as kafka-python 3 returns)."""
        self._check_open()
        if topic not in self._cluster.log.topics():
            return set()
        return set(range(self._topics.partitions(topic, max_age=0)))

    # -- positions ---------------------------------------------------------------------------
    def position(self, partition: Any, timeout_ms: float | None = None) -> int:
        """The offset of the next record to be returned for ``partition``."""
        self._check_open()
        tp = self._require_assigned(partition)
        pending = self._pending_first().get(tp)
        if pending is not None:
            return pending
        try:
            return self._consumer.position(tp)
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc

    def highwater(self, partition: Any) -> int | None:
        """The partition's end offset (the real client knows it after its first fetch)."""
        tp = self._require_assigned(partition)
        return self._consumer.end_offsets([tp])[tp]

    def seek(self, partition: Any, offset: int) -> None:
        """Make ``offset`` the next offset to read from ``partition``."""
        self._check_open()
        tp = _common.as_tp(partition)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError("Offset must be int >= 0")
        if tp not in self._consumer.assignment():
            raise ValueError("Unassigned partition")
        self._drop_pending([tp], rewind=False)
        self._consumer.seek(tp, offset)

    def _seek_targets(self, partitions: tuple[Any, ...]) -> list[TopicPartition]:
        assigned = self._consumer.assignment()
        if not partitions:
            if not assigned:
                raise ValueError("No partitions are currently assigned")
            return sorted(assigned)
        tps = [_common.as_tp(p) for p in partitions]
        for tp in tps:
            if tp not in assigned:
                raise ValueError(f"Unassigned partition: {tp}")
        return tps

    def seek_to_beginning(self, *partitions: Any) -> None:
        """Move to the first stored offset of the given (default: all assigned) partitions."""
        self._check_open()
        tps = self._seek_targets(partitions)
        self._drop_pending(tps, rewind=False)
        self._consumer.seek_to_beginning(*tps)

    def seek_to_end(self, *partitions: Any) -> None:
        """Move to the end offset of the given (default: all assigned) partitions."""
        self._check_open()
        tps = self._seek_targets(partitions)
        self._drop_pending(tps, rewind=False)
        self._consumer.seek_to_end(*tps)

    def pause(self, *partitions: Any) -> None:
        """Stop returning records of these partitions (positions are kept)."""
        tps = [_common.as_tp(p) for p in partitions]
        assigned = self._consumer.assignment()
        for tp in tps:
            if tp not in assigned:
                raise Errors.IllegalStateError(f"No current assignment for partition {tp}")
        self._drop_pending(tps)
        self._consumer.pause(*tps)

    def resume(self, *partitions: Any) -> None:
        """Return records of these partitions again (``KeyError`` for one not assigned,
        as kafka-python's subscription state raises)."""
        tps = [_common.as_tp(p) for p in partitions]
        assigned = self._consumer.assignment()
        for tp in tps:
            if tp not in assigned:
                raise KeyError(tp)
        self._consumer.resume(*tps)

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return self._consumer.paused()

    def beginning_offsets(self, partitions: Iterable[Any],
                          timeout_ms: float | None = None) -> dict[TopicPartition, int]:
        """The first stored offset of each partition."""
        self._check_open()
        try:
            return self._consumer.beginning_offsets(self._topics.existing(partitions, Errors))
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc

    def end_offsets(self, partitions: Iterable[Any], timeout_ms: float | None = None) -> dict[TopicPartition, int]:
        """The offset the next record written to each partition will get."""
        self._check_open()
        try:
            return self._consumer.end_offsets(self._topics.existing(partitions, Errors))
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc

    def offsets_for_times(self, timestamps: Mapping[Any, int],
                          timeout_ms: float | None = None) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition, the earliest offset whose timestamp is >= the one given (or ``None``)."""
        self._check_open()
        asked = {_common.as_tp(tp): ts for tp, ts in timestamps.items()}
        for tp, ts in asked.items():
            if ts < 0:
                raise ValueError(f"The target time for partition {tp} is {ts}. The target time cannot be negative.")
        self._topics.existing(asked, Errors)
        try:
            found = self._consumer.offsets_for_times(asked)
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc
        return {tp: None if hit is None else OffsetAndTimestamp(hit.offset, hit.timestamp, -1)
                for tp, hit in found.items()}

    # -- committed offsets -------------------------------------------------------------------
    def _require_group(self) -> None:
        if self.config["group_id"] is None:
            raise Errors.IllegalStateError("Requires group_id")

    def _consumed_offsets(self) -> dict[TopicPartition, Any] | None:
        """What ``commit()`` commits: positions, with the iterator's not-yet-yielded records
        counted as not consumed (``None``: embedlog's own positions are right)."""
        if not self._pending:
            return None
        # (the partitions with a position only, as kafka-python's all_consumed_offsets:
        # asking one would resolve it, and commit an offset never reached)
        out: dict[TopicPartition, Any] = dict(self._consumer._consumed())
        assigned = self._consumer.assignment()
        out.update((tp, off) for tp, off in self._pending_first().items() if tp in assigned)
        return out

    def commit(self, offsets: Mapping[Any, Any] | None = None, timeout_ms: float | None = None) -> None:
        """Commit offsets (default: what was consumed) for the group; durable on return.

        Values are ``OffsetAndMetadata`` (or plain offsets): the *next* offset to read.
        Raises ``CommitFailedError`` when the group has moved the partition elsewhere.
        """
        self._check_open()
        self._require_group()
        if offsets is None:
            todo = self._consumed_offsets()
        else:
            # as kafka-python's coordinator checks (a plain int or tuple fails with the real client)
            if not all(_named(tp, "TopicPartition") for tp in offsets) or \
                    not all(_named(v, "OffsetAndMetadata") for v in offsets.values()):
                raise TypeError("offsets must be dict[TopicPartition, OffsetAndMetadata]")
            todo = {_common.as_tp(tp): (value[0], value[1] or "") for tp, value in offsets.items()}
        try:
            self._consumer._commit(cast("dict[TopicPartition, int] | None", todo), manual_too=False)
        except (el_errors.IllegalGenerationError, el_errors.NotAssignedError) as exc:
            raise Errors.CommitFailedError(str(exc)) from exc
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc

    def commit_async(self, offsets: Mapping[Any, Any] | None = None,
                     callback: Callable[[Any, Any], Any] | None = None) -> _Done:
        """Commit now (embedlog commits are local and fast); call ``callback(offsets,
        response)`` as kafka-python does: ``offsets`` the ``{TopicPartition:
        OffsetAndMetadata}`` committed (what was consumed, without ``offsets``),
        ``response`` ``None`` or the exception."""
        self._require_group()
        shown: Mapping[Any, Any]
        if offsets is None:
            consumed = self._consumed_offsets()
            if consumed is None:  # (the partitions with a position only, as kafka-python's all_consumed_offsets:
                consumed = self._consumer._consumed()  # asking one would resolve it, and commit it)
            shown = {TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(off, "", -1)
                     for tp, off in consumed.items()}
        else:
            shown = offsets
        done: _Done
        try:
            self.commit(offsets)
            done = _Done(None)
        except Errors.KafkaError as exc:
            done = _Done(exception=exc)
        cb = callback or self.config["default_offset_commit_callback"]
        if cb is not None:
            cb(shown, done.exception)
        return done

    def committed(self, partition: Any, metadata: bool = False,
                  timeout_ms: float | None = None) -> int | OffsetAndMetadata | None:
        """The group's committed offset for ``partition`` (``None`` if none)."""
        self._check_open()
        self._require_group()
        tp = _common.as_tp(partition)
        if tp.topic not in self._cluster.log.topics():
            return None
        try:
            om = self._consumer.committed([tp], metadata=True)[tp]
        except el_errors.EmbedlogError as exc:
            raise self._error(exc) from exc
        if om is None:
            return None
        return OffsetAndMetadata(om.offset, om.metadata, -1) if metadata else om.offset

    def group_metadata(self) -> ConsumerGroupMetadata:
        """The group identity to pass to a transactional producer."""
        if self.config["group_id"] is None:
            return ConsumerGroupMetadata(None)
        core = self._consumer.group_metadata()
        group, member = core
        joined = member is not None and bool(self._consumer.assignment())
        metadata = _MemberMetadata(group, -1, member or "", self.config["group_instance_id"],
                                   "STABLE" if joined else "UNJOINED")
        metadata._core = core  # (the partitions the member owns now: offsets sent with it are fenced by them)
        return metadata

    def _maybe_auto_commit(self) -> None:
        if self.config["enable_auto_commit"] and self.config["group_id"] is not None:
            with contextlib.suppress(el_errors.EmbedlogError):  # fenced after a rebalance: nothing to keep
                self._consumer._commit(cast("dict[TopicPartition, int] | None", self._consumed_offsets()),
                                       manual_too=False)

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self, autocommit: bool = True, timeout_ms: float | None = None) -> None:
        """Commit consumed offsets (with auto-commit on), leave the group, release (idempotent)."""
        if self._closed:
            return
        if not self._cluster.log.closed:
            # back to the first record not yielded: the member's last commit (on revoke)
            # must not cover records an iteration fetched but never returned
            with contextlib.suppress(el_errors.EmbedlogError):
                self._drop_pending()
            if autocommit:
                self._maybe_auto_commit()
        if not autocommit:  # (kafka-python commits nothing then: nor may the member as it leaves)
            self._consumer.enable_auto_commit = False
        self._pending.clear()
        try:
            # (not closed yet: kafka-python calls on_partitions_revoked from close() so
            # that the listener can still commit while the member owns the partitions)
            self._consumer.close()
        finally:
            self._closed = True
            _common.close_each(self.config["key_deserializer"], self.config["value_deserializer"])

    def metrics(self, raw: bool = False) -> dict[str, Any]:
        """An empty metrics dict (embedlog keeps its own: ``log.metrics()``)."""
        return {}

    def bootstrap_connected(self) -> bool:
        return not self._cluster.log.closed

    def __enter__(self) -> KafkaConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

