"""The audit log in the local vault file: sealed, chained events.

Tables (created on first use):
- ``audit_events(seq, time, record, mac)``: ``record`` is the event's canonical
  JSON under AES-256-GCM with the key of the internal environment
  ``__audit__`` (its master is sealed to the owner and carried by sessions),
  with the vault id and the ``time`` column as associated data; ``mac`` is the
  chain link (audit/chain.py) under that environment's MAC key. A stolen
  file shows how many events there are and when; not who, what or which name.
- ``audit_state``: where the live log starts after archiving (first seq, the
  MAC before it, the archive files), under one HMAC.
- ``audit_intake``: events written without the audit key (a wrong passphrase,
  a locked vault while using a remote backend), sealed to the owner's public
  key. They are folded into the chain, marked ``late``, by the next event
  written with the key. Until then they are not chained: someone with write
  access to the file can delete or add intake rows unnoticed.

Archive files are audit/archive.py's; the anchor kept outside the file, audit/anchoring.py's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bsecrets import json_codec
from bsecrets.audit import member_intake
from bsecrets.audit.chain import (
    Anchor,
    EventSealer,
    LogState,
    Opener,
    Problem,
    Row,
    Verification,
    canonical,
    check_anchor,
    genesis,
    parse_event,
    walk,
)
from bsecrets.audit.events import Action, EventFields, Outcome
from bsecrets.audit.logger import AuditSink
from bsecrets.audit.witness import ChainWitness, state_of
from bsecrets.crypto.keys import (
    EnvironmentKeys,
    encode_aad,
    generate_private_key,
    mac,
    mac_verify,
    public_key_of,
    seal_to,
    unseal,
)
from bsecrets.errors import AccessDenied, AlreadyExists, BsecretsError, IntegrityError, NextStep
from bsecrets.health import HealthIndicator
from bsecrets.timeutil import iso, utcnow
from bsecrets.vaultfile.credentials import OWNER
from bsecrets.vaultfile.vault import LocalVault

if TYPE_CHECKING:
    from pathlib import Path

    from bsecrets.audit.parallel_walk import WalkPlan

AUDIT_ENV = "__audit__"
_TABLES = (
    "CREATE TABLE IF NOT EXISTS audit_events (seq INTEGER PRIMARY KEY, time TEXT NOT NULL,"
    " record BLOB NOT NULL, mac BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_intake (id INTEGER PRIMARY KEY, sealed BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_state (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " state BLOB NOT NULL, mac BLOB NOT NULL)",
)
_SELECT_ROWS = "SELECT seq, time, record, mac FROM audit_events"
# About how many events there are, for the walk's choice of one core or two: two
# lookups of the rowid (max and min in one SELECT would scan the table).
_SPAN = "SELECT (SELECT max(seq) FROM audit_events) - (SELECT min(seq) FROM audit_events) + 1"


def _unreadable(reason: str) -> dict[str, Any]:
    """The event chained for an intake entry that does not open."""
    return {
        "v": 1,
        "time": iso(utcnow()),
        "action": Action.AUDIT_INTAKE,
        "outcome": Outcome.FAILED,
        "reason": reason,
    }


class LocalAuditLog(AuditSink):
    name = "local vault"
    walk_plan: WalkPlan | None = None  # how verify shares its walk (None: the default)

    def __init__(self, vault: LocalVault) -> None:
        self.vault = vault
        self.store = vault.store
        self.sealer = EventSealer(encode_aad(vault.vault_id, AUDIT_ENV, "audit-event"))
        # Every read and write of an environment checks its manifest against the chain.
        self.witness = ChainWitness(self)
        vault.witness = self.witness
        # What this write transaction (the store's tx_serial) already made sure of, for
        # its next events (an import's puts): the tables exist, the intakes are folded
        # (and it wrote none since), and the last event it appended, (serial, seq, MAC).
        self._tables_in = self._folded_in = -1
        self._tail: tuple[int, int, bytes] = (-1, 0, b"")

    def _in_this_write(self, serial: int) -> bool:
        return serial == self.store.write_serial

    # --- keys ------------------------------------------------------------

    def _writing_keys(self) -> EnvironmentKeys | None:
        """The audit keys if the vault opens without a prompt as the owner; None
        otherwise (an intake entry)."""
        if not self.keyholder() or not self.vault.can_unlock_quietly():
            return None
        return self.vault.env_keys(AUDIT_ENV, create=True)

    def reading_keys(self) -> EnvironmentKeys | None:
        """The audit keys (unlocking as any command does); None if no event was ever chained."""
        if not self.keyholder():
            raise AccessDenied(
                f"the audit log is the owner's to read, not principal '{self.vault.principal}'s",
                hint="ask the vault's owner: the events of every principal are in its log",
            )
        with self.store.read():
            return self.vault.env_keys(AUDIT_ENV)

    # --- other principals' events (audit/member_intake.py) ----------------

    def keyholder(self) -> bool:
        return self.vault.principal == OWNER

    def pending_marker(self) -> tuple[int, int]:
        if self._in_this_write(self._folded_in):
            return (0, 0)  # none left after the fold, and none written since
        return member_intake.marker(self.store)

    def advanced(self, state: dict[str, Any]) -> dict[str, Any]:
        return member_intake.advance_by_policy(self.vault, AUDIT_ENV, state)

    def opener(self, keys: EnvironmentKeys) -> Opener:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        decrypt = AESGCM(keys.value_key).decrypt
        heads = self.sealer.heads
        aad = self.sealer.aad

        def open_record(time: str, record: bytes) -> bytes | None:
            """Hot (a million calls per verify): sealer.aad inlined for the usual length.
            A column of another SQLite type fails here like a changed one."""
            try:
                raw = time.encode()
                head = heads.get(len(raw))
                data = head + raw if head is not None else aad(time)
                return decrypt(record[:12], record[12:], data)
            except (InvalidTag, ValueError, TypeError, AttributeError):
                return None

        return open_record

    # --- writing ---------------------------------------------------------

    def prepare(self) -> None:
        self.vault.private_key()

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self.store.write()

    def _ensure_tables(self) -> None:
        """Once per write transaction, not once per process: the transaction that created
        them may have rolled back."""
        if self._in_this_write(self._tables_in):
            return
        for sql in _TABLES:
            self.store.execute_write(sql)
        self._tables_in = self.store.tx_serial

    def append(self, fields: EventFields) -> None:
        with self.store.write():
            self._ensure_tables()
            keys = self._writing_keys()
            if keys is None:
                self._folded_in = -1  # an intake written: not folded any more
                if not self.keyholder() and self.vault.can_unlock_quietly():
                    after = member_intake.record(self.vault, self.witness.found(), dict(fields))
                    self.witness.entry_written(after)
                else:
                    self._intake(fields)
                return
            self._fold_intake(keys)
            self._append_keyed(keys, fields)

    def _head(self, keys: EnvironmentKeys) -> tuple[int, bytes]:
        serial, seq, digest = self._tail
        if self._in_this_write(serial):
            return seq, digest  # appended by this transaction: no one else writes meanwhile
        rows = self.store.query_optional_table(
            "audit_events", "SELECT seq, mac FROM audit_events ORDER BY seq DESC LIMIT 1"
        )
        if rows:
            seq, digest = rows[0]
            if type(seq) is not int or type(digest) is not bytes:
                raise IntegrityError("the audit log's last event is damaged")
            return seq, digest
        state = self.state(keys)
        return state.first_seq - 1, state.prev

    def _append_keyed(self, keys: EnvironmentKeys, fields: Mapping[str, Any]) -> None:
        """Chain one event recording every environment's manifest as this transaction
        leaves it (witness.py), after checking the ones it did not change itself."""
        state = state_of(self.witness.check_all())
        seq, prev = self._head(keys)
        event = {**fields, "seq": seq + 1, "state": state}
        plain = canonical(event)
        time = str(event.get("time", ""))
        record = self.sealer.seal(keys, time, plain)
        digest = self.sealer.link(keys, prev, plain)
        self.store.execute_write(
            "INSERT INTO audit_events (seq, time, record, mac) VALUES (?, ?, ?, ?)",
            (seq + 1, time, record, digest),
        )
        self._tail = (self.store.tx_serial, seq + 1, digest)
        self.witness.appended(seq + 1, digest, state)

    def _intake_context(self) -> bytes:
        return encode_aad(self.vault.vault_id, AUDIT_ENV, "audit-intake")

    def _intake(self, fields: EventFields) -> None:
        sender = generate_private_key()
        blob = public_key_of(sender) + seal_to(
            sender, self.store.public_key(OWNER), canonical(fields), self._intake_context()
        )
        self.store.execute_write("INSERT INTO audit_intake (sealed) VALUES (?)", (blob,))

    def fold_pending(self) -> None:
        """Chain now what waits in the intakes: before a principal is removed, whose
        waiting events would not open without its public key afterwards."""
        with self.store.write():
            self._ensure_tables()
            keys = self._writing_keys()
            if keys is not None:
                self._fold_intake(keys)

    def _fold_intake(self, keys: EnvironmentKeys) -> None:
        """Chain the events written without the key, marked ``late``: the anonymous ones
        (a wrong passphrase), then other principals' (their principal as authenticated).
        Once per write transaction: it writes none of them itself when it has the key."""
        if self._in_this_write(self._folded_in):
            return
        rows = self.store.query_optional_table(
            "audit_intake", "SELECT id, sealed FROM audit_intake ORDER BY id"
        )
        for _, blob in rows:
            try:
                if type(blob) is not bytes:
                    raise IntegrityError("an audit intake entry is damaged")
                plain = unseal(
                    self.vault.private_key(),
                    blob[:32],
                    blob[32:],
                    self._intake_context(),
                    "an intake entry",
                )
                fields = parse_event(plain)
            except IntegrityError as exc:
                fields = _unreadable(exc.message)
            self._append_keyed(keys, {**fields, "late": True})
        if rows:
            self.store.execute_write("DELETE FROM audit_intake")
        if self.pending_marker()[0]:
            for entry in member_intake.entries(self.vault, AUDIT_ENV)[0]:
                if entry.fields is None:
                    fields = _unreadable(f"an event of principal '{entry.principal}' did not open")
                else:  # the principal is the one the sealing authenticated
                    actor = {**entry.fields.get("actor", {}), "principal": entry.principal}
                    fields = {**entry.fields, "actor": actor}
                self._append_keyed(keys, {**fields, "late": True})
            self.store.execute_write("DELETE FROM audit_intake_members")
        self._folded_in = self.store.tx_serial

    # --- state (after archiving) ----------------------------------------

    def state(self, keys: EnvironmentKeys) -> LogState:
        rows = self.store.query_optional_table(
            "audit_state", "SELECT state, mac FROM audit_state WHERE id = 1"
        )
        if not rows:
            return LogState(1, genesis(keys.manifest_key, self.vault.vault_id), [])
        raw, digest = rows[0]
        if (
            type(raw) is not bytes
            or type(digest) is not bytes
            or not mac_verify(keys.manifest_key, b"audit-state" + raw, digest)
        ):
            raise IntegrityError("the audit log's archive record failed authentication")
        data = json_codec.loads(raw)
        return LogState(int(data["first_seq"]), bytes.fromhex(data["prev"]), data["archives"])

    def _set_state(self, keys: EnvironmentKeys, state: LogState) -> None:
        raw = canonical(
            {"first_seq": state.first_seq, "prev": state.prev.hex(), "archives": state.archives}
        )
        self.store.execute_write(
            "INSERT OR REPLACE INTO audit_state (id, state, mac) VALUES (1, ?, ?)",
            (raw, mac(keys.manifest_key, b"audit-state" + raw)),
        )

    # --- reading ---------------------------------------------------------

    def rows(
        self,
        since: str | None = None,
        until: str | None = None,
        after: int | None = None,
        through: int | None = None,
    ) -> Iterator[Row]:
        bounds = (
            ("time >= ?", since),
            ("time < ?", until),
            ("seq > ?", after),
            ("seq <= ?", through),
        )
        given = [(clause, value) for clause, value in bounds if value is not None]
        sql = _SELECT_ROWS
        if given:
            sql += " WHERE " + " AND ".join(clause for clause, _ in given)
        sql += " ORDER BY seq"
        params = tuple(value for _, value in given)
        return self.store.iter_optional_table("audit_events", sql, params)

    def events(
        self,
        keys: EnvironmentKeys,
        since: str | None = None,
        until: str | None = None,
        after: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Decrypted events (with their ``mac`` in hex), oldest first. Not a verification:
        a record that does not authenticate raises IntegrityError."""
        open_record = self.opener(keys)
        for seq, time, record, digest in self.rows(since, until, after):
            plain = open_record(time, record)
            if plain is None:
                raise IntegrityError(
                    f"audit event {seq} does not authenticate", step=NextStep("verify_audit_log")
                )
            event = parse_event(plain)
            event["mac"] = digest.hex() if isinstance(digest, bytes) else ""
            yield event

    def head(self, keys: EnvironmentKeys) -> Anchor:
        with self.store.read():
            seq, digest = self._head(keys)
        return Anchor(seq, digest)

    def count(self) -> int:
        rows = self.store.query_optional_table("audit_events", "SELECT count(*) FROM audit_events")
        return int(rows[0][0]) if rows else 0

    # --- verification ----------------------------------------------------

    def verify(
        self, keys: EnvironmentKeys, anchor: Anchor | None, *, archives: bool = True
    ) -> Verification:
        """The chain, the archives, the anchor, and every environment's manifest against
        the newest event's record of it (witness.py), in that order of reporting."""
        # Here, not at the top: get loads this module and must not load that one.
        from bsecrets.audit.parallel_walk import PLAN, walk_on_two_cores

        watch = [anchor.seq] if anchor else []
        with self.store.read():
            state = self.state(keys)
            span = self.store.query_optional_table("audit_events", _SPAN)
            result = walk_on_two_cores(
                self.rows(),
                keys.manifest_key,
                self.opener(keys),
                first_seq=state.first_seq,
                prev=state.prev,
                watch=watch,
                rows_hint=span[0][0] if span and type(span[0][0]) is int else 0,
                plan=self.walk_plan or PLAN,
            )
            stale = None
            if result.problem is None:
                try:
                    stale = self.witness.first_mismatch(self.store.manifest_macs())
                except IntegrityError as exc:
                    stale = exc.message
        problem = result.problem
        archived = 0
        anchor_note = "none given and none in the OS keyring: a truncated tail is not detected"
        if problem is None and archives and state.archives:
            from bsecrets.audit.archive import verify_archives  # a seam: archived logs only

            check = verify_archives(keys, self.vault.vault_id, self.opener(keys), state, watch)
            archived, problem = check.events, check.problem
            result = result._replace(macs_at={**check.macs_at, **result.macs_at})
        elif not archives and state.archives:
            anchor_note = "archives skipped"
        if problem is None and anchor is not None:
            problem = check_anchor(result, anchor)
            anchor_note = (
                "matches" if anchor.seq in result.macs_at else "in an archive that was not checked"
            )
        if problem is None and stale is not None:
            problem = Problem(result.last_seq, "rollback", stale)
        return Verification(
            result.checked,
            archived,
            state.first_seq,
            result.last_seq,
            Anchor(result.last_seq, result.head),
            anchor_note if anchor is None or problem is None else "does not match",
            problem,
        )

    # --- archiving -------------------------------------------------------

    def archive(self, keys: EnvironmentKeys, before: datetime, target: Path) -> dict[str, Any]:
        """Move the events before ``before`` into ``target`` (which must not exist;
        audit/archive.py writes it)."""
        from pathlib import Path  # here: every command that logs loads this module

        target = Path(target).absolute()
        if target.exists():
            raise AlreadyExists(
                f"{target} already exists", hint="choose a new file; archives are never overwritten"
            )
        store = self.store
        with store.write():
            self._ensure_tables()
            state = self.state(keys)
            # The longest run of oldest events all before the cutoff: a late event (an
            # old time at a new seq) must not pull newer ones into the archive.
            rows = store.query_optional_table(
                "audit_events",
                "SELECT (SELECT min(seq) FROM audit_events WHERE time >= ?),"
                " (SELECT max(seq) FROM audit_events)",
                (iso(before),),
            )
            first_kept, newest = rows[0] if rows else (None, None)
            last = newest if first_kept is None else first_kept - 1
            if last is None or last < state.first_seq:
                return {"archived": 0, "path": None}
            checked = walk(
                self.rows(through=last),
                keys.manifest_key,
                self.opener(keys),
                first_seq=state.first_seq,
                prev=state.prev,
            )
            if checked.problem is not None:
                raise IntegrityError(
                    f"audit event {checked.problem.seq}: {checked.problem.detail}",
                    hint="a damaged log is not archived",
                    step=NextStep("verify_audit_log_before_archiving"),
                )
            from bsecrets.audit.archive import write_archive  # a seam: audit archive only

            entry = write_archive(
                target, keys, self.vault.vault_id, state, last, checked, self.rows(through=last)
            )
            try:
                store.execute_write("DELETE FROM audit_events WHERE seq <= ?", (last,))
                self._set_state(keys, LogState(last + 1, checked.head, [*state.archives, entry]))
            except BaseException:
                with contextlib.suppress(OSError):
                    target.unlink()
                raise
        return {"archived": checked.checked, "path": str(target), **entry}

    # --- ReflectiveModule ------------------------------------------------

    def indicators(self) -> list[HealthIndicator]:
        try:
            with self.store.read():
                count = self.count()
                pending = self.store.query_optional_table(
                    "audit_intake", "SELECT count(*) FROM audit_intake"
                )
        except BsecretsError as exc:
            return [HealthIndicator("audit", False, exc.message)]
        waiting = int(pending[0][0]) if pending else 0
        detail = f"{count} events in the vault"
        if waiting:
            detail += f", {waiting} waiting to be chained (written without the key)"
        return [HealthIndicator("audit", True, detail, count)]
