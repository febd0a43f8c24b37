"""export, import and diff on top of SecretsManager (every backend).

Values stay in memory: nothing here writes them to a temp file, a log or an
error message. ``diff`` compares values by HMAC-SHA256 under a random key made
for the run and forgotten with it, so neither values nor their hashes leave
the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from bsecrets.audit.events import Action
from bsecrets.config.envmap import WITHHELD, check_prefix, is_protected, select_names
from bsecrets.errors import BsecretsError, EmptyValue, NextStep, SecretNotFound, UsageError
from bsecrets.formats.codecs import VARIABLE_FORMATS, Entry, FormatError, variables
from bsecrets.models import validate_name, validate_value
from bsecrets.named_tuples import NamedTuple
from bsecrets.services.env_layers import plan, reading, refuse_collisions

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


def _text(name: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BsecretsError(
            f"secret '{name}' is not UTF-8 text and cannot be exported",
            step=NextStep("read_value_raw", name=name),
        ) from None


class Export(NamedTuple):
    env: str
    items: list[tuple[str, str]]  # (key, text) in the format's order
    values: dict[str, bytes]  # name -> value of every secret exported


def export_env(
    manager: SecretsManager,
    env: str | None,
    fmt: str,
    *,
    only: Iterable[str] = (),
    prefix: str = "",
    allow_override: Iterable[str] = (),
) -> Export:
    """The secrets of ``env`` to export as ``fmt``, read in one audited ``export``
    operation whose event names exactly the secrets exported.

    ``only`` and ``prefix`` are ``exec``'s (envmap): names or globs, every live
    secret without them; ``prefix`` goes in front of every variable, so it applies
    to the variable formats only (json and yaml are keyed by secret name: exit 2).
    Names, the prefix, collisions and protected variables are checked before any
    value is read where the names are known first (``only``)."""
    env_name = manager.env_name(env)
    check_prefix(prefix)
    if prefix and fmt not in VARIABLE_FORMATS:
        raise UsageError(
            f"--prefix names variables, and --format {fmt} is keyed by secret name",
            step=NextStep("drop_prefix_or_use_variable_format", format=fmt),
        )
    wanted = list(only)
    if not wanted:  # the whole environment: one snapshot, each bucket read once
        values = manager.current_values(env_name, action=Action.EXPORT)
        return Export(env_name, export_items(values, fmt, allow_override, prefix), values)
    names = select_names(wanted, lambda: [s.name for s in manager.list_secrets(env_name)], env_name)
    if fmt in VARIABLE_FORMATS:
        check_settable(variables(names, prefix), allow_override)
    with manager.reading(env_name, names, action=Action.EXPORT) as (values, _note):
        items = export_items(values, fmt, allow_override, prefix)
    return Export(env_name, items, values)


def export_layers(
    manager: SecretsManager,
    envs: Sequence[str | None],
    fmt: str,
    *,
    only: Sequence[str] = (),
    prefix: str = "",
    allow_override: Sequence[str] = (),
    strict: bool = False,
) -> Export:
    """``export -e shared -e dev``: the layers' secrets merged (the later one wins), one
    audited ``export`` read per environment naming the secrets taken from it. One
    environment is export_env, as it always was. Here, not in env_layers: exec's
    layers need none of the formats (bench/README.md, "Standard-library imports off
    the hot path")."""
    if len(envs) == 1:
        return export_env(
            manager, envs[0], fmt, only=only, prefix=prefix, allow_override=allow_override
        )
    check_prefix(prefix)
    if prefix and fmt not in VARIABLE_FORMATS:  # as export_env
        raise UsageError(
            f"--prefix names variables, and --format {fmt} is keyed by secret name",
            step=NextStep("drop_prefix_or_use_variable_format", format=fmt),
        )
    layers = plan(manager, envs, only)
    if strict:
        refuse_collisions(layers.held_by)
    if fmt in VARIABLE_FORMATS:  # before any value is read
        check_settable(variables(layers.names, prefix), allow_override)
    reads = {layer.env: layer.names for layer in layers.layers}
    with reading(manager, reads, action=Action.EXPORT) as (found, _notes):
        values = {name: found[(layer.env, name)] for layer in layers.layers for name in layer.names}
        values = dict(sorted(values.items()))
        items = export_items(values, fmt, allow_override, prefix)
    return Export(layers.label, items, values)


def read_chosen(manager: SecretsManager, env: str | None, only: list[str]) -> dict[str, bytes]:
    """The current values of the secrets ``only`` picks (names and globs, as --only; none:
    every secret the caller may read), by name in name order, in one audited ``read``
    (the SDK's ``environ()``, the server's bulk read)."""
    env_name = manager.env_name(env)
    names = select_names(only, lambda: [s.name for s in manager.list_secrets(env_name)], env_name)
    with manager.reading(env_name, names, action=Action.READ) as (values, _note):
        pass
    return {name: values[name] for name in names}


def export_items(
    values: dict[str, bytes], fmt: str, allow_override: Iterable[str] = (), prefix: str = ""
) -> list[tuple[str, str]]:
    """(key, text) pairs for ``fmt``: variables for dotenv/shell/github-env (with
    ``prefix`` in front), names otherwise.

    The variable formats set variables in whatever reads them (a shell sourcing
    the file, every later GitHub Actions step), so they get ``exec``'s rules: a
    secret may set a protected variable (PATH, LD_*, ...) only when
    ``allow_override`` names it, and never bsecrets' own unlock variables.
    """
    if fmt not in VARIABLE_FORMATS:
        return [(name, _text(name, value)) for name, value in values.items()]
    mapping = variables(values, prefix)
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
                step=NextStep("rename_or_export_by_name", name=name),
            )
        if is_protected(variable) and variable not in allowed:
            raise UsageError(
                f"secret '{name}' would override the protected variable {variable}",
                step=NextStep("allow_rename_or_export_by_name", variable=variable),
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
        except EmptyValue as exc:
            raise FormatError(
                f"{where}: {exc.message}",
                hint="nothing was imported",
                step=NextStep("allow_empty_import"),
            ) from None
        except UsageError as exc:  # too large: never the value
            raise FormatError(
                f"{where}: {exc.message}",
                hint=(exc.hint + "; " if exc.hint else "") + "nothing was imported",
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
    with manager.transaction(env, action=Action.IMPORT, names=sorted(plan.values)):
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
    a = keyed_digests(manager.current_values(env_a, action=Action.DIFF), key)
    b = keyed_digests(manager.current_values(env_b, action=Action.DIFF), key)
    return compare(a, b)


def compare(a: dict[str, bytes], b: dict[str, bytes]) -> Diff:
    both = sorted(set(a) & set(b))
    return Diff(
        only_a=sorted(set(a) - set(b)),
        only_b=sorted(set(b) - set(a)),
        different=[n for n in both if a[n] != b[n]],
        same=[n for n in both if a[n] == b[n]],
    )
