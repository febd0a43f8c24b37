#!/usr/bin/env python3
"""Benchmark of ``bsecrets exec -- true`` with 100 secrets (issue 4).

Target: ``exec -- true`` (no masking) with 100 secrets in the environment
within 1.3x of a bare ``bsecrets get NAME`` on the same vault. Fresh processes
(``python -m bsecrets``), an unlocked session (BSECRETS_SESSION, no key
derivation per call), each round a (get, exec) pair run back to back in
random order; judged on the median of the paired ratios, with the ratio of
the medians printed too. With ``--mask``, the same for ``exec --mask``
(supervised child, output redaction), reported but not judged.

Run ``python -m compileall -q bsecrets`` first where PYTHONDONTWRITEBYTECODE=1
is set, or every sample pays for compiling bsecrets.

Usage: python bench/bench_exec.py [--runs N] [--secrets N] [--mask] [--json FILE]
Exit status: 0 the target passes, 1 it fails, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSPHRASE = "bench passphrase for exec"
TARGET = 1.3
ROOT = Path(__file__).resolve().parent.parent


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSECRETS_") and k != "CI"}
    env.update(
        HOME=str(work / "home"),
        XDG_CONFIG_HOME=str(work / "home/.config"),
        XDG_CACHE_HOME=str(work / "home/.cache"),
        XDG_RUNTIME_DIR=str(work / "run"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def setup(work: Path, count: int) -> dict[str, str]:
    for sub in ("home", "run"):
        (work / sub).mkdir(mode=0o700, exist_ok=True)
    env = _env(work)
    py = [sys.executable, "-m", "bsecrets"]
    subprocess.run(
        [*py, "init"], cwd=work, env={**env, "BSECRETS_PASSPHRASE": PASSPHRASE},
        check=True, capture_output=True,
    )  # fmt: skip
    fill = (
        "import sys\n"
        "from pathlib import Path\n"
        "from bsecrets.vaultfile.credentials import Credentials\n"
        "from bsecrets.services.manager import SecretsManager\n"
        "from bsecrets.config.loader import load_profile\n"
        "profile = load_profile(Path('bsecrets.yaml'))\n"
        "m = SecretsManager(profile, Credentials(passphrase=sys.argv[1]))\n"
        "for i, line in enumerate(sys.stdin.read().split()):\n"
        "    m.put('dev', f'app/secret-{i:03d}', line.encode())\n"
        "m.close()\n"
    )
    values = "\n".join(secrets.token_urlsafe(24) for _ in range(count))
    subprocess.run(
        [sys.executable, "-c", fill, PASSPHRASE], input=values.encode(), cwd=work, env=env,
        check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        [*py, "unlock", "--json"], cwd=work, env={**env, "BSECRETS_PASSPHRASE": PASSPHRASE},
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    env["BSECRETS_SESSION"] = json.loads(out)["session"]
    return env


def timed(cmd: list[str], work: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[3:]} exited {result.returncode}: {result.stderr.decode()}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=21, help="interleaved rounds (default 21)")
    p.add_argument("--secrets", type=int, default=100, help="secrets in the vault (default 100)")
    p.add_argument("--mask", action="store_true", help="also time 'exec --mask -- true'")
    p.add_argument("--json", type=Path, help="write every sample to this file")
    args = p.parse_args(argv)
    py = [sys.executable, "-m", "bsecrets"]
    subjects = {
        "get": [*py, "get", "app/secret-000"],
        "exec": [*py, "exec", "--", "true"],  # CI unset: no masking
    }
    if args.mask:
        subjects["exec --mask"] = [*py, "exec", "--mask", "--", "true"]
    work = Path(tempfile.mkdtemp(prefix="bsecrets-bench-exec-"))
    try:
        try:
            env = setup(work, args.secrets)
            for cmd in subjects.values():  # warm caches, check it works
                timed(cmd, work, env)
                timed(cmd, work, env)
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            print(f"setup failed: {exc}", file=sys.stderr)
            return 2
        samples: dict[str, list[float]] = {k: [] for k in subjects}
        ratios: dict[str, list[float]] = {k: [] for k in subjects if k != "get"}
        for _ in range(args.runs):
            order = list(subjects)
            random.shuffle(order)
            round_times = {k: timed(subjects[k], work, env) for k in order}
            for k, t in round_times.items():
                samples[k].append(t)
            for k in ratios:
                ratios[k].append(round_times[k] / round_times["get"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{args.secrets} secrets, {args.runs} interleaved rounds, fresh processes")
    for k, m in medians.items():
        print(f"  {k:<12} median {m * 1000:7.1f} ms")
    verdict = 0
    for k, r in ratios.items():
        paired = statistics.median(r)
        of_medians = medians[k] / medians["get"]
        judged = k == "exec"
        ok = paired <= TARGET
        if judged and not ok:
            verdict = 1
        status = ("PASS" if ok else "FAIL") if judged else "info"
        print(
            f"  {k} / get: paired-median ratio {paired:.3f}, ratio of medians "
            f"{of_medians:.3f} (target <= {TARGET}) {status}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"samples": samples, "ratios": ratios, "medians": medians}, indent=2)
        )
    return verdict


if __name__ == "__main__":
    sys.exit(main())
