"""bsecrets: a secrets manager for every environment, driven from one command line.

Importing this package loads nothing heavy; see bsecrets.cli for the commands,
bsecrets.services.manager.SecretsManager for the façade every caller uses, and
``from bsecrets import Client`` for the Python SDK (docs/sdk.md), loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["BeastSecretsClient", "Client", "__version__"]

if TYPE_CHECKING:
    from bsecrets.sdk.client import BeastSecretsClient, Client


def __getattr__(name: str) -> Any:
    if name in ("Client", "BeastSecretsClient"):
        from bsecrets.sdk import client

        return getattr(client, name)
    raise AttributeError(f"module 'bsecrets' has no attribute {name!r}")
