"""``bsecrets mfa enroll/confirm/status/clear``: the caller's second factor (TOTP).

Enrolment shows the otpauth URI and a QR code on the terminal; the factor is in
use once a first code confirms it (on a terminal, asked right away). Codes come
from a prompt or BSECRETS_OTP, never from argv (services/mfa.py).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bsecrets.cli.context import JsonOption, command_group, obj
from bsecrets.config.settings import ENV_OTP
from bsecrets.services import mfa

app = command_group(
    "mfa",
    "Your second factor: a TOTP authenticator app for protected environments.\n\n"
    "Examples:\n"
    "  bsecrets mfa enroll\n"
    "  bsecrets mfa confirm\n"
    "  bsecrets mfa status",
)


def _show_qr(uri: str) -> None:
    import segno  # only here: the one command that draws a QR code

    segno.make(uri, error="m").terminal(out=sys.stdout, compact=True)


@app.command("enroll")
def enroll(
    ctx: typer.Context,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace the factor in use (asks for a code of it)."),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Enrol a TOTP authenticator: prints the otpauth URI and a QR code to scan (they
    hold the seed: do not paste them anywhere else), then asks for a first code on a
    terminal; elsewhere confirm with 'bsecrets mfa confirm' and BSECRETS_OTP.

    Examples:
      bsecrets mfa enroll
      bsecrets mfa enroll --replace
    """
    cli = obj(ctx)
    uri = mfa.enroll(cli.manager, replace=replace)
    if cli.want_json(json_out):
        cli.emit_json({"uri": uri, "confirmed": False})
        return
    sys.stdout.write(uri + "\n")
    if sys.stdout.isatty():
        _show_qr(uri)
    sys.stdout.flush()
    if not sys.stdin.isatty() or cli.settings.one_time_code():
        cli.message(f"then confirm it: {ENV_OTP}=<code> bsecrets mfa confirm")
        return
    mfa.confirm(cli.manager)
    cli.message("second factor enrolled")


@app.command("confirm")
def confirm(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Put the enrolled factor in use with a current code (a prompt, or BSECRETS_OTP).

    Examples:
      bsecrets mfa confirm
      bsecrets mfa confirm --json
    """
    cli = obj(ctx)
    mfa.confirm(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json({"confirmed": True})
        return
    cli.message("second factor enrolled")


@app.command("status")
def status(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Whether you have a factor, since when, and any failures or lockout.

    Examples:
      bsecrets mfa status
      bsecrets mfa status --json
    """
    cli = obj(ctx)
    state = mfa.status(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json(state)
        return
    if not state["enrolled"]:
        pending = " (one enrolled, not confirmed yet)" if state["pending"] else ""
        sys.stdout.write(f"{state['principal']}: no second factor{pending}\n")
        return
    line = f"{state['principal']}: enrolled {state['enrolled_at']}"
    if state["failures"]:
        line += f", {state['failures']} failed code(s)"
    if state["locked_until"]:
        line += f", locked out until {state['locked_until']}"
    sys.stdout.write(line + "\n")


@app.command("clear")
def clear(
    ctx: typer.Context,
    principal: Annotated[
        str | None, typer.Argument(help="Whose lockout to clear (default: yours).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Clear a principal's lockout after wrong codes (admins; replay protection stays).

    Examples:
      bsecrets mfa clear
      bsecrets mfa clear owner --json
    """
    cli = obj(ctx)
    changed = mfa.clear(cli.manager, principal)
    if cli.want_json(json_out):
        cli.emit_json({"changed": changed})
        return
    cli.message("lockout cleared" if changed else "nothing to clear: not locked out")
