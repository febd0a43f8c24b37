"""Issue #19: ``bsecrets doctor [--fix] [--json]`` (docs/doctor.md) against a real vault
with each problem planted, run with and without ``--fix``: loose permissions, an expired
session left on disk, a WAL grown large, a damaged page, a changed audit event, a
missing or stale anchor, a plain-http endpoint, a profile that does not load, a rotation
overdue, a break-glass setup to re-key, and no credentials at hand. A clean vault is
exit 0; no output ever holds a value. The backend checks are tests/test_doctor_backends.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import Result, invoke, put_secret
from helpers.file_keyring import FileKeyring, file_keyring  # noqa: F401
from helpers.rotation import policy
from helpers.values import CANARY, PASSPHRASE

from bsecrets.config.loader import load_profile
from bsecrets.services.doctor import Status, duties, profile
from bsecrets.services.manager import SecretsManager
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials

FINDING_KEYS = {"check", "status", "detail", "hint", "integrity", "fixed"}
# the checks that do not apply to the fixture's vault (no keyring there, no keyring wrap)
NOT_APPLICABLE = {"audit.anchor", "keyring"}


def vault_file(work: Path) -> Path:
    return work / ".bsecrets" / "vault.db"


def doctor(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Result]:
    """``doctor --json``: (exit code, findings by check, the result)."""
    result = invoke(["doctor", "--json", *args], env=env)
    data = json.loads(result.stdout)
    assert set(data) == {"findings", "exit_code"} and data["exit_code"] == result.exit_code
    found = {f["check"]: f for f in data["findings"]}
    assert len(found) == len(data["findings"]), "each check once"
    assert CANARY not in result.stdout + result.stderr
    return result.exit_code, found, result


def statuses(found: dict[str, Any]) -> dict[str, str]:
    return {check: f["status"] for check, f in found.items()}


def problems(found: dict[str, Any]) -> dict[str, str]:
    return {c: f["status"] for c, f in found.items() if f["status"] in ("warn", "fail")}


def audit_rows(work: Path) -> int:
    with sqlite3.connect(vault_file(work)) as db:
        (count,) = db.execute("SELECT count(*) FROM audit_events").fetchone()
    db.close()
    return int(count)


@pytest.fixture
def planted(vault: Path) -> Path:
    """The fixture's vault with a value that must never be printed."""
    put_secret("db/password", CANARY.encode())
    return vault


# --- a clean vault ----------------------------------------------------------------------


def test_a_clean_vault_is_exit_0_every_check_ok_and_one_audit_event(planted: Path) -> None:
    before = audit_rows(planted)
    code, found, _ = doctor()
    assert code == 0, problems(found)
    for check, finding in found.items():
        assert set(finding) == FINDING_KEYS
        assert finding["status"] in {s.value for s in Status}
        assert finding["integrity"] is False and finding["fixed"] is None
        expected = "skip" if check in NOT_APPLICABLE else "ok"
        assert finding["status"] == expected, finding
    for check in ("profile.file", "profile.load", "permissions.vault", "permissions.sessions",
                  "sessions.stale", "vault.pages", "vault.wal", "vault.keys", "audit.verify",
                  "rotation", "break_glass"):  # fmt: skip
        assert check in found
    # doctor records its audit verification, as 'audit verify' does, and nothing else
    assert audit_rows(planted) == before + 1
    events = json.loads(invoke(["audit", "log", "--json"]).stdout)
    assert events[-2]["action"] == "audit.verify"  # the last one is 'audit log' itself
    text = invoke(["doctor"])
    assert text.exit_code == 0 and text.stderr == ""
    assert text.stdout.startswith("ok    profile.file: ")
    assert text.stdout.splitlines()[-1].startswith("doctor: ")
    assert CANARY not in text.stdout
    assert invoke(["doctor", "-q"]).stdout == ""  # only the problems


# --- permissions ------------------------------------------------------------------------


