"""The anchor kept outside the vault file, and the rule that it only moves forward.

An anchor is a chain head (``SEQ:MAC-HEX``) kept in the OS keyring
(audit/keyring_anchor.py reads and writes the entry), so that events removed
from the end of the log, or the whole file put back from an older copy, are
noticed by ``audit verify``. A new anchor must continue the kept one: never
backwards or sideways, else IntegrityError and the kept anchor is left as it is.
"""

from __future__ import annotations

from bsecrets.audit.chain import Anchor, walk
from bsecrets.audit.keyring_anchor import read_anchor, write_anchor
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.crypto.keys import EnvironmentKeys, constant_time_equal
from bsecrets.errors import IntegrityError, NextStep, NotFound


def stored_anchor(log: LocalAuditLog) -> Anchor | None:
    """The anchor kept in the OS keyring; None if there is none or no keyring."""
    return read_anchor(log.vault.vault_id)


def store_anchor(log: LocalAuditLog, keys: EnvironmentKeys, head: Anchor) -> bool:
    """Keep ``head`` in the OS keyring as the anchor; False when there is no usable
    keyring. Never backwards or sideways: the anchor kept there must be an event of
    the chain that leads to ``head`` (same MAC), else IntegrityError and the kept
    anchor is left as it is."""
    kept = stored_anchor(log)
    if kept is not None:
        problem = leads_to(log, keys, kept, head)
        if problem is not None:
            raise IntegrityError(
                f"the audit log no longer leads from the anchored event {kept.seq} "
                f"to its head: {problem}",
                hint="events were removed or the log was replaced after it was anchored; "
                "the anchor in the OS keyring was left as it was",
                step=NextStep("verify_audit_log_against_anchor"),
            )
    return write_anchor(log.vault.vault_id, head)


def leads_to(log: LocalAuditLog, keys: EnvironmentKeys, kept: Anchor, head: Anchor) -> str | None:
    """Why the chain does not lead from ``kept`` to ``head``; None if it does."""
    if kept.seq > head.seq:
        return f"the log ends at event {head.seq}, the anchor is at event {kept.seq}"
    if kept.seq == head.seq:
        return None if constant_time_equal(kept.mac, head.mac) else "the head was replaced"
    with log.store.read():
        state = log.state(keys)
        if kept.seq < state.first_seq - 1:  # anchored in an archive: the whole walk
            checked = log.verify(keys, kept)
            if checked.problem is not None:
                return checked.problem.detail
            return None if checked.head == head else "the head moved while checking"
        if kept.seq == state.first_seq - 1 and not constant_time_equal(kept.mac, state.prev):
            return f"event {kept.seq} is not the one anchored"
        result = walk(
            log.rows(after=kept.seq, through=head.seq),
            keys.manifest_key,
            log.opener(keys),
            first_seq=kept.seq + 1,
            prev=kept.mac,
        )
    if result.problem is not None:
        return f"event {result.problem.seq} does not follow the anchored event"
    if Anchor(result.last_seq, result.head) != head:
        return f"the log ends at event {result.last_seq}"
    return None


def anchor_head(log: LocalAuditLog) -> tuple[Anchor, bool]:
    """The chain head, kept in the OS keyring when there is one (the bool says so)."""
    keys = log.reading_keys()
    if keys is None:
        raise NotFound("the audit log has no events yet")
    head = log.head(keys)
    return head, store_anchor(log, keys, head)
