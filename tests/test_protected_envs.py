"""Protected environments (#13) through the real CLI: ``env protect/unprotect``, what
a guarded operation asks for (--reason, --yes, a one-time code), a profile's
``protected: true`` not yet applied, the audit events (justification, denied), and
the signed access policy edited, removed or rolled back in the SQLite file.

Each test has its own vault and seed, and at most three accepted codes of it, of
increasing steps (confirm, protect, one more). No time is asserted, nothing waits."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import assert_error, invoke
from helpers.totp import CODE_HINT, Authenticator, events, kind_of, ok, refused, run

REASON = "INC-42 rotate the DB password"
GO = ["--reason", REASON, "--yes"]


def sql(statement: str, *params: Any) -> list[Any]:
    """One statement on the vault file (in the working folder), committed."""
    db = sqlite3.connect(Path.cwd() / ".bsecrets" / "vault.db")
    try:
        with db:
            return db.execute(statement, params).fetchall()
    finally:
        db.close()


def enrolled() -> Authenticator:
    auth = Authenticator(ok(["mfa", "enroll"]).stdout.strip())
    ok(["mfa", "confirm"], auth.code())
    return auth


def add_to_prod(lines: str) -> None:
    """Lines added to prod's entry in the profile."""
    profile, entry = Path.cwd() / "bsecrets.yaml", "  prod:\n    backend: local\n"
    text = profile.read_text()
    assert text.count(entry) == 1
    profile.write_text(text.replace(entry, entry + lines))


def declare_protected() -> None:
    add_to_prod("    protected: true\n")


def protected_with(work: Path, mfa: str) -> Authenticator:
    """Secrets for every change to act on, a 'provision:' list, prod protected."""
    for args in (["put", "X"], ["put", "X"], ["put", "Y"], ["rm", "Y"]):
        ok([*args, "-e", "prod"])
    add_to_prod("    provision:\n      gen/pw: password:16\n")
    (work / "in.env").write_text("IMPORTED=1\n")
    auth = enrolled()
    ok(["env", "protect", "prod", "--mfa", mfa], auth.code())
    return auth


@pytest.fixture
def prod(vault: Path) -> Authenticator:
    """prod protected (--mfa writes), holding X (v1, v2) and Y (deleted); one code left."""
    return protected_with(vault, "writes")


@pytest.fixture
def prod_all(vault: Path) -> Authenticator:
    """prod protected with --mfa all; one code left."""
    return protected_with(vault, "all")


CHANGES = {
    "put": ["put", "X", "-e", "prod"],
    "rm": ["rm", "X", "-e", "prod"],
    "restore": ["restore", "Y", "-e", "prod"],
    "rollback": ["rollback", "X", "--to", "1", "-e", "prod"],
    "import": ["import", "in.env", "-e", "prod"],
    "provision": ["provision", "-e", "prod"],
}
READS = {
    "get": ["get", "X", "-e", "prod"],
    "ls": ["ls", "-e", "prod"],
    "history": ["history", "X", "-e", "prod"],
    "export": ["export", "-e", "prod"],
    "diff": ["diff", "dev", "prod"],
    "exec": ["exec", "-e", "prod", "--", "true"],
}


def versions() -> list[Any]:
    return sql("SELECT count(*) FROM versions")


# --- env protect -----------------------------------------------------------------


def test_protect_without_an_enrolled_factor_is_mfa_required(vault: Path) -> None:
    refused(["env", "protect", "prod"], 4, "none enrolled", "mfa enroll", otp="123456")
    assert kind_of(["env", "protect", "prod"], "123456") == (4, "mfa_required")
    assert [e["outcome"] for e in events("env.protect")] == ["denied", "denied"]


def test_protect_without_a_code_is_mfa_required(vault: Path) -> None:
    enrolled()
    refused(["env", "protect", "prod"], 4, "needs a one-time code", "BSECRETS_OTP")
    assert kind_of(["env", "protect", "prod"]) == (4, "mfa_required")
    ok(CHANGES["put"])  # prod is not protected


def test_protect_with_an_unknown_mfa_mode_is_a_usage_error(vault: Path) -> None:
    refused(["env", "protect", "prod", "--mfa", "reads"], 2, "--mfa takes writes or all",
            hint="hint: writes: ")  # fmt: skip
    assert kind_of(["env", "protect", "prod", "--mfa", "reads"]) == (2, "usage_error")


def test_protect_an_unknown_environment_is_not_found(vault: Path) -> None:
    refused(["env", "protect", "nowhere"], 3, "unknown environment 'nowhere'", otp="123456")


def test_protect_needs_only_a_code_and_records_no_reason_when_none_is_given(
    vault: Path,
) -> None:
    auth = enrolled()
    ok(["env", "protect", "prod"], auth.code())  # no --reason, no --yes, no terminal
    (event,) = events("env.protect")
    assert (event["outcome"], event["details"]["mfa"]) == ("ok", "writes")
    assert "justification" not in event


