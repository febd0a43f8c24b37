"""Reads of the local vault in one snapshot, and the bulk read of every current value
(issue #20, targets 2 and 3: ``exec`` of 100 secrets verified a bucket and read the
manifest once per secret; ``export`` read each current version with its own query
and opened records it never used).

A read snapshot checks each bucket once and keeps it for the next read transaction
only while nothing can have changed it: another connection (another process) that
commits makes it check again, and so does a write of this connection. The bulk read
gives what reading one secret at a time gives, with the same error when the file is
damaged."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.local_vault import (
    Statements,
    counted,
    dev_adapter,
    names_in_bucket,
    second_connection,
)

from bsecrets.backends.local import buckets
from bsecrets.backends.local.adapter import LocalAdapter
from bsecrets.backends.local.bulk import KEYS_PER_READ
from bsecrets.errors import IntegrityError, SecretNotFound
from bsecrets.testing.backend import ACTOR
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.manifest import BUCKETS, Manifest, bucket_digest

HEAD_READ = "SELECT lookup, secret_id, record FROM secrets INDEXED BY secrets_by_bucket"
MANIFEST_READ = "SELECT generation, buckets, mac FROM manifests"
VERSION_READ = "SELECT record, value FROM versions"  # one version, by its key
VERSIONS_BY_KEY = "SELECT w.column1, w.column2, record, value FROM (VALUES"
EVERY_HEAD_READ = "SELECT bucket, lookup, secret_id, record FROM secrets"  # every bucket's


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalAdapter]:
    yield from dev_adapter(tmp_path / "v" / "vault.db")


def _flip_head(db_path: Path, lookup: bytes) -> None:
    """One bit of a head record changed by another process (its bucket no longer
    matches the manifest)."""
    code = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "lookup = bytes.fromhex(sys.argv[2])\n"
        "(record,) = db.execute(\n"
        "    'SELECT record FROM secrets WHERE lookup = ?', (lookup,)).fetchone()\n"
        "db.execute('UPDATE secrets SET record = ? WHERE lookup = ?',\n"
        "           (bytes([record[0] ^ 1]) + record[1:], lookup))\n"
        "db.commit()\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db_path), lookup.hex()], check=True)


def _seal_manifest(backend: LocalAdapter) -> None:
    """A manifest over the rows as they are now, under the environment's key: what only
    a holder of the keys could write, so that the records themselves are what fails."""
    keys = backend.vault.env_keys("dev")
    store = backend.store
    assert keys is not None
    with store.write():
        stored = store.manifest("dev")
        assert stored is not None
        digests = b"".join(bucket_digest(*store.bucket_rows("dev", b)) for b in range(BUCKETS))
        manifest = Manifest("dev", stored[0] + 1, digests)
        mac = manifest.mac(keys.manifest_key, backend.vault.vault_id)
        store.set_manifest("dev", manifest.generation, manifest.buckets, mac)


# --- one snapshot, and the next -------------------------------------------------------


def test_a_snapshot_checks_each_bucket_and_the_manifest_once(
    backend: LocalAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bucket by bucket (this environment is small enough to be read at once otherwise:
    tests/test_every_bucket_at_once.py)."""
    monkeypatch.setattr(buckets, "ROWS_A_BUCKET", 0)
    names = [f"S{i}" for i in range(60)]
    for name in names:
        backend.put(name, name.encode(), actor=ACTOR)
    keys = backend.vault.env_keys("dev")
    assert keys is not None
    touched = {keys.lookup(n)[0] for n in names}
    with Statements(backend) as seen:
        assert backend.read_each(names) == {n: n.encode() for n in names}
    assert counted(seen, HEAD_READ) == len(touched) < len(names)
    assert counted(seen, MANIFEST_READ) == 1
    assert counted(seen, "BEGIN") == 1
    assert counted(seen, VERSIONS_BY_KEY) == 1 and counted(seen, VERSION_READ) == 0
    backend.delete(names[7])  # not a plain current value: read one by one, get's error
    with Statements(backend) as seen, pytest.raises(SecretNotFound, match="was deleted"):
        backend.read_each(names)
    assert counted(seen, VERSION_READ) == 7


