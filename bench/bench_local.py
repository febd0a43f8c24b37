#!/usr/bin/env python3
"""Benchmarks of bsecrets' everyday commands on the local vault (see bench/README.md).

Targets, each measured as fresh processes, interleaved with its baseline in
the same run (the machine is shared and noisy), judged on medians:

1. ``bsecrets get NAME`` on an unlocked vault (BSECRETS_SESSION, no passphrase)
   within 2.5x of the floor ``python -c "import sqlite3; from
   cryptography.hazmat.primitives.ciphers.aead import AESGCM"``, for the
   console script and for ``python -m bsecrets``; and the modules that path
   imports stay within typer (and its own dependencies), sqlite3,
   cryptography, yaml and the standard library.
2. ``get`` with 10,000 secrets in the environment within 1.2x of ``get`` with 10.
3. ``bsecrets ls`` of 10,000 secrets under 1 s.

Usage: python bench/bench_local.py [--runs N] [--json FILE] [--workdir DIR]
Exit status: 0 all targets pass, 1 a target fails, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata as metadata
import io
import json
import os
import platform
import pstats
import random
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLOOR_CODE = "import sqlite3; from cryptography.hazmat.primitives.ciphers.aead import AESGCM"
GET_RATIO_LIMIT = 2.5
SCALE_RATIO_LIMIT = 1.2
LS_LIMIT_S = 1.0
SMALL = 10
ENV = "dev"
# Top-level import names that must never load on the get path.
FLAGGED = (
    "rich", "keyring", "hvac", "boto3", "botocore", "pydantic", "pydantic_core", "platformdirs",
)  # fmt: skip
# Distributions the get path may load, with their own (non-extra) requirements.
ALLOWED_ROOTS = ("typer", "click", "cryptography", "PyYAML")
# Variables of the calling shell that would change what bsecrets does.
SCRUBBED = (
    "BSECRETS_PROFILE", "BSECRETS_ENV", "BSECRETS_SESSION", "BSECRETS_PASSPHRASE",
    "BSECRETS_PASSPHRASE_FILE", "BSECRETS_DEBUG", "BSECRETS_INSECURE_TEST_KDF",
    "PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME",
    "PYTHONSTARTUP", "PYTHONINSPECT", "NO_COLOR",
    "GITHUB_ACTIONS", "GITLAB_CI", "CI",  # CI changes what commands print (masking)
)  # fmt: skip

# Runs a console script or ``-m`` module in this interpreter and records which
# modules it loaded beyond those present at interpreter start.
MODULES_WRAPPER = r"""
import sys
_before = set(sys.modules)
_mode, _target, _out, _args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
import runpy
_code = 0
try:
    sys.argv = [_target, *_args]
    if _mode == "module":
        runpy.run_module(_target, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(_target, run_name="__main__")
except SystemExit as exc:
    _code = exc.code
finally:
    import json
    _new = {n: getattr(sys.modules.get(n), "__file__", None) for n in set(sys.modules) - _before}
    with open(_out, "w") as fh:
        json.dump({"startup": sorted(_before), "new": _new}, fh)
sys.exit(_code)
"""


class BenchError(Exception):
    """The benchmark itself could not run (exit 2)."""


# --- statistics ---------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


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
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def wants_more(self, runs: int) -> bool:
        if len(self.wall) >= runs:
            return False
        return len(self.wall) < self.min_runs or sum(self.wall) < self.budget_s

    def run(self, *, capture: bool = False) -> tuple[float, float, bytes]:
        """One fresh process: (wall s, CPU s of the child, stdout if captured)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            self.cmd, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=subprocess.PIPE,
            check=False,
        )  # fmt: skip
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")[-800:]
            raise BenchError(f"{self.label}: exit {proc.returncode}: {err}")
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        if not capture:
            self.wall.append(wall)
            self.cpu.append(cpu)
        return wall, cpu, proc.stdout or b""

    def warm_up(self, times: int) -> None:
        out = b""
        for _ in range(times):
            out = self.run(capture=True)[2]
        if self.expect is not None and out != self.expect:
            raise BenchError(f"{self.label}: printed {out[:80]!r}, expected {self.expect[:80]!r}")
        lines = out.count(b"\n")
        if self.expect_lines is not None and lines != self.expect_lines:
            raise BenchError(f"{self.label}: printed {lines} lines, expected {self.expect_lines}")

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
    each sample of the subject has a baseline sample taken under the same load."""

    label: str
    base: Case
    subj: Case
    limit: float
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
        """The judged figure: the median of the back-to-back ratios, which cancels load
        that drifts between rounds (the ratio of the medians does not)."""
        return statistics.median(s / b for s, b in zip(self.subj_wall, self.base_wall, strict=True))

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


def measure(pairs: list[Pair], singles: list[Case], runs: int, seed: int) -> None:
    """Rounds: each runs every pair and single that still wants samples, in a shuffled
    order, so that all commands see the same background load over the run."""
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


# --- the vaults ---------------------------------------------------------------


def secret_name(i: int) -> str:
    return f"app/key_{i:05d}"


def secret_value(i: int) -> bytes:
    return f"value-{i:05d}-0123456789abcdef0123456789abcdef".encode()


def build_vault(
    script: str, folder: Path, count: int, passphrase: str, env: dict[str, str]
) -> dict[str, Any]:
    """``bsecrets init`` (real Argon2id), then ``count`` puts in-process through the core."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    start = time.perf_counter()
    call([script, "init"], {**env, "BSECRETS_PASSPHRASE": passphrase}, folder)
    init_s = time.perf_counter() - start

    from bsecrets.config.loader import load_profile
    from bsecrets.services.manager import SecretsManager
    from bsecrets.vaultfile.unlock import Credentials

    chunk = 1000
    chunks: list[tuple[int, float]] = []  # (puts, seconds) per chunk of names
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME")}
    os.environ.update({k: env[k] for k in saved})
    try:
        start = time.perf_counter()
        manager = SecretsManager(
            load_profile(folder / "bsecrets.yaml"), Credentials(passphrase=passphrase)
        )
        manager.put(ENV, secret_name(0), secret_value(0))  # opens the vault: one Argon2id
        first_s = time.perf_counter() - start
        mark, puts = time.perf_counter(), 0
        for i in range(1, count):
            manager.put(ENV, secret_name(i), secret_value(i))
            puts += 1
            if (i + 1) % chunk == 0 or i + 1 == count:
                now = time.perf_counter()
                chunks.append((puts, now - mark))
                mark, puts = now, 0
                if count > chunk:
                    rate = chunks[-1][0] / chunks[-1][1]
                    print(
                        f"  built {i + 1:>6,}/{count:,} secrets  ({rate:6.0f} puts/s now)",
                        file=sys.stderr,
                        flush=True,
                    )
        manager.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {
        "secrets": count,
        "init_s": init_s,
        "first_put_s": first_s,  # includes opening the vault and Argon2id
        "puts_s": sum(s for _n, s in chunks),
        "chunks": [{"puts": n, "seconds": round(s, 4)} for n, s in chunks],
        "puts_per_s_first_chunk": chunks[0][0] / chunks[0][1] if chunks else None,
        "puts_per_s_last_chunk": chunks[-1][0] / chunks[-1][1] if chunks else None,
    }


