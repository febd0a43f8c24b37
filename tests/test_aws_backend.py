"""The AWS adapter against moto's server over real HTTP: the backend contract,
then what only AWS has (storage layout, version ids, KMS, recovery window,
role assumption). Where moto differs from AWS, the test says so."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.aws_env import ROLE_ACCOUNT, ROLE_ARN, frozen, make_adapter
from helpers.moto_server import (
    DEFAULT_ACCOUNT,
    REGION,
    MotoServer,
    moto_secret_names,
    sts_assumed_roles,
)

from bsecrets.backends.aws.adapter import AWSAdapter
from bsecrets.backends.aws.versions import PENDING, version_token
from bsecrets.cli.exit_codes import ExitCode, exit_code_of
from bsecrets.cli.hints import hint_for
from bsecrets.errors import (
    Denied,
    NotFound,
    SecretNotFound,
    UsageError,
    VersionConflict,
    VersionNotFound,
)
from bsecrets.models import VersionState
from bsecrets.testing.backend import ACTOR, BackendContract
from bsecrets.timeutil import utcnow


@pytest.fixture
def adapter(aws: MotoServer) -> Iterator[AWSAdapter]:
    backend = make_adapter(aws.endpoint, env="prod", prefix="myapp/prod/")
    yield backend
    backend.close()


def kms_key(aws: MotoServer, alias: str = "alias/myapp-prod") -> str:
    kms = aws.client("kms")
    key_id: str = kms.create_key(Description="bsecrets test")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


class TestAwsContract(BackendContract):
    @pytest.fixture
    def backend(self, aws: MotoServer) -> Iterator[AWSAdapter]:
        backend = make_adapter(aws.endpoint, env="dev", prefix="contract/")
        yield backend
        backend.close()


# --- storage --------------------------------------------------------------------------


def test_secret_layout_on_aws(aws: MotoServer) -> None:
    kms_key(aws)
    backend = make_adapter(
        aws.endpoint, env="prod", prefix="myapp/prod/", kms_key_id="alias/myapp-prod"
    )
    backend.put("db/url", b"postgres://x", actor=ACTOR, tags={"team": "core"}, description="db")
    sm = aws.client("secretsmanager")
    meta = sm.describe_secret(SecretId="myapp/prod/db/url")
    # moto stores the key id it was given; moto never encrypts with it (moto gap 3),
    # so this proves bsecrets asks for the environment's key, not that KMS used it.
    assert meta["KmsKeyId"] == "alias/myapp-prod"
    tags = {t["Key"]: t["Value"] for t in meta["Tags"]}
    assert tags["bsecrets:env"] == "prod"
    assert tags["team"] == "core"
    assert tags["bsecrets:authors"] == f"1={ACTOR}"
    assert meta["Description"] == "db"
    value = sm.get_secret_value(SecretId="myapp/prod/db/url", VersionStage="AWSCURRENT")
    assert value["SecretString"] == "postgres://x"
    assert value["VersionId"] == version_token(1)


def test_text_binary_and_empty_values(adapter: AWSAdapter, aws: MotoServer) -> None:
    sm = aws.client("secretsmanager")
    adapter.put("text", "naïve".encode(), actor=ACTOR)
    adapter.put("bin", b"\xff\x00\xfe", actor=ACTOR)
    adapter.put("empty", b"", actor=ACTOR)
    read = lambda n: sm.get_secret_value(SecretId=f"myapp/prod/{n}", VersionStage="AWSCURRENT")  # noqa: E731
    assert read("text")["SecretString"] == "naïve"
    assert read("bin")["SecretBinary"] == b"\xff\x00\xfe" and "SecretString" not in read("bin")
    assert read("empty")["SecretBinary"] == b"\x00"  # AWS refuses empty values: a marker
    assert adapter.get("empty").value == b""
    assert adapter.get("bin").value == b"\xff\x00\xfe"


def test_every_put_is_a_version_with_a_known_id(adapter: AWSAdapter, aws: MotoServer) -> None:
    for i in range(1, 4):
        adapter.put("db", f"v{i}".encode(), actor=ACTOR)
    sm = aws.client("secretsmanager")
    versions = sm.list_secret_version_ids(SecretId="myapp/prod/db", IncludeDeprecated=True)
    stages = {v["VersionId"]: v["VersionStages"] for v in versions["Versions"]}
    assert stages[version_token(3)] == ["AWSCURRENT"]
    assert stages[version_token(2)] == ["AWSPREVIOUS"]
    assert version_token(1) in stages
    assert not any(PENDING in labels for labels in stages.values())  # the label was tidied
    # moto gap 1: a read without VersionStage may return a stale version after a
    # label move; bsecrets always names the stage, so it sees v3 regardless.
    assert adapter.get("db").value == b"v3"
    assert adapter.get("db", 1).value == b"v1"


def test_versions_written_by_other_clients_get_stable_numbers(
    adapter: AWSAdapter,
    aws: MotoServer,
) -> None:
    sm = aws.client("secretsmanager")
    adapter.put("api", b"ours-1", actor=ACTOR)
    sm.put_secret_value(SecretId="myapp/prod/api", SecretString="theirs")  # a random token
    secret = adapter.get("api")
    assert (secret.version, secret.value, secret.created_by) == (2, b"theirs", "unknown")
    assert adapter.put("api", b"ours-3", actor=ACTOR).version == 3
    history = adapter.history("api")
    assert [v.version for v in history] == [1, 2, 3]
    assert [v.created_by for v in history] == [ACTOR, "unknown", ACTOR]
    assert adapter.get("api", 2).value == b"theirs"
    assert [v.version for v in adapter.history("api")] == [1, 2, 3]


def test_a_secret_created_by_another_client(adapter: AWSAdapter, aws: MotoServer) -> None:
    aws.client("secretsmanager").create_secret(Name="myapp/prod/legacy", SecretString="x")
    assert adapter.get("legacy").version == 1
    assert [(s.name, s.version) for s in adapter.list_secrets()] == [("legacy", 1)]
    assert adapter.put("legacy", b"y", actor=ACTOR).version == 2


def test_ls_stays_inside_the_prefix(adapter: AWSAdapter, aws: MotoServer) -> None:
    sm = aws.client("secretsmanager")
    sm.create_secret(Name="myapp/staging/db", SecretString="other env")
    sm.create_secret(Name="MYAPP/prod/db", SecretString="other case")
    adapter.put("db", b"1", actor=ACTOR)
    assert [s.name for s in adapter.list_secrets()] == ["db"]


# --- concurrent writers -----------------------------------------------------------------


def _before_put(backend: AWSAdapter, action: Any) -> None:
    """Run ``action`` once, just before the adapter's next PutSecretValue request:
    a concurrent writer, slipped in through botocore's own event hooks."""
    done: list[bool] = []

    def hook(**_kwargs: Any) -> None:
        if not done:
            done.append(True)
            action()

    client = backend.clients.client("secretsmanager")
    client.meta.events.register("before-call.secrets-manager.PutSecretValue", hook)


