"""Man pages (#17): man/ holds bsecrets(1) and one page per command and per subcommand
of a group, generated from the command tree (bsecrets/cli/manpages.py); they must be
current, render without a warning, and say what --help says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import invoke

import bsecrets
from bsecrets.cli import manpages
from bsecrets.cli.app import COMMANDS, build_command
from bsecrets.cli.exit_codes import ExitCode
from bsecrets.config import settings

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
SECTIONS = [
    "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES",
    "EXAMPLES", "SEE ALSO",
]  # fmt: skip


def command_paths() -> list[list[str]]:
    """Every command and every visible subcommand, at any depth."""
    paths: list[list[str]] = []

    def walk(path: list[str], command: object) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                walk([*path, name], sub)

    for name in COMMANDS:
        walk([name], build_command(name))
    return paths


def page_of(path: list[str]) -> Path:
    return MAN / f"{'-'.join(['bsecrets', *path])}.1"


def plain(roff: str) -> str:
    """The text of roff source, for comparing with --help (escapes undone)."""
    for escape, char in (("\\-", "-"), ("\\(aq", "'"), ("\\(dq", '"'), ("\\(ga", "`"),
                         ("\\(ti", "~"), ("\\(ha", "^"), ("\\e", "\\"), ("\\&", "")):  # fmt: skip
        roff = roff.replace(escape, char)
    return roff


def test_the_generated_files_are_current(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_docs.py"), "--root", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for folder in ("man", "completions"):
        fresh = {p.name: p.read_bytes() for p in (tmp_path / folder).iterdir()}
        shipped = {p.name: p.read_bytes() for p in (ROOT / folder).iterdir()}
        stale = sorted(n for n in fresh.keys() | shipped.keys() if fresh.get(n) != shipped.get(n))
        assert stale == [], f"{folder}/ is stale ({stale}): run python scripts/generate_docs.py"


def test_one_page_per_command_and_subcommand() -> None:
    expected = {"bsecrets.1"} | {page_of(p).name for p in command_paths()}
    assert {p.name for p in MAN.iterdir()} == expected
    for name in ("bsecrets-get.1", "bsecrets-rotate-status.1", "bsecrets-access-principal-add.1",
                 "bsecrets-completion.1", "bsecrets-break-glass-setup.1"):  # fmt: skip
        assert name in expected
    assert "bsecrets-rotate-secret.1" not in expected  # hidden: part of bsecrets-rotate(1)


@pytest.mark.parametrize("page", sorted(p.name for p in MAN.glob("*.1")))
def test_each_page_has_its_sections_in_order(page: str) -> None:
    text = (MAN / page).read_text(encoding="ascii")
    found = [s.strip('"') for s in re.findall(r"^\.SH (.+)$", text, re.M)]
    assert [s for s in found if s in SECTIONS] == SECTIONS, found
    assert text.startswith(f'.TH "{plain(page[:-2]).upper().replace("-", chr(92) + "-")}" "1"')


@pytest.mark.parametrize("path", [[], *command_paths()], ids=lambda p: " ".join(p) or "bsecrets")
def test_a_page_says_what_help_says(path: list[str]) -> None:
    help_text = invoke([*path, "--help"]).stdout
    page = plain((MAN / (page_of(path).name if path else "bsecrets.1")).read_text())
    examples = help_text.partition("\nExamples:\n")[2].split("\n")
    examples = [e.strip() for e in examples if e.strip()]
    shown = page.partition("\n.SH EXAMPLES\n")[2].partition("\n.SH ")[0]
    assert examples and all(e in shown.splitlines() for e in examples), (examples, shown)
    usage = help_text.splitlines()[0].removeprefix("Usage: ")
    synopsis = page.partition(".SH SYNOPSIS\n.nf\n")[2].partition("\n.fi")[0]
    assert usage in synopsis.splitlines() or all(
        line.startswith(f"bsecrets {' '.join(path)}") for line in synopsis.splitlines()
    ), (usage, synopsis)
    for option in re.findall(r"^  (--?[a-z][a-z-]*)", help_text.partition("Options:")[2], re.M):
        if option not in settings.GLOBAL_OPTIONS and option not in ("-p", "-e", "-q", "-y"):
            assert f"\\fB{option}\\fR" in page, option


def test_exit_statuses_and_variables_are_all_described() -> None:
    assert set(manpages.EXIT_STATUS) == set(ExitCode)
    named = {v for k, v in vars(settings).items() if k.startswith("ENV_") and isinstance(v, str)}
    assert named == set(manpages.ENVIRONMENT), "describe each variable in manpages.ENVIRONMENT"
    page = plain((MAN / "bsecrets-get.1").read_text())
    assert all(f".B {name}\n" in page for name in named)
    assert all(f".B {int(code)}\n" in page for code in ExitCode)


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed (.ci/run)")
def test_every_page_renders_without_a_warning() -> None:
    pages = sorted(MAN.glob("*.1"))
    complaints = {}
    for page in pages:
        done = subprocess.run(
            ["groff", "-man", "-ww", "-rCHECKSTYLE=3", "-Tutf8", "-z", str(page)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0 or done.stderr:
            complaints[page.name] = done.stderr
    assert complaints == {}


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed (.ci/run)")
def test_a_rendered_page_reads_like_the_help() -> None:
    done = subprocess.run(
        ["groff", "-man", "-Tutf8", "-P-cbou", str(MAN / "bsecrets-get.1")],
        capture_output=True, text=True, timeout=60, env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    text = done.stdout
    assert "bsecrets-get - Print a secret's value" in text
    assert "bsecrets get [OPTIONS] NAME" in text
    assert "-e, --env ENV" in text
    assert "bsecrets get tls/key --version 2 --raw > key.pem" in text
    assert "bsecrets(1)" in text
    assert text.isascii(), [c for c in text if not c.isascii()]


def test_the_wheel_installs_the_man_pages_and_completions(tmp_path: Path) -> None:
    """``python -m build --wheel`` (hatchling): the pages and scripts are in the wheel's
    data, under share/ (installed into the environment's share/man/man1, ...)."""
    import zipfile

    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path),
                    str(root)], check=True, capture_output=True)  # fmt: skip
    (wheel,) = tmp_path.glob("bsecrets-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    assert "share/man/man1/bsecrets.1" in data and "share/man/man1/bsecrets-get.1" in data
    assert len([n for n in data if n.startswith("share/man/man1/")]) == len(
        list((root / "man").glob("*.1"))
    )
    assert {"share/bash-completion/completions/bsecrets", "share/zsh/site-functions/_bsecrets",
            "share/fish/vendor_completions.d/bsecrets.fish"} <= set(data)  # fmt: skip
    assert "bsecrets/py.typed" in names
    # installed into a fresh virtualenv (its dependencies from this one's site-packages)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)  # fmt: skip
    assert (venv / "share" / "man" / "man1" / "bsecrets-get.1").is_file()
    assert (venv / "share" / "bash-completion" / "completions" / "bsecrets").is_file()
    done = subprocess.run([str(venv / "bin" / "bsecrets"), "--version"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip().endswith(bsecrets.__version__)
