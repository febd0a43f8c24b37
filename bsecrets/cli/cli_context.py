"""CliContext: what every command reaches through ``ctx.obj`` (settings, the manager,
output). It imports no typer, so the fast path (fast.py) runs a command with the
same context the Typer app gives it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from bsecrets.backends.registry import factory
from bsecrets.cli import collector
from bsecrets.config.cache import load_profile_cached
from bsecrets.config.loader import find_profile
from bsecrets.config.settings import Settings
from bsecrets.crypto.keys import load_primitives
from bsecrets.models import Confirmation
from bsecrets.vaultfile.credentials import Credentials

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager


def _load_local_vault_modules() -> None:
    """What every command on a local vault uses and would import on first use (the local
    backend's modules, AES-GCM, HKDF, HMAC), imported while the collector is still held
    off (cli/collector.py): frozen with the rest, instead of walked by the collections
    that loading them during the command set off (two on a ``get``, ~0.2 ms)."""
    factory("local")
    load_primitives()


TABLE_CHUNK = 10_000  # lines a write, not a write a line (ls prints 100,000)


class CliContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._manager: SecretsManager | None = None

    # --- core ------------------------------------------------------------

    def credentials(self) -> Credentials:
        from bsecrets.services.credentials import credentials_for

        return credentials_for(self.settings, _prompt if sys.stdin.isatty() else None)

    def profile_path(self) -> str:
        return find_profile(self.settings.profile, self.settings.environ, os.getcwd())

    @property
    def manager(self) -> SecretsManager:
        if self._manager is None:
            # the seam of the CLI: the core loads on the first command that uses it,
            # so --help, --version and the command table do not pay for it
            from bsecrets.services.manager import SecretsManager

            profile = load_profile_cached(self.profile_path())
            self._manager = SecretsManager(
                profile,
                self.credentials(),
                environ=self.settings.environ,
                warn=self.warn,
                insecure_http=self.settings.insecure_http,
                confirmation=self.confirmation(),
            )
            if os.path.exists(profile.vault_file):  # every command reads and writes it
                _load_local_vault_modules()
            collector.release()  # held off while the modules loaded (cli/entry.py)
        return self._manager

    def confirmation(self) -> Confirmation:
        """What a protected environment asks for (services/access.py): --reason, --yes
        or a question on a terminal, and a one-time code from BSECRETS_OTP or a prompt."""
        settings = self.settings
        terminal = sys.stdin.isatty()

        def one_time_code() -> str | None:
            code = settings.one_time_code()
            if code is None and terminal:
                code = _prompt_visible("One-time code: ")
            return code

        return Confirmation(
            reason=settings.reason,
            yes=settings.yes,
            ask=_ask if terminal else None,
            one_time_code=one_time_code,
        )

    def env(self, command_env: str | None) -> str | None:
        """The environment for this command: -e after the command > global > profile default."""
        return command_env or self.settings.env

    def envs(self, command_envs: list[str] | None) -> list[str | None]:
        """exec's and export's layers (EnvLayersOption): the -e environments in order,
        else the one environment a command uses (BSECRETS_ENV, else the default)."""
        return list(command_envs) if command_envs else [self.settings.env]

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()

    # --- output ----------------------------------------------------------

    def want_json(self, command_json: bool) -> bool:
        return command_json or self.settings.json

    def emit_json(self, data: Any) -> None:
        import json  # here: a plain command prints no JSON (json_codec.py)

        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def message(self, text: str) -> None:
        """A human message on stderr (suppressed by --quiet); under --json, one line
        ``{"message": text}``, so that every line on stderr is a JSON object."""
        if self.settings.quiet:
            return
        if self.settings.json:
            self._json_line("message", text)
        else:
            sys.stderr.write(text + "\n")

    def warn(self, text: str) -> None:
        """A ``warning:`` line on stderr; under --json, one line ``{"warning": text}``."""
        if self.settings.json:
            self._json_line("warning", text)
        else:
            sys.stderr.write(f"warning: {text}\n")

    def _json_line(self, key: str, text: str) -> None:
        import json

        sys.stderr.write(json.dumps({key: text}, ensure_ascii=False) + "\n")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Aligned columns on stdout; with --quiet, only the first column. Each line is
        its cells left-justified to their column's width and joined by two spaces, with
        no trailing white space; written TABLE_CHUNK lines at a time."""
        lines: Iterable[str]
        if self.settings.quiet:
            lines = map(itemgetter(0), rows)
        else:
            columns = list(zip(*rows, strict=True)) or [()] * len(headers)
            widths = [
                max(len(header), max(map(len, column), default=0))
                for header, column in zip(headers, columns, strict=True)
            ]
            # %-Ns pads a str as ljust does; % is the cheapest per line (ls of 100,000)
            line = "  ".join(f"%-{width}s" for width in widths)
            lines = map(str.rstrip, map(line.__mod__, map(tuple, [headers, *rows])))
        while chunk := list(islice(lines, TABLE_CHUNK)):
            sys.stdout.write("\n".join(chunk) + "\n")


def _prompt_visible(label: str) -> str:
    sys.stderr.write(label)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def _ask(question: str) -> bool:
    return _prompt_visible(question).lower() in ("y", "yes")


def _prompt(label: str) -> str:
    import getpass

    return getpass.getpass(label)
