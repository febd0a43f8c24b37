"""The server's way to the core: one SecretsManager per request, unlocked with the
request's pipeline token alone (docs/server.md). The REST API (app.py) and the web UI
(ui.py) both build their managers here.

The server holds no standing key: of the server's environment, the variables that
would unlock the vault some other way (a passphrase, its file, a session, a key file,
``--as``) are dropped, and the token is the only credential.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bsecrets.config.cache import load_profile_cached
from bsecrets.config.settings import (
    ENV_AS,
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    ENV_SESSION,
    ENV_TOKEN,
    Settings,
)
from bsecrets.errors import TokenExpired, TokenInvalid
from bsecrets.services.credentials import credentials_for
from bsecrets.services.manager import SecretsManager
from bsecrets.timeutil import parse_iso
from bsecrets.vaultfile.policy import Grant
from bsecrets.vaultfile.tokens import is_token_principal

# what would unlock the vault without the request's token
NOT_FROM_THE_SERVER = (ENV_PASSPHRASE, ENV_PASSPHRASE_FILE, ENV_SESSION, ENV_KEY_FILE, ENV_AS)


def manager_for(profile: Path, environ: Mapping[str, str], token: str) -> SecretsManager:
    """A SecretsManager for ``profile`` that unlocks with ``token`` and nothing else
    (TokenInvalid when there is no token). The caller closes it."""
    token = token.strip()
    if not token:
        raise TokenInvalid(
            "no token", hint="make one with 'bsecrets token issue -e ENV --role read'"
        )
    variables = {k: v for k, v in environ.items() if k not in NOT_FROM_THE_SERVER}
    variables[ENV_TOKEN] = token
    settings = Settings.resolve(profile=str(profile), env=None, json=True, quiet=True,
                                no_color=True, environ=variables)  # fmt: skip
    return SecretsManager(load_profile_cached(profile), credentials_for(settings, None),
                          environ=settings.environ)  # fmt: skip


@contextmanager
def unlocked(profile: Path, environ: Mapping[str, str], token: str) -> Iterator[SecretsManager]:
    """``with unlocked(profile, environ, token) as core:`` one request's manager, closed
    when the block ends."""
    core = manager_for(profile, environ, token)
    try:
        yield core
    finally:
        core.close()


def token_principal(core: SecretsManager) -> str:
    """The principal ``core``'s token opens, checked now: the token is well formed, of
    this vault, not revoked, opens its key, and has not expired (TokenInvalid or
    TokenExpired otherwise). What the web UI's sign-in asks before it keeps a token."""
    principal = core.creds.principal
    if core.creds.token is None or not is_token_principal(principal):
        raise TokenInvalid("this is not a pipeline token")
    core.gate.require_vault("a pipeline token").private_key()  # opens only with the token
    record = core.gate.policy().principals.get(principal)
    if record is None:
        raise TokenInvalid("this token was revoked, or was never issued by this vault")
    if record.expires_at is not None and parse_iso(record.expires_at) <= core.clock():
        raise TokenExpired(f"the token ({principal}) expired at {record.expires_at}")
    return principal


def grants_of(core: SecretsManager) -> dict[str, Grant | None]:
    """Environment -> the grant of ``core``'s principal on it (None: no access)."""
    policy = core.gate.policy()
    principal = core.creds.principal
    return {env: policy.grant_of(env, principal) for env in core.profile.environments}
