#!/usr/bin/env python3
"""Benchmarks of the local vault's audit log (audit/logger.py, audit/local_log.py).

1. verify throughput: a vault whose audit log holds N events (default
   1,000,000), written in-process through LocalAuditLog's keyed append path in
   transactions of 20,000; then ``LocalAuditLog(vault).verify(keys, None)`` on
   a freshly opened vault, timed (median of --verify-runs). Limit: under 10 s
   for 1,000,000 events (scaled linearly for another N). The result must have
   no problem and count every event, and a control run with one changed MAC
   must report it.
2. audit overhead on put and get: fresh CLI processes, ``put`` and ``get`` with
   the real audit log against the same command with a null sink
   (bench/null_audit_cli.py), back to back in random order, --rounds rounds.
   Both sides run the same driver (``--audited`` skips the patch), so both pay
   the same start-up. Judged on the median of the paired ratios (as
   bench_local.py): auditing adds under 10%. ``python -m bsecrets`` is shown
   beside them, for information. The same comparison in-process (a loop of
   SecretsManager.put/get, real LocalAuditLog vs NullAuditSink) is printed as
   information: there the extra fsync'd write of a get is not hidden by
   process start-up.

Usage: python bench/bench_audit.py [--events N] [--rounds R] [--ops N] [--only verify|overhead]
Smoke: python bench/bench_audit.py --events 20000 --rounds 5
Exit status: 0 every target passes, 1 a target fails, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import (
    BenchError,
    Case,
    Pair,
    base_env,
    call,
    compile_tree,
    git_state,
    home_environ,
    measure,
    ms,
    paired_median,
    quantile,
    raw_header,
    raw_line,
    session_token,
    verdict,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DRIVER = HERE / "null_audit_cli.py"
VERIFY_LIMIT_S = 10.0  # ... for VERIFY_LIMIT_EVENTS
VERIFY_LIMIT_EVENTS = 1_000_000
BATCH = 20_000  # events per write transaction while filling the log
OVERHEAD_LIMIT = 1.10
ENV = "dev"
SECRET = "bench/api_token"
VALUE = b"bench-value-0123456789abcdef0123456789abcdef"
WEAK_KDF = {"BSECRETS_INSECURE_TEST_KDF": "1"}


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us"


# --- 1. verify throughput --------------------------------------------------------


class EventMaker:
    """Events as AuditLogger._fields makes them: one CLI command each (its own pid and
    request id), mostly gets, a put every fifth, a not_found now and then; times
    advance by 20-80 ms."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.time = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        self.versions: dict[str, int] = {}
        self.names = [f"app/service_{i:03d}/API_KEY" for i in range(400)]

    def __call__(self, i: int) -> dict[str, Any]:
        from bsecrets.timeutil import iso

        rng = self.rng
        self.time += timedelta(milliseconds=rng.randint(20, 80))
        name = self.names[rng.randrange(len(self.names))]
        fields: dict[str, Any] = {
            "v": 1,
            "time": iso(self.time),
            "actor": {
                "user": "deploy" if i % 7 else "alice",
                "principal": "owner",
                "host": "build-03.internal",
                "pid": 20_000 + i % 40_000,
            },
            "action": "put" if i % 5 == 0 else "get",
            "env": ("dev", "staging", "prod")[i % 3],
            "outcome": "ok",
            "request_id": rng.getrandbits(64).to_bytes(8, "big").hex(),
            "name": name,
        }
        if fields["action"] == "put":
            self.versions[name] = self.versions.get(name, 0) + 1
            fields["version"] = self.versions[name]
        elif name in self.versions and i % 97:
            fields["version"] = self.versions[name]
        else:
            fields["outcome"] = "not_found"
            fields["reason"] = f"no secret '{name}' in {fields['env']}"
        return fields


