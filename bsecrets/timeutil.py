"""Clock and duration helpers (the clock is injected so tests can freeze it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bsecrets.errors import UsageError

Clock = Callable[[], datetime]

_DURATION = r"([0-9]+)([smhdw])"  # compiled on first use (re caches it)
_DURATION_FULL = r"(?:[0-9]+[smhdw])+"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# The longest duration anything accepts (an audit retention, an age in --since, a
# report's max_secret_age): 100 years keeps `now - duration` well inside what a
# datetime can hold, and is longer than any retention rule asks for.
MAX_DURATION_DAYS = 36500
MAX_DURATION = timedelta(days=MAX_DURATION_DAYS)


def utcnow() -> datetime:
    return datetime.now(UTC)


def describe_days(delta: timedelta) -> str:
    """A whole number of days as the error messages show it: '7 days', '36500 days (100 years)'."""
    days = delta.days
    years = f" ({days // 365} years)" if days % 365 == 0 and days >= 3650 else ""
    return f"{days} day{'s' if days != 1 else ''}{years}"


def short_span(seconds: float) -> str:
    """``3d4h``, ``2h10m``, ``45s``: two units at most (a negative span is ``0s``)."""
    parts, rest = [], max(int(seconds), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest or not parts:
        parts.append(f"{rest}s")
    return "".join(parts[:2])


def parse_duration(
    text: str, *, what: str = "duration", maximum: timedelta = MAX_DURATION
) -> timedelta:
    """'90s', '30m', '8h', '1d', '1h30m' -> timedelta, at most ``maximum`` (whole days);
    anything else is a usage error (never an OverflowError, whatever the digits)."""
    text = text.strip().lower()
    shown = text if len(text) <= 40 else text[:37] + "..."
    if not re.fullmatch(_DURATION_FULL, text):
        raise UsageError(
            f"invalid {what} {shown!r}", hint="use a number and a unit: 90s, 30m, 8h, 2d, 1h30m"
        )
    limit = int(maximum.total_seconds())
    seconds = 0
    for m in re.finditer(_DURATION, text):
        digits = m.group(1).lstrip("0")
        # more digits than the limit has cannot fit: stop before int() of a huge string
        if len(digits) > len(str(limit)):
            seconds = limit + 1
            break
        seconds += int(digits or "0") * _UNITS[m.group(2)]
        if seconds > limit:
            break
    if seconds > limit:
        raise UsageError(
            f"{what} {shown!r} is longer than the maximum, {describe_days(maximum)}",
            hint=f"give a duration of at most {maximum.days}d, in s, m, h, d or w",
        )
    if seconds <= 0:
        raise UsageError(
            f"invalid {what} {shown!r}: it must be longer than zero",
            hint="use a number and a unit: 90s, 30m, 8h, 2d, 1h30m",
        )
    return timedelta(seconds=seconds)


def iso(dt: datetime) -> str:
    """``2026-12-01T03:17:59.810Z``: what ``isoformat(timespec="milliseconds")`` writes
    of the time in UTC (the milliseconds truncated), with Z for +00:00; formatted in
    one step, at about half the cost (ls prints 100,000; str.format and f-strings are
    slower than % here)."""
    t = dt.astimezone(UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - the fastest here
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond // 1000
    )  # fmt: skip


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
