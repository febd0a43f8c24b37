"""Security review items 1, 5 and 10: the owner's identity is never taken from the
vault file alone; KDF parameters are bounded before deriving; passphrases are
normalised.

The attacker of item 1 can write the vault file but has no passphrase, no
session token and no keyring entry. They make their own X25519 key pair, put its
public key in the owner's principal row, and plant environment keys sealed to
the real owner public key with their own private key: in the authenticated
sealing that succeeds exactly when the reader takes the sender's public key from
the file. Every unlock path (session, passphrase, keyring), for reads, writes
and exec, for environments in the session and ones added later, must give
exit 5 and leave nothing written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from helpers.cli import invoke, run_cli
from helpers.file_keyring import FileKeyring, file_keyring  # noqa: F401
from helpers.values import PASSPHRASE

from bsecrets.backends.local.adapter import LocalAdapter
from bsecrets.crypto.keys import (
    EnvironmentKeys,
    generate_private_key,
    public_key_of,
    seal_to,
)
from bsecrets.errors import IntegrityError
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.manifest import Manifest
from bsecrets.vaultfile.vault import LocalVault, _env_key_context

PLANTED = "attacker-chosen-value"


def vault_file(work: Path) -> Path:
    return work / ".bsecrets" / "vault.db"


def _add_env(work: Path, name: str) -> None:
    profile = work / "bsecrets.yaml"
    text = profile.read_text().replace(
        "environments:\n", f"environments:\n  {name}:\n    backend: local\n", 1
    )
    profile.write_text(text)


def _replace_owner_row(work: Path) -> bytes:
    """The attacker's key pair in the owner's principal row; returns their private key."""
    attacker = generate_private_key()
    with sqlite3.connect(vault_file(work)) as db:
        db.execute(
            "UPDATE principals SET public_key = ? WHERE id = 'owner'", (public_key_of(attacker),)
        )
    return attacker


def _plant_environment(work: Path, env: str, attacker: bytes, *, with_secret: bool) -> None:
    """An environment key whose value the attacker knows, sealed by them to the real
    owner public key (read before any change, or known from a copy of the file), with
    a valid empty manifest, and optionally one secret."""
    with sqlite3.connect(vault_file(work)) as db:
        (vault_id,) = db.execute("SELECT value FROM meta WHERE key = 'vault_id'").fetchone()
        (owner_public,) = db.execute(
            "SELECT public_key FROM principals WHERE id = 'owner'"
        ).fetchone()
    master = os.urandom(32)
    context = _env_key_context(vault_id, env, "owner", "owner")
    blob = seal_to(attacker, bytes(owner_public), master, context)
    keys = EnvironmentKeys.from_master(master)
    empty = Manifest.empty(env)
    with sqlite3.connect(vault_file(work)) as db:
        db.execute("INSERT OR REPLACE INTO env_keys VALUES (?, 'owner', 'owner', ?)", (env, blob))
        db.execute(
            "INSERT OR REPLACE INTO manifests VALUES (?, ?, ?, ?)",
            (env, 0, empty.buckets, empty.mac(keys.manifest_key, vault_id)),
        )
    if with_secret:  # written with bsecrets' own code, as an attacker with the key would
        vault = LocalVault.open(vault_file(work), Credentials(), utcnow)
        vault._env_keys[env] = keys
        LocalAdapter(vault, env, utcnow).put("db/password", PLANTED.encode(), actor="attacker")
        vault.close()


def _attack(work: Path, env: str, *, with_secret: bool) -> None:
    """Plant ``env`` sealed by the attacker, then put their public key in the owner row:
    a reader that takes the sender's key from the file then unseals the planted key."""
    attacker = generate_private_key()
    _plant_environment(work, env, attacker, with_secret=with_secret)
    with sqlite3.connect(vault_file(work)) as db:
        db.execute(
            "UPDATE principals SET public_key = ? WHERE id = 'owner'", (public_key_of(attacker),)
        )


def _unlock() -> str:
    result = invoke(["unlock", "--json"])
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["session"])


def _rows(work: Path, env: str) -> int:
    with sqlite3.connect(vault_file(work)) as db:
        return int(db.execute("SELECT count(*) FROM versions WHERE env = ?", (env,)).fetchone()[0])