def fill_log(vault: Any, log: Any, events: int) -> dict[str, Any]:
    """``events`` events through the keyed append path, BATCH per write transaction."""
    from bsecrets.audit.local_log import AUDIT_ENV

    make = EventMaker(seed=7)
    batches: list[tuple[int, float]] = []
    done = 0
    keys = None
    start = time.perf_counter()
    while done < events:
        n = min(BATCH, events - done)
        mark = time.perf_counter()
        with vault.store.write():
            log._ensure_tables()
            if keys is None:
                keys = vault.env_keys(AUDIT_ENV, create=True)
            append = log._append_keyed
            for i in range(done, done + n):
                append(keys, make(i))
        batches.append((n, time.perf_counter() - mark))
        done += n
        if len(batches) % 10 == 0 or done == events:
            rate = n / batches[-1][1]
            print(
                f"  filled {done:>9,}/{events:,} events ({rate:,.0f}/s now)",
                file=sys.stderr,
                flush=True,
            )
    total = time.perf_counter() - start
    return {
        "seconds": total,
        "rate": events / total,
        "first_rate": batches[0][0] / batches[0][1],
        "last_rate": batches[-1][0] / batches[-1][1],
        "batches": len(batches),
    }


def bench_verify(args: argparse.Namespace, work: Path) -> tuple[bool, list[str]]:
    from bsecrets.audit.local_log import LocalAuditLog
    from bsecrets.timeutil import utcnow
    from bsecrets.vaultfile.credentials import Credentials
    from bsecrets.vaultfile.vault import LocalVault

    passphrase = "bench-" + secrets.token_urlsafe(18)
    creds = Credentials(passphrase=passphrase)
    path = work / "verify" / "vault.db"
    path.parent.mkdir(mode=0o700, parents=True)
    print(f"verify: filling the audit log with {args.events:,} events", file=sys.stderr)
    vault = LocalVault.create(path, creds, utcnow, passphrase=passphrase, use_keyring=False)
    try:
        log = LocalAuditLog(vault)
        with vault.store.read():
            before = log.count()
        fill = fill_log(vault, log, args.events)
    finally:
        vault.close()
    expected = before + args.events
    size = sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith(path.name))

    runs: list[float] = []
    unlock_s: list[float] = []
    result: Any = None
    for k in range(args.verify_runs):
        print(f"verify: run {k + 1}/{args.verify_runs}", file=sys.stderr, flush=True)
        vault = LocalVault.open(path, creds, utcnow)
        try:
            log = LocalAuditLog(vault)
            mark = time.perf_counter()
            keys = log.reading_keys()
            unlock_s.append(time.perf_counter() - mark)
            if keys is None:
                raise BenchError("the filled vault has no audit key")
            mark = time.perf_counter()
            result = log.verify(keys, None)
            runs.append(time.perf_counter() - mark)
        finally:
            vault.close()
        if result.problem is not None or result.events != expected:
            break

    control = tamper_control(path, creds, expected) if args.control else None
    if args.profile:
        profile_verify(path, creds)

    seconds = statistics.median(runs)
    limit = VERIFY_LIMIT_S * args.events / VERIFY_LIMIT_EVENTS
    checked_ok = result.problem is None and result.events == expected
    checked_ok = checked_ok and result.last_seq == expected
    fast = seconds < limit
    control_ok = control is None or control[0]
    ok = fast and checked_ok and control_ok
    scaled = "" if args.events == VERIFY_LIMIT_EVENTS else (
        f" (10 s per {VERIFY_LIMIT_EVENTS:,} events, scaled)"
    )  # fmt: skip
    lines = [
        f"1 verify: {result.events:,} events verified in {seconds:.2f} s "
        f"({result.events / seconds:,.0f} events/s, median of {len(runs)}); "
        f"limit < {limit:.2f} s{scaled}: {verdict(ok)}",
        f"  fill: {args.events:,} events in {fill['seconds']:.1f} s, {fill['batches']} "
        f"transactions of {BATCH:,} ({fill['rate']:,.0f} events/s; first transaction "
        f"{fill['first_rate']:,.0f}/s, last {fill['last_rate']:,.0f}/s); "
        f"vault file {size / 2**20:,.0f} MiB",
        "  verify runs (fresh vault handle each): "
        + ", ".join(f"{s:.2f} s" for s in runs)
        + f"; audit key unlock (weak test KDF) {ms(statistics.median(unlock_s))}",
        f"  result: events {result.events:,} (expected {expected:,}: {before} before the fill "
        f"+ {args.events:,}), first_seq {result.first_seq}, last_seq {result.last_seq:,}, "
        f"problem {result.problem}, anchor note: {result.anchor!r}",
        f"  checks: problem is None and every event counted: {verdict(checked_ok)}; "
        f"under the limit: {verdict(fast)}",
    ]
    if control is not None:
        lines.append(f"  control (last event's MAC changed, then verified): {control[1]}")
    return ok, lines


