"""Time-based one-time passwords (RFC 6238), the second factor of MFA (#13).

The codes come from the ``cryptography`` package's HOTP (RFC 4226), fed with the
time step (``floor(unix time / 30)``) as the counter: this module only chooses
the parameters authenticator apps expect (SHA-1, 6 digits, 30 s steps, a 160-bit
seed) and says which step a code belongs to. Whether a code is accepted (clock
skew, replay, lockout) is ``bsecrets.crypto.second_factor``.

Not yet reachable from the command line: enrolment and the checks on protected
environments arrive with the rest of access control (#13).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bsecrets.errors import UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.twofactor.hotp import HOTP

DIGITS = 6
STEP_SECONDS = 30
SEED_BYTES = 20  # 160 bits, as RFC 4226 recommends for HMAC-SHA1


def new_seed() -> bytes:
    """A fresh random seed (from ``secrets``): to be sealed in the vault, never logged."""
    import secrets  # only here: with its hmac and random, it would load on every get (#20)

    return secrets.token_bytes(SEED_BYTES)


def step_of(now: datetime) -> int:
    """The time step ``now`` (timezone-aware) falls in."""
    return int(now.timestamp()) // STEP_SECONDS


def _hotp(seed: bytes, digits: int = DIGITS) -> HOTP:
    from cryptography.hazmat.primitives.hashes import SHA1
    from cryptography.hazmat.primitives.twofactor.hotp import HOTP

    return HOTP(seed, digits, SHA1())


def code_at(seed: bytes, step: int, digits: int = DIGITS) -> str:
    """The code of ``step`` (what an authenticator app shows during it)."""
    return _hotp(seed, digits).generate(step).decode()


def is_code(text: str) -> bool:
    """Six ASCII digits, nothing else (a code is never a secret value: it may be echoed)."""
    return len(text) == DIGITS and text.isascii() and text.isdigit()


def matching_step(seed: bytes, code: str, steps: range) -> int | None:
    """The step in ``steps`` whose code is ``code`` (compared in constant time by
    ``cryptography``); None if there is none. UsageError (exit 2) if ``code`` is
    not six digits."""
    if not is_code(code):
        raise UsageError("a one-time code is 6 digits", hint="type the code your app shows now")
    from cryptography.hazmat.primitives.twofactor import InvalidToken

    hotp = _hotp(seed)
    found = None
    for step in steps:  # every step is tried, so the time taken does not say which matched
        try:
            hotp.verify(code.encode(), step)
        except InvalidToken:
            continue
        found = step if found is None else found
    return found


def provisioning_uri(seed: bytes, account: str, issuer: str = "bsecrets") -> str:
    """The ``otpauth://totp/...`` URI an authenticator app scans (it holds the seed)."""
    from cryptography.hazmat.primitives.hashes import SHA1
    from cryptography.hazmat.primitives.twofactor.totp import TOTP

    return TOTP(seed, DIGITS, SHA1(), STEP_SECONDS).get_provisioning_uri(account, issuer)
