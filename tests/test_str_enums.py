"""bsecrets.str_enums.StrEnum makes the class enum.StrEnum makes, through the standard
library's fast path (the reason: start-up, bench/README.md).

Every enum of the package, rebuilt from its own source with enum.StrEnum, behaves the
same: members in order, lookups by value and name and their errors, str/repr/format,
JSON, hashing and equality with the text, pickling, copying, the class's name, module
and docstring. The fallback (no ``enum._simple_enum``) is checked the same way, and the
bodies the fast path does not support are refused."""

from __future__ import annotations

import copy
import enum
import json
import pickle
import warnings
from typing import Any

import pytest
from helpers.package_classes import package_classes, rebuilt

from bsecrets import str_enums
from bsecrets.str_enums import StrEnum

ENUMS: list[type[enum.StrEnum]] = package_classes(lambda cls: issubclass(cls, enum.StrEnum))


def _with_enum(cls: type) -> type[enum.StrEnum]:
    """``cls`` made again from its source by enum.StrEnum, in its module's globals."""
    made = rebuilt(cls, StrEnum=enum.StrEnum)
    assert issubclass(made, enum.StrEnum)
    return made


def _outcome(call: Any) -> Any:
    try:
        with warnings.catch_warnings():  # 3.11: `"text" in cls` is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            return ("ok", call())
    except Exception as exc:  # the same error, the same text
        return (type(exc).__name__, str(exc))


def _behaviour(cls: type[enum.StrEnum]) -> dict[str, Any]:
    members = list(cls)
    first = members[0]
    return {
        "class": (cls.__name__, cls.__qualname__, cls.__module__, cls.__doc__, len(cls)),
        "bases": [base.__name__ for base in cls.__mro__[1:]],
        "members": [(m.name, m.value, m._name_, m._value_) for m in members],
        "map": list(cls.__members__),
        "names": cls._member_names_,
        "values": {value: m.name for value, m in cls._value2member_map_.items()},
        "texts": [(str(m), repr(m), format(m), f"{m:>12}", f"{m!r}") for m in members],
        "json": json.dumps(members),
        "str": [(isinstance(m, str), m == m.value, hash(m) == hash(m.value)) for m in members],
        "by value": [cls(m.value) is m for m in members],
        "by name": [cls[m.name] is m for m in members],
        "by member": [cls(m) is m for m in members],
        "unknown value": _outcome(lambda: cls("no such value")),
        "unknown name": _outcome(lambda: cls["NO_SUCH_NAME"]),
        "not text": _outcome(lambda: cls(7)),  # type: ignore[arg-type]
        "contains": (_outcome(lambda: first in cls), _outcome(lambda: first.value in cls)),
        "copies": (copy.copy(first) is first, copy.deepcopy(first) is first),
        "sorted": [m.name for m in sorted(members)],
        "upper": [m.upper() for m in members],
        "set attribute": _outcome(lambda: setattr(cls, first.name, "x")),
        "new member": _outcome(lambda: setattr(cls, "NEW_ONE", "x") or delattr(cls, "NEW_ONE")),
    }


def test_every_enum_of_the_package_is_found() -> None:
    names = {cls.__name__ for cls in ENUMS}
    assert {"Action", "Outcome", "Capability", "VersionState", "Status", "Verdict"} <= names


@pytest.mark.parametrize("cls", ENUMS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_the_enum_behaves_as_enum_strenum_makes_it(cls: type[enum.StrEnum]) -> None:
    reference = _with_enum(cls)
    assert _behaviour(cls) == _behaviour(reference)
    for member in cls:  # pickled by name, as the module holds it
        assert pickle.loads(pickle.dumps(member)) is member


@pytest.mark.parametrize("cls", ENUMS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_without_the_fast_path_the_enum_is_the_same(cls: type[enum.StrEnum]) -> None:
    body: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    if cls.__doc__ is not None:
        body["__doc__"] = cls.__doc__
    body.update({m.name: m.value for m in cls})
    fast = str_enums.build(cls.__name__, dict(body))
    slow = str_enums.build(cls.__name__, dict(body), fast=False)
    assert _behaviour(fast) == _behaviour(slow) == _behaviour(_with_enum(cls))


def test_a_later_python_without_simple_enum_gets_the_class_statement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(enum, "_simple_enum")

    class Colour(StrEnum):
        """Two colours."""

        RED = "red"
        BLUE = "blue"

    assert issubclass(Colour, enum.StrEnum) and [m.value for m in Colour] == ["red", "blue"]
    assert Colour("blue") is Colour.BLUE and Colour.__doc__ == "Two colours."


@pytest.mark.parametrize(
    "body, problem",
    [
        ("A = 'a'\n    def shout(self) -> str:\n        return self.upper()", "only members"),
        ("A = 'a'\n    B = 'a'", "alias"),
        ("A = 1", "only members"),
        ("A = 'a'\n    _hidden = 'h'", "only members"),
        ("A = enum.auto()", "only members"),
    ],
    ids=["a method", "an alias", "not text", "a private name", "auto"],
)
def test_what_the_fast_path_does_not_support_is_refused(body: str, problem: str) -> None:
    source = f"class Refused(StrEnum):\n    {body}\n"
    with pytest.raises(TypeError, match=problem):
        exec(source, {"StrEnum": StrEnum, "enum": enum})


def test_only_strenum_may_be_the_base() -> None:
    with pytest.raises(TypeError, match="only derive from StrEnum"):

        class Mixed(StrEnum, int):  # type: ignore[misc]
            A = "a"
