"""AuditLogger: one event for every operation through SecretsManager.

An event says who (OS user, principal, host, pid; in CI the provider,
pipeline, run, job, commit and repository), did what (action, environment,
secret name or names, version), with what outcome (ok, denied, not_found,
failed; ``started`` before a call to a remote backend) and why. Never a value,
nor anything derived from one. The actions, outcomes and fields are named in
audit/events.py.

Fail-closed: for the local vault the event is written in the same transaction
as the change it records (a read writes its event right after its snapshot),
and the operation's result is returned only after the event commits. For a
remote backend an intent event is written before the call and the outcome
after it; the result is returned only after the outcome is written. If an
event cannot be written, the operation fails.

The storage of events is a sink (``AuditSink``); the local vault's chained,
sealed log is ``audit/local_log.py``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bsecrets import __version__
from bsecrets.audit.events import Action, Actor, EventFields, Outcome
from bsecrets.config.ci import detect
from bsecrets.errors import BsecretsError, Denied, NotFound
from bsecrets.health import HealthIndicator, ReflectiveModule
from bsecrets.models import AccessContext
from bsecrets.timeutil import Clock, iso

if TYPE_CHECKING:  # the observers' type only: a command without metrics or traces
    from bsecrets.observing import OperationObserver

# CI provider -> (event field, environment variable)
_CI_FIELDS = {
    "github": (
        ("pipeline", "GITHUB_WORKFLOW"),
        ("run", "GITHUB_RUN_ID"),
        ("attempt", "GITHUB_RUN_ATTEMPT"),
        ("job", "GITHUB_JOB"),
        ("commit", "GITHUB_SHA"),
        ("repository", "GITHUB_REPOSITORY"),
        ("ref", "GITHUB_REF"),
        ("triggered_by", "GITHUB_ACTOR"),
    ),
    "gitlab": (
        ("pipeline", "CI_PIPELINE_ID"),
        ("run", "CI_PIPELINE_IID"),
        ("job", "CI_JOB_NAME"),
        ("job_id", "CI_JOB_ID"),
        ("commit", "CI_COMMIT_SHA"),
        ("repository", "CI_PROJECT_PATH"),
        ("ref", "CI_COMMIT_REF_NAME"),
        ("triggered_by", "GITLAB_USER_LOGIN"),
    ),
}


def ci_fields(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The CI run this process belongs to (GitHub Actions, GitLab CI), or None."""
    provider = detect(environ)
    if provider is None:
        return None
    fields = {"provider": provider}
    for field, variable in _CI_FIELDS[provider]:
        value = environ.get(variable, "")
        if value:
            fields[field] = value[:200]
    return fields


def outcome_of(exc: BaseException) -> Outcome:
    """The outcome of an operation that raised ``exc``."""
    if isinstance(exc, NotFound):
        return Outcome.NOT_FOUND
    if isinstance(exc, Denied):
        return Outcome.DENIED
    return Outcome.FAILED


def reason_of(exc: BaseException) -> str:
    """Error messages never hold a value (errors.py); other exceptions give their type only."""
    if isinstance(exc, BsecretsError):
        return exc.message[:500]
    return type(exc).__name__


class AuditSink:
    """Where events go. ``transaction()`` is the store's write transaction for the
    local vault (the event commits with the change), a no-op elsewhere."""

    name = "none"

    def prepare(self) -> None:
        """Called before a local operation's transaction: unlock here, so that a
        passphrase prompt never runs while the write lock is held."""

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def append(self, fields: EventFields) -> None:
        """Write one event (``seq`` is the sink's to assign); raise if it cannot."""

    def indicators(self) -> list[HealthIndicator]:
        return [HealthIndicator("audit", True, "no local vault: events are not kept")]


class NullAuditSink(AuditSink):
    """Keeps nothing: a profile with no local vault file, and the benchmark's baseline."""


class Note:
    """What an operation learns while it runs and its event should say."""

    __slots__ = ("details", "justification", "name", "names", "version")

    def __init__(
        self, name: str | None, names: list[str] | None, justification: str | None = None
    ) -> None:
        self.name = name
        self.names = names
        self.version: int | None = None
        self.details: dict[str, Any] = {}
        self.justification = justification  # the caller's --reason, if it gave one


