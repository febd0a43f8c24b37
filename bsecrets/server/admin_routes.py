"""The owner's and the custodians' routes (docs/server.md, issue #18): the audit log
(search, verify, report), the principals, their grants and the pipeline tokens, and
break-glass for people signed in (a custodian's approval with its one-time code, a
request, a revocation). Each calls the service function of its CLI command, so the
access checks, the refusals and the audit events are the command's.

What the server does not do: activate a break-glass request. On the command line the
activation rebuilds the emergency key from the approvals and hands the requester a
vault session holding the environment's key; over HTTP that key would be rebuilt in
the server process and the session handed to a network client, which needs a design of
its own (docs/server.md, "No activation over HTTP"). The requester activates with the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from pydantic import BaseModel, Field
from slowapi import Limiter

from bsecrets.audit.events import Action, Outcome
from bsecrets.errors import UsageError
from bsecrets.models import MAX_REASON
from bsecrets.server.routing import ENV_PATTERN

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

MAX_EVENTS = 10_000  # the most events one audit search answers
DEFAULT_EVENTS = 100  # as GET /v1/audit
MAX_FILTER = 256  # characters of a glob or a text to find
MAX_WORDS = 4096  # characters of an offline share's words (as the CLI reads from stdin)
PRINCIPAL_PATTERN = r"^[a-z][a-z0-9._-]{0,63}$"  # services/principals.PRINCIPAL_NAME
REQUEST_ID_PATTERN = r"^[0-9a-fA-F]{12}$"  # a break-glass request's id
ANCHOR_PATTERN = r"^[0-9]{1,18}:[0-9a-fA-F]{64}$"  # SEQ:HEX, as 'audit anchor' prints it
# one line with something in it: services' validate_reason, stated in the schema
REASON_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
OUTCOME_PATTERN = "^(" + "|".join(Outcome) + ")$"
TIME_HELP = "A date (2026-11-01), a UTC time (2026-11-01T09:30:00Z) or an age (7d, 12h)"

# module level: FastAPI resolves the routes' annotations (strings) in this namespace
EnvQuery = Annotated[str | None, Query(pattern=ENV_PATTERN, max_length=63,
                                       description="Only this environment")]  # fmt: skip
Glob = Annotated[str | None, Query(min_length=1, max_length=MAX_FILTER)]
OutcomeQuery = Annotated[
    str | None, Query(pattern=OUTCOME_PATTERN, description="Only this outcome")
]
When = Annotated[str | None, Query(min_length=1, max_length=64, description=TIME_HELP)]
Limit = Annotated[int, Query(ge=1, le=MAX_EVENTS, description="The newest N events")]
Text = Annotated[str | None, Query(min_length=1, max_length=MAX_FILTER,
                                   description="Text to find in any field")]  # fmt: skip
PrincipalName = Annotated[str, Path(pattern=PRINCIPAL_PATTERN, max_length=64)]
RequestId = Annotated[str, Path(pattern=REQUEST_ID_PATTERN, description="From its request")]


class VerifyBody(BaseModel):
    """``audit verify``'s options."""

    anchor: str | None = Field(None, pattern=ANCHOR_PATTERN,
                               description="A head kept by a witness: SEQ:HEX")  # fmt: skip
    skip_archives: bool = Field(False, description="Check the live log only")


class GlassRequestBody(BaseModel):
    """``break-glass request``: the environment, the incident, how long, read or write."""

    env: str | None = Field(None, pattern=ENV_PATTERN, max_length=63,
                            description="A local environment (default: the profile's)")  # fmt: skip
    reason: str = Field(min_length=1, max_length=MAX_REASON, pattern=REASON_PATTERN,
                        description="The incident, on one line")  # fmt: skip
    ttl_seconds: int = Field(3600, ge=60, le=86400, description="How long (1 min to 24 h)")
    write: bool = Field(False, description="Ask for write access too")
    override: bool = Field(False, description="An admin: while an earlier one is unreviewed")


class ApproveBody(BaseModel):
    """A custodian's approval; ``words``: its share, when it holds it offline."""

    words: str | None = Field(None, min_length=1, max_length=MAX_WORDS,
                              description="An offline custodian's share words")  # fmt: skip


def add_admin_routes(
    app: FastAPI, limiter: Limiter, rate: str, key: Callable[[Request], str], core: Any
) -> None:
    """``core``: the dependency that gives a request its SecretsManager."""
    _audit_routes(app, limiter, rate, key, core)
    _access_routes(app, limiter, rate, key, core)
    _break_glass_routes(app, limiter, rate, key, core)


