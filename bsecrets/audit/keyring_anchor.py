"""The audit anchor kept in the OS keyring: a chain head (``SEQ:MAC-HEX``)
witnessed outside the vault file, so that events removed from the end of the
log, or the whole file put back from an older copy, are noticed.

One entry per vault (``bsecrets/audit-<vault id>``). Only reading and writing
it are here; that a new anchor must continue the kept one (never backwards or
sideways) is audit/anchoring.py's to check.
"""

from __future__ import annotations

from bsecrets.audit.chain import Anchor
from bsecrets.errors import IntegrityError, KeyringUnavailable, NextStep, UsageError
from bsecrets.vaultfile.unlock import keyring_get_text, keyring_set_text


def anchor_account(vault_id: bytes) -> str:
    """The keyring account (under the service ``bsecrets``) of the vault's anchor."""
    return f"audit-{vault_id.hex()}"


def read_anchor(vault_id: bytes) -> Anchor | None:
    """The anchor kept in the OS keyring; None if there is none or no keyring.
    IntegrityError if the entry is not an anchor (changed outside bsecrets)."""
    account = anchor_account(vault_id)
    try:
        text = keyring_get_text(account, "read the audit anchor")
    except KeyringUnavailable:
        return None
    if not text:
        return None
    try:
        return Anchor.parse(text)
    except UsageError:
        raise IntegrityError(
            "the audit anchor kept in the OS keyring is malformed",
            hint=f"it was changed outside bsecrets: check the keyring entry bsecrets/{account}",
            step=NextStep("verify_audit_log_with_trusted_anchor"),
        ) from None


def write_anchor(vault_id: bytes, head: Anchor) -> bool:
    """Keep ``head`` as the vault's anchor; False when there is no usable keyring."""
    try:
        keyring_set_text(anchor_account(vault_id), str(head), "store the audit anchor")
    except KeyringUnavailable:
        return False
    return True
