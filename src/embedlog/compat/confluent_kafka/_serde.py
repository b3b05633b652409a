"""``SerializingProducer`` and ``DeserializingConsumer``: the shim's ``Producer`` and
``Consumer`` with confluent-kafka's ``key.serializer``/``value.serializer`` and
``key.deserializer``/``value.deserializer`` (callables ``(obj, SerializationContext)``).

The Schema-Registry ``*.builder`` properties are not supported.  The error classes
(``KeySerializationError``, ``ConsumeError``...) and ``SerializationContext`` are the
real ones when confluent-kafka is installed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._consumer import Consumer
from ._errors import ERR_INVALID_ARG, KafkaError, KafkaException, kafka_error, name_fallbacks, pick
from ._producer import DeliveryCallback, Producer
from ._types import Message

__all__ = [
    "ConsumeError", "DeserializingConsumer", "KeyDeserializationError", "KeySerializationError", "MessageField",
    "ProduceError", "SerializationContext", "SerializationError", "SerializingProducer", "ValueDeserializationError",
    "ValueSerializationError",
]

_KEY_DESERIALIZATION = -160
_VALUE_DESERIALIZATION = -159
_KEY_SERIALIZATION = -162
_VALUE_SERIALIZATION = -161


class PyMessageField(str, enum.Enum):
    """Which part of a message a (de)serializer handles."""

    NONE = "none"
    KEY = "key"
    VALUE = "value"

    def __str__(self) -> str:
        return str(self.value)


class PySerializationContext:
    """Topic, field and headers, handed to (de)serializers."""

    def __init__(self, topic: str, field: Any, headers: Any = None) -> None:
        self.topic = topic
        self.field = field
        self.headers = headers


class PySerializationError(KafkaException):
    """Generic (de)serialization error."""


class _ClientError(KafkaException):
    def __init__(self, kafka_error: KafkaError, exception: BaseException | None = None,
                 kafka_message: Message | None = None) -> None:
        super().__init__(kafka_error)
        self.exception = exception
        self.kafka_message = kafka_message

    @property
    def code(self) -> int:
        """The error code."""
        return int(self.args[0].code())

    @property
    def name(self) -> str:
        """The error code's name."""
        return str(self.args[0].name())


class PyConsumeError(_ClientError):
    """An error event returned by ``poll()`` (raised by ``DeserializingConsumer.poll``)."""


class PyProduceError(_ClientError):
    """An error while producing."""

    def __init__(self, kafka_error: KafkaError, exception: BaseException | None = None) -> None:
        super().__init__(kafka_error, exception, None)


class PyKeyDeserializationError(PyConsumeError, PySerializationError):
    """The key deserializer failed."""

    def __init__(self, exception: BaseException | None = None, kafka_message: Message | None = None) -> None:
        super().__init__(kafka_error(_KEY_DESERIALIZATION, str(exception)), exception, kafka_message)


class PyValueDeserializationError(PyConsumeError, PySerializationError):
    """The value deserializer failed."""

    def __init__(self, exception: BaseException | None = None, kafka_message: Message | None = None) -> None:
        super().__init__(kafka_error(_VALUE_DESERIALIZATION, str(exception)), exception, kafka_message)


class PyKeySerializationError(PyProduceError, PySerializationError):
    """The key serializer failed."""

    def __init__(self, exception: BaseException | None = None) -> None:
        super().__init__(kafka_error(_KEY_SERIALIZATION, str(exception)), exception)


class PyValueSerializationError(PyProduceError, PySerializationError):
    """The value serializer failed."""

    def __init__(self, exception: BaseException | None = None) -> None:
        super().__init__(kafka_error(_VALUE_SERIALIZATION, str(exception)), exception)


name_fallbacks(PyMessageField, PySerializationContext, PySerializationError, PyConsumeError, PyProduceError,
               PyKeyDeserializationError, PyValueDeserializationError, PyKeySerializationError,
               PyValueSerializationError)


if TYPE_CHECKING:
    MessageField = PyMessageField
    SerializationContext = PySerializationContext
    SerializationError = PySerializationError
    ConsumeError = PyConsumeError
    ProduceError = PyProduceError
    KeyDeserializationError = PyKeyDeserializationError
    ValueDeserializationError = PyValueDeserializationError
    KeySerializationError = PyKeySerializationError
    ValueSerializationError = PyValueSerializationError
