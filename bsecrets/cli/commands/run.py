"""exec and render: thin commands over SecretsManager (see docs/exec.md)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from typing import Annotated, NoReturn

import typer

from bsecrets.audit.events import Action
from bsecrets.cli.context import CliContext, EnvOption, OnlyOption, obj
from bsecrets.config.ci import mask_in_github
from bsecrets.config.envmap import child_environment, map_names, select_names
from bsecrets.config.settings import ENV_MASK
from bsecrets.errors import CommandNotExecutable, CommandNotFound, UsageError
from bsecrets.files import restore_for_child, write_private_file
from bsecrets.run.supervise import StartFailed, run
from bsecrets.run.template import render as fill


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


def _names(cli: CliContext, env_name: str, only: list[str]) -> list[str]:
    """The ``--only`` names and globs (envmap.select_names), else every live secret."""
    return select_names(
        only, lambda: [s.name for s in cli.manager.list_secrets(env_name)], env_name
    )


def _restore_child_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; an exec'd program must not inherit that."""
    import signal

    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


def _exec_failed(command: str, exc: OSError) -> NoReturn:
    """127 when the command is not found, 126 when it cannot be run (docs/cli.md, exit codes)."""
    if isinstance(exc, FileNotFoundError):
        raise CommandNotFound(
            f"command not found: {command}",
            hint="check the spelling, or give a path; the command is looked up in PATH, no shell",
        )
    reason = "permission denied" if isinstance(exc, PermissionError) else "cannot run it"
    raise CommandNotExecutable(
        f"cannot execute {command}: {reason}",
        hint="make it executable (chmod +x), or run it through its interpreter",
    )


def exec_(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- CMD [ARGS]...",
            help="The command and its arguments, after '--'.",
            show_default=False,
        ),
    ] = None,
    only: OnlyOption = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Put P in front of every variable name.")
    ] = "",
    pristine: Annotated[
        bool,
        typer.Option("--pristine", help="The child gets only the secrets and PATH/HOME/TERM/LANG."),
    ] = False,
    preserve_env: Annotated[
        list[str] | None,
        typer.Option(
            "--preserve-env", help="Keep these inherited variables over secrets (K,K,...)."
        ),
    ] = None,
    allow_override: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-override",
            help="Let a secret set this protected variable (PATH, HOME, LD_*, ...); repeatable.",
        ),
    ] = None,
    mask: Annotated[
        bool | None,
        typer.Option(
            "--mask/--no-mask",
            help=f"Redact secret values in the command's output (default: on when CI is set; "
            f"{ENV_MASK}=0/1 overrides).",
            show_default=False,
        ),
    ] = None,
    with_previous: Annotated[
        bool,
        typer.Option(
            "--with-previous",
            help="Also VAR_PREVIOUS for each secret within a graceful rotation's overlap.",
        ),
    ] = False,
    env: EnvOption = None,
) -> None:
    """Run a command with the environment's secrets as environment variables.

    Examples:
      bsecrets exec -- ./manage.py migrate
      bsecrets exec -e prod --only DB_URL,API_KEY -- node server.js
      bsecrets exec --prefix APP_ --pristine -- env
    """
    cli = obj(ctx)
    if not command:
        raise UsageError("no command to run", hint="bsecrets exec [OPTIONS] -- COMMAND [ARGS...]")
    masked = want_mask(mask, cli.settings.environ)
    manager = cli.manager
    env_name = manager.env_name(cli.env(env))
    names = _names(cli, env_name, _split(only))
    mapping = map_names(names, prefix)  # collisions fail before any value is read
    with manager.reading(env_name, names, action=Action.EXEC) as (secrets, note):
        if with_previous:  # graceful rotations: docs/rotation.md
            # a seam: exec loads the rotation service only when asked (start-up, #20)
            from bsecrets.services.rotation import with_previous as add_previous

            secrets, mapping = add_previous(manager, env_name, secrets, mapping)
        child_env, injected = child_environment(
            secrets,
            cli.settings.environ,
            mapping=mapping,
            pristine=pristine,
            preserve=_split(preserve_env),
            allow_override=_split(allow_override),
        )
        note.names = [mapping[variable] for variable in injected]  # the one event says these
    cli.close()

    mask_in_github(secrets.values(), cli.settings.environ)  # GitHub Actions: ::add-mask::
    if masked:
        _supervise(command, child_env, list(secrets.values()))
    del secrets
    _replace_process(command, child_env)


def want_mask(flag: bool | None, environ: Mapping[str, str]) -> bool:
    """--mask/--no-mask > BSECRETS_MASK=0/1 > on when CI is set (not empty, 0 or false)."""
    if flag is not None:
        return flag
    setting = environ.get(ENV_MASK)
    if setting is not None and setting.strip() != "":
        if setting.strip() not in ("0", "1"):
            raise UsageError(
                f"{ENV_MASK} must be 0 or 1, not {setting.strip()[:20]!r}",
                hint=f"unset {ENV_MASK}, or use --mask / --no-mask",
            )
        return setting.strip() == "1"
    return environ.get("CI", "").strip().lower() not in ("", "0", "false")


def _supervise(command: list[str], child_env: dict[bytes, bytes], values: list[bytes]) -> NoReturn:
    """Masked: run the command as a child, redact its output, exit with its code."""
    try:
        code = run(command, child_env, values)
    except StartFailed as exc:
        _exec_failed(command[0], exc.cause)
    raise typer.Exit(code)


def _replace_process(command: list[str], child_env: dict[bytes, bytes]) -> NoReturn:
    """os.execvpe: PATH lookup in the child's PATH, no shell; the command takes over."""
    from bsecrets import tracing

    tracing.flush()  # the spans still batched: the flush at exit will not run
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    _restore_child_signals()

    restore_for_child()
    try:
        os.execvpe(command[0], command, child_env)
    except OSError as exc:
        import signal

        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        _exec_failed(command[0], exc)


def render(
    ctx: typer.Context,
    template: Annotated[
        str, typer.Argument(help="The template file ('-': stdin).", show_default=False)
    ],
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="Write here (atomically, mode 0600); '-': stdout."),
    ] = "-",
) -> None:
    """Fill {{ bsecrets://ENV/NAME }} references (#vN: a version, #field: a field).

    Examples:
      bsecrets render config.ini.tmpl -o config.ini
      bsecrets render - < app.yaml.tmpl > app.yaml
    """
    from pathlib import Path

    cli = obj(ctx)
    if template == "-":
        raw = sys.stdin.buffer.read()
        source = "<stdin>"
    else:
        try:
            raw = Path(template).read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read the template {template}: {exc.strerror}",
                hint="give the path of a readable file, or '-' for stdin",
            ) from None
        source = template
    text = raw.decode("utf-8", errors="surrogateescape")
    result = fill(text, source, lambda e, n, v: cli.manager.get(e, n, v))
    data = result.encode("utf-8", errors="surrogateescape")
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return

    write_private_file(Path(output), data)
    cli.message(f"rendered {source} -> {output} (mode 0600)")
