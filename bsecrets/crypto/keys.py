"""The key hierarchy, built only from primitives of ``cryptography``.

    passphrase --Argon2id--> KEK --AES-256-GCM--> owner X25519 private key
    (or a random KEK kept in the OS keyring)
    owner key pair --authenticated X25519 sealing--> one master key per environment
    environment master --HKDF-SHA256--> value key, index key, manifest key

Nothing here writes a primitive: AES-GCM, X25519, HKDF, HMAC and Argon2id all
come from ``cryptography``; this module only composes them and fixes the
associated data so that every ciphertext is bound to where it belongs.
"""

from __future__ import annotations

import os
from _operator import _compare_digest
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from itertools import repeat
from operator import itemgetter
from typing import Any, Final, cast

from bsecrets.errors import IntegrityError, UsageError
from bsecrets.named_tuples import NamedTuple

KEY_BYTES = 32


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """hmac.compare_digest itself (hmac.py re-exports this very function): importing
    hmac for it would load hashlib and OpenSSL's hash bindings on every get (#20)."""
    return _compare_digest(a, b)


NONCE_BYTES = 12

# RFC 9106 section 4, second recommended option: 64 MiB, t=3, p=4.
ARGON2_MEMORY_KIB = 64 * 1024
ARGON2_ITERATIONS = 3
ARGON2_LANES = 4
# Only the test suite may create or open a vault with weaker parameters; the
# name says what it does so that nobody sets it by accident.
WEAK_KDF_ENV = "BSECRETS_INSECURE_TEST_KDF"


# struct's ">I" and ">q" from int.to_bytes: struct is an extension module here, ~0.25 ms
# of every command to load (tests/test_aad_packing.py compares them)
def pack_length(number: int) -> bytes:
    """``struct.pack(">I", number)``: a length, 4 bytes big-endian."""
    return number.to_bytes(4, "big")


def pack_int(number: int) -> bytes:
    """``struct.pack(">q", number)``: an int part, 8 bytes big-endian, signed."""
    return number.to_bytes(8, "big", signed=True)


_TO_BYTES = cast("Callable[[int, int, str], bytes]", int.to_bytes)  # (value, length, order)


def pack_lengths(values: Iterable[Sized]) -> Iterator[bytes]:
    """``pack_length(len(value))`` of each value, the loop in C."""
    return map(_TO_BYTES, map(len, values), repeat(4), repeat("big"))


_INT_LENGTH = pack_length(8)


def encode_aad(*parts: str | bytes | int) -> bytes:
    """Unambiguous associated data: every part typed and length-prefixed.

    (kind byte, 4-byte big-endian length, bytes) per part after b"bsecrets/v1";
    ints as 8-byte big-endian. Hot: ``ls`` of 10,000 secrets calls it 30,000 times.
    ``encode_aad(*a, *b) == encode_aad(*a) + aad_parts(*b)``, so a caller with a
    constant first part encodes it once (backends/local/records.py).
    """
    return b"bsecrets/v1" + aad_parts(*parts)


def aad_parts(*parts: str | bytes | int) -> bytes:
    """The parts of :func:`encode_aad` without its leading b"bsecrets/v1"."""
    chunks: list[bytes] = []
    for part in parts:
        if isinstance(part, bytes):
            chunks += (b"b", len(part).to_bytes(4, "big"), part)
        elif isinstance(part, str):
            raw = part.encode("utf-8")
            chunks += (b"s", len(raw).to_bytes(4, "big"), raw)
        else:  # int
            chunks += (b"i", _INT_LENGTH, part.to_bytes(8, "big", signed=True))
    return b"".join(chunks)


