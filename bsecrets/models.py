"""Domain types shared by the core, the backends, the CLI and (later) the SDK.

Immutable NamedTuples (a frozen dataclass costs ~0.5 ms to define on every
start; these are on the path of every command): no I/O, no heavy imports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from bsecrets.errors import EmptyValue, InvalidName, NextStep, UsageError, ValueTooLarge
from bsecrets.named_tuples import NamedTuple
from bsecrets.str_enums import StrEnum

MAX_NAME_LENGTH = 255
MAX_VALUE_BYTES = 1024 * 1024  # 1 MiB
MAX_TAGS = 50
MAX_DESCRIPTION = 1024  # characters
MAX_TAG_VALUE = 256  # characters

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}")
_TAG_KEY = r"[A-Za-z0-9_.:/-]{1,128}"  # compiled on the first tag (re caches it)


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid secret name, else raise InvalidName (exit 2)."""
    if not _NAME_RE.fullmatch(name):
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise InvalidName(f"invalid secret name {shown!r}")
    return name


def validate_value(value: bytes, *, allow_empty: bool = False, name: str = "") -> bytes:
    """Return ``value`` if it may be stored: at most MAX_VALUE_BYTES, and not empty
    unless ``allow_empty`` (an empty value is usually an accident: a failed command
    before ``| bsecrets put``, an empty file, a prompt answered with Enter).
    ``name``, when given, is named in the message."""
    if not value and not allow_empty:
        raise EmptyValue(
            f"the value of '{name}' is empty" if name else "the value is empty",
            hint="nothing was stored",
            step=NextStep("allow_empty_value"),
        )
    if len(value) > MAX_VALUE_BYTES:
        raise ValueTooLarge(
            f"the value is {len(value):,} bytes; the limit is {MAX_VALUE_BYTES:,} bytes (1 MiB)",
            hint="store large files elsewhere and keep their key or path in bsecrets",
        )
    return value


def validate_tags(tags: dict[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise UsageError(
            f"{len(tags)} tags; a secret has at most {MAX_TAGS}",
            hint="keep long lists in the description or the value",
        )
    for key, val in tags.items():
        if not re.fullmatch(_TAG_KEY, key):
            shown = key if len(key) <= 40 else key[:37] + "..."
            raise UsageError(
                f"invalid tag key {shown!r}",
                hint="tag keys are 1 to 128 characters of A-Z a-z 0-9 _ . : / -",
            )
        if len(val) > MAX_TAG_VALUE:
            raise UsageError(
                f"tag {key!r}: the value is {len(val):,} characters; the limit is {MAX_TAG_VALUE}",
                hint="keep long text in the description or the value",
            )
    return tags


def validate_description(description: str) -> str:
    """Return ``description`` if it is within MAX_DESCRIPTION characters, else UsageError."""
    if len(description) > MAX_DESCRIPTION:
        raise UsageError(
            f"the description is {len(description):,} characters; the limit is {MAX_DESCRIPTION:,}",
            hint="shorten it, or keep long notes elsewhere and link to them",
        )
    return description


class VersionState(StrEnum):
    CURRENT = "current"
    PREVIOUS = "previous"
    DELETED = "deleted"  # the latest version of a soft-deleted secret
    PENDING = "pending"  # written by a rotation, not current yet (AWS: AWSPENDING)


class SecretVersion(NamedTuple):
    """One version of a secret, without its value."""

    version: int
    created_at: datetime
    created_by: str
    state: VersionState = VersionState.CURRENT


class SecretSummary(NamedTuple):
    """What ``ls`` shows: never a value."""

    name: str
    version: int
    updated_at: datetime
    tags: dict[str, str] = {}  # noqa: RUF012 - a shared default, never mutated
    deleted: bool = False


class Secret(NamedTuple):
    """A secret value with its metadata, as ``get`` returns it."""

    name: str
    env: str
    version: int
    value: bytes
    created_at: datetime
    created_by: str
    tags: dict[str, str] = {}  # noqa: RUF012 - a shared default, never mutated
    description: str = ""
    stale: bool = False  # served from the offline fallback (backends/offline.py)

    def __repr__(self) -> str:  # never show the value in a traceback or log
        return f"Secret(name={self.name!r}, env={self.env!r}, version={self.version})"

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", errors="surrogateescape")


class WriteResult(NamedTuple):
    name: str
    env: str
    version: int
    changed: bool = True  # False: nothing written (a rollback to the current version)


MAX_REASON = 512  # characters of a --reason


class Confirmation(NamedTuple):
    """What the caller gives for an operation on a protected environment (docs/access.md),
    settled once per process: a reason for the audit event, ``yes`` when there is no
    terminal to ask on, and where a one-time code comes from."""

    reason: str | None = None
    yes: bool = False
    ask: Callable[[str], bool] | None = None  # a yes/no question on a terminal; None: none
    one_time_code: Callable[[], str | None] | None = None  # BSECRETS_OTP, else a prompt


def validate_reason(reason: str) -> str:
    """A reason for the audit log: some text, one line, at most MAX_REASON characters."""
    text = reason.strip()
    if not text:
        raise UsageError("the reason is empty", hint="say in a few words why")
    if len(text) > MAX_REASON:
        raise UsageError(
            f"the reason is longer than {MAX_REASON} characters",
            hint="a sentence is enough; link a ticket for the details",
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError(
            "the reason holds a control character (a newline, a tab, ...)",
            hint="give the reason on one line",
        )
    return text


class AccessContext(NamedTuple):
    """Who is asking. Filled once per process by the caller (CLI, SDK, server)."""

    os_user: str
    host: str
    pid: int
    principal: str = "owner"
    via: str | None = None  # the server: "bsecrets serve, from ADDRESS"

    @property
    def actor(self) -> str:
        """Who a new version says created it: ``user@host``; through the server, the
        principal and the way (the server's OS user would say nothing)."""
        if self.via is not None:
            return f"{self.principal} via {self.via}"
        return f"{self.os_user}@{self.host}"

    @classmethod
    def current(cls) -> AccessContext:
        """getpass.getuser() and socket.gethostname() by hand: importing getpass and
        socket costs every command ~5 ms (start-up, #20); the answers are the same."""
        import os

        user = next(
            (os.environ[k] for k in ("LOGNAME", "USER", "LNAME", "USERNAME") if os.environ.get(k)),
            None,
        )
        if user is None:
            try:
                import pwd

                user = pwd.getpwuid(os.getuid()).pw_name
            except (ImportError, KeyError):  # no passwd entry in some containers
                user = str(os.getuid())
        return cls(os_user=user, host=os.uname().nodename, pid=os.getpid())


class RotationPolicy(NamedTuple):
    """How a secret is rotated: the profile's ``rotation:`` entry of the first glob that
    matches its name (docs/rotation.md), read once validated by the profile parser."""

    max_age: timedelta | None = None  # due once this old
    strategy: str = "immediate"  # immediate | graceful | blue-green
    overlap: timedelta | None = None  # graceful: how long the previous value stays
    generate: str | None = None  # a generator spec: password:32, hex:32, ...
    retries: int = 0  # more tries of a failing hook
    backoff: timedelta = timedelta(seconds=10)  # before the first retry, then doubling
    hooks: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (step, argv)

    def hooks_of(self, step: str) -> list[str] | None:
        return next((list(argv) for name, argv in self.hooks if name == step), None)
