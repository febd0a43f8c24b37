"""The state of each promotion into a remote environment (``bsecrets promote``), kept
in the local vault so that one killed midway is finished (``--resume``) or undone
(``--abort``), never left silently half-promoted (services/promotion.py).

Table ``promotions(id, principal, target, in_flight, record)`` (created on first use):
``record`` holds names and version numbers, never a value, sealed for the principal
that started it (vaultfile/sealed_records.py); ``target`` and ``in_flight`` are
unsealed so that a promotion of another principal into the same environment is seen.
A promotion into the local vault needs no record: it is one SQLite transaction.
"""

from __future__ import annotations

import json
from typing import Any

from bsecrets.errors import IntegrityError
from bsecrets.named_tuples import NamedTuple
from bsecrets.vaultfile.schema import blob, text
from bsecrets.vaultfile.sealed_records import SealedRecords
from bsecrets.vaultfile.vault import LocalVault

_TABLE = (
    "CREATE TABLE IF NOT EXISTS promotions (id TEXT PRIMARY KEY, principal TEXT NOT NULL,"
    " target TEXT NOT NULL, in_flight INTEGER NOT NULL, record BLOB NOT NULL)"
)
STEPS = ("writing", "done", "undone", "failed")  # failed: an undo that did not complete


class Item(NamedTuple):
    """One secret of a promotion."""

    source: str  # its name in the source environment
    target: str  # its name in the target (renamed or the same)
    action: str  # "add" or "change"
    source_version: int  # the version promoted
    target_version: int  # the target's current version the plan saw (0: none)
    written: int | None = None  # the target version the promotion wrote
    undone: bool = False  # put back to target_version (an add: purged)


class Promotion(NamedTuple):
    id: str
    source: str
    target: str
    step: str  # STEPS
    items: tuple[Item, ...]
    by: str
    started_at: str
    updated_at: str
    reason: str | None = None
    result: dict[str, Any] | None = None  # what stopped it (never a value)

    @property
    def in_flight(self) -> bool:
        return self.step in ("writing", "failed")

    def to_public(self) -> dict[str, Any]:
        data = self._asdict()
        data["items"] = [item._asdict() for item in self.items]
        return data


class PromotionStore:
    """The promotions of one open vault, as the unlocking principal sees them."""

    def __init__(self, vault: LocalVault) -> None:
        self.vault = vault
        self.store = vault.store
        self.sealed = SealedRecords(vault, "promotion")

    def put(self, promotion: Promotion) -> None:
        """Inside a write transaction: store (or replace) ``promotion``."""
        record = self.sealed.seal(promotion.id, promotion.to_public())
        row = (promotion.id, self.vault.principal, promotion.target, int(promotion.in_flight))
        self.store.execute_write(_TABLE)
        self.store.execute_write(
            "INSERT OR REPLACE INTO promotions (id, principal, target, in_flight, record)"
            " VALUES (?, ?, ?, ?, ?)",
            (*row, record),
        )

    def get(self, promotion_id: str) -> Promotion | None:
        rows = self.store.query_optional_table(
            "promotions", "SELECT principal, record FROM promotions WHERE id = ?", (promotion_id,)
        )
        if not rows or text(rows[0][0]) != self.vault.principal:
            return None  # none, or another principal's: it does not open here
        return self._open(promotion_id, blob(rows[0][1]))

    def in_flight(self, target: str) -> list[tuple[str, str]]:
        """(id, principal) of the promotions into ``target`` that have not ended."""
        rows = self.store.query_optional_table(
            "promotions",
            "SELECT id, principal FROM promotions WHERE target = ? AND in_flight = 1"
            " ORDER BY rowid",
            (target,),
        )
        return [(text(i), text(p)) for i, p in rows]

    def _open(self, promotion_id: str, record: bytes) -> Promotion:
        data = self.sealed.open(promotion_id, self.vault.principal, record)
        try:
            data["items"] = tuple(Item(**item) for item in data["items"])
            promotion = Promotion(**data)
        except (KeyError, TypeError):
            raise IntegrityError("a promotion record is malformed") from None
        if promotion.id != promotion_id:
            raise IntegrityError("a promotion record was moved")
        return promotion


# --- requests for a second admin's approval (env protect --promote-approval) ----------

_REQUESTS = (
    "CREATE TABLE IF NOT EXISTS promotion_requests (id TEXT PRIMARY KEY,"
    " target TEXT NOT NULL, state TEXT NOT NULL, request TEXT NOT NULL)"
)


class Request(NamedTuple):
    """A promotion asked for by one principal, to be approved (and run) by another
    admin of the target. Names and versions only, readable by every principal of the
    vault (unsealed: the approver is another principal); the approver plans again and
    runs only if the plan is still this one."""

    id: str
    source: str
    target: str
    route: dict[str, Any]  # names, rename, never (the route the plan was made with)
    only: list[str]
    items: list[dict[str, Any]]  # the plan's writes: source, target, action, versions
    by: str
    at: str
    reason: str | None = None
    state: str = "requested"  # requested, approved
    approved_by: str | None = None
    approved_at: str | None = None
    promotion: str | None = None  # the id of the promotion the approval ran


class RequestStore:
    def __init__(self, vault: LocalVault) -> None:
        self.store = vault.store

    def put(self, request: Request) -> None:
        """Inside a write transaction."""
        self.store.execute_write(_REQUESTS)
        self.store.execute_write(
            "INSERT OR REPLACE INTO promotion_requests (id, target, state, request)"
            " VALUES (?, ?, ?, ?)",
            (request.id, request.target, request.state, json.dumps(request._asdict())),
        )

    def get(self, request_id: str) -> Request | None:
        rows = self.store.query_optional_table(
            "promotion_requests", "SELECT request FROM promotion_requests WHERE id = ?",
            (request_id,),
        )  # fmt: skip
        if not rows:
            return None
        try:
            request = Request(**json.loads(text(rows[0][0])))
        except (ValueError, TypeError):
            raise IntegrityError("a promotion request is malformed") from None
        if request.id != request_id:
            raise IntegrityError("a promotion request was moved")
        return request
