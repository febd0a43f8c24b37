"""One Vault environment's settings, settled once: the profile's keys win over
VAULT_ADDR, VAULT_NAMESPACE and VAULT_CACERT (docs/cli.md). Cheap to import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bsecrets.backends.budget import DEFAULT_TIMEOUT_S, timeout_from
from bsecrets.errors import InvalidName, UsageError
from bsecrets.files import check_trusted_file

if TYPE_CHECKING:
    from bsecrets.config.profile import EnvironmentConfig

ENV_ADDR = "VAULT_ADDR"
ENV_TOKEN = "VAULT_TOKEN"
ENV_NAMESPACE = "VAULT_NAMESPACE"
ENV_CACERT = "VAULT_CACERT"

# Characters that widen an ACL path glob; a prefix with them cannot be confined.
_GLOB_CHARS = frozenset("*+")


@dataclass(frozen=True)
class VaultSettings:
    """Where one environment's secrets live in Vault and how to log in."""

    env: str
    address: str  # no trailing '/'
    mount: str  # KV v2 mount, no leading or trailing '/'
    prefix: str  # every secret lives under it; may be empty
    auth: Mapping[str, str] = field(hash=False)  # method plus its keys (profile.py)
    namespace: str | None = None
    ca_cert: str | None = None
    ca_source: str | None = None  # the profile key or variable ca_cert came from
    timeout_s: float = DEFAULT_TIMEOUT_S  # one operation's time budget (``timeout:``)

    def key(self, name: str) -> str:
        """The profile key path of one of this environment's settings."""
        return f"environments.{self.env}.{name}"

    @property
    def verify(self) -> bool | str:
        """What requests verifies the server against: the CA file, or the default bundle."""
        return self.ca_cert or True

    def describe_ca(self) -> str:
        if self.ca_cert:
            return f"CA file {self.ca_cert} (from {self.ca_source})"
        return f"the default CA bundle (neither {self.key('ca_cert')} nor {ENV_CACERT} is set)"

    def path(self, name: str) -> str:
        """The KV path of secret ``name``; InvalidName for names that could leave the prefix."""
        check_segments(name, what="name")
        return f"{self.prefix}/{name}" if self.prefix else name


def check_segments(text: str, *, what: str) -> None:
    """Vault normalizes paths: an empty, '.' or '..' segment could escape the prefix."""
    parts = text.split("/")
    if any(part in ("", ".", "..") for part in parts):
        if what == "name":
            raise InvalidName(
                f"invalid secret name {text[:60]!r} for Vault",
                hint="on Vault, a name's '/'-separated parts may not be empty, '.' or '..'",
            )
        raise UsageError(
            f"{what}: {text!r} has an empty, '.' or '..' part",
            hint="use plain path parts separated by single '/'",
        )


def resolve(config: EnvironmentConfig, environ: Mapping[str, str]) -> VaultSettings:
    """Settings of a ``backend: vault`` environment; UsageError (exit 2) if unusable,
    InsecureFile (exit 4) for a CA file someone else could have written."""
    options = config.options
    env = config.name

    def key(name: str) -> str:
        return f"environments.{env}.{name}"

    address = options.get("address") or environ.get(ENV_ADDR) or ""
    if not address:
        raise UsageError(
            f"environment '{env}' has no Vault address",
            hint=f"set {key('address')} in the profile, or export {ENV_ADDR}=https://vault:8200",
        )
    source = key("address") if options.get("address") else ENV_ADDR
    if not address.startswith(("http://", "https://")) or len(address.split("://", 1)[1]) == 0:
        raise UsageError(
            f"invalid Vault address {address!r} (from {source})",
            hint="use a URL such as https://vault.example.com:8200",
        )
    mount = str(options.get("mount", "secret")).strip("/")
    prefix = str(options.get("prefix", "")).strip("/")
    for what, value, allow_empty in ((key("mount"), mount, False), (key("prefix"), prefix, True)):
        if not value and allow_empty:
            continue
        check_segments(value, what=what)
        if _GLOB_CHARS & set(value) or any(ch.isspace() for ch in value):
            raise UsageError(
                f"{what}: {value!r} may not contain '*', '+' or spaces",
                hint="these would widen the Vault policy that confines the environment",
            )
    ca_cert, ca_source = options.get("ca_cert"), key("ca_cert")
    if not ca_cert and environ.get(ENV_CACERT):
        ca_cert, ca_source = os.path.abspath(environ[ENV_CACERT]), ENV_CACERT
    if ca_cert:  # whoever can write the CA file can stand in for Vault and take the token
        check_trusted_file(Path(ca_cert), private=False, what=f"CA file (from {ca_source})")
    return VaultSettings(
        env=env,
        address=address.rstrip("/"),
        mount=mount,
        prefix=prefix,
        auth=dict(options.get("auth") or {"method": "token"}),
        namespace=options.get("namespace") or environ.get(ENV_NAMESPACE) or None,
        ca_cert=ca_cert or None,
        ca_source=ca_source if ca_cert else None,
        timeout_s=timeout_from(options, env),
    )
