"""export, import, diff: thin commands over bsecrets.services.transfer and formats.
export's work is commands/export_secrets.py, which the fast path (cli/fast.py) runs too."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from bsecrets.cli.commands.export_secrets import ExportOptions, choose_format, export_secrets
from bsecrets.cli.context import (
    CliContext,
    EnvLayersOption,
    EnvOption,
    JsonOption,
    OnlyOption,
    obj,
)
from bsecrets.errors import UsageError
from bsecrets.formats import codecs as formats
from bsecrets.services.provision import provision as run
from bsecrets.services.transfer import apply_import, diff_envs, plan_import, validate_entries

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format", "-f", help="dotenv, json, yaml, shell or github-env (default: dotenv)."
    ),
]


def export(
    ctx: typer.Context,
    fmt: FormatOption = None,
    allow_override: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-override",
            help="Let a secret set this protected variable (PATH, HOME, LD_*, ...) in the "
            "dotenv, shell and github-env formats; repeatable, or VAR,VAR.",
        ),
    ] = None,
    only: OnlyOption = None,
    prefix: Annotated[
        str,
        typer.Option(
            "--prefix", help="Put P in front of every variable name (dotenv, shell, github-env)."
        ),
    ] = "",
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Write to this file (atomically, mode 0600); '-': stdout."
        ),
    ] = "-",
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Refuse (exit 7) a secret more than one -e environment holds."
        ),
    ] = False,
    env: EnvLayersOption = None,
) -> None:
    """Print every secret of an environment as dotenv, JSON, YAML or shell, or append
    them to $GITHUB_ENV (--format github-env).

    -e is repeatable: the environments layer in order, a later one wins.

    Examples:
      bsecrets export > .env
      bsecrets export --format json -e prod -o prod.json
      bsecrets export -e shared -e dev --strict > .env
      bsecrets export --only 'db/*' --prefix APP_ --format shell
    """
    given = ExportOptions(
        envs=env, fmt=fmt, only=only, prefix=prefix, allow_override=allow_override,
        output=output, strict=strict,
    )  # fmt: skip
    export_secrets(obj(ctx), given)


def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="The file to import ('-' for stdin).")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="dotenv, json or yaml (default: from the file's extension)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would change (by name).")
    ] = False,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Import empty values (refused otherwise).")
    ] = False,
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Import secrets from a dotenv, JSON or YAML file: all or nothing.

    Examples:
      bsecrets import .env
      bsecrets import secrets.json -e staging --dry-run
      bsecrets import - --format yaml < secrets.yaml
    """
    cli = obj(ctx)
    if fmt is None:
        suffix = Path(file).suffix.lower()
        fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(suffix, "dotenv")
    fmt = choose_format(fmt, formats.IMPORT_FORMATS, "dotenv")
    shown = "<stdin>" if file == "-" else file
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}") from None
    text = formats.decode_text(data, shown)
    incoming = validate_entries(formats.parse(fmt, text, shown), shown, allow_empty=allow_empty)
    manager = cli.manager
    env_name = manager.env_name(cli.env(env))
    plan = plan_import(manager, env_name, incoming)
    if not dry_run:
        progress = _progress(cli, len(plan.values))
        apply_import(manager, env_name, plan, progress, allow_empty=allow_empty)
    if cli.want_json(json_out):
        cli.emit_json(
            {
                "env": env_name,
                "dry_run": dry_run,
                "new": plan.new,
                "changed": plan.changed,
                "unchanged": plan.unchanged,
            }
        )
        return
    if dry_run:
        rows = [[n, "new"] for n in plan.new] + [[n, "changed"] for n in plan.changed]
        rows += [[n, "unchanged"] for n in plan.unchanged]
        cli.table(["NAME", "CHANGE"], sorted(rows))
    verb = "would import" if dry_run else "imported"
    cli.message(
        f"{verb} {len(plan.values)} into '{env_name}': {len(plan.new)} new, "
        f"{len(plan.changed)} changed, {len(plan.unchanged)} unchanged"
    )


def _progress(cli: CliContext, total: int) -> Callable[[int, int], None] | None:
    """Progress lines on stderr for large imports (every 10%)."""
    if total < 200 or cli.settings.quiet:
        return None
    step = max(1, total // 10)

    def report(done: int, of: int) -> None:
        if done % step == 0 or done == of:
            cli.message(f"importing: {done}/{of}")  # under --json: {"message": ...}

    return report


def diff(
    ctx: typer.Context,
    env_a: Annotated[str, typer.Argument(help="The first environment.", show_default=False)],
    env_b: Annotated[str, typer.Argument(help="The second environment.", show_default=False)],
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 1 when the environments differ.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Names only in A, only in B, and in both with different values (compared by a
    keyed hash, never printed).

    Examples:
      bsecrets diff staging prod
      bsecrets diff staging prod --json --exit-code
    """
    cli = obj(ctx)
    manager = cli.manager
    a, b = manager.env_name(env_a), manager.env_name(env_b)
    result = diff_envs(manager, a, b)
    if cli.want_json(json_out):
        cli.emit_json(
            {
                "env_a": a,
                "env_b": b,
                "only_in_a": result.only_a,
                "only_in_b": result.only_b,
                "different": result.different,
                "same": result.same,
                "differs": result.differs,
            }
        )
    else:
        rows = [[n, f"only in {a}"] for n in result.only_a]
        rows += [[n, f"only in {b}"] for n in result.only_b]
        rows += [[n, "different"] for n in result.different]
        if rows:
            cli.table(["NAME", "DIFFERENCE"], sorted(rows))
        cli.message(
            f"{a} vs {b}: {len(result.only_a)} only in {a}, {len(result.only_b)} only in {b}, "
            f"{len(result.different)} different, {len(result.same)} the same"
        )
    if exit_code and result.differs:
        raise typer.Exit(1)


def provision(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be created.")
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty", help="Create a secret whose value comes out empty (refused otherwise)."
        ),
    ] = False,
    env: EnvOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create the secrets listed under the environment's 'provision:' in the profile
    that do not exist yet (idempotent: existing ones are never changed).

    Examples:
      bsecrets provision --dry-run
      bsecrets provision -e prod --json
    """
    cli = obj(ctx)
    result = run(cli.manager, cli.env(env), dry_run=dry_run, allow_empty=allow_empty)
    if cli.want_json(json_out):
        cli.emit_json(
            {
                "env": result.env,
                "dry_run": dry_run,
                "created": result.created,
                "present": result.present,
            }
        )
        return
    verb = "would create" if dry_run else "created"
    for name in result.created:
        cli.message(f"{verb} {name} ({result.env})")
    cli.message(
        f"{len(result.created)} {verb}, {len(result.present)} already present in '{result.env}'"
    )