def test_loose_permissions_of_the_vault_file_and_folder(planted: Path) -> None:
    db = vault_file(planted)
    db.chmod(0o644)
    db.parent.chmod(0o755)
    code, found, _ = doctor()
    assert code == 1
    finding = found["permissions.vault"]
    assert finding["status"] == "fail" and finding["fixed"] is None
    assert "mode 644" in finding["detail"] and "mode 755" in finding["detail"]
    assert finding["hint"].startswith("bsecrets doctor --fix")
    assert found["vault.file"]["status"] == "fail"  # every command refuses it now
    assert (db.stat().st_mode & 0o777, db.parent.stat().st_mode & 0o777) == (0o644, 0o755)
    fixed = invoke(["doctor", "--fix"])
    assert fixed.exit_code == 0, fixed.stdout
    assert f"fixed: chmod 700 {db.parent} (was 755); chmod 600 {db} (was 644)" in fixed.stdout
    assert "1 fixed" in fixed.stdout.splitlines()[-1]
    assert (db.stat().st_mode & 0o777, db.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert CANARY not in fixed.stdout + fixed.stderr


def test_a_profile_others_can_write_is_a_warning_and_fix_makes_it_load(planted: Path) -> None:
    path = planted / "bsecrets.yaml"
    path.chmod(0o664)
    code, found, _ = doctor()
    assert code == 1
    assert statuses(found) == {"profile.file": "warn", "profile.load": "skip"}
    assert "redirects your secrets" in found["profile.file"]["detail"]
    assert path.stat().st_mode & 0o777 == 0o664
    code, found, _ = doctor("--fix")
    assert code == 0, problems(found)
    assert found["profile.file"]["fixed"] == f"chmod go-w {path} (now 644)"
    assert found["audit.verify"]["status"] == "ok"  # and the rest ran


# --- sessions ---------------------------------------------------------------------------


def test_an_expired_session_left_on_disk_is_removed_by_fix(planted: Path) -> None:
    assert invoke(["unlock"]).exit_code == 0  # live: stays
    assert invoke(["unlock"]).exit_code == 0  # made expired below
    folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "bsecrets" / "sessions"
    live, stale = sorted(folder.glob("*.json"))
    body = json.loads(stale.read_text())
    # planted: the expiry moved into the past (the file no longer authenticates either;
    # as an expired session it could not be used anyway)
    body["expires_at"] = "2020-01-01T00:00:00.000Z"
    stale.write_text(json.dumps(body))
    code, found, _ = doctor()
    assert code == 1 and problems(found) == {"sessions.stale": "warn"}
    assert found["sessions.stale"]["detail"].startswith("1 expired session file left in ")
    assert stale.exists()
    code, found, _ = doctor("--fix")
    assert code == 0
    assert found["sessions.stale"]["fixed"] == "removed 1 expired session file(s)"
    assert not stale.exists() and live.exists()


# --- the vault file: WAL, pages ----------------------------------------------------------


def test_a_large_wal_is_checkpointed_by_fix(planted: Path) -> None:
    """Planted as a long transaction does it: on a connection of its own, a table of
    68 MB written with a small page cache spills its pages into the WAL, then is rolled
    back. The vault is unchanged; the WAL keeps its size (SQLite never shrinks it)
    while a connection stays open, as this one does (a reader such as 'audit tail')."""
    db = vault_file(planted)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("PRAGMA cache_size=-2000")
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("CREATE TABLE doctor_fill(x)")
        holder.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 17000)"
            " INSERT INTO doctor_fill SELECT randomblob(4000) FROM n"
        )
        holder.execute("ROLLBACK")
        wal = Path(f"{db}-wal")
        assert wal.stat().st_size > 64 * 1024 * 1024
        code, found, _ = doctor()
        assert code == 1 and problems(found) == {"vault.wal": "warn"}
        assert "above 64.0 MiB" in found["vault.wal"]["detail"]
        assert wal.stat().st_size > 64 * 1024 * 1024
        code, found, _ = doctor("--fix")
        assert code == 0, problems(found)
        assert found["vault.wal"]["fixed"].startswith("checkpointed the WAL into the vault file")
        assert wal.stat().st_size < 1024 * 1024
    finally:
        holder.close()
    assert invoke(["get", "db/password"]).stdout == CANARY + "\n"


def _pages_of(db: Path, table: str) -> tuple[int, list[int]]:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        query = "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'"
        pages = [row[0] for row in conn.execute(query, (table,))]
    conn.close()
    return size, pages


def test_a_damaged_page_is_exit_5_and_nothing_is_written(planted: Path) -> None:
    """Bytes overwritten in a page of the versions table (its cell pointers), as
    tests/test_verify.py damages one."""
    db = vault_file(planted)
    size, pages = _pages_of(db, "versions")
    with db.open("r+b") as fh:
        fh.seek((pages[-1] - 1) * size + 8)
        fh.write(b"\xff\xf0" * 32)
    before = db.read_bytes()
    for args in ((), ("--fix",)):
        code, found, _ = doctor(*args)
        assert code == 5
        pages_found = found["vault.pages"]
        assert pages_found["status"] == "fail" and pages_found["integrity"] is True
        assert "table versions" in pages_found["detail"]
        assert db.read_bytes() == before  # no event, no checkpoint, no fix on a damaged file


# --- the audit log and its anchor ---------------------------------------------------------


