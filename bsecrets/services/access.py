"""Protected environments, checked in the façade for every operation on every backend.

An environment is protected when the vault's access policy records it
(``env protect``; vaultfile/policy.py). On a protected environment the guarded
operations (every change; with ``--mfa all`` every read too) need:

- a reason, which goes into the operation's audit event (``justification``);
- ``--yes`` when there is no terminal to ask on (on a terminal, a question);
- a second factor: a current TOTP code of the principal (crypto/second_factor.py
  for skew, replay and lockout), asked once per process.

The profile's ``protected: true`` is a declaration: while the vault does not
record the protection, guarded operations are refused (exit 4) with the command
that applies it; a profile saying ``false`` lowers nothing. Every refusal is an
audited ``denied`` event of the operation (SecretsManager._op).

On the local vault all of this is enforced by code: whoever holds the file and
the key can bypass it (docs/access.md says which controls are cryptographic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from bsecrets.audit.events import Action
from bsecrets.config.profile import Profile
from bsecrets.errors import (
    AccessDenied,
    ConfirmationNeeded,
    LockedOut,
    NextStep,
    ProtectionNotApplied,
    SecondFactorRejected,
    SecondFactorRequired,
    SessionInvalid,
    TokenExpired,
    VaultNotFound,
)
from bsecrets.files import exists
from bsecrets.models import Confirmation, validate_reason
from bsecrets.timeutil import Clock, iso, parse_iso
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.policy import AccessPolicy, Grant, PolicyStore, peek_policy
from bsecrets.vaultfile.vault import LocalVault

if TYPE_CHECKING:
    from bsecrets.vaultfile.factors import Factor

# What ``--mfa writes`` guards: every operation that changes an environment.
CHANGES = frozenset(
    {
        Action.PUT,
        Action.RM,
        Action.RESTORE,
        Action.ROLLBACK,
        Action.IMPORT,
        Action.PROVISION,
        Action.ENV_PROTECT,
        Action.ENV_UNPROTECT,
        Action.ACCESS_GRANT,
        Action.ACCESS_REVOKE,
        Action.TOKEN_ISSUE,
        Action.ROTATE,
        Action.PROMOTE,
        Action.BREAK_GLASS_SETUP,
        Action.BREAK_GLASS_REKEY,
    }
)


_Item = TypeVar("_Item")  # what AccessGate.scoped filters (ls: SecretSummary)


def in_scope(grant: Grant, name: str) -> bool:
    """Whether ``name`` (``NAME#field``: its NAME) matches one of the grant's globs (all
    names when it has none)."""
    import fnmatch

    base = name.partition("#")[0]
    return not grant.only or any(fnmatch.fnmatchcase(base, glob) for glob in grant.only)


def _until(factor: Factor) -> str:
    until = factor.state.locked_until
    return iso(until) if until else "?"


class AccessGate:
    """The checks of one process (one CLI command): the policy is read once, and a
    second factor is asked for at most once."""

    def __init__(
        self,
        profile: Profile,
        principal: Callable[[], str],
        local_vault: Callable[[], LocalVault],
        clock: Clock,
        confirmation: Confirmation,
        remote_only: bool = False,
    ) -> None:
        self.profile = profile
        # the server without a vault file: each remote call carries the caller's own
        # credential, and the remote's policy is the boundary (server/pass_through.py)
        self.remote_only = remote_only
        self._principal = principal
        self._local_vault = local_vault
        self.clock = clock
        self.confirmation = confirmation
        self._policy: AccessPolicy | None = None
        self._found: LocalVault | None = None  # the vault, once its file was found
        self._factor_checked = False
        self._confirmed: set[str] = set()

    @property
    def principal(self) -> str:
        return self._principal()

    def forget_policy(self) -> None:
        """The policy changed in this process (env protect): read it again when asked."""
        self._policy = None

    def _vault(self) -> LocalVault | None:
        """The local vault; None when the profile's vault file does not exist. Looked for
        until found, then kept (the manager keeps it open): every put of an import asks."""
        if self._found is None:
            if not exists(self.profile.vault_file):
                return None
            self._found = self._local_vault()
        return self._found

    def require_admin(self, env: str, what: str, *, owner_only: bool = False) -> LocalVault:
        """The vault, for the owner or (unless ``owner_only``) a principal with the admin
        role on ``env``: AccessDenied (exit 4) for anyone else."""
        vault = self.require_vault(what)
        if vault.principal == OWNER:
            return vault
        grant = None if owner_only else self.policy().grant_of(env, vault.principal)
        if grant is None or grant.role != "admin":
            who = "the owner's" if owner_only else f"for the owner or an admin of '{env}'"
            raise AccessDenied(
                f"{what} is {who}, not principal '{vault.principal}'s",
                hint="ask the vault's owner",
            )
        return vault

    def require_owner(self, what: str) -> LocalVault:
        """The vault, for what only its owner may do (edit the access policy): AccessDenied
        (exit 4) for any other principal."""
        vault = self.require_vault(what)
        if vault.principal != OWNER:
            raise AccessDenied(
                f"{what} is the owner's to do, not principal '{vault.principal}'s",
                hint="ask the vault's owner",
            )
        return vault

    def require_vault(self, why: str) -> LocalVault:
        """The local vault, which holds protections and second factors; VaultNotFound
        (exit 3) saying ``why`` it is needed when there is none."""
        vault = self._vault()
        if vault is None:
            raise VaultNotFound(
                f"{why} needs the local vault, and there is none at {self.profile.vault_file}",
                step=NextStep("init_vault_for_access"),
            )
        return vault

    def policy(self, *, remote: bool = False) -> AccessPolicy:
        """The vault's access policy, checked (vaultfile/policy.py). For a remote
        environment, when the vault does not open without a prompt, as the file
        states it: there the remote's own policy is the boundary."""
        if self._policy is None:
            vault = self._vault()
            if vault is None:
                return AccessPolicy.empty()
            if remote and not vault.can_unlock_quietly():
                return peek_policy(vault.store)
            self._policy = PolicyStore(vault).load()
        return self._policy

    def check(
        self,
        action: Action,
        env: str,
        *,
        remote: bool,
        names: tuple[str | None, ...] = (),
        needs: str | None = None,
    ) -> str | None:
        """Before ``action`` on ``env`` (about ``names``; ``needs``: a role beyond what the
        action needs, "admin" for a purge): raises what refuses it; returns the reason
        to record in its event (None when the environment is not protected)."""
        declared = self.profile.environment(env).protected
        if self.remote_only and remote and not declared:
            return None
        if self.principal != OWNER:
            self.authorize(action, env, names, needs)
        elif not declared and self._vault() is None:
            return None  # nothing can protect it: the fast path of a vault-less profile
        protection = self.policy(remote=remote).protected.get(env)
        guarded = action in CHANGES or (protection is not None and protection.mfa == "all")
        if not guarded:
            return None
        if protection is None:
            if declared:
                raise ProtectionNotApplied(
                    f"environment '{env}' is declared protected in the profile, "
                    "but the vault does not protect it yet",
                    step=NextStep("protect_env", env=env),
                )
            return None
        reason = self.confirm(action, env)
        self.second_factor(f"environment '{env}' is protected")
        return reason

    def authorize(
        self, action: Action, env: str, names: tuple[str | None, ...], needs: str | None
    ) -> None:
        """A principal other than the owner: its grant on ``env`` must allow ``action``
        and cover every name (AccessDenied, exit 4, naming the scope, never a value).
        Its key proves who it is: the vault is unlocked first, on every backend."""
        principal = self.principal
        self.require_vault(f"acting as principal '{principal}'").private_key()
        policy = self.policy()
        record = policy.principals.get(principal)
        expires = record.expires_at if record is not None else None
        if expires is not None and parse_iso(expires) <= self.clock():
            raise TokenExpired(
                f"the token ({principal}) expired at {expires}",
                step=NextStep("extend_or_issue_token"),
            )
        grant = policy.grant_of(env, principal) or self._emergency_grant(env)
        if grant is None:
            raise AccessDenied(
                f"principal '{principal}' has no access to environment '{env}'",
                step=NextStep("ask_for_grant", env=env),
            )
        required = needs or ("write" if action in CHANGES else "read")
        rank = {"read": 0, "write": 1, "admin": 2}
        if rank[grant.role] < rank[required]:
            raise AccessDenied(
                f"principal '{principal}' may {grant.role} environment '{env}': "
                f"{action}{' --purge' if required == 'admin' else ''} needs {required}",
                step=NextStep("ask_for_grant", env=env),
            )
        for name in names:
            if name is not None and not in_scope(grant, name):
                raise AccessDenied(
                    f"secret '{name}' is outside principal '{principal}'s scope in "
                    f"'{env}' ({', '.join(grant.only)})",
                    step=NextStep("ask_for_grant", env=env),
                )

    def _emergency_grant(self, env: str) -> Grant | None:
        """A break-glass session's grant on ``env`` (services/break_glass.py), while its
        request is active: SessionInvalid (exit 4) once revoked or past its TTL."""
        vault = self._vault()
        found = vault.emergency_grant() if vault is not None else None
        if vault is None or found is None or found[1] != env:
            return None
        from bsecrets.vaultfile.break_glass import BreakGlassStore

        with vault.store.read():
            request = BreakGlassStore(vault).request(found[0])
        if request is None or request.state != "active":
            raise SessionInvalid(f"the break-glass session of request {found[0]} was revoked")
        ends = request.expires_at
        if self.clock() >= parse_iso(ends):
            raise SessionInvalid(f"the break-glass session of request {found[0]} ended at {ends}")
        return Grant(found[2], (), request.requester, request.activated_at or "")

    def in_scope_of(self, env: str, name: str) -> bool:
        """Whether the principal's grant on ``env`` covers ``name`` (bulk reads keep only
        those); always for the owner."""
        return bool(self.scoped(env, [name], str))

    def scoped(self, env: str, items: list[_Item], name: Callable[[_Item], str]) -> list[_Item]:
        """The items whose ``name(item)`` the principal's grant on ``env`` covers, the
        grant looked up once (an ls of 100,000 secrets); ``items`` itself for the owner."""
        if self.principal == OWNER or self.remote_only:
            return items
        grant = self.policy().grant_of(env, self.principal)
        return [item for item in items if grant is not None and in_scope(grant, name(item))]

    def confirm(self, action: Action, env: str) -> str:
        """The reason given, and a yes (a flag, or an answer on a terminal)."""
        given = self.confirmation.reason
        if given is None:
            raise ConfirmationNeeded(
                f"environment '{env}' is protected: this command needs a reason for the audit log",
                step=NextStep("give_reason"),
            )
        reason = validate_reason(given)
        if self.confirmation.yes or env in self._confirmed:
            return reason
        ask = self.confirmation.ask
        if ask is None:
            raise ConfirmationNeeded(
                f"environment '{env}' is protected: this command needs a confirmation, "
                "and there is no terminal to ask on",
                step=NextStep("confirm_with_yes"),
            )
        if not ask(f"{action} on protected environment '{env}'. Proceed? [y/N] "):
            raise ConfirmationNeeded(f"{action} on '{env}' was not confirmed")
        self._confirmed.add(env)
        return reason

    def second_factor(self, why: str) -> None:
        """A current one-time code of the principal, once per process: SecondFactorRequired
        (none enrolled, or none given), LockedOut, or SecondFactorRejected (exit 4). The
        attempt is counted (failures, replay) in its own transaction, kept whatever
        the operation does next."""
        if self._factor_checked:
            return
        # a seam: only a protected environment's second factor loads TOTP and its store
        from bsecrets.crypto.second_factor import Verdict, attempt, cleared, is_locked_out
        from bsecrets.vaultfile.factors import FactorStore

        vault = self.require_vault(f"{why}: a second factor")
        factors = FactorStore(vault, self.principal)
        with vault.store.read():
            factor = factors.get()
        if factor is None:
            raise SecondFactorRequired(
                f"{why}: it needs a second factor, and principal '{self.principal}' "
                "has none enrolled",
                step=NextStep("enroll_mfa"),
            )
        now = self.clock()
        clears = self.policy().mfa_clears.get(self.principal, 0)
        if is_locked_out(factor.state, now) and clears <= factor.clears_seen:
            raise self._locked_out(factor)
        code = self.one_time_code(f"{why}: it")
        with vault.store.write():
            factor = factors.get() or factor  # the state as it is now, under the write lock
            if clears > factor.clears_seen:  # an admin cleared the lockout since
                factor = factor._replace(state=cleared(factor.state), clears_seen=clears)
            result = attempt(factor.seed, code, factor.state, now)
            factors.put(factor._replace(state=result.state))
        if result.verdict is Verdict.ACCEPTED:
            self._factor_checked = True
            return
        factor = factor._replace(state=result.state)
        if result.verdict is Verdict.LOCKED_OUT:
            raise self._locked_out(factor)
        locked = f"; locked out until {_until(factor)}" if is_locked_out(factor.state, now) else ""
        if result.verdict is Verdict.REPLAYED:
            raise SecondFactorRejected(
                f"that one-time code was already used{locked}",
                step=NextStep("wait_for_next_code"),
            )
        raise SecondFactorRejected(f"wrong one-time code{locked}")

    def _locked_out(self, factor: Factor) -> LockedOut:
        step = (
            NextStep("wait_for_lockout", until=_until(factor))
            if self.principal == OWNER
            else NextStep("clear_lockout", principal=self.principal)
        )
        return LockedOut(
            f"principal '{self.principal}' is locked out after {factor.state.failures} "
            f"wrong one-time codes, until {_until(factor)}",
            step=step,
        )

    def one_time_code(self, what: str) -> str:
        """The code the caller gives (BSECRETS_OTP or a prompt); SecondFactorRequired
        (exit 4) saying that ``what`` needs one when none is given."""
        source = self.confirmation.one_time_code
        code = source() if source is not None else None
        if not code:
            raise SecondFactorRequired(
                f"{what} needs a one-time code, and none was given",
                step=NextStep("give_one_time_code"),
            )
        return code.strip()
