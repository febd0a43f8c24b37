"""``bsecrets mfa enroll/confirm/status/clear`` (#13): a TOTP second factor through
the real CLI. Codes are computed from the otpauth URI the enrolment prints, as an
authenticator app would; each test has its own vault, so its own seed, and uses
at most three accepted codes per seed, of increasing steps (replay protection).
Nothing here asserts a time, and nothing waits."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import Result, invoke
from helpers.totp import CODE_HINT, Authenticator, events, kind_of, ok, refused, run

from bsecrets.crypto.totp import code_at, step_of

GO = ["--reason", "INC-7 second factor tests", "--yes"]
ALICE = {"BSECRETS_PASSPHRASE": "alice-pass-123"}


def status(*who: str, **env: str) -> dict[str, Any]:
    """``mfa status --json`` (``who``: e.g. --as alice, with her passphrase in ``env``)."""
    data: dict[str, Any] = json.loads(ok([*who, "mfa", "status", "--json"], **env).stdout)
    return data


def policy() -> dict[str, Any]:
    """The body of the vault's signed access policy, read from the file."""
    db = sqlite3.connect(Path.cwd() / ".bsecrets" / "vault.db")
    try:
        ((body,),) = db.execute("SELECT body FROM access_policy").fetchall()
    finally:
        db.close()
    data: dict[str, Any] = json.loads(body)
    return data


def enroll(*flags: str, otp: str | None = None, **env: str) -> Authenticator:
    result = ok(["mfa", "enroll", *flags], otp, **env)
    assert "BSECRETS_OTP=<code> bsecrets mfa confirm" in result.stderr  # no terminal here
    return Authenticator(result.stdout.strip())


@pytest.fixture
def app(vault: Path) -> Authenticator:
    """The owner's factor, enrolled and confirmed (one code used)."""
    auth = enroll()
    ok(["mfa", "confirm"], otp=auth.code())
    return auth


PROTECT = ["env", "protect", "prod", *GO]


def protect_prod(otp: str) -> Result:
    """A command that asks for a code of the factor in use (and, with a reason and a
    yes, nothing else: protecting prod again is a change of a protected environment)."""
    return run(PROTECT, otp)


# --- enroll, confirm, status ------------------------------------------------------


def test_status_without_a_factor(vault: Path) -> None:
    assert status() == {"principal": "owner", "enrolled": False, "enrolled_at": None,
                        "pending": False, "failures": 0, "locked_until": None}  # fmt: skip
    assert ok(["mfa", "status"]).stdout == "owner: no second factor\n"


def test_enroll_prints_an_otpauth_uri_and_leaves_it_pending(vault: Path) -> None:
    auth = enroll()
    assert len(auth.seed) == 20
    assert status()["pending"] is True and status()["enrolled"] is False
    assert "not confirmed" in ok(["mfa", "status"]).stdout


def test_enroll_json_gives_the_uri_unconfirmed(vault: Path) -> None:
    data = json.loads(ok(["mfa", "enroll", "--json"]).stdout)
    assert data["confirmed"] is False and data["uri"].startswith("otpauth://totp/")


def test_confirm_with_a_current_code_enrols_the_factor(app: Authenticator) -> None:
    state = status()
    assert state["enrolled"] is True and state["pending"] is False
    assert state["enrolled_at"] and state["failures"] == 0 and state["locked_until"] is None
    assert ok(["mfa", "status"]).stdout.startswith("owner: enrolled ")


def test_wrong_code_at_confirm_leaves_nothing_enrolled(vault: Path) -> None:
    auth = enroll()
    refused(["mfa", "confirm"], 4, "wrong one-time code", otp=auth.wrong(),
            hint="hint: check the authenticator app's clock")  # fmt: skip
    assert kind_of(["mfa", "confirm"], otp=auth.wrong()) == (4, "mfa_rejected")
    state = status()
    assert (state["enrolled"], state["pending"]) == (False, True)
    refused(PROTECT, 4, "none enrolled", otp=auth.code())
    ok(["mfa", "confirm"], otp=auth.code())  # the pending enrolment is still there
    assert status()["enrolled"] is True


