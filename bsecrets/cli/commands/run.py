"""exec and render: thin commands over SecretsManager (see docs/exec.md). Their work is
commands/exec_child.py and commands/render_template.py, which the fast path
(cli/fast.py) runs too."""

from __future__ import annotations

from typing import Annotated

import typer

from bsecrets.cli.commands.exec_child import ExecOptions, run_exec
from bsecrets.cli.commands.render_template import render_template
from bsecrets.cli.context import EnvLayersOption, OnlyOption, obj
from bsecrets.config.settings import ENV_MASK


def exec_(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- CMD [ARGS]...",
            help="The command and its arguments, after '--'.",
            show_default=False,
        ),
    ] = None,
    only: OnlyOption = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Put P in front of every variable name.")
    ] = "",
    pristine: Annotated[
        bool,
        typer.Option("--pristine", help="The child gets only the secrets and PATH/HOME/TERM/LANG."),
    ] = False,
    preserve_env: Annotated[
        list[str] | None,
        typer.Option(
            "--preserve-env", help="Keep these inherited variables over secrets (K,K,...)."
        ),
    ] = None,
    allow_override: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-override",
            help="Let a secret set this protected variable (PATH, HOME, LD_*, ...); repeatable.",
        ),
    ] = None,
    mask: Annotated[
        bool | None,
        typer.Option(
            "--mask/--no-mask",
            help=f"Redact secret values in the command's output (default: on when CI is set; "
            f"{ENV_MASK}=0/1 overrides).",
            show_default=False,
        ),
    ] = None,
    with_previous: Annotated[
        bool,
        typer.Option(
            "--with-previous",
            help="Also VAR_PREVIOUS for each secret within a graceful rotation's overlap.",
        ),
    ] = False,
    env_file: Annotated[
        list[str] | None,
        typer.Option(
            "--env-file",
            metavar="FILE",
            help="A dotenv file of settings and bsecrets://ENV/NAME references to resolve "
            "(repeatable: later wins; without -e, only its variables are injected).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse (exit 7) a secret or variable set by more than one -e "
            "environment or --env-file line.",
        ),
    ] = False,
    mount: Annotated[
        str | None,
        typer.Option(
            "--mount",
            metavar="PATH",
            help="Give the secrets as a file at PATH (a named pipe; it must not exist) "
            "instead of the environment; BSECRETS_MOUNT names it. Gone when the command ends.",
        ),
    ] = None,
    mount_format: Annotated[
        str | None,
        typer.Option(
            "--mount-format",
            metavar="FORMAT",
            help="dotenv, json or yaml (default: from PATH's suffix, else dotenv).",
        ),
    ] = None,
    mount_max_reads: Annotated[
        int | None,
        typer.Option(
            "--mount-max-reads", metavar="N", help="Remove the file after N reads (N >= 1)."
        ),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Re-read the secrets every --interval; on a change restart the command "
            "(or send it --signal).",
        ),
    ] = False,
    interval: Annotated[
        str | None,
        typer.Option("--interval", metavar="DURATION", help="How often --watch reads (30s)."),
    ] = None,
    signal_name: Annotated[
        str | None,
        typer.Option(
            "--signal",
            metavar="SIGNAL",
            help="What --watch does on a change: restart (default), or send this signal (HUP).",
        ),
    ] = None,
    env: EnvLayersOption = None,
) -> None:
    """Run a command with the environment's secrets as environment variables.

    -e is repeatable: the environments layer in order, a later one wins
    (-e shared -e dev). --env-file resolves a file's references on top of them.

    Examples:
      bsecrets exec -- ./manage.py migrate
      bsecrets exec -e prod --only DB_URL,API_KEY -- node server.js
      bsecrets exec -e shared -e dev --strict -- ./run-tests
      bsecrets exec --env-file .env.tpl -- node server.js
      bsecrets exec --prefix APP_ --pristine -- env
      bsecrets exec --mount config.json -- ./server --config config.json
      bsecrets exec --watch --interval 1m -- ./worker
    """
    given = ExecOptions(
        envs=env, only=only, prefix=prefix, pristine=pristine, preserve_env=preserve_env,
        allow_override=allow_override, mask=mask, with_previous=with_previous,
        env_file=env_file, strict=strict, mount=mount, mount_format=mount_format,
        mount_max_reads=mount_max_reads, watch=watch, interval=interval, signal_name=signal_name,
    )  # fmt: skip
    raise typer.Exit(run_exec(obj(ctx), command, given))


def render(
    ctx: typer.Context,
    template: Annotated[
        str, typer.Argument(help="The template file ('-': stdin).", show_default=False)
    ],
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="Write here (atomically, mode 0600); '-': stdout."),
    ] = "-",
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse (exit 7) a {{ bsecrets:///NAME }} more than one -e environment holds.",
        ),
    ] = False,
    env: EnvLayersOption = None,
) -> None:
    """Fill {{ bsecrets://ENV/NAME }} references (#vN: a version, #field: a field).

    {{ bsecrets:///NAME }} names no environment: it is read from the -e
    environments, which layer (-e shared -e dev: the later one wins), else from
    the default environment.

    Examples:
      bsecrets render config.ini.tmpl -o config.ini
      bsecrets render - < app.yaml.tmpl > app.yaml
      bsecrets render -e shared -e dev --strict app.env.tmpl -o app.env
    """
    render_template(obj(ctx), template, output=output, strict=strict, envs=env)