def tamper_control(path: Path, creds: Any, last: int) -> tuple[bool, str]:
    """Change one byte of the last event's MAC and verify: the walk must get to the
    end of the log and name that event. Undone afterwards."""
    from bsecrets.audit.local_log import LocalAuditLog
    from bsecrets.timeutil import utcnow
    from bsecrets.vaultfile.vault import LocalVault

    print("verify: control run with a changed MAC", file=sys.stderr, flush=True)
    vault = LocalVault.open(path, creds, utcnow)
    try:
        log = LocalAuditLog(vault)
        keys = log.reading_keys()
        store = vault.store
        rows = store.query_optional_table(
            "audit_events", "SELECT mac FROM audit_events WHERE seq = ?", (last,)
        )
        original = rows[0][0]
        changed = bytes([original[0] ^ 1]) + original[1:]
        with store.write():
            store.execute_write("UPDATE audit_events SET mac = ? WHERE seq = ?", (changed, last))
        mark = time.perf_counter()
        result = log.verify(keys, None)
        seconds = time.perf_counter() - mark
        with store.write():
            store.execute_write("UPDATE audit_events SET mac = ? WHERE seq = ?", (original, last))
    finally:
        vault.close()
    problem = result.problem
    ok = problem is not None and problem.seq == last and problem.kind == "edited"
    return ok, f"{verdict(ok)}: {problem} after {result.events:,} good events, {seconds:.2f} s"


def profile_verify(path: Path, creds: Any) -> None:
    import cProfile
    import io
    import pstats

    from bsecrets.audit.local_log import LocalAuditLog
    from bsecrets.timeutil import utcnow
    from bsecrets.vaultfile.vault import LocalVault

    vault = LocalVault.open(path, creds, utcnow)
    try:
        log = LocalAuditLog(vault)
        keys = log.reading_keys()
        profiler = cProfile.Profile()
        profiler.enable()
        log.verify(keys, None)
        profiler.disable()
    finally:
        vault.close()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats("tottime").print_stats(12)
    print("cProfile of verify (by own time; the profiler roughly doubles the total):")
    print("\n".join("  " + line for line in stream.getvalue().splitlines() if line.strip()))


# --- 2. audit overhead on put and get --------------------------------------------


def pair_ok(pair: Pair) -> bool | None:
    """Judged on the paired ratio; a pair without a limit is information (None)."""
    return None if pair.limit is None else pair.paired_ratio < pair.limit


def child_env(work: Path) -> dict[str, str]:
    """bench_local's environment (no bsecrets or CI variables, HOME and XDG folders
    inside ``work``, bytecode cached in a private prefix) with the weak test KDF."""
    return {**base_env(work, "warm"), **WEAK_KDF}


