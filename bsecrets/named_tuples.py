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

The class is built here, as ``collections.namedtuple`` builds it (the same namespace,
methods, docstrings and errors), but without its ``eval`` per class: ``__new__`` is
a template for the number of fields, compiled with this module (up to 16 fields; once,
on first use, beyond), its code renamed for each class (``code.replace`` of the argument
names): half of the 64 us a class took, and no eval at all on a command's path
(bench/README.md, "Standard-library imports off the hot path, and ``NamedTuple`` without
an eval", "Start-up at the floor"). tests/test_named_tuples.py compares both.

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
    import sys
    from collections import _tuplegetter  # type: ignore[attr-defined]
    from keyword import iskeyword

    _tuple_new = tuple.__new__
    # collections.namedtuple's ``__new__`` (``lambda _cls, a, b: _tuple_new(_cls, (a, b))``)
    # for 0 to 16 fields, compiled with this module: an eval for each number of fields
    # cost every command ~0.4 ms (bench/README.md, "Start-up at the floor"); beyond 16,
    # compiled on first use. Only their code is used, its argument names replaced by the
    # class's fields (these are placeholders), and each class binds its own globals.
    _NEW_CODE: dict[int, Any] = {
        len(template.__code__.co_varnames) - 1: template.__code__
        for template in (
            lambda c: _tuple_new(c, ()),
            lambda c, a: _tuple_new(c, (a,)),
            lambda c, a, b: _tuple_new(c, (a, b)),
            lambda c, a, b, d: _tuple_new(c, (a, b, d)),
            lambda c, a, b, d, e: _tuple_new(c, (a, b, d, e)),
            lambda c, a, b, d, e, f: _tuple_new(c, (a, b, d, e, f)),
            lambda c, a, b, d, e, f, g: _tuple_new(c, (a, b, d, e, f, g)),
            lambda c, a, b, d, e, f, g, h: _tuple_new(c, (a, b, d, e, f, g, h)),
            lambda c, a, b, d, e, f, g, h, i: _tuple_new(c, (a, b, d, e, f, g, h, i)),
            lambda c, a, b, d, e, f, g, h, i, j: _tuple_new(c, (a, b, d, e, f, g, h, i, j)),
            lambda c, a, b, d, e, f, g, h, i, j, k: _tuple_new(c, (a, b, d, e, f, g, h, i, j, k)),
            lambda c, a, b, d, e, f, g, h, i, j, k, m: _tuple_new(
                c, (a, b, d, e, f, g, h, i, j, k, m)
            ),
            lambda c, a, b, d, e, f, g, h, i, j, k, m, n: _tuple_new(
                c, (a, b, d, e, f, g, h, i, j, k, m, n)
            ),
            lambda c, a, b, d, e, f, g, h, i, j, k, m, n, o: _tuple_new(
                c, (a, b, d, e, f, g, h, i, j, k, m, n, o)
            ),
            lambda c, a, b, d, e, f, g, h, i, j, k, m, n, o, p: _tuple_new(
                c, (a, b, d, e, f, g, h, i, j, k, m, n, o, p)
            ),
            lambda c, a, b, d, e, f, g, h, i, j, k, m, n, o, p, q: _tuple_new(
                c, (a, b, d, e, f, g, h, i, j, k, m, n, o, p, q)
            ),
            lambda c, a, b, d, e, f, g, h, i, j, k, m, n, o, p, q, r: _tuple_new(
                c, (a, b, d, e, f, g, h, i, j, k, m, n, o, p, q, r)
            ),
        )
    }

    def _new_code(fields: tuple[str, ...]) -> Any:
        """The code of collections.namedtuple's ``__new__`` for ``fields``: the template for
        their number (placeholder names), its argument names replaced."""
        code = _NEW_CODE.get(len(fields))
        if code is None:
            names = "".join(f"_{i}, " for i in range(len(fields)))
            source = f"lambda _cls, {names}: _tuple_new(_cls, ({names}))"
            code = _NEW_CODE[len(fields)] = eval(source, {}).__code__
        return code.replace(co_varnames=("_cls", *fields))

    def _namedtuple(
        typename: str, fields: tuple[str, ...], defaults: tuple[Any, ...]
    ) -> type[tuple[Any, ...]]:
        """collections.namedtuple(typename, fields, defaults=defaults) (its rules and
        errors for field names included), with ``__new__`` from :func:`_new_code`."""
        for name in (typename, *fields):
            if not name.isidentifier():
                raise ValueError(f"Type names and field names must be valid identifiers: {name!r}")
            if iskeyword(name):
                raise ValueError(f"Type names and field names cannot be a keyword: {name!r}")
        for name in fields:
            if name.startswith("_"):
                raise ValueError(f"Field names cannot start with an underscore: {name!r}")
        typename = sys.intern(typename)
        fields = tuple(map(sys.intern, fields))
        count = len(fields)
        arg_list = ", ".join(fields) + ("," if count == 1 else "")
        repr_fmt = "(" + ", ".join(f"{name}=%r" for name in fields) + ")"
        scope = {"_tuple_new": _tuple_new, "__builtins__": {}, "__name__": f"namedtuple_{typename}"}
        __new__ = type(_new_code)(_new_code(fields), scope, "__new__")
        __new__.__defaults__ = defaults  # () when none, as namedtuple(defaults=[]) gives
        __new__.__doc__ = f"Create new instance of {typename}({arg_list})"

        @classmethod  # type: ignore[misc]
        def _make(cls: Any, iterable: Any) -> Any:
            result = _tuple_new(cls, iterable)
            if len(result) != count:
                raise TypeError(f"Expected {count} arguments, got {len(result)}")
            return result

        _make.__func__.__doc__ = f"Make a new {typename} object from a sequence or iterable"

        def _replace(self: Any, /, **kwds: Any) -> Any:
            result = self._make(map(kwds.pop, fields, self))
            if kwds:
                raise ValueError(f"Got unexpected field names: {list(kwds)!r}")
            return result

        _replace.__doc__ = (
            f"Return a new {typename} object replacing specified fields with new values"
        )

        def __repr__(self: Any) -> str:
            "Return a nicely formatted representation string"
            return self.__class__.__name__ + repr_fmt % self  # type: ignore[no-any-return]

        def _asdict(self: Any) -> dict[str, Any]:
            "Return a new dict which maps field names to their values."
            return dict(zip(self._fields, self, strict=False))

        def __getnewargs__(self: Any) -> tuple[Any, ...]:
            "Return self as a plain tuple.  Used by copy and pickle."
            return tuple(self)

        methods = (__new__, _make.__func__, _replace, __repr__, _asdict, __getnewargs__)
        for method in methods:
            method.__qualname__ = f"{typename}.{method.__name__}"
        namespace = {
            "__doc__": f"{typename}({arg_list})", "__slots__": (), "_fields": fields,
            "_field_defaults": dict(zip(fields[count - len(defaults) :], defaults, strict=True)),
            "__new__": __new__, "_make": _make, "_replace": _replace, "__repr__": __repr__,
            "_asdict": _asdict, "__getnewargs__": __getnewargs__, "__match_args__": fields,
        }  # fmt: skip
        for index, name in enumerate(fields):
            namespace[name] = _tuplegetter(index, sys.intern(f"Alias for field number {index}"))
        return type(typename, (tuple,), namespace)

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
            made = _namedtuple(typename, tuple(types), tuple(ns[n] for n in defaulted))
            made.__module__ = ns["__module__"]
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
