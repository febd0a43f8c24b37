"""Every bucket of a small environment read and checked at once (issue #20, targets 2
and 3): ``ls``, ``export`` and ``exec``'s listing read the rows of an environment of at
most KEPT_ROWS rows in two statements (VaultStore.environment_rows) and check all the
bucket digests against the manifest together (buckets.verified_buckets), instead of
two statements and a digest a bucket. The answers, the rows a snapshot keeps and the
errors are the bucket-by-bucket read's: anything that does not check makes the read go
bucket by bucket, as before, so the first fault in bucket order is the error. A larger
environment is read bucket by bucket, having been counted, not read."""

from __future__ import annotations

import os
import random
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke, run_cli
from helpers.local_vault import Statements, counted, dev_adapter, second_connection
from test_local_batch import reference_digest

from bsecrets.backends.local import buckets
from bsecrets.backends.local.adapter import LocalAdapter
from bsecrets.errors import IntegrityError
from bsecrets.testing.backend import ACTOR
from bsecrets.vaultfile.manifest import BUCKETS, EMPTY_BUCKET, bucket_digests
from bsecrets.vaultfile.schema import sorted_columns

LIMIT = 40  # KEPT_ROWS in most tests here, so that the environments stay small
HEAD_READ = "SELECT lookup, secret_id, record FROM secrets INDEXED BY secrets_by_bucket"
EVERY_HEAD_READ = "SELECT bucket, lookup, secret_id, record FROM secrets"
EVERY_VERSION_READ = "SELECT bucket, secret_id, version, record"
COUNT = "SELECT (SELECT count(*) FROM (SELECT 1 FROM secrets"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalAdapter]:
    yield from dev_adapter(tmp_path / "v" / "vault.db")


def _rows(backend: LocalAdapter) -> int:
    with sqlite3.connect(backend.store.path) as db:
        return sum(
            db.execute(f"SELECT count(*) FROM {table} WHERE env = 'dev'").fetchone()[0]
            for table in ("secrets", "versions")
        )