def aead_seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a fresh random 96-bit nonce; returns nonce || ciphertext || tag."""
    return Aead(key).seal(plaintext, aad)


def aead_open(key: bytes, blob: bytes, aad: bytes, what: str) -> bytes:
    """Decrypt what aead_seal made, or raise IntegrityError naming ``what``."""
    return Aead(key).open(blob, aad, what)


def load_primitives() -> None:
    """Import the primitives every read and write of a local vault uses (AES-GCM, HKDF,
    HMAC), which this module otherwise imports on first use. The CLI calls it while the
    collector is held off (cli/collector.py): their many objects are then frozen with
    bsecrets' own instead of walked by the collections importing them during the command
    set off (two on a ``get``, ~0.2 ms)."""
    from cryptography.exceptions import InvalidTag  # noqa: F401
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401
    from cryptography.hazmat.primitives.hmac import HMAC  # noqa: F401
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: F401


class Aead:
    """AES-256-GCM under one key, as aead_seal and aead_open use it, for a caller that
    seals or opens many records under the same key (an ``ls`` opens every head): the
    AESGCM object is built once (4.7 us a record otherwise, 0.9 us reused)."""

    __slots__ = ("_aesgcm",)

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aesgcm = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aesgcm.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes, what: str) -> bytes:
        if len(blob) < NONCE_BYTES + 16:
            raise IntegrityError(f"{what} is truncated")
        try:
            return self._aesgcm.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except _invalid_tag():
            raise IntegrityError(f"{what} failed authentication") from None

    def open_each(self, blobs: Sequence[bytes], aads: Sequence[bytes], what: str) -> list[bytes]:
        """open() of each blob with its associated data, in order, with the loop in C
        (``ls`` opens 100,000 heads). When one fails, they are opened again one by one,
        so the error is open()'s for the first that fails."""
        if min(map(len, blobs), default=NONCE_BYTES + 16) >= NONCE_BYTES + 16:
            try:
                return list(
                    map(self._aesgcm.decrypt, map(_NONCE, blobs), map(_SEALED, blobs), aads)
                )
            except _invalid_tag():
                pass
        return [self.open(blob, aad, what) for blob, aad in zip(blobs, aads, strict=True)]

    def __repr__(self) -> str:
        return "Aead(...)"


_NONCE = itemgetter(slice(NONCE_BYTES))
_SEALED = itemgetter(slice(NONCE_BYTES, None))


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def hkdf(key: bytes, info: str, length: int = KEY_BYTES, salt: bytes | None = None) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info.encode()).derive(key)


