"""A scratch folder in memory (tmpfs), for tests that write a vault many times over
to check what it reads back, not what reaches the disk.

A vault commits with ``synchronous=FULL``: every write, an audited read's event
included, ends with an fsync. On a disk that is a wait for the device, and on a
shared machine it is the cost most sensitive to other work. On tmpfs an fsync
returns at once; SQLite itself runs as it does on disk (same WAL, same -shm,
same pages). Use it only where the disk is not the subject: a test of what
survives a kill or a full disk keeps its files on the disk.

Falls back to the ordinary temporary folder where /dev/shm is not a writable
folder (not Linux, or a container without it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

MEMORY = Path("/dev/shm")


def memory_base() -> str | None:
    """/dev/shm when the tests can make folders there, else None (the default)."""
    if MEMORY.is_dir() and os.access(MEMORY, os.W_OK | os.X_OK):
        return str(MEMORY)
    return None


@contextlib.contextmanager
def memory_folder(prefix: str) -> Iterator[Path]:
    """A new folder (mode 0700) on tmpfs if there is one, removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix=f"bsecrets-{prefix}-", dir=memory_base()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
