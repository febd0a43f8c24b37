"""The everyday commands through Typer's CliRunner, as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import invoke
from helpers.values import PASSPHRASE

from bsecrets import __version__


def put(name: str, value: str | bytes, *args: str) -> None:
    result = invoke(["put", name, *args], input=value)
    assert result.exit_code == 0, result.stderr


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"bsecrets {__version__}\n"


def test_init_writes_profile_and_private_vault(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    result = invoke(["init", "--env", "dev", "--env", "prod"])
    assert result.exit_code == 0, result.stderr
    profile = (isolated / "bsecrets.yaml").read_text()
    assert "dev:" in profile and "prod:" in profile
    vault = isolated / ".bsecrets" / "vault.db"
    assert vault.stat().st_mode & 0o777 == 0o600
    assert vault.parent.stat().st_mode & 0o777 == 0o700
    assert (vault.parent / ".gitignore").read_text().strip().endswith("*")


def test_put_get_round_trip(vault: Path) -> None:
    put("db/password", "s3cret\n")  # one trailing newline is stripped
    result = invoke(["get", "db/password"])
    assert result.exit_code == 0
    assert result.stdout == "s3cret\n"
    assert invoke(["get", "db/password", "--raw"]).stdout_bytes == b"s3cret"


def test_put_prints_name_version_env(vault: Path) -> None:
    result = invoke(["put", "api-key"], input="x")
    assert result.stdout == "api-key v1 (dev)\n"
    result = invoke(["put", "api-key", "-e", "prod", "--json"], input="y")
    assert json.loads(result.stdout) == {"name": "api-key", "env": "prod", "version": 1}


def test_from_file_keeps_exact_bytes(vault: Path) -> None:
    data = b"line1\nline2\n\n\x00\xff"
    (vault / "blob").write_bytes(data)
    put("blob", "", "--from-file", str(vault / "blob"))
    assert invoke(["get", "blob", "--raw"]).stdout_bytes == data


def test_value_flag_warns(vault: Path) -> None:
    result = invoke(["put", "token", "--value", "abc"])
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "argv" in result.stderr


def test_get_json_has_stable_keys(vault: Path) -> None:
    put("k", "v", "--tag", "team=core", "--description", "the key")
    data = json.loads(invoke(["get", "k", "--json"]).stdout)
    assert set(data) == {"name", "env", "version", "value", "created_at", "tags", "description"}
    assert data["value"] == "v" and data["tags"] == {"team": "core"}


def test_global_and_command_env(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put("x", "in-prod", "-e", "prod")
    assert invoke(["--env", "prod", "get", "x"]).stdout == "in-prod\n"
    assert invoke(["get", "x", "-e", "prod"]).stdout == "in-prod\n"
    monkeypatch.setenv("BSECRETS_ENV", "prod")
    assert invoke(["get", "x"]).stdout == "in-prod\n"
    assert invoke(["get", "x", "-e", "dev"]).exit_code == 3


def test_versions_history_rollback(vault: Path) -> None:
    for value in ("one", "two", "three"):
        put("rot", value)
    assert invoke(["get", "rot", "--version", "1"]).stdout == "one\n"
    history = json.loads(invoke(["history", "rot", "--json"]).stdout)
    assert [h["version"] for h in history] == [1, 2, 3]
    assert [h["state"] for h in history] == ["previous", "previous", "current"]
    assert set(history[0]) == {"version", "created_at", "created_by", "state"}
    result = invoke(["rollback", "rot", "--to", "1"])
    assert result.exit_code == 0, result.stderr
    assert "v4" in result.stdout
    assert invoke(["get", "rot"]).stdout == "one\n"
    assert invoke(["rollback", "rot", "--to", "9"]).exit_code == 3


def test_if_version(vault: Path) -> None:
    put("cas", "a", "--if-version", "0")
    result = invoke(["put", "cas", "--if-version", "0"], input="b")
    assert result.exit_code == 7
    assert "version 1" in result.stderr
    put("cas", "b", "--if-version", "1")
    assert invoke(["get", "cas"]).stdout == "b\n"


def test_ls(vault: Path) -> None:
    put("app/db", "1", "--tag", "team=core")
    put("app/api", "2")
    put("zzz", "3")
    result = invoke(["ls"])
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "UPDATED", "TAGS"]
    assert [line.split()[0] for line in lines[1:]] == ["app/api", "app/db", "zzz"]
    assert "1" not in " ".join(line.split()[0] for line in lines[1:])  # no values
    data = json.loads(invoke(["ls", "app/", "--json"]).stdout)
    assert [d["name"] for d in data] == ["app/api", "app/db"]
    assert set(data[0]) == {"name", "version", "updated_at", "tags"}
    tagged = json.loads(invoke(["ls", "--tag", "team=core", "--json"]).stdout)
    assert [d["name"] for d in tagged] == ["app/db"]
    assert invoke(["-q", "ls"]).stdout.split() == ["app/api", "app/db", "zzz"]


def test_rm_restore_purge(vault: Path) -> None:
    put("tmp", "x")
    assert invoke(["rm", "tmp"]).exit_code == 0
    missing = invoke(["get", "tmp"])
    assert missing.exit_code == 3 and "restore" in missing.stderr
    assert invoke(["restore", "tmp"]).exit_code == 0
    assert invoke(["get", "tmp"]).stdout == "x\n"
    refused = invoke(["rm", "tmp", "--purge"])  # no terminal, no --yes
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert invoke(["get", "tmp"]).stdout == "x\n"
    assert invoke(["rm", "tmp", "--purge", "--yes"]).exit_code == 0
    assert invoke(["restore", "tmp"]).exit_code == 3
    assert invoke(["history", "tmp"]).exit_code == 3


def test_unlock_lock_session(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke(["unlock", "--ttl", "10m"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("export BSECRETS_SESSION=bss1.")
    token = result.stdout.strip().split("=", 1)[1]
    put("s", "v")
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    monkeypatch.setenv("BSECRETS_SESSION", token)
    assert invoke(["get", "s"]).stdout == "v\n"
    locked = invoke(["lock"])
    assert locked.exit_code == 0 and locked.stdout == "unset BSECRETS_SESSION\n"
    after = invoke(["get", "s"])
    assert after.exit_code == 4 and "hint:" in after.stderr


def test_unlock_json(vault: Path) -> None:
    data = json.loads(invoke(["unlock", "--json"]).stdout)
    assert set(data) == {"session", "expires_at"}


def test_status(vault: Path) -> None:
    put("a", "1")
    text = invoke(["status"])
    assert text.exit_code == 0
    assert "dev" in text.stdout and "prod" in text.stdout
    data = json.loads(invoke(["status", "--json"]).stdout)
    assert data["healthy"] is True
    assert data["environments"]["dev"]["secrets"] == 1
    assert {i["name"] for i in data["indicators"]} >= {"profile", "vault_file"}


def test_passphrase_file(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put("a", "1")
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    secret_file = vault / "pp"
    secret_file.write_text(PASSPHRASE + "\n")
    monkeypatch.setenv("BSECRETS_PASSPHRASE_FILE", str(secret_file))
    assert invoke(["get", "a"]).stdout == "1\n"


def test_profile_found_from_subfolder_and_by_flag(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put("a", "1")
    sub = vault / "deep" / "er"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert invoke(["get", "a"]).stdout == "1\n"
    monkeypatch.chdir("/")
    assert invoke(["--profile", str(vault / "bsecrets.yaml"), "get", "a"]).stdout == "1\n"


def test_unlock_again_with_an_expired_session_set(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    old = invoke(["unlock", "--ttl", "1s"]).stdout.strip().split("=", 1)[1]
    monkeypatch.setenv("BSECRETS_SESSION", old)
    time.sleep(1.1)
    fresh = invoke(["unlock"])  # the passphrase is still in the environment
    assert fresh.exit_code == 0, fresh.stderr
    monkeypatch.setenv("BSECRETS_SESSION", fresh.stdout.strip().split("=", 1)[1])
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    put("after", "ok")
    assert invoke(["get", "after"]).stdout == "ok\n"


def test_session_carries_environment_keys(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command in a session opens environments without unsealing (no X25519),
    and an environment created after the unlock still works."""
    put("a", "1")
    token = invoke(["unlock"]).stdout.strip().split("=", 1)[1]
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    monkeypatch.setenv("BSECRETS_SESSION", token)
    assert invoke(["get", "a"]).stdout == "1\n"
    profile = vault / "bsecrets.yaml"
    profile.write_text(
        profile.read_text().replace("environments:\n", "environments:\n  qa:\n    backend: local\n")
    )
    put("b", "2", "-e", "qa")
    assert invoke(["get", "b", "-e", "qa"]).stdout == "2\n"


@pytest.mark.parametrize("args", [[], ["vault"], ["aws"]])
def test_a_group_alone_prints_its_help(isolated: Path, args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: bsecrets")
    assert "error:" not in result.stderr