def unlock(script: str, folder: Path, passphrase: str, env: dict[str, str]) -> str:
    out = call([script, "unlock"], {**env, "BSECRETS_PASSPHRASE": passphrase}, folder)
    match = re.search(r"BSECRETS_SESSION=(\S+)", out)
    if not match:
        raise BenchError(f"'bsecrets unlock' printed no session token: {out[:200]!r}")
    return match.group(1)


# --- imports --------------------------------------------------------------------


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def allowed_distributions() -> set[str]:
    """ALLOWED_ROOTS and their non-extra requirements, transitively; never a FLAGGED one."""
    flagged = {_norm(f) for f in FLAGGED}
    seen: set[str] = set()
    todo = list(ALLOWED_ROOTS)
    while todo:
        dist = _norm(todo.pop())
        if dist in seen or dist in flagged:
            continue
        seen.add(dist)
        try:
            requires = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra" in req.partition(";")[2]:
                continue
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
            if match:
                todo.append(match.group(0))
    return seen


def classify_modules(new: dict[str, str | None]) -> dict[str, Any]:
    """Group the modules a run loaded by top-level package and judge them."""
    to_dists = metadata.packages_distributions()
    allowed = allowed_distributions()
    groups: dict[str, list[str]] = {}
    for name in new:
        groups.setdefault(name.split(".")[0], []).append(name)
    out: dict[str, Any] = {
        "stdlib": [], "own": [], "allowed": {}, "flagged": [], "unexpected": [],
        "extension_internals": [], "total": len(new),
    }  # fmt: skip
    for top, names in sorted(groups.items()):
        dists = [_norm(d) for d in to_dists.get(top, [])]
        if top in sys.stdlib_module_names:
            out["stdlib"].append(top)
        elif top == "bsecrets":
            out["own"] = sorted(names)
        elif top in FLAGGED or any(d in {_norm(f) for f in FLAGGED} for d in dists):
            out["flagged"].append(top)
        elif dists and any(d in allowed for d in dists):
            out["allowed"][top] = {"dists": dists, "modules": len(names)}
        elif not dists and all(new[n] is None for n in names):
            # made in memory by an extension module (cffi's _openssl, Cython's runtime)
            out["extension_internals"].append(top)
        else:
            out["unexpected"].append(f"{top} ({', '.join(dists) or new[names[0]]})")
    out["ok"] = not out["flagged"] and not out["unexpected"]
    return out


