"""The fast path (bsecrets/cli/fast.py) and the Typer app are one interface: the same
argv gives the same stdout, stderr and exit code through both.

hypothesis draws argv lists from a grammar of the words of ``get``, ``exec``,
``export``, ``put`` (its value on stdin) and ``render``, the plain ones the fast path takes and
the odd ones it hands to the Typer app (help, ``--``, repeated and combined options,
unknown words, bad values), with a few environments (a session, a passphrase, none,
BSECRETS_JSON, GitHub Actions, BSECRETS_ENV, CI). Each argv runs as two real
processes (``python -m bsecrets``): as it is, and with BSECRETS_NO_FAST=1. Every
read writes an audit event, so each run starts from the same copy of the vault
file, in the same folder: both see the same state and the same paths. exec's
command is a Python child that prints its arguments and environment (unmasked, it
replaces bsecrets; masked, bsecrets redacts what it prints): so the two runs'
outputs compare what each child got.
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


def _run(
    lab: Lab, argv: list[str], extra: dict[str, str], stdout: int = subprocess.PIPE,
    stdin: bytes | None = None,
) -> Run:  # fmt: skip
    vault = lab.work / ".bsecrets"
    shutil.rmtree(vault)
    shutil.copytree(lab.pristine, vault)
    proc = subprocess.run(
        [sys.executable, "-m", "bsecrets", *argv], env={**lab.environ, **extra}, cwd=lab.work,
        stdout=stdout, stderr=subprocess.PIPE, timeout=60, check=False,
        **({"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}),
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
    for name in ("db/url", "multi", "empty"):  # prod: every value fits a variable
        cli("put", name, "-e", "prod", "--allow-empty", value=SECRETS[name])
    cli("rm", "gone")
    (work / "value.txt").write_bytes(b"from a file\n")  # put --from-file's
    for name, text in TEMPLATES.items():  # render's
        (work / name).write_text(text)
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


WORDS = {**fast.GLOBAL_WORDS, **fast.SHAPES["get"].words}


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


# --- exec and export ------------------------------------------------------------------

# The child prints what it got (not the switch that tells the two runs apart).
CHILD = [
    sys.executable, "-c",
    "import os, sys; print(sys.argv[1:]); "
    "print(sorted(i for i in os.environb.items() if i[0] != b'BSECRETS_NO_FAST'))",
]  # fmt: skip
CHILD_ARGS = ["-e", "x", "--help", "--", "-q", "get", "a"]
LISTS = ["a", "db/*", "a,multi", "empty", "bin", "missing", "*", "a,,db/url"]
OWN_VALUES = {"--only": LISTS, "--prefix": ["APP_", "x_", "1BAD", "-P"]}
EXEC_FLAGS = ["--mask", "--no-mask", "--pristine"]
FORMATS = ["dotenv", "json", "yaml", "shell", "JSON", "yml", "github-env", "bogus", "-x"]
EXEC_ODD = [
    "--", "-h", "--help", "--bogus", "--strict", "--with-previous", "--mask=1", "--only=",
    "--prefix", "-e", "--version", "--env-file", "x",
]  # fmt: skip
EXPORT_ODD = ["--", "-h", "--strict", "--bogus", "--format", "-fjson", "--json=1", "x", "-o"]


@st.composite
def own_valued(draw: st.DrawFn, options: dict[str, list[str]], odd: bool) -> list[str]:
    """One of the command's own options with its value, as the next word or after '='."""
    option = draw(st.sampled_from(sorted(options)))
    value = draw(st.sampled_from([v for v in options[option] if odd or plain(v)]))
    spelling = "-f" if option == "--format" and draw(st.booleans()) else option
    if draw(st.booleans()) and spelling.startswith("--"):
        return [f"{spelling}={value}"]
    return [spelling, value]


