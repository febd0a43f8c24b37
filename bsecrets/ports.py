"""The one interface every secret store implements.

Adapters are bound to one environment. They raise only errors from
``bsecrets.errors``: SecretNotFound, VersionNotFound, VersionConflict,
IntegrityError, BackendUnavailable, Denied, StorageError. The shared contract
suite in ``bsecrets/testing/backend.py`` checks every adapter the same way.

An error from a write (put, delete, restore, purge) says whether the write took
effect anyway, in ``applied`` and in its message: "yes" (e.g. the value was
stored, only its tags were not), "no" (nothing was written: a refusal, a
rolled-back transaction, a failure before the request left), or "unknown" (the
request may have reached the server: check before retrying).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any

from bsecrets.errors import BsecretsError, NextStep, SecretNotFound, UsageError
from bsecrets.health import ReflectiveModule
from bsecrets.models import Secret, SecretSummary, SecretVersion, WriteResult
from bsecrets.named_tuples import NamedTuple
from bsecrets.str_enums import StrEnum


def stderr_warning(text: str) -> None:
    """Where a warning goes when the caller gives no other place: a ``warning:`` line."""
    import sys

    sys.stderr.write(f"warning: {text}\n")


# Messages that already say a write left nothing behind.
_SAYS_NOT_APPLIED = r"not applied|nothing was (written|overwritten|stored|changed)"  # on errors


@contextmanager
def not_applied() -> Iterator[None]:
    """Around a write: an error from inside that does not say whether the write took
    effect was raised before anything was written, or is the store refusing it (an
    HTTP 4xx, a rolled-back transaction); it gets ``applied="no"`` and says so."""
    try:
        yield
    except BsecretsError as exc:
        if exc.applied is None:
            exc.applied = "no"
            if not re.search(_SAYS_NOT_APPLIED, exc.message):
                exc.message += "; the write was not applied"
                exc.args = (exc.message,)
        raise


def value_stored_hint(
    error: BsecretsError, next_version: int, otherwise: NextStep
) -> tuple[str | None, NextStep | None]:
    """(hint, step) of the error saying that a put stored its value but not what came
    after it, which ``error`` prevented: do not repeat the put (a retry would store
    ``next_version``), then what ``error`` advises, or ``otherwise`` if it advises
    nothing."""
    then = error.step if error.step is not None else None if error.hint else otherwise
    if then is None:
        hint = f"do not repeat the put (a retry would store version {next_version}); {error.hint}"
        return hint, None
    args = {**then.args, "next_version": next_version, "then": then.action}
    return error.hint, NextStep("do_not_repeat_put", **args)


class Capability(StrEnum):
    VERSIONS = "versions"  # get --version, history, rollback
    SOFT_DELETE = "soft_delete"  # rm then restore
    PURGE = "purge"  # rm --purge destroys every version
    CAS = "cas"  # put --if-version
    TAGS = "tags"
    BINARY = "binary"  # any bytes, not only UTF-8
    FIELDS = "fields"  # get NAME#field selects one field of a structured value (Vault)
    PENDING = "pending"  # a version kept pending, not current (stage/make_current: AWS)


class BackendIdentity(NamedTuple):
    """What a remote store says about one environment's credentials, for ``bsecrets
    doctor`` (services/doctor/backends.py judges it): facts only, never a token, a key
    or a secret id."""

    endpoint: str  # where the store was asked
    service: str = ""  # what answered there, in words ("version 2.7.2, unsealed")
    down: BsecretsError | None = None  # it did not answer, or cannot serve (sealed)
    refused: BsecretsError | None = None  # it answered and refused the credentials
    principal: str = ""  # who they are: Vault's display name, AWS's caller ARN
    about: tuple[str, ...] = ()  # more of who, each in words ("policies default, app")
    source: str = ""  # where they come from, in words ("VAULT_TOKEN")
    root: bool = False  # they may do anything (Vault's root policy)
    temporary: bool | None = None  # they end (a TTL, a session token); None: not known
    expires_at: datetime | None = None  # when they end, where known
    renewable: bool = False  # their holder may extend them (vault token renew)
    renews_itself: bool = False  # bsecrets (or the AWS SDK) replaces them when they end


class SecretBackend(ReflectiveModule):
    """A store of versioned secrets for one environment."""

    kind: str = "abstract"
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, env: str) -> None:
        self.env = env

    @abstractmethod
    def put(
        self,
        name: str,
        value: bytes,
        *,
        actor: str,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        if_version: int | None = None,
    ) -> WriteResult:
        """Store a new version. ``if_version``: the current version must be this
        (0: the secret must not exist), else VersionConflict. ``tags`` and
        ``description`` of None keep the current ones."""

    @abstractmethod
    def get(self, name: str, version: int | None = None) -> Secret:
        """The latest (or given) version; SecretNotFound / VersionNotFound otherwise.
        A soft-deleted secret is not found."""

    @abstractmethod
    def list_secrets(
        self, prefix: str = "", *, include_deleted: bool = False
    ) -> list[SecretSummary]:
        """Summaries sorted by name; never values."""

    @abstractmethod
    def history(self, name: str) -> list[SecretVersion]:
        """Every version still kept, oldest first (soft-deleted secrets included)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Soft delete: hidden from get and ls, recoverable with restore."""

    @abstractmethod
    def restore(self, name: str) -> SecretSummary:
        """Undo a soft delete; SecretNotFound if there is nothing to restore."""

    @abstractmethod
    def purge(self, name: str) -> None:
        """Destroy every version and the metadata. Not recoverable."""

    def schedule_deletion(self, name: str, recovery_days: int) -> None:
        """A soft delete that the backend makes permanent after ``recovery_days``
        (AWS: 7 to 30). Backends without such a window refuse it (exit 2)."""
        raise UsageError(
            f"the {self.kind} backend has no recovery window",
            step=NextStep("delete_without_recovery_window"),
        )

    def rotation_service(self, name: str) -> dict[str, Any] | None:
        """The backend's own rotation of ``name`` (AWS: a rotation Lambda and its
        schedule), if it has one configured; None by default."""
        return None

    def schedule_rotation(self, name: str, function: str, every_days: int) -> None:
        """Configure the backend's own rotation of ``name``; backends without one
        refuse (exit 2)."""
        raise UsageError(
            f"the {self.kind} backend has no rotation service of its own",
            step=NextStep("rotation_service_aws"),
        )

    def rotate_with_service(self, name: str) -> None:
        """Ask the backend's own rotation to rotate ``name`` now."""
        self.schedule_rotation(name, "", 0)

    # --- pending versions: a rotation's create and finish steps (services/rotation.py) ---

    def stage(self, name: str, value: bytes, *, actor: str) -> int | None:
        """Store ``value`` as a new version of ``name`` that is *pending*: kept, readable
        by its number, not current (AWS: labelled AWSPENDING). Idempotent: a pending
        version holding ``value`` already is reused. Returns its number, or None where
        the store has no pending versions (KV v2, the local vault: the caller keeps the
        value; docs/rotation.md says why)."""
        return None

    def make_current(self, name: str, version: int, *, if_version: int) -> WriteResult:
        """Pending ``version`` becomes current, in one check-and-set step against
        ``if_version`` (else VersionConflict, nothing changed); done already is done."""
        raise UsageError(f"the {self.kind} backend has no pending versions")

    def unstage(self, name: str, version: int) -> None:
        """``version`` is pending no more (a cancelled rotation); it stays in history
        where the store cannot delete one version (AWS)."""

    def current_values(self) -> dict[str, bytes]:
        """Name -> current value of every secret that is not deleted (for export,
        diff, exec). The default reads them one by one; backends override it
        when they can read them all at once."""
        return {s.name: self.get(s.name).value for s in self.list_secrets()}

    def values_of(self, names: list[str]) -> dict[str, bytes]:
        """Name -> current value of each of ``names`` that exists (promote's plan). The
        default reads them one by one; AWS reads 20 per request, the local vault all
        in one snapshot."""
        out = {}
        for name in names:
            try:
                out[name] = self.get(name).value
            except SecretNotFound:
                continue
        return out

    def budget(self) -> AbstractContextManager[None]:
        """Every request to the store inside shares one deadline (a remote environment's
        ``timeout:``); blocks nest and share the outermost one, so a caller may open it
        around several operations. The local store has nothing to bound."""
        return nullcontext()

    @contextmanager
    def write_operation(self) -> Iterator[None]:
        """One write under the budget; errors without ``applied`` get "no" (not_applied)."""
        with self.budget(), not_applied():
            yield

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes so they apply all together or not at all, where the store can
        (the local vault: one SQLite transaction). Elsewhere writes apply one by one."""
        return nullcontext()

    def snapshot(self) -> AbstractContextManager[None]:
        """The reads inside see one state of the store, where the store can give one (the
        local vault: one SQLite read transaction, in which each bucket and the manifest
        are checked once however many secrets are read); blocks nest. Elsewhere each
        read stands alone. For reads only."""
        return nullcontext()

    def read_each(self, names: Iterable[str]) -> dict[str, bytes]:
        """Name -> current value of each of ``names``, in order, each read as ``get``
        reads it (the first that cannot be read raises get's error), all in one
        snapshot() (SecretsManager.reading: exec, export --only)."""
        with self.snapshot():
            return {name: self.get(name).value for name in names}

    def close(self) -> None:
        """Release connections; the default has nothing to release."""

    def identity(self) -> BackendIdentity | None:
        """Does the store answer, who are the environment's credentials, when do they
        end (``bsecrets doctor``); each request within a short budget, errors kept in the
        answer. None: not known (the default; a local store has no credentials)."""
        return None
