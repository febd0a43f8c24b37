"""What every command reaches through ``ctx.obj``: settings, the manager, output.

Option aliases used by several commands live here too, so that each option is
spelled, documented and defaulted once.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bsecrets.core.settings import ENV_ENV, Settings

if TYPE_CHECKING:
    from bsecrets.core.credentials import Credentials
    from bsecrets.core.manager import SecretsManager

EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env", "-e", help=f"Environment (default: {ENV_ENV}, else the profile's default_env)."
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable output: one JSON document.")
]

# Versions, counts and sequence numbers are SQLite INTEGERs (64-bit signed): a
# number past this cannot name anything, and would overflow on its way to SQL.
MAX_NUMBER = 2**63 - 1


def whole_number(minimum: int) -> Callable[[str], int]:
    """The parser of an integer option from ``minimum`` to MAX_NUMBER. Unlike an int
    option with min/max it looks at the digits before int(), so 5,000 of them are
    "larger than the maximum" (not Python's digit-limit ValueError), and the
    message never echoes them whole."""

    def parse(value: str) -> int:
        text = str(value).strip()
        shown = text if len(text) <= 24 else f"{text[:10]}... ({len(text)} characters)"
        digits = text[1:] if text[:1] in ("+", "-") else text
        if not (digits.isascii() and digits.isdigit()):
            raise typer.BadParameter(f"{shown!r} is not a whole number")
        if len(digits.lstrip("0")) > len(str(MAX_NUMBER)) or int(text) > MAX_NUMBER:
            if text.startswith("-"):
                raise typer.BadParameter(f"{shown} is less than {minimum}")
            raise typer.BadParameter(f"{shown} is larger than the maximum, {MAX_NUMBER}")
        if int(text) < minimum:
            raise typer.BadParameter(f"{shown} is less than {minimum}")
        return int(text)

    return parse


def command_group(name: str, help: str) -> typer.Typer:
    """A command group (``bsecrets NAME ...``) configured like the root app."""
    group = typer.Typer(
        name=name, help=help, no_args_is_help=True, add_completion=False,
        pretty_exceptions_enable=False, rich_markup_mode=None,
    )  # fmt: skip
    group.callback()(lambda: None)  # a group even with one command
    return group


class CliContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._manager: SecretsManager | None = None

    # --- core ------------------------------------------------------------

    def credentials(self) -> Credentials:
        from bsecrets.core.credentials import Credentials

        prompt = _prompt if sys.stdin.isatty() else None
        return Credentials(
            session_token=self.settings.session_token(),
            passphrase=self.settings.passphrase(),
            prompt=prompt,
        )

    def profile_path(self) -> Path:
        from bsecrets.core.profile import find_profile

        return find_profile(self.settings.profile, self.settings.environ, Path.cwd())

    @property
    def manager(self) -> SecretsManager:
        if self._manager is None:
            from bsecrets.core.manager import SecretsManager
            from bsecrets.core.profile_cache import load_profile_cached

            profile = load_profile_cached(self.profile_path())
            self._manager = SecretsManager(
                profile,
                self.credentials(),
                environ=self.settings.environ,
                warn=self.warn,
                insecure_http=self.settings.insecure_http,
            )
        return self._manager

    def env(self, command_env: str | None) -> str | None:
        """The environment for this command: -e after the command > global > profile default."""
        return command_env or self.settings.env

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()

    # --- output ----------------------------------------------------------

    def want_json(self, command_json: bool) -> bool:
        return command_json or self.settings.json

    def emit_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def message(self, text: str) -> None:
        """A human message on stderr (suppressed by --quiet)."""
        if not self.settings.quiet:
            sys.stderr.write(text + "\n")

    def warn(self, text: str) -> None:
        sys.stderr.write(f"warning: {text}\n")

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        """Aligned columns on stdout; with --quiet, only the first column."""
        if self.settings.quiet:
            for row in rows:
                sys.stdout.write(row[0] + "\n")
            return
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        for row in [headers, *rows]:
            line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))
            sys.stdout.write(line.rstrip() + "\n")


def _prompt(label: str) -> str:
    import getpass

    return getpass.getpass(label)


def obj(ctx: typer.Context) -> CliContext:
    value = ctx.find_root().obj
    if not isinstance(value, CliContext):  # pragma: no cover - always set by the root callback
        raise RuntimeError("bsecrets context missing")
    return value


def is_interactive() -> bool:
    return sys.stdin.isatty() and os.environ.get("CI") is None
