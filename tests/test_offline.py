"""The offline fallback of a remote environment (#17): ``offline: {max_stale: 24h}`` on a
real OpenBao. While the server answers, every value read is kept (sealed in the local
vault); once it is unreachable (the profile pointed at a closed port), ``get``,
``exec`` and ``export`` serve the copies with one warning line, and the SDK marks them
stale; a value never read, a write, or a copy past ``max_stale`` (a fixed clock) still
fail with exit 6."""

from __future__ import annotations

import json
import logging
import socket
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from helpers.cli import invoke, run_cli
from helpers.openbao_server import OpenBao
from helpers.values import PASSPHRASE
from helpers.vault_env import assert_error, unique_prefix, vault_env, write_profile

from bsecrets import Client
from bsecrets.config.loader import load_profile
from bsecrets.errors import BackendUnavailable
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials


def ok(args: list[str]) -> str:
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def staging(isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao) -> Path:
    """staging on OpenBao with the fallback; db/url and api/key read once through bsecrets;
    then the server 'goes away' (the profile points at a closed port)."""
    prefix = unique_prefix("offline")
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    env = vault_env(openbao.address, prefix, offline={"max_stale": "24h"}, timeout=1)
    profile = write_profile(isolated, monkeypatch, {"staging": env})
    ok(["put", "db/url", "--value", "pg://stage-1", "-e", "staging"])
    ok(["put", "api/key", "--value", "key-stage-2", "-e", "staging"])
    ok(["put", "never/read", "--value", "nr-3", "-e", "staging"])
    assert ok(["get", "db/url", "-e", "staging"]) == "pg://stage-1\n"  # a read keeps a copy
    assert ok(["get", "api/key", "-e", "staging"]) == "key-stage-2\n"
    ok(["ls", "-e", "staging"])  # and the listing
    text = profile.read_text().replace(openbao.address, f"http://127.0.0.1:{closed_port()}")
    profile.write_text(text)
    return isolated


def test_get_serves_the_copy_with_one_warning_line(staging: Path) -> None:
    result = invoke(["get", "db/url", "-e", "staging"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "pg://stage-1\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "offline" in lines[0]
    assert "pg://stage-1" not in result.stderr


def test_exec_and_export_serve_the_copies(staging: Path) -> None:
    code = "import os; print(os.environ['DB_URL'], os.environ['API_KEY'])"
    done = run_cli(["exec", "-e", "staging", "--only", "db/url,api/key", "--", sys.executable,
                    "-c", code])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["pg://stage-1", "key-stage-2"]
    exported = invoke(["export", "-e", "staging", "--only", "db/url,api/key", "--format",
                       "json"])  # fmt: skip
    assert exported.exit_code == 0, exported.stderr
    assert json.loads(exported.stdout) == {"db/url": "pg://stage-1", "api/key": "key-stage-2"}


def test_a_value_never_read_and_every_write_fail_as_before(staging: Path) -> None:
    assert_error(invoke(["get", "never/read", "-e", "staging"]), 6)
    assert_error(invoke(["put", "db/url", "-e", "staging"], input="x"), 6)
    assert_error(invoke(["get", "db/url", "-e", "staging", "--version", "1"]), 6)


def test_a_copy_past_max_stale_is_not_served(staging: Path) -> None:
    """A fixed clock 24 h and a second after the reads."""
    creds = Credentials(passphrase=PASSPHRASE)
    later = SecretsManager(load_profile(Path("bsecrets.yaml")), creds).clock() + timedelta(
        hours=24, seconds=1
    )
    manager = SecretsManager(load_profile(Path("bsecrets.yaml")), creds, clock=lambda: later)
    try:
        with pytest.raises(BackendUnavailable):
            manager.get("staging", "db/url")
    finally:
        manager.close()
    sooner = later - timedelta(seconds=2)  # just within: served
    manager = SecretsManager(load_profile(Path("bsecrets.yaml")), creds, clock=lambda: sooner)
    try:
        assert manager.get("staging", "db/url").value == b"pg://stage-1"
    finally:
        manager.close()


def test_the_sdk_marks_a_copy_stale_and_logs_it(
    staging: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bsecrets"), Client(env="staging") as c:
        secret = c.get("db/url")
    assert secret.stale is True and secret.value == b"pg://stage-1"
    assert any("offline" in r.getMessage() for r in caplog.records)


def test_without_the_fallback_an_unreachable_server_is_exit_6(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    env = vault_env(openbao.address, unique_prefix("noff"), timeout=1)
    profile = write_profile(isolated, monkeypatch, {"staging": env})
    ok(["put", "db/url", "--value", "pg://x", "-e", "staging"])
    ok(["get", "db/url", "-e", "staging"])
    text = profile.read_text().replace(openbao.address, f"http://127.0.0.1:{closed_port()}")
    profile.write_text(text)
    assert_error(invoke(["get", "db/url", "-e", "staging"]), 6)


def test_offline_needs_max_stale_and_only_remote_environments_take_it(vault: Path) -> None:
    profile = vault / "bsecrets.yaml"
    original = profile.read_text()
    entry = "  prod:\n    backend: local\n"
    profile.write_text(original.replace(entry, entry + "    offline: {max_stale: 1h}\n"))
    result = invoke(["ls", "-e", "prod"])
    assert result.exit_code == 2 and "offline" in result.stderr
