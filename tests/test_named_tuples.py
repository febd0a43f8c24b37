"""bsecrets.named_tuples.NamedTuple makes the class typing.NamedTuple makes, without
typing's per-field check at class creation (the reason: start-up, bench/README.md).

Two checks: every NamedTuple class of the package, rebuilt from its own source with
typing's NamedTuple, has the same fields, defaults, docstring, name, attributes and
annotations; and a corpus of class bodies behaves alike under both (instances,
repr, equality, _replace, _asdict, pickling, methods, the errors typing raises)."""

from __future__ import annotations

import inspect
import pickle
import typing
from typing import Any

import pytest
from helpers.package_classes import package_classes, rebuilt

from bsecrets import named_tuples


def _package_classes() -> list[type]:
    return package_classes(lambda cls: issubclass(cls, tuple) and hasattr(cls, "_fields"))


CLASSES = _package_classes()


def _with_typing(cls: type) -> type:
    """``cls`` made again from its source, by typing.NamedTuple, in its module's globals."""
    return rebuilt(cls, NamedTuple=typing.NamedTuple)


def _shape(cls: type) -> dict[str, Any]:
    annotations = {
        name: getattr(hint, "__forward_arg__", hint) for name, hint in cls.__annotations__.items()
    }
    return {
        "fields": cls._fields,  # type: ignore[attr-defined]
        "defaults": cls._field_defaults,  # type: ignore[attr-defined]
        "doc": cls.__doc__,
        "name": (cls.__name__, cls.__qualname__, cls.__module__),
        "attributes": sorted(set(vars(cls)) - {"__annotations__"}),
        "annotations": annotations,
        "bases": cls.__bases__,
    }


def test_the_package_has_named_tuples_to_compare() -> None:
    assert len(CLASSES) > 60  # about 80 when this was written
    assert all(type(cls) is type for cls in CLASSES)  # plain classes, as typing's


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_each_class_is_what_typing_would_make(cls: type) -> None:
    assert _shape(cls) == _shape(_with_typing(cls))


CORPUS = {
    "plain": "class P(NamedTuple):\n    a: int\n    b: str\n",
    "defaults": (
        "class D(NamedTuple):\n"
        '    """Doc."""\n\n'
        "    a: int\n    b: Mapping[str, int] | None = None\n    c: tuple[int, ...] = ()\n"
    ),
    "methods": (
        "class M(NamedTuple):\n    a: int\n    b: int = 2\n    LIMIT = 10\n\n"
        "    def total(self) -> int:\n        return self.a + self.b\n\n"
        "    @property\n    def double(self) -> int:\n        return 2 * self.a\n\n"
        "    @classmethod\n    def one(cls) -> M:\n        return cls(1)\n\n"
        "    @staticmethod\n    def name() -> str:\n        return 'm'\n\n"
        "    def __str__(self) -> str:\n        return f'M<{self.a}>'\n"
    ),
    "empty": "class E(NamedTuple):\n    pass\n",
}
REFUSED = {
    "a default before a field without one": "class R(NamedTuple):\n    a: int = 1\n    b: int\n",
    "_fields replaced": "class R(NamedTuple):\n    a: int\n    _fields = ('x',)\n",
    "_make replaced": "class R(NamedTuple):\n    a: int\n\n    def _make(self): pass\n",
    "__new__ replaced": "class R(NamedTuple):\n    a: int\n\n    def __new__(cls): pass\n",
    "another base": "class R(NamedTuple, object):\n    a: int\n",
}


def _made(source: str, named_tuple: Any) -> type:
    scope: dict[str, Any] = {"NamedTuple": named_tuple, "__name__": "tests.corpus"}
    header = "from __future__ import annotations\nfrom collections.abc import Mapping\n"
    exec(header + source, scope)
    return next(v for k, v in scope.items() if k in "PDMER" and isinstance(v, type))


@pytest.mark.parametrize("source", CORPUS.values(), ids=list(CORPUS))
def test_a_body_behaves_alike_under_both(source: str) -> None:
    ours, theirs = _made(source, named_tuples.NamedTuple), _made(source, typing.NamedTuple)
    assert _shape(ours) == _shape(theirs)
    fields = ours._fields  # type: ignore[attr-defined]
    values = list(range(1, len(fields) + 1))
    a, b = ours(*values), theirs(*values)
    assert (repr(a), tuple(a), hash(a), a._asdict()) == (repr(b), tuple(b), hash(b), b._asdict())
    assert isinstance(a, tuple) and a == tuple(b)
    if fields:
        assert a._replace(**{fields[0]: 9}) == b._replace(**{fields[0]: 9})
    for name in ("total", "double", "one", "name", "__str__"):
        if name in vars(theirs):
            got, want = getattr(a, name), getattr(b, name)
            assert (got() if callable(got) else got) == (want() if callable(want) else want)
    if fields and len(fields) == len(ours._field_defaults):  # type: ignore[attr-defined]
        assert ours() == theirs()


