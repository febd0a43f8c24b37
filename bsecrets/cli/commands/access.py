"""``bsecrets access``: principals, grants, revocations, whoami (services/principals.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bsecrets.cli.commands.passphrase import ask_new_passphrase
from bsecrets.cli.context import EnvOption, JsonOption, command_group, obj
from bsecrets.services import principals
from bsecrets.vaultfile.keyfile import fingerprint, new_key_file, read_public_key

app = command_group(
    "access",
    "Who may open which environment: principals, grants, revocations.\n\n"
    "Examples:\n"
    "  bsecrets access principal add alice\n"
    "  bsecrets access grant alice -e dev --role write\n"
    "  bsecrets access revoke alice -e dev\n"
    "  bsecrets access whoami",
)
principal_app = command_group(
    "principal",
    "The vault's principals (people, each with a key pair).\n\n"
    "Examples:\n"
    "  bsecrets access principal add alice\n"
    "  bsecrets access principal ls",
)
app.add_typer(principal_app, name="principal")

OnlyScope = Annotated[
    list[str] | None,
    typer.Option(
        "--only",
        metavar="GLOB",
        help="Only secrets whose names match (repeatable, A,B); default: all of them.",
    ),
]


def _new_passphrase(ctx: typer.Context, name: str) -> str:
    return ask_new_passphrase(
        obj(ctx),
        f"Passphrase for {name}",
        f"principal '{name}' needs a passphrase of its own, and there is no terminal to ask",
        "the new principal's passphrase",
    )


@principal_app.command("add")
def principal_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The new principal (a-z 0-9 . _ -).")],
    kind: Annotated[
        str, typer.Option("--kind", metavar="person|machine", help="Who it is.")
    ] = "person",
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            metavar="FILE",
            help="Its public key ('access keygen' made the pair on its own machine).",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Add a principal. A person: a key pair whose private key only their own
    passphrase opens (asked twice on a terminal, else BSECRETS_NEW_PASSPHRASE). With
    --public-key: the key pair was made on its own machine, and its private key never
    comes here (it unlocks with BSECRETS_KEY_FILE). The owner's command.

    Examples:
      bsecrets access principal add alice
      bsecrets access principal add build-server --kind machine --public-key build.pub
    """
    cli = obj(ctx)
    key = read_public_key(public_key) if public_key is not None else None
    passphrase = _new_passphrase(ctx, name) if key is None and kind == "person" else None
    record, root = principals.add_principal(
        cli.manager, name, passphrase=passphrase, public_key=key, kind=kind
    )
    if cli.want_json(json_out):
        cli.emit_json(
            {"principal": name, "kind": record.kind, "added_at": record.added_at,
             "trust_root": root}
        )  # fmt: skip
        return
    if key is None:
        cli.message(f"principal '{name}' added; it unlocks with --as {name} and its passphrase")
    else:
        cli.message(
            f"principal '{name}' added; it unlocks with --as {name} and BSECRETS_KEY_FILE, "
            f"whose first use pins this vault's trust root: {root}"
        )


@app.command("keygen")
def keygen(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The key file to write (0600).")
    ],
    json_out: JsonOption = False,
) -> None:
    """Make a key pair on this machine, for a principal whose private key stays here:
    FILE (0600, never overwritten) and FILE.pub, the public key to give the vault's owner.
    No vault is needed.

    Examples:
      bsecrets access keygen -o ~/.config/bsecrets/build.key
      bsecrets access keygen -o build.key --json
    """
    cli = obj(ctx)
    key, pub = new_key_file(out)
    if cli.want_json(json_out):
        cli.emit_json({"key_file": str(out), "public_key_file": str(pub),
                       "fingerprint": fingerprint(key)})  # fmt: skip
        return
    cli.message(f"wrote {out} (keep it) and {pub} (give it to the vault's owner)")


