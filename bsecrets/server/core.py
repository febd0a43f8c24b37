"""The server's way to the core: SecretsManagers unlocked with a request's pipeline
token alone (docs/server.md). The REST API (app.py) and the web UI (ui.py) both take
their managers from one CorePool.

The server holds no standing key: of the server's environment, the variables that
would unlock the vault some other way (a passphrase, its file, a session, a key file,
``--as``) are dropped, and the token is the only credential. What it keeps between
requests is what a token already opened (CorePool), and only while it still opens it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bsecrets.config.cache import fingerprint, load_profile_cached
from bsecrets.config.settings import (
    ENV_AS,
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    ENV_SESSION,
    ENV_TOKEN,
    Settings,
)
from bsecrets.errors import BsecretsError, SessionInvalid, TokenExpired, TokenInvalid
from bsecrets.models import Confirmation
from bsecrets.observing import OperationObserver
from bsecrets.server.auth_guard import FailedAuth, record_refusal
from bsecrets.server.pass_through import label_of, remote_manager
from bsecrets.services.credentials import credentials_for
from bsecrets.services.manager import SecretsManager
from bsecrets.timeutil import parse_iso
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.policy import Grant
from bsecrets.vaultfile.session import TOKEN_PREFIX
from bsecrets.vaultfile.session import peek_principal as session_principal
from bsecrets.vaultfile.tokens import is_token_principal, principal_named_by

SESSION_PREFIX = TOKEN_PREFIX + "."
IDLE_SECONDS = 10 * 60.0  # CorePool: a token unused this long has its managers closed


def principal_named(token: str) -> str:
    """Who a credential says it is (unchecked: for the audit event of its refusal)."""
    if token.startswith(SESSION_PREFIX):
        return session_principal(token) or "unknown"
    return principal_named_by(token)


# what would unlock the vault without the request's token
NOT_FROM_THE_SERVER = (ENV_PASSPHRASE, ENV_PASSPHRASE_FILE, ENV_SESSION, ENV_KEY_FILE, ENV_AS)


def manager_for(profile: Path, environ: Mapping[str, str], token: str) -> SecretsManager:
    """A SecretsManager for ``profile`` that unlocks with ``token`` and nothing else: a
    pipeline token, or the session of a principal signed in here (server/sign_in.py).
    TokenInvalid when there is none. The caller closes it."""
    token = token.strip()
    if not token:
        raise TokenInvalid(
            "no token", hint="make one with 'bsecrets token issue -e ENV --role read'"
        )
    variables = {k: v for k, v in environ.items() if k not in NOT_FROM_THE_SERVER}
    variables[ENV_SESSION if token.startswith(SESSION_PREFIX) else ENV_TOKEN] = token
    settings = Settings.resolve(profile=str(profile), env=None, json=True, quiet=True,
                                no_color=True, environ=variables)  # fmt: skip
    return SecretsManager(load_profile_cached(profile), credentials_for(settings, None),
                          environ=settings.environ)  # fmt: skip


def principal_of(core: SecretsManager) -> str:
    """The principal ``core``'s credential opens, checked now: a pipeline token as
    ``token_principal`` checks it; a signed-in principal's session still opens (not
    expired: SessionInvalid) and names a principal the policy still has."""
    if core.creds.token is not None:
        return token_principal(core)
    vault = core.gate.require_vault("a signed-in principal")
    vault.private_key()
    principal = vault.principal
    if principal != OWNER and principal not in core.gate.policy().principals:
        raise SessionInvalid(f"principal '{principal}' was removed from the vault")
    return principal


def token_principal(core: SecretsManager) -> str:
    """The principal ``core``'s token opens, checked now: the token is well formed, of
    this vault, not revoked, opens its key, and has not expired (TokenInvalid or
    TokenExpired otherwise). What the web UI's sign-in asks before it keeps a token."""
    principal = core.creds.principal
    if core.creds.token is None or not is_token_principal(principal):
        raise TokenInvalid("this is not a pipeline token")
    core.gate.require_vault("a pipeline token").private_key()  # opens only with the token
    record = core.gate.policy().principals.get(principal)
    if record is None:
        raise TokenInvalid("this token was revoked, or was never issued by this vault")
    if record.expires_at is not None and parse_iso(record.expires_at) <= core.clock():
        raise TokenExpired(f"the token ({principal}) expired at {record.expires_at}")
    return principal