def command_options(
    command: str, choices: list[st.SearchStrategy[list[str]]], odd: bool, odd_words: list[str]
) -> st.SearchStrategy[list[list[str]]]:
    """Up to four of ``choices``; in a plain argv each option at most once (the command's
    repeatable ones as often as drawn, each value once), in an odd one also odd words."""
    if odd:
        words = st.sampled_from(odd_words).map(lambda word: [word])
        return st.lists(st.one_of([*choices, words]), max_size=4)
    shape = fast.SHAPES[command]
    longs = {**WORDS, **shape.words}

    def key(piece: list[str]) -> object:
        long = longs[piece[0].split("=")[0]]
        return tuple(piece) if long in shape.repeatable else long

    return st.lists(st.one_of(choices), max_size=4, unique_by=key)


def bulk_options(command: str, odd: bool) -> st.SearchStrategy[list[list[str]]]:
    """Up to four of exec's or export's options (-e and --only repeatable), globals too."""
    own = {**OWN_VALUES, **({"--format": FORMATS} if command == "export" else {})}
    choices = [valued(odd), own_valued(own, odd), st.sampled_from(FLAGS).map(lambda f: [f])]
    if command == "exec":
        choices.append(st.sampled_from(EXEC_FLAGS).map(lambda flag: [flag]))
    return command_options(command, choices, odd, EXEC_ODD if command == "exec" else EXPORT_ODD)


@st.composite
def named_argvs(
    draw: st.DrawFn, command: str, values: dict[str, list[str]], flag: str,
    odd_words: list[str], names: list[str],
) -> list[str]:  # fmt: skip
    """``[GLOBAL]... COMMAND [OPTION]... NAME`` (put's NAME, render's TEMPLATE): the
    command's own ``values`` and ``flag``; in about one in four, odd words and two names."""
    odd = draw(st.integers(0, 3)) == 0
    before = draw(options(odd, own=False))
    flags = st.sampled_from([*FLAGS, flag]).map(lambda word: [word])
    choices = [valued(odd), own_valued(values, odd), flags]
    after = draw(command_options(command, choices, odd, odd_words))
    drawn = [[name] for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=2))]
    pieces = draw(st.permutations([*drawn[: 2 if odd else 1], *after]))
    return [*(w for p in before for w in p), command, *(w for p in pieces for w in p)]


@st.composite
def bulk_argvs(draw: st.DrawFn, command: str) -> list[str]:
    """``[GLOBAL]... exec [OPTION]... -- CHILD [ARGS]...`` or ``... export [OPTION]...``;
    in about one in four, odd words (as argvs)."""
    odd = draw(st.integers(0, 3)) == 0
    before = draw(options(odd, own=False))
    after = draw(bulk_options(command, odd))
    argv = [*(w for p in before for w in p), command, *(w for p in after for w in p)]
    if command == "exec":
        args = draw(st.lists(st.sampled_from(CHILD_ARGS), max_size=3))
        dashes = not odd or draw(st.integers(0, 3)) > 0  # without '--': typer's refusal
        argv += [*(["--"] if dashes else []), *CHILD, *args]
    return argv


# --- put --------------------------------------------------------------------------------

PUT_VALUES = {
    "--from-file": ["value.txt", "./value.txt", "missing.txt", ".//value.txt"],
    "--value": ["visible", "two words", ""],
    "--tag": ["team=api", "a=", "a=b=c", "noequals", "=x", "k" * 200 + "=v"],
    "--description": ["a note", "d" * 1025, ""],
    "--if-version": ["0", "1", "2", "5", "-1", "x", " 0", "02", "9" * 20],
}
PUT_ODD = ["--", "-h", "--tag", "--from-file", "--bogus", "--raw", "--version", "--if-version="]
STDINS = [b"a new value\n", b"", b"\n", b"no newline", b"\xff\x00binary"]


# --- render -----------------------------------------------------------------------------

TEMPLATES = {
    "plain.tmpl": "A={{ bsecrets://dev/a }}\nP={{ bsecrets://prod/a#v1 }}\n",
    "layered.tmpl": "U={{ bsecrets:///db/url }}\nA={{ bsecrets:///a }}\n",  # a: dev and prod
    "missing.tmpl": "{{ bsecrets://dev/missing }} {{ bsecrets:///nowhere }}\n",
    "broken.tmpl": "{{ bsecrets://dev/ }}\n",
    "binary.tmpl": "B={{ bsecrets://dev/bin }}\n",
}
RENDER_VALUES = {"--env": ENVS, "--output": ["out.txt", "sub/out.txt", "-"]}
RENDER_ODD = ["--", "-h", "--strict", "-o", "--bogus", "-", "-x", "--output="]
TEMPLATE_NAMES = [*TEMPLATES, "nosuch.tmpl"]
OUT = "out.txt"  # where -o writes: read back and removed after each run


