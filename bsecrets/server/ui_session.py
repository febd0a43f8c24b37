"""The web UI's sessions (docs/server.md, "Web UI"): server-side, in the process's memory.

A browser holds only a random session id (the cookie, HttpOnly, SameSite=Strict,
Secure over TLS); the pipeline token it signed in with stays here, in memory, and is
dropped on sign-out, on expiry, and when the process ends. Each session has its own
CSRF token, which every form carries and every POST must send back.

A visitor who has not signed in gets an anonymous session (no token) so that the
sign-in form itself carries a CSRF token; signing in replaces it with a new session
(a new id and a new CSRF token: an id known before sign-in is worth nothing after).

A person signed in with a passphrase (server/ui_people.py) holds, instead of a pipeline
token, the token of a vault session the server started for it (``bss1...``), and the
sign-in's bearer (``bsw1...``); when such a session ends here (sign-out, idle, too old,
evicted), ``on_end`` ends the vault session too (its file deleted).
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
SWEEP_SECONDS = 60.0  # how often a request sweeps the expired sessions
MAX_SESSIONS = 10_000  # past it, the least recently used sessions are dropped


class UiSession:
    """One browser's session. ``token`` is None until it signs in; never shown."""

    __slots__ = ("bearer", "created", "csrf", "flash", "id", "principal", "seen", "token")

    def __init__(
        self, token: str | None, principal: str | None, now: float, bearer: str | None = None
    ) -> None:
        self.id = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.token = token
        self.principal = principal
        self.created = now
        self.seen = now
        self.flash: str | None = None  # one message for the next page (after a redirect)
        self.bearer = bearer  # a person's sign-in (server/sign_in.py): None for a token

    @property
    def person(self) -> bool:
        """Signed in with a name and passphrase (not a pipeline token)."""
        return self.signed_in and self.bearer is not None

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

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        on_end: Callable[[UiSession], None] | None = None,
    ) -> None:
        self._clock = clock
        self._on_end = on_end  # a person's session ended here: end its vault session
        self._sessions: dict[str, UiSession] = {}
        self._swept = clock()
        self._lock = threading.Lock()

    def _expired(self, session: UiSession, now: float) -> bool:
        if session.signed_in:
            return now - session.seen > IDLE_SECONDS or now - session.created > MAX_AGE_SECONDS
        return now - session.created > ANONYMOUS_SECONDS

    def get(self, session_id: str | None) -> UiSession | None:
        """The live session with this id (its last use now), or None. At most every
        SWEEP_SECONDS, the expired sessions of everyone are dropped first (a person's
        session never seen again ends its vault session then, not at its hour)."""
        if not session_id:
            return None
        now = self._clock()
        if now - self._swept >= SWEEP_SECONDS:
            self._swept = now
            self.sweep()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if not self._expired(session, now):
                session.seen = now
                return session
            del self._sessions[session_id]
        self._ended([session])
        return None

    def anonymous(self) -> UiSession:
        """A new session without a token: it only carries the sign-in form's CSRF token."""
        return self._add(UiSession(None, None, self._clock()))

    def sign_in(
        self, previous: UiSession, token: str, principal: str, bearer: str | None = None
    ) -> UiSession:
        """A new session (new id, new CSRF token) holding ``token`` (and a person's
        ``bearer``); ``previous`` is dropped."""
        self.drop(previous)
        return self._add(UiSession(token, principal, self._clock(), bearer))

    def drop(self, session: UiSession) -> None:
        """Forget the session and its token (sign-out, or the token was refused)."""
        with self._lock:
            self._sessions.pop(session.id, None)
        self._ended([session])

    def sweep(self) -> int:
        """Drop every expired session now (a person's vault session ends with it)."""
        now = self._clock()
        with self._lock:
            gone = [s for s in self._sessions.values() if self._expired(s, now)]
            for old in gone:
                del self._sessions[old.id]
        self._ended(gone)
        return len(gone)

    def _ended(self, sessions: list[UiSession]) -> None:
        """What an ended session held is forgotten; a person's vault session ends."""
        for session in sessions:
            if session.bearer is not None and self._on_end is not None:
                self._on_end(session)
            session.token = session.bearer = None

    def _add(self, session: UiSession) -> UiSession:
        now = self._clock()
        gone: list[UiSession] = []
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                for key, old in list(self._sessions.items()):
                    if self._expired(old, now):
                        gone.append(self._sessions.pop(key))
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: (s.signed_in, s.seen))
                gone.append(self._sessions.pop(oldest.id))
            self._sessions[session.id] = session
        self._ended(gone)
        return session

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)
