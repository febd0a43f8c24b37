"""The Python SDK: ``from bsecrets import Client`` (docs/sdk.md).

A ``Client`` is one more caller of the façade (services/manager.py), like the CLI:
the same profile search, the same unlock chain (a token, a key file, a session, a
passphrase, the keyring; never a prompt), the same access checks and audit events,
and the same exceptions (``bsecrets.errors``, each with its ``kind`` and exit code).

Reads are cached in memory for ``cache_ttl`` seconds per environment, name and
version: a cached read is not a new audit event, and a write through the client
drops the name's entries. Every method is thread-safe (one lock around the façade).

    from bsecrets import Client

    with Client(env="prod") as secrets:
        dsn = secrets.value("db/url")
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bsecrets.errors import ClientClosed, UsageError

if TYPE_CHECKING:
    from bsecrets.models import Secret, SecretSummary, SecretVersion, WriteResult
    from bsecrets.sdk.http import HttpTransport
    from bsecrets.services.manager import SecretsManager


class Client:
    """Secrets of one profile, from Python.

    ``profile``: the profile file (default: found as the CLI finds it, BSECRETS_PROFILE
    first); ``env``: the environment (default: BSECRETS_ENV, else the profile's
    default); ``token``: a pipeline token (as BSECRETS_TOKEN); ``passphrase``: the
    vault's passphrase (as BSECRETS_PASSPHRASE); ``cache_ttl``: seconds a value read
    stays cached (0: no cache); ``reason``: recorded with changes (as --reason);
    ``url``: a ``bsecrets serve`` to talk to instead of the vault (with ``token``).

    Example::

        client = Client(env="staging", token=os.environ["CI_BSECRETS_TOKEN"])
        password = client.value("db/password")
        client.close()
    """

    def __init__(
        self,
        profile: str | os.PathLike[str] | None = None,
        env: str | None = None,
        *,
        token: str | None = None,
        passphrase: str | None = None,
        cache_ttl: float = 60.0,
        reason: str | None = None,
        environ: Mapping[str, str] | None = None,
        url: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        from bsecrets.config.settings import ENV_PASSPHRASE, ENV_TOKEN, Settings

        variables = dict(os.environ if environ is None else environ)
        if token is not None:
            variables[ENV_TOKEN] = token
        if passphrase is not None:
            variables[ENV_PASSPHRASE] = passphrase
        if cache_ttl < 0:
            raise UsageError("cache_ttl is a number of seconds, 0 or more")
        self._settings = Settings.resolve(
            profile=os.fspath(profile) if profile is not None else None, env=env, json=False,
            quiet=True, no_color=True, reason=reason, environ=variables,
        )  # fmt: skip
        self.cache_ttl = float(cache_ttl)
        self._lock = threading.RLock()
        self._cache: dict[tuple[str, str, int | None], tuple[float, Secret]] = {}
        self._core: SecretsManager | None = None
        self._closed = False
        self._http: HttpTransport | None = None
        if url is not None:  # bsecrets serve instead of the vault (sdk/http.py)
            from bsecrets.sdk.http import HttpTransport

            self._http = HttpTransport(url, variables.get(ENV_TOKEN), timeout)

    # --- the façade ---------------------------------------------------------------

    def _manager(self) -> SecretsManager:
        """The façade, built on first use (so constructing a client costs nothing). The
        seam of the SDK: the core and its modules load here and in the methods below,
        never when ``bsecrets.Client`` is imported (docs/architecture.md)."""
        if self._closed:
            raise ClientClosed("this bsecrets Client is closed")
        if self._core is None:
            import logging

            from bsecrets.config.cache import load_profile_cached
            from bsecrets.config.loader import find_profile
            from bsecrets.models import Confirmation
            from bsecrets.services.credentials import credentials_for
            from bsecrets.services.manager import SecretsManager

            settings = self._settings
            path = find_profile(settings.profile, settings.environ, Path.cwd())
            log = logging.getLogger("bsecrets")
            self._core = SecretsManager(
                load_profile_cached(path),
                credentials_for(settings, None),
                environ=settings.environ,
                warn=log.warning,
                confirmation=Confirmation(
                    reason=settings.reason, one_time_code=settings.one_time_code
                ),
            )
        else:  # a client kept open: a revocation or a re-key since applies now
            self._core.refresh(checks=False)
        return self._core

    @property
    def env(self) -> str:
        """The environment this client reads and writes."""
        with self._lock:
            if self._http is not None:
                if self._closed:
                    raise ClientClosed("this bsecrets Client is closed")
                return self._settings.env or self._http.default_env()
            return self._manager().env_name(self._settings.env)

    # --- reads --------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> Secret:
        """The secret (value and metadata), cached for ``cache_ttl`` seconds.

        Example: ``client.get("db/password").version``"""
        with self._lock:
            env = self.env
            key = (env, name, version)
            found = self._cache.get(key)
            now = time.monotonic()
            if found is not None and found[0] > now:
                return found[1]
            if self._http is not None:
                secret = self._http.get(env, name, version)
            else:
                secret = self._manager().get(env, name, version)
            if self.cache_ttl > 0:
                self._cache[key] = (now + self.cache_ttl, secret)
            return secret

    def value(self, name: str) -> str:
        """The current value as text (UTF-8). Example: ``client.value("api/key")``"""
        raw = self.get(name).value
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(
                f"the value of '{name}' is not UTF-8 text",
                hint="read its bytes with client.get(name).value",
            ) from None

    def ls(self, prefix: str = "") -> list[SecretSummary]:
        """Summaries of the environment's secrets (never values), sorted by name."""
        with self._lock:
            if self._http is not None:
                return self._http.ls(self.env, prefix)
            manager = self._manager()
            return manager.list_secrets(manager.env_name(self._settings.env), prefix)

    def history(self, name: str) -> list[SecretVersion]:
        """Every version kept, oldest first."""
        with self._lock:
            if self._http is not None:
                return self._http.history(self.env, name)
            manager = self._manager()
            return manager.history(manager.env_name(self._settings.env), name)

    def environ(self, names: list[str] | None = None, prefix: str = "") -> dict[str, str]:
        """The variables ``bsecrets exec`` would set: variable name -> value, for every
        secret (or ``names``: names and globs, as ``--only``), with ``prefix``.

        Example: ``os.environ.update(client.environ(prefix="APP_"))``"""
        from bsecrets.config.envmap import map_names
        from bsecrets.services.transfer import read_chosen

        with self._lock:
            if self._http is not None:
                values = self._http.read(self.env, list(names or []))
            else:
                values = read_chosen(self._manager(), self._settings.env, list(names or []))
            mapping = map_names(sorted(values), prefix)
        return {var: values[name].decode("utf-8", "surrogateescape")
                for var, name in mapping.items()}  # fmt: skip

    def health(self) -> dict[str, Any]:
        """What ``bsecrets status --json`` shows: profile, vault, backends, indicators."""
        from bsecrets.services.status_report import status_document

        with self._lock:
            if self._http is not None:
                return self._http.health()
            return status_document(self._manager())

    # --- writes -------------------------------------------------------------------

    def put(
        self,
        name: str,
        value: str | bytes,
        *,
        tags: dict[str, str] | None = None,
        if_version: int | None = None,
    ) -> WriteResult:
        """A new version (``if_version``: only if the current one is that, else
        VersionConflict). Example: ``client.put("api/key", new_key, if_version=3)``"""
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        with self._lock:
            env = self.env
            try:
                if self._http is not None:
                    return self._http.put(env, name, data, tags, if_version)
                return self._manager().put(env, name, data, tags=tags, if_version=if_version)
            finally:
                self._forget(env, name)

    def rotate(
        self,
        name: str,
        *,
        value: str | bytes | None = None,
        generate: str | None = None,
        strategy: str | None = None,
    ) -> dict[str, Any]:
        """``bsecrets rotate NAME``: a new value through create, set, test, finish (the
        profile's policy and hooks). Returns the rotation (never the value)."""
        from bsecrets.services import rotation

        data = value.encode("utf-8") if isinstance(value, str) else value
        with self._lock:
            env = self.env
            try:
                if self._http is not None:
                    text = data.decode("utf-8") if data is not None else None
                    body = {"value": text, "generate": generate, "strategy": strategy}
                    return self._http.rotate(env, name, {k: v for k, v in body.items() if v})
                done = rotation.start(self._manager(), env, name, value=data,
                                      generator=generate, strategy=strategy)  # fmt: skip
            finally:
                self._forget(env, name)
            return done.to_public()

    def promote(
        self,
        source: str,
        target: str,
        *,
        only: list[str] | None = None,
        map_file: str | os.PathLike[str] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """``bsecrets promote --from SOURCE --to TARGET``: the plan (``dry_run``), or the
        plan and the promotion, as ``--json`` prints them."""
        from bsecrets.services import promotion, promotion_plan

        with self._lock:
            if self._http is not None:
                if map_file is not None:
                    raise UsageError("map_file is not sent over HTTP: the server's profile "
                                     "has its own promote map")  # fmt: skip
                body = {"from": source, "to": target, "only": list(only or []), "dry_run": dry_run}
                try:
                    return self._http.promote(body)
                finally:
                    self._cache.clear()
            manager = self._manager()
            path = Path(map_file) if map_file is not None else None
            route = promotion_plan.route_for(manager, source, target, path, list(only or []))
            plan = promotion_plan.make_plan(manager, source, target, route, list(only or []))
            out: dict[str, Any] = {"plan": plan.to_public()}
            if not dry_run and plan.writes:
                try:
                    out["promotion"] = promotion.promote(manager, plan).to_public()
                finally:
                    self._cache.clear()
            return out

    # --- the cache and the end ------------------------------------------------------

    def _forget(self, env: str, name: str) -> None:
        for key in [k for k in self._cache if k[0] == env and k[1] == name]:
            del self._cache[key]

    def refresh(self) -> None:
        """Drop every cached value: the next reads go to the store."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Close the vault and the backends and drop cached values; the client then
        refuses every call (ClientClosed)."""
        with self._lock:
            self._cache.clear()
            self._closed = True
            if self._core is not None:
                self._core.close()
                self._core = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Client(env={self._settings.env!r}, {state})"


BeastSecretsClient = Client  # the name the user's plan uses
