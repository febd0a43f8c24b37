"""The sealed records of one environment: AES-256-GCM under its value key, with
associated data (vault id, environment, record kind, secret id, version or lookup),
so a ciphertext copied to another environment, secret or version fails
authentication.

One :class:`RecordCipher` per environment key: the AESGCM object is built once
and the constant part of the associated data encoded once per kind, because an
``ls`` opens every head of the environment (100,000 at the scale bsecrets aims
for). The bytes are those of ``encode_aad(vault_id, env, kind, secret_id, tail)``.
A head's and a version's metadata are JSON (dump_record, load_record).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

from bsecrets import json_codec
from bsecrets.crypto.keys import Aead, encode_aad, pack_int, pack_length, pack_lengths
from bsecrets.errors import IntegrityError

KINDS = ("head", "version", "value")
_NUMBER = b"i" + pack_length(8)  # an int part: b"i", its length 8, then the value
_DECODE = json_codec.raw_decode
_ENCODE = json_codec.canonical


def dump_record(data: dict[str, Any]) -> bytes:
    """A head's or a version's metadata as sealed: compact ASCII JSON, keys sorted."""
    return _ENCODE(data).encode()


def load_record(plain: bytes) -> Any:
    """What dump_record wrote, once authenticated; decoded without what json.loads adds
    for any input (guessing the encoding of bytes, skipping white space): 3 us of
    every head an ls opens."""
    text = plain.decode()
    value, end = _DECODE(text)
    if end != len(text):
        raise IntegrityError("a record holds more than one JSON value")
    return value


class RecordCipher:
    """Seal and open the records of ``env`` under ``value_key``."""

    __slots__ = ("_aead", "_prefix", "value_key")

    def __init__(self, value_key: bytes, vault_id: bytes, env: str) -> None:
        self.value_key = value_key
        self._aead = Aead(value_key)
        self._prefix = {kind: encode_aad(vault_id, env, kind) for kind in KINDS}

    def aad(self, kind: str, secret_id: bytes, tail: int | bytes) -> bytes:
        """encode_aad's parts for the secret id and the lookup or version, written here."""
        end = (
            _NUMBER + pack_int(tail)
            if isinstance(tail, int)
            else b"b" + pack_length(len(tail)) + tail
        )
        return b"".join((self._prefix[kind], b"b", pack_length(len(secret_id)), secret_id, end))

    def seal(self, kind: str, secret_id: bytes, tail: int | bytes, data: bytes) -> bytes:
        return self._aead.seal(data, self.aad(kind, secret_id, tail))

    def open(self, kind: str, secret_id: bytes, tail: int | bytes, blob: bytes) -> bytes:
        """The plaintext, or IntegrityError (exit 5) naming the kind of record."""
        return self._aead.open(blob, self.aad(kind, secret_id, tail), f"a {kind} record")

    def open_heads(self, heads: Iterable[tuple[bytes, bytes, bytes]]) -> list[bytes]:
        """open("head", secret id, lookup, record) of each (lookup, secret id, record)
        (BucketRows.head_rows), in order, with the per-head loops in C (``ls`` opens
        every head of the environment); the error is open()'s for the first that fails."""
        columns = list(zip(*heads, strict=True))
        if not columns:
            return []
        lookups, sids, blobs = columns
        aads = list(map(b"".join, zip(
            repeat(self._prefix["head"] + b"b"), pack_lengths(sids), sids,
            repeat(b"b"), pack_lengths(lookups), lookups,
        )))  # fmt: skip
        return self._aead.open_each(blobs, aads, "a head record")

    def open_each(
        self, kind: str, secret_ids: Iterable[bytes], tails: Iterable[int], blobs: Sequence[bytes]
    ) -> list[bytes]:
        """open(kind, secret id, version, blob) of each, in order, with the loop in C (an
        export opens every current value); the error is open()'s for the first that fails."""
        aads = list(map(self.aad, repeat(kind), secret_ids, tails))
        return self._aead.open_each(blobs, aads, f"a {kind} record")

    def __repr__(self) -> str:
        return "RecordCipher(...)"
