"""AuditLogger.together: exec's listing and its read write their two events in one
write transaction (one commit, so one fsync, fewer: #20), with the same events, in
the same order, as when each wrote its own; any other event inside writes the held
ones first, and a block that fails still writes them."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke
from helpers.local_vault import counted, make_vault
from helpers.values import PASSPHRASE

from bsecrets.audit.events import Action, EventFields
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.audit.logger import AuditLogger, AuditSink
from bsecrets.config.loader import load_profile
from bsecrets.errors import SecretNotFound, StorageError
from bsecrets.models import AccessContext
from bsecrets.services import exec_env
from bsecrets.services.manager import SecretsManager
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault

NAMES = ["APP_A", "APP_B", "APP_C"]


def events(vault: LocalVault) -> list[dict[str, Any]]:
    log = LocalAuditLog(vault)
    keys = log.reading_keys()
    if keys is None:  # no event chained yet
        return []
    with vault.store.read():
        return list(log.events(keys))


def test_execs_listing_and_read_commit_in_one_write_transaction(vault: Path) -> None:
    for name in NAMES:
        assert invoke(["put", name], input=f"value-{name}").exit_code == 0
    creds = Credentials(passphrase=PASSPHRASE)
    manager = SecretsManager(load_profile(vault / "bsecrets.yaml"), creds)
    store = manager.local_vault().store
    seen: Counter[str] = Counter()
    store._conn.set_trace_callback(lambda sql: seen.update([sql.split(" WHERE ")[0]]))
    before = len(events(manager.local_vault()))
    request = exec_env.Request([None], [], dict(os.environ))
    prepared = exec_env.prepare(manager, request)
    store._conn.set_trace_callback(None)

    assert prepared.injected == {n: f"value-{n}".encode() for n in NAMES}
    assert counted(seen, "BEGIN IMMEDIATE") == 1  # was 2: one for each event
    assert counted(seen, "INSERT INTO audit_events") == 2
    written = events(manager.local_vault())
    assert len(written) == before + 2
    listing, read = written[-2:]
    assert [listing["action"], read["action"]] == [Action.LS, Action.EXEC]
    assert read["names"] == NAMES and read["seq"] == listing["seq"] + 1
    assert listing["request_id"] == read["request_id"]
    manager.close()
    assert invoke(["audit", "verify"]).exit_code == 0


def logger_of(tmp_path: Path) -> tuple[LocalVault, AuditLogger]:
    vault = make_vault(tmp_path / "vault.db")
    return vault, AuditLogger(LocalAuditLog(vault), AccessContext("ann", "box", 1), utcnow, {})


def read_op(logger: AuditLogger, action: Action, *, remote: bool = False) -> None:
    with logger.operation(action, "dev", changes=False, remote=remote):
        pass


def test_other_events_write_the_held_ones_first_in_order(tmp_path: Path) -> None:
    vault, logger = logger_of(tmp_path)
    start = len(events(vault))
    with logger.together():
        read_op(logger, Action.LS)
        assert len(events(vault)) == start  # held
        with logger.operation(Action.GET, "dev", changes=False, remote=True):
            # a remote call's intent, before the call: the held event, then it
            assert [e["outcome"] for e in events(vault)[start:]] == ["ok", "started"]
        read_op(logger, Action.EXEC)
        with pytest.raises(SecretNotFound), logger.operation(Action.GET, "dev", changes=False):
            raise SecretNotFound("no secret 'X'")  # a failed read: written at once
        logger.record(Action.AUDIT_LOG)  # an event outside an operation: at once
        read_op(logger, Action.READ)
    got = [(e["action"], e["outcome"]) for e in events(vault)[start:]]
    assert got == [
        ("ls", "ok"), ("get", "started"), ("get", "ok"), ("exec", "ok"),
        ("get", "not_found"), ("audit.log", "ok"), ("read", "ok"),
    ]  # fmt: skip
    keys = LocalAuditLog(vault).reading_keys()
    assert keys is not None and LocalAuditLog(vault).verify(keys, None).problem is None
    vault.close()


def test_a_block_that_fails_still_writes_the_held_events(tmp_path: Path) -> None:
    vault, logger = logger_of(tmp_path)
    start = len(events(vault))
    with pytest.raises(KeyError), logger.together():
        read_op(logger, Action.LS)
        raise KeyError("the block failed after the listing")
    assert [e["action"] for e in events(vault)[start:]] == ["ls"]
    vault.close()


class FullDisk(AuditSink):
    """A sink whose events cannot be written (a full disk, a read-only file system)."""

    def append(self, fields: EventFields) -> None:
        raise StorageError("disk full")


def test_held_events_that_cannot_be_written_fail_the_block() -> None:
    logger = AuditLogger(FullDisk(), AccessContext("ann", "box", 1), utcnow, {})
    handed_on = []
    with pytest.raises(StorageError):
        with logger.together():
            read_op(logger, Action.LS)
            read_op(logger, Action.EXEC)
        handed_on.append("values")  # what the caller does after the block: never reached
    assert handed_on == [] and logger.written == 0


def test_an_unknown_environment_is_reported_before_the_vault_is_opened(vault: Path) -> None:
    """Holding the events opens the audit log, so the vault: the environment's name is
    checked first, as before the events were written together (exit 3, not the vault's
    problem: here a vault others can read, exit 4)."""
    (vault / ".bsecrets" / "vault.db").chmod(0o644)
    try:
        result = invoke(["exec", "-e", "nope", "--", "true"])
        assert result.exit_code == 3
        assert "unknown environment 'nope'" in result.stderr
        assert invoke(["exec", "--", "true"]).exit_code == 4  # the vault's problem stands
    finally:
        (vault / ".bsecrets" / "vault.db").chmod(0o600)