def in_process(
    folder: Path, null_folder: Path, passphrase: str, env: dict[str, str], ops: int, seed: int
) -> dict:
    """manager.put / manager.get in a loop: the real LocalAuditLog (on ``folder``'s vault)
    against NullAuditSink (on ``null_folder``'s), alternating op by op (random order
    within each pair), per-op wall time."""
    from bsecrets.audit.logger import NullAuditSink
    from bsecrets.config.loader import load_profile
    from bsecrets.services.manager import SecretsManager
    from bsecrets.vaultfile.credentials import Credentials

    with home_environ(env):
        creds = Credentials(passphrase=passphrase)
        audited = SecretsManager(load_profile(folder / "bsecrets.yaml"), creds, environ=env)
        null_profile = load_profile(null_folder / "bsecrets.yaml")
        null = SecretsManager(null_profile, creds, environ=env, audit_sink=NullAuditSink())
        name = "bench/in_process"
        ops_of: dict[str, Callable[[SecretsManager], Any]] = {
            "put": lambda m: m.put(ENV, name, VALUE),
            "get": lambda m: m.get(ENV, name),
        }
        times: dict[tuple[str, str], list[float]] = {
            (op, side): [] for op in ops_of for side in ("audited", "null")
        }
        try:
            for manager in (audited, null):  # unlock, open, first writes
                for fn in ops_of.values():
                    for _ in range(5):
                        fn(manager)
            if audited.audit.sink.name != "local vault" or null.audit.sink.name != "none":
                raise BenchError(
                    f"in-process sinks are {audited.audit.sink.name!r} / {null.audit.sink.name!r}"
                )
            written = audited.audit.written
            rng = random.Random(seed)
            for _ in range(ops):
                for op, fn in ops_of.items():
                    sides = [("audited", audited), ("null", null)]
                    rng.shuffle(sides)
                    for side, manager in sides:
                        mark = time.perf_counter()
                        fn(manager)
                        times[(op, side)].append(time.perf_counter() - mark)
            if audited.audit.written - written != 2 * ops:
                raise BenchError("the audited in-process manager did not write one event per op")
        finally:
            audited.close()
            null.close()
    return {key: list(values) for key, values in times.items()}


