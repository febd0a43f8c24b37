"""What every Typer command reaches through ``ctx.obj`` (a CliContext: settings, the
manager, output; cli_context.py), and how bsecrets' commands parse and show help.

Option aliases used by several commands live here too, so that each option is
spelled, documented and defaulted once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from bsecrets.cli.cli_context import CliContext as CliContext  # commands import it from here
from bsecrets.cli.numbers import parse_whole_number
from bsecrets.config.settings import ENV_ENV, ENV_JSON
from bsecrets.errors import UsageError


def given_after_command(ctx: typer.Context, option: str, value: Any) -> None:
    """A global option given after the command name: the settings the root callback
    resolved take it (``ls -q`` is ``-q ls``). Outside a run (help, a bare
    ``make_context``) there are no settings to update."""
    root = ctx.find_root().obj
    if isinstance(root, CliContext) and not ctx.resilient_parsing:
        if option == "--env" and isinstance(value, tuple):  # a one-environment -e
            value = one_environment(ctx, value)
        if option == "--env" and value is not None:
            ctx.meta[_ENV_AFTER] = True  # it replaces any -e before the command
        root.settings = root.settings.given(option, value)


# --- -e: one environment, or layers (exec, export) ------------------------------
#
# click keeps only the last of a repeated option. So that a second -e is an error
# rather than silently the one that counts, every -e that names one environment is
# made a list at the click level (_count_env_options) and checked here: given once
# it is that one string, as before. Commands whose own -e is a list (init, token
# issue; EnvLayersOption: exec, export, render) take the -e given before the command
# as theirs when they are given none after it (docs/exec.md, "Layered environments").

_ONE_ENV = "_bsecrets_one_env"  # on a click option: a -e made a list only to count it
_ENV_BEFORE = "bsecrets.env_before"  # ctx.meta: the -e values given before the command
_ENV_AFTER = "bsecrets.env_after"  # ctx.meta: a one-environment -e given after it


def _count_env_options(params: list[Any]) -> None:
    for param in params:
        if "--env" in getattr(param, "opts", ()) and not param.multiple:
            param.multiple = True
            setattr(param, _ONE_ENV, True)


def one_environment(ctx: Any, values: tuple[str, ...]) -> str | None:
    """The one environment a -e gives (None: not given); UsageError (exit 2) when it
    was given more than once. The names are not echoed (what was typed may be a
    pasted token: tests/test_error_text.py)."""
    if len(values) > 1:
        command = ctx.command_path.partition(" ")[2] or "bsecrets"
        raise UsageError(
            f"-e is given {len(values)} times, and '{command}' works in one environment",
            hint="give -e once; only exec and export layer environments "
            "(bsecrets exec -e shared -e dev -- CMD: the later one wins)",
        )
    return values[0] if values else None


def _env_before_command(group: Any, ctx: Any) -> None:
    """The root's -e, a list at the click level: its last value goes to the root
    callback (as before), all of them to ctx.meta for the command (_env_layers_check)."""
    if "env" in ctx.params and getattr(_env_param(group), _ONE_ENV, False):
        given = tuple(ctx.params["env"] or ())
        ctx.params["env"] = given[-1] if given else None
        ctx.meta[_ENV_BEFORE] = given


def _env_param(command: Any) -> Any:
    return next((p for p in command.params if "--env" in getattr(p, "opts", ())), None)


def _env_layers_check(command: Any, ctx: Any) -> None:
    """A command whose own -e is a list takes the -e values given before the command
    when it is given none after it; any other command refuses several before it
    (unless one -e after the command replaces them)."""
    before = ctx.meta.get(_ENV_BEFORE, ())
    own = _env_param(command)
    if own is not None and own.multiple and not getattr(own, _ONE_ENV, False):
        if own.expose_value and before and not ctx.params.get(own.name):
            ctx.params[own.name] = list(before)
    elif len(before) > 1 and not ctx.meta.get(_ENV_AFTER):
        one_environment(ctx, before)


# A command's own -e/--json are the global options spelled after the command: they
# also go into the settings (BsecretsCommand.invoke), so errors, warnings and the
# output all see them.
EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        metavar="ENV",
        help=f"Environment (default: {ENV_ENV}, else the profile's default_env).",
    ),
]
# exec and export: -e repeatable, the environments layered in order (later wins); render
# takes it to refuse it. The same help as the global -e (one option, one meaning).
EnvLayersOption = Annotated[
    list[str] | None,
    typer.Option(
        "--env",
        "-e",
        metavar="ENV",
        help=f"Environment (default: {ENV_ENV}, else the profile's default_env).",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help=f"Machine-readable output: one JSON document; errors as JSON (also {ENV_JSON}=1).",
    ),
]
# rm --purge and env rm --purge spell it too: the same option, the same settings.
YesOption = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Confirm without a question: --purge, and changes to a protected "
        "environment where no terminal can ask.",
    ),
]
# 'vault policy' and 'aws policy': the native policy of one principal's grant.
PrincipalOption = Annotated[
    str | None,
    typer.Option(
        "--principal",
        metavar="NAME",
        help="The policy of this principal's grant on the environment: its role and --only.",
    ),
]


# Which secrets a bulk command takes (exec, export): envmap.select_names.
OnlyOption = Annotated[
    list[str] | None,
    typer.Option("--only", help="Only these secrets: names or globs (NAME,db/*,...; repeatable)."),
]


def whole_number(minimum: int) -> Callable[[str], int]:
    """The parser of an integer option from ``minimum`` to MAX_NUMBER: parse_whole_number,
    its reason a click usage error."""

    def parse(value: str) -> int:
        try:
            return parse_whole_number(value, minimum)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parse


# --- help: usage lines, option values, examples ----------------------------------

EXAMPLES = "Examples:"


def _examples_to_epilog(attrs: dict[str, Any]) -> None:
    """A docstring's last section, ``Examples:`` and its lines, becomes the epilog: it is
    shown at the end of --help, after the options, line by line."""
    text = attrs.get("help")
    if isinstance(text, str) and attrs.get("epilog") is None:
        head, found, tail = text.partition(f"\n{EXAMPLES}\n")
        if found:
            attrs["help"], attrs["epilog"] = head.rstrip(), f"{EXAMPLES}\n{tail.rstrip()}"


def _name_values(params: list[Any]) -> None:
    """NAME for an argument and --description DESCRIPTION for an option, not typer's
    ``{name}`` and ``<str>``; a metavar= given in the code wins."""
    for param in params:
        if param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = str(param.name).upper()
        elif not getattr(param, "is_flag", False) and not getattr(param, "count", False):
            longest = max(param.opts, key=len)
            param.metavar = longest.lstrip("-").replace("-", "_").upper()


def _usage_piece(param: Any) -> str:
    """NAME, [NAME] when optional, NAME... when repeated; a metavar with a space or a
    bracket is taken as written (``-- CMD [ARGS]...``)."""
    var = str(param.metavar or str(param.name).upper())
    if " " in var or var.startswith("["):
        return var
    if param.nargs != 1:
        var += "..."
    return var if param.required else f"[{var}]"


def _write_epilog(epilog: str | None, formatter: Any) -> None:
    if epilog:
        formatter.write_paragraph()
        for line in epilog.splitlines():
            formatter.write(f"{'':>{formatter.current_indent}}{line}\n" if line else "\n")


class BsecretsCommand(TyperCommand):
    """A command as bsecrets shows it in --help (see _name_values, _usage_piece and
    _examples_to_epilog); parsing is typer's."""

    def __init__(self, **attrs: Any) -> None:
        _examples_to_epilog(attrs)
        super().__init__(**attrs)
        _name_values(self.params)
        _count_env_options(self.params)

    def invoke(self, ctx: Any) -> Any:
        # The command's own --json and -e (JsonOption, EnvOption; audit's -e filter) are
        # the global options given after the command: the settings take them too. (Not
        # a typer callback on the option: typer inspects each callback's signature, a
        # cost on every start-up.) init's -e is a list and means its own thing.
        for param in self.params:
            value = ctx.params.get(param.name) if param.expose_value else None
            if getattr(param, _ONE_ENV, False) and param.expose_value:
                value = ctx.params[param.name] = one_environment(ctx, tuple(value or ()))
            if value is True and "--json" in param.opts:
                given_after_command(ctx, "--json", True)
            elif isinstance(value, str) and "--env" in param.opts:
                given_after_command(ctx, "--env", value)
            elif value is True and "--yes" in param.opts:  # rm's and env rm's own --yes
                given_after_command(ctx, "--yes", True)
        _env_layers_check(self, ctx)
        return super().invoke(ctx)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        arguments = [p for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return pieces + [_usage_piece(p) for p in arguments]

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        _write_epilog(self.epilog, formatter)


class BsecretsGroupHelp(TyperGroup):
    """A group (the root, ``audit``, ``vault``...) whose help ends with its examples."""

    def __init__(self, **attrs: Any) -> None:
        _examples_to_epilog(attrs)
        super().__init__(**attrs)
        _name_values(self.params)
        _count_env_options(self.params)

    def invoke(self, ctx: Any) -> Any:
        _env_before_command(self, ctx)
        return super().invoke(ctx)

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        _write_epilog(self.epilog, formatter)


class _CommandGroup(typer.Typer):
    """A typer app whose commands are BsecretsCommands."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", BsecretsCommand)
        return super().command(*args, **kwargs)


def command_group(name: str, help: str) -> typer.Typer:
    """A command group (``bsecrets NAME ...``) configured like the root app. ``help``
    may end with an ``Examples:`` section, as a command's docstring does."""
    group = _CommandGroup(
        name=name, help=help, cls=BsecretsGroupHelp, no_args_is_help=True,
        add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
    )  # fmt: skip
    group.callback()(lambda: None)  # a group even with one command
    return group


def obj(ctx: typer.Context) -> CliContext:
    value = ctx.find_root().obj
    if not isinstance(value, CliContext):  # pragma: no cover - always set by the root callback
        raise RuntimeError("bsecrets context missing")
    return value


def is_interactive() -> bool:
    return sys.stdin.isatty() and os.environ.get("CI") is None
