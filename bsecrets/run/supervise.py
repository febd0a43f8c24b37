"""Run a child under supervision: redacting secret values from its output, serving
a mount, watching for changes.

Used by ``exec`` with masking, ``--mount`` or ``--watch``. bsecrets stays the parent:

- the child starts in its own session, so a terminal's Ctrl-C (or a kill of
  bsecrets' process group) reaches bsecrets once, and bsecrets forwards it
  once: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 (and SIGWINCH with
  a pseudo-terminal). A signal that arrives before the child exists is
  delivered as soon as it does;
- stdin is inherited unchanged; stdout and stderr come back through pipes, or
  through a pseudo-terminal when bsecrets' stdout is a terminal (so the child
  still sees a terminal: colours, line buffering), and are redacted as they
  stream;
- without masking the child writes to bsecrets' own stdout and stderr;
- with a watcher (``exec --watch``), every ``interval`` seconds ``poll()`` may
  return a new environment: the child gets ``signum``, or (``signum`` None) is
  restarted: SIGTERM, SIGKILL after ``GRACE`` seconds, then the command again
  with the new environment. A terminating signal sent to bsecrets (INT, TERM,
  HUP, QUIT) is forwarded and ends the restarts;
- the result is the (last) child's exit code, 128+N when it died of signal N.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from bsecrets.files import restore_for_child

FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
TERMINATING = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
GRACE = 10.0  # seconds a command being restarted has to exit after SIGTERM
_CHUNK = 65536
_CHECK = 0.2  # seconds between checks of the child where it cannot wake us (no pidfd)


if TYPE_CHECKING:  # for the type checker only: a Protocol class costs a command ~0.1 ms

    class Watcher(Protocol):
        """exec --watch, as the supervisor sees it."""

        interval: float  # seconds between polls
        signum: int | None  # the signal a change sends; None: restart the command

        def poll(self) -> tuple[dict[bytes, bytes], list[bytes]] | None:
            """The new environment and the values to redact when something changed."""


class StartFailed(Exception):
    """The command could not be started; ``cause`` says why (not found, not executable)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


class _Stream:
    """One child output: where to read, where to write, its redactor."""

    def __init__(self, fd: int, out_fd: int, values: Iterable[bytes], is_pty: bool) -> None:
        from bsecrets.run.masking import Redactor  # here: an exec that replaces itself skips it

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
    mask: bool = True,
    use_pty: bool | None = None,
    watcher: Watcher | None = None,
) -> int:
    """Run ``command`` (PATH lookup in ``env``, no shell) and return its exit code.

    StartFailed when it cannot be started (the caller reports 127 / 126).
    """
    return _Supervisor(command, values, mask, use_pty, watcher).run(env)