def test_confirm_without_a_code_is_mfa_required(vault: Path) -> None:
    enroll()
    refused(["mfa", "confirm"], 4, "needs a one-time code", "BSECRETS_OTP")
    assert kind_of(["mfa", "confirm"]) == (4, "mfa_required")


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "12 456"])
def test_confirm_with_a_code_that_is_not_six_digits_is_a_usage_error(
    vault: Path, code: str
) -> None:
    enroll()
    refused(["mfa", "confirm"], 2, "6 digits", otp=code)
    assert status()["pending"] is True


def test_confirm_without_an_enrolment_is_not_found(vault: Path) -> None:
    refused(["mfa", "confirm"], 3, "no enrolment to confirm", "mfa enroll", otp="123456")


def test_enroll_without_a_vault_is_not_found(isolated: Path) -> None:
    refused(["mfa", "enroll"], 3, "no profile found", hint="hint: create one with 'bsecrets init'")


def test_enroll_when_enrolled_is_a_conflict(app: Authenticator) -> None:
    refused(["mfa", "enroll"], 7, "has a second factor enrolled", "--replace")
    assert kind_of(["mfa", "enroll"]) == (7, "already_exists")
    assert status()["pending"] is False


# --- replacing the factor ---------------------------------------------------------


def test_replace_without_a_code_is_refused(app: Authenticator) -> None:
    refused(["mfa", "enroll", "--replace"], 4, "needs a one-time code", "BSECRETS_OTP")
    assert status()["pending"] is False


def test_replace_with_a_wrong_code_is_refused_and_audited_as_denied(app: Authenticator) -> None:
    refused(["mfa", "enroll", "--replace"], 4, "wrong one-time code", otp=app.wrong(),
            hint=CODE_HINT)  # fmt: skip
    assert kind_of(["mfa", "enroll", "--replace"], otp=app.wrong()) == (4, "mfa_rejected")
    assert status()["pending"] is False and status()["failures"] == 2
    enrolls = events("mfa.enroll")
    assert [e["outcome"] for e in enrolls] == ["ok", "denied", "denied"]
    assert enrolls[-1]["reason"] == "wrong one-time code"


def test_replace_with_a_code_of_the_current_factor_swaps_it_on_confirm(
    app: Authenticator,
) -> None:
    new = enroll("--replace", otp=app.code())
    assert new.seed != app.seed
    assert status()["enrolled"] is True and status()["pending"] is True
    ok(["mfa", "confirm"], otp=new.code())
    assert status()["pending"] is False
    refused(PROTECT, 4, "wrong one-time code", otp=app.code(), hint=CODE_HINT)
    assert protect_prod(new.code()).exit_code == 0


def test_replace_does_not_take_a_code_of_the_pending_factor(app: Authenticator) -> None:
    pending = enroll("--replace", otp=app.code())
    refused(["mfa", "enroll", "--replace"], 4, "wrong one-time code", otp=pending.code(),
            hint=CODE_HINT)  # fmt: skip


# --- replay -----------------------------------------------------------------------


def test_a_code_is_accepted_once(app: Authenticator) -> None:
    code = app.code()
    assert protect_prod(code).exit_code == 0
    refused(PROTECT, 4, "already used", otp=code, hint="hint: wait for the next code")
    assert kind_of(PROTECT, otp=code) == (4, "mfa_rejected")


def test_a_code_of_an_older_step_is_refused_after_a_newer_one(app: Authenticator) -> None:
    assert app.last is not None
    current = step_of(datetime.now(UTC))
    newer, older = current + 1, max(current, app.last + 1)
    assert older < newer
    assert protect_prod(code_at(app.seed, newer)).exit_code == 0
    refused(PROTECT, 4, "already used", otp=code_at(app.seed, older))


def test_the_code_that_confirmed_cannot_be_used_again(vault: Path) -> None:
    auth = enroll()
    code = auth.code()
    ok(["mfa", "confirm"], otp=code)
    refused(PROTECT, 4, "already used", otp=code)


