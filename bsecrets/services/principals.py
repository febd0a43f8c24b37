"""Principals, grants and revocations of the local vault (docs/access.md).

- A **principal** is a person with an X25519 key pair: its private key wrapped by
  its own passphrase (Argon2id), with the owner's identity key (its trust root) sealed
  beside it (the trust root it checks every policy against); its public key in
  the vault's principal row and in the signed policy.
- A **grant** seals an environment's master key to the principal (sender: the
  owner, who alone edits the policy today) and records the role and name scope
  in the policy. Without the sealed key no edit of the policy or the file lets
  a principal read the environment: that part is cryptographic. Roles and
  scopes are checked in the façade (services/access.py): enforced by code.
- A **revocation** re-keys the environment in one transaction: a new master key,
  every row re-encrypted, the new key sealed to those who keep access, the
  principal's grant dropped. A copy of the old key opens nothing written after.

Each change is one audited operation, its rows and its event one transaction.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action
from bsecrets.audit.local_log import AUDIT_ENV
from bsecrets.audit.member_intake import intake_public_key
from bsecrets.backends.local.adapter import LocalAdapter
from bsecrets.crypto.keys import EnvironmentKeys, check_new_passphrase, generate_private_key
from bsecrets.crypto.keys import public_key_of as public_key_from
from bsecrets.errors import (
    AccessDenied,
    AlreadyExists,
    Conflict,
    NextStep,
    PrincipalUnknown,
    UsageError,
)
from bsecrets.timeutil import iso
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.keyfile import fingerprint
from bsecrets.vaultfile.policy import (
    ACCESS_ENV,
    GRANT_ROLES,
    AccessPolicy,
    Grant,
    PolicyStore,
    PrincipalRecord,
)
from bsecrets.vaultfile.unlock import wrap_with_passphrase

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager
    from bsecrets.vaultfile.vault import LocalVault

PRINCIPAL_NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")
PRINCIPAL_KINDS = ("person", "machine")  # a machine brings its key (or is a token)
MAX_SCOPES = 50


def check_principal_name(name: str) -> str:
    if not PRINCIPAL_NAME.fullmatch(name):
        raise UsageError(
            f"invalid principal name {name[:70]!r}",
            hint="1 to 64 characters of a-z 0-9 . _ -, starting with a letter",
        )
    return name


def check_role_and_scope(role: str, only: list[str]) -> None:
    if role not in GRANT_ROLES:
        raise UsageError(
            f"--role takes {', '.join(GRANT_ROLES)}",
            hint="read: get, ls, exec...; write: also put, rm...; admin: also grants",
        )
    if len(only) > MAX_SCOPES:
        raise UsageError(
            f"at most {MAX_SCOPES} --only globs", hint="use wider globs, such as 'db/*'"
        )


def add_principal(
    manager: SecretsManager,
    name: str,
    *,
    passphrase: str | None = None,
    public_key: bytes | None = None,
    kind: str = "person",
) -> tuple[PrincipalRecord, str]:
    """A new principal: with ``passphrase``, a key pair made here whose private key only
    that passphrase opens; with ``public_key``, a key pair made on the principal's own
    machine (``access keygen``), whose private key never comes here. Returns the record
    and the fingerprint of the trust root its key file pins on first use."""
    check_principal_name(name)
    if kind not in PRINCIPAL_KINDS:
        raise UsageError("--kind takes person or machine", hint="machine: a CI runner, a server")
    if public_key is None:
        if kind == "machine":
            raise UsageError(
                "a machine principal brings its own key pair",
                step=NextStep("machine_public_key"),
            )
        check_new_passphrase(passphrase or "")
    vault = manager.owner_vault(Action.PRINCIPAL_ADD, None, "adding a principal")
    store = PolicyStore(vault)
    private_key = generate_private_key() if public_key is None else None
    with manager.audit.operation(Action.PRINCIPAL_ADD, None) as note:
        note.details = {"principal": name, "kind": kind, "own_key": public_key is not None}
        policy = store.load()
        if name == OWNER or name in policy.principals or vault.store.has_principal(name):
            raise AlreadyExists(f"principal '{name}' exists", step=NextStep("list_principals"))
        now = iso(manager.clock())
        key = public_key_from(private_key) if private_key is not None else public_key or b""
        record = PrincipalRecord(kind, key, now, vault.principal)
        policy = with_new_principal(vault, store, policy, name, record)
        root = store.trust_root()  # the trust root
        if private_key is not None:  # sealed with the private key
            params, wrapped = wrap_with_passphrase(
                vault.vault_id, private_key, passphrase or "", principal=name, payload=root
            )
            vault.store.set_key_wrap(name, "passphrase", params, wrapped)
        else:  # stated, and pinned by the key file on first use (vaultfile/keyfile.py)
            params = json.dumps({"trust_root": root.hex()}, sort_keys=True)
            vault.store.set_key_wrap(name, "public", params, b"")
        store.save(policy)
    manager.gate.forget_policy()
    return record, fingerprint(root)


def with_new_principal(
    vault: LocalVault, store: PolicyStore, policy: AccessPolicy, name: str, record: PrincipalRecord
) -> AccessPolicy:
    """Inside the caller's transaction: ``name``'s row in the vault, and ``policy`` naming
    it (and the owner, and the audit key other principals seal their events to)."""
    audit_public = intake_public_key(vault.env_master(AUDIT_ENV, create=True) or b"")
    vault.store.add_principal(name, record.public_key, record.added_at)
    return store.with_owner(policy, audit_public).with_principal(name, record)


def with_grant(
    manager: SecretsManager,
    vault: LocalVault,
    policy: AccessPolicy,
    env: str,
    name: str,
    grant: Grant,
) -> AccessPolicy:
    """Inside the caller's transaction: ``env``'s key sealed to ``name`` (a local
    environment), and ``policy`` with the grant."""
    if manager.profile.environment(env).backend == "local":
        master = vault.env_master(env, create=True)
        assert master is not None
        vault.seal_env_key_to(env, name, policy.principals[name].public_key, master)
    return policy.with_grant(env, name, grant)


def remove_principal(
    manager: SecretsManager, name: str, *, action: Action = Action.PRINCIPAL_RM
) -> list[str]:
    """Remove ``name``: every environment it could open is re-keyed first (as a revoke).
    Returns those environments."""
    if name == OWNER:
        raise Conflict(
            "the owner is the vault's admin and cannot be removed",
            hint="the owner holds every environment's key; remove other principals",
        )
    vault = manager.owner_vault(action, None, "removing a principal")
    store = PolicyStore(vault)
    with manager.audit.operation(action, None) as note:
        policy = store.load()
        if name not in policy.principals:
            raise PrincipalUnknown(f"principal '{name}' does not exist")
        envs = sorted(env for env, grants in policy.grants.items() if name in grants)
        was_admin = is_admin(policy, name)
        manager.audit_log().fold_pending()  # its events still waiting: chained while they open
        for env in envs:
            rekey_without(manager, vault, env, name)
            policy = policy.with_grant(env, name, None)
        vault.store.remove_principal(name)
        policy = policy.with_principal(name, None)
        store.save(policy, rekey_to=admin_keys(policy) if was_admin else None)
        note.details = {"principal": name, "rekeyed": envs}
    manager.gate.forget_policy()
    return envs


def grant(manager: SecretsManager, name: str, env: str | None, role: str, only: list[str]) -> Grant:
    """Seal ``env``'s key to ``name`` (local environments) and record the role and scope."""
    check_role_and_scope(role, only)
    env_name = manager.env_name(env)
    what = "granting the admin role" if role == "admin" else "granting access"
    vault = admin_vault(manager, Action.ACCESS_GRANT, env_name, what, owner=role == "admin")
    store = PolicyStore(vault)
    reason = manager.gate.check(Action.ACCESS_GRANT, env_name, remote=False)
    with manager.audit.operation(Action.ACCESS_GRANT, env_name, justification=reason) as note:
        policy = store.load()
        record = policy.principals.get(name)
        if record is None or name == OWNER:
            raise PrincipalUnknown(f"principal '{name}' does not exist")
        before = policy.grant_of(env_name, name)
        if before is not None and before.role == "admin" and vault.principal != OWNER:
            raise AccessDenied(
                f"principal '{name}' is an admin of '{env_name}': only the owner changes that",
                hint="ask the vault's owner",
            )
        new = Grant(role, tuple(only), vault.principal, iso(manager.clock()))
        note.details = {"principal": name, "role": role, "only": list(only)}
        if role == "admin":  # an admin edits the policy: the policy key is sealed to it
            access_master = vault.env_master(ACCESS_ENV, create=True)
            assert access_master is not None
            vault.seal_env_key_to(ACCESS_ENV, name, record.public_key, access_master)
        policy = with_grant(manager, vault, policy, env_name, name, new)
        demoted = before is not None and before.role == "admin" and not is_admin(policy, name)
        store.save(policy, rekey_to=admin_keys(policy) if demoted else None)
    manager.gate.forget_policy()
    return new


