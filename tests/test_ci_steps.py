"""CI steps: GitHub Actions masking (per line, before any value) and
``export --format github-env`` (heredoc form, random delimiter, parsed back)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke, put_all, run_cli
from helpers.github_env import parse_github_env
from helpers.values import CANARY, HOSTILE

from bsecrets.config.ci import add_mask_lines, detect, escape_data, mask_in_github
from bsecrets.formats.codecs import github_env_block

GHA = {"GITHUB_ACTIONS": "true"}


def test_detect() -> None:
    assert detect({"GITHUB_ACTIONS": "true"}) == "github"
    assert detect({"GITLAB_CI": "true"}) == "gitlab"
    assert detect({"CI": "true"}) is None
    assert detect({"GITHUB_ACTIONS": "false"}) is None


def test_mask_lines_per_line() -> None:
    lines = add_mask_lines(["first\nsecond\n\n  \nthird\r\nfourth", "first", "100%\rraw"])
    assert lines == [
        "::add-mask::first\n", "::add-mask::second\n", "::add-mask::third\n",
        "::add-mask::fourth\n", "::add-mask::100%25\n", "::add-mask::raw\n",
    ]  # fmt: skip
    assert escape_data("a%0Ab\n") == "a%250Ab%0A"


def test_mask_only_in_github() -> None:
    out = io.StringIO()
    mask_in_github([b"x\ny"], {}, out)
    assert out.getvalue() == ""
    mask_in_github([b"x\ny"], GHA, out)
    assert out.getvalue() == "::add-mask::x\n::add-mask::y\n"


@pytest.mark.parametrize("fmt", ["dotenv", "json", "yaml", "shell"])
def test_export_masks_on_stderr_first(vault: Path, fmt: str) -> None:
    """Masks go to stderr (the runner reads both streams), stdout stays pure data."""
    put_all(vault, {"MULTI": f"{CANARY}\nsecond line\n\nfourth", "ONE": "single"})
    result = invoke(["export", "-f", fmt], env=GHA)
    assert result.exit_code == 0, result.stderr
    masks = [line for line in result.stderr.splitlines() if line.startswith("::add-mask::")]
    assert masks == [
        f"::add-mask::{CANARY}", "::add-mask::second line", "::add-mask::fourth",
        "::add-mask::single",
    ]  # fmt: skip
    assert "::add-mask::" not in result.stdout
    assert CANARY in result.stdout


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_shell_export_in_actions_evaluates_safely(vault: Path, shell: str) -> None:
    """In Actions, `eval "$(bsecrets export -f shell)"` gets only assignments on
    stdout and never runs a value line as a command; the masks are on stderr."""
    import shutil
    import subprocess

    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    put_all(vault, {"EVIL": "ok\n$(touch pwned)\n`touch pwned2`\n100%0A'q'", "ONE": CANARY})
    result = invoke(["export", "-f", "shell"], env=GHA)
    assert result.exit_code == 0, result.stderr
    assert not any(line.startswith("::") for line in result.stdout.splitlines())
    assert "::add-mask::$(touch pwned)" in result.stderr.splitlines()
    done = subprocess.run(
        [shell, "-c", 'eval "$(cat)"; printf "%s" "$EVIL" > evil.out'],
        input=result.stdout_bytes, capture_output=True, check=True, cwd=vault, timeout=30,
    )  # fmt: skip
    assert done.stdout == b""
    assert (vault / "evil.out").read_text() == "ok\n$(touch pwned)\n`touch pwned2`\n100%0A'q'"
    assert not (vault / "pwned").exists() and not (vault / "pwned2").exists()


def test_no_masks_outside_github(vault: Path) -> None:
    put_all(vault, {"ONE": "single"})
    assert "::add-mask::" not in invoke(["export"]).stdout


def test_github_env_outside_actions(vault: Path) -> None:
    put_all(vault, {"ONE": CANARY})
    result = invoke(["export", "--format", "github-env"])
    assert_error(result, 2, "GITHUB_ENV", "hint:")
    assert CANARY not in result.stdout + result.stderr


def test_github_env_round_trip(vault: Path) -> None:
    values = {k: v for k, v in HOSTILE.items() if "\r" not in v}
    put_all(vault, values)
    env_file = vault / "github_env"
    env_file.write_text("EARLIER=kept\n")
    done = run_cli(["export", "--format", "github-env"], env={**GHA, "GITHUB_ENV": str(env_file)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert f"::add-mask::{CANARY}" in done.stderr.decode().splitlines()
    text = env_file.read_text()
    assert text.startswith("EARLIER=kept\n")
    assert parse_github_env(text) == {"EARLIER": "kept", **values}
    delimiters = [line.split("<<", 1)[1] for line in text.splitlines() if "<<" in line]
    assert len(set(delimiters)) == len(values)  # a fresh random delimiter per variable


def test_github_env_refuses_cr(vault: Path, tmp_path: Path) -> None:
    put_all(vault, {"CRLF": "a\r\nb"})
    env_file = tmp_path / "ge"
    result = invoke(["export", "-f", "github-env"], env={**GHA, "GITHUB_ENV": str(env_file)})
    assert_error(result, 1, "CRLF", "carriage return")
    assert not env_file.exists() or env_file.read_text() == ""


def test_github_env_delimiter_never_in_value() -> None:
    delims = iter(["EOF_a", "EOF_a", "EOF_b"])
    block = github_env_block("K", "x EOF_a y", lambda: next(delims))
    assert block == "K<<EOF_b\nx EOF_a y\nEOF_b\n"


@pytest.mark.parametrize("name", ["A\nB", "A=B", "A\0B", ""])
def test_github_env_refuses_bad_names(name: str) -> None:
    from bsecrets.errors import UsageError

    with pytest.raises(UsageError):
        github_env_block(name, "v", lambda: "D")


def test_github_env_json_unaffected(vault: Path) -> None:
    put_all(vault, {"A": "1"})
    result = invoke(["export", "-f", "json"], env=GHA)
    assert json.loads(result.stdout) == {"A": "1"}


def test_get_masks_on_stderr_in_actions(vault: Path) -> None:
    put_all(vault, {"TOKEN": f"{CANARY}\nline two"})
    result = invoke(["get", "TOKEN"], env=GHA)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{CANARY}\nline two\n"  # pure data: safe for $(...)
    assert result.stderr.splitlines() == [f"::add-mask::{CANARY}", "::add-mask::line two"]
    assert "::add-mask::" not in invoke(["get", "TOKEN"]).stderr
