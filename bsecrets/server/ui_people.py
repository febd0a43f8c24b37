"""People in the web UI (docs/server.md, "Web UI"; issue #18): the owner, or a principal
made with ``bsecrets access principal add``, signs in with its name and passphrase.

``POST /ui/signin/person`` calls the same ``SignIns`` as the API's ``POST /v1/sign-in``
(server/sign_in.py): the server unlocks as ``bsecrets unlock`` does (the ``unlock``
audit event, refused or not), starts a vault session for the principal and keeps its
token (``bss1...``) and the sign-in's bearer (``bsw1...``) in the UI session, in the
process's memory: never in a page, the cookie or a URL. The pages are then served by
a manager unlocked with that vault session (server/core.py ``CorePool``), so they show
what the principal may: for the owner everything, its audit log included.

When the UI session ends (sign-out, 15 minutes idle, a refused session), ``ender``
ends the vault session (its file deleted) and closes the pool's managers of it. A
wrong name or passphrase counts against the client address in the pool's guard (as a
refused token does) and writes no session; the passphrase is never rendered or logged.

``confirmation_of``: the reason and one-time code a form carries, as the request's
Confirmation (a protected environment's change, a break-glass approval).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from bsecrets.errors import BsecretsError, WrongPassphrase
from bsecrets.models import Confirmation
from bsecrets.server.core import CorePool
from bsecrets.server.errors import status_of
from bsecrets.server.sign_in import DEFAULT_TTL, SignIns
from bsecrets.server.ui_kit import UiKit
from bsecrets.server.ui_session import SessionStore, UiSession

PRINCIPAL = re.compile(r"[a-z][a-z0-9._-]{0,63}")  # as the API's sign-in body
MAX_PASSPHRASE = 1024
MAX_CODE = 16  # a TOTP code is 6 digits; anything longer is not one


def ender(sign_ins: SignIns, pool: CorePool) -> Callable[[UiSession], None]:
    """What the UI's session store calls when a person's session ends: the vault
    session ends (its file deleted) and no manager of it stays in the pool."""

    def end(session: UiSession) -> None:
        held = sign_ins.sign_out(session.bearer) if session.bearer else None
        if held is not None:
            pool.drop(held.session_token)

    return end


def confirmation_of(fields: dict[str, str]) -> Confirmation:
    """The form's ``reason`` and ``otp`` as the request's Confirmation (empty: not given,
    so a protected environment refuses with the core's own message)."""
    reason = fields.get("reason", "").strip() or None
    code = "".join(fields.get("otp", "").split())[:MAX_CODE] or None
    return Confirmation(reason=reason, yes=True, one_time_code=lambda: code)


def add_person_sign_in(
    ui: FastAPI, kit: UiKit, *, store: SessionStore, pool: CorePool, sign_ins: SignIns
) -> None:
    """Add ``POST /signin/person`` to ``ui`` (ui.py lends its helpers: ``form`` checks
    the CSRF token, ``cookie`` sets the session id, ``go`` redirects)."""
    render, form, go, cookie, address_of = kit.render, kit.form, kit.go, kit.cookie, kit.address_of
    Form = Depends(form)

    def again(
        request: Request, session: UiSession, status: int, error: str, **more: Any
    ) -> Response:
        return render(request, "signin.html", session, status, error=error, **more)

    @ui.post("/signin/person")
    def sign_in_person(request: Request, fields: dict[str, str] = Form) -> Response:
        session: UiSession = request.state.session
        address = address_of(request)
        if pool.guard.retry_after(address):
            return again(request, session, 429, "Too many failed sign-ins: wait a few minutes.")
        principal = fields.get("principal", "").strip() or "owner"
        passphrase = fields.get("passphrase", "")
        if not PRINCIPAL.fullmatch(principal):
            return again(request, session, 400, "That is not a principal's name (owner, or "
                         "a name made by 'bsecrets access principal add').")  # fmt: skip
        if len(passphrase) > MAX_PASSPHRASE:
            return again(request, session, 400, "That passphrase is too long.",
                         principal=principal)  # fmt: skip
        try:
            bearer, held = sign_ins.sign_in(principal, passphrase, DEFAULT_TTL,
                                            f"bsecrets serve from {address}")  # fmt: skip
        except WrongPassphrase:
            pool.guard.failed(address)  # the unlock's own audit event records the refusal
            return again(request, session, 401, "Not signed in: wrong principal or passphrase.",
                         principal=principal)  # fmt: skip
        except BsecretsError as exc:
            return again(request, session, status_of(exc), f"Not signed in: {exc.message}.",
                         principal=principal)  # fmt: skip
        store.sweep()  # sessions left idle end here, with their vault sessions
        fresh = store.sign_in(session, held.session_token, held.principal, bearer=bearer)
        response = go(request, "/envs")
        cookie(request, response, fresh)
        return response
