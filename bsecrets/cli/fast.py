"""The fast path: ``bsecrets get``, ``exec``, ``export``, ``put`` and ``render`` in their
plain shapes, without importing typer.

Importing typer (with its click) costs more than the whole floor of a Python
program that reads a secret (bench/README.md, "Where the time goes"), and ``get``
is what scripts call in loops, ``exec`` what starts every CI step. So the console
script (entry.py) first asks :func:`plan` whether its arguments are one of the
shapes this module fully understands::

    bsecrets [GLOBAL]... get [GLOBAL | --version N | --raw]... NAME
    bsecrets [GLOBAL]... exec [GLOBAL | -e ENV | --only LIST | --prefix P | --mask
                               | --no-mask | --pristine]... -- CMD [ARGS]...
    bsecrets [GLOBAL]... export [GLOBAL | -e ENV | -f/--format F | --only LIST
                                 | --prefix P]...
    bsecrets [GLOBAL]... put [GLOBAL | --from-file F | --value V | --tag KEY=VALUE
                              | --description D | --if-version N | --allow-empty]... NAME
    bsecrets [GLOBAL]... render [GLOBAL | -e ENV | -o/--output F | --strict]... TEMPLATE

GLOBAL being -e/--env ENV, -p/--profile PATH, --reason TEXT, --as PRINCIPAL (a
value as the next word or after ``--long=``), --json, -q/--quiet, --no-color,
--insecure-http or -y/--yes: each option at most once on each side of the command
(exec's, export's and render's own -e, their --only, put's --tag, as often as
wanted), every value non-empty and not starting with '-'; get's and put's one NAME
and render's one TEMPLATE, not starting with '-' (render's stdin, '-', goes to the
app); exec's command all the words after the first ``--``, at least one, never read
here. Anything else (help, the root's --version, a repeated or combined option, an
unknown word, a version that is not a whole number from 1 or an --if-version from
0, exec without ``--``, a TAB's completion request) goes to the Typer app
unchanged: it stays the one definition of the interface, its usage errors and its
help.

A plan runs what the Typer app runs for the same words, through the same code:
Settings.resolve with the options given before the command, Settings.given with the
global ones after it, a CliContext, the command's typer-free body
(commands/get_value.print_secret, commands/exec_child.run_exec,
commands/export_secrets.export_secrets, commands/put_value.store_secret,
commands/render_template.render_template), and outcome.exit_with for the errors.
tests/test_fast_dispatch.py checks that both paths print the same bytes and exit
alike. ``BSECRETS_NO_FAST=1`` sends every command to the Typer app (a debugging
aid, to tell the paths apart).
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from bsecrets.cli.cli_context import CliContext
from bsecrets.cli.outcome import exit_with, flush_quietly
from bsecrets.config.settings import COMPLETE_VAR, ENV_NO_FAST, GLOBAL_OPTIONS, Settings
from bsecrets.files import harden_process
from bsecrets.named_tuples import NamedTuple

# The global options taken here (before or after the command): word -> long name.
GLOBAL_WORDS: Mapping[str, str] = {
    "-e": "--env", "--env": "--env", "-p": "--profile", "--profile": "--profile",
    "--reason": "--reason", "--as": "--as", "--json": "--json", "-q": "--quiet",
    "--quiet": "--quiet", "--no-color": "--no-color", "--insecure-http": "--insecure-http",
    "-y": "--yes", "--yes": "--yes",
}  # fmt: skip
TAKES_VALUE = frozenset({"--env", "--profile", "--reason", "--as"})  # of the global options
NEGATIVE = frozenset({"--no-mask"})  # a flag's word that sets it to False

Value = str | bool | tuple[str, ...]


class Shape(NamedTuple):
    """A command's own words, taken after it (where they hide a global option of the
    same word: exec's -e is its layers, not the global -e)."""

    words: Mapping[str, str]  # word -> long name
    takes_value: frozenset[str] = frozenset()  # long names
    repeatable: frozenset[str] = frozenset()  # long names: a tuple of every value, in order
    names: int = 0  # how many NAME words
    rest: bool = False  # '--', then the command and its arguments


