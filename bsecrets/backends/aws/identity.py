"""Who an AWS environment's credentials are and when they end, for ``bsecrets doctor``:
Secrets Manager answering (ListSecrets, at most one entry), STS GetCallerIdentity, and
what botocore (or bsecrets' own role assumption) knows of the credentials' expiry.

Facts only; services/doctor/backends.py judges them. Never a key, a session token or
the caller's UserId (an access key id for an IAM user): the ARN, the account, the
region and where the credentials come from. botocore keeps the expiry of refreshable
credentials (SSO, an assumed role in the AWS config, a container or instance role,
AWS_CREDENTIAL_EXPIRATION) in a private attribute, read here and nowhere else; static
keys have none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bsecrets.backends.aws.api import SM
from bsecrets.backends.aws.errors import EXPIRED, aws_code
from bsecrets.errors import BackendUnavailable, BsecretsError, Denied
from bsecrets.ports import BackendIdentity
from bsecrets.timeutil import iso

if TYPE_CHECKING:
    from bsecrets.backends.aws.api import SecretsApi

# AWS's answers that mean the credentials themselves were not accepted (unlike a plain
# AccessDenied: valid credentials whose policy does not allow the call)
NOT_ACCEPTED = EXPIRED | frozenset(
    {
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
ANSWERS = "Secrets Manager answers"


def identity(api: SecretsApi, limit: float) -> BackendIdentity:
    """Secrets Manager, then STS, each call within ``limit`` seconds."""
    s = api.settings
    base = BackendIdentity(endpoint=s.endpoint(SM) or f"Secrets Manager in {s.region}")
    ended = _ended(api)
    if ended is not None:
        return base._replace(refused=ended)
    try:
        with api.budget.scope(limit):
            api.call(SM, "list_secrets", "checking Secrets Manager", MaxResults=1)
        service = ANSWERS
    except BackendUnavailable as exc:
        return base._replace(down=exc)
    except Denied as exc:
        code = aws_code(exc)
        if code is None:  # refused before asking: no usable credentials
            return base._replace(refused=exc)
        if code in NOT_ACCEPTED:
            return base._replace(refused=exc, service=ANSWERS)
        service = f"{ANSWERS} (ListSecrets is not allowed: {code})"
    except BsecretsError as exc:
        return base._replace(refused=exc, service=ANSWERS)
    base = base._replace(service=service, endpoint=api.clients.client(SM).meta.endpoint_url)
    try:
        with api.budget.scope(limit):
            who = api.call("sts", "get_caller_identity", "checking the caller identity")
    except BackendUnavailable as exc:
        return base._replace(down=exc)
    except BsecretsError as exc:
        return base._replace(refused=exc)
    about = (f"account {who.get('Account', '?')}", f"region {s.region}")
    return _expiry(api, base._replace(principal=str(who.get("Arn") or "?"), about=about))


def _ended(api: SecretsApi) -> BsecretsError | None:
    """Denied when the SDK's credentials carry an expiry that has passed (botocore then
    fails every call with a RuntimeError of its own rather than an AWS error)."""
    import botocore.exceptions

    try:
        creds: Any = api.clients.session().get_credentials()
    except botocore.exceptions.BotoCoreError:
        return None  # the first call reports it, translated
    expires = getattr(creds, "_expiry_time", None)
    if expires is None or expires > api.clients.context.clock():
        return None
    method = getattr(creds, "method", "unknown")
    return Denied(
        f"the AWS credentials of environment '{api.env}' (the AWS SDK's '{method}' "
        f"credentials) ended at {iso(expires)}",
        hint="get new credentials ('aws sso login', or export new AWS_ACCESS_KEY_ID / "
        "AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN and AWS_CREDENTIAL_EXPIRATION)",
    )


def _expiry(api: SecretsApi, base: BackendIdentity) -> BackendIdentity:
    s, clients = api.settings, api.clients
    if s.role_arn:  # bsecrets assumes the role itself, again when the credentials run out
        return base._replace(
            source=f"role {s.role_arn}, assumed by bsecrets ({clients.role_source or 'sts'})",
            temporary=True,
            expires_at=clients.role_expires_at,
            renews_itself=True,
        )
    creds: Any = clients.session().get_credentials()
    if creds is None:
        return base._replace(source="no credentials found by the AWS SDK")
    method = str(getattr(creds, "method", "") or "unknown")
    source = f"the AWS SDK's '{method}' credentials"
    if s.aws_profile:
        source += f" (AWS_PROFILE={s.aws_profile})"
    expires = getattr(creds, "_expiry_time", None)  # RefreshableCredentials only
    return base._replace(
        source=source,
        temporary=bool(getattr(creds, "token", None)) or expires is not None,
        expires_at=expires,
        # botocore refreshes them itself, except from variables (read once per process)
        renews_itself=expires is not None and method != "env",
    )
