"""Rotation tests' shared steps: a policy for ``db/*`` written into one environment
of the profile, hook scripts, and a ``bsecrets rotate`` process killed (SIGKILL to its
process group) while one of its hooks waits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.cli import invoke


def policy(root: Path, env: str, spec: str) -> None:
    """A rotation policy for 'db/*' in ``env`` (``spec``: its YAML flow mapping), as the
    environment's first key after its name."""
    profile = root / "bsecrets.yaml"
    text = profile.read_text()
    head = f"  {env}:\n"
    assert head in text, text
    profile.write_text(text.replace(head, f"{head}    rotation:\n      'db/*': {spec}\n", 1))


def policy_off(root: Path) -> None:
    profile = root / "bsecrets.yaml"
    lines = profile.read_text().splitlines(keepends=True)
    kept = [line for line in lines if "rotation:" not in line and "'db/*'" not in line]
    profile.write_text("".join(kept))


def hook(root: Path, name: str, body: str) -> str:
    path = root / f"{name}.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o700)
    return str(path)


def rotate_and_kill(root: Path, env: str, step: str, value_file: str = "new.txt") -> str:
    """Start a rotation of db/password in ``env`` whose ``step`` hook signals and waits,
    kill -9 its process group there, take the policy off again, and return the
    rotation's id."""
    marker = root / f"{step}.reached"
    waiting = hook(root, step, f"touch {marker}; sleep 60\n")
    policy(root, env, f"{{hooks: {{{step}: [{waiting}]}}}}")
    child = subprocess.Popen(
        [sys.executable, "-m", "bsecrets", "rotate", "db/password", "-e", env,
         "--from-file", value_file],
        cwd=root, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60  # a hang guard, far past what it needs
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the hook never ran"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    policy_off(root)
    result = invoke(["rotate", "status", "--json"])
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    return str(row["id"])