def _change_event(work: Path, seq: int) -> None:
    with sqlite3.connect(vault_file(work)) as db:
        db.execute("UPDATE audit_events SET record = randomblob(length(record)) WHERE seq = ?",
                   (seq,))  # fmt: skip
    db.close()


def test_a_changed_audit_event_is_exit_5(planted: Path) -> None:
    _change_event(planted, 2)
    code, found, _ = doctor()
    assert code == 5
    verify = found["audit.verify"]
    assert verify["status"] == "fail" and verify["integrity"] is True
    assert verify["detail"].startswith("audit log: edited at event 2:")
    assert verify["hint"]


def _anchor(keyring: FileKeyring) -> str | None:
    found = [v for k, v in keyring.entries().items() if k.startswith("bsecrets/audit-")]
    return found[0] if found else None


def test_a_missing_then_stale_anchor_is_set_by_fix_once_the_chain_verifies(
    planted: Path,
    file_keyring: FileKeyring,  # noqa: F811
) -> None:
    code, found, _ = doctor()
    assert code == 1 and problems(found) == {"audit.anchor": "warn"}
    assert "holds no anchor" in found["audit.anchor"]["detail"]
    assert _anchor(file_keyring) is None  # not moved without --fix
    code, found, _ = doctor("--fix")
    assert code == 0
    assert found["audit.anchor"]["fixed"].startswith("anchored the verified head, event ")
    kept = _anchor(file_keyring)
    assert kept is not None
    code, found, _ = doctor()  # current: it stays so (doctor's own event is anchored too)
    assert code == 0 and found["audit.anchor"]["status"] == "ok"
    assert _anchor(file_keyring) != kept
    kept = _anchor(file_keyring)
    put_secret("other", b"x")
    code, found, _ = doctor()  # behind after a put: the usual state, said, not a warning
    assert code == 0 and found["audit.anchor"]["status"] == "ok"
    assert "1 event behind the head" in found["audit.anchor"]["detail"]
    assert _anchor(file_keyring) == kept
    code, found, _ = doctor("--fix")
    assert code == 0 and found["audit.anchor"]["fixed"] is not None
    assert _anchor(file_keyring) != kept


def test_a_stale_anchor_is_not_moved_when_the_chain_does_not_verify(
    planted: Path,
    file_keyring: FileKeyring,  # noqa: F811
) -> None:
    assert invoke(["audit", "anchor"]).exit_code == 0
    kept = _anchor(file_keyring)
    put_secret("other", b"x")
    _change_event(planted, 3)
    code, found, _ = doctor("--fix")
    assert code == 5
    assert found["audit.verify"]["status"] == "fail"
    assert found["audit.anchor"]["status"] == "skip" and found["audit.anchor"]["fixed"] is None
    assert _anchor(file_keyring) == kept


# --- the profile ------------------------------------------------------------------------


def test_a_profile_that_does_not_load_is_a_failure_with_the_parsers_message(
    planted: Path,
) -> None:
    path = planted / "bsecrets.yaml"
    path.write_text(path.read_text().replace("default_env: dev\n", "default_env: dev\nfoo: 1\n"))
    for args in ((), ("--fix",)):
        code, found, _ = doctor(*args)
        assert code == 1
        assert statuses(found) == {"profile.file": "ok", "profile.load": "fail"}
        assert found["profile.load"]["detail"] == f"{path}:4: foo: unknown key"
        assert "allowed here" in found["profile.load"]["hint"]


def _manager(clock: Any = utcnow) -> SecretsManager:
    creds = Credentials(passphrase=PASSPHRASE)
    return SecretsManager(load_profile(Path("bsecrets.yaml")), creds, clock=clock)


def test_a_plain_http_endpoint_is_a_warning(planted: Path) -> None:
    """The lint alone (the backend checks would try to reach these hosts)."""
    path = planted / "bsecrets.yaml"
    path.write_text(path.read_text() + (
        "  staging:\n    backend: vault\n    address: http://10.1.2.3:8200\n    prefix: app\n"
        "  lab:\n    backend: vault\n    address: http://10.1.2.4:8200\n    prefix: app\n"
        "    insecure_http: true\n"
        "  local-bao:\n    backend: vault\n    address: http://127.0.0.1:8200\n    prefix: app\n"
    ))  # fmt: skip
    found = {f.check: f for f in profile.lint_profile(_manager(), False)}
    staging = found["profile.endpoint.staging"]
    assert staging.status is Status.WARN
    assert "http://10.1.2.3:8200 (from environments.staging.address)" in staging.detail
    assert "insecure_http: true" in (staging.hint or "")
    assert found["profile.endpoint.lab"].status is Status.OK  # accepted in the profile
    assert found["profile.endpoint.local-bao"].status is Status.OK  # loopback


