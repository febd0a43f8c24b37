"""The audit chain detects every single edit, deletion, swap and insertion in a
1,000-event log and names the first bad sequence number; a truncated tail is
detected against an anchor (and, without one, the walk cannot tell: the doc says so).

The log is a real one (1,000 events written through LocalAuditLog into a vault
file); each mutation is applied to a copy of its rows, the way an attacker
with the file but not the key could change them, and walked by the same code
``audit verify`` runs. A few mutations are also made in the SQLite file itself
and checked through the CLI.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke
from helpers.values import PASSPHRASE

from bsecrets.audit.chain import Anchor, Row, check_anchor, walk
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.audit.logger import AuditLogger
from bsecrets.models import AccessContext
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault

EVENTS = 1000


@pytest.fixture(scope="module")
def log_rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A vault whose audit log holds exactly 1,000 events; its rows, key and opener."""
    import os

    os.environ["BSECRETS_INSECURE_TEST_KDF"] = "1"
    path = tmp_path_factory.mktemp("chain") / "vault.db"
    vault = LocalVault.create(
        path, Credentials(passphrase=PASSPHRASE), utcnow, passphrase=PASSPHRASE, use_keyring=False
    )
    log = LocalAuditLog(vault)
    logger = AuditLogger(log, AccessContext("ann", "box", 1), utcnow, {})
    with vault.store.write():
        for i in range(EVENTS):
            logger.record("get" if i % 3 else "put", "dev", name=f"app/key{i % 17}")
    keys = log.reading_keys()
    assert keys is not None
    with vault.store.read():
        rows = list(log.rows())
        state = log.state(keys)
    assert [r[0] for r in rows] == list(range(1, EVENTS + 1))
    return {
        "rows": rows,
        "key": keys.manifest_key,
        "opener": _remembering(log.opener(keys)),
        "prev": state.prev,
        "vault": vault,
    }


def _remembering(opener: Any) -> Any:
    """The real opener, each (time, record) decrypted once: the walks below re-read
    the same 1,000 rows thousands of times."""
    seen: dict[tuple[str, bytes], bytes | None] = {}

    def open_record(time: str, record: bytes) -> bytes | None:
        key = (time, record)
        if key not in seen:
            seen[key] = opener(time, record)
        return seen[key]

    return open_record


def check(
    data: dict[str, Any], rows: list[Row], anchor: Anchor | None = None, near: int = 0
) -> Any:
    """Walk ``rows``; with ``near`` (an index), start a few rows before it, from the
    MAC there (the prefix was checked by test_the_untouched_log_verifies), so that
    thousands of mutations cost thousands of short walks, not millions of rows."""
    start = max(0, near - 3)
    first, prev = (1, data["prev"]) if start == 0 else (start + 1, rows[start - 1][3])
    watch = [anchor.seq] if anchor else []
    result = walk(
        rows[start:], data["key"], data["opener"], first_seq=first, prev=prev, watch=watch
    )
    if result.problem is None and anchor is not None:
        return check_anchor(result, anchor)
    return result.problem


def flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :]


def test_the_untouched_log_verifies(log_rows: dict[str, Any]) -> None:
    result = walk(
        log_rows["rows"], log_rows["key"], log_rows["opener"], first_seq=1, prev=log_rows["prev"]
    )
    assert (result.problem, result.checked, result.last_seq) == (None, EVENTS, EVENTS)


def test_every_single_edit_is_found_at_its_event(log_rows: dict[str, Any]) -> None:
    rows = log_rows["rows"]
    for i, (seq, time, record, digest) in enumerate(rows):
        for column, edited in (
            ("record", (seq, time, flip(record, (seq * 7) % len(record)), digest)),
            ("mac", (seq, time, record, flip(digest, seq % 32))),
            ("time", (seq, time.replace("Z", "+00:00"), record, digest)),
        ):
            problem = check(log_rows, [*rows[:i], edited, *rows[i + 1 :]], near=i)
            assert problem is not None, (seq, column)
            assert (problem.seq, problem.kind) == (seq, "edited"), (column, problem)


