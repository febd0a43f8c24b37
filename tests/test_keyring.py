"""``bsecrets init --keyring``: the vault key in the OS keyring.

The keyring backend is chosen once per process (PYTHON_KEYRING_BACKEND), so
everything that touches the keyring runs as a real process through run_cli:
either against the private Secret Service of tests/helpers/secret_service.py (only its
DBUS_SESSION_BUS_ADDRESS and PYTHON_KEYRING_BACKEND are passed on), or with the
conftest default, the fail backend (no usable keyring).

Every bsecrets process gets an empty stdin, so it never sees a terminal and
never prompts: a passphrase can only come from BSECRETS_PASSPHRASE.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import run_cli
from helpers.secret_service import NO_KEYRING_ENV
from helpers.values import PASSPHRASE

SERVICE = "bsecrets"
VALUE = "k3yring-value-4e1f"


# --- helpers ---------------------------------------------------------------


def bsecrets(
    args: list[str], env: dict[str, str], *, input: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return run_cli(args, input=input, env=env)


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode(errors="replace")


def assert_clean_failure(result: subprocess.CompletedProcess[bytes], code: int) -> list[str]:
    """Exit ``code``, exactly one ``error:`` line, no traceback; returns stderr's lines."""
    stderr = err(result)
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    lines = stderr.splitlines()
    assert [line for line in lines if line.startswith("error:")] == [lines[0]], stderr
    return lines


def hint_of(lines: list[str]) -> str:
    hints = [line for line in lines if line.startswith("hint:")]
    assert len(hints) == 1, lines
    return hints[0]


def vault_id_hex(vault_file: Path) -> str:
    with contextlib.closing(sqlite3.connect(vault_file)) as db:
        row = db.execute("SELECT hex(value) FROM meta WHERE key = 'vault_id'").fetchone()
    assert row is not None
    return str(row[0]).lower()


def wrap_methods(vault_file: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(vault_file)) as db:
        rows = db.execute("SELECT method FROM key_wraps WHERE principal_id = 'owner'").fetchall()
    return {method for (method,) in rows}


