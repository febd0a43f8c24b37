"""init, unlock, lock, status: the vault's life cycle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bsecrets.cli.context import JsonOption, obj
from bsecrets.config.settings import ENV_PASSPHRASE, ENV_PASSPHRASE_FILE
from bsecrets.crypto.keys import check_new_passphrase
from bsecrets.errors import UsageError
from bsecrets.services import sessions
from bsecrets.services.bootstrap import initialize
from bsecrets.timeutil import iso, parse_duration, utcnow
from bsecrets.vaultfile.session import MAX_TTL


def _new_passphrase(from_env: str | None) -> str | None:
    """The passphrase for a new vault: the environment, else asked twice on a terminal."""
    passphrase = from_env
    if passphrase is None and sys.stdin.isatty():
        import getpass

        passphrase = getpass.getpass("New vault passphrase: ")
        if getpass.getpass("Repeat the passphrase: ") != passphrase:
            raise UsageError("the two passphrases differ", hint="run 'bsecrets init' again")
    if passphrase is not None:
        check_new_passphrase(passphrase)
    return passphrase


def init(
    ctx: typer.Context,
    envs: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="An environment to create (repeatable; default: dev)."),
    ] = None,
    use_keyring: Annotated[
        bool, typer.Option("--keyring", help="Keep the vault key in the OS keyring.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Over an existing profile: add the --env environments it lacks "
            "(nothing in it is dropped).",
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Write a profile and create the encrypted local vault.

    Examples:
      bsecrets init
      bsecrets init --env dev --env staging --env prod
      bsecrets -p ~/app/bsecrets.yaml init --keyring
    """
    cli = obj(ctx)
    profile_path = Path(cli.settings.profile or "bsecrets.yaml").absolute()
    passphrase = _new_passphrase(cli.settings.passphrase())
    if passphrase is None and not use_keyring:
        raise UsageError(
            "no passphrase for the new vault",
            hint=f"set {ENV_PASSPHRASE} or {ENV_PASSPHRASE_FILE}, "
            "run in a terminal, or use --keyring",
        )
    result = initialize(
        profile_path,
        envs or ([cli.settings.env_flag] if cli.settings.env_flag else []),  # -e before 'init'
        passphrase=passphrase,
        use_keyring=use_keyring,
        force=force,
        clock=utcnow,
    )
    if use_keyring and not result.vault_created:
        cli.warn("the existing vault was kept; --keyring applies only to a new vault")
    if cli.want_json(json_out):
        cli.emit_json(
            {
                "profile": str(result.profile),
                "profile_action": result.profile_action,
                "vault_file": str(result.vault_file),
                "environments": result.environments,
                "added": result.added,
                "vault_created": result.vault_created,
                "keyring": result.keyring,
                "removed": [str(path) for path in result.removed],
            }
        )
        return
    for path in result.removed:
        cli.message(f"removed {path} (a second name of the vault left by an interrupted init)")
    added = ", ".join(result.added)
    cli.message(
        {
            "created": f"wrote {result.profile}",
            "updated": f"added {added} to {result.profile} (everything else in it kept)",
            "kept": f"kept {result.profile} as it is (it has every environment named)",
            "replaced": f"replaced {result.profile}, which did not parse, with {added}",
        }[result.profile_action]
    )
    verb = "created" if result.vault_created else "kept the existing"
    cli.message(f"{verb} vault {result.vault_file} ({', '.join(result.environments)})")
    if result.keyring:
        cli.message("the vault key is in the OS keyring")


def unlock(
    ctx: typer.Context,
    ttl: Annotated[str, typer.Option("--ttl", help="How long the session lasts (max 7d).")] = "8h",
    json_out: JsonOption = False,
) -> None:
    """Start a session: prints 'export BSECRETS_SESSION=...' for eval.

    Examples:
      eval "$(bsecrets unlock)"
      bsecrets unlock --ttl 30m
      bsecrets unlock --json
    """
    cli = obj(ctx)
    duration = parse_duration(ttl, what="--ttl", maximum=MAX_TTL)
    started = sessions.unlock(cli.manager, duration)
    if cli.want_json(json_out):
        cli.emit_json({"session": started.token, "expires_at": iso(started.expires_at)})
        return
    sys.stdout.write(f"export BSECRETS_SESSION={started.token}\n")
    cli.message(f"unlocked until {iso(started.expires_at)}")


def lock(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """End the session in BSECRETS_SESSION, or every session of this vault.

    Examples:
      eval "$(bsecrets lock)"
      bsecrets lock
      bsecrets lock --json
    """
    cli = obj(ctx)
    ended = sessions.lock(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json({"sessions_ended": ended})
        return
    sys.stdout.write("unset BSECRETS_SESSION\n")
    cli.message(f"locked ({ended} session{'s' if ended != 1 else ''} ended)")
