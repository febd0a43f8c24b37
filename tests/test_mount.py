"""The mount of exec (bsecrets.run.mount): a named pipe that serves the secrets to each
reader, or a private file behind a link where there are no named pipes, and nothing
left on disk after a normal exit, a kill of bsecrets (its janitor process cleans up),
or a path the user replaced (left alone). Real FIFOs and real processes; a platform
without named pipes is a child whose sitecustomize deletes os.mkfifo."""

from __future__ import annotations

import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bsecrets.errors import AlreadyExists, UsageError
from bsecrets.run.mount import Mount, check_path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = b"DB_PASSWORD=mount-canary-7f3a\nAPI_KEY=k\n"
NEW = b"DB_PASSWORD=rotated-canary-91c2\n"
BIG = b"".join(b"LINE_%06d=%s\n" % (i, b"x" * 50) for i in range(5000))  # past a pipe's buffer

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes only")


def read(path: Path | str, *command: str) -> bytes:
    """What a reader process gets from the mount (``cat``, or the command given)."""
    result = subprocess.run(
        [*(command or ("cat",)), str(path)], capture_output=True, timeout=10, check=True
    )
    return result.stdout


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """A hang guard, sized by count (about 10 s)."""
    for _ in range(200):
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"still waiting for: {what}")


def _proc() -> Path:
    proc = Path("/proc")
    if not (proc / "self" / "cmdline").exists():
        pytest.skip("needs /proc to find the janitor")
    return proc


def running(pid: int) -> bool:
    """Alive and not a zombie (a reparented janitor may wait for a reaper)."""
    try:
        fields = (_proc() / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def janitors(path: Path) -> list[int]:
    """The running janitor processes that guard ``path``."""
    found = []
    for entry in _proc().iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"bsecrets.run.janitor" in argv
            and os.fsencode(path) in argv
            and running(int(entry.name))
        ):
            found.append(int(entry.name))
    return found


def the_janitor(path: Path) -> int:
    """The janitor of ``path`` (its exec may still be under way when the mount is ready)."""
    wait_until(lambda: len(janitors(path)) == 1, f"one janitor for {path}")
    [pid] = janitors(path)
    return pid


def signal_mask(pid: int, which: str) -> int:
    """The signals a process ignores ("SigIgn") or catches ("SigCgt"), as a bit mask."""
    for line in (_proc() / str(pid) / "status").read_text().splitlines():
        if line.startswith(f"{which}:"):
            return int(line.split()[1], 16)
    return 0


