"""What a vault file holds: its tables, its header, and the type of each column.

A vault file is a SQLite database with the tables below and a ``meta`` header
(format version, vault id, creation time). Every value read back is checked for
its type here: SQLite keeps whatever was written, so a value of the wrong type
means the file was changed outside bsecrets (IntegrityError).
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from bsecrets.errors import IntegrityError, UnsupportedFormat
from bsecrets.named_tuples import NamedTuple

# The newest format this version reads. A vault is created in format 1 and moves to a
# later one only when it uses what an older bsecrets would ignore: format 2 holds an
# access policy (vaultfile/policy.py), which an older bsecrets must refuse to open
# (exit 1) rather than silently skip its protections.
FORMAT_VERSION = 2
NEW_VAULT_FORMAT = 1
POLICY_FORMAT = 2

TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE principals (
    id TEXT PRIMARY KEY, public_key BLOB NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE key_wraps (
    principal_id TEXT NOT NULL, method TEXT NOT NULL, params TEXT NOT NULL,
    wrapped BLOB NOT NULL, PRIMARY KEY (principal_id, method));
CREATE TABLE env_keys (
    env TEXT NOT NULL, principal_id TEXT NOT NULL, sealed_by TEXT NOT NULL,
    sealed BLOB NOT NULL, PRIMARY KEY (env, principal_id));
CREATE TABLE manifests (
    env TEXT PRIMARY KEY, generation INTEGER NOT NULL, buckets BLOB NOT NULL,
    mac BLOB NOT NULL);
CREATE TABLE secrets (
    env TEXT NOT NULL, lookup BLOB NOT NULL, secret_id BLOB NOT NULL,
    bucket INTEGER NOT NULL, record BLOB NOT NULL, PRIMARY KEY (env, lookup));
CREATE TABLE versions (
    env TEXT NOT NULL, secret_id BLOB NOT NULL, version INTEGER NOT NULL,
    bucket INTEGER NOT NULL, record BLOB NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (env, secret_id, version));
"""

# The bucket indexes: a get or ls reads whole buckets through them (VaultStore.bucket_rows,
# ``INDEXED BY``). They cover every column that read takes (the value's nonce and GCM tag
# as expressions), so SQLite answers from the index alone: there a bucket's rows are
# neighbours, while in the tables each row is on a page of its own (at 100,000 secrets a
# bucket's 800 rows were 900 page reads, 5 ms of a fresh get; now about 50, 1 ms), and a
# large value's overflow pages are not read for its last 16 bytes.
#
# Until this version they held (env, bucket) only (OLD_BUCKET_INDEXES); the first write
# transaction that finds one replaces it (VaultStore.write). The names stay, so an older
# bsecrets reads and writes either shape with the same statements. Not a format change
# (FORMAT_VERSION stays): the tables and their rows are the same, and an index is
# SQLite's to keep, which it does for any bsecrets that writes the rows (an index on
# expressions needs SQLite 3.9, of 2015).
BUCKET_INDEXES = {
    "secrets_by_bucket": "CREATE INDEX secrets_by_bucket"
    " ON secrets (env, bucket, lookup, secret_id, record)",
    "versions_by_bucket": "CREATE INDEX versions_by_bucket"
    " ON versions (env, bucket, secret_id, version, record, substr(value, 1, 12),"
    " substr(value, -16))",
}
OLD_BUCKET_INDEXES = {
    "secrets_by_bucket": "CREATE INDEX secrets_by_bucket ON secrets (env, bucket)",
    "versions_by_bucket": "CREATE INDEX versions_by_bucket ON versions (env, bucket)",
}
SCHEMA = TABLES + "".join(f"{sql};\n" for sql in BUCKET_INDEXES.values())


class Header(NamedTuple):
    """The ``meta`` rows every vault file starts with."""

    vault_id: bytes  # 16 bytes
    created_at: str
    format_version: int


