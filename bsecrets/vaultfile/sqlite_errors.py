"""sqlite3's errors, translated into bsecrets' own at the vault file's boundary.

:func:`translate` is the one table from a sqlite3 error to a BsecretsError; when
the file cannot be written it finds out why (a read-only mount, a file or folder
without write permission, a full disk) and names the file and the command that
fixes it. sqlite3's own text is made printable first: a damaged file can put raw
bytes in it.
"""

from __future__ import annotations

import os
import sqlite3

from bsecrets.errors import BackendUnavailable, BsecretsError, IntegrityError, StorageError
from bsecrets.files import StrPath, parent
from bsecrets.vaultfile.connection import BUSY_TIMEOUT_S, SIDECARS, read_only_fs

_LOW_SPACE = 64 * 1024  # SQLite needs room for a 32 KiB -shm file beside the WAL


def shown(exc: BaseException) -> str:
    """sqlite3's message, made safe to print: a damaged file can put raw bytes in it."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return printable(text)


def printable(text: str) -> str:
    """``text`` in printable ASCII ('?' for anything else), at most 120 characters."""
    return "".join(c if c.isprintable() and ord(c) < 128 else "?" for c in text)[:120]


def translate(exc: BaseException, path: StrPath) -> BsecretsError:
    """One table from sqlite3's errors (and the UnicodeDecodeError it raises for a
    mangled schema) to ours, for the vault file at ``path``."""
    damaged = IntegrityError(f"{path} is damaged ({shown(exc)})")
    if isinstance(exc, UnicodeDecodeError):  # sqlite3 raises it for a mangled schema
        return damaged
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return BackendUnavailable(
            f"the vault {path} stayed busy for {BUSY_TIMEOUT_S:.0f} s (another process holds it)",
            hint="retry; if it persists, look for a stuck bsecrets process",
        )
    no_space = StorageError(f"no space left to write {path}", hint="free some disk space and retry")
    if "full" in text:
        return no_space
    if "readonly" in text or "read-only" in text:
        return _read_only_error(path)
    if any(
        word in text
        for word in (
            "not a database",
            "malformed",
            "corrupt",
            "unsupported file format",
            "could not decode",
            "no such column",  # a damaged schema: our tables are created in full
            "no such table",
        )
    ):
        return damaged
    if "disk i/o" in text or "unable to open" in text:
        free = _free_bytes(path)
        if free is not None and free < _LOW_SPACE:
            return no_space
        if read_only_fs(path):
            return _read_only_error(path)
        problem = _permission_error(path)
        if problem is not None:
            return problem
        return StorageError(
            f"cannot read or write {path} ({shown(exc)})",
            hint="check the disk, the free space and the permissions of the vault's folder",
        )
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
        return damaged
    return StorageError(f"vault error in {path}: {shown(exc)}")


def _free_bytes(path: StrPath) -> int | None:
    try:
        st = os.statvfs(parent(path))
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _read_only_error(path: StrPath) -> StorageError:
    """Why SQLite found the vault read-only, naming the file to fix and the command."""
    if read_only_fs(path):
        return StorageError(
            f"{path} is read-only (the file system is mounted read-only)",
            hint="remount it read-write, or work on a copy of the vault elsewhere",
        )
    return _permission_error(path) or StorageError(
        f"{path} is read-only", hint="check the file system and the file's permissions"
    )


def _permission_error(path: StrPath) -> StorageError | None:
    """The vault file, its -wal or -shm, or its folder, when we cannot read and write
    it: which one, and the command that fixes it."""
    for file in [os.fspath(path), *(f"{path}{suffix}" for suffix in SIDECARS)]:
        try:
            st = os.stat(file)
        except OSError:
            continue
        if os.access(file, os.R_OK | os.W_OK):
            continue
        mode = f"mode {st.st_mode & 0o777:o}"
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            # not ours, so connection.repair_sidecars could not fix it
            return StorageError(
                f"{file} is read-only for you ({mode}, owner uid {st.st_uid}), "
                "so the vault cannot be written",
                hint=f"sudo chown {os.getuid()} {file} && chmod 600 {file}",
            )
        return StorageError(
            f"{file} is read-only ({mode}), so the vault cannot be written",
            hint=f"chmod 600 {file}",
        )
    if not os.access(folder := parent(path), os.W_OK | os.X_OK):
        return StorageError(
            f"{path} is read-only: its folder {folder} is not writable",
            hint=f"chmod 700 {folder}",
        )
    return None
