#!/usr/bin/env python3
"""Benchmark of ``bsecrets get`` on an AWS environment (see docs/backends/aws.md).

Everything runs against one moto server on 127.0.0.1 started by this script,
each command as a fresh process, the cases interleaved in a shuffled order on
every round (the machine is shared and noisy), judged on medians:

1. ``bsecrets get NAME -e prod`` within 1.3x of (b) a Python script that
   imports boto3 and reads the same secret (GetSecretValue, AWSCURRENT);
2. within 0.8x of (a) ``aws secretsmanager get-secret-value`` (the AWS CLI),
   when the ``aws`` command is installed (otherwise reported as skipped);
3. ``bsecrets get`` on an environment with ``role_arn``: after the first
   command, the following ones make no STS call (the assumed-role credentials
   come from the sealed cache; counted in moto's own state).

Usage: python bench/bench_aws.py [--runs N] [--json FILE]
Exit status: 0 all targets pass, 1 a target fails, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import BenchError, Case, call, compile_tree, measure, verdict

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
PREFIX = "myapp/prod/"
NAME = "db/password"
VALUE = "s3cret-bench-value"
ROLE_ACCOUNT = "111111111111"
ROLE_ARN = f"arn:aws:iam::{ROLE_ACCOUNT}:role/bsecrets-bench"
PASSPHRASE = "bench passphrase, not a secret"
BOTO3_LIMIT = 1.3
AWSCLI_LIMIT = 0.8
# Variables of the calling shell that would change what is measured.
SCRUBBED_PREFIXES = ("BSECRETS_", "AWS_")
SCRUBBED = ("PYTHONPROFILEIMPORTTIME", "PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONPYCACHEPREFIX")

BOTO3_SCRIPT = """
import sys
import boto3
client = boto3.client("secretsmanager", endpoint_url=sys.argv[1], region_name=sys.argv[2])
value = client.get_secret_value(SecretId=sys.argv[3], VersionStage="AWSCURRENT")
sys.stdout.write(value["SecretString"] + "\\n")
"""


def start_moto() -> tuple[Any, str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise BenchError(f"pip install 'moto[server,secretsmanager,kms,sts]' ({exc})") from None
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def sts_calls() -> int:
    from moto.sts.models import sts_backends

    return len(sts_backends[ROLE_ACCOUNT]["aws"].assumed_roles)


def child_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(SCRUBBED_PREFIXES) and k not in SCRUBBED
    }
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    return env


def write_profile(work: Path, endpoint: str) -> None:
    aws = {"region": REGION, "prefix": PREFIX, "endpoint_url": endpoint}
    lines = ["version: 1", "default_env: dev", "environments:", "  dev:", "    backend: local"]
    for env_name, extra in (("prod", {}), ("cross", {"role_arn": ROLE_ARN})):
        lines += [f"  {env_name}:", "    backend: aws"]
        lines += [f"    {k}: {json.dumps(v)}" for k, v in {**aws, **extra}.items()]
    (work / "bsecrets.yaml").write_text("\n".join(lines) + "\n")


def bsecrets(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None) -> str:
    value = stdin.encode() if stdin is not None else None
    return call([sys.executable, "-m", "bsecrets", *args], env, cwd, value)


def setup(work: Path, endpoint: str, env: dict[str, str]) -> dict[str, str]:
    """Vault, profile, the secret in both AWS environments; the env of the role case."""
    compile_tree(ROOT / "bsecrets")
    bsecrets(["init", "--env", "dev"], {**env, "BSECRETS_PASSPHRASE": PASSPHRASE}, work)
    write_profile(work, endpoint)
    session_line = bsecrets(["unlock"], {**env, "BSECRETS_PASSPHRASE": PASSPHRASE}, work)
    role_env = {**env, "BSECRETS_SESSION": session_line.strip().split("=", 1)[1]}
    bsecrets(["put", NAME, "-e", "prod"], env, work, VALUE)
    bsecrets(["put", NAME, "-e", "cross"], role_env, work, VALUE)  # assumes the role once
    return role_env


def measure_gets(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    server, endpoint = start_moto()
    try:
        env = child_env(work / "home")
        (work / "home").mkdir(mode=0o700)
        role_env = setup(work, endpoint, env)
        script = work / "read_boto3.py"
        script.write_text(BOTO3_SCRIPT)
        get = [sys.executable, "-m", "bsecrets", "get", NAME]

        def case(key: str, label: str, cmd: list[str], environ: dict[str, str]) -> Case:
            """Checked on every run: it prints the value."""
            return Case(key, label, cmd, environ, work, VALUE.encode(), check_every_run=True,
                        strip=True, timeout=60)  # fmt: skip

        cases = [
            case("bsecrets", "bsecrets get (python -m bsecrets)", [*get, "-e", "prod"], env),
            case("boto3", "(b) python script with boto3", [sys.executable, str(script),
                 endpoint, REGION, PREFIX + NAME], env),
            case("role", "bsecrets get, role_arn (cached)", [*get, "-e", "cross"], role_env),
        ]  # fmt: skip
        aws_cli = shutil.which("aws")
        if aws_cli:
            cases.append(
                case("awscli", "(a) aws secretsmanager get-secret-value", [
                    aws_cli, "secretsmanager", "get-secret-value", "--secret-id", PREFIX + NAME,
                    "--endpoint-url", endpoint, "--region", REGION,
                    "--query", "SecretString", "--output", "text",
                ], env)
            )  # fmt: skip
        for c in cases:  # warm the page cache and the profile cache
            c.warm_up(2)
        sts_before = sts_calls()
        measure([], cases, args.runs, None)  # each round: every case once, shuffled
        sts_during = sts_calls() - sts_before
    finally:
        server.stop()
    medians = {c.key: c.median for c in cases}
    return {
        "cases": {
            c.key: {"label": c.label, "median_s": c.median, "times_s": c.wall} for c in cases
        },
        "ratio_boto3": medians["bsecrets"] / medians["boto3"],
        "ratio_awscli": medians["bsecrets"] / medians["awscli"] if "awscli" in medians else None,
        "sts_calls_during_measured_role_gets": sts_during,
        "runs": args.runs,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def report(result: dict[str, Any]) -> bool:
    print(f"bsecrets get on AWS (moto on 127.0.0.1), {result['runs']} interleaved runs, medians:")
    for case in result["cases"].values():
        times = case["times_s"]
        print(
            f"  {case['label']:<44} {case['median_s'] * 1000:7.1f} ms "
            f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})"
        )
    ok = True
    ratio = result["ratio_boto3"]
    passed = ratio <= BOTO3_LIMIT
    ok &= passed
    print(f"  bsecrets / (b) boto3 script   = {ratio:.2f}x (target <= {BOTO3_LIMIT}x): "
          f"{verdict(passed)}")  # fmt: skip
    ratio = result["ratio_awscli"]
    if ratio is None:
        print("  bsecrets / (a) AWS CLI        = skipped: 'aws' is not installed")
    else:
        passed = ratio <= AWSCLI_LIMIT
        ok &= passed
        print(f"  bsecrets / (a) AWS CLI        = {ratio:.2f}x (target <= {AWSCLI_LIMIT}x): "
              f"{verdict(passed)}")  # fmt: skip
    calls = result["sts_calls_during_measured_role_gets"]
    passed = calls == 0
    ok &= passed
    print(f"  STS calls by the measured role_arn gets = {calls} (target 0): "
          f"{verdict(passed)}")  # fmt: skip
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="measured rounds (default 15)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="bsecrets-bench-aws-") as tmp:
            result = measure_gets(args, Path(tmp))
    except (BenchError, subprocess.SubprocessError, OSError) as exc:
        print(f"bench error: {exc}", file=sys.stderr)
        return 2
    ok = report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
