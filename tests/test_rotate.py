"""``bsecrets rotate`` (#14, first step): the four steps with hooks, failures that
leave the current value alone, resume and cancel, a concurrent writer, kill -9 at each
step (real processes), ``--due`` with a fixed clock, and bad input."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke, run_cli
from helpers.rotation import hook, kill_campaign, policy_off, rotate_and_kill
from helpers.rotation import policy as set_policy
from helpers.values import PASSPHRASE

from bsecrets.config.loader import load_profile
from bsecrets.errors import VersionNotFound
from bsecrets.services import rotation_due, rotation_status
from bsecrets.services.manager import SecretsManager
from bsecrets.timeutil import parse_iso
from bsecrets.vaultfile.credentials import Credentials

OLD, NEW = "old-value-1a2b", "new-value-9z8y"


def ok(args: list[str], **env: str) -> str:
    result = invoke(args, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def refused(args: list[str], code: int, *needles: str) -> str:
    result = invoke(args)
    assert_error(result, code, *needles)
    assert result.stderr.splitlines()[1].startswith("hint: "), result.stderr
    return result.stderr


def policy(vault: Path, spec: str) -> None:
    """A rotation policy for 'db/*' in dev (``spec``: its YAML flow mapping)."""
    set_policy(vault, "dev", spec)


def value(name: str = "db/password") -> str:
    return ok(["get", name, "-e", "dev"]).rstrip("\n")


def current_version(name: str = "db/password") -> int:
    return int(json.loads(ok(["get", name, "-e", "dev", "--json"]))["version"])


@pytest.fixture
def db(vault: Path) -> Path:
    (vault / "old.txt").write_text(OLD)
    (vault / "new.txt").write_text(NEW)
    ok(["put", "db/password", "--from-file", "old.txt", "-e", "dev"])
    return vault


def test_a_rotation_runs_its_hooks_with_the_value_on_stdin(db: Path) -> None:
    set_hook = hook(db, "set", f'cat > {db}/got; echo "$@" > {db}/argv; env > {db}/env\n')
    test_hook = hook(db, "test", f"cmp -s - {db}/got\n")
    policy(db, f"{{hooks: {{set: [{set_hook}, a], test: [{test_hook}]}}}}")
    done = json.loads(
        ok(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt", "--json"])
    )
    assert done["step"] == "finished" and done["version"] == 2 and "pending" not in done
    assert value() == NEW and (db / "got").read_text() == NEW
    assert NEW not in (db / "argv").read_text()
    env = (db / "env").read_text()
    assert f"BSECRETS_ROTATION_ID={done['id']}" in env and "BSECRETS_PASSPHRASE" not in env
    events = [e for e in json.loads(ok(["audit", "log", "--json"])) if e["action"] == "rotate"]
    assert [e["details"]["step"] for e in events] == ["created", "set", "tested", "finished"]
    assert all(NEW not in json.dumps(e) for e in events)


def test_a_failing_hook_leaves_the_current_value_then_resume_finishes(db: Path) -> None:
    flaky = hook(db, "test", f"test -f {db}/ready || {{ echo 'not yet {NEW}'; exit 3; }}\n")
    policy(db, f"{{hooks: {{test: [{flaky}]}}}}")
    stderr = refused(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt"], 1,
                     "the test hook", "exited 3", "keeps its current value")  # fmt: skip
    assert value() == OLD and NEW not in stderr
    (row,) = json.loads(ok(["rotate", "status", "--json"]))
    assert row["step"] == "failed" and row["result"]["exit_code"] == 3
    assert NEW not in row["result"]["output"] and "not yet" in row["result"]["output"]
    (db / "ready").write_text("")
    resumed = json.loads(ok(["rotate", "resume", row["id"], "--json"]))
    assert resumed["step"] == "finished" and value() == NEW


def test_cancel_discards_the_pending_value(db: Path) -> None:
    policy(db, f"{{hooks: {{set: [{hook(db, 'set', 'exit 1')}]}}}}")
    invoke(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt"])
    (row,) = json.loads(ok(["rotate", "status", "--json"]))
    ok(["rotate", "cancel", row["id"]])
    assert value() == OLD and current_version() == 1
    refused(["rotate", "resume", row["id"]], 7, "cancelled")


def test_a_hook_that_is_not_there_is_127_and_nothing_changes(db: Path) -> None:
    policy(db, "{hooks: {set: [/nonexistent/hook]}}")
    refused(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt"], 1, "exited 127")
    assert value() == OLD
    (row,) = json.loads(ok(["rotate", "status", "--json"]))
    assert row["result"]["exit_code"] == 127


def test_a_second_rotation_while_one_is_in_flight_is_refused(db: Path) -> None:
    policy(db, f"{{hooks: {{set: [{hook(db, 'set', 'exit 1')}]}}}}")
    invoke(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt"])
    (row,) = json.loads(ok(["rotate", "status", "--json"]))
    refused(["rotate", "db/password", "-e", "dev", "--generate", "hex:16"], 7, row["id"])


def test_a_writer_in_between_stops_the_finish_with_nothing_clobbered(db: Path) -> None:
    writer = hook(db, "set", f"BSECRETS_PASSPHRASE='{PASSPHRASE}' BSECRETS_INSECURE_TEST_KDF=1 "
                             f"{sys.executable} -m bsecrets put db/password -e dev "
                             f"--from-file {db}/old.txt >/dev/null\n")  # fmt: skip
    policy(db, f"{{hooks: {{set: [{writer}]}}}}")
    refused(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt"], 7,
            "changed while rotation", "nothing was written")  # fmt: skip
    assert value() == OLD and current_version() == 2  # the writer's version, not ours


def test_generate_and_the_policy_generator(db: Path) -> None:
    ok(
        ["rotate", "db/password", "-e", "dev", "--generate", "hex:16"],
    )
    assert len(value()) == 32 and value() != OLD
    policy(db, "{generate: 'password:40'}")
    ok(["rotate", "db/password", "-e", "dev"])
    assert len(value()) == 40


# --- kill -9 at each step ------------------------------------------------------------


def _rotate_and_kill(db: Path, step: str) -> str:
    return rotate_and_kill(db, "dev", step)


@pytest.mark.parametrize("step", ["set", "test"])
def test_a_kill_before_finish_leaves_the_old_value_then_resume_or_cancel(
    db: Path, step: str
) -> None:
    rotation_id = _rotate_and_kill(db, step)
    assert value() == OLD and current_version() == 1  # exactly one current value
    assert ok(["verify"]).startswith("ok")
    ok(["rotate", "resume", rotation_id])
    assert value() == NEW and current_version() == 2


def test_a_kill_before_finish_then_cancel(db: Path) -> None:
    rotation_id = _rotate_and_kill(db, "set")
    ok(["rotate", "cancel", rotation_id])
    assert value() == OLD and current_version() == 1


def test_a_kill_in_the_finish_hook_leaves_the_new_value_current(db: Path) -> None:
    rotation_id = _rotate_and_kill(db, "finish")
    assert value() == NEW and current_version() == 2
    (row,) = json.loads(ok(["rotate", "status", "--json"]))
    assert row["step"] == "finished"
    refused(["rotate", "resume", rotation_id], 7, "finished")


def test_a_finish_whose_write_landed_before_the_kill_is_recognised(db: Path) -> None:
    """The kill fell between the check-and-set write and the record: resume sees the
    pending value current and writes nothing more."""
    rotation_id = _rotate_and_kill(db, "test")
    ok(["put", "db/password", "--from-file", "new.txt", "-e", "dev"])  # the write that landed
    refused(["rotate", "cancel", rotation_id], 7, "nothing to cancel", "v2 current",
            "rollback db/password")  # fmt: skip
    done = json.loads(ok(["rotate", "resume", rotation_id, "--json"]))
    assert done["version"] == 2 and current_version() == 2 and value() == NEW


# --- due -------------------------------------------------------------------------------


def manager(clock: Callable[[], datetime] | None = None) -> SecretsManager:
    creds = Credentials(passphrase=PASSPHRASE)
    if clock is None:
        return SecretsManager(load_profile(Path("bsecrets.yaml")), creds)
    return SecretsManager(load_profile(Path("bsecrets.yaml")), creds, clock=clock)


def test_due_with_a_fixed_clock(db: Path) -> None:
    policy(db, "{max_age: 30d, generate: 'hex:8'}")
    ok(["put", "other", "--from-file", "old.txt", "-e", "dev"])
    m = manager()
    written = m.get("dev", "db/password").created_at
    assert rotation_due.due(m, "dev", written + timedelta(days=29)) == []
    (item,) = rotation_due.due(m, "dev", written + timedelta(days=31))
    assert item["name"] == "db/password" and item["generate"] == "hex:8"
    m.close()


def test_status_of_one_secret_with_a_fixed_clock(db: Path) -> None:
    """Age, the policy that applies, the next due date, in flight, the last result."""
    policy(db, "{max_age: 30d, strategy: graceful, generate: 'hex:8'}")
    m = manager()
    written = m.get("dev", "db/password").created_at
    m.close()
    m = manager(lambda: written + timedelta(days=31))  # a fixed clock: past max_age
    found = rotation_status.secret_status(m, "dev", "db/password")
    m.close()
    assert found["age_seconds"] == 31 * 86400 and found["due"] is True
    assert found["policy"] == {"glob": "db/*", "max_age": "30d", "strategy": "graceful",
                               "generate": "hex:8", "retries": 0}  # fmt: skip
    assert parse_iso(found["due_at"]) == written + timedelta(days=30)
    assert found["in_flight"] == [] and found["last"] is None
    policy_off(db)
    rotation_id = rotate_and_kill(db, "dev", "set")
    shown = json.loads(ok(["rotate", "status", "db/password", "-e", "dev", "--json"]))
    assert shown["in_flight"][0]["id"] == rotation_id and shown["due"] is False
    assert shown["last"]["id"] == rotation_id and shown["last"]["step"] == "created"
    assert shown["policy"] is None  # rotate_and_kill took the policy off again
    text = ok(["rotate", "status", "db/password", "-e", "dev"])
    assert f"in flight:     {rotation_id}" in text and "policy:        none" in text
    assert OLD not in text and NEW not in text


def test_status_of_a_missing_secret_is_exit_3(db: Path) -> None:
    refused(["rotate", "status", "db/nothing", "-e", "dev"], 3, "db/nothing")


def test_due_without_policies_says_so(db: Path) -> None:
    result = invoke(["rotate", "--due"])
    assert result.exit_code == 0 and "no rotation policies" in result.stderr


def test_due_dry_run_lists_nothing_fresh(db: Path) -> None:
    policy(db, "{max_age: 30d, generate: 'hex:8'}")
    result = invoke(["rotate", "--due", "--dry-run", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"due": [], "rotated": [], "failed": []}


# --- bad input -------------------------------------------------------------------------


def test_an_unknown_strategy_is_a_usage_error(db: Path) -> None:
    result = invoke(["rotate", "db/password", "--strategy", "sideways", "--generate", "hex:8"])
    assert_error(result, 2)


def test_a_policy_with_a_bad_duration_names_its_line(db: Path) -> None:
    policy(db, "{max_age: soon}")
    refused(["rotate", "--due"], 2, "bsecrets.yaml:", "rotation")


def test_resume_of_an_unknown_id_is_not_found(db: Path) -> None:
    refused(["rotate", "resume", "0123456789ab"], 3, "no rotation")


def test_no_value_and_no_generator_is_a_usage_error(db: Path) -> None:
    refused(["rotate", "db/password", "-e", "dev"], 2, "needs a new value")


def test_a_bad_generator_is_a_usage_error(db: Path) -> None:
    refused(["rotate", "db/password", "-e", "dev", "--generate", "dice:6"], 2, "--generate")


def test_another_principals_rotation_in_flight_blocks_until_it_ends(db: Path) -> None:
    alice = {"BSECRETS_PASSPHRASE": "alice-pass-123"}
    ok(["access", "principal", "add", "alice"], BSECRETS_NEW_PASSPHRASE="alice-pass-123")
    ok(["access", "grant", "alice", "-e", "dev", "--role", "write"])
    policy(db, f"{{hooks: {{set: [{hook(db, 'set', 'exit 1')}]}}}}")
    failed = invoke(["--as", "alice", "rotate", "db/password", "-e", "dev", "--generate",
                     "hex:8"], env=alice)  # fmt: skip
    assert failed.exit_code == 1, failed.stderr
    (row,) = json.loads(ok(["--as", "alice", "rotate", "status", "--json"], **alice))
    stderr = refused(["rotate", "db/password", "-e", "dev", "--generate", "hex:8"], 7, row["id"])
    assert "principal 'alice'" in stderr
    assert json.loads(ok(["rotate", "status", "--json"])) == []  # hers do not open for the owner
    ok(["--as", "alice", "rotate", "cancel", row["id"]], **alice)
    policy_off(db)
    ok(["rotate", "db/password", "-e", "dev", "--generate", "hex:8"])
    assert value() != OLD


# --- graceful --------------------------------------------------------------------------


def test_graceful_keeps_the_previous_value_readable_until_the_overlap_ends(db: Path) -> None:
    policy(db, "{strategy: graceful, overlap: 1h}")
    done = json.loads(ok(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt",
                          "--json"]))  # fmt: skip
    assert done["strategy"] == "graceful" and done["grace_until"]
    assert value() == NEW and value("db/password#previous") == OLD
    (db / "t.tmpl").write_text("p={{ bsecrets://dev/db/password#previous }}\n")
    assert ok(["render", "t.tmpl", "-o", "-"]) == f"p={OLD}\n"
    ends = parse_iso(done["grace_until"])
    m = manager(lambda: ends - timedelta(seconds=1))  # a fixed clock, just before
    assert m.get("dev", "db/password#previous").value == OLD.encode()
    m.close()
    m = manager(lambda: ends + timedelta(seconds=1))  # and just after
    with pytest.raises(VersionNotFound, match="no graceful rotation"):
        m.get("dev", "db/password#previous")
    m.close()


def test_previous_is_not_readable_after_an_immediate_rotation_or_a_later_write(db: Path) -> None:
    ok(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt"])
    refused(["get", "db/password#previous", "-e", "dev"], 3, "no graceful rotation")
    ok(["rotate", "db/password", "-e", "dev", "--strategy", "graceful", "--generate", "hex:8"])
    assert value("db/password#previous") == NEW
    ok(["put", "db/password", "--from-file", "old.txt", "-e", "dev"])  # a later write
    refused(["get", "db/password#previous", "-e", "dev"], 3, "no graceful rotation")


# --- emergency -------------------------------------------------------------------------


def test_an_emergency_rotation_ends_the_previous_value_at_once(db: Path) -> None:
    told = hook(db, "set", f'echo "$BSECRETS_ROTATION_EMERGENCY" > {db}/told\n')
    policy(db, f"{{strategy: graceful, overlap: 24h, hooks: {{set: [{told}]}}}}")
    ok(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt"])
    assert value("db/password#previous") == OLD
    done = json.loads(ok(["rotate", "db/password", "-e", "dev", "--emergency", "--reason",
                          "leaked in a log", "--generate", "hex:8", "--json"]))  # fmt: skip
    assert done["strategy"] == "immediate" and done["emergency"] is True
    assert (db / "told").read_text() == "1\n"
    refused(["get", "db/password#previous", "-e", "dev"], 3, "no graceful rotation")
    events = [e for e in json.loads(ok(["audit", "log", "--json"])) if e["action"] == "rotate"]
    assert events[-1]["details"]["emergency"] is True
    assert events[-1]["justification"] == "leaked in a log"


def test_an_emergency_rotation_needs_a_reason(db: Path) -> None:
    refused(["rotate", "db/password", "-e", "dev", "--emergency", "--generate", "hex:8"], 2,
            "needs a reason")  # fmt: skip
    assert value() == OLD


def test_an_emergency_rotation_is_an_admins(db: Path) -> None:
    writer = {"BSECRETS_PASSPHRASE": "alice-pass-123"}
    ok(["access", "principal", "add", "alice"], BSECRETS_NEW_PASSPHRASE="alice-pass-123")
    ok(["access", "grant", "alice", "-e", "dev", "--role", "write"])
    result = invoke(["--as", "alice", "rotate", "db/password", "-e", "dev", "--emergency",
                     "--reason", "x", "--generate", "hex:8"], env=writer)  # fmt: skip
    assert_error(result, 4, "needs admin")
    assert value() == OLD


def test_exec_with_previous_gives_both_values_during_the_overlap(db: Path) -> None:
    policy(db, "{strategy: graceful, overlap: 1h}")
    ok(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt"])
    show = ["sh", "-c", 'echo "$DB_PASSWORD|${DB_PASSWORD_PREVIOUS-unset}"']
    both = run_cli(["exec", "-e", "dev", "--with-previous", "--", *show], cwd=db)
    assert both.returncode == 0, both.stderr
    assert both.stdout.decode() == f"{NEW}|{OLD}\n"
    plain = run_cli(["exec", "-e", "dev", "--", *show], cwd=db)
    assert plain.stdout.decode() == f"{NEW}|unset\n"
    exec_events = [e for e in json.loads(ok(["audit", "log", "--json"])) if e["action"] == "exec"]
    assert exec_events[0]["names"] == ["db/password", "db/password#previous"]


def test_due_goes_on_after_a_failure_and_says_which(db: Path) -> None:
    ok(["put", "db/other", "--from-file", "old.txt", "-e", "dev"])
    picky = hook(db, "set", 'test "$BSECRETS_ROTATION_NAME" != db/password\n')
    policy(db, f"{{max_age: 1d, generate: 'hex:8', hooks: {{set: [{picky}]}}}}")
    first = manager()
    written = first.get("dev", "db/password").created_at
    first.close()
    m = manager(lambda: written + timedelta(days=2))  # a fixed clock: both are due
    warnings: list[str] = []
    found, rotated, failed = rotation_due.rotate_due(m, "dev", dry_run=False, warn=warnings.append)
    m.close()
    assert sorted(item["name"] for item in found) == ["db/other", "db/password"]
    assert [f["name"] for f in failed] == ["db/password"]
    assert [r["name"] for r in rotated] == ["db/other"]
    assert len(warnings) == 1 and "db/password" in warnings[0]
    assert value() == OLD and value("db/other") != OLD


# --- blue-green ------------------------------------------------------------------------


def test_blue_green_fills_the_other_slot_and_flips(db: Path) -> None:
    policy(db, "{strategy: blue-green}")
    ok(["rotate", "db/password", "-e", "dev", "--from-file", "new.txt"])
    assert value() == NEW  # green is active
    assert value("db/password#blue") == OLD and value("db/password#green") == NEW
    flipped = json.loads(ok(["rotate", "flip", "db/password", "-e", "dev", "--json"]))
    assert flipped["active"] == "blue" and value() == OLD  # a rollback is a flip
    assert value("db/password#blue") == OLD and value("db/password#green") == NEW
    ok(["rotate", "flip", "db/password", "-e", "dev"])
    assert value() == NEW
    (db / "newer.txt").write_text("newer-value-5e5e")
    ok(["rotate", "db/password", "-e", "dev", "--from-file", "newer.txt"])  # fills blue
    assert value() == "newer-value-5e5e" and value("db/password#blue") == "newer-value-5e5e"
    assert value("db/password#green") == NEW
    kinds = [e["details"] for e in json.loads(ok(["audit", "log", "--json"]))
             if e["action"] == "rotate" and "flip" in e.get("details", {})]  # fmt: skip
    assert [k["flip"] for k in kinds] == ["blue", "green"]


def test_flip_without_slots_is_not_found(db: Path) -> None:
    refused(["rotate", "flip", "db/password", "-e", "dev"], 3, "no blue-green slots")


def test_a_slot_without_a_blue_green_rotation_is_not_found(db: Path) -> None:
    refused(["get", "db/password#green", "-e", "dev"], 3, "no blue-green rotation")


def test_kills_at_random_points_leave_one_current_value(db: Path) -> None:
    """kill -9 spread over whole rotations (create, the finish write, the record after
    it), then resume or cancel: one current value each time, and a vault that verifies."""
    seen = kill_campaign(db, "dev", kills=12, seed=14)
    assert sum(seen.values()) == 12
    ok(["verify"])
