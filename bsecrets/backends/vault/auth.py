"""Getting a Vault token for one environment, and not logging in on every command.

Methods (the profile's ``auth.method``):

* ``token``: ``auth.token_env`` if set, else VAULT_TOKEN, else ``~/.vault-token``
  (what ``vault login`` / ``bao login`` leave). Never cached: it is already at hand.
* ``approle``: role id and secret id from the variables ``role_id_env`` and
  ``secret_id_env``, login at ``auth/<mount>/login``.
* ``kubernetes``: the pod's service-account JWT read from ``jwt_path``.
* ``jwt``: a JWT/OIDC token from the variable ``token_env`` (a CI job's OIDC token).

A token obtained by a login is kept in the local vault's SealedCache until
shortly before it expires, keyed by a hash of (address, namespace, method,
mount, role), with a hash of the credentials inside the sealed entry (new
credentials mean a new login). Past two thirds of its TTL a renewable token
is renewed (renew-self) instead of replaced. When the local vault cannot be
opened without a prompt, every command logs in again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bsecrets.backends.vault.config import ENV_TOKEN, VaultSettings
from bsecrets.backends.vault.errors import VaultHTTPError, translate
from bsecrets.crypto.keys import sha256_hex
from bsecrets.errors import BsecretsError, Denied, UsageError
from bsecrets.timeutil import iso, parse_iso
from bsecrets.vaultfile.cache import SealedCache

if TYPE_CHECKING:
    from bsecrets.backends.registry import BackendContext
    from bsecrets.vaultfile.vault import LocalVault

CACHE_NS = "vault"
RENEW_AFTER = 2 / 3  # of the TTL
MIN_CACHED_TTL_S = 15  # a token this short-lived is not worth caching
NO_EXPIRY_CACHE = timedelta(hours=1)  # re-check a non-expiring login token hourly
_UNSET: Any = object()


def cache_margin(ttl: int) -> timedelta:
    """How long before expiry a cached token stops being used."""
    return timedelta(seconds=min(60.0, max(5.0, ttl / 10)))


class Authenticator:
    """The token of one environment's adapter; logs in (and caches) only when needed."""

    def __init__(self, settings: VaultSettings, context: BackendContext) -> None:
        self.settings = settings
        self.method = settings.auth.get("method", "token")
        self.environ = context.environ
        self.clock = context.clock
        self._open_vault: Callable[[], LocalVault] = context.local_vault
        self._cache: SealedCache | None = _UNSET
        self._token: str | None = None
        self.from_cache = False  # the token came from the cache (it may have been revoked)
        self.logins = 0  # logins done by this process

    @property
    def source(self) -> str:
        """Where the credentials come from, for hints."""
        auth = self.settings.auth
        if self.method == "token":
            return auth.get("token_env") or ENV_TOKEN
        if self.method == "approle":
            return f"{auth['role_id_env']} / {auth['secret_id_env']}"
        if self.method == "kubernetes":
            return f"the service-account token {auth['jwt_path']}"
        return str(auth["token_env"])

    def token(self, client: Any) -> str:
        if self._token is None:
            self._token = self._obtain(client)
        return self._token

    def refresh(self, client: Any) -> bool:
        """After a denial: drop a cached login token and log in again. False: nothing to refresh."""
        if not self.from_cache:
            return False
        cache = self._open_cache()
        if cache is not None:
            with contextlib.suppress(BsecretsError):
                cache.delete(CACHE_NS, self._cache_key())
        self._token = self._login(client, *self._credentials())
        return True

    # --- token method ----------------------------------------------------

    def _static_token(self) -> str:
        var = self.settings.auth.get("token_env")
        token = self.environ.get(var or ENV_TOKEN, "").strip()
        if not token and not var:
            token = self._token_helper_file()
        if not token:
            name = var or ENV_TOKEN
            raise Denied(
                f"no Vault token for environment '{self.settings.env}': {name} is not set",
                hint=f"export {name}, log in with 'vault login' / 'bao login', or set "
                f"{self.settings.key('auth.method')} to approle, kubernetes or jwt",
            )
        return token

    def _token_helper_file(self) -> str:
        home = self.environ.get("HOME") or os.path.expanduser("~")
        try:
            with open(os.path.join(home, ".vault-token"), encoding="utf-8") as fh:
                return fh.read(4096).strip()
        except OSError:
            return ""

    # --- logins ----------------------------------------------------------

    def _credentials(self) -> tuple[dict[str, str], str]:
        """(login payload, fingerprint of the credentials)."""
        auth = self.settings.auth
        if self.method == "kubernetes":
            payload = {"role": auth["role"], "jwt": self._service_account_token()}
        elif self.method == "approle":
            payload = {
                "role_id": self._variable("role_id_env"),
                "secret_id": self._variable("secret_id_env"),
            }
        else:
            payload = {"role": auth["role"], "jwt": self._variable("token_env")}
        return payload, sha256_hex(json.dumps(payload, sort_keys=True).encode())

    def _variable(self, key: str) -> str:
        """The value of the variable the profile key ``auth.<key>`` names."""
        name = self.settings.auth[key]
        value = self.environ.get(name, "").strip()
        if not value:
            raise Denied(
                f"{self.method} login for environment '{self.settings.env}' needs {name} "
                f"(from {self.settings.key('auth.' + key)}), which is not set",
                hint=f"export {name}",
            )
        return value

    def _service_account_token(self) -> str:
        path = self.settings.auth["jwt_path"]
        hint = "run in a pod with a service account, or set " + self.settings.key("auth.jwt_path")
        try:
            with open(path, encoding="utf-8") as fh:
                jwt = fh.read(64 * 1024).strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise Denied(
                f"cannot read the Kubernetes service-account token {path}: {reason}", hint=hint
            ) from None
        if not jwt:
            raise Denied(f"the Kubernetes service-account token {path} is empty", hint=hint)
        return jwt

    def _cache_key(self) -> str:
        s, auth = self.settings, self.settings.auth
        who = auth.get("role") or self.environ.get(auth.get("role_id_env", ""), "")
        parts = [s.address, s.namespace or "", self.method, auth.get("mount", ""), who]
        return sha256_hex("\0".join(parts).encode())[:32]

    def _open_cache(self) -> SealedCache | None:
        if self._cache is _UNSET:
            self._cache = SealedCache.open_quietly(self._open_vault, self.clock)
        return self._cache

    def _obtain(self, client: Any) -> str:
        if self.method == "token":
            return self._static_token()
        payload, fingerprint = self._credentials()
        cache = self._open_cache()
        if cache is not None:
            entry = cache.get(CACHE_NS, self._cache_key())
            if entry is not None and entry.get("cred") == fingerprint:
                token = self._renewed_if_due(client, cache, entry)
                if token is not None:
                    self.from_cache = True
                    return token
        return self._login(client, payload, fingerprint)

    def _login(self, client: Any, payload: dict[str, str], fingerprint: str) -> str:
        mount = self.settings.auth["mount"]
        client.token = ""  # a stale token must not ride along with the login
        try:
            with client.adapter.operation():
                if self.method == "approle":
                    answer = client.auth.approle.login(
                        payload["role_id"], payload["secret_id"], use_token=False, mount_point=mount
                    )
                elif self.method == "kubernetes":
                    answer = client.auth.kubernetes.login(
                        payload["role"], payload["jwt"], use_token=False, mount_point=mount
                    )
                else:
                    answer = client.auth.jwt.jwt_login(
                        payload["role"], payload["jwt"], use_token=False, path=mount
                    )
        except VaultHTTPError as exc:
            raise self._login_error(exc) from exc
        self.logins += 1
        self.from_cache = False
        auth = answer["auth"]
        token = str(auth["client_token"])
        self._store(
            {
                "token": token,
                "accessor": auth.get("accessor", ""),
                "ttl": int(auth.get("lease_duration") or 0),
                "login_ttl": int(auth.get("lease_duration") or 0),
                "renewable": bool(auth.get("renewable")),
                "issued_at": iso(self.clock()),
                "cred": fingerprint,
            }
        )
        return token

    def _login_error(self, exc: VaultHTTPError) -> BsecretsError:
        env, mount = self.settings.env, self.settings.auth["mount"]
        if exc.status in (404, 405) or "no handler" in exc.detail:
            return UsageError(
                f"no {self.method} auth method is enabled at auth/{mount} on "
                f"{self.settings.address} ({exc.detail or f'HTTP {exc.status}'})",
                hint=f"check {self.settings.key('auth.mount')} in the profile",
            )
        if exc.status in (400, 401, 403):
            return Denied(
                f"Vault refused the {self.method} login at auth/{mount} for environment "
                f"'{env}' ({exc.detail or f'HTTP {exc.status}'})",
                hint=f"check the credentials ({self.source}), the role, and that auth/{mount} "
                f"is where {self.method} is enabled ({self.settings.key('auth.mount')})",
            )
        return translate(exc, what=f"the {self.method} login", env=env)

    def _renewed_if_due(self, client: Any, cache: SealedCache, entry: dict[str, Any]) -> str | None:
        """The cached token, renewed first when past RENEW_AFTER of its TTL; None: log in."""
        token, ttl = str(entry["token"]), int(entry["ttl"])
        due = parse_iso(entry["issued_at"]) + timedelta(seconds=ttl * RENEW_AFTER)
        if not entry.get("renewable") or ttl <= 0 or self.clock() < due:
            return token
        client.token = token
        try:
            with client.adapter.operation():
                answer = client.auth.token.renew_self(increment=int(entry.get("login_ttl") or ttl))
        except (VaultHTTPError, Denied):
            return None
        new_ttl = int(answer["auth"].get("lease_duration") or 0)
        if new_ttl < MIN_CACHED_TTL_S:
            return None  # at its max TTL: a fresh login is better
        self._store({**entry, "ttl": new_ttl, "issued_at": iso(self.clock())})
        return token

    def _store(self, entry: dict[str, Any]) -> None:
        ttl = int(entry["ttl"])
        if 0 < ttl < MIN_CACHED_TTL_S:
            return
        cache = self._open_cache()
        if cache is None:
            return
        now: datetime = self.clock()
        expires = now + (timedelta(seconds=ttl) - cache_margin(ttl) if ttl else NO_EXPIRY_CACHE)
        with contextlib.suppress(BsecretsError):  # an optimisation: the token works without it
            cache.put(CACHE_NS, self._cache_key(), entry, expires)
