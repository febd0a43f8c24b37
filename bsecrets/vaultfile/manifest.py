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

from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from typing import Any

from bsecrets.crypto.keys import (
    encode_aad,
    mac,
    mac_verify,
    pack_int,
    pack_length,
    pack_lengths,
    sha256_digest,
    sha256_digests,
)
from bsecrets.errors import IntegrityError
from bsecrets.named_tuples import NamedTuple

BUCKETS = 256
DIGEST_BYTES = 32
_BUCKET_TAG = b"bsecrets/v1/bucket"
EMPTY_BUCKET = sha256_digest(_BUCKET_TAG)

# Each row's part of a bucket's digest is encode_aad("head", lookup, secret_id,
# sha256(record)) or encode_aad("version", secret_id, version, sha256(record), value
# tag); bucket_digest writes those bytes itself, column by column, with the constant
# parts encoded once (tests/test_local_batch.py checks them against encode_aad).
_HEAD_START = encode_aad("head") + b"b"  # then the lookup's length
_VERSION_START = encode_aad("version") + b"b"  # then the secret id's length
_BYTES = b"b"  # the next part is bytes: its length follows
_NUMBER = b"i" + pack_length(8)  # the next part is an int: 8 bytes follow
_DIGEST_LENGTH = b"b" + pack_length(DIGEST_BYTES)


def bucket_of(lookup: bytes) -> int:
    return lookup[0]


def bucket_digest(heads: Sequence[tuple[Any, ...]], versions: Sequence[tuple[Any, ...]]) -> bytes:
    """Digest of one bucket's rows, as VaultStore.bucket_rows returns them (sorted).

    Hot (``ls`` digests every row of the environment): each column is encoded with
    map() and the rows' parts interleaved with zip(), so the loops run in C, and the
    whole is hashed in one update."""
    parts: list[bytes] = [_BUCKET_TAG]
    if heads:
        lookups, secret_ids, records = zip(*heads, strict=True)
        parts += chain.from_iterable(zip(
            repeat(_HEAD_START), pack_lengths(lookups), lookups,
            repeat(_BYTES), pack_lengths(secret_ids), secret_ids,
            repeat(_DIGEST_LENGTH), sha256_digests(records),
        ))  # fmt: skip
    if versions:
        secret_ids, numbers, records, value_tags = zip(*versions, strict=True)
        parts += chain.from_iterable(zip(
            repeat(_VERSION_START), pack_lengths(secret_ids), secret_ids,
            repeat(_NUMBER), map(pack_int, map(int, numbers)),
            repeat(_DIGEST_LENGTH), sha256_digests(records),
            repeat(_BYTES), pack_lengths(value_tags), value_tags,
        ))  # fmt: skip
    return sha256_digest(b"".join(parts))


def bucket_digests(
    heads: Sequence[Sequence[Any]],
    versions: Sequence[Sequence[Any]],
    ends: tuple[Sequence[int], Sequence[int]],
) -> bytes:
    """The digest of every bucket, bucket_digest's of each (what Manifest.buckets holds
    when they match), from the columns of all of an environment's rows sorted by bucket
    (VaultStore.environment_rows, the value's nonce and tag joined): heads (bucket,
    lookup, secret id, record), versions (bucket, secret id, version, record, value
    tag); ``ends``: where each bucket's heads and versions end in them. Every record
    is hashed in one call, each row's part joined with the loop in C, then the parts of
    each bucket; an empty bucket's digest is EMPTY_BUCKET, with no hashing."""
    _, lookups, head_sids, head_records = heads
    _, sids, numbers, records, value_tags = versions
    hashed = sha256_digests([*head_records, *records])
    head_parts = list(map(b"".join, zip(
        repeat(_HEAD_START), pack_lengths(lookups), lookups,
        repeat(_BYTES), pack_lengths(head_sids), head_sids,
        repeat(_DIGEST_LENGTH), hashed[: len(head_records)],
    )))  # fmt: skip
    version_parts = list(map(b"".join, zip(
        repeat(_VERSION_START), pack_lengths(sids), sids,
        repeat(_NUMBER), map(pack_int, map(int, numbers)),
        repeat(_DIGEST_LENGTH), hashed[len(head_records) :],
        repeat(_BYTES), pack_lengths(value_tags), value_tags,
    )))  # fmt: skip
    filled, joined = [], []
    head_start = version_start = 0
    for bucket, head_end, version_end in zip(range(BUCKETS), *ends, strict=True):
        if head_end != head_start or version_end != version_start:
            filled.append(bucket)
            joined.append(
                _BUCKET_TAG
                + b"".join(head_parts[head_start:head_end])
                + b"".join(version_parts[version_start:version_end])
            )
        head_start, version_start = head_end, version_end
    digests = [EMPTY_BUCKET] * BUCKETS
    for bucket, digest in zip(filled, sha256_digests(joined), strict=True):
        digests[bucket] = digest
    return b"".join(digests)


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
        return self.with_buckets({bucket: digest})

    def with_buckets(self, digests: Mapping[int, bytes]) -> Manifest:
        """The next generation, with these buckets' new digests (a write transaction's)."""
        buckets = bytearray(self.buckets)
        for bucket, digest in digests.items():
            if len(digest) != DIGEST_BYTES:
                raise ValueError("a bucket digest has the wrong length")
            buckets[bucket * DIGEST_BYTES : (bucket + 1) * DIGEST_BYTES] = digest
        return Manifest(self.env, self.generation + 1, bytes(buckets))

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
