"""Configuration, settled once per process: flag > environment variable >
profile > default. Every environment variable bsecrets reads is named here."""

from __future__ import annotations

import os
from collections.abc import Mapping

from bsecrets.errors import InsecureFile, UsageError
from bsecrets.files import check_trusted_file
from bsecrets.named_tuples import NamedTuple

ENV_PROFILE = "BSECRETS_PROFILE"
ENV_ENV = "BSECRETS_ENV"
ENV_SESSION = "BSECRETS_SESSION"
ENV_PASSPHRASE = "BSECRETS_PASSPHRASE"
ENV_PASSPHRASE_FILE = "BSECRETS_PASSPHRASE_FILE"
ENV_DEBUG = "BSECRETS_DEBUG"
ENV_NO_COLOR = "NO_COLOR"
ENV_MASK = "BSECRETS_MASK"  # exec: 1 masks output, 0 does not (default: on under CI)
ENV_INSECURE_HTTP = "BSECRETS_INSECURE_HTTP"  # 1: no warning for plain http:// endpoints
ENV_JSON = "BSECRETS_JSON"  # 1: as --json (JSON output, JSON errors and warnings on stderr)
ENV_REASON = "BSECRETS_REASON"  # as --reason (a protected environment: docs/access.md)
ENV_NEW_PASSPHRASE = "BSECRETS_NEW_PASSPHRASE"  # 'access principal add', 'passphrase change'
ENV_AS = "BSECRETS_AS"  # as --as: the principal to unlock as
ENV_KEY_FILE = "BSECRETS_KEY_FILE"  # a principal's key file (access keygen)
ENV_TOKEN = "BSECRETS_TOKEN"  # a pipeline token: never an option (argv is visible)
ENV_OTP = "BSECRETS_OTP"  # a one-time code, where there is no terminal to ask on
ENV_OTEL = "BSECRETS_OTEL"  # 1: OpenTelemetry traces (the otel extra), 0: none (tracing/)
ENV_NO_FAST = "BSECRETS_NO_FAST"  # 1: every command through the Typer app (cli/fast.py)
# What a completion script sets on a TAB: click's name for it (_PROG_COMPLETE). Not a
# setting (no ENV_ name, no man page line): only the scripts set it. app.py, cli/fast.py
# and cli/commands/completion.py read it.
COMPLETE_VAR = "_BSECRETS_COMPLETE"

# The options taken before the command and after it, with the same meaning (not
# --version: 'get --version N' is get's own option). By their long names.
GLOBAL_OPTIONS = (
    "--profile", "--env", "--json", "--quiet", "--no-color", "--insecure-http", "--yes",
    "--reason", "--as",
)  # fmt: skip