def test_the_next_snapshot_checks_again_only_what_another_connection_changed(
    backend: LocalAdapter,
) -> None:
    backend.put("kept", b"1", actor=ACTOR)
    assert backend.get("kept").value == b"1"
    with Statements(backend) as seen:  # nothing changed since: nothing read again
        assert backend.get("kept").value == b"1"
        assert [s.name for s in backend.list_secrets()] == ["first", "kept"]
    # ls: every bucket (the environment is small: at once), kept with the one get read
    assert counted(seen, HEAD_READ) == 0 and counted(seen, EVERY_HEAD_READ) == 1
    with Statements(backend) as seen:
        assert [s.name for s in backend.list_secrets()] == ["first", "kept"]
        assert backend.get("kept").value == b"1"
    assert counted(seen, EVERY_HEAD_READ) == counted(seen, HEAD_READ) == 0
    with Statements(backend) as seen:
        assert backend.get("kept").value == b"1"
    assert counted(seen, HEAD_READ) == counted(seen, MANIFEST_READ) == 0
    other = second_connection(backend)
    try:
        other.put("kept", b"2", actor=ACTOR)  # another connection commits
        with Statements(backend) as seen:
            assert backend.get("kept").value == b"2"
        assert counted(seen, HEAD_READ) == counted(seen, MANIFEST_READ) == 1
    finally:
        other.vault.close()


def test_a_bucket_changed_by_another_process_is_checked_again(
    backend: LocalAdapter,
) -> None:
    """The bucket a read kept is damaged by another process: the next read checks it
    again and fails, though the secret it reads is not the one changed."""
    reader, victim = names_in_bucket(backend, 99, 2)
    backend.put(reader, b"r", actor=ACTOR)
    backend.put(victim, b"v", actor=ACTOR)
    assert backend.get(reader).value == b"r"
    with Statements(backend) as seen:
        assert backend.get(reader).value == b"r"  # from the rows kept
    assert counted(seen, HEAD_READ) == 0
    keys = backend.vault.env_keys("dev")
    assert keys is not None
    _flip_head(backend.store.path, keys.lookup(victim))
    with pytest.raises(IntegrityError, match=r"outside bsecrets \(bucket 99\)"):
        backend.get(reader)
    with pytest.raises(IntegrityError, match=r"outside bsecrets \(bucket 99\)"):
        backend.current_values()


def test_a_write_of_this_connection_is_seen_by_the_next_read(backend: LocalAdapter) -> None:
    backend.put("mine", b"1", actor=ACTOR)
    assert backend.get("mine").value == b"1"
    same_file = LocalAdapter(backend.vault, "dev", utcnow)  # another adapter, one connection
    same_file.put("mine", b"2", actor=ACTOR)
    assert backend.get("mine").value == b"2"
    backend.delete("mine")
    with pytest.raises(SecretNotFound):
        backend.get("mine")
    assert backend.current_values() == {"first": b"0"}
    same_file.restore("mine")
    assert backend.read_each(["mine"]) == {"mine": b"2"}
    same_file.purge("mine")
    assert [s.name for s in backend.list_secrets(include_deleted=True)] == ["first"]


