"""What the bench scripts share (see bench/README.md): a command timed as a fresh
process again and again (``Case``), a subject and its baseline always run back to
back (``Pair``), rounds that run everything in a shuffled order (``measure``), the
statistics and tables the targets are judged on, and the environment the
commands run in.

The scripts run as ``python bench/NAME.py``, which puts bench/ on ``sys.path``:
they import this module as ``harness``. It imports nothing of bsecrets at the top
(a bench must be able to print its ``--help`` before anything is set up).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BenchError(Exception):
    """The benchmark itself could not run (exit 2)."""


# --- statistics ---------------------------------------------------------------


def run_in_workdir(workdir: Path | None, prefix: str, run: Callable[[Path], int]) -> int:
    """``run(folder)`` in ``workdir`` (made 0700, kept: a rerun reuses what is there) or
    in a temporary folder; a BenchError, OSError or failed subprocess is exit 2."""
    try:
        if workdir:
            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return run(workdir.resolve())
        import tempfile

        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            return run(Path(tmp))
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench error: {exc}", file=sys.stderr)
        return 2


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def paired_median(subject: list[float], baseline: list[float]) -> float:
    """The median of the per-round ratios subject/baseline: it cancels load that drifts
    between rounds (the ratio of the two medians does not)."""
    return statistics.median(s / b for s, b in zip(subject, baseline, strict=True))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool | None) -> str:
    """PASS or FAIL; ``None`` marks a figure shown for information."""
    return "info" if ok is None else ("PASS" if ok else "FAIL")


# --- processes ----------------------------------------------------------------


@dataclass
class Case:
    """One command measured as a fresh process, again and again."""

    key: str
    label: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    expect: bytes | None = None  # exact stdout, checked in the warm-up
    expect_lines: int | None = None  # stdout line count, checked in the warm-up
    budget_s: float = float("inf")  # stop sampling once this much wall time is spent...
    min_runs: int = 5  # ...but never before this many samples
    check_every_run: bool = False  # read and check stdout on measured runs too
    strip: bool = False  # compare stdout with ``expect`` without surrounding whitespace
    timeout: float | None = None  # seconds a run may take (subprocess.TimeoutExpired)
    stdin: bytes | None = None  # what each run reads on stdin (None: /dev/null)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def wants_more(self, runs: int) -> bool:
        if len(self.wall) >= runs:
            return False
        return len(self.wall) < self.min_runs or sum(self.wall) < self.budget_s

    def run(self, *, capture: bool = False) -> tuple[float, float, bytes]:
        """One fresh process: (wall s, CPU s of the child, stdout if read). A captured
        run (the warm-up) is not recorded."""
        read = capture or self.check_every_run
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        feed: dict[str, Any] = (
            {"input": self.stdin} if self.stdin is not None else {"stdin": subprocess.DEVNULL}
        )
        proc = subprocess.run(
            self.cmd, env=self.env, cwd=self.cwd, **feed,
            stdout=subprocess.PIPE if read else subprocess.DEVNULL, stderr=subprocess.PIPE,
            check=False, timeout=self.timeout,
        )  # fmt: skip
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")[-800:]
            raise BenchError(f"{self.label}: exit {proc.returncode}: {err}")
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        if self.check_every_run:
            self.check(proc.stdout)
        if not capture:
            self.wall.append(wall)
            self.cpu.append(cpu)
        return wall, cpu, proc.stdout or b""

    def check(self, out: bytes) -> None:
        """Raise BenchError unless ``out`` is what this command must print."""
        if self.expect is not None and (
            out.strip() != self.expect.strip() if self.strip else out != self.expect
        ):
            raise BenchError(f"{self.label}: printed {out[:80]!r}, expected {self.expect[:80]!r}")
        lines = out.count(b"\n")
        if self.expect_lines is not None and lines != self.expect_lines:
            raise BenchError(f"{self.label}: printed {lines} lines, expected {self.expect_lines}")

    def warm_up(self, times: int) -> None:
        """Run ``times`` times unrecorded (bytecode, profile and page caches warm) and
        check what each run printed."""
        for _ in range(times):
            self.check(self.run(capture=True)[2])

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "cmd": self.cmd,
            "runs": len(self.wall),
            "median_s": statistics.median(self.wall) if self.wall else None,
            "min_s": min(self.wall, default=None),
            "p90_s": quantile(self.wall, 0.9) if self.wall else None,
            "max_s": max(self.wall, default=None),
            "cpu_median_s": statistics.median(self.cpu) if self.cpu else None,
            "samples_s": [round(w, 6) for w in self.wall],
        }

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


@dataclass
class Pair:
    """A subject and its baseline, always run back to back (in random order), so that
    each sample of the subject has a baseline sample taken under the same load.
    ``limit`` None: shown for information, not judged."""

    label: str
    base: Case
    subj: Case
    limit: float | None
    base_wall: list[float] = field(default_factory=list)
    subj_wall: list[float] = field(default_factory=list)
    base_cpu: list[float] = field(default_factory=list)
    subj_cpu: list[float] = field(default_factory=list)

    def wants_more(self, runs: int) -> bool:
        return len(self.subj_wall) < runs

    def run(self, rng: random.Random) -> None:
        first_base = rng.random() < 0.5
        for case in (self.base, self.subj) if first_base else (self.subj, self.base):
            wall, cpu, _ = case.run()
            walls, cpus = (
                (self.base_wall, self.base_cpu) if case is self.base
                else (self.subj_wall, self.subj_cpu)
            )  # fmt: skip
            walls.append(wall)
            cpus.append(cpu)

    @property
    def ratio(self) -> float:
        """Median of the subject over median of its baseline."""
        return statistics.median(self.subj_wall) / statistics.median(self.base_wall)

    @property
    def paired_ratio(self) -> float:
        """The judged figure: the median of the back-to-back ratios."""
        return paired_median(self.subj_wall, self.base_wall)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.subj_cpu) / statistics.median(self.base_cpu)

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label, "baseline": self.base.key, "subject": self.subj.key,
            "runs": len(self.subj_wall),
            "baseline_median_s": statistics.median(self.base_wall),
            "subject_median_s": statistics.median(self.subj_wall),
            "ratio": self.ratio, "paired_ratio": self.paired_ratio, "cpu_ratio": self.cpu_ratio,
            "limit": self.limit,
            "baseline_samples_s": [round(w, 6) for w in self.base_wall],
            "subject_samples_s": [round(w, 6) for w in self.subj_wall],
        }  # fmt: skip


def measure(pairs: list[Pair], singles: list[Case], runs: int, seed: int | None) -> None:
    """Rounds: each runs every pair and single that still wants samples, in a shuffled
    order, so that all commands see the same background load over the run. ``seed``
    None: a different order every run."""
    rng = random.Random(seed)
    for _ in range(runs):
        todo: list[Pair | Case] = [p for p in pairs if p.wants_more(runs)]
        todo += [c for c in singles if c.wants_more(runs)]
        if not todo:
            break
        rng.shuffle(todo)
        for item in todo:
            if isinstance(item, Pair):
                item.run(rng)
            else:
                item.run()


def call(cmd: list[str], env: dict[str, str], cwd: Path, stdin: bytes | None = None) -> str:
    """Run a setup command; its stdout, or BenchError with the end of its stderr."""
    proc = subprocess.run(
        cmd, env=env, cwd=cwd, input=stdin if stdin is not None else b"",
        capture_output=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(
            f"{' '.join(cmd[-3:])}: exit {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')[-800:]}"
        )
    return proc.stdout.decode()


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) a running process has used so far, from
    Linux /proc (clock ticks); None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def session_token(unlock_output: str) -> str:
    """The token in what ``bsecrets unlock`` printed (``export BSECRETS_SESSION=...``)."""
    match = re.search(r"BSECRETS_SESSION=(\S+)", unlock_output)
    if not match:
        raise BenchError(f"'bsecrets unlock' printed no session token: {unlock_output[:200]!r}")
    return match.group(1)


# --- environment ------------------------------------------------------------------


def console_script(explicit: str | None = None) -> str:
    """The real ``bsecrets`` console script next to this Python (not a pyenv shim,
    which adds its own start-up), else the one on PATH."""
    if explicit:
        return explicit
    candidate = Path(sysconfig.get_path("scripts")) / "bsecrets"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("bsecrets")
    if not found:
        raise BenchError("no 'bsecrets' console script; pip install -e . first")
    return found


def compile_tree(package: Path, env: dict[str, str] | None = None) -> None:
    """``python -m compileall -q`` the package, as an installed package is: where
    PYTHONDONTWRITEBYTECODE=1 is set, every sample would otherwise compile bsecrets.
    With ``env``, its PYTHONPYCACHEPREFIX (if any) is where the bytecode goes."""
    proc = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)],
        env=env, capture_output=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"compileall {package}: {proc.stdout.decode()[-400:]}")


def git_state(repo: Path) -> str:
    """The short commit of ``repo``, marked when bsecrets/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "bsecrets"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted changes in bsecrets/" if dirty else "")


