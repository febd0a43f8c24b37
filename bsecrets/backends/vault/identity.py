"""Who a Vault environment's token is and when it ends, for ``bsecrets doctor``: Vault's
health (``sys/health``, no token), then ``auth/token/lookup-self`` with the token the
environment logs in with (any method: token, approle, kubernetes, jwt). Facts only;
services/doctor/backends.py judges them. Never the token, its accessor or a secret id:
of lookup-self's answer only the display name, policies, entity, type, TTL and
renewability are kept."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bsecrets.backends.vault.errors import VaultHTTPError
from bsecrets.backends.vault.health import sys_health
from bsecrets.errors import BackendUnavailable, BsecretsError, Denied
from bsecrets.ports import BackendIdentity

if TYPE_CHECKING:
    from bsecrets.backends.vault.connection import VaultConnection


def identity(vault: VaultConnection, budget: float) -> BackendIdentity:
    """Health, then the token's lookup, each within ``budget`` seconds."""
    address = vault.settings.address
    down, service = _health(vault, budget)
    if down is not None:
        return BackendIdentity(endpoint=address, service=service, down=down)
    base = BackendIdentity(endpoint=address, service=service, source=_source(vault))
    try:
        with vault.client.adapter.operation(budget):
            answer = vault.call(lambda c: c.adapter.get("/v1/auth/token/lookup-self"))
    except VaultHTTPError as exc:
        return base._replace(refused=_refusal(vault, exc))
    except BackendUnavailable as exc:
        return base._replace(down=exc)
    except BsecretsError as exc:  # a login refused, its variable unset, no such auth mount
        return base._replace(refused=exc)
    data = answer.get("data") if isinstance(answer, dict) else None
    return _described(vault, base, data if isinstance(data, dict) else {})


def _health(vault: VaultConnection, budget: float) -> tuple[BsecretsError | None, str]:
    """(why Vault cannot serve, or None; what answered, in words)."""
    address = vault.settings.address
    try:
        health = sys_health(vault, budget)
    except BsecretsError as exc:
        return exc, ""
    version = f"version {health.get('version', '?')}"
    if not health.get("initialized", True):
        why = f"Vault at {address} is not initialized"
        hint = "initialize and unseal it ('vault operator init', then unseal)"
        return BackendUnavailable(why, hint=hint), f"{version}, not initialized"
    if health.get("sealed"):
        why = f"Vault at {address} is sealed: it serves no secret until unsealed"
        hint = "unseal it ('bao operator unseal' / 'vault operator unseal')"
        return BackendUnavailable(why, hint=hint), f"{version}, sealed"
    return None, f"{version}, unsealed" + (" (standby)" if health.get("standby") else "")


def _source(vault: VaultConnection) -> str:
    """Where the token comes from, by the names of its variables or files."""
    auth, given = vault.auth, vault.settings.auth
    if auth.method == "token":
        return given.get("token_env") or f"{auth.source} or ~/.vault-token"
    return f"{auth.method} login at auth/{given.get('mount', auth.method)} ({auth.source})"


def _refusal(vault: VaultConnection, exc: VaultHTTPError) -> BsecretsError:
    env, auth = vault.env, vault.auth
    said = exc.detail or f"HTTP {exc.status}"
    if not exc.is_denied:
        return BsecretsError(f"Vault refused the token lookup in environment '{env}' ({said})")
    if auth.method == "token":
        hint = (
            f"log in again ('vault login' / 'bao login') and export {auth.source}, "
            "or ask for a token with the policy 'bsecrets vault policy' prints"
        )
    else:
        hint = (
            f"the {auth.method} login succeeded: give its role the default policy "
            "(it allows auth/token/lookup-self) besides bsecrets' own"
        )
    return Denied(
        f"Vault refused the token of environment '{env}' ({said}): it is invalid, expired "
        "or revoked, or its policies do not allow auth/token/lookup-self",
        hint=hint,
    )


def _described(
    vault: VaultConnection, base: BackendIdentity, data: dict[str, Any]
) -> BackendIdentity:
    policies = sorted({str(p) for p in (data.get("policies") or [])})
    about = [f"auth {vault.auth.method}", f"policies {', '.join(policies) or 'none'}"]
    if data.get("entity_id"):
        about.append(f"entity {data['entity_id']}")
    meta = data.get("meta")
    role = meta.get("role_name") if isinstance(meta, dict) else None
    if role:
        about.append(f"role {role}")
    if data.get("type") and data["type"] != "service":
        about.append(f"{data['type']} token")
    ttl = int(data.get("ttl") or 0)
    return base._replace(
        principal=str(data.get("display_name") or "?"),
        about=tuple(about),
        root="root" in policies,
        temporary=ttl > 0,
        expires_at=vault.auth.clock() + timedelta(seconds=ttl) if ttl > 0 else None,
        renewable=bool(data.get("renewable")),
        renews_itself=vault.auth.method != "token",
    )
