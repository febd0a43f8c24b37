"""What a caller offers to unlock the local vault, settled once per process.

Kept apart from vaultfile/unlock.py so that building a manager (for a Vault or AWS
environment, say) loads none of the cryptography the unlock chain needs.
"""

from __future__ import annotations

from collections.abc import Callable

from bsecrets.named_tuples import NamedTuple

Prompt = Callable[[str], str]
OWNER = "owner"  # the vault's first principal, who holds every key


class Credentials(NamedTuple):
    """What the caller can offer to unlock a vault, settled once per process."""

    session_token: str | None = None
    passphrase: str | None = None
    prompt: Prompt | None = None  # None when there is no terminal
    use_keyring: bool = True
    principal: str = OWNER  # --as / BSECRETS_AS, else the token's or session's, else owner
    token: str | None = None  # BSECRETS_TOKEN: a pipeline token (vaultfile/tokens.py)
    key_file: str | None = None  # BSECRETS_KEY_FILE: a key made elsewhere (keyfile.py)

    def __repr__(self) -> str:
        return (
            f"Credentials(session={'yes' if self.session_token else 'no'}, "
            f"passphrase={'yes' if self.passphrase else 'no'}, "
            f"token={'yes' if self.token else 'no'})"
        )