LAYERS = {"-e": "--env", "--env": "--env", "--only": "--only", "--prefix": "--prefix"}
SHAPES: Mapping[str, Shape] = {
    "get": Shape({"--version": "--version", "--raw": "--raw"}, frozenset({"--version"}), names=1),
    "exec": Shape(
        {**LAYERS, "--mask": "--mask", "--no-mask": "--mask", "--pristine": "--pristine"},
        frozenset({"--env", "--only", "--prefix"}), frozenset({"--env", "--only"}), rest=True,
    ),
    "export": Shape(
        {**LAYERS, "-f": "--format", "--format": "--format"},
        frozenset({"--env", "--only", "--prefix", "--format"}), frozenset({"--env", "--only"}),
    ),
    "put": Shape(
        {"--from-file": "--from-file", "--value": "--value", "--tag": "--tag",
         "--description": "--description", "--if-version": "--if-version",
         "--allow-empty": "--allow-empty"},
        frozenset({"--from-file", "--value", "--tag", "--description", "--if-version"}),
        frozenset({"--tag"}), names=1,
    ),
    "render": Shape(
        {"-e": "--env", "--env": "--env", "-o": "--output", "--output": "--output",
         "--strict": "--strict"},
        frozenset({"--env", "--output"}), frozenset({"--env"}), names=1,
    ),
}  # fmt: skip
# The whole-number options, by long name: the smallest value Typer takes (else its
# usage error, so such an argv goes to it).
WHOLE_NUMBERS: Mapping[str, int] = {"--version": 1, "--if-version": 0}
BEFORE = Shape({})  # before the command: only the global options


class Plan(NamedTuple):
    """A command with plain arguments, its options by long name (a flag: True, or
    False for a NEGATIVE word; a repeatable option: its values)."""

    command: str
    names: tuple[str, ...]
    before: Mapping[str, Value]  # global options before the command
    after: Mapping[str, Value]  # after it: global ones and the command's own
    rest: tuple[str, ...] = ()  # exec: the command to run and its arguments


def plan(argv: Sequence[str], environ: Mapping[str, str]) -> Plan | None:
    """The plan for ``argv`` when it is a shape this module fully understands, else None
    (the Typer app takes it)."""
    if environ.get(ENV_NO_FAST) == "1" or COMPLETE_VAR in environ:
        return None
    sides: tuple[dict[str, Value], dict[str, Value]] = ({}, {})
    names: list[str] = []
    command, shape, rest = "", BEFORE, tuple[str, ...]()
    words = iter(argv)
    for word in words:
        if not word.startswith("-"):
            if shape is not BEFORE:
                names.append(word)
            elif word in SHAPES:
                command, shape = word, SHAPES[word]
            else:
                return None
            continue
        if word == "--" and shape.rest:
            rest = tuple(words)
            break
        option, equals, value = word.partition("=") if word.startswith("--") else (word, "", "")
        own = option in shape.words
        long = shape.words.get(option) or GLOBAL_WORDS.get(option)
        side = sides[shape is not BEFORE]
        many = own and long in shape.repeatable
        if long is None or (long in side and not many):
            return None
        if long in (shape.takes_value if own else TAKES_VALUE):
            given = value if equals else next(words, None)
            if not given or given.startswith("-"):
                return None
            prior = side.get(long, ())
            side[long] = (*prior, given) if many and isinstance(prior, tuple) else given
        elif equals:
            return None
        else:
            side[long] = option not in NEGATIVE
    if shape is BEFORE or len(names) != shape.names or (shape.rest and not rest):
        return None
    for long, minimum in WHOLE_NUMBERS.items():
        if long in sides[1]:
            try:
                _whole_number(str(sides[1][long]), minimum)
            except ValueError:
                return None
    return Plan(command, tuple(names), *sides, rest=rest)


