"""What the ``bsecrets audit`` commands do, on the local vault's audit log.

Each reading command is itself recorded (``audit.log``, ``audit.verify``, ...)
before it reads: who looked at the audit trail is part of the trail.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bsecrets.audit import anchoring
from bsecrets.audit.chain import Anchor
from bsecrets.audit.events import Action, Outcome
from bsecrets.audit.query import EventFilter, jsonl_lines, parse_when, select
from bsecrets.audit.report import build_report, load_criteria
from bsecrets.errors import BsecretsError, IntegrityError, NextStep, UsageError
from bsecrets.timeutil import parse_duration

if TYPE_CHECKING:
    from bsecrets.audit.chain import Verification
    from bsecrets.audit.local_log import LocalAuditLog
    from bsecrets.crypto.keys import EnvironmentKeys
    from bsecrets.services.manager import SecretsManager


class AuditIntegrityError(IntegrityError):
    """``audit verify`` found a problem."""

    kind = "audit_integrity_error"


def _open(
    manager: SecretsManager, action: Action, details: dict[str, Any] | None = None
) -> tuple[LocalAuditLog, EnvironmentKeys | None]:
    log = readable_log(manager, action)
    manager.audit.record(action, details=details)
    return log, log.reading_keys()


def readable_log(manager: SecretsManager, action: Action) -> LocalAuditLog:
    """The audit log, for its owner: anyone else is refused (AccessDenied), and the
    refusal is the ``action``'s event with outcome denied (not an ok look). The server
    calls it first, so a refused caller learns nothing of its parameters."""
    log = manager.audit_log()
    if not log.keyholder():
        with manager.refusals_recorded(action, None):
            log.reading_keys()  # raises: the owner's to read
    return log


def event_filter(
    manager: SecretsManager, since: str | None, until: str | None, env: str | None = None,
    name: str | None = None, action: str | None = None, actor: str | None = None,
    outcome: str | None = None, text: str | None = None, *, dash: str = "--",
) -> EventFilter:  # fmt: skip
    """The filter of the audit commands, checked (the CLI's options, the server's query
    parameters: ``dash`` is how their names are written in the messages): an outcome
    that is none, a bad time or period is a UsageError, an unknown environment an
    EnvironmentNotFound (an error, not an empty result)."""
    now = manager.clock()
    outcomes = tuple(Outcome)
    if outcome is not None and outcome not in outcomes:
        raise UsageError(
            f"invalid {dash}outcome {outcome!r}", hint=f"one of: {', '.join(outcomes)}"
        )
    start = parse_when(since, f"{dash}since", now) if since is not None else None
    end = parse_when(until, f"{dash}until", now) if until is not None else None
    if start is not None and end is not None and start >= end:
        raise UsageError(f"{dash}since is not before {dash}until",
                         hint="swap them, or widen the period")  # fmt: skip
    if env is not None:
        manager.env_name(env)
    return EventFilter(start, end, env, name, action, actor, outcome, text)


def query(
    manager: SecretsManager,
    where: EventFilter,
    limit: int | None,
    action: Action = Action.AUDIT_LOG,
) -> list[dict[str, Any]]:
    log, keys = _open(manager, action)
    if keys is None:
        return []
    since, until = where.time_bounds()
    with log.store.read():
        return select(log.events(keys, since, until), where, limit)


def follow(
    manager: SecretsManager, where: EventFilter, last: int, interval: float
) -> Iterator[dict[str, Any]]:
    """The last ``last`` matching events, then every new one as it is written."""
    log, keys = _open(manager, Action.AUDIT_TAIL)
    if keys is None:
        return
    with log.store.read():
        events = select(log.events(keys), where, last)
        head = log.head(keys).seq
    yield from events
    while True:
        time.sleep(interval)
        with log.store.read():
            fresh = [e for e in log.events(keys, after=head) if where.matches(e)]
            head = log.head(keys).seq
        yield from fresh


def verify(
    manager: SecretsManager,
    anchor: Anchor | None,
    *,
    archives: bool = True,
    action: Action | None = Action.AUDIT_VERIFY,
) -> Verification:
    """Check the chain, the archives and the anchor (given, else the OS keyring's).
    On success the head is kept in the OS keyring as the next anchor. The check is
    recorded first as ``action`` (``bsecrets verify``: ``verify``, or None on a file
    with damaged pages, which is not written to)."""
    log = manager.audit_log() if action is None else readable_log(manager, action)
    if action is not None:
        # If the chain cannot take an event (it disagrees with the vault), say why below.
        with contextlib.suppress(IntegrityError):
            manager.audit.record(action)
    keys = log.reading_keys()
    if keys is None:
        raise IntegrityError("the vault has no audit log key: its audit log was removed")
    witnessed = anchor if anchor is not None else anchoring.stored_anchor(log)
    result = log.verify(keys, witnessed, archives=archives)
    if anchor is None and witnessed is not None:
        result = result._replace(anchor=f"OS keyring ({result.anchor})")
    manager.audit.verified(result.problem is None)  # the metrics' last verify result
    if result.problem is None:
        anchoring.store_anchor(log, keys, result.head)  # only forwards from the kept anchor
    return result


def problem_error(result: Verification) -> AuditIntegrityError | None:
    """What ``verify`` found, as the error the CLI and the server raise (None: nothing)."""
    problem = result.problem
    if problem is None:
        return None
    return AuditIntegrityError(
        f"audit log: {problem.kind} at event {problem.seq}: {problem.detail}",
        hint="the log was changed outside bsecrets; keep a copy of the vault file "
        "as evidence (docs/audit.md)",
    )


def anchor(manager: SecretsManager) -> tuple[Anchor, bool]:
    log = manager.audit_log()
    manager.audit.record(Action.AUDIT_ANCHOR)
    return anchoring.anchor_head(log)


def export_jsonl(manager: SecretsManager, where: EventFilter, write: Callable[[str], Any]) -> int:
    log, keys = _open(manager, Action.AUDIT_EXPORT)
    if keys is None:
        return 0
    count = 0
    _, until = where.time_bounds()  # events after it are not read (one damaged: no matter)
    with log.store.read():
        prev = log.state(keys).prev.hex()
        for line in jsonl_lines(log.events(keys, None, until), prev, where):
            write(line)
            count += 1
    return count


def retention_cutoff(manager: SecretsManager, now: datetime) -> datetime:
    retention = manager.profile.audit_retention
    if retention is None:
        raise UsageError(
            "the profile sets no audit retention",
            step=NextStep("set_retention_or_give_cutoff"),
        )
    return now - parse_duration(retention)


def archive(manager: SecretsManager, before: datetime, target: Path) -> dict[str, Any]:
    log, keys = _open(
        manager, Action.AUDIT_ARCHIVE, {"before": before.isoformat(), "to": str(target)}
    )
    if keys is None:
        return {"archived": 0, "path": None}
    return log.archive(keys, before, target)


def report(
    manager: SecretsManager,
    where: EventFilter,
    criteria_path: Path | None,
    now: datetime,
) -> dict[str, Any]:
    criteria = load_criteria(criteria_path)  # a bad file fails before anything is read
    log, keys = _open(manager, Action.AUDIT_REPORT)
    inventory: dict[str, Any] = {}
    for env in manager.profile.environments:
        try:
            inventory[env] = manager.list_secrets(env)
        except BsecretsError:
            inventory[env] = None  # reported as not inventoried
    chain = None
    if keys is not None:
        checked = log.verify(keys, anchoring.stored_anchor(log))
        chain = checked.to_dict()
        since, until = where.time_bounds()
        with log.store.read():
            events = select(log.events(keys, since, until), where)
    else:
        events = []
    return build_report(
        events, inventory, criteria, since=where.since, until=where.until, now=now, chain=chain
    )
