"""export, import and diff on top of SecretsManager (every backend).

Values stay in memory: nothing here writes them to a temp file, a log or an
error message. ``diff`` compares values by HMAC-SHA256 under a random key made
for the run and forgotten with it, so neither values nor their hashes leave
the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from bsecrets.core.envmap import WITHHELD, is_protected
from bsecrets.core.errors import BsecretsError, EmptyValue, SecretNotFound, UsageError
from bsecrets.core.formats import Entry, FormatError, variables
from bsecrets.core.models import validate_name, validate_value

if TYPE_CHECKING:
    from bsecrets.core.manager import SecretsManager


def _text(name: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BsecretsError(
            f"secret '{name}' is not UTF-8 text and cannot be exported",
            hint="read it with 'bsecrets get NAME --raw'",
        ) from None


def export_items(
    values: dict[str, bytes], fmt: str, allow_override: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """(key, text) pairs for ``fmt``: variables for dotenv/shell/github-env, names otherwise.

    The variable formats set variables in whatever reads them (a shell sourcing
    the file, every later GitHub Actions step), so they get ``exec``'s rules: a
    secret may set a protected variable (PATH, LD_*, ...) only when
    ``allow_override`` names it, and never bsecrets' own unlock variables.
    """
    if fmt in ("json", "yaml"):
        return [(name, _text(name, value)) for name, value in values.items()]
    mapping = variables(values)
    check_settable(mapping, allow_override)
    return [(var, _text(name, values[name])) for var, name in mapping.items()]


def check_settable(mapping: dict[str, str], allow_override: Iterable[str] = ()) -> None:
    """UsageError (exit 2, as ``exec``) naming the first secret whose variable
    (``mapping``: variable -> secret name) is withheld, or protected and not allowed."""
    allowed = {v.strip() for v in allow_override if v.strip()}
    for variable, name in sorted(mapping.items()):
        if variable in WITHHELD:
            raise UsageError(
                f"secret '{name}' maps to {variable}, which bsecrets never sets as a variable",
                hint="rename the secret, or export with --format json or yaml (keyed by name)",
            )
        if is_protected(variable) and variable not in allowed:
            raise UsageError(
                f"secret '{name}' would override the protected variable {variable}",
                hint=f"allow it with --allow-override {variable}, rename the secret, "
                "or export with --format json or yaml (keyed by name)",
            )


# --- import -----------------------------------------------------------------


class ImportPlan(NamedTuple):
    new: list[str]
    changed: list[str]
    unchanged: list[str]
    values: dict[str, bytes]  # name -> value, for new and changed only


def validate_entries(
    entries: list[Entry], shown: str, *, allow_empty: bool = False
) -> dict[str, bytes]:
    """Name -> value after checking every entry; FormatError (exit 2) names the file
    and line, never a key or a value (a bad key may be a pasted token). An empty
    value is refused unless ``allow_empty`` (as ``put``: a blank ``KEY=`` is more
    often a placeholder than a value)."""
    seen: dict[str, int] = {}
    out: dict[str, bytes] = {}
    for entry in entries:
        where = f"{shown}:{entry.line}"
        if entry.key in seen:
            raise FormatError(
                f"{where}: duplicate key (first on line {seen[entry.key]})",
                hint="keep one of them; nothing was imported",
            )
        seen[entry.key] = entry.line
        try:
            validate_name(entry.key)
        except UsageError as exc:
            raise FormatError(
                f"{where}: the key is not a valid secret name",
                hint=(exc.hint + "; " if exc.hint else "") + "nothing was imported",
            ) from None
        try:
            data = entry.value.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(
                f"{where}: the value is not valid Unicode text (it holds a lone surrogate)"
            ) from None
        try:
            out[entry.key] = validate_value(data, allow_empty=allow_empty)
        except UsageError as exc:  # empty or too large: never the value
            raise FormatError(
                f"{where}: {exc.message}",
                hint="pass --allow-empty to import empty values; nothing was imported"
                if isinstance(exc, EmptyValue)
                else (exc.hint + "; " if exc.hint else "") + "nothing was imported",
            ) from None
    return out


def plan_import(manager: SecretsManager, env: str | None, incoming: dict[str, bytes]) -> ImportPlan:
    existing = {s.name for s in manager.list_secrets(env)}
    new, changed, unchanged = [], [], []
    values: dict[str, bytes] = {}
    for name, value in incoming.items():
        if name not in existing:
            new.append(name)
            values[name] = value
            continue
        try:
            current = manager.get(env, name).value
        except SecretNotFound:
            new.append(name)
            values[name] = value
            continue
        if current == value:
            unchanged.append(name)
        else:
            changed.append(name)
            values[name] = value
    return ImportPlan(sorted(new), sorted(changed), sorted(unchanged), values)


def apply_import(
    manager: SecretsManager,
    env: str | None,
    plan: ImportPlan,
    progress: Callable[[int, int], None] | None = None,
    *,
    allow_empty: bool = False,
) -> None:
    """Write every new and changed value in one transaction (all or nothing where
    the backend can: the local vault)."""
    total = len(plan.values)
    with manager.transaction(env, action="import", names=sorted(plan.values)):
        for done, (name, value) in enumerate(sorted(plan.values.items()), 1):
            manager.put(env, name, value, allow_empty=allow_empty)
            if progress is not None:
                progress(done, total)


# --- diff -------------------------------------------------------------------


class Diff(NamedTuple):
    only_a: list[str]
    only_b: list[str]
    different: list[str]
    same: list[str]

    @property
    def differs(self) -> bool:
        return bool(self.only_a or self.only_b or self.different)


def keyed_digests(values: dict[str, bytes], key: bytes) -> dict[str, bytes]:
    from cryptography.hazmat.primitives import hashes, hmac

    out = {}
    for name, value in values.items():
        mac = hmac.HMAC(key, hashes.SHA256())
        mac.update(value)
        out[name] = mac.finalize()
    return out


def diff_envs(manager: SecretsManager, env_a: str, env_b: str) -> Diff:
    key = os.urandom(32)  # for this run only; never printed or stored
    a = keyed_digests(manager.current_values(env_a, action="diff"), key)
    b = keyed_digests(manager.current_values(env_b, action="diff"), key)
    return compare(a, b)


def compare(a: dict[str, bytes], b: dict[str, bytes]) -> Diff:
    both = sorted(set(a) & set(b))
    return Diff(
        only_a=sorted(set(a) - set(b)),
        only_b=sorted(set(b) - set(a)),
        different=[n for n in both if a[n] != b[n]],
        same=[n for n in both if a[n] == b[n]],
    )
