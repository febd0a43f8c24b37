"""VaultConnection: one environment's way to Vault, shared by the adapter and its
health indicators.

It holds the hvac client (built, and hvac imported, on the first request), the
login, and the operation's time budget; it sends requests with a token
(:meth:`VaultConnection.call`), turns Vault's 4xx answers into bsecrets errors
(:meth:`VaultConnection.fail`), and makes the KV v2 reads every operation starts
with: is the mount KV v2, what is a secret's metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from bsecrets.backends.budget import Budget
from bsecrets.backends.vault.auth import Authenticator
from bsecrets.backends.vault.errors import VaultHTTPError, translate
from bsecrets.backends.vault.mount import mount_error, no_mount
from bsecrets.errors import BsecretsError, SecretNotFound

if TYPE_CHECKING:
    from bsecrets.backends.registry import BackendContext
    from bsecrets.backends.vault.config import VaultSettings

T = TypeVar("T")


class VaultConnection:
    """The client, login and budget of one environment. Not thread-safe until
    :meth:`log_in` has run (then requests may share it, as a listing's do)."""

    def __init__(self, settings: VaultSettings, context: BackendContext) -> None:
        self.settings = settings
        self.env = settings.env
        self.auth = Authenticator(settings, context)
        self.budget = Budget(settings.timeout_s, settings.key("timeout"))
        self._client: Any = None
        self._mount_checked = False

    @property
    def client(self) -> Any:
        """The hvac Client (built, and hvac imported, on first use)."""
        if self._client is None:
            from bsecrets.backends.vault.transport import build_client  # imports hvac

            self._client = build_client(self.settings, self.budget)
        return self._client

    @property
    def last_latency_s(self) -> float | None:
        """How long the last request took; None before the first one."""
        if self._client is None:
            return None
        latency: float | None = self._client.adapter.last_latency_s
        return latency

    def log_in(self) -> None:
        """Give the client its token now (before several threads share it)."""
        self.client.token = self.auth.token(self.client)

    def call(self, fn: Callable[[Any], T], *, refresh: bool = True) -> T:
        """``fn(client)`` with a token, under one deadline. A cached login token
        that Vault refuses is replaced by a fresh login, once."""
        client = self.client
        with client.adapter.operation():
            client.token = self.auth.token(client)
            try:
                return fn(client)
            except VaultHTTPError as exc:
                if not (refresh and exc.is_denied and self.auth.refresh(client)):
                    raise
            client.token = self.auth.token(client)
            return fn(client)

    def api(self, kind: str, path: str) -> str:
        """The URL of ``path`` under the mount's ``kind`` (data, metadata, delete...)."""
        return f"/v1/{quote(self.settings.mount)}/{kind}/{quote(path)}"

    def fail(self, exc: VaultHTTPError, what: str) -> BsecretsError:
        """The bsecrets error for Vault's answer ``exc`` to ``what`` (a missing mount,
        a token without the policy, or what the status means)."""
        if "no handler for route" in exc.detail:
            return no_mount(self.settings)
        hint = None
        if exc.is_denied:
            hint = (
                f"check the token ({self.auth.source}) and its policies; "
                f"'bsecrets vault policy -e {self.env}' prints the policy bsecrets needs"
            )
        return translate(exc, what=what, env=self.env, hint=hint)

    def check_mount(self, *, again: bool = False) -> None:
        """UsageError unless the mount is KV version 2; asked once per process (and
        once more with ``again``), before the first write and after a 'not found' (a
        KV v1 mount would answer 404 to every KV v2 read and silently store writes
        under 'data/')."""
        if again:
            self._mount_checked = False
        if self._mount_checked:
            return
        url = f"/v1/sys/internal/ui/mounts/{quote(self.settings.mount)}"
        try:
            answer = self.call(lambda c: c.adapter.get(url))
        except VaultHTTPError:
            return  # this token may not ask; the operation itself will tell
        error = mount_error(self.settings, answer)
        if error is not None:
            raise error
        self._mount_checked = True

    def metadata(self, name: str) -> dict[str, Any] | None:
        """The secret's KV metadata; None if Vault has no version of it."""
        path = self.settings.path(name)
        try:
            answer = self.call(lambda c: c.adapter.get(self.api("metadata", path)))
        except VaultHTTPError as exc:
            if exc.status != 404 or "no handler for route" in exc.detail:
                raise self.fail(exc, f"reading the metadata of secret '{name}'") from exc
            self.check_mount()
            return None
        meta: dict[str, Any] = answer["data"]
        return meta if int(meta.get("current_version") or 0) > 0 else None

    def existing(self, name: str) -> dict[str, Any]:
        """The secret's KV metadata; SecretNotFound if Vault has no version of it."""
        meta = self.metadata(name)
        if meta is None:
            raise SecretNotFound(f"secret '{name}' not found in environment '{self.env}'")
        return meta

    def close(self) -> None:
        """Close the client's HTTP session, if one was opened."""
        if self._client is not None:
            self._client.adapter.close()
