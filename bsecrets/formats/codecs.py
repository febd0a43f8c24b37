"""Bulk formats: rendering secrets as dotenv, JSON, YAML, shell or GITHUB_ENV
text, and parsing dotenv, JSON and YAML files for ``import``.

Pure functions over plain data (no manager, no I/O). Heavy parsers (PyYAML,
python-dotenv) are imported inside the functions that use them.

Keys: the variable formats (dotenv, shell, github-env) are keyed by the
variable a name maps to (docs/exec.md: ``db/password`` -> ``DB_PASSWORD``); JSON and
YAML are keyed by the secret names themselves, so they round-trip exactly.

Export errors name the variable, never the value; import errors name the file
and line, never the file's text (not even a key: on a malformed line it may be
a pasted token).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from bsecrets.config.envmap import map_names
from bsecrets.errors import BsecretsError, NextStep, UsageError
from bsecrets.named_tuples import NamedTuple

if TYPE_CHECKING:
    from yaml.nodes import Node

EXPORT_FORMATS = ("dotenv", "json", "yaml", "shell", "github-env")
IMPORT_FORMATS = ("dotenv", "json", "yaml")
VARIABLE_FORMATS = ("dotenv", "shell", "github-env")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# dotenv values written without quotes: literal in python-dotenv and in sh, bash
# and zsh. No '=' (zsh expands '=cmd' at the start and after ':' in an
# assignment), no '~' (tilde expansion), nothing a shell or dotenv treats specially.
_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+,-]+")


class Entry(NamedTuple):
    """One key/value read from an import file, with the 1-based line of its key."""

    key: str
    value: str
    line: int


class FormatError(UsageError):
    """An import file that cannot be read: the message names the file and line and
    what is wrong, never the file's text."""

    kind = "format_error"
    default_hint = "fix the file and import it again; nothing was imported"


class ExportError(BsecretsError):
    """A value the chosen export format cannot carry exactly."""

    kind = "export_error"


def variables(names: Iterable[str], prefix: str = "") -> dict[str, str]:
    """Variable -> secret name, in name order, as ``exec`` names them (envmap:
    ``db/password`` -> ``PREFIX`` + ``DB_PASSWORD``). Two names on one variable,
    a bad prefix, or a variable that is not a valid identifier, is a UsageError
    (exit 2)."""

    def identifier(name: str, var: str) -> None:
        if not _IDENTIFIER.fullmatch(var):
            raise UsageError(
                f"secret '{name}' maps to {var}, which is not a valid variable name",
                hint="variables cannot start with a digit",
                step=NextStep("rename_or_export_as_json_or_yaml", name=name),
            )

    return map_names(
        names, prefix, collision=NextStep("rename_one_or_export_by_name"), check=identifier
    )


# --- rendering --------------------------------------------------------------


def dotenv_problem(value: str) -> str | None:
    """Why ``value`` cannot be written as dotenv that is both safe to source in
    sh, bash and zsh (``set -a; . ./file``) and read back exactly by python-dotenv
    and ``bsecrets import``; None when it can (docs/transfer.md)."""
    if "\0" in value:
        return "holds a NUL byte, which a shell variable cannot hold"
    if "\r" in value:
        # python-dotenv opens the file with universal newlines (CR -> LF), has no
        # escape a shell shares, and a shell reads '\r' in double quotes literally
        return "holds a carriage return, which python-dotenv does not read back"
    if value.endswith("\\"):
        # in either quote style python-dotenv reads a final backslash as escaping
        # the closing quote and runs on to the next quote in the file
        return "ends with a backslash, which python-dotenv misreads inside quotes"
    if ("'" in value or "\\\\" in value) and ("$" in value or "`" in value):
        # single quotes cannot hold ' (shell) or \\ (python-dotenv reads it as \);
        # double quotes cannot hold $ or ` literally in a shell, and python-dotenv
        # has no escape for them
        return "holds ' or two backslashes in a row together with $ or `"
    return None


