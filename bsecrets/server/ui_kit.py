"""What ui.py lends the modules that add pages to the web UI (ui_workflows.py,
ui_people.py, ui_break_glass.py, ui_audit.py): one bundle of its helpers, so every page
is served, refused, escaped and CSRF-checked the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from bsecrets.named_tuples import NamedTuple
from bsecrets.server.ui_session import UiSession
from bsecrets.services.manager import SecretsManager


class UiKit(NamedTuple):
    # the signed-in session and its credential (None: not signed in)
    token_of: Callable[[Request], tuple[UiSession, str] | None]
    # (credential, request[, Confirmation]) -> the request's manager, from the pool
    unlocked: Callable[..., AbstractContextManager[SecretsManager]]
    # (request, template, session, status, **data) -> the page
    render: Callable[..., HTMLResponse]
    # the urlencoded form of a POST (bounded); 403 without the session's CSRF token
    form: Callable[[Request], Awaitable[dict[str, str]]]
    to_sign_in: Callable[[Request], Response]
    go: Callable[[Request, str], Response]  # a 303 to a path under /ui
    cookie: Callable[[Request, Response, UiSession], None]  # the session id's cookie
    address_of: Callable[[Request], str]  # the client's address
