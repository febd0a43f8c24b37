"""AWSAdapter: the SecretBackend of one environment in AWS Secrets Manager.

Secret ``NAME`` is the AWS secret ``<prefix>NAME``, tagged ``bsecrets:env``,
created under the environment's KMS key. Reads always name the version:
``VersionStage=AWSCURRENT`` or a ``VersionId`` (moto can return a stale
value without one; on AWS it costs nothing). Writes: writes.py.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from bsecrets.backends.aws.api import SM, SecretsApi
from bsecrets.backends.aws.identity import identity as caller_identity
from bsecrets.backends.aws.settings import check_recovery_days
from bsecrets.backends.aws.staging import StagingWriter
from bsecrets.backends.aws.versions import (
    AUTHORS_TAG,
    AWSPENDING,
    CURRENT,
    UNKNOWN_AUTHOR,
    current_of,
    parse_authors,
    tag_dict,
    token_number,
    user_tags,
    utc,
    value_of,
    version_token,
)
from bsecrets.backends.budget import Budget
from bsecrets.errors import (
    BackendUnavailable,
    BsecretsError,
    InvalidName,
    NextStep,
    SecretNotFound,
    VersionNotFound,
)
from bsecrets.health import HealthIndicator
from bsecrets.models import (
    Secret,
    SecretSummary,
    SecretVersion,
    VersionState,
    WriteResult,
    validate_name,
)
from bsecrets.ports import BackendIdentity, Capability, SecretBackend
from bsecrets.timeutil import iso

if TYPE_CHECKING:
    from bsecrets.backends.aws.clients import AwsClients
    from bsecrets.backends.aws.settings import AwsSettings
    from bsecrets.backends.registry import BackendContext

HEALTH_CHECK_S = 5.0  # each check of 'bsecrets status', at most (and at most the budget)
RETENTION_HINT = "AWS removes unlabelled versions beyond 100 once they are 24 hours old"


BATCH = 20  # BatchGetSecretValue takes at most 20 secret ids


class AWSAdapter(SecretBackend):
    kind = "aws"
    capabilities = frozenset(Capability) - {Capability.FIELDS}

    def __init__(self, settings: AwsSettings, context: BackendContext) -> None:
        super().__init__(settings.env)
        self.settings = settings
        self.context = context
        self._budget = Budget(settings.timeout_s, f"environments.{settings.env}.timeout")
        self.api = SecretsApi(settings, context, self._budget)
        self.writer = StagingWriter(self.api, context.warn)

    def budget(self) -> AbstractContextManager[None]:
        return self._budget.scope()

    @property
    def clients(self) -> AwsClients:
        return self.api.clients

    def _deleted(self, name: str, meta: dict[str, Any]) -> SecretNotFound:
        when = iso(utc(meta["DeletedDate"]))
        return SecretNotFound(
            f"secret '{name}' is scheduled for deletion on {when} in environment '{self.env}'",
            step=NextStep("restore_secret_in_env", name=name, env=self.env),
        )

    # --- reads ----------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> Secret:
        with self.budget():
            return self._get(name, version)

    def _get(self, name: str, version: int | None) -> Secret:
        sid, meta = self.api.describe(name)
        if meta.get("DeletedDate"):
            raise self._deleted(name, meta)
        if version is None:
            # Always an explicit stage: without one moto may return a stale value (moto gap 1).
            response = self.api.call(
                SM, "get_secret_value", f"reading secret '{name}'", subject=f"secret '{name}'",
                SecretId=sid, VersionStage=CURRENT,
            )  # fmt: skip
            vid = str(response["VersionId"])
            number = token_number(vid) or self.api.number_of(name, sid, vid)
        else:
            response, number = self._read_version(name, sid, version), version
        tags = tag_dict(meta.get("Tags"))
        return Secret(
            name=name,
            env=self.env,
            version=number,
            value=value_of(response),
            created_at=utc(response.get("CreatedDate", 0)),
            created_by=parse_authors(tags.get(AUTHORS_TAG, "")).get(number, UNKNOWN_AUTHOR),
            tags=user_tags(tags),
            description=str(meta.get("Description") or ""),
        )

    def _read_version(self, name: str, sid: str, number: int) -> dict[str, Any]:
        missing = VersionNotFound(
            f"secret '{name}' has no version {number} in environment '{self.env}'",
            hint=RETENTION_HINT,
            step=NextStep("list_kept_versions", name=name, store="AWS"),
        )
        action, subject = f"reading version {number} of secret '{name}'", f"secret '{name}'"
        if number >= 1:
            try:  # a version bsecrets wrote: its id is known without listing
                return self.api.call(
                    SM, "get_secret_value", action, subject=subject,
                    SecretId=sid, VersionId=version_token(number),
                )  # fmt: skip
            except SecretNotFound:
                pass
        found = next((v for v in self.api.versions(name, sid) if v.number == number), None)
        if found is None or token_number(found.version_id) is not None:
            raise missing
        try:
            return self.api.call(
                SM, "get_secret_value", action, subject=subject,
                SecretId=sid, VersionId=found.version_id,
            )  # fmt: skip
        except SecretNotFound as exc:
            raise missing from exc

    def values_of(self, names: list[str]) -> dict[str, bytes]:
        """BatchGetSecretValue, 20 secrets per request. A value AWS does not return as
        AWSCURRENT's (moto may answer a stale version: moto gap 1) is read one by one."""
        out: dict[str, bytes] = {}
        with self.budget():
            for start in range(0, len(names), BATCH):
                chunk = names[start : start + BATCH]
                ids = {self.settings.secret_id(n): n for n in chunk}
                found = self.api.call(
                    SM, "batch_get_secret_value", f"reading {len(chunk)} secrets",
                    SecretIdList=list(ids),
                )  # fmt: skip
                for entry in found.get("SecretValues") or []:
                    name = ids.get(str(entry.get("Name")))
                    if name is not None and CURRENT in (entry.get("VersionStages") or []):
                        out[name] = value_of(entry)
                for name in chunk:
                    if name not in out:
                        try:
                            out[name] = self._get(name, None).value
                        except SecretNotFound:
                            continue
        return out

    def list_secrets(
        self, prefix: str = "", *, include_deleted: bool = False
    ) -> list[SecretSummary]:
        with self.budget():
            return self._list(prefix, include_deleted)

    def _list(self, prefix: str, include_deleted: bool) -> list[SecretSummary]:
        full = self.settings.prefix + prefix
        params: dict[str, Any] = {"IncludePlannedDeletion": include_deleted, "MaxResults": 100}
        if full:
            params["Filters"] = [{"Key": "name", "Values": [full]}]
        out: list[SecretSummary] = []
        while True:
            page = self.api.call(SM, "list_secrets", "listing secrets", **params)
            for entry in page.get("SecretList") or []:
                summary = self._summary(entry, full)
                if summary is not None:
                    out.append(summary)
            if not page.get("NextToken"):
                return sorted(out, key=lambda s: s.name)
            params["NextToken"] = page["NextToken"]

    def _summary(self, entry: dict[str, Any], full_prefix: str) -> SecretSummary | None:
        aws_name = str(entry.get("Name") or "")
        if not aws_name.startswith(full_prefix):  # AWS's name filter ignores case
            return None
        name = aws_name[len(self.settings.prefix) :]
        try:
            validate_name(name)
        except InvalidName:
            return None  # under the prefix, but not a name bsecrets can address
        stages = entry.get("SecretVersionsToStages") or {}
        vid = next((v for v, labels in stages.items() if CURRENT in labels), None)
        number = 0 if vid is None else token_number(vid) or self.api.number_of(name, aws_name, vid)
        return SecretSummary(
            name=name,
            version=number,
            updated_at=utc(entry.get("LastChangedDate") or entry.get("CreatedDate") or 0),
            tags=user_tags(tag_dict(entry.get("Tags"))),
            deleted=bool(entry.get("DeletedDate")),
        )

    def history(self, name: str) -> list[SecretVersion]:
        with self.budget():
            return self._history(name)

    def _history(self, name: str) -> list[SecretVersion]:
        sid, meta = self.api.describe(name)
        deleted = bool(meta.get("DeletedDate"))
        authors = parse_authors(tag_dict(meta.get("Tags")).get(AUTHORS_TAG, ""))
        out = []
        for v in self.api.versions(name, sid):
            if v.in_flight:
                continue  # a put still (or never) making it current
            if v.current:
                state = VersionState.DELETED if deleted else VersionState.CURRENT
            elif AWSPENDING in v.stages:
                state = VersionState.PENDING
            else:
                state = VersionState.PREVIOUS
            out.append(
                SecretVersion(
                    version=v.number,
                    created_at=v.created_at,
                    created_by=authors.get(v.number, UNKNOWN_AUTHOR),
                    state=state,
                )
            )
        return out

    # --- writes -----------------------------------------------------------------

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
            return self.writer.put(
                name, value, actor=actor, tags=tags, description=description, if_version=if_version
            )

    def stage(self, name: str, value: bytes, *, actor: str) -> int | None:
        with self.write_operation():
            return self.writer.stage(name, value, actor)

    def make_current(self, name: str, version: int, *, if_version: int) -> WriteResult:
        with self.write_operation():
            return self.writer.make_current(name, version, if_version)

    def unstage(self, name: str, version: int) -> None:
        with self.write_operation():
            self.writer.unstage(name, version)

    def delete(self, name: str, *, recovery_days: int | None = None) -> None:
        """Schedule deletion after a recovery window (default 30 days, 7 to 30)."""
        days = check_recovery_days(
            self.settings.recovery_days if recovery_days is None else recovery_days
        )
        with self.write_operation():
            sid, meta = self.api.describe(name)
            if meta.get("DeletedDate"):
                raise SecretNotFound(
                    f"secret '{name}' is already scheduled for deletion",
                    step=NextStep("restore_secret_in_env", name=name, env=self.env),
                )
            self._change(
                name, "delete_secret", f"deleting secret '{name}'",
                SecretId=sid, RecoveryWindowInDays=days,
            )  # fmt: skip

    def schedule_deletion(self, name: str, recovery_days: int) -> None:
        """``rm --recovery-days N``: delete after N days (7 to 30), else exit 2."""
        self.delete(name, recovery_days=recovery_days)

    def restore(self, name: str) -> SecretSummary:
        with self.write_operation():
            sid, meta = self.api.describe(name)
            if not meta.get("DeletedDate"):
                raise SecretNotFound(f"secret '{name}' is not deleted; nothing to restore")
            self._change(name, "restore_secret", f"restoring secret '{name}'", SecretId=sid)
        try:  # restored: what follows only fills in the summary
            current = current_of(self.api.versions(name, sid))
            number = current.number if current else 0
        except BsecretsError:
            stages = meta.get("VersionIdsToStages") or {}
            vid = next((v for v, labels in stages.items() if CURRENT in labels), "")
            number = token_number(vid) or 0
        return SecretSummary(
            name=name,
            version=number,
            updated_at=self.context.clock(),
            tags=user_tags(tag_dict(meta.get("Tags"))),
            deleted=False,
        )

    def purge(self, name: str) -> None:
        with self.write_operation():
            sid, _meta = self.api.describe(name)
            self._change(
                name, "delete_secret", f"purging secret '{name}'",
                SecretId=sid, ForceDeleteWithoutRecovery=True,
            )  # fmt: skip

    # --- AWS's own rotation (services/rotation.py) ------------------------------

    def rotation_service(self, name: str) -> dict[str, Any] | None:
        _sid, meta = self.api.describe(name)
        function = meta.get("RotationLambdaARN")
        if not meta.get("RotationEnabled") or not function:
            return None
        rules = meta.get("RotationRules") or {}
        return {"lambda": str(function), "every_days": rules.get("AutomaticallyAfterDays")}

    def schedule_rotation(self, name: str, function: str, every_days: int) -> None:
        """RotateSecret with a Lambda and rules, not rotating now: AWS rotates from then on."""
        with self.write_operation():
            sid, _meta = self.api.describe(name)
            self._change(
                name, "rotate_secret", f"scheduling the rotation of secret '{name}'",
                SecretId=sid, RotationLambdaARN=function,
                RotationRules={"AutomaticallyAfterDays": every_days}, RotateImmediately=False,
            )  # fmt: skip

    def rotate_with_service(self, name: str) -> None:
        """RotateSecret now, with the Lambda already configured (its steps are AWS's)."""
        with self.write_operation():
            sid, _meta = self.api.describe(name)
            self._change(name, "rotate_secret", f"rotating secret '{name}'", SecretId=sid)

    def _change(self, name: str, operation: str, action: str, **params: Any) -> None:
        """One call that changes ``name``; a failure that may have reached AWS says how
        to check (the error of a call AWS refused says that nothing was applied)."""
        try:
            self.api.call(SM, operation, action, subject=f"secret '{name}'", **params)
        except BsecretsError as exc:
            if exc.applied != "unknown":
                raise
            raise type(exc)(
                f"{exc.message}; the write may have been applied: check with "
                f"'bsecrets history {name} -e {self.env}'",
                hint="look before retrying",
                applied="unknown",
            ) from exc

    def close(self) -> None:
        self.api.close()

    # --- ReflectiveModule -------------------------------------------------------

    def get_module_status(self) -> dict[str, Any]:
        """Configuration and figures; makes no AWS call."""
        s = self.settings
        return {
            "name": f"aws:{self.env}",
            "backend": self.kind,
            "region": s.region,
            "prefix": s.prefix or "(none)",
            "endpoint": s.endpoint(SM) or "default",
            "kms_key": s.kms_key_id or "aws/secretsmanager",
            "role": s.role_arn or "none",
            "retries": f"{s.retry_mode} x{s.max_attempts}",
            "timeout": f"{s.timeout_s:g}s",
            "last_latency_ms": self.api.last_latency_ms,
        }

    def get_health_indicators(self) -> list[HealthIndicator]:
        """Reachability, access, caller identity, KMS key state, last latency."""
        where = self.settings.endpoint(SM) or f"Secrets Manager in {self.settings.region}"
        out: list[HealthIndicator] = []
        try:
            with self._budget.scope(HEALTH_CHECK_S):
                self.api.call(SM, "list_secrets", "checking Secrets Manager", MaxResults=1)
            out.append(HealthIndicator("reachable", True, where, self.api.last_latency_ms))
            out.append(HealthIndicator("access", True, "ListSecrets allowed"))
        except BackendUnavailable as exc:
            return [HealthIndicator("reachable", False, exc.message)]
        except BsecretsError as exc:
            out.append(HealthIndicator("reachable", True, where, self.api.last_latency_ms))
            out.append(HealthIndicator("access", False, exc.message))
        out.append(self._indicator("identity", self._identity))
        out.append(self._indicator("kms_key", self._kms_state))
        if self.settings.role_arn:
            source = self.clients.role_source or "not assumed"
            until = self.clients.role_expires_at
            detail = f"{self.settings.role_arn} ({source}" + (
                f", until {iso(until)})" if until else ")"
            )
            out.append(HealthIndicator("role", self.clients.role_source != "", detail))
        latency = self.api.last_latency_ms
        out.append(HealthIndicator("latency", True, f"{latency} ms (last call)", latency))
        return out

    def identity(self) -> BackendIdentity:
        """Secrets Manager answering, STS's caller identity, the credentials' expiry."""
        return caller_identity(self.api, HEALTH_CHECK_S)

    def _indicator(self, name: str, probe: Any) -> HealthIndicator:
        try:
            with self._budget.scope(HEALTH_CHECK_S):
                return HealthIndicator(name, True, str(probe()))
        except BsecretsError as exc:
            return HealthIndicator(name, False, exc.message)

    def _identity(self) -> str:
        response = self.api.call("sts", "get_caller_identity", "checking the caller identity")
        return str(response.get("Arn", ""))

    def _kms_state(self) -> str:
        meta = self.api.check_kms_key()
        if meta is None:
            return "aws/secretsmanager (the AWS managed key)"
        return f"{self.settings.kms_key_id}: {meta.get('KeyState', 'Enabled')}"
