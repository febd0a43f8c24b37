"""``bsecrets doctor``'s backend checks (services/doctor/backends.py) against a real
OpenBao and moto's server: each remote environment reachable, who its credentials are,
when they end. Tokens are made through OpenBao's own API (a short TTL, revoked, an
AppRole); AWS credentials are static keys, a role bsecrets assumes, or temporary ones
from moto's STS. Every test plants the credentials it uses and checks that none of them
appears in any finding."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.aws_env import ROLE_ACCOUNT, ROLE_ARN, closed_port_endpoint
from helpers.cli import invoke
from helpers.moto_server import DEFAULT_ACCOUNT, REGION, MotoServer
from helpers.openbao_server import OpenBao, start_sealed_server
from helpers.vault_env import unique_prefix

from bsecrets.backends.vault.adapter import VaultAdapter
from bsecrets.cli.context import CliContext
from bsecrets.config.settings import Settings
from bsecrets.services.doctor import exit_code
from bsecrets.services.doctor.backends import check_backends
from bsecrets.services.doctor.findings import Finding, Status
from bsecrets.services.manager import SecretsManager

APPROLE_AUTH = {"method": "approle", "role_id_env": "APP_ROLE_ID", "secret_id_env": "APP_SECRET_ID"}


# --- helpers ---------------------------------------------------------------------------


def _yaml(data: Mapping[str, Any], indent: int = 0) -> list[str]:
    lines = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines += [f"{' ' * indent}{key}:", *_yaml(value, indent + 2)]
        else:
            lines.append(f"{' ' * indent}{key}: {json.dumps(value)}")
    return lines


def cli_manager(work: Path, environments: Mapping[str, Mapping[str, Any]]) -> SecretsManager:
    """A profile of ``environments`` (no local vault: the checks need none), and the
    SecretsManager the CLI builds for it."""
    profile = {"version": 1, "default_env": next(iter(environments)), "environments": environments}
    (work / "bsecrets.yaml").write_text("\n".join(_yaml(profile)) + "\n")
    settings = Settings.resolve(profile=None, env=None, json=False, quiet=True, no_color=True)
    return CliContext(settings).manager


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    table = {f.check: f for f in findings}
    assert len(table) == len(findings), findings
    return table


def assert_nothing_leaks(findings: list[Finding], *planted: str) -> None:
    text = repr(findings)
    for secret in planted:
        assert secret not in text, secret


def vault(address: str, token_env: str | None = None, **options: Any) -> dict[str, Any]:
    auth = {"method": "token", "token_env": token_env} if token_env else {"method": "token"}
    return {"backend": "vault", "address": address, "prefix": unique_prefix("doc")} | {
        "auth": auth,
        **options,
    }


def child_token(server: OpenBao, ttl: str, *, policies: list[str], renewable: bool = True) -> str:
    answer = server.client().auth.token.create(
        policies=policies, ttl=ttl, renewable=renewable, display_name="doctor-app"
    )
    return str(answer["auth"]["client_token"])


# --- Vault -----------------------------------------------------------------------------


def test_vault_tokens_identified_with_their_ttl(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    """A 3-day renewable token: OK; a 2-hour one: WARN (renew it); root: WARN, no expiry."""
    openbao.client().sys.create_or_update_policy(
        "doctor-app", 'path "secret/*" {capabilities = ["read"]}'
    )
    long_lived = child_token(openbao, "72h", policies=["default", "doctor-app"])
    short = child_token(openbao, "2h", policies=["default"])
    monkeypatch.setenv("APP_TOKEN", long_lived)
    monkeypatch.setenv("SHORT_TOKEN", short)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    manager = cli_manager(
        isolated,
        {
            "app": vault(openbao.address, "APP_TOKEN"),
            "short": vault(openbao.address, "SHORT_TOKEN"),
            "admin": vault(openbao.address),
        },
    )
    findings = check_backends(manager, True)  # --fix: nothing remote is repaired
    found = by_check(findings)
    assert set(found) == {f"backend.{e}.{c}" for e in ("app", "short", "admin")
                          for c in ("reachable", "identity", "expiry")}  # fmt: skip

    reachable = found["backend.app.reachable"]
    assert reachable.status is Status.OK
    assert openbao.address in reachable.detail and "unsealed" in reachable.detail
    identity = found["backend.app.identity"]
    assert identity.status is Status.OK, identity
    assert "token-doctor-app" in identity.detail  # OpenBao's display name
    assert "policies default, doctor-app" in identity.detail and "from APP_TOKEN" in identity.detail
    expiry = found["backend.app.expiry"]
    assert expiry.status is Status.OK and "renewable" in expiry.detail, expiry
    assert "in 2d23h" in expiry.detail or "in 3d" in expiry.detail, expiry

    expiry = found["backend.short.expiry"]
    assert expiry.status is Status.WARN, expiry
    assert "in 1h59m" in expiry.detail or "in 2h" in expiry.detail, expiry
    assert expiry.hint is not None and "token renew" in expiry.hint

    identity = found["backend.admin.identity"]
    assert identity.status is Status.WARN and "root token" in identity.detail, identity
    assert identity.hint is not None and "bsecrets vault policy -e admin" in identity.hint
    assert found["backend.admin.expiry"] == Finding(
        "backend.admin.expiry", Status.OK, "the token does not expire (TTL 0)"
    )

    assert all(f.fixed is None for f in findings)
    looked_up = openbao.client().auth.token.lookup(short)["data"]
    assert not looked_up.get("last_renewal_time"), "--fix must not renew a token"
    assert_nothing_leaks(findings, long_lived, short, openbao.root_token)


def test_a_revoked_token_fails(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    token = child_token(openbao, "1h", policies=["default"])
    openbao.client().auth.token.revoke(token)
    monkeypatch.setenv("VAULT_TOKEN", token)
    manager = cli_manager(isolated, {"staging": vault(openbao.address)})
    findings = check_backends(manager, False)
    found = by_check(findings)
    assert found["backend.staging.reachable"].status is Status.OK  # Vault answers...
    identity = found["backend.staging.identity"]  # ...and refuses the token
    assert identity.status is Status.FAIL and not identity.integrity, identity
    assert "invalid, expired or revoked" in identity.detail and "'staging'" in identity.detail
    assert identity.hint is not None and "log in again" in identity.hint
    assert "VAULT_TOKEN" in identity.hint
    assert found["backend.staging.expiry"].status is Status.SKIP
    assert exit_code(findings) == 1
    assert_nothing_leaks(findings, token)


def test_an_approle_login_is_identified_and_renews_itself(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    """A 1-hour login token is no warning: bsecrets logs in again when it ends."""
    role = unique_prefix("doctor-role")
    openbao.enable_auth("approle")
    client = openbao.client()
    client.auth.approle.create_or_update_approle(role, token_policies=["default"], token_ttl="1h")
    role_id = client.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    monkeypatch.setenv("APP_ROLE_ID", role_id)
    monkeypatch.setenv("APP_SECRET_ID", secret_id)
    manager = cli_manager(isolated, {"ci": vault(openbao.address) | {"auth": APPROLE_AUTH}})
    findings = check_backends(manager, False)
    found = by_check(findings)
    identity = found["backend.ci.identity"]
    assert identity.status is Status.OK, identity
    assert f"role {role}" in identity.detail and "auth approle" in identity.detail
    assert "from approle login at auth/approle (APP_ROLE_ID / APP_SECRET_ID)" in identity.detail
    expiry = found["backend.ci.expiry"]
    assert expiry.status is Status.OK and "logs in again" in expiry.detail, expiry
    assert exit_code(findings) == 0
    adapter = manager.backend("ci")
    assert isinstance(adapter, VaultAdapter)
    assert_nothing_leaks(findings, secret_id, adapter.vault.client.token)


def test_an_unreachable_vault_fails_and_an_offline_one_warns(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "planted-token-never-shown")
    down, cached = closed_port_endpoint(), closed_port_endpoint()
    manager = cli_manager(
        isolated,
        {
            "down": vault(down, timeout=1),
            "cached": vault(cached, timeout=1, offline={"max_stale": "24h"}),
        },
    )
    findings = check_backends(manager, False)
    found = by_check(findings)
    reachable = found["backend.down.reachable"]
    assert reachable.status is Status.FAIL and down in reachable.detail, reachable
    assert "connection refused" in reachable.detail
    assert reachable.hint is not None and "VAULT_ADDR" in reachable.hint
    assert found["backend.down.identity"].status is Status.SKIP
    assert found["backend.down.expiry"].status is Status.SKIP
    offline = found["backend.cached.reachable"]
    assert offline.status is Status.WARN and cached in offline.detail, offline
    assert "reads fall back" in offline.detail
    assert exit_code(findings) == 1  # the FAIL makes doctor exit non-zero
    assert_nothing_leaks(findings, "planted-token-never-shown")


def test_a_sealed_vault_fails(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = start_sealed_server(tmp_path / "sealed")
    try:
        monkeypatch.setenv("VAULT_TOKEN", server.root_token)
        findings = check_backends(cli_manager(isolated, {"vault": vault(server.address)}), False)
    finally:
        server.stop()
    reachable = by_check(findings)["backend.vault.reachable"]
    assert reachable.status is Status.FAIL and "is sealed" in reachable.detail, reachable
    assert reachable.hint is not None and "operator unseal" in reachable.hint
    assert by_check(findings)["backend.vault.identity"].status is Status.SKIP
    assert_nothing_leaks(findings, server.root_token)


def test_doctor_json_reports_the_vault_environments(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    """End to end through ``bsecrets doctor --json``: a good token and a revoked one."""
    good = child_token(openbao, "72h", policies=["default"])
    gone = child_token(openbao, "1h", policies=["default"])
    openbao.client().auth.token.revoke(gone)
    monkeypatch.setenv("GOOD_TOKEN", good)
    monkeypatch.setenv("GONE_TOKEN", gone)
    cli_manager(
        isolated,
        {
            "staging": vault(openbao.address, "GOOD_TOKEN"),
            "gone": vault(openbao.address, "GONE_TOKEN"),
        },
    )
    result = invoke(["doctor", "--json"])
    document = json.loads(result.stdout)
    assert document["exit_code"] == result.exit_code == 1, result.stdout + result.stderr
    found = {f["check"]: f for f in document["findings"] if f["check"].startswith("backend.")}
    assert {c: f["status"] for c, f in found.items()} == {
        "backend.staging.reachable": "ok",
        "backend.staging.identity": "ok",
        "backend.staging.expiry": "ok",
        "backend.gone.reachable": "ok",
        "backend.gone.identity": "fail",
        "backend.gone.expiry": "skip",
    }
    assert "token-doctor-app" in found["backend.staging.identity"]["detail"]
    assert "GONE_TOKEN" in found["backend.gone.identity"]["hint"]
    assert found["backend.gone.identity"]["integrity"] is False
    for token in (good, gone):
        assert token not in result.stdout + result.stderr


# --- AWS -------------------------------------------------------------------------------


def aws_env(endpoint: str, **options: Any) -> dict[str, Any]:
    return {"backend": "aws", "region": REGION, "endpoint_url": endpoint, **options}


def test_aws_static_keys_and_an_assumed_role(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, aws: MotoServer
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADOCTORPLANTED001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "doctor-planted-secret-key")
    manager = cli_manager(
        isolated,
        {"prod": aws_env(aws.endpoint), "role": aws_env(aws.endpoint, role_arn=ROLE_ARN)},
    )
    findings = check_backends(manager, False)
    found = by_check(findings)
    assert found["backend.prod.reachable"] == Finding(
        "backend.prod.reachable", Status.OK, f"{aws.endpoint}: Secrets Manager answers"
    )
    identity = found["backend.prod.identity"]
    assert identity.status is Status.OK, identity
    assert f"arn:aws:sts::{DEFAULT_ACCOUNT}:" in identity.detail
    assert f"account {DEFAULT_ACCOUNT}; region {REGION}" in identity.detail
    assert "from the AWS SDK's 'env' credentials" in identity.detail
    expiry = found["backend.prod.expiry"]
    assert expiry.status is Status.OK and "static access keys" in expiry.detail, expiry

    identity = found["backend.role.identity"]
    assert identity.status is Status.OK, identity
    assert f"arn:aws:sts::{ROLE_ACCOUNT}:assumed-role/bsecrets-prod/" in identity.detail
    assert f"role {ROLE_ARN}, assumed by bsecrets" in identity.detail
    expiry = found["backend.role.expiry"]
    assert expiry.status is Status.OK and "role assumed again" in expiry.detail, expiry
    assert "in 59m" in expiry.detail or "in 1h" in expiry.detail, expiry
    assert exit_code(findings) == 0
    assert_nothing_leaks(findings, "AKIADOCTORPLANTED001", "doctor-planted-secret-key")


def test_aws_temporary_credentials_from_variables(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, aws: MotoServer
) -> None:
    """Session credentials from moto's STS: without AWS_CREDENTIAL_EXPIRATION their end is
    not known (OK, said so); ending in 10 minutes, with nothing to renew them: WARN."""
    creds = aws.client("sts").assume_role(RoleArn=ROLE_ARN, RoleSessionName="doctor")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    planted = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    environments = {"prod": aws_env(aws.endpoint)}

    findings = check_backends(cli_manager(isolated, environments), False)
    expiry = by_check(findings)["backend.prod.expiry"]
    assert expiry.status is Status.OK and "when they end is not known" in expiry.detail, expiry
    assert_nothing_leaks(findings, *planted)

    soon = datetime.now(UTC) + timedelta(minutes=10)
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", soon.isoformat())
    findings = check_backends(cli_manager(isolated, environments), False)
    expiry = by_check(findings)["backend.prod.expiry"]
    assert expiry.status is Status.WARN and "nothing renews them" in expiry.detail, expiry
    assert "in 9m" in expiry.detail or "in 10m" in expiry.detail, expiry
    assert expiry.hint is not None and "AWS_SESSION_TOKEN" in expiry.hint
    assert_nothing_leaks(findings, *planted)


def expired_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """Session credentials in the variables whose AWS_CREDENTIAL_EXPIRATION has passed."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", "doctor-planted-session-token")
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "2020-01-01T00:00:00Z")