def test_protect_records_a_signed_policy_held_by_access(vault: Path) -> None:
    auth = enrolled()
    result = ok(["env", "protect", "prod", "--json", "--reason", REASON], auth.code())
    assert json.loads(result.stdout) == {"env": "prod", "mfa": "writes", "changed": True,
                                         "promote_approval": False}  # fmt: skip
    ((body, signature),) = sql("SELECT body, signature FROM access_policy WHERE id = 1")
    assert json.loads(body)["protected"]["prod"]["mfa"] == "writes" and len(signature) == 64
    assert sql("SELECT count(*) FROM manifests WHERE env = '__access__'") == [(1,)]
    (event,) = events("env.protect")
    assert (event["env"], event["outcome"], event["details"]["mfa"]) == ("prod", "ok", "writes")
    assert event["justification"] == REASON


# --- protecting again: a change of a protected environment ------------------------


@pytest.mark.parametrize("mfa", ["all", "writes"])
def test_protect_of_a_protected_environment_asks_what_a_change_asks(
    prod: Authenticator, mfa: str
) -> None:
    again = ["env", "protect", "prod", "--mfa", mfa]
    refused(again, 2, "environment 'prod' is protected", "this command needs a reason",
            otp=prod.wrong())  # fmt: skip
    assert kind_of(again) == (2, "confirmation_needed")
    refused([*again, "--reason", REASON], 2, "this command needs a confirmation", "--yes")
    refused([*again, *GO], 4, "needs a one-time code", "BSECRETS_OTP")
    refused([*again, *GO], 4, "wrong one-time code", otp=prod.wrong(), hint=CODE_HINT)
    assert json.loads(ok([*again, *GO, "--json"], prod.code()).stdout)["changed"] is (mfa == "all")
    protects = events("env.protect")
    assert [e["outcome"] for e in protects] == [
        "ok", "failed", "failed", "failed", "denied", "denied", "ok"]  # fmt: skip
    assert (protects[-1]["details"]["mfa"], protects[-1]["justification"]) == (mfa, REASON)


def test_lowering_all_to_writes_without_a_reason_is_refused(prod_all: Authenticator) -> None:
    lower = ["env", "protect", "prod", "--mfa", "writes"]
    refused(lower, 2, "this command needs a reason", "--reason", otp=prod_all.wrong())
    assert kind_of(lower) == (2, "confirmation_needed")
    refused(READS["get"], 2, "this command needs a reason")  # reads still guarded
    ok([*lower, *GO], prod_all.code())
    ok(READS["get"])


# --- what a change to a protected environment asks for -----------------------------


REFUSALS = {  # what is missing -> (what is given, exit, kind, words, audited outcome)
    "reason": ([], 2, "confirmation_needed", ("this command needs a reason", "--reason"), "failed"),
    "yes": (
        ["--reason", REASON],
        2,
        "confirmation_needed",
        ("this command needs a confirmation", "no terminal", "--yes"),
        "failed",
    ),
    "code": (GO, 4, "mfa_required", ("needs a one-time code", "BSECRETS_OTP"), "denied"),
}


@pytest.mark.parametrize("op", list(CHANGES))
@pytest.mark.parametrize("missing", list(REFUSALS))
def test_a_change_without_what_it_needs_is_refused_and_audited(
    prod: Authenticator, missing: str, op: str
) -> None:
    given, code, kind, words, outcome = REFUSALS[missing]
    before = versions()
    result = refused([*CHANGES[op], *given], code, "environment 'prod' is protected", *words)
    assert f"{op} needs" not in result.stderr  # the message is about "this command"
    assert kind_of([*CHANGES[op], *given]) == (code, kind)
    assert versions() == before
    assert [e["outcome"] for e in events(op)][-2:] == [outcome, outcome]


@pytest.mark.parametrize("op", list(CHANGES))
def test_a_change_with_a_reason_yes_and_a_code_is_done_with_its_justification(
    prod: Authenticator, op: str
) -> None:
    ok([*CHANGES[op], *GO], prod.code())
    event = events(op)[-1]
    assert (event["env"], event["outcome"], event["justification"]) == ("prod", "ok", REASON)


def test_a_wrong_code_is_rejected_and_audited_as_denied(prod: Authenticator) -> None:
    before = versions()
    refused([*CHANGES["put"], *GO], 4, "wrong one-time code", otp=prod.wrong(), hint=CODE_HINT)
    assert kind_of([*CHANGES["put"], *GO], prod.wrong()) == (4, "mfa_rejected")
    assert versions() == before
    last = events("put")[-1]
    assert (last["outcome"], last["reason"]) == ("denied", "wrong one-time code")


