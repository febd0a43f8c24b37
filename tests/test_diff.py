"""diff ENV_A ENV_B: names only in A, only in B, differing by keyed hash; values
and their hashes are never printed; --exit-code exits 1 when they differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke, put_all, run_cli
from helpers.values import CANARY

from bsecrets.services.transfer import compare, keyed_digests


@pytest.fixture
def two_envs(vault: Path) -> Path:
    put_all(vault, {"same": "s", "changed": CANARY, "only-dev": CANARY}, "dev")
    put_all(vault, {"same": "s", "changed": CANARY + "x", "only-prod": CANARY}, "prod")
    return vault


def test_diff_json(two_envs: Path) -> None:
    result = invoke(["diff", "dev", "prod", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "env_a": "dev", "env_b": "prod", "only_in_a": ["only-dev"], "only_in_b": ["only-prod"],
        "different": ["changed"], "same": ["same"], "differs": True,
    }  # fmt: skip
    assert CANARY not in result.stdout + result.stderr


def test_diff_table_and_exit_code(two_envs: Path) -> None:
    result = invoke(["diff", "dev", "prod", "--exit-code"])
    assert result.exit_code == 1
    assert result.stderr.startswith("dev vs prod: 1 only in dev")
    rows = [line.split(None, 1) for line in result.stdout.splitlines()[1:]]
    assert rows == [["changed", "different"], ["only-dev", "only in dev"],
                    ["only-prod", "only in prod"]]  # fmt: skip
    assert "error:" not in result.stderr
    assert CANARY not in result.stdout + result.stderr


def test_diff_equal_environments(vault: Path) -> None:
    put_all(vault, {"a": "1", "b": "2\n"}, "dev")
    put_all(vault, {"a": "1", "b": "2\n"}, "prod")
    result = invoke(["diff", "dev", "prod", "--exit-code"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert invoke(["diff", "dev", "dev", "--exit-code"]).exit_code == 0


def test_diff_ignores_deleted(vault: Path) -> None:
    put_all(vault, {"a": "1", "gone": "x"}, "dev")
    put_all(vault, {"a": "1"}, "prod")
    invoke(["rm", "gone"])
    assert invoke(["diff", "dev", "prod", "--exit-code"]).exit_code == 0


def test_diff_unknown_environment(vault: Path) -> None:
    assert_error(invoke(["diff", "dev", "staging"]), 3, "staging", "dev, prod")


def test_diff_needs_two_environments(vault: Path) -> None:
    assert invoke(["diff", "dev"]).exit_code == 2


def test_diff_as_a_process(two_envs: Path) -> None:
    done = run_cli(["diff", "dev", "prod", "--exit-code", "--json"])
    assert done.returncode == 1
    assert json.loads(done.stdout)["different"] == ["changed"]
    assert CANARY.encode() not in done.stdout + done.stderr


def test_keyed_digest_depends_on_key() -> None:
    values = {"a": b"v", "b": b"v", "c": b"w"}
    one = keyed_digests(values, b"k" * 32)
    two = keyed_digests(values, b"j" * 32)
    assert one["a"] == one["b"] != one["c"]
    assert one["a"] != two["a"]
    assert compare(one, keyed_digests({"a": b"v", "c": b"x"}, b"k" * 32)).different == ["c"]
