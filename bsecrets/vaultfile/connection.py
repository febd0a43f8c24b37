"""Opening the vault file's SQLite connection, hardened.

WAL journal, ``synchronous=FULL`` (an acknowledged write survives power loss),
a busy timeout so that concurrent processes wait instead of failing,
``secure_delete`` with a checkpoint after each deleting transaction (a deleted
row leaves no copy in the file or its WAL), and the -wal/-shm files kept 0600.
A vault on a read-only file system is opened immutable.

:func:`connect` raises sqlite3's own errors (``sqlite3.Error``, or
``UnicodeDecodeError`` for a mangled schema): the caller translates them with
:func:`bsecrets.vaultfile.sqlite_errors.translate`, naming the file.
"""

from __future__ import annotations

import _thread  # not threading: importing it costs a command ~1 ms
import contextlib
import os
import sqlite3
import stat
from typing import Any

from bsecrets.errors import NextStep, StorageError
from bsecrets.files import StrPath, parent

BUSY_TIMEOUT_S = 30.0
ERASE_CHECKPOINT_WAIT_MS = 2000  # see ErasingConnection
SIDECARS = ("-wal", "-shm")  # SQLite's files beside a WAL database
# SQLite's page cache, at most (pages are allocated as they are read). ls reads every
# row of the environment through the bucket indexes, so each table page is read once
# per bucket with a row on it: with SQLite's default 2 MiB most of those reads miss
# (at 100,000 secrets, 0.3 s of 1 s in SQL; 64 MiB holds that environment's tables).
CACHE_KIB = 64 * 1024
# One lock per vault file for the writers of this process (a server's threads): they
# queue here, in order, instead of in SQLite's busy handler, which sleeps in steps of
# up to 100 ms and so gave a waiting writer seconds of delay under load (bench/README.md,
# "The server"). Other processes still wait on the file's lock. Re-entrant, so a thread
# that holds it and opens another write on the same file gets SQLite's answer, as before.
_WRITERS: dict[str, _thread.RLock] = {}
_WRITERS_LOCK = _thread.allocate_lock()


def writers_of(path: StrPath) -> _thread.RLock:
    """The lock this process's writers of the vault file at ``path`` take
    (VaultStore.write), one per file."""
    key = os.path.abspath(path)
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(key, _thread.RLock())


def read_only_fs(path: StrPath) -> bool:
    """Whether the file system holding ``path`` is mounted read-only (False if unknown)."""
    try:
        return bool(os.statvfs(parent(path)).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def repair_sidecars(path: StrPath) -> None:
    """Give the vault's -wal and -shm files back mode 0600 when they lost it.

    SQLite creates both with the mode the vault file has at that moment, and a
    connection that could open the vault only read-only (say it was chmod 400)
    cannot checkpoint, so it leaves them behind, read-only. Once the vault is
    writable again SQLite opens that -shm read-only and every write fails with
    "attempt to write a readonly database", until the file is fixed by hand.

    chmod is safe at any time, even while another process has the files open or
    mapped: it changes who may open them next, never their content (deleting a
    -shm that another connection uses could corrupt the vault; this never
    deletes). Only files that are ours, regular, and beside a vault file that
    is ours and writable are touched: a vault made read-only on purpose keeps
    its files as they are; anything else is explained by
    :func:`bsecrets.vaultfile.sqlite_errors.translate`.
    """
    try:
        vault = os.stat(path)
    except OSError:
        return
    uid = os.getuid() if hasattr(os, "getuid") else vault.st_uid
    if vault.st_uid != uid or not vault.st_mode & stat.S_IWUSR:
        return
    for suffix in SIDECARS:
        side = f"{path}{suffix}"
        try:
            st = os.lstat(side)
            if stat.S_ISREG(st.st_mode) and st.st_uid == uid and st.st_mode & 0o777 != 0o600:
                os.chmod(side, 0o600)
        except OSError:
            continue  # absent, or not ours to change: translate() names it


class ErasingConnection(sqlite3.Connection):
    """The vault's connection: once a transaction that deleted rows commits, the
    WAL is checkpointed and truncated.

    secure_delete zeroes deleted rows in the new page images, but those go to the
    -wal file first. While another connection keeps the vault open (``audit
    tail``, a second command), SQLite neither checkpoints nor removes the WAL at
    close, so the old pages (a purged secret's ciphertext) stay in vault.db and
    in earlier WAL frames. ``wal_checkpoint(TRUNCATE)`` copies the zeroed pages
    into vault.db and empties the -wal. It waits at most ERASE_CHECKPOINT_WAIT_MS
    for readers; if one holds on, the pages go at the next checkpoint (at the
    latest when the last connection closes). Its failure does not undo the
    committed change, so it is not an error.
    """

    erased = False  # a DELETE ran in the open transaction

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql.startswith("DELETE"):
            self.erased = True
        cursor = super().execute(sql, parameters)
        if self.erased and sql in ("COMMIT", "ROLLBACK"):
            self.erased = False
            if sql == "COMMIT":
                self._checkpoint_truncate()
        return cursor

    def _checkpoint_truncate(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            super().execute(f"PRAGMA busy_timeout={ERASE_CHECKPOINT_WAIT_MS}")
            try:
                super().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                super().execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")


def connect(path: StrPath, journal_mode: str = "WAL") -> sqlite3.Connection:
    """A connection to the vault file at ``path`` in autocommit mode (transactions
    are explicit), configured as the module says; read-only and immutable on a
    read-only file system. StorageError when the file cannot be read there."""
    if read_only_fs(path):
        return _connect_read_only(path)
    repair_sidecars(path)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False,
        factory=ErasingConnection,
    )  # fmt: skip
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA trusted_schema=OFF")
    # Deleted rows (a purged secret's ciphertext, archived audit events) are
    # overwritten with zeros, whatever this SQLite build's default is.
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn


def _connect_read_only(path: StrPath) -> sqlite3.Connection:
    """A vault on a read-only file system: SQLite cannot create the -shm file a WAL
    database needs, so open it immutable. Only safe when the WAL holds nothing."""
    try:
        wal_bytes = os.stat(f"{os.fspath(path)}-wal").st_size
    except FileNotFoundError:
        wal_bytes = 0
    if wal_bytes > 0:
        raise StorageError(
            f"{path} is on a read-only file system and its last changes are still in its -wal file",
            step=NextStep("open_where_writable"),
        )
    from urllib.parse import quote

    conn = sqlite3.connect(
        f"file:{quote(os.fspath(path))}?mode=ro&immutable=1",
        uri=True, isolation_level=None, check_same_thread=False,
    )  # fmt: skip
    conn.execute("PRAGMA trusted_schema=OFF")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn
