"""exec and render: thin commands over SecretsManager (see docs/exec.md)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from typing import Annotated, NoReturn

import typer

from bsecrets.cli.context import EnvLayersOption, OnlyOption, obj
from bsecrets.config.ci import mask_in_github
from bsecrets.config.envmap import child_environment
from bsecrets.config.settings import ENV_MASK
from bsecrets.errors import CommandNotExecutable, CommandNotFound, UsageError
from bsecrets.files import restore_for_child, write_private_file
from bsecrets.run.supervise import StartFailed, run
from bsecrets.run.template import render as fill
from bsecrets.services import env_file as env_files
from bsecrets.services import exec_inputs


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


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
    env_file: Annotated[
        list[str] | None,
        typer.Option(
            "--env-file",
            metavar="FILE",
            help="A dotenv file of settings and bsecrets://ENV/NAME references to resolve "
            "(repeatable: later wins; without -e, only its variables are injected).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse (exit 7) a secret or variable set by more than one -e "
            "environment or --env-file line.",
        ),
    ] = False,
    env: EnvLayersOption = None,
) -> None:
    """Run a command with the environment's secrets as environment variables.

    -e is repeatable: the environments layer in order, a later one wins
    (-e shared -e dev). --env-file resolves a file's references on top of them.

    Examples:
      bsecrets exec -- ./manage.py migrate
      bsecrets exec -e prod --only DB_URL,API_KEY -- node server.js
      bsecrets exec -e shared -e dev --strict -- ./run-tests
      bsecrets exec --env-file .env.tpl -- node server.js
      bsecrets exec --prefix APP_ --pristine -- env
    """
    cli = obj(ctx)
    if not command:
        raise UsageError("no command to run", hint="bsecrets exec [OPTIONS] -- COMMAND [ARGS...]")
    masked = want_mask(mask, cli.settings.environ)
    lines = env_files.load(env_file or [])  # FILE:LINE errors before anything is read
    if env_file and not env and (only or prefix or with_previous):
        raise UsageError(
            "--only, --prefix and --with-previous pick an environment's secrets, and with "
            "--env-file alone none are injected",
            hint="name the environment with -e ENV, or drop the option",
        )
    environ = cli.settings.environ
    env_files.check_settable(
        env_files.winners(lines).values(), environ, pristine=pristine,
        preserve=_split(preserve_env), allow_override=_split(allow_override),
    )  # fmt: skip
    manager = cli.manager
    envs = cli.envs(env) if env or not env_file else []  # --env-file: -e only if given
    inputs = exec_inputs.plan(manager, envs, lines, only=_split(only), prefix=prefix, strict=strict)
    with exec_inputs.reading(manager, inputs) as read:
        secrets, mapping = read.secrets, read.mapping
        if with_previous:  # graceful rotations: docs/rotation.md
            # a seam: exec loads the rotation service only when asked (start-up, #20)
            from bsecrets.services.rotation import with_previous as add_previous

            secrets, mapping = add_previous(manager, inputs.env, secrets, mapping)
        secrets, mapping = read.on_top(secrets, mapping)
        child_env, injected = child_environment(
            secrets, environ, mapping=mapping, pristine=pristine,
            preserve=_split(preserve_env), allow_override=_split(allow_override),
        )  # fmt: skip
        read.used(mapping[variable] for variable in injected)  # what each event names
    cli.close()

    values = read.secret_values(secrets)  # a file's plain settings are not masked
    mask_in_github(values, environ)  # GitHub Actions: ::add-mask::
    if masked:
        _supervise(command, child_env, values)
    del secrets, values
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
    env: EnvLayersOption = None,
) -> None:
    """Fill {{ bsecrets://ENV/NAME }} references (#vN: a version, #field: a field).

    Each reference names its environment, so render takes no layers of -e.

    Examples:
      bsecrets render config.ini.tmpl -o config.ini
      bsecrets render - < app.yaml.tmpl > app.yaml
    """
    from pathlib import Path

    if env and len(env) > 1:
        raise UsageError(
            f"render takes no layered environments (-e given {len(env)} times): each "
            "reference names its own, {{ bsecrets://ENV/NAME }}",
            hint="drop -e, and write the environment into each reference",
        )
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
