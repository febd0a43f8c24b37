"""A local vault file made in-process (no profile, no keyring), for tests of the
vault and the backends that use it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bsecrets.backends.local.adapter import LocalAdapter
from bsecrets.testing.backend import ACTOR
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault
from helpers.values import PASSPHRASE


def make_vault(path: Path) -> LocalVault:
    """A new vault at ``path`` whose passphrase is PASSPHRASE (the weak test KDF when
    BSECRETS_INSECURE_TEST_KDF is set, as the autouse fixture does)."""
    return LocalVault.create(
        path, Credentials(passphrase=PASSPHRASE), utcnow, passphrase=PASSPHRASE, use_keyring=False
    )


def dev_adapter(path: Path) -> Iterator[LocalAdapter]:
    """A fixture's body: the local adapter of environment ``dev`` in a new vault at
    ``path``, with one secret (so the environment and its manifest exist)."""
    vault = make_vault(path)
    adapter = LocalAdapter(vault, "dev", utcnow)
    adapter.put("first", b"0", actor=ACTOR)
    yield adapter
    vault.close()


class Statements:
    """The statements the adapter's connection runs, up to their WHERE (SQLite's trace
    callback): ``with Statements(backend) as seen:`` counts them in ``seen``."""

    def __init__(self, backend: LocalAdapter) -> None:
        self.conn = backend.store._conn
        self.seen: Counter[str] = Counter()

    def __enter__(self) -> Counter[str]:
        self.conn.set_trace_callback(lambda sql: self.seen.update([sql.split(" WHERE ")[0]]))
        return self.seen

    def __exit__(self, *exc: object) -> None:
        self.conn.set_trace_callback(None)


def counted(seen: Counter[str], start: str) -> int:
    """How many of the statements ``seen`` (Statements) begin with ``start``."""
    return sum(n for sql, n in seen.items() if sql.startswith(start))


def names_in_bucket(backend: LocalAdapter, bucket: int, count: int) -> list[str]:
    """``count`` secret names whose lookups fall in ``bucket`` of environment dev."""
    keys = backend.vault.env_keys("dev")
    assert keys is not None
    names = (f"N{i}" for i in range(100_000))
    return [n for n in names if keys.lookup(n)[0] == bucket][:count]


def second_connection(backend: LocalAdapter) -> LocalAdapter:
    """The same environment through a connection of its own (as another process has):
    nothing kept from ``backend``'s reads."""
    vault = LocalVault.open(backend.store.path, Credentials(passphrase=PASSPHRASE), utcnow)
    return LocalAdapter(vault, "dev", utcnow)
