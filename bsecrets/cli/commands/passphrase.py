"""``bsecrets passphrase change``: a new passphrase for your key (services/passphrase.py);
and the prompt for a new passphrase that ``access principal add`` shares."""

from __future__ import annotations

import sys

import typer

from bsecrets.cli.context import CliContext, JsonOption, command_group, obj
from bsecrets.config.settings import ENV_NEW_PASSPHRASE
from bsecrets.errors import UsageError
from bsecrets.services import passphrase

app = command_group(
    "passphrase",
    "The passphrase that opens your key (the owner's, or a principal's with --as).\n\n"
    "Examples:\n"
    "  bsecrets passphrase change\n"
    "  bsecrets --as alice passphrase change",
)


def ask_new_passphrase(cli: CliContext, label: str, missing: str, meaning: str) -> str:
    """BSECRETS_NEW_PASSPHRASE, else asked twice on a terminal (``label``, then ``label
    (again)``); UsageError when the two differ, or with ``missing`` when there is no
    terminal (the hint says BSECRETS_NEW_PASSPHRASE is ``meaning``)."""
    given = cli.settings.environ.get(ENV_NEW_PASSPHRASE)
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise UsageError(missing, hint=f"set {ENV_NEW_PASSPHRASE} ({meaning})")
    import getpass

    first = getpass.getpass(f"{label}: ")
    if getpass.getpass(f"{label} (again): ") != first:
        raise UsageError("the passphrases differ", hint="type the same passphrase twice")
    return first


@app.command("change")
def change(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Give your key a new passphrase. The current one proves it is you
    (BSECRETS_PASSPHRASE / BSECRETS_PASSPHRASE_FILE, the OS keyring for a vault made with
    --keyring, else a prompt; a session is not enough: exit 4). The new one: from
    BSECRETS_NEW_PASSPHRASE, else asked twice on a terminal; at least 8 characters, not
    the current one (exit 2). The old passphrase no longer opens the vault; the OS
    keyring's key and sessions already started keep working. With --as NAME: that
    principal's own passphrase.

    Examples:
      bsecrets passphrase change
      bsecrets --as alice passphrase change
      bsecrets passphrase change --json
    """
    cli = obj(ctx)
    manager = cli.manager
    who = manager.creds.principal

    def ask_new() -> str:
        return ask_new_passphrase(
            cli,
            "New passphrase" if who == "owner" else f"New passphrase for {who}",
            "no new passphrase, and there is no terminal to ask",
            "the new passphrase",
        )

    done = passphrase.change(manager, ask_new)
    if cli.want_json(json_out):
        cli.emit_json(
            {"principal": done.principal, "proved_by": done.proved_by, "kdf": done.kdf,
             "keyring": done.keyring}
        )  # fmt: skip
        return
    whose = "the owner" if done.principal == "owner" else f"principal '{done.principal}'"
    cli.message(
        f"new passphrase set for {whose}: the old one no longer opens the vault"
        + ("; the OS keyring still does" if done.keyring else "")
    )
