"""Dev provisioning: the profile's provision: section, generators, idempotence,
and profile errors with file:line."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke, values_of

from bsecrets.config.generators import PASSWORD_ALPHABET, generate, parse_generator

PROVISION = """\
    provision:
      db/password: password:24
      api/hex: hex:16
      api/b64: "base64:32"
      request/id: uuid
      feature/flag: {value: "on"}
      ci/token: {from_env: MY_TOKEN}
"""


def with_provision(root: Path, block: str = PROVISION, env: str = "dev") -> Path:
    profile = root / "bsecrets.yaml"
    lines = profile.read_text().splitlines(keepends=True)
    index = lines.index(f"  {env}:\n") + 2  # after "backend: local"
    lines.insert(index, block)
    profile.write_text("".join(lines))
    return profile


def test_provision_creates_then_is_idempotent(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_provision(vault)
    monkeypatch.setenv("MY_TOKEN", "tok-123")
    result = invoke(["provision", "-e", "dev", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    names = ["api/b64", "api/hex", "ci/token", "db/password", "feature/flag", "request/id"]
    assert data == {"env": "dev", "dry_run": False, "created": names, "present": []}
    values = values_of("dev")
    assert len(values["db/password"]) == 24
    assert set(values["db/password"]) <= set(PASSWORD_ALPHABET)
    assert re.fullmatch(r"[0-9a-f]{32}", values["api/hex"])
    assert len(base64.b64decode(values["api/b64"], validate=True)) == 32
    assert uuid.UUID(values["request/id"]).version == 4
    assert values["feature/flag"] == "on"
    assert values["ci/token"] == "tok-123"
    again = json.loads(invoke(["provision", "-e", "dev", "--json"]).stdout)
    assert again["created"] == [] and again["present"] == names
    assert values_of("dev") == values  # nothing regenerated


def test_provision_fills_only_missing(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_provision(vault)
    monkeypatch.setenv("MY_TOKEN", "t")
    (vault / "v").write_text("mine")
    invoke(["put", "db/password", "--from-file", str(vault / "v")])
    result = invoke(["provision"])
    assert result.exit_code == 0, result.stderr
    assert "5 created, 1 already present in 'dev'" in result.stderr
    assert values_of("dev")["db/password"] == "mine"


def test_provision_dry_run(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_provision(vault)
    monkeypatch.setenv("MY_TOKEN", "t")
    result = invoke(["provision", "--dry-run"])
    assert result.exit_code == 0
    assert "would create db/password (dev)" in result.stderr
    assert values_of("dev") == {}


def test_provision_missing_env_var_writes_nothing(vault: Path) -> None:
    with_provision(vault)
    assert_error(invoke(["provision"]), 2, "MY_TOKEN", "ci/token", "hint:")
    assert values_of("dev") == {}


def test_provision_without_section(vault: Path) -> None:
    assert_error(invoke(["provision", "-e", "prod"]), 2, "provision:", "hint:")


def test_random_generators_differ() -> None:
    one = generate("a", ("hex", 32), {})
    two = generate("a", ("hex", 32), {})
    assert one != two and len(one) == 64


def test_parse_generator() -> None:
    assert parse_generator("password:32") == ("password", 32)
    assert parse_generator("uuid") == ("uuid", None)
    for bad in ("password", "hex:0", "hex:99999", "random:3", "hex:-1"):
        with pytest.raises(ValueError):
            parse_generator(bad)


def test_generators_do_not_use_random() -> None:
    source = Path(generate.__code__.co_filename).read_text()
    assert not re.search(r"^\s*(import random|from random)", source, re.M)


BAD_PROFILES = [
    ("    provision:\n      db/pw: random:8\n", "bsecrets.yaml:9:", "unknown generator"),
    ("    provision:\n      db/pw: hex:0\n", "bsecrets.yaml:9:", "from 1 to 4096"),
    ("    provision:\n      /abs: hex:8\n", "bsecrets.yaml:9:", "invalid secret name"),
    ("    provision:\n      a: {value: x, from_env: Y}\n", "bsecrets.yaml:9:", "exactly one"),
    ("    provision:\n      a: {colour: x}\n", "bsecrets.yaml:9:", "unknown key"),
    ("    provision:\n      a: {from_env: 'no-good'}\n", "bsecrets.yaml:9:", "variable name"),
    ("    provision:\n      a: [hex:8]\n", "bsecrets.yaml:9:", "must be a string"),
    ("    provision: hex:8\n", "bsecrets.yaml:8:", "must be a mapping"),
]


@pytest.mark.parametrize(("block", "where", "needle"), BAD_PROFILES)
def test_bad_provision_profile(vault: Path, block: str, where: str, needle: str) -> None:
    with_provision(vault, block)
    assert_error(invoke(["provision"]), 2, where, "environments.dev.provision", needle)


def test_provision_survives_profile_cache(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parsed-profile cache keeps the provision section (second run reads the cache)."""
    with_provision(vault)
    monkeypatch.setenv("MY_TOKEN", "t")
    assert invoke(["ls"]).exit_code == 0  # fills the cache
    result = invoke(["provision", "--dry-run", "--json"])
    assert len(json.loads(result.stdout)["created"]) == 6


def test_provision_recreates_deleted(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_provision(vault, "    provision:\n      a: hex:8\n")
    assert invoke(["provision"]).exit_code == 0
    first = values_of("dev")["a"]
    assert invoke(["rm", "a"]).exit_code == 0
    result = json.loads(invoke(["provision", "--json"]).stdout)
    assert result["created"] == ["a"]
    assert values_of("dev")["a"] != first
