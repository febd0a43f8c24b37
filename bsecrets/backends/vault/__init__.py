"""The HashiCorp Vault backend: KV v2 through hvac, one environment per prefix.

``from_config`` is what the manager calls (``FACTORIES["vault"]``). Importing
this package is cheap: hvac and requests load on the first request to Vault,
so ``bsecrets status`` and the CLI's command table never pay for them.

    config.py     profile keys and VAULT_* variables, settled once
    transport.py  hvac's JSON adapter: timeouts, bounded retries, latency (imports hvac)
    errors.py     Vault's 4xx answers and their generic meaning
    auth.py       token, AppRole, Kubernetes and JWT logins; the sealed token cache
    codec.py      values, custom_metadata (tags, description, authors), versions
    mount.py      is the mount KV v2?
    connection.py VaultConnection: client, login, budget, mount check, a secret's metadata
    adapter.py    VaultAdapter, the SecretBackend
    health.py     its health indicators (through the VaultConnection)
    policy.py     the HCL policy that confines a role to one environment
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bsecrets.backends.vault.adapter import VaultAdapter
from bsecrets.backends.vault.config import ENV_ADDR, resolve

if TYPE_CHECKING:
    from bsecrets.backends.registry import BackendContext
    from bsecrets.config.profile import EnvironmentConfig


def from_config(config: EnvironmentConfig, context: BackendContext) -> VaultAdapter:
    """The adapter of one ``backend: vault`` environment; no network I/O yet.

    Raises UsageError (exit 2) when no address is configured or a setting is
    invalid; warns (context.warn) when the address is plain http:// to a host
    that is not loopback.
    """
    settings = resolve(config, context.environ)
    source = settings.key("address") if config.options.get("address") else ENV_ADDR
    context.check_cleartext(config, [(settings.address, source)])
    return VaultAdapter(settings, context)
