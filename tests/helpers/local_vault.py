"""A local vault file made in-process (no profile, no keyring), for tests of the
vault and the backends that use it."""

from __future__ import annotations

from pathlib import Path

from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault
from helpers.values import PASSPHRASE


def make_vault(path: Path) -> LocalVault:
    """A new vault at ``path`` whose passphrase is PASSPHRASE (the weak test KDF when
    BSECRETS_INSECURE_TEST_KDF is set, as the autouse fixture does)."""
    return LocalVault.create(
        path, Credentials(passphrase=PASSPHRASE), utcnow, passphrase=PASSPHRASE, use_keyring=False
    )
