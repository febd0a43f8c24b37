"""SecretsApi: the AWS calls the adapter is made of, each one translated.

Every request goes through ``call``: botocore's client (with its own retries,
held to the operation's time budget: attempts.py), the time it took
(``last_latency_ms`` for ``bsecrets status``), and the one place botocore
errors become bsecrets errors (errors.py). A failed write says whether AWS
may have applied it (``applied``: "unknown" once an attempt may have reached
AWS, else "no"); writes.py words it for the user.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bsecrets.backends.aws.attempts import WRITES
from bsecrets.backends.aws.call_record import BudgetSpent
from bsecrets.backends.aws.clients import AwsClients
from bsecrets.backends.aws.errors import EXPIRED, REFRESH_CREDENTIALS, aws_code, translate
from bsecrets.backends.aws.versions import CURRENT, AwsVersion, number_versions
from bsecrets.errors import Denied, SecretNotFound, UsageError

if TYPE_CHECKING:
    from bsecrets.backends.aws.settings import AwsSettings
    from bsecrets.backends.budget import Budget
    from bsecrets.backends.registry import BackendContext

SM = "secretsmanager"


class SecretsApi:
    def __init__(
        self, settings: AwsSettings, context: BackendContext, budget: Budget | None = None
    ) -> None:
        self.settings = settings
        self.env = settings.env
        self.clients = AwsClients(settings, context, budget)
        self.budget = self.clients.budget
        self.last_latency_ms: float | None = None

    def call(
        self,
        service: str,
        operation: str,
        action: str,
        *,
        subject: str | None = None,
        redact: bytes | None = None,
        not_found_hint: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """One AWS request, e.g. ``call(SM, "describe_secret", "reading secret 'db'",
        SecretId=...)``; raises only bsecrets errors, each naming the AWS code."""
        import botocore.exceptions as bx

        started = time.perf_counter()
        guard = self.clients.guard
        record = guard.begin()
        try:
            client = self.clients.client(service)  # may assume the role first
            record = guard.begin()
            started = time.perf_counter()
            return dict(getattr(client, operation)(**params))
        except (bx.ClientError, bx.BotoCoreError, BudgetSpent) as exc:
            error = translate(
                exc,
                self.settings,
                action,
                subject=subject,
                redact=redact,
                not_found_hint=not_found_hint,
                record=record,
                budget=self.budget,
            )
            if self.settings.role_arn and aws_code(exc) in EXPIRED:
                self.clients.drop_cached_role()
                error.hint = "the cached role credentials were dropped; run the command again"
                error.step = None
            if _operation_name(operation) in WRITES:
                error.applied = record.applied()
            raise error from exc
        except RuntimeError as exc:
            # botocore's refresh of credentials that have ended: a RuntimeError ("...the
            # refreshed credentials are still expired"), before any request is sent
            if "expired" not in str(exc):
                raise
            raise Denied(
                f"AWS credentials have expired: {action} was not sent",
                hint=REFRESH_CREDENTIALS,
                applied="no",
            ) from None
        finally:
            self.last_latency_ms = round((time.perf_counter() - started) * 1000, 1)

    def close(self) -> None:
        self.clients.close()

    # --- secrets ------------------------------------------------------------------

    def describe(self, name: str) -> tuple[str, dict[str, Any]]:
        """(AWS name, DescribeSecret) of ``name``; SecretNotFound if AWS has no such secret."""
        sid = self.settings.secret_id(name)
        meta = self.call(
            SM, "describe_secret", f"reading secret '{name}'", subject=f"secret '{name}'",
            SecretId=sid,
        )  # fmt: skip
        return sid, meta

    def describe_or_none(self, name: str) -> tuple[str, dict[str, Any] | None]:
        try:
            return self.describe(name)
        except SecretNotFound:
            return self.settings.secret_id(name), None

    def current_id(self, name: str) -> str | None:
        """The version id AWSCURRENT is on now."""
        _sid, meta = self.describe(name)
        stages = meta.get("VersionIdsToStages") or {}
        return next((v for v, labels in stages.items() if CURRENT in labels), None)

    def versions(self, name: str, sid: str) -> list[AwsVersion]:
        """Every version AWS still keeps (labelled or not), numbered, by number."""
        entries: list[dict[str, Any]] = []
        params: dict[str, Any] = {"SecretId": sid, "IncludeDeprecated": True, "MaxResults": 100}
        while True:
            page = self.call(
                SM, "list_secret_version_ids", f"listing the versions of secret '{name}'",
                subject=f"secret '{name}'", **params,
            )  # fmt: skip
            entries.extend(page.get("Versions") or [])
            if not page.get("NextToken"):
                return number_versions(entries)
            params["NextToken"] = page["NextToken"]

    def number_of(self, name: str, sid: str, version_id: str) -> int:
        """The number of a version another client wrote (its id carries none)."""
        return next((v.number for v in self.versions(name, sid) if v.version_id == version_id), 0)

    # --- KMS ------------------------------------------------------------------------

    def check_kms_key(self) -> dict[str, Any] | None:
        """The environment's KMS key's metadata (None: the AWS managed key), or an
        error unless the key can encrypt: NotFound, Denied (disabled, pending
        deletion), UsageError (not a symmetric encryption key)."""
        key = self.settings.kms_key_id
        if not key:
            return None
        response = self.call(
            "kms", "describe_key", f"checking KMS key '{key}'", subject=f"KMS key '{key}'",
            not_found_hint=f"create the key or alias in {self.settings.region}, or fix "
            f"environments.{self.env}.kms_key_id in the profile",
            KeyId=key,
        )  # fmt: skip
        meta: dict[str, Any] = response.get("KeyMetadata") or {}
        state = meta.get("KeyState", "Enabled")
        if state != "Enabled":
            raise Denied(
                f"KMS key '{key}' of environment '{self.env}' is {state} (KMS KeyState)",
                hint="enable the key or cancel its deletion, or point kms_key_id to another key",
            )
        spec = meta.get("KeySpec", "SYMMETRIC_DEFAULT")
        usage = meta.get("KeyUsage", "ENCRYPT_DECRYPT")
        if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
            raise UsageError(
                f"KMS key '{key}' is {spec}/{usage}; Secrets Manager needs a symmetric "
                "encryption key"
            )
        return meta


def _operation_name(method: str) -> str:
    """botocore's method name -> the AWS operation (``put_secret_value`` -> PutSecretValue)."""
    return "".join(part.title() for part in method.split("_"))
