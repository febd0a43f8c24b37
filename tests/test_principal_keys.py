"""Principals whose key pair is made on their own machine (#13): ``access keygen``,
``access principal add NAME --kind machine --public-key FILE.pub``, unlocking with
``BSECRETS_KEY_FILE`` and ``--as``, and the trust root pinned on first use."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke

from bsecrets.crypto.keys import public_key_of


def ok(args: list[str], **env: str) -> str:
    result = invoke(args, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def refused(args: list[str], code: int, *needles: str, **env: str) -> None:
    result = invoke(args, env=env or None)
    assert_error(result, code, *needles)
    assert result.stderr.splitlines()[1].startswith("hint: "), result.stderr


@pytest.fixture
def machine(vault: Path, tmp_path: Path) -> Path:
    """A key made 'elsewhere', its public key added as principal 'build', granted prod."""
    ok(["put", "S", "--from-file", str(write(tmp_path / "v", "secret-s")), "-e", "prod"])
    key = tmp_path / "elsewhere" / "build.key"
    made = json.loads(ok(["access", "keygen", "-o", str(key), "--json"]))
    assert made["key_file"] == str(key) and made["public_key_file"] == f"{key}.pub"
    ok(["access", "principal", "add", "build", "--kind", "machine", "--public-key", f"{key}.pub"])
    ok(["access", "grant", "build", "-e", "prod"])
    return key


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def as_build(key: Path) -> dict[str, str]:
    return {"BSECRETS_KEY_FILE": str(key), "BSECRETS_PASSPHRASE": "", "BSECRETS_AS": "build"}


def test_keygen_writes_a_private_key_file_and_its_public_key(vault: Path, tmp_path: Path) -> None:
    key = tmp_path / "k" / "my.key"
    ok(["access", "keygen", "-o", str(key)])
    assert key.stat().st_mode & 0o777 == 0o600
    data = json.loads(key.read_text())
    assert data["kind"] == "bsecrets-x25519-key" and data["trust_roots"] == {}
    import base64

    private = base64.b64decode(data["private_key"])
    assert base64.b64decode(Path(f"{key}.pub").read_text()) == public_key_of(private)


def test_keygen_never_overwrites_a_key(vault: Path, tmp_path: Path) -> None:
    key = write(tmp_path / "my.key", "precious")
    refused(["access", "keygen", "-o", str(key)], 2, "exists")
    assert key.read_text() == "precious"


def test_the_private_key_never_enters_the_vault(machine: Path) -> None:
    private = json.loads(machine.read_text())["private_key"]
    import base64

    raw = base64.b64decode(private)
    database = (Path.cwd() / ".bsecrets" / "vault.db").read_bytes()
    assert raw not in database and private.encode() not in database


def test_the_machine_reads_its_grant_with_its_key_file(machine: Path) -> None:
    assert ok(["get", "S", "-e", "prod"], **as_build(machine)) == "secret-s\n"
    listed = json.loads(ok(["access", "principal", "show", "build", "--json"]))
    assert listed["kind"] == "machine"


def test_the_first_use_pins_the_trust_root_and_a_changed_one_is_refused(machine: Path) -> None:
    ok(["get", "S", "-e", "prod"], **as_build(machine))
    pinned = json.loads(machine.read_text())["trust_roots"]
    assert len(pinned) == 1 and len(next(iter(pinned.values()))) == 64
    with sqlite3.connect(Path.cwd() / ".bsecrets" / "vault.db") as db:
        db.execute(
            "UPDATE key_wraps SET params = ? WHERE principal_id = 'build'",
            (json.dumps({"trust_root": "ab" * 32}),),
        )
    db.close()
    result = invoke(["get", "S", "-e", "prod", "--json"], env=as_build(machine))
    assert result.exit_code == 5, result.stderr
    assert json.loads(result.stderr.splitlines()[-1])["kind"] == "integrity_error"
    assert "secret-s" not in result.stdout


def test_a_machine_without_a_public_key_is_refused(vault: Path) -> None:
    refused(["access", "principal", "add", "build", "--kind", "machine"], 2, "its own key pair")


def test_an_unknown_kind_is_refused(vault: Path, tmp_path: Path) -> None:
    refused(["access", "principal", "add", "x", "--kind", "robot"], 2, "--kind takes")


def test_a_public_key_file_that_is_not_one_is_refused(vault: Path, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.pub", "not base64 at all!")
    refused(["access", "principal", "add", "build", "--public-key", str(bad)], 2, "not a bsecrets")


def test_the_key_file_without_as_is_refused(machine: Path) -> None:
    env = {k: v for k, v in as_build(machine).items() if k != "BSECRETS_AS"}
    refused(["get", "S", "-e", "prod"], 2, "--as", **env)


def test_the_machine_without_its_key_file_is_locked(machine: Path) -> None:
    refused(["--as", "build", "get", "S", "-e", "prod"], 4, "key file", BSECRETS_PASSPHRASE="")


def test_another_principals_key_file_does_not_open(machine: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    ok(["access", "keygen", "-o", str(other)])
    result = invoke(["get", "S", "-e", "prod"], env=as_build(other))
    assert_error(result, 4, "not principal 'build''s key")
    assert "secret-s" not in result.stdout
    assert json.loads(other.read_text())["trust_roots"] == {}  # nothing pinned for it


def test_a_key_file_readable_by_others_is_refused(machine: Path) -> None:
    machine.chmod(0o644)
    result = invoke(["get", "S", "-e", "prod"], env=as_build(machine))
    assert_error(result, 4, "key file")
