"""Issue #11 item 11: exporting a part of an environment.

`export --only NAME/GLOB` (repeatable, comma lists) and `--prefix P` have exec's
meaning (bsecrets/config/envmap.py), `-o FILE` writes the file atomically with mode
0600 through render's writer (a symbolic link is replaced, never followed), and
the audit event of the export names exactly the secrets exported.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke, put_secret, run_cli

SECRETS = {
    "db/password": b"pw-1",
    "db/user": b"admin",
    "api/token": b"tok-1",
    "app.name": b"demo",
}


@pytest.fixture
def filled(vault: Path) -> Path:
    for name, value in SECRETS.items():
        put_secret(name, value)
    return vault


def exported(*args: str) -> str:
    result = invoke(["export", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def export_events() -> list[dict[str, Any]]:
    result = invoke(["audit", "log", "--json", "--action", "export"])
    assert result.exit_code == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def refused(result: Any, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: "), result.stderr
    assert lines[1].startswith("hint: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert result.stdout == ""


# --- --only ------------------------------------------------------------------------


def test_only_one_name(filled: Path) -> None:
    assert exported("--only", "db/password") == "DB_PASSWORD=pw-1\n"
    last = export_events()[-1]
    assert (last["outcome"], last["names"]) == ("ok", ["db/password"])


def test_only_a_glob(filled: Path) -> None:
    assert exported("--only", "db/*") == "DB_PASSWORD=pw-1\nDB_USER=admin\n"
    assert export_events()[-1]["names"] == ["db/password", "db/user"]


@pytest.mark.parametrize(
    "args",
    [
        ["--only", "db/user", "--only", "api/*"],
        ["--only", "db/user,api/*"],
        ["--only", "db/user, api/token", "--only", "db/user"],
    ],
    ids=["repeated", "comma-list", "overlapping"],
)
def test_only_repeatable_and_comma_lists(filled: Path, args: list[str]) -> None:
    assert json.loads(exported(*args, "-f", "json")) == {"api/token": "tok-1", "db/user": "admin"}
    assert export_events()[-1]["names"] == ["api/token", "db/user"]


def test_a_glob_that_matches_nothing_is_not_found(filled: Path) -> None:
    before = len(export_events())
    refused(invoke(["export", "--only", "nope/*"]), 3, "matches --only 'nope/*'", "bsecrets ls")
    refused(invoke(["export", "--only", "db/*", "--only", "x?"]), 3, "'x?'")
    assert len(export_events()) == before  # refused before any value was read


def test_a_missing_name_is_not_found(filled: Path) -> None:
    refused(invoke(["export", "--only", "db/password,nope"]), 3, "'nope' not found")
    assert export_events()[-1]["outcome"] == "not_found"


def test_a_deleted_secret_is_not_matched_by_a_glob(filled: Path) -> None:
    assert invoke(["rm", "db/user"]).exit_code == 0
    assert exported("--only", "db/*") == "DB_PASSWORD=pw-1\n"
    refused(invoke(["export", "--only", "db/user"]), 3, "deleted")


@pytest.mark.parametrize("bad", ["db/*;rm", "ü*", "a b*", "db/*$(x)"])
def test_a_bad_pattern_is_a_usage_error(filled: Path, bad: str) -> None:
    refused(invoke(["export", "--only", bad]), 2, "invalid --only pattern")


def test_only_keeps_protected_variables_out_unless_allowed(filled: Path) -> None:
    put_secret("path", b"/evil")
    assert exported("--only", "db/*") == "DB_PASSWORD=pw-1\nDB_USER=admin\n"
    before = len(export_events())
    refused(invoke(["export", "--only", "pa*"]), 2, "protected variable PATH")
    assert len(export_events()) == before  # checked before any value was read
    assert exported("--only", "pa*", "--allow-override", "PATH") == "PATH=/evil\n"


def test_only_applies_exec_collision_rule_to_the_selection(filled: Path) -> None:
    put_secret("DB_USER", b"other")  # maps to DB_USER like db/user
    refused(invoke(["export", "--only", "db/*,DB_*"]), 2, "both map to the variable DB_USER")
    assert exported("--only", "db/password,DB_USER") == "DB_USER=other\nDB_PASSWORD=pw-1\n"


# --- --prefix ------------------------------------------------------------------


def test_prefix_on_every_variable(filled: Path) -> None:
    assert exported("--prefix", "APP_") == (
        "APP_API_TOKEN=tok-1\nAPP_APP_NAME=demo\nAPP_DB_PASSWORD=pw-1\nAPP_DB_USER=admin\n"
    )
    assert exported("--prefix", "APP_", "--only", "db/user", "-f", "shell") == (
        "export APP_DB_USER='admin'\n"
    )
    assert export_events()[-1]["names"] == ["db/user"]


def test_prefix_can_make_a_protected_variable(filled: Path) -> None:
    put_secret("ATH", b"x")
    refused(invoke(["export", "--prefix", "P", "--only", "ATH"]), 2, "protected variable PATH")


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_prefix_with_a_format_keyed_by_name_is_refused(filled: Path, fmt: str) -> None:
    before = len(export_events())
    refused(invoke(["export", "--prefix", "APP_", "-f", fmt]), 2, "--prefix", f"--format {fmt}")
    assert len(export_events()) == before


@pytest.mark.parametrize("bad", ["1APP_", "APP-", "A B"])
def test_a_bad_prefix_is_refused_before_reading(filled: Path, bad: str) -> None:
    before = len(export_events())
    refused(invoke(["export", "--prefix", bad]), 2, "invalid --prefix")
    assert len(export_events()) == before


# --- -o FILE -------------------------------------------------------------------


def test_output_file_is_private_and_atomic(filled: Path) -> None:
    out = filled / "conf" / "app.env"
    out.parent.mkdir(mode=0o700)
    result = run_cli(["export", "--only", "db/*", "-o", str(out)])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""  # nothing on stdout
    assert b"exported 2 secrets from 'dev' to" in result.stderr
    assert out.read_bytes() == b"DB_PASSWORD=pw-1\nDB_USER=admin\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["app.env"]  # no temp file left


def test_output_replaces_an_existing_file_with_mode_0600(filled: Path) -> None:
    out = filled / "app.env"
    out.write_text("OLD=1\n")
    out.chmod(0o644)
    assert invoke(["export", "-f", "json", "--only", "app.name", "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == {"app.name": "demo"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_output_onto_a_symlink_replaces_the_link_not_its_target(filled: Path) -> None:
    target = filled / "elsewhere.txt"
    target.write_text("keep me\n")
    link = filled / "app.env"
    link.symlink_to(target)
    result = invoke(["export", "--only", "api/token", "-o", str(link)])
    assert result.exit_code == 0, result.stderr
    assert target.read_text() == "keep me\n"  # never written through the link
    assert not link.is_symlink()
    assert link.read_text() == "API_TOKEN=tok-1\n"
    assert stat.S_IMODE(link.stat().st_mode) == 0o600


def test_output_onto_a_folder_is_refused_before_reading(filled: Path) -> None:
    folder = filled / "out"
    folder.mkdir()
    before = len(export_events())
    refused(invoke(["export", "-o", str(folder)]), 2, "is a folder")
    assert list(folder.iterdir()) == []
    assert len(export_events()) == before


def test_output_keeps_the_old_file_when_the_export_fails(filled: Path) -> None:
    out = filled / "app.env"
    out.write_text("OLD=1\n")
    put_secret("bad", b"ends with a backslash\\")
    result = invoke(["export", "-o", str(out)])
    assert result.exit_code == 1 and "dotenv cannot carry it" in result.stderr
    assert out.read_text() == "OLD=1\n"
    assert [p.name for p in filled.glob(".app.env*")] == []


def test_output_dash_is_stdout(filled: Path) -> None:
    assert exported("--only", "app.name", "-o", "-") == "APP_NAME=demo\n"


def test_output_with_github_env_is_refused(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    github_env = filled / "github_env"
    monkeypatch.setenv("GITHUB_ENV", str(github_env))
    refused(invoke(["export", "-f", "github-env", "-o", "x.env"]), 2, "-o", "github-env")
    assert not github_env.exists() and not (filled / "x.env").exists()


def test_github_env_takes_only_and_prefix(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    github_env = filled / "github_env"
    monkeypatch.setenv("GITHUB_ENV", str(github_env))
    result = invoke(["export", "-f", "github-env", "--only", "db/user", "--prefix", "CI_"])
    assert result.exit_code == 0, result.stderr
    text = github_env.read_text()
    assert text.startswith("CI_DB_USER<<BSECRETS_EOF_") and "admin" in text
    assert "pw-1" not in text


# --- exec shares the selection ---------------------------------------------------


def test_exec_only_takes_the_same_globs(filled: Path) -> None:
    code = "import os; print(sorted(k for k in os.environ if k.startswith('DB_')))"
    result = run_cli(["exec", "--only", "db/*", "--", sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"['DB_PASSWORD', 'DB_USER']\n"
    missing = run_cli(["exec", "--only", "nope/*", "--", "true"])
    assert missing.returncode == 3 and b"matches --only 'nope/*'" in missing.stderr
    assert os.environ.get("DB_PASSWORD") is None
