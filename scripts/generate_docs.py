#!/usr/bin/env python3
"""Regenerate the shell completion scripts (completions/) and the man pages (man/)
from the command tree:

    python scripts/generate_docs.py               # into this checkout
    python scripts/generate_docs.py --root DIR    # into DIR/completions and DIR/man

Run it after changing a command, an option or a help text: tests/test_completion.py
and tests/test_manpages.py fail while the files here differ from what it writes.
pyproject.toml installs both folders with the wheel (share/man/man1, and each shell's
completion folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# shell -> the file in completions/ (the names each shell's folder expects, but bash's:
# the wheel installs bsecrets.bash as share/bash-completion/completions/bsecrets)
COMPLETION_FILES = {"bash": "bsecrets.bash", "zsh": "_bsecrets", "fish": "bsecrets.fish"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="where completions/ and man/ go")
    root = parser.parse_args(argv).root
    sys.path.insert(0, str(ROOT))  # this checkout's bsecrets, installed or not
    from bsecrets.cli import manpages
    from bsecrets.cli.commands.completion import script

    completions = root / "completions"
    completions.mkdir(parents=True, exist_ok=True)
    for shell, name in COMPLETION_FILES.items():
        (completions / name).write_text(script(shell), encoding="utf-8")
    man = root / "man"
    for old in man.glob("*.1"):  # a page of a command that is gone must go too
        old.unlink()
    written = manpages.write(man)
    print(f"wrote {len(COMPLETION_FILES)} completion scripts and {len(written)} man pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
