"""Issue #11 item 15: `bsecrets verify`, one answer to "is my vault intact".

Real damage to a real vault file: bytes overwritten in a page that SQLite's
dbstat says belongs to a table, a header that is no longer SQLite's, a byte
flipped inside a value (which no page check can see), a manifest that does not
authenticate, an environment put back from an older copy, an owner key that is
not the one that unlocks, a truncated audit log under an anchor. Each is exit 5
with the problem named once; a clean vault (also one with an environment the
profile no longer names, also under a session) is exit 0.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke, put_secret

DEV = {f"app/key-{i:02d}": os.urandom(300).hex().encode() for i in range(40)}


def vault_file(work: Path) -> Path:
    return work / ".bsecrets" / "vault.db"


@pytest.fixture
def filled(vault: Path) -> Path:
    for name, value in DEV.items():
        put_secret(name, value)
    put_secret("db/password", b"prod-pw", env="prod")
    assert invoke(["get", "db/password", "-e", "prod"]).exit_code == 0
    return vault


def verified(*args: str) -> tuple[int, dict[str, Any]]:
    result = invoke(["verify", "--json", *args])
    assert result.stderr == "", result.stderr
    return result.exit_code, json.loads(result.stdout)


def problems(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["check"], p["where"]) for p in report["problems"]]


def _settled(db: Path) -> None:
    """Everything in the main file (no WAL), so that bytes written there stay."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _pages_of(db: Path, table: str) -> tuple[int, list[int]]:
    """(page size, the leaf pages of ``table``) from SQLite's dbstat."""
    with sqlite3.connect(db) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        leaves = [
            row[0]
            for row in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
                (table,),
            )
        ]
    conn.close()
    return size, leaves


def _overwrite(db: Path, offset: int, data: bytes) -> None:
    with db.open("r+b") as fh:
        fh.seek(offset)
        fh.write(data)


# --- a clean vault ---------------------------------------------------------------


def test_a_clean_vault_is_intact(filled: Path) -> None:
    code, report = verified()
    assert code == 0
    assert report["ok"] is True and report["problems"] == []
    assert report["checks"] == ["pages", "keys", "rows", "audit"]
    assert report["vault_file"] == str(vault_file(filled))
    assert report["environments"] == {
        "dev": {"generation": len(DEV), "secrets": len(DEV)},
        "prod": {"generation": 1, "secrets": 1},
    }
    assert report["audit"]["ok"] is True and report["audit"]["problem"] is None
    text = invoke(["verify"])
    assert text.exit_code == 0, text.stderr
    assert text.stdout.startswith(f"ok: {vault_file(filled)} is intact\n")
    assert "dev (generation 40, 40 secrets), prod (generation 1, 1 secret)" in text.stdout
    # it is recorded in the audit log as what it is
    log = json.loads(invoke(["audit", "log", "--json", "--action", "verify"]).stdout)
    assert [e["outcome"] for e in log] == ["ok", "ok"]


def test_an_environment_the_profile_no_longer_names_is_checked(filled: Path) -> None:
    put_secret("old/token", b"t", env="prod")
    profile = filled / "bsecrets.yaml"
    text = profile.read_text()
    assert "  prod:\n    backend: local\n" in text
    profile.write_text(text.replace("  prod:\n    backend: local\n", ""))
    code, report = verified()
    assert code == 0, report
    assert report["environments"]["prod"] == {"generation": 2, "secrets": 2}
    with sqlite3.connect(vault_file(filled)) as db:
        db.execute("UPDATE manifests SET mac = zeroblob(32) WHERE env = 'prod'")
    db.close()
    code, report = verified()
    assert code == 5
    assert problems(report) == [("rows", "prod")]
    assert "'prod' failed authentication" in report["problems"][0]["problem"]


