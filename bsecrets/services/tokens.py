"""Pipeline tokens (docs/ci.md): ``token issue/ls/revoke/extend``.

A token is a machine principal (``token-<id>``) with its own key pair: its
private key is wrapped by the token (vaultfile/tokens.py), the environments it
may open are sealed to it like any grant, and its expiry is in the signed
access policy, where its holder cannot change it. An expired token is refused
(exit 4) even though its key still opens what was sealed to it: the check is
code, against this machine's clock; someone holding the vault file and the
token can still decrypt offline what its environments held (docs/access.md).
A revoke re-keys every environment the token could open.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action
from bsecrets.crypto.keys import generate_private_key, public_key_of
from bsecrets.errors import NextStep, PrincipalUnknown, UsageError
from bsecrets.services.principals import (
    check_principal_name,
    check_role_and_scope,
    remove_principal,
    with_grant,
    with_new_principal,
)
from bsecrets.timeutil import iso, parse_iso
from bsecrets.vaultfile import tokens
from bsecrets.vaultfile.policy import Grant, PolicyStore, PrincipalRecord

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

MAX_TTL = timedelta(days=30)


def _check_ttl(ttl: timedelta) -> None:
    if ttl > MAX_TTL:
        raise UsageError("a token lasts at most 30 days", step=NextStep("shorten_token_ttl"))


def issue(
    manager: SecretsManager,
    envs: list[str | None],
    *,
    role: str,
    only: list[str],
    ttl: timedelta,
    label: str | None,
) -> tuple[str, PrincipalRecord, list[str]]:
    """A new token that opens ``envs`` with ``role`` (and ``only``): returns the token
    (shown once, stored nowhere), its record and the environments."""
    check_role_and_scope(role, only)
    if role == "admin":
        raise UsageError(
            "a token reads or writes: it takes no admin role", step=NextStep("token_role")
        )
    _check_ttl(ttl)
    if label is not None:
        check_principal_name(label)
    gate = manager.gate
    vault = manager.owner_vault(Action.TOKEN_ISSUE, None, "issuing a token")
    names = sorted({manager.env_name(env) for env in envs or [None]})
    reasons = [gate.check(Action.TOKEN_ISSUE, env, remote=False) for env in names]
    token, parts = tokens.new_token(vault.vault_id)
    principal = tokens.principal_of(parts.token_id)
    private_key = generate_private_key()
    store = PolicyStore(vault)
    reason = next((r for r in reasons if r), None)
    with manager.audit.operation(Action.TOKEN_ISSUE, None, justification=reason) as note:
        now = manager.clock()
        record = PrincipalRecord(
            "token",
            public_key_of(private_key),
            iso(now),
            vault.principal,
            expires_at=iso(now + ttl),
            label=label,
        )
        note.details = {"token": parts.token_id, "envs": names, "role": role, "only": only}
        note.details["expires_at"] = record.expires_at
        policy = with_new_principal(vault, store, store.load(), principal, record)
        grant = Grant(role, tuple(only), vault.principal, iso(now))
        for env in names:
            policy = with_grant(manager, vault, policy, env, principal, grant)
        params, wrapped = tokens.wrap(vault.vault_id, parts, private_key + store.trust_root())
        vault.store.set_key_wrap(principal, "token", params, wrapped)
        store.save(policy)
    gate.forget_policy()
    return token, record, names


def listing(manager: SecretsManager) -> list[dict[str, Any]]:
    policy = manager.gate.policy()
    now = manager.clock()
    rows = []
    for name, record in sorted(policy.principals.items()):
        if record.kind != "token":
            continue
        envs = sorted(env for env, grants in policy.grants.items() if name in grants)
        grants = [policy.grants[env][name] for env in envs]
        expires = record.expires_at or ""
        rows.append(
            {
                "id": name.removeprefix(tokens.TOKEN_PRINCIPAL),
                "name": record.label,
                "envs": envs,
                "role": grants[0].role if grants else None,
                "only": list(grants[0].only) if grants else [],
                "issued_at": record.added_at,
                "issued_by": record.added_by,
                "expires_at": expires,
                "expired": bool(expires) and parse_iso(expires) <= now,
            }
        )
    return rows


def _principal(manager: SecretsManager, token_id: str) -> str:
    principal = tokens.principal_of(token_id.strip().lower())
    record = manager.gate.policy().principals.get(principal)
    if record is None or record.kind != "token":
        raise PrincipalUnknown(
            f"no token '{token_id[:20]}' in this vault", step=NextStep("list_tokens")
        )
    return principal


def revoke(manager: SecretsManager, token_id: str) -> list[str]:
    """Remove the token: every environment it could open is re-keyed first."""
    manager.owner_vault(Action.TOKEN_REVOKE, None, "revoking a token")
    return remove_principal(manager, _principal(manager, token_id), action=Action.TOKEN_REVOKE)


def extend(manager: SecretsManager, token_id: str, ttl: timedelta) -> str:
    """A new expiry, ``ttl`` from now (also for an expired token). Returns it."""
    _check_ttl(ttl)
    gate = manager.gate
    vault = manager.owner_vault(Action.TOKEN_EXTEND, None, "extending a token")
    principal = _principal(manager, token_id)
    store = PolicyStore(vault)
    with manager.audit.operation(Action.TOKEN_EXTEND, None) as note:
        policy = store.load()
        record = policy.principals[principal]
        expires = iso(manager.clock() + ttl)
        note.details = {"token": token_id, "from": record.expires_at, "to": expires}
        store.save(policy.with_principal(principal, record._replace(expires_at=expires)))
    gate.forget_policy()
    return expires
