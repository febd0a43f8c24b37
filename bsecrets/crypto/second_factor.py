"""Whether a one-time code is accepted: clock skew, replay and lockout (#13).

A pure policy over a :class:`FactorState` (what the vault will keep, under a MAC,
per principal) and the time: it does no I/O and reads no clock of its own, so
the caller passes ``now`` and stores the state it gets back, whatever the verdict.

- **Skew**: a code of the current step, or of one step either side, is accepted
  (an authenticator's clock may be 30 s off).
- **Replay**: a code is accepted at most once, and never one of a step at or
  before the last accepted one (a code seen over a shoulder or in a log is dead).
- **Lockout**: after ``MAX_FAILURES`` failures in a row (wrong or replayed
  codes) the principal is locked out, for ``LOCKOUT_BASE`` after the fifth
  failure, doubling with each failure after it, at most ``LOCKOUT_MAX``. While
  locked out no code is even checked (a correct guess proves nothing), and the
  attempt does not extend the lock. An accepted code clears the failures; an
  admin can clear a lockout (:func:`cleared`).

Not yet reachable from the command line: it arrives with ``mfa enroll`` and
protected environments (#13).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bsecrets.crypto.totp import matching_step, step_of
from bsecrets.named_tuples import NamedTuple
from bsecrets.str_enums import StrEnum

SKEW_STEPS = 1
MAX_FAILURES = 5
LOCKOUT_BASE = timedelta(minutes=1)
LOCKOUT_MAX = timedelta(hours=24)


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"  # no step near now has this code
    REPLAYED = "replayed"  # the code of a step already used (or older)
    LOCKED_OUT = "locked_out"  # not checked: too many failures


class FactorState(NamedTuple):
    """One principal's second factor, between attempts."""

    last_step: int = -1  # the step of the last accepted code; -1: none yet
    failures: int = 0  # failed attempts since the last accepted code
    locked_until: datetime | None = None


class Attempt(NamedTuple):
    verdict: Verdict
    state: FactorState  # to store, whatever the verdict

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPTED


def lockout_for(failures: int) -> timedelta:
    """How long ``failures`` failures in a row lock the principal out (0 below the limit)."""
    if failures < MAX_FAILURES:
        return timedelta(0)
    doublings = min(failures - MAX_FAILURES, 32)  # 2**32 minutes is far past the cap
    return min(LOCKOUT_BASE * (1 << doublings), LOCKOUT_MAX)


def is_locked_out(state: FactorState, now: datetime) -> bool:
    return state.locked_until is not None and now < state.locked_until


def attempt(seed: bytes, code: str, state: FactorState, now: datetime) -> Attempt:
    """Check ``code`` at ``now`` (timezone-aware). UsageError (exit 2) if ``code`` is
    not six digits, before anything is counted."""
    if is_locked_out(state, now):
        return Attempt(Verdict.LOCKED_OUT, state)
    current = step_of(now)
    step = matching_step(seed, code, range(current - SKEW_STEPS, current + SKEW_STEPS + 1))
    if step is not None and step > state.last_step:
        return Attempt(Verdict.ACCEPTED, FactorState(last_step=step))
    failures = state.failures + 1
    until = now + lockout_for(failures) if failures >= MAX_FAILURES else None
    verdict = Verdict.WRONG if step is None else Verdict.REPLAYED
    return Attempt(verdict, state._replace(failures=failures, locked_until=until))


def cleared(state: FactorState) -> FactorState:
    """An admin's reset of a lockout: failures forgotten, replay protection kept."""
    return FactorState(last_step=state.last_step)