# --- what is owed: rotation, break-glass ----------------------------------------------------


def test_a_rotation_overdue_is_a_warning_naming_the_secret(planted: Path) -> None:
    policy(planted, "dev", "{max_age: 30d, generate: 'hex:8'}")
    code, found, _ = doctor()  # now: just written, not due
    assert code == 0 and found["rotation.dev"]["status"] == "ok"
    later = utcnow() + timedelta(days=31)  # a fixed clock past max_age
    (finding,) = duties.check_rotation(_manager(lambda: later), True)
    assert finding.check == "rotation.dev" and finding.status is Status.WARN
    assert finding.detail.startswith("1 secret of 'dev' past the policy's max_age: db/password")
    assert finding.hint == "bsecrets rotate --due -e dev (rotates each with its policy's generator)"
    assert finding.fixed is None  # --fix rotates nothing
    assert invoke(["get", "db/password"]).stdout == CANARY + "\n"


def test_a_break_glass_setup_to_rekey_is_a_warning(planted: Path) -> None:
    for name in ("alice", "bob", "carol"):
        added = invoke(["access", "principal", "add", name],
                       env={"BSECRETS_NEW_PASSPHRASE": f"{name}-pass-1234"})  # fmt: skip
        assert added.exit_code == 0, added.stderr
    setup = ["break-glass", "setup", "-e", "prod", "--custodians", "alice,bob,carol",
             "--threshold", "2"]  # fmt: skip
    assert invoke(setup).exit_code == 0
    code, found, _ = doctor()
    assert code == 0 and found["break_glass.prod"]["status"] == "ok"
    # planted: what 'break-glass activate' records once the emergency key was used
    with sqlite3.connect(vault_file(planted)) as db:
        (raw,) = db.execute("SELECT record FROM break_glass WHERE env = 'prod'").fetchone()
        db.execute("UPDATE break_glass SET record = ? WHERE env = 'prod'",
                   (json.dumps({**json.loads(raw), "used": True}),))  # fmt: skip
    db.close()
    for args in ((), ("--fix",)):
        code, found, _ = doctor(*args)
        assert code == 1 and problems(found) == {"break_glass.prod": "warn"}
        assert "emergency key was used" in found["break_glass.prod"]["detail"]
        assert found["break_glass.prod"]["hint"] == "bsecrets break-glass rekey -e prod"
        assert found["break_glass.prod"]["fixed"] is None


# --- no credentials at hand ---------------------------------------------------------------


def test_without_credentials_the_checks_that_need_keys_skip(
    planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy(planted, "dev", "{max_age: 30d}")
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    before = audit_rows(planted)
    code, found, _ = doctor()
    assert code == 0, problems(found)
    for check in ("vault.keys", "audit.verify", "audit.anchor", "rotation.dev"):
        assert found[check]["status"] == "skip", found[check]
    assert "bsecrets unlock" in found["vault.keys"]["hint"]
    assert found["vault.pages"]["status"] == "ok"  # what needs no key still runs
    assert audit_rows(planted) == before  # nothing recorded without the key
    # and honestly: a damaged file is still exit 5 without the key
    _change_event(planted, 2)
    db = vault_file(planted)
    size, pages = _pages_of(db, "audit_events")
    with db.open("r+b") as fh:
        fh.seek((pages[-1] - 1) * size + 8)
        fh.write(b"\xff\xf0" * 32)
    code, found, _ = doctor()
    assert code == 5 and found["vault.pages"]["integrity"] is True


# --- the OS keyring ---------------------------------------------------------------------


def test_the_keyring_of_a_keyring_vault_is_checked(
    isolated: Path,
    file_keyring: FileKeyring,  # noqa: F811
) -> None:
    made = invoke(["init", "--keyring", "--env", "dev"])
    assert made.exit_code == 0, made.stderr
    code, found, _ = doctor("--fix")  # a new vault has no anchor yet: --fix sets it
    assert code == 0, problems(found)
    assert found["keyring"]["status"] == "ok" and found["vault.keys"]["status"] == "ok"
    key, _ = file_keyring.find("bsecrets/vault-")
    file_keyring.delete_password(*key.split("/", 1))  # the entry lost
    code, found, _ = doctor()
    assert code == 1
    assert found["keyring"]["status"] == "fail"  # its only way in: no passphrase wrap
    assert "holds no key for this vault" in found["keyring"]["detail"]
    assert found["vault.keys"]["status"] == "skip"  # and nothing asked for a passphrase
