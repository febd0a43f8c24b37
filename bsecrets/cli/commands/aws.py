"""bsecrets aws ...: helpers for environments on AWS Secrets Manager."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer

from bsecrets.backends.aws.policy import arn_parts, build_policy
from bsecrets.backends.aws.settings import AwsSettings
from bsecrets.cli.context import (
    EnvOption,
    JsonOption,
    PrincipalOption,
    command_group,
    obj,
)
from bsecrets.errors import UsageError
from bsecrets.services import principals

app = command_group(
    "aws",
    "Helpers for environments on AWS Secrets Manager.\n\n"
    "Examples:\n"
    "  bsecrets aws policy -e prod --account 123456789012\n"
    "  bsecrets aws policy -e prod --read-only",
)


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@app.command()
def policy(
    ctx: typer.Context,
    env: EnvOption = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Only read: get, ls, history.")
    ] = False,
    account: Annotated[
        str | None,
        typer.Option(
            "--account", help="The AWS account of the secrets (default: role_arn's, else any)."
        ),
    ] = None,
    principal: PrincipalOption = None,
    json_out: JsonOption = False,  # the output is JSON either way
) -> None:
    """Print the IAM policy that confines a principal to one environment's
    secrets and KMS key (JSON, for 'aws iam create-policy --policy-document'); with
    --principal, to what that bsecrets principal's grant allows (role and scope).

    Examples:
      bsecrets aws policy -e prod --account 123456789012 > policy.json
      bsecrets aws policy -e prod --read-only
      bsecrets aws policy -e prod --principal ci-deploy
    """
    import json

    cli = obj(ctx)
    manager = cli.manager
    name = manager.env_name(cli.env(env))
    config = manager.profile.environment(name)
    if config.backend != "aws":
        raise UsageError(
            f"environment '{name}' uses the {config.backend} backend, not aws",
            hint="pick an environment whose profile entry has 'backend: aws'",
        )
    if account is not None and not re.fullmatch(r"\d{12}", account):
        raise UsageError(f"invalid AWS account id {account!r}", hint="use the 12 digits")
    grant = principals.grant_on(manager, name, principal)
    settings = AwsSettings.resolve(config, cli.settings.environ)
    role_partition, role_account = arn_parts(settings.role_arn)
    account = account or role_account or "*"
    if account == "*":
        cli.warn("no account given (--account or role_arn): the policy names any account")
    if not settings.prefix:
        cli.warn(
            f"environment '{name}' has no prefix: the policy covers every secret "
            "in the account and region"
        )
    document = build_policy(
        env=name,
        region=settings.region,
        prefix=settings.prefix,
        kms_key_id=settings.kms_key_id,
        account=account,
        partition=role_partition or _partition(settings.region),
        read_only=read_only or (grant is not None and grant.role == "read"),
        only=grant.only if grant is not None else (),
    )
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