def check_imports(
    mode: str, target: str, args: list[str], env: dict[str, str], cwd: Path, tmp: Path
) -> dict[str, Any]:
    out_file = tmp / f"modules-{mode}.json"
    proc = subprocess.run(
        [sys.executable, "-c", MODULES_WRAPPER, mode, target, str(out_file), *args],
        env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"module dump ({mode}) failed: {proc.stderr.decode()[-800:]}")
    data = json.loads(out_file.read_text())
    result = classify_modules(data["new"])
    startup = sorted({n.split(".")[0] for n in data["startup"]} - set(sys.stdlib_module_names))
    result["at_interpreter_start"] = [n for n in startup if n not in ("__main__",)]
    result["modules"] = sorted(data["new"])
    return result


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def parse_importtime(text: str) -> tuple[dict[str, tuple[int, int]], int]:
    """{module: (self us, cumulative us)} of the imports after interpreter start
    (everything up to the top-level 'site' entry is start-up), and the start-up us."""
    entries = []
    for line in text.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            depth = len(match.group(3)) // 2
            entries.append((match.group(4), int(match.group(1)), int(match.group(2)), depth))
    cut = 0
    for i, (name, _self, _cum, depth) in enumerate(entries):
        if depth == 0 and name == "site":
            cut = i + 1
    startup_us = sum(cum for name, _s, cum, depth in entries[:cut] if depth == 0)
    program = {name: (self_us, cum) for name, self_us, cum, _d in entries[cut:]}
    return program, startup_us


def import_group(name: str, to_dists: dict[str, list[str]]) -> str:
    top = name.split(".")[0]
    if top == "bsecrets":
        return "bsecrets"
    if top in ("sqlite3", "_sqlite3"):
        return "sqlite3"
    if top in sys.stdlib_module_names:
        return "stdlib (other)"
    if top in FLAGGED:
        return f"FLAGGED {top}"
    dists = [_norm(d) for d in to_dists.get(top, [])]
    if "cryptography" in dists or "cffi" in dists or top == "_openssl":
        return "cryptography"
    if "pyyaml" in dists:
        return "yaml"
    if {"typer", "click", "annotated-doc", "shellingham", "typing-extensions"} & set(dists):
        return "typer (+deps)"
    return f"other {top}"


