"""Getting a principal's private key: the unlock chain of docs/cli.md.

The principal is the owner unless ``--as``/``BSECRETS_AS``, a pipeline token or a
session names another. First present wins: BSECRETS_TOKEN (a token's own wrap,
vaultfile/tokens.py), BSECRETS_KEY_FILE (a key pair made elsewhere,
vaultfile/keyfile.py), BSECRETS_SESSION, then a passphrase (BSECRETS_PASSPHRASE
or BSECRETS_PASSPHRASE_FILE), then the OS keyring where ``init --keyring``
stored a key (the owner's only), then a prompt when there is a terminal.
Otherwise: locked. A principal other than the owner gets back, sealed with its
key, its trust root: the owner's identity key (vaultfile/policy.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from bsecrets import json_codec
from bsecrets.crypto.keys import (
    KdfParams,
    aead_open,
    aead_seal,
    encode_aad,
    public_key_of,
)
from bsecrets.errors import (
    Denied,
    IntegrityError,
    KeyringUnavailable,
    NextStep,
    PrincipalUnknown,
    SessionInvalid,
    TokenInvalid,
    UsageError,
    VaultLocked,
    WrongPassphrase,
)
from bsecrets.vaultfile import session
from bsecrets.vaultfile.credentials import OWNER, Credentials

KEYRING_SERVICE = "bsecrets"

if TYPE_CHECKING:  # a Protocol costs real import time; only the type checker needs it
    from typing import Protocol

    class KeyWrapSource(Protocol):
        vault_id: bytes

        def key_wraps(self, principal: str) -> dict[str, tuple[str, bytes]]: ...

        def public_key(self, principal: str) -> bytes: ...


def _wrap_aad(vault_id: bytes, method: str, params: str, principal: str = OWNER) -> bytes:
    # "owner-key": the label of the first vaults, kept for every principal's wrap
    return encode_aad("owner-key", vault_id, principal, method, params)


def wrap_with_passphrase(
    vault_id: bytes,
    private_key: bytes,
    passphrase: str,
    *,
    principal: str = OWNER,
    payload: bytes = b"",
    params: KdfParams | None = None,
) -> tuple[str, bytes]:
    """(params, wrapped) for ``principal``'s private key under ``passphrase``; ``payload``
    (a principal's trust root: the owner's identity key) is sealed after the key.
    ``params``: the Argon2id parameters (default: fresh, the standard ones)."""
    params = params or KdfParams.new()
    params_json = json_codec.dumps(params.to_dict(), sort_keys=True)
    kek = params.derive(passphrase)
    aad = _wrap_aad(vault_id, "passphrase", params_json, principal)
    return params_json, aead_seal(kek, private_key + payload, aad)


def wrap_with_random_key(vault_id: bytes, private_key: bytes, kek: bytes) -> tuple[str, bytes]:
    params_json = json_codec.dumps({"keyring_service": KEYRING_SERVICE}, sort_keys=True)
    return params_json, aead_seal(kek, private_key, _wrap_aad(vault_id, "keyring", params_json))


def keyring_account(vault_id: bytes) -> str:
    return f"vault-{vault_id.hex()}"


def _keyring_call(what: str, fn: Callable[[], object]) -> object:
    try:
        import keyring
        import keyring.errors
    except ImportError:  # pragma: no cover - keyring is a dependency
        raise KeyringUnavailable("the 'keyring' package is not installed") from None
    try:
        return fn()
    except keyring.errors.NoKeyringError:
        raise KeyringUnavailable(f"no usable OS keyring to {what}") from None
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(
            f"the OS keyring refused to {what}: {type(exc).__name__}"
        ) from None


def keyring_set_text(account: str, value: str, what: str) -> None:
    """Store ``value`` under bsecrets/``account`` (KeyringUnavailable if there is no keyring)."""
    import keyring

    _keyring_call(what, lambda: keyring.set_password(KEYRING_SERVICE, account, value))


def keyring_get_text(account: str, what: str) -> str | None:
    import keyring

    value = _keyring_call(what, lambda: keyring.get_password(KEYRING_SERVICE, account))
    return str(value) if value else None


def keyring_store(vault_id: bytes, kek: bytes) -> None:
    import base64

    text = base64.b64encode(kek).decode()
    keyring_set_text(keyring_account(vault_id), text, "store the vault key")


def keyring_load(vault_id: bytes) -> bytes | None:
    """The vault's key from the OS keyring; None if there is no entry."""
    import base64
    import binascii

    value = keyring_get_text(keyring_account(vault_id), "read the vault key")
    if not value:
        return None
    try:
        key = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise WrongPassphrase(
            "the OS keyring holds a malformed key for this vault",
            hint=f"the entry {KEYRING_SERVICE}/{keyring_account(vault_id)} was changed; "
            "put the original back, or unlock with the passphrase if the vault has one",
        )
    return key


def unlock_principal(
    store: KeyWrapSource, creds: Credentials, now: datetime, *, allow_session: bool = True
) -> tuple[bytes, bytes]:
    """(private key, payload) of ``creds.principal``: the key checked against the stored
    public key; the payload is what was sealed after it (a principal's trust root;
    b"" for the owner)."""
    principal = creds.principal
    opened = _unlock(store, creds, now, allow_session)
    private_key, payload = opened[:32], opened[32:]
    if public_key_of(private_key) != store.public_key(principal):
        who = "owner" if principal == OWNER else f"principal '{principal}'"
        raise IntegrityError(f"the vault's {who} public key does not match its private key")
    return private_key, payload


