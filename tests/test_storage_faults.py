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

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, invoke

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
