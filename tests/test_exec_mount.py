"""exec --mount (#21 point 2) from the command line: the secrets in a named pipe the
child reads instead of its environment, gone after a normal exit, a crash of the
child and a SIGKILL of bsecrets. Real bsecrets processes and real children; the
mount itself is tested in tests/test_mount.py."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import assert_error, invoke, put_secret, run_cli

PY = sys.executable
GUARD = 60.0  # seconds: a hang guard, never an expectation

# prints what the mount holds and whether the environment holds a secret
READ = r"""
import json, os, sys
path = os.environ["BSECRETS_MOUNT"]
reads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
for _ in range(reads):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = None
    print(json.dumps({"path": path, "text": text, "DB_URL": os.environ.get("DB_URL")}),
          flush=True)
"""


@pytest.fixture
def db(vault: Path) -> Path:
    put_secret("db/url", b"postgres://user:pw@db/app")
    put_secret("api/key", b"key with 'quotes' and spaces")
    return vault


def child(*args: str, reads: int = 1) -> list[dict[str, Any]]:
    result = run_cli(["exec", *args, "--", PY, "-c", READ, str(reads)])
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def exec_events() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(
        invoke(["audit", "log", "--action", "exec", "--json"]).stdout
    )
    return found


def test_the_child_reads_the_secrets_from_the_mount_not_its_environment(db: Path) -> None:
    target = db / "app.env"
    (seen,) = child("--mount", str(target))
    assert seen["path"] == str(target) and seen["DB_URL"] is None
    from dotenv import dotenv_values

    (db / "copy.env").write_text(seen["text"])
    assert dotenv_values(db / "copy.env", interpolate=False) == {
        "API_KEY": "key with 'quotes' and spaces",
        "DB_URL": "postgres://user:pw@db/app",
    }
    assert not os.path.lexists(target)  # gone after a normal exit
    assert exec_events()[-1]["names"] == ["api/key", "db/url"]


@pytest.mark.parametrize(
    ("name", "fmt", "load"),
    [
        ("config.json", None, json.loads),
        ("config.yaml", None, None),
        ("config.txt", "json", json.loads),
    ],
)
def test_the_format_follows_the_suffix_or_the_option(
    db: Path, name: str, fmt: str | None, load: Any
) -> None:
    import yaml

    args = ["--mount", str(db / name), *(["--mount-format", fmt] if fmt else [])]
    (seen,) = child(*args, "--only", "db/url")
    data = (load or yaml.safe_load)(seen["text"])
    assert data == {"DB_URL": "postgres://user:pw@db/app"}


def test_a_pipe_read_any_number_of_times_or_at_most_n(db: Path) -> None:
    target = str(db / "app.env")
    three = child("--mount", target, "--only", "db/url", reads=3)
    assert [s["text"] for s in three] == ["DB_URL=postgres://user:pw@db/app\n"] * 3
    once = child("--mount", target, "--only", "db/url", "--mount-max-reads", "1", reads=2)
    assert once[0]["text"] == "DB_URL=postgres://user:pw@db/app\n"
    assert once[1]["text"] is None  # removed after its one read


def test_the_mount_is_a_private_named_pipe_while_the_command_runs(db: Path) -> None:
    target = db / "app.env"
    script = "import os, stat, sys; m = os.lstat(sys.argv[1]); print(oct(m.st_mode))"
    result = run_cli(["exec", "--mount", str(target), "--", PY, "-c", script, str(target)])
    assert result.returncode == 0, result.stderr.decode()
    mode = int(result.stdout.decode().strip(), 8)
    assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o600
    assert not os.path.lexists(target)


def test_a_crash_of_the_child_leaves_nothing(db: Path) -> None:
    target = db / "app.env"
    kill = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    result = run_cli(["exec", "--mount", str(target), "--", PY, "-c", kill])
    assert result.returncode == 128 + signal.SIGKILL
    assert not os.path.lexists(target)


def test_a_sigkill_of_bsecrets_leaves_nothing(db: Path) -> None:
    target = db / "app.env"
    ready = db / "ready"
    wait = (
        f"import os, time; open({str(ready)!r}, 'w').close(); "
        "print(os.getpid(), flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen(
        [PY, "-m", "bsecrets", "exec", "--mount", str(target), "--", PY, "-c", wait],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + GUARD
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    child_pid = int(proc.stdout.readline())  # type: ignore[union-attr]
    proc.kill()  # SIGKILL: bsecrets cleans nothing up itself
    proc.wait()
    try:
        while os.path.lexists(target):
            assert time.monotonic() < deadline, "the janitor never removed the mount"
            time.sleep(0.05)
    finally:
        os.kill(child_pid, signal.SIGKILL)


# --- bad input ---------------------------------------------------------------------------


def test_a_value_dotenv_cannot_carry_points_to_json_or_yaml(db: Path) -> None:
    put_secret("api/key", b"it's $HOME")
    target = db / "app.env"
    result = invoke(["exec", "--mount", str(target), "--", "/nonexistent/bsecrets-child"])
    assert_error(result, 1, "API_KEY", "dotenv cannot carry it", "--mount-format json")
    assert "$HOME" not in result.stderr and not os.path.lexists(target)
    (seen,) = child("--mount", str(db / "app.json"))
    assert json.loads(seen["text"])["API_KEY"] == "it's $HOME"


@pytest.mark.parametrize("kind", ["file", "folder", "dangling link"])
def test_a_mount_path_that_exists_is_exit_7_before_any_read(db: Path, kind: str) -> None:
    target = db / "taken"
    if kind == "file":
        target.write_text("mine")
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to(db / "nowhere")
    before = len(exec_events())
    result = invoke(["exec", "--mount", str(target), "--", "/nonexistent/bsecrets-child"])
    assert_error(result, 7, "exists")
    assert len(exec_events()) == before  # nothing was read
    assert os.path.lexists(target)
    if kind == "file":
        assert target.read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--mount", "m.env", "--mount-max-reads", "0"], "--mount-max-reads"),
        (["--mount", "m.env", "--mount-max-reads", "-3"], "--mount-max-reads"),
        (["--mount", "m.env", "--mount-format", "xml"], "mount format"),
        (["--mount-format", "json"], "--mount"),
        (["--mount-max-reads", "2"], "--mount"),
        (["--mount", "no/such/folder/m.env"], "folder"),
    ],
)
def test_bad_mount_options_are_exit_2(db: Path, args: list[str], needle: str) -> None:
    result = invoke(["exec", *args, "--", "/nonexistent/bsecrets-child"])
    assert_error(result, 2, needle)
    assert not os.path.lexists(db / "m.env")
