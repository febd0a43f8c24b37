"""One time budget per operation on a remote backend (Vault, AWS).

Every request an operation makes (reads, the write, clean-up, a login, the
retries and the sleeps between them) runs against one deadline: each
attempt's connect and read timeouts are cut to the time left, and no retry
starts, or sleeps, past it. So ``bsecrets put`` against a server that stops
answering fails after the environment's ``timeout:`` (default 30 s), not
after a stack of per-request timeouts.

The budget of an environment is opened by each operation of its adapter
(``SecretBackend.budget()``); blocks nest and share the outermost deadline,
so a caller may open one around several operations. Cheap to import.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from bsecrets.config.profile import TIMEOUT_MAX_S, TIMEOUT_MIN_S
from bsecrets.errors import UsageError

DEFAULT_TIMEOUT_S = 30.0


class Budget:
    """The deadline of the operation in progress on one environment."""

    def __init__(
        self, seconds: float, key: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.key = key  # the profile key that sets it, for hints: environments.prod.timeout
        self._clock = clock
        self._deadline: float | None = None
        self._lock = threading.Lock()

    @contextmanager
    def scope(self, limit: float | None = None) -> Iterator[None]:
        """Requests inside share one deadline: ``seconds`` from now, or the enclosing
        block's. ``limit`` narrows it for this block only (a health check)."""
        with self._lock:
            outer = self._deadline
            now = self._clock()
            deadline = now + self.seconds if outer is None else outer
            if limit is not None:
                deadline = min(deadline, now + limit)
            self._deadline = deadline
        try:
            yield
        finally:
            with self._lock:
                self._deadline = outer

    def deadline(self) -> float:
        """The deadline in force; outside any block, a fresh one for a single request."""
        deadline = self._deadline
        return self._clock() + self.seconds if deadline is None else deadline

    def remaining(self) -> float:
        """Seconds left (negative once the deadline has passed)."""
        return self.deadline() - self._clock()

    def describe(self) -> str:
        """``the time budget of 30 s (environments.prod.timeout)``, for messages."""
        return f"the time budget of {self.seconds:g} s ({self.key})"

    def hint(self) -> str:
        return (
            f"retry later; if the server is slow rather than down, raise {self.key} "
            f"(default {DEFAULT_TIMEOUT_S:g} s)"
        )


def timeout_from(options: Mapping[str, Any], env: str) -> float:
    """The ``timeout:`` of an environment's options in seconds (the profile parser has
    checked it; adapters built from code get the same check), else the default."""
    raw = options.get("timeout")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or not TIMEOUT_MIN_S <= raw <= TIMEOUT_MAX_S
    ):
        raise UsageError(
            f"environments.{env}.timeout: must be {TIMEOUT_MIN_S:g} to {TIMEOUT_MAX_S:g} seconds",
            hint="give seconds (30, 2.5) or a duration (45s, 2m)",
        )
    return float(raw)
