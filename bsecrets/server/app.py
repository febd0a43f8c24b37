"""The REST API of ``bsecrets serve`` (docs/server.md): FastAPI over the façade.

Each request carries a pipeline token (``Authorization: Bearer bst1...``, made with
``bsecrets token issue``) and is served by a SecretsManager unlocked with that token
alone: the same access checks (the token principal's grants, roles and scopes), the
same audit events, the same errors. The server holds no standing key: it decrypts
only with the key material the request's token carries.

Values travel in response and request bodies, never in a URL; names may be in paths.
Errors are one JSON shape, ``{"error", "hint", "kind"}``, with a status from
server/errors.py. Rate limits per token and per client address (slowapi): 429 with
Retry-After.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded

from bsecrets import __version__
from bsecrets.cli.hints import hint_for
from bsecrets.errors import BsecretsError, TokenInvalid, UsageError, ValueTooLarge
from bsecrets.models import MAX_VALUE_BYTES
from bsecrets.server.errors import body_of, status_of

MAX_BODY = 2 * 1024 * 1024  # a value is at most 1 MiB; base64 and JSON around it


class PutBody(BaseModel):
    value: str = Field(description="The new value: UTF-8 text, or base64 with encoding")
    encoding: str = Field("utf-8", pattern="^(utf-8|base64)$")
    tags: dict[str, str] | None = None
    description: str | None = None


class RollbackBody(BaseModel):
    to: int = Field(ge=1, description="The version whose value becomes the next one")


def _value_json(value: bytes) -> dict[str, str]:
    try:
        return {"value": value.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode(), "encoding": "base64"}


def create_app(profile: Path, *, rate: str = "120/minute", environ: dict[str, str]) -> FastAPI:
    """The API for the profile at ``profile``; ``rate``: per token and per address."""
    from bsecrets.config.cache import load_profile_cached
    from bsecrets.services.credentials import credentials_for
    from bsecrets.services.manager import SecretsManager

    def client_key(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def token_key(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        return "token:" + auth.rpartition(".")[0][-40:] if auth else client_key(request)

    limiter = Limiter(key_func=client_key, default_limits=[rate])
    app = FastAPI(title="bsecrets", version=__version__, openapi_url="/v1/openapi.json",
                  docs_url=None, redoc_url=None)  # fmt: skip
    app.state.limiter = limiter

    @app.exception_handler(BsecretsError)
    async def bsecrets_error(request: Request, exc: BsecretsError) -> JSONResponse:
        return JSONResponse(body_of(exc, hint_for(exc)), status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        error = UsageError(f"invalid request: {where}: {first.get('msg', 'not valid')}")
        return JSONResponse(body_of(error, "see /v1/openapi.json"), status_code=400)

    @app.exception_handler(RateLimitExceeded)
    async def rate_limited(request: Request, exc: RateLimitExceeded) -> JSONResponse:
        import time

        limit, args = request.state.view_rate_limit
        reset, _remaining = limiter.limiter.get_window_stats(limit, *args)
        wait = max(1, int(reset - time.time()) + 1)
        return JSONResponse(
            {"error": f"too many requests ({exc.detail})", "hint": f"retry in {wait} s",
             "kind": "rate_limited"},
            status_code=429, headers={"Retry-After": str(wait)},
        )  # fmt: skip

    @app.middleware("http")
    async def bounded(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            exc = ValueTooLarge(f"request body over {MAX_BODY} bytes")
            return JSONResponse(body_of(exc, None), status_code=413)
        return await call_next(request)

    def manager(authorization: str | None = Header(default=None)) -> Iterator[SecretsManager]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenInvalid(
                "no token: send 'Authorization: Bearer <token>'",
                hint="make one with 'bsecrets token issue -e ENV --role read'",
            )
        from bsecrets.config.settings import ENV_PASSPHRASE, ENV_SESSION, ENV_TOKEN, Settings

        variables = {k: v for k, v in environ.items() if k not in (ENV_PASSPHRASE, ENV_SESSION)}
        variables[ENV_TOKEN] = token.strip()
        settings = Settings.resolve(profile=str(profile), env=None, json=True, quiet=True,
                                    no_color=True, environ=variables)  # fmt: skip
        core = SecretsManager(load_profile_cached(profile), credentials_for(settings, None),
                              environ=settings.environ)  # fmt: skip
        try:
            yield core
        finally:
            core.close()

    Core = Depends(manager)

    @app.get("/v1/health")
    @limiter.limit(rate, key_func=token_key)
    def health(request: Request, core: SecretsManager = Core) -> dict[str, Any]:
        from bsecrets.services.status_report import status_document

        return status_document(core)

    @app.get("/v1/envs")
    @limiter.limit(rate, key_func=token_key)
    def environments(request: Request, core: SecretsManager = Core) -> dict[str, Any]:
        return {"default": core.profile.default_env,
                "environments": [{"name": e.name, "backend": e.backend}
                                 for e in core.profile.environments.values()]}  # fmt: skip

    @app.get("/v1/envs/{env}/secrets")
    @limiter.limit(rate, key_func=token_key)
    def ls(request: Request, env: str, prefix: str = "", core: SecretsManager = Core) -> Any:
        return [{"name": s.name, "version": s.version, "updated_at": s.updated_at.isoformat(),
                 "tags": s.tags} for s in core.list_secrets(env, prefix)]  # fmt: skip

    @app.get("/v1/envs/{env}/secrets/{name:path}/history")
    @limiter.limit(rate, key_func=token_key)
    def history(request: Request, env: str, name: str, core: SecretsManager = Core) -> Any:
        return [{"version": v.version, "created_at": v.created_at.isoformat(),
                 "created_by": v.created_by, "state": str(v.state)}
                for v in core.history(env, name)]  # fmt: skip

    @app.get("/v1/envs/{env}/secrets/{name:path}")
    @limiter.limit(rate, key_func=token_key)
    def get(
        request: Request, env: str, name: str, version: int | None = None,
        core: SecretsManager = Core,
    ) -> dict[str, Any]:  # fmt: skip
        secret = core.get(env, name, version)
        return {"name": secret.name, "env": secret.env, "version": secret.version,
                **_value_json(secret.value), "created_at": secret.created_at.isoformat(),
                "created_by": secret.created_by, "tags": secret.tags,
                "description": secret.description, "stale": secret.stale}  # fmt: skip

    @app.put("/v1/envs/{env}/secrets/{name:path}")
    @limiter.limit(rate, key_func=token_key)
    def put(
        request: Request, env: str, name: str, body: PutBody,
        if_match: str | None = Header(default=None), core: SecretsManager = Core,
    ) -> dict[str, Any]:  # fmt: skip
        value = _decoded(body)
        written = core.put(env, name, value, tags=body.tags, description=body.description,
                           if_version=_version(if_match))  # fmt: skip
        return {"name": written.name, "env": written.env, "version": written.version}

    @app.delete("/v1/envs/{env}/secrets/{name:path}")
    @limiter.limit(rate, key_func=token_key)
    def rm(request: Request, env: str, name: str, core: SecretsManager = Core) -> Any:
        core.delete(env, name)
        return {"name": name, "env": env, "deleted": True}

    @app.post("/v1/envs/{env}/secrets/{name:path}/restore")
    @limiter.limit(rate, key_func=token_key)
    def restore(request: Request, env: str, name: str, core: SecretsManager = Core) -> Any:
        summary = core.restore(env, name)
        return {"name": summary.name, "env": env, "version": summary.version}

    @app.post("/v1/envs/{env}/secrets/{name:path}/rollback")
    @limiter.limit(rate, key_func=token_key)
    def rollback(
        request: Request, env: str, name: str, body: RollbackBody,
        if_match: str | None = Header(default=None), core: SecretsManager = Core,
    ) -> Any:  # fmt: skip
        written = core.rollback(env, name, body.to, if_version=_version(if_match))
        return {"name": name, "env": env, "version": written.version}

    return app


def _decoded(body: PutBody) -> bytes:
    if body.encoding == "base64":
        try:
            value = base64.b64decode(body.value, validate=True)
        except ValueError:
            raise UsageError("value is not base64", hint='send "encoding": "utf-8"') from None
    else:
        value = body.value.encode("utf-8")
    if len(value) > MAX_VALUE_BYTES:
        raise ValueTooLarge(f"value over {MAX_VALUE_BYTES} bytes")
    return value


def _version(if_match: str | None) -> int | None:
    """``If-Match: 3`` (or ``"3"``): the version the write expects to replace."""
    if if_match is None:
        return None
    text = if_match.strip().strip('"')
    if not text.isdigit():
        raise UsageError("If-Match takes a version number", hint='If-Match: "3"')
    return int(text)
