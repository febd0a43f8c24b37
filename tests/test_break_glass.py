"""``bsecrets break-glass`` (#16, docs/break-glass.md) through the real CLI and the real
vault file: custodians alice, bob and carol (their own passphrases and authenticators),
requester dana (no grant on prod), erin an admin of prod; M-of-N approvals with
one-time codes, the session's TTL and mode, revoke, review, tampering with the
SQLite records, rekey, offline shares, the notify hook and the audit events."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import Result, assert_error, invoke
from helpers.totp import Authenticator

from bsecrets.cli.exit_codes import exit_code_of
from bsecrets.config.loader import load_profile
from bsecrets.errors import BsecretsError
from bsecrets.services import break_glass
from bsecrets.services.manager import SecretsManager
from bsecrets.timeutil import parse_iso
from bsecrets.vaultfile.credentials import Credentials

PASS = {"alice": "alice-pass-123", "bob": "bob-pass-1234", "carol": "carol-pass-12",
        "dana": "dana-pass-1234", "erin": "erin-pass-1234"}  # fmt: skip
CUSTODIANS = ("alice", "bob", "carol")
SECRET = "prod-db-pw-5e1f0a"  # prod's value: never in a notification or an error


def ok(args: list[str], **env: str) -> str:
    result = invoke(args, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def as_(name: str, args: list[str], code: int = 0, *, input: str | None = None,
        **env: str) -> Result:  # fmt: skip
    result = invoke(["--as", name, *args], input=input,
                    env={"BSECRETS_PASSPHRASE": PASS[name], **env})  # fmt: skip
    assert result.exit_code == code, result.stderr
    return result


def db() -> sqlite3.Connection:
    return sqlite3.connect(Path.cwd() / ".bsecrets" / "vault.db")


@pytest.fixture
def team(vault: Path) -> Path:
    """prod holds DB, dev holds A; the five principals; erin admin of prod; prod's
    break-glass: 2 of alice, bob, carol (no authenticators yet)."""
    assert invoke(["put", "DB", "-e", "prod"], input=SECRET).exit_code == 0
    assert invoke(["put", "A", "-e", "dev"], input="dev-value").exit_code == 0
    for name, passphrase in PASS.items():
        ok(["access", "principal", "add", name], BSECRETS_NEW_PASSPHRASE=passphrase)
    ok(["access", "grant", "erin", "-e", "prod", "--role", "admin"])
    ok(["break-glass", "setup", "-e", "prod", "--custodians", "alice,bob,carol",
        "--threshold", "2"])  # fmt: skip
    return vault


@pytest.fixture
def mfa(team: Path) -> dict[str, Authenticator]:
    """Each custodian enrolled (one code of its three used)."""
    found = {}
    for name in CUSTODIANS:
        auth = Authenticator(as_(name, ["mfa", "enroll"]).stdout.strip())
        as_(name, ["mfa", "confirm"], BSECRETS_OTP=auth.code())
        found[name] = auth
    return found


def request(name: str = "dana", *more: str, ttl: str = "1h") -> str:
    out = as_(name, ["break-glass", "request", "-e", "prod", "--reason", "INC-7 db down",
                     "--ttl", ttl, *more]).stdout  # fmt: skip
    return out.strip()


def approve(name: str, rid: str, auth: Authenticator, code: int = 0) -> Result:
    shape = ["--json"] if code == 0 else []  # an error as its 'error:' line
    return as_(name, ["break-glass", "approve", rid, *shape], code, BSECRETS_OTP=auth.code())


def activate(rid: str) -> str:
    out = as_("dana", ["break-glass", "activate", rid, "--json"]).stdout
    return str(json.loads(out)["session"])


def in_session(token: str, args: list[str], code: int = 0, input: str | None = None) -> Result:
    return as_("dana", args, code, input=input, BSECRETS_SESSION=token)


def status() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(ok(["break-glass", "status", "--json"]))
    return found


def request_of(rid: str) -> dict[str, Any]:
    (found,) = [r for r in status()["requests"] if r["id"] == rid]
    return found  # type: ignore[no-any-return]


def setup_of(env: str = "prod") -> dict[str, Any]:
    (found,) = [s for s in status()["setups"] if s["env"] == env]
    return found  # type: ignore[no-any-return]


def approved(rid: str, mfa: dict[str, Authenticator], *names: str) -> None:
    for name in names:
        approve(name, rid, mfa[name])


def manager_as(name: str, at: datetime, token: str | None = None) -> SecretsManager:
    """In-process, as ``name``, with a fixed clock."""
    creds = Credentials(session_token=token, passphrase=PASS[name], principal=name)
    return SecretsManager(load_profile(Path("bsecrets.yaml")), creds, clock=lambda: at)


def exit_of(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(BsecretsError) as caught:
        call()
    return int(exit_code_of(caught.value)), str(caught.value)


def edit(table: str, key: str, value: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite one JSON record of ``table`` (outside bsecrets)."""
    with db() as conn:
        (raw,) = conn.execute(f"SELECT record FROM {table} WHERE {key} = ?", (value,)).fetchone()
        record = json.loads(raw)
        change(record)
        conn.execute(f"UPDATE {table} SET record = ? WHERE {key} = ?",
                     (json.dumps(record), value))  # fmt: skip
    conn.close()


