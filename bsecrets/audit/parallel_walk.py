"""The verification walk on two cores, for ``audit verify`` of a long log.

Each link depends only on the stored MAC of the event before it, so the log can
be checked in chunks, each from the MAC stored before it. This process reads
the rows, in its one read transaction (one snapshot, as a walk on one core), in
chunks of ``WalkPlan.chunk_rows``; it hands chunks to one worker, forked once,
while that one has room, and walks the others itself. Both run ``chain.walk``
on their chunks (the one definition of a correct chain). The worker never
touches SQLite: it gets plain row tuples over a pipe (marshal: our own data,
between two halves of one program) and answers with its chunk's walk.

The result is the one-core walk's, exactly. Once a chunk fails, or the worker is
lost, no more chunks are handed out, and the walk on one core continues from the
oldest chunk not yet known to be good: over the chunks still held, then the rest
of the cursor. Once every chunk before it passed, a chunk walked from the MAC
stored before it is walked as from the start (a passing link's MAC is the stored
one; its first sequence number is known by counting), and the one-core walk from
there finds the same first problem, with the same rows after it to classify it.
Memory stays bounded: at most ``held`` chunks.

Threads would not help: AES-GCM decryption holds the GIL. Fork, not spawn: the
worker inherits the code and the audit keys (a copy of this process: no new
exposure; nothing secret goes into argv, the environment or a file), and starts
in a few milliseconds. It ignores Ctrl-C (the terminal interrupts this process, which
ends it), writes nothing to stdout or stderr (they are /dev/null in it), leaves
by ``os._exit`` (no finalizers: the inherited SQLite connection is never closed
there), and exits on EOF of its input, so it does not outlive this process even
after a SIGKILL. Only on Linux, with two CPUs to run on, and when this is the
only thread (forking a threaded process can copy a lock held by another thread).
"""

from __future__ import annotations

import gc
import marshal
import os
import signal
import struct
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import suppress
from itertools import chain, islice
from typing import Any, NoReturn

from bsecrets.audit.chain import Opener, Problem, Row, Walk, walk
from bsecrets.named_tuples import NamedTuple

_FRAME = struct.Struct("<Q")  # the length of the marshal data that follows
_PIPE_BYTES = 1 << 20  # Linux's default most for a pipe: two chunks queue unblocked


class WalkPlan(NamedTuple):
    """How a walk is shared. Tests make small logs take the worker's path."""

    threshold: int = 10_000  # fewer rows: one core (fork and pipes do not pay)
    chunk_rows: int = 1_000  # ~400 KB of rows at ~400 bytes each
    depth: int = 3  # chunks handed to the worker, unanswered (two wait in its pipe)
    held: int = 16  # chunks kept at most, waiting for the worker's answers
    schedule: str = ""  # "": to the worker whenever it has room; else fixed ("mw": alternate)


PLAN = WalkPlan()


def walk_on_two_cores(
    rows: Iterable[Row],
    chain_key: bytes,
    opener: Opener,
    *,
    first_seq: int,
    prev: bytes,
    rows_hint: int,
    watch: Iterable[int] = (),
    plan: WalkPlan = PLAN,
) -> Walk:
    """``chain.walk``'s result for these arguments, on two cores when ``rows_hint`` (about
    how many rows there are: it only decides whether to fork) reaches the threshold."""
    watched = list(watch)
    worker = _Worker.fork(chain_key, opener, watched) if rows_hint >= plan.threshold else None
    if worker is None:
        return walk(rows, chain_key, opener, first_seq=first_seq, prev=prev, watch=watched)
    try:
        worker.allow_interrupts()  # Ctrl-C from here on ends the worker below
        shared = _SharedWalk(worker, plan, chain_key, opener, watched)
        return shared.run(iter(rows), first_seq, prev)
    finally:
        worker.end()


class _Chunk:
    __slots__ = ("first_seq", "prev", "result", "rows")

    def __init__(self, first_seq: int, prev: bytes, rows: list[Row]) -> None:
        self.first_seq = first_seq
        self.prev = prev
        self.rows = rows
        self.result: Walk | None = None  # None: not walked yet (or the worker was lost)


