"""The kafka-python and aiokafka shims' error modules mirror their real libraries' trees.

Both are built by ``embedlog.compat._error_classes`` from one line per class; this checks
that each still has the real module's names, hierarchy, codes and flags, and that each
class also derives from the real class of the same name (so ``except kafka.errors.X``
catches the shim's ``X``).
"""

from __future__ import annotations

import pickle
from types import ModuleType

import pytest

from embedlog.compat._error_classes import ErrorFactory
from embedlog.compat.aiokafka import errors as aio_errors
from embedlog.compat.kafka_python import errors as kp_errors

SHIMS = {"kafka.errors": kp_errors, "aiokafka.errors": aio_errors}


def _classes(module: ModuleType) -> dict[str, type]:
    return {name: getattr(module, name) for name in module.__all__ if isinstance(getattr(module, name), type)}


@pytest.mark.parametrize("real_name", list(SHIMS))
def test_each_class_mirrors_the_real_one(real_name: str) -> None:
    real = pytest.importorskip(real_name)
    shim = SHIMS[real_name]
    for name, ours in _classes(shim).items():
        theirs = getattr(real, name, None)
        assert theirs is not None, f"{real_name} has no {name}: the shim must not invent names"
        assert issubclass(ours, theirs), name
        for base in theirs.__mro__[1:]:  # the real hierarchy, as far as the shim has the classes
            mirrored = getattr(shim, base.__name__, None)
            if base.__module__ == real_name and isinstance(mirrored, type):
                assert issubclass(ours, mirrored), f"{name} should derive from the shim's {base.__name__}"
        for attr in ("errno", "retriable", "invalid_metadata"):
            assert getattr(ours, attr, None) == getattr(theirs, attr, None), (name, attr)
        if isinstance(getattr(theirs, "message", None), str):
            assert ours.message == theirs.message, name


@pytest.mark.parametrize("real_name", list(SHIMS))
def test_codes_map_to_the_same_names(real_name: str) -> None:
    real = pytest.importorskip(real_name)
    shim = SHIMS[real_name]
    for name, ours in _classes(shim).items():
        errno = getattr(ours, "errno", None)
        if isinstance(errno, int) and errno != -1:
            assert shim.for_code(errno) is ours
            assert real.for_code(errno).__name__ == name
    assert shim.for_code(9999) is shim.UnknownError


def test_the_classes_behave_like_written_ones() -> None:
    e = kp_errors.UnknownTopicOrPartitionError("nope")
    assert str(e) == "[Error 3] UnknownTopicOrPartitionError: nope"
    assert type(pickle.loads(pickle.dumps(e))) is kp_errors.UnknownTopicOrPartitionError
    assert kp_errors.UnknownTopicOrPartitionError.__module__ == "embedlog.compat.kafka_python.errors"
    assert aio_errors.ProducerFenced().args[0].startswith("There is a newer producer")
    assert str(aio_errors.NotEnoughReplicasError()) == "[Error 19] NotEnoughReplicasError"
    assert aio_errors.NotEnoughReplicasError.retriable
    assert aio_errors.ConsumerStoppedError.__doc__


def test_the_factory_without_the_real_library() -> None:
    factory = ErrorFactory("mymodule", "no_such_library_for_sure.errors")
    assert factory.real("KafkaError", RuntimeError) == (RuntimeError,)

    class Root(Exception):
        pass

    broker = factory.broker_errors(Root)
    made = broker("Boom", 42, "BOOM", retriable=True)
    assert made.__mro__[1:3] == (Root, Exception)
    assert (made.errno, made.message, made.retriable, made.__module__, made.__qualname__) == (
        42, "BOOM", True, "mymodule", "Boom")
    assert broker.by_code == {42: made}
