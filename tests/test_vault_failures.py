"""Bad input and bad days on a `backend: vault` environment, each through the
CLI: one `error:` line and a `hint:`, the exit code from CLI.md, no traceback,
no token or value in any message."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import hvac
import pytest
from helpers.cli import invoke
from helpers.fake_kubernetes import self_signed
from helpers.openbao_server import (
    OpenBao,
    free_port,
    start_dev_server,
    start_sealed_server,
)
from helpers.vault_env import assert_error, unique_prefix, write_profile

TOKEN_CANARY = "s.token-canary-1b2c3d"


WriteProfile = Callable[..., Path]


@pytest.fixture
def profile(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> WriteProfile:
    """write(env options...) -> profile path, with 'staging' on Vault."""

    def write(**staging: object) -> Path:
        env = {"backend": "vault", "prefix": unique_prefix(), **staging}
        return write_profile(isolated, monkeypatch, {"staging": env})

    return write


def test_missing_address(profile: WriteProfile) -> None:
    profile()
    result = invoke(["get", "db", "-e", "staging"])
    assert_error(result, 2, "no Vault address", "VAULT_ADDR", "environments.staging.address")


def test_address_from_vault_addr(
    profile: WriteProfile,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    profile()
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    assert invoke(["put", "db", "-e", "staging"], input="x").exit_code == 0
    monkeypatch.setenv("VAULT_ADDR", "vault.example.com:8200")
    assert_error(invoke(["get", "db", "-e", "staging"]), 2, "invalid Vault address", "VAULT_ADDR")


def test_bad_token(
    profile: WriteProfile,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    profile(address=openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", TOKEN_CANARY)
    for args in (["get", "db"], ["ls"], ["history", "db"]):
        result = invoke([*args, "-e", "staging"])
        assert_error(result, 4, "Vault denied", "VAULT_TOKEN", secrets=(TOKEN_CANARY,))
    result = invoke(["put", "db", "-e", "staging"], input="value-canary-44")
    assert_error(result, 4, secrets=(TOKEN_CANARY, "value-canary-44"))


@pytest.mark.parametrize(
    ("kind", "options", "described"),
    [
        ("kv", {"version": "1"}, "it is kv version 1"),
        ("transit", None, "it is type 'transit'"),
    ],
)
def test_mount_that_is_not_kv_v2(
    profile: WriteProfile,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
    kind: str,
    options: dict[str, str] | None,
    described: str,
) -> None:
    mount = f"not-v2-{kind}"
    openbao.enable_engine(kind, mount, options)
    profile(address=openbao.address, mount=mount)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    for args in (["put", "db"], ["get", "db"], ["ls"], ["rm", "db"]):
        result = invoke([*args, "-e", "staging"], input="value")
        assert_error(result, 2, f"mount '{mount}/'", "not a KV version 2", described)
        assert "environments.staging.mount" in result.stderr
    if kind == "kv":  # the refused put left nothing behind on the v1 mount
        with pytest.raises(hvac.exceptions.InvalidPath):
            openbao.client().secrets.kv.v1.list_secrets("", mount_point=mount)


def test_mount_that_does_not_exist(
    profile: WriteProfile,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    profile(address=openbao.address, mount="nowhere")
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    for args in (["put", "db"], ["get", "db"]):
        result = invoke([*args, "-e", "staging"], input="v")
        assert_error(result, 2, "no secrets engine is mounted at 'nowhere/'", "mount")


def test_unreachable_server(profile: WriteProfile, monkeypatch: pytest.MonkeyPatch) -> None:
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    profile(address=address)
    monkeypatch.setenv("VAULT_TOKEN", TOKEN_CANARY)
    result = invoke(["get", "db", "-e", "staging"])
    assert_error(result, 6, f"cannot reach Vault at {address}", "connection refused", "attempts")
    assert "environments.staging.address" in result.stderr
    attempts = re.search(r"\((\d+) attempts\)", result.stderr)
    assert attempts is not None and int(attempts[1]) > 1, result.stderr  # it did retry


def test_server_that_never_answers(
    profile: WriteProfile, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A listener that accepts and stays silent (a hung server, a black-holing firewall):
    the attempt's read timeout is cut to the environment's budget (timeout: 1.5)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        profile(address=address, timeout=1.5)
        monkeypatch.setenv("VAULT_TOKEN", TOKEN_CANARY)
        result = invoke(["get", "db", "-e", "staging"])
    assert_error(result, 6, f"cannot reach Vault at {address}", "timed out", "1 attempt")
    assert "the time budget of 1.5 s (environments.staging.timeout) ran out" in result.stderr
    assert "environments.staging.timeout" in result.stderr.splitlines()[1]  # the hint


def test_server_stopped_mid_session(
    profile: WriteProfile, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = start_dev_server(tmp_path / "short-lived")
    try:
        profile(address=server.address)
        monkeypatch.setenv("VAULT_TOKEN", server.root_token)
        assert invoke(["put", "db", "-e", "staging"], input="x").exit_code == 0
        assert invoke(["get", "db", "-e", "staging"]).stdout == "x\n"
    finally:
        server.stop()
    result = invoke(["get", "db", "-e", "staging"])  # bounded by the budget (30 s)
    assert_error(result, 6, f"cannot reach Vault at {server.address}", secrets=(server.root_token,))
    write = invoke(["put", "db", "-e", "staging"], input="y")
    assert_error(write, 6, "cannot reach Vault")


def test_sealed_server(
    profile: WriteProfile, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = start_sealed_server(tmp_path / "sealed")
    try:
        profile(address=server.address)
        monkeypatch.setenv("VAULT_TOKEN", server.root_token)
        result = invoke(["get", "db", "-e", "staging"])
        assert_error(result, 6, "is sealed", "unseal", secrets=(server.root_token,))
        status = invoke(["status"])
        assert "FAIL staging.sealed" in status.stdout, status.stdout
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("auth", "needle"),
    [
        ("    auth:\n      method: approle\n      role_id_env: ROLE_ID\n", "secret_id_env"),
        ("    auth:\n      method: ldap\n", "must be one of"),
        ("    auth:\n      method: kubernetes\n", "role"),
        ("    auth:\n      method: token\n      role: x\n", "role"),
    ],
    ids=[
        "approle-without-secret_id_env",
        "unknown-method",
        "kubernetes-without-role",
        "token-with-role",
    ],
)
def test_auth_method_misconfigured(profile: WriteProfile, auth: str, needle: str) -> None:
    path = profile(address="http://127.0.0.1:1")
    text = path.read_text().rstrip("\n").split("\n")
    auth_line = len(text) + 1  # the 'auth:' line, appended under staging
    path.write_text("\n".join(text) + "\n" + auth)
    result = invoke(["get", "db", "-e", "staging"])
    assert_error(result, 2, "bsecrets.yaml:", "environments.staging.auth", needle)
    line = int(result.stderr.split("bsecrets.yaml:")[1].split(":")[0])
    assert auth_line <= line <= auth_line + 2, result.stderr


def test_approle_credentials_not_set(
    profile: WriteProfile,
    openbao: OpenBao,
) -> None:
    auth = {"method": "approle", "role_id_env": "MY_ROLE_ID", "secret_id_env": "MY_SECRET_ID"}
    profile(address=openbao.address, auth=auth)
    result = invoke(["get", "db", "-e", "staging"])
    assert_error(result, 4, "MY_ROLE_ID", "environments.staging.auth.role_id_env")


def test_wrong_approle_secret_id(
    profile: WriteProfile,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    openbao.enable_auth("approle")
    client = openbao.client()
    client.auth.approle.create_or_update_approle("bad-secret-test", token_policies=["default"])
    role_id = client.auth.approle.read_role_id("bad-secret-test")["data"]["role_id"]
    auth = {"method": "approle", "role_id_env": "R", "secret_id_env": "S"}
    profile(address=openbao.address, auth=auth)
    monkeypatch.setenv("R", role_id)
    monkeypatch.setenv("S", "secret-id-canary-5e6f")
    result = invoke(["get", "db", "-e", "staging"])
    assert_error(result, 4, "approle login", "R / S", secrets=("secret-id-canary-5e6f",))
    auth["mount"] = "no-such-approle"  # OpenBao answers 403 to a login at an unknown mount
    profile(address=openbao.address, auth=auth)
    result = invoke(["get", "db", "-e", "staging"])
    assert_error(result, 4, "auth/no-such-approle", "environments.staging.auth.mount")


def test_tls_with_the_dev_servers_ca(
    profile: WriteProfile,
    monkeypatch: pytest.MonkeyPatch,
    openbao_tls: OpenBao,
) -> None:
    assert openbao_tls.address.startswith("https://") and openbao_tls.ca_cert
    profile(address=openbao_tls.address, ca_cert=openbao_tls.ca_cert)
    monkeypatch.setenv("VAULT_TOKEN", openbao_tls.root_token)
    assert invoke(["put", "db", "-e", "staging"], input="over-tls").exit_code == 0
    assert invoke(["get", "db", "-e", "staging"]).stdout == "over-tls\n"


def test_tls_from_vault_cacert(
    profile: WriteProfile,
    monkeypatch: pytest.MonkeyPatch,
    openbao_tls: OpenBao,
) -> None:
    profile(address=openbao_tls.address)
    monkeypatch.setenv("VAULT_TOKEN", openbao_tls.root_token)
    assert_error(invoke(["ls", "-e", "staging"]), 6, "the default CA bundle", "VAULT_CACERT")
    monkeypatch.setenv("VAULT_CACERT", openbao_tls.ca_cert or "")
    assert invoke(["ls", "-e", "staging"]).exit_code == 0


def test_tls_with_the_wrong_ca_names_it(
    profile: WriteProfile,
    monkeypatch: pytest.MonkeyPatch,
    openbao_tls: OpenBao,
    tmp_path: Path,
) -> None:
    wrong_ca, _key, _pem = self_signed(tmp_path / "other-ca", "other")
    profile(address=openbao_tls.address, ca_cert=str(wrong_ca))
    monkeypatch.setenv("VAULT_TOKEN", openbao_tls.root_token)
    result = invoke(["get", "db", "-e", "staging"])
    assert_error(
        result,
        6,
        f"CA file {wrong_ca} (from environments.staging.ca_cert)",
        "TLS verification of https://127.0.0.1",
        "environments.staging.ca_cert",
        secrets=(openbao_tls.root_token,),
    )
    profile(address=openbao_tls.address, ca_cert=str(tmp_path / "missing.pem"))
    result = invoke(["get", "db", "-e", "staging"])
    assert_error(result, 2, "missing.pem", "does not exist")
