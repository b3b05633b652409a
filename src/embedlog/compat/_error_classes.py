"""Error classes of a shim, each one also a subclass of the real library's class of the same name.

kafka-python's ``kafka.errors`` and aiokafka's ``aiokafka.errors`` are trees of the same
shape (a ``KafkaError`` root, plain subclasses, and ``BrokerResponseError`` subclasses
that differ only in ``errno`` and ``message``) with different names and roots.  Each
shim's errors module keeps its library's names and hierarchy and builds the plain
classes with one :class:`ErrorFactory` call each.  When the real library is installed,
every class also derives from the real class of the same name, so application code
written against the library (``except kafka.errors.KafkaTimeoutError``) catches what
the shim raises.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any, Generic, TypeVar, cast

__all__ = ["BrokerErrors", "ErrorFactory", "broker_error_str", "kafka_error_str"]

E = TypeVar("E", bound=BaseException)


def _import(name: str) -> ModuleType | None:
    try:
        with warnings.catch_warnings():  # the library's own deprecation noise, not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(name)
    except ImportError:  # the library is optional
        return None


def kafka_error_str(error: BaseException) -> str:
    """Both libraries' ``KafkaError.__str__``: ``Name: message``, or ``Name`` without arguments."""
    if not error.args:
        return type(error).__name__
    return f"{type(error).__name__}: {Exception.__str__(error)}"


def broker_error_str(error: Any) -> str:
    """Both libraries' ``BrokerResponseError.__str__``: ``[Error errno] Name: message``."""
    return f"[Error {error.errno}] {kafka_error_str(error)}"


class ErrorFactory:
    """Makes the error classes of the shim module ``module`` mirroring ``real_module``."""

    def __init__(self, module: str, real_module: str) -> None:
        self.module = module
        self.real_module = _import(real_module)

    def real(self, name: str, *fallback: type) -> tuple[type, ...]:
        """``(real class,)`` if the real library has an exception class ``name``, else ``fallback``."""
        cls = getattr(self.real_module, name, None)
        return (cls,) if isinstance(cls, type) and issubclass(cls, BaseException) else fallback

    def __call__(self, name: str, base: type[E], *more: type, doc: str | None = None, **attrs: Any) -> type[E]:
        """The class ``name(base, *more, <real name>)`` with class attributes ``attrs``.

        A base that the real class already derives from is left out (``Exception`` for
        aiokafka's ``ConsumerStoppedError``), so the method resolution order stays valid.
        """
        real = self.real(name)
        if real:  # the installed version's flags (aiokafka 0.13 made KafkaStorageError retriable)
            for flag in ("retriable", "invalid_metadata"):
                if flag in attrs and isinstance(getattr(real[0], flag, None), bool):
                    attrs[flag] = getattr(real[0], flag)
        bases = tuple(b for b in (base, *more) if not (real and issubclass(real[0], b))) + real
        namespace = {"__module__": self.module, "__qualname__": name, "__doc__": doc, **attrs}
        return type(name, bases, namespace)

    def broker_errors(self, base: type[E]) -> BrokerErrors[E]:
        """A maker of ``base`` subclasses, one per Kafka error code (see :class:`BrokerErrors`)."""
        return BrokerErrors(self, base)


class BrokerErrors(Generic[E]):
    """Makes the classes of broker error codes and keeps them by code (``kafka_errors``)."""

    def __init__(self, factory: ErrorFactory, base: type[E]) -> None:
        self.factory = factory
        self.base = base
        self.by_code: dict[int, type[E]] = {}

    def __call__(self, name: str, errno: int, message: str, *first: type, **attrs: Any) -> type[E]:
        """The class of error code ``errno``; ``first`` are bases before the broker base
        (kafka-python's ``UnknownTopicOrPartitionError(InvalidMetadataError, BrokerResponseError)``)."""
        bases = (*first, self.base)
        cls = cast("type[E]", self.factory(name, bases[0], *bases[1:], errno=errno, message=message, **attrs))
        self.by_code[errno] = cls
        return cls
