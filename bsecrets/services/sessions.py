"""``unlock`` and ``lock``: sessions of the local vault (vaultfile/session.py), for the
owner or any principal, each recorded in the audit log."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from bsecrets.audit import anchoring
from bsecrets.audit.events import Action
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.audit.logger import outcome_of, reason_of
from bsecrets.errors import BsecretsError, IntegrityError, UsageError
from bsecrets.vaultfile import session
from bsecrets.vaultfile.policy import AccessPolicy, PolicyStore
from bsecrets.vaultfile.vault import LocalVault

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager
    from bsecrets.vaultfile.session import Session


def unlock(manager: SecretsManager, ttl: timedelta) -> Session:
    """Start a session for the local vault, as the principal the credentials name."""
    # A fresh handle that ignores any BSECRETS_SESSION already set (it may have expired).
    vault = LocalVault.open(
        manager.profile.vault_file, manager.creds._replace(session_token=None), manager.clock
    )
    vault.key_directory = _directory_of(vault)  # this handle: one unlock, not two
    if manager.creds.token is not None:
        vault.close()
        raise UsageError(
            "a pipeline token does not start a session",
            hint="use BSECRETS_TOKEN itself in each command; it expires as issued",
        )
    log = LocalAuditLog(vault)
    details = {"ttl_seconds": int(ttl.total_seconds())}
    try:
        try:
            private_key = vault.private_key()
        except BsecretsError as exc:
            with contextlib.suppress(BsecretsError):  # kept for the next unlock (intake)
                manager.audit.record(
                    Action.UNLOCK, outcome=outcome_of(exc), reason=reason_of(exc), sink=log
                )
            raise
        with vault.store.write():
            manager.audit.record(Action.UNLOCK, details=details, sink=log)
            masters = vault.env_masters()  # after the event: includes the audit key
        return session.start(
            vault.vault_id,
            private_key,
            vault.owner_public_key(),
            ttl,
            manager.clock(),
            masters,
            principal=vault.principal,
            payload=vault.session_payload(),
        )
    finally:
        vault.close()


def _directory_of(vault: LocalVault) -> Callable[[str], bytes | None]:
    """Who sealed a key to the unlocking principal, from the access policy as this
    handle verifies it (read once)."""
    found: list[AccessPolicy] = []

    def public_key(name: str) -> bytes | None:
        if not found:
            found.append(PolicyStore(vault).load())
        record = found[0].principals.get(name)
        return record.public_key if record is not None else None

    return public_key


def lock(manager: SecretsManager) -> int:
    """End sessions; the audit log's head is anchored in the OS keyring when there is one."""
    vault = manager.local_vault()
    # Recorded and anchored while the session still opens the audit key.
    scope = "this session" if manager.creds.session_token else "all sessions"
    manager.audit.record(Action.LOCK, details={"scope": scope})
    refused: IntegrityError | None = None
    try:
        anchoring.anchor_head(manager.audit_log())
    except IntegrityError as exc:  # the kept anchor is not in the chain: say so, after
        refused = exc
    except BsecretsError:
        pass  # no keyring, or a principal who may not read the log: nothing to anchor
    ended = session.end(manager.creds.session_token, vault.vault_id)
    if refused is not None:
        raise refused
    return ended
