"""The HCL policy that confines a Vault role to one environment's prefix
(``bsecrets vault policy -e ENV [--read-only]``). Cheap to import; no network."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bsecrets.backends.vault.config import check_segments
from bsecrets.errors import UsageError

# (KV v2 path kind, read-write: (capabilities, used by), read-only: (capabilities, used by))
_RULES = (
    (
        "data",
        (("create", "read", "update"), "values: get reads, put and rollback write"),
        (("read",), "values: get"),
    ),
    (
        "metadata",
        (
            ("read", "list", "patch", "delete"),
            "versions, tags, authors (read, patch), ls (list), rm --purge (delete)",
        ),
        (("read", "list"), "versions and tags (history, get --version), ls (list)"),
    ),
    ("delete", (("update",), "rm: soft delete of the latest version"), ((), "")),
    ("undelete", (("update",), "restore"), ((), "")),
)


def scoped_paths(only: tuple[str, ...], *, what: str) -> list[str]:
    """The path suffixes of a grant's ``--only`` globs: a name, or a name ending in one
    ``*`` (Vault's prefix match); any other glob has no Vault path (UsageError)."""
    if not only:
        return ["*"]
    out = []
    for glob in only:
        stem = glob[:-1] if glob.endswith("*") else glob
        if set(stem) & set("*?[]+") or not glob.strip("*"):
            raise UsageError(
                f"{what}: the scope {glob!r} has no Vault policy path",
                hint="Vault matches a name, or a prefix ending in one '*' (such as 'db/*')",
            )
        out.append(glob)
    return out


def render_policy(
    env: str,
    options: Mapping[str, Any],
    *,
    read_only: bool = False,
    only: tuple[str, ...] = (),
    principal: str | None = None,
) -> str:
    """HCL granting exactly what bsecrets needs under ``<mount>/*/<prefix>/``, nothing else;
    with ``only`` (a principal's scope), under those names only."""
    mount = str(options.get("mount", "secret")).strip("/")
    prefix = str(options.get("prefix", "")).strip("/")
    if not prefix:
        raise UsageError(
            f"environment '{env}' has no prefix, so no policy can confine it",
            hint=f"set environments.{env}.prefix in the profile",
        )
    for key, value in (("mount", mount), ("prefix", prefix)):
        what = f"environments.{env}.{key}"
        check_segments(value, what=what)
        if set(value) & set('*+"\\') or any(ch.isspace() for ch in value):
            raise UsageError(f"{what}: {value!r} cannot be written into a policy path")
    suffixes = scoped_paths(only, what=f"environments.{env}")
    mode = "read-only" if read_only else "read-write"
    who = f", principal '{principal}'" if principal else ""
    lines = [
        f"# bsecrets: environment '{env}' ({mode}{who}): KV v2 mount '{mount}/', "
        f"prefix '{prefix}/'.",
        "# Attach it to the one AppRole or Kubernetes role that serves this environment;",
        "# any other environment's prefix stays out of reach (permission denied, exit 4).",
    ]
    if only:
        lines.append(f"# Scope: {', '.join(only)} (the grant's --only).")
    for kind, read_write, reading in _RULES:
        caps, used_for = reading if read_only else read_write
        if not caps:
            continue
        quoted = ", ".join(json.dumps(c) for c in caps)
        lines += ["", f"# {used_for}"]
        for suffix in suffixes:
            lines += [
                f"path {json.dumps(f'{mount}/{kind}/{prefix}/{suffix}')} {{",
                f"  capabilities = [{quoted}]",
                "}",
            ]
    if only:  # Vault lists per folder: ls sees the names under the prefix, never a value
        lines += [
            "",
            "# ls: the names under the prefix (Vault lists a folder whole); values stay out",
            f"path {json.dumps(f'{mount}/metadata/{prefix}/*')} {{",
            '  capabilities = ["list"]',
            "}",
        ]
    return "\n".join(lines) + "\n"
