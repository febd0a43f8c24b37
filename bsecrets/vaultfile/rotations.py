"""The state of each rotation (``bsecrets rotate``), kept in the local vault so that a
rotation killed at any step can be resumed or cancelled (services/rotation.py).

Table ``rotations(id, principal, lookup, in_flight, record)`` (created on first use):
``record`` is JSON (environment, name, strategy, step, the version it started from,
the pending value while there is one, times, reason, the last hook result) under
AES-256-GCM with a key derived from the private key of the principal that started
it, with the vault id, the id and that principal as associated data: a record opens
only for its principal, and one moved or edited fails authentication (exit 5).
``lookup`` finds the rotations of one secret without opening them (the environment's
name HMAC for a local environment, else a SHA-256 of vault id, environment and
name); ``in_flight`` says, unsealed, whether one has not ended (a rotation started
by another principal blocks a second one too); ``version``/``grace_until`` repeat, unsealed,
the version it wrote and the end of its overlap.

Table ``rotation_grace(lookup, version, previous, until)``: per secret, the version
the last graceful rotation made current, the version it replaced and the end of its
overlap: what ``NAME#previous`` reads, unsealed so any reader of the secret resolves
it. Table ``rotation_slots``: a blue-green secret's active slot and slot versions.
"""

from __future__ import annotations

import os
from typing import Any

from bsecrets.crypto.keys import encode_aad, sha256_digest
from bsecrets.errors import IntegrityError
from bsecrets.named_tuples import NamedTuple
from bsecrets.vaultfile.schema import blob, text
from bsecrets.vaultfile.sealed_records import SealedRecords
from bsecrets.vaultfile.vault import LocalVault

_TABLE = (
    "CREATE TABLE IF NOT EXISTS rotations (id TEXT PRIMARY KEY, principal TEXT NOT NULL,"
    " lookup BLOB NOT NULL, in_flight INTEGER NOT NULL, version INTEGER NOT NULL,"
    " grace_until TEXT NOT NULL, record BLOB NOT NULL)"
)
_SLOTS = (
    "CREATE TABLE IF NOT EXISTS rotation_slots (lookup BLOB PRIMARY KEY, active TEXT NOT NULL,"
    " blue INTEGER NOT NULL, green INTEGER NOT NULL)"
)
_GRACE = (
    "CREATE TABLE IF NOT EXISTS rotation_grace (lookup BLOB PRIMARY KEY,"
    " version INTEGER NOT NULL, previous INTEGER NOT NULL, until TEXT NOT NULL)"
)
SLOTS = ("blue", "green")
STEPS = ("created", "set", "tested", "finished", "failed", "cancelled")
IN_FLIGHT = ("created", "set", "tested", "failed")


class Rotation(NamedTuple):
    id: str
    env: str
    name: str
    strategy: str
    step: str  # STEPS
    base_version: int  # the current version when it started (0: none)
    pending: bytes | None  # the new value until it is current (then dropped)
    started_at: str
    updated_at: str
    by: str
    reason: str | None = None
    result: dict[str, Any] | None = None  # the last hook or step result (never a value)
    version: int | None = None  # the version the new value became
    grace_until: str | None = None  # graceful: the previous value readable until then
    emergency: bool = False  # rotate --emergency: earlier overlaps end at once
    staged: int | None = None  # the pending version the backend keeps (AWS: AWSPENDING)

    def __repr__(self) -> str:  # never the value
        return f"Rotation({self.id!r}, {self.env}/{self.name}, {self.step})"

    @property
    def in_flight(self) -> bool:
        return self.step in IN_FLIGHT

    def to_public(self) -> dict[str, Any]:
        """What status and --json show: everything but the value."""
        data = self._asdict()
        data.pop("pending")
        return data


def new_id() -> str:
    return os.urandom(6).hex()


