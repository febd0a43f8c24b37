"""The sealed cache remote backends keep their login tokens in."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers.local_vault import make_vault
from helpers.values import PASSPHRASE

from bsecrets.vaultfile.cache import SealedCache
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def test_round_trip_and_expiry(tmp_path: Path) -> None:
    vault = make_vault(tmp_path / "v" / "vault.db")
    cache = SealedCache(vault, clock)
    assert cache.get("vault", "staging") is None
    cache.put("vault", "staging", {"token": "s.abc"}, NOW + timedelta(minutes=5))
    assert cache.get("vault", "staging") == {"token": "s.abc"}
    later = SealedCache(vault, lambda: NOW + timedelta(minutes=6))
    assert later.get("vault", "staging") is None
    cache.delete("vault", "staging")
    assert cache.get("vault", "staging") is None


def test_entries_are_sealed_and_bound(tmp_path: Path) -> None:
    path = tmp_path / "v" / "vault.db"
    vault = make_vault(path)
    cache = SealedCache(vault, clock)
    cache.put("vault", "a", {"token": "TOKEN-CANARY-1"}, NOW + timedelta(hours=1))
    cache.put("vault", "b", {"token": "other"}, NOW + timedelta(hours=1))
    vault.close()
    raw = b"".join(p.read_bytes() for p in path.parent.glob("vault.db*"))
    assert b"TOKEN-CANARY-1" not in raw
    with sqlite3.connect(path) as db:  # move a's entry onto b: must not be accepted
        (record,) = db.execute("SELECT record FROM caches WHERE key='a'").fetchone()
        db.execute("UPDATE caches SET record = ? WHERE key='b'", (record,))
    again = SealedCache(LocalVault.open(path, Credentials(passphrase=PASSPHRASE), clock), clock)
    assert again.get("vault", "b") is None
    assert again.get("vault", "a") == {"token": "TOKEN-CANARY-1"}


def test_not_used_when_the_vault_would_need_a_prompt(tmp_path: Path) -> None:
    path = tmp_path / "v" / "vault.db"
    make_vault(path).close()
    locked = lambda: LocalVault.open(path, Credentials(prompt=lambda _: PASSPHRASE), clock)  # noqa: E731
    assert SealedCache.open_quietly(locked, clock) is None
    unlocked = lambda: LocalVault.open(path, Credentials(passphrase=PASSPHRASE), clock)  # noqa: E731
    assert SealedCache.open_quietly(unlocked, clock) is not None
    missing = lambda: LocalVault.open(tmp_path / "none.db", Credentials(), clock)  # noqa: E731
    assert SealedCache.open_quietly(missing, clock) is None
