"""The command line on an AWS environment (moto's server over real HTTP): the
everyday commands, cross-account access, the IAM policy, and every bad input
the issue names. Errors: one 'error:' line, a 'hint:', no traceback, no value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.aws_env import (
    ROLE_ACCOUNT,
    ROLE_ARN,
    FakeEndpoint,
    closed_port_endpoint,
    write_profile,
)
from helpers.cli import invoke, run_cli
from helpers.moto_server import (
    DEFAULT_ACCOUNT,
    FAKE_CREDENTIALS,
    REGION,
    MotoServer,
    moto_secret_names,
    sts_assumed_roles,
)
from helpers.values import CANARY

PREFIX = "myapp/prod/"
ALIAS = "alias/myapp-prod"
HANG_GUARD_S = 300  # 10x the default 30 s budget


def assert_error(result: Any, code: int, *needles: str) -> None:
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    stdout = result.stdout if isinstance(result.stdout, str) else result.stdout.decode()
    exit_code = getattr(result, "exit_code", getattr(result, "returncode", None))
    assert exit_code == code, stderr
    lines = stderr.splitlines()
    assert lines[0].startswith("error: "), stderr
    assert [line for line in lines if line.startswith("error: ")] == [lines[0]], stderr
    assert len(lines) == 2 and lines[1].startswith("hint: "), stderr
    assert "Traceback" not in stderr
    assert CANARY not in stderr and CANARY not in stdout
    for needle in needles:
        assert needle in stderr, stderr


@pytest.fixture
def aws_env(vault: Path, aws: MotoServer) -> MotoServer:
    """A profile whose 'prod' environment is on moto, with its KMS key."""
    kms = aws.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=ALIAS, TargetKeyId=key_id)
    write_profile(vault, region=REGION, prefix=PREFIX, kms_key_id=ALIAS, endpoint_url=aws.endpoint)
    return aws


@pytest.fixture
def fake_credentials(vault: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For endpoints that are not moto: credentials botocore accepts, nothing else."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return vault


def ok(args: list[str], input: str | None = None) -> Any:
    result = invoke(args, input=input)
    assert result.exit_code == 0, result.stderr
    return result


def test_round_trip(aws_env: MotoServer) -> None:
    assert ok(["put", "db/password", "-e", "prod", "--tag", "team=core"], "s3cret\n").stdout == (
        "db/password v1 (prod)\n"
    )
    assert ok(["get", "db/password", "-e", "prod"]).stdout == "s3cret\n"
    assert ok(["get", "db/password", "-e", "prod", "--raw"]).stdout_bytes == b"s3cret"
    ok(["put", "db/password", "-e", "prod", "--description", "main db"], "rotated")
    got = json.loads(ok(["get", "db/password", "-e", "prod", "--json"]).stdout)
    assert (got["version"], got["value"], got["tags"]) == (2, "rotated", {"team": "core"})
    assert got["description"] == "main db"
    assert ok(["get", "db/password", "-e", "prod", "--version", "1"]).stdout == "s3cret\n"
    history = json.loads(ok(["history", "db/password", "-e", "prod", "--json"]).stdout)
    assert [(h["version"], h["state"]) for h in history] == [(1, "previous"), (2, "current")]
    listed = json.loads(ok(["ls", "-e", "prod", "--json"]).stdout)
    assert [(s["name"], s["version"]) for s in listed] == [("db/password", 2)]
    assert ok(["rollback", "db/password", "-e", "prod", "--to", "1"]).stdout == (
        "db/password v3 (prod) = v1\n"
    )
    assert ok(["get", "db/password", "-e", "prod"]).stdout == "s3cret\n"

    meta = aws_env.client("secretsmanager").describe_secret(SecretId=PREFIX + "db/password")
    assert meta["KmsKeyId"] == ALIAS
    assert {"Key": "bsecrets:env", "Value": "prod"} in meta["Tags"]

    ok(["rm", "db/password", "-e", "prod"])
    assert_error(
        invoke(["get", "db/password", "-e", "prod"]), 3, "scheduled for deletion", "restore"
    )
    assert ok(["--quiet", "ls", "-e", "prod"]).stdout == ""
    assert "db/password (deleted)" in ok(["ls", "-e", "prod", "--deleted"]).stdout
    ok(["restore", "db/password", "-e", "prod"])
    assert ok(["get", "db/password", "-e", "prod"]).stdout == "s3cret\n"
    ok(["rm", "db/password", "-e", "prod", "--purge", "--yes"])
    assert_error(invoke(["get", "db/password", "-e", "prod"]), 3, "ResourceNotFoundException")
    assert moto_secret_names(DEFAULT_ACCOUNT) == []


def test_fresh_process_get(aws_env: MotoServer) -> None:
    ok(["put", "api", "-e", "prod"], "from-cli")
    result = run_cli(["get", "api", "-e", "prod"], timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"from-cli\n"


def test_if_version_conflict(aws_env: MotoServer) -> None:
    ok(["put", "api", "-e", "prod"], "1")
    ok(["put", "api", "-e", "prod"], "2")
    result = invoke(["put", "api", "-e", "prod", "--if-version", "1"], input=CANARY)
    assert_error(result, 7, "at version 2, not 1", "bsecrets history")
    assert ok(["get", "api", "-e", "prod"]).stdout == "2\n"


def test_status_shows_aws_health(aws_env: MotoServer) -> None:
    status = json.loads(ok(["status", "--json"]).stdout)
    prod = status["environments"]["prod"]
    assert (prod["backend"], prod["region"], prod["kms_key"]) == ("aws", REGION, ALIAS)
    indicators = {i["name"]: i for i in status["indicators"]}
    for name in ("reachable", "identity", "kms_key", "latency"):
        assert indicators[f"prod.{name}"]["ok"], indicators
    assert "Enabled" in indicators["prod.kms_key"]["detail"]
    assert status["healthy"] is True


# --- cross-account ---------------------------------------------------------------------


def test_role_is_assumed_and_its_credentials_reused(vault: Path, aws: MotoServer) -> None:
    write_profile(vault, region=REGION, prefix=PREFIX, endpoint_url=aws.endpoint, role_arn=ROLE_ARN)
    ok(["put", "db", "-e", "prod"], "cross")
    assert sts_assumed_roles(ROLE_ACCOUNT) == 1
    assert moto_secret_names(ROLE_ACCOUNT) == [PREFIX + "db"]  # in the role's account
    assert moto_secret_names(DEFAULT_ACCOUNT) == []
    for _ in range(2):  # fresh processes within the credentials' lifetime: no STS call
        result = run_cli(["get", "db", "-e", "prod"], timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"cross\n"
    assert sts_assumed_roles(ROLE_ACCOUNT) == 1
    status = json.loads(ok(["status", "--json"]).stdout)
    indicators = {i["name"]: i for i in status["indicators"]}
    assert "(cache" in indicators["prod.role"]["detail"]
    assert f"::{ROLE_ACCOUNT}:assumed-role/bsecrets-prod/" in indicators["prod.identity"]["detail"]


# --- the IAM policy --------------------------------------------------------------------


def test_policy_confines_to_the_environment(vault: Path, aws: MotoServer) -> None:
    write_profile(vault, region=REGION, prefix=PREFIX, kms_key_id=ALIAS, role_arn=ROLE_ARN)
    policy = json.loads(ok(["aws", "policy", "-e", "prod"]).stdout)
    secrets_arn = f"arn:aws:secretsmanager:{REGION}:{ROLE_ACCOUNT}:secret:{PREFIX}*"
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["BsecretsReadEnvSecrets"]["Resource"] == secrets_arn
    assert "secretsmanager:PutSecretValue" in by_sid["BsecretsWriteEnvSecrets"]["Action"]
    assert by_sid["BsecretsCreateEnvSecrets"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/bsecrets:env": "prod"}
    }
    kms = by_sid["BsecretsUseEnvKeyThroughSecretsManager"]
    assert kms["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": ALIAS}
    assert kms["Condition"]["StringLike"] == {"kms:EncryptionContext:SecretARN": secrets_arn}
    every_resource = [s["Resource"] for s in policy["Statement"]]
    assert all(r == "*" or r == secrets_arn or ":kms:" in r for r in every_resource)

    read_only = json.loads(ok(["aws", "policy", "-e", "prod", "--read-only"]).stdout)
    actions = {a for s in read_only["Statement"] for a in s["Action"]}
    assert actions == {
        "secretsmanager:ListSecrets",
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:ListSecretVersionIds",
        "kms:DescribeKey",
        "kms:Decrypt",
    }
    iam = aws.client("iam")  # moto validates the document's grammar
    for number, document in enumerate((policy, read_only)):
        iam.create_policy(PolicyName=f"bsecrets-prod-{number}", PolicyDocument=json.dumps(document))


def test_policy_needs_an_aws_environment(vault: Path) -> None:
    write_profile(vault, region=REGION)
    assert_error(invoke(["aws", "policy", "-e", "dev"]), 2, "local backend")
    result = invoke(["aws", "policy", "-e", "prod"])
    assert result.exit_code == 0
    assert "no prefix" in result.stderr and "any account" in result.stderr


# --- bad input, each with a test ------------------------------------------------------------


def test_missing_region(vault: Path, aws: MotoServer) -> None:
    write_profile(vault, endpoint_url=aws.endpoint)
    result = invoke(["put", "a", "-e", "prod"], input=CANARY)
    assert_error(result, 2, "no AWS region for environment 'prod'", "AWS_REGION", "region:")


def test_kms_alias_that_does_not_exist(vault: Path, aws: MotoServer) -> None:
    write_profile(vault, region=REGION, endpoint_url=aws.endpoint, kms_key_id="alias/nope")
    result = invoke(["put", "a", "-e", "prod"], input=CANARY)
    assert_error(result, 3, "KMS key 'alias/nope' not found", "NotFoundException", "kms_key_id")
    assert moto_secret_names(DEFAULT_ACCOUNT) == []


def test_name_too_long_after_the_prefix(vault: Path, aws: MotoServer) -> None:
    write_profile(vault, region=REGION, endpoint_url=aws.endpoint, prefix="p/" * 150)
    result = invoke(["put", "n" * 213, "-e", "prod"], input=CANARY)
    assert_error(result, 2, "AWS allows 512", "prefix")
    assert invoke(["put", "n" * 212, "-e", "prod"], input="fits").exit_code == 0


@pytest.mark.parametrize("days", ["6", "31"])
def test_recovery_window_outside_7_to_30(aws_env: MotoServer, days: str) -> None:
    ok(["put", "a", "-e", "prod"], "1")
    assert_error(invoke(["rm", "a", "-e", "prod", "--recovery-days", days]), 2, "7")
    assert ok(["get", "a", "-e", "prod"]).stdout == "1\n"
    ok(["rm", "a", "-e", "prod", "--recovery-days", "7"])


def test_recovery_days_elsewhere(aws_env: MotoServer) -> None:
    ok(["put", "a", "-e", "dev"], "local")
    assert_error(invoke(["rm", "a", "-e", "dev", "--recovery-days", "7"]), 2, "no recovery window")
    ok(["put", "a", "-e", "prod"], "remote")
    result = invoke(["rm", "a", "-e", "prod", "--purge", "--yes", "--recovery-days", "7"])
    assert_error(result, 2, "--purge")


def _guarded_cli(args: list[str]) -> Any:
    """The CLI as a process, with a hang guard (the subprocess timeout) far above the
    budget it needs; nothing is asserted on elapsed time."""
    return run_cli(args, input=CANARY.encode(), timeout=HANG_GUARD_S)


def test_endpoint_unreachable(fake_credentials: Path) -> None:
    write_profile(fake_credentials, region=REGION, endpoint_url=closed_port_endpoint())
    result = _guarded_cli(["put", "a", "-e", "prod"])
    assert_error(result, 6, "cannot reach", "EndpointConnectionError", "after 3 attempts")


def test_endpoint_that_never_answers(fake_credentials: Path) -> None:
    """Connects, then silence: botocore's read timeout and retries, bounded by the budget."""
    with FakeEndpoint("silent").running() as fake:
        write_profile(fake_credentials, region=REGION, endpoint_url=fake.endpoint)
        result = _guarded_cli(["get", "a", "-e", "prod"])
    assert_error(result, 6, "ReadTimeoutError", "after 3 attempts")
    assert fake.requests == 3


@pytest.mark.parametrize(
    ("mode", "code", "needle", "requests"),
    [
        ("throttle", 6, "(ThrottlingException)", 3),  # retried by botocore, then given up
        ("error", 6, "(InternalServiceError)", 3),
        ("deny", 4, "(AccessDeniedException)", 1),  # not retried
    ],
)
def test_aws_errors_become_exit_codes(
    fake_credentials: Path, mode: str, code: int, needle: str, requests: int
) -> None:
    with FakeEndpoint(mode).running() as fake:
        write_profile(fake_credentials, region=REGION, endpoint_url=fake.endpoint)
        result = invoke(["put", "a", "-e", "prod"], input=CANARY)
    assert_error(result, code, needle)
    assert fake.requests == requests
