"""The audit chain as the witness of every environment's manifest.

Per-row AES-GCM and each environment's manifest catch edits, deletions and
replays of rows, but not a subset of rows put back from an older copy of the
file together with the manifest they had then: that copy is self-consistent,
and a rotation would be silently undone. So every event chained with the
audit key records ``state``: each environment's manifest generation and the
first 16 bytes of its MAC, as they are when the event commits. A write's event
is written in the same transaction as its rows, so it records the new
manifest.

Checks (``ChainWitness``):
- before a read or a write uses an environment's manifest, once per
  transaction, the manifest must be the one the newest event recorded (the
  last row of the chain, its MAC recomputed from the row before it, so a copy
  of an older event put at the end does not pass);
- before an event is appended, every environment that the transaction did not
  check itself is compared too, so no other command (an unlock, an audit
  command, a remote operation) can re-bind a rolled-back manifest. Once the
  transaction's own event is the head and records the manifests as they still
  are, its next events skip this (they could not disagree) until it writes a
  manifest: an import's 100,000 puts compare once, not 100,000 times;
- an environment the chain records must still exist, and a vault whose
  environments hold rows must have a chain (a wiped audit log is caught
  without any anchor).

What it cannot see: the audit log rolled back together with the rows (the
whole file, or every table, from one older copy). That is a truncated chain,
caught by ``audit verify`` against an anchor kept outside the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from bsecrets.audit.chain import LogState, Opener, link, parse_event
from bsecrets.crypto.keys import EnvironmentKeys, constant_time_equal
from bsecrets.errors import IntegrityError, NextStep
from bsecrets.named_tuples import NamedTuple
from bsecrets.vaultfile.policy import ACCESS_ENV
from bsecrets.vaultfile.store import VaultStore

MAC_PREFIX = 16  # bytes of each manifest MAC kept in an event
CHANGED_HINT = (
    "the vault file was changed outside bsecrets (rows put back from an older copy, or "
    "removed): restore it from a backup"
)

Manifests = dict[str, tuple[int, bytes]]  # env -> (generation, MAC), as stored


def _changed(problem: str) -> IntegrityError:
    """What the chain does not witness: restore the file, then verify the audit log."""
    return IntegrityError(
        problem, hint=CHANGED_HINT, step=NextStep("verify_audit_log_for_other_changes")
    )


def is_internal(env: str) -> bool:
    """``__audit__``, ``__cache__``, ``__access__``: no profile environment name starts
    with '_'."""
    return env.startswith("__")


def is_witnessed(env: str) -> bool:
    """Whether the chain records ``env``'s manifest: every profile environment, and the
    access policy (vaultfile/policy.py), so that a policy removed or put back from an
    older copy is caught like a rolled-back environment."""
    return not is_internal(env) or env == ACCESS_ENV


def _recorded(manifest: tuple[int, bytes]) -> list[Any]:
    generation, tag = manifest
    return [generation, tag[:MAC_PREFIX].hex()]


def state_of(manifests: Manifests) -> dict[str, list[Any]]:
    """What an event records: env -> [generation, MAC prefix in hex]."""
    return {
        env: _recorded(manifest) for env, manifest in sorted(manifests.items()) if is_witnessed(env)
    }


class Head(NamedTuple):
    """The newest event of the chain, authenticated."""

    seq: int
    mac: bytes
    state: dict[str, Any] | None  # None: an event from before the chain recorded state


def _state_field(event: dict[str, Any]) -> dict[str, Any] | None:
    state = event.get("state")
    if state is None:
        return None
    if not isinstance(state, dict) or not all(
        isinstance(v, list) and len(v) == 2 and type(v[0]) is int and isinstance(v[1], str)
        for v in state.values()
    ):
        raise IntegrityError("the newest audit event holds a malformed state")
    return state


def mismatch(env: str, current: tuple[int, bytes] | None, head: Head | None) -> str | None:
    """Why ``env``'s manifest (None: the environment is absent) disagrees with the chain."""
    if head is None:
        if current is not None and current[0] > 0:
            return (
                f"environment '{env}' holds secrets but the vault's audit log is empty: "
                "the audit log was removed from the vault file"
            )
        return None
    if head.state is None:  # written before events recorded state: bound from the next one
        return None
    recorded = head.state.get(env)
    if current is None:
        if recorded is not None:
            return (
                f"environment '{env}' was removed from the vault file "
                f"(the audit log records it at generation {recorded[0]})"
            )
        return None
    generation, tag = current
    if recorded is None:
        if generation == 0:
            return None  # created in this transaction, not recorded yet
        return f"environment '{env}' is at generation {generation}, which the audit log never saw"
    if [generation, tag[:MAC_PREFIX].hex()] == recorded:
        return None
    if generation < recorded[0]:
        return (
            f"environment '{env}' was rolled back: it is at generation {generation}, "
            f"the audit log recorded generation {recorded[0]}"
        )
    if generation > recorded[0]:
        return (
            f"the audit log ends before the last change to environment '{env}' "
            f"(generation {generation}; its newest event records {recorded[0]}): "
            "events were removed from its end, or it was put back from an older copy"
        )
    return (
        f"environment '{env}' does not match the audit log "
        f"(generation {generation}, recorded {recorded[0]} with another digest)"
    )


