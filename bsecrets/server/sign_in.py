"""People at the server (docs/server.md, "Signing in as a principal"): the owner, or a
principal made with ``bsecrets access principal add``, signs in with its name and
passphrase, as ``bsecrets unlock`` does on the command line: the server starts a
session of the local vault for it (services/sessions.py: the ``unlock`` audit event,
a bounded lifetime) and keeps that session's token in its memory. The client gets an
opaque bearer, ``bsw1.<random>``, which names the kept session and opens nothing
elsewhere; signing out (or the lifetime) ends the session and its file.

What a pipeline token cannot do needs this: the owner's audit log, access listings,
a custodian's break-glass approval.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from bsecrets.config.cache import load_profile_cached
from bsecrets.config.settings import ENV_AS, ENV_PASSPHRASE, Settings
from bsecrets.errors import (
    PrincipalUnknown,
    SessionInvalid,
    UsageError,
    WrongPassphrase,
)
from bsecrets.models import AccessContext
from bsecrets.named_tuples import NamedTuple
from bsecrets.server.core import NOT_FROM_THE_SERVER
from bsecrets.services.credentials import credentials_for
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile import session

PREFIX = "bsw1."
DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(hours=8)
MAX_SIGNED_IN = 1_000
SIGN_IN_AGAIN = "sign in again: POST /v1/sign-in"


class SignedIn(NamedTuple):
    """One signed-in principal: the vault session the server keeps for it."""

    principal: str
    session_token: str  # bss1...: never leaves the server
    expires_at: datetime

    def __repr__(self) -> str:  # never the session token
        return f"SignedIn(principal={self.principal!r}, expires_at={self.expires_at})"


class SignIns:
    """The principals signed in to this process, by bearer; thread-safe."""

    def __init__(self, profile: Path, environ: Mapping[str, str]) -> None:
        self.profile = profile
        self.environ = {k: v for k, v in environ.items() if k not in NOT_FROM_THE_SERVER}
        self._held: dict[str, SignedIn] = {}
        self._lock = threading.Lock()

    def sign_in(
        self, principal: str, passphrase: str, ttl: timedelta, via: str
    ) -> tuple[str, SignedIn]:
        """(bearer, what it names) for ``principal`` ("owner" or a principal's name) with
        ``passphrase``; WrongPassphrase (401) for a wrong name or passphrase alike."""
        from bsecrets.services import sessions
        from bsecrets.services.manager import SecretsManager

        if not timedelta(minutes=1) <= ttl <= MAX_TTL:
            raise UsageError("a sign-in lasts from 1 minute to 8 hours",
                             hint="ttl_seconds from 60 to 28800")  # fmt: skip
        if not passphrase:
            raise WrongPassphrase("no passphrase", hint="send the principal's passphrase")
        variables = {**self.environ, ENV_PASSPHRASE: passphrase}
        if principal != "owner":
            variables[ENV_AS] = principal
        settings = Settings.resolve(profile=str(self.profile), env=None, json=True, quiet=True,
                                    no_color=True, environ=variables)  # fmt: skip
        creds = credentials_for(settings, None)._replace(use_keyring=False)
        context = AccessContext.current()._replace(principal=creds.principal, via=via)
        core = SecretsManager(load_profile_cached(self.profile), creds, context=context,
                              environ=settings.environ)  # fmt: skip
        try:
            started = sessions.unlock(core, ttl)  # audited, refused or not
        except (WrongPassphrase, PrincipalUnknown):
            raise WrongPassphrase(
                "wrong principal or passphrase", hint="check the principal's name and passphrase"
            ) from None
        finally:
            core.close()
        held = SignedIn(creds.principal, started.token, started.expires_at)
        bearer = PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            if len(self._held) >= MAX_SIGNED_IN:
                self._drop_expired()
            full = len(self._held) >= MAX_SIGNED_IN
            if not full:
                self._held[bearer] = held
        if full:
            _end(held)  # the vault session just started is not kept: its file goes too
            raise UsageError(
                "too many principals signed in to this server",
                hint="sign out unused ones, or wait for them to expire",
            )
        return bearer, held

    def resolve(self, bearer: str) -> SignedIn:
        """What ``bearer`` names; SessionInvalid (401) when nothing, or expired."""
        with self._lock:
            held = self._held.get(bearer)
        if held is None:
            raise SessionInvalid("this sign-in is not known to the server (expired, signed "
                                 "out, or the server restarted)", hint=SIGN_IN_AGAIN)  # fmt: skip
        if held.expires_at <= utcnow():
            self.sign_out(bearer)
            raise SessionInvalid(f"this sign-in expired at {held.expires_at:%Y-%m-%dT%H:%M:%SZ}",
                                 hint=SIGN_IN_AGAIN)  # fmt: skip
        return held

    def sign_out(self, bearer: str) -> SignedIn | None:
        """Forget ``bearer`` and end its vault session (its file deleted)."""
        with self._lock:
            held = self._held.pop(bearer, None)
        if held is not None:
            _end(held)
        return held

    def close(self) -> None:
        """End every session (the server stops)."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for one in held:
            _end(one)

    def _drop_expired(self) -> None:
        now = utcnow()
        for bearer, held in list(self._held.items()):
            if held.expires_at <= now:
                del self._held[bearer]
                _end(held)


def _end(held: SignedIn) -> None:
    """Delete the session file (the vault id is read from it: ``end`` with a token
    deletes only that session's file)."""
    import contextlib

    with contextlib.suppress(Exception):  # already gone, or the folder is: nothing kept
        session.end(held.session_token, b"")


def is_sign_in(bearer: str) -> bool:
    return bearer.startswith(PREFIX)
