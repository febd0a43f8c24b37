"""Security review item 2: rows put back from an older copy of the vault file.

The attacker can write the vault file and kept an older copy of it (a backup, a
synced folder). After a rotation they put back any subset of the older rows:
one environment's manifest, a secret's head and versions, other secrets, other
environments, the audit log. Goal (audit/witness.py): every read
detects it (exit 5, never the old value) unless the audit log was rolled back
with the rows; then ``audit verify --anchor`` detects it. Wiping the whole
audit log, or a whole environment, is detected without an anchor.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke

OLD, NEW = "old-password", "new-password"


def vault_file(work: Path) -> Path:
    return work / ".bsecrets" / "vault.db"


def _copy_db(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API (the WAL included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _put(name: str, value: str, env: str = "dev") -> None:
    result = invoke(["put", name, "-e", env], input=value)
    assert result.exit_code == 0, result.stderr


class Copies:
    """The vault as it was before the rotation (old) and after it (new)."""

    def __init__(self, work: Path, tmp: Path) -> None:
        self.work = work
        self.old = tmp / "old.db"
        self.new = tmp / "new.db"
        self.anchor = ""


@pytest.fixture
def copies(vault: Path, tmp_path: Path) -> Copies:
    _put("db/password", OLD)
    _put("api/token", "t1")
    _put("prod/key", "p1", env="prod")
    assert invoke(["get", "db/password"]).exit_code == 0
    state = Copies(vault, tmp_path)
    _copy_db(vault_file(vault), state.old)
    _put("db/password", NEW)  # the rotation
    _put("late/secret", "added after the copy")
    _put("prod/key", "p2", env="prod")
    assert invoke(["get", "api/token"]).exit_code == 0
    state.anchor = invoke(["audit", "anchor"]).stdout.strip()
    _copy_db(vault_file(vault), state.new)
    return state


def _differing(db: sqlite3.Connection, env: str) -> tuple[bytes, bytes, list[bytes]]:
    """(lookup, secret id) of the secret changed since the copy, and the lookups added."""
    changed = db.execute(
        "SELECT s.lookup, s.secret_id FROM secrets s JOIN o.secrets p"
        " ON p.env = s.env AND p.lookup = s.lookup WHERE s.env = ? AND p.record != s.record",
        (env,),
    ).fetchall()
    added = db.execute(
        "SELECT lookup FROM secrets WHERE env = ? AND lookup NOT IN"
        " (SELECT lookup FROM o.secrets WHERE env = ?)",
        (env, env),
    ).fetchall()
    assert len(changed) == 1 and len(added) == 1
    return changed[0][0], changed[0][1], [row[0] for row in added]


def _put_back(
    db: sqlite3.Connection, group: str, changed: tuple[bytes, bytes, list[bytes]]
) -> None:
    """Replace one group of rows of the current file with the older copy's."""
    lookup, secret_id, added = changed
    if group == "manifest":
        statements = [("manifests", "env = 'dev'", ())]
    elif group == "head":
        statements = [("secrets", "env = 'dev' AND lookup = ?", (lookup,))]
    elif group == "versions":
        statements = [("versions", "env = 'dev' AND secret_id = ?", (secret_id,))]
    elif group == "other secret":
        for extra in added:
            (sid,) = db.execute(
                "SELECT secret_id FROM secrets WHERE env = 'dev' AND lookup = ?", (extra,)
            ).fetchone()
            db.execute("DELETE FROM secrets WHERE env = 'dev' AND lookup = ?", (extra,))
            db.execute("DELETE FROM versions WHERE env = 'dev' AND secret_id = ?", (sid,))
        return
    elif group == "prod":
        statements = [(t, "env = 'prod'", ()) for t in ("manifests", "secrets", "versions")]
    elif group == "audit log":
        statements = [(t, "1", ()) for t in ("audit_events", "audit_intake", "audit_state")]
    else:  # pragma: no cover
        raise AssertionError(group)
    for table, where, params in statements:
        db.execute(f"DELETE FROM main.{table} WHERE {where}", params)
        db.execute(f"INSERT INTO main.{table} SELECT * FROM o.{table} WHERE {where}", params)


ROW_GROUPS = ("manifest", "head", "versions", "other secret", "prod")
SUBSETS = [
    combo
    for size in range(1, len(ROW_GROUPS) + 1)
    for combo in itertools.combinations(ROW_GROUPS, size)
]


