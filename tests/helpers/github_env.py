"""What a GitHub Actions runner reads back from ``$GITHUB_ENV``."""

from __future__ import annotations


def parse_github_env(text: str) -> dict[str, str]:
    """What the runner reads from $GITHUB_ENV: NAME=VALUE or NAME<<DELIM ... DELIM."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body = []
            while lines[i] != delim:
                body.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            out[name] = value
    return out
