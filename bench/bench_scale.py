#!/usr/bin/env python3
"""Start-up at the floor and flat cost at scale: every target of issue #20 (see
bench/README.md, "Start-up and scale").

The CLI is measured as users have it: a venv made by a regular ``pip install`` of
the checkout (not the editable development install), every sample a fresh process,
each subject paired with its baseline in the same round (subject and baseline back
to back, which one goes first alternating from round to round), judged on the
median of the paired ratios. Every command but ``init`` and ``unlock`` runs in an
unlocked session (BSECRETS_SESSION, no passphrase).

Targets (figure, limit):
 1. ``get`` / the floor ``python -c "import sqlite3; from
    cryptography.hazmat.primitives.ciphers.aead import AESGCM"`` of the same venv: <= 1.5x
 2. ``exec -- true`` with 100 secrets / the floor: <= 1.7x
 3. ``export --format dotenv`` of 1,000 secrets / the floor: <= 2.5x
 4. ``get`` with 100,000 secrets / ``get`` with 10: <= 1.1x
 5. ``ls`` of 100,000 secrets: median < 3 s (absolute)
 6. ``import`` of a 100,000-line dotenv into an empty environment: < 60 s, and the
    child's peak RSS < 500 MiB (absolute; stopped after --import-timeout seconds)
 7. ``audit verify`` on the 100,000-secret vault's log (100,000+ events): >= 250,000
    events/s, net of start-up (paired with ``audit verify`` of a 10-secret vault's log)
 8. ``put`` / ``get`` (10 secrets): <= 1.3x

Usage: python bench/bench_scale.py [--runs N] [--workdir DIR] [--venv DIR] [--diagnose]
Exit status: 0 every target measured and passing, 1 a target fails (or was not
measured), 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    Case,
    Pair,
    git_state,
    ms,
    raw_header,
    raw_line,
    run_in_workdir,
    verdict,
)
from scale_setup import Setup, prepare, secret_name, secret_value

FLOOR_CODE = "import sqlite3; from cryptography.hazmat.primitives.ciphers.aead import AESGCM"
GET_FLOOR = 1.5
EXEC_FLOOR = 1.7
EXPORT_FLOOR = 2.5
GET_SCALE = 1.1
LS_LIMIT_S = 3.0
IMPORT_LIMIT_S = 60.0
IMPORT_RSS_MIB = 500.0
VERIFY_EVENTS_S = 250_000.0
PUT_GET = 1.3
REPO = Path(__file__).resolve().parents[1]


@dataclass
class AltPair(Pair):
    """A Pair whose order alternates (subject first in even rounds, the baseline in odd
    ones) and which may stop before the other pairs (``cap`` samples)."""

    cap: int | None = None
    turn: int = 0

    def wants_more(self, runs: int) -> bool:
        return len(self.subj_wall) < min(runs, self.cap or runs)

    def run(self, rng: Any) -> None:  # the order alternates: rng is not used
        first = (self.subj, self.base) if self.turn % 2 == 0 else (self.base, self.subj)
        self.turn += 1
        for case in first:
            wall, cpu, _ = case.run()
            if case is self.base:
                self.base_wall.append(wall)
                self.base_cpu.append(cpu)
            else:
                self.subj_wall.append(wall)
                self.subj_cpu.append(cpu)


@dataclass
class Target:
    """One line of the table: a target of issue #20 with its figure and verdict."""

    key: str
    label: str
    figure: str
    limit: str
    ok: bool | None  # None: not measured (counts as not passing)
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def result(self) -> str:
        return "n/a" if self.ok is None else verdict(self.ok)


def measure_rounds(pairs: list[AltPair], singles: list[Case], runs: int) -> None:
    """``runs`` rounds; each runs every pair and single that still wants samples, in
    a fixed order that rotates by one each round (so no command always follows the
    same one)."""
    items: list[AltPair | Case] = [*pairs, *singles]
    for round_no in range(runs):
        todo = [item for item in items if item.wants_more(runs)]
        if not todo:
            return
        shift = round_no % len(todo)
        for item in todo[shift:] + todo[:shift]:
            if isinstance(item, AltPair):
                item.run(None)
            else:
                item.run()
        print(f"  round {round_no + 1}/{runs} done", file=sys.stderr, flush=True)