def header_rows(vault_id: bytes, created_at: str) -> list[tuple[str, bytes]]:
    """The ``meta`` (key, value) rows of a new vault, in this version's format."""
    return [
        ("format_version", str(NEW_VAULT_FORMAT).encode()),
        ("vault_id", vault_id),
        ("created_at", created_at.encode()),
    ]


def read_header(rows: list[tuple[Any, ...]], path: str) -> Header:
    """The header from the ``meta`` rows of the file at ``path``: IntegrityError when it
    is missing or damaged, UnsupportedFormat when a newer bsecrets wrote the file."""
    meta = {text(k): blob(v) for k, v in rows}
    raw_version = meta.get("format_version", b"0")
    if not raw_version.isdigit() or len(raw_version) > 6:
        raise IntegrityError(f"{path} has a damaged header (format version)")
    version = int(raw_version)
    if version > FORMAT_VERSION:
        raise UnsupportedFormat(
            f"{path} was written by a newer bsecrets (vault format {version}; "
            f"this version reads format {FORMAT_VERSION})"
        )
    if version < 1 or len(meta.get("vault_id", b"")) != 16:
        raise IntegrityError(f"{path} is not a bsecrets vault (no header)")
    created = meta.get("created_at", b"").decode("utf-8", errors="replace")
    return Header(meta["vault_id"], created, version)


def bucket_index_upgrades(indexes: list[tuple[Any, ...]]) -> list[str]:
    """The statements that give a vault the bucket indexes of BUCKET_INDEXES, from the
    (name, sql) of its indexes in ``sqlite_master``: only an index of the old shape is
    replaced (one of another shape, say from a newer bsecrets, is left as it is)."""
    statements = []
    for name, sql in indexes:
        if name in OLD_BUCKET_INDEXES and sql == OLD_BUCKET_INDEXES[name]:
            statements += [f"DROP INDEX {name}", BUCKET_INDEXES[name]]
    return statements


def blob(value: Any) -> bytes:
    """A column that must hold bytes; anything else means the file was changed."""
    if not isinstance(value, bytes):
        raise IntegrityError("the vault file holds a value of the wrong type")
    return value


def integer(value: Any) -> int:
    """A column that must hold an integer (not a bool, not a float)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise IntegrityError("the vault file holds a value of the wrong type")
    return value


def text(value: Any) -> str:
    """A column that must hold text."""
    if not isinstance(value, str):
        raise IntegrityError("the vault file holds a value of the wrong type")
    return value


# The checks of many values at once, as blob() and integer() check one: a set of the
# types, the loops in C (ls checks every row of the environment, 700,000 values at
# 100,000 secrets; VaultStore.bucket_rows and environment_rows).


def blobs_only(rows: list[tuple[Any, ...]]) -> None:
    """Rows of bytes only; anything else means the file was changed."""
    if rows and set(map(type, chain.from_iterable(rows))) != {bytes}:
        raise IntegrityError("the vault file holds a value of the wrong type")


def typed_columns(rows: list[tuple[Any, ...]], kinds: str) -> list[tuple[Any, ...]]:
    """The columns of ``rows``, each value of the type its column's letter in ``kinds``
    names (``b``: bytes, ``i``: int); IntegrityError otherwise."""
    if not rows:
        return [()] * len(kinds)
    columns = list(zip(*rows, strict=True))
    for kind, wanted in (("b", bytes), ("i", int)):
        values = chain.from_iterable(c for c, k in zip(columns, kinds, strict=True) if k == kind)
        if set(map(type, values)) - {wanted}:
            raise IntegrityError("the vault file holds a value of the wrong type")
    return columns


def sorted_columns(rows: list[tuple[Any, ...]], kinds: str) -> list[tuple[Any, ...]]:
    """typed_columns of ``rows`` once sorted."""
    try:
        rows.sort()
    except TypeError:  # values that do not compare are not all of their column's type
        raise IntegrityError("the vault file holds a value of the wrong type") from None
    return typed_columns(rows, kinds)
