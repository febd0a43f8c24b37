"""What ``bsecrets status --json`` and the SDK's ``Client.health()`` return: the
profile, the vault, each environment's backend figures and the health indicators, in
one stable shape (docs/cli.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


def status_document(manager: SecretsManager) -> dict[str, Any]:
    """The stable shape of ``status --json``: these keys always, whatever the backends.
    An environment has "backend" and either its backend's figures or "error"."""
    state, indicators = manager.get_module_status(), manager.get_health_indicators()
    return {
        "version": state["version"],
        "profile": state["profile"],
        "vault_file": state["vault_file"],
        "default_env": state["default_env"],
        "healthy": all(i.ok for i in indicators),
        "environments": {
            name: {k: v for k, v in figures.items() if k != "name"}
            for name, figures in state["environments"].items()
        },
        "audit": {"sink": state["audit"]["sink"]},
        "indicators": [
            {"name": i.name, "ok": i.ok, "detail": i.detail, "value": i.value} for i in indicators
        ],
    }
