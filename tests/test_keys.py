"""The key hierarchy: real KDF parameters, refusal of weak ones, authenticated
sealing of environment keys, and the owner key check."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from helpers.cli import invoke
from helpers.values import PASSPHRASE

from bsecrets.cli.exit_codes import exit_code_of
from bsecrets.crypto.keys import (
    KdfParams,
    encode_aad,
    generate_private_key,
    public_key_of,
    seal_to,
    unseal,
)
from bsecrets.errors import IntegrityError, WrongPassphrase


def vault_db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".bsecrets" / "vault.db")


def test_init_uses_rfc9106_parameters(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSECRETS_INSECURE_TEST_KDF")
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    assert invoke(["init"]).exit_code == 0
    with vault_db(isolated) as db:
        (params,) = db.execute("SELECT params FROM key_wraps WHERE method='passphrase'").fetchone()
    data = json.loads(params)
    assert (data["kdf"], data["memory_kib"], data["iterations"], data["lanes"]) == (
        "argon2id", 65536, 3, 4,
    )  # fmt: skip
    assert len(bytes.fromhex(data["salt"])) == 16
    assert invoke(["put", "a"], input="1").exit_code == 0  # and it opens with them


def test_weak_parameters_are_refused_outside_tests(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BSECRETS_INSECURE_TEST_KDF")
    result = invoke(["ls"])  # the fixture's vault was made with the weak test parameters
    assert result.exit_code == 5
    assert "weaker than RFC 9106" in result.stderr


def test_kdf_is_deterministic_and_salted() -> None:
    params = KdfParams(salt=b"\x01" * 16, memory_kib=1024, iterations=1, lanes=1)
    same = KdfParams(salt=b"\x01" * 16, memory_kib=1024, iterations=1, lanes=1)
    other_salt = KdfParams(salt=b"\x02" * 16, memory_kib=1024, iterations=1, lanes=1)
    assert params.derive("pw") == same.derive("pw")
    assert params.derive("pw") != other_salt.derive("pw")
    assert params.derive("pw") != params.derive("pw2")


def test_aad_encoding_is_unambiguous() -> None:
    assert encode_aad("ab", "c") != encode_aad("a", "bc")
    assert encode_aad(b"1") != encode_aad("1") != encode_aad(1)


def test_sealing_is_bound_to_sender_and_context() -> None:
    owner, attacker = generate_private_key(), generate_private_key()
    blob = seal_to(owner, public_key_of(owner), b"k" * 32, b"ctx")
    assert unseal(owner, public_key_of(owner), blob, b"ctx", "key") == b"k" * 32
    with pytest.raises(IntegrityError):
        unseal(owner, public_key_of(owner), blob, b"other ctx", "key")
    planted = seal_to(attacker, public_key_of(owner), b"k" * 32, b"ctx")
    with pytest.raises(IntegrityError):
        unseal(owner, public_key_of(owner), planted, b"ctx", "key")


def test_planted_environment_key_is_rejected(vault: Path) -> None:
    """Someone who can write the file but has no owner key cannot plant an
    environment key whose value they know: the sealing is authenticated."""
    with vault_db(vault) as db:
        (owner_public,) = db.execute("SELECT public_key FROM principals").fetchone()
        attacker = generate_private_key()
        planted = seal_to(attacker, bytes(owner_public), os.urandom(32), b"anything")
        db.execute("UPDATE env_keys SET sealed = ? WHERE env = 'prod'", (planted,))
    result = invoke(["put", "x", "-e", "prod"], input="secret")
    assert result.exit_code == 5


def test_swapped_owner_public_key_is_detected(vault: Path) -> None:
    with vault_db(vault) as db:
        db.execute("UPDATE principals SET public_key = ?", (public_key_of(generate_private_key()),))
    assert invoke(["ls"]).exit_code == 5


def test_wrapped_key_edited_is_wrong_passphrase_not_garbage(vault: Path) -> None:
    with vault_db(vault) as db:
        (wrapped,) = db.execute("SELECT wrapped FROM key_wraps").fetchone()
        flipped = bytes(wrapped[:-1]) + bytes([wrapped[-1] ^ 1])
        db.execute("UPDATE key_wraps SET wrapped = ?", (flipped,))
    result = invoke(["ls"])
    assert result.exit_code == exit_code_of(WrongPassphrase)


def test_aad_encoding_known_answer() -> None:
    """The exact bytes: every existing vault's ciphertexts depend on them."""
    expected = (
        b"bsecrets/v1"
        + b"b\x00\x00\x00\x02\x01\x02"
        + b"s\x00\x00\x00\x03d\xc3\xa9"
        + b"i\x00\x00\x00\x08"
        + (7).to_bytes(8, "big")
        + b"i\x00\x00\x00\x08"
        + (-1).to_bytes(8, "big", signed=True)
    )
    assert encode_aad(b"\x01\x02", "dé", 7, -1) == expected