def run(found: Plan, argv: Sequence[str]) -> NoReturn:
    """Run ``found`` and exit, as the Typer app would with ``argv``."""
    exit_with(argv, lambda: _as_click_main(lambda: _run(found)))


def _whole_number(value: str, minimum: int) -> int:
    """cli/numbers.py's parse_whole_number, the module loaded when a number is given."""
    from bsecrets.cli.numbers import parse_whole_number

    return parse_whole_number(value, minimum)


def _run(found: Plan) -> int | None:
    """The root callback's work (app.root), then the command's."""
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
    own = set(SHAPES[found.command].words.values())
    for option, value in found.after.items():
        if option in GLOBAL_OPTIONS and option not in own:  # a global option after it
            settings = settings.given(option, value)
    cli = CliContext(settings)
    try:
        return BODIES[found.command](cli, found)
    finally:
        cli.close()


def _get(cli: CliContext, found: Plan) -> None:
    from bsecrets.cli.commands.get_value import print_secret  # the seam: see BODIES

    after = found.after
    version = _text(after, "--version")
    print_secret(
        cli,
        found.names[0],
        env=_text(after, "--env"),
        version=None if version is None else _whole_number(version, 1),
        raw="--raw" in after,
        json_out="--json" in after,
    )


def _exec(cli: CliContext, found: Plan) -> int:
    from bsecrets.cli.commands.exec_child import ExecOptions, run_exec  # the seam: BODIES

    after = found.after
    mask = after.get("--mask")
    given = ExecOptions(
        envs=_texts(after, "--env"), only=_texts(after, "--only"),
        prefix=_text(after, "--prefix") or "", pristine="--pristine" in after,
        mask=mask if isinstance(mask, bool) else None,
    )  # fmt: skip
    return run_exec(cli, found.rest, given)


def _export(cli: CliContext, found: Plan) -> None:
    from bsecrets.cli.commands.export_secrets import ExportOptions, export_secrets  # seam

    after = found.after
    given = ExportOptions(
        envs=_texts(after, "--env"), fmt=_text(after, "--format"),
        only=_texts(after, "--only"), prefix=_text(after, "--prefix") or "",
    )  # fmt: skip
    export_secrets(cli, given)


def _put(cli: CliContext, found: Plan) -> None:
    from bsecrets.cli.commands.put_value import store_secret  # the seam: see BODIES

    after = found.after
    from_file, if_version = _text(after, "--from-file"), _text(after, "--if-version")
    store_secret(
        cli, found.names[0], from_file=from_file,
        value=_text(after, "--value"), tag=_texts(after, "--tag"),
        description=_text(after, "--description"),
        if_version=None if if_version is None else _whole_number(if_version, 0),
        allow_empty="--allow-empty" in after, env=_text(after, "--env"),
        json_out="--json" in after,
    )  # fmt: skip


def _render(cli: CliContext, found: Plan) -> None:
    from bsecrets.cli.commands.render_template import render_template  # the seam: BODIES

    after = found.after
    render_template(
        cli, found.names[0], output=_text(after, "--output") or "-",
        strict="--strict" in after, envs=_texts(after, "--env"),
    )  # fmt: skip


# Each command's body, imported when it runs: a get loads no exec code, and no export code.
BODIES: Mapping[str, Callable[[CliContext, Plan], int | None]] = {
    "get": _get, "exec": _exec, "export": _export, "put": _put, "render": _render,
}  # fmt: skip


def _texts(options: Mapping[str, Value], long: str) -> tuple[str, ...] | None:
    value = options.get(long)
    return value if isinstance(value, tuple) else None


def _text(options: Mapping[str, Value], long: str) -> str | None:
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
        from bsecrets.cli.exit_codes import ExitCode  # here: loaded for an error only

        return int(ExitCode.INTERRUPTED)
    except EOFError as exc:
        sys.stderr.write("\n")
        raise KeyboardInterrupt from exc
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        from bsecrets.cli.exit_codes import ExitCode

        flush_quietly()
        return int(ExitCode.ERROR)
