"""Archive files of the local audit log (``bsecrets audit archive``): the oldest
events moved out of the vault file, and the check that the archives still chain
into the live log.

An archive is JSON Lines: a header (format, version, vault id, the first and
last seq, the MAC before the first event, the head MAC, the count, when it was
made) authenticated with the chain key, then one line per event exactly as the
vault stored it: ``seq``, ``time``, the sealed ``record`` in base64 and the
``mac`` in hex. So an archive shows no more than the vault file did, and its
events verify with the same key. Archives are never overwritten.

The log's ``audit_state`` lists the archives (``LogState.archives``: each
entry's ``first_seq``, ``last_seq``, ``path`` and ``head``), oldest first.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from bsecrets.audit.chain import LogState, Opener, Problem, Row, Walk, canonical, genesis, walk
from bsecrets.crypto.keys import EnvironmentKeys, mac, mac_verify
from bsecrets.errors import AlreadyExists, BsecretsError, IntegrityError
from bsecrets.files import ensure_private_dir, fsync_dir
from bsecrets.named_tuples import NamedTuple
from bsecrets.timeutil import iso, utcnow

ARCHIVE_FORMAT = "bsecrets-audit-archive"
_HEADER_CONTEXT = b"audit-archive"  # what the header's MAC is bound to


def write_archive(
    target: Path,
    keys: EnvironmentKeys,
    vault_id: bytes,
    state: LogState,
    last: int,
    checked: Walk,
    rows: Iterable[Row],
) -> dict[str, Any]:
    """Write the events ``state.first_seq`` to ``last`` (``rows``, already walked
    into ``checked``) to ``target``, a new file (AlreadyExists if it exists), synced
    with its folder. Returns the archive's entry for ``LogState.archives``.
    If writing fails, the file is removed."""
    header = {
        "format": ARCHIVE_FORMAT,
        "version": 1,
        "vault_id": vault_id.hex(),
        "first_seq": state.first_seq,
        "last_seq": last,
        "prev": state.prev.hex(),
        "head": checked.head.hex(),
        "count": checked.checked,
        "created_at": iso(utcnow()),
    }
    header["mac"] = mac(keys.manifest_key, _HEADER_CONTEXT + canonical(header)).hex()
    ensure_private_dir(target.parent)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyExists(f"{target} already exists") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(header, sort_keys=True).encode() + b"\n")
            for seq, time, record, digest in rows:
                line = {
                    "seq": seq,
                    "time": time,
                    "record": base64.b64encode(record).decode(),
                    "mac": digest.hex(),
                }
                out.write(json.dumps(line, sort_keys=True).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    return {
        "first_seq": state.first_seq,
        "last_seq": last,
        "path": str(target),
        "head": checked.head.hex(),
    }


class ArchiveCheck(NamedTuple):
    """What :func:`verify_archives` found."""

    events: int  # events checked in the archives (up to the first problem)
    problem: Problem | None  # the first problem; its detail names the file
    macs_at: dict[int, bytes]  # the MACs at the watched sequence numbers


def verify_archives(
    keys: EnvironmentKeys, vault_id: bytes, opener: Opener, state: LogState, watch: list[int]
) -> ArchiveCheck:
    """Walk every archive in ``state.archives``, oldest first: each must be the
    file recorded (its head), authenticate, continue the one before it (the
    first from the genesis of ``vault_id``), hold every event its header
    claims, and the last must join the live log at ``state.first_seq``."""
    prev = genesis(keys.manifest_key, vault_id)
    first = 1
    total = 0
    macs: dict[int, bytes] = {}
    for entry in state.archives:
        path = Path(entry["path"])
        try:
            header, result = _walk_archive(keys, vault_id, opener, path, first, prev, watch)
        except BsecretsError as exc:
            return ArchiveCheck(total, Problem(first, "archive", f"{path}: {exc.message}"), macs)
        if result.problem is not None:
            problem = result.problem._replace(detail=f"{path}: {result.problem.detail}")
            return ArchiveCheck(total, problem, macs)
        if result.last_seq != header["last_seq"] or result.head.hex() != header["head"]:
            problem = Problem(
                result.last_seq + 1, "truncated", f"{path} ends before its recorded end"
            )
            return ArchiveCheck(total, problem, macs)
        if header["head"] != entry["head"]:
            problem = Problem(first, "archive", f"{path} is not the archive recorded")
            return ArchiveCheck(total, problem, macs)
        total += result.checked
        macs.update(result.macs_at)
        prev, first = result.head, result.last_seq + 1
    if first != state.first_seq or prev != state.prev:
        problem = Problem(first, "archive", "the archives do not join the live log")
        return ArchiveCheck(total, problem, macs)
    return ArchiveCheck(total, None, macs)


def _walk_archive(
    keys: EnvironmentKeys,
    vault_id: bytes,
    opener: Opener,
    path: Path,
    first: int,
    prev: bytes,
    watch: list[int],
) -> tuple[dict[str, Any], Walk]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise IntegrityError(f"cannot read the archive ({exc.strerror})") from None
    with handle:
        header = _read_header(keys, vault_id, handle.readline())
        if header["first_seq"] != first or header["prev"] != prev.hex():
            raise IntegrityError("the archive does not continue the one before it")
        return header, walk(
            _archive_rows(handle),
            keys.manifest_key,
            opener,
            first_seq=first,
            prev=prev,
            watch=watch,
        )


def _read_header(keys: EnvironmentKeys, vault_id: bytes, line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
        claimed = bytes.fromhex(header.pop("mac"))
    except (ValueError, KeyError, AttributeError, TypeError):
        raise IntegrityError("its header is damaged") from None
    if not mac_verify(keys.manifest_key, _HEADER_CONTEXT + canonical(header), claimed):
        raise IntegrityError("its header failed authentication")
    if header.get("vault_id") != vault_id.hex():
        raise IntegrityError("it belongs to another vault")
    return dict(header)


def _archive_rows(handle: IO[bytes]) -> Iterator[Row]:
    """The event lines as stored rows; a damaged line becomes a row that breaks the chain."""
    for line in handle:
        try:
            row = json.loads(line)
            yield (
                int(row["seq"]),
                str(row["time"]),
                base64.b64decode(row["record"]),
                bytes.fromhex(row["mac"]),
            )
        except (ValueError, KeyError, TypeError):
            yield (-1, "", b"", b"")
