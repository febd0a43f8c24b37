"""The command-line contract of docs/cli.md that every command shares: global options
before or after the command, errors as one JSON object under --json, and `status`
in words for people and in fixed keys for scripts."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import Result, invoke, run_cli, run_on_tty
from helpers.values import PASSPHRASE

CANARY = "canary-Zq81-internal"
ERROR_KEYS = {"error", "hint", "kind", "exit_code"}


def ok(args: list[str], input: str | None = None, env: dict[str, str] | None = None) -> Result:
    result = invoke(args, input=input, env=env)
    assert result.exit_code == 0, (args, result.stderr)
    return result


@pytest.fixture
def secrets(vault: Path) -> Path:
    """dev: a and b; prod: a with another value (each put is an audit event)."""
    ok(["put", "a"], input="dev-a")
    ok(["put", "b"], input="dev-b")
    ok(["put", "a", "-e", "prod"], input="prod-a")
    return vault


# --- global options before or after the command ------------------------------------


def same_everywhere(before: list[str], command: list[str], after: list[str]) -> Result:
    """``bsecrets OPTIONS COMMAND`` and ``bsecrets COMMAND OPTIONS`` give the same result;
    for a group (``audit log``), so does ``bsecrets GROUP OPTIONS SUB``."""
    first = invoke([*before, *command])
    orders = [[*command, *after]]
    if len(command) > 1 and command[0] in ("audit", "vault", "aws"):
        orders.append([command[0], *after, *command[1:]])
    for args in orders:
        again = invoke(args)
        assert (again.exit_code, again.stdout, again.stderr) == (
            first.exit_code,
            first.stdout,
            first.stderr,
        ), args
    return first


@pytest.mark.parametrize(
    "command",
    [
        ["ls"],
        ["history", "a"],
        ["audit", "log", "--action", "put", "--env", "dev"],
        ["audit", "search", "prod", "--action", "put"],
    ],
)
def test_quiet_before_or_after(secrets: Path, command: list[str]) -> None:
    table = ok(command).stdout.splitlines()
    result = same_everywhere(["-q"], command, ["-q"])
    assert result.exit_code == 0, result.stderr
    assert len(table) > 1 and result.stdout.split() == [row.split()[0] for row in table[1:]]


def test_json_before_or_after(secrets: Path) -> None:
    for command in (
        ["ls"],
        ["history", "a"],
        ["get", "a"],
        ["diff", "dev", "prod"],
        ["audit", "log", "--action", "put"],
        ["audit", "search", "prod", "--action", "put"],
    ):
        result = same_everywhere(["--json"], command, ["--json"])
        assert result.exit_code == 0, (command, result.stderr)
        json.loads(result.stdout)
    before, after = invoke(["--json", "status"]), invoke(["status", "--json"])
    assert json.loads(before.stdout)["environments"] == json.loads(after.stdout)["environments"]
    # a command without a JSON form takes --json too: its output is unchanged, and
    # its errors are JSON (here: no environment on Vault)
    assert same_everywhere(["--json"], ["export"], ["--json"]).stdout == ok(["export"]).stdout
    error = same_everywhere(["--json"], ["vault", "policy"], ["--json"])
    assert json.loads(error.stderr)["exit_code"] == 2


def test_profile_before_or_after(
    secrets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert invoke(["ls"]).exit_code == 3  # no profile found from here
    profile = str(secrets / "bsecrets.yaml")
    for command in (["ls"], ["get", "a"], ["audit", "log", "--action", "put"], ["status"]):
        result = same_everywhere(["-p", profile], command, ["--profile", profile])
        assert result.exit_code == 0, (command, result.stderr)
    # the flag after the command wins over BSECRETS_PROFILE, as the flag before it does
    env = {"BSECRETS_PROFILE": str(tmp_path / "missing.yaml")}
    assert (
        invoke(["ls", "-p", profile], env=env).stdout
        == invoke(["-p", profile, "ls"], env=env).stdout
    )
    assert invoke(["ls"], env=env).exit_code == 3


def test_env_before_or_after(secrets: Path) -> None:
    assert same_everywhere(["-e", "prod"], ["get", "a"], ["-e", "prod"]).stdout == "prod-a\n"
    assert same_everywhere(["-e", "prod"], ["ls", "-q"], ["--env", "prod"]).stdout == "a\n"
    # audit's -e filters events; before the command it filters them too
    events = same_everywhere(
        ["-e", "prod"], ["audit", "log", "--action", "put", "--json"], ["-e", "prod"]
    )
    assert [e["env"] for e in json.loads(events.stdout)] == ["prod"]
    # status and diff take -e after their name too (the global one)
    assert invoke(["status", "-e", "prod"]).exit_code == 0
    assert invoke(["diff", "dev", "prod", "-e", "prod", "-q"]).exit_code == 0
    # BSECRETS_ENV picks the environment; a flag (before or after) wins over it
    env = {"BSECRETS_ENV": "prod"}
    assert invoke(["get", "a"], env=env).stdout == "prod-a\n"
    assert invoke(["get", "a", "-e", "dev"], env=env).stdout == "dev-a\n"
    assert invoke(["-e", "dev", "get", "a"], env=env).stdout == "dev-a\n"
    # ... and it is not an audit filter: only -e on the command line is
    assert (
        len(json.loads(invoke(["audit", "log", "--action", "put", "--json"], env=env).stdout)) == 3
    )


def test_env_before_init_names_the_environment_to_create(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    ok(["-e", "staging", "init"])
    profile = (isolated / "bsecrets.yaml").read_text()
    assert "staging:" in profile and "dev:" not in profile


def test_insecure_http_before_or_after(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote_vault(isolated, monkeypatch)
    plain = invoke(["get", "db", "-e", "staging"])
    assert plain.exit_code == 4 and plain.stderr.count("warning: ") == 1, plain.stderr
    for args in (
        ["--insecure-http", "get", "db", "-e", "staging"],
        ["get", "db", "-e", "staging", "--insecure-http"],
    ):
        result = invoke(args)
        assert result.exit_code == 4 and "warning" not in result.stderr, (args, result.stderr)


def test_no_color_before_or_after(secrets: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm-256color"
    code, screen = run_on_tty(["status"], [], env)
    assert code == 0 and "\x1b[32m" in screen, screen  # 'ok' in green
    for args in (["--no-color", "status"], ["status", "--no-color"]):
        code, screen = run_on_tty(args, [], env)
        assert code == 0 and "INDICATOR" in screen, screen
        assert not re.search(r"\x1b\[(3\d|9\d|38;)", screen), (args, screen)
    code, screen = run_on_tty(["status"], [], {**env, "NO_COLOR": "1"})
    assert not re.search(r"\x1b\[(3\d|9\d|38;)", screen), screen


def test_option_values_and_exec_arguments_are_never_global_options(secrets: Path) -> None:
    # a value that looks like an option is the option's value; the -q after it is global
    result = invoke(["put", "x", "--description", "-q", "-q"], input="v")
    assert result.exit_code == 0 and result.stdout == "", result.stderr
    assert json.loads(ok(["get", "x", "--json"]).stdout)["description"] == "-q"
    # exec: global options before '--' are bsecrets'; after it, the command's own
    script = "import sys; print(sys.argv[1:])"
    proc = run_cli(
        [
            "exec",
            "-q",
            "--json",
            "--only",
            "a",
            "--",
            sys.executable,
            "-c",
            script,
            "-q",
            "--json",
            "-e",
            "x",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == "['-q', '--json', '-e', 'x']"


def test_bsecrets_json_is_the_json_flag(secrets: Path) -> None:
    env = {"BSECRETS_JSON": "1"}
    assert json.loads(ok(["ls"], env=env).stdout)[0]["name"] == "a"
    assert ok(["ls"], env={"BSECRETS_JSON": "0"}).stdout.startswith("NAME")


def global_option_help() -> dict[str, str]:
    """The help text of each shared option alias (EnvOption, JsonOption, YesOption) by option."""
    from bsecrets.cli.context import EnvOption, JsonOption, YesOption

    return {
        "--env": EnvOption.__metadata__[0].help,  # type: ignore[attr-defined]
        "--json": JsonOption.__metadata__[0].help,  # type: ignore[attr-defined]
        "--yes": YesOption.__metadata__[0].help,  # type: ignore[attr-defined]
    }


def every_command() -> list[tuple[str, Any]]:
    from bsecrets.cli.app import COMMANDS, build_command

    found = []
    for name in COMMANDS:
        command = build_command(name)
        found.append((name, command))
        found += [(f"{name} {sub}", c) for sub, c in getattr(command, "commands", {}).items()]
    return found


# Commands whose own option spells a global one, with the meaning docs/cli.md gives:
# init's -e names the environments to create, audit's -e filters events (before the
# command, -e means the same for them); 'env add --insecure-http' writes the switch
# into the new environment (the command makes no connection to warn about).
OWN_MEANING = {
    ("init", "--env"),
    *{(f"audit {c}", "--env") for c in ("log", "search", "tail", "export")},
    ("env add", "--insecure-http"),
    ("token issue", "--env"),  # the environments the token opens (repeatable)
}


def test_no_command_gives_a_global_option_another_meaning() -> None:
    from bsecrets.config.settings import GLOBAL_OPTIONS

    shared = global_option_help()
    short = {"-p": "--profile", "-e": "--env", "-q": "--quiet"}
    for path, command in every_command():
        for param in command.params:
            spelled = {short.get(o, o) for o in param.opts} & set(GLOBAL_OPTIONS)
            for option in spelled:
                if (path, option) in OWN_MEANING:
                    continue
                assert param.help == shared.get(option), (
                    f"'{path}' defines {option} itself: use the shared alias "
                    "(bsecrets.cli.context) or another name"
                )


# --- errors as JSON ---------------------------------------------------------------


def json_error(result: Any, code: int, kind: str) -> dict[str, Any]:
    """stdout empty; every stderr line a JSON object; the last one the error."""
    exit_code = getattr(result, "exit_code", getattr(result, "returncode", None))
    stdout = result.stdout if isinstance(result.stdout, str) else result.stdout.decode()
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert exit_code == code, stderr
    assert stdout == "", stdout
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert lines, "nothing on stderr"
    error = lines[-1]
    assert set(error) - {"applied"} == ERROR_KEYS, error
    assert (error["exit_code"], error["kind"]) == (code, kind), error
    assert isinstance(error["error"], str) and error["error"]
    assert error["hint"] is None or isinstance(error["hint"], str)
    assert error.get("applied", "no") in ("yes", "no", "unknown")
    assert all(set(line) == {"warning"} or set(line) == {"message"} for line in lines[:-1])
    return error


def test_exit_1_as_json(secrets: Path) -> None:
    db = sqlite3.connect(secrets / ".bsecrets" / "vault.db")
    with db:
        db.execute("UPDATE meta SET value = CAST('999' AS BLOB) WHERE key = 'format_version'")
    db.close()
    error = json_error(invoke(["get", "a", "--json"]), 1, "unsupported_format")
    assert "newer bsecrets" in error["error"] and "upgrade" in error["hint"]
    assert "applied" not in error


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["get", "bad name!", "--json"], "invalid_name"),
        (["--json", "get", "bad name!"], "invalid_name"),
        (["ls", "--json", "--bogus"], "usage"),
        (["ls", "--bogus", "--json"], "usage"),  # the bad option comes before --json
        (["--json", "ls", "--bogus"], "usage"),
        (["--json", "no-such-command"], "usage"),
        (["get", "--json"], "usage"),  # missing argument
        (["get", "a", "--version", "x", "--json"], "usage"),  # bad value
        (["--json", "audit"], "usage"),  # a group without its command
        (["audit", "--json"], "usage"),
    ],
)
def test_exit_2_as_json(secrets: Path, args: list[str], kind: str) -> None:
    error = json_error(invoke(args), 2, kind)
    assert error["hint"], error


def test_usage_errors_in_json_never_echo_what_was_typed(secrets: Path) -> None:
    for args in (["put", "a", CANARY, "--json"], ["get", "a", "--version", CANARY, "--json"]):
        result = invoke(args)
        json_error(result, 2, "usage")
        assert CANARY not in result.stderr


def test_bsecrets_json_makes_errors_json(secrets: Path) -> None:
    json_error(invoke(["ls", "--bogus"], env={"BSECRETS_JSON": "1"}), 2, "usage")
    plain = invoke(["ls", "--bogus"])
    assert plain.stderr.startswith("error: no such option: --bogus\nhint: ")


def test_exit_3_as_json(secrets: Path) -> None:
    error = json_error(invoke(["get", "missing", "--json"]), 3, "secret_not_found")
    assert "missing" in error["error"] and "bsecrets ls" in error["hint"]
    assert "applied" not in error
    json_error(invoke(["get", "a", "-e", "nowhere", "--json"]), 3, "environment_not_found")


def test_exit_4_as_json(secrets: Path) -> None:
    result = invoke(["--json", "get", "a"], env={"BSECRETS_PASSPHRASE": "not the passphrase"})
    json_error(result, 4, "wrong_passphrase")


def test_exit_5_as_json(secrets: Path) -> None:
    db = sqlite3.connect(secrets / ".bsecrets" / "vault.db")
    with db:
        rowid, value = db.execute("SELECT rowid, value FROM versions").fetchone()
        damaged = bytes(value[:-1]) + bytes([value[-1] ^ 1])
        db.execute("UPDATE versions SET value = ? WHERE rowid = ?", (damaged, rowid))
    db.close()
    error = json_error(invoke(["get", "a", "--json"]), 5, "integrity_error")
    assert "backup" in error["hint"]


def test_exit_6_as_json(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.openbao_server import free_port

    remote_vault(isolated, monkeypatch, address=f"http://127.0.0.1:{free_port()}", auth=None)
    monkeypatch.setenv("VAULT_TOKEN", "s.token-canary")
    result = invoke(["get", "db", "-e", "staging", "--json"])
    error = json_error(result, 6, "backend_unavailable")
    assert "cannot reach Vault" in error["error"]
    assert "s.token-canary" not in result.stderr


def test_exit_7_as_json(secrets: Path) -> None:
    result = invoke(["put", "a", "--if-version", "5", "--json"], input="new")
    error = json_error(result, 7, "version_conflict")
    assert "history" in error["hint"]
    assert ok(["get", "a"]).stdout == "dev-a\n"


def test_exec_errors_as_json(secrets: Path) -> None:
    proc = run_cli(["exec", "--json", "--", "no-such-command-xyz"])
    error = json_error(proc, 127, "command_not_found")
    assert "no-such-command-xyz" in error["error"]
    plain = run_cli(["exec", "--", "no-such-command-xyz", "--json"])
    assert plain.returncode == 127 and plain.stderr.startswith(b"error: command not found")


@pytest.fixture
def test_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two commands added to the real command table, for the errors no real input
    gives: an unexpected exception (whose text may hold data) and a failed write that
    says whether it was applied."""
    from bsecrets.cli.app import COMMANDS

    module = tmp_path / "contract_test_commands.py"
    module.write_text(
        "from bsecrets.errors import StorageError\n"
        "def boom() -> None:\n"
        f"    raise RuntimeError({CANARY!r})\n"
        "def half_write() -> None:\n"
        "    raise StorageError(\n"
        "        'the write timed out', hint='check with history', applied='unknown'\n"
        "    )\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "boom", ("contract_test_commands", "boom"))
    monkeypatch.setitem(COMMANDS, "half-write", ("contract_test_commands", "half_write"))


def test_internal_error_as_json(isolated: Path, test_commands: None) -> None:
    result = invoke(["boom", "--json"])
    error = json_error(result, 1, "internal")
    assert error["error"] == "internal error (RuntimeError)"
    assert "BSECRETS_DEBUG=1" in error["hint"]
    assert CANARY not in result.stderr


def test_applied_is_given_when_known(isolated: Path, test_commands: None) -> None:
    error = json_error(invoke(["--json", "half-write"]), 1, "storage_error")
    assert error["applied"] == "unknown"
    plain = invoke(["half-write"])
    assert plain.stderr == "error: the write timed out\nhint: check with history\n"


def remote_vault(work: Path, monkeypatch: pytest.MonkeyPatch, **staging: Any) -> None:
    """'staging' on Vault over plain http:// to another host, with an AppRole login
    whose variables are unset: the command warns, then stops before any request (4)."""
    from helpers.vault_env import write_profile

    env: dict[str, Any] = {
        "backend": "vault",
        "prefix": "app",
        "address": "http://10.255.255.1:8200",
        "auth": {"method": "approle", "role_id_env": "NO_ROLE_ID", "secret_id_env": "NO_SECRET_ID"},
    }
    env.update(staging)
    if env["auth"] is None:
        del env["auth"]
    write_profile(work, monkeypatch, {"staging": env})


def test_warnings_and_messages_are_json_lines_under_json(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote_vault(isolated, monkeypatch)
    result = invoke(["get", "db", "-e", "staging", "--json"])
    error = json_error(result, 4, "denied")
    warning = json.loads(result.stderr.splitlines()[0])
    assert "without TLS" in warning["warning"] and "NO_ROLE_ID" in error["error"]
    # a warning on success: stdout is the JSON document, stderr JSON lines
    result = invoke(["put", "k", "--value", "v", "--json"])
    assert json.loads(result.stdout)["version"] == 1
    (line,) = result.stderr.splitlines()
    assert "argv" in json.loads(line)["warning"]
    # a message (here: 'rendered ... -> ...') too
    (isolated / "t.tmpl").write_text("x={{ bsecrets://dev/k }}\n")
    result = invoke(["render", "t.tmpl", "-o", "out.txt", "--json"])
    assert result.exit_code == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert json.loads(line)["message"].startswith("rendered t.tmpl")


# --- status -----------------------------------------------------------------------

STATUS_KEYS = {
    "version", "profile", "vault_file", "default_env", "healthy", "environments", "audit",
    "indicators",
}  # fmt: skip


def test_status_json_has_fixed_keys(secrets: Path) -> None:
    data = json.loads(ok(["status", "--json"]).stdout)
    assert set(data) == STATUS_KEYS
    assert data["profile"] == str(secrets / "bsecrets.yaml")
    assert data["default_env"] == "dev" and data["healthy"] is True
    assert set(data["environments"]) == {"dev", "prod"}
    dev = data["environments"]["dev"]
    assert {k: dev[k] for k in ("backend", "initialized", "secrets")} == {
        "backend": "local",
        "initialized": True,
        "secrets": 2,
    }
    assert isinstance(dev["generation"], int) and "name" not in dev
    assert data["audit"] == {"sink": "local vault"}
    for indicator in data["indicators"]:
        assert set(indicator) == {"name", "ok", "detail", "value"}
        assert isinstance(indicator["ok"], bool) and isinstance(indicator["detail"], str)


def test_status_text_speaks_words_not_python(secrets: Path) -> None:
    text = ok(["status"]).stdout
    assert not re.search(r"\b(True|False|None)\b", text), text
    assert re.search(r"^healthy +yes$", text, re.M), text
    assert re.search(r"^  dev +local +initialized yes, generation \d+, secrets 2$", text, re.M), (
        text
    )
    assert re.search(r"^  ok +profile +/", text, re.M), text


def test_status_shows_an_environment_that_cannot_be_opened(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.vault_env import write_profile

    write_profile(isolated, monkeypatch, {"staging": {"backend": "vault", "prefix": "app"}})
    data = json.loads(ok(["status", "--json"]).stdout)
    staging = data["environments"]["staging"]
    assert set(staging) == {"backend", "error"} and "no Vault address" in staging["error"]
    assert data["healthy"] is False
    text = ok(["status"]).stdout
    assert re.search(r"^  staging +vault +error: .*no Vault address", text, re.M), text
    assert "FAIL staging.backend" in text and "healthy      no" in text


def test_status_on_a_terminal_is_a_table(secrets: Path) -> None:
    code, screen = run_on_tty(["status"], [], dict(os.environ))
    assert code == 0, screen
    screen = re.sub(r"\x1b\[[0-9;]*m", "", screen)
    assert str(secrets / "bsecrets.yaml") in re.sub(r"\s*\r\n\s*", "", screen)  # folded, not cut
    assert re.search(r"ENVIRONMENT +BACKEND +DETAILS", screen), screen
    assert re.search(r"dev +local +initialized yes", screen), screen
    assert not re.search(r"\b(True|False|None)\b", screen), screen
