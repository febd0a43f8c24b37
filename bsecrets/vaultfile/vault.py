"""The local vault: a vault file plus its owner's key, handing out environments.

Creating a vault makes the owner's X25519 key pair and wraps the private key
by a passphrase (Argon2id) and/or a random key kept in the OS keyring. Each
environment's 256-bit master key is created on first write, sealed to the
owner with authenticated sealing, so no one without the owner's key can plant
an environment key whose value they know.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from bsecrets.crypto.keys import (
    EnvironmentKeys,
    encode_aad,
    generate_private_key,
    public_key_of,
    seal_to,
    unseal,
)
from bsecrets.errors import Denied, IntegrityError, NextStep, UsageError
from bsecrets.timeutil import Clock, iso
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.manifest import Manifest
from bsecrets.vaultfile.session import open_session
from bsecrets.vaultfile.store import VaultStore
from bsecrets.vaultfile.unlock import (
    OWNER,
    keyring_store,
    unlock_owner,
    wrap_with_passphrase,
    wrap_with_random_key,
)


def _env_key_context(vault_id: bytes, env: str, recipient: str, sender: str) -> bytes:
    return encode_aad("env-key", vault_id, env, recipient, sender)


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
        self._private_key: bytes | None = None
        # The owner public key as the unlock proved it: derived from the private key,
        # or carried by the session. Keys are sealed and unsealed with this one only.
        self._owner_public: bytes | None = None
        self._masters: dict[str, bytes] | None = None  # from the session, if any
        self._unsealed: dict[str, bytes] = {}
        self._env_keys: dict[str, EnvironmentKeys] = {}
        # Set by the audit log: checks each manifest against the audit chain.
        self.witness: ManifestWitness | None = None

    @property
    def vault_id(self) -> bytes:
        return self.store.vault_id

    @classmethod
    def open(cls, path: Path, creds: Credentials, clock: Clock) -> LocalVault:
        return cls(VaultStore.open(path), creds, clock)

    @classmethod
    def create(
        cls,
        path: Path,
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
                self._check_owner_row(contents.owner_public)
                self._private_key = contents.private_key
                self._owner_public = contents.owner_public
                self._masters = contents.env_masters
            else:
                self._masters = {}
        return self._masters

    def _check_owner_row(self, proven: bytes) -> None:
        """The principal row of the owner must hold the public key the unlock proved."""
        if self.store.public_key(OWNER) != proven:
            raise IntegrityError(
                "the vault's owner public key does not match the key that unlocked it "
                "(the vault file was changed outside bsecrets)",
                hint="restore the vault file from a backup",
                step=NextStep("verify_audit_log_for_other_changes"),
            )

    def owner_public_key(self) -> bytes:
        """The owner's public key as the unlock proved it (never the file's alone)."""
        if self._owner_public is None:
            private_key = self.private_key()
            if self._owner_public is None:
                self._owner_public = public_key_of(private_key)
        return self._owner_public

    def env_masters(self) -> dict[str, bytes]:
        """Every environment's master key (for sealing into a new session)."""
        masters = {}
        for env in self.store.environments():
            self.env_keys(env)
            masters[env] = self._unsealed[env]
        return masters

    def private_key(self, *, allow_session: bool = True) -> bytes:
        if allow_session and self._creds.session_token:
            self._session_masters()
        if self._private_key is None:
            # unlock_owner checks the private key against the owner's principal row
            self._private_key = unlock_owner(
                self.store, self._creds, self._clock(), allow_session=allow_session
            )
        return self._private_key

    def can_unlock_quietly(self) -> bool:
        """Whether the owner key is available without a prompt (session, passphrase, keyring)."""
        if self._private_key is not None:
            return True

        try:
            self._private_key = unlock_owner(
                self.store, self._creds._replace(prompt=None), self._clock()
            )
        except Denied:
            return False
        return True

    def env_keys(self, env: str, *, create: bool = False) -> EnvironmentKeys | None:
        """The environment's keys; None if it has none yet and ``create`` is false.

        With ``create``, the caller must hold the write transaction: the key and
        the environment's empty manifest are added in it.
        """
        if env in self._env_keys:
            return self._env_keys[env]
        from_session = self._session_masters().get(env)
        if from_session is not None:
            self._unsealed[env] = from_session
            self._env_keys[env] = EnvironmentKeys.from_master(from_session)
            return self._env_keys[env]
        sealed = self.store.sealed_env_key(env, OWNER)
        if sealed is None:
            if self.store.manifest(env) is not None:
                raise IntegrityError(f"the key of environment '{env}' was removed from the vault")
            if not create:
                return None
            master = os.urandom(32)
            context = _env_key_context(self.vault_id, env, OWNER, OWNER)
            blob = seal_to(self.private_key(), self.owner_public_key(), master, context)
            self.store.add_env_key(env, OWNER, OWNER, blob)
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

    def _unseal_env_key(self, env: str, sealed: tuple[str, bytes]) -> bytes:
        """The master key of ``env`` from its copy sealed in the file."""
        sender, blob = sealed
        if sender != OWNER:
            raise IntegrityError(f"the key of environment '{env}' was sealed by {sender!r}")
        # The sender's public key is the one the unlock proved, never the file's:
        # a key sealed by anyone else fails authentication (exit 5).
        context = _env_key_context(self.vault_id, env, OWNER, sender)
        return unseal(
            self.private_key(), self.owner_public_key(), blob, context, f"the key of '{env}'"
        )

    def check_env_key(self, env: str) -> None:
        """``bsecrets verify``: the key of ``env`` sealed in the file opens with the owner
        key the unlock proved, and is the key in use (under a session, the session's
        own copy: commands in a session never read the file's). IntegrityError if not."""
        if self.env_keys(env) is None:
            return  # neither a key nor a manifest: nothing to check
        sealed = self.store.sealed_env_key(env, OWNER)
        if sealed is None:
            raise IntegrityError(f"the key of environment '{env}' was removed from the vault")
        if self._unseal_env_key(env, sealed) != self._unsealed[env]:
            raise IntegrityError(
                f"the key of environment '{env}' in the vault file is not the one "
                "the session carries"
            )
