"""The house rules, checked with the tests (so CI enforces them, not memory):
ruff (with TID253: no heavy module at the top of a bsecrets module), ruff's
formatting, mypy strict on the package, import-linter's contracts (the layer
map in pyproject.toml: dependencies run one way, no cycles) and the size of
modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def _needs(module: str) -> None:
    if shutil.which(module) is None and _run(module, "--version").returncode != 0:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")


def test_ruff_check() -> None:
    _needs("ruff")
    result = _run("ruff", "check", "bsecrets", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    _needs("ruff")
    result = _run("ruff", "format", "--check", "bsecrets", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_heavy_modules_stay_inside_functions() -> None:
    """TID253 is on: a module-level 'import yaml' in a bsecrets module fails ruff (the
    code is given on stdin, named as a module of the package, so the rule is shown to
    bite without writing into the tree)."""
    _needs("ruff")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--stdin-filename", "bsecrets/_probe.py", "-"],
        cwd=ROOT, input='"""probe"""\n\nimport yaml\n\nprint(yaml)\n',
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0 and "TID253" in result.stdout, result.stdout


def test_mypy_strict() -> None:
    _needs("mypy")
    result = _run("mypy", "bsecrets")
    assert result.returncode == 0, result.stdout + result.stderr


MAX_MODULE_LINES = 500


def _lint_imports(config: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(config) if config else None!r}, "
        "no_cache=True, no_logo=True))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_import_contracts() -> None:
    """lint-imports: the layers of pyproject.toml, backends independent, no cycles."""
    pytest.importorskip("importlinter", reason="pip install -e '.[test]'")
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("importer", "imported", "broken"),
    [
        # an arrow back up: the vault file may not know the audit log
        ("bsecrets.vaultfile.store", "bsecrets.audit.chain", "Dependencies run one way"),
        # siblings on one line: the formats may not use the backends
        ("bsecrets.formats.codecs", "bsecrets.backends.registry", "Dependencies run one way"),
        # a leaf stays a leaf
        ("bsecrets.errors", "bsecrets.models", "Dependencies run one way"),
        ("bsecrets.backends.vault.config", "bsecrets.backends.aws.settings", "know nothing"),
        # a cycle inside one package, through a function-level import
        ("bsecrets.config.profile", "bsecrets.config.parser", "No cycles"),
    ],
)
def test_import_contracts_bite(tmp_path: Path, importer: str, imported: str, broken: str) -> None:
    """Each contract fails on the arrow it forbids: the package is copied with one
    function-level import added, and checked against the same contracts."""
    pytest.importorskip("importlinter", reason="pip install -e '.[test]'")
    shutil.copytree(
        ROOT / "bsecrets", tmp_path / "bsecrets", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    module = tmp_path / Path(*importer.split(".")).with_suffix(".py")
    module.write_text(module.read_text() + f"\n\ndef _probe() -> None:\n    import {imported}\n")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True, no_logo=True))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert f"{broken}" in result.stdout.split("Broken contracts")[-1], result.stdout


def test_modules_stay_small() -> None:
    """No module of the package is over 500 lines: past that it is usually two."""
    big = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "bsecrets").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not big, f"over {MAX_MODULE_LINES} lines: {big}"