def dotenv_value(key: str, value: str) -> str:
    """``value`` as one dotenv token that sh, bash and zsh read as a literal (nothing
    expands or runs) and python-dotenv reads back exactly (with ``interpolate=False``;
    see docs/transfer.md): plain when every character is safe unquoted, else single
    quotes when there is no ``'`` and no ``\\\\``, else double quotes with ``\\`` and
    ``\"`` escaped (only when there is no ``$`` or backtick). ExportError otherwise."""
    problem = dotenv_problem(value)
    if problem is not None:
        raise ExportError(
            f"the value of {key} {problem}; dotenv cannot carry it safely and exactly",
            step=NextStep("export_as_json_yaml_or_shell"),
        )
    if _PLAIN.fullmatch(value):
        return value
    if "'" not in value and "\\\\" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
                step=NextStep("export_as_json_or_yaml"),
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


def render(fmt: str, items: Iterable[tuple[str, str]]) -> str:
    """``items`` in one of the text formats: dotenv, json, yaml or shell."""
    renderers = {
        "dotenv": render_dotenv,
        "json": render_json,
        "yaml": render_yaml,
        "shell": render_shell,
    }
    return renderers[fmt](items)


def github_env_block(key: str, value: str, delimiter: Callable[[], str]) -> str:
    """``KEY<<DELIM`` / value / ``DELIM``, the multi-line form of $GITHUB_ENV.

    The runner ends the value at the first line equal to DELIM, so DELIM is
    drawn (from ``delimiter``, random in the CLI) until it occurs nowhere in the
    value: no line of the value can end the block early and start a variable.
    The key is a plain identifier, so it cannot hold ``<<``, ``=`` or a newline."""
    if not _IDENTIFIER.fullmatch(key):
        raise UsageError(
            f"the variable {key!r} cannot be written to GITHUB_ENV",
            hint="names written to GITHUB_ENV are letters, digits and '_', "
            "not starting with a digit",
        )
    if "\0" in value or "\r" in value:
        raise ExportError(
            f"the value of {key} holds a NUL or carriage return, which GITHUB_ENV cannot carry",
            step=NextStep("use_exec_in_ci_step"),
        )
    while True:
        delim = delimiter()
        if _IDENTIFIER.fullmatch(delim) and delim not in value and delim != key:
            break
    return f"{key}<<{delim}\n{value}\n{delim}\n"


# --- parsing ----------------------------------------------------------------
#
# Every error below names the file, the line and what is wrong, and never
# quotes the file: not a value, not a key (a malformed line's "key" may be a
# pasted token), not a parser's own message when that can hold file text
# (PyYAML's problems quote aliases, anchors and characters; of a JSONDecodeError
# only the fixed phrase is kept).

_DOTENV_HINT = "write KEY=value, one per line; quote values with spaces, '#' or newlines"
_JSON_HINT = 'write one flat JSON object of "name": "string value" pairs'
_YAML_HINT = "write one flat mapping of name: value; quote values holding ': ', ' #' or '*'"


