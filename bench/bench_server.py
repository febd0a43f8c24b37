#!/usr/bin/env python3
"""``bsecrets serve`` under load (issue 18): 50 concurrent clients reading local secrets
over loopback for 30 s: zero errors, p99 under 50 ms, throughput reported.

The baseline, measured in the same run against the same process, is the same load on
``GET /v1/openapi.json`` (no token, no vault: the HTTP stack's own floor). Each client
is a thread with its own keep-alive connection reading one of 100 secrets in turn.

Usage: python bench/bench_server.py [--clients N] [--seconds S]
Exit status: 0 within the targets, 1 not, 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import BenchError, call, compile_tree, source_env, verdict

ROOT = Path(__file__).resolve().parent.parent
P99_LIMIT_S = 0.050


def _load(url: str, paths: list[str], headers: dict[str, str], clients: int,
          seconds: float) -> tuple[list[float], int, float]:  # fmt: skip
    """(latencies, errors, wall seconds) of ``clients`` threads requesting ``paths``
    in turn until ``seconds`` have passed."""
    import httpx

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(offset: int) -> None:
        mine: list[float] = []
        failed = 0
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            i = offset
            while time.monotonic() < stop:
                start = time.perf_counter()
                try:
                    ok = http.get(paths[i % len(paths)]).status_code == 200
                except httpx.HTTPError:
                    ok = False
                mine.append(time.perf_counter() - start)
                failed += not ok
                i += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0], time.monotonic() - started


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="bsecrets-serve-") as tmp:
            work = Path(tmp)
            compile_tree(ROOT / "bsecrets")
            env = source_env(work, ROOT)
            py = [sys.executable, "-m", "bsecrets"]
            call([*py, "init", "--env", "prod"], env, work)
            names = [f"app/key-{i:03d}" for i in range(100)]
            for name in names:
                call([*py, "put", name, "--value", f"v-{name}", "-e", "prod"], env, work)
            issued = call([*py, "token", "issue", "-e", "prod", "--role", "read", "--json"],
                          env, work)  # fmt: skip
            token = json.loads(issued)["token"]
            port = 8390
            server = subprocess.Popen(
                [*py, "serve", "--port", str(port), "--rate", "10000000/minute"], cwd=work,
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                import httpx

                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 60
                while True:
                    try:
                        httpx.get(url + "/v1/openapi.json", timeout=2)
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise BenchError("the server did not start") from None
                        time.sleep(0.2)
                base, base_errors, base_wall = _load(
                    url, ["/v1/openapi.json"], {}, args.clients, args.seconds / 3
                )
                paths = [f"/v1/envs/prod/secrets/{n}" for n in names]
                auth = {"Authorization": f"Bearer {token}"}
                lat, errors, wall = _load(url, paths, auth, args.clients, args.seconds)
            finally:
                server.terminate()
                server.wait(timeout=30)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"bench_server: {exc}", file=sys.stderr)
        return 2
    p99 = _p(lat, 0.99)
    ok = errors == 0 and p99 <= P99_LIMIT_S
    print(f"clients: {args.clients}, seconds: {args.seconds:g}")
    print(f"baseline GET /v1/openapi.json: {len(base) / base_wall:.0f} req/s, "
          f"p50 {_p(base, 0.5) * 1000:.1f} ms, p99 {_p(base, 0.99) * 1000:.1f} ms, "
          f"errors {base_errors}")  # fmt: skip
    print(
        f"GET a secret with a token: {len(lat) / wall:.0f} req/s, "
        f"p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
        f"(limit {P99_LIMIT_S * 1000:.0f} ms), errors {errors} (limit 0)  {verdict(ok)}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
