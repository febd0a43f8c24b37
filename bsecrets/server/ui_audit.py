"""The web UI's audit page (docs/server.md, "Web UI"): the owner's audit log, with the
filters of ``bsecrets audit log``/``audit search`` and the chain's verification.

- ``GET /ui/audit?env=&action=&actor=&outcome=&since=&until=&q=``: the newest
  AUDIT_EVENTS events that match, newest first (``audit_ops.query``: each look is
  itself an ``audit.log`` or, with ``q``, ``audit.search`` event); a bad time or an
  unknown environment is the error page (400, 404), as on the command line.
- ``POST /ui/audit/verify`` (CSRF): ``audit verify`` now (``audit_ops.verify``, an
  ``audit.verify`` event; the head kept as the next anchor when it verifies), shown
  above the events: verified, with the events, the head and the anchor checked
  against, or the problem found (its kind, the event, what to do).

Anyone but the owner (a token, another principal) gets the page's refusal (403) with
the core's message, and the refusal is audited, as the command line's is.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from bsecrets.audit.events import Action, Outcome
from bsecrets.cli.hints import hint_for
from bsecrets.errors import AccessDenied, IntegrityError
from bsecrets.server.ui_kit import UiKit
from bsecrets.services import audit_ops

AUDIT_EVENTS = 100  # the page shows the newest events that match, newest first
FILTERS = ("env", "action", "actor", "outcome", "since", "until", "q")
MAX_FILTER = 256


def add_audit_pages(ui: FastAPI, kit: UiKit) -> None:
    """Add the audit page and its verify form to ``ui`` (ui.py lends its helpers)."""
    token_of, unlocked, render, form, to_sign_in = kit[:5]
    Form = Depends(form)

    def page(request: Request, verified: dict[str, Any] | None) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, token = held
        given = {k: request.query_params.get(k, "").strip()[:MAX_FILTER] for k in FILTERS}
        chosen = {k: v or None for k, v in given.items()}
        what = Action.AUDIT_SEARCH if chosen["q"] else Action.AUDIT_LOG
        try:
            with unlocked(token, request) as core:
                if verified is None and request.method == "POST":
                    found = audit_ops.verify(core, None)
                    verified = {**found.to_dict(), "error": _problem(found)}
                audit_ops.readable_log(core, what)  # anyone else: refused before the filters
                where = audit_ops.event_filter(
                    core, chosen["since"], chosen["until"], chosen["env"], None,
                    chosen["action"], chosen["actor"], chosen["outcome"], chosen["q"], dash="",
                )  # fmt: skip
                try:
                    events, broken = audit_ops.query(core, where, AUDIT_EVENTS, what), None
                except IntegrityError as exc:  # the log does not read: say so, with verify's
                    events, broken = [], f"{exc.message} ({hint_for(exc)})"
        except AccessDenied as exc:  # the owner's log: anyone else may not read it
            return render(request, "audit.html", session, 403, events=None, given=given,
                          outcomes=list(Outcome), verified=None, refusal=exc.message,
                          hint=hint_for(exc), limit=AUDIT_EVENTS, broken=None)  # fmt: skip
        return render(request, "audit.html", session, 500 if broken else 200,
                      events=list(reversed(events)), given=given, outcomes=list(Outcome),
                      verified=verified, refusal=None, hint=None, limit=AUDIT_EVENTS,
                      broken=broken)  # fmt: skip

    @ui.get("/audit")
    def audit(request: Request) -> Response:
        return page(request, None)

    @ui.post("/audit/verify")
    def verify(request: Request, fields: dict[str, str] = Form) -> Response:
        return page(request, None)


def _problem(found: Any) -> str | None:
    """What verify found, in the words of ``audit verify`` (None: nothing)."""
    error = audit_ops.problem_error(found)
    return None if error is None else f"{error.message} ({error.hint})"
