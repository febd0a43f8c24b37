"""Running a rotation hook (``set``, ``test``, ``finish``: docs/rotation.md).

The new value goes to the hook on stdin, never in argv; its environment is the
caller's without bsecrets' own credentials (BSECRETS_*), plus the rotation's id,
environment, name and step. A hook that fails is tried again ``retries`` times,
after ``backoff``, doubling. What it printed is kept (its last 2 KiB, the value
and each of its lines masked) for the rotation's record.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

from bsecrets.named_tuples import NamedTuple
from bsecrets.run.masking import Redactor

OUTPUT_KEPT = 2048
NOT_FOUND, NOT_EXECUTABLE = 127, 126
TIMED_OUT = 124  # as timeout(1) reports it


class HookResult(NamedTuple):
    step: str
    command: str  # argv[0] only: the rest may be long
    exit_code: int
    attempts: int
    output: str  # the last OUTPUT_KEPT bytes of stdout and stderr, masked

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def hook_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` without bsecrets' credentials and settings, plus ``extra``."""
    env = {k: v for k, v in base.items() if not k.startswith("BSECRETS_")}
    env.update(extra)
    return env


def run_hook(
    step: str,
    argv: list[str],
    value: bytes,
    env: Mapping[str, str],
    *,
    retries: int = 0,
    backoff: timedelta = timedelta(seconds=10),
    sleep: Callable[[float], None] = time.sleep,
    timeout: float | None = None,
) -> HookResult:
    """Run ``argv`` with ``value`` on stdin until it exits 0 or ``retries`` run out.
    ``timeout``: seconds an attempt may take; then its process group is killed and the
    attempt counts as exit 124 (as timeout(1) reports it)."""
    redact = Redactor([value])
    code, output, attempts = NOT_FOUND, b"", 0
    for attempt in range(retries + 1):
        attempts = attempt + 1
        try:
            code, output = _attempt(argv, value, env, timeout)
        except FileNotFoundError:
            code, output = NOT_FOUND, f"{argv[0]}: command not found".encode()
        except PermissionError:
            code, output = NOT_EXECUTABLE, f"{argv[0]}: not executable".encode()
        if code == 0:
            break
        if attempt < retries:
            sleep(backoff.total_seconds() * (1 << attempt))
    shown = (redact.feed(output) + redact.flush())[-OUTPUT_KEPT:]
    return HookResult(
        step, os.path.basename(argv[0]), code, attempts, shown.decode("utf-8", "replace")
    )


def _attempt(
    argv: list[str], value: bytes, env: Mapping[str, str], timeout: float | None
) -> tuple[int, bytes]:
    """(exit code, stdout and stderr) of one run of ``argv``."""
    if timeout is None:
        done = subprocess.run(argv, input=value, capture_output=True, env=dict(env), check=False)
        return done.returncode, done.stdout + done.stderr
    # its own process group, so that a timeout ends what it started too (a shell's
    # children would otherwise keep the pipes open and the wait going)
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=dict(env), start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(value, timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return TIMED_OUT, out + f"\n(killed after {timeout:g} s)".encode()
