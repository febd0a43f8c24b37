"""The Vault adapter against a real OpenBao: the backend contract, then what only
Vault promises (KV v2 layout other clients read, foreign objects and fields,
names that cannot leave the prefix, metadata limits, namespaces, health)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import hvac
import pytest
from helpers.openbao_server import OpenBao
from helpers.vault_env import make_adapter, unique_prefix

from bsecrets.backends.vault.adapter import VaultAdapter
from bsecrets.errors import InvalidName, SecretNotFound, UsageError, VersionNotFound
from bsecrets.testing.backend import ACTOR, BackendContract


def adapter(server: OpenBao, prefix: str | None = None, **options: Any) -> VaultAdapter:
    environ = options.pop("environ", {"VAULT_TOKEN": server.root_token})
    return make_adapter(server.address, prefix or unique_prefix(), environ=environ, **options)


class TestVaultContract(BackendContract):
    @pytest.fixture
    def backend(self, openbao: OpenBao) -> VaultAdapter:
        return adapter(openbao)


def test_layout_is_what_other_vault_clients_read(openbao: OpenBao) -> None:
    prefix = unique_prefix()
    backend = adapter(openbao, prefix)
    backend.put("db/url", "postgres://ü".encode(), actor=ACTOR, tags={"team": "core"})
    backend.put("db/url", b"v2", actor="other@host", description="the database")
    backend.put("blob", b"\xff\x00\xfe", actor=ACTOR)
    kv = openbao.client().secrets.kv.v2
    read = kv.read_secret_version(f"{prefix}/db/url", raise_on_deleted_version=True)["data"]
    assert read["data"] == {"value": "v2"}
    first = kv.read_secret_version(f"{prefix}/db/url", version=1, raise_on_deleted_version=True)
    assert first["data"]["data"] == {"value": "postgres://ü"}
    blob = kv.read_secret_version(f"{prefix}/blob", raise_on_deleted_version=True)
    assert blob["data"]["data"] == {"value_b64": "/wD+"}
    assert read["metadata"]["custom_metadata"] == {
        "team": "core",
        "bsecrets:description": "the database",
        "bsecrets:by:1": ACTOR,
        "bsecrets:by:2": "other@host",
    }
    assert [v.created_by for v in backend.history("db/url")] == [ACTOR, "other@host"]


def test_foreign_object_reads_as_json_and_fields_select(openbao: OpenBao) -> None:
    prefix = unique_prefix()
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(f"{prefix}/db", {"user": "app", "port": 5432, "tls": True})
    backend = adapter(openbao, prefix)
    secret = backend.get("db")
    assert secret.value == b'{"port": 5432, "tls": true, "user": "app"}'
    assert secret.created_by == "unknown" and secret.tags == {}
    assert backend.get("db#user").value == b"app"
    assert backend.get("db#port").value == b"5432"
    assert backend.get("db#user", 1).version == 1
    with pytest.raises(SecretNotFound) as exc:
        backend.get("db#password")
    assert exc.value.hint == "its fields: port, tls, user"
    assert backend.get("db").value == secret.value  # a field read changes nothing
    # ours, read by field: 'value' is the field, the JSON object is not invented
    backend.put("mine", b"text", actor=ACTOR)
    assert backend.get("mine#value").value == b"text"
    with pytest.raises(UsageError):
        backend.get("mine#")


@pytest.mark.parametrize("name", ["a/../b", "a/./b", "a//b", "a/", "x/../../other/db"])
def test_names_cannot_leave_the_prefix(openbao: OpenBao, name: str) -> None:
    parent = unique_prefix()
    backend = adapter(openbao, f"{parent}/staging")
    with pytest.raises(InvalidName):
        backend.put(name, b"x", actor=ACTOR)
    with pytest.raises(InvalidName):
        backend.get(name)
    with pytest.raises(InvalidName):
        backend.list_secrets("../")
    with pytest.raises(hvac.exceptions.InvalidPath):  # nothing was written anywhere
        openbao.client().secrets.kv.v2.list_secrets(parent)


def test_environments_on_other_prefixes_do_not_meet(openbao: OpenBao) -> None:
    parent = unique_prefix()
    staging = adapter(openbao, f"{parent}/staging")
    prod = adapter(openbao, f"{parent}/prod", env="prod")
    staging.put("db", b"staging-value", actor=ACTOR)
    prod.put("db", b"prod-value", actor=ACTOR)
    assert staging.get("db").value == b"staging-value"
    assert prod.get("db").value == b"prod-value"
    assert [s.name for s in staging.list_secrets()] == ["db"]


def test_list_is_recursive_and_narrowed_by_prefix(openbao: OpenBao) -> None:
    backend = adapter(openbao)
    for name in ("app/db/url", "app/db/user", "app/api", "apple", "zeta/x/y/z"):
        backend.put(name, b"1", actor=ACTOR)
    assert [s.name for s in backend.list_secrets()] == [
        "app/api",
        "app/db/url",
        "app/db/user",
        "apple",
        "zeta/x/y/z",
    ]
    assert [s.name for s in backend.list_secrets("app/d")] == ["app/db/url", "app/db/user"]
    assert [s.name for s in backend.list_secrets("app")] == [
        "app/api",
        "app/db/url",
        "app/db/user",
        "apple",
    ]
    assert backend.list_secrets("nothing/here/") == []


def test_metadata_limits_are_refused_before_writing(openbao: OpenBao) -> None:
    backend = adapter(openbao)
    with pytest.raises(UsageError, match="reserved"):
        backend.put("t", b"x", actor=ACTOR, tags={"bsecrets:by:1": "forged"})
    with pytest.raises(UsageError, match="512 bytes"):
        backend.put("t", b"x", actor=ACTOR, description="é" * 300)
    with pytest.raises(SecretNotFound):
        backend.history("t")


def test_authors_follow_the_versions_vault_keeps(openbao: OpenBao) -> None:
    prefix = unique_prefix()
    backend = adapter(openbao, prefix)
    backend.put("rot", b"1", actor=ACTOR)
    openbao.client().secrets.kv.v2.update_metadata(f"{prefix}/rot", max_versions=3)
    for i in range(2, 7):
        backend.put("rot", str(i).encode(), actor=f"user{i}@host")
    history = backend.history("rot")
    assert [v.version for v in history] == [4, 5, 6]
    assert [v.created_by for v in history] == ["user4@host", "user5@host", "user6@host"]
    custom = openbao.client().secrets.kv.v2.read_secret_metadata(f"{prefix}/rot")["data"]
    authors = sorted(k for k in custom["custom_metadata"] if k.startswith("bsecrets:by:"))
    assert authors == ["bsecrets:by:3", "bsecrets:by:4", "bsecrets:by:5", "bsecrets:by:6"]
    with pytest.raises(VersionNotFound, match="no longer kept"):
        backend.get("rot", 2)


def test_deleted_and_destroyed_versions(openbao: OpenBao) -> None:
    prefix = unique_prefix()
    backend = adapter(openbao, prefix)
    for value in (b"a", b"b", b"c"):
        backend.put("v", value, actor=ACTOR)
    kv = openbao.client().secrets.kv.v2
    kv.delete_secret_versions(f"{prefix}/v", [1])  # another client deletes an old version
    with pytest.raises(VersionNotFound, match="deleted or destroyed"):
        backend.get("v", 1)
    assert backend.get("v", 2).value == b"b"
    kv.destroy_secret_versions(f"{prefix}/v", [3])
    with pytest.raises(SecretNotFound, match="destroyed"):
        backend.get("v")
    with pytest.raises(SecretNotFound, match="cannot be restored"):
        backend.restore("v")
    assert backend.put("v", b"d", actor=ACTOR).version == 4  # a new version revives it


def test_metadata_without_versions_is_not_a_secret(openbao: OpenBao) -> None:
    prefix = unique_prefix()
    openbao.client().secrets.kv.v2.update_metadata(f"{prefix}/empty", max_versions=5)
    backend = adapter(openbao, prefix)
    with pytest.raises(SecretNotFound):
        backend.get("empty")
    assert backend.list_secrets() == []
    assert backend.put("empty", b"x", actor=ACTOR, if_version=0).version == 1


def test_namespace_from_profile_or_variable(openbao: OpenBao) -> None:
    namespace = unique_prefix("ns")
    root = openbao.client()
    root.adapter.post(f"/v1/sys/namespaces/{namespace}")
    root.adapter.namespace = namespace
    root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    prefix = unique_prefix()
    in_ns = adapter(openbao, prefix, namespace=namespace)
    in_ns.put("db", b"namespaced", actor=ACTOR)
    from_env = adapter(
        openbao,
        prefix,
        environ={"VAULT_TOKEN": openbao.root_token, "VAULT_NAMESPACE": namespace},
    )
    assert from_env.get("db").value == b"namespaced"
    with pytest.raises(SecretNotFound):
        adapter(openbao, prefix).get("db")  # the root namespace has no such secret


def test_a_path_inside_a_mount_is_not_a_mount(openbao: OpenBao) -> None:
    backend = adapter(openbao, mount="secret/inner")
    with pytest.raises(UsageError, match="inside the KV v2 mount 'secret/'") as exc:
        backend.put("x", b"1", actor=ACTOR)
    assert exc.value.hint is not None and "environments.staging.mount" in exc.value.hint


def test_health_reports_reachability_seal_ttl_latency(openbao: OpenBao) -> None:
    token = openbao.client().auth.token.create(ttl="1h", policies=["default"])["auth"]
    backend = adapter(openbao, environ={"VAULT_TOKEN": token["client_token"]})
    indicators = {i.name: i for i in backend.get_health_indicators()}
    assert list(indicators) == ["reachable", "sealed", "token", "metadata", "latency"]
    assert indicators["metadata"].ok and "read-only" in indicators["metadata"].detail
    assert indicators["reachable"].ok and openbao.address in indicators["reachable"].detail
    assert indicators["sealed"].ok and indicators["sealed"].detail == "unsealed"
    assert indicators["token"].ok and 3000 < indicators["token"].value <= 3600
    assert indicators["token"].detail.startswith("expires in ")
    assert indicators["latency"].value > 0
    status = backend.get_module_status()
    assert status["backend"] == "vault" and status["address"] == openbao.address
    assert token["client_token"] not in repr(status) + repr(indicators)


def test_health_of_a_bad_token(openbao: OpenBao) -> None:
    backend = adapter(openbao, environ={"VAULT_TOKEN": "s.not-a-token"})
    indicators = {i.name: i for i in backend.get_health_indicators()}
    assert indicators["reachable"].ok
    assert not indicators["token"].ok and "denied" in indicators["token"].detail
    assert not backend.is_healthy()


def test_building_the_adapter_imports_nothing_heavy() -> None:
    code = textwrap.dedent(
        """
        import sys
        from bsecrets.config.profile import EnvironmentConfig
        from bsecrets.backends.registry import BackendContext
        from bsecrets.backends.vault import from_config
        from bsecrets.timeutil import utcnow
        config = EnvironmentConfig("s", "vault", {"address": "http://127.0.0.1:1", "prefix": "p",
                                                  "mount": "secret", "auth": {"method": "token"}})
        backend = from_config(config, BackendContext({}, utcnow, lambda: None))
        backend.get_module_status()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("hvac", "requests", "urllib3"))
        print(heavy)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