def _restore(copies: Copies, groups: tuple[str, ...]) -> None:
    target = vault_file(copies.work)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copies.new, target)
    with sqlite3.connect(target) as db:
        db.execute("ATTACH DATABASE ? AS o", (str(copies.old),))
        changed = _differing(db, "dev")
        for group in groups:
            _put_back(db, group, changed)
    db.close()


def _events(work: Path) -> int:
    with sqlite3.connect(vault_file(work)) as db:
        return int(db.execute("SELECT count(*) FROM audit_events").fetchone()[0])


def _exit_5(result: Any, *needles: str) -> None:
    assert result.exit_code == 5, (result.exit_code, result.stdout, result.stderr)
    assert OLD not in result.stdout and NEW not in result.stdout
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


CURRENT = {"db/password": NEW, "api/token": "t1", "prod/key": "p2"}


def test_every_subset_of_older_rows_is_caught_by_every_read(copies: Copies) -> None:
    """31 subsets, the audit log left as it is. A read of what was rolled back, and every
    read that covers the whole environment (ls, export), exits 5; any other read gives the
    current value or exit 5, never an older one."""
    for groups in SUBSETS:
        _restore(copies, groups)
        touched_dev = set(groups) - {"prod"}
        reads = [
            (["get", "db/password"], bool(touched_dev & {"manifest", "head", "versions"})),
            (["get", "api/token"], "manifest" in groups),
            (["ls"], bool(touched_dev)),
            (["export", "--format", "json"], bool(touched_dev)),
            (["get", "prod/key", "-e", "prod"], "prod" in groups),
        ]
        for args, must_fail in reads:
            result = invoke(args)
            assert OLD not in result.stdout and "p1" not in result.stdout, (groups, args)
            if must_fail or result.exit_code != 0:
                _exit_5(result)
            else:
                name = args[1]
                assert result.stdout == f"{CURRENT[name]}\n", (groups, args)


@pytest.mark.parametrize("groups", [("manifest", "head", "versions"), ("prod",), ROW_GROUPS])
def test_no_command_launders_a_rollback(copies: Copies, groups: tuple[str, ...]) -> None:
    """Commands that do not read the rolled-back environment still chain an event; none
    may record the older manifest as if it were current."""
    _restore(copies, groups)
    events = _events(copies.work)
    (copies.work / "in.env").write_text("FRESH_A=1\nFRESH_B=2\n")
    for args in (
        ["put", "db/password"],
        ["put", "fresh/name", "-e", "prod"],
        ["import", "in.env", "-e", "prod"],  # many events in one transaction
        ["ls", "-e", "prod"],
        ["ls", "-e", "dev"],
        ["audit", "log"],
        ["unlock"],
        ["lock"],
        ["exec", "--", "true"],
        ["rollback", "db/password", "--to", "1"],
    ):
        result = invoke(args, input="laundered")
        assert result.exit_code == 5, (args, result.stdout, result.stderr)
    assert _events(copies.work) == events
    _exit_5(invoke(["get", "db/password"]))


def test_the_session_path_catches_it_too(copies: Copies, monkeypatch: pytest.MonkeyPatch) -> None:
    unlocked = invoke(["unlock", "--json"])
    assert unlocked.exit_code == 0
    shutil.copyfile(vault_file(copies.work), copies.new)  # with the unlock's event
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    monkeypatch.setenv("BSECRETS_SESSION", json.loads(unlocked.stdout)["session"])
    _restore(copies, ("manifest", "head", "versions", "other secret"))
    _exit_5(invoke(["get", "db/password"]), "environment 'dev' was rolled back")


def test_audit_verify_names_the_environment(copies: Copies) -> None:
    _restore(copies, ("manifest", "head", "versions", "other secret"))
    result = invoke(["audit", "verify", "--json"])
    assert result.exit_code == 5
    report = json.loads(result.stdout)
    assert report["problem"]["kind"] == "rollback"
    assert "environment 'dev' was rolled back" in report["problem"]["detail"]


def test_rolled_back_with_the_audit_log_needs_the_anchor(copies: Copies) -> None:
    """Every subset together with the audit log: a read gives the current value, exit 5,
    or (only when the copy is consistent for what it reads) the older value; in every
    case ``audit verify --anchor`` (taken after the rotation) exits 5."""
    old_answers = 0
    for groups in SUBSETS:
        _restore(copies, (*groups, "audit log"))
        result = invoke(["get", "db/password"])
        assert result.exit_code in (0, 5), (groups, result.stderr)
        if result.exit_code == 0:
            old_answers += result.stdout == f"{OLD}\n"
            assert result.stdout in (f"{OLD}\n", f"{NEW}\n"), groups
        verified = invoke(["audit", "verify", "--anchor", copies.anchor])
        assert verified.exit_code == 5, (groups, verified.stdout, verified.stderr)
    assert old_answers > 0  # the whole older copy reads back as it was: the stated limit