def check_render(lab: Lab, argv: list[str], kind: str, taken: list[bool]) -> None:
    """As check_same, and what -o wrote (its bytes and mode) compared too."""
    extra = credentials(lab, kind)
    taken.append(fast.plan(argv, {**lab.environ, **extra}) is not None)
    results = []
    for switch in ({}, {ENV_NO_FAST: "1"}):
        run = _run(lab, argv, {**extra, **switch})
        out = lab.work / OUT
        written = (out.read_bytes(), out.stat().st_mode) if out.exists() else None
        out.unlink(missing_ok=True)
        results.append((run, written))
    assert results[0] == results[1], (argv, kind)


# --- the property ---------------------------------------------------------------------

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
        "ci": {**session, "BSECRETS_ENV": "prod", "CI": "true"},  # exec masks by default
        "bad mask": {**session, "BSECRETS_MASK": "2"},
    }[kind]


def check_same(
    lab: Lab, argv: list[str], kind: str, taken: list[bool], stdin: bytes | None = None
) -> None:
    """Both paths, the same bytes and exit code; ``taken``: whether the fast one was."""
    extra = credentials(lab, kind)
    taken.append(fast.plan(argv, {**lab.environ, **extra}) is not None)
    quick = _run(lab, argv, extra, stdin=stdin)
    typer = _run(lab, argv, {**extra, ENV_NO_FAST: "1"}, stdin=stdin)
    assert quick == typer, (argv, kind, stdin)


def both_sides(taken: list[bool]) -> None:
    """Both sides of the dispatcher were exercised: the comparison is not Typer with itself."""
    assert sum(taken) >= len(taken) // 2, taken
    assert taken.count(False) >= 3, taken


def drawn(examples: int) -> settings:
    """A fixed seed, no example database, no deadline (each example starts processes)."""
    return settings(
        max_examples=examples, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )  # fmt: skip


EXAMPLES = 60  # two processes each: about 30-60 s on two cores
BULK_EXAMPLES = 25  # exec and export each: about 15-30 s on two cores


def test_both_paths_print_the_same_bytes_and_exit_alike(lab: Lab) -> None:
    taken: list[bool] = []

    @drawn(EXAMPLES)
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
        check_same(lab, argv, kind, taken)

    same()
    both_sides(taken)


# dev holds a value no variable can carry (bin, a NUL byte), so most runs read prod
BULK_ENVIRONS = ["prod", "prod", "prod", "session", "passphrase", "none", "json", "github", "ci"]


def test_exec_through_both_paths_gives_the_child_the_same(lab: Lab) -> None:
    taken: list[bool] = []

    @drawn(BULK_EXAMPLES)
    @given(argv=bulk_argvs("exec"), kind=st.sampled_from([*BULK_ENVIRONS, "bad mask"]))
    @example(["exec", "-e", "prod", "--", *CHILD, "-e", "x"], "session")  # the child's -e
    @example(["exec", "-e", "prod", "--mask", "--", *CHILD], "github")  # redacted, masks
    @example(["exec", "-e", "dev", "-e", "prod", "--only", "a,db/*", "--", *CHILD], "ci")
    @example(["-e", "prod", "exec", "--pristine", "--prefix", "APP_", "--", *CHILD], "json")
    @example(["exec", "--only", "bin", "--", *CHILD], "session")  # a NUL byte: refused
    @example(["exec", "-e", "prod", "--", "no-such-command-here"], "session")  # 127
    @example(["exec", "-e", "prod", "--strict", "--", *CHILD], "session")  # Typer's from here
    @example(["exec", "-e", "prod", "--with-previous", "--no-mask", "--", *CHILD], "ci")
    @example(["exec", "--help"], "session")
    def same(argv: list[str], kind: str) -> None:
        check_same(lab, argv, kind, taken)

    same()
    both_sides(taken)


