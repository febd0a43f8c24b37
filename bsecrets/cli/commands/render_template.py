"""What ``bsecrets render`` does once its arguments are parsed, without typer: the
Typer command (run.render) and the fast path (cli/fast.py) both call
:func:`render_template`, so the two write the same bytes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bsecrets.cli.cli_context import CliContext
from bsecrets.errors import SecretNotFound, UsageError
from bsecrets.files import write_private_file
from bsecrets.run.template import parse
from bsecrets.run.template import render as fill
from bsecrets.services import env_layers

if TYPE_CHECKING:
    from bsecrets.models import Secret


def render_template(
    cli: CliContext,
    template: str,
    *,
    output: str = "-",
    strict: bool = False,
    envs: Sequence[str] | None = None,
) -> None:
    """``template`` ('-': stdin) with its references filled, to ``output`` ('-':
    stdout; else a file written atomically, mode 0600)."""
    if template == "-":
        raw = sys.stdin.buffer.read()
        source = "<stdin>"
    else:
        try:
            with open(template, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise UsageError(
                f"cannot read the template {template}: {exc.strerror}",
                hint="give the path of a readable file, or '-' for stdin",
            ) from None
        source = template
    text = raw.decode("utf-8", errors="surrogateescape")
    layered = sorted({ref.name.partition("#")[0] for ref in parse(text, source) if not ref.env})
    layers, owners = (
        env_layers.owners(cli.manager, cli.envs(list(envs) if envs else None), layered,
                          strict=strict)
        if layered
        else ([], {})
    )  # fmt: skip

    def read(env_name: str, name: str, version: int | None) -> Secret:
        if not env_name:  # {{ bsecrets:///NAME }}: the layer that holds it
            base = name.partition("#")[0]
            if base not in owners:
                raise SecretNotFound(
                    f"secret '{base}' is in none of the environments {', '.join(layers)}",
                    hint="check the name, or add the environment that holds it with -e",
                )
            env_name = owners[base]
        return cli.manager.get(env_name, name, version)

    result = fill(text, source, read)
    data = result.encode("utf-8", errors="surrogateescape")
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return

    write_private_file(output, data)
    cli.message(f"rendered {source} -> {output} (mode 0600)")
