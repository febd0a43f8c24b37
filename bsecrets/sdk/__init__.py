"""The Python SDK (docs/sdk.md): ``from bsecrets import Client``."""

from bsecrets.sdk.client import BeastSecretsClient, Client

__all__ = ["BeastSecretsClient", "Client"]
