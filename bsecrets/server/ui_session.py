"""The web UI's sessions (docs/server.md, "Web UI"): server-side, in the process's memory.

A browser holds only a random session id (the cookie, HttpOnly, SameSite=Strict,
Secure over TLS); the pipeline token it signed in with stays here, in memory, and is
dropped on sign-out, on expiry, and when the process ends. Each session has its own
CSRF token, which every form carries and every POST must send back.

A visitor who has not signed in gets an anonymous session (no token) so that the
sign-in form itself carries a CSRF token; signing in replaces it with a new session
(a new id and a new CSRF token: an id known before sign-in is worth nothing after).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

COOKIE = "bsecrets_ui"
IDLE_SECONDS = 15 * 60  # a signed-in session unused this long is dropped
MAX_AGE_SECONDS = 8 * 3600  # and any session this old, used or not
ANONYMOUS_SECONDS = 10 * 60  # a sign-in form is good for this long
MAX_SESSIONS = 10_000  # past it, the least recently used sessions are dropped


class UiSession:
    """One browser's session. ``token`` is None until it signs in; never shown."""

    __slots__ = ("created", "csrf", "flash", "id", "principal", "seen", "token")

    def __init__(self, token: str | None, principal: str | None, now: float) -> None:
        self.id = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.token = token
        self.principal = principal
        self.created = now
        self.seen = now
        self.flash: str | None = None  # one message for the next page (after a redirect)

    @property
    def signed_in(self) -> bool:
        return self.token is not None

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and secrets.compare_digest(sent.encode(), self.csrf.encode())

    def pop_flash(self) -> str | None:
        message, self.flash = self.flash, None
        return message

    def __repr__(self) -> str:  # never the token, the id or the CSRF token
        return f"UiSession(principal={self.principal!r})"


class SessionStore:
    """The sessions of this process, by id; thread-safe (sync routes run in a pool)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sessions: dict[str, UiSession] = {}
        self._lock = threading.Lock()

    def _expired(self, session: UiSession, now: float) -> bool:
        if session.signed_in:
            return now - session.seen > IDLE_SECONDS or now - session.created > MAX_AGE_SECONDS
        return now - session.created > ANONYMOUS_SECONDS

    def get(self, session_id: str | None) -> UiSession | None:
        """The live session with this id (its last use now), or None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def anonymous(self) -> UiSession:
        """A new session without a token: it only carries the sign-in form's CSRF token."""
        return self._add(UiSession(None, None, self._clock()))

    def sign_in(self, previous: UiSession, token: str, principal: str) -> UiSession:
        """A new session (new id, new CSRF token) holding ``token``; ``previous`` is
        dropped."""
        self.drop(previous)
        return self._add(UiSession(token, principal, self._clock()))

    def drop(self, session: UiSession) -> None:
        """Forget the session and its token (sign-out, or the token was refused)."""
        with self._lock:
            self._sessions.pop(session.id, None)
        session.token = None

    def _add(self, session: UiSession) -> UiSession:
        now = self._clock()
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                for key, old in list(self._sessions.items()):
                    if self._expired(old, now):
                        del self._sessions[key]
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: (s.signed_in, s.seen))
                del self._sessions[oldest.id]
                oldest.token = None
            self._sessions[session.id] = session
        return session

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)
