"""The API's routes beyond single secrets (docs/server.md): who the token is, rotation,
promotion, break-glass status, and the audit log (the owner's: a token principal is
refused, 403, as on the command line). Each is the same service call as the CLI's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from slowapi import Limiter

from bsecrets.server.routing import Env, Name


class RotateBody(BaseModel):
    generate: str | None = Field(None, description="A generator: password:32, hex:16, ...")
    value: str | None = Field(None, min_length=1, description="The new value itself")
    strategy: str | None = Field(None, pattern="^(immediate|graceful|blue-green)$")


class ReadBody(BaseModel):
    only: list[str] = Field(
        default_factory=list, max_length=1000,
        description="Names or globs (as exec --only); none: every secret",
    )  # fmt: skip


class PromoteBody(BaseModel):
    source: str = Field(alias="from", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    target: str = Field(alias="to", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    only: list[str] = Field(default_factory=list, description="Names or globs (as --only)")
    dry_run: bool = False


def add_workflow_routes(
    app: FastAPI, limiter: Limiter, rate: str, key: Callable[[Request], str], core: Any
) -> None:
    """``core``: the dependency that gives a request its SecretsManager."""
    from bsecrets.services.manager import SecretsManager

    @app.get("/v1/whoami")
    @limiter.limit(rate, key_func=key)
    def whoami(request: Request, manager: SecretsManager = core) -> dict[str, Any]:
        from bsecrets.services.principals import whoami as who

        return who(manager)

    @app.post("/v1/envs/{env}/rotate/{name:path}")
    @limiter.limit(rate, key_func=key)
    def rotate(
        request: Request, env: Env, name: Name, body: RotateBody, manager: SecretsManager = core,
    ) -> dict[str, Any]:  # fmt: skip
        from bsecrets.services import rotation

        value = body.value.encode("utf-8") if body.value is not None else None
        done = rotation.start(manager, env, name, value=value, generator=body.generate,
                              strategy=body.strategy)  # fmt: skip
        return done.to_public()

    @app.post("/v1/envs/{env}/read")
    @limiter.limit(rate, key_func=key)
    def read(
        request: Request, env: Env, body: ReadBody, manager: SecretsManager = core
    ) -> dict[str, Any]:  # fmt: skip
        """The current values of several secrets in one audited read (as ``exec`` and the
        SDK's ``environ()`` read them): name -> value (text, or base64)."""
        from bsecrets.server.routing import value_json
        from bsecrets.services.transfer import read_chosen

        values = read_chosen(manager, env, body.only)
        return {"env": manager.env_name(env),
                "values": {name: value_json(value) for name, value in values.items()}}  # fmt: skip

    @app.get("/v1/rotations")
    @limiter.limit(rate, key_func=key)
    def rotations(request: Request, manager: SecretsManager = core) -> list[dict[str, Any]]:
        from bsecrets.services import rotation

        return rotation.status(manager)

    @app.post("/v1/promote")
    @limiter.limit(rate, key_func=key)
    def promote(request: Request, body: PromoteBody, manager: SecretsManager = core) -> Any:
        from bsecrets.services import promotion, promotion_plan

        route = promotion_plan.route_for(manager, body.source, body.target, None, body.only)
        plan = promotion_plan.make_plan(manager, body.source, body.target, route, body.only)
        out: dict[str, Any] = {"plan": plan.to_public()}
        if not body.dry_run and plan.writes:
            out["promotion"] = promotion.promote(manager, plan).to_public()
        return out

    @app.get("/v1/break-glass")
    @limiter.limit(rate, key_func=key)
    def break_glass(request: Request, manager: SecretsManager = core) -> dict[str, Any]:
        from bsecrets.services import break_glass as glass

        return glass.status(manager)

    @app.get("/v1/audit")
    @limiter.limit(rate, key_func=key)
    def audit(request: Request, limit: int = 100, manager: SecretsManager = core) -> Any:
        from bsecrets.audit.query import EventFilter
        from bsecrets.services.audit_ops import query

        return query(manager, EventFilter(), max(1, min(limit, 1000)))
