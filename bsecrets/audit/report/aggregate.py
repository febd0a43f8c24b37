"""Building the compliance report: one pass over the audit events (a generator of
a million events is fine: only counters, sets of readers and capped lists are
kept) and the current inventory, into a JSON-able dict (docs/audit-report.md).

Accesses are events whose outcome is not ``started`` (that is the intent a
remote operation writes before its outcome). Reads are :data:`READ_ACTIONS`
and writes :data:`WRITE_ACTIONS` that succeeded; denied attempts of any action
are counted and listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bsecrets.audit.events import Action, Outcome
from bsecrets.audit.query import actor_key, actor_text, ci_key, event_names
from bsecrets.audit.report.break_glass import BreakGlassLog
from bsecrets.audit.report.criteria import Criteria, format_duration
from bsecrets.audit.report.verdicts import (
    age_verdict,
    chain_verdict,
    limit_verdict,
    never_read_verdict,
)
from bsecrets.timeutil import iso

if TYPE_CHECKING:
    from bsecrets.models import SecretSummary

REPORT_VERSION = 1
LIST_LIMIT = 1000  # denied attempts and production reads kept in the report
# The per-actor counts of the report's ``actors``, in the order they are shown.
ACTOR_COUNTS = ("events", "reads", "secrets_read", "writes", "denied", "failed", "not_found")
# Per principal and environment (access control, docs/access.md).
ACCESS_COUNTS = ("reads", "secrets_read", "writes", "denied")

READ_ACTIONS = frozenset({Action.GET, Action.READ, Action.EXPORT, Action.DIFF, Action.EXEC})
WRITE_ACTIONS = frozenset({Action.PUT, Action.RM, Action.RESTORE, Action.ROLLBACK})
# Bound once: looking up an enum member costs ~100 ns and the loop below runs per event.
_OK, _STARTED, _DENIED = Outcome.OK, Outcome.STARTED, Outcome.DENIED
_NOT_FOUND, _FAILED = Outcome.NOT_FOUND, Outcome.FAILED


class _SecretStats:
    __slots__ = ("denied", "env", "last_read", "name", "readers", "reads", "writes")

    def __init__(self, env: str, name: str) -> None:
        self.env, self.name = env, name
        self.reads = self.writes = self.denied = 0
        self.last_read: str | None = None
        self.readers: set[str] = set()


class _ActorStats:
    __slots__ = (
        "denied",
        "envs",
        "events",
        "failed",
        "not_found",
        "reads",
        "secrets_read",
        "writes",
    )

    def __init__(self) -> None:
        self.events = self.reads = self.secrets_read = self.writes = 0
        self.denied = self.failed = self.not_found = 0
        self.envs: set[str] = set()


class _AccessStats:
    """What one principal did in one environment."""

    __slots__ = ("denied", "last", "reads", "secrets_read", "writes")

    def __init__(self) -> None:
        self.reads = self.secrets_read = self.writes = self.denied = 0
        self.last: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in ACCESS_COUNTS}, "last_access": self.last}


def _by_principal(access: dict[tuple[str, str], _AccessStats]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for (principal, env), stats in sorted(access.items()):
        out.setdefault(principal, {})[env] = stats.to_dict()
    return out


def _principal_of(actor: Any) -> str:
    principal = actor.get("principal") if type(actor) is dict else None
    return principal if isinstance(principal, str) and principal else "owner"


def build_report(
    events: Iterable[Mapping[str, Any]],
    inventory: Mapping[str, Sequence[SecretSummary] | None],
    criteria: Criteria,
    *,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    chain: Mapping[str, Any] | None,
    environments: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The compliance report of ``events`` (oldest first, iterated once).

    ``inventory``: env -> its current secrets; an env mapped to None, or missing
    while named in ``environments`` (the profile's environments, optional), was
    not inventoried. Without ``environments``, every env the events name that
    is missing from ``inventory`` counts as not inventoried. ``chain``: the
    verification result (``{"ok", "problem", "events"}``) or None if not checked.
    """
    production = frozenset(criteria.production_envs)
    total = late = 0
    by_outcome: dict[str, int] = {}
    by_action: dict[str, int] = {}
    first_time: str | None = None
    last_time: str | None = None
    secrets: dict[tuple[str, str], _SecretStats] = {}
    actors: dict[str, _ActorStats] = {}
    access: dict[tuple[str, str], _AccessStats] = {}  # (principal, env)
    envs_seen: set[str] = set()
    labels: dict[tuple[Any, ...], str] = {}  # actor and CI fields -> actor label
    denied_total = 0
    denied_items: list[dict[str, Any]] = []
    prod_total = prod_secret_reads = 0
    prod_items: list[dict[str, Any]] = []
    glass = BreakGlassLog()

    for event in events:
        total += 1
        outcome = str(event.get("outcome", "?"))
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        when = event.get("time")
        if isinstance(when, str):  # ISO UTC strings of one form compare as times
            if first_time is None or when < first_time:
                first_time = when
            if last_time is None or when > last_time:
                last_time = when
        if event.get("late"):
            late += 1
        if outcome == _STARTED:  # the intent; its outcome event follows
            continue
        action = str(event.get("action", "?"))
        by_action[action] = by_action.get(action, 0) + 1
        env = event.get("env")
        env = env if isinstance(env, str) and env else None
        actor, ci = event.get("actor"), event.get("ci")
        key = (
            *(actor_key(actor) if type(actor) is dict else (None, None, None)),
            *(ci_key(ci) if type(ci) is dict else (None, None)),
        )
        who = labels.get(key)
        if who is None:
            who = labels[key] = actor_text(*key)
        glass.add(event, who, outcome)
        stats = actors.get(who)
        if stats is None:
            stats = actors[who] = _ActorStats()
        stats.events += 1
        if env is not None:
            stats.envs.add(env)
            envs_seen.add(env)
        names = event_names(event)
        is_read, is_write = action in READ_ACTIONS, action in WRITE_ACTIONS
        counted = outcome == _DENIED or (outcome == _OK and (is_read or is_write))
        if env is not None and counted:
            seen = access.setdefault((_principal_of(actor), env), _AccessStats())
            seen.denied += outcome == _DENIED
            seen.reads += outcome == _OK and is_read
            seen.secrets_read += len(names) if outcome == _OK and is_read else 0
            seen.writes += outcome == _OK and is_write
            if isinstance(when, str) and (seen.last is None or when > seen.last):
                seen.last = when
        if outcome == _OK:
            if is_read:
                stats.reads += 1
                stats.secrets_read += len(names)
                if env in production:
                    prod_total += 1
                    prod_secret_reads += len(names)
                    if len(prod_items) < LIST_LIMIT:
                        prod_items.append(_item(event, who, action, env, names, reason=False))
            elif is_write:
                stats.writes += 1
        elif outcome == _DENIED:
            stats.denied += 1
            denied_total += 1
            if len(denied_items) < LIST_LIMIT:
                denied_items.append(_item(event, who, action, env, names, reason=True))
        elif outcome == _FAILED:
            stats.failed += 1
        elif outcome == _NOT_FOUND:
            stats.not_found += 1
        if not names or not (outcome == _DENIED or (outcome == _OK and (is_read or is_write))):
            continue
        env_key = env or "-"
        bases = names if len(names) == 1 and "#" not in names[0] else _bases(names)
        for base in bases:
            secret = secrets.get((env_key, base))
            if secret is None:
                secret = secrets[(env_key, base)] = _SecretStats(env_key, base)
            if outcome == _DENIED:
                secret.denied += 1
            elif is_read:
                secret.reads += 1
                secret.readers.add(who)
                if isinstance(when, str) and (secret.last_read is None or when > secret.last_read):
                    secret.last_read = when
            else:
                secret.writes += 1

    # -- the inventory
    inventoried = {env: list(items) for env, items in inventory.items() if items is not None}
    missing = {env for env, items in inventory.items() if items is None}
    if environments is not None:
        missing |= set(environments) - set(inventoried)
    else:
        missing |= envs_seen - set(inventoried)
    not_inventoried = sorted(missing)

    never_read: dict[str, list[str]] = {}
    old: list[dict[str, Any]] = []
    cutoff = now - criteria.max_secret_age if criteria.max_secret_age is not None else None
    for env in sorted(inventoried):
        current = sorted((s for s in inventoried[env] if not s.deleted), key=lambda s: s.name)
        unread = [s.name for s in current if not _was_read(secrets.get((env, s.name)))]
        if unread:
            never_read[env] = unread
        if cutoff is not None:
            for s in current:
                if s.updated_at < cutoff:
                    old.append(
                        {
                            "env": env,
                            "name": s.name,
                            "version": s.version,
                            "updated_at": iso(s.updated_at),
                            "age_days": (now - s.updated_at).days,
                        }
                    )
    old.sort(key=lambda item: (item["updated_at"], item["env"], item["name"]))
    never_read_total = sum(len(names) for names in never_read.values())

    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "generated_at": iso(now),
        "period": {
            "since": iso(since) if since is not None else None,
            "until": iso(until) if until is not None else None,
            "first_event": first_time,
            "last_event": last_time,
        },
        "settings": criteria.settings(),
        "chain": _chain_summary(chain),
        "environments": {
            "inventoried": {env: _count_current(items) for env, items in inventoried.items()},
            "not_inventoried": not_inventoried,
        },
        "totals": {
            "events": total,
            "accesses": total - by_outcome.get(_STARTED, 0),
            "late": late,
            "by_outcome": by_outcome,
            "by_action": by_action,
        },
        "secrets": {
            f"{s.env}/{s.name}": {
                "env": s.env,
                "name": s.name,
                "reads": s.reads,
                "writes": s.writes,
                "denied": s.denied,
                "last_read": s.last_read,
                "distinct_readers": len(s.readers),
                "readers": sorted(s.readers),
            }
            for s in sorted(secrets.values(), key=lambda s: (s.env, s.name))
        },
        "actors": {
            who: {
                "events": a.events,
                "reads": a.reads,
                "secrets_read": a.secrets_read,
                "writes": a.writes,
                "denied": a.denied,
                "failed": a.failed,
                "not_found": a.not_found,
                "envs": sorted(a.envs),
            }
            for who, a in sorted(actors.items())
        },
        "principals": _by_principal(access),
        "break_glass": glass.to_dict(),
        "denied": {
            "total": denied_total,
            "shown": len(denied_items),
            "limit": LIST_LIMIT,
            "items": denied_items,
        },
        "production_reads": {
            "envs": list(criteria.production_envs),
            "total": prod_total,
            "secret_reads": prod_secret_reads,
            "shown": len(prod_items),
            "limit": LIST_LIMIT,
            "items": prod_items,
        },
        "never_read": {"total": never_read_total, "by_env": never_read},
        "secrets_over_max_age": {
            "max_age": _report_age(criteria),
            "total": len(old),
            "items": old,
        },
    }
    results = [
        chain_verdict(criteria, chain),
        limit_verdict(
            "max_denied",
            "denied attempts",
            denied_total,
            criteria.max_denied,
        ),
        limit_verdict(
            "max_production_reads",
            f"reads in production environments ({', '.join(criteria.production_envs) or 'none'})",
            prod_total,
            criteria.max_production_reads,
        ),
        never_read_verdict(criteria, never_read, never_read_total, not_inventoried),
        age_verdict(criteria, old, not_inventoried),
    ]
    report["criteria"] = results
    report["passed"] = not any(c["passed"] is False for c in results)
    return report


