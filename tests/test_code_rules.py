"""The house rules, checked with the tests (so CI enforces them, not memory):
ruff (with TID253: no heavy module at the top of a bsecrets module), ruff's
formatting, and mypy strict on the package."""

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