def test_a_plain_put_does_not_clobber_another_clients_write(
    adapter: AWSAdapter,
    aws: MotoServer,
) -> None:
    adapter.put("db", b"v1", actor=ACTOR)
    sm = aws.client("secretsmanager")
    _before_put(adapter, lambda: sm.put_secret_value(SecretId="myapp/prod/db", SecretString="x"))
    with pytest.raises(VersionConflict) as exc:
        adapter.put("db", b"mine", actor=ACTOR)
    assert exit_code_of(exc.value) == ExitCode.CONFLICT
    assert "InvalidParameterException" in exc.value.message
    assert adapter.get("db").value == b"x"  # the other writer's value stays current
    assert "mine" not in exc.value.message


def test_two_bsecrets_writers_of_the_same_version(adapter: AWSAdapter, aws: MotoServer) -> None:
    adapter.put("db", b"v1", actor=ACTOR)
    other = make_adapter(aws.endpoint, env="prod", prefix="myapp/prod/")
    _before_put(adapter, lambda: other.put("db", b"theirs", actor="other@host"))
    with pytest.raises(VersionConflict) as exc:
        adapter.put("db", b"mine", actor=ACTOR)
    assert "ResourceExistsException" in exc.value.message
    secret = adapter.get("db")
    assert (secret.version, secret.value, secret.created_by) == (2, b"theirs", "other@host")


def test_if_version_is_checked_against_the_current_version(adapter: AWSAdapter) -> None:
    adapter.put("db", b"v1", actor=ACTOR)
    adapter.put("db", b"v2", actor=ACTOR)
    with pytest.raises(VersionConflict, match="at version 2, not 1"):
        adapter.put("db", b"v3", actor=ACTOR, if_version=1)
    with pytest.raises(VersionConflict, match="does not exist"):
        adapter.put("new", b"x", actor=ACTOR, if_version=4)
    assert adapter.put("db", b"v3", actor=ACTOR, if_version=2).version == 3


# --- deletion ------------------------------------------------------------------------------


