#!/usr/bin/env python3
"""``bsecrets access revoke`` of 10,000 secrets: the re-key, against an ``export`` of
the same 10,000 in the same run (issue 13).

A revoke re-keys the environment in one transaction: every row opened and
checked under the old key, sealed again under a new one, the manifest rebuilt,
the new key sealed to who keeps access. ``export`` opens and checks every row
too, and writes nothing: the ratio says what the re-encryption and the writes
cost on top of reading everything. Each round grants the principal again (not
timed), then runs the revoke and the export back to back in a shuffled order;
the judged figure is the median of the per-round ratios.

Fresh processes (``python -m bsecrets``), an unlocked session, cached bytecode.

Usage: python bench/bench_rekey.py [--runs N] [--secrets N]
Exit status: 0 within the limit, 1 not, 2 could not run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    BenchError,
    call,
    compile_tree,
    fill_environment,
    ms,
    paired_median,
    session_env,
    source_env,
    verdict,
)

LIMIT = 4.0  # revoke of N secrets within 4x an export of the same N
ROOT = Path(__file__).resolve().parent.parent


def setup(work: Path, count: int) -> dict[str, str]:
    env = source_env(work, ROOT)
    bs = [sys.executable, "-m", "bsecrets"]
    call([*bs, "init", "--env", "dev"], env, work)
    call([*bs, "access", "principal", "add", "bench"],
         {**env, "BSECRETS_NEW_PASSPHRASE": "bench principal passphrase"}, work)  # fmt: skip
    fill_environment(env, work, "app/key-{i:05d}", count)
    return session_env(env, work)


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    call(cmd, env, cwd)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--secrets", type=int, default=10_000, help="secrets (default 10,000)")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    bs = [sys.executable, "-m", "bsecrets"]
    try:
        with tempfile.TemporaryDirectory(prefix="bsecrets-rekey-") as tmp:
            work = Path(tmp)
            compile_tree(ROOT / "bsecrets")
            print(f"building a vault of {args.secrets:,} secrets...", file=sys.stderr)
            env = setup(work, args.secrets)
            revoke_s: list[float] = []
            export_s: list[float] = []
            for _ in range(args.runs):
                call([*bs, "access", "grant", "bench", "-e", "dev"], env, work)
                cases = [
                    (revoke_s, [*bs, "access", "revoke", "bench", "-e", "dev"]),
                    (export_s, [*bs, "export", "-e", "dev", "-o", str(work / "out.env")]),
                ]
                rng.shuffle(cases)
                for samples, cmd in cases:
                    samples.append(timed(cmd, env, work))
    except BenchError as exc:
        print(f"bench_rekey: {exc}", file=sys.stderr)
        return 2
    ratio = paired_median(revoke_s, export_s)
    ok = ratio <= LIMIT
    print(f"secrets: {args.secrets:,}, rounds: {args.runs}")
    print(f"access revoke (re-key): median {ms(statistics.median(revoke_s))}")
    print(f"export (baseline):      median {ms(statistics.median(export_s))}")
    print(f"revoke / export: {ratio:.2f}x (limit {LIMIT}x)  {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
