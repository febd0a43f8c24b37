"""Diagnostics of bench_local.py: which modules a command loads (judged against an
allow-list: target 1 of bench/README.md), and where the time of a fresh process
goes (``-X importtime`` by package, cProfile). Each runs the command as a fresh
process of this interpreter."""

from __future__ import annotations

import importlib.metadata as metadata
import io
import json
import pstats
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import BenchError, Case

# Top-level import names that must never load on the get path.
FLAGGED = (
    "rich", "keyring", "hvac", "boto3", "botocore", "pydantic", "pydantic_core", "platformdirs",
)  # fmt: skip
# Distributions the get path may load, with their own (non-extra) requirements.
ALLOWED_ROOTS = ("typer", "click", "cryptography", "PyYAML")

# Runs a console script or ``-m`` module in this interpreter and records which
# modules it loaded beyond those present at interpreter start.
MODULES_WRAPPER = r"""
import sys
_before = set(sys.modules)
_mode, _target, _out, _args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
import atexit, runpy

def _report():  # at exit: bsecrets ends in os._exit after the exit handlers
    import json
    _new = {n: getattr(sys.modules.get(n), "__file__", None) for n in set(sys.modules) - _before}
    with open(_out, "w") as fh:
        json.dump({"startup": sorted(_before), "new": _new}, fh)

atexit.register(_report)
sys.argv = [_target, *_args]
if _mode == "module":
    runpy.run_module(_target, run_name="__main__", alter_sys=True)
else:
    runpy.run_path(_target, run_name="__main__")
"""


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
    """The modules ``target ARGS`` loads beyond those at interpreter start, grouped and
    judged by classify_modules (its "ok"). ``mode`` "path": ``target`` is a script
    file (the console script); "module": it is run as ``python -m target``."""
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


def bsecrets_pyc_in_tree() -> bool:
    """Whether the installed bsecrets has bytecode beside its sources (an editable
    install run with PYTHONDONTWRITEBYTECODE=1 has none, and compiles every run)."""
    import importlib.util

    spec = importlib.util.find_spec("bsecrets")
    if spec is None or not spec.submodule_search_locations:
        return False
    cli = Path(next(iter(spec.submodule_search_locations))) / "cli" / "__pycache__"
    return any(cli.glob("app.*.pyc"))


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


def get_path_imports(
    script: str, args: list[str], env: dict[str, str], cwd: Path, tmp: Path
) -> dict[str, dict[str, Any]]:
    """What ``bsecrets ARGS`` loads, as the console script and as ``python -m bsecrets``."""
    return {
        "console script": check_imports("path", script, args, env, cwd, tmp),
        "python -m": check_imports("module", "bsecrets", args, env, cwd, tmp),
    }


def print_get_path_imports(imports: dict[str, dict[str, Any]]) -> None:
    print("\nimports on the get path (sys.modules after the run, minus interpreter start):")
    for label, result in imports.items():
        print_imports(label, result)
    start_mods = imports["console script"]["at_interpreter_start"]
    if start_mods:
        print(
            f"  already loaded at interpreter start by site-packages .pth hooks, in the floor "
            f"too, not counted: {', '.join(start_mods)}"
        )


def where_time_goes(
    floor: Case,
    get: Case,
    ls: Case,
    tmp: Path,
    *,
    profile_get: bool,
    profile_ls: bool,
    ls_secrets: int,
) -> dict[str, Any]:
    """Print (and return) -X importtime of the floor (``python -c CODE``) and of ``get``,
    and cProfile summaries of ``get`` and ``ls`` when asked."""
    print("\nwhere the time goes:")
    bd_floor = import_breakdown(floor.cmd[1:], floor.env, floor.cwd, 5)
    print_breakdown("floor", bd_floor)
    bd_get = import_breakdown(get.cmd, get.env, get.cwd, 5)
    print_breakdown("get (console script)", bd_get)
    found: dict[str, Any] = {"importtime_floor": bd_floor, "importtime_get": bd_get}
    if profile_get:
        top = cprofile_top(get.cmd, get.env, get.cwd, tmp, "cumulative")
        print("  cProfile of get (console script), by cumulative time:\n" + top)
        found["cprofile_get"] = top
    if profile_ls:
        top = cprofile_top(ls.cmd, ls.env, ls.cwd, tmp, "tottime")
        print(f"  cProfile of ls ({ls_secrets:,} secrets), by own time:\n" + top)
        found["cprofile_ls"] = top
    return found
