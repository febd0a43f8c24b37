"""``bsecrets rotate`` on the remote backends (#14): the same four steps against a real
OpenBao (KV v2) and moto's Secrets Manager over HTTP, with kill -9 in a hook then
resume or cancel, and a finish write that landed before the kill. Exactly one current
value at every point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.aws_env import write_profile as write_aws_profile
from helpers.cli import invoke
from helpers.moto_server import REGION, MotoServer
from helpers.openbao_server import OpenBao
from helpers.rotation import hook, policy, policy_off, rotate_and_kill
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


def test_a_finish_write_that_landed_before_the_kill(remote: str, isolated: Path) -> None:
    before = version(remote)
    rotation_id = rotate_and_kill(isolated, remote, "test")
    ok(["put", "db/password", "-e", remote, "--from-file", "new.txt"])  # the write that landed
    done = json.loads(ok(["rotate", "resume", rotation_id, "--json"]))
    assert done["version"] == before + 1 == version(remote) and value(remote) == NEW


def test_a_writer_in_between_is_exit_7(remote: str, isolated: Path) -> None:
    rotation_id = rotate_and_kill(isolated, remote, "test")
    ok(["put", "db/password", "-e", remote, "--from-file", "old.txt"])  # someone else's write
    result = invoke(["rotate", "resume", rotation_id])
    assert result.exit_code == 7, result.stderr
    assert value(remote) == OLD
    policy_off(isolated)
