"""Each principal's second factor: its TOTP seed and its attempt state, sealed.

Table ``mfa_factors(principal, record)`` (created on first use): ``record`` is
JSON (seed, last accepted step, failures, lockout end, enrolment time) under
AES-256-GCM with a key derived (HKDF) from the principal's own private key,
with the vault id and the principal as associated data. So the seed opens only
with that principal's key, a record copied to another principal fails
authentication (exit 5), and the stored state is the one bsecrets wrote.

What it does not stop (docs/access.md): whoever holds the file and the
principal's key can put back an older record (forgetting failures and replay
protection) or read the seed; on the local vault MFA is enforced by code.
"""

from __future__ import annotations

import json
from datetime import datetime

from bsecrets.crypto.keys import aead_open, aead_seal, encode_aad, hkdf
from bsecrets.crypto.second_factor import FactorState
from bsecrets.errors import IntegrityError
from bsecrets.named_tuples import NamedTuple
from bsecrets.timeutil import iso, parse_iso
from bsecrets.vaultfile.schema import blob
from bsecrets.vaultfile.vault import LocalVault

_TABLE = "CREATE TABLE IF NOT EXISTS mfa_factors (principal TEXT PRIMARY KEY, record BLOB NOT NULL)"


class Factor(NamedTuple):
    seed: bytes
    state: FactorState
    enrolled_at: str
    clears_seen: int = 0  # the admin clears (access policy) already applied

    def __repr__(self) -> str:  # never the seed
        return f"Factor(enrolled_at={self.enrolled_at!r}, state={self.state!r})"


class FactorStore:
    """The second factor of ``principal`` (the one whose key the vault was unlocked with);
    ``pending``: the one enrolled and not yet confirmed with a first code, kept apart
    so that the factor in use stays in use until then."""

    def __init__(self, vault: LocalVault, principal: str, *, pending: bool = False) -> None:
        self.vault = vault
        self.store = vault.store
        self.principal = principal
        self._row = f"{principal}/pending" if pending else principal

    def _key(self) -> bytes:
        return hkdf(self.vault.private_key(), "bsecrets/v1/mfa-factor", salt=self.vault.vault_id)

    def _aad(self) -> bytes:
        return encode_aad("mfa-factor", self.vault.vault_id, self._row)

    def get(self) -> Factor | None:
        rows = self.store.query_optional_table(
            "mfa_factors", "SELECT record FROM mfa_factors WHERE principal = ?", (self._row,)
        )
        if not rows:
            return None
        plain = aead_open(self._key(), blob(rows[0][0]), self._aad(), "the MFA record")
        try:
            data = json.loads(plain)
            locked = data["locked_until"]
            state = FactorState(
                int(data["last_step"]),
                int(data["failures"]),
                parse_iso(locked) if locked else None,
            )
            seen = int(data.get("clears_seen", 0))
            return Factor(bytes.fromhex(data["seed"]), state, str(data["enrolled_at"]), seen)
        except (ValueError, KeyError, TypeError):
            raise IntegrityError("the MFA record is malformed") from None

    def put(self, factor: Factor) -> None:
        """Store ``factor`` inside the caller's write transaction."""
        self.store.execute_write(_TABLE)
        locked: datetime | None = factor.state.locked_until
        data = {
            "seed": factor.seed.hex(),
            "last_step": factor.state.last_step,
            "failures": factor.state.failures,
            "locked_until": iso(locked) if locked else None,
            "enrolled_at": factor.enrolled_at,
            "clears_seen": factor.clears_seen,
        }
        record = aead_seal(self._key(), json.dumps(data).encode(), self._aad())
        self.store.execute_write(
            "INSERT OR REPLACE INTO mfa_factors (principal, record) VALUES (?, ?)",
            (self._row, record),
        )

    def remove(self) -> None:
        """Inside the caller's write transaction."""
        self.store.execute_write(_TABLE)
        self.store.execute_write("DELETE FROM mfa_factors WHERE principal = ?", (self._row,))
