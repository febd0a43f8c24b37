"""Vault with the usual hand-written KV v2 policy: create/read/update on the data,
only read/list on the metadata (what `vault kv put` needs). bsecrets cannot record
an author, tags or a description with it (no `patch` on the metadata):

* a plain put stores the value (exit 0) and warns, in one line, that the author was
  not recorded; `history` shows the author as unknown and `status` says why;
* a put with --tag or --description is refused (exit 4) before anything is
  written, after asking Vault what the token may do (sys/capabilities-self).

A real OpenBao; the policy and the token are made with the root token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import invoke
from helpers.openbao_server import OpenBao
from helpers.vault_env import assert_error, unique_prefix, vault_env, write_profile

VALUE = "value-canary-5a6b7c"
HAND_WRITTEN = """
path "secret/data/{prefix}/*"     {{ capabilities = ["create", "read", "update"] }}
path "secret/metadata/{prefix}/*" {{ capabilities = ["read", "list"] }}
"""


@pytest.fixture
def kv_token(isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao) -> str:
    """A profile whose 'staging' uses a token with the hand-written policy; the prefix."""
    prefix = unique_prefix("kvpolicy")
    root = openbao.client()
    root.sys.create_or_update_policy(f"kv-{prefix}", HAND_WRITTEN.format(prefix=prefix))
    token = root.auth.token.create(policies=[f"kv-{prefix}"], ttl="1h")["auth"]["client_token"]
    write_profile(isolated, monkeypatch, {"staging": vault_env(openbao.address, prefix)})
    monkeypatch.setenv("VAULT_TOKEN", token)
    return prefix


def _versions(openbao: OpenBao, path: str) -> dict[str, object]:
    meta = openbao.client().secrets.kv.v2.read_secret_metadata(path)["data"]
    return dict(meta["versions"])


def test_a_plain_put_stores_the_value_and_warns_once(openbao: OpenBao, kv_token: str) -> None:
    token = openbao.root_token
    result = invoke(["put", "db", "-e", "staging"], input=VALUE)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "db v1 (staging)\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), result.stderr
    assert "author of version 1 of secret 'db'" in lines[0] and "not recorded" in lines[0]
    assert VALUE not in result.stderr and token not in result.stderr
    second = invoke(["put", "db", "-e", "staging"], input="second")
    assert second.exit_code == 0 and second.stdout == "db v2 (staging)\n", second.stderr

    assert invoke(["get", "db", "-e", "staging"]).stdout == "second\n"
    history = json.loads(invoke(["history", "db", "-e", "staging", "--json"]).stdout)
    assert [(h["version"], h["created_by"], h["state"]) for h in history] == [
        (1, "unknown", "previous"),
        (2, "unknown", "current"),
    ]
    status = json.loads(invoke(["status", "--json"]).stdout)
    metadata = {i["name"]: i for i in status["indicators"]}["staging.metadata"]
    assert not metadata["ok"]
    assert f"not patch secret/metadata/{kv_token}/*" in metadata["detail"]
    assert "authors are not recorded" in metadata["detail"]


@pytest.mark.parametrize(
    "extra",
    [["--tag", "team=core"], ["--description", "the main db"], ["--tag", "a=b", "--json"]],
    ids=["tag", "description", "tag-json"],
)
def test_tags_or_a_description_it_cannot_record_are_refused_before_writing(
    openbao: OpenBao, kv_token: str, extra: list[str]
) -> None:
    assert invoke(["put", "db", "-e", "staging"], input="first").exit_code == 0
    result = invoke(["put", "db", "-e", "staging", *extra], input=VALUE)
    assert result.exit_code == 4, result.stderr
    if "--json" in extra:
        error = json.loads(result.stderr.splitlines()[-1])
        assert error["applied"] == "no" and error["exit_code"] == 4, error
        text = error["error"] + error["hint"]
    else:
        assert_error(result, 4, secrets=(VALUE, openbao.root_token))
        text = result.stderr
    assert "may not record the" in text and "nothing was written" in text
    assert f"no 'patch' capability on secret/metadata/{kv_token}/db" in text
    assert "bsecrets vault policy -e staging" in text
    assert VALUE not in result.stderr
    assert list(_versions(openbao, f"{kv_token}/db")) == ["1"]  # no version 2
    assert invoke(["get", "db", "-e", "staging"]).stdout == "first\n"


def test_a_new_secret_with_tags_is_not_created(openbao: OpenBao, kv_token: str) -> None:
    import hvac

    result = invoke(["put", "fresh", "-e", "staging", "--tag", "team=core"], input=VALUE)
    assert_error(result, 4, "nothing was written", secrets=(VALUE,))
    with pytest.raises(hvac.exceptions.InvalidPath):
        openbao.client().secrets.kv.v2.read_secret_metadata(f"{kv_token}/fresh")


def test_the_policy_bsecrets_prints_records_everything(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    """The same commands with `bsecrets vault policy`'s policy: tags, author, no warning."""
    prefix = unique_prefix("bspolicy")
    write_profile(isolated, monkeypatch, {"staging": vault_env(openbao.address, prefix)})
    policy = invoke(["vault", "policy", "-e", "staging"])
    assert policy.exit_code == 0, policy.stderr
    root = openbao.client()
    root.sys.create_or_update_policy(f"bs-{prefix}", policy.stdout)
    token = root.auth.token.create(policies=[f"bs-{prefix}"], ttl="1h")["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", token)
    result = invoke(["put", "db", "-e", "staging", "--tag", "team=core"], input=VALUE)
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    got = json.loads(invoke(["get", "db", "-e", "staging", "--json"]).stdout)
    assert got["tags"] == {"team": "core"}
    history = json.loads(invoke(["history", "db", "-e", "staging", "--json"]).stdout)
    assert history[0]["created_by"] != "unknown"
    status = json.loads(invoke(["status", "--json"]).stdout)
    assert {i["name"]: i for i in status["indicators"]}["staging.metadata"]["ok"]
