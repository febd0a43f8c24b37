"""The hot statements of get, ls, put, import, exec and export use their indexes (issue
#20, lever 7).

Every statement those operations send to the vault file is recorded (SQLite's
trace callback on the store's connection: the SQL as executed, parameters bound)
on a vault with a thousand secrets and audit events, then explained (the vault runs
no ANALYZE, so SQLite plans by the schema, not by row counts: more rows would not
change a plan, only the test's time). A full
SCAN of a table that grows with the secrets or the events (secrets, versions,
audit_events) fails, and so does a temporary B-tree for sorting one: both would
make the command slower with every secret (an ORDER BY once made every bucket
read walk the whole environment, bench/README.md "History of the findings").
Small tables (meta, manifests, sqlite_master, the policy...) may be scanned.
The bucket reads must also be answered by the bucket indexes alone, without reading
a row of the tables (the covering indexes of vaultfile/schema.py): a bucket's (get,
exec's reads), and every bucket's at once with the count before them (ls and export
of this small environment: VaultStore.environment_rows).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import quote

from helpers.cli import invoke
from helpers.values import PASSPHRASE

from bsecrets.audit.events import Action
from bsecrets.config.loader import load_profile
from bsecrets.services.manager import SecretsManager
from bsecrets.services.transfer import apply_import, plan_import
from bsecrets.vaultfile.connection import CACHE_KIB, connect
from bsecrets.vaultfile.credentials import Credentials

SECRETS = 1000
GROWING = ("secrets", "versions", "audit_events")
# The chain's head: the rowid walked backwards from the end, stopped by LIMIT.
STOPPED_BY_LIMIT = re.compile(r"FROM audit_events ORDER BY seq DESC LIMIT \d+$")
SKIPPED = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "CREATE", "INSERT")

# The versions' bucket read takes the value's nonce and tag from the index's expressions
# (substr(value, ...)). SQLite 3.40 reads them from the index but plans before it knows,
# so it says "USING INDEX"; _table_reads checks the program, whatever the plan says.
# A bucket's rows are searched by (env, bucket); every bucket's at once (a small
# environment's, VaultStore.environment_rows), by env.
COVERED_VERSIONS = [
    f"SEARCH versions USING {kind}INDEX versions_by_bucket ({key})"
    for kind in ("COVERING ", "")
    for key in ("env=? AND bucket=?", "env=?")
]

# SQLite's opcodes that read the row of their cursor (p1), or move the cursor to one
ROW_READS = frozenset({
    "Column", "Rowid", "RowData", "SeekRowid", "NotExists", "Found", "NotFound",
    "Rewind", "Last", "Next", "Prev", "SeekGE", "SeekGT", "SeekLE", "SeekLT",
})  # fmt: skip


def _build(folder: Path) -> SecretsManager:
    """SECRETS secrets in dev, each with two versions (an import, then a second one
    that changes every value), so the bucket indexes hold many rows."""
    dotenv = folder / "big.env"
    for round_ in (1, 2):
        dotenv.write_text("".join(f"KEY_{i:05d}=value-{round_}-{i}\n" for i in range(SECRETS)))
        result = invoke(["import", str(dotenv), "-e", "dev"])
        assert result.exit_code == 0, result.stderr
    dotenv.unlink()
    return SecretsManager(
        load_profile(folder / "bsecrets.yaml"), Credentials(passphrase=PASSPHRASE)
    )


def _statements(manager: SecretsManager, work: Callable[[], object]) -> list[str]:
    seen: dict[str, None] = {}
    conn = manager.local_vault().store._conn
    conn.set_trace_callback(lambda sql: seen.setdefault(" ".join(sql.split()), None))
    try:
        work()
    finally:
        conn.set_trace_callback(None)
    return [sql for sql in seen if sql.split(None, 1)[0].upper() not in SKIPPED]


def _plan(db: Path, sql: str) -> list[str]:
    ro = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True)
    try:
        return [row[3] for row in ro.execute("EXPLAIN QUERY PLAN " + sql)]
    finally:
        ro.close()


def _table_reads(db: Path, sql: str, table: str) -> list[str]:
    """The steps of SQLite's program for ``sql`` that read a row of ``table`` itself
    (not of an index): a column, its rowid, or a seek to it. A deferred seek (to the
    row an index entry points at) reads nothing until such a step asks for the row."""
    ro = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True)
    try:
        (root,) = ro.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
        program = ro.execute("EXPLAIN " + sql).fetchall()
    finally:
        ro.close()
    cursors = {p1 for _, op, p1, p2, *_ in program if op == "OpenRead" and p2 == root}
    return [
        f"{op} {p1} {p2} {p3}"
        for _, op, p1, p2, p3, *_ in program
        if p1 in cursors and op in ROW_READS
    ]


def _problems(db: Path, statements: list[str]) -> list[str]:
    out = []
    for sql in statements:
        for step in _plan(db, sql):
            table = re.match(r"(?:SCAN|SEARCH) (\w+)", step)
            if "TEMP B-TREE" in step and any(f" {t}" in sql for t in GROWING):
                out.append(f"{sql[:120]}: {step}")
            if table is None or table.group(1) not in GROWING or step.startswith("SEARCH"):
                continue
            if not STOPPED_BY_LIMIT.search(sql):
                out.append(f"{sql[:120]}: {step}")
    return out


def _import(manager: SecretsManager, count: int) -> None:
    """``count`` new secrets and ``count`` changed ones (the plan reads each of those)."""
    incoming = {f"NEW_{i:04d}": f"new-{i}".encode() for i in range(count)}
    incoming.update({f"KEY_{i:05d}": f"changed-{i}".encode() for i in range(0, 20 * count, 20)})
    apply_import(manager, "dev", plan_import(manager, "dev", incoming))


def _exec_read(manager: SecretsManager) -> None:
    """exec's read: the current values of 100 names, in one snapshot."""
    with manager.reading(
        "dev", [f"KEY_{i:05d}" for i in range(0, SECRETS, 10)], action=Action.EXEC
    ):
        pass


