"""``GET /metrics`` (docs/observability.md): the server's live metrics for Prometheus.

Every core the server makes (API, web UI, refused credentials) carries one
``OperationMetrics`` as an observer of its audited operations, so the counters and
latencies are those of the audit events this process wrote since it started.

Who may scrape: the counters show every environment's activity (which environments
are read, how often, refused how often), which no single token's grant covers. So
/metrics takes neither pipeline tokens nor sign-ins, but one bearer of its own, read
at start from ``--metrics-token-file`` (a file only its owner can read; at least 32
characters). Without it, /metrics is off (404). A wrong bearer is refused like any
other (401, an audit event, counted against the address: server/auth_guard.py).
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Header, Request
from fastapi.responses import Response

from bsecrets.errors import NotFound, TokenInvalid, UsageError

if TYPE_CHECKING:
    from bsecrets.metrics.registry import OperationMetrics
    from bsecrets.server.core import CorePool

MIN_TOKEN = 32  # characters: e.g. 'openssl rand -hex 32' gives 64
HOW = "make one with 'openssl rand -hex 32', in a file only you can read (chmod 600)"


def read_metrics_token(path: Path) -> str:
    """The scrape bearer in ``path`` (``--metrics-token-file``): a file only its owner
    reads, holding at least 32 characters (surrounding whitespace dropped)."""
    from bsecrets.files import check_private_file

    check_private_file(path, what="--metrics-token-file")
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--metrics-token-file {path} can not be read ({type(exc).__name__})", hint=HOW
        ) from None
    if len(token) < MIN_TOKEN or any(c.isspace() for c in token):
        raise UsageError(
            f"--metrics-token-file {path} must hold one token of at least {MIN_TOKEN} "
            "characters, without spaces",
            hint=HOW,
        )
    return token


def add_metrics_route(app: FastAPI, pool: CorePool, token: str | None) -> None:
    """``GET /metrics``; with a ``token``, every core of ``pool`` feeds the metrics."""
    metrics: OperationMetrics | None = None
    if token is not None:
        from bsecrets.config.cache import load_profile_cached
        from bsecrets.services.metrics_report import metrics_for

        metrics = metrics_for(load_profile_cached(pool.profile))
        pool.observers.append(metrics)

    @app.get("/metrics", include_in_schema=False)
    def scrape(request: Request, authorization: str | None = Header(default=None)) -> Response:
        if token is None or metrics is None:
            raise NotFound(
                "metrics are off on this server",
                hint="start it with --metrics-token-file FILE (docs/observability.md)",
            )
        address = request.client.host if request.client else "unknown"
        pool.guard.check(address)
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            refused = TokenInvalid(
                "not the metrics bearer", hint="send the token of --metrics-token-file"
            )
            pool.refused(address, "metrics", refused)
            raise refused
        from prometheus_client import CONTENT_TYPE_LATEST

        from bsecrets.services.metrics_report import chain_length

        count = chain_length(pool.profile)
        if count is not None:
            metrics.audit_events = count
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
