"""The root of the command line: global options, command registration, and what
only the Typer app raises (click's usage errors) for outcome.py, the one place
where errors become an ``error:`` line, a ``hint:`` line and an exit code.

The console script enters at ``bsecrets.cli.entry:main``, which runs the plain
shapes of ``get``, ``exec`` and ``export`` without importing this module (fast.py)
and everything else here."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from bsecrets import __version__
from bsecrets.cli.context import (
    BsecretsCommand,
    BsecretsGroupHelp,
    CliContext,
    YesOption,
    given_after_command,
)
from bsecrets.cli.exit_codes import ExitCode
from bsecrets.cli.outcome import exit_with, interrupted, render_error
from bsecrets.config.settings import (
    COMPLETE_VAR,
    ENV_AS,
    ENV_ENV,
    ENV_INSECURE_HTTP,
    ENV_JSON,
    ENV_NO_COLOR,
    ENV_PROFILE,
    ENV_REASON,
    GLOBAL_OPTIONS,
    Settings,
)
from bsecrets.files import harden_process


def _click_failure(exc: BaseException, as_json: bool) -> int | None:
    """What only the Typer app raises, rendered (outcome.exit_code_for's framework hook):
    click's Abort, a group's help when no command is given, click's usage errors."""
    if isinstance(exc, typer.Abort):
        return interrupted(as_json)
    if type(exc).__name__ == "NoArgsIsHelpError":  # 'bsecrets' or a group alone: its help
        help_ctx = getattr(exc, "ctx", None)
        command = help_ctx.command_path if help_ctx is not None else "bsecrets"
        if as_json:
            render_error(
                "missing command", f"see '{command} --help'", as_json=True, kind="usage",
                exit_code=ExitCode.USAGE,
            )  # fmt: skip
        elif help_ctx is not None:
            sys.stderr.write(help_ctx.get_help() + "\n")
        return int(ExitCode.USAGE)
    if isinstance(exc, typer.TyperException):  # click usage errors: unknown option, bad value
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "bsecrets"
        status = int(getattr(exc, "exit_code", ExitCode.USAGE))
        render_error(
            _usage_text(exc), f"see '{command} --help'", as_json=as_json, kind="usage",
            exit_code=status,
        )  # fmt: skip
        return status
    return None


def _usage_text(exc: Exception) -> str:
    """click's usage error, without the words the user typed: an extra argument or a
    bad option value may be a value (``bsecrets put NAME sk-live-...``), and stderr goes
    to CI logs. Option names are shown only when they look like option names.
    (typer vendors click: its exception classes are matched by name and attributes.)"""
    import re

    kind = type(exc).__name__
    if kind == "NoSuchOption":
        name = str(getattr(exc, "option_name", ""))
        if re.fullmatch(r"--?[a-z][a-z0-9-]{0,30}", name):
            text = f"no such option: {name}"
            possibilities = sorted(getattr(exc, "possibilities", None) or ())
            if possibilities:
                text += f" (did you mean {', '.join(possibilities)}?)"
            return text
        return "no such option (a word that starts with '-'; not shown here)"
    if isinstance(exc, typer.BadParameter):
        hint = exc.param_hint or (exc.param.get_error_hint(exc.ctx) if exc.param else None)  # type: ignore[arg-type]
        what = f"invalid value for {hint}" if hint else "invalid value"
        reason = re.sub(r"'[^']*'|\"[^\"]*\"", "it", str(exc.message)).rstrip(".")
        return f"{what}: {reason}" if reason else what
    format_message = getattr(exc, "format_message", None)
    text = str(format_message() if callable(format_message) else exc)
    extra = re.fullmatch(r"Got unexpected extra argument(?:s|\(s\))? \((.*)\)", text, re.S)
    if extra:
        count = len(extra[1].split())
        return (
            f"got {count} unexpected extra argument{'s' if count > 1 else ''} (not shown here: "
            "values are read from stdin, --from-file or a prompt, never from arguments)"
        )
    return text[:1].lower() + text[1:]


# Command name -> (module, function). Commands are built on demand, so a run
# pays for parsing one command's signature and importing one module, not all.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("bsecrets.cli.commands.setup", "init"),
    "unlock": ("bsecrets.cli.commands.setup", "unlock"),
    "lock": ("bsecrets.cli.commands.setup", "lock"),
    "passphrase": ("bsecrets.cli.commands.passphrase", "app"),
    "put": ("bsecrets.cli.commands.secrets", "put"),
    "get": ("bsecrets.cli.commands.secrets", "get"),
    "ls": ("bsecrets.cli.commands.secrets", "ls"),
    "rm": ("bsecrets.cli.commands.secrets", "rm"),
    "restore": ("bsecrets.cli.commands.secrets", "restore"),
    "history": ("bsecrets.cli.commands.secrets", "history"),
    "rollback": ("bsecrets.cli.commands.secrets", "rollback"),
    "export": ("bsecrets.cli.commands.transfer", "export"),
    "import": ("bsecrets.cli.commands.transfer", "import_"),
    "diff": ("bsecrets.cli.commands.transfer", "diff"),
    "provision": ("bsecrets.cli.commands.transfer", "provision"),
    "status": ("bsecrets.cli.commands.status", "status"),
    "metrics": ("bsecrets.cli.commands.metrics", "metrics"),
    "verify": ("bsecrets.cli.commands.verify", "verify"),
    "doctor": ("bsecrets.cli.commands.doctor", "doctor"),
    "exec": ("bsecrets.cli.commands.run", "exec_"),
    "render": ("bsecrets.cli.commands.run", "render"),
    "audit": ("bsecrets.cli.commands.audit", "app"),
    "aws": ("bsecrets.cli.commands.aws", "app"),
    "vault": ("bsecrets.cli.commands.vault", "app"),
    "env": ("bsecrets.cli.commands.env", "app"),
    "mfa": ("bsecrets.cli.commands.mfa", "app"),
    "access": ("bsecrets.cli.commands.access", "app"),
    "token": ("bsecrets.cli.commands.token", "app"),
    "rotate": ("bsecrets.cli.commands.rotate", "app"),
    "promote": ("bsecrets.cli.commands.promote", "app"),
    "break-glass": ("bsecrets.cli.commands.break_glass", "app"),
    "completion": ("bsecrets.cli.commands.completion", "completion"),
    "serve": ("bsecrets.server.command", "serve"),  # the server layer, above the CLI
}


