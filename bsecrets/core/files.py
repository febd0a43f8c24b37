"""Private files and folders, atomic writes, and process hardening.

Files bsecrets writes are 0600 in 0700 folders; like ssh with its keys, it
refuses to use a vault or session file that others can read or that belongs
to another user.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from bsecrets.core.errors import InsecureFile, StorageError

_ORIGINAL: dict[str, int] = {}  # what harden_process changed, for restore_for_child


def harden_process() -> None:
    """umask 077 and no core dumps (a core file would hold decrypted keys)."""
    _ORIGINAL.setdefault("umask", os.umask(0o077))
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        _ORIGINAL.setdefault("core", soft)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))  # the soft limit only
    except (ImportError, ValueError, OSError):  # pragma: no cover - not POSIX
        pass


def restore_for_child() -> None:
    """Give a child we start (exec) the user's own umask and core-dump limit back."""
    if "umask" in _ORIGINAL:
        os.umask(_ORIGINAL["umask"])
    if "core" in _ORIGINAL:
        import resource

        with contextlib.suppress(ValueError, OSError):
            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE, (_ORIGINAL["core"], hard))


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) 0700 if missing; refuse one others can write."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as exc:
        raise storage_error(exc, path) from exc
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise InsecureFile(
            f"{path} belongs to another user", hint=f"use a folder you own, or chown {path}"
        )
    if st.st_mode & 0o022:
        raise InsecureFile(f"{path} can be written by other users", hint=f"chmod 700 {path}")


def check_private_file(path: Path) -> None:
    """Refuse a file that group or others can read or write, or owned by someone else."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise InsecureFile(f"{path} belongs to another user", hint="chown it, or use your own copy")
    if st.st_mode & 0o077:
        raise InsecureFile(
            f"{path} can be read by other users (mode {st.st_mode & 0o777:o})",
            hint=f"chmod 600 {path}",
        )


def write_private_file(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` atomically with mode 0600: a temp file in the same folder, fsync, rename.

    A crash leaves either the old file or the new one, never a mix. With
    ``exclusive``, fail with FileExistsError if ``path`` exists.
    """
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if exclusive:
            os.link(tmp, path)  # atomic, and fails if path exists
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except FileExistsError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise storage_error(exc, path) from exc


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def storage_error(exc: OSError, path: Path) -> StorageError:
    """Turn an OSError into a StorageError that says what to do."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StorageError(f"no space left to write {path}", hint="free some disk space and retry")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(
            f"{path} is not writable ({os.strerror(exc.errno)})",
            hint="check the file system and the file's permissions",
        )
    return StorageError(f"cannot write {path}: {exc.strerror or exc}")
