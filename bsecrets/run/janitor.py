"""The janitor of a mount: a small process that removes what a ``Mount`` made when
its owner goes, even when the owner dies of SIGKILL and runs no cleanup.

``Mount`` starts it (``python -m bsecrets.run.janitor KIND PATH DEV INO TARGET ...``,
five words per thing made, in its own session) with a pipe on stdin that only the
owner holds. On that pipe the owner adds records as it makes new things (the same
five words, each ended by a NUL byte): a named pipe is replaced after each read.
End of file means the owner closed the pipe or died. Then the janitor removes each
path only if it still holds one of the last two objects recorded for it (lstat's
device and inode; a symbolic link must still point where it did), so a path the
user reused in the meantime is left alone. SIGTERM makes it clean up at once;
SIGINT and SIGHUP are ignored, so a Ctrl-C meant for the command does not kill it
before it has done its job.

It is given paths and identities, never content, and imports almost nothing: it
may live as long as the command it guards (``Mount`` reuses ``Made`` for its own
cleanup, so both remove things the same way).
"""

from __future__ import annotations

import os
import signal
import stat
import sys

_KINDS = ("fifo", "link", "dir")  # a named pipe, a symbolic link, a private folder


class Made:
    """One thing a mount made: its kind, path and identity (device, inode), and for a
    link the target it was made with."""

    __slots__ = ("dev", "ino", "kind", "path", "target")

    def __init__(self, kind: str, path: str, dev: int, ino: int, target: str = "") -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        self.path = path
        self.dev = dev
        self.ino = ino
        self.target = target

    @classmethod
    def of(cls, kind: str, path: str) -> Made:
        """The record of ``path`` as it is now (lstat: a link is not followed)."""
        st = os.lstat(path)
        target = os.readlink(path) if kind == "link" else ""
        return cls(kind, path, st.st_dev, st.st_ino, target)

    def words(self) -> list[str]:
        return [self.kind, self.path, str(self.dev), str(self.ino), self.target]

    def record(self) -> bytes:
        """The record as the owner sends it on the janitor's stdin."""
        return b"".join(os.fsencode(word) + b"\0" for word in self.words())

    @classmethod
    def parse(cls, words: list[str]) -> list[Made]:
        """The records ``words()`` gave, five words each; ValueError when malformed."""
        if len(words) % 5:
            raise ValueError("expected five words per record")
        return [
            cls(words[i], words[i + 1], int(words[i + 2]), int(words[i + 3]), words[i + 4])
            for i in range(0, len(words), 5)
        ]

    def is_same(self) -> bool:
        """Whether the path still holds the very object that was made."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            return False
        if self.kind == "fifo":
            return stat.S_ISFIFO(st.st_mode)
        if self.kind == "dir":
            return stat.S_ISDIR(st.st_mode)
        try:
            return stat.S_ISLNK(st.st_mode) and os.readlink(self.path) == self.target
        except OSError:
            return False

    def remove(self) -> None:
        """Remove it if it is still the same object; a folder with what it holds (only
        files and links: a mount's folder holds nothing else). Never raises."""
        if not self.is_same():
            return
        try:
            if self.kind == "dir":
                for name in os.listdir(self.path):
                    entry = os.path.join(self.path, name)
                    if not stat.S_ISDIR(os.lstat(entry).st_mode):
                        os.unlink(entry)
                os.rmdir(self.path)
            else:
                os.unlink(self.path)
        except OSError:
            pass


class _Stop(Exception):
    """SIGTERM while waiting: clean up now."""


def _on_term(signum: int, frame: object) -> None:
    raise _Stop


class _Known:
    """The last two records of each path, in the order the paths came: the object a path
    holds now, and the one about to replace it (a kill between the two steps of a
    replacement leaves either)."""

    def __init__(self, made: list[Made]) -> None:
        self.paths: dict[str, list[Made]] = {}
        for thing in made:
            self.add(thing)

    def add(self, thing: Made) -> None:
        records = self.paths.setdefault(thing.path, [])
        records.append(thing)
        del records[:-2]

    def remove_all(self) -> None:
        for records in self.paths.values():
            for thing in reversed(records):
                if thing.is_same():
                    thing.remove()
                    break


def _parsed(record: list[bytes]) -> list[Made]:
    try:
        return Made.parse([os.fsdecode(word) for word in record])
    except ValueError:
        return []


def _follow_owner(known: _Known) -> None:
    """Add the records the owner sends until stdin reaches end of file (the owner closed
    it, or died). A record cut short by the owner's death is ignored."""
    pending = b""
    try:
        while chunk := os.read(0, 4096):
            *words, pending = (pending + chunk).split(b"\0")
            while len(words) >= 5:
                record, words = words[:5], words[5:]
                for thing in _parsed(record):
                    known.add(thing)
            if words:
                pending = b"\0".join([*words, pending])
    except (OSError, _Stop):
        pass


def main(argv: list[str]) -> int:
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:
        known = _Known(Made.parse(argv))
    except ValueError:
        return 2
    signal.signal(signal.SIGTERM, _on_term)
    _follow_owner(known)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish the job once started
    known.remove_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
