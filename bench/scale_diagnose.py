"""``bench_scale.py --diagnose``: where the time goes, every command run by the venv's
Python as a fresh process.

- ``-X importtime`` of ``get`` and of the floor (median of 5): interpreter start-up,
  then each import's own time charged to whoever asked for it (the nearest importer
  that is not the standard library: a module pulled in by typer counts for typer),
  and the slowest modules by cumulative time;
- cProfile, the top 15 functions by cumulative time (click/typer dispatch, runpy and
  import machinery left out) and the top 8 by own time, of ``get`` at 10 and at N
  secrets, ``export``, ``ls`` and ``audit verify`` at N (not ``exec``: it replaces its
  process by the command, so cProfile writes nothing), and an ``import``
  of --diag-import new lines into a copy of the large vault (what each put costs at N
  secrets);
- the SQL those commands run (every statement through ``sqlite3.Connection.execute``,
  recorded by a wrapper) with its ``EXPLAIN QUERY PLAN`` and, for a SELECT, its time
  and rows at N secrets, each plan classified (index / SCAN stopped by LIMIT / SCAN
  of the whole table by design / FULL SCAN where an index is expected).

No value and no statement parameter is printed: only the SQL text, counts and plans.
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import BenchError, Case, call
from scale_setup import Setup, private_file, secret_value

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
TYPER = ("typer", "click", "shellingham", "annotated_doc", "typing_extensions")
NOISE = ("/click/", "/typer/", "runpy.py", "cProfile.py", "<frozen", "<string>")
NOISE_FUNCS = (
    "<module>",
    "<built-in method builtins.exec>",
    "<built-in method builtins.__import__>",
)

SQL_WRAPPER = r"""
import json, os, runpy, sqlite3, statistics, sys, time
from urllib.parse import quote
_out, _script, _args = sys.argv[1], sys.argv[2], sys.argv[3:]
_seen = {}
_connect = sqlite3.connect

def _recording(base):
    class Recording(base):
        def __init__(self, database, *args, **kwargs):
            self.bench_db = str(database)
            super().__init__(database, *args, **kwargs)

        def execute(self, sql, params=(), /):
            entry = _seen.setdefault(sql, {"calls": 0, "params": params,
                                           "db": getattr(self, "bench_db", None)})
            entry["calls"] += 1
            return super().execute(sql, params)
    return Recording

def _patched(database, *args, **kwargs):
    kwargs["factory"] = _recording(kwargs.get("factory") or sqlite3.Connection)
    return _connect(database, *args, **kwargs)

sqlite3.connect = _patched
_code = 0
_start = time.perf_counter()
_real_exit, _pid = os._exit, os.getpid()

def _report():
    _wall = time.perf_counter() - _start
    report, sizes = [], {}
    skip = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE", "CREATE")
    for sql, e in _seen.items():
        kind = sql.lstrip().split(None, 1)[0].upper()
        if kind in skip or not e["db"] or e["db"].startswith("file:"):
            continue
        item = {"sql": " ".join(sql.split()), "calls": e["calls"], "kind": kind}
        try:
            ro = _connect(f"file:{quote(e['db'])}?mode=ro", uri=True)
            if e["db"] not in sizes:
                sizes[e["db"]] = {t: ro.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                                  for (t,) in ro.execute(
                                      "SELECT name FROM sqlite_master WHERE type='table'")}
            item["plan"] = [r[3] for r in ro.execute("EXPLAIN QUERY PLAN " + sql, e["params"])]
            if kind in ("SELECT", "WITH"):
                times, deadline = [], time.perf_counter() + 2.0
                for _ in range(7):
                    t0 = time.perf_counter()
                    item["rows"] = len(ro.execute(sql, e["params"]).fetchall())
                    times.append(time.perf_counter() - t0)
                    if time.perf_counter() > deadline:
                        break
                item["us"] = statistics.median(times) * 1e6
            ro.close()
        except sqlite3.Error as exc:
            item["error"] = str(exc)
        report.append(item)
    with open(_out, "w") as fh:
        json.dump({"statements": report, "tables": sizes, "wall_s": _wall, "exit": _code}, fh)

def _exit(code):  # bsecrets ends in os._exit (cli/process_exit.py): report first
    global _code
    if os.getpid() == _pid:  # not verify's forked worker
        _code = code
        _report()
    _real_exit(code)

