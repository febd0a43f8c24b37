"""Real storage faults for tests/test_storage_faults.py. Run it inside a private
mount namespace (``unshare -m python storage_fault.py ...``), as root: the
mounts it makes vanish with the namespace.

``disk-full DIR VALUE_FILE SLACK_KIB...``: for each slack, a 1 MiB tmpfs at
DIR/slack-N holds a new vault (init, put a=old); a filler file takes all the
space but N KiB; then ``put a --from-file VALUE_FILE`` (bigger than any slack),
``get a`` while full; the filler is deleted; then ``get a``, ``ls``, a second
put that must now work, and a look at the file (integrity_check, rows).

``read-only DIR``: DIR holds a profile and its vault; DIR is bind-mounted
read-only over itself; then ``put a``, ``put new``, ``get a``, ``ls``.

Prints one JSON document: every command's exit code, stdout and stderr, and
what the files looked like.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT_S = 60


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, timeout=TIMEOUT_S, capture_output=True)


def bsecrets(cwd: Path, *args: str, stdin: bytes | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bsecrets", *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return {
        "rc": done.returncode,
        "stdout": done.stdout.decode(errors="replace"),
        "stderr": done.stderr.decode(errors="replace"),
    }


def files(folder: Path) -> dict[str, Any]:
    out = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            data = path.read_bytes()
            out[path.name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return out


def look(db: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
            "versions": conn.execute("SELECT env, version FROM versions ORDER BY 1, 2").fetchall(),
        }


def fill(path: Path, leave_kib: int) -> dict[str, Any]:
    chunk = b"\0" * 65536
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    size = path.stat().st_size
    os.truncate(path, max(0, size - leave_kib * 1024))
    st = os.statvfs(path.parent)
    return {"free_kib": st.f_bavail * st.f_frsize // 1024}


def disk_full(root: Path, value_file: Path, slacks: list[int]) -> dict[str, Any]:
    out = {}
    for slack in slacks:
        mnt = root / f"slack-{slack}"
        mnt.mkdir(mode=0o700)
        sh("mount", "-t", "tmpfs", "-o", "size=1024k,mode=0700", "tmpfs", str(mnt))
        try:
            db = mnt / ".bsecrets" / "vault.db"
            r: dict[str, Any] = {
                "init": bsecrets(mnt, "init", "--env", "dev"),
                "put_old": bsecrets(mnt, "put", "a", stdin=b"old"),
            }
            r["files_before"] = files(db.parent)
            r["fill"] = fill(mnt / "filler", slack)
            r["put_full"] = bsecrets(mnt, "put", "a", "--from-file", str(value_file))
            r["files_after_failure"] = files(db.parent)
            r["get_full"] = bsecrets(mnt, "get", "a")
            (mnt / "filler").unlink()
            r["get_freed"] = bsecrets(mnt, "get", "a")
            r["ls_freed"] = bsecrets(mnt, "ls")
            r["look_freed"] = look(db)
            r["put_freed"] = bsecrets(mnt, "put", "a", "--from-file", str(value_file))
            r["get_v2"] = bsecrets(mnt, "get", "a", "--version", "2", "--raw")
        finally:
            sh("umount", str(mnt))
        out[str(slack)] = r
    return out


def read_only(folder: Path) -> dict[str, Any]:
    db = folder / ".bsecrets" / "vault.db"
    r: dict[str, Any] = {"files_before": files(db.parent)}
    sh("mount", "--bind", str(folder), str(folder))
    try:
        sh("mount", "-o", "remount,bind,ro", str(folder))
        r["put_existing"] = bsecrets(folder, "put", "a", stdin=b"new")
        r["put_new"] = bsecrets(folder, "put", "fresh", stdin=b"value")
        r["get"] = bsecrets(folder, "get", "a")
        r["ls"] = bsecrets(folder, "ls")
        r["files_during"] = files(db.parent)
    finally:
        sh("umount", str(folder))
    r["files_after"] = files(db.parent)
    return r


def main() -> int:
    mode, *args = sys.argv[1:]
    if mode == "disk-full":
        result = disk_full(Path(args[0]), Path(args[1]), [int(a) for a in args[2:]])
    else:
        result = read_only(Path(args[0]))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
