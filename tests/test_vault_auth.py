"""Logging in to a real OpenBao: AppRole with the policy `bsecrets vault policy`
prints (and another environment's prefix out of reach), Kubernetes (with a fake
TokenReview API, the only faked part), JWT for CI, and the sealed token cache
(no login per command, renewal, a revoked token replaced). Logins are counted
by OpenBao itself: each one makes a token, listed under auth/token/accessors."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers.cli import invoke, run_cli
from helpers.fake_kubernetes import FakeTokenReview, make_jwt
from helpers.local_vault import make_vault
from helpers.openbao_server import OpenBao
from helpers.vault_env import assert_error, make_adapter, unique_prefix, vault_env, write_profile

from bsecrets.backends.vault.policy import render_policy
from bsecrets.timeutil import utcnow

APPROLE_AUTH = {"method": "approle", "role_id_env": "APP_ROLE_ID", "secret_id_env": "APP_SECRET_ID"}


def ok(args: list[str], input: str | None = None) -> str:
    result = invoke(args, input=input)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def logins(server: OpenBao, meta_key: str, meta_value: str) -> int:
    """How many live tokens OpenBao issued by a login whose metadata matches."""
    client = server.client()
    count = 0
    for accessor in client.auth.token.list_accessors()["data"]["keys"]:
        meta = client.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}
        count += meta.get(meta_key) == meta_value
    return count


def approle(server: OpenBao, name: str, policy: str, **role: Any) -> tuple[str, str]:
    """A role whose tokens carry only ``policy``; its (role id, secret id)."""
    server.enable_auth("approle")
    client = server.client()
    client.sys.create_or_update_policy(name, policy)
    role = {"token_ttl": "1h", "token_max_ttl": "4h"} | role
    client.auth.approle.create_or_update_approle(name, token_policies=[name], **role)
    role_id = client.auth.approle.read_role_id(name)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(name)["data"]["secret_id"]
    return role_id, secret_id


@pytest.fixture
def two_envs(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> dict[str, str]:
    """'staging' and 'prod' on OpenBao with one AppRole, confined by
    `bsecrets vault policy -e staging`; prod holds a secret it must not read."""
    parent = unique_prefix()
    write_profile(
        isolated,
        monkeypatch,
        {
            "staging": vault_env(openbao.address, f"{parent}/staging", auth=APPROLE_AUTH),
            "prod": vault_env(openbao.address, f"{parent}/prod", auth=APPROLE_AUTH),
        },
    )
    role_id, secret_id = approle(
        openbao, f"{parent}-staging", ok(["vault", "policy", "-e", "staging"])
    )
    monkeypatch.setenv("APP_ROLE_ID", role_id)
    monkeypatch.setenv("APP_SECRET_ID", secret_id)
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(f"{parent}/prod/db", {"value": "prod-canary-77"})
    return {"role": f"{parent}-staging", "secret_id": secret_id, "parent": parent}


def test_approle_policy_allows_every_command_on_its_prefix(two_envs: dict[str, str]) -> None:
    ok(["put", "db", "-e", "staging", "--tag", "a=b"], "one")
    ok(["put", "db", "-e", "staging"], "two")
    assert ok(["get", "db", "-e", "staging"]) == "two\n"
    assert ok(["get", "db", "-e", "staging", "--version", "1"]) == "one\n"
    assert "db" in ok(["ls", "-e", "staging"])
    assert "v2" in ok(["history", "db", "-e", "staging"])
    ok(["rollback", "db", "--to", "1", "-e", "staging"])
    assert invoke(["rm", "db", "-e", "staging"]).exit_code == 0
    ok(["restore", "db", "-e", "staging"])
    assert invoke(["rm", "db", "-e", "staging", "--purge", "--yes"]).exit_code == 0
    assert_error(invoke(["get", "db", "-e", "staging"]), 3)


def test_approle_cannot_reach_another_environment(two_envs: dict[str, str]) -> None:
    secrets = (two_envs["secret_id"], "prod-canary-77")
    assert_error(invoke(["get", "db", "-e", "prod"]), 4, "denied", "prod", secrets=secrets)
    assert_error(invoke(["put", "db", "-e", "prod"], input="x"), 4, secrets=secrets)
    assert_error(invoke(["ls", "-e", "prod"]), 4, secrets=secrets)
    assert_error(invoke(["history", "db", "-e", "prod"]), 4, secrets=secrets)
    assert_error(invoke(["rm", "db", "-e", "prod"]), 4, secrets=secrets)


def test_read_only_policy(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    prefix = unique_prefix()
    write_profile(
        isolated,
        monkeypatch,
        {"staging": vault_env(openbao.address, prefix, auth=APPROLE_AUTH)},
    )
    openbao.client().secrets.kv.v2.create_or_update_secret(f"{prefix}/db", {"value": "r"})
    role_id, secret_id = approle(
        openbao, f"{prefix}-ro", ok(["vault", "policy", "-e", "staging", "--read-only"])
    )
    monkeypatch.setenv("APP_ROLE_ID", role_id)
    monkeypatch.setenv("APP_SECRET_ID", secret_id)
    assert ok(["get", "db", "-e", "staging"]) == "r\n"
    assert "db" in ok(["ls", "-e", "staging"])
    assert_error(invoke(["put", "db", "-e", "staging"], input="w"), 4, "denied")
    assert_error(invoke(["rm", "db", "-e", "staging"]), 4, "denied")


def test_second_get_performs_no_login(two_envs: dict[str, str], openbao: OpenBao) -> None:
    role = two_envs["role"]
    ok(["put", "db", "-e", "staging"], "value")
    assert logins(openbao, "role_name", role) == 1
    for _ in range(2):  # fresh processes, as a user would run them
        done = run_cli(["get", "db", "-e", "staging"])
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"value\n"
    assert logins(openbao, "role_name", role) == 1


def test_revoked_cached_token_is_replaced(two_envs: dict[str, str], openbao: OpenBao) -> None:
    ok(["put", "db", "-e", "staging"], "value")
    client = openbao.client()
    for accessor in client.auth.token.list_accessors()["data"]["keys"]:
        meta = client.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}
        if meta.get("role_name") == two_envs["role"]:
            client.auth.token.revoke_accessor(accessor)
    assert logins(openbao, "role_name", two_envs["role"]) == 0
    assert ok(["get", "db", "-e", "staging"]) == "value\n"
    assert logins(openbao, "role_name", two_envs["role"]) == 1


def test_without_the_local_vault_every_command_logs_in(
    two_envs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    monkeypatch.delenv("BSECRETS_PASSPHRASE")  # the local vault would need a prompt: no cache
    ok(["put", "db", "-e", "staging"], "value")
    assert ok(["get", "db", "-e", "staging"]) == "value\n"
    assert logins(openbao, "role_name", two_envs["role"]) == 2


def test_token_is_renewed_when_due_and_replaced_after_expiry(
    tmp_path: Path,
    openbao: OpenBao,
) -> None:
    prefix = unique_prefix()
    policy = render_policy("staging", {"mount": "secret", "prefix": prefix})
    role_id, secret_id = approle(
        openbao, f"{prefix}-renew", policy, token_ttl="120s", token_max_ttl="1h"
    )
    local = make_vault(tmp_path / "v" / "vault.db")
    start = utcnow()
    environ = {"APP_ROLE_ID": role_id, "APP_SECRET_ID": secret_id}

    def at(seconds: int) -> Any:
        return make_adapter(
            openbao.address,
            prefix,
            environ=environ,
            auth=APPROLE_AUTH | {"mount": "approle"},
            clock=lambda: start + dt.timedelta(seconds=seconds),
            local_vault=lambda: local,
        )

    def token_info() -> dict[str, Any]:
        client = openbao.client()
        for accessor in client.auth.token.list_accessors()["data"]["keys"]:
            data: dict[str, Any] = client.auth.token.lookup_accessor(accessor)["data"]
            if (data.get("meta") or {}).get("role_name") == f"{prefix}-renew":
                return data
        raise AssertionError("no token")

    first = at(0)
    first.put("k", b"v", actor="t@h")
    assert first.auth.logins == 1
    cached = at(30)  # a third of the TTL: used as it is
    assert cached.get("k").value == b"v" and cached.auth.logins == 0
    assert "last_renewal" not in token_info()
    due = at(90)  # past two thirds: renewed, not replaced
    assert due.get("k").value == b"v" and due.auth.logins == 0
    assert "last_renewal" in token_info()
    assert logins(openbao, "role_name", f"{prefix}-renew") == 1
    later = at(90 + 200)  # past the renewed expiry: a fresh login
    assert later.get("k").value == b"v" and later.auth.logins == 1
    assert logins(openbao, "role_name", f"{prefix}-renew") == 2


def test_kubernetes_login(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    prefix = unique_prefix()
    mount = f"k8s-{prefix}"
    openbao.enable_auth("kubernetes", path=mount)
    client = openbao.client()
    policy = render_policy("staging", {"mount": "secret", "prefix": prefix})
    client.sys.create_or_update_policy(mount, policy)
    jwt_file = isolated / "sa-token"
    write_profile(
        isolated,
        monkeypatch,
        {
            "staging": vault_env(
                openbao.address,
                prefix,
                auth={
                    "method": "kubernetes",
                    "role": "web",
                    "jwt_path": str(jwt_file),
                    "mount": mount,
                },
            )
        },
    )
    with FakeTokenReview(isolated / "k8s") as k8s:
        client.auth.kubernetes.configure(
            kubernetes_host=k8s.host,
            kubernetes_ca_cert=k8s.ca_pem,
            disable_local_ca_jwt=True,
            mount_point=mount,
        )
        client.auth.kubernetes.create_role(
            "web",
            bound_service_account_names=["web"],
            bound_service_account_namespaces=["apps"],
            policies=[mount],
            mount_point=mount,
        )
        jwt_file.write_text(k8s.service_account_token("apps", "web"))
        ok(["put", "db", "-e", "staging"], "from-a-pod")
        assert ok(["get", "db", "-e", "staging"]) == "from-a-pod\n"
        assert k8s.reviews == 1  # logged in once, then the cached token
        assert logins(openbao, "service_account_namespace", "apps") >= 1

        jwt_file.write_text(k8s.service_account_token("other", "web"))  # wrong namespace
        assert_error(invoke(["get", "db", "-e", "staging"]), 4, "kubernetes login", "namespace")
        rejected = k8s.service_account_token("apps", "web", accepted=False)
        jwt_file.write_text(rejected)  # TokenReview says: not authenticated
        assert_error(invoke(["get", "db", "-e", "staging"]), 4, secrets=(rejected,))
    jwt_file.unlink()
    assert_error(invoke(["get", "db", "-e", "staging"]), 4, str(jwt_file), "jwt_path")


def test_jwt_login_for_ci(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    prefix = unique_prefix()
    mount = f"jwt-{prefix}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    openbao.enable_auth("jwt", path=mount)
    client = openbao.client()
    client.sys.create_or_update_policy(
        mount, render_policy("staging", {"mount": "secret", "prefix": prefix}, read_only=True)
    )
    client.auth.jwt.configure(jwt_validation_pubkeys=[public.decode()], path=mount)
    client.auth.jwt.create_role(
        "ci",
        role_type="jwt",
        user_claim="sub",
        bound_audiences=["bsecrets"],
        allowed_redirect_uris=[],
        token_policies=[mount],
        path=mount,
    )
    client.secrets.kv.v2.create_or_update_secret(f"{prefix}/deploy-key", {"value": "k3y"})
    write_profile(
        isolated,
        monkeypatch,
        {
            "staging": vault_env(
                openbao.address,
                prefix,
                auth={"method": "jwt", "role": "ci", "token_env": "CI_JOB_JWT", "mount": mount},
            )
        },
    )
    now = int(time.time())
    claims = {"iss": "https://ci.example", "sub": "repo:app:ref:main", "iat": now, "nbf": now}
    monkeypatch.setenv("CI_JOB_JWT", make_jwt(claims | {"aud": "bsecrets", "exp": now + 300}, key))
    assert ok(["get", "deploy-key", "-e", "staging"]) == "k3y\n"
    assert_error(invoke(["put", "deploy-key", "-e", "staging"], input="x"), 4)  # read-only
    wrong = make_jwt(claims | {"aud": "someone-else", "exp": now + 300}, key)
    monkeypatch.setenv("CI_JOB_JWT", wrong)
    assert_error(invoke(["get", "deploy-key", "-e", "staging"]), 4, "jwt login", secrets=(wrong,))
    monkeypatch.delenv("CI_JOB_JWT")
    assert_error(invoke(["get", "deploy-key", "-e", "staging"]), 4, "CI_JOB_JWT")


def test_token_from_token_env_or_token_helper_file(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    prefix = unique_prefix()
    openbao.client().secrets.kv.v2.create_or_update_secret(f"{prefix}/k", {"value": "t"})
    write_profile(
        isolated,
        monkeypatch,
        {
            "staging": vault_env(openbao.address, prefix),
            "other": vault_env(
                openbao.address, prefix, auth={"method": "token", "token_env": "TEAM_TOKEN"}
            ),
        },
    )
    assert_error(invoke(["get", "k", "-e", "staging"]), 4, "VAULT_TOKEN is not set", "hint:")
    (Path.home() / ".vault-token").write_text(openbao.root_token + "\n")  # as `bao login` leaves
    assert ok(["get", "k", "-e", "staging"]) == "t\n"
    assert_error(invoke(["get", "k", "-e", "other"]), 4, "TEAM_TOKEN is not set")
    monkeypatch.setenv("TEAM_TOKEN", openbao.root_token)
    assert ok(["get", "k", "-e", "other"]) == "t\n"