def bench_overhead(args: argparse.Namespace, work: Path) -> tuple[bool, list[str]]:
    py = sys.executable
    env = child_env(work)
    print("overhead: compileall, init, unlock", file=sys.stderr, flush=True)
    import bsecrets

    compile_tree(Path(bsecrets.__file__).resolve().parent, env)
    passphrase = "bench-" + secrets.token_urlsafe(18)
    with_pass = {**env, "BSECRETS_PASSPHRASE": passphrase}

    def new_vault(name: str) -> tuple[Path, dict[str, str]]:
        folder = work / name
        folder.mkdir(mode=0o700)
        call([py, "-m", "bsecrets", "init"], with_pass, folder)
        out = call([py, "-m", "bsecrets", "unlock"], with_pass, folder)
        return folder, {**env, "BSECRETS_SESSION": session_token(out)}

    # Two vaults alike: a write through the null sink records no event, and the audit
    # chain refuses a vault changed behind its back (audit/witness.py), so the null
    # driver never touches the audited vault.
    folder, session = new_vault("cli")
    null_folder, null_session = new_vault("cli-null")
    value_file = work / "value.txt"
    value_file.write_bytes(VALUE)
    os.chmod(value_file, 0o600)

    put_args = ["-q", "put", SECRET, "--from-file", str(value_file)]
    get_args = ["get", SECRET]
    null_cmd, audited_cmd = [py, str(DRIVER)], [py, str(DRIVER), "--audited"]
    module_cmd = [py, "-m", "bsecrets"]
    got = VALUE + b"\n"
    cases = {
        "put_null": Case(
            "put_null",
            "put, null sink (driver)",
            null_cmd + put_args,
            null_session,
            null_folder,
            b"",
        ),
        "put_audit": Case(
            "put_audit", "put, audited (driver)", audited_cmd + put_args, session, folder, b""
        ),
        "put_m": Case(
            "put_m", "put, audited (python -m)", module_cmd + put_args, session, folder, b""
        ),
        "get_null": Case(
            "get_null",
            "get, null sink (driver)",
            null_cmd + get_args,
            null_session,
            null_folder,
            got,
        ),
        "get_audit": Case(
            "get_audit", "get, audited (driver)", audited_cmd + get_args, session, folder, got
        ),
        "get_m": Case(
            "get_m", "get, audited (python -m)", module_cmd + get_args, session, folder, got
        ),
    }
    pairs = [
        Pair("put: audited / null sink", cases["put_null"], cases["put_audit"], OVERHEAD_LIMIT),
        Pair("get: audited / null sink", cases["get_null"], cases["get_audit"], OVERHEAD_LIMIT),
        Pair("i put: python -m bsecrets / null sink", cases["put_null"], cases["put_m"], None),
        Pair("i get: python -m bsecrets / null sink", cases["get_null"], cases["get_m"], None),
    ]
    print("overhead: warming up and checking outputs", file=sys.stderr, flush=True)
    events_before = audit_count(folder, passphrase)
    null_before = audit_count(null_folder, passphrase)
    for key in ("put_audit", "put_null", "put_m", "get_audit", "get_null", "get_m"):
        cases[key].warm_up(2)
    events_warm = audit_count(folder, passphrase)
    # 2 runs each of put_audit, put_m, get_audit, get_m write an event; the null ones must not
    if events_warm - events_before != 8 or audit_count(null_folder, passphrase) != null_before:
        raise BenchError(
            f"warm-up wrote {events_warm - events_before} audit events, expected 8 "
            "(the null driver must write none, the audited runs one each)"
        )
    for case in cases.values():
        case.wall.clear()
        case.cpu.clear()
    print(f"overhead: {args.rounds} interleaved rounds", file=sys.stderr, flush=True)
    started = time.perf_counter()
    measure(pairs, [], args.rounds, args.seed)
    measure_s = time.perf_counter() - started
    events_after = audit_count(folder, passphrase)

    print(f"overhead: in-process, {args.ops} ops of each", file=sys.stderr, flush=True)
    inproc = in_process(folder, null_folder, passphrase, env, args.ops, args.seed)

    judged = pairs[:2]
    ok = all(pair_ok(p) for p in judged)
    worst = max(judged, key=lambda p: p.paired_ratio)
    lines = [
        f"2 audit overhead (fresh CLI processes, {args.rounds} rounds): put "
        f"{pairs[0].paired_ratio:.3f}x, get {pairs[1].paired_ratio:.3f}x audited/null; limit < "
        f"{OVERHEAD_LIMIT:.2f}x (auditing adds under {OVERHEAD_LIMIT * 100 - 100:.0f}%): "
        f"{verdict(ok)}" + ("" if ok else f" (worst: {worst.label})"),
        f"  {'pair':<38} {'null med':>10} {'subj med':>10} {'ratio':>8} {'of med':>7} "
        f"{'cpu':>6}  result",
    ]
    for p in pairs:
        lines.append(
            f"  {p.label:<38} {ms(statistics.median(p.base_wall)):>10} "
            f"{ms(statistics.median(p.subj_wall)):>10} {p.paired_ratio:>7.3f}x {p.ratio:>6.3f}x "
            f"{p.cpu_ratio:>5.2f}x  {verdict(pair_ok(p))}"
        )
    lines.append(
        "  ratio (judged): median of the back-to-back subject/null ratios; of med: ratio of "
        "the medians;\n  cpu: the same on the child's user+sys time; 'i' rows are "
        "information (the console form against the driver)"
    )
    lines.append(raw_header(f"  raw wall times{'':<27}"))
    lines += [raw_line(c, 4, 38) for c in cases.values()]
    audited_runs = 4 * args.rounds
    lines.append(
        f"  audit events written during the rounds: {events_after - events_warm} "
        f"(expected {audited_runs}: one per audited run, none from the null sink); "
        f"{args.rounds} rounds in {measure_s:.0f} s"
    )
    if events_after - events_warm != audited_runs:
        ok = False
        lines.append("  FAIL: the event count does not match the runs")
    lines.append(f"  in-process (information; {args.ops} ops each, alternating, median per op):")
    for op in ("put", "get"):
        a, n = inproc[(op, "audited")], inproc[(op, "null")]
        paired = paired_median(a, n)
        lines.append(
            f"    {op}: audited {us(statistics.median(a))}, null {us(statistics.median(n))}: "
            f"+{us(statistics.median(a) - statistics.median(n))} per op, "
            f"{paired:.2f}x (paired), p90 {us(quantile(a, 0.9))} / {us(quantile(n, 0.9))}"
        )
    return ok, lines


