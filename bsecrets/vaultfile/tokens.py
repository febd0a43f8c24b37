"""Pipeline tokens: a machine principal whose private key a token opens.

Token: ``bst1.<vault>.<id>.<secret>``: the first 16 hex digits of the vault id
(a token of another vault is refused before anything is tried), a 12-hex-digit
id (the principal is ``token-<id>``), and 32 random bytes (base64url). The
principal's private key, with the owner's identity key (its trust root), is
sealed under AES-256-GCM with a key derived from the secret by HKDF (the secret
is 256 random bits: no password stretching is needed), with the vault id, the
principal and the parameters as associated data, in ``key_wraps`` (method
``token``). The token itself is stored nowhere: it is printed once.
"""

from __future__ import annotations

import base64
import json
import os
import re

from bsecrets.crypto.keys import aead_open, aead_seal, encode_aad, hkdf
from bsecrets.errors import IntegrityError, TokenInvalid
from bsecrets.named_tuples import NamedTuple

TOKEN_PREFIX = "bst1"
_TOKEN = re.compile(r"bst1\.([0-9a-f]{16})\.([0-9a-f]{12})\.([A-Za-z0-9_-]{43})")
TOKEN_PRINCIPAL = "token-"


class TokenParts(NamedTuple):
    vault_prefix: str
    token_id: str
    secret: bytes

    def __repr__(self) -> str:  # never the secret
        return f"TokenParts(token_id={self.token_id!r})"


def principal_of(token_id: str) -> str:
    return f"{TOKEN_PRINCIPAL}{token_id}"


def is_token_principal(principal: str) -> bool:
    return principal.startswith(TOKEN_PRINCIPAL)


def principal_named_by(token: str) -> str:
    """The principal a token names; a malformed one names ``token-`` (and is refused,
    saying so, when the vault is unlocked with it)."""
    found = _TOKEN.fullmatch(token.strip())
    return principal_of(found.group(2) if found else "")


def parse(token: str) -> TokenParts:
    """The parts of a token, or TokenInvalid (exit 4) naming no part of it."""
    found = _TOKEN.fullmatch(token.strip())
    if found is None:
        raise TokenInvalid("BSECRETS_TOKEN is not a bsecrets token")
    secret = base64.urlsafe_b64decode(found.group(3) + "=")
    return TokenParts(found.group(1), found.group(2), secret)


def check_vault(parts: TokenParts, vault_id: bytes) -> None:
    if parts.vault_prefix != vault_id.hex()[:16]:
        raise TokenInvalid("BSECRETS_TOKEN belongs to another vault")


def new_token(vault_id: bytes) -> tuple[str, TokenParts]:
    """A fresh token for this vault and its parts."""
    parts = TokenParts(vault_id.hex()[:16], os.urandom(6).hex(), os.urandom(32))
    secret = base64.urlsafe_b64encode(parts.secret).rstrip(b"=").decode()
    return f"{TOKEN_PREFIX}.{parts.vault_prefix}.{parts.token_id}.{secret}", parts


def _kek(parts: TokenParts, vault_id: bytes) -> bytes:
    return hkdf(parts.secret, "bsecrets/v1/token-wrap", salt=vault_id)


def _aad(vault_id: bytes, principal: str, params: str) -> bytes:
    return encode_aad("token-key", vault_id, principal, "token", params)


def wrap(vault_id: bytes, parts: TokenParts, sealed: bytes) -> tuple[str, bytes]:
    """(params, wrapped) of ``sealed`` (private key and trust root) under the token."""
    params = json.dumps({"token_id": parts.token_id}, sort_keys=True)
    principal = principal_of(parts.token_id)
    return params, aead_seal(_kek(parts, vault_id), sealed, _aad(vault_id, principal, params))


def open_wrap(vault_id: bytes, parts: TokenParts, wrap_row: tuple[str, bytes]) -> bytes:
    """What :func:`wrap` sealed, or TokenInvalid (exit 4): the token does not open it."""
    params, wrapped = wrap_row
    principal = principal_of(parts.token_id)
    try:
        return aead_open(_kek(parts, vault_id), wrapped, _aad(vault_id, principal, params), "token")
    except IntegrityError:
        raise TokenInvalid("BSECRETS_TOKEN does not open this vault's token") from None
