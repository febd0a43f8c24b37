"""Shell completion (#17): ``bsecrets completion SHELL``, the shipped scripts in
completions/, real bash completion through the generated script, and what a TAB may
read: environments from the profile without unlocking, secret names only under a
session or a token, never a prompt, never a word on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import typer.main
from helpers.cli import assert_error, invoke, run_on_tty

from bsecrets.cli.app import app
from bsecrets.cli.commands.completion import SHELLS
from bsecrets.cli.completing import SHELL_NAMES, candidates

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = {"bash": "bsecrets.bash", "zsh": "_bsecrets", "fish": "bsecrets.fish"}


def ok(args: list[str], **env: str) -> str:
    result = invoke(args, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def session() -> str:
    return str(json.loads(ok(["unlock", "--json"]))["session"])


@pytest.fixture
def secrets(vault: Path) -> Path:
    for name in ("db/user", "db/password", "api/key"):
        ok(["put", name, "--value", "v"])
    ok(["put", "old", "--value", "v"])
    ok(["rm", "old"])
    ok(["put", "deploy/key", "--value", "v", "-e", "prod"])
    return vault


# --- the command and the shipped files -----------------------------------------------


@pytest.mark.parametrize("shell", SHELL_NAMES)
def test_the_shipped_script_is_what_the_command_prints(shell: str) -> None:
    printed = ok(["completion", shell])
    shipped = (ROOT / "completions" / SHIPPED[shell]).read_text()
    assert printed == shipped, (
        f"completions/{SHIPPED[shell]} is stale: run python scripts/generate_docs.py"
    )
    assert "_BSECRETS_COMPLETE" in printed and "bsecrets" in printed


def test_every_shell_has_a_script_and_a_shipped_file() -> None:
    assert tuple(SHELLS) == SHELL_NAMES
    assert set(SHIPPED) == set(SHELL_NAMES)
    assert sorted(p.name for p in (ROOT / "completions").iterdir()) == sorted(SHIPPED.values())


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = invoke(["completion", "tcsh"])
    assert_error(result, 2, "tcsh", "bash, zsh, fish")
    assert result.stderr.splitlines()[1].startswith("hint: "), result.stderr
    assert result.stdout == ""


def test_the_scripts_are_valid_shell() -> None:
    bash = subprocess.run(
        ["bash", "-n", str(ROOT / "completions" / SHIPPED["bash"])], capture_output=True
    )
    assert bash.returncode == 0, bash.stderr
    if os.path.exists("/bin/zsh") or os.path.exists("/usr/bin/zsh"):
        zsh = subprocess.run(
            ["zsh", "-n", str(ROOT / "completions" / SHIPPED["zsh"])], capture_output=True
        )
        assert zsh.returncode == 0, zsh.stderr


# --- real bash ------------------------------------------------------------------------

DRIVER = textwrap.dedent(
    r"""
    source "$SCRIPT"
    spec=$(complete -p bsecrets) || exit 90
    func=${spec##*-F }; func=${func%% *}
    COMP_LINE=$LINE
    COMP_POINT=${#COMP_LINE}
    read -r -a COMP_WORDS <<< "$COMP_LINE"
    [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    "$func" bsecrets "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}"
    """
)


@pytest.fixture
def bash_tab(tmp_path: Path) -> Any:
    """TAB at the end of a line in bash: the shipped script, sourced in a bare bash, its
    completion function called as bash calls it; returns (candidates, stderr)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    wrapper = folder / "bsecrets"  # the installed command, from this checkout
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bsecrets "$@"\n')
    wrapper.chmod(0o755)

    def tab(line: str, **env: str) -> tuple[list[str], str]:
        environ = {
            **os.environ,
            "PATH": f"{folder}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "SCRIPT": str(ROOT / "completions" / SHIPPED["bash"]),
            "LINE": line,
            **env,
        }
        done = subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", DRIVER],
            capture_output=True, text=True, env=environ, timeout=60,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return [w for w in done.stdout.splitlines() if w], done.stderr

    return tab


def test_bash_completes_command_names(bash_tab: Any) -> None:
    assert bash_tab("bsecrets p") == (["passphrase", "put", "provision", "promote"], "")
    assert bash_tab("bsecrets pu") == (["put"], "")
    words, _ = bash_tab("bsecrets ")
    assert {"get", "put", "rotate", "completion", "break-glass"} <= set(words)


def test_bash_completes_options(bash_tab: Any) -> None:
    assert bash_tab("bsecrets get --j") == (["--json"], "")
    assert bash_tab("bsecrets get --ra") == (["--raw"], "")
    assert bash_tab("bsecrets --pro") == (["--profile"], "")


def test_bash_completes_environments_without_unlocking(vault: Path, bash_tab: Any) -> None:
    # no session and no passphrase: the profile is enough
    assert bash_tab("bsecrets get -e pr", BSECRETS_PASSPHRASE="") == (["prod"], "")
    assert bash_tab("bsecrets -e ", BSECRETS_PASSPHRASE="") == (["dev", "prod"], "")
    assert bash_tab("bsecrets diff dev ") == (["dev", "prod"], "")
    assert bash_tab("bsecrets promote --to p") == (["prod"], "")


def test_bash_completes_secret_names_under_a_session(secrets: Path, bash_tab: Any) -> None:
    token = session()
    assert bash_tab("bsecrets get db/", BSECRETS_SESSION=token) == (
        ["db/password", "db/user"],
        "",
    )
    assert bash_tab("bsecrets rm ", BSECRETS_SESSION=token)[0] == [
        "api/key",
        "db/password",
        "db/user",
    ]
    assert bash_tab("bsecrets get -e prod ", BSECRETS_SESSION=token) == (["deploy/key"], "")
    assert bash_tab("bsecrets restore ", BSECRETS_SESSION=token) == (["old"], "")
    assert bash_tab("bsecrets history a", BSECRETS_SESSION=token) == (["api/key"], "")


def test_bash_completes_no_secret_name_without_a_session(secrets: Path, bash_tab: Any) -> None:
    # the vault fixture sets BSECRETS_PASSPHRASE: a TAB still never unlocks with it
    assert os.environ["BSECRETS_PASSPHRASE"]
    assert bash_tab("bsecrets get db/") == ([], "")


def test_a_bad_session_gives_nothing_and_says_nothing(secrets: Path, bash_tab: Any) -> None:
    assert bash_tab("bsecrets get db/", BSECRETS_SESSION="bss1.bogus.bogus") == ([], "")


def test_a_missing_profile_gives_nothing_and_says_nothing(isolated: Path, bash_tab: Any) -> None:
    assert not (isolated / "bsecrets.yaml").exists()
    assert bash_tab("bsecrets get -e ") == ([], "")
    assert bash_tab("bsecrets get db/", BSECRETS_SESSION="bss1.x.y") == ([], "")
    assert bash_tab("bsecrets get -e ", BSECRETS_PROFILE="/nonexistent/bsecrets.yaml") == (
        [],
        "",
    )


def test_a_broken_profile_gives_nothing_and_says_nothing(vault: Path, bash_tab: Any) -> None:
    (vault / "bsecrets.yaml").write_text("version: 1\nenvironments: [\n")
    assert bash_tab("bsecrets get -e ") == ([], "")


def test_a_tab_on_a_terminal_asks_nothing(secrets: Path) -> None:
    env = {**os.environ, "_BSECRETS_COMPLETE": "bash_complete", "COMP_WORDS": "bsecrets get db/",
           "COMP_CWORD": "2", "BSECRETS_SESSION": session()}  # fmt: skip
    del env["BSECRETS_PASSPHRASE"]
    assert run_on_tty([], [], env) == (0, "plain,db/password\r\nplain,db/user\r\n")
    # a session that does not unlock: a prompt would be next in the unlock chain
    env["BSECRETS_SESSION"] = "bss1.bogus.bogus"
    assert run_on_tty([], [], env) == (0, "")
    env["BSECRETS_SESSION"], env["BSECRETS_AS"] = session(), "nobody"
    assert run_on_tty([], [], env) == (0, "")


# --- the protocol of zsh and fish (their scripts read these lines) ---------------------


def protocol(shell: str, words: str, cword: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bsecrets"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "_BSECRETS_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
             "COMP_CWORD": cword, **env},
    )  # fmt: skip


def test_zsh_gets_type_value_and_help_lines(vault: Path) -> None:
    done = protocol("zsh", "bsecrets get --j", "2")
    assert done.returncode == 0 and done.stderr == ""
    kind, value, about = done.stdout.splitlines()
    assert (kind, value) == ("plain", "--json")
    assert about.startswith("Machine-readable output")
    done = protocol("zsh", "bsecrets get -e ", "3")
    assert done.stdout.splitlines() == ["plain", "dev", "_", "plain", "prod", "_"]


def test_fish_gets_the_word_being_completed_apart(vault: Path) -> None:
    done = protocol("fish", "bsecrets get -e p", "p")
    assert (done.returncode, done.stdout, done.stderr) == (0, "plain,prod\n", "")
    done = protocol("fish", "bsecrets rot", "rot")
    assert done.stdout == "plain,rotate\tRotate a secret: create the new value, set...\n"


def test_the_script_is_also_printed_through_the_protocol() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bsecrets"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "_BSECRETS_COMPLETE": "bash_source"},
    )  # fmt: skip
    assert done.stdout == (ROOT / "completions" / SHIPPED["bash"]).read_text()


def test_a_token_completes_the_names_it_may_read(secrets: Path) -> None:
    token = json.loads(ok(["token", "issue", "-e", "prod", "--json"]))["token"]
    done = protocol("fish", "bsecrets get -e prod ", "", BSECRETS_TOKEN=token,
                    BSECRETS_PASSPHRASE="")  # fmt: skip
    assert (done.stdout, done.stderr) == ("plain,deploy/key\n", "")
    done = protocol("fish", "bsecrets get -e dev ", "", BSECRETS_TOKEN=token,
                    BSECRETS_PASSPHRASE="")  # fmt: skip
    assert (done.stdout, done.stderr) == ("", "")  # no grant on dev: nothing


def test_a_tab_under_a_session_is_an_audited_ls(secrets: Path) -> None:
    done = protocol("bash", "bsecrets get db/", "2", BSECRETS_SESSION=session())
    assert done.stdout.split() == ["plain,db/password", "plain,db/user"]
    events = json.loads(ok(["audit", "log", "--json"]))
    listed = [e for e in events if e["action"] == "ls"]
    assert listed[-1]["details"] == {"prefix": "db/", "count": 2}, listed


# --- what completes where (in-process) ---------------------------------------------------


def tab(line: str) -> list[str]:
    words = line.split(" ")
    root = typer.main.get_command(app)
    return [i.value for i in candidates(root, {}, words[1:-1], words[-1])]


def test_rotate_offers_its_commands_secret_names_and_hidden_forms(
    secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSECRETS_SESSION", session())
    words = tab("bsecrets rotate ")
    assert {"status", "flip", "resume", "db/user", "api/key"} <= set(words)
    assert "secret" not in words and "due" not in words  # hidden commands
    assert tab("bsecrets rotate --d") == ["--dry-run", "--due"]
    assert tab("bsecrets rotate db/user --strategy g") == ["graceful"]
    assert tab("bsecrets rotate status d") == ["db/password", "db/user"]


def test_promote_offers_the_options_of_its_hidden_command(vault: Path) -> None:
    assert {"--from", "--to", "--dry-run", "--resume"} <= set(tab("bsecrets promote --"))
    assert tab("bsecrets promote --from d") == ["dev"]
    assert tab("bsecrets promote l") == ["log"]


def test_other_values(vault: Path) -> None:
    assert tab("bsecrets completion ") == ["bash", "zsh", "fish"]
    assert tab("bsecrets env default ") == ["dev", "prod"]
    assert tab("bsecrets token issue --role ") == ["read", "write"]
    assert tab("bsecrets init -e ") == []  # a new environment's name
    root = typer.main.get_command(app)
    (item,) = candidates(root, {}, ["put", "x", "--from-file"], "val")
    assert (item.type, item.value) == ("file", "val")  # the shell completes files


# --- the start-up path -------------------------------------------------------------------

PROBE = """
import sys
sys.argv = ["bsecrets", *sys.argv[1:]]
try:
    from bsecrets.cli.app import main
    main()
except SystemExit:
    pass
print("MODULES " + " ".join(sorted(sys.modules)), file=sys.stderr)
"""


def test_a_command_loads_nothing_of_completion(vault: Path) -> None:
    ok(["put", "a", "--value", "1"])
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "get", "a"], capture_output=True, text=True, timeout=60
    )
    assert done.stdout == "1\n", done.stderr
    modules = done.stderr.split("MODULES ")[-1].split()
    assert "bsecrets.cli.completing" not in modules
    assert "bsecrets.cli.commands.completion" not in modules
    assert "bsecrets.cli.manpages" not in modules
