"""Pipeline tokens (#13): ``token issue/ls/revoke/extend`` and BSECRETS_TOKEN, through
the real CLI and the real vault file. Expiry is checked with a fixed clock through
the façade (time is the subject there); nothing here waits."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke, run_cli
from helpers.values import PASSPHRASE

from bsecrets.config.loader import load_profile
from bsecrets.errors import TokenExpired
from bsecrets.services.manager import SecretsManager
from bsecrets.timeutil import parse_iso
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.tokens import principal_named_by


def ok(args: list[str], **env: str) -> str:
    result = invoke(args, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def issue(*args: str) -> dict[str, str]:
    data: dict[str, str] = json.loads(ok(["token", "issue", *args, "--json"]))
    return data


def as_token(token: str) -> dict[str, str]:
    """The environment of a command that holds the token and nothing else."""
    return {"BSECRETS_TOKEN": token, "BSECRETS_PASSPHRASE": ""}


def refused(args: list[str], code: int, *needles: str, **env: str) -> None:
    result = invoke(args, env=env or None)
    assert_error(result, code, *needles)
    assert result.stderr.splitlines()[1].startswith("hint: "), result.stderr


def kind(args: list[str], **env: str) -> str:
    result = invoke([*args, "--json"], env=env or None)
    return str(json.loads(result.stderr.splitlines()[-1])["kind"])


@pytest.fixture
def prod(vault: Path) -> Path:
    ok(["put", "deploy/key", "--value", "k1", "-e", "prod"])
    ok(["put", "db/password", "--value", "p1", "-e", "prod"])
    ok(["put", "dev-only", "--value", "d1", "-e", "dev"])
    return vault


# --- issue, use, list --------------------------------------------------------------


def test_a_token_reads_its_environment_with_nothing_else(prod: Path) -> None:
    token = issue("-e", "prod", "--ttl", "30m", "--name", "ci-deploy")["token"]
    assert ok(["get", "deploy/key", "-e", "prod"], **as_token(token)) == "k1\n"
    exported = json.loads(ok(["export", "-e", "prod", "--format", "json"], **as_token(token)))
    assert exported == {"db/password": "p1", "deploy/key": "k1"}


def test_a_ci_job_script_runs_with_only_the_token(prod: Path, tmp_path: Path) -> None:
    token = issue("-e", "prod", "--ttl", "30m")["token"]
    script = tmp_path / "job.sh"
    script.write_text(
        "set -eu\n"
        'test "$(bsecrets_cli get deploy/key -e prod)" = k1\n'
        "bsecrets_cli export -e prod --format dotenv > /dev/null\n"
        "bsecrets_cli exec -e prod -- sh -c 'test \"$DEPLOY_KEY\" = k1'\n"
        "echo job-done\n"
    )
    script.chmod(stat.S_IRWXU)
    shim = tmp_path / "bin" / "bsecrets_cli"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m bsecrets "$@"\n')
    shim.chmod(stat.S_IRWXU)
    keep = ("HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "PYTHONPATH",
            "BSECRETS_INSECURE_TEST_KDF", "PYTHON_KEYRING_BACKEND")  # fmt: skip
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PATH=f"{shim.parent}:/usr/bin:/bin", BSECRETS_TOKEN=token)
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(b"job-done\n")
    assert "BSECRETS_PASSPHRASE" not in env


def test_the_token_is_printed_once_and_kept_nowhere(prod: Path) -> None:
    issued = issue("-e", "prod", "--name", "ci")
    secret = issued["token"].split(".")[3]
    listed = ok(["token", "ls", "--json"])
    (row,) = json.loads(listed)
    assert row["id"] == issued["id"] and row["name"] == "ci" and row["envs"] == ["prod"]
    assert row["role"] == "read" and row["expired"] is False
    for text in (listed, ok(["audit", "log", "--json"]), ok(["audit", "export"])):
        assert secret not in text and issued["token"] not in text
    database = (Path.cwd() / ".bsecrets" / "vault.db").read_bytes()
    assert secret.encode() not in database


def test_a_token_opens_only_its_environments_and_names(prod: Path) -> None:
    token = issue("-e", "prod", "--only", "deploy/*")["token"]
    refused(
        ["get", "dev-only", "-e", "dev"], 4, "no access to environment 'dev'", **as_token(token)
    )
    refused(["get", "db/password", "-e", "prod"], 4, "scope", "deploy/*", **as_token(token))
    listed = ok(["ls", "-e", "prod", "-q"], **as_token(token))
    assert listed == "deploy/key\n"


def test_a_read_token_does_not_write(prod: Path) -> None:
    token = issue("-e", "prod")["token"]
    (Path.cwd() / "v.txt").write_text("v")
    refused(["put", "x", "--from-file", "v.txt", "-e", "prod"], 4, "may read", **as_token(token))


def test_token_events_name_the_token_principal(prod: Path) -> None:
    issued = issue("-e", "prod")
    ok(["get", "deploy/key", "-e", "prod"], **as_token(issued["token"]))
    invoke(["get", "dev-only", "-e", "dev"], env=as_token(issued["token"]))
    ok(["ls", "-e", "dev"])  # the owner's next command chains them
    events = json.loads(ok(["audit", "log", "--json"]))
    mine = [e for e in events if e["actor"]["principal"] == f"token-{issued['id']}"]
    assert [(e["action"], e["outcome"], e["late"]) for e in mine] == [
        ("get", "ok", True),
        ("get", "denied", True),
    ]


# --- expiry (a fixed clock through the façade) ---------------------------------------


def manager_at(token: str, when: datetime) -> SecretsManager:
    creds = Credentials(token=token, principal=principal_named_by(token))
    return SecretsManager(load_profile(Path("bsecrets.yaml")), creds, clock=lambda: when)


def test_a_token_is_refused_after_its_ttl_and_works_before(prod: Path) -> None:
    issued = issue("-e", "prod", "--ttl", "2s")
    expires = parse_iso(issued["expires_at"])
    before = manager_at(issued["token"], expires - timedelta(seconds=1))
    assert before.get("prod", "deploy/key").value == b"k1"
    before.close()
    after = manager_at(issued["token"], expires + timedelta(seconds=1))
    with pytest.raises(TokenExpired, match="expired at"):
        after.get("prod", "deploy/key")
    after.close()


def test_extend_gives_an_expired_token_more_time(prod: Path) -> None:
    issued = issue("-e", "prod", "--ttl", "2s")
    later = parse_iso(issued["expires_at"]) + timedelta(minutes=5)
    ok(["token", "extend", issued["id"], "--ttl", "1h"])
    extended = manager_at(issued["token"], later)
    assert extended.get("prod", "deploy/key").value == b"k1"
    extended.close()
    (event,) = [
        e for e in json.loads(ok(["audit", "log", "--json"])) if e["action"] == "token.extend"
    ]
    assert event["details"]["token"] == issued["id"]


def test_an_expiry_edited_in_the_file_is_an_integrity_error(prod: Path) -> None:
    issued = issue("-e", "prod", "--ttl", "2s")
    with sqlite3.connect(Path.cwd() / ".bsecrets" / "vault.db") as db:
        (body,) = db.execute("SELECT body FROM access_policy").fetchone()
        data = json.loads(body)
        data["principals"][f"token-{issued['id']}"]["expires_at"] = "9999-01-01T00:00:00.000Z"
        edited = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        db.execute("UPDATE access_policy SET body = ?", (edited,))
    db.close()
    assert (
        kind(["get", "deploy/key", "-e", "prod"], **as_token(issued["token"])) == "integrity_error"
    )
    assert kind(["ls", "-e", "dev"]) == "integrity_error"


# --- revoke ------------------------------------------------------------------------


def test_a_revoked_token_opens_nothing_and_the_environment_was_rekeyed(prod: Path) -> None:
    issued = issue("-e", "prod")
    revoked = json.loads(ok(["token", "revoke", issued["id"], "--json"]))
    assert revoked == {"id": issued["id"], "rekeyed": ["prod"]}
    refused(["get", "deploy/key", "-e", "prod"], 4, "was revoked", **as_token(issued["token"]))
    assert ok(["get", "deploy/key", "-e", "prod"]) == "k1\n"  # the owner reads on
    assert ok(["token", "ls", "--json"]) == "[]\n"
    assert invoke(["verify"]).exit_code == 0


def test_what_a_token_did_is_in_the_log_after_its_revocation(prod: Path) -> None:
    """Its events wait in the intake until the owner's next event; revoking it must
    chain them first (without its public key they would no longer open)."""
    issued = issue("-e", "prod")
    assert ok(["get", "deploy/key", "-e", "prod"], **as_token(issued["token"])) == "k1\n"
    ok(["token", "revoke", issued["id"]])
    rows = json.loads(ok(["audit", "log", "--json"]))
    principal = principal_named_by(issued["token"])
    gets = [r for r in rows if r["action"] == "get" and r.get("late")]
    assert [(r["actor"]["principal"], r["name"]) for r in gets] == [(principal, "deploy/key")]
    assert not [r for r in rows if r["action"] == "audit.intake"], rows
    assert invoke(["audit", "verify"]).exit_code == 0


# --- bad input ---------------------------------------------------------------------


def test_a_token_is_never_taken_from_argv(prod: Path) -> None:
    token = issue("-e", "prod")["token"]
    for args in (["--token", token], [f"--token={token}"]):
        result = run_cli(["get", "deploy/key", "-e", "prod", *args])
        assert result.returncode == 2, result.stderr
        assert token.encode() not in result.stderr + result.stdout
        assert token.split(".")[3].encode() not in result.stderr


def test_a_token_of_another_vault_is_refused(prod: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    made = run_cli(["init", "--env", "prod"], cwd=other, env={"BSECRETS_PASSPHRASE": PASSPHRASE})
    assert made.returncode == 0, made.stderr
    foreign = run_cli(["token", "issue", "-e", "prod", "--json"], cwd=other,
                      env={"BSECRETS_PASSPHRASE": PASSPHRASE})  # fmt: skip
    token = json.loads(foreign.stdout)["token"]
    refused(["get", "deploy/key", "-e", "prod"], 4, "another vault", **as_token(token))
    assert kind(["get", "deploy/key", "-e", "prod"], **as_token(token)) == "token_invalid"


@pytest.mark.parametrize(
    "token",
    ["garbage", "bst1.0.0.0", "bst1." + "a" * 16 + "." + "b" * 12 + "." + "c" * 43],
)
def test_a_malformed_or_unknown_token_is_refused(prod: Path, token: str) -> None:
    result = invoke(["get", "deploy/key", "-e", "prod"], env=as_token(token))
    assert_error(result, 4)
    assert "c" * 43 not in result.stderr


def test_an_altered_token_does_not_open(prod: Path) -> None:
    token = issue("-e", "prod")["token"]
    head, last = token.rsplit(".", 1)
    altered = f"{head}.{'A' if last[0] != 'A' else 'B'}{last[1:]}"
    refused(["get", "deploy/key", "-e", "prod"], 4, "does not open", **as_token(altered))


def test_a_token_starts_no_session(prod: Path) -> None:
    token = issue("-e", "prod")["token"]
    refused(["unlock"], 2, "does not start a session", **as_token(token))


def test_a_token_does_not_issue_tokens(prod: Path) -> None:
    token = issue("-e", "prod")["token"]
    refused(["token", "issue", "-e", "prod"], 4, "owner's", **as_token(token))


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--ttl", "31d"], 2, "at most"),
        (["--ttl", "soon"], 2, "--ttl"),
        (["--role", "owner"], 2, "--role takes"),
        (["--role", "admin"], 2, "a token reads or writes"),
        (["-e", "nowhere"], 3, "nowhere"),
    ],
    ids=["ttl-too-long", "ttl-garbled", "role-other", "role-admin", "unknown-env"],
)
def test_bad_issue_options(prod: Path, args: list[str], code: int, needle: str) -> None:
    refused(["token", "issue", *(args if "-e" in args else ["-e", "prod", *args])], code, needle)


def test_revoke_or_extend_of_an_unknown_token_is_not_found(prod: Path) -> None:
    refused(["token", "revoke", "0123456789ab"], 3, "no token")
    refused(["token", "extend", "0123456789ab", "--ttl", "1h"], 3, "no token")
