"""Principals, grants, revocations and scopes of the local vault (issue #13,
bsecrets/services/principals.py, services/access.py), through the real CLI and the
real SQLite file.

Every test gets its own vault (the ``vault`` fixture) with two more principals:
alice (write on dev) and bob (read on dev, only ``db/*``); the owner keeps every
environment. Old key material is taken from session files with
``bsecrets.vaultfile.session.open_session``: the only place a test reads keys.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import Result, invoke, run_cli

from bsecrets.crypto.keys import EnvironmentKeys, aead_open, encode_aad
from bsecrets.errors import IntegrityError
from bsecrets.vaultfile.session import open_session

PASSES = {"alice": "alice's own long passphrase 1", "bob": "bob's own long passphrase 22"}
DEV = {"db/url": "postgres://dev-9c1", "db/password": "dev-pw-77e", "api/key": "dev-api-3f0"}
PROD = {"db/url": "postgres://prod-5a2"}
SECRET_VALUES = [*DEV.values(), *PROD.values()]
DB = Path(".bsecrets/vault.db")
NO_PROD = "principal 'alice' has no access to environment 'prod'"


def owner(args: list[str], input: str | None = None) -> str:
    result = invoke(args, input=input)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def as_(who: str, args: list[str], input: str | None = None, **env: Any) -> Result:
    """``args`` run as principal ``who`` with its own passphrase (``env`` overrides)."""
    return invoke(
        ["--as", who, *args], input=input, env={"BSECRETS_PASSPHRASE": PASSES[who], **env}
    )


def add_principal(name: str) -> None:
    result = invoke(
        ["access", "principal", "add", name], env={"BSECRETS_NEW_PASSPHRASE": PASSES[name]}
    )
    assert result.exit_code == 0, result.stderr


def refused(result: Result, code: int, *needles: str) -> list[str]:
    """Exit ``code``, an 'error:' line then a 'hint:' line, no traceback, each needle
    in the error, no secret value anywhere."""
    lines = result.stderr.splitlines()
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 2 and lines[1].startswith("hint: "), result.stderr
    for needle in needles:
        assert needle in lines[0], result.stderr
    for value in SECRET_VALUES:
        assert value not in result.stdout + result.stderr
    return lines


def sql(statement: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(DB)
    try:
        with conn:
            return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def vault_id() -> bytes:
    return bytes(sql("SELECT value FROM meta WHERE key = 'vault_id'")[0][0])


def session_masters(token: str) -> dict[str, bytes]:
    return open_session(token, vault_id(), datetime.now(UTC)).env_masters


def opens(master: bytes, env: str) -> list[bool]:
    """For every ``versions`` row of ``env``: whether ``master``'s value key opens it."""
    key = EnvironmentKeys.from_master(master).value_key
    rows = sql("SELECT secret_id, version, value FROM versions WHERE env = ?", env)
    assert rows
    result = []
    for secret_id, version, value in rows:
        aad = encode_aad(vault_id(), env, "value", bytes(secret_id), version)
        try:
            aead_open(key, bytes(value), aad, "x")
        except IntegrityError:
            result.append(False)
        else:
            result.append(True)
    return result


def unlock(who: str | None = None) -> str:
    result = as_(who, ["unlock", "--json"]) if who else invoke(["unlock", "--json"])
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["session"])


def session_of(token: str) -> dict[str, Any]:
    return {"BSECRETS_SESSION": token, "BSECRETS_PASSPHRASE": None}


def audit_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(owner(["audit", "log", "--json", "--limit", "1000"]))
    return events


@pytest.fixture
def team(vault: Path) -> Path:
    for env, values in (("dev", DEV), ("prod", PROD)):
        for name, value in values.items():
            owner(["put", name, "-e", env], input=value)
    add_principal("alice")
    add_principal("bob")
    owner(["access", "grant", "alice", "-e", "dev", "--role", "write"])
    owner(["access", "grant", "bob", "-e", "dev", "--only", "db/*"])
    return vault


# --- principals and grants as listed ------------------------------------------


def test_principals_are_listed_with_their_grants(team: Path) -> None:
    rows = {
        row["principal"]: row for row in json.loads(owner(["access", "principal", "ls", "--json"]))
    }
    assert list(rows) == ["owner", "alice", "bob"]
    assert rows["owner"]["grants"] == [{"env": "*", "role": "admin", "only": []}]
    assert [(g["env"], g["role"], g["only"]) for g in rows["bob"]["grants"]] == [
        ("dev", "read", ["db/*"])
    ]
    assert rows["alice"]["added_by"] == "owner" and rows["alice"]["kind"] == "person"
    shown = json.loads(owner(["access", "principal", "show", "alice", "--json"]))
    assert shown == rows["alice"]
    mine = json.loads(as_("alice", ["access", "whoami", "--json"]).stdout)
    assert (mine["principal"], mine["grants"]) == ("alice", rows["alice"]["grants"])


