"""What ``bsecrets doctor`` reports: one :class:`Finding` per check, each with a status,
an explanation (never a value), a hint and, when ``--fix`` repaired something, what it did
(docs/doctor.md)."""

from __future__ import annotations

from bsecrets.named_tuples import NamedTuple
from bsecrets.str_enums import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Finding(NamedTuple):
    check: str  # e.g. "permissions", "audit.verify", "backend.staging"
    status: Status
    detail: str  # the explanation; never a value
    hint: str | None = None  # what to do (a command where there is one)
    integrity: bool = False  # a FAIL that is an integrity problem: exit 5
    fixed: str | None = None  # what --fix did, if it did something
