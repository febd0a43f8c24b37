"""Security review item 3: the audit anchor kept in the OS keyring never moves
backwards or sideways.

Before ``lock``, ``audit anchor`` or a successful ``audit verify`` store the
chain's head, the chain must still lead from the anchor already stored (the
same event, the same MAC) to that head. If not: exit 5, and the stored anchor
is left as it was, so the next ``audit verify`` still reports the truncation.

The keyring is a file-backed stand-in (tests/helpers/file_keyring.py): a real
``keyring`` backend whose entries the test can read and change.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers.cli import invoke
from helpers.file_keyring import FileKeyring, file_keyring  # noqa: F401

ANCHOR_PREFIX = "bsecrets/audit-"


def vault_file(work: Path) -> Path:
    return work / ".bsecrets" / "vault.db"


@pytest.fixture
def anchored(vault: Path, file_keyring: FileKeyring) -> FileKeyring:  # noqa: F811
    """Writes, then reads, then an anchor in the keyring after the reads."""
    for i in range(3):
        assert invoke(["put", f"k{i}"], input=f"v{i}").exit_code == 0
    for _ in range(4):
        assert invoke(["get", "k1"]).exit_code == 0
    result = invoke(["audit", "anchor"])
    assert result.exit_code == 0 and "OS keyring" in result.stderr + result.stdout, result
    return file_keyring


def _kept(keyring: FileKeyring) -> str:
    return keyring.find(ANCHOR_PREFIX)[1]


def _drop_after(work: Path, seq: int) -> None:
    with sqlite3.connect(vault_file(work)) as db:
        db.execute("DELETE FROM audit_events WHERE seq > ?", (seq,))


def _last_write(work: Path) -> int:
    return 4  # init, then three puts: later events are reads, which change no manifest


def _refused(result: object, *needles: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 5, stderr  # type: ignore[attr-defined]
    lines = stderr.splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), stderr
    for needle in needles:
        assert needle in stderr, stderr


@pytest.mark.parametrize("command", [["lock"], ["audit", "anchor"]])
def test_truncation_then_reanchoring_is_refused(
    anchored: FileKeyring, vault: Path, command: list[str]
) -> None:
    kept = _kept(anchored)
    _drop_after(vault, _last_write(vault))
    _refused(invoke(command), "no longer leads from the anchored event")
    assert _kept(anchored) == kept  # left alone
    result = invoke(["audit", "verify"])
    assert result.exit_code == 5 and "truncated" in result.stderr, result.stderr
    assert _kept(anchored) == kept


def test_verify_with_an_older_anchor_does_not_move_the_kept_one(
    anchored: FileKeyring, vault: Path
) -> None:
    """A given --anchor that the truncated log still contains passes, but the kept,
    newer anchor is not overwritten by the shorter head."""
    kept = _kept(anchored)
    older = invoke(["audit", "log", "--json"])
    assert older.exit_code == 0
    import json

    events = json.loads(older.stdout)
    early = next(e for e in events if e["seq"] == 2)
    _drop_after(vault, _last_write(vault))
    result = invoke(["audit", "verify", "--anchor", f"2:{early['mac']}"])
    _refused(result, "no longer leads from the anchored event")
    assert _kept(anchored) == kept


def test_a_sideways_chain_is_refused(anchored: FileKeyring, vault: Path, tmp_path: Path) -> None:
    """An older copy of the whole file put back and written to until its log is longer
    than the anchored one: same length or longer, but another chain."""
    kept = _kept(anchored)
    backup = tmp_path / "backup.db"
    # the file as it was before the anchor: a copy taken now, then rewound
    with sqlite3.connect(vault_file(vault)) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    with sqlite3.connect(backup) as db:
        db.execute("DELETE FROM audit_events WHERE seq > ?", (_last_write(vault),))
    db.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{vault_file(vault)}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, vault_file(vault))
    for _ in range(8):  # other events at the anchored sequence numbers and past them
        assert invoke(["get", "k2"]).exit_code == 0
    _refused(invoke(["lock"]), "does not follow the anchored event")
    assert _kept(anchored) == kept
    assert invoke(["audit", "verify"]).exit_code == 5


def test_a_malformed_kept_anchor_is_exit_5(anchored: FileKeyring) -> None:
    key, _ = anchored.find(ANCHOR_PREFIX)
    anchored.put(key, "not an anchor")
    _refused(invoke(["audit", "verify"]), "malformed")
    _refused(invoke(["audit", "anchor"]), "malformed")
    assert anchored.entries()[key] == "not an anchor"


def test_the_anchor_moves_forward(anchored: FileKeyring, vault: Path) -> None:
    first = _kept(anchored)
    assert invoke(["put", "k9"], input="v").exit_code == 0
    assert invoke(["lock"]).exit_code == 0
    second = _kept(anchored)
    assert int(second.split(":")[0]) > int(first.split(":")[0])
    assert invoke(["audit", "verify"]).exit_code == 0
    assert int(_kept(anchored).split(":")[0]) > int(second.split(":")[0])


def _archive_all(work: Path) -> Path:
    from bsecrets.timeutil import utcnow

    assert invoke(["get", "k0"]).exit_code == 0  # so the anchored event is inside it
    target = work / "archive.jsonl"
    moved = invoke(["audit", "archive", "--before", utcnow().isoformat(), "--to", str(target)])
    assert moved.exit_code == 0, moved.stderr
    return target


def test_an_anchor_in_an_archive_still_moves_forward(anchored: FileKeyring, vault: Path) -> None:
    """The anchored event was archived since: the chain is checked through the archive."""
    kept = _kept(anchored)
    _archive_all(vault)
    assert invoke(["lock"]).exit_code == 0
    assert int(_kept(anchored).split(":")[0]) > int(kept.split(":")[0])


def test_an_anchor_in_a_changed_archive_is_refused(anchored: FileKeyring, vault: Path) -> None:
    kept = _kept(anchored)
    target = _archive_all(vault)
    lines = target.read_text().splitlines()
    lines[3] = lines[3].replace('"mac": "', '"mac": "00', 1)
    target.write_text("\n".join(lines) + "\n")
    _refused(invoke(["lock"]), "no longer leads from the anchored event")
    assert _kept(anchored) == kept