def _fill(backend: LocalAdapter, rng: random.Random, rows: int) -> None:
    """An environment of exactly ``rows`` rows (heads and versions; none, or at least the
    two of one secret): random names, histories, deletions and values."""
    backend.purge("first")
    if not rows:
        return
    assert rows >= 2
    secrets = rng.randint(1, rows // 2)
    counts = [1] * secrets
    for _ in range(rows - 2 * secrets):
        counts[rng.randrange(secrets)] += 1
    with backend.transaction():
        for i, versions in enumerate(counts):
            name = f"s{rng.randrange(10**6)}-{i}"
            for _ in range(versions):
                backend.put(name, os.urandom(rng.randint(0, 60)), actor=ACTOR)
            if rng.random() < 0.2:
                backend.delete(name)
    assert _rows(backend) == rows


def _answers(backend: LocalAdapter, seen: Counter[str]) -> tuple[Any, ...]:
    """What fresh processes read: ls (with the deleted), every current value, each live
    secret's value read together after the listing (exec), and some of them without it
    (render); the statements of the first three counted in ``seen``."""
    answers: list[Any] = []
    for part in ("listing", "some"):
        fresh = second_connection(backend)
        try:
            with Statements(fresh) as statements:
                if part == "listing":
                    listed = fresh.list_secrets(include_deleted=True)
                    live = [s.name for s in listed if not s.deleted]
                    answers += [listed, fresh.current_values(), fresh.read_each(live)]
                else:
                    answers.append(fresh.read_each(live[::3]))
            if part == "listing":
                seen.update(statements)
        finally:
            fresh.vault.close()
    return tuple(answers)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("rows", [0, 2, LIMIT - 1, LIMIT, LIMIT + 1])
def test_the_answers_are_those_read_bucket_by_bucket(
    backend: LocalAdapter, monkeypatch: pytest.MonkeyPatch, rows: int, seed: int
) -> None:
    _fill(backend, random.Random(f"{rows}-{seed}"), rows)
    seen, one_by_one = Counter[str](), Counter[str]()
    monkeypatch.setattr(buckets, "KEPT_ROWS", LIMIT)
    at_once = _answers(backend, seen)
    monkeypatch.setattr(buckets, "KEPT_ROWS", 0)  # nothing read at once, nor kept
    assert _answers(backend, one_by_one) == at_once
    assert counted(one_by_one, EVERY_HEAD_READ) == (rows == 0)  # none: none to read
    if rows <= LIMIT:  # ls read every bucket at once, and the next reads kept them
        assert counted(seen, EVERY_HEAD_READ) == 1
        assert counted(seen, HEAD_READ) == 0
    else:
        assert counted(seen, EVERY_HEAD_READ) == 0
        assert counted(seen, HEAD_READ) >= BUCKETS


@pytest.mark.parametrize("rows", [0, 2, LIMIT - 1, LIMIT, LIMIT + 1])
def test_the_rows_kept_are_each_bucket_s_rows(backend: LocalAdapter, rows: int) -> None:
    """Each bucket's rows read at once are what VaultStore.bucket_rows reads of it; past
    the limit, nothing but the count is read."""
    _fill(backend, random.Random(rows), rows)
    keys = backend.vault.env_keys("dev")
    assert keys is not None
    store = backend.store
    with store.read():
        manifest = backend._manifest(keys)
        with Statements(backend) as seen:
            read = buckets.verified_buckets(store, "dev", manifest, LIMIT)
        if rows > LIMIT:
            assert read is None
            assert counted(seen, COUNT) == 1 and sum(seen.values()) == 1
            return
        assert read is not None
        every, held = read
        assert held == rows and len(every) == BUCKETS
        for bucket, kept in enumerate(every):
            heads, versions = store.bucket_rows("dev", bucket)
            assert kept.head_rows() == heads
            by_secret: dict[bytes, dict[int, tuple[bytes, bytes]]] = {}
            for sid, version, record, tag in versions:
                by_secret.setdefault(sid, {})[version] = (record, tag)
            assert kept.versions == by_secret


def test_a_large_environment_is_read_bucket_by_bucket_having_been_counted(
    backend: LocalAdapter,
) -> None:
    """At the real limit (KEPT_ROWS): an environment of that many rows is read at once;
    one row more, and ls, export and exec's reads go bucket by bucket, after one count
    that reads no row into Python."""
    limit = buckets.KEPT_ROWS
    with backend.transaction():
        for i in range(limit // 2 - 1):  # with "first": limit rows
            backend.put(f"K{i:05d}", b"v", actor=ACTOR)
    assert _rows(backend) == limit
    fresh = second_connection(backend)
    try:
        with Statements(fresh) as seen:
            assert len(fresh.current_values()) == limit // 2
        assert counted(seen, EVERY_HEAD_READ) == counted(seen, EVERY_VERSION_READ) == 1
        assert counted(seen, HEAD_READ) == 0
    finally:
        fresh.vault.close()
    backend.put("K00000", b"w", actor=ACTOR)  # a second version: one row more
    fresh = second_connection(backend)
    try:
        with Statements(fresh) as seen:
            values = fresh.current_values()
            assert len(fresh.list_secrets()) == len(values) == limit // 2
        assert values["K00000"] == b"w"
        assert counted(seen, COUNT) == 2  # export, then ls: counted, not read
        assert counted(seen, EVERY_HEAD_READ) == counted(seen, EVERY_VERSION_READ) == 0
        # export read every bucket, ls those that did not fit in what a snapshot keeps
        assert BUCKETS < counted(seen, HEAD_READ) < 2 * BUCKETS
    finally:
        fresh.vault.close()


def test_some_secrets_are_read_at_once_only_when_that_costs_less(
    backend: LocalAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_each (exec without its listing, render) of names in D buckets the snapshot
    does not hold: every bucket at once while the environment has at most D *
    ROWS_A_BUCKET rows, else those D buckets one by one."""
    names = [f"R{i}" for i in range(30)]
    with backend.transaction():
        for name in names:
            backend.put(name, name.encode(), actor=ACTOR)
    keys = backend.vault.env_keys("dev")
    assert keys is not None
    wanted = names[:4]
    touched = len({keys.lookup(n)[0] for n in wanted})
    rows = _rows(backend)  # 62
    for per_bucket, at_once in ((rows // touched + 1, True), (rows // touched - 1, False)):
        monkeypatch.setattr(buckets, "ROWS_A_BUCKET", per_bucket)
        fresh = second_connection(backend)
        try:
            with Statements(fresh) as seen:
                assert fresh.read_each(wanted) == {n: n.encode() for n in wanted}
        finally:
            fresh.vault.close()
        assert counted(seen, COUNT) == 1
        assert counted(seen, EVERY_HEAD_READ) == at_once
        assert counted(seen, HEAD_READ) == (0 if at_once else touched)


# --- the digests, and the types, of every row at once -------------------------------


def test_every_bucket_digest_at_once_is_each_bucket_s() -> None:
    rng = random.Random(7)
    for _ in range(40):
        heads = sorted(
            (rng.choice([0, 1, 5, 200, 255]), os.urandom(32), os.urandom(16),
             os.urandom(rng.randint(0, 300)))
            for _ in range(rng.choice([0, 1, 3, 30]))
        )  # fmt: skip
        versions = sorted(
            (rng.choice([0, 5, 77, 255]), os.urandom(16), rng.choice([1, 2, 2**40]),
             os.urandom(rng.randint(0, 300)), os.urandom(28))
            for _ in range(rng.choice([0, 1, 4, 40]))
        )  # fmt: skip
        ends = (
            [sum(1 for row in heads if row[0] <= bucket) for bucket in range(BUCKETS)],
            [sum(1 for row in versions if row[0] <= bucket) for bucket in range(BUCKETS)],
        )
        head_columns = list(zip(*heads, strict=True)) if heads else [()] * 4
        version_columns = list(zip(*versions, strict=True)) if versions else [()] * 5
        expected = b"".join(
            reference_digest(
                [row[1:] for row in heads if row[0] == bucket],
                [row[1:] for row in versions if row[0] == bucket],
            )
            for bucket in range(BUCKETS)
        )
        assert bucket_digests(head_columns, version_columns, ends) == expected
    assert reference_digest([], []) == EMPTY_BUCKET


def test_sorted_columns_check_each_column_s_type() -> None:
    rows: list[tuple[Any, ...]] = [(2, b"b", 1), (1, b"a", 5)]
    assert sorted_columns(list(rows), "ibi") == [(1, 2), (b"a", b"b"), (5, 1)]
    assert sorted_columns([], "ibi") == [(), (), ()]
    for bad in ((1, "a", 5), (1, b"a", b"5"), (1, b"a", 5.5), (None, b"a", 1), ("1", b"a", 1)):
        with pytest.raises(IntegrityError, match="wrong type"):
            sorted_columns([*rows, bad], "ibi")


# --- a damaged bucket: exit 5, the error read bucket by bucket -----------------------

# (what is done to the file, the SQL): a row edited, deleted, added, of another type
DAMAGE = {
    "head record edited": "UPDATE secrets SET record = substr(record, 2) || x'00'"
    " WHERE env = 'dev' AND secret_id = :sid",
    "version record edited": "UPDATE versions SET record = x'00' || substr(record, 2)"
    " WHERE env = 'dev' AND secret_id = :sid AND version = 1",
    "value's tag edited": "UPDATE versions SET value = substr(value, 1, length(value) - 1)"
    " || x'00' WHERE env = 'dev' AND secret_id = :sid AND version = 2",
    "old version deleted": "DELETE FROM versions WHERE env = 'dev' AND secret_id = :sid"
    " AND version = 1",
    "head deleted": "DELETE FROM secrets WHERE env = 'dev' AND secret_id = :sid",
    "version added": "INSERT INTO versions (env, secret_id, version, bucket, record, value)"
    " SELECT env, secret_id, 3, bucket, record, value FROM versions"
    " WHERE env = 'dev' AND secret_id = :sid AND version = 2",
    "head added": "INSERT INTO secrets (env, lookup, secret_id, bucket, record)"
    " SELECT env, lookup || x'00', secret_id, bucket, record FROM secrets"
    " WHERE env = 'dev' AND secret_id = :sid",
    "record as text": "UPDATE secrets SET record = 'text' WHERE env = 'dev' AND secret_id = :sid",
    "version as a real": "UPDATE versions SET version = 1.5 WHERE env = 'dev'"
    " AND secret_id = :sid AND version = 1",
    "bucket as text": "UPDATE versions SET bucket = 'b' WHERE env = 'dev' AND secret_id = :sid",
    "bucket out of range": "UPDATE secrets SET bucket = 300 WHERE env = 'dev' AND secret_id = :sid",
}


def _damage(vault: Path, sql: str) -> None:
    """The damage done to the rows of secret s07, the one of two versions."""
    with sqlite3.connect(vault / ".bsecrets" / "vault.db") as db:
        (sid,) = db.execute(
            "SELECT secret_id FROM versions WHERE env = 'dev' AND version = 2"
        ).fetchone()
        assert db.execute(sql, {"sid": sid}).rowcount >= 1


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_bucket_is_exit_5_with_the_error_read_bucket_by_bucket(
    vault: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    for i in range(12):
        assert invoke(["put", f"s{i:02d}"], input=f"value {i}").exit_code == 0
    assert invoke(["put", "s07"], input="value 7 again").exit_code == 0
    assert invoke(["rm", "s03", "--yes"]).exit_code == 0
    _damage(vault, DAMAGE[damage])

    exported = invoke(["export", "--format", "dotenv"])  # every bucket at once, at first
    monkeypatch.setattr(buckets, "KEPT_ROWS", 0)
    one_by_one = invoke(["export", "--format", "dotenv"])  # bucket by bucket only
    assert exported.exit_code == one_by_one.exit_code == 5, exported.stderr
    assert exported.stderr == one_by_one.stderr
    assert exported.stdout == ""
    executed = run_cli(["exec", "--", sys.executable, "-c", "print('ran')"])
    assert executed.returncode == 5, executed.stderr
    assert executed.stdout == b""
    assert executed.stderr.decode().splitlines()[0] == exported.stderr.splitlines()[0]
