"""One environment's buckets as the local adapter reads and writes them (the
manifest and its buckets: vaultfile/manifest.py).

:class:`BucketRows` is one bucket's rows once their digest matched the manifest,
indexed for the reads that follow (a head by its lookup, a secret's versions by
version): every answer comes from these rows, never from a second query.

:class:`PendingBuckets` is a write transaction's view of the environment. The
rows of each bucket it read stay verified for the rest of the transaction, and
its own writes are applied to them as the store applies them; the buckets it
changed get their new digests in the manifest once, when the outermost write
ends (one put, or every put of an import). Before, every put of an import
re-read and re-hashed its bucket three times, so an import was quadratic
(bench/README.md, "Where the time goes").
"""

from __future__ import annotations

from typing import Any

from bsecrets.crypto.keys import EnvironmentKeys

Versions = dict[int, tuple[bytes, bytes]]  # version -> (record, the value's nonce + GCM tag)


def value_tag(sealed_value: bytes) -> bytes:
    """What a bucket's digest covers of a sealed value (VaultStore.bucket_rows): its
    nonce and GCM tag, so that a 1 MiB value is not hashed on every read."""
    return sealed_value[:12] + sealed_value[-16:]


class BucketRows:
    """A bucket's heads (lookup -> (secret id, record)) and versions (secret id ->
    version -> (record, value tag)), as verified against the manifest. Each is indexed
    when first asked for: an ls reads the heads' rows as they came (head_rows), a get
    looks one head up."""

    __slots__ = ("_head_rows", "_heads", "_rows", "_versions")

    def __init__(self, heads: list[tuple[Any, ...]], versions: list[tuple[Any, ...]]) -> None:
        """From VaultStore.bucket_rows, after their digest was checked."""
        self._head_rows = heads
        self._heads: dict[bytes, tuple[bytes, bytes]] | None = None
        self._rows = versions
        self._versions: dict[bytes, Versions] | None = None

    @property
    def heads(self) -> dict[bytes, tuple[bytes, bytes]]:
        if self._heads is None:
            self._heads = {lookup: (sid, record) for lookup, sid, record in self._head_rows}
            self._head_rows = []
        return self._heads

    def head_rows(self) -> list[tuple[Any, ...]]:
        """(lookup, secret id, record) of each head, in the order of ``heads``."""
        if self._heads is None:
            return self._head_rows
        return [(lookup, sid, record) for lookup, (sid, record) in self._heads.items()]

    @property
    def versions(self) -> dict[bytes, Versions]:
        if self._versions is None:
            by_secret: dict[bytes, Versions] = {}
            for secret_id, version, record, tag in self._rows:
                by_secret.setdefault(secret_id, {})[version] = (record, tag)
            self._versions, self._rows = by_secret, []
        return self._versions

    def versions_of(self, secret_id: bytes) -> Versions:
        return self.versions.get(secret_id, {})

    # --- a write transaction's own changes, each after the store made it ----

    def set_head(self, lookup: bytes, secret_id: bytes, record: bytes) -> None:
        self.heads[lookup] = (secret_id, record)

    def add_version(self, secret_id: bytes, version: int, record: bytes, value: bytes) -> None:
        self.versions.setdefault(secret_id, {})[version] = (record, value_tag(value))

    def drop_secret(self, lookup: bytes, secret_id: bytes) -> None:
        self.heads.pop(lookup, None)
        self.versions.pop(secret_id, None)


class PendingBuckets:
    """The buckets of one environment that a write transaction (``serial``: the store's
    tx_serial) has read and changed, and the keys it wrote them with."""

    __slots__ = ("changed", "keys", "rows", "serial")

    def __init__(self, serial: int) -> None:
        self.serial = serial
        self.rows: dict[int, BucketRows] = {}
        self.changed: set[int] = set()
        self.keys: EnvironmentKeys | None = None

    def change(self, keys: EnvironmentKeys, bucket: int) -> BucketRows:
        """The rows of ``bucket`` (read in this transaction) that a write is changing."""
        if self.keys is not None and self.keys != keys:
            raise RuntimeError("one write transaction with two keys of an environment")
        self.keys = keys
        self.changed.add(bucket)
        return self.rows[bucket]
