"""``init`` builds the vault in a temporary file and moves it into place whole
(issue #11, item 12): a kill at any moment leaves no vault or a whole one, and
whatever an interrupted init left (a temporary file, a damaged vault from an
older bsecrets) is reported by the next ``init``, never silently kept.

The kill test starts real ``python -m bsecrets init`` processes and SIGKILLs
each at a random moment (seeded, a fixed number of kills): half at a delay
drawn over one init's whole run, half just after the temporary vault file
appears, so the build itself is hit too. Nothing here asserts on elapsed time.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.cli import invoke
from helpers.values import PASSPHRASE

from bsecrets.vaultfile.schema import SCHEMA

pytestmark = pytest.mark.slow

KILLS = 30  # sized for a shared 2-core machine
SEED = 1211

INIT = ["init", "--env", "dev", "--env", "prod"]


def _environ() -> dict[str, str]:
    return {**os.environ, "BSECRETS_PASSPHRASE": PASSPHRASE}


def _vault(folder: Path) -> Path:
    return folder / ".bsecrets" / "vault.db"


def _leftovers(folder: Path) -> list[Path]:
    vault = _vault(folder)
    if not vault.parent.exists():
        return []
    return sorted(p for p in vault.parent.iterdir() if p.name.startswith("vault.db.tmp-"))


def _init(folder: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bsecrets", "-p", str(folder / "bsecrets.yaml"), *INIT, *extra],
        env=_environ(),
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _cli(folder: Path, *args: str) -> tuple[int, str, str]:
    result = invoke(["-p", str(folder / "bsecrets.yaml"), *args], env=_environ())
    return result.exit_code, result.stdout, result.stderr


def _check_after_kill(folder: Path) -> str:
    """What the kill left must be no vault or a whole one; the next init must say
    what it finds and end with a working vault. Returns what was found."""
    vault = _vault(folder)
    assert not Path(f"{vault}-journal").exists()
    leftovers = _leftovers(folder)
    found = "vault" if vault.exists() else "nothing"
    if vault.exists():
        with sqlite3.connect(vault) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("SELECT count(*) FROM principals").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == (1,)
        conn.close()
    stale = [p for p in leftovers if not vault.exists() or not p.samefile(vault)]
    if stale:
        found += "+leftover"
        code, _, err = _cli(folder, *INIT)
        assert code == 7, err
        assert str(stale[0]) in err and f"rm {stale[0]}" in err
        assert "kept" not in err
        for path in stale:
            path.unlink()
    args = [*INIT, "--force"] if (folder / "bsecrets.yaml").exists() else INIT
    code, _, err = _cli(folder, *args)
    assert code == 0, err
    if found.startswith("vault"):
        assert "kept the existing vault" in err
    else:
        assert "created vault" in err
    assert _leftovers(folder) == []
    code, out, err = _cli(folder, "put", "db/url", "--value", "postgres://x")
    assert code == 0, err
    code, out, err = _cli(folder, "get", "db/url")
    assert (code, out) == (0, "postgres://x\n"), err
    code, out, err = _cli(folder, "audit", "verify")
    assert code == 0, err
    return found


def _wait_for_build(folder: Path, limit: float) -> None:
    """Until the temporary vault file appears (or ``limit`` seconds pass)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not _leftovers(folder):
        time.sleep(0.0005)


