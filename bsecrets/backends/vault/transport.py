"""hvac's JSON adapter plus what a command line needs around every request.

* One deadline per operation (the environment's Budget, ``timeout:``, sleeps
  included) shared by every request of it, and per-attempt connect/read
  timeouts cut to what is left of it; no attempt starts past it.
* Bounded retries with exponential backoff and jitter on 429, 5xx and
  connection failures. A request that changes data is retried only when Vault
  cannot have applied it (connection never made, 429, 503); otherwise the
  error says ``applied="unknown"`` and the adapter tells the user how to check.
* Transport failures become BackendUnavailable here; TLS failures name the CA
  that was used. Every other 4xx becomes a VaultHTTPError for the adapter.
* The latency of the last request, for the health indicators.

Importing this module imports hvac and requests: only the adapter does, on
its first request.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import hvac
import requests
import urllib3
from hvac import exceptions as hx
from hvac.adapters import JSONAdapter

from bsecrets import tracing
from bsecrets.backends.budget import Budget
from bsecrets.backends.vault.config import ENV_ADDR, ENV_CACERT, VaultSettings
from bsecrets.backends.vault.errors import VaultHTTPError
from bsecrets.errors import BackendUnavailable, UsageError

CONNECT_TIMEOUT_S = 3.0  # per attempt, at most what is left of the budget
READ_TIMEOUT_S = 8.0
FIRST_DELAY_S = 0.25
MAX_DELAY_S = 2.0
MAX_ATTEMPTS = 5
_READS = frozenset({"get", "list", "head"})
# POSTs that change no secret: asking about capabilities, logging in, renewing a token
_HARMLESS_POSTS = ("/v1/sys/capabilities-self", "/v1/auth/")
_RETRY_READ = frozenset({429, 500, 502, 503, 504})
_RETRY_WRITE = frozenset({429, 503})  # Vault did not apply the request


class Transport(JSONAdapter):  # type: ignore[misc]
    """The adapter every hvac API class of one VaultAdapter sends through."""

    def __init__(self, *args: Any, settings: VaultSettings, budget: Budget, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.budget = budget
        self.last_latency_s: float | None = None
        self.requests_sent = 0
        self.sleep: Callable[[float], None] = time.sleep
        self.lineage = tracing.Lineage()  # request spans of worker threads (bsecrets/tracing)

    def operation(self, limit: float | None = None) -> AbstractContextManager[None]:
        """Every request inside shares the operation's deadline (Budget.scope)."""
        return self.budget.scope(limit)

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        try:
            super()._raise_for_error(method, url, response)
        except hx.VaultError as exc:
            exc.status_code = response.status_code
            raise

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        raise_exception: bool = True,
        **kwargs: Any,
    ) -> Any:
        deadline = self.budget.deadline()
        is_read = method.lower() in _READS or url.startswith(_HARMLESS_POSTS)
        attempt, started = 0, time.monotonic()
        failure: Exception | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # nothing sent in this attempt: a write was not applied by it
                raise self._unavailable(failure, attempt, started, out_of_time=True)
            attempt += 1
            kwargs["timeout"] = (min(CONNECT_TIMEOUT_S, remaining), min(READ_TIMEOUT_S, remaining))
            started = time.monotonic()
            self.requests_sent += 1
            try:
                with self._traced(method, url, kwargs):
                    result = super().request(
                        method,
                        url,
                        headers=dict(headers or {}),
                        raise_exception=raise_exception,
                        **kwargs,
                    )
                self.last_latency_s = time.monotonic() - started
                return result
            except hx.VaultError as exc:
                self.last_latency_s = time.monotonic() - started
                status = int(getattr(exc, "status_code", 0))
                if status == 501:
                    raise BackendUnavailable(
                        f"Vault at {self.settings.address} is not initialized",
                        hint="initialize and unseal it ('vault operator init', then unseal)",
                    ) from exc
                if status >= 500 and not is_read and status not in _RETRY_WRITE:
                    raise BackendUnavailable(
                        f"Vault at {self.settings.address} answered HTTP {status} to a write",
                        hint="a retry could apply it twice: check first",
                        applied="unknown",
                    ) from exc
                if status >= 500 and status not in _RETRY_READ:
                    raise self._unavailable(exc, attempt, started) from exc
                if status not in _RETRY_READ:
                    raise VaultHTTPError(status, list(exc.errors or []), exc.json) from exc
                failure = exc
            except requests.exceptions.SSLError as exc:
                raise self._tls_error(exc) from exc
            except requests.exceptions.RequestException as exc:
                if not is_read and _may_have_arrived(exc):
                    raise BackendUnavailable(
                        f"lost the connection to Vault at {self.settings.address} during a write "
                        f"({_reason(exc)}{self._budget_note(deadline)})",
                        hint="a retry could apply it twice: check first",
                        applied="unknown",
                    ) from exc
                if not isinstance(exc, requests.exceptions.ConnectionError | requests.Timeout):
                    raise self._unavailable(exc, attempt, started) from exc
                failure = exc
            delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (attempt - 1))
            delay = delay / 2 + random.uniform(0, delay / 2)  # jitter, not crypto
            if attempt >= MAX_ATTEMPTS:
                raise self._unavailable(failure, attempt, started) from failure
            if time.monotonic() + delay >= deadline:  # no retry past the budget
                raise self._unavailable(failure, attempt, started, out_of_time=True) from failure
            self.sleep(delay)

    def _traced(self, method: str, url: str, kwargs: dict[str, Any]) -> AbstractContextManager[Any]:
        """This attempt's trace span when traces are on (bsecrets/tracing), else nothing."""
        if not tracing.active():
            return contextlib.nullcontext()
        mount = self.settings.mount
        return tracing.vault_request(method, url, mount, self.base_uri, kwargs, self.lineage)

    # --- messages --------------------------------------------------------

    def _budget_note(self, deadline: float) -> str:
        """``; the time budget of 30 s (...) ran out`` once the deadline has passed."""
        spent = time.monotonic() >= deadline - 0.05  # a timeout cut to the budget ends at it
        return f"; {self.budget.describe()} ran out" if spent else ""

    def _unavailable(
        self, exc: Exception | None, attempts: int, started: float, *, out_of_time: bool = False
    ) -> BackendUnavailable:
        address = self.settings.address
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if out_of_time:
            tries += f"; {self.budget.describe()} ran out"
        if exc is None:  # the budget was spent before this request could start
            return BackendUnavailable(
                f"no time left to ask Vault at {address}: {self.budget.describe()} ran out",
                hint=self.budget.hint(),
            )
        if isinstance(exc, hx.VaultError):
            status = getattr(exc, "status_code", 0)
            text = " ".join(exc.errors or []) if exc.errors else ""
            if status == 503 and "sealed" in text.lower():
                return BackendUnavailable(
                    f"Vault at {address} is sealed ({tries})",
                    hint="unseal it ('bao operator unseal' / 'vault operator unseal') and retry",
                )
            what = "rate-limited the request" if status == 429 else f"answered HTTP {status}"
            return BackendUnavailable(
                f"Vault at {address} {what} ({tries})",
                hint="retry later; if it persists, check Vault's health and logs",
            )
        return BackendUnavailable(
            f"cannot reach Vault at {address}: {_reason(exc)} ({tries})",
            hint=f"check that Vault is running and that {self.settings.key('address')} "
            f"or {ENV_ADDR} points to it"
            + (f"; or raise {self.budget.key} if it is only slow" if out_of_time else ""),
        )

    def _tls_error(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"TLS verification of {self.settings.address} failed with "
            f"{self.settings.describe_ca()}: {_reason(exc)}",
            hint=f"point {self.settings.key('ca_cert')} or {ENV_CACERT} at the CA that signed "
            "Vault's certificate",
        )


