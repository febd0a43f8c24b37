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


def render_policy(env: str, options: Mapping[str, Any], *, read_only: bool = False) -> str:
    """HCL granting exactly what bsecrets needs under ``<mount>/*/<prefix>/``, nothing else."""
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
    mode = "read-only" if read_only else "read-write"
    lines = [
        f"# bsecrets: environment '{env}' ({mode}): KV v2 mount '{mount}/', prefix '{prefix}/'.",
        "# Attach it to the one AppRole or Kubernetes role that serves this environment;",
        "# any other environment's prefix stays out of reach (permission denied, exit 4).",
    ]
    for kind, read_write, reading in _RULES:
        caps, used_for = reading if read_only else read_write
        if not caps:
            continue
        quoted = ", ".join(json.dumps(c) for c in caps)
        lines += [
            "",
            f"# {used_for}",
            f"path {json.dumps(f'{mount}/{kind}/{prefix}/*')} {{",
            f"  capabilities = [{quoted}]",
            "}",
        ]
    return "\n".join(lines) + "\n"