def test_a_killed_init_leaves_no_vault_or_a_whole_one(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    first = tmp_path / "whole"
    first.mkdir()
    assert _init(first).wait(timeout=120) == 0
    one_run = time.monotonic() - started  # only to spread the kills, never asserted
    seen: dict[str, int] = {}
    for i in range(KILLS):
        folder = tmp_path / f"kill{i}"
        folder.mkdir()
        process = _init(folder)
        if i % 2:
            _wait_for_build(folder, 2 * one_run)
            time.sleep(rng.uniform(0, 0.05))
        else:
            time.sleep(rng.uniform(0, one_run))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        found = _check_after_kill(folder)
        seen[found] = seen.get(found, 0) + 1
    print(f"after {KILLS} kills: {seen}")  # pytest -s shows which states were hit


def test_a_leftover_temporary_file_is_reported_not_used(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    folder = isolated / ".bsecrets"
    folder.mkdir(mode=0o700)
    leftover = folder / "vault.db.tmp-0123456789ab"
    leftover.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    leftover.chmod(0o600)
    result = invoke(INIT)
    assert result.exit_code == 7
    assert f"found {leftover}, left by an interrupted 'bsecrets init'" in result.stderr
    assert f"hint: remove it, then run init again: rm {leftover}" in result.stderr
    assert "kept" not in result.stderr
    assert not (folder / "vault.db").exists()
    assert not (isolated / "bsecrets.yaml").exists()
    leftover.unlink()
    result = invoke(INIT)
    assert result.exit_code == 0, result.stderr
    assert "created vault" in result.stderr


def test_a_build_in_progress_is_not_taken_for_a_leftover(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The builder holds an flock on its temporary file: another init waits for
    nobody and removes nothing, it says an init is running."""
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    folder = isolated / ".bsecrets"
    folder.mkdir(mode=0o700)
    building = folder / "vault.db.tmp-aaaaaaaaaaaa"
    fd = os.open(building, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = invoke(INIT)
    finally:
        os.close(fd)
    assert result.exit_code == 7
    assert "another 'bsecrets init' is creating the vault" in result.stderr
    assert building.exists()


def test_a_second_name_of_the_vault_is_removed(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between the link into place and the unlink of the temporary name
    leaves the vault with two names: the next init removes the second and says so."""
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    assert invoke(INIT).exit_code == 0
    vault = isolated / ".bsecrets" / "vault.db"
    second = vault.with_name("vault.db.tmp-bbbbbbbbbbbb")
    os.link(vault, second)
    result = invoke([*INIT, "--force"])
    assert result.exit_code == 0, result.stderr
    assert f"removed {second}" in result.stderr
    assert "kept the existing vault" in result.stderr
    assert not second.exists() and vault.exists()


def _half_built(path: Path) -> None:
    """What an older init killed after the schema and before the owner key left."""
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("format_version", b"1"), ("vault_id", os.urandom(16)), ("created_at", b"x")],
        )
    conn.close()


def _empty_with_journal(path: Path) -> None:
    path.write_bytes(b"")
    Path(f"{path}-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + b"\x00" * 504)
    Path(f"{path}-journal").chmod(0o600)


DAMAGED = {
    "empty": lambda path: path.write_bytes(b""),
    "empty with a -journal": _empty_with_journal,
    "not a database": lambda path: path.write_bytes(os.urandom(4096)),
    "schema only": _half_built,
}


@pytest.mark.parametrize("force", [False, True], ids=["init", "init --force"])
@pytest.mark.parametrize("kind", list(DAMAGED))
def test_a_damaged_vault_from_an_older_init_is_reported_never_kept(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, kind: str, force: bool
) -> None:
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    folder = isolated / ".bsecrets"
    folder.mkdir(mode=0o700)
    vault = folder / "vault.db"
    DAMAGED[kind](vault)
    vault.chmod(0o600)
    if force:
        (isolated / "bsecrets.yaml").write_text(
            "version: 1\nenvironments:\n  dev:\n    backend: local\n"
        )
    result = invoke([*INIT, "--force"] if force else INIT)
    assert result.exit_code == 5, result.stderr
    assert "kept" not in result.stderr
    assert "the existing vault is not a whole vault" in result.stderr
    hint = next(line for line in result.stderr.splitlines() if line.startswith("hint: "))
    assert f"mv {vault} {vault}.damaged" in hint
    if Path(f"{vault}-journal").exists():
        assert f"mv {vault}-journal {vault}.damaged-journal" in hint
    # the way out in the hint works
    for suffix in ("", "-journal", "-wal", "-shm"):
        if Path(f"{vault}{suffix}").exists():
            Path(f"{vault}{suffix}").rename(f"{vault}.damaged{suffix}")
    result = invoke([*INIT, "--force"] if force else INIT)
    assert result.exit_code == 0, result.stderr
    assert "created vault" in result.stderr


def test_concurrent_inits_make_one_vault(tmp_path: Path) -> None:
    """Inits of the same profile at once: one creates it, the others find it
    (exit 7, the profile exists); the vault is never replaced."""
    folder = tmp_path / "race"
    folder.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bsecrets", *INIT],
            env=_environ(),
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    codes = sorted(p.wait(timeout=120) for p in processes)
    for p in processes:
        assert p.stderr is not None
        p.stderr.close()
    assert codes == [0, 7, 7]
    assert _leftovers(folder) == []
    code, _, err = _cli(folder, "put", "k", "--value", "v")
    assert code == 0, err
    assert _cli(folder, "audit", "verify")[0] == 0
