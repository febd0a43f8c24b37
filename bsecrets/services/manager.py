"""SecretsManager: the one façade every caller (CLI, SDK, server) goes through.

It resolves the environment from the profile (an unknown environment is an
error, never a silent default), validates names and values, builds the
environment's backend, and calls it inside an audited operation (audit/logger.py:
the event commits with a local change, or brackets a remote call), so no
caller can skip the audit log. Access control (#13) plugs in here too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from bsecrets import __version__
from bsecrets.audit.events import Action
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.audit.logger import AuditLogger, AuditSink, Note, NullAuditSink, outcome_of, reason_of
from bsecrets.backends.registry import FACTORIES, BackendContext, factory
from bsecrets.config.profile import Profile
from bsecrets.errors import (
    BackendUnavailable,
    BsecretsError,
    NextStep,
    UsageError,
    VaultNotFound,
    VersionConflict,
)
from bsecrets.files import exists
from bsecrets.health import HealthIndicator, ReflectiveModule
from bsecrets.models import (
    AccessContext,
    Confirmation,
    Secret,
    SecretSummary,
    SecretVersion,
    WriteResult,
    validate_description,
    validate_name,
    validate_tags,
    validate_value,
)
from bsecrets.ports import Capability, SecretBackend, not_applied, stderr_warning
from bsecrets.services.access import AccessGate
from bsecrets.timeutil import Clock, utcnow
from bsecrets.tracing import observers_from
from bsecrets.vaultfile import session
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault


class SecretsManager(ReflectiveModule):
    def __init__(
        self,
        profile: Profile,
        creds: Credentials,
        *,
        clock: Clock = utcnow,
        context: AccessContext | None = None,
        environ: Mapping[str, str] | None = None,
        audit_sink: AuditSink | None = None,
        warn: Callable[[str], None] | None = None,
        insecure_http: bool = False,
        confirmation: Confirmation | None = None,
        remote_only: bool = False,  # the server without a vault file (access.py)
    ) -> None:
        self.profile = profile
        self.remote_only = remote_only
        self.environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self.creds = creds
        self.clock = clock
        self._context = context
        self._backends: dict[str, SecretBackend] = {}
        self._local: LocalVault | None = None  # opened on first use
        self._audit_sink = audit_sink
        self.warn = warn or stderr_warning  # one line, without "warning: "
        self.insecure_http = insecure_http  # no warning for plain http:// endpoints
        self._audit: AuditLogger | None = None
        # what the caller gives for a protected environment (services/access.py)
        self.confirmation = confirmation or Confirmation()
        self._gate: AccessGate | None = None

    # --- plumbing --------------------------------------------------------

    @property
    def context(self) -> AccessContext:
        if self._context is None:
            self._context = AccessContext.current()._replace(principal=self.creds.principal)
        return self._context

    def env_name(self, env: str | None) -> str:
        name = env or self.profile.default_env
        self.profile.environment(name)  # EnvironmentNotFound lists the known ones
        return name

    def local_vault(self) -> LocalVault:
        """The LocalVault of this profile (opened once)."""
        if self._local is None:
            self._local = LocalVault.open(self.profile.vault_file, self.creds, self.clock)
            # who sealed a key to this principal: as the verified access policy says
            self._local.key_directory = self.principal_key
            _ = self.audit  # the chain witness is attached before anything reads the file
        return self._local

    def principal_key(self, name: str) -> bytes | None:
        """A principal's public key as the verified access policy states it."""
        record = self.gate.policy().principals.get(name)
        return record.public_key if record is not None else None

    @property
    def audit(self) -> AuditLogger:
        """The audit logger: the local vault's chained log, or (no vault file) a null sink."""
        if self._audit is None:
            sink = self._audit_sink
            if sink is None:
                if exists(self.profile.vault_file):
                    sink = LocalAuditLog(self.local_vault())
                else:
                    sink = NullAuditSink()
            self._audit = AuditLogger(sink, self.context, self.clock, self.environ)
            self._audit.observers += observers_from(self.environ, self.warn)  # traces
        return self._audit

    @property
    def gate(self) -> AccessGate:
        """The access checks of this manager's operations (services/access.py)."""
        if self._gate is None:
            self._gate = AccessGate(
                self.profile,
                lambda: self.context.principal,
                self.local_vault,
                self.clock,
                self.confirmation,
                self.remote_only,
            )
        return self._gate

    def owner_vault(self, action: Action, env: str | None, what: str) -> LocalVault:
        """The local vault, for ``what`` only its owner may do: a refusal (another
        principal, no vault) is an audited event of ``action``."""
        with self.refusals_recorded(action, env):
            return self.gate.require_owner(what)

    @contextlib.contextmanager
    def refusals_recorded(
        self,
        action: Action,
        env: str | None,
        *,
        name: str | None = None,
        names: list[str] | None = None,
    ) -> Iterator[None]:
        """Checks made before an operation (access, a second factor): what they refuse is
        an audited event of that operation, then raised."""
        try:
            yield
        except BsecretsError as exc:
            with contextlib.suppress(BsecretsError):  # refused either way
                self.audit.record(
                    action, env, name=name, names=names,
                    outcome=outcome_of(exc), reason=reason_of(exc),
                )  # fmt: skip
            raise

    @contextlib.contextmanager
    def _op(
        self,
        action: Action,
        env: str,
        *,
        name: str | None = None,
        names: list[str] | None = None,
        changes: bool = True,
        needs: str | None = None,
    ) -> Iterator[Note]:
        """An audited operation on ``env`` (see AuditLogger.operation), after the access
        checks (a refusal is an audited event of the operation too)."""
        remote = self.profile.environment(env).backend != "local"
        with self.refusals_recorded(action, env, name=name, names=names):
            about = (name, *(names or []))
            justification = self.gate.check(action, env, remote=remote, names=about, needs=needs)
        with self.audit.operation(
            action, env, name=name, names=names, remote=remote, changes=changes,
            justification=justification,
        ) as note:  # fmt: skip
            yield note

    def backend(self, env: str | None) -> SecretBackend:
        """The backend of ``env`` (built once per process, module imported on first use)."""
        name = self.env_name(env)
        if name not in self._backends:
            config = self.profile.environment(name)
            try:
                make = factory(config.backend)
            except ModuleNotFoundError as exc:
                if exc.name != FACTORIES[config.backend].split(":")[0]:
                    raise
                raise BackendUnavailable(
                    f"environment '{name}' uses the {config.backend} backend, "
                    "which this version of bsecrets does not support yet",
                    hint="use a local environment for now",
                ) from None
            context = BackendContext(
                self.environ, self.clock, self.local_vault, self.warn, self.insecure_http
            )
            backend = make(config, context)
            if config.options.get("offline"):  # a seam: only such environments load it
                from bsecrets.backends.offline import OfflineFallback

                backend = OfflineFallback(backend, config, context)
            self._backends[name] = backend
        return self._backends[name]

    def refresh(self, *, checks: bool) -> None:
        """For a caller that keeps this manager (the server, the SDK): the next operation
        reads the access policy again (a token revoked since, a grant changed) and checks
        each environment key against the file (a re-key); with ``checks``, a second
        factor and confirmations are asked anew too (else kept, once per process)."""
        if checks:
            self._gate = None
        elif self._gate is not None:
            self._gate.forget_policy()
        if self._local is not None:
            self._local.forget_env_keys()

    def begin_request(self, via: str, confirmation: Confirmation) -> None:
        """The server, at each request: ``refresh`` with its checks, the request's
        ``confirmation``, and audit events with a new request id and ``via``."""
        self.confirmation = confirmation
        self.refresh(checks=True)
        self._context = self.context._replace(via=via)
        if self._audit is not None:
            self._audit.context = self._context
            self._audit.request_id = os.urandom(8).hex()

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
        allow_empty: bool = False,
    ) -> WriteResult:
        """A new version of ``name``. An empty ``value`` is refused (EmptyValue, exit 2,
        nothing written) unless ``allow_empty``: it is usually a failed producer."""
        validate_name(name)
        validate_value(value, allow_empty=allow_empty, name=name)
        if tags is not None:
            validate_tags(tags)
        if description is not None:
            validate_description(description)
        env_name = self.env_name(env)
        with self._op(Action.PUT, env_name, name=name) as note:
            result = self.backend(env_name).put(
                name,
                value,
                actor=self.context.actor,
                tags=tags,
                description=description,
                if_version=if_version,
            )
            note.version = result.version
        return result

    def make_current(self, env: str, name: str, version: int, *, if_version: int) -> WriteResult:
        """A rotation's pending ``version`` becomes current (SecretBackend.make_current),
        audited as the put it completes."""
        with self._op(Action.PUT, env, name=name) as note:
            result = self.backend(env).make_current(name, version, if_version=if_version)
            note.version = result.version
        return result

    def get(self, env: str | None, name: str, version: int | None = None) -> Secret:
        """``NAME#field`` selects one field where the backend stores structured values."""
        base, sep, field = name.partition("#")
        validate_name(base)
        if sep and (not field or "#" in field):
            raise UsageError(f"invalid field in {name!r}", hint="write NAME#field")
        env_name = self.env_name(env)
        with self._op(Action.GET, env_name, name=name, changes=False) as note:
            note.version = version
            backend = self.backend(env_name)
            if sep:  # imported here: slots and rotations are off a plain get's path
                from bsecrets.services import slots

                if field in slots.FIELDS:  # a version a rotation keeps (docs/rotation.md)
                    kept = slots.slot_version(self.gate, self.clock, env_name, base, field, backend)
                    secret = backend.get(base, kept)
                    note.version = secret.version
                    return secret
            if sep and Capability.FIELDS not in backend.capabilities:
                raise UsageError(
                    f"the {backend.kind} backend has no fields: '{name}'",
                    hint="NAME#field selects a field of a Vault secret",
                )
            secret = backend.get(name, version)
            note.version = secret.version
        return secret

    @contextlib.contextmanager
    def reading(
        self, env: str | None, names: list[str], *, action: Action
    ) -> Iterator[tuple[dict[str, bytes], Note]]:
        """``with manager.reading(env, names, action=Action.EXEC) as (values, note):`` the
        current values of ``names`` in one audited operation. The caller may narrow
        ``note.names`` to what it used (exec: the names it injects); the event is
        written when the block ends, before the caller can hand a value on."""
        for name in names:
            validate_name(name)
        env_name = self.env_name(env)
        with self._op(action, env_name, names=names, changes=False) as note:
            backend = self.backend(env_name)
            yield backend.read_each(names), note  # one snapshot, where the store has them

    def list_secrets(
        self,
        env: str | None,
        prefix: str = "",
        *,
        tags: dict[str, str] | None = None,
        include_deleted: bool = False,
    ) -> list[SecretSummary]:
        env_name = self.env_name(env)
        with self._op(Action.LS, env_name, changes=False) as note:
            items = self.backend(env_name).list_secrets(prefix, include_deleted=include_deleted)
            items = self.gate.scoped(env_name, items, lambda s: s.name)
            if tags:
                items = [s for s in items if all(s.tags.get(k) == v for k, v in tags.items())]
            note.details = {"prefix": prefix, "count": len(items)} if prefix else {}
        return items

    def current_values(self, env: str | None, *, action: Action = Action.READ) -> dict[str, bytes]:
        """Name -> current value of every (not deleted) secret of ``env``, by name;
        one audited operation whose event names them all."""
        env_name = self.env_name(env)
        with self._op(action, env_name, changes=False) as note:
            values = self.backend(env_name).current_values()
            values = {k: values[k] for k in self.gate.scoped(env_name, list(values), str)}
            note.names = sorted(values)
        return values

    def history(self, env: str | None, name: str) -> list[SecretVersion]:
        validate_name(name)
        env_name = self.env_name(env)
        with self._op(Action.HISTORY, env_name, name=name, changes=False):
            return self.backend(env_name).history(name)

    def delete(
        self,
        env: str | None,
        name: str,
        *,
        purge: bool = False,
        recovery_days: int | None = None,
    ) -> None:
        validate_name(name)
        if purge and recovery_days is not None:
            raise UsageError(
                "--recovery-days does not apply to --purge", hint="give one or the other"
            )
        env_name = self.env_name(env)
        with self._op(Action.RM, env_name, name=name, needs="admin" if purge else None) as note:
            backend = self.backend(env_name)
            if purge:
                note.details = {"purge": True}
                backend.purge(name)
            elif recovery_days is not None:
                note.details = {"recovery_days": recovery_days}
                backend.schedule_deletion(name, recovery_days)
            else:
                backend.delete(name)

    def restore(self, env: str | None, name: str) -> SecretSummary:
        validate_name(name)
        env_name = self.env_name(env)
        with self._op(Action.RESTORE, env_name, name=name) as note:
            summary = self.backend(env_name).restore(name)
            note.version = summary.version
        return summary

    @contextlib.contextmanager
    def transaction(self, env: str | None, *, action: Action, names: list[str]) -> Iterator[None]:
        """``with manager.transaction(env, action=Action.IMPORT, names=...): ...puts...``:
        all or nothing where the backend can do it (the local vault; see
        SecretBackend.transaction), audited as one operation (its event names
        every secret; each put inside also records its own)."""
        env_name = self.env_name(env)
        with self._op(action, env_name, names=names), self.backend(env_name).transaction():
            yield

    def rollback(
        self, env: str | None, name: str, to_version: int, *, if_version: int | None = None
    ) -> WriteResult:
        """A new version whose value is ``to_version``'s (as Vault's kv rollback).

        Rolling back to the current version is a no-op: nothing is written and the
        result has ``changed=False`` (still an audited ``rollback`` event, ok, with
        ``details.changed`` false). ``if_version``: only if the current version is
        that one (VersionConflict, exit 7, otherwise; also for the no-op)."""
        validate_name(name)
        env_name = self.env_name(env)
        # one time budget for the reads and the write; a failure before the put wrote nothing
        op = self._op(Action.ROLLBACK, env_name, name=name)
        with op as note, not_applied(), self.backend(env_name).budget():
            note.details = {"to": to_version}
            backend = self.backend(env_name)
            current = backend.get(name)
            if if_version is not None and if_version != current.version:
                raise VersionConflict(
                    f"secret '{name}' is at version {current.version}, not {if_version}"
                )
            if to_version == current.version:
                note.version = current.version
                note.details["changed"] = False
                return WriteResult(name, env_name, current.version, changed=False)
            old = backend.get(name, to_version)
            result = backend.put(
                name, old.value, actor=self.context.actor, if_version=current.version
            )
            note.version = result.version
        return result

    def audit_log(self) -> LocalAuditLog:
        """The local vault's audit log (audit/local_log.py), for the audit commands."""
        sink = self.audit.sink
        if not isinstance(sink, LocalAuditLog):
            raise VaultNotFound(
                f"no audit log: there is no local vault at {self.profile.vault_file}",
                step=NextStep("init_local_vault"),
            )
        return sink

    # --- ReflectiveModule ------------------------------------------------

    def get_module_status(self) -> dict[str, Any]:
        return {
            "name": "SecretsManager",
            "version": __version__,
            "profile": self.profile.path,
            "default_env": self.profile.default_env,
            "vault_file": self.profile.vault_file,
            "environments": {name: self._env_status(name) for name in self.profile.environments},
            "audit": self.audit.get_module_status(),
        }

    def _env_status(self, name: str) -> dict[str, Any]:
        config = self.profile.environment(name)
        if config.backend == "local" and not exists(self.profile.vault_file):
            return {"backend": "local", "initialized": False, "secrets": 0}
        try:
            return self.backend(name).get_module_status()
        except BsecretsError as exc:
            return {"backend": config.backend, "error": exc.message}

    def get_health_indicators(self) -> list[HealthIndicator]:
        """The profile, the local vault (once) and each remote environment's indicators."""
        indicators = [HealthIndicator("profile", True, self.profile.path)]
        vault_file = self.profile.vault_file
        local_done = False
        for name, config in self.profile.environments.items():
            if config.backend == "local":
                if local_done:
                    continue
                local_done = True
                if not exists(vault_file):
                    indicators.append(
                        HealthIndicator("vault_file", False, f"no vault at {vault_file}")
                    )
                    continue
                indicators += self.backend(name).get_health_indicators()
                vault_id = self.local_vault().vault_id if self.creds.session_token else b""
                indicators.append(
                    session.indicator(self.creds.session_token, vault_id, self.clock())
                )
                indicators += self.audit.get_health_indicators()
                continue
            try:
                remote = self.backend(name).get_health_indicators()
            except BsecretsError as exc:
                remote = [HealthIndicator("backend", False, exc.message)]
            indicators += [
                HealthIndicator(f"{name}.{i.name}", i.ok, i.detail, i.value) for i in remote
            ]
        return indicators