def import_breakdown(cmd: list[str], env: dict[str, str], cwd: Path, runs: int) -> dict[str, Any]:
    """Median self time per group and the slowest imports, from -X importtime."""
    per_module: dict[str, list[tuple[int, int]]] = {}
    totals: list[int] = []
    startups: list[int] = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", *cmd], env=env, cwd=cwd,
            stdin=subprocess.DEVNULL, capture_output=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise BenchError(f"-X importtime {cmd[-2:]}: {proc.stderr.decode()[-800:]}")
        program, startup = parse_importtime(proc.stderr.decode(errors="replace"))
        startups.append(startup)
        totals.append(sum(s for s, _c in program.values()))
        for name, pair in program.items():
            per_module.setdefault(name, []).append(pair)
    to_dists = metadata.packages_distributions()
    groups: dict[str, float] = {}
    medians = {}
    for name, pairs in per_module.items():
        self_us = statistics.median(p[0] for p in pairs)
        cum_us = statistics.median(p[1] for p in pairs)
        medians[name] = (self_us, cum_us)
        group = import_group(name, to_dists)
        groups[group] = groups.get(group, 0.0) + self_us
    top = sorted(medians.items(), key=lambda kv: kv[1][1], reverse=True)[:15]
    return {
        "runs": runs,
        "startup_ms": statistics.median(startups) / 1000,
        "imports_ms": statistics.median(totals) / 1000,
        "groups_ms": {
            g: round(us / 1000, 2) for g, us in sorted(groups.items(), key=lambda kv: -kv[1])
        },
        "slowest": [
            {"module": n, "self_ms": round(s / 1000, 2), "cumulative_ms": round(c / 1000, 2)}
            for n, (s, c) in top
        ],
    }


def cprofile_top(cmd: list[str], env: dict[str, str], cwd: Path, tmp: Path, sort: str) -> str:
    out = tmp / "profile.out"
    proc = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), *cmd], env=env, cwd=cwd,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return f"(cProfile failed: {proc.stderr.decode()[-300:]})"
    stream = io.StringIO()
    stats = pstats.Stats(str(out), stream=stream)
    stats.strip_dirs().sort_stats(sort).print_stats(80)
    lines = stream.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    summary = next((line.strip() for line in lines if "function calls" in line), "")
    noise = ("<frozen", "builtins.exec}", "(<module>)", "builtins.__import__}")
    body = [
        line for line in lines[start + 1 :] if line.strip() and not any(n in line for n in noise)
    ][:14]
    return "\n".join("    " + line for line in [summary, lines[start], *body])


# --- environment ------------------------------------------------------------------


def console_script(explicit: str | None) -> str:
    if explicit:
        return explicit
    candidate = Path(sysconfig.get_path("scripts")) / "bsecrets"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("bsecrets")
    if not found:
        raise BenchError("no 'bsecrets' console script; pip install -e . first")
    return found


def bsecrets_pyc_in_tree() -> bool:
    """Whether the installed bsecrets has bytecode beside its sources (an editable
    install run with PYTHONDONTWRITEBYTECODE=1 has none, and compiles every run)."""
    import importlib.util

    spec = importlib.util.find_spec("bsecrets")
    if spec is None or not spec.submodule_search_locations:
        return False
    cli = Path(next(iter(spec.submodule_search_locations))) / "cli" / "__pycache__"
    return any(cli.glob("app.*.pyc"))


def git_state(repo: Path) -> str:
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


def base_env(work: Path, bytecode: str) -> dict[str, str]:
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


# --- main ---------------------------------------------------------------------------


@dataclass
class Row:
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
        return "info" if self.ok is None else ("PASS" if self.ok else "FAIL")


def ratio_row(target: str, pair: Pair) -> Row:
    """Judged on the paired ratio; the ratio of the medians is shown beside it."""
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


def print_raw(cases: list[Case]) -> None:
    print(
        f"\nraw wall times (fresh processes){'':<14} {'n':>3} {'min':>10} {'median':>10} "
        f"{'p90':>10} {'max':>10} {'cpu med':>10}"
    )
    for c in cases:
        if not c.wall:
            continue
        print(
            f"  {c.label:<44} {len(c.wall):>3} {ms(min(c.wall)):>10} {ms(c.median):>10} "
            f"{ms(quantile(c.wall, 0.9)):>10} {ms(max(c.wall)):>10} {ms(c.cpu_median):>10}"
        )


