"""The credentials of a caller (the CLI, the SDK) from its settled settings: the same
unlock chain for both (docs/access.md: BSECRETS_TOKEN, BSECRETS_KEY_FILE, the session,
the passphrase, the keyring, a prompt)."""

from __future__ import annotations

from collections.abc import Callable

from bsecrets.config.settings import Settings
from bsecrets.vaultfile.credentials import Credentials


def credentials_for(settings: Settings, prompt: Callable[[str], str] | None) -> Credentials:
    """``prompt``: how to ask for a passphrase (None: never ask). The principal is
    ``--as``/BSECRETS_AS, else the one a token or session names, else the owner."""
    token = settings.session_token()
    pipeline = settings.pipeline_token()
    principal = settings.as_principal
    if principal is None and pipeline:
        from bsecrets.vaultfile.tokens import principal_named_by  # only with a token

        principal = principal_named_by(pipeline)
    elif principal is None and token:
        from bsecrets.vaultfile.session import peek_principal  # only with a session

        principal = peek_principal(token)
    return Credentials(
        session_token=token,
        passphrase=settings.passphrase(),
        prompt=prompt,
        principal=principal or "owner",
        token=pipeline,
        key_file=settings.key_file(),
    )
