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
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT = 2.0
ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("dotenv", "json", "shell", "yaml")
SCRUBBED = ("BSECRETS_", "GITHUB_", "GITLAB_", "PYTHONDONTWRITEBYTECODE", "CI")


def run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bsecrets", *args], env=env, cwd=cwd,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bsecrets {' '.join(args)} failed: {done.stderr.decode()[-400:]}")
    return elapsed


def setup(work: Path, count: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update(
        HOME=str(work), XDG_CACHE_HOME=str(work / "cache"), XDG_CONFIG_HOME=str(work / "cfg"),
        XDG_RUNTIME_DIR=str(work / "run"), PYTHONPATH=str(ROOT), NO_COLOR="1",
        BSECRETS_PASSPHRASE="bench passphrase", BSECRETS_INSECURE_TEST_KDF="1",
    )  # fmt: skip
    (work / "run").mkdir(mode=0o700)
    subprocess.run(
        [sys.executable, "-m", "bsecrets", "init", "--env", "dev"], env=env, cwd=work,
        check=True, capture_output=True,
    )  # fmt: skip
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
    subprocess.run([sys.executable, "-c", script], env=env, cwd=work, check=True)
    unlock = subprocess.run(
        [sys.executable, "-m", "bsecrets", "unlock", "--json"], env=env, cwd=work,
        check=True, capture_output=True,
    )  # fmt: skip
    import json

    token = json.loads(unlock.stdout)["session"]
    env.pop("BSECRETS_PASSPHRASE")
    env.pop("BSECRETS_INSECURE_TEST_KDF")
    env["BSECRETS_SESSION"] = token
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--secrets", type=int, default=1000)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bsecrets")], check=True)
    with tempfile.TemporaryDirectory(prefix="bsecrets-bench-export-") as tmp:
        work = Path(tmp)
        env = setup(work, args.secrets)
        get = ["get", "app/key-0000"]
        subjects = {fmt: ["export", "--format", fmt] for fmt in FORMATS}
        for cmd in [get, *subjects.values()]:  # warm: bytecode, profile cache, page cache
            run(cmd, env, work)
            run(cmd, env, work)
        base: list[float] = []
        times: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
        ratios: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
        for _ in range(args.runs):
            order = list(FORMATS)
            random.shuffle(order)
            for fmt in order:
                pair = [("get", get), (fmt, subjects[fmt])]
                random.shuffle(pair)
                measured = {label: run(cmd, env, work) for label, cmd in pair}
                base.append(measured["get"])
                times[fmt].append(measured[fmt])
                ratios[fmt].append(measured[fmt] / measured["get"])
    get_median = statistics.median(base)
    print(f"export of {args.secrets} secrets vs one get; {args.runs} rounds; limit {LIMIT}x")
    print(f"get median {get_median * 1000:.1f} ms (n={len(base)})")
    print(f"{'format':<8} {'median ms':>10} {'ratio':>7} {'of med':>7}  result")
    ok = True
    for fmt in FORMATS:
        ratio = statistics.median(ratios[fmt])
        of_medians = statistics.median(times[fmt]) / get_median
        passed = ratio <= LIMIT
        ok &= passed
        print(
            f"{fmt:<8} {statistics.median(times[fmt]) * 1000:>10.1f} {ratio:>6.2f}x "
            f"{of_medians:>6.2f}x  {'PASS' if passed else 'FAIL'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