def test_the_audit_log_alone_rolled_back_is_caught_by_reads(copies: Copies) -> None:
    _restore(copies, ("audit log",))
    _exit_5(invoke(["get", "db/password"]), "the audit log ends before the last change")


@pytest.mark.parametrize(
    "wipe",
    [
        ["DELETE FROM audit_events"],
        [
            "DELETE FROM audit_events",
            "DELETE FROM audit_intake",
            "DELETE FROM audit_state",
            "DELETE FROM env_keys WHERE env = '__audit__'",
            "DELETE FROM manifests WHERE env = '__audit__'",
        ],
        ["DROP TABLE audit_events", "DROP TABLE audit_intake"],
        [
            "DELETE FROM env_keys WHERE env = '__audit__'",
            "DELETE FROM manifests WHERE env = '__audit__'",
        ],
    ],
    ids=["events", "events-key-manifest-state", "tables", "key-only"],
)
def test_a_wiped_audit_log_is_caught_without_an_anchor(vault: Path, wipe: list[str]) -> None:
    _put("db/password", NEW)
    with sqlite3.connect(vault_file(vault)) as db:
        for sql in wipe:
            db.execute(sql)
    _exit_5(invoke(["get", "db/password"]))
    _exit_5(invoke(["put", "db/password"], input="x"))
    _exit_5(invoke(["audit", "verify"]))
    _exit_5(invoke(["get", "db/password"]))  # nothing re-created the log in between


def test_a_removed_environment_is_caught(vault: Path) -> None:
    """All of prod's rows (key, manifest, secrets) deleted: it does not look unused."""
    _put("prod/key", "p1", env="prod")
    _put("dev/key", "d1")
    with sqlite3.connect(vault_file(vault)) as db:
        for table in ("env_keys", "manifests", "secrets", "versions"):
            db.execute(f"DELETE FROM {table} WHERE env = 'prod'")
    _exit_5(invoke(["get", "prod/key", "-e", "prod"]), "environment 'prod' was removed")
    _exit_5(invoke(["ls", "-e", "prod"]))
    _exit_5(invoke(["put", "prod/key", "-e", "prod"], input="x"))
    result = invoke(["get", "dev/key", "-e", "dev"])  # its event cannot be chained either
    _exit_5(result, "environment 'prod' was removed")
    assert "d1" not in result.stdout


def test_an_older_event_copied_to_the_end_does_not_pass(copies: Copies) -> None:
    """The newest event is authenticated by its link to the one before: an older event
    (recording the older state) appended as the newest does not vouch for old rows."""
    _restore(copies, ("manifest", "head", "versions", "other secret"))
    with sqlite3.connect(vault_file(copies.work)) as db:
        db.execute("ATTACH DATABASE ? AS o", (str(copies.old),))
        (last_old,) = db.execute("SELECT max(seq) FROM o.audit_events").fetchone()
        (last,) = db.execute("SELECT max(seq) FROM audit_events").fetchone()
        db.execute(
            "INSERT INTO audit_events SELECT ?, time, record, mac FROM o.audit_events"
            " WHERE seq = ?",
            (last + 1, last_old),
        )
    _exit_5(invoke(["get", "db/password"]), "does not authenticate")


def test_reads_and_writes_still_work_with_a_passphrase_after_all_this(vault: Path) -> None:
    """The plain path: many environments, every command, no false alarm."""
    for i in range(3):
        _put(f"s{i}", "first")
        _put(f"s{i}", f"v{i}")
        _put(f"s{i}", f"v{i}", env="prod")
    assert invoke(["rm", "s0"]).exit_code == 0
    assert invoke(["restore", "s0"]).exit_code == 0
    assert invoke(["rollback", "s1", "--to", "1"]).exit_code == 0
    assert invoke(["rm", "s2", "--purge", "--yes"]).exit_code == 0
    assert invoke(["audit", "verify"]).exit_code == 0
    assert invoke(["get", "s1"]).stdout == "first\n"
    assert invoke(["ls", "-e", "prod"]).exit_code == 0
    assert invoke(["audit", "verify"]).exit_code == 0
