"""Sessions: ``unlock`` decrypts the owner key once and seals it in a session
file under a random key that only the printed token carries.

Token: ``bss1.<session id>.<key>``. The file (user runtime folder, 0600) holds
the vault id, the expiry, the owner's public key and the owner key sealed with
AES-256-GCM under the token's key, with the id, vault, owner public key and
expiry as associated data: the file alone reveals nothing, the token alone
opens nothing, a changed expiry or public key fails authentication, and
``lock`` deletes the file.

The session is bound to the owner public key that the unlock proved: the
vault compares it with the vault file's principal row (a file whose owner key
was replaced is refused, exit 5) and seals and unseals environment keys with
it, never with a public key read from the file alone.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timedelta

from bsecrets import json_codec
from bsecrets.crypto.keys import aead_open, aead_seal, encode_aad
from bsecrets.errors import BsecretsError, IntegrityError, NextStep, SessionInvalid, UsageError
from bsecrets.files import (
    check_private_file,
    check_trusted_dirs,
    ensure_private_dir,
    tidy,
    write_private_file,
)
from bsecrets.health import HealthIndicator
from bsecrets.named_tuples import NamedTuple
from bsecrets.timeutil import iso, parse_iso

TOKEN_PREFIX = "bss1"
MAX_TTL = timedelta(days=7)


def session_path() -> str:
    """Where ``session_dir`` looks, without its trust check (``bsecrets doctor`` names
    that folder, and mends its permissions)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        base = runtime
    elif os.path.isdir(f"/run/user/{os.getuid()}"):
        base = f"/run/user/{os.getuid()}"
    else:
        import tempfile  # only here: its import costs every command ~10 ms (#20)

        base = os.path.join(tempfile.gettempdir(), f"bsecrets-{os.getuid()}")
    return tidy(os.path.join(base, "bsecrets", "sessions"))


def session_dir() -> str:
    """The folder of session files: ``$XDG_RUNTIME_DIR``, else ``/run/user/UID``,
    else ``bsecrets-UID`` in the temp folder, then ``bsecrets/sessions``.

    Raises InsecureFile (exit 4) when a folder on that path that exists could
    be changed by someone else (bsecrets.files.check_trusted_dirs): a
    ``/tmp/bsecrets-UID`` made beforehand by another user, or left 0777, is
    refused, while ``/tmp`` itself (root's, sticky) is fine.
    """
    directory = session_path()
    check_trusted_dirs(directory, what="session folder")
    return directory


class Session(NamedTuple):
    token: str
    session_id: str
    expires_at: datetime


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")


_URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIXES = {char: value for value, char in enumerate(_URLSAFE)}