def _chunks(rows: Iterator[Row], size: int, first_seq: int, prev: bytes) -> Iterator[_Chunk]:
    while batch := list(islice(rows, size)):
        yield _Chunk(first_seq, prev, batch)
        first_seq += len(batch)
        last = batch[-1][3]
        # Not bytes: the chunk before fails at that row, so this one's result is not used.
        prev = last if type(last) is bytes else b""


def _until_failure(rows: Iterator[Row], failure: list[Exception]) -> Iterator[Row]:
    """The rows until the cursor raises (a damaged page, a text that does not decode):
    read ahead of the walks, that is kept for where the one-core walk would meet it."""
    try:
        yield from rows
    except Exception as exc:
        failure.append(exc)


def _raising(failure: list[Exception]) -> Iterator[Row]:
    if failure:
        raise failure[0]
    yield from ()


class _SharedWalk:
    """One run: the chunks handed out, walked here, or held until the worker answers."""

    def __init__(
        self, worker: _Worker, plan: WalkPlan, chain_key: bytes, opener: Opener, watch: list[int]
    ) -> None:
        self.worker = worker
        self.plan = plan
        self.chain_key = chain_key
        self.opener = opener
        self.watch = watch
        self.held: deque[_Chunk] = deque()  # every chunk after the last known good one
        self.sent: deque[_Chunk] = deque()  # the worker's, unanswered, oldest first
        self.stop = False  # a chunk failed, or the worker was lost
        self.checked = 0  # rows in the chunks known good, from the start
        self.head = b""
        self.macs_at: dict[int, bytes] = {}

    def run(self, source: Iterator[Row], first_seq: int, prev: bytes) -> Walk:
        self.head = prev
        failure: list[Exception] = []
        rows = _until_failure(source, failure)
        for index, chunk in enumerate(_chunks(rows, self.plan.chunk_rows, first_seq, prev)):
            self._collect(wait=False)
            self.held.append(chunk)
            if self._to_worker(index):
                self._send(chunk)
            else:
                chunk.result = self._walk(chunk.rows, chunk.first_seq, chunk.prev)
                self.stop = self.stop or chunk.result.problem is not None
            self._settle()
            if self.stop:
                break
            while len(self.held) > self.plan.held and self.sent and not self.stop:
                self._collect(wait=True)
                self._settle()
        while self.held and self.held[0].result is None and self.worker.alive:
            self._collect(wait=True)
            self._settle()
        # The one-core walk from the oldest chunk not known good (at the end, nothing).
        rest = self._walk(
            chain(chain.from_iterable(c.rows for c in self.held), rows, _raising(failure)),
            first_seq + self.checked,
            self.head,
        )
        return Walk(
            self.checked + rest.checked,
            rest.last_seq,
            rest.head,
            rest.problem,
            {**self.macs_at, **rest.macs_at},
        )

    def _walk(self, rows: Iterable[Row], first_seq: int, prev: bytes) -> Walk:
        return walk(
            rows, self.chain_key, self.opener, first_seq=first_seq, prev=prev, watch=self.watch
        )

    def _to_worker(self, index: int) -> bool:
        if self.plan.schedule:
            if self.plan.schedule[index % len(self.plan.schedule)] != "w":
                return False
            while len(self.sent) >= self.plan.depth and self.worker.alive:
                self._collect(wait=True)
            return self.worker.alive
        return self.worker.alive and len(self.sent) < self.plan.depth

    def _send(self, chunk: _Chunk) -> None:
        if self.worker.send((chunk.first_seq, chunk.prev, chunk.rows)):
            self.sent.append(chunk)
        else:
            self.stop = True  # this chunk stays unwalked: the walk after the loop takes it

    def _collect(self, *, wait: bool) -> None:
        for answer in self.worker.answers(wait=wait):
            checked, last_seq, head, problem, macs_at = answer
            found = Problem(*problem) if problem is not None else None
            self.sent.popleft().result = Walk(checked, last_seq, head, found, macs_at)
            self.stop = self.stop or found is not None
        if not self.worker.alive:
            self.stop = True

    def _settle(self) -> None:
        """Count the oldest held chunks that are known good; stop at one that is not."""
        while self.held and (done := self.held[0].result) is not None and done.problem is None:
            self.held.popleft()
            self.checked += done.checked
            self.head = done.head
            self.macs_at.update(done.macs_at)


