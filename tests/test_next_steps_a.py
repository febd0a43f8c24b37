"""Issue #12, part A: the hints of the vault file, the audit log and the backends
that name a bsecrets command, option or variable are next steps (``error.step``)
worded by the command line (bsecrets.cli.hints.STEPS). These pin the wording the
CLI shows for each, byte for byte as it was, where no other test checks it."""

from __future__ import annotations

import json
import sqlite3
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import botocore.exceptions as bx
import pytest
from helpers.cli import hint_of, invoke
from helpers.file_keyring import FileKeyring, file_keyring  # noqa: F401
from helpers.local_vault import make_vault

from bsecrets.audit import keyring_anchor
from bsecrets.audit.chain import Anchor
from bsecrets.backends.aws.adapter import AWSAdapter
from bsecrets.backends.aws.errors import translate
from bsecrets.backends.aws.settings import AwsSettings, check_recovery_days
from bsecrets.backends.aws.writes import MetadataPlan, SecretWriter
from bsecrets.backends.vault import codec
from bsecrets.backends.vault.adapter import VaultAdapter
from bsecrets.backends.vault.errors import VaultHTTPError
from bsecrets.backends.vault.errors import translate as vault_translate
from bsecrets.cli.hints import hint_for
from bsecrets.errors import (
    BsecretsError,
    Denied,
    KeyringUnavailable,
    NotFound,
    SecretNotFound,
    UsageError,
)
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile import session, unlock
from bsecrets.vaultfile.connection import _connect_read_only
from bsecrets.vaultfile.credentials import Credentials

AWS = AwsSettings(env="prod", region="eu-west-1", endpoint_url="http://127.0.0.1:1")
VERIFY = "'bsecrets audit verify' shows what else changed"


def hint_line(result: Any) -> str:
    """The hint of a failed command, from its 'hint:' line and from --json alike."""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    return str(lines[1].removeprefix("hint: "))


def client_error(code: str, status: int = 400) -> bx.ClientError:
    response: Any = {"Error": {"Code": code, "Message": "boom"}}
    response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return bx.ClientError(response, "GetSecretValue")


# --- the audit log ------------------------------------------------------------


def test_an_invalid_anchor() -> None:
    assert hint_of(lambda: Anchor.parse("nope")) == (
        "give it as printed by 'bsecrets audit anchor': SEQ:64-HEX-DIGITS"
    )


def test_a_malformed_anchor_in_the_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyring_anchor, "keyring_get_text", lambda *_: "not an anchor")
    assert hint_of(lambda: keyring_anchor.read_anchor(b"\x0a\x0b")) == (
        "it was changed outside bsecrets: check the keyring entry bsecrets/audit-0a0b, "
        "then run 'bsecrets audit verify --anchor SEQ:HEX' with an anchor you trust"
    )


def _audit_db(work: Path) -> sqlite3.Connection:
    return sqlite3.connect(work / ".bsecrets" / "vault.db")


def _damage_event(work: Path, seq: int) -> None:
    with _audit_db(work) as db:
        record = db.execute("SELECT record FROM audit_events WHERE seq = ?", (seq,)).fetchone()[0]
        damaged = bytes([record[0] ^ 1]) + bytes(record[1:])
        db.execute("UPDATE audit_events SET record = ? WHERE seq = ?", (damaged, seq))
    db.close()


def test_an_event_that_does_not_authenticate(vault: Path) -> None:
    for i in range(3):
        assert invoke(["put", f"k{i}"], input=f"v{i}").exit_code == 0
    _damage_event(vault, 2)
    result = invoke(["audit", "log"])
    assert result.exit_code == 5, result.stderr
    assert hint_line(result) == "run 'bsecrets audit verify' to see what was changed"


def test_a_damaged_log_is_not_archived(vault: Path) -> None:
    for i in range(3):
        assert invoke(["put", f"k{i}"], input=f"v{i}").exit_code == 0
    _damage_event(vault, 2)
    result = invoke(["audit", "archive", "--before", "2999-01-01", "--to", "old.bsa"])
    assert result.exit_code == 5, result.stderr
    assert hint_line(result) == "run 'bsecrets audit verify'; a damaged log is not archived"


def test_a_truncated_log_is_not_anchored(vault: Path, file_keyring: FileKeyring) -> None:  # noqa: F811
    for i in range(3):
        assert invoke(["put", f"k{i}"], input=f"v{i}").exit_code == 0
    assert invoke(["get", "k1"]).exit_code == 0
    assert invoke(["audit", "anchor"]).exit_code == 0
    with _audit_db(vault) as db:
        db.execute("DELETE FROM audit_events WHERE seq > 4")
    db.close()
    result = invoke(["lock"])
    assert result.exit_code == 5, result.stderr
    assert hint_line(result) == (
        "events were removed or the log was replaced after it was anchored; the anchor "
        "in the OS keyring was left as it was: run 'bsecrets audit verify'"
    )