def test_instances_pickle_by_name() -> None:
    made = _package_classes()[0]
    instance = made(*[None] * len(made._fields))  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(instance)) == instance


@pytest.mark.parametrize("source", REFUSED.values(), ids=list(REFUSED))
def test_what_typing_refuses_is_refused(source: str) -> None:
    with pytest.raises((TypeError, AttributeError)) as theirs:
        _made(source, typing.NamedTuple)
    with pytest.raises(theirs.type):
        _made(source, named_tuples.NamedTuple)


def test_only_the_class_syntax() -> None:
    with pytest.raises(TypeError, match="class syntax"):
        named_tuples.NamedTuple("X", [("a", int)])


# The builder against collections.namedtuple itself: what the shapes above do not see
# (the __new__ made from shared code with its argument names replaced: the module's
# templates up to 16 fields, one compiled on first use beyond).
SHAPES = [
    (),
    ("a",),
    ("a", "b"),
    ("x", "y", "z"),
    *(tuple(f"f{i}" for i in range(n)) for n in (12, 16, 17)),
]


def _outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except (TypeError, ValueError) as error:
        return (type(error).__name__, str(error))


@pytest.mark.parametrize("fields", SHAPES, ids=lambda fields: f"{len(fields)} fields")
@pytest.mark.parametrize("defaulted", [0, 1, 2])
def test_the_builder_makes_collections_namedtuple(fields: tuple[str, ...], defaulted: int) -> None:
    import collections

    defaults = tuple(range(100, 100 + min(defaulted, len(fields))))
    ours = named_tuples._namedtuple("T", fields, defaults)
    theirs = collections.namedtuple("T", fields, defaults=defaults, module=__name__)
    ours.__module__ = __name__
    new, their_new = ours.__new__, theirs.__new__
    for attribute in ("__name__", "__qualname__", "__doc__", "__defaults__", "__module__"):
        assert getattr(new, attribute) == getattr(their_new, attribute), attribute
    assert inspect.signature(ours) == inspect.signature(theirs)
    assert sorted(vars(ours)) == sorted(vars(theirs))
    for name in ("_fields", "_field_defaults", "__match_args__", "__doc__", "__slots__"):
        assert getattr(ours, name) == getattr(theirs, name), name
    for name in fields:
        assert getattr(ours, name).__doc__ == getattr(theirs, name).__doc__
    for method in ("_make", "_replace", "__repr__", "_asdict", "__getnewargs__"):
        mine, other = getattr(ours, method), getattr(theirs, method)
        assert (mine.__qualname__, mine.__doc__) == (other.__qualname__, other.__doc__)
    values = tuple(range(len(fields)))
    calls = [
        lambda made: made(*values), lambda made: made(**dict(zip(fields, values, strict=True))),
        lambda made: made(*values, 99), lambda made: made(*values[:-1]),
        lambda made: made(), lambda made: made(nope=1),
        lambda made: made._make(values), lambda made: made._make(values[:-1]),
        lambda made: made(*values)._replace(**dict(zip(fields[:1], [7], strict=True))),
        lambda made: made(*values)._replace(nope=1),
        lambda made: (repr(made(*values)), made(*values)._asdict()),
        lambda made: pickle.loads(pickle.dumps(made(*values))) == made(*values),
    ]  # fmt: skip
    globals()["T"] = ours  # pickled by name
    mine = [_outcome(lambda call=call: call(ours)) for call in calls]
    globals()["T"] = theirs
    other = [_outcome(lambda call=call: call(theirs)) for call in calls]
    assert [
        (kind, tuple(v) if kind == "ok" and isinstance(v, tuple) else v) for kind, v in mine
    ] == [(kind, tuple(v) if kind == "ok" and isinstance(v, tuple) else v) for kind, v in other]


@pytest.mark.parametrize("name", ["_hidden", "class", "not valid"])
def test_the_builder_refuses_the_names_namedtuple_refuses(name: str) -> None:
    import collections

    with pytest.raises(ValueError) as theirs:
        collections.namedtuple("T", ["a", name])
    with pytest.raises(ValueError) as ours:
        named_tuples._namedtuple("T", ("a", name), ())
    assert str(ours.value) == str(theirs.value)
