"""Repeatable options that also take comma lists (``--only a,b --only c``), read without
typer: exec and export, through the Typer app or the fast path (fast.py), split them
with the same function."""

from __future__ import annotations

from collections.abc import Sequence


def split_list(values: Sequence[str] | None) -> list[str]:
    """Each value's comma-separated parts, blanks dropped, in order."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]
