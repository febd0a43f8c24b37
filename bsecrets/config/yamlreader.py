"""Reading a YAML document with line numbers, for files people write by hand.

:func:`compose` turns the text into PyYAML's node tree (no Python objects are
constructed, so every value keeps its line); a :class:`YamlReader` then reads
typed values off the nodes. Every problem is a :class:`~bsecrets.errors.ProfileError`
(or the subclass a reader's :meth:`YamlReader.error` makes) whose message is
``FILE:LINE: key.path: problem``, with a hint where one helps.

Used by the profile parser (bsecrets.config.parser) and the audit report's
criteria file (bsecrets.audit.report.criteria).

What a caller may rely on:

* PyYAML is imported inside functions only: importing this module is cheap.
* A :class:`YamlMap` refuses a node that is not a mapping, a key that is not a
  plain scalar (``<<`` merges included) and a duplicate key, each naming the
  line; its keys keep file order.
* A typed read accepts only what YAML itself resolved to that type: ``"true"``
  (quoted) is not a boolean, ``yes`` (plain) is not a string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from bsecrets.errors import ProfileError

if TYPE_CHECKING:
    from yaml.nodes import Node

YAML_TAG = "tag:yaml.org,2002:"

T = TypeVar("T")
# Reads one value: (its node, its key path) -> the value, or raises the reader's error.
ValueReader = Callable[["Node", str], T]


def compose(
    text: str, shown: str, *, error_type: type[ProfileError] = ProfileError, hint: str | None = None
) -> Node | None:
    """The node tree of ``text``; None for an empty document (or comments only).

    Bad YAML raises ``error_type(shown, line, "", "invalid YAML: ...", hint=hint)``,
    naming where an unclosed quote or bracket started when YAML says so.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root: Node | None = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = f"invalid YAML: {exc.problem or 'syntax error'}"
        if exc.context and exc.context_mark:  # e.g. where an unclosed quote started
            problem += f" ({exc.context}, line {exc.context_mark.line + 1})"
        raise error_type(shown, line, "", problem, hint=hint) from None
    except yaml.YAMLError as exc:
        raise error_type(shown, None, "", f"invalid YAML: {exc}", hint=hint) from None
    return root


def line_of(node: Node) -> int:
    """The 1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


def shape(node: Node) -> str:
    """One of "scalar", "mapping", "sequence"."""
    from yaml.nodes import MappingNode, ScalarNode

    if isinstance(node, ScalarNode):
        return "scalar"
    return "mapping" if isinstance(node, MappingNode) else "sequence"


def is_scalar(node: Node, tag: str) -> bool:
    """True if ``node`` is a scalar that YAML resolved to ``tag`` ("str", "int", "null"...)."""
    return shape(node) == "scalar" and node.tag == YAML_TAG + tag


def got(node: Node) -> str:
    """`` (got a list)`` and the like, to make a type error concrete."""
    if shape(node) != "scalar":
        return f" (got a {'list' if shape(node) == 'sequence' else 'mapping'})"
    return " (got nothing)" if node.tag == YAML_TAG + "null" else f" (got {json.dumps(node.value)})"


def yaml_int(node: Node) -> int | None:
    """The value of an ``int`` scalar (0x, 0o, underscores as YAML reads them); None
    past 18 digits (beyond 64 bits, and Python's limit on converting long digit strings)."""
    from yaml.constructor import SafeConstructor

    if len(str(node.value)) > 18:
        return None
    return int(SafeConstructor().construct_yaml_int(node))  # type: ignore[arg-type]


class YamlReader:
    """Reads typed values off the node tree of the file ``shown``; every error carries
    a line and a key path. Subclasses add the readers of their schema and may
    override :meth:`error` (another error class, default hints)."""

    def __init__(self, shown: str) -> None:
        self.shown = shown

    def error(
        self, where: Node | int, key_path: str, problem: str, hint: str | None = None
    ) -> ProfileError:
        """The error to raise for ``problem`` at ``where`` (a node or a line)."""
        line = where if isinstance(where, int) else line_of(where)
        return ProfileError(self.shown, line, key_path, problem, hint=hint)

    def wrong_type(
        self, node: Node, key_path: str, what: str, hint: str | None = None
    ) -> ProfileError:
        """``must be <what> (got ...)``."""
        return self.error(node, key_path, f"must be {what}{got(node)}", hint)

    def typed(self, node: Node, key_path: str, tag: str, what: str) -> str:
        """The scalar text of ``node`` if YAML resolved it to ``tag``, else a type error
        (for a string, with a hint to quote what YAML read as another type)."""
        if is_scalar(node, tag):
            return str(node.value)
        hint = None
        if tag == "str" and shape(node) == "scalar" and node.tag != YAML_TAG + "null":
            hint = f"quote it to keep it as text: {json.dumps(node.value)}"
        raise self.wrong_type(node, key_path, what, hint)

    def string(self, node: Node, key_path: str) -> str:
        return self.typed(node, key_path, "str", "a string")

    def boolean(self, node: Node, key_path: str) -> bool:
        return self.typed(node, key_path, "bool", "true or false").lower() in ("true", "yes", "on")

    def mapping(self, node: Node, key_path: str, line: int | None = None) -> YamlMap:
        """``node`` as a :class:`YamlMap`; ``line`` (default: the node's) is where a
        missing required key is reported."""
        return YamlMap(self, node, key_path, line_of(node) if line is None else line)


class YamlMap:
    """A YAML mapping with unique plain-scalar keys (in file order), read key by key."""

    def __init__(self, reader: YamlReader, node: Node, key_path: str, line: int) -> None:
        self.reader, self.key_path, self.line = reader, key_path, line
        if shape(node) != "mapping":
            raise reader.wrong_type(node, key_path, "a mapping")
        self.items: dict[str, tuple[Node, Node]] = {}  # key -> (key node, value node)
        for key_node, value_node in node.value:
            if shape(key_node) != "scalar" or key_node.tag == YAML_TAG + "merge":
                problem = "keys must be plain strings (no '<<' merges)"
                raise reader.error(key_node, key_path, problem)
            key = str(key_node.value)
            if key in self.items:
                first = line_of(self.items[key][0])
                problem = f"duplicate key (first on line {first})"
                raise reader.error(key_node, self.sub(key), problem)
            self.items[key] = (key_node, value_node)

    def sub(self, key: str) -> str:
        """The key path of ``key`` in this mapping."""
        return f"{self.key_path}.{key}" if self.key_path else key

    def only(self, allowed: Iterable[str], owner: str = "", others: Iterable[str] = ()) -> None:
        """Refuse keys outside ``allowed``; keys in ``others`` are "not used by <owner>"."""
        allowed, others = tuple(allowed), set(others)
        for key, (key_node, _) in self.items.items():
            if key not in allowed:
                problem = f"not used by {owner}" if key in others else "unknown key"
                hint = f"allowed here: {', '.join(allowed)}"
                raise self.reader.error(key_node, self.sub(key), problem, hint)

    def get(self, key: str, read: ValueReader[T], default: T) -> T:
        return default if key not in self.items else read(self.items[key][1], self.sub(key))

    def opt(self, key: str, read: ValueReader[T]) -> T | None:
        return None if key not in self.items else read(self.items[key][1], self.sub(key))

    def require(self, key: str, read: ValueReader[T]) -> T:
        if key not in self.items:
            raise self.reader.error(self.line, self.sub(key), "required key is missing")
        return read(self.items[key][1], self.sub(key))
