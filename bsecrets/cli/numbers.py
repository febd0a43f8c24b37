"""Whole-number option values (versions, counts, sequence numbers), read without
typer: the Typer options (context.whole_number) and the fast path (fast.py) parse
them with the same function, so both take and refuse the same words."""

from __future__ import annotations

# Versions, counts and sequence numbers are SQLite INTEGERs (64-bit signed): a
# number past this cannot name anything, and would overflow on its way to SQL.
MAX_NUMBER = 2**63 - 1


def parse_whole_number(value: str, minimum: int) -> int:
    """``value`` as an integer from ``minimum`` to MAX_NUMBER; ValueError with the
    reason otherwise. It looks at the digits before int(), so 5,000 of them are
    "larger than the maximum" (not Python's digit-limit ValueError), and the
    reason never echoes them whole."""
    text = str(value).strip()
    shown = text if len(text) <= 24 else f"{text[:10]}... ({len(text)} characters)"
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"{shown!r} is not a whole number")
    if len(digits.lstrip("0")) > len(str(MAX_NUMBER)) or int(text) > MAX_NUMBER:
        if text.startswith("-"):
            raise ValueError(f"{shown} is less than {minimum}")
        raise ValueError(f"{shown} is larger than the maximum, {MAX_NUMBER}")
    if int(text) < minimum:
        raise ValueError(f"{shown} is less than {minimum}")
    return int(text)
