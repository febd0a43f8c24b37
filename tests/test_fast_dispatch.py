"""The fast path (bsecrets/cli/fast.py) and the Typer app are one interface: the same
argv gives the same stdout, stderr and exit code through both.

hypothesis draws argv lists from a grammar of ``get``'s words, the plain ones the fast
path takes and the odd ones it hands to the Typer app (help, ``--``, repeated and
combined options, unknown words, bad values), with a few environments (a session, a
passphrase, none, BSECRETS_JSON, GitHub Actions, BSECRETS_ENV). Each argv runs as two
real processes (``python -m bsecrets``): as it is, and with BSECRETS_NO_FAST=1. A
``get`` writes an audit event, so each run starts from the same copy of the vault
file, in the same folder: both see the same state and the same paths.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from helpers.values import PASSPHRASE
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bsecrets.cli import fast
from bsecrets.config.settings import COMPLETE_VAR, ENV_NO_FAST, GLOBAL_OPTIONS


class Lab(NamedTuple):
    work: Path  # the profile's folder, the runs' working folder
    pristine: Path  # the vault folder as it was before any get
    environ: dict[str, str]  # the environment of every run, without credentials
    session: str


class Run(NamedTuple):
    code: int
    stdout: bytes
    stderr: bytes


def _run(lab: Lab, argv: list[str], extra: dict[str, str], stdout: int = subprocess.PIPE) -> Run:
    vault = lab.work / ".bsecrets"
    shutil.rmtree(vault)
    shutil.copytree(lab.pristine, vault)
    proc = subprocess.run(
        [sys.executable, "-m", "bsecrets", *argv], env={**lab.environ, **extra}, cwd=lab.work,
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, timeout=60, check=False,
    )  # fmt: skip
    return Run(proc.returncode, proc.stdout or b"", proc.stderr)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """A vault (dev and prod) made once for the module, and an unlocked session."""
    root = tmp_path_factory.mktemp("dispatch")
    home, run, work = root / "home", root / "run", root / "work"
    for folder in (home, run, work):
        folder.mkdir(mode=0o700)
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_RUNTIME_DIR": str(run),
        "NO_COLOR": "1",
        "BSECRETS_INSECURE_TEST_KDF": "1",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    if "PYTHONPATH" in os.environ:  # the checkout under test
        environ["PYTHONPATH"] = os.environ["PYTHONPATH"]
    owner = {**environ, "BSECRETS_PASSPHRASE": PASSPHRASE}

    def cli(*args: str, value: bytes = b"") -> bytes:
        proc = subprocess.run(
            [sys.executable, "-m", "bsecrets", *args], input=value, env=owner, cwd=work,
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cli("init", "--env", "dev", "--env", "prod")
    for name, value in SECRETS.items():
        cli("put", name, "--allow-empty", value=value)
    cli("put", "a", value=b"hello again")  # a v2
    cli("put", "a", "-e", "prod", value=b"prod value")
    cli("rm", "gone")
    session = cli("unlock").decode().strip().split("=", 1)[1]
    shutil.copytree(work / ".bsecrets", root / "pristine")
    return Lab(work, root / "pristine", environ, session)


SECRETS = {
    "a": b"hello",
    "db/url": b"postgres://u@h/db",
    "multi": b"line one\nline two\n",
    "bin": b"\xff\x00\x01binary",
    "empty": b"",
    "gone": b"deleted",
}

# --- the grammar --------------------------------------------------------------------

NAMES = [*SECRETS, "missing", "get", "", "bad name!", "x" * 300, "ünï"]
ENVS = ["dev", "prod", "nope", "", "-q", "get"]
VERSIONS = ["1", "2", "3", "0", "-1", "+2", " 2", "02", "x", "", "9" * 20, str(2**63 - 1)]
VALUES = {
    "--env": ENVS,
    "--profile": ["bsecrets.yaml", "missing.yaml", ""],
    "--reason": ["because", "", "-x"],
    "--as": ["owner", "nobody"],
}
FLAGS = ["--json", "-q", "--quiet", "--no-color", "--insecure-http", "-y", "--yes"]
ODD = [
    "--", "-h", "--help", "--version", "--bogus", "-x", "-qe", "-eprod", "--json=1", "--raw=",
    "--env", "-e", "--vers", "--ra", "--jso", "-", "get", "ls",
]  # fmt: skip
SHORT = {"--env": "-e", "--profile": "-p"}


WORDS = {**fast.GLOBAL_WORDS, **fast.GET_WORDS}


def plain(value: str) -> bool:
    return value != "" and not value.startswith("-")


@st.composite
def valued(draw: st.DrawFn, odd: bool) -> list[str]:
    """A global option with its value: ``-e dev``, ``--env dev`` or ``--env=dev``."""
    option = draw(st.sampled_from(sorted(VALUES)))
    value = draw(st.sampled_from([v for v in VALUES[option] if odd or plain(v)]))
    spelling = draw(st.sampled_from([option, SHORT.get(option, option)]))
    if draw(st.booleans()) and spelling.startswith("--"):
        return [f"{spelling}={value}"]
    return [spelling, value]


@st.composite
def version(draw: st.DrawFn) -> list[str]:
    value = draw(st.sampled_from(VERSIONS))
    return [f"--version={value}"] if draw(st.booleans()) else ["--version", value]


def options(odd: bool, own: bool) -> st.SearchStrategy[list[list[str]]]:
    """Up to three options; in a plain argv each at most once, as the fast path takes them."""
    flags = st.sampled_from(FLAGS).map(lambda flag: [flag])
    choices = [valued(odd), flags, *([version(), st.just(["--raw"])] if own else [])]
    if odd:
        choices.append(st.sampled_from(ODD).map(lambda word: [word]))
        return st.lists(st.one_of(choices), max_size=3)
    return st.lists(
        st.one_of(choices), max_size=3, unique_by=lambda piece: WORDS[piece[0].split("=")[0]]
    )


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """Mostly the plain shapes; in about one argv in four, odd words (help, '--', repeated
    and unknown options, values the fast path leaves to typer, no name or two)."""
    odd = draw(st.integers(0, 3)) == 0
    before = draw(options(odd, own=False))
    command = draw(st.sampled_from(["get", "get", "gte", "history"])) if odd else "get"
    names = [[name] for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2))]
    if not odd:
        names = names[:1]
    elif draw(st.booleans()):
        names = names[1:]  # sometimes no name at all
    pieces = draw(st.permutations([*names, *draw(options(odd, own=True))]))
    return [*(w for p in before for w in p), command, *(w for p in pieces for w in p)]


ENVIRONS = ["session", "session", "session", "passphrase", "none", "json", "github", "prod"]


def credentials(lab: Lab, kind: str) -> dict[str, str]:
    session = {"BSECRETS_SESSION": lab.session}
    return {
        "session": session,
        "passphrase": {"BSECRETS_PASSPHRASE": PASSPHRASE},
        "none": {},
        "json": {**session, "BSECRETS_JSON": "1"},
        "github": {**session, "GITHUB_ACTIONS": "true"},
        "prod": {**session, "BSECRETS_ENV": "prod"},
    }[kind]


# --- the property ---------------------------------------------------------------------

EXAMPLES = 60  # two processes each: about 30-60 s on two cores


def test_both_paths_print_the_same_bytes_and_exit_alike(lab: Lab) -> None:
    taken: list[bool] = []

    @settings(
        max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )  # fmt: skip
    @given(argv=argvs(), kind=st.sampled_from(ENVIRONS))
    @example(["get", "multi"], "github")  # the masks on stderr, line by line
    @example(["get", "bin", "--json"], "session")  # bytes that are not UTF-8
    @example(["get", "bin", "--raw"], "session")
    @example(["get", "a", "--version", "1", "--raw"], "session")
    @example(["get", "a", "--version= 2"], "json")  # whole_number strips blanks
    @example(["get", "a", "--version", "3"], "session")  # no such version
    @example(["get", "gone"], "session")  # deleted: the hint names restore
    @example(["get", "empty", "-q", "--json"], "prod")
    @example(["-e", "prod", "get", "a", "--env", "dev"], "session")
    @example(["-e", "prod", "-e", "dev", "get", "a"], "session")  # typer's refusal
    def same(argv: list[str], kind: str) -> None:
        extra = credentials(lab, kind)
        taken.append(fast.plan(argv, {**lab.environ, **extra}) is not None)
        quick = _run(lab, argv, extra)
        typer = _run(lab, argv, {**extra, ENV_NO_FAST: "1"})
        assert quick == typer, (argv, kind)

    same()
    # both sides of the dispatcher were exercised: the comparison is not Typer with itself
    assert sum(taken) >= len(taken) // 2, taken
    assert taken.count(False) >= 3, taken


def test_a_reader_gone_away_ends_both_alike(lab: Lab) -> None:
    """stdout a pipe whose reader has closed it: click's exit 1, no word on stderr."""
    extra = credentials(lab, "session")
    results = []
    for switch in ({}, {ENV_NO_FAST: "1"}):
        reader, writer = os.pipe()
        os.close(reader)
        try:
            results.append(_run(lab, ["get", "a"], {**extra, **switch}, stdout=writer))
        finally:
            os.close(writer)
    assert results[0] == results[1]
    assert results[0].code == 1 and results[0].stderr == b""