def test_export_through_both_paths_prints_the_same(lab: Lab) -> None:
    taken: list[bool] = []

    @drawn(BULK_EXAMPLES)
    @given(argv=bulk_argvs("export"), kind=st.sampled_from(BULK_ENVIRONS))
    @example(["export", "-e", "prod"], "github")  # the masks on stderr first
    @example(["export", "-e", "dev", "-e", "prod", "-f", "json"], "session")
    @example(["export", "--format=shell", "--only", "a", "--only", "db/*"], "prod")
    @example(["-e", "prod", "export", "--prefix", "APP_", "-q"], "json")
    @example(["export", "--only", "bin"], "session")  # not UTF-8: dotenv refuses it
    @example(["export", "-f", "github-env", "-e", "prod"], "session")  # no GITHUB_ENV
    @example(["export", "-e", "prod", "-o", "-"], "session")  # Typer's from here
    @example(["export", "-e", "dev", "-e", "prod", "--strict"], "session")
    @example(["export", "--allow-override", "PATH", "-h"], "prod")
    def same(argv: list[str], kind: str) -> None:
        check_same(lab, argv, kind, taken)

    same()
    both_sides(taken)


def test_put_through_both_paths_stores_and_prints_the_same(lab: Lab) -> None:
    taken: list[bool] = []

    @drawn(BULK_EXAMPLES)
    @given(
        argv=named_argvs("put", PUT_VALUES, "--allow-empty", PUT_ODD, NAMES),
        kind=st.sampled_from(ENVIRONS),
        stdin=st.sampled_from(STDINS),
    )
    @example(["put", "a"], "session", b"v3\n")  # a new version, the newline dropped
    @example(["put", "new", "--if-version", "0", "--tag", "t=1", "--tag", "u=2"], "json", b"x")
    @example(["put", "a", "--if-version", "1"], "session", b"x")  # a conflict: exit code
    @example(["put", "a", "--from-file", "value.txt", "--value", "v"], "session", b"")
    @example(["put", "a", "--from-file", ".//value.txt", "-q"], "prod", b"")  # Path's form
    @example(["put", "empty", "--allow-empty"], "session", b"")
    @example(["put", "a"], "session", b"")  # empty: refused without --allow-empty
    @example(["put", "a", "--tag", "noequals"], "session", b"x")
    @example(["put", "a", "--description", "d" * 1025], "session", b"x")
    @example(["put", "a", "--value", "visible", "--json"], "github", None)
    @example(["put", "bad name!"], "session", b"x")
    @example(["put", "a", "--if-version", "-1"], "session", b"x")  # Typer's from here
    @example(["put", "a", "--tag", "a=1", "--tag"], "session", b"x")
    @example(["put", "-h"], "session", None)
    def same(argv: list[str], kind: str, stdin: bytes | None) -> None:
        check_same(lab, argv, kind, taken, stdin=stdin)

    same()
    both_sides(taken)


