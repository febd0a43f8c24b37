#!/usr/bin/env python3
"""The CPU cost of ``bsecrets exec --watch`` (issue 21): with a 1 s interval, under 2%
of one CPU on a local vault.

For a local vault of 10 and one of 100 secrets (real Argon2id, the secrets written by
``bsecrets import``, every command in an unlocked session: as users run it), with
bsecrets from a venv made by a regular ``pip install`` of the checkout (scale_setup.py,
shared with bench_scale.py), two long-running commands, one after the other:

- subject: ``bsecrets exec --watch --interval 1s -e dev -- sleep S``. bsecrets stays
  the parent and reads the injected secrets again every second; nothing changes in
  the vault, so no poll restarts the command (the bench checks the child is the same);
- baseline: ``bsecrets exec --mask -e dev -- sleep S``: bsecrets stays the parent there
  too (it would redact the child's output), and only waits.

The figure is the CPU time of bsecrets' own process (user + system of all its threads,
``/proc/PID/stat``; the child's is not in it) between two reads, over the wall time
between them: % of one CPU. The watch's window starts once the child exists and the
first poll (a full read) is over, and lasts ``--polls`` intervals: later polls find the
vault file unchanged and only check access again, too little CPU to be told apart from
outside, so the window is timed, not counted; the wake-ups in it (voluntary context
switches, one a poll) are printed as its polls. A full read is seen from outside as a
burst of CPU time (``/proc/PID/schedstat``, in ns): a burst ends after 150 ms without
any. The baseline's window starts once its child exists and it has been quiet for
150 ms, and lasts as long as the watch's window on the same vault. Then bsecrets gets
SIGTERM (it forwards it; exit 143).

Printed beside the judged figure: the same from schedstat (ns instead of clock ticks),
the CPU of one poll, and the wake-ups a second (voluntary context switches: the times
the process blocked, so each wait it came back from; one a poll is the least a loop
can do). Judged: the watch run's whole figure (not net of the baseline) <= 2%.

Usage: python bench/bench_watch.py [--polls N] [--workdir DIR] [--venv DIR] [--json FILE]
Exit status: 0 both vaults pass, 1 one fails, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from harness import BenchError, call, git_state, process_cpu, run_in_workdir, verdict
from scale_setup import child_env, dotenv_file, ensure_venv, init_vault, unlock

TARGET_PCT = 2.0  # % of one CPU
INTERVAL = "1s"
INTERVAL_S = 1.0
SIZES = (10, 100)
SAMPLE_S = 0.05  # how often the bench reads bsecrets' /proc files
QUIET_SAMPLES = 3  # samples without work that end a burst (150 ms)
BUSY_NS = 1_000_000  # more CPU than this within one sample: bsecrets is working
STOP_S = 20.0  # SIGTERM to exit (bsecrets forwards it; the child exits at once)
REPO = Path(__file__).resolve().parents[1]


class Reading(NamedTuple):
    """bsecrets' process at one moment."""

    at: float  # time.monotonic()
    cpu_s: float  # /proc/PID/stat utime + stime (clock ticks)
    run_ns: int  # /proc/PID/schedstat: time on a CPU (ns); from cpu_s where unreadable
    waits: int  # voluntary context switches: the times it blocked


def read(pid: int) -> Reading:
    at = time.monotonic()
    cpu = process_cpu(pid)
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        status = ""
    found = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.MULTILINE)
    if cpu is None or found is None:
        raise BenchError(f"cannot read /proc/{pid}: bsecrets exited, or this is not Linux")
    try:
        run_ns = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        run_ns = round(cpu * 1e9)
    return Reading(at, cpu, run_ns, int(found.group(1)))


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    with contextlib.suppress(OSError):  # the file needs CONFIG_PROC_CHILDREN
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
    return kids


