"""Disk full and read-only vaults, with real faults (K3): a clear error, the vault
unchanged.

Each scenario runs ``python -m bsecrets`` inside a private mount namespace
(``unshare -m``, root only): a tiny tmpfs filled to the brim for ENOSPC, and a
read-only bind mount for EROFS (chmod does not stop root). The work happens in
tests/scripts/storage_fault.py; the tests check its JSON report. Without the
privileges the tests skip, unless CI was set when this module was imported.

Disk full is tried with 0, 16, 48 and 100 KiB left: SQLite then fails at
different points (creating the 32 KiB -shm file; writing the first WAL frames;
half-way through a 150 KB value).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke
from helpers.values import PASSPHRASE

pytestmark = pytest.mark.slow

CI_AT_IMPORT = os.environ.get("CI")  # conftest's autouse fixture hides CI during the tests
SCRIPT = Path(__file__).parent / "scripts" / "storage_fault.py"
SLACKS_KIB = (0, 16, 48, 100)
VALUE = b"0123456789abcdef" * 9600  # 150 KiB: more than any slack


@functools.cache
def _why_no_namespaces() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root for a private mount namespace (unshare -m)"
    if not (shutil.which("unshare") and shutil.which("mount")):
        return "needs unshare(1) and mount(8)"
    probe = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; rmdir "$d"',
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare -m with a tmpfs mount is not permitted here: {probe.stderr.decode()!r}"
    return None


def require_namespaces() -> None:
    reason = _why_no_namespaces()
    if reason and CI_AT_IMPORT:
        pytest.fail(f"CI must run the storage fault tests: {reason}")
    if reason:
        pytest.skip(reason)


def in_namespace(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        ["unshare", "-m", sys.executable, str(SCRIPT), *args],
        capture_output=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_clean_error(run: dict[str, Any]) -> list[str]:
    """A failed command: one `error:` line first, no traceback. Returns the stderr lines."""
    lines = run["stderr"].splitlines()
    assert run["rc"] != 0, run
    assert lines and lines[0].startswith("error: "), run["stderr"]
    assert sum(line.startswith("error: ") for line in lines) == 1, run["stderr"]
    assert "Traceback" not in run["stderr"] and "internal error" not in run["stderr"], run["stderr"]
    return lines


# --- disk full ---------------------------------------------------------------------


_DISK_FULL: dict[str, Any] = {}


@pytest.fixture
def disk_full(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """Every slack in one namespace, once per session (the tests only read the report)."""
    require_namespaces()
    if not _DISK_FULL:
        root = tmp_path_factory.mktemp("disk-full")
        value_file = root / "value.bin"
        value_file.write_bytes(VALUE)
        monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
        _DISK_FULL.update(
            in_namespace("disk-full", str(root), str(value_file), *map(str, SLACKS_KIB))
        )
        for slack, r in _DISK_FULL.items():  # for the record (-s shows it)
            print(
                f"\nslack {slack} KiB (free {r['fill']['free_kib']} KiB); files after the "
                f"failed put: {sorted(r['files_after_failure'])}"
            )
            for step in ("put_full", "get_full"):
                said = r[step]["stderr"].strip() or r[step]["stdout"].strip()
                print(f"  {step}: exit {r[step]['rc']}: {said}")
    return _DISK_FULL


@pytest.mark.parametrize("slack", SLACKS_KIB)
def test_disk_full_put_fails_and_leaves_the_vault_intact(
    disk_full: dict[str, Any], slack: int
) -> None:
    r = disk_full[str(slack)]
    assert r["init"]["rc"] == 0 and r["put_old"]["rc"] == 0, r
    assert r["fill"]["free_kib"] <= slack + 4, r["fill"]
    assert_clean_error(r["put_full"])
    assert r["put_full"]["rc"] == 1, r["put_full"]
    # (the main file may change: the failed put's audit event is small enough to be
    # written where the value was not, and the last close checkpoints the WAL)
    # once space is back: the old value, one version, a sound file
    assert (r["get_freed"]["rc"], r["get_freed"]["stdout"]) == (0, "old\n"), r["get_freed"]
    assert r["ls_freed"]["rc"] == 0 and " v1 " in r["ls_freed"]["stdout"], r["ls_freed"]
    assert r["look_freed"] == {"integrity": [["ok"]], "versions": [["dev", 1]]}
    # ... that takes the write now
    assert r["put_freed"]["rc"] == 0, r["put_freed"]
    assert (r["get_v2"]["rc"], r["get_v2"]["stdout"]) == (0, VALUE.decode()), r["get_v2"]["stderr"]


@pytest.mark.parametrize(
    "slack",
    [
        0,
        16,
        48,
        100,
    ],
)
def test_disk_full_error_says_no_space_and_what_to_do(
    disk_full: dict[str, Any], slack: int
) -> None:
    lines = assert_clean_error(disk_full[str(slack)]["put_full"])
    assert "no space" in lines[0], lines
    assert any(line.startswith("hint: ") for line in lines[1:]), lines


# --- read-only ----------------------------------------------------------------------


@pytest.fixture
def read_only(vault: Path) -> dict[str, Any]:
    require_namespaces()
    assert invoke(["put", "a"], input="old").exit_code == 0
    return in_namespace("read-only", str(vault))


def test_read_only_put_fails_and_changes_nothing(read_only: dict[str, Any]) -> None:
    for step in ("put_existing", "put_new"):
        assert_clean_error(read_only[step])
    assert read_only["files_during"] == read_only["files_before"]
    assert read_only["files_after"] == read_only["files_before"]
    assert invoke(["get", "a"]).stdout == "old\n"  # and it still reads once writable again
    assert invoke(["get", "fresh"]).exit_code == 3


def test_read_only_put_says_read_only(read_only: dict[str, Any]) -> None:
    lines = assert_clean_error(read_only["put_existing"])
    assert "read-only" in lines[0], lines
    assert any(line.startswith("hint: ") for line in lines[1:]), lines


def test_read_only_vault_fails_closed(read_only: dict[str, Any]) -> None:
    """Audit storage unwritable: a read cannot record its event, so it reveals nothing."""
    for step in ("get", "ls"):
        lines = assert_clean_error(read_only[step])
        assert read_only[step]["stdout"] == "", read_only[step]
        assert "read-only" in lines[0], lines


# --- a read-only vault file leaves read-only -wal/-shm files behind -----------------
#
# SQLite creates vault.db-wal and vault.db-shm with the mode the vault file has at
# that moment. A command run while the vault was chmod 400 opens it read-only,
# cannot checkpoint, and leaves both files behind with mode 400; once the vault was
# writable again, SQLite opened that -shm read-only and every command failed with
# "read-only" until someone deleted it by hand. chmod does not stop root, so these
# tests run the CLI as root without the capabilities that override file modes.

_DAC_CAPS = "-dac_override,-dac_read_search,-fowner"


@functools.cache
def _why_modes_do_not_bind() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None  # an ordinary user: file modes apply as they are
    if shutil.which("setpriv") is None:
        return "needs setpriv(1) to drop CAP_DAC_OVERRIDE"
    with tempfile.TemporaryDirectory() as folder:
        locked = Path(folder) / "locked"
        locked.write_bytes(b"")
        locked.chmod(0o400)
        probe = subprocess.run(
            ["setpriv", f"--inh-caps={_DAC_CAPS}", f"--bounding-set={_DAC_CAPS}",
             "sh", "-c", 'echo x >> "$1"', "sh", str(locked)],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
    if probe.returncode == 0:
        return "setpriv did not make a mode-400 file unwritable"
    return None


def as_file_modes_bind(args: list[str], stdin: bytes | None = None) -> dict[str, Any]:
    """``bsecrets ARGS`` in a process that file modes apply to (root without
    CAP_DAC_OVERRIDE/CAP_FOWNER), as the storage_fault.py report shapes it."""
    reason = _why_modes_do_not_bind()
    if reason and CI_AT_IMPORT:
        pytest.fail(f"CI must run the file-mode tests: {reason}")
    if reason:
        pytest.skip(reason)
    prefix = []
    if os.geteuid() == 0:
        prefix = ["setpriv", f"--inh-caps={_DAC_CAPS}", f"--bounding-set={_DAC_CAPS}"]
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "bsecrets", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return {"rc": done.returncode, "stdout": done.stdout.decode(), "stderr": done.stderr.decode()}


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_read_only_vault_file_leaves_no_read_only_shm_behind(vault: Path) -> None:
    db = vault / ".bsecrets" / "vault.db"
    shm, wal = Path(f"{db}-shm"), Path(f"{db}-wal")
    assert invoke(["put", "a"], input="old").exit_code == 0
    db.chmod(0o400)
    lines = assert_clean_error(failed := as_file_modes_bind(["get", "a"]))
    assert failed["rc"] == 1 and failed["stdout"] == "", failed
    assert "read-only (mode 400)" in lines[0] and str(db) in lines[0], lines
    assert lines[1:] == [f"hint: chmod 600 {db}"], lines
    # the mechanism: SQLite made the -shm (and -wal) with the vault's mode, and left them
    assert _mode(shm) == 0o400, "the scenario did not reproduce: no read-only -shm"
    db.chmod(0o600)
    put = as_file_modes_bind(["put", "a"], stdin=b"new")
    assert put["rc"] == 0, put["stderr"]
    got = as_file_modes_bind(["get", "a"])
    assert (got["rc"], got["stdout"]) == (0, "new\n"), got["stderr"]
    for side in (shm, wal):
        assert not side.exists() or _mode(side) == 0o600, oct(_mode(side))


def test_shm_of_another_user_is_named_with_the_command_that_fixes_it(vault: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the -shm file to another user")
    db = vault / ".bsecrets" / "vault.db"
    shm = Path(f"{db}-shm")
    assert invoke(["put", "a"], input="old").exit_code == 0
    db.chmod(0o400)
    assert as_file_modes_bind(["get", "a"])["rc"] == 1
    db.chmod(0o600)
    os.chown(shm, 65534, 65534)  # bsecrets may chmod its own files, not another user's
    lines = assert_clean_error(failed := as_file_modes_bind(["get", "a"]))
    assert failed["rc"] == 1 and failed["stdout"] == "", failed
    assert str(shm) in lines[0] and "owner uid 65534" in lines[0], lines
    assert lines[1:] == [f"hint: sudo chown 0 {shm} && chmod 600 {shm}"], lines
    os.chown(shm, 0, 0)  # what the hint says
    shm.chmod(0o600)
    got = as_file_modes_bind(["get", "a"])
    assert (got["rc"], got["stdout"]) == (0, "old\n"), got["stderr"]


# --- purged and archived data leave no bytes in the files ---------------------------
#
# Values are encrypted, so the test looks for the ciphertext of a purged value (and
# of archived audit events) in vault.db and vault.db-wal. It keeps the vault open in
# another process (audit tail) meanwhile: then SQLite neither checkpoints nor removes
# the WAL when the purging command closes, and the old pages stay in both files
# unless the purge checkpoints (TRUNCATE) and deleted rows are zeroed (secure_delete).
# The bucket indexes hold copies of the records and of each value's nonce and GCM tag
# (vaultfile/schema.py): those must go too.


def _holder(vault: Path) -> subprocess.Popen[bytes]:
    """``bsecrets audit tail`` in the background: a second connection to the vault."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bsecrets", "audit", "tail", "-n", "1", "--interval", "0.2"],
        cwd=vault,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert "audit.tail" in proc.stdout.readline().decode()  # it is connected
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def _files(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def _left_over(blob: bytes, data: bytes) -> list[int]:
    """Offsets of the 64-byte slices of ``blob`` (the whole of a shorter one) still
    found in ``data``."""
    if len(blob) < 64:
        return [0] if blob in data else []
    return [i for i in range(0, len(blob) - 63, 64) if blob[i : i + 64] in data]


def _stored(db: Path) -> set[bytes]:
    """The values, the records (heads and versions), and each value's nonce and tag side
    by side, as the versions' bucket index holds them (not found so in the table)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        values = [bytes(v) for (v,) in conn.execute("SELECT value FROM versions")]
        records = conn.execute("SELECT record FROM versions UNION ALL SELECT record FROM secrets")
        return {*values, *(bytes(r) for (r,) in records), *(v[:12] + v[-16:] for v in values)}


def test_purged_values_leave_no_ciphertext_in_the_files(vault: Path) -> None:
    db = vault / ".bsecrets" / "vault.db"
    holder = _holder(vault)
    try:
        assert invoke(["put", "kept"], input="kept value").exit_code == 0
        before = _stored(db)
        assert invoke(["put", "small"], input="s" * 100).exit_code == 0
        assert invoke(["put", "big"], input="b" * 20_000).exit_code == 0  # overflow pages
        gone = _stored(db) - before  # two values, four records, two nonces and tags
        assert len(gone) == 8 and all(_left_over(blob, _files(db)) for blob in gone)
        for name in ("small", "big"):
            result = invoke(["rm", name, "--purge", "--yes"])
            assert result.exit_code == 0, result.stderr
        data = _files(db)  # while the other process still has the vault open
        for blob in gone:
            assert _left_over(blob, data) == [], f"{len(blob)}-byte ciphertext left"
    finally:
        _stop(holder)
    data = _files(db)
    assert all(_left_over(blob, data) == [] for blob in gone)
    assert invoke(["get", "kept"]).stdout == "kept value\n"


def test_archived_audit_events_leave_no_ciphertext_in_the_files(vault: Path) -> None:
    db = vault / ".bsecrets" / "vault.db"

    def records() -> dict[int, tuple[str, bytes]]:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT seq, time, record FROM audit_events")
            return {seq: (time, bytes(record)) for seq, time, record in rows}

    for i in range(5):
        assert invoke(["put", f"s{i}"], input="v" * 500).exit_code == 0
    holder = _holder(vault)
    try:
        before = records()
        cutoff = before[max(before)][0]  # the newest events stay in the live log
        result = invoke(["audit", "archive", "--before", cutoff, "--to", "old.jsonl"])
        assert result.exit_code == 0, result.stderr
        gone = [record for seq, (_, record) in before.items() if seq not in records()]
        assert len(gone) >= 4, (len(gone), len(before))
        data = _files(db)
        assert [r for r in gone if _left_over(r, data)] == []
    finally:
        _stop(holder)
    assert invoke(["get", "s4"]).stdout == "v" * 500 + "\n"
