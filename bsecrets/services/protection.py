"""``env protect`` and ``env unprotect``: recording a protection in the vault's access
policy (vaultfile/policy.py), each an audited operation that needs a second factor.
What a protection then asks of every operation is services/access.py's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bsecrets.audit.events import Action
from bsecrets.errors import Conflict, NextStep, UsageError
from bsecrets.models import validate_reason
from bsecrets.services.principals import admin_vault
from bsecrets.timeutil import iso
from bsecrets.vaultfile.policy import MFA_MODES, PolicyStore, Protection

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


def protect(
    manager: SecretsManager, env: str, mfa: str, promote_approval: bool = False
) -> tuple[Protection, bool]:
    """Record ``env`` as protected (``mfa``: what needs a second factor;
    ``promote_approval``: promotions into it need another admin's approval). Needs a
    second factor itself. Returns the protection and whether anything changed."""
    if mfa not in MFA_MODES:
        raise UsageError(
            "--mfa takes writes or all", hint="writes: changes need a code; all: reads too"
        )
    env_name = manager.env_name(env)
    gate = manager.gate
    vault = admin_vault(manager, Action.ENV_PROTECT, env_name, "protecting an environment")
    with manager.refusals_recorded(Action.ENV_PROTECT, env_name):
        if env_name in gate.policy().protected:  # a change of a protected environment
            reason = gate.check(Action.ENV_PROTECT, env_name, remote=False)
        else:
            given = gate.confirmation.reason
            reason = validate_reason(given) if given is not None else None
            gate.second_factor(f"protecting environment '{env_name}'")
    store = PolicyStore(vault)
    with manager.audit.operation(Action.ENV_PROTECT, env_name, justification=reason) as note:
        policy = store.load()
        current = policy.protected.get(env_name)
        note.details = {"mfa": mfa, "promote_approval": promote_approval}
        if current is not None and (current.mfa, current.promote_approval) == (
            mfa, promote_approval
        ):  # fmt: skip
            note.details["changed"] = False
            return current, False
        protection = Protection(mfa, gate.principal, iso(manager.clock()), promote_approval)
        store.save(policy.with_protection(env_name, protection))
    gate.forget_policy()
    return protection, True


def unprotect(manager: SecretsManager, env: str) -> bool:
    """Lift ``env``'s protection: a guarded operation on it (reason, yes, second factor).
    Refused (Conflict, exit 7) while the profile still declares it. Returns whether
    it was protected."""
    env_name = manager.env_name(env)
    if manager.profile.environment(env_name).protected:
        raise Conflict(
            f"the profile declares environment '{env_name}' protected",
            step=NextStep("drop_protected_declaration", env=env_name),
        )
    gate = manager.gate
    vault = admin_vault(
        manager, Action.ENV_UNPROTECT, env_name, "lifting an environment's protection"
    )
    store = PolicyStore(vault)
    if env_name not in gate.policy().protected:
        return False
    with manager.refusals_recorded(Action.ENV_UNPROTECT, env_name):
        reason = gate.check(Action.ENV_UNPROTECT, env_name, remote=False)
    with manager.audit.operation(Action.ENV_UNPROTECT, env_name, justification=reason):
        policy = store.load()
        store.save(policy.with_protection(env_name, None))
    gate.forget_policy()
    return True