def test_a_grant_seals_the_key_of_the_environment_to_the_principal(team: Path) -> None:
    rows = sql("SELECT env, principal_id FROM env_keys WHERE principal_id != 'owner'")
    assert sorted(rows) == [("dev", "alice"), ("dev", "bob")]
    data = json.loads(owner(["access", "grant", "alice", "-e", "prod", "--json"]))
    assert data == {"principal": "alice", "env": "prod", "role": "read", "only": []}
    assert ("prod", "alice") in sql("SELECT env, principal_id FROM env_keys")


# --- 1. a second principal: dev, not prod, whatever the SQL says --------------


def test_alice_reads_dev_with_her_own_passphrase_but_not_prod(team: Path) -> None:
    assert as_("alice", ["get", "db/url", "-e", "dev"]).stdout == DEV["db/url"] + "\n"
    refused(as_("alice", ["get", "db/url", "-e", "prod"]), 4, NO_PROD)


def edit_policy(change: Any) -> None:
    """An SQL edit of the access policy's body (its signature left as it was)."""
    (body,) = sql("SELECT body FROM access_policy WHERE id = 1")[0]
    policy = json.loads(bytes(body))
    change(policy)
    edited = json.dumps(policy, sort_keys=True, separators=(",", ":")).encode()
    sql("UPDATE access_policy SET body = ? WHERE id = 1", edited)


def test_an_sql_grant_of_prod_is_exit_5_for_everyone_and_never_the_value(team: Path) -> None:
    refused(as_("alice", ["get", "db/url", "-e", "prod"]), 4, NO_PROD)
    edit_policy(lambda p: p["grants"].update(prod={"alice": p["grants"]["dev"]["alice"]}))
    refused(as_("alice", ["get", "db/url", "-e", "prod"]), 5, "access policy")
    refused(as_("alice", ["get", "db/url", "-e", "dev"]), 5, "access policy")
    refused(invoke(["get", "db/url", "-e", "prod"]), 5, "access policy")


def copy_alice_dev_key_row_to_prod() -> None:
    sql("INSERT INTO env_keys SELECT 'prod', principal_id, sealed_by, sealed FROM env_keys "
        "WHERE env = 'dev' AND principal_id = 'alice'")  # fmt: skip


def test_alice_dev_key_row_copied_to_prod_gives_her_no_prod_value(team: Path) -> None:
    copy_alice_dev_key_row_to_prod()
    result = as_("alice", ["get", "db/url", "-e", "prod"])
    assert result.exit_code in (4, 5) and PROD["db/url"] not in result.stdout + result.stderr


def test_alice_prod_key_row_replaced_by_her_dev_row_is_exit_5(team: Path) -> None:
    owner(["access", "grant", "alice", "-e", "prod"])
    sql("DELETE FROM env_keys WHERE env = 'prod' AND principal_id = 'alice'")
    copy_alice_dev_key_row_to_prod()  # sealed to her, but for dev: bound to its environment
    refused(as_("alice", ["get", "db/url", "-e", "prod"]), 5, "the key of 'prod'")
    assert as_("alice", ["get", "db/url", "-e", "dev"]).stdout == DEV["db/url"] + "\n"


def test_alice_key_row_deleted_gives_her_no_value(team: Path) -> None:
    sql("DELETE FROM env_keys WHERE env = 'dev' AND principal_id = 'alice'")
    result = as_("alice", ["get", "db/url", "-e", "dev"])
    assert result.exit_code != 0 and DEV["db/url"] not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")


def test_verify_finds_a_granted_key_row_deleted(team: Path) -> None:
    sql("DELETE FROM env_keys WHERE env = 'dev' AND principal_id = 'alice'")
    assert invoke(["verify"]).exit_code == 5


# --- 2. bad input, one test each ------------------------------------------------

