"""exec without masking: names -> variables, the child's environment, the process
replaced by the command (os.execvpe), its exit codes. Real subprocesses throughout:
``exec`` replaces the process, so it is never run in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import invoke, put_secret, run_cli
from helpers.values import CANARY, PASSPHRASE

from bsecrets.config.envmap import (
    child_environment,
    is_protected,
    map_names,
    variable_name,
)
from bsecrets.errors import UsageError

PY = sys.executable


put = put_secret


def assert_error(result: subprocess.CompletedProcess[bytes], code: int, *needles: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in stderr, stderr


def child_env(args: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    """Run ``exec ARGS -- python`` and return the environment the child saw."""
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    result = run_cli([*args, "--", PY, "-c", code], env=env)
    assert result.returncode == 0, result.stderr.decode()
    data: dict[str, str] = json.loads(result.stdout)
    return data


# --- the mapping, as pure functions ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("db/password", "DB_PASSWORD"),
        ("api-key", "API_KEY"),
        ("a.b/c-d_e", "A_B_C_D_E"),
        ("Mixed_Case9", "MIXED_CASE9"),
    ],
)
def test_variable_name(name: str, variable: str) -> None:
    assert variable_name(name) == variable


def test_variable_name_prefix() -> None:
    assert variable_name("db/url", "APP_") == "APP_DB_URL"


def test_map_names_collision_names_both() -> None:
    with pytest.raises(UsageError) as info:
        map_names(["db/password", "DB.password"])
    assert "'DB.password'" in info.value.message and "'db/password'" in info.value.message
    assert "DB_PASSWORD" in info.value.message


@pytest.mark.parametrize(
    "variable",
    ["PATH", "HOME", "SHELL", "USER", "IFS", "LD_PRELOAD", "DYLD_INSERT_LIBRARIES", "PYTHONPATH",
     "BASH_ENV", "NODE_OPTIONS"],
)  # fmt: skip
def test_protected(variable: str) -> None:
    assert is_protected(variable)


def test_not_protected() -> None:
    assert not is_protected("DB_PASSWORD")
    assert not is_protected("PATHWAY")


def test_child_environment_withholds_unlock_variables() -> None:
    inherited = {
        "BSECRETS_SESSION": "s",
        "BSECRETS_PASSPHRASE": "p",
        "BSECRETS_PASSPHRASE_FILE": "/f",
        "KEEP": "1",
    }
    env, injected = child_environment({"a": b"v"}, inherited, mapping={"A": "a"})
    assert env == {b"KEEP": b"1", b"A": b"v"}
    assert injected == ["A"]


def test_child_environment_refuses_withheld_target() -> None:
    with pytest.raises(UsageError, match="never reaches"):
        child_environment(
            {"bsecrets_session": b"v"},
            {},
            mapping={"BSECRETS_SESSION": "bsecrets_session"},
            allow_override=["BSECRETS_SESSION"],
        )


# --- the command: bad input ------------------------------------------------------


def test_no_command(vault: Path) -> None:
    assert_error(run_cli(["exec"]), 2, "no command", "hint:")
    assert_error(run_cli(["exec", "--"]), 2, "no command")


def test_unknown_only_name(vault: Path) -> None:
    put("known", b"value-1")
    assert_error(run_cli(["exec", "--only", "known,missing", "--", "true"]), 3, "missing", "hint:")


def test_invalid_only_name(vault: Path) -> None:
    assert_error(run_cli(["exec", "--only", "bad name", "--", "true"]), 2, "invalid secret name")


def test_collision_names_both(vault: Path) -> None:
    put("db/password", b"value-1")
    put("DB.password", b"value-2")
    result = run_cli(["exec", "--", "true"])
    assert_error(result, 2, "'db/password'", "'DB.password'", "DB_PASSWORD", "hint:")
    # --only one of them resolves it
    assert run_cli(["exec", "--only", "db/password", "--", "true"]).returncode == 0


def test_path_override_refused(vault: Path) -> None:
    put("path", b"/nowhere")
    result = run_cli(["exec", "--", "true"])
    assert_error(result, 2, "'path'", "PATH", "--allow-override PATH")


@pytest.mark.parametrize("name", ["ld_preload", "home", "pythonpath", "IFS", "shell", "user"])
def test_protected_override_refused(vault: Path, name: str) -> None:
    put(name, b"value-x")
    assert_error(run_cli(["exec", "--", "true"]), 2, "protected variable")


def test_path_override_allowed(vault: Path) -> None:
    put("path", b"/usr/bin:/bin")
    seen = child_env(["exec", "--allow-override", "PATH"])
    assert seen["PATH"] == "/usr/bin:/bin"


def test_secret_named_like_session_refused(vault: Path) -> None:
    put("bsecrets_session", b"value-x")
    result = run_cli(["exec", "--allow-override", "BSECRETS_SESSION", "--", "true"])
    assert_error(result, 2, "never reaches")


def test_nul_byte_value_refused(vault: Path) -> None:
    put("blob", b"qz\0-hidden-tail")
    result = run_cli(["exec", "--", "true"])
    assert_error(result, 2, "'blob'", "NUL")
    assert b"qz" not in result.stderr and b"hidden-tail" not in result.stderr


def test_bad_prefix(vault: Path) -> None:
    assert_error(run_cli(["exec", "--prefix", "9-x", "--", "true"]), 2, "--prefix")


def test_unknown_environment(vault: Path) -> None:
    assert_error(run_cli(["exec", "-e", "nope", "--", "true"]), 3, "nope")


def test_locked_vault(vault: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSECRETS_PASSPHRASE")}
    result = subprocess.run(
        [PY, "-m", "bsecrets", "exec", "--", "true"],
        capture_output=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert_error(result, 4, "locked")


# --- the child's environment --------------------------------------------------


def test_secrets_become_variables(vault: Path) -> None:
    put("db/password", CANARY.encode())
    put("api-key", b"key-value")
    seen = child_env(["exec"])
    assert seen["DB_PASSWORD"] == CANARY
    assert seen["API_KEY"] == "key-value"


def test_unlock_variables_never_reach_child(vault: Path) -> None:
    put("a", b"value-a")
    session = json.loads(invoke(["unlock", "--json"]).stdout)["session"]
    pwfile = vault / "pw"
    pwfile.write_text(PASSPHRASE + "\n")
    env = {
        "BSECRETS_SESSION": session,
        "BSECRETS_PASSPHRASE": PASSPHRASE,
        "BSECRETS_PASSPHRASE_FILE": str(pwfile),
    }
    for args in (["exec"], ["exec", "--pristine"], ["exec", "--preserve-env", "BSECRETS_SESSION"]):
        seen = child_env(args, env=env)
        assert seen["A"] == "value-a"
        for name in env:
            assert name not in seen, (args, name)
        assert session not in json.dumps(seen)
        assert PASSPHRASE not in json.dumps(seen)


def test_secret_overrides_inherited(vault: Path) -> None:
    put("greeting", b"from-secret")
    assert child_env(["exec"], env={"GREETING": "inherited"})["GREETING"] == "from-secret"


def test_preserve_env(vault: Path) -> None:
    put("greeting", b"from-secret")
    put("other", b"other-secret")
    seen = child_env(["exec", "--preserve-env", "GREETING,OTHER"], env={"GREETING": "inherited"})
    assert seen["GREETING"] == "inherited"
    assert seen["OTHER"] == "other-secret"  # not inherited: the secret is set


def test_preserve_env_protected_is_not_an_override(vault: Path) -> None:
    put("path", b"/nowhere")
    seen = child_env(["exec", "--preserve-env", "PATH"])
    assert seen["PATH"] == os.environ["PATH"]


def test_only(vault: Path) -> None:
    put("a", b"value-a")
    put("b", b"value-b")
    put("c", b"value-c")
    seen = child_env(["exec", "--only", "a", "--only", "c"])
    assert (seen.get("A"), seen.get("B"), seen.get("C")) == ("value-a", None, "value-c")


def test_prefix(vault: Path) -> None:
    put("db/url", b"value-u")
    seen = child_env(["exec", "--prefix", "APP_"])
    assert seen["APP_DB_URL"] == "value-u"
    assert "DB_URL" not in seen


def test_pristine(vault: Path) -> None:
    put("a", b"value-a")
    seen = child_env(["exec", "--pristine"], env={"UNRELATED": "x", "TERM": "xterm", "LANG": "C"})
    assert set(seen) - {"A", "PATH", "HOME", "TERM", "LANG"} <= {"LC_CTYPE"}  # python adds it
    assert seen["A"] == "value-a"
    assert seen["HOME"] == os.environ["HOME"]
    assert seen["TERM"] == "xterm"


def test_multiline_and_unicode_value_survive(vault: Path) -> None:
    value = "line one\nline 'two' \"three\"\n$(echo no) `no` ünï ✓\n\n".encode()
    put("multi", value)
    result = run_cli(["exec", "--", "sh", "-c", 'printf %s "$MULTI"'])
    assert result.returncode == 0, result.stderr
    assert result.stdout == value


def test_non_utf8_value_survives(vault: Path) -> None:
    put("bin", b"\xff\xfe-raw")
    result = run_cli(["exec", "--", "sh", "-c", 'printf %s "$BIN"'])
    assert result.stdout == b"\xff\xfe-raw"


def test_value_not_in_argv_of_child(vault: Path) -> None:
    put("a", CANARY.encode())
    result = run_cli(["exec", "--", "sh", "-c", 'tr "\\0" " " < /proc/$$/cmdline'])
    assert CANARY.encode() not in result.stdout


# --- the process: replaced, exit codes, signals --------------------------------


def test_process_is_replaced(vault: Path) -> None:
    proc = subprocess.Popen(
        [PY, "-m", "bsecrets", "exec", "--", "sh", "-c", "echo $$"],
        stdout=subprocess.PIPE,
    )
    out, _ = proc.communicate(timeout=60)
    assert int(out) == proc.pid


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exit_code_passes_through(vault: Path, code: int) -> None:
    assert run_cli(["exec", "--", "sh", "-c", f"exit {code}"]).returncode == code


def test_command_not_found(vault: Path) -> None:
    result = run_cli(["exec", "--", "no-such-command-xyz"])
    assert_error(result, 127, "command not found: no-such-command-xyz", "hint:")


def test_command_not_executable(vault: Path) -> None:
    script = vault / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    assert_error(run_cli(["exec", "--", str(script)]), 126, "cannot execute", "hint:")


def test_command_is_a_directory(vault: Path) -> None:
    assert_error(run_cli(["exec", "--", str(vault)]), 126, "cannot execute")


def test_no_shell(vault: Path) -> None:
    result = run_cli(["exec", "--", "echo", "$HOME", ";", "`id`"])
    assert result.stdout == b"$HOME ; `id`\n"


def test_sigpipe_not_ignored_in_child(vault: Path) -> None:
    result = run_cli(["exec", "--", "sh", "-c", "grep SigIgn /proc/$$/status"])
    mask = int(result.stdout.split()[1], 16)
    assert not mask & (1 << (13 - 1)), result.stdout  # SIGPIPE is 13


def test_killed_by_signal_is_the_commands_own(vault: Path) -> None:
    result = run_cli(["exec", "--", "sh", "-c", "kill -9 $$"])
    assert result.returncode == -9


def test_github_actions_values_registered_first(vault: Path) -> None:
    """In GitHub Actions every line of every injected value is registered with
    ::add-mask:: on stderr before the command runs; stdout stays the command's."""
    put("multi", b"first-line\nsecond-line")
    for args in (["exec", "--no-mask"], ["exec", "--mask"]):
        result = run_cli(
            [*args, "--", "sh", "-c", 'echo "$MULTI" >&2; echo out'],
            env={"GITHUB_ACTIONS": "true"},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"out\n"
        lines = result.stderr.decode().splitlines()
        assert lines[:2] == ["::add-mask::first-line", "::add-mask::second-line"], lines
    assert b"::add-mask::" not in run_cli(["exec", "--", "true"]).stderr


@pytest.mark.parametrize("mask", ["--no-mask", "--mask"])
def test_child_gets_the_users_umask_and_core_limit(vault: Path, mask: str) -> None:
    """bsecrets runs with umask 077 and no core dumps; the command it starts gets the
    caller's own settings back."""
    import subprocess
    import sys

    script = (
        "import os, resource; print(oct(os.umask(0)), resource.getrlimit(resource.RLIMIT_CORE)[0])"
    )
    command = ["-m", "bsecrets", "exec", mask, "--", sys.executable, "-c", script]
    probe = (
        "import os, resource, subprocess, sys\n"
        "os.umask(0o022)\n"
        "resource.setrlimit(resource.RLIMIT_CORE, (1024, resource.RLIM_INFINITY))\n"
        f"r = subprocess.run([sys.executable, *{command!r}], capture_output=True, text=True)\n"
        "print(r.stdout, end='')\n"
        "sys.exit(r.returncode)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0o22", "1024"]
