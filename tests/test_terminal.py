"""Prompts on a real terminal (a pseudo-terminal): values and passphrases are
asked without echo, and never reach the screen."""

from __future__ import annotations

import os
from pathlib import Path

from helpers.cli import invoke, run_on_tty
from helpers.values import PASSPHRASE


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
