"""Configuration, settled once per process: flag > environment variable >
profile > default. Every environment variable bsecrets reads is named here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from bsecrets.core.errors import UsageError

ENV_PROFILE = "BSECRETS_PROFILE"
ENV_ENV = "BSECRETS_ENV"
ENV_SESSION = "BSECRETS_SESSION"
ENV_PASSPHRASE = "BSECRETS_PASSPHRASE"
ENV_PASSPHRASE_FILE = "BSECRETS_PASSPHRASE_FILE"
ENV_DEBUG = "BSECRETS_DEBUG"
ENV_NO_COLOR = "NO_COLOR"
ENV_MASK = "BSECRETS_MASK"  # exec: 1 masks output, 0 does not (default: on under CI)


class Settings(NamedTuple):
    """The global options after precedence is applied (the profile is loaded lazily)."""

    profile: str | None = None  # --profile, else BSECRETS_PROFILE; None: search
    env: str | None = None  # --env, else BSECRETS_ENV; None: the profile's default_env
    json: bool = False
    quiet: bool = False
    color: bool = True
    debug: bool = False
    environ: Mapping[str, str] = {}  # never mutated

    @classmethod
    def resolve(
        cls,
        *,
        profile: str | None,
        env: str | None,
        json: bool,
        quiet: bool,
        no_color: bool,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        return cls(
            profile=profile or environ.get(ENV_PROFILE) or None,
            env=env or environ.get(ENV_ENV) or None,
            json=json,
            quiet=quiet,
            color=not (no_color or ENV_NO_COLOR in environ),
            debug=environ.get(ENV_DEBUG) == "1",
            environ=environ,
        )

    def session_token(self) -> str | None:
        return self.environ.get(ENV_SESSION) or None

    def passphrase(self) -> str | None:
        """BSECRETS_PASSPHRASE, else the first line of BSECRETS_PASSPHRASE_FILE."""
        if ENV_PASSPHRASE in self.environ:
            return self.environ[ENV_PASSPHRASE]
        path = self.environ.get(ENV_PASSPHRASE_FILE)
        if not path:
            return None
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"cannot read {ENV_PASSPHRASE_FILE} ({path}): {exc.strerror}",
                hint="point it to a readable file holding the passphrase",
            ) from None
        return text[:-1] if text.endswith("\n") else text