else:
    MessageField = pick("confluent_kafka.serialization", "MessageField", PyMessageField)
    SerializationContext = pick("confluent_kafka.serialization", "SerializationContext", PySerializationContext)
    SerializationError = pick("confluent_kafka.serialization", "SerializationError", PySerializationError)
    ConsumeError = pick("confluent_kafka.error", "ConsumeError", PyConsumeError)
    ProduceError = pick("confluent_kafka.error", "ProduceError", PyProduceError)
    KeyDeserializationError = pick("confluent_kafka.error", "KeyDeserializationError", PyKeyDeserializationError)
    ValueDeserializationError = pick("confluent_kafka.error", "ValueDeserializationError",
                                     PyValueDeserializationError)
    KeySerializationError = pick("confluent_kafka.error", "KeySerializationError", PyKeySerializationError)
    ValueSerializationError = pick("confluent_kafka.error", "ValueSerializationError", PyValueSerializationError)

Serde = Callable[[Any, Any], Any]


def _pop_serdes(conf: Mapping[str, Any] | None, key_name: str, value_name: str) -> tuple[Serde | None, Serde | None,
                                                                                        dict[str, Any]]:
    rest = dict(conf or {})
    for name in (key_name, value_name):
        if f"{name}.builder" in rest:
            raise KafkaException(kafka_error(ERR_INVALID_ARG, f"{name}.builder (Schema Registry builders) is not "
                                             "supported by embedlog's shim: pass a ready-made serializer"))
    k = rest.pop(key_name, None)
    v = rest.pop(value_name, None)
    for name, fn in ((key_name, k), (value_name, v)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be callable")
    return k, v, rest


class SerializingProducer(Producer):
    """``Producer`` with ``key.serializer``/``value.serializer`` (``(obj, ctx) -> bytes``)."""

    def __init__(self, conf: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        self._key_serializer, self._value_serializer, rest = _pop_serdes({**(conf or {}), **kwargs},
                                                                         "key.serializer", "value.serializer")
        super().__init__(rest)

    def produce(self, topic: str, key: Any = None, value: Any = None, partition: int = -1,  # type: ignore[override]
                on_delivery: DeliveryCallback | None = None, timestamp: int = 0, headers: Any = None) -> None:
        """Serialize ``key`` and ``value`` (``KeySerializationError``/``ValueSerializationError``
        on failure), then produce."""
        self._check_open()
        if not isinstance(topic, str):
            raise TypeError(f"topic must be a str, not {type(topic).__name__}")
        ctx = SerializationContext(topic, MessageField.KEY, headers)
        if self._key_serializer is not None:
            try:
                key = self._key_serializer(key, ctx)
            except Exception as exc:
                raise KeySerializationError(exc) from exc
        ctx.field = MessageField.VALUE
        if self._value_serializer is not None:
            try:
                value = self._value_serializer(value, ctx)
            except Exception as exc:
                raise ValueSerializationError(exc) from exc
        super().produce(topic, value, key, partition=partition, on_delivery=on_delivery, timestamp=timestamp,
                        headers=headers)


class DeserializingConsumer(Consumer):
    """``Consumer`` with ``key.deserializer``/``value.deserializer``; ``poll()`` raises
    ``ConsumeError`` for error events, as the real one does."""

    def __init__(self, conf: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        self._key_deserializer, self._value_deserializer, rest = _pop_serdes(
            {**(conf or {}), **kwargs}, "key.deserializer", "value.deserializer")
        super().__init__(rest)

    def poll(self, timeout: float = -1) -> Message | None:
        """The next message, deserialized; ``None`` on timeout; raises ``ConsumeError`` for events."""
        msg = super().poll(timeout)
        if msg is None:
            return None
        error = msg.error()
        if error is not None:
            raise ConsumeError(error, kafka_message=msg)
        topic = msg.topic()
        assert topic is not None
        ctx = SerializationContext(topic, MessageField.KEY, msg.headers())
        key = msg.key()
        if self._key_deserializer is not None:
            try:
                key = self._key_deserializer(key, ctx)
            except Exception as exc:
                raise KeyDeserializationError(exception=exc, kafka_message=msg) from exc
        value = msg.value()
        if self._value_deserializer is not None:
            ctx.field = MessageField.VALUE
            try:
                value = self._value_deserializer(value, ctx)
            except Exception as exc:
                raise ValueDeserializationError(exception=exc, kafka_message=msg) from exc
        msg.set_key(key)
        msg.set_value(value)
        return msg

    def consume(self, num_messages: int = 1, timeout: float | None = -1) -> list[Message]:
        """Not available on a ``DeserializingConsumer`` (as in confluent-kafka): use ``poll()``."""
        raise NotImplementedError
