"""Doctor's checks that need the vault's keys to read it: the keys themselves, the audit
chain and the anchor kept outside the file.

* ``vault.keys``: the credentials at hand open the vault without a prompt (a session,
  BSECRETS_PASSPHRASE, a token, a key file, the OS keyring). Not at hand: SKIP, and
  so are the checks below; an owner key in the file that is not the one that unlocks:
  an integrity FAIL.
* ``audit.verify``: what ``bsecrets audit verify`` checks (audit_ops: the chain, its
  archives, the anchor, every environment's manifest against the newest event),
  recorded as an ``audit.verify`` event as that command is; a problem is an
  integrity FAIL (exit 5). On a file whose pages are damaged nothing is recorded.
* ``audit.anchor``: the OS keyring holds an anchor and it is the chain's head. Missing:
  a WARN. Behind: OK, said (the state after every write until the next verification;
  a WARN there made doctor exit 1 after any put). ``--fix`` lets the verification keep
  the head as the anchor (audit_ops.verify), which happens only when the chain
  verifies; a chain that does not verify is never anchored. Without ``--fix`` the
  anchor is moved only when it was current: then it takes doctor's own event too, as
  ``audit verify`` does.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from bsecrets.audit import anchoring
from bsecrets.audit.events import Action
from bsecrets.audit.keyring_anchor import anchor_account
from bsecrets.errors import BsecretsError, IntegrityError, KeyringUnavailable
from bsecrets.services import audit_ops
from bsecrets.services.doctor import at_hand
from bsecrets.services.doctor.findings import Finding, Status
from bsecrets.vaultfile.unlock import keyring_get_text

if TYPE_CHECKING:
    from bsecrets.audit.chain import Anchor, Verification
    from bsecrets.audit.local_log import LocalAuditLog
    from bsecrets.services.manager import SecretsManager

_VERIFY, _ANCHOR = "audit.verify", "audit.anchor"
_ANCHOR_STEP = "bsecrets doctor --fix (it anchors the head once the chain verifies)"
_NO_KEYRING_STEP = (
    "keep what 'bsecrets audit anchor' prints somewhere safe, and check the log with "
    "'bsecrets audit verify --anchor SEQ:HEX'"
)


def check_audit(manager: SecretsManager, fix: bool) -> list[Finding]:
    vault = at_hand.vault_of(manager)
    if isinstance(vault, BsecretsError):
        return at_hand.not_open(manager, vault, "vault.keys", _VERIFY, _ANCHOR)
    keys = at_hand.keys(manager)
    if not keys.ok:
        if keys.integrity:
            found = Finding("vault.keys", Status.FAIL, keys.why, _restore(), integrity=True)
        else:
            found = Finding("vault.keys", Status.SKIP, keys.why, at_hand.UNLOCK_STEP)
        return [found, at_hand.skipped(_VERIFY, keys), at_hand.skipped(_ANCHOR, keys)]
    who = vault.principal
    findings = [Finding("vault.keys", Status.OK, f"the credentials at hand open the vault ({who})")]
    log = manager.audit_log()
    if not log.keyholder():
        why = f"not checked: the audit log is the owner's to read, not principal '{who}'s"
        return [*findings, Finding(_VERIFY, Status.SKIP, why), Finding(_ANCHOR, Status.SKIP, why)]
    return findings + _chain(manager, log, fix, writable=not at_hand.damaged_pages(vault))


def _restore() -> str:
    return "restore the vault file from a backup; keep this copy as evidence (docs/security.md)"


def _keyring_usable(log: LocalAuditLog) -> bool:
    try:
        keyring_get_text(anchor_account(log.vault.vault_id), "read the audit anchor")
    except KeyringUnavailable:
        return False
    return True


def _chain(
    manager: SecretsManager, log: LocalAuditLog, fix: bool, *, writable: bool
) -> list[Finding]:
    try:
        kept = anchoring.stored_anchor(log)
        audit_keys = log.reading_keys()
        if audit_keys is None:
            raise IntegrityError("the vault has no audit log key: its audit log was removed")
        head = log.head(audit_keys)
    except BsecretsError as exc:  # a malformed anchor, a log without its key, a bad page
        return _unreadable(exc, "not checked: the log cannot be read")
    keyring = _keyring_usable(log)
    current = kept is not None and kept == head
    try:
        if writable and (fix or current or not keyring):
            result = audit_ops.verify(manager, None)  # recorded; keeps a verified head
        else:  # the same walk, the anchor left where it is
            if writable:  # if the chain cannot take the event, the walk says why
                with contextlib.suppress(IntegrityError):
                    manager.audit.record(Action.AUDIT_VERIFY)
            result = log.verify(audit_keys, kept)
            manager.audit.verified(result.problem is None)
    except BsecretsError as exc:
        return _unreadable(exc, "left as it was: the chain does not verify")
    return [_verified(result), _anchor(log, result, kept, head, keyring=keyring, fix=fix)]


def _unreadable(exc: BsecretsError, anchor: str) -> list[Finding]:
    integrity = isinstance(exc, IntegrityError)
    hint = exc.hint or (_restore() if integrity else None)
    failed = Finding(_VERIFY, Status.FAIL, exc.message, hint, integrity=integrity)
    return [failed, Finding(_ANCHOR, Status.SKIP, anchor)]


def _verified(result: Verification) -> Finding:
    error = audit_ops.problem_error(result)
    if error is not None:
        return Finding(_VERIFY, Status.FAIL, error.message, error.hint, integrity=True)
    span = f"events {result.first_seq}-{result.last_seq}" if result.events else "no events"
    archived = f", {result.archived} archived" if result.archived else ""
    detail = f"chain intact ({span}{archived}), every environment matches its last event"
    return Finding(_VERIFY, Status.OK, detail)


def _anchor(
    log: LocalAuditLog,
    result: Verification,
    kept: Anchor | None,
    head: Anchor,
    *,
    keyring: bool,
    fix: bool,
) -> Finding:
    if not keyring:
        detail = (
            "no usable OS keyring: no anchor is kept outside the vault file, so events cut "
            "from the end of the log would go unnoticed"
        )
        return Finding(_ANCHOR, Status.SKIP, detail, _NO_KEYRING_STEP)
    if result.problem is not None:
        where = f"event {kept.seq}" if kept is not None else "none"
        detail = f"left as it was ({where}): the chain does not verify"
        return Finding(_ANCHOR, Status.SKIP, detail)
    was = "none" if kept is None else f"event {kept.seq}"
    if kept is not None and kept == head:
        return Finding(_ANCHOR, Status.OK, f"the OS keyring's anchor is the head ({was})")
    if kept is None:
        detail = "the OS keyring holds no anchor for this vault: events cut from the end of "
        detail += "the log would go unnoticed"
    else:
        behind = head.seq - kept.seq
        detail = f"the anchor is at event {kept.seq}, {behind} event{'s' if behind != 1 else ''}"
        detail += f" behind the head (event {head.seq}): those could be cut unnoticed"
    if not fix:
        if kept is not None:  # the usual state between verifications: said, not a warning
            detail += " until the next 'bsecrets audit verify' (this walk found them intact)"
            return Finding(_ANCHOR, Status.OK, detail)
        return Finding(_ANCHOR, Status.WARN, detail, _ANCHOR_STEP)
    with contextlib.suppress(BsecretsError):
        if anchoring.stored_anchor(log) == result.head:
            moved = f"anchored the verified head, event {result.head.seq}, in the OS keyring"
            return Finding(_ANCHOR, Status.OK, detail, fixed=f"{moved} (was {was})")
    return Finding(_ANCHOR, Status.WARN, f"{detail}; the OS keyring did not keep the new anchor")