OPERATIONS: dict[str, Callable[[SecretsManager], object]] = {
    "get": lambda m: m.get("dev", "KEY_00042"),
    "get an old version": lambda m: m.get("dev", "KEY_00042", 1),
    "ls": lambda m: m.list_secrets("dev"),
    "put": lambda m: m.put("dev", "KEY_00042", b"changed"),
    "put a new secret": lambda m: m.put("dev", "BRAND_NEW", b"first"),
    "import": lambda m: _import(m, 30),
    "exec": _exec_read,
    "export": lambda m: m.current_values("dev", action=Action.EXPORT),
}


def test_hot_statements_use_an_index(vault: Path) -> None:
    manager = _build(vault)
    db = manager.local_vault().store.path
    try:
        recorded = {
            op: _statements(manager, partial(work, manager)) for op, work in OPERATIONS.items()
        }
    finally:
        manager.close()
    assert all(recorded.values()), "nothing was recorded"
    assert {op: _problems(db, sql) for op, sql in recorded.items()} == {op: [] for op in OPERATIONS}
    # what the check relies on: the bucket reads were recorded (a bucket at a time by get
    # and exec's 100 reads; every bucket at once by ls and export, the environment being
    # small), and search the bucket indexes (not the primary keys), which cover them:
    # no row of the table is read
    for ops, key in ((("get", "exec"), "env=? AND bucket=?"), (("ls", "export"), "env=?")):
        done = [sql for op in ops for sql in recorded[op]]
        heads = [sql for sql in done if _reads_bucket_rows(sql, "secrets", key)]
        versions = [sql for sql in done if _reads_bucket_rows(sql, "versions", key)]
        assert heads and versions, ops
        for sql in heads:
            assert _plan(db, sql) == [
                f"SEARCH secrets USING COVERING INDEX secrets_by_bucket ({key})"
            ]
            assert _table_reads(db, sql, "secrets") == []
        for sql in versions:
            assert _plan(db, sql)[0] in COVERED_VERSIONS
            assert _table_reads(db, sql, "versions") == []
    # and the count before every bucket at once (at most a limit: a large environment is
    # read bucket by bucket) steps over the same indexes' entries alone
    counts = [sql for sql in recorded["export"] if sql.startswith("SELECT (SELECT count(*)")]
    assert len(counts) == 1
    assert [step for step in _plan(db, counts[0]) if step.startswith("SEARCH")] == [
        "SEARCH secrets USING COVERING INDEX secrets_by_bucket (env=?)",
        "SEARCH versions USING COVERING INDEX versions_by_bucket (env=?)",
    ]
    assert _table_reads(db, counts[0], "secrets") == _table_reads(db, counts[0], "versions") == []
    # export's current versions: a few statements, each key found by the primary key
    by_key = [_plan(db, sql) for sql in recorded["export"] if "CROSS JOIN versions" in sql]
    assert by_key
    primary = "SEARCH versions USING INDEX sqlite_autoindex_versions_1"
    assert all(any(step.startswith(primary) for step in plan) for plan in by_key)


def _reads_bucket_rows(sql: str, table: str, key: str) -> bool:
    """Whether ``sql`` reads the rows of ``table`` that bucket digests cover, searched by
    ``key``: one bucket's (env and bucket), or every bucket's (env)."""
    index = f"FROM {table} INDEXED BY {table}_by_bucket WHERE env = "
    by_bucket = "AND bucket = " in sql
    return not sql.startswith("SELECT (") and index in sql and by_bucket == ("bucket" in key)


def test_a_full_scan_would_be_caught(vault: Path) -> None:
    """The check itself: statements that walk or sort a growing table are reported."""
    db = vault / ".bsecrets" / "vault.db"
    bad = ["SELECT record FROM versions WHERE record = x'00'",
           "SELECT lookup FROM secrets WHERE env = 'dev' ORDER BY record"]  # fmt: skip
    assert len(_problems(db, bad)) >= 2
    fine = [
        "SELECT seq, mac FROM audit_events ORDER BY seq DESC LIMIT 1",
        "SELECT record FROM versions WHERE env = 'dev' AND secret_id = x'00' AND version = 1",
    ]
    assert _problems(db, fine) == []
    # and a bucket read that needs a column the bucket index does not hold reads the table
    whole_value = "SELECT value FROM versions INDEXED BY versions_by_bucket WHERE env = 'dev'"
    assert _table_reads(db, f"{whole_value} AND bucket = 1", "versions") != []


def test_the_page_cache_holds_what_ls_reads(vault: Path) -> None:
    """ls reads every row of the environment through the bucket indexes, so each table
    page is read once per bucket with a row on it: with SQLite's default 2 MiB most of
    those reads missed the cache at 100,000 secrets (bench/README.md, ls)."""
    conn = connect(vault / ".bsecrets" / "vault.db")
    try:
        assert conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
    finally:
        conn.close()
    assert CACHE_KIB >= 64 * 1024  # the tables of 100,000 secrets and their indexes: 50 MiB
