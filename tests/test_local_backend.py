"""The local vault against the backend contract, plus what only it promises."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.local_vault import make_vault
from helpers.values import PASSPHRASE

from bsecrets.backends.local.adapter import LocalAdapter
from bsecrets.testing.backend import ACTOR, BackendContract
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault


class TestLocalContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> LocalAdapter:
        vault = make_vault(tmp_path / "v" / "vault.db")
        return LocalAdapter(vault, "dev", utcnow)


def test_environments_are_isolated(tmp_path: Path) -> None:
    vault = make_vault(tmp_path / "v" / "vault.db")
    dev, prod = LocalAdapter(vault, "dev", utcnow), LocalAdapter(vault, "prod", utcnow)
    dev.put("db", b"dev-value", actor=ACTOR)
    prod.put("db", b"prod-value", actor=ACTOR)
    assert dev.get("db").value == b"dev-value"
    assert prod.get("db").value == b"prod-value"
    assert vault.env_keys("dev") != vault.env_keys("prod")


def test_values_and_names_are_not_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "v" / "vault.db"
    vault = make_vault(path)
    LocalAdapter(vault, "dev", utcnow).put("very-secret-name", b"CANARY-VALUE-123", actor=ACTOR)
    vault.close()
    raw = b"".join(p.read_bytes() for p in path.parent.glob("vault.db*"))
    assert b"CANARY-VALUE-123" not in raw
    assert b"very-secret-name" not in raw


def test_reopen_with_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "v" / "vault.db"
    vault = make_vault(path)
    LocalAdapter(vault, "dev", utcnow).put("x", b"1", actor=ACTOR)
    vault.close()
    again = LocalVault.open(path, Credentials(passphrase=PASSPHRASE), utcnow)
    assert LocalAdapter(again, "dev", utcnow).get("x").value == b"1"


def test_nonces_do_not_repeat(tmp_path: Path) -> None:
    vault = make_vault(tmp_path / "v" / "vault.db")
    backend = LocalAdapter(vault, "dev", utcnow)
    for _i in range(200):
        backend.put("same", b"same value", actor=ACTOR)
    rows = vault.store._query("SELECT substr(value, 1, 12) FROM versions")
    assert len({bytes(r[0]) for r in rows}) == 200


def test_failed_first_write_leaves_no_half_created_environment(tmp_path: Path) -> None:
    """The first write to an environment creates its key; if that write fails,
    the key is rolled back with it, and the next write works."""
    from bsecrets.errors import VersionConflict

    vault = make_vault(tmp_path / "v" / "vault.db")
    backend = LocalAdapter(vault, "fresh", utcnow)
    with pytest.raises(VersionConflict):
        backend.put("x", b"1", actor=ACTOR, if_version=3)
    assert vault.store.sealed_env_key("fresh", "owner") is None
    assert backend.put("x", b"1", actor=ACTOR).version == 1
    assert backend.get("x").value == b"1"


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    from bsecrets.errors import VersionConflict

    vault = make_vault(tmp_path / "v" / "vault.db")
    backend = LocalAdapter(vault, "dev", utcnow)
    backend.put("existing", b"0", actor=ACTOR)
    with pytest.raises(VersionConflict), backend.transaction():
        backend.put("a", b"1", actor=ACTOR)
        backend.put("b", b"2", actor=ACTOR)
        backend.put("existing", b"x", actor=ACTOR, if_version=0)  # fails: rolls back a and b
    assert [s.name for s in backend.list_secrets()] == ["existing"]
    with backend.transaction():
        backend.put("a", b"1", actor=ACTOR)
        backend.put("b", b"2", actor=ACTOR)
    assert [s.name for s in backend.list_secrets()] == ["a", "b", "existing"]
    assert backend.get("b").value == b"2"