os._exit = _exit
try:
    sys.argv = [_script, *_args]
    runpy.run_path(_script, run_name="__main__")
except SystemExit as exc:
    _code = exc.code
    _report()
sys.exit(_code)
"""


# --- -X importtime ----------------------------------------------------------------


def _group(name: str) -> str:
    top = name.split(".")[0]
    if top == "bsecrets":
        return ".".join(name.split(".")[:2])
    if top in TYPER:
        return "typer+click (+deps)"
    if top in ("cryptography", "_cffi_backend", "cffi"):
        return "cryptography"
    if top in ("sqlite3", "_sqlite3"):
        return "sqlite3"
    if top in sys.stdlib_module_names:
        return "stdlib"
    return top


def _charged(entries: list[tuple[str, int, int, int]]) -> dict[str, float]:
    """Self time per group, each stdlib module charged to its nearest importer that is not
    the standard library. ``entries`` in -X importtime's order (a module after its
    children): the importer of an entry at depth d is the next entry at depth d-1."""
    out: dict[str, float] = {}
    for i, (name, self_us, _cum, depth) in enumerate(entries):
        group, j, d = _group(name), i, depth
        while group == "stdlib":
            j = next((k for k in range(j + 1, len(entries)) if entries[k][3] == d - 1), -1)
            if j < 0:
                break
            group, d = _group(entries[j][0]), d - 1
        out[group] = out.get(group, 0.0) + self_us / 1000
    return out


def importtime(python: str, case: Case, runs: int = 5, *, code: bool = False) -> dict[str, Any]:
    """Median start-up, import total, charged groups and slowest modules of ``case``
    (``code``: its command is ``python -c CODE``)."""
    startups, totals, groups, per_module = [], [], [], {}
    roots: set[str] = set()  # stdlib modules imported outside any other import (at run time)
    cmd = case.cmd[1:] if code else case.cmd
    for _ in range(runs):
        proc = subprocess.run(
            [python, "-X", "importtime", *cmd], env=case.env, cwd=case.cwd,
            input=(case.stdin or b"").decode(), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise BenchError(f"-X importtime {cmd[-2:]}: {proc.stderr[-600:]}")
        entries = [
            (m.group(4), int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2)
            for m in map(_IMPORT_LINE.match, proc.stderr.splitlines()) if m
        ]  # fmt: skip
        cut = max((i + 1 for i, e in enumerate(entries) if e[3] == 0 and e[0] == "site"), default=0)
        startups.append(sum(e[2] for e in entries[:cut] if e[3] == 0) / 1000)
        program = entries[cut:]
        totals.append(sum(e[1] for e in program) / 1000)
        groups.append(_charged(program))
        roots.update(n for n, _s, _c, d in program if d == 0 and _group(n) == "stdlib")
        for name, self_us, cum, _d in program:
            per_module.setdefault(name, []).append((self_us / 1000, cum / 1000))
    names = {g for run in groups for g in run}
    charged = {g: statistics.median(run.get(g, 0.0) for run in groups) for g in names}
    slowest = sorted(
        ((n, statistics.median(c for _s, c in v), statistics.median(s for s, _c in v))
         for n, v in per_module.items()), key=lambda x: -x[1],
    )[:15]  # fmt: skip
    return {
        "runs": runs, "startup_ms": statistics.median(startups),
        "imports_ms": statistics.median(totals),
        "modules": len(per_module),
        "charged_ms": dict(sorted(charged.items(), key=lambda kv: -kv[1])),
        "slowest": [{"module": n, "cumulative_ms": c, "self_ms": s} for n, c, s in slowest],
        "stdlib_roots": sorted(
            ((n, statistics.median(c for _s, c in per_module[n])) for n in roots),
            key=lambda x: -x[1],
        )[:8],
    }  # fmt: skip


def print_importtime(label: str, found: dict[str, Any], floor: dict[str, Any]) -> None:
    print(
        f"\n-X importtime of {label} (median of {found['runs']}): interpreter start-up "
        f"{found['startup_ms']:.1f} ms, then {found['modules']} modules imported in "
        f"{found['imports_ms']:.1f} ms (the floor: start-up {floor['startup_ms']:.1f} ms, "
        f"imports {floor['imports_ms']:.1f} ms)"
    )
    print("  import time charged to who asked for it (own time + the stdlib it pulled in), ms:")
    for group, value in found["charged_ms"].items():
        if value >= 0.3:
            print(f"    {value:7.1f}  {group}")
    roots = ", ".join(f"{n} {c:.1f}" for n, c in found["stdlib_roots"] if c >= 0.3)
    print(f"  ('stdlib': imported by no other module, at run time or by the script: {roots})")
    print("  slowest modules, cumulative / own ms:")
    for e in found["slowest"]:
        print(f"    {e['cumulative_ms']:7.1f} / {e['self_ms']:5.1f}  {e['module']}")


# --- cProfile ---------------------------------------------------------------------


def _where(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":
        return func
    parts = Path(file).parts
    if "site-packages" in parts:
        file = "/".join(parts[parts.index("site-packages") + 1 :])
    else:
        file = Path(file).name
    return f"{file}:{line}({func})"


def cprofile(
    python: str, cmd: list[str], env: dict[str, str], cwd: Path, out: Path
) -> dict[str, Any]:
    """The top 15 functions by cumulative time and top 8 by own time of one run of ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "cProfile", "-o", str(out), *cmd], env=env, cwd=cwd,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.exists():  # exec replaces its process: no profile
        raise BenchError(f"cProfile {cmd[1:3]}: no profile: {proc.stderr.decode()[-600:]}")
    stats = pstats.Stats(str(out), stream=io.StringIO()).stats  # type: ignore[attr-defined]
    rows = [
        {"where": _where(key), "calls": nc, "own_ms": tt * 1000, "cumulative_ms": ct * 1000,
         "noise": any(n in key[0] for n in NOISE) or key[2] in NOISE_FUNCS}
        for key, (_cc, nc, tt, ct, _callers) in stats.items()
    ]  # fmt: skip
    useful = [r for r in rows if not r["noise"]]
    return {
        "wall_s": wall,
        "all": [r for r in rows if r["calls"] >= 1000],
        "total_s": sum(r["own_ms"] for r in rows) / 1000,
        "by_cumulative": sorted(useful, key=lambda r: -r["cumulative_ms"])[:15],
        "by_own": sorted(rows, key=lambda r: -r["own_ms"])[:8],
    }