class Sampler:
    """Reads bsecrets' process every SAMPLE_S and counts its bursts of CPU time: the
    polls. It starts inside a burst (the end of start-up), so that is not counted."""

    def __init__(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        self.proc = proc
        self.deadline = deadline
        self.last = read(proc.pid)
        self.bursts = 0
        self.quiet = 0

    def step(self) -> Reading:
        if self.proc.poll() is not None:
            raise BenchError(f"bsecrets exited early (exit {self.proc.returncode})")
        if time.monotonic() > self.deadline:
            raise BenchError(f"time is up, {self.bursts} polls seen (is --watch polling?)")
        time.sleep(SAMPLE_S)
        now = read(self.proc.pid)
        if now.run_ns - self.last.run_ns >= BUSY_NS:
            if self.quiet >= QUIET_SAMPLES:
                self.bursts += 1
            self.quiet = 0
        else:
            self.quiet += 1
        self.last = now
        return now

    def quiet_after(self, bursts: int) -> Reading:
        """The first reading in a quiet spell once ``bursts`` bursts have been seen."""
        while True:
            now = self.step()
            if self.bursts >= bursts and self.quiet >= QUIET_SAMPLES:
                return now

    def at(self, moment: float) -> Reading:
        """The first reading at or after ``moment`` (time.monotonic())."""
        while True:
            now = self.step()
            if now.at >= moment:
                return now


@dataclass
class Figure:
    """One command's window."""

    size: int  # secrets in the vault
    what: str  # "watch" or "baseline"
    cmd: list[str]
    wall_s: float
    cpu_s: float
    run_s: float
    waits: int
    polls: int | None  # the watch: its wake-ups in the window (one a poll)
    exit_code: int | None = None

    @property
    def pct(self) -> float:
        return 100 * self.cpu_s / self.wall_s

    @property
    def sched_pct(self) -> float:
        return 100 * self.run_s / self.wall_s

    @property
    def ok(self) -> bool | None:
        return self.pct <= TARGET_PCT if self.what == "watch" else None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "pct": self.pct, "sched_pct": self.sched_pct,
                "result": verdict(self.ok)}  # fmt: skip