@principal_app.command("ls")
def principal_ls(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """The principals and the environments each may open.

    Examples:
      bsecrets access principal ls
      bsecrets access principal ls --json
    """
    cli = obj(ctx)
    rows = principals.listing(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json(rows)
        return
    cli.table(
        ["PRINCIPAL", "KIND", "ACCESS"],
        [
            [row["principal"], row["kind"], ", ".join(_access(g) for g in row["grants"]) or "-"]
            for row in rows
        ],
    )


def _access(grant: dict[str, Any]) -> str:
    only = list(grant.get("only") or [])
    scope = f" ({', '.join(str(g) for g in only)})" if only else ""
    return f"{grant['env']}:{grant['role']}{scope}"


@principal_app.command("show")
def principal_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal.")],
    json_out: JsonOption = False,
) -> None:
    """One principal: kind, public key, when and by whom added, its grants.

    Examples:
      bsecrets access principal show alice
      bsecrets access principal show alice --json
    """
    cli = obj(ctx)
    row = principals.show(cli.manager, name)
    if cli.want_json(json_out):
        cli.emit_json(row)
        return
    for key in ("principal", "kind", "public_key", "added_at", "added_by"):
        sys.stdout.write(f"{key}: {row[key]}\n")
    for grant in row["grants"]:
        sys.stdout.write(f"grant: {_access(grant)}\n")


@principal_app.command("rm")
def principal_rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal to remove.")],
    json_out: JsonOption = False,
) -> None:
    """Remove a principal: each environment it could open is re-keyed first.

    Examples:
      bsecrets access principal rm alice
      bsecrets access principal rm alice --json
    """
    cli = obj(ctx)
    envs = principals.remove_principal(cli.manager, name)
    if cli.want_json(json_out):
        cli.emit_json({"principal": name, "rekeyed": envs})
        return
    rekeyed = f"; re-keyed: {', '.join(envs)}" if envs else ""
    cli.message(f"principal '{name}' removed{rekeyed}")


@app.command("grant")
def grant(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal.")],
    env: EnvOption = None,
    role: Annotated[
        str, typer.Option("--role", metavar="read|write", help="What it may do.")
    ] = "read",
    only: OnlyScope = None,
    json_out: JsonOption = False,
) -> None:
    """Let a principal into an environment: its key is sealed to them (local), the role
    and name scope recorded in the signed policy. Read: get, ls, history, exec, render,
    export, diff; write: also put, rm, restore, rollback, import, provision.

    Examples:
      bsecrets access grant alice -e dev --role write
      bsecrets access grant ci -e prod --role read --only 'deploy/*'
    """
    cli = obj(ctx)
    env_name = cli.env(env)
    scopes = [part for item in only or [] for part in item.split(",") if part]
    made = principals.grant(cli.manager, name, env_name, role, scopes)
    shown = cli.manager.env_name(env_name)
    if cli.want_json(json_out):
        cli.emit_json({"principal": name, "env": shown, "role": made.role, "only": scopes})
        return
    scope = f" (only {', '.join(scopes)})" if scopes else ""
    cli.message(f"principal '{name}' may {made.role} '{shown}'{scope}")


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal.")],
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Take a principal's access to an environment away: the environment is re-keyed
    (a new key, every value re-encrypted, in one transaction), so a copy of the old
    key opens nothing written after. What they already read stays read.

    Examples:
      bsecrets access revoke alice -e dev
      bsecrets access revoke alice -e prod --reason "left the team" --yes
    """
    cli = obj(ctx)
    changed = principals.revoke(cli.manager, name, cli.env(env))
    shown = cli.manager.env_name(cli.env(env))
    if cli.want_json(json_out):
        cli.emit_json({"principal": name, "env": shown, "changed": changed})
        return
    if changed:
        cli.message(f"principal '{name}' may no longer open '{shown}'; it was re-keyed")
    else:
        cli.message(f"principal '{name}' had no access to '{shown}'")


@app.command("whoami")
def whoami(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Who this command runs as (--as, BSECRETS_AS, or the session's principal), and
    what it may open. Unlocks as any command does.

    Examples:
      bsecrets access whoami
      bsecrets --as alice access whoami --json
    """
    cli = obj(ctx)
    row = principals.whoami(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json(row)
        return
    sys.stdout.write(f"{row['principal']} ({row['kind']})\n")
    for grant in row["grants"]:
        sys.stdout.write(f"  {_access(grant)}\n")