def test_a_snapshot_keeps_a_bounded_number_of_rows(
    backend: LocalAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past KEPT_ROWS, a bucket is read and checked each time it is read, as outside a
    snapshot (ls of 100,000 secrets does not hold them all, nor does a server keep them)."""
    names = [f"L{i}" for i in range(20)]
    for name in names:
        backend.put(name, b"x", actor=ACTOR)
    monkeypatch.setattr(buckets, "KEPT_ROWS", 10)  # five secrets of one version
    with Statements(backend) as seen, backend.snapshot():
        assert len(backend.list_secrets()) == 21
        assert backend.read_each(names) == dict.fromkeys(names, b"x")
    assert 256 + 20 - 5 <= counted(seen, HEAD_READ) <= 256 + 20
    assert counted(seen, MANIFEST_READ) == 1
    with Statements(backend) as seen:  # the next one keeps those five, no more
        assert backend.read_each(names) == dict.fromkeys(names, b"x")
    assert 20 - 5 <= counted(seen, HEAD_READ) <= 20
    assert counted(seen, MANIFEST_READ) == 0


# --- every current value at once ------------------------------------------------------


def _varied(backend: LocalAdapter) -> None:
    """More secrets than one statement reads, deleted, purged, restored, revived, long
    histories, empty, binary and large values."""
    for i in range(KEYS_PER_READ + 60):
        backend.put(f"V{i:03d}", f"value-{i}".encode(), actor=ACTOR)
    for i in range(0, 40, 3):
        for round_ in range(i % 5 + 1):
            backend.put(f"V{i:03d}", f"value-{i}-{round_}".encode(), actor=ACTOR)
    for i in range(1, 300, 7):
        backend.delete(f"V{i:03d}")
    for i in range(1, 100, 14):
        backend.restore(f"V{i:03d}")
    backend.put("V008", b"revived", actor=ACTOR)  # deleted above: a put revives it
    backend.purge("V010")
    backend.put("empty", b"", actor=ACTOR)
    backend.put("binary", bytes(range(256)), actor=ACTOR)
    backend.put("large", b"L" * (1 << 20), actor=ACTOR)
    backend.put("large", b"M" * (1 << 20), actor=ACTOR)


def test_every_current_value_is_what_get_reads(backend: LocalAdapter) -> None:
    _varied(backend)
    fresh = second_connection(backend)  # nothing kept: every bucket read
    try:
        live = [s.name for s in fresh.list_secrets()]
        one_by_one = {name: fresh.get(name).value for name in live}
        with Statements(fresh) as seen:
            every = fresh.current_values()
        assert every == one_by_one
        assert list(every) == sorted(every)
        assert fresh.read_each(live) == one_by_one
        assert fresh.values_of(["V000", "V022", "V010"]) == {"V000": every["V000"]}
    finally:
        fresh.vault.close()
    assert {"empty", "binary", "large", "V008"} <= set(every) and "V010" not in every
    assert every["large"] == b"M" * (1 << 20)
    deleted = [s.name for s in backend.list_secrets(include_deleted=True) if s.deleted]
    assert deleted and not set(deleted) & set(every)
    # a few statements for the values, none per secret
    assert counted(seen, VERSIONS_BY_KEY) == -(-len(every) // KEYS_PER_READ) > 1
    assert counted(seen, VERSION_READ) == 0


def test_a_value_moved_to_another_secret_fails_as_it_does_one_by_one(
    backend: LocalAdapter,
) -> None:
    """Two current values swapped in the file, the manifest sealed again over them (as
    only the key's holder could): each value fails its authentication, and the bulk
    read gives the error reading one by one meets first."""
    backend.put("A", b"a", actor=ACTOR)
    backend.put("B", b"b", actor=ACTOR)
    keys = backend.vault.env_keys("dev")
    assert keys is not None
    with sqlite3.connect(backend.store.path) as db:
        sids = [
            db.execute(
                "SELECT secret_id FROM secrets WHERE lookup = ?", (keys.lookup(n),)
            ).fetchone()[0]
            for n in ("A", "B")
        ]
        values = [
            db.execute("SELECT value FROM versions WHERE secret_id = ?", (sid,)).fetchone()[0]
            for sid in sids
        ]
        for sid, value in zip(sids, reversed(values), strict=True):
            db.execute("UPDATE versions SET value = ? WHERE secret_id = ?", (value, sid))
    _seal_manifest(backend)
    with pytest.raises(IntegrityError) as one:
        backend.get("A")
    assert one.value.message == "a value record failed authentication"
    with pytest.raises(IntegrityError) as every:
        backend.current_values()
    assert every.value.message == one.value.message
    with pytest.raises(IntegrityError) as each:
        backend.read_each(["first", "B", "A"])
    assert each.value.message == one.value.message


def test_the_first_fault_in_bucket_order_is_the_error(backend: LocalAdapter) -> None:
    """A value that fails its authentication in an early bucket, and a later bucket that
    does not match the manifest: reading one by one meets the value first, and so does
    the bulk read (which checks every bucket before it opens anything, then reads one by
    one again to give that error)."""
    early, later = names_in_bucket(backend, 3, 1)[0], names_in_bucket(backend, 200, 1)[0]
    for name in (early, later, "other"):
        backend.put(name, name.encode(), actor=ACTOR)
    keys = backend.vault.env_keys("dev")
    assert keys is not None
    with sqlite3.connect(backend.store.path) as db:
        (sid,) = db.execute(
            "SELECT secret_id FROM secrets WHERE lookup = ?", (keys.lookup(early),)
        ).fetchone()
        (value,) = db.execute("SELECT value FROM versions WHERE secret_id = ?", (sid,)).fetchone()
        moved = bytes([value[0] ^ 1]) + value[1:]  # another nonce: the tag no longer holds
        db.execute("UPDATE versions SET value = ? WHERE secret_id = ?", (moved, sid))
    _seal_manifest(backend)
    _flip_head(backend.store.path, keys.lookup(later))
    with pytest.raises(IntegrityError) as every:
        backend.current_values()
    assert every.value.message == "a value record failed authentication"
