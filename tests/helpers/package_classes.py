"""The package's own classes of one kind, and one made again from its source: what the
tests of a faster class builder (named_tuples.py, str_enums.py) compare."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Callable
from typing import Any

import bsecrets


def package_classes(kind: Callable[[type], bool]) -> list[type]:
    """Every class defined in a module of bsecrets (not imported there) that ``kind``
    accepts, sorted by module and name."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(bsecrets.__path__, "bsecrets."):
        if info.name.endswith("__main__"):  # runs the CLI
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and kind(value) and value.__module__ == info.name:
                found[f"{info.name}.{value.__qualname__}"] = value
    return [found[key] for key in sorted(found)]


def rebuilt(cls: type, **names: Any) -> type:
    """``cls`` made again from its own source in its module's globals, with ``names``
    in place of theirs (``NamedTuple=typing.NamedTuple``)."""
    module = importlib.import_module(cls.__module__)
    scope = {**vars(module), **names}
    exec(textwrap.dedent(inspect.getsource(cls)), scope)  # our own source, as written
    made = scope[cls.__name__]
    assert isinstance(made, type)
    return made
