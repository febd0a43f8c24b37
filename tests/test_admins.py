"""Delegated admins (#13): ``access grant NAME -e ENV --role admin``. An admin of an
environment grants and revokes read/write there, purges, and protects it; only the
owner grants or revokes the admin role, and revoking it moves the policy to a new
key, so a policy signed with the old one (a copy the admin kept) is refused."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke

from bsecrets.vaultfile.session import open_session

PASS = {"alice": "alice-pass-123", "bob": "bob-pass-1234"}


def ok(args: list[str], **env: str) -> str:
    result = invoke(args, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def as_(name: str, args: list[str], code: int = 0) -> str:
    result = invoke(["--as", name, *args], env={"BSECRETS_PASSPHRASE": PASS[name]})
    assert result.exit_code == code, result.stderr
    return result.stdout if code == 0 else result.stderr


@pytest.fixture
def team(vault: Path) -> Path:
    """alice: admin of dev; bob: a principal with no grant yet; one secret in dev."""
    (vault / "v").write_text("value-a")
    ok(["put", "A", "--from-file", "v", "-e", "dev"])
    for name, passphrase in PASS.items():
        ok(["access", "principal", "add", name], BSECRETS_NEW_PASSPHRASE=passphrase)
    ok(["access", "grant", "alice", "-e", "dev", "--role", "admin"])
    return vault


def test_an_admin_grants_and_revokes_in_its_environment(team: Path) -> None:
    as_("alice", ["access", "grant", "bob", "-e", "dev", "--role", "read"])
    assert as_("bob", ["get", "A", "-e", "dev"]) == "value-a\n"
    as_("alice", ["access", "revoke", "bob", "-e", "dev"])
    assert "no access to environment 'dev'" in as_("bob", ["get", "A", "-e", "dev"], 4)
    assert ok(["get", "A", "-e", "dev"]) == "value-a\n"  # the owner keeps the re-keyed env
    assert invoke(["verify"]).exit_code == 0


def test_an_admins_changes_reach_the_owners_log(team: Path) -> None:
    as_("alice", ["access", "grant", "bob", "-e", "dev"])
    ok(["ls", "-e", "dev"])
    events = json.loads(ok(["audit", "log", "--json"]))
    (granted,) = [e for e in events if e["action"] == "access.grant" and e.get("late")]
    assert granted["actor"]["principal"] == "alice" and granted["outcome"] == "ok"


def test_an_admin_purges_in_its_environment(team: Path) -> None:
    as_("alice", ["rm", "A", "-e", "dev", "--purge", "--yes"])
    assert "not found" in invoke(["get", "A", "-e", "dev"]).stderr


def test_an_admin_grants_nothing_elsewhere(team: Path) -> None:
    stderr = as_("alice", ["access", "grant", "bob", "-e", "prod"], 4)
    assert "owner or an admin of 'prod'" in stderr and "hint: " in stderr


def test_an_admin_does_not_make_admins(team: Path) -> None:
    stderr = as_("alice", ["access", "grant", "bob", "-e", "dev", "--role", "admin"], 4)
    assert "the owner's" in stderr


def test_an_admin_does_not_revoke_another_admin(team: Path) -> None:
    ok(["access", "grant", "bob", "-e", "dev", "--role", "admin"])
    assert "only the owner" in as_("alice", ["access", "revoke", "bob", "-e", "dev"], 4)


def test_a_reader_neither_grants_nor_protects(team: Path) -> None:
    ok(["access", "grant", "bob", "-e", "dev", "--role", "read"])
    assert_error(
        invoke(["--as", "bob", "access", "grant", "alice", "-e", "dev"],
               env={"BSECRETS_PASSPHRASE": PASS["bob"]}),
        4, "owner or an admin",
    )  # fmt: skip
    assert "owner or an admin" in as_("bob", ["env", "protect", "dev"], 4)


def session_masters(name: str) -> tuple[bytes, dict[str, bytes]]:
    token = json.loads(as_(name, ["unlock", "--json"]))["session"]
    with sqlite3.connect(Path.cwd() / ".bsecrets" / "vault.db") as db:
        (vault_id,) = db.execute("SELECT value FROM meta WHERE key = 'vault_id'").fetchone()
    db.close()
    return vault_id, open_session(token, vault_id, datetime.now(UTC)).env_masters


def test_a_revoked_admins_policy_key_signs_nothing_accepted(team: Path) -> None:
    """alice keeps a copy of the policy key, loses the role, and signs a policy that
    grants her prod: the owner and bob refuse it (exit 5), never a value."""
    from bsecrets.crypto.keys import hkdf

    ok(["access", "grant", "bob", "-e", "dev", "--role", "read"])
    _, masters = session_masters("alice")
    old_master = masters["__access__"]
    ok(["access", "revoke", "alice", "-e", "dev"])  # the owner: a new policy key
    with sqlite3.connect(Path.cwd() / ".bsecrets" / "vault.db") as db:
        (body,) = db.execute("SELECT body FROM access_policy").fetchone()
        data = json.loads(body)
        data["grants"]["prod"] = {"alice": {"role": "write", "only": [], "by": "owner", "at": "x"}}
        forged = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        signer = Ed25519PrivateKey.from_private_bytes(
            hkdf(old_master, "bsecrets/v1/policy-signing")
        )
        db.execute(
            "UPDATE access_policy SET body = ?, signature = ?", (forged, signer.sign(forged))
        )
    db.close()
    for result in (
        invoke(["get", "A", "-e", "dev", "--json"]),
        invoke(["--as", "bob", "get", "A", "-e", "dev", "--json"],
               env={"BSECRETS_PASSPHRASE": PASS["bob"]}),
    ):  # fmt: skip
        assert result.exit_code == 5, result.stderr
        assert json.loads(result.stderr.splitlines()[-1])["kind"] == "integrity_error"
        assert "value-a" not in result.stdout


def test_the_policy_key_is_certified_by_the_owner(team: Path) -> None:
    """A policy key the owner did not certify (a cert swapped by SQL) is refused."""
    with sqlite3.connect(Path.cwd() / ".bsecrets" / "vault.db") as db:
        (body,) = db.execute("SELECT body FROM access_policy").fetchone()
        data = json.loads(body)
        data["key_cert"] = "00" * 64
        edited = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        db.execute("UPDATE access_policy SET body = ?", (edited,))
    db.close()
    assert invoke(["ls", "-e", "dev"]).exit_code == 5
    assert as_("alice", ["ls", "-e", "dev"], 5)
