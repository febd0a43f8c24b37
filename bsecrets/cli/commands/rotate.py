"""``bsecrets rotate``: NAME (the four steps), ``--due``, ``status``, ``resume ID``,
``cancel ID`` (services/rotation.py, docs/rotation.md).

``rotate NAME ...`` and ``rotate --due ...`` are the group's hidden ``secret`` and
``due`` commands: the group puts the name in front of what it is given.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bsecrets.cli.commands.put_value import read_value
from bsecrets.cli.context import BsecretsGroupHelp, EnvOption, JsonOption, command_group, obj
from bsecrets.errors import NextStep, RotationFailed
from bsecrets.services import rotation, rotation_due, rotation_service, rotation_status
from bsecrets.timeutil import parse_duration
from bsecrets.vaultfile.rotations import Rotation


class _RotateGroup(BsecretsGroupHelp):
    """``rotate NAME`` and ``rotate --due`` without a subcommand's name."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["due", *[a for a in args if a != "--due"]] if "--due" in args else [
                "secret", *args
            ]  # fmt: skip
        return list(super().parse_args(ctx, args))


app = command_group(
    "rotate",
    "Rotate a secret: create the new value, set it at the consumer, test it, finish.\n\n"
    "\b\n"
    "bsecrets rotate NAME [-e ENV] [--generate SPEC | --from-file F | stdin]\n"
    "bsecrets rotate --due [-e ENV] [--dry-run]\n"
    "bsecrets rotate status | resume ID | cancel ID | flip NAME\n"
    "bsecrets rotate schedule NAME --lambda ARN --every 30d   (AWS)\n\n"
    "Examples:\n"
    "  bsecrets rotate db/password -e prod --generate password:32 --reason 'quarterly'\n"
    "  bsecrets rotate --due --dry-run\n"
    "  bsecrets rotate status",
)
app.info.cls = _RotateGroup


RotationId = Annotated[str, typer.Argument(metavar="ID", help="From 'rotate status'.")]


def _done(cli: Any, row: Rotation, json_out: bool) -> None:
    if cli.want_json(json_out):
        cli.emit_json(row.to_public())
        return
    if row.step == "delegated":
        sys.stdout.write(f"{row.name} ({row.env}): asked the backend's own rotation to rotate it\n")
        return
    sys.stdout.write(f"{row.name} v{row.version} ({row.env}): rotation {row.id} {row.step}\n")