class Settings(NamedTuple):
    """The global options after precedence is applied (the profile is loaded lazily)."""

    profile: str | None = None  # --profile, else BSECRETS_PROFILE; None: search
    env: str | None = None  # --env, else BSECRETS_ENV; None: the profile's default_env
    json: bool = False  # --json, else BSECRETS_JSON=1
    quiet: bool = False
    color: bool = True
    debug: bool = False
    insecure_http: bool = False  # --insecure-http, else BSECRETS_INSECURE_HTTP=1
    environ: Mapping[str, str] = {}  # never mutated
    env_flag: str | None = None  # -e as given on the command line (not BSECRETS_ENV)
    yes: bool = False  # --yes: a protected environment's confirmation, where no terminal asks
    reason: str | None = None  # --reason, else BSECRETS_REASON: why, for the audit log
    as_principal: str | None = None  # --as, else BSECRETS_AS; None: the session's, or owner

    @classmethod
    def resolve(
        cls,
        *,
        profile: str | None,
        env: str | None,
        json: bool,
        quiet: bool,
        no_color: bool,
        insecure_http: bool = False,
        yes: bool = False,
        reason: str | None = None,
        as_principal: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        return cls(
            profile=profile or environ.get(ENV_PROFILE) or None,
            env=env or environ.get(ENV_ENV) or None,
            json=json or environ.get(ENV_JSON) == "1",
            quiet=quiet,
            color=not (no_color or ENV_NO_COLOR in environ),
            debug=environ.get(ENV_DEBUG) == "1",
            insecure_http=insecure_http or environ.get(ENV_INSECURE_HTTP) == "1",
            environ=environ,
            env_flag=env or None,
            yes=yes,
            reason=reason if reason is not None else environ.get(ENV_REASON),
            as_principal=as_principal or environ.get(ENV_AS) or None,
        )

    def given(self, option: str, value: object) -> Settings:
        """These settings with a global option given after the command name (``ls -q``),
        which means what it means before it: a flag wins over its environment variable,
        and of two ``-p`` or ``-e`` the last one counts. ``option`` is the long name."""
        if value is None or value is False:  # not given: the option's default
            return self
        if option == "--profile":
            return self._replace(profile=str(value))
        if option == "--env":
            return self._replace(env=str(value), env_flag=str(value))
        if option == "--json":
            return self._replace(json=True)
        if option == "--quiet":
            return self._replace(quiet=True)
        if option == "--no-color":
            return self._replace(color=False)
        if option == "--insecure-http":
            return self._replace(insecure_http=True)
        if option == "--yes":
            return self._replace(yes=True)
        if option == "--reason":
            return self._replace(reason=str(value))
        if option == "--as":
            return self._replace(as_principal=str(value))
        raise ValueError(f"not a global option: {option}")

    def one_time_code(self) -> str | None:
        """BSECRETS_OTP: never an option, so that no code sits in argv or shell history."""
        return self.environ.get(ENV_OTP) or None

    def key_file(self) -> str | None:
        return self.environ.get(ENV_KEY_FILE) or None

    def pipeline_token(self) -> str | None:
        return self.environ.get(ENV_TOKEN) or None

    def session_token(self) -> str | None:
        return self.environ.get(ENV_SESSION) or None

    def passphrase(self) -> str | None:
        """BSECRETS_PASSPHRASE, else BSECRETS_PASSPHRASE_FILE's text (one trailing
        newline dropped; see read_passphrase_file for the rules on the file)."""
        if ENV_PASSPHRASE in self.environ:
            return self.environ[ENV_PASSPHRASE]
        path = self.environ.get(ENV_PASSPHRASE_FILE)
        if not path:
            return None
        text = read_passphrase_file(path)
        return text[:-1] if text.endswith("\n") else text


MAX_PASSPHRASE_FILE_BYTES = 64 * 1024


def read_passphrase_file(path: str) -> str:
    """The text of the passphrase file, read through one descriptor.

    A regular file must be yours and unreadable by group and others (exit 4, as
    ssh does with keys); the checks are made on the open descriptor (fstat), so
    the file cannot be swapped between the check and the read. Pipes (``<(pass
    show x)``, i.e. /dev/fd/N) and other non-regular files skip those checks.
    At most MAX_PASSPHRASE_FILE_BYTES + 1 bytes are ever read, so /dev/zero or a
    huge file is refused (exit 2) rather than read into memory; the text must be
    UTF-8 (exit 2).
    """
    import stat

    def refused(problem: str, hint: str) -> UsageError:
        return UsageError(f"{ENV_PASSPHRASE_FILE} ({path}) {problem}", hint=hint)

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise refused(
            f"cannot be read: {exc.strerror}", "point it to a readable file holding the passphrase"
        ) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise refused("is a folder", "point it to a file holding the passphrase")
        if stat.S_ISREG(st.st_mode):
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                raise InsecureFile(
                    f"{ENV_PASSPHRASE_FILE} ({path}) belongs to another user (uid {st.st_uid})",
                    hint=f"use a file of your own, mode 600 (chown it, or copy it: {path})",
                )
            if st.st_mode & 0o077:
                raise InsecureFile(
                    f"{ENV_PASSPHRASE_FILE} ({path}) can be read or written by other users "
                    f"(mode {st.st_mode & 0o777:o})",
                    hint=f"chmod 600 {path}",
                )
            # The folders on its way too (files.py): whoever can write one of them can
            # put another file in its place. Then the file checked must be the one open.
            from pathlib import Path

            checked = check_trusted_file(
                Path(path), private=True, what=f"passphrase file ({ENV_PASSPHRASE_FILE})"
            )
            if checked is None or (checked.st_dev, checked.st_ino) != (st.st_dev, st.st_ino):
                raise InsecureFile(
                    f"{ENV_PASSPHRASE_FILE} ({path}) was replaced while it was being checked",
                    hint="run the command again; if it persists, look for who changes the file",
                )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_PASSPHRASE_FILE_BYTES:
            chunk = os.read(fd, MAX_PASSPHRASE_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise refused(
            f"cannot be read: {exc.strerror}", "point it to a readable file holding the passphrase"
        ) from None
    finally:
        os.close(fd)
    if size > MAX_PASSPHRASE_FILE_BYTES:
        raise refused(
            f"holds more than {MAX_PASSPHRASE_FILE_BYTES // 1024} KiB",
            "point it to a file that holds only the passphrase",
        )
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise refused(
            "is not UTF-8 text", "save the passphrase as UTF-8 text (e.g. with iconv -t UTF-8)"
        ) from None
