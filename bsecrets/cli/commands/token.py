"""``bsecrets token issue/ls/revoke/extend``: pipeline tokens (services/tokens.py).

A token is printed once, on stdout, and read back only from BSECRETS_TOKEN:
there is no option that takes one, so no token sits in argv or shell history.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bsecrets.cli.context import JsonOption, command_group, obj
from bsecrets.services import tokens
from bsecrets.timeutil import parse_duration

app = command_group(
    "token",
    "Pipeline tokens: a short-lived machine principal for a CI job (BSECRETS_TOKEN).\n\n"
    "Examples:\n"
    "  bsecrets token issue -e prod --role read --ttl 30m --name ci-deploy\n"
    "  bsecrets token ls\n"
    "  bsecrets token revoke 3f9a0c1b2d4e",
)

TtlOption = Annotated[str, typer.Option("--ttl", help="How long the token lasts (at most 30d).")]


@app.command("issue")
def issue(
    ctx: typer.Context,
    envs: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", metavar="ENV", help="An environment it opens (repeatable)."),
    ] = None,
    role: Annotated[
        str, typer.Option("--role", metavar="read|write", help="What it may do.")
    ] = "read",
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="GLOB", help="Only these names (repeatable, A,B)."),
    ] = None,
    ttl: TtlOption = "1h",
    name: Annotated[
        str | None, typer.Option("--name", help="A label for 'token ls' and the audit log.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Issue a token that opens these environments until it expires: printed once on
    stdout (set it as BSECRETS_TOKEN in the job; mask it). The owner's command.

    Examples:
      bsecrets token issue -e prod --role read --ttl 30m --name ci-deploy
      bsecrets token issue -e staging -e prod --only 'deploy/*' --json
    """
    cli = obj(ctx)
    duration = parse_duration(ttl, what="--ttl", maximum=tokens.MAX_TTL)
    scopes = [part for item in only or [] for part in item.split(",") if part]
    wanted: list[str | None] = list(envs) if envs else [cli.env(None)]
    token, record, names = tokens.issue(
        cli.manager, wanted, role=role, only=scopes, ttl=duration, label=name
    )
    token_id = token.split(".")[2]
    if cli.want_json(json_out):
        cli.emit_json(
            {"token": token, "id": token_id, "envs": names, "expires_at": record.expires_at}
        )
        return
    sys.stdout.write(token + "\n")
    cli.message(
        f"token {token_id} opens {', '.join(names)} ({role}) until {record.expires_at}; "
        "it is shown only now"
    )


@app.command("ls")
def ls(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """The tokens: id, name, environments, role, expiry (never the tokens themselves).

    Examples:
      bsecrets token ls
      bsecrets token ls --json
    """
    cli = obj(ctx)
    rows = tokens.listing(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json(rows)
        return
    cli.table(
        ["ID", "NAME", "ENVS", "ROLE", "EXPIRES"],
        [
            [
                row["id"],
                row["name"] or "",
                ",".join(row["envs"]),
                row["role"] or "",
                row["expires_at"] + (" (expired)" if row["expired"] else ""),
            ]
            for row in rows
        ],
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (token ls).")],
    json_out: JsonOption = False,
) -> None:
    """Revoke a token: every environment it could open is re-keyed, so its key opens
    nothing written afterwards.

    Examples:
      bsecrets token revoke 3f9a0c1b2d4e
      bsecrets token revoke 3f9a0c1b2d4e --json
    """
    cli = obj(ctx)
    envs = tokens.revoke(cli.manager, token_id)
    if cli.want_json(json_out):
        cli.emit_json({"id": token_id, "rekeyed": envs})
        return
    cli.message(f"token {token_id} revoked; re-keyed: {', '.join(envs) or 'nothing'}")


@app.command("extend")
def extend(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (token ls).")],
    ttl: TtlOption = "1h",
    json_out: JsonOption = False,
) -> None:
    """Give a token a new expiry, --ttl from now (audited; the owner's command).

    Examples:
      bsecrets token extend 3f9a0c1b2d4e --ttl 30m
      bsecrets token extend 3f9a0c1b2d4e --ttl 2h --json
    """
    cli = obj(ctx)
    duration = parse_duration(ttl, what="--ttl", maximum=tokens.MAX_TTL)
    expires = tokens.extend(cli.manager, token_id, duration)
    if cli.want_json(json_out):
        cli.emit_json({"id": token_id, "expires_at": expires})
        return
    cli.message(f"token {token_id} now expires at {expires}")
