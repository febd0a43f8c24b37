"""The audit events of many writes in one transaction (an import), now that the local
audit log reads its tables, intakes, chain tail and the manifests once per write
transaction, and again only after the transaction changed them (audit/local_log.py,
audit/witness.py): the same events, fields, states and chain as a log that reads
them for every event, and every secret still checked against the caller's grant.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke
from helpers.local_vault import make_vault
from helpers.values import PASSPHRASE

from bsecrets.audit.events import Action
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.audit.logger import AuditLogger
from bsecrets.audit.witness import state_of
from bsecrets.backends.local.adapter import LocalAdapter
from bsecrets.config.loader import load_profile
from bsecrets.errors import AccessDenied
from bsecrets.models import AccessContext
from bsecrets.services.manager import SecretsManager
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault

DB = Path(".bsecrets/vault.db")
NAMES = [f"APP_KEY_{i:03d}" for i in range(40)]
ALICE = "alice's own long passphrase 1"
# what differs between the same put imported and put alone: when, in which process and
# transaction, at which place in the chain, and the manifests its transaction left
CIRCUMSTANCES = ("time", "request_id", "seq", "state", "env", "mac")


def events(path: Path = DB) -> list[dict[str, Any]]:
    """Every event of the vault's audit log, decrypted (the owner's key)."""
    vault = LocalVault.open(path, Credentials(passphrase=PASSPHRASE, use_keyring=False), utcnow)
    try:
        log = LocalAuditLog(vault)
        keys = log.reading_keys()
        assert keys is not None
        with vault.store.read():
            return list(log.events(keys))
    finally:
        vault.close()


def stored_state() -> dict[str, list[Any]]:
    """The manifests in the file, as an event records them."""
    conn = sqlite3.connect(DB)
    try:
        rows = conn.execute("SELECT env, generation, mac FROM manifests").fetchall()
    finally:
        conn.close()
    return state_of({env: (generation, mac) for env, generation, mac in rows})


def ok(args: list[str], input: str | None = None) -> None:
    result = invoke(args, input=input)
    assert result.exit_code == 0, result.stderr


def test_an_imports_events_are_the_puts_one_by_one(vault: Path) -> None:
    """Each put of an import records what the same put alone records, but for when, where
    and the manifests: those the transaction found (the manifest is written once, at
    its end), and the import's own event those it left."""
    ok(["put", NAMES[1]], input="older")  # one changed, the rest new
    (vault / "in.env").write_text("".join(f"{n}=value-{n}\n" for n in reversed(NAMES)))
    found = stored_state()
    ok(["import", "in.env"])
    imported = events()[-len(NAMES) - 1 :]  # after its reads (ls, the changed one's get)
    left = stored_state()
    assert left != found
    for name in NAMES:  # the same puts, one command each
        ok(["put", name, "-e", "prod"], input=f"value-{name}")
    alone = events()[-len(NAMES) :]

    puts, batch = imported[:-1], imported[-1]
    first = imported[0]["seq"]
    assert [e["seq"] for e in imported] == list(range(first, first + len(NAMES) + 1))
    assert [e["name"] for e in puts] == NAMES and {e["env"] for e in puts} == {"dev"}
    assert [e["version"] for e in puts] == [1, 2, *[1] * (len(NAMES) - 2)]
    assert all(e["state"] == found for e in puts)
    assert {e["request_id"] for e in imported} == {batch["request_id"]}
    assert batch["action"] == Action.IMPORT and batch["names"] == NAMES
    assert batch["state"] == left and batch["outcome"] == "ok"

    def strip(event: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in event.items() if k not in CIRCUMSTANCES}

    versions_in_prod = [{**strip(e), "version": 1} for e in puts]
    assert [strip(e) for e in alone] == versions_in_prod
    assert {frozenset(e) for e in puts} == {frozenset(e) for e in alone}
    for command in (["audit", "verify"], ["verify"]):
        result = invoke(command)
        assert result.exit_code == 0, result.stderr


def test_each_event_records_the_manifests_its_transaction_left_so_far(tmp_path: Path) -> None:
    """Events of one write transaction with manifests written between them (a put of
    each environment commits its manifest at once): each event records them as they
    are when it is written, the new ones included, and the chain verifies."""
    vault = make_vault(tmp_path / "vault.db")
    log = LocalAuditLog(vault)
    logger = AuditLogger(log, AccessContext("ann", "box", 1), utcnow, {})
    dev, staging = LocalAdapter(vault, "dev", utcnow), LocalAdapter(vault, "staging", utcnow)
    steps = [
        lambda: None,
        lambda: dev.put("a", b"1", actor="ann"),  # creates dev's manifest, then writes it
        lambda: None,  # nothing written since the last event
        lambda: dev.put("a", b"2", actor="ann"),
        lambda: staging.put("b", b"3", actor="ann"),  # another environment appears
        lambda: None,
    ]
    expected = []
    with vault.store.write():
        for step in steps:
            step()
            logger.record(Action.PUT, "dev", name="a")
            expected.append(state_of(vault.store.manifest_macs()))
    keys = log.reading_keys()
    assert keys is not None
    with vault.store.read():
        written = list(log.events(keys))
    assert [e["state"] for e in written[-len(steps) :]] == expected
    assert len({str(s) for s in expected}) == 4 and "staging" in expected[-1]
    assert log.verify(keys, None).problem is None
    vault.close()


def test_a_put_outside_the_grant_fails_the_transaction_midway(vault: Path) -> None:
    """A principal's grant covers A_* only: a transaction announced for two such names
    whose third put names another secret is refused at that put (each put is checked
    on its own, not once per transaction), and nothing of it is written."""
    add = invoke(["access", "principal", "add", "alice"], env={"BSECRETS_NEW_PASSPHRASE": ALICE})
    assert add.exit_code == 0, add.stderr
    ok(["access", "grant", "alice", "-e", "dev", "--role", "write", "--only", "A_*"])
    manager = SecretsManager(
        load_profile(vault / "bsecrets.yaml"),
        Credentials(passphrase=ALICE, principal="alice", use_keyring=False),
    )
    try:
        with (
            pytest.raises(AccessDenied, match="'B_1' is outside"),
            manager.transaction("dev", action=Action.IMPORT, names=["A_1", "A_2"]),
        ):
            manager.put("dev", "A_1", b"one")
            manager.put("dev", "A_2", b"two")
            manager.put("dev", "B_1", b"three")
    finally:
        manager.close()
    listed = invoke(["ls", "-e", "dev", "--json"])
    assert listed.exit_code == 0 and "A_1" not in listed.stdout, listed.stderr
    # alice's events wait in the intake, in the transaction: only the import's own
    # (written after the rollback) is left, chained late by the owner's ls
    late = [e for e in events() if e["actor"]["principal"] == "alice"]
    assert [(e["action"], e["outcome"], e["late"]) for e in late] == [("import", "denied", True)]
    assert "'B_1' is outside" in late[0]["reason"]
    for command in (["audit", "verify"], ["verify"]):
        result = invoke(command)
        assert result.exit_code == 0, result.stderr
