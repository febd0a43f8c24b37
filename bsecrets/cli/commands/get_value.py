"""What ``bsecrets get`` does once its arguments are parsed, without typer: the Typer
command (secrets.get) and the fast path (cli/fast.py) both call :func:`print_secret`,
so the two print the same bytes."""

from __future__ import annotations

import sys

from bsecrets.cli.cli_context import CliContext
from bsecrets.config.ci import mask_in_github
from bsecrets.timeutil import iso


def print_secret(
    cli: CliContext,
    name: str,
    *,
    env: str | None = None,
    version: int | None = None,
    raw: bool = False,
    json_out: bool = False,
) -> None:
    """The value of ``name`` (``version``, else the current one) on stdout: with a
    newline, ``raw`` exactly the stored bytes, ``json_out`` one JSON document."""
    secret = cli.manager.get(cli.env(env), name, version)
    if cli.settings.environ.get("GITHUB_ACTIONS") == "true":  # register masks first (stderr)
        mask_in_github([secret.value], cli.settings.environ)
    if cli.want_json(json_out):
        cli.emit_json(
            {
                "name": secret.name,
                "env": secret.env,
                "version": secret.version,
                "value": secret.text,
                "created_at": iso(secret.created_at),
                "tags": secret.tags,
                "description": secret.description,
            }
        )
        return
    out = sys.stdout.buffer
    out.write(secret.value if raw else secret.value + b"\n")
    out.flush()