def decode_text(data: bytes, shown: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FormatError(
            f"{shown}:{line}: the file is not valid UTF-8",
            hint="save the file as UTF-8; nothing was imported",
        ) from None


def parse(fmt: str, text: str, shown: str) -> list[Entry]:
    """Every entry of an import file, or FormatError naming the first bad line."""
    if fmt == "dotenv":
        return parse_dotenv(text, shown)
    if fmt == "json":
        return parse_json(text, shown)
    if fmt == "yaml":
        return parse_yaml(text, shown)
    raise UsageError(f"unknown format '{fmt}'", hint=f"one of {', '.join(IMPORT_FORMATS)}")


# A line python-dotenv reads as KEY=value with the value as written: an identifier,
# '=' and a value with no white space (so no inline comment, nothing stripped) that
# does not start with a quote (so nothing unquoted or unescaped).
_VERBATIM_BINDING = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=((?:[^\s'\"]\S*)?)")


def verbatim_dotenv(text: str) -> list[Entry] | None:
    """The entries of a dotenv file whose every line is such a binding, blank, or a
    '#' comment, as python-dotenv reads them; None for any other file, which
    python-dotenv parses (100,000 lines: a fraction of a second here, several seconds
    there). Only \\n ends a line in such a file: with a \\r anywhere, None."""
    if "\r" in text:
        return None
    entries = []
    binding = _VERBATIM_BINDING.fullmatch
    for number, line in enumerate(text.split("\n"), 1):
        found = binding(line)
        if found is not None:
            entries.append(Entry(found[1], found[2], number))
        elif line and line[0] != "#":
            return None
    return entries


def parse_dotenv(text: str, shown: str) -> list[Entry]:
    """Bindings as python-dotenv reads them, without ``${VAR}`` interpolation."""
    verbatim = verbatim_dotenv(text)
    return verbatim if verbatim is not None else python_dotenv(text, shown)


def python_dotenv(text: str, shown: str) -> list[Entry]:
    """parse_dotenv by python-dotenv's own parser, for any file."""
    import io

    from dotenv.parser import parse_stream

    entries = []
    for binding in parse_stream(io.StringIO(text)):
        raw = binding.original.string  # starts with the blank lines before the binding
        line = binding.original.line + raw[: len(raw) - len(raw.lstrip())].count("\n")
        if binding.error:
            raise FormatError(f"{shown}:{line}: cannot parse this line", hint=_DOTENV_HINT)
        if binding.key is None:
            continue  # a blank line or a comment
        if binding.value is None:
            raise FormatError(f"{shown}:{line}: the line has no '='", hint=_DOTENV_HINT)
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
        return FormatError(f"{shown}:{line_of(pos)}: {problem}", hint=_JSON_HINT)

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
                raise fail(pos, "expected ':' after the name")
            pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
            start = pos
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                # exc.msg is one of json's fixed phrases ("Expecting value", ...),
                # except that the pure-Python scanner appends the bad escape
                # character after a colon: keep the phrase only
                phrase = exc.msg.split(":", 1)[0]
                raise fail(exc.pos, f"invalid JSON: {phrase}") from None
            if not isinstance(value, str):
                raise fail(start, "the value must be a string")
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


def _yaml_error(exc: Exception, text: str, shown: str) -> FormatError:
    """FormatError for a PyYAML error: the kind of problem and where, never its
    message (which can quote an alias, an anchor or a character of the file)."""
    import yaml

    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return FormatError(
            f"{shown}:{line}: the file holds a control character YAML does not allow",
            hint="remove the character, or write it as an escape in a double-quoted value",
        )
    problem = {
        yaml.scanner.ScannerError: "invalid YAML syntax",
        yaml.parser.ParserError: "invalid YAML structure",
        yaml.composer.ComposerError: "invalid YAML alias or anchor",
    }
    what = next((p for cls, p in problem.items() if isinstance(exc, cls)), "invalid YAML")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{shown}:{mark.line + 1}" if mark is not None else shown
    return FormatError(f"{where}: {what}", hint=_YAML_HINT)


def parse_yaml(text: str, shown: str) -> list[Entry]:
    """A flat YAML mapping of scalars; a scalar is kept as written (``5432``,
    ``yes``), so nothing is turned into a number or a boolean."""
    import yaml
    from yaml.nodes import MappingNode, ScalarNode

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root: Node | None = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, shown) from None
    if root is None:
        return []

    def fail(node: Node, problem: str) -> FormatError:
        return FormatError(f"{shown}:{node.start_mark.line + 1}: {problem}", hint=_YAML_HINT)

    if not isinstance(root, MappingNode):
        raise fail(root, "expected a mapping of name: value")
    entries = []
    for key_node, value_node in root.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            raise fail(key_node, "keys must be plain names (no '<<' merges)")
        if not isinstance(value_node, ScalarNode):
            raise fail(key_node, "the value must be a string, not a list or a mapping")
        if value_node.tag == "tag:yaml.org,2002:null":
            raise fail(key_node, "the key has no value")
        entries.append(
            Entry(str(key_node.value), str(value_node.value), key_node.start_mark.line + 1)
        )
    return entries
