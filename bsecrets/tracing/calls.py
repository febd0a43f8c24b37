"""A span per HTTP request to a remote backend, child of the operation's span.

Attributes: ``bsecrets.backend`` (``vault``, ``aws``), ``http.request.method``,
``http.response.status_code``, ``server.address`` and ``server.port``, ``error.type``
(the status code, AWS's error code, or the transport error's type name); for Vault
``bsecrets.vault.call``, the kind of call below the mount (:func:`vault_call`); for AWS
``rpc.system``, ``rpc.service``, ``rpc.method`` (``GetSecretValue``), ``cloud.region``.

Never a URL's path or query (a secret's name), a header (Vault's token, AWS's
signature), a body, an exception's message. A retried request is a span per attempt.

Imported only when traces are on (``bsecrets/tracing/__init__.py``).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from bsecrets.tracing import Lineage

# Vault's KV v2 paths below a mount: /v1/<mount>/<kind>/<the secret's path>
_KV_KINDS = frozenset({"data", "metadata", "delete", "undelete", "destroy", "config", "subkeys"})


def vault_call(method: str, path: str, mount: str) -> str:
    """What a request to Vault does, without what it names: ``kv.data`` (a read or a
    write of a secret: the method says which), ``kv.metadata``, ``sys.mounts``,
    ``auth.login``, ``auth.lookup-self``; ``other`` for anything else."""
    path = urlsplit(path).path
    prefix = f"/v1/{quote(mount)}/"
    if path.startswith(prefix):
        kind = path[len(prefix) :].split("/", 1)[0]
        return f"kv.{kind}" if kind in _KV_KINDS else "kv.other"
    parts = path.strip("/").split("/")  # v1, sys|auth, ...
    if len(parts) >= 3 and parts[0] == "v1" and parts[1] == "sys":
        return f"sys.{parts[2]}"
    if len(parts) >= 4 and parts[0] == "v1" and parts[1] == "auth":
        return f"auth.{parts[3]}"  # /v1/auth/<auth mount>/<login|lookup-self|...>/...
    return "other"


def _parent(lineage: Lineage | None, backend: str) -> Context | None:
    """The current context when it holds a span (the operation's), else the lineage's
    while its span lasts (a worker thread of a listing). Marks the operation's span
    with the backend's kind."""
    ctx = context.get_current()
    span = trace.get_current_span(ctx)
    if span.get_span_context().is_valid:
        if lineage is not None:
            lineage.context = ctx
    elif lineage is not None and lineage.context is not None:
        span = trace.get_current_span(lineage.context)
        if not span.is_recording():  # that operation has ended
            lineage.context = None
            return None
        ctx = lineage.context
    else:
        return None
    attributes = getattr(span, "attributes", None) or {}
    if "bsecrets.action" in attributes and "bsecrets.backend" not in attributes:
        span.set_attribute("bsecrets.backend", backend)
    return ctx


def _start(
    tracer: Tracer, name: str, backend: str, method: str, url: str, parent: Context | None,
    **more: Any,
) -> Span:  # fmt: skip
    where = urlsplit(url)
    attributes: dict[str, Any] = {"bsecrets.backend": backend, "http.request.method": method}
    if where.hostname:
        attributes["server.address"] = where.hostname
    port = where.port or {"https": 443, "http": 80}.get(where.scheme)
    if port:
        attributes["server.port"] = port
    attributes.update(more)
    return tracer.start_span(name, context=parent, kind=SpanKind.CLIENT, attributes=attributes)


def _status(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR, str(status)))


def _failed(span: Span, kind: str) -> None:
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))


class RequestSpan:
    """``with RequestSpan(...): adapter.request(...)``: one request through requests,
    whose response hook (added to ``kwargs``) gives the status code."""

    def __init__(
        self,
        tracer: Tracer,
        backend: str,
        method: str,
        call: str,
        address: str,
        kwargs: dict[str, Any],
        lineage: Lineage | None = None,
    ) -> None:
        parent = _parent(lineage, backend)
        self.span = _start(
            tracer, f"{backend} {method} {call}", backend, method, address, parent,
            **{f"bsecrets.{backend}.call": call},
        )  # fmt: skip
        self.status: int | None = None
        kwargs["hooks"] = {"response": self._response}

    def _response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.status = int(response.status_code)

    def __enter__(self) -> RequestSpan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.status is not None:
            _status(self.span, self.status)
        elif exc_type is not None:
            _failed(self.span, exc_type.__name__)
        self.span.end()


class BotocoreSpans:
    """Hooks on one botocore client: a span from ``before-send`` (each attempt, once
    signed) to ``response-received`` (each attempt, answered or failed). Both run in
    the thread that sends, in that order: the span in between is the thread's."""

    def __init__(self, tracer: Tracer, client: Any) -> None:
        self.tracer = tracer
        self.client = client
        self.region = str(client.meta.region_name or "")
        self.service = str(client.meta.service_model.service_id)
        self._pending = threading.local()

    def attach(self) -> None:
        events = self.client.meta.events
        events.register_last("before-send", self._before_send)
        events.register_last("response-received", self._received)

    def _before_send(self, request: Any = None, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        url = str(getattr(request, "url", "") or self.client.meta.endpoint_url)
        method = str(getattr(request, "method", "") or "POST")
        self._pending.span = _start(
            self.tracer, f"aws {self.service} {operation}", "aws", method, url,
            _parent(None, "aws"), **{
                "rpc.system": "aws-api", "rpc.service": self.service, "rpc.method": operation,
                "cloud.region": self.region,
            },
        )  # fmt: skip
        # returns None: a value would be taken for the HTTP response

    def _received(
        self,
        response_dict: Any = None,
        parsed_response: Any = None,
        exception: Any = None,
        **_: Any,
    ) -> None:
        span: Span | None = getattr(self._pending, "span", None)
        if span is None:  # the attempt never got to send (the time budget was spent)
            return
        self._pending.span = None
        if response_dict is not None:
            _status(span, int(response_dict.get("status_code") or 0))
            error = (parsed_response or {}).get("Error") or {}
            if isinstance(error, dict) and error.get("Code"):
                span.set_attribute("error.type", str(error["Code"]))
        elif exception is not None:
            _failed(span, type(exception).__name__)
        span.end()