def grants_of(core: SecretsManager) -> dict[str, Grant | None]:
    """Environment -> the grant of ``core``'s principal on it (None: no access); the
    owner (signed in with its passphrase) holds every environment as an admin."""
    if core.remote_only:  # a caller's own Vault token: Vault decides each call
        remote = Grant("write", (), "vault", "")
        return dict.fromkeys(core.profile.environments, remote)
    if core.creds.principal == OWNER and core.creds.token is None:
        owner = Grant("admin", (), OWNER, "")
        return dict.fromkeys(core.profile.environments, owner)
    policy = core.gate.policy()
    principal = core.creds.principal
    return {env: policy.grant_of(env, principal) for env in core.profile.environments}


class CorePool:
    """Unlocked managers kept between requests, per token (docs/server.md, "What the
    server keeps"). A token's first request unlocks a manager with it (the token's key
    unwrapped, the vault file opened); its later requests take an idle one back, and
    each use starts as a request must: the access policy read again and checked
    (``token_principal``: a token revoked or expired since is refused at its next
    request, and its managers closed), the environment keys unsealed again, the checks
    made anew, a new audit request id.

    Keyed by the token's SHA-256 (the token itself is in the managers' credentials); at
    most ``per_token`` idle managers a token and ``max_tokens`` tokens, the least
    recently used closed first. Thread-safe: one request uses a manager at a time."""

    def __init__(
        self, profile: Path, environ: Mapping[str, str], *, per_token: int = 8,
        max_tokens: int = 64, guard: FailedAuth | None = None, stateless: bool = False,
        idle_seconds: float = IDLE_SECONDS, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.profile = profile
        self.idle_seconds = idle_seconds  # a token unused this long: its managers closed
        self._clock = clock
        self._used: dict[bytes, float] = {}  # token's SHA-256 -> when last given back
        self.stateless = stateless  # no vault file: bearers are Vault tokens (pass_through)
        self.environ = dict(environ)
        self.guard = guard or FailedAuth()
        self.per_token = per_token
        self.max_tokens = max_tokens
        # token's SHA-256 -> its idle managers, each with the profile's fingerprint
        # when it was made (a profile edited since: that manager is closed, not used)
        self._idle: OrderedDict[bytes, list[tuple[Any, SecretsManager]]] = OrderedDict()
        self._lock = threading.Lock()
        self.observers: list[OperationObserver] = []  # of each core's audit (metrics)

    @contextmanager
    def core(
        self, token: str, address: str, confirmation: Confirmation | None = None
    ) -> Iterator[tuple[SecretsManager, str]]:
        """``with pool.core(token, address) as (core, principal):`` a manager unlocked
        with ``token`` and checked now, for a client at ``address``. A refused token is
        an audit event and counts against the address (auth_guard.py): past the limit,
        429 before a token is tried, unless that token already opened a manager here
        (one client guessing does not lock out the good tokens behind the same proxy)."""
        token = token.strip()
        key = hashlib.sha256(token.encode()).digest()
        seen = fingerprint(self.profile)
        core = self._take(key, seen)
        if core is None and not self._known(key):  # a token that opened nothing yet
            self.guard.check(address)
        via = f"bsecrets serve from {address}"
        keep = False  # a manager goes back to the pool only after a request it served
        try:
            try:
                if core is None:
                    make = remote_manager if self.stateless else manager_for
                    core = make(self.profile, self.environ, token)
                    if self.observers:
                        core.audit.observers += self.observers
                core.begin_request(via, confirmation or Confirmation())
                principal = label_of(token) if self.stateless else principal_of(core)
            except (TokenInvalid, TokenExpired, SessionInvalid) as exc:
                self.drop(token)  # refused now: no manager of this token is kept
                self.refused(address, principal_named(token), exc)
                raise
            try:
                yield core, principal
            except BsecretsError:
                keep = True  # a refusal or a missing secret leaves the manager as it was
                raise
            keep = True
        finally:
            if core is not None and not (keep and self._give_back(key, seen, core)):
                core.close()

    def client_core(
        self, token: str, address: str, confirmation: Confirmation | None = None
    ) -> AbstractContextManager[tuple[SecretsManager, str]]:
        """``core`` for a bearer a client sent (the API, the UI's token form): never a
        vault session token (``bss1.``), which is the server host's own credential and
        is not taken over HTTP (a person signs in instead: server/sign_in.py)."""
        if token.strip().startswith(SESSION_PREFIX):
            refused = TokenInvalid(
                "a vault session token is not taken over HTTP",
                hint="sign in with a name and passphrase (POST /v1/sign-in, or the web UI)",
            )
            self.refused(address, "unknown", refused)
            raise refused
        return self.core(token, address, confirmation)

    def refused(self, address: str, principal: str, error: BsecretsError) -> None:
        """A credential of ``principal`` (as it names itself) refused: counted against
        ``address``, and an audit event."""
        self.guard.failed(address)
        record_refusal(self.profile, self.environ, principal, error,
                       f"bsecrets serve from {address}", self.observers)  # fmt: skip

    def _known(self, key: bytes) -> bool:
        """Whether the token of ``key`` opened a manager here (and was not refused since)."""
        with self._lock:
            return key in self._idle

    def _take(self, key: bytes, seen: Any) -> SecretsManager | None:
        """An idle manager of ``key`` made under the profile as it is now (``seen``);
        those made under an older profile are closed."""
        stale: list[SecretsManager] = []
        found: SecretsManager | None = None
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                self._idle.move_to_end(key)
                while idle and found is None:
                    made, core = idle.pop()
                    if made == seen and seen is not None:
                        found = core
                    else:
                        stale.append(core)
        for core in stale:
            core.close()
        return found

    def _give_back(self, key: bytes, seen: Any, core: SecretsManager) -> bool:
        now = self._clock()
        with self._lock:
            idle = self._idle.setdefault(key, [])
            self._idle.move_to_end(key)
            self._used[key] = now
            kept = len(idle) < self.per_token
            if kept:
                idle.append((seen, core))
            closing = self._evicted(now)
        for old in closing:
            old.close()
        return kept

    def sweep(self) -> None:
        """Close the managers of tokens unused for ``idle_seconds`` (done as requests
        come too; a caller may call it on a timer)."""
        with self._lock:
            closing = self._evicted(self._clock())
        for old in closing:
            old.close()

    def _evicted(self, now: float) -> list[SecretsManager]:
        """Under the lock: the managers of the least recently used tokens taken out, while
        there are more than ``max_tokens`` or the oldest was unused for ``idle_seconds``."""
        closing: list[SecretsManager] = []
        while self._idle:
            oldest = next(iter(self._idle))
            unused = now - self._used.get(oldest, now)
            if len(self._idle) <= self.max_tokens and unused <= self.idle_seconds:
                break
            cores = self._idle.pop(oldest)
            self._used.pop(oldest, None)
            closing.extend(core for _, core in cores)
        return closing

    def drop(self, token: str) -> None:
        """Close the idle managers of ``token`` (refused, or signed out)."""
        key = hashlib.sha256(token.strip().encode()).digest()
        with self._lock:
            idle = self._idle.pop(key, [])
            self._used.pop(key, None)
        for _, core in idle:
            core.close()

    def close(self) -> None:
        """Close every idle manager (the server stops)."""
        with self._lock:
            idle = [core for cores in self._idle.values() for _, core in cores]
            self._idle.clear()
        for core in idle:
            core.close()

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(cores) for cores in self._idle.values())