def test_every_single_deletion_is_found(log_rows: dict[str, Any]) -> None:
    rows = log_rows["rows"]
    anchor = Anchor(EVENTS, rows[-1][3])
    for i in range(EVENTS):
        seq = rows[i][0]
        problem = check(log_rows, rows[:i] + rows[i + 1 :], anchor, near=i)
        assert problem is not None, seq
        if i == EVENTS - 1:  # the last one: only the anchor tells
            assert (problem.seq, problem.kind) == (seq, "truncated"), problem
        else:
            assert (problem.seq, problem.kind) == (seq, "missing"), problem
        if i % 10:
            continue  # deleted and the later events renumbered to close the gap (a sample:
        renumbered = rows[:i] + [(s - 1, t, r, d) for s, t, r, d in rows[i + 1 :]]  # slower)
        problem = check(log_rows, renumbered, anchor, near=i)
        assert problem is not None and problem.seq == seq, (seq, problem)
        assert problem.kind in ("missing", "truncated"), problem


def test_every_swap_of_neighbours_is_found(log_rows: dict[str, Any]) -> None:
    rows = log_rows["rows"]
    for i in range(EVENTS - 1):
        a, b = rows[i], rows[i + 1]
        swapped = [*rows[:i], (a[0], *b[1:]), (b[0], *a[1:]), *rows[i + 2 :]]
        problem = check(log_rows, swapped, near=i)
        assert problem is not None and (problem.seq, problem.kind) == (a[0], "reordered"), problem


def test_distant_swaps_are_found(log_rows: dict[str, Any]) -> None:
    rows = log_rows["rows"]
    for i, j in ((0, 999), (10, 500), (998, 999), (0, 1)):
        swapped = list(rows)
        swapped[i] = (rows[i][0], *rows[j][1:])
        swapped[j] = (rows[j][0], *rows[i][1:])
        problem = check(log_rows, swapped)
        assert problem is not None and (problem.seq, problem.kind) == (i + 1, "reordered")


def test_every_insertion_is_found(log_rows: dict[str, Any]) -> None:
    """A copy of an earlier event (the only valid-looking thing without the key)
    slipped in, the later rows renumbered; and a forged row at the end."""
    rows = log_rows["rows"]
    for i in range(1, EVENTS):
        copy = rows[(i * 37 + 11) % i]  # an earlier event
        inserted = [*rows[:i], (i + 1, *copy[1:]), *[(s + 1, *rest) for s, *rest in rows[i:]]]
        problem = check(log_rows, inserted, near=i)
        assert problem is not None and (problem.seq, problem.kind) == (i + 1, "inserted"), problem
    for forged in (
        (EVENTS + 1, rows[-1][1], rows[-1][2], rows[-1][3]),  # the last event again
        (EVENTS + 1, rows[-1][1], b"\x00" * 80, b"\x00" * 32),  # made up
    ):
        problem = check(log_rows, [*rows, forged])
        assert problem is not None and problem.seq == EVENTS + 1, problem


def test_truncation_needs_an_anchor(log_rows: dict[str, Any]) -> None:
    rows = log_rows["rows"]
    head = Anchor(EVENTS, rows[-1][3])
    for keep in (0, 1, 500, EVENTS - 1):
        assert check(log_rows, rows[:keep]) is None  # without an anchor: looks fine
        problem = check(log_rows, rows[:keep], head)
        assert problem is not None and (problem.seq, problem.kind) == (keep + 1, "truncated")
    # an anchor from another log (or a forged one) does not match
    problem = check(log_rows, rows, Anchor(500, b"\x11" * 32))
    assert problem is not None and (problem.seq, problem.kind) == (500, "anchor")
    assert check(log_rows, rows, Anchor(500, rows[499][3])) is None


# --- the same through the file and the CLI --------------------------------------


def _db(work: Path) -> sqlite3.Connection:
    return sqlite3.connect(work / ".bsecrets" / "vault.db")


def _verify(*args: str) -> Any:
    return invoke(["audit", "verify", *args])


@pytest.fixture
def audited(vault: Path) -> Path:
    for i in range(6):
        assert invoke(["put", f"k{i}", "-e", "dev"], input=f"value-{i}").exit_code == 0
    assert invoke(["get", "k1"]).exit_code == 0
    return vault


