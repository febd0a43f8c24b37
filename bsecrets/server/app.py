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
import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.exceptions import HTTPException as StarletteHTTPException

from bsecrets import __version__
from bsecrets.cli.hints import hint_for
from bsecrets.errors import (
    BsecretsError,
    SessionInvalid,
    TokenInvalid,
    UsageError,
    ValueTooLarge,
    WrongPassphrase,
)
from bsecrets.models import (
    MAX_DESCRIPTION,
    MAX_TAG_VALUE,
    MAX_TAGS,
    MAX_VALUE_BYTES,
    Confirmation,
)
from bsecrets.server.admin_routes import add_admin_routes
from bsecrets.server.body_limit import BodyLimit
from bsecrets.server.core import CorePool
from bsecrets.server.errors import body_of, status_of
from bsecrets.server.metrics_route import add_metrics_route
from bsecrets.server.pass_through import is_stateless
from bsecrets.server.routing import TAG_KEY_PATTERN, Env, IfMatch, Name, value_json
from bsecrets.server.sign_in import SIGN_IN_AGAIN, SignIns, is_sign_in
from bsecrets.server.ui import mount_ui
from bsecrets.server.workflows import add_workflow_routes
from bsecrets.timeutil import iso

MAX_BODY = 2 * 1024 * 1024  # a value is at most 1 MiB; base64 and JSON around it


TagKey = Annotated[str, StringConstraints(pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE)]
# keys outside the pattern are refused: say so in the schema (patternProperties alone
# would leave any other key allowed)
Tags = Annotated[
    dict[TagKey, TagValue],
    Field(max_length=MAX_TAGS, json_schema_extra={"additionalProperties": False}),
]


# non-empty standard base64 with its padding
BASE64 = (
    r"^(?:(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
    r"|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$"
)


class PutText(BaseModel):
    """A value that is text (UTF-8 on the wire and in the store)."""

    value: str = Field(min_length=1, description="The new value")
    tags: Tags | None = None
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)


class PutBytes(BaseModel):
    """A value of any bytes, base64 on the wire."""

    value_base64: str = Field(pattern=BASE64, description="The new value's bytes, base64")
    tags: Tags | None = None
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)


class ErrorBody(BaseModel):
    """Every error: the CLI's --json error without its exit code (docs/server.md)."""

    error: str
    hint: str | None
    kind: str


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "usage: the request is not valid"), (401, "no token, or not a valid one"),
        (403, "the token's principal may not do this"), (404, "no such environment or secret"),
        (409, "conflict"), (412, "If-Match named another version: nothing written"),
        (413, "body or value too large"), (429, "rate limited (Retry-After)"),
        (500, "integrity or unexpected error"), (503, "the store is unreachable"),
    )
}  # fmt: skip


class RollbackBody(BaseModel):
    to: int = Field(ge=1, description="The version whose value becomes the next one")


class SignInBody(BaseModel):
    """A person signing in (docs/server.md, "Signing in as a principal")."""

    principal: str = Field("owner", pattern=r"^[a-z][a-z0-9._-]{0,63}$",
                           description="owner, or a principal's name")  # fmt: skip
    passphrase: str = Field(min_length=1, max_length=1024)
    ttl_seconds: int = Field(3600, ge=60, le=28800, description="How long the sign-in lasts")


