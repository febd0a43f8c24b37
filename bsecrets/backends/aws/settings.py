"""What an AWS environment is configured with, settled once: the profile's keys
first, then the AWS SDK's own variables (docs/cli.md). No boto3 here, except to read
the region from ~/.aws/config when neither the profile nor the environment
names one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bsecrets.backends.budget import DEFAULT_TIMEOUT_S, timeout_from
from bsecrets.errors import NextStep, UsageError, ValueTooLarge

if TYPE_CHECKING:
    from bsecrets.config.profile import EnvironmentConfig

# AWS limits (docs.aws.amazon.com/secretsmanager/latest/apireference, service model).
MAX_SECRET_NAME = 512  # CreateSecret Name: 1..512 characters
MAX_SECRET_BYTES = 65536  # SecretString / SecretBinary: at most 64 KiB
MAX_TAGS = 50  # per secret, of which bsecrets keeps two (bsecrets:env, bsecrets:authors)
RECOVERY_DAYS_MIN, RECOVERY_DAYS_MAX = 7, 30  # DeleteSecret RecoveryWindowInDays
DEFAULT_RECOVERY_DAYS = 30

# Retries and timeouts: botocore's own retry modes, and over them the
# operation's time budget (``timeout:``, default 30 s; backends/budget.py):
# each attempt's timeouts are at most these and at most what is left of it,
# and no retry starts or sleeps past it (clients.py).
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 4.0
DEFAULT_MAX_ATTEMPTS = 3
RETRY_MODES = ("standard", "adaptive")

_AWS_NAME_CHARS = re.compile(r"[A-Za-z0-9/_+=.@-]*")  # what AWS allows in a secret name
_SERVICE_ENDPOINT_VARS = {
    "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "kms": "AWS_ENDPOINT_URL_KMS",
    "sts": "AWS_ENDPOINT_URL_STS",
}


def check_recovery_days(days: int) -> int:
    """``days`` if AWS accepts it as a recovery window, else UsageError (exit 2)."""
    if not RECOVERY_DAYS_MIN <= days <= RECOVERY_DAYS_MAX:
        raise UsageError(
            f"the recovery window must be {RECOVERY_DAYS_MIN} to {RECOVERY_DAYS_MAX} days, "
            f"not {days}",
            hint=f"AWS keeps a deleted secret {RECOVERY_DAYS_MIN} to {RECOVERY_DAYS_MAX} days",
            step=NextStep("purge_at_once"),
        )
    return days


def check_value_size(value: bytes) -> None:
    if len(value) > MAX_SECRET_BYTES:
        raise ValueTooLarge(
            f"the value is {len(value):,} bytes; AWS Secrets Manager stores at most "
            f"{MAX_SECRET_BYTES:,} bytes (64 KiB)",
            hint="store large files elsewhere (S3, a volume) and keep their key or path here",
        )


@dataclass(frozen=True)
class AwsSettings:
    """One AWS environment, resolved. Immutable; holds no credentials."""

    env: str
    region: str
    prefix: str = ""
    kms_key_id: str | None = None
    role_arn: str | None = None
    endpoint_url: str | None = None  # the profile's, for every service
    service_endpoints: Mapping[str, str] | None = None  # AWS_ENDPOINT_URL[_SERVICE]
    aws_profile: str | None = None  # AWS_PROFILE
    retry_mode: str = "standard"
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    recovery_days: int = DEFAULT_RECOVERY_DAYS
    # Non-secret identifiers of the source credentials (AWS_PROFILE, access key
    # id): part of the key under which assumed-role credentials are cached.
    source_identity: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S  # one operation's time budget (``timeout:``)

    @classmethod
    def resolve(cls, config: EnvironmentConfig, environ: Mapping[str, str]) -> AwsSettings:
        options = config.options
        env = config.name
        prefix = str(options.get("prefix") or "")
        if not _AWS_NAME_CHARS.fullmatch(prefix) or len(prefix) >= MAX_SECRET_NAME:
            raise UsageError(
                f"environments.{env}.prefix: {prefix[:60]!r} cannot start an AWS secret name",
                hint="use letters, digits and / _ + = . @ - (at most 511 characters)",
            )
        profile_name = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or None
        region = (
            options.get("region")
            or environ.get("AWS_REGION")
            or environ.get("AWS_DEFAULT_REGION")
            or _region_from_aws_config(profile_name)
        )
        if not region:
            raise UsageError(
                f"no AWS region for environment '{env}'",
                hint=f"set 'region:' under environments.{env} in the profile, "
                "or export AWS_REGION (e.g. AWS_REGION=eu-west-1)",
            )
        mode = environ.get("AWS_RETRY_MODE", "standard")
        attempts = environ.get("AWS_MAX_ATTEMPTS", "")
        return cls(
            env=env,
            region=str(region),
            prefix=prefix,
            kms_key_id=options.get("kms_key_id") or None,
            role_arn=options.get("role_arn") or None,
            endpoint_url=options.get("endpoint_url") or None,
            service_endpoints={
                service: url
                for service, var in _SERVICE_ENDPOINT_VARS.items()
                if (url := environ.get(var) or environ.get("AWS_ENDPOINT_URL"))
            },
            aws_profile=profile_name,
            retry_mode=mode if mode in RETRY_MODES else "standard",
            max_attempts=int(attempts)
            if attempts.isdigit() and int(attempts) > 0
            else DEFAULT_MAX_ATTEMPTS,
            source_identity=f"{profile_name or ''}:{environ.get('AWS_ACCESS_KEY_ID', '')}",
            timeout_s=timeout_from(options, env),
        )

    def endpoint(self, service: str) -> str | None:
        """The endpoint for ``service``: the profile's, else AWS_ENDPOINT_URL[_SERVICE]."""
        if self.endpoint_url:
            return self.endpoint_url
        return (self.service_endpoints or {}).get(service)

    def endpoint_sources(self, environ: Mapping[str, str]) -> list[tuple[str, str]]:
        """(URL, where it came from) of each endpoint in use: the profile's, else
        AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL; empty for AWS's own endpoints."""
        if self.endpoint_url:
            return [(self.endpoint_url, f"environments.{self.env}.endpoint_url")]
        found = []
        for var in _SERVICE_ENDPOINT_VARS.values():
            source = var if environ.get(var) else "AWS_ENDPOINT_URL"
            if url := environ.get(source):
                found.append((url, source))
        return found

    def secret_id(self, name: str) -> str:
        """The AWS name of secret ``name``; UsageError (exit 2) when AWS would reject it."""
        full = self.prefix + name
        if len(full) > MAX_SECRET_NAME:
            raise UsageError(
                f"secret name '{name[:60]}' is {len(full)} characters with the prefix of "
                f"environment '{self.env}'; AWS allows {MAX_SECRET_NAME}",
                hint=f"shorten the name or environments.{self.env}.prefix",
            )
        return full


def _region_from_aws_config(profile_name: str | None) -> str | None:
    """The region of the AWS config file's profile (~/.aws/config), if any."""
    import botocore.exceptions
    import botocore.session

    try:
        session = botocore.session.Session(profile=profile_name)
        region = session.get_config_variable("region")
    except botocore.exceptions.ProfileNotFound:
        raise UsageError(
            f"AWS profile '{profile_name}' (AWS_PROFILE) is not in the AWS config files",
            hint="check AWS_PROFILE, or ~/.aws/config and ~/.aws/credentials",
        ) from None
    return str(region) if region else None