# Variables of the calling shell that would change what bsecrets does.
SCRUBBED = (
    "BSECRETS_PROFILE", "BSECRETS_ENV", "BSECRETS_SESSION", "BSECRETS_PASSPHRASE",
    "BSECRETS_PASSPHRASE_FILE", "BSECRETS_DEBUG", "BSECRETS_INSECURE_TEST_KDF",
    "BSECRETS_AS", "BSECRETS_OTP", "BSECRETS_REASON", "BSECRETS_NEW_PASSPHRASE",
    "PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME",
    "PYTHONSTARTUP", "PYTHONINSPECT", "NO_COLOR",
    "GITHUB_ACTIONS", "GITLAB_CI", "CI",  # CI changes what commands print (masking)
)  # fmt: skip


def base_env(work: Path, bytecode: str) -> dict[str, str]:
    """The calling environment minus SCRUBBED, with HOME and the XDG folders inside
    ``work``. ``bytecode`` "warm": bytecode cached in a private PYTHONPYCACHEPREFIX;
    "as-is": the calling shell's PYTHONDONTWRITEBYTECODE."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    home = work / "home"
    env.update({
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    })  # fmt: skip
    if bytecode == "warm":
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    elif os.environ.get("PYTHONDONTWRITEBYTECODE"):
        env["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
    for folder in ("run", ".cache", ".config"):
        (home / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
    return env


SOURCE_SCRUBBED_PREFIXES = ("BSECRETS_", "GITHUB_", "GITLAB_", "PYTHONDONTWRITEBYTECODE", "CI")


def source_env(work: Path, root: Path) -> dict[str, str]:
    """The environment of a ``python -m bsecrets`` child for the source tree at ``root``,
    at home in ``work`` (its runtime folder made), the test KDF and a passphrase set
    for building; :func:`session_env` replaces them by a session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SOURCE_SCRUBBED_PREFIXES)}
    env.update(
        HOME=str(work), XDG_CACHE_HOME=str(work / "cache"), XDG_CONFIG_HOME=str(work / "cfg"),
        XDG_RUNTIME_DIR=str(work / "run"), PYTHONPATH=str(root), NO_COLOR="1",
        BSECRETS_PASSPHRASE="bench passphrase", BSECRETS_INSECURE_TEST_KDF="1",
    )  # fmt: skip
    (work / "run").mkdir(mode=0o700, exist_ok=True)
    return env


