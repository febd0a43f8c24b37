"""The root of the command line: global options, command registration, and the
one place where errors become an ``error:`` line, a ``hint:`` line and an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from bsecrets import __version__
from bsecrets.cli.context import CliContext
from bsecrets.core.errors import BsecretsError, ExitCode
from bsecrets.core.settings import ENV_DEBUG, ENV_ENV, ENV_INSECURE_HTTP, ENV_PROFILE, Settings


def render_error(message: str, hint: str | None = None) -> None:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")


def _exit_code_for(exc: BaseException) -> int:
    """Render ``exc`` on stderr and return the exit code (CLI.md)."""
    debug = os.environ.get(ENV_DEBUG) == "1"
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, BsecretsError):
        render_error(exc.message, exc.hint)
        return int(exc.exit_code)
    if isinstance(exc, typer.Abort | KeyboardInterrupt):
        render_error("interrupted")
        return 130
    if type(exc).__name__ == "NoArgsIsHelpError":  # 'bsecrets' or a group alone: its help
        help_ctx = getattr(exc, "ctx", None)
        if help_ctx is not None:
            sys.stderr.write(help_ctx.get_help() + "\n")
        return int(ExitCode.USAGE)
    if isinstance(exc, typer.TyperException):  # click usage errors: unknown option, bad value
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "bsecrets"
        render_error(_usage_text(exc), f"see '{command} --help'")
        return int(getattr(exc, "exit_code", ExitCode.USAGE))
    if isinstance(exc, BrokenPipeError):
        return 141
    # Never print the text of an unexpected exception: it might hold data.
    render_error(
        f"internal error ({type(exc).__name__})",
        None if debug else f"rerun with {ENV_DEBUG}=1 to see the traceback, and report it",
    )
    return int(ExitCode.ERROR)


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
    "init": ("bsecrets.cli.setup_cmds", "init"),
    "unlock": ("bsecrets.cli.setup_cmds", "unlock"),
    "lock": ("bsecrets.cli.setup_cmds", "lock"),
    "put": ("bsecrets.cli.secret_cmds", "put"),
    "get": ("bsecrets.cli.secret_cmds", "get"),
    "ls": ("bsecrets.cli.secret_cmds", "ls"),
    "rm": ("bsecrets.cli.secret_cmds", "rm"),
    "restore": ("bsecrets.cli.secret_cmds", "restore"),
    "history": ("bsecrets.cli.secret_cmds", "history"),
    "rollback": ("bsecrets.cli.secret_cmds", "rollback"),
    "export": ("bsecrets.cli.transfer_cmds", "export"),
    "import": ("bsecrets.cli.transfer_cmds", "import_"),
    "diff": ("bsecrets.cli.transfer_cmds", "diff"),
    "provision": ("bsecrets.cli.transfer_cmds", "provision"),
    "status": ("bsecrets.cli.setup_cmds", "status"),
    "verify": ("bsecrets.cli.verify_cmds", "verify"),
    "exec": ("bsecrets.cli.run_cmds", "exec_"),
    "render": ("bsecrets.cli.run_cmds", "render"),
    "audit": ("bsecrets.cli.audit_cmds", "app"),
    "aws": ("bsecrets.cli.aws_backend_cmds", "app"),
    "vault": ("bsecrets.cli.vault_backend_cmds", "app"),
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
    single.command(name=name)(function)
    return typer.main.get_command(single)


class BsecretsGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return build_command(cmd_name) if cmd_name in COMMANDS else None

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except SystemExit:
            raise
        except BaseException as exc:
            code = _exit_code_for(exc)
            _flush_quietly()
            sys.exit(code)
        sys.exit(rv if isinstance(rv, int) else 0)


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError, OSError):
        # the reader went away: stop Python from complaining at shutdown
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"bsecrets {__version__}\n")
        raise typer.Exit(0)


app = typer.Typer(
    cls=BsecretsGroup,
    name="bsecrets",
    help="A secrets manager for every environment.",
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
            help=f"The YAML profile (default: {ENV_PROFILE}, "
            "else ./bsecrets.yaml searched upward, else the user config dir).",
        ),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env", "-e", help=f"Environment (default: {ENV_ENV}, else the profile's default_env)."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the requested data.")] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colour (also NO_COLOR).")
    ] = False,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http",
            help="No warning when a Vault or AWS endpoint is plain http:// to another "
            f"host (also {ENV_INSECURE_HTTP}=1).",
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    from bsecrets.core.files import harden_process

    harden_process()
    settings = Settings.resolve(
        profile=profile,
        env=env,
        json=json_out,
        quiet=quiet,
        no_color=no_color,
        insecure_http=insecure_http,
    )
    cli = CliContext(settings)
    ctx.obj = cli
    ctx.call_on_close(cli.close)


def main() -> None:
    app(prog_name="bsecrets")
