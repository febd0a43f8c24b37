"""exec --env-file (#21): a dotenv file of plain settings and bsecrets:// references,
resolved through the façade before the child starts. Real subprocesses where the
child is the subject (what it got, whether it ran); the rest in-process, with a
command that does not exist, so that reaching the exec is exit 127, never a
replaced test process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import assert_error, invoke, put_secret, run_cli
from helpers.values import CANARY

from bsecrets.errors import UsageError
from bsecrets.services.env_file import Line, parse

PY = sys.executable
SHOW = "import json, os; print(json.dumps(dict(os.environ)))"
NOWHERE = "/nonexistent/bsecrets-test-child"  # reaching it would be exit 127


@pytest.fixture
def db(vault: Path) -> Path:
    """dev: db/url (one version), api/key (v1, then the current CANARY); prod: db/url."""
    put_secret("db/url", b"postgres://dev")
    put_secret("api/key", b"key-version-one")
    put_secret("api/key", CANARY.encode())
    put_secret("db/url", b"postgres://prod", env="prod")
    return vault


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return path.name


def child(args: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    result = run_cli(["exec", *args, "--", PY, "-c", SHOW], env=env)
    assert result.returncode == 0, result.stderr.decode()
    data: dict[str, str] = json.loads(result.stdout)
    return data


def events(action: str) -> list[dict[str, Any]]:
    result = invoke(["audit", "log", "--action", action, "--json"])
    assert result.exit_code == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


# --- the file, as a pure function ----------------------------------------------------


def test_parse_settings_and_references() -> None:
    text = (
        "# a comment\n"
        "\n"
        "PLAIN=debug\n"
        'export QUOTED="a b # not a comment"\n'
        "SINGLE='bsecrets is a word here'\n"
        "REF=bsecrets://prod/db/url\n"
        'QREF="bsecrets://dev/api/key#v3"\n'
        "FIELD=bsecrets://staging/db#password#v2\n"
        "NOTE=see bsecrets://dev/x\n"
        "TOKENISH=sk-live-abc123\n"
    )
    lines = parse(text, "t.env")
    assert lines == [
        Line("PLAIN", "t.env:3", "debug"),
        Line("QUOTED", "t.env:4", "a b # not a comment"),
        Line("SINGLE", "t.env:5", "bsecrets is a word here"),
        Line("REF", "t.env:6", None, "prod", "db/url", None),
        Line("QREF", "t.env:7", None, "dev", "api/key", 3),
        Line("FIELD", "t.env:8", None, "staging", "db#password", 2),
        Line("NOTE", "t.env:9", "see bsecrets://dev/x"),
        Line("TOKENISH", "t.env:10", "sk-live-abc123"),
    ]
    assert [line.batched for line in lines[3:6]] == [True, False, False]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("A=bsecrets://\n", "expected bsecrets://ENV/NAME"),
        ("A=bsecrets://prod\n", "expected bsecrets://ENV/NAME"),
        ("A=bsecrets:prod/db\n", "expected bsecrets://ENV/NAME"),
        ("A=bsecrets:///db\n", "expected bsecrets://ENV/NAME"),  # a file names the env
        ("A=bsecrets://prod/db#\n", "empty '#' fragment"),
        ("A=bsecrets://prod/db#v0\n", "versions start at 1"),
    ],
)
def test_malformed_reference_names_file_and_line(text: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse("OK=1\n" + text, "t.env")
    assert info.value.message == f"t.env:2: malformed reference: {why}"


def test_a_bad_key_is_not_echoed() -> None:
    with pytest.raises(UsageError) as info:
        parse(f"{CANARY}.x=1\n", "t.env")
    assert info.value.message == "t.env:1: the key is not a variable name"


# --- what the child gets ---------------------------------------------------------


def test_references_resolve_and_plain_settings_pass(db: Path) -> None:
    name = write(
        db / ".env.tpl",
        "LOG_LEVEL=debug\n"
        'GREETING="hello world"\n'
        "DATABASE=bsecrets://prod/db/url\n"
        "OLD_KEY=bsecrets://dev/api/key#v1\n"
        "KEY=bsecrets://dev/api/key\n"
        "TOKENISH=sk-live-notareference\n"
        "NOTE=see bsecrets://dev/x\n"
        "UNI='päss wörd ✓'\n",
    )
    env = child(["--env-file", name])
    assert env["LOG_LEVEL"] == "debug" and env["GREETING"] == "hello world"
    assert env["DATABASE"] == "postgres://prod"
    assert (env["OLD_KEY"], env["KEY"]) == ("key-version-one", CANARY)
    assert env["TOKENISH"] == "sk-live-notareference" and env["NOTE"] == "see bsecrets://dev/x"
    assert env["UNI"] == "päss wörd ✓"
    # without -e only the file's variables: no secret of the default environment
    assert "DB_URL" not in env and "API_KEY" not in env
    # one audited read per environment naming what it read; the version is its own get
    execs = [e for e in events("exec") if e["outcome"] == "ok"]
    assert sorted((e["env"], e["names"]) for e in execs) == [
        ("dev", ["api/key"]),
        ("prod", ["db/url"]),
    ]
    gets = events("get")
    assert [(e["env"], e["name"], e["version"]) for e in gets] == [("dev", "api/key", 1)]
    log = invoke(["audit", "log", "--json"]).stdout
    assert CANARY not in log and "postgres://" not in log and "key-version-one" not in log


def test_files_layer_over_the_environment(db: Path) -> None:
    first = write(db / "a.env", "API_KEY=from-a\nONLY_A=a\nDB_URL=bsecrets://prod/db/url\n")
    second = write(db / "b.env", "API_KEY=from-b\n")
    env = child(["-e", "dev", "--env-file", first, "--env-file", second])
    # the environment's secrets first, each file on top, a later file over an earlier one
    assert env["DB_URL"] == "postgres://prod"  # a line wins over the secret
    assert (env["API_KEY"], env["ONLY_A"]) == ("from-b", "a")
    # the dev read names only what the child got from it: db/url came from prod
    dev = [e for e in events("exec") if e["env"] == "dev"]
    assert [e["names"] for e in dev] == [[]]


def test_masking_hides_resolved_values_not_settings(db: Path) -> None:
    name = write(db / ".env.tpl", "KEY=bsecrets://dev/api/key\nMODE=production-mode\n")
    code = "import os; print(os.environ['KEY'], os.environ['MODE'])"
    result = run_cli(["exec", "--mask", "--env-file", name, "--", PY, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"[REDACTED] production-mode\n"


# --- bad input: nothing starts ------------------------------------------------------


def _did_not_start(args: list[str], marker: Path, env: dict[str, str] | None = None) -> Any:
    result = run_cli(["exec", *args, "--", "touch", str(marker)], env=env)
    assert not marker.exists(), "the child ran"
    return result


def test_unknown_environment_exit_3_before_the_child(db: Path) -> None:
    name = write(db / ".env.tpl", "A=1\nB=bsecrets://nowhere/db/url\n")
    result = _did_not_start(["--env-file", name], db / "ran")
    assert result.returncode == 3, result.stderr
    assert result.stderr.decode().startswith(f"error: {name}:2: unknown environment 'nowhere'")


def test_secret_the_caller_cannot_read_exit_4_before_the_child(db: Path) -> None:
    issued = invoke(["token", "issue", "-e", "dev", "--only", "api/*", "--json"])
    token = json.loads(issued.stdout)["token"]
    name = write(db / ".env.tpl", "KEY=bsecrets://dev/api/key\nDB=bsecrets://dev/db/url\n")
    as_token = {"BSECRETS_TOKEN": token, "BSECRETS_PASSPHRASE": ""}
    result = _did_not_start(["--env-file", name], db / "ran", env=as_token)
    stderr = result.stderr.decode()
    assert result.returncode == 4, stderr
    assert stderr.startswith(f"error: {name}:2: secret 'db/url' is outside"), stderr
    assert CANARY not in stderr and b"postgres" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("line", "code", "needle"),
    [
        ("X=bsecrets://dev/missing", 3, "secret 'missing' not found"),
        ("X=bsecrets://dev/api/key#v9", 3, "version"),
        ("X=bsecrets://dev/api/key#user", 2, "no fields"),
        ("X=bsecrets://", 2, "malformed reference"),
        ("X=bsecrets://prod", 2, "malformed reference"),
        ("PATH=/tmp/evil", 2, "protected variable PATH"),
        ("BSECRETS_SESSION=x", 2, "never reaches a child process"),
        ("X=a\0b", 2, "NUL byte"),
    ],
)
def test_bad_lines(db: Path, line: str, code: int, needle: str) -> None:
    name = write(db / ".env.tpl", f"OK=1\n{line}\n")
    result = invoke(["exec", "--env-file", name, "--", NOWHERE])
    assert_error(result, code, f"{name}:2: ", needle)
    assert CANARY not in result.stderr


def test_protected_variable_allowed_by_name(db: Path) -> None:
    name = write(db / ".env.tpl", "LD_LIBRARY_PATH=/opt/lib\n")
    assert invoke(["exec", "--env-file", name, "--", NOWHERE]).exit_code == 2
    allowed = ["--allow-override", "LD_LIBRARY_PATH"]
    assert invoke(["exec", *allowed, "--env-file", name, "--", NOWHERE]).exit_code == 127


def test_missing_or_unreadable_file_exit_2(db: Path) -> None:
    assert_error(
        invoke(["exec", "--env-file", "nope.env", "--", NOWHERE]), 2, "cannot read the env file"
    )
    (db / "folder.env").mkdir()
    assert_error(invoke(["exec", "--env-file", "folder.env", "--", NOWHERE]), 2, "folder.env")
    (db / "latin1.env").write_bytes(b"A=caf\xe9\n")
    assert_error(invoke(["exec", "--env-file", "latin1.env", "--", NOWHERE]), 2, "latin1.env:1:")


def test_a_file_others_can_write_is_refused(db: Path) -> None:
    name = write(db / ".env.tpl", "DB=bsecrets://dev/db/url\n")
    os.chmod(db / name, 0o666)
    assert_error(invoke(["exec", "--env-file", name, "--", NOWHERE]), 4, "written by other users")
    os.chmod(db / name, 0o644)  # readable by all is fine: it holds no secret
    assert invoke(["exec", "--env-file", name, "--", NOWHERE]).exit_code == 127


def test_only_and_prefix_need_an_environment(db: Path) -> None:
    name = write(db / ".env.tpl", "A=1\n")
    for extra in (["--only", "db/url"], ["--prefix", "APP_"], ["--with-previous"]):
        result = invoke(["exec", *extra, "--env-file", name, "--", NOWHERE])
        assert_error(result, 2, "--env-file alone")
    with_env = ["exec", "-e", "dev", "--only", "db/url", "--env-file", name, "--", NOWHERE]
    assert invoke(with_env).exit_code == 127


def test_strict_reports_lines_that_collide(db: Path) -> None:
    first = write(db / "a.env", "DB_URL=x\nA=1\n")
    second = write(db / "b.env", "A=2\n")
    result = invoke(["exec", "-e", "dev", "--strict", "--env-file", first, "--env-file", second,
                     "--", NOWHERE])  # fmt: skip
    assert_error(result, 7, "A (a.env:2, b.env:1)", "DB_URL (dev, a.env:1)")
    assert events("exec") == []  # refused before anything was read


def test_vault_field_reference(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: Any
) -> None:
    from helpers.vault_env import unique_prefix, vault_env, write_profile

    prefix = unique_prefix("envfile")
    openbao.client().secrets.kv.v2.create_or_update_secret(
        f"{prefix}/db", {"user": "app", "password": CANARY}
    )
    write_profile(isolated, monkeypatch, {"staging": vault_env(openbao.address, prefix)})
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    name = write(isolated / ".env.tpl", "PASS=bsecrets://staging/db#password\n")
    assert child(["--env-file", name])["PASS"] == CANARY
