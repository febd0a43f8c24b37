"""Test isolation: every test gets its own HOME, XDG folders, working folder and
a clean environment (no BSECRETS_*, no CI variables, NO_COLOR set).

Key derivation uses the weak test parameters (BSECRETS_INSECURE_TEST_KDF=1)
unless a test removes the variable to check the real ones.

Fixtures only: what test modules import (values, CLI runners, servers, profile
helpers) is in the ``helpers`` package beside this file (helpers/__init__.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import invoke

# Servers and daemons shared by the whole session. Registered here, once: a
# session fixture imported into several test modules starts once per module.
from helpers.moto_server import aws, moto_server  # noqa: F401
from helpers.openbao_server import openbao, openbao_tls  # noqa: F401
from helpers.secret_service import secret_service  # noqa: F401
from helpers.values import PASSPHRASE

_CLEARED_PREFIXES = ("BSECRETS_", "GITHUB_", "GITLAB_", "VAULT_", "AWS_", "OTEL_")
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