class _Worker:
    """The forked process that walks the chunks it is sent, and the pipes to it."""

    def __init__(self, pid: int, inbox: int, outbox: int, mask: Iterable[int]) -> None:
        self.pid = pid
        self.inbox = inbox  # our end: chunks to the worker
        self.outbox = outbox  # our end: the worker's answers (non-blocking)
        self.mask = mask  # the signal mask to restore: SIGINT is held until the caller's try
        self.alive = True
        self.buffer = bytearray()

    @classmethod
    def fork(cls, chain_key: bytes, opener: Opener, watch: list[int]) -> _Worker | None:
        """A worker, with Ctrl-C held until ``allow_interrupts`` (inside the try whose
        finally calls ``end``); or None where forking is not safe or does not pay."""
        if sys.platform != "linux" or len(os.sched_getaffinity(0)) < 2:
            return None
        import threading

        if threading.active_count() > 1:
            return None
        to_worker, from_worker = os.pipe(), os.pipe()
        with suppress(OSError):  # a smaller pipe only makes a send wait
            import fcntl

            fcntl.fcntl(to_worker[1], fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        # Ctrl-C held: in the worker until it ignores it (else the CLI's exit would run
        # there), here until the caller can end the worker whatever happens.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        # Objects from before the fork out of the collector's reach: a full collection
        # here would write to (and so copy) every page the worker shares.
        gc.freeze()
        try:
            pid = os.fork()
        except OSError:  # no process to spare: one core
            pid = -1
        if pid == 0:
            _serve(to_worker, from_worker, mask, chain_key, opener, watch)
        os.close(to_worker[0])
        os.close(from_worker[1])
        if pid < 0:
            gc.unfreeze()
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(to_worker[1])
            os.close(from_worker[0])
            return None
        os.set_blocking(from_worker[0], False)
        return cls(pid, to_worker[1], from_worker[0], mask)

    def allow_interrupts(self) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)

    def send(self, message: Any) -> bool:
        """Whether the worker took it (False: it is gone)."""
        if not self.alive:
            return False
        try:
            _write(self.inbox, marshal.dumps(message))
        except OSError:  # BrokenPipeError: it died
            self.alive = False
        return self.alive

    def answers(self, *, wait: bool) -> list[Any]:
        """The answers that have arrived; with ``wait``, at least one (or the worker is lost)."""
        import select

        found: list[Any] = []
        while self.alive:
            if not select.select([self.outbox], [], [], None if wait and not found else 0)[0]:
                break
            try:
                data = os.read(self.outbox, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self.alive = False  # it exited or was killed: its chunks are walked here
                break
            self.buffer += data
            while len(self.buffer) >= _FRAME.size:
                (size,) = _FRAME.unpack_from(self.buffer)
                if len(self.buffer) < _FRAME.size + size:
                    break
                found.append(marshal.loads(self.buffer[_FRAME.size : _FRAME.size + size]))
                del self.buffer[: _FRAME.size + size]
        return found

    def end(self) -> None:
        """Close the pipes and end the worker (ours, not yet reaped: the pid is its)."""
        for fd in (self.inbox, self.outbox):
            with suppress(OSError):
                os.close(fd)
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        gc.unfreeze()
        self.allow_interrupts()  # (already, unless the walk never began)


def _write(fd: int, payload: bytes) -> None:
    view = memoryview(_FRAME.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


def _serve(
    to_worker: tuple[int, int],
    from_worker: tuple[int, int],
    mask: Iterable[int],
    chain_key: bytes,
    opener: Opener,
    watch: list[int],
) -> NoReturn:
    """The worker: walk each chunk received, answer, until EOF. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(to_worker[1])
        os.close(from_worker[0])
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(quiet, fd)
        gc.disable()  # chunks of tuples, freed by reference counting: no cycles to find
        inbox = os.fdopen(to_worker[0], "rb")
        while len(header := inbox.read(_FRAME.size)) == _FRAME.size:
            body = inbox.read(_FRAME.unpack(header)[0])
            first_seq, prev, rows = marshal.loads(body)
            done = walk(rows, chain_key, opener, first_seq=first_seq, prev=prev, watch=watch)
            found = done.problem
            problem = (found.seq, found.kind, found.detail) if found is not None else None
            answer = (done.checked, done.last_seq, done.head, problem, done.macs_at)
            _write(from_worker[1], marshal.dumps(answer))
        code = 0  # EOF: the walk is over, or this process's parent is gone
    finally:
        os._exit(code)
