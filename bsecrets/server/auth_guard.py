"""Refused credentials at the server (docs/server.md, "Failed authentication"): each
refusal of a token, by the API or the web UI's sign-in, is an audit event, and a client
address with too many refusals in a window is answered 429 (Retry-After) without its
token being tried: no unlock, no audit write, until the window moves on.

The event is written as a caller without a key writes one (a wrong passphrase on the
command line): sealed to the vault owner's public key in the audit intake, and chained,
marked ``late``, by the owner's next command. It names the token's public id (never
its secret part), the client address and why it was refused.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from starlette.exceptions import HTTPException

from bsecrets.audit.events import Action
from bsecrets.audit.logger import outcome_of, reason_of
from bsecrets.config.cache import load_profile_cached
from bsecrets.errors import BsecretsError
from bsecrets.models import AccessContext
from bsecrets.observing import OperationObserver
from bsecrets.vaultfile.credentials import Credentials

FAILURES = 20  # refusals per client address per WINDOW: then 429 until the oldest ages out
WINDOW = 5 * 60.0
MAX_ADDRESSES = 10_000  # past it, the counts start again (bounded memory)


class FailedAuth:
    """Refusals per client address in a sliding window; thread-safe."""

    def __init__(
        self, limit: int = FAILURES, window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try a credential again (0: now)."""
        now = self._clock()
        with self._lock:
            recent = [t for t in self._failures.get(address, []) if now - t < self.window]
            if recent:
                self._failures[address] = recent
            else:
                self._failures.pop(address, None)
            if len(recent) < self.limit:
                return 0
            return max(1, int(recent[-self.limit] + self.window - now) + 1)

    def check(self, address: str) -> None:
        """429 (Retry-After) while ``address`` has too many recent refusals."""
        wait = self.retry_after(address)
        if wait:
            raise HTTPException(
                429, f"too many refused credentials from {address}: retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )  # fmt: skip

    def failed(self, address: str) -> None:
        with self._lock:
            if len(self._failures) >= MAX_ADDRESSES:
                self._failures.clear()
            self._failures.setdefault(address, []).append(self._clock())


def record_refusal(
    profile: Path, environ: Mapping[str, str], principal: str, error: BsecretsError, via: str,
    observers: Sequence[OperationObserver] = (),
) -> None:  # fmt: skip
    """The audit event of a refused credential of ``principal`` (as it names itself),
    written without any key (see above). A vault that cannot take it (none, unreadable)
    loses only this event: the refusal stands."""
    from bsecrets.services.manager import SecretsManager

    context = AccessContext.current()._replace(principal=principal, via=via)
    creds = Credentials(use_keyring=False, principal=principal)  # no key: the intake
    core = SecretsManager(load_profile_cached(profile), creds, context=context, environ=environ)
    try:
        with contextlib.suppress(BsecretsError):
            core.audit.observers += observers
            core.audit.record(Action.SERVER_AUTH, outcome=outcome_of(error),
                              reason=reason_of(error))  # fmt: skip
    finally:
        core.close()
