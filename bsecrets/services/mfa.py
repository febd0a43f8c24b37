"""A principal's second factor: enrol (a seed, pending), confirm (a first code puts
it in use), status, and an admin's clearing of a lockout. What a protected
environment asks of it is services/access.py's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action
from bsecrets.crypto.second_factor import FactorState, attempt, is_locked_out
from bsecrets.crypto.totp import new_seed, provisioning_uri
from bsecrets.errors import (
    AccessDenied,
    AlreadyExists,
    NextStep,
    NotFound,
    PrincipalUnknown,
    SecondFactorRejected,
)
from bsecrets.timeutil import iso
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.factors import Factor, FactorStore
from bsecrets.vaultfile.policy import PolicyStore

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


def enroll(manager: SecretsManager, *, replace: bool = False) -> str:
    """A new seed for the caller's principal, pending until :func:`confirm`; returns the
    otpauth URI for an authenticator app (it holds the seed: show it, never log it).
    Replacing a factor in use needs a code of it first."""
    vault = manager.gate.require_vault("a second factor")
    principal = manager.gate.principal
    with vault.store.read():
        current = FactorStore(vault, principal).get()
    if current is not None:
        if not replace:
            raise AlreadyExists(
                f"principal '{principal}' has a second factor enrolled",
                step=NextStep("replace_mfa"),
            )
        with manager.refusals_recorded(Action.MFA_ENROLL, None):
            manager.gate.second_factor("replacing the second factor")
    seed = new_seed()
    with manager.audit.operation(Action.MFA_ENROLL, None) as note:
        note.details = {"replace": current is not None}
        FactorStore(vault, principal, pending=True).put(
            Factor(seed, FactorState(), iso(manager.clock()))
        )
    return provisioning_uri(seed, f"{principal}@vault-{vault.vault_id.hex()[:8]}")


def confirm(manager: SecretsManager) -> None:
    """Put the pending factor in use, given a current code of it (BSECRETS_OTP or a
    prompt). A wrong code changes nothing."""
    vault = manager.gate.require_vault("a second factor")
    principal = manager.gate.principal
    pending = FactorStore(vault, principal, pending=True)
    with vault.store.read():
        factor = pending.get()
    if factor is None:
        raise NotFound(
            f"principal '{principal}' has no enrolment to confirm",
            step=NextStep("enroll_mfa"),
        )
    code = manager.gate.one_time_code("confirming the enrolment")
    result = attempt(factor.seed, code, FactorState(), manager.clock())
    with manager.audit.operation(Action.MFA_CONFIRM, None):
        if not result.accepted:
            raise SecondFactorRejected(
                "wrong one-time code: the enrolment is not confirmed",
                hint="check the authenticator app's clock, then confirm with a new code",
            )
        FactorStore(vault, principal).put(factor._replace(state=result.state))
        pending.remove()


def status(manager: SecretsManager) -> dict[str, Any]:
    vault = manager.gate.require_vault("a second factor")
    principal = manager.gate.principal
    with vault.store.read():
        factor = FactorStore(vault, principal).get()
        pending = FactorStore(vault, principal, pending=True).get()
    cleared_since = factor is not None and (
        manager.gate.policy().mfa_clears.get(principal, 0) > factor.clears_seen
    )
    locked = (
        factor is not None and not cleared_since and is_locked_out(factor.state, manager.clock())
    )
    return {
        "principal": principal,
        "enrolled": factor is not None,
        "enrolled_at": factor.enrolled_at if factor else None,
        "pending": pending is not None,
        "failures": factor.state.failures if factor and not cleared_since else 0,
        "locked_until": (
            iso(factor.state.locked_until)
            if factor and locked and factor.state.locked_until
            else None
        ),
    }


def clear(manager: SecretsManager, principal: str | None) -> bool:
    """An admin's clearing of another principal's lockout (failures forgotten, replay
    protection kept), recorded in the signed access policy: the principal's own record
    is sealed under its key, so its next attempt applies it. The owner's own lockout
    is not cleared by the owner (that would defeat it): it ends at its time. Returns
    whether anything changed."""
    gate = manager.gate
    vault = manager.owner_vault(Action.MFA_CLEAR, None, "clearing a lockout")
    name = principal or gate.principal
    if name == OWNER:
        with manager.audit.operation(Action.MFA_CLEAR, None) as note:
            note.details = {"principal": OWNER, "changed": False}
            factor = FactorStore(vault, OWNER).get()
            if factor is not None and is_locked_out(factor.state, manager.clock()):
                until = iso(factor.state.locked_until) if factor.state.locked_until else "?"
                raise AccessDenied(
                    f"the owner's lockout is not cleared by the owner: it ends at {until}",
                    hint="wait until then (a lockout lasts 1 minute, doubling with each "
                    "wrong code after the fifth, at most 24 hours)",
                )
        return False  # nothing to clear
    store = PolicyStore(vault)
    with manager.audit.operation(Action.MFA_CLEAR, None) as note:
        policy = store.load()
        if name not in policy.principals:
            raise PrincipalUnknown(f"principal '{name}' does not exist")
        note.details = {"principal": name, "changed": True}
        store.save(policy.with_mfa_clear(name))
    gate.forget_policy()
    return True