def keyring_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child Python with the given keyring environment."""
    result = subprocess.run(
        [sys.executable, "-c", "import keyring, keyring.errors, sys\n" + code],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def keyring_get(account: str, env: dict[str, str]) -> str | None:
    out = keyring_python(
        f"v = keyring.get_password({SERVICE!r}, {account!r})\n"
        "print('<none>' if v is None else 'value:' + v)",
        env,
    ).stdout.strip()
    return None if out == "<none>" else out.removeprefix("value:")


def keyring_set(account: str, value: str, env: dict[str, str]) -> None:
    keyring_python(f"keyring.set_password({SERVICE!r}, {account!r}, {value!r})", env)


def keyring_delete(account: str, env: dict[str, str]) -> None:
    keyring_python(
        "try:\n"
        f"    keyring.delete_password({SERVICE!r}, {account!r})\n"
        "except keyring.errors.PasswordDeleteError:\n"
        "    pass",
        env,
    )


def init_vault(env: dict[str, str], *extra: str) -> tuple[Path, str]:
    """``init --keyring`` as a process; returns the vault file and its keyring account."""
    result = bsecrets(["init", "--keyring", "--json", *extra], env)
    assert result.returncode == 0, err(result)
    info = json.loads(result.stdout)
    assert info["keyring"] is True and info["vault_created"] is True
    vault_file = Path(info["vault_file"])
    assert vault_file.is_file()
    return vault_file, f"vault-{vault_id_hex(vault_file)}"


def put(name: str, value: str, env: dict[str, str]) -> None:
    result = bsecrets(["put", name], env, input=value.encode())
    assert result.returncode == 0, err(result)


def get(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return bsecrets(["get", name], env)


@pytest.fixture
def keyring_env(secret_service: dict[str, str], isolated: Path) -> Iterator[dict[str, str]]:
    """The overrides that give a child process the private Secret Service.

    The daemon lives for the whole session, so the test's vault entry is
    removed afterwards.
    """
    env = {k: secret_service[k] for k in ("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND")}
    yield env
    vault_file = isolated / ".bsecrets" / "vault.db"
    if vault_file.is_file():
        keyring_delete(f"vault-{vault_id_hex(vault_file)}", env)


# --- 1. keyring only -------------------------------------------------------


def test_init_keyring_without_passphrase(keyring_env: dict[str, str]) -> None:
    vault_file, account = init_vault(keyring_env)
    assert wrap_methods(vault_file) == {"keyring"}  # no passphrase: no passphrase wrap

    stored = keyring_get(account, keyring_env)
    assert stored is not None, f"no keyring entry {SERVICE}/{account}"
    assert len(base64.b64decode(stored, validate=True)) == 32

    # Later processes: no passphrase, no session, no terminal; only the keyring.
    put("db/password", VALUE, keyring_env)
    result = get("db/password", keyring_env)
    assert result.returncode == 0, err(result)
    assert result.stdout == f"{VALUE}\n".encode()

    result = bsecrets(["unlock"], keyring_env)
    assert result.returncode == 0, err(result)
    assert result.stdout.startswith(b"export BSECRETS_SESSION=")
    token = result.stdout.decode().strip().split("=", 1)[1]

    # The session opens the vault where no keyring is usable.
    result = get("db/password", {**NO_KEYRING_ENV, "BSECRETS_SESSION": token})
    assert result.returncode == 0, err(result)
    assert result.stdout == f"{VALUE}\n".encode()


# --- 2. keyring plus a passphrase (the recovery path) ----------------------


def test_init_keyring_with_passphrase_opens_both_ways(keyring_env: dict[str, str]) -> None:
    vault_file, account = init_vault({**keyring_env, "BSECRETS_PASSPHRASE": PASSPHRASE})
    assert wrap_methods(vault_file) == {"keyring", "passphrase"}
    assert keyring_get(account, keyring_env) is not None
    put("api-key", VALUE, {**keyring_env, "BSECRETS_PASSPHRASE": PASSPHRASE})

    # Keyring only: no passphrase anywhere.
    result = get("api-key", keyring_env)
    assert result.returncode == 0, err(result)
    assert result.stdout == f"{VALUE}\n".encode()

    # Passphrase only: the keyring is unusable in this process ...
    result = get("api-key", {**NO_KEYRING_ENV, "BSECRETS_PASSPHRASE": PASSPHRASE})
    assert result.returncode == 0, err(result)
    assert result.stdout == f"{VALUE}\n".encode()
    # ... which is what made the passphrase necessary,
    assert_clean_failure(get("api-key", NO_KEYRING_ENV), 4)
    # and the passphrase really is checked.
    assert_clean_failure(
        get("api-key", {**NO_KEYRING_ENV, "BSECRETS_PASSPHRASE": "not the passphrase"}), 4
    )

    # Recovery: the keyring entry is lost, the passphrase still opens the vault.
    keyring_delete(account, keyring_env)
    result = get("api-key", {**keyring_env, "BSECRETS_PASSPHRASE": PASSPHRASE})
    assert result.returncode == 0, err(result)
    assert result.stdout == f"{VALUE}\n".encode()


# --- 3. no usable keyring at init ------------------------------------------


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["no-passphrase", "passphrase"])
def test_init_keyring_without_a_keyring_fails_cleanly_and_leaves_nothing(
    isolated: Path, passphrase: str | None
) -> None:
    env = dict(NO_KEYRING_ENV)
    if passphrase is not None:  # --keyring was asked for: no silent passphrase-only vault
        env["BSECRETS_PASSPHRASE"] = passphrase
    result = bsecrets(["init", "--keyring"], env)

    lines = assert_clean_failure(result, 4)  # KeyringUnavailable is a Denied error
    assert len(lines) == 2, lines
    assert "keyring" in lines[0].lower(), lines
    hint = hint_of(lines)
    assert "BSECRETS_PASSPHRASE" in hint and "keyring" in hint.lower(), hint

    # Nothing left behind: no profile (nor its staging copy), no vault file.
    leftovers = sorted(str(p.relative_to(isolated)) for p in isolated.rglob("*") if not p.is_dir())
    assert leftovers == [], leftovers
    assert not (isolated / "bsecrets.yaml").exists()
    assert not (isolated / ".bsecrets" / "vault.db").exists()

    # So the user can simply retry: a plain passphrase vault needs no --force.
    retry = bsecrets(["init"], {**NO_KEYRING_ENV, "BSECRETS_PASSPHRASE": PASSPHRASE})
    assert retry.returncode == 0, err(retry)
    assert (isolated / "bsecrets.yaml").is_file()


def test_retry_with_a_keyring_after_a_failed_init(keyring_env: dict[str, str]) -> None:
    assert bsecrets(["init", "--keyring"], NO_KEYRING_ENV).returncode == 4
    _, account = init_vault(keyring_env)
    assert keyring_get(account, keyring_env) is not None
    put("x", VALUE, keyring_env)
    assert get("x", keyring_env).stdout == f"{VALUE}\n".encode()


# --- 4. the keyring entry is gone, or no keyring at all ---------------------


def test_keyring_entry_gone(keyring_env: dict[str, str]) -> None:
    _, account = init_vault(keyring_env)
    put("x", VALUE, keyring_env)
    keyring_delete(account, keyring_env)
    assert keyring_get(account, keyring_env) is None

    for args in (["get", "x"], ["unlock"]):
        lines = assert_clean_failure(bsecrets(args, keyring_env), 4)
        assert "keyring" in lines[0].lower() and "no key" in lines[0], lines
        hint_of(lines)


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["no-passphrase", "passphrase"])
def test_keyring_only_vault_without_a_keyring(
    keyring_env: dict[str, str], passphrase: str | None
) -> None:
    init_vault(keyring_env)
    put("x", VALUE, keyring_env)

    env = dict(NO_KEYRING_ENV)
    if passphrase is not None:  # the vault has no passphrase wrap: no help
        env["BSECRETS_PASSPHRASE"] = passphrase
    for args in (["get", "x"], ["unlock"]):
        lines = assert_clean_failure(bsecrets(args, env), 4)
        assert "keyring" in lines[0].lower(), lines
        hint = hint_of(lines)
        assert "keyring" in hint.lower(), hint

    # The vault itself is untouched: with the keyring back, it opens.
    assert get("x", keyring_env).stdout == f"{VALUE}\n".encode()


# --- 5. a wrong key in the keyring ------------------------------------------


def test_wrong_key_in_keyring_is_denied(keyring_env: dict[str, str]) -> None:
    _, account = init_vault(keyring_env)
    put("x", VALUE, keyring_env)
    good = keyring_get(account, keyring_env)
    wrong = base64.b64encode(os.urandom(32)).decode()
    assert wrong != good
    keyring_set(account, wrong, keyring_env)

    for args in (["get", "x"], ["unlock"]):
        result = bsecrets(args, keyring_env)
        lines = assert_clean_failure(result, 4)  # not 5: the vault file is fine
        assert "keyring" in lines[0].lower(), lines
        assert VALUE.encode() not in result.stdout + result.stderr

    # Put the right key back: the vault was not damaged by the failed attempts.
    assert good is not None
    keyring_set(account, good, keyring_env)
    assert get("x", keyring_env).stdout == f"{VALUE}\n".encode()


@pytest.mark.parametrize(
    "stored",
    ["not base64 at all!", base64.b64encode(bytes(range(20))).decode()],
    ids=["not-base64", "20-bytes"],
)
def test_malformed_keyring_entry_is_a_clean_error(keyring_env: dict[str, str], stored: str) -> None:
    _, account = init_vault(keyring_env)
    put("x", VALUE, keyring_env)
    keyring_set(account, stored, keyring_env)
    result = bsecrets(["get", "x"], keyring_env)
    assert result.returncode in (4, 5), err(result)
    assert_clean_failure(result, result.returncode)


def test_init_force_keyring_on_existing_vault_reports_the_truth(
    keyring_env: dict[str, str],
) -> None:
    first = bsecrets(["init"], {**keyring_env, "BSECRETS_PASSPHRASE": PASSPHRASE})
    assert first.returncode == 0, err(first)
    vault_file = Path.cwd() / ".bsecrets" / "vault.db"
    account = f"vault-{vault_id_hex(vault_file)}"

    result = bsecrets(["init", "--force", "--keyring", "--json"], keyring_env)
    if result.returncode != 0:  # refusing is fine, if it is a clean error
        assert_clean_failure(result, result.returncode)
        return
    info = json.loads(result.stdout)
    assert info["vault_created"] is False
    in_keyring = keyring_get(account, keyring_env) is not None
    assert info["keyring"] is in_keyring, (info, in_keyring)
