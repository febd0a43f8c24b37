"""One exception tree for the whole project.

Every class carries the exit code from CLI.md and, where one helps, a hint that
says what to do next. Backends translate their own errors into these at their
boundary (``raise SecretNotFound(...) from exc``); nothing from sqlite3, hvac or
botocore reaches ``core`` callers or the CLI.

Messages never contain a secret value.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    DENIED = 4
    INTEGRITY = 5
    UNAVAILABLE = 6
    CONFLICT = 7
    # exec, as shells do, when the command cannot be run
    NOT_EXECUTABLE = 126
    COMMAND_NOT_FOUND = 127


class BsecretsError(Exception):
    """Base of every error bsecrets reports to a user."""

    exit_code: ExitCode = ExitCode.ERROR
    default_hint: str | None = None

    def __init__(
        self, message: str, *, hint: str | None = None, applied: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        # For a failed write: whether it took effect anyway, "yes", "no" or "unknown"
        # (None: not a write), so a script knows whether to retry.
        self.applied = applied

    @property
    def kind(self) -> str:
        """A stable, machine-readable name of the error class (``secret_not_found``)."""
        import re

        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def __str__(self) -> str:
        return self.message


# --- exit 2: usage ---------------------------------------------------------


class UsageError(BsecretsError):
    exit_code = ExitCode.USAGE


class InvalidName(UsageError):
    default_hint = (
        "names are 1 to 255 characters of A-Z a-z 0-9 _ . / -, not starting with '/' or '.'"
    )


class ValueTooLarge(UsageError):
    pass


class EmptyValue(UsageError):
    """An empty value without ``allow_empty`` (``--allow-empty``): refused, nothing stored."""


class ProfileError(UsageError):
    """A profile that cannot be used; the message names file, line and key path."""

    def __init__(
        self,
        path: str,
        line: int | None,
        key_path: str,
        problem: str,
        *,
        hint: str | None = None,
    ) -> None:
        where = f"{path}:{line}" if line else path
        key = f"{key_path}: " if key_path else ""
        super().__init__(f"{where}: {key}{problem}", hint=hint)
        self.path = path
        self.line = line
        self.key_path = key_path
        self.problem = problem


# --- exit 3: not found -----------------------------------------------------


class NotFound(BsecretsError):
    exit_code = ExitCode.NOT_FOUND


class SecretNotFound(NotFound):
    default_hint = "list what exists with 'bsecrets ls'"


class VersionNotFound(NotFound):
    default_hint = "list the versions with 'bsecrets history NAME'"


class EnvironmentNotFound(NotFound):
    pass


class ProfileNotFound(NotFound):
    default_hint = (
        "create one with 'bsecrets init', or point to it with --profile / BSECRETS_PROFILE"
    )


class VaultNotFound(NotFound):
    default_hint = "create it with 'bsecrets init'"


# --- exit 4: denied --------------------------------------------------------


class Denied(BsecretsError):
    exit_code = ExitCode.DENIED


class VaultLocked(Denied):
    default_hint = (
        "run 'eval \"$(bsecrets unlock)\"', or set BSECRETS_SESSION, "
        "BSECRETS_PASSPHRASE or BSECRETS_PASSPHRASE_FILE"
    )


class WrongPassphrase(Denied):
    default_hint = "check the passphrase (BSECRETS_PASSPHRASE / BSECRETS_PASSPHRASE_FILE)"


class SessionInvalid(Denied):
    default_hint = (
        "start a new session with 'eval \"$(bsecrets unlock)\"', or unset BSECRETS_SESSION"
    )


class KeyringUnavailable(Denied):
    default_hint = (
        "use a passphrase instead (BSECRETS_PASSPHRASE), or make an OS keyring "
        "available (Secret Service, macOS Keychain, Windows Credential Locker)"
    )


# --- exit 5: integrity -----------------------------------------------------


class IntegrityError(BsecretsError):
    exit_code = ExitCode.INTEGRITY
    default_hint = (
        "the vault file was changed outside bsecrets or is damaged; "
        "restore it from a backup and do not trust values read from this copy"
    )


# --- exit 6: unavailable ---------------------------------------------------


class BackendUnavailable(BsecretsError):
    exit_code = ExitCode.UNAVAILABLE


# --- exit 7: conflict ------------------------------------------------------


class Conflict(BsecretsError):
    exit_code = ExitCode.CONFLICT


class VersionConflict(Conflict):
    default_hint = "read the current version with 'bsecrets history NAME' and retry"


class AlreadyExists(Conflict):
    pass


# --- exit 1: everything else -----------------------------------------------


class StorageError(BsecretsError):
    """The vault file could not be read or written (disk full, read-only, I/O)."""


class UnsupportedFormat(BsecretsError):
    default_hint = "upgrade bsecrets: 'pip install --upgrade bsecrets'"


class InsecureFile(Denied):
    """A vault or session file others can read, or owned by someone else."""


# --- exec: the command could not be started (126, 127 as in a shell) ----------


class CommandNotFound(BsecretsError):
    exit_code = ExitCode.COMMAND_NOT_FOUND


class CommandNotExecutable(BsecretsError):
    exit_code = ExitCode.NOT_EXECUTABLE
