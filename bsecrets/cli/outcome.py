"""The one place where a command's failure becomes an ``error:`` line, a ``hint:``
line and an exit code (docs/cli.md, "Errors" and "Exit codes").

Both ways into a command go through :func:`exit_with`: the Typer app
(``BsecretsGroup.main`` in app.py) and the fast path (fast.py), which runs
``get``, ``exec`` and ``export`` without importing typer. So this module imports no
typer: the app passes what only it can recognise (click's usage errors, its Abort, a
group's help) as the ``framework`` hook of :func:`exit_code_for`. The exit-code table
and the hints load only for an error (a command that succeeds does not need them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from bsecrets.config.settings import ENV_DEBUG, ENV_JSON
from bsecrets.errors import BsecretsError

# An exception the command-line framework knows how to report: its exit code after
# rendering it, or None when it is not one of the framework's.
FrameworkFailure = Callable[[BaseException, bool], int | None]


def render_error(
    message: str,
    hint: str | None = None,
    *,
    as_json: bool = False,
    kind: str = "error",
    exit_code: int | None = None,
    applied: str | None = None,
) -> None:
    """An ``error:`` line and a ``hint:`` line on stderr; ``as_json``: one line, one JSON
    object ``{"error", "hint", "kind", "exit_code"[, "applied"]}`` (docs/cli.md);
    ``exit_code`` None: ExitCode.ERROR."""
    if as_json:
        import json

        from bsecrets.cli.exit_codes import ExitCode

        if exit_code is None:
            exit_code = ExitCode.ERROR

        record: dict[str, Any] = {
            "error": message,
            "hint": hint or None,
            "kind": kind,
            "exit_code": int(exit_code),
        }
        if applied is not None:
            record["applied"] = applied
        sys.stderr.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")


def json_requested(args: Sequence[str], environ: Any = os.environ) -> bool:
    """Whether errors are JSON: ``BSECRETS_JSON=1``, or ``--json`` anywhere before ``--``
    (before or after the command; known before parsing, so a usage error is JSON too)."""
    if environ.get(ENV_JSON) == "1":
        return True
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def interrupted(as_json: bool) -> int:
    """Ctrl-C (or the end of input at a prompt): ``interrupted``, exit 130."""
    from bsecrets.cli.exit_codes import ExitCode

    code = ExitCode.INTERRUPTED
    render_error("interrupted", as_json=as_json, kind="interrupted", exit_code=code)
    return int(code)


def exit_code_for(
    exc: BaseException, as_json: bool = False, framework: FrameworkFailure | None = None
) -> int:
    """Render ``exc`` on stderr and return the exit code (docs/cli.md; a bsecrets error's
    from the table in bsecrets.cli.exit_codes)."""
    from bsecrets.cli.exit_codes import ExitCode, exit_code_of
    from bsecrets.cli.hints import hint_for

    debug = os.environ.get(ENV_DEBUG) == "1"
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, BsecretsError):
        code = exit_code_of(exc)
        render_error(
            exc.message, hint_for(exc), as_json=as_json, kind=exc.kind, exit_code=code,
            applied=exc.applied,
        )  # fmt: skip
        return int(code)
    status = framework(exc, as_json) if framework is not None else None
    if status is not None:
        return status
    if isinstance(exc, KeyboardInterrupt):
        return interrupted(as_json)
    if isinstance(exc, BrokenPipeError):
        return int(ExitCode.BROKEN_PIPE)
    # Never print the text of an unexpected exception: it might hold data.
    render_error(
        f"internal error ({type(exc).__name__})",
        None if debug else f"rerun with {ENV_DEBUG}=1 to see the traceback, and report it",
        as_json=as_json,
        kind="internal",
        exit_code=ExitCode.ERROR,
    )
    return int(ExitCode.ERROR)


def exit_with(
    argv: Sequence[str], work: Callable[[], Any], framework: FrameworkFailure | None = None
) -> NoReturn:
    """Run ``work`` (a command, given ``argv``) and exit: with its result when it is an
    int, else 0; with the code :func:`exit_code_for` gives when it raises."""
    try:
        rv = work()
    except SystemExit:
        raise
    except BaseException as exc:
        code = exit_code_for(exc, json_requested(argv), framework)
        flush_quietly()
        sys.exit(code)
    sys.exit(rv if isinstance(rv, int) else 0)


def flush_quietly() -> None:
    """Flush stdout; when its reader went away, point it at /dev/null so that Python
    does not complain at shutdown."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError, OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
