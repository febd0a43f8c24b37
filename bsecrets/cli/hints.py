"""The command line's hints: those that name a bsecrets command, option or
session variable, which no layer below the CLI may know about.

An error that carries a next step (``error.step``, a :class:`NextStep`) is
worded by its template in :data:`STEPS` (``str.format`` with the step's
arguments, and ``{hint}``: the error's own hint, for templates that extend
it). Else a hint given where the error was raised wins; else the hint of the
most specific class of the error in :data:`HINTS`; else the class's own
``default_hint`` (already in ``error.hint``), if any.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from bsecrets.errors import (
    BsecretsError,
    NextStep,
    ProfileNotFound,
    SecretNotFound,
    SessionInvalid,
    VaultLocked,
    VaultNotFound,
    VersionConflict,
    VersionNotFound,
)

HINTS: Final[Mapping[type[BsecretsError], str]] = {
    SecretNotFound: "list what exists with 'bsecrets ls'",
    VersionNotFound: "list the versions with 'bsecrets history NAME'",
    ProfileNotFound: (
        "create one with 'bsecrets init', or point to it with --profile / BSECRETS_PROFILE"
    ),
    VaultNotFound: "create it with 'bsecrets init'",
    VaultLocked: (
        "run 'eval \"$(bsecrets unlock)\"', or set BSECRETS_SESSION, "
        "BSECRETS_PASSPHRASE or BSECRETS_PASSPHRASE_FILE"
    ),
    SessionInvalid: (
        "start a new session with 'eval \"$(bsecrets unlock)\"', or unset BSECRETS_SESSION"
    ),
    VersionConflict: "read the current version with 'bsecrets history NAME' and retry",
}


# NextStep.action -> its wording on the command line
STEPS: Final[Mapping[str, str]] = {
    # --- the vault file, the audit log, the backends ---
    # --- configuration, formats, services ---
}


def step_text(step: NextStep, hint: str | None = None) -> str:
    """``step`` worded for the command line (KeyError for an action without a template)."""
    return STEPS[step.action].format(hint=hint or "", **step.args)


def hint_for(error: BsecretsError) -> str | None:
    """The hint to show with ``error`` on the command line (see the module docstring)."""
    if error.step is not None:
        return step_text(error.step, error.hint)
    if error.hint is not None:
        return error.hint
    for base in type(error).__mro__:
        hint = HINTS.get(base)
        if hint is not None:
            return hint
    return None
