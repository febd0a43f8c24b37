"""The per-environment manifest: a MAC over every row, so deletions and old
rows put back are detected, while a point read stays cheap.

Rows are spread over 256 buckets by the first byte of their name's HMAC. The
manifest holds one SHA-256 digest per bucket and a generation counter, under
one HMAC with the environment's manifest key. A read checks the manifest's MAC
and recomputes only its own bucket (about N/256 rows); a write checks the
bucket before changing it (so earlier tampering is not laundered), then
stores the new digest with the generation plus one.

Per-row AES-GCM stops edits and swaps; this stops deletion and replay of
rows. Rolling back the whole file to an older copy is not detectable from the
file alone; that needs the external anchor of the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from bsecrets.crypto.keys import encode_aad, mac, mac_verify, sha256, sha256_digest
from bsecrets.errors import IntegrityError

BUCKETS = 256
DIGEST_BYTES = 32
_BUCKET_TAG = b"bsecrets/v1/bucket"
EMPTY_BUCKET = sha256_digest(_BUCKET_TAG)


def bucket_of(lookup: bytes) -> int:
    return lookup[0]


def bucket_digest(heads: Iterable[tuple[Any, ...]], versions: Iterable[tuple[Any, ...]]) -> bytes:
    """Digest of one bucket's rows, as VaultStore.bucket_rows returns them (sorted)."""
    h = sha256()
    h.update(_BUCKET_TAG)
    for lookup, secret_id, record in heads:
        h.update(encode_aad("head", lookup, secret_id, sha256_digest(record)))
    for secret_id, version, record, value_tag in versions:
        h.update(encode_aad("version", secret_id, int(version), sha256_digest(record), value_tag))
    return bytes(h.finalize())


class Manifest(NamedTuple):
    env: str
    generation: int
    buckets: bytes  # BUCKETS * DIGEST_BYTES

    @classmethod
    def empty(cls, env: str) -> Manifest:
        return cls(env, 0, EMPTY_BUCKET * BUCKETS)

    def digest(self, bucket: int) -> bytes:
        return self.buckets[bucket * DIGEST_BYTES : (bucket + 1) * DIGEST_BYTES]

    def with_bucket(self, bucket: int, digest: bytes) -> Manifest:
        start = bucket * DIGEST_BYTES
        buckets = self.buckets[:start] + digest + self.buckets[start + DIGEST_BYTES :]
        return Manifest(self.env, self.generation + 1, buckets)

    def _signed_bytes(self, vault_id: bytes) -> bytes:
        return encode_aad("manifest", vault_id, self.env, self.generation, self.buckets)

    def mac(self, key: bytes, vault_id: bytes) -> bytes:
        return mac(key, self._signed_bytes(vault_id))

    @classmethod
    def verified(
        cls, env: str, stored: tuple[int, bytes, bytes], key: bytes, vault_id: bytes
    ) -> Manifest:
        generation, buckets, tag = stored
        if len(buckets) != BUCKETS * DIGEST_BYTES:
            raise IntegrityError(f"the manifest of environment '{env}' is malformed")
        manifest = cls(env, generation, buckets)
        if not mac_verify(key, manifest._signed_bytes(vault_id), tag):
            raise IntegrityError(f"the manifest of environment '{env}' failed authentication")
        return manifest

    def check_bucket(self, bucket: int, digest: bytes) -> None:
        if self.digest(bucket) != digest:  # digests of stored rows: nothing secret to time
            raise IntegrityError(
                f"rows of environment '{self.env}' were deleted, added or replaced "
                f"outside bsecrets (bucket {bucket})"
            )
