"""The command line's exit codes, and the one table that gives each error its code.

The error classes (``bsecrets.errors``) say what went wrong; this table says
what the command line exits with for it (docs/cli.md, "Exit codes"). An error
takes the code of the most specific class in the table that it is an instance
of, so a new subclass inherits its parent's code, as a JSON ``kind`` may be new
but its ``exit_code`` is one a script already knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Final

from bsecrets.errors import (
    BackendUnavailable,
    BsecretsError,
    CommandNotExecutable,
    CommandNotFound,
    Conflict,
    Denied,
    IntegrityError,
    NotFound,
    UsageError,
)


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    DENIED = 4
    INTEGRITY = 5
    UNAVAILABLE = 6
    CONFLICT = 7
    # exec, as shells do, when the command cannot be run
    NOT_EXECUTABLE = 126
    COMMAND_NOT_FOUND = 127
    # 128 + the signal, as a shell reports it
    INTERRUPTED = 130  # SIGINT: Ctrl-C
    BROKEN_PIPE = 141  # SIGPIPE: the reader of stdout went away


# Error class -> exit code, in the order of docs/cli.md. Only the classes whose
# code differs from their parent's are here.
EXIT_CODES: Final[Mapping[type[BsecretsError], ExitCode]] = {
    BsecretsError: ExitCode.ERROR,
    UsageError: ExitCode.USAGE,
    NotFound: ExitCode.NOT_FOUND,
    Denied: ExitCode.DENIED,
    IntegrityError: ExitCode.INTEGRITY,
    BackendUnavailable: ExitCode.UNAVAILABLE,
    Conflict: ExitCode.CONFLICT,
    CommandNotExecutable: ExitCode.NOT_EXECUTABLE,
    CommandNotFound: ExitCode.COMMAND_NOT_FOUND,
}


def exit_code_of(error: BsecretsError | type[BsecretsError]) -> ExitCode:
    """The exit code for ``error`` (an error or its class): that of the most
    specific class of it in :data:`EXIT_CODES`."""
    cls = error if isinstance(error, type) else type(error)
    for base in cls.__mro__:
        code = EXIT_CODES.get(base)
        if code is not None:
            return code
    return ExitCode.ERROR