# --- 1. end to end ------------------------------------------------------------------------


def test_two_of_three_custodians_open_prod_read_only(mfa: dict[str, Authenticator]) -> None:
    rid = request()
    assert len(rid) == 12 and request_of(rid)["approvals"] == []
    assert_error(as_("dana", ["break-glass", "approve", rid], 4), 4, "another custodian")
    assert_error(as_("erin", ["break-glass", "approve", rid], 4), 4, "not a custodian")
    assert json.loads(approve("alice", rid, mfa["alice"]).stdout)["approvals"] == 1
    assert json.loads(approve("alice", rid, mfa["alice"]).stdout)["approvals"] == 1
    assert request_of(rid)["approvals"] == ["alice"]
    early = as_("dana", ["break-glass", "activate", rid], 4)
    assert_error(early, 4, "1 of the 2 approvals", "1 missing")
    assert json.loads(approve("bob", rid, mfa["bob"]).stdout) == {
        "id": rid, "approvals": 2, "threshold": 2}  # fmt: skip
    as_("dana", ["get", "DB", "-e", "prod"], 4)  # without the session: no grant
    token = activate(rid)
    assert request_of(rid)["state"] == "active" and request_of(rid)["live"]
    metrics = ok(["metrics"])  # the owner's metrics count the active session
    assert 'bsecrets_break_glass_active{env="prod"} 1.0' in metrics.splitlines()
    assert 'bsecrets_break_glass_active{env="dev"} 0.0' in metrics.splitlines()
    assert in_session(token, ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"
    assert_error(in_session(token, ["put", "DB", "-e", "prod"], 4, "new"), 4, "needs write")
    assert_error(
        in_session(token, ["get", "A", "-e", "dev"], 4), 4, "no access to environment 'dev'"
    )
    assert ok(["get", "DB", "-e", "prod"]) == SECRET + "\n"  # nothing was written
    refused = [e for e in json.loads(ok(["audit", "log", "--json"]))
               if e["action"] == "break_glass.approve" and e["outcome"] != "ok"]  # fmt: skip
    assert {e["actor"]["principal"] for e in refused} == {"dana", "erin"}


def test_a_write_request_allows_put(mfa: dict[str, Authenticator]) -> None:
    """The session's write is an intake entry the owner's chain accepts (an activated
    --write request stands for the grant): the owner then reads the new value."""
    rid = request("dana", "--write")
    approved(rid, mfa, "bob", "carol")
    token = activate(rid)
    in_session(token, ["put", "DB", "-e", "prod"], input="rotated-9a")
    assert in_session(token, ["get", "DB", "-e", "prod"]).stdout == "rotated-9a\n"
    assert ok(["get", "DB", "-e", "prod"]) == "rotated-9a\n"  # the owner, after it


# --- 2. the TTL, with a fixed clock ---------------------------------------------------------


def test_no_activation_after_the_ttl_and_no_session_use_after_it(
    mfa: dict[str, Authenticator],
) -> None:
    rid = request(ttl="1h")
    approved(rid, mfa, "alice", "bob")
    ends = parse_iso(request_of(rid)["created_at"]) + timedelta(hours=1)
    assert parse_iso(request_of(rid)["expires_at"]) == ends
    late = manager_as("dana", ends)
    code, message = exit_of(lambda: break_glass.activate(late, rid))
    late.close()
    assert code == 4 and "expired" in message
    assert request_of(rid)["state"] == "requested"
    just_in_time = manager_as("dana", ends - timedelta(seconds=1))
    _, session = break_glass.activate(just_in_time, rid)
    just_in_time.close()
    assert session.expires_at == ends  # the session ends with the request, not later
    assert in_session(session.token, ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"
    before = manager_as("dana", ends - timedelta(seconds=1), session.token)
    assert before.get("prod", "DB").value == SECRET.encode()
    before.close()
    after = manager_as("dana", ends, session.token)
    code, message = exit_of(lambda: after.get("prod", "DB"))
    after.close()
    assert code == 4 and "expired at" in message  # the session file's sealed expiry


# --- 3. revoke ----------------------------------------------------------------------------


def test_a_revoked_request_ends_its_session(mfa: dict[str, Authenticator]) -> None:
    rid = request()
    approved(rid, mfa, "alice", "carol")
    token = activate(rid)
    assert in_session(token, ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"
    assert_error(as_("bob", ["break-glass", "revoke", rid], 4), 4, "owner or an admin")
    assert in_session(token, ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"
    ok(["break-glass", "revoke", rid])
    assert request_of(rid)["state"] == "revoked" and not request_of(rid)["live"]
    gone = in_session(token, ["get", "DB", "-e", "prod"], 4)
    assert_error(gone, 4, "revoked")
    assert SECRET not in gone.stdout + gone.stderr
    assert_error(as_("dana", ["break-glass", "activate", rid], 4), 4, "was revoked")


# --- 4. review ----------------------------------------------------------------------------


def test_a_new_request_waits_for_the_review_of_the_last(team: Path) -> None:
    rid = request()
    again = as_("dana", ["break-glass", "request", "-e", "prod", "--reason", "INC-8",
                         "--ttl", "1h"], 7)  # fmt: skip
    assert_error(again, 7, f"{rid} of 'prod' is not reviewed")
    assert_error(as_("dana", ["break-glass", "review", rid, "--notes", "fine"], 4), 4,
                 "another admin")  # fmt: skip
    assert_error(as_("alice", ["break-glass", "review", rid, "--notes", "fine"], 4), 4,
                 "owner or an admin")  # fmt: skip
    assert_error(as_("dana", ["break-glass", "request", "-e", "prod", "--reason", "INC-8",
                              "--ttl", "1h", "--override"], 4), 4, "owner or an admin")  # fmt: skip
    eid = request("erin", "--override")  # an admin of prod may
    assert request_of(eid)["override"] == {"by": "erin", "unreviewed": [rid]}
    as_("erin", ["break-glass", "review", rid, "--notes", "INC-7: nothing read"])
    assert request_of(rid)["review"]["by"] == "erin" and request_of(rid)["review_pending"] is False
    as_("dana", ["break-glass", "request", "-e", "prod", "--reason", "INC-8", "--ttl", "1h"], 7)
    ok(["break-glass", "review", eid, "--notes", "INC-7 follow-up"])
    assert request("dana") not in (rid, eid)


# --- 5. tampering with the vault file -----------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("ttl_seconds", 86400), ("write", True)])
def test_a_request_edited_after_its_approvals_does_not_activate(
    mfa: dict[str, Authenticator], field: str, value: object
) -> None:
    rid = request()
    approved(rid, mfa, "alice", "bob")
    edit("break_glass_requests", "id", rid, lambda r: r.update({field: value}))
    assert request_of(rid)[field] == value
    result = as_("dana", ["break-glass", "activate", rid], 5)
    assert_error(result, 5, "approval")
    assert "bss1." not in result.stdout and request_of(rid)["state"] == "requested"


def test_an_approval_copied_to_another_request_does_not_open(
    mfa: dict[str, Authenticator],
) -> None:
    first = request()
    ok(["break-glass", "review", first, "--notes", "INC-7 not used"])
    second = request()
    approved(first, mfa, "alice", "bob")
    approved(second, mfa, "alice")
    with db() as conn:
        conn.execute("INSERT INTO break_glass_approvals (request, custodian, share) SELECT ?,"
                     " custodian, share FROM break_glass_approvals WHERE request = ? AND"
                     " custodian = 'bob'", (second, first))  # fmt: skip
    conn.close()
    assert request_of(second)["approvals"] == ["alice", "bob"]
    assert_error(as_("dana", ["break-glass", "activate", second], 5), 5, "approval")
    assert "bss1." in activate(first)  # the approvals of the first still open it


def test_an_edited_share_fails_its_custodians_approval(mfa: dict[str, Authenticator]) -> None:
    def flip(record: dict[str, Any]) -> None:
        held = record["shares"]["alice"]
        record["shares"]["alice"] = held[:40] + ("0" if held[40] != "0" else "1") + held[41:]

    rid = request()
    edit("break_glass", "env", "prod", flip)
    assert_error(approve("alice", rid, mfa["alice"], 5), 5, "share")
    assert request_of(rid)["approvals"] == []
    approve("bob", rid, mfa["bob"])  # the other shares are intact
    assert request_of(rid)["approvals"] == ["bob"]


# --- 6. rekey -----------------------------------------------------------------------------


def test_rekey_makes_the_used_shares_and_the_old_session_worthless(
    mfa: dict[str, Authenticator],
) -> None:
    rid = request()
    approved(rid, mfa, "alice", "bob")
    assert setup_of()["rekey_needed"] is False
    token = activate(rid)
    assert setup_of()["rekey_needed"] is True
    assert json.loads(ok(["break-glass", "rekey", "-e", "prod", "--json"])) == {
        "env": "prod", "generation": 2, "reencrypted": 1}  # fmt: skip
    assert setup_of()["rekey_needed"] is False and setup_of()["generation"] == 2
    old = in_session(token, ["get", "DB", "-e", "prod"], 4)
    assert_error(old, 4, "holds no key to environment 'prod'")
    assert SECRET not in old.stdout + old.stderr
    assert_error(as_("dana", ["break-glass", "activate", rid], 7), 7, "set up again")
    assert_error(approve("carol", rid, mfa["carol"], 7), 7, "set up again")
    assert ok(["get", "DB", "-e", "prod"]) == SECRET + "\n"
    assert as_("erin", ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"
    ok(["break-glass", "review", rid, "--notes", "INC-7 done"])
    new = request()
    approved(new, mfa, "alice", "carol")  # the new shares
    assert in_session(activate(new), ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"


# --- 7. bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("custodians", "threshold", "code", "words"),
    [
        ("alice,bob", "3", 2, "--threshold 3 with 2 custodians"),
        ("alice,bob,carol", "1", 2, "--threshold 1 with 3"),
        ("alice,zed", "2", 3, "'zed'"),
        ("alice,bob,alice", "2", 2, "named twice"),
    ],
)
def test_a_bad_setup_is_refused_and_changes_nothing(
    team: Path, custodians: str, threshold: str, code: int, words: str
) -> None:
    result = invoke(["break-glass", "setup", "-e", "prod", "--custodians", custodians,
                     "--threshold", threshold])  # fmt: skip
    assert_error(result, code, words)
    assert setup_of()["generation"] == 1 and setup_of()["custodians"] == list(CUSTODIANS)


def test_bad_requests_approvals_and_activations(team: Path) -> None:
    for ttl in ("25h", "30s"):
        result = as_("dana", ["break-glass", "request", "-e", "prod", "--reason", "INC-7",
                              "--ttl", ttl], 2)  # fmt: skip
        assert_error(result, 2, "--ttl takes 1m to 24h")
    by_owner = invoke(["break-glass", "request", "-e", "prod", "--reason", "x", "--ttl", "1h"])
    assert_error(by_owner, 2, "the owner holds every environment's key")
    assert status()["requests"] == []
    assert_error(as_("alice", ["break-glass", "approve", "0123456789ab"], 3), 3,
                 "no break-glass request '0123456789ab'")  # fmt: skip
    rid = request()
    assert_error(as_("erin", ["break-glass", "activate", rid], 4), 4, "'dana's")
    not_admin = ["break-glass", "setup", "-e", "prod", "--custodians", "alice,bob",
                 "--threshold", "2"]  # fmt: skip
    assert_error(as_("alice", not_admin, 4), 4, "owner or an admin")
    # setup of a remote environment: out of scope here (it is refused before any key)


# --- 8. offline shares --------------------------------------------------------------------


def test_offline_shares_are_printed_once_and_approve_from_stdin(
    mfa: dict[str, Authenticator],
) -> None:
    out = ok(["break-glass", "setup", "-e", "prod", "--custodians", "alice,bob,carol",
              "--threshold", "2", "--offline-shares"])  # fmt: skip
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == list(CUSTODIANS)
    words = {line.split(": ")[0]: line.split(": ", 1)[1] for line in lines}
    assert all(len(w.split()) >= 20 for w in words.values()) and len(set(words.values())) == 3
    assert setup_of()["offline"] is True
    shown = ok(["break-glass", "status"]) + json.dumps(status())
    assert not any(w in shown for w in words.values())  # printed once, never again
    rid = request()
    go = ["break-glass", "approve", rid, "--offline-share"]
    as_("alice", go, input=words["alice"] + "\n", BSECRETS_OTP=mfa["alice"].code())
    wrong = as_("bob", go, 4, input=words["carol"] + "\n", BSECRETS_OTP=mfa["bob"].code())
    assert_error(wrong, 4, "not custodian 'bob's share")
    assert words["carol"] not in wrong.stderr
    missing = as_("carol", ["break-glass", "approve", rid], 2, BSECRETS_OTP=mfa["carol"].code())
    assert_error(missing, 2, "offline")
    assert request_of(rid)["approvals"] == ["alice"]
    as_("bob", go, input=words["bob"], BSECRETS_OTP=mfa["bob"].code())
    assert in_session(activate(rid), ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"


# --- 9 and 10. the notify hook and the audit log ------------------------------------------


def every_step(mfa: dict[str, Authenticator]) -> str:
    """request, two approvals, activate (one read), revoke, review."""
    rid = request()
    approved(rid, mfa, "alice", "bob")
    assert in_session(activate(rid), ["get", "DB", "-e", "prod"]).stdout == SECRET + "\n"
    as_("dana", ["break-glass", "revoke", rid])
    ok(["break-glass", "review", rid, "--notes", "INC-7 closed"])
    return rid


def test_the_notify_hook_hears_every_step_and_no_secret(
    mfa: dict[str, Authenticator], team: Path
) -> None:
    heard = team / "notified.jsonl"
    profile = team / "bsecrets.yaml"
    command = f"cat >> {heard}; echo >> {heard}"
    profile.write_text(
        profile.read_text() + f"break_glass:\n  notify: [/bin/sh, -c, {command!r}]\n"
    )
    rid = every_step(mfa)
    text = heard.read_text()
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["event"] for e in events] == [
        "break_glass.request", "break_glass.approve", "break_glass.approve",
        "break_glass.activate", "break_glass.revoke", "break_glass.review"]  # fmt: skip
    assert all(e["id"] == rid and e["env"] == "prod" and e["requester"] == "dana"
               for e in events)  # fmt: skip
    assert [e.get("custodian") for e in events[1:3]] == ["alice", "bob"]
    assert events[2]["approvals"] == 2 and events[4]["by"] == "dana"
    assert SECRET not in text and "bss1." not in text and PASS["dana"] not in text


def test_every_step_is_an_audit_event(mfa: dict[str, Authenticator]) -> None:
    rid = every_step(mfa)
    ok(["break-glass", "rekey", "-e", "prod"])
    found = json.loads(ok(["audit", "log", "--json"]))
    steps = [(e["action"], e["actor"]["principal"]) for e in found
             if e["action"].startswith("break_glass.") and e["outcome"] == "ok"]  # fmt: skip
    assert steps == [
        ("break_glass.setup", "owner"), ("break_glass.request", "dana"),
        ("break_glass.approve", "alice"), ("break_glass.approve", "bob"),
        ("break_glass.activate", "dana"), ("break_glass.revoke", "dana"),
        ("break_glass.review", "owner"), ("break_glass.rekey", "owner")]  # fmt: skip
    ids = {e["action"]: (e.get("details") or {}).get("id") for e in found}
    assert all(ids[f"break_glass.{s}"] == rid
               for s in ("request", "approve", "activate", "revoke", "review"))  # fmt: skip
    assert SECRET not in json.dumps(found)
    assert invoke(["audit", "verify"]).exit_code == 0