def test_rows_the_chain_does_not_witness(vault: Path) -> None:
    assert invoke(["put", "k0"], input="v0").exit_code == 0
    with _audit_db(vault) as db:
        db.execute("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    db.close()
    result = invoke(["get", "k0", "--json"])
    assert result.exit_code == 5, result.stderr
    error = json.loads(result.stderr.splitlines()[-1])
    assert error["hint"] == (
        "the vault file was changed outside bsecrets (rows put back from an older copy, or "
        f"removed): restore it from a backup; {VERIFY}"
    )


# --- the vault file -----------------------------------------------------------


def test_another_owner_key(tmp_path: Path) -> None:
    opened = make_vault(tmp_path / "vault.db")
    assert hint_of(lambda: opened._check_owner_row(b"\x00" * 32)) == (
        f"restore the vault file from a backup; {VERIFY}"
    )


def test_a_read_only_vault_with_a_wal(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    Path(f"{path}-wal").write_bytes(b"x")
    assert hint_of(lambda: _connect_read_only(path)) == (
        "open it once where it is writable (bsecrets ls), then it reads here too"
    )


def test_a_session_longer_than_a_week() -> None:
    def start() -> object:
        return session.start(b"v" * 16, b"k" * 32, b"p" * 32, timedelta(days=8), utcnow())

    assert hint_of(start) == "use --ttl 7d or less"


def test_a_keyring_only_vault_without_a_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_keyring(*_: object) -> bytes:
        raise KeyringUnavailable("no keyring")

    monkeypatch.setattr(unlock, "_open_keyring_wrap", no_keyring)
    store: Any = SimpleNamespace(vault_id=b"v" * 16, key_wraps=lambda _: {"keyring": b""})
    assert hint_of(lambda: unlock._unlock(store, Credentials(), utcnow(), False)) == (
        "this vault opens only with the OS keyring that 'init --keyring' used: run where "
        "it is available, or pass a session from there (BSECRETS_SESSION)"
    )


# --- the local backend --------------------------------------------------------


def test_a_deleted_local_secret(vault: Path) -> None:
    assert invoke(["put", "db"], input="v").exit_code == 0
    assert invoke(["rm", "db"]).exit_code == 0
    restore = "restore it with 'bsecrets restore db'"
    assert hint_line(invoke(["get", "db"])) == restore
    assert hint_line(invoke(["rm", "db"])) == restore


def test_no_recovery_window_outside_aws(vault: Path) -> None:
    assert invoke(["put", "db"], input="v").exit_code == 0
    assert hint_line(invoke(["rm", "db", "--recovery-days", "7"])) == (
        "--recovery-days applies to aws environments; elsewhere 'rm' keeps the secret "
        "until 'rm --purge'"
    )


# --- AWS ----------------------------------------------------------------------


def test_aws_translations() -> None:
    denied = translate(client_error("AccessDeniedException"), AWS, "reading secret 'db'")
    assert hint_for(denied) == (
        "check the caller's IAM policy ('bsecrets aws policy -e prod' prints what bsecrets "
        "needs) and the KMS key policy"
    )
    missing = translate(
        client_error("ResourceNotFoundException"), AWS, "reading secret 'db'", subject="secret 'db'"
    )
    assert hint_for(missing) == "list what exists with 'bsecrets ls -e prod'"
    other = translate(
        client_error("ResourceNotFoundException"), AWS, "checking", not_found_hint="fix the key"
    )
    assert hint_for(other) == "fix the key"
    sdk = translate(bx.BotoCoreError(), AWS, "reading secret 'db'")
    assert hint_for(sdk) == "rerun with BSECRETS_DEBUG=1 to see the details"


def test_aws_recovery_window() -> None:
    assert hint_of(lambda: check_recovery_days(3)) == (
        "AWS keeps a deleted secret 7 to 30 days; to delete at once use 'bsecrets rm NAME --purge'"
    )


def test_aws_deleted_and_missing_versions() -> None:
    def gone(*_: object, **__: object) -> None:
        raise SecretNotFound("gone")

    adapter = AWSAdapter.__new__(AWSAdapter)
    adapter.env = "prod"
    adapter.settings = SimpleNamespace(recovery_days=30)  # type: ignore[assignment]
    adapter.budget = nullcontext  # type: ignore[method-assign]
    meta = {"DeletedDate": datetime(2026, 1, 2, tzinfo=UTC)}
    adapter.api = SimpleNamespace(  # type: ignore[assignment]
        call=gone, versions=lambda *_: [], describe=lambda _: ("sid", meta)
    )
    restore = "restore it with 'bsecrets restore db -e prod'"
    assert hint_for(adapter._deleted("db", meta)) == restore
    assert hint_of(lambda: adapter.delete("db")) == restore
    assert hint_of(lambda: adapter._read_version("db", "sid", 2)) == (
        "list the versions AWS still keeps with 'bsecrets history db'; AWS removes "
        "unlabelled versions beyond 100 once they are 24 hours old"
    )


@pytest.mark.parametrize(
    ("inner", "hint"),
    [
        (
            translate(client_error("AccessDeniedException"), AWS, "tagging"),
            "check the caller's IAM policy ('bsecrets aws policy -e prod' prints what "
            "bsecrets needs) and the KMS key policy",
        ),
        (Denied("no", hint="ask the admin"), "ask the admin"),
        (NotFound("gone"), "check with 'bsecrets history db'"),
    ],
    ids=["step", "hint", "none"],
)
def test_aws_metadata_lost_after_the_value(inner: BsecretsError, hint: str) -> None:
    def fail(*_: object, **__: object) -> None:
        raise inner

    writer = SecretWriter(SimpleNamespace(env="prod", call=fail))  # type: ignore[arg-type]
    plan = MetadataPlan(untag=[], tag={}, user_tags=True, description=None)
    error = hint_of(lambda: writer._record("db", "sid", 3, plan, "tags"))
    assert error == f"do not repeat the put (a retry would store version 4); {hint}"


# --- Vault --------------------------------------------------------------------


def test_vault_deleted_versions() -> None:
    destroyed = codec.deleted_error("db", "staging", {"destroyed": True})
    assert hint_for(destroyed) == "write a new version with 'bsecrets put db'"
    deleted = codec.deleted_error("db", "staging", {})
    assert hint_for(deleted) == "restore it with 'bsecrets restore db'"


def test_vault_denied() -> None:
    denied = vault_translate(VaultHTTPError(403, []), what="reading secret 'db'", env="staging")
    assert hint_for(denied) == (
        "check the Vault token and its policies; 'bsecrets vault policy -e staging' "
        "prints the policy bsecrets needs"
    )
    given = vault_translate(VaultHTTPError(403, []), what="x", env="staging", hint="log in")
    assert hint_for(given) == "log in"


@pytest.mark.parametrize(
    ("inner", "hint"),
    [
        (
            vault_translate(VaultHTTPError(403, []), what="patching", env="staging"),
            "check the Vault token and its policies; 'bsecrets vault policy -e staging' "
            "prints the policy bsecrets needs",
        ),
        (UsageError("no", hint="fix it"), "fix it"),
        (NotFound("gone"), "check 'bsecrets history NAME'"),
    ],
    ids=["step", "hint", "none"],
)
def test_vault_metadata_lost_after_the_value(inner: BsecretsError, hint: str) -> None:
    def fail(*_: object) -> None:
        raise inner

    adapter = VaultAdapter.__new__(VaultAdapter)
    adapter.env = "staging"
    adapter.settings = SimpleNamespace(mount="secret")  # type: ignore[assignment]
    adapter.vault = SimpleNamespace(call=fail, api=lambda *_: "path")  # type: ignore[assignment]
    error = hint_of(lambda: adapter._record("db", "p/db", 2, {}, "tags"))
    assert error == f"do not repeat the put (a retry would store version 3); {hint}"


def test_aws_tags_it_may_not_record() -> None:
    def denied(*_: object, **__: object) -> None:
        raise Denied("no")

    writer = SecretWriter(SimpleNamespace(env="prod", call=denied))  # type: ignore[arg-type]
    plan = MetadataPlan(untag=[], tag={}, user_tags=True, description=None)
    assert hint_of(lambda: writer._check_can_record("db", "sid", {}, plan, "tags")) == (
        "allow secretsmanager:TagResource, UntagResource and UpdateSecret on the secret "
        "('bsecrets aws policy -e prod' prints the policy), or put without --tag and "
        "--description"
    )


def test_vault_tags_it_may_not_record() -> None:
    answer = {"data": {"secret/metadata/app/db": ["read"]}}
    adapter = VaultAdapter.__new__(VaultAdapter)
    adapter.env = "staging"
    adapter.settings = SimpleNamespace(mount="secret", prefix="app")  # type: ignore[assignment]
    adapter.vault = SimpleNamespace(call=lambda _: answer)  # type: ignore[assignment]
    assert hint_of(lambda: adapter._check_can_record("db", "app/db", "tags")) == (
        "add 'patch' on secret/metadata/app/* to the token's policy ('bsecrets vault policy "
        "-e staging' prints it), or put without --tag and --description"
    )
