"""What the local adapter does to many secrets at once, bucket by bucket: open every
head (``ls``), read the current value of every live secret (export, diff, promote's
plan) or of the names given (exec), check every row (``verify``), seal every row
again under new keys (access revoke's re-key).

Current values, inside the adapter's read snapshot: each bucket is verified against
the manifest once (its digest covers every head, every version's record and each
value's nonce and GCM tag), the heads are opened in one loop in C, and the current
versions are read by their primary key, a few hundred a statement
(VaultStore.versions_by_key), not one query per secret. Only the values are opened,
not a version's metadata record, which these reads do not return and the bucket's
digest binds already. Each row read must still be the one the digest covered, and
each value authenticates under its own secret id and version, so a value moved to
another secret or version fails (exit 5). Sealed values are held a statement's worth
at a time, beside the opened ones.

On any failure they are read again one secret at a time, as before (the whole
environment in bucket order; names with ``get``): the error is the one that read
meets first, whatever and however many the faults are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any

from bsecrets.backends.local.buckets import (
    BucketRows,
    Versions,
    read_version,
    row_checked,
    versions_checked,
)
from bsecrets.backends.local.records import RecordCipher, dump_record, load_record
from bsecrets.crypto.keys import EnvironmentKeys
from bsecrets.errors import BsecretsError, IntegrityError
from bsecrets.models import SecretSummary
from bsecrets.timeutil import parse_iso
from bsecrets.vaultfile.manifest import BUCKETS, Manifest, bucket_digest, bucket_of
from bsecrets.vaultfile.store import VaultStore

Bucket = Callable[[int], BucketRows]  # the adapter's verified rows of a bucket
KEYS_PER_READ = 256  # current versions read by one statement

_NAME = attrgetter("name")  # ls's order
_SID = itemgetter(1)  # of a head row: (lookup, secret id, record)
_KEY, _VERSION = itemgetter(0), itemgetter(1)  # of a (secret id, version) key


def every_head(records: RecordCipher, bucket: Bucket) -> list[bytes]:
    """Every head of the environment, opened (ls): every bucket checked before any head
    is opened, then all opened with the loop in C (RecordCipher.open_heads)."""
    heads = [bucket(number).head_rows() for number in range(BUCKETS)]
    return records.open_heads(chain.from_iterable(heads))


def summaries(opened: list[bytes], prefix: str, *, include_deleted: bool) -> list[SecretSummary]:
    """ls's answer from every head opened (every_head), sorted by name."""
    out = []
    for head in map(load_record, opened):
        deleted = bool(head["deleted_at"])
        if deleted and not include_deleted:
            continue
        name = head["name"]
        if name.startswith(prefix):
            updated_at = parse_iso(head["updated_at"])
            out.append(SecretSummary(name, head["current"], updated_at, head["tags"], deleted))
    out.sort(key=_NAME)
    return out


def current_values(
    store: VaultStore, env: str, records: RecordCipher, bucket: Bucket
) -> dict[str, bytes]:
    """Name -> current value of every secret that is not deleted, by name. ``bucket``
    gives each bucket's verified rows (LocalAdapter._verified_bucket), in order."""
    try:
        return _at_once(store, env, records, bucket)
    except BsecretsError:
        pass  # read again below: its error, if any, is the one-by-one read's
    return _one_by_one(store, env, records, bucket)


def _at_once(
    store: VaultStore, env: str, records: RecordCipher, bucket: Bucket
) -> dict[str, bytes]:
    heads: list[tuple[Any, ...]] = []
    versions: list[Versions] = []
    for number in range(BUCKETS):  # every bucket checked before any head is opened
        rows = bucket(number)
        got = rows.head_rows()
        heads += got
        versions += map(rows.versions_of, map(_SID, got))
    names: list[str] = []
    wanted: list[tuple[bytes, int]] = []
    verified: list[tuple[bytes, bytes]] = []
    opened = map(load_record, records.open_heads(heads))
    for head, secret_id, rows_of in zip(opened, map(_SID, heads), versions, strict=True):
        if head["deleted_at"]:
            continue
        current = head["current"]
        verified.append(versions_checked(rows_of, current)[current])
        names.append(head["name"])
        wanted.append((secret_id, current))
    values = _values(store, env, records, wanted, verified)
    return dict(sorted(zip(names, values, strict=True)))


