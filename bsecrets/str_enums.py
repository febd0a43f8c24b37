"""``StrEnum`` for bsecrets' own enums, made by the standard library's own fast path.

``class X(enum.StrEnum)`` runs enum's whole class machinery (its checking class dict, a
descriptor and checks per member): audit's ``Action`` (49 members) took about 0.5 ms of
every command, the four enums a ``get`` loads about 1 ms. The standard library makes
its own enums (``http.HTTPMethod``, ``pstats.SortKey``, ``re``'s flags) with
``enum._simple_enum``, which builds the same kind of class from a plain one without
those checks. This ``StrEnum`` hands a class body to it: ``class X(StrEnum)`` gives an
``enum.StrEnum`` subclass, its members in order, and mypy sees ``enum.StrEnum``.

Supported: members written ``NAME = "value"`` (text, as enum.StrEnum requires), a
docstring, comments. Not supported (not used here): methods, ``auto()``, aliases (two
names for one value: TypeError, so the two ways to build cannot differ), subclasses.
Where ``enum._simple_enum`` is missing (a later Python may drop it), the class is made
as the class statement would make it. tests/test_str_enums.py compares both ways with
``enum.StrEnum`` for every enum of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enum import StrEnum as StrEnum
else:
    import enum

    _CLASS_KEYS = frozenset({"__module__", "__qualname__", "__doc__"})

    def build(name: str, ns: dict[str, Any], fast: bool = True) -> type[enum.StrEnum]:
        """The enum.StrEnum subclass ``class name(enum.StrEnum)`` with body ``ns`` makes."""
        members = {key: value for key, value in ns.items() if key not in _CLASS_KEYS}
        for key, value in members.items():
            if key.startswith("_") or not isinstance(value, str):
                raise TypeError(f"{name}.{key}: only members NAME = 'text' are supported here")
        if len(set(members.values())) != len(members):
            raise TypeError(f"{name}: two members have one value (an alias)")
        simple = getattr(enum, "_simple_enum", None) if fast else None
        if simple is None:
            body = enum.EnumType.__prepare__(name, (enum.StrEnum,))
            for key, value in ns.items():
                body[key] = value
            return enum.EnumType(name, (enum.StrEnum,), body)
        made: type[enum.StrEnum] = simple(enum.StrEnum)(type(name, (), dict(ns)))
        made.__doc__ = ns.get("__doc__")  # not _simple_enum's "An enumeration."
        return made

    class _StrEnumMeta(type):
        def __new__(
            cls, name: str, bases: tuple[type, ...], ns: dict[str, Any]
        ) -> type[enum.StrEnum]:
            if bases != (StrEnum,):
                raise TypeError("a StrEnum may only derive from StrEnum here")
            return build(name, ns)

    StrEnum = type.__new__(_StrEnumMeta, "StrEnum", (), {})