# --- lockout ----------------------------------------------------------------------

LOCKED_HINT = "hint: wait, or ask an admin to run 'bsecrets mfa clear {}'"
OWNER_LOCKED_HINT = "hint: wait until {}: the owner's own lockout runs out, no one clears it"


def lock_out(args: list[str], auth: Authenticator, **env: str) -> str:
    """Five wrong codes at ``args``: the principal is locked out; returns until when."""
    for _ in range(4):
        refused(args, 4, "wrong one-time code", otp=auth.wrong(), hint=CODE_HINT, **env)
    refused(args, 4, "wrong one-time code", "locked out until", otp=auth.wrong(),
            hint=CODE_HINT, **env)  # fmt: skip
    state = status(*args[:2], **env) if args[0] == "--as" else status()
    assert state["failures"] == 5 and state["locked_until"], state
    return str(state["locked_until"])


def test_five_wrong_codes_lock_out_until_a_time(app: Authenticator) -> None:
    until = lock_out(PROTECT, app)
    assert f"locked out until {until}" in ok(["mfa", "status"]).stdout
    right = app.code()
    refused(PROTECT, 4, "principal 'owner' is locked out", f"until {until}", otp=right,
            hint=OWNER_LOCKED_HINT.format(until))  # fmt: skip
    assert kind_of(PROTECT, otp=right) == (4, "locked_out")
    assert status()["failures"] == 5  # refused unchecked: not counted


def test_a_correct_code_resets_the_failures(app: Authenticator) -> None:
    for _ in range(4):
        assert protect_prod(app.wrong()).exit_code == 4
    assert status()["failures"] == 4
    assert protect_prod(app.code()).exit_code == 0
    assert status()["failures"] == 0


# --- mfa clear: the owner's command -------------------------------------------------


def test_clear_when_the_owner_is_not_locked_out_changes_nothing(app: Authenticator) -> None:
    for _ in range(4):  # failures, not yet a lockout
        assert protect_prod(app.wrong()).exit_code == 4
    assert ok(["mfa", "clear"]).stderr == "nothing to clear: not locked out\n"
    assert json.loads(ok(["mfa", "clear", "owner", "--json"]).stdout) == {"changed": False}
    assert status()["failures"] == 4


def test_clear_without_a_factor_changes_nothing(vault: Path) -> None:
    assert ok(["mfa", "clear", "owner"]).stderr == "nothing to clear: not locked out\n"
    assert json.loads(ok(["mfa", "clear", "--json"]).stdout) == {"changed": False}


@pytest.mark.parametrize("who", [[], ["owner"]])
def test_the_owner_cannot_clear_its_own_lockout(app: Authenticator, who: list[str]) -> None:
    until = lock_out(PROTECT, app)
    refused(["mfa", "clear", *who], 4,
            f"the owner's lockout is not cleared by the owner: it ends at {until}",
            hint="hint: wait")  # fmt: skip
    assert kind_of(["mfa", "clear", *who]) == (4, "access_denied")
    state = status()
    assert (state["failures"], state["locked_until"]) == (5, until)
    assert kind_of(PROTECT, otp=app.code()) == (4, "locked_out")


def test_clear_of_an_unknown_principal_is_not_found(vault: Path) -> None:
    refused(["mfa", "clear", "nobody"], 3, "principal 'nobody' does not exist",
            hint="hint: list them with 'bsecrets access principal ls'")  # fmt: skip
    assert kind_of(["mfa", "clear", "nobody"]) == (3, "principal_not_found")


