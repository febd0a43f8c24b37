"""run/hooks.py with real processes: a hook's timeout kills its whole process group (a
shell and what it started) and counts as exit 124, its value never in the output kept;
without a timeout a hook runs to its end. (Used by break-glass's notify command, which
an emergency must not wait on: services/break_glass.py.)"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from bsecrets.run.hooks import TIMED_OUT, HookResult, hook_environment, run_hook

VALUE = b"hook-value-5f2a"


def test_a_hook_past_its_timeout_is_killed_with_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pid_file}; cat; wait"
    results: list[HookResult] = []
    runner = threading.Thread(daemon=True, target=lambda: results.append(run_hook(
        "notify", ["/bin/sh", "-c", script], VALUE, hook_environment(os.environ, {}),
        timeout=1.0)))  # fmt: skip
    runner.start()
    runner.join(timeout=20)  # a hang guard: a child left holding the pipes would hang it
    assert not runner.is_alive(), "the hook's child kept run_hook waiting"
    (result,) = results
    assert result.exit_code == TIMED_OUT and not result.ok
    assert "killed after 1 s" in result.output
    assert VALUE.decode() not in result.output  # masked, as every hook's output
    child = int(pid_file.read_text())
    try:
        os.kill(child, 0)
        alive = Path(f"/proc/{child}/stat").read_text().split()[2] != "Z"
    except ProcessLookupError:
        alive = False
    assert not alive  # the shell's child went with it


def test_a_hook_within_its_timeout_gets_the_value_and_exits_as_it_does(tmp_path: Path) -> None:
    out = tmp_path / "got"
    code = f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read()); sys.exit(3)"
    result = run_hook("notify", [sys.executable, "-c", code], VALUE,
                      hook_environment(os.environ, {}), timeout=60.0)  # fmt: skip
    assert result.exit_code == 3 and out.read_bytes() == VALUE
