"""The offline fallback of a remote environment (``offline: {max_stale: 24h}`` in the
profile; docs/sdk.md and docs/cli.md): the last values read are kept sealed in the
local vault, and while Vault or AWS is unreachable a read within ``max_stale`` of
that copy returns it, marked stale (``Secret.stale``) with a warning. Beyond it, or
for a value never read, the read fails as it would without the fallback (exit 6).
Writes never fall back.

The copies live in the local vault's sealed cache (vaultfile/cache.py: AES-256-GCM
under the internal cache environment's key, which only the owner holds), so the
fallback serves the owner: another principal's reads pass through unchanged.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bsecrets.errors import BackendUnavailable
from bsecrets.health import HealthIndicator
from bsecrets.models import Secret, SecretSummary, SecretVersion, WriteResult
from bsecrets.ports import BackendIdentity, SecretBackend
from bsecrets.timeutil import iso, parse_duration, parse_iso
from bsecrets.vaultfile.cache import SealedCache

if TYPE_CHECKING:
    from bsecrets.backends.registry import BackendContext
    from bsecrets.config.profile import EnvironmentConfig

_LISTING = "\x00listing"  # no secret name holds a NUL


class OfflineFallback(SecretBackend):
    """A remote backend whose reads fall back to the last copies read."""

    def __init__(
        self, inner: SecretBackend, config: EnvironmentConfig, context: BackendContext
    ) -> None:
        super().__init__(inner.env)
        self.inner = inner
        self.kind = inner.kind
        self.capabilities = inner.capabilities
        self.max_stale = parse_duration(str(config.options["offline"]["max_stale"]))
        self.context = context
        self._cache: SealedCache | None = None
        self._opened = False
        self._ns = f"offline:{inner.env}"

    def _copies(self) -> SealedCache | None:
        if not self._opened:
            self._opened = True
            self._cache = SealedCache.open_quietly(self.context.local_vault, self.context.clock)
        return self._cache

    def _keep(self, key: str, data: dict[str, Any]) -> None:
        cache = self._copies()
        if cache is not None:
            now = self.context.clock()
            cache.put(self._ns, key, {**data, "read_at": iso(now)}, now + self.max_stale)

    def _copy(self, key: str, exc: BackendUnavailable, what: str) -> dict[str, Any]:
        """The copy kept for ``key``, with a warning; ``exc`` again when there is none
        within ``max_stale``."""
        cache = self._copies()
        found = cache.get(self._ns, key) if cache is not None else None
        if found is None:
            raise exc
        age = self.context.clock() - parse_iso(str(found["read_at"]))
        self.context.warn(
            f"environment '{self.env}' is unreachable ({exc.message.split(': ')[0]}); "
            f"{what} as read {_ago(age)} ago (offline fallback, at most "
            f"{_ago(self.max_stale)} stale)"
        )
        return found

    # --- reads: with the fallback ---------------------------------------------------

    def get(self, name: str, version: int | None = None) -> Secret:
        try:
            secret = self.inner.get(name, version)
        except BackendUnavailable as exc:
            if version is not None:
                raise
            found = self._copy(name, exc, f"'{name}' is served")
            return Secret(
                name, self.env, int(found["version"]), base64.b64decode(found["value"]),
                parse_iso(str(found["created_at"])), str(found["created_by"]),
                dict(found["tags"]), str(found["description"]), stale=True,
            )  # fmt: skip
        if version is None:
            self._keep(name, {
                "value": base64.b64encode(secret.value).decode(), "version": secret.version,
                "created_at": iso(secret.created_at), "created_by": secret.created_by,
                "tags": dict(secret.tags), "description": secret.description,
            })  # fmt: skip
        return secret

    def list_secrets(
        self, prefix: str = "", *, include_deleted: bool = False
    ) -> list[SecretSummary]:
        try:
            found = self.inner.list_secrets(prefix, include_deleted=include_deleted)
        except BackendUnavailable as exc:
            if include_deleted:
                raise
            listing = self._copy(_LISTING, exc, "its list of secrets is")
            return [
                SecretSummary(n, v, parse_iso(t), dict(tags))
                for n, v, t, tags in listing["items"]
                if str(n).startswith(prefix)
            ]
        if not prefix and not include_deleted:
            items = [[s.name, s.version, iso(s.updated_at), dict(s.tags)] for s in found]
            self._keep(_LISTING, {"items": items})
        return found

    def current_values(self) -> dict[str, bytes]:
        return {s.name: self.get(s.name).value for s in self.list_secrets()}

    def values_of(self, names: list[str]) -> dict[str, bytes]:
        try:
            return self.inner.values_of(names)
        except BackendUnavailable:
            return SecretBackend.values_of(self, names)  # one by one, each with its copy

    def history(self, name: str) -> list[SecretVersion]:
        return self.inner.history(name)

    # --- everything else: the remote store itself, never a copy -----------------------

    def put(
        self,
        name: str,
        value: bytes,
        *,
        actor: str,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        if_version: int | None = None,
    ) -> WriteResult:
        return self.inner.put(name, value, actor=actor, tags=tags, description=description,
                              if_version=if_version)  # fmt: skip

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def restore(self, name: str) -> SecretSummary:
        return self.inner.restore(name)

    def purge(self, name: str) -> None:
        self.inner.purge(name)

    def schedule_deletion(self, name: str, recovery_days: int) -> None:
        self.inner.schedule_deletion(name, recovery_days)

    def rotation_service(self, name: str) -> dict[str, Any] | None:
        return self.inner.rotation_service(name)

    def schedule_rotation(self, name: str, function: str, every_days: int) -> None:
        self.inner.schedule_rotation(name, function, every_days)

    def rotate_with_service(self, name: str) -> None:
        self.inner.rotate_with_service(name)

    def stage(self, name: str, value: bytes, *, actor: str) -> int | None:
        return self.inner.stage(name, value, actor=actor)

    def make_current(self, name: str, version: int, *, if_version: int) -> WriteResult:
        return self.inner.make_current(name, version, if_version=if_version)

    def unstage(self, name: str, version: int) -> None:
        self.inner.unstage(name, version)

    def budget(self) -> AbstractContextManager[None]:
        return self.inner.budget()

    @contextmanager
    def write_operation(self) -> Iterator[None]:
        with self.inner.write_operation():
            yield

    def transaction(self) -> AbstractContextManager[None]:
        return self.inner.transaction()

    def snapshot(self) -> AbstractContextManager[None]:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()

    def identity(self) -> BackendIdentity | None:
        """The remote store's own: the fallback serves reads, not identities."""
        return self.inner.identity()

    def get_module_status(self) -> dict[str, Any]:
        return {**self.inner.get_module_status(), "offline_max_stale": _ago(self.max_stale)}

    def get_health_indicators(self) -> list[HealthIndicator]:
        return self.inner.get_health_indicators()


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"