OWNERS = "the owner's to do"
ADMINS = "for the owner or an admin of 'dev'"
CAROL = "principal 'carol' does not exist"
ADD = "access principal add"
# case: (who runs it: owner, alice, bob or carol (no such principal), the command,
# exit code, kind, what the error says)
BAD = {
    "grant-unknown": ("owner", "access grant carol -e dev", 3, "principal_not_found", CAROL),
    "revoke-unknown": ("owner", "access revoke carol -e dev", 3, "principal_not_found", CAROL),
    "show-unknown": ("owner", "access principal show carol", 3, "principal_not_found", CAROL),
    "rm-unknown": ("owner", "access principal rm carol", 3, "principal_not_found", CAROL),
    "as-unknown": ("carol", "get db/url -e dev", 3, "principal_not_found", "'carol'"),
    "grant-missing-env": ("owner", "access grant alice -e qa", 3, "environment_not_found", "'qa'"),
    "add-existing-principal": ("owner", f"{ADD} alice", 7, "already_exists", "'alice' exists"),
    "add-owner": ("owner", f"{ADD} owner", 7, "already_exists", "principal 'owner' exists"),
    "revoke-owner": ("owner", "access revoke owner -e dev", 7, "conflict", "last admin"),
    "rm-owner": ("owner", "access principal rm owner", 7, "conflict", "cannot be removed"),
    "name-uppercase": ("owner", f"{ADD} Carol", 2, "usage_error", "invalid principal name"),
    "name-digit-first": ("owner", f"{ADD} 1carol", 2, "usage_error", "invalid principal name"),
    "name-too-long": ("owner", f"{ADD} {'c' * 65}", 2, "usage_error", "invalid principal name"),
    "name-slash": ("owner", f"{ADD} a/b", 2, "usage_error", "invalid principal name"),
    "role-other": ("owner", "access grant alice -e prod --role owner", 2, "usage_error", "--role"),
    "writer-grant": ("alice", "access grant bob -e dev", 4, "access_denied", ADMINS),
    "writer-revoke": ("alice", "access revoke bob -e dev", 4, "access_denied", ADMINS),
    "non-owner-add": ("alice", f"{ADD} carol", 4, "access_denied", OWNERS),
    "non-owner-rm": ("alice", "access principal rm bob", 4, "access_denied", OWNERS),
    "no-grant-on-prod": ("alice", "ls -e prod", 4, "access_denied", NO_PROD),
    "read-role-put": ("bob", "put db/url -e dev", 4, "access_denied", "put needs write"),
    "writer-purge": ("alice", "rm db/url -e dev --purge --yes", 4, "access_denied", "--purge"),
    "scope-get": ("bob", "get api/key -e dev", 4, "access_denied", "scope in 'dev' (db/*)"),
    "scope-history": ("bob", "history api/key -e dev", 4, "access_denied", "in 'dev' (db/*)"),
    "wrong-passphrase": ("alice", "get db/url -e dev", 4, "wrong_passphrase", "wrong passphrase"),
    "session-of-another": ("bob", "get db/url -e dev", 4, "session_invalid", "not 'bob's"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused(team: Path, case: str) -> None:
    who, command, code, kind, needle = BAD[case]
    args = command.split() if who == "owner" else ["--as", who, *command.split()]
    env: dict[str, Any] = {"BSECRETS_NEW_PASSPHRASE": "carol's own long passphrase"}
    if who in PASSES:
        env["BSECRETS_PASSPHRASE"] = PASSES[who]
    if case == "wrong-passphrase":
        env["BSECRETS_PASSPHRASE"] = "not alice's passphrase at all"
    if case == "session-of-another":
        env.update(session_of(unlock("alice")))
    before = sql("SELECT body FROM access_policy")
    refused(invoke(args, input="new value", env=env), code, needle)
    error = json.loads(invoke([*args, "--json"], input="new value", env=env).stderr)
    assert (error["exit_code"], error["kind"]) == (code, kind), error
    assert sql("SELECT body FROM access_policy") == before  # nothing changed


def test_add_without_a_new_passphrase_or_a_terminal_is_exit_2(team: Path) -> None:
    refused(invoke(["access", "principal", "add", "carol"]), 2, "needs a passphrase of its own")
    assert "carol" not in owner(["access", "principal", "ls"])


def test_a_session_after_the_revoke_is_refused(team: Path) -> None:
    session = session_of(unlock("alice"))
    assert invoke(["get", "db/url", "-e", "dev"], env=session).stdout == DEV["db/url"] + "\n"
    owner(["access", "revoke", "alice", "-e", "dev"])
    refused(
        invoke(["get", "db/url", "-e", "dev"], env=session),
        4,
        "principal 'alice' has no access to environment 'dev'",
    )


# --- 3, 4. revocation re-keys, and keeps every value --------------------------


def test_after_a_revoke_alice_old_key_opens_no_row_and_the_owner_new_key_all(team: Path) -> None:
    old = session_masters(unlock("alice"))["dev"]
    assert all(opens(old, "dev"))  # the control: before the revoke her key opens every row
    data = json.loads(owner(["access", "revoke", "alice", "-e", "dev", "--json"]))
    assert data == {"principal": "alice", "env": "dev", "changed": True}
    owner(["put", "db/url", "-e", "dev"], input="postgres://dev-after")
    assert not any(opens(old, "dev"))
    assert all(opens(session_masters(unlock())["dev"], "dev"))
    assert [
        env for env, who in sql("SELECT env, principal_id FROM env_keys") if who == "alice"
    ] == []


def test_a_revoke_keeps_every_secret_and_version(team: Path) -> None:
    owner(["put", "db/url", "-e", "dev"], input="postgres://dev-v2")
    owner(["rm", "api/key", "-e", "dev"])
    listing = ["ls", "-e", "dev", "--json"]
    before = [owner(listing), *(owner(["history", n, "-e", "dev", "--json"]) for n in DEV)]
    owner(["access", "revoke", "alice", "-e", "dev"])
    assert before == [owner(listing), *(owner(["history", n, "-e", "dev", "--json"]) for n in DEV)]
    assert owner(["get", "db/url", "-e", "dev", "--version", "1"]) == DEV["db/url"] + "\n"
    assert owner(["get", "db/url", "-e", "dev"]) == "postgres://dev-v2\n"
    assert owner(["get", "db/password", "-e", "dev"]) == DEV["db/password"] + "\n"
    owner(["restore", "api/key", "-e", "dev"])
    assert owner(["get", "api/key", "-e", "dev"]) == DEV["api/key"] + "\n"
    assert owner(["get", "db/url", "-e", "prod"]) == PROD["db/url"] + "\n"
    assert invoke(["verify"]).exit_code == 0


def test_revoking_one_without_a_grant_changes_nothing(team: Path) -> None:
    data = json.loads(owner(["access", "revoke", "alice", "-e", "prod", "--json"]))
    assert data == {"principal": "alice", "env": "prod", "changed": False}


# --- 5. scopes: bulk reads keep only names in scope ------------------------------


def test_bob_scope_filters_ls_and_export(team: Path) -> None:
    listed = json.loads(as_("bob", ["ls", "-e", "dev", "--json"]).stdout)
    assert sorted(row["name"] for row in listed) == ["db/password", "db/url"]
    exported = json.loads(as_("bob", ["export", "-e", "dev", "--format", "json"]).stdout)
    assert exported == {"db/password": DEV["db/password"], "db/url": DEV["db/url"]}


def test_bob_scope_filters_exec(team: Path) -> None:
    code = "import os; print(sorted(k for k in os.environ if k.startswith(('DB_', 'API_'))))"
    proc = run_cli(["--as", "bob", "exec", "-e", "dev", "--", sys.executable, "-c", code],
                   env={"BSECRETS_PASSPHRASE": PASSES["bob"]})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == "['DB_PASSWORD', 'DB_URL']\n"


def test_alice_writes_dev_and_the_owner_still_verifies(team: Path) -> None:
    assert as_("alice", ["put", "db/new", "-e", "dev"], input="from-alice").exit_code == 0
    assert owner(["get", "db/new", "-e", "dev"]) == "from-alice\n"
    assert invoke(["verify"]).exit_code == 0


# --- 6. audit: other principals' events reach the owner's log -------------------


def test_alice_events_allowed_and_denied_reach_the_owner_log_late(team: Path) -> None:
    assert as_("alice", ["get", "db/url", "-e", "dev"]).exit_code == 0
    assert as_("alice", ["get", "db/url", "-e", "prod"]).exit_code == 4
    assert sql("SELECT principal FROM audit_intake_members") == [("alice",), ("alice",)]
    hers = [e for e in audit_events() if e["actor"]["principal"] == "alice"]
    assert sql("SELECT principal FROM audit_intake_members") == []  # folded into the chain
    assert [(e["action"], e["env"], e["outcome"], e["late"]) for e in hers] == [
        ("get", "dev", "ok", True),
        ("get", "prod", "denied", True),
    ]
    assert not any(value in json.dumps(hers) for value in SECRET_VALUES)


def test_alice_cannot_read_the_audit_log(team: Path) -> None:
    result = as_("alice", ["audit", "log", "--json"])
    assert result.exit_code == 4 and json.loads(result.stderr)["kind"] == "access_denied"


def test_alice_refused_audit_log_has_a_hint(team: Path) -> None:
    refused(as_("alice", ["audit", "log"]), 4, "the owner's to read")


def test_alice_intake_row_deleted_is_exit_5_for_the_owner(team: Path) -> None:
    assert as_("alice", ["put", "db/url", "-e", "dev"], input="from-alice").exit_code == 0
    assert sql("DELETE FROM audit_intake_members RETURNING principal") == [("alice",)]
    refused(invoke(["get", "db/url", "-e", "dev"]), 5, "audit log")
    assert invoke(["verify"]).exit_code == 5


# What a principal's own code could do: the façade's role check left out. Bob (read)
# holds dev's key, so his rows are well formed; his sealed entry vouches for a write
# his grant does not allow, so the owner's next command refuses the change (exit 5).
BOBS_OWN_CODE = """
import sys
from bsecrets.services.access import AccessGate
AccessGate.authorize = lambda *args, **kwargs: None
from bsecrets.cli.app import main
main()
"""


def test_a_write_by_a_read_only_principal_own_code_is_exit_5_for_the_owner(team: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BOBS_OWN_CODE, "--as", "bob", "put", "db/url", "-e", "dev"],
        input=b"forged-by-bob", capture_output=True, check=False,
        env={**os.environ, "BSECRETS_PASSPHRASE": PASSES["bob"]},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # the control: the write itself went through
    assert sql("SELECT principal FROM audit_intake_members") == [("bob",)]
    result = invoke(["get", "db/url", "-e", "dev"])
    refused(result, 5)
    assert "forged-by-bob" not in result.stdout + result.stderr


# --- 7. sessions ------------------------------------------------------------------


def test_alice_session_implies_alice(team: Path) -> None:
    session = session_of(unlock("alice"))
    assert (
        json.loads(invoke(["access", "whoami", "--json"], env=session).stdout)["principal"]
        == "alice"
    )
    refused(
        invoke(["get", "db/url", "-e", "prod"], env=session), 4, "principal 'alice' has no access"
    )


# --- 8. principal rm ----------------------------------------------------------------


def test_principal_rm_rekeys_and_alice_can_no_longer_unlock(team: Path) -> None:
    token = unlock("alice")
    old = session_masters(token)["dev"]
    assert all(opens(old, "dev"))  # the control
    data = json.loads(owner(["access", "principal", "rm", "alice", "--json"]))
    assert data == {"principal": "alice", "rekeyed": ["dev"]}
    assert not any(opens(old, "dev"))
    result = as_("alice", ["get", "db/url", "-e", "dev"])
    refused(result, 3, "principal 'alice' does not exist")
    result = invoke(["get", "db/url", "-e", "dev"], env=session_of(token))
    assert result.exit_code != 0 and DEV["db/url"] not in result.stdout + result.stderr
    assert "alice" not in owner(["access", "principal", "ls"])
    assert as_("bob", ["get", "db/url", "-e", "dev"]).stdout == DEV["db/url"] + "\n"
    assert invoke(["verify"]).exit_code == 0


def test_a_removed_principal_session_is_refused_not_called_tampering(team: Path) -> None:
    token = unlock("alice")
    owner(["access", "principal", "rm", "alice"])
    refused(invoke(["get", "db/url", "-e", "dev"], env=session_of(token)), 3)


@pytest.mark.parametrize("batch", ["import", "provision", "promote"])
def test_a_principals_batch_of_writes_is_witnessed_whole(team: Path, batch: str) -> None:
    """Several writes of a non-owner principal in one transaction (a batch): each of
    its intake entries starts where the one before left, so the owner's chain accepts
    them all, and the owner's next read is not refused as a change the log never saw."""
    (team / "in.env").write_text("NEW_A=1\nNEW_B=2\nNEW_C=3\n")
    profile = team / "bsecrets.yaml"
    text = profile.read_text().replace(
        "  dev:\n    backend: local\n",
        "  dev:\n    backend: local\n    provision:\n      gen/a: hex:8\n      gen/b: hex:8\n",
    )
    profile.write_text(text + "promote:\n  prod:\n    dev:\n      names: ['db/url']\n")
    owner(["access", "grant", "alice", "-e", "prod", "--role", "read"])
    args = {
        "import": ["import", "in.env", "-e", "dev"],
        "provision": ["provision", "-e", "dev"],
        "promote": ["promote", "--from", "prod", "--to", "dev", "--only", "db/*", "--yes"],
    }[batch]
    result = as_("alice", args)
    assert result.exit_code == 0, result.stderr
    listed = json.loads(owner(["ls", "-e", "dev", "--json"]))
    if batch == "promote":
        assert owner(["get", "db/url", "-e", "dev"]) == PROD["db/url"] + "\n"
    else:
        assert len(listed) > len(DEV)
    assert invoke(["audit", "verify"]).exit_code == 0
    assert invoke(["verify"]).exit_code == 0
