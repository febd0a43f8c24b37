"""Request bodies bounded on every path (docs/server.md): a plain ASGI middleware (no
per-request task or response streaming, which Starlette's BaseHTTPMiddleware costs).

A ``Content-Length`` over the bound, or not a number, is 413 before the app runs; a
body sent without one (chunked) is read here up to the bound, then handed to the app
whole, or answered 413 past it."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bsecrets.errors import ValueTooLarge
from bsecrets.server.errors import body_of


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            response = JSONResponse(body_of(self._error(), None), status_code=413)
            await response(scope, receive, send)
            return
        if length is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            whole = await self._buffered(receive)
            if whole is None:
                response = JSONResponse(body_of(self._error(), None), status_code=413)
                await response(scope, self._nothing, send)
                return
            receive = whole
        await self.app(scope, receive, send)

    async def _buffered(self, receive: Receive) -> Receive | None:
        """A body sent without a length, read here up to the bound and handed on whole
        (None: over the bound; what was read is dropped)."""
        parts: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return _replay([message])
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return None
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                return _replay([{"type": "http.request", "body": b"".join(parts)}], receive)

    @staticmethod
    async def _nothing() -> Message:
        return {"type": "http.disconnect"}

    def _error(self) -> ValueTooLarge:
        return ValueTooLarge(f"request body over {self.limit} bytes")


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A receive that gives ``messages``, then what ``then`` gives (a disconnect)."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
