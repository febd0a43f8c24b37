"""Prompts on a real terminal (a pseudo-terminal): values and passphrases are
asked without echo, and never reach the screen."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from conftest import PASSPHRASE, invoke


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


def test_put_prompts_without_echo(vault: Path) -> None:
    env = {**os.environ}
    code, screen = run_on_tty(["put", "hidden"], ["tty-secret-value"], env)
    assert code == 0, screen
    assert "Value (hidden):" in screen
    assert "tty-secret-value" not in screen
    assert invoke(["get", "hidden"]).stdout == "tty-secret-value\n"


def test_passphrase_prompt_without_echo(vault: Path) -> None:
    invoke(["put", "a"], input="1")
    env = {k: v for k, v in os.environ.items() if k != "BSECRETS_PASSPHRASE"}
    code, screen = run_on_tty(["get", "a"], [PASSPHRASE], env)
    assert code == 0, screen
    assert "Vault passphrase:" in screen
    assert PASSPHRASE not in screen


def test_init_asks_twice_and_checks(isolated: Path) -> None:
    env = {**os.environ}
    code, screen = run_on_tty(["init"], [PASSPHRASE, "something else"], env)
    assert code == 2 and "differ" in screen
    assert not (isolated / "bsecrets.yaml").exists()
    code, screen = run_on_tty(["init"], [PASSPHRASE, PASSPHRASE], env)
    assert code == 0, screen
    assert PASSPHRASE not in screen
    assert (isolated / ".bsecrets" / "vault.db").exists()
