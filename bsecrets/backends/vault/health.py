"""The Vault adapter's health indicators for ``bsecrets status``: reachability,
seal status, the token's TTL, whether it may record metadata (authors, tags,
descriptions) and the latency of the last request. Each check has a short
budget (a status page must not hang for the full retry budget). They ask through
the environment's VaultConnection, as the adapter does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bsecrets.backends.vault.errors import VaultHTTPError, translate
from bsecrets.errors import BsecretsError
from bsecrets.health import HealthIndicator
from bsecrets.timeutil import short_span

if TYPE_CHECKING:
    from bsecrets.backends.vault.connection import VaultConnection

TOKEN_TTL_WARN_S = 60


def sys_health(vault: VaultConnection, budget: float) -> dict[str, Any]:
    """Vault's ``sys/health`` (unauthenticated; a standby answers too), within
    ``budget`` seconds; BsecretsError when Vault does not answer."""
    client = vault.client
    with client.adapter.operation(budget):
        answer = client.adapter.get(
            "/v1/sys/health",
            params={"standbyok": "true", "perfstandbyok": "true"},
            raise_exception=False,
        )
    return _json(answer)


def indicators(vault: VaultConnection, budget: float) -> list[HealthIndicator]:
    """Every indicator, each check within ``budget`` seconds."""
    address = vault.settings.address
    try:
        health = sys_health(vault, budget)
    except BsecretsError as exc:
        skipped = "not checked: Vault is unreachable"
        return [
            HealthIndicator("reachable", False, exc.message),
            HealthIndicator("sealed", False, skipped),
            HealthIndicator("token", False, skipped),
            HealthIndicator("metadata", False, skipped),
            _latency(vault),
        ]
    version = health.get("version", "?")
    out = [HealthIndicator("reachable", True, f"{address} (version {version})")]
    if not health.get("initialized", True):
        out.append(HealthIndicator("sealed", False, "not initialized"))
    elif health.get("sealed"):
        out.append(HealthIndicator("sealed", False, "sealed: unseal it to serve secrets"))
    else:
        standby = " (standby)" if health.get("standby") else ""
        out.append(HealthIndicator("sealed", True, f"unsealed{standby}"))
    out.append(_token(vault, budget))
    out.append(_metadata(vault, budget))
    out.append(_latency(vault))
    return out


def _json(answer: Any) -> dict[str, Any]:
    if isinstance(answer, dict):
        return answer
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _token(vault: VaultConnection, budget: float) -> HealthIndicator:
    client = vault.client
    try:
        with client.adapter.operation(budget):
            data = vault.call(lambda c: c.adapter.get("/v1/auth/token/lookup-self"))["data"]
    except VaultHTTPError as exc:
        message = translate(exc, what="looking up the token", env=vault.env).message
        return HealthIndicator("token", False, message)
    except BsecretsError as exc:
        return HealthIndicator("token", False, exc.message)
    ttl = int(data.get("ttl") or 0)
    renewable = ", renewable" if data.get("renewable") else ""
    if ttl == 0:
        return HealthIndicator("token", True, f"does not expire ({vault.auth.method})", 0)
    detail = f"expires in {short_span(ttl)}{renewable} ({vault.auth.method})"
    return HealthIndicator("token", ttl > TOKEN_TTL_WARN_S, detail, ttl)


def _metadata(vault: VaultConnection, budget: float) -> HealthIndicator:
    """May the token record what KV v2 does not keep itself (authors, tags, description)?
    A token that may write values but not patch the metadata stores values whose author
    is not recorded, and a put with tags or a description is refused."""
    s = vault.settings
    sample = f"{s.prefix}/any" if s.prefix else "any"
    data_path, meta_path = f"{s.mount}/data/{sample}", f"{s.mount}/metadata/{sample}"
    glob = f"{s.mount}/metadata/{s.prefix}/*" if s.prefix else f"{s.mount}/metadata/*"
    body = {"paths": [data_path, meta_path]}
    client = vault.client
    try:
        with client.adapter.operation(budget):
            answer = vault.call(lambda c: c.adapter.post("/v1/sys/capabilities-self", json=body))
    except VaultHTTPError as exc:
        return HealthIndicator("metadata", True, f"not checked: {exc.detail or exc}")
    except BsecretsError as exc:
        return HealthIndicator("metadata", False, exc.message)
    data = answer.get("data") if isinstance(answer, dict) else None
    caps = data if isinstance(data, dict) else {}
    writes = {"create", "update", "root"} & set(caps.get(data_path) or [])
    patch = {"patch", "root"} & set(caps.get(meta_path) or [])
    if not writes:
        return HealthIndicator("metadata", True, "read-only token: it writes nothing")
    if patch:
        return HealthIndicator("metadata", True, f"authors, tags, descriptions ({glob})")
    return HealthIndicator(
        "metadata",
        False,
        f"the token may write values but not patch {glob}: authors are not recorded, "
        "a put with --tag or --description is refused",
    )


def _latency(vault: VaultConnection) -> HealthIndicator:
    seconds = vault.last_latency_s
    if seconds is None:
        return HealthIndicator("latency", True, "no request yet")
    ms = round(seconds * 1000, 1)
    return HealthIndicator("latency", True, f"{ms} ms (last request)", ms)