def test_aws_credentials_that_ended_fail(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, aws: MotoServer
) -> None:
    expired_session(monkeypatch)
    findings = check_backends(cli_manager(isolated, {"prod": aws_env(aws.endpoint)}), False)
    found = by_check(findings)
    identity = found["backend.prod.identity"]
    assert identity.status is Status.FAIL, identity
    assert "ended at 2020-01-01T00:00:00.000Z" in identity.detail
    assert identity.hint is not None and "AWS_CREDENTIAL_EXPIRATION" in identity.hint
    assert found["backend.prod.expiry"].status is Status.SKIP
    assert_nothing_leaks(findings, "doctor-planted-session-token")


def test_a_command_with_ended_aws_credentials_is_denied(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, aws: MotoServer
) -> None:
    expired_session(monkeypatch)
    cli_manager(isolated, {"prod": aws_env(aws.endpoint)})
    result = invoke(["get", "db", "-e", "prod"])
    assert result.exit_code == 4, result.stderr
    assert result.stderr.startswith("error: AWS credentials have expired")
    assert "hint: refresh the AWS credentials" in result.stderr


def test_an_unreachable_aws_endpoint_fails(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, aws: MotoServer
) -> None:
    endpoint = closed_port_endpoint()
    manager = cli_manager(isolated, {"prod": aws_env(endpoint, timeout=1)})
    findings = check_backends(manager, False)
    found = by_check(findings)
    reachable = found["backend.prod.reachable"]
    assert reachable.status is Status.FAIL and endpoint in reachable.detail, reachable
    assert reachable.hint is not None and "endpoint_url" in reachable.hint
    assert found["backend.prod.identity"].status is Status.SKIP
    assert exit_code(findings) == 1


def test_local_environments_are_not_this_checks_business(isolated: Path) -> None:
    manager = cli_manager(isolated, {"dev": {"backend": "local"}})
    assert check_backends(manager, False) == []