if TYPE_CHECKING:  # for the type checker only: a Protocol class costs a command ~0.1 ms

    class ChainLog(Protocol):
        """What the witness reads of the local audit log (audit/local_log.py)."""

        store: VaultStore

        def reading_keys(self) -> EnvironmentKeys | None: ...

        def state(self, keys: EnvironmentKeys) -> LogState: ...

        def opener(self, keys: EnvironmentKeys) -> Opener: ...

        def keyholder(self) -> bool:
            """Whether this process holds the audit key (the owner): else it can only record
            what it found, for its intake entry (audit/member_intake.py)."""

        def pending_marker(self) -> tuple[int, int]: ...

        def advanced(self, state: dict[str, Any]) -> dict[str, Any]:
            """``state`` moved on by the intake entries of other principals that vouch for
            their changes (member_intake.advance)."""


class ChainWitness:
    """Checks manifests against the newest event of the local audit log; the vault
    file calls ``check`` (vaultfile.vault.ManifestWitness) before it uses a manifest."""

    def __init__(self, log: ChainLog) -> None:
        self.log = log
        self.store = log.store
        self._serial = -1
        self._checked: set[str] = set()  # environments checked in this transaction
        self._head: Head | None = None  # the last head authenticated
        self._marker: tuple[int, int] = (0, 0)  # the intake entries it was advanced by
        # without the audit key: each environment's manifest as this transaction found it
        self._found: dict[str, list[Any] | None] = {}
        # (tx serial, store.manifest_writes): when the manifests were last read (kept with
        # what an event records of them), and when this transaction's own event became
        # the head recording them as they are
        self._manifests: tuple[tuple[int, int], Manifests, dict[str, list[Any]]] | None = None
        self._settled: tuple[int, int] | None = None

    def _this_transaction(self) -> set[str]:
        if self._serial != self.store.tx_serial:
            self._serial = self.store.tx_serial
            self._checked = set()
            self._found = {}
        return self._checked

    def found(self) -> dict[str, list[Any] | None]:
        """Without the audit key: each environment this transaction used, as it found it
        ([generation, MAC prefix], None if absent): an intake entry's ``before``."""
        self._this_transaction()
        return dict(self._found)

    def entry_written(self, after: dict[str, list[Any]]) -> None:
        """An intake entry of this transaction left ``after``: the next entry of the same
        transaction (an import's or a promotion's puts, then their batch event) starts
        from there, so that the entries chain."""
        self._this_transaction()
        for env in self._found:
            self._found[env] = after.get(env)

    def head(self) -> Head | None:
        """The newest event, its record and MAC authenticated; None if there is none."""
        rows = self.store.query_optional_table(
            "audit_events",
            "SELECT seq, time, record, mac FROM audit_events ORDER BY seq DESC LIMIT 2",
        )
        if not rows:
            return None
        seq, time, record, stored = rows[0]
        cached = self._head
        marker = self.log.pending_marker()
        if (
            cached is not None
            and cached.seq == seq
            and cached.mac == stored
            and marker == self._marker
        ):
            return cached
        keys = self.log.reading_keys()
        if keys is None:
            raise _changed("the audit log's key was removed from the vault")
        if type(seq) is not int or type(stored) is not bytes or type(time) is not str:
            raise _changed("the audit log's newest event is damaged")
        if len(rows) == 2 and rows[1][0] == seq - 1:
            prev = rows[1][3]
        else:
            start = self.log.state(keys)
            if seq != start.first_seq:
                raise _changed(f"audit event {seq - 1} was removed from the vault file")
            prev = start.prev
        plain = self.log.opener(keys)(time, record)
        if (
            plain is None
            or type(prev) is not bytes
            or not constant_time_equal(link(keys.manifest_key, prev, plain), stored)
        ):
            raise _changed(f"the newest audit event ({seq}) does not authenticate")
        event = parse_event(plain)
        if event.get("seq") != seq:
            raise _changed(f"audit event {seq} holds another event")
        state = _state_field(event)
        if state is not None and marker[0]:
            state = self.log.advanced(state)
        self._head = Head(seq, stored, state)
        self._marker = marker
        return self._head

    def appended(self, seq: int, mac: bytes, state: dict[str, Any]) -> None:
        """The event just written in this transaction is the head (no need to re-read it).
        If it records the manifests as they are, the next check_all of this transaction
        has nothing to compare until one of them is written."""
        self._head = Head(seq, mac, state)
        self._marker = self.log.pending_marker()
        now, read = self._now(), self._manifests
        self._settled = None
        if now is not None and read is not None and read[0] == now and state == read[2]:
            self._settled = now

    def _now(self) -> tuple[int, int] | None:
        """Which transaction and which of this connection's manifest writes it is; None
        outside a write transaction, where another process may change the file."""
        store = self.store
        serial = store.write_serial
        return None if serial is None else (serial, store.manifest_writes)

    def _manifests_now(self) -> Manifests:
        """Every manifest as stored: read once per write transaction, and again after
        this connection wrote one (only it can, while it holds the write lock)."""
        now, read = self._now(), self._manifests
        if now is not None and read is not None and read[0] == now:
            return dict(read[1])
        manifests = self.store.manifest_macs()
        self._manifests = (now, manifests, state_of(manifests)) if now is not None else None
        return dict(manifests)

    def check(self, env: str, current: tuple[int, bytes] | None) -> None:
        """Before ``env``'s manifest (None: absent) is used; once per transaction."""
        checked = self._this_transaction()
        if env in checked:
            return
        if not self.log.keyholder():
            self._found.setdefault(env, None if current is None else _recorded(current))
            return
        problem = mismatch(env, current, self.head())
        if problem:
            raise _changed(problem)
        checked.add(env)

    def check_all(self) -> Manifests:
        """Before an event is appended: every environment this transaction did not check
        itself (and so may not have changed) must match the chain. Returns the manifests.

        Once this transaction appended an event recording the manifests as they still
        are, that event is the head and agrees with them by construction: the next
        events of the transaction (each put of an import) skip the comparison until a
        manifest is written. No other connection writes meanwhile (the write lock)."""
        checked = self._this_transaction()
        manifests = self._manifests_now()
        if not self.log.keyholder():
            return manifests
        if self._settled is not None and self._settled == self._now():
            return manifests
        problem = self.first_mismatch(manifests, skip=checked)
        if problem:
            raise _changed(problem)
        return manifests

    def first_mismatch(
        self, manifests: Manifests, skip: set[str] | frozenset[str] = frozenset()
    ) -> str | None:
        """The first environment (by name) whose manifest disagrees with the chain."""
        return next((problem for _, problem in self.mismatches(manifests, skip)), None)

    def mismatches(
        self, manifests: Manifests, skip: set[str] | frozenset[str] = frozenset()
    ) -> Iterator[tuple[str, str]]:
        """(environment, why) for each environment, by name, whose manifest disagrees
        with the chain (``bsecrets verify`` lists them all)."""
        head = self.head()
        recorded = set(head.state or {}) if head is not None else set()
        for env in sorted(set(manifests) | recorded):
            if not is_witnessed(env) or env in skip:
                continue
            problem = mismatch(env, manifests.get(env), head)
            if problem:
                yield env, problem
