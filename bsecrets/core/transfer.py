"""export, import and diff on top of SecretsManager (every backend).

Values stay in memory: nothing here writes them to a temp file, a log or an
error message. ``diff`` compares values by HMAC-SHA256 under a random key made
for the run and forgotten with it, so neither values nor their hashes leave
the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from bsecrets.core.errors import BsecretsError, SecretNotFound, UsageError
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


def export_items(values: dict[str, bytes], fmt: str) -> list[tuple[str, str]]:
    """(key, text) pairs for ``fmt``: variables for dotenv/shell/github-env, names otherwise."""
    if fmt in ("json", "yaml"):
        return [(name, _text(name, value)) for name, value in values.items()]
    mapping = variables(values)
    return [(var, _text(name, values[name])) for var, name in mapping.items()]


# --- import -----------------------------------------------------------------


class ImportPlan(NamedTuple):
    new: list[str]
    changed: list[str]
    unchanged: list[str]
    values: dict[str, bytes]  # name -> value, for new and changed only


def validate_entries(entries: list[Entry], shown: str) -> dict[str, bytes]:
    """Name -> value after checking every entry; FormatError (exit 2) names the line."""
    seen: dict[str, int] = {}
    out: dict[str, bytes] = {}
    for entry in entries:
        if entry.key in seen:
            raise FormatError(
                f"{shown}:{entry.line}: duplicate key {entry.key} "
                f"(first on line {seen[entry.key]})",
                hint="keep one of them; nothing was imported",
            )
        seen[entry.key] = entry.line
        try:
            validate_name(entry.key)
            value = validate_value(entry.value.encode("utf-8", errors="surrogateescape"))
        except UsageError as exc:
            raise FormatError(
                f"{shown}:{entry.line}: {exc.message}",
                hint=(exc.hint + "; " if exc.hint else "") + "nothing was imported",
            ) from None
        out[entry.key] = value
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
) -> None:
    """Write every new and changed value in one transaction (all or nothing where
    the backend can: the local vault)."""
    total = len(plan.values)
    with manager.transaction(env, action="import", names=sorted(plan.values)):
        for done, (name, value) in enumerate(sorted(plan.values.items()), 1):
            manager.put(env, name, value)
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
