"""What ``bsecrets export`` does once its arguments are parsed, without typer: the Typer
command (transfer.export) and the fast path (cli/fast.py) both call
:func:`export_secrets`, so the two print the same bytes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from bsecrets.cli.cli_context import CliContext
from bsecrets.cli.option_lists import split_list
from bsecrets.config.ci import mask_in_github
from bsecrets.errors import UsageError
from bsecrets.files import refuse_folder, write_private_file
from bsecrets.formats import codecs as formats
from bsecrets.named_tuples import NamedTuple
from bsecrets.services.transfer import export_layers


class ExportOptions(NamedTuple):
    """export's options as given (None, False, empty: not given); the help is transfer.export's."""

    envs: Sequence[str] | None = None  # -e, repeatable: the layers
    fmt: str | None = None
    only: Sequence[str] | None = None
    prefix: str = ""
    allow_override: Sequence[str] | None = None
    output: str = "-"
    strict: bool = False


def choose_format(value: str | None, allowed: tuple[str, ...], default: str) -> str:
    """--format's value, lower-cased (yml: yaml); UsageError when it is not in ``allowed``."""
    fmt = (value or default).lower()
    if fmt == "yml":
        fmt = "yaml"
    if fmt not in allowed:
        raise UsageError(f"unknown format '{value}'", hint=f"one of {', '.join(allowed)}")
    return fmt


def export_secrets(cli: CliContext, given: ExportOptions) -> None:
    """The layers' secrets in ``given.fmt``: on stdout, to ``given.output``, or appended
    to $GITHUB_ENV."""
    fmt = choose_format(given.fmt, formats.EXPORT_FORMATS, "dotenv")
    environ = cli.settings.environ
    github_env = environ.get("GITHUB_ENV", "")
    if fmt == "github-env" and not github_env:
        raise UsageError(
            "--format github-env works only in GitHub Actions (GITHUB_ENV is not set)",
            hint="elsewhere use --format dotenv or shell, or 'bsecrets exec'",
        )
    output = given.output
    if output != "-":
        if fmt == "github-env":
            raise UsageError(
                "-o does not apply to --format github-env, which appends to $GITHUB_ENV",
                hint="drop -o, or write a file with --format dotenv or shell",
            )

        refuse_folder(output, "-o")
    env_name, items, values = export_layers(
        cli.manager,
        cli.envs(list(given.envs or [])),
        fmt,
        only=split_list(given.only),
        prefix=given.prefix,
        allow_override=split_list(given.allow_override),
        strict=given.strict,
    )
    if fmt == "github-env":
        import secrets

        text = "".join(
            formats.github_env_block(k, v, lambda: f"BSECRETS_EOF_{secrets.token_hex(16)}")
            for k, v in items
        )
        mask_in_github(values.values(), environ)
        _append(github_env, text.encode("utf-8"))
        cli.message(f"wrote {len(items)} variables from '{env_name}' to GITHUB_ENV")
        return
    text = formats.render(fmt, items)  # every value checked before anything is printed
    mask_in_github(values.values(), environ)
    if output != "-":
        write_private_file(output, text.encode("utf-8"))
        cli.message(f"exported {len(items)} secrets from '{env_name}' to {output} (mode 0600)")
        return
    out = sys.stdout.buffer
    out.write(text.encode("utf-8"))
    out.flush()


def _append(path: str, data: bytes) -> None:
    """Append ``data`` to $GITHUB_ENV on a line of its own: after an earlier step's
    last line without a newline, ``KEY<<DELIM`` would join that line, and the
    runner would read the value's lines as ``NAME=VALUE`` commands."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot open GITHUB_ENV ({path}): {exc.strerror}") from None
    try:
        if os.fstat(fd).st_size and not _ends_with_newline(path):
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _ends_with_newline(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
    except OSError:
        return False  # cannot tell: an extra blank line is harmless to the runner
