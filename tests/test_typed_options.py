"""The options of ``embedlog.open``, ``log.producer``, ``log.consumer`` and
``log.transaction`` are ``**options`` at run time (an unknown one is a ``ConfigError``
naming the known ones) and typed for type checkers in an ``if TYPE_CHECKING`` branch of
``log.py``: these declarations must name the same options, with the same defaults and
annotations, as the classes that take them."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

import embedlog
from embedlog.errors import ConfigError

LOG_PY = Path(embedlog.__file__).with_name("log.py")


def _declared() -> dict[str, ast.FunctionDef]:
    """The functions defined under ``if TYPE_CHECKING:`` in log.py (module and ``Log``)."""
    tree = ast.parse(LOG_PY.read_text())
    out: dict[str, ast.FunctionDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out.update({f.name: f for f in node.body if isinstance(f, ast.FunctionDef)})
    return out


def _options(fn: ast.FunctionDef) -> dict[str, tuple[str, Any]]:
    args = fn.args
    return {a.arg: (ast.unparse(a.annotation) if a.annotation else "", _value(d))
            for a, d in zip(args.kwonlyargs, args.kw_defaults)}


def _value(node: ast.expr | None) -> Any:
    """A default as written in log.py (a constant, or arithmetic such as ``1 << 20``)."""
    if node is None:
        return inspect.Parameter.empty
    return eval(compile(ast.Expression(node), str(LOG_PY), "eval"), {"__builtins__": {}})


def _taken(cls: type) -> dict[str, tuple[str, Any]]:
    params = inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
    return {p.name: (str(p.annotation), p.default) for p in params
            if p.kind is p.KEYWORD_ONLY and not p.name.startswith("_")}


@pytest.mark.parametrize(("name", "cls"), [("open", embedlog.Log), ("producer", embedlog.Producer),
                                           ("transaction", embedlog.Producer), ("consumer", embedlog.Consumer)])
def test_the_typed_declarations_name_the_options_the_classes_take(name: str, cls: type) -> None:
    declared = _options(_declared()[name])
    taken = _taken(cls)
    assert list(declared) == list(taken)
    for option, (annotation, default) in declared.items():
        assert (annotation, default) == taken[option], option


def test_an_unknown_option_is_still_a_config_error_naming_the_known_ones() -> None:
    with embedlog.open() as log:
        for call in (lambda: log.producer(lingr_ms=1), lambda: log.consumer(grup="g"),
                     lambda: log.transaction(ack="all"), lambda: embedlog.open(durabilty="none")):
            with pytest.raises(ConfigError, match=r"has no option .*its options are"):
                call()
