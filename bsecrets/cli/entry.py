"""The console script's entry point (``[project.scripts]``, ``python -m bsecrets``):
the fast path when it fully understands the arguments (fast.py), else the Typer app.

This module and what it imports load no typer, so a plain ``get``, ``exec`` or
``export`` never pays for it. Both paths end in process_exit.leave: the command's
exit status without the interpreter's teardown."""

from __future__ import annotations

import os
import sys

from bsecrets.cli import fast
from bsecrets.cli.process_exit import leave


def main() -> None:
    try:
        _dispatch(sys.argv[1:])
    except SystemExit as done:  # every command ends so, on both paths
        leave(done.code)


def _dispatch(argv: list[str]) -> None:
    found = fast.plan(argv, os.environ)
    if found is not None:
        fast.run(found, argv)
    # the seam: typer and the command table load only for what the fast path hands on
    from bsecrets.cli.app import app

    app(prog_name="bsecrets")
