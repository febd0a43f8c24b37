"""The exception tree of bsecrets: what went wrong, as a class with a stable
``kind`` and, where one helps, a hint that says what to do next.

This module is a leaf: it imports nothing from bsecrets, so every layer may
raise and catch these. It knows nothing of a front end either: the exit code of
each class, and the hints that name a bsecrets command or option, belong to the
command line (``bsecrets.cli.exit_codes``, ``bsecrets.cli.hints``), so an SDK or
a server can give the same errors its own meaning.

Backends translate their own errors into these at their boundary
(``raise SecretNotFound(...) from exc``); nothing from sqlite3, hvac or botocore
reaches the services or the CLI.

Messages never contain a secret value.
"""

from __future__ import annotations

from typing import Any, ClassVar


class NextStep:
    """What the user can do next, as an action and its arguments rather than words
    (``NextStep("restore", name="db/pw")``): each front end words it its own way
    (the command line: ``bsecrets.cli.hints.STEPS``), so no layer below it has to
    name a command or an option. Compared by value."""

    __slots__ = ("action", "args")

    def __init__(self, action: str, **args: str | int) -> None:
        self.action = action
        self.args: dict[str, str | int] = args

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NextStep) and (self.action, self.args) == (
            other.action,
            other.args,
        )

    def __hash__(self) -> int:
        return hash((self.action, tuple(sorted(self.args.items()))))

    def __repr__(self) -> str:
        args = "".join(f", {key}={value!r}" for key, value in self.args.items())
        return f"NextStep({self.action!r}{args})"


class BsecretsError(Exception):
    """Base of every error bsecrets reports to a user.

    ``kind`` is part of the output contract (``"kind"`` in JSON errors): every
    subclass must name its own, so renaming a class cannot change it silently.
    ``hint`` is the hint given where the error was raised, else the class's
    ``default_hint``, else None (a front end may then add its own); it names no
    command. ``step``, where one helps, is the next step the user can take, for
    the front end to word (it may combine it with ``hint``).
    """

    kind: ClassVar[str] = "bsecrets_error"
    default_hint: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            raise TypeError(f"{cls.__qualname__} must set its own kind (a stable snake_case name)")

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        step: NextStep | None = None,
        applied: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.step = step
        # For a failed write: whether it took effect anyway, "yes", "no" or "unknown"
        # (None: not a write), so a script knows whether to retry.
        self.applied = applied

    def __str__(self) -> str:
        return self.message


# --- usage: the request itself is wrong ---------------------------------------


class UsageError(BsecretsError):
    kind = "usage_error"


class ClientClosed(UsageError):
    """An SDK ``Client`` used after ``close()`` (or its ``with`` block)."""

    kind = "client_closed"


class InvalidName(UsageError):
    kind = "invalid_name"
    default_hint = (
        "names are 1 to 255 characters of A-Z a-z 0-9 _ . / -, not starting with '/' or '.'"
    )


class ValueTooLarge(UsageError):
    kind = "value_too_large"


class EmptyValue(UsageError):
    """An empty value without ``allow_empty``: refused, nothing stored."""

    kind = "empty_value"


class ConfirmationNeeded(UsageError):
    """A guarded operation without what it must be given: --reason, or --yes when
    there is no terminal to ask on."""

    kind = "confirmation_needed"


class ProfileError(UsageError):
    """A profile that cannot be used; the message names file, line and key path."""

    kind = "profile_error"

    def __init__(
        self,
        path: str,
        line: int | None,
        key_path: str,
        problem: str,
        *,
        hint: str | None = None,
        step: NextStep | None = None,
    ) -> None:
        where = f"{path}:{line}" if line else path
        key = f"{key_path}: " if key_path else ""
        super().__init__(f"{where}: {key}{problem}", hint=hint, step=step)
        self.path = path
        self.line = line
        self.key_path = key_path
        self.problem = problem


# --- not found ----------------------------------------------------------------


class NotFound(BsecretsError):
    kind = "not_found"


class RotationNotFound(NotFound):
    kind = "rotation_not_found"


class BreakGlassNotFound(NotFound):
    kind = "break_glass_not_found"


class PromotionNotFound(NotFound):
    kind = "promotion_not_found"