def fill_environment(
    env: dict[str, str], work: Path, names: str, count: int, target: str = "dev"
) -> None:
    """``count`` random secrets named ``names.format(i=i)`` in environment ``target``,
    through the façade in one transaction (as ``import`` writes them), in a child process."""
    script = (
        "import os\n"
        "from pathlib import Path\n"
        "from bsecrets.vaultfile.credentials import Credentials\n"
        "from bsecrets.services.manager import SecretsManager\n"
        "from bsecrets.config.loader import load_profile\n"
        "m = SecretsManager(load_profile(Path('bsecrets.yaml')),"
        " Credentials(passphrase=os.environ['BSECRETS_PASSPHRASE']))\n"
        f"names = [{names!r}.format(i=i) for i in range({count})]\n"
        f"with m.transaction({target!r}, action='import', names=names):\n"
        "    for name in names:\n"
        f"        m.put({target!r}, name, os.urandom(24).hex().encode())\n"
        "m.close()\n"
    )
    call([sys.executable, "-c", script], env, work)


def session_env(env: dict[str, str], work: Path) -> dict[str, str]:
    """``env`` unlocked: BSECRETS_SESSION, and no passphrase nor test KDF left."""
    import json

    unlock = call([sys.executable, "-m", "bsecrets", "unlock", "--json"], env, work)
    out = {k: v for k, v in env.items() if k not in ("BSECRETS_PASSPHRASE",)}
    out.pop("BSECRETS_INSECURE_TEST_KDF", None)
    out["BSECRETS_SESSION"] = json.loads(unlock)["session"]
    return out


