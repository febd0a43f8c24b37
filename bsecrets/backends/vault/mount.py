"""Is the environment's mount a KV version 2 engine? The answer of
``sys/internal/ui/mounts/<mount>`` (what the vault CLI's ``kv`` commands ask
too), read into a clear error. Cheap to import."""

from __future__ import annotations

from typing import Any

from bsecrets.backends.vault.config import VaultSettings
from bsecrets.errors import UsageError


def mount_error(settings: VaultSettings, answer: Any) -> UsageError | None:
    """None when ``settings.mount`` is a KV v2 mount point; else what is wrong."""
    mount, address = settings.mount, settings.address
    data = (answer.get("data") if isinstance(answer, dict) else None) or {}
    kind, options = data.get("type"), data.get("options") or {}
    version = str(options.get("version") or "1")
    if kind in ("kv", "generic") and version == "2":
        actual = str(data.get("path", mount)).strip("/")
        if actual == mount:
            return None
        return UsageError(
            f"'{mount}' is not a mount point on {address}: "
            f"it lies inside the KV v2 mount '{actual}/'",
            hint=f"set {settings.key('mount')} to '{actual}' and move the rest into the prefix",
        )
    described = f"kv version {version}" if kind in ("kv", "generic") else f"type '{kind}'"
    return UsageError(
        f"mount '{mount}/' on {address} is not a KV version 2 secrets engine (it is {described})",
        hint=f"point {settings.key('mount')} at a KV v2 mount, or upgrade this one "
        f"with 'vault kv enable-versioning {mount}/'",
    )


def no_mount(settings: VaultSettings) -> UsageError:
    mount = settings.mount
    return UsageError(
        f"no secrets engine is mounted at '{mount}/' on {settings.address}",
        hint=f"check {settings.key('mount')}, or enable one: "
        f"'vault secrets enable -path={mount} kv-v2'",
    )
