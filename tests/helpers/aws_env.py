"""Helpers shared by the AWS backend's tests: adapters bound to the moto server,
profiles with an AWS environment, and a misbehaving AWS endpoint."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bsecrets.backends.aws import from_config
from bsecrets.backends.aws.adapter import AWSAdapter
from bsecrets.backends.registry import BackendContext
from bsecrets.config.profile import EnvironmentConfig
from bsecrets.errors import VaultNotFound
from bsecrets.timeutil import Clock, utcnow
from helpers.moto_server import REGION

ROLE_ACCOUNT = "111111111111"
ROLE_ARN = f"arn:aws:iam::{ROLE_ACCOUNT}:role/bsecrets-prod"


def no_local_vault() -> Any:
    raise VaultNotFound("no local vault in this test")


def make_adapter(
    endpoint: str | None,
    *,
    env: str = "dev",
    environ: Mapping[str, str] | None = None,
    clock: Clock = utcnow,
    local_vault: Callable[[], Any] = no_local_vault,
    **options: Any,
) -> AWSAdapter:
    """An adapter as the manager builds it, from a profile entry's options."""
    opts: dict[str, Any] = {"region": REGION, "prefix": "", **options}
    if endpoint is not None:
        opts["endpoint_url"] = endpoint
    opts = {k: v for k, v in opts.items() if v is not None}
    config = EnvironmentConfig(name=env, backend="aws", options=opts)
    context = BackendContext(
        environ=dict(os.environ) if environ is None else environ,
        clock=clock,
        local_vault=local_vault,
    )
    return from_config(config, context)


def write_profile(root: Path, **aws_options: Any) -> Path:
    """bsecrets.yaml with 'dev' (local, the default) and 'prod' (aws, these keys)."""
    lines = [
        "version: 1",
        "default_env: dev",
        "environments:",
        "  dev:",
        "    backend: local",
        "  prod:",
        "    backend: aws",
    ]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in aws_options.items()]
    path = root / "bsecrets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def frozen(at: datetime) -> Clock:
    return lambda: at


# --- an AWS endpoint that misbehaves -----------------------------------------------


class FakeEndpoint:
    """A loopback HTTP server answering every AWS request the same way.

    ``mode``: "throttle" (400 ThrottlingException), "deny" (400
    AccessDeniedException), "error" (500 InternalServiceError) or "silent"
    (accepts, reads the request, never answers). ``requests`` counts them.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self._stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fake.mode == "silent":
                    fake._stop.wait(30)
                    return
                code, status = {
                    "throttle": ("ThrottlingException", 400),
                    "deny": ("AccessDeniedException", 400),
                    "error": ("InternalServiceError", 500),
                }[fake.mode]
                body = json.dumps({"__type": code, "message": f"fake {code}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-ErrorType", code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[FakeEndpoint]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self.server.shutdown()
            self.server.server_close()
            thread.join(5)


def closed_port_endpoint() -> str:
    """An endpoint on a loopback port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