@contextlib.contextmanager
def home_environ(env: dict[str, str]) -> Iterator[None]:
    """HOME, XDG_RUNTIME_DIR and XDG_CACHE_HOME of ``env`` in this process's
    os.environ while bsecrets runs in-process (sessions and the profile cache go
    where the CLI runs will find them); the old values afterwards."""
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME")}
    os.environ.update({k: env[k] for k in saved})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- tables -----------------------------------------------------------------------


@dataclass
class Row:
    """One line of the targets table."""

    target: str
    baseline: float | None
    subject: float | None
    limit: str
    ok: bool | None  # None: information only
    ratio: float | None = None
    cpu_ratio: float | None = None
    paired_ratio: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "baseline_median_s": self.baseline,
            "subject_median_s": self.subject, "ratio": self.ratio,
            "paired_ratio": self.paired_ratio, "cpu_ratio": self.cpu_ratio,
            "limit": self.limit, "result": self.result, "note": self.note,
        }  # fmt: skip

    @property
    def result(self) -> str:
        return verdict(self.ok)


def ratio_row(target: str, pair: Pair) -> Row:
    """Judged on the paired ratio; the ratio of the medians is shown beside it."""
    assert pair.limit is not None, f"{pair.label} is not judged"
    judged = pair.paired_ratio
    row = Row(
        target, statistics.median(pair.base_wall), statistics.median(pair.subj_wall),
        f"<= {pair.limit:.2f}x", judged <= pair.limit, pair.ratio, pair.cpu_ratio, judged,
    )  # fmt: skip
    if (pair.ratio <= pair.limit) != row.ok:
        row.note = "noisy: the ratio of the medians disagrees"
    return row


def print_table(rows: list[Row]) -> None:
    print(
        f"\n{'target':<52} {'baseline':>10} {'subject':>10} {'ratio':>7} {'of med':>7} "
        f"{'cpu':>6} {'limit':>10}  result"
    )
    for r in rows:
        base = ms(r.baseline) if r.baseline is not None else "-"
        subj = ms(r.subject) if r.subject is not None else "-"
        paired = f"{r.paired_ratio:.3f}x" if r.paired_ratio is not None else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        cpu = f"{r.cpu_ratio:.2f}x" if r.cpu_ratio is not None else "-"
        print(
            f"{r.target:<52} {base:>10} {subj:>10} {paired:>7} {ratio:>7} {cpu:>6} "
            f"{r.limit:>10}  {r.result}" + (f"  {r.note}" if r.note else "")
        )
    print(
        "  baseline/subject: medians of the pair's wall times; ratio (judged): median of the "
        "back-to-back\n  subject/baseline ratios; of med: subject median / baseline median; "
        "cpu: the same on the child's CPU time"
    )


def raw_line(case: Case, indent: int, width: int) -> str:
    """n, min, median, p90, max and CPU median of one case's samples (the columns of
    ``raw_header``)."""
    w = case.wall
    return (
        f"{' ' * indent}{case.label:<{width}} {len(w):>3} {ms(min(w)):>10} "
        f"{ms(statistics.median(w)):>10} {ms(quantile(w, 0.9)):>10} {ms(max(w)):>10} "
        f"{ms(statistics.median(case.cpu)):>10}"
    )


def raw_header(title: str) -> str:
    """``title`` then the column names of ``raw_line``."""
    return f"{title} {'n':>3} {'min':>10} {'median':>10} {'p90':>10} {'max':>10} {'cpu med':>10}"