# --- the dispatcher's shapes ----------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "a"],
        ["-e", "prod", "get", "a"],
        ["get", "a", "--env=prod", "--json", "--version", "2", "--raw"],
        ["--json", "-q", "get", "-p", "bsecrets.yaml", "a", "-e", "dev"],
        ["-e", "dev", "get", "a", "-e", "prod"],  # one each side: the later one counts
        ["--reason", "why", "--as", "owner", "-y", "get", "a", "--no-color", "--insecure-http"],
    ],
)
def test_plain_shapes_take_the_fast_path(argv: list[str]) -> None:
    assert fast.plan(argv, {}) is not None


@pytest.mark.parametrize(
    "argv",
    [
        [], ["get"], ["get", "a", "b"], ["ls"], ["get", "a", "--"], ["--", "get", "a"],
        ["get", "a", "-h"], ["--version", "get", "a"], ["get", "a", "-e", "x", "-e", "y"],
        ["-e", "x", "--env", "y", "get", "a"], ["get", "a", "-qy"], ["get", "a", "-eprod"],
        ["get", "a", "--env="], ["get", "a", "-e", "-q"], ["get", "a", "--json=1"],
        ["get", "a", "--version", "0"], ["get", "a", "--version", "x"], ["get", "a", "--ver", "1"],
        ["get", "-a"], ["--raw", "get", "a"], ["get", "a", "--version"],
        ["get", "a", "--only", "x"],
    ],
)  # fmt: skip
def test_other_shapes_go_to_typer(argv: list[str]) -> None:
    assert fast.plan(argv, {}) is None


@pytest.mark.parametrize("variable", [COMPLETE_VAR, ENV_NO_FAST])
def test_completion_and_the_switch_go_to_typer(variable: str) -> None:
    assert fast.plan(["get", "a"], {variable: "1"}) is None


def test_the_fast_words_are_typer_options_of_the_same_kind() -> None:
    """Every word the fast path takes is an option of the Typer app where it takes it:
    a flag there exactly when it is a flag here."""
    import typer.main

    from bsecrets.cli.app import add_global_options, app, build_command

    root = typer.main.get_command(app)
    get = build_command("get")
    add_global_options(get, root.params)

    def kinds(params: list[object]) -> dict[str, bool]:
        return {
            word: bool(getattr(p, "is_flag", False))
            for p in params
            for word in getattr(p, "opts", ())
        }

    before, after = kinds(root.params), kinds(get.params)
    assert set(fast.GLOBAL_WORDS.values()) <= set(GLOBAL_OPTIONS)
    for word, long in fast.GLOBAL_WORDS.items():
        assert before[word] == after[word] == (long not in fast.TAKES_VALUE), word
    for word, long in fast.GET_WORDS.items():
        assert after[word] == (long not in fast.TAKES_VALUE), word
