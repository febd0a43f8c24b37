"""The criteria of the compliance report: what it checks, and reading them from
the criteria file (YAML; every key optional; see docs/audit-report.md).

Every problem with the file is a :class:`CriteriaError` (a UsageError, exit 2)
whose message names ``FILE:LINE``, the key and a hint. PyYAML is imported
only when a file is read.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bsecrets.config.profile import ENV_NAME_HINT, ENV_NAME_PATTERN
from bsecrets.config.yamlreader import YamlReader, compose, is_scalar, line_of, shape, yaml_int
from bsecrets.errors import ProfileError, UsageError
from bsecrets.named_tuples import NamedTuple
from bsecrets.timeutil import parse_duration

if TYPE_CHECKING:
    from yaml.nodes import Node

CRITERIA_KEYS = (
    "production_envs",
    "max_secret_age",
    "max_denied",
    "max_production_reads",
    "allow_never_read",
    "require_chain_valid",
)
_KEY_HINTS = {
    "": "the criteria file is a YAML mapping of: " + ", ".join(CRITERIA_KEYS),
    "production_envs": "a list of environment names, e.g. production_envs: [prod, production]",
    "max_secret_age": "a number and a unit (s, m, h, d, w), e.g. max_secret_age: 90d; "
    "null for no check",
    "max_denied": "a whole number of 0 or more, e.g. max_denied: 0; null for no check",
    "max_production_reads": "a whole number of 0 or more, e.g. max_production_reads: 100; "
    "null to report only",
    "allow_never_read": "true or false, e.g. allow_never_read: false",
    "require_chain_valid": "true or false, e.g. require_chain_valid: true",
}


class CriteriaError(ProfileError):
    """A criteria file that cannot be used: ``FILE:LINE: key: problem``."""

    kind = "criteria_error"


class Criteria(NamedTuple):
    """What the report checks; ``Criteria()`` is the defaults."""

    production_envs: tuple[str, ...] = ("prod", "production")
    max_secret_age: timedelta | None = timedelta(days=90)
    max_denied: int | None = 0
    max_production_reads: int | None = None
    allow_never_read: bool = True
    require_chain_valid: bool = True
    source: str | None = None  # the file they were read from; None: the defaults

    def settings(self) -> dict[str, Any]:
        """The criteria as JSON-able values (the report's ``settings``)."""
        age = self.max_secret_age
        return {
            "file": self.source,
            "production_envs": list(self.production_envs),
            "max_secret_age": format_duration(age) if age is not None else None,
            "max_denied": self.max_denied,
            "max_production_reads": self.max_production_reads,
            "allow_never_read": self.allow_never_read,
            "require_chain_valid": self.require_chain_valid,
        }


def format_duration(delta: timedelta) -> str:
    """timedelta -> '90d', '36h', '90m', '45s' (a form parse_duration reads)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def load_criteria(path: Path | None) -> Criteria:
    """The criteria in the YAML file at ``path``; ``None`` (or an empty file): the defaults.

    Raises CriteriaError (a UsageError, exit 2) naming ``FILE:LINE`` and the key
    for a missing or unreadable file, bad YAML, a top level that is not a
    mapping, an unknown key, a value of the wrong type and a bad duration.
    """
    if path is None:
        return Criteria()
    shown = str(path)
    hint = "pass the path of a YAML criteria file (see docs/audit-report.md)"
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CriteriaError(shown, None, "", "criteria file not found", hint=hint) from None
    except PermissionError:
        problem = "cannot read the criteria file: permission denied"
        raise CriteriaError(shown, None, "", problem, hint=hint) from None
    except OSError as exc:
        problem = f"cannot read the criteria file: {exc.strerror or exc}"
        raise CriteriaError(shown, None, "", problem, hint=hint) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = "the file is not valid UTF-8"
        raise CriteriaError(shown, line, "", problem, hint="save the file as UTF-8") from None
    syntax_hint = "check the YAML syntax at that line (indentation, quotes, brackets)"
    root = compose(text, shown, error_type=CriteriaError, hint=syntax_hint)
    if root is None:  # empty, or comments only
        return Criteria(source=shown)
    return _CriteriaReader(shown).criteria(root)


class _CriteriaReader(YamlReader):
    """Typed values of the criteria keys; every error is a CriteriaError naming the
    node's line, with the key's hint when the problem has none of its own."""

    def error(
        self, where: Node | int, key_path: str, problem: str, hint: str | None = None
    ) -> ProfileError:
        line = where if isinstance(where, int) else line_of(where)
        if hint is None and problem.startswith("duplicate key"):
            hint = "keep one of them"
        hint = hint or _KEY_HINTS.get(key_path.split(".")[0])
        return CriteriaError(self.shown, line, key_path, problem, hint=hint)

    def criteria(self, root: Node) -> Criteria:
        import difflib

        top = self.mapping(root, "")
        for key, (key_node, _) in top.items.items():
            if key not in CRITERIA_KEYS:
                close = difflib.get_close_matches(key, CRITERIA_KEYS, n=1)
                known = f"known keys: {', '.join(CRITERIA_KEYS)}"
                hint = f"did you mean '{close[0]}'? {known}" if close else known
                raise self.error(key_node, key, "unknown key", hint)
        default = Criteria()
        return Criteria(
            production_envs=top.get("production_envs", self.env_names, default.production_envs),
            max_secret_age=top.get("max_secret_age", self.max_age, default.max_secret_age),
            max_denied=top.get("max_denied", self.count, default.max_denied),
            max_production_reads=top.get(
                "max_production_reads", self.count, default.max_production_reads
            ),
            allow_never_read=top.get("allow_never_read", self.boolean, default.allow_never_read),
            require_chain_valid=top.get(
                "require_chain_valid", self.boolean, default.require_chain_valid
            ),
            source=self.shown,
        )

    def env_names(self, node: Node, key_path: str) -> tuple[str, ...]:
        """A list of environment names, or one name; each once, in order."""
        items = [node] if is_scalar(node, "str") else None
        if shape(node) == "sequence":
            items = list(node.value)
        if items is None:
            raise self.wrong_type(node, key_path, "a list of environment names")
        names: list[str] = []
        for item in items:
            if not is_scalar(item, "str"):
                raise self.wrong_type(item, key_path, "a list of environment names")
            name = str(item.value)
            if not re.fullmatch(ENV_NAME_PATTERN, name):
                problem = f"invalid environment name {name!r}"
                raise self.error(item, key_path, problem, ENV_NAME_HINT)
            names.append(name)
        return tuple(dict.fromkeys(names))

    def max_age(self, node: Node, key_path: str) -> timedelta | None:
        """A duration with a unit (90d), or null."""
        if is_scalar(node, "null"):
            return None
        if not is_scalar(node, "str"):
            raise self.wrong_type(node, key_path, "a duration with a unit (90d), or null")
        try:
            return parse_duration(str(node.value))
        except UsageError as exc:
            raise self.error(node, key_path, exc.message) from None

    def count(self, node: Node, key_path: str) -> int | None:
        """A whole number of 0 or more, or null."""
        if is_scalar(node, "null"):
            return None
        if not is_scalar(node, "int"):
            raise self.wrong_type(node, key_path, "a whole number of 0 or more, or null")
        value = yaml_int(node)
        if value is None:
            raise self.error(node, key_path, "must be at most 18 digits")
        if value < 0:
            raise self.error(node, key_path, f"must be 0 or more (got {value})")
        return value