def _unlock(store: KeyWrapSource, creds: Credentials, now: datetime, allow_session: bool) -> bytes:
    principal = creds.principal
    if creds.token is not None:  # BSECRETS_TOKEN, when set, is the credential
        return _open_token(store, creds.token, principal)
    if creds.key_file is not None:  # BSECRETS_KEY_FILE: a key pair made elsewhere
        return _open_key_file(store, creds.key_file, principal)
    if allow_session and creds.session_token:
        contents = session.open_session(creds.session_token, store.vault_id, now)
        if contents.principal != principal:
            raise SessionInvalid(
                f"the session is principal '{contents.principal}'s, not '{principal}'s"
            )
        return contents.private_key + contents.payload
    wraps = store.key_wraps(principal)
    if principal != OWNER and not wraps:
        raise PrincipalUnknown(f"principal '{principal}' does not exist in this vault")
    if "public" in wraps:
        raise VaultLocked(
            f"principal '{principal}' unlocks with its key file, and none was given",
            hint="set BSECRETS_KEY_FILE to the file made with its key pair",
        )
    if not {"passphrase", "keyring"} & set(wraps):
        raise IntegrityError("the vault has no owner key (its key wraps were removed or damaged)")
    if creds.passphrase is not None and "passphrase" in wraps:
        return _open_passphrase_wrap(
            store.vault_id, wraps["passphrase"], creds.passphrase, principal
        )
    if creds.use_keyring and "keyring" in wraps:
        try:
            return _open_keyring_wrap(store.vault_id, wraps["keyring"])
        except KeyringUnavailable as exc:
            if "passphrase" not in wraps:
                raise KeyringUnavailable(
                    exc.message, step=NextStep("unlock_where_keyring_is")
                ) from None
            if creds.prompt is None:
                raise KeyringUnavailable(
                    exc.message, hint="or unlock with the vault's passphrase: BSECRETS_PASSPHRASE"
                ) from None
            # a terminal: fall back to asking for the passphrase
    if "passphrase" not in wraps:
        raise VaultLocked(
            "the vault is locked (it opens with the OS keyring, which is not in use)",
            hint="run where the OS keyring is available, or use BSECRETS_SESSION",
        )
    if creds.prompt is None:
        raise VaultLocked("the vault is locked")
    label = "Vault passphrase: " if principal == OWNER else f"Passphrase of {principal}: "
    return _open_passphrase_wrap(
        store.vault_id, wraps["passphrase"], creds.prompt(label), principal
    )


def _open_token(store: KeyWrapSource, token: str, principal: str) -> bytes:
    from bsecrets.vaultfile import tokens  # a seam: only a token loads its module

    parts = tokens.parse(token)
    tokens.check_vault(parts, store.vault_id)
    if principal != tokens.principal_of(parts.token_id):
        raise TokenInvalid(
            f"BSECRETS_TOKEN is not principal '{principal}'s", step=NextStep("drop_as")
        )
    wrap = store.key_wraps(principal).get("token")
    if wrap is None:
        raise TokenInvalid("BSECRETS_TOKEN was revoked, or was never issued by this vault")
    return tokens.open_wrap(store.vault_id, parts, wrap)


def _open_key_file(store: KeyWrapSource, path: str, principal: str) -> bytes:
    from pathlib import Path

    from bsecrets.vaultfile import keyfile  # a seam: only a key file loads its module

    if principal == OWNER:
        raise UsageError(
            "a key file unlocks the principal it was added as", step=NextStep("name_principal")
        )
    key_file = keyfile.read_key_file(Path(path))
    wrap = store.key_wraps(principal).get("public")
    if wrap is None:
        raise PrincipalUnknown(f"principal '{principal}' was not added with a public key")
    try:
        root = bytes.fromhex(json_codec.loads(wrap[0])["trust_root"])
    except (ValueError, KeyError, TypeError):
        root = b""
    if len(root) != 32:
        raise IntegrityError(f"principal '{principal}''s trust root is damaged")
    if public_key_of(key_file.private_key) != store.public_key(principal):
        raise Denied(
            f"BSECRETS_KEY_FILE is not principal '{principal}''s key",
            hint="give the key file whose .pub was added for it",
        )
    keyfile.pin_trust_root(key_file, store.vault_id, root)  # on first use; else compared
    return key_file.private_key + root


def _open_keyring_wrap(vault_id: bytes, wrap: tuple[str, bytes]) -> bytes:
    params, wrapped = wrap
    kek = keyring_load(vault_id)
    if kek is None:
        raise KeyringUnavailable("the OS keyring has no key for this vault")
    try:
        return aead_open(kek, wrapped, _wrap_aad(vault_id, "keyring", params), "key")
    except IntegrityError:
        raise WrongPassphrase(
            "the key in the OS keyring does not open this vault",
            hint=f"the entry {KEYRING_SERVICE}/{keyring_account(vault_id)} was changed; "
            "put the original back, or unlock with the passphrase if the vault has one",
        ) from None


def _open_passphrase_wrap(
    vault_id: bytes, wrap: tuple[str, bytes], passphrase: str, principal: str = OWNER
) -> bytes:
    params_json, wrapped = wrap
    try:
        data = json_codec.loads(params_json)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        params = KdfParams.from_dict(data)
    except ValueError:
        raise IntegrityError("the vault's key derivation parameters are malformed") from None
    kek = params.derive(passphrase)
    try:
        return aead_open(
            kek, wrapped, _wrap_aad(vault_id, "passphrase", params_json, principal), "key"
        )
    except IntegrityError:
        raise WrongPassphrase("wrong passphrase") from None
