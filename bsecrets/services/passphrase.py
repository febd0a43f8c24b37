"""``passphrase change``: the unlocking principal's private key (the owner's, or with
``--as`` a person principal's) wrapped under a new passphrase (docs/security.md, "Keys").

- **Proof.** The current passphrase, through the unlock chain without a session:
  BSECRETS_PASSPHRASE / BSECRETS_PASSPHRASE_FILE, the OS keyring where ``init
  --keyring`` keeps the owner's key (a key as lasting as the passphrase, on the owner's
  machine: the lost-passphrase runbook's way back), else a prompt. A session is no
  proof: it is a short-lived stand-in, and letting it set a passphrase would turn a
  session token that leaked into lasting access (enforced by code: a session carries
  the private key). A pipeline token or a key file has no passphrase to change.
- **The new one**: the same rules as ``init`` (NFC, at least 8 characters, not only
  white space), and not the current one (compared after NFC; when the keyring gave the
  proof, by trying the new one on the current wrap).
- **The wrap**: the same private key (and, for a principal, its trust root) under a
  fresh salt and the standard Argon2id parameters, never weaker than the stored ones,
  replacing the passphrase wrap in one transaction with its audit event: a kill leaves
  the old passphrase or the new one working, never neither. A wrap changed meanwhile
  by another command is a conflict (exit 7), nothing written. The keyring wrap and the
  environment keys are untouched.
- **Sessions** carry their own sealed copy of the private key, which does not change:
  those started before keep working until they expire (``lock`` ends them). Ending
  them here would cut off nobody who had the file and the old passphrase: that person
  may have kept the private key itself, and only a new vault (a new key) shuts them out.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from bsecrets.audit.events import Action
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.audit.logger import outcome_of, reason_of
from bsecrets.crypto.keys import KdfParams, check_new_passphrase, normalize_passphrase
from bsecrets.errors import (
    BsecretsError,
    Conflict,
    Denied,
    IntegrityError,
    PrincipalUnknown,
    UsageError,
    VaultLocked,
)
from bsecrets.named_tuples import NamedTuple
from bsecrets.vaultfile.credentials import OWNER, Credentials
from bsecrets.vaultfile.unlock import unlock_principal, wrap_with_passphrase
from bsecrets.vaultfile.vault import LocalVault

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


class Changed(NamedTuple):
    principal: str
    proved_by: str  # "passphrase" or "keyring"
    kdf: dict[str, int]  # the new wrap's Argon2id memory_kib, iterations, lanes
    keyring: bool  # whether a keyring wrap opens the key too (untouched)


def change(manager: SecretsManager, ask_new: Callable[[], str]) -> Changed:
    """Wrap the unlocking principal's private key under the passphrase ``ask_new`` gives
    (called once the current one is proven). Every outcome is an audited
    ``passphrase.change`` event; never a passphrase in it."""
    creds = manager.creds
    if creds.token is not None:
        raise UsageError(
            "a pipeline token has no passphrase to change",
            hint="a token has no passphrase: use the principal's own passphrase instead",
        )
    typed: list[str] = []  # what the prompt was answered with: the current passphrase
    asked = creds.prompt

    def prompt(label: str) -> str:
        assert asked is not None
        typed.append(asked(label))
        return typed[-1]

    proving = creds._replace(
        session_token=None, key_file=None, prompt=prompt if asked is not None else None
    )
    vault = LocalVault.open(manager.profile.vault_file, proving, manager.clock)
    log = LocalAuditLog(vault)  # this handle: unlocked without the session
    principal = vault.principal
    try:
        try:
            return _change(manager, vault, log, ask_new, typed)
        except BsecretsError as exc:
            with contextlib.suppress(BsecretsError):  # refused either way
                manager.audit.record(
                    Action.PASSPHRASE_CHANGE, outcome=outcome_of(exc), reason=reason_of(exc),
                    details={"principal": principal}, sink=log,
                )  # fmt: skip
            raise
    finally:
        vault.close()


def _change(
    manager: SecretsManager,
    vault: LocalVault,
    log: LocalAuditLog,
    ask_new: Callable[[], str],
    typed: list[str],
) -> Changed:
    principal = vault.principal
    with vault.store.read():
        known = principal == OWNER or vault.store.has_principal(principal)
        wraps = vault.store.key_wraps(principal)
    if not known:
        raise PrincipalUnknown(f"principal '{principal}' does not exist in this vault")
    if principal != OWNER and "passphrase" not in wraps:
        how = "its key file" if "public" in wraps else "a pipeline token"
        raise UsageError(
            f"principal '{principal}' has no passphrase: it unlocks with {how}",
            hint="only a person principal, or the owner, has a passphrase",
        )
    private_key = _prove(vault, manager.creds.session_token is not None)
    current: str | None = None  # None: the keyring proved it
    if "passphrase" in wraps:  # the chain tries a passphrase before the keyring
        given = manager.creds.passphrase
        current = given if given is not None else (typed[-1] if typed else None)
    new = ask_new()
    check_new_passphrase(new)
    if _is_current(manager, vault, new, current, "passphrase" in wraps):
        raise UsageError(
            "the new passphrase is the current one",
            hint="choose another passphrase; a few random words work well",
        )
    params = _params_for(wraps.get("passphrase"))
    params_json, wrapped = wrap_with_passphrase(
        vault.vault_id, private_key, new, principal=principal,
        payload=vault.session_payload(), params=params,
    )  # fmt: skip
    kdf = {"memory_kib": params.memory_kib, "iterations": params.iterations,
           "lanes": params.lanes}  # fmt: skip
    proved_by = "passphrase" if current is not None else "keyring"
    with vault.store.write():
        if vault.store.key_wraps(principal).get("passphrase") != wraps.get("passphrase"):
            raise Conflict(
                f"the passphrase of '{principal}' was changed meanwhile by another command",
                hint="nothing was written: run it again with the passphrase now in force",
            )
        vault.store.set_key_wrap(principal, "passphrase", params_json, wrapped)
        manager.audit.record(
            Action.PASSPHRASE_CHANGE, sink=log,
            details={"principal": principal, "proved_by": proved_by, "kdf": kdf},
        )  # fmt: skip
    return Changed(principal, proved_by, kdf, "keyring" in wraps)


def _prove(vault: LocalVault, had_session: bool) -> bytes:
    """The principal's private key, opened by the current passphrase (or the keyring),
    never by a session."""
    try:
        return vault.private_key(allow_session=False)
    except VaultLocked:
        also = ": a session is not enough" if had_session else ""
        raise VaultLocked(
            f"changing the passphrase needs the current one{also}",
            hint="set BSECRETS_PASSPHRASE or BSECRETS_PASSPHRASE_FILE to it, or run on a "
            "terminal (or, for the owner, where the OS keyring holds the vault's key)",
        ) from None


def _is_current(
    manager: SecretsManager, vault: LocalVault, new: str, current: str | None, has_wrap: bool
) -> bool:
    """Whether ``new`` is the passphrase in force: compared in NFC when it was given;
    when the keyring proved the principal, tried on the current wrap (one derivation)."""
    if current is not None:
        return normalize_passphrase(new) == normalize_passphrase(current)
    if not has_wrap:
        return False
    trial = Credentials(passphrase=new, use_keyring=False, principal=vault.principal)
    try:
        unlock_principal(vault.store, trial, manager.clock(), allow_session=False)
    except (Denied, IntegrityError):  # another passphrase, or a wrap that no longer opens
        return False
    return True


def _params_for(stored: tuple[str, bytes] | None) -> KdfParams:
    """Fresh parameters: a new salt, the standard cost, never below the stored wrap's
    (the test suite's weaker set only where that is what is stored, under
    BSECRETS_INSECURE_TEST_KDF)."""
    fresh = KdfParams.new()
    if stored is None:
        return fresh
    try:
        data = json.loads(stored[0])
        old = KdfParams.from_dict(data if isinstance(data, dict) else {})
    except (ValueError, IntegrityError):  # a damaged wrap: nothing to keep up with
        return fresh
    return fresh._replace(
        memory_kib=max(fresh.memory_kib, old.memory_kib),
        iterations=max(fresh.iterations, old.iterations),
        lanes=max(fresh.lanes, old.lanes),
    )
