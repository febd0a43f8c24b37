"""A principal's key pair made on its own machine (``access keygen``): the private key
never reaches the vault's machine, only the public key does
(``access principal add NAME --public-key FILE``).

The key file (mode 0600, JSON): the X25519 private key and, once the principal has
unlocked a vault with it, the vault's trust root (the owner's identity key, which
certifies the policy), pinned on that first use as ssh pins a host key: a later
vault file whose trust root differs is refused (exit 5), so no one who can write
the file but holds no key can make this principal accept a policy, or a key, of
theirs. The first use trusts what the file says: compare the fingerprint that
``principal add`` printed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from bsecrets.crypto.keys import generate_private_key, public_key_of, sha256_hex
from bsecrets.errors import IntegrityError, NextStep, UsageError
from bsecrets.files import check_private_file, write_private_file
from bsecrets.named_tuples import NamedTuple

_KIND = "bsecrets-x25519-key"


class KeyFile(NamedTuple):
    path: Path
    private_key: bytes
    trust_roots: dict[str, str]  # vault id (hex) -> trust root (hex), pinned on first use

    def __repr__(self) -> str:  # never the key
        return f"KeyFile({str(self.path)!r})"


def fingerprint(public_key: bytes) -> str:
    """What people compare out of band: SHA-256 of the key, 16 groups of 4 hex digits."""
    digest = sha256_hex(public_key)
    return ":".join(digest[i : i + 4] for i in range(0, 64, 4))


def new_key_file(path: Path) -> tuple[bytes, Path]:
    """A fresh key pair in ``path`` (0600, never over an existing file: UsageError) and
    its public key in ``path.pub``; returns the public key and that file."""
    private_key = generate_private_key()
    try:
        _write(KeyFile(path, private_key, {}), exclusive=True)
    except FileExistsError:
        raise UsageError(
            f"{path} exists", hint="choose another file: a key file is never overwritten"
        ) from None
    public_key = public_key_of(private_key)
    pub = path.with_name(path.name + ".pub")
    pub.write_text(base64.b64encode(public_key).decode() + "\n")
    return public_key, pub


def read_key_file(path: Path) -> KeyFile:
    """The key file at ``path`` (yours, 0600: else exit 4), or UsageError (exit 2)."""
    check_private_file(path, what="key file")
    try:
        data = json.loads(path.read_bytes())
        if data.get("kind") != _KIND:
            raise ValueError("kind")
        private_key = base64.b64decode(data["private_key"], validate=True)
        roots = {str(k): str(v) for k, v in data.get("trust_roots", {}).items()}
        if len(private_key) != 32:
            raise ValueError("length")
    except FileNotFoundError:
        raise UsageError(f"no key file at {path}", step=NextStep("make_key_file")) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(
            f"{path} is not a bsecrets key file", step=NextStep("make_key_file")
        ) from None
    return KeyFile(path, private_key, roots)


def pin_trust_root(key_file: KeyFile, vault_id: bytes, root: bytes) -> None:
    """Pin ``root`` for this vault on first use; IntegrityError if another one is pinned."""
    pinned = key_file.trust_roots.get(vault_id.hex())
    if pinned == root.hex():
        return
    if pinned is not None:
        raise IntegrityError(
            "the vault's trust root is not the one this key file pinned on first use "
            f"(pinned {fingerprint(bytes.fromhex(pinned))}, now {fingerprint(root)})",
            hint="the vault file was changed, or replaced by another vault's",
        )
    roots = {**key_file.trust_roots, vault_id.hex(): root.hex()}
    _write(key_file._replace(trust_roots=roots))


def read_public_key(path: Path) -> bytes:
    """A public key file (the ``.pub`` that ``access keygen`` wrote), or UsageError."""
    try:
        key = base64.b64decode(path.read_text().strip(), validate=True)
    except FileNotFoundError:
        raise UsageError(f"no public key file at {path}") from None
    except (OSError, ValueError, UnicodeDecodeError):
        key = b""
    if len(key) != 32:
        raise UsageError(f"{path} is not a bsecrets public key", step=NextStep("give_public_key"))
    return key


def _write(key_file: KeyFile, *, exclusive: bool = False) -> None:
    data = {
        "kind": _KIND,
        "private_key": base64.b64encode(key_file.private_key).decode(),
        "trust_roots": key_file.trust_roots,
    }
    write_private_file(key_file.path, json.dumps(data, indent=1).encode(), exclusive=exclusive)
