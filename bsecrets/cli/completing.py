"""What a TAB completes, beyond command and option names: environments, secrets,
files, the words of a metavar such as ``read|write`` (the shell's side, the scripts and
click's protocol, is bsecrets/cli/commands/completion.py).

What callers may rely on: environment names come from the profile, without
unlocking; secret names only under a live session (``BSECRETS_SESSION``) or a
pipeline token (``BSECRETS_TOKEN``), through the same audited ``ls`` as ``bsecrets
ls`` (an ``ls`` event per TAB), for local environments only (a remote one would be a
network call per TAB). Nothing asks: no prompt, no question, no passphrase, no
keyring, no one-time code. Errors are the caller's to swallow.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from typer._click.core import Command, Context, Parameter
from typer._click.shell_completion import CompletionItem, _resolve_context, _resolve_incomplete

from bsecrets.cli.context import CliContext
from bsecrets.config.cache import load_profile_cached
from bsecrets.config.loader import find_profile
from bsecrets.config.settings import (
    ENV_KEY_FILE,
    ENV_OTP,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    Settings,
)
from bsecrets.models import Confirmation
from bsecrets.vaultfile.credentials import Credentials

PROG = "bsecrets"
SHELL_NAMES = ("bash", "zsh", "fish")

# What a TAB never reads: a passphrase (a file may be a FIFO that waits), a key file,
# a one-time code (it would be spent).
_NEVER_READ = (ENV_PASSPHRASE, ENV_PASSPHRASE_FILE, ENV_KEY_FILE, ENV_OTP)

ENVIRONMENT = "environment"
SECRET = "secret"
DELETED = "deleted secret"
SHELL = "shell"
FILE = "file"
CHOICE = "choice"
FILE_METAVARS = {"FILE", "PATH", "OUTPUT", "TEMPLATE"}

# (command path, parameter name) -> what the value names, beyond click's own
# completion (commands, options, files). Every -e/--env names an environment too,
# except init's (a new one).
VALUES: dict[tuple[tuple[str, ...], str], str] = {
    (("diff",), "env_a"): ENVIRONMENT,
    (("diff",), "env_b"): ENVIRONMENT,
    (("promote", "run"), "source"): ENVIRONMENT,
    (("promote", "run"), "target"): ENVIRONMENT,
    **{(("env", sub), "name"): ENVIRONMENT for sub in ("rm", "default", "protect", "unprotect")},
    **{((cmd,), "name"): SECRET for cmd in ("get", "put", "rm", "history", "rollback")},
    (("restore",), "name"): DELETED,
    **{(("rotate", sub), "name"): SECRET for sub in ("secret", "status", "flip", "schedule")},
    (("completion",), "shell"): SHELL,
}
NEW_ENVIRONMENT = {("init",)}

# Groups that run a hidden command when none is named ('rotate NAME', 'rotate --due',
# 'promote --from ...'): a TAB on the group offers those commands' options and first
# argument too, and the flags that pick one of them.
ROUTING_FLAGS: dict[tuple[str, ...], tuple[str, ...]] = {("rotate",): ("--due",)}


def candidates(
    cli: Command,
    ctx_args: MutableMapping[str, Any],
    args: list[str],
    incomplete: str,
    described: bool = True,
) -> list[CompletionItem]:
    """What may follow ``args`` (the words after ``bsecrets``) and start with
    ``incomplete``; ``described``: with each command's short help (builds them)."""
    ctx = _resolve_context(cli, ctx_args, PROG, list(args))
    target, incomplete = _resolve_incomplete(ctx, list(args), incomplete)
    if isinstance(target, Parameter):
        found = _values(ctx, target, args, incomplete)
        return found if found is not None else list(target.shell_complete(ctx, incomplete))
    items = _commands_and_options(ctx, target, incomplete, described)
    for hidden in _routed(target):
        sub = hidden.make_context(hidden.name, [], parent=ctx, resilient_parsing=True)
        items += _commands_and_options(sub, hidden, incomplete, described)
        first = next((p for p in hidden.params if p.param_type_name == "argument"), None)
        if first is not None and not incomplete.startswith("-"):
            items += _values(sub, first, args, incomplete) or []
    flags = ROUTING_FLAGS.get(_path(ctx), ()) if _routed(target) else ()
    items += [CompletionItem(f) for f in flags if incomplete and f.startswith(incomplete)]
    unique: dict[str, CompletionItem] = {}
    for item in items:
        unique.setdefault(item.value, item)
    return list(unique.values())


def _values(
    ctx: Context, param: Parameter, args: list[str], incomplete: str
) -> list[CompletionItem] | None:
    """The candidates for ``param``'s value, or None when bsecrets knows nothing of it."""
    kind = value_kind(_path(ctx), param)
    if kind is None:
        return None
    if kind == FILE:  # the shell completes it
        return [CompletionItem(incomplete, type="file")]
    return [CompletionItem(v) for v in values_of(kind, args, incomplete, param)]


