"""The audit chain's arithmetic, with no storage: canonical events, links,
anchors, and the verification walk that names the first bad sequence number.

``mac(n) = HMAC-SHA256(chain key, mac(n-1) || canonical JSON of event n)``,
with ``mac(0)`` a genesis value bound to the vault. Events are stored sealed
(AES-256-GCM); the walk is given an ``opener`` that returns the plaintext of
a stored record or None when it does not authenticate.

The fast path parses no JSON (1,000,000 events must verify in seconds): the
MAC already covers each event's sequence number, so a record moved, copied or
renumbered breaks the chain at that row. Only at the first bad row are the
events parsed, to say what happened there. ``audit verify`` of a long log runs
this walk on chunks, on two cores (audit/parallel_walk.py), with this walk's result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from bsecrets import json_codec
from bsecrets.crypto.keys import Aead, EnvironmentKeys, KeyedMac, mac, pack_length
from bsecrets.errors import IntegrityError, NextStep, UsageError
from bsecrets.named_tuples import NamedTuple

FORMAT = 1
_GENESIS = b"bsecrets/v1/audit-genesis"

Row = tuple[int, str, bytes, bytes]  # seq, time, sealed record, mac (as stored: any type)
Opener = Callable[[str, bytes], "bytes | None"]  # (time, record) -> plaintext or None


def canonical(event: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, ASCII only: the bytes the MAC covers."""
    return json_codec.canonical(event).encode()


class EventSealer:
    """Seals (AES-256-GCM, the event's time in the associated data) and links the events
    of one vault's audit log, as aead_seal and link would: the AESGCM object and the
    keyed HMAC are built once per key (an import writes 100,000 events in one go)."""

    __slots__ = ("_aead", "_mac", "_prefix", "heads")

    def __init__(self, aad_prefix: bytes) -> None:
        self._prefix = aad_prefix  # the associated data's parts before the time
        self.heads: dict[int, bytes] = {}  # by the time's length (always 24 in practice)
        self._aead: tuple[bytes, Aead] | None = None
        self._mac: tuple[bytes, KeyedMac] | None = None

    def aad(self, time: str) -> bytes:
        """The prefix, then ``time`` as encode_aad encodes a string."""
        raw = time.encode()
        head = self.heads.get(len(raw))
        if head is None:
            head = self.heads[len(raw)] = self._prefix + b"s" + pack_length(len(raw))
        return head + raw

    def seal(self, keys: EnvironmentKeys, time: str, plain: bytes) -> bytes:
        made = self._aead
        if made is None or made[0] != keys.value_key:  # our own keys: no timing to hide
            made = self._aead = (keys.value_key, Aead(keys.value_key))
        return made[1].seal(plain, self.aad(time))

    def link(self, keys: EnvironmentKeys, prev: bytes, plain: bytes) -> bytes:
        """link(keys.manifest_key, prev, plain)."""
        made = self._mac
        if made is None or made[0] != keys.manifest_key:
            made = self._mac = (keys.manifest_key, KeyedMac(keys.manifest_key))
        return made[1](prev + plain)

    def __repr__(self) -> str:
        return "EventSealer(...)"


def genesis(chain_key: bytes, vault_id: bytes) -> bytes:
    return mac(chain_key, _GENESIS + vault_id)


def link(chain_key: bytes, prev: bytes, event: bytes) -> bytes:
    return mac(chain_key, prev + event)


class LogState(NamedTuple):
    """Where the live log starts: after the archived events, or at 1."""

    first_seq: int
    prev: bytes
    archives: list[dict[str, Any]]


class Anchor(NamedTuple):
    """A chain head witnessed outside the vault: ``SEQ:MAC-HEX``."""

    seq: int
    mac: bytes

    def __str__(self) -> str:
        return f"{self.seq}:{self.mac.hex()}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        seq, sep, digest = text.strip().partition(":")
        try:
            if not sep or not seq.isdigit() or len(seq) > 19 or len(digest) != 64:
                raise ValueError
            if int(seq) >= 2**63:  # SQLite's integers: no event can have it
                raise ValueError
            return cls(int(seq), bytes.fromhex(digest))
        except ValueError:
            raise UsageError(
                f"invalid anchor {text.strip()[:80]!r}",
                step=NextStep("give_anchor_as_printed"),
            ) from None


class Problem(NamedTuple):
    seq: int
    kind: str  # edited | missing | reordered | inserted | truncated | anchor | archive
    detail: str


class Walk(NamedTuple):
    """What a verification walk saw: the events it checked and the first problem."""

    checked: int
    last_seq: int  # the start's seq - 1 when there were no events
    head: bytes
    problem: Problem | None
    macs_at: dict[int, bytes]  # the MACs at the sequence numbers asked for


