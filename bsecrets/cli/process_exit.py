"""Ending the process once a command is done, without the interpreter's teardown.

When a command returns, Python's shutdown runs the atexit handlers, flushes
stdout and stderr, and then tears down every module and the objects they hold,
one by one. That last part does nothing a short-lived process needs (the OS
takes back its memory and closes its descriptors) and costs about as much as
the command's own work: ~6 ms of a ~64 ms ``get`` measured here (bench/README.md,
"Leaving without the teardown"). So :func:`leave` does the first two parts as
Python would, and then ``os._exit``.

It does so only when that is all the teardown would do that anyone could see:
in the main thread with no other thread alive (Python joins non-daemon threads at
shutdown; a daemon thread would be cut short either way, but its work is not
ours to cut), not in interactive inspection (``python -i``), not under a
profiler or tracer (cProfile, coverage and debuggers report after the program),
and when both streams flush. Otherwise it raises SystemExit and Python exits as it always
did: with a reader of stdout gone, Python's own report and exit status stand.

Nothing in bsecrets leaves a file open for Python's teardown to close (the vault's
SQLite connection is closed by the command; files are written inside ``with``);
tests/test_process_exit.py checks the exit statuses and what is written.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import NoReturn


def leave(code: object) -> NoReturn:
    """Exit with ``code`` as ``sys.exit(code)`` would (None: 0; an int: itself; anything
    else: printed on stderr, 1), skipping the interpreter's teardown when it is safe."""
    if not _alone() or sys.flags.inspect or _observed():
        raise SystemExit(code)
    status = _status(code)
    atexit._run_exitfuncs()  # what Python runs first at shutdown (tracing's flush)
    if not _alone() or not _flushed():
        raise SystemExit(status)
    os._exit(status)


def _status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{code}\n")
    return 1


def _alone() -> bool:
    """Only the main thread runs (threading is imported by whoever starts a thread)."""
    threading = sys.modules.get("threading")
    if threading is None:
        return True
    return threading.current_thread() is threading.main_thread() and threading.active_count() == 1


def _observed() -> bool:
    """A profiler or tracer (cProfile, coverage, a debugger) writes its report when the
    program ends, after this: it gets the ordinary exit."""
    return sys.getprofile() is not None or sys.gettrace() is not None


def _flushed() -> bool:
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            return False
    return True
