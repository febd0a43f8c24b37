"""A small sealed cache in the local vault, for what remote backends must not
fetch on every command: login tokens (Vault), assumed-role credentials (AWS).

Entries live in their own table, AES-256-GCM under the key of an internal
environment ("__cache__", never a profile environment), bound to their
namespace and key; each has an expiry, checked on read. The cache is an
optimisation: when the local vault cannot be opened without asking (no
session, passphrase or keyring), it is simply not used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bsecrets.crypto.keys import aead_open, aead_seal, encode_aad
from bsecrets.errors import BsecretsError, Denied, IntegrityError
from bsecrets.timeutil import Clock, iso, parse_iso
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.vault import LocalVault

CACHE_ENV = "__cache__"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS caches (ns TEXT, key TEXT, record BLOB, PRIMARY KEY (ns, key))"
)


class SealedCache:
    def __init__(self, vault: LocalVault, clock: Clock) -> None:
        self.vault = vault
        self.clock = clock

    @classmethod
    def open_quietly(cls, open_vault: Callable[[], LocalVault], clock: Clock) -> SealedCache | None:
        """A cache if the local vault opens without a prompt as its owner; None otherwise
        (another principal holds no key to the cache: its remote logins are not kept)."""
        try:
            vault = open_vault()
            if vault.principal != OWNER or not vault.can_unlock_quietly():
                return None
            return cls(vault, clock)
        except BsecretsError:
            return None

    def _aad(self, ns: str, key: str) -> bytes:
        return encode_aad(self.vault.vault_id, CACHE_ENV, "cache", ns, key)

    def get(self, ns: str, key: str) -> dict[str, Any] | None:
        """The entry's data if present and not expired; None otherwise (or on any doubt)."""
        store = self.vault.store
        try:
            with store.read():
                keys = self.vault.env_keys(CACHE_ENV)
                rows = store.query_optional_table(
                    "caches", "SELECT record FROM caches WHERE ns = ? AND key = ?", (ns, key)
                )
            if keys is None or not rows:
                return None
            plain = aead_open(
                keys.value_key, bytes(rows[0][0]), self._aad(ns, key), "a cache entry"
            )
            entry = json.loads(plain)
            if parse_iso(entry["expires_at"]) <= self.clock():
                return None
            return dict(entry["data"])
        except (IntegrityError, Denied, ValueError, KeyError, TypeError):
            return None

    def put(self, ns: str, key: str, data: dict[str, Any], expires_at: datetime) -> None:
        store = self.vault.store
        with store.write():
            keys = self.vault.env_keys(CACHE_ENV, create=True)
            assert keys is not None
            plain = json.dumps({"expires_at": iso(expires_at), "data": data}).encode()
            record = aead_seal(keys.value_key, plain, self._aad(ns, key))
            store.execute_write(_SCHEMA)
            store.execute_write(
                "INSERT OR REPLACE INTO caches (ns, key, record) VALUES (?, ?, ?)",
                (ns, key, record),
            )

    def delete(self, ns: str, key: str) -> None:
        with self.vault.store.write():
            self.vault.store.execute_write(_SCHEMA)
            self.vault.store.execute_write("DELETE FROM caches WHERE ns = ? AND key = ?", (ns, key))
