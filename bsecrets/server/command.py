"""``bsecrets serve`` (registered by name in the CLI's command table, so the CLI never
imports the server: FastAPI loads only for this command)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from bsecrets.cli.context import obj
from bsecrets.errors import UsageError


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8270,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", metavar="FILE", help="TLS certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", metavar="FILE", help="TLS private key (PEM).")
    ] = None,
    rate: Annotated[
        str, typer.Option("--rate", help="Requests allowed per token and per address.")
    ] = "120/minute",
    metrics_token_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-token-file",
            metavar="FILE",
            help="Serve /metrics to the bearer of the token in FILE (0600, at least 32 "
            "characters); without it /metrics is off.",
        ),
    ] = None,
) -> None:
    """Serve the REST API (/v1, OpenAPI at /v1/openapi.json) and the web UI (/ui) for
    this profile: each request, and each UI sign-in, authenticates with a pipeline token
    or a principal's passphrase; without a vault file, with the caller's own Vault token.
    Loopback only unless TLS is given (or --insecure-http).

    Examples:
      bsecrets serve
      bsecrets serve --host 0.0.0.0 --port 8443 --tls-cert cert.pem --tls-key key.pem
      bsecrets serve --metrics-token-file /etc/bsecrets/metrics.token
    """
    cli = obj(ctx)
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together", hint="give both, or neither")
    if not _loopback(host) and tls_cert is None and not cli.settings.insecure_http:
        raise UsageError(
            f"serving on {host} without TLS would send tokens and values in clear",
            hint="give --tls-cert and --tls-key, or bind 127.0.0.1 (--insecure-http to insist)",
        )
    try:
        import uvicorn

        from bsecrets.server.app import create_app
    except ImportError as exc:
        raise UsageError(
            f"bsecrets serve needs its extra ({exc.name} is missing)",
            hint="pip install 'bsecrets[server]'",
        ) from None
    from bsecrets.config.cache import load_profile_cached
    from bsecrets.server.pass_through import is_stateless, left_out, served_profile

    path = cli.profile_path()
    if is_stateless(path):  # no vault file: each caller's own Vault token (docs/server.md)
        profile = load_profile_cached(path)
        served = served_profile(profile)
        skipped = left_out(profile)
        cli.warn(f"no vault file: serving {', '.join(served.environments)} with each "
                 "caller's own Vault token" + (f"; not served: {', '.join(skipped)}"
                                               if skipped else ""))  # fmt: skip
    token = None
    if metrics_token_file is not None:
        from bsecrets.server.metrics_route import read_metrics_token

        token = read_metrics_token(metrics_token_file)
    app = create_app(Path(path), rate=rate, environ=dict(cli.settings.environ), metrics_token=token)
    uvicorn.run(
        app, host=host, port=port, log_level="info",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        timeout_graceful_shutdown=10,  # an idle keep-alive client must not hold a stop
    )  # fmt: skip