@pytest.mark.parametrize(
    ("sql", "seq", "kind"),
    [
        ("UPDATE audit_events SET record = randomblob(length(record)) WHERE seq = 4", 4, "edited"),
        ("UPDATE audit_events SET time = '2020-01-01T00:00:00.000Z' WHERE seq = 3", 3, "edited"),
        ("DELETE FROM audit_events WHERE seq = 2", 2, "missing"),
        ("UPDATE audit_events SET mac = 'text' WHERE seq = 3", 3, "edited"),  # another type
        ("UPDATE audit_events SET time = 12345 WHERE seq = 2", 2, "edited"),
        (
            "UPDATE audit_events SET record = (SELECT record FROM audit_events WHERE seq = 2),"
            " time = (SELECT time FROM audit_events WHERE seq = 2),"
            " mac = (SELECT mac FROM audit_events WHERE seq = 2) WHERE seq = 5",
            5,
            "inserted",
        ),
    ],
)
def test_changed_file_exit_5_names_the_event(audited: Path, sql: str, seq: int, kind: str) -> None:
    with _db(audited) as conn:
        conn.execute(sql)
    result = _verify()
    assert result.exit_code == 5, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: audit log: {kind} at event {seq}:"), result.stderr
    assert result.stderr.count("\nhint: ") == 1


def test_verify_json_reports_the_problem(audited: Path) -> None:
    with _db(audited) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 3")
    result = _verify("--json")
    assert result.exit_code == 5
    import json

    report = json.loads(result.stdout)
    assert report["ok"] is False and report["problem"]["seq"] == 3
    assert report["problem"]["kind"] == "missing"


def test_truncated_tail_is_caught_by_the_anchor_and_a_wrong_anchor_is_exit_5(
    audited: Path,
) -> None:
    anchor = invoke(["audit", "anchor"]).stdout.strip()
    seq = int(anchor.split(":")[0])
    ok = _verify("--anchor", anchor)
    assert ok.exit_code == 0 and "anchor: matches" in ok.stdout, ok.stdout + ok.stderr
    with _db(audited) as conn:  # drop everything after event 3 (puts among them)
        conn.execute("DELETE FROM audit_events WHERE seq > 3")
    # Without an anchor: the environments' manifests are newer than the log's last event
    # (witness.py), and no new event can be chained onto the shorter log.
    result = _verify()
    assert result.exit_code == 5
    assert result.stderr.startswith("error: audit log: rollback at event 3:"), result.stderr
    assert "the audit log ends before the last change to environment 'dev'" in result.stderr
    result = _verify("--anchor", anchor)
    assert result.exit_code == 5
    assert result.stderr.startswith("error: audit log: truncated at event 4:"), result.stderr
    assert f"the log ends at event 3; the anchor is at event {seq}" in result.stderr
    wrong = f"2:{'ab' * 32}"
    result = _verify("--anchor", wrong)
    assert result.exit_code == 5 and "anchor at event" in result.stderr, result.stderr


def test_truncating_events_after_the_last_change_needs_the_anchor(audited: Path) -> None:
    """The limit that remains: events after the last write (reads, audit commands)
    record the same state, so removing them leaves a log that is whole in itself."""
    last_write = 7  # init, then six puts
    anchor = invoke(["audit", "anchor"]).stdout.strip()
    with _db(audited) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq > ?", (last_write,))
    assert _verify().exit_code == 0
    result = _verify("--anchor", anchor)
    assert result.exit_code == 5 and "anchor" in result.stderr, result.stderr


@pytest.mark.parametrize("bad", ["12", "x:abc", "5:" + "zz" * 32, "-1:" + "00" * 32, ""])
def test_malformed_anchor_is_a_usage_error(audited: Path, bad: str) -> None:
    result = _verify("--anchor", bad)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: invalid anchor")
    assert "hint: " in result.stderr


def test_archive_takes_only_the_oldest_run_before_the_cutoff(tmp_path: Path) -> None:
    """An event with an older time at a newer seq (a late intake event, a clock set
    back) does not pull the events before it into the archive."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = iter([start + timedelta(hours=h) for h in (1, 3, 2, 4)])
    vault = LocalVault.create(
        tmp_path / "v.db",
        Credentials(passphrase=PASSPHRASE),
        utcnow,
        passphrase=PASSPHRASE,
        use_keyring=False,
    )
    log = LocalAuditLog(vault)
    logger = AuditLogger(log, AccessContext("ann", "box", 1), lambda: next(times), {})
    for name in ("a", "b", "c", "d"):
        logger.record("get", "dev", name=name)
    keys = log.reading_keys()
    assert keys is not None
    summary = log.archive(keys, start + timedelta(hours=2, minutes=30), tmp_path / "old.jsonl")
    assert (summary["first_seq"], summary["last_seq"], summary["archived"]) == (1, 1, 1)
    result = log.verify(keys, None)
    assert result.problem is None and (result.archived, result.first_seq) == (1, 2)
    vault.close()
