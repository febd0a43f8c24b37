"""The error tree and the command line's meaning for it: every error class maps to
the exit code docs/cli.md lists for its kind; bsecrets.errors is a leaf that
knows no exit code and names no command; the CLI's hints fill in only where an
error carries none."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import bsecrets.errors as errors
from bsecrets.cli.exit_codes import EXIT_CODES, ExitCode, exit_code_of
from bsecrets.cli.hints import HINTS, STEPS, hint_for
from bsecrets.errors import BsecretsError

ROOT = Path(__file__).resolve().parent.parent
# The modules that define error classes outside bsecrets.errors.
MORE_ERRORS = ("bsecrets.audit.report", "bsecrets.formats.codecs", "bsecrets.services.audit_ops")
# Kinds the CLI gives to what is not a BsecretsError (click's usage errors, Ctrl-C, a bug).
CLI_ONLY_KINDS = {"usage": 2, "interrupted": 130, "internal": 1}


def all_error_classes() -> list[type[BsecretsError]]:
    for module in MORE_ERRORS:
        importlib.import_module(module)
    found: list[type[BsecretsError]] = [BsecretsError]
    for cls in found:
        found += [sub for sub in cls.__subclasses__() if sub.__module__.startswith("bsecrets.")]
    return found


def documented_kinds() -> dict[str, set[int]]:
    """kind -> exit code(s), from the "Kinds, by exit code" table of docs/cli.md."""
    text = (ROOT / "docs" / "cli.md").read_text()
    table = text.split("Kinds, by exit code", 1)[1].split("\n\n", 2)[1]
    kinds: dict[str, set[int]] = {}
    for row in table.splitlines()[2:]:
        codes, names = row.strip("|").split("|", 1)
        for kind in re.findall(r"`([a-z_]+)`", names):
            if kind != "exec":  # the 126/127 row names the command
                kinds[kind] = {int(code) for code in codes.split(",")}
    assert len(kinds) > 20, table
    return kinds


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_has_the_documented_code(cls: type[BsecretsError]) -> None:
    documented = documented_kinds()
    assert cls.kind in documented, f"{cls.__name__}: kind {cls.kind!r} is not in docs/cli.md"
    assert exit_code_of(cls) in documented[cls.kind], cls


def test_exec_codes_are_a_shells() -> None:
    assert exit_code_of(errors.CommandNotFound) == ExitCode.COMMAND_NOT_FOUND == 127
    assert exit_code_of(errors.CommandNotExecutable) == ExitCode.NOT_EXECUTABLE == 126


def test_kinds_are_unique_and_every_documented_kind_exists() -> None:
    kinds = [cls.kind for cls in all_error_classes()]
    assert len(kinds) == len(set(kinds)), kinds
    assert set(documented_kinds()) == set(kinds) | set(CLI_ONLY_KINDS)
    for kind, code in CLI_ONLY_KINDS.items():
        assert documented_kinds()[kind] == {code}


def test_a_subclass_must_name_its_kind() -> None:
    with pytest.raises(TypeError, match="must set its own kind"):

        class Renamed(errors.SecretNotFound):
            pass


def test_a_new_subclass_inherits_its_parents_code() -> None:
    class Special(errors.VersionConflict):
        kind = "special"

    assert exit_code_of(Special("x")) == ExitCode.CONFLICT
    assert hint_for(Special("x")) == HINTS[errors.VersionConflict]


def test_the_table_lists_a_class_only_where_its_code_changes() -> None:
    assert EXIT_CODES[BsecretsError] == ExitCode.ERROR
    for cls, code in EXIT_CODES.items():
        if cls is not BsecretsError:
            assert exit_code_of(cls.__mro__[1]) != code, cls


def test_errors_is_a_leaf_without_exit_codes() -> None:
    source = (ROOT / "bsecrets" / "errors.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("bsecrets"), node.module
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("bsecrets") for a in node.names), ast.dump(node)
        names = {getattr(node, attr, None) for attr in ("id", "attr", "name")}
        assert not names & {"ExitCode", "exit_code"}, ast.dump(node)


def _names_the_cli(hint: str) -> bool:
    """A bsecrets command ("'bsecrets ls'", "$(bsecrets unlock)") or an option
    ("--force"); pip's are fine."""
    hint = re.sub(r"'pip install [^']*'", "", hint)
    return bool(re.search(r"['(]bsecrets [a-z]|(?<![\w-])--?[a-z]", hint))


def test_core_hints_name_no_command() -> None:
    for cls in all_error_classes():
        if cls.default_hint is not None:
            assert not _names_the_cli(cls.default_hint), (cls, cls.default_hint)
    assert _names_the_cli("run 'bsecrets unlock'") and _names_the_cli("pass --force")


def test_cli_hints_are_not_shadowed_by_a_core_default() -> None:
    """A class in HINTS must not inherit a default_hint: that would win over its CLI hint."""
    for cls in HINTS:
        assert cls.default_hint is None, cls


def test_hint_for() -> None:
    assert hint_for(errors.SecretNotFound("x")) == "list what exists with 'bsecrets ls'"
    assert hint_for(errors.SecretNotFound("x", hint="here")) == "here"
    assert errors.SecretNotFound("x").hint is None  # the core error knows no command
    assert hint_for(errors.IntegrityError("x")) == errors.IntegrityError.default_hint
    assert hint_for(errors.StorageError("x")) is None


def _package_sources_below_the_cli() -> list[tuple[Path, ast.Module]]:
    """Every module but the front ends that word their own hints: the CLI, and the
    server above it (its hints tell an API user which command makes a token)."""
    return [
        (path, ast.parse(path.read_text()))
        for path in sorted((ROOT / "bsecrets").rglob("*.py"))
        if path.relative_to(ROOT / "bsecrets").parts[0] not in ("cli", "server")
    ]


def _literals(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


# a bsecrets command, one of its long options or -e ENV, or the CLI's debug switch
# (the Vault CLI's own commands, like 'vault secrets enable -path=', are fine)
_OURS = re.compile(
    r"bsecrets (init|env|put|get|ls|rm|restore|history|rollback|unlock|lock|exec|render"
    r"|export|import|diff|provision|verify|audit|vault|aws|status)\b"
    r"|(?<![\w-])--[a-z]|-e (ENV|\{)|BSECRETS_DEBUG"
)


def test_hints_below_the_cli_name_no_command() -> None:
    """Every hint given where an error is raised, in every module below the CLI (a
    ``hint=`` argument or a ``*HINT*`` constant), names no command or option: those
    are next steps (NextStep) that the CLI words (cli/hints.py STEPS)."""
    found = []
    for path, tree in _package_sources_below_the_cli():
        for node in ast.walk(tree):
            is_hint = (isinstance(node, ast.keyword) and node.arg == "hint") or (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and "HINT" in t.id for t in node.targets)
            )
            if is_hint:
                value = node.value  # type: ignore[attr-defined]
                found += [(path.name, t) for t in _literals(value) if _OURS.search(t)]
    assert not found, found
    assert _OURS.search("list what exists with 'bsecrets ls'") and _OURS.search("use --ttl 7d")


def test_every_next_step_has_its_cli_wording() -> None:
    """Each NextStep action raised below the CLI has a template in STEPS, and each
    template is used (by a site, or as another step's ``then``)."""
    used: set[str] = set()
    for _, tree in _package_sources_below_the_cli():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "NextStep"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                used.add(node.args[0].value)
    assert used, "no NextStep found: the scan is broken"
    assert used <= set(STEPS), sorted(used - set(STEPS))
    assert set(STEPS) <= used, sorted(set(STEPS) - used)
