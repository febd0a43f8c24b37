"""The access policy of a vault: principals, grants, protections, and how they are
authenticated.

One document per vault, in the table ``access_policy`` (created on first use),
held by the internal environment ``__access__``:

- its body is canonical JSON (vault id, generation, principals, grants,
  protections, MFA clears), signed with Ed25519 by the **policy key**, derived
  (HKDF) from ``__access__``'s master key, which the owner holds and seals to
  admins; the body carries the policy key's public half and the **owner's
  certificate** of it (the owner's Ed25519 identity, derived from its X25519
  key, signs (vault id, policy key, epoch)). Every other principal holds the
  owner's identity as its trust root, sealed with its own key when it was
  added: it checks owner -> policy key -> document, so only the owner, or an
  admin holding the current policy key, can produce a policy that verifies;
  revoking an admin moves to a new policy key and certificate;
- ``__access__``'s manifest holds the digest of the stored body and signature
  in its bucket 0, under its manifest key, and its generation is the policy's:
  the audit chain records that manifest with every event (audit/witness.py), so
  a policy row removed, or put back from an older copy of the file, is caught
  like a rolled-back environment (exit 5), and so is a signature or body edited
  by SQL.

Who may change it and what a protection asks for is services/access.py's.
"""

from __future__ import annotations

import os
from typing import Any

from bsecrets import json_codec
from bsecrets.crypto.keys import EnvironmentKeys, encode_aad, hkdf, sha256_digest
from bsecrets.errors import IntegrityError
from bsecrets.named_tuples import NamedTuple
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.manifest import Manifest
from bsecrets.vaultfile.schema import POLICY_FORMAT, blob
from bsecrets.vaultfile.store import VaultStore
from bsecrets.vaultfile.vault import LocalVault

ACCESS_ENV = "__access__"
MFA_MODES = ("writes", "all")  # what on a protected environment needs a second factor
GRANT_ROLES = ("read", "write", "admin")
_TABLE = (
    "CREATE TABLE IF NOT EXISTS access_policy (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " body BLOB NOT NULL, signature BLOB NOT NULL)"
)
_POLICY_BUCKET = 0


class Protection(NamedTuple):
    """One protected environment, as ``env protect`` recorded it."""

    mfa: str  # "writes" or "all"
    by: str  # the principal who protected it
    at: str  # when (ISO 8601, UTC)
    promote_approval: bool = False  # promotions into it need another admin's approval


def _protection(protection: Protection) -> dict[str, Any]:
    """A protection as the policy body holds it (``promote_approval`` only when set, so
    policies written before it existed read back the same)."""
    data = protection._asdict()
    if not protection.promote_approval:
        del data["promote_approval"]
    return data


class PrincipalRecord(NamedTuple):
    """A principal as the policy states it: its public key is the one trusted."""

    kind: str  # "person", or "token" (a pipeline token: vaultfile/tokens.py)
    public_key: bytes  # X25519, 32 bytes
    added_at: str
    added_by: str | None  # None for the owner
    expires_at: str | None = None  # a token's expiry (ISO 8601, UTC)
    label: str | None = None  # a token's --name

    def to_dict(self) -> dict[str, Any]:
        return {**self._asdict(), "public_key": self.public_key.hex()}


class Grant(NamedTuple):
    """A principal's access to one environment."""

    role: str  # GRANT_ROLES
    only: tuple[str, ...]  # name globs; () means every name
    by: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {**self._asdict(), "only": list(self.only)}