def test_a_code_is_accepted_once_on_a_protected_environment(prod: Authenticator) -> None:
    code = prod.code()
    ok([*CHANGES["put"], *GO], code)
    refused([*CHANGES["put"], *GO], 4, "already used", otp=code, hint="hint: wait for the next")
    assert kind_of([*CHANGES["put"], *GO], code) == (4, "mfa_rejected")


@pytest.mark.parametrize("code", ["12345", "1234567", "12a456"])
def test_a_code_that_is_not_six_digits_is_a_usage_error(prod: Authenticator, code: str) -> None:
    refused([*CHANGES["put"], *GO], 2, "6 digits", otp=code)


def test_five_wrong_codes_lock_out_the_changes_until_a_time(prod: Authenticator) -> None:
    for _ in range(5):
        assert run([*CHANGES["put"], *GO], prod.wrong()).exit_code == 4
    right = prod.code()
    refused([*CHANGES["put"], *GO], 4, "locked out", "until", otp=right,
            hint="hint: wait until ")  # fmt: skip
    assert kind_of([*CHANGES["put"], *GO], right) == (4, "locked_out")
    assert [e["outcome"] for e in events("put")][-7:] == ["denied"] * 7


def test_the_reason_can_come_from_bsecrets_reason(prod: Authenticator) -> None:
    ok([*CHANGES["put"], "--yes"], prod.code(), BSECRETS_REASON="from the environment")
    assert events("put")[-1]["justification"] == "from the environment"


BAD_REASONS = {
    "empty": ("  ", "the reason is empty"),
    "two lines": ("two\nlines", "control character"),
    "too long": ("x" * 513, "longer than 512 characters"),
}


@pytest.mark.parametrize("bad", list(BAD_REASONS))
def test_a_bad_reason_is_a_usage_error_with_a_hint(prod: Authenticator, bad: str) -> None:
    reason, needle = BAD_REASONS[bad]
    before = versions()
    refused([*CHANGES["put"], "--reason", reason, "--yes"], 2, needle, otp=prod.code())
    assert kind_of([*CHANGES["put"], "--reason", reason, "--yes"]) == (2, "usage_error")
    assert versions() == before


@pytest.mark.parametrize("op", list(READS))
def test_reads_need_nothing_when_only_writes_are_protected(prod: Authenticator, op: str) -> None:
    ok(READS[op])


def test_an_unprotected_environment_is_unaffected(prod: Authenticator) -> None:
    for args in (["put", "A"], ["get", "A"], ["rm", "A"], ["restore", "A"], ["ls"]):
        ok([*args, "-e", "dev"])
    assert all("justification" not in e for e in events("put") if e["env"] == "dev")


# --- --mfa all ---------------------------------------------------------------------


@pytest.mark.parametrize("op", list(READS))
def test_with_mfa_all_a_read_without_a_reason_is_refused(prod_all: Authenticator, op: str) -> None:
    refused(READS[op], 2, "is protected", "this command needs a reason")
    assert kind_of([*GO, *READS[op]]) == (4, "mfa_required")
    action = "ls" if op == "exec" else op  # exec lists the names first (see below)
    outcomes = [e["outcome"] for e in events(action) if e["env"] == "prod"]  # diff: one per env
    assert outcomes[-2:] == ["failed", "denied"]


def test_with_mfa_all_a_refused_exec_is_about_this_command(prod_all: Authenticator) -> None:
    before = events("ls")
    result = refused(READS["exec"], 2, "environment 'prod' is protected: this command needs a "
                     "reason for the audit log", "--reason")  # fmt: skip
    assert "ls" not in result.stderr.splitlines()[0]  # exec lists the names: an ls event
    assert [e["outcome"] for e in events("ls")[len(before) :]] == ["failed"]
    refused(["--reason", REASON, *READS["exec"]], 2, "this command needs a confirmation")


def test_with_mfa_all_a_read_with_everything_is_done_and_justified(prod_all: Authenticator) -> None:
    assert ok([*READS["get"], *GO], prod_all.code()).stdout == "value\n"
    assert events("get")[-1]["justification"] == REASON


# --- declared in the profile, not applied in the vault --------------------------------


def test_declared_but_not_applied_refuses_changes_and_allows_reads(vault: Path) -> None:
    ok(["put", "X", "-e", "prod"])
    declare_protected()
    refused([*CHANGES["put"], *GO], 4, "declared protected", "env protect prod", otp="123456")
    assert kind_of([*CHANGES["put"], *GO], "123456") == (4, "protection_not_applied")
    assert events("put")[-1]["outcome"] == "denied"
    assert ok(READS["get"]).stdout == "value\n"
    ok(["put", "X", "-e", "dev"])


