"""Installing in CI (#17): the composite GitHub Action's step (ci/action-export.sh, run by
action.yml) run locally as the runner would, with a pipeline token: the secrets land in
$GITHUB_ENV in the multi-line form, every value is registered with ::add-mask:: first,
nothing else is printed; missing inputs fail with an error and a hint; action.yml
wires its inputs to the script. (Installing from the checkout is the script's first
step; here bsecrets is already installed, so the test passes install: false.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers.cli import invoke

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "ci" / "action-export.sh"


def ok(args: list[str]) -> str:
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.fixture
def token(vault: Path) -> str:
    ok(["put", "db/password", "--value", "pw-line1\npw-line2", "-e", "prod"])
    ok(["put", "api/key", "--value", "key-7f3a", "-e", "prod"])
    ok(["put", "other", "--value", "not-for-ci", "-e", "prod"])
    issued = json.loads(ok(["token", "issue", "-e", "prod", "--role", "read", "--only",
                            "db/*,api/*", "--json"]))  # fmt: skip
    return str(issued["token"])


def run_step(work: Path, **inputs: str) -> subprocess.CompletedProcess[str]:
    """The action's step as the runner runs it: a bash step with the inputs as env."""
    bsecrets = shutil.which("bsecrets")
    assert bsecrets, "the bsecrets console script is installed with the package"
    env = {
        "PATH": str(Path(bsecrets).parent) + ":/usr/bin:/bin",
        "HOME": str(work), "GITHUB_ACTIONS": "true", "GITHUB_ENV": str(work / "github_env"),
        "GITHUB_ACTION_PATH": str(ROOT), "INPUT_INSTALL": "false", **inputs,
    }  # fmt: skip
    return subprocess.run(["bash", str(SCRIPT)], cwd=work, env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip


def test_the_step_exports_what_the_token_reads_masked(vault: Path, token: str) -> None:
    done = run_step(vault, INPUT_ENV="prod", BSECRETS_TOKEN=token, INPUT_PREFIX="APP_")
    assert done.returncode == 0, done.stderr
    written = (vault / "github_env").read_text()
    assert "APP_DB_PASSWORD<<" in written and "pw-line1\npw-line2\n" in written
    assert "APP_API_KEY<<" in written and "key-7f3a" in written
    assert "not-for-ci" not in written  # outside the token's --only
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line]
    masks = {line for line in lines if line.startswith("::add-mask::")}
    assert {"::add-mask::pw-line1", "::add-mask::pw-line2", "::add-mask::key-7f3a"} <= masks
    assert [line for line in lines if line not in masks] == [
        "wrote 2 variables from 'prod' to GITHUB_ENV"
    ]  # no value outside a mask command


def test_only_narrows_what_is_exported(vault: Path, token: str) -> None:
    done = run_step(vault, INPUT_ENV="prod", BSECRETS_TOKEN=token, INPUT_ONLY="api/key")
    assert done.returncode == 0, done.stderr
    written = (vault / "github_env").read_text()
    assert "API_KEY<<" in written and "DB_PASSWORD" not in written


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ({"BSECRETS_TOKEN": "x"}, "needs 'env'"),
        ({"INPUT_ENV": "prod"}, "no credential"),
    ],
    ids=["no-env", "no-credential"],
)
def test_missing_inputs_fail_with_an_error_and_a_hint(
    vault: Path, inputs: dict[str, str], words: str
) -> None:
    done = run_step(vault, **inputs)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 2, done.stderr
    assert lines[0].startswith("error: ") and words in lines[0]
    assert lines[1].startswith("hint: ")
    assert not (vault / "github_env").exists()


def test_a_wrong_token_writes_nothing(vault: Path, token: str) -> None:
    done = run_step(vault, INPUT_ENV="prod", BSECRETS_TOKEN=token[:-4] + "AAAA")
    assert done.returncode == 4 and done.stderr.startswith("error: ")
    written = vault / "github_env"
    assert not written.exists() or written.read_text() == ""


def test_action_yml_runs_the_script_with_its_inputs() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    (step,) = action["runs"]["steps"]
    assert "ci/action-export.sh" in step["run"] and step["shell"] == "bash"
    assert set(action["inputs"]) == {"env", "only", "prefix", "install"}
    assert action["inputs"]["env"]["required"] is True
    for name in action["inputs"]:
        assert step["env"][f"INPUT_{name.upper()}"] == f"${{{{ inputs.{name} }}}}"


def test_the_gitlab_snippet_installs_and_is_valid_yaml() -> None:
    snippet = yaml.safe_load((ROOT / "ci" / "gitlab-ci.yml").read_text())
    job = snippet[".bsecrets"]
    assert any("pip install" in line for line in job["before_script"])