def bits(*signums: int) -> int:
    return sum(1 << (signum - 1) for signum in signums)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty folder for the mount, so what is left in it can be listed."""
    path = tmp_path / "mnt"
    path.mkdir()
    return path


@pytest.fixture
def runtime(isolated: Path) -> Path:
    """$XDG_RUNTIME_DIR (conftest makes one per test): where private folders go."""
    return Path(os.environ["XDG_RUNTIME_DIR"])


# --- the named pipe ---------------------------------------------------------------


def test_each_reader_gets_the_whole_content_once(folder: Path) -> None:
    path = folder / "app.env"
    with Mount(path, CONTENT) as mount:
        assert mount.kind == "fifo"
        assert mount.location == str(path)
        st = os.lstat(path)
        assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        for _ in range(3):  # no limit; and a reader is never written to twice
            assert read(path) == CONTENT
    assert os.listdir(folder) == []


def test_location_is_absolute(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    with Mount(Path("app.env"), CONTENT) as mount:
        assert mount.location == str(folder / "app.env")
        assert read(mount.location) == CONTENT


def test_read_limit_removes_the_pipe_after_the_last_read(folder: Path) -> None:
    path = folder / "app.env"
    with Mount(path, CONTENT, max_reads=2):
        assert read(path) == CONTENT
        assert read(path) == CONTENT
        assert not os.path.lexists(path)
        with pytest.raises(FileNotFoundError):
            os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        assert os.listdir(folder) == []


def test_a_reader_that_leaves_early_counts_and_breaks_nothing(folder: Path) -> None:
    path = folder / "app.env"
    with Mount(path, BIG, max_reads=2):
        assert read(path, "head", "-c", "1") == BIG[:1]  # the writer gets EPIPE
        assert read(path) == BIG
        assert not os.path.lexists(path)


def test_update_reaches_later_reads(folder: Path) -> None:
    path = folder / "app.env"
    with Mount(path, CONTENT) as mount:
        assert read(path) == CONTENT
        mount.update(NEW)
        assert read(path) == NEW
        assert read(path) == NEW


def test_exit_leaves_nothing_and_ends_the_janitor(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSECRETS_PASSPHRASE", "passphrase-canary-55e1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-canary-0b9d")
    path = folder / "app.env"
    with Mount(path, CONTENT) as mount:
        assert read(path) == CONTENT
        pid = the_janitor(path)
        argv = (_proc() / str(pid) / "cmdline").read_bytes()
        environ = (_proc() / str(pid) / "environ").read_bytes()
        # the janitor knows paths and identities, not the content or the caller's tokens
        for canary in (b"mount-canary", b"passphrase-canary", b"aws-canary"):
            assert canary not in argv and canary not in environ
        mount.__exit__(None, None, None)
        assert not os.path.lexists(path)
        assert not running(pid)  # ended, and reaped
    mount.__exit__(None, None, None)  # again: nothing to do
    assert os.listdir(folder) == []


def _exit_in_a_thread(mount: Mount) -> None:
    """Leave the mount in another thread: a hang fails the test instead of blocking it."""
    leaving = threading.Thread(target=mount.__exit__, args=(None, None, None), daemon=True)
    leaving.start()
    leaving.join(10)
    assert not leaving.is_alive(), "__exit__ did not return"


def test_exit_while_waiting_for_a_reader_returns(folder: Path) -> None:
    path = folder / "app.env"
    mount = Mount(path, CONTENT).__enter__()
    assert read(path) == CONTENT  # the thread is back waiting in open()
    _exit_in_a_thread(mount)
    assert os.listdir(folder) == []


def test_exit_returns_when_the_user_removed_the_pipe(folder: Path) -> None:
    """The serving thread then waits on a pipe nobody can open: the exit does not wait."""
    path = folder / "app.env"
    mount = Mount(path, CONTENT).__enter__()
    os.unlink(path)
    _exit_in_a_thread(mount)
    assert os.listdir(folder) == []


# --- refusals -------------------------------------------------------------------------


def _existing(kind: str, path: Path) -> Callable[[], None]:
    """Make ``kind`` at ``path``; return a check that it is untouched."""
    if kind == "file":
        path.write_bytes(b"mine")
        return lambda: path.read_bytes() == b"mine"
    if kind == "folder":
        path.mkdir()
        (path / "inside").write_bytes(b"mine")
        return lambda: (path / "inside").read_bytes() == b"mine"
    os.symlink(path.parent / "nowhere", path)  # dangling
    return lambda: os.readlink(path) == str(path.parent / "nowhere")


@pytest.mark.parametrize("kind", ["file", "folder", "dangling link"])
def test_a_path_that_exists_is_refused(folder: Path, runtime: Path, kind: str) -> None:
    path = folder / "app.env"
    untouched = _existing(kind, path)
    with pytest.raises(AlreadyExists):
        check_path(path)  # the same check, before anything is read
    with pytest.raises(AlreadyExists) as caught:
        Mount(path, CONTENT).__enter__()
    assert str(path) in caught.value.message
    assert caught.value.hint is not None and "does not exist" in caught.value.hint
    assert untouched()
    assert os.listdir(folder) == ["app.env"]
    assert list(runtime.iterdir()) == [] and janitors(path) == []


def test_the_folder_must_exist(tmp_path: Path, runtime: Path) -> None:
    with pytest.raises(UsageError):
        Mount(tmp_path / "missing" / "app.env", CONTENT).__enter__()
    with pytest.raises(UsageError):
        check_path(tmp_path / "missing" / "app.env")
    check_path(tmp_path / "app.env")  # fine, and nothing made
    assert not (tmp_path / "app.env").exists()
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(UsageError):
        Mount(tmp_path / "a-file" / "app.env", CONTENT).__enter__()
    assert not (tmp_path / "missing").exists()
    assert (tmp_path / "a-file").read_bytes() == b""
    assert list(runtime.iterdir()) == []


def test_a_read_limit_is_positive(folder: Path) -> None:
    with pytest.raises(UsageError):
        Mount(folder / "app.env", CONTENT, max_reads=0)


# --- processes that hold a mount: no named pipes, and kills -----------------------

HOLDER = f"""
import sys
from pathlib import Path

from bsecrets.errors import BsecretsError
from bsecrets.run.mount import Mount, check_path

limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
try:
    with Mount(Path(sys.argv[1]), {CONTENT!r}, max_reads=limit) as mount:
        print(mount.kind, flush=True)
        for line in sys.stdin:  # "update", until stdin closes
            mount.update({NEW!r})
            print("updated", flush=True)
except BsecretsError as exc:
    print(exc.kind, flush=True)
    sys.exit(3)