def test_intact_under_a_session(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = invoke(["unlock"]).stdout.strip().split("=", 1)[1]
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    monkeypatch.setenv("BSECRETS_SESSION", token)
    code, report = verified()
    assert code == 0, report


# --- page-level damage ------------------------------------------------------------


def test_damaged_pages_of_a_table_are_exit_5_named_by_table(filled: Path) -> None:
    db = vault_file(filled)
    _settled(db)
    size, leaves = _pages_of(db, "versions")
    assert len(leaves) >= 2
    page = leaves[len(leaves) // 2]
    _overwrite(db, (page - 1) * size + 8, b"\xff\xf0" * 32)  # its cell pointers: out of the page
    before = db.read_bytes()
    code, report = verified()
    assert code == 5
    pages = [p for p in report["problems"] if p["check"] == "pages"]
    assert [p["where"] for p in pages] == ["table versions"], pages  # once, by table
    # SQLite names the page, unless its check stops at the damage instead of reporting it;
    # then bsecrets checks table by table, and the table is still named
    assert f"page {page}" in pages[0]["problem"] or "malformed" in pages[0]["problem"]
    assert len(report["problems"]) == len({(p["check"], p["problem"]) for p in report["problems"]})
    assert db.read_bytes() == before  # a damaged file is not written to, not even an event
    text = invoke(["verify"])
    assert text.exit_code == 5
    assert text.stdout.startswith("problem: pages: table versions: ")
    lines = text.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and "not intact" in lines[0]
    assert lines[1].startswith("hint: ")
    # 'audit verify' checks only the chain, and says where page damage is checked
    chain = invoke(["audit", "verify"])
    assert "bsecrets verify" in chain.stdout + chain.stderr


def test_a_file_that_is_no_longer_sqlite_is_exit_5(filled: Path) -> None:
    db = vault_file(filled)
    _settled(db)
    _overwrite(db, 0, b"not a database!!")
    code, report = verified()
    assert code == 5
    assert problems(report) == [("pages", "vault file")]
    assert "not a database" in report["problems"][0]["problem"]


def test_a_byte_flipped_inside_a_value_is_exit_5(filled: Path) -> None:
    """No page check sees it and the manifest covers only a value's nonce and tag:
    verify authenticates every value."""
    db = vault_file(filled)
    with sqlite3.connect(db) as conn:
        sid, version, value = conn.execute(
            "SELECT secret_id, version, value FROM versions WHERE env = 'dev' LIMIT 1"
        ).fetchone()
        middle = len(value) // 2
        flipped = value[:middle] + bytes([value[middle] ^ 1]) + value[middle + 1 :]
        conn.execute(
            "UPDATE versions SET value = ? WHERE env = 'dev' AND secret_id = ? AND version = ?",
            (flipped, sid, version),
        )
    conn.close()
    code, report = verified()
    assert code == 5
    assert problems(report) == [("rows", "dev")]
    assert "failed authentication" in report["problems"][0]["problem"]


# --- rows and keys ---------------------------------------------------------------


def test_a_damaged_manifest_is_one_problem(filled: Path) -> None:
    with sqlite3.connect(vault_file(filled)) as db:
        db.execute("UPDATE manifests SET mac = zeroblob(32) WHERE env = 'dev'")
    db.close()
    code, report = verified()
    assert code == 5
    # the audit log disagrees with it too, but the manifest is the problem to fix
    assert problems(report) == [("rows", "dev")]
    assert "'dev' failed authentication" in report["problems"][0]["problem"]
    assert report["environments"] == {"prod": {"generation": 1, "secrets": 1}}


def test_deleted_rows_are_named_by_environment(filled: Path) -> None:
    with sqlite3.connect(vault_file(filled)) as db:
        db.execute("DELETE FROM versions WHERE rowid IN (SELECT rowid FROM versions LIMIT 1)")
        db.execute("DELETE FROM secrets WHERE env = 'prod'")
    db.close()
    code, report = verified()
    assert code == 5
    assert sorted(problems(report)) == [("rows", "dev"), ("rows", "prod")]


def test_an_owner_key_that_does_not_unlock_is_exit_5(filled: Path) -> None:
    from bsecrets.crypto.keys import generate_private_key, public_key_of

    with sqlite3.connect(vault_file(filled)) as db:
        db.execute("UPDATE principals SET public_key = ?", (public_key_of(generate_private_key()),))
    db.close()
    code, report = verified()
    assert code == 5
    assert problems(report) == [("keys", "owner key")]


def test_a_removed_environment_key_is_exit_5(filled: Path) -> None:
    with sqlite3.connect(vault_file(filled)) as db:
        db.execute("DELETE FROM env_keys WHERE env = 'prod'")
    db.close()
    code, report = verified()
    assert code == 5
    assert problems(report) == [("keys", "prod")]


# --- against the audit log -------------------------------------------------------


def _copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def test_an_environment_rolled_back_from_an_older_copy(filled: Path, tmp_path: Path) -> None:
    db = vault_file(filled)
    old = tmp_path / "old.db"
    _copy(db, old)
    put_secret("db/password", b"rotated", env="prod")
    put_secret("app/key-00", b"rotated too")
    with sqlite3.connect(db) as conn:  # prod's rows put back, whole and self-consistent
        conn.execute("ATTACH ? AS o", (str(old),))
        for table in ("manifests", "secrets", "versions"):
            conn.execute(f"DELETE FROM {table} WHERE env = 'prod'")
            conn.execute(f"INSERT INTO {table} SELECT * FROM o.{table} WHERE env = 'prod'")
    conn.close()
    code, report = verified()
    assert code == 5
    assert problems(report) == [("audit", "prod")]
    assert "'prod' was rolled back" in report["problems"][0]["problem"]
    assert report["environments"]["prod"] == {"generation": 1, "secrets": 1}  # its rows hold


def test_every_rolled_back_environment_is_named(filled: Path, tmp_path: Path) -> None:
    db = vault_file(filled)
    old = tmp_path / "old.db"
    _copy(db, old)
    put_secret("db/password", b"rotated", env="prod")
    put_secret("app/key-00", b"rotated too")
    with sqlite3.connect(db) as conn:
        conn.execute("ATTACH ? AS o", (str(old),))
        for table in ("manifests", "secrets", "versions"):
            conn.execute(f"DELETE FROM {table} WHERE env IN ('dev', 'prod')")
            conn.execute(f"INSERT INTO {table} SELECT * FROM o.{table} WHERE env != '__audit__'")
    conn.close()
    code, report = verified()
    assert code == 5
    assert problems(report) == [("audit", "dev"), ("audit", "prod")]


def test_a_truncated_audit_log_under_an_anchor(filled: Path) -> None:
    for _ in range(3):
        assert invoke(["get", "app/key-01"]).exit_code == 0
    anchor = invoke(["audit", "anchor"]).stdout.strip()
    seq = int(anchor.split(":")[0])
    with sqlite3.connect(vault_file(filled)) as db:  # the last reads and the anchor's event
        db.execute("DELETE FROM audit_events WHERE seq > ?", (seq - 3,))
    db.close()
    code, report = verified("--anchor", anchor)
    assert code == 5
    assert problems(report) == [("audit", "audit log")]
    assert report["audit"]["problem"]["kind"] in ("truncated", "anchor")
    code, report = verified()  # without the anchor the tail cannot be missed: it reads clean
    assert code == 0


def test_a_wiped_audit_log(filled: Path) -> None:
    with sqlite3.connect(vault_file(filled)) as db:
        db.execute("DELETE FROM audit_events")
    db.close()
    code, report = verified()
    assert code == 5
    assert problems(report) == [("audit", "dev"), ("audit", "prod")]
    assert all("audit log is empty" in p["problem"] for p in report["problems"])


def test_verify_copies_nothing_to_stdout_but_the_report(filled: Path) -> None:
    result = invoke(["verify", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"] is True
    for value in DEV.values():
        assert value.decode() not in result.stdout + result.stderr
    assert b"prod-pw" not in (result.stdout + result.stderr).encode()


def test_verify_without_a_vault_is_not_found(isolated: Path) -> None:
    (isolated / "bsecrets.yaml").write_text(
        "version: 1\ndefault_env: dev\nenvironments:\n  dev:\n    backend: local\n"
    )
    result = invoke(["verify"])
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("error: ") and "hint: " in result.stderr
