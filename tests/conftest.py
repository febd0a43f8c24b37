"""Test isolation: every test gets its own HOME, XDG folders, working folder and
a clean environment (no BSECRETS_*, no CI variables, NO_COLOR set).

Key derivation uses the weak test parameters (BSECRETS_INSECURE_TEST_KDF=1)
unless a test removes the variable to check the real ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Servers and daemons shared by the whole session. Registered here, once: a
# session fixture imported into several test modules starts once per module.
from moto_server import aws, moto_server  # noqa: F401
from openbao_server import openbao, openbao_tls  # noqa: F401
from secret_service import secret_service  # noqa: F401
from typer.testing import CliRunner

from bsecrets.cli.app import app

PASSPHRASE = "correct horse battery staple"
CANARY = "canary-9f8e7d6c5b4a"

_CLEARED_PREFIXES = ("BSECRETS_", "GITHUB_", "GITLAB_", "VAULT_", "AWS_")
_CLEARED = ("CI", "PYTHON_KEYRING_BACKEND", "DBUS_SESSION_BUS_ADDRESS")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    for folder in (home, runtime):
        folder.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("BSECRETS_INSECURE_TEST_KDF", "1")
    # No keyring unless a test brings the Secret Service fixture.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


def invoke(
    args: list[str], *, input: bytes | str | None = None, env: dict[str, str] | None = None
) -> Result:
    """Run the CLI in-process through Typer's CliRunner."""
    result = CliRunner().invoke(app, args, input=input, env=env, catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr, result.stdout_bytes)


def put_secret(name: str, value: bytes, env: str = "dev", tmp: Path | None = None) -> None:
    """Store exact bytes through the CLI (via --from-file, so nothing is stripped)."""
    path = (tmp or Path.cwd()) / ".value"
    path.write_bytes(value)
    result = invoke(["put", name, "--from-file", str(path), "-e", env])
    path.unlink()
    assert result.exit_code == 0, result.stderr


def run_cli(
    args: list[str],
    *,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI as a real process (``python -m bsecrets``)."""
    return subprocess.run(
        [sys.executable, "-m", "bsecrets", *args],
        input=input,
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli() -> Iterator[object]:
    yield invoke


@pytest.fixture
def vault(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialized vault (envs dev and prod) in the working folder, unlocked by passphrase."""
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    result = invoke(["init", "--env", "dev", "--env", "prod"])
    assert result.exit_code == 0, result.stderr
    return isolated