"""


class Holder:
    """A python process holding a Mount of ``path``, driven through its stdin."""

    def __init__(self, tmp_path: Path, path: Path, *, fifo: bool, limit: int | None) -> None:
        script = tmp_path / "holder.py"
        script.write_text(HOLDER)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        if not fifo:  # a platform without named pipes: the stdlib loses mkfifo
            site = tmp_path / "no-fifo"
            site.mkdir(exist_ok=True)
            (site / "sitecustomize.py").write_text("import os\n\ndel os.mkfifo\n")
            env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}"
        args = [sys.executable, str(script), str(path), *([str(limit)] if limit else [])]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def line(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        assert ready, "the holder said nothing"
        return self.proc.stdout.readline().decode().strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(10)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[Callable[..., Holder]]:
    made: list[Holder] = []

    def start(path: Path, *, fifo: bool = True, limit: int | None = None) -> Holder:
        made.append(Holder(tmp_path, path, fifo=fifo, limit=limit))
        return made[-1]

    yield start
    for holder in made:
        if holder.proc.poll() is None:
            holder.kill()


def _private_file(path: Path, runtime: Path) -> Path:
    """The file behind the link at ``path``, after checking the link, file and folder."""
    assert path.is_symlink()
    target = Path(os.readlink(path))
    assert target.parent.parent == runtime and target.parent.name.startswith("bsecrets-mount-")
    assert stat.S_IMODE(os.lstat(target.parent).st_mode) == 0o700
    assert stat.S_ISREG(os.lstat(target).st_mode)
    assert stat.S_IMODE(os.lstat(target).st_mode) == 0o600
    return target


def test_without_named_pipes_a_private_file(
    folder: Path, runtime: Path, holders: Callable[..., Holder]
) -> None:
    path = folder / "app.env"
    holder = holders(path, fifo=False)
    assert holder.line() == "file"
    target = _private_file(path, runtime)
    assert read(path) == CONTENT
    assert read(path) == CONTENT
    holder.send("update")
    assert holder.line() == "updated"
    assert read(path) == NEW
    assert _private_file(path, runtime).parent == target.parent
    assert holder.close() == 0
    assert os.listdir(folder) == [] and list(runtime.iterdir()) == []


def test_without_named_pipes_a_read_limit_is_refused(
    folder: Path, runtime: Path, holders: Callable[..., Holder]
) -> None:
    holder = holders(folder / "app.env", fifo=False, limit=1)
    assert holder.line() == "usage_error"
    assert holder.close() == 3
    assert os.listdir(folder) == [] and list(runtime.iterdir()) == []


def _gone(*paths: Path) -> Callable[[], bool]:
    return lambda: not any(os.path.lexists(p) for p in paths)


def test_a_kill_of_the_owner_leaves_no_pipe(folder: Path, holders: Callable[..., Holder]) -> None:
    path = folder / "app.env"
    holder = holders(path)
    assert holder.line() == "fifo"
    assert read(path) == CONTENT  # so the pipe at the path is a replacement the janitor learnt
    janitor = the_janitor(path)
    # a terminal's Ctrl-C or hang-up does not end the janitor before it has cleaned up
    wanted = bits(signal.SIGINT, signal.SIGHUP)
    wait_until(lambda: signal_mask(janitor, "SigIgn") & wanted == wanted, "it ignores them")
    os.killpg(janitor, signal.SIGINT)
    os.killpg(janitor, signal.SIGHUP)
    holder.kill()
    wait_until(_gone(path), "the janitor removes the pipe")
    wait_until(lambda: not running(janitor), "the janitor exits")
    assert os.listdir(folder) == []


def test_a_kill_of_the_owner_leaves_no_private_file(
    folder: Path, runtime: Path, holders: Callable[..., Holder]
) -> None:
    path = folder / "app.env"
    holder = holders(path, fifo=False)
    assert holder.line() == "file"
    target = _private_file(path, runtime)
    holder.kill()
    wait_until(_gone(path, target, target.parent), "the janitor removes link and folder")
    assert list(runtime.iterdir()) == []


def test_sigterm_makes_the_janitor_clean_up_at_once(
    folder: Path, holders: Callable[..., Holder]
) -> None:
    """A system that stops everything (a session's end) reaches the janitor too: it
    cleans up then instead of dying with the job undone; the owner still exits cleanly."""
    path = folder / "app.env"
    holder = holders(path)
    assert holder.line() == "fifo"
    janitor = the_janitor(path)
    wanted = bits(signal.SIGTERM)
    wait_until(lambda: signal_mask(janitor, "SigCgt") & wanted == wanted, "it handles SIGTERM")
    os.kill(janitor, signal.SIGTERM)
    wait_until(_gone(path), "the janitor removes the pipe")
    wait_until(lambda: not running(janitor), "the janitor exits")
    assert holder.close() == 0
    assert os.listdir(folder) == []


@pytest.mark.parametrize("fifo", [True, False], ids=["fifo", "file"])
def test_a_kill_leaves_a_path_the_user_replaced(
    folder: Path, runtime: Path, holders: Callable[..., Holder], fifo: bool
) -> None:
    path = folder / "app.env"
    holder = holders(path, fifo=fifo)
    assert holder.line() == ("fifo" if fifo else "file")
    janitor = the_janitor(path)
    os.unlink(path)
    path.write_bytes(b"the user's own")
    holder.kill()
    wait_until(lambda: not running(janitor), "the janitor exits")
    assert path.read_bytes() == b"the user's own"
    assert list(runtime.iterdir()) == []  # the private folder was ours: gone


def test_the_janitor_imports_almost_nothing() -> None:
    """It lives as long as the command: os, sys, signal and stat, not the package."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-m", "bsecrets.run.janitor"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    ours = {name for name in names if name.startswith("bsecrets")}
    assert ours <= {"bsecrets", "bsecrets.run", "bsecrets.run.janitor"}, ours
    heavy = names & {"threading", "subprocess", "tempfile", "selectors", "pathlib", "typer"}
    assert heavy == set()