def run_window(
    what: str, cmd: list[str], env: dict[str, str], folder: Path, *, polls: int, wall_s: float
) -> Figure:
    """Start ``cmd``, measure one window (``polls`` polls for the watch, ``wall_s`` seconds
    for the baseline), SIGTERM it."""
    log = folder / f"{what}.stderr"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            cmd, env=env, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60 + 5 * (polls * INTERVAL_S + wall_s)
        while not (first := children(proc.pid)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{what}: the command never started: {log.read_text()[-800:]}")
            time.sleep(0.02)
        sampler = Sampler(proc, deadline)
        # the watch: after its first poll (a full read; later ones find the file as it
        # was and only check access, too cheap to be seen as a burst), ``polls`` intervals
        start = sampler.quiet_after(1 if polls else 0)
        end = sampler.at(start.at + (polls * INTERVAL_S if polls else wall_s))
        if children(proc.pid) != first:
            raise BenchError(f"{what}: the command was restarted (a value changed?)")
    finally:
        code = stop(proc)
    said = log.read_text().strip()
    if said:
        raise BenchError(f"{what}: bsecrets wrote on stderr: {said[-800:]}")
    return Figure(
        0, what, cmd, end.at - start.at, end.cpu_s - start.cpu_s,
        (end.run_ns - start.run_ns) / 1e9, end.waits - start.waits,
        (end.waits - start.waits) if polls else None, code,
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM (bsecrets forwards it to the child), then its exit code; SIGKILL to both
    if it does not end (a BenchError)."""
    kids = children(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_S)
    except subprocess.TimeoutExpired:
        for pid in [*kids, proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        raise BenchError(f"bsecrets did not end within {STOP_S:.0f} s of SIGTERM") from None


Vaults = dict[int, tuple[Path, dict[str, str]]]  # size -> (folder, session env)


def prepare(args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], Vaults]:
    """The venv, then each vault with its secrets imported and a session: size ->
    (folder, session env). Checks that exec injects them all."""
    env = child_env(work)
    venv = ensure_venv(args, work, env)
    script, passphrase = venv["script"], "bench-" + secrets.token_urlsafe(18)
    vaults: Vaults = {}
    for count in SIZES:
        print(f"building the {count}-secret vault", file=sys.stderr, flush=True)
        folder = work / "watch-vaults" / f"secrets-{count}"
        init_vault(script, folder, env, passphrase)
        session = unlock(script, folder, env, passphrase)
        call([script, "import", str(dotenv_file(work, count))], session, folder)
        count_them = ["sh", "-c", "env | grep -c '^APP_KEY_'"]
        got = call([script, "exec", "-e", "dev", "--", *count_them], session, folder).strip()
        if got != str(count):
            raise BenchError(f"exec injected {got} of the {count} secrets")
        vaults[count] = (folder, session)
    return venv, vaults


def run(args: argparse.Namespace, work: Path) -> int:
    venv, vaults = prepare(args, work)
    script = str(venv["script"])
    sleep = ["sleep", str(max(600, math.ceil(args.polls * INTERVAL_S * 4) + 120))]
    watch_cmd = [script, "exec", "--watch", "--interval", INTERVAL, "-e", "dev", "--", *sleep]
    base_cmd = [script, "exec", "--mask", "-e", "dev", "--", *sleep]
    load_before = os.getloadavg()
    figures: list[Figure] = []
    for count, (folder, session) in vaults.items():
        print(f"measuring: {count} secrets, {args.polls} polls", file=sys.stderr, flush=True)
        watch = run_window("watch", watch_cmd, session, folder, polls=args.polls, wall_s=0)
        base = run_window("baseline", base_cmd, session, folder, polls=0, wall_s=watch.wall_s)
        watch.size = base.size = count
        figures += [base, watch]
    load_after = os.getloadavg()
    v = venv["versions"]
    print(
        f"\nexec --watch --interval {INTERVAL}: CPU of bsecrets' own process (issue 21: "
        f"< {TARGET_PCT:g}% of one CPU)\n"
        f"bsecrets {v['bsecrets']} from {venv['label']}, pip-installed in {venv['venv']}; "
        f"SQLite {venv['sqlite']}\n{os.cpu_count()} CPUs, load average {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after; {args.polls} polls a window"
    )
    print(
        f"\n{'vault':<12} {'command':<28} {'polls':>5} {'wall':>8} {'CPU':>7} {'% CPU':>7} "
        f"{'(sched)':>8} {'CPU/poll':>9} {'wake-ups/s':>10}  result"
    )
    for f in figures:
        command = f"exec --watch --interval {INTERVAL}" if f.what == "watch" else "exec --mask"
        per_poll = f"{1000 * f.cpu_s / f.polls:.1f} ms" if f.polls else "-"
        print(
            f"{f.size:>3} secrets  {command:<28} {f.polls if f.polls else '-':>5} "
            f"{f.wall_s:>6.1f} s {f.cpu_s:>5.2f} s {f.pct:>6.2f}% {f.sched_pct:>7.2f}% "
            f"{per_poll:>9} {f.waits / f.wall_s:>10.2f}  "
            + (f"{verdict(f.ok)} (<= {TARGET_PCT:g}%)" if f.what == "watch" else "baseline")
        )
    for base, watch in zip(figures[::2], figures[1::2], strict=True):
        print(
            f"  {watch.size} secrets: the watch's own share (watch - baseline) "
            f"{watch.pct - base.pct:.2f} points of one CPU; exit codes on SIGTERM "
            f"{watch.exit_code} / {base.exit_code} (143: the child's, as forwarded)"
        )
    print(
        "  CPU, % CPU: /proc/PID/stat utime+stime (clock ticks), judged; (sched): the same "
        "from /proc/PID/schedstat (ns);\n  CPU/poll: CPU over the polls in the window; "
        "wake-ups/s: voluntary context switches a second"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "checkout": git_state(REPO),
            "venv": venv, "load": [load_before, load_after], "polls": args.polls,
            "interval": INTERVAL, "target_pct": TARGET_PCT,
            "figures": [f.as_dict() for f in figures],
        }  # fmt: skip
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0 if all(f.ok is not False for f in figures) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--polls", type=int, default=30,
        help="polls in each watch window, and as many seconds of baseline (default 30)",
    )  # fmt: skip
    p.add_argument(
        "--workdir", type=Path,
        help="keep the venv here and reuse it (the vaults are made anew; default: a temp dir)",
    )  # fmt: skip
    p.add_argument(
        "--venv", type=Path,
        help="the venv to measure: made here with 'pip install' of --source when missing, "
        "reinstalled when the source changed (default: WORK/venv)",
    )  # fmt: skip
    p.add_argument(
        "--source", default="tree",
        help="'tree': the checkout as it is, uncommitted changes included (default); "
        "a git revision (HEAD): that commit, from 'git archive'",
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="write every figure to this file")
    args = p.parse_args(argv)
    if args.polls < 3:
        p.error("--polls must be at least 3")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_in_workdir(args.workdir, "bsecrets-bench-watch-", lambda work: run(args, work))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
