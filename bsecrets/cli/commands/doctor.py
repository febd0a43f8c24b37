"""doctor: is everything around the vault in order? Each check with a status, what it
found and what to do (docs/doctor.md); the checks are services/doctor/.

A table on a terminal, one line per finding otherwise (with -q, only the problems),
``{"findings": [...], "exit_code": N}`` with --json. Exit 0 all good, 1 warnings or
failures, 5 an integrity problem. Doctor never asks anything: no passphrase prompt, no
question, no one-time code; a check that would need one is SKIP.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bsecrets.cli.context import CliContext, JsonOption, obj
from bsecrets.models import Confirmation
from bsecrets.services import doctor as checks
from bsecrets.services.doctor import Finding, Status


def doctor(
    ctx: typer.Context,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Repair what is safe (permissions, expired sessions, the WAL, the audit "
            "anchor once the chain verifies) and say what was done.",
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Check the profile, the vault file, sessions, the audit log and its anchor,
    rotations, break-glass, the keyring and each backend. Exit 0 all good, 1 warnings,
    5 an integrity problem.

    Examples:
      bsecrets doctor
      bsecrets doctor --fix
      bsecrets doctor --json | jq '.findings[] | select(.status != "ok")'
    """
    cli = obj(ctx)
    path = checks.locate_profile(cli.settings.profile, cli.settings.environ, Path.cwd())
    findings, profile = checks.check_profile(path, fix)
    if profile is not None:
        manager = cli.manager
        # doctor never asks: no passphrase prompt (the keys are used when a session, a
        # passphrase, a token or the keyring opens them), no question, no one-time code
        manager.creds = manager.creds._replace(prompt=None)
        manager.confirmation = Confirmation(reason=cli.settings.reason, yes=cli.settings.yes)
        findings += checks.run(manager, fix)
    code = checks.exit_code(findings)
    if cli.want_json(json_out):
        cli.emit_json({"findings": [_as_dict(f) for f in findings], "exit_code": code})
    elif sys.stdout.isatty() and not cli.settings.quiet:
        _print_table(cli, findings)
    else:
        _print_lines(findings, quiet=cli.settings.quiet)
    if code:
        raise typer.Exit(code)


def _as_dict(finding: Finding) -> dict[str, Any]:
    return {**finding._asdict(), "status": str(finding.status)}


def _print_lines(findings: list[Finding], *, quiet: bool) -> None:
    out = sys.stdout.write
    for f in findings:
        if quiet and f.status in (Status.OK, Status.SKIP) and f.fixed is None:
            continue
        out(f"{f.status:<5} {f.check}: {f.detail}\n")
        if f.fixed:
            out(f"      fixed: {f.fixed}\n")
        if f.hint and f.status is not Status.OK:
            out(f"      hint: {f.hint}\n")
    if not quiet:
        out(_summary(findings) + "\n")


def _summary(findings: list[Finding]) -> str:
    counts = {status: sum(f.status is status for f in findings) for status in Status}
    fixed = sum(f.fixed is not None for f in findings)
    text = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"doctor: {text}" + (f"; {fixed} fixed" if fixed else "")


_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}


def _print_table(cli: CliContext, findings: list[Finding]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # details are text, never rich markup

    console = Console(no_color=not cli.settings.color, highlight=False)
    grid = Table(box=None, header_style="bold")
    for header in ("STATUS", "CHECK", "DETAIL"):
        grid.add_column(header, overflow="fold")
    for f in findings:
        detail = Text(f.detail)
        if f.fixed:
            detail.append(f"\nfixed: {f.fixed}", style="green")
        if f.hint and f.status is not Status.OK:
            detail.append(f"\nhint: {f.hint}", style="dim")
        grid.add_row(Text(str(f.status), style=_STYLE[f.status]), Text(f.check), detail)
    console.print(grid)
    console.print(Text(_summary(findings)))
