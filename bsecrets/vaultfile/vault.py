"""The local vault: a vault file plus the key of the principal that unlocks it,
handing out environments.

Creating a vault makes the owner's X25519 key pair and wraps the private key
by a passphrase (Argon2id) and/or a random key kept in the OS keyring. Each
environment's 256-bit master key is created (by the owner) on first write,
sealed to the owner with authenticated sealing, so no one without the owner's
key can plant an environment key whose value they know. A grant seals it to
another principal too (services/principals.py); that principal accepts it only
from a sender whose public key the verified access policy states
(``key_directory``), and a revoke replaces it (``replace_env_key``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from bsecrets.crypto.keys import (
    EnvironmentKeys,
    encode_aad,
    generate_private_key,
    public_key_of,
    seal_to,
    unseal,
)
from bsecrets.errors import (
    AccessDenied,
    Denied,
    IntegrityError,
    NextStep,
    PrincipalUnknown,
    SessionInvalid,
    UsageError,
)
from bsecrets.files import StrPath
from bsecrets.timeutil import Clock, iso
from bsecrets.vaultfile.credentials import OWNER, Credentials
from bsecrets.vaultfile.manifest import Manifest
from bsecrets.vaultfile.session import open_session
from bsecrets.vaultfile.store import VaultStore


def _unlock(
    store: VaultStore, creds: Credentials, now: datetime, *, allow_session: bool = True
) -> tuple[bytes, bytes]:
    """vaultfile/unlock.py's unlock_principal, the module loaded here: a command in a
    session never unlocks a principal's key (the session holds the keys), so it does
    without the module (~0.15 ms)."""
    from bsecrets.vaultfile.unlock import unlock_principal

    return unlock_principal(store, creds, now, allow_session=allow_session)


def _env_key_context(vault_id: bytes, env: str, recipient: str, sender: str) -> bytes:
    return encode_aad("env-key", vault_id, env, recipient, sender)


if TYPE_CHECKING:  # for the type checker only: a Protocol class costs a command ~0.1 ms
    from datetime import datetime

    class ManifestWitness(Protocol):
        """Checks an environment's manifest against a record kept apart from it (the audit
        chain: audit/witness.py) before a read or a write uses it."""

        def check(self, env: str, current: tuple[int, bytes] | None) -> None:
            """``current``: (generation, MAC) as stored; None if the environment is absent.
            Raises IntegrityError when they disagree."""


class LocalVault:
    """An open vault file and the means to unlock it. One per process."""

    def __init__(self, store: VaultStore, creds: Credentials, clock: Clock) -> None:
        self.store = store
        self._creds = creds
        self._clock = clock
        # who unlocks: --as / BSECRETS_AS, else the session's principal, else the owner
        self.principal = creds.principal
        self._payload = b""  # sealed after a principal's private key: its trust root
        # The public key of a principal who sealed a key to this one, as the verified
        # access policy states it (set by services/access.py); None: not known.
        self.key_directory: Callable[[str], bytes | None] | None = None
        self._private_key: bytes | None = None
        # The owner public key as the unlock proved it: derived from the private key,
        # or carried by the session. Keys are sealed and unsealed with this one only.
        self._owner_public: bytes | None = None
        self._masters: dict[str, bytes] | None = None  # from the session, if any
        # a break-glass session's (request id, environment, mode): services/break_glass.py
        self.emergency: tuple[str, str, str] | None = None
        self._unsealed: dict[str, bytes] = {}
        self._created: dict[str, bytes] = {}  # masters made in a transaction still open
        self._env_keys: dict[str, EnvironmentKeys] = {}
        self._kept: dict[str, bytes] = {}  # unsealed before forget_env_keys: checked first
        # Set by the audit log: checks each manifest against the audit chain.
        self.witness: ManifestWitness | None = None

    @property
    def vault_id(self) -> bytes:
        return self.store.vault_id

    @classmethod
    def open(cls, path: StrPath, creds: Credentials, clock: Clock) -> LocalVault:
        return cls(VaultStore.open(path), creds, clock)

    @classmethod
    def create(
        cls,
        path: StrPath,
        creds: Credentials,
        clock: Clock,
        *,
        passphrase: str | None,
        use_keyring: bool,
        fill: Callable[[LocalVault], None] | None = None,
    ) -> LocalVault:
        """A new vault at ``path``, open. FileExistsError if ``path`` exists (also
        when another process put a vault there meanwhile: it is never replaced).

        The vault is built in a temporary file beside ``path`` and moved into place
        only when complete (VaultStore.create / install): a kill leaves either no
        vault or a whole one. ``fill`` runs on the new vault before that, so what it
        writes (``init``: the environments' keys and the first audit event) is part
        of the vault from its first moment. The keyring key, if any, is stored just
        before the move: a kill after it leaves an unused keyring entry, never a
        vault whose key is missing.
        """
        if passphrase is None and not use_keyring:
            raise UsageError("a new vault needs a passphrase or --keyring")
        from bsecrets.vaultfile.unlock import (  # the seam: see _unlock
            keyring_store,
            wrap_with_passphrase,
            wrap_with_random_key,
        )

        vault_id = os.urandom(16)
        private_key = generate_private_key()
        now = iso(clock())
        wraps = []
        if passphrase is not None:
            wraps.append(("passphrase", *wrap_with_passphrase(vault_id, private_key, passphrase)))
        kek = None
        if use_keyring:
            kek = os.urandom(32)
            wraps.append(("keyring", *wrap_with_random_key(vault_id, private_key, kek)))
        store = VaultStore.create(path, vault_id, now)
        try:
            with store.write():
                store.add_principal(OWNER, public_key_of(private_key), now)
                for method, params, wrapped in wraps:
                    store.set_key_wrap(OWNER, method, params, wrapped)
            vault = cls(store, creds, clock)
            vault._private_key = private_key
            if fill is not None:
                fill(vault)
            if kek is not None:
                keyring_store(vault_id, kek)
            store.install()
        except BaseException:
            store.discard()
            raise
        return vault

    def close(self) -> None:
        self.store.close()

    # --- keys ------------------------------------------------------------

    def _session_masters(self) -> dict[str, bytes]:
        """Environment keys carried by BSECRETS_SESSION. Opening it also gives the owner
        key and the owner public key the unlock proved; the vault file's principal row
        must still match that public key (someone who can write the file but holds no
        key could otherwise swap in their own and plant environment keys)."""
        if self._masters is None:
            if self._creds.session_token:
                contents = open_session(self._creds.session_token, self.vault_id, self._clock())
                if contents.principal != self.principal:
                    raise SessionInvalid(
                        f"the session is principal '{contents.principal}'s, "
                        f"not '{self.principal}'s",
                        hint="unset BSECRETS_AS, or unlock as that principal",
                    )
                self._check_owner_row(contents.owner_public)
                self._private_key = contents.private_key
                self._payload = contents.payload
                self._owner_public = contents.owner_public
                self._masters = contents.env_masters
                self.emergency = contents.emergency
            else:
                self._masters = {}
        return self._masters

    def _check_owner_row(self, proven: bytes) -> None:
        """The principal's row must hold the public key the unlock proved."""
        if self.principal != OWNER and not self.store.has_principal(self.principal):
            raise PrincipalUnknown(
                f"principal '{self.principal}' does not exist in this vault (removed?)"
            )
        if self.store.public_key(self.principal) != proven:
            raise IntegrityError(
                "the vault's owner public key does not match the key that unlocked it "
                "(the vault file was changed outside bsecrets)",
                hint="restore the vault file from a backup",
                step=NextStep("verify_audit_log_for_other_changes"),
            )

    def owner_public_key(self) -> bytes:
        """The unlocking principal's public key as the unlock proved it (never the file's
        alone): the owner's, unless unlocked as another principal."""
        if self._owner_public is None:
            private_key = self.private_key()
            if self._owner_public is None:
                self._owner_public = public_key_of(private_key)
        return self._owner_public

    def emergency_grant(self) -> tuple[str, str, str] | None:
        """The break-glass grant the session carries, if any (request id, env, mode)."""
        self._session_masters()
        return self.emergency

    def env_masters(self) -> dict[str, bytes]:
        """Every environment's master key (for sealing into a new session)."""
        masters = {}
        for env in self.store.environments_of(self.principal):
            self.env_keys(env)
            masters[env] = self._unsealed[env]
        return masters

    def private_key(self, *, allow_session: bool = True) -> bytes:
        if allow_session and self._creds.session_token:
            self._session_masters()
        if self._private_key is None:
            # unlock_principal checks the private key against the principal's row
            self._private_key, self._payload = _unlock(
                self.store, self._creds, self._clock(), allow_session=allow_session
            )
        return self._private_key

    def session_payload(self) -> bytes:
        """What a session seals after the private key: the principal's trust root."""
        self.private_key()
        return self._payload

    def trust_root(self) -> bytes:
        """A principal's trust root: the owner's identity key, sealed with its
        private key when it was added (vaultfile/policy.py checks every policy with it)."""
        self.private_key()
        if len(self._payload) != 32:
            raise IntegrityError(
                f"principal '{self.principal}' has no trust root in its key wrap "
                "(the vault file was changed outside bsecrets)"
            )
        return self._payload

    def can_unlock_quietly(self) -> bool:
        """Whether the principal's key is available without a prompt (session, passphrase,
        keyring); not for a principal the vault does not know."""
        if self._private_key is not None:
            return True
        try:
            self._private_key, self._payload = _unlock(
                self.store, self._creds._replace(prompt=None), self._clock()
            )
        except (Denied, PrincipalUnknown):
            return False
        return True

    def env_keys(self, env: str, *, create: bool = False) -> EnvironmentKeys | None:
        """The environment's keys; None if it has none yet and ``create`` is false.

        With ``create``, the caller must hold the write transaction: the key and
        the environment's empty manifest are added in it.
        """
        if env in self._env_keys:
            return self._env_keys[env]
        for held in (self._kept.pop(env, None), self._session_masters().get(env)):
            if held is None:
                continue
            keys = EnvironmentKeys.from_master(held)
            if self._opens_manifest(env, keys):
                self._unsealed[env] = held
                self._env_keys[env] = keys
                return keys
            # re-keyed since it was unsealed (access revoke): the file's sealed copy
        sealed = self.store.sealed_env_key(env, self.principal)
        if sealed is None:
            if self.principal != OWNER:
                if not create and self.store.manifest(env) is None:
                    return None
                raise AccessDenied(
                    f"principal '{self.principal}' holds no key to environment '{env}'",
                    hint="ask the vault's owner for a grant",
                )
            if self.store.manifest(env) is not None:
                raise IntegrityError(f"the key of environment '{env}' was removed from the vault")
            if not create:
                return None
            master = os.urandom(32)
            context = _env_key_context(self.vault_id, env, OWNER, OWNER)
            blob = seal_to(self.private_key(), self.owner_public_key(), master, context)
            self.store.add_env_key(env, OWNER, OWNER, blob)
            self._created[env] = master
            keys = EnvironmentKeys.from_master(master)
            empty = Manifest.empty(env)
            self.store.set_manifest(
                env, empty.generation, empty.buckets, empty.mac(keys.manifest_key, self.vault_id)
            )
            return keys  # not cached: the transaction that adds it may still roll back
        else:
            master = self._unseal_env_key(env, sealed)
            keys = EnvironmentKeys.from_master(master)
        self._unsealed[env] = master
        self._env_keys[env] = keys
        return keys

    def forget_env_keys(self) -> None:
        """A handle kept across requests (the server): each environment key is checked
        again when next asked, against the environment's manifest as the file has it
        now, and unsealed again from the file when it no longer opens it (re-keyed
        since, as a revoke does)."""
        self._kept.update(self._unsealed)
        self._env_keys.clear()
        self._unsealed.clear()

    def env_master(self, env: str, *, create: bool = False) -> bytes | None:
        """The 256-bit master key of ``env`` (for keys derived beyond the three of
        EnvironmentKeys: the access policy's signing key); as :meth:`env_keys`."""
        if self.env_keys(env, create=create) is None:
            return None
        return self._unsealed.get(env) or self._created[env]

    def master_opens(self, env: str, keys: EnvironmentKeys) -> bool:
        """Whether ``keys`` are ``env``'s current ones (break-glass: an emergency copy of
        the key from before a re-key is not)."""
        return self._opens_manifest(env, keys)

    def _opens_manifest(self, env: str, keys: EnvironmentKeys) -> bool:
        """Whether ``keys`` authenticate ``env``'s manifest (or it has none): a session's
        copy of a key that a revoke has since replaced does not."""
        stored = self.store.manifest(env)
        if stored is None:
            return True
        try:
            Manifest.verified(env, stored, keys.manifest_key, self.vault_id)
        except IntegrityError:
            return False
        return True

    def _sender_public(self, env: str, sender: str) -> bytes:
        """The public key of whoever sealed a key to this principal: its own as the unlock
        proved it, else the one the verified access policy states (never the file's
        principal row alone: a key sealed by anyone else fails, exit 5)."""
        if sender == self.principal:
            return self.owner_public_key()
        known = self.key_directory(sender) if self.key_directory is not None else None
        if known is None:
            raise IntegrityError(f"the key of environment '{env}' was sealed by {sender!r}")
        return known

    def _unseal_env_key(self, env: str, sealed: tuple[str, bytes]) -> bytes:
        """The master key of ``env`` from its copy sealed in the file."""
        sender, blob = sealed
        public = self._sender_public(env, sender)
        context = _env_key_context(self.vault_id, env, self.principal, sender)
        return unseal(self.private_key(), public, blob, context, f"the key of '{env}'")

    def seal_env_key_to(self, env: str, recipient: str, public_key: bytes, master: bytes) -> None:
        """Inside a write transaction: ``master`` (``env``'s) sealed to ``recipient``, by
        this principal (a grant)."""
        context = _env_key_context(self.vault_id, env, recipient, self.principal)
        blob = seal_to(self.private_key(), public_key, master, context)
        self.store.set_env_key(env, recipient, self.principal, blob)

    def replace_env_key(self, env: str, master: bytes, recipients: dict[str, bytes]) -> None:
        """Inside a write transaction: ``env``'s key is now ``master`` (a re-key), sealed to
        this principal and to ``recipients`` (name -> public key) only."""
        self.store.drop_env_keys(env)
        self.seal_env_key_to(env, self.principal, self.owner_public_key(), master)
        for name, public_key in sorted(recipients.items()):
            self.seal_env_key_to(env, name, public_key, master)
        self._unsealed[env] = master
        self._env_keys[env] = EnvironmentKeys.from_master(master)

    def check_env_key(self, env: str) -> None:
        """``bsecrets verify``: the key of ``env`` sealed in the file opens with the owner
        key the unlock proved, and is the key in use (under a session, the session's
        own copy: commands in a session never read the file's). IntegrityError if not."""
        if self.env_keys(env) is None:
            return  # neither a key nor a manifest: nothing to check
        sealed = self.store.sealed_env_key(env, self.principal)
        if sealed is None:
            raise IntegrityError(f"the key of environment '{env}' was removed from the vault")
        if self._unseal_env_key(env, sealed) != self._unsealed[env]:
            raise IntegrityError(
                f"the key of environment '{env}' in the vault file is not the one "
                "the session carries"
            )
