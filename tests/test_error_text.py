"""Security review item 8, beyond import: no error quotes what the user typed where
it could be a value. A token pasted as an extra argument, as an option value or as
something that starts with '-' goes to stderr, and stderr goes to CI logs.

(Import files: tests/test_hardening_formats.py; templates: tests/test_render.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.cli import run_cli

CANARY = "sk-live-Zq81canary"


@pytest.mark.parametrize(
    "args",
    [
        ["put", "db/password", CANARY],
        ["put", "db/password", CANARY, "second-word"],
        ["get", "db/password", CANARY],
        ["put", "db/password", f"-{CANARY}"],
        ["put", "db/password", f"--{CANARY}Xy"],
        ["get", "db/password", "--version", CANARY],
        ["history", "db/password", CANARY],
        ["rollback", "db/password", "--to", CANARY],
        ["audit", "log", "--limit", CANARY],
        ["audit", "tail", "--interval", CANARY],
        ["put", "db/password", "--tag", CANARY],
        ["exec", "--only", "a", CANARY],  # no '--': taken as the command, not echoed as usage
    ],
)
def test_usage_errors_never_echo_what_was_typed(vault: Path, args: list[str]) -> None:
    proc = run_cli(args, input=b"")
    stderr = proc.stderr.decode()
    assert CANARY not in stderr and CANARY.encode() not in proc.stdout, stderr
    if proc.returncode == 2:
        lines = stderr.splitlines()
        assert len(lines) == 2 and lines[0].startswith("error: "), stderr
        assert lines[1].startswith("hint: ") and "Traceback" not in stderr


def test_the_error_still_says_what_was_wrong(vault: Path) -> None:
    proc = run_cli(["put", "db/password", CANARY, "two"], input=b"")
    assert proc.returncode == 2
    assert b"got 2 unexpected extra arguments" in proc.stderr
    assert b"stdin, --from-file or a prompt" in proc.stderr
    proc = run_cli(["get", "x", "--verson", "2"])
    assert proc.returncode == 2 and b"no such option: --verson" in proc.stderr
    proc = run_cli(["get", "x", "--version", "abc"])
    assert proc.returncode == 2
    assert b"invalid value for '--version': it is not a whole number" in proc.stderr
