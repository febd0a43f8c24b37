"""A real ``bsecrets serve`` process for tests (tests/test_server.py, tests/test_sdk_http.py):
uvicorn on a free loopback port in the test's working folder, its output in a file,
and ``cli`` to run the CLI in the same folder as the server sees it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from helpers.values import PASSPHRASE


def cli(
    work: Path, *args: str, input: str | None = None, env_extra: dict[str, str] | None = None
) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bsecrets", *args], cwd=work, input=input,
        capture_output=True, text=True, env=server_env(work, **(env_extra or {})), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def server_env(work: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI or server process at home in ``work``: the test KDF,
    the test passphrase, no OS keyring, ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSECRETS_")}
    env.update(BSECRETS_PASSPHRASE=PASSPHRASE, BSECRETS_INSECURE_TEST_KDF="1", HOME=str(work),
               XDG_RUNTIME_DIR=str(work / "run"), XDG_CACHE_HOME=str(work / "cache"),
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")  # fmt: skip
    env.update(extra)  # on top: another passphrase, say
    (work / "run").mkdir(mode=0o700, exist_ok=True)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``bsecrets serve`` on a free loopback port in ``work``, with ``args``; ``tls``:
    (certificate, key) files; ``env``: more variables for the server."""

    def __init__(
        self,
        work: Path,
        *args: str,
        tls: tuple[Path, Path] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.work = work
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log_path = work / f"server-{self.port}.log"
        self.log = self.log_path.open("w+")
        self.clients: list[httpx.Client] = []  # closed first: uvicorn waits for them
        if tls:
            args = (*args, "--tls-cert", str(tls[0]), "--tls-key", str(tls[1]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bsecrets", "serve", "--port", str(self.port), *args],
            cwd=work, env=server_env(work, **(env or {})), stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60  # a hang guard, far past what start-up needs
        while True:
            try:
                httpx.get(self.url + "/v1/openapi.json", timeout=2, verify=False)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, self.output()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
