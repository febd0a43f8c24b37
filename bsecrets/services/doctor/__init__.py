"""``bsecrets doctor``: each check module's findings and the exit rule (docs/doctor.md).

Each check is a function ``(manager, fix) -> list[Finding]``; :func:`run` calls them in
order. The profile file itself is checked before a manager exists
(:func:`check_profile`: a profile that does not load has no manager to run the rest).
The file checks come first, so that ``--fix`` mends the permissions before the others
open the vault.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bsecrets.services.doctor.audit import check_audit
from bsecrets.services.doctor.backends import check_backends
from bsecrets.services.doctor.duties import check_break_glass, check_rotation
from bsecrets.services.doctor.files import check_files
from bsecrets.services.doctor.findings import Finding, Status
from bsecrets.services.doctor.os_keyring import check_keyring
from bsecrets.services.doctor.profile import check_profile, lint_profile, locate_profile
from bsecrets.services.doctor.storage import check_storage

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

Check = Callable[["SecretsManager", bool], list[Finding]]

CHECKS: tuple[Check, ...] = (
    check_files,
    lint_profile,
    check_storage,
    check_audit,
    check_rotation,
    check_break_glass,
    check_keyring,
    check_backends,
)


def run(manager: SecretsManager, fix: bool) -> list[Finding]:
    """Every check's findings, in order; ``fix`` lets each repair what is safe."""
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check(manager, fix))
    return findings


def exit_code(findings: Sequence[Finding]) -> int:
    """5 if any finding is an integrity FAIL, else 1 if any WARN or FAIL, else 0."""
    if any(f.status is Status.FAIL and f.integrity for f in findings):
        return 5
    if any(f.status in (Status.WARN, Status.FAIL) for f in findings):
        return 1
    return 0


__all__ = [
    "CHECKS",
    "Finding",
    "Status",
    "check_profile",
    "exit_code",
    "locate_profile",
    "run",
]
