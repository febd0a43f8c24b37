"""exec and render: thin commands over SecretsManager (see docs/exec.md)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from bsecrets.cli.context import EnvLayersOption, OnlyOption, obj
from bsecrets.config.ci import mask_in_github
from bsecrets.config.settings import ENV_MASK
from bsecrets.errors import CommandNotExecutable, CommandNotFound, SecretNotFound, UsageError
from bsecrets.files import restore_for_child, write_private_file
from bsecrets.run.supervise import StartFailed, run
from bsecrets.run.template import parse
from bsecrets.run.template import render as fill
from bsecrets.services import env_file as env_files
from bsecrets.services import env_layers, exec_env, exec_run
from bsecrets.timeutil import parse_duration

if TYPE_CHECKING:
    from bsecrets.models import Secret


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
    mount: Annotated[
        str | None,
        typer.Option(
            "--mount",
            metavar="PATH",
            help="Give the secrets as a file at PATH (a named pipe; it must not exist) "
            "instead of the environment; BSECRETS_MOUNT names it. Gone when the command ends.",
        ),
    ] = None,
    mount_format: Annotated[
        str | None,
        typer.Option(
            "--mount-format",
            metavar="FORMAT",
            help="dotenv, json or yaml (default: from PATH's suffix, else dotenv).",
        ),
    ] = None,
    mount_max_reads: Annotated[
        int | None,
        typer.Option(
            "--mount-max-reads", metavar="N", help="Remove the file after N reads (N >= 1)."
        ),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Re-read the secrets every --interval; on a change restart the command "
            "(or send it --signal).",
        ),
    ] = False,
    interval: Annotated[
        str | None,
        typer.Option("--interval", metavar="DURATION", help="How often --watch reads (30s)."),
    ] = None,
    signal_name: Annotated[
        str | None,
        typer.Option(
            "--signal",
            metavar="SIGNAL",
            help="What --watch does on a change: restart (default), or send this signal (HUP).",
        ),
    ] = None,
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
      bsecrets exec --mount config.json -- ./server --config config.json
      bsecrets exec --watch --interval 1m -- ./worker
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
    mounting = _mount_spec(mount, mount_format, mount_max_reads)
    watching = _watch_spec(watch, interval, signal_name)
    environ = cli.settings.environ
    preserve, allow = _split(preserve_env), _split(allow_override)
    env_files.check_settable(
        env_files.winners(lines).values(), environ, pristine=pristine,
        preserve=preserve, allow_override=allow,
    )  # fmt: skip
    manager = cli.manager
    request = exec_env.Request(
        cli.envs(env) if env or not env_file else [],  # --env-file: -e only if given
        lines, environ, only=_split(only), prefix=prefix, strict=strict,
        with_previous=with_previous, pristine=pristine, preserve=preserve, allow_override=allow,
    )  # fmt: skip
    prepared = exec_env.prepare(manager, request)
    if watching is None:
        cli.close()

    values = prepared.secret_values  # a file's plain settings are not masked
    mask_in_github(values, environ)  # GitHub Actions: ::add-mask::
    if mounting is not None or watching is not None:
        try:
            code = exec_run.supervised(
                manager, request, prepared, command, mask=masked,
                mount=mounting, watch=watching, warn=cli.warn,
            )  # fmt: skip
        except StartFailed as exc:
            _exec_failed(command[0], exc.cause)
        raise typer.Exit(code)
    if masked:
        _supervise(command, prepared.child_env, values)
    child_env = prepared.child_env
    del prepared, values
    _replace_process(command, child_env)


def _mount_spec(
    path: str | None, fmt: str | None, max_reads: int | None
) -> exec_run.MountSpec | None:
    if path is None:
        if fmt is not None or max_reads is not None:
            raise UsageError(
                "--mount-format and --mount-max-reads shape a mount, and there is no --mount",
                hint="add --mount PATH, or drop the option",
            )
        return None
    if fmt is not None and fmt not in exec_run.MOUNT_FORMATS:
        raise UsageError(
            f"unknown mount format {fmt[:20]!r}",
            hint="use --mount-format " + ", ".join(exec_run.MOUNT_FORMATS),
        )
    if max_reads is not None and max_reads < 1:
        raise UsageError(
            f"--mount-max-reads must be 1 or more, not {max_reads}",
            hint="leave it out for a file that can be read any number of times",
        )
    exec_run.check_mount_path(Path(path))  # exit 7 before anything is read
    return exec_run.MountSpec(Path(path), exec_run.mount_format(path, fmt), max_reads)


def _watch_spec(
    watch: bool, interval: str | None, signal_name: str | None
) -> exec_run.WatchSpec | None:
    if not watch:
        if interval is not None or signal_name is not None:
            raise UsageError(
                "--interval and --signal shape --watch, which is not given",
                hint="add --watch, or drop the option",
            )
        return None
    seconds = parse_duration(interval or "30s", what="interval").total_seconds()
    told = (signal_name or "restart").strip()
    if told.lower() == "restart":
        return exec_run.WatchSpec(seconds, None, "restart")
    import signal

    name = told.upper() if told.upper().startswith("SIG") else "SIG" + told.upper()
    signum = getattr(signal.Signals, name, None) if name.isalnum() else None
    if signum is None or name in ("SIGKILL", "SIGSTOP"):
        raise UsageError(
            f"--signal takes restart or a signal name, not {told[:20]!r}",
            hint="for example --signal HUP, --signal USR1, or --signal restart",
        )
    return exec_run.WatchSpec(seconds, int(signum), name)


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
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse (exit 7) a {{ bsecrets:///NAME }} more than one -e environment holds.",
        ),
    ] = False,
    env: EnvLayersOption = None,
) -> None:
    """Fill {{ bsecrets://ENV/NAME }} references (#vN: a version, #field: a field).

    {{ bsecrets:///NAME }} names no environment: it is read from the -e
    environments, which layer (-e shared -e dev: the later one wins), else from
    the default environment.

    Examples:
      bsecrets render config.ini.tmpl -o config.ini
      bsecrets render - < app.yaml.tmpl > app.yaml
      bsecrets render -e shared -e dev --strict app.env.tmpl -o app.env
    """
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
    layered = sorted({ref.name.partition("#")[0] for ref in parse(text, source) if not ref.env})
    envs, owners = (
        env_layers.owners(cli.manager, cli.envs(env), layered, strict=strict)
        if layered
        else ([], {})
    )

    def read(env_name: str, name: str, version: int | None) -> Secret:
        if not env_name:  # {{ bsecrets:///NAME }}: the layer that holds it
            base = name.partition("#")[0]
            if base not in owners:
                raise SecretNotFound(
                    f"secret '{base}' is in none of the environments {', '.join(envs)}",
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

    write_private_file(Path(output), data)
    cli.message(f"rendered {source} -> {output} (mode 0600)")
