"""Clock and duration helpers (the clock is injected so tests can freeze it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bsecrets.core.errors import UsageError

Clock = Callable[[], datetime]

_DURATION_RE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """'90s', '30m', '8h', '1d', '1h30m' -> timedelta; anything else is a usage error."""
    text = text.strip().lower()
    pos, seconds = 0, 0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        seconds += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text) or seconds <= 0:
        raise UsageError(
            f"invalid {what} {text!r}", hint="use a number and a unit: 90s, 30m, 8h, 2d, 1h30m"
        )
    return timedelta(seconds=seconds)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