def revoke(manager: SecretsManager, name: str, env: str | None) -> bool:
    """Drop ``name``'s grant on ``env`` and re-key it. Returns whether it had one."""
    env_name = manager.env_name(env)
    if name == OWNER:
        raise Conflict(
            f"the owner is the last admin of environment '{env_name}': its access cannot be "
            "revoked",
            hint="the owner keeps every environment; revoke other principals",
        )
    vault = admin_vault(manager, Action.ACCESS_REVOKE, env_name, "revoking access")
    store = PolicyStore(vault)
    reason = manager.gate.check(Action.ACCESS_REVOKE, env_name, remote=False)
    with manager.audit.operation(Action.ACCESS_REVOKE, env_name, justification=reason) as note:
        policy = store.load()
        if name not in policy.principals:
            raise PrincipalUnknown(f"principal '{name}' does not exist")
        had = policy.grant_of(env_name, name)
        note.details = {"principal": name, "changed": had is not None}
        if had is None:
            return False
        if had.role == "admin" and vault.principal != OWNER:
            raise AccessDenied(
                f"principal '{name}' is an admin of '{env_name}': only the owner revokes that",
                hint="ask the vault's owner",
            )
        if manager.profile.environment(env_name).backend == "local":
            note.details["rekeyed_secrets"] = rekey_without(manager, vault, env_name, name)
        policy = policy.with_grant(env_name, name, None)
        demoted = had.role == "admin" and not is_admin(policy, name)
        store.save(policy, rekey_to=admin_keys(policy) if demoted else None)
    manager.gate.forget_policy()
    return True


