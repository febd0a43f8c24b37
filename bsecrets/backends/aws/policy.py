"""The IAM policy that confines a principal to one environment: its secrets
(the name prefix) and its KMS key, read-write or read-only.

Built from the profile alone, without calling AWS. Secrets Manager appends
``-XXXXXX`` to every secret's ARN, hence the trailing ``*`` on the prefix.
"""

from __future__ import annotations

from typing import Any

from bsecrets.backends.aws.versions import ENV_TAG
from bsecrets.errors import UsageError

READ_ACTIONS = [
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:ListSecretVersionIds",
]
WRITE_ACTIONS = [
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:TagResource",
    "secretsmanager:UntagResource",
    "secretsmanager:DeleteSecret",
    "secretsmanager:RestoreSecret",
]


def arn_parts(arn: str | None) -> tuple[str | None, str | None]:
    """(partition, account) of an ARN such as a role_arn; (None, None) if not one."""
    parts = (arn or "").split(":")
    if len(parts) >= 6 and parts[0] == "arn":
        return parts[1] or None, parts[4] or None
    return None, None


def kms_statements(
    key: str,
    *,
    partition: str,
    region: str,
    account: str,
    secrets_arn: str | list[str],
    read_only: bool,
) -> list[dict[str, Any]]:
    """DescribeKey (bsecrets checks the key itself) and, only through Secrets
    Manager and only for this environment's secrets, Decrypt (+ GenerateDataKey)."""
    if key.startswith("arn:") and ":alias/" not in key:
        resource, conditions = key, {}
    elif key.startswith("arn:") or key.startswith("alias/"):
        alias = "alias/" + key.split(":alias/", 1)[-1].removeprefix("alias/")
        resource = f"arn:{partition}:kms:{region}:{account}:key/*"
        conditions = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}}
    else:  # a key id
        resource, conditions = f"arn:{partition}:kms:{region}:{account}:key/{key}", {}
    use = ["kms:Decrypt"] if read_only else ["kms:Decrypt", "kms:GenerateDataKey"]
    describe: dict[str, Any] = {
        "Sid": "BsecretsDescribeEnvKey",
        "Effect": "Allow",
        "Action": ["kms:DescribeKey"],
        "Resource": resource,
    }
    through_secrets_manager: dict[str, Any] = {
        "Sid": "BsecretsUseEnvKeyThroughSecretsManager",
        "Effect": "Allow",
        "Action": use,
        "Resource": resource,
        "Condition": {
            **conditions,
            "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:SecretARN": secrets_arn},
        },
    }
    if conditions:
        describe["Condition"] = conditions
    return [describe, through_secrets_manager]


def _arn_pattern(glob: str) -> str:
    """A name glob as the end of a secret ARN: IAM knows '*' and '?', and AWS appends '-'
    and six characters to every secret's name."""
    if set(glob) & set("[]"):
        raise UsageError(
            f"the scope {glob!r} has no IAM pattern",
            hint="IAM matches '*' and '?' only (such as 'db/*')",
        )
    return glob if glob.endswith("*") else f"{glob}-??????"


def build_policy(
    *,
    env: str,
    region: str,
    prefix: str,
    kms_key_id: str | None,
    account: str,
    partition: str = "aws",
    read_only: bool = False,
    only: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The IAM policy document (a dict ready for json.dumps); with ``only`` (a
    principal's scope) the secrets' ARNs are those names' only."""
    base = f"arn:{partition}:secretsmanager:{region}:{account}:secret:{prefix}"
    secrets_arn: str | list[str] = [base + _arn_pattern(glob) for glob in only] or f"{base}*"
    statements: list[dict[str, Any]] = [
        {
            # ListSecrets has no resource-level permissions: it shows names and
            # metadata (never values) of every secret in the account and region.
            "Sid": "BsecretsListSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:ListSecrets"],
            "Resource": "*",
        },
        {
            "Sid": "BsecretsReadEnvSecrets",
            "Effect": "Allow",
            "Action": list(READ_ACTIONS),
            "Resource": secrets_arn,
        },
    ]
    if not read_only:
        statements += [
            {
                "Sid": "BsecretsWriteEnvSecrets",
                "Effect": "Allow",
                "Action": list(WRITE_ACTIONS),
                "Resource": secrets_arn,
            },
            {
                # New secrets must carry this environment's tag.
                "Sid": "BsecretsCreateEnvSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:CreateSecret"],
                "Resource": secrets_arn,
                "Condition": {"StringEquals": {f"aws:RequestTag/{ENV_TAG}": env}},
            },
            {
                # ... and no secret may be moved to another environment's tag.
                "Sid": "BsecretsKeepEnvTag",
                "Effect": "Deny",
                "Action": ["secretsmanager:TagResource"],
                "Resource": secrets_arn,
                "Condition": {
                    "StringNotEquals": {f"aws:RequestTag/{ENV_TAG}": env},
                    "Null": {f"aws:RequestTag/{ENV_TAG}": "false"},
                },
            },
            {
                "Sid": "BsecretsKeepEnvTagUntag",
                "Effect": "Deny",
                "Action": ["secretsmanager:UntagResource"],
                "Resource": secrets_arn,
                "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": [ENV_TAG]}},
            },
        ]
    if kms_key_id:
        statements += kms_statements(
            kms_key_id,
            partition=partition,
            region=region,
            account=account,
            secrets_arn=secrets_arn,
            read_only=read_only,
        )
    return {"Version": "2012-10-17", "Statement": statements}
