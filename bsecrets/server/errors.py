"""The HTTP counterpart of the CLI's exit codes: one JSON shape for every error,
``{"error", "hint", "kind"}``, with a status from one table (docs/server.md)."""

from __future__ import annotations

from typing import Any

from bsecrets.errors import (
    BackendUnavailable,
    BsecretsError,
    Conflict,
    Denied,
    IntegrityError,
    NotFound,
    SessionInvalid,
    TokenExpired,
    TokenInvalid,
    UsageError,
    ValueTooLarge,
    VaultLocked,
    VersionConflict,
    WrongPassphrase,
)

# The most specific class first: the first match gives the status.
STATUS: tuple[tuple[type[BsecretsError], int], ...] = (
    (ValueTooLarge, 413),
    (UsageError, 400),
    (NotFound, 404),
    (TokenInvalid, 401),
    (TokenExpired, 401),
    (SessionInvalid, 401),
    (VaultLocked, 401),  # no credential at all
    (WrongPassphrase, 401),  # a sign-in with a wrong principal or passphrase
    (Denied, 403),
    (VersionConflict, 412),  # If-Match named another version
    (Conflict, 409),
    (IntegrityError, 500),
    (BackendUnavailable, 503),
)


def status_of(error: BsecretsError) -> int:
    return next((status for cls, status in STATUS if isinstance(error, cls)), 500)


def body_of(error: BsecretsError, hint: str | None) -> dict[str, Any]:
    """The JSON body: the error's message (never a value), its hint, its kind."""
    return {"error": error.message, "hint": hint or None, "kind": error.kind}
