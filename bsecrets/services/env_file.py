"""``exec --env-file FILE``: a dotenv file of plain settings and references.

    LOG_LEVEL=debug                        passed as it is
    DB_URL=bsecrets://prod/db/url          the current version, resolved
    API_KEY=bsecrets://dev/api/key#v3      version 3
    DB_PASS=bsecrets://staging/db#password one field of a Vault secret

The file is read with python-dotenv's parser, as ``import`` reads dotenv (same
quoting, no ``${VAR}`` interpolation). A value that starts with ``bsecrets:`` is a
reference and must be one whole (render's grammar, run/template.parse_body): a
malformed one is exit 2 naming ``FILE:LINE``. Any other value passes untouched.
Several files layer in order, and within them a later line wins; a line that
another one overrides is checked but never read.

The file holds no secret, so it need not be private, but it decides which secret
lands in which variable: it is trusted like the profile (files.check_trusted_file),
so a file or a folder on its way that another user can write is refused (exit 4).

Errors name ``FILE:LINE`` and what is wrong, never a value and never more of the
line than the reference. Plain references (no version, no field) are read in one
audited read per environment; a version or a field is its own audited ``get``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from bsecrets.config.envmap import PRISTINE_KEEP, WITHHELD, is_protected
from bsecrets.errors import BsecretsError, InsecureFile, NextStep, UsageError
from bsecrets.files import check_trusted_file
from bsecrets.named_tuples import NamedTuple

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

MAX_BYTES = 1024 * 1024  # a reference file is a few lines; /dev/zero is not one
SCHEME = "bsecrets:"
_VARIABLE = r"[A-Za-z_][A-Za-z0-9_]*"  # compiled on the first --env-file (re keeps it)
_REFERENCE_HINT = "write KEY=bsecrets://ENV/NAME, optionally with #vN and/or #field"


class Line(NamedTuple):
    """One setting of a reference file: a plain value, or a reference to resolve."""

    key: str  # the variable it sets
    where: str  # FILE:LINE
    text: str | None  # a plain setting's value; None for a reference
    env: str = ""  # a reference's environment, NAME (or NAME#field) and version
    name: str = ""
    version: int | None = None

    @property
    def batched(self) -> bool:
        """A reference read with the other current values of its environment."""
        return self.text is None and self.version is None and "#" not in self.name


def load(paths: Iterable[str]) -> list[Line]:
    """Every setting of every file, in order (a later one wins: ``winners``); exit 2
    on a file that cannot be read or parsed, exit 4 on one others could have written."""
    lines: list[Line] = []
    for path in paths:
        lines += parse(read_text(path), path)
    return lines


def read_text(path: str) -> str:
    """The file's text, checked like the profile (see the module's docstring)."""
    checked = check_trusted_file(path, private=False, what="env file")

    def unreadable(why: str) -> UsageError:
        return UsageError(
            f"cannot read the env file {path}: {why}",
            hint="give the path of a readable dotenv file (KEY=value lines)",
        )

    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            if checked is not None and (checked.st_dev, checked.st_ino) != (st.st_dev, st.st_ino):
                raise InsecureFile(
                    f"env file {path} was replaced while it was being checked",
                    hint="run the command again; if it persists, look for who changes the file",
                )
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise unreadable(exc.strerror or type(exc).__name__) from None
    if len(data) > MAX_BYTES:
        raise unreadable(f"it holds more than {MAX_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"{path}:{line}: the file is not valid UTF-8", hint="save the file as UTF-8"
        ) from None


def parse(text: str, shown: str) -> list[Line]:
    """The settings of one file (python-dotenv's parser, as ``import``)."""
    from bsecrets.formats.codecs import parse_dotenv  # here: an exec without a file skips it

    lines = []
    for entry in parse_dotenv(text, shown):
        where = f"{shown}:{entry.line}"
        if not re.fullmatch(_VARIABLE, entry.key):  # never echoed: it may be a pasted token
            raise UsageError(
                f"{where}: the key is not a variable name",
                hint="a variable name is letters, digits and '_', not starting with a digit",
            )
        if entry.value.startswith(SCHEME):
            lines.append(_reference(entry.key, entry.value, where))
        else:
            lines.append(Line(entry.key, where, entry.value))
    return lines


def _reference(key: str, value: str, where: str) -> Line:
    from bsecrets.run.template import parse_body

    try:
        if not value.startswith(f"{SCHEME}//"):
            raise ValueError("expected bsecrets://ENV/NAME")
        env, name, version = parse_body(value[len(SCHEME) + 2 :])
    except ValueError as exc:
        raise UsageError(f"{where}: malformed reference: {exc}", hint=_REFERENCE_HINT) from None
    return Line(key, where, None, env, name, version)


def winners(lines: Iterable[Line]) -> dict[str, Line]:
    """Variable -> the line that sets it: the last one."""
    return {line.key: line for line in lines}


def setters(lines: Iterable[Line]) -> dict[str, list[str]]:
    """Variable -> every FILE:LINE that sets it, in order."""
    found: dict[str, list[str]] = {}
    for line in lines:
        found.setdefault(line.key, []).append(line.where)
    return found


def located(exc: BsecretsError, where: str) -> BsecretsError:
    """``exc`` with ``FILE:LINE: `` in front of its message (its class, and so its exit
    code, kept)."""
    exc.message = f"{where}: {exc.message}"
    exc.args = (exc.message,)
    return exc


def check_environments(manager: SecretsManager, lines: Iterable[Line]) -> None:
    """Every reference names a known environment (exit 3 at its FILE:LINE), before
    anything is read; overridden lines too."""
    for line in lines:
        if line.text is None:
            try:
                manager.env_name(line.env)
            except BsecretsError as exc:
                raise located(exc, line.where) from None


def check_settable(
    lines: Iterable[Line],
    inherited: Mapping[str, str],
    *,
    pristine: bool,
    preserve: Iterable[str],
    allow_override: Iterable[str],
) -> None:
    """The rules envmap.child_environment applies to a secret, worded for a line:
    bsecrets' unlock variables never, a protected variable only with
    ``--allow-override`` (unless ``--preserve-env`` keeps the inherited one), no NUL."""
    preserved = {v.strip() for v in preserve if v.strip()}
    allowed = {v.strip() for v in allow_override if v.strip()}
    for line in lines:
        key = line.key
        if key in WITHHELD:
            raise UsageError(
                f"{line.where}: {key} never reaches a child process",
                hint="remove the line: bsecrets passes its own unlock variables to no command",
            )
        if pristine:  # what the child keeps of the inherited environment
            kept = key == "PATH" or (key in PRISTINE_KEEP and key in inherited)
        else:
            kept = key in inherited
        if key in preserved and kept:
            continue
        if is_protected(key) and key not in allowed:
            raise UsageError(
                f"{line.where}: the line would set the protected variable {key}",
                step=NextStep("allow_keep_or_drop_line", variable=key),
            )
        if line.text is not None and "\0" in line.text:
            raise UsageError(
                f"{line.where}: the value holds a NUL byte and cannot be an environment variable",
                hint="remove the NUL byte",
            )


def batch_reads(lines: Iterable[Line]) -> dict[str, list[str]]:
    """Environment -> the names its plain references read (in one read each)."""
    reads: dict[str, list[str]] = {}
    for line in lines:
        if line.batched and line.name not in reads.setdefault(line.env, []):
            reads[line.env].append(line.name)
    return reads


def locator(
    lines: Sequence[Line], others: Mapping[str, Sequence[str]]
) -> Callable[[str, BsecretsError], None]:
    """For env_layers.reading: a failed read of an environment is put at the line of the
    reference its message names (``'NAME'``), else at the first line reading that
    environment, unless ``others[env]`` (the -e layer's names) may be what failed."""

    def locate(env: str, exc: BsecretsError) -> None:
        mine = [line for line in lines if line.batched and line.env == env]
        named = [line for line in mine if f"'{line.name}'" in exc.message]
        if named:
            located(exc, named[0].where)
        elif mine and not others.get(env):
            located(exc, mine[0].where)

    return locate


def resolve_each(manager: SecretsManager, lines: Iterable[Line]) -> dict[str, bytes]:
    """FILE:LINE -> value of each reference with a version or a field: an audited
    ``get`` each (SecretsManager.get: ``NAME#field``, ``#previous``...)."""
    values: dict[str, bytes] = {}
    for line in lines:
        if line.text is None and not line.batched:
            try:
                values[line.where] = manager.get(line.env, line.name, line.version).value
            except BsecretsError as exc:
                raise located(exc, line.where) from None
    return values