class PrincipalUnknown(NotFound):
    kind = "principal_not_found"


class SecretNotFound(NotFound):
    kind = "secret_not_found"


class VersionNotFound(NotFound):
    kind = "version_not_found"


class EnvironmentNotFound(NotFound):
    kind = "environment_not_found"


class ProfileNotFound(NotFound):
    kind = "profile_not_found"


class VaultNotFound(NotFound):
    kind = "vault_not_found"


# --- denied -------------------------------------------------------------------


class Denied(BsecretsError):
    kind = "denied"


class AccessDenied(Denied):
    """A principal without the grant, role or name scope an operation needs."""

    kind = "access_denied"


class ApprovalRequired(Denied):
    """A promotion into an environment whose protection asks for a second admin's
    approval, run without one (or approved by its own requester)."""

    kind = "approval_required"


class VaultLocked(Denied):
    kind = "vault_locked"


class WrongPassphrase(Denied):
    kind = "wrong_passphrase"
    default_hint = "check the passphrase (BSECRETS_PASSPHRASE / BSECRETS_PASSPHRASE_FILE)"


class SessionInvalid(Denied):
    kind = "session_invalid"


class KeyringUnavailable(Denied):
    kind = "keyring_unavailable"
    default_hint = (
        "use a passphrase instead (BSECRETS_PASSPHRASE), or make an OS keyring "
        "available (Secret Service, macOS Keychain, Windows Credential Locker)"
    )


class TokenInvalid(Denied):
    """BSECRETS_TOKEN that is malformed, of another vault, revoked, or does not open."""

    kind = "token_invalid"


class TokenExpired(Denied):
    """A pipeline token past its expiry (the signed record's): refused even with its key."""

    kind = "token_expired"


class SecondFactorRequired(Denied):
    """A protected environment asks for a one-time code that was not given (no
    terminal and no BSECRETS_OTP), or the principal has no second factor enrolled."""

    kind = "mfa_required"


class SecondFactorRejected(Denied):
    """A one-time code that is wrong, or was already used (replay)."""

    kind = "mfa_rejected"


class LockedOut(Denied):
    """Too many wrong one-time codes in a row: no code is checked until the time given."""

    kind = "locked_out"


class ProtectionNotApplied(Denied):
    """The profile declares an environment protected and the vault does not record it."""

    kind = "protection_not_applied"


class InsecureFile(Denied):
    """A vault or session file others can read, or owned by someone else."""

    kind = "insecure_file"


# --- integrity ----------------------------------------------------------------


class IntegrityError(BsecretsError):
    kind = "integrity_error"
    default_hint = (
        "the vault file was changed outside bsecrets or is damaged; "
        "restore it from a backup and do not trust values read from this copy"
    )


# --- unavailable --------------------------------------------------------------


class BackendUnavailable(BsecretsError):
    kind = "backend_unavailable"


# --- conflict -----------------------------------------------------------------


class Conflict(BsecretsError):
    kind = "conflict"


class VersionConflict(Conflict):
    kind = "version_conflict"


class AlreadyExists(Conflict):
    kind = "already_exists"


class RotationInFlight(Conflict):
    """A rotation of the secret has not finished (or one that finished is resumed)."""

    kind = "rotation_in_flight"


class PromotionInFlight(Conflict):
    """A promotion into the environment stopped midway: resume or abort it first."""

    kind = "promotion_in_flight"


# --- everything else ----------------------------------------------------------


class RotationFailed(BsecretsError):
    """A rotation hook failed: the current value is untouched (or, for the finish hook,
    already the new one); the record keeps the step and the hook's output."""

    kind = "rotation_failed"


class StorageError(BsecretsError):
    """The vault file could not be read or written (disk full, read-only, I/O)."""

    kind = "storage_error"


class UnsupportedFormat(BsecretsError):
    kind = "unsupported_format"
    default_hint = "upgrade bsecrets: 'pip install --upgrade bsecrets'"


# --- exec: the command could not be started -----------------------------------


class CommandNotFound(BsecretsError):
    kind = "command_not_found"


class CommandNotExecutable(BsecretsError):
    kind = "command_not_executable"
