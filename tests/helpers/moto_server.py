"""moto's server on 127.0.0.1, over real HTTP, for the AWS backend's tests.

    def test_x(aws):  # registered once in tests/conftest.py
        ...  # aws.endpoint is "http://127.0.0.1:PORT", state reset before the test

``moto_server`` (session) starts one ThreadedMotoServer on a free port, once
per test session. ``aws`` (function) resets moto's state with
``POST /moto-api/reset`` and sets the AWS_* variables a client needs (fake
credentials ``testing``; no instance metadata lookups), which child processes
inherit. The server runs in this process, so tests may also read moto's own
state (``sts_assumed_roles``) to count calls without touching bsecrets' code.

moto is not AWS. What these tests cannot prove, and what the code does about
it (research: testing.md section 2):
1. moto's get_secret_value without VersionStage may return a stale version:
   bsecrets always passes VersionStage or VersionId.
2. moto's KMS encrypts with disabled keys: the key-state check is bsecrets'.
3. moto's Secrets Manager never calls KMS: a missing key would be accepted, so
   bsecrets checks the key with kms:DescribeKey before creating a secret.
4. moto lets an AWSPENDING version's token be reused with another value:
   bsecrets labels its in-flight versions ``bsecrets-pending`` instead.
Lambda rotation needs Docker and is not used.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"  # moto's account for the "testing" credentials
READY_TIMEOUT = 10.0
MOTO_PACKAGE = "moto[server,secretsmanager,kms,sts]"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class MotoServer:
    endpoint: str

    def client(self, service: str, **credentials: Any) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=credentials.get("aws_access_key_id", "testing"),
            aws_secret_access_key=credentials.get("aws_secret_access_key", "testing"),
            aws_session_token=credentials.get("aws_session_token"),
        )

    def post(self, path: str, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(self.endpoint + path, data=data, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def reset(self) -> None:
        self.post("/moto-api/reset")


def sts_assumed_roles(account: str) -> int:
    """How many AssumeRole calls moto served for roles in ``account`` since the reset."""
    from moto.sts.models import sts_backends

    return len(sts_backends[account]["aws"].assumed_roles)


def moto_secret_names(account: str, region: str = REGION) -> list[str]:
    """Names of the secrets moto holds for ``account`` (read from moto's own state)."""
    from moto.secretsmanager.models import secretsmanager_backends

    return sorted(secretsmanager_backends[account][region].secrets.keys())


def _wait_ready(endpoint: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/data.json", timeout=2) as r:
                r.read()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"moto server not ready after {READY_TIMEOUT}s: {exc}")
            time.sleep(0.05)


# Each test module that imports the fixture registers its own copy of it, so
# the server itself is shared here: one per test session, stopped by the last user.
_SHARED: dict[str, Any] = {}


def _start() -> tuple[Any, MotoServer]:
    try:
        import moto.server as moto_server_module
    except ImportError as exc:  # CI installs the test extras: a skip there would hide that
        msg = f"moto's server is not installed ({exc}); pip install '{MOTO_PACKAGE}'"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        _wait_ready(endpoint)
    except BaseException:
        server.stop()
        raise
    return server, MotoServer(endpoint)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    if not _SHARED:
        _SHARED["server"], _SHARED["moto"] = _start()
        _SHARED["users"] = 0
    _SHARED["users"] += 1
    try:
        yield _SHARED["moto"]
    finally:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0:
            _SHARED.pop("server").stop()
            _SHARED.clear()


@pytest.fixture
def aws(isolated: object, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The session's moto server, reset, with fake credentials in the environment."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    moto_server.reset()
    return moto_server
