"""Rotation tests' shared steps: a policy for ``db/*`` written into one environment
of the profile, hook scripts, and a ``bsecrets rotate`` process killed (SIGKILL to its
process group) while one of its hooks waits."""

from __future__ import annotations

import contextlib
import json
import os
import random
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


def kill_campaign(root: Path, env: str, kills: int, seed: int) -> dict[str, int]:
    """``kills`` rotations of db/password (no hooks), each SIGKILLed at a random moment
    (seeded) within the time a whole one takes, so kills land in the create step, the
    finish write and the record after it; then resume or cancel (seeded) whatever is in
    flight. After each: exactly one current value, the old or the new one, and after
    resume the new one, after cancel the old one. Returns how often each state was met."""
    rng = random.Random(seed)
    argv = [sys.executable, "-m", "bsecrets", "rotate", "db/password", "-e", env]

    def read() -> str:
        result = invoke(["get", "db/password", "-e", env])
        assert result.exit_code == 0, result.stderr
        return result.stdout.rstrip("\n")

    def rotations() -> list[dict[str, object]]:
        result = invoke(["rotate", "status", "--json"])
        assert result.exit_code == 0, result.stderr
        return [row for row in json.loads(result.stdout) if row["env"] == env]

    # Timed only to aim the kills at the rotation's own work (not asserted on): between
    # the time a read takes (start-up, unlocking) and the time a whole rotation takes.
    quiet = {"cwd": root, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    start = time.monotonic()
    subprocess.run([*argv[:3], "get", "db/password", "-e", env], check=True, **quiet)
    startup = time.monotonic() - start
    (root / "whole.txt").write_text("whole-run-0")
    start = time.monotonic()
    subprocess.run([*argv, "--from-file", "whole.txt"], check=True, **quiet)
    whole = time.monotonic() - start
    seen: dict[str, int] = {}
    for i in range(kills):
        before, new = read(), f"campaign-{seed}-{i}"
        (root / "campaign.txt").write_text(new)
        known = {row["id"] for row in rotations()}
        child = subprocess.Popen([*argv, "--from-file", "campaign.txt"],
                                 start_new_session=True, **quiet)  # fmt: skip
        time.sleep(rng.uniform(0.6 * startup, 1.05 * max(whole, startup)))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        assert read() in (before, new)  # exactly one current value, never a lost one
        mine = [row for row in rotations() if row["id"] not in known]
        state = str(mine[0]["step"]) if mine else "none"
        seen[state] = seen.get(state, 0) + 1
        if state == "none":
            assert read() == before
        elif state == "finished":
            assert read() == new
        else:  # in flight: resume finishes it, cancel drops it (unless its write landed)
            action = rng.choice(["resume", "cancel"])
            result = invoke(["rotate", action, str(mine[0]["id"])])
            if action == "cancel" and result.exit_code == 7:  # its finish write had landed
                assert "nothing to cancel" in result.stderr and read() == new
                result = invoke(["rotate", "resume", str(mine[0]["id"])])
                action = "resume"
            assert result.exit_code == 0, result.stderr
            assert read() == (new if action == "resume" else before)
    return seen