# cryptography's own HMAC and SHA-256: the stdlib hashlib would load a second
# copy of OpenSSL (3-5 ms of CPU on every command, measured for #20).
def mac(key: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.hmac import HMAC

    h = HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


class KeyedMac:
    """HMAC-SHA256 under one key, as ``mac`` computes it, for a caller that MACs many
    messages (an import's 100,000 lookups and chain links): the keyed HMAC is built
    once and copied (2.6 us a message instead of 12)."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.hmac import HMAC

        self._keyed = HMAC(key, hashes.SHA256())

    def __call__(self, data: bytes) -> bytes:
        one = self._keyed.copy()
        one.update(data)
        return bytes(one.finalize())

    def __repr__(self) -> str:
        return "KeyedMac(...)"


def mac_verify(key: bytes, data: bytes, tag: bytes) -> bool:
    """Constant-time check of an HMAC-SHA256 tag (inside OpenSSL)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.hmac import HMAC

    h = HMAC(key, hashes.SHA256())
    h.update(data)
    try:
        h.verify(tag)
    except InvalidSignature:
        return False
    return True


def sha256_hex(data: bytes) -> str:
    return sha256_digest(data).hex()


def sha256_digest(data: bytes) -> bytes:
    return sha256_digests((data,))[0]


def sha256_digests(items: Sequence[bytes]) -> list[bytes]:
    """The SHA-256 of each item, in order. Hot: a bucket's digest hashes every record
    in it (200,000 at 100,000 secrets), so the loops run in C: map over the hash's own
    methods, no Python call per item. (hashlib is about a third cheaper per item, but
    nothing on get's path imports it: it would cost every get 3-5 ms.)"""
    start = _sha256_start()
    kind = type(start)
    running = list(map(kind.copy, repeat(start, len(items))))
    for _ in map(kind.update, running, items):
        pass
    return list(map(kind.finalize, running))


_SHA256_START: list[Any] = []  # one fresh hash, copied: cheaper than a new Hash and SHA256


def _sha256_start() -> Any:
    if not _SHA256_START:
        from cryptography.hazmat.primitives import hashes

        _SHA256_START.append(hashes.Hash(hashes.SHA256()))
    return _SHA256_START[0]


# --- passphrase wrapping ----------------------------------------------------


# What bsecrets itself writes, and the most a vault file may ask for: the
# parameters are authenticated only by the derivation they drive, so a changed
# file must not make us allocate gigabytes or spin for minutes first. Room is
# left above today's default (4x the memory, under 3x the passes) for a later
# stronger default; anything else is refused before deriving (exit 5).
ARGON2_BOUNDS = {
    "memory_kib": (ARGON2_MEMORY_KIB, 4 * ARGON2_MEMORY_KIB),  # 64 MiB to 256 MiB
    "iterations": (ARGON2_ITERATIONS, 8),
    "lanes": (ARGON2_LANES, 8),
}
# The parameters the test suite writes under BSECRETS_INSECURE_TEST_KDF=1.
_TEST_PARAMS = {"memory_kib": 1024, "iterations": 1, "lanes": 1}
SALT_BYTES = (16, 64)
# Passphrases are normalised to Unicode NFC before the KDF (a passphrase typed
# on macOS, often NFD, opens a vault created on Linux, usually NFC).
PASSPHRASE_FORM: Final = "NFC"
MIN_PASSPHRASE = 8


def normalize_passphrase(passphrase: str) -> str:
    import unicodedata

    return unicodedata.normalize(PASSPHRASE_FORM, passphrase)


def check_new_passphrase(passphrase: str) -> None:
    """A passphrase for a new key wrap: at least MIN_PASSPHRASE characters (after NFC),
    and not only white space (UsageError, exit 2)."""
    normalized = normalize_passphrase(passphrase)
    if not normalized.strip():
        raise UsageError(
            "the passphrase is only white space",
            hint="use a passphrase with words or characters in it; a few random words work well",
        )
    if len(normalized) < MIN_PASSPHRASE:
        raise UsageError(
            f"the passphrase is shorter than {MIN_PASSPHRASE} characters",
            hint="use a longer passphrase; a few random words work well",
        )


class KdfParams(NamedTuple):
    """Argon2id parameters, stored beside the key they wrap."""

    salt: bytes
    memory_kib: int = ARGON2_MEMORY_KIB
    iterations: int = ARGON2_ITERATIONS
    lanes: int = ARGON2_LANES
    # "NFC" for wraps made since passphrases are normalised; None for older ones,
    # whose passphrase is used exactly as typed.
    normalization: str | None = PASSPHRASE_FORM

    @classmethod
    def new(cls) -> KdfParams:
        if os.environ.get(WEAK_KDF_ENV) == "1":
            test = _TEST_PARAMS
            return cls(os.urandom(16), test["memory_kib"], test["iterations"], test["lanes"])
        return cls(salt=os.urandom(16))

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "kdf": "argon2id",
            "salt": self.salt.hex(),
            "memory_kib": self.memory_kib,
            "iterations": self.iterations,
            "lanes": self.lanes,
        }
        if self.normalization is not None:
            data["normalization"] = self.normalization
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> KdfParams:
        if data.get("kdf") != "argon2id":
            raise IntegrityError("unknown key derivation in the vault file")
        numbers = {}
        for field in ARGON2_BOUNDS:
            value = data.get(field)
            if type(value) is not int:  # not a float, bool or string that int() would accept
                raise IntegrityError("the key derivation parameters are malformed")
            numbers[field] = value
        salt_hex = data.get("salt")
        normalization = data.get("normalization")
        try:
            if not isinstance(salt_hex, str) or len(salt_hex) > 2 * SALT_BYTES[1]:
                raise ValueError
            salt = bytes.fromhex(salt_hex)
        except ValueError:
            raise IntegrityError("the key derivation parameters are malformed") from None
        if normalization not in (None, PASSPHRASE_FORM):
            raise IntegrityError("the key derivation parameters are malformed")
        params = cls(
            salt,
            numbers["memory_kib"],
            numbers["iterations"],
            numbers["lanes"],
            normalization=PASSPHRASE_FORM if normalization else None,
        )
        params.check_bounds()
        return params

    def check_bounds(self) -> None:
        """IntegrityError unless bsecrets could have written these parameters
        (ARGON2_BOUNDS; the test suite's weaker set only under BSECRETS_INSECURE_TEST_KDF=1)."""
        numbers = {field: getattr(self, field) for field in ARGON2_BOUNDS}
        shown = f"memory {self.memory_kib} KiB, {self.iterations} iterations, {self.lanes} lanes"
        if not SALT_BYTES[0] <= len(self.salt) <= SALT_BYTES[1]:
            problem = "its salt has the wrong length"
        elif numbers == _TEST_PARAMS and os.environ.get(WEAK_KDF_ENV) == "1":
            return
        elif any(numbers[f] < low for f, (low, _) in ARGON2_BOUNDS.items()):
            problem = f"they are weaker than RFC 9106 ({shown})"
        elif any(numbers[f] > high for f, (_, high) in ARGON2_BOUNDS.items()):
            problem = f"they are beyond what bsecrets writes ({shown})"
        else:
            return
        raise IntegrityError(
            f"refusing the vault's key derivation parameters: {problem}",
            hint="the vault file was changed outside bsecrets: restore it from a backup",
        )

    def derive(self, passphrase: str) -> bytes:
        """Argon2id(passphrase) -> 32-byte key. Refuses parameters out of bounds."""
        self.check_bounds()
        if not passphrase:
            raise UsageError("the passphrase is empty")
        if self.normalization is not None:
            passphrase = normalize_passphrase(passphrase)
        try:
            from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
        except ImportError:  # pragma: no cover - cryptography < 44 or old OpenSSL
            raise IntegrityError(
                "Argon2id is not available in this build of 'cryptography'",
                hint="pip install 'cryptography>=44' (it needs OpenSSL 3.2 or newer)",
            ) from None
        kdf = Argon2id(
            salt=self.salt,
            length=KEY_BYTES,
            iterations=self.iterations,
            lanes=self.lanes,
            memory_cost=self.memory_kib,
        )
        return kdf.derive(passphrase.encode("utf-8"))


