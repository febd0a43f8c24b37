"""A transparent loopback HTTP proxy in front of a real server (OpenBao, moto), for
what only timing shows: a foreign writer landing between bsecrets' read and its
write, a burst of 503 answers, a server that accepts a request and goes silent.
Everything it forwards is the real server's answer; nothing of bsecrets is patched.

    with LoopbackProxy(openbao.address) as proxy:
        proxy.address                      # point the profile here (127.0.0.1 only)
        proxy.after = hook                 # hook(method, path) after the server answered
        proxy.fail_next(503, 503)          # answer the next two requests with 503
        proxy.fail_next(503, method="POST", path="/v1/secret/data/")  # the next such request
        proxy.stall(method="PATCH")        # hold the next PATCH: the client sees silence
        proxy.stall(target="secretsmanager.UpdateSecretVersionStage")  # an AWS operation
        proxy.stall(count=None)            # hold every request from now on
        proxy.release()                    # forward the held ones (a server that resumes)
        proxy.requests                     # [(method, path), ...] as received
        proxy.targets                      # X-Amz-Target of each request ("" if none)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
HOLD_AT_MOST_S = 60.0  # a held request is forwarded after this even without release()


@dataclass
class _Match:
    method: str | None
    path: str
    target: str | None

    def __call__(self, method: str, path: str, target: str) -> bool:
        return (
            self.method in (None, method)
            and path.startswith(self.path)
            and self.target in (None, target)
        )


class LoopbackProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.scheme == "http", "the proxy forwards plain HTTP only"
        assert parts.hostname in ("127.0.0.1", "localhost"), "loopback only"
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.after: Callable[[str, str], None] | None = None
        self.requests: list[tuple[str, str]] = []
        self.targets: list[str] = []
        self._failures: list[tuple[int, _Match]] = []
        self._stalls: list[tuple[int | None, _Match]] = []
        self._released = threading.Event()
        self._held = 0
        self._held_changed = threading.Condition()
        self._lock = threading.Lock()

    def fail_next(self, *statuses: int, method: str | None = None, path: str = "") -> None:
        """Answer the next requests (of ``method``, under ``path``) with these statuses."""
        with self._lock:
            self._failures.extend((status, _Match(method, path, None)) for status in statuses)

    def stall(
        self,
        *,
        method: str | None = None,
        path: str = "",
        target: str | None = None,
        count: int | None = 1,
    ) -> None:
        """Hold the next ``count`` matching requests (None: every one) until release():
        the client sees a server that accepted the request and went silent."""
        with self._lock:
            self._released.clear()
            self._stalls.append((count, _Match(method, path, target)))

    def release(self, wait: float = 10.0) -> None:
        """Stop stalling and forward the held requests, as a server that resumes would
        apply them; returns once the server has answered them (or after ``wait``)."""
        with self._lock:
            self._stalls.clear()
        self._released.set()
        with self._held_changed:
            self._held_changed.wait_for(lambda: self._held == 0, timeout=wait)

    @property
    def held(self) -> int:
        """How many requests are being held right now."""
        return self._held

    def _next_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for i, (status, match) in enumerate(self._failures):
                if match(method, path, ""):
                    del self._failures[i]
                    return status
            return None

    def _should_stall(self, method: str, path: str, target: str) -> bool:
        with self._lock:
            for i, (count, match) in enumerate(self._stalls):
                if match(method, path, target):
                    if count is not None:
                        if count <= 1:
                            del self._stalls[i]
                        else:
                            self._stalls[i] = (count - 1, match)
                    return True
            return False

    def _hold(self) -> None:
        with self._held_changed:
            self._held += 1
            self._held_changed.notify_all()
        self._released.wait(HOLD_AT_MOST_S)

    def _done_holding(self) -> None:
        with self._held_changed:
            self._held -= 1
            self._held_changed.notify_all()

    def __enter__(self) -> LoopbackProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                target = self.headers.get("X-Amz-Target") or ""
                proxy.requests.append((self.command, self.path))
                proxy.targets.append(target)
                failure = proxy._next_failure(self.command, self.path)
                if failure is not None:
                    self._answer(failure, [], json.dumps({"errors": ["injected"]}).encode())
                    return
                held = proxy._should_stall(self.command, self.path, target)
                if held:
                    proxy._hold()
                try:
                    status, headers, data = self._upstream(body)
                finally:
                    if held:
                        proxy._done_holding()
                if proxy.after is not None:
                    proxy.after(self.command, self.path)
                with contextlib.suppress(OSError):  # a client that gave up has gone
                    self._answer(status, headers, data)

            def _upstream(self, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    return response.status, response.getheaders(), response.read()
                finally:
                    upstream.close()

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                if not any(k.lower() == "content-type" for k, _ in headers):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_LIST = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
