"""Private files and folders, atomic writes, and process hardening.

Files bsecrets writes are 0600 in 0700 folders; like ssh with its keys, it
refuses to use a vault or session file that others can read or that belongs
to another user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TypeAlias

from bsecrets.errors import InsecureFile, StorageError, UsageError

# A path as the callers hold it: text (the hot commands keep pathlib unloaded, ~4 ms of
# every command) or a Path (everywhere else). What this module builds from it is text.
StrPath: TypeAlias = "str | os.PathLike[str]"

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


# --- trusted paths ---------------------------------------------------------
#
# A file is only as safe as every folder on the way to it: whoever can write
# one of them can rename the file's folder away and put their own in its
# place. So, as ssh's StrictModes does, every folder from the file up to '/'
# must belong to you or root and be writable by nobody else; a root-owned
# sticky folder such as /tmp is fine (others cannot rename what you put in
# it). Symbolic links are followed as the kernel follows them: the folders
# holding each link are checked, then the folders of its target, and a link
# must belong to you or root (another user's link in /tmp could be swapped).
# A few lstat calls per path component; nothing is cached.

_MAX_LINKS = 40  # as the kernel's ELOOP limit


def _me() -> int:
    return os.geteuid()


def _user(uid: int) -> str:
    """A user name for a message (only on the error path: pwd may ask NSS)."""
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name}, uid {uid}"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _my_name() -> str:
    try:
        import pwd

        return pwd.getpwuid(_me()).pw_name
    except (ImportError, KeyError):
        return str(_me())


def _folder_problem(st: os.stat_result, folder: str, me: int) -> tuple[str, str] | None:
    """(why others could change what the folder holds, the fix), or None when they cannot."""
    if st.st_uid != me and st.st_uid != 0:
        return f"belongs to another user ({_user(st.st_uid)})", "move it to a folder you own"
    if st.st_mode & 0o022 and not (st.st_uid == 0 and st.st_mode & stat.S_ISVTX):
        mode = f"mode {stat.S_IMODE(st.st_mode):o}"
        if st.st_mode & stat.S_ISVTX:  # sticky, but its owner can still swap what it holds
            mode += ", sticky but not owned by root"
        return f"can be written by other users ({mode})", f"chmod go-w {folder}"
    return None


def _hint(first: str | None, then: str) -> str:
    return f"{first}; or {then}" if first else then


def _parts(path: str) -> list[str]:
    """The components of ``path`` as a stack (the next one last), without '' and '.'."""
    return [part for part in reversed(path.split("/")) if part and part != "."]


def _walk(path: StrPath, subject: str, instead: str | None) -> tuple[str, os.stat_result] | None:
    """Follow ``path`` as the kernel does and check every folder and link on the way.

    Returns the real path and lstat of the last component, or None when some
    component is missing or cannot be looked up (then opening it fails too,
    or, for /proc's magic links, the caller stats the path itself).
    """
    me = _me()
    text = os.fspath(path)
    if not text.startswith("/"):
        text = os.getcwd() + "/" + text
    if problem := _folder_problem(os.stat("/"), "/", me):
        raise InsecureFile(f"{subject} is under '/', which {problem[0]}", hint=problem[1])
    pending = _parts(text)
    current, links = "", 0  # a real path without its trailing '/'; "" is the root
    while pending:
        name = pending.pop()
        if name == "..":
            current = current.rpartition("/")[0]  # current is real: no link to undo
            continue
        candidate = current + "/" + name
        try:
            st = os.lstat(candidate)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid != me and st.st_uid != 0:
                raise InsecureFile(
                    f"{subject} goes through a symbolic link that belongs to another user "
                    f"({_user(st.st_uid)}): {candidate}",
                    hint=_hint(instead, "use the real path"),
                )
            links += 1
            try:
                target = os.readlink(candidate)
            except OSError:
                return None
            if links > _MAX_LINKS:
                return None
            if target.startswith("/"):
                current = ""
            pending += _parts(target)
            continue
        if not pending:
            return candidate, st
        if not stat.S_ISDIR(st.st_mode):
            return None
        if problem := _folder_problem(st, candidate, me):
            raise InsecureFile(
                f"{subject} is under a folder that {problem[0]}: {candidate}",
                hint=_hint(instead, problem[1]),
            )
        current = candidate
    try:  # the path ended in '..' (or was '/'): a folder
        return current or "/", os.stat(current or "/")
    except OSError:
        return None


def check_trusted_dirs(path: StrPath, *, what: str = "folder") -> bool:
    """Refuse (InsecureFile, exit 4) a folder that others could change, or one
    reached through such a folder: ``path`` and every folder above it must
    belong to you or root and not be writable by group or others, unless
    root-owned and sticky (like /tmp). Symbolic links are followed (see above).

    Returns True when ``path`` exists, False when part of it is missing (the
    part that exists was checked). A no-op where there are no POSIX owners.
    """
    if not hasattr(os, "geteuid"):  # pragma: no cover - not POSIX
        return os.path.exists(path)
    subject = f"{what} {path}"
    found = _walk(path, subject, None)
    if found is None:
        return False
    if problem := _folder_problem(found[1], found[0], _me()):
        raise InsecureFile(f"{subject} {problem[0]}", hint=problem[1])
    return True


def check_trusted_file(
    path: StrPath, *, private: bool, what: str = "file", instead: str | None = None
) -> os.stat_result | None:
    """Refuse (InsecureFile, exit 4) a file that someone else could have written.

    * ``private=False`` (the profile, a CA file): it belongs to you or root and
      group and others cannot write it.
    * ``private=True`` (the vault, session files, the passphrase file): it
      belongs to you and group and others can neither read nor write it.

    In both cases every folder on the way must be trusted (check_trusted_dirs),
    and the file's own folder too. ``what`` names the file in the message
    ("profile"); ``instead`` is a way out put first in the hint ("use your own
    profile with -p PATH"). Returns the file's stat (compare it with ``fstat``
    after opening if the file could be swapped meanwhile), or None when the
    file does not exist: the caller's open reports that.
    """
    if not hasattr(os, "geteuid"):  # pragma: no cover - not POSIX
        return None
    subject = f"{what} {path}"
    found = _walk(path, subject, instead)
    if found is not None:
        st = found[1]
    else:
        try:  # a magic link (/dev/fd/N, /proc/self/fd/N) has no path to walk
            st = os.stat(path)
        except OSError:
            return None
    if private:
        owners: tuple[int, ...] = (_me(),)
        bits, fix = 0o077, f"chmod 600 {path}"
    else:
        owners, bits, fix = (_me(), 0), 0o022, f"chmod go-w {path}"
    open_bits = st.st_mode & bits
    problem = "is open to other users"
    if open_bits & 0o044:
        problem = "can be read by other users"
    elif open_bits & 0o022:
        problem = "can be written by other users"
    if st.st_uid not in owners:
        raise InsecureFile(
            f"{subject} belongs to another user ({_user(st.st_uid)})",
            hint=_hint(
                instead or "use your own copy", f"if you trust it: chown {_my_name()} {path}"
            ),
        )
    if st.st_mode & bits:
        raise InsecureFile(
            f"{subject} {problem} (mode {stat.S_IMODE(st.st_mode):o})", hint=_hint(instead, fix)
        )
    return st


def ensure_private_dir(path: StrPath) -> None:
    """Create ``path`` (and parents) 0700 if missing. Refuse (InsecureFile) a
    folder that is not yours or that others can write, and one under a folder
    that is not trusted (check_trusted_dirs)."""
    existed = check_trusted_dirs(path)  # create nothing under an untrusted folder
    try:
        if not existed:  # the mode is the last folder's; those above get the umask's
            os.makedirs(path, mode=0o700, exist_ok=True)
            # again: another user may have made a missing folder before mkdir did
            check_trusted_dirs(path)
        st = os.stat(path)
    except OSError as exc:
        raise storage_error(exc, path) from exc
    if hasattr(os, "geteuid") and st.st_uid != _me():
        raise InsecureFile(
            f"{path} belongs to another user", hint=f"use a folder you own, or chown {path}"
        )
    if st.st_mode & 0o022:
        raise InsecureFile(f"{path} can be written by other users", hint=f"chmod 700 {path}")


def check_private_file(path: StrPath, *, what: str = "file") -> None:
    """Refuse a file that group or others can read or write, that belongs to
    someone else, or that is reached through a folder that is not trusted.
    A missing file passes (the caller's open reports it)."""
    check_trusted_file(path, private=True, what=what)


def refuse_folder(path: StrPath, option: str) -> None:
    """Before reading what ``option`` (``-o``) will write to ``path``: a folder there is
    a usage error (exit 2) now, not a failed rename after the values were read. A
    symbolic link is fine: write_private_file replaces the link, never its target."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(
            f"{option} {path} is a folder", hint=f"give a file name, e.g. {option} {path}/FILE"
        )


def exists(path: StrPath) -> bool:
    """``Path(path).exists()``: False when it or a folder on the way is missing (or a link
    loops), OSError for anything else (a folder we may not search)."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
            return False
        raise
    except ValueError:  # a NUL in the name
        return False
    return True


def tidy(path: str) -> str:
    """``path`` spelled as ``str(Path(path))`` spells it: no empty or '.' parts, no trailing '/'
    ('..' stays: a symbolic link may stand before it)."""
    root = "//" if path[:2] == "//" and path[2:3] != "/" else "/" if path[:1] == "/" else ""
    return root + "/".join(reversed(_parts(path))) or "."


def parent(path: StrPath) -> str:
    """The folder that holds ``path``, as ``Path(path).parent`` names it ('.' for a bare name)."""
    folder, sep, _ = tidy(os.fspath(path)).rpartition("/")
    return folder or sep or "."


def write_private_file(path: StrPath, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` atomically with mode 0600: a temp file in the same folder, fsync, rename.

    A crash leaves either the old file or the new one, never a mix. With
    ``exclusive``, fail with FileExistsError if ``path`` exists.
    """
    ensure_private_dir(parent(path))
    _write_atomically(path, data, 0o600, exclusive)


def write_readable_file(path: StrPath, data: bytes) -> None:
    """``write_private_file`` with mode 0644, in a folder that is not made private: for
    a file that holds no secret and another user's program reads (node_exporter reads
    ``bsecrets metrics --textfile``'s)."""
    _write_atomically(path, data, 0o644, False)


def _write_atomically(path: StrPath, data: bytes, mode: int, exclusive: bool) -> None:
    folder, sep, name = tidy(os.fspath(path)).rpartition("/")
    tmp = f"{folder}{sep}.{name}.{os.getpid()}.tmp"  # beside it: the rename stays atomic

    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # whatever the umask (harden_process sets 077)
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
        fsync_dir(parent(path))
    except FileExistsError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise storage_error(exc, path) from exc


def fsync_dir(path: StrPath) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def storage_error(exc: OSError, path: StrPath) -> StorageError:
    """Turn an OSError into a StorageError that says what to do."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StorageError(f"no space left to write {path}", hint="free some disk space and retry")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(
            f"{path} is not writable ({os.strerror(exc.errno)})",
            hint="check the file system and the file's permissions",
        )
    return StorageError(f"cannot write {path}: {exc.strerror or exc}")