def named_values(
    store: VaultStore,
    env: str,
    records: RecordCipher,
    bucket: Bucket,
    wanted: list[tuple[str, bytes]],
) -> list[bytes] | None:
    """The current value of each (name, lookup) of ``wanted``, in order, the same way
    (LocalAdapter.read_each: exec's secrets); None when one is not a plain current
    value (absent, deleted, another name), for the caller to read them one by one with
    get's errors. The IntegrityError of a failed check otherwise."""
    heads: list[tuple[bytes, bytes, bytes]] = []
    versions: list[Versions] = []
    for _name, lookup in wanted:
        rows = bucket(bucket_of(lookup))
        entry = rows.heads.get(lookup)
        if entry is None:
            return None
        heads.append((lookup, *entry))
        versions.append(rows.versions_of(entry[0]))
    keys: list[tuple[bytes, int]] = []
    verified: list[tuple[bytes, bytes]] = []
    opened = map(load_record, records.open_heads(heads))
    for (name, _lookup), head, row, rows_of in zip(wanted, opened, heads, versions, strict=True):
        current = head["current"]
        if head.get("name") != name or head["deleted_at"] or current < 1:
            return None
        verified.append(versions_checked(rows_of, current)[current])
        keys.append((row[1], current))
    return _values(store, env, records, keys, verified)


def _values(
    store: VaultStore,
    env: str,
    records: RecordCipher,
    wanted: list[tuple[bytes, int]],
    verified: list[tuple[bytes, bytes]],
) -> list[bytes]:
    """The value of each (secret id, version) of ``wanted``, its row the one its bucket
    verified (``verified``: record, value tag), opened; a statement's worth at a time."""
    values: list[bytes] = []
    for start in range(0, len(wanted), KEYS_PER_READ):
        keys = wanted[start : start + KEYS_PER_READ]
        read = store.versions_by_key(env, keys)
        found = {(sid, version): (record, value) for sid, version, record, value in read}
        sealed = list(map(row_checked, map(found.get, keys), verified[start : start + len(keys)]))
        values += records.open_each("value", map(_KEY, keys), map(_VERSION, keys), sealed)
    return values


def _each_secret(
    records: RecordCipher, bucket: Bucket
) -> Iterator[tuple[bytes, bytes, dict[str, Any], Versions]]:
    """(lookup, secret id, head, version rows) of every secret, bucket by bucket, each
    head opened as it comes (so a failure is the first one met in that order)."""
    for number in range(BUCKETS):
        rows = bucket(number)
        for lookup, (secret_id, record) in rows.heads.items():
            head = load_record(records.open("head", secret_id, lookup, record))
            yield lookup, secret_id, head, rows.versions_of(secret_id)


def _one_by_one(
    store: VaultStore, env: str, records: RecordCipher, bucket: Bucket
) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for _lookup, secret_id, head, versions in _each_secret(records, bucket):
        if head["deleted_at"]:
            continue
        current = head["current"]
        verified = versions_checked(versions, current)[current]
        sealed = row_checked(store.version(env, secret_id, current), verified)
        out[head["name"]] = records.open("value", secret_id, current, sealed)
    return dict(sorted(out.items()))


def verify_rows(store: VaultStore, env: str, records: RecordCipher, bucket: Bucket) -> int:
    """LocalAdapter.verify_rows: every head and version opened, each secret's versions
    exactly 1..current. Returns the number of secrets."""
    count = 0
    for _lookup, secret_id, head, versions in _each_secret(records, bucket):
        for version, verified in versions_checked(versions, head["current"]).items():
            read_version(store, env, records, secret_id, version, verified)
        count += 1
    return count


def reencrypt(
    store: VaultStore,
    env: str,
    vault_id: bytes,
    keys: tuple[EnvironmentKeys, EnvironmentKeys],
    bucket: Bucket,
) -> int:
    """LocalAdapter.reencrypt: every row opened with the old keys (``bucket``'s rows
    verified with them) and sealed again under the new, names' lookups recomputed.
    Bucket by bucket, the new rows under a temporary environment name until the old
    ones are gone (a row's associated data names the environment, not its column),
    so memory holds one bucket at a time. Returns the number of secrets."""
    old, new = keys
    temp = f"__rekey__{env}"
    stored = store.manifest(env)
    if stored is None:
        raise IntegrityError(f"the manifest of environment '{env}' is missing")
    count = 0
    opened = RecordCipher(old.value_key, vault_id, env)
    sealing = RecordCipher(new.value_key, vault_id, env)
    for _lookup, sid, head, versions in _each_secret(opened, bucket):
        new_lookup = new.lookup(head["name"])
        for version, verified in versions_checked(versions, head["current"]).items():
            meta, value = read_version(store, env, opened, sid, version, verified)
            store.add_version(
                temp,
                sid,
                version,
                bucket_of(new_lookup),
                sealing.seal("version", sid, version, dump_record(meta)),
                sealing.seal("value", sid, version, value),
            )
        sealed = sealing.seal("head", sid, new_lookup, dump_record(head))
        store.set_head(temp, new_lookup, sid, bucket_of(new_lookup), sealed)
        count += 1
    store.move_environment_rows(temp, env)
    digests = b"".join(bucket_digest(*store.bucket_rows(env, n)) for n in range(BUCKETS))
    manifest = Manifest(env, stored[0] + 1, digests)
    store.set_manifest(
        env, manifest.generation, manifest.buckets, manifest.mac(new.manifest_key, vault_id)
    )
    return count
