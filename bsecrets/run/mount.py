"""A file that holds the secrets for a child, gone when the child is done (``exec``
with a mount), for programs that read a config file instead of the environment.

``with Mount(path, content) as m:`` makes ``path`` (which must not exist):

- a named pipe (mode 0600) where the platform has them: a thread writes the whole
  current content to each reader that opens it, so the secrets never rest on a
  disk; with ``max_reads=N`` the pipe is removed when its N-th reader opens it.
  Each reader gets a pipe of its own: once one has opened it, a fresh pipe is
  renamed into place before the content is written, so the next open waits for a
  new reader instead of writing the content again to one that has not yet seen
  the end of it (a pipe's reader sees the end only while no writer has it open).
  Where no fresh pipe can be made (the folder turned read-only), the pipe is removed
  after that read rather than risk sending the content twice;
- else a symbolic link to a 0600 file in a private 0700 folder (in
  ``$XDG_RUNTIME_DIR`` when set, usually memory, else the temporary folder).

Leaving the block removes all of it. A janitor process (``bsecrets.run.janitor``)
removes it too when bsecrets dies without cleaning up (SIGKILL), and only if the
path still holds what was made. The content goes nowhere else: not in the
janitor's arguments, not in a temporary file outside the private folder, not in
an error's text.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bsecrets.errors import AlreadyExists, StorageError, UsageError
from bsecrets.run.janitor import Made

# mkfifo failing with one of these: the filesystem has no named pipes, use a file
_NO_FIFO_HERE = {
    getattr(errno, name)
    for name in ("EPERM", "EOPNOTSUPP", "ENOTSUP", "EINVAL", "ENOSYS")
    if hasattr(errno, name)
}
_JOIN_SECONDS = 5.0  # the serving thread, once unblocked, ends at once; this bounds a bug
_STUCK_SECONDS = 0.2  # a thread blocked on a pipe someone else removed never wakes up
_JANITOR_SECONDS = 5.0
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)  # a write this size to a pipe is never split
# what the janitor's environment keeps: what finds Python and decodes paths, no secret
_JANITOR_ENV_PREFIXES = ("PYTHON", "LC_", "DYLD_")
_JANITOR_ENV_NAMES = ("PATH", "LANG", "LD_LIBRARY_PATH", "SYSTEMROOT")


class Mount:
    """``with Mount(path, content, max_reads=None) as m: ... m.location ... m.update(b)``

    ``__enter__`` makes the mount or raises AlreadyExists (``path`` exists, even as
    a dangling link) or UsageError (no such folder, a read limit where no named pipe
    can be made, a path that cannot be made); ``__exit__`` removes everything it
    made, and may be called more than once. ``location`` is the absolute path the
    child reads; ``kind`` is "fifo" or "file" (after ``__enter__``).
    """

    def __init__(self, path: Path | str, content: bytes, *, max_reads: int | None = None) -> None:
        if max_reads is not None and max_reads < 1:
            raise UsageError(
                f"the read limit must be 1 or more, not {max_reads}",
                hint="give a positive number of reads, or no limit",
            )
        self._path = os.path.abspath(path)
        self._content = bytes(content)
        self._max_reads = max_reads
        self._kind = ""
        self._made: list[Made] = []  # in the order to remove them
        self._folder = ""  # the fallback's private folder
        self._entered = False
        self._closed = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None  # a pipe that wakes a blocked write
        self._lock = threading.Lock()  # the pipe's replacement against the stop
        self._spare = _spare_name(self._path)  # where the next pipe is made
        self._janitor: subprocess.Popen[bytes] | None = None

    @property
    def location(self) -> str:
        return self._path

    @property
    def kind(self) -> str:
        return self._kind

    # --- making it -----------------------------------------------------------------

    def __enter__(self) -> Mount:
        if self._entered:
            raise UsageError("a mount can be made only once", hint="make a new Mount")
        self._entered = True
        check_path(self._path)
        try:
            if self._make_fifo():
                self._kind = "fifo"
            else:
                self._make_file()
                self._kind = "file"
            self._janitor = _start_janitor(self._made)
            if self._kind == "fifo":
                self._start_serving()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _make_fifo(self) -> bool:
        """A named pipe at the path; False when the platform or filesystem has none."""
        mkfifo = getattr(os, "mkfifo", None)
        if mkfifo is None:
            self._refuse_read_limit("this platform has no named pipes")
            return False
        try:
            mkfifo(self._path, 0o600)  # fails on an existing path, a link included
        except FileExistsError:  # made since the check
            raise _already_exists(self._path) from None
        except OSError as exc:
            if exc.errno in _NO_FIFO_HERE:
                self._refuse_read_limit("the filesystem there has no named pipes")
                return False
            raise _creation_error(self._path, exc) from None
        self._made.append(Made.of("fifo", self._path))
        return True

    def _refuse_read_limit(self, why: str) -> None:
        if self._max_reads is not None:
            raise UsageError(
                f"cannot limit the reads of {self._path}: {why}",
                hint="leave out the read limit (the mount is then a private file that stays "
                "until the command ends), or pick a path on a filesystem with named pipes",
            )

    def _make_file(self) -> None:
        """The fallback: a 0600 file in a private 0700 folder, and a link to it at the path."""
        runtime = os.environ.get("XDG_RUNTIME_DIR") or ""
        base = runtime if runtime and os.path.isdir(runtime) else None
        try:
            self._folder = tempfile.mkdtemp(prefix="bsecrets-mount-", dir=base)
        except OSError as exc:
            raise _write_error(exc) from None
        self._made.append(Made.of("dir", self._folder))
        target = os.path.join(self._folder, os.path.basename(self._path))
        self._write_file(self._content)
        try:
            os.symlink(target, self._path)
        except FileExistsError:  # made since the check
            raise _already_exists(self._path) from None
        except OSError as exc:
            raise _creation_error(self._path, exc) from None
        self._made.insert(0, Made.of("link", self._path))

    def _write_file(self, content: bytes) -> None:
        """Replace the private file at once: write a new one beside it, rename it over."""
        name = os.path.join(self._folder, os.path.basename(self._path))
        try:
            fd, temp = tempfile.mkstemp(prefix=".new-", dir=self._folder)
        except OSError as exc:
            raise _write_error(exc) from None
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, content)
            os.close(fd)
            fd = -1
            os.replace(temp, name)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise _write_error(exc) from None

    # --- serving the named pipe --------------------------------------------------------

    def _start_serving(self) -> None:
        self._wake = os.pipe()  # not inherited by children (PEP 446)
        self._thread = threading.Thread(target=self._serve, name="bsecrets-mount", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Open for writing (blocks until a reader opens), put a fresh pipe in its place,
        write the whole content, close; again. Ends when stopped, at the read limit, or
        when the path no longer holds our pipe."""
        if hasattr(signal, "pthread_sigmask"):
            # a reader that leaves early gives EPIPE here, never a SIGPIPE to the process
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
        served = 0
        while True:
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_NOFOLLOW)
            except OSError:
                return  # removed, or replaced by something we may not open
            try:
                with self._lock:
                    fifo = self._made[0]
                    st = os.fstat(fd)
                    if self._stopping or (st.st_dev, st.st_ino) != (fifo.dev, fifo.ino):
                        return  # being stopped, or not our pipe: write nothing to it
                    served += 1
                    last = served == self._max_reads or not self._replace_fifo(fifo)
                    if last:
                        fifo.remove()  # before writing: no later reader can open it
                self._send(fd, self._content)
            finally:
                os.close(fd)
            if last:
                return

    def _replace_fifo(self, fifo: Made) -> bool:
        """Rename a fresh named pipe over ours (the janitor learns of it first); False
        when that cannot be done, or the path no longer holds ours."""
        for _ in range(3):
            try:
                os.mkfifo(self._spare, 0o600)
                break
            except FileExistsError:  # not ours: take another name
                self._spare = _spare_name(self._path)
            except OSError:
                return False
        else:
            return False
        try:
            fresh = Made.of("fifo", self._spare)
        except OSError:  # removed under us
            return False
        self._tell_janitor(fresh, Made("fifo", self._path, fresh.dev, fresh.ino))
        try:
            if not fifo.is_same():
                raise FileNotFoundError(self._path)
            os.rename(self._spare, self._path)
        except OSError:
            fresh.remove()
            return False
        self._made[0] = Made("fifo", self._path, fresh.dev, fresh.ino)
        return True

    def _tell_janitor(self, *made: Made) -> None:
        """Send each record in one write of at most PIPE_BUF bytes, which a pipe takes
        whole or not at all (its end is non-blocking), so a janitor that stopped reading
        misses a record but never reads half of one."""
        if self._janitor is None or self._janitor.stdin is None:
            return
        for record in (thing.record() for thing in made):
            if len(record) <= _PIPE_BUF:  # else (a path of thousands of bytes): not sent
                with contextlib.suppress(OSError):  # gone, or its pipe is full
                    os.write(self._janitor.stdin.fileno(), record)

    def _send(self, fd: int, data: bytes) -> None:
        """Write all of ``data``; stop early when the reader leaves or the mount stops.
        Waits for room in the pipe in a selector, which the wake pipe interrupts."""
        assert self._wake is not None
        os.set_blocking(fd, False)
        view = memoryview(data)
        selector: selectors.BaseSelector | None = None
        try:
            while view and not self._stopping:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    if selector is None:
                        selector = selectors.DefaultSelector()
                        selector.register(fd, selectors.EVENT_WRITE)
                        selector.register(self._wake[0], selectors.EVENT_READ)
                    selector.select()
        except OSError:
            pass  # EPIPE: the reader closed early, which still counts as a read
        finally:
            if selector is not None:
                selector.close()

    def update(self, content: bytes) -> None:
        """Later reads get ``content`` (a read under way finishes with the old one). After
        the mount is removed, does nothing."""
        if self._closed:
            return
        self._content = bytes(content)
        if self._kind == "file":
            self._write_file(self._content)

    # --- removing it ---------------------------------------------------------------

    def __exit__(self, *exc: Any) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_serving()
        for thing in self._made:
            thing.remove()
        self._stop_janitor()

    def _stop_serving(self) -> None:
        """Unblock and end the serving thread: a write waiting for room is woken by the wake
        pipe; an open() waiting for a reader, by opening the pipe to read ourselves. Our
        reader stays open until the thread has ended, so the thread either sees it or
        finds the path gone, never blocks again."""
        with self._lock:
            self._stopping = True
            if self._thread is None:
                return
            assert self._wake is not None
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"x")
            reader = self._open_own_reader()
            self._made[0].remove()
        try:
            self._thread.join(_JOIN_SECONDS if reader is not None else _STUCK_SECONDS)
        finally:
            if reader is not None:
                os.close(reader)
        if not self._thread.is_alive():  # else it may still select on them
            for fd in self._wake:
                os.close(fd)

    def _open_own_reader(self) -> int | None:
        fifo = self._made[0]
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            return None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (fifo.dev, fifo.ino):
            os.close(fd)
            return None
        return fd

    def _stop_janitor(self) -> None:
        janitor, self._janitor = self._janitor, None
        if janitor is None:
            return
        with contextlib.suppress(OSError):
            if janitor.stdin is not None:
                janitor.stdin.close()  # end of file: it checks, finds nothing left, exits
        try:
            janitor.wait(_JANITOR_SECONDS)
        except subprocess.TimeoutExpired:
            janitor.kill()
            janitor.wait()


