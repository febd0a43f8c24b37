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
import json
import os
import platform
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from diagnostics import (
    bsecrets_pyc_in_tree,
    get_path_imports,
    print_get_path_imports,
    where_time_goes,
)
from harness import (
    Case,
    Pair,
    Row,
    base_env,
    call,
    console_script,
    git_state,
    home_environ,
    measure,
    ms,
    print_table,
    ratio_row,
    raw_header,
    raw_line,
    run_in_workdir,
    session_token,
)

FLOOR_CODE = "import sqlite3; from cryptography.hazmat.primitives.ciphers.aead import AESGCM"
GET_RATIO_LIMIT = 2.5
SCALE_RATIO_LIMIT = 1.2
LS_LIMIT_S = 1.0
SMALL = 10
ENV = "dev"


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
    from bsecrets.vaultfile.credentials import Credentials

    chunk = 1000
    chunks: list[tuple[int, float]] = []  # (puts, seconds) per chunk of names
    with home_environ(env):
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
    return session_token(out)


# --- main ---------------------------------------------------------------------------


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
    py, many = sys.executable, f"{args.secrets:,}"
    name = secret_name(SMALL // 2)
    expect = secret_value(SMALL // 2) + b"\n"
    envs = {vault: {**env, "BSECRETS_SESSION": state["tokens"][vault]} for vault in state["tokens"]}
    by_script, by_module = [script, "get", name], [py, "-m", "bsecrets", "get", name]

    def get(
        key: str, label: str, cmd: list[str], vault: str, environ: dict[str, str] | None = None
    ) -> Case:
        return Case(key, label, cmd, environ or envs[vault], work / vault, expect)

    floor = Case(
        "floor", "floor: python -c 'import sqlite3; ...AESGCM'", [py, "-c", FLOOR_CODE], env, work
    )
    get_s = get("get10_script", f"get, {SMALL} secrets, console script", by_script, "small")
    get_m = get("get10_module", f"get, {SMALL} secrets, python -m bsecrets", by_module, "small")
    big_s = get("getN_script", f"get, {many} secrets, console script", by_script, "large")
    big_m = get("getN_module", f"get, {many} secrets, python -m bsecrets", by_module, "large")
    ls_n = Case(
        "lsN_script",
        f"ls, {many} secrets, console script",
        [script, "ls"],
        envs["large"],
        work / "large",
        expect_lines=args.secrets + 1,
        budget_s=args.ls_budget,
    )
    cases = [floor, get_s, get_m, big_s, big_m, ls_n]
    pairs = [
        Pair("1 get vs floor, console script", floor, get_s, GET_RATIO_LIMIT),
        Pair("1 get vs floor, python -m bsecrets", floor, get_m, GET_RATIO_LIMIT),
        Pair(f"2 get {many} vs {SMALL} secrets, console script", get_s, big_s, SCALE_RATIO_LIMIT),
        Pair(f"2 get {many} vs {SMALL} secrets, python -m", get_m, big_m, SCALE_RATIO_LIMIT),
    ]  # fmt: skip
    in_tree = "yes" if bsecrets_pyc_in_tree() else "no"
    info: Pair | None = None
    if args.bytecode == "warm" and os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # What this shell gets: no .pyc written, so an editable bsecrets without
        # __pycache__ folders is compiled from source on every run.
        as_is = {k: v for k, v in envs["small"].items() if k != "PYTHONPYCACHEPREFIX"}
        as_is["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
        floor_asis = Case(
            "floor_asis", "floor, no .pyc writes (this shell)", [py, "-c", FLOOR_CODE], as_is, work
        )
        get_asis = get(
            "get10_script_asis",
            f"get, {SMALL} secrets, script, no .pyc writes",
            by_script,
            "small",
            as_is,
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
    imports = get_path_imports(script, ["get", name], envs["small"], work / "small", tmp)
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
    print(raw_header(f"\nraw wall times (fresh processes){'':<14}"))
    for c in cases:
        if c.wall:
            print(raw_line(c, 2, 44))
    print_get_path_imports(imports)

    diagnostics: dict[str, Any] = {}
    failed = [r for r in rows if r.ok is False]
    if not args.no_diagnose:
        diagnostics = where_time_goes(
            floor, get_s, ls_n, tmp, ls_secrets=args.secrets,
            profile_get=args.profile or any(r.target.startswith(("1", "2")) for r in failed),
            profile_ls=args.profile or any(r.target.startswith("3") for r in failed),
        )  # fmt: skip

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
    return run_in_workdir(args.workdir, "bsecrets-bench-", lambda work: run(args, work))


if __name__ == "__main__":
    sys.exit(main())
