"""The everyday commands on a `backend: vault` environment, through the CLI,
against a real OpenBao: same commands, same output, same exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import invoke
from helpers.loopback_proxy import LoopbackProxy as VaultProxy
from helpers.openbao_server import OpenBao
from helpers.vault_env import assert_error, unique_prefix, vault_env, write_profile

VALUE = "v1-canary-3f9a"


@pytest.fixture
def staging(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> str:
    """A profile whose 'staging' is on OpenBao (root token in VAULT_TOKEN); its prefix."""
    prefix = unique_prefix()
    write_profile(isolated, monkeypatch, {"staging": vault_env(openbao.address, prefix)})
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    return prefix


def ok(args: list[str], input: str | None = None) -> str:
    result = invoke(args, input=input)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_round_trip(staging: str, openbao: OpenBao) -> None:
    assert ok(["put", "db/password", "-e", "staging", "--tag", "team=core"], VALUE) == (
        "db/password v1 (staging)\n"
    )
    assert ok(["put", "db/password", "-e", "staging", "--description", "main db"], "v2") == (
        "db/password v2 (staging)\n"
    )
    assert ok(["get", "db/password", "-e", "staging"]) == "v2\n"
    assert ok(["get", "db/password", "-e", "staging", "--version", "1"]) == f"{VALUE}\n"
    got = json.loads(ok(["get", "db/password", "-e", "staging", "--json"]))
    assert got["version"] == 2 and got["tags"] == {"team": "core"}
    assert got["description"] == "main db" and got["env"] == "staging"

    listing = json.loads(ok(["ls", "-e", "staging", "--json"]))
    assert [(s["name"], s["version"], s["tags"]) for s in listing] == [
        ("db/password", 2, {"team": "core"})
    ]
    history = json.loads(ok(["history", "db/password", "-e", "staging", "--json"]))
    assert [(h["version"], h["state"]) for h in history] == [(1, "previous"), (2, "current")]

    assert ok(["rollback", "db/password", "--to", "1", "-e", "staging"]) == (
        "db/password v3 (staging) = v1\n"
    )
    assert ok(["get", "db/password", "-e", "staging", "--raw"]) == VALUE
    kv = openbao.client().secrets.kv.v2
    stored = kv.read_secret_version(f"{staging}/db/password", raise_on_deleted_version=True)
    assert stored["data"]["data"] == {"value": VALUE}  # another client sees the rollback

    assert invoke(["rm", "db/password", "-e", "staging"]).exit_code == 0
    assert_error(invoke(["get", "db/password", "-e", "staging"]), 3, "was deleted", "restore")
    assert json.loads(ok(["ls", "-e", "staging", "--json"])) == []
    assert "(deleted)" in ok(["ls", "-e", "staging", "--deleted"])
    assert ok(["restore", "db/password", "-e", "staging", "--json"]) == (
        json.dumps({"name": "db/password", "version": 3}, indent=2, sort_keys=True) + "\n"
    )
    assert ok(["get", "db/password", "-e", "staging"]) == f"{VALUE}\n"

    assert invoke(["rm", "db/password", "-e", "staging", "--purge", "--yes"]).exit_code == 0
    assert_error(invoke(["history", "db/password", "-e", "staging"]), 3, "not found")
    assert ok(["put", "db/password", "-e", "staging"], "again") == "db/password v1 (staging)\n"


def test_default_env_and_global_option(staging: str, isolated: Path) -> None:
    ok(["-e", "staging", "put", "k"], "x")
    assert ok(["-e", "staging", "get", "k"]) == "x\n"
    assert_error(invoke(["get", "k"]), 3)  # dev is the local vault: not there


def test_if_version(staging: str) -> None:
    ok(["put", "k", "-e", "staging", "--if-version", "0"], "a")
    assert_error(
        invoke(["put", "k", "-e", "staging", "--if-version", "0"], input="b"), 7, "version 1"
    )
    assert_error(invoke(["put", "k", "-e", "staging", "--if-version", "5"], input="b"), 7)
    ok(["put", "k", "-e", "staging", "--if-version", "1"], "b")
    assert ok(["get", "k", "-e", "staging"]) == "b\n"


def test_foreign_writer_between_read_and_write_is_a_conflict(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    """The foreign write lands after bsecrets read version 1 and before it writes:
    check-and-set makes Vault refuse, exit 7, and the foreign value stays."""
    prefix = unique_prefix()
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(f"{prefix}/api-key", {"value": "original"})
    with VaultProxy(openbao.address) as proxy:
        write_profile(isolated, monkeypatch, {"staging": vault_env(proxy.address, prefix)})
        monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
        raced = []

        def foreign_write(method: str, path: str) -> None:
            if method == "GET" and path == f"/v1/secret/metadata/{prefix}/api-key" and not raced:
                raced.append(kv.create_or_update_secret(f"{prefix}/api-key", {"value": "theirs"}))

        proxy.after = foreign_write
        result = invoke(["put", "api-key", "-e", "staging"], input="mine")
        assert raced, proxy.requests
        assert_error(result, 7, "changed in Vault", "nothing was overwritten", secrets=("mine",))
        posts = [p for m, p in proxy.requests if m == "POST"]
        assert posts == [f"/v1/secret/data/{prefix}/api-key"]  # one write, no retry
    current = kv.read_secret_version(f"{prefix}/api-key", raise_on_deleted_version=True)["data"]
    assert current["data"] == {"value": "theirs"} and current["metadata"]["version"] == 2


def test_retries_ride_out_a_burst_of_503(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    openbao: OpenBao,
) -> None:
    prefix = unique_prefix()
    openbao.client().secrets.kv.v2.create_or_update_secret(f"{prefix}/k", {"value": "ok"})
    with VaultProxy(openbao.address) as proxy:
        write_profile(isolated, monkeypatch, {"staging": vault_env(proxy.address, prefix)})
        monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
        proxy.fail_next(503, 429)
        assert ok(["get", "k", "-e", "staging"]) == "ok\n"
        assert proxy.requests == [("GET", f"/v1/secret/data/{prefix}/k")] * 3
        # a write Vault refused with 503 (sealed, standby) was not applied: retried
        proxy.fail_next(503, method="POST", path=f"/v1/secret/data/{prefix}/k")
        assert ok(["put", "k", "-e", "staging"], "new") == "k v2 (staging)\n"
        writes = [p for m, p in proxy.requests if m == "POST"]
        assert writes == [f"/v1/secret/data/{prefix}/k"] * 2
        # a 500 on a write may have been applied: no retry, and the user is told
        proxy.fail_next(500, method="POST", path=f"/v1/secret/data/{prefix}/k")
        result = invoke(["put", "k", "-e", "staging"], input="newer")
        assert_error(
            result, 6, "HTTP 500", "may have been applied", "bsecrets history k", secrets=("newer",)
        )
        assert ok(["get", "k", "-e", "staging"]) == "new\n"


def test_status_shows_vault_health(staging: str, openbao: OpenBao) -> None:
    state = json.loads(ok(["status", "--json"]))
    assert state["environments"]["staging"]["backend"] == "vault"
    assert state["environments"]["staging"]["address"] == openbao.address
    indicators = {i["name"]: i for i in state["indicators"]}
    for name in ("staging.reachable", "staging.sealed", "staging.token", "staging.latency"):
        assert indicators[name]["ok"], indicators
    assert openbao.root_token not in json.dumps(state)


def test_field_selection_through_the_cli(staging: str, openbao: OpenBao) -> None:
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(f"{staging}/db", {"user": "app", "password": "pw"})
    assert ok(["get", "db#user", "-e", "staging"]) == "app\n"


def test_foreign_object_through_the_cli(staging: str, openbao: OpenBao) -> None:
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(f"{staging}/db", {"user": "app", "password": "pw"})
    assert ok(["get", "db", "-e", "staging"]) == '{"password": "pw", "user": "app"}\n'


def test_names_that_would_leave_the_prefix(staging: str) -> None:
    result = invoke(["put", "x/../../prod/db", "-e", "staging"], input="v")
    assert_error(result, 2, "invalid secret name", "hint:")


def test_policy_command(staging: str) -> None:
    hcl = ok(["vault", "policy", "-e", "staging"])
    assert f'path "secret/data/{staging}/*" {{' in hcl
    assert 'capabilities = ["create", "read", "update"]' in hcl
    assert f'path "secret/undelete/{staging}/*"' in hcl
    read_only = ok(["-e", "staging", "vault", "policy", "--read-only"])
    assert f'path "secret/metadata/{staging}/*" {{\n  capabilities = ["read", "list"]' in read_only
    granted = [line for line in read_only.splitlines() if "capabilities" in line]
    assert granted == ['  capabilities = ["read"]', '  capabilities = ["read", "list"]']
    assert_error(invoke(["vault", "policy", "-e", "dev"]), 2, "local backend", "staging")
    assert_error(invoke(["vault", "policy", "-e", "nope"]), 3, "unknown environment")