def test_render_through_both_paths_writes_the_same(lab: Lab) -> None:
    taken: list[bool] = []

    @drawn(BULK_EXAMPLES)
    @given(
        argv=named_argvs("render", RENDER_VALUES, "--strict", RENDER_ODD, TEMPLATE_NAMES),
        kind=st.sampled_from(BULK_ENVIRONS),
    )
    @example(["render", "plain.tmpl"], "session")
    @example(["render", "-e", "dev", "-e", "prod", "layered.tmpl"], "session")  # prod wins
    @example(["render", "-e", "dev", "-e", "prod", "--strict", "layered.tmpl"], "session")
    @example(["-e", "prod", "render", "layered.tmpl", "-o", "out.txt"], "json")
    @example(["render", "plain.tmpl", "--output=out.txt", "-q"], "session")
    @example(["render", "missing.tmpl"], "session")
    @example(["render", "broken.tmpl"], "session")
    @example(["render", "binary.tmpl"], "session")
    @example(["render", "nosuch.tmpl"], "session")
    @example(["render", "plain.tmpl", "-o", "sub/out.txt"], "session")  # no such folder
    @example(["render", "plain.tmpl"], "github")
    def same(argv: list[str], kind: str) -> None:
        check_render(lab, argv, kind, taken)

    same()
    both_sides(taken)


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
        ["exec", "--", "true"],
        ["-e", "dev", "exec", "-e", "a", "-e", "b", "--only=x", "--only", "y,z", "--", "cmd"],
        ["exec", "--mask", "--pristine", "--prefix", "P_", "-q", "--", "cmd", "-e", "x", "--"],
        ["exec", "--no-mask", "--json", "--", "--help"],  # after '--': the command's
        ["export"],
        ["export", "-f", "json", "-e", "a", "--env=b", "--only", "x", "--prefix=P_", "-q"],
        ["--json", "export", "--format=shell"],
        ["put", "a"],
        ["put", "a", "--tag", "x=1", "--tag=y=2", "--if-version", "0", "--allow-empty"],
        ["-e", "prod", "put", "--from-file", "f", "--description", "d", "a", "--json"],
        ["render", "t.tmpl"],
        ["-e", "dev", "render", "-e", "a", "--env=b", "--strict", "-o", "out", "t.tmpl", "-q"],
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
        ["get", "a", "--only", "x"], ["exec", "true"], ["exec", "--"], ["exec", "-h", "--", "x"],
        ["exec", "--mask", "--no-mask", "--", "x"], ["exec", "--mask", "--mask", "--", "x"],
        ["exec", "--watch", "--", "x"], ["exec", "--env-file", "f", "--", "x"],
        ["exec", "--prefix", "a", "--prefix", "b", "--", "x"], ["exec", "x", "--", "y"],
        ["-e", "a", "-e", "b", "exec", "--", "x"], ["exec", "--only", "-x", "--", "y"],
        ["export", "-o", "f"], ["export", "x"], ["export", "-f", "a", "--format", "b"],
        ["export", "-fjson"], ["export", "--"], ["export", "--strict"], ["export", "--pristine"],
        ["get", "a", "--mask"], ["get", "a", "--", "x"], ["put"], ["put", "a", "b"],
        ["put", "a", "--if-version", "-1"], ["put", "a", "--if-version=x"],
        ["put", "a", "--value", "-v"], ["put", "a", "--raw"], ["put", "a", "--allow-empty=1"],
        ["put", "a", "--description", "a", "--description", "b"], ["put", "a", "--"],
        ["render"], ["render", "-"], ["render", "t", "-o", "-"], ["render", "t", "u"],
        ["render", "t", "--strict", "--strict"], ["render", "t", "-o", "a", "--output", "b"],
    ],
)  # fmt: skip
def test_other_shapes_go_to_typer(argv: list[str]) -> None:
    assert fast.plan(argv, {}) is None


@pytest.mark.parametrize("variable", [COMPLETE_VAR, ENV_NO_FAST])
def test_completion_and_the_switch_go_to_typer(variable: str) -> None:
    assert fast.plan(["get", "a"], {variable: "1"}) is None


@pytest.mark.parametrize("command", sorted(fast.SHAPES))
def test_the_fast_words_are_typer_options_of_the_same_kind(command: str) -> None:
    """Every word the fast path takes is an option of the Typer app where it takes it:
    a flag there exactly when it is a flag here, repeatable exactly when it is here."""
    import typer.main

    from bsecrets.cli.app import add_global_options, app, build_command

    root = typer.main.get_command(app)
    cmd = build_command(command)
    add_global_options(cmd, root.params)

    def kinds(params: list[object]) -> dict[str, tuple[bool, bool]]:
        return {
            word: (bool(getattr(p, "is_flag", False)), bool(getattr(p, "multiple", False)))
            for p in params
            for word in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))
        }

    before, after = kinds(root.params), kinds(cmd.params)
    shape = fast.SHAPES[command]
    assert set(fast.GLOBAL_WORDS.values()) <= set(GLOBAL_OPTIONS)
    for word, long in fast.GLOBAL_WORDS.items():
        assert before[word][0] == (long not in fast.TAKES_VALUE), word
        if word not in shape.words:
            assert after[word][0] == (long not in fast.TAKES_VALUE), word
    for word, long in shape.words.items():
        flag, multiple = after[word]
        assert flag == (long not in shape.takes_value), word
        assert multiple == (long in shape.repeatable), word
