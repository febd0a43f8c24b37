"""Building a new vault file beside its final name, and moving it into place whole.

A new vault is written in ``vault.db.tmp-<random>`` (0600, created exclusively)
and only then given its name with ``os.link``, which never replaces a vault that
appeared meanwhile. A kill at any point leaves either no vault or the whole new
one, plus perhaps the temporary file, which :func:`leftover_builds` classifies.
The builder holds an flock on the temporary file while it builds, so another
process can tell a build in progress from a leftover.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

from bsecrets.errors import StorageError
from bsecrets.files import ensure_private_dir, fsync_dir, storage_error
from bsecrets.named_tuples import NamedTuple
from bsecrets.vaultfile.connection import SIDECARS, connect
from bsecrets.vaultfile.schema import SCHEMA
from bsecrets.vaultfile.sqlite_errors import translate

BUILD_MARK = ".tmp-"  # vault.db.tmp-<random>: a vault being built
_BUILD_SIDECARS = ("-wal", "-shm", "-journal")


class Build(NamedTuple):
    """A vault being built: where it goes, where it is, and the build lock."""

    target: Path
    temp: Path
    lock_fd: int  # holds the flock on ``temp``; closed when the build ends


def begin_build(path: Path, header: list[tuple[str, bytes]]) -> tuple[Build, sqlite3.Connection]:
    """A new vault file beside ``path`` with the schema and ``header`` (the ``meta``
    rows) committed, and its connection. FileExistsError if ``path`` exists; errors
    translated (BsecretsError), with nothing left behind."""
    ensure_private_dir(path.parent)
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "a vault exists", str(path))
    temp = path.with_name(f"{path.name}{BUILD_MARK}{os.urandom(6).hex()}")
    try:
        lock_fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise storage_error(exc, temp) from exc
    conn: sqlite3.Connection | None = None
    try:
        import fcntl  # POSIX only, and only when a vault is created

        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        # The journal stays in memory while building: a kill leaves no -journal or
        # -wal beside the temporary file, only the file, which is never used.
        conn = connect(temp, journal_mode="MEMORY")
        with contextlib.closing(conn.cursor()) as cur:
            cur.executescript("BEGIN IMMEDIATE;" + SCHEMA)
            cur.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", header)
            cur.execute("COMMIT")
    except BaseException as exc:
        if conn is not None:
            conn.close()
        os.close(lock_fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, sqlite3.Error | UnicodeDecodeError):
            raise translate(exc, temp) from exc
        raise
    return Build(path, temp, lock_fd), conn


def install_build(build: Build, conn: sqlite3.Connection) -> None:
    """Move the vault into place, complete: switch it to WAL and close ``conn`` (its
    -wal checkpointed and removed: the file alone is the whole vault, and opening it
    in place needs no -journal), fsync it, give it its name with ``os.link``
    (FileExistsError if a vault appeared there meanwhile, and the temporary file is
    removed), fsync the folder. On any failure the build is gone, files and lock."""
    target, temp, lock_fd = build
    try:
        # WAL in the header now, so that opening it in place writes no -journal
        # there; the close checkpoints and removes the -wal this makes.
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            raise translate(exc, temp) from exc
        conn.close()
        if any(os.path.exists(f"{temp}{suffix}") for suffix in SIDECARS):
            raise StorageError(f"could not finish writing the new vault {temp}")
        _fsync_file(temp)
        _link_new(temp, target)
        fsync_dir(target.parent)
    except BaseException:
        os.close(lock_fd)
        for suffix in ("", *SIDECARS):
            with contextlib.suppress(OSError):
                os.unlink(f"{temp}{suffix}")
        raise
    with contextlib.suppress(OSError):
        os.unlink(temp)
        fsync_dir(target.parent)
    os.close(lock_fd)


def discard_build(build: Build, conn: sqlite3.Connection) -> None:
    """Close ``conn`` and remove the vault being built, with its lock (its build failed)."""
    with contextlib.suppress(sqlite3.Error):
        conn.close()
    for suffix in ("", *SIDECARS):
        with contextlib.suppress(OSError):
            os.unlink(f"{build.temp}{suffix}")
    os.close(build.lock_fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_new(source: Path, target: Path) -> None:
    """Give ``source`` the name ``target`` too, never replacing a file there
    (FileExistsError). A file system without hard links gets a rename after a check
    (a window of microseconds in which a vault made by another process could be
    replaced: only there)."""
    try:
        os.link(source, target)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise storage_error(exc, target) from exc
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "a vault exists", str(target))
    try:
        os.rename(source, target)
    except OSError as exc:
        raise storage_error(exc, target) from exc


class Leftover(NamedTuple):
    """A vault being built, or left by a build (``vault.db.tmp-<random>``)."""

    path: Path
    # "installed": a second name of the vault itself (a kill between link and unlink);
    # "building": another process is building it now; "stale": left by a killed build
    state: str
    files: list[Path]  # the file and SQLite's files beside it (-wal, -shm, -journal)


def leftover_builds(path: Path) -> list[Leftover]:
    """The builds beside ``path`` that :func:`begin_build` made and did not remove."""
    try:
        names = sorted(os.listdir(path.parent))
    except OSError:
        return []
    try:
        vault = os.stat(path)
    except OSError:
        vault = None
    groups: dict[str, list[Path]] = {}
    for name in names:
        if not name.startswith(path.name + BUILD_MARK):
            continue
        stem = next((name[: -len(s)] for s in _BUILD_SIDECARS if name.endswith(s)), name)
        groups.setdefault(stem, []).append(path.parent / name)
    found = []
    for stem, files in groups.items():
        main = path.parent / stem
        try:
            st = os.lstat(main)
        except OSError:
            found.append(Leftover(main, "stale", files))
            continue
        if vault is not None and (st.st_dev, st.st_ino) == (vault.st_dev, vault.st_ino):
            found.append(Leftover(main, "installed", files))
        else:
            found.append(Leftover(main, "building" if _locked(main) else "stale", files))
    return found


def _locked(path: Path) -> bool:
    """Whether a live process holds the build lock of ``path`` (:func:`begin_build`)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also releases the lock, if we took it
    return False
