"""The covering bucket indexes (vaultfile/schema.py, BUCKET_INDEXES) and the upgrade of
a vault made before them, whose bucket indexes held (env, bucket) only: such a vault
reads right through its old indexes, its first write transaction replaces them, and it
reads through the covering ones after; an upgrade that rolls back is done again by the
next write transaction."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke

from bsecrets.vaultfile.manifest import BUCKETS
from bsecrets.vaultfile.schema import BUCKET_INDEXES, OLD_BUCKET_INDEXES, bucket_index_upgrades
from bsecrets.vaultfile.store import VaultStore


def _db(vault: Path) -> Path:
    return vault / ".bsecrets" / "vault.db"


def _fill(count: int = 24) -> None:
    """``count`` secrets in dev, every third with a second version, one deleted."""
    for i in range(count):
        assert invoke(["put", f"s{i:02d}"], input=f"value {i}").exit_code == 0
        if i % 3 == 0:
            assert invoke(["put", f"s{i:02d}"], input=f"value {i} again").exit_code == 0
    assert invoke(["rm", "s01", "--yes"]).exit_code == 0


def _make_old(db: Path) -> None:
    """The bucket indexes as bsecrets created them before this change (same sql text)."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        for name, sql in OLD_BUCKET_INDEXES.items():
            conn.execute(f"DROP INDEX {name}")
            conn.execute(sql)
        conn.execute("COMMIT")


def _indexes(db: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        return {name: sql for name, sql in rows if name in BUCKET_INDEXES}


def _heads_plan(db: Path) -> str:
    sql = (
        "EXPLAIN QUERY PLAN SELECT lookup, secret_id, record FROM secrets"
        " INDEXED BY secrets_by_bucket WHERE env = 'dev' AND bucket = 0"
    )
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return str(conn.execute(sql).fetchone()[3])


def _all_bucket_rows(db: Path) -> list[Any]:
    """What every bucket's digest covers, read by VaultStore.bucket_rows (no write)."""
    store = VaultStore.open(db)
    try:
        with store.read():
            return [store.bucket_rows("dev", bucket) for bucket in range(BUCKETS)]
    finally:
        store.close()


def test_new_vaults_have_the_covering_indexes(vault: Path) -> None:
    assert _indexes(_db(vault)) == BUCKET_INDEXES
    assert "COVERING INDEX secrets_by_bucket" in _heads_plan(_db(vault))


def test_an_old_vault_reads_right_and_is_upgraded_by_its_first_write(vault: Path) -> None:
    db = _db(vault)
    _fill()
    rows = _all_bucket_rows(db)
    assert sum(len(heads) for heads, _ in rows) == 24
    _make_old(db)
    assert _indexes(db) == OLD_BUCKET_INDEXES
    assert "COVERING" not in _heads_plan(db)

    assert _all_bucket_rows(db) == rows  # through the old indexes
    assert _indexes(db) == OLD_BUCKET_INDEXES  # a read upgrades nothing
    listed = invoke(["ls", "--deleted", "--json"])
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.count('"name"') == 24, listed.stdout
    assert _indexes(db) == BUCKET_INDEXES  # ls read, then wrote its audit event

    assert "COVERING INDEX secrets_by_bucket" in _heads_plan(db)
    assert _all_bucket_rows(db) == rows  # through the covering indexes
    assert invoke(["get", "s03"]).stdout == "value 3 again\n"
    assert invoke(["get", "s03", "--version", "1"]).stdout == "value 3\n"
    assert invoke(["put", "s01"], input="back").exit_code == 0  # written with them
    assert invoke(["get", "s01"]).stdout == "back\n"
    assert invoke(["verify"]).exit_code == 0  # the indexes agree with the tables


def test_an_upgrade_that_rolls_back_is_done_by_the_next_write(vault: Path) -> None:
    db = _db(vault)
    _fill(4)
    _make_old(db)
    store = VaultStore.open(db)
    try:
        with pytest.raises(RuntimeError), store.write():
            raise RuntimeError("the transaction fails")
        assert _indexes(db) == OLD_BUCKET_INDEXES
        with store.write():
            pass
        assert _indexes(db) == BUCKET_INDEXES
    finally:
        store.close()
    assert invoke(["get", "s02"]).stdout == "value 2\n"


def test_only_the_old_shape_is_replaced() -> None:
    assert bucket_index_upgrades(list(BUCKET_INDEXES.items())) == []
    assert bucket_index_upgrades([("sqlite_autoindex_secrets_1", None)]) == []
    other = "CREATE INDEX secrets_by_bucket ON secrets (env, bucket, lookup)"  # a newer one
    assert bucket_index_upgrades([("secrets_by_bucket", other)]) == []
    old = [("versions_by_bucket", OLD_BUCKET_INDEXES["versions_by_bucket"])]
    assert bucket_index_upgrades(old) == [
        "DROP INDEX versions_by_bucket",
        BUCKET_INDEXES["versions_by_bucket"],
    ]
