"""LocalAdapter: the SecretBackend of one environment in the local vault.

Every record is AES-256-GCM under the environment's value key with associated
data (vault id, environment, record kind, secret id, version), so a ciphertext
copied to another environment, secret or version fails authentication
(records.py). Rows are found by an HMAC of the name. Every read checks the
environment's manifest and the bucket it reads from; every write changes rows
and manifest in one transaction. Within a write transaction each bucket is read
and verified once, and the manifest is written once at its end with the digests
of the buckets it changed (buckets.py): a put alone, or all the puts of an import.
Within a read snapshot too, each bucket and the manifest are checked once, for
every read inside it (``snapshot``: exec's 100 gets), and not again in the next
one unless another connection committed or this one wrote a manifest. What
reads or rewrites the whole environment is bulk.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from bsecrets.backends.local import bulk
from bsecrets.backends.local.buckets import (
    BucketRows,
    PendingBuckets,
    ReadSnapshot,
    Versions,
    read_version,
    versions_checked,
)
from bsecrets.backends.local.records import RecordCipher, dump_record, load_record
from bsecrets.backends.registry import BackendContext
from bsecrets.crypto.keys import EnvironmentKeys, KeyedMac
from bsecrets.errors import (
    BsecretsError,
    IntegrityError,
    NextStep,
    SecretNotFound,
    VersionConflict,
    VersionNotFound,
)
from bsecrets.files import exists
from bsecrets.health import HealthIndicator
from bsecrets.models import Secret, SecretSummary, SecretVersion, VersionState, WriteResult
from bsecrets.named_tuples import NamedTuple
from bsecrets.ports import Capability, SecretBackend, not_applied
from bsecrets.timeutil import Clock, iso, parse_iso
from bsecrets.vaultfile.manifest import Manifest, bucket_digest, bucket_of
from bsecrets.vaultfile.vault import LocalVault

if TYPE_CHECKING:
    from bsecrets.config.profile import EnvironmentConfig


def from_config(config: EnvironmentConfig, context: BackendContext) -> LocalAdapter:
    return LocalAdapter(context.local_vault(), config.name, context.clock)


class _Found(NamedTuple):
    lookup: bytes
    secret_id: bytes
    head: dict[str, Any]
    versions: Versions  # the secret's verified version rows, from its bucket


class LocalAdapter(SecretBackend):
    kind = "local"
    capabilities = frozenset(Capability) - {Capability.FIELDS, Capability.PENDING}

    def __init__(self, vault: LocalVault, env: str, clock: Clock) -> None:
        super().__init__(env)
        self.vault = vault
        self.store = vault.store
        self.clock = clock
        self._cipher: RecordCipher | None = None
        self._lookups: tuple[bytes, KeyedMac] | None = None  # (index key, its keyed MAC)
        # (stored manifest, manifest key, the Manifest) last authenticated: the same
        # bytes under the same key authenticate again, so ls checks the MAC once, not
        # once per bucket
        self._known: tuple[tuple[int, bytes, bytes], bytes, Manifest] | None = None
        self._pending: PendingBuckets | None = None  # inside a write transaction
        self._snapshot: ReadSnapshot | None = None  # inside a read transaction
        self._kept: ReadSnapshot | None = None  # the last one, for the next

    # --- records ---------------------------------------------------------

    def _records(self, keys: EnvironmentKeys) -> RecordCipher:
        cipher = self._cipher
        if cipher is None or cipher.value_key != keys.value_key:  # our own keys: no timing
            cipher = self._cipher = RecordCipher(keys.value_key, self.vault.vault_id, self.env)
        return cipher

    def _lookup(self, keys: EnvironmentKeys, name: str) -> bytes:
        """keys.lookup(name), the keyed MAC built once per key (every put of an import)."""
        made = self._lookups
        if made is None or made[0] != keys.index_key:  # our own keys: no timing
            made = self._lookups = (keys.index_key, KeyedMac(keys.index_key))
        return made[1](name.encode("utf-8"))

    def _head(self, keys: EnvironmentKeys, name: str, lookup: bytes | None = None) -> _Found | None:
        """``name``'s head and its version rows, all verified; None if absent. ``lookup``:
        its lookup, when the caller has it."""
        lookup = lookup or self._lookup(keys, name)
        rows = self._verified_bucket(keys, bucket_of(lookup))
        entry = rows.heads.get(lookup)
        if entry is None:
            return None
        secret_id, record = entry
        head = load_record(self._records(keys).open("head", secret_id, lookup, record))
        if head.get("name") != name:
            raise IntegrityError("a secret's record was moved to another name")
        return _Found(lookup, secret_id, head, rows.versions_of(secret_id))

    def _verified_bucket(
        self, keys: EnvironmentKeys, bucket: int, *, witnessed: bool = True
    ) -> BucketRows:
        """The bucket's rows, after checking them against the manifest. Every answer is
        taken from these rows (not from a second query through another index), so a
        damaged index gives exit 5, never a missing secret or version. In a write
        transaction, a bucket is read and checked once, then kept with the
        transaction's own changes; in a read snapshot, kept as read (buckets.py)."""
        pending = self._pending
        if pending is not None and bucket in pending.rows:
            return pending.rows[bucket]
        snapshot = self._snapshot
        manifest = self._checked_manifest(keys, witnessed=witnessed)
        if snapshot is not None and bucket in snapshot.rows:
            return snapshot.rows[bucket]
        heads, versions = self.store.bucket_rows(self.env, bucket)
        manifest.check_bucket(bucket, bucket_digest(heads, versions))
        rows = BucketRows(heads, versions)
        if pending is not None:
            pending.rows[bucket] = rows
        elif snapshot is not None:
            snapshot.keep(bucket, rows, len(heads) + len(versions))
        return rows

    def _checked_manifest(self, keys: EnvironmentKeys, *, witnessed: bool = True) -> Manifest:
        """The manifest, authenticated (and witnessed); in a read snapshot, once in it."""
        snapshot = self._snapshot
        if snapshot is None:
            return self._manifest(keys, witnessed=witnessed)
        if snapshot.serial != self.store.tx_serial:
            raise RuntimeError("a read snapshot of another transaction is still open")
        manifest = snapshot.manifest_for(keys, witnessed=witnessed)
        if manifest is None:
            manifest = self._manifest(keys, witnessed=witnessed)
            snapshot.checked(manifest, witnessed=witnessed)
        return manifest

    def _buckets(self, keys: EnvironmentKeys, wanted: set[int] | None = None) -> bulk.Bucket:
        """The verified rows of the buckets a read of many secrets takes (``wanted``, None:
        all): in a read snapshot, those of a small environment all read and checked at
        once (ReadSnapshot.holds), else _verified_bucket's, one by one."""
        snapshot = self._snapshot
        if snapshot is not None:
            manifest = self._checked_manifest(keys)
            if snapshot.holds(self.store, self.env, manifest, wanted):
                return snapshot.rows.__getitem__
        return partial(self._verified_bucket, keys)

    def _read_version(
        self, keys: EnvironmentKeys, found: _Found, version: int
    ) -> tuple[dict[str, Any], bytes]:
        """(metadata, value) of one version, its row matched against the verified bucket."""
        verified = self._versions_of(found)[version]
        records = self._records(keys)
        return read_version(self.store, self.env, records, found.secret_id, version, verified)

    @staticmethod
    def _versions_of(found: _Found) -> Versions:
        """Version -> (record, value nonce+tag) of one secret; exactly 1..current, else exit 5."""
        return versions_checked(found.versions, found.head["current"])

    def _manifest(self, keys: EnvironmentKeys, *, witnessed: bool = True) -> Manifest:
        stored = self.store.manifest(self.env)
        if stored is None:
            raise IntegrityError(f"the manifest of environment '{self.env}' is missing")
        known = self._known
        if known is not None and known[0] == stored and known[1] == keys.manifest_key:
            manifest = known[2]
        else:
            manifest = Manifest.verified(self.env, stored, keys.manifest_key, self.vault.vault_id)
            self._known = (stored, keys.manifest_key, manifest)
        if witnessed and self.vault.witness is not None:  # the audit chain recorded it
            self.vault.witness.check(self.env, (stored[0], stored[2]))
        return manifest

    @contextlib.contextmanager
    def _writing(self) -> Iterator[PendingBuckets]:
        """Inside the store's write transaction: the buckets the writes read and change.
        The outermost scope writes the manifest once, with the changed buckets' digests
        of the rows as stored, one generation on; nested scopes (the puts of an import)
        join it. A failure leaves the manifest alone: the transaction rolls back."""
        pending = self._pending
        if pending is not None:
            if pending.serial != self.store.tx_serial:
                raise RuntimeError("a write of another transaction is still pending")
            yield pending
            return
        pending = self._pending = PendingBuckets(self.store.tx_serial)
        try:
            yield pending
            self._commit(pending)
        finally:
            self._pending = None

    def _commit(self, pending: PendingBuckets) -> None:
        keys = pending.keys
        if keys is None or not pending.changed:
            return
        digests = {
            bucket: bucket_digest(*self.store.bucket_rows(self.env, bucket))
            for bucket in sorted(pending.changed)
        }
        manifest = self._manifest(keys).with_buckets(digests)
        self.store.set_manifest(
            self.env,
            manifest.generation,
            manifest.buckets,
            manifest.mac(keys.manifest_key, self.vault.vault_id),
        )

    def _keys(self) -> EnvironmentKeys | None:
        keys = self.vault.env_keys(self.env)
        if keys is None and self.vault.witness is not None:
            self.vault.witness.check(self.env, None)  # not removed behind the chain's back
        return keys

    def _existing(self, name: str) -> tuple[EnvironmentKeys, _Found]:
        keys = self._keys()
        found = self._head(keys, name) if keys else None
        if keys is None or found is None:
            raise SecretNotFound(f"secret '{name}' not found in environment '{self.env}'")
        return keys, found

    def _write_head(
        self,
        pending: PendingBuckets,
        keys: EnvironmentKeys,
        lookup: bytes,
        sid: bytes,
        head: dict[str, Any],
    ) -> None:
        record = self._records(keys).seal("head", sid, lookup, dump_record(head))
        self.store.set_head(self.env, lookup, sid, bucket_of(lookup), record)
        pending.change(keys, bucket_of(lookup)).set_head(lookup, sid, record)

    # --- SecretBackend ---------------------------------------------------

    def put(
        self,
        name: str,
        value: bytes,
        *,
        actor: str,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        if_version: int | None = None,
    ) -> WriteResult:
        # rolled back: not applied
        with self.write_operation(), self.store.write(), self._writing() as pending:
            keys = self.vault.env_keys(self.env, create=True)
            assert keys is not None
            lookup = self._lookup(keys, name)
            found = self._head(keys, name, lookup)
            now = iso(self.clock())
            if found is None:
                sid = os.urandom(16)
                head: dict[str, Any] = {
                    "name": name,
                    "current": 0,
                    "created_at": now,
                    "tags": {},
                    "description": "",
                    "deleted_at": None,
                }
            else:
                sid, head = found.secret_id, found.head
            current = head["current"]
            if if_version is not None and if_version != current:
                raise VersionConflict(
                    f"secret '{name}' is at version {current}, not {if_version}"
                    if current
                    else f"secret '{name}' does not exist (expected version {if_version})"
                )
            version = current + 1
            meta = {"created_at": now, "created_by": actor, "size": len(value)}
            records = self._records(keys)
            record = records.seal("version", sid, version, dump_record(meta))
            sealed = records.seal("value", sid, version, value)
            self.store.add_version(self.env, sid, version, bucket_of(lookup), record, sealed)
            pending.change(keys, bucket_of(lookup)).add_version(sid, version, record, sealed)
            head.update(current=version, updated_at=now, deleted_at=None)
            if tags is not None:
                head["tags"] = dict(tags)
            if description is not None:
                head["description"] = description
            self._write_head(pending, keys, lookup, sid, head)
        return WriteResult(name=name, env=self.env, version=version)

    def get(self, name: str, version: int | None = None) -> Secret:
        with self.snapshot():
            keys, found = self._existing(name)
            head = found.head
            if head["deleted_at"]:
                raise SecretNotFound(
                    f"secret '{name}' was deleted in environment '{self.env}'",
                    step=NextStep("restore_secret", name=name),
                )
            wanted = head["current"] if version is None else version
            if not 1 <= wanted <= head["current"]:
                raise VersionNotFound(f"secret '{name}' has no version {wanted}")
            meta, value = self._read_version(keys, found, wanted)
        return Secret(
            name=name,
            env=self.env,
            version=wanted,
            value=value,
            created_at=parse_iso(meta["created_at"]),
            created_by=meta["created_by"],
            tags=dict(head["tags"]),
            description=head["description"],
        )

    def list_secrets(
        self, prefix: str = "", *, include_deleted: bool = False
    ) -> list[SecretSummary]:
        with self.snapshot():
            keys = self._keys()
            if keys is None:
                return []
            opened = bulk.every_head(self._records(keys), self._buckets(keys))
        return bulk.summaries(opened, prefix, include_deleted=include_deleted)

    def values_of(self, names: list[str]) -> dict[str, bytes]:
        every = self.current_values()
        return {name: every[name] for name in names if name in every}

    def current_values(self) -> dict[str, bytes]:
        """Every current value in one snapshot, each bucket verified once (bulk.py)."""
        with self.snapshot():
            keys = self._keys()
            if keys is None:
                return {}
            bucket = self._buckets(keys)
            return bulk.current_values(self.store, self.env, self._records(keys), bucket)

    def read_each(self, names: Iterable[str]) -> dict[str, bytes]:
        """SecretBackend.read_each: the values read together (bulk.named_values) when each
        is a plain current value, else one by one, so a failure is get's."""
        names = list(names)
        with self.snapshot():
            keys = self._keys()
            if keys is not None:
                wanted = [(name, self._lookup(keys, name)) for name in names]
                bucket = self._buckets(keys, {bucket_of(lookup) for _, lookup in wanted})
                with contextlib.suppress(BsecretsError):  # read again below, for its error
                    got = bulk.named_values(
                        self.store, self.env, self._records(keys), bucket, wanted
                    )
                    if got is not None:
                        return dict(zip(names, got, strict=True))
            return super().read_each(names)

    def verify_rows(self) -> int:
        """``bsecrets verify``: every row of the environment against its manifest, every
        record and every version's value authenticated (opened and dropped: a value's
        digest in the manifest covers its nonce and tag only), each secret's versions
        exactly 1..current. The manifest against the audit chain is left to the caller,
        which compares every environment once. Returns the number of secrets."""
        with self.snapshot():
            keys = self.vault.env_keys(self.env)
            if keys is None:
                return 0
            bucket = partial(self._verified_bucket, keys, witnessed=False)
            return bulk.verify_rows(self.store, self.env, self._records(keys), bucket)

    def history(self, name: str) -> list[SecretVersion]:
        with self.snapshot():
            keys, found = self._existing(name)
            sid, head = found.secret_id, found.head
            out = []
            versions = self._versions_of(found)
            records = self._records(keys)
            for version, (record, _tag) in sorted(versions.items()):
                meta = load_record(records.open("version", sid, version, record))
                if version == head["current"]:
                    state = VersionState.DELETED if head["deleted_at"] else VersionState.CURRENT
                else:
                    state = VersionState.PREVIOUS
                out.append(
                    SecretVersion(
                        version=version,
                        created_at=parse_iso(meta["created_at"]),
                        created_by=meta["created_by"],
                        state=state,
                    )
                )
        return out

    def delete(self, name: str) -> None:
        self._set_deleted(name, deleted=True)

    def restore(self, name: str) -> SecretSummary:
        return self._set_deleted(name, deleted=False)

    def _set_deleted(self, name: str, *, deleted: bool) -> SecretSummary:
        with self.write_operation(), self.store.write(), self._writing() as pending:
            keys, found = self._existing(name)
            lookup, sid, head = found.lookup, found.secret_id, found.head
            if bool(head["deleted_at"]) == deleted:
                if deleted:
                    raise SecretNotFound(
                        f"secret '{name}' is already deleted",
                        step=NextStep("restore_secret", name=name),
                    )
                raise SecretNotFound(f"secret '{name}' is not deleted; nothing to restore")
            now = iso(self.clock())
            head.update(deleted_at=now if deleted else None, updated_at=now)
            self._write_head(pending, keys, lookup, sid, head)
        return SecretSummary(
            name=name,
            version=head["current"],
            updated_at=parse_iso(now),
            tags=dict(head["tags"]),
            deleted=deleted,
        )

    def purge(self, name: str) -> None:
        with self.write_operation(), self.store.write(), self._writing() as pending:
            keys, found = self._existing(name)
            lookup, sid = found.lookup, found.secret_id
            self.store.delete_secret(self.env, lookup, sid)
            pending.change(keys, bucket_of(lookup)).drop_secret(lookup, sid)

    def reencrypt(self, old: EnvironmentKeys, new: EnvironmentKeys) -> int:
        """Inside the caller's write transaction: every row of the environment opened
        (and checked against its manifest) with ``old`` and sealed again under ``new``,
        and a manifest one generation on, under ``new`` (access revoke's re-key;
        bulk.reencrypt). Returns the number of secrets."""
        if self._pending is not None:
            raise RuntimeError("re-key inside a transaction with writes pending")
        bucket = partial(self._verified_bucket, old)
        return bulk.reencrypt(self.store, self.env, self.vault.vault_id, (old, new), bucket)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction (store.read()) for the reads inside: each bucket they read
        is verified once in it, with the manifest and its witness, or not at all if the
        last one verified it and nothing can have changed it since (ReadSnapshot). Nested,
        or inside a write transaction (whose buckets PendingBuckets keeps), it joins."""
        with self.store.read():
            if self._snapshot is not None or self.store.write_serial is not None:
                yield
                return
            mark = (self.store.data_version(), self.store.manifest_writes)
            kept = self._kept
            snapshot = kept if kept is not None and kept.mark == mark else ReadSnapshot(mark)
            snapshot.serial = self.store.tx_serial
            self._snapshot = snapshot
            try:
                yield
            finally:
                self._snapshot, self._kept = None, snapshot

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite transaction; each bucket its writes change is digested once, at
        its end, and the manifest written once (an import of 100,000 secrets)."""
        with not_applied(), self.store.write(), self._writing():  # failed: rolled back
            yield

    # --- ReflectiveModule ------------------------------------------------

    def get_module_status(self) -> dict[str, Any]:
        stored = self.store.manifest(self.env)
        return {
            "name": f"local:{self.env}",
            "backend": self.kind,
            "vault_file": str(self.store.path),
            "initialized": stored is not None,
            "generation": stored[0] if stored else 0,
            "secrets": self.store.counts().get(self.env, 0),
        }

    def get_health_indicators(self) -> list[HealthIndicator]:
        path = self.store.path
        writable = os.access(path, os.W_OK)
        return [
            HealthIndicator("vault_file", exists(path), path),
            HealthIndicator(
                "writable", writable, "" if writable else "the vault file is read-only"
            ),
        ]
