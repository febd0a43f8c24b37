"""Every failed write says whether it was applied, so that a script knows whether
to retry: in words, and as "applied" in the --json error object.

* "yes": the value was stored (the message gives its version); only its tags or
  description were not recorded. A retry would store a duplicate version.
* "no": nothing was written (refused, or it failed before the request left).
* "unknown": the request may have reached the server; the message says how to check.

Real servers (OpenBao, moto) behind a loopback proxy that holds chosen requests;
moto's own IAM enforcement for the denials on AWS."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.aws_env import FakeEndpoint
from helpers.aws_env import write_profile as write_aws_profile
from helpers.cli import invoke
from helpers.loopback_proxy import LoopbackProxy
from helpers.moto_server import FAKE_CREDENTIALS, REGION, MotoServer
from helpers.openbao_server import OpenBao
from helpers.values import CANARY
from helpers.vault_env import unique_prefix, vault_env, write_profile

VALUE = "value-canary-31f0"
BUDGET_S = 2


def json_error(result: Any, code: int) -> dict[str, Any]:
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr and VALUE not in result.stderr, result.stderr
    error: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["exit_code"] == code, error
    return error


def one_warning(result: Any) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), result.stderr
    assert VALUE not in result.stderr
    return str(lines[0])


# --- Vault ---------------------------------------------------------------------------


@pytest.fixture
def vault_proxy(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> Iterator[tuple[LoopbackProxy, str]]:
    prefix = unique_prefix("applied")
    with LoopbackProxy(openbao.address) as proxy:
        env = vault_env(proxy.address, prefix, timeout=BUDGET_S)
        write_profile(isolated, monkeypatch, {"staging": env})
        monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
        assert invoke(["put", "db", "-e", "staging"], input="first").exit_code == 0
        yield proxy, prefix


def _vault_current(openbao: OpenBao, path: str) -> tuple[int, Any]:
    found = openbao.client().secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)[
        "data"
    ]
    return int(found["metadata"]["version"]), found["data"]


def test_vault_tags_lost_after_the_value_say_the_value_was_stored(
    vault_proxy: tuple[LoopbackProxy, str], openbao: OpenBao
) -> None:
    proxy, prefix = vault_proxy
    proxy.stall(method="PATCH")  # the metadata write after the value: no answer
    result = invoke(["put", "db", "-e", "staging", "--tag", "team=core", "--json"], input=VALUE)
    error = json_error(result, 6)
    assert error["applied"] == "yes", error
    assert "the value of secret 'db' was stored as version 2" in error["error"]
    assert "only its tags may not have been recorded" in error["error"]
    assert "may or may not" not in error["error"]
    assert "do not repeat the put" in error["hint"]
    assert _vault_current(openbao, f"{prefix}/db") == (2, {"value": VALUE})


def test_vault_plain_put_whose_author_is_lost_succeeds_with_a_warning(
    vault_proxy: tuple[LoopbackProxy, str], openbao: OpenBao
) -> None:
    proxy, prefix = vault_proxy
    proxy.stall(method="PATCH")
    result = invoke(["put", "db", "-e", "staging"], input=VALUE)
    assert result.exit_code == 0 and result.stdout == "db v2 (staging)\n", result.stderr
    warning = one_warning(result)
    assert "the author of version 2 of secret 'db' may not have been recorded" in warning
    assert _vault_current(openbao, f"{prefix}/db") == (2, {"value": VALUE})


def test_vault_rm_lost_in_flight_may_have_been_applied(
    vault_proxy: tuple[LoopbackProxy, str], openbao: OpenBao
) -> None:
    proxy, prefix = vault_proxy
    proxy.stall(method="POST", path=f"/v1/secret/delete/{prefix}/db")
    error = json_error(invoke(["rm", "db", "-e", "staging", "--json"]), 6)
    assert error["applied"] == "unknown", error
    assert "the write may have been applied: check with 'bsecrets history db" in error["error"]
    proxy.release()
    history = json.loads(invoke(["history", "db", "-e", "staging", "--json"]).stdout)
    assert history[-1]["state"] == "deleted"


def test_vault_write_refused_was_not_applied(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    prefix = unique_prefix("readonly")
    write_profile(isolated, monkeypatch, {"staging": vault_env(openbao.address, prefix)})
    policy = invoke(["vault", "policy", "-e", "staging", "--read-only"]).stdout
    root = openbao.client()
    root.sys.create_or_update_policy(f"ro-{prefix}", policy)
    token = root.auth.token.create(policies=[f"ro-{prefix}"], ttl="1h")["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", token)
    error = json_error(invoke(["put", "db", "-e", "staging", "--json"], input=VALUE), 4)
    assert error["applied"] == "no" and "the write was not applied" in error["error"], error
    plain = invoke(["put", "db", "-e", "staging"], input=VALUE)
    assert "the write was not applied" in plain.stderr.splitlines()[0], plain.stderr


# --- AWS -----------------------------------------------------------------------------

DENY_METADATA = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": [
                "secretsmanager:TagResource",
                "secretsmanager:UntagResource",
                "secretsmanager:UpdateSecret",
            ],
            "Resource": "*",
        },
    ],
}


def _moto_auth(aws: MotoServer, after_requests: str) -> None:
    """moto's IAM enforcement: on ("0") or off ("inf") for the whole moto server."""
    request = urllib.request.Request(
        aws.endpoint + "/moto-api/reset-auth",
        data=after_requests.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        answer.read()


@pytest.fixture
def aws_env(vault: Path, aws: MotoServer) -> MotoServer:
    write_aws_profile(vault, region=REGION, prefix="app/", endpoint_url=aws.endpoint)
    assert invoke(["put", "db", "-e", "prod", "--tag", "team=core"], input="first").exit_code == 0
    return aws


@pytest.fixture
def tags_denied(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """An IAM user whose policy denies TagResource, UntagResource and UpdateSecret, its
    keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and moto enforcing IAM."""
    iam = aws_env.client("iam")
    iam.create_user(UserName="no-tags")
    iam.put_user_policy(
        UserName="no-tags", PolicyName="deny-metadata", PolicyDocument=json.dumps(DENY_METADATA)
    )
    key = iam.create_access_key(UserName="no-tags")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    _moto_auth(aws_env, "0")
    try:
        yield aws_env
    finally:
        _moto_auth(aws_env, "inf")


def _aws_state(aws: MotoServer) -> tuple[list[str], dict[str, str], str]:
    """(version ids, tags, current value) of app/db, read with moto's own credentials."""
    sm = aws.client("secretsmanager")
    versions = sm.list_secret_version_ids(SecretId="app/db", IncludeDeprecated=True)["Versions"]
    meta = sm.describe_secret(SecretId="app/db")
    current = sm.get_secret_value(SecretId="app/db", VersionStage="AWSCURRENT")["SecretString"]
    tags = {t["Key"]: t["Value"] for t in meta.get("Tags") or []}
    return sorted(v["VersionId"] for v in versions), tags, str(current)


def test_aws_metadata_denied_plain_put_warns_tagged_put_is_refused(
    tags_denied: MotoServer,
) -> None:
    plain = invoke(["put", "db", "-e", "prod"], input=VALUE)
    assert plain.exit_code == 0 and plain.stdout == "db v2 (prod)\n", plain.stderr
    warning = one_warning(plain)
    assert "the author of version 2 of secret 'db' was not recorded" in warning
    assert "AccessDenied" in warning
    for extra in (["--tag", "team=ops"], ["--description", "main db"]):
        result = invoke(["put", "db", "-e", "prod", "--json", *extra], input=CANARY)
        error = json_error(result, 4)
        assert error["applied"] == "no", error
        assert "nothing was written" in error["error"] and "AccessDenied" in error["error"]
        assert "bsecrets aws policy -e prod" in error["hint"]
    _moto_auth(tags_denied, "inf")
    versions, tags, current = _aws_state(tags_denied)
    assert len(versions) == 2 and current == VALUE  # v1 and the plain put's v2, no v3
    assert tags["team"] == "core" and "Description" not in tags


def test_aws_tags_lost_after_the_value_say_the_value_was_stored(
    aws_env: MotoServer, vault: Path
) -> None:
    with LoopbackProxy(aws_env.endpoint) as proxy:
        path = write_aws_profile(vault, region=REGION, prefix="app/", endpoint_url=proxy.address)
        path.write_text(path.read_text() + f"    timeout: {BUDGET_S}\n")

        def hang_after_the_move(method: str, path: str) -> None:
            if proxy.targets and proxy.targets[-1] == "secretsmanager.UpdateSecretVersionStage":
                proxy.stall(target="secretsmanager.TagResource")

        proxy.after = hang_after_the_move
        result = invoke(["put", "db", "-e", "prod", "--tag", "team=ops", "--json"], input=VALUE)
        proxy.after = None
    error = json_error(result, 6)
    assert error["applied"] == "yes", error
    assert "the value of secret 'db' was stored as version 2" in error["error"]
    assert "only its tags may not have been recorded" in error["error"]
    assert _aws_state(aws_env)[2] == VALUE


def test_aws_write_refused_was_not_applied(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with FakeEndpoint("deny").running() as fake:
        write_aws_profile(vault, region=REGION, endpoint_url=fake.endpoint)
        error = json_error(invoke(["put", "db", "-e", "prod", "--json"], input=VALUE), 4)
    assert error["applied"] == "no" and "the write was not applied" in error["error"], error


def test_aws_rm_of_a_missing_secret_was_not_applied(aws_env: MotoServer) -> None:
    """A read that fails inside a write is "no" too: nothing was sent that changes data."""
    result = invoke(["rm", "nothing-here", "-e", "prod", "--json"])
    error = json_error(result, 3)
    assert error["applied"] == "no", error


# --- local ---------------------------------------------------------------------------


def test_local_write_failure_was_not_applied(vault: Path) -> None:
    assert invoke(["put", "db"], input="first").exit_code == 0
    error = json_error(invoke(["put", "db", "--if-version", "5", "--json"], input=VALUE), 7)
    assert error["applied"] == "no" and "the write was not applied" in error["error"], error
    assert invoke(["get", "db"]).stdout == "first\n"
    text = invoke(["put", "db", "--if-version", "5"], input=VALUE)
    assert text.stderr.splitlines()[0].endswith("; the write was not applied"), text.stderr


def test_a_rollback_that_fails_before_writing_was_not_applied(vault: Path) -> None:
    for value in ("one", "two"):
        assert invoke(["put", "db"], input=value).exit_code == 0
    result = invoke(["rollback", "db", "--to", "1", "--if-version", "1", "--json"])
    error = json_error(result, 7)
    assert error["applied"] == "no" and "the write was not applied" in error["error"], error
    assert invoke(["get", "db"]).stdout == "two\n"
