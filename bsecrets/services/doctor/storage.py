"""Doctor's checks of the vault file as SQLite stores it: its pages and its WAL.

* ``vault.pages``: SQLite's own check of every page, b-tree and index
  (``PRAGMA integrity_check``, as ``bsecrets verify`` runs it). A problem is an
  integrity FAIL (exit 5); nothing then writes to the file, ``--fix`` included.
* ``vault.wal``: the size of ``vault.db-wal``. SQLite reuses the WAL from its start
  after each checkpoint but never shrinks it, so one that grew while a reader held an
  old snapshot (an ``audit tail``, a long ``exec``) stays that size. Above
  :data:`WAL_WARN_BYTES` a WARN; ``--fix`` runs ``PRAGMA wal_checkpoint(TRUNCATE)``:
  every committed page is copied into the vault file and the WAL emptied. SQLite
  takes the locks the checkpoint needs (it waits for a writer to commit, and for
  readers to leave older snapshots); if one holds on, nothing is lost and the WARN
  stays. Nothing in the vault changes: no audit event.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from bsecrets.errors import BsecretsError, IntegrityError, VaultNotFound
from bsecrets.services.doctor.at_hand import damaged_pages, has_local, vault_of
from bsecrets.services.doctor.findings import Finding, Status
from bsecrets.vaultfile.connection import connect

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

WAL_WARN_BYTES = 64 * 1024 * 1024
_RESTORE = (
    "restore the vault file from a backup; keep this copy as evidence, and run "
    "'bsecrets verify' for the full report"
)


def check_storage(manager: SecretsManager, fix: bool) -> list[Finding]:
    vault = vault_of(manager)
    if isinstance(vault, VaultNotFound):
        if not has_local(manager):
            return [Finding("vault.file", Status.SKIP, f"{vault.message}: no local environment")]
        return [Finding("vault.file", Status.FAIL, vault.message, "bsecrets init creates it")]
    if isinstance(vault, IntegrityError):  # not a database, a damaged header
        return [Finding("vault.file", Status.FAIL, vault.message, _RESTORE, integrity=True)]
    if isinstance(vault, BsecretsError):  # refused (permissions: see permissions.vault)
        return [Finding("vault.file", Status.FAIL, vault.message, vault.hint)]
    pages = _pages(damaged_pages(vault))
    wal = _wal(Path(vault.store.path), fix and pages.status is Status.OK)
    return [pages, wal]


def _pages(problems: list[tuple[str, str]]) -> Finding:
    if not problems:
        return Finding("vault.pages", Status.OK, "SQLite integrity_check found no damage")
    by_table: dict[str, list[str]] = {}
    for table, message in problems:
        by_table.setdefault(table, []).append(message)
    parts = []
    for table, messages in by_table.items():
        where = "the file" if table == "file" else f"table {table}"
        more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
        parts.append(f"{where}: {messages[0]}{more}")
    detail = "damaged pages: " + "; ".join(parts)
    return Finding("vault.pages", Status.FAIL, detail, _RESTORE, integrity=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mib(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size // 1024} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def _wal(vault_file: Path, fix: bool) -> Finding:
    wal = Path(f"{vault_file}-wal")
    size = _size(wal)
    if size <= WAL_WARN_BYTES:
        return Finding("vault.wal", Status.OK, f"the WAL holds {_mib(size)}")
    detail = f"{wal} is {_mib(size)} (above {_mib(WAL_WARN_BYTES)})"
    if not fix:
        return Finding("vault.wal", Status.WARN, detail, "bsecrets doctor --fix checkpoints it")
    busy = _checkpoint(vault_file)
    after = _size(wal)
    if busy or after > WAL_WARN_BYTES:
        why = "a reader or writer held on" if busy else "it did not shrink"
        hint = "close other bsecrets commands (audit tail, exec) and run 'bsecrets doctor --fix'"
        return Finding("vault.wal", Status.WARN, f"{detail}; the checkpoint waited: {why}", hint)
    fixed = f"checkpointed the WAL into the vault file: {_mib(size)} -> {_mib(after)}"
    return Finding("vault.wal", Status.OK, detail, fixed=fixed)


def _checkpoint(vault_file: Path) -> bool:
    """``PRAGMA wal_checkpoint(TRUNCATE)`` on a connection of its own (a checkpoint cannot
    run inside a transaction, so not inside the store's write()); True when SQLite could
    not finish it (busy). It waits, as any writer does, for the write lock."""
    try:
        conn = connect(vault_file)
    except sqlite3.Error:
        return True
    try:
        row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error:
        return True
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    return bool(row and row[0])
