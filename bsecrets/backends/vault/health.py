"""The Vault adapter's health indicators for ``bsecrets status``: reachability,
seal status, the token's TTL, whether it may record metadata (authors, tags,
descriptions) and the latency of the last request. Each check has a short
budget (a status page must not hang for the full retry budget)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bsecrets.backends.vault.errors import VaultHTTPError, translate
from bsecrets.errors import BsecretsError
from bsecrets.health import HealthIndicator

if TYPE_CHECKING:
    from bsecrets.backends.vault.adapter import VaultAdapter

TOKEN_TTL_WARN_S = 60


def human(seconds: int) -> str:
    parts, rest = [], seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest or not parts:
        parts.append(f"{rest}s")
    return "".join(parts[:2])


def indicators(adapter: VaultAdapter, budget: float) -> list[HealthIndicator]:
    address = adapter.settings.address
    try:
        client = adapter.client
        with client.adapter.operation(budget):
            answer = client.adapter.get(
                "/v1/sys/health",
                params={"standbyok": "true", "perfstandbyok": "true"},
                raise_exception=False,
            )
    except BsecretsError as exc:
        skipped = "not checked: Vault is unreachable"
        return [
            HealthIndicator("reachable", False, exc.message),
            HealthIndicator("sealed", False, skipped),
            HealthIndicator("token", False, skipped),
            HealthIndicator("metadata", False, skipped),
            _latency(adapter),
        ]
    health = _json(answer)
    version = health.get("version", "?")
    out = [HealthIndicator("reachable", True, f"{address} (version {version})")]
    if not health.get("initialized", True):
        out.append(HealthIndicator("sealed", False, "not initialized"))
    elif health.get("sealed"):
        out.append(HealthIndicator("sealed", False, "sealed: unseal it to serve secrets"))
    else:
        standby = " (standby)" if health.get("standby") else ""
        out.append(HealthIndicator("sealed", True, f"unsealed{standby}"))
    out.append(_token(adapter, budget))
    out.append(_metadata(adapter, budget))
    out.append(_latency(adapter))
    return out


def _json(answer: Any) -> dict[str, Any]:
    if isinstance(answer, dict):
        return answer
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _token(adapter: VaultAdapter, budget: float) -> HealthIndicator:
    client = adapter.client
    try:
        with client.adapter.operation(budget):
            data = adapter._call(lambda c: c.adapter.get("/v1/auth/token/lookup-self"))["data"]
    except VaultHTTPError as exc:
        message = translate(exc, what="looking up the token", env=adapter.env).message
        return HealthIndicator("token", False, message)
    except BsecretsError as exc:
        return HealthIndicator("token", False, exc.message)
    ttl = int(data.get("ttl") or 0)
    renewable = ", renewable" if data.get("renewable") else ""
    if ttl == 0:
        return HealthIndicator("token", True, f"does not expire ({adapter.auth.method})", 0)
    detail = f"expires in {human(ttl)}{renewable} ({adapter.auth.method})"
    return HealthIndicator("token", ttl > TOKEN_TTL_WARN_S, detail, ttl)


def _metadata(adapter: VaultAdapter, budget: float) -> HealthIndicator:
    """May the token record what KV v2 does not keep itself (authors, tags, description)?
    A token that may write values but not patch the metadata stores values whose author
    is not recorded, and a put with tags or a description is refused."""
    s = adapter.settings
    sample = f"{s.prefix}/any" if s.prefix else "any"
    data_path, meta_path = f"{s.mount}/data/{sample}", f"{s.mount}/metadata/{sample}"
    glob = f"{s.mount}/metadata/{s.prefix}/*" if s.prefix else f"{s.mount}/metadata/*"
    body = {"paths": [data_path, meta_path]}
    client = adapter.client
    try:
        with client.adapter.operation(budget):
            answer = adapter._call(lambda c: c.adapter.post("/v1/sys/capabilities-self", json=body))
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


def _latency(adapter: VaultAdapter) -> HealthIndicator:
    seconds = adapter.client.adapter.last_latency_s if adapter._client is not None else None
    if seconds is None:
        return HealthIndicator("latency", True, "no request yet")
    ms = round(seconds * 1000, 1)
    return HealthIndicator("latency", True, f"{ms} ms (last request)", ms)