def test_rm_schedules_deletion_with_a_recovery_window(adapter: AWSAdapter, aws: MotoServer) -> None:
    sm = aws.client("secretsmanager")
    adapter.put("a", b"1", actor=ACTOR)
    adapter.put("b", b"2", actor=ACTOR)
    adapter.delete("a")  # default: 30 days
    adapter.delete("b", recovery_days=7)
    for name, days in (("a", 30), ("b", 7)):
        deleted = sm.describe_secret(SecretId=f"myapp/prod/{name}")["DeletedDate"]
        assert abs(deleted - (utcnow() + timedelta(days=days))) < timedelta(minutes=5)
    with pytest.raises(SecretNotFound) as exc:
        adapter.get("a")
    assert "restore" in (hint_for(exc.value) or "")
    assert adapter.list_secrets() == []
    assert [s.deleted for s in adapter.list_secrets(include_deleted=True)] == [True, True]
    assert adapter.history("a")[-1].state == VersionState.DELETED
    with pytest.raises(SecretNotFound, match="already scheduled"):
        adapter.delete("a")
    adapter.restore("a")
    assert adapter.get("a").value == b"1"


@pytest.mark.parametrize("days", [0, 6, 31, 365])
def test_recovery_window_outside_7_to_30(adapter: AWSAdapter, aws: MotoServer, days: int) -> None:
    adapter.put("a", b"1", actor=ACTOR)
    with pytest.raises(UsageError) as exc:
        adapter.delete("a", recovery_days=days)
    assert exit_code_of(exc.value) == ExitCode.USAGE
    assert "7 to 30" in exc.value.message
    assert "DeletedDate" not in aws.client("secretsmanager").describe_secret(
        SecretId="myapp/prod/a"
    )


def test_purge_deletes_at_once(adapter: AWSAdapter, aws: MotoServer) -> None:
    adapter.put("a", b"1", actor=ACTOR)
    adapter.delete("a")
    adapter.purge("a")  # also works on a secret scheduled for deletion
    assert moto_secret_names(DEFAULT_ACCOUNT) == []


# --- limits and configuration ------------------------------------------------------------


def test_name_longer_than_aws_allows_after_the_prefix(aws: MotoServer) -> None:
    backend = make_adapter(aws.endpoint, prefix="p/" * 150)  # 300 characters
    with pytest.raises(UsageError) as exc:
        backend.put("n" * 213, b"x", actor=ACTOR)  # 513 with the prefix
    assert exit_code_of(exc.value) == ExitCode.USAGE
    assert "512" in exc.value.message
    assert backend.put("n" * 212, b"x", actor=ACTOR).version == 1


def test_value_larger_than_aws_allows(adapter: AWSAdapter) -> None:
    with pytest.raises(UsageError, match="65,536"):
        adapter.put("big", b"x" * 65537, actor=ACTOR)
    assert adapter.put("big", b"x" * 65536, actor=ACTOR).version == 1


def test_reserved_and_invalid_tags(adapter: AWSAdapter) -> None:
    with pytest.raises(UsageError, match="reserved"):
        adapter.put("a", b"1", actor=ACTOR, tags={"bsecrets:env": "dev"})
    with pytest.raises(UsageError, match="AWS allows"):
        adapter.put("a", b"1", actor=ACTOR, tags={"note": "a,b"})


def test_missing_region() -> None:
    with pytest.raises(UsageError) as exc:
        make_adapter("http://127.0.0.1:9", region=None, environ={})
    assert exit_code_of(exc.value) == ExitCode.USAGE
    assert "AWS_REGION" in (exc.value.hint or "") and "region:" in (exc.value.hint or "")
    backend = make_adapter("http://127.0.0.1:9", region=None, environ={"AWS_REGION": "eu-west-1"})
    assert backend.settings.region == "eu-west-1"


def test_sdk_variables_are_the_fallback(aws: MotoServer) -> None:
    environ = {"AWS_REGION": REGION, "AWS_ENDPOINT_URL": aws.endpoint}
    backend = make_adapter(None, region=None, environ=environ)
    backend.put("a", b"1", actor=ACTOR)
    assert moto_secret_names(DEFAULT_ACCOUNT) == ["a"]


def test_prefix_aws_would_refuse() -> None:
    with pytest.raises(UsageError, match=r"environments\.dev\.prefix"):
        make_adapter("http://127.0.0.1:9", prefix="bad prefix/")


# --- KMS --------------------------------------------------------------------------------


def test_values_go_under_the_environments_key(aws: MotoServer) -> None:
    key_id = kms_key(aws)
    for kid in ("alias/myapp-prod", key_id):
        backend = make_adapter(aws.endpoint, prefix=f"{kid[:5]}/", kms_key_id=kid)
        backend.put("a", b"1", actor=ACTOR)
        meta = aws.client("secretsmanager").describe_secret(SecretId=f"{kid[:5]}/a")
        assert meta["KmsKeyId"] == kid
        indicators = {i.name: i for i in backend.get_health_indicators()}
        assert indicators["kms_key"].ok and "Enabled" in indicators["kms_key"].detail