def _refused(result: object, *needles: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 5, stderr  # type: ignore[attr-defined]
    lines = stderr.splitlines()
    assert lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    assert PLANTED not in result.stdout + stderr  # type: ignore[attr-defined]
    for needle in needles:
        assert needle in stderr, stderr


@pytest.fixture
def session_vault(vault: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A vault with a secret in dev, unlocked by a session; no passphrase in the environment
    afterwards, as in a shell after 'eval $(bsecrets unlock)'."""
    assert invoke(["put", "app/key", "-e", "dev"], input="real").exit_code == 0
    _add_env(vault, "qa")  # in the profile, no key yet: an environment added later
    token = _unlock()
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    monkeypatch.setenv("BSECRETS_SESSION", token)
    return vault


def test_session_read_of_a_planted_environment_is_refused(session_vault: Path) -> None:
    _attack(session_vault, "qa", with_secret=True)
    _refused(invoke(["get", "db/password", "-e", "qa"]), "owner public key does not match")
    _refused(invoke(["ls", "-e", "qa"]))
    _refused(invoke(["export", "-e", "qa", "--format", "json"]))


def test_session_write_into_a_planted_environment_writes_nothing(session_vault: Path) -> None:
    _attack(session_vault, "qa", with_secret=False)
    _refused(invoke(["put", "new/secret", "-e", "qa"], input="value-for-the-attacker"))
    assert _rows(session_vault, "qa") == 0


def test_session_environments_it_carries_are_refused_too(session_vault: Path) -> None:
    """dev's key is in the session: still exit 5 once the owner row is not the one the
    unlock proved (reads and writes, every command)."""
    _replace_owner_row(session_vault)
    before = _rows(session_vault, "dev")
    _refused(invoke(["get", "app/key"]), "owner public key does not match")
    _refused(invoke(["put", "app/key"], input="x"))
    _refused(invoke(["ls"]))
    assert _rows(session_vault, "dev") == before


def test_planted_key_without_touching_the_owner_row_is_refused(session_vault: Path) -> None:
    _plant_environment(session_vault, "qa", generate_private_key(), with_secret=False)
    _refused(invoke(["put", "x", "-e", "qa"], input="v"), "the key of 'qa'")
    assert _rows(session_vault, "qa") == 0


def test_exec_in_a_planted_environment_never_starts_the_command(
    session_vault: Path, tmp_path: Path
) -> None:
    _attack(session_vault, "qa", with_secret=True)
    marker = tmp_path / "ran"
    proc = run_cli(["exec", "-e", "qa", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.decode().startswith("error: ") and PLANTED.encode() not in proc.stdout
    assert not marker.exists()


def test_the_vault_layer_alone_refuses_it(session_vault: Path) -> None:
    """Without the audit log's checks (witness.py), the key layer itself refuses."""
    _attack(session_vault, "qa", with_secret=False)
    creds = Credentials(session_token=os.environ["BSECRETS_SESSION"])
    vault = LocalVault.open(vault_file(session_vault), creds, utcnow)
    try:
        with pytest.raises(IntegrityError, match="owner public key does not match"):
            vault.env_keys("qa")
    finally:
        vault.close()


def test_passphrase_path_and_unlock_refuse_it(vault: Path) -> None:
    _attack(vault, "prod", with_secret=False)
    _refused(invoke(["put", "x", "-e", "prod"], input="v"), "owner public key does not match")
    _refused(invoke(["unlock"]), "owner public key does not match")
    assert _rows(vault, "prod") == 0


def test_keyring_path_refuses_it(
    isolated: Path,
    file_keyring: FileKeyring,  # noqa: F811
) -> None:
    assert invoke(["init", "--keyring", "--env", "dev", "--env", "prod"]).exit_code == 0
    assert invoke(["put", "a"], input="v").exit_code == 0
    _attack(isolated, "prod", with_secret=False)
    _refused(invoke(["get", "a"]), "owner public key does not match")
    _refused(invoke(["put", "x", "-e", "prod"], input="v"))
    assert _rows(isolated, "prod") == 0


def test_session_files_from_before_the_binding_are_refused(session_vault: Path) -> None:
    """A session file without the owner public key (or with it changed) does not open."""
    token = os.environ["BSECRETS_SESSION"]
    session_id = token.split(".")[1]
    path = Path(os.environ["XDG_RUNTIME_DIR"]) / "bsecrets" / "sessions" / f"{session_id}.json"
    body = json.loads(path.read_text())
    body["owner_public"] = public_key_of(generate_private_key()).hex()
    path.write_text(json.dumps(body))
    result = invoke(["get", "app/key"])
    assert result.exit_code == 4 and "session" in result.stderr, result.stderr
    del body["owner_public"]
    path.write_text(json.dumps(body))
    assert invoke(["get", "app/key"]).exit_code == 4


# --- item 5: KDF parameters bounded before deriving -----------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"memory_kib": 4 * 1024 * 1024, "iterations": 64, "lanes": 64},  # the review's
        {"memory_kib": 256 * 1024 + 1},
        {"iterations": 9},
        {"lanes": 9},
        {"lanes": 0},
        {"iterations": -1},
        {"memory_kib": 10**30},
        {"memory_kib": 65536.0},  # a float that int() would have taken
        {"iterations": True},
        {"iterations": "3"},
        {"salt": "00" * 15},
        {"salt": "00" * 1024},
        {"salt": 12},
        {"kdf": "scrypt"},
        {"normalization": "NFKD"},
    ],
)
def test_tampered_kdf_parameters_are_exit_5_at_once(vault: Path, change: dict[str, object]) -> None:
    with sqlite3.connect(vault_file(vault)) as db:
        (params,) = db.execute(
            "SELECT params FROM key_wraps WHERE method = 'passphrase'"
        ).fetchone()
        db.execute(
            "UPDATE key_wraps SET params = ? WHERE method = 'passphrase'",
            (json.dumps({**json.loads(params), **change}),),
        )
    # A real subprocess with a hang guard far above what a refusal needs: deriving
    # with 4 GiB and 64 passes would take minutes (and the memory).
    proc = subprocess.run(
        [sys.executable, "-m", "bsecrets", "ls"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "BSECRETS_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_the_bounds_admit_what_init_writes(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSECRETS_INSECURE_TEST_KDF")
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    assert invoke(["init"]).exit_code == 0
    assert invoke(["put", "a"], input="v").exit_code == 0


# --- item 10: passphrases normalised --------------------------------------------


NFC_PASSPHRASE = "café crème brûlée"  # composed characters (NFC)


def test_nfd_form_opens_a_vault_made_with_nfc(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nfd = unicodedata.normalize("NFD", NFC_PASSPHRASE)
    assert nfd != NFC_PASSPHRASE
    monkeypatch.setenv("BSECRETS_PASSPHRASE", NFC_PASSPHRASE)
    assert invoke(["init"]).exit_code == 0
    assert invoke(["put", "a"], input="v").exit_code == 0
    monkeypatch.setenv("BSECRETS_PASSPHRASE", nfd)
    result = invoke(["get", "a"])
    assert result.exit_code == 0 and result.stdout == "v\n", result.stderr
    monkeypatch.setenv("BSECRETS_PASSPHRASE", "cafe creme brulee")  # not the same passphrase
    assert invoke(["get", "a"]).exit_code == 4


def test_nfc_form_opens_a_vault_made_with_nfd(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSECRETS_PASSPHRASE", unicodedata.normalize("NFD", NFC_PASSPHRASE))
    assert invoke(["init"]).exit_code == 0
    monkeypatch.setenv("BSECRETS_PASSPHRASE", NFC_PASSPHRASE)
    assert invoke(["ls"]).exit_code == 0


@pytest.mark.parametrize("blank", [" " * 12, "\t" * 9, " \t \u00a0\u2003   \u3000 ", "\n" * 8])
def test_a_new_passphrase_of_only_white_space_is_refused(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    monkeypatch.setenv("BSECRETS_PASSPHRASE", blank)
    result = invoke(["init"])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines()[0] == "error: the passphrase is only white space"
    assert result.stderr.splitlines()[1].startswith("hint: ")
    assert not vault_file(isolated).exists()


def test_short_after_normalising_is_still_short(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight code points in NFD can be fewer characters once composed."""
    monkeypatch.setenv("BSECRETS_PASSPHRASE", unicodedata.normalize("NFD", "éééé"))
    result = invoke(["init"])
    assert result.exit_code == 2 and "shorter than 8" in result.stderr
