"""What ``bsecrets put`` does once its arguments are parsed, without typer: the Typer
command (secrets.put) and the fast path (cli/fast.py) both call :func:`store_secret`,
so the two read the same value, store the same version and print the same bytes."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bsecrets.cli.cli_context import CliContext
from bsecrets.errors import UsageError
from bsecrets.files import StrPath
from bsecrets.models import MAX_VALUE_BYTES, validate_description, validate_tags


def parse_tags(pairs: Sequence[str] | None) -> dict[str, str] | None:
    """``KEY=VALUE`` words as a mapping (None when there are none)."""
    if not pairs:
        return None
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            # not the text itself: a bare word given to --tag may be a pasted value
            raise UsageError("invalid --tag: it has no '='", hint="write tags as KEY=VALUE")
        tags[key] = value
    return tags


def read_value(cli: CliContext, from_file: StrPath | None, value: str | None) -> bytes:
    """--from-file (exact bytes), else --value (warned), else stdin, else a prompt."""
    if from_file is not None and value is not None:
        raise UsageError("give either --from-file or --value, not both")
    if from_file is not None:
        try:
            with open(from_file, "rb") as fh:
                data = fh.read(MAX_VALUE_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {from_file}: {exc.strerror}") from None
        return data
    if value is not None:
        cli.warn(
            "--value puts the secret in argv, where other users can read it; "
            "prefer stdin or --from-file"
        )
        return value.encode()
    if not sys.stdin.isatty():
        data = sys.stdin.buffer.read(MAX_VALUE_BYTES + 2)
        return data[:-1] if data.endswith(b"\n") else data
    import getpass

    return getpass.getpass("Value (hidden): ").encode()


def store_secret(
    cli: CliContext,
    name: str,
    *,
    from_file: StrPath | None = None,
    value: str | None = None,
    tag: Sequence[str] | None = None,
    description: str | None = None,
    if_version: int | None = None,
    allow_empty: bool = False,
    env: str | None = None,
    json_out: bool = False,
) -> None:
    """A new version of ``name`` from the value's source (read_value), then one line:
    ``NAME vN (ENV)``, or a JSON document, or nothing with --quiet."""
    tags = parse_tags(tag)
    # the limits first, before a prompt or stdin is read (the manager checks tags again)
    if tags is not None:
        validate_tags(tags)
    if description is not None:
        validate_description(description)
    data = read_value(cli, from_file, value)
    result = cli.manager.put(
        cli.env(env),
        name,
        data,
        tags=tags,
        description=description,
        if_version=if_version,
        allow_empty=allow_empty,
    )
    if cli.want_json(json_out):
        cli.emit_json({"name": result.name, "env": result.env, "version": result.version})
    elif not cli.settings.quiet:
        sys.stdout.write(f"{result.name} v{result.version} ({result.env})\n")
