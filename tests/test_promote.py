"""``bsecrets promote`` (#15) between local environments through the real CLI and the
real vault file: the mapping (profile, --map, --only), the plan and --dry-run, the
confirmation, check-and-set against the plan, all or nothing in one transaction, the
audit events and ``promote log``, a protected target, and each bad input of the issue.
Remote targets: tests/test_promote_remote.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke
from helpers.totp import Authenticator
from helpers.values import PASSPHRASE

from bsecrets.config.loader import load_profile
from bsecrets.errors import VersionConflict
from bsecrets.services import promotion, promotion_plan
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials

ROUTE = """promote:
  dev:
    prod:
      names: ["db/*", "api/key"]
      rename: {db/url: db/primary_url}
      never: ["*/debug"]
"""
SOURCE = {"db/url": "pg://dev", "db/password": "pw-dev", "db/debug": "debug-on-3f",
          "api/key": "k-1", "other": "not-mapped"}  # fmt: skip


def ok(args: list[str], **env: str) -> str:
    result = invoke(args, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def refused(args: list[str], code: int, *needles: str) -> str:
    result = invoke(args)
    assert_error(result, code, *needles)
    assert result.stderr.splitlines()[1].startswith("hint: "), result.stderr
    return result.stderr


def values(env: str) -> dict[str, str]:
    """Every current value of ``env`` (the target's whole state)."""
    names = [row["name"] for row in json.loads(ok(["ls", "-e", env, "--json"]))]
    return {n: ok(["get", n, "-e", env]).rstrip("\n") for n in names}


def events(promotion_id: str) -> list[dict[str, object]]:
    rows = json.loads(ok(["audit", "log", "--json"]))
    return [e for e in rows if e["action"] == "promote"
            and (e.get("details") or {}).get("id") == promotion_id]  # fmt: skip


@pytest.fixture
def routed(vault: Path) -> Path:
    """dev holds SOURCE, prod holds db/password (another value); the profile routes dev
    to prod."""
    for name, value in SOURCE.items():
        result = invoke(["put", name, "-e", "dev"], input=value)
        assert result.exit_code == 0, result.stderr
    assert invoke(["put", "db/password", "-e", "prod"], input="pw-prod").exit_code == 0
    profile = vault / "bsecrets.yaml"
    profile.write_text(profile.read_text() + ROUTE)
    return vault


def test_the_plan_shows_each_name_and_dry_run_writes_nothing(routed: Path) -> None:
    before = values("prod")
    shown = json.loads(ok(["promote", "--from", "dev", "--to", "prod", "--dry-run", "--json"]))
    plan = shown["plan"]
    actions = {i["source"]: (i["action"], i["target"], i["why"]) for i in plan["items"]}
    assert actions == {
        "api/key": ("add", "api/key", None),
        "db/password": ("change", "db/password", None),
        "db/url": ("add", "db/primary_url", None),
        "db/debug": ("skipped", "db/debug", "never: */debug"),
        "other": ("skipped", "other", "not in the mapping"),
    }
    assert plan["counts"] == {"add": 2, "change": 1, "same": 0, "skipped": 2}
    text = ok(["promote", "--from", "dev", "--to", "prod", "--dry-run"])
    assert "+ add     db/url v1 -> db/primary_url" in text
    for value in (*SOURCE.values(), "pw-prod"):
        assert value not in text and value not in json.dumps(shown)
    assert values("prod") == before
    (event,) = events(plan["id"])  # only the plan event
    assert event["details"]["step"] == "plan" and event["outcome"] == "ok"


def test_a_promotion_writes_what_the_mapping_names_and_is_audited(routed: Path) -> None:
    done = json.loads(ok(["promote", "--from", "dev", "--to", "prod", "--yes", "--json",
                          "--reason", "release 4.2"]))["promotion"]  # fmt: skip
    assert done["step"] == "done"
    assert values("prod") == {"api/key": "k-1", "db/password": "pw-dev",
                              "db/primary_url": "pg://dev"}  # fmt: skip
    found = events(done["id"])
    steps = [(e["details"].get("step"), e.get("name")) for e in found]
    assert steps[0] == ("plan", None) and steps[-1] == ("promote", None)
    per_secret = {e["name"]: e for e in found if isinstance(e["details"].get("from"), dict)}
    assert set(per_secret) == {"api/key", "db/password", "db/primary_url"}
    assert per_secret["db/primary_url"]["details"]["from"] == {"env": "dev", "name": "db/url",
                                                               "version": 1}  # fmt: skip
    assert per_secret["db/password"]["version"] == 2
    (row,) = json.loads(ok(["promote", "log", "--json"]))
    assert (row["id"], row["from"], row["to"], row["reason"]) == (done["id"], "dev", "prod",
                                                                  "release 4.2")  # fmt: skip
    assert {(s["from_name"], s["from_version"], s["name"], s["to_version"])
            for s in row["secrets"]} == {("api/key", 1, "api/key", 1),
                                         ("db/password", 1, "db/password", 2),
                                         ("db/url", 1, "db/primary_url", 1)}  # fmt: skip
    again = json.loads(ok(["promote", "--from", "dev", "--to", "prod", "--yes", "--json"]))
    assert again["plan"]["counts"]["same"] == 3 and "promotion" not in again


def test_only_narrows_the_mapping_and_stands_for_one_without_it(routed: Path) -> None:
    ok(["promote", "--from", "dev", "--to", "prod", "--only", "api/*", "--yes"])
    assert values("prod") == {"api/key": "k-1", "db/password": "pw-prod"}
    ok(["promote", "--from", "prod", "--to", "dev", "--only", "db/password", "--yes"])
    assert values("dev")["db/password"] == "pw-prod"


def test_a_map_file_replaces_the_profile_route(routed: Path) -> None:
    (routed / "map.yaml").write_text("names: [other]\nrename: {other: moved/other}\n")
    ok(["promote", "--from", "dev", "--to", "prod", "--map", "map.yaml", "--yes"])
    assert values("prod") == {"db/password": "pw-prod", "moved/other": "not-mapped"}


def test_without_yes_where_nothing_can_confirm_is_a_usage_error(routed: Path) -> None:
    before = values("prod")
    refused(["promote", "--from", "dev", "--to", "prod"], 2, "--yes")
    assert values("prod") == before


def _manager() -> SecretsManager:
    return SecretsManager(load_profile(Path("bsecrets.yaml")), Credentials(passphrase=PASSPHRASE))


def test_a_target_changed_after_the_plan_stops_it_with_nothing_written(routed: Path) -> None:
    """All or nothing: the conflict is on the last write; the earlier ones roll back."""
    manager = _manager()
    route = promotion_plan.route_for(manager, "dev", "prod", None, [])
    plan = promotion_plan.make_plan(manager, "dev", "prod", route, [])
    assert [i.target for i in plan.writes][-1] == "db/primary_url"
    assert invoke(["put", "db/primary_url", "-e", "prod"], input="someone").exit_code == 0
    before = values("prod")
    with pytest.raises(VersionConflict):
        promotion.promote(manager, plan)
    manager.close()
    assert values("prod") == before


def test_a_protected_target_asks_for_a_reason_yes_and_a_code(routed: Path) -> None:
    auth = Authenticator(ok(["mfa", "enroll"]).strip())
    ok(["mfa", "confirm"], BSECRETS_OTP=auth.code())
    ok(["env", "protect", "prod"], BSECRETS_OTP=auth.code())
    before = values("prod")
    result = invoke(["promote", "--from", "dev", "--to", "prod", "--yes"])
    assert result.exit_code == 2 and "reason" in result.stderr, result.stderr
    assert values("prod") == before
    go = ["promote", "--from", "dev", "--to", "prod", "--yes", "--reason", "CHG-7"]
    ok(go, BSECRETS_OTP=auth.code())
    assert values("prod")["db/primary_url"] == "pg://dev"


# --- bad input ----------------------------------------------------------------------------


def test_the_same_source_and_target_is_a_usage_error(routed: Path) -> None:
    refused(["promote", "--from", "dev", "--to", "dev", "--dry-run"], 2, "both 'dev'")


def test_an_unknown_environment_is_not_found(routed: Path) -> None:
    refused(["promote", "--from", "dev", "--to", "nowhere", "--dry-run"], 3, "nowhere")


def test_no_mapping_and_no_only_refuses_rather_than_copy_everything(routed: Path) -> None:
    before = values("dev")
    refused(["promote", "--from", "prod", "--to", "dev", "--yes"], 2, "what a mapping names")
    assert values("dev") == before


def test_names_missing_in_the_source_are_listed_and_nothing_is_written(routed: Path) -> None:
    before = values("prod")
    (routed / "map.yaml").write_text("names: [api/key, gone/one, gone/two, 'db/*']\n")
    refused(["promote", "--from", "dev", "--to", "prod", "--map", "map.yaml", "--yes"], 3,
            "gone/one, gone/two", "nothing was promoted")  # fmt: skip
    assert values("prod") == before


def test_a_rename_collision_is_a_usage_error(routed: Path) -> None:
    (routed / "map.yaml").write_text("names: ['db/*']\nrename: {db/url: db/password}\n")
    refused(["promote", "--from", "dev", "--to", "prod", "--map", "map.yaml", "--dry-run"], 2,
            "db/password and db/url -> db/password")  # fmt: skip
    (routed / "map.yaml").write_text("names: []\nrename: {db/url: x, api/key: x}\n")
    result = invoke(["promote", "--from", "dev", "--to", "prod", "--map", "map.yaml"])
    assert_error(result, 2, "map.yaml:2", "two names are renamed to 'x'")


def test_only_selecting_a_never_name_is_a_usage_error(routed: Path) -> None:
    refused(["promote", "--from", "dev", "--to", "prod", "--only", "db/*", "--dry-run"], 2,
            "never", "db/debug")  # fmt: skip
    refused(["promote", "--from", "dev", "--to", "prod", "--only", "x/debug", "--dry-run"], 2,
            "x/debug")  # fmt: skip


@pytest.mark.parametrize(
    ("section", "where", "words"),
    [
        ("promote:\n  dev:\n    nowhere: {names: [a]}\n", ":3", "no environment named 'nowhere'"),
        ("promote:\n  dev:\n    dev: {names: [a]}\n", ":3", "does not promote to itself"),
        ("promote:\n  dev:\n    prod: {names: a}\n", ":3", "a list of names or globs"),
        ("promote:\n  dev:\n    prod: {names: [a], keep: [b]}\n", ":3", "unknown key"),
    ],
)
def test_a_bad_promote_section_names_its_line(
    vault: Path, section: str, where: str, words: str
) -> None:
    profile = vault / "bsecrets.yaml"
    lines = profile.read_text().count("\n")
    profile.write_text(profile.read_text() + section)
    result = invoke(["promote", "--from", "dev", "--to", "prod", "--dry-run"])
    line = lines + int(where[1:])
    assert_error(result, 2, f"bsecrets.yaml:{line}", words)


def test_resume_of_an_unknown_promotion_is_not_found(routed: Path) -> None:
    refused(["promote", "--resume", "0123456789ab"], 3, "no promotion")
    refused(["promote", "--abort", "0123456789ab"], 3, "no promotion")


# --- a second admin's approval (env protect --promote-approval) ---------------------------

PASS = {"alice": "alice-pass-123", "bob": "bob-pass-1234"}


def as_(name: str, args: list[str], code: int = 0, **env: str) -> str:
    result = invoke(["--as", name, *args], env={"BSECRETS_PASSPHRASE": PASS[name], **env})
    assert result.exit_code == code, result.stderr
    return result.stdout if code == 0 else result.stderr


@pytest.fixture
def approvals(routed: Path) -> Authenticator:
    """prod protected with --promote-approval; alice and bob admins of prod with read on
    dev; the owner's authenticator (alice and bob have their own)."""
    for name, passphrase in PASS.items():
        ok(["access", "principal", "add", name], BSECRETS_NEW_PASSPHRASE=passphrase)
        ok(["access", "grant", name, "-e", "dev", "--role", "read"])
        ok(["access", "grant", name, "-e", "prod", "--role", "admin"])
    auth = Authenticator(ok(["mfa", "enroll"]).strip())  # at most three codes per test
    ok(["mfa", "confirm"], BSECRETS_OTP=auth.code())
    ok(["env", "protect", "prod", "--promote-approval"], BSECRETS_OTP=auth.code())
    return auth


def _enrolled(name: str) -> Authenticator:
    auth = Authenticator(as_(name, ["mfa", "enroll"]).strip())
    as_(name, ["mfa", "confirm"], BSECRETS_OTP=auth.code())
    return auth


def test_a_protected_target_with_approval_needs_a_second_admin(approvals: Authenticator) -> None:
    before = values("prod")
    go = ["promote", "--from", "dev", "--to", "prod", "--yes", "--reason", "CHG-9"]
    result = invoke(go)  # refused before it asks for a code
    assert_error(result, 4, "need another admin's approval")
    assert "promote approve" in result.stderr and values("prod") == before
    alice, bob = _enrolled("alice"), _enrolled("bob")
    asked = json.loads(as_("alice", ["promote", "--from", "dev", "--to", "prod", "--request",
                                     "--json", "--reason", "CHG-9"]))["request"]  # fmt: skip
    assert values("prod") == before  # a request writes nothing
    refused_self = as_("alice", ["promote", "approve", asked["id"], "--yes", "--reason", "CHG-9"],
                       4, BSECRETS_OTP=alice.code())  # fmt: skip
    assert "another admin" in refused_self and values("prod") == before
    done = json.loads(as_("bob", ["promote", "approve", asked["id"], "--yes", "--json",
                                  "--reason", "CHG-9"], BSECRETS_OTP=bob.code()))  # fmt: skip
    assert done["promotion"]["step"] == "done" and values("prod")["db/primary_url"] == "pg://dev"
    again = as_("bob", ["promote", "approve", asked["id"], "--yes"], 7)
    assert "approved already" in again
    approved = [e for e in json.loads(ok(["audit", "log", "--json"]))
                if (e.get("details") or {}).get("step") == "approve"]  # fmt: skip
    assert approved[-1]["details"]["requested_by"] == "alice"
    assert approved[-1]["actor"]["principal"] == "bob"


def test_an_approval_of_a_plan_that_changed_since_is_refused(approvals: Authenticator) -> None:
    _enrolled("alice")
    bob = _enrolled("bob")
    asked = json.loads(as_("alice", ["promote", "--from", "dev", "--to", "prod", "--request",
                                     "--json"]))["request"]  # fmt: skip
    assert invoke(["put", "api/key", "-e", "dev"], input="k-2").exit_code == 0
    before = values("prod")
    stderr = as_("bob", ["promote", "approve", asked["id"], "--yes", "--reason", "x"], 7,
                 BSECRETS_OTP=bob.code())  # fmt: skip
    assert "changed since it was asked for" in stderr and values("prod") == before


def test_approve_of_an_unknown_request_is_not_found(approvals: Authenticator) -> None:
    refused(["promote", "approve", "0123456789ab", "--yes"], 3, "no promotion request")