def _may_have_arrived(exc: Exception) -> bool:
    """Whether a failed request might have reached Vault (then a write is not retried)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return not isinstance(reason, urllib3.exceptions.NewConnectionError)


# (pattern, label; None: the pattern's first group) for short, value-free reasons
_REASONS = (
    (r"certificate verify failed: ([^(']+)", None),
    (r"Connection refused", "connection refused"),
    (r"Name or service not known|nodename nor servname|getaddrinfo failed", "unknown host"),
    (r"Read timed out", "timed out waiting for an answer"),
    (r"timed out", "connection timed out"),
    (r"RemoteDisconnected|Connection aborted|reset by peer", "connection closed"),
    (r"\[SSL: ([A-Z_]+)\]", None),
    (r"\[X509: ([A-Z_]+)\]", None),
)


def _reason(exc: Exception) -> str:
    """A short, value-free reason for a transport failure (compiled only on failure)."""
    import re

    text = str(exc)
    for pattern, label in _REASONS:
        match = re.search(pattern, text)
        if match:
            return label or match.group(1).strip().lower().replace("_", " ")
    return type(exc).__name__


def build_client(settings: VaultSettings, budget: Budget) -> Any:
    """An hvac Client whose requests go through :class:`Transport` (no token yet)."""
    if settings.ca_cert and not os.path.isfile(settings.ca_cert):
        raise UsageError(
            f"{settings.describe_ca()} does not exist",
            hint=f"fix {settings.key('ca_cert')} or {ENV_CACERT}",
        )
    # token="" and an explicit verify: hvac must not fall back to ~/.vault-token or
    # to VAULT_CACERT as it was when hvac was imported; bsecrets settles those itself.
    return hvac.Client(
        url=settings.address,
        token="",
        verify=settings.verify,
        namespace=settings.namespace,
        timeout=READ_TIMEOUT_S,
        adapter=Transport,
        settings=settings,
        budget=budget,
    )
