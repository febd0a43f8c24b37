"""put, get, ls, rm, restore, history, rollback: thin commands over SecretsManager."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bsecrets.cli import collector
from bsecrets.cli.commands.get_value import print_secret
from bsecrets.cli.commands.put_value import parse_tags, store_secret
from bsecrets.cli.context import EnvOption, JsonOption, YesOption, obj, whole_number
from bsecrets.errors import UsageError
from bsecrets.models import SecretSummary
from bsecrets.timeutil import iso

NameArg = Annotated[
    str, typer.Argument(help="Secret name: A-Z a-z 0-9 _ . / -", show_default=False)
]


def put(
    ctx: typer.Context,
    name: NameArg,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="Read the exact bytes of a file.")
    ] = None,
    value: Annotated[
        str | None, typer.Option("--value", help="The value (visible in argv: avoid).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE, repeatable.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
    if_version: Annotated[
        int | None,
        typer.Option(
            "--if-version",
            parser=whole_number(0),
            metavar="N",
            help="Write only if the current version is N (0: only if new).",
        ),
    ] = None,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Store an empty value (refused otherwise: usually a failed command before '|').",
        ),
    ] = False,
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Store a new version of a secret (value from stdin, a file, or a prompt).

    Examples:
      bsecrets put DB_URL < db-url.txt
      bsecrets put tls/key --from-file key.pem --tag team=api --description 'TLS key'
      bsecrets put api/token -e prod --if-version 0 --json < token.txt
    """
    store_secret(
        obj(ctx), name, from_file=from_file, value=value, tag=tag, description=description,
        if_version=if_version, allow_empty=allow_empty, env=env, json_out=json_out,
    )  # fmt: skip


def get(
    ctx: typer.Context,
    name: NameArg,
    version: Annotated[
        int | None,
        typer.Option("--version", parser=whole_number(1), metavar="N", help="A given version."),
    ] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Exactly the stored bytes, no newline.")
    ] = False,
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Print a secret's value.

    Examples:
      bsecrets get DB_URL
      bsecrets get DB_URL -e prod --json
      bsecrets get tls/key --version 2 --raw > key.pem
    """
    print_secret(obj(ctx), name, env=env, version=version, raw=raw, json_out=json_out)


def ls(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only names starting with this.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="KEY=VALUE filter, repeatable.")
    ] = None,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="Include soft-deleted secrets.")
    ] = False,
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """List secrets: names, versions, times, tags; never values.

    Examples:
      bsecrets ls
      bsecrets ls db/ --tag team=api --json
      bsecrets ls -q -e prod --deleted
    """
    cli = obj(ctx)
    with collector.paused():
        items = cli.manager.list_secrets(
            cli.env(env), prefix, tags=parse_tags(tag), include_deleted=deleted
        )
        if cli.want_json(json_out):
            cli.emit_json([_json_summary(s) for s in items])
        else:
            cli.table(["NAME", "VERSION", "UPDATED", "TAGS"], _table_rows(items))


def _json_summary(s: SecretSummary) -> dict[str, Any]:
    return {
        "name": s.name,
        "version": s.version,
        "updated_at": iso(s.updated_at),
        "tags": s.tags,
        **({"deleted": True} if s.deleted else {}),
    }


def _table_rows(items: list[SecretSummary]) -> list[tuple[str, str, str, str]]:
    return [
        (
            f"{name} (deleted)" if deleted else name,
            f"v{version}",
            iso(updated_at),
            ",".join(f"{k}={v}" for k, v in sorted(tags.items())) if tags else "",
        )
        for name, version, updated_at, tags, deleted in items
    ]


def rm(
    ctx: typer.Context,
    name: NameArg,
    purge: Annotated[
        bool, typer.Option("--purge", help="Destroy every version (not recoverable).")
    ] = False,
    yes: YesOption = False,
    recovery_days: Annotated[
        int | None,
        typer.Option(
            "--recovery-days", help="AWS: days the secret stays recoverable (7-30; default 30)."
        ),
    ] = None,
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Delete a secret (recoverable with 'restore'; --purge destroys it).

    Examples:
      bsecrets rm old/token
      bsecrets rm old/token -e prod --purge --yes
    """
    cli = obj(ctx)
    env_name = cli.manager.env_name(cli.env(env))
    if purge and not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "--purge destroys every version; confirm with --yes",
                hint=f"bsecrets rm {name} --purge --yes",
            )
        if not typer.confirm(f"Destroy every version of '{name}' in '{env_name}'?", err=True):
            raise typer.Abort()
    cli.manager.delete(env_name, name, purge=purge, recovery_days=recovery_days)
    if cli.want_json(json_out):
        cli.emit_json({"name": name, "env": env_name, "purged": purge})
    else:
        cli.message(
            f"{'purged' if purge else 'deleted'} {name} ({env_name})"
            + ("" if purge else f"; undo with 'bsecrets restore {name}'")
        )


def restore(
    ctx: typer.Context, name: NameArg, env: EnvOption = None, json_out: JsonOption = False
) -> None:
    """Undo 'rm' (not 'rm --purge').

    Examples:
      bsecrets restore old/token
      bsecrets restore old/token -e prod --json
    """
    cli = obj(ctx)
    summary = cli.manager.restore(cli.env(env), name)
    if cli.want_json(json_out):
        cli.emit_json({"name": summary.name, "version": summary.version})
    else:
        cli.message(f"restored {summary.name} v{summary.version}")


def history(
    ctx: typer.Context, name: NameArg, env: EnvOption = None, json_out: JsonOption = False
) -> None:
    """Versions of a secret with time, author and state.

    Examples:
      bsecrets history DB_URL
      bsecrets history DB_URL -e prod --json
    """
    cli = obj(ctx)
    versions = cli.manager.history(cli.env(env), name)
    if cli.want_json(json_out):
        cli.emit_json(
            [
                {
                    "version": v.version,
                    "created_at": iso(v.created_at),
                    "created_by": v.created_by,
                    "state": v.state.value,
                }
                for v in versions
            ]
        )
        return
    cli.table(
        ["VERSION", "CREATED", "BY", "STATE"],
        [[f"v{v.version}", iso(v.created_at), v.created_by, v.state.value] for v in versions],
    )


def rollback(
    ctx: typer.Context,
    name: NameArg,
    to: Annotated[
        int,
        typer.Option(
            "--to",
            parser=whole_number(1),
            metavar="N",
            help="The version whose value to bring back.",
        ),
    ],
    if_version: Annotated[
        int | None,
        typer.Option(
            "--if-version",
            parser=whole_number(1),
            metavar="N",
            help="Roll back only if the current version is N.",
        ),
    ] = None,
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Make a new version whose value is version N's (N the current one: nothing to do).

    Examples:
      bsecrets rollback DB_URL --to 3
      bsecrets rollback DB_URL --to 3 -e prod --json
    """
    cli = obj(ctx)
    result = cli.manager.rollback(cli.env(env), name, to, if_version=if_version)
    if cli.want_json(json_out):
        cli.emit_json(
            {
                "name": result.name,
                "env": result.env,
                "version": result.version,
                "rolled_back_to": to,
                "changed": result.changed,
            }
        )
    elif cli.settings.quiet:
        pass
    elif not result.changed:
        sys.stdout.write(
            f"{result.name} v{result.version} ({result.env}) already at v{to}; nothing written\n"
        )
    else:
        sys.stdout.write(f"{result.name} v{result.version} ({result.env}) = v{to}\n")