def _path(ctx: Context) -> tuple[str, ...]:
    names: list[str] = []
    while ctx.parent is not None:
        names.append(str(ctx.info_name))
        ctx = ctx.parent
    return tuple(reversed(names))


def _routed(command: Command) -> list[Command]:
    """A group's hidden commands: those it runs when no command is named."""
    subs: dict[str, Command] = getattr(command, "commands", {})
    return [c for c in subs.values() if c.hidden]


def _commands_and_options(
    ctx: Context, command: Command, incomplete: str, described: bool
) -> list[CompletionItem]:
    items: list[CompletionItem] = []
    if hasattr(command, "list_commands") and not incomplete.startswith("-"):
        built: dict[str, Command] = getattr(command, "commands", {})
        for name in command.list_commands(ctx):
            if not name.startswith(incomplete):
                continue
            sub = built.get(name)  # the root builds its commands on demand
            if sub is None and described:
                sub = command.get_command(ctx, name)  # type: ignore[attr-defined]
            if sub is not None and sub.hidden:
                continue
            about = sub.get_short_help_str() if sub is not None and described else None
            items.append(CompletionItem(name, help=about))
    # click's option names (Command's, not a group's: that one builds every command)
    items += Command.shell_complete(command, ctx, incomplete)
    return items


def value_kind(path: tuple[str, ...], param: Parameter) -> str | None:
    """What ``param``'s value names on the command at ``path``, or None: VALUES, an
    environment for -e, a file for a path (or a FILE, PATH, OUTPUT, TEMPLATE), one of the
    words of a metavar such as ``read|write``."""
    if "--env" in param.opts or "-e" in param.opts:
        return None if path in NEW_ENVIRONMENT else ENVIRONMENT
    metavar = str(param.metavar or "")
    if type(param.type).__name__ in ("TyperPath", "Path", "File") or metavar in FILE_METAVARS:
        return FILE
    if re.fullmatch(r"[a-z-]+(\|[a-z-]+)+", metavar):
        return CHOICE
    return VALUES.get((path, str(param.name)))


def values_of(kind: str, args: list[str], incomplete: str, param: Parameter) -> list[str]:
    if kind == CHOICE:
        names = str(param.metavar).split("|")
    elif kind == SHELL:
        names = list(SHELL_NAMES)
    elif kind == ENVIRONMENT:
        names = environment_names(args)
    else:
        names = secret_names(args, incomplete, deleted=kind == DELETED)
    return [n for n in names if n.startswith(incomplete)]


def option_value(args: list[str], *names: str) -> str | None:
    """The value given last to one of ``names`` (``-e X``, ``--env X``, ``--env=X``,
    ``-eX``) before ``--``, anywhere on the line: a global option means the same before
    and after the command."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        for name in names:
            if arg == name and i + 1 < len(args):
                found = args[i + 1]
            elif name.startswith("--") and arg.startswith(name + "="):
                found = arg[len(name) + 1 :]
            elif not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                found = arg[len(name) :]
    return found


def environment_names(args: list[str]) -> list[str]:
    """The profile's environments, in its order, read without unlocking (the parsed
    profile cache; a missing or broken profile: none)."""
    path = find_profile(option_value(args, "-p", "--profile"), os.environ, Path.cwd())
    return list(load_profile_cached(path).environments)


class _Unattended(CliContext):
    """The CLI context of a TAB: nothing asks (no prompt, question or one-time code),
    nothing unlocks but a session or a token, nothing is said."""

    def credentials(self) -> Credentials:
        creds = super().credentials()
        return creds._replace(prompt=None, passphrase=None, use_keyring=False, key_file=None)

    def confirmation(self) -> Confirmation:
        return Confirmation()  # a protected environment refuses: no names, no question

    def warn(self, text: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


def secret_names(args: list[str], prefix: str, *, deleted: bool = False) -> list[str]:
    """The names of the secrets of the environment on the line (``-e``, else
    BSECRETS_ENV, else the default) starting with ``prefix``, when a session or a
    token is set and the environment is local; else none. ``deleted``: only the
    soft-deleted ones (what ``restore`` takes)."""
    environ = {k: v for k, v in os.environ.items() if k not in _NEVER_READ}
    settings = Settings.resolve(
        profile=option_value(args, "-p", "--profile"),
        env=option_value(args, "-e", "--env"),
        json=False,
        quiet=True,
        no_color=True,
        as_principal=option_value(args, "--as"),
        environ=environ,
    )
    if not (settings.session_token() or settings.pipeline_token()):
        return []
    cli = _Unattended(settings)
    try:
        manager = cli.manager
        env = manager.env_name(settings.env)
        if manager.profile.environment(env).backend != "local":
            return []
        found = manager.list_secrets(env, prefix, include_deleted=deleted)
        return [s.name for s in found if s.deleted == deleted]
    finally:
        cli.close()
