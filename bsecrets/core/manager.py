"""SecretsManager: the one façade every caller (CLI, SDK, server) goes through.

It resolves the environment from the profile (an unknown environment is an
error, never a silent default), validates names and values, builds the
environment's backend, and calls it. Audit and access control plug in here
(later issues), so no caller can skip them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bsecrets import __version__
from bsecrets.backends.base import SecretBackend
from bsecrets.core.credentials import Credentials
from bsecrets.core.errors import BackendUnavailable, VersionNotFound
from bsecrets.core.health import HealthIndicator, ReflectiveModule
from bsecrets.core.models import (
    AccessContext,
    Secret,
    SecretSummary,
    SecretVersion,
    WriteResult,
    validate_name,
    validate_tags,
    validate_value,
)
from bsecrets.core.profile import Profile
from bsecrets.core.timeutil import Clock, utcnow


class SecretsManager(ReflectiveModule):
    def __init__(
        self,
        profile: Profile,
        creds: Credentials,
        *,
        clock: Clock = utcnow,
        context: AccessContext | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.profile = profile
        self.environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self.creds = creds
        self.clock = clock
        self._context = context
        self._backends: dict[str, SecretBackend] = {}
        self._local: Any = None  # LocalVault, opened on first use

    # --- plumbing --------------------------------------------------------

    @property
    def context(self) -> AccessContext:
        if self._context is None:
            self._context = AccessContext.current()
        return self._context

    def env_name(self, env: str | None) -> str:
        name = env or self.profile.default_env
        self.profile.environment(name)  # EnvironmentNotFound lists the known ones
        return name

    def local_vault(self) -> Any:
        """The LocalVault of this profile (opened once)."""
        if self._local is None:
            from bsecrets.backends.local.vault import LocalVault

            self._local = LocalVault.open(self.profile.vault_file, self.creds, self.clock)
        return self._local

    def backend(self, env: str | None) -> SecretBackend:
        """The backend of ``env`` (built once per process, module imported on first use)."""
        name = self.env_name(env)
        if name not in self._backends:
            import importlib

            from bsecrets.backends.base import FACTORIES, BackendContext

            config = self.profile.environment(name)
            module_name, factory = FACTORIES[config.backend].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                raise BackendUnavailable(
                    f"environment '{name}' uses the {config.backend} backend, "
                    "which this version of bsecrets does not support yet",
                    hint="use a local environment for now",
                ) from None
            context = BackendContext(self.environ, self.clock, self.local_vault)
            self._backends[name] = getattr(module, factory)(config, context)
        return self._backends[name]

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        if self._local is not None:
            self._local.close()

    # --- secrets ---------------------------------------------------------

    def put(
        self,
        env: str | None,
        name: str,
        value: bytes,
        *,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        if_version: int | None = None,
    ) -> WriteResult:
        validate_name(name)
        validate_value(value)
        if tags is not None:
            validate_tags(tags)
        return self.backend(env).put(
            name,
            value,
            actor=self.context.actor,
            tags=tags,
            description=description,
            if_version=if_version,
        )

    def get(self, env: str | None, name: str, version: int | None = None) -> Secret:
        """``NAME#field`` selects one field where the backend stores structured values."""
        from bsecrets.backends.base import Capability
        from bsecrets.core.errors import UsageError

        base, sep, field = name.partition("#")
        validate_name(base)
        backend = self.backend(env)
        if sep:
            if not field or "#" in field:
                raise UsageError(f"invalid field in {name!r}", hint="write NAME#field")
            if Capability.FIELDS not in backend.capabilities:
                raise UsageError(
                    f"the {backend.kind} backend has no fields: '{name}'",
                    hint="NAME#field selects a field of a Vault secret",
                )
        return backend.get(name, version)

    def list_secrets(
        self,
        env: str | None,
        prefix: str = "",
        *,
        tags: dict[str, str] | None = None,
        include_deleted: bool = False,
    ) -> list[SecretSummary]:
        items = self.backend(env).list_secrets(prefix, include_deleted=include_deleted)
        if tags:
            items = [s for s in items if all(s.tags.get(k) == v for k, v in tags.items())]
        return items

    def current_values(self, env: str | None) -> dict[str, bytes]:
        """Name -> current value of every (not deleted) secret of ``env``, by name."""
        return self.backend(env).current_values()

    def history(self, env: str | None, name: str) -> list[SecretVersion]:
        validate_name(name)
        return self.backend(env).history(name)

    def delete(
        self,
        env: str | None,
        name: str,
        *,
        purge: bool = False,
        recovery_days: int | None = None,
    ) -> None:
        validate_name(name)
        backend = self.backend(env)
        if purge:
            if recovery_days is not None:
                from bsecrets.core.errors import UsageError

                raise UsageError(
                    "--recovery-days does not apply to --purge", hint="give one or the other"
                )
            backend.purge(name)
        elif recovery_days is not None:
            backend.schedule_deletion(name, recovery_days)
        else:
            backend.delete(name)

    def restore(self, env: str | None, name: str) -> SecretSummary:
        validate_name(name)
        return self.backend(env).restore(name)

    def transaction(self, env: str | None) -> AbstractContextManager[None]:
        """``with manager.transaction(env): ...puts...``: all or nothing where the
        backend can do it (the local vault); see SecretBackend.transaction."""
        return self.backend(env).transaction()

    def rollback(self, env: str | None, name: str, to_version: int) -> WriteResult:
        """A new version whose value is ``to_version``'s (as Vault's kv rollback)."""
        validate_name(name)
        backend = self.backend(env)
        current = backend.get(name)
        if to_version == current.version:
            raise VersionNotFound(
                f"version {to_version} of '{name}' is already the current one",
                hint="pick an older version from 'bsecrets history NAME'",
            )
        old = backend.get(name, to_version)
        return backend.put(name, old.value, actor=self.context.actor, if_version=current.version)

    # --- sessions --------------------------------------------------------

    def unlock(self, ttl: Any) -> Any:
        """Start a session for the local vault; returns a core.session.Session."""
        from bsecrets.backends.local.vault import LocalVault
        from bsecrets.core import session

        # A fresh handle that ignores any BSECRETS_SESSION already set (it may have expired).
        vault = LocalVault.open(
            self.profile.vault_file, self.creds._replace(session_token=None), self.clock
        )
        try:
            private_key = vault.private_key()
            with vault.store.read():
                masters = vault.env_masters()
            return session.start(vault.vault_id, private_key, ttl, self.clock(), masters)
        finally:
            vault.close()

    def lock(self) -> int:
        from bsecrets.core import session

        return session.end(self.creds.session_token, self.local_vault().vault_id)

    # --- ReflectiveModule ------------------------------------------------

    def get_module_status(self) -> dict[str, Any]:
        return {
            "name": "SecretsManager",
            "version": __version__,
            "profile": str(self.profile.path),
            "default_env": self.profile.default_env,
            "vault_file": str(self.profile.vault_file),
            "environments": {name: self._env_status(name) for name in self.profile.environments},
        }

    def _env_status(self, name: str) -> dict[str, Any]:
        from bsecrets.core.errors import BsecretsError

        config = self.profile.environment(name)
        if config.backend == "local" and not Path(self.profile.vault_file).exists():
            return {"backend": "local", "initialized": False, "secrets": 0}
        try:
            return self.backend(name).get_module_status()
        except BsecretsError as exc:
            return {"backend": config.backend, "error": exc.message}

    def get_health_indicators(self) -> list[HealthIndicator]:
        """The profile, the local vault (once) and each remote environment's indicators."""
        from bsecrets.core.errors import BsecretsError

        indicators = [HealthIndicator("profile", True, str(self.profile.path))]
        vault_file = Path(self.profile.vault_file)
        local_done = False
        for name, config in self.profile.environments.items():
            if config.backend == "local":
                if local_done:
                    continue
                local_done = True
                if not vault_file.exists():
                    indicators.append(
                        HealthIndicator("vault_file", False, f"no vault at {vault_file}")
                    )
                    continue
                indicators += self.backend(name).get_health_indicators()
                indicators.append(self._session_indicator())
                continue
            try:
                remote = self.backend(name).get_health_indicators()
            except BsecretsError as exc:
                remote = [HealthIndicator("backend", False, exc.message)]
            indicators += [
                HealthIndicator(f"{name}.{i.name}", i.ok, i.detail, i.value) for i in remote
            ]
        return indicators

    def _session_indicator(self) -> HealthIndicator:
        """Whether BSECRETS_SESSION (if set) still opens this vault; never unlocks otherwise."""
        from bsecrets.core import session
        from bsecrets.core.errors import BsecretsError

        if not self.creds.session_token:
            return HealthIndicator("session", True, "none (BSECRETS_SESSION is not set)")
        try:
            session.open_session(
                self.creds.session_token, self.local_vault().vault_id, self.clock()
            )
        except BsecretsError as exc:
            return HealthIndicator("session", False, exc.message)
        return HealthIndicator("session", True, "unlocked")
