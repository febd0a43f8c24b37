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
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from harness import BenchError, Case, Pair, call, compile_tree, measure, verdict

LIMIT = 2.0
ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("dotenv", "json", "shell", "yaml")
SCRUBBED = ("BSECRETS_", "GITHUB_", "GITLAB_", "PYTHONDONTWRITEBYTECODE", "CI")


def setup(work: Path, count: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update(
        HOME=str(work), XDG_CACHE_HOME=str(work / "cache"), XDG_CONFIG_HOME=str(work / "cfg"),
        XDG_RUNTIME_DIR=str(work / "run"), PYTHONPATH=str(ROOT), NO_COLOR="1",
        BSECRETS_PASSPHRASE="bench passphrase", BSECRETS_INSECURE_TEST_KDF="1",
    )  # fmt: skip
    (work / "run").mkdir(mode=0o700)
    call([sys.executable, "-m", "bsecrets", "init", "--env", "dev"], env, work)
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from bsecrets.vaultfile.credentials import Credentials\n"
        "from bsecrets.services.manager import SecretsManager\n"
        "from bsecrets.config.loader import load_profile\n"
        "m = SecretsManager(load_profile(Path('bsecrets.yaml')),"
        " Credentials(passphrase=os.environ['BSECRETS_PASSPHRASE']))\n"
        f"names = [f'app/key-{{i:04d}}' for i in range({count})]\n"
        "with m.transaction('dev', action='import', names=names):\n"
        "    for name in names:\n"
        "        m.put('dev', name, os.urandom(24).hex().encode())\n"
        "m.close()\n"
    )
    call([sys.executable, "-c", script], env, work)
    unlock = call([sys.executable, "-m", "bsecrets", "unlock", "--json"], env, work)
    token = json.loads(unlock)["session"]
    env.pop("BSECRETS_PASSPHRASE")
    env.pop("BSECRETS_INSECURE_TEST_KDF")
    env["BSECRETS_SESSION"] = token
    return env


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
