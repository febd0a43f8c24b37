"""``vault policy`` and ``aws policy`` with ``--principal`` (#13): the native policy
that matches a principal's grant (role and --only scope). On Vault the printed
policy is written into a real OpenBao and a token holding it is tried: the server,
not bsecrets, is the boundary there. The IAM document goes through moto's grammar
check."""

from __future__ import annotations

import json
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
from helpers.cli import invoke
from helpers.moto_server import MotoServer
from helpers.openbao_server import OpenBao
from helpers.vault_env import assert_error, unique_prefix, vault_env, write_profile

ALICE = "alice-pass-123"


def ok(args: list[str], **env: str) -> str:
    result = invoke(args, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def add_alice(*grants: list[str]) -> None:
    ok(["access", "principal", "add", "alice"], BSECRETS_NEW_PASSPHRASE=ALICE)
    for grant in grants:
        ok(["access", "grant", "alice", *grant])


@pytest.fixture
def staging(isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao) -> str:
    """A profile whose 'staging' is on OpenBao (root token), with a few secrets."""
    prefix = unique_prefix("scoped")
    write_profile(isolated, monkeypatch, {"staging": vault_env(openbao.address, prefix)})
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    for name in ("db/url", "db/password", "api/key"):
        assert invoke(["put", name, "-e", "staging"], input=f"v-{name}").exit_code == 0
    return prefix


def token_with(openbao: OpenBao, policy: str, label: str) -> hvac.Client:
    root = openbao.client()
    root.sys.create_or_update_policy(label, policy)
    token = root.auth.token.create(policies=[label], ttl="1h")["auth"]["client_token"]
    return hvac.Client(url=openbao.address, token=token)


def test_a_scoped_read_grant_prints_a_policy_the_server_enforces(
    staging: str, openbao: OpenBao
) -> None:
    add_alice(["-e", "staging", "--role", "read", "--only", "db/*"])
    policy = ok(["vault", "policy", "-e", "staging", "--principal", "alice"])
    assert "principal 'alice'" in policy and "read-only" in policy
    client = token_with(openbao, policy, f"alice-{staging}")
    kv = client.secrets.kv.v2
    assert kv.read_secret_version(f"{staging}/db/url", raise_on_deleted_version=True)["data"][
        "data"
    ] == {"value": "v-db/url"}
    with pytest.raises(hvac.exceptions.Forbidden):
        kv.read_secret_version(f"{staging}/api/key", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        kv.create_or_update_secret(f"{staging}/db/url", secret={"value": "forged"})
    names = kv.list_secrets(f"{staging}")["data"]["keys"]  # ls sees names, never values
    assert sorted(names) == ["api/", "db/"]


def test_a_write_grant_prints_a_policy_that_writes_only_its_scope(
    staging: str, openbao: OpenBao
) -> None:
    add_alice(["-e", "staging", "--role", "write", "--only", "db/*"])
    policy = ok(["vault", "policy", "-e", "staging", "--principal", "alice"])
    assert "read-write" in policy
    kv = token_with(openbao, policy, f"alice-w-{staging}").secrets.kv.v2
    kv.create_or_update_secret(f"{staging}/db/url", secret={"value": "rotated"})
    with pytest.raises(hvac.exceptions.Forbidden):
        kv.create_or_update_secret(f"{staging}/api/key", secret={"value": "forged"})


def test_a_scope_vault_cannot_express_is_refused(staging: str) -> None:
    add_alice(["-e", "staging", "--role", "read", "--only", "db*url"])
    result = invoke(["vault", "policy", "-e", "staging", "--principal", "alice"])
    assert_error(result, 2, "'db*url' has no Vault policy path")
    assert "hint: " in result.stderr


def test_a_principal_without_a_grant_there_is_a_usage_error(staging: str) -> None:
    add_alice()
    result = invoke(["vault", "policy", "-e", "staging", "--principal", "alice"])
    assert_error(result, 2, "no grant on environment 'staging'", "access grant alice")


def test_an_unknown_principal_is_not_found(staging: str) -> None:
    result = invoke(["vault", "policy", "-e", "staging", "--principal", "nobody"])
    assert_error(result, 3, "principal 'nobody' does not exist")


def test_the_iam_policy_of_a_grant_names_its_scope_only(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, aws: MotoServer
) -> None:
    write_profile(isolated, monkeypatch, {
        "prod": {"backend": "aws", "region": "eu-west-1", "prefix": "app/prod/"},
    })  # fmt: skip
    add_alice(["-e", "prod", "--role", "read", "--only", "deploy/*", "--only", "API_KEY"])
    args = ["aws", "policy", "-e", "prod", "--account", "123456789012", "--principal", "alice"]
    document = json.loads(ok(args))
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    base = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/prod/"
    assert by_sid["BsecretsReadEnvSecrets"]["Resource"] == [
        f"{base}deploy/*",
        f"{base}API_KEY-??????",
    ]
    assert "BsecretsWriteEnvSecrets" not in by_sid  # a read grant
    aws.client("iam").create_policy(PolicyName="alice-prod", PolicyDocument=json.dumps(document))


def test_an_iam_scope_with_brackets_is_refused(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profile(isolated, monkeypatch, {
        "prod": {"backend": "aws", "region": "eu-west-1", "prefix": "app/prod/"},
    })  # fmt: skip
    add_alice(["-e", "prod", "--only", "db[12]"])
    result = invoke(["aws", "policy", "-e", "prod", "--account", "123456789012",
                     "--principal", "alice"])  # fmt: skip
    assert_error(result, 2, "has no IAM pattern")
