"""The console script's entry point (``[project.scripts]``, ``python -m bsecrets``):
the fast path when it fully understands the arguments (fast.py), else the Typer app.

This module and what it imports load no typer, so a plain ``get``, ``exec`` or
``export`` never pays for it. Both paths end in process_exit.leave: the command's
exit status without the interpreter's teardown.

Python's cyclic collector is held off while the modules load, and released before a
command's own work (collector.py); so this module imports the rest in :func:`main`,
not before.
"""

from __future__ import annotations

import sys

from bsecrets.cli import collector


def main() -> None:
    collector.hold()
    from bsecrets.cli.process_exit import leave

    try:
        _dispatch(sys.argv[1:])
    except SystemExit as done:  # every command ends so, on both paths
        leave(done.code)


def _dispatch(argv: list[str]) -> None:
    import os

    from bsecrets.cli import fast

    found = fast.plan(argv, os.environ)
    if found is not None:
        fast.run(found, argv)  # the collector is back once the core loaded
    # the seam: typer and the command table load only for what the fast path hands on
    from bsecrets.cli.app import app

    collector.release()
    app(prog_name="bsecrets")
