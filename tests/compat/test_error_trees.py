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
            # a code has one class (kafka-python's IncompatibleBrokerVersion shares 35 with UnsupportedVersionError)
            assert shim.for_code(errno).__name__ == real.for_code(errno).__name__
            if real.for_code(errno) is getattr(real, name):
                assert shim.for_code(errno) is ours
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


COMMONLY_CAUGHT = {
    "kafka.errors": ["KafkaConnectionError", "NotLeaderForPartitionError", "LeaderNotAvailableError",
                     "NodeNotReadyError", "NotCoordinatorError", "CoordinatorNotAvailableError",
                     "TopicAuthorizationFailedError", "KafkaProtocolError", "NoBrokersAvailable"],
    "aiokafka.errors": ["KafkaConnectionError", "NotLeaderForPartitionError", "LeaderNotAvailableError",
                        "NoBrokersAvailable", "RequestTimedOutError", "NotCoordinatorError",
                        "CoordinatorNotAvailableError", "RebalanceInProgressError", "TopicAuthorizationFailedError"],
}


@pytest.mark.parametrize("real_name", list(SHIMS))
def test_commonly_caught_names_exist_where_the_real_module_has_them(real_name: str) -> None:
    """Application code that does ``except errors.NotLeaderForPartitionError`` must import."""
    real = pytest.importorskip(real_name)
    shim = SHIMS[real_name]
    for name in COMMONLY_CAUGHT[real_name]:
        theirs = getattr(real, name, None)
        if theirs is None:  # kafka-python 3 has no NoBrokersAvailable
            assert not hasattr(shim, name), name
            continue
        ours = getattr(shim, name)
        assert issubclass(ours, theirs), name
        assert getattr(ours, "errno", None) == getattr(theirs, "errno", None), name
        assert ours.retriable == theirs.retriable, name
    assert issubclass(kp_errors.NotLeaderForPartitionError, kp_errors.InvalidMetadataError)
    assert issubclass(kp_errors.KafkaConnectionError, kp_errors.RetriableError)


def test_aliases_are_the_real_modules_aliases() -> None:
    real = pytest.importorskip("aiokafka.errors")
    for alias in ("CoordinatorNotAvailableError", "NotCoordinatorError", "CoordinatorLoadInProgressError",
                  "InvalidMessageError"):
        assert getattr(aio_errors, alias).__name__ == getattr(real, alias).__name__, alias
