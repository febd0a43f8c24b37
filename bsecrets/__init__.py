"""bsecrets: a secrets manager for every environment, driven from one command line.

Importing this package loads nothing heavy; see bsecrets.cli for the commands,
bsecrets.services.manager.SecretsManager for the façade every caller uses, and
``from bsecrets import Client`` for the Python SDK (docs/sdk.md), loaded on first use.
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: the console script imports this package
# before it holds the collector off (cli/collector.py), and typing's import then set
# off collections (one of generation 1) that cost every command ~1 ms; typing loads
# later, with bsecrets' own modules. mypy reads the name as typing's constant.
TYPE_CHECKING = False

__version__ = "0.1.0"
__all__ = ["BeastSecretsClient", "Client", "__version__"]

if TYPE_CHECKING:
    from typing import Any

    from bsecrets.sdk.client import BeastSecretsClient, Client


def __getattr__(name: str) -> Any:
    if name in ("Client", "BeastSecretsClient"):
        from bsecrets.sdk import client

        return getattr(client, name)
    raise AttributeError(f"module 'bsecrets' has no attribute {name!r}")
