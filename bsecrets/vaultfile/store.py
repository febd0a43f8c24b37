"""The vault file: one SQLite database, opened safely, with every sqlite3 error
translated at this boundary.

:class:`VaultStore` is the only way the rest of bsecrets reads and writes the
file: explicit transactions (``read()`` takes a snapshot, ``write()`` takes the
write lock first, BEGIN IMMEDIATE, so two writers never deadlock upgrading a
read) and one method per statement, each value type-checked on the way out.
How the connection is configured is in :mod:`bsecrets.vaultfile.connection`,
the tables in :mod:`bsecrets.vaultfile.schema`, how a new vault is built and
installed in :mod:`bsecrets.vaultfile.build`.
"""

from __future__ import annotations

import contextlib
import operator
import os
import sqlite3
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

from bsecrets.errors import IntegrityError, VaultNotFound
from bsecrets.files import StrPath, check_private_file, exists
from bsecrets.vaultfile.connection import connect, writers_of
from bsecrets.vaultfile.schema import (
    blob,
    blobs_only,
    bucket_index_upgrades,
    header_rows,
    integer,
    read_header,
    sorted_columns,
    text,
    typed_columns,
)
from bsecrets.vaultfile.sqlite_errors import translate

if TYPE_CHECKING:
    from bsecrets.vaultfile.build import Build

_FIRST, _FIRST_TWO = operator.itemgetter(0), operator.itemgetter(0, 1)  # bucket_rows' sorts


def _connect(path: StrPath) -> sqlite3.Connection:
    """The vault's connection (:func:`bsecrets.vaultfile.connection.connect`), its
    sqlite3 errors translated."""
    try:
        return connect(path)
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        raise translate(exc, path) from exc


_LAST_TWO = operator.itemgetter(2, 3)  # versions_by_key's record and value
# versions_by_key's keys a statement: 2 parameters each, under the 999 of older SQLite
_KEYS_PER_STATEMENT = 256


