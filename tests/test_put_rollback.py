"""Issue #11 items 5 and 6: an empty value is refused unless --allow-empty (put,
import, provision, the SDK), and a rollback to the current version is a no-op.

Empty values: every way a value reaches bsecrets (stdin that is empty or only the
newline that is stripped, an empty file, --value '', a prompt answered with Enter,
an import file, a provision generator) exits 2 with a hint naming --allow-empty,
and writes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke, run_cli, run_on_tty
from helpers.values import PASSPHRASE

from bsecrets.cli.hints import hint_for
from bsecrets.config.loader import load_profile
from bsecrets.errors import NextStep, UsageError
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials


def refused(result: Any, code: int, *needles: str) -> str:
    """One error line and one hint line, the exit code, the needles; stderr as text."""
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    got = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert got == code, stderr
    lines = stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: "), stderr
    assert lines[1].startswith("hint: "), stderr
    for needle in needles:
        assert needle in stderr, stderr
    return stderr


def versions(name: str, env: str = "dev") -> list[int]:
    result = invoke(["history", name, "-e", env, "--json"])
    if result.exit_code == 3:
        return []
    assert result.exit_code == 0, result.stderr
    return [v["version"] for v in json.loads(result.stdout)]


def events(action: str) -> list[dict[str, Any]]:
    result = invoke(["audit", "log", "--json", "--action", action])
    assert result.exit_code == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


# --- 5. empty values ------------------------------------------------------------


@pytest.mark.parametrize("stdin", [b"", b"\n"], ids=["empty", "one-newline"])
def test_put_from_an_empty_stdin_is_refused(vault: Path, stdin: bytes) -> None:
    """`false | bsecrets put x`: a real process whose stdin is a pipe that ends at once."""
    refused(run_cli(["put", "db/password"], input=stdin), 2, "empty", "--allow-empty")
    assert versions("db/password") == []


def test_a_failed_producer_does_not_blank_an_existing_password(vault: Path) -> None:
    assert invoke(["put", "db/password"], input="s3cret").exit_code == 0
    refused(run_cli(["put", "db/password"], input=b""), 2, "'db/password' is empty")
    assert versions("db/password") == [1]
    assert invoke(["get", "db/password"]).stdout == "s3cret\n"


def test_put_from_an_empty_file_is_refused(vault: Path) -> None:
    empty = vault / "empty.txt"
    empty.write_bytes(b"")
    refused(invoke(["put", "key", "--from-file", str(empty)]), 2, "empty", "--allow-empty")
    assert versions("key") == []


def test_put_with_an_empty_value_option_is_refused(vault: Path) -> None:
    refused_text = invoke(["put", "key", "--value", ""])
    assert refused_text.exit_code == 2
    assert "error: the value of 'key' is empty" in refused_text.stderr
    assert "hint: " in refused_text.stderr and "--allow-empty" in refused_text.stderr
    assert versions("key") == []


def test_a_prompt_answered_with_nothing_is_refused(vault: Path) -> None:
    code, screen = run_on_tty(["put", "hidden"], [""], {**os.environ})
    assert code == 2, screen
    assert "the value of 'hidden' is empty" in screen and "--allow-empty" in screen
    assert versions("hidden") == []


@pytest.mark.parametrize("way", ["stdin", "newline", "file", "value"])
def test_allow_empty_stores_an_empty_value(vault: Path, way: str) -> None:
    empty = vault / "empty.txt"
    empty.write_bytes(b"")
    args, stdin = {
        "stdin": ([], b""),
        "newline": ([], b"\n"),
        "file": (["--from-file", str(empty)], None),
        "value": (["--value", ""], None),
    }[way]
    result = run_cli(["put", "blank", "--allow-empty", *args], input=stdin)
    assert result.returncode == 0, result.stderr
    assert run_cli(["get", "blank", "--raw"]).stdout == b""


def test_sdk_refuses_empty_values_unless_allowed(vault: Path) -> None:
    profile = load_profile(vault / "bsecrets.yaml")
    manager = SecretsManager(profile, Credentials(passphrase=PASSPHRASE))
    try:
        with pytest.raises(UsageError) as caught:
            manager.put("dev", "sdk", b"")
        assert caught.value.kind == "empty_value"
        # the SDK's error names no CLI option: its step does, as the CLI words it
        assert caught.value.step == NextStep("allow_empty_value")
        assert "--allow-empty" not in (caught.value.hint or "")
        assert "--allow-empty" in (hint_for(caught.value) or "")
        assert manager.put("dev", "sdk", b"", allow_empty=True).version == 1
        assert manager.get("dev", "sdk").value == b""
    finally:
        manager.close()


@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        ("dotenv", "A=1\nPLACEHOLDER=\nB=2\n", 2),
        ("dotenv", "A=1\nQUOTED=''\n", 2),
        ("json", '{\n  "A": "1",\n  "EMPTY": ""\n}\n', 3),
        ("yaml", "A: '1'\nEMPTY: ''\n", 2),
    ],
)
def test_import_of_an_empty_value_is_refused(vault: Path, fmt: str, text: str, line: int) -> None:
    path = vault / f"in.{fmt}"
    path.write_text(text)
    stderr = refused(invoke(["import", str(path)]), 2, f"in.{fmt}:{line}:", "empty")
    assert "--allow-empty" in stderr and "nothing was imported" in stderr
    assert versions("A") == []
    done = invoke(["import", str(path), "--allow-empty", "--json"])
    assert done.exit_code == 0, done.stderr
    assert len(json.loads(done.stdout)["new"]) == text.count("\n") - (2 if fmt == "json" else 0)


@pytest.mark.parametrize(
    ("generator", "needle"),
    [
        ("{from_env: DB_PASSWORD}", "reads the variable DB_PASSWORD, which is empty"),
        ('{value: ""}', "its value in the profile is empty"),
    ],
)
def test_provision_of_an_empty_value_is_refused(
    vault: Path, monkeypatch: pytest.MonkeyPatch, generator: str, needle: str
) -> None:
    profile = vault / "bsecrets.yaml"
    section = f"    provision:\n      a/key: hex:8\n      db/pw: {generator}\n"
    text = profile.read_text().replace(
        "  dev:\n    backend: local\n", "  dev:\n    backend: local\n" + section
    )
    assert "provision:" in text
    profile.write_text(text)
    monkeypatch.setenv("DB_PASSWORD", "")
    for args in (["provision"], ["provision", "--dry-run"]):
        refused(invoke(args), 2, needle, "--allow-empty")
    assert versions("a/key") == [] and versions("db/pw") == []
    done = invoke(["provision", "--allow-empty", "--json"])
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["created"] == ["a/key", "db/pw"]
    assert invoke(["get", "db/pw", "--raw"]).stdout == ""


# --- 6. rollback to the current version -----------------------------------------


@pytest.fixture
def two_versions(vault: Path) -> Path:
    for value in ("one", "two"):
        assert invoke(["put", "rot"], input=value).exit_code == 0
    return vault


def test_rollback_to_the_current_version_is_a_no_op(two_versions: Path) -> None:
    result = invoke(["rollback", "rot", "--to", "2"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "rot v2 (dev) already at v2; nothing written\n"
    assert versions("rot") == [1, 2]
    assert invoke(["get", "rot"]).stdout == "two\n"
    last = events("rollback")[-1]
    assert (last["outcome"], last["name"], last["version"]) == ("ok", "rot", 2)
    assert last["details"] == {"to": 2, "changed": False}
    # past the current version is still "not found"
    refused(invoke(["rollback", "rot", "--to", "3"]), 3, "no version 3")
    assert versions("rot") == [1, 2]


def test_rollback_no_op_json(two_versions: Path) -> None:
    result = invoke(["rollback", "rot", "--to", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": "rot",
        "env": "dev",
        "version": 2,
        "rolled_back_to": 2,
        "changed": False,
    }
    assert versions("rot") == [1, 2]


def test_rollback_no_op_is_quiet_under_quiet(two_versions: Path) -> None:
    result = invoke(["-q", "rollback", "rot", "--to", "2"])
    assert (result.exit_code, result.stdout) == (0, "")


def test_rollback_no_op_with_a_matching_if_version(two_versions: Path) -> None:
    result = invoke(["rollback", "rot", "--to", "2", "--if-version", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["changed"] is False
    assert versions("rot") == [1, 2]


@pytest.mark.parametrize("to", ["1", "2"], ids=["older", "current"])
def test_rollback_with_a_stale_if_version_is_a_conflict(two_versions: Path, to: str) -> None:
    refused(invoke(["rollback", "rot", "--to", to, "--if-version", "1"]), 7, "at version 2, not 1")
    assert versions("rot") == [1, 2]
    assert invoke(["get", "rot"]).stdout == "two\n"
    last = events("rollback")[-1]
    assert last["outcome"] == "failed"


def test_rollback_with_a_matching_if_version_writes(two_versions: Path) -> None:
    refused(invoke(["rollback", "rot", "--to", "1", "--if-version", "0"]), 2, "--if-version")
    result = invoke(["rollback", "rot", "--to", "1", "--if-version", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": "rot",
        "env": "dev",
        "version": 3,
        "rolled_back_to": 1,
        "changed": True,
    }
    assert invoke(["get", "rot"]).stdout == "one\n"
    assert events("rollback")[-1]["details"] == {"to": 1}
