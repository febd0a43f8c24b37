"""CI detection and GitHub Actions workflow commands (see docs/ci.md).

In GitHub Actions (``GITHUB_ACTIONS=true``) the runner reads workflow commands
from a step's output: ``::add-mask::TEXT`` makes it replace TEXT with ``***``
in every later log line. bsecrets writes them to stderr: the runner reads
commands from both streams of a step (its ScriptHandler hands stdout and
stderr lines to the same command parser), and stdout stays pure data, so
``TOKEN=$(bsecrets get token)`` or ``bsecrets export -f json | jq`` get no
command lines mixed in. A multi-line value has to be registered line by line
(actions/runner#161), and the command's data is escaped (``%`` -> ``%25``,
CR -> ``%0D``, LF -> ``%0A``) as the runner unescapes it.

GitLab CI (``GITLAB_CI=true``) has no command to mask a value at run time; the
safe patterns are in docs/ci.md.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from typing import TextIO

_LINE_BREAK = r"\r\n|\r|\n"  # compiled on first use (re caches it): not on every command


def detect(environ: Mapping[str, str]) -> str | None:
    """ "github", "gitlab" or None."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return "github"
    if environ.get("GITLAB_CI") == "true":
        return "gitlab"
    return None


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def add_mask_lines(values: Iterable[str]) -> list[str]:
    """``::add-mask::`` commands for every non-empty line of every value (each once)."""
    seen: set[str] = set()
    out = []
    for value in values:
        for line in re.split(_LINE_BREAK, value):
            if line.strip() and line not in seen:
                seen.add(line)
                out.append(f"::add-mask::{escape_data(line)}\n")
    return out


def mask_in_github(
    values: Iterable[str | bytes], environ: Mapping[str, str], out: TextIO | None = None
) -> None:
    """In GitHub Actions, register every value line with ``::add-mask::`` on stderr
    (before the values themselves are printed or used); elsewhere do nothing."""
    if detect(environ) != "github":
        return
    texts = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in values]
    stream = out if out is not None else sys.stderr
    stream.write("".join(add_mask_lines(texts)))
    stream.flush()