class VaultStore:
    """An open vault file. Not thread-safe: one per thread or process."""

    def __init__(self, path: StrPath, conn: sqlite3.Connection) -> None:
        self.path = os.fspath(path)
        self._conn = conn
        self._building: Build | None = None  # create() until install() or discard()
        self._in_tx = False
        self._writing = False
        self.tx_serial = 0  # which transaction this is: checks done once per transaction
        # manifests this connection wrote: what a transaction read of them stays true while
        # this is unchanged (no other connection writes while it holds the write lock)
        self.manifest_writes = 0
        self._indexes_current = False  # the bucket indexes checked, and upgraded if old
        header = read_header(self._query("SELECT key, value FROM meta"), self.path)
        self.vault_id: bytes = header.vault_id
        self.created_at = header.created_at

    # --- opening ---------------------------------------------------------

    @classmethod
    def open(cls, path: StrPath) -> VaultStore:
        if not exists(path):
            raise VaultNotFound(f"no vault at {path}")
        check_private_file(path)
        conn = _connect(path)
        try:
            return cls(path, conn)
        except BaseException:
            conn.close()
            raise

    @classmethod
    def create(cls, path: StrPath, vault_id: bytes, created_at: str) -> VaultStore:
        """A new vault, built in a temporary file beside ``path`` (``vault.db.tmp-<random>``,
        0600, exclusive), never at ``path`` itself: fill it, then call :meth:`install`
        to move it into place whole, or :meth:`discard` to remove it. Until then
        ``self.path`` is the temporary file. FileExistsError if ``path`` exists.

        The builder holds an flock on the temporary file, so another process can
        tell a build in progress from a leftover
        (:func:`bsecrets.vaultfile.build.leftover_builds`)."""
        from pathlib import Path

        from bsecrets.vaultfile.build import begin_build, discard_build  # a seam: a new vault

        build, conn = begin_build(Path(path), header_rows(vault_id, created_at))

        try:
            store = cls(build.temp, conn)
        except BaseException:
            discard_build(build, conn)
            raise
        store._building = build
        return store

    def install(self) -> None:
        """Move a vault built by :meth:`create` into place, complete
        (:func:`bsecrets.vaultfile.build.install_build`), then reopen it there. A kill
        at any point leaves either no vault or this whole one (and perhaps the
        temporary name as a second link, which ``leftover_builds`` recognises)."""
        if self._building is None:
            raise RuntimeError("install() of a vault that is not being built")
        from bsecrets.vaultfile.build import install_build

        build, self._building = self._building, None
        install_build(build, self._conn)
        self.path = os.fspath(build.target)
        self._conn = _connect(build.target)

    def discard(self) -> None:
        """Close and remove a vault being built by :meth:`create` (its build failed)."""
        if self._building is None:
            return
        from bsecrets.vaultfile.build import discard_build

        build, self._building = self._building, None
        discard_build(build, self._conn)

    def close(self) -> None:
        if self._building is not None:
            self.discard()
            return
        self._conn.close()

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: another value once another connection (any
        process) has committed to the file since this one last asked; never for this
        connection's own writes."""
        return int(self._exec("PRAGMA data_version").fetchone()[0])

    # --- transactions ----------------------------------------------------

    @property
    def write_serial(self) -> int | None:
        """tx_serial inside write(), where no other connection changes the file until it
        ends (what a caller learnt in it stays true); None outside."""
        return self.tx_serial if self._writing and self._in_tx else None

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A consistent snapshot for several SELECTs (nests inside write())."""
        if self._in_tx:
            yield
            return
        with self._transaction("BEGIN"):
            yield

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction; nested inside another write(), it joins that one
        (so a batch of puts commits or rolls back as one)."""
        if self._in_tx:
            if not self._writing:
                raise RuntimeError("write() inside read()")
            yield
            return
        self._writing = True
        try:
            with writers_of(self.path), self._transaction("BEGIN IMMEDIATE"):
                if not self._indexes_current:
                    self._upgrade_bucket_indexes()
                yield
            self._indexes_current = True  # committed, with the upgrade if there was one
        finally:
            self._writing = False

    def _upgrade_bucket_indexes(self) -> None:
        """Give a vault made before the covering bucket indexes those indexes (schema.py,
        BUCKET_INDEXES), inside this write transaction: if it rolls back, so does the
        upgrade, and the next write transaction does it again. Checked once per
        connection (one small query); done once per vault, 0.6 s at 100,000 secrets
        (bench/README.md)."""
        indexes = self._query("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        for sql in bucket_index_upgrades(indexes):
            self._exec(sql)

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator[None]:
        self._exec(begin)
        self._in_tx = True
        self.tx_serial += 1
        try:
            yield
        except BaseException:
            self._in_tx = False
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise
        self._in_tx = False
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise translate(exc, self.path) from exc

    # --- statements ------------------------------------------------------

    def _exec(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            raise translate(exc, self.path) from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            raise translate(exc, self.path) from exc

    def query_optional_table(
        self, table: str, sql: str, params: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """Rows of ``sql``, or [] when ``table`` (created on first use) does not exist yet."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)):
            return []
        return self._query(sql, params)

    def iter_optional_table(
        self, table: str, sql: str, params: tuple[Any, ...] = ()
    ) -> Iterator[tuple[Any, ...]]:
        """Like query_optional_table, streamed (for logs of a million rows)."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)):
            return
        try:
            # Row by row, through fetchone: ``yield from`` the cursor itself would close it
            # when the generator is dropped unfinished, and after the store closed (Ctrl-C
            # unwinding a walk) that raised "cannot operate on a closed database" there.
            yield from iter(self._conn.execute(sql, params).fetchone, None)
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            raise translate(exc, self.path) from exc

    def execute_write(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """One statement inside write(); for small side tables such as the sealed cache."""
        if not self._in_tx:
            raise RuntimeError("execute_write outside a write transaction")
        self._exec(sql, params)

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def require_format(self, version: int) -> None:
        """Inside write(): raise the file's format to ``version`` (schema.py says which
        feature needs which), so that an older bsecrets refuses the file instead of
        ignoring what it cannot read."""
        if not self._writing:
            raise RuntimeError("require_format outside a write transaction")
        header = read_header(self._query("SELECT key, value FROM meta"), self.path)
        if header.format_version < version:
            self._exec(
                "UPDATE meta SET value = ? WHERE key = 'format_version'", (str(version).encode(),)
            )

    # --- principals and keys --------------------------------------------

    def add_principal(self, principal: str, public_key: bytes, created_at: str) -> None:
        self._exec(
            "INSERT INTO principals (id, public_key, created_at) VALUES (?, ?, ?)",
            (principal, public_key, created_at),
        )

    def public_key(self, principal: str) -> bytes:
        row = self._one("SELECT public_key FROM principals WHERE id = ?", (principal,))
        if row is None:
            raise IntegrityError(f"{self.path}: principal {principal!r} is missing")
        return blob(row[0])

    def key_wraps(self, principal: str) -> dict[str, tuple[str, bytes]]:
        rows = self._query(
            "SELECT method, params, wrapped FROM key_wraps WHERE principal_id = ?", (principal,)
        )
        return {text(m): (text(p), blob(w)) for m, p, w in rows}

    def set_key_wrap(self, principal: str, method: str, params: str, wrapped: bytes) -> None:
        self._exec(
            "INSERT OR REPLACE INTO key_wraps (principal_id, method, params, wrapped)"
            " VALUES (?, ?, ?, ?)",
            (principal, method, params, wrapped),
        )

    def sealed_env_key(self, env: str, principal: str) -> tuple[str, bytes] | None:
        row = self._one(
            "SELECT sealed_by, sealed FROM env_keys WHERE env = ? AND principal_id = ?",
            (env, principal),
        )
        return (text(row[0]), blob(row[1])) if row else None

    def add_env_key(self, env: str, principal: str, sealed_by: str, sealed: bytes) -> None:
        self._exec(
            "INSERT INTO env_keys (env, principal_id, sealed_by, sealed) VALUES (?, ?, ?, ?)",
            (env, principal, sealed_by, sealed),
        )

    def set_env_key(self, env: str, principal: str, sealed_by: str, sealed: bytes) -> None:
        self._exec(
            "INSERT OR REPLACE INTO env_keys (env, principal_id, sealed_by, sealed)"
            " VALUES (?, ?, ?, ?)",
            (env, principal, sealed_by, sealed),
        )

    def drop_env_keys(self, env: str) -> None:
        self._exec("DELETE FROM env_keys WHERE env = ?", (env,))

    def has_principal(self, principal: str) -> bool:
        return bool(self._query("SELECT 1 FROM principals WHERE id = ?", (principal,)))

    def remove_principal(self, principal: str) -> None:
        """Its row, its key wraps and every key sealed to it."""
        for sql in (
            "DELETE FROM env_keys WHERE principal_id = ?",
            "DELETE FROM key_wraps WHERE principal_id = ?",
            "DELETE FROM principals WHERE id = ?",
        ):
            self._exec(sql, (principal,))

    def sealed_keys(self) -> list[tuple[str, str]]:
        """(environment, principal) of every sealed environment key, sorted."""
        rows = self._query("SELECT env, principal_id FROM env_keys ORDER BY env, principal_id")
        return [(text(env), text(principal)) for env, principal in rows]

    def environments_of(self, principal: str) -> list[str]:
        rows = self._query(
            "SELECT env FROM env_keys WHERE principal_id = ? ORDER BY env", (principal,)
        )
        return [text(r[0]) for r in rows]

    def environments(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT env FROM env_keys ORDER BY env")]

    # --- manifest --------------------------------------------------------

    def manifest(self, env: str) -> tuple[int, bytes, bytes] | None:
        row = self._one("SELECT generation, buckets, mac FROM manifests WHERE env = ?", (env,))
        return (integer(row[0]), blob(row[1]), blob(row[2])) if row else None

    def set_manifest(self, env: str, generation: int, buckets: bytes, mac: bytes) -> None:
        self.manifest_writes += 1
        self._exec(
            "INSERT OR REPLACE INTO manifests (env, generation, buckets, mac) VALUES (?, ?, ?, ?)",
            (env, generation, buckets, mac),
        )

    # --- secrets and versions -------------------------------------------

    def set_head(
        self, env: str, lookup: bytes, secret_id: bytes, bucket: int, record: bytes
    ) -> None:
        self._exec(
            "INSERT OR REPLACE INTO secrets (env, lookup, secret_id, bucket, record)"
            " VALUES (?, ?, ?, ?, ?)",
            (env, lookup, secret_id, bucket, record),
        )

    def delete_secret(self, env: str, lookup: bytes, secret_id: bytes) -> None:
        self._exec("DELETE FROM secrets WHERE env = ? AND lookup = ?", (env, lookup))
        self._exec("DELETE FROM versions WHERE env = ? AND secret_id = ?", (env, secret_id))

    def add_version(
        self, env: str, secret_id: bytes, version: int, bucket: int, record: bytes, value: bytes
    ) -> None:
        self._exec(
            "INSERT INTO versions (env, secret_id, version, bucket, record, value)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (env, secret_id, version, bucket, record, value),
        )

    def version(self, env: str, secret_id: bytes, version: int) -> tuple[bytes, bytes] | None:
        row = self._one(
            "SELECT record, value FROM versions WHERE env = ? AND secret_id = ? AND version = ?",
            (env, secret_id, version),
        )
        return (blob(row[0]), blob(row[1])) if row else None

    def bucket_rows(
        self, env: str, bucket: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """What a bucket's digest covers, sorted: heads whole; versions by record and the
        value's nonce and GCM tag (so a 1 MiB value is not hashed on every read).

        Both read the bucket indexes alone, which hold these columns (schema.py,
        BUCKET_INDEXES; a vault not yet upgraded reads the table rows they point at).
        Sorted here rather than with ORDER BY: with ORDER BY, SQLite walks the
        primary-key index over the whole environment instead of the bucket
        index (5-6 ms instead of 0.04 ms per bucket at 10,000 secrets); the covering
        indexes give the rows in this order already, and sorting sorted rows is a pass.
        """
        heads = self._query(
            "SELECT lookup, secret_id, record FROM secrets INDEXED BY secrets_by_bucket"
            " WHERE env = ? AND bucket = ?",
            (env, bucket),
        )
        versions = self._query(
            "SELECT secret_id, version, record, substr(value, 1, 12), substr(value, -16)"
            " FROM versions INDEXED BY versions_by_bucket WHERE env = ? AND bucket = ?",
            (env, bucket),
        )
        blobs_only(heads)
        sids, numbers, records, nonces, tags = typed_columns(versions, "bibbb")
        value_tags = map(operator.add, nonces, tags)
        checked_versions = list(zip(sids, numbers, records, value_tags, strict=True))
        heads.sort(key=_FIRST)
        checked_versions.sort(key=_FIRST_TWO)
        return heads, checked_versions

    def environment_rows(
        self, env: str, limit: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] | None:
        """What the digests of all of ``env``'s buckets cover, read at once through the same
        indexes (a count, then two statements, not two a bucket): the columns of heads
        (bucket, lookup, secret id, record) and versions (bucket, secret id, version,
        record, nonce, tag), sorted by bucket, then as bucket_rows sorts. None past
        ``limit`` rows, having read none: the count stops at ``limit`` + 1 of each."""
        (counted,) = self._query(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM secrets INDEXED BY secrets_by_bucket"
            " WHERE env = ?1 LIMIT ?2)) + (SELECT count(*) FROM (SELECT 1 FROM versions"
            " INDEXED BY versions_by_bucket WHERE env = ?1 LIMIT ?2))",
            (env, limit + 1),
        )
        if counted[0] > limit:
            return None
        heads = self._query(
            "SELECT bucket, lookup, secret_id, record FROM secrets"
            " INDEXED BY secrets_by_bucket WHERE env = ? LIMIT ?",
            (env, limit),
        )
        versions = self._query(
            "SELECT bucket, secret_id, version, record, substr(value, 1, 12), substr(value, -16)"
            " FROM versions INDEXED BY versions_by_bucket WHERE env = ? LIMIT ?",
            (env, limit - len(heads) + 1),
        )
        if len(heads) + len(versions) > limit:
            return None
        return sorted_columns(heads, "ibbb"), sorted_columns(versions, "ibibbb")

    def move_environment_rows(self, source: str, target: str) -> None:
        """Replace ``target``'s secrets and versions by ``source``'s (a re-key's new rows)."""
        for table in ("secrets", "versions"):
            self._exec(f"DELETE FROM {table} WHERE env = ?", (target,))
            self._exec(f"UPDATE {table} SET env = ? WHERE env = ?", (target, source))

    def manifest_macs(self) -> dict[str, tuple[int, bytes]]:
        """Environment -> (generation, MAC) of every manifest."""
        rows = self._query("SELECT env, generation, mac FROM manifests")
        return {text(env): (integer(gen), blob(tag)) for env, gen, tag in rows}

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT env, count(*) FROM secrets GROUP BY env")
        return {env: int(n) for env, n in rows}

    def versions_by_key(
        self, env: str, wanted: Sequence[tuple[bytes, int]]
    ) -> list[tuple[bytes, int, bytes, bytes]]:
        """(secret id, version, record, value) of each (secret id, version) of ``wanted``
        that exists, in no particular order: :meth:`version` for many at once (an
        export's current values), a few hundred keys a statement, each found by the
        primary key (CROSS JOIN keeps the keys the outer loop), so nothing else is read,
        however long the histories."""
        out: list[tuple[bytes, int, bytes, bytes]] = []
        for start in range(0, len(wanted), _KEYS_PER_STATEMENT):
            keys = wanted[start : start + _KEYS_PER_STATEMENT]
            rows = self._query(
                "SELECT w.column1, w.column2, record, value FROM (VALUES "
                + ", ".join(["(?, ?)"] * len(keys))
                + ") AS w CROSS JOIN versions"
                " ON env = ? AND secret_id = w.column1 AND version = w.column2",
                (*chain.from_iterable(keys), env),
            )
            blobs_only(list(map(_LAST_TWO, rows)))
            out += rows
        return out

    # --- page-level integrity (bsecrets verify) ---------------------------

    def page_problems(self) -> list[tuple[str, str]]:
        """(table, problem) pairs from SQLite's own check of every page of the file;
        [] when intact (:func:`bsecrets.vaultfile.page_check.page_problems`)."""
        from bsecrets.vaultfile import page_check

        return page_check.page_problems(self._conn)