class _Supervisor:
    def __init__(
        self,
        command: Sequence[str],
        values: Iterable[bytes],
        mask: bool,
        use_pty: bool | None,
        watcher: Watcher | None,
    ) -> None:
        import time

        self.command = list(command)
        self.values = list(values)
        self.mask = mask
        self.watcher = watcher
        self.clock = time.monotonic
        self.out_fd, self.err_fd = sys.stdout.fileno(), sys.stderr.fileno()
        self.use_pty = mask and (os.isatty(self.out_fd) if use_pty is None else use_pty)
        self.child: Any = None
        self.pending: list[int] = []
        self.master: int | None = None
        self.streams: list[_Stream] = []
        self.child_out: int | None = None  # what the child writes to (masking)
        self.child_err: int | None = None
        self.child_ends: list[int] = []  # ours to close: after the start, or at the end
        self.pidfd: int | None = None  # readable when the child exits (Linux)
        self.ending = False  # a terminating signal came: no more restarts
        self.stopping_since: float | None = None  # a restart: when SIGTERM was sent
        self.next_env: dict[bytes, bytes] = {}

    def forward(self, signum: int, _frame: Any) -> None:
        import signal

        if signum in {getattr(signal, n) for n in TERMINATING if hasattr(signal, n)}:
            self.ending = True
        if self.child is None:
            self.pending.append(signum)
            return
        if signum == getattr(signal, "SIGWINCH", None) and self.master is not None:
            _copy_winsize(self.out_fd, self.master)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.child.pid, signum)

    def run(self, env: dict[bytes, bytes]) -> int:
        import signal

        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        names = list(FORWARDED) + (["SIGWINCH"] if self.use_pty else [])
        previous = {}
        for name in names:
            if hasattr(signal, name):
                signum = getattr(signal, name)
                previous[signum] = signal.signal(signum, self.forward)
        try:
            try:
                if self.mask:
                    self._open_streams()
                self._start(env)
            finally:
                if self.watcher is None:  # restarts reuse them: closed at the end
                    self._close_child_ends()
            for signum in self.pending:
                self.forward(signum, None)
            self.pending.clear()
            self._loop()
            return exit_code(self.child.wait())
        except BaseException:
            if self.child is not None and self.child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.child.kill()
                self.child.wait()
            raise
        finally:
            self._close_child_ends()
            for stream in self.streams:
                stream.close()
            self._forget_pidfd()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _open_streams(self) -> None:
        if self.use_pty:
            import pty

            self.master, follower = pty.openpty()
            self.child_ends.append(follower)
            _copy_winsize(self.out_fd, follower)
            self.streams.append(_Stream(self.master, self.out_fd, self.values, True))
            self.child_out = self.child_err = follower
        else:
            out_read, self.child_out = os.pipe()
            self.child_ends.append(self.child_out)
            self.streams.append(_Stream(out_read, self.out_fd, self.values, False))
        if not self.use_pty or not os.isatty(self.err_fd):
            err_read, self.child_err = os.pipe()
            self.child_ends.append(self.child_err)
            self.streams.append(_Stream(err_read, self.err_fd, self.values, False))

    def _close_child_ends(self) -> None:
        for fd in self.child_ends:
            os.close(fd)
        self.child_ends.clear()

    def _start(self, env: dict[bytes, bytes]) -> None:
        import subprocess

        try:
            self.child = subprocess.Popen(
                self.command, env=env, stdout=self.child_out, stderr=self.child_err,
                start_new_session=True, restore_signals=True,
                preexec_fn=restore_for_child,  # the user's umask and core limit
            )  # fmt: skip
        except OSError as exc:
            raise StartFailed(exc) from None
        self._forget_pidfd()
        with contextlib.suppress(AttributeError, OSError):  # no pidfd: checked every _CHECK s
            self.pidfd = os.pidfd_open(self.child.pid)

    def _forget_pidfd(self, selector: Any = None) -> None:
        if self.pidfd is not None:
            if selector is not None:
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None

    def _loop(self) -> None:
        """Copy output and serve the watcher until the (last) child exits; then copy
        what is left, without waiting for a grandchild that holds the output open."""
        import selectors

        selector = selectors.DefaultSelector()
        for stream in self.streams:
            selector.register(stream.fd, selectors.EVENT_READ, stream)
        if self.pidfd is not None:
            selector.register(self.pidfd, selectors.EVENT_READ, None)
        watcher = self.watcher
        next_poll = self.clock() + watcher.interval if watcher is not None else None
        while True:
            for key, _ in selector.select(self._timeout(next_poll)):
                if key.data is not None:
                    self._read(selector, key.data)
            if self.child.poll() is not None:
                if self.stopping_since is None or self.ending:
                    break
                self._restart(selector)
                continue
            now = self.clock()
            if self.stopping_since is not None:
                if now - self.stopping_since >= GRACE:
                    with contextlib.suppress(ProcessLookupError):
                        self.child.kill()
            elif watcher is not None and next_poll is not None and now >= next_poll:
                self._poll(watcher)
                next_poll = self.clock() + watcher.interval
        self._close_child_ends()
        self._drain(selector)

    def _timeout(self, next_poll: float | None) -> float | None:
        waits = [] if self.pidfd is not None else [_CHECK]
        now = self.clock()
        if self.stopping_since is not None:
            waits.append(max(0.0, self.stopping_since + GRACE - now))
        elif next_poll is not None:
            waits.append(max(0.0, next_poll - now))
        return min(waits) if waits else None

    def _poll(self, watcher: Watcher) -> None:
        import signal

        change = watcher.poll()
        if change is None:
            return
        env, values = change
        for stream in self.streams:
            stream.redactor.add(values)
        signum = watcher.signum if watcher.signum is not None else signal.SIGTERM
        if watcher.signum is None:
            self.next_env = env
            self.stopping_since = self.clock()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.child.pid, signum)

    def _restart(self, selector: Any) -> None:
        import selectors

        self.child.wait()
        self._forget_pidfd(selector)
        self.stopping_since = None
        self._start(self.next_env)
        self.next_env = {}
        if self.pidfd is not None:
            selector.register(self.pidfd, selectors.EVENT_READ, None)

    def _read(self, selector: Any, stream: _Stream) -> None:
        try:
            data = os.read(stream.fd, _CHUNK)
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the pty's last writer closed
                raise
            data = b""
        if data:
            stream.write(stream.redactor.feed(data))
            if not (stream.discard and not stream.is_pty):
                return
            # our reader went away: close the pipe, so the child gets
            # SIGPIPE / EPIPE as it would have without bsecrets
        else:
            stream.write(stream.redactor.flush())
        selector.unregister(stream.fd)
        stream.close()

    def _drain(self, selector: Any) -> None:
        """The child has exited: copy until each output ends, or nothing comes for
        ``_CHECK`` seconds (a pseudo-terminal's last output may lag the exit)."""
        if self.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(self.pidfd)
        while any(not stream.closed for stream in self.streams):
            events = selector.select(timeout=_CHECK)
            if not events:
                break  # a grandchild holds the output open: do not wait for it
            for key, _ in events:
                self._read(selector, key.data)
        for stream in self.streams:  # cut short: write what is held, redacted
            if not stream.closed:
                stream.write(stream.redactor.flush())
        selector.close()