def check_path(path: Path | str) -> None:
    """Raise what ``Mount.__enter__`` would about ``path`` itself, before anything is
    made: AlreadyExists when it exists (a dangling link too), UsageError when its
    folder does not. The mount checks again, and makes it so that a race cannot win."""
    path = os.path.abspath(path)
    if os.path.lexists(path):
        raise _already_exists(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise UsageError(
            f"cannot make {path}: {parent} is not a folder",
            hint="pick a path in a folder that exists",
        )


def _spare_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.bsecrets-next-{os.urandom(4).hex()}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _already_exists(path: str) -> AlreadyExists:
    return AlreadyExists(
        f"{path} already exists",
        hint="pick a path that does not exist: the mount is made there, and removed after",
    )


def _creation_error(path: str, exc: OSError) -> UsageError | StorageError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR):
        return UsageError(
            f"cannot make {path}: {reason}", hint="pick a path in a folder you can write to"
        )
    return StorageError(f"cannot make {path}: {reason}", hint="check the disk, then try again")


def _write_error(exc: OSError) -> StorageError:
    reason = exc.strerror or type(exc).__name__
    return StorageError(
        f"cannot write the mount's private file or folder: {reason}",
        hint="check the space left in the runtime or temporary folder, then try again",
    )


def _start_janitor(made: list[Made]) -> subprocess.Popen[bytes]:
    """The janitor, in its own session, holding the read end of a pipe only we write to."""
    words = [word for thing in made for word in thing.words()]
    try:
        janitor = subprocess.Popen(
            [sys.executable, "-m", "bsecrets.run.janitor", *words],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, cwd=os.sep, env=_janitor_env(),
        )  # fmt: skip
    except OSError as exc:
        raise StorageError(
            f"cannot start the process that removes {made[0].path} if bsecrets is killed: "
            f"{exc.strerror or type(exc).__name__}",
            hint="check the limits on processes and open files, then try again",
        ) from None
    assert janitor.stdin is not None
    os.set_inheritable(janitor.stdin.fileno(), False)  # so: no other child holds it open
    os.set_blocking(janitor.stdin.fileno(), False)  # a janitor that stops reading: not our wait
    return janitor


def _janitor_env() -> dict[str, str]:
    """What the janitor needs to start Python and find bsecrets, and nothing else (the
    environment may hold tokens)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith(_JANITOR_ENV_PREFIXES) or name in _JANITOR_ENV_NAMES
    }
    root = os.path.realpath(Path(__file__).parents[2])
    given = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    if root not in _site_dirs() and root not in given:  # its cwd is "/": say where we are
        env["PYTHONPATH"] = os.pathsep.join([root, *given])
    return env


def _site_dirs() -> set[str]:
    import site  # loaded at start-up already, unless python -S

    try:
        dirs = [*site.getsitepackages(), site.getusersitepackages()]
    except AttributeError:  # an old virtualenv's site module
        return set()
    return {os.path.realpath(folder) for folder in dirs}
