"""Doctor's check of the OS keyring, for a vault that unlocks with it (``init
--keyring``): it answers and holds a well-formed key for this vault. Else SKIP (the
anchor's use of the keyring is ``audit.anchor``'s to report). The ``keyring`` package
is imported inside the functions of vaultfile/unlock.py, on the first call.

Unreachable, or without the key: a FAIL when the keyring is the vault's only way in,
a WARN when its passphrase also opens it. ``--fix`` changes nothing in the keyring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bsecrets.errors import BsecretsError, Denied, KeyringUnavailable
from bsecrets.services.doctor import at_hand
from bsecrets.services.doctor.findings import Finding, Status
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.unlock import keyring_load

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

_CHECK = "keyring"


def check_keyring(manager: SecretsManager, fix: bool) -> list[Finding]:
    del fix
    vault = at_hand.vault_of(manager)
    if isinstance(vault, BsecretsError):
        return at_hand.not_open(manager, vault, _CHECK)
    try:
        wraps = vault.store.key_wraps(OWNER)
    except BsecretsError as exc:
        return [Finding(_CHECK, Status.SKIP, f"not checked: {exc.message}")]
    if "keyring" not in wraps:
        detail = "not used: the vault does not unlock with the OS keyring"
        return [Finding(_CHECK, Status.SKIP, detail)]
    status = Status.WARN if "passphrase" in wraps else Status.FAIL
    try:
        key = keyring_load(vault.vault_id)
    except KeyringUnavailable as exc:
        hint = "run where the OS keyring that 'bsecrets init --keyring' used is available"
        if "passphrase" in wraps:
            hint += ", or unlock with the vault's passphrase (BSECRETS_PASSPHRASE)"
        return [Finding(_CHECK, status, exc.message, hint)]
    except Denied as exc:  # a malformed entry (changed outside bsecrets)
        return [Finding(_CHECK, status, exc.message, exc.hint)]
    if key is None:
        detail = "the OS keyring answers but holds no key for this vault"
        hint = "put the original entry back, or unlock with the passphrase if the vault has one"
        return [Finding(_CHECK, status, detail, hint)]
    return [Finding(_CHECK, Status.OK, "the OS keyring answers and holds this vault's key")]