def _audit_routes(
    app: FastAPI, limiter: Limiter, rate: str, key: Callable[[Request], str], core: Any
) -> None:
    from bsecrets.services import audit_ops

    @app.get("/v1/audit/search")
    @limiter.limit(rate, key_func=key)
    def audit_search(
        request: Request, q: Text = None, env: EnvQuery = None, name: Glob = None,
        action: Glob = None, actor: Glob = None, outcome: OutcomeQuery = None,
        since: When = None, until: When = None, limit: Limit = DEFAULT_EVENTS,
        manager: SecretsManager = core,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """``audit search Q`` with its filters (without ``q``: ``audit log`` with them)."""
        what = Action.AUDIT_LOG if q is None else Action.AUDIT_SEARCH
        audit_ops.readable_log(manager, what)  # anyone else refused before the parameters
        if q is not None and not q.strip():
            raise UsageError("empty search text", hint="give some text in q, or leave q out")
        text = q.strip() if q is not None else None
        where = audit_ops.event_filter(manager, since, until, env, name, action, actor,
                                       outcome, text, dash="")  # fmt: skip
        return audit_ops.query(manager, where, limit, what)

    @app.post("/v1/audit/verify")
    @limiter.limit(rate, key_func=key)
    def audit_verify(
        request: Request, body: VerifyBody | None = None, manager: SecretsManager = core
    ) -> dict[str, Any]:
        """``audit verify --json``; a problem found is the error (audit_integrity_error)."""
        from bsecrets.audit.chain import Anchor

        audit_ops.readable_log(manager, Action.AUDIT_VERIFY)
        anchor = body.anchor if body is not None else None
        given = Anchor.parse(anchor) if anchor is not None else None
        archives = body is None or not body.skip_archives
        result = audit_ops.verify(manager, given, archives=archives)
        if (found := audit_ops.problem_error(result)) is not None:
            raise found
        return result.to_dict()

    @app.get("/v1/audit/report")
    @limiter.limit(rate, key_func=key)
    def audit_report(
        request: Request, since: When = None, until: When = None,
        manager: SecretsManager = core,
    ) -> dict[str, Any]:  # fmt: skip
        """``audit report --format json`` (the default criteria)."""
        audit_ops.readable_log(manager, Action.AUDIT_REPORT)
        where = audit_ops.event_filter(manager, since, until, dash="")
        return audit_ops.report(manager, where, None, manager.clock())


def _access_routes(
    app: FastAPI, limiter: Limiter, rate: str, key: Callable[[Request], str], core: Any
) -> None:
    from bsecrets.services import principals, tokens

    @app.get("/v1/access/principals")
    @limiter.limit(rate, key_func=key)
    def principal_ls(request: Request, manager: SecretsManager = core) -> list[dict[str, Any]]:
        """``access principal ls --json``."""
        return principals.listing(manager)

    @app.get("/v1/access/principals/{name}")
    @limiter.limit(rate, key_func=key)
    def principal_show(
        request: Request, name: PrincipalName, manager: SecretsManager = core
    ) -> dict[str, Any]:
        """``access principal show NAME --json``."""
        return principals.show(manager, name)

    @app.get("/v1/access/grants")
    @limiter.limit(rate, key_func=key)
    def grants(
        request: Request, env: EnvQuery = None, manager: SecretsManager = core
    ) -> list[dict[str, Any]]:
        """Each principal's grants, one row a grant (``access principal ls``'s, flat); with
        ``env``, those on it (and the owner's, on every environment: ``*``)."""
        rows = principals.listing(manager)
        shown = manager.env_name(env) if env is not None else None
        return [
            {"principal": row["principal"], "kind": row["kind"], **grant}
            for row in rows
            for grant in row["grants"]
            if shown is None or grant["env"] in (shown, "*")
        ]

    @app.get("/v1/tokens")
    @limiter.limit(rate, key_func=key)
    def token_ls(request: Request, manager: SecretsManager = core) -> list[dict[str, Any]]:
        """``token ls --json``: ids, names, environments, roles, expiry; never a token."""
        return tokens.listing(manager)


def _break_glass_routes(
    app: FastAPI, limiter: Limiter, rate: str, key: Callable[[Request], str], core: Any
) -> None:
    from datetime import timedelta

    from bsecrets.services import break_glass as glass

    @app.post("/v1/break-glass/request")
    @limiter.limit(rate, key_func=key)
    def glass_request(
        request: Request, body: GlassRequestBody, manager: SecretsManager = core
    ) -> dict[str, Any]:
        """``break-glass request --json``, by the signed-in principal (or token)."""
        made = glass.request(manager, body.env, body.reason, timedelta(seconds=body.ttl_seconds),
                             write=body.write, override=body.override)  # fmt: skip
        return {**made._asdict(), "expires_at": made.expires_at}

    @app.post("/v1/break-glass/{request_id}/approve")
    @limiter.limit(rate, key_func=key)
    def glass_approve(
        request: Request, request_id: RequestId, body: ApproveBody | None = None,
        manager: SecretsManager = core,
    ) -> dict[str, Any]:  # fmt: skip
        """``break-glass approve ID --json``: a custodian, signed in, with its one-time
        code in X-Bsecrets-OTP (and its share's words, if it holds them offline)."""
        words = body.words if body is not None else None
        count, threshold = glass.approve(manager, request_id, words)
        return {"id": request_id.lower(), "approvals": count, "threshold": threshold}

    @app.post("/v1/break-glass/{request_id}/revoke")
    @limiter.limit(rate, key_func=key)
    def glass_revoke(
        request: Request, request_id: RequestId, manager: SecretsManager = core
    ) -> dict[str, Any]:
        """``break-glass revoke ID --json``: its requester, or an admin of its environment."""
        done = glass.revoke(manager, request_id)
        return {**done._asdict(), "expires_at": done.expires_at}
