"""Bulk formats: rendering secrets as dotenv, JSON, YAML, shell or GITHUB_ENV
text, and parsing dotenv, JSON and YAML files for ``import``.

Pure functions over plain data (no manager, no I/O). Heavy parsers (PyYAML,
python-dotenv) are imported inside the functions that use them.

Keys: the variable formats (dotenv, shell, github-env) are keyed by the
variable a name maps to (CLI.md: ``db/password`` -> ``DB_PASSWORD``); JSON and
YAML are keyed by the secret names themselves, so they round-trip exactly.

Errors name keys and line numbers, never values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from bsecrets.core.errors import BsecretsError, UsageError

if TYPE_CHECKING:
    from yaml.nodes import Node

EXPORT_FORMATS = ("dotenv", "json", "yaml", "shell", "github-env")
IMPORT_FORMATS = ("dotenv", "json", "yaml")
VARIABLE_FORMATS = ("dotenv", "shell", "github-env")

_OTHER = re.compile(r"[^A-Z0-9_]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# dotenv values that every reader takes literally without quotes
_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+,=-]+")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class Entry(NamedTuple):
    """One key/value read from an import file, with the 1-based line of its key."""

    key: str
    value: str
    line: int


class FormatError(UsageError):
    """An import file that cannot be read (exit 2): the message names the line."""


class ExportError(BsecretsError):
    """A value the chosen export format cannot carry exactly (exit 1)."""


def variable_name(name: str) -> str:
    """``db/password`` -> ``DB_PASSWORD`` (CLI.md)."""
    return _OTHER.sub("_", name.upper())


def variables(names: Iterable[str]) -> dict[str, str]:
    """Variable -> secret name, in name order. Two names on one variable, or a
    variable that is not a valid identifier, is a UsageError (exit 2)."""
    mapping: dict[str, str] = {}
    for name in sorted(names):
        var = variable_name(name)
        if var in mapping:
            raise UsageError(
                f"secrets '{mapping[var]}' and '{name}' both map to the variable {var}",
                hint="rename one of them, or export with --format json or yaml (keyed by name)",
            )
        if not _IDENTIFIER.fullmatch(var):
            raise UsageError(
                f"secret '{name}' maps to {var}, which is not a valid variable name",
                hint="variables cannot start with a digit; rename the secret, "
                "or export with --format json or yaml",
            )
        mapping[var] = name
    return mapping


# --- rendering --------------------------------------------------------------


def dotenv_value(key: str, value: str) -> str:
    """``value`` quoted so that python-dotenv (``interpolate=False``) reads it back
    exactly: plain when safe, single quotes when there is no ``'`` or ``\\``
    (literal in every dotenv reader and in sh), else double quotes with escapes."""
    if _PLAIN.fullmatch(value):
        return value
    if "'" not in value and "\\" not in value:
        return f"'{value}'"
    if not value.endswith("\\"):
        escaped = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
        return f'"{escaped}"'
    # python-dotenv's double-quote rule cannot end a value with a backslash (it
    # reads '\\"' as an escaped quote); unquoted values are literal there.
    if (
        not _LINE_BREAK.search(value)
        and value == value.strip()
        and value[0] not in "'\"#"
        and not re.search(r"\s#", value)
    ):
        return value
    raise ExportError(
        f"the value of {key} ends with a backslash and spans lines or holds ' #', "
        "which dotenv cannot carry exactly",
        hint="export with --format json, yaml or shell",
    )


def render_dotenv(items: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{key}={dotenv_value(key, value)}\n" for key, value in items)


def shell_quote(value: str) -> str:
    """One single-quoted word, safe to ``eval`` in any POSIX shell."""
    return "'" + value.replace("'", "'\\''") + "'"


def render_shell(items: Iterable[tuple[str, str]]) -> str:
    lines = []
    for key, value in items:
        if "\0" in value:
            raise ExportError(
                f"the value of {key} holds a NUL byte, which a shell variable cannot hold",
                hint="export with --format json or yaml",
            )
        lines.append(f"export {key}={shell_quote(value)}\n")
    return "".join(lines)


def render_json(items: Iterable[tuple[str, str]]) -> str:
    import json

    return json.dumps(dict(items), indent=2, ensure_ascii=False) + "\n"


def render_yaml(items: Iterable[tuple[str, str]]) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    data = dict(items)
    if not data:
        return "{}\n"
    text: str = yaml.dump(
        data,
        Dumper=dumper,
        default_style='"',
        allow_unicode=True,
        sort_keys=False,
        width=2**30,
    )
    return text


def github_env_block(key: str, value: str, delimiter: Callable[[], str]) -> str:
    """``KEY<<DELIM`` / value / ``DELIM``, the multi-line form of $GITHUB_ENV."""
    if not key or any(c in key for c in "\n\r=\0"):
        raise UsageError(
            f"the variable {key!r} cannot be written to GITHUB_ENV",
            hint="names written to GITHUB_ENV cannot hold a newline, '=' or NUL",
        )
    if "\0" in value or "\r" in value:
        raise ExportError(
            f"the value of {key} holds a NUL or carriage return, which GITHUB_ENV cannot carry",
            hint="use 'bsecrets exec' in the step instead",
        )
    while True:
        delim = delimiter()
        if delim not in value and delim != key:
            break
    return f"{key}<<{delim}\n{value}\n{delim}\n"


# --- parsing ----------------------------------------------------------------


def decode_text(data: bytes, shown: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FormatError(f"{shown}:{line}: the file is not valid UTF-8") from None


def parse(fmt: str, text: str, shown: str) -> list[Entry]:
    """Every entry of an import file, or FormatError naming the first bad line."""
    if fmt == "dotenv":
        return parse_dotenv(text, shown)
    if fmt == "json":
        return parse_json(text, shown)
    if fmt == "yaml":
        return parse_yaml(text, shown)
    raise UsageError(f"unknown format '{fmt}'", hint=f"one of {', '.join(IMPORT_FORMATS)}")


def parse_dotenv(text: str, shown: str) -> list[Entry]:
    """Bindings as python-dotenv reads them, without ``${VAR}`` interpolation."""
    import io

    from dotenv.parser import parse_stream

    entries = []
    for binding in parse_stream(io.StringIO(text)):
        raw = binding.original.string  # starts with the blank lines before the binding
        line = binding.original.line + raw[: len(raw) - len(raw.lstrip())].count("\n")
        if binding.error:
            raise FormatError(
                f"{shown}:{line}: cannot parse this line",
                hint="write KEY=value; quote values with spaces, '#' or newlines",
            )
        if binding.key is None:
            continue  # a blank line or a comment
        if binding.value is None:
            raise FormatError(f"{shown}:{line}: {binding.key} has no '=' and no value")
        entries.append(Entry(binding.key, binding.value, line))
    return entries


def parse_json(text: str, shown: str) -> list[Entry]:
    """A flat JSON object of string values, walked by hand to know each key's line."""
    import json

    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def fail(pos: int, problem: str) -> FormatError:
        return FormatError(f"{shown}:{line_of(pos)}: {problem}")

    pos = ws.match(text, 0).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] != "{":
        raise fail(pos, "expected a JSON object of name: value")
    pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
    entries: list[Entry] = []
    if text[pos : pos + 1] == "}":
        pos += 1
    else:
        while True:
            if text[pos : pos + 1] != '"':
                raise fail(pos, "expected a name in double quotes")
            line = line_of(pos)
            try:
                key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
            except ValueError:
                raise fail(pos, "invalid JSON string") from None
            pos = ws.match(text, pos).end()  # type: ignore[union-attr]
            if text[pos : pos + 1] != ":":
                raise fail(pos, f"expected ':' after {key!r}")
            pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
            start = pos
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise fail(exc.pos, f"invalid JSON: {exc.msg}") from None
            if not isinstance(value, str):
                raise fail(start, f"the value of {key!r} must be a string")
            entries.append(Entry(key, value, line))
            pos = ws.match(text, pos).end()  # type: ignore[union-attr]
            if text[pos : pos + 1] == ",":
                pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
                continue
            if text[pos : pos + 1] == "}":
                pos += 1
                break
            raise fail(pos, "expected ',' or '}'")
    pos = ws.match(text, pos).end()  # type: ignore[union-attr]
    if pos != len(text):
        raise fail(pos, "unexpected text after the JSON object")
    return entries


def parse_yaml(text: str, shown: str) -> list[Entry]:
    """A flat YAML mapping of scalars; a scalar is kept as written (``5432``,
    ``yes``), so nothing is turned into a number or a boolean."""
    import yaml
    from yaml.nodes import MappingNode, ScalarNode

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root: Node | None = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{shown}:{mark.line + 1}" if mark else shown
        raise FormatError(f"{where}: invalid YAML: {exc.problem or 'syntax error'}") from None
    except yaml.YAMLError:
        raise FormatError(f"{shown}: invalid YAML") from None
    if root is None:
        return []
    if not isinstance(root, MappingNode):
        raise FormatError(f"{shown}:{root.start_mark.line + 1}: expected a mapping of name: value")
    entries = []
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            raise FormatError(f"{shown}:{line}: keys must be plain names (no '<<' merges)")
        key = str(key_node.value)
        if not isinstance(value_node, ScalarNode):
            raise FormatError(f"{shown}:{line}: the value of {key!r} must be a string")
        if value_node.tag == "tag:yaml.org,2002:null":
            raise FormatError(f"{shown}:{line}: {key!r} has no value")
        entries.append(Entry(key, str(value_node.value), line))
    return entries