def print_imports(label: str, result: dict[str, Any]) -> None:
    allowed = ", ".join(f"{k} ({v['modules']})" for k, v in result["allowed"].items())
    print(
        f"  {label}: {result['total']} modules loaded after interpreter start: "
        f"stdlib packages {len(result['stdlib'])}, bsecrets {len(result['own'])}; {allowed}"
    )
    if result["extension_internals"]:
        print(f"    made by extension modules: {', '.join(result['extension_internals'])}")
    print(
        f"    flagged: {', '.join(result['flagged']) or 'none'}; "
        f"unexpected: {', '.join(result['unexpected']) or 'none'}"
    )


def print_breakdown(label: str, bd: dict[str, Any]) -> None:
    print(
        f"  {label} (-X importtime, median of {bd['runs']}): interpreter start-up "
        f"{bd['startup_ms']:.1f} ms, then imports {bd['imports_ms']:.1f} ms"
    )
    print(
        "    self time by package: "
        + ", ".join(f"{g} {v:.1f}" for g, v in bd["groups_ms"].items() if v >= 0.5)
    )
    print("    slowest imports (cumulative / self ms):")
    for e in bd["slowest"][:12]:
        print(f"      {e['cumulative_ms']:7.1f} / {e['self_ms']:5.1f}  {e['module']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--runs",
        type=int,
        default=30,
        help="samples per command (default 30; slow commands stop at their budget)",
    )
    p.add_argument("--json", type=Path, help="write every figure and sample to this file")
    p.add_argument(
        "--secrets", type=int, default=10_000, help="secrets in the large vault (default 10000)"
    )
    p.add_argument(
        "--ls-budget",
        type=float,
        default=30.0,
        help="seconds of 'ls' runs before its sampling stops (min 5 runs; default 30)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        help="keep the vaults here and reuse them next time (default: a temp dir)",
    )
    p.add_argument("--script", help="the bsecrets console script (default: next to this python)")
    p.add_argument(
        "--bytecode",
        choices=("warm", "as-is"),
        default="warm",
        help="warm: cached .pyc for every module, as after a normal install "
        "(default); as-is: the calling environment's bytecode settings",
    )
    p.add_argument(
        "--no-diagnose", action="store_true", help="skip -X importtime and cProfile diagnostics"
    )
    p.add_argument(
        "--profile", action="store_true", help="print cProfile summaries even when the targets pass"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the run order shuffle")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be at least 3")
    if args.secrets <= SMALL:
        p.error(f"--secrets must be more than {SMALL}")
    return args


def prepare(
    work: Path, script: str, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    """The two vaults (reused from --workdir when they match), and a fresh session each."""
    state_file = work / "state.json"
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(state_file.read_text())
    want = {"small": SMALL, "large": args.secrets}
    if state.get("counts") != want or not all(
        (work / name / "bsecrets.yaml").exists() for name in want
    ):
        for name in want:
            shutil.rmtree(work / name, ignore_errors=True)
        passphrase = "bench-" + secrets.token_urlsafe(18)
        print(
            f"building the vaults in {work} (real Argon2id; {args.secrets:,} puts in-process)",
            file=sys.stderr,
            flush=True,
        )
        build = {
            name: build_vault(script, work / name, n, passphrase, env) for name, n in want.items()
        }
        state = {"counts": want, "passphrase": passphrase, "build": build, "reused": False}
        fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)
    else:
        state["reused"] = True
        print(f"reusing the vaults in {work}", file=sys.stderr, flush=True)
    state["tokens"] = {name: unlock(script, work / name, state["passphrase"], env) for name in want}
    return state


