"""One-time codes in CLI tests (#13): an authenticator app holding an enrolment's seed
(``Authenticator``), and running the commands that ask for a code (BSECRETS_OTP)
with what the tests check of them: exit code, the 'error:' and 'hint:' lines, the
JSON error's kind, the audit events of an action.

Codes are computed from the otpauth URI the enrolment prints; a test uses at most
three accepted codes of a seed, of increasing steps (replay protection). Nothing
here asserts a time; ``code()`` waits only when the codes the vault accepts now are
spent, for the next step (a person's authenticator would make them wait too)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

from bsecrets.crypto.totp import STEP_SECONDS, code_at, step_of
from helpers.cli import Result, assert_error, invoke, run_cli

MARGIN = 0.1  # s: more than a command takes to check a code, less than two commands take
# The hint of every wrong or replayed code (cli/hints.py, SecondFactorRejected).
CODE_HINT = "hint: type the code your authenticator app shows now (BSECRETS_OTP); "


class Authenticator:
    """An authenticator app holding one enrolment's seed. ``code()`` gives the code
    of the earliest step after the last one it gave that the vault still accepts
    (skew: one step either way) for at least MARGIN seconds."""

    def __init__(self, uri: str) -> None:
        assert uri.startswith("otpauth://totp/"), uri
        self.secret = parse_qs(urlparse(uri).query)["secret"][0]
        self.seed = base64.b32decode(self.secret + "=" * (-len(self.secret) % 8))
        self.last: int | None = None

    def code(self) -> str:
        while True:
            now = datetime.now(UTC).timestamp()
            current = int(now) // STEP_SECONDS
            step = current - 1 if self.last is None else max(self.last + 1, current - 1)
            if (step + 2) * STEP_SECONDS - now < MARGIN:  # its window closes right now
                step += 1
            if step <= current + 1:
                break
            # The three codes the vault accepts now are spent (fast in-process commands
            # across a window's last MARGIN seconds can get there): wait for the next
            # step, as a person would, rather than give one the vault would refuse.
            time.sleep((current + 1) * STEP_SECONDS - now + 0.01)
        self.last = step
        return code_at(self.seed, step)

    def wrong(self) -> str:
        """Six digits that are no code of this seed near now."""
        current = step_of(datetime.now(UTC))
        near = {code_at(self.seed, s) for s in range(current - 3, current + 4)}
        return next(c for c in ("000000", "123456", "999999", "424242") if c not in near)


def run(args: list[str], otp: str | None = None, **env: str) -> Result:
    """The command in-process (``exec`` as a real process: it replaces the one it runs
    in), with ``otp`` as BSECRETS_OTP and ``env`` set; stdin holds one value."""
    env = {**env, **({"BSECRETS_OTP": otp} if otp else {})}
    if "exec" not in args:
        return invoke(args, input="value\n", env=env)
    proc = run_cli(args, env=env)
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), proc.stdout)


def ok(args: list[str], otp: str | None = None, **env: str) -> Result:
    result = run(args, otp, **env)
    assert result.exit_code == 0, result.stderr
    return result


def refused(args: list[str], code: int, *needles: str, otp: str | None = None,
            hint: str = "hint: ", **env: str) -> Result:  # fmt: skip
    """Exit ``code``, one 'error:' line, then one line starting with ``hint`` (a
    'hint:' line), each needle in them, no traceback."""
    assert hint.startswith("hint: ")
    result = run(args, otp, **env)
    assert_error(result, code, *needles)
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[1].startswith(hint), result.stderr
    return result


def kind_of(args: list[str], otp: str | None = None, **env: str) -> tuple[int, str]:
    """(exit code, kind) of the JSON error the command ends with."""
    result = run(args, otp, BSECRETS_JSON="1", **env)
    error = json.loads(result.stderr.splitlines()[-1])
    assert error["exit_code"] == result.exit_code and error["hint"], error
    return result.exit_code, error["kind"]


def events(action: str | None = None) -> list[dict[str, Any]]:
    """The owner's audit log (``--action``: one action's events), oldest first."""
    found: list[dict[str, Any]] = json.loads(
        ok(["audit", "log", "--json", *(["--action", action] if action else [])]).stdout
    )
    return found