class AuditLogger(ReflectiveModule):
    def __init__(
        self,
        sink: AuditSink,
        context: AccessContext,
        clock: Clock,
        environ: Mapping[str, str],
    ) -> None:
        self.sink = sink
        self.context = context
        self.clock = clock
        self.request_id = os.urandom(8).hex()  # one per process (one CLI command)
        self._ci = ci_fields(environ)
        self.written = 0
        self.observers: list[OperationObserver] = []  # metrics, traces (observing.py)
        # Inside together(): the local reads' events, with their observers' handles, to
        # write when it ends; None outside.
        self._held: list[tuple[EventFields, list[Any]]] | None = None

    def _fields(
        self, action: Action, env: str | None, note: Note, outcome: Outcome, reason: str
    ) -> EventFields:
        ctx = self.context
        actor: Actor = {"user": ctx.os_user, "principal": ctx.principal, "host": ctx.host,
                        "pid": ctx.pid}  # fmt: skip
        if ctx.via is not None:
            actor["via"] = ctx.via
        fields: EventFields = {
            "v": 1,
            "time": iso(self.clock()),
            "actor": actor,
            "action": action,
            "env": env,
            "outcome": outcome,
            "request_id": self.request_id,
        }
        if note.name is not None:
            fields["name"] = note.name
        if note.names is not None:
            fields["names"] = sorted(note.names)
        if note.version is not None:
            fields["version"] = note.version
        if reason:
            fields["reason"] = reason
        if note.justification:
            fields["justification"] = note.justification
        if note.details:
            fields["details"] = note.details
        if self._ci is not None:
            fields["ci"] = self._ci
        return fields

    def record(
        self,
        action: Action,
        env: str | None = None,
        *,
        name: str | None = None,
        names: list[str] | None = None,
        outcome: Outcome = Outcome.OK,
        reason: str = "",
        details: dict[str, Any] | None = None,
        sink: AuditSink | None = None,
        justification: str | None = None,
    ) -> None:
        """One event outside an operation (init, unlock, lock, the audit commands);
        ``sink`` overrides where it goes (a vault handle that is already unlocked)."""
        note = Note(name, names, justification)
        note.details = details or {}
        fields = self._fields(action, env, note, outcome, reason)
        self._append(fields, sink)
        for observer in self.observers:
            with contextlib.suppress(Exception):
                observer.recorded(fields)

    def verified(self, ok: bool) -> None:
        """The audit chain was just verified (services/audit_ops.py): tell the observers."""
        at = self.clock().timestamp()
        for observer in self.observers:
            with contextlib.suppress(Exception):
                observer.verified(ok, at)

    def _append(self, fields: EventFields, sink: AuditSink | None = None) -> None:
        self._release()
        (sink or self.sink).append(fields)
        self.written += 1

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """``with audit.together():`` the events of the local reads inside the block
        (operation with ``changes=False``, not remote) are written when it ends, all in
        one transaction of the sink: ``exec`` lists an environment, then reads it, and
        its two events cost one commit (one fsync) instead of two.

        Fail-closed as operation() is, on one condition the caller keeps: nothing read
        inside the block is handed on (printed, returned, given to a child) before the
        block has ended, so before the events committed; if they cannot be written,
        the block raises. Any other event (a change, a refusal, a failed read, a
        remote call's intent) first writes the held ones, then itself, as always. If
        the block raises, the held events are still written (as they would have been),
        then its exception goes on. Nested, the outermost block writes them."""
        if self._held is not None:
            yield
            return
        self._held = []
        try:
            yield
        except BaseException:
            held, self._held = self._held, None
            with contextlib.suppress(Exception):  # the block failed either way
                self._write_held(held)
            raise
        held, self._held = self._held, None
        self._write_held(held)

    def _release(self) -> None:
        """The held events, written now: before any other event (the log keeps the order
        things happened in) and before a change's transaction (its rollback must not
        take them along)."""
        if self._held:
            held, self._held = self._held, []
            self._write_held(held)

    def _write_held(self, held: list[tuple[EventFields, list[Any]]]) -> None:
        if not held:
            return
        with self.sink.transaction():
            for fields, _ in held:
                self.sink.append(fields)
        self.written += len(held)
        for fields, handles in held:
            self._ended(handles, fields, None)

    def _begun(self, action: Action, env: str | None, remote: bool) -> list[Any]:
        handles = []
        for observer in self.observers:
            try:
                handles.append(observer.begun(action, env, remote))
            except Exception:
                handles.append(None)
        return handles

    def _ended(self, handles: list[Any], fields: EventFields, error: BaseException | None) -> None:
        for observer, handle in zip(self.observers, handles, strict=False):
            with contextlib.suppress(Exception):
                observer.ended(handle, fields, error)

    @contextlib.contextmanager
    def operation(
        self,
        action: Action,
        env: str | None,
        *,
        name: str | None = None,
        names: list[str] | None = None,
        remote: bool = False,
        changes: bool = True,
        justification: str | None = None,
    ) -> Iterator[Note]:
        """``with audit.operation(Action.GET, env, name=n) as note: ...`` records the outcome.

        Local (``remote=False``) and ``changes``: the body and its event are one
        transaction of the sink. Local reads: the body reads its own snapshot and
        the event is written right after it (holding the write lock only for the
        event); the caller returns the value only after that. Remote: an intent
        event first, then the body, then the outcome.
        """
        note = Note(name, names, justification)
        handles = self._begun(action, env, remote) if self.observers else []
        try:
            if remote:
                self._append(self._fields(action, env, note, Outcome.STARTED, ""))
                yield note
            elif not changes:
                self.sink.prepare()
                yield note
            else:
                self.sink.prepare()
                self._release()
                with self.sink.transaction():
                    yield note
                    fields = self._fields(action, env, note, Outcome.OK, "")
                    self._append(fields)
                self._ended(handles, fields, None)
                return
        except (Exception, KeyboardInterrupt) as exc:
            fields = self._fields(action, env, note, outcome_of(exc), reason_of(exc))
            with contextlib.suppress(Exception):  # the operation failed either way
                self._append(fields)
            self._ended(handles, fields, exc)
            raise
        fields = self._fields(action, env, note, Outcome.OK, "")
        if self._held is not None and not remote:  # a local read inside together()
            self._held.append((fields, handles))
            return
        self._append(fields)
        self._ended(handles, fields, None)

    # --- ReflectiveModule ------------------------------------------------

    def get_module_status(self) -> dict[str, Any]:
        return {
            "name": "AuditLogger",
            "version": __version__,
            "sink": self.sink.name,
            "events_written": self.written,
        }

    def get_health_indicators(self) -> list[HealthIndicator]:
        return self.sink.indicators()