@app.command("secret", hidden=True)
def secret(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The secret to rotate.")],
    env: EnvOption = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            metavar="immediate|graceful|blue-green",
            help="How (default: the policy's); graceful keeps NAME#previous for the overlap.",
        ),
    ] = None,
    generate: Annotated[
        str | None,
        typer.Option("--generate", metavar="SPEC", help="password:N, hex:N, base64:N, uuid."),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="The new value's exact bytes.")
    ] = None,
    emergency: Annotated[
        bool,
        typer.Option(
            "--emergency",
            help="Immediate, an admin's, with --reason; a previous value is revoked at once.",
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Rotate NAME: a new value (--generate, --from-file, stdin, or the policy's
    generator) through create, set, test, finish.

    Examples:
      bsecrets rotate db/password -e prod --generate password:32
      bsecrets rotate api/key -e staging --from-file new-key.txt
    """
    cli = obj(ctx)
    value = None
    if from_file is not None or (generate is None and not sys.stdin.isatty()):
        value = read_value(cli, from_file, None) or None  # empty stdin: no value given
    done = rotation.start(
        cli.manager, cli.env(env), name, value=value, generator=generate, strategy=strategy,
        emergency=emergency,
    )  # fmt: skip
    _done(cli, done, json_out)


@app.command("due", hidden=True)
def due(
    ctx: typer.Context,
    env: EnvOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what is due.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Rotate every secret whose policy's max_age has passed (with its generator).

    Examples:
      bsecrets rotate --due --dry-run
      bsecrets rotate --due -e prod --reason 'scheduled'
    """
    cli = obj(ctx)
    manager = cli.manager
    if not rotation_due.has_policies(manager):
        cli.message("no rotation policies in the profile: nothing is ever due")
        if cli.want_json(json_out):
            cli.emit_json({"due": [], "rotated": [], "failed": []})
        return
    found, rotated, failed = rotation_due.rotate_due(
        manager, cli.env(env), dry_run=dry_run, warn=cli.warn
    )
    if cli.want_json(json_out):
        cli.emit_json({"due": found, "rotated": rotated, "failed": failed})
    else:
        for item in found:
            sys.stdout.write(f"{item['env']}/{item['name']} due since {item['due_at']}\n")
        if not found:
            cli.message("nothing is due")
    if failed:
        raise RotationFailed(
            f"{len(failed)} of {len(found)} due rotations failed",
            step=NextStep("rotation_status"),
        )


@app.command("status")
def status(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="One secret: its age, policy, next due date.")
    ] = None,
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Your rotations (id, secret, step, when, the last hook result), or one secret's:
    its age, the policy that applies, when it is due, rotations in flight (never a value).

    Examples:
      bsecrets rotate status
      bsecrets rotate status db/password -e prod --json
    """
    cli = obj(ctx)
    if name is not None:
        _secret_status(cli, rotation_status.secret_status(cli.manager, cli.env(env), name),
                       json_out)  # fmt: skip
        return
    rows = rotation.status(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json(rows)
        return
    cli.table(
        ["ID", "SECRET", "STEP", "UPDATED", "RESULT"],
        [
            [
                row["id"],
                f"{row['env']}/{row['name']}",
                row["step"],
                row["updated_at"],
                _result(row["result"]),
            ]
            for row in rows
        ],
    )


def _secret_status(cli: Any, found: dict[str, Any], json_out: bool) -> None:
    if cli.want_json(json_out):
        cli.emit_json(found)
        return
    policy = found["policy"]
    last = found["last"]
    lines = [
        ("secret", f"{found['env']}/{found['name']} v{found['version']}"),
        ("updated", f"{found['updated_at']} ({found['age_seconds'] // 86400} days ago)"),
        ("policy", "none" if policy is None else
         " ".join(f"{k}={v}" for k, v in policy.items() if k != "hooks")),
        ("due", "never (no max_age)" if found["due_at"] is None else
         f"{found['due_at']}{' (due now)' if found['due'] else ''}"),
        ("in flight", ", ".join(f"{r['id']} ({r['by']})" for r in found["in_flight"]) or "none"),
        ("last rotation", "none of yours" if last is None else
         f"{last['id']} {last['step']} {last['updated_at']} {_result(last['result'])}".rstrip()),
    ]  # fmt: skip
    for label, text in lines:
        sys.stdout.write(f"{label + ':':<15}{text}\n")


def _result(result: dict[str, Any] | None) -> str:
    if not result:
        return ""
    if "conflict" in result:
        return "changed meanwhile"
    return f"{result['step']} hook exit {result['exit_code']}"


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A secret of an AWS environment.")],
    function: Annotated[
        str, typer.Option("--lambda", metavar="ARN", help="The rotation Lambda's ARN.")
    ],
    every: Annotated[str, typer.Option("--every", help="How often AWS rotates it (days).")],
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Configure AWS's own rotation of a secret (a Lambda, every N days): from then on
    'bsecrets rotate NAME' asks AWS to rotate it instead of rotating it here.

    Examples:
      bsecrets rotate schedule db/password -e prod --lambda arn:aws:lambda:...:rot --every 30d
      bsecrets rotate schedule db/password -e prod --lambda arn:aws:lambda:...:rot --every 7d
    """
    cli = obj(ctx)
    duration = parse_duration(every, what="--every")
    done = rotation_service.schedule(cli.manager, cli.env(env), name, function, duration)
    if cli.want_json(json_out):
        cli.emit_json(done)
        return
    cli.message(f"AWS rotates {name} ({done['env']}) every {done['every_days']} days")


@app.command("flip")
def flip(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A secret rotated blue-green.")],
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Blue-green: make the other slot current (a rollback is a flip).

    Examples:
      bsecrets rotate flip db/password -e prod --reason 'new password breaks the app'
      bsecrets rotate flip db/password -e staging --json
    """
    cli = obj(ctx)
    active, version = rotation.flip(cli.manager, cli.env(env), name)
    if cli.want_json(json_out):
        cli.emit_json({"name": name, "active": active, "version": version})
        return
    sys.stdout.write(f"{name} v{version}: the {active} slot is active\n")


@app.command("resume")
def resume(
    ctx: typer.Context,
    rotation_id: RotationId,
    json_out: JsonOption = False,
) -> None:
    """Go on with a rotation that stopped (killed, a hook failed, a writer came in).

    Examples:
      bsecrets rotate resume 3f9a0c1b2d4e
      bsecrets rotate resume 3f9a0c1b2d4e --json
    """
    cli = obj(ctx)
    _done(cli, rotation.resume(cli.manager, rotation_id), json_out)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    rotation_id: RotationId,
    json_out: JsonOption = False,
) -> None:
    """Drop a rotation that did not finish: its pending value is discarded; the current
    value was never touched.

    Examples:
      bsecrets rotate cancel 3f9a0c1b2d4e
      bsecrets rotate cancel 3f9a0c1b2d4e --json
    """
    cli = obj(ctx)
    done = rotation.cancel(cli.manager, rotation_id)
    if cli.want_json(json_out):
        cli.emit_json(done.to_public())
        return
    cli.message(f"rotation {done.id} cancelled; '{done.name}' keeps its current value")
