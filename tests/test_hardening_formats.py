"""Security hardening of the bulk formats (issue items 6, 7, 8).

6. ``export --format dotenv`` is safe to source (``set -a; . ./file``) in real
   sh (dash), bash and zsh and reads back exactly in python-dotenv and
   ``bsecrets import``; ``--format shell`` is safe to eval and source. Values no
   dotenv text can carry safely and exactly are refused, never written.
7. The variable formats (dotenv, shell, github-env) refuse protected variables
   as ``exec`` does, unless ``--allow-override VAR``; $GITHUB_ENV blocks cannot
   be ended early by a value or joined to an earlier step's last line.
8. No import error quotes the file: a canary in every kind of malformed file
   never reaches stdout or stderr.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke, put_all, run_cli, values_of
from helpers.github_env import parse_github_env
from helpers.values import CANARY

from bsecrets.formats.codecs import github_env_block

SHELLS = ("dash", "bash", "zsh")

# Every value class of the issue. Running any of them would create a file named
# pwned* in the working folder (the canaries), or print to stderr.
DOTENV_SAFE = {
    "SQ": "it's a 'quoted' value",
    "DQ": 'say "hi" and ""',
    "ONLY_SQ": "'",
    "ONLY_DQ": '"',
    "SQ_DQ_MIX": "'\"'\"",
    "DOLLAR": "$HOME $1 $$ $? $# $@ $* $- $! $0 $ end$",
    "BRACES": "${HOME} ${X:-fallback} ${X:=set} ${#HOME} ${",
    "SUBST": "$(touch pwned-subst)",
    "BACKTICK": "`touch pwned-tick`",
    "ARITH": "$((1+1)) $[1+1]",
    "LOCALE_DOLLAR": '$"msg" $\\x41',
    "BS_SINGLE": "a\\b\\nc\\t",
    "BS_PAIRS_AND_SQ": "C:\\\\server\\\\share is 'mine'",
    "BS_PAIR_ONLY": "\\\\x",
    "BS_SQ": "\\'",
    "BS_DQ": '\\"',
    "BS_DQ_END": 'x\\"',
    "BS_SPACE": "x\\ ",
    "BS_NEWLINE": "a\\\nb",
    "BS_DOLLAR": "$x\\y",
    "LF": "line one\nline two\n\nline four\n",
    "LF_ONLY": "\n",
    "LF_EXPORT": "ok\nexport INJECTED=1\nINJECTED2=2\n$(touch pwned-lf)",
    "LF_QUOTES": "a'\n\"b\n",
    "TAB": "col1\tcol2\t",
    "VT_FF": "\x0b\x0c",
    "CONTROL": "\x01\x07\x1b[31mred",
    "SPACES": "  leading and trailing  ",
    "HASH": "value # not a comment",
    "HASH_START": "#starts-with-hash",
    "HASH_TIGHT": "a#b",
    "EQ": "a=b=c",
    "EQ_START": "=ls",
    "EQ_COLON": "x:=ls:=cat",
    "UNICODE": "päss wörd ✓ 鍵 🔑 \u2028 \u0085 \u00a0",
    "EMPTY": "",
    "BANG": "!! !$ !-1 !touch",
    "TILDE": "~ ~root x:~/y",
    "GLOB": "* ? [a-z] **/* {a,b}",
    "SEMI": "a; touch pwned-semi",
    "AND_OR_PIPE": "true && touch pwned-and || touch pwned-or | tee pwned-pipe",
    "REDIRECT": "> pwned-redirect < /dev/null",
    "AMP": "& touch pwned-bg &",
    "PLAIN": "https://user@host:8443/path,a+b%20-_.",
    "PERCENT": "100%0A%",
    "LEADING_DASH": "-n",
    "CANARY": CANARY,
}

# No dotenv text is both safe to source and read back exactly for these: the
# export fails (exit 1) naming the variable and never the value.
DOTENV_REFUSED = {
    "CR": f"{CANARY}\rmore",
    "CRLF": f"windows\r\n{CANARY}",
    "TRAIL_BS": f"{CANARY} ends with a backslash\\",
    "TRAIL_BS_PLAIN": f"C:\\{CANARY}\\",
    "SQ_DOLLAR": f"it's ${CANARY}",
    "ANSI_C": f"$'{CANARY}\\x41'",
    "SQ_BACKTICK": f"it's `{CANARY}`",
    "BSBS_DOLLAR": f"\\\\{CANARY}$",
    "BSBS_BACKTICK": f"\\\\`{CANARY}",
    "NUL": f"{CANARY}\0",
}

# python-dotenv's ${VAR} interpolation (on by default) has no escape.
_INTERPOLATED = re.compile(r"\$\{[^}:]*(?::-[^}]*)?\}")


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed here (CI installs it)")
    return path


def _run_shell(shell: str, script: str, cwd: Path) -> dict[bytes, bytes]:
    """Run ``script`` then ``env -0`` in a real ``shell`` with a clean
    environment; the variables it ends with, as bytes. Fails on any stderr."""
    home = cwd / "shell-home"
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [_shell(shell), "-c", f"{script}\nexec env -0"],
        capture_output=True,
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "LC_ALL": "C.UTF-8"},
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"", done.stderr
    out: dict[bytes, bytes] = {}
    for item in done.stdout.split(b"\0"):
        if item:
            key, _, value = item.partition(b"=")
            out[key] = value
    return out


def _assert_nothing_ran(root: Path) -> None:
    ran = sorted(p.name for p in root.rglob("pwned*"))
    assert ran == [], ran


def _export(fmt: str, *extra: str) -> bytes:
    result = invoke(["export", "--format", fmt, *extra])
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


@pytest.fixture
def safe_corpus(vault: Path) -> Path:
    put_all(vault, DOTENV_SAFE)
    return vault


# --- 6. dotenv: safe to source, exact in every reader --------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_dotenv_sourced_by_shell_is_exact_and_runs_nothing(safe_corpus: Path, shell: str) -> None:
    (safe_corpus / "out.env").write_bytes(_export("dotenv"))
    seen = _run_shell(shell, "set -a; . ./out.env", safe_corpus)
    for name, value in DOTENV_SAFE.items():
        assert seen.get(name.encode()) == value.encode(), name
    assert b"INJECTED" not in seen and b"INJECTED2" not in seen
    _assert_nothing_ran(safe_corpus)


def test_dotenv_read_back_exactly_by_python_dotenv_and_import(safe_corpus: Path) -> None:
    """Exact in python-dotenv with interpolate=False, from the file and from a
    stream, and in 'bsecrets import'; with the default interpolation, exact for
    every value without a ${...} reference (docs/transfer.md). A value with a CR
    is refused, not written: python-dotenv opens the file with universal
    newlines, which turn a CR (or CRLF) into LF."""
    from dotenv import dotenv_values

    path = safe_corpus / "out.env"
    path.write_bytes(_export("dotenv"))
    assert dict(dotenv_values(path, interpolate=False)) == DOTENV_SAFE
    from_stream = dotenv_values(stream=io.StringIO(path.read_text()), interpolate=False)
    assert dict(from_stream) == DOTENV_SAFE
    interpolated = dotenv_values(path)
    for name, value in DOTENV_SAFE.items():
        if not _INTERPOLATED.search(value):
            assert interpolated[name] == value, name
    result = run_cli(["import", str(path), "-e", "prod", "--allow-empty"])
    assert result.returncode == 0, result.stderr
    assert values_of("prod") == DOTENV_SAFE
    for value in ("windows\r\nline", "old mac\rline", "\r"):
        put_all(safe_corpus, {"WITH_CR": value}, env="prod")
        exported = invoke(["export", "-e", "prod"])
        if exported.exit_code == 0:  # written: then it must read back exactly
            path.write_bytes(exported.stdout_bytes)
            assert dotenv_values(path, interpolate=False)["WITH_CR"] == value
        else:
            assert_error(exported, 1, "WITH_CR", "carriage return")


@pytest.mark.parametrize("name", sorted(DOTENV_REFUSED))
def test_dotenv_refuses_what_it_cannot_carry(vault: Path, name: str) -> None:
    put_all(vault, {"BEFORE": "fine"})
    (vault / "v").write_bytes(DOTENV_REFUSED[name].encode())
    assert invoke(["put", name, "--from-file", str(vault / "v")]).exit_code == 0
    result = invoke(["export"])
    assert_error(result, 1, name, "dotenv cannot carry it", "hint:", "--format json")
    assert result.stdout == ""
    assert CANARY not in result.stderr
    assert len(result.stderr.splitlines()) == 2
    if name != "NUL":  # everything else a shell can hold: the shell format carries it
        assert _export("shell")


# --- 6. the shell format: safe to eval and source, exact ---------------------------------

SHELL_CORPUS = {**DOTENV_SAFE, **{k: v for k, v in DOTENV_REFUSED.items() if k != "NUL"}}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("how", ["eval", "source"])
def test_shell_format_is_exact_and_runs_nothing(vault: Path, shell: str, how: str) -> None:
    put_all(vault, SHELL_CORPUS)
    (vault / "out.sh").write_bytes(_export("shell"))
    script = 'eval "$(cat ./out.sh)"' if how == "eval" else ". ./out.sh"
    seen = _run_shell(shell, script, vault)
    for name, value in SHELL_CORPUS.items():
        assert seen.get(name.encode()) == value.encode(), name
    assert b"INJECTED" not in seen
    _assert_nothing_ran(vault)


# --- 7. protected variables in every format that sets variables ----------------------------

VARIABLE_FORMATS = ["dotenv", "shell", "github-env"]
GHA = {"GITHUB_ACTIONS": "true"}


def _github_env(path: Path) -> dict[str, str]:
    return {**GHA, "GITHUB_ENV": str(path)}


@pytest.mark.parametrize("fmt", VARIABLE_FORMATS)
@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("path", "PATH"),
        ("ld_preload", "LD_PRELOAD"),
        ("node_options", "NODE_OPTIONS"),
        ("pythonpath", "PYTHONPATH"),
        ("bash_env", "BASH_ENV"),
        ("prompt_command", "PROMPT_COMMAND"),
        ("ps1", "PS1"),
        ("mailpath", "MAILPATH"),
        ("zdotdir", "ZDOTDIR"),
        ("bsecrets_profile", "BSECRETS_PROFILE"),
    ],
)
def test_variable_formats_refuse_protected(vault: Path, fmt: str, name: str, variable: str) -> None:
    put_all(vault, {"app/token": CANARY, name: f"/evil:{CANARY}"})
    env_file = vault / "github_env"
    env_file.write_text("EARLIER=kept\n")
    result = invoke(["export", "-f", fmt], env=_github_env(env_file))
    assert_error(result, 2, f"'{name}'", f"protected variable {variable}")
    assert f"hint: allow it with --allow-override {variable}" in result.stderr
    assert result.stdout == ""
    assert CANARY not in result.stderr  # not even a mask line: nothing was exported
    assert env_file.read_text() == "EARLIER=kept\n"
    # JSON and YAML are keyed by name and set nothing: they still export it
    assert name in _export("json").decode() and name in _export("yaml").decode()


@pytest.mark.parametrize("fmt", VARIABLE_FORMATS)
def test_allow_override_lets_the_named_variables_through(vault: Path, fmt: str) -> None:
    put_all(vault, {"path": "/opt/bin:/usr/bin", "home": "/srv", "editor": "vi", "a": "1"})
    env_file = vault / "github_env"
    env = _github_env(env_file)
    refused = invoke(["export", "-f", fmt, "--allow-override", "PATH,HOME"], env=env)
    assert_error(refused, 2, "'editor'", "--allow-override EDITOR")  # only those named
    args = ["export", "-f", fmt, "--allow-override", "PATH, HOME", "--allow-override", "EDITOR"]
    result = invoke(args, env=env)
    assert result.exit_code == 0, result.stderr
    expected = {"PATH": "/opt/bin:/usr/bin", "HOME": "/srv", "EDITOR": "vi", "A": "1"}
    if fmt == "github-env":
        assert parse_github_env(env_file.read_text()) == expected
    else:
        (vault / "out").write_bytes(result.stdout_bytes)
        seen = _run_shell("bash", "set -a; . ./out", vault)
        assert {k: seen[k.encode()].decode() for k in expected} == expected


@pytest.mark.parametrize("fmt", VARIABLE_FORMATS)
def test_unlock_variables_never_exported_as_variables(vault: Path, fmt: str) -> None:
    put_all(vault, {"bsecrets_passphrase": CANARY})
    env = _github_env(vault / "github_env")
    args = ["export", "-f", fmt, "--allow-override", "BSECRETS_PASSPHRASE"]
    result = invoke(args, env=env)
    assert_error(result, 2, "BSECRETS_PASSPHRASE", "never sets", "hint:")
    assert CANARY not in result.stdout + result.stderr


def test_github_env_block_redraws_a_delimiter_found_in_the_value() -> None:
    value = "start\nD1\nINJECTED=1\nD2 in a line\nend"
    drawn = iter(["D1", "D2", "bad delim\nX=1", "", "D3"])
    block = github_env_block("K", value, lambda: next(drawn))
    assert block == f"K<<D3\n{value}\nD3\n"
    assert parse_github_env(block) == {"K": value}


def test_github_env_blocks_cannot_be_ended_early_or_joined(vault: Path) -> None:
    """A value holding delimiter-like lines and NAME=VALUE / NAME<<EOF lines stays
    one value, and an earlier step's last line without a newline does not swallow
    the first ``KEY<<DELIM`` (else the runner reads the value's lines as variables):
    the runner-side parse gives back exactly the stored variables."""
    forged = "\n".join(
        [
            "BSECRETS_EOF_" + "0" * 32,
            "EOF",
            "INJECTED=1",
            "NODE_OPTIONS=--require ./pwned.js",
            "X<<EOF",
            "y",
            "EOF",
            "BSECRETS_EOF_",
            "",
        ]
    )
    values = {"FORGED": forged, "SAFE": "INJECTED=1", "LAST_LINE": "a\nBSECRETS_EOF_x"}
    put_all(vault, values)
    env_file = vault / "github_env"
    env_file.write_text("EARLIER=kept")
    done = run_cli(["export", "--format", "github-env"], env=_github_env(env_file))
    assert done.returncode == 0, done.stderr
    assert parse_github_env(env_file.read_text()) == {"EARLIER": "kept", **values}


# --- 8. import errors never quote the file ------------------------------------------------

C = CANARY
MALFORMED: list[tuple[str, str, bytes]] = [
    ("env-no-equals", "env", f"A=1\n{C}\n".encode()),
    ("env-export-no-equals", "env", f"export {C}\n".encode()),
    ("env-unterminated-single", "env", f"A='{C}\nB=2\n".encode()),
    ("env-unterminated-double", "env", f'A=1\nB="{C}\n'.encode()),
    ("env-text-after-quote", "env", f"A='x'{C}\n".encode()),
    ("env-bad-quote-in-key", "env", f"'{C}=1\n".encode()),
    ("env-space-in-key", "env", f"{C} x=1\n".encode()),
    ("env-invalid-key", "env", f"tok;{C}=1\n".encode()),
    ("env-duplicate-key", "env", f"{C}=1\n{C}=2\n".encode()),
    ("env-bom-no-equals", "env", f"\ufeff{C}\n".encode()),
    ("env-bom-inside-key", "env", f"A=1\n\ufeff{C}=2\n".encode()),
    ("env-nul-in-key", "env", f"A\0{C}=1\n".encode()),
    ("env-not-utf8", "env", f"A={C}".encode() + b"\xff\xfe\n"),
    ("json-syntax-at-token", "json", f'{{"A": {C}}}'.encode()),
    ("json-unquoted-key", "json", f'{{{C}: "x"}}'.encode()),
    ("json-missing-colon", "json", f'{{"{C}" "x"}}'.encode()),
    ("json-number-value", "json", f'{{"{C}": 5}}'.encode()),
    ("json-list-value", "json", f'{{"A": ["{C}"]}}'.encode()),
    ("json-nested", "json", f'{{"{C}": {{"{C}": "x"}}}}'.encode()),
    ("json-duplicate-key", "json", f'{{"{C}": "1", "{C}": "2"}}'.encode()),
    ("json-invalid-key", "json", f'{{"/{C}": "x"}}'.encode()),
    ("json-control-char", "json", f'{{"A": "{C}\0"}}'.encode()),
    ("json-bad-escape", "json", f'{{"A": "\\q{C}"}}'.encode()),
    ("json-bad-escape-at-token", "json", f'{{"A": "\\{C}"}}'.encode()),
    ("json-lone-surrogate", "json", f'{{"A": "\\ud800{C}"}}'.encode()),
    ("json-trailing-text", "json", f'{{"A": "1"}} {C}'.encode()),
    ("json-not-object", "json", f'["{C}"]'.encode()),
    ("json-not-utf8", "json", f'{{"A": "{C}'.encode() + b'\xff"}'),
    ("yaml-syntax-at-token", "yaml", f"A: '1'\n{C}\nB: x\n".encode()),
    ("yaml-undefined-alias", "yaml", f"A: *{C}\n".encode()),
    ("yaml-duplicate-anchor", "yaml", f"A: &{C} x\nB: &{C} y\n".encode()),
    ("yaml-bad-escape", "yaml", f'A: "{C}\\q"\n'.encode()),
    ("yaml-tab", "yaml", f"A:\n\t{C}: x\n".encode()),
    ("yaml-unterminated-quote", "yaml", f"A: '{C}\n".encode()),
    ("yaml-undefined-tag-handle", "yaml", f"A: !{C}!x y\n".encode()),
    ("yaml-nested-mapping", "yaml", f"{C}:\n  b: c\n".encode()),
    ("yaml-list-value", "yaml", f"{C}: [1, 2]\n".encode()),
    ("yaml-null-value", "yaml", f"{C}:\n".encode()),
    ("yaml-merge-key", "yaml", f"<<: {{{C}: x}}\n".encode()),
    ("yaml-complex-key", "yaml", f"? [{C}]\n: x\n".encode()),
    ("yaml-not-mapping", "yaml", f"- {C}\n".encode()),
    ("yaml-duplicate-key", "yaml", f"{C}: a\n{C}: b\n".encode()),
    ("yaml-invalid-key", "yaml", f"/{C}: x\n".encode()),
    ("yaml-nul", "yaml", f"A: {C}\0\n".encode()),
    ("yaml-not-utf8", "yaml", f"A: {C}".encode() + b"\xff\n"),
]


def _assert_quiet_error(code: int, stdout: str, stderr: str) -> None:
    assert code == 2, stderr
    assert CANARY not in stdout and CANARY not in stderr, stderr
    lines = stderr.splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[:1], stderr
    assert len(lines) == 2 and lines[1].startswith("hint: "), stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(("case", "suffix", "data"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_import_error_never_quotes_the_file(
    vault: Path, case: str, suffix: str, data: bytes
) -> None:
    path = vault / f"in.{suffix}"
    path.write_bytes(data)
    result = invoke(["import", path.name])
    _assert_quiet_error(result.exit_code, result.stdout, result.stderr)
    assert re.match(rf"error: in\.{suffix}(:\d+)?: ", result.stderr), result.stderr
    assert invoke(["ls", "--json"]).stdout.strip() == "[]"


@pytest.mark.parametrize("case", ["env-no-equals", "json-missing-colon", "yaml-nested-mapping"])
def test_import_error_never_quotes_the_file_subprocess(vault: Path, case: str) -> None:
    """The same through a real process, from stdin and from a file."""
    _, suffix, data = next(m for m in MALFORMED if m[0] == case)
    fmt = {"env": "dotenv"}.get(suffix, suffix)
    from_stdin = run_cli(["import", "-", "--format", fmt], input=data)
    _assert_quiet_error(
        from_stdin.returncode, from_stdin.stdout.decode(), from_stdin.stderr.decode()
    )
    (vault / f"in.{suffix}").write_bytes(data)
    from_file = run_cli(["import", f"in.{suffix}", "--dry-run"], cwd=vault)
    _assert_quiet_error(from_file.returncode, from_file.stdout.decode(), from_file.stderr.decode())


@pytest.mark.parametrize("case", [m[0] for m in MALFORMED if m[1] == "yaml" and "utf8" not in m[0]])
def test_import_yaml_errors_quiet_with_the_pure_python_parser(
    vault: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Without libyaml PyYAML's messages quote the file (aliases, anchors, tag
    handles, characters); they must not reach the user either."""
    import yaml

    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    _, _, data = next(m for m in MALFORMED if m[0] == case)
    (vault / "in.yaml").write_bytes(data)
    result = invoke(["import", "in.yaml"])
    _assert_quiet_error(result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize("case", [m[0] for m in MALFORMED if m[1] == "json" and "utf8" not in m[0]])
def test_import_json_errors_quiet_with_the_pure_python_scanner(
    vault: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Without the C accelerator json's messages name a bad escape character
    ("Invalid \\escape: 'q'"); only the fixed phrase may reach the user."""
    import json.decoder
    import json.scanner

    monkeypatch.setattr(json.scanner, "make_scanner", json.scanner.py_make_scanner)
    monkeypatch.setattr(json.decoder, "scanstring", json.decoder.py_scanstring)
    _, _, data = next(m for m in MALFORMED if m[0] == case)
    (vault / "in.json").write_bytes(data)
    result = invoke(["import", "in.json"])
    _assert_quiet_error(result.exit_code, result.stdout, result.stderr)
    if "escape" in case:  # not even the one character after the backslash
        assert result.stderr.splitlines()[0].endswith("invalid JSON: Invalid \\escape")


def test_import_errors_still_say_where_and_what(vault: Path) -> None:
    cases = [
        ("in.env", f"A=1\n\n{C}\n", "in.env:3: the line has no '='"),
        ("in.env", f"A=1\n{C}=2\n{C}=3\n", "in.env:3: duplicate key (first on line 2)"),
        ("in.json", f'{{\n"A": "1",\n"{C}" 2}}', "in.json:3: expected ':' after the name"),
        (
            "in.yaml",
            f"A: x\n{C}:\n  b: c\n",
            "in.yaml:2: the value must be a string, not a list or a mapping",
        ),
        ("in.yaml", f"A: x\nB: *{C}\n", "in.yaml:2: invalid YAML alias or anchor"),
    ]
    for name, text, expected in cases:
        (vault / name).write_text(text)
        result = invoke(["import", name])
        assert result.stderr.splitlines()[0] == f"error: {expected}", result.stderr
