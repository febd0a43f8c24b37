"""The web UI of ``bsecrets serve`` under ``/ui`` (docs/server.md, "Web UI").

Server-rendered pages (Jinja2, autoescaped) over the same façade calls as the REST
API: each request is served by a SecretsManager unlocked with the pipeline token of
its session (server/core.py), or the vault session of a person signed in with its
passphrase (server/ui_people.py), so the UI sees what that principal may, and its
reads and writes are audited as that principal's. The credential is kept in the
server's memory (server/ui_session.py); the browser holds only a random session id.

Every response carries a strict Content-Security-Policy (no inline script: the one
script is static/ui.js), ``X-Content-Type-Options: nosniff``, no framing, no
referrer and ``Cache-Control: no-store``. Every form carries the session's CSRF
token; a POST without it is 403. Values appear only in the response to a reveal
(a POST, audited as a ``get``), and the page hides the value again after
``BSECRETS_UI_REVEAL_SECONDS`` (default 30).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bsecrets.cli.hints import hint_for
from bsecrets.errors import (
    BsecretsError,
    ConfirmationNeeded,
    Denied,
    SecondFactorRejected,
    SecondFactorRequired,
    SecretNotFound,
    SessionInvalid,
    TokenExpired,
    TokenInvalid,
    UsageError,
    VersionConflict,
)
from bsecrets.models import Confirmation
from bsecrets.server.core import CorePool, grants_of
from bsecrets.server.errors import status_of
from bsecrets.server.routing import value_json
from bsecrets.server.sign_in import SignIns
from bsecrets.server.ui_audit import add_audit_pages
from bsecrets.server.ui_break_glass import add_break_glass_pages
from bsecrets.server.ui_kit import UiKit
from bsecrets.server.ui_people import add_person_sign_in, confirmation_of, ender
from bsecrets.server.ui_session import COOKIE, SessionStore, UiSession
from bsecrets.server.ui_workflows import add_workflow_pages
from bsecrets.services.manager import SecretsManager

HERE = Path(__file__).parent
ENV_REVEAL_SECONDS = "BSECRETS_UI_REVEAL_SECONDS"
REVEAL_SECONDS = 30.0
VERSION = re.compile(r"[0-9]{1,18}")
MAX_FORM = 64 * 1024  # a form here is a CSRF token, a token, a version or two

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}

# the UI's words where the CLI's hint names a command
UI_HINTS: dict[type[BsecretsError], str] = {
    VersionConflict: "the secret changed since this page was loaded: open it again and retry",
    TokenInvalid: "sign in with a token made by 'bsecrets token issue'",
    ConfirmationNeeded: "give a reason in the form: it goes into the audit log",
    SecondFactorRequired: "type the code your authenticator app shows (none enrolled: "
    "'bsecrets mfa enroll')",
    SecondFactorRejected: "type the code your authenticator app shows now: each code is good once",
}


class SecurityHeaders:
    """Adds HEADERS to every response of the wrapped app (errors included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in given
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def reveal_seconds(environ: Mapping[str, str]) -> float:
    """BSECRETS_UI_REVEAL_SECONDS: how long a revealed value stays on the page."""
    text = environ.get(ENV_REVEAL_SECONDS, "").strip()
    if not text:
        return REVEAL_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise UsageError(
            f"{ENV_REVEAL_SECONDS} must be a number of seconds from 0 to 3600",
            hint=f"unset it for the default ({REVEAL_SECONDS:g} s)",
        )
    return seconds


def mount_ui(app: FastAPI, pool: CorePool, sign_ins: SignIns, environ: Mapping[str, str]) -> None:
    """Serve the web UI under /ui of ``app``, its managers from ``pool`` and its people's
    sign-ins in ``sign_ins`` (the API's)."""
    app.mount("/ui", SecurityHeaders(ui_app(pool, sign_ins, dict(environ))))


def ui_app(pool: CorePool, sign_ins: SignIns, environ: dict[str, str]) -> FastAPI:
    seconds = reveal_seconds(environ)
    store = SessionStore(on_end=ender(sign_ins, pool))  # a person's end ends its vault session
    pages = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined
    )
    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    ui.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def address_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    @contextmanager
    def unlocked(
        token: str, request: Request, confirmation: Confirmation | None = None
    ) -> Iterator[SecretsManager]:
        """The pool's manager for the session's token (checked now: a revoked one is
        refused, and signs the session out); ``confirmation``: a form's reason and code."""
        with pool.core(token, address_of(request), confirmation) as (core, _principal):
            yield core

    def session_of(request: Request) -> UiSession | None:
        return store.get(request.cookies.get(COOKIE))

    def cookie(request: Request, response: Response, session: UiSession) -> None:
        """The session's id, the only thing the browser keeps (a session cookie)."""
        attributes = f"; Path={base(request) or '/'}; HttpOnly; SameSite=Strict"
        if request.url.scheme == "https":
            attributes += "; Secure"
        response.headers.append("set-cookie", f"{COOKIE}={session.id}{attributes}")

    def render(
        request: Request, template: str, session: UiSession | None, status: int = 200, **data: Any
    ) -> HTMLResponse:
        page = pages.get_template(template).render(
            base=base(request), session=session, flash=session.pop_flash() if session else None,
            **data,
        )  # fmt: skip
        return HTMLResponse(page, status_code=status)

    def go(request: Request, path: str) -> RedirectResponse:
        return RedirectResponse(base(request) + path, status_code=303)

    def to_sign_in(request: Request, message: str | None = None) -> RedirectResponse:
        """To the sign-in form; with ``message``, a new anonymous session carries it there
        (the form makes the session otherwise)."""
        response = go(request, "/signin")
        if message is not None:
            fresh = store.anonymous()
            fresh.flash = message
            cookie(request, response, fresh)
        return response

    async def form(request: Request) -> dict[str, str]:
        """The urlencoded form of a POST (bounded); 403 without its session's CSRF token
        (a body that is not a form has none)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise HTTPException(413, "form too large")
        fields: dict[str, str] = {}
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/x-www-form-urlencoded":
            try:
                fields = dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=16))
            except (UnicodeDecodeError, ValueError):
                fields = {}
        session = session_of(request)
        if session is None or not session.csrf_ok(fields.get("csrf")):
            raise HTTPException(403, "this form expired, or did not come from this site")
        request.state.session = session
        return fields

    Form = Depends(form)

    def signed_in(request: Request) -> UiSession | None:
        session: UiSession | None = getattr(request.state, "session", None) or session_of(request)
        request.state.session = session
        return session if session is not None and session.signed_in else None

    @ui.exception_handler(BsecretsError)
    async def refused(request: Request, exc: BsecretsError) -> Response:
        session: UiSession | None = getattr(request.state, "session", None)
        gone = isinstance(exc, TokenInvalid | TokenExpired | SessionInvalid)
        if gone and session and session.signed_in:
            store.drop(session)  # the token no longer opens anything: forget it
            return to_sign_in(request, f"Signed out: {exc.message}.")
        hint = next((h for c, h in UI_HINTS.items() if isinstance(exc, c)), None)
        title = "Refused" if isinstance(exc, Denied) else "Error"
        return render(request, "error.html", session, status_of(exc), title=title,
                      message=exc.message, hint=hint or hint_for(exc), kind=exc.kind)  # fmt: skip

    @ui.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        session = session_of(request)
        return render(request, "error.html", session, exc.status_code, title="Error",
                      message=str(exc.detail), hint=None, kind=str(exc.status_code))  # fmt: skip

    @ui.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", None, 500, title="Error",
                      message="unexpected error (see the server's log)", hint=None,
                      kind="internal")  # fmt: skip

    @ui.get("/")
    def home(request: Request) -> Response:
        return go(request, "/envs" if signed_in(request) else "/signin")

    @ui.get("/signin")
    def sign_in_form(request: Request) -> Response:
        if signed_in(request):
            return go(request, "/envs")
        session = session_of(request) or store.anonymous()
        response = render(request, "signin.html", session, error=None)
        cookie(request, response, session)
        return response

    @ui.post("/signin")
    def sign_in(request: Request, fields: dict[str, str] = Form) -> Response:
        session: UiSession = request.state.session
        if pool.guard.retry_after(address_of(request)):
            return render(request, "signin.html", session, 429,
                          error="Too many failed sign-ins: wait a few minutes.")  # fmt: skip
        token = fields.get("token", "").strip()
        try:
            with pool.client_core(token, address_of(request)) as (_core, principal):
                pass  # the token opens the vault, and is in the policy, unexpired
        except BsecretsError as exc:
            return render(request, "signin.html", session, status_of(exc),
                          error=f"This token was not accepted: {exc.message}.")  # fmt: skip
        fresh = store.sign_in(session, token, principal)
        response = go(request, "/envs")
        cookie(request, response, fresh)
        return response

    @ui.post("/signout")
    def sign_out(request: Request, fields: dict[str, str] = Form) -> Response:
        session: UiSession = request.state.session
        if session.token is not None:
            pool.drop(session.token)  # no key of the token stays for this session's sake
        store.drop(session)
        return to_sign_in(request, "Signed out.")

    def token_of(request: Request) -> tuple[UiSession, str] | None:
        session = signed_in(request)
        if session is None or session.token is None:
            return None
        return session, session.token

    @ui.get("/envs")
    def environments(request: Request) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        with unlocked(token, request) as core:
            grants = grants_of(core)
            rows = [{"name": name, "backend": e.backend, "default": name ==
                     core.profile.default_env, "grant": grants.get(name)}
                    for name, e in core.profile.environments.items()]  # fmt: skip
        return render(request, "envs.html", session, envs=rows)

    @ui.get("/envs/{env}/secrets")
    def secrets(request: Request, env: str, prefix: str = "") -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        with unlocked(token, request) as core:
            listed = core.list_secrets(env, prefix)
            grant = grants_of(core).get(env)
        return render(request, "secrets.html", session, env=env, prefix=prefix,
                      secrets=listed, grant=grant)  # fmt: skip

    @ui.get("/envs/{env}/secrets/{name:path}")
    def secret(request: Request, env: str, name: str) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        with unlocked(token, request) as core:
            versions = core.history(env, name)
            found = [s for s in core.list_secrets(env, name, include_deleted=True)
                     if s.name == name]  # fmt: skip
            if not found:
                raise SecretNotFound(f"secret '{name}' not found in environment '{env}'")
            grant = grants_of(core).get(env)
            protected = env in core.gate.policy().protected  # a change asks reason and code
        return render(request, "secret.html", session, env=env, summary=found[0],
                      versions=versions, grant=grant, protected=protected,
                      can_write=grant is not None and grant.role != "read")  # fmt: skip

    @ui.post("/envs/{env}/reveal/{name:path}")
    def reveal(request: Request, env: str, name: str, fields: dict[str, str] = Form) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        version = _number(fields.get("version", ""), "version")
        with unlocked(token, request) as core:
            got = core.get(env, name, version)  # audited as a get by the token principal
        shown = value_json(got.value)
        return render(request, "reveal.html", session, env=env, secret=got,
                      value=shown["value"], encoding=shown["encoding"],
                      seconds=seconds)  # fmt: skip

    @ui.post("/envs/{env}/rollback/{name:path}")
    def rollback(request: Request, env: str, name: str, fields: dict[str, str] = Form) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        to = _number(fields.get("to", ""), "to")
        expected = _number(fields.get("if_version", ""), "if_version")  # the page's version
        if to is None or expected is None:
            raise UsageError("a rollback needs the version to roll back to and the current one")
        with unlocked(token, request, confirmation_of(fields)) as core:
            written = core.rollback(env, name, to, if_version=expected)
        session.flash = (
            f"Rolled back: version {written.version} has version {to}'s value."
            if written.changed
            else f"Nothing to do: version {to} is the current version."
        )
        return go(request, f"/envs/{env}/secrets/{name}")

    # the pages of other modules, with ui.py's helpers: rotations and promotion plans
    # (ui_workflows.py), people (ui_people.py), break-glass, the audit log
    kit = UiKit(token_of, unlocked, render, form, to_sign_in, go, cookie, address_of)
    add_workflow_pages(ui, pages, kit)
    add_person_sign_in(ui, kit, store=store, pool=pool, sign_ins=sign_ins)
    add_break_glass_pages(ui, kit)
    add_audit_pages(ui, kit)

    return ui


def _number(text: str, field: str) -> int | None:
    """A version number from a form field; None when the field is empty."""
    text = text.strip()
    if not text:
        return None
    if not VERSION.fullmatch(text) or int(text) < 1:
        raise UsageError(f"{field} must be a version number")
    return int(text)
