"""Records a principal keeps in the local vault for itself: JSON under AES-256-GCM with
a key derived from that principal's private key, with the vault id, the record's kind,
its id and the principal as associated data. A record opens only for its principal;
one moved to another id or principal, or edited, fails authentication (exit 5).
Used by rotations (vaultfile/rotations.py) and promotions (vaultfile/promotions.py)."""

from __future__ import annotations

import json
from typing import Any

from bsecrets.crypto.keys import aead_open, aead_seal, encode_aad, hkdf
from bsecrets.errors import IntegrityError
from bsecrets.vaultfile.vault import LocalVault


class SealedRecords:
    def __init__(self, vault: LocalVault, kind: str) -> None:
        self.vault = vault
        self.kind = kind

    def _key(self) -> bytes:
        return hkdf(self.vault.private_key(), f"bsecrets/v1/{self.kind}", salt=self.vault.vault_id)

    def _aad(self, record_id: str, principal: str) -> bytes:
        return encode_aad(self.kind, self.vault.vault_id, record_id, principal)

    def seal(self, record_id: str, data: dict[str, Any]) -> bytes:
        """``data`` sealed for the unlocking principal."""
        plain = json.dumps(data).encode()
        return aead_seal(self._key(), plain, self._aad(record_id, self.vault.principal))

    def open(self, record_id: str, principal: str, record: bytes) -> dict[str, Any]:
        """The data of a record sealed by ``principal`` (the unlocking one)."""
        plain = aead_open(self._key(), record, self._aad(record_id, principal), f"a {self.kind}")
        try:
            data = json.loads(plain)
        except ValueError:
            raise IntegrityError(f"a {self.kind} record is malformed") from None
        if not isinstance(data, dict):
            raise IntegrityError(f"a {self.kind} record is malformed")
        return data