def _b64(data: bytes) -> str:
    """``base64.urlsafe_b64encode`` without the padding (tests/test_session_token_encoding).
    binascii, not base64 (its import costs ~0.5 ms): only unlock writes a session."""
    import binascii

    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """``base64.urlsafe_b64decode`` of ``text`` padded: the same bytes and ValueErrors.

    Text of the URL-safe alphabet only, as :func:`_b64` writes it, is decoded here, six
    bits a character, the bits that do not make a byte dropped (as binascii does): every
    command reads a session, and binascii is an extension module here, ~0.6 ms to load.
    Anything else (padding, other characters, a length binascii refuses) goes to
    binascii, for its bytes or its error."""
    if len(text) % 4 == 1 or text.strip(_URLSAFE):
        import binascii

        return binascii.a2b_base64((text + "=" * (-len(text) % 4)).translate(_FROM_URLSAFE))
    number = 0
    for char in text:
        number = number << 6 | _SIXES[char]
    bits = len(text) * 6
    return (number >> bits % 8).to_bytes(bits // 8, "big")


def _aad(
    session_id: str, vault_id: bytes, owner_public: bytes, principal: str, expires_at: str
) -> bytes:
    return encode_aad("session/v2", session_id, vault_id, owner_public, principal, expires_at)


class SessionContents(NamedTuple):
    private_key: bytes
    # The public key the unlock checked the private key against (the owner's, or the
    # principal's); the vault compares it with its principal row, so no X25519 is
    # needed to check it.
    owner_public: bytes
    # Environment master keys unsealed at unlock time, so that a command in the
    # session needs no X25519 (whose OpenSSL backend import alone costs ~6 ms).
    env_masters: dict[str, bytes]
    principal: str = "owner"
    payload: bytes = b""  # what was sealed after the private key (a trust root)
    # a break-glass session: (request id, environment, "read" or "write"), bound to the
    # environment key's associated data so that it cannot be edited in the file
    emergency: tuple[str, str, str] | None = None

    def __repr__(self) -> str:
        return f"SessionContents(envs={sorted(self.env_masters)})"


def start(
    vault_id: bytes,
    private_key: bytes,
    owner_public: bytes,
    ttl: timedelta,
    now: datetime,
    env_masters: dict[str, bytes] | None = None,
    *,
    principal: str = "owner",
    payload: bytes = b"",
    emergency: tuple[str, str, str] | None = None,
) -> Session:
    if ttl > MAX_TTL:
        raise UsageError("a session lasts at most 7 days", step=NextStep("shorten_session"))
    session_id = os.urandom(12).hex()
    key = os.urandom(32)
    expires = iso(now + ttl)

    def aad(role: str) -> bytes:
        return _aad(session_id, vault_id, owner_public, role, expires)

    body = {
        "vault_id": vault_id.hex(),
        "principal": principal,
        "owner_public": owner_public.hex(),
        "expires_at": expires,
        "sealed": _b64(aead_seal(key, private_key + payload, aad(_key_role(principal)))),
        "envs": {
            env: _b64(aead_seal(key, master, aad(_env_role(env, emergency))))
            for env, master in (env_masters or {}).items()
        },
    }
    if emergency is not None:
        body["emergency"] = list(emergency)
    directory = session_dir()
    ensure_private_dir(directory)
    write_private_file(
        _file(directory, session_id), json_codec.dumps(body).encode(), exclusive=True
    )
    return Session(f"{TOKEN_PREFIX}.{session_id}.{_b64(key)}", session_id, parse_iso(expires))


def _env_role(env: str, emergency: tuple[str, str, str] | None) -> str:
    """An environment key's role in the associated data; a break-glass session's key of
    the emergency environment also binds the request and the mode."""
    if emergency is not None and emergency[1] == env:
        return f"emergency:{emergency[0]}:{env}:{emergency[2]}"
    return f"env:{env}"


def _key_role(principal: str) -> str:
    """The private key's role in the associated data: binds the principal's name."""
    return "owner" if principal == "owner" else f"principal:{principal}"


def peek_principal(token: str) -> str | None:
    """The principal a session file names (unauthenticated: the vault checks it when it
    opens the session); None when the token or the file is unusable."""
    try:
        session_id, _ = _parse_token(token)
        body = json_codec.loads(_read(_file(session_dir(), session_id)))
        principal = body.get("principal", "owner")
    except (BsecretsError, OSError, ValueError, AttributeError):
        return None
    return principal if isinstance(principal, str) else None


def _file(directory: str, session_id: str) -> str:
    return os.path.join(directory, f"{session_id}.json")


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _parse_token(token: str) -> tuple[str, bytes]:
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or len(parts[1]) != 24:
        raise SessionInvalid("BSECRETS_SESSION is not a bsecrets session token")
    try:
        int(parts[1], 16)
        key = _unb64(parts[2])
    except ValueError:
        raise SessionInvalid("BSECRETS_SESSION is not a bsecrets session token") from None
    if len(key) != 32:
        raise SessionInvalid("BSECRETS_SESSION is not a bsecrets session token")
    return parts[1], key


def open_session(token: str, vault_id: bytes, now: datetime) -> SessionContents:
    """The keys the session holds, or SessionInvalid (exit 4)."""
    session_id, key = _parse_token(token)
    path = _file(session_dir(), session_id)
    check_private_file(path)
    try:
        body = json_codec.loads(_read(path))
        expires = str(body["expires_at"])
        sealed = _unb64(str(body["sealed"]))
        file_vault = bytes.fromhex(str(body["vault_id"]))
        owner_public = bytes.fromhex(str(body["owner_public"]))
        principal = str(body.get("principal", "owner"))
        sealed_envs = {str(env): _unb64(str(blob)) for env, blob in body.get("envs", {}).items()}
        marked = body.get("emergency")
        emergency = None if marked is None else (str(marked[0]), str(marked[1]), str(marked[2]))
    except FileNotFoundError:
        raise SessionInvalid("the session has ended (locked, expired or never started)") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise SessionInvalid("the session file is unreadable") from None
    if file_vault != vault_id:
        raise SessionInvalid("the session belongs to another vault")
    try:
        opened = aead_open(
            key,
            sealed,
            _aad(session_id, vault_id, owner_public, _key_role(principal), expires),
            "session",
        )
        masters = {
            env: aead_open(
                key,
                blob,
                _aad(session_id, vault_id, owner_public, _env_role(env, emergency), expires),
                "session",
            )
            for env, blob in sealed_envs.items()
        }
    except IntegrityError:
        raise SessionInvalid("the session token is not valid for this session") from None
    if now >= parse_iso(expires):
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise SessionInvalid(f"the session expired at {expires}")
    if emergency is not None and emergency[1] not in masters:
        raise SessionInvalid("the session file is unreadable")
    return SessionContents(opened[:32], owner_public, masters, principal, opened[32:], emergency)


def end(token: str | None, vault_id: bytes) -> int:
    """Delete the token's session, or (no token) every session of this vault. Returns the count."""
    directory = session_dir()
    if token:
        session_id, _ = _parse_token(token)
        paths = [_file(directory, session_id)]
    else:
        try:
            names = os.listdir(directory)
        except OSError:  # no session folder (yet), or not one we may read
            names = []
        paths = sorted(os.path.join(directory, n) for n in names if n.endswith(".json"))
    ended = 0
    for path in paths:
        try:
            if not token and json_codec.loads(_read(path)).get("vault_id") != vault_id.hex():
                continue
            os.unlink(path)
            ended += 1
        except (OSError, ValueError):
            continue
    return ended


def indicator(token: str | None, vault_id: bytes, now: datetime) -> HealthIndicator:
    """Whether BSECRETS_SESSION (if set) still opens the vault ``vault_id``; never
    unlocks otherwise (the status's ``session`` indicator)."""
    if not token:
        return HealthIndicator("session", True, "none (BSECRETS_SESSION is not set)")
    try:
        open_session(token, vault_id, now)
    except BsecretsError as exc:
        return HealthIndicator("session", False, exc.message)
    return HealthIndicator("session", True, "unlocked")
