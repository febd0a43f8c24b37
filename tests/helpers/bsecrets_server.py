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


def cli(work: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bsecrets", *args], cwd=work, input=input,
        capture_output=True, text=True, env=server_env(work), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def server_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSECRETS_")}
    env.update(BSECRETS_PASSPHRASE=PASSPHRASE, BSECRETS_INSECURE_TEST_KDF="1", HOME=str(work),
               XDG_RUNTIME_DIR=str(work / "run"), XDG_CACHE_HOME=str(work / "cache"))  # fmt: skip
    (work / "run").mkdir(mode=0o700, exist_ok=True)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, work: Path, *args: str) -> None:
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (work / f"server-{self.port}.log").open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bsecrets", "serve", "--port", str(self.port), *args],
            cwd=work, env=server_env(work), stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60  # a hang guard, far past what start-up needs
        while True:
            try:
                httpx.get(self.url + "/v1/openapi.json", timeout=2)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, self.output()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        return (self.work / f"server-{self.port}.log").read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
