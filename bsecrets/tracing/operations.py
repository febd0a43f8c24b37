"""A span per audited operation: what the AuditLogger sees is what is traced.

``bsecrets.<action>`` (``bsecrets.get``, ``bsecrets.access.grant``), attributes:

* ``bsecrets.action``, ``bsecrets.env``, ``bsecrets.remote``;
* ``bsecrets.backend``: ``local`` for a local operation, else the kind of the first
  backend a request of it went to (``vault``, ``aws``: set by ``calls.py``);
* ``bsecrets.outcome`` (ok, denied, not_found, failed) and ``bsecrets.request_id``,
  the audit events' request id;
* ``error.type``: the error's ``kind`` (``access_denied``, ``secret_not_found``), the
  exception's type name for anything else; status ERROR on every outcome but ok.

Never a secret's name (whatever ``metrics: {names: true}`` says), a value, a reason
text, a token: only the fields above. No exception is recorded (its message may
name a secret). The span is the current one while the operation runs, so the
backend's request spans are its children; the context is detached when it ends
(operations nest in one thread: last attached, first detached). An event written
outside an operation (unlock, a refusal by the access checks) is a span of its own
with no duration to speak of.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from bsecrets.errors import BsecretsError
from bsecrets.observing import OperationObserver

OK = "ok"


def error_type(error: BaseException) -> str:
    """The error's stable kind (errors.py), or its type's name."""
    if isinstance(error, BsecretsError):
        return error.kind
    return type(error).__name__


class OperationSpans(OperationObserver):
    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def _start(self, action: str, env: str | None, remote: bool | None) -> Span:
        attributes: dict[str, Any] = {"bsecrets.action": str(action)}
        if env is not None:
            attributes["bsecrets.env"] = env
        if remote is not None:
            attributes["bsecrets.remote"] = remote
            if not remote and env is not None:
                attributes["bsecrets.backend"] = "local"
        return self.tracer.start_span(f"bsecrets.{action}", attributes=attributes)

    def begun(self, action: str, env: str | None, remote: bool) -> Any:
        span = self._start(action, env, remote)
        ctx = trace.set_span_in_context(span)
        return span, ctx, context.attach(ctx)

    def ended(self, handle: Any, fields: Mapping[str, Any], error: BaseException | None) -> None:
        if handle is None:
            return
        span, ctx, token = handle
        try:
            _finish(span, fields, error)
        finally:
            span.end()
            if context.get_current() is ctx:  # else: not ours to detach (another context)
                context.detach(token)

    def recorded(self, fields: Mapping[str, Any]) -> None:
        action = str(fields.get("action", ""))
        if not action:
            return
        env = fields.get("env")
        span = self._start(action, env if isinstance(env, str) else None, None)
        # A refusal is recorded while its error is being handled (services/manager.py
        # refusals_recorded): the error's kind, when there is one.
        _finish(span, fields, sys.exception() if fields.get("outcome") != OK else None)
        span.end()


def _finish(span: Span, fields: Mapping[str, Any], error: BaseException | None) -> None:
    outcome = str(fields.get("outcome", ""))
    span.set_attribute("bsecrets.outcome", outcome)
    request_id = fields.get("request_id")
    if isinstance(request_id, str):
        span.set_attribute("bsecrets.request_id", request_id)
    if outcome == OK and error is None:
        return
    kind = error_type(error) if error is not None else outcome
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))