def create_app(
    profile: FilePath, *, rate: str = "120/minute", environ: dict[str, str],
    metrics_token: str | None = None,
) -> FastAPI:  # fmt: skip
    """The API for the profile at ``profile``; ``rate``: per token and per address;
    ``metrics_token``: the bearer of /metrics (none: /metrics is off)."""
    from bsecrets.services.manager import SecretsManager

    def client_key(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def token_key(request: Request) -> str:
        """A bearer's own bucket (a digest of the whole header: pipeline tokens, sign-ins
        and Vault tokens alike), else the client address's."""
        auth = request.headers.get("authorization", "")
        if not auth:
            return client_key(request)
        return "token:" + hashlib.sha256(auth.encode()).hexdigest()[:32]

    limiter = Limiter(key_func=client_key, default_limits=[rate])
    pool = CorePool(profile, environ, stateless=is_stateless(profile))
    sign_ins = SignIns(profile, environ)
    app = FastAPI(title="bsecrets", version=__version__, openapi_url="/v1/openapi.json",
                  docs_url=None, redoc_url=None, responses=ERRORS)  # fmt: skip
    app.router.add_event_handler("shutdown", pool.close)
    app.router.add_event_handler("shutdown", sign_ins.close)
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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Starlette's own answers (an unknown path, a method not allowed, a body that is
        not JSON) in the one error shape."""
        kinds = {404: "not_found", 405: "method_not_allowed", 429: "rate_limited"}
        kind = kinds.get(exc.status_code, "usage_error")
        wait = (exc.headers or {}).get("Retry-After")
        hint = f"retry in {wait} s" if wait else "see /v1/openapi.json"
        body = {"error": str(exc.detail), "hint": hint, "kind": kind}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

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

    app.add_middleware(BodyLimit, limit=MAX_BODY)

    def manager(
        request: Request,
        authorization: str | None = Header(default=None),
        x_bsecrets_reason: str | None = Header(default=None),
        x_bsecrets_otp: str | None = Header(default=None),
    ) -> Iterator[SecretsManager]:
        """The request's core, for its bearer: a pipeline token, or a principal's
        sign-in; for a protected environment, the reason and one-time code headers."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise TokenInvalid(
                "no token: send 'Authorization: Bearer <token>'",
                hint="make one with 'bsecrets token issue -e ENV --role read'",
            )
        address = client_key(request)
        confirmation = Confirmation(reason=x_bsecrets_reason, yes=True,
                                    one_time_code=lambda: x_bsecrets_otp)  # fmt: skip
        opened = pool.client_core  # a bearer from the client: never a vault session token
        if is_sign_in(token):
            pool.guard.check(address)
            try:
                token = sign_ins.resolve(token).session_token
            except SessionInvalid as exc:
                pool.refused(address, "unknown", exc)
                raise
            opened = pool.core  # the vault session this server started for the sign-in
        with opened(token, address, confirmation) as (core, _principal):
            yield core

    Core = Depends(manager)

    @app.post("/v1/sign-in")
    @limiter.limit(rate)
    def sign_in(request: Request, body: SignInBody) -> dict[str, Any]:
        address = client_key(request)
        pool.guard.check(address)
        try:
            bearer, held = sign_ins.sign_in(body.principal, body.passphrase,
                                            timedelta(seconds=body.ttl_seconds),
                                            f"bsecrets serve from {address}")  # fmt: skip
        except WrongPassphrase:
            pool.guard.failed(address)  # the unlock's own event records the refusal
            raise
        return {"token": bearer, "principal": held.principal, "expires_at": iso(held.expires_at)}

    @app.post("/v1/sign-out")
    @limiter.limit(rate)
    def sign_out(request: Request, authorization: str | None = Header(default=None)) -> Any:
        bearer = (authorization or "").partition(" ")[2].strip()
        held = sign_ins.sign_out(bearer) if is_sign_in(bearer) else None
        if held is None:
            raise SessionInvalid("not signed in: nothing to sign out", hint=SIGN_IN_AGAIN)
        pool.drop(held.session_token)
        return {"principal": held.principal, "signed_out": True}

    add_workflow_routes(app, limiter, rate, token_key, Core)
    add_admin_routes(app, limiter, rate, token_key, Core)

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with optional headers as plain strings: a header is absent
        or a string on the wire, never JSON null (pydantic writes anyOf [string, null])."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for item in document.get("paths", {}).values():
                for operation in item.values():
                    for param in operation.get("parameters", []):
                        schema = param.get("schema", {})
                        if param.get("in") == "header" and "anyOf" in schema:
                            kept = [s for s in schema["anyOf"] if s.get("type") != "null"]
                            schema.pop("anyOf")
                            schema.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

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
    def ls(request: Request, env: Env, prefix: str = "", core: SecretsManager = Core) -> Any:
        return [{"name": s.name, "version": s.version, "updated_at": s.updated_at.isoformat(),
                 "tags": s.tags} for s in core.list_secrets(env, prefix)]  # fmt: skip

    @app.get("/v1/envs/{env}/history/{name:path}")
    @limiter.limit(rate, key_func=token_key)
    def history(request: Request, env: Env, name: Name, core: SecretsManager = Core) -> Any:
        return [{"version": v.version, "created_at": v.created_at.isoformat(),
                 "created_by": v.created_by, "state": str(v.state)}
                for v in core.history(env, name)]  # fmt: skip

    @app.get("/v1/envs/{env}/secrets/{name:path}")
    @limiter.limit(rate, key_func=token_key)
    def get(
        request: Request, env: Env, name: Name, version: int | None = Query(None, ge=1),
        core: SecretsManager = Core,
    ) -> dict[str, Any]:  # fmt: skip
        secret = core.get(env, name, version)
        return {"name": secret.name, "env": secret.env, "version": secret.version,
                **value_json(secret.value), "created_at": secret.created_at.isoformat(),
                "created_by": secret.created_by, "tags": secret.tags,
                "description": secret.description, "stale": secret.stale}  # fmt: skip

    @app.put("/v1/envs/{env}/secrets/{name:path}")
    @limiter.limit(rate, key_func=token_key)
    def put(
        request: Request, env: Env, name: Name, body: PutText | PutBytes,
        if_match: IfMatch = None,
        core: SecretsManager = Core,
    ) -> dict[str, Any]:  # fmt: skip
        value = _decoded(body)
        written = core.put(env, name, value, tags=body.tags, description=body.description,
                           if_version=_version(if_match))  # fmt: skip
        return {"name": written.name, "env": written.env, "version": written.version}

    @app.delete("/v1/envs/{env}/secrets/{name:path}")
    @limiter.limit(rate, key_func=token_key)
    def rm(request: Request, env: Env, name: Name, core: SecretsManager = Core) -> Any:
        core.delete(env, name)
        return {"name": name, "env": env, "deleted": True}

    @app.post("/v1/envs/{env}/restore/{name:path}")
    @limiter.limit(rate, key_func=token_key)
    def restore(request: Request, env: Env, name: Name, core: SecretsManager = Core) -> Any:
        summary = core.restore(env, name)
        return {"name": summary.name, "env": env, "version": summary.version}

    @app.post("/v1/envs/{env}/rollback/{name:path}")
    @limiter.limit(rate, key_func=token_key)
    def rollback(
        request: Request, env: Env, name: Name, body: RollbackBody, if_match: IfMatch = None,
        core: SecretsManager = Core,
    ) -> Any:  # fmt: skip
        written = core.rollback(env, name, body.to, if_version=_version(if_match))
        return {"name": name, "env": env, "version": written.version}

    add_metrics_route(app, pool, metrics_token)
    mount_ui(app, pool, sign_ins, environ)
    return app


def _decoded(body: PutText | PutBytes) -> bytes:
    if isinstance(body, PutBytes):
        value = base64.b64decode(body.value_base64)
    else:
        try:
            value = body.value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (\ud800) is JSON but not text
            raise UsageError("value is not Unicode text", hint="send value_base64") from None
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
