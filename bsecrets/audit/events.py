"""The vocabulary of audit events: what was done (:class:`Action`), how it ended
(:class:`Outcome`), and the fields the logger writes (:class:`EventFields`).

Both enums are StrEnums: a member *is* its string (``Action.GET == "get"``,
same hash, ``json.dumps`` writes ``"get"``), so stored events, their MACs,
printed JSON and filters on ``--action``/``--outcome`` are the same as when
these were plain strings. Events read back from the log hold plain strings,
and may hold actions of another bsecrets version: readers compare, they do
not convert. docs/audit.md lists the actions and outcomes for users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bsecrets.str_enums import StrEnum


class Action(StrEnum):
    """The ``action`` of an event."""

    # secrets, through SecretsManager
    PUT = "put"
    GET = "get"
    LS = "ls"
    HISTORY = "history"
    RM = "rm"
    RESTORE = "restore"
    ROLLBACK = "rollback"
    READ = "read"  # a bulk read of an environment's current values
    EXPORT = "export"
    IMPORT = "import"
    DIFF = "diff"
    EXEC = "exec"
    PROVISION = "provision"
    # the vault
    INIT = "init"
    UNLOCK = "unlock"
    LOCK = "lock"
    VERIFY = "verify"  # bsecrets verify (the whole vault file)
    PASSPHRASE_CHANGE = "passphrase.change"  # a principal's key under a new passphrase
    # access control (services/access.py, services/mfa.py)
    ENV_PROTECT = "env.protect"
    ENV_UNPROTECT = "env.unprotect"
    MFA_ENROLL = "mfa.enroll"
    MFA_CONFIRM = "mfa.confirm"
    MFA_CLEAR = "mfa.clear"
    PRINCIPAL_ADD = "access.principal.add"
    PRINCIPAL_RM = "access.principal.rm"
    ACCESS_GRANT = "access.grant"
    ACCESS_REVOKE = "access.revoke"
    TOKEN_ISSUE = "token.issue"
    TOKEN_REVOKE = "token.revoke"
    TOKEN_EXTEND = "token.extend"
    # rotation (services/rotation.py): one event per step of a rotation
    ROTATE = "rotate"
    # promotion (services/promotion.py): the plan, one event per promoted secret, and
    # one for the promotion, sharing its id
    PROMOTE = "promote"
    # break-glass (services/break_glass.py): every step
    BREAK_GLASS_SETUP = "break_glass.setup"
    BREAK_GLASS_REQUEST = "break_glass.request"
    BREAK_GLASS_APPROVE = "break_glass.approve"
    BREAK_GLASS_ACTIVATE = "break_glass.activate"
    BREAK_GLASS_REVOKE = "break_glass.revoke"
    BREAK_GLASS_REVIEW = "break_glass.review"
    BREAK_GLASS_REKEY = "break_glass.rekey"
    # the audit trail (reading it is itself recorded)
    AUDIT_LOG = "audit.log"
    AUDIT_SEARCH = "audit.search"
    AUDIT_TAIL = "audit.tail"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_ANCHOR = "audit.anchor"
    AUDIT_EXPORT = "audit.export"
    AUDIT_ARCHIVE = "audit.archive"
    AUDIT_REPORT = "audit.report"
    SERVER_AUTH = "server.auth"  # a token refused by bsecrets serve (API or web UI)
    AUDIT_INTAKE = "audit.intake"  # an event written without the key that could not be read


class Outcome(StrEnum):
    """The ``outcome`` of an event."""

    OK = "ok"
    STARTED = "started"  # the intent, before a call to a remote backend; its outcome follows
    DENIED = "denied"
    NOT_FOUND = "not_found"
    FAILED = "failed"


# The event's fields as the type checker knows them; at run time plain dicts (what a
# TypedDict makes anyway): building the TypedDict classes called compile() for each
# field's annotation, the process's first compile() costing ~1 ms of every command
# (bench/README.md, "Standard-library imports off the hot path").
if TYPE_CHECKING:
    from typing import NotRequired, TypedDict

    class Actor(TypedDict):
        """Who: the OS user, the principal (``owner``), the host and the process; ``via``
        for a request to the server (``bsecrets serve from ADDRESS``)."""

        user: str
        principal: str
        host: str
        pid: int
        via: NotRequired[str]

    class EventFields(TypedDict):
        """One event as the logger hands it to a sink (the sink adds ``seq``; the local
        log also ``state``, and ``late`` for an event chained after the fact). Stored
        as canonical JSON: key order here means nothing."""

        v: int  # the event format, 1
        time: str  # ISO UTC, milliseconds
        actor: Actor
        action: Action
        env: str | None
        outcome: Outcome
        request_id: str  # one per process (one CLI command)
        name: NotRequired[str]
        names: NotRequired[list[str]]  # sorted
        version: NotRequired[int]
        reason: NotRequired[str]  # an error message: never a value
        justification: NotRequired[str]  # the caller's --reason (a protected environment)
        details: NotRequired[dict[str, Any]]
        ci: NotRequired[dict[str, str]]
else:
    Actor = EventFields = dict
