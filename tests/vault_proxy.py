"""A transparent loopback proxy in front of a real OpenBao, for what only timing
shows: a foreign writer landing between bsecrets' read and its write, and a
burst of 503 answers before the server answers again. Everything it forwards is
the real server's answer; nothing of bsecrets is patched.

    with VaultProxy(openbao.address) as proxy:
        proxy.address                      # point the profile here
        proxy.after = hook                 # hook(method, path) after the server answered
        proxy.fail_next(503, 503)          # answer the next two requests with 503
        proxy.fail_next(503, method="POST", path="/v1/secret/data/")  # the next such request
        proxy.requests                     # [(method, path), ...] as forwarded or failed
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class VaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.scheme == "http", "the proxy forwards plain HTTP only"
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.after: Callable[[str, str], None] | None = None
        self.requests: list[tuple[str, str]] = []
        self._failures: list[tuple[int, str | None, str]] = []
        self._lock = threading.Lock()

    def fail_next(self, *statuses: int, method: str | None = None, path: str = "") -> None:
        """Answer the next requests (of ``method``, under ``path``) with these statuses."""
        with self._lock:
            self._failures.extend((status, method, path) for status in statuses)

    def _next_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for i, (status, want, prefix) in enumerate(self._failures):
                if want in (None, method) and path.startswith(prefix):
                    del self._failures[i]
                    return status
            return None

    def __enter__(self) -> VaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.requests.append((self.command, self.path))
                failure = proxy._next_failure(self.command, self.path)
                if failure is not None:
                    self._answer(failure, [], json.dumps({"errors": ["injected"]}).encode())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                if proxy.after is not None:
                    proxy.after(self.command, self.path)
                self._answer(response.status, response.getheaders(), data)

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
        self.server.shutdown()
        self.server.server_close()