def test_a_kms_alias_that_does_not_exist(aws: MotoServer) -> None:
    backend = make_adapter(aws.endpoint, env="prod", kms_key_id="alias/nope")
    with pytest.raises(NotFound) as exc:
        backend.put("a", b"secret-value", actor=ACTOR)
    assert exit_code_of(exc.value) == ExitCode.NOT_FOUND
    assert "KMS key 'alias/nope' not found" in exc.value.message
    assert "NotFoundException" in exc.value.message
    assert "environments.prod.kms_key_id" in (exc.value.hint or "")
    # moto's Secrets Manager would have accepted the key (moto gap 3): nothing was created.
    assert moto_secret_names(DEFAULT_ACCOUNT) == []
    assert not backend.is_healthy()


def test_a_disabled_kms_key(aws: MotoServer) -> None:
    key_id = kms_key(aws)
    aws.client("kms").disable_key(KeyId=key_id)
    backend = make_adapter(aws.endpoint, kms_key_id="alias/myapp-prod")
    with pytest.raises(Denied, match="Disabled"):
        backend.put("a", b"1", actor=ACTOR)


# --- role assumption -----------------------------------------------------------------------


@pytest.fixture
def local_vault(tmp_path: Path) -> Any:
    from helpers.local_vault import make_vault

    vault = make_vault(tmp_path / "v" / "vault.db")
    yield lambda: vault
    vault.close()


def test_role_is_assumed_once_and_cached(aws: MotoServer, local_vault: Any) -> None:
    def role_adapter(**kwargs: Any) -> AWSAdapter:
        return make_adapter(
            aws.endpoint, env="prod", role_arn=ROLE_ARN, local_vault=local_vault, **kwargs
        )

    role_adapter().put("db", b"cross-account", actor=ACTOR)
    assert sts_assumed_roles(ROLE_ACCOUNT) == 1
    # moto gives an assumed role's requests to the role's account: the secret is there.
    assert moto_secret_names(ROLE_ACCOUNT) == ["db"]
    assert moto_secret_names(DEFAULT_ACCOUNT) == []
    for _ in range(2):  # new adapters, as new processes would: the sealed cache answers
        assert role_adapter().get("db").value == b"cross-account"
    assert sts_assumed_roles(ROLE_ACCOUNT) == 1
    # Four minutes before the credentials expire (inside the 5 minute margin): assume again.
    later = frozen(utcnow() + timedelta(minutes=56))
    assert role_adapter(clock=later).get("db").value == b"cross-account"
    assert sts_assumed_roles(ROLE_ACCOUNT) == 2


def test_without_a_quietly_unlocked_vault_nothing_is_cached(aws: MotoServer) -> None:
    for _ in range(2):
        backend = make_adapter(aws.endpoint, env="prod", role_arn=ROLE_ARN)
        backend.put("db", b"x", actor=ACTOR)
    assert sts_assumed_roles(ROLE_ACCOUNT) == 2
    indicators = {i.name: i for i in backend.get_health_indicators()}
    assert indicators["identity"].detail.startswith(f"arn:aws:sts::{ROLE_ACCOUNT}:assumed-role/")
    assert "sts" in indicators["role"].detail


def test_cache_entries_are_sealed(aws: MotoServer, tmp_path: Path, local_vault: Any) -> None:
    backend = make_adapter(aws.endpoint, env="prod", role_arn=ROLE_ARN, local_vault=local_vault)
    backend.put("db", b"x", actor=ACTOR)
    secret_key = backend.clients.role_credentials()["aws_secret_access_key"]
    local_vault().close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "v").glob("vault.db*"))
    assert secret_key.encode() not in raw
    assert ROLE_ARN.encode() not in raw  # entries are keyed by a digest


# --- health ---------------------------------------------------------------------------------


def test_status_and_health(adapter: AWSAdapter) -> None:
    status = adapter.get_module_status()
    assert status["backend"] == "aws" and status["prefix"] == "myapp/prod/"
    indicators = {i.name: i for i in adapter.get_health_indicators()}
    assert set(indicators) == {"reachable", "access", "identity", "kms_key", "latency"}
    assert indicators["identity"].detail.startswith("arn:aws:sts::123456789012:")
    assert isinstance(indicators["latency"].value, float)
    assert adapter.get_module_status()["last_latency_ms"] is not None


def test_version_not_kept(adapter: AWSAdapter) -> None:
    adapter.put("a", b"1", actor=ACTOR)
    with pytest.raises(VersionNotFound) as exc:
        adapter.get("a", 5)
    assert "100" in (exc.value.hint or "")
