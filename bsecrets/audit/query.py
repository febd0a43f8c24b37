"""Selecting audit events: the filters of ``audit log``/``search``/``export``/``report``,
and the JSON Lines form of ``audit export``."""

from __future__ import annotations

import fnmatch
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from bsecrets.errors import UsageError
from bsecrets.named_tuples import NamedTuple
from bsecrets.timeutil import iso, parse_duration

TIME_HINT = "use a date (2026-11-01), a UTC time (2026-11-01T09:30:00Z) or an age (90m, 12h, 7d)"


def parse_when(text: str, option: str, now: datetime) -> datetime:
    """``--since``/``--until``: an ISO date or time (UTC unless it says otherwise) or an
    age before ``now`` ("7d")."""
    value = text.strip()
    if value and value[0].isdigit() and value[-1] in "smhdw" and value[:-1].isalnum():
        return now - parse_duration(value, what=option)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"invalid {option} {text.strip()[:40]!r}", hint=TIME_HINT) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:  # 0001-01-01T00:00+01:00 is a valid datetime but has no UTC form
        when.astimezone(UTC)
    except OverflowError:
        raise UsageError(
            f"{option} {text.strip()[:40]!r} is out of range (years 1 to 9999 in UTC)",
            hint=TIME_HINT,
        ) from None
    return when


class EventFilter(NamedTuple):
    since: datetime | None = None
    until: datetime | None = None
    env: str | None = None
    name: str | None = None  # a glob over the event's name or names
    action: str | None = None  # a glob: "get", "audit.*"
    actor: str | None = None  # a substring of user@host or the principal
    outcome: str | None = None
    text: str | None = None  # a substring of any field (case-insensitive)

    def time_bounds(self) -> tuple[str | None, str | None]:
        """The bounds as stored times (the SQL filter on the clear ``time`` column)."""
        return (
            iso(self.since) if self.since else None,
            iso(self.until) if self.until else None,
        )

    def matches(self, event: dict[str, Any]) -> bool:
        if self.env is not None and event.get("env") != self.env:
            return False
        if self.outcome is not None and event.get("outcome") != self.outcome:
            return False
        if self.action is not None and not fnmatch.fnmatchcase(
            str(event.get("action", "")), self.action
        ):
            return False
        if self.name is not None and not any(
            fnmatch.fnmatchcase(name, self.name) for name in event_names(event)
        ):
            return False
        if self.actor is not None:
            actor = event.get("actor") or {}
            who = f"{actor.get('user', '')}@{actor.get('host', '')} {actor.get('principal', '')}"
            if self.actor not in who:
                return False
        if self.text is not None:
            shown = json.dumps({k: v for k, v in event.items() if k != "mac"}, sort_keys=True)
            if self.text.lower() not in shown.lower():
                return False
        return True


def select(
    events: Iterable[dict[str, Any]], where: EventFilter, limit: int | None = None
) -> list[dict[str, Any]]:
    """The matching events, oldest first; with ``limit``, the newest ``limit`` of them."""
    matching = (e for e in events if where.matches(e))
    if limit is None:
        return list(matching)
    return list(deque(matching, maxlen=limit))


def actor_label(event: Mapping[str, Any]) -> str:
    """``user@host``, `` (principal)`` unless the owner, `` [ci:PROVIDER REPOSITORY]`` in CI."""
    actor = event.get("actor")
    ci = event.get("ci")
    return actor_text(
        *(actor_key(actor) if isinstance(actor, dict) else (None, None, None)),
        *(ci_key(ci) if isinstance(ci, dict) else (None, None)),
    )


def actor_key(actor: dict[str, Any]) -> tuple[Any, Any, Any]:
    return (actor.get("user"), actor.get("host"), actor.get("principal"))


def ci_key(ci: dict[str, Any]) -> tuple[Any, Any]:
    return (ci.get("provider"), ci.get("repository"))


def actor_text(user: Any, host: Any, principal: Any, provider: Any, repository: Any) -> str:
    if user is None and host is None:
        label = "unknown"
    else:
        label = f"{'?' if user is None else user}@{'?' if host is None else host}"
    if principal not in (None, "", "owner"):
        label += f" ({principal})"
    if provider:
        label += f" [ci:{provider} {repository}]" if repository else f" [ci:{provider}]"
    return label


def event_names(event: Mapping[str, Any]) -> list[str]:
    """The secret names an event touches (``name`` and bulk ``names``), as written."""
    name = event.get("name")
    listed = event.get("names")
    names = [name] if type(name) is str else []
    if type(listed) is list:
        names += [n for n in listed if type(n) is str]
    return names


def jsonl_lines(
    events: Iterable[dict[str, Any]], prev_mac: str, where: EventFilter
) -> Iterator[str]:
    """``audit export --format jsonl``: one object per event with its chain fields
    (seq, time, event, prev_mac, mac), so a verifier holding the chain key can
    recompute ``mac = HMAC-SHA256(key, prev_mac || canonical JSON of event)``."""
    for event in events:
        mac = event.pop("mac")
        if where.matches(event):
            line = {
                "seq": event.get("seq"),
                "time": event.get("time"),
                "event": event,
                "prev_mac": prev_mac,
                "mac": mac,
            }
            yield json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n"
        prev_mac = mac