def _replaced(table: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    new = dict(table)
    if value is None:
        new.pop(key, None)
    else:
        new[key] = value
    return new


class AccessPolicy(NamedTuple):
    generation: int  # 0: no policy was ever written
    protected: dict[str, Protection]
    principals: dict[str, PrincipalRecord]  # the owner's too, once there is another
    grants: dict[str, dict[str, Grant]]  # environment -> principal -> grant
    # where other principals seal their audit events (audit/member_intake.py); b"": none
    audit_public: bytes
    # principal -> how many times an admin cleared its MFA lockout (factors.py keeps
    # how many it has applied)
    mfa_clears: dict[str, int]
    # The key that signs this document (Ed25519, from __access__'s master), and the
    # owner's signature of it for that epoch: every principal checks the chain
    # trust root (the owner's identity) -> policy key -> document.
    policy_key: bytes = b""
    key_epoch: int = 0
    key_cert: bytes = b""

    @classmethod
    def empty(cls) -> AccessPolicy:
        return cls(0, {}, {}, {}, b"", {})

    def with_mfa_clear(self, name: str) -> AccessPolicy:
        clears = {**self.mfa_clears, name: self.mfa_clears.get(name, 0) + 1}
        return self._replace(mfa_clears=clears)

    def with_protection(self, env: str, protection: Protection | None) -> AccessPolicy:
        protected = _replaced(self.protected, env, protection)
        return self._replace(protected=protected)

    def with_principal(self, name: str, record: PrincipalRecord | None) -> AccessPolicy:
        principals = _replaced(self.principals, name, record)
        return self._replace(principals=principals)

    def with_grant(self, env: str, name: str, grant: Grant | None) -> AccessPolicy:
        grants = dict(self.grants)
        grants[env] = _replaced(grants.get(env, {}), name, grant)
        if not grants[env]:
            del grants[env]
        return self._replace(grants=grants)

    def grant_of(self, env: str, name: str) -> Grant | None:
        return self.grants.get(env, {}).get(name)

    def body(self, vault_id: bytes) -> bytes:
        data = {
            "v": 1,
            "vault_id": vault_id.hex(),
            "generation": self.generation,
            "protected": {env: _protection(p) for env, p in sorted(self.protected.items())},
            "principals": {n: p.to_dict() for n, p in sorted(self.principals.items())},
            "grants": {
                env: {n: g.to_dict() for n, g in sorted(grants.items())}
                for env, grants in sorted(self.grants.items())
            },
            "audit_public": self.audit_public.hex(),
            "mfa_clears": dict(sorted(self.mfa_clears.items())),
            "policy_key": self.policy_key.hex(),
            "key_epoch": self.key_epoch,
            "key_cert": self.key_cert.hex(),
        }
        return json_codec.canonical(data).encode()

    @classmethod
    def parse(cls, body: bytes, vault_id: bytes) -> AccessPolicy:
        """The policy of a body whose signature was checked (or that is only peeked at)."""
        try:
            data = json_codec.loads(body)
            if data.get("v") != 1 or data.get("vault_id") != vault_id.hex():
                raise ValueError("another vault or version")
            generation = data["generation"]
            if type(generation) is not int or generation < 1:
                raise ValueError("generation")
            protected = {}
            for env, item in data["protected"].items():
                protection = Protection(
                    str(item["mfa"]), str(item["by"]), str(item["at"]),
                    item.get("promote_approval", False) is True,
                )  # fmt: skip
                if protection.mfa not in MFA_MODES:
                    raise ValueError("mfa mode")
                protected[str(env)] = protection
            principals = {}
            for name, item in data.get("principals", {}).items():
                key = bytes.fromhex(item["public_key"])
                if len(key) != 32:
                    raise ValueError("public key")
                by, expires, label = item["added_by"], item.get("expires_at"), item.get("label")
                principals[str(name)] = PrincipalRecord(
                    str(item["kind"]),
                    key,
                    str(item["added_at"]),
                    None if by is None else str(by),
                    None if expires is None else str(expires),
                    None if label is None else str(label),
                )
            grants: dict[str, dict[str, Grant]] = {}
            for env, items in data.get("grants", {}).items():
                for name, item in items.items():
                    if item["role"] not in GRANT_ROLES or not isinstance(item["only"], list):
                        raise ValueError("grant")
                    only = tuple(str(glob) for glob in item["only"])
                    grant = Grant(str(item["role"]), only, str(item["by"]), str(item["at"]))
                    grants.setdefault(str(env), {})[str(name)] = grant
            audit_public = bytes.fromhex(data.get("audit_public", ""))
            clears = {str(k): v for k, v in data.get("mfa_clears", {}).items()}
            if not all(type(v) is int and v > 0 for v in clears.values()):
                raise ValueError("mfa_clears")
            policy_key, cert = bytes.fromhex(data["policy_key"]), bytes.fromhex(data["key_cert"])
            epoch = data["key_epoch"]
            if len(policy_key) != 32 or len(cert) != 64 or type(epoch) is not int:
                raise ValueError("policy key")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise IntegrityError("the vault's access policy is malformed") from None
        return cls(
            generation, protected, principals, grants, audit_public, clears,
            policy_key, epoch, cert,
        )  # fmt: skip


def peek_policy(store: VaultStore) -> AccessPolicy:
    """The policy as an open vault file states it, without a key: unchecked (``env ls``
    shows it, as it shows counts; every command that acts on it checks it)."""
    rows = store.query_optional_table(
        "access_policy", "SELECT body FROM access_policy WHERE id = 1"
    )
    return AccessPolicy.parse(blob(rows[0][0]), store.vault_id) if rows else AccessPolicy.empty()


def _signing_key(master: bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(hkdf(master, "bsecrets/v1/policy-signing"))


def _owner_identity(vault: LocalVault) -> Any:
    """The owner's Ed25519 identity, derived from its X25519 private key: it certifies
    the policy key, and its public half is every other principal's trust root."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = hkdf(vault.private_key(), "bsecrets/v1/owner-identity", salt=vault.vault_id)
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes_raw())


def _cert_message(vault_id: bytes, policy_key: bytes, epoch: int) -> bytes:
    return encode_aad("policy-key", vault_id, policy_key, epoch)


# digests of (document, signature, root, vault) this process has verified: checking
# the same bytes against the same root again gives the same answer (a long-lived caller,
# the server, reads the policy at every request)
_VERIFIED: set[bytes] = set()
_VERIFIED_MAX = 256


def _verified(body: bytes, signature: bytes, root: bytes, vault_id: bytes) -> AccessPolicy:
    """The policy in ``body`` if its key is certified by ``root`` (the owner's identity)
    and signed ``body``; IntegrityError (exit 5) otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    policy = AccessPolicy.parse(body, vault_id)
    seen = sha256_digest(encode_aad("verified-policy", body, signature, root, vault_id))
    if seen in _VERIFIED:
        return policy
    try:
        message = _cert_message(vault_id, policy.policy_key, policy.key_epoch)
        Ed25519PublicKey.from_public_bytes(root).verify(policy.key_cert, message)
        Ed25519PublicKey.from_public_bytes(policy.policy_key).verify(signature, body)
    except (InvalidSignature, ValueError):
        raise IntegrityError("the vault's access policy failed authentication") from None
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED.add(seen)
    return policy


def _digest(body: bytes, signature: bytes) -> bytes:
    return sha256_digest(encode_aad("access-policy", body, signature))


class PolicyStore:
    """Reads and writes the access policy of one open vault."""

    def __init__(self, vault: LocalVault) -> None:
        self.vault = vault
        self.store = vault.store

    def _row(self) -> tuple[bytes, bytes] | None:
        rows = self.store.query_optional_table(
            "access_policy", "SELECT body, signature FROM access_policy WHERE id = 1"
        )
        return (blob(rows[0][0]), blob(rows[0][1])) if rows else None

    def load(self, *, witnessed: bool = True) -> AccessPolicy:
        """The policy, checked: signature, manifest, and the audit chain's record of it
        (not with ``witnessed=False``: for the witness itself). IntegrityError (exit 5)
        if any of them disagrees, or if it was removed."""
        if self.vault.principal != OWNER:
            return self._load_as_member()
        with self.store.read():
            row = self._row()
            stored = self.store.manifest(ACCESS_ENV)
            witness = self.vault.witness
            if witness is not None and witnessed:
                witness.check(ACCESS_ENV, (stored[0], stored[2]) if stored else None)
            if row is None:
                if stored is not None and stored[0] > 0:
                    raise IntegrityError("the vault's access policy was removed from the file")
                return AccessPolicy.empty()
            master = self.vault.env_master(ACCESS_ENV)
            if master is None or stored is None:
                raise IntegrityError("the key of the vault's access policy was removed")
            body, signature = row
            keys = self.vault.env_keys(ACCESS_ENV)
            assert keys is not None  # env_master found it
            manifest = Manifest.verified(ACCESS_ENV, stored, keys.manifest_key, self.vault.vault_id)
            if manifest.digest(_POLICY_BUCKET) != _digest(body, signature):
                raise IntegrityError("the vault's access policy was changed outside bsecrets")
            policy = _verified(body, signature, self.trust_root(), self.vault.vault_id)
            current = _raw(_signing_key(master).public_key())
            if policy.generation != manifest.generation or policy.policy_key != current:
                raise IntegrityError("the vault's access policy was changed outside bsecrets")
            return policy

    def _load_as_member(self) -> AccessPolicy:
        """A principal other than the owner: the document is checked against its trust
        root (the owner's identity, sealed with its own key when it was added): the
        owner certified the policy key, the policy key signed the document. No manifest
        or chain check (it holds neither key), so an older signed policy put back is not
        seen here (docs/access.md): the keys sealed to it stay the boundary."""
        with self.store.read():
            row = self._row()
        if row is None:
            raise IntegrityError("the vault's access policy was removed from the file")
        body, signature = row
        return _verified(body, signature, self.vault.trust_root(), self.vault.vault_id)

    def trust_root(self) -> bytes:
        """The owner's identity (Ed25519 public key): what every principal checks the
        policy against, sealed with its key when it is added. The owner's to compute."""
        if self.vault.principal != OWNER:
            return self.vault.trust_root()
        return _raw(_owner_identity(self.vault).public_key())

    def with_owner(self, policy: AccessPolicy, audit_public: bytes) -> AccessPolicy:
        """``policy`` naming the owner and its public key as the unlock proved it, so that
        other principals can check what the owner seals to them, and the key they seal
        their audit events to."""
        record = PrincipalRecord(
            "person", self.vault.owner_public_key(), self.store.created_at, None
        )
        principals = {**policy.principals, OWNER: record}
        return policy._replace(principals=principals, audit_public=audit_public)

    def save(self, policy: AccessPolicy, *, rekey_to: dict[str, bytes] | None = None) -> None:
        """Store ``policy`` (made from what :meth:`load` returned in this transaction) as
        the next generation, inside the caller's write transaction: the row, and
        ``__access__``'s manifest over it. ``rekey_to`` (the owner's): a new policy key,
        sealed to the owner and to these principals (name -> public key) only, certified
        anew: an admin who lost the role keeps a key that signs nothing accepted."""
        self.store.require_format(POLICY_FORMAT)  # an older bsecrets must not skip it
        self.store.execute_write(_TABLE)
        master = self.vault.env_master(ACCESS_ENV, create=True)
        keys = self.vault.env_keys(ACCESS_ENV, create=True)
        stored = self.store.manifest(ACCESS_ENV)
        if master is None or keys is None or stored is None:
            raise IntegrityError("the key of the vault's access policy was removed")
        if self.vault.witness is not None:  # what is changed must be what the chain saw
            self.vault.witness.check(ACCESS_ENV, (stored[0], stored[2]))
        manifest = Manifest.verified(ACCESS_ENV, stored, keys.manifest_key, self.vault.vault_id)
        if policy.generation != manifest.generation:  # not made from the policy as it is
            raise IntegrityError("the vault's access policy changed while it was being edited")
        if rekey_to is not None:
            master = os.urandom(32)
            self.vault.replace_env_key(ACCESS_ENV, master, rekey_to)
            keys = EnvironmentKeys.from_master(master)
        signer = _signing_key(master)
        policy_key = _raw(signer.public_key())
        if policy.policy_key != policy_key:  # a new policy key: the owner certifies it
            if self.vault.principal != OWNER:
                raise IntegrityError("the vault's policy key is not the one the owner certified")
            epoch = policy.key_epoch + 1
            cert = _owner_identity(self.vault).sign(
                _cert_message(self.vault.vault_id, policy_key, epoch)
            )
            policy = policy._replace(policy_key=policy_key, key_epoch=epoch, key_cert=cert)
        body = policy._replace(generation=manifest.generation + 1).body(self.vault.vault_id)
        signature = signer.sign(body)
        self.store.execute_write(
            "INSERT OR REPLACE INTO access_policy (id, body, signature) VALUES (1, ?, ?)",
            (body, signature),
        )
        new = manifest.with_bucket(_POLICY_BUCKET, _digest(body, signature))
        self.store.set_manifest(
            ACCESS_ENV, new.generation, new.buckets, new.mac(keys.manifest_key, self.vault.vault_id)
        )