def print_cprofile(label: str, found: dict[str, Any]) -> None:
    print(f"\ncProfile of {label}: {found['wall_s']:.2f} s under the profiler")
    print("  top 15 by cumulative time (ms cumulative, ms own, calls):")
    for r in found["by_cumulative"]:
        print(f"    {r['cumulative_ms']:9.1f} {r['own_ms']:8.1f} {r['calls']:>8}  {r['where']}")
    print("  top 8 by own time:")
    for r in found["by_own"]:
        print(f"    {r['cumulative_ms']:9.1f} {r['own_ms']:8.1f} {r['calls']:>8}  {r['where']}")


# --- per-row costs -----------------------------------------------------------------

# The helpers ls and import call once or more per row, timed without a profiler (the
# profiler inflates small calls), beside what the same work costs done otherwise.
MICRO = r"""
import json, os, time
from bsecrets.crypto.keys import aead_open, aead_seal, encode_aad, sha256_digest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
import hashlib
key, vid, sid, lookup = os.urandom(32), os.urandom(16), os.urandom(16), os.urandom(32)
head = json.dumps({"name": "APP_KEY_000001", "current": 1, "created_at": "2026-12-01T00:00:00Z",
                   "updated_at": "2026-12-01T00:00:00Z", "tags": {}, "description": "",
                   "deleted_at": None}, sort_keys=True).encode()
blob, aes = aead_seal(key, head, b"aad"), AESGCM(key)
nonce, sealed = blob[:12], blob[12:]
def per_call(fn, n=20000):
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e6
print(json.dumps({
    "encode_aad": per_call(lambda: encode_aad(vid, "dev", "head", sid, lookup)),
    "aead_open": per_call(lambda: aead_open(key, blob, b"aad", "a head")),
    "AESGCM.decrypt, one object reused": per_call(lambda: aes.decrypt(nonce, sealed, b"aad")),
    "sha256_digest": per_call(lambda: sha256_digest(head)),
    "hashlib.sha256 (not used: a 2nd OpenSSL)": per_call(lambda: hashlib.sha256(head).digest()),
    "loads": per_call(lambda: json.loads(head)),
}))
"""


