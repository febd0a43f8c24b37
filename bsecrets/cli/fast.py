"""The fast path: ``bsecrets get`` in its plain shapes, without importing typer.

Importing typer (with its click) costs more than the whole floor of a Python
program that reads a secret (bench/README.md, "Where the time goes"), and ``get``
is what scripts call in loops. So the console script (entry.py) first asks
:func:`plan` whether its arguments are one of the shapes this module fully
understands::

    bsecrets [GLOBAL]... get [GLOBAL | --version N | --raw]... NAME [...]

GLOBAL being -e/--env ENV, -p/--profile PATH, --reason TEXT, --as PRINCIPAL (a
value as the next word or after ``--long=``), --json, -q/--quiet, --no-color,
--insecure-http or -y/--yes: each option at most once on each side of ``get``,
every value non-empty and not starting with '-', exactly one NAME, not starting
with '-'. Anything else (help, the root's --version, ``--``, a repeated or
combined option, an unknown word, a version that is not a whole number from 1,
a TAB's completion request) goes to the Typer app unchanged: it stays the one
definition of the interface, its usage errors and its help.

A plan runs what the Typer app runs for the same words, through the same code:
Settings.resolve with the options given before ``get``, Settings.given with those
after it, a CliContext, commands/get_value.print_secret, and outcome.exit_with for
the errors. tests/test_fast_dispatch.py checks that both paths print the same
bytes and exit alike. ``BSECRETS_NO_FAST=1`` sends every command to the Typer app
(a debugging aid, to tell the paths apart).
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

from bsecrets.cli.cli_context import CliContext
from bsecrets.cli.commands.get_value import print_secret
from bsecrets.cli.exit_codes import ExitCode
from bsecrets.cli.numbers import parse_whole_number
from bsecrets.cli.outcome import exit_with, flush_quietly
from bsecrets.config.settings import COMPLETE_VAR, ENV_NO_FAST, GLOBAL_OPTIONS, Settings
from bsecrets.files import harden_process

COMMAND = "get"

# The global options taken here (before or after the command): word -> long name.
GLOBAL_WORDS: Mapping[str, str] = {
    "-e": "--env", "--env": "--env", "-p": "--profile", "--profile": "--profile",
    "--reason": "--reason", "--as": "--as", "--json": "--json", "-q": "--quiet",
    "--quiet": "--quiet", "--no-color": "--no-color", "--insecure-http": "--insecure-http",
    "-y": "--yes", "--yes": "--yes",
}  # fmt: skip
# get's own options taken here (after the command; its -e and --json are the globals').
GET_WORDS: Mapping[str, str] = {"--version": "--version", "--raw": "--raw"}
TAKES_VALUE = frozenset({"--env", "--profile", "--reason", "--as", "--version"})


class GetPlan(NamedTuple):
    """``bsecrets get`` with plain arguments, its options by long name (a flag: True)."""

    name: str
    before: Mapping[str, str | bool]  # global options before the command
    after: Mapping[str, str | bool]  # after it: global ones and get's own


def plan(argv: Sequence[str], environ: Mapping[str, str]) -> GetPlan | None:
    """The plan for ``argv`` when it is a shape this module fully understands, else None
    (the Typer app takes it)."""
    if environ.get(ENV_NO_FAST) == "1" or COMPLETE_VAR in environ:
        return None
    sides: tuple[dict[str, str | bool], dict[str, str | bool]] = ({}, {})
    names: list[str] = []
    seen_command = False
    words = iter(argv)
    for word in words:
        if not word.startswith("-"):
            if seen_command:
                names.append(word)
            elif word == COMMAND:
                seen_command = True
            else:
                return None
            continue
        option, equals, value = word.partition("=") if word.startswith("--") else (word, "", "")
        table = {**GLOBAL_WORDS, **GET_WORDS} if seen_command else GLOBAL_WORDS
        long = table.get(option)
        side = sides[seen_command]
        if long is None or long in side:
            return None
        if long in TAKES_VALUE:
            given = value if equals else next(words, None)
            if not given or given.startswith("-"):
                return None
            side[long] = given
        elif equals:
            return None
        else:
            side[long] = True
    if not seen_command or len(names) != 1:
        return None
    if "--version" in sides[1]:
        try:
            parse_whole_number(str(sides[1]["--version"]), 1)
        except ValueError:
            return None
    return GetPlan(names[0], *sides)


def run(found: GetPlan, argv: Sequence[str]) -> NoReturn:
    """Run ``found`` and exit, as the Typer app would with ``argv``."""
    exit_with(argv, lambda: _as_click_main(lambda: _get(found)))


def _get(found: GetPlan) -> None:
    """The root callback's work (app.root), then the get command's (secrets.get)."""
    harden_process()
    before = found.before
    settings = Settings.resolve(
        profile=_text(before, "--profile"),
        env=_text(before, "--env"),
        json="--json" in before,
        quiet="--quiet" in before,
        no_color="--no-color" in before,
        insecure_http="--insecure-http" in before,
        yes="--yes" in before,
        reason=_text(before, "--reason"),
        as_principal=_text(before, "--as"),
    )
    after = found.after
    for option, value in after.items():
        if option in GLOBAL_OPTIONS:
            settings = settings.given(option, value)
    version = _text(after, "--version")
    cli = CliContext(settings)
    try:
        print_secret(
            cli,
            found.name,
            env=_text(after, "--env"),
            version=None if version is None else parse_whole_number(version, 1),
            raw="--raw" in after,
            json_out="--json" in after,
        )
    finally:
        cli.close()


def _text(options: Mapping[str, str | bool], long: str) -> str | None:
    value = options.get(long)
    return value if isinstance(value, str) else None


def _as_click_main(work: Callable[[], Any]) -> Any:
    """What typer's main (click's) makes of three exceptions before bsecrets sees them,
    so that both paths exit alike: Ctrl-C is exit 130 without a word; the end of
    input at a prompt, a blank line and then 'interrupted'; a reader of stdout gone
    away, exit 1 with stdout silenced."""
    try:
        return work()
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except EOFError as exc:
        sys.stderr.write("\n")
        raise KeyboardInterrupt from exc
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        flush_quietly()
        return int(ExitCode.ERROR)