def audit_count(folder: Path, passphrase: str) -> int:
    """Events in the CLI vault's audit log (read in-process; no key needed to count)."""
    from bsecrets.audit.local_log import LocalAuditLog
    from bsecrets.config.loader import load_profile
    from bsecrets.timeutil import utcnow
    from bsecrets.vaultfile.credentials import Credentials
    from bsecrets.vaultfile.vault import LocalVault

    vault_file = load_profile(folder / "bsecrets.yaml").vault_file
    vault = LocalVault.open(Path(vault_file), Credentials(passphrase=passphrase), utcnow)
    try:
        with vault.store.read():
            return LocalAuditLog(vault).count()
    finally:
        vault.close()


# --- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--events", type=int, default=VERIFY_LIMIT_EVENTS,
        help=f"audit events to verify (default {VERIFY_LIMIT_EVENTS:,})",
    )  # fmt: skip
    p.add_argument("--rounds", type=int, default=30, help="interleaved CLI rounds (default 30)")
    p.add_argument(
        "--ops", type=int, default=300, help="in-process put and get ops of each (default 300)"
    )
    p.add_argument(
        "--verify-runs", type=int, default=3, help="timed verify runs, median (default 3)"
    )
    p.add_argument("--only", choices=("verify", "overhead"), help="run one benchmark")
    p.add_argument(
        "--no-control", dest="control", action="store_false",
        help="skip the control verify with a changed MAC (one more full walk)",
    )  # fmt: skip
    p.add_argument("--profile", action="store_true", help="print a cProfile of one verify")
    p.add_argument("--seed", type=int, default=1, help="seed of the run order shuffles")
    p.add_argument("--workdir", type=Path, help="parent of the temp dir (default: system temp)")
    args = p.parse_args(argv)
    if args.events < 1 or args.rounds < 3 or args.ops < 10 or args.verify_runs < 1:
        p.error("need --events >= 1, --rounds >= 3, --ops >= 10, --verify-runs >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(WEAK_KDF)  # vaults made here derive their key with the test KDF
    results: list[tuple[bool, list[str]]] = []
    load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bsecrets-bench-audit-", dir=args.workdir) as tmp:
            work = Path(tmp)
            if args.only in (None, "verify"):
                results.append(bench_verify(args, work))
            if args.only in (None, "overhead"):
                results.append(bench_overhead(args, work))
    except BenchError as exc:
        print(f"bench error: {exc}", file=sys.stderr)
        return 2
    load_after = os.getloadavg()
    print(
        f"\nbsecrets audit benchmarks: python {platform.python_version()}, {os.cpu_count()} CPUs "
        f"(shared), load {load_before[0]:.2f} -> {load_after[0]:.2f}, "
        f"bsecrets {git_state(REPO)}, {time.perf_counter() - started:.0f} s in all"
    )
    for _ok, lines in results:
        print()
        print("\n".join(lines))
    failed = [lines[0].split(":")[0] for ok, lines in results if not ok]
    print("\n" + ("FAIL: " + "; ".join(failed) if failed else "all targets pass"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
