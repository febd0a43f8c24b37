"""Running the bsecrets CLI in tests: in-process through Typer's CliRunner
(``invoke``), as a real process (``run_cli``) or on a pseudo-terminal
(``run_on_tty``); storing and reading values through it; checking an error."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bsecrets.cli.app import app
from bsecrets.cli.hints import hint_for
from bsecrets.errors import BsecretsError


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


def invoke(
    args: list[str], *, input: bytes | str | None = None, env: dict[str, str] | None = None
) -> Result:
    """Run the CLI in-process through Typer's CliRunner."""
    result = CliRunner().invoke(app, args, input=input, env=env, catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr, result.stdout_bytes)


def put_secret(name: str, value: bytes, env: str = "dev", tmp: Path | None = None) -> None:
    """Store exact bytes through the CLI (via --from-file, so nothing is stripped)."""
    path = (tmp or Path.cwd()) / ".value"
    path.write_bytes(value)
    result = invoke(["put", name, "--from-file", str(path), "-e", env])
    path.unlink()
    assert result.exit_code == 0, result.stderr


def put_all(root: Path, values: dict[str, str], env: str = "dev") -> None:
    """Store each value through the CLI (empty ones too), via a file in ``root``."""
    for name, value in values.items():
        path = root / "value.tmp"
        path.write_bytes(value.encode())
        # HOSTILE holds an empty value on purpose
        result = invoke(["put", name, "--from-file", str(path), "-e", env, "--allow-empty"])
        assert result.exit_code == 0, result.stderr
        path.unlink()


def values_of(env: str) -> dict[str, str]:
    """Every value of ``env``, read back through ``export --format json``."""
    result = invoke(["export", "--format", "json", "-e", env])
    assert result.exit_code == 0, result.stderr
    data: dict[str, str] = json.loads(result.stdout_bytes.decode())
    return data


def run_cli(
    args: list[str],
    *,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI as a real process (``python -m bsecrets``)."""
    return subprocess.run(
        [sys.executable, "-m", "bsecrets", *args],
        input=input,
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def run_on_tty(args: list[str], answers: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run bsecrets with stdin/stdout/stderr on a pty, answer each prompt, return (code, screen)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bsecrets", *args], stdin=follower, stdout=follower,
        stderr=follower, env=env, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    screen = b""
    pending = list(answers)
    answered = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            # Answer each prompt once it is shown: getpass flushes type-ahead.
            prompts = screen.count(b": ")
            if pending and prompts > answered and screen.endswith(b": "):
                answered += 1
                os.write(leader, pending.pop(0).encode() + b"\n")
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=10)
    os.close(leader)
    return code, screen.decode(errors="replace")


def assert_error(result: object, code: int, *needles: str) -> None:
    """The exit code, stderr starting with an 'error:' line, no traceback, each needle
    in stderr. (helpers.vault_env.assert_error also allows only 'hint:' lines after it.)"""
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == code, stderr  # type: ignore[attr-defined]
    lines = stderr.splitlines()
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in stderr, stderr


def hint_of(call: Callable[[], object]) -> str | None:
    """The hint the command line shows for the error ``call`` raises (it must raise)."""
    with pytest.raises(BsecretsError) as caught:
        call()
    return hint_for(caught.value)
