"""A write transaction of the local vault reads and checks each bucket once and
writes the manifest once, at its end (issue #20, lever 1: an import re-read and
re-hashed a bucket three times a put, so it was quadratic), with every check
kept: the first read of a bucket is checked against the manifest, reads inside
the transaction see its writes, a failure leaves the manifest as it was, and
the manifest's bytes are those of the file format as it was defined."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke
from helpers.local_vault import Statements, counted, dev_adapter, names_in_bucket
from helpers.values import PASSPHRASE

from bsecrets.backends.local.adapter import LocalAdapter
from bsecrets.backends.local.buckets import BucketRows
from bsecrets.backends.local.records import RecordCipher
from bsecrets.crypto.keys import encode_aad, sha256_digest, sha256_digests
from bsecrets.errors import IntegrityError, SecretNotFound, VersionConflict
from bsecrets.testing.backend import ACTOR
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.manifest import BUCKETS, DIGEST_BYTES, bucket_digest
from bsecrets.vaultfile.vault import LocalVault


def reference_digest(heads: list[tuple[Any, ...]], versions: list[tuple[Any, ...]]) -> bytes:
    """A bucket's digest as the file format defines it (vaultfile/manifest.py), written
    the plain way: one encode_aad per row."""
    h = hashlib.sha256(b"bsecrets/v1/bucket")
    for lookup, secret_id, record in heads:
        h.update(encode_aad("head", lookup, secret_id, hashlib.sha256(record).digest()))
    for secret_id, version, record, value_tag in versions:
        digest = hashlib.sha256(record).digest()
        h.update(encode_aad("version", secret_id, int(version), digest, value_tag))
    return h.digest()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalAdapter]:
    yield from dev_adapter(tmp_path / "v" / "vault.db")


HEAD_READ = "SELECT lookup, secret_id, record FROM secrets INDEXED BY secrets_by_bucket"
MANIFEST_WRITE = "INSERT OR REPLACE INTO manifests (env, generation, buckets, mac) VALUES"


def test_a_transaction_reads_each_bucket_once_and_writes_the_manifest_once(
    backend: LocalAdapter,
) -> None:
    keys = backend.vault.env_keys("dev")
    assert keys is not None
    names = [f"IMPORTED_{i:04d}" for i in range(600)]  # about 2.3 puts a bucket
    touched = {keys.lookup(n)[0] for n in names}
    generation = backend.store.manifest("dev")[0]  # type: ignore[index]
    with Statements(backend) as seen, backend.transaction():
        for name in names:
            backend.put(name, name.encode(), actor=ACTOR)
    # one checked read of each bucket, one read for its new digest at the end
    assert seen[HEAD_READ] == 2 * len(touched) < len(names)
    assert counted(seen, MANIFEST_WRITE) == 1
    assert backend.store.manifest("dev")[0] == generation + 1  # type: ignore[index]
    assert backend.verify_rows() == len(names) + 1
    assert backend.get("IMPORTED_0599").value == b"IMPORTED_0599"


def test_a_put_alone_still_writes_its_manifest(backend: LocalAdapter) -> None:
    with Statements(backend) as seen:
        backend.put("alone", b"1", actor=ACTOR)
        backend.delete("alone")
        backend.restore("alone")
        backend.purge("alone")
    assert counted(seen, MANIFEST_WRITE) == 4
    assert backend.verify_rows() == 1


def test_reads_inside_a_transaction_see_its_writes(backend: LocalAdapter, tmp_path: Path) -> None:
    same = names_in_bucket(backend, 7, 3)  # writes that share one bucket
    with backend.transaction():
        for name in same:
            backend.put(name, b"v1", actor=ACTOR, tags={"t": "1"})
        backend.put(same[0], b"v2", actor=ACTOR, if_version=1)
        assert backend.get(same[0]).value == b"v2"
        assert backend.get(same[0], 1).value == b"v1"
        assert [v.version for v in backend.history(same[0])] == [1, 2]
        backend.delete(same[1])
        with pytest.raises(SecretNotFound):
            backend.get(same[1])
        backend.restore(same[1])
        backend.purge(same[2])
        with pytest.raises(SecretNotFound):
            backend.get(same[2])
        assert backend.put(same[2], b"again", actor=ACTOR).version == 1
        with pytest.raises(VersionConflict):
            backend.put(same[0], b"x", actor=ACTOR, if_version=1)
        names = [s.name for s in backend.list_secrets()]
        assert names == sorted(["first", *same])
        assert backend.values_of(same) == {same[0]: b"v2", same[1]: b"v1", same[2]: b"again"}
    assert backend.verify_rows() == 4
    # the file as another process finds it: every bucket checked against its manifest
    backend.vault.close()
    again = LocalVault.open(tmp_path / "v" / "vault.db", Credentials(passphrase=PASSPHRASE), utcnow)
    reader = LocalAdapter(again, "dev", utcnow)
    assert reader.verify_rows() == 4
    assert reader.get(same[0]).value == b"v2"
    assert reader.get(same[2]).value == b"again"
    again.close()


def test_a_failed_transaction_leaves_the_manifest_as_it_was(backend: LocalAdapter) -> None:
    before = backend.store.manifest("dev")
    with pytest.raises(VersionConflict), backend.transaction():
        for i in range(50):
            backend.put(f"gone_{i}", b"x", actor=ACTOR)
        backend.put("first", b"x", actor=ACTOR, if_version=7)
    assert backend.store.manifest("dev") == before
    assert [s.name for s in backend.list_secrets()] == ["first"]
    with backend.transaction():  # the next one starts afresh
        backend.put("gone_1", b"y", actor=ACTOR)
    assert backend.verify_rows() == 2


@pytest.mark.parametrize("damage", ["edited", "deleted"])
def test_a_damaged_bucket_fails_the_transaction_that_reads_it(
    backend: LocalAdapter, damage: str
) -> None:
    """Only the first read of a bucket is checked in a transaction: it still is."""
    victim, neighbour = names_in_bucket(backend, 42, 2)
    backend.put(victim, b"v", actor=ACTOR)
    keys = backend.vault.env_keys("dev")
    assert keys is not None
    lookup = keys.lookup(victim)
    with sqlite3.connect(backend.store.path) as db:
        if damage == "edited":
            (record,) = db.execute(
                "SELECT record FROM secrets WHERE lookup = ?", (lookup,)
            ).fetchone()
            db.execute(
                "UPDATE secrets SET record = ? WHERE lookup = ?",
                (bytes([record[0] ^ 1]) + record[1:], lookup),
            )
        else:
            db.execute("DELETE FROM secrets WHERE lookup = ?", (lookup,))
    before = backend.store.manifest("dev")
    with pytest.raises(IntegrityError), backend.transaction():
        backend.put("elsewhere", b"1", actor=ACTOR)  # another bucket: fine so far
        backend.put(neighbour, b"1", actor=ACTOR)
    assert backend.store.manifest("dev") == before  # not laundered into a new manifest


def test_the_manifest_holds_the_digests_the_format_defines(backend: LocalAdapter) -> None:
    with backend.transaction():
        for i in range(300):
            backend.put(f"K{i}", b"v" * (i % 40 + 1), actor=ACTOR)
        backend.put("K1", b"second", actor=ACTOR)
    stored = backend.store.manifest("dev")
    assert stored is not None
    for bucket in range(BUCKETS):
        rows = backend.store.bucket_rows("dev", bucket)
        expected = reference_digest(*rows)
        assert stored[1][bucket * DIGEST_BYTES : (bucket + 1) * DIGEST_BYTES] == expected


def test_bucket_digest_matches_the_plain_definition() -> None:
    rng = random.Random(20)

    def blob(*sizes: int) -> bytes:  # the usual size, or any
        return os.urandom(rng.choice([*sizes, rng.randint(0, 70)]))

    for _ in range(300):
        heads = [(blob(32), blob(16), os.urandom(rng.randint(0, 400)))
                 for _ in range(rng.randint(0, 6))]  # fmt: skip
        versions = [(blob(16), rng.choice([1, 2, 255, 2**31, 2**40]),
                     os.urandom(rng.randint(0, 400)), blob(28))
                    for _ in range(rng.randint(0, 6))]  # fmt: skip
        assert bucket_digest(heads, versions) == reference_digest(heads, versions)


def test_heads_opened_together_are_opened_alike() -> None:
    """open_heads (ls: every head at once) gives what open gives one by one, and fails
    as open fails on the first head that does not open (the others are fine)."""
    cipher = RecordCipher(os.urandom(32), os.urandom(16), "prod")
    heads = []
    for i in range(50):
        sid, lookup = os.urandom(16), os.urandom(32)
        heads.append((lookup, sid, cipher.seal("head", sid, lookup, b"head %d" % i)))
    assert cipher.open_heads(heads) == [b"head %d" % i for i in range(50)]
    assert cipher.open_heads([]) == []
    for bad in (
        lambda lookup, sid, blob: (os.urandom(32), sid, blob),  # moved to another name
        lambda lookup, sid, blob: (lookup, sid, blob[:-1] + bytes([blob[-1] ^ 1])),
        lambda lookup, sid, blob: (lookup, sid, blob[:20]),  # shorter than nonce and tag
    ):
        changed = list(heads)
        changed[17] = bad(*changed[17])
        lookup, sid, blob = changed[17]
        with pytest.raises(IntegrityError) as one:
            cipher.open("head", sid, lookup, blob)
        with pytest.raises(IntegrityError) as together:
            cipher.open_heads(changed)
        assert str(together.value) == str(one.value)
        assert str(one.value) in {f"a head record {what}" for what in ("failed authentication",
                                                                     "is truncated")}  # fmt: skip


def test_bucket_rows_give_the_heads_as_read_then_as_changed() -> None:
    rows = sorted((os.urandom(32), os.urandom(16), os.urandom(40)) for _ in range(5))
    bucket = BucketRows(list(rows), [])
    assert bucket.head_rows() == rows  # as read: what ls opens
    assert bucket.heads == {lookup: (sid, record) for lookup, sid, record in rows}
    assert bucket.head_rows() == rows  # from the index, once there is one
    bucket.set_head(rows[2][0], rows[2][1], b"changed")
    bucket.drop_secret(rows[0][0], rows[0][1])
    assert bucket.head_rows() == [rows[1], (*rows[2][:2], b"changed"), *rows[3:]]


def test_many_digests_are_sha256_of_each() -> None:
    items = [os.urandom(n) for n in (0, 1, 55, 56, 64, 300, 5000)]
    assert sha256_digests(items) == [hashlib.sha256(item).digest() for item in items]
    assert sha256_digests([]) == []
    assert sha256_digest(b"abc") == hashlib.sha256(b"abc").digest()


def test_record_associated_data_is_unchanged() -> None:
    vault_id, key = os.urandom(16), os.urandom(32)
    cipher = RecordCipher(key, vault_id, "prod")
    for kind, tail in (("head", os.urandom(32)), ("version", 3), ("value", 2**33)):
        sid = os.urandom(16)
        assert cipher.aad(kind, sid, tail) == encode_aad(vault_id, "prod", kind, sid, tail)
        blob = cipher.seal(kind, sid, tail, b"data")
        assert cipher.open(kind, sid, tail, blob) == b"data"
        with pytest.raises(IntegrityError):
            cipher.open(kind, os.urandom(16), tail, blob)


def test_import_through_the_cli_verifies(vault: Path) -> None:
    dotenv = vault / "many.env"
    dotenv.write_text("".join(f"IMPORTED_{i:04d}=value-{i}\n" for i in range(400)))
    assert invoke(["import", str(dotenv), "-e", "dev"]).exit_code == 0
    dotenv.write_text("".join(f"IMPORTED_{i:04d}=changed-{i}\n" for i in range(0, 400, 3)))
    assert invoke(["import", str(dotenv), "-e", "dev"]).exit_code == 0
    assert invoke(["get", "IMPORTED_0003", "-e", "dev"]).stdout == "changed-3\n"
    assert invoke(["get", "IMPORTED_0004", "-e", "dev"]).stdout == "value-4\n"
    result = invoke(["verify"])
    assert result.exit_code == 0, result.stderr
    result = invoke(["audit", "verify"])
    assert result.exit_code == 0, result.stderr
