"""The README's shell blocks work when pasted one after another into one shell
(issue #11, item 2).

Every ```sh block of README.md runs, in order, in one bash process with
``set -eu -o pipefail``, in a fresh folder, with the test key derivation and
``bsecrets`` on PATH running this checkout. Two steps are left out, on
purpose and checked here so that they cannot change unnoticed:

* the ``pip install . && `` that opens the quick start (the package is already
  installed: the rest of that line runs);
* the block that runs the whole test suite (it would run this test again).

Any other ``pip install`` or ``pytest`` in a block fails the test rather than
running.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bsecrets.config.loader import load_profile

README = Path(__file__).resolve().parents[1] / "README.md"
INSTALL = "pip install . && "
TEST_SUITE = "pip install -e '.[test]' && python -m pytest"


def shell_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.S | re.M)


def script_from_readme() -> str:
    """The blocks as one script, after checking that the quick start opens with exactly
    two commands: the install-and-try line, then the test suite's."""
    text = README.read_text()
    start = text.index("## Quick start")
    quick_start = text[start : text.index("\n## ", start)]
    blocks = shell_blocks()
    assert re.findall(r"^```sh\n(.*?)^```", quick_start, re.S | re.M) == blocks[:2]
    assert blocks[0].startswith(INSTALL) and blocks[0].count("\n") == 1  # one command line
    assert blocks[1] == TEST_SUITE + "\n"
    runnable = [blocks[0][len(INSTALL) :], *blocks[2:]]  # skipped: install, the test suite
    for block in runnable:
        assert "pip install" not in block and "pytest" not in block
    return "set -eu -o pipefail\nset -x\n" + "\n".join(runnable)


def test_the_readme_blocks_run_in_order_in_one_shell(tmp_path: Path, isolated: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "bsecrets"  # this interpreter and this checkout, whatever PATH holds
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bsecrets "$@"\n')
    shim.chmod(0o755)
    temp = tmp_path / "tmp"  # where the quick start's mktemp -d goes
    temp.mkdir(mode=0o700)
    environ = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "TMPDIR": str(temp),
        "BSECRETS_INSECURE_TEST_KDF": "1",  # set by conftest too: said here for the reader
    }
    result = subprocess.run(
        ["bash", "-c", script_from_readme()],
        cwd=isolated,
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-6000:]}"
    assert result.stdout.startswith("db/password v1 (dev)\ns3cr3t\n")  # the quick start
    (folder,) = list(temp.iterdir())  # the quick start's profile folder
    profile = load_profile(folder / "bsecrets.yaml")
    assert profile.default_env == "prod" and list(profile.environments) == ["dev", "prod"]
    assert (folder / ".env.local").exists()
    assert not (isolated / "bsecrets.yaml").exists()  # nothing outside that folder
