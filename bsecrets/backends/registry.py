"""Which module builds each backend, and what the manager hands a backend's factory.

A factory is ``(EnvironmentConfig, BackendContext) -> SecretBackend``. The
registry names modules as strings and the manager imports one only when an
environment uses it (the one plug-in seam of the backends), so hvac and boto3
stay off the path of local commands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from bsecrets.config.profile import EnvironmentConfig
from bsecrets.named_tuples import NamedTuple
from bsecrets.ports import stderr_warning
from bsecrets.timeutil import Clock
from bsecrets.vaultfile.vault import LocalVault

# backend name (the profile's `backend:`) -> "module:factory"
FACTORIES: dict[str, str] = {
    "local": "bsecrets.backends.local.adapter:from_config",
    "vault": "bsecrets.backends.vault:from_config",
    "aws": "bsecrets.backends.aws:from_config",
}


def factory(kind: str) -> Callable[..., Any]:
    """The factory of backend ``kind`` (a key of FACTORIES), its module imported now
    (``__import__``, not importlib's: importing importlib costs a command ~0.2 ms).
    ModuleNotFoundError when the module is missing."""
    module_name, name = FACTORIES[kind].split(":")
    __import__(module_name)
    return getattr(sys.modules[module_name], name)  # type: ignore[no-any-return]


class BackendContext(NamedTuple):
    """What the manager gives an adapter factory: settled configuration and shared services."""

    environ: Mapping[str, str]  # the process environment, settled once (VAULT_ADDR, AWS_*...)
    clock: Clock
    # The LocalVault of the profile, opened on demand: remote adapters keep
    # their caches (login tokens, assumed-role credentials) sealed in it.
    local_vault: Callable[[], LocalVault]
    warn: Callable[[str], None] = stderr_warning  # one line, without "warning: "
    insecure_http: bool = False  # --insecure-http / BSECRETS_INSECURE_HTTP=1: no cleartext warning

    def check_cleartext(self, config: EnvironmentConfig, endpoints: list[tuple[str, str]]) -> None:
        """Warn once when ``endpoints`` ((URL, source) pairs) include plain http:// to a host
        that is not loopback, unless --insecure-http or the environment's ``insecure_http``."""
        if self.insecure_http or config.options.get("insecure_http"):
            return
        from bsecrets.backends.cleartext import cleartext_warning  # a seam: remote only

        text = cleartext_warning(config.name, endpoints)
        if text is not None:
            self.warn(text)