def per_row_costs(setup: Setup, profile: dict[str, Any]) -> dict[str, Any]:
    """Microseconds a call of each per-row helper (no profiler), and the seconds that
    makes at the number of calls ``profile`` (a cProfile summary) counted."""
    proc = subprocess.run(
        [setup.python, "-c", MICRO], env=setup.env, cwd=setup.work, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:  # a helper renamed: say so, do not stop the diagnosis
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
    costs: dict[str, float] = json.loads(proc.stdout)
    calls = {r["where"].rsplit("(", 1)[-1].rstrip(")"): r["calls"] for r in profile["all"]}
    return {
        name: {"us": us, "calls": calls.get(name), "s": us * calls[name] / 1e6 if name in calls
               else None}
        for name, us in costs.items()
    }  # fmt: skip


def print_per_row(label: str, found: dict[str, Any]) -> None:
    print(f"\nper-call costs without the profiler (best of 3 x 20,000), x the calls in {label}:")
    if "error" in found:
        print(f"  not measured: {found['error']}")
        return
    for name, c in found.items():
        tail = f" x {c['calls']:>8,} = {c['s']:6.2f} s" if c["calls"] else ""
        print(f"  {c['us']:7.2f} us  {name}{tail}")


# --- SQL and query plans --------------------------------------------------------------


def classify(item: dict[str, Any], sizes: dict[str, int]) -> str:
    """How a statement finds its rows, from its plan: a SCAN is a finding only over a table
    of 1,000 rows or more, with a WHERE clause and no LIMIT."""
    plan = " | ".join(item.get("plan", []))
    sql = item["sql"].upper()
    scanned = re.findall(r"\bSCAN (\w+)", plan)
    if not scanned:
        return "index" if "SEARCH" in plan else "-"
    if " LIMIT " in sql:
        return "SCAN stopped by LIMIT"
    if all(sizes.get(table, 0) < 1000 for table in scanned):
        return "SCAN of a small table"
    if " WHERE " not in sql:
        return "SCAN: the whole table, by design"
    return "FULL SCAN where an index is expected"


def sql_plans(
    python: str, script: str, args: list[str], env: dict[str, str], cwd: Path, out: Path
) -> dict[str, Any]:
    proc = subprocess.run(
        [python, "-c", SQL_WRAPPER, str(out), script, *args], env=env, cwd=cwd,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not out.exists():
        raise BenchError(f"SQL recording of {args[:2]}: {proc.stderr.decode()[-600:]}")
    found: dict[str, Any] = json.loads(out.read_text())
    sizes = next(iter(found["tables"].values()), {})
    for item in found["statements"]:
        item["class"] = classify(item, sizes)
    return found


def print_sql(label: str, found: dict[str, Any]) -> None:
    tables = next(iter(found["tables"].values()), {})
    sizes = ", ".join(f"{t} {n:,}" for t, n in tables.items() if n >= 100)
    print(f"\nSQL of {label} ({found['wall_s']:.2f} s; rows: {sizes or 'few'}):")
    print("  calls      us/run    rows  class / plan / statement")
    for item in sorted(found["statements"], key=lambda i: -i["calls"] * i.get("us", 0.0)):
        us = f"{item['us']:10.0f}" if "us" in item else f"{'-':>10}"
        rows = f"{item['rows']:>7}" if "rows" in item else f"{'-':>7}"
        flag = "  <-- " if item["class"].startswith("FULL") else "  "
        print(f"  {item['calls']:>5} {us} {rows}  {item['class']}{flag}")
        print(f"        plan: {' | '.join(item.get('plan', [])) or item.get('error', '-')}")
        print(f"        {item['sql'][:150]}")


# --- the whole diagnosis ------------------------------------------------------------------


def diag_dotenv(folder: Path, tag: str, count: int) -> Path:
    path = folder / f"diag-{tag}.env"
    private_file(path, "".join(f"DIAG_{tag}_{i:06d}={secret_value(i)}\n" for i in range(count)))
    return path


def diagnose(setup: Setup, cases: dict[str, Case], args: argparse.Namespace) -> dict[str, Any]:
    """Print and return every diagnostic (see the module's docstring)."""
    py, script, n = setup.python, setup.script, f"{args.secrets:,}"
    get10, getn, ls, verify = cases["get10"], cases["getN"], cases["lsN"], cases["verifyN"]
    tmp = setup.work / "diag"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    print("\n=== where the time goes (--diagnose) ===", flush=True)
    found: dict[str, Any] = {}
    found["importtime_floor"] = importtime(py, cases["floor"], code=True)
    found["importtime_get"] = importtime(py, get10)
    print_importtime("get (10 secrets)", found["importtime_get"], found["importtime_floor"])
    print("\nthe other commands (-X importtime, median of 3): imports ms, modules; the top 4")
    for key in ("exec", "export", "put", "lsN", "verify10"):
        other = found[f"importtime_{key}"] = importtime(py, cases[key], 3)
        top = ", ".join(f"{g} {v:.1f}" for g, v in list(other["charged_ms"].items())[:4])
        print(
            f"  {cases[key].label:<40} {other['imports_ms']:6.1f} ms {other['modules']:>4}  {top}"
        )

    copy = tmp / "large-copy"  # a put and an import at N secrets, leaving the large vault be
    print(f"copying the {n}-secret vault for the import diagnostics", file=sys.stderr)
    shutil.copytree(setup.folder("large"), copy, symlinks=True)
    env_copy = getn.env
    lines = args.diag_import
    start = time.perf_counter()
    call([script, "import", str(diag_dotenv(tmp, "T", lines))], env_copy, copy)
    import_s = time.perf_counter() - start
    found["import_at_n"] = {"lines": lines, "seconds": import_s}
    print(
        f"\nimport of {lines} new lines into a copy of the {n}-secret vault: {import_s:.1f} s "
        f"({import_s / lines * 1000:.1f} ms a secret, start-up included)"
    )

    for key, label, case_cmd, env, cwd in (
        ("get10", "get (10 secrets)", get10.cmd, get10.env, get10.cwd),
        ("getN", f"get ({n} secrets)", getn.cmd, getn.env, getn.cwd),
        ("export", cases["export"].label, cases["export"].cmd, cases["export"].env,
         cases["export"].cwd),
        ("lsN", f"ls ({n} secrets)", ls.cmd, ls.env, ls.cwd),
        ("verifyN", f"audit verify ({n} secrets)", verify.cmd, verify.env, verify.cwd),
        ("importN", f"import of {lines} lines into the {n}-secret copy",
         [script, "import", str(diag_dotenv(tmp, "P", lines))], env_copy, copy),
    ):  # fmt: skip
        found[f"cprofile_{key}"] = cprofile(py, case_cmd, env, cwd, tmp / f"{key}.prof")
        print_cprofile(label, found[f"cprofile_{key}"])

    found["per_row_lsN"] = per_row_costs(setup, found["cprofile_lsN"])
    print_per_row(f"ls ({n} secrets)", found["per_row_lsN"])

    put_value = diag_dotenv(tmp, "V", 1)
    for key, label, sql_args, env, cwd in (
        ("getN", f"get ({n} secrets)", getn.cmd[1:], getn.env, getn.cwd),
        ("lsN", f"ls ({n} secrets)", ls.cmd[1:], ls.env, ls.cwd),
        ("putN", f"put into the {n}-secret copy",
         ["put", "APP_KEY_000005", "--from-file", str(put_value)], env_copy, copy),
        ("importN", f"import of {lines} lines into the {n}-secret copy",
         ["import", str(diag_dotenv(tmp, "S", lines))], env_copy, copy),
        ("verifyN", f"audit verify ({n} secrets)", verify.cmd[1:], verify.env, verify.cwd),
    ):  # fmt: skip
        found[f"sql_{key}"] = sql_plans(py, script, sql_args, env, cwd, tmp / f"sql-{key}.json")
        print_sql(label, found[f"sql_{key}"])
    flagged = {
        item["sql"] for key, value in found.items() if key.startswith("sql_")
        for item in value["statements"] if item["class"].startswith("FULL")
    }  # fmt: skip
    print(
        "\nquery plans: "
        + (f"{len(flagged)} FULL SCAN(s) where an index is expected" if flagged else
           "no full SCAN where an index is expected")
    )  # fmt: skip
    found["flagged_scans"] = sorted(flagged)
    shutil.rmtree(copy, ignore_errors=True)
    return found
