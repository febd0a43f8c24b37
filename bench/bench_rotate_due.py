#!/usr/bin/env python3
"""``bsecrets rotate --due`` over 1,000 secrets, none due, within 2x of ``bsecrets ls``
of the same environment (issue 14).

``--due`` lists the environment (one ``ls``) and compares each secret's age with its
policy; with nothing due it writes nothing. Fresh processes (``python -m
bsecrets``), an unlocked session, cached bytecode; each round runs ``ls`` and
``rotate --due --dry-run`` back to back in a shuffled order, and the judged figure
is the median of the per-round ratios.

Usage: python bench/bench_rotate_due.py [--runs N] [--secrets N]
Exit status: 0 within the limit, 1 not, 2 could not run.
"""

from __future__ import annotations

import argparse
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
POLICY = "    rotation:\n      'app/*': {max_age: 3650d, generate: 'hex:16'}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--secrets", type=int, default=1000, help="secrets (default 1,000)")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    args = parser.parse_args(argv)
    py = [sys.executable, "-m", "bsecrets"]
    try:
        with tempfile.TemporaryDirectory(prefix="bsecrets-rotate-due-") as tmp:
            work = Path(tmp)
            compile_tree(ROOT / "bsecrets")
            env = source_env(work, ROOT)
            call([*py, "init", "--env", "dev"], env, work)
            profile = work / "bsecrets.yaml"
            text = profile.read_text()
            profile.write_text(
                text.replace("    backend: local\n", "    backend: local\n" + POLICY, 1)
            )
            fill_environment(env, work, "app/key-{i:04d}", args.secrets)
            env = session_env(env, work)
            ls = Case("ls", "ls", [*py, "ls", "-e", "dev", "-q"], env, work,
                      expect_lines=args.secrets)  # fmt: skip
            due = Case("due", "rotate --due", [*py, "rotate", "--due", "-e", "dev", "--dry-run"],
                       env, work)  # fmt: skip
            pair = Pair("due", ls, due, LIMIT)
            measure([pair], [], args.runs, args.seed)
    except BenchError as exc:
        print(f"bench_rotate_due: {exc}", file=sys.stderr)
        return 2
    ratio = pair.paired_ratio
    ok = ratio <= LIMIT
    print(f"secrets: {args.secrets:,}, rounds: {args.runs}")
    print(f"ls: median {ls.median * 1000:.1f} ms; rotate --due --dry-run: "
          f"median {due.median * 1000:.1f} ms")  # fmt: skip
    print(f"rotate --due / ls: {ratio:.2f}x (limit {LIMIT}x)  {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
