"""Break-glass records in the local vault (services/break_glass.py, docs/break-glass.md).

Table ``break_glass(env, record)``: an environment's emergency setup: the emergency
public key, the custodians and threshold, the environment key sealed to the emergency
key (by itself), and each custodian's SLIP-39 share of the emergency private key
sealed to that custodian (by the emergency key). Each sealed blob's associated data
names the vault, the environment, the setup's generation, the threshold and the
emergency public key (a share also its custodian), so a record edited or a blob moved
to another environment, generation or custodian fails authentication (exit 5).

Table ``break_glass_requests(id, env, record)``: a request (who, why, for how long,
read or write) and what became of it. Its fields that matter are hashed
(:meth:`Request.digest`) into every approval's associated data: an approval is a
custodian's share re-sealed to the requester *for that request*, so a request edited
after it was approved, or an approval copied to another request, does not open.

Table ``break_glass_approvals(request, custodian, share)``: one row per custodian
and request (a custodian counts once however often it approves).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bsecrets.crypto.keys import encode_aad, sha256_digest
from bsecrets.errors import IntegrityError
from bsecrets.named_tuples import NamedTuple
from bsecrets.timeutil import iso, parse_iso
from bsecrets.vaultfile.schema import text
from bsecrets.vaultfile.vault import LocalVault

_TABLES = (
    "CREATE TABLE IF NOT EXISTS break_glass (env TEXT PRIMARY KEY, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS break_glass_requests (id TEXT PRIMARY KEY, env TEXT NOT NULL,"
    " record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS break_glass_approvals (request TEXT NOT NULL,"
    " custodian TEXT NOT NULL, share BLOB NOT NULL, PRIMARY KEY (request, custodian))",
)


class Setup(NamedTuple):
    env: str
    generation: int  # a new one at each setup or rekey
    public_key: str  # hex: the emergency public key
    custodians: list[str]
    threshold: int
    sealed_master: str  # hex: the environment key sealed to the emergency key
    shares: dict[str, str]  # custodian -> hex: its share sealed to it ("" if offline)
    by: str
    at: str
    used: bool = False  # a request was activated: rekey to make the shares worthless

    def master_context(self, vault_id: bytes) -> bytes:
        return encode_aad("break-glass-master", vault_id, self.env, self.generation,
                          self.threshold, bytes.fromhex(self.public_key))  # fmt: skip

    def share_context(self, vault_id: bytes, custodian: str) -> bytes:
        return encode_aad("break-glass-share", vault_id, self.env, self.generation,
                          self.threshold, bytes.fromhex(self.public_key), custodian)  # fmt: skip


class Request(NamedTuple):
    id: str
    env: str
    requester: str
    reason: str
    ttl_seconds: int
    write: bool
    created_at: str
    generation: int  # of the setup it asks to open
    state: str = "requested"  # requested, active, revoked
    activated_at: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None
    review: dict[str, Any] | None = None  # {by, at, notes}
    override: dict[str, Any] | None = None  # {by, reason}: requested while one was unreviewed

    @property
    def expires_at(self) -> str:
        return iso(parse_iso(self.created_at) + timedelta(seconds=self.ttl_seconds))

    def digest(self) -> bytes:
        """What an approval is bound to: every field the custodian approved."""
        return sha256_digest(encode_aad("break-glass-request", self.id, self.env,
                                        self.requester, self.reason, self.ttl_seconds,
                                        int(self.write), self.created_at,
                                        self.generation))  # fmt: skip

    def approval_context(self, vault_id: bytes, custodian: str) -> bytes:
        return encode_aad("break-glass-approval", vault_id, self.digest(), custodian)


class BreakGlassStore:
    def __init__(self, vault: LocalVault) -> None:
        self.store = vault.store

    def _tables(self) -> None:
        for sql in _TABLES:
            self.store.execute_write(sql)

    # --- setups ---------------------------------------------------------------------

    def setup(self, env: str) -> Setup | None:
        rows = self.store.query_optional_table(
            "break_glass", "SELECT record FROM break_glass WHERE env = ?", (env,)
        )
        if not rows:
            return None
        found: Setup = _load(Setup, rows[0][0], "a break-glass setup")
        if found.env != env:
            raise IntegrityError("a break-glass setup was moved to another environment")
        return found

    def setups(self) -> list[Setup]:
        rows = self.store.query_optional_table(
            "break_glass", "SELECT record FROM break_glass ORDER BY env"
        )
        return [_load(Setup, row[0], "a break-glass setup") for row in rows]

    def put_setup(self, setup: Setup) -> None:
        """Inside a write transaction."""
        self._tables()
        self.store.execute_write(
            "INSERT OR REPLACE INTO break_glass (env, record) VALUES (?, ?)",
            (setup.env, json.dumps(setup._asdict())),
        )

    # --- requests -------------------------------------------------------------------

    def request(self, request_id: str) -> Request | None:
        rows = self.store.query_optional_table(
            "break_glass_requests", "SELECT record FROM break_glass_requests WHERE id = ?",
            (request_id,),
        )  # fmt: skip
        if not rows:
            return None
        found: Request = _load(Request, rows[0][0], "a break-glass request")
        if found.id != request_id:
            raise IntegrityError("a break-glass request was moved")
        return found

    def requests(self, env: str | None = None) -> list[Request]:
        sql = "SELECT record FROM break_glass_requests"
        rows = self.store.query_optional_table(
            "break_glass_requests",
            sql + (" WHERE env = ? ORDER BY rowid" if env else " ORDER BY rowid"),
            (env,) if env else (),
        )
        return [_load(Request, row[0], "a break-glass request") for row in rows]

    def put_request(self, request: Request) -> None:
        """Inside a write transaction."""
        self._tables()
        self.store.execute_write(
            "INSERT OR REPLACE INTO break_glass_requests (id, env, record) VALUES (?, ?, ?)",
            (request.id, request.env, json.dumps(request._asdict())),
        )

    # --- approvals ------------------------------------------------------------------

    def approvals(self, request_id: str) -> dict[str, bytes]:
        rows = self.store.query_optional_table(
            "break_glass_approvals",
            "SELECT custodian, share FROM break_glass_approvals WHERE request = ?"
            " ORDER BY custodian",
            (request_id,),
        )
        return {text(c): bytes(s) for c, s in rows}

    def put_approval(self, request_id: str, custodian: str, sealed: bytes) -> None:
        """Inside a write transaction: one per custodian and request (replaced)."""
        self._tables()
        self.store.execute_write(
            "INSERT OR REPLACE INTO break_glass_approvals (request, custodian, share)"
            " VALUES (?, ?, ?)",
            (request_id, custodian, sealed),
        )


def _load(kind: Any, raw: Any, what: str) -> Any:
    try:
        return kind(**json.loads(text(raw)))
    except (ValueError, TypeError):
        raise IntegrityError(f"{what} is malformed (edited outside bsecrets?)") from None