def rekey_without(manager: SecretsManager, vault: LocalVault, env: str, name: str) -> int:
    """Inside the caller's transaction: ``env`` under a new master key sealed to every
    principal that keeps access (not ``name``). Returns the secrets re-encrypted."""
    old = vault.env_keys(env)
    if old is None:
        return 0
    master = os.urandom(32)
    count = LocalAdapter(vault, env, manager.clock).reencrypt(
        old, EnvironmentKeys.from_master(master)
    )
    policy = PolicyStore(vault).load()
    keep = {
        principal: policy.principals[principal].public_key
        for principal in [OWNER, *policy.grants.get(env, {})]
        if principal != name and principal in policy.principals
    }
    vault.replace_env_key(env, master, keep)
    return count


def is_admin(policy: AccessPolicy, name: str) -> bool:
    """Whether ``name`` holds the admin role on any environment (so the policy key)."""
    return any(g.get(name) is not None and g[name].role == "admin" for g in policy.grants.values())


def admin_keys(policy: AccessPolicy) -> dict[str, bytes]:
    """The public keys of the principals that keep the policy key (a new one is sealed
    to them and the owner when an admin loses the role)."""
    return {
        name: record.public_key
        for name, record in policy.principals.items()
        if name != OWNER and is_admin(policy, name)
    }


def admin_vault(
    manager: SecretsManager, action: Action, env: str, what: str, *, owner: bool = False
) -> LocalVault:
    """The vault, for the owner or (unless ``owner``) an admin of ``env``; a refusal is
    an audited event of ``action``."""
    with manager.refusals_recorded(action, env):
        return manager.gate.require_admin(env, what, owner_only=owner)


# --- reading -------------------------------------------------------------------


def grant_on(manager: SecretsManager, env: str, principal: str | None) -> Grant | None:
    """``principal``'s grant on ``env`` from the verified access policy (for the native
    policy that matches it: ``vault policy``, ``aws policy``); None without a principal.
    PrincipalUnknown (3), or UsageError (2) when it has no grant there."""
    if principal is None:
        return None
    policy = manager.gate.policy()
    if principal not in policy.principals:
        raise PrincipalUnknown(f"principal '{principal}' does not exist")
    grant = policy.grant_of(env, principal)
    if grant is None:
        raise UsageError(
            f"principal '{principal}' has no grant on environment '{env}'",
            step=NextStep("grant_first", principal=principal, env=env),
        )
    return grant


def _grants_of(policy: AccessPolicy, name: str) -> list[dict[str, Any]]:
    if name == OWNER:
        return [{"env": "*", "role": "admin", "only": []}]
    return [
        {"env": env, "role": g.role, "only": list(g.only), "by": g.by, "at": g.at}
        for env, grants in sorted(policy.grants.items())
        for principal, g in grants.items()
        if principal == name
    ]


def _row(policy: AccessPolicy, vault: LocalVault, name: str) -> dict[str, Any]:
    if name == OWNER:
        return {
            "principal": OWNER,
            "kind": "person",
            "public_key": vault.store.public_key(OWNER).hex(),
            "added_at": vault.store.created_at,
            "added_by": None,
            "grants": _grants_of(policy, OWNER),
        }
    record = policy.principals.get(name)
    if record is None:
        raise PrincipalUnknown(f"principal '{name}' does not exist")
    return {
        "principal": name,
        "kind": record.kind,
        "public_key": record.public_key.hex(),
        "added_at": record.added_at,
        "added_by": record.added_by,
        "grants": _grants_of(policy, name),
    }


def listing(manager: SecretsManager) -> list[dict[str, Any]]:
    vault = manager.gate.require_vault("listing principals")
    policy = manager.gate.policy()
    names = [OWNER, *sorted(n for n in policy.principals if n != OWNER)]
    return [_row(policy, vault, name) for name in names]


def show(manager: SecretsManager, name: str) -> dict[str, Any]:
    vault = manager.gate.require_vault("showing a principal")
    return _row(manager.gate.policy(), vault, name)


def whoami(manager: SecretsManager) -> dict[str, Any]:
    """The principal the vault unlocks as (proven by unlocking), and its grants."""
    vault = manager.gate.require_vault("whoami")
    vault.private_key()  # proves the principal: its key opened
    return _row(manager.gate.policy(), vault, vault.principal)
