"""One-time codes (RFC 6238) and the policy that accepts them: skew, replay,
lockout (bsecrets/crypto/totp.py, second_factor.py), with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from bsecrets.crypto.second_factor import (
    LOCKOUT_BASE,
    LOCKOUT_MAX,
    MAX_FAILURES,
    FactorState,
    Verdict,
    attempt,
    cleared,
    lockout_for,
)
from bsecrets.crypto.totp import STEP_SECONDS, code_at, new_seed, provisioning_uri, step_of
from bsecrets.errors import UsageError

RFC_SEED = b"12345678901234567890"  # RFC 6238 appendix B, SHA-1
T0 = datetime(2026, 11, 30, 12, 0, 15, tzinfo=UTC)  # 15 s into a step


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def code(offset_steps: int = 0, now: datetime = T0) -> str:
    return code_at(RFC_SEED, step_of(now) + offset_steps)


@pytest.mark.parametrize(
    ("unix_time", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (20000000000, "65353130"),
    ],
)
def test_codes_match_rfc_6238(unix_time: int, expected: str) -> None:
    now = datetime.fromtimestamp(unix_time, UTC)
    assert code_at(RFC_SEED, step_of(now), digits=8) == expected
    assert code_at(RFC_SEED, step_of(now)) == expected[-6:]


def test_the_current_step_and_one_either_side_are_accepted() -> None:
    for offset in (-1, 0, 1):
        result = attempt(RFC_SEED, code(offset), FactorState(), T0)
        assert result.verdict is Verdict.ACCEPTED, offset
        assert result.state == FactorState(last_step=step_of(T0) + offset)


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_further_away_are_wrong(offset: int) -> None:
    result = attempt(RFC_SEED, code(offset), FactorState(), T0)
    assert result.verdict is Verdict.WRONG
    assert result.state.failures == 1


def test_a_code_is_accepted_once() -> None:
    first = attempt(RFC_SEED, code(), FactorState(), T0)
    assert first.accepted
    again = attempt(RFC_SEED, code(), first.state, at(5))  # same step, seconds later
    assert again.verdict is Verdict.REPLAYED and again.state.failures == 1
    # and still refused in the next step, where it is within the skew window
    later = attempt(RFC_SEED, code(now=T0), again.state, at(STEP_SECONDS))
    assert later.verdict is Verdict.REPLAYED


def test_an_older_step_is_refused_after_a_newer_one_was_used() -> None:
    newer = attempt(RFC_SEED, code(1), FactorState(), T0)
    assert newer.accepted
    older = attempt(RFC_SEED, code(0), newer.state, T0)  # a valid code, but of an earlier step
    assert older.verdict is Verdict.REPLAYED
    nxt = attempt(RFC_SEED, code(0, now=at(2 * STEP_SECONDS)), older.state, at(2 * STEP_SECONDS))
    assert nxt.accepted and nxt.state.failures == 0


def test_a_code_of_another_seed_is_wrong() -> None:
    other = new_seed()
    assert attempt(other, code(), FactorState(), T0).verdict is Verdict.WRONG


def test_lockout_after_five_failures_then_doubling() -> None:
    state = FactorState()
    wrong = "000000" if code() != "000000" else "111111"
    for n in range(1, MAX_FAILURES + 1):
        result = attempt(RFC_SEED, wrong, state, T0)
        assert result.verdict is Verdict.WRONG
        state = result.state
        assert state.failures == n
        assert (state.locked_until is None) == (n < MAX_FAILURES)
    assert state.locked_until == T0 + LOCKOUT_BASE
    # locked: not even a correct code is checked, and trying does not extend the lock
    blocked = attempt(RFC_SEED, code(now=at(30)), state, at(30))
    assert blocked.verdict is Verdict.LOCKED_OUT and blocked.state == state
    # after the lock, one more failure locks for twice as long
    after = T0 + LOCKOUT_BASE
    result = attempt(RFC_SEED, wrong, state, after)
    assert result.verdict is Verdict.WRONG
    assert result.state.locked_until == after + 2 * LOCKOUT_BASE
    # a correct code once the lock is over clears the failures
    free = after + 2 * LOCKOUT_BASE
    ok = attempt(RFC_SEED, code(now=free), result.state, free)
    assert ok.accepted and ok.state.failures == 0 and ok.state.locked_until is None


def test_lockout_durations() -> None:
    assert lockout_for(MAX_FAILURES - 1) == timedelta(0)
    assert [lockout_for(MAX_FAILURES + i) for i in range(4)] == [
        LOCKOUT_BASE * k for k in (1, 2, 4, 8)
    ]
    assert lockout_for(MAX_FAILURES + 40) == LOCKOUT_MAX
    assert lockout_for(10**9) == LOCKOUT_MAX


def test_replays_count_toward_the_lockout() -> None:
    state = attempt(RFC_SEED, code(), FactorState(), T0).state
    for _ in range(MAX_FAILURES):
        state = attempt(RFC_SEED, code(), state, T0).state
    assert state.locked_until == T0 + LOCKOUT_BASE


def test_an_admin_clears_a_lockout_but_not_the_replay_protection() -> None:
    used = attempt(RFC_SEED, code(), FactorState(), T0).state
    state = used._replace(failures=MAX_FAILURES, locked_until=at(600))
    reset = cleared(state)
    assert reset == FactorState(last_step=used.last_step)
    assert attempt(RFC_SEED, code(), reset, at(1)).verdict is Verdict.REPLAYED


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", " 123456", "123456\n"])
def test_a_malformed_code_is_a_usage_error_and_is_not_counted(bad: str) -> None:
    with pytest.raises(UsageError):
        attempt(RFC_SEED, bad, FactorState(), T0)


def test_seeds_are_fresh_and_the_uri_carries_them() -> None:
    seeds = {new_seed() for _ in range(50)}
    assert len(seeds) == 50 and all(len(s) == 20 for s in seeds)
    uri = urlparse(provisioning_uri(RFC_SEED, "alice"))
    query = parse_qs(uri.query)
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert query["secret"] == ["GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"]
    assert (
        query["digits"] == ["6"] and query["period"] == ["30"] and query["issuer"] == ["bsecrets"]
    )