def walk(
    rows: Iterable[Row],
    chain_key: bytes,
    opener: Opener,
    *,
    first_seq: int,
    prev: bytes,
    watch: Iterable[int] = (),
) -> Walk:
    """Check ``rows`` (in seq order) as the continuation of a chain at ``first_seq``
    after ``prev``. Stops at the first problem."""
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import hmac as keyed

    # Hot: a million events must verify in seconds. One keyed HMAC copied per event
    # (2.5x faster than keying anew), one update of prev || event (a second update
    # costs more than joining them), names bound outside the loop.
    copy = keyed.HMAC(chain_key, hashes.SHA256()).copy
    compare = hmac.compare_digest
    watched = set(watch)
    seen: dict[int, bytes] = {}
    expected = first_seq
    iterator = iter(rows)
    for seq, time, record, stored in iterator:
        if seq != expected:
            return Walk(expected - first_seq, expected - 1, prev, _gap(expected, seq), seen)
        plain = opener(time, record)
        if plain is None:
            return Walk(expected - first_seq, expected - 1, prev, _unreadable(seq), seen)
        one = copy()
        one.update(prev + plain)
        digest = one.finalize()
        if type(stored) is not bytes or not compare(digest, stored):
            problem = _classify(seq, plain, digest, stored, iterator, opener)
            return Walk(expected - first_seq, expected - 1, prev, problem, seen)
        if watched and seq in watched:
            seen[seq] = digest
        prev = digest
        expected += 1
    return Walk(expected - first_seq, expected - 1, prev, None, seen)


def _gap(expected: int, found: object) -> Problem:
    if type(found) is not int:
        return Problem(expected, "edited", f"the row after event {expected - 1} is damaged")
    if found < expected:  # only a non-ordered source can do this
        return Problem(found, "reordered", f"event {found} appears after event {expected - 1}")
    missing = f"event {expected}" if found == expected + 1 else f"events {expected}-{found - 1}"
    return Problem(expected, "missing", f"{missing} missing: the log jumps to {found}")


def _unreadable(seq: int) -> Problem:
    return Problem(seq, "edited", f"event {seq} does not authenticate (edited or forged)")


def _event_seq(plain: bytes) -> int | None:
    try:
        seq = json_codec.loads(plain).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


def _classify(
    seq: int,
    plain: bytes,
    digest: bytes,
    stored: bytes,
    later: Iterator[Row],
    opener: Opener,
) -> Problem:
    """Why the chain broke at row ``seq``: the row holds another event, or was edited."""
    held = _event_seq(plain)
    if held is None or held == seq:
        return Problem(seq, "edited", f"event {seq} was changed (its MAC does not match)")
    if held < seq:
        return Problem(seq, "inserted", f"row {seq} holds a copy of event {held}")
    for other_seq, time, record, _ in later:  # held > seq: moved here, or seq was deleted
        other = opener(time, record)
        if other is not None and _event_seq(other) == seq:
            return Problem(
                seq, "reordered", f"events {seq} and {held} are out of order (row {other_seq})"
            )
    return Problem(seq, "missing", f"event {seq} was removed and later events renumbered")


def check_anchor(result: Walk, anchor: Anchor) -> Problem | None:
    """Whether the walked chain reaches the anchor and has the anchored MAC there."""
    if anchor.seq > result.last_seq:
        return Problem(
            result.last_seq + 1,
            "truncated",
            f"the log ends at event {result.last_seq}; the anchor is at event {anchor.seq}",
        )
    found = result.macs_at.get(anchor.seq)
    if found is None:
        return None  # before the part walked: checked against archives by the caller
    import hmac

    if not hmac.compare_digest(found, anchor.mac):
        return Problem(anchor.seq, "anchor", f"event {anchor.seq} is not the one anchored")
    return None


def parse_event(plain: bytes) -> dict[str, Any]:
    try:
        event = json_codec.loads(plain)
    except ValueError:
        raise IntegrityError("an audit event is not valid JSON") from None
    if not isinstance(event, dict):
        raise IntegrityError("an audit event is not a JSON object")
    return event


class Verification(NamedTuple):
    events: int  # live events checked
    archived: int  # events checked in archive files
    first_seq: int
    last_seq: int
    head: Anchor
    anchor: str  # how the anchor was checked
    problem: Problem | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.problem is None,
            "events": self.events,
            "archived_events": self.archived,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "head": str(self.head),
            "anchor": self.anchor,
            "problem": self.problem._asdict() if self.problem else None,
        }
