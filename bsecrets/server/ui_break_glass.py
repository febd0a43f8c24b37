"""The web UI's break-glass pages (docs/server.md, "Web UI"; docs/break-glass.md).

- ``GET /ui/break-glass``: the setups and the requests as ``bsecrets break-glass
  status`` gives them (``break_glass.status``): who asked, why, for which environment,
  until when, the approvals so far against the threshold, the state and the review.
  For a person signed in with its passphrase who is a custodian of a request's
  environment (not its requester, not yet approved), each open request has an
  "Approve" form: the CSRF token, a one-time code, and the offline share's words
  when the setup keeps its shares offline.
- ``POST /ui/break-glass/{id}/approve``: ``break_glass.approve(manager, id, words)``
  with the code as the request's Confirmation (one_time_code). A refusal (the
  requester, not a custodian, a wrong code, expired or revoked, other words) is the
  error page with the status of server/errors.py, and the core's audit event.

Nothing here renders a share, a key, a code or words: the forms are never filled
back, and the status holds none of them.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from bsecrets.server.ui_kit import UiKit
from bsecrets.server.ui_people import confirmation_of
from bsecrets.services import break_glass

MAX_WORDS = 4096  # a SLIP-39 share is 20 or 33 words


def rows(status: dict[str, Any], principal: str | None) -> list[dict[str, Any]]:
    """The requests, newest first, each with its setup's threshold, the approvals that
    count, a state in words, and whether ``principal`` (a signed-in person, else None)
    may approve it now."""
    setups = {s["env"]: s for s in status["setups"]}
    out = []
    for r in reversed(status["requests"]):
        setup = setups.get(r["env"])
        current = setup is not None and setup["generation"] == r["generation"]
        custodians: list[str] = setup["custodians"] if setup and current else []
        approvals = [c for c in r["approvals"] if c in custodians]
        threshold = setup["threshold"] if setup and current else None
        if r["state"] == "revoked":
            state = "revoked"
        elif not r["live"]:
            state = "expired"
        elif not current:
            state = "set up again since: request anew"
        elif r["state"] == "active":
            state = "active"
        elif threshold is not None and len(approvals) >= threshold:
            state = "approved: the requester may activate it"
        else:
            state = "waiting for approvals"
        open_ = r["live"] and current and r["state"] == "requested"
        mine = principal is not None and principal in custodians and principal != r["requester"]
        out.append({**r, "counted": approvals, "threshold": threshold, "state_text": state,
                    "open": open_, "custodian": mine,
                    "approved_by_me": principal in approvals,
                    "can_approve": open_ and mine and principal not in approvals,
                    "offline": bool(setup and setup["offline"])})  # fmt: skip
    return out


def add_break_glass_pages(ui: FastAPI, kit: UiKit) -> None:
    """Add the break-glass pages to ``ui`` (ui.py lends its helpers: ``token_of`` the
    signed-in session and its credential, ``unlocked`` the request's manager with a
    Confirmation, ``form`` the CSRF-checked form of a POST)."""
    token_of, unlocked, render, form, to_sign_in, go = kit[:6]
    Form = Depends(form)

    @ui.get("/break-glass")
    def status_page(request: Request) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, credential = held
        with unlocked(credential, request, None) as core:
            status = break_glass.status(core)
        person = session.principal if session.person else None
        return render(request, "break_glass.html", session, setups=status["setups"],
                      requests=rows(status, person), person=person)  # fmt: skip

    @ui.post("/break-glass/{request_id}/approve")
    def approve(request: Request, request_id: str, fields: dict[str, str] = Form) -> Response:
        if (held := token_of(request)) is None:
            return to_sign_in(request)
        session, credential = held
        words = fields.get("words", "")[:MAX_WORDS].strip() or None
        confirmation = confirmation_of({"otp": fields.get("otp", "")})
        with unlocked(credential, request, confirmation) as core:
            count, threshold = break_glass.approve(core, request_id, words)
        more = "" if count >= threshold else f": {threshold - count} more needed"
        session.flash = (
            f"Approved break-glass request {request_id.strip().lower()}: "
            f"{count} of {threshold} approvals{more}."
        )
        return go(request, "/break-glass")
