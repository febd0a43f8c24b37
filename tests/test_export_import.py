"""export and import: every format round-trips hostile values; shell output is
checked by eval-ing it in real sh and bash, dotenv by python-dotenv; every bad
import file exits 2 with its line number and imports nothing."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.cli import assert_error, invoke, put_all, run_cli, values_of
from helpers.values import CANARY, HOSTILE


@pytest.fixture
def hostile(vault: Path) -> Path:
    put_all(vault, HOSTILE)
    return vault


# dotenv refuses these (a CR, a final backslash, ' with $): no dotenv text is safe to
# source and read back exactly at once (docs/transfer.md, tests/test_hardening_formats.py)
DOTENV_REFUSES = ("CRLF", "TRAIL", "MIX")


def dotenv_hostile(root: Path) -> dict[str, str]:
    """Soft-delete the values dotenv refuses; the rest of HOSTILE."""
    for name in DOTENV_REFUSES:
        assert invoke(["rm", name]).exit_code == 0
    return {k: v for k, v in HOSTILE.items() if k not in DOTENV_REFUSES}


@pytest.mark.parametrize("fmt", ["dotenv", "json", "yaml"])
def test_round_trip(hostile: Path, fmt: str) -> None:
    expected = dotenv_hostile(hostile) if fmt == "dotenv" else HOSTILE
    exported = invoke(["export", "--format", fmt])
    assert exported.exit_code == 0, exported.stderr
    path = hostile / f"out.{fmt}"
    path.write_bytes(exported.stdout_bytes)
    result = invoke(["import", str(path), "--format", fmt, "-e", "prod", "--allow-empty"])
    assert result.exit_code == 0, result.stderr
    assert values_of("prod") == expected
    # importing again changes nothing
    again = invoke(["import", str(path), "--format", fmt, "-e", "prod", "--json", "--allow-empty"])
    assert json.loads(again.stdout)["unchanged"] == sorted(expected)


def test_round_trip_names_with_slashes_json(vault: Path) -> None:
    put_all(vault, {"db/password": "x'y", "app.key-1": "z\n"})
    exported = invoke(["export", "--format", "json"])
    (vault / "o.json").write_bytes(exported.stdout_bytes)
    assert invoke(["import", "o.json", "-e", "prod"]).exit_code == 0
    assert values_of("prod") == {"db/password": "x'y", "app.key-1": "z\n"}


def test_dotenv_read_by_python_dotenv(hostile: Path) -> None:
    from dotenv import dotenv_values

    expected = dotenv_hostile(hostile)
    text = invoke(["export"]).stdout_bytes.decode()
    parsed = dotenv_values(stream=io.StringIO(text), interpolate=False)
    assert dict(parsed) == expected


def test_dotenv_names_map_to_variables(vault: Path) -> None:
    put_all(vault, {"db/password": "x", "api.key-1": "y"})
    text = invoke(["export"]).stdout
    assert text == "API_KEY_1=y\nDB_PASSWORD=x\n"


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_shell_export_evaluated(hostile: Path, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    exported = invoke(["export", "--format", "shell"])
    assert exported.exit_code == 0, exported.stderr
    for line in exported.stdout.splitlines():
        if line.startswith("export "):
            assert line.split("=", 1)[1].startswith("'")
    marker = hostile / "pwned"
    script = 'eval "$(cat)"; exec "$0" -c "import json, os; print(json.dumps(dict(os.environ)))"'
    done = subprocess.run(
        [shell, "-c", script, os.environ.get("PYTHON", shutil.which("python3") or "python3")],
        input=exported.stdout_bytes, capture_output=True, check=True, cwd=hostile, timeout=30,
        env={"PATH": os.environ["PATH"], "HOME": str(hostile)},
    )  # fmt: skip
    env = json.loads(done.stdout)
    for name, value in HOSTILE.items():
        assert env[name] == value, name
    assert not marker.exists()


def test_shell_refuses_nul(vault: Path) -> None:
    (vault / "v").write_bytes(b"a\0b")
    invoke(["put", "NUL", "--from-file", str(vault / "v")])
    assert_error(invoke(["export", "--format", "shell"]), 1, "NUL", "hint:")


def test_export_empty_environment(vault: Path) -> None:
    for fmt, expected in (("dotenv", ""), ("shell", ""), ("json", "{}\n"), ("yaml", "{}\n")):
        result = invoke(["export", "-f", fmt])
        assert result.exit_code == 0 and result.stdout == expected, fmt


def test_variable_collision(vault: Path) -> None:
    put_all(vault, {"db-url": "1", "db_url": "2"})
    for fmt in ("dotenv", "shell"):
        assert_error(invoke(["export", "-f", fmt]), 2, "db-url", "db_url", "DB_URL")


def test_variable_starting_with_digit(vault: Path) -> None:
    put_all(vault, {"1password": "x"})
    assert_error(invoke(["export"]), 2, "1password", "hint:")
    assert invoke(["export", "-f", "json"]).exit_code == 0


def test_unknown_format(vault: Path) -> None:
    assert_error(invoke(["export", "-f", "xml"]), 2, "xml", "hint:")
    (vault / "a.env").write_text("A=1\n")
    assert_error(invoke(["import", "a.env", "-f", "shell"]), 2, "shell")


def test_export_runs_as_a_process(hostile: Path) -> None:
    done = run_cli(["export", "-f", "json"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == HOSTILE
    assert CANARY.encode() not in done.stderr


# --- import -------------------------------------------------------------------


def test_import_dry_run_lists_by_name(vault: Path) -> None:
    put_all(vault, {"KEEP": "same", "CHANGE": "old"})
    (vault / "in.env").write_text(f"KEEP=same\nCHANGE={CANARY}\nNEW={CANARY}\n")
    result = invoke(["import", "in.env", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows == [["CHANGE", "changed"], ["KEEP", "unchanged"], ["NEW", "new"]]
    assert CANARY not in result.stdout + result.stderr
    assert values_of("dev") == {"KEEP": "same", "CHANGE": "old"}
    as_json = json.loads(invoke(["import", "in.env", "--dry-run", "--json"]).stdout)
    assert as_json == {
        "env": "dev", "dry_run": True, "new": ["NEW"], "changed": ["CHANGE"],
        "unchanged": ["KEEP"],
    }  # fmt: skip


def test_import_skips_unchanged_versions(vault: Path) -> None:
    put_all(vault, {"KEEP": "same"})
    (vault / "in.env").write_text("KEEP=same\nNEW=1\n")
    assert invoke(["import", "in.env"]).exit_code == 0
    history = json.loads(invoke(["history", "KEEP", "--json"]).stdout)
    assert len(history) == 1


def test_import_from_stdin(vault: Path) -> None:
    result = invoke(["import", "-", "-f", "json"], input='{"A": "1"}')
    assert result.exit_code == 0, result.stderr
    assert values_of("dev") == {"A": "1"}


def test_import_format_from_extension(vault: Path) -> None:
    (vault / "in.yml").write_text("PORT: 5432\nFLAG: yes\nTEXT: |\n  two\n  lines\n")
    assert invoke(["import", "in.yml"]).exit_code == 0
    assert values_of("dev") == {"PORT": "5432", "FLAG": "yes", "TEXT": "two\nlines\n"}


BAD_FILES = [
    ("dup.env", "A=1\nB=2\n\nA=3\n", "in.env:4", "duplicate key (first on line 1)"),
    ("name.env", "A=1\nsemi;colon=2\n", "in.env:2", "not a valid secret name"),
    ("syntax.env", 'A=1\nB=2\nC="unterminated\n', "in.env:3", "cannot parse"),
    ("novalue.env", "A=1\nLONELY\n", "in.env:2", "no '='"),
    ("dup.json", '{\n  "A": "1",\n  "B": "2",\n  "A": "3"\n}\n', "in.json:4", "first on line 2"),
    ("name.json", '{\n  "A": "1",\n  "/abs": "2"\n}', "in.json:3", "not a valid secret name"),
    ("syntax.json", '{\n  "A": "1",\n  "B": oops\n}', "in.json:3", "invalid JSON"),
    ("type.json", '{\n  "A": "1",\n  "B": 2\n}', "in.json:3", "must be a string"),
    ("notobj.json", '["A"]', "in.json:1", "JSON object"),
    ("dup.yaml", "A: '1'\nB: '2'\nA: '3'\n", "in.yaml:3", "duplicate key (first on line 1)"),
    ("name.yaml", "A: '1'\n.hidden: '2'\n", "in.yaml:2", "not a valid secret name"),
    ("syntax.yaml", "A: '1'\nB: [oops\n", "in.yaml:", "invalid YAML"),
    ("nested.yaml", "A: '1'\nB:\n  c: d\n", "in.yaml:2", "must be a string"),
    ("null.yaml", "A: '1'\nB:\n", "in.yaml:2", "no value"),
]


@pytest.mark.parametrize(("case", "content", "where", "needle"), BAD_FILES)
def test_import_bad_file(vault: Path, case: str, content: str, where: str, needle: str) -> None:
    suffix = case.rsplit(".", 1)[1]
    path = vault / f"in.{suffix}"
    path.write_text(content)
    result = invoke(["import", path.name])
    assert_error(result, 2, where, needle, "hint:")
    assert "LONELY" not in result.stderr  # errors never quote the file (not even a key)
    assert invoke(["ls", "--json"]).stdout.strip() == "[]"  # nothing imported


def test_import_value_too_large_imports_nothing(vault: Path) -> None:
    big = "x" * (1024 * 1024 + 1)
    (vault / "in.json").write_text(json.dumps({"A": "1", "B": big}, indent=1))
    assert_error(invoke(["import", "in.json"]), 2, "in.json:3", "1 MiB")
    assert invoke(["ls", "--json"]).stdout.strip() == "[]"


def test_import_not_utf8(vault: Path) -> None:
    (vault / "in.env").write_bytes(b"A=1\nB=\xff\n")
    assert_error(invoke(["import", "in.env"]), 2, "in.env:2", "UTF-8")


def test_import_missing_file(vault: Path) -> None:
    assert_error(invoke(["import", "nope.env"]), 2, "nope.env")


def test_import_large_file_shows_progress(vault: Path) -> None:
    lines = "".join(f"K{i}=v{i}\n" for i in range(300))
    (vault / "in.env").write_text(lines)
    result = invoke(["import", "in.env"])
    assert result.exit_code == 0, result.stderr
    assert "importing: 300/300" in result.stderr
    assert len(json.loads(invoke(["ls", "--json"]).stdout)) == 300


def test_import_is_all_or_nothing_on_write_failure(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bsecrets.services.manager import SecretsManager

    calls = {"n": 0}
    original = SecretsManager.put

    def failing(self: SecretsManager, env: str | None, name: str, value: bytes, **kw: object):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return original(self, env, name, value, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(SecretsManager, "put", failing)
    (vault / "in.env").write_text("A=1\nB=2\nC=3\nD=4\n")
    result = invoke(["import", "in.env"])
    assert result.exit_code == 1
    assert calls["n"] == 3
    monkeypatch.setattr(SecretsManager, "put", original)
    assert invoke(["ls", "--json"]).stdout.strip() == "[]"


VERBATIM = "A=1\n\n# a comment\nB_2=x#y\nC=\nD=#z\nE=a\"b'c\\\\d=e\nexport=1\n"
NOT_VERBATIM = (
    "A = 1\n", "A=1 # note\n", "A='1'\n", 'A="1"\n', "export A=1\n", "db/x=1\n", "  A=1\n",
    "A=1\r\n", "A=a\xa0b\n", "A=1\n \n", "A\n", "\ufeffA=1\n", "A=1\n#c\rB=2\n",
)  # fmt: skip


def test_verbatim_dotenv_reads_as_python_dotenv_does() -> None:
    """The fast reading of a plain dotenv file (import of 100,000 lines) gives exactly
    python-dotenv's entries, and leaves every other file to python-dotenv."""
    import random

    from dotenv import dotenv_values

    from bsecrets.formats.codecs import Entry, python_dotenv, verbatim_dotenv

    assert verbatim_dotenv(VERBATIM) == [
        Entry("A", "1", 1), Entry("B_2", "x#y", 4), Entry("C", "", 5), Entry("D", "#z", 6),
        Entry("E", "a\"b'c\\\\d=e", 7), Entry("export", "1", 8),
    ]  # fmt: skip
    assert verbatim_dotenv(VERBATIM) == python_dotenv(VERBATIM, "t")
    for text in NOT_VERBATIM:
        assert verbatim_dotenv(text) is None, repr(text)
    pieces = ["A", "b_", "9", "=", "#", " ", "\t", "'", '"', "\\", "$", "\n", "é", "\xa0", "\x0c"]
    chance, fast = random.Random(20), 0
    for _ in range(3000):
        text = "".join(chance.choice(pieces) for _ in range(chance.randint(0, 12)))
        text = chance.choice(["", "K=", "K=1\n"]) + text + chance.choice(["", "\nL=2"])
        read = verbatim_dotenv(text)
        if read is None:
            continue
        fast += 1
        expected = dotenv_values(stream=io.StringIO(text), interpolate=False)
        assert {e.key: e.value for e in read} == expected, repr(text)
        assert read == python_dotenv(text, "t"), repr(text)  # the lines too
    assert fast > 300
