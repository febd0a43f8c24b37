"""What ``bsecrets exec`` does once its arguments are parsed, without typer: the Typer
command (run.exec_) and the fast path (cli/fast.py) both call :func:`run_exec`, so
the two give the child the same environment and exit alike (docs/exec.md).

Unmasked, the command replaces bsecrets (os.execvpe); masked, with a mount or under
--watch, bsecrets stays its parent (run/supervise.py, services/exec_run.py) and
returns its exit status.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn

from bsecrets.cli.cli_context import CliContext
from bsecrets.cli.option_lists import split_list
from bsecrets.config.ci import mask_in_github
from bsecrets.config.settings import ENV_MASK
from bsecrets.errors import CommandNotExecutable, CommandNotFound, UsageError
from bsecrets.files import restore_for_child
from bsecrets.named_tuples import NamedTuple
from bsecrets.services import env_file as env_files
from bsecrets.services import exec_env
from bsecrets.timeutil import parse_duration

if TYPE_CHECKING:
    from bsecrets.services import exec_run


class ExecOptions(NamedTuple):
    """exec's options as given (None, False, empty: not given); the help is run.exec_'s."""

    envs: Sequence[str] | None = None  # -e, repeatable: the layers
    only: Sequence[str] | None = None
    prefix: str = ""
    pristine: bool = False
    preserve_env: Sequence[str] | None = None
    allow_override: Sequence[str] | None = None
    mask: bool | None = None  # --mask / --no-mask
    with_previous: bool = False
    env_file: Sequence[str] | None = None
    strict: bool = False
    mount: str | None = None
    mount_format: str | None = None
    mount_max_reads: int | None = None
    watch: bool = False
    interval: str | None = None
    signal_name: str | None = None


def run_exec(cli: CliContext, command: Sequence[str] | None, given: ExecOptions) -> int:
    """Run ``command`` with the secrets: replace this process with it, or (masked, a
    mount, --watch) supervise it and return its exit status."""
    if not command:
        raise UsageError("no command to run", hint="bsecrets exec [OPTIONS] -- COMMAND [ARGS...]")
    command = list(command)
    env, env_file = list(given.envs or []), list(given.env_file or [])
    masked = want_mask(given.mask, cli.settings.environ)
    lines = env_files.load(env_file)  # FILE:LINE errors before anything is read
    if env_file and not env and (given.only or given.prefix or given.with_previous):
        raise UsageError(
            "--only, --prefix and --with-previous pick an environment's secrets, and with "
            "--env-file alone none are injected",
            hint="name the environment with -e ENV, or drop the option",
        )
    mounting = _mount_spec(given.mount, given.mount_format, given.mount_max_reads)
    watching = _watch_spec(given.watch, given.interval, given.signal_name)
    environ = cli.settings.environ
    preserve, allow = split_list(given.preserve_env), split_list(given.allow_override)
    env_files.check_settable(
        env_files.winners(lines).values(), environ, pristine=given.pristine,
        preserve=preserve, allow_override=allow,
    )  # fmt: skip
    manager = cli.manager
    request = exec_env.Request(
        cli.envs(env) if env or not env_file else [],  # --env-file: -e only if given
        lines, environ, only=split_list(given.only), prefix=given.prefix, strict=given.strict,
        with_previous=given.with_previous, pristine=given.pristine, preserve=preserve,
        allow_override=allow,
    )  # fmt: skip
    prepared = exec_env.prepare(manager, request)
    if watching is None:
        cli.close()

    values = prepared.secret_values  # a file's plain settings are not masked
    mask_in_github(values, environ)  # GitHub Actions: ::add-mask::
    if mounting is not None or watching is not None:
        from bsecrets.run.supervise import StartFailed  # the seam: see _supervise
        from bsecrets.services import exec_run

        try:
            return exec_run.supervised(
                manager, request, prepared, command, mask=masked,
                mount=mounting, watch=watching, warn=cli.warn,
            )  # fmt: skip
        except StartFailed as exc:
            _exec_failed(command[0], exc.cause)
    if masked:
        return _supervise(command, prepared.child_env, values)
    child_env = prepared.child_env
    del prepared, values
    _replace_process(command, child_env)


def _restore_child_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; an exec'd program must not inherit that.
    Through _signal, the C module under signal: importing signal (its enums) would cost
    each exec ~0.7 ms (bench/README.md, "Standard-library imports off the hot path")."""
    try:
        import _signal as signal  # type: ignore[import-not-found]
    except ImportError:  # not CPython
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
    from bsecrets.services import exec_run  # the seam: see _supervise

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
    exec_run.check_mount_path(path)  # exit 7 before anything is read
    return exec_run.MountSpec(path, exec_run.mount_format(path, fmt), max_reads)


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
    from bsecrets.services import exec_run  # the seam: see _supervise

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


def _supervise(command: list[str], child_env: dict[bytes, bytes], values: list[bytes]) -> int:
    """Masked: run the command as a child, redact its output; its exit status. The
    supervisor (run/supervise.py, services/exec_run.py) loads only here and for a mount
    or --watch: an unmasked exec replaces this process and never needs it."""
    from bsecrets.run.supervise import StartFailed, run

    try:
        return run(command, child_env, values)
    except StartFailed as exc:
        _exec_failed(command[0], exc.cause)


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