class RotationStore:
    """The rotations of one open vault, as the unlocking principal sees them."""

    def __init__(self, vault: LocalVault) -> None:
        self.vault = vault
        self.store = vault.store
        self.sealed = SealedRecords(vault, "rotation")

    def lookup(self, env: str, name: str, local: bool) -> bytes:
        keys = self.vault.env_keys(env) if local else None
        if keys is not None:
            return keys.lookup(name)
        return sha256_digest(encode_aad("rotation-name", self.vault.vault_id, env, name))

    def put(self, rotation: Rotation, lookup: bytes) -> None:
        """Inside a write transaction: store (or replace) ``rotation``."""
        import base64  # here: a get that meets no rotation does not pay for it

        data = rotation._asdict()
        data["pending"] = (
            base64.b64encode(rotation.pending).decode() if rotation.pending is not None else None
        )
        record = self.sealed.seal(rotation.id, data)
        flags = (int(rotation.in_flight), rotation.version or 0, rotation.grace_until or "")
        row = (rotation.id, self.vault.principal, lookup, *flags, record)
        self.store.execute_write(_TABLE)
        self.store.execute_write(
            "INSERT OR REPLACE INTO rotations"
            " (id, principal, lookup, in_flight, version, grace_until, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            row,
        )

    def get(self, rotation_id: str) -> Rotation | None:
        rows = self.store.query_optional_table(
            "rotations", "SELECT principal, record FROM rotations WHERE id = ?", (rotation_id,)
        )
        if not rows:
            return None
        principal = text(rows[0][0])
        if principal != self.vault.principal:
            return None  # another principal's: it does not open here
        return self._open(rotation_id, principal, blob(rows[0][1]))

    def in_flight(self, lookup: bytes) -> list[tuple[str, str]]:
        """(id, principal) of the rotations of one secret that have not ended (the flag
        is not sealed: a rotation of another principal is seen, not opened)."""
        rows = self.store.query_optional_table(
            "rotations",
            "SELECT id, principal FROM rotations WHERE lookup = ? AND in_flight = 1 ORDER BY rowid",
            (lookup,),
        )
        return [(text(i), text(p)) for i, p in rows]

    def previous_in_grace(self, lookup: bytes, version: int, now: str) -> int | None:
        """The version a graceful rotation replaced, if it made ``version`` current and
        its overlap runs past ``now`` (ISO UTC strings compare as times): readable then
        as ``NAME#previous``. Unsealed, so any reader of the secret sees it."""
        rows = self.store.query_optional_table(
            "rotation_grace",
            "SELECT previous FROM rotation_grace WHERE lookup = ? AND version = ? AND until > ?",
            (lookup, version, now),
        )
        if not rows:
            return None
        if type(rows[0][0]) is not int:
            raise IntegrityError("a graceful rotation's record is damaged")
        return rows[0][0] if rows[0][0] >= 1 else None

    def set_grace(self, lookup: bytes, version: int, previous: int, until: str) -> None:
        """Inside a write transaction: ``previous`` stays readable until ``until`` while
        ``version`` is current."""
        self.store.execute_write(_GRACE)
        self.store.execute_write(
            "INSERT OR REPLACE INTO rotation_grace (lookup, version, previous, until)"
            " VALUES (?, ?, ?, ?)",
            (lookup, version, previous, until),
        )

    def slots(self, lookup: bytes) -> tuple[str, dict[str, int]] | None:
        """A blue-green secret's active slot and the version each slot holds; None if it
        was never rotated blue-green. Unsealed: versions only, for every reader."""
        rows = self.store.query_optional_table(
            "rotation_slots",
            "SELECT active, blue, green FROM rotation_slots WHERE lookup = ?",
            (lookup,),
        )
        if not rows:
            return None
        active, blue, green = rows[0]
        if active not in SLOTS or type(blue) is not int or type(green) is not int:
            raise IntegrityError("a blue-green record is damaged")
        return str(active), {"blue": blue, "green": green}

    def set_slots(self, lookup: bytes, active: str, versions: dict[str, int]) -> None:
        """Inside a write transaction."""
        self.store.execute_write(_SLOTS)
        self.store.execute_write(
            "INSERT OR REPLACE INTO rotation_slots (lookup, active, blue, green)"
            " VALUES (?, ?, ?, ?)",
            (lookup, active, versions["blue"], versions["green"]),
        )

    def end_overlaps(self, lookup: bytes) -> None:
        """Inside a write transaction: no earlier rotation of the secret keeps its
        previous value readable any longer (an emergency rotation)."""
        self.store.execute_write(_GRACE)
        self.store.execute_write("DELETE FROM rotation_grace WHERE lookup = ?", (lookup,))

    def mine(self) -> list[Rotation]:
        rows = self.store.query_optional_table(
            "rotations", "SELECT id, record FROM rotations WHERE principal = ? ORDER BY rowid",
            (self.vault.principal,),
        )  # fmt: skip
        return [self._open(text(i), self.vault.principal, blob(r)) for i, r in rows]

    def _open(self, rotation_id: str, principal: str, record: bytes) -> Rotation:
        import base64

        data = self.sealed.open(rotation_id, principal, record)
        try:
            pending = data["pending"]
            data["pending"] = base64.b64decode(pending) if pending is not None else None
            rotation = Rotation(**data)
        except (ValueError, KeyError, TypeError):
            raise IntegrityError("a rotation record is malformed") from None
        if rotation.id != rotation_id:
            raise IntegrityError("a rotation record was moved")
        return rotation