def run(args: argparse.Namespace, work: Path) -> int:
    script = console_script(args.script)
    env = base_env(work, args.bytecode)
    state = prepare(work, script, args, env)
    py = sys.executable
    name = secret_name(SMALL // 2)
    expect = secret_value(SMALL // 2) + b"\n"

    def session_env(vault: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**env, "BSECRETS_SESSION": state["tokens"][vault], **(extra or {})}

    small_env, large_env = session_env("small"), session_env("large")
    small, large = work / "small", work / "large"
    floor = Case(
        "floor", "floor: python -c 'import sqlite3; ...AESGCM'", [py, "-c", FLOOR_CODE], env, work
    )
    get_s = Case(
        "get10_script",
        f"get, {SMALL} secrets, console script",
        [script, "get", name],
        small_env,
        small,
        expect,
    )
    get_m = Case(
        "get10_module",
        f"get, {SMALL} secrets, python -m bsecrets",
        [py, "-m", "bsecrets", "get", name],
        small_env,
        small,
        expect,
    )
    big_s = Case(
        "getN_script",
        f"get, {args.secrets:,} secrets, console script",
        [script, "get", name],
        large_env,
        large,
        expect,
    )
    big_m = Case(
        "getN_module",
        f"get, {args.secrets:,} secrets, python -m bsecrets",
        [py, "-m", "bsecrets", "get", name],
        large_env,
        large,
        expect,
    )
    ls_n = Case(
        "lsN_script",
        f"ls, {args.secrets:,} secrets, console script",
        [script, "ls"],
        large_env,
        large,
        expect_lines=args.secrets + 1,
        budget_s=args.ls_budget,
    )
    cases = [floor, get_s, get_m, big_s, big_m, ls_n]
    pairs = [
        Pair("1 get vs floor, console script", floor, get_s, GET_RATIO_LIMIT),
        Pair("1 get vs floor, python -m bsecrets", floor, get_m, GET_RATIO_LIMIT),
        Pair(f"2 get {args.secrets:,} vs {SMALL} secrets, console script", get_s, big_s,
             SCALE_RATIO_LIMIT),
        Pair(f"2 get {args.secrets:,} vs {SMALL} secrets, python -m", get_m, big_m,
             SCALE_RATIO_LIMIT),
    ]  # fmt: skip
    in_tree = "yes" if bsecrets_pyc_in_tree() else "no"
    info: Pair | None = None
    if args.bytecode == "warm" and os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # What this shell gets: no .pyc written, so an editable bsecrets without
        # __pycache__ folders is compiled from source on every run.
        as_is = {k: v for k, v in small_env.items() if k != "PYTHONPYCACHEPREFIX"}
        as_is["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
        floor_asis = Case(
            "floor_asis", "floor, no .pyc writes (this shell)", [py, "-c", FLOOR_CODE], as_is, work
        )
        get_asis = Case(
            "get10_script_asis",
            f"get, {SMALL} secrets, script, no .pyc writes",
            [script, "get", name],
            as_is,
            small,
            expect,
        )
        cases += [floor_asis, get_asis]
        info = Pair(
            f"i get vs floor, this shell's env (.pyc in tree: {in_tree})",
            floor_asis,
            get_asis,
            GET_RATIO_LIMIT,
        )
        pairs.append(info)  # fmt: skip

    print(
        "warming up (bytecode cache, profile cache, page cache) and checking outputs",
        file=sys.stderr,
        flush=True,
    )
    for case in cases:
        case.warm_up(1 if case is ls_n else 2)
    print(f"measuring: up to {args.runs} interleaved rounds", file=sys.stderr, flush=True)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    measure(pairs, [ls_n], args.runs, args.seed)
    measure_s, load_after = time.perf_counter() - started, os.getloadavg()[0]

    tmp = work / "diag"
    tmp.mkdir(exist_ok=True)
    imports = {
        "console script": check_imports("path", script, ["get", name], small_env, small, tmp),
        "python -m": check_imports("module", "bsecrets", ["get", name], small_env, small, tmp),
    }
    imports_ok = all(r["ok"] for r in imports.values())

    rows = [ratio_row(p.label, p) for p in pairs[:2]]
    rows.append(
        Row("1 get imports: typer/sqlite3/cryptography/yaml", None, None, "allow-list",
            imports_ok, note="" if imports_ok else "see the import list below")
    )  # fmt: skip
    rows += [ratio_row(p.label, p) for p in pairs[2:4]]
    rows.append(
        Row(f"3 ls {args.secrets:,} secrets, console script", floor.median, ls_n.median,
            f"< {LS_LIMIT_S:.3f} s", ls_n.median < LS_LIMIT_S,
            note=f"max {ms(max(ls_n.wall))}, n={len(ls_n.wall)}")
    )  # fmt: skip
    if info is not None:
        row = ratio_row(info.label, info)
        row.ok, row.limit, row.note = None, "-", ""
        rows.append(row)

    build = state["build"]["large"]
    print(
        f"\nbsecrets local benchmarks: python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (shared), load {load_before:.2f} -> {load_after:.2f}, "
        f"bsecrets {git_state(Path(__file__).resolve().parents[1])}"
    )
    print(
        f"script {script}; bytecode {args.bytecode}; {args.runs} rounds in "
        f"{measure_s:.0f} s; run order shuffled (seed {args.seed})"
    )
    if max(load_before, load_after) > (os.cpu_count() or 1):
        print("note: more runnable tasks than CPUs; wall times are inflated, ratios less so")
    if state.get("reused"):
        print(f"vaults reused from {work} (built earlier: {build['puts_s']:.1f} s of puts)")
    else:
        print(
            f"setup: init {build['init_s']:.2f} s (Argon2id), {args.secrets:,} puts "
            f"{build['puts_s']:.1f} s in-process ({build['puts_per_s_first_chunk']:.0f} puts/s "
            f"for the first 1,000, {build['puts_per_s_last_chunk']:.0f} for the last)"
        )
    print_table(rows)
    print_raw(cases)
    print("\nimports on the get path (sys.modules after the run, minus interpreter start):")
    for label, result in imports.items():
        print_imports(label, result)
    start_mods = imports["console script"]["at_interpreter_start"]
    if start_mods:
        print(
            f"  already loaded at interpreter start by site-packages .pth hooks, in the floor "
            f"too, not counted: {', '.join(start_mods)}"
        )

    diagnostics: dict[str, Any] = {}
    failed = [r for r in rows if r.ok is False]
    if not args.no_diagnose:
        print("\nwhere the time goes:")
        bd_floor = import_breakdown(["-c", FLOOR_CODE], env, work, 5)
        print_breakdown("floor", bd_floor)
        bd_get = import_breakdown([script, "get", name], small_env, small, 5)
        print_breakdown("get (console script)", bd_get)
        diagnostics = {"importtime_floor": bd_floor, "importtime_get": bd_get}
        if args.profile or any(r.target.startswith(("1", "2")) for r in failed):
            top = cprofile_top([script, "get", name], small_env, small, tmp, "cumulative")
            print("  cProfile of get (console script), by cumulative time:\n" + top)
            diagnostics["cprofile_get"] = top
        if args.profile or any(r.target.startswith("3") for r in failed):
            top = cprofile_top([script, "ls"], large_env, large, tmp, "tottime")
            print(f"  cProfile of ls ({args.secrets:,} secrets), by own time:\n" + top)
            diagnostics["cprofile_ls"] = top

    print("\n" + ("FAIL: " + "; ".join(r.target for r in failed) if failed else "all targets pass"))
    if args.json:
        report = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "platform": platform.platform(), "loadavg": os.getloadavg(),
                        "load_during": [load_before, load_after]},
            "bsecrets": git_state(Path(__file__).resolve().parents[1]),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "script": script,
            "setup": {k: v for k, v in state.items() if k not in ("passphrase", "tokens")},
            "rows": [r.as_dict() for r in rows],
            "cases": {c.key: c.summary() for c in cases},
            "pairs": [p.summary() for p in pairs],
            "imports": imports,
            "diagnostics": diagnostics,
            "passed": not failed,
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.workdir:
            args.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return run(args, args.workdir.resolve())
        with tempfile.TemporaryDirectory(prefix="bsecrets-bench-") as tmp:
            return run(args, Path(tmp))
    except BenchError as exc:
        print(f"bench error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
