"""``render``: fill ``{{ bsecrets://ENV/NAME }}`` references in a template.

Grammar (whitespace inside the braces is optional)::

    {{ bsecrets://ENV/NAME }}            the current version
    {{ bsecrets://ENV/NAME#v3 }}         version 3
    {{ bsecrets://ENV/NAME#field }}      one field of a structured (Vault) secret
    {{ bsecrets://ENV/NAME#field#v3 }}   both (in either order)
    {{ bsecrets:///NAME }}               no environment: the caller's (render's -e
                                         layers, the later one wins; else the default)

Only text starting ``{{ bsecrets:`` is a reference; other ``{{ ... }}`` (Helm,
Jinja, ...) is left alone. Every reference is parsed and resolved before the
caller writes anything, so a bad one leaves no output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from bsecrets.config.profile import ENV_NAME_PATTERN
from bsecrets.errors import BsecretsError, Denied, UsageError
from bsecrets.models import validate_name
from bsecrets.named_tuples import NamedTuple

if TYPE_CHECKING:
    from bsecrets.models import Secret

_START = re.compile(r"\{\{\s*bsecrets:")
_FULL = re.compile(r"\{\{\s*bsecrets://(?P<body>[^\s{}]*)\s*\}\}")
_VERSION = re.compile(r"v(?P<n>[0-9]+)")


class Reference(NamedTuple):
    env: str
    name: str  # NAME or NAME#field, as SecretsManager.get takes it
    version: int | None
    line: int
    column: int
    start: int  # offsets of the whole {{ ... }} in the template text
    end: int

    @property
    def key(self) -> tuple[str, str, int | None]:
        return (self.env, self.name, self.version)


def _where(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def parse_body(body: str, *, layered: bool = False) -> tuple[str, str, int | None]:
    """``ENV/NAME[#field][#vN]`` -> (env, name-or-name#field, version); ValueError says why.
    With ``layered``, ``/NAME`` (``bsecrets:///NAME``) gives env ``""``: the caller's.
    Also the parser of ``exec --env-file``'s references (services/env_file.py)."""
    env, sep, rest = body.partition("/")
    if not sep or not (env or layered):
        raise ValueError("expected bsecrets://ENV/NAME")
    if env and not re.fullmatch(ENV_NAME_PATTERN, env):
        raise ValueError(f"invalid environment name '{env}'")
    name, *fragments = rest.split("#")
    try:
        validate_name(name)
    except UsageError:
        raise ValueError(f"invalid secret name '{name}'") from None
    version: int | None = None
    field: str | None = None
    for fragment in fragments:
        match = _VERSION.fullmatch(fragment)
        if match:
            if version is not None:
                raise ValueError("more than one #vN")
            if len(match["n"]) > 18:
                raise ValueError("the version number is too large")
            version = int(match["n"])
            if version < 1:
                raise ValueError("versions start at 1")
        elif not fragment:
            raise ValueError("empty '#' fragment")
        elif field is not None:
            raise ValueError("more than one #field")
        else:
            field = fragment
    return env, name if field is None else f"{name}#{field}", version


def parse(text: str, source: str) -> list[Reference]:
    """Every reference in ``text``, in order; UsageError (exit 2) with line and column."""
    refs = []
    for start in _START.finditer(text):
        line, column = _where(text, start.start())
        match = _FULL.match(text, start.start())
        try:
            if match is None:
                raise ValueError("expected '{{ bsecrets://ENV/NAME }}'")
            env, name, version = parse_body(match["body"], layered=True)
        except ValueError as exc:
            raise UsageError(
                # never the text itself: a template may hold a value beside the reference
                f"{source}:{line}:{column}: malformed reference: {exc}",
                hint="write {{ bsecrets://ENV/NAME }} or {{ bsecrets:///NAME }}, optionally "
                "with #vN and/or #field",
            ) from None
        refs.append(Reference(env, name, version, line, column, match.start(), match.end()))
    return refs


Getter = Callable[[str, str, int | None], "Secret"]


def render(text: str, source: str, get: Getter) -> str:
    """Resolve every reference with ``get(env, name, version)``, then substitute.

    Errors from ``get`` keep their class (and so their exit code) and gain the
    reference's location; Denied passes through unchanged.
    """
    refs = parse(text, source)
    values: dict[tuple[str, str, int | None], str] = {}
    for ref in refs:
        if ref.key in values:
            continue
        try:
            values[ref.key] = get(ref.env, ref.name, ref.version).text
        except Denied:
            raise
        except BsecretsError as exc:
            exc.message = f"{source}:{ref.line}:{ref.column}: {exc.message}"
            exc.args = (exc.message,)
            raise
    parts = []
    pos = 0
    for ref in refs:
        parts.append(text[pos : ref.start])
        parts.append(values[ref.key])
        pos = ref.end
    parts.append(text[pos:])
    return "".join(parts)