def _report_age(criteria: Criteria) -> str | None:
    age = criteria.max_secret_age
    return format_duration(age) if age is not None else None


def _bases(names: list[str]) -> list[str]:
    """Secret names without their ``#field``, each once."""
    return list(dict.fromkeys(name.partition("#")[0] for name in names))


def _was_read(stats: _SecretStats | None) -> bool:
    return stats is not None and stats.reads > 0


def _count_current(items: Sequence[SecretSummary]) -> int:
    return sum(1 for s in items if not s.deleted)


def _item(
    event: Mapping[str, Any],
    who: str,
    action: str,
    env: str | None,
    names: list[str],
    *,
    reason: bool,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "time": event.get("time"),
        "seq": event.get("seq"),
        "actor": who,
        "action": action,
        "env": env,
        "names": names,
    }
    if reason:
        item["reason"] = str(event.get("reason", ""))
    return item


def _chain_summary(chain: Mapping[str, Any] | None) -> dict[str, Any]:
    if chain is None:
        return {"checked": False, "ok": None, "events": None, "problem": None}
    problem = chain.get("problem")
    return {
        "checked": True,
        "ok": bool(chain.get("ok")),
        "events": chain.get("events"),
        "problem": dict(problem) if isinstance(problem, Mapping) else None,
    }
