"""Run a child under supervision, redacting secret values from its output.

Used by ``exec`` with masking. bsecrets stays the parent:

- the child starts in its own session, so a terminal's Ctrl-C (or a kill of
  bsecrets' process group) reaches bsecrets once, and bsecrets forwards it
  once: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 (and SIGWINCH with
  a pseudo-terminal). A signal that arrives before the child exists is
  delivered as soon as it does;
- stdin is inherited unchanged; stdout and stderr come back through pipes, or
  through a pseudo-terminal when bsecrets' stdout is a terminal (so the child
  still sees a terminal: colours, line buffering), and are redacted as they
  stream;
- the result is the child's exit code, 128+N when it died of signal N.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from bsecrets.files import restore_for_child
from bsecrets.run.masking import Redactor

FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
_CHUNK = 65536


class StartFailed(Exception):
    """The command could not be started; ``cause`` says why (not found, not executable)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


class _Stream:
    """One child output: where to read, where to write, its redactor."""

    def __init__(self, fd: int, out_fd: int, values: Iterable[bytes], is_pty: bool) -> None:
        self.fd = fd
        self.out_fd = out_fd
        self.redactor = Redactor(values)
        self.is_pty = is_pty
        self.discard = False  # our reader went away
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def write(self, data: bytes) -> None:
        if self.discard or not data:
            return
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.out_fd, view)
                view = view[written:]
        except BrokenPipeError:
            self.discard = True
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            self.discard = True


def _copy_winsize(src_fd: int, dst_fd: int) -> None:
    import fcntl
    import termios

    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, size)


def exit_code(returncode: int) -> int:
    """subprocess's returncode (-N when killed by N) as a shell would report it."""
    return 128 - returncode if returncode < 0 else returncode


def run(
    command: Sequence[str],
    env: dict[bytes, bytes],
    values: Iterable[bytes],
    *,
    use_pty: bool | None = None,
) -> int:
    """Run ``command`` (PATH lookup in ``env``, no shell) and return its exit code.

    StartFailed when it cannot be started (the caller reports 127 / 126).
    """
    import selectors
    import signal
    import subprocess

    values = list(values)
    out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    if use_pty is None:
        use_pty = os.isatty(out_fd)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()

    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        if child is None:
            pending.append(signum)
            return
        if signum == getattr(signal, "SIGWINCH", None) and master is not None:
            _copy_winsize(out_fd, master)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)

    master: int | None = None
    names = list(FORWARDED) + (["SIGWINCH"] if use_pty else [])
    previous = {}
    for name in names:
        if hasattr(signal, name):
            signum = getattr(signal, name)
            previous[signum] = signal.signal(signum, forward)
    streams: list[_Stream] = []
    try:
        child_ends: list[int] = []
        try:
            if use_pty:
                import pty

                master, follower = pty.openpty()
                child_ends.append(follower)
                _copy_winsize(out_fd, follower)
                streams.append(_Stream(master, out_fd, values, True))
                child_out = child_err = follower
            else:
                out_read, child_out = os.pipe()
                child_ends.append(child_out)
                streams.append(_Stream(out_read, out_fd, values, False))
            if not use_pty or not os.isatty(err_fd):
                err_read, child_err = os.pipe()
                child_ends.append(child_err)
                streams.append(_Stream(err_read, err_fd, values, False))
            try:
                child = subprocess.Popen(
                    list(command), env=env, stdout=child_out, stderr=child_err,
                    start_new_session=True, restore_signals=True,
                    preexec_fn=restore_for_child,  # the user's umask and core limit
                )  # fmt: skip
            except OSError as exc:
                raise StartFailed(exc) from None
        finally:
            for fd in child_ends:
                os.close(fd)
        for signum in pending:
            forward(signum, None)
        pending.clear()
        _pump(child, streams, selectors.DefaultSelector())
        return exit_code(child.wait())
    except BaseException:
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.wait()
        raise
    finally:
        for stream in streams:
            stream.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _pump(child: Any, streams: list[_Stream], selector: Any) -> None:
    """Copy until every stream ends, or the child has exited and nothing more is waiting."""
    import selectors

    for stream in streams:
        selector.register(stream.fd, selectors.EVENT_READ, stream)
    open_streams = len(streams)
    exited = False
    while open_streams:
        events = selector.select(timeout=0 if exited else 0.2)
        if not events:
            if exited:
                break  # a grandchild holds the output open: do not wait for it
            exited = child.poll() is not None
            continue
        for key, _ in events:
            stream = key.data
            try:
                data = os.read(stream.fd, _CHUNK)
            except OSError as exc:
                if exc.errno != errno.EIO:  # EIO: the pty's last writer closed
                    raise
                data = b""
            if data:
                stream.write(stream.redactor.feed(data))
                if not (stream.discard and not stream.is_pty):
                    continue
                # our reader went away: close the pipe, so the child gets
                # SIGPIPE / EPIPE as it would have without bsecrets
            else:
                stream.write(stream.redactor.flush())
            selector.unregister(stream.fd)
            stream.close()
            open_streams -= 1
    for stream in streams:  # cut short: write what is held, redacted
        if not stream.closed:
            stream.write(stream.redactor.flush())
    selector.close()
