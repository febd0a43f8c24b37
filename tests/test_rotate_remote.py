"""``bsecrets rotate`` on the remote backends (#14): the same four steps against a real
OpenBao (KV v2) and moto's Secrets Manager over HTTP, with kill -9 in a hook then
resume or cancel, and a finish write that landed before the kill. Exactly one current
value at every point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.aws_env import write_profile as write_aws_profile
from helpers.cli import invoke, run_cli
from helpers.moto_server import REGION, MotoServer
from helpers.openbao_server import OpenBao
from helpers.rotation import hook, kill_campaign, policy, policy_off, rotate_and_kill
from helpers.vault_env import unique_prefix, vault_env, write_profile

OLD, NEW = "old-remote-7c6b", "new-remote-1d2e"


def ok(args: list[str]) -> str:
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.fixture(params=["vault", "aws"])
def remote(request: pytest.FixtureRequest, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A profile with a remote environment (its name returned) holding db/password = OLD."""
    if request.param == "vault":
        openbao: OpenBao = request.getfixturevalue("openbao")
        prefix = unique_prefix("rotate")
        write_profile(isolated, monkeypatch, {"staging": vault_env(openbao.address, prefix)})
        monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
        env = "staging"
    else:
        request.getfixturevalue("vault")  # the local vault, which keeps the rotations
        aws: MotoServer = request.getfixturevalue("aws")
        alias = f"alias/rotate-{unique_prefix()}"
        kms = aws.client("kms")
        kms.create_alias(AliasName=alias, TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
        prefix = f"{unique_prefix('rotate')}/"
        write_aws_profile(
            isolated, region=REGION, prefix=prefix, kms_key_id=alias, endpoint_url=aws.endpoint
        )
        (isolated / "secret-id").write_text(f"{prefix}db/password")
        env = "prod"
    (isolated / "old.txt").write_text(OLD)
    (isolated / "new.txt").write_text(NEW)
    ok(["put", "db/password", "-e", env, "--from-file", "old.txt"])
    return env


def value(env: str) -> str:
    return ok(["get", "db/password", "-e", env]).rstrip("\n")


def version(env: str) -> int:
    return int(json.loads(ok(["get", "db/password", "-e", env, "--json"]))["version"])


def test_a_rotation_with_hooks_finishes(remote: str, isolated: Path) -> None:
    set_hook = hook(isolated, "set", f"cat > {isolated}/got\n")
    policy(isolated, remote, f"{{hooks: {{set: [{set_hook}]}}}}")
    before = version(remote)
    done = json.loads(ok(["rotate", "db/password", "-e", remote, "--from-file", "new.txt",
                          "--json"]))  # fmt: skip
    assert done["step"] == "finished" and done["version"] == before + 1
    assert value(remote) == NEW and (isolated / "got").read_text() == NEW


@pytest.mark.parametrize("step", ["set", "test"])
def test_a_kill_in_a_hook_then_resume(remote: str, isolated: Path, step: str) -> None:
    before = version(remote)
    rotation_id = rotate_and_kill(isolated, remote, step)
    assert value(remote) == OLD and version(remote) == before
    ok(["rotate", "resume", rotation_id])
    assert value(remote) == NEW and version(remote) == before + 1


def test_a_kill_in_a_hook_then_cancel(remote: str, isolated: Path) -> None:
    before = version(remote)
    rotation_id = rotate_and_kill(isolated, remote, "set")
    ok(["rotate", "cancel", rotation_id])
    assert value(remote) == OLD and version(remote) == before


def stages(request: pytest.FixtureRequest, isolated: Path) -> dict[str, list[str]]:
    """AWS, as boto3 sees it: version id -> staging labels of db/password."""
    aws: MotoServer = request.getfixturevalue("aws")
    found = aws.client("secretsmanager").list_secret_version_ids(
        SecretId=(isolated / "secret-id").read_text(), IncludeDeprecated=True
    )
    return {v["VersionId"]: sorted(v.get("VersionStages", [])) for v in found["Versions"]}


def holding(labels: dict[str, list[str]], label: str) -> str:
    (version_id,) = [v for v, stages in labels.items() if label in stages]
    return version_id


def test_a_finish_write_that_landed_before_the_kill(
    remote: str, isolated: Path, request: pytest.FixtureRequest
) -> None:
    before = version(remote)
    rotation_id = rotate_and_kill(isolated, remote, "test")
    if remote == "prod":  # AWS: the finish moves AWSCURRENT to the staged version
        labels = stages(request, isolated)
        aws: MotoServer = request.getfixturevalue("aws")
        aws.client("secretsmanager").update_secret_version_stage(
            SecretId=(isolated / "secret-id").read_text(), VersionStage="AWSCURRENT",
            MoveToVersionId=holding(labels, "AWSPENDING"),
            RemoveFromVersionId=holding(labels, "AWSCURRENT"),
        )  # fmt: skip
    else:  # the write that landed
        ok(["put", "db/password", "-e", remote, "--from-file", "new.txt"])
    done = json.loads(ok(["rotate", "resume", rotation_id, "--json"]))
    assert done["version"] == before + 1 == version(remote) and value(remote) == NEW


def test_a_writer_in_between_is_exit_7(remote: str, isolated: Path) -> None:
    rotation_id = rotate_and_kill(isolated, remote, "test")
    ok(["put", "db/password", "-e", remote, "--from-file", "old.txt"])  # someone else's write
    result = invoke(["rotate", "resume", rotation_id])
    assert result.exit_code == 7, result.stderr
    assert value(remote) == OLD
    policy_off(isolated)


def test_kills_at_random_points_leave_one_current_value(remote: str, isolated: Path) -> None:
    """kill -9 spread over whole rotations (create, AWS's staging, the finish write,
    the record after it), then resume or cancel: one current value each time."""
    seen = kill_campaign(isolated, remote, kills=6, seed=41)
    assert sum(seen.values()) == 6


# --- AWS: the pending value is the version labelled AWSPENDING ---------------------------


@pytest.mark.parametrize("remote", ["aws"], indirect=True)
def test_aws_stages_the_new_value_as_awspending_then_moves_awscurrent(
    remote: str, isolated: Path, request: pytest.FixtureRequest
) -> None:
    sid = (isolated / "secret-id").read_text()
    client = request.getfixturevalue("aws").client("secretsmanager")
    before = version(remote)
    rotation_id = rotate_and_kill(isolated, remote, "test")
    labels = stages(request, isolated)
    pending = holding(labels, "AWSPENDING")
    assert labels[pending] == ["AWSPENDING"]  # staged, not current: readers see the old value
    assert client.get_secret_value(SecretId=sid, VersionStage="AWSPENDING")["SecretString"] == NEW
    assert value(remote) == OLD and version(remote) == before
    history = json.loads(ok(["history", "db/password", "-e", remote, "--json"]))
    assert [v["state"] for v in history][-2:] == ["current", "pending"]
    status = json.loads(ok(["rotate", "status", "--json"]))
    assert status[0]["staged"] == before + 1 and "pending" not in status[0]
    ok(["rotate", "resume", rotation_id])
    after = stages(request, isolated)
    assert after[pending] == ["AWSCURRENT"]  # the staged version itself became current
    assert "AWSPREVIOUS" in after[holding(labels, "AWSCURRENT")]
    assert not [v for v, s in after.items() if "AWSPENDING" in s]
    assert value(remote) == NEW and version(remote) == before + 1


@pytest.mark.parametrize("remote", ["aws"], indirect=True)
def test_aws_cancel_removes_awspending_and_keeps_awscurrent(
    remote: str, isolated: Path, request: pytest.FixtureRequest
) -> None:
    current = holding(stages(request, isolated), "AWSCURRENT")
    rotation_id = rotate_and_kill(isolated, remote, "set")
    assert len([v for v, s in stages(request, isolated).items() if "AWSPENDING" in s]) == 1
    ok(["rotate", "cancel", rotation_id])
    labels = stages(request, isolated)
    assert not [v for v, s in labels.items() if "AWSPENDING" in s]
    assert holding(labels, "AWSCURRENT") == current and value(remote) == OLD
    result = invoke(["rotate", "resume", rotation_id])
    assert result.exit_code == 7, result.stderr  # cancelled: nothing to resume


@pytest.mark.parametrize("remote", ["aws"], indirect=True)
def test_aws_a_put_while_staged_wins_and_the_rotation_stops_with_7(
    remote: str, isolated: Path, request: pytest.FixtureRequest
) -> None:
    """Another writer's put after the create step: AWS refuses to move AWSCURRENT from
    the version the rotation started from; the put's value stays current."""
    rotation_id = rotate_and_kill(isolated, remote, "test")
    (isolated / "theirs.txt").write_text("theirs-5a1f")
    ok(["put", "db/password", "-e", remote, "--from-file", "theirs.txt"])
    result = invoke(["rotate", "resume", rotation_id])
    assert result.exit_code == 7, result.stderr
    assert value(remote) == "theirs-5a1f"
    ok(["rotate", "cancel", rotation_id])
    assert not [v for v, s in stages(request, isolated).items() if "AWSPENDING" in s]


@pytest.mark.parametrize("remote", ["aws"], indirect=True)
def test_aws_graceful_previous_is_the_version_replaced(
    remote: str, isolated: Path, request: pytest.FixtureRequest
) -> None:
    """#previous names the version the rotation replaced, also when versions in between
    exist that were never current (an earlier cancelled rotation's staged version)."""
    rotation_id = rotate_and_kill(isolated, remote, "set")
    ok(["rotate", "cancel", rotation_id])  # leaves an unlabelled staged version behind
    (isolated / "newer.txt").write_text("newer-9e3c")
    ok(["rotate", "db/password", "-e", remote, "--from-file", "newer.txt",
        "--strategy", "graceful"])  # fmt: skip
    assert value(remote) == "newer-9e3c"
    assert ok(["get", "db/password#previous", "-e", remote]).rstrip("\n") == OLD


# --- AWS's own rotation (a Lambda) -----------------------------------------------------


@pytest.fixture
def aws_lambda(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> tuple[MotoServer, str]:
    """A prod environment on moto holding db/password, and a rotation Lambda's ARN (moto
    stores the function; it cannot run it here: no Docker)."""
    import io
    import zipfile

    request.getfixturevalue("vault")
    aws: MotoServer = request.getfixturevalue("aws")
    alias = f"alias/rotate-{unique_prefix()}"
    kms = aws.client("kms")
    kms.create_alias(AliasName=alias, TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    write_aws_profile(isolated, region=REGION, prefix=f"{unique_prefix('svc')}/",
                      kms_key_id=alias, endpoint_url=aws.endpoint)  # fmt: skip
    (isolated / "old.txt").write_text(OLD)
    ok(["put", "db/password", "-e", "prod", "--from-file", "old.txt"])
    role = aws.client("iam").create_role(
        RoleName=unique_prefix("role"), AssumeRolePolicyDocument='{"Version": "2012-10-17"}'
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("rotate.py", "def handler(event, context):\n    pass\n")
    function = aws.client("lambda").create_function(
        FunctionName=unique_prefix("rotate"), Runtime="python3.11", Role=role,
        Handler="rotate.handler", Code={"ZipFile": code.getvalue()},
    )["FunctionArn"]  # fmt: skip
    return aws, function


def _described(aws: MotoServer) -> dict[str, object]:
    client = aws.client("secretsmanager")
    (entry,) = [s for s in client.list_secrets()["SecretList"] if s["Name"].endswith("db/password")
                and s["Name"].startswith("svc-")]  # fmt: skip
    described: dict[str, object] = client.describe_secret(SecretId=entry["ARN"])
    return described


def test_schedule_configures_aws_rotation_then_rotate_asks_aws(
    aws_lambda: tuple[MotoServer, str],
) -> None:
    aws, function = aws_lambda
    # a process of its own: moto, in this one, prints its Docker warnings on stdout
    scheduled = run_cli(["rotate", "schedule", "db/password", "-e", "prod", "--lambda",
                         function, "--every", "30d", "--json"])  # fmt: skip
    assert scheduled.returncode == 0, scheduled.stderr
    done = json.loads(scheduled.stdout)
    assert done["every_days"] == 30
    described = _described(aws)
    assert described["RotationEnabled"] is True and described["RotationLambdaARN"] == function
    assert described["RotationRules"] == {"AutomaticallyAfterDays": 30}
    given = invoke(["rotate", "db/password", "-e", "prod", "--generate", "hex:8"])
    assert given.exit_code == 2 and "own rotation" in given.stderr
    asked = run_cli(["rotate", "db/password", "-e", "prod"])
    assert asked.returncode == 0, asked.stderr
    assert b"asked the backend's own rotation" in asked.stdout
    events = [e for e in json.loads(ok(["audit", "log", "--json"])) if e["action"] == "rotate"]
    assert events[-1]["details"] == {"by": "aws", "lambda": function}
    assert [e["outcome"] for e in events[-2:]] == ["started", "ok"]
    # moto then shows a rotation that ran (LastRotatedDate) without a Lambda having made
    # a value: what a real Lambda does is not testable here (docs/rotation.md)
    assert _described(aws)["LastRotatedDate"]


def test_schedule_on_a_local_environment_is_refused(vault: Path) -> None:
    result = invoke(["rotate", "schedule", "x", "-e", "dev", "--lambda", "arn:aws:lambda:x",
                     "--every", "30d"])  # fmt: skip
    assert result.exit_code == 2 and "no rotation service" in result.stderr
    assert "hint: " in result.stderr


def test_schedule_takes_whole_days(aws_lambda: tuple[MotoServer, str]) -> None:
    _aws, function = aws_lambda
    result = invoke(["rotate", "schedule", "db/password", "-e", "prod", "--lambda", function,
                     "--every", "36h"])  # fmt: skip
    assert result.exit_code == 2 and "whole days" in result.stderr
