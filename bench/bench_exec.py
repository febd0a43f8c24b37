#!/usr/bin/env python3
"""Benchmark of ``bsecrets exec -- true`` with 100 secrets (issue 4).

Target: ``exec -- true`` (no masking) with 100 secrets in the environment
within 1.3x of a bare ``bsecrets get NAME`` on the same vault. Target (issue 21):
``exec --env-file F -- true``, F holding 50 references to one local environment,
within 1.2x of ``exec --only`` of the same 50 secrets, judged the same way. Fresh processes
(``python -m bsecrets``), an unlocked session (BSECRETS_SESSION, no key
derivation per call), each round a (get, exec) pair run back to back in
random order; judged on the median of the paired ratios, with the ratio of
the medians printed too. With ``--mask``, the same for ``exec --mask``
(supervised child, output redaction), reported but not judged.

Run ``python -m compileall -q bsecrets`` first where PYTHONDONTWRITEBYTECODE=1
is set, or every sample pays for compiling bsecrets.

Usage: python bench/bench_exec.py [--runs N] [--secrets N] [--refs N] [--mask] [--json FILE]
Exit status: 0 the target passes, 1 it fails, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from harness import BenchError, Case, call, measure, verdict

PASSPHRASE = "bench passphrase for exec"
TARGET = 1.3
ENV_FILE_TARGET = 1.2  # exec --env-file over exec --only of the same secrets
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
    call([*py, "init"], {**env, "BSECRETS_PASSPHRASE": PASSPHRASE}, work)
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
    call([sys.executable, "-c", fill, PASSPHRASE], env, work, values.encode())
    out = call([*py, "unlock", "--json"], {**env, "BSECRETS_PASSPHRASE": PASSPHRASE}, work)
    env["BSECRETS_SESSION"] = json.loads(out)["session"]
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=21, help="interleaved rounds (default 21)")
    p.add_argument("--secrets", type=int, default=100, help="secrets in the vault (default 100)")
    p.add_argument("--refs", type=int, default=50, help="references in the env file (default 50)")
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
    picked = [f"app/secret-{i:03d}" for i in range(min(args.refs, args.secrets))]
    subjects["exec --only"] = [*py, "exec", "--only", ",".join(picked), "--", "true"]
    subjects["exec --env-file"] = [*py, "exec", "--env-file", "refs.env", "--", "true"]
    work = Path(tempfile.mkdtemp(prefix="bsecrets-bench-exec-"))
    try:
        try:
            env = setup(work, args.secrets)
            refs = "".join(f"V{i:03d}=bsecrets://dev/{name}\n" for i, name in enumerate(picked))
            (work / "refs.env").write_text(refs)
            cases = [Case(k, k, cmd, env, work) for k, cmd in subjects.items()]
            for case in cases:  # warm caches, check it works
                case.warm_up(2)
        except BenchError as exc:
            print(f"setup failed: {exc}", file=sys.stderr)
            return 2
        # each round runs every command once, in a new random order
        measure([], cases, args.runs, None)
    except BenchError as exc:
        print(f"bench error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    samples = {case.key: case.wall for case in cases}
    ratios = {  # per round: the subject over the get of the same round
        k: [s / g for s, g in zip(times, samples["get"], strict=True)]
        for k, times in samples.items()
        if k != "get"
    }
    env_file = [  # per round: --env-file over --only of the same secrets
        f / o for f, o in zip(samples["exec --env-file"], samples["exec --only"], strict=True)
    ]
    medians = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{args.secrets} secrets, {args.runs} interleaved rounds, fresh processes")
    for k, m in medians.items():
        print(f"  {k:<16} median {m * 1000:7.1f} ms")
    code = 0
    for k, r in ratios.items():
        paired = statistics.median(r)
        of_medians = medians[k] / medians["get"]
        judged = k == "exec"
        ok = paired <= TARGET
        if judged and not ok:
            code = 1
        print(
            f"  {k} / get: paired-median ratio {paired:.3f}, ratio of medians "
            f"{of_medians:.3f} (target <= {TARGET}) {verdict(ok if judged else None)}"
        )
    paired = statistics.median(env_file)
    of_medians = medians["exec --env-file"] / medians["exec --only"]
    ok = paired <= ENV_FILE_TARGET
    code = code if ok else 1
    print(
        f"  exec --env-file ({len(picked)} references) / exec --only (the same secrets): "
        f"paired-median ratio {paired:.3f}, ratio of medians {of_medians:.3f} "
        f"(target <= {ENV_FILE_TARGET}) {verdict(ok)}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = {"samples": samples, "ratios": ratios, "medians": medians, "env_file": env_file}
        args.json.write_text(json.dumps(data, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
