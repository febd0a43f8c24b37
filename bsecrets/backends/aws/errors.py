"""botocore errors -> bsecrets errors, in one table (STYLE.md 2 and 4).

Every message names the AWS error code (or botocore's exception class) and
the environment; none holds a secret value: AWS's own message is included
only after the value being written, if any, is cut out of it. Retries are
botocore's (standard or adaptive mode): an error reaching this table has
already been retried as far as the mode allows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bsecrets.backends.aws.call_record import BudgetSpent
from bsecrets.errors import (
    AlreadyExists,
    BackendUnavailable,
    BsecretsError,
    Denied,
    NextStep,
    NotFound,
    SecretNotFound,
    UsageError,
)

if TYPE_CHECKING:
    from bsecrets.backends.aws.call_record import CallRecord
    from bsecrets.backends.aws.settings import AwsSettings
    from bsecrets.backends.budget import Budget

NOT_FOUND = frozenset({"ResourceNotFoundException", "NotFoundException"})
DENIED = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "RegionDisabledException",
        # KMS, directly or through Secrets Manager
        "DecryptionFailure",
        "EncryptionFailure",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "DisabledException",
        "KeyUnavailableException",
    }
)
# Credentials that a fresh role session may fix (cached role credentials are dropped).
REFRESH_CREDENTIALS = (
    "refresh the AWS credentials (AWS_PROFILE, 'aws sso login', "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN)"
)
EXPIRED = frozenset(
    {
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)
# AWS's names for "slow down": the request was not acted on.
THROTTLED = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    }
)
UNAVAILABLE = THROTTLED | frozenset(
    {
        "ProvisionedThroughputExceededException",
        "InternalServiceError",
        "InternalServiceErrorException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "DependencyTimeoutException",
        "KMSInternalException",
    }
)
USAGE = frozenset(
    {
        "InvalidParameterException",
        "ValidationException",
        "InvalidRequestException",
        "InvalidNextTokenException",
        "MalformedPolicyDocumentException",
    }
)
CONFLICT = frozenset({"ResourceExistsException"})


def aws_code(error: BaseException | None) -> str | None:
    """The AWS error code behind a translated error (or of a ClientError itself)."""
    seen = 0
    while error is not None and seen < 5:
        response = getattr(error, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code"):
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            return _code_and_message(response["Error"], status)[0]
        error, seen = error.__cause__, seen + 1
    return None


def _clean(message: str, redact: bytes | None) -> str:
    text = " ".join(str(message).split())
    if redact:
        for form in {redact.decode("utf-8", "replace"), repr(redact)}:
            if len(form) >= 1:
                text = text.replace(form, "[value]")
    return text[:240]


def _code_and_message(error: dict[str, Any], status: int) -> tuple[str, str]:
    """AWS's error code and message. A body botocore could not read (its code is then
    the HTTP status) may be an XML error document (moto answers IAM denials of JSON
    services so): its <Code> and <Message> are taken, never the document itself."""
    import re

    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    if code.isdigit():
        found = re.search(r"<Code>([A-Za-z0-9.]{1,100})</Code>", message)
        said = re.search(r"<Message>([^<]{0,500})</Message>", message)
        code = found.group(1) if found else f"HTTP {status or code}"
        message = said.group(1) if said else ""
    return code, message


def translate(
    exc: Exception,
    settings: AwsSettings,
    action: str,
    *,
    subject: str | None = None,
    redact: bytes | None = None,
    not_found_hint: str | None = None,
    record: CallRecord | None = None,
    budget: Budget | None = None,
) -> BsecretsError:
    """The bsecrets error for a botocore exception raised while doing ``action``
    (e.g. "reading secret 'db'"); ``subject`` ("secret 'db'") names what was
    not found. ``record``: the call's attempts; ``budget``: the time budget it
    ran under (named when it ran out). The caller raises it ``from exc``."""
    import botocore.exceptions as bx

    env = settings.env
    where = f"in environment '{env}'"
    n = record.attempts if record is not None else settings.max_attempts
    tries = f"{n} attempt{'' if n == 1 else 's'}"
    spent = budget is not None and (
        (record is not None and record.out_of_time) or budget.remaining() <= 0.05
    )
    if spent and budget is not None:
        tries += f"; {budget.describe()} ran out"
    if isinstance(exc, BudgetSpent):
        after = f" after {n} attempt{'' if n == 1 else 's'}" if n else ""
        spent_what = budget.describe() if budget is not None else "the time budget"
        return BackendUnavailable(
            f"no time left for {action} {where}{after}: {spent_what} ran out",
            hint=budget.hint() if budget is not None else None,
        )
    if isinstance(exc, bx.ClientError):
        error: dict[str, Any] = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code, raw = _code_and_message(error, status)
        message = _clean(raw, redact)
        detail = f"({code})" + (f": {message}" if message else "")
        if code in NOT_FOUND:
            what = subject or "the resource"
            cls = SecretNotFound if what.startswith("secret ") else NotFound
            return cls(
                f"{what} not found {where} ({code})",
                hint=not_found_hint,
                step=None if not_found_hint else NextStep("list_secrets_in_env", env=env),
            )
        if code in DENIED or (code not in NOT_FOUND and status in (401, 403)):
            if code in EXPIRED:
                return Denied(f"AWS denied {action} {where} {detail}", hint=REFRESH_CREDENTIALS)
            return Denied(
                f"AWS denied {action} {where} {detail}",
                step=NextStep("check_aws_policy", env=env),
            )
        if code in UNAVAILABLE or status >= 500:
            return BackendUnavailable(
                f"AWS was unavailable for {action} {where} after {tries} {detail}",
                hint=budget.hint()
                if spent and budget is not None
                else "try again later; AWS_MAX_ATTEMPTS and AWS_RETRY_MODE=adaptive "
                "allow more retries",
            )
        if code in CONFLICT:
            return AlreadyExists(
                f"{action} {where} conflicted {detail}",
                hint="another writer got there first; read the current state and retry",
            )
        if code in USAGE:
            return UsageError(
                f"AWS rejected {action} {where} {detail}",
                hint=f"check the name, the tags and environments.{env} in the profile",
            )
        hint = "look the error code up in the AWS Secrets Manager API reference"
        if code == "LimitExceededException":
            hint = "an AWS quota was reached (e.g. versions per secret); see docs/backends/aws.md"
        return BsecretsError(f"AWS failed {action} {where} {detail}", hint=hint)
    name = type(exc).__name__
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return Denied(
            f"no usable AWS credentials for {action} {where} ({name})",
            hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or run where an instance or task role is available",
        )
    if isinstance(exc, bx.TokenRetrievalError | bx.SSOError | bx.CredentialRetrievalError):
        return Denied(
            f"could not get AWS credentials for {action} {where} ({name})",
            hint="log in again ('aws sso login') or check the credential_process",
        )
    if isinstance(exc, bx.ProfileNotFound):
        return UsageError(
            f"AWS profile '{settings.aws_profile}' not found ({name})",
            hint="check AWS_PROFILE, or ~/.aws/config and ~/.aws/credentials",
        )
    if isinstance(exc, bx.ParamValidationError):  # its text may quote parameter values
        return UsageError(
            f"invalid parameters for {action} {where} ({name})",
            hint="check the name, the tags and the description",
        )
    if isinstance(exc, bx.HTTPClientError | bx.EndpointConnectionError | bx.ConnectionError):
        target = settings.endpoint("secretsmanager") or f"AWS in {settings.region}"
        hint = "check the network, the region and endpoint_url (or AWS_ENDPOINT_URL)"
        if spent and budget is not None:
            hint += f"; or raise {budget.key} if AWS is only slow"
        if isinstance(exc, bx.ReadTimeoutError):
            return BackendUnavailable(
                f"no answer from {target} for {action} {where} after {tries} ({name})", hint=hint
            )
        return BackendUnavailable(
            f"cannot reach {target} for {action} {where} after {tries} ({name})", hint=hint
        )
    return BsecretsError(
        f"AWS SDK error while {action} {where} ({name})",
        step=NextStep("rerun_with_debug"),
    )