# --- principals and sealing -------------------------------------------------


def generate_private_key() -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.generate().private_bytes_raw()


def public_key_of(private_key: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()


def _exchange(private_key: bytes, public_key: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )

    priv = X25519PrivateKey.from_private_bytes(private_key)
    return priv.exchange(X25519PublicKey.from_public_bytes(public_key))


def seal_to(
    sender_private: bytes, recipient_public: bytes, plaintext: bytes, context: bytes
) -> bytes:
    """Authenticated sealing (the shape of HPKE's auth mode, built from X25519+HKDF+AES-GCM).

    The key comes from both an ephemeral exchange and the sender's static key,
    so only a holder of the sender's private key can make a blob the recipient
    accepts: nobody can plant an environment key whose value they know.
    Returns ephemeral public key || nonce || ciphertext || tag.
    """
    eph_private = generate_private_key()
    eph_public = public_key_of(eph_private)
    secret = _exchange(eph_private, recipient_public) + _exchange(sender_private, recipient_public)
    key = hkdf(secret, "bsecrets/v1/seal", salt=eph_public + recipient_public)
    return eph_public + aead_seal(key, plaintext, context)


def unseal(
    recipient_private: bytes, sender_public: bytes, blob: bytes, context: bytes, what: str
) -> bytes:
    if len(blob) < 32 + NONCE_BYTES + 16:
        raise IntegrityError(f"{what} is truncated")
    eph_public = blob[:32]
    recipient_public = public_key_of(recipient_private)
    secret = _exchange(recipient_private, eph_public) + _exchange(recipient_private, sender_public)
    key = hkdf(secret, "bsecrets/v1/seal", salt=eph_public + recipient_public)
    return aead_open(key, blob[32:], context, what)


class EnvironmentKeys(NamedTuple):
    """The keys of one environment, derived from its 256-bit master key."""

    value_key: bytes  # AES-256-GCM for names, metadata and values
    index_key: bytes  # HMAC-SHA256 of names, for lookups
    manifest_key: bytes  # HMAC-SHA256 of the environment's manifest

    @classmethod
    def from_master(cls, master: bytes) -> EnvironmentKeys:
        okm = hkdf(master, "bsecrets/v1/environment", length=3 * KEY_BYTES)
        return cls(okm[:32], okm[32:64], okm[64:])

    def lookup(self, name: str) -> bytes:
        return mac(self.index_key, name.encode("utf-8"))

    def __repr__(self) -> str:
        return "EnvironmentKeys(...)"
