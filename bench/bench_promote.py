#!/usr/bin/env python3
"""``bsecrets promote`` of 500 secrets local -> local within 3x of ``export`` + ``import``
of the same 500 (issue 15).

Two source environments (a, b) hold the same 500 names with different values; each
run of either command takes its source from the other one than last time, so every
run writes all 500 (no run finds the target already equal). The baseline is
``export -e SRC -o FILE`` then ``import FILE -e t1``; the subject is ``promote --from
SRC --to t2 --only 'app/*' --yes`` (plan, then one transaction of check-and-set
writes and their audit events). Fresh processes (``python -m bsecrets``), an unlocked
session, cached bytecode; the judged figure is the median of per-round ratios.

Usage: python bench/bench_promote.py [--runs N] [--secrets N]
Exit status: 0 within the limit, 1 not, 2 could not run.
"""

from __future__ import annotations

import argparse
import shlex
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

LIMIT = 3.0
ROOT = Path(__file__).resolve().parent.parent


def _alternating(flag: str, command: str) -> list[str]:
    """``command`` with $SRC set to a, then b, then a... (one file as the switch)."""
    switch = f"if [ -e {flag} ]; then SRC=b; rm {flag}; else SRC=a; touch {flag}; fi"
    return ["sh", "-c", f"{switch}; {command}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--secrets", type=int, default=500, help="secrets (default 500)")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    args = parser.parse_args(argv)
    py = shlex.join([sys.executable, "-m", "bsecrets"])
    try:
        with tempfile.TemporaryDirectory(prefix="bsecrets-promote-") as tmp:
            work = Path(tmp)
            compile_tree(ROOT / "bsecrets")
            env = source_env(work, ROOT)
            init = [sys.executable, "-m", "bsecrets", "init"]
            call([*init, "--env", "a", "--env", "b", "--env", "t1", "--env", "t2"], env, work)
            for source in ("a", "b"):
                fill_environment(env, work, "app/key-{i:04d}", args.secrets, source)
            env = session_env(env, work)
            base = Case("base", "export + import", _alternating(
                "t1.flag", f"{py} export -e $SRC -o out.env && {py} import out.env -e t1 -q",
            ), env, work)  # fmt: skip
            subj = Case("promote", "promote", _alternating(
                "t2.flag", f"{py} promote --from $SRC --to t2 --only 'app/*' --yes >/dev/null",
            ), env, work)  # fmt: skip
            pair = Pair("promote", base, subj, LIMIT)
            measure([pair], [], args.runs, args.seed)
    except BenchError as exc:
        print(f"bench_promote: {exc}", file=sys.stderr)
        return 2
    ratio = pair.paired_ratio
    ok = ratio <= LIMIT
    print(f"secrets: {args.secrets:,}, rounds: {args.runs}")
    print(f"export + import: median {base.median * 1000:.1f} ms; promote: "
          f"median {subj.median * 1000:.1f} ms")  # fmt: skip
    print(f"promote / (export + import): {ratio:.2f}x (limit {LIMIT}x)  {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
