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

:class:`ReadSnapshot` is the same for reads: the file cannot change under a read
transaction, so each bucket, and the manifest with its witness, is read and
checked once in it, however many secrets it reads (``exec``'s 100 gets used to
verify a bucket and query the manifest again for each), and the next read
transaction keeps them while SQLite's data_version says that no other connection
has committed since and this one has written no manifest (``exec`` lists the
environment, then reads its secrets).

:func:`verified_buckets` reads and checks every bucket of a small environment at
once (a count, two statements, the digests compared together), for a snapshot to
keep (``ls``, ``export``, ``exec``'s listing); anything that does not check leaves
the read to go bucket by bucket, as before, for its error (bench/README.md, "Every
bucket at once").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import accumulate, repeat
from operator import add
from typing import TYPE_CHECKING, Any

from bsecrets.backends.local.records import RecordCipher, load_record
from bsecrets.crypto.keys import EnvironmentKeys
from bsecrets.errors import IntegrityError
from bsecrets.vaultfile.manifest import BUCKETS, Manifest, bucket_digests

if TYPE_CHECKING:
    from bsecrets.vaultfile.store import VaultStore

# the rows a read snapshot keeps, at most (each a few hundred bytes with its objects)
KEPT_ROWS = 10_000
# Reading and checking a bucket costs about as much as ROWS_A_BUCKET more rows read and
# checked at once (verified_buckets; at 100 and 1,000 secrets: ~11 us a bucket, ~2 us
# a row, bench/README.md "Every bucket at once")
ROWS_A_BUCKET = 5
Versions = dict[int, tuple[bytes, bytes]]  # version -> (record, the value's nonce + GCM tag)


def value_tag(sealed_value: bytes) -> bytes:
    """What a bucket's digest covers of a sealed value (VaultStore.bucket_rows): its
    nonce and GCM tag, so that a 1 MiB value is not hashed on every read."""
    return sealed_value[:12] + sealed_value[-16:]


def versions_checked(versions: Versions, current: int) -> Versions:
    """A secret's verified version rows, if they are exactly 1..``current`` (its head's);
    else IntegrityError (exit 5)."""
    if sorted(versions) != list(range(1, current + 1)):
        raise IntegrityError("a secret's versions do not match its record")
    return versions


def row_checked(row: tuple[bytes, bytes] | None, verified: tuple[bytes, bytes]) -> bytes:
    """The sealed value of a version row read by its key (record, value), if it is the row
    its bucket's digest covered (``verified``: record, value tag); else IntegrityError."""
    if row is None or row[0] != verified[0] or value_tag(row[1]) != verified[1]:
        raise IntegrityError("a version row does not match the manifest")
    return row[1]


def read_version(
    store: VaultStore,
    env: str,
    records: RecordCipher,
    secret_id: bytes,
    version: int,
    verified: tuple[bytes, bytes],
) -> tuple[dict[str, Any], bytes]:
    """(metadata, value) of one version: its row read by its key (row_checked against
    ``verified``, its bucket's), both records opened."""
    sealed = row_checked(store.version(env, secret_id, version), verified)
    meta = load_record(records.open("version", secret_id, version, verified[0]))
    return meta, records.open("value", secret_id, version, sealed)


def verified_buckets(
    store: VaultStore, env: str, manifest: Manifest, limit: int
) -> tuple[list[BucketRows], int] | None:
    """Every bucket's rows of an environment of at most ``limit`` rows, and how many: all
    read at once (VaultStore.environment_rows) and all their digests checked against
    ``manifest`` at once. None when the environment is larger, or when anything does not
    check (a value's type, a bucket's digest): the caller reads bucket by bucket then, as
    before, and so meets the same error in the same order."""
    try:
        read = store.environment_rows(env, limit)
    except IntegrityError:  # a value of the wrong type
        return None
    if read is None:
        return None
    heads, (buckets, sids, numbers, records, nonces, tags) = read
    head_ends, version_ends = _ends(heads[0]), _ends(buckets)
    if head_ends is None or version_ends is None:
        return None
    value_tags = list(map(add, nonces, tags))
    versions = (buckets, sids, numbers, records, value_tags)
    if bucket_digests(heads, versions, (head_ends, version_ends)) != manifest.buckets:
        return None
    head_rows = list(zip(*heads[1:], strict=True))
    version_rows = list(zip(*versions[1:], strict=True))
    out, head_start, version_start = [], 0, 0
    for head_end, version_end in zip(head_ends, version_ends, strict=True):
        out.append(
            BucketRows(head_rows[head_start:head_end], version_rows[version_start:version_end])
        )
        head_start, version_start = head_end, version_end
    return out, len(head_rows) + len(version_rows)


def _ends(buckets: Sequence[int]) -> list[int] | None:
    """Where each bucket's rows end in ``buckets``, a sorted column of ints; None when one
    is not a bucket (the bucket-by-bucket read does not see it)."""
    if buckets and not 0 <= buckets[0] <= buckets[-1] < BUCKETS:
        return None
    counts = Counter(buckets)
    return list(accumulate(map(counts.get, range(BUCKETS), repeat(0))))


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


class ReadSnapshot:
    """The buckets a read transaction (``serial``: the store's tx_serial) verified with
    ``keys``, and the manifest they were checked against (``witnessed``: and against the
    audit chain). ``mark``: the file's data_version and the store's manifest_writes
    when it began. The next read transaction reuses it while its mark is the same (no
    other connection committed, and this one wrote no manifest: every change of a
    secret's rows writes one). It holds at most KEPT_ROWS rows, so that reading a large
    environment (ls, export, verify of 100,000 secrets) holds no more than that beside
    the bucket it reads, and a long-lived process (the server) does not keep one."""

    __slots__ = ("keys", "manifest", "mark", "rows", "serial", "size", "witnessed")

    def __init__(self, mark: tuple[int, int]) -> None:
        self.mark = mark
        self.serial = -1
        self.keys: EnvironmentKeys | None = None
        self.manifest: Manifest | None = None
        self.witnessed = False
        self.rows: dict[int, BucketRows] = {}
        self.size = 0  # rows held

    def manifest_for(self, keys: EnvironmentKeys, *, witnessed: bool) -> Manifest | None:
        """The manifest this snapshot checked with ``keys`` (and the witness, if asked),
        None if it has not yet."""
        if self.keys != keys:  # our own keys: no timing
            self.keys, self.manifest, self.witnessed, self.rows = keys, None, False, {}
            self.size = 0
        if witnessed and not self.witnessed:
            return None
        return self.manifest

    def checked(self, manifest: Manifest, *, witnessed: bool) -> None:
        self.manifest = manifest
        self.witnessed = self.witnessed or witnessed

    def holds(
        self, store: VaultStore, env: str, manifest: Manifest, wanted: set[int] | None
    ) -> bool:
        """Whether it holds the rows of every bucket ``wanted`` (None: of all), once it
        has read and checked every bucket of the environment at once (verified_buckets)
        if that costs less than reading the ones it lacks one by one: the environment
        has at most KEPT_ROWS rows, and at most ROWS_A_BUCKET a bucket lacking when
        only some are wanted (exec's reads after its listing lack none)."""
        missing = BUCKETS - len(self.rows) if wanted is None else len(wanted - self.rows.keys())
        if not missing:
            return True
        limit = KEPT_ROWS if wanted is None else min(KEPT_ROWS, missing * ROWS_A_BUCKET)
        read = verified_buckets(store, env, manifest, limit)
        if read is None:
            return False
        self.rows, self.size = dict(enumerate(read[0])), read[1]
        return True

    def keep(self, bucket: int, rows: BucketRows, size: int) -> None:
        """Keeps ``rows`` (``size`` rows) while it holds at most KEPT_ROWS; past that a
        bucket is read and checked each time, as outside a snapshot."""
        if self.size + size <= KEPT_ROWS:
            self.rows[bucket] = rows
            self.size += size
