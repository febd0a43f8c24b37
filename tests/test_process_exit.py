"""process_exit.leave: the exit status and the output of sys.exit, without the
interpreter's teardown (and with it, where skipping it could be seen)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import invoke

# A module-level object whose finaliser prints: only the interpreter's teardown runs it.
PRELUDE = """
import sys
from bsecrets.cli.process_exit import leave

class Held:
    def __del__(self):
        sys.stderr.write("teardown\\n")

held = Held()
"""
# stdout block-buffered, as for any pipe (this sandbox sets PYTHONUNBUFFERED)
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def python(code: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + code], capture_output=True, text=True, env=BUFFERED,
        timeout=60, check=False, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("code", "status", "stderr"),
    [
        ("None", 0, ""),
        ("0", 0, ""),
        ("3", 3, ""),
        ("130", 130, ""),
        ("'went wrong'", 1, "went wrong\n"),
    ],
)
def test_status_as_sys_exit_gives_it(code: str, status: int, stderr: str) -> None:
    fast = python(f"print('out', end=''); leave({code})")
    plain = python(f"print('out', end=''); sys.exit({code})")
    assert (fast.returncode, fast.stdout, fast.stderr) == (status, "out", stderr)
    assert (plain.returncode, plain.stdout) == (status, "out")
    assert plain.stderr == stderr + "teardown\n"  # the teardown that leave skips


def test_exit_handlers_run_and_output_is_flushed() -> None:
    result = python(
        "import atexit\n"
        "atexit.register(lambda: print('handler'))\n"
        "sys.stdout.write('x' * 200_000)\n"  # more than one buffer, some still buffered
        "sys.stderr.write('partial')\n"
        "leave(0)\n"
    )
    assert result.returncode == 0
    assert result.stdout == "x" * 200_000 + "handler\n"
    assert result.stderr == "partial"


def test_another_thread_alive_gets_the_ordinary_exit() -> None:
    """Python joins a non-daemon thread at shutdown: leave must not cut it short."""
    result = python(
        "import threading, time\n"
        "def late():\n"
        "    time.sleep(1)\n"  # still running when leave is called
        "    print('late', flush=True)\n"
        "threading.Thread(target=late).start()\n"
        "leave(0)\n"
    )
    assert result.returncode == 0
    assert result.stdout == "late\n"
    assert result.stderr == "teardown\n"


def test_reader_gone_exits_as_python_does() -> None:
    """stdout's reader closed: Python's own report and status at shutdown, not ours."""

    def run(code: str) -> tuple[int, str]:
        read, write = os.pipe()
        os.close(read)  # no reader: the flush at exit fails with EPIPE
        try:
            done = subprocess.run(
                [sys.executable, "-c", PRELUDE + code], stdout=write, stderr=subprocess.PIPE,
                text=True, env=BUFFERED, timeout=60, check=False,
            )  # fmt: skip
        finally:
            os.close(write)
        return done.returncode, done.stderr

    fast_status, fast_err = run("sys.stdout.write('lost'); leave(0)")
    plain_status, plain_err = run("sys.stdout.write('lost'); sys.exit(0)")
    assert fast_status == plain_status == 120
    assert "BrokenPipeError" in fast_err and "BrokenPipeError" in plain_err


def test_the_cli_ends_without_teardown(vault: Path) -> None:
    """Both paths of the console script end in leave: a get (fast path) and an ls (Typer)
    give their output and status; a get of a missing name its error and exit 3."""
    invoke(["put", "a"], input="1")
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    probe = (
        "import sys, atexit\n"
        "atexit.register(lambda: sys.stderr.write('exit handlers ran\\n'))\n"
        "class Held:\n"
        "    def __del__(self):\n"
        "        sys.stderr.write('teardown\\n')\n"
        "held = Held()\n"
        "sys.argv = ['bsecrets', *sys.argv[1:]]\n"
        "from bsecrets.cli.entry import main\n"
        "main()\n"
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env,
            timeout=60, check=False,
        )  # fmt: skip

    got = cli("get", "a")
    assert (got.returncode, got.stdout, got.stderr) == (0, "1\n", "exit handlers ran\n")
    listed = cli("ls", "--json")
    assert listed.returncode == 0 and '"a"' in listed.stdout
    assert listed.stderr == "exit handlers ran\n"
    missing = cli("get", "nope")
    assert missing.returncode == 3
    assert missing.stderr.startswith("error: ") and missing.stderr.endswith("exit handlers ran\n")
    assert "teardown" not in missing.stderr


def test_a_profiler_gets_the_ordinary_exit(tmp_path: Path) -> None:
    """cProfile writes its report after the program: leave must let it (bench --diagnose)."""
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + "print('done'); leave(0)\n")
    report = tmp_path / "profile.out"
    result = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(report), str(script)],
        capture_output=True, text=True, env=BUFFERED, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "done\n")
    assert report.stat().st_size > 0
    assert result.stderr == "teardown\n"