def test_an_admin_clears_a_principals_lockout_at_her_next_attempt(vault: Path) -> None:
    ok(["access", "principal", "add", "alice"], BSECRETS_NEW_PASSPHRASE="alice-pass-123")
    as_alice = ["--as", "alice"]
    her = Authenticator(ok([*as_alice, "mfa", "enroll"], **ALICE).stdout.strip())
    assert status(*as_alice, **ALICE)["pending"] is True
    ok([*as_alice, "mfa", "confirm"], her.code(), **ALICE)
    replace = [*as_alice, "mfa", "enroll", "--replace"]
    until = lock_out(replace, her, **ALICE)
    refused(replace, 4, "principal 'alice' is locked out", f"until {until}", otp=her.code(),
            hint=LOCKED_HINT.format("alice"), **ALICE)  # fmt: skip
    refused([*as_alice, "mfa", "clear", "alice"], 4, "the owner's to do", **ALICE)

    assert json.loads(ok(["mfa", "clear", "alice", "--json"]).stdout) == {"changed": True}
    assert policy()["mfa_clears"] == {"alice": 1}  # signed, not in her sealed record
    assert status(*as_alice, **ALICE)["locked_until"] is None
    new = Authenticator(ok(replace, her.code(), **ALICE).stdout.strip())  # accepted
    assert new.seed != her.seed
    state = status(*as_alice, **ALICE)
    assert (state["failures"], state["locked_until"], state["pending"]) == (0, None, True)

    ok(["ls"])  # the owner's next command chains her events
    logged = [e for e in events() if e["actor"]["principal"] == "alice"]
    assert all(e.get("late") is True for e in logged), logged
    enrolls = [e["outcome"] for e in logged if e["action"] == "mfa.enroll"]
    assert enrolls == ["ok", *["denied"] * 6, "ok"]
    assert [e["outcome"] for e in logged if e["action"] == "mfa.confirm"] == ["ok"]
    (cleared,) = [e for e in events("mfa.clear") if e["outcome"] == "ok"]
    expected = ("owner", {"principal": "alice", "changed": True})
    assert (cleared["actor"]["principal"], cleared["details"]) == expected


# --- the audit log ----------------------------------------------------------------


def test_enroll_and_confirm_are_audited(vault: Path) -> None:
    auth = enroll()
    run(["mfa", "confirm"], auth.wrong())
    ok(["mfa", "confirm"], otp=auth.code())
    assert [(e["outcome"], e["details"]) for e in events("mfa.enroll")] == [
        ("ok", {"replace": False})
    ]
    confirms = events("mfa.confirm")
    assert [e["outcome"] for e in confirms] == ["denied", "ok"]
    assert "wrong one-time code" in confirms[0]["reason"]


def test_a_wrong_code_at_env_protect_is_an_audited_denial(app: Authenticator) -> None:
    refused(["env", "protect", "prod"], 4, "wrong one-time code", otp=app.wrong(),
            hint=CODE_HINT)  # fmt: skip
    (denied,) = events("env.protect")
    assert (denied["env"], denied["outcome"], denied["reason"]) == (
        "prod", "denied", "wrong one-time code")  # fmt: skip


# --- the seed stays secret --------------------------------------------------------


def test_the_seed_is_never_in_the_audit_log_nor_in_errors(vault: Path) -> None:
    auth = enroll()
    outputs = [invoke(["mfa", "confirm"], env={"BSECRETS_OTP": auth.wrong()}).stderr]
    ok(["mfa", "confirm"], otp=auth.code())
    outputs.append(invoke(["mfa", "enroll"]).stderr)
    outputs.append(invoke(["mfa", "enroll", "--replace"], env={"BSECRETS_OTP": "12"}).stderr)
    new = enroll("--replace", otp=auth.code())
    outputs.append(invoke(["mfa", "confirm"], env={"BSECRETS_OTP": new.wrong()}).stderr)
    outputs.append(ok(["mfa", "status", "--json"]).stdout)
    exported = ok(["audit", "export"]).stdout
    logged = ok(["audit", "log", "--json"]).stdout
    actions = [json.loads(line)["event"]["action"] for line in exported.splitlines()]
    assert {"mfa.enroll", "mfa.confirm"} <= set(actions)
    for seed in (auth, new):
        forms = (seed.secret, seed.secret.lower(), seed.seed.hex(), seed.seed.hex().upper(),
                 base64.b64encode(seed.seed).decode())  # fmt: skip
        for text in (exported, logged, *outputs):
            assert not any(form in text for form in forms), text
