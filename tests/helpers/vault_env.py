"""Helpers shared by the Vault tests: profiles with ``backend: vault``
environments, adapters built the way the manager builds them, error checks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bsecrets.backends.registry import BackendContext
from bsecrets.backends.vault import from_config
from bsecrets.backends.vault.adapter import VaultAdapter
from bsecrets.config.profile import EnvironmentConfig
from bsecrets.timeutil import utcnow
from helpers.cli import invoke
from helpers.values import PASSPHRASE


def unique_prefix(label: str = "t") -> str:
    """A fresh prefix per test: environments never see each other's secrets."""
    return f"{label}-{uuid.uuid4().hex[:10]}"


def no_local_vault() -> Any:
    raise AssertionError("this test's adapter must not open the local vault")


def make_adapter(
    address: str,
    prefix: str,
    *,
    environ: Mapping[str, str],
    env: str = "staging",
    mount: str = "secret",
    auth: dict[str, str] | None = None,
    clock: Callable[[], datetime] = utcnow,
    local_vault: Callable[[], Any] = no_local_vault,
    **options: str,
) -> VaultAdapter:
    config = EnvironmentConfig(
        env,
        "vault",
        {"address": address, "mount": mount, "prefix": prefix, "auth": auth or {"method": "token"}}
        | options,
    )
    return from_config(config, BackendContext(environ, clock, local_vault))


def _yaml(data: Mapping[str, Any], indent: int = 0) -> list[str]:
    pad, lines = " " * indent, []
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines.append(f"{pad}{key}:")
            lines += _yaml(value, indent + 2)
        else:
            lines.append(f"{pad}{key}: {json.dumps(value)}")
    return lines


def write_profile(
    work: Path, monkeypatch: pytest.MonkeyPatch, environments: Mapping[str, Mapping[str, Any]]
) -> Path:
    """A local vault made by 'bsecrets init' (the token cache lives in it), then a
    profile with a local 'dev' plus ``environments``."""
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    if not (work / ".bsecrets" / "vault.db").exists():
        result = invoke(["init", "--env", "dev"])
        assert result.exit_code == 0, result.stderr
    profile = {
        "version": 1,
        "default_env": "dev",
        "environments": {"dev": {"backend": "local"}, **environments},
    }
    path = work / "bsecrets.yaml"
    path.write_text("\n".join(_yaml(profile)) + "\n")
    return path


def vault_env(address: str, prefix: str, **options: Any) -> dict[str, Any]:
    return {"backend": "vault", "address": address, "prefix": prefix, **options}


def assert_error(result: Any, code: int, *needles: str, secrets: tuple[str, ...] = ()) -> None:
    """One 'error:' line (plus an optional 'hint:'), the exit code, no traceback, no secret."""
    stderr = result.stderr
    assert result.exit_code == code, stderr
    lines = stderr.splitlines()
    assert lines and lines[0].startswith("error: "), stderr
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in stderr, stderr
    for secret in secrets:
        assert secret not in stderr and secret not in result.stdout, stderr
