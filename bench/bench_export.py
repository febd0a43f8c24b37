#!/usr/bin/env python3
"""``bsecrets export`` of 1,000 secrets within 2x of one ``bsecrets get`` (issue 4).

Fresh processes (``python -m bsecrets``), an unlocked session (BSECRETS_SESSION,
no passphrase), cached bytecode (``python -m compileall -q bsecrets`` first,
since PYTHONDONTWRITEBYTECODE=1 is set in this workplace). Each round runs the
baseline (``get`` of one secret) and every subject (``export`` in each format)
back to back in a shuffled order; the judged figure is the median of the
per-round ratios, the ratio of the medians is printed beside it.

Usage: python bench/bench_export.py [--runs N] [--secrets N]
Exit status: 0 every format within the limit, 1 one is not, 2 could not run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness import (
    BenchError,
    Case,
    Pair,
    call,
    compile_tree,
    fill_environment,
    measure,
    session_env,
    source_env,
    verdict,
)

LIMIT = 2.0
ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("dotenv", "json", "shell", "yaml")


def setup(work: Path, count: int) -> dict[str, str]:
    env = source_env(work, ROOT)
    call([sys.executable, "-m", "bsecrets", "init", "--env", "dev"], env, work)
    fill_environment(env, work, "app/key-{i:04d}", count)
    return session_env(env, work)


def measure_export(args: argparse.Namespace) -> tuple[Case, list[Pair]]:
    """Each round runs every (get, export FORMAT) pair back to back, in a shuffled order."""
    compile_tree(ROOT / "bsecrets")
    with tempfile.TemporaryDirectory(prefix="bsecrets-bench-export-") as tmp:
        work = Path(tmp)
        env = setup(work, args.secrets)
        py = [sys.executable, "-m", "bsecrets"]
        get = Case("get", "get", [*py, "get", "app/key-0000"], env, work)
        pairs = [
            Pair(fmt, get, Case(fmt, fmt, [*py, "export", "--format", fmt], env, work), LIMIT)
            for fmt in FORMATS
        ]
        for case in [get, *(p.subj for p in pairs)]:  # warm: bytecode, profile cache, page cache
            case.warm_up(2)
        measure(pairs, [], args.runs, None)
    return get, pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--secrets", type=int, default=1000)
    args = parser.parse_args()
    try:
        get, pairs = measure_export(args)
    except BenchError as exc:
        print(f"bench error: {exc}", file=sys.stderr)
        return 2
    print(f"export of {args.secrets} secrets vs one get; {args.runs} rounds; limit {LIMIT}x")
    print(f"get median {get.median * 1000:.1f} ms (n={len(get.wall)})")
    print(f"{'format':<8} {'median ms':>10} {'ratio':>7} {'of med':>7}  result")
    ok = True
    for pair in pairs:
        ratio = pair.paired_ratio
        passed = ratio <= LIMIT
        ok &= passed
        print(
            f"{pair.label:<8} {statistics.median(pair.subj_wall) * 1000:>10.1f} {ratio:>6.2f}x "
            f"{statistics.median(pair.subj_wall) / get.median:>6.2f}x  {verdict(passed)}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