def ratio_target(key: str, label: str, pair: AltPair) -> Target:
    assert pair.limit is not None
    judged = pair.paired_ratio
    base, subj = statistics.median(pair.base_wall), statistics.median(pair.subj_wall)
    note = "" if (pair.ratio <= pair.limit) == (judged <= pair.limit) else "; noisy: of med differs"
    return Target(
        key, label, f"{judged:.3f}x", f"<= {pair.limit:.2f}x", judged <= pair.limit,
        f"medians {ms(subj)} / {ms(base)}, of med {pair.ratio:.2f}x, cpu {pair.cpu_ratio:.2f}x, "
        f"n={len(pair.subj_wall)}{note}",
        pair.summary(),
    )  # fmt: skip


def import_target(setup: Setup, lines: int) -> Target:
    imp = setup.import_result
    label = f"6 import of a {lines:,}-line dotenv (absolute)"
    limit = f"< {IMPORT_LIMIT_S:.0f} s, < {IMPORT_RSS_MIB:.0f} MiB"
    if not imp:
        return Target("import", label, "-", limit, None, "not measured (--skip-import)")
    rss = imp["max_rss_mib"]
    detail = f"peak RSS {rss:.0f} MiB, CPU {imp['cpu_s']:.1f} s"
    if imp.get("progress"):
        detail += "; progress " + ", ".join(f"{d:,} at {t:.0f} s" for t, d in imp["progress"][-4:])
    if imp.get("estimate_s"):
        est = imp["estimate_s"]
        est_text = f"{est / 60:.0f} min" if est >= 120 else f"{est:.0f} s"
        detail += f"; all {lines:,} in about {est_text} (a quadratic fit of the progress)"
    if imp.get("reused_from"):
        detail += f"; measured {imp['reused_from']}"
    if imp["completed"]:
        ok = imp["seconds"] < IMPORT_LIMIT_S and rss < IMPORT_RSS_MIB
        figure = f"{imp['seconds']:.1f} s"
    else:
        ok = False
        figure = f"> {imp['seconds']:.0f} s"
        detail = f"stopped at {imp['seconds']:.0f} s (--import-timeout), RSS up to then; " + detail
    return Target("import", label, figure, limit, ok, detail, imp)


def verify_target(pair: AltPair, events_large: int, events_small: int) -> Target:
    """Events per second net of start-up: per round, (events of the large log - events of
    the small one) / (time on the large - time on the small); the median of the rounds."""
    rates = [
        (events_large - events_small) / (big - small)
        for big, small in zip(pair.subj_wall, pair.base_wall, strict=True)
        if big > small
    ]
    net = statistics.median(rates) if rates else 0.0
    big_med = statistics.median(pair.subj_wall)
    return Target(
        "verify", f"7 audit verify, {events_large:,} events: events/s net of start-up",
        f"{net:,.0f}/s", f">= {VERIFY_EVENTS_S:,.0f}/s", net >= VERIFY_EVENTS_S,
        f"gross {events_large / big_med:,.0f}/s (median {ms(big_med)} for the whole command; "
        f"{events_small} events: {ms(statistics.median(pair.base_wall))}), n={len(rates)}",
        {**pair.summary(), "events_large": events_large, "events_small": events_small,
         "net_rates": rates},
    )  # fmt: skip


