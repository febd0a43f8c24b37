"""Python's cyclic garbage collector in the CLI: when it runs, and when it need not.

Start-up: the console script (cli/entry.py) holds it off while the modules load
(they make many objects and next to no garbage, and each collection walks them all:
~2 ms of a ``get``, ~3.5 ms of an ``ls``, bench/README.md) and releases it before a
command's own work: once the core has loaded (CliContext.manager, which every
command of the fast path reaches) or the Typer app. What loaded is then frozen
(``gc.freeze``): kept for good, so later collections do not walk it either. Only a
process that entered through the console script is touched: the SDK, the server and
tests that run commands in-process keep the collector as they have it.

:func:`paused`: off for a block that builds many objects and keeps them (``ls``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_held = False  # held off by hold(), not yet released


def hold() -> None:
    """Off until :func:`release` (the console script, before anything loads)."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release() -> None:
    """On again, what is alive frozen, if :func:`hold` turned it off; else nothing."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Off for a block that builds many objects and keeps them (ls of 100,000 secrets:
    200,000 rows, 100,000 records and as many lines), then as it was. Otherwise each
    collection walks every object still alive (0.25-0.4 s of an ls's 2.6, up to 1 s
    under load); reference counting frees the block's objects all the same."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
