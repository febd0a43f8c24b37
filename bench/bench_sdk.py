#!/usr/bin/env python3
"""The SDK (issue 17): ``Client().get()`` of a local secret in a warm process (target
under 2 ms), a cached read (under 20 us), and ``import bsecrets`` (under 10 ms above
the interpreter's own start).

Each figure is paired with a baseline measured in the same run: the read with a bare
SQLite point query on the same vault file (the floor any read pays), the cached read
with a plain dict lookup, the import with ``python -c pass``. The vault is unlocked by
a session (no KDF); the client reads with ``cache_ttl=0`` for the uncached figure.

Usage: python bench/bench_sdk.py [--reads N] [--starts N]
Exit status: 0 within the targets, 1 not, 2 could not run.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import BenchError, call, compile_tree, session_env, source_env, verdict

ROOT = Path(__file__).resolve().parent.parent
GET_LIMIT_S, CACHED_LIMIT_S, IMPORT_LIMIT_S = 0.002, 0.000020, 0.010


def _timed(fn: object, n: int) -> float:
    """Median seconds of ``n`` calls of ``fn``."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _import_cost(env: dict[str, str], n: int) -> tuple[float, float]:
    """(median of paired differences ``import bsecrets`` - ``pass``, median of ``pass``):
    the two interpreter starts back to back in each round, in alternating order."""

    def once(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return time.perf_counter() - start

    diffs, bare = [], []
    for i in range(n):
        if i % 2:
            b, m = once("pass"), once("import bsecrets")
        else:
            m, b = once("import bsecrets"), once("pass")
        diffs.append(m - b)
        bare.append(b)
    return statistics.median(diffs), statistics.median(bare)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=2000, help="timed reads (default 2,000)")
    parser.add_argument("--starts", type=int, default=40, help="paired starts (default 40)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="bsecrets-sdk-") as tmp:
            work = Path(tmp)
            compile_tree(ROOT / "bsecrets")
            env = source_env(work, ROOT)
            py = [sys.executable, "-m", "bsecrets"]
            call([*py, "init", "--env", "dev"], env, work)
            call([*py, "put", "app/key", "--value", "v1", "-e", "dev"], env, work)
            env = session_env(env, work)
            os.environ.update(env)
            os.chdir(work)
            sys.path.insert(0, str(ROOT))
            from bsecrets import Client

            with Client(env="dev", cache_ttl=0) as fresh, Client(env="dev") as cached:
                fresh.get("app/key")  # warm: the profile, the vault, the keys
                cached.get("app/key")
                get_s = _timed(lambda: fresh.get("app/key"), args.reads)
                cached_s = _timed(lambda: cached.get("app/key"), args.reads)
            db = sqlite3.connect(work / ".bsecrets" / "vault.db")
            floor_s = _timed(lambda: db.execute("SELECT * FROM meta LIMIT 1").fetchall(),
                             args.reads)  # fmt: skip
            table = {("dev", "app/key", None): (0.0, object())}
            dict_s = _timed(lambda: table.get(("dev", "app/key", None)), args.reads)
            import_s, bare = _import_cost(env, args.starts)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"bench_sdk: {exc}", file=sys.stderr)
        return 2
    rows = [
        ("Client.get (cache_ttl=0)", get_s, floor_s, "SQLite point query", GET_LIMIT_S),
        ("Client.get (cached)", cached_s, dict_s, "dict lookup", CACHED_LIMIT_S),
        ("import bsecrets, above python -c pass", import_s, bare, "python -c pass",
         IMPORT_LIMIT_S),
    ]  # fmt: skip
    ok = True
    for label, value, base, base_label, limit in rows:
        good = value <= limit
        ok = ok and good
        print(f"{label}: {value * 1e6:.1f} us (limit {limit * 1e6:.0f} us; {base_label}: "
              f"{base * 1e6:.1f} us, ratio {value / base:.1f}x)  {verdict(good)}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
