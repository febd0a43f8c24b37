"""``NamedTuple`` for bsecrets' own value types, built without typing's per-field check.

``class X(typing.NamedTuple)`` checks each field's annotation when the class is made;
under ``from __future__ import annotations`` every annotation is a string, so each
field becomes a ``ForwardRef`` (a ``compile`` call). That costs about 0.25 ms a
class, and a plain ``get`` defines about 40 of them: some 10 ms of every command
(bench/README.md, "Start-up and scale"). This ``NamedTuple`` makes the same class
as typing's (``collections.namedtuple`` with the fields in order, their defaults,
the module, then the class body's docstring, methods and other attributes) and keeps
the annotations as the strings they are, unchecked: mypy checks them instead, and it
sees ``typing.NamedTuple`` here. ``typing.get_type_hints`` resolves the strings as it
would resolve typing's ForwardRefs. tests/test_named_tuples.py compares every class
of the package with the one typing builds from the same body.

Supported: fields with and without defaults, methods, properties, classmethods and
staticmethods, a docstring, class constants without annotations. Not supported (not
used by bsecrets; typing's rules): generic named tuples, a field without a default
after one with a default (TypeError), overriding ``_fields``, ``_make`` and the other
names collections.namedtuple defines (AttributeError).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    import collections

    # what collections.namedtuple defines: a class body may not replace it (as typing)
    _PROHIBITED = frozenset(
        {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
         "_make", "_replace", "_asdict", "_source"}
    )  # fmt: skip
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _NamedTupleMeta(type):
        def __new__(
            cls, typename: str, bases: tuple[type, ...], ns: dict[str, Any]
        ) -> type[tuple[Any, ...]]:
            if bases != (_Base,):
                raise TypeError("a NamedTuple may only derive from NamedTuple here")
            types = ns.get("__annotations__", {})
            defaulted = [name for name in types if name in ns]
            if defaulted and list(types)[-len(defaulted) :] != defaulted:
                raise TypeError(f"{typename}: a field without a default follows one with one")
            made = collections.namedtuple(
                typename, list(types), defaults=[ns[n] for n in defaulted],
                module=ns["__module__"],
            )  # fmt: skip
            made.__annotations__ = made.__new__.__annotations__ = dict(types)
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
                if key not in _SPECIAL and key not in made._fields:
                    setattr(made, key, value)
            return made

    _Base = type.__new__(_NamedTupleMeta, "NamedTuple", (), {})

    def NamedTuple(typename: str, fields: Any = None, /) -> Any:
        """Only the class syntax is supported (``class X(NamedTuple): ...``)."""
        raise TypeError("use the class syntax: class X(NamedTuple): ...")

    NamedTuple.__mro_entries__ = lambda bases: (_Base,)