def test_protect_applies_a_declared_protection(vault: Path) -> None:
    declare_protected()
    auth = enrolled()
    ok(["env", "protect", "prod"], auth.code())
    refused(CHANGES["put"], 2, "needs a reason")
    ok([*CHANGES["put"], *GO], auth.code())


def test_unprotect_is_refused_while_the_profile_declares_it(prod: Authenticator) -> None:
    declare_protected()
    refused(["env", "unprotect", "prod", *GO], 7, "declares environment 'prod' protected",
            "protected: true", otp="123456")  # fmt: skip
    assert kind_of(["env", "unprotect", "prod", *GO], "123456") == (7, "conflict")
    refused(CHANGES["put"], 2, "needs a reason")


# --- env unprotect ------------------------------------------------------------------


def test_unprotect_asks_what_a_change_asks(prod: Authenticator) -> None:
    refused(["env", "unprotect", "prod"], 2, "this command needs a reason")
    refused(["env", "unprotect", "prod", "--reason", REASON], 2, "--yes")
    refused(["env", "unprotect", "prod", *GO], 4, "needs a one-time code")
    refused(["env", "unprotect", "prod", *GO], 4, "wrong", otp=prod.wrong(), hint=CODE_HINT)
    ok(["env", "unprotect", "prod", *GO], prod.code())
    assert [e["outcome"] for e in events("env.unprotect")] == [
        "failed", "failed", "denied", "denied", "ok"]  # fmt: skip
    assert events("env.unprotect")[-1]["justification"] == REASON
    ok(CHANGES["put"])  # nothing asked any more


def test_unprotect_of_an_unprotected_environment_changes_nothing(vault: Path) -> None:
    assert ok(["env", "unprotect", "dev"]).stderr == "environment 'dev' was not protected\n"


# --- the policy tampered with in the file ----------------------------------------------


def _edit(column: str, change: Callable[[bytes], bytes]) -> None:
    ((value,),) = sql(f"SELECT {column} FROM access_policy")
    sql(f"UPDATE access_policy SET {column} = ?", change(bytes(value)))


TAMPERS: dict[str, Callable[[], object]] = {
    "body edited": lambda: _edit("body", lambda body: body.replace(b'"prod"', b'"prud"')),
    "signature edited": lambda: _edit("signature", lambda sig: bytes([sig[0] ^ 1]) + sig[1:]),
    "row deleted": lambda: sql("DELETE FROM access_policy"),
    "row and manifest deleted": lambda: (
        sql("DELETE FROM access_policy"),
        sql("DELETE FROM manifests WHERE env = '__access__'"),
    ),
}


def assert_integrity_error(args: list[str]) -> None:
    result = run(args, "123456")
    assert_error(result, 5)
    assert kind_of(args, "123456") == (5, "integrity_error")


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_a_tampered_policy_stops_the_next_command_and_verify(
    prod: Authenticator, tamper: str
) -> None:
    TAMPERS[tamper]()
    before = versions()
    assert_integrity_error(["put", "X", "-e", "prod"])
    assert versions() == before  # nothing written
    assert_integrity_error(["ls", "-e", "dev"])
    verify = invoke(["verify", "--json"])
    assert verify.exit_code == 5 and json.loads(verify.stdout)["problems"], verify.stdout


def test_an_older_policy_and_manifest_put_back_are_caught(prod: Authenticator) -> None:
    (old_row,) = sql("SELECT id, body, signature FROM access_policy")
    (old_manifest,) = sql("SELECT * FROM manifests WHERE env = '__access__'")
    ok(["env", "protect", "prod", "--mfa", "all", *GO], prod.code())  # generation 2
    sql("INSERT OR REPLACE INTO access_policy VALUES (?, ?, ?)", *old_row)
    sql(f"INSERT OR REPLACE INTO manifests VALUES ({', '.join('?' * len(old_manifest))})",
        *old_manifest)  # fmt: skip
    assert_integrity_error(["get", "X", "-e", "prod"])
    assert_integrity_error(["ls", "-e", "dev"])
    assert invoke(["verify"]).exit_code == 5


def test_a_removed_policy_is_caught_before_a_missing_name_is_looked_up(
    prod_all: Authenticator,
) -> None:
    TAMPERS["row and manifest deleted"]()
    assert_integrity_error(["get", "NOPE", "-e", "prod"])  # not 3: the chain witness comes first


def test_env_ls_shows_the_protection_the_vault_records(prod_all: Authenticator) -> None:
    rows = {row["name"]: row for row in json.loads(ok(["env", "ls", "--json"]).stdout)}
    assert (rows["prod"]["protection"], rows["prod"]["protected"]) == ("all", False)
    assert rows["dev"]["protection"] is None
    table = {line.split()[0]: line for line in ok(["env", "ls"]).stdout.splitlines()[1:]}
    assert " all " in table["prod"] and " all " not in table["dev"]