def build_command(name: str) -> Any:
    """The click command for ``name``, made from its Typer function."""
    import importlib

    import typer.main

    module, attr = COMMANDS[name]
    target = getattr(importlib.import_module(module), attr)
    if isinstance(target, typer.Typer):  # a command group, e.g. 'bsecrets vault policy'
        return typer.main.get_command(target)
    function = target
    single = typer.Typer(
        add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None
    )
    single.command(name=name, cls=BsecretsCommand)(function)
    return typer.main.get_command(single)


def add_global_options(command: Any, root_params: Sequence[Any]) -> None:
    """Give ``command`` (and, for a group, each subcommand) the root's global options
    that it does not spell itself, as copies that write into the same settings: so
    ``ls -q`` is ``-q ls``. An option the command defines (``init -e``, ``audit log
    -e``, a command's own ``--json``) is the command's; click does the parsing, so an
    option's value (``put x --description -q``) and what follows ``--`` (``exec -- cmd
    -q``) are never taken for global options."""
    import copy

    taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for param in root_params:
        option = next((o for o in param.opts if o in GLOBAL_OPTIONS), None)
        free = [o for o in param.opts if o not in taken]
        if option is None or not free:
            continue
        clone = copy.copy(param)
        clone.opts, clone.secondary_opts, clone.expose_value = free, [], False
        clone.callback = _after_command(option)
        command.params.append(clone)
    for sub in getattr(command, "commands", {}).values():
        add_global_options(sub, root_params)


def _after_command(option: str) -> Any:
    def callback(ctx: typer.Context, param: Any, value: Any) -> Any:
        given_after_command(ctx, option, value)
        return value

    return callback


class BsecretsGroup(BsecretsGroupHelp):
    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        command = build_command(cmd_name)
        add_global_options(command, self.params)
        return command

    def _main_shell_completion(
        self, ctx_args: Any, prog_name: str, complete_var: str | None = None
    ) -> None:
        if os.environ.get(COMPLETE_VAR):  # a TAB in a shell (completion scripts)
            from bsecrets.cli.commands.completion import complete  # the seam: only on a TAB

            sys.exit(complete(self, ctx_args, prog_name))

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        run = super().main
        exit_with(
            argv,
            lambda: run(argv, prog_name, complete_var, standalone_mode=False, **extra),
            _click_failure,
        )


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"bsecrets {__version__}\n")
        raise typer.Exit(0)


app = typer.Typer(
    cls=BsecretsGroup,
    name="bsecrets",
    help="""A secrets manager for every environment.

Global options go before or after the command: 'bsecrets -q ls' is 'bsecrets ls -q'.

Examples:
  bsecrets init --env dev --env prod
  bsecrets put DB_URL --from-file db-url.txt
  bsecrets get DB_URL -e prod
  bsecrets ls --json""",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            metavar="PATH",
            help=f"The YAML profile (default: {ENV_PROFILE}, "
            "else ./bsecrets.yaml searched upward, else the user config dir).",
        ),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            "-e",
            metavar="ENV",
            help=f"Environment (default: {ENV_ENV}, else the profile's default_env).",
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json", help=f"Machine-readable output; errors as JSON too (also {ENV_JSON}=1)."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the requested data.")] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help=f"No colour (also {ENV_NO_COLOR}).")
    ] = False,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http",
            help="No warning when a Vault or AWS endpoint is plain http:// to another "
            f"host (also {ENV_INSECURE_HTTP}=1).",
        ),
    ] = False,
    yes: YesOption = False,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            metavar="TEXT",
            help=f"Why, for the audit log: needed on a protected environment (also {ENV_REASON}).",
        ),
    ] = None,
    as_principal: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="PRINCIPAL",
            help=f"Unlock as this principal (also {ENV_AS}; default: the session's, "
            "else the owner).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    harden_process()
    settings = Settings.resolve(
        profile=profile,
        env=env,
        json=json_out,
        quiet=quiet,
        no_color=no_color,
        insecure_http=insecure_http,
        yes=yes,
        reason=reason,
        as_principal=as_principal,
    )
    cli = CliContext(settings)
    ctx.obj = cli
    ctx.call_on_close(cli.close)


def main() -> None:
    """The Typer app on ``sys.argv``, without the fast path (entry.py is the console
    script's entry point); for callers that have imported the app anyway."""
    app(prog_name="bsecrets")
