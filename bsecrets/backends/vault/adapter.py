"""VaultAdapter: the SecretBackend of one environment on a KV v2 mount.

Every secret of the environment lives at ``<mount>/data/<prefix>/<name>``.
Vault does the versioning: ``get --version``, ``history`` and the manager's
``rollback`` read its metadata. Every write is a check-and-set: a plain put
reads the current version and writes with ``cas`` set to it, so a concurrent
writer makes it fail (VersionConflict, exit 7) instead of being overwritten.
``delete`` soft-deletes the latest version, ``restore`` undeletes it,
``purge`` deletes the metadata and every version. No hvac or requests import
happens before the first request (transport.py).

Each operation has one time budget (the environment's ``timeout:``). A put
writes the value, then records tags, description and author in the metadata
(KV v2 has no single request for both). A put with tags or a description
first asks Vault (``sys/capabilities-self``) whether the token may patch the
metadata, and is refused before anything is written when it may not; a plain
put whose author cannot be recorded stores the value and warns.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from bsecrets.backends.vault import codec
from bsecrets.backends.vault.connection import VaultConnection
from bsecrets.backends.vault.errors import VaultHTTPError
from bsecrets.backends.vault.health import indicators
from bsecrets.backends.vault.identity import identity as token_identity
from bsecrets.errors import (
    BackendUnavailable,
    BsecretsError,
    Denied,
    NextStep,
    SecretNotFound,
    UsageError,
    VersionConflict,
    VersionNotFound,
)
from bsecrets.health import HealthIndicator
from bsecrets.models import Secret, SecretSummary, SecretVersion, VersionState, WriteResult
from bsecrets.ports import BackendIdentity, Capability, SecretBackend, value_stored_hint

if TYPE_CHECKING:
    from bsecrets.backends.registry import BackendContext
    from bsecrets.backends.vault.auth import Authenticator
    from bsecrets.backends.vault.config import VaultSettings

T = TypeVar("T")
HEALTH_BUDGET_S = 3.0
LIST_WORKERS = 8


def _asked_for(tags: dict[str, str] | None, description: str | None) -> str:
    """What a put asks to record besides the value: "tags", "description", both or ""."""
    given = (("tags", tags is not None), ("description", description is not None))
    parts = [what for what, asked in given if asked]
    return " and ".join(parts)


class VaultAdapter(SecretBackend):
    kind = "vault"
    capabilities = frozenset(Capability) - {Capability.PENDING}

    def __init__(self, settings: VaultSettings, context: BackendContext) -> None:
        super().__init__(settings.env)
        self.settings = settings
        self.clock = context.clock
        self.warn = context.warn
        self.vault = VaultConnection(settings, context)

    # --- plumbing --------------------------------------------------------

    @property
    def auth(self) -> Authenticator:
        """The environment's login (its connection's)."""
        return self.vault.auth

    def budget(self) -> AbstractContextManager[None]:
        return self.vault.budget.scope()

    def _is_deleted(self, info: dict[str, Any]) -> bool:
        return codec.is_deleted(info, self.clock())

    # --- SecretBackend ---------------------------------------------------

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
        with self.write_operation():
            path = self.settings.path(name)
            codec.check_metadata(tags, description)
            self.vault.check_mount()  # before anything is written: a KV v1 mount would take it
            meta = self.vault.metadata(name) or {}
            current = int(meta.get("current_version") or 0)
            if if_version is not None and if_version != current:
                raise VersionConflict(
                    f"secret '{name}' is at version {current}, not {if_version}"
                    if current
                    else f"secret '{name}' does not exist (expected version {if_version})"
                )
            patch = codec.metadata_patch(
                meta.get("custom_metadata"),
                version=current + 1,  # what a successful check-and-set makes
                actor=actor,
                kept_versions={int(v) for v in meta.get("versions") or {}},
                tags=tags,
                description=description,
            )
            asked = _asked_for(tags, description)
            if asked:  # refused now rather than after the value is stored
                self._check_can_record(name, path, asked)
            version = self._write_value(name, path, value, current)
            self._record(name, path, version, patch, asked)
        return WriteResult(name=name, env=self.env, version=version)

    def _check_can_record(self, name: str, path: str, asked: str) -> None:
        """Denied (nothing written) unless the token may patch the secret's metadata.
        A token that may not ask (no ``default`` policy) is not stopped here."""
        target = f"{self.settings.mount}/metadata/{path}"
        try:
            answer = self.vault.call(
                lambda c: c.adapter.post("/v1/sys/capabilities-self", json={"paths": [target]})
            )
        except VaultHTTPError:
            return  # cannot ask: the patch itself will tell, after the value
        data = answer.get("data") if isinstance(answer, dict) else None
        found = data.get(target) if isinstance(data, dict) else None
        if not isinstance(found, list) or {"patch", "root"} & set(found):
            return
        has = ", ".join(sorted(found)) or "none"
        raise Denied(
            f"the Vault token may not record the {asked} of secret '{name}' in environment "
            f"'{self.env}': it has no 'patch' capability on {target} (it has: {has}); "
            "nothing was written",
            hint=f"add 'patch' on {self.settings.mount}/metadata/{self._policy_glob()} to the "
            "token's policy",
            step=NextStep("allow_vault_metadata_patch", env=self.env),
        )

    def _policy_glob(self) -> str:
        return f"{self.settings.prefix}/*" if self.settings.prefix else "*"

    def _write_value(self, name: str, path: str, value: bytes, current: int) -> int:
        """The value as version ``current + 1`` (check-and-set); its version number."""
        data = codec.encode_value(value)
        payload = {"options": {"cas": current}, "data": data}
        try:
            answer = self.vault.call(
                lambda c: c.adapter.post(self.vault.api("data", path), json=payload)
            )
        except VaultHTTPError as exc:
            if exc.is_cas_mismatch:
                raise VersionConflict(
                    f"secret '{name}' in environment '{self.env}' changed in Vault while it was "
                    f"being written (it was at version {current}); nothing was overwritten",
                ) from exc
            raise self.vault.fail(exc, f"writing secret '{name}'") from exc
        except BsecretsError as exc:
            if exc.applied != "unknown":
                raise
            if self._stored(path, current + 1, data):  # it did arrive
                return current + 1
            raise self._maybe_applied(exc, f"writing secret '{name}'", name) from exc
        return int(answer["data"]["version"])

    def _stored(self, path: str, version: int, data: dict[str, str]) -> bool:
        """After a write whose answer was lost: does Vault hold ``data`` as ``version``?
        Only within what is left of the budget; a failure here is not reported (the
        write's own error is the one that counts)."""
        if self.vault.budget.remaining() <= 0:
            return False
        try:
            answer = self.vault.call(
                lambda c: c.adapter.get(self.vault.api("data", path), params={"version": version})
            )
        except (VaultHTTPError, BsecretsError):
            return False
        found = answer.get("data") if isinstance(answer, dict) else None
        return isinstance(found, dict) and found.get("data") == data

    def _maybe_applied(self, exc: BsecretsError, what: str, name: str) -> BsecretsError:
        return BackendUnavailable(
            f"{what} in environment '{self.env}': {exc.message}; the write may have been "
            f"applied: check with 'bsecrets history {name} -e {self.env}'",
            hint="look before retrying: a retry could write it twice",
            applied="unknown",
        )

    def _record(
        self, name: str, path: str, version: int, patch: dict[str, str | None], asked: str
    ) -> None:
        """Tags, description and author after the value (a JSON merge patch of the
        metadata). Not recorded: an error saying the value is stored when the put asked
        for tags or a description, else a warning that the author was not recorded."""
        try:
            self.vault.call(
                lambda c: c.adapter.request(
                    "patch",
                    self.vault.api("metadata", path),
                    json={"custom_metadata": patch},
                    headers={"Content-Type": "application/merge-patch+json"},
                )
            )
            return
        except VaultHTTPError as exc:
            error = self.vault.fail(exc, f"patching {self.settings.mount}/metadata/{path}")
        except BsecretsError as exc:
            error = exc
        were = "may not have been" if error.applied == "unknown" else "were not"
        if not asked:
            was = "may not have been" if error.applied == "unknown" else "was not"
            self.warn(
                f"the author of version {version} of secret '{name}' {was} recorded: "
                f"{error.message}; 'bsecrets history' shows it as {codec.UNKNOWN_AUTHOR}"
            )
            return
        hint, step = value_stored_hint(error, version + 1, NextStep("check_history"))
        raise type(error)(
            f"the value of secret '{name}' was stored as version {version}; only its "
            f"{asked} {were} recorded: {error.message}",
            hint=hint,
            step=step,
            applied="yes",
        ) from error

    def get(self, name: str, version: int | None = None) -> Secret:
        with self.budget():
            return self._get(name, version)

    def _get(self, name: str, version: int | None) -> Secret:
        base, field = codec.split_field(name)
        path = self.settings.path(base)
        if version is not None:
            current, info = codec.latest(self.vault.existing(base))
            if self._is_deleted(info):
                raise codec.deleted_error(base, self.env, info)
            if not 1 <= version <= current:
                raise VersionNotFound(f"secret '{base}' has no version {version}")
        params = {"version": version} if version is not None else {}
        try:
            answer = self.vault.call(
                lambda c: c.adapter.get(self.vault.api("data", path), params=params)
            )
        except VaultHTTPError as exc:
            if exc.status != 404 or "no handler for route" in exc.detail:
                raise self.vault.fail(exc, f"reading secret '{base}'") from exc
            body = exc.body if isinstance(exc.body, dict) else {}
            found = (body.get("data") or {}).get("metadata")
            if version is not None:
                why = "was deleted or destroyed" if found else "is no longer kept by Vault"
                raise VersionNotFound(f"version {version} of secret '{base}' {why}") from None
            if isinstance(found, dict):
                raise codec.deleted_error(base, self.env, found) from None
            self.vault.check_mount()
            raise SecretNotFound(f"secret '{base}' not found in environment '{self.env}'") from None
        data = answer.get("data") if isinstance(answer, dict) else None
        meta = data.get("metadata") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(meta, dict) or "data" not in data:
            self.vault.check_mount(again=True)
            raise BsecretsError(f"Vault's answer for secret '{base}' is not KV v2 data")
        stored = data["data"]
        value = (
            codec.select_field(stored, field, base, self.env)
            if field is not None
            else codec.decode_value(stored)
        )
        number, custom = int(meta["version"]), meta.get("custom_metadata")
        created = codec.parse_time(meta.get("created_time")) or self.clock()
        return Secret(
            name=name,
            env=self.env,
            version=number,
            value=value,
            created_at=created,
            created_by=codec.author_of(custom, number),
            tags=codec.tags_of(custom),
            description=codec.description_of(custom),
        )

    def list_secrets(
        self, prefix: str = "", *, include_deleted: bool = False
    ) -> list[SecretSummary]:
        with self.budget():
            return self._list(prefix, include_deleted)

    def _list(self, prefix: str, include_deleted: bool) -> list[SecretSummary]:
        directory = prefix.rpartition("/")[0]
        if directory:
            self.settings.path(directory)  # no '..' walks out of the prefix
        names = [n for n in self._walk(directory) if n.startswith(prefix)]
        out = []
        for name, meta in zip(names, self._fan_out(self._metadata_quietly, names), strict=True):
            if meta is None:
                continue  # purged since the listing
            current, info = codec.latest(meta)
            deleted = self._is_deleted(info)
            if deleted and not include_deleted:
                continue
            custom = meta.get("custom_metadata")
            out.append(
                SecretSummary(
                    name=name,
                    version=current,
                    updated_at=codec.parse_time(meta.get("updated_time")) or self.clock(),
                    tags=codec.tags_of(custom),
                    deleted=deleted,
                )
            )
        return sorted(out, key=lambda s: s.name)

    def _walk(self, directory: str) -> list[str]:
        """Every secret name under ``directory`` (relative to the prefix), recursively."""
        root, names, pending = self.settings.prefix, [], [directory]
        while pending:
            folder = pending.pop()
            full = "/".join(p for p in (root, folder) if p) + "/"
            url = self.vault.api("metadata", full)

            def listing(client: Any, url: str = url) -> Any:
                return client.adapter.list(url)

            try:
                answer = self.vault.call(listing)
            except VaultHTTPError as exc:
                if exc.status != 404 or "no handler for route" in exc.detail:
                    raise self.vault.fail(exc, f"listing '{folder or '/'}'") from exc
                if folder == directory:
                    self.vault.check_mount()
                continue
            for key in answer["data"]["keys"]:
                child = f"{folder}/{key}" if folder else str(key)
                if child.endswith("/"):
                    pending.append(child.rstrip("/"))
                else:
                    names.append(child)
        return names

    def _metadata_quietly(self, name: str) -> dict[str, Any] | None:
        try:
            return self.vault.metadata(name)
        except UsageError:  # a foreign name with '..' or '//' in it: not ours to show
            return None

    def _fan_out(self, fn: Callable[[str], T], items: list[str]) -> list[T]:
        """``fn`` over ``items``, a few requests in flight (one round trip each)."""
        if len(items) <= 2:
            return [fn(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor

        self.vault.log_in()  # once, before the threads
        with ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(items))) as pool:
            return list(pool.map(fn, items))

    def history(self, name: str) -> list[SecretVersion]:
        with self.budget():
            meta = self.vault.existing(name)
            current, info = codec.latest(meta)
            latest_deleted = self._is_deleted(info)
            custom = meta.get("custom_metadata")
            out = []
            for key, entry in sorted(
                (meta.get("versions") or {}).items(), key=lambda kv: int(kv[0])
            ):
                number = int(key)
                if number == current:
                    state = VersionState.DELETED if latest_deleted else VersionState.CURRENT
                else:
                    state = VersionState.PREVIOUS
                out.append(
                    SecretVersion(
                        version=number,
                        created_at=codec.parse_time(entry.get("created_time")) or self.clock(),
                        created_by=codec.author_of(custom, number),
                        state=state,
                    )
                )
            return out

    def delete(self, name: str) -> None:
        with self.write_operation():
            path = self.settings.path(name)
            self.vault.check_mount()
            current, info = codec.latest(self.vault.existing(name))
            if self._is_deleted(info):
                raise SecretNotFound(
                    f"secret '{name}' is already deleted",
                    step=NextStep("restore_secret", name=name),
                )
            self._post_versions("delete", name, path, current, f"deleting secret '{name}'")

    def restore(self, name: str) -> SecretSummary:
        with self.write_operation():
            path = self.settings.path(name)
            self.vault.check_mount()
            meta = self.vault.existing(name)
            current, info = codec.latest(meta)
            if info.get("destroyed"):
                raise SecretNotFound(
                    f"version {current} of secret '{name}' was destroyed; it cannot be restored"
                )
            if not self._is_deleted(info):
                raise SecretNotFound(f"secret '{name}' is not deleted; nothing to restore")
            self._post_versions("undelete", name, path, current, f"restoring secret '{name}'")
        return SecretSummary(
            name=name,
            version=current,
            updated_at=self.clock(),
            tags=codec.tags_of(meta.get("custom_metadata")),
        )

    def _post_versions(self, action: str, name: str, path: str, version: int, what: str) -> None:
        body = {"versions": [version]}
        self._change(name, what, lambda c: c.adapter.post(self.vault.api(action, path), json=body))

    def purge(self, name: str) -> None:
        with self.write_operation():
            path = self.settings.path(name)
            self.vault.check_mount()
            self.vault.existing(name)
            what = f"purging secret '{name}'"
            self._change(name, what, lambda c: c.adapter.delete(self.vault.api("metadata", path)))

    def _change(self, name: str, what: str, request: Callable[[Any], Any]) -> None:
        """One request that changes ``name``; its errors say whether it was applied."""
        try:
            self.vault.call(request)
        except VaultHTTPError as exc:
            raise self.vault.fail(exc, what) from exc
        except BsecretsError as exc:
            if exc.applied == "unknown":
                raise self._maybe_applied(exc, what, name) from exc
            raise

    def close(self) -> None:
        self.vault.close()

    # --- ReflectiveModule ------------------------------------------------

    def get_module_status(self) -> dict[str, Any]:
        s = self.settings
        status: dict[str, Any] = {
            "name": f"vault:{self.env}",
            "backend": self.kind,
            "address": s.address,
            "mount": s.mount,
            "prefix": s.prefix,
            "auth": self.auth.method,
            "timeout": f"{s.timeout_s:g}s",
        }
        if s.namespace:
            status["namespace"] = s.namespace
        if s.ca_cert:
            status["ca_cert"] = s.ca_cert
        return status

    def get_health_indicators(self) -> list[HealthIndicator]:
        """Reachability and seal status (sys/health), the token's TTL, the last latency."""
        return indicators(self.vault, HEALTH_BUDGET_S)

    def identity(self) -> BackendIdentity:
        """Health, then the token's lookup-self: who, policies, TTL (identity.py)."""
        return token_identity(self.vault, HEALTH_BUDGET_S)
