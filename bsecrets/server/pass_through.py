"""The server without a vault file (docs/server.md, "Without a vault file: replicas"):
a profile whose served environments are all Vault ones, each request carrying the
caller's own Vault token as its bearer. The server then keeps nothing of its own:
no tokens, no audit chain, no sessions (what it caches per token, CorePool, is a
cache), so any number of replicas behind a load balancer give the same answers.

The boundary is Vault's: each call is made with the request's token, under that
token's policies, and Vault's audit device records it (with the token's accessor).
The server's own Vault credentials are never used: of the server's environment,
``VAULT_TOKEN`` and every variable an environment names as ``auth.token_env`` are
dropped, and only environments logging in with ``auth.method: token`` are served (an
AppRole, Kubernetes or JWT login would be the server's identity, not the caller's).
Local and AWS environments are not served this way (AWS has no bearer of the
caller's own to pass on); ``serve`` names the ones it leaves out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from bsecrets.config.cache import load_profile_cached
from bsecrets.config.profile import EnvironmentConfig, Profile
from bsecrets.errors import TokenInvalid, UsageError
from bsecrets.files import StrPath, exists
from bsecrets.models import AccessContext
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials

VAULT_TOKEN = "VAULT_TOKEN"


def is_stateless(profile: StrPath) -> bool:
    """Whether ``serve`` runs without a vault file: the profile names none that exists."""
    return not exists(load_profile_cached(profile).vault_file)


def _served(config: EnvironmentConfig) -> bool:
    auth = config.options.get("auth") or {}
    method = auth.get("method", "token") if isinstance(auth, Mapping) else None
    return config.backend == "vault" and method == "token" and not config.protected


def left_out(profile: Profile) -> list[str]:
    """The environments a server without a vault file does not serve."""
    return [name for name, config in profile.environments.items() if not _served(config)]


def served_profile(profile: Profile) -> Profile:
    """``profile`` with only the environments served without a vault file; UsageError
    (exit 2 at start) when none is."""
    served = {n: c for n, c in profile.environments.items() if _served(c)}
    if not served:
        raise UsageError(
            f"nothing to serve: {profile.path} names no vault file that exists, and no "
            "Vault environment with 'auth: {method: token}' (unprotected)",
            hint="run 'bsecrets init' for a local vault, or add a Vault environment",
        )
    default = profile.default_env if profile.default_env in served else next(iter(served))
    return profile._replace(environments=served, default_env=default)


def label_of(token: str) -> str:
    """Who a Vault token is, as the server names it (audit ``via``, ``created_by``): a
    digest, never the token; Vault's own audit device names its accessor."""
    return "vault-token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def remote_manager(profile: Path, environ: Mapping[str, str], token: str) -> SecretsManager:
    """A SecretsManager whose Vault calls carry ``token`` and nothing else."""
    token = token.strip()
    if not token or any(ch.isspace() or ord(ch) < 32 for ch in token) or len(token) > 4096:
        raise TokenInvalid(
            "no Vault token: send 'Authorization: Bearer <your Vault token>'",
            hint="a server without a vault file passes the caller's Vault token to Vault",
        )
    served = served_profile(load_profile_cached(profile))
    names = {VAULT_TOKEN}
    for config in served.environments.values():
        auth = config.options.get("auth") or {}
        if isinstance(auth, Mapping) and auth.get("token_env"):
            names.add(str(auth["token_env"]))
    variables = {k: v for k, v in environ.items() if k not in names}
    variables.update(dict.fromkeys(names, token))  # so ~/.vault-token is never read
    context = AccessContext.current()._replace(principal=label_of(token))
    return SecretsManager(served, Credentials(use_keyring=False, principal=label_of(token)),
                          context=context, environ=variables, remote_only=True)  # fmt: skip