def run(args: argparse.Namespace, work: Path) -> int:
    setup = prepare(args, work)
    py, script, big = setup.python, setup.script, f"{args.secrets:,}"
    name = secret_name(5)
    value = secret_value(5).encode() + b"\n"

    def case(key: str, label: str, cmd: list[str], vault: str, **kw: Any) -> Case:
        return Case(key, label, cmd, setup.session_env[vault], setup.folder(vault), **kw)

    floor = Case("floor", "floor: python -c 'import sqlite3; ...AESGCM'",
                 [py, "-c", FLOOR_CODE], setup.env, work)  # fmt: skip
    get10 = case("get10", "get, 10 secrets", [script, "get", name], "small", expect=value)
    getn = case("getN", f"get, {big} secrets", [script, "get", name], "large", expect=value)
    exe = case("exec", "exec -- true, 100 secrets", [script, "exec", "--", "true"], "exec")
    export_cmd = [script, "export", "--format", "dotenv"]
    export = case("export", "export --format dotenv, 1,000 secrets", export_cmd, "export",
                  expect_lines=1000)  # fmt: skip
    put_get = case("put_get", "get, 10 secrets (put's vault)", [script, "get", name], "put",
                   expect=value)  # fmt: skip
    put = case("put", "put (value on stdin), 10 secrets", [script, "put", "APP_PUT_TARGET"], "put",
               stdin=b"bench-put-value-0123456789abcdef\n")  # fmt: skip
    ls = case("lsN", f"ls, {big} secrets", [script, "ls"], "large",
              expect_lines=args.secrets + 1, budget_s=args.ls_budget)  # fmt: skip
    verify_small = case("verify10", "audit verify, 10-secret vault", [script, "audit", "verify"],
                        "small")  # fmt: skip
    verify_big = case("verifyN", f"audit verify, {big}-secret vault", [script, "audit", "verify"],
                      "large")  # fmt: skip
    pairs = {
        "get": AltPair("get / floor", floor, get10, GET_FLOOR),
        "exec": AltPair("exec / floor", floor, exe, EXEC_FLOOR),
        "export": AltPair("export / floor", floor, export, EXPORT_FLOOR),
        "scale": AltPair("get N / get 10", get10, getn, GET_SCALE),
        "put": AltPair("put / get", put_get, put, PUT_GET),
        "verify": AltPair("verify N / verify 10", verify_small, verify_big, None,
                          cap=args.verify_runs),
    }  # fmt: skip
    cases = [floor, get10, getn, exe, export, put_get, put, ls, verify_small, verify_big]
    print("warming up (page cache, profile cache) and checking outputs", file=sys.stderr)
    for c in cases:
        c.warm_up(1 if c in (ls, verify_big) else 2)
    events = {v: setup.audit_events(v) for v in ("small", "large")}

    print(f"measuring: {args.runs} rounds", file=sys.stderr, flush=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    measure_rounds(list(pairs.values()), [ls], args.runs)
    measure_s, load_after = time.perf_counter() - started, os.getloadavg()

    targets = [
        ratio_target("get", "1 get (session) / floor", pairs["get"]),
        ratio_target("exec", "2 exec -- true, 100 secrets / floor", pairs["exec"]),
        ratio_target("export", "3 export --format dotenv, 1,000 secrets / floor", pairs["export"]),
        ratio_target("scale", f"4 get with {big} secrets / with 10", pairs["scale"]),
        Target(
            "ls",
            f"5 ls of {big} secrets (absolute)",
            f"{ls.median:.2f} s",
            f"< {LS_LIMIT_S:.0f} s",
            ls.median < LS_LIMIT_S,
            f"median of {len(ls.wall)}; min {ms(min(ls.wall))}, max {ms(max(ls.wall))}; "
            f"cpu {ms(ls.cpu_median)}",
            ls.summary(),
        ),
        import_target(setup, args.secrets),
        verify_target(pairs["verify"], events["large"], events["small"]),
        ratio_target("put", "8 put (session) / get", pairs["put"]),
    ]
    print_report(args, setup, targets, cases, measure_s, load_before, load_after)

    diagnostics: dict[str, Any] = {}
    if args.diagnose:
        from scale_diagnose import diagnose

        diagnostics = diagnose(setup, {c.key: c for c in cases}, args)
    failed = [t for t in targets if t.ok is not True]
    print("\n" + ("FAIL: " + "; ".join(t.label for t in failed) if failed else "all targets pass"))
    if args.json:
        write_json(args, setup, targets, cases, diagnostics, (load_before, load_after))
    return 1 if failed else 0


def print_report(
    args: argparse.Namespace,
    setup: Setup,
    targets: list[Target],
    cases: list[Case],
    measure_s: float,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    print(
        f"\nbsecrets start-up and scale: {setup.describe()}\n"
        f"python {platform.python_version()}, {os.cpu_count()} CPUs (shared), load average "
        f"{load_before[0]:.2f} -> {load_after[0]:.2f} (1 min); {args.runs} rounds in "
        f"{measure_s:.0f} s, order alternating; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    if max(load_before[0], load_after[0]) > (os.cpu_count() or 1) / 2 + 1:  # +1: the bench
        print("note: the machine was busy (load above half the CPUs + the bench's own process)")
    for line in setup.build_notes():
        print(line)
    print(f"\n{'target':<58} {'figure':>12}  {'limit':<22} result")
    for t in targets:
        print(f"{t.label:<58} {t.figure:>12}  {t.limit:<22} {t.result}")
        if t.detail:
            print(f"    {t.detail}")
    print(
        "  ratios: median of the paired ratios (subject / baseline, back to back); of med: "
        "ratio of the\n  medians; cpu: the same on the child's CPU time (user+sys)"
    )
    print(raw_header(f"\nraw wall times (fresh processes){'':<18}"))
    for c in cases:
        if c.wall:
            print(raw_line(c, 2, 48))


def write_json(
    args: argparse.Namespace,
    setup: Setup,
    targets: list[Target],
    cases: list[Case],
    diagnostics: dict[str, Any],
    load: tuple[Any, Any],
) -> None:
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bsecrets": setup.source_label, "checkout": git_state(REPO),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "load": load},
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "setup": setup.public_state(),
        "targets": [{"key": t.key, "label": t.label, "figure": t.figure, "limit": t.limit,
                     "result": t.result, "detail": t.detail, "data": t.data} for t in targets],
        "cases": {c.key: c.summary() for c in cases if c.wall},
        "diagnostics": diagnostics,
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.json}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30, help="paired rounds (default 30)")
    p.add_argument(
        "--verify-runs",
        type=int,
        default=10,
        help="rounds of the audit verify pair (default 10; at most --runs)",
    )
    p.add_argument(
        "--ls-budget",
        type=float,
        default=30.0,
        help="seconds of 'ls' runs before it stops sampling (at least 5; default 30)",
    )
    p.add_argument(
        "--secrets",
        type=int,
        default=100_000,
        help="secrets in the large vault and lines in the imported dotenv (default 100000)",
    )
    p.add_argument(
        "--import-timeout",
        type=float,
        default=120.0,
        help="stop the import after this many seconds (a FAIL, the figure '> S'; "
        "default 120, twice the limit; 0: wait for it to finish)",
    )
    p.add_argument(
        "--skip-import",
        action="store_true",
        help="do not measure the import (target 6 shows n/a; exit 1 at best)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        help="keep the venv and vaults here and reuse them (default: a temp dir)",
    )
    p.add_argument("--rebuild", action="store_true", help="with --workdir: build the vaults anew")
    p.add_argument(
        "--venv",
        type=Path,
        help="the venv to measure: made here with 'pip install' of --source when "
        "missing, reinstalled when the source changed (default: WORK/venv)",
    )
    p.add_argument(
        "--source",
        default="tree",
        help="'tree': the checkout as it is, uncommitted changes included (default); "
        "a git revision (HEAD): that commit, from 'git archive'",
    )
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="where the time goes: -X importtime, cProfile, SQL query plans",
    )
    p.add_argument(
        "--diag-import",
        type=int,
        default=300,
        help="lines imported into a copy of the large vault by --diagnose (default 300)",
    )
    p.add_argument("--json", type=Path, help="write every figure and sample to this file")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be at least 3")
    if args.secrets < 1000:
        p.error("--secrets must be at least 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_in_workdir(args.workdir, "bsecrets-bench-scale-", lambda work: run(args, work))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
