"""Every --help: a usage line in NAME form, option values named, and at the end two or
three examples that are real command lines (each one is run through the parser)."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
from helpers.cli import invoke

from bsecrets.cli.app import COMMANDS, app, build_command


def command_paths() -> list[list[str]]:
    """The root, every command, every group's subcommands."""
    paths: list[list[str]] = [[]]
    for name in COMMANDS:
        paths.append([name])
        command = build_command(name)
        paths += [[name, sub] for sub in getattr(command, "commands", {})]
    return paths


def examples(text: str) -> list[str]:
    """The lines of the 'Examples:' section that ends the help."""
    head, found, tail = text.partition("\nExamples:\n")
    assert found, text
    assert "Options:" in head and "Options:" not in tail, "the examples come last"
    return [line.strip() for line in tail.splitlines() if line.strip()]


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "bsecrets")
def test_help_shows_names_and_ends_with_examples(path: list[str]) -> None:
    result = invoke([*path, "--help"])
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    usage = text.splitlines()[0]
    assert usage.startswith(" ".join(["Usage: bsecrets", *path])), usage
    assert "{" not in usage and "<" not in usage, usage
    assert not re.search(r"<(str|int|float|path|bool)>", text), text  # option values named
    lines = examples(text)
    assert len([line for line in lines if line.startswith("bsecrets ")]) >= 2, lines
    assert all(line.startswith(("bsecrets ", "eval ")) for line in lines), lines
    assert invoke([*path, "-h"]).stdout == text


def test_help_keeps_the_example_lines_apart() -> None:
    text = invoke(["get", "--help"]).stdout
    assert text.endswith(
        "Examples:\n"
        "  bsecrets get DB_URL\n"
        "  bsecrets get DB_URL -e prod --json\n"
        "  bsecrets get tls/key --version 2 --raw > key.pem\n"
    ), text
    usage = invoke(["exec", "--help"]).stdout.splitlines()[0]
    assert usage == "Usage: bsecrets exec [OPTIONS] -- CMD [ARGS]...", usage
    assert invoke(["diff", "--help"]).stdout.startswith(
        "Usage: bsecrets diff [OPTIONS] ENV_A ENV_B\n"
    )
    assert invoke(["ls", "--help"]).stdout.startswith("Usage: bsecrets ls [OPTIONS] [PREFIX]\n")


SHELL = {"|", "||", "&&", ";", ">", ">>", "<", "2>"}


def example_lines() -> list[str]:
    found = []
    for path in command_paths():
        tail = invoke([*path, "--help"]).stdout.partition("\nExamples:\n")[2]
        found += [
            line.strip() for line in tail.splitlines() if line.strip().startswith("bsecrets ")
        ]
    return sorted(set(found))


def parse_only(argv: list[str]) -> None:
    """Parse ``argv`` as bsecrets would, through every level, without running anything:
    click's make_context checks options, values and arguments; nothing is invoked."""
    import typer.main
    from typer.core import TyperGroup

    ctx: Any = typer.main.get_command(app).make_context("bsecrets", list(argv))
    while isinstance(ctx.command, TyperGroup):
        rest = [*ctx._protected_args, *ctx.args]
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)


def test_every_example_parses() -> None:
    from typer._click.exceptions import UsageError

    lines = example_lines()
    assert len(lines) >= 2 * len(command_paths())
    wrong = []
    for line in lines:
        words = shlex.split(line)
        cut = next((i for i, w in enumerate(words) if w in SHELL), len(words))
        try:
            parse_only(words[1:cut])
        except UsageError as exc:  # only usage errors: anything else fails the test as it is
            wrong.append(f"{line}: {exc.format_message()}")
    assert wrong == []
